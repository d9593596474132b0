//! The validator, rule by rule: every forbidden thing gets its exact errno and changes
//! nothing, every allowed thing takes exactly the references the accounting says.
extern crate std;

use super::fake::*;
use super::page_info::{Level, PageType};
use super::pt::MmMachine;
use super::validate::PAT_4K;
use hypercall_abi::errno::Errno;
use hypercall_abi::layout::pte;
use std::vec::Vec;

/// A domain with a validated tree (through the kernel base pointer) mapping two data
/// frames read-write at virtual 0 and 0x1000. Returns the env, [l4, l3, l2, l1], data.
fn live_tree(privileged: bool) -> (Env, [u64; 4], Vec<u64>) {
    let mut env = Env::new(privileged, 64);
    let data = env.give(2);
    let t = env.build_tree(&data);
    env.mm().new_baseptr(t[0]).unwrap();
    env.check_invariants();
    (env, t, data)
}

/// Machine address of entry `i` of frame `mfn`.
fn at(mfn: u64, i: usize) -> u64 {
    (mfn << 12) | (i as u64 * 8)
}

/// Runs `f`, which must fail with `err`, and checks that nothing observable changed (a
/// failed operation may still have flushed TLBs: harmless).
fn refused(env: &mut Env, err: Errno, what: &str, f: impl FnOnce(&mut Env) -> Result<(), Errno>) {
    let before = env.snapshot();
    assert_eq!(f(env), Err(err), "{what}");
    let after = env.snapshot();
    assert!(after == before, "{what}: state changed:\n{}", before.diff(&after));
    env.check_invariants();
}

fn update(env: &mut Env, ptr: u64, val: u64) -> Result<(), Errno> {
    env.mm().normal_update(ptr, val, false).map(|_| ())
}

#[test]
fn a_validated_tree_takes_exactly_its_references() {
    let (env, [l4, l3, l2, l1], data) = live_tree(false);
    assert_eq!(env.page(l4).page_type(), PageType::L4);
    assert_eq!((env.page(l4).count(), env.page(l4).type_count()), (2, 1), "allocation + base pointer");
    for (t, ty) in [(l3, PageType::L3), (l2, PageType::L2), (l1, PageType::L1)] {
        let p = env.page(t);
        assert_eq!((p.page_type(), p.count(), p.type_count(), p.is_validated()), (ty, 2, 1, true));
    }
    for d in data {
        let p = env.page(d);
        assert_eq!((p.page_type(), p.count(), p.type_count()), (PageType::Writable, 2, 1));
    }
    assert_eq!(env.mach.cr3_loads, [l4]);
    // Entries were adjusted (USER everywhere, A above L1) and the hypervisor slots filled.
    assert_eq!(env.peek(l4, 256), hv_l4e(256));
    assert_eq!(env.peek(l4, 271), hv_l4e(271));
    assert!(env.peek(l3, 0) & pte::ACCESSED != 0);
}

#[test]
fn a_page_table_frame_mapped_writable_is_refused() {
    let (mut env, [l4, l3, l2, l1], _) = live_tree(false);
    for table in [l4, l3, l2, l1] {
        refused(&mut env, Errno::EBUSY, "RW mapping of a page table", |e| update(e, at(l1, 5), pte_for(table, RW)));
    }
    // Read-only is fine, and takes a general reference only.
    update(&mut env, at(l1, 5), pte_for(l2, RO)).unwrap();
    assert_eq!((env.page(l2).count(), env.page(l2).type_count()), (3, 1));
    env.check_invariants();
    // A tree whose L1 maps one of its own tables writable cannot be validated.
    let mut env = Env::new(false, 64);
    let t = env.build_tree(&[]);
    env.poke(t[3], 7, pte_for(t[2], RW));
    refused(&mut env, Errno::EBUSY, "pin of an L4 whose L1 maps its L2 writable", |e| e.mm().pin(t[0], Level::L4));
}

#[test]
fn a_writable_frame_cannot_become_a_page_table() {
    let (mut env, [_, _, l2, _], data) = live_tree(false);
    let d = data[0];
    for level in [Level::L1, Level::L2, Level::L3, Level::L4] {
        refused(&mut env, Errno::EINVAL, "pin of a writable-mapped frame", |e| e.mm().pin(d, level));
    }
    refused(&mut env, Errno::EINVAL, "L2 entry making a writable frame an L1", |e| update(e, at(l2, 1), pte_for(d, RW)));
    refused(&mut env, Errno::EINVAL, "base pointer to a writable frame", |e| e.mm().new_baseptr(d));
}

