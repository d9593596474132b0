//! Time arithmetic shared with guests: Xen's pvclock scale (system time in ns from TSC
//! deltas as `((delta << shift) * mul_frac) >> 32`, with a negative shift meaning a right
//! shift).
#![forbid(unsafe_code)]

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// A TSC-to-nanoseconds scale in Xen's `vcpu_time_info` form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeScale {
    /// Fraction multiplier (32.32 fixed point, below 1.0 after shifting).
    pub mul_frac: u32,
    /// Binary shift applied to the delta first.
    pub shift: i8,
}

impl TimeScale {
    /// The scale for a counter running at `ticks_per_sec` (Xen's `set_time_scale`).
    pub fn for_frequency(ticks_per_sec: u64) -> Self {
        assert!(ticks_per_sec > 0);
        let mut tps = ticks_per_sec;
        let mut shift: i8 = 0;
        while tps > 2 * NS_PER_SEC {
            tps >>= 1;
            shift -= 1;
        }
        let mut tps32 = tps as u32;
        while tps32 <= NS_PER_SEC as u32 {
            tps32 <<= 1;
            shift += 1;
        }
        let mul_frac = ((NS_PER_SEC << 32) / tps32 as u64) as u32;
        TimeScale { mul_frac, shift }
    }

    /// Converts a tick delta into nanoseconds.
    pub fn ticks_to_ns(&self, delta: u64) -> u64 {
        let d = if self.shift >= 0 { delta << self.shift } else { delta >> (-self.shift) };
        ((d as u128 * self.mul_frac as u128) >> 32) as u64
    }
}

/// A wall-clock time: seconds and nanoseconds since the Unix epoch (what `shared_info`'s
/// `wc_sec`/`wc_sec_hi`/`wc_nsec` hold, for system time zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WallClock {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub sec: u64,
    /// Nanoseconds, below one second.
    pub nsec: u32,
}

impl WallClock {
    /// The wall clock at system time zero, given that it read `now` at system time
    /// `system_ns` (Xen's `do_settime`: `wc = now - system time`).
    pub fn at_system_zero(now_sec: u64, system_ns: u64) -> Self {
        let total = (now_sec as u128 * NS_PER_SEC as u128).saturating_sub(system_ns as u128);
        WallClock { sec: (total / NS_PER_SEC as u128) as u64, nsec: (total % NS_PER_SEC as u128) as u32 }
    }
}

/// The CMOS real-time clock's registers as read (seconds, minutes, hours, day of month,
/// month, year in the century, century if the machine has the register, status B).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcRegisters {
    /// Register 0x00.
    pub sec: u8,
    /// Register 0x02.
    pub min: u8,
    /// Register 0x04 (bit 7: PM in 12-hour mode).
    pub hour: u8,
    /// Register 0x07.
    pub day: u8,
    /// Register 0x08.
    pub month: u8,
    /// Register 0x09.
    pub year: u8,
    /// Register 0x32 (the ACPI FADT's usual century register), if meaningful.
    pub century: Option<u8>,
    /// Register 0x0b: bit 2 set means binary (else BCD), bit 1 set means 24-hour.
    pub status_b: u8,
}

fn from_bcd(v: u8) -> Option<u8> {
    let (hi, lo) = (v >> 4, v & 0xf);
    (hi < 10 && lo < 10).then_some(hi * 10 + lo)
}

