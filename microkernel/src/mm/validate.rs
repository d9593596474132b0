//! The validation rules: what a page-table entry may hold, and the references that
//! entries, types and whole tables take and drop (Xen's `get_page_from_lNe` /
//! `put_page_from_lNe`, `_get_page_type` / `_put_page_type`, `promote_lN_table` /
//! `demote_lN_table`).
//!
//! The recursion is explicit and bounded: [`Mm::get_type`] of a table type validates the
//! table with [`Mm::validate`], whose entries go through [`Mm::get_entry`] at the same
//! level, which takes the type of the level below. Each step lowers the level, so the
//! depth is at most four tables; dropping mirrors it.
#![forbid(unsafe_code)]

use super::page_info::{Level, PageType};
use super::pt::{Mm, MmMachine};
use hypercall_abi::errno::Errno;
use hypercall_abi::layout::{pte, HYPERVISOR_L4_FIRST_SLOT, HYPERVISOR_L4_LAST_SLOT, PT_ENTRIES};

/// Bits 52..=62 (available to software, protection keys): must be zero in a present entry.
pub const HIGH_BITS: u64 = 0x7ff << 52;
/// PAT bit of a 4 KiB L1 entry (bit 7; the PSE bit at the other levels).
pub const PAT_4K: u64 = 1 << 7;
/// Cache-attribute bits of an L1 entry; only a privileged domain may set them.
pub const L1_CACHE_BITS: u64 = pte::PWT | pte::PCD | PAT_4K;
/// Bits a present entry may change without its references changing (Xen's
/// `FASTPATH_FLAG_WHITELIST` less the bits we refuse): same frame, same rights.
pub const FASTPATH_BITS: u64 = pte::NX | (0x7 << 9) | pte::DIRTY | pte::ACCESSED | pte::USER;

/// Whether L4 slot `i` belongs to the hypervisor.
pub const fn is_hypervisor_slot(i: usize) -> bool {
    i >= HYPERVISOR_L4_FIRST_SLOT && i <= HYPERVISOR_L4_LAST_SLOT
}

/// The frame an entry's address bits name.
pub const fn entry_mfn(e: u64) -> u64 {
    (e & pte::ADDR_MASK) >> 12
}

/// Whether an entry is present.
pub const fn present(e: u64) -> bool {
    e & pte::PRESENT != 0
}

