//! The toolstack's control calls: typed wrappers over the privileged `domctl` hypercall
//! (create, destroy, pause, unpause, getdomaininfo, max_mem, setvcpucontext) and
//! `SCHEDOP_remote_shutdown`, each returning `Result<_, Errno>`.
//!
//! The portable pieces (domain names as the ABI carries them, and the walk over every
//! domain) are host-tested; the hypercalls themselves exist on the guest target only.
//! Only a privileged domain (dom0) may make these calls: anyone else gets `EPERM`.

use hypercall_abi::domctl::{DomainInfo, DOMAIN_NAME_LEN};
use hypercall_abi::errno::Errno;

use crate::text::c_str;

/// A domain name as `DOMCTL_CREATEDOMAIN` carries it: NUL-terminated in 32 bytes.
///
/// `EINVAL` (what the hypervisor would answer) for an empty name, one of 32 bytes or more,
/// or one holding a NUL.
pub fn encode_name(name: &str) -> Result<[u8; DOMAIN_NAME_LEN], Errno> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= DOMAIN_NAME_LEN || bytes.contains(&0) {
        return Err(Errno::EINVAL);
    }
    let mut out = [0u8; DOMAIN_NAME_LEN];
    out[..bytes.len()].copy_from_slice(bytes);
    Ok(out)
}

/// The name bytes of a domain, up to the NUL (or all 32 if the hypervisor left none).
pub fn name_bytes(info: &DomainInfo) -> &[u8] {
    c_str(&info.name)
}

/// Every domain, in id order, from one `getdomaininfo` call per domain: ask for the first id
/// at or above `next`, then for that id plus one, until `ESRCH`.
///
/// `fetch(id)` is `DOMCTL_GETDOMAININFO` for "the smallest id `>= id`". Another error is
/// yielded once and ends the walk; so does an answer that does not move forwards (an id
/// below the one asked for), which would otherwise loop forever.
pub struct DomainWalk<F> {
    fetch: F,
    next: Option<u16>,
}

impl<F: FnMut(u16) -> Result<DomainInfo, Errno>> DomainWalk<F> {
    /// A walk from id 0.
    pub fn new(fetch: F) -> Self {
        DomainWalk {
            fetch,
            next: Some(0),
        }
    }
}

impl<F: FnMut(u16) -> Result<DomainInfo, Errno>> Iterator for DomainWalk<F> {
    type Item = Result<DomainInfo, Errno>;

    fn next(&mut self) -> Option<Self::Item> {
        let asked = self.next?;
        match (self.fetch)(asked) {
            Ok(info) if info.domain >= asked => {
                self.next = info.domain.checked_add(1);
                Some(Ok(info))
            }
            Ok(_) => {
                self.next = None;
                Some(Err(Errno::EIO))
            }
            Err(Errno::ESRCH) => {
                self.next = None;
                None
            }
            Err(e) => {
                self.next = None;
                Some(Err(e))
            }
        }
    }
}

#[cfg(target_os = "none")]
mod calls {
    use hypercall_abi::arch::VcpuGuestContext;
    use hypercall_abi::domctl::{
        CreateDomain, DomainInfo, Domctl, GetVcpuInfo, MaxMem, SetVcpuContext, DOMCTL_CREATEDOMAIN, DOMCTL_GETVCPUINFO,
        DOMCTL_DESTROYDOMAIN, DOMCTL_GETDOMAININFO, DOMCTL_MAX_MEM, DOMCTL_PAUSEDOMAIN,
        DOMCTL_SCHEDULER_OP, DOMCTL_SETVCPUCONTEXT, DOMCTL_UNPAUSEDOMAIN, SchedulerOp, XEN_DOMCTL_SCHEDOP_GETINFO,
        XEN_DOMCTL_SCHEDOP_PUTINFO, XEN_DOMCTL_SCHEDRT_EXTRA, VcpuAffinity, DOMCTL_VCPUAFFINITY,
    };
    use hypercall_abi::errno::Errno;
    use hypercall_abi::hypercall::Hypercall;
    use hypercall_abi::sched::{SchedRemoteShutdown, ShutdownReason, SCHEDOP_REMOTE_SHUTDOWN};
    use hypercall_abi::types::DomId;

