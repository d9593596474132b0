//! Memory a device reaches by DMA: one machine-contiguous extent (made with
//! `XENMEM_exchange`), mapped once in dom0, handed out a page run at a time. A run's
//! machine address is the extent's plus its offset, so the drivers' `Hal` can give a
//! device the address of any byte of the pool; a buffer outside it is bounced through a
//! run of the pool (Linux's swiotlb-xen does the same for dom0).
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Bytes per page.
pub const PAGE: u64 = 4096;

/// The pool: where it is, in machine and virtual addresses, which pages are taken, and
/// the runs handed out (first page → pages), so that only a whole run goes back.
#[derive(Debug)]
pub struct DmaPool {
    maddr: u64,
    va: u64,
    used: Vec<bool>,
    runs: BTreeMap<usize, usize>,
}

impl DmaPool {
    /// A pool of `pages` pages at machine address `maddr`, mapped at `va`.
    pub fn new(maddr: u64, va: u64, pages: usize) -> Self {
        DmaPool { maddr, va, used: alloc::vec![false; pages], runs: BTreeMap::new() }
    }

    /// Pages in all, and free.
    pub fn pages(&self) -> (usize, usize) {
        (self.used.len(), self.used.iter().filter(|u| !**u).count())
    }

    /// `n` free pages in a row (first fit): their machine and virtual addresses.
    pub fn alloc(&mut self, n: usize) -> Option<(u64, u64)> {
        if n == 0 {
            return None;
        }
        let mut run = 0;
        for i in 0..self.used.len() {
            run = if self.used[i] { 0 } else { run + 1 };
            if run == n {
                let first = i + 1 - n;
                self.used[first..=i].iter_mut().for_each(|u| *u = true);
                self.runs.insert(first, n);
                let off = first as u64 * PAGE;
                return Some((self.maddr + off, self.va + off));
            }
        }
        None
    }

    /// Gives back the `n` pages at machine address `maddr`: false (and nothing changes) if
    /// they are not a run [`DmaPool::alloc`] handed out.
    pub fn free(&mut self, maddr: u64, n: usize) -> bool {
        let Some(first) = maddr.checked_sub(self.maddr).filter(|o| o % PAGE == 0).map(|o| (o / PAGE) as usize) else {
            return false;
        };
        if self.runs.get(&first) != Some(&n) {
            return false;
        }
        self.runs.remove(&first);
        if let Some(run) = self.used.get_mut(first..first + n) {
            run.iter_mut().for_each(|u| *u = false);
        }
        true
    }

    /// The machine address of the `len` bytes at virtual address `va`, if they lie in the
    /// pool (a device can reach them where they are).
    pub fn maddr_of(&self, va: u64, len: u64) -> Option<u64> {
        let off = va.checked_sub(self.va)?;
        let end = off.checked_add(len)?;
        (end <= self.used.len() as u64 * PAGE).then_some(self.maddr + off)
    }

    /// The virtual address of machine address `maddr` in the pool.
    pub fn va_of(&self, maddr: u64) -> Option<u64> {
        let off = maddr.checked_sub(self.maddr)?;
        (off < self.used.len() as u64 * PAGE).then_some(self.va + off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 0x4000_0000;
    const V: u64 = 0xffff_c000_0000_0000;

    #[test]
    fn runs_are_first_fit_and_given_back_exactly() {
        let mut p = DmaPool::new(M, V, 8);
        assert_eq!(p.alloc(0), None);
        assert_eq!(p.alloc(3), Some((M, V)));
        assert_eq!(p.alloc(2), Some((M + 3 * PAGE, V + 3 * PAGE)));
        assert_eq!(p.alloc(4), None, "only 3 left");
        assert!(!p.free(M + 1, 1), "unaligned");
        assert!(!p.free(M + 5 * PAGE, 1), "not taken");
        assert!(!p.free(M + 2 * PAGE, 2), "across two runs");
        assert!(!p.free(M, 2), "part of a run");
        assert!(!p.free(M - PAGE, 1) && !p.free(M + 8 * PAGE, 1) && !p.free(u64::MAX, 1) && !p.free(M, 0));
        assert!(p.free(M, 3));
        assert_eq!(p.pages(), (8, 6));
        assert_eq!(p.alloc(3), Some((M, V)), "the hole is reused");
        assert_eq!(p.alloc(3), Some((M + 5 * PAGE, V + 5 * PAGE)));
        assert_eq!(p.pages(), (8, 0));
    }

    #[test]
    fn addresses_inside_and_outside() {
        let p = DmaPool::new(M, V, 2);
        assert_eq!(p.maddr_of(V + 10, 100), Some(M + 10));
        assert_eq!(p.maddr_of(V + 2 * PAGE - 1, 1), Some(M + 2 * PAGE - 1));
        assert_eq!(p.maddr_of(V + 2 * PAGE - 1, 2), None, "runs past the end");
        assert_eq!(p.maddr_of(V - 1, 1), None);
        assert_eq!(p.maddr_of(u64::MAX, 2), None);
        assert_eq!(p.va_of(M + PAGE + 8), Some(V + PAGE + 8));
        assert_eq!(p.va_of(M + 2 * PAGE), None);
    }
}
