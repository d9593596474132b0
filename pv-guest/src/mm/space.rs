//! Building, switching to and tearing down a whole 4-level address space through batched,
//! validated page-table updates (Xen's direct paging, seen from the guest).
//!
//! The life of an [`AddressSpace`]:
//! 1. [`AddressSpace::new`] takes an L4 frame; every table frame comes from a
//!    [`FrameSource`] of frames mapped nowhere, and is zeroed with `MMUEXT_CLEAR_PAGE`
//!    (the guest cannot write it: it is not mapped, and must not be, writable, once it is a
//!    table).
//! 2. [`AddressSpace::share_slot`] copies a top-level entry of the current tables, so that the
//!    kernel's own mappings (code, data, stack) stay in place after the switch;
//!    [`AddressSpace::map`] queues the entries. While the tables are still plain frames,
//!    `pt_update` on them is a checked data write: the hypervisor validates each table
//!    once, when it is pinned, rather than entry by entry.
//! 3. [`AddressSpace::pin`] sends what is queued and pins the tables bottom-up (L1s, L2s,
//!    L3s, then the L4) in one `mmuext_op` batch.
//! 4. [`AddressSpace::activate`] switches to it (`MMUEXT_NEW_BASEPTR`);
//!    [`AddressSpace::deactivate`] switches back.
//! 5. [`AddressSpace::teardown`] unpins top-down, so each table's type count drops to zero
//!    as the one above lets go of it, and gives the frames back.
//!
//! Mapping after the pin works too: updates are then validated one by one, and a table
//! added then is typed by the entry that links it, not pinned.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use hypercall_abi::layout::{
    HYPERVISOR_L4_FIRST_SLOT, HYPERVISOR_L4_LAST_SLOT, HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START,
};
use hypercall_abi::mmu::{
    MmuextOp, MMUEXT_CLEAR_PAGE, MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE,
    MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE, MMUEXT_UNPIN_TABLE,
};
use hypercall_abi::types::Mfn;

use super::queue::UpdateQueue;
use super::{
    canonical, entry_maddr, entry_span, ext_op, make_entry, run_ext, table_index, Frame,
    FrameSource, MmError, Mmu, DATA_RO_FLAGS, DATA_RW_FLAGS, PAGE_SIZE, TABLE_FLAGS,
};

/// A table below the L4: its level (1..=3), frame and whether this space pinned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Table {
    /// 1, 2 or 3.
    pub level: u8,
    /// Its frame.
    pub frame: Frame,
    /// Pinned by [`AddressSpace::pin`] (tables added later are held by their parent only).
    pub pinned: bool,
}

/// Where the address space is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Tables are plain frames (or partly pinned after a failed pin).
    Building,
    /// Pinned.
    Pinned,
    /// Pinned and the current base pointer.
    Active,
    /// Unpinned and its frames given back.
    TornDown,
}

/// A 4-level address space under construction or in use.
pub struct AddressSpace {
    l4: Frame,
    l4_pinned: bool,
    /// Tables by (level, first address they cover).
    tables: BTreeMap<(u8, u64), Table>,
    /// Every table frame of this space (the L4 included), for the writable-mapping check.
    table_mfns: BTreeSet<u64>,
    /// The L1 that took the last mapping: (first address it covers, frame). Consecutive
    /// mappings mostly share one, and skip the walk.
    last_l1: Option<(u64, Frame)>,
    /// Top-level slots copied from another space.
    shared: Vec<usize>,
    queue: Box<UpdateQueue>,
    /// Tables allocated whose CLEAR_PAGE has not been sent: sent before any update.
    clears: Vec<MmuextOp>,
    state: State,
    mappings: u64,
}

/// Whether `va` may be mapped by a guest: page aligned, canonical, outside the hypervisor's
/// slice.
pub fn is_guest_page(va: u64) -> bool {
    va.is_multiple_of(PAGE_SIZE)
        && canonical(va) == va
        && !(HYPERVISOR_VIRT_START..HYPERVISOR_VIRT_END).contains(&va)
}

