//! Per-frame accounting for direct paging: who owns each machine frame, what it is used as
//! (writable data or a page table of one level) and how many references hold it.
//!
//! The rules that use these counts live in [`super::validate`] and [`super::ops`]; this file
//! holds the data and the few operations that need no page-table knowledge (giving a frame
//! to a domain, sharing a hypervisor frame, statistics).
//!
//! A frame's counts mean (as Xen's `count_info` and `type_info`):
//! - `count`, the general reference count: 1 for the allocation (while the domain holds the
//!   frame in its reservation) + 1 per present entry of a validated table that references
//!   it + 1 per pin + 1 per base-pointer use (+ 1 held by the hypervisor for a shared
//!   frame). The frame belongs to its owner while `count > 0` and goes back to the frame
//!   source when it reaches zero.
//! - `type_count`, the references of its current type: for `Writable`, the read-write L1
//!   entries (of validated L1 tables) mapping it; for `L1..L4`, the entries one level up
//!   that reference it, pins and base-pointer uses. The type may change only while
//!   `type_count` is zero, which is what keeps a page table from being writable anywhere.
//!   Every type reference comes with a general reference from the same holder, so
//!   `count >= type_count` always.
//!
//! References may come from another domain: a privileged domain's L1 entries may map the
//! frames of a domain it builds (a *page owner*, Xen's `pg_owner`). Such a frame can outlive
//! its owner's allocation reference, and its last reference may then be dropped while the
//! operation runs for the other domain. The frame still goes back to the frame source at
//! once, but the owner's accounting cannot be reached from there: the release is recorded
//! in the frame table ([`FrameTable::pop_foreign_release`]) and the machine charges it to
//! the owner ([`DomainMm::charge_foreign_release`]) when the operation is over.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use hypercall_abi::errno::Errno;
use hypercall_abi::sysctl::MemStats;

/// What a frame is used as.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PageType {
    /// Nothing (type count zero).
    #[default]
    None = 0,
    /// Data the guest may map writable.
    Writable = 1,
    /// Level-1 page table (maps 4 KiB pages).
    L1 = 2,
    /// Level-2 page table.
    L2 = 3,
    /// Level-3 page table.
    L3 = 4,
    /// Level-4 (top-level) page table.
    L4 = 5,
    /// Descriptor table (a guest's GDT frame, Xen's `PGT_seg_desc_page`).
    SegDesc = 6,
}

impl PageType {
    /// The page-table level of this type, if it is one.
    pub const fn level(self) -> Option<Level> {
        match self {
            PageType::L1 => Some(Level::L1),
            PageType::L2 => Some(Level::L2),
            PageType::L3 => Some(Level::L3),
            PageType::L4 => Some(Level::L4),
            PageType::None | PageType::Writable | PageType::SegDesc => None,
        }
    }
}

/// A page-table level. Every recursion in the validator steps from one level to the one
/// below ([`Level::lower`]), so its depth is bounded by the four levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Maps 4 KiB pages.
    L1 = 1,
    /// Entries reference L1 tables.
    L2 = 2,
    /// Entries reference L2 tables.
    L3 = 3,
    /// The top level; entries reference L3 tables.
    L4 = 4,
}

impl Level {
    /// Top level first, as teardown visits them.
    pub const TOP_DOWN: [Level; 4] = [Level::L4, Level::L3, Level::L2, Level::L1];

    /// The level an entry of this level references (`None` for L1: entries map pages).
    pub const fn lower(self) -> Option<Level> {
        match self {
            Level::L4 => Some(Level::L3),
            Level::L3 => Some(Level::L2),
            Level::L2 => Some(Level::L1),
            Level::L1 => None,
        }
    }

    /// The frame type of a table of this level.
    pub const fn page_type(self) -> PageType {
        match self {
            Level::L1 => PageType::L1,
            Level::L2 => PageType::L2,
            Level::L3 => PageType::L3,
            Level::L4 => PageType::L4,
        }
    }

