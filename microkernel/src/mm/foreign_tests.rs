//! Foreign mappings, rule by rule: a privileged domain's L1 entries mapping the frames of a
//! domain it builds (a page owner), what they hold, what they are refused, and who is
//! charged when such a mapping outlives its frame's owner.
extern crate std;

use super::fake::*;
use super::page_info::{ForeignRelease, Level, PageType};
use super::pt::MmMachine;
use hypercall_abi::errno::Errno;
use hypercall_abi::layout::pte;
use std::vec::Vec;

/// Machine address of entry `i` of frame `mfn`.
fn at(mfn: u64, i: usize) -> u64 {
    (mfn << 12) | (i as u64 * 8)
}

/// dom0 (privileged) with a validated tree through its base pointer mapping one data frame,
/// and domain 1 (unprivileged) with `n` frames. Returns the env, dom0's [l4, l3, l2, l1],
/// and domain 1's frames.
fn dom0_and_guest(n: usize) -> (Env, [u64; 4], Vec<u64>) {
    let mut env = Env::new(true, 64);
    let data = env.give(1);
    let t = env.build_tree(&data);
    env.mm().new_baseptr(t[0]).unwrap();
    let g = env.add_domain(false, 32);
    assert_eq!(g, 1);
    let frames = env.give_to(g, n);
    env.check_invariants();
    (env, t, frames)
}

/// A `pt_update` entry write by dom0 with domain 1 as page owner.
fn map(env: &mut Env, ptr: u64, val: u64) -> Result<(), Errno> {
    env.mm().normal_update_as(ptr, val, false, 1).map(|_| ())
}

/// Runs `f`, which must fail with `err`, and checks that nothing observable changed.
fn refused(env: &mut Env, err: Errno, what: &str, f: impl FnOnce(&mut Env) -> Result<(), Errno>) {
    let before = env.snapshot();
    assert_eq!(f(env), Err(err), "{what}");
    let after = env.snapshot();
    assert!(after == before, "{what}: state changed:\n{}", before.diff(&after));
    env.check_invariants();
}

#[test]
fn foreign_mappings_reference_the_owners_frames() {
    let (mut env, [.., l1], g) = dom0_and_guest(3);
    let dom0_before = env.dom.clone();
    map(&mut env, at(l1, 5), pte_for(g[0], RO)).unwrap();
    map(&mut env, at(l1, 6), pte_for(g[1], RW)).unwrap();
    let (ro, rw) = (env.page(g[0]), env.page(g[1]));
    assert_eq!((ro.owner(), ro.count(), ro.type_count()), (Some(1), 2, 0), "allocation + dom0's RO entry");
    assert_eq!((rw.owner(), rw.count(), rw.type_count(), rw.page_type()), (Some(1), 2, 1, PageType::Writable));
    assert_eq!(env.dom, dom0_before, "dom0's accounting is untouched: the frames stay the guest's");
    assert_eq!(env.dom_of(1).unwrap().tot_pages(), 3);
    env.check_invariants();
    // The owner cannot make a frame dom0 maps writable into a page table.
    for level in [Level::L1, Level::L2, Level::L3, Level::L4] {
        refused(&mut env, Errno::EINVAL, "owner pins a frame dom0 maps RW", |e| e.mm_of(1).pin(g[1], level));
    }
    refused(&mut env, Errno::EINVAL, "owner's base pointer to it", |e| e.mm_of(1).new_baseptr(g[1]));
    // Read-only does not stop it: the entry holds no type.
    env.mm_of(1).pin(g[0], Level::L1).unwrap();
    env.check_invariants();
    // Unmapping gives back exactly what was taken, whatever page owner it is done with.
    env.mm().normal_update(at(l1, 5), 0, false).unwrap();
    map(&mut env, at(l1, 6), 0).unwrap();
    assert_eq!((env.page(g[0]).count(), env.page(g[0]).type_count()), (2, 1), "allocation + pin");
    assert_eq!((env.page(g[1]).count(), env.page(g[1]).type_count()), (1, 0));
    env.mm_of(1).pin(g[1], Level::L1).unwrap();
    env.check_invariants();
}

