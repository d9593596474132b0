//! A domain's grant table as granter: its shared frames, its limits and the
//! hypervisor-private active entries with their pins (Xen's `struct grant_table` and
//! `struct active_grant_entry`), and the checks of a shared entry (Xen's `_set_status_v1`).

use super::*;

/// Per-domain limits (0 in a request means the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most grant-table frames ([`DEFAULT_MAX_GRANT_FRAMES`]).
    pub max_grant_frames: u32,
    /// Most maptrack frames ([`DEFAULT_MAX_MAPTRACK_FRAMES`]), of [`MAPTRACK_PER_FRAME`]
    /// handles each.
    pub max_maptrack_frames: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_grant_frames: DEFAULT_MAX_GRANT_FRAMES, max_maptrack_frames: DEFAULT_MAX_MAPTRACK_FRAMES }
    }
}

impl Limits {
    /// Limits from a domain-creation request: 0 picks the default; a value past
    /// [`MAX_GRANT_FRAMES_LIMIT`] or [`MAX_MAPTRACK_FRAMES_LIMIT`] is refused (`None`).
    pub fn from_request(max_grant_frames: u32, max_maptrack_frames: u32) -> Option<Limits> {
        let d = Limits::default();
        let g = if max_grant_frames == 0 { d.max_grant_frames } else { max_grant_frames };
        let m = if max_maptrack_frames == 0 { d.max_maptrack_frames } else { max_maptrack_frames };
        (g <= MAX_GRANT_FRAMES_LIMIT && m <= MAX_MAPTRACK_FRAMES_LIMIT).then_some(Limits { max_grant_frames: g, max_maptrack_frames: m })
    }

    /// Most grant entries (v1).
    pub fn max_entries(&self) -> u32 {
        self.max_grant_frames * ENTRIES_PER_FRAME
    }
}

/// The hypervisor's record of one entry while it is pinned (16 bytes: a full 64-frame
/// table takes 512 KiB of the hypervisor's heap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Active {
    /// Read-only pins (read-only map halves and copy sources), at most [`MAX_PINS`].
    read_pins: u8,
    /// Writable pins (writable map halves and copy destinations), at most [`MAX_PINS`].
    write_pins: u8,
    /// The domain the entry is pinned for.
    domid: u16,
    /// The part of the frame granted (a v2 sub-page grant; else 0 and 4096).
    start: u16,
    length: u16,
    /// The frame, as the entry named it at the first pin.
    frame: u64,
}

const _: () = assert!(core::mem::size_of::<Active>() == 16);

/// What a pin gives: the frame and the part of it granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pinned {
    /// The granted frame.
    pub frame: u64,
    /// First byte granted.
    pub start: u16,
    /// Bytes granted from `start`.
    pub length: u16,
}

/// Why `GNTTABOP_set_version` refused (Xen's errnos).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionError {
    /// Neither 1 nor 2 (`EINVAL`).
    Invalid,
    /// An entry past the reserved ones is in use (`EBUSY`), or a status frame is still
    /// mapped by the domain (`EBUSY` too).
    Busy,
    /// A reserved v2 entry cannot be written as v1 (`ERANGE`).
    Range,
    /// No frame for the status frames (`ENOMEM`).
    NoMemory,
}

/// A domain's grant table: v1 or v2 layout, its shared frames, its status frames (v2) and
/// the active entries.
pub struct GrantTable {
    limits: Limits,
    version: u32,
    frames: Vec<u64>,
    status: Vec<u64>,
    active: Vec<Active>,
}

