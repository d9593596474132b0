//! A domain's watchdogs (`SCHEDOP_watchdog`), as Xen's `domain_watchdog`: up to two, each
//! armed for a number of seconds and poked before it runs out; when one does, the
//! domain is shut down with reason `watchdog` and its toolstack acts on it.
#![forbid(unsafe_code)]

use hypercall_abi::errno::Errno;

/// Watchdogs per domain (Xen's `NR_DOMAIN_WATCHDOG_TIMERS`).
pub const NR_WATCHDOGS: usize = 2;

/// One domain's watchdogs: the system time (ns) each runs out at, if it exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Watchdogs {
    deadlines: [Option<u64>; NR_WATCHDOGS],
}

impl Watchdogs {
    /// `SCHEDOP_watchdog { id, timeout }` at system time `now`: `id` 0 creates one (its id,
    /// 1-based, is the result; `ENOSPC` when both exist), otherwise a `timeout` of 0
    /// destroys watchdog `id` and any other pokes it (`EINVAL` for one that does not
    /// exist).
    pub fn op(&mut self, id: u32, timeout: u32, now: u64) -> Result<i64, Errno> {
        let deadline = now.saturating_add(u64::from(timeout).saturating_mul(1_000_000_000));
        if id == 0 {
            let (i, slot) = self.deadlines.iter_mut().enumerate().find(|(_, d)| d.is_none()).ok_or(Errno::ENOSPC)?;
            *slot = Some(deadline);
            return Ok(i as i64 + 1);
        }
        let slot = self.deadlines.get_mut(id as usize - 1).ok_or(Errno::EINVAL)?;
        if slot.is_none() {
            return Err(Errno::EINVAL);
        }
        *slot = (timeout != 0).then_some(deadline);
        Ok(0)
    }

    /// Whether one has run out at `now`.
    pub fn expired(&self, now: u64) -> bool {
        self.deadlines.iter().flatten().any(|&d| d <= now)
    }

    /// When the first one runs out.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.iter().flatten().copied().min()
    }

    /// Stops them all (the domain has stopped).
    pub fn clear(&mut self) {
        self.deadlines = [None; NR_WATCHDOGS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn create_poke_expire_and_destroy_as_xen() {
        let mut w = Watchdogs::default();
        assert_eq!(w.op(0, 10, 0), Ok(1));
        assert_eq!(w.op(0, 5, 0), Ok(2));
        assert_eq!(w.op(0, 5, 0), Err(Errno::ENOSPC));
        assert_eq!(w.next_deadline(), Some(5 * S));
        assert!(!w.expired(5 * S - 1));
        assert!(w.expired(5 * S));
        // Poked: runs out later.
        assert_eq!(w.op(2, 7, 4 * S), Ok(0));
        assert!(!w.expired(10 * S - 1));
        assert!(w.expired(10 * S));
        // Destroyed: gone, its id free again; unknown ids refused.
        assert_eq!(w.op(1, 0, 0), Ok(0));
        assert_eq!(w.op(1, 3, 0), Err(Errno::EINVAL));
        assert_eq!(w.op(3, 3, 0), Err(Errno::EINVAL));
        assert_eq!(w.op(u32::MAX, 3, 0), Err(Errno::EINVAL));
        assert_eq!(w.op(0, u32::MAX, u64::MAX), Ok(1), "a huge timeout saturates");
        w.clear();
        assert_eq!(w.next_deadline(), None);
    }
}
