//! A fake shared-info page for host tests, with the guest's side of the 2-level protocol.

use alloc::boxed::Box;
use alloc::vec::Vec;

use hypercall_abi::shared_info::SharedInfo;
use hypercall_abi::VcpuId;
use zerocopy::FromZeros;

use super::EventMemory;

/// A zeroed `struct shared_info`, laid out as the real page.
pub struct FakeMemory {
    pub info: Box<SharedInfo>,
}

fn bit(port: u32) -> (usize, u64) {
    ((port / 64) as usize, 1u64 << (port % 64))
}

impl FakeMemory {
    pub fn new() -> Self {
        FakeMemory {
            info: Box::new(SharedInfo::new_zeroed()),
        }
    }

    /// The guest sets a port's mask bit.
    pub fn guest_mask(&mut self, port: u32) {
        let (w, b) = bit(port);
        self.info.evtchn_mask[w] |= b;
    }

    pub fn sel(&self, vcpu: u32) -> u64 {
        self.info.vcpu_info[vcpu as usize].evtchn_pending_sel
    }

    /// The guest's upcall handler (as Linux's 2-level scan): clear upcall-pending, take the
    /// selector, and consume every pending unmasked port of the selected words.
    pub fn guest_take_events(&mut self, vcpu: u32) -> Vec<u32> {
        let vi = &mut self.info.vcpu_info[vcpu as usize];
        vi.evtchn_upcall_pending = 0;
        let sel = core::mem::take(&mut vi.evtchn_pending_sel);
        let mut ports = Vec::new();
        for w in 0..64 {
            if sel & (1 << w) == 0 {
                continue;
            }
            let ready = self.info.evtchn_pending[w] & !self.info.evtchn_mask[w];
            self.info.evtchn_pending[w] &= !ready;
            ports.extend(
                (0..64)
                    .filter(|b| ready & (1 << b) != 0)
                    .map(|b| (w * 64 + b) as u32),
            );
        }
        ports
    }
}

impl EventMemory for FakeMemory {
    fn test_and_set_pending(&mut self, port: u32) -> bool {
        let (w, b) = bit(port);
        let old = self.info.evtchn_pending[w] & b != 0;
        self.info.evtchn_pending[w] |= b;
        old
    }
    fn clear_pending(&mut self, port: u32) {
        let (w, b) = bit(port);
        self.info.evtchn_pending[w] &= !b;
    }
    fn test_pending(&self, port: u32) -> bool {
        let (w, b) = bit(port);
        self.info.evtchn_pending[w] & b != 0
    }
    fn test_mask(&self, port: u32) -> bool {
        let (w, b) = bit(port);
        self.info.evtchn_mask[w] & b != 0
    }
    fn test_and_clear_mask(&mut self, port: u32) -> bool {
        let (w, b) = bit(port);
        let old = self.info.evtchn_mask[w] & b != 0;
        self.info.evtchn_mask[w] &= !b;
        old
    }
    fn test_and_set_pending_sel(&mut self, vcpu: VcpuId, bit: u32) -> bool {
        let sel = &mut self.info.vcpu_info[vcpu.0 as usize].evtchn_pending_sel;
        let old = *sel & (1 << bit) != 0;
        *sel |= 1 << bit;
        old
    }
    fn test_and_set_upcall_pending(&mut self, vcpu: VcpuId) -> bool {
        let flag = &mut self.info.vcpu_info[vcpu.0 as usize].evtchn_upcall_pending;
        core::mem::replace(flag, 1) != 0
    }
    fn upcall_mask(&self, vcpu: VcpuId) -> bool {
        self.info.vcpu_info[vcpu.0 as usize].evtchn_upcall_mask != 0
    }
    fn upcall_pending(&self, vcpu: VcpuId) -> bool {
        self.info.vcpu_info[vcpu.0 as usize].evtchn_upcall_pending != 0
    }
}
