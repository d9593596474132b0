//! The CMOS real-time clock: read once at boot for the wall clock in `shared_info`.

use super::{inb, outb};
use crate::time::RtcRegisters;

/// Reads CMOS register `reg` (NMI left enabled).
fn cmos(reg: u8) -> u8 {
    outb(0x70, reg & 0x7f);
    inb(0x71)
}

/// Whether an update is in progress (status A bit 7): the time registers may be mid-change.
fn updating() -> bool {
    cmos(0x0a) & 0x80 != 0
}

fn read_once() -> RtcRegisters {
    let mut spins = 0u32;
    while updating() && spins < 1_000_000 {
        spins += 1;
        core::hint::spin_loop();
    }
    RtcRegisters {
        sec: cmos(0x00),
        min: cmos(0x02),
        hour: cmos(0x04),
        day: cmos(0x07),
        month: cmos(0x08),
        year: cmos(0x09),
        century: Some(cmos(0x32)),
        status_b: cmos(0x0b),
    }
}

/// The RTC's registers, read until two reads in a row agree (so no update tore them).
pub fn read() -> RtcRegisters {
    let mut last = read_once();
    for _ in 0..8 {
        let now = read_once();
        if now == last {
            break;
        }
        last = now;
    }
    last
}