#[test]
fn frames_the_domain_does_not_own_are_refused() {
    let (mut env, [l4, l3, l2, l1], _) = live_tree(false);
    // mfn 2: hypervisor RAM (owned by nobody); a frame still in the frame source; mfn 0.
    let free = *env.mach.free.first().unwrap();
    for foreign in [2, free, 0] {
        refused(&mut env, Errno::EBUSY, "L1 entry to a frame not owned", |e| update(e, at(l1, 9), pte_for(foreign, RO)));
        refused(&mut env, Errno::EINVAL, "L2 entry to a frame not owned", |e| update(e, at(l2, 9), pte_for(foreign, RW)));
        refused(&mut env, Errno::EINVAL, "L3 entry to a frame not owned", |e| update(e, at(l3, 9), pte_for(foreign, RW)));
        refused(&mut env, Errno::EINVAL, "L4 entry to a frame not owned", |e| update(e, at(l4, 9), pte_for(foreign, RW)));
        refused(&mut env, Errno::EINVAL, "update inside a frame not owned", |e| update(e, at(foreign, 0), 0));
        refused(&mut env, Errno::EINVAL, "pin of a frame not owned", |e| e.mm().pin(foreign, Level::L1));
        refused(&mut env, Errno::EINVAL, "unpin of a frame not owned", |e| e.mm().unpin(foreign));
        refused(&mut env, Errno::EINVAL, "base pointer to a frame not owned", |e| e.mm().new_baseptr(foreign));
        if foreign != 0 {
            refused(&mut env, Errno::EINVAL, "user base pointer to a frame not owned", |e| e.mm().new_user_baseptr(foreign));
        }
        refused(&mut env, Errno::EINVAL, "clear of a frame not owned", |e| e.mm().clear_page(foreign));
        refused(&mut env, Errno::EINVAL, "copy from a frame not owned", |e| e.mm().copy_page(l1, foreign));
        refused(&mut env, Errno::EINVAL, "M2P update of a frame not owned", |e| e.mm().machphys_update(foreign, 3));
        refused(&mut env, Errno::EINVAL, "decrease of a frame not owned", |e| e.mm().decrease_reservation(foreign));
    }
}

#[test]
fn the_hypervisor_slots_are_never_guest_controlled() {
    let (mut env, [l4, l3, ..], _) = live_tree(false);
    for slot in [256, 260, 271] {
        refused(&mut env, Errno::EINVAL, "write into a hypervisor slot", |e| update(e, at(l4, slot), pte_for(l3, RO)));
        refused(&mut env, Errno::EINVAL, "clearing a hypervisor slot", |e| update(e, at(l4, slot), 0));
    }
    // Guest garbage in those slots is ignored by validation and replaced.
    let mut env = Env::new(false, 64);
    let t = env.build_tree(&[]);
    env.poke(t[0], 256, pte_for(2, RW));
    env.poke(t[0], 271, u64::MAX);
    env.mm().pin(t[0], Level::L4).unwrap();
    assert_eq!(env.peek(t[0], 256), hv_l4e(256));
    assert_eq!(env.peek(t[0], 271), hv_l4e(271));
    env.check_invariants();
}

#[test]
fn linear_entries_only_read_only_and_only_to_the_table_itself() {
    let (mut env, [l4, l3, l2, _], _) = live_tree(false);
    refused(&mut env, Errno::EINVAL, "writable linear L4 entry", |e| update(e, at(l4, 510), pte_for(l4, RW)));
    refused(&mut env, Errno::EINVAL, "writable linear L3 entry", |e| update(e, at(l3, 510), pte_for(l3, RW)));
    refused(&mut env, Errno::EINVAL, "writable linear L2 entry", |e| update(e, at(l2, 510), pte_for(l2, RW)));
    let before = env.page(l4);
    update(&mut env, at(l4, 510), pte_for(l4, RO)).unwrap();
    assert_eq!(env.page(l4), before, "a linear entry takes no reference");
    update(&mut env, at(l2, 510), pte_for(l2, RO)).unwrap();
    env.check_invariants();
    // To another table of the same level: refused.
    let other = env.give(1)[0];
    env.mm().pin(other, Level::L4).unwrap();
    refused(&mut env, Errno::EINVAL, "L4 entry to another L4", |e| update(e, at(l4, 5), pte_for(other, RO)));
    let other3 = env.give(1)[0];
    env.mm().pin(other3, Level::L3).unwrap();
    refused(&mut env, Errno::EINVAL, "L3 entry to another L3", |e| update(e, at(l3, 5), pte_for(other3, RO)));
    // Removing the linear entry drops nothing.
    update(&mut env, at(l4, 510), 0).unwrap();
    assert_eq!(env.page(l4), before);
    env.check_invariants();
}