    /// Bit position of the address bits an entry of this level translates (12, 21, 30, 39).
    pub const fn shift(self) -> u32 {
        12 + 9 * (self as u32 - 1)
    }

    /// Index of the entry of this level that translates `va`.
    pub const fn index(self, va: u64) -> usize {
        ((va >> self.shift()) & 511) as usize
    }
}

const F_VALIDATED: u8 = 1 << 0;
const F_PINNED: u8 = 1 << 1;
const F_ALLOCATED: u8 = 1 << 2;
const F_SHARED: u8 = 1 << 3;

/// `owner` of a frame nobody owns (free, or the hypervisor's).
const NO_OWNER: u16 = u16::MAX;

/// The accounting of one machine frame (16 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageInfo {
    /// General references.
    pub(super) count: u32,
    /// References of the current type.
    pub(super) type_count: u32,
    /// Flush clock when the frame last lost its type or its owner: a translation to it may
    /// sit in a TLB until the clock moves on.
    pub(super) stamp: u32,
    /// Owning domain, or [`NO_OWNER`].
    pub(super) owner: u16,
    /// The type; while `type_count` is zero, the type it last had.
    pub(super) ty: PageType,
    /// `F_*` bits.
    pub(super) flags: u8,
}

const _: () = assert!(core::mem::size_of::<PageInfo>() == 16);

impl PageInfo {
    /// A frame nobody owns or references.
    pub const FREE: PageInfo =
        PageInfo { count: 0, type_count: 0, stamp: 0, owner: NO_OWNER, ty: PageType::None, flags: 0 };

    /// The owning domain.
    pub fn owner(&self) -> Option<u16> {
        (self.owner != NO_OWNER).then_some(self.owner)
    }

    /// General reference count.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Type reference count.
    pub fn type_count(&self) -> u32 {
        self.type_count
    }

    /// The current type (`None` while the type count is zero).
    pub fn page_type(&self) -> PageType {
        if self.type_count == 0 {
            PageType::None
        } else {
            self.ty
        }
    }

    /// Whether the frame's contents have been checked for its current type (set once a
    /// page table's entries have all taken their references; clear while that is under way
    /// and whenever the type count is zero).
    pub fn is_validated(&self) -> bool {
        self.flags & F_VALIDATED != 0
    }

    /// Whether the frame is pinned as a page table.
    pub fn is_pinned(&self) -> bool {
        self.flags & F_PINNED != 0
    }

    /// Whether the owner's allocation reference is held (the frame is in its reservation).
    pub fn is_allocated(&self) -> bool {
        self.flags & F_ALLOCATED != 0
    }

    /// Whether this is a hypervisor frame shared with its owner (e.g. `shared_info`),
    /// permanently writable and never part of the reservation.
    pub fn is_shared(&self) -> bool {
        self.flags & F_SHARED != 0
    }

    pub(super) fn set_flag(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    pub(super) fn set_validated(&mut self, on: bool) {
        self.set_flag(F_VALIDATED, on);
    }

    pub(super) fn set_pinned(&mut self, on: bool) {
        self.set_flag(F_PINNED, on);
    }

    pub(super) fn set_allocated(&mut self, on: bool) {
        self.set_flag(F_ALLOCATED, on);
    }
}

/// A domain's memory-management state: identity, reservation and the base pointers of
/// each of its vCPUs (kernel and user mode). Base-pointer operations act for the *active*
/// vCPU ([`DomainMm::set_active_vcpu`]): the one running, or the one being set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainMm {
    id: u16,
    privileged: bool,
    tot_pages: u64,
    max_pages: u64,
    /// (kernel, user) base pointer of each vCPU; 0 for none.
    bases: Vec<(u64, u64)>,
    active: usize,
    vm_assist: u64,
    released: u64,
    shared_pages: u64,
    /// Frames the hypervisor holds for its vCPUs, with the type held: descriptor-table
    /// frames of their GDTs, the frames of registered `vcpu_info`s (writable); once per
    /// holding.
    held: Vec<(u64, PageType)>,
}

