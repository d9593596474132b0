//! Another domain's memory, as a privileged domain (dom0's domain builder) reaches it:
//! `memory_op(XENMEM_populate_physmap)` on its behalf, and a [`ForeignWindow`] of this
//! domain's address space whose L1 entries map its frames (`pt_update` with `foreigndom`).
//!
//! The window is a run of page slots at a fixed, 2 MiB-aligned address under one of this
//! domain's existing L2 tables. Its L1 tables are made on first use from frames mapped
//! nowhere (cleared with `MMUEXT_CLEAR_PAGE`, then linked into the L2, which validates them)
//! and kept for the next build. [`ForeignWindow::map`] fills slots `0..n` with writable
//! mappings of `n` foreign frames in batches; [`ForeignWindow::unmap`] clears them all and
//! flushes the TLB, so none of the target's frames stays mapped writable here: its page
//! tables could not be validated while they were, and a stale translation would let a later
//! build write into frames that are no longer the target's.
//!
//! The table bookkeeping is portable and host-tested through [`ForeignMmu`]; the hypercalls
//! and the byte copies exist on the guest target only.
#![cfg_attr(not(target_os = "none"), forbid(unsafe_code))]

use alloc::vec::Vec;

use hypercall_abi::mmu::{MmuUpdate, MmuextOp, MMUEXT_CLEAR_PAGE, MMUEXT_TLB_FLUSH_LOCAL};
use hypercall_abi::types::{Mfn, DOMID_SELF};

use crate::mm::space::is_guest_page;
use crate::mm::{
    entry_maddr, entry_span, ext_op, make_entry, run_ext, table_index, BatchFailure, FrameSource,
    MmError, Mmu, DATA_RW_FLAGS, ENTRIES, PAGE_SIZE, TABLE_FLAGS,
};

/// Requests per `pt_update` call (the hypervisor continues longer batches itself, but one
/// batch per 2 MiB keeps the request buffer small).
const BATCH: usize = ENTRIES;

/// The hypervisor as the window needs it: `pt_update` naming the domain whose frames the
/// entries map, besides the ordinary calls.
pub trait ForeignMmu: Mmu {
    /// `pt_update(reqs, foreigndom)`: entries in our tables mapping frames of `foreigndom`
    /// (`DOMID_SELF` for our own); `Err` names how many requests were done.
    fn pt_update_foreign(
        &mut self,
        reqs: &[MmuUpdate],
        foreigndom: u16,
    ) -> Result<(), BatchFailure>;
}

/// A run of page slots in this domain's address space for mapping another domain's frames.
#[derive(Debug)]
pub struct ForeignWindow {
    /// Virtual address of slot 0 (2 MiB aligned).
    base: u64,
    /// The L2 table covering the window.
    l2: Mfn,
    /// The L1 tables made so far: table `k` maps slots `512 k .. 512 (k + 1)`.
    l1s: Vec<Mfn>,
    /// Most slots the window may have.
    max_pages: usize,
    /// Slots `0..mapped` hold foreign mappings.
    mapped: usize,
}

impl ForeignWindow {
    /// A window of at most `max_pages` slots at `base`, whose L1 tables will hang under the
    /// L2 table `l2` (the one covering `base`, with its entries for the window empty).
    /// Nothing is sent to the hypervisor until the first [`ForeignWindow::map`].
    pub fn new(base: u64, l2: Mfn, max_pages: usize) -> Result<ForeignWindow, MmError> {
        let span = entry_span(2);
        let last = (max_pages as u64)
            .checked_mul(PAGE_SIZE)
            .and_then(|bytes| bytes.checked_sub(1))
            .and_then(|bytes| base.checked_add(bytes));
        let fits = match last {
            // One L2 covers 1 GiB: the window must not leave it.
            Some(last) => is_guest_page(last & !(PAGE_SIZE - 1)) && last >> 30 == base >> 30,
            None => false,
        };
        if !base.is_multiple_of(span) || !is_guest_page(base) || !fits {
            return Err(MmError::BadAddress(base));
        }
        Ok(ForeignWindow {
            base,
            l2,
            l1s: Vec::new(),
            max_pages,
            mapped: 0,
        })
    }

    /// Virtual address of slot 0.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Most slots the window can map at once.
    pub fn capacity(&self) -> usize {
        self.max_pages
    }

