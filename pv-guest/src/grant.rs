//! Grant tables for guests (v1): set up and map the table, allocate references, grant a
//! frame to a domain read-only or read-write and end that access (refused while the
//! grantee uses it, as Linux's `gnttab_end_foreign_access_ref`), map and unmap a foreign
//! grant at a virtual address in batches, and copy through `GNTTABOP_copy`.
//!
//! The reference allocator ([`RefAllocator`]) and the entry state rules ([`end_access_flags`])
//! are portable and host-tested; the rest talks to the hypervisor.

use hypercall_abi::grant_table::*;

/// Hands out grant references from [`GNTTAB_NR_RESERVED_ENTRIES`] up to the table's
/// capacity; freed references are reused first.
#[derive(Debug)]
pub struct RefAllocator {
    next: u32,
    capacity: u32,
    free: alloc::vec::Vec<u32>,
}

impl RefAllocator {
    /// An allocator over a table of `capacity` entries.
    pub fn new(capacity: u32) -> Self {
        RefAllocator { next: GNTTAB_NR_RESERVED_ENTRIES, capacity, free: alloc::vec::Vec::new() }
    }

    /// A free reference, if any.
    pub fn alloc(&mut self) -> Option<u32> {
        if let Some(r) = self.free.pop() {
            return Some(r);
        }
        (self.next < self.capacity).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    /// Gives `r` back; false (and nothing changes) for a reserved, never-allocated or
    /// already free reference.
    pub fn free(&mut self, r: u32) -> bool {
        if r < GNTTAB_NR_RESERVED_ENTRIES || r >= self.next || self.free.contains(&r) {
            return false;
        }
        self.free.push(r);
        true
    }

    /// References in use.
    pub fn in_use(&self) -> u32 {
        self.next - GNTTAB_NR_RESERVED_ENTRIES - self.free.len() as u32
    }
}

/// Why ending access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndAccess {
    /// The grantee has the frame mapped or in use (`GTF_reading`/`GTF_writing` set): the
    /// entry is left as it is.
    InUse(u16),
}

/// The flags ending access writes for an entry with `flags`: `Err` while in use (Linux's
/// `gnttab_end_foreign_access_ref_v1`: the exchange to 0 only happens when neither
/// `GTF_reading` nor `GTF_writing` is set).
pub const fn end_access_flags(flags: u16) -> Result<u16, EndAccess> {
    if flags & (GTF_READING | GTF_WRITING) != 0 {
        Err(EndAccess::InUse(flags))
    } else {
        Ok(0)
    }
}

#[cfg(target_os = "none")]
pub use machine::*;

