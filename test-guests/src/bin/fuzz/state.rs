//! How the fuzzer survives its own attacks: every faulting action first names a recovery
//! address; the exception handlers (all vectors) and the failsafe callback resume there
//! with the stack the action saved.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use pv_guest::hypercall_abi::callback::CALLBACKTYPE_FAILSAFE;
use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::hypercall_abi::layout::{FLAT_KERNEL_CS64, FLAT_KERNEL_SS64};
use pv_guest::traps::{self, Trap};
use pv_guest::{events, println, ShutdownReason};

/// Where a faulting action resumes (0: no action under way, an exception is a bug).
pub static RECOVER: AtomicU64 = AtomicU64::new(0);
/// The stack pointer to resume with (from the failsafe callback).
pub static SAVED_RSP: AtomicU64 = AtomicU64::new(0);
/// A hostile entry's hypercall result (written where the stack may not be ours).
pub static RESULT: AtomicU64 = AtomicU64::new(0);
/// Exceptions taken and recovered from.
pub static EXCEPTIONS: AtomicU64 = AtomicU64::new(0);
/// Failsafe callbacks taken.
pub static FAILSAFES: AtomicU64 = AtomicU64::new(0);

/// Trap flag, cleared when a single-step trap is taken.
const TF: u64 = 1 << 8;

fn on_exception(t: &mut Trap<'_>) {
    if t.vector == 1 {
        // Single-stepping from a TF the fuzzer set: stop it and go on.
        t.frame.rflags &= !TF;
        EXCEPTIONS.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let to = RECOVER.swap(0, Ordering::AcqRel);
    if to == 0 {
        println!("fuzz: unexpected exception: vector {} error {:?} at rip {:#x}", t.vector, t.error_code, t.frame.rip);
        pv_guest::hypercall::sched_shutdown(ShutdownReason::Crash);
    }
    EXCEPTIONS.fetch_add(1, Ordering::Relaxed);
    t.frame.rip = to;
    // An `iret` may have left a 32-bit or odd selector behind: back to the flat kernel ones
    // (kernel mode: RPL 0 in the frame, as the hypervisor hands it over).
    t.frame.cs = (t.frame.cs & !0xffff) | u64::from(FLAT_KERNEL_CS64 & !3);
    t.frame.ss = u64::from(FLAT_KERNEL_SS64);
    t.frame.rflags &= !(TF | (1 << 10) | (1 << 14) | (1 << 18));
}

/// The vectors with handlers (every exception; 2 and 8 are the hypervisor's own matter).
const VECTORS: [u8; 18] = [0, 1, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20];

// The failsafe callback: back to the saved stack and the recovery address.
global_asm!(
    ".globl fuzz_failsafe",
    "fuzz_failsafe:",
    "    lock incq {failsafes}(%rip)",
    "    movq {saved}(%rip), %rsp",
    "    xorl %eax, %eax",
    "    xchgq %rax, {recover}(%rip)",
    "    jmp *%rax",
    failsafes = sym FAILSAFES,
    saved = sym SAVED_RSP,
    recover = sym RECOVER,
    options(att_syntax)
);

extern "C" {
    fn fuzz_failsafe();
}

/// Installs the handlers and the failsafe callback (again after a call replaced them).
pub fn install() -> Result<(), Errno> {
    let entries: [(u8, traps::Handler); 18] = VECTORS.map(|v| (v, on_exception as traps::Handler));
    traps::install(&entries)?;
    events::register_callback()?;
    let r = events::callback_register_raw(&events::CallbackRegister {
        kind: CALLBACKTYPE_FAILSAFE as u16,
        flags: 0,
        pad: 0,
        address: fuzz_failsafe as *const () as u64,
    });
    pv_guest::hypercall::check(r).map(drop)
}
