//! Host tests of the page-table hypercalls through the fake platform: guest pointers,
//! done counts, stop-at-first-error, foreign domains, flush flags and continuations.
extern crate std;

use super::super::dispatch;
use super::super::fake::{FakePlatform, BASE};
use crate::mm::fake::{pte_for, RO, RW};
use crate::mm::page_info::{Level, PageType};
use hypercall_abi::arch::VMASST_TYPE_M2P_STRICT;
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::Hypercall;
use hypercall_abi::mmu::*;
use hypercall_abi::types::DOMID_SELF;
use std::vec::Vec;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Offsets in guest memory.
const REQS: u64 = 0x1000;
const PDONE: u64 = 0x10;
const MASK: u64 = 0x20;

pub(crate) fn put<T: IntoBytes + Immutable + ?Sized>(p: &mut FakePlatform, off: u64, v: &T) {
    let b = v.as_bytes();
    p.mem[off as usize..off as usize + b.len()].copy_from_slice(b);
}

pub(crate) fn get<T: FromBytes>(p: &FakePlatform, off: u64) -> T {
    T::read_from_prefix(&p.mem[off as usize..]).unwrap().0
}

fn err(e: Errno) -> i64 {
    e.to_ret()
}

/// A platform (unprivileged unless asked) whose domain has a validated tree through its
/// kernel base pointer mapping two data frames; returns it and [l4, l3, l2, l1], data.
fn with_tree(privileged: bool) -> (FakePlatform, [u64; 4], Vec<u64>) {
    let mut p = FakePlatform::new_with_mm(privileged, 64, 0x40000);
    let env = p.env();
    let data = env.give(2);
    let t = env.build_tree(&data);
    env.mm().new_baseptr(t[0]).unwrap();
    (p, t, data)
}

fn entry(mfn: u64, i: usize) -> u64 {
    (mfn << 12) | (i as u64 * 8)
}

fn pt_update(p: &mut FakePlatform, reqs: &[MmuUpdate], foreigndom: u64) -> (i64, u32) {
    put(p, REQS, reqs);
    put(p, PDONE, &0xffff_u32);
    let r = dispatch(p, Hypercall::PtUpdate as u64, [BASE + REQS, reqs.len() as u64, BASE + PDONE, foreigndom, 0]);
    (r, get(p, PDONE))
}

fn mmuext(p: &mut FakePlatform, ops: &[MmuextOp]) -> (i64, u32) {
    put(p, REQS, ops);
    put(p, PDONE, &0xffff_u32);
    let r = dispatch(p, Hypercall::MmuextOp as u64, [BASE + REQS, ops.len() as u64, BASE + PDONE, DOMID_SELF.into(), 0]);
    (r, get(p, PDONE))
}

fn op(cmd: u32, arg1: u64, arg2: u64) -> MmuextOp {
    MmuextOp { cmd, _pad: 0, arg1, arg2 }
}

#[test]
fn a_batch_stops_at_the_first_bad_request() {
    let (mut p, [_, _, l2, l1], data) = with_tree(false);
    let reqs = [
        MmuUpdate { ptr: entry(l1, 5), val: pte_for(data[1], RO) },
        MmuUpdate { ptr: entry(l1, 6), val: pte_for(l2, RW) },
        MmuUpdate { ptr: entry(l1, 7), val: pte_for(data[0], RO) },
    ];
    assert_eq!(pt_update(&mut p, &reqs, DOMID_SELF.into()), (err(Errno::EBUSY), 1));
    let env = p.env();
    assert_eq!(env.peek(l1, 5), pte_for(data[1], RO), "the first request stays applied");
    assert_eq!((env.peek(l1, 6), env.peek(l1, 7)), (0, 0), "the bad one and the one after: not");
    env.check_invariants();
    // An empty batch does nothing and says so.
    assert_eq!(pt_update(&mut p, &[], DOMID_SELF.into()), (0, 0));
    // A null done pointer is allowed.
    put(&mut p, REQS, &reqs[..1]);
    assert_eq!(dispatch(&mut p, 1, [BASE + REQS, 1, 0, DOMID_SELF.into(), 0]), 0);
}

