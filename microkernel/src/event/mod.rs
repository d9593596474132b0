//! Event channels: per-domain port tables and the operations of `event_channel_op`, as pure logic.
//!
//! Follows Xen's `common/event_channel.c` (states, checks, errnos and their order) with the
//! delivery rules behind [`PortLayout`] (`event_2l.c` in [`TwoLevel`], `event_fifo.c` in
//! [`Fifo`], switched between by [`Switchable`]). [`EventChannels`]
//! holds every domain's table so interdomain operations act on both ends. Nothing here
//! touches hardware: the machine supplies each domain's [`PortLayout`] (for 2-level, a
//! [`TwoLevel`] over an [`EventMemory`] implemented on the real `shared_info` page), and acts
//! on the [`Notification`]s returned (kick a vCPU, wake pollers).
#![forbid(unsafe_code)]

// Ports, VIRQs and vCPUs named here come from guests: no panics on any value.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

mod engine;
pub mod fifo;
mod layout;
pub mod pirq;
mod table;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

pub use engine::{virq_is_global, EventChannels};
pub use fifo::{Fifo, FifoMemory, Switchable};
pub use layout::{Delivery, EventMemory, PortLayout, TwoLevel, BITS_PER_EVTCHN_WORD};
pub use pirq::{LineChange, Pirqs, NR_PIRQS};
pub use table::{ChannelStatus, PortState};

use hypercall_abi::{DomId, Port, VcpuId};

/// Default port limit of a domain: every port of the 64-bit 2-level ABI (Xen's default
/// `max_evtchn_port` + 1 for a guest without an explicit limit, capped by the layout).
pub const DEFAULT_PORT_LIMIT: u32 = 4096;

/// Per-domain settings of the event channel engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// Ports the domain may use, port 0 (reserved) included; allocation past it fails with
    /// `-ENOSPC`. Capped by the layout's [`PortLayout::max_ports`].
    pub port_limit: u32,
    /// vCPUs of the domain (bind targets 0..vcpus).
    pub vcpus: u32,
    /// May act on other domains' ports (`alloc_unbound`, `status`, `reset` with a foreign
    /// `dom`), as Xen's XSM default grants the control domain.
    pub privileged: bool,
}

impl DomainConfig {
    /// An unprivileged domain with `vcpus` vCPUs and the default port limit.
    pub const fn guest(vcpus: u32) -> Self {
        DomainConfig {
            port_limit: DEFAULT_PORT_LIMIT,
            vcpus,
            privileged: false,
        }
    }

    /// A privileged (control) domain with `vcpus` vCPUs and the default port limit.
    pub const fn control(vcpus: u32) -> Self {
        DomainConfig {
            port_limit: DEFAULT_PORT_LIMIT,
            vcpus,
            privileged: true,
        }
    }
}

/// A port became pending: what the machine must do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Domain owning the port.
    pub dom: DomId,
    /// The vCPU the port notifies.
    pub vcpu: VcpuId,
    /// The port.
    pub port: Port,
    /// Whether pollers must be woken and the vCPU kicked.
    pub delivery: Delivery,
}