    /// Slots mapped now (`0..mapped()`).
    pub fn mapped(&self) -> usize {
        self.mapped
    }

    /// L1 tables made so far.
    pub fn l1_tables(&self) -> &[Mfn] {
        &self.l1s
    }

    /// Virtual address of `slot`.
    pub fn slot_va(&self, slot: usize) -> u64 {
        self.base + slot as u64 * PAGE_SIZE
    }

    /// Makes L1 tables for slots `0..pages`.
    fn ensure_tables(
        &mut self,
        mmu: &mut impl ForeignMmu,
        frames: &mut impl FrameSource,
        pages: usize,
    ) -> Result<(), MmError> {
        let needed = pages.div_ceil(ENTRIES);
        if needed <= self.l1s.len() {
            return Ok(());
        }
        let mut fresh = Vec::new();
        for _ in self.l1s.len()..needed {
            match frames.alloc_frame() {
                Some(frame) => fresh.push(frame),
                None => {
                    fresh.into_iter().for_each(|f| frames.free_frame(f));
                    return Err(MmError::OutOfFrames);
                }
            }
        }
        let clears: Vec<MmuextOp> = fresh
            .iter()
            .map(|f| ext_op(MMUEXT_CLEAR_PAGE, f.mfn.0))
            .collect();
        if let Err(e) = run_ext(mmu, &clears) {
            fresh.into_iter().for_each(|f| frames.free_frame(f));
            return Err(e);
        }
        let first_index = table_index(self.base, 2);
        let links: Vec<MmuUpdate> = fresh
            .iter()
            .enumerate()
            .map(|(k, f)| MmuUpdate {
                ptr: entry_maddr(self.l2, first_index + self.l1s.len() + k),
                val: make_entry(f.mfn, TABLE_FLAGS),
            })
            .collect();
        let result = mmu.pt_update_foreign(&links, DOMID_SELF);
        let linked = match result {
            Ok(()) => fresh.len(),
            Err(failure) => failure.done.min(fresh.len()),
        };
        let mut rest = fresh.into_iter();
        self.l1s.extend(rest.by_ref().take(linked).map(|f| f.mfn));
        rest.for_each(|f| frames.free_frame(f));
        result.map_err(|failure| {
            let index = failure.done.min(links.len() - 1);
            MmError::Update {
                request: links[index],
                index,
                applied: index,
                errno: failure.errno,
            }
        })
    }

    /// Maps `mfns` (frames of domain `dom`) writable at slots `0..mfns.len()`, making L1
    /// tables first if the window has too few. On failure nothing stays mapped.
    pub fn map(
        &mut self,
        mmu: &mut impl ForeignMmu,
        frames: &mut impl FrameSource,
        dom: u16,
        mfns: &[u64],
    ) -> Result<(), MmError> {
        if self.mapped != 0 {
            return Err(MmError::WrongState("the foreign window is already in use"));
        }
        if mfns.len() > self.max_pages {
            return Err(MmError::WrongState(
                "more frames than the foreign window has slots",
            ));
        }
        self.ensure_tables(mmu, frames, mfns.len())?;
        if let Err((done, error)) = self.write_slots(mmu, 0, dom, mfns, DATA_RW_FLAGS) {
            self.mapped = done;
            // Best effort: the map error is the one worth reporting.
            let _ = self.unmap(mmu);
            return Err(error);
        }
        self.mapped = mfns.len();
        Ok(())
    }

    /// Writes the entries mapping `mfns` (frames of `dom`) at slots `first..`, in batches
    /// (their L1 tables exist); on failure, how many slots were mapped and the error.
    fn write_slots(&self, mmu: &mut impl ForeignMmu, first: usize, dom: u16, mfns: &[u64], flags: u64) -> Result<(), (usize, MmError)> {
        let mut reqs = Vec::with_capacity(BATCH.min(mfns.len()));
        for (chunk_index, chunk) in mfns.chunks(BATCH).enumerate() {
            let start = first + chunk_index * BATCH;
            reqs.clear();
            reqs.extend(chunk.iter().enumerate().map(|(k, &mfn)| MmuUpdate {
                ptr: entry_maddr(self.l1s[(start + k) / ENTRIES], (start + k) % ENTRIES),
                val: make_entry(Mfn(mfn), flags),
            }));
            if let Err(failure) = mmu.pt_update_foreign(&reqs, dom) {
                let index = failure.done.min(reqs.len() - 1);
                let error = MmError::Update { request: reqs[index], index, applied: index, errno: failure.errno };
                return Err((start - first + index, error));
            }
        }
        Ok(())
    }

