//! Host tests of `memory_op` through the fake platform.
extern crate std;

use super::super::dispatch;
use super::super::fake::{FakePlatform, BASE};
use super::super::mm::tests::{get, put};
use crate::mm::fake::NR_FRAMES;
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::Hypercall;
use hypercall_abi::layout::MACH2PHYS_VIRT_START;
use hypercall_abi::memory::*;
use hypercall_abi::types::{DOMID_SELF, INVALID_M2P_ENTRY};
use std::vec::Vec;

const ARG: u64 = 0x100;
const LIST: u64 = 0x1000;

fn err(e: Errno) -> i64 {
    e.to_ret()
}

fn mem_op(p: &mut FakePlatform, cmd: u64, arg: u64) -> i64 {
    dispatch(p, Hypercall::MemoryOp as u64, [cmd, arg, 0, 0, 0])
}

fn reservation(p: &mut FakePlatform, op: u32, list: &[u64], nr: u64, order: u32, domid: u16) -> i64 {
    put(p, LIST, list);
    let r = XenMemoryReservation { extent_start: BASE + LIST, nr_extents: nr, extent_order: order, mem_flags: 0, domid, _pad: [0; 3] };
    put(p, ARG, &r);
    mem_op(p, op.into(), BASE + ARG)
}

fn list(p: &FakePlatform, n: usize) -> Vec<u64> {
    (0..n).map(|i| get(p, LIST + 8 * i as u64)).collect()
}

#[test]
fn increase_stops_at_max_pages_and_hands_out_frames() {
    let mut p = FakePlatform::new_with_mm(false, 5, 0x4000);
    assert_eq!(reservation(&mut p, XENMEM_INCREASE_RESERVATION, &[0; 8], 3, 0, DOMID_SELF), 3);
    let got = list(&p, 3);
    for &m in &got {
        assert_eq!(p.env().page(m).owner(), Some(1));
    }
    assert_eq!(reservation(&mut p, XENMEM_INCREASE_RESERVATION, &[0; 8], 8, 0, 1), 2, "two more fit");
    assert_eq!(p.env().dom.tot_pages(), 5);
    assert_eq!(reservation(&mut p, XENMEM_INCREASE_RESERVATION, &[0; 8], 8, 0, DOMID_SELF), 0);
    p.env().check_invariants();
    // Current and maximum reservation agree.
    put(&mut p, ARG, &XenMemoryDomain { domid: DOMID_SELF });
    assert_eq!(mem_op(&mut p, XENMEM_CURRENT_RESERVATION.into(), BASE + ARG), 5);
    assert_eq!(mem_op(&mut p, XENMEM_MAXIMUM_RESERVATION.into(), BASE + ARG), 5);
}

#[test]
fn reservation_arguments_are_checked_before_any_work() {
    let mut p = FakePlatform::new_with_mm(false, 16, 0x4000);
    assert_eq!(reservation(&mut p, XENMEM_INCREASE_RESERVATION, &[], 2, 10, DOMID_SELF), 0, "order 10: past a domU's max_order, nothing done");
    assert_eq!(reservation(&mut p, XENMEM_INCREASE_RESERVATION, &[], 2, 0, 0), err(Errno::EPERM), "dom0's");
    assert_eq!(mem_op(&mut p, XENMEM_INCREASE_RESERVATION.into(), 0x10), err(Errno::EFAULT));
    // An extent list the guest cannot hold: nothing done.
    let r = XenMemoryReservation { extent_start: 0xffff_8000_0000_0000, nr_extents: 2, ..Default::default() };
    put(&mut p, ARG, &XenMemoryReservation { domid: DOMID_SELF, ..r });
    assert_eq!(mem_op(&mut p, XENMEM_POPULATE_PHYSMAP.into(), BASE + ARG), 0);
    assert_eq!(p.env().dom.tot_pages(), 0);
    // Increase without a list is allowed.
    let r = XenMemoryReservation { extent_start: 0, nr_extents: 2, domid: DOMID_SELF, ..Default::default() };
    put(&mut p, ARG, &r);
    assert_eq!(mem_op(&mut p, XENMEM_INCREASE_RESERVATION.into(), BASE + ARG), 2);
    // A list that ends in unwritable memory: the frame that could not be named goes back.
    let at = p.mem.len() as u64 - 8;
    let r = XenMemoryReservation { extent_start: BASE + at, nr_extents: 1, domid: DOMID_SELF, ..Default::default() };
    put(&mut p, ARG, &r);
    assert_eq!(mem_op(&mut p, XENMEM_INCREASE_RESERVATION.into(), BASE + ARG), 1);
    let r = XenMemoryReservation { extent_start: BASE + at + 8, nr_extents: 1, domid: DOMID_SELF, ..Default::default() };
    put(&mut p, ARG, &r);
    assert_eq!(mem_op(&mut p, XENMEM_INCREASE_RESERVATION.into(), BASE + ARG), 0);
    assert_eq!(p.env().dom.tot_pages(), 3);
    p.env().check_invariants();
    let mut p0 = FakePlatform::new_with_mm(true, 16, 0x4000);
    assert_eq!(reservation(&mut p0, XENMEM_INCREASE_RESERVATION, &[], 2, 0, 3), err(Errno::ESRCH), "no dom3");
}

