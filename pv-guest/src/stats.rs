//! Sample statistics for benchmarks (portable, host-tested).
#![forbid(unsafe_code)]

/// The median of `samples` (sorting them in place); the lower middle value for an even count,
/// `None` when empty. The lower middle keeps the result an observed sample.
pub fn median(samples: &mut [u32]) -> Option<u32> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    Some(samples[(samples.len() - 1) / 2])
}

/// The `pct`th percentile of `samples` (sorting them in place) by the nearest-rank method:
/// the smallest sample with at least `pct`% of all samples at or below it, so the result is
/// always an observed sample (the 50th is [`median`]'s lower middle). `None` when empty or
/// when `pct` is 0 or above 100.
pub fn percentile<T: Ord + Copy>(samples: &mut [T], pct: u32) -> Option<T> {
    if samples.is_empty() || pct == 0 || pct > 100 {
        return None;
    }
    samples.sort_unstable();
    let n = samples.len() as u64;
    let rank = (u64::from(pct) * n).div_ceil(100); // 1-based, 1..=n
    Some(samples[(rank - 1) as usize])
}

/// Saturates a cycle difference into a `u32` sample (a preempted sample can be huge).
pub fn sample(start: u64, end: u64) -> u32 {
    u32::try_from(end.wrapping_sub(start)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [7]), Some(7));
        assert_eq!(median(&mut [9, 1, 5]), Some(5));
        assert_eq!(median(&mut [4, 1, 3, 2]), Some(2));
        assert_eq!(median(&mut [u32::MAX, 0, u32::MAX]), Some(u32::MAX));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(percentile::<u32>(&mut [], 50), None);
        assert_eq!(percentile(&mut [3u32], 0), None);
        assert_eq!(percentile(&mut [3u32], 101), None);
        assert_eq!(percentile(&mut [3u32], 99), Some(3));
        // 1..=400 shuffled: p50 is the 200th value, p99 the 396th, p100 the largest.
        // 7 is coprime to 400: i -> 7i mod 400 is a permutation of 0..400.
        let mut v: [i64; 400] = core::array::from_fn(|i| ((i * 7) % 400) as i64 + 1);
        assert_eq!(percentile(&mut v, 50), Some(200));
        assert_eq!(percentile(&mut v, 99), Some(396));
        assert_eq!(percentile(&mut v, 100), Some(400));
        assert_eq!(percentile(&mut v, 1), Some(4));
        // Agrees with the median's lower middle for odd and even counts.
        for n in 1..=9u32 {
            let mut a: [u32; 9] = [9, 2, 7, 4, 5, 6, 3, 8, 1];
            let mut b = a;
            assert_eq!(
                percentile(&mut a[..n as usize], 50),
                median(&mut b[..n as usize])
            );
        }
        // Signed samples (a wake-up before its deadline is negative).
        assert_eq!(percentile(&mut [-5i64, 10, 0], 50), Some(0));
        assert_eq!(percentile(&mut [-5i64, 10, 0], 1), Some(-5));
    }

    #[test]
    fn sample_saturates() {
        assert_eq!(sample(100, 150), 50);
        assert_eq!(sample(0, u64::from(u32::MAX) + 10), u32::MAX);
        // A counter that went backwards (migrated vCPU) gives a huge value, not a panic.
        assert_eq!(sample(10, 5), u32::MAX);
    }
}