#[test]
fn bad_guest_pointers_are_efault_and_the_readable_part_is_done() {
    let (mut p, [.., l1], data) = with_tree(false);
    let len = p.mem.len() as u64;
    // Wholly outside guest memory, in the hypervisor's slice, or wrapping.
    for reqs in [0x1000, 0xffff_8000_0000_0000, u64::MAX - 8] {
        assert_eq!(dispatch(&mut p, 1, [reqs, 2, BASE + PDONE, DOMID_SELF.into(), 0]), err(Errno::EFAULT));
    }
    // The first request readable, the second past the end: the first is done.
    let at = len - 16;
    put(&mut p, at, &MmuUpdate { ptr: entry(l1, 9), val: pte_for(data[0], RO) });
    put(&mut p, PDONE, &0u32);
    assert_eq!(dispatch(&mut p, 1, [BASE + at, 2, BASE + PDONE, DOMID_SELF.into(), 0]), err(Errno::EFAULT));
    assert_eq!(get::<u32>(&p, PDONE), 1);
    assert_eq!(p.env().peek(l1, 9), pte_for(data[0], RO));
    // An unwritable done pointer does not undo the work (Xen ignores that write too).
    put(&mut p, REQS, &[MmuUpdate { ptr: entry(l1, 10), val: pte_for(data[0], RO) }]);
    assert_eq!(dispatch(&mut p, 1, [BASE + REQS, 1, 0x10, DOMID_SELF.into(), 0]), 0);
    assert_eq!(p.env().peek(l1, 10), pte_for(data[0], RO));
}

#[test]
fn unknown_commands_and_misaligned_pointers_are_enosys() {
    let (mut p, [.., l1], data) = with_tree(false);
    for low in [3u64, 4, 5, 6, 7] {
        let r = pt_update(&mut p, &[MmuUpdate { ptr: entry(l1, 3) | low, val: pte_for(data[0], RO) }], DOMID_SELF.into());
        assert_eq!(r, (err(Errno::ENOSYS), 0), "ptr low bits {low}");
    }
    assert_eq!(p.env().peek(l1, 3), 0);
    // PRESERVE_AD (2) and MACHPHYS (1) are commands.
    assert_eq!(pt_update(&mut p, &[MmuUpdate { ptr: entry(l1, 3) | 2, val: pte_for(data[0], RO) }], DOMID_SELF.into()).0, 0);
    assert_eq!(pt_update(&mut p, &[MmuUpdate { ptr: (data[0] << 12) | 1, val: 42 }], DOMID_SELF.into()), (0, 1));
    assert_eq!(p.env().mach.m2p.get(&data[0]), Some(&42));
    assert_eq!(pt_update(&mut p, &[MmuUpdate { ptr: (3 << 12) | 1, val: 42 }], DOMID_SELF.into()), (err(Errno::EINVAL), 0));
}

#[test]
fn foreign_domains_need_privilege_and_do_not_exist() {
    let (mut p, [.., l1], data) = with_tree(false);
    let req = [MmuUpdate { ptr: entry(l1, 3), val: pte_for(data[0], RO) }];
    assert_eq!(pt_update(&mut p, &req, 0).0, err(Errno::EPERM), "dom0's frames, unprivileged");
    assert_eq!(pt_update(&mut p, &req, 1 | (6 << 16)).0, err(Errno::EPERM), "dom5's tables");
    assert_eq!(pt_update(&mut p, &req, 1 | (2 << 16)).0, 0, "own id in both halves");
    assert_eq!(mmuext(&mut p, &[op(MMUEXT_TLB_FLUSH_LOCAL, 0, 0)]).0, 0);
    let r = dispatch(&mut p, Hypercall::MmuextOp as u64, [BASE + REQS, 1, 0, 0, 0]);
    assert_eq!(r, err(Errno::EPERM));
    let (mut p, [.., l1], data) = with_tree(true);
    let req = [MmuUpdate { ptr: entry(l1, 3), val: pte_for(data[0], RO) }];
    assert_eq!(pt_update(&mut p, &req, 5).0, err(Errno::ESRCH), "no domain 5");
    assert_eq!(pt_update(&mut p, &req, u64::from(DOMID_SELF) | (8 << 16)).0, err(Errno::ESRCH));
    assert_eq!(pt_update(&mut p, &req, 0).0, 0, "dom0 naming itself");
}

/// dom0 with a validated tree (see [`with_tree`]) and domain 1 (unprivileged) with `n`
/// frames; returns the platform, dom0's L1 and domain 1's frames.
fn dom0_building(n: usize) -> (FakePlatform, u64, Vec<u64>) {
    let (mut p, [.., l1], _) = with_tree(true);
    let env = p.env();
    let g = env.add_domain(false, 32);
    assert_eq!(g, 1);
    let frames = env.give_to(g, n);
    (p, l1, frames)
}