#[test]
fn decrease_takes_back_only_the_domains_frames() {
    let mut p = FakePlatform::new_with_mm(false, 16, 0x4000);
    let mine = p.env().give(3);
    let l = [mine[0], mine[1], 2, mine[2]];
    assert_eq!(reservation(&mut p, XENMEM_DECREASE_RESERVATION, &l, 4, 0, DOMID_SELF), 2, "stops at a frame not ours");
    assert_eq!(p.env().page(mine[0]).owner(), None);
    assert!(p.env().mach.free.contains(&mine[1]));
    assert_eq!(p.env().page(mine[2]).owner(), Some(1));
    assert_eq!(p.env().dom.tot_pages(), 1);
    p.env().check_invariants();
}

#[test]
fn populate_maps_pfns_to_new_frames() {
    let mut p = FakePlatform::new_with_mm(false, 16, 0x4000);
    assert_eq!(reservation(&mut p, XENMEM_POPULATE_PHYSMAP, &[10, 11, 12], 3, 0, DOMID_SELF), 3);
    let got = list(&p, 3);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(p.env().mach.m2p.get(m), Some(&(10 + i as u64)));
    }
    assert_eq!(reservation(&mut p, XENMEM_DECREASE_RESERVATION, &got, 3, 0, DOMID_SELF), 3);
    assert_eq!(p.env().mach.m2p.get(&got[0]), Some(&INVALID_M2P_ENTRY));
    p.env().check_invariants();
}

#[test]
fn long_reservations_continue_with_the_start_extent_in_cmd() {
    let mut p = FakePlatform::new_with_mm(false, 64, 0x4000);
    p.chunk = 16;
    let r = reservation(&mut p, XENMEM_INCREASE_RESERVATION, &[0; 40], 40, 0, DOMID_SELF);
    assert_eq!(r, Hypercall::MemoryOp as i64);
    let (nr, args) = p.continuations.pop().unwrap();
    assert_eq!((nr, args[0], args[1]), (Hypercall::MemoryOp as u64, u64::from(XENMEM_INCREASE_RESERVATION) | (16 << MEMOP_EXTENT_SHIFT), BASE + ARG));
    assert_eq!(dispatch(&mut p, nr, args), Hypercall::MemoryOp as i64);
    let (nr, args) = p.continuations.pop().unwrap();
    assert_eq!(args[0] >> MEMOP_EXTENT_SHIFT, 32);
    assert_eq!(dispatch(&mut p, nr, args), 40, "the answer counts every extent");
    assert!(p.continuations.is_empty());
    let got = list(&p, 40);
    assert!(got.iter().all(|&m| m != 0 && p.env().page(m).owner() == Some(1)));
    assert_eq!(p.env().dom.tot_pages(), 40);
}

