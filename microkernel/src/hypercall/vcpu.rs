//! `vcpu_op` (Xen's `do_vcpu_op`, `common/domain.c`): bringing a domain's other vCPUs
//! up (`initialise` with a `vcpu_guest_context`, then `up`), taking them `down`, `is_up`;
//! the per-vCPU timers; the runstate (`get_runstate_info`,
//! `register_runstate_memory_area`) and `register_vcpu_info`.
#![forbid(unsafe_code)]

use super::{Handled, Outcome, Platform};
use crate::guest_access::{read_guest, write_guest, GuestRange};
use hypercall_abi::errno::Errno;
use hypercall_abi::vcpu::*;

/// Where a vCPU is in Xen's bring-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bringup {
    /// No state yet (`VCPUOP_initialise` gives it one).
    Uninitialised,
    /// A state, but down (after `initialise`, or `VCPUOP_down`).
    Down,
    /// Running, blocked or runnable.
    Up,
}

/// The code and stack selectors of a `vcpu_guest_context` (Xen's `arch_set_info_guest`):
/// a selector below the guest kernel's ring is raised to it (RPL 3, Xen's
/// `fixup_guest_code_selector`: Linux gives its `__KERNEL_CS`, 0x10). Besides Xen's
/// rules, a null selector and one of the hypervisor's own entries other than the flat
/// ones (`FLAT_KERNEL_CS`, `FLAT_KERNEL_SS`) are refused (`EINVAL`): a guest could only
/// fault on them.
pub fn context_selectors(cs: u16, ss: u16) -> Result<(u16, u16), Errno> {
    use hypercall_abi::layout::{FLAT_KERNEL_CS, FLAT_KERNEL_SS};
    let fix = |sel: u16, flat: u16| {
        let sel = if sel & 3 < 3 { (sel & !3) | 3 } else { sel };
        let guest_table = sel & 4 != 0 || u32::from(sel >> 3) < crate::mm::descriptor::FIRST_RESERVED_GDT_ENTRY;
        if sel >> 2 == 0 || !(guest_table || sel == flat) {
            return Err(Errno::EINVAL);
        }
        Ok(sel)
    };
    Ok((fix(cs, FLAT_KERNEL_CS)?, fix(ss, FLAT_KERNEL_SS)?))
}

/// Xen's rules for `initialise`: a vCPU with a state already is `EEXIST`.
pub fn check_initialise(states: &[Bringup], v: usize) -> Result<(), Errno> {
    match states.get(v) {
        None => Err(Errno::ENOENT),
        Some(Bringup::Uninitialised) => Ok(()),
        Some(_) => Err(Errno::EEXIST),
    }
}

/// Xen's rules for `up`: a vCPU with no state is `EINVAL`; whether it changes.
pub fn check_up(states: &[Bringup], v: usize) -> Result<bool, Errno> {
    match states.get(v) {
        None => Err(Errno::ENOENT),
        Some(Bringup::Uninitialised) => Err(Errno::EINVAL),
        Some(Bringup::Down) => Ok(true),
        Some(Bringup::Up) => Ok(false),
    }
}

/// Xen's rules for `down`: the domain's last vCPU up cannot go down (`EINVAL`); whether it
/// changes.
pub fn check_down(states: &[Bringup], v: usize) -> Result<bool, Errno> {
    let s = *states.get(v).ok_or(Errno::ENOENT)?;
    if !states.iter().enumerate().any(|(k, &o)| k != v && o == Bringup::Up) {
        return Err(Errno::EINVAL);
    }
    Ok(s == Bringup::Up)
}

/// Longest timer period accepted (Xen's `STIME_DELTA_MAX`, about 146 years).
const STIME_DELTA_MAX: u64 = 1 << 62;

