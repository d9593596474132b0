//! Guest trap delivery, the portable half: the virtual IDT, callback registrations, the
//! bounce frame written on the guest kernel stack, the `iret` hypercall's frame, and the
//! privilege rule for `int $n`.
//!
//! Everything here follows Xen's x86_64 PV semantics (`pv/traps.c`, `pv/callback.c`,
//! `pv/iret.c`, `create_bounce_frame` in `x86_64/entry.S`) and is pure logic: the machine
//! supplies the interrupted register state and the vCPU's event mask, and gets back the
//! bytes to write to the guest, the register state to enter with and the new mask. Nothing
//! here touches a register or guest memory except through [`crate::guest_access`].
//!
//! A guest kernel runs in hardware ring 3, like Xen's 64-bit PV guests, so "kernel mode" and
//! "user mode" are the vCPU's *guest* mode ([`GuestMode`]), not the CPL.
#![forbid(unsafe_code)]
// Every argument here comes from a guest: no panics on any value.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

mod bounce;
mod callbacks;
pub mod debugreg;
mod failsafe;
mod iret;
mod mode;
mod softint;
mod table;

pub use bounce::{
    create_bounce_frame, event_upcall, exception, syscall_callback, BounceError, BounceFrame,
    BounceRequest, Delivery, EntryState, ExceptionBounce, InterruptedState,
};
pub use debugreg::DebugRegs;
pub use callbacks::{CallbackRegister, CallbackUnregister, Callbacks, CALLBACKF_MASK_EVENTS};
pub use failsafe::{create_failsafe_frame, DataSelectors};
pub use iret::{decode_iret, IretError, IretReturn};
pub use mode::{page_table_base, route_syscall, GsBases, SyscallRoute};
pub use softint::{permit_softint, software_interrupt, SoftInt};
pub use table::{SetTrapTable, TrapTable, TrapTableError, TRAP_TABLE_BATCH};

use hypercall_abi::layout::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};

/// Which half of the guest the vCPU is running: its kernel or one of its user processes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GuestMode {
    /// Guest kernel mode (Xen's `TF_kernel_mode`); every vCPU starts in it.
    #[default]
    Kernel,
    /// Guest user mode: the user page table and user GS base are loaded.
    User,
}

/// `rflags` bits used here (`X86_EFLAGS_*`).
pub mod rflags {
    /// Bit 1, always set (`X86_EFLAGS_MBS`).
    pub const MBS: u64 = 1 << 1;
    /// Trap flag.
    pub const TF: u64 = 1 << 8;
    /// Interrupt enable.
    pub const IF: u64 = 1 << 9;
    /// Direction flag.
    pub const DF: u64 = 1 << 10;
    /// I/O privilege level, bits 12..13.
    pub const IOPL: u64 = 3 << 12;
    /// Nested task.
    pub const NT: u64 = 1 << 14;
    /// Resume flag.
    pub const RF: u64 = 1 << 16;
    /// Virtual-8086 mode.
    pub const VM: u64 = 1 << 17;
    /// Alignment check.
    pub const AC: u64 = 1 << 18;
    /// Every architecturally defined bit (`X86_EFLAGS_ALL`).
    pub const ALL: u64 = 0x003f_7fd5;
}

/// Exception vectors named in this module.
pub mod vector {
    /// Debug.
    pub const DB: u8 = 1;
    /// Non-maskable interrupt.
    pub const NMI: u8 = 2;
    /// Breakpoint (`int3`).
    pub const BP: u8 = 3;
    /// Invalid opcode.
    pub const UD: u8 = 6;
    /// Double fault.
    pub const DF: u8 = 8;
    /// Invalid TSS.
    pub const TS: u8 = 10;
    /// Segment not present.
    pub const NP: u8 = 11;
    /// Stack fault.
    pub const SS: u8 = 12;
    /// General protection.
    pub const GP: u8 = 13;
    /// Page fault.
    pub const PF: u8 = 14;
    /// Alignment check.
    pub const AC: u8 = 17;
    /// Control protection.
    pub const CP: u8 = 21;
    /// VMM communication.
    pub const VC: u8 = 29;
    /// Security exception.
    pub const SX: u8 = 30;
}

/// Exceptions that push an error code (Xen's `X86_EXC_HAVE_EC`).
pub const EXCEPTIONS_WITH_ERROR_CODE: u32 = (1 << vector::DF)
    | (1 << vector::TS)
    | (1 << vector::NP)
    | (1 << vector::SS)
    | (1 << vector::GP)
    | (1 << vector::PF)
    | (1 << vector::AC)
    | (1 << vector::CP)
    | (1 << vector::VC)
    | (1 << vector::SX);

/// Page-fault error code bit: the access came from user mode (`PFEC_user_mode`).
pub const PFEC_USER_MODE: u32 = 1 << 2;

/// The `rflags` a guest handler (exception, event, callback) starts with: the interrupted
/// ones without DF, TF, NT, RF, VM, AC and IOPL, with IF and bit 1 set. DF is cleared as
/// Xen's `create_bounce_frame` does, so that a handler written in C (or Rust) never starts
/// with string instructions running downwards because the interrupted code left DF set.
pub const fn handler_entry_rflags(interrupted: u64) -> u64 {
    (interrupted
        & !(rflags::DF | rflags::AC | rflags::VM | rflags::RF | rflags::NT | rflags::TF | rflags::IOPL))
        | rflags::IF
        | rflags::MBS
}

/// Whether `addr` is canonical with 48-bit virtual addresses.
pub const fn is_canonical(addr: u64) -> bool {
    let top = addr >> 47;
    top == 0 || top == 0x1_ffff
}

/// Whether a guest may name `addr` as code or data of its own: canonical and outside the
/// hypervisor's reserved slice.
pub const fn is_guest_address(addr: u64) -> bool {
    is_canonical(addr) && !(addr >= HYPERVISOR_VIRT_START && addr < HYPERVISOR_VIRT_END)
}

#[cfg(test)]
mod tests;
