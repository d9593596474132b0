//! Scheduler operations (`sched.h`): `sched_op(cmd, arg)` sub-commands, shutdown reasons and their argument structs.

use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `sched_op` sub-commands (`SCHEDOP_*`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SchedOp {
    /// `SCHEDOP_yield` (0): give up the CPU voluntarily; `arg` is null.
    Yield = 0,
    /// `SCHEDOP_block` (1): sleep until an event arrives, atomically unmasking
    /// events first; `arg` is null.
    Block = 1,
    /// `SCHEDOP_shutdown` (2): stop the whole domain; `arg` is a [`SchedShutdown`].
    Shutdown = 2,
    /// `SCHEDOP_poll` (3): block until one of a set of ports is pending or a
    /// timeout passes; `arg` is a [`SchedPoll`].
    Poll = 3,
    /// `SCHEDOP_remote_shutdown` (4): shut down another domain (privileged);
    /// `arg` is a [`SchedRemoteShutdown`].
    RemoteShutdown = 4,
    /// `SCHEDOP_shutdown_code` (5): record the shutdown reason without shutting
    /// down yet; `arg` is a [`SchedShutdown`].
    ShutdownCode = 5,
    /// `SCHEDOP_watchdog` (6): create, poke or destroy a watchdog; `arg` is a [`SchedWatchdog`].
    Watchdog = 6,
    /// `SCHEDOP_pin_override` (7): pin the vCPU to a physical CPU (hardware
    /// domain only); `arg` is a [`SchedPinOverride`].
    PinOverride = 7,
}

impl SchedOp {
    /// Every sub-command, in number order.
    pub const ALL: [SchedOp; 8] = [
        SchedOp::Yield,
        SchedOp::Block,
        SchedOp::Shutdown,
        SchedOp::Poll,
        SchedOp::RemoteShutdown,
        SchedOp::ShutdownCode,
        SchedOp::Watchdog,
        SchedOp::PinOverride,
    ];
}

/// A `sched_op` sub-command number that Xen does not define.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnknownSchedOp(pub u32);

impl fmt::Display for UnknownSchedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown sched_op command {}", self.0)
    }
}

impl core::error::Error for UnknownSchedOp {}

impl TryFrom<u32> for SchedOp {
    type Error = UnknownSchedOp;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Ok(match value {
            0 => SchedOp::Yield,
            1 => SchedOp::Block,
            2 => SchedOp::Shutdown,
            3 => SchedOp::Poll,
            4 => SchedOp::RemoteShutdown,
            5 => SchedOp::ShutdownCode,
            6 => SchedOp::Watchdog,
            7 => SchedOp::PinOverride,
            _ => return Err(UnknownSchedOp(value)),
        })
    }
}

/// `SCHEDOP_yield`.
pub const SCHEDOP_YIELD: u32 = SchedOp::Yield as u32;
/// `SCHEDOP_block`.
pub const SCHEDOP_BLOCK: u32 = SchedOp::Block as u32;
/// `SCHEDOP_shutdown`.
pub const SCHEDOP_SHUTDOWN: u32 = SchedOp::Shutdown as u32;
/// `SCHEDOP_poll`.
pub const SCHEDOP_POLL: u32 = SchedOp::Poll as u32;
/// `SCHEDOP_remote_shutdown`.
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = SchedOp::RemoteShutdown as u32;
/// `SCHEDOP_shutdown_code`.
pub const SCHEDOP_SHUTDOWN_CODE: u32 = SchedOp::ShutdownCode as u32;
/// `SCHEDOP_watchdog`.
pub const SCHEDOP_WATCHDOG: u32 = SchedOp::Watchdog as u32;
/// `SCHEDOP_pin_override`.
pub const SCHEDOP_PIN_OVERRIDE: u32 = SchedOp::PinOverride as u32;

/// Why a domain shuts down (`SHUTDOWN_*`, `enum sched_shutdown_reason`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShutdownReason {
    /// `SHUTDOWN_poweroff` (0): exited normally; clean up and kill.
    Poweroff = 0,
    /// `SHUTDOWN_reboot` (1): clean up, kill, and restart.
    Reboot = 1,
    /// `SHUTDOWN_suspend` (2): clean up, save suspend info, kill.
    Suspend = 2,
    /// `SHUTDOWN_crash` (3): the domain crashed.
    Crash = 3,
    /// `SHUTDOWN_watchdog` (4): restart because a watchdog expired.
    Watchdog = 4,
    /// `SHUTDOWN_soft_reset` (5): reset hypervisor state for the domain but
    /// keep its memory and vCPU contexts.
    SoftReset = 5,
}

