//! The bootstrap 4-level page tables: how many frames each level needs to map a region,
//! and the contents of each frame.
//!
//! Frames are laid out as [`crate::layout::Layout::pt_frames`] says: the L4, then the L3s,
//! L2s and L1s, each level in address order. Table `k` of level `L < 4` covers the `k`-th
//! aligned block of `2^(12 + 9L)` bytes that the region touches. Entries hold machine
//! addresses (`mfn << 12`), found through the domain's p2m.

use hypercall_abi::layout::{pte, HYPERVISOR_L4_FIRST_SLOT, PT_ENTRIES};

use crate::build::BuildError;
use crate::layout::Layout;
use crate::PAGE_SHIFT;

/// Paging levels (L4, L3, L2, L1).
pub(crate) const PT_LEVELS: usize = 4;

/// Bits of index per level.
const LEVEL_BITS: u32 = 9;

/// Flags of every L4, L3 and L2 entry (Xen's `L[234]_PROT`: a 64-bit PV kernel runs in
/// ring 3, hence USER).
pub(crate) const UPPER_FLAGS: u64 = pte::PRESENT | pte::RW | pte::USER | pte::ACCESSED | pte::DIRTY;
/// Flags of an L1 entry for a page-table frame: read-only, like every PV page table.
pub(crate) const LEAF_RO_FLAGS: u64 = pte::PRESENT | pte::USER | pte::ACCESSED;
/// Flags of an L1 entry for any other region page.
pub(crate) const LEAF_RW_FLAGS: u64 = LEAF_RO_FLAGS | pte::RW;

/// Largest machine frame number an entry can hold (address bits 12..=51).
const MAX_MFN: u64 = pte::ADDR_MASK >> PAGE_SHIFT;

/// log2 of the bytes one table at `level` (1..=4) maps: 21, 30, 39, 48.
const fn table_shift(level: usize) -> u32 {
    PAGE_SHIFT + LEVEL_BITS * level as u32
}

/// `addr` rounded down to a multiple of `2^shift`.
const fn floor(addr: u128, shift: u32) -> u128 {
    (addr >> shift) << shift
}

/// Xen's `NR(lo, hi, shift)`: aligned `2^shift` blocks touched by `[lo, hi)`.
fn blocks(lo: u64, hi: u64, shift: u32) -> u64 {
    let (lo, hi) = (u128::from(lo), u128::from(hi));
    let size = 1u128 << shift;
    let count = ((hi + size - 1) >> shift) - (lo >> shift);
    // At most 2^(64 - 21): fits.
    count as u64
}

/// Tables needed at each level to map the non-empty `[v_start, v_end)`; index 0 is L1.
pub(crate) fn table_counts(v_start: u64, v_end: u64) -> [u64; PT_LEVELS] {
    [
        blocks(v_start, v_end, table_shift(1)),
        blocks(v_start, v_end, table_shift(2)),
        blocks(v_start, v_end, table_shift(3)),
        1,
    ]
}

/// The entries of one page-table frame, derived from a layout and the domain's p2m.
pub(crate) struct TableBuilder<'a> {
    layout: &'a Layout,
    p2m: &'a [u64],
    hypervisor_l4_slots: &'a [u64; 16],
    counts: [u64; PT_LEVELS],
}

impl<'a> TableBuilder<'a> {
    /// Prepare to fill the tables of `layout`; `p2m` must cover the region.
    pub(crate) fn new(
        layout: &'a Layout,
        p2m: &'a [u64],
        hypervisor_l4_slots: &'a [u64; 16],
    ) -> Self {
        let counts = table_counts(layout.v_start, layout.v_end);
        TableBuilder {
            layout,
            p2m,
            hypervisor_l4_slots,
            counts,
        }
    }

    /// Machine frame of region page `pfn`, checked to fit in an entry.
    fn mfn(&self, pfn: u64) -> Result<u64, BuildError> {
        let mfn = usize::try_from(pfn)
            .ok()
            .and_then(|i| self.p2m.get(i))
            .copied()
            .ok_or(BuildError::P2mTooShort {
                len: self.p2m.len() as u64,
                pfn,
            })?;
        if mfn > MAX_MFN {
            return Err(BuildError::BadMfn { pfn, mfn });
        }
        Ok(mfn)
    }

    /// Index in `pt_frames` of the first table of `level`.
    fn first_index(&self, level: usize) -> u64 {
        self.counts[level..].iter().sum()
    }

    /// Entry pointing at table `ordinal` of `level`.
    fn table_entry(&self, level: usize, ordinal: u64) -> Result<u64, BuildError> {
        let index = self.first_index(level) + ordinal;
        let pfn = self.layout.page_tables.pfn + index;
        Ok((self.mfn(pfn)? << PAGE_SHIFT) | UPPER_FLAGS)
    }

