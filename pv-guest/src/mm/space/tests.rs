//! Host tests of the address-space builder against the model in `mm::fake`.
extern crate std;

use super::*;
use crate::mm::fake::{Call, FakeMachine, FakePool, BOOT_L3, BOOT_L4, POOL_MFN};
use hypercall_abi::errno::Errno;
use hypercall_abi::mmu::MmuUpdate;
use std::vec::Vec;

/// Crosses an L4 boundary (512 GiB), so also L3 (1 GiB) and L2 (2 MiB) boundaries.
const TEST_BASE: u64 = (1 << 39) - (8 << 20);
const PAGES: u64 = 4096 + 17;
/// Data frames: owned by the domain, outside the table pool.
fn data_mfn(i: u64) -> Mfn {
    Mfn(POOL_MFN + 3 * (1000 + i))
}

fn boot_slot_entry() -> u64 {
    make_entry(Mfn(BOOT_L3), TABLE_FLAGS)
}

fn build(m: &mut FakeMachine, pool: &mut FakePool) -> AddressSpace {
    let mut space = AddressSpace::new(pool).unwrap();
    space.share_slot(m, 511, boot_slot_entry()).unwrap();
    for i in 0..PAGES {
        space
            .map(m, pool, TEST_BASE + i * PAGE_SIZE, data_mfn(i), true)
            .unwrap();
    }
    space
}

#[test]
fn builds_pins_switches_and_tears_down_to_zero() {
    let mut m = FakeMachine::new(1000 + PAGES + 10);
    let mut pool = FakePool::new(1000);
    let boot_l3_before = m.type_of(BOOT_L3);
    let boot_l4_before = m.type_of(BOOT_L4);
    let mut space = build(&mut m, &mut pool);

    // Two L3s (the range crosses an L4 entry), two L2s, ceil(4113 / 512) + 1 L1s.
    assert_eq!(space.table_count(3), 2);
    assert_eq!(space.table_count(2), 2);
    assert_eq!(space.table_count(1), 9);
    assert_eq!(space.mappings(), PAGES);

    space.pin(&mut m).unwrap();
    // Everything went out in full batches, clears first, and the pins bottom-up in one call.
    let ext_calls: Vec<&Vec<u32>> = m
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::Ext(cmds) => Some(cmds),
            _ => None,
        })
        .collect();
    assert!(matches!(m.calls[0], Call::Ext(_)), "clears come first");
    let pins = ext_calls.last().unwrap();
    assert_eq!(pins.len(), 14);
    assert!(pins.windows(2).all(|w| w[0] <= w[1]), "bottom-up: {pins:?}");
    assert_eq!(*pins.last().unwrap(), MMUEXT_PIN_L4_TABLE);
    let batches = m
        .calls
        .iter()
        .filter(|c| matches!(c, Call::PtUpdate(_)))
        .count();
    assert!(
        batches <= 10,
        "{batches} pt_update batches for ~4140 entries"
    );
    assert_eq!(space.state(), State::Pinned);

    space.activate(&mut m).unwrap();
    assert_eq!(m.base, space.l4().mfn.0);
    for i in 0..PAGES {
        let (mfn, flags) = m.translate(TEST_BASE + i * PAGE_SIZE).unwrap();
        assert_eq!(mfn, data_mfn(i).0);
        assert_eq!(flags, DATA_RW_FLAGS);
    }
    assert_eq!(m.translate(TEST_BASE - PAGE_SIZE), None);
    // The shared slot reaches the bootstrap L3.
    assert_eq!(m.type_of(BOOT_L3), (3, boot_l3_before.1 + 1));
    assert!(
        space.teardown(&mut m, &mut pool).is_err(),
        "active spaces stay"
    );

    space.deactivate(&mut m, Mfn(BOOT_L4)).unwrap();
    space.teardown(&mut m, &mut pool).unwrap();
    assert_eq!(space.state(), State::TornDown);
    // Every count is back where it started.
    assert_eq!(m.type_of(BOOT_L3), boot_l3_before);
    assert_eq!(m.type_of(BOOT_L4), boot_l4_before);
    for (mfn, (_, count)) in &m.ty {
        if *mfn != BOOT_L3 && *mfn != BOOT_L4 {
            assert_eq!(*count, 0, "mfn {mfn} still has type references");
        }
    }
    assert_eq!(m.pinned.len(), 1);
    assert!(pool.out.is_empty(), "every table frame went back");
    // The frames are reusable as data (the model lets a typed frame with count 0 change).
    let mut again = AddressSpace::new(&mut pool).unwrap();
    again
        .map(&mut m, &mut pool, 0x1000, data_mfn(0), true)
        .unwrap();
    again.pin(&mut m).unwrap();
    again.teardown(&mut m, &mut pool).unwrap();
}