impl GrantTable {
    /// An empty v1 table (no frames yet).
    pub fn new(limits: Limits) -> Self {
        GrantTable { limits, version: 1, frames: Vec::new(), status: Vec::new(), active: Vec::new() }
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The layout in use (1 or 2).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Frames now.
    pub fn nr_frames(&self) -> u32 {
        self.frames.len() as u32
    }

    /// The table frames, in order.
    pub fn frames(&self) -> &[u64] {
        &self.frames
    }

    /// The status frames (v2), in order.
    pub fn status_frames(&self) -> &[u64] {
        &self.status
    }

    fn per_frame(&self) -> u32 {
        if self.version == 2 {
            GRANT_ENTRIES_V2_PER_FRAME
        } else {
            ENTRIES_PER_FRAME
        }
    }

    /// Entries now.
    pub fn nr_entries(&self) -> u32 {
        self.nr_frames() * self.per_frame()
    }

    fn status_frames_for(entries: u32) -> u32 {
        entries.div_ceil(GRANT_STATUS_PER_FRAME)
    }

    /// Read and write pins of `gref` (0, 0 if not pinned or out of range).
    pub fn pins(&self, gref: u32) -> (u32, u32) {
        self.active.get(gref as usize).map_or((0, 0), |a| (u32::from(a.read_pins), u32::from(a.write_pins)))
    }

    /// The domain and frame `gref` is pinned for (meaningful while it has pins).
    pub(crate) fn pinned_for(&self, gref: u32) -> Option<(u16, u64)> {
        self.active.get(gref as usize).map(|a| (a.domid, a.frame))
    }

    /// Entries pinned now.
    pub fn pinned_entries(&self) -> usize {
        self.active.iter().filter(|a| a.read_pins > 0 || a.write_pins > 0).count()
    }

    /// Grows to `nr_frames` frames taken from `alloc`, with the status frames v2 needs for
    /// them (Xen's `gnttab_grow_table`).
    pub(crate) fn grow(&mut self, nr_frames: u32, alloc: &mut dyn FnMut() -> Option<u64>) -> Result<(), Status> {
        if nr_frames > self.limits.max_grant_frames {
            return Err(GNTST_GENERAL_ERROR);
        }
        while self.nr_frames() < nr_frames {
            // Room first (the heap may be short: an error, never a panic), then the frames.
            let entries = (self.nr_frames() + 1) * self.per_frame();
            let status_more = if self.version == 2 { Self::status_frames_for(entries).saturating_sub(self.status.len() as u32) } else { 0 };
            self.frames.try_reserve(1).map_err(|_| GNTST_GENERAL_ERROR)?;
            self.status.try_reserve(status_more as usize).map_err(|_| GNTST_GENERAL_ERROR)?;
            self.active.try_reserve(self.per_frame() as usize).map_err(|_| GNTST_GENERAL_ERROR)?;
            // Status frames first: a shared frame never exists without its status words.
            for _ in 0..status_more {
                self.status.push(alloc().ok_or(GNTST_GENERAL_ERROR)?);
            }
            self.frames.push(alloc().ok_or(GNTST_GENERAL_ERROR)?);
            self.active.resize(self.nr_entries() as usize, Active::default());
        }
        Ok(())
    }

    /// The shared entry of `gref`: its frame and the byte offset of its header.
    fn locate(&self, gref: u32) -> Option<(u64, usize)> {
        let per = self.per_frame();
        let frame = *self.frames.get((gref / per) as usize)?;
        let size = if self.version == 2 { 16 } else { 8 };
        Some((frame, (gref % per) as usize * size))
    }

    /// The status word of `gref` (v2): its frame, the offset of the 32-bit word holding it
    /// and its shift in that word.
    fn status_of(&self, gref: u32) -> Option<(u64, usize, u32)> {
        let frame = *self.status.get((gref / GRANT_STATUS_PER_FRAME) as usize)?;
        let byte = (gref % GRANT_STATUS_PER_FRAME) as usize * 2;
        Some((frame, byte & !3, (byte as u32 & 2) * 8))
    }

    /// Pins `gref` for domain `user`, read-only or writable; `mapping` for a map (which
    /// also refuses `GTF_sub_page` and transitive grants), else a copy. Returns the frame
    /// and the part of it granted.
    pub(crate) fn pin(&mut self, mem: &mut dyn EntryMemory, gref: u32, user: u16, readonly: bool, mapping: bool) -> Result<Pinned, Status> {
        let (Some(&a), Some((slot_frame, off))) = (self.active.get(gref as usize), self.locate(gref)) else {
            return Err(GNTST_BAD_GNTREF);
        };
        let pinned = a.read_pins > 0 || a.write_pins > 0;
        // Already pinned: for the same domain only, and not past the counters (Xen: "Bad
        // domain, or risk of counter overflow").
        if pinned && (a.domid != user || u32::from(a.read_pins) >= MAX_PINS || u32::from(a.write_pins) >= MAX_PINS) {
            return Err(GNTST_GENERAL_ERROR);
        }
        // Xen checks the shared entry again only at the first pin or the first write pin.
        if !pinned || (!readonly && a.write_pins == 0) {
            if self.version == 2 {
                let status = self.status_of(gref).ok_or(GNTST_BAD_GNTREF)?;
                set_status_v2(mem, slot_frame, off, status, user, readonly, mapping, pinned)?;
            } else {
                set_status_v1(mem, slot_frame, off, user, readonly, mapping)?;
            }
        }
        let version = self.version;
        let Some(a) = self.active.get_mut(gref as usize) else { return Err(GNTST_BAD_GNTREF) };
        if !pinned {
            a.domid = user;
            (a.frame, a.start, a.length) = if version == 2 {
                let sub = mem.read32(slot_frame, off) & u32::from(GTF_SUB_PAGE) != 0;
                let (start, length) = if sub {
                    let w = mem.read32(slot_frame, off + 4);
                    (w as u16, (w >> 16) as u16)
                } else {
                    (0, 4096)
                };
                (mem.read64(slot_frame, off + 8), start, length)
            } else {
                (u64::from(mem.read32(slot_frame, off + 4)), 0, 4096)
            };
        }
        if readonly {
            a.read_pins += 1;
        } else {
            a.write_pins += 1;
        }
        Ok(Pinned { frame: a.frame, start: a.start, length: a.length })
    }

    /// Drops a pin taken by [`GrantTable::pin`]; clears `GTF_writing` with the last write
    /// pin and `GTF_reading` with the last pin (Xen's `reduce_status_for_pin` and
    /// `gnttab_clear_flags`), in the entry (v1) or its status word (v2). An unpinned entry
    /// is left alone.
    pub(crate) fn unpin(&mut self, mem: &mut dyn EntryMemory, gref: u32, readonly: bool) {
        let version = self.version;
        let status = self.status_of(gref);
        let (Some((f, off)), Some(a)) = (self.locate(gref), self.active.get_mut(gref as usize)) else { return };
        let pins = if readonly { &mut a.read_pins } else { &mut a.write_pins };
        if *pins == 0 {
            return;
        }
        *pins -= 1;
        // One atomic clear of both flags when the last pin goes (Xen's
        // `reduce_status_for_pin` also clears them together).
        let mut clear = 0;
        if !readonly && a.write_pins == 0 {
            clear |= GTF_WRITING;
        }
        if a.read_pins == 0 && a.write_pins == 0 {
            clear |= GTF_READING;
        }
        if clear == 0 {
            return;
        }
        match (version, status) {
            (2, Some((sf, soff, shift))) => mem.and32(sf, soff, !(u32::from(clear) << shift)),
            (2, None) => {}
            _ => mem.and32(f, off, !u32::from(clear)),
        }
    }

    /// `GNTTABOP_get_status_frames`: the first `n` status frames (`GNTST_general_error`
    /// past those there are: all of them under v1).
    pub(crate) fn get_status_frames(&self, n: u32) -> Result<&[u64], Status> {
        self.status.get(..n as usize).ok_or(GNTST_GENERAL_ERROR)
    }

    /// `GNTTABOP_set_version` (Xen's `gnttab_set_version`): to the same version nothing
    /// happens; otherwise no entry past the reserved ones may be pinned, v2 to v1 needs the
    /// reserved entries representable in v1, v1 to v2 takes status frames from `alloc`,
    /// v2 to v1 gives them back through `release` (which refuses a frame the domain still
    /// maps). Every shared frame is cleared and the reserved entries (the toolstack's
    /// console and store grants) are carried over in the new layout.
    pub fn set_version(
        &mut self,
        mem: &mut dyn EntryMemory,
        version: u32,
        alloc: &mut dyn FnMut() -> Option<u64>,
        releasable: &mut dyn FnMut(u64) -> bool,
        release: &mut dyn FnMut(u64),
    ) -> Result<(), VersionError> {
        if version != 1 && version != 2 {
            return Err(VersionError::Invalid);
        }
        if version == self.version {
            return Ok(());
        }
        let reserved = GNTTAB_NR_RESERVED_ENTRIES.min(self.nr_entries());
        if self.active.iter().skip(GNTTAB_NR_RESERVED_ENTRIES as usize).any(|a| a.read_pins > 0 || a.write_pins > 0) {
            return Err(VersionError::Busy);
        }
        // The reserved entries, as v1 (flags with the in-use bits, domid, frame).
        let mut saved = [(0u16, 0u16, 0u64); GNTTAB_NR_RESERVED_ENTRIES as usize];
        for (i, e) in saved.iter_mut().enumerate().take(reserved as usize) {
            let Some((f, off)) = self.locate(i as u32) else { continue };
            let h = mem.read32(f, off);
            let (flags, domid) = (header_flags(h), header_domid(h));
            *e = if self.version == 1 {
                (flags, domid, u64::from(mem.read32(f, off + 4)))
            } else {
                let frame = mem.read64(f, off + 8);
                match flags & GTF_TYPE_MASK {
                    GTF_PERMIT_ACCESS if frame >> 32 != 0 => return Err(VersionError::Range),
                    GTF_TRANSITIVE => return Err(VersionError::Range),
                    GTF_PERMIT_ACCESS => {
                        let st = self.status_of(i as u32).map_or(0, |(sf, soff, shift)| (mem.read32(sf, soff) >> shift) as u16);
                        (flags | (st & (GTF_READING | GTF_WRITING)), domid, frame)
                    }
                    _ => (0, 0, 0),
                }
            };
        }
        if version == 2 {
            let want = Self::status_frames_for(self.nr_frames() * GRANT_ENTRIES_V2_PER_FRAME);
            let mut got = Vec::new();
            got.try_reserve(want as usize).map_err(|_| VersionError::NoMemory)?;
            for _ in 0..want {
                match alloc() {
                    Some(f) => got.push(f),
                    None => {
                        got.into_iter().for_each(&mut *release);
                        return Err(VersionError::NoMemory);
                    }
                }
            }
            self.status = got;
        } else {
            if !self.status.iter().all(|&f| releasable(f)) {
                return Err(VersionError::Busy);
            }
            core::mem::take(&mut self.status).into_iter().for_each(&mut *release);
        }
        for &f in &self.frames {
            for off in (0..4096).step_by(4) {
                mem.write32(f, off, 0);
            }
        }
        self.version = version;
        for (i, &(flags, domid, frame)) in saved.iter().enumerate().take(reserved as usize) {
            let Some((f, off)) = self.locate(i as u32) else { continue };
            if version == 1 {
                mem.write32(f, off, header(flags, domid));
                mem.write32(f, off + 4, frame as u32);
            } else {
                mem.write32(f, off, header(flags & !(GTF_READING | GTF_WRITING), domid));
                mem.write32(f, off + 8, frame as u32);
                mem.write32(f, off + 12, (frame >> 32) as u32);
                if let Some((sf, soff, shift)) = self.status_of(i as u32) {
                    mem.or32(sf, soff, u32::from(flags & (GTF_READING | GTF_WRITING)) << shift);
                }
            }
        }
        // Entries past the reserved ones hold no pins: the active table follows the new
        // number of entries.
        self.active.resize(self.nr_entries() as usize, Active::default());
        Ok(())
    }
}

/// Checks the shared entry and sets its in-use flags (Xen's `_set_status_v1`): the entry
/// must be `GTF_permit_access` (for a map, without `GTF_sub_page`) naming `user`, and not
/// `GTF_readonly` for a writable pin. Read, check and exchange are retried when the granter
/// changes the entry in between, at most [`MAX_ENTRY_RETRIES`] times.
fn set_status_v1(mem: &mut dyn EntryMemory, frame: u64, off: usize, user: u16, readonly: bool, mapping: bool) -> Result<(), Status> {
    let mask = GTF_TYPE_MASK | if mapping { GTF_SUB_PAGE } else { 0 };
    let mut seen = mem.read32(frame, off);
    let mut retries = 0;
    loop {
        let (flags, domid) = (header_flags(seen), header_domid(seen));
        if flags & mask != GTF_PERMIT_ACCESS || domid != user {
            return Err(GNTST_GENERAL_ERROR);
        }
        let mut new = flags | GTF_READING;
        if !readonly {
            if flags & GTF_READONLY != 0 {
                return Err(GNTST_GENERAL_ERROR);
            }
            new |= GTF_WRITING;
        }
        let prev = mem.cmpxchg32(frame, off, seen, header(new, domid));
        if prev == seen {
            return Ok(());
        }
        if retries == MAX_ENTRY_RETRIES {
            return Err(GNTST_GENERAL_ERROR);
        }
        retries += 1;
        seen = prev;
    }
}

/// Xen's `_set_status_v2`: the in-use flags live in the entry's status word, which only
/// the hypervisor writes. Checked (when not yet pinned: the type, `GTF_permit_access`,
/// without `GTF_sub_page` for a map; the domid), flags set, then the header read again: a
/// granter that changed it in between gets its flags cleared and the pin refused.
/// Transitive grants are refused here (this hypervisor does not follow them).
#[allow(clippy::too_many_arguments)]
fn set_status_v2(mem: &mut dyn EntryMemory, frame: u64, off: usize, status: (u64, usize, u32), user: u16, readonly: bool, mapping: bool, pinned: bool) -> Result<(), Status> {
    let (sf, soff, shift) = status;
    let mask = GTF_TYPE_MASK | if mapping { GTF_SUB_PAGE } else { 0 };
    let bad = |h: u32| {
        let (flags, domid) = (header_flags(h), header_domid(h));
        (!pinned && (flags & mask != GTF_PERMIT_ACCESS || domid != user)) || (!readonly && flags & GTF_READONLY != 0)
    };
    if bad(mem.read32(frame, off)) {
        return Err(GNTST_GENERAL_ERROR);
    }
    let bits = if readonly { GTF_READING } else { GTF_READING | GTF_WRITING };
    mem.or32(sf, soff, u32::from(bits) << shift);
    if bad(mem.read32(frame, off)) {
        let undo = if pinned { GTF_WRITING } else { GTF_READING | GTF_WRITING };
        mem.and32(sf, soff, !(u32::from(undo) << shift));
        return Err(GNTST_GENERAL_ERROR);
    }
    Ok(())
}
