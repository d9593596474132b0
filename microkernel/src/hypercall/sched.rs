//! `sched_op`: yield, block, poll and shutdown.
#![forbid(unsafe_code)]

use super::{Handled, Outcome, Platform};
use crate::guest_access::{read_guest, GuestRange};
use hypercall_abi::errno::Errno;
use hypercall_abi::sched::{SchedOp, SchedPoll, SchedShutdown, SchedWatchdog, ShutdownReason};

/// Most ports one `SCHEDOP_poll` may name (Xen's limit).
pub const MAX_POLL_PORTS: usize = 128;

/// `SCHEDOP_poll`: `-EINVAL` past [`MAX_POLL_PORTS`], `-EFAULT` if the array cannot be
/// read; the port checks and the wait are the machine's ([`super::Waiting::poll`]).
fn poll(p: &mut impl Platform, arg: u64) -> Handled {
    let req: SchedPoll = read_guest(p, arg)?;
    let n = req.nr_ports as usize;
    if n > MAX_POLL_PORTS {
        return Err(Errno::EINVAL);
    }
    // Read in small chunks into a vector that is never zero-filled: a poll names one port
    // or a few, and clearing 1 KiB of stack on every poll costs more than the rest of it
    // under emulation.
    let mut ports: heapless::Vec<u32, MAX_POLL_PORTS> = heapless::Vec::new();
    if n > 0 {
        let mut addr = GuestRange::new(req.ports, n as u64 * 4)?.addr();
        let mut chunk = [0u8; 64];
        while ports.len() < n {
            let k = (n - ports.len()).min(chunk.len() / 4);
            let part = chunk.get_mut(..k * 4).ok_or(Errno::EINVAL)?;
            p.copy_from_guest(GuestRange::new(addr, k as u64 * 4)?, part)?;
            for b in part.chunks_exact(4) {
                if let Ok(w) = <[u8; 4]>::try_from(b) {
                    // At most MAX_POLL_PORTS are read: the vector holds them all.
                    let _ = ports.push(u32::from_le_bytes(w));
                }
            }
            addr += k as u64 * 4;
        }
    }
    let sleeps = p.poll(&ports, req.timeout)?;
    Ok(Outcome::rescheduling(0, sleeps))
}