impl DomainMm {
    /// A domain with no frames yet.
    pub const fn new(id: u16, privileged: bool, max_pages: u64) -> Self {
        DomainMm {
            id,
            privileged,
            tot_pages: 0,
            max_pages,
            bases: Vec::new(),
            active: 0,
            vm_assist: 0,
            released: 0,
            shared_pages: 0,
            held: Vec::new(),
        }
    }

    /// The frames held for its vCPUs (GDT frames, registered `vcpu_info` frames) and the
    /// type each holding has; a frame appears once per holding.
    pub fn held_frames(&self) -> &[(u64, PageType)] {
        &self.held
    }

    pub(super) fn hold_frame(&mut self, mfn: u64, ty: PageType) {
        self.held.push((mfn, ty));
    }

    /// Drops one holding of `mfn` with type `ty`; false if it held none.
    pub(super) fn release_held(&mut self, mfn: u64, ty: PageType) -> bool {
        match self.held.iter().position(|&h| h == (mfn, ty)) {
            Some(i) => {
                self.held.swap_remove(i);
                true
            }
            None => false,
        }
    }

    pub(super) fn take_any_held(&mut self) -> Option<(u64, PageType)> {
        self.held.pop()
    }

    /// Domain id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Whether the domain may map device memory (dom0).
    pub fn privileged(&self) -> bool {
        self.privileged
    }

    /// Frames in the domain's reservation: given to it and not yet released (shared
    /// hypervisor frames are not counted, as in Xen). As in Xen, a frame counts until it
    /// goes back to the frame source, not until its allocation reference goes: a frame the
    /// domain gave back that a page table (its own, or another domain's mapping) still
    /// references stays counted until that last reference goes.
    pub fn tot_pages(&self) -> u64 {
        self.tot_pages
    }

    /// Hypervisor frames shared with the domain (`shared_info`) that it still owns.
    pub fn shared_pages(&self) -> u64 {
        self.shared_pages
    }

    /// Frames the domain owns: [`DomainMm::tot_pages`] and its shared frames. After
    /// [`super::pt::Mm::relinquish`], the frames other domains still reference; a dying
    /// domain is gone (its id free again) once this is zero.
    pub fn frames_owned(&self) -> u64 {
        self.tot_pages + self.shared_pages
    }

    /// Most frames the reservation may hold.
    pub fn max_pages(&self) -> u64 {
        self.max_pages
    }

    /// Sets the reservation limit (frames already held stay).
    pub fn set_max_pages(&mut self, max: u64) {
        self.max_pages = max;
    }

    /// Machine frame of the active vCPU's kernel-mode top-level table (0: none).
    pub fn kernel_base(&self) -> u64 {
        self.bases.get(self.active).map_or(0, |b| b.0)
    }

    /// Machine frame of the active vCPU's user-mode top-level table (0: none).
    pub fn user_base(&self) -> u64 {
        self.bases.get(self.active).map_or(0, |b| b.1)
    }

    /// Makes vCPU `v` the one base-pointer operations act for.
    pub fn set_active_vcpu(&mut self, v: usize) {
        self.active = v;
    }

    /// The vCPU base-pointer operations act for.
    pub fn active_vcpu(&self) -> usize {
        self.active
    }

