//! The machine layer's one way to RAM through the direct map: words of page tables and
//! descriptor tables, atomics a guest shares with the hypervisor (event bitmaps and
//! control blocks, grant entries, `vcpu_info` flags), small plain reads and writes of
//! frames the hypervisor keeps for a domain (`shared_info`, `vcpu_info`), and zeroing and
//! copying whole frames or ranges inside them. Everything here is the `unsafe` the
//! machine layer needs, so that `mm_machine`, `events_machine`, `grants_machine` and
//! `domain` forbid it.
//!
//! **Contract.** Every function checks what it can: the address is RAM the direct map
//! covers (below the end set at boot, [`set_ram_end`]), the access is aligned and stays
//! inside one frame. What it cannot check is whose frame it is: callers name only frames
//! the machine's accounting says are theirs to touch this way (a guest frame the domain
//! holds a reference or type on, a frame the hypervisor made for a domain, a frame just
//! taken from the allocator). A frame's memory may change under these accesses at any
//! time (the guest writes it from another CPU), so nothing here hands out a reference to
//! plain data: reads and writes are volatile, shared words are atomics.

use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

use super::paging::directmap;

/// One past the last byte of RAM the direct map covers (0 until boot sets it).
static RAM_END: AtomicU64 = AtomicU64::new(0);

/// Sets the end of direct-mapped RAM (once, at boot, before any access).
pub fn set_ram_end(bytes: u64) {
    RAM_END.store(bytes, Ordering::Relaxed);
}

/// The direct-map pointer of `len` bytes at machine address `maddr`, aligned to `align`,
/// after the checks of the contract.
fn at(maddr: u64, len: u64, align: u64) -> *mut u8 {
    let end = RAM_END.load(Ordering::Relaxed);
    assert!(maddr.is_multiple_of(align), "direct-map access at {maddr:#x} not {align}-aligned");
    assert!(len <= 4096 && (maddr & 0xfff) + len <= 4096, "direct-map access at {maddr:#x} of {len} bytes crosses its frame");
    assert!(maddr.checked_add(len).is_some_and(|e| e <= end), "direct-map access at {maddr:#x} past RAM ({end:#x})");
    directmap(maddr)
}

/// Word `index` (0..512) of frame `mfn`: a page-table entry or a descriptor.
pub fn word(mfn: u64, index: usize) -> u64 {
    let p = at((mfn << 12) + 8 * (index as u64 % 512), 8, 8);
    // SAFETY: an aligned word inside a RAM frame the direct map covers (checked); the
    // caller names a frame it accounts for (the contract); one volatile load.
    unsafe { core::ptr::read_volatile(p as *const u64) }
}

/// Sets word `index` (0..512) of frame `mfn` with one aligned 8-byte store, so the MMU
/// never sees half an entry.
pub fn set_word(mfn: u64, index: usize, val: u64) {
    let p = at((mfn << 12) + 8 * (index as u64 % 512), 8, 8);
    // SAFETY: as in `word`, one volatile store.
    unsafe { core::ptr::write_volatile(p as *mut u64, val) }
}

/// The byte at machine address `maddr`.
pub fn read_u8(maddr: u64) -> u8 {
    let p = at(maddr, 1, 1);
    // SAFETY: one byte of a RAM frame the direct map covers (checked), the caller's
    // (the contract); a volatile load.
    unsafe { core::ptr::read_volatile(p) }
}

/// Sets the byte at machine address `maddr`.
pub fn write_u8(maddr: u64, v: u8) {
    let p = at(maddr, 1, 1);
    // SAFETY: as in `read_u8`, a volatile store.
    unsafe { core::ptr::write_volatile(p, v) }
}

/// The aligned 8-byte word at machine address `maddr`.
pub fn read_u64(maddr: u64) -> u64 {
    let p = at(maddr, 8, 8);
    // SAFETY: an aligned word of a RAM frame (checked), the caller's; a volatile load.
    unsafe { core::ptr::read_volatile(p as *const u64) }
}

/// Sets the aligned 8-byte word at machine address `maddr`.
pub fn write_u64(maddr: u64, v: u64) {
    let p = at(maddr, 8, 8);
    // SAFETY: as in `read_u64`, a volatile store.
    unsafe { core::ptr::write_volatile(p as *mut u64, v) }
}

/// The byte at `maddr` as an atomic (a flag a guest changes concurrently).
pub fn atomic_u8(maddr: u64) -> &'static AtomicU8 {
    let p = at(maddr, 1, 1);
    // SAFETY: a byte of a RAM frame the direct map covers for the whole run (checked); the
    // caller's (the contract); every access to it, the guest's included, is atomic.
    unsafe { AtomicU8::from_ptr(p) }
}