#[test]
fn a_foreign_page_table_is_never_mapped_writable() {
    let (mut env, [.., l1], g) = dom0_and_guest(2);
    env.mm_of(1).pin(g[0], Level::L1).unwrap();
    refused(&mut env, Errno::EBUSY, "RW mapping of the guest's L1", |e| map(e, at(l1, 5), pte_for(g[0], RW)));
    map(&mut env, at(l1, 5), pte_for(g[0], RO)).unwrap();
    // An RW mapping through update_va_mapping has no page owner: the frame is not dom0's.
    refused(&mut env, Errno::EBUSY, "update_va_mapping of a foreign frame", |e| {
        e.mm().update_va_mapping(0x7000, pte_for(g[1], RW))
    });
    // RO -> RW of the same foreign table changes rights: revalidated, refused.
    refused(&mut env, Errno::EBUSY, "RO to RW of a foreign table", |e| map(e, at(l1, 5), pte_for(g[0], RW)));
    // A fast-path change (A/D/NX) keeps the references it had.
    map(&mut env, at(l1, 5), pte_for(g[0], RO | pte::NX)).unwrap();
    assert_eq!(env.page(g[0]).count(), 3, "allocation + pin + dom0's entry");
    env.check_invariants();
}

#[test]
fn only_the_page_owners_frames_and_only_in_l1_entries() {
    let (mut env, [l4, l3, l2, l1], g) = dom0_and_guest(2);
    let mine = env.give(1)[0];
    let third = env.add_domain(false, 8);
    let theirs = env.give_to(third, 1)[0];
    refused(&mut env, Errno::EBUSY, "dom0's own frame under a page owner", |e| map(e, at(l1, 5), pte_for(mine, RO)));
    refused(&mut env, Errno::EBUSY, "a third domain's frame", |e| map(e, at(l1, 5), pte_for(theirs, RO)));
    refused(&mut env, Errno::EBUSY, "hypervisor RAM", |e| map(e, at(l1, 5), pte_for(2, RO)));
    refused(&mut env, Errno::EPERM, "device memory under a page owner", |e| map(e, at(l1, 5), pte_for(HOLE.start, RW)));
    refused(&mut env, Errno::EINVAL, "past the physical width", |e| map(e, at(l1, 5), pte_for(MAX_MFN + 1, RO)));
    // Without a page owner, a foreign frame is not dom0's.
    refused(&mut env, Errno::EBUSY, "foreign frame without a page owner", |e| update(e, at(l1, 5), pte_for(g[0], RO)));
    // Upper-level entries never reference foreign frames, page owner or not.
    for (t, what) in [(l2, "L2"), (l3, "L3"), (l4, "L4")] {
        refused(&mut env, Errno::EINVAL, what, |e| map(e, at(t, 7), pte_for(g[1], RW)));
        refused(&mut env, Errno::EINVAL, what, |e| map(e, at(t, 7), pte_for(g[1], RO)));
    }
    // Entries are written into dom0's own tables only: the guest's frames are not dom0's.
    env.mm_of(1).pin(g[0], Level::L1).unwrap();
    refused(&mut env, Errno::EINVAL, "write into the guest's table", |e| map(e, at(g[0], 0), 0));
    // M2P updates under a page owner name the page owner's frames.
    env.mm().machphys_update_as(g[1], 17, 1).unwrap();
    assert_eq!(env.mach.m2p.get(&g[1]), Some(&17));
    refused(&mut env, Errno::EINVAL, "M2P of dom0's frame under a page owner", |e| e.mm().machphys_update_as(mine, 3, 1));
}

fn update(env: &mut Env, ptr: u64, val: u64) -> Result<(), Errno> {
    env.mm().normal_update(ptr, val, false).map(|_| ())
}

