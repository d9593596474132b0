//! `xen_version`: version, build facts and features. Every output byte is initialised:
//! strings are copied into zeroed buffers of the ABI's full size.
#![forbid(unsafe_code)]

use super::Platform;
use crate::guest_access::{read_guest, write_guest};
use hypercall_abi::errno::Errno;
use hypercall_abi::layout::HYPERVISOR_VIRT_START;
use hypercall_abi::version::*;

/// The text after "major.minor" in the version string.
pub const EXTRAVERSION: &str = "-mk0.1.0";
/// What a guest of this hypervisor can be.
pub const CAPABILITIES: &str = "xen-3.0-x86_64 ";

/// Copies `s` into a zeroed `[u8; N]`, always leaving a terminating NUL.
pub fn fixed<const N: usize>(s: &str) -> [u8; N] {
    let mut b = [0u8; N];
    for (d, &c) in b.iter_mut().take(N.saturating_sub(1)).zip(s.as_bytes()) {
        *d = c;
    }
    b
}

pub(super) fn xen_version(p: &mut impl Platform, cmd: u32, arg: u64) -> Result<i64, Errno> {
    if let Some(answer) = constant_answer(cmd) {
        return Ok(answer);
    }
    let op = XenVersionOp::try_from(cmd).map_err(|_| Errno::ENOSYS)?;
    xen_version_out(p, op, arg)
}

/// The answer of the `xen_version` sub-ops that need no buffer and no state (`version`,
/// the null hypercall guests and the benchmark use, and `pagesize`): the same for every
/// caller, so the machine may give it without taking its lock.
pub fn constant_answer(cmd: u32) -> Option<i64> {
    match XenVersionOp::try_from(cmd) {
        Ok(XenVersionOp::Version) => Some(((XEN_VERSION_MAJOR << 16) | XEN_VERSION_MINOR) as i64),
        Ok(XenVersionOp::Pagesize) => Some(4096),
        _ => None,
    }
}

/// The sub-ops that fill a buffer: out of line, so their 1 KiB buffers stay off the path of
/// the null hypercall.
#[inline(never)]
fn xen_version_out(p: &mut impl Platform, op: XenVersionOp, arg: u64) -> Result<i64, Errno> {
    match op {
        XenVersionOp::Version | XenVersionOp::Pagesize => unreachable!("answered inline"),
        XenVersionOp::Extraversion => {
            write_guest(p, arg, &fixed::<16>(EXTRAVERSION))?;
            Ok(0)
        }
        XenVersionOp::CompileInfo => {
            let f = p.build_facts();
            let info = XenCompileInfo {
                compiler: fixed(f.compiler),
                compile_by: fixed("xtask"),
                compile_domain: fixed("local"),
                compile_date: fixed(f.date),
            };
            write_guest(p, arg, &info)?;
            Ok(0)
        }
        XenVersionOp::Capabilities => {
            write_guest(p, arg, &fixed::<1024>(CAPABILITIES))?;
            Ok(0)
        }
        XenVersionOp::Changeset => {
            let c = p.build_facts().changeset;
            write_guest(p, arg, &fixed::<64>(c))?;
            Ok(0)
        }
        XenVersionOp::PlatformParameters => {
            write_guest(p, arg, &XenPlatformParameters { virt_start: HYPERVISOR_VIRT_START })?;
            Ok(0)
        }
        XenVersionOp::GetFeatures => {
            let mut fi: XenFeatureInfo = read_guest(p, arg)?;
            if fi.submap_idx >= XENFEAT_NR_SUBMAPS {
                return Err(Errno::EINVAL);
            }
            // What is offered, as Xen 4.19's list for a PV guest goes (`XENVER_get_features`):
            // `mmu_pt_update_preserve_ad`, `highmem_assist` (`MMUEXT_clear_page` and
            // `copy_page`), `gnttab_map_avail_bits` (Linux panics without it),
            // `direct_mapped` (not translated), dom0's flag, and `pae_pgdir_above_4gb` while
            // the `pae_extended_cr3` assist is on. Xen's `memory_op_vnode_supported`,
            // `runstate_phys_area`, `vcpu_time_phys_area` and `dm_msix_all_writes` name
            // operations this hypervisor does not have, so they are not offered.
            let dom0 = if p.caller().privileged { 1 << XENFEAT_DOM0 } else { 0 };
            let assist = crate::hypercall::mm::with_mm(p, |mm| mm.dom.vm_assist()).unwrap_or(0);
            let pae = if assist & (1 << hypercall_abi::arch::VMASST_TYPE_PAE_EXTENDED_CR3) != 0 { 1 << XENFEAT_PAE_PGDIR_ABOVE_4GB } else { 0 };
            fi.submap = (1 << XENFEAT_MMU_PT_UPDATE_PRESERVE_AD)
                | (1 << XENFEAT_HIGHMEM_ASSIST)
                | (1 << XENFEAT_GNTTAB_MAP_AVAIL_BITS)
                | (1 << XENFEAT_DIRECT_MAPPED)
                | pae
                | dom0;
            write_guest(p, arg, &fi)?;
            Ok(0)
        }
        XenVersionOp::GuestHandle => {
            write_guest(p, arg, &[0u8; 16])?;
            Ok(0)
        }
        XenVersionOp::Commandline => {
            if !p.caller().privileged {
                return Err(Errno::EPERM);
            }
            let mut b = [0u8; 1024];
            for (d, &c) in b.iter_mut().take(1023).zip(p.command_line()) {
                *d = c;
            }
            write_guest(p, arg, &b)?;
            Ok(0)
        }
        XenVersionOp::BuildId => Err(Errno::ENODATA),
    }
}