impl ShutdownReason {
    /// Every reason, in number order.
    pub const ALL: [ShutdownReason; 6] = [
        ShutdownReason::Poweroff,
        ShutdownReason::Reboot,
        ShutdownReason::Suspend,
        ShutdownReason::Crash,
        ShutdownReason::Watchdog,
        ShutdownReason::SoftReset,
    ];
}

/// A shutdown reason that Xen does not define.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnknownShutdownReason(pub u32);

impl fmt::Display for UnknownShutdownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown shutdown reason {}", self.0)
    }
}

impl core::error::Error for UnknownShutdownReason {}

impl TryFrom<u32> for ShutdownReason {
    type Error = UnknownShutdownReason;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Ok(match value {
            0 => ShutdownReason::Poweroff,
            1 => ShutdownReason::Reboot,
            2 => ShutdownReason::Suspend,
            3 => ShutdownReason::Crash,
            4 => ShutdownReason::Watchdog,
            5 => ShutdownReason::SoftReset,
            _ => return Err(UnknownShutdownReason(value)),
        })
    }
}

/// `SHUTDOWN_poweroff`.
pub const SHUTDOWN_POWEROFF: u32 = ShutdownReason::Poweroff as u32;
/// `SHUTDOWN_reboot`.
pub const SHUTDOWN_REBOOT: u32 = ShutdownReason::Reboot as u32;
/// `SHUTDOWN_suspend`.
pub const SHUTDOWN_SUSPEND: u32 = ShutdownReason::Suspend as u32;
/// `SHUTDOWN_crash`.
pub const SHUTDOWN_CRASH: u32 = ShutdownReason::Crash as u32;
/// `SHUTDOWN_watchdog`.
pub const SHUTDOWN_WATCHDOG: u32 = ShutdownReason::Watchdog as u32;
/// `SHUTDOWN_soft_reset`.
pub const SHUTDOWN_SOFT_RESET: u32 = ShutdownReason::SoftReset as u32;
/// `SHUTDOWN_MAX`: the largest valid reason.
pub const SHUTDOWN_MAX: u32 = SHUTDOWN_SOFT_RESET;

/// Argument of `SCHEDOP_shutdown` and `SCHEDOP_shutdown_code` (`struct sched_shutdown`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SchedShutdown {
    /// A [`ShutdownReason`] value.
    pub reason: u32,
}

const _: () = assert!(core::mem::size_of::<SchedShutdown>() == 4);

/// Argument of `SCHEDOP_poll` (`struct sched_poll`, 24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SchedPoll {
    /// Guest pointer to an array of `nr_ports` event channel ports (u32 each).
    pub ports: u64,
    /// Number of ports in the array.
    pub nr_ports: u32,
    /// Padding (implicit in C), zero.
    pub _pad: u32,
    /// Absolute system time (ns) to give up at; 0 means no timeout.
    pub timeout: u64,
}

const _: () = assert!(core::mem::size_of::<SchedPoll>() == 24);

/// Argument of `SCHEDOP_remote_shutdown` (`struct sched_remote_shutdown`, 8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SchedRemoteShutdown {
    /// Domain to shut down.
    pub domain_id: u16,
    /// Padding (implicit in C), zero.
    pub _pad: u16,
    /// A [`ShutdownReason`] value.
    pub reason: u32,
}

const _: () = assert!(core::mem::size_of::<SchedRemoteShutdown>() == 8);

/// Argument of `SCHEDOP_watchdog` (`struct sched_watchdog`).
///
/// `id == 0` creates a watchdog and returns its id; with `id != 0`, a
/// `timeout` of 0 destroys it and any other value pokes it with a new timeout
/// (seconds).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SchedWatchdog {
    /// Watchdog id.
    pub id: u32,
    /// Timeout in seconds.
    pub timeout: u32,
}

const _: () = assert!(core::mem::size_of::<SchedWatchdog>() == 8);

/// Argument of `SCHEDOP_pin_override` (`struct sched_pin_override`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SchedPinOverride {
    /// Physical CPU to pin to; negative undoes a previous override.
    pub pcpu: i32,
}

const _: () = assert!(core::mem::size_of::<SchedPinOverride>() == 4);
