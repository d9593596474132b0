//! `domctl` (privileged, our own layout under Xen's number 36) and `SCHEDOP_remote_shutdown`:
//! the control operations dom0's toolstack builds and manages domains with. This file
//! decodes and checks; the machine carries them out through [`Platform`].
#![forbid(unsafe_code)]

use super::Platform;
use crate::guest_access::{read_guest, write_guest, GuestRange};
use alloc::boxed::Box;
use hypercall_abi::arch::VcpuGuestContext;
use hypercall_abi::domctl::*;
use hypercall_abi::errno::Errno;
use hypercall_abi::sched::{SchedRemoteShutdown, ShutdownReason};
use zerocopy::{FromZeros, IntoBytes};

/// A checked domain name: 1..=31 bytes, printable ASCII, no blanks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainName {
    bytes: [u8; DOMAIN_NAME_LEN],
    len: usize,
}

impl DomainName {
    /// Reads a NUL-terminated name; `EINVAL` if empty, unterminated or not printable.
    pub fn parse(raw: &[u8; DOMAIN_NAME_LEN]) -> Result<Self, Errno> {
        let len = raw.iter().position(|&b| b == 0).ok_or(Errno::EINVAL)?;
        if len == 0 || !raw.iter().take(len).all(|b| b.is_ascii_graphic()) {
            return Err(Errno::EINVAL);
        }
        // The bytes after the NUL are zero in the stored name.
        let mut bytes = *raw;
        bytes.iter_mut().skip(len).for_each(|b| *b = 0);
        Ok(DomainName { bytes, len })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        self.bytes.get(..self.len).and_then(|b| core::str::from_utf8(b).ok()).unwrap_or("?")
    }

    /// The name as the ABI carries it (NUL-padded).
    pub fn raw(&self) -> [u8; DOMAIN_NAME_LEN] {
        self.bytes
    }
}

/// What the machine does for the control operations. Each is called only for a privileged
/// caller, with arguments already decoded and range-checked.
pub trait DomainControl {
    /// Creates a paused domain with no memory; returns its id.
    /// `grants` are its grant-table and maptrack limits.
    fn create_domain(&mut self, name: DomainName, max_vcpus: u32, max_pages: u64, max_evtchn_port: u32, grants: grant_tables::Limits) -> Result<u16, Errno>;
    /// Destroys domain `domid` (not the caller).
    fn destroy_domain(&mut self, domid: u16) -> Result<(), Errno>;
    /// Pauses (`true`) or unpauses domain `domid`.
    fn pause_domain(&mut self, domid: u16, pause: bool) -> Result<(), Errno>;
    /// Information about the domain with the smallest id `>= domid`.
    fn domain_info(&mut self, domid: u16) -> Result<DomainInfo, Errno>;
    /// Sets the maximum pages of `domid`.
    fn set_max_mem(&mut self, domid: u16, max_pages: u64) -> Result<(), Errno>;
    /// Sets the initial state of vCPU `vcpu` of `domid`.
    fn set_vcpu_context(&mut self, domid: u16, vcpu: u32, ctxt: &VcpuGuestContext) -> Result<(), Errno>;
    /// Asks `domid` to shut down with `reason`, as if it had done so itself.
    fn remote_shutdown(&mut self, domid: u16, reason: ShutdownReason) -> Result<(), Errno>;
    /// The scheduler running.
    fn sched_policy(&self) -> crate::sched::Policy;
    /// vCPU `vcpu` of `domid`; `EINVAL` past its vCPUs.
    fn vcpu_state(&mut self, domid: u16, vcpu: u32) -> Result<VcpuState, Errno>;
    /// `domid`'s scheduling parameters, after changing them to `set` if given.
    fn sched_params(&mut self, domid: u16, set: Option<crate::sched::Params>) -> Result<crate::sched::Params, Errno>;
    /// The CPUs vCPU `vcpu` of `domid` may run on (a bit each), after pinning it to the
    /// online ones of `set` if given: `EINVAL` for a map with no online CPU or a vCPU past
    /// the domain's.
    fn vcpu_affinity(&mut self, domid: u16, vcpu: u32, set: Option<u64>) -> Result<u64, Errno>;
}