#[test]
fn dom0_maps_the_frames_of_a_domain_it_builds() {
    let (mut p, l1, g) = dom0_building(3);
    let dom0_before = p.env().dom.clone();
    let reqs = [
        MmuUpdate { ptr: entry(l1, 5), val: pte_for(g[0], RW) },
        MmuUpdate { ptr: entry(l1, 6), val: pte_for(g[1], RO) },
        MmuUpdate { ptr: (g[2] << 12) | MMU_MACHPHYS_UPDATE, val: 42 },
    ];
    assert_eq!(pt_update(&mut p, &reqs, 1), (0, 3));
    let env = p.env();
    assert_eq!((env.page(g[0]).owner(), env.page(g[0]).count(), env.page(g[0]).page_type()), (Some(1), 2, PageType::Writable));
    assert_eq!((env.page(g[1]).count(), env.page(g[1]).type_count()), (2, 0));
    assert_eq!(env.mach.m2p.get(&g[2]), Some(&42));
    assert_eq!(env.dom, dom0_before, "nothing charged to dom0");
    env.check_invariants();
    // Under a page owner, dom0's own frames are not to be had: the batch stops there.
    let own = p.env().give(1)[0];
    let reqs = [
        MmuUpdate { ptr: entry(l1, 7), val: pte_for(g[2], RO) },
        MmuUpdate { ptr: entry(l1, 8), val: pte_for(own, RW) },
    ];
    assert_eq!(pt_update(&mut p, &reqs, 1), (err(Errno::EBUSY), 1));
    // The owner's page table is never writable in dom0.
    p.env().mm_of(1).pin(g[2], Level::L1).unwrap();
    let rw = [MmuUpdate { ptr: entry(l1, 9), val: pte_for(g[2], RW) }];
    assert_eq!(pt_update(&mut p, &rw, 1), (err(Errno::EBUSY), 0));
    // Unmapping needs no page owner.
    let unmap: Vec<MmuUpdate> = (5..=7).map(|i| MmuUpdate { ptr: entry(l1, i), val: 0 }).collect();
    assert_eq!(pt_update(&mut p, &unmap, DOMID_SELF.into()), (0, 3));
    assert_eq!(p.env().page(g[0]).count(), 1);
    p.env().check_invariants();
}

#[test]
fn who_may_be_named_as_page_owner() {
    let (mut p, l1, g) = dom0_building(1);
    let req = [MmuUpdate { ptr: entry(l1, 3), val: pte_for(g[0], RO) }];
    let other_dom0 = p.env().add_domain(true, 8);
    let before = p.env().snapshot();
    assert_eq!(pt_update(&mut p, &req, other_dom0.into()).0, err(Errno::EINVAL), "a privileged page owner");
    assert_eq!(pt_update(&mut p, &req, 9).0, err(Errno::ESRCH), "no domain 9");
    assert_eq!(pt_update(&mut p, &req, 1 | (2 << 16)).0, err(Errno::EINVAL), "domain 1's tables");
    assert_eq!(pt_update(&mut p, &req, 1 | (10 << 16)).0, err(Errno::ESRCH), "domain 9's tables");
    // mmuext_op acts on the caller's own tables only.
    put(&mut p, REQS, &[op(MMUEXT_PIN_L1_TABLE, g[0], 0)]);
    assert_eq!(dispatch(&mut p, Hypercall::MmuextOp as u64, [BASE + REQS, 1, 0, 1, 0]), err(Errno::EINVAL));
    assert_eq!(dispatch(&mut p, Hypercall::MmuextOp as u64, [BASE + REQS, 1, 0, 9, 0]), err(Errno::ESRCH));
    assert!(p.env().snapshot() == before, "the refusals changed nothing");
    // A dying domain cannot be named any more.
    let mapped = [MmuUpdate { ptr: entry(l1, 4), val: pte_for(g[0], RO) }];
    assert_eq!(pt_update(&mut p, &mapped, 1), (0, 1));
    let r = p.env().destroy(1);
    assert_eq!(r.held, 1);
    assert_eq!(pt_update(&mut p, &req, 1).0, err(Errno::ESRCH), "dying");
    // dom0's unmap is the last reference: the frame goes back, charged to domain 1, which
    // is then gone.
    assert_eq!(pt_update(&mut p, &[MmuUpdate { ptr: entry(l1, 4), val: 0 }], DOMID_SELF.into()), (0, 1));
    let env = p.env();
    assert!(env.dom_of(1).is_none() && env.mach.free.contains(&g[0]));
    assert_eq!(env.gone.last().map(|d| (d.id(), d.released(), d.tot_pages())), Some((1, 1, 0)));
    env.check_invariants();
    // An unprivileged caller naming a domain that exists: EPERM, and nothing changes.
    let (mut p, [.., l1], _) = with_tree(false);
    let d0 = p.env().add_domain(false, 8);
    let f = p.env().give_to(d0, 1)[0];
    let before_u = p.env().snapshot();
    let req = [MmuUpdate { ptr: entry(l1, 3), val: pte_for(f, RO) }];
    assert_eq!(pt_update(&mut p, &req, d0.into()).0, err(Errno::EPERM));
    put(&mut p, REQS, &[op(MMUEXT_TLB_FLUSH_LOCAL, 0, 0)]);
    assert_eq!(dispatch(&mut p, Hypercall::MmuextOp as u64, [BASE + REQS, 1, 0, d0.into(), 0]), err(Errno::EPERM));
    assert!(p.env().snapshot() == before_u);
}

