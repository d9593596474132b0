//! Grant tables (v1 and v2): the rules that decide whether a map, unmap or copy is allowed, as
//! pure logic the microkernel calls (Xen's `xen/common/grant_table.c`).
//!
//! The split of state follows Xen:
//! - the **shared table** (v1 entries `{flags, domid, frame}`) lives in frames the granter
//!   writes; the hypervisor reads it and flips `GTF_reading`/`GTF_writing` with a bounded
//!   compare-and-exchange loop over [`EntryMemory`], since the granter may change the entry
//!   at any moment;
//! - the **active table** ([`GrantTable`]) is hypervisor-private: per reference, how many
//!   read and write pins it has, for which domain and which frame (fixed at the first pin);
//! - the **maptrack** ([`Maptrack`]) is per mapping domain: one handle per mapping.
//!
//! What this crate does not do is touch page tables or frame references: the machine
//! installs the host mapping (taking the frame references the page-type rules ask for) and
//! undoes a map it could not complete with [`Grants::map_abort`]. A mapping's frame
//! references belong to its page-table entry, so the frame lives until the last entry that
//! maps it goes, whatever happens to the grant state.
//!
//! Domain death is handled on both sides ([`Grants::remove_domain`]): the dead domain's own
//! mappings release their pins in the granters' tables (clearing the in-use flags), and
//! other domains' mappings of its grants become orphans that unmap without touching a table
//! that no longer exists.
#![no_std]
#![forbid(unsafe_code)]
// Every index and reference here comes from a guest: no panics on any value.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

extern crate alloc;

use alloc::string::String;

mod copy;
mod maptrack;
mod table;

#[cfg(test)]
mod tests;

pub use copy::{CopyBatch, CopyFrames, CopyGrants, CopySide};
pub use maptrack::{Mapping, Maptrack};
pub use table::{GrantTable, Limits, Pinned, VersionError};

use alloc::vec::Vec;
use hypercall_abi::grant_table::*;

/// Xen's default `max_grant_frames` (`gnttab_max_frames`): 64 frames, 32768 v1 entries.
pub const DEFAULT_MAX_GRANT_FRAMES: u32 = 64;
/// Default `max_maptrack_frames`: 64 frames, 16384 mapping handles. Deviation: Xen's
/// default (`gnttab_max_maptrack_frames`) is 1024, but its handles live in a large xenheap;
/// here they come from the microkernel's 8 MiB heap, and 1024 frames' worth (262144 handles
/// of 24 bytes, about 6 MiB) would let one domain that maps its own grants over and over
/// starve every other allocation. 16384 handles (384 KiB at most) still cover hundreds of
/// front-end rings' worth of mapped pages; dom0 may give a domain more at creation.
pub const DEFAULT_MAX_MAPTRACK_FRAMES: u32 = 64;
/// Most grant frames a domain may be configured with: bounds the hypervisor memory a
/// domain's active table can take (512 entries of 8 bytes per frame: 1 MiB at most).
pub const MAX_GRANT_FRAMES_LIMIT: u32 = 256;
/// Most maptrack frames a domain may be configured with (Xen's default, about 6 MiB of
/// handles at most).
pub const MAX_MAPTRACK_FRAMES_LIMIT: u32 = 1024;
/// Mapping handles per maptrack frame (Xen's `MAPTRACK_PER_PAGE`: 16-byte `grant_mapping`).
pub const MAPTRACK_PER_FRAME: u32 = 4096 / 16;
/// v1 entries per grant frame.
pub const ENTRIES_PER_FRAME: u32 = GRANT_ENTRIES_V1_PER_FRAME;
/// Retries of the compare-and-exchange on a shared entry before giving up with
/// `GNTST_general_error` (Xen: "Shared grant entry is unstable", after 4 retries): a granter
/// that keeps rewriting its entry cannot livelock the hypervisor.
pub const MAX_ENTRY_RETRIES: u32 = 4;
/// Most pins of one kind (read or write) an active entry may hold (Xen's 8-bit `GNTPIN_*`
/// counters, refused once the top bit would be set).
pub const MAX_PINS: u32 = 0x7f;

/// A `GNTST_*` status code (negative).
pub type Status = i16;

