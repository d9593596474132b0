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
    fn sample_saturates() {
        assert_eq!(sample(100, 150), 50);
        assert_eq!(sample(0, u64::from(u32::MAX) + 10), u32::MAX);
        // A counter that went backwards (migrated vCPU) gives a huge value, not a panic.
        assert_eq!(sample(10, 5), u32::MAX);
    }
}
