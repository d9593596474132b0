//! Grant tables on the machine: the granters' shared entries read and exchanged atomically
//! through the direct map ([`DirectEntries`]), and the `grant_table_op` operations of the
//! running domain, which apply the `grant-tables` rules and then [`crate::mm::grant`]'s
//! page-table half.
#![forbid(unsafe_code)]

use crate::arch::x86_64::frames;
use crate::kernel::Machine;
use core::sync::atomic::{AtomicU32, Ordering};
use crate::mm::grant::WalkHint;
use crate::mm::pt::Mm;
use grant_tables::{CopyBatch, CopyFrames, CopyGrants, CopySide, EntryMemory, MapRequest};
use hypercall_abi::grant_table::*;
use hypercall_abi::types::DOMID_SELF;

/// The shared entries of grant-table frames, through the direct map. Only frames of a
/// table the registry still holds are ever named (a dead domain's table leaves the registry
/// before its frames go back), so every access is to a live table frame.
pub struct DirectEntries;

/// The word at `off` (4-aligned, masked inside the page) of live table or status frame
/// `frame`. The guest may write it at any time: it is only accessed atomically.
fn word(frame: u64, off: usize) -> &'static AtomicU32 {
    debug_assert!(off < 4096 && off.is_multiple_of(4));
    frames::atomic_u32((frame << 12) + (off & 0xffc) as u64)
}

impl EntryMemory for DirectEntries {
    fn read32(&mut self, frame: u64, off: usize) -> u32 {
        word(frame, off).load(Ordering::Acquire)
    }

    fn read64(&mut self, frame: u64, off: usize) -> u64 {
        // As `word`, for an 8-aligned offset inside the page (masked).
        frames::atomic_u64((frame << 12) + (off & 0xff8) as u64).load(Ordering::Acquire)
    }

    fn cmpxchg32(&mut self, frame: u64, off: usize, old: u32, new: u32) -> u32 {
        match word(frame, off).compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(v) | Err(v) => v,
        }
    }

    fn and32(&mut self, frame: u64, off: usize, mask: u32) {
        word(frame, off).fetch_and(mask, Ordering::AcqRel);
    }

    fn or32(&mut self, frame: u64, off: usize, bits: u32) {
        word(frame, off).fetch_or(bits, Ordering::AcqRel);
    }

    fn write32(&mut self, frame: u64, off: usize, v: u32) {
        word(frame, off).store(v, Ordering::Release);
    }
}

impl Machine {
    /// Grows domain `domid`'s grant table to `nr_frames` (new frames zeroed and shared with
    /// it writable, as `shared_info`); returns every table frame.
    pub fn grant_setup_table(&mut self, domid: u16, nr_frames: u32) -> Result<alloc::vec::Vec<u64>, i16> {
        let i = self.idx(domid).ok_or(GNTST_BAD_DOMAIN)?;
        let (frames, table, dom) = (&mut self.frames, &mut self.frame_table, &mut self.domains[i].mm);
        let got = self.grants.setup_table(domid, nr_frames, &mut || shared_frame(frames, table, dom))?;
        Ok(got.to_vec())
    }

    /// `GNTTABOP_set_version` for the running domain: status frames are taken as table
    /// frames are (zeroed, shared with it writable) and given back only when it no longer
    /// maps them. Xen's errnos.
    pub fn grant_set_version(&mut self, version: u32) -> Result<u32, hypercall_abi::errno::Errno> {
        use hypercall_abi::errno::Errno;
        let i = self.cur_idx();
        let me = self.domains[i].id;
        let mut grants = core::mem::take(&mut self.grants);
        let r = {
            let (frames, table) = (&mut self.frames, &mut self.frame_table);
            let dom = &mut self.domains[i].mm;
            // Frames let go of are collected and released through the domain's memory
            // state afterwards (the allocation closure holds the frame table meanwhile).
            let mut gone = alloc::vec::Vec::new();
            let status = grants.table(me).map(|t| t.status_frames().to_vec()).unwrap_or_default();
            let unmapped: alloc::vec::Vec<u64> = status.into_iter().filter(|&f| crate::mm::grant::shared_releasable(table, f)).collect();
            let r = grants.set_version(
                &mut DirectEntries,
                me,
                version,
                &mut || shared_frame(frames, table, dom),
                &mut |f| unmapped.contains(&f),
                &mut |f| gone.push(f),
            );
            (r, gone)
        };
        let (r, gone) = r;
        for f in gone {
            // Checked unmapped before the version changed, and nothing ran since.
            let _ = self.with_mm(i, |mm| mm.unshare(f));
        }
        let now = grants.table(me).map_or(1, |t| t.version());
        self.grants = grants;
        match r {
            Ok(()) => Ok(now),
            Err(grant_tables::VersionError::Invalid) => Err(Errno::EINVAL),
            Err(grant_tables::VersionError::Busy) => Err(Errno::EBUSY),
            Err(grant_tables::VersionError::Range) => Err(Errno::ERANGE),
            Err(grant_tables::VersionError::NoMemory) => Err(Errno::ENOMEM),
        }
    }

