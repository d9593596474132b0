//! The operations the memory hypercalls expose, over an [`Mm`]: checked entry updates
//! (Xen's `mod_lN_entry`), M2P updates, pins, base pointers, page clear and copy,
//! `update_va_mapping`'s walk, and reservation changes.
//!
//! Each public operation either succeeds or fails with nothing changed, and flushes TLBs
//! before returning if it released a frame.
#![forbid(unsafe_code)]

use super::page_info::{Level, PageType};
use super::pt::Mm;
use super::validate::{adjust, check_flags, entry_mfn, is_hypervisor_slot, present, FASTPATH_BITS};
use hypercall_abi::errno::Errno;
use hypercall_abi::layout::{pte, HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};

/// Bits the CPU sets in an entry by itself.
const AD_BITS: u64 = pte::ACCESSED | pte::DIRTY;

/// Highest canonical lower-half address plus one.
const LOWER_HALF_END: u64 = 1 << 47;

/// Whether `va` is a canonical guest address: the lower half, or the upper half above the
/// hypervisor's slice (which starts the upper half).
pub const fn is_guest_va(va: u64) -> bool {
    va < LOWER_HALF_END || va >= HYPERVISOR_VIRT_END
}

const _: () = assert!(HYPERVISOR_VIRT_START == 0xffff_8000_0000_0000);

impl Mm<'_, '_> {
    /// `MMU_NORMAL_PT_UPDATE` / `MMU_PT_UPDATE_PRESERVE_AD`: writes `val` into the entry at
    /// machine address `ptr` (its low 3 bits are ignored). The frame must be this domain's;
    /// if it is a validated page table the update goes through the level's rules; if it
    /// can take the writable type it is plain data and is written as is (as Xen does).
    /// Returns the level updated (`None` for a data write).
    pub fn normal_update(&mut self, ptr: u64, val: u64, preserve_ad: bool) -> Result<Option<Level>, Errno> {
        self.normal_update_as(ptr, val, preserve_ad, self.dom.id())
    }

    /// [`Mm::normal_update`] with page owner `pg_owner` (`pt_update`'s `foreigndom`, Xen's
    /// `pg_owner`): a new L1 entry maps a frame of `pg_owner` instead of this domain's,
    /// taking a general reference on it, and the writable type if read-write (`EBUSY` if
    /// it cannot take it: one of the owner's page tables is never writable here either).
    /// The entry is still written into this domain's own table; upper-level entries still
    /// reference this domain's own tables. A page owner other than this domain needs a
    /// privileged domain (`EPERM`); that the page owner exists and is not privileged is
    /// the caller's to check (the hypercall layer does, before any state changes).
    pub fn normal_update_as(&mut self, ptr: u64, val: u64, preserve_ad: bool, pg_owner: u16) -> Result<Option<Level>, Errno> {
        if pg_owner != self.dom.id() && !self.dom.privileged() {
            return Err(Errno::EPERM);
        }
        // No temporary reference on the frame written (Xen takes one): a validated table's
        // count cannot reach zero while one of its entries changes, because the holders of
        // its type (entries one level up, pins, base pointers) each hold a general reference
        // too, and dropping an entry's references only reaches levels below; a data write
        // drops nothing but its own transient writable reference.
        self.settled(|mm| {
            let mfn = ptr >> 12;
            let index = ((ptr & 0xfff) >> 3) as usize;
            if !mm.owned(mfn) {
                return Err(Errno::EINVAL);
            }
            let p = *mm.frames.page(mfn);
            match p.page_type().level() {
                Some(level) if p.is_validated() => {
                    mm.mod_entry(level, mfn, index, val, preserve_ad, pg_owner).map(|_| Some(level))
                }
                _ => match mm.get_type(mfn, PageType::Writable) {
                    Ok(()) => {
                        mm.mach.write_pte(mfn, index, val);
                        mm.put_type(mfn);
                        Ok(None)
                    }
                    Err(_) => Err(Errno::EINVAL),
                },
            }
        })
    }