#[cfg(test)]
mod tests {
    use super::super::dispatch;
    use super::constant_answer;
    use super::super::fake::*;
    use hypercall_abi::errno::Errno;

    const XEN_VERSION: u64 = 17;

    #[test]
    fn version_number_and_strings() {
        let mut p = FakePlatform::new(true);
        assert_eq!(dispatch(&mut p, XEN_VERSION, [0, 0, 0, 0, 0]), (4 << 16) | 19);
        assert_eq!((constant_answer(0), constant_answer(7)), (Some((4 << 16) | 19), Some(4096)));
        assert_eq!((constant_answer(1), constant_answer(6), constant_answer(99)), (None, None, None), "buffers and features are not");
        for (cmd, size, want) in [(1u64, 16usize, &b"-mk0.1.0"[..]), (3, 1024, b"xen-3.0-x86_64 "), (4, 64, b"abc123")] {
            p.mem.fill(0xAA);
            assert_eq!(dispatch(&mut p, XEN_VERSION, [cmd, BASE, 0, 0, 0]), 0);
            assert_eq!(&p.mem[..want.len()], want);
            assert!(p.mem[want.len()..size].iter().all(|&b| b == 0), "sub-op {cmd}: every byte initialised");
            assert_eq!(p.mem[size], 0xAA, "sub-op {cmd} wrote past its buffer");
        }
        p.mem.fill(0xAA);
        assert_eq!(dispatch(&mut p, XEN_VERSION, [2, BASE, 0, 0, 0]), 0);
        assert!(p.mem[..144].iter().all(|&b| b != 0xAA));
        assert_eq!(p.mem[144], 0xAA);
    }

    #[test]
    fn features_parameters_and_privilege() {
        let mut p = FakePlatform::new(true);
        p.mem[..8].fill(0);
        assert_eq!(dispatch(&mut p, XEN_VERSION, [6, BASE, 0, 0, 0]), 0);
        assert_eq!(u32::from_le_bytes(p.mem[4..8].try_into().unwrap()), (1 << 17) | (1 << 11) | (1 << 7) | (1 << 6) | (1 << 5));
        p.mem[0] = 1;
        assert_eq!(dispatch(&mut p, XEN_VERSION, [6, BASE, 0, 0, 0]), Errno::EINVAL.to_ret());
        assert_eq!(dispatch(&mut p, XEN_VERSION, [5, BASE, 0, 0, 0]), 0);
        assert_eq!(u64::from_le_bytes(p.mem[..8].try_into().unwrap()), 0xffff_8000_0000_0000);
        assert_eq!(dispatch(&mut p, XEN_VERSION, [7, 0, 0, 0, 0]), 4096);
        assert_eq!(dispatch(&mut p, XEN_VERSION, [9, BASE, 0, 0, 0]), 0);
        assert_eq!(&p.mem[..13], b"dom0_mem=64M\0");
        assert_eq!(dispatch(&mut p, XEN_VERSION, [99, BASE, 0, 0, 0]), Errno::ENOSYS.to_ret());
        assert_eq!(dispatch(&mut p, XEN_VERSION, [1, 0xffff_8300_0000_0000, 0, 0, 0]), Errno::EFAULT.to_ret());

        let mut u = FakePlatform::new(false);
        assert_eq!(dispatch(&mut u, XEN_VERSION, [9, BASE, 0, 0, 0]), Errno::EPERM.to_ret());
        u.mem[..8].fill(0);
        assert_eq!(dispatch(&mut u, XEN_VERSION, [6, BASE, 0, 0, 0]), 0);
        assert_eq!(&u.mem[4..8], &((1u32 << 5) | (1 << 6) | (1 << 7) | (1 << 17)).to_le_bytes(), "no dom0 flag");
    }
}
