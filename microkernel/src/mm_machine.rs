//! The machine side of direct paging: `MmMachine` over the direct map (`arch::frames`), the
//! frame allocator, the M2P and the CPU's TLB.
#![forbid(unsafe_code)]

use crate::arch::x86_64::{cpu, frames, paging, smp};
use crate::kernel::cpus_running;
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
    /// Every CPU's scheduling state: which CPUs a shootdown must reach.
    pub cpus: &'a [crate::kernel::CpuSched],
}

/// Word `index` of RAM frame `mfn` (a frame the frame table covers: the direct map maps
/// it), for the descriptor tables the GDT loads from.
pub fn frame_word(mfn: u64, index: usize) -> u64 {
    frames::word(mfn, index % 512)
}

impl MmMachine for MachineMm<'_> {
    fn read_pte(&self, mfn: u64, index: usize) -> u64 {
        assert!(index < 512);
        frames::word(mfn, index)
    }

    fn write_pte(&mut self, mfn: u64, index: usize, val: u64) {
        assert!(index < 512);
        frames::set_word(mfn, index, val);
    }

    fn zero_frame(&mut self, mfn: u64) {
        frames::zero(mfn);
    }

    fn copy_frame(&mut self, dst: u64, src: u64) {
        if dst == src {
            return;
        }
        frames::copy(dst, 0, src, 0, 4096);
    }

    fn copy_bytes(&mut self, dst: u64, dst_off: usize, src: u64, src_off: usize, len: usize) {
        frames::copy(dst, dst_off, src, src_off, len);
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
        smp::shootdown(cpus_running(self.cpus, None, 0));
    }

    fn invlpg(&mut self, va: u64) {
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(va));
        smp::shootdown(cpus_running(self.cpus, Some(self.dom), u64::MAX));
    }

    fn flush_guest(&mut self, va: Option<u64>, vcpus: u64) {
        let cpus = cpus_running(self.cpus, Some(self.dom), vcpus);
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
        cpu::wbinvd();
    }
}

/// Highest frame number the CPU can address (CPUID 0x80000008 physical address bits).
pub fn cpu_max_mfn() -> u64 {
    let max_ext = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    let bits = if max_ext >= 0x8000_0008 { core::arch::x86_64::__cpuid(0x8000_0008).eax & 0xff } else { 36 };
    (1u64 << bits.clamp(32, 52)) / 4096 - 1
}
