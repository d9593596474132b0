//! A mapping domain's maptrack: one handle per grant it has mapped (Xen's `grant_mapping`),
//! bounded by its maptrack limit; handles are reused lowest-freed-last, as a free list.

use super::*;

/// One mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The granting domain.
    pub granter: u16,
    /// Its reference.
    pub gref: u32,
    /// The frame mapped.
    pub frame: u64,
    /// Read-only.
    pub readonly: bool,
    /// Where it was mapped (its host half).
    pub host_addr: u64,
    /// It has a host half (a page-table entry at `host_addr`) still.
    pub host: bool,
    /// It has a device half (the frame held for DMA, at bus address `frame << 12`) still.
    pub device: bool,
    /// The granter is gone: unmapping touches no table.
    pub orphan: bool,
}

/// A domain's maptrack.
pub struct Maptrack {
    max_handles: u32,
    entries: Vec<Option<Mapping>>,
    free: Vec<u32>,
}

impl Maptrack {
    /// An empty maptrack for `limits`.
    pub fn new(limits: Limits) -> Self {
        Maptrack { max_handles: limits.max_maptrack_frames.saturating_mul(MAPTRACK_PER_FRAME), entries: Vec::new(), free: Vec::new() }
    }

    /// Most handles.
    pub fn max_handles(&self) -> u32 {
        self.max_handles
    }

    /// Mappings in use.
    pub fn in_use(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    pub(crate) fn has_room(&self) -> bool {
        !self.free.is_empty() || (self.entries.len() as u32) < self.max_handles
    }

    /// Stores `m` under a free handle; `None` at the limit or when the hypervisor's heap
    /// cannot grow the table (never a panic: the mapper gets `GNTST_no_space`).
    pub(crate) fn insert(&mut self, m: Mapping) -> Option<u32> {
        if let Some(h) = self.free.pop() {
            // Free handles are always below the entries' length.
            if let Some(e) = self.entries.get_mut(h as usize) {
                *e = Some(m);
                return Some(h);
            }
        }
        if self.entries.len() as u32 >= self.max_handles {
            return None;
        }
        // The free list must be able to take every handle back without allocating.
        self.entries.try_reserve(1).ok()?;
        self.free.try_reserve(self.entries.len() + 1 - self.free.len()).ok()?;
        self.entries.push(Some(m));
        Some(self.entries.len() as u32 - 1)
    }

    /// The mapping behind `handle`.
    pub fn get(&self, handle: u32) -> Option<Mapping> {
        self.entries.get(handle as usize).copied().flatten()
    }

    /// Records that `handle` lost halves: it keeps `host` and `device` only where both
    /// are still true.
    pub(crate) fn drop_halves(&mut self, handle: u32, host: bool, device: bool) {
        if let Some(Some(m)) = self.entries.get_mut(handle as usize) {
            m.host &= !host;
            m.device &= !device;
        }
    }

    pub(crate) fn remove(&mut self, handle: u32) {
        if let Some(e) = self.entries.get_mut(handle as usize) {
            if e.take().is_some() {
                // Capacity for every handle was reserved when it was first handed out.
                self.free.push(handle);
            }
        }
    }

    /// Handles in use.
    pub fn handles(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().enumerate().filter(|(_, e)| e.is_some()).map(|(h, _)| h as u32)
    }

    /// Marks every mapping of `granter`'s grants an orphan; returns how many.
    pub(crate) fn orphan_granter(&mut self, granter: u16) -> u32 {
        let mut n = 0;
        for m in self.entries.iter_mut().flatten() {
            if m.granter == granter && !m.orphan {
                m.orphan = true;
                n += 1;
            }
        }
        n
    }
}
