//! The guest's pseudo-physical view: the initial region's layout, found from start_info, and
//! the p2m list (pfn → mfn) the domain builder left in it.
//!
//! Xen's start-of-day rule (`xen.h`, and docs/porting.md §3.2): the region starts at
//! VIRT_BASE and is a 1:1 image of the first pfns (`va = VIRT_BASE + pfn * 4096`). In order:
//! kernel, modules, p2m, start_info, xenstore page, console page, the bootstrap page tables
//! (`nr_pt_frames` frames from `pt_base`: L4 first), one boot-stack page, then padding to a
//! 4 MiB boundary with at least 512 KiB after the stack. Everything below the end of the
//! boot stack is in use; the padding is mapped (writable) and free; pfns from the region's
//! end to `nr_pages` are free and mapped nowhere.
#![forbid(unsafe_code)]

use core::ops::Range;

use hypercall_abi::types::{Mfn, Pfn, INVALID_MFN};

use super::{PAGE_SHIFT, PAGE_SIZE};

/// The region ends on a multiple of this.
const REGION_ALIGN: u64 = 4 << 20;
/// Least padding after the boot stack.
const MIN_PADDING: u64 = 512 << 10;

/// Why start_info's numbers do not describe a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// `pt_base` is not a page-aligned address inside the region above VIRT_BASE.
    BadPtBase,
    /// There are no page-table frames.
    NoTables,
    /// The region needs more pages than the domain has.
    RegionTooLarge {
        /// Pages the region spans.
        region_pages: u64,
        /// Pages the domain has.
        nr_pages: u64,
    },
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LayoutError::BadPtBase => write!(f, "pt_base is not a page inside the region"),
            LayoutError::NoTables => write!(f, "nr_pt_frames is 0"),
            LayoutError::RegionTooLarge {
                region_pages,
                nr_pages,
            } => write!(
                f,
                "region of {region_pages} pages exceeds nr_pages {nr_pages}"
            ),
        }
    }
}

/// Where things are in the initial region and which pfns are free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysLayout {
    /// VIRT_BASE: the virtual address of pfn 0.
    pub virt_base: u64,
    /// All of the domain's pages (start_info `nr_pages`).
    pub nr_pages: u64,
    /// Pfn of the bootstrap L4 (`pt_base`).
    pub pt_pfn: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// Pfn of the boot stack page (just after the tables).
    pub stack_pfn: u64,
    /// First pfn past the initial region (the region ends on a 4 MiB boundary).
    pub region_end_pfn: u64,
}

impl PhysLayout {
    /// The layout from start_info's `pt_base` (a virtual address), `nr_pt_frames` and
    /// `nr_pages`, for a region starting at `virt_base`.
    pub fn new(
        virt_base: u64,
        pt_base: u64,
        nr_pt_frames: u64,
        nr_pages: u64,
    ) -> Result<PhysLayout, LayoutError> {
        if nr_pt_frames == 0 {
            return Err(LayoutError::NoTables);
        }
        if pt_base < virt_base || !pt_base.is_multiple_of(PAGE_SIZE) {
            return Err(LayoutError::BadPtBase);
        }
        let pt_pfn = (pt_base - virt_base) >> PAGE_SHIFT;
        let stack_pfn = pt_pfn
            .checked_add(nr_pt_frames)
            .ok_or(LayoutError::BadPtBase)?;
        let stack_end = stack_pfn
            .checked_add(1)
            .and_then(|p| p.checked_mul(PAGE_SIZE))
            .and_then(|b| b.checked_add(virt_base))
            .ok_or(LayoutError::BadPtBase)?;
        // The same rule as the builder: round the stack's end up to 4 MiB (as an address),
        // and add another 4 MiB when that leaves less than 512 KiB.
        let mut v_end = stack_end
            .checked_add(REGION_ALIGN - 1)
            .ok_or(LayoutError::BadPtBase)?
            & !(REGION_ALIGN - 1);
        if v_end - stack_end < MIN_PADDING {
            v_end = v_end
                .checked_add(REGION_ALIGN)
                .ok_or(LayoutError::BadPtBase)?;
        }
        let region_end_pfn = (v_end - virt_base) >> PAGE_SHIFT;
        if region_end_pfn > nr_pages {
            return Err(LayoutError::RegionTooLarge {
                region_pages: region_end_pfn,
                nr_pages,
            });
        }
        Ok(PhysLayout {
            virt_base,
            nr_pages,
            pt_pfn,
            nr_pt_frames,
            stack_pfn,
            region_end_pfn,
        })
    }