#[test]
fn queries_and_the_memory_map() {
    let mut p = FakePlatform::new_with_mm(false, 300, 0x4000);
    assert_eq!(mem_op(&mut p, XENMEM_MAXIMUM_RAM_PAGE.into(), 0), NR_FRAMES as i64);
    assert_eq!(mem_op(&mut p, u64::from(XENMEM_MAXIMUM_RAM_PAGE) | 1 << MEMOP_EXTENT_SHIFT, 0), err(Errno::EINVAL));
    put(&mut p, ARG, &XenMemoryDomain { domid: 0 });
    assert_eq!(mem_op(&mut p, XENMEM_CURRENT_RESERVATION.into(), BASE + ARG), err(Errno::EPERM));
    put(&mut p, ARG, &XenMemoryDomain { domid: 1 });
    assert_eq!(mem_op(&mut p, XENMEM_MAXIMUM_RESERVATION.into(), BASE + ARG), 300);
    assert_eq!(mem_op(&mut p, XENMEM_MAXIMUM_RESERVATION.into(), 0x10), err(Errno::EFAULT));

    put(&mut p, ARG, &XenMemoryMap { nr_entries: 4, _pad: 0, buffer: BASE + LIST });
    assert_eq!(mem_op(&mut p, XENMEM_MEMORY_MAP.into(), BASE + ARG), 0);
    assert_eq!(get::<XenMemoryMap>(&p, ARG).nr_entries, 1);
    let e: E820Entry = get(&p, LIST);
    assert_eq!({ e.addr }, 0);
    assert_eq!({ e.size }, 300 * 4096);
    assert_eq!({ e.kind }, E820_RAM);
    put(&mut p, ARG, &XenMemoryMap { nr_entries: 0, _pad: 0, buffer: BASE + LIST });
    assert_eq!(mem_op(&mut p, XENMEM_MEMORY_MAP.into(), BASE + ARG), 0);
    assert_eq!(get::<XenMemoryMap>(&p, ARG).nr_entries, 0);
    put(&mut p, ARG, &XenMemoryMap { nr_entries: 1, _pad: 0, buffer: 0x10 });
    assert_eq!(mem_op(&mut p, XENMEM_MEMORY_MAP.into(), BASE + ARG), err(Errno::EFAULT));

    assert_eq!(mem_op(&mut p, XENMEM_MACHPHYS_MAPPING.into(), BASE + ARG), 0);
    let m: XenMachphysMapping = get(&p, ARG);
    assert_eq!((m.v_start, m.max_mfn), (MACH2PHYS_VIRT_START, NR_FRAMES - 1));

    assert_eq!(mem_op(&mut p, 63, BASE + ARG), err(Errno::ENOSYS));
}

