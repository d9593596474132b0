//! The FIFO event channel ABI (Xen's `event_fifo.c`), and the layout that starts as
//! 2-level and switches to FIFO when the guest asks (`EVTCHNOP_init_control`).
//!
//! Each port has a 32-bit event word in guest pages (PENDING, MASKED, LINKED, BUSY and a
//! 17-bit LINK to the next port of its queue); each vCPU has a control block with a
//! `ready` bit and a `head` port per priority (16 queues). Making a port pending links it
//! at the tail of its queue: the hypervisor keeps each queue's tail, writes the tail's LINK
//! with a compare-and-exchange (the guest may clear LINKED or change MASKED/PENDING under
//! it; BUSY holds off its unmask), and sets the head when the queue was empty. The guest
//! consumes from the head.
//!
//! All of that memory is the guest's and changes under the hypervisor, so [`FifoMemory`]
//! offers only single atomic operations; the order of them here is Xen's.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use hypercall_abi::errno::Errno;
use hypercall_abi::event_channel::{
    EVTCHN_FIFO_BUSY, EVTCHN_FIFO_LINKED, EVTCHN_FIFO_LINK_MASK, EVTCHN_FIFO_MASKED, EVTCHN_FIFO_MAX_QUEUES,
    EVTCHN_FIFO_NR_CHANNELS, EVTCHN_FIFO_PENDING, EVTCHN_FIFO_PRIORITY_DEFAULT, EVTCHN_FIFO_PRIORITY_MIN,
};
use hypercall_abi::{Port, VcpuId};

use super::layout::{Delivery, EventMemory, PortLayout, TwoLevel};

/// Event words per page of the event array.
pub const WORDS_PER_PAGE: u32 = 1024;
/// Pages the event array can have (`EVTCHN_FIFO_NR_CHANNELS` ports).
pub const MAX_ARRAY_PAGES: u32 = EVTCHN_FIFO_NR_CHANNELS / WORDS_PER_PAGE;
/// Size of a control block.
pub const CONTROL_BLOCK_SIZE: u32 = 72;

const PENDING: u32 = 1 << EVTCHN_FIFO_PENDING;
const MASKED: u32 = 1 << EVTCHN_FIFO_MASKED;
const LINKED: u32 = 1 << EVTCHN_FIFO_LINKED;
const BUSY: u32 = 1 << EVTCHN_FIFO_BUSY;

/// The guest memory of the FIFO ABI: the event array pages and each vCPU's control block.
/// Word operations are on ports below `array_pages() * WORDS_PER_PAGE` only.
pub trait FifoMemory {
    /// Pages in the event array.
    fn array_pages(&self) -> u32;
    /// Appends frame `mfn` (held writable by the machine) to the event array.
    fn add_array_page(&mut self, mfn: u64);
    /// Gives `vcpu` its control block at `offset` in frame `mfn` (held writable).
    fn set_control_block(&mut self, vcpu: VcpuId, mfn: u64, offset: u32);
    /// Whether `vcpu` has a control block.
    fn has_control_block(&self, vcpu: VcpuId) -> bool;
    /// Reads `port`'s event word.
    fn load(&self, port: u32) -> u32;
    /// Compare-and-exchange on `port`'s word; returns the value found.
    fn cmpxchg(&mut self, port: u32, old: u32, new: u32) -> u32;
    /// Atomic OR into `port`'s word; returns the previous value.
    fn fetch_or(&mut self, port: u32, bits: u32) -> u32;
    /// Atomic AND into `port`'s word; returns the previous value.
    fn fetch_and(&mut self, port: u32, bits: u32) -> u32;
    /// Writes the head of `vcpu`'s queue `priority`.
    fn write_head(&mut self, vcpu: VcpuId, priority: u32, port: u32);
    /// Sets bit `priority` of `vcpu`'s `ready`, returning its previous value.
    fn test_and_set_ready(&mut self, vcpu: VcpuId, priority: u32) -> bool;
    /// Every frame it holds (control blocks and array pages), for the machine to release.
    fn frames(&self) -> Vec<u64>;
}