#[test]
fn alias_and_read_only_table_mappings() {
    let mut m = FakeMachine::new(1100);
    let mut pool = FakePool::new(1000);
    let mut space = AddressSpace::new(&mut pool).unwrap();
    space
        .map(&mut m, &mut pool, 0x40_0000, data_mfn(1), true)
        .unwrap();
    space
        .map(&mut m, &mut pool, 0x80_0000, data_mfn(1), true)
        .unwrap();
    let l4 = space.l4().mfn;
    assert_eq!(
        space.map(&mut m, &mut pool, 0x90_0000, l4, true),
        Err(MmError::TableMappedWritable(l4))
    );
    space.map(&mut m, &mut pool, 0x90_0000, l4, false).unwrap();
    space.pin(&mut m).unwrap();
    space.activate(&mut m).unwrap();
    assert_eq!(m.translate(0x40_0000).unwrap().0, data_mfn(1).0);
    assert_eq!(m.translate(0x80_0000).unwrap().0, data_mfn(1).0);
    assert_eq!(m.translate(0x90_0000), Some((l4.0, DATA_RO_FLAGS)));
    // Mapping after the pin: validated entry by entry, a new table typed by its parent.
    space
        .map(&mut m, &mut pool, 0x4000_0000, data_mfn(2), true)
        .unwrap();
    space.flush(&mut m).unwrap();
    assert_eq!(m.translate(0x4000_0000).unwrap().0, data_mfn(2).0);
    space.unmap(&mut m, 0x80_0000).unwrap();
    space.flush(&mut m).unwrap();
    assert_eq!(m.translate(0x80_0000), None);
    space.deactivate(&mut m, Mfn(BOOT_L4)).unwrap();
    space.teardown(&mut m, &mut pool).unwrap();
    assert!(m
        .ty
        .iter()
        .all(|(mfn, (_, c))| *mfn == BOOT_L3 || *mfn == BOOT_L4 || *c == 0));
}

#[test]
fn refuses_bad_addresses_and_shared_slots() {
    let mut m = FakeMachine::new(1100);
    let mut pool = FakePool::new(1000);
    let mut space = AddressSpace::new(&mut pool).unwrap();
    for va in [
        0x1001,
        0x0000_8000_0000_0000,
        0xffff_8000_0000_0000,
        0xffff_87ff_ffff_f000,
    ] {
        assert_eq!(
            space.map(&mut m, &mut pool, va, data_mfn(0), true),
            Err(MmError::BadAddress(va))
        );
    }
    assert!(space.share_slot(&mut m, 256, 0).is_err());
    assert!(space.share_slot(&mut m, 512, 0).is_err());
    space.share_slot(&mut m, 511, boot_slot_entry()).unwrap();
    assert_eq!(
        space.map(&mut m, &mut pool, 0xffff_ffff_8000_0000, data_mfn(0), true),
        Err(MmError::SharedSlot(0xffff_ffff_8000_0000))
    );
    space
        .map(&mut m, &mut pool, 0x1000, data_mfn(0), true)
        .unwrap();
    assert!(space.share_slot(&mut m, 0, boot_slot_entry()).is_err());
    assert!(space.activate(&mut m).is_err(), "not pinned yet");
    space.teardown(&mut m, &mut pool).unwrap();
    assert!(space
        .map(&mut m, &mut pool, 0x2000, data_mfn(0), true)
        .is_err());
}

#[test]
fn a_refused_entry_names_the_request() {
    let mut m = FakeMachine::new(1100);
    let mut pool = FakePool::new(1000);
    let mut space = AddressSpace::new(&mut pool).unwrap();
    space
        .map(&mut m, &mut pool, 0x1000, data_mfn(0), true)
        .unwrap();
    space.pin(&mut m).unwrap();
    // A writable mapping of the bootstrap L4 (a table elsewhere): the model refuses it as Xen
    // does, with EBUSY, on the one request.
    space
        .map(&mut m, &mut pool, 0x2000, Mfn(BOOT_L4), true)
        .unwrap();
    let err = space.flush(&mut m).unwrap_err();
    let l1 = space.table_for(1, 0x2000).unwrap();
    assert_eq!(
        err,
        MmError::Update {
            request: MmuUpdate {
                ptr: entry_maddr(l1.mfn, 2),
                val: make_entry(Mfn(BOOT_L4), DATA_RW_FLAGS)
            },
            index: 0,
            applied: 0,
            errno: Errno::EBUSY,
        }
    );
    space.teardown(&mut m, &mut pool).unwrap();
}

#[test]
fn a_failed_pin_leaves_earlier_pins_for_teardown() {
    let mut m = FakeMachine::new(1100);
    let mut pool = FakePool::new(1000);
    let mut space = AddressSpace::new(&mut pool).unwrap();
    space
        .map(&mut m, &mut pool, 0x1000, data_mfn(0), true)
        .unwrap();
    space
        .map(&mut m, &mut pool, 0x4000_0000, data_mfn(1), true)
        .unwrap();
    space.flush(&mut m).unwrap();
    // Pin the second L1 behind the builder's back: its pin in the batch fails as "pinned twice".
    let second = space.table_for(1, 0x4000_0000).unwrap();
    m.mmuext(&[ext_op(MMUEXT_PIN_L1_TABLE, second.mfn.0)])
        .unwrap();
    let err = space.pin(&mut m).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::EINVAL));
    assert!(matches!(err, MmError::Ext { index: 1, .. }));
    assert_eq!(space.state(), State::Building);
    assert_eq!(space.tables().filter(|t| t.pinned).count(), 1);
    space.teardown(&mut m, &mut pool).unwrap();
    m.mmuext(&[ext_op(MMUEXT_UNPIN_TABLE, second.mfn.0)])
        .unwrap();
    assert!(m
        .ty
        .iter()
        .all(|(mfn, (_, c))| *mfn == BOOT_L3 || *mfn == BOOT_L4 || *c == 0));
}

#[test]
fn runs_out_of_frames_cleanly() {
    let mut m = FakeMachine::new(1100);
    let mut pool = FakePool::new(3);
    let mut space = AddressSpace::new(&mut pool).unwrap();
    assert_eq!(
        space.map(&mut m, &mut pool, 0x1000, data_mfn(0), true),
        Err(MmError::OutOfFrames)
    );
    space.teardown(&mut m, &mut pool).unwrap();
    assert!(pool.out.is_empty());
}