#[test]
fn an_unprivileged_domain_cannot_name_a_page_owner() {
    let mut env = Env::new(false, 16);
    let t = env.build_tree(&[]);
    env.mm().new_baseptr(t[0]).unwrap();
    let other = env.add_domain(false, 8);
    assert_eq!(other, 0);
    let f = env.give_to(other, 1)[0];
    refused(&mut env, Errno::EPERM, "page owner from an unprivileged caller", |e| {
        e.mm().normal_update_as(at(t[3], 0), pte_for(f, RO), false, other).map(|_| ())
    });
    refused(&mut env, Errno::EPERM, "M2P under a page owner", |e| e.mm().machphys_update_as(f, 1, other));
    // Naming itself is no page owner at all.
    let own = env.give(1)[0];
    env.mm().normal_update_as(at(t[3], 0), pte_for(own, RW), false, 1).unwrap();
    env.check_invariants();
}

#[test]
fn a_table_holding_foreign_entries_is_not_validated_again() {
    let (mut env, [l4, _, _, l1], g) = dom0_and_guest(1);
    map(&mut env, at(l1, 5), pte_for(g[0], RW)).unwrap();
    // Switching away devalidates dom0's old tree, dropping the foreign references.
    let spare = env.give(1)[0];
    env.mm().new_baseptr(spare).unwrap();
    env.settle();
    assert_eq!((env.page(g[0]).count(), env.page(g[0]).type_count()), (1, 0));
    env.check_invariants();
    // Validation takes no page owner: the old tree now holds a frame that is not dom0's.
    refused(&mut env, Errno::EBUSY, "revalidating a tree with a foreign entry", |e| e.mm().new_baseptr(l4));
}

#[test]
fn the_last_reference_dropped_by_another_domain_is_charged_to_the_owner() {
    let (mut env, [.., l1], g) = dom0_and_guest(3);
    map(&mut env, at(l1, 5), pte_for(g[0], RW)).unwrap();
    map(&mut env, at(l1, 6), pte_for(g[1], RO)).unwrap();
    // The guest gives both frames back: dom0's entries keep them, still the guest's and
    // still in its reservation (as in Xen: a frame counts until it is freed).
    env.mm_of(1).decrease_reservation(g[0]).unwrap();
    env.mm_of(1).decrease_reservation(g[1]).unwrap();
    for f in [g[0], g[1]] {
        let p = env.page(f);
        assert_eq!((p.owner(), p.count(), p.is_allocated()), (Some(1), 1, false), "{f:#x}");
    }
    assert_eq!(env.dom_of(1).unwrap().tot_pages(), 3);
    refused(&mut env, Errno::EINVAL, "decrease twice", |e| e.mm_of(1).decrease_reservation(g[0]));
    env.check_invariants();
    // dom0 drops the last references, in one batch entry each.
    let dom0_before = env.dom.clone();
    update(&mut env, at(l1, 5), 0).unwrap();
    update(&mut env, at(l1, 6), 0).unwrap();
    assert!(env.mach.free.contains(&g[0]) && env.mach.free.contains(&g[1]), "back in the frame source at once");
    assert_eq!(env.dom, dom0_before, "nothing charged to dom0");
    assert_eq!(env.frames.pop_foreign_release(), Some(ForeignRelease { owner: 1, frames: 2, counted: 2 }), "one entry per owner");
    assert_eq!(env.frames.pop_foreign_release(), None);
    env.dom_of_mut(1).unwrap().charge_foreign_release(ForeignRelease { owner: 1, frames: 2, counted: 2 });
    let guest = env.dom_of(1).unwrap();
    assert_eq!((guest.tot_pages(), guest.released()), (1, 2));
    env.check_invariants();
}