#[test]
fn superpages_global_and_reserved_bits_are_refused() {
    let (mut env, [l4, l3, l2, l1], data) = live_tree(false);
    let spare = env.give(1)[0];
    refused(&mut env, Errno::EINVAL, "L2 superpage", |e| update(e, at(l2, 3), pte_for(spare, RW | pte::PSE)));
    refused(&mut env, Errno::EINVAL, "L3 superpage", |e| update(e, at(l3, 3), pte_for(spare, RW | pte::PSE)));
    refused(&mut env, Errno::EINVAL, "read-only superpage", |e| update(e, at(l2, 3), pte_for(spare, RO | pte::PSE)));
    for (t, target) in [(l4, spare), (l3, spare), (l2, spare), (l1, data[0])] {
        refused(&mut env, Errno::EINVAL, "global bit", |e| update(e, at(t, 3), pte_for(target, RO | pte::GLOBAL)));
        for bit in [52, 58, 62] {
            refused(&mut env, Errno::EINVAL, "bits 52..62", |e| update(e, at(t, 3), pte_for(target, RO) | 1 << bit));
        }
    }
    refused(&mut env, Errno::EINVAL, "uncached L1 for an unprivileged domain", |e| {
        update(e, at(l1, 3), pte_for(data[0], RW | pte::PCD))
    });
    refused(&mut env, Errno::EINVAL, "PAT L1 for an unprivileged domain", |e| update(e, at(l1, 3), pte_for(data[0], RW | PAT_4K)));
    refused(&mut env, Errno::EINVAL, "uncached L2", |e| update(e, at(l2, 3), pte_for(spare, RW | pte::PWT)));
    // A superpage inside a table makes the whole table unusable.
    let mut env = Env::new(false, 64);
    let t = env.build_tree(&[]);
    env.poke(t[2], 1, pte_for(t[3], RW | pte::PSE));
    refused(&mut env, Errno::EINVAL, "base pointer to a tree holding a superpage", |e| e.mm().new_baseptr(t[0]));
}

#[test]
fn memory_past_the_end_and_device_memory() {
    let (mut env, [_, _, l2, l1], _) = live_tree(false);
    let beyond = NR_FRAMES + 5;
    refused(&mut env, Errno::EPERM, "unprivileged L1 entry past the end of RAM", |e| update(e, at(l1, 4), pte_for(beyond, RO)));
    refused(&mut env, Errno::EPERM, "unprivileged L1 entry into a hole", |e| update(e, at(l1, 4), pte_for(HOLE.start, RW)));
    refused(&mut env, Errno::EINVAL, "mfn past the physical width", |e| update(e, at(l1, 4), pte_for(MAX_MFN + 1, RO)));
    refused(&mut env, Errno::EINVAL, "L2 entry past the end of RAM", |e| update(e, at(l2, 4), pte_for(beyond, RW)));

    let (mut env, [_, _, l2, l1], _) = live_tree(true);
    let before = env.snapshot();
    update(&mut env, at(l1, 4), pte_for(HOLE.start, RW | pte::PCD | pte::PWT)).unwrap();
    update(&mut env, at(l1, 5), pte_for(beyond, RW)).unwrap();
    let mut after = env.snapshot();
    assert_ne!(after, before);
    // Only the two entries changed: device memory takes no references.
    update(&mut env, at(l1, 4), 0).unwrap();
    update(&mut env, at(l1, 5), 0).unwrap();
    after = env.snapshot();
    assert_eq!(after, before);
    refused(&mut env, Errno::EINVAL, "privileged L1 past the physical width", |e| update(e, at(l1, 4), pte_for(MAX_MFN + 1, RO)));
    refused(&mut env, Errno::EPERM, "the local APIC is the hypervisor's", |e| update(e, at(l1, 4), pte_for(0xfee00, RW)));
    refused(&mut env, Errno::EPERM, "an I/O APIC is the hypervisor's", |e| update(e, at(l1, 4), pte_for(0xfec00, RO)));
    update(&mut env, at(l1, 4), pte_for(0xfebf0, RW | pte::PCD)).unwrap();
    refused(&mut env, Errno::EINVAL, "privileged L2 entry to device memory", |e| update(e, at(l2, 4), pte_for(HOLE.start, RW)));
}

