//! The time-stamp counter: read it, and measure its frequency against the PIT at boot.

use super::{inb, outb};

/// Reads the TSC, ordered after earlier loads.
pub fn rdtsc() -> u64 {
    // SAFETY: lfence and rdtsc have no memory effects; rdtsc is never disabled in ring 0.
    unsafe {
        core::arch::x86_64::_mm_lfence();
        core::arch::x86_64::_rdtsc()
    }
}

/// Measures the TSC frequency in kHz over 10 ms of PIT channel 2.
pub fn calibrate_tsc_khz() -> u64 {
    const PIT_HZ: u64 = 1_193_182;
    const MS: u64 = 10;
    let count = (PIT_HZ * MS / 1000) as u16;
    // Gate channel 2 on, speaker off; mode 0 (interrupt on terminal count), binary.
    outb(0x61, (inb(0x61) & !0x02) | 0x01);
    outb(0x43, 0xb0);
    outb(0x42, (count & 0xff) as u8);
    outb(0x42, (count >> 8) as u8);
    let t0 = rdtsc();
    let mut spins = 0u64;
    while inb(0x61) & 0x20 == 0 {
        spins += 1;
        if spins > 1 << 32 {
            break; // no PIT: fall through to a guess rather than hang the boot
        }
    }
    let t1 = rdtsc();
    let khz = (t1 - t0) / MS;
    if khz == 0 {
        1_000_000
    } else {
        khz
    }
}