/// The hypervisor's FIFO state of one port (Xen's `priority`, `fifo_lastq`, `pending`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PortFifo {
    priority: u8,
    /// The queue it was last linked on: (vCPU, priority).
    last_vcpu: u16,
    last_priority: u8,
    /// Made pending while its event word did not exist yet.
    pending: bool,
}

const PORT_DEFAULT: PortFifo = PortFifo {
    priority: EVTCHN_FIFO_PRIORITY_DEFAULT as u8,
    last_vcpu: 0,
    last_priority: EVTCHN_FIFO_PRIORITY_DEFAULT as u8,
    pending: false,
};

/// One domain's FIFO ABI state.
#[derive(Debug)]
pub struct Fifo<F> {
    mem: F,
    /// Each vCPU's queue tails (0: none).
    tails: Vec<[u32; EVTCHN_FIFO_MAX_QUEUES]>,
    /// Per port, grown on demand.
    ports: Vec<PortFifo>,
}

impl<F: FifoMemory> Fifo<F> {
    /// An empty event array for `vcpus` vCPUs (no control block yet).
    pub fn new(mem: F, vcpus: u32) -> Self {
        Fifo { mem, tails: alloc::vec![[0; EVTCHN_FIFO_MAX_QUEUES]; vcpus as usize], ports: Vec::new() }
    }

    /// The guest memory.
    pub fn memory(&self) -> &F {
        &self.mem
    }

    /// The guest memory, mutably (the guest's side in tests).
    pub fn memory_mut(&mut self) -> &mut F {
        &mut self.mem
    }

    fn port(&self, port: u32) -> PortFifo {
        self.ports.get(port as usize).copied().unwrap_or(PORT_DEFAULT)
    }

    fn port_mut(&mut self, port: u32) -> Option<&mut PortFifo> {
        if port >= EVTCHN_FIFO_NR_CHANNELS {
            return None;
        }
        let i = port as usize;
        if i >= self.ports.len() {
            self.ports.resize(i + 1, PORT_DEFAULT);
        }
        self.ports.get_mut(i)
    }

    fn has_word(&self, port: u32) -> bool {
        port < self.mem.array_pages() * WORDS_PER_PAGE
    }

    /// Xen's `evtchn_fifo_set_link`: sets the tail's LINK to `link` if it is still linked.
    /// True when linked (or given up on, as Xen, after the guest raced it five times).
    fn set_link(&mut self, tail: u32, link: u32) -> bool {
        let mut w = self.mem.load(tail);
        if let Some(linked) = self.try_set_link(tail, &mut w, link) {
            return linked;
        }
        // Hold off the guest's unmask while retrying.
        self.mem.fetch_or(tail, BUSY);
        w = self.mem.load(tail);
        for _ in 0..4 {
            if let Some(linked) = self.try_set_link(tail, &mut w, link) {
                if !linked {
                    self.mem.fetch_and(tail, !BUSY);
                }
                return linked;
            }
        }
        self.mem.fetch_and(tail, !BUSY);
        true
    }

    /// One attempt: `Some(false)` if the tail is no longer linked, `Some(true)` when the
    /// LINK was written, `None` if the guest changed the word in between (`w` refreshed).
    fn try_set_link(&mut self, tail: u32, w: &mut u32, link: u32) -> Option<bool> {
        if *w & LINKED == 0 {
            return Some(false);
        }
        let old = *w;
        let new = (old & !(BUSY | EVTCHN_FIFO_LINK_MASK)) | link;
        *w = self.mem.cmpxchg(tail, old, new);
        if *w == old {
            Some(true)
        } else {
            None
        }
    }

