//! Event channel operation numbers (`EVTCHNOP_*` in `event_channel.h`) and virtual IRQ numbers (`VIRQ_*` in `xen.h`).
//!
//! The argument structs follow `event_channel.h` (Xen 4.19) field for field; explicit `_pad`
//! fields stand where C has implicit padding.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Connect a local port to a remote domain's unbound port.
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// Bind a virtual IRQ (`VIRQ_*`) to a port.
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// Bind a physical IRQ to a port.
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
/// Close a port.
pub const EVTCHNOP_CLOSE: u32 = 3;
/// Send an event on a port.
pub const EVTCHNOP_SEND: u32 = 4;
/// Query a port's status.
pub const EVTCHNOP_STATUS: u32 = 5;
/// Allocate a port for a remote domain to bind to later.
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// Bind an inter-vCPU IPI to a port.
pub const EVTCHNOP_BIND_IPI: u32 = 7;
/// Deliver a port's events to another vCPU.
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
/// Unmask a port (and deliver a pending event).
pub const EVTCHNOP_UNMASK: u32 = 9;
/// Close all of a domain's ports.
pub const EVTCHNOP_RESET: u32 = 10;
/// FIFO ABI: register a vCPU's control block.
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
/// FIFO ABI: add an event array page.
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
/// FIFO ABI: set a port's priority.
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;
/// Continuation of `EVTCHNOP_RESET`; hypervisor-internal (Xen defines it under `__XEN__`).
pub const EVTCHNOP_RESET_CONT: u32 = 14;

/// Per-vCPU: timebase update and/or requested timeout.
pub const VIRQ_TIMER: u32 = 0;
/// Per-vCPU: request to dump debug information.
pub const VIRQ_DEBUG: u32 = 1;
/// Global (dom0): bytes received on the emergency console.
pub const VIRQ_CONSOLE: u32 = 2;
/// Global (dom0): exceptional event for some domain.
pub const VIRQ_DOM_EXC: u32 = 3;
/// Global (dom0): trace buffer has records available.
pub const VIRQ_TBUF: u32 = 4;
/// Global (dom0): a domain has paused for debugging.
pub const VIRQ_DEBUGGER: u32 = 6;
/// Per-vCPU: profiling sample available.
pub const VIRQ_XENOPROF: u32 = 7;
/// Global (dom0): bytes received on the console.
pub const VIRQ_CON_RING: u32 = 8;
/// Global (dom0): physical CPU state changed.
pub const VIRQ_PCPU_STATE: u32 = 9;
/// Global (dom0): a memory event has occurred.
pub const VIRQ_MEM_EVENT: u32 = 10;
/// Global: Argo inter-domain message notification.
pub const VIRQ_ARGO: u32 = 11;
/// Global (dom0): the hypervisor is low on heap memory.
pub const VIRQ_ENOMEM: u32 = 12;
/// Per-vCPU: performance counter interrupt.
pub const VIRQ_XENPMU: u32 = 13;
/// Architecture-specific virtual IRQ 0.
pub const VIRQ_ARCH_0: u32 = 16;
/// Architecture-specific virtual IRQ 1.
pub const VIRQ_ARCH_1: u32 = 17;
/// Architecture-specific virtual IRQ 2.
pub const VIRQ_ARCH_2: u32 = 18;
/// Architecture-specific virtual IRQ 3.
pub const VIRQ_ARCH_3: u32 = 19;
/// Architecture-specific virtual IRQ 4.
pub const VIRQ_ARCH_4: u32 = 20;
/// Architecture-specific virtual IRQ 5.
pub const VIRQ_ARCH_5: u32 = 21;
/// Architecture-specific virtual IRQ 6.
pub const VIRQ_ARCH_6: u32 = 22;
/// Architecture-specific virtual IRQ 7.
pub const VIRQ_ARCH_7: u32 = 23;
/// Number of virtual IRQs (`NR_VIRQS`).
pub const NR_VIRQS: u32 = 24;

/// `EVTCHNSTAT_closed`: the port is not in use.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// `EVTCHNSTAT_unbound`: the port waits for an interdomain connection.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// `EVTCHNSTAT_interdomain`: the port is connected to a remote domain.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// `EVTCHNSTAT_pirq`: the port is bound to a physical IRQ.
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// `EVTCHNSTAT_virq`: the port is bound to a virtual IRQ.
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// `EVTCHNSTAT_ipi`: the port is bound to an inter-vCPU IPI.
pub const EVTCHNSTAT_IPI: u32 = 5;

