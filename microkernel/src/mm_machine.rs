//! The machine side of direct paging: `MmMachine` over the direct map, the frame
//! allocator, the M2P and the CPU's TLB.

use crate::arch::directmap;
use crate::arch::x86_64::{cpu, paging, smp};
use crate::mm::frame_alloc::FrameAllocator;
use crate::mm::pt::MmMachine;

/// RAM ranges from the loader's memory map, as frame numbers `[start, end)`.
pub struct RamMap {
    ranges: heapless::Vec<(u64, u64), 64>,
}

impl RamMap {
    /// The available regions of the memory map.
    pub fn new(regions: &[crate::multiboot::MemRegion]) -> Self {
        let mut ranges = heapless::Vec::new();
        for r in regions.iter().filter(|r| r.is_available()) {
            let start = r.base.div_ceil(4096);
            let end = (r.base + r.len) / 4096;
            if start < end {
                let _ = ranges.push((start, end));
            }
        }
        RamMap { ranges }
    }

    /// Whether `mfn` is RAM (whoever uses it).
    pub fn contains(&self, mfn: u64) -> bool {
        self.ranges.iter().any(|&(s, e)| (s..e).contains(&mfn))
    }
}

/// Everything `MmMachine` needs, borrowed from the machine for one operation.
pub struct MachineMm<'a> {
    /// Frame source.
    pub frames: &'a mut FrameAllocator<'static>,
    /// RAM ranges.
    pub ram: &'a RamMap,
    /// The hypervisor's L4 slots 256..=271.
    pub slots: &'a [u64; 16],
    /// Entries in the M2P.
    pub m2p_entries: u64,
    /// Highest frame number the CPU's physical address width can name.
    pub max_mfn: u64,
    /// The domain acted for (whose CPUs its own flushes reach).
    pub dom: u16,
}

fn pte(mfn: u64, index: usize) -> *mut u64 {
    assert!(index < 512);
    // SAFETY: the core only names frames it checked are RAM covered by the frame table,
    // which the direct map maps; the index stays inside the frame.
    unsafe { (directmap(mfn << 12) as *mut u64).add(index) }
}

/// Word `index` of RAM frame `mfn` (a frame the frame table covers: the direct map maps
/// it), for the descriptor tables the GDT loads from.
pub fn frame_word(mfn: u64, index: usize) -> u64 {
    // SAFETY: as `read_pte`: the caller names a frame the core checked (a guest's
    // descriptor-table frame, held by its GDT), the index stays inside it.
    unsafe { core::ptr::read_volatile(pte(mfn, index % 512)) }
}

impl MmMachine for MachineMm<'_> {
    fn read_pte(&self, mfn: u64, index: usize) -> u64 {
        // SAFETY: see `pte`; entries are plain u64s, read with one aligned load.
        unsafe { core::ptr::read_volatile(pte(mfn, index)) }
    }

    fn write_pte(&mut self, mfn: u64, index: usize, val: u64) {
        // SAFETY: see `pte`; one aligned 8-byte store, so the MMU never sees half an entry.
        unsafe { core::ptr::write_volatile(pte(mfn, index), val) }
    }

    fn zero_frame(&mut self, mfn: u64) {
        // SAFETY: a RAM frame the core owns the accounting of, direct-mapped, whole page.
        unsafe { core::ptr::write_bytes(directmap(mfn << 12), 0, 4096) }
    }

    fn copy_frame(&mut self, dst: u64, src: u64) {
        if dst == src {
            return;
        }
        // SAFETY: two distinct direct-mapped RAM frames, one page each.
        unsafe { core::ptr::copy_nonoverlapping(directmap(src << 12), directmap(dst << 12), 4096) }
    }

    fn copy_bytes(&mut self, dst: u64, dst_off: usize, src: u64, src_off: usize, len: usize) {
        let (s, d) = (directmap(src << 12).wrapping_add(src_off), directmap(dst << 12).wrapping_add(dst_off));
        let disjoint = src != dst || src_off + len <= dst_off || dst_off + len <= src_off;
        if disjoint && (src_off | dst_off | len).is_multiple_of(8) {
            // SAFETY: two direct-mapped RAM frames whose ranges the core checked lie inside
            // their pages, 8-aligned and not overlapping.
            unsafe { copy_words(d as *mut u64, s as *const u64, len / 8) };
            return;
        }
        // SAFETY: two direct-mapped RAM frames (possibly the same); the core checked that
        // both ranges lie inside their page; `copy` allows overlap.
        unsafe { core::ptr::copy(s, d, len) }
    }

    fn is_ram(&self, mfn: u64) -> bool {
        self.ram.contains(mfn)
    }

    fn max_mfn(&self) -> u64 {
        self.max_mfn
    }

    fn hypervisor_l4e(&self, slot: usize) -> u64 {
        self.slots[slot - 256]
    }

    fn set_m2p(&mut self, mfn: u64, pfn: u64) {
        if mfn < self.m2p_entries {
            paging::set_m2p(mfn, pfn, self.m2p_entries);
        }
    }

    fn alloc_frames(&mut self, order: u32) -> Option<u64> {
        let first = self.frames.alloc_aligned(order)?;
        for k in 0..1u64 << order {
            self.zero_frame(first + k);
        }
        Some(first)
    }

    fn release_frame(&mut self, mfn: u64) {
        // Scrub on the way back, so the next owner never sees this one's data.
        self.zero_frame(mfn);
        self.set_m2p(mfn, hypercall_abi::types::INVALID_M2P_ENTRY);
        let _ = self.frames.free(mfn);
    }

    fn flush_tlb(&mut self) {
        x86_64::instructions::tlb::flush_all();
        smp::shootdown(smp::cpus_running(None, 0));
    }

    fn invlpg(&mut self, va: u64) {
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(va));
        smp::shootdown(smp::cpus_running(Some(self.dom), u64::MAX));
    }

    fn flush_guest(&mut self, va: Option<u64>, vcpus: u64) {
        let cpus = smp::cpus_running(Some(self.dom), vcpus);
        if cpus & (1 << cpu::this_cpu()) != 0 {
            match va {
                Some(va) => x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(va)),
                None => x86_64::instructions::tlb::flush_all(),
            }
        }
        smp::shootdown(cpus);
    }

    fn load_cr3(&mut self, mfn: u64) {
        paging::switch_to(mfn);
    }

    fn wbinvd(&mut self) {
        // SAFETY: write-back-and-invalidate has no effect on memory contents or mappings.
        unsafe { core::arch::asm!("wbinvd", options(nostack)) }
    }
}

/// Copies `words` 8-byte words from `src` to `dst`, eight at a time through registers.
///
/// The library `memcpy`/`memmove` of this target is `rep movsq`, which QEMU's TCG runs one
/// iteration per translated block: a 4 KiB grant copy measured 4950 cycles that way and
/// about 3000 with this loop (32 words per iteration did a little better than 8). The accesses are volatile so that the compiler neither turns the
/// loop back into a `memcpy` call nor assumes the guest's frames hold still.
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

/// Highest frame number the CPU can address (CPUID 0x80000008 physical address bits).
pub fn cpu_max_mfn() -> u64 {
    let max_ext = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    let bits = if max_ext >= 0x8000_0008 { core::arch::x86_64::__cpuid(0x8000_0008).eax & 0xff } else { 36 };
    (1u64 << bits.clamp(32, 52)) / 4096 - 1
}