    /// Fill `out` with the contents of `layout.pt_frames()[index]`.
    pub(crate) fn fill(&self, index: usize, out: &mut [u64; PT_ENTRIES]) -> Result<(), BuildError> {
        out.fill(0);
        let Some(&(_, level)) = self.layout.pt_frames.get(index) else {
            return Err(BuildError::LayoutMismatch);
        };
        let level = usize::from(level);
        let ordinal = index as u64 - self.first_index(level);
        let v_start = u128::from(self.layout.v_start);
        let v_end = u128::from(self.layout.v_end);

        if level == 1 {
            let shift = table_shift(1);
            let base = floor(v_start, shift) + (u128::from(ordinal) << shift);
            let first = base.max(v_start);
            let last = (base + (1 << shift)).min(v_end);
            let mut va = first;
            while va < last {
                // Inside the region: fits in u64.
                let pfn = ((va - v_start) >> PAGE_SHIFT) as u64;
                let flags = if self.layout.page_tables.contains_pfn(pfn) {
                    LEAF_RO_FLAGS
                } else {
                    LEAF_RW_FLAGS
                };
                let slot = ((va >> PAGE_SHIFT) as usize) % PT_ENTRIES;
                out[slot] = (self.mfn(pfn)? << PAGE_SHIFT) | flags;
                va += 1 << PAGE_SHIFT;
            }
            return Ok(());
        }

        // Upper level: point at every child table inside this table's block.
        let child = level - 1;
        let child_shift = table_shift(child);
        let child_base = floor(v_start, child_shift);
        let (first, end) = if level == PT_LEVELS {
            (0, self.counts[child - 1])
        } else {
            let shift = table_shift(level);
            let base = floor(v_start, shift) + (u128::from(ordinal) << shift);
            let first = (base.max(child_base) - child_base) >> child_shift;
            let end = ((base + (1 << shift) - child_base) >> child_shift)
                .min(u128::from(self.counts[child - 1]));
            // Both bounded by the child count, a u64.
            (first as u64, end as u64)
        };
        for child_ordinal in first..end {
            let va = child_base + (u128::from(child_ordinal) << child_shift);
            let slot = ((va >> child_shift) as usize) % PT_ENTRIES;
            out[slot] = self.table_entry(child, child_ordinal)?;
        }
        if level == PT_LEVELS {
            for (offset, &entry) in self.hypervisor_l4_slots.iter().enumerate() {
                out[HYPERVISOR_L4_FIRST_SLOT + offset] = entry;
            }
            // The p2m's own mapping hangs from the same L4 (its slots are not the
            // region's: the layout checked).
            if let Some(m) = &self.layout.p2m_mapping {
                self.fill_p2m_upper(m, PT_LEVELS, 0, out)?;
            }
        }
        Ok(())
    }

    /// Fill `out` with the contents of the p2m mapping's table `index` (its `pt_frames`).
    pub(crate) fn fill_p2m(&self, index: usize, out: &mut [u64; PT_ENTRIES]) -> Result<(), BuildError> {
        out.fill(0);
        let m = self.layout.p2m_mapping.as_ref().ok_or(BuildError::LayoutMismatch)?;
        let &(_, level) = m.pt_frames.get(index).ok_or(BuildError::LayoutMismatch)?;
        let level = usize::from(level);
        let ordinal = index as u64 - m.counts[level..].iter().sum::<u64>();
        if level > 1 {
            return self.fill_p2m_upper(m, level, ordinal, out);
        }
        let shift = table_shift(1);
        let (start, end) = (u128::from(m.va), u128::from(m.end()));
        let base = floor(start, shift) + (u128::from(ordinal) << shift);
        let mut va = base.max(start);
        while va < (base + (1 << shift)).min(end) {
            // Inside the mapping: fits in u64.
            let pfn = m.first_pfn + ((va - start) >> PAGE_SHIFT) as u64;
            out[((va >> PAGE_SHIFT) as usize) % PT_ENTRIES] = (self.mfn(pfn)? << PAGE_SHIFT) | LEAF_RW_FLAGS;
            va += 1 << PAGE_SHIFT;
        }
        Ok(())
    }

    /// The entries of level-`level` table `ordinal` of the p2m mapping (or of the region's
    /// L4, `level` 4) pointing at the mapping's tables one level down.
    fn fill_p2m_upper(&self, m: &crate::layout::P2mMapping, level: usize, ordinal: u64, out: &mut [u64; PT_ENTRIES]) -> Result<(), BuildError> {
        let child = level - 1;
        let child_shift = table_shift(child);
        let (start, end) = (u128::from(m.va), u128::from(m.end()));
        let child_base = floor(start, child_shift);
        let count = m.counts[child - 1];
        let (first, last) = if level == PT_LEVELS {
            (0, count)
        } else {
            let shift = table_shift(level);
            let base = floor(start, shift) + (u128::from(ordinal) << shift);
            let first = (base.max(child_base) - child_base) >> child_shift;
            let last = ((base + (1 << shift)).min(end + (1 << child_shift) - 1) - child_base) >> child_shift;
            (first as u64, (last as u64).min(count))
        };
        // Child tables: the ones of level `child`, after the levels above it.
        let first_of_child: u64 = m.counts[child..].iter().sum();
        for k in first..last {
            let va = child_base + (u128::from(k) << child_shift);
            let &(pfn, _) = m.pt_frames.get((first_of_child + k) as usize).ok_or(BuildError::LayoutMismatch)?;
            out[((va >> child_shift) as usize) % PT_ENTRIES] = (self.mfn(pfn)? << PAGE_SHIFT) | UPPER_FLAGS;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_xen_nr() {
        // 8 MiB at 4 MiB: 4 L1s (2 MiB each), 1 L2, 1 L3, 1 L4.
        assert_eq!(table_counts(0x40_0000, 0xc0_0000), [4, 1, 1, 1]);
        // Crossing a 1 GiB boundary: two L2s.
        assert_eq!(table_counts(0x3fe0_0000, 0x4020_0000), [2, 2, 1, 1]);
        // Crossing a 512 GiB boundary: two L3s too.
        assert_eq!(table_counts(0x7f_ffe0_0000, 0x80_0020_0000), [2, 2, 2, 1]);
        // Top of the address space.
        assert_eq!(
            table_counts(0xffff_ffff_ffc0_0000, 0xffff_ffff_ffff_f000),
            [2, 1, 1, 1]
        );
    }
}
