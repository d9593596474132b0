//! Event channel operation numbers (`EVTCHNOP_*` in `event_channel.h`) and virtual IRQ numbers (`VIRQ_*` in `xen.h`).
//!
//! Numbers only for now; the argument structs come with the event channel work.

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