#[test]
fn dom0_populates_and_decreases_a_domain_it_builds() {
    let mut p = FakePlatform::new_with_mm(true, 16, 0x4000);
    let g = p.env().add_domain(false, 4);
    assert_eq!(reservation(&mut p, XENMEM_POPULATE_PHYSMAP, &[10, 11, 12, 13, 14], 5, 0, g), 4, "the target's max_pages");
    let got = list(&p, 4);
    let env = p.env();
    for (i, m) in got.iter().enumerate() {
        assert_eq!(env.page(*m).owner(), Some(g));
        assert_eq!(env.mach.m2p.get(m), Some(&(10 + i as u64)));
    }
    assert_eq!((env.dom_of(g).unwrap().tot_pages(), env.dom.tot_pages()), (4, 0));
    env.check_invariants();
    put(&mut p, ARG, &XenMemoryDomain { domid: g });
    assert_eq!(mem_op(&mut p, XENMEM_CURRENT_RESERVATION.into(), BASE + ARG), 4);
    assert_eq!(mem_op(&mut p, XENMEM_MAXIMUM_RESERVATION.into(), BASE + ARG), 4);
    // Decrease names the target's frames; dom0's own are not the target's.
    let own = p.env().give(1)[0];
    assert_eq!(reservation(&mut p, XENMEM_DECREASE_RESERVATION, &[got[0], own, got[1]], 3, 0, g), 1);
    assert_eq!(p.env().dom_of(g).unwrap().tot_pages(), 3);
    assert_eq!(p.env().dom_of(g).unwrap().released(), 1);
    assert_eq!(p.env().page(own).owner(), Some(0));
    assert_eq!(reservation(&mut p, XENMEM_INCREASE_RESERVATION, &[0; 2], 2, 0, g), 1);
    p.env().check_invariants();
    // Nobody else's, nobody's that is not there.
    assert_eq!(reservation(&mut p, XENMEM_POPULATE_PHYSMAP, &[1], 1, 0, 9), err(Errno::ESRCH));
    put(&mut p, ARG, &XenMemoryDomain { domid: 9 });
    assert_eq!(mem_op(&mut p, XENMEM_CURRENT_RESERVATION.into(), BASE + ARG), err(Errno::ESRCH));
    p.env().destroy(g);
    assert_eq!(reservation(&mut p, XENMEM_POPULATE_PHYSMAP, &[1], 1, 0, g), err(Errno::ESRCH), "gone");
    // An unprivileged caller naming a domain that exists.
    let mut u = FakePlatform::new_with_mm(false, 16, 0x4000);
    let other = u.env().add_domain(false, 4);
    assert_eq!(reservation(&mut u, XENMEM_POPULATE_PHYSMAP, &[1], 1, 0, other), err(Errno::EPERM));
    put(&mut u, ARG, &XenMemoryDomain { domid: other });
    assert_eq!(mem_op(&mut u, XENMEM_MAXIMUM_RESERVATION.into(), BASE + ARG), err(Errno::EPERM));
    assert_eq!(u.env().dom_of(other).unwrap().tot_pages(), 0);
}

/// `XENMEM_exchange` argument at `ARG`: `ins` at `LIST`, `outs` (pfns) at `LIST2`.
const LIST2: u64 = 0x1800;

fn exchange(p: &mut FakePlatform, ins: &[u64], outs: &[u64], done: u64, orders: (u32, u32), domids: (u16, u16)) -> i64 {
    put(p, LIST, ins);
    put(p, LIST2, outs);
    let res = |list: u64, n: usize, order: u32, domid: u16| XenMemoryReservation {
        extent_start: BASE + list,
        nr_extents: n as u64,
        extent_order: order,
        mem_flags: 0,
        domid,
        _pad: [0; 3],
    };
    put(p, ARG, &res(LIST, ins.len(), orders.0, domids.0));
    put(p, ARG + 32, &res(LIST2, outs.len(), orders.1, domids.1));
    put(p, ARG + 64, &done);
    mem_op(p, XENMEM_EXCHANGE.into(), BASE + ARG)
}