impl AddressSpace {
    /// A new, empty address space: takes and clears (when first flushed) an L4 frame.
    pub fn new(frames: &mut impl FrameSource) -> Result<AddressSpace, MmError> {
        let l4 = frames.alloc_frame().ok_or(MmError::OutOfFrames)?;
        Ok(AddressSpace {
            l4,
            l4_pinned: false,
            tables: BTreeMap::new(),
            table_mfns: BTreeSet::from([l4.mfn.0]),
            last_l1: None,
            shared: Vec::new(),
            queue: Box::new(UpdateQueue::new()),
            clears: alloc::vec![ext_op(MMUEXT_CLEAR_PAGE, l4.mfn.0)],
            state: State::Building,
            mappings: 0,
        })
    }

    /// The top-level table's frame (what `cr3` will hold).
    pub fn l4(&self) -> Frame {
        self.l4
    }

    /// Where the space is in its life.
    pub fn state(&self) -> State {
        self.state
    }

    /// Tables below the L4.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }

    /// Number of tables at `level` (1..=4).
    pub fn table_count(&self, level: u8) -> usize {
        if level == 4 {
            return 1;
        }
        self.tables.values().filter(|t| t.level == level).count()
    }

    /// Leaf entries written by [`AddressSpace::map`].
    pub fn mappings(&self) -> u64 {
        self.mappings
    }

    /// `(batches sent, requests applied)` by the update queue.
    pub fn queue_stats(&self) -> (u64, u64) {
        self.queue.stats()
    }

    /// Whether `mfn` is one of this space's own table frames.
    pub fn is_table(&self, mfn: Mfn) -> bool {
        self.table_mfns.contains(&mfn.0)
    }

    /// The frame of the level-`level` table covering `va`, if there is one.
    pub fn table_for(&self, level: u8, va: u64) -> Option<Frame> {
        if level == 4 {
            return Some(self.l4);
        }
        let key = (level, va & !(entry_span(level + 1) - 1));
        self.tables.get(&key).map(|t| t.frame)
    }

    /// Queues one entry update, first sending pending clears and updates if the queue is full.
    fn queue_update(&mut self, mmu: &mut impl Mmu, ptr: u64, val: u64) -> Result<(), MmError> {
        if self.queue.is_full() {
            self.flush(mmu)?;
        }
        self.queue.update(mmu, ptr, val)
    }

    /// Sends pending table clears, then every queued update (one `mmuext_op` and one
    /// `pt_update` call at most).
    pub fn flush(&mut self, mmu: &mut impl Mmu) -> Result<(), MmError> {
        if !self.clears.is_empty() {
            let clears = core::mem::take(&mut self.clears);
            run_ext(mmu, &clears)?;
        }
        self.queue.flush(mmu)
    }

    /// Makes top-level slot `slot` point where `entry` (an entry of the current L4) points,
    /// so the mappings under it stay the same in this space. The hypervisor's slots are
    /// its own business (it fills them when it validates the L4) and are refused.
    pub fn share_slot(
        &mut self,
        mmu: &mut impl Mmu,
        slot: usize,
        entry: u64,
    ) -> Result<(), MmError> {
        let va = canonical((slot as u64) << 39);
        if slot >= 512 || (HYPERVISOR_L4_FIRST_SLOT..=HYPERVISOR_L4_LAST_SLOT).contains(&slot) {
            return Err(MmError::BadAddress(va));
        }
        if self
            .tables
            .keys()
            .any(|&(level, base)| level == 3 && table_index(base, 4) == slot)
        {
            return Err(MmError::WrongState(
                "the slot already holds this space's own tables",
            ));
        }
        if !self.shared.contains(&slot) {
            self.shared.push(slot);
        }
        self.queue_update(mmu, entry_maddr(self.l4.mfn, slot), entry)
    }