#[test]
fn teardown_leaves_what_others_map_until_they_let_go() {
    let (mut env, [.., l1], g) = dom0_and_guest(5);
    // The guest's own tree over its frames, its shared_info, and dom0's mappings of a data
    // frame (RW), a page table of the guest (RO) and the shared frame (RW).
    let (gl4, gl3, gl2, gl1) = (g[0], g[1], g[2], g[3]);
    env.poke(gl4, 0, pte_for(gl3, RW));
    env.poke(gl3, 0, pte_for(gl2, RW));
    env.poke(gl2, 0, pte_for(gl1, RW));
    env.poke(gl1, 0, pte_for(g[4], RW));
    env.mm_of(1).new_baseptr(gl4).unwrap();
    let si = env.mach.alloc_frames(0).unwrap();
    env.frames.share_with_guest(si, &mut env.others[0].mm).unwrap();
    map(&mut env, at(l1, 5), pte_for(g[4], RW)).unwrap();
    map(&mut env, at(l1, 6), pte_for(gl2, RO)).unwrap();
    map(&mut env, at(l1, 7), pte_for(si, RW)).unwrap();
    env.check_invariants();

    let r = env.destroy(1);
    assert_eq!((r.forced, r.held, r.released), (0, 3, 3), "two tables and the L4 go; three frames stay");
    assert!(env.is_dying(1) && !env.is_live(1));
    let guest = env.dom_of(1).unwrap();
    assert_eq!((guest.tot_pages(), guest.shared_pages(), guest.frames_owned()), (2, 1, 3));
    for f in [g[4], gl2, si] {
        let p = env.page(f);
        assert_eq!((p.owner(), p.count(), p.is_allocated(), p.is_pinned()), (Some(1), 1, false, false), "{f:#x}");
    }
    assert_eq!(env.page(gl2).page_type(), PageType::None, "no longer a table");
    env.check_invariants();
    // The frames stay the dying guest's, so a new domain cannot be handed them.
    let fresh = env.add_domain(false, 8);
    assert_ne!(fresh, 1, "a dying domain keeps its id");
    env.give_to(fresh, 2);
    env.check_invariants();

    // dom0 lets go one at a time; the guest is gone with the last.
    update(&mut env, at(l1, 5), 0).unwrap();
    env.settle();
    assert_eq!(env.dom_of(1).unwrap().frames_owned(), 2);
    env.check_invariants();
    update(&mut env, at(l1, 7), 0).unwrap();
    env.settle();
    let guest = env.dom_of(1).unwrap();
    assert_eq!((guest.tot_pages(), guest.shared_pages()), (1, 0));
    env.check_invariants();
    update(&mut env, at(l1, 6), 0).unwrap();
    env.settle();
    assert!(env.dom_of(1).is_none(), "gone once it owns nothing");
    for f in [g[4], gl2, si] {
        assert!(env.mach.free.contains(&f));
    }
    env.check_invariants();
}

#[test]
fn one_devalidation_can_release_frames_of_several_owners() {
    let (mut env, [_, _, _, l1], g) = dom0_and_guest(2);
    let other = env.add_domain(false, 8);
    let h = env.give_to(other, 2);
    for (i, &f) in g.iter().enumerate() {
        map(&mut env, at(l1, 10 + i), pte_for(f, RW)).unwrap();
    }
    for (i, &f) in h.iter().enumerate() {
        env.mm().normal_update_as(at(l1, 20 + i), pte_for(f, RO), false, other).unwrap();
    }
    env.destroy(1);
    env.destroy(other);
    assert!(env.is_dying(1) && env.is_dying(other));
    env.check_invariants();
    // dom0 drops its whole tree at once (a new base pointer): four frames of two owners.
    let spare = env.give(1)[0];
    env.mm().new_baseptr(spare).unwrap();
    let mut got: Vec<ForeignRelease> = std::iter::from_fn(|| env.frames.pop_foreign_release()).collect();
    got.sort_by_key(|r| r.owner);
    assert_eq!(got, [ForeignRelease { owner: 1, frames: 2, counted: 2 }, ForeignRelease { owner: other, frames: 2, counted: 2 }]);
    for r in got {
        env.dom_of_mut(r.owner).unwrap().charge_foreign_release(r);
    }
    env.settle();
    assert!(env.dom_of(1).is_none() && env.dom_of(other).is_none());
    env.check_invariants();
}
