//! An allocator over the guest's free pseudo-physical frames.
//!
//! A bitmap over `[0, nr_pages)` with two pools: frames mapped nowhere (past the initial
//! region), which may become page tables, and the initial region's padding, which is mapped
//! writable and so can only be data. [`FrameAllocator::alloc`] takes from the first pool,
//! [`FrameAllocator::alloc_mapped`] from the second.
#![forbid(unsafe_code)]

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use hypercall_abi::types::Pfn;

use super::phys::PhysLayout;

/// Why a frame could not be given back or taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The pfn is past the allocator's range.
    OutOfRange(Pfn),
    /// Freeing a frame that is already free.
    DoubleFree(Pfn),
    /// Taking a frame that is not free.
    NotFree(Pfn),
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::OutOfRange(p) => write!(f, "pfn {:#x} is out of range", p.0),
            FrameError::DoubleFree(p) => write!(f, "pfn {:#x} is already free", p.0),
            FrameError::NotFree(p) => write!(f, "pfn {:#x} is not free", p.0),
        }
    }
}

/// Free-frame bitmap with an unmapped and a mapped pool.
#[derive(Clone, Debug)]
pub struct FrameAllocator {
    /// Bit `pfn` set = free.
    free: Vec<u64>,
    nr_pages: u64,
    /// Pfns mapped nowhere at start of day.
    unmapped: Range<u64>,
    /// The initial region's padding.
    mapped: Range<u64>,
    /// Where the next search in each pool starts.
    next_unmapped: u64,
    next_mapped: u64,
    nr_free: u64,
}

impl FrameAllocator {
    /// An allocator whose free frames are `layout`'s padding and everything past the region.
    pub fn new(layout: &PhysLayout) -> Self {
        let mut a = FrameAllocator::empty(
            layout.nr_pages,
            layout.unmapped_free(),
            layout.mapped_free(),
        );
        for pfn in layout.mapped_free().chain(layout.unmapped_free()) {
            a.set_free(pfn, true);
        }
        a
    }

    /// An allocator over `nr_pages` with nothing free yet; `unmapped` and `mapped` say which
    /// pool a pfn belongs to.
    pub fn empty(nr_pages: u64, unmapped: Range<u64>, mapped: Range<u64>) -> Self {
        let words = usize::try_from(nr_pages.div_ceil(64)).unwrap_or(0);
        FrameAllocator {
            free: vec![0; words],
            nr_pages,
            next_unmapped: unmapped.start,
            next_mapped: mapped.start,
            unmapped,
            mapped,
            nr_free: 0,
        }
    }

    fn is_set(&self, pfn: u64) -> bool {
        self.free[(pfn / 64) as usize] & (1 << (pfn % 64)) != 0
    }

    fn set_free(&mut self, pfn: u64, free: bool) {
        let word = &mut self.free[(pfn / 64) as usize];
        let bit = 1u64 << (pfn % 64);
        if free && *word & bit == 0 {
            *word |= bit;
            self.nr_free += 1;
        } else if !free && *word & bit != 0 {
            *word &= !bit;
            self.nr_free -= 1;
        }
    }

    /// First free pfn in `range` at or after `from`, wrapping around once.
    fn find(&self, range: &Range<u64>, from: u64) -> Option<u64> {
        let from = from.clamp(range.start, range.end);
        let scan = |lo: u64, hi: u64| -> Option<u64> {
            let mut pfn = lo;
            while pfn < hi {
                let word = self.free[(pfn / 64) as usize] >> (pfn % 64);
                if word == 0 {
                    pfn = (pfn / 64 + 1) * 64;
                    continue;
                }
                let hit = pfn + u64::from(word.trailing_zeros());
                return (hit < hi).then_some(hit);
            }
            None
        };
        scan(from, range.end).or_else(|| scan(range.start, from))
    }

    /// A free frame mapped nowhere (fit for a page table), or `None`.
    pub fn alloc(&mut self) -> Option<Pfn> {
        let range = self.unmapped.clone();
        let pfn = self.find(&range, self.next_unmapped)?;
        self.set_free(pfn, false);
        self.next_unmapped = pfn + 1;
        Some(Pfn(pfn))
    }

    /// A free frame of the initial region's padding (mapped writable there), or `None`.
    pub fn alloc_mapped(&mut self) -> Option<Pfn> {
        let range = self.mapped.clone();
        let pfn = self.find(&range, self.next_mapped)?;
        self.set_free(pfn, false);
        self.next_mapped = pfn + 1;
        Some(Pfn(pfn))
    }

    /// Gives `pfn` back.
    pub fn free(&mut self, pfn: Pfn) -> Result<(), FrameError> {
        if pfn.0 >= self.nr_pages {
            return Err(FrameError::OutOfRange(pfn));
        }
        if self.is_set(pfn.0) {
            return Err(FrameError::DoubleFree(pfn));
        }
        self.set_free(pfn.0, true);
        Ok(())
    }