#[test]
fn upper_level_updates_flush_the_tlb() {
    let (mut p, [l4, _, _, l1], data) = with_tree(false);
    let flushes = p.env().mach.flushes;
    assert_eq!(pt_update(&mut p, &[MmuUpdate { ptr: entry(l1, 9), val: pte_for(data[0], RO) }], DOMID_SELF.into()).0, 0);
    assert_eq!(p.env().mach.flushes, flushes, "an L1 change is the guest's to flush");
    assert_eq!(pt_update(&mut p, &[MmuUpdate { ptr: entry(l4, 9), val: pte_for(l4, RO) }], DOMID_SELF.into()).0, 0);
    assert_eq!(p.env().mach.flushes, flushes + 1);
}

/// Drives a hypercall to completion through its continuations; returns (result, calls).
fn run_to_end(p: &mut FakePlatform, nr: Hypercall, mut args: [u64; 5]) -> (i64, usize) {
    let mut calls = 0;
    loop {
        calls += 1;
        let r = dispatch(p, nr as u64, args);
        match p.continuations.pop() {
            Some((n, next)) => {
                assert_eq!((r, n), (nr as i64, nr as u64), "a continuation returns the hypercall number");
                args = next;
            }
            None => return (r, calls),
        }
        assert!(calls < 100);
    }
}

/// 5000 requests over two L1s: map, remap, unmap entries in turn.
fn long_batch(l1s: [u64; 2], data: &[u64]) -> Vec<MmuUpdate> {
    (0..5000)
        .map(|i| {
            let l1 = l1s[i % 2];
            let idx = (i * 7) % 512;
            let val = match i % 3 {
                0 => pte_for(data[i % data.len()], RW),
                1 => pte_for(data[(i + 1) % data.len()], RO),
                _ => 0,
            };
            MmuUpdate { ptr: entry(l1, idx), val }
        })
        .collect()
}

fn batch_platform() -> (FakePlatform, [u64; 2], Vec<u64>) {
    let mut p = FakePlatform::new_with_mm(false, 64, 0x40000);
    let env = p.env();
    let l1s = env.give(2);
    let data = env.give(5);
    env.mm().pin(l1s[0], Level::L1).unwrap();
    env.mm().pin(l1s[1], Level::L1).unwrap();
    (p, [l1s[0], l1s[1]], data)
}