/// The granter's shared entries (and, under v2, its status words), which it may change at
/// any moment. The machine implements it over the table frames (atomics through the direct
/// map); tests over a fake that can change an entry between a read and the exchange.
/// Offsets are bytes inside the 4 KiB frame, 4-aligned (8-aligned for [`EntryMemory::read64`]).
pub trait EntryMemory {
    /// Reads the 32-bit word at `off` of table frame `frame` once.
    fn read32(&mut self, frame: u64, off: usize) -> u32;
    /// Reads the 64-bit word at `off` once.
    fn read64(&mut self, frame: u64, off: usize) -> u64;
    /// Atomically replaces the word at `off` with `new` if it is `old`; returns the word
    /// found (equal to `old` on success).
    fn cmpxchg32(&mut self, frame: u64, off: usize, old: u32, new: u32) -> u32;
    /// Atomically ANDs `mask` into the word at `off`.
    fn and32(&mut self, frame: u64, off: usize, mask: u32);
    /// Atomically ORs `bits` into the word at `off`.
    fn or32(&mut self, frame: u64, off: usize, bits: u32);
    /// Writes the word at `off` (the hypervisor rewriting a table it changes the layout of).
    fn write32(&mut self, frame: u64, off: usize, v: u32);
}

/// The flags half of an entry header.
pub const fn header_flags(h: u32) -> u16 {
    h as u16
}

/// The domid half of an entry header.
pub const fn header_domid(h: u32) -> u16 {
    (h >> 16) as u16
}

/// An entry header from its halves.
pub const fn header(flags: u16, domid: u16) -> u32 {
    flags as u32 | (domid as u32) << 16
}

/// A `GNTTABOP_map_grant_ref` request, as the machine decoded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRequest {
    /// `GNTMAP_*`.
    pub flags: u32,
    /// The granter's reference.
    pub gref: u32,
    /// The granting domain.
    pub granter: u16,
    /// Where the host mapping goes.
    pub host_addr: u64,
}

/// A map the grant rules allowed: the machine now installs the host mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapGrant {
    /// Maptrack handle (returned to the guest).
    pub handle: u32,
    /// The granted frame (fixed at the entry's first pin).
    pub frame: u64,
    /// Whether the mapping is read-only.
    pub readonly: bool,
}

/// Every domain's grant state.
#[derive(Default)]
pub struct Grants {
    doms: Vec<DomainGrants>,
}

/// One domain's grant state: its table (as granter) and its maptrack (as mapper).
struct DomainGrants {
    id: u16,
    table: GrantTable,
    maptrack: Maptrack,
}

/// What [`Grants::audit`] counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantAudit {
    /// Mappings in every maptrack (orphans included).
    pub mappings: u64,
    /// Of those, orphans (their granter is gone).
    pub orphans: u64,
    /// Grant entries pinned.
    pub pinned: u64,
}

/// The halves an unmap request removes from a mapping ([`Grants::unmap_target`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unmap {
    /// The mapping as it is.
    pub mapping: Mapping,
    /// Its host half goes (its page-table entry is cleared by the machine).
    pub host: bool,
    /// Its device half goes (the machine lets go of the frame).
    pub device: bool,
}

/// What [`Grants::remove_domain`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// The dead domain's table frames (the machine gives them back with the domain's memory).
    pub table_frames: Vec<u64>,
    /// Its own mappings whose pins went back to their granters.
    pub mappings_released: u32,
    /// The frames its device halves held (frame, writable), for the machine to let go.
    pub device_frames: Vec<(u64, bool)>,
    /// Other domains' mappings of its grants that became orphans.
    pub mappings_orphaned: u32,
}

impl Grants {
    /// No domains.
    pub const fn new() -> Self {
        Grants { doms: Vec::new() }
    }

    fn pos(&self, id: u16) -> Option<usize> {
        self.doms.iter().position(|d| d.id == id)
    }

    fn dom(&self, id: u16) -> Option<&DomainGrants> {
        self.doms.iter().find(|d| d.id == id)
    }

    fn dom_mut(&mut self, id: u16) -> Option<&mut DomainGrants> {
        self.doms.iter_mut().find(|d| d.id == id)
    }

    /// Adds domain `id` with `limits` (its table starts with no frames).
    pub fn add_domain(&mut self, id: u16, limits: Limits) {
        if self.pos(id).is_none() {
            self.doms.push(DomainGrants { id, table: GrantTable::new(limits), maptrack: Maptrack::new(limits) });
        }
    }

    /// Whether domain `id` has grant state.
    pub fn has_domain(&self, id: u16) -> bool {
        self.pos(id).is_some()
    }

    /// Domain `id`'s table.
    pub fn table(&self, id: u16) -> Option<&GrantTable> {
        self.dom(id).map(|d| &d.table)
    }

    /// Domain `id`'s maptrack.
    pub fn maptrack(&self, id: u16) -> Option<&Maptrack> {
        self.dom(id).map(|d| &d.maptrack)
    }