    /// Replaces entry `index` of validated `level` table `table` with `new`: validate the
    /// new entry (taking its references), write it, then drop what the old one held. A
    /// change of bits that carry no reference (A, D, NX, software bits) skips the
    /// revalidation, as Xen's fast path. A new L1 entry maps a frame of `pg_owner`.
    pub(super) fn mod_entry(
        &mut self,
        level: Level,
        table: u64,
        index: usize,
        new: u64,
        preserve_ad: bool,
        pg_owner: u16,
    ) -> Result<(), Errno> {
        if level == Level::L4 && is_hypervisor_slot(index) {
            return Err(Errno::EINVAL);
        }
        let old = self.mach.read_pte(table, index);
        let ad = if preserve_ad { old & AD_BITS } else { 0 };
        if !present(new) {
            self.mach.write_pte(table, index, new | ad);
            self.put_entry(level, table, old);
            return Ok(());
        }
        check_flags(level, new, self.dom.privileged())?;
        let new = adjust(level, new) | ad;
        if present(old) && (old ^ new) & !FASTPATH_BITS == 0 {
            self.mach.write_pte(table, index, new);
            return Ok(());
        }
        self.take_entry_refs(level, table, new, pg_owner)?;
        self.mach.write_pte(table, index, new);
        self.put_entry(level, table, old);
        Ok(())
    }

    /// `MMU_MACHPHYS_UPDATE`: `M2P[mfn] = pfn` for a frame this domain owns (`EINVAL`
    /// otherwise).
    pub fn machphys_update(&mut self, mfn: u64, pfn: u64) -> Result<(), Errno> {
        self.machphys_update_as(mfn, pfn, self.dom.id())
    }

    /// [`Mm::machphys_update`] for a frame of page owner `pg_owner` (as in Xen, the frame
    /// must be the page owner's); another page owner needs a privileged domain (`EPERM`).
    pub fn machphys_update_as(&mut self, mfn: u64, pfn: u64, pg_owner: u16) -> Result<(), Errno> {
        if pg_owner != self.dom.id() && !self.dom.privileged() {
            return Err(Errno::EPERM);
        }
        if !self.frames.owned_by(mfn, pg_owner) {
            return Err(Errno::EINVAL);
        }
        self.mach.set_m2p(mfn, pfn);
        Ok(())
    }

    /// `MMUEXT_PIN_Ln_TABLE`: takes a general and a `level` type reference (validating the
    /// table) and marks it pinned. Not owned: `EINVAL`; already pinned: `EINVAL`; a table
    /// that cannot take the type: the validation's errno.
    pub fn pin(&mut self, mfn: u64, level: Level) -> Result<(), Errno> {
        self.settled(|mm| {
            if !mm.get_page(mfn) {
                return Err(Errno::EINVAL);
            }
            if let Err(e) = mm.get_type(mfn, level.page_type()) {
                mm.put_page(mfn);
                return Err(e);
            }
            if mm.frames.page(mfn).is_pinned() {
                mm.put_type(mfn);
                mm.put_page(mfn);
                return Err(Errno::EINVAL);
            }
            mm.frames.page_mut(mfn).set_pinned(true);
            Ok(())
        })
    }

    /// `MMUEXT_UNPIN_TABLE`: drops the pin's references. Not owned or not pinned: `EINVAL`.
    /// A table still referenced elsewhere (an upper entry, a base pointer) stays validated
    /// and read-only, as in Xen: the pin was only one of its references.
    pub fn unpin(&mut self, mfn: u64) -> Result<(), Errno> {
        self.settled(|mm| {
            if !mm.owned(mfn) || !mm.frames.page(mfn).is_pinned() {
                return Err(Errno::EINVAL);
            }
            mm.frames.page_mut(mfn).set_pinned(false);
            mm.put_type(mfn);
            mm.put_page(mfn);
            Ok(())
        })
    }

    /// Takes a general and an L4 type reference on `mfn` for a base pointer.
    fn get_base(&mut self, mfn: u64) -> Result<(), Errno> {
        if !self.get_page(mfn) {
            return Err(Errno::EINVAL);
        }
        if let Err(e) = self.get_type(mfn, PageType::L4) {
            self.put_page(mfn);
            return Err(e);
        }
        Ok(())
    }

    fn put_base(&mut self, mfn: u64) {
        if mfn != 0 {
            self.put_type(mfn);
            self.put_page(mfn);
        }
    }

    /// `MMUEXT_NEW_BASEPTR`: makes `mfn` the kernel base pointer and loads it into CR3. The
    /// new frame takes a general and an L4 type reference (so it is validated as an L4); a
    /// frame that cannot be one (not owned, mapped writable, holding a bad entry) fails
    /// with nothing changed. The old base pointer's references go after the switch.
    pub fn new_baseptr(&mut self, mfn: u64) -> Result<(), Errno> {
        self.switch_base(mfn, true)
    }