    /// Pfns in use at start of day: everything up to and including the boot stack.
    pub fn used(&self) -> Range<u64> {
        0..self.stack_pfn + 1
    }

    /// The bootstrap page tables' pfns (the L4 first).
    pub fn page_tables(&self) -> Range<u64> {
        self.pt_pfn..self.pt_pfn + self.nr_pt_frames
    }

    /// Free pfns that are mapped (writable) in the initial region: the padding.
    pub fn mapped_free(&self) -> Range<u64> {
        self.stack_pfn + 1..self.region_end_pfn
    }

    /// Free pfns mapped nowhere: from the region's end to `nr_pages`.
    pub fn unmapped_free(&self) -> Range<u64> {
        self.region_end_pfn..self.nr_pages
    }

    /// Virtual address of `pfn` in the initial region, if it lies there.
    pub fn va_of(&self, pfn: Pfn) -> Option<u64> {
        (pfn.0 < self.region_end_pfn).then(|| self.virt_base + (pfn.0 << PAGE_SHIFT))
    }

    /// Pfn of a virtual address in the initial region.
    pub fn pfn_of(&self, va: u64) -> Option<Pfn> {
        let offset = va.checked_sub(self.virt_base)?;
        let pfn = offset >> PAGE_SHIFT;
        (pfn < self.region_end_pfn).then_some(Pfn(pfn))
    }

    /// Virtual address of the region's end.
    pub fn region_end(&self) -> u64 {
        self.virt_base + (self.region_end_pfn << PAGE_SHIFT)
    }
}

/// The p2m list: entry `pfn` is the machine frame behind `pfn`, or [`INVALID_MFN`] when the
/// pfn has no memory (given back with `decrease_reservation`).
pub struct P2m<'a> {
    entries: &'a mut [u64],
}

impl<'a> P2m<'a> {
    /// The p2m over `entries` (start_info's `mfn_list`, `nr_pages` long).
    pub fn new(entries: &'a mut [u64]) -> Self {
        P2m { entries }
    }

    /// Number of pfns.
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The mfn of `pfn`, `None` when out of range or invalid.
    pub fn mfn(&self, pfn: Pfn) -> Option<Mfn> {
        let raw = *self.entries.get(usize::try_from(pfn.0).ok()?)?;
        (raw != INVALID_MFN).then_some(Mfn(raw))
    }

    /// Sets `pfn`'s entry (`Mfn::INVALID` marks it without memory); false when out of range.
    pub fn set(&mut self, pfn: Pfn, mfn: Mfn) -> bool {
        match usize::try_from(pfn.0)
            .ok()
            .and_then(|i| self.entries.get_mut(i))
        {
            Some(slot) => {
                *slot = mfn.0;
                true
            }
            None => false,
        }
    }

    /// The largest valid mfn in the list (0 if none).
    pub fn max_mfn(&self) -> Mfn {
        Mfn(self
            .entries
            .iter()
            .copied()
            .filter(|&m| m != INVALID_MFN)
            .max()
            .unwrap_or(0))
    }