    /// Every base pointer of every vCPU (kernel and user), once per holding, zeros left out.
    pub fn all_bases(&self) -> impl Iterator<Item = u64> + '_ {
        self.bases.iter().flat_map(|&(k, u)| [k, u]).filter(|&b| b != 0)
    }

    fn set_active(&mut self, f: impl FnOnce(&mut (u64, u64))) {
        if self.bases.len() <= self.active {
            self.bases.resize(self.active + 1, (0, 0));
        }
        if let Some(slot) = self.bases.get_mut(self.active) {
            f(slot);
        }
    }

    /// Enabled `VMASST_TYPE_*` bits.
    pub fn vm_assist(&self) -> u64 {
        self.vm_assist
    }

    /// Sets the `VMASST_TYPE_*` bits.
    pub fn set_vm_assist(&mut self, bits: u64) {
        self.vm_assist = bits;
    }

    /// Frames this domain has returned to the frame source since it was created.
    pub fn released(&self) -> u64 {
        self.released
    }

    pub(super) fn set_kernel_base(&mut self, mfn: u64) {
        self.set_active(|b| b.0 = mfn);
    }

    pub(super) fn set_user_base(&mut self, mfn: u64) {
        self.set_active(|b| b.1 = mfn);
    }

    /// Forgets every base pointer (their references were dropped).
    pub(super) fn clear_bases(&mut self) {
        self.bases.clear();
    }

    pub(super) fn frame_released(&mut self, counted: bool) {
        if counted {
            self.tot_pages = self.tot_pages.saturating_sub(1);
        } else {
            self.shared_pages = self.shared_pages.saturating_sub(1);
        }
        self.released += 1;
    }

    /// Charges releases of this domain's frames that another domain's operation made (see
    /// [`FrameTable::pop_foreign_release`]): they leave its reservation and count as
    /// released by it, exactly as if it had dropped their last reference itself.
    pub fn charge_foreign_release(&mut self, r: ForeignRelease) {
        debug_assert_eq!(r.owner, self.id, "release of d{} charged to d{}", r.owner, self.id);
        debug_assert!(r.counted <= r.frames && r.counted <= self.tot_pages && r.frames - r.counted <= self.shared_pages);
        self.tot_pages = self.tot_pages.saturating_sub(r.counted);
        self.shared_pages = self.shared_pages.saturating_sub(r.frames - r.counted);
        self.released += r.frames;
    }
}

/// Frames of domain `owner` that went back to the frame source during an operation of
/// another domain, which dropped their last reference (a foreign mapping outliving the
/// owner's allocation reference). The machine charges them to the owner
/// ([`DomainMm::charge_foreign_release`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForeignRelease {
    /// The domain that owned the frames.
    pub owner: u16,
    /// Frames released.
    pub frames: u64,
    /// How many of them were in its reservation (the others were shared hypervisor frames).
    pub counted: u64,
}

/// The accounting of every machine frame, indexed by mfn, over storage the caller gives
/// (one [`PageInfo`] per frame up to the highest RAM frame).
pub struct FrameTable<'a> {
    pages: &'a mut [PageInfo],
    /// Counts full TLB flushes (wrapping): a frame whose `stamp` equals it may still be
    /// reachable through a stale translation.
    clock: u32,
    /// A frame went back to the frame source since the last flush.
    release_pending: bool,
    /// Releases to charge to owners other than the domain an operation ran for, one entry
    /// per owner. Empty between operations (the machine drains it); it grows (on the heap)
    /// only when one operation releases frames of more owners than any before.
    foreign_releases: Vec<ForeignRelease>,
}

impl<'a> FrameTable<'a> {
    /// Bytes of storage the table needs to cover `nr_frames` frames.
    pub const fn bytes_for(nr_frames: u64) -> u64 {
        nr_frames * core::mem::size_of::<PageInfo>() as u64
    }

    /// A table over `pages` (every frame free).
    pub fn new(pages: &'a mut [PageInfo]) -> Self {
        pages.fill(PageInfo::FREE);
        FrameTable { pages, clock: 1, release_pending: false, foreign_releases: Vec::new() }
    }

    /// Number of frames covered (one past the highest mfn).
    pub fn nr_frames(&self) -> u64 {
        self.pages.len() as u64
    }

    /// The accounting of frame `mfn`.
    pub fn get(&self, mfn: u64) -> Option<&PageInfo> {
        self.pages.get(usize::try_from(mfn).ok()?)
    }