    /// As [`Mm::new_baseptr`] without loading CR3: for the domain builder, which installs
    /// the first base pointer before the domain ever runs.
    pub fn install_baseptr(&mut self, mfn: u64) -> Result<(), Errno> {
        self.switch_base(mfn, false)
    }

    fn switch_base(&mut self, mfn: u64, load: bool) -> Result<(), Errno> {
        self.settled(|mm| {
            let old = mm.dom.kernel_base();
            if mfn != old {
                mm.get_base(mfn)?;
                mm.dom.set_kernel_base(mfn);
            }
            if load {
                // Flushes this CPU only: not a clean point for the type-change stamps,
                // since other CPUs may run the domain's other vCPUs.
                mm.mach.load_cr3(mfn);
            }
            if mfn != old {
                mm.put_base(old);
            }
            Ok(())
        })
    }

    /// `MMUEXT_NEW_USER_BASEPTR`: as [`Mm::new_baseptr`] for the user-mode base pointer,
    /// without a CR3 load; 0 removes it.
    pub fn new_user_baseptr(&mut self, mfn: u64) -> Result<(), Errno> {
        self.settled(|mm| {
            let old = mm.dom.user_base();
            if mfn == old {
                return Ok(());
            }
            if mfn != 0 {
                mm.get_base(mfn)?;
            }
            mm.dom.set_user_base(mfn);
            mm.put_base(old);
            Ok(())
        })
    }