    use super::{encode_name, DomainWalk};
    use crate::hypercall::{check, hypercall_via_page};

    /// `domctl(op)`: the hypervisor reads `op` and writes its results back into it.
    pub fn domctl(op: &mut Domctl) -> Result<(), Errno> {
        // SAFETY: the hypervisor reads and writes only the `Domctl` we own; a command that
        // names a further buffer (setvcpucontext) is built by the wrapper that owns it.
        let ret = unsafe {
            hypercall_via_page(
                Hypercall::Domctl as u64,
                (op as *mut Domctl) as u64,
                0,
                0,
                0,
                0,
            )
        };
        check(ret).map(|_| ())
    }

    /// A command with no payload on `dom`.
    fn simple(cmd: u32, dom: DomId) -> Result<(), Errno> {
        domctl(&mut Domctl::new(cmd, dom.0))
    }

    /// `DOMCTL_CREATEDOMAIN`: a new domain, paused and without memory, named `name`, with
    /// `max_vcpus` vCPUs, room for `max_pages` pages and event channel ports up to
    /// `max_evtchn_port` (0: all the ABI has), and grant-table and maptrack limits of
    /// `max_grant_frames` and `max_maptrack_frames` frames (0: the defaults, 64 and 1024).
    /// `EEXIST` if the name is taken.
    pub fn create_domain(
        name: &str,
        max_vcpus: u32,
        max_pages: u64,
        max_evtchn_port: u32,
        max_grant_frames: u32,
        max_maptrack_frames: u32,
    ) -> Result<DomId, Errno> {
        let payload = CreateDomain {
            max_vcpus,
            flags: 0,
            max_pages,
            name: encode_name(name)?,
            max_evtchn_port,
            max_grant_frames,
            max_maptrack_frames,
            _pad: 0,
        };
        let mut op = Domctl::with_payload(DOMCTL_CREATEDOMAIN, 0, &payload);
        domctl(&mut op)?;
        Ok(DomId(op.domain))
    }

    /// `DOMCTL_DESTROYDOMAIN`: stops the domain and gives its memory back.
    pub fn destroy_domain(dom: DomId) -> Result<(), Errno> {
        simple(DOMCTL_DESTROYDOMAIN, dom)
    }

    /// `DOMCTL_PAUSEDOMAIN` (pauses nest).
    pub fn pause_domain(dom: DomId) -> Result<(), Errno> {
        simple(DOMCTL_PAUSEDOMAIN, dom)
    }

    /// `DOMCTL_UNPAUSEDOMAIN`: undoes one pause (`EINVAL` if it is not paused).
    pub fn unpause_domain(dom: DomId) -> Result<(), Errno> {
        simple(DOMCTL_UNPAUSEDOMAIN, dom)
    }

    /// `DOMCTL_GETDOMAININFO` for the domain with the smallest id `>= from`.
    pub fn next_domain_info(from: u16) -> Result<DomainInfo, Errno> {
        let mut op = Domctl::new(DOMCTL_GETDOMAININFO, from);
        domctl(&mut op)?;
        let mut info: DomainInfo = op.read_payload();
        // The id travels in the header too; trust the one the header names.
        info.domain = op.domain;
        Ok(info)
    }

    /// `DOMCTL_GETDOMAININFO` for exactly `dom`; `ESRCH` if there is no such domain.
    pub fn domain_info(dom: DomId) -> Result<DomainInfo, Errno> {
        let info = next_domain_info(dom.0)?;
        if info.domain == dom.0 {
            Ok(info)
        } else {
            Err(Errno::ESRCH)
        }
    }

