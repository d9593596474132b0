//! The bench guest's exception figures: `int3` in the guest kernel bounced by the
//! microkernel to the guest's own #BP handler and back with the `iret` hypercall, beside the
//! bare hardware round trip for the same instruction (`BENCH_BARE_EXCEPTION_ON`: the
//! microkernel's #BP gate then points at a stub that only does `iretq`).
//!
//! Two handlers are measured: the guest kit's generic path (`traps::install`: entry stub,
//! every register saved, the Rust dispatcher and an empty handler, registers restored, then
//! the `iret` stub), as a porter would use it; and a minimal assembly handler that only pops
//! rcx and r11 from the bounce frame, pushes the `iret` flags word and jumps to the `iret`
//! stub of the hypercall page. The difference is the kit's own cost; the rest is the
//! microkernel's (exception entry, bounce frame, `iret` hypercall, exit by `iretq`).
//! After the bare gate is switched off, one `int3` must reach a counting handler once
//! (`BENCH ERROR` otherwise).

use alloc::format;
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

use pv_guest::hypercall::{self, check, hypercall_via_page};
use pv_guest::hypercall_abi::arch::TrapInfo;
use pv_guest::hypercall_abi::hypercall::{Hypercall, HYPERCALL_STUB_SIZE};
use pv_guest::hypercall_abi::layout::FLAT_KERNEL_CS64;
use pv_guest::hypercall_abi::sysctl::{BENCH_BARE_EXCEPTION_OFF, BENCH_BARE_EXCEPTION_ON};
use pv_guest::println;
use pv_guest::traps::{self, Trap};

use super::measure;

/// #BP.
const VECTOR_BP: u8 = 3;

// The minimal #BP handler. Entered with rsp at Xen's bounce frame `rcx, r11, rip, cs,
// rflags, rsp, ss` (no error code for #BP; rcx and r11 hold garbage, their saved values are
// in the frame). Restoring them and pushing the flags word 0 leaves exactly what the `iret`
// stub expects below its own pushes of rcx, r11 and rax: the hypervisor then resumes after
// the `int3` with every register as it was. `int3` is a trap, so the frame's rip is already
// past the instruction.
global_asm!(
    r#"
    .section .text.bench_int3_minimal, "ax", @progbits
    .balign 16
    .globl bench_int3_minimal
bench_int3_minimal:
    popq %rcx
    popq %r11
    pushq $0
    jmp hypercall_page + {iret_offset}
"#,
    iret_offset = const Hypercall::Iret as usize * HYPERCALL_STUB_SIZE,
    options(att_syntax),
);

unsafe extern "C" {
    /// The minimal #BP handler above (code; never called from Rust).
    fn bench_int3_minimal();
}

/// The kit's handler: nothing to do (the frame already resumes after the `int3`).
fn empty_handler(_trap: &mut Trap<'_>) {}

/// Runs of `counting_handler`.
static COUNTED: AtomicU64 = AtomicU64::new(0);

/// Counts its runs: shows that `BENCH_BARE_EXCEPTION_OFF` gave `int3` back to the guest.
fn counting_handler(_trap: &mut Trap<'_>) {
    COUNTED.fetch_add(1, Ordering::Relaxed);
}

/// After the bare gate is off again, one `int3` must reach the guest's handler once.
fn check_gate_restored() {
    if let Err(e) = traps::install(&[(VECTOR_BP, counting_handler)]) {
        println!("BENCH ERROR set_trap_table (counting #BP handler) failed: {e}");
        return;
    }
    let before = COUNTED.load(Ordering::Relaxed);
    int3();
    let runs = COUNTED.load(Ordering::Relaxed) - before;
    if runs != 1 {
        println!("BENCH ERROR after BENCH_BARE_EXCEPTION_OFF int3 reached the handler {runs} times");
    }
}

/// One `int3` from the guest kernel.
#[inline(always)]
fn int3() {
    // The bounce frame is written below rsp, which the target's disabled red zone leaves
    // free (and `nostack` is not claimed).
    // SAFETY: whichever #BP path is in force (the kit's handler, the minimal one, the bare
    // gate) resumes right after the instruction with every register and flag as it was.
    unsafe { asm!("int3") };
}

/// Points vector 3 at the minimal handler with `set_trap_table` (DPL 3, events masked on
/// entry, as `traps::install` does).
fn install_minimal() -> Result<(), i64> {
    let table = [
        TrapInfo::new(
            VECTOR_BP,
            traps::default_dpl(VECTOR_BP),
            true,
            FLAT_KERNEL_CS64,
            bench_int3_minimal as *const () as u64,
        ),
        TrapInfo::new(0, 0, false, 0, 0),
    ];
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
    check(ret).map(|_| ()).map_err(|_| ret)
}

/// Measures and prints the exception figures.
pub fn run() {
    if let Err(e) = traps::install(&[(VECTOR_BP, empty_handler)]) {
        println!("BENCH ERROR set_trap_table (kit's #BP handler) failed: {e}");
        return;
    }
    let kit = measure(int3);
    let minimal = match install_minimal() {
        Ok(()) => Some(measure(int3)),
        Err(ret) => {
            println!("BENCH ERROR set_trap_table (minimal #BP handler) failed: {ret}");
            None
        }
    };
    // With the bare gate on, int3 never reaches the microkernel's exception entry. If
    // switching it on failed, int3 would be a bounce again: no baseline then.
    let bare = match hypercall::bench_op(BENCH_BARE_EXCEPTION_ON, 0) {
        Ok(_) => {
            let bare = measure(int3);
            match hypercall::bench_op(BENCH_BARE_EXCEPTION_OFF, 0) {
                Ok(_) => check_gate_restored(),
                Err(e) => println!("BENCH ERROR sysctl(BENCH_BARE_EXCEPTION_OFF) failed: {e}"),
            }
            Some(bare)
        }
        Err(e) => {
            println!("BENCH ERROR sysctl(BENCH_BARE_EXCEPTION_ON) failed: {e}");
            None
        }
    };
    let with_base = |v: u32| match bare {
        Some(b) => format!("{v} cycles bare_exception_int3 {b}"),
        None => format!("{v} cycles"),
    };
    println!("BENCH exception_bounce_int3 {}", with_base(kit));
    if let Some(m) = minimal {
        println!("BENCH exception_bounce_int3_minimal {}", with_base(m));
    }
    if let Some(b) = bare {
        println!("BENCH bare_exception_int3 {b} cycles");
    }
}