    /// Xen's `evtchn_fifo_set_pending`; `upcall` is the vCPU's upcall-pending flag.
    fn set_pending(&mut self, vcpu: VcpuId, port: u32, upcall: &mut impl EventMemory) -> Delivery {
        if !self.has_word(port) {
            if let Some(p) = self.port_mut(port) {
                p.pending = true;
            }
            return Delivery::NONE;
        }
        // An event for a vCPU with no control block is dropped: the guest must not unmask
        // before it has set one up.
        if !self.mem.has_control_block(vcpu) || vcpu.0 as usize >= self.tails.len() {
            return Delivery::NONE;
        }
        let st = self.port(port);
        let priority = u32::from(st.priority);
        let newly_pending = self.mem.fetch_or(port, PENDING) & PENDING == 0;
        let mut linked = true;
        if self.mem.load(port) & MASKED == 0 && self.mem.fetch_or(port, LINKED) & LINKED == 0 {
            // If it was the tail of its old queue, that queue is now empty.
            if let Some(old) = self.tails.get_mut(usize::from(st.last_vcpu)).and_then(|t| t.get_mut(usize::from(st.last_priority))) {
                if *old == port {
                    *old = 0;
                }
            }
            if let Some(p) = self.port_mut(port) {
                p.last_vcpu = vcpu.0 as u16;
                p.last_priority = priority as u8;
            }
            let tail = self.tails.get(vcpu.0 as usize).and_then(|t| t.get(priority as usize)).copied().unwrap_or(0);
            linked = tail != 0 && self.has_word(tail) && self.set_link(tail, port);
            if !linked {
                self.mem.write_head(vcpu, priority, port);
            }
            if let Some(t) = self.tails.get_mut(vcpu.0 as usize).and_then(|t| t.get_mut(priority as usize)) {
                *t = port;
            }
        }
        let kick = !linked && !self.mem.test_and_set_ready(vcpu, priority) && !upcall.test_and_set_upcall_pending(vcpu);
        Delivery { newly_pending, kick }
    }

    fn clear_pending(&mut self, port: u32) {
        if let Some(p) = self.ports.get_mut(port as usize) {
            p.pending = false;
        }
        if self.has_word(port) {
            self.mem.fetch_and(port, !PENDING);
        }
    }

    fn unmask(&mut self, vcpu: VcpuId, port: u32, upcall: &mut impl EventMemory) -> Delivery {
        if !self.has_word(port) {
            return Delivery::NONE;
        }
        self.mem.fetch_and(port, !MASKED);
        if self.mem.load(port) & PENDING != 0 {
            let d = self.set_pending(vcpu, port, upcall);
            return Delivery { newly_pending: false, kick: d.kick };
        }
        Delivery::NONE
    }

    fn is_pending(&self, port: u32) -> bool {
        self.has_word(port) && self.mem.load(port) & PENDING != 0
    }

    fn is_masked(&self, port: u32) -> bool {
        !self.has_word(port) || self.mem.load(port) & MASKED != 0
    }

    fn is_busy(&self, port: u32) -> bool {
        self.has_word(port) && self.mem.load(port) & LINKED != 0
    }

    /// Whether `port` was made pending before its event word existed.
    fn saved_pending(&self, port: u32) -> bool {
        self.port(port).pending
    }
}

/// A domain's layout: the 2-level ABI until the guest calls `EVTCHNOP_init_control`, then
/// FIFO (Xen's `evtchn_port_ops` switch), and 2-level again after `EVTCHNOP_reset`. The
/// 2-level memory stays: its `vcpu_info` flags are how both ABIs raise the upcall.
#[derive(Debug)]
pub struct Switchable<M, F> {
    two: TwoLevel<M>,
    fifo: Option<Fifo<F>>,
}

impl<M: EventMemory, F: FifoMemory> Switchable<M, F> {
    /// The 2-level layout over `memory`.
    pub fn new(memory: M) -> Self {
        Switchable { two: TwoLevel::new(memory), fifo: None }
    }

