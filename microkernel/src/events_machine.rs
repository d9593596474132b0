//! The machine side of event channels: the 2-level bitmaps and per-vCPU flags live in each
//! domain's shared_info page, which the guest changes concurrently, so every access here is
//! one atomic operation on the direct-mapped page (`arch::frames`).
#![forbid(unsafe_code)]

use crate::arch::x86_64::frames;
use crate::event::{EventMemory, FifoMemory, Switchable};
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use hypercall_abi::shared_info::SharedInfo;
use hypercall_abi::types::VcpuId;

/// The event memory of one domain: its shared_info frame.
#[derive(Debug)]
pub struct SharedInfoEvents {
    mfn: u64,
    /// vCPUs whose `vcpu_info` was registered elsewhere: (vCPU, machine address).
    moved: alloc::vec::Vec<(usize, u64)>,
}

/// The layout the machine uses for every domain: 2-level over shared_info, FIFO over the
/// frames the guest gives once it asks.
pub type MachineLayout = Switchable<SharedInfoEvents, FifoFrames>;

impl SharedInfoEvents {
    /// Over shared_info frame `mfn` (kept by the hypervisor for the domain's whole life).
    pub fn new(mfn: u64) -> Self {
        SharedInfoEvents { mfn, moved: alloc::vec::Vec::new() }
    }

    /// vCPU `v`'s `vcpu_info` now lives at machine address `at` (`register_vcpu_info`).
    pub fn set_vcpu_info(&mut self, v: usize, at: u64) {
        self.moved.retain(|&(m, _)| m != v);
        self.moved.push((v, at));
    }

    /// Machine address of vCPU `v`'s `vcpu_info`.
    fn vcpu_info(&self, v: VcpuId) -> u64 {
        let v = v.0 as usize;
        match self.moved.iter().find(|&&(m, _)| m == v) {
            Some(&(_, at)) => at,
            // The engine never notifies a vCPU past the domain's count, at most 32 without
            // a registered vcpu_info.
            None => (self.mfn << 12) + 64 * (v % 32) as u64,
        }
    }

    /// Word `port / 64` of the pending (`which` 0) or mask (1) bitmap, and the port's
    /// bit. The frame is the domain's shared_info for as long as this exists (it is dropped
    /// from the engine before the frame is released); the guest writes the word only with
    /// its own atomic operations.
    fn word(&self, which: usize, port: u32) -> (&'static AtomicU64, u64) {
        let w = (port / 64) as usize % 64;
        let field = if which == 0 { core::mem::offset_of!(SharedInfo, evtchn_pending) } else { core::mem::offset_of!(SharedInfo, evtchn_mask) };
        let a = frames::atomic_u64((self.mfn << 12) + (field + 8 * w) as u64);
        (a, 1u64 << (port % 64))
    }

    /// The vCPU's `evtchn_pending_sel` (offset 8 of its vcpu_info, which is in shared_info
    /// or in a frame the domain holds writable for the hypervisor for its life,
    /// `register_vcpu_info`, 8-byte aligned: its offset was checked).
    fn sel(&self, v: VcpuId) -> &'static AtomicU64 {
        frames::atomic_u64(self.vcpu_info(v) + 8)
    }

    /// As `sel`, for the one-byte flags at offsets 0 (pending) and 1 (mask).
    fn byte(&self, v: VcpuId, mask: bool) -> &'static AtomicU8 {
        use hypercall_abi::shared_info::VcpuInfo;
        let field = if mask { core::mem::offset_of!(VcpuInfo, evtchn_upcall_mask) } else { core::mem::offset_of!(VcpuInfo, evtchn_upcall_pending) };
        frames::atomic_u8(self.vcpu_info(v) + field as u64)
    }
}