    /// Takes a particular free pfn.
    pub fn take(&mut self, pfn: Pfn) -> Result<(), FrameError> {
        if pfn.0 >= self.nr_pages {
            return Err(FrameError::OutOfRange(pfn));
        }
        if !self.is_set(pfn.0) {
            return Err(FrameError::NotFree(pfn));
        }
        self.set_free(pfn.0, false);
        Ok(())
    }

    /// Whether `pfn` is free.
    pub fn is_free(&self, pfn: Pfn) -> bool {
        pfn.0 < self.nr_pages && self.is_set(pfn.0)
    }

    /// Free frames in both pools.
    pub fn free_count(&self) -> u64 {
        self.nr_free
    }

    /// Free frames mapped nowhere.
    pub fn free_unmapped(&self) -> u64 {
        self.count_in(&self.unmapped)
    }

    fn count_in(&self, range: &Range<u64>) -> u64 {
        range.clone().filter(|&p| self.is_set(p)).count() as u64
    }
}

/// A [`FrameSource`](super::FrameSource) over an allocator and the p2m: frames mapped
/// nowhere, by pfn and mfn.
pub struct P2mFrames<'a, 'b> {
    /// Where pfns come from.
    pub alloc: &'a mut FrameAllocator,
    /// How they translate.
    pub p2m: &'a super::P2m<'b>,
}

impl super::FrameSource for P2mFrames<'_, '_> {
    fn alloc_frame(&mut self) -> Option<super::Frame> {
        loop {
            let pfn = self.alloc.alloc()?;
            // A pfn without memory (given back to the hypervisor) stays taken: it is of no use.
            if let Some(mfn) = self.p2m.mfn(pfn) {
                return Some(super::Frame { pfn, mfn });
            }
        }
    }

    fn free_frame(&mut self, frame: super::Frame) {
        // Freeing a frame this source handed out cannot fail; a double free is a bug that
        // the bitmap absorbs.
        let _ = self.alloc.free(frame.pfn);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::collections::BTreeSet;

    fn layout() -> PhysLayout {
        // Stack at pfn 105, region end 1024, 1200 pages.
        PhysLayout::new(0x40_0000, 0x40_0000 + 100 * 4096, 5, 1200).unwrap()
    }

    #[test]
    fn pools_cover_exactly_the_free_frames() {
        let l = layout();
        let mut a = FrameAllocator::new(&l);
        assert_eq!(a.free_count(), (1024 - 106) + (1200 - 1024));
        assert_eq!(a.free_unmapped(), 176);
        let mut seen = BTreeSet::new();
        while let Some(p) = a.alloc() {
            assert!(l.unmapped_free().contains(&p.0));
            assert!(seen.insert(p.0));
        }
        assert_eq!(seen.len(), 176);
        while let Some(p) = a.alloc_mapped() {
            assert!(l.mapped_free().contains(&p.0));
            assert!(seen.insert(p.0));
        }
        assert_eq!(a.free_count(), 0);
        // Nothing in use at start of day was ever handed out.
        assert!(seen.iter().all(|&p| p > l.stack_pfn));
    }

    #[test]
    fn free_take_and_hostile_pfns() {
        let l = layout();
        let mut a = FrameAllocator::new(&l);
        let p = a.alloc().unwrap();
        assert!(!a.is_free(p));
        assert_eq!(a.take(p), Err(FrameError::NotFree(p)));
        a.free(p).unwrap();
        assert_eq!(a.free(p), Err(FrameError::DoubleFree(p)));
        assert_eq!(a.free(Pfn(1200)), Err(FrameError::OutOfRange(Pfn(1200))));
        assert_eq!(
            a.free(Pfn(u64::MAX)),
            Err(FrameError::OutOfRange(Pfn(u64::MAX)))
        );
        assert_eq!(a.take(Pfn(5)), Err(FrameError::NotFree(Pfn(5))));
        a.take(Pfn(1100)).unwrap();
        assert!(!a.is_free(Pfn(1100)));
        assert!(!a.is_free(Pfn(u64::MAX)));
    }

    #[test]
    fn freed_frames_are_found_again_after_wrapping() {
        let l = layout();
        let mut a = FrameAllocator::new(&l);
        let all: std::vec::Vec<Pfn> = core::iter::from_fn(|| a.alloc()).collect();
        assert_eq!(a.alloc(), None);
        a.free(all[3]).unwrap();
        a.free(all[100]).unwrap();
        let mut again = [a.alloc().unwrap(), a.alloc().unwrap()];
        again.sort();
        assert_eq!(again, [all[3], all[100]]);
        assert_eq!(a.alloc(), None);
    }
}
