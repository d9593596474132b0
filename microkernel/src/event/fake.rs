//! A fake shared-info page for host tests, with the guest's side of the 2-level protocol.
#![forbid(unsafe_code)]

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

/// Fake FIFO memory: event-array pages and control blocks as plain arrays, with Linux's
/// consumer (`events_fifo.c`) for the guest's side, and a hook to race the hypervisor's
/// compare-and-exchange the way a guest on another CPU would.
#[derive(Default)]
pub struct FakeFifo {
    pub pages: Vec<(u64, Box<[u32; 1024]>)>,
    pub control: Vec<Option<(u64, hypercall_abi::event_channel::EvtchnFifoControlBlock)>>,
    /// Bits the "guest" ORs into the word just before each of the next compare-and-exchanges
    /// (one entry per exchange), so that it fails.
    pub race: Vec<u32>,
    /// The guest's own copy of each queue's head, per vCPU (Linux's `q->head`).
    pub local_head: Vec<[u32; 16]>,
}

impl FakeFifo {
    pub fn word(&self, port: u32) -> u32 {
        self.pages[(port / 1024) as usize].1[(port % 1024) as usize]
    }

    pub fn word_mut(&mut self, port: u32) -> &mut u32 {
        &mut self.pages[(port / 1024) as usize].1[(port % 1024) as usize]
    }

    pub fn block(&mut self, vcpu: u32) -> &mut hypercall_abi::event_channel::EvtchnFifoControlBlock {
        &mut self.control[vcpu as usize].as_mut().unwrap().1
    }

    /// Linux's upcall over FIFO for `vcpu`: take `ready`, and for each ready queue from the
    /// highest priority, consume events from its head, unlinking each; a pending unmasked
    /// event is handled (its PENDING cleared, as the handler's ack does). The ports handled,
    /// in order.
    pub fn guest_consume(&mut self, vcpu: u32) -> Vec<u32> {
        const PENDING: u32 = 1 << 31;
        const MASKED: u32 = 1 << 30;
        const LINKED: u32 = 1 << 29;
        if self.local_head.len() <= vcpu as usize {
            self.local_head.resize(vcpu as usize + 1, [0; 16]);
        }
        let mut ready = core::mem::take(&mut self.block(vcpu).ready);
        let mut out = Vec::new();
        while ready != 0 {
            let q = ready.trailing_zeros() as usize;
            let mut head = self.local_head[vcpu as usize][q];
            if head == 0 {
                head = self.block(vcpu).head[q];
            }
            let port = head;
            let w = self.word(port);
            *self.word_mut(port) = w & !(LINKED | 0x1ffff);
            head = w & 0x1ffff;
            if head == 0 {
                ready &= !(1 << q);
            }
            let w = self.word(port);
            if w & PENDING != 0 && w & MASKED == 0 {
                *self.word_mut(port) &= !PENDING;
                out.push(port);
            }
            self.local_head[vcpu as usize][q] = head;
        }
        out
    }
}

impl crate::event::FifoMemory for FakeFifo {
    fn array_pages(&self) -> u32 {
        self.pages.len() as u32
    }
    fn add_array_page(&mut self, mfn: u64) {
        // Linux masks every event of a page before handing it over.
        self.pages.push((mfn, Box::new([1 << 30; 1024])));
    }
    fn set_control_block(&mut self, vcpu: VcpuId, mfn: u64, _offset: u32) {
        let v = vcpu.0 as usize;
        if self.control.len() <= v {
            self.control.resize(v + 1, None);
        }
        self.control[v] = Some((mfn, FromZeros::new_zeroed()));
    }
    fn has_control_block(&self, vcpu: VcpuId) -> bool {
        self.control.get(vcpu.0 as usize).is_some_and(|c| c.is_some())
    }
    fn load(&self, port: u32) -> u32 {
        self.word(port)
    }
    fn cmpxchg(&mut self, port: u32, old: u32, new: u32) -> u32 {
        if !self.race.is_empty() {
            let bits = self.race.remove(0);
            *self.word_mut(port) |= bits;
        }
        let w = self.word_mut(port);
        let seen = *w;
        if seen == old {
            *w = new;
        }
        seen
    }
    fn fetch_or(&mut self, port: u32, bits: u32) -> u32 {
        let w = self.word_mut(port);
        let old = *w;
        *w |= bits;
        old
    }
    fn fetch_and(&mut self, port: u32, bits: u32) -> u32 {
        let w = self.word_mut(port);
        let old = *w;
        *w &= bits;
        old
    }
    fn write_head(&mut self, vcpu: VcpuId, priority: u32, port: u32) {
        self.block(vcpu.0).head[priority as usize] = port;
    }
    fn test_and_set_ready(&mut self, vcpu: VcpuId, priority: u32) -> bool {
        let b = self.block(vcpu.0);
        let old = b.ready & (1 << priority) != 0;
        b.ready |= 1 << priority;
        old
    }
    fn frames(&self) -> Vec<u64> {
        let mut f: Vec<u64> = self.control.iter().flatten().map(|c| c.0).collect();
        f.extend(self.pages.iter().map(|p| p.0));
        f
    }
}