    /// The mapper's maptrack and the granter's table, which may belong to the same domain.
    fn pair(&mut self, mapper: u16, granter: u16) -> Option<(&mut Maptrack, &mut GrantTable)> {
        let (m, g) = (self.pos(mapper)?, self.pos(granter)?);
        if m == g {
            let d = self.doms.get_mut(m)?;
            return Some((&mut d.maptrack, &mut d.table));
        }
        let [a, b] = self.doms.get_disjoint_mut([m, g]).ok()?;
        Some((&mut a.maptrack, &mut b.table))
    }

    /// `GNTTABOP_setup_table` for domain `id`: grows its table to at least `nr_frames`
    /// frames, taking new frames from `alloc`; returns every table frame. Over the limit:
    /// `GNTST_general_error` (as Xen, nothing grown); `alloc` out of frames: the frames
    /// already added stay, `GNTST_general_error`.
    pub fn setup_table(&mut self, id: u16, nr_frames: u32, alloc: &mut dyn FnMut() -> Option<u64>) -> Result<&[u64], Status> {
        let d = self.dom_mut(id).ok_or(GNTST_BAD_DOMAIN)?;
        d.table.grow(nr_frames, alloc)?;
        Ok(d.table.frames())
    }

    /// `GNTTABOP_set_version` for domain `id` (see [`GrantTable::set_version`]).
    pub fn set_version(
        &mut self,
        mem: &mut dyn EntryMemory,
        id: u16,
        version: u32,
        alloc: &mut dyn FnMut() -> Option<u64>,
        releasable: &mut dyn FnMut(u64) -> bool,
        release: &mut dyn FnMut(u64),
    ) -> Result<(), VersionError> {
        let d = self.dom_mut(id).ok_or(VersionError::Invalid)?;
        d.table.set_version(mem, version, alloc, releasable, release)
    }

    /// `GNTTABOP_get_status_frames` of domain `id`: its first `n` status frames.
    pub fn get_status_frames(&self, id: u16, n: u32) -> Result<&[u64], Status> {
        self.table(id).ok_or(GNTST_BAD_DOMAIN)?.get_status_frames(n)
    }

    /// `GNTTABOP_query_size`: (frames now, most frames).
    pub fn query_size(&self, id: u16) -> Result<(u32, u32), Status> {
        let t = self.table(id).ok_or(GNTST_BAD_DOMAIN)?;
        Ok((t.nr_frames(), t.limits().max_grant_frames))
    }

    /// `GNTTABOP_map_grant_ref`, the grant half (Xen's `map_grant_ref` up to the host
    /// mapping), in Xen's order of checks: neither `GNTMAP_host_map` nor `device_map`:
    /// `GNTST_bad_gntref`; `GNTMAP_contains_pte` (not supported: `GNTST_general_error`);
    /// unknown granter: `GNTST_bad_domain`; no handle left: `GNTST_no_space`; reference past
    /// the table: `GNTST_bad_gntref`; an entry not granting access to the mapper, or
    /// read-only mapped writable, or unstable, or pinned for another domain or too often:
    /// `GNTST_general_error`. On success the entry is pinned (`GTF_reading`, and
    /// `GTF_writing` for a writable map, set in the shared entry) and a handle allocated;
    /// the machine then installs the host mapping, or calls [`Grants::map_abort`].
    pub fn map_acquire(&mut self, mem: &mut dyn EntryMemory, mapper: u16, req: MapRequest) -> Result<MapGrant, Status> {
        if req.flags & (GNTMAP_HOST_MAP | GNTMAP_DEVICE_MAP) == 0 {
            return Err(GNTST_BAD_GNTREF);
        }
        if req.flags & GNTMAP_CONTAINS_PTE != 0 {
            return Err(GNTST_GENERAL_ERROR);
        }
        // An unknown granter (or mapper) is GNTST_bad_domain.
        let (maptrack, table) = self.pair(mapper, req.granter).ok_or(GNTST_BAD_DOMAIN)?;
        if !maptrack.has_room() {
            return Err(GNTST_NO_SPACE);
        }
        let readonly = req.flags & GNTMAP_READONLY != 0;
        let (host, device) = (req.flags & GNTMAP_HOST_MAP != 0, req.flags & GNTMAP_DEVICE_MAP != 0);
        // One pin per half (Xen's host and device pin counts), the entry checked once.
        let frame = table.pin(mem, req.gref, mapper, readonly, true)?.frame;
        if host && device {
            if let Err(st) = table.pin(mem, req.gref, mapper, readonly, true) {
                table.unpin(mem, req.gref, readonly);
                return Err(st);
            }
        }
        let m = Mapping { granter: req.granter, gref: req.gref, frame, readonly, host_addr: if host { req.host_addr } else { 0 }, host, device, orphan: false };
        match maptrack.insert(m) {
            Some(handle) => Ok(MapGrant { handle, frame, readonly }),
            None => {
                for _ in 0..u8::from(host) + u8::from(device) {
                    table.unpin(mem, req.gref, readonly);
                }
                Err(GNTST_NO_SPACE)
            }
        }
    }