    /// The table at `level` covering `va`, allocated, queued for clearing and linked into
    /// its parent if it does not exist yet.
    fn ensure_table(
        &mut self,
        mmu: &mut impl Mmu,
        frames: &mut impl FrameSource,
        level: u8,
        va: u64,
    ) -> Result<Frame, MmError> {
        let key = (level, va & !(entry_span(level + 1) - 1));
        if let Some(t) = self.tables.get(&key) {
            return Ok(t.frame);
        }
        let parent = self
            .table_for(level + 1, va)
            .ok_or(MmError::WrongState("parent table missing"))?;
        let frame = frames.alloc_frame().ok_or(MmError::OutOfFrames)?;
        self.clears.push(ext_op(MMUEXT_CLEAR_PAGE, frame.mfn.0));
        self.table_mfns.insert(frame.mfn.0);
        self.tables.insert(
            key,
            Table {
                level,
                frame,
                pinned: false,
            },
        );
        self.queue_update(
            mmu,
            entry_maddr(parent.mfn, table_index(va, level + 1)),
            make_entry(frame.mfn, TABLE_FLAGS),
        )?;
        Ok(frame)
    }

    /// Queues a mapping of the page at `va` to machine frame `mfn`, writable or read-only,
    /// creating the tables on the way. Page-table frames of this space may be mapped
    /// read-only only (the hypervisor refuses a writable mapping of any page table; this
    /// says so before asking).
    pub fn map(
        &mut self,
        mmu: &mut impl Mmu,
        frames: &mut impl FrameSource,
        va: u64,
        mfn: Mfn,
        writable: bool,
    ) -> Result<(), MmError> {
        self.check_mappable(va)?;
        if writable && self.is_table(mfn) {
            return Err(MmError::TableMappedWritable(mfn));
        }
        let l1_base = va & !(entry_span(2) - 1);
        let l1 = match self.last_l1 {
            Some((base, frame)) if base == l1_base => frame,
            _ => {
                self.ensure_table(mmu, frames, 3, va)?;
                self.ensure_table(mmu, frames, 2, va)?;
                let frame = self.ensure_table(mmu, frames, 1, va)?;
                self.last_l1 = Some((l1_base, frame));
                frame
            }
        };
        let flags = if writable {
            DATA_RW_FLAGS
        } else {
            DATA_RO_FLAGS
        };
        self.queue_update(
            mmu,
            entry_maddr(l1.mfn, table_index(va, 1)),
            make_entry(mfn, flags),
        )?;
        self.mappings += 1;
        Ok(())
    }

    /// Queues the removal of the mapping at `va` (tables stay).
    pub fn unmap(&mut self, mmu: &mut impl Mmu, va: u64) -> Result<(), MmError> {
        self.check_mappable(va)?;
        match self.table_for(1, va) {
            Some(l1) => self.queue_update(mmu, entry_maddr(l1.mfn, table_index(va, 1)), 0),
            None => Ok(()),
        }
    }

    fn check_mappable(&self, va: u64) -> Result<(), MmError> {
        if self.state == State::TornDown {
            return Err(MmError::WrongState("the address space is torn down"));
        }
        if !is_guest_page(va) {
            return Err(MmError::BadAddress(va));
        }
        if self.shared.contains(&table_index(va, 4)) {
            return Err(MmError::SharedSlot(va));
        }
        Ok(())
    }