/// Checks the flag bits of present entry `e` of a `level` table: no global bit, nothing in
/// bits 52..62; no superpage and no cache bits above L1; cache bits in L1 only for a
/// privileged domain.
pub fn check_flags(level: Level, e: u64, privileged: bool) -> Result<(), Errno> {
    if e & (HIGH_BITS | pte::GLOBAL) != 0 {
        return Err(Errno::EINVAL);
    }
    let bad = match level {
        Level::L1 if privileged => 0,
        Level::L1 => L1_CACHE_BITS,
        _ => pte::PSE | pte::PWT | pte::PCD,
    };
    if e & bad != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// The entry as stored: USER forced on at every level (a 64-bit PV kernel runs in ring 3,
/// as Xen's `adjust_guest_lNe`), ACCESSED forced on above L1.
pub const fn adjust(level: Level, e: u64) -> u64 {
    match level {
        Level::L1 => e | pte::USER,
        _ => e | pte::USER | pte::ACCESSED,
    }
}

impl Mm<'_, '_> {
    /// Takes a general reference on `mfn` if this domain owns it (false otherwise, or if the
    /// count would overflow).
    pub(super) fn get_page(&mut self, mfn: u64) -> bool {
        self.get_page_of(mfn, self.dom.id())
    }

    /// Takes a general reference on `mfn` if domain `owner` owns it (Xen's
    /// `get_page(page, pg_owner)`).
    pub(super) fn get_page_of(&mut self, mfn: u64, owner: u16) -> bool {
        if !self.frames.owned_by(mfn, owner) {
            return false;
        }
        let p = self.frames.page_mut(mfn);
        match p.count.checked_add(1) {
            Some(c) => {
                p.count = c;
                true
            }
            None => false,
        }
    }

    /// Drops a general reference on `mfn`; at zero the frame goes back to the frame source.
    pub(super) fn put_page(&mut self, mfn: u64) {
        let p = self.frames.page_mut(mfn);
        debug_assert!(p.count > 0, "put_page of mfn {mfn:#x} with no reference");
        if p.count == 0 {
            return;
        }
        p.count -= 1;
        if p.count == 0 {
            self.release(mfn);
        }
    }

    /// Hands unreferenced frame `mfn` back: its M2P entry becomes invalid, the frame leaves
    /// its owner and goes to the frame source; TLBs are flushed before the operation ends.
    /// The release is charged to the owner: directly if the operation runs for it, through
    /// the frame table's foreign releases otherwise (a foreign mapping was the last holder).
    pub(super) fn release(&mut self, mfn: u64) {
        let p = *self.frames.page(mfn);
        debug_assert_eq!(p.type_count, 0, "mfn {mfn:#x} released with type references");
        match p.owner() {
            Some(owner) if owner == self.dom.id() => self.dom.frame_released(!p.is_shared()),
            Some(owner) => self.frames.note_foreign_release(owner, !p.is_shared()),
            None => debug_assert!(false, "mfn {mfn:#x} released without an owner"),
        }
        self.frames.clear(mfn);
        self.frames.set_release_pending();
        self.mach.set_m2p(mfn, hypercall_abi::types::INVALID_M2P_ENTRY);
        self.mach.release_frame(mfn);
    }

    /// Takes a reference of type `ty` on owned frame `mfn` (the caller holds a general
    /// reference). With the count at zero the type may change; a page-table type is then
    /// validated, and a failure leaves the frame as it was. With the count above zero the
    /// type must match (`EINVAL` otherwise).
    pub(super) fn get_type(&mut self, mfn: u64, ty: PageType) -> Result<(), Errno> {
        let clock = self.frames.clock();
        let p = self.frames.page_mut(mfn);
        if p.type_count > 0 {
            if p.ty != ty || !p.is_validated() {
                return Err(Errno::EINVAL);
            }
            p.type_count = p.type_count.checked_add(1).ok_or(Errno::EINVAL)?;
            return Ok(());
        }
        let (old_ty, old_stamp) = (p.ty, p.stamp);
        p.ty = ty;
        p.type_count = 1;
        p.set_validated(false);
        // A type change must not leave a stale translation behind: a writable TLB entry to
        // a new page table, or a cached walk through an old one into what is now data.
        if old_ty != ty && old_ty != PageType::None && old_stamp == clock {
            self.mach.flush_tlb();
            self.frames.note_flush();
        }
        let r = match (ty.level(), ty) {
            (Some(level), _) => self.validate(mfn, level),
            (None, PageType::SegDesc) => self.validate_descriptors(mfn),
            (None, _) => Ok(()),
        };
        let p = self.frames.page_mut(mfn);
        match r {
            Ok(()) => p.set_validated(true),
            Err(_) => {
                p.type_count = 0;
                p.ty = old_ty;
                p.stamp = old_stamp;
            }
        }
        r
    }

    /// Drops a type reference on `mfn`; the last reference of a page-table type
    /// devalidates the table (drops what each of its entries holds).
    pub(super) fn put_type(&mut self, mfn: u64) {
        let p = self.frames.page_mut(mfn);
        debug_assert!(p.type_count > 0, "put_type of mfn {mfn:#x} with no type reference");
        match p.type_count {
            0 => {}
            1 => {
                p.set_validated(false);
                if let Some(level) = p.ty.level() {
                    self.unwind(mfn, level, PT_ENTRIES);
                }
                let clock = self.frames.clock();
                let p = self.frames.page_mut(mfn);
                p.type_count = 0;
                p.stamp = clock;
            }
            _ => p.type_count -= 1,
        }
    }

    /// Takes the references present entry `e` of `table` (a `level` table) needs, after
    /// checking it against the rules; an L1 entry maps this domain's own frames. On failure
    /// nothing is held. (Validation of a whole table goes through here, so a table holding
    /// an entry to another domain's frame cannot be validated again: as in Xen, foreign
    /// entries are written one by one with a page owner, into tables already validated.)
    ///
    /// A frame the domain owns is RAM (frames are only ever given from the frame source), so
    /// ownership, a frame-table lookup, settles the common case; the machine is asked
    /// whether a frame is RAM only for frames the domain does not own.
    pub(super) fn get_entry(&mut self, level: Level, table: u64, e: u64) -> Result<(), Errno> {
        check_flags(level, e, self.dom.privileged())?;
        self.take_entry_refs(level, table, e, self.dom.id())
    }

    /// [`Mm::get_entry`] for an entry whose flags [`check_flags`] already accepted, with
    /// `pg_owner` the domain whose frames an L1 entry may map (Xen's `pg_owner`): this
    /// domain, or a domain a privileged caller builds (the caller checked that). Upper-level
    /// entries always reference this domain's own tables. With a foreign page owner, device
    /// memory is refused (`EPERM`: it is the page owner's access that counts, as Xen's
    /// `iomem_access_permitted(pg_owner, ..)`, and an unprivileged owner has none).
    pub(super) fn take_entry_refs(&mut self, level: Level, table: u64, e: u64, pg_owner: u16) -> Result<(), Errno> {
        let mfn = entry_mfn(e);
        match level.lower() {
            None => {
                if self.get_page_of(mfn, pg_owner) {
                    if e & pte::RW != 0 && self.get_type(mfn, PageType::Writable).is_err() {
                        self.put_page(mfn);
                        return Err(Errno::EBUSY);
                    }
                    return Ok(());
                }
                if mfn > self.mach.max_mfn() {
                    return Err(Errno::EINVAL);
                }
                if self.is_ram(mfn) {
                    // RAM that is not the page owner's (or a count that would overflow).
                    return Err(Errno::EBUSY);
                }
                // Device memory: a privileged domain maps it without references, except what
                // the hypervisor keeps for itself.
                if pg_owner == self.dom.id() && self.dom.privileged() && !self.mach.reserved_mmio(mfn) {
                    Ok(())
                } else {
                    Err(Errno::EPERM)
                }
            }
            Some(lower) => {
                if mfn == table {
                    // Linear (self-referencing) entry: read-only, and no reference, so the
                    // table's own count never keeps it alive.
                    return if e & pte::RW != 0 { Err(Errno::EINVAL) } else { Ok(()) };
                }
                // Not ours, not RAM, past the physical width: all EINVAL at this level.
                if !self.get_page(mfn) {
                    return Err(Errno::EINVAL);
                }
                if let Err(err) = self.get_type(mfn, lower.page_type()) {
                    self.put_page(mfn);
                    return Err(err);
                }
                Ok(())
            }
        }
    }

    /// Drops what entry `e` of `table` (a `level` table) holds: the mirror of
    /// [`Mm::take_entry_refs`] for an entry it accepted, whatever page owner it was taken
    /// with. The rule: an L1 entry holds references exactly when its frame is covered by
    /// the frame table and has an owner (this domain or, for a privileged domain's foreign
    /// mapping, another). Device memory never has one; a referenced frame keeps its owner
    /// while referenced, even past the owner's teardown. An upper entry always references
    /// an owned table (or its own table, linear, without a reference).
    pub(super) fn put_entry(&mut self, level: Level, table: u64, e: u64) {
        if !present(e) {
            return;
        }
        let mfn = entry_mfn(e);
        match level.lower() {
            None => {
                if self.frames.get(mfn).and_then(|p| p.owner()).is_none() {
                    debug_assert!(!self.is_ram(mfn), "L1 entry to RAM {mfn:#x} nobody owns");
                    return;
                }
                if e & pte::RW != 0 {
                    self.put_type(mfn);
                }
            }
            Some(_) => {
                if mfn == table {
                    return;
                }
                debug_assert!(self.owned(mfn), "upper entry to {mfn:#x} not owned");
                self.put_type(mfn);
            }
        }
        self.put_page(mfn);
    }

    /// Checks every entry of `table` as a `level` table and takes their references;
    /// entries that need it get USER/ACCESSED, and an L4 gets the hypervisor's slots.
    /// On failure the references taken so far are dropped and the table is unchanged.
    pub(super) fn validate(&mut self, table: u64, level: Level) -> Result<(), Errno> {
        let mut adjusted = [0u64; PT_ENTRIES / 64];
        for i in 0..PT_ENTRIES {
            if level == Level::L4 && is_hypervisor_slot(i) {
                continue;
            }
            let e = self.mach.read_pte(table, i);
            if !present(e) {
                continue;
            }
            if let Err(err) = self.get_entry(level, table, e) {
                self.unwind(table, level, i);
                return Err(err);
            }
            if adjust(level, e) != e {
                if let Some(word) = adjusted.get_mut(i / 64) {
                    *word |= 1 << (i % 64);
                }
            }
        }
        for (w, bits) in adjusted.iter().enumerate() {
            let mut bits = *bits;
            while bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let e = self.mach.read_pte(table, i);
                self.mach.write_pte(table, i, adjust(level, e));
            }
        }
        if level == Level::L4 {
            write_hypervisor_slots(self.mach, table);
        }
        Ok(())
    }

    /// Drops what entries `0..end` of `table` (a `level` table) hold.
    pub(super) fn unwind(&mut self, table: u64, level: Level, end: usize) {
        for i in 0..end {
            if level == Level::L4 && is_hypervisor_slot(i) {
                continue;
            }
            let e = self.mach.read_pte(table, i);
            self.put_entry(level, table, e);
        }
    }
}