    /// Whether `mfn` is one of ours (a linear search; the M2P answers this in O(1)).
    pub fn owns(&self, mfn: Mfn) -> bool {
        mfn.0 != INVALID_MFN && self.entries.contains(&mfn.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0xffff_ffff_8000_0000;

    #[test]
    fn region_rounds_to_4m_with_512k_padding() {
        // Tables at pfn 100..105, stack at 105: the region ends at 4 MiB (pfn 1024).
        let l = PhysLayout::new(BASE, BASE + 100 * 4096, 5, 16384).unwrap();
        assert_eq!(l.pt_pfn, 100);
        assert_eq!(l.stack_pfn, 105);
        assert_eq!(l.used(), 0..106);
        assert_eq!(l.page_tables(), 100..105);
        assert_eq!(l.mapped_free(), 106..1024);
        assert_eq!(l.unmapped_free(), 1024..16384);
        assert_eq!(l.region_end(), BASE + (4 << 20));
        // Stack ending less than 512 KiB before a boundary: another 4 MiB.
        let l = PhysLayout::new(BASE, BASE + 1000 * 4096, 5, 16384).unwrap();
        assert_eq!(l.stack_pfn, 1005);
        assert_eq!(l.region_end_pfn, 2048);
        // Exactly 512 KiB of padding is enough.
        let stack_pfn = 1024 - 128 - 1;
        let l = PhysLayout::new(BASE, BASE + (stack_pfn - 3) * 4096, 3, 16384).unwrap();
        assert_eq!(l.stack_pfn, stack_pfn);
        assert_eq!(l.region_end_pfn, 1024);
    }

    #[test]
    fn a_base_that_is_not_4m_aligned_rounds_the_address() {
        // hello-low style base, but 1 MiB off a 4 MiB boundary: the end is an aligned address.
        let base = 0x50_0000;
        let l = PhysLayout::new(base, base + 10 * 4096, 4, 4096).unwrap();
        assert_eq!(l.region_end(), 0x80_0000);
        assert_eq!(l.region_end_pfn, (0x80_0000 - base) >> 12);
        assert_eq!(l.va_of(Pfn(1)), Some(base + 4096));
        assert_eq!(l.pfn_of(base + 8191), Some(Pfn(1)));
        assert_eq!(l.pfn_of(base - 1), None);
        assert_eq!(l.pfn_of(0x80_0000), None);
        assert_eq!(l.va_of(Pfn(l.region_end_pfn)), None);
    }

    #[test]
    fn hostile_numbers_are_refused() {
        assert_eq!(
            PhysLayout::new(BASE, BASE + 4096, 0, 100),
            Err(LayoutError::NoTables)
        );
        assert_eq!(
            PhysLayout::new(BASE, BASE - 4096, 1, 100),
            Err(LayoutError::BadPtBase)
        );
        assert_eq!(
            PhysLayout::new(BASE, BASE + 5, 1, 100),
            Err(LayoutError::BadPtBase)
        );
        assert!(matches!(
            PhysLayout::new(BASE, BASE + 4096, 1, 100),
            Err(LayoutError::RegionTooLarge {
                region_pages: 1024,
                nr_pages: 100
            })
        ));
        // Wrapping sums.
        assert_eq!(
            PhysLayout::new(0, 0xffff_ffff_ffff_f000, 2, u64::MAX),
            Err(LayoutError::BadPtBase)
        );
        assert_eq!(
            PhysLayout::new(0, 0, u64::MAX, u64::MAX),
            Err(LayoutError::BadPtBase)
        );
    }

    #[test]
    fn p2m_lookups() {
        let mut list = [10u64, 11, INVALID_MFN, 40];
        let mut p2m = P2m::new(&mut list);
        assert_eq!(p2m.len(), 4);
        assert_eq!(p2m.mfn(Pfn(1)), Some(Mfn(11)));
        assert_eq!(p2m.mfn(Pfn(2)), None);
        assert_eq!(p2m.mfn(Pfn(4)), None);
        assert_eq!(p2m.mfn(Pfn(u64::MAX)), None);
        assert_eq!(p2m.max_mfn(), Mfn(40));
        assert!(p2m.owns(Mfn(40)));
        assert!(!p2m.owns(Mfn(12)));
        assert!(!p2m.owns(Mfn::INVALID));
        assert!(p2m.set(Pfn(2), Mfn(12)));
        assert!(p2m.owns(Mfn(12)));
        assert!(p2m.set(Pfn(0), Mfn::INVALID));
        assert_eq!(p2m.mfn(Pfn(0)), None);
        assert!(!p2m.set(Pfn(9), Mfn(1)));
    }
}