/// What `DOMCTL_GETVCPUINFO` tells of a vCPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuState {
    /// It is up.
    pub up: bool,
    /// It is blocked.
    pub blocked: bool,
    /// It is on a CPU now.
    pub running: bool,
    /// CPU time it has used, ns.
    pub cpu_time: u64,
    /// The CPU it runs on, or whose queue it waits on.
    pub cpu: u32,
}

pub(super) fn domctl(p: &mut impl Platform, arg: u64) -> Result<i64, Errno> {
    // Policy before anything else: an unprivileged caller learns nothing, changes nothing.
    if !p.caller().privileged {
        return Err(Errno::EPERM);
    }
    let mut op: Domctl = read_guest(p, arg)?;
    if op.interface_version != DOMCTL_INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }
    let target = op.domain;
    let caller = p.caller().domid;
    let not_self = || if target == caller { Err(Errno::EINVAL) } else { Ok(()) };
    match op.cmd {
        DOMCTL_CREATEDOMAIN => {
            let c: CreateDomain = op.read_payload();
            let name = DomainName::parse(&c.name)?;
            if c.max_vcpus == 0 || c.max_vcpus > MAX_VCPUS || c.max_pages == 0 || c.flags != 0 || c._pad != 0 {
                return Err(Errno::EINVAL);
            }
            // 0 picks Xen's defaults; past the hard limits is EINVAL.
            let grants = grant_tables::Limits::from_request(c.max_grant_frames, c.max_maptrack_frames).ok_or(Errno::EINVAL)?;
            let id = p.domain_control().create_domain(name, c.max_vcpus, c.max_pages, c.max_evtchn_port, grants)?;
            op.domain = id;
            write_guest(p, arg, &op)?;
            Ok(0)
        }
        DOMCTL_DESTROYDOMAIN => {
            not_self()?;
            p.domain_control().destroy_domain(target)?;
            Ok(0)
        }
        DOMCTL_PAUSEDOMAIN | DOMCTL_UNPAUSEDOMAIN => {
            not_self()?;
            p.domain_control().pause_domain(target, op.cmd == DOMCTL_PAUSEDOMAIN)?;
            Ok(0)
        }
        DOMCTL_GETDOMAININFO => {
            let info = p.domain_control().domain_info(target)?;
            op.domain = info.domain;
            op.write_payload(&info);
            write_guest(p, arg, &op)?;
            Ok(0)
        }
        DOMCTL_MAX_MEM => {
            let m: MaxMem = op.read_payload();
            p.domain_control().set_max_mem(target, m.max_pages)?;
            Ok(0)
        }
        DOMCTL_SETVCPUCONTEXT => {
            not_self()?;
            let s: SetVcpuContext = op.read_payload();
            // 5 KiB: on the heap, not on the hypervisor stack.
            let mut ctxt = Box::new(VcpuGuestContext::new_zeroed());
            let r = GuestRange::new(s.ctxt, core::mem::size_of::<VcpuGuestContext>() as u64)?;
            p.copy_from_guest(r, ctxt.as_mut_bytes())?;
            p.domain_control().set_vcpu_context(target, s.vcpu, &ctxt)?;
            Ok(0)
        }
        DOMCTL_GETVCPUINFO => {
            let mut g: GetVcpuInfo = op.read_payload();
            let s = p.domain_control().vcpu_state(target, g.vcpu)?;
            g.online = u8::from(s.up);
            g.blocked = u8::from(s.blocked);
            g.running = u8::from(s.running);
            g.cpu_time = s.cpu_time;
            g.cpu = s.cpu;
            op.write_payload(&g);
            write_guest(p, arg, &op)?;
            Ok(0)
        }
        DOMCTL_VCPUAFFINITY => {
            let mut a: VcpuAffinity = op.read_payload();
            let set = match a.set {
                0 => None,
                1 => Some(a.cpumap),
                _ => return Err(Errno::EINVAL),
            };
            a.cpumap = p.domain_control().vcpu_affinity(target, a.vcpu, set)?;
            op.write_payload(&a);
            write_guest(p, arg, &op)?;
            Ok(0)
        }
        DOMCTL_SCHEDULER_OP => {
            use crate::sched::Params;
            let s: SchedulerOp = op.read_payload();
            // As Xen's `sched_adjust`: the request names the scheduler running.
            let policy = p.domain_control().sched_policy();
            if s.sched_id != policy.xen_id() || s.sched_id == 0 {
                return Err(Errno::EINVAL);
            }
            let set = match (s.cmd, policy) {
                (XEN_DOMCTL_SCHEDOP_PUTINFO, crate::sched::Policy::Rtds) => {
                    let (period_us, budget_us, flags) = s.rtds_params();
                    Some(Params::Rtds { period_us, budget_us, extra: flags & XEN_DOMCTL_SCHEDRT_EXTRA != 0, misses: 0 })
                }
                (XEN_DOMCTL_SCHEDOP_PUTINFO, _) => {
                    let (weight, cap) = s.credit_params();
                    Some(Params::Credit { weight, cap })
                }
                (XEN_DOMCTL_SCHEDOP_GETINFO, _) => None,
                _ => return Err(Errno::EINVAL),
            };
            let now = p.domain_control().sched_params(target, set)?;
            if set.is_none() {
                let out = match now {
                    Params::Credit { weight, cap } => SchedulerOp::credit(s.cmd, weight, cap),
                    Params::Rtds { period_us, budget_us, extra, misses } => {
                        SchedulerOp::rtds(s.cmd, period_us, budget_us, if extra { XEN_DOMCTL_SCHEDRT_EXTRA } else { 0 }, misses)
                    }
                };
                op.write_payload(&out);
                write_guest(p, arg, &op)?;
            }
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// `SCHEDOP_remote_shutdown(arg)`: privileged.
pub(super) fn remote_shutdown(p: &mut impl Platform, arg: u64) -> Result<i64, Errno> {
    if !p.caller().privileged {
        return Err(Errno::EPERM);
    }
    let r: SchedRemoteShutdown = read_guest(p, arg)?;
    let reason = ShutdownReason::try_from(r.reason).map_err(|_| Errno::EINVAL)?;
    if r.domain_id == p.caller().domid {
        return Err(Errno::EINVAL);
    }
    p.domain_control().remote_shutdown(r.domain_id, reason)?;
    Ok(0)
}

/// The id for a new domain: the first free one after `last` (the last one handed out),
/// wrapping below `hypercall_abi::types::DOMID_FIRST_RESERVED` to 1, as Xen's rover: an id just given up is the
/// last to be reused, so a back-end or toolstack that has not yet noticed a domain's end
/// never meets a new domain under its id. `None` when every id is taken.
pub fn next_domid(last: u16, in_use: impl Fn(u16) -> bool) -> Option<u16> {
    let span = hypercall_abi::types::DOMID_FIRST_RESERVED - 1;
    (1..=span).map(|k| (last.min(span) + k - 1) % span + 1).find(|&id| !in_use(id))
}

#[cfg(test)]
mod tests {
    use super::super::dispatch;
    use super::super::fake::*;
    use super::*;
    use alloc::string::ToString;
    use alloc::vec::Vec;

    const DOMCTL: u64 = 36;
    const SCHED_OP: u64 = 29;

    fn put(p: &mut FakePlatform, d: &Domctl) {
        p.mem[..core::mem::size_of::<Domctl>()].copy_from_slice(d.as_bytes());
    }

    fn name(s: &str) -> [u8; DOMAIN_NAME_LEN] {
        let mut n = [0u8; DOMAIN_NAME_LEN];
        n[..s.len()].copy_from_slice(s.as_bytes());
        n
    }

    fn create(name_: &str) -> Domctl {
        Domctl::with_payload(
            DOMCTL_CREATEDOMAIN,
            0,
            &CreateDomain { max_vcpus: 1, flags: 0, max_pages: 256, name: name(name_), max_evtchn_port: 0, max_grant_frames: 0, max_maptrack_frames: 0, _pad: 0 },
        )
    }

    #[test]
    fn unprivileged_callers_change_nothing() {
        let mut p = FakePlatform::new(false);
        put(&mut p, &create("guest"));
        let before = p.mem.clone();
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), Errno::EPERM.to_ret());
        p.mem[..8].copy_from_slice(&SchedRemoteShutdown { domain_id: 0, _pad: 0, reason: 0 }.as_bytes()[..8]);
        assert_eq!(dispatch(&mut p, SCHED_OP, [4, BASE, 0, 0, 0]), Errno::EPERM.to_ret());
        assert!(p.domctl_calls.is_empty());
        let _ = before;
    }

    #[test]
    fn create_checks_its_arguments_and_returns_the_id() {
        let mut p = FakePlatform::new(true);
        put(&mut p, &create("guest-1"));
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), 0);
        let out: Domctl = zerocopy::FromBytes::read_from_prefix(&p.mem[..]).unwrap().0;
        assert_eq!(out.domain, 7, "the fake hands out 7");
        for bad in [
            CreateDomain { max_vcpus: 0, flags: 0, max_pages: 1, name: name("a"), max_evtchn_port: 0, max_grant_frames: 0, max_maptrack_frames: 0, _pad: 0 },
            CreateDomain { max_vcpus: 33, flags: 0, max_pages: 1, name: name("a"), max_evtchn_port: 0, max_grant_frames: 0, max_maptrack_frames: 0, _pad: 0 },
            CreateDomain { max_vcpus: 1, flags: 0, max_pages: 0, name: name("a"), max_evtchn_port: 0, max_grant_frames: 0, max_maptrack_frames: 0, _pad: 0 },
            CreateDomain { max_vcpus: 1, flags: 1, max_pages: 1, name: name("a"), max_evtchn_port: 0, max_grant_frames: 0, max_maptrack_frames: 0, _pad: 0 },
            CreateDomain { max_vcpus: 1, flags: 0, max_pages: 1, name: name(""), max_evtchn_port: 0, max_grant_frames: 0, max_maptrack_frames: 0, _pad: 0 },
            CreateDomain { max_vcpus: 1, flags: 0, max_pages: 1, name: name("two words"), max_evtchn_port: 0, max_grant_frames: 0, max_maptrack_frames: 0, _pad: 0 },
            CreateDomain { max_vcpus: 1, flags: 0, max_pages: 1, name: [b'x'; DOMAIN_NAME_LEN], max_evtchn_port: 0, max_grant_frames: 0, max_maptrack_frames: 0, _pad: 0 },
            CreateDomain { max_vcpus: 1, flags: 0, max_pages: 1, name: name("a"), max_evtchn_port: 0, max_grant_frames: 0, max_maptrack_frames: 0, _pad: 1 },
            CreateDomain { max_vcpus: 1, flags: 0, max_pages: 1, name: name("a"), max_evtchn_port: 0, max_grant_frames: 257, max_maptrack_frames: 0, _pad: 0 },
            CreateDomain { max_vcpus: 1, flags: 0, max_pages: 1, name: name("a"), max_evtchn_port: 0, max_grant_frames: 0, max_maptrack_frames: 1025, _pad: 0 },
        ] {
            put(&mut p, &Domctl::with_payload(DOMCTL_CREATEDOMAIN, 0, &bad));
            assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), Errno::EINVAL.to_ret(), "{bad:?}");
        }
        assert_eq!(p.domctl_calls, Vec::from(["create guest-1".to_string()]));
    }

    #[test]
    fn getvcpuinfo_reports_each_vcpu_as_xen() {
        let mut p = FakePlatform::new(true);
        put(&mut p, &Domctl::with_payload(DOMCTL_GETVCPUINFO, 3, &GetVcpuInfo { vcpu: 0, ..Default::default() }));
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), 0);
        let out: Domctl = zerocopy::FromBytes::read_from_prefix(&p.mem[..]).unwrap().0;
        let g: GetVcpuInfo = out.read_payload();
        assert_eq!((g.vcpu, g.online, g.blocked, g.running, g.cpu_time, g.cpu), (0, 1, 0, 1, 5_000_000, 1));
        put(&mut p, &Domctl::with_payload(DOMCTL_GETVCPUINFO, 3, &GetVcpuInfo { vcpu: 7, ..Default::default() }));
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), Errno::EINVAL.to_ret());
        assert_eq!(p.domctl_calls, ["vcpu_state 3 0", "vcpu_state 3 7"]);
    }

    #[test]
    fn vcpu_affinity_reads_sets_and_refuses() {
        let mut p = FakePlatform::new(true);
        let call = |p: &mut FakePlatform, a: VcpuAffinity| {
            put(p, &Domctl::with_payload(DOMCTL_VCPUAFFINITY, 3, &a));
            let r = dispatch(p, DOMCTL, [BASE, 0, 0, 0, 0]);
            let out: Domctl = zerocopy::FromBytes::read_from_prefix(&p.mem[..]).unwrap().0;
            (r, out.read_payload::<VcpuAffinity>().cpumap)
        };
        assert_eq!(call(&mut p, VcpuAffinity { vcpu: 0, set: 0, cpumap: 0 }), (0, 0b11), "read: every CPU");
        assert_eq!(call(&mut p, VcpuAffinity { vcpu: 1, set: 1, cpumap: 0b110 }), (0, 0b10), "set: the online ones come back");
        assert_eq!(call(&mut p, VcpuAffinity { vcpu: 0, set: 1, cpumap: 0b100 }).0, Errno::EINVAL.to_ret(), "no online CPU");
        assert_eq!(call(&mut p, VcpuAffinity { vcpu: 0, set: 2, cpumap: 1 }).0, Errno::EINVAL.to_ret(), "set is 0 or 1");
        assert_eq!(call(&mut p, VcpuAffinity { vcpu: 5, set: 0, cpumap: 0 }).0, Errno::EINVAL.to_ret());
        assert_eq!(p.domctl_calls, ["affinity 3 0 None", "affinity 3 1 Some(6)", "affinity 3 0 Some(4)", "affinity 3 5 None"]);
    }

    #[test]
    fn scheduler_op_reads_and_sets_credit_parameters_as_xen() {
        let mut p = FakePlatform::new(true);
        put(&mut p, &Domctl::with_payload(DOMCTL_SCHEDULER_OP, 3, &SchedulerOp::credit(XEN_DOMCTL_SCHEDOP_GETINFO, 0, 0)));
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), 0);
        let out: Domctl = zerocopy::FromBytes::read_from_prefix(&p.mem[..]).unwrap().0;
        let got: SchedulerOp = out.read_payload();
        assert_eq!(got.credit_params(), (512, 25));
        put(&mut p, &Domctl::with_payload(DOMCTL_SCHEDULER_OP, 3, &SchedulerOp::credit(XEN_DOMCTL_SCHEDOP_PUTINFO, 300, 0xffff)));
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), 0);
        assert_eq!(p.domctl_calls.last().unwrap(), "sched 3 Some(Credit { weight: 300, cap: 65535 })");
        // Another scheduler's id, an unknown command, no such domain.
        let mut rtds = SchedulerOp::credit(XEN_DOMCTL_SCHEDOP_GETINFO, 0, 0);
        rtds.sched_id = XEN_SCHEDULER_RTDS;
        put(&mut p, &Domctl::with_payload(DOMCTL_SCHEDULER_OP, 3, &rtds));
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), Errno::EINVAL.to_ret());
        put(&mut p, &Domctl::with_payload(DOMCTL_SCHEDULER_OP, 3, &SchedulerOp::credit(2, 0, 0)));
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), Errno::EINVAL.to_ret());
        put(&mut p, &Domctl::with_payload(DOMCTL_SCHEDULER_OP, 9, &SchedulerOp::credit(XEN_DOMCTL_SCHEDOP_GETINFO, 0, 0)));
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), Errno::ESRCH.to_ret());
    }

    #[test]
    fn scheduler_op_for_rtds_carries_period_budget_flags_and_misses() {
        let mut p = FakePlatform::new(true);
        p.sched_policy = crate::sched::Policy::Rtds;
        put(&mut p, &Domctl::with_payload(DOMCTL_SCHEDULER_OP, 3, &SchedulerOp::rtds(XEN_DOMCTL_SCHEDOP_GETINFO, 0, 0, 0, 0)));
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), 0);
        let out: Domctl = zerocopy::FromBytes::read_from_prefix(&p.mem[..]).unwrap().0;
        let got: SchedulerOp = out.read_payload();
        assert_eq!((got.rtds_params(), got.rtds_misses()), ((10_000, 2_000, 0), 3));
        put(&mut p, &Domctl::with_payload(DOMCTL_SCHEDULER_OP, 3, &SchedulerOp::rtds(XEN_DOMCTL_SCHEDOP_PUTINFO, 5_000, 1_000, XEN_DOMCTL_SCHEDRT_EXTRA, 0)));
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), 0);
        assert_eq!(p.domctl_calls.last().unwrap(), "sched 3 Some(Rtds { period_us: 5000, budget_us: 1000, extra: true, misses: 0 })");
        // Credit's id while RTDS runs.
        put(&mut p, &Domctl::with_payload(DOMCTL_SCHEDULER_OP, 3, &SchedulerOp::credit(XEN_DOMCTL_SCHEDOP_GETINFO, 0, 0)));
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), Errno::EINVAL.to_ret());
    }

    #[test]
    fn version_self_target_and_unknown_commands() {
        let mut p = FakePlatform::new(true);
        let mut d = Domctl::new(DOMCTL_PAUSEDOMAIN, 3);
        d.interface_version = 1;
        put(&mut p, &d);
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), Errno::EACCES.to_ret());
        for cmd in [DOMCTL_DESTROYDOMAIN, DOMCTL_PAUSEDOMAIN, DOMCTL_UNPAUSEDOMAIN, DOMCTL_SETVCPUCONTEXT] {
            put(&mut p, &Domctl::new(cmd, 0));
            assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), Errno::EINVAL.to_ret(), "cmd {cmd} on dom0");
        }
        put(&mut p, &Domctl::new(999, 3));
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), Errno::ENOSYS.to_ret());
        assert_eq!(dispatch(&mut p, DOMCTL, [0xffff_8300_0000_0000, 0, 0, 0, 0]), Errno::EFAULT.to_ret());
        put(&mut p, &Domctl::new(DOMCTL_PAUSEDOMAIN, 3));
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), 0);
        put(&mut p, &Domctl::with_payload(DOMCTL_SETVCPUCONTEXT, 3, &SetVcpuContext { vcpu: 0, _pad: 0, ctxt: 0x10 }));
        assert_eq!(dispatch(&mut p, DOMCTL, [BASE, 0, 0, 0, 0]), Errno::EFAULT.to_ret(), "context unreadable");
        assert_eq!(p.domctl_calls, Vec::from(["pause 3".to_string()]));
    }

    #[test]
    fn new_domain_ids_come_after_the_last_and_wrap() {
        use super::next_domid;
        use hypercall_abi::types::DOMID_FIRST_RESERVED as RESERVED;
        assert_eq!(next_domid(0, |_| false), Some(1));
        assert_eq!(next_domid(5, |_| false), Some(6), "a freed lower id waits its turn");
        assert_eq!(next_domid(5, |id| id == 6 || id == 7), Some(8));
        assert_eq!(next_domid(RESERVED - 1, |_| false), Some(1), "wraps below the reserved ids");
        assert_eq!(next_domid(RESERVED - 1, |id| id == 1), Some(2));
        assert_eq!(next_domid(3, |id| id != 3), Some(3), "the last id itself, when it is the only one free");
        assert_eq!(next_domid(3, |_| true), None);
    }
}
