//! Port layouts: how a pending event reaches a vCPU (Xen's `evtchn_port_ops`), and the 2-level ABI.
//!
//! The engine in [`super::EventChannels`] decides *which* port of *which* domain becomes
//! pending; a [`PortLayout`] decides how that shows up in guest-visible memory. The 2-level
//! layout ([`TwoLevel`]) works on an [`EventMemory`]: the pending and mask bitmaps of
//! `shared_info` and each vCPU's `vcpu_info` flags. The FIFO layout (`fifo.rs`) implements
//! [`PortLayout`] over its own event array and control blocks.
#![forbid(unsafe_code)]

use hypercall_abi::shared_info::NR_EVENT_CHANNELS_2L;
use hypercall_abi::{Port, VcpuId};

/// What setting a port pending (or unmasking it) asks of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The pending bit went from clear to set: vCPUs polling this port (`SCHEDOP_poll`)
    /// must be woken.
    pub newly_pending: bool,
    /// `evtchn_upcall_pending` of the notified vCPU went from clear to set: the vCPU must be
    /// kicked (woken if blocked, interrupted if running elsewhere). Whether the upcall is
    /// then delivered is the vCPU's `evtchn_upcall_mask`, checked on the way back to the guest.
    pub kick: bool,
}

impl Delivery {
    /// Nothing changed.
    pub const NONE: Delivery = Delivery {
        newly_pending: false,
        kick: false,
    };
}

/// How pending ports are recorded and signalled for one domain (Xen's `evtchn_port_ops`).
pub trait PortLayout {
    /// Ports this layout can represent (the ABI's ceiling on a domain's port limit).
    fn max_ports(&self) -> u32;
    /// Marks `port` pending and notifies `vcpu` if the port is not masked.
    fn set_pending(&mut self, vcpu: VcpuId, port: Port) -> Delivery;
    /// Clears `port`'s pending bit (a port being freed must not fire on rebinding).
    fn clear_pending(&mut self, port: Port);
    /// Clears `port`'s mask and, if it was masked and is pending, notifies `vcpu`.
    fn unmask(&mut self, vcpu: VcpuId, port: Port) -> Delivery;
    /// Whether `port` is pending.
    fn is_pending(&self, port: Port) -> bool;
    /// Whether `port` is masked.
    fn is_masked(&self, port: Port) -> bool;
    /// Whether a free `port` may not be allocated yet (FIFO: still on a queue).
    fn is_busy(&self, _port: Port) -> bool {
        false
    }
    /// A port was just bound (FIFO: it gets the default priority).
    fn init_port(&mut self, _port: Port) {}
    /// `EVTCHNOP_set_priority`: `ENOSYS` where the ABI has no priorities (2-level).
    fn set_priority(&mut self, _port: Port, _priority: u32) -> Result<(), hypercall_abi::errno::Errno> {
        Err(hypercall_abi::errno::Errno::ENOSYS)
    }
}

/// The guest-visible state of the 2-level ABI for one domain: `shared_info.evtchn_pending`,
/// `shared_info.evtchn_mask` and, per vCPU, `vcpu_info.evtchn_pending_sel`,
/// `evtchn_upcall_pending` and `evtchn_upcall_mask`.
///
/// The guest changes this memory concurrently, so the machine's implementation over the real
/// page must make each `test_and_*` one atomic read-modify-write (`lock bts`/`btr` on the
/// 64-bit word holding the bit) and every access a single atomic load or store; the order
/// in which [`TwoLevel`] calls them is the order Xen's `event_2l.c` relies on.
/// Bit `n` of a bitmap is bit `n % 64` of word `n / 64`.
pub trait EventMemory {
    /// Sets the pending bit of `port`, returning its previous value.
    fn test_and_set_pending(&mut self, port: u32) -> bool;
    /// Clears the pending bit of `port`.
    fn clear_pending(&mut self, port: u32);
    /// Reads the pending bit of `port`.
    fn test_pending(&self, port: u32) -> bool;
    /// Reads the mask bit of `port`.
    fn test_mask(&self, port: u32) -> bool;
    /// Clears the mask bit of `port`, returning its previous value.
    fn test_and_clear_mask(&mut self, port: u32) -> bool;
    /// Sets bit `bit` of `vcpu`'s `evtchn_pending_sel`, returning its previous value.
    fn test_and_set_pending_sel(&mut self, vcpu: VcpuId, bit: u32) -> bool;
    /// Sets `vcpu`'s `evtchn_upcall_pending`, returning whether it was already set.
    fn test_and_set_upcall_pending(&mut self, vcpu: VcpuId) -> bool;
    /// Reads `vcpu`'s `evtchn_upcall_mask` (the inverted virtual interrupt flag).
    fn upcall_mask(&self, vcpu: VcpuId) -> bool;
    /// Reads `vcpu`'s `evtchn_upcall_pending`.
    fn upcall_pending(&self, vcpu: VcpuId) -> bool;
}

/// Ports per selector bit: one 64-bit word of the pending bitmap (`BITS_PER_EVTCHN_WORD`).
pub const BITS_PER_EVTCHN_WORD: u32 = 64;

/// The 2-level ABI (`event_2l.c`): a pending bitmap, a mask bitmap and a per-vCPU selector
/// of bitmap words, 4096 ports on x86_64.
#[derive(Debug)]
pub struct TwoLevel<M> {
    memory: M,
}

impl<M: EventMemory> TwoLevel<M> {
    /// The 2-level layout over a domain's shared-info memory.
    pub fn new(memory: M) -> Self {
        TwoLevel { memory }
    }

    /// The memory this layout writes to.
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// The memory, for a guest's side of the protocol in tests or the machine's bookkeeping.
    pub fn memory_mut(&mut self) -> &mut M {
        &mut self.memory
    }

    /// Sets the selector bit of `port`'s word and, if newly set, the upcall flag
    /// (`vcpu_mark_events_pending`); returns whether the vCPU must be kicked.
    fn mark_selector(&mut self, vcpu: VcpuId, port: u32) -> bool {
        !self
            .memory
            .test_and_set_pending_sel(vcpu, port / BITS_PER_EVTCHN_WORD)
            && !self.memory.test_and_set_upcall_pending(vcpu)
    }
}

impl<M: EventMemory> PortLayout for TwoLevel<M> {
    fn max_ports(&self) -> u32 {
        NR_EVENT_CHANNELS_2L as u32
    }

    fn set_pending(&mut self, vcpu: VcpuId, port: Port) -> Delivery {
        // Xen's order: pending first; an already-pending port has notified already.
        if self.memory.test_and_set_pending(port.0) {
            return Delivery::NONE;
        }
        let kick = !self.memory.test_mask(port.0) && self.mark_selector(vcpu, port.0);
        Delivery {
            newly_pending: true,
            kick,
        }
    }

    fn clear_pending(&mut self, port: Port) {
        self.memory.clear_pending(port.0);
    }

    fn unmask(&mut self, vcpu: VcpuId, port: Port) -> Delivery {
        let kick = self.memory.test_and_clear_mask(port.0)
            && self.memory.test_pending(port.0)
            && self.mark_selector(vcpu, port.0);
        Delivery {
            newly_pending: false,
            kick,
        }
    }

    fn is_pending(&self, port: Port) -> bool {
        self.memory.test_pending(port.0)
    }

    fn is_masked(&self, port: Port) -> bool {
        self.memory.test_mask(port.0)
    }
}