    /// Maps one frame of domain `dom` writable at `slot`, for a long-lived mapping (a
    /// back-end's view of a guest's ring page). A window used this way is used only by slot
    /// (its [`ForeignWindow::map`] range stays empty); the caller keeps which slots are
    /// taken.
    pub fn map_slot(
        &mut self,
        mmu: &mut impl ForeignMmu,
        frames: &mut impl FrameSource,
        slot: usize,
        dom: u16,
        mfn: u64,
    ) -> Result<(), MmError> {
        self.map_slots(mmu, frames, slot, dom, &[mfn])
    }

    /// Maps `mfns` (frames of domain `dom`) writable at slots `first..first + mfns.len()`,
    /// by slot as [`ForeignWindow::map_slot`], in batches. On failure the slots before the
    /// failing one stay mapped (the error's `applied` counts them in its batch).
    pub fn map_slots(
        &mut self,
        mmu: &mut impl ForeignMmu,
        frames: &mut impl FrameSource,
        first: usize,
        dom: u16,
        mfns: &[u64],
    ) -> Result<(), MmError> {
        self.map_slots_with(mmu, frames, first, dom, mfns, DATA_RW_FLAGS)
    }

    /// [`ForeignWindow::map_slots`] with the entries' flags given.
    fn map_slots_with(&mut self, mmu: &mut impl ForeignMmu, frames: &mut impl FrameSource, first: usize, dom: u16, mfns: &[u64], flags: u64) -> Result<(), MmError> {
        let end = first.checked_add(mfns.len()).filter(|&e| e <= self.max_pages);
        let (Some(end), 0) = (end, self.mapped) else {
            return Err(MmError::WrongState("no such slot in the foreign window"));
        };
        self.ensure_tables(mmu, frames, end)?;
        self.write_slots(mmu, first, dom, mfns, flags).map_err(|(_, e)| e)
    }

    /// Maps device memory (frames of no domain, which only a privileged domain may map)
    /// writable and uncached (PCD, PWT) at slots `first..first + mfns.len()`, by slot as
    /// [`ForeignWindow::map_slots`].
    pub fn map_device_slots(
        &mut self,
        mmu: &mut impl ForeignMmu,
        frames: &mut impl FrameSource,
        first: usize,
        mfns: &[u64],
    ) -> Result<(), MmError> {
        use hypercall_abi::layout::pte;
        self.map_slots_with(mmu, frames, first, DOMID_SELF, mfns, DATA_RW_FLAGS | pte::PCD | pte::PWT)
    }

    /// Makes the L1 tables of slots `0..end` (a grant mapped at a slot's address with
    /// `GNTTABOP_map_grant_ref` writes an entry of an existing table).
    pub fn prepare(&mut self, mmu: &mut impl ForeignMmu, frames: &mut impl FrameSource, end: usize) -> Result<(), MmError> {
        if end > self.max_pages {
            return Err(MmError::WrongState("no such slot in the foreign window"));
        }
        self.ensure_tables(mmu, frames, end)
    }

    /// Clears `slot` (mapped by [`ForeignWindow::map_slot`]) and flushes this CPU's TLB.
    pub fn unmap_slot(&mut self, mmu: &mut impl ForeignMmu, slot: usize) -> Result<(), MmError> {
        let Some(&l1) = self.l1s.get(slot / ENTRIES) else {
            return Ok(());
        };
        let req = MmuUpdate {
            ptr: entry_maddr(l1, slot % ENTRIES),
            val: 0,
        };
        mmu.pt_update_foreign(&[req], DOMID_SELF)
            .map_err(|failure| MmError::Update {
                request: req,
                index: 0,
                applied: 0,
                errno: failure.errno,
            })?;
        run_ext(mmu, &[ext_op(MMUEXT_TLB_FLUSH_LOCAL, 0)])
    }

