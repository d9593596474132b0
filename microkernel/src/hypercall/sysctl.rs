//! `sysctl` (privileged, our own layout under Xen's number 35): machine facts for dom0's
//! tools, the audit, and (with the `bench` feature, which only `cargo xtask bench` turns
//! on) the switches for the bare-syscall and bare-exception benchmark entries and the
//! in-kernel benchmark baselines.
#![forbid(unsafe_code)]

use super::Platform;
use crate::guest_access::{read_guest, write_guest};
use hypercall_abi::errno::Errno;
use hypercall_abi::sysctl::*;
#[cfg(feature = "bench")]
use zerocopy::FromBytes;

// Out of line: keeps its buffers and saved registers off the path of the small hypercalls.
#[inline(never)]
pub(super) fn sysctl(p: &mut impl Platform, arg: u64) -> Result<i64, Errno> {
    // Policy before anything else: an unprivileged caller learns nothing, changes nothing.
    if !p.caller().privileged {
        return Err(Errno::EPERM);
    }
    let mut op: Sysctl = read_guest(p, arg)?;
    if op.interface_version != SYSCTL_INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }
    match op.cmd {
        SYSCTL_PHYSINFO => {
            op.write_payload(&p.physinfo());
            write_guest(p, arg, &op)?;
            Ok(0)
        }
        #[cfg(feature = "bench")]
        SYSCTL_BENCH => {
            let (mut b, _) = BenchOp::read_from_prefix(&op.u[..]).map_err(|_| Errno::EINVAL)?;
            b.result = match b.op {
                BENCH_BARE_SYSCALL_ON => {
                    p.set_bare_syscall(true);
                    0
                }
                BENCH_BARE_SYSCALL_OFF => {
                    p.set_bare_syscall(false);
                    0
                }
                BENCH_BARE_EXCEPTION_ON => {
                    p.set_bare_exception(true);
                    0
                }
                BENCH_BARE_EXCEPTION_OFF => {
                    p.set_bare_exception(false);
                    0
                }
                BENCH_DIRECT_PTE_WRITES | BENCH_DIRECT_BUILD | BENCH_KERNEL_VALIDATED_UPDATES | BENCH_KERNEL_MAP_UNMAP_32 => {
                    p.bench_baseline(b.op, b.arg)?
                }
                _ => return Err(Errno::EINVAL),
            };
            op.write_payload(&b);
            write_guest(p, arg, &op)?;
            Ok(0)
        }
        SYSCTL_AUDIT => {
            op.write_payload(&p.audit()?);
            write_guest(p, arg, &op)?;
            Ok(0)
        }
        SYSCTL_MEMSTATS => {
            op.write_payload(&p.memstats()?);
            write_guest(p, arg, &op)?;
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
    use hypercall_abi::sysctl::*;
    use zerocopy::{FromBytes, IntoBytes};

    const SYSCTL: u64 = 35;

    fn put(p: &mut FakePlatform, s: &Sysctl) {
        p.mem[..core::mem::size_of::<Sysctl>()].copy_from_slice(s.as_bytes());
    }

    fn req(cmd: u32) -> Sysctl {
        Sysctl::new(cmd)
    }

    #[test]
    fn physinfo_for_dom0() {
        let mut p = FakePlatform::new(true);
        put(&mut p, &req(SYSCTL_PHYSINFO));
        assert_eq!(dispatch(&mut p, SYSCTL, [BASE, 0, 0, 0, 0]), 0);
        let s = Sysctl::read_from_prefix(&p.mem[..]).unwrap().0;
        let info = PhysInfo::read_from_prefix(&s.u[..]).unwrap().0;
        assert_eq!(info.total_pages, 65536);
        assert_eq!(info.nr_domains, 1);
    }

    #[test]
    fn refusals() {
        let mut u = FakePlatform::new(false);
        put(&mut u, &req(SYSCTL_PHYSINFO));
        let before = u.mem.clone();
        assert_eq!(dispatch(&mut u, SYSCTL, [BASE, 0, 0, 0, 0]), Errno::EPERM.to_ret());
        assert_eq!(u.mem, before, "an unprivileged caller changes nothing");

        let mut p = FakePlatform::new(true);
        let mut s = req(SYSCTL_PHYSINFO);
        s.interface_version = 1;
        put(&mut p, &s);
        assert_eq!(dispatch(&mut p, SYSCTL, [BASE, 0, 0, 0, 0]), Errno::EACCES.to_ret());
        put(&mut p, &req(0x9999));
        assert_eq!(dispatch(&mut p, SYSCTL, [BASE, 0, 0, 0, 0]), Errno::ENOSYS.to_ret());
        assert_eq!(dispatch(&mut p, SYSCTL, [0xffff_8000_0000_0000, 0, 0, 0, 0]), Errno::EFAULT.to_ret());
    }

    #[test]
    #[cfg(not(feature = "bench"))]
    fn no_bench_hooks_without_the_feature() {
        let mut p = FakePlatform::new(true);
        let mut s = req(SYSCTL_BENCH);
        s.u[..4].copy_from_slice(&BENCH_BARE_SYSCALL_ON.to_le_bytes());
        put(&mut p, &s);
        assert_eq!(dispatch(&mut p, SYSCTL, [BASE, 0, 0, 0, 0]), Errno::ENOSYS.to_ret());
        assert!(!p.bare && !p.bare_exception);
    }

    #[test]
    #[cfg(feature = "bench")]
    fn bench_switch() {
        let mut p = FakePlatform::new(true);
        let mut s = req(SYSCTL_BENCH);
        s.u[..4].copy_from_slice(&BENCH_BARE_SYSCALL_ON.to_le_bytes());
        put(&mut p, &s);
        assert_eq!(dispatch(&mut p, SYSCTL, [BASE, 0, 0, 0, 0]), 0);
        assert!(p.bare);
        s.u[..4].copy_from_slice(&BENCH_BARE_SYSCALL_OFF.to_le_bytes());
        put(&mut p, &s);
        assert_eq!(dispatch(&mut p, SYSCTL, [BASE, 0, 0, 0, 0]), 0);
        assert!(!p.bare);
        assert!(!p.bare_exception, "the syscall switch leaves the #BP gate alone");
        s.u[..4].copy_from_slice(&0x7777u32.to_le_bytes());
        put(&mut p, &s);
        assert_eq!(dispatch(&mut p, SYSCTL, [BASE, 0, 0, 0, 0]), Errno::EINVAL.to_ret());
    }

    #[test]
    #[cfg(feature = "bench")]
    fn bare_exception_switch() {
        let mut p = FakePlatform::new(true);
        let mut s = req(SYSCTL_BENCH);
        s.u[..4].copy_from_slice(&BENCH_BARE_EXCEPTION_ON.to_le_bytes());
        put(&mut p, &s);
        assert_eq!(dispatch(&mut p, SYSCTL, [BASE, 0, 0, 0, 0]), 0);
        assert!(p.bare_exception);
        assert!(!p.bare, "the #BP switch leaves the syscall entry alone");
        s.u[..4].copy_from_slice(&BENCH_BARE_EXCEPTION_OFF.to_le_bytes());
        put(&mut p, &s);
        assert_eq!(dispatch(&mut p, SYSCTL, [BASE, 0, 0, 0, 0]), 0);
        assert!(!p.bare_exception);

        // Only dom0: an unprivileged caller cannot turn its own int3 (or anyone's) bare.
        let mut u = FakePlatform::new(false);
        s.u[..4].copy_from_slice(&BENCH_BARE_EXCEPTION_ON.to_le_bytes());
        put(&mut u, &s);
        assert_eq!(dispatch(&mut u, SYSCTL, [BASE, 0, 0, 0, 0]), Errno::EPERM.to_ret());
        assert!(!u.bare_exception);
    }
}
