//! A page shared with another domain, seen through a mapping (guest target only): the
//! `xenbus::ring::SharedMem` both ends of a store ring use (dom0 over its mapping of a
//! guest's store page, a guest over its own store page).
//!
//! The other side changes the page at any time, so every access is volatile (words through
//! atomics), each offset is clamped inside the page (a wrong offset from the ring code is
//! harmless), and the barriers are the ones the ring protocol asks for.

use core::sync::atomic::{compiler_fence, fence, AtomicU32, Ordering};

use xenbus::ring::SharedMem;

/// Size of the page.
const PAGE: usize = 4096;

/// A mapped page shared with another domain.
pub struct SharedPage {
    va: u64,
}

impl SharedPage {
    /// The page mapped read-write at `va`.
    ///
    /// # Safety
    /// `va` must be page-aligned and stay mapped read-write for as long as the value lives
    /// (and no Rust reference may alias the page: only this value and the other domain
    /// touch it).
    pub unsafe fn new(va: u64) -> SharedPage {
        SharedPage { va }
    }

    /// Its virtual address.
    pub fn address(&self) -> u64 {
        self.va
    }

    /// The address of `len` bytes at `offset`, kept inside the page.
    fn at(&self, offset: usize, len: usize) -> u64 {
        self.va + offset.min(PAGE - len.min(PAGE)) as u64
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        let p = self.at(offset & !3, 4) as *const AtomicU32;
        // SAFETY: `new`'s contract keeps the page mapped read-write while `self` lives; `p`
        // is 4-byte aligned inside it; the other domain accesses the same words, hence atomics.
        unsafe { &*p }
    }
}

impl SharedMem for SharedPage {
    fn size(&self) -> usize {
        PAGE
    }

    fn read_u32(&self, offset: usize) -> u32 {
        self.word(offset).load(Ordering::Relaxed)
    }

    fn write_u32(&mut self, offset: usize, value: u32) {
        self.word(offset).store(value, Ordering::Relaxed)
    }

    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        let base = self.at(offset, out.len());
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: as in `word`; `base + i` stays inside the page (`at` clamps).
            // Volatile: the other domain may change the bytes meanwhile.
            *b = unsafe { core::ptr::read_volatile((base + i as u64) as *const u8) };
        }
    }

    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        let base = self.at(offset, data.len());
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: as in `read_bytes`.
            unsafe { core::ptr::write_volatile((base + i as u64) as *mut u8, b) };
        }
    }

    fn read_barrier(&self) {
        compiler_fence(Ordering::Acquire);
    }

    fn write_barrier(&self) {
        compiler_fence(Ordering::Release);
    }

    fn full_barrier(&self) {
        // mfence: our index store must be visible before we read the other side's.
        fence(Ordering::SeqCst);
    }
}