pub(super) fn vcpu_op(p: &mut impl Platform, cmd: u32, vcpu: u32, arg: u64) -> Handled {
    let (current, count) = p.vcpu_ids();
    if vcpu >= count {
        return Err(Errno::ENOENT);
    }
    let r = match cmd {
        VCPUOP_IS_UP => Ok(i64::from(p.vcpu_is_up(vcpu))),
        VCPUOP_INITIALISE => {
            // `struct vcpu_guest_context` (5168 bytes), copied whole before anything changes.
            let mut ctxt = alloc::boxed::Box::new(<hypercall_abi::arch::VcpuGuestContext as zerocopy::FromZeros>::new_zeroed());
            let r = GuestRange::new(arg, core::mem::size_of::<hypercall_abi::arch::VcpuGuestContext>() as u64)?;
            p.copy_from_guest(r, zerocopy::IntoBytes::as_mut_bytes(&mut *ctxt))?;
            p.initialise_vcpu(vcpu, &ctxt)?;
            Ok(0)
        }
        VCPUOP_UP => p.vcpu_up(vcpu).map(|()| 0),
        // Going down itself, the caller gives up the CPU.
        VCPUOP_DOWN => return p.vcpu_down(vcpu).map(|itself| Outcome::rescheduling(0, itself)),
        VCPUOP_SET_PERIODIC_TIMER | VCPUOP_STOP_PERIODIC_TIMER | VCPUOP_SET_SINGLESHOT_TIMER
        | VCPUOP_STOP_SINGLESHOT_TIMER
            if vcpu != current =>
        {
            // Xen allows the periodic timer of another vCPU of the domain; with one
            // running vCPU per domain here, only the caller's own timers are offered.
            Err(Errno::EINVAL)
        }
        VCPUOP_SET_PERIODIC_TIMER => {
            let set: VcpuSetPeriodicTimer = read_guest(p, arg)?;
            if !(MIN_PERIODIC_NS..=STIME_DELTA_MAX).contains(&set.period_ns) {
                return Err(Errno::EINVAL);
            }
            p.set_periodic_timer(set.period_ns);
            Ok(0)
        }
        VCPUOP_STOP_PERIODIC_TIMER => {
            p.set_periodic_timer(0);
            Ok(0)
        }
        VCPUOP_SET_SINGLESHOT_TIMER => {
            let set: VcpuSetSingleshotTimer = read_guest(p, arg)?;
            if set.flags & VCPU_SSHOTTMR_FUTURE != 0 && set.timeout_abs_ns < p.now_ns() {
                return Err(Errno::ETIME);
            }
            p.set_timer(set.timeout_abs_ns);
            Ok(0)
        }
        VCPUOP_STOP_SINGLESHOT_TIMER => {
            p.set_timer(0);
            Ok(0)
        }
        VCPUOP_GET_PHYSID => {
            // As Xen: the control domain only (`EINVAL` otherwise); the vCPU runs on
            // physical CPU 0, whose APIC and ACPI ids are 0 here (one CPU).
            if !p.caller().privileged {
                return Err(Errno::EINVAL);
            }
            write_guest(p, arg, &0u64)?;
            Ok(0)
        }
        VCPUOP_GET_RUNSTATE_INFO => {
            let info = p.runstate(vcpu)?;
            write_guest(p, arg, &info)?;
            Ok(0)
        }
        VCPUOP_REGISTER_VCPU_INFO => {
            // `struct vcpu_register_vcpu_info { u64 mfn; u32 offset; u32 rsvd; }`, as Xen's
            // `map_vcpu_info`: the 64-byte vcpu_info must fit in the page at an 8-byte
            // aligned offset (`ENXIO`); the rest is the machine's (`EINVAL`).
            let [mfn, word]: [u64; 2] = read_guest(p, arg)?;
            let offset = word as u32;
            if u64::from(offset) > 4096 - 64 || !offset.is_multiple_of(8) {
                return Err(Errno::ENXIO);
            }
            p.register_vcpu_info(vcpu, mfn, offset)?;
            Ok(0)
        }
        VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA => {
            // `struct vcpu_register_runstate_memory_area { union { handle; u64 p; } addr; }`:
            // a guest virtual address, written at every change from now on (0: none).
            let addr: u64 = read_guest(p, arg)?;
            p.register_runstate_area(vcpu, addr)?;
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    };
    r.map(Outcome::value)
}

#[cfg(test)]
mod selector_tests {
    use super::context_selectors;
    use hypercall_abi::errno::Errno;
    use hypercall_abi::layout::{FLAT_KERNEL_CS, FLAT_KERNEL_SS};

    #[test]
    fn a_contexts_selectors_are_raised_to_ring_3_as_xen_does() {
        assert_eq!(context_selectors(FLAT_KERNEL_CS, FLAT_KERNEL_SS), Ok((FLAT_KERNEL_CS, FLAT_KERNEL_SS)));
        // Linux's __KERNEL_CS and __KERNEL_DS, from its own GDT.
        assert_eq!(context_selectors(0x10, 0x18), Ok((0x13, 0x1b)));
        assert_eq!(context_selectors(0x11, 0x1a), Ok((0x13, 0x1b)));
        // An LDT selector is the guest's too.
        assert_eq!(context_selectors(0x0f, 0x17), Ok((0x0f, 0x17)));
        // The flat selectors with a lower RPL are the flat selectors.
        assert_eq!(context_selectors(FLAT_KERNEL_CS & !3, FLAT_KERNEL_SS & !3), Ok((FLAT_KERNEL_CS, FLAT_KERNEL_SS)));
    }

    #[test]
    fn null_and_hypervisor_selectors_are_refused() {
        assert_eq!(context_selectors(0, FLAT_KERNEL_SS), Err(Errno::EINVAL));
        assert_eq!(context_selectors(FLAT_KERNEL_CS, 3), Err(Errno::EINVAL));
        // The hypervisor's ring-0 code and data, and its 32-bit ring-3 code.
        assert_eq!(context_selectors(0xe008, FLAT_KERNEL_SS), Err(Errno::EINVAL));
        assert_eq!(context_selectors(FLAT_KERNEL_CS, 0xe010), Err(Errno::EINVAL));
        assert_eq!(context_selectors(0xe023, FLAT_KERNEL_SS), Err(Errno::EINVAL));
        // The flat code selector is no stack selector, nor the reverse.
        assert_eq!(context_selectors(FLAT_KERNEL_SS, FLAT_KERNEL_CS), Err(Errno::EINVAL));
    }
}

#[cfg(test)]
mod tests {
    use super::super::dispatch;
    use super::super::fake::*;
    use hypercall_abi::errno::Errno;
    use hypercall_abi::vcpu::*;
    use zerocopy::FromBytes;

    const VCPU_OP: u64 = 24;

    fn put(p: &mut FakePlatform, bytes: &[u8]) {
        p.mem[..bytes.len()].copy_from_slice(bytes);
    }

    #[test]
    fn secondary_vcpus_come_up_as_xens_do() {
        use hypercall_abi::arch::VcpuGuestContext;
        use zerocopy::{FromZeros, IntoBytes};
        let mut p = FakePlatform::new(false);
        let mut ctxt = VcpuGuestContext::new_zeroed();
        ctxt.user_regs.rip = 0x40_1000;
        put(&mut p, ctxt.as_bytes());
        // Up before it has a state: EINVAL; initialise, then it is still down.
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_UP as u64, 1, 0, 0, 0]), Errno::EINVAL.to_ret());
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_INITIALISE as u64, 1, BASE, 0, 0]), 0);
        assert_eq!(p.initialised, [(1, 0x40_1000)]);
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_IS_UP as u64, 1, 0, 0, 0]), 0);
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_INITIALISE as u64, 1, BASE, 0, 0]), Errno::EEXIST.to_ret());
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_INITIALISE as u64, 0, BASE, 0, 0]), Errno::EEXIST.to_ret());
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_UP as u64, 1, 0, 0, 0]), 0);
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_IS_UP as u64, 1, 0, 0, 0]), 1);
        // Down and up again; the last vCPU up cannot go down.
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_DOWN as u64, 0, 0, 0, 0]), 0);
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_DOWN as u64, 1, 0, 0, 0]), Errno::EINVAL.to_ret());
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_UP as u64, 0, 0, 0, 0]), 0);
        // Past the domain's vCPUs, and a context that cannot be read.
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_INITIALISE as u64, 2, BASE, 0, 0]), Errno::ENOENT.to_ret());
        let mut q = FakePlatform::new(false);
        assert_eq!(dispatch(&mut q, VCPU_OP, [VCPUOP_INITIALISE as u64, 1, 0xdead_0000, 0, 0]), Errno::EFAULT.to_ret());
        assert!(q.initialised.is_empty());
    }

    #[test]
    fn singleshot_timer_set_and_stop() {
        let mut p = FakePlatform::new(false);
        let mut arg = [0u8; 16];
        arg[..8].copy_from_slice(&2_000_000_000u64.to_le_bytes());
        arg[8..12].copy_from_slice(&VCPU_SSHOTTMR_FUTURE.to_le_bytes());
        put(&mut p, &arg);
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_SET_SINGLESHOT_TIMER as u64, 0, BASE, 0, 0]), 0);
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_STOP_SINGLESHOT_TIMER as u64, 0, 0, 0, 0]), 0);
        assert_eq!(p.timers, [("oneshot", 2_000_000_000), ("oneshot", 0)]);
    }

    #[test]
    fn singleshot_in_the_past_with_future_flag_is_etime() {
        let mut p = FakePlatform::new(false);
        let mut arg = [0u8; 16];
        arg[..8].copy_from_slice(&5u64.to_le_bytes());
        arg[8..12].copy_from_slice(&VCPU_SSHOTTMR_FUTURE.to_le_bytes());
        put(&mut p, &arg);
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_SET_SINGLESHOT_TIMER as u64, 0, BASE, 0, 0]), Errno::ETIME.to_ret());
        // Without the flag a past deadline is accepted (it fires at once).
        arg[8..12].copy_from_slice(&0u32.to_le_bytes());
        put(&mut p, &arg);
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_SET_SINGLESHOT_TIMER as u64, 0, BASE, 0, 0]), 0);
        assert_eq!(p.timers, [("oneshot", 5)]);
    }

    #[test]
    fn periodic_timer_bounds() {
        let mut p = FakePlatform::new(false);
        put(&mut p, &999_999u64.to_le_bytes());
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_SET_PERIODIC_TIMER as u64, 0, BASE, 0, 0]), Errno::EINVAL.to_ret());
        put(&mut p, &10_000_000u64.to_le_bytes());
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_SET_PERIODIC_TIMER as u64, 0, BASE, 0, 0]), 0);
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_STOP_PERIODIC_TIMER as u64, 0, 0, 0, 0]), 0);
        assert_eq!(p.timers, [("periodic", 10_000_000), ("periodic", 0)]);
    }

    #[test]
    fn hostile_vcpu_ops_change_nothing() {
        let mut p = FakePlatform::new(false);
        // vCPU out of range, another vCPU's one-shot timer, unreadable argument, unknown op.
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_IS_UP as u64, 2, 0, 0, 0]), Errno::ENOENT.to_ret());
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_SET_SINGLESHOT_TIMER as u64, 1, BASE, 0, 0]), Errno::EINVAL.to_ret());
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_SET_SINGLESHOT_TIMER as u64, 0, 0x10, 0, 0]), Errno::EFAULT.to_ret());
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_SET_PERIODIC_TIMER as u64, 0, u64::MAX - 3, 0, 0]), Errno::EFAULT.to_ret());
        // Up for a vCPU already up changes nothing.
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_UP as u64, 0, 0, 0, 0]), 0);
        assert_eq!(dispatch(&mut p, VCPU_OP, [99, 0, 0, 0, 0]), Errno::ENOSYS.to_ret());
        assert!(p.timers.is_empty());
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_IS_UP as u64, 0, 0, 0, 0]), 1);
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_IS_UP as u64, 1, 0, 0, 0]), 0);
    }

    #[test]
    fn runstate_is_read_and_its_area_registered() {
        let mut p = FakePlatform::new(false);
        p.now = 1234;
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_GET_RUNSTATE_INFO as u64, 0, BASE, 0, 0]), 0);
        let info = VcpuRunstateInfo::read_from_bytes(&p.mem[..48]).unwrap();
        assert_eq!((info.state, info.state_entry_time, info.time), (0, 1234, [7, 8, 9, 10]));
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_GET_RUNSTATE_INFO as u64, 1000, BASE, 0, 0]), Errno::ENOENT.to_ret());
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_GET_RUNSTATE_INFO as u64, 0, 0xffff_8300_0000_0000, 0, 0]), Errno::EFAULT.to_ret());
        put(&mut p, &0x4000u64.to_le_bytes());
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA as u64, 0, BASE, 0, 0]), 0);
        assert_eq!(p.runstate_area, Some((0, 0x4000)));
    }

    #[test]
    fn register_vcpu_info_checks_the_offset() {
        let mut p = FakePlatform::new(false);
        let reg = |p: &mut FakePlatform, mfn: u64, offset: u32| {
            put(p, &[mfn.to_le_bytes().as_slice(), &offset.to_le_bytes(), &[0; 4]].concat());
            dispatch(p, VCPU_OP, [VCPUOP_REGISTER_VCPU_INFO as u64, 0, BASE, 0, 0])
        };
        assert_eq!(reg(&mut p, 0x1234, 4096 - 64), 0);
        assert_eq!(p.vcpu_infos, [(0, 0x1234, 4032)]);
        assert_eq!(reg(&mut p, 0x1234, 4096 - 63), Errno::ENXIO.to_ret());
        assert_eq!(reg(&mut p, 0x1234, 12), Errno::ENXIO.to_ret());
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_REGISTER_VCPU_INFO as u64, 0, 0xffff_8300_0000_0000, 0, 0]), Errno::EFAULT.to_ret());
        assert_eq!(p.vcpu_infos.len(), 1);
    }

    #[test]
    fn get_physid_is_the_control_domain_s() {
        let mut p = FakePlatform::new(false);
        assert_eq!(dispatch(&mut p, VCPU_OP, [VCPUOP_GET_PHYSID as u64, 0, BASE, 0, 0]), Errno::EINVAL.to_ret());
        let mut d = FakePlatform::new(true);
        d.mem[..8].fill(0xff);
        assert_eq!(dispatch(&mut d, VCPU_OP, [VCPUOP_GET_PHYSID as u64, 0, BASE, 0, 0]), 0);
        assert_eq!(&d.mem[..8], &[0; 8]);
    }
}