#[test]
fn a_long_batch_continues_itself_and_ends_in_the_same_state() {
    let (mut once, l1s, data) = batch_platform();
    let reqs = long_batch(l1s, &data);
    put(&mut once, REQS, &reqs[..]);
    let args = [BASE + REQS, 5000, BASE + PDONE, DOMID_SELF.into(), 0];
    assert_eq!(run_to_end(&mut once, Hypercall::PtUpdate, args), (0, 1));
    assert_eq!(get::<u32>(&once, PDONE), 5000);

    let (mut chunked, l1s2, data2) = batch_platform();
    assert_eq!((l1s2, &data2), (l1s, &data));
    chunked.chunk = 1024;
    put(&mut chunked, REQS, &reqs[..]);
    put(&mut chunked, PDONE, &0u32);
    assert_eq!(run_to_end(&mut chunked, Hypercall::PtUpdate, args), (0, 5));
    assert_eq!(get::<u32>(&chunked, PDONE), 5000);
    assert!(chunked.env().snapshot() == once.env().snapshot(), "{}", once.env().snapshot().diff(&chunked.env().snapshot()));
    chunked.env().check_invariants();

    // A bad request at 3000: the continuations carry the count to it.
    let (mut bad, l1s3, data3) = batch_platform();
    let mut reqs = long_batch(l1s3, &data3);
    reqs[3000] = MmuUpdate { ptr: entry(l1s3[0], 1), val: pte_for(l1s3[1], RW) };
    bad.chunk = 1024;
    put(&mut bad, REQS, &reqs[..]);
    let (r, calls) = run_to_end(&mut bad, Hypercall::PtUpdate, args);
    assert_eq!((r, calls, get::<u32>(&bad, PDONE)), (err(Errno::EBUSY), 3, 3000));
}

#[test]
fn mmuext_ops_do_what_they_say() {
    let (mut p, [l4, l3, _, l1], data) = with_tree(false);
    let spare = p.env().give(1)[0];
    let ops = [
        op(MMUEXT_PIN_L4_TABLE, l4, 0),
        op(MMUEXT_PIN_L1_TABLE, spare, 0),
        op(MMUEXT_UNPIN_TABLE, spare, 0),
        op(MMUEXT_TLB_FLUSH_LOCAL, 0, 0),
        op(MMUEXT_TLB_FLUSH_ALL, 0, 0),
        op(MMUEXT_INVLPG_LOCAL, 0x5000, 0),
        op(MMUEXT_INVLPG_ALL, 0xffff_8000_0000_1000, 0),
        op(MMUEXT_SET_LDT, 0, 0),
        op(MMUEXT_CLEAR_PAGE, data[0], 0),
        op(MMUEXT_COPY_PAGE, data[1], l1),
        op(MMUEXT_NEW_USER_BASEPTR, spare, 0),
        op(MMUEXT_NEW_USER_BASEPTR, 0, 0),
    ];
    let flushes = p.env().mach.flushes;
    assert_eq!(mmuext(&mut p, &ops), (0, ops.len() as u32));
    let env = p.env();
    assert!(env.page(l4).is_pinned());
    assert_eq!(env.page(spare).page_type(), PageType::None);
    assert_eq!(
        env.mach.guest_flushes,
        [(None, 1), (None, u64::MAX), (Some(0x5000), 1)],
        "local flushes are the caller's (vCPU 0), _ALL every vCPU's; the hypervisor's addresses are not the guest's to flush"
    );
    // A flush a guest asks for reaches only its own CPUs, so it is no clean point: the
    // spare frame, an L1 until its unpin, becomes an L4 (the user base pointer) after a
    // machine-wide flush.
    assert_eq!(env.mach.flushes, flushes + 1);
    assert_eq!(env.peek(data[1], 0), env.peek(l1, 0));
    env.check_invariants();
    assert_eq!(p.ldts, [(0, 0)], "SET_LDT with no entries reaches the machine with base 0");
    assert_eq!(mmuext(&mut p, &[op(MMUEXT_SET_LDT, 0x4000_0000, 8192)]), (0, 1));
    assert_eq!(p.ldts.last(), Some(&(0x4000_0000, 8192)));

    // Refusals, each stopping the batch where it is.
    let cases: [(MmuextOp, Errno); 12] = [
        (op(MMUEXT_PIN_L4_TABLE, l4, 0), Errno::EINVAL),
        (op(MMUEXT_UNPIN_TABLE, l3, 0), Errno::EINVAL),
        (op(MMUEXT_PIN_L2_TABLE, l1, 0), Errno::EINVAL),
        (op(MMUEXT_NEW_BASEPTR, data[0], 0), Errno::EINVAL),
        (op(MMUEXT_SET_LDT, 0x1008, 3), Errno::EINVAL),
        (op(MMUEXT_SET_LDT, 0x1000, 8193), Errno::EINVAL),
        (op(MMUEXT_SET_LDT, 0xffff_8000_0000_0000, 1), Errno::EINVAL),
        (op(MMUEXT_FLUSH_CACHE, 0, 0), Errno::EPERM),
        (op(MMUEXT_FLUSH_CACHE_GLOBAL, 0, 0), Errno::EPERM),
        (op(MMUEXT_MARK_SUPER, data[0], 0), Errno::EOPNOTSUPP),
        (op(MMUEXT_UNMARK_SUPER, data[0], 0), Errno::EOPNOTSUPP),
        (op(14, 0, 0), Errno::ENOSYS),
    ];
    for (bad, e) in cases {
        let ops = [op(MMUEXT_TLB_FLUSH_LOCAL, 0, 0), bad, op(MMUEXT_TLB_FLUSH_LOCAL, 0, 0)];
        assert_eq!(mmuext(&mut p, &ops), (err(e), 1), "{bad:?}");
    }
    assert_eq!(mmuext(&mut p, &[op(99, 0, 0)]), (err(Errno::ENOSYS), 0));
    // A vCPU mask: unreadable is EINVAL; vCPU 0 not in it, no flush.
    assert_eq!(mmuext(&mut p, &[op(MMUEXT_TLB_FLUSH_MULTI, 0, 0x10)]), (err(Errno::EINVAL), 0));
    put(&mut p, MASK, &0u64);
    p.env().mach.guest_flushes.clear();
    assert_eq!(mmuext(&mut p, &[op(MMUEXT_TLB_FLUSH_MULTI, 0, BASE + MASK)]), (0, 1));
    assert_eq!(p.env().mach.guest_flushes, [], "an empty mask flushes nothing");
    put(&mut p, MASK, &0b110u64);
    assert_eq!(mmuext(&mut p, &[op(MMUEXT_TLB_FLUSH_MULTI, 0, BASE + MASK), op(MMUEXT_INVLPG_MULTI, 0x7000, BASE + MASK)]), (0, 2));
    assert_eq!(p.env().mach.guest_flushes, [(None, 0b110), (Some(0x7000), 0b110)], "the vCPUs of the mask, the caller's or not");
    // NEW_BASEPTR loads CR3.
    let next = p.env().give(1)[0];
    assert_eq!(mmuext(&mut p, &[op(MMUEXT_NEW_BASEPTR, next, 0)]), (0, 1));
    assert_eq!(p.env().mach.cr3_loads.last(), Some(&next));
    p.env().check_invariants();
}