    /// Whether `mfn` is covered and owned by `domid` (never true of a free frame, whatever
    /// `domid` is).
    pub fn owned_by(&self, mfn: u64, domid: u16) -> bool {
        self.get(mfn).is_some_and(|p| p.owner == domid && domid != NO_OWNER)
    }

    /// Takes one recorded release of frames whose owner is not the domain the operation
    /// that released them ran for. **Machine contract:** after every operation over an
    /// [`super::pt::Mm`] (any domain's view, hypercall or not), before anything else uses
    /// the frame table or a domain id can be reused, pop every entry and charge it to its
    /// owner with [`DomainMm::charge_foreign_release`]. The owner always still exists: a
    /// domain that owns frames is kept (dying, if destroyed) until
    /// [`DomainMm::frames_owned`] is zero.
    pub fn pop_foreign_release(&mut self) -> Option<ForeignRelease> {
        self.foreign_releases.pop()
    }

    /// Whether releases are waiting to be charged to their owners.
    pub fn has_foreign_releases(&self) -> bool {
        !self.foreign_releases.is_empty()
    }

    /// Records that a frame of `owner` was released by another domain's operation.
    pub(super) fn note_foreign_release(&mut self, owner: u16, counted: bool) {
        if !self.foreign_releases.iter().any(|r| r.owner == owner) {
            self.foreign_releases.push(ForeignRelease { owner, frames: 0, counted: 0 });
        }
        if let Some(r) = self.foreign_releases.iter_mut().find(|r| r.owner == owner) {
            r.frames += 1;
            r.counted += u64::from(counted);
        }
    }

    // The two accessors below index directly: every caller has checked that `mfn` is a
    // frame the table covers (through `get`, `owned_by` or the RAM check that precedes
    // every reference), and the validation hot path cannot afford a second check.
    #[allow(clippy::indexing_slicing)]
    pub(super) fn page(&self, mfn: u64) -> &PageInfo {
        &self.pages[mfn as usize]
    }

    #[allow(clippy::indexing_slicing)]
    pub(super) fn page_mut(&mut self, mfn: u64) -> &mut PageInfo {
        &mut self.pages[mfn as usize]
    }

    pub(super) fn clock(&self) -> u32 {
        self.clock
    }

    /// Records that every TLB that may hold a guest translation was flushed.
    pub fn note_flush(&mut self) {
        self.clock = self.clock.wrapping_add(1);
        self.release_pending = false;
    }

    pub(super) fn release_pending(&self) -> bool {
        self.release_pending
    }

    pub(super) fn set_release_pending(&mut self) {
        self.release_pending = true;
    }

    /// Gives free frame `mfn` to `dom`'s reservation: owner set, allocation reference taken
    /// (count 1), no type. The frame must come from the frame source, scrubbed, with no
    /// translation to it left in any TLB. mfn 0 is refused (0 means "no frame" in base
    /// pointers).
    pub fn assign(&mut self, mfn: u64, dom: &mut DomainMm) -> Result<(), Errno> {
        let p = self.free_frame(mfn)?;
        p.owner = dom.id;
        p.count = 1;
        p.set_allocated(true);
        dom.tot_pages += 1;
        Ok(())
    }

    /// Shares hypervisor frame `mfn` (e.g. `shared_info`, which the hypervisor writes) with
    /// `dom`, as Xen's `share_xen_page_with_guest`: the domain owns it and may map it, but
    /// the hypervisor holds a general and a writable-type reference for the domain's whole
    /// life, so it can never become a page table, and it is not in the reservation, so
    /// `decrease_reservation` cannot take it. Teardown drops those references.
    pub fn share_with_guest(&mut self, mfn: u64, dom: &mut DomainMm) -> Result<(), Errno> {
        let p = self.free_frame(mfn)?;
        p.owner = dom.id;
        p.count = 1;
        p.ty = PageType::Writable;
        p.type_count = 1;
        p.set_validated(true);
        p.set_flag(F_SHARED, true);
        dom.shared_pages += 1;
        Ok(())
    }