#[test]
fn exchange_gives_up_unreferenced_frames_for_new_ones() {
    let mut p = FakePlatform::new_with_mm(false, 16, 0x4000);
    assert_eq!(reservation(&mut p, XENMEM_POPULATE_PHYSMAP, &[1, 2, 3], 3, 0, DOMID_SELF), 3);
    let old = list(&p, 3);
    assert_eq!(exchange(&mut p, &old, &[7, 8, 9], 0, (0, 0), (DOMID_SELF, DOMID_SELF)), 0);
    let new: Vec<u64> = (0..3).map(|i| get::<u64>(&p, LIST2 + 8 * i)).collect();
    assert_eq!(get::<u64>(&p, ARG + 64), 3, "nr_exchanged");
    for (i, m) in new.iter().enumerate() {
        assert_eq!(p.env().mach.m2p.get(m), Some(&(7 + i as u64)));
        assert_eq!(p.env().page(*m).owner(), Some(1));
    }
    // (A frame given up may come straight back as a new one.)
    for m in old.iter().filter(|m| !new.contains(m)) {
        assert_eq!(p.env().mach.m2p.get(m), Some(&INVALID_M2P_ENTRY));
        assert_eq!(p.env().page(*m).owner(), None, "given back");
    }
    assert_eq!(p.env().dom.tot_pages(), 3);
    p.env().check_invariants();
    // Done already: nothing more; mismatched lists, orders or domains: EINVAL, untouched.
    assert_eq!(exchange(&mut p, &new, &[7, 8, 9], 3, (0, 0), (DOMID_SELF, DOMID_SELF)), 0);
    for (ins, outs, done, orders, domids) in [
        (&new[..], &[1u64, 2][..], 0, (0, 0), (DOMID_SELF, DOMID_SELF)),
        (&new[..], &[1, 2, 3][..], 4, (0, 0), (DOMID_SELF, DOMID_SELF)),
        (&new[..], &[1, 2, 3][..], 0, (0, 1), (DOMID_SELF, DOMID_SELF)),
        (&new[..], &[1, 2, 3][..], 0, (0, 0), (DOMID_SELF, 0)),
    ] {
        assert_eq!(exchange(&mut p, ins, outs, done, orders, domids), err(Errno::EINVAL));
    }
    // A frame that is still referenced elsewhere (here: pinned as a table) or not ours:
    // EINVAL, with the progress before it counted.
    let pinned = new[1];
    p.env().mm().pin(pinned, crate::mm::page_info::Level::L1).unwrap();
    assert_eq!(exchange(&mut p, &[new[0], pinned, new[2]], &[4, 5, 6], 0, (0, 0), (DOMID_SELF, DOMID_SELF)), err(Errno::EINVAL));
    assert_eq!(get::<u64>(&p, ARG + 64), 1, "the first was exchanged");
    assert_eq!(exchange(&mut p, &[0x7_0000], &[4], 0, (0, 0), (DOMID_SELF, DOMID_SELF)), err(Errno::EINVAL));
    p.env().check_invariants();
    // An unreadable list: EFAULT before any work.
    exchange(&mut p, &[new[2]], &[4], 0, (0, 0), (DOMID_SELF, DOMID_SELF));
    put(&mut p, ARG, &0xffff_8300_0000_0000u64);
    put(&mut p, ARG + 64, &0u64);
    assert_eq!(mem_op(&mut p, XENMEM_EXCHANGE.into(), BASE + ARG), err(Errno::EFAULT));
    assert_eq!(get::<u64>(&p, ARG + 64), 0);
}

#[test]
fn long_exchanges_continue_with_their_progress_in_the_argument() {
    let mut p = FakePlatform::new_with_mm(false, 64, 0x4000);
    let pfns: Vec<u64> = (0..40).collect();
    assert_eq!(reservation(&mut p, XENMEM_POPULATE_PHYSMAP, &pfns, 40, 0, DOMID_SELF), 40);
    let old = list(&p, 40);
    p.chunk = 16;
    assert_eq!(exchange(&mut p, &old, &pfns, 0, (0, 0), (DOMID_SELF, DOMID_SELF)), Hypercall::MemoryOp as i64);
    assert_eq!(get::<u64>(&p, ARG + 64), 16);
    let (nr, args) = p.continuations.pop().unwrap();
    assert_eq!(dispatch(&mut p, nr, args), Hypercall::MemoryOp as i64);
    let (nr, args) = p.continuations.pop().unwrap();
    assert_eq!(dispatch(&mut p, nr, args), 0);
    assert_eq!(get::<u64>(&p, ARG + 64), 40);
    assert_eq!(p.env().dom.tot_pages(), 40);
    p.env().check_invariants();
}