#[test]
fn cache_flushes_are_for_the_privileged() {
    let (mut p, ..) = with_tree(true);
    assert_eq!(mmuext(&mut p, &[op(MMUEXT_FLUSH_CACHE, 0, 0), op(MMUEXT_FLUSH_CACHE_GLOBAL, 0, 0)]), (0, 2));
    assert_eq!(p.env().mach.wbinvds, 2);
}

#[test]
fn mmuext_batches_continue_too() {
    let (mut p, ..) = with_tree(false);
    p.chunk = 1024;
    let ops: Vec<MmuextOp> = (0..3000).map(|i| op(MMUEXT_INVLPG_LOCAL, (i as u64) << 12, 0)).collect();
    put(&mut p, REQS, &ops[..]);
    put(&mut p, PDONE, &0u32);
    let args = [BASE + REQS, 3000, BASE + PDONE, DOMID_SELF.into(), 0];
    assert_eq!(run_to_end(&mut p, Hypercall::MmuextOp, args), (0, 3));
    assert_eq!(get::<u32>(&p, PDONE), 3000);
    assert_eq!(p.env().mach.guest_flushes.len(), 3000);
    assert_eq!(p.env().mach.guest_flushes[2999], (Some(2999 << 12), 1));
}

#[test]
fn update_va_mapping_flags() {
    let (mut p, [.., l1], data) = with_tree(false);
    let uvm = |p: &mut FakePlatform, va: u64, val: u64, flags: u64| dispatch(p, Hypercall::UpdateVaMapping as u64, [va, val, flags, 0, 0]);
    assert_eq!(uvm(&mut p, 0x3000, pte_for(data[0], RO), UVMF_NONE), 0);
    assert_eq!(p.env().peek(l1, 3), pte_for(data[0], RO));
    assert_eq!(uvm(&mut p, 0x3000, pte_for(data[1], RO), UVMF_INVLPG | UVMF_LOCAL), 0);
    assert_eq!(p.env().mach.guest_flushes, [(Some(0x3000), 1)], "UVMF_LOCAL: the caller, vCPU 0");
    assert_eq!(uvm(&mut p, 0x3000, 0, UVMF_TLB_FLUSH | UVMF_ALL), 0);
    assert_eq!(p.env().mach.guest_flushes.last(), Some(&(None, u64::MAX)));
    // Flush type 3 is not one: refused before anything changes.
    assert_eq!(uvm(&mut p, 0x3000, pte_for(data[0], RO), 3), err(Errno::EINVAL));
    assert_eq!(p.env().peek(l1, 3), 0);
    // A vCPU bitmap that cannot be read: EFAULT, before anything changes.
    assert_eq!(uvm(&mut p, 0x3000, pte_for(data[0], RO), UVMF_INVLPG | 0x10), err(Errno::EFAULT));
    assert_eq!(p.env().peek(l1, 3), 0);
    put(&mut p, MASK, &2u64);
    assert_eq!(uvm(&mut p, 0x3000, pte_for(data[0], RO), UVMF_INVLPG | (BASE + MASK)), 0);
    assert_eq!(p.env().mach.guest_flushes.last(), Some(&(Some(0x3000), 2)), "a bitmap of vCPUs");
    assert_eq!(uvm(&mut p, 0x3000, pte_for(l1, RW), UVMF_NONE), err(Errno::EBUSY));
    assert_eq!(uvm(&mut p, 0x40_0000, 0, UVMF_NONE), err(Errno::EINVAL), "no L1 there");
    p.env().check_invariants();
}

