//! `sched_op`: yield and shutdown (block and poll arrive with event channels).

use super::Platform;
use crate::guest_access::read_guest;
use hypercall_abi::errno::Errno;
use hypercall_abi::sched::{SchedOp, SchedShutdown, ShutdownReason};

pub(super) fn sched_op(p: &mut impl Platform, cmd: u32, arg: u64) -> Result<i64, Errno> {
    match SchedOp::try_from(cmd).map_err(|_| Errno::ENOSYS)? {
        SchedOp::Yield => {
            p.yield_cpu();
            Ok(0)
        }
        SchedOp::Shutdown => {
            let s: SchedShutdown = read_guest(p, arg)?;
            let reason = ShutdownReason::try_from(s.reason).map_err(|_| Errno::EINVAL)?;
            match reason {
                ShutdownReason::Poweroff | ShutdownReason::Reboot | ShutdownReason::Crash | ShutdownReason::Watchdog => {
                    p.shutdown(reason);
                    Ok(0)
                }
                // Suspend and soft reset need save/restore support that does not exist yet.
                _ => Err(Errno::EOPNOTSUPP),
            }
        }
        SchedOp::RemoteShutdown => super::domctl::remote_shutdown(p, arg),
        SchedOp::Block => {
            p.block();
            Ok(0)
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
}
