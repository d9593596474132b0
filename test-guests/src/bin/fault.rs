//! fault: executes one forbidden operation, named by its command line, to check that the
//! microkernel kills the guest (and only the guest) for it; or ends the domain in one of
//! the other ways a guest can, to check that each reaches the runner as its own exit code.
//!
//! Forbidden operations: `cli`, `hlt`, `cr3` (write CR3), `hv-read` (read hypervisor
//! memory), `m2p-write` (write the read-only M2P), `ud2`. Prints `fault: about to <op>`
//! first; if the operation returns, prints `fault: survived <op>` and powers off (the
//! scenario then fails on the missing crash line).
//!
//! Ways to end: `reboot` and `crash` (SCHEDOP_shutdown with that reason), `panic` (a Rust
//! panic: the kit prints `panic: deliberate panic from the fault guest at ...` and shuts
//! down with reason crash), `bad-shutdown` (SCHEDOP_shutdown with the undefined reason 77:
//! prints `fault: shutdown(77) returned <ret>`, then powers off if `ret` is -EINVAL and
//! crashes otherwise).
//!
//! An unknown or missing operation crashes the domain with a message.
#![no_std]
#![no_main]

use core::arch::asm;
use core::ptr;

use pv_guest::hypercall::{hypercall_via_page, sched_shutdown};
use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::hypercall_abi::hypercall::Hypercall;
use pv_guest::hypercall_abi::sched::{SchedShutdown, SCHEDOP_SHUTDOWN};
use pv_guest::{println, start_info, ShutdownReason, StartInfo};

/// A hypervisor text address (supervisor-only for guests).
/// The microkernel's direct map of RAM: present, but supervisor-only.
const HYPERVISOR_DIRECT_MAP: u64 = 0xffff_8300_0000_0000;
/// The read-only M2P guests see.
const RO_M2P_BASE: u64 = 0xffff_8000_0000_0000;

/// A shutdown reason Xen does not define (`SHUTDOWN_MAX` is 5).
const BAD_REASON: u32 = 77;

/// The operations, by command-line name.
const OPS: [&str; 10] = [
    "cli",
    "hlt",
    "cr3",
    "hv-read",
    "m2p-write",
    "ud2",
    "reboot",
    "crash",
    "panic",
    "bad-shutdown",
];

/// Runs `op`. Each operation is a privileged or invalid instruction, or an access to memory
/// the guest may not touch: in ring 3 it raises #GP, #PF or #UD and the microkernel kills the
/// domain. Should one ever return, no Rust-visible state changed: no register is an output,
/// and the write goes to memory Rust does not own.
fn execute(op: &str) {
    match op {
        // SAFETY: see above.
        "cli" => unsafe { asm!("cli", options(nomem, nostack)) },
        // SAFETY: see above.
        "hlt" => unsafe { asm!("hlt", options(nomem, nostack)) },
        // SAFETY: see above; rax is 0 (an input only).
        "cr3" => unsafe { asm!("mov cr3, rax", in("rax") 0u64, options(nostack)) },
        "hv-read" => {
            // SAFETY: see above.
            let v = unsafe { ptr::read_volatile(HYPERVISOR_DIRECT_MAP as *const u64) };
            println!("fault: read {v:#x}");
        }
        // SAFETY: see above.
        "m2p-write" => unsafe { ptr::write_volatile(RO_M2P_BASE as *mut u64, 0) },
        // SAFETY: see above.
        "ud2" => unsafe { asm!("ud2", options(nomem, nostack)) },
        _ => unreachable!("op checked against OPS; main handles the others"),
    }
}

/// SCHEDOP_shutdown with an undefined reason must fail with -EINVAL and change nothing:
/// prints the result, then powers off if it was -EINVAL (crash otherwise).
fn bad_shutdown() -> ShutdownReason {
    let arg = SchedShutdown { reason: BAD_REASON };
    // SAFETY: the hypervisor only reads the `SchedShutdown` we pass.
    let ret = unsafe {
        hypercall_via_page(
            Hypercall::SchedOp as u64,
            u64::from(SCHEDOP_SHUTDOWN),
            (&raw const arg) as u64,
            0,
            0,
            0,
        )
    };
    println!("fault: shutdown({BAD_REASON}) returned {ret}");
    if ret == Errno::EINVAL.to_ret() {
        ShutdownReason::Poweroff
    } else {
        println!("fault: expected {} (EINVAL)", Errno::EINVAL.to_ret());
        ShutdownReason::Crash
    }
}

fn main(si: &'static StartInfo) -> ShutdownReason {
    let cmdline = start_info::cmdline(si);
    let Some(op) = cmdline.split_whitespace().find(|w| OPS.contains(w)) else {
        println!("fault: no operation in cmdline \"{cmdline}\"; want one of {OPS:?}");
        return ShutdownReason::Crash;
    };
    println!("fault: about to {op}");
    match op {
        "reboot" => sched_shutdown(ShutdownReason::Reboot),
        "crash" => sched_shutdown(ShutdownReason::Crash),
        "panic" => panic!("deliberate panic from the fault guest"),
        "bad-shutdown" => return bad_shutdown(),
        _ => execute(op),
    }
    println!("fault: survived {op}");
    ShutdownReason::Poweroff
}

pv_guest::entry!(main);
