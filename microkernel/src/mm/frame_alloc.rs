//! The machine frame allocator: one bit per frame of RAM, set while the frame is free.
//!
//! It starts from the [`FreeRanges`](super::boot_mem::FreeRanges) computed at boot, so it can
//! never hand out firmware memory, the microkernel image, the boot modules or the boot
//! information. Freeing a frame that is not allocated is refused rather than corrupting the
//! count.
#![forbid(unsafe_code)]

use super::boot_mem::FreeRanges;
use super::PAGE_SIZE;

/// Why a frame could not be freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// The frame is outside the memory the allocator manages.
    OutOfRange(u64),
    /// The frame is already free (or was never allocatable).
    NotAllocated(u64),
}

/// Bitmap frame allocator.
pub struct FrameAllocator<'a> {
    /// Bit `i` set: frame `i` is free.
    bits: &'a mut [u64],
    /// Bit `i` set: frame `i` is RAM this allocator manages (free or allocated).
    managed: &'a mut [u64],
    nr_frames: u64,
    free: u64,
    total: u64,
    /// Word index to start the next search from.
    hint: usize,
}

impl<'a> FrameAllocator<'a> {
    /// Words of storage needed for each of the two bitmaps to cover `nr_frames`.
    pub const fn words_for(nr_frames: u64) -> usize {
        nr_frames.div_ceil(64) as usize
    }

    /// Builds an allocator over `free`, using `bits` and `managed` (each at least
    /// `words_for(free.top() / PAGE_SIZE)` words) as storage.
    // Boot only: the storage is sized by the caller from the same ranges (checked above
    // the loop), and every frame of the ranges is below `nr_frames`.
    #[allow(clippy::indexing_slicing)]
    pub fn new(free: &FreeRanges, bits: &'a mut [u64], managed: &'a mut [u64]) -> Self {
        let nr_frames = free.top() / PAGE_SIZE;
        let words = Self::words_for(nr_frames);
        assert!(bits.len() >= words && managed.len() >= words, "frame bitmap storage too small");
        bits[..words].fill(0);
        managed[..words].fill(0);
        let mut a = FrameAllocator { bits, managed, nr_frames, free: 0, total: 0, hint: 0 };
        for r in free.ranges() {
            for f in r.start / PAGE_SIZE..r.end / PAGE_SIZE {
                a.bits[(f / 64) as usize] |= 1 << (f % 64);
                a.managed[(f / 64) as usize] |= 1 << (f % 64);
                a.free += 1;
            }
        }
        a.total = a.free;
        a
    }

    /// Allocates one frame; returns its frame number (mfn).
    pub fn alloc(&mut self) -> Option<u64> {
        let words = Self::words_for(self.nr_frames);
        for i in 0..words {
            let w = (self.hint + i) % words;
            let Some(word) = self.bits.get_mut(w) else { break };
            if *word != 0 {
                let b = word.trailing_zeros() as u64;
                *word &= !(1 << b);
                self.free -= 1;
                self.hint = w;
                return Some(w as u64 * 64 + b);
            }
        }
        None
    }

    /// Allocates `2^order` contiguous frames aligned to their size (a machine-contiguous
    /// extent); returns the first. Order 0 is [`FrameAllocator::alloc`]; above 18 (1 GiB)
    /// nothing.
    pub fn alloc_aligned(&mut self, order: u32) -> Option<u64> {
        if order == 0 {
            return self.alloc();
        }
        if order > 18 {
            return None;
        }
        let n = 1u64 << order;
        let words = Self::words_for(self.nr_frames);
        if order >= 6 {
            let run = (n / 64) as usize;
            let mut w = 0;
            while w + run <= words {
                let all_free = self.bits.get(w..w + run).is_some_and(|s| s.iter().all(|&x| x == u64::MAX));
                if all_free {
                    if let Some(s) = self.bits.get_mut(w..w + run) {
                        s.fill(0);
                    }
                    self.free -= n;
                    return Some(w as u64 * 64);
                }
                w += run;
            }
            return None;
        }
        let mask = (1u64 << n) - 1;
        for w in 0..words {
            let Some(word) = self.bits.get_mut(w) else { break };
            let mut shift = 0;
            while shift < 64 {
                if (*word >> shift) & mask == mask {
                    *word &= !(mask << shift);
                    self.free -= n;
                    return Some(w as u64 * 64 + shift);
                }
                shift += n;
            }
        }
        None
    }

