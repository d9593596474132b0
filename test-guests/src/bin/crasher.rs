//! crasher: prints `crasher: about to fault`, then executes `ud2` (a plain one, not Xen's
//! forced-emulation prefix `ud2; .ascii "xen"`), which the microkernel answers by killing
//! this domain, and this domain only.
#![no_std]
#![no_main]

use core::arch::asm;

use pv_guest::{println, ShutdownReason, StartInfo};

fn main(_si: &'static StartInfo) -> ShutdownReason {
    println!("crasher: about to fault");
    // SAFETY: `ud2` raises #UD and changes no register or memory; the microkernel stops the
    // domain. The bytes after it are not "xen", so it is not taken for forced emulation.
    unsafe { asm!("ud2", "nop", options(nomem, nostack)) };
    println!("crasher: survived ud2");
    ShutdownReason::Crash
}

pv_guest::entry!(main);