#[test]
fn pins_count_once_and_unpins_need_a_pin() {
    let mut env = Env::new(false, 64);
    let t = env.build_tree(&[]);
    refused(&mut env, Errno::EINVAL, "unpin of a frame never pinned", |e| e.mm().unpin(t[3]));
    env.mm().pin(t[3], Level::L1).unwrap();
    refused(&mut env, Errno::EINVAL, "pin twice", |e| e.mm().pin(t[3], Level::L1));
    refused(&mut env, Errno::EINVAL, "pin again at another level", |e| e.mm().pin(t[3], Level::L2));
    env.mm().unpin(t[3]).unwrap();
    refused(&mut env, Errno::EINVAL, "unpin twice", |e| e.mm().unpin(t[3]));
    assert_eq!(env.page(t[3]).page_type(), PageType::None);
    env.mm().pin(t[0], Level::L4).unwrap();
    refused(&mut env, Errno::EINVAL, "pin of a table already typed at another level", |e| e.mm().pin(t[2], Level::L1));
    env.check_invariants();
}

#[test]
fn unpinning_a_table_in_use_leaves_it_validated() {
    let (mut env, [l4, l3, _, l1], _) = live_tree(false);
    env.mm().pin(l4, Level::L4).unwrap();
    env.mm().pin(l3, Level::L3).unwrap();
    env.mm().unpin(l4).unwrap();
    env.mm().unpin(l3).unwrap();
    assert_eq!((env.page(l4).page_type(), env.page(l4).type_count()), (PageType::L4, 1), "base pointer keeps it");
    assert_eq!((env.page(l3).page_type(), env.page(l3).type_count()), (PageType::L3, 1), "its L4 entry keeps it");
    refused(&mut env, Errno::EBUSY, "still read-only", |e| update(e, at(l1, 6), pte_for(l3, RW)));
    refused(&mut env, Errno::EBUSY, "still read-only", |e| update(e, at(l1, 6), pte_for(l4, RW)));
    env.check_invariants();
}

#[test]
fn a_failure_midway_undoes_exactly_what_was_taken() {
    let mut env = Env::new(false, 64);
    let l1s = env.give(4);
    let data = env.give(3);
    let l2 = env.give(1)[0];
    for (i, &l1) in l1s.iter().enumerate() {
        env.poke(l1, 0, pte_for(data[i % 3], RW));
        env.poke(l1, 1, pte_for(data[(i + 1) % 3], RO));
        env.poke(l2, i, pte_for(l1, RW));
    }
    // Entry 4 is bad: the first four L1s were validated (taking the data frames' types)
    // before it was seen.
    env.poke(l2, 4, pte_for(data[0], RW));
    env.poke(l1s[0], 2, pte_for(2, RO));
    refused(&mut env, Errno::EBUSY, "the first L1 maps a foreign frame", |e| e.mm().pin(l2, Level::L2));
    env.poke(l1s[0], 2, 0);
    // Now the first entries validate fine and entry 4 (a data frame mapped RW as an L1) fails.
    refused(&mut env, Errno::EINVAL, "entry 4 references a writable frame as an L1", |e| e.mm().pin(l2, Level::L2));
    env.poke(l2, 4, 0);
    env.mm().pin(l2, Level::L2).unwrap();
    env.check_invariants();
    assert_eq!(env.page(data[0]).type_count(), 2);
}