    /// Undoes a [`Grants::map_acquire`] whose host mapping (or device claim) could not be
    /// made.
    pub fn map_abort(&mut self, mem: &mut dyn EntryMemory, mapper: u16, handle: u32) {
        let _ = self.unmap_release(mem, mapper, handle);
    }

    /// The mapping behind `handle` of `mapper` (`GNTST_bad_handle` if none), for the machine
    /// to check and remove the host mapping before [`Grants::unmap_release`].
    pub fn mapping(&self, mapper: u16, handle: u32) -> Result<Mapping, Status> {
        self.maptrack(mapper).ok_or(GNTST_BAD_HANDLE)?.get(handle).ok_or(GNTST_BAD_HANDLE)
    }

    /// What `GNTTABOP_unmap_grant_ref {host_addr, dev_bus_addr, handle}` (or
    /// `unmap_and_replace`) of `mapper` removes, checked before anything changes (Xen's
    /// `unmap_common`): the handle must be in use (`GNTST_bad_handle`); for a mapping with
    /// a device half, a non-zero `dev_bus_addr` must be the frame's machine address
    /// (`GNTST_bad_dev_addr`) and removes that half; a non-zero `host_addr` removes the
    /// host half and must be the address it was made at (`GNTST_general_error`). Deviation:
    /// a request that removes no half is `GNTST_general_error` (Xen answers `GNTST_okay`
    /// and does nothing). The machine then checks that the entry at `host_addr` still maps
    /// the frame, clears it and calls [`Grants::unmap_halves`].
    pub fn unmap_target(&self, mapper: u16, handle: u32, host_addr: u64, dev_bus_addr: u64) -> Result<Unmap, Status> {
        let m = self.mapping(mapper, handle)?;
        if dev_bus_addr != 0 && m.device && dev_bus_addr != m.frame << 12 {
            return Err(GNTST_BAD_DEV_ADDR);
        }
        let host = host_addr != 0 && m.host;
        if host && host_addr != m.host_addr {
            return Err(GNTST_GENERAL_ERROR);
        }
        let device = dev_bus_addr != 0 && m.device;
        if !host && !device {
            return Err(GNTST_GENERAL_ERROR);
        }
        Ok(Unmap { mapping: m, host, device })
    }

    /// Removes the halves of an [`Unmap`]: one pin each in the granter's table (clearing
    /// `GTF_writing` with the last write pin and `GTF_reading` with the last pin, Xen's
    /// `unmap_common_complete`; an orphan touches no table), and the handle once no half
    /// is left.
    pub fn unmap_halves(&mut self, mem: &mut dyn EntryMemory, mapper: u16, handle: u32, host: bool, device: bool) -> Result<Mapping, Status> {
        let m = self.dom(mapper).and_then(|d| d.maptrack.get(handle)).ok_or(GNTST_BAD_HANDLE)?;
        let (host, device) = (host && m.host, device && m.device);
        if !m.orphan {
            if let Some(g) = self.dom_mut(m.granter) {
                for _ in 0..u8::from(host) + u8::from(device) {
                    g.table.unpin(mem, m.gref, m.readonly);
                }
            }
        }
        if let Some(d) = self.dom_mut(mapper) {
            d.maptrack.drop_halves(handle, host, device);
            if (m.host && !host) || (m.device && !device) {
                return Ok(m);
            }
            d.maptrack.remove(handle);
        }
        Ok(m)
    }

    /// Removes every half of `handle` (both, as `GNTTABOP_unmap_grant_ref` naming both, or a
    /// dying mapper). `GNTST_bad_handle` for a handle not in use (double unmap included).
    pub fn unmap_release(&mut self, mem: &mut dyn EntryMemory, mapper: u16, handle: u32) -> Result<Mapping, Status> {
        self.unmap_halves(mem, mapper, handle, true, true)
    }

    /// `GNTTABOP_copy`, one side that is a grant reference: checks and pins `gref` of
    /// `granter` for `caller` (read for a source, write for a destination), as Xen's
    /// `acquire_grant_for_copy`; returns the frame. Unknown granter: `GNTST_bad_domain`;
    /// the rest as [`Grants::map_acquire`]. Release with [`Grants::copy_release`].
    pub fn copy_acquire(&mut self, mem: &mut dyn EntryMemory, caller: u16, granter: u16, gref: u32, write: bool) -> Result<Pinned, Status> {
        let d = self.dom_mut(granter).ok_or(GNTST_BAD_DOMAIN)?;
        d.table.pin(mem, gref, caller, !write, false)
    }