    /// Every domain, in id order (see [`DomainWalk`]).
    pub fn domains() -> DomainWalk<fn(u16) -> Result<DomainInfo, Errno>> {
        DomainWalk::new(next_domain_info)
    }

    /// `DOMCTL_MAX_MEM`: the most pages `dom` may hold.
    pub fn set_max_mem(dom: DomId, max_pages: u64) -> Result<(), Errno> {
        domctl(&mut Domctl::with_payload(
            DOMCTL_MAX_MEM,
            dom.0,
            &MaxMem { max_pages },
        ))
    }

    /// `DOMCTL_SETVCPUCONTEXT`: the initial state of vCPU `vcpu` of `dom` (paused, not yet
    /// started). The hypervisor validates, pins and installs `ctxt.ctrlreg[3]` as its L4.
    pub fn set_vcpu_context(dom: DomId, vcpu: u32, ctxt: &VcpuGuestContext) -> Result<(), Errno> {
        let payload = SetVcpuContext {
            vcpu,
            _pad: 0,
            ctxt: (ctxt as *const VcpuGuestContext) as u64,
        };
        domctl(&mut Domctl::with_payload(
            DOMCTL_SETVCPUCONTEXT,
            dom.0,
            &payload,
        ))
    }

    /// `DOMCTL_GETVCPUINFO`: vCPU `vcpu` of `dom` (up, blocked, running, CPU time).
    pub fn vcpu_info(dom: DomId, vcpu: u32) -> Result<GetVcpuInfo, Errno> {
        let mut op = Domctl::with_payload(DOMCTL_GETVCPUINFO, dom.0, &GetVcpuInfo { vcpu, ..Default::default() });
        domctl(&mut op)?;
        Ok(op.read_payload())
    }

    /// `DOMCTL_VCPUAFFINITY`: the CPUs vCPU `vcpu` of `dom` may run on (a bit each), after
    /// setting them to `set` if given.
    pub fn vcpu_affinity(dom: DomId, vcpu: u32, set: Option<u64>) -> Result<u64, Errno> {
        let payload = VcpuAffinity { vcpu, set: u32::from(set.is_some()), cpumap: set.unwrap_or(0) };
        let mut op = Domctl::with_payload(DOMCTL_VCPUAFFINITY, dom.0, &payload);
        domctl(&mut op)?;
        Ok(op.read_payload::<VcpuAffinity>().cpumap)
    }

    /// `DOMCTL_SCHEDULER_OP` for the credit scheduler: `dom`'s weight and cap, after
    /// setting them to `set` if given (weight 0 and cap 0xffff leave a value as it is).
    pub fn sched_credit(dom: DomId, set: Option<(u16, u16)>) -> Result<(u16, u16), Errno> {
        if let Some((weight, cap)) = set {
            domctl(&mut Domctl::with_payload(DOMCTL_SCHEDULER_OP, dom.0, &SchedulerOp::credit(XEN_DOMCTL_SCHEDOP_PUTINFO, weight, cap)))?;
        }
        let mut op = Domctl::with_payload(DOMCTL_SCHEDULER_OP, dom.0, &SchedulerOp::credit(XEN_DOMCTL_SCHEDOP_GETINFO, 0, 0));
        domctl(&mut op)?;
        Ok(op.read_payload::<SchedulerOp>().credit_params())
    }