#[test]
fn new_base_pointer_to_a_frame_that_cannot_be_an_l4() {
    let (mut env, [l4, l3, l2, _], data) = live_tree(false);
    let loads = env.mach.cr3_loads.len();
    refused(&mut env, Errno::EINVAL, "mapped writable", |e| e.mm().new_baseptr(data[0]));
    refused(&mut env, Errno::EINVAL, "an L3 in use", |e| e.mm().new_baseptr(l3));
    refused(&mut env, Errno::EINVAL, "not owned", |e| e.mm().new_baseptr(3));
    let bad = env.give(1)[0];
    env.poke(bad, 0, pte_for(l2, RW)); // an L4 entry to an L2: wrong type
    refused(&mut env, Errno::EINVAL, "holding a bad entry", |e| e.mm().new_baseptr(bad));
    assert_eq!(env.mach.cr3_loads.len(), loads, "CR3 untouched");
    assert_eq!(env.dom.kernel_base(), l4);
    // A good one: the old base pointer's references go.
    let next = env.give(1)[0];
    env.mm().new_baseptr(next).unwrap();
    assert_eq!(env.mach.cr3_loads.last(), Some(&next));
    assert_eq!(env.page(l4).page_type(), PageType::None, "old tree devalidated");
    assert_eq!(env.page(l3).page_type(), PageType::None);
    assert_eq!(env.page(data[0]).page_type(), PageType::None);
    env.check_invariants();
    // Same frame again: just a reload.
    env.mm().new_baseptr(next).unwrap();
    assert_eq!(env.page(next).type_count(), 1);
    env.mm().new_user_baseptr(next).unwrap();
    assert_eq!(env.page(next).type_count(), 2);
    env.mm().new_user_baseptr(0).unwrap();
    assert_eq!(env.page(next).type_count(), 1);
    env.check_invariants();
}

#[test]
fn updates_replace_references_and_preserve_ad() {
    let (mut env, [_, _, _, l1], data) = live_tree(false);
    let d2 = env.give(1)[0];
    // RW -> RO of the same frame: the writable type goes, the general reference stays.
    update(&mut env, at(l1, 0), pte_for(data[0], RO)).unwrap();
    assert_eq!((env.page(data[0]).count(), env.page(data[0]).type_count()), (2, 0));
    // Retarget to another frame.
    update(&mut env, at(l1, 0), pte_for(d2, RW)).unwrap();
    assert_eq!(env.page(data[0]).count(), 1);
    assert_eq!(env.page(d2).type_count(), 1);
    env.check_invariants();
    // A and D set by the "CPU" survive a PRESERVE_AD update of other bits.
    let e = env.peek(l1, 0) | pte::DIRTY | pte::ACCESSED;
    env.poke(l1, 0, e);
    env.mm().normal_update(at(l1, 0), pte_for(d2, pte::PRESENT | pte::RW | pte::NX), true).unwrap();
    assert_eq!(env.peek(l1, 0), pte_for(d2, RW | pte::DIRTY | pte::NX));
    env.mm().normal_update(at(l1, 0), pte_for(d2, pte::PRESENT | pte::RW), false).unwrap();
    assert_eq!(env.peek(l1, 0), pte_for(d2, pte::PRESENT | pte::RW | pte::USER), "USER forced, A/D gone");
    env.check_invariants();
}

#[test]
fn data_frames_are_written_as_data_and_old_tables_flush_first() {
    let (mut env, _, data) = live_tree(false);
    // A frame that is not a table is plain data: any value goes in.
    update(&mut env, at(data[0], 9), u64::MAX).unwrap();
    assert_eq!(env.peek(data[0], 9), u64::MAX);
    assert_eq!(env.page(data[0]).type_count(), 1, "the transient writable reference is gone");
    // A frame that was an L1 and no longer is: writing it as data changes its type, which
    // flushes stale walks through it first.
    let spare = env.give(1)[0];
    env.mm().pin(spare, Level::L1).unwrap();
    env.mm().unpin(spare).unwrap();
    let f = env.mach.flushes;
    update(&mut env, at(spare, 0), 7).unwrap();
    assert_eq!(env.mach.flushes, f + 1);
    assert_eq!(env.peek(spare, 0), 7);
    // Garbage in a frame makes it unusable as a table, and the failure changes nothing.
    refused(&mut env, Errno::EINVAL, "entry 0 names frame 0, not the domain's", |e| e.mm().pin(spare, Level::L2));
    env.check_invariants();
}