    /// Drops the pin of a [`Grants::copy_acquire`].
    pub fn copy_release(&mut self, mem: &mut dyn EntryMemory, granter: u16, gref: u32, write: bool) {
        if let Some(d) = self.dom_mut(granter) {
            d.table.unpin(mem, gref, !write);
        }
    }

    /// Checks the grant state between hypercalls (no copy holds a pin then): every pin of
    /// every entry is one mapping of a live domain's maptrack, read-only pins the read-only
    /// ones and writable pins the writable ones, all for the domain and frame the entry is
    /// pinned for; a mapping that is not an orphan names a granter that exists.
    pub fn audit(&self) -> Result<GrantAudit, String> {
        use alloc::collections::BTreeMap;
        use alloc::format;
        let mut a = GrantAudit::default();
        // (granter, gref) -> (read-only, writable, mapper, frame)
        let mut held: BTreeMap<(u16, u32), (u32, u32, u16, u64)> = BTreeMap::new();
        for d in &self.doms {
            for h in d.maptrack.handles() {
                let Some(m) = d.maptrack.get(h) else { continue };
                a.mappings += 1;
                if m.orphan {
                    a.orphans += 1;
                    continue;
                }
                if self.pos(m.granter).is_none() {
                    return Err(format!("d{}'s handle {h} maps d{}'s grant {}, but d{} is gone and it is no orphan", d.id, m.granter, m.gref, m.granter));
                }
                let e = held.entry((m.granter, m.gref)).or_insert((0, 0, d.id, m.frame));
                if (e.2, e.3) != (d.id, m.frame) {
                    return Err(format!("grant {} of d{} is mapped by d{} (frame {:#x}) and by d{} (frame {:#x})", m.gref, m.granter, e.2, e.3, d.id, m.frame));
                }
                if !m.host && !m.device {
                    return Err(format!("d{}'s handle {h} has neither half", d.id));
                }
                // One pin per half.
                let halves = u32::from(m.host) + u32::from(m.device);
                if m.readonly {
                    e.0 += halves;
                } else {
                    e.1 += halves;
                }
            }
        }
        for d in &self.doms {
            for gref in 0..d.table.nr_entries() {
                let (rp, wp) = d.table.pins(gref);
                let maps = held.remove(&(d.id, gref));
                if rp == 0 && wp == 0 && maps.is_none() {
                    continue;
                }
                a.pinned += u64::from(rp + wp > 0);
                let (ro, rw, mapper, frame) = maps.unwrap_or((0, 0, 0, 0));
                if (rp, wp) != (ro, rw) {
                    return Err(format!("d{}'s grant {gref} has {rp} read and {wp} write pins, but {ro} read-only and {rw} writable mappings", d.id));
                }
                if d.table.pinned_for(gref) != Some((mapper, frame)) {
                    return Err(format!("d{}'s grant {gref} is pinned for {:?}, mapped by d{mapper} at frame {frame:#x}", d.id, d.table.pinned_for(gref)));
                }
            }
        }
        if let Some(((granter, gref), _)) = held.into_iter().next() {
            return Err(format!("a mapping of d{granter}'s grant {gref}, past its table"));
        }
        Ok(a)
    }

    /// Forgets domain `id` (it is being destroyed), on both sides: each of its own
    /// mappings drops its pin in its granter's table (the granter sees the in-use flags
    /// clear; the host mappings go with the domain's page tables), and every other domain's
    /// mapping of its grants becomes an orphan, unmapped later without touching a table.
    /// Returns its table frames for the machine to give back.
    pub fn remove_domain(&mut self, mem: &mut dyn EntryMemory, id: u16) -> Removed {
        let mut r = Removed::default();
        let Some(handles) = self.dom(id).map(|d| d.maptrack.handles().collect::<Vec<u32>>()) else { return r };
        for h in handles {
            if let Ok(m) = self.unmap_release(mem, id, h) {
                r.mappings_released += 1;
                if m.device {
                    r.device_frames.push((m.frame, !m.readonly));
                }
            }
        }
        let Some(i) = self.pos(id) else { return r };
        let d = self.doms.swap_remove(i);
        for other in self.doms.iter_mut() {
            r.mappings_orphaned += other.maptrack.orphan_granter(id);
        }
        r.table_frames = d.table.frames().to_vec();
        r
    }
}