/// Argument of `EVTCHNOP_alloc_unbound` (`struct evtchn_alloc_unbound`, 8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnAllocUnbound {
    /// IN: domain to allocate in (`DOMID_SELF` unless privileged).
    pub dom: u16,
    /// IN: domain allowed to bind to the port (`DOMID_SELF` allowed: loopback).
    pub remote_dom: u16,
    /// OUT: the allocated port.
    pub port: u32,
}

const _: () = assert!(core::mem::size_of::<EvtchnAllocUnbound>() == 8);

/// Argument of `EVTCHNOP_bind_interdomain` (`struct evtchn_bind_interdomain`, 12 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnBindInterdomain {
    /// IN: the remote domain (`DOMID_SELF` allowed: loopback).
    pub remote_dom: u16,
    /// Padding (implicit in C), zero.
    pub _pad: u16,
    /// IN: the remote domain's unbound port.
    pub remote_port: u32,
    /// OUT: the fresh local port.
    pub local_port: u32,
}

const _: () = assert!(core::mem::size_of::<EvtchnBindInterdomain>() == 12);

/// Argument of `EVTCHNOP_bind_virq` (`struct evtchn_bind_virq`, 12 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnBindVirq {
    /// IN: a `VIRQ_*` number.
    pub virq: u32,
    /// IN: the vCPU to bind on (0 for global virtual IRQs).
    pub vcpu: u32,
    /// OUT: the allocated port.
    pub port: u32,
}

const _: () = assert!(core::mem::size_of::<EvtchnBindVirq>() == 12);

/// `evtchn_bind_pirq.flags`: the physical IRQ may be shared with other domains.
pub const BIND_PIRQ_WILL_SHARE: u32 = 1;

/// Argument of `EVTCHNOP_bind_pirq` (`struct evtchn_bind_pirq`, 12 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnBindPirq {
    /// IN: the physical IRQ, as `PHYSDEVOP_map_pirq` gave it.
    pub pirq: u32,
    /// IN: `BIND_PIRQ_*`.
    pub flags: u32,
    /// OUT: the allocated port.
    pub port: u32,
}

const _: () = assert!(core::mem::size_of::<EvtchnBindPirq>() == 12);

/// Argument of `EVTCHNOP_bind_ipi` (`struct evtchn_bind_ipi`, 8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnBindIpi {
    /// IN: the vCPU the port notifies.
    pub vcpu: u32,
    /// OUT: the allocated port.
    pub port: u32,
}

const _: () = assert!(core::mem::size_of::<EvtchnBindIpi>() == 8);

/// Argument of `EVTCHNOP_close` (`struct evtchn_close`, 4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnClose {
    /// IN: the local port to close.
    pub port: u32,
}

const _: () = assert!(core::mem::size_of::<EvtchnClose>() == 4);

/// Argument of `EVTCHNOP_send` (`struct evtchn_send`, 4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnSend {
    /// IN: the local port whose remote end is notified.
    pub port: u32,
}

const _: () = assert!(core::mem::size_of::<EvtchnSend>() == 4);

/// The `u` union of [`EvtchnStatus`] (8 bytes, 4-aligned).
///
/// Readings by status: `unbound.dom` and `interdomain.dom` are the low 16 bits of `word0`,
/// `interdomain.port` is `word1`, `pirq` and `virq` are `word0`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnStatusUnion {
    /// First word: a domain id (low 16 bits), a PIRQ or a VIRQ.
    pub word0: u32,
    /// Second word: the remote port of an interdomain channel.
    pub word1: u32,
}

const _: () = assert!(core::mem::size_of::<EvtchnStatusUnion>() == 8);

/// Argument of `EVTCHNOP_status` (`struct evtchn_status`, 24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnStatus {
    /// IN: the domain owning the port (`DOMID_SELF` unless privileged).
    pub dom: u16,
    /// Padding (implicit in C), zero.
    pub _pad: u16,
    /// IN: the port.
    pub port: u32,
    /// OUT: an `EVTCHNSTAT_*` value.
    pub status: u32,
    /// OUT: the vCPU the port notifies.
    pub vcpu: u32,
    /// OUT: details by status.
    pub u: EvtchnStatusUnion,
}

const _: () = assert!(core::mem::size_of::<EvtchnStatus>() == 24);

