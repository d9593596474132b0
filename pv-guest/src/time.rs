//! Cycle counter access (guest target only).

use core::arch::asm;

/// Reads the time-stamp counter after all earlier instructions have completed
/// (`lfence; rdtsc`), so it can time a short sequence.
#[inline(always)]
pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: lfence and rdtsc only read the TSC into edx:eax (rdtsc is allowed in ring 3
    // unless CR4.TSD is set, which the hypervisor does not do for PV guests).
    unsafe {
        asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}