#[test]
fn vm_assist_records_what_it_honours() {
    let (mut p, ..) = with_tree(false);
    let va = |p: &mut FakePlatform, cmd: u64, kind: u64| dispatch(p, Hypercall::VmAssist as u64, [cmd, kind, 0, 0, 0]);
    assert_eq!(va(&mut p, 0, VMASST_TYPE_M2P_STRICT.into()), 0);
    assert_eq!(p.env().dom.vm_assist(), 1 << 32);
    assert_eq!(va(&mut p, 0, 5), 0);
    assert_eq!(va(&mut p, 1, VMASST_TYPE_M2P_STRICT.into()), 0);
    assert_eq!(p.env().dom.vm_assist(), 1 << 5);
    for kind in [0, 1, 2, 3, 4] {
        assert_eq!(va(&mut p, 0, kind), 0, "type {kind}, as in Xen's PV64_VM_ASSIST_MASK");
    }
    assert_eq!(p.env().dom.vm_assist(), (1 << 5) | 0b11111);
    for kind in [6, 31, 63, 64, 1000] {
        assert_eq!(va(&mut p, 0, kind), err(Errno::EINVAL), "type {kind}");
    }
    assert_eq!(va(&mut p, 7, 5), err(Errno::ENOSYS));
}

#[test]
fn without_direct_paging_state_memory_calls_are_enosys() {
    let mut p = FakePlatform::new(false);
    put(&mut p, REQS, &[MmuUpdate { ptr: 0x5000, val: 0 }]);
    assert_eq!(dispatch(&mut p, 1, [BASE + REQS, 1, 0, DOMID_SELF.into(), 0]), err(Errno::ENOSYS));
    assert_eq!(dispatch(&mut p, 14, [0x1000, 0, 0, 0, 0]), err(Errno::ENOSYS));
}

/// `update_va_mapping_otherdomain`: dom0 maps a frame of the domain it builds at a virtual
/// address of its own; the page-owner rules are `pt_update`'s.
#[test]
fn update_va_mapping_otherdomain_maps_the_page_owner_s_frame() {
    let (mut p, _, g) = dom0_building(1);
    let uvm = |p: &mut FakePlatform, va: u64, val: u64, dom: u64| dispatch(p, Hypercall::UpdateVaMappingOtherdomain as u64, [va, val, 0, dom, 0]);
    assert_eq!(uvm(&mut p, 0x3000, pte_for(g[0], RO), 9), err(Errno::ESRCH), "no domain 9");
    assert_eq!(uvm(&mut p, 0x3000, pte_for(g[0], RO), u64::from(DOMID_SELF)), err(Errno::EBUSY), "not dom0's frame");
    assert_eq!(uvm(&mut p, 0x3000, pte_for(g[0], RO), 1), 0);
    assert_eq!(p.env().page(g[0]).count(), 2, "the mapping holds a reference");
    p.env().check_invariants();
    let (mut q, _, data) = with_tree(false);
    assert_eq!(uvm(&mut q, 0x3000, pte_for(data[0], RO), 0), err(Errno::EPERM), "unprivileged");
}