/// Argument of `EVTCHNOP_bind_vcpu` (`struct evtchn_bind_vcpu`, 8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnBindVcpu {
    /// IN: the port.
    pub port: u32,
    /// IN: the vCPU it should notify.
    pub vcpu: u32,
}

const _: () = assert!(core::mem::size_of::<EvtchnBindVcpu>() == 8);

/// Argument of `EVTCHNOP_unmask` (`struct evtchn_unmask`, 4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnUnmask {
    /// IN: the local port to unmask.
    pub port: u32,
}

const _: () = assert!(core::mem::size_of::<EvtchnUnmask>() == 4);

/// Argument of `EVTCHNOP_reset` (`struct evtchn_reset`, 2 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnReset {
    /// IN: the domain whose ports are all closed (`DOMID_SELF` unless privileged).
    pub dom: u16,
}

const _: () = assert!(core::mem::size_of::<EvtchnReset>() == 2);

/// Argument of `EVTCHNOP_init_control` (`struct evtchn_init_control`, 24 bytes): switches
/// the domain to the FIFO ABI (first call) and gives `vcpu` its control block.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnInitControl {
    /// IN: the frame holding the control block (a PV guest's machine frame).
    pub control_gfn: u64,
    /// IN: the block's offset in it (8-byte aligned, the whole block inside the page).
    pub offset: u32,
    /// IN: the vCPU.
    pub vcpu: u32,
    /// OUT: bits of an event word's LINK field (`EVTCHN_FIFO_LINK_BITS`).
    pub link_bits: u8,
    /// Padding.
    pub _pad: [u8; 7],
}

const _: () = assert!(core::mem::size_of::<EvtchnInitControl>() == 24);

/// Argument of `EVTCHNOP_expand_array` (`struct evtchn_expand_array`, 8 bytes): one more
/// page of event words.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnExpandArray {
    /// IN: the page (a PV guest's machine frame).
    pub array_gfn: u64,
}

const _: () = assert!(core::mem::size_of::<EvtchnExpandArray>() == 8);

/// Argument of `EVTCHNOP_set_priority` (`struct evtchn_set_priority`, 8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnSetPriority {
    /// IN: the port.
    pub port: u32,
    /// IN: its priority, `EVTCHN_FIFO_PRIORITY_MAX` (0, highest) to `_MIN` (15).
    pub priority: u32,
}

const _: () = assert!(core::mem::size_of::<EvtchnSetPriority>() == 8);

/// Highest FIFO priority.
pub const EVTCHN_FIFO_PRIORITY_MAX: u32 = 0;
/// Priority of a newly bound port.
pub const EVTCHN_FIFO_PRIORITY_DEFAULT: u32 = 7;
/// Lowest FIFO priority.
pub const EVTCHN_FIFO_PRIORITY_MIN: u32 = 15;
/// Queues per vCPU, one per priority.
pub const EVTCHN_FIFO_MAX_QUEUES: usize = 16;
/// Bits of an event word's LINK field.
pub const EVTCHN_FIFO_LINK_BITS: u32 = 17;
/// Mask of the LINK field.
pub const EVTCHN_FIFO_LINK_MASK: u32 = (1 << EVTCHN_FIFO_LINK_BITS) - 1;
/// Ports the FIFO ABI can name.
pub const EVTCHN_FIFO_NR_CHANNELS: u32 = 1 << EVTCHN_FIFO_LINK_BITS;
/// Event word bit: pending.
pub const EVTCHN_FIFO_PENDING: u32 = 31;
/// Event word bit: masked.
pub const EVTCHN_FIFO_MASKED: u32 = 30;
/// Event word bit: on a queue.
pub const EVTCHN_FIFO_LINKED: u32 = 29;
/// Event word bit: the hypervisor is changing LINK (the guest must not unmask).
pub const EVTCHN_FIFO_BUSY: u32 = 28;

/// A vCPU's FIFO control block (`struct evtchn_fifo_control_block`, 72 bytes): a ready bit
/// per non-empty queue and each queue's head port.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnFifoControlBlock {
    /// Bit `q` set: queue `q` has events (set by the hypervisor, cleared by the guest).
    pub ready: u32,
    /// Reserved.
    pub _rsvd: u32,
    /// First port of each queue (0: empty when linked from nothing).
    pub head: [u32; EVTCHN_FIFO_MAX_QUEUES],
}

const _: () = assert!(core::mem::size_of::<EvtchnFifoControlBlock>() == 72);