#[test]
fn type_changes_flush_stale_translations_once() {
    let mut env = Env::new(false, 64);
    let t = env.build_tree(&[]);
    let d = env.give(1)[0];
    env.poke(t[3], 0, pte_for(d, RW));
    env.mm().pin(t[0], Level::L4).unwrap();
    assert_eq!(env.mach.flushes, 0, "fresh frames change type without a flush");
    // Unmap d, then make it an L1: the RW translation may linger, so a flush comes first.
    update(&mut env, at(t[3], 0), 0).unwrap();
    env.mm().pin(d, Level::L1).unwrap();
    assert_eq!(env.mach.flushes, 1);
    env.mm().unpin(d).unwrap();
    // A flush in between makes a second one unnecessary.
    env.mm().flush_tlb();
    let f = env.mach.flushes;
    update(&mut env, at(t[3], 0), pte_for(d, RW)).unwrap();
    assert_eq!(env.mach.flushes, f);
    env.check_invariants();
}

#[test]
fn clear_and_copy_need_a_writable_destination() {
    let (mut env, [l4, _, _, l1], data) = live_tree(false);
    env.poke(data[0], 3, 0x1234);
    env.mm().copy_page(data[1], data[0]).unwrap();
    assert_eq!(env.peek(data[1], 3), 0x1234);
    env.mm().copy_page(data[1], l1).unwrap();
    assert_eq!(env.peek(data[1], 0), env.peek(l1, 0), "a table may be the source");
    refused(&mut env, Errno::EINVAL, "copy over a page table", |e| e.mm().copy_page(l4, data[0]));
    refused(&mut env, Errno::EINVAL, "clear of a page table", |e| e.mm().clear_page(l1));
    env.mm().clear_page(data[0]).unwrap();
    assert_eq!(env.peek(data[0], 3), 0);
    env.check_invariants();
}

#[test]
fn update_va_mapping_walks_the_current_tables() {
    let (mut env, [l4, _, _, l1], data) = live_tree(false);
    env.mm().update_va_mapping(0x5000, pte_for(data[1], RO)).unwrap();
    assert_eq!(env.peek(l1, 5), pte_for(data[1], RO));
    refused(&mut env, Errno::EINVAL, "no L1 maps it", |e| e.mm().update_va_mapping(0x4000_0000, 0));
    refused(&mut env, Errno::EINVAL, "hypervisor slice", |e| e.mm().update_va_mapping(0xffff_8000_0000_0000, 0));
    refused(&mut env, Errno::EINVAL, "non-canonical", |e| e.mm().update_va_mapping(0x8000_0000_0000, 0));
    refused(&mut env, Errno::EBUSY, "RW to a table", |e| e.mm().update_va_mapping(0x5000, pte_for(l1, RW)));
    // Through a linear L4 entry (slot 1 -> the L4 itself) the walk ends on the L2: refused.
    update(&mut env, at(l4, 1), pte_for(l4, RO)).unwrap();
    let va = 1 << 39;
    refused(&mut env, Errno::EINVAL, "walk ending on a higher-level table", |e| e.mm().update_va_mapping(va, 0));
    let mut fresh = Env::new(false, 8);
    refused(&mut fresh, Errno::EINVAL, "no base pointer", |e| e.mm().update_va_mapping(0x5000, 0));
}

#[test]
fn reservations_stay_within_max_pages_and_decrease_unpins() {
    let mut env = Env::new(false, 6);
    let t = env.build_tree(&[]);
    let d = env.give(2);
    assert_eq!(env.dom.tot_pages(), 6);
    assert_eq!(env.mm().increase_reservation(), Err(Errno::ENOMEM));
    env.mm().pin(t[0], Level::L4).unwrap();
    // Decreasing a frame still used as a table keeps it alive until the table goes.
    env.mm().decrease_reservation(t[3]).unwrap();
    assert_eq!(env.page(t[3]).owner(), Some(1));
    refused(&mut env, Errno::EINVAL, "decrease twice", |e| e.mm().decrease_reservation(t[3]));
    env.check_invariants();
    // Pinned: the pin goes too, and with the L4 its tree, and with it t[3]'s last reference.
    env.mm().decrease_reservation(t[0]).unwrap();
    for f in [t[0], t[3]] {
        assert_eq!(env.page(f).owner(), None, "{f:#x} released");
        assert!(env.mach.free.contains(&f));
    }
    assert_eq!(env.page(t[1]).page_type(), PageType::None);
    assert_eq!(env.dom.tot_pages(), 4);
    env.mm().decrease_reservation(d[0]).unwrap();
    assert_eq!(env.mach.m2p.get(&d[0]), Some(&hypercall_abi::types::INVALID_M2P_ENTRY));
    let m = env.mm().populate_physmap(77).unwrap();
    assert_eq!(env.mach.m2p.get(&m), Some(&77));
    env.mm().machphys_update(m, 78).unwrap();
    assert_eq!(env.mach.m2p.get(&m), Some(&78));
    env.check_invariants();
}

