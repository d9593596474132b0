//! The hardware debug registers: a vCPU's ([`crate::traps::DebugRegs`]) are loaded while it
//! runs with a breakpoint enabled, and DR7 is cleared when the CPU goes to a vCPU with
//! none, so that no guest's breakpoint fires in another (Xen's `activate_debugregs` and the
//! DR7 handling of its context switch).
//!
//! The guest's DR7 stays loaded while the hypervisor runs, as in Xen: a data breakpoint on
//! guest memory the hypervisor reads or writes for it fires in ring 0 and is dropped
//! (`trap.rs`); #DB has its own IST stack (`idt.rs`), so the one raised on the first
//! instruction of the `syscall` path after a `mov %ss` (CVE-2018-8897) never runs on a
//! stack the guest chose.

use crate::traps::debugreg::{DebugRegs, DR6_DEFAULT, DR7_DEFAULT};
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

/// Whether each CPU's hardware DR7 may have a breakpoint enabled now.
static HW_ACTIVE: [AtomicBool; crate::cpus::MAX_CPUS] = [const { AtomicBool::new(false) }; crate::cpus::MAX_CPUS];

fn write_dr7(v: u64) {
    // SAFETY: DR7 values come from `DebugRegs`, whose rules keep GD clear, I/O breakpoints
    // disabled and reserved bits as the CPU wants them (no #GP); breakpoints it enables
    // can only name guest addresses (checked when DR0..3 were set).
    unsafe { asm!("mov dr7, {}", in(reg) v, options(nomem, nostack, preserves_flags)) }
}

/// Reads DR6 and resets it to its default, as a #DB handler must: the bits that were set,
/// in positive polarity (`dr6 ^ DR6_DEFAULT`).
pub fn take_dr6() -> u64 {
    let v: u64;
    // SAFETY: reading and writing DR6 has no effect on memory; DR7.GD is never set, so the
    // accesses cannot raise #DB; the default value has no reserved upper bits.
    unsafe {
        asm!("mov {}, dr6", out(reg) v, options(nomem, nostack, preserves_flags));
        asm!("mov dr6, {}", in(reg) DR6_DEFAULT, options(nomem, nostack, preserves_flags));
    }
    v ^ DR6_DEFAULT
}

/// Makes the hardware follow `d`, the running vCPU's registers: all of them loaded if it
/// has a breakpoint enabled, else DR7 cleared (when it was not already).
pub fn load(d: &DebugRegs) {
    if d.active() {
        let [a, b, c, e] = d.dr;
        // SAFETY: DR0..3 hold guest addresses only (`DebugRegs::set`), DR6 a 32-bit value
        // with its reserved bits fixed; no memory is touched. DR7 is written last, after
        // the addresses it enables.
        unsafe {
            asm!("mov dr0, {}", in(reg) a, options(nomem, nostack, preserves_flags));
            asm!("mov dr1, {}", in(reg) b, options(nomem, nostack, preserves_flags));
            asm!("mov dr2, {}", in(reg) c, options(nomem, nostack, preserves_flags));
            asm!("mov dr3, {}", in(reg) e, options(nomem, nostack, preserves_flags));
            asm!("mov dr6, {}", in(reg) d.dr6, options(nomem, nostack, preserves_flags));
        }
        write_dr7(d.dr7);
        HW_ACTIVE[super::cpu::this_cpu()].store(true, Ordering::Relaxed);
    } else if HW_ACTIVE[super::cpu::this_cpu()].swap(false, Ordering::Relaxed) {
        write_dr7(DR7_DEFAULT);
    }
}

/// Clears DR7 if a breakpoint is enabled (a debug exception in ring 0 that must not come
/// back: the instruction breakpoint the rules make impossible). Touches no per-CPU data (GS
/// may be the guest's here); the CPU's flag stays set, so the next load clears DR7 again.
pub fn disable() {
    write_dr7(DR7_DEFAULT);
}