impl EventMemory for SharedInfoEvents {
    fn test_and_set_pending(&mut self, port: u32) -> bool {
        let (w, b) = self.word(0, port);
        w.fetch_or(b, Ordering::SeqCst) & b != 0
    }
    fn clear_pending(&mut self, port: u32) {
        let (w, b) = self.word(0, port);
        w.fetch_and(!b, Ordering::SeqCst);
    }
    fn test_pending(&self, port: u32) -> bool {
        let (w, b) = self.word(0, port);
        w.load(Ordering::SeqCst) & b != 0
    }
    fn test_mask(&self, port: u32) -> bool {
        let (w, b) = self.word(1, port);
        w.load(Ordering::SeqCst) & b != 0
    }
    fn test_and_clear_mask(&mut self, port: u32) -> bool {
        let (w, b) = self.word(1, port);
        w.fetch_and(!b, Ordering::SeqCst) & b != 0
    }
    fn test_and_set_pending_sel(&mut self, vcpu: VcpuId, bit: u32) -> bool {
        let b = 1u64 << (bit % 64);
        self.sel(vcpu).fetch_or(b, Ordering::SeqCst) & b != 0
    }
    fn test_and_set_upcall_pending(&mut self, vcpu: VcpuId) -> bool {
        self.byte(vcpu, false).swap(1, Ordering::SeqCst) != 0
    }
    fn upcall_mask(&self, vcpu: VcpuId) -> bool {
        self.byte(vcpu, true).load(Ordering::SeqCst) != 0
    }
    fn upcall_pending(&self, vcpu: VcpuId) -> bool {
        self.byte(vcpu, false).load(Ordering::SeqCst) != 0
    }
}

/// The FIFO ABI's guest memory of one domain: its event-array frames and each vCPU's
/// control block, all held writable for the hypervisor by the domain's memory state
/// (`Mm::hold_writable`) until the FIFO state is dropped and they are released.
#[derive(Debug, Default)]
pub struct FifoFrames {
    pages: alloc::vec::Vec<u64>,
    /// Per vCPU: machine address of its control block.
    control: alloc::vec::Vec<Option<u64>>,
}

impl FifoFrames {
    /// Port `port`'s event word, in an event-array frame held writable for the domain
    /// (never a page table or descriptor frame, never freed while held); the guest changes
    /// it only with its own atomic operations.
    fn word(&self, port: u32) -> &'static AtomicU32 {
        // The layout asks only for ports below array_pages() * 1024.
        let mfn = self.pages.get((port / 1024) as usize).copied().unwrap_or(0);
        frames::atomic_u32((mfn << 12) + 4 * u64::from(port % 1024))
    }

    /// A word of vCPU `vcpu`'s control block, which lies inside a frame held writable for
    /// the domain (its offset was checked: 8-byte aligned, the 72 bytes inside the page);
    /// `offset` is that of `ready` or of a `head` entry, 4-byte aligned.
    fn control_word(&self, vcpu: VcpuId, offset: u64) -> Option<&'static AtomicU32> {
        let at = (*self.control.get(vcpu.0 as usize)?)?;
        Some(frames::atomic_u32(at + offset))
    }
}

impl FifoMemory for FifoFrames {
    fn array_pages(&self) -> u32 {
        self.pages.len() as u32
    }
    fn add_array_page(&mut self, mfn: u64) {
        self.pages.push(mfn);
    }
    fn set_control_block(&mut self, vcpu: VcpuId, mfn: u64, offset: u32) {
        let v = vcpu.0 as usize;
        if self.control.len() <= v {
            self.control.resize(v + 1, None);
        }
        if let Some(slot) = self.control.get_mut(v) {
            *slot = Some((mfn << 12) + u64::from(offset));
        }
    }
    fn has_control_block(&self, vcpu: VcpuId) -> bool {
        self.control.get(vcpu.0 as usize).is_some_and(|c| c.is_some())
    }
    fn load(&self, port: u32) -> u32 {
        self.word(port).load(Ordering::SeqCst)
    }
    fn cmpxchg(&mut self, port: u32, old: u32, new: u32) -> u32 {
        match self.word(port).compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(v) | Err(v) => v,
        }
    }
    fn fetch_or(&mut self, port: u32, bits: u32) -> u32 {
        self.word(port).fetch_or(bits, Ordering::SeqCst)
    }
    fn fetch_and(&mut self, port: u32, bits: u32) -> u32 {
        self.word(port).fetch_and(bits, Ordering::SeqCst)
    }
    fn write_head(&mut self, vcpu: VcpuId, priority: u32, port: u32) {
        if let Some(w) = self.control_word(vcpu, 8 + 4 * u64::from(priority % 16)) {
            w.store(port, Ordering::SeqCst);
        }
    }
    fn test_and_set_ready(&mut self, vcpu: VcpuId, priority: u32) -> bool {
        let b = 1u32 << (priority % 32);
        self.control_word(vcpu, 0).is_some_and(|w| w.fetch_or(b, Ordering::SeqCst) & b != 0)
    }
    fn frames(&self) -> alloc::vec::Vec<u64> {
        let mut f: alloc::vec::Vec<u64> = self.control.iter().flatten().map(|a| a >> 12).collect();
        f.extend_from_slice(&self.pages);
        f
    }
}