#[test]
fn shared_frames_stay_writable_and_out_of_the_reservation() {
    let (mut env, [.., l1], _) = live_tree(false);
    let si = env.mach.alloc_frames(0).unwrap();
    env.frames.share_with_guest(si, &mut env.dom).unwrap();
    env.check_invariants();
    update(&mut env, at(l1, 8), pte_for(si, RW)).unwrap();
    refused(&mut env, Errno::EINVAL, "pin of a shared frame", |e| e.mm().pin(si, Level::L1));
    refused(&mut env, Errno::EINVAL, "decrease of a shared frame", |e| e.mm().decrease_reservation(si));
    env.check_invariants();
    let r = env.mm().relinquish();
    assert_eq!(r.forced, 0);
    assert!(env.mach.free.contains(&si));
}

#[test]
fn teardown_returns_every_frame_even_through_cycles() {
    let (mut env, [l4, l3, l2, l1], data) = live_tree(false);
    // Read-only mappings of the tables themselves (general-reference cycles), a linear
    // entry, pins, a user base pointer, a decreased frame kept alive by a mapping.
    for (i, t) in [l4, l3, l2, l1].into_iter().enumerate() {
        update(&mut env, at(l1, 10 + i), pte_for(t, RO)).unwrap();
    }
    update(&mut env, at(l4, 511), pte_for(l4, RO)).unwrap();
    env.mm().pin(l2, Level::L2).unwrap();
    let user = env.give(1)[0];
    env.mm().new_user_baseptr(user).unwrap();
    env.mm().pin(user, Level::L4).unwrap();
    env.mm().decrease_reservation(data[1]).unwrap();
    env.check_invariants();
    let owned = env.dom.tot_pages();
    let r = env.mm().relinquish();
    assert_eq!(r.forced, 0);
    assert_eq!(r.released, owned);
    assert_eq!(env.dom.tot_pages(), 0);
    assert_eq!((env.dom.kernel_base(), env.dom.user_base()), (0, 0));
    for mfn in 0..NR_FRAMES {
        let p = env.page(mfn);
        assert_eq!((p.owner(), p.count(), p.type_count(), p.is_pinned()), (None, 0, 0, false), "mfn {mfn:#x}");
    }
    let all: std::collections::BTreeSet<u64> = (FIRST_FREE..NR_FRAMES).filter(|m| !HOLE.contains(m)).collect();
    assert_eq!(env.mach.free, all, "every frame back in the frame source");
    env.check_invariants();
}

#[test]
fn ram_the_frame_table_does_not_cover_is_nobodys() {
    // A frame table shorter than RAM: frames 90..96 are RAM nobody may map, not even dom0
    // as device memory.
    let store: &'static mut [super::page_info::PageInfo] =
        std::boxed::Box::leak(std::vec![super::page_info::PageInfo::FREE; 90].into_boxed_slice());
    let mut frames = super::page_info::FrameTable::new(store);
    let mut dom = super::page_info::DomainMm::new(0, true, 16);
    let mut mach = FakeMachine::new();
    let mut mm = super::pt::Mm { frames: &mut frames, dom: &mut dom, mach: &mut mach };
    let l1 = mm.increase_reservation().unwrap();
    mm.pin(l1, Level::L1).unwrap();
    assert_eq!(mm.normal_update(at(l1, 0), pte_for(95, RO), false), Err(Errno::EBUSY));
    assert_eq!(mm.normal_update(at(l1, 0), pte_for(HOLE.start, RO), false), Ok(Some(Level::L1)), "a hole is device memory");
    assert_eq!(mm.normal_update(at(95, 0), 0, false), Err(Errno::EINVAL));
    assert_eq!(mm.pin(95, Level::L1), Err(Errno::EINVAL));
}
