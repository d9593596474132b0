//! Exception handlers through Xen's x86_64 PV trap table (guest target only).
//!
//! [`install`] registers Rust handlers for vectors and hands the hypervisor a trap table
//! (`set_trap_table`) whose entries point at one small entry stub per vector.
//!
//! The contract is Xen's, as Linux's xen-asm uses it. On an exception the hypervisor writes
//! a frame below the guest's rsp (rounded down to 16 bytes) and enters the handler with rsp
//! at it: `rcx, r11, [error code,] rip, cs, rflags, rsp, ss`; the error code is there for
//! vectors 8, 10-14 and 17 ([`has_error_code`]). rcx and r11 hold garbage on entry. The upper
//! 32 bits of the cs slot hold the saved event mask.
//!
//! An entry stub pushes rax and jumps to the common path with the vector in eax; that saves
//! the other general-purpose registers and calls the dispatcher, which runs the registered
//! handler with a [`Trap`]: the vector, the error code and the frame (mutable: to resume
//! after the faulting instruction, advance `frame.rip`). The common path then restores the
//! registers, pops rcx and r11 from the frame, drops the error code, pushes a flags word 0
//! and jumps to the `iret` stub of the hypercall page, which pushes rcx, r11 and rax and
//! does `syscall`: the hypervisor resumes at the frame's rip with every register restored.
//!
//! A trap on a vector without a handler prints a line and crashes the domain. A trap whose
//! frame says user mode (RPL-3 `cs`) goes to [`crate::user`] instead, whatever the vector.

use alloc::vec::Vec;
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicPtr, Ordering};

use hypercall_abi::arch::TrapInfo;
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::{Hypercall, HYPERCALL_STUB_SIZE};
use hypercall_abi::layout::FLAT_KERNEL_CS64;
use hypercall_abi::sched::ShutdownReason;

use crate::hypercall::{check, hypercall_via_page, sched_shutdown};
use crate::println;

/// Bytes between consecutive entry stubs.
const STUB_STRIDE: usize = 16;
/// Number of vectors (and entry stubs).
pub const NR_VECTORS: usize = 256;

/// The part of the exception frame above the error code, as the hypervisor wrote it.
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    /// Where execution resumes: the faulting instruction for faults, the next one for
    /// traps (`int3`, `into`).
    pub rip: u64,
    /// Code selector in bits 0-15; bits 32-39 hold the event mask saved on entry.
    pub cs: u64,
    /// rflags (IF reflects the saved event mask).
    pub rflags: u64,
    /// The interrupted stack pointer.
    pub rsp: u64,
    /// Stack selector.
    pub ss: u64,
}

/// What a handler gets: one delivered exception.
#[derive(Debug)]
pub struct Trap<'a> {
    /// The vector.
    pub vector: u8,
    /// The error code, for vectors that have one ([`has_error_code`]).
    pub error_code: Option<u64>,
    /// The frame; changes to it take effect on return.
    pub frame: &'a mut ExceptionFrame,
}

/// A trap handler. It runs on the interrupted stack, below the frame.
pub type Handler = fn(&mut Trap<'_>);

/// Whether the hypervisor puts an error code in the frame for `vector`
/// (#DF, #TS, #NP, #SS, #GP, #PF, #AC).
pub const fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17)
}

/// The privilege level [`install`] gives `vector`: 3 for #BP and #OF, so that `int3` and
/// `into` work from the guest kernel (ring 3), 0 for everything else, so that `int $n`
/// arrives as #GP.
pub const fn default_dpl(vector: u8) -> u8 {
    match vector {
        3 | 4 => 3,
        _ => 0,
    }
}

/// Registered handlers by vector (null: none).
static HANDLERS: [AtomicPtr<()>; NR_VECTORS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; NR_VECTORS];

// The entry stubs, one per vector, each 16 bytes apart from `pv_guest_trap_stubs`, and the
// common path. The dispatcher returns whether the frame has an error code; `test` sets ZF
// from it, and nothing until the `jz` changes flags (mov and pop do not).
global_asm!(
    concat!(
    r#"
    .section .text.pv_guest_traps, "ax", @progbits
    .balign 16
    .globl pv_guest_trap_stubs
pv_guest_trap_stubs:
    .set pv_guest_trap_vector, 0
    .rept {nr_vectors}
    .balign {stride}
    pushq %rax
    movl $pv_guest_trap_vector, %eax
    jmp pv_guest_trap_common
    .set pv_guest_trap_vector, pv_guest_trap_vector + 1
    .endr

    .balign 16
pv_guest_trap_common:
"#,
    push_regs_after_rax!(),
    r#"
    movq %rsp, %rbp
    movl %eax, %edi
    leaq 13*8(%rsp), %rsi
    andq $-16, %rsp
    cld
    call {dispatch}
    testq %rax, %rax
    movq %rbp, %rsp
"#,
    pop_regs_rax_rcx_r11!(),
    r#"
    jz 2f
    leaq 8(%rsp), %rsp
2:
    pushq $0
    jmp hypercall_page + {iret_offset}
"#
    ),
    nr_vectors = const NR_VECTORS,
    stride = const STUB_STRIDE,
    dispatch = sym dispatch,
    iret_offset = const Hypercall::Iret as usize * HYPERCALL_STUB_SIZE,
    options(att_syntax),
);