    /// Returns a frame.
    pub fn free(&mut self, mfn: u64) -> Result<(), FreeError> {
        if !self.is_managed(mfn) {
            return Err(FreeError::OutOfRange(mfn));
        }
        let (w, b) = ((mfn / 64) as usize, mfn % 64);
        let word = self.bits.get_mut(w).ok_or(FreeError::OutOfRange(mfn))?;
        if *word & (1 << b) != 0 {
            return Err(FreeError::NotAllocated(mfn));
        }
        *word |= 1 << b;
        self.free += 1;
        Ok(())
    }

    /// Whether `mfn` is RAM that this allocator manages.
    pub fn is_managed(&self, mfn: u64) -> bool {
        mfn < self.nr_frames && self.managed.get((mfn / 64) as usize).is_some_and(|w| w & (1 << (mfn % 64)) != 0)
    }

    /// Frames free now.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Frames managed (free at start).
    pub fn total_frames(&self) -> u64 {
        self.total
    }

    /// One past the highest frame number managed.
    pub fn max_frame(&self) -> u64 {
        self.nr_frames
    }
}

#[cfg(test)]
mod tests {
    use super::super::boot_mem::Range;
    use super::*;
    use crate::multiboot::MemRegion;
    extern crate std;
    use std::collections::BTreeSet;
    use std::vec;

    fn ranges() -> FreeRanges {
        let map = [MemRegion { base: 0, len: 0x80_0000, kind: 1 }];
        FreeRanges::new(&map, &[Range { start: 0x10_0000, end: 0x20_0000 }, Range { start: 0x40_0000, end: 0x40_1000 }])
    }

    #[test]
    fn hands_out_only_free_frames_and_each_once() {
        let fr = ranges();
        let words = FrameAllocator::words_for(fr.top() / PAGE_SIZE);
        let (mut b, mut m) = (vec![0u64; words], vec![0u64; words]);
        let mut a = FrameAllocator::new(&fr, &mut b, &mut m);
        let expected = (0x80_0000 - 0x20_0000) / PAGE_SIZE - 1;
        assert_eq!(a.free_frames(), expected);
        let mut seen = BTreeSet::new();
        while let Some(f) = a.alloc() {
            assert!(f >= 0x200, "frame {f:#x} is below the image end");
            assert_ne!(f, 0x400, "reserved frame handed out");
            assert!(seen.insert(f), "frame {f:#x} handed out twice");
        }
        assert_eq!(seen.len() as u64, expected);
        assert_eq!(a.free_frames(), 0);
        for f in &seen {
            a.free(*f).unwrap();
        }
        assert_eq!(a.free_frames(), expected);
    }

    #[test]
    fn double_free_and_foreign_frames_are_refused() {
        let fr = ranges();
        let words = FrameAllocator::words_for(fr.top() / PAGE_SIZE);
        let (mut b, mut m) = (vec![0u64; words], vec![0u64; words]);
        let mut a = FrameAllocator::new(&fr, &mut b, &mut m);
        let f = a.alloc().unwrap();
        a.free(f).unwrap();
        assert_eq!(a.free(f), Err(FreeError::NotAllocated(f)));
        assert_eq!(a.free(0x100), Err(FreeError::OutOfRange(0x100)), "image frame");
        assert_eq!(a.free(0x400), Err(FreeError::OutOfRange(0x400)), "reserved frame");
        assert_eq!(a.free(u64::MAX), Err(FreeError::OutOfRange(u64::MAX)));
        assert_eq!(a.free_frames(), a.total_frames());
    }

    #[test]
    fn aligned_extents() {
        // Free: 0x200..0x800 but 0x400.
        let fr = ranges();
        let words = FrameAllocator::words_for(fr.top() / PAGE_SIZE);
        let (mut b, mut m) = (vec![0u64; words], vec![0u64; words]);
        let mut a = FrameAllocator::new(&fr, &mut b, &mut m);
        let before = a.free_frames();
        assert_eq!(a.alloc_aligned(9), Some(0x200));
        // 0x400..0x408 holds the reserved frame: the first free aligned 8 is at 0x408.
        assert_eq!(a.alloc_aligned(3), Some(0x408));
        assert_eq!(a.alloc_aligned(3), Some(0x410));
        assert_eq!(a.alloc_aligned(6), Some(0x440));
        assert_eq!(a.free_frames(), before - 512 - 16 - 64);
        assert_eq!(a.alloc_aligned(10), None, "every aligned 4 MiB run has a taken frame");
        assert_eq!(a.alloc_aligned(19), None);
        for f in 0x200..0x400 {
            a.free(f).unwrap();
        }
        assert_eq!(a.alloc_aligned(9), Some(0x200));
    }
}
