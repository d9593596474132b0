//! Grant tables on the machine: the granters' shared entries read and exchanged atomically
//! through the direct map ([`DirectEntries`]), and the `grant_table_op` operations of the
//! running domain, which apply the `grant-tables` rules and then [`crate::mm::grant`]'s
//! page-table half.

use crate::arch::directmap;
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

fn word(frame: u64, slot: usize, half: usize) -> &'static AtomicU32 {
    debug_assert!(slot < GRANT_ENTRIES_V1_PER_FRAME as usize && half < 2);
    // SAFETY: `frame` is a grant-table frame (RAM, direct-mapped, page-aligned) of a table
    // in the registry, `slot` < 512 and `half` < 2, so the word lies inside that frame and
    // is 4-aligned. The guest may write it at any time: it is only accessed atomically.
    unsafe { &*(directmap(frame << 12).add(slot * 8 + half * 4) as *const AtomicU32) }
}

impl EntryMemory for DirectEntries {
    fn read(&mut self, frame: u64, slot: usize) -> (u32, u32) {
        (word(frame, slot, 0).load(Ordering::Acquire), word(frame, slot, 1).load(Ordering::Acquire))
    }

    fn cmpxchg_header(&mut self, frame: u64, slot: usize, old: u32, new: u32) -> u32 {
        match word(frame, slot, 0).compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(v) | Err(v) => v,
        }
    }

    fn clear_flags(&mut self, frame: u64, slot: usize, bits: u16) {
        word(frame, slot, 0).fetch_and(!u32::from(bits), Ordering::AcqRel);
    }
}

impl Machine {
    /// Grows domain `domid`'s grant table to `nr_frames` (new frames zeroed and shared with
    /// it writable, as `shared_info`); returns every table frame.
    pub fn grant_setup_table(&mut self, domid: u16, nr_frames: u32) -> Result<alloc::vec::Vec<u64>, i16> {
        let i = self.idx(domid).ok_or(GNTST_BAD_DOMAIN)?;
        let (frames, table, dom) = (&mut self.frames, &mut self.frame_table, &mut self.domains[i].mm);
        let got = self.grants.setup_table(domid, nr_frames, &mut || {
            let mfn = frames.alloc()?;
            // SAFETY: a frame just taken from the allocator: RAM, direct-mapped, ours alone.
            unsafe { core::ptr::write_bytes(directmap(mfn << 12), 0, 4096) };
            if table.share_with_guest(mfn, dom).is_err() {
                let _ = frames.free(mfn);
                return None;
            }
            Some(mfn)
        })?;
        Ok(got.to_vec())
    }

    /// One map for the running domain; `walk` is the chunk's last page-table walk.
    pub fn grant_map(&mut self, req: MapRequest, walk: &mut WalkHint) -> Result<(u32, u64), i16> {
        let cur = self.cur_idx();
        let me = self.domains[cur].id;
        // Only host mappings: a device-only mapping would hold no page-table entry, and the
        // frame references of a mapping live in its entry.
        if req.flags & GNTMAP_HOST_MAP == 0 && req.flags & GNTMAP_DEVICE_MAP != 0 {
            return Err(GNTST_GENERAL_ERROR);
        }
        // The registry holds exactly the live domains (a domain leaves it when destroyed),
        // so an unknown or dying granter is GNTST_bad_domain there, after the flags are
        // checked, in Xen's order (DOMID_SELF is no domain here either, as in Xen).
        let g = self.grants.map_acquire(&mut DirectEntries, me, req)?;
        if let Err(st) = self.with_mm(cur, |mm| mm.grant_map_walked(walk, req.host_addr, g.frame, req.granter, if g.readonly { req.flags | GNTMAP_READONLY } else { req.flags & !GNTMAP_READONLY })) {
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
        let cur = self.cur_idx();
        let me = self.domains[cur].id;
        let m = self.grants.unmap_target(me, handle, host_addr, dev_bus_addr)?;
        self.with_mm(cur, |mm| mm.grant_unmap_walked(walk, host_addr, m.frame))?;
        self.grants.unmap_release(&mut DirectEntries, me, handle).map(|_| ())
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