    /// Takes a general and a writable-type reference on `mfn` (`EINVAL` if either fails).
    fn get_writable(&mut self, mfn: u64) -> Result<(), Errno> {
        if !self.get_page(mfn) {
            return Err(Errno::EINVAL);
        }
        if self.get_type(mfn, PageType::Writable).is_err() {
            self.put_page(mfn);
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    /// `MMUEXT_CLEAR_PAGE`: zeroes a frame this domain owns that can take the writable
    /// type (`EINVAL` otherwise).
    pub fn clear_page(&mut self, mfn: u64) -> Result<(), Errno> {
        self.settled(|mm| {
            mm.get_writable(mfn)?;
            mm.mach.zero_frame(mfn);
            mm.put_type(mfn);
            mm.put_page(mfn);
            Ok(())
        })
    }

    /// `MMUEXT_COPY_PAGE`: copies owned frame `src` over owned frame `dst`, which must be
    /// able to take the writable type (`EINVAL` otherwise).
    pub fn copy_page(&mut self, dst: u64, src: u64) -> Result<(), Errno> {
        self.settled(|mm| {
            if !mm.get_page(src) {
                return Err(Errno::EINVAL);
            }
            if let Err(e) = mm.get_writable(dst) {
                mm.put_page(src);
                return Err(e);
            }
            mm.mach.copy_frame(dst, src);
            mm.put_type(dst);
            mm.put_page(dst);
            mm.put_page(src);
            Ok(())
        })
    }

    /// The L1 table and index that translate `va` through the kernel base pointer: walks
    /// the validated tables; `EINVAL` if `va` is not a guest address or no L1 maps it.
    pub fn l1_entry_for(&self, va: u64) -> Result<(u64, usize), Errno> {
        if !is_guest_va(va) {
            return Err(Errno::EINVAL);
        }
        let mut table = self.dom.kernel_base();
        if table == 0 {
            return Err(Errno::EINVAL);
        }
        for level in [Level::L4, Level::L3, Level::L2] {
            let e = self.mach.read_pte(table, level.index(va));
            if !present(e) {
                return Err(Errno::EINVAL);
            }
            table = entry_mfn(e);
            if !self.owned(table) {
                return Err(Errno::EINVAL);
            }
        }
        // A walk through a linear entry ends on a higher-level table: only a real L1 will do.
        let p = self.frames.page(table);
        if p.page_type() != PageType::L1 || !p.is_validated() {
            return Err(Errno::EINVAL);
        }
        Ok((table, Level::L1.index(va)))
    }

    /// The frame the kernel tables map at `va` (a present L1 entry), if any.
    pub fn frame_at(&self, va: u64) -> Option<u64> {
        let (l1, index) = self.l1_entry_for(va).ok()?;
        let e = self.mach.read_pte(l1, index);
        present(e).then(|| entry_mfn(e))
    }

    /// Xen's `ptwr_do_page_fault` lookup: the guest kernel wrote to `va` and faulted on a
    /// read-only mapping; if `va` maps (through the kernel tables) a validated L1 table of
    /// this domain, the entry written is returned by machine address and current value,
    /// for the caller to carry the write out as a validated update. `EINVAL` otherwise.
    pub fn ptwr_entry(&self, va: u64) -> Result<(u64, u64), Errno> {
        let (l1, index) = self.l1_entry_for(va)?;
        let e = self.mach.read_pte(l1, index);
        if !present(e) {
            return Err(Errno::EINVAL);
        }
        let table = entry_mfn(e);
        let p = self.frames.page(table);
        if !self.owned(table) || p.page_type() != PageType::L1 || !p.is_validated() {
            return Err(Errno::EINVAL);
        }
        let at = (va & 0xfff) as usize / 8;
        Ok(((table << 12) | (va & 0xff8), self.mach.read_pte(table, at)))
    }

    /// `update_va_mapping`'s update: the L1 entry for `va` becomes `val`, through the L1
    /// rules. Flushing is the caller's.
    pub fn update_va_mapping(&mut self, va: u64, val: u64) -> Result<(), Errno> {
        let me = self.dom.id();
        self.update_va_mapping_as(va, val, me)
    }

    /// [`Mm::update_va_mapping`] with page owner `pg_owner`
    /// (`update_va_mapping_otherdomain`): the new entry must map a frame of `pg_owner`.
    pub fn update_va_mapping_as(&mut self, va: u64, val: u64, pg_owner: u16) -> Result<(), Errno> {
        self.settled(|mm| {
            // As in `normal_update`, the L1 cannot lose its last reference meanwhile.
            let (l1, index) = mm.l1_entry_for(va)?;
            mm.mod_entry(Level::L1, l1, index, val, false, pg_owner)
        })
    }

    /// Flushes every CPU's TLB of every guest translation (a clean point: see
    /// [`MmMachine::flush_tlb`]).
    pub fn flush_tlb(&mut self) {
        self.mach.flush_tlb();
        self.frames.note_flush();
    }

    /// A flush this domain asked for: address `va` (`None`: all; a non-guest address is
    /// ignored, as Xen's `__addr_ok` check does) on the CPUs running its vCPUs in `vcpus`.
    pub fn flush_vcpus(&mut self, va: Option<u64>, vcpus: u64) {
        if va.is_none_or(is_guest_va) && vcpus != 0 {
            self.mach.flush_guest(va, vcpus);
        }
    }

    /// Flushes one guest address (`MMUEXT_INVLPG_*`, `UVMF_INVLPG`); a non-guest address
    /// is ignored, as Xen's `__addr_ok` check does.
    pub fn invlpg(&mut self, va: u64) {
        if is_guest_va(va) {
            self.mach.invlpg(va);
        }
    }

    /// Writes back and invalidates caches (`MMUEXT_FLUSH_CACHE*`).
    pub fn wbinvd(&mut self) {
        self.mach.wbinvd();
    }

    /// One frame of `XENMEM_increase_reservation`: a zeroed frame from the frame source,
    /// now in this domain's reservation; `ENOMEM` at `max_pages` or when none is left.
    pub fn increase_reservation(&mut self) -> Result<u64, Errno> {
        self.increase_reservation_extent(0, None)
    }

    /// `2^order` machine-contiguous frames from the frame source, not yet anyone's (an
    /// extent being made): `ENOMEM` when no such run is free. Give them to the domain with
    /// [`Mm::assign_extent`] or back with [`Mm::release_unassigned`].
    pub fn alloc_unassigned(&mut self, order: u32) -> Result<u64, Errno> {
        let first = self.mach.alloc_frames(order).ok_or(Errno::ENOMEM)?;
        let n = 1u64 << order;
        if (first..first + n).all(|m| self.frames.is_free(m)) {
            return Ok(first);
        }
        // The frame source handed out frames the table does not see as free: refuse them
        // rather than share them.
        self.release_unassigned(first, order);
        Err(Errno::ENOMEM)
    }

    /// Returns an extent from [`Mm::alloc_unassigned`] to the frame source.
    pub fn release_unassigned(&mut self, first: u64, order: u32) {
        for m in first..first + (1u64 << order) {
            self.mach.release_frame(m);
        }
    }

    /// Gives an extent from [`Mm::alloc_unassigned`] to this domain; with `pfn`, frame
    /// `first + k` takes pfn `pfn + k` in the M2P (Xen's `guest_physmap_add_page` for a PV
    /// guest).
    pub fn assign_extent(&mut self, first: u64, order: u32, pfn: Option<u64>) {
        for k in 0..1u64 << order {
            // Checked free when allocated, and nothing took it since.
            let _ = self.frames.assign(first + k, self.dom);
            if let Some(pfn) = pfn {
                self.mach.set_m2p(first + k, pfn.wrapping_add(k));
            }
        }
    }

    /// One extent of `XENMEM_increase_reservation` or (with `pfn`)
    /// `XENMEM_populate_physmap`: `2^order` contiguous frames for this domain, the first
    /// returned; `ENOMEM` past its `max_pages` or with no such run free.
    pub fn increase_reservation_extent(&mut self, order: u32, pfn: Option<u64>) -> Result<u64, Errno> {
        let n = 1u64 << order;
        if self.dom.tot_pages().saturating_add(n) > self.dom.max_pages() {
            return Err(Errno::ENOMEM);
        }
        let first = self.alloc_unassigned(order)?;
        self.assign_extent(first, order, pfn);
        Ok(first)
    }

    /// One extent of `XENMEM_decrease_reservation`: frames `mfn..mfn + 2^order` all go, or
    /// none (`EINVAL` if any is not in this domain's reservation).
    pub fn decrease_reservation_extent(&mut self, mfn: u64, order: u32) -> Result<(), Errno> {
        let n = 1u64 << order;
        let end = mfn.checked_add(n).ok_or(Errno::EINVAL)?;
        if !(mfn..end).all(|m| self.owned(m) && self.frames.page(m).is_allocated()) {
            return Err(Errno::EINVAL);
        }
        for m in mfn..end {
            self.decrease_reservation(m)?;
        }
        Ok(())
    }

    /// Whether frame `mfn` of this domain may be given up by `XENMEM_exchange`: it holds
    /// nothing but its allocation reference (no mapping, no type, no pin), as Xen's
    /// `steal_page` wants.
    pub fn stealable(&self, mfn: u64) -> bool {
        // Ownership first: it bounds the frame number before the frame table is read.
        if !self.owned(mfn) {
            return false;
        }
        let p = self.frames.page(mfn);
        p.is_allocated() && p.count() == 1 && p.type_count() == 0 && !p.is_pinned() && !p.is_shared()
    }

    /// One frame of `XENMEM_populate_physmap`: as [`Mm::increase_reservation`], and
    /// `M2P[mfn] = pfn`.
    pub fn populate_physmap(&mut self, pfn: u64) -> Result<u64, Errno> {
        self.increase_reservation_extent(0, Some(pfn))
    }

    /// One frame of `XENMEM_decrease_reservation` (a PV guest names machine frames): the
    /// frame must be in this domain's reservation (`EINVAL` otherwise). Its pin, if any,
    /// and its allocation reference go; it returns to the frame source when its last
    /// reference does (at once, unless a page table or base pointer still uses it).
    pub fn decrease_reservation(&mut self, mfn: u64) -> Result<(), Errno> {
        self.settled(|mm| {
            if !mm.owned(mfn) || !mm.frames.page(mfn).is_allocated() || !mm.get_page(mfn) {
                return Err(Errno::EINVAL);
            }
            if mm.frames.page(mfn).is_pinned() {
                mm.frames.page_mut(mfn).set_pinned(false);
                mm.put_type(mfn);
                mm.put_page(mfn);
            }
            mm.frames.page_mut(mfn).set_allocated(false);
            mm.mach.set_m2p(mfn, hypercall_abi::types::INVALID_M2P_ENTRY);
            mm.put_page(mfn);
            mm.put_page(mfn);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_addresses_exclude_the_hypervisor_slice_and_the_hole() {
        assert!(is_guest_va(0));
        assert!(is_guest_va(0x7fff_ffff_ffff));
        assert!(!is_guest_va(0x8000_0000_0000));
        assert!(!is_guest_va(HYPERVISOR_VIRT_START));
        assert!(!is_guest_va(HYPERVISOR_VIRT_END - 1));
        assert!(is_guest_va(HYPERVISOR_VIRT_END));
        assert!(is_guest_va(0xffff_ffff_8000_0000));
    }
}