/// Days from 1970-01-01 to the given civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp as i64 + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the Unix epoch for what the RTC holds; `None` for a value no RTC would
/// hold (bad BCD, month 13, hour 25...), so a broken clock reads as unknown rather than as
/// a wrong date.
pub fn rtc_to_unix(r: &RtcRegisters) -> Option<u64> {
    let binary = r.status_b & 0x04 != 0;
    let h24 = r.status_b & 0x02 != 0;
    let conv = |v: u8| if binary { Some(v) } else { from_bcd(v) };
    let pm = !h24 && r.hour & 0x80 != 0;
    let sec = conv(r.sec)?;
    let min = conv(r.min)?;
    let mut hour = conv(r.hour & 0x7f)?;
    if !h24 {
        if !(1..=12).contains(&hour) {
            return None;
        }
        hour = (hour % 12) + if pm { 12 } else { 0 };
    }
    let day = conv(r.day)?;
    let month = conv(r.month)?;
    let yy = conv(r.year)?;
    let century = match r.century.map(conv) {
        Some(Some(c)) if (19..=99).contains(&c) => u32::from(c),
        Some(None) => return None,
        // No (or an implausible) century register: the 1970..2069 window.
        _ => {
            if yy < 70 {
                20
            } else {
                19
            }
        }
    };
    if sec > 59 || min > 59 || hour > 23 || !(1..=31).contains(&day) || !(1..=12).contains(&month) || yy > 99 {
        return None;
    }
    let year = i64::from(century * 100 + u32::from(yy));
    let days = days_from_civil(year, u32::from(month), u32::from(day));
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec);
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)] // one per RTC register, in the order the test reads
    fn regs(sec: u8, min: u8, hour: u8, day: u8, month: u8, year: u8, century: Option<u8>, status_b: u8) -> RtcRegisters {
        RtcRegisters { sec, min, hour, day, month, year, century, status_b }
    }

    #[test]
    fn rtc_bcd_24h_reads_as_unix_time() {
        // 2026-11-21 08:05:40 UTC (QEMU's default RTC mode: BCD, 24-hour).
        let r = regs(0x40, 0x05, 0x08, 0x21, 0x11, 0x26, Some(0x20), 0x02);
        assert_eq!(rtc_to_unix(&r), Some(1_795_248_340));
        assert_eq!(rtc_to_unix(&regs(0, 0, 0, 1, 1, 0x70, None, 0x02)), Some(0));
        // Leap day and the end of a year.
        assert_eq!(rtc_to_unix(&regs(0, 0, 0, 0x29, 0x02, 0x24, Some(0x20), 0x02)), Some(1_709_164_800));
        assert_eq!(rtc_to_unix(&regs(0x59, 0x59, 0x23, 0x31, 0x12, 0x99, Some(0x19), 0x02)), Some(946_684_799));
    }

    #[test]
    fn rtc_binary_and_12_hour_modes() {
        let bcd = regs(0x40, 0x05, 0x08, 0x21, 0x11, 0x26, Some(0x20), 0x02);
        let bin = regs(40, 5, 8, 21, 11, 26, Some(20), 0x06);
        assert_eq!(rtc_to_unix(&bin), rtc_to_unix(&bcd));
        // 8 PM in 12-hour BCD is 20:00; 12 AM is midnight, 12 PM noon.
        let pm = regs(0, 0, 0x88, 0x21, 0x11, 0x26, Some(0x20), 0x00);
        let h24 = regs(0, 0, 0x20, 0x21, 0x11, 0x26, Some(0x20), 0x02);
        assert_eq!(rtc_to_unix(&pm), rtc_to_unix(&h24));
        let midnight = regs(0, 0, 0x12, 0x21, 0x11, 0x26, Some(0x20), 0x00);
        let noon = regs(0, 0, 0x92, 0x21, 0x11, 0x26, Some(0x20), 0x00);
        assert_eq!(rtc_to_unix(&noon).unwrap() - rtc_to_unix(&midnight).unwrap(), 12 * 3600);
    }

    #[test]
    fn broken_rtc_values_read_as_unknown() {
        for r in [
            regs(0x60, 0, 0, 1, 1, 0x26, None, 0x02),
            regs(0, 0x5a, 0, 1, 1, 0x26, None, 0x02),
            regs(0, 0, 0x24, 1, 1, 0x26, None, 0x02),
            regs(0, 0, 0, 0x32, 1, 0x26, None, 0x02),
            regs(0, 0, 0, 1, 0x13, 0x26, None, 0x02),
            regs(0, 0, 0, 0, 1, 0x26, None, 0x02),
            regs(0, 0, 0x13, 1, 1, 0x26, None, 0x00),
            regs(0, 0, 0, 1, 1, 0x26, Some(0xff), 0x02),
        ] {
            assert_eq!(rtc_to_unix(&r), None, "{r:?}");
        }
    }

    #[test]
    fn wall_clock_at_system_zero_subtracts_system_time() {
        assert_eq!(WallClock::at_system_zero(100, 2_500_000_000), WallClock { sec: 97, nsec: 500_000_000 });
        assert_eq!(WallClock::at_system_zero(1, 5_000_000_000), WallClock { sec: 0, nsec: 0 });
    }

    #[test]
    fn scale_converts_within_a_part_per_million() {
        for hz in [1_000_000u64, 999_999_999, 1_000_000_000, 2_400_000_000, 3_700_123_456, 5_000_000_000] {
            let s = TimeScale::for_frequency(hz);
            let ns = s.ticks_to_ns(hz); // one second
            let err = ns.abs_diff(NS_PER_SEC);
            assert!(err < 1_000, "{hz} Hz: {ns} ns for one second");
            let ns = s.ticks_to_ns(hz * 3600);
            assert!(ns.abs_diff(3600 * NS_PER_SEC) < 3600 * 1_000, "{hz} Hz: one hour is {ns}");
        }
    }
}