    /// One map for the running domain; `walk` is the chunk's last page-table walk. A host
    /// half is a page-table entry (which holds the frame's references); a device half
    /// (`GNTMAP_device_map`, for DMA: the bus address is the machine address, a PV domain
    /// having no IOMMU) holds a general reference, and the writable type for a writable
    /// one, until that half is unmapped, as Xen's `map_grant_ref`.
    pub fn grant_map(&mut self, req: MapRequest, walk: &mut WalkHint) -> Result<(u32, u64), i16> {
        let cur = self.cur_idx();
        let me = self.domains[cur].id;
        // The registry holds exactly the live domains (a domain leaves it when destroyed),
        // so an unknown or dying granter is GNTST_bad_domain there, after the flags are
        // checked, in Xen's order (DOMID_SELF is no domain here either, as in Xen).
        let g = self.grants.map_acquire(&mut DirectEntries, me, req)?;
        let flags = if g.readonly { req.flags | GNTMAP_READONLY } else { req.flags & !GNTMAP_READONLY };
        let device = req.flags & GNTMAP_DEVICE_MAP != 0;
        let r = self.with_mm(cur, |mm| {
            if device {
                mm.grant_copy_claim(g.frame, req.granter, !g.readonly)?;
            }
            if req.flags & GNTMAP_HOST_MAP != 0 {
                if let Err(st) = mm.grant_map_walked(walk, req.host_addr, g.frame, req.granter, flags) {
                    if device {
                        mm.grant_copy_release(g.frame, !g.readonly);
                    }
                    return Err(st);
                }
            }
            Ok(())
        });
        if let Err(st) = r {
            self.grants.map_abort(&mut DirectEntries, me, g.handle);
            return Err(st);
        }
        Ok((g.handle, g.frame << 12))
    }

    /// One unmap for the running domain: the mapping is found by its handle and checked
    /// against the arguments ([`grant_tables::Grants::unmap_target`]), the entry at
    /// `host_addr` must still map the frame (`GNTST_general_error` otherwise, and nothing
    /// changes, as Xen), then the entry is cleared and the pins go.
    pub fn grant_unmap(&mut self, host_addr: u64, dev_bus_addr: u64, handle: u32, walk: &mut WalkHint) -> Result<(), i16> {
        self.grant_unmap_replace(host_addr, dev_bus_addr, 0, handle, walk)
    }

    /// An unmap ([`Machine::grant_unmap`]), or with `new_addr` Xen's
    /// `GNTTABOP_unmap_and_replace`: the entry at `new_addr` moves to `host_addr` (over
    /// the grant mapping) and `new_addr` is cleared. The halves the request names go: the
    /// host half's entry is checked and changed first (nothing changes if it does not map
    /// the frame), then the device half's references are let go, then the pins.
    pub fn grant_unmap_replace(&mut self, host_addr: u64, dev_bus_addr: u64, new_addr: u64, handle: u32, walk: &mut WalkHint) -> Result<(), i16> {
        let cur = self.cur_idx();
        let me = self.domains[cur].id;
        let u = self.grants.unmap_target(me, handle, host_addr, dev_bus_addr)?;
        let m = u.mapping;
        self.with_mm(cur, |mm| {
            if u.host {
                if new_addr == 0 {
                    mm.grant_unmap_walked(walk, host_addr, m.frame)?;
                } else {
                    mm.grant_replace(host_addr, m.frame, new_addr)?;
                }
            }
            if u.device {
                mm.grant_copy_release(m.frame, !m.readonly);
            }
            Ok::<(), i16>(())
        })?;
        self.grants.unmap_halves(&mut DirectEntries, me, handle, u.host, u.device).map(|_| ())
    }