/// Writes the hypervisor's entries into L4 `table`'s slots 256..=271.
fn write_hypervisor_slots(mach: &mut dyn MmMachine, table: u64) {
    for slot in HYPERVISOR_L4_FIRST_SLOT..=HYPERVISOR_L4_LAST_SLOT {
        let e = mach.hypervisor_l4e(slot);
        mach.write_pte(table, slot, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_rules_per_level() {
        let ok = pte::PRESENT | pte::RW | pte::USER | pte::ACCESSED | pte::DIRTY | pte::NX | (7 << 9);
        for l in Level::TOP_DOWN {
            assert_eq!(check_flags(l, ok, false), Ok(()));
            assert_eq!(check_flags(l, ok | pte::GLOBAL, true), Err(Errno::EINVAL), "{l:?} global");
            assert_eq!(check_flags(l, ok | (1 << 52), true), Err(Errno::EINVAL), "{l:?} bit 52");
            assert_eq!(check_flags(l, ok | (1 << 62), true), Err(Errno::EINVAL), "{l:?} bit 62");
        }
        for l in [Level::L2, Level::L3, Level::L4] {
            assert_eq!(check_flags(l, ok | pte::PSE, true), Err(Errno::EINVAL), "{l:?} superpage");
            assert_eq!(check_flags(l, ok | pte::PCD, true), Err(Errno::EINVAL), "{l:?} PCD");
        }
        assert_eq!(check_flags(Level::L1, ok | pte::PCD | pte::PWT | PAT_4K, false), Err(Errno::EINVAL));
        assert_eq!(check_flags(Level::L1, ok | pte::PCD | pte::PWT | PAT_4K, true), Ok(()));
    }

    #[test]
    fn adjust_forces_user_and_upper_accessed() {
        assert_eq!(adjust(Level::L1, pte::PRESENT), pte::PRESENT | pte::USER);
        assert_eq!(adjust(Level::L3, pte::PRESENT), pte::PRESENT | pte::USER | pte::ACCESSED);
        assert!(is_hypervisor_slot(256) && is_hypervisor_slot(271));
        assert!(!is_hypervisor_slot(255) && !is_hypervisor_slot(272));
        assert_eq!(entry_mfn(0x8000_0000_1234_5067), 0x12345);
    }
}
