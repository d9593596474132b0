//! Callback registration numbers (`CALLBACKOP_*` and `CALLBACKTYPE_*` in `callback.h`).
//!
//! Numbers only for now; the argument structs come with the callback work.

/// Register a callback.
pub const CALLBACKOP_REGISTER: u32 = 0;
/// Unregister a callback (not every type can be unregistered).
pub const CALLBACKOP_UNREGISTER: u32 = 1;

/// Event upcall entry point.
pub const CALLBACKTYPE_EVENT: u32 = 0;
/// Failsafe callback, for when the hypervisor cannot restore guest state.
pub const CALLBACKTYPE_FAILSAFE: u32 = 1;
/// `syscall` by a 64-bit guest application.
pub const CALLBACKTYPE_SYSCALL: u32 = 2;
/// Old x86_32 `sysenter` callback; do not use in new code.
pub const CALLBACKTYPE_SYSENTER_DEPRECATED: u32 = 3;
/// NMI delivery.
pub const CALLBACKTYPE_NMI: u32 = 4;
/// `sysenter` by a 32-bit guest application (Intel CPUs).
pub const CALLBACKTYPE_SYSENTER: u32 = 5;
/// `syscall` by a 32-bit guest application (AMD CPUs).
pub const CALLBACKTYPE_SYSCALL32: u32 = 7;