pub(super) fn sched_op(p: &mut impl Platform, cmd: u32, arg: u64) -> Handled {
    let v = Outcome::value;
    match SchedOp::try_from(cmd).map_err(|_| Errno::ENOSYS)? {
        SchedOp::Yield => Ok(Outcome::rescheduling(0, true)),
        SchedOp::Shutdown => {
            let s: SchedShutdown = read_guest(p, arg)?;
            let reason = ShutdownReason::try_from(s.reason).map_err(|_| Errno::EINVAL)?;
            match reason {
                ShutdownReason::Poweroff | ShutdownReason::Reboot | ShutdownReason::Crash | ShutdownReason::Watchdog => {
                    p.shutdown(reason);
                    Ok(v(0))
                }
                // Suspend and soft reset need save/restore support that does not exist yet.
                _ => Err(Errno::EOPNOTSUPP),
            }
        }
        SchedOp::RemoteShutdown => super::domctl::remote_shutdown(p, arg).map(v),
        SchedOp::Block => Ok(Outcome::rescheduling(0, p.block())),
        SchedOp::Poll => poll(p, arg),
        SchedOp::Watchdog => {
            let w: SchedWatchdog = read_guest(p, arg)?;
            p.watchdog(w.id, w.timeout).map(v)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// `sched_op_compat(cmd, arg)`, the pre-3.0.2 form, as Xen's `do_sched_op_compat`: yield,
/// block, and shutdown with the reason in `arg` itself (not a pointer); anything else
/// `ENOSYS`. (Xen takes any reason byte; an unknown one is `EINVAL` here, as for
/// `SCHEDOP_shutdown`.)
pub(super) fn sched_op_compat(p: &mut impl Platform, cmd: u32, arg: u64) -> Handled {
    match SchedOp::try_from(cmd) {
        Ok(SchedOp::Yield) => Ok(Outcome::rescheduling(0, true)),
        Ok(SchedOp::Block) => Ok(Outcome::rescheduling(0, p.block())),
        Ok(SchedOp::Shutdown) => {
            let reason = u32::try_from(arg).ok().and_then(|r| ShutdownReason::try_from(r).ok()).ok_or(Errno::EINVAL)?;
            match reason {
                ShutdownReason::Poweroff | ShutdownReason::Reboot | ShutdownReason::Crash | ShutdownReason::Watchdog => {
                    p.shutdown(reason);
                    Ok(Outcome::value(0))
                }
                _ => Err(Errno::EOPNOTSUPP),
            }
        }
        _ => Err(Errno::ENOSYS),
    }
}

#[cfg(test)]
mod tests {
    use super::super::dispatch;
    use super::super::fake::*;
    use hypercall_abi::errno::Errno;
    use hypercall_abi::sched::ShutdownReason;

    const SCHED_OP: u64 = 29;

    #[test]
    fn yield_and_shutdown() {
        let mut p = FakePlatform::new(true);
        assert_eq!(dispatch(&mut p, SCHED_OP, [0, 0, 0, 0, 0]), 0);
        assert_eq!(p.yields, 1);
        p.mem[..4].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(dispatch(&mut p, SCHED_OP, [2, BASE, 0, 0, 0]), 0);
        assert_eq!(p.shutdown, Some(ShutdownReason::Crash));
    }

    #[test]
    fn bad_shutdown_requests_change_nothing() {
        let mut p = FakePlatform::new(true);
        p.mem[..4].copy_from_slice(&77u32.to_le_bytes());
        assert_eq!(dispatch(&mut p, SCHED_OP, [2, BASE, 0, 0, 0]), Errno::EINVAL.to_ret());
        assert_eq!(dispatch(&mut p, SCHED_OP, [2, 0x10, 0, 0, 0]), Errno::EFAULT.to_ret());
        assert_eq!(dispatch(&mut p, SCHED_OP, [2, 0xffff_8000_0000_0000, 0, 0, 0]), Errno::EFAULT.to_ret());
        p.mem[..4].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(dispatch(&mut p, SCHED_OP, [2, BASE, 0, 0, 0]), Errno::EOPNOTSUPP.to_ret());
        assert_eq!(dispatch(&mut p, SCHED_OP, [99, 0, 0, 0, 0]), Errno::ENOSYS.to_ret());
        assert_eq!(p.shutdown, None);
    }

    /// A `sched_poll` at BASE naming `n` ports at BASE + 64.
    fn poll_arg(p: &mut FakePlatform, ports: &[u32], n: u32, timeout: u64) {
        p.mem[..8].copy_from_slice(&(BASE + 64).to_le_bytes());
        p.mem[8..12].copy_from_slice(&n.to_le_bytes());
        p.mem[16..24].copy_from_slice(&timeout.to_le_bytes());
        for (i, port) in ports.iter().enumerate() {
            p.mem[64 + 4 * i..68 + 4 * i].copy_from_slice(&port.to_le_bytes());
        }
    }

    #[test]
    fn poll_copies_the_ports_and_timeout() {
        let mut p = FakePlatform::new(false);
        poll_arg(&mut p, &[3, 9, 4095], 3, 77);
        assert_eq!(dispatch(&mut p, SCHED_OP, [3, BASE, 0, 0, 0]), 0);
        poll_arg(&mut p, &[], 0, 5);
        assert_eq!(dispatch(&mut p, SCHED_OP, [3, BASE, 0, 0, 0]), 0);
        assert_eq!(p.polls, [(std::vec![3, 9, 4095], 77), (std::vec![], 5)]);
    }

    #[test]
    fn hostile_polls_are_refused() {
        let mut p = FakePlatform::new(false);
        // Too many ports, a port out of range, an array that runs off guest memory, an
        // unreadable argument.
        poll_arg(&mut p, &[1], 129, 0);
        assert_eq!(dispatch(&mut p, SCHED_OP, [3, BASE, 0, 0, 0]), Errno::EINVAL.to_ret());
        poll_arg(&mut p, &[1, 4096], 2, 0);
        assert_eq!(dispatch(&mut p, SCHED_OP, [3, BASE, 0, 0, 0]), Errno::EINVAL.to_ret());
        poll_arg(&mut p, &[1], 128, 0);
        p.mem[..8].copy_from_slice(&(BASE + 0x4000 - 8).to_le_bytes());
        assert_eq!(dispatch(&mut p, SCHED_OP, [3, BASE, 0, 0, 0]), Errno::EFAULT.to_ret());
        assert_eq!(dispatch(&mut p, SCHED_OP, [3, 0x10, 0, 0, 0]), Errno::EFAULT.to_ret());
        assert!(p.polls.is_empty());
    }

    #[test]
    fn watchdog_reads_its_argument_and_reaches_the_domain_s_watchdogs() {
        let mut p = FakePlatform::new(false);
        p.now = 5;
        p.mem[..8].copy_from_slice(&[0, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(dispatch(&mut p, SCHED_OP, [6, BASE, 0, 0, 0]), 1);
        assert_eq!(p.watchdogs.next_deadline(), Some(5 + 3_000_000_000));
        p.mem[..8].copy_from_slice(&[9, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(dispatch(&mut p, SCHED_OP, [6, BASE, 0, 0, 0]), Errno::EINVAL.to_ret());
        assert_eq!(dispatch(&mut p, SCHED_OP, [6, 0xffff_8300_0000_0000, 0, 0, 0]), Errno::EFAULT.to_ret());
    }

    #[test]
    fn sched_op_compat_takes_the_reason_itself() {
        let mut p = FakePlatform::new(false);
        assert_eq!(dispatch(&mut p, 6, [0, 0, 0, 0, 0]), 0);
        assert_eq!(p.yields, 1);
        assert_eq!(dispatch(&mut p, 6, [2, 77, 0, 0, 0]), Errno::EINVAL.to_ret());
        assert_eq!(dispatch(&mut p, 6, [2, 2, 0, 0, 0]), Errno::EOPNOTSUPP.to_ret(), "suspend");
        assert_eq!(dispatch(&mut p, 6, [3, BASE, 0, 0, 0]), Errno::ENOSYS.to_ret(), "poll was never compat");
        assert_eq!(p.shutdown, None);
        assert_eq!(dispatch(&mut p, 6, [2, 3, 0, 0, 0]), 0);
        assert_eq!(p.shutdown, Some(ShutdownReason::Crash));
    }
}