/// The aligned 2-byte word at `maddr` as an atomic (a grant entry's flags).
pub fn atomic_u16(maddr: u64) -> &'static AtomicU16 {
    let p = at(maddr, 2, 2);
    // SAFETY: as in `atomic_u8`, 2-aligned (checked).
    unsafe { AtomicU16::from_ptr(p as *mut u16) }
}

/// The aligned 4-byte word at `maddr` as an atomic (a FIFO event word, a grant entry).
pub fn atomic_u32(maddr: u64) -> &'static AtomicU32 {
    let p = at(maddr, 4, 4);
    // SAFETY: as in `atomic_u8`, 4-aligned (checked).
    unsafe { AtomicU32::from_ptr(p as *mut u32) }
}

/// The aligned 8-byte word at `maddr` as an atomic (a 2-level bitmap word, a selector).
pub fn atomic_u64(maddr: u64) -> &'static AtomicU64 {
    let p = at(maddr, 8, 8);
    // SAFETY: as in `atomic_u8`, 8-aligned (checked).
    unsafe { AtomicU64::from_ptr(p as *mut u64) }
}

/// Writes `bytes` at machine address `maddr` (inside one frame).
pub fn write_bytes(maddr: u64, bytes: &[u8]) {
    let p = at(maddr, bytes.len() as u64, 1);
    // SAFETY: the range lies in one RAM frame the direct map covers (checked), the
    // caller's; `bytes` is a hypervisor buffer that cannot overlap the direct map's view
    // of a guest or domain frame the caller names.
    unsafe { core::ptr::copy(bytes.as_ptr(), p, bytes.len()) }
}

/// Sets `len` bytes at `maddr` (inside one frame) to `v`.
pub fn fill(maddr: u64, v: u8, len: usize) {
    let p = at(maddr, len as u64, 1);
    // SAFETY: the range lies in one RAM frame (checked), the caller's.
    unsafe { core::ptr::write_bytes(p, v, len) }
}

/// Zeroes frame `mfn`.
pub fn zero(mfn: u64) {
    fill(mfn << 12, 0, 4096);
}

/// Copies `len` bytes from `src_off` of frame `src` to `dst_off` of frame `dst` (both
/// ranges inside their frames; the same frame and overlapping ranges are allowed).
pub fn copy(dst: u64, dst_off: usize, src: u64, src_off: usize, len: usize) {
    let s = at((src << 12) + src_off as u64, len as u64, 1);
    let d = at((dst << 12) + dst_off as u64, len as u64, 1);
    let disjoint = src != dst || src_off + len <= dst_off || dst_off + len <= src_off;
    if disjoint && (src_off | dst_off | len).is_multiple_of(8) {
        // SAFETY: two ranges inside RAM frames (checked), 8-aligned, not overlapping.
        unsafe { copy_words(d as *mut u64, s as *const u64, len / 8) };
        return;
    }
    // SAFETY: two ranges inside RAM frames (checked), possibly overlapping: `copy` allows it.
    unsafe { core::ptr::copy(s, d, len) }
}

/// Copies `words` 8-byte words from `src` to `dst`, eight at a time through registers.
///
/// The library `memcpy`/`memmove` of this target is `rep movsq`, which QEMU's TCG runs one
/// iteration per translated block: a 4 KiB grant copy measured 4950 cycles that way and
/// about 3000 with this loop (32 words per iteration did a little better than 8). The
/// accesses are volatile so that the compiler neither turns the loop back into a `memcpy`
/// call nor assumes the guest's frames hold still.
///
/// # Safety
///
/// `src` and `dst` must be valid, 8-aligned and non-overlapping for `words` words.
unsafe fn copy_words(dst: *mut u64, src: *const u64, words: usize) {
    /// Words per loop iteration: each iteration is one translated block under TCG.
    const UNROLL: usize = 32;
    let mut i = 0;
    while i + UNROLL <= words {
        for j in (i..i + UNROLL).step_by(8) {
            // SAFETY: j + 8 <= i + UNROLL <= words, so words j..j + 8 lie inside both
            // ranges (caller's contract).
            unsafe {
                let v = [
                    core::ptr::read_volatile(src.add(j)),
                    core::ptr::read_volatile(src.add(j + 1)),
                    core::ptr::read_volatile(src.add(j + 2)),
                    core::ptr::read_volatile(src.add(j + 3)),
                    core::ptr::read_volatile(src.add(j + 4)),
                    core::ptr::read_volatile(src.add(j + 5)),
                    core::ptr::read_volatile(src.add(j + 6)),
                    core::ptr::read_volatile(src.add(j + 7)),
                ];
                for (k, w) in v.into_iter().enumerate() {
                    core::ptr::write_volatile(dst.add(j + k), w);
                }
            }
        }
        i += UNROLL;
    }
    while i < words {
        // SAFETY: i < words (caller's contract).
        unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
        i += 1;
    }
}