    /// Sends what is queued and pins every table not pinned yet, bottom-up (L1s, L2s, L3s,
    /// the L4), in one `mmuext_op` batch. After a failure the tables pinned before the
    /// failing one stay pinned (and [`AddressSpace::teardown`] unpins them).
    pub fn pin(&mut self, mmu: &mut impl Mmu) -> Result<(), MmError> {
        if self.state == State::TornDown {
            return Err(MmError::WrongState("the address space is torn down"));
        }
        self.flush(mmu)?;
        let mut keys: Vec<(u8, u64)> = self
            .tables
            .iter()
            .filter(|(_, t)| !t.pinned)
            .map(|(k, _)| *k)
            .collect();
        keys.sort_by_key(|&(level, base)| (level, base));
        let mut ops: Vec<MmuextOp> = keys
            .iter()
            .map(|k| ext_op(pin_cmd(k.0), self.tables[k].frame.mfn.0))
            .collect();
        if !self.l4_pinned {
            ops.push(ext_op(MMUEXT_PIN_L4_TABLE, self.l4.mfn.0));
        }
        let result = run_ext(mmu, &ops);
        let pinned = match result {
            Ok(()) => ops.len(),
            Err(MmError::Ext { index, .. }) => index,
            Err(_) => 0,
        };
        for k in keys.iter().take(pinned) {
            if let Some(t) = self.tables.get_mut(k) {
                t.pinned = true;
            }
        }
        if pinned == ops.len() {
            self.l4_pinned = true;
            if self.state == State::Building {
                self.state = State::Pinned;
            }
        }
        result
    }

    /// Switches to this space (`MMUEXT_NEW_BASEPTR`), after sending what is queued.
    pub fn activate(&mut self, mmu: &mut impl Mmu) -> Result<(), MmError> {
        if self.state != State::Pinned {
            return Err(MmError::WrongState(
                "only a pinned, inactive space can be switched to",
            ));
        }
        self.flush(mmu)?;
        run_ext(mmu, &[ext_op(MMUEXT_NEW_BASEPTR, self.l4.mfn.0)])?;
        self.state = State::Active;
        Ok(())
    }

    /// Switches back to the space whose L4 is `previous`.
    pub fn deactivate(&mut self, mmu: &mut impl Mmu, previous: Mfn) -> Result<(), MmError> {
        if self.state != State::Active {
            return Err(MmError::WrongState("the space is not active"));
        }
        run_ext(mmu, &[ext_op(MMUEXT_NEW_BASEPTR, previous.0)])?;
        self.state = State::Pinned;
        Ok(())
    }

    /// Unpins the tables top-down (the L4, then L3s, L2s, L1s: each one's type count falls
    /// to zero once the table above has let go of it) and gives every table frame back.
    /// Queued updates are dropped. The space must not be active.
    pub fn teardown(
        &mut self,
        mmu: &mut impl Mmu,
        frames: &mut impl FrameSource,
    ) -> Result<(), MmError> {
        match self.state {
            State::Active => return Err(MmError::WrongState("cannot tear down the active space")),
            State::TornDown => return Ok(()),
            State::Building | State::Pinned => {}
        }
        self.queue.discard();
        self.clears.clear();
        let mut keys: Vec<(u8, u64)> = self.tables.keys().copied().collect();
        keys.sort_by_key(|&(level, base)| (core::cmp::Reverse(level), base));
        let mut ops = Vec::new();
        if self.l4_pinned {
            ops.push(ext_op(MMUEXT_UNPIN_TABLE, self.l4.mfn.0));
        }
        ops.extend(
            keys.iter()
                .filter(|k| self.tables[k].pinned)
                .map(|k| ext_op(MMUEXT_UNPIN_TABLE, self.tables[k].frame.mfn.0)),
        );
        run_ext(mmu, &ops)?;
        self.l4_pinned = false;
        for t in self.tables.values_mut() {
            t.pinned = false;
        }
        for k in keys {
            if let Some(t) = self.tables.remove(&k) {
                frames.free_frame(t.frame);
            }
        }
        self.table_mfns.clear();
        self.last_l1 = None;
        frames.free_frame(self.l4);
        self.state = State::TornDown;
        Ok(())
    }
}

/// `MMUEXT_PIN_Lk_TABLE` for `level`.
const fn pin_cmd(level: u8) -> u32 {
    match level {
        1 => MMUEXT_PIN_L1_TABLE,
        2 => MMUEXT_PIN_L2_TABLE,
        3 => MMUEXT_PIN_L3_TABLE,
        _ => MMUEXT_PIN_L4_TABLE,
    }
}

#[cfg(test)]
mod tests;
