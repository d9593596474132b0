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

/// The hypervisor's record of one entry while it is pinned (8 bytes: a full 64-frame table
/// takes 256 KiB of the hypervisor's heap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Active {
    /// Read-only pins (read-only maps and copy sources), at most [`MAX_PINS`].
    read_pins: u8,
    /// Writable pins (writable maps and copy destinations), at most [`MAX_PINS`].
    write_pins: u8,
    /// The domain the entry is pinned for.
    domid: u16,
    /// The frame, as the entry named it at the first pin (v1 frames are 32 bits).
    frame: u32,
}

const _: () = assert!(core::mem::size_of::<Active>() == 8);

/// A domain's grant table (v1).
pub struct GrantTable {
    limits: Limits,
    frames: Vec<u64>,
    active: Vec<Active>,
}

impl GrantTable {
    /// An empty table (no frames yet).
    pub fn new(limits: Limits) -> Self {
        GrantTable { limits, frames: Vec::new(), active: Vec::new() }
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Frames now.
    pub fn nr_frames(&self) -> u32 {
        self.frames.len() as u32
    }

    /// The table frames, in order.
    pub fn frames(&self) -> &[u64] {
        &self.frames
    }

    /// Entries now.
    pub fn nr_entries(&self) -> u32 {
        self.nr_frames() * ENTRIES_PER_FRAME
    }

    /// Read and write pins of `gref` (0, 0 if not pinned or out of range).
    pub fn pins(&self, gref: u32) -> (u32, u32) {
        self.active.get(gref as usize).map_or((0, 0), |a| (u32::from(a.read_pins), u32::from(a.write_pins)))
    }

    /// The domain and frame `gref` is pinned for (meaningful while it has pins).
    pub(crate) fn pinned_for(&self, gref: u32) -> Option<(u16, u64)> {
        self.active.get(gref as usize).map(|a| (a.domid, u64::from(a.frame)))
    }

    /// Entries pinned now.
    pub fn pinned_entries(&self) -> usize {
        self.active.iter().filter(|a| a.read_pins > 0 || a.write_pins > 0).count()
    }

    /// Grows to `nr_frames` frames taken from `alloc` (Xen's `gnttab_grow_table`).
    pub(crate) fn grow(&mut self, nr_frames: u32, alloc: &mut dyn FnMut() -> Option<u64>) -> Result<(), Status> {
        if nr_frames > self.limits.max_grant_frames {
            return Err(GNTST_GENERAL_ERROR);
        }
        while self.nr_frames() < nr_frames {
            // Room first (the heap may be short: an error, never a panic), then the frame.
            self.frames.try_reserve(1).map_err(|_| GNTST_GENERAL_ERROR)?;
            self.active.try_reserve(ENTRIES_PER_FRAME as usize).map_err(|_| GNTST_GENERAL_ERROR)?;
            let f = alloc().ok_or(GNTST_GENERAL_ERROR)?;
            self.frames.push(f);
            self.active.resize(self.nr_entries() as usize, Active::default());
        }
        Ok(())
    }

    fn locate(&self, gref: u32) -> Option<(u64, usize)> {
        let frame = *self.frames.get((gref / ENTRIES_PER_FRAME) as usize)?;
        Some((frame, (gref % ENTRIES_PER_FRAME) as usize))
    }

    /// Pins `gref` for domain `user`, read-only or writable; `mapping` for a map (which
    /// also refuses `GTF_sub_page`), else a copy. Returns the frame.
    pub(crate) fn pin(&mut self, mem: &mut dyn EntryMemory, gref: u32, user: u16, readonly: bool, mapping: bool) -> Result<u64, Status> {
        let (Some(&a), Some((slot_frame, slot))) = (self.active.get(gref as usize), self.locate(gref)) else {
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
            set_status(mem, slot_frame, slot, user, readonly, mapping)?;
        }
        let Some(a) = self.active.get_mut(gref as usize) else { return Err(GNTST_BAD_GNTREF) };
        if !pinned {
            a.domid = user;
            a.frame = mem.read(slot_frame, slot).1;
        }
        if readonly {
            a.read_pins += 1;
        } else {
            a.write_pins += 1;
        }
        Ok(u64::from(a.frame))
    }

    /// Drops a pin taken by [`GrantTable::pin`]; clears `GTF_writing` with the last write
    /// pin and `GTF_reading` with the last pin (Xen's `reduce_status_for_pin` and
    /// `gnttab_clear_flags`). An unpinned entry is left alone.
    pub(crate) fn unpin(&mut self, mem: &mut dyn EntryMemory, gref: u32, readonly: bool) {
        let (Some((f, slot)), Some(a)) = (self.locate(gref), self.active.get_mut(gref as usize)) else { return };
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
        if clear != 0 {
            mem.clear_flags(f, slot, clear);
        }
    }
}

/// Checks the shared entry and sets its in-use flags (Xen's `_set_status_v1`): the entry
/// must be `GTF_permit_access` (for a map, without `GTF_sub_page`) naming `user`, and not
/// `GTF_readonly` for a writable pin. Read, check and exchange are retried when the granter
/// changes the entry in between, at most [`MAX_ENTRY_RETRIES`] times.
fn set_status(mem: &mut dyn EntryMemory, frame: u64, slot: usize, user: u16, readonly: bool, mapping: bool) -> Result<(), Status> {
    let mask = GTF_TYPE_MASK | if mapping { GTF_SUB_PAGE } else { 0 };
    let mut seen = mem.read(frame, slot).0;
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
        let prev = mem.cmpxchg_header(frame, slot, seen, header(new, domid));
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