    /// Whether `mfn` is in the table with no owner and no reference (what
    /// [`FrameTable::assign`] takes).
    pub fn is_free(&self, mfn: u64) -> bool {
        mfn != 0 && usize::try_from(mfn).ok().and_then(|i| self.pages.get(i)).is_some_and(|p| p.owner == NO_OWNER && p.count == 0 && p.type_count == 0)
    }

    fn free_frame(&mut self, mfn: u64) -> Result<&mut PageInfo, Errno> {
        if mfn == 0 {
            return Err(Errno::EINVAL);
        }
        let p = self.pages.get_mut(usize::try_from(mfn).map_err(|_| Errno::EINVAL)?).ok_or(Errno::EINVAL)?;
        if p.owner != NO_OWNER || p.count != 0 || p.type_count != 0 {
            return Err(Errno::EBUSY);
        }
        *p = PageInfo { ty: PageType::None, ..PageInfo::FREE };
        Ok(p)
    }

    /// Makes `mfn` free again after the frame source took it back.
    pub(super) fn clear(&mut self, mfn: u64) {
        let stamp = self.clock;
        *self.page_mut(mfn) = PageInfo { stamp, ..PageInfo::FREE };
    }

    /// How `dom`'s frames are typed and referenced (for `sysctl` `SYSCTL_MEMSTATS`).
    pub fn stats(&self, dom: &DomainMm) -> MemStats {
        let mut s = MemStats { released: dom.released, ..MemStats::default() };
        for p in self.pages.iter().filter(|p| p.owner == dom.id) {
            s.owned += 1;
            match p.page_type() {
                PageType::L1 => s.l1 += 1,
                PageType::L2 => s.l2 += 1,
                PageType::L3 => s.l3 += 1,
                PageType::L4 => s.l4 += 1,
                PageType::Writable => s.writable += 1,
                // Counted with the type references only (MemStats has no field for them).
                PageType::SegDesc | PageType::None => {}
            }
            s.pinned += u64::from(p.is_pinned());
            s.type_refs += u64::from(p.type_count);
            s.refs += u64::from(p.count);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;

    #[test]
    fn levels_step_down_and_index_addresses() {
        assert_eq!(Level::L4.lower(), Some(Level::L3));
        assert_eq!(Level::L1.lower(), None);
        assert_eq!(Level::L4.index(0xffff_8000_0000_0000), 256);
        assert_eq!(Level::L1.index(0x0000_0000_0040_3000), 3);
        assert_eq!(Level::L2.shift(), 21);
        for l in Level::TOP_DOWN {
            assert_eq!(l.page_type().level(), Some(l));
        }
    }

    #[test]
    fn assign_takes_only_free_frames_and_never_mfn_0() {
        let mut store = vec![PageInfo::FREE; 16];
        let mut ft = FrameTable::new(&mut store);
        let mut d = DomainMm::new(1, false, 10);
        assert_eq!(ft.assign(0, &mut d), Err(Errno::EINVAL));
        assert_eq!(ft.assign(16, &mut d), Err(Errno::EINVAL));
        ft.assign(3, &mut d).unwrap();
        assert_eq!(ft.assign(3, &mut d), Err(Errno::EBUSY));
        assert_eq!(ft.share_with_guest(3, &mut d), Err(Errno::EBUSY));
        ft.share_with_guest(4, &mut d).unwrap();
        let p = ft.get(3).unwrap();
        assert_eq!((p.owner(), p.count(), p.is_allocated(), p.page_type()), (Some(1), 1, true, PageType::None));
        let s = ft.get(4).unwrap();
        assert_eq!((s.count(), s.type_count(), s.page_type(), s.is_shared()), (1, 1, PageType::Writable, true));
        assert_eq!(d.tot_pages(), 1, "shared frames are not in the reservation");
        let st = ft.stats(&d);
        assert_eq!((st.owned, st.writable, st.refs, st.type_refs), (2, 1, 2, 1));
    }
}