unsafe extern "C" {
    /// The first entry stub (vector 0); stub `v` is `STUB_STRIDE * v` bytes further.
    static pv_guest_trap_stubs: [u8; NR_VECTORS * STUB_STRIDE];
}

/// Address of the entry stub for `vector`.
pub fn stub_address(vector: u8) -> u64 {
    ((&raw const pv_guest_trap_stubs) as usize + usize::from(vector) * STUB_STRIDE) as u64
}

/// Called by the common path with the vector and the address of the frame (its rcx slot);
/// runs the handler and returns whether the frame has an error code (nonzero: yes).
extern "C" fn dispatch(vector: u64, frame: *mut u64) -> u64 {
    let vector = vector as u8;
    let has_ec = has_error_code(vector);
    // SAFETY: the hypervisor wrote the frame at `frame`: rcx, r11, the error code when the
    // vector has one, then the five words of `ExceptionFrame`. It lives on the interrupted
    // stack above our own, and nothing else refers to it while the handler runs.
    let (error_code, exception) = unsafe {
        if has_ec {
            (
                Some(*frame.add(2)),
                &mut *frame.add(3).cast::<ExceptionFrame>(),
            )
        } else {
            (None, &mut *frame.add(2).cast::<ExceptionFrame>())
        }
    };
    // From one of the kernel's processes (guest user mode: the frame keeps cs's RPL 3):
    // back to the kernel code that entered it, which decides.
    if exception.cs & 3 == 3 {
        crate::user::exception_from_user(vector, error_code, frame);
    }
    let handler = HANDLERS[usize::from(vector)].load(Ordering::Acquire);
    if handler.is_null() {
        println!(
            "pv-guest: unhandled trap vector {} error {:?} at rip {:#x}",
            vector, error_code, exception.rip
        );
        sched_shutdown(ShutdownReason::Crash);
    }
    // SAFETY: only `install` stores into HANDLERS, and only `Handler` values.
    let handler = unsafe { core::mem::transmute::<*mut (), Handler>(handler) };
    let mut trap = Trap {
        vector,
        error_code,
        frame: exception,
    };
    handler(&mut trap);
    u64::from(has_ec)
}

/// Registers `handler` for each given vector and tells the hypervisor (`set_trap_table`):
/// privilege level [`default_dpl`], events masked on entry, selector `FLAT_KERNEL_CS64`.
/// Vectors not listed keep what they had.
pub fn install(entries: &[(u8, Handler)]) -> Result<(), Errno> {
    let mut table: Vec<TrapInfo> = Vec::with_capacity(entries.len() + 1);
    for &(vector, handler) in entries {
        HANDLERS[usize::from(vector)].store(handler as *mut (), Ordering::Release);
        table.push(TrapInfo::new(
            vector,
            default_dpl(vector),
            true,
            FLAT_KERNEL_CS64,
            stub_address(vector),
        ));
    }
    table.push(TrapInfo::new(0, 0, false, 0, 0));
    // SAFETY: the hypervisor only reads the table, up to and including its terminator.
    let ret = unsafe {
        hypercall_via_page(
            Hypercall::SetTrapTable as u64,
            table.as_ptr() as u64,
            0,
            0,
            0,
            0,
        )
    };
    check(ret).map(|_| ())
}

/// Points the trap-table entries of the given `(vector, dpl)` pairs at their entry stubs
/// without registering a handler: exceptions from user mode ([`crate::user`]) need only
/// the stub; one from the kernel on such a vector finds no handler and crashes the domain.
/// `dpl` decides who may raise the vector with `int $n`: 3 lets user mode, 1 or more the
/// kernel (Xen's `permit_softint`).
pub fn install_entries(entries: &[(u8, u8)]) -> Result<(), Errno> {
    let mut table: Vec<TrapInfo> = entries
        .iter()
        .map(|&(vector, dpl)| TrapInfo::new(vector, dpl, true, FLAT_KERNEL_CS64, stub_address(vector)))
        .collect();
    table.push(TrapInfo::new(0, 0, false, 0, 0));
    // SAFETY: the hypervisor only reads the table, up to and including its terminator.
    let ret = unsafe {
        hypercall_via_page(Hypercall::SetTrapTable as u64, table.as_ptr() as u64, 0, 0, 0, 0)
    };
    check(ret).map(|_| ())
}

/// `mov rax, cr2`: the last page-fault address (the hypervisor emulates the read).
pub fn read_cr2() -> u64 {
    let cr2: u64;
    // SAFETY: reading cr2 has no side effects; in ring 3 it traps and the hypervisor
    // emulates it.
    unsafe { asm!("mov rax, cr2", out("rax") cr2, options(nomem, nostack, preserves_flags)) };
    cr2
}