#[test]
fn extents_of_higher_order_are_machine_contiguous() {
    let mut p = FakePlatform::new_with_mm(false, 64, 0x4000);
    // Two extents of 8 frames at pfns 0x10 and 0x20.
    assert_eq!(reservation(&mut p, XENMEM_POPULATE_PHYSMAP, &[0x10, 0x20], 2, 3, DOMID_SELF), 2);
    let firsts = list(&p, 2);
    for (&first, pfn) in firsts.iter().zip([0x10u64, 0x20]) {
        assert_eq!(first % 8, 0, "aligned to its size");
        for k in 0..8 {
            assert_eq!(p.env().page(first + k).owner(), Some(1));
            assert_eq!(p.env().mach.m2p.get(&(first + k)), Some(&(pfn + k)));
        }
    }
    assert_eq!(p.env().dom.tot_pages(), 16);
    // Past max_pages with a whole extent: stops there.
    assert_eq!(reservation(&mut p, XENMEM_INCREASE_RESERVATION, &[0; 8], 8, 5, DOMID_SELF), 1, "32 fit, 64 do not");
    assert_eq!(p.env().dom.tot_pages(), 48);
    // Decrease of an extent: all its frames or none.
    let top = (0..NR_FRAMES).filter(|&m| p.env().page(m).owner() == Some(1)).max().unwrap();
    let bad = top - 3;
    assert_eq!(reservation(&mut p, XENMEM_DECREASE_RESERVATION, &[bad], 1, 3, DOMID_SELF), 0, "frames past the extent are not ours");
    assert_eq!(p.env().dom.tot_pages(), 48);
    assert_eq!(reservation(&mut p, XENMEM_DECREASE_RESERVATION, &[firsts[1]], 1, 3, DOMID_SELF), 1);
    assert_eq!(p.env().dom.tot_pages(), 40);
    assert_eq!(p.env().page(firsts[1] + 7).owner(), None);
    p.env().check_invariants();
}

#[test]
fn exchange_of_single_pages_for_a_contiguous_extent_and_back() {
    let mut p = FakePlatform::new_with_mm(false, 64, 0x4000);
    let pfns: Vec<u64> = (0..8).collect();
    assert_eq!(reservation(&mut p, XENMEM_POPULATE_PHYSMAP, &pfns, 8, 0, DOMID_SELF), 8);
    let singles = list(&p, 8);
    // Eight order-0 extents for one order-3 extent taking pfns 0..8 (Linux's
    // xen_create_contiguous_region).
    assert_eq!(exchange(&mut p, &singles, &[0], 0, (0, 3), (DOMID_SELF, DOMID_SELF)), 0);
    assert_eq!(get::<u64>(&p, ARG + 64), 8, "nr_exchanged counts the in extents");
    let first: u64 = get(&p, LIST2);
    assert_eq!(first % 8, 0);
    for k in 0..8 {
        assert_eq!(p.env().page(first + k).owner(), Some(1));
        assert_eq!(p.env().mach.m2p.get(&(first + k)), Some(&k));
    }
    assert_eq!(p.env().dom.tot_pages(), 8);
    // And back: one order-3 extent for eight single pages at pfns 8..16.
    let pfns2: Vec<u64> = (8..16).collect();
    assert_eq!(exchange(&mut p, &[first], &pfns2, 0, (3, 0), (DOMID_SELF, DOMID_SELF)), 0);
    assert_eq!(get::<u64>(&p, ARG + 64), 1);
    for i in 0..8u64 {
        let m: u64 = get(&p, LIST2 + 8 * i);
        assert_eq!(p.env().mach.m2p.get(&m), Some(&(8 + i)));
    }
    assert_eq!(p.env().dom.tot_pages(), 8);
    p.env().check_invariants();
    // Orders past a domU's max_order: EPERM. The same frame twice in a chunk: EINVAL, and
    // nothing changed.
    let now: Vec<u64> = (0..8).map(|i| get::<u64>(&p, LIST2 + 8 * i)).collect();
    assert_eq!(exchange(&mut p, &[now[0]], &[0], 0, (10, 10), (DOMID_SELF, DOMID_SELF)), err(Errno::EPERM));
    let twice = [now[0], now[0], now[1], now[2], now[3], now[4], now[5], now[6]];
    assert_eq!(exchange(&mut p, &twice, &[0], 0, (0, 3), (DOMID_SELF, DOMID_SELF)), err(Errno::EINVAL));
    assert_eq!(get::<u64>(&p, ARG + 64), 0);
    for &m in &now {
        assert_eq!(p.env().page(m).owner(), Some(1), "untouched");
    }
    // A size mismatch: 8 frames in, 16 out.
    assert_eq!(exchange(&mut p, &now, &[0], 0, (0, 4), (DOMID_SELF, DOMID_SELF)), err(Errno::EINVAL));
    p.env().check_invariants();
}