    /// Clears every mapped slot and flushes this CPU's TLB. On failure the slots count as
    /// still mapped (clearing an empty entry again is harmless), so a retry is safe.
    pub fn unmap(&mut self, mmu: &mut impl ForeignMmu) -> Result<(), MmError> {
        if self.mapped == 0 {
            return Ok(());
        }
        let mut reqs = Vec::with_capacity(BATCH.min(self.mapped));
        for first in (0..self.mapped).step_by(BATCH) {
            reqs.clear();
            reqs.extend(
                (first..self.mapped.min(first + BATCH)).map(|slot| MmuUpdate {
                    ptr: entry_maddr(self.l1s[slot / ENTRIES], slot % ENTRIES),
                    val: 0,
                }),
            );
            mmu.pt_update_foreign(&reqs, DOMID_SELF)
                .map_err(|failure| {
                    let index = failure.done.min(reqs.len() - 1);
                    MmError::Update {
                        request: reqs[index],
                        index,
                        applied: index,
                        errno: failure.errno,
                    }
                })?;
        }
        run_ext(mmu, &[ext_op(MMUEXT_TLB_FLUSH_LOCAL, 0)])?;
        self.mapped = 0;
        Ok(())
    }
}

#[cfg(target_os = "none")]
mod guest {
    use hypercall_abi::errno::Errno;
    use hypercall_abi::hypercall::Hypercall;
    use hypercall_abi::memory::{XenMemoryReservation, XENMEM_POPULATE_PHYSMAP};
    use hypercall_abi::mmu::MmuUpdate;

    use super::{ForeignMmu, ForeignWindow};
    use crate::hypercall::{check, hypercall_via_page};
    use crate::mm::xen::{memory_op_raw, XenMmu};
    use crate::mm::{BatchFailure, PAGE_SIZE};

    impl ForeignMmu for XenMmu {
        fn pt_update_foreign(
            &mut self,
            reqs: &[MmuUpdate],
            foreigndom: u16,
        ) -> Result<(), BatchFailure> {
            let mut done: u32 = 0;
            // SAFETY: the hypervisor reads `reqs.len()` requests and writes the done count,
            // both ours. The requests change our own page tables, which the hypervisor
            // validates; the window's users (below) only touch slots mapped by them.
            let ret = unsafe {
                hypercall_via_page(
                    Hypercall::PtUpdate as u64,
                    reqs.as_ptr() as u64,
                    reqs.len() as u64,
                    (&raw mut done) as u64,
                    u64::from(foreigndom),
                    0,
                )
            };
            match ret {
                0 => Ok(()),
                _ => Err(BatchFailure {
                    done: done as usize,
                    errno: Errno::from_ret(ret).unwrap_or(Errno::EINVAL),
                }),
            }
        }
    }

    /// `XENMEM_populate_physmap` of single pages for domain `dom` (privileged, while
    /// building it): `list` holds its pfns on the way in and the machine frames it got on
    /// the way out. Returns how many were populated (fewer than asked when memory ran out).
    pub fn populate_physmap_foreign(dom: u16, list: &mut [u64]) -> Result<u64, Errno> {
        let arg = XenMemoryReservation {
            extent_start: list.as_mut_ptr() as u64,
            nr_extents: list.len() as u64,
            extent_order: 0,
            mem_flags: 0,
            domid: dom,
            _pad: [0; 3],
        };
        // SAFETY: the hypervisor reads `arg` and reads and writes the extent list, both ours.
        check(unsafe { memory_op_raw(XENMEM_POPULATE_PHYSMAP, (&raw const arg) as u64) })
    }

    impl ForeignWindow {
        /// The page at `slot` if it is mapped.
        fn slot_ptr(&self, slot: usize) -> Option<*mut u8> {
            (slot < self.mapped).then(|| self.slot_va(slot) as *mut u8)
        }

        /// Copies `bytes` into the foreign frame at `slot`, from byte `offset`; `None` if
        /// the slot is not mapped or the copy would leave the page.
        pub fn write(&mut self, slot: usize, offset: usize, bytes: &[u8]) -> Option<()> {
            let end = offset.checked_add(bytes.len())?;
            if end > PAGE_SIZE as usize {
                return None;
            }
            let page = self.slot_ptr(slot)?;
            // No Rust reference to the window's pages exists (they are only reached through
            // these copies, under `&mut self`), and the target is being built and does not
            // run, so nothing else writes the page meanwhile.
            // SAFETY: `slot` is mapped writable by `map` to a frame of the target domain (the
            // hypervisor let us map it), and `offset..end` lies within the page.
            unsafe {
                core::ptr::copy_nonoverlapping(bytes.as_ptr(), page.add(offset), bytes.len())
            };
            Some(())
        }

