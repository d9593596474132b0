//! vCPU operations (`VCPUOP_*`, the `cmd` of `vcpu_op`, in `vcpu.h`): numbers, and the
//! argument structs of the timer operations.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Initialise a vCPU's context from a [`crate::VcpuGuestContext`].
pub const VCPUOP_INITIALISE: u32 = 0;
/// Bring a vCPU up.
pub const VCPUOP_UP: u32 = 1;
/// Take a vCPU down.
pub const VCPUOP_DOWN: u32 = 2;
/// Whether a vCPU is up.
pub const VCPUOP_IS_UP: u32 = 3;
/// Copy out a vCPU's runstate information.
pub const VCPUOP_GET_RUNSTATE_INFO: u32 = 4;
/// Register a guest virtual area the hypervisor keeps runstate information in.
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
/// Start a periodic timer.
pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
/// Stop the periodic timer.
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
/// Set a single-shot timer.
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// Stop the single-shot timer.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
/// Move a vCPU's `vcpu_info` out of the shared info page.
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
/// Send an NMI to a vCPU.
pub const VCPUOP_SEND_NMI: u32 = 11;
/// Physical CPU id backing a vCPU (privileged).
pub const VCPUOP_GET_PHYSID: u32 = 12;
/// Register a guest virtual area for a secondary copy of the vCPU time info.
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 13;
/// As `VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA`, by guest physical address.
pub const VCPUOP_REGISTER_RUNSTATE_PHYS_AREA: u32 = 14;
/// As `VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA`, by guest physical address.
pub const VCPUOP_REGISTER_VCPU_TIME_PHYS_AREA: u32 = 15;

/// Argument of `VCPUOP_set_periodic_timer` (`struct vcpu_set_periodic_timer`, 8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct VcpuSetPeriodicTimer {
    /// Period in ns; at least 1 ms.
    pub period_ns: u64,
}

const _: () = assert!(core::mem::size_of::<VcpuSetPeriodicTimer>() == 8);

/// Argument of `VCPUOP_set_singleshot_timer` (`struct vcpu_set_singleshot_timer`, 16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute system time (ns) at which `VIRQ_TIMER` is raised.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
    /// Padding (implicit in C), zero.
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<VcpuSetSingleshotTimer>() == 16);

/// `VCPU_SSHOTTMR_future`: fail with `-ETIME` if the timeout is already past.
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1;
/// Shortest period of `VCPUOP_set_periodic_timer`, ns (Xen's `MILLISECS(1)`).
pub const MIN_PERIODIC_NS: u64 = 1_000_000;

/// `RUNSTATE_running`: the vCPU is running on a physical CPU.
pub const RUNSTATE_RUNNING: u32 = 0;
/// `RUNSTATE_runnable`: it could run, another vCPU has the CPU.
pub const RUNSTATE_RUNNABLE: u32 = 1;
/// `RUNSTATE_blocked`: it waits for an event.
pub const RUNSTATE_BLOCKED: u32 = 2;
/// `RUNSTATE_offline`: it is down (or its domain has stopped).
pub const RUNSTATE_OFFLINE: u32 = 3;

/// `struct vcpu_runstate_info` (48 bytes): the output of `VCPUOP_get_runstate_info` and
/// what the hypervisor writes into an area registered with
/// `VCPUOP_register_runstate_memory_area`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct VcpuRunstateInfo {
    /// `RUNSTATE_*` now.
    pub state: u32,
    /// Padding (implicit in C).
    pub _pad: u32,
    /// System time (ns) when the current state was entered.
    pub state_entry_time: u64,
    /// Time (ns) spent in each state, indexed by `RUNSTATE_*`.
    pub time: [u64; 4],
}

const _: () = assert!(core::mem::size_of::<VcpuRunstateInfo>() == 48);