#[cfg(target_os = "none")]
mod machine {
    use super::*;
    use crate::hypercall::hypercall;
    use crate::mm::xen::{update_va_mapping_raw, GuestMm};
    use crate::mm::DATA_RW_FLAGS;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};
    use hypercall_abi::errno::Errno;
    use hypercall_abi::hypercall::Hypercall;
    use hypercall_abi::mmu::UVMF_INVLPG;
    use hypercall_abi::types::DOMID_SELF;

    /// `grant_table_op(cmd, uop, count)`, raw: the hypercall's return value.
    pub fn grant_table_op_raw(cmd: u32, uop: *mut u8, count: u32) -> i64 {
        // SAFETY: `uop` points at `count` arguments of `cmd`'s type, owned by the caller
        // and writable for the hypervisor's status write-back.
        unsafe { hypercall(Hypercall::GrantTableOp as u64, u64::from(cmd), uop as u64, u64::from(count), 0, 0) }
    }

    fn ok(ret: i64) -> Result<(), Errno> {
        crate::hypercall::check(ret).map(|_| ())
    }

    /// Maps `ops` (each with its own status) in one hypercall.
    pub fn map_grants(ops: &mut [GnttabMapGrantRef]) -> Result<(), Errno> {
        ok(grant_table_op_raw(GNTTABOP_MAP_GRANT_REF, ops.as_mut_ptr().cast(), ops.len() as u32))
    }

    /// Unmaps `ops` (each with its own status) in one hypercall.
    pub fn unmap_grants(ops: &mut [GnttabUnmapGrantRef]) -> Result<(), Errno> {
        ok(grant_table_op_raw(GNTTABOP_UNMAP_GRANT_REF, ops.as_mut_ptr().cast(), ops.len() as u32))
    }

    /// Runs the copies `ops` (each with its own status) in one hypercall.
    pub fn copy(ops: &mut [GnttabCopy]) -> Result<(), Errno> {
        ok(grant_table_op_raw(GNTTABOP_COPY, ops.as_mut_ptr().cast(), ops.len() as u32))
    }

    /// A map request for `gref` of `dom` at `va`.
    pub fn map_op(va: u64, dom: u16, gref: u32, readonly: bool) -> GnttabMapGrantRef {
        GnttabMapGrantRef {
            host_addr: va,
            flags: GNTMAP_HOST_MAP | if readonly { GNTMAP_READONLY } else { 0 },
            r#ref: gref,
            dom,
            ..Default::default()
        }
    }

    /// An unmap request for `handle` mapped at `va`.
    pub fn unmap_op(va: u64, handle: u32) -> GnttabUnmapGrantRef {
        GnttabUnmapGrantRef { host_addr: va, handle, ..Default::default() }
    }

    /// Maps one grant; its handle, or its `GNTST_*` status.
    pub fn map_one(va: u64, dom: u16, gref: u32, readonly: bool) -> Result<u32, i16> {
        let mut op = [map_op(va, dom, gref, readonly)];
        map_grants(&mut op).map_err(|_| GNTST_GENERAL_ERROR)?;
        if op[0].status == GNTST_OKAY { Ok(op[0].handle) } else { Err(op[0].status) }
    }

    /// Unmaps one grant; its `GNTST_*` status on failure.
    pub fn unmap_one(va: u64, handle: u32) -> Result<(), i16> {
        let mut op = [unmap_op(va, handle)];
        unmap_grants(&mut op).map_err(|_| GNTST_GENERAL_ERROR)?;
        if op[0].status == GNTST_OKAY { Ok(()) } else { Err(op[0].status) }
    }

    /// One side of a copy: grant `gref` of `dom`.
    pub fn copy_gref(dom: u16, gref: u32, offset: u16) -> GnttabCopyPtr {
        GnttabCopyPtr { u: u64::from(gref), domid: dom, offset, _pad: 0 }
    }

    /// One side of a copy: a local frame.
    pub fn copy_local(mfn: u64, offset: u16) -> GnttabCopyPtr {
        GnttabCopyPtr { u: mfn, domid: DOMID_SELF, offset, _pad: 0 }
    }

    /// `GNTTABOP_set_version`: the hypercall's return and the version in use.
    pub fn set_version(version: u32) -> (i64, u32) {
        let mut op = GnttabSetVersion { version };
        let r = grant_table_op_raw(GNTTABOP_SET_VERSION, (&raw mut op).cast(), 1);
        (r, op.version)
    }

    /// `GNTTABOP_query_size` for `dom`: (frames, most frames), or the status.
    pub fn query_size(dom: u16) -> Result<(u32, u32), i16> {
        let mut op = GnttabQuerySize { dom, ..Default::default() };
        let r = grant_table_op_raw(GNTTABOP_QUERY_SIZE, (&raw mut op).cast(), 1);
        if r != 0 {
            return Err(GNTST_GENERAL_ERROR);
        }
        if op.status == GNTST_OKAY { Ok((op.nr_frames, op.max_nr_frames)) } else { Err(op.status) }
    }

    /// This domain's grant table, mapped: the entries and the reference allocator.
    pub struct GrantTable {
        /// Where each table frame is mapped.
        vas: Vec<u64>,
        /// The references.
        pub refs: RefAllocator,
    }

    impl GrantTable {
        /// Sets up `nr_frames` table frames and maps them writable over padding pages of
        /// the initial region.
        pub fn setup(mm: &mut GuestMm, nr_frames: u32) -> Result<GrantTable, Errno> {
            let mut list = alloc::vec![0u64; nr_frames as usize];
            let mut op = GnttabSetupTable { dom: DOMID_SELF, nr_frames, frame_list: list.as_mut_ptr() as u64, ..Default::default() };
            ok(grant_table_op_raw(GNTTABOP_SETUP_TABLE, (&raw mut op).cast(), 1))?;
            if op.status != GNTST_OKAY {
                return Err(Errno::EINVAL);
            }
            let mut vas = Vec::new();
            for &mfn in &list {
                let (_, va) = mm.alloc_mapped().ok_or(Errno::ENOMEM)?;
                ok(update_va_mapping_raw(va, (mfn << 12) | DATA_RW_FLAGS, UVMF_INVLPG))?;
                vas.push(va);
            }
            Ok(GrantTable { vas, refs: RefAllocator::new(nr_frames * GRANT_ENTRIES_V1_PER_FRAME) })
        }

        /// Where table frame `i` is mapped (writable), 0 past the last: for a guest that
        /// writes entries in another layout itself (v2).
        pub fn frame_va(&self, i: usize) -> u64 {
            self.vas.get(i).copied().unwrap_or(0)
        }

        fn entry(&self, gref: u32) -> *mut GrantEntryV1 {
            let va = self.vas[(gref / GRANT_ENTRIES_V1_PER_FRAME) as usize];
            (va as *mut GrantEntryV1).wrapping_add((gref % GRANT_ENTRIES_V1_PER_FRAME) as usize)
        }

        fn flags_word(&self, gref: u32) -> &AtomicU16 {
            // SAFETY: `entry` points into a table frame mapped writable for good; the flags
            // are 2-aligned and shared with the hypervisor, so only accessed atomically.
            unsafe { AtomicU16::from_ptr(&raw mut (*self.entry(gref)).flags) }
        }

        /// The entry's flags now.
        pub fn flags(&self, gref: u32) -> u16 {
            self.flags_word(gref).load(Ordering::Acquire)
        }

        /// Writes entry `gref`: frame and domid first, then the flags that make it valid
        /// (Linux's `gnttab_update_entry_v1` order).
        pub fn set_entry(&mut self, gref: u32, domid: u16, mfn: u64, flags: u16) {
            let e = self.entry(gref);
            // SAFETY: as in `flags_word`; the frame and domid are written before the flags,
            // which the hypervisor reads first.
            unsafe {
                AtomicU32::from_ptr(&raw mut (*e).frame).store(mfn as u32, Ordering::Relaxed);
                AtomicU16::from_ptr(&raw mut (*e).domid).store(domid, Ordering::Relaxed);
            }
            self.flags_word(gref).store(flags, Ordering::Release);
        }

        /// Grants `mfn` to `domid`; returns the reference.
        pub fn grant_access(&mut self, domid: u16, mfn: u64, readonly: bool) -> Option<u32> {
            let r = self.refs.alloc()?;
            self.set_entry(r, domid, mfn, GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 });
            Some(r)
        }

        /// Ends access to `gref` unless the grantee has it in use; frees the reference.
        pub fn end_access(&mut self, gref: u32) -> Result<(), EndAccess> {
            let w = self.flags_word(gref);
            let mut flags = w.load(Ordering::Acquire);
            loop {
                let new = end_access_flags(flags)?;
                match w.compare_exchange(flags, new, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(f) => flags = f,
                }
            }
            self.refs.free(gref);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_start_past_the_reserved_entries_and_are_reused() {
        let mut a = RefAllocator::new(11);
        assert_eq!((a.alloc(), a.alloc(), a.alloc(), a.alloc()), (Some(8), Some(9), Some(10), None));
        assert_eq!(a.in_use(), 3);
        assert!(a.free(9));
        assert!(!a.free(9), "double free refused");
        assert!(!a.free(1), "reserved");
        assert!(!a.free(11), "never allocated");
        assert_eq!(a.alloc(), Some(9));
    }

    #[test]
    fn end_access_refused_while_in_use() {
        assert_eq!(end_access_flags(GTF_PERMIT_ACCESS), Ok(0));
        assert_eq!(end_access_flags(GTF_PERMIT_ACCESS | GTF_READONLY), Ok(0));
        let busy = GTF_PERMIT_ACCESS | GTF_READING;
        assert_eq!(end_access_flags(busy), Err(EndAccess::InUse(busy)));
        assert!(end_access_flags(GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING).is_err());
    }
}
