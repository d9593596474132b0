//! The machine side of event channels: the 2-level bitmaps and per-vCPU flags live in each
//! domain's shared_info page, which the guest changes concurrently, so every access here is
//! one atomic operation on the direct-mapped page.

use crate::arch::directmap;
use crate::event::{EventMemory, TwoLevel};
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use hypercall_abi::shared_info::SharedInfo;
use hypercall_abi::types::VcpuId;

/// The event memory of one domain: its shared_info frame.
#[derive(Debug)]
pub struct SharedInfoEvents {
    mfn: u64,
    /// vCPUs whose `vcpu_info` was registered elsewhere: (vCPU, machine address).
    moved: alloc::vec::Vec<(usize, u64)>,
}

/// The layout the machine uses for every domain.
pub type MachineLayout = TwoLevel<SharedInfoEvents>;

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

    fn si(&self) -> *mut SharedInfo {
        directmap(self.mfn << 12) as *mut SharedInfo
    }

    fn word(&self, which: usize, port: u32) -> (&AtomicU64, u64) {
        let w = (port / 64) as usize % 64;
        // SAFETY: the frame is the domain's shared_info for as long as this exists (it is
        // dropped from the engine before the frame is released); the word is 8-byte aligned
        // inside the page; the guest writes it only with its own atomic operations.
        let a = unsafe {
            let si = self.si();
            let p = if which == 0 {
                core::ptr::addr_of_mut!((*si).evtchn_pending[w])
            } else {
                core::ptr::addr_of_mut!((*si).evtchn_mask[w])
            };
            AtomicU64::from_ptr(p)
        };
        (a, 1u64 << (port % 64))
    }

    fn sel(&self, v: VcpuId) -> &AtomicU64 {
        // SAFETY: the vCPU's vcpu_info is in shared_info or in a frame the domain holds
        // writable for the hypervisor for its life (`register_vcpu_info`), 8-byte aligned
        // (offset checked), direct-mapped; pending_sel is at offset 8.
        unsafe { AtomicU64::from_ptr(directmap(self.vcpu_info(v) + 8) as *mut u64) }
    }

    fn byte(&self, v: VcpuId, mask: bool) -> &AtomicU8 {
        // SAFETY: as in `sel`, for the one-byte flags at offsets 0 (pending) and 1 (mask).
        unsafe {
            let vi = directmap(self.vcpu_info(v)) as *mut hypercall_abi::shared_info::VcpuInfo;
            AtomicU8::from_ptr(if mask {
                core::ptr::addr_of_mut!((*vi).evtchn_upcall_mask)
            } else {
                core::ptr::addr_of_mut!((*vi).evtchn_upcall_pending)
            })
        }
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
