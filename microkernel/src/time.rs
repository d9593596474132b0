//! Time arithmetic shared with guests: Xen's pvclock scale (system time in ns from TSC
//! deltas as `((delta << shift) * mul_frac) >> 32`, with a negative shift meaning a right
//! shift).

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

#[cfg(test)]
mod tests {
    use super::*;

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