    /// The 2-level memory (shared_info and the vCPUs' `vcpu_info`).
    pub fn memory(&self) -> &M {
        self.two.memory()
    }

    /// The 2-level memory, mutably.
    pub fn memory_mut(&mut self) -> &mut M {
        self.two.memory_mut()
    }

    /// The FIFO state, once switched.
    pub fn fifo(&self) -> Option<&Fifo<F>> {
        self.fifo.as_ref()
    }

    /// The FIFO state, mutably.
    pub fn fifo_mut(&mut self) -> Option<&mut Fifo<F>> {
        self.fifo.as_mut()
    }

    /// Switches to FIFO with `fifo` (an empty event array). Each port in `ports` (those in
    /// use) keeps its 2-level pending state, to be raised when its event word appears, and
    /// gets the default priority (Xen's `setup_ports`).
    pub fn switch_to_fifo(&mut self, mut fifo: Fifo<F>, ports: impl Iterator<Item = Port>) {
        for port in ports {
            let pending = self.two.is_pending(port);
            if let Some(p) = fifo.port_mut(port.0) {
                *p = PortFifo { pending, ..PORT_DEFAULT };
            }
        }
        self.fifo = Some(fifo);
    }

    /// Back to 2-level (`EVTCHNOP_reset`): the FIFO state, whose frames the machine releases.
    pub fn switch_to_two_level(&mut self) -> Option<Fifo<F>> {
        self.fifo.take()
    }

    /// Whether `port` must be raised now that its event word exists (made pending before).
    pub fn saved_pending(&self, port: Port) -> bool {
        self.fifo.as_ref().is_some_and(|f| f.saved_pending(port.0))
    }
}

impl<M: EventMemory, F: FifoMemory> PortLayout for Switchable<M, F> {
    fn max_ports(&self) -> u32 {
        match &self.fifo {
            Some(_) => EVTCHN_FIFO_NR_CHANNELS,
            None => self.two.max_ports(),
        }
    }

    fn set_pending(&mut self, vcpu: VcpuId, port: Port) -> Delivery {
        match &mut self.fifo {
            Some(f) => f.set_pending(vcpu, port.0, self.two.memory_mut()),
            None => self.two.set_pending(vcpu, port),
        }
    }

    fn clear_pending(&mut self, port: Port) {
        match &mut self.fifo {
            Some(f) => f.clear_pending(port.0),
            None => self.two.clear_pending(port),
        }
    }

    fn unmask(&mut self, vcpu: VcpuId, port: Port) -> Delivery {
        match &mut self.fifo {
            Some(f) => f.unmask(vcpu, port.0, self.two.memory_mut()),
            None => self.two.unmask(vcpu, port),
        }
    }

    fn is_pending(&self, port: Port) -> bool {
        match &self.fifo {
            Some(f) => f.is_pending(port.0),
            None => self.two.is_pending(port),
        }
    }

    fn is_masked(&self, port: Port) -> bool {
        match &self.fifo {
            Some(f) => f.is_masked(port.0),
            None => self.two.is_masked(port),
        }
    }

    fn is_busy(&self, port: Port) -> bool {
        self.fifo.as_ref().is_some_and(|f| f.is_busy(port.0))
    }

    fn init_port(&mut self, port: Port) {
        if let Some(p) = self.fifo.as_mut().and_then(|f| f.port_mut(port.0)) {
            p.priority = EVTCHN_FIFO_PRIORITY_DEFAULT as u8;
        }
    }

    fn set_priority(&mut self, port: Port, priority: u32) -> Result<(), Errno> {
        let f = self.fifo.as_mut().ok_or(Errno::ENOSYS)?;
        if priority > EVTCHN_FIFO_PRIORITY_MIN {
            return Err(Errno::EINVAL);
        }
        if let Some(p) = f.port_mut(port.0) {
            p.priority = priority as u8;
        }
        Ok(())
    }
}