    /// `DOMCTL_SCHEDULER_OP` for the EDF scheduler: `dom`'s period and budget (µs), extra
    /// time and deadline misses, after setting the first three to `set` if given.
    pub fn sched_rtds(dom: DomId, set: Option<(u32, u32, bool)>) -> Result<(u32, u32, bool, u32), Errno> {
        if let Some((period, budget, extra)) = set {
            let flags = if extra { XEN_DOMCTL_SCHEDRT_EXTRA } else { 0 };
            domctl(&mut Domctl::with_payload(DOMCTL_SCHEDULER_OP, dom.0, &SchedulerOp::rtds(XEN_DOMCTL_SCHEDOP_PUTINFO, period, budget, flags, 0)))?;
        }
        let mut op = Domctl::with_payload(DOMCTL_SCHEDULER_OP, dom.0, &SchedulerOp::rtds(XEN_DOMCTL_SCHEDOP_GETINFO, 0, 0, 0, 0));
        domctl(&mut op)?;
        let got = op.read_payload::<SchedulerOp>();
        let (period, budget, flags) = got.rtds_params();
        Ok((period, budget, flags & XEN_DOMCTL_SCHEDRT_EXTRA != 0, got.rtds_misses()))
    }

    /// `SCHEDOP_remote_shutdown`: asks the hypervisor to shut `dom` down with `reason`.
    pub fn remote_shutdown(dom: DomId, reason: ShutdownReason) -> Result<(), Errno> {
        let arg = SchedRemoteShutdown {
            domain_id: dom.0,
            _pad: 0,
            reason: reason as u32,
        };
        // SAFETY: the hypervisor only reads the `SchedRemoteShutdown` we pass.
        let ret = unsafe {
            hypercall_via_page(
                Hypercall::SchedOp as u64,
                u64::from(SCHEDOP_REMOTE_SHUTDOWN),
                (&raw const arg) as u64,
                0,
                0,
                0,
            )
        };
        check(ret).map(|_| ())
    }
}

#[cfg(target_os = "none")]
pub use calls::*;

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn info(domain: u16) -> DomainInfo {
        DomainInfo {
            domain,
            ..DomainInfo::default()
        }
    }

    #[test]
    fn names() {
        let n = encode_name("hello").unwrap();
        assert_eq!(&n[..6], b"hello\0");
        assert_eq!(encode_name(""), Err(Errno::EINVAL));
        assert_eq!(encode_name(&"x".repeat(31)).unwrap()[31], 0);
        assert_eq!(encode_name(&"x".repeat(32)), Err(Errno::EINVAL));
        assert_eq!(encode_name("a\0b"), Err(Errno::EINVAL));
        let mut i = info(1);
        i.name[..3].copy_from_slice(b"abc");
        assert_eq!(name_bytes(&i), b"abc");
        i.name = [b'z'; DOMAIN_NAME_LEN];
        assert_eq!(name_bytes(&i).len(), DOMAIN_NAME_LEN);
    }

    #[test]
    fn walk_visits_every_domain_once() {
        let ids = [0u16, 1, 4, 9];
        let mut asked = Vec::new();
        let walk = DomainWalk::new(|from| {
            asked.push(from);
            ids.iter()
                .copied()
                .find(|&d| d >= from)
                .map(info)
                .ok_or(Errno::ESRCH)
        });
        let got: Vec<u16> = walk.map(|r| r.unwrap().domain).collect();
        assert_eq!(got, ids);
        assert_eq!(asked, [0, 1, 2, 5, 10]);
    }

    #[test]
    fn walk_stops_on_errors_and_hostile_answers() {
        // Another error is yielded once.
        let mut walk = DomainWalk::new(|_| Err(Errno::EPERM));
        assert_eq!(walk.next(), Some(Err(Errno::EPERM)));
        assert_eq!(walk.next(), None);
        // An answer that goes backwards would loop: it ends the walk with an error.
        let mut walk = DomainWalk::new(|from| Ok(info(from.saturating_sub(1))));
        assert_eq!(walk.next().map(|r| r.map(|i| i.domain)), Some(Ok(0)));
        assert_eq!(walk.next(), Some(Err(Errno::EIO)));
        assert_eq!(walk.next(), None);
        // The last id ends the walk without overflowing.
        let mut walk = DomainWalk::new(|_| Ok(info(u16::MAX)));
        assert!(walk.next().unwrap().is_ok());
        assert_eq!(walk.next(), None);
    }
}