        /// Fills the foreign frame at `slot` with zeros; `None` if it is not mapped.
        pub fn zero(&mut self, slot: usize) -> Option<()> {
            let page = self.slot_ptr(slot)?;
            // SAFETY: as in `write`, for the whole page.
            unsafe { core::ptr::write_bytes(page, 0, PAGE_SIZE as usize) };
            Some(())
        }

        /// Copies the foreign frame at `slot`, from byte `offset`, into `out`; `None` if the
        /// slot is not mapped or the read would leave the page.
        pub fn read(&self, slot: usize, offset: usize, out: &mut [u8]) -> Option<()> {
            let end = offset.checked_add(out.len())?;
            if end > PAGE_SIZE as usize {
                return None;
            }
            let page = self.slot_ptr(slot)?;
            // SAFETY: as in `write`, reading.
            unsafe {
                core::ptr::copy_nonoverlapping(page.add(offset), out.as_mut_ptr(), out.len())
            };
            Some(())
        }
    }
}

#[cfg(target_os = "none")]
pub use guest::populate_physmap_foreign;

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::mm::Frame;
    use hypercall_abi::errno::Errno;
    use hypercall_abi::types::Pfn;
    use std::collections::BTreeMap;
    use std::vec;

    const BASE: u64 = 0xffff_ffff_8400_0000;

    /// Entries by machine address, the domain each `pt_update` named, and the ext ops.
    #[derive(Default)]
    struct Fake {
        entries: BTreeMap<u64, (u64, u16)>,
        calls: Vec<(usize, u16)>,
        ext: Vec<MmuextOp>,
        /// Refuse the request whose value maps this frame.
        refuse_mfn: Option<u64>,
        /// Refuse every ext op.
        refuse_ext: bool,
    }

    impl Mmu for Fake {
        fn pt_update(&mut self, reqs: &[MmuUpdate]) -> Result<(), BatchFailure> {
            self.pt_update_foreign(reqs, DOMID_SELF)
        }
        fn mmuext(&mut self, ops: &[MmuextOp]) -> Result<(), BatchFailure> {
            if self.refuse_ext {
                return Err(BatchFailure {
                    done: 0,
                    errno: Errno::EINVAL,
                });
            }
            self.ext.extend_from_slice(ops);
            Ok(())
        }
    }

    impl ForeignMmu for Fake {
        fn pt_update_foreign(
            &mut self,
            reqs: &[MmuUpdate],
            foreigndom: u16,
        ) -> Result<(), BatchFailure> {
            self.calls.push((reqs.len(), foreigndom));
            for (done, r) in reqs.iter().enumerate() {
                if r.val != 0 && Some(r.val >> 12) == self.refuse_mfn {
                    return Err(BatchFailure {
                        done,
                        errno: Errno::EPERM,
                    });
                }
                if r.val == 0 {
                    self.entries.remove(&r.ptr);
                } else {
                    self.entries.insert(r.ptr, (r.val, foreigndom));
                }
            }
            Ok(())
        }
    }

    /// Frames 0x100.. for tables; counts what is out.
    struct Frames {
        next: u64,
        limit: u64,
        freed: Vec<u64>,
    }

    impl FrameSource for Frames {
        fn alloc_frame(&mut self) -> Option<Frame> {
            if self.next >= self.limit {
                return None;
            }
            self.next += 1;
            Some(Frame {
                pfn: Pfn(self.next),
                mfn: Mfn(0x1000 + self.next),
            })
        }
        fn free_frame(&mut self, frame: Frame) {
            self.freed.push(frame.mfn.0);
        }
    }

    fn frames() -> Frames {
        Frames {
            next: 0,
            limit: 100,
            freed: Vec::new(),
        }
    }

    const L2: Mfn = Mfn(0x77);

    #[test]
    fn placement_is_checked() {
        assert!(ForeignWindow::new(BASE, L2, 4096).is_ok());
        // Not 2 MiB aligned.
        assert!(ForeignWindow::new(BASE + 0x1000, L2, 1).is_err());
        // Leaves the 1 GiB the L2 covers.
        assert!(ForeignWindow::new(0xffff_ffff_bfe0_0000, L2, 513).is_err());
        assert!(ForeignWindow::new(0xffff_ffff_bfe0_0000, L2, 512).is_ok());
        // The hypervisor's slice, non-canonical, empty, or overflowing.
        assert!(ForeignWindow::new(0xffff_8000_0000_0000, L2, 1).is_err());
        assert!(ForeignWindow::new(0x0000_8000_0000_0000, L2, 1).is_err());
        assert!(ForeignWindow::new(BASE, L2, 0).is_err());
        assert!(ForeignWindow::new(BASE, L2, usize::MAX).is_err());
    }

    #[test]
    fn map_links_tables_once_and_unmap_clears_everything() {
        let mut mmu = Fake::default();
        let mut f = frames();
        let mut w = ForeignWindow::new(BASE, L2, 4096).unwrap();
        let mfns: Vec<u64> = (0..700).map(|i| 0x5_0000 + i * 3).collect();
        w.map(&mut mmu, &mut f, 7, &mfns).unwrap();
        assert_eq!(w.mapped(), 700);
        // Two L1 tables, cleared, then linked into the L2 at the window's index.
        assert_eq!(w.l1_tables(), &[Mfn(0x1001), Mfn(0x1002)]);
        assert_eq!(mmu.ext[0], ext_op(MMUEXT_CLEAR_PAGE, 0x1001));
        let idx = table_index(BASE, 2);
        assert_eq!(
            mmu.entries[&entry_maddr(L2, idx + 1)],
            (make_entry(Mfn(0x1002), TABLE_FLAGS), DOMID_SELF)
        );
        // Every slot maps its frame writable, named as domain 7's, in batches of 512.
        for (slot, &mfn) in mfns.iter().enumerate() {
            let at = entry_maddr(w.l1_tables()[slot / 512], slot % 512);
            assert_eq!(mmu.entries[&at], (make_entry(Mfn(mfn), DATA_RW_FLAGS), 7));
        }
        assert!(mmu.calls.contains(&(512, 7)) && mmu.calls.contains(&(188, 7)));
        assert_eq!(w.slot_va(3), BASE + 3 * 4096);

        w.unmap(&mut mmu).unwrap();
        assert_eq!(w.mapped(), 0);
        // Only the two table links remain, and the TLB was flushed.
        assert_eq!(mmu.entries.len(), 2);
        assert_eq!(mmu.ext.last(), Some(&ext_op(MMUEXT_TLB_FLUSH_LOCAL, 0)));

        // A second, smaller build reuses the tables.
        w.map(&mut mmu, &mut f, 8, &mfns[..10]).unwrap();
        assert_eq!(w.l1_tables().len(), 2);
        assert_eq!(f.next, 2);
        // The window is busy until unmapped.
        assert!(w.map(&mut mmu, &mut f, 8, &mfns[..1]).is_err());
        w.unmap(&mut mmu).unwrap();
        assert_eq!(mmu.entries.len(), 2);
    }

    #[test]
    fn single_slots_map_and_unmap_alone() {
        let mut mmu = Fake::default();
        let mut f = frames();
        let mut w = ForeignWindow::new(BASE, L2, 512).unwrap();
        w.map_slot(&mut mmu, &mut f, 5, 3, 0x9000).unwrap();
        w.map_slot(&mut mmu, &mut f, 9, 4, 0x9100).unwrap();
        assert_eq!(w.l1_tables().len(), 1);
        assert_eq!(w.mapped(), 0);
        let l1 = w.l1_tables()[0];
        let at = |slot: usize| entry_maddr(l1, slot);
        assert_eq!(mmu.entries[&at(5)], (make_entry(Mfn(0x9000), DATA_RW_FLAGS), 3));
        w.unmap_slot(&mut mmu, 5).unwrap();
        assert!(!mmu.entries.contains_key(&at(5)), "cleared");
        assert_eq!(mmu.entries[&at(9)], (make_entry(Mfn(0x9100), DATA_RW_FLAGS), 4));
        assert_eq!(mmu.ext.last(), Some(&ext_op(MMUEXT_TLB_FLUSH_LOCAL, 0)));
        // Past the window: refused.
        assert!(w.map_slot(&mut mmu, &mut f, 512, 3, 0x9000).is_err());
    }

    #[test]
    fn runs_of_slots_map_in_batches_across_tables() {
        let mut mmu = Fake::default();
        let mut f = frames();
        let mut w = ForeignWindow::new(BASE, L2, 2048).unwrap();
        let mfns: Vec<u64> = (0..700).map(|i| 0x7_0000 + i).collect();
        w.map_slots(&mut mmu, &mut f, 500, DOMID_SELF, &mfns).unwrap();
        assert_eq!(w.l1_tables().len(), 3, "slots 500..1200 need tables 0, 1 and 2");
        let at = |slot: usize| entry_maddr(w.l1_tables()[slot / ENTRIES], slot % ENTRIES);
        assert_eq!(mmu.entries[&at(500)], (make_entry(Mfn(0x7_0000), DATA_RW_FLAGS), DOMID_SELF));
        assert_eq!(mmu.entries[&at(1199)], (make_entry(Mfn(0x7_0000 + 699), DATA_RW_FLAGS), DOMID_SELF));
        assert!(!mmu.entries.contains_key(&at(1200)));
        // Past the window's end: refused before anything is sent.
        let before = mmu.entries.len();
        assert!(w.map_slots(&mut mmu, &mut f, 2000, DOMID_SELF, &mfns[..49]).is_err());
        assert!(w.map_slots(&mut mmu, &mut f, usize::MAX, DOMID_SELF, &mfns[..2]).is_err());
        assert_eq!(mmu.entries.len(), before);
    }

    #[test]
    fn a_refused_frame_leaves_nothing_mapped() {
        let mut mmu = Fake {
            refuse_mfn: Some(0x5_0000 + 600),
            ..Fake::default()
        };
        let mut f = frames();
        let mut w = ForeignWindow::new(BASE, L2, 1024).unwrap();
        let mfns: Vec<u64> = (0..1000).map(|i| 0x5_0000 + i).collect();
        let err = w.map(&mut mmu, &mut f, 3, &mfns).unwrap_err();
        assert_eq!(err.errno(), Some(Errno::EPERM));
        assert!(matches!(err, MmError::Update { index: 88, .. }), "{err:?}");
        assert_eq!(w.mapped(), 0);
        // Only the table links are left.
        assert_eq!(mmu.entries.len(), 2);
        assert_eq!(mmu.ext.last(), Some(&ext_op(MMUEXT_TLB_FLUSH_LOCAL, 0)));
    }

    #[test]
    fn too_many_frames_or_no_tables_are_refused_cleanly() {
        let mut mmu = Fake::default();
        let mut w = ForeignWindow::new(BASE, L2, 600).unwrap();
        assert!(matches!(
            w.map(&mut mmu, &mut frames(), 1, &vec![1; 601]),
            Err(MmError::WrongState(_))
        ));
        // Out of frames for the second table: the first goes back too.
        let mut few = Frames {
            next: 0,
            limit: 1,
            freed: Vec::new(),
        };
        assert_eq!(
            w.map(&mut mmu, &mut few, 1, &vec![1; 600]),
            Err(MmError::OutOfFrames)
        );
        assert_eq!(few.freed, [0x1001]);
        assert!(mmu.calls.is_empty());
        // The clear refused: the frames go back, nothing is linked.
        let mut mmu = Fake {
            refuse_ext: true,
            ..Fake::default()
        };
        let mut f = frames();
        assert!(w.map(&mut mmu, &mut f, 1, &[5]).is_err());
        assert_eq!(f.freed, [0x1001]);
        assert!(w.l1_tables().is_empty());
        // A refused link: the table frame goes back.
        let mut mmu = Fake {
            refuse_mfn: Some(0x1001),
            ..Fake::default()
        };
        let mut f = frames();
        assert!(w.map(&mut mmu, &mut f, 1, &[5]).is_err());
        assert_eq!(f.freed, [0x1001]);
        assert!(w.l1_tables().is_empty());
        assert_eq!(w.mapped(), 0);
    }
}