    /// One copy for the running domain (Xen's `gnttab_copy_one`): bounds first
    /// (`GNTST_bad_copy_arg`), then each side's domain (a local frame only with
    /// `DOMID_SELF`: `GNTST_permission_denied`; an unknown one `GNTST_bad_domain`), then the
    /// grants are pinned for the copy, the frames checked and the bytes copied. The sides
    /// stay held in `held` for the next copy of the chunk (`grant_copy_finish` gives them
    /// back).
    pub fn grant_copy(&mut self, op: &GnttabCopy, held: &mut CopyBatch) -> Result<(), i16> {
        let cur = self.cur_idx();
        let me = self.domains[cur].id;
        let len = usize::from(op.len);
        if usize::from(op.source.offset) + len > 4096 || usize::from(op.dest.offset) + len > 4096 {
            return Err(GNTST_BAD_COPY_ARG);
        }
        let side = |m: &Machine, ptr: &GnttabCopyPtr, gref: bool| -> Result<CopySide, i16> {
            if !gref {
                return if ptr.domid == DOMID_SELF { Ok(CopySide::Frame { dom: me, frame: ptr.u }) } else { Err(GNTST_PERMISSION_DENIED) };
            }
            let d = if ptr.domid == DOMID_SELF { me } else { ptr.domid };
            m.live_idx(d).map(|_| CopySide::Gref { dom: d, gref: ptr.u }).map_err(|_| GNTST_BAD_DOMAIN)
        };
        let src = side(self, &op.source, op.flags & GNTCOPY_SOURCE_GREF != 0)?;
        let dst = side(self, &op.dest, op.flags & GNTCOPY_DEST_GREF != 0)?;
        let (so, doff) = (usize::from(op.source.offset), usize::from(op.dest.offset));
        // The grant state leaves the machine for the copy, so that the pins and the frame
        // references can be taken in Xen's order inside one memory operation.
        let mut grants = core::mem::take(&mut self.grants);
        let r = self.with_mm(cur, |mm| {
            let mut g = CopyGrants { grants: &mut grants, mem: &mut DirectEntries, caller: me };
            held.copy(&mut g, &mut CopyMm(mm), src, so, dst, doff, len)
        });
        self.grants = grants;
        r
    }

    /// Gives back the copy sides `held` still holds (end of a chunk of copies).
    pub fn grant_copy_finish(&mut self, held: &mut CopyBatch) {
        if !held.holds_any() {
            return;
        }
        let cur = self.cur_idx();
        let me = self.domains[cur].id;
        let mut grants = core::mem::take(&mut self.grants);
        self.with_mm(cur, |mm| {
            let mut g = CopyGrants { grants: &mut grants, mem: &mut DirectEntries, caller: me };
            held.finish(&mut g, &mut CopyMm(mm));
        });
        self.grants = grants;
    }
}

/// The frame half of a copy over the running domain's memory operations.
struct CopyMm<'m, 'a, 'b>(&'m mut Mm<'a, 'b>);

impl CopyFrames for CopyMm<'_, '_, '_> {
    fn claim(&mut self, frame: u64, owner: u16, write: bool) -> Result<(), i16> {
        self.0.grant_copy_claim(frame, owner, write)
    }

    fn release(&mut self, frame: u64, write: bool) {
        self.0.grant_copy_release(frame, write);
    }

    fn copy(&mut self, dst: u64, dst_off: usize, src: u64, src_off: usize, len: usize) {
        // The machine checked the bounds before anything was claimed.
        let _ = self.0.grant_copy_bytes(dst, dst_off, src, src_off, len);
    }
}

/// A fresh frame for a grant table or its status (zeroed, shared with `dom` writable, as
/// `shared_info`); `None` when none is left.
fn shared_frame(frames: &mut crate::mm::frame_alloc::FrameAllocator<'_>, table: &mut crate::mm::page_info::FrameTable<'_>, dom: &mut crate::mm::page_info::DomainMm) -> Option<u64> {
    let mfn = frames.alloc()?;
    // A frame just taken from the allocator: ours alone.
    frames::zero(mfn);
    if table.share_with_guest(mfn, dom).is_err() {
        let _ = frames.free(mfn);
        return None;
    }
    Some(mfn)
}
