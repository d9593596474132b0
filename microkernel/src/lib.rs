//! The microkernel: a small ring-0 hypervisor that runs Xen-style 64-bit PV guests.
//!
//! Portable logic (boot information, memory accounting, hypercall handlers, time
//! arithmetic) lives in modules that build and are unit-tested on the host. The x86_64 glue
//! lives under [`arch`], and the running system (globals, the boot sequence, dom0's
//! construction) in `kernel`, `start` and `dom0_build`; those three exist only in the
//! kernel build.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod cmdline;
pub mod cpus;
pub mod emulate;
pub mod event;
pub mod guest_access;
pub mod hypercall;
pub mod mm;
pub mod multiboot;
pub mod time;
pub mod runstate;
pub mod sched;
pub mod traps;
pub mod watchdog;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
mod dom0_build;
#[cfg(target_os = "none")]
mod domain;
#[cfg(target_os = "none")]
mod events_machine;
#[cfg(target_os = "none")]
mod grants_machine;
#[cfg(target_os = "none")]
#[cfg(feature = "bench")]
mod kbench;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
mod kernel;
#[cfg(target_os = "none")]
mod mm_machine;
#[cfg(target_os = "none")]
mod start;
