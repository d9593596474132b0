//! The hypercall instructions: `syscall` with Xen's x86_64 PV register convention (the crate's only unsafe code).
//!
//! A 64-bit PV guest kernel runs in ring 3, so its `syscall` enters the
//! hypervisor. The convention (`arch-x86/xen-x86_64.h`): number in `rax`,
//! arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`; result in `rax`, negative
//! errno on failure ([`crate::Errno::from_ret`]). `syscall` itself overwrites
//! `rcx` and `r11`, and Xen may clobber the argument registers, so every
//! wrapper marks all of `rdi`, `rsi`, `rdx`, `r10`, `r8`, `rcx` and `r11` as
//! clobbered, whatever the number of arguments used. (Calling through the
//! hypercall page instead, `call page + nr * 32`, follows the same
//! convention.)
//!
//! The asm blocks keep Rust's default assumptions that they may read and
//! write any memory (the hypervisor reads and writes through the pointer
//! arguments) and use the stack: on the way back the hypervisor may push an
//! event-callback frame below the guest's `rsp`, so nothing may live in a
//! red zone across the call.
//!
//! # Safety (all functions)
//!
//! The caller must be a PV guest kernel running under this ABI: anywhere
//! else, `syscall` means something else (for example a host system call).
//! Every argument must satisfy the contract of the hypercall `nr` and its
//! sub-command: each argument that the hypercall reads as a guest pointer
//! must be mapped and valid for the length and access (read or write) that
//! the hypercall uses, and must not be used by other code in a way that
//! conflicts with the hypervisor's accesses until the call returns.
//! Hypercalls that change the guest's own state (page tables, trap table,
//! segment bases, callbacks, shutdown) must leave it in a state the rest of
//! the program relies on.

use core::arch::asm;

/// Hypercall `nr` with no arguments.
///
/// # Safety
///
/// Must run in a PV guest kernel, and `nr` must be a hypercall whose
/// contract holds with no arguments (see the [module docs](self)).
#[inline]
pub unsafe fn hypercall0(nr: u64) -> i64 {
    let ret: i64;
    // SAFETY: the caller guarantees we run in a PV guest kernel and that the
    // hypercall's contract holds; all registers the hypervisor or `syscall`
    // may change are declared as outputs or clobbers.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => ret,
            lateout("rdi") _,
            lateout("rsi") _,
            lateout("rdx") _,
            lateout("r10") _,
            lateout("r8") _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// Hypercall `nr` with one argument (`rdi`).
///
/// # Safety
///
/// Must run in a PV guest kernel, and `a1` must satisfy the contract of
/// hypercall `nr`; pointer arguments must be valid for the accesses it makes
/// (see the [module docs](self)).
#[inline]
pub unsafe fn hypercall1(nr: u64, a1: u64) -> i64 {
    let ret: i64;
    // SAFETY: the caller guarantees we run in a PV guest kernel and that the
    // argument satisfies the hypercall's contract; all registers the
    // hypervisor or `syscall` may change are declared.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => ret,
            inlateout("rdi") a1 => _,
            lateout("rsi") _,
            lateout("rdx") _,
            lateout("r10") _,
            lateout("r8") _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// Hypercall `nr` with two arguments (`rdi`, `rsi`).
///
/// # Safety
///
/// Must run in a PV guest kernel, and the arguments must satisfy the
/// contract of hypercall `nr`; pointer arguments must be valid for the
/// accesses it makes (see the [module docs](self)).
#[inline]
pub unsafe fn hypercall2(nr: u64, a1: u64, a2: u64) -> i64 {
    let ret: i64;
    // SAFETY: the caller guarantees we run in a PV guest kernel and that the
    // arguments satisfy the hypercall's contract; all registers the
    // hypervisor or `syscall` may change are declared.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => ret,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            lateout("rdx") _,
            lateout("r10") _,
            lateout("r8") _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// Hypercall `nr` with three arguments (`rdi`, `rsi`, `rdx`).
///
/// # Safety
///
/// Must run in a PV guest kernel, and the arguments must satisfy the
/// contract of hypercall `nr`; pointer arguments must be valid for the
/// accesses it makes (see the [module docs](self)).
#[inline]
pub unsafe fn hypercall3(nr: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: i64;
    // SAFETY: the caller guarantees we run in a PV guest kernel and that the
    // arguments satisfy the hypercall's contract; all registers the
    // hypervisor or `syscall` may change are declared.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => ret,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            lateout("r10") _,
            lateout("r8") _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// Hypercall `nr` with four arguments (`rdi`, `rsi`, `rdx`, `r10`).
///
/// # Safety
///
/// Must run in a PV guest kernel, and the arguments must satisfy the
/// contract of hypercall `nr`; pointer arguments must be valid for the
/// accesses it makes (see the [module docs](self)).
#[inline]
pub unsafe fn hypercall4(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> i64 {
    let ret: i64;
    // SAFETY: the caller guarantees we run in a PV guest kernel and that the
    // arguments satisfy the hypercall's contract; all registers the
    // hypervisor or `syscall` may change are declared.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => ret,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            lateout("r8") _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// Hypercall `nr` with five arguments (`rdi`, `rsi`, `rdx`, `r10`, `r8`).
///
/// # Safety
///
/// Must run in a PV guest kernel, and the arguments must satisfy the
/// contract of hypercall `nr`; pointer arguments must be valid for the
/// accesses it makes (see the [module docs](self)).
#[inline]
pub unsafe fn hypercall5(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let ret: i64;
    // SAFETY: the caller guarantees we run in a PV guest kernel and that the
    // arguments satisfy the hypercall's contract; all registers the
    // hypervisor or `syscall` may change are declared.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => ret,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}
