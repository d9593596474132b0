//! The `domctl` hypercall as this project defines it: privileged (dom0 only), our own design
//! under Xen's number 36. It is what dom0's toolstack uses to create, build, run and tear
//! down other domains.
//!
//! Like [`crate::sysctl`], it keeps Xen's number and defines a small argument block of its
//! own: a [`Domctl`] with a command, an interface version, the target domain and a 128-byte
//! payload holding one command-specific struct at offset 0. An unprivileged caller gets
//! `-EPERM` and nothing changes; a wrong `interface_version` gets `-EACCES`; an unknown
//! domain `-ESRCH`; dom0 itself cannot be the target of create/destroy/pause (`-EINVAL`).
//!
//! Building a domain, as dom0's builder does it:
//! 1. `DOMCTL_CREATEDOMAIN` (name, max vCPUs, max pages): the domain exists, paused, with no
//!    memory; the id comes back in [`Domctl::domain`].
//! 2. `memory_op(XENMEM_populate_physmap)` with `domid` = the new domain: its frames.
//! 3. `pt_update` with `foreigndom` = the new domain: dom0 maps those frames into its own
//!    tables while it writes the image, the start-of-day region and the page tables (a
//!    privileged domain may map the frames of a domain it is building), then unmaps them.
//! 4. `DOMCTL_SETVCPUCONTEXT` for vCPU 0: registers and `ctrlreg[3]` (the L4); the
//!    hypervisor validates and pins the L4 for the new domain and installs it.
//! 5. `DOMCTL_UNPAUSEDOMAIN`: it runs.
//!
//! `DOMCTL_DESTROYDOMAIN` tears a domain down (every frame back, scrubbed);
//! `DOMCTL_GETDOMAININFO` lists domains; `SCHEDOP_remote_shutdown` asks one to shut down.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Version a caller must put in [`Domctl::interface_version`] (`"RD"` and version 1).
pub const DOMCTL_INTERFACE_VERSION: u32 = 0x5244_0001;

/// Size of the payload area [`Domctl::u`].
pub const DOMCTL_PAYLOAD_SIZE: usize = 128;

/// Longest domain name, NUL included.
pub const DOMAIN_NAME_LEN: usize = 32;

/// Create a domain: payload [`CreateDomain`]; the new id comes back in [`Domctl::domain`].
/// `-EEXIST` for a name in use, `-EINVAL` for an empty or unterminated name, zero or more
/// than [`MAX_VCPUS`] vCPUs, or zero pages; `-ENOSPC` when no domain id is left.
pub const DOMCTL_CREATEDOMAIN: u32 = 1;
/// Destroy a domain: every vCPU stops, every frame goes back (scrubbed) once no other
/// domain maps it, its id is free again when the last frame is.
pub const DOMCTL_DESTROYDOMAIN: u32 = 2;
/// Pause a domain (a count: pauses nest).
pub const DOMCTL_PAUSEDOMAIN: u32 = 3;
/// Undo one pause; `-EINVAL` if the domain is not paused.
pub const DOMCTL_UNPAUSEDOMAIN: u32 = 4;
/// Information about the domain with the smallest id `>=` [`Domctl::domain`]: payload
/// [`DomainInfo`] (out), and [`Domctl::domain`] is set to that domain's id. `-ESRCH` when
/// there is none: a caller walks all domains by asking for `last id + 1` until then.
pub const DOMCTL_GETDOMAININFO: u32 = 5;
/// Set a domain's maximum memory: payload [`MaxMem`]; `-EINVAL` below what it already has.
pub const DOMCTL_MAX_MEM: u32 = 11;
/// Set a vCPU's initial state: payload [`SetVcpuContext`]. The domain must be paused and the
/// vCPU not yet started (`-EBUSY` otherwise). `ctrlreg[3]` must name an L4 frame the domain
/// owns; it is validated, pinned and installed (`-EINVAL` or the validation errno if not).
/// `user_regs.cs`/`ss` must be the flat ring-3 selectors; rflags is sanitised (IF on, IOPL 0).
pub const DOMCTL_SETVCPUCONTEXT: u32 = 12;
/// Reads or sets a domain's scheduling parameters (Xen's `XEN_DOMCTL_scheduler_op`):
/// payload [`SchedulerOp`].
pub const DOMCTL_SCHEDULER_OP: u32 = 16;

/// Reads one vCPU's state (Xen's `XEN_DOMCTL_getvcpuinfo`): payload [`GetVcpuInfo`]
/// (`vcpu` in, the rest out); `EINVAL` for a vCPU past the domain's.
pub const DOMCTL_GETVCPUINFO: u32 = 14;

/// `struct xen_domctl_getvcpuinfo` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct GetVcpuInfo {
    /// IN: the vCPU.
    pub vcpu: u32,
    /// OUT: it is up.
    pub online: u8,
    /// OUT: it is blocked.
    pub blocked: u8,
    /// OUT: it is on a CPU now.
    pub running: u8,
    /// Padding.
    pub _pad0: u8,
    /// OUT: CPU time it has used, ns.
    pub cpu_time: u64,
    /// OUT: the physical CPU it runs on (or last ran on).
    pub cpu: u32,
    /// Padding.
    pub _pad1: u32,
}

const _: () = assert!(core::mem::size_of::<GetVcpuInfo>() == 24);
const _: () = assert!(core::mem::offset_of!(GetVcpuInfo, cpu_time) == 8);

/// Reads or sets one vCPU's hard affinity, the CPUs it may run on (Xen's
/// `XEN_DOMCTL_setvcpuaffinity`/`getvcpuaffinity`, the CPU map inline as one 64-bit
/// word): payload [`VcpuAffinity`]. Setting keeps the online CPUs of the map; a map with
/// none is `EINVAL`, as is a vCPU past the domain's. The map in force comes back (every
/// online CPU for a vCPU not pinned).
pub const DOMCTL_VCPUAFFINITY: u32 = 9;

/// The payload of [`DOMCTL_VCPUAFFINITY`] (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VcpuAffinity {
    /// IN: the vCPU.
    pub vcpu: u32,
    /// IN: 1 to set `cpumap`, 0 to read it.
    pub set: u32,
    /// IN (with `set`) / OUT: a bit per CPU.
    pub cpumap: u64,
}

const _: () = assert!(core::mem::size_of::<VcpuAffinity>() == 16);

/// `XEN_SCHEDULER_CREDIT`.
pub const XEN_SCHEDULER_CREDIT: u32 = 5;
/// `XEN_SCHEDULER_RTDS`.
pub const XEN_SCHEDULER_RTDS: u32 = 8;
/// `XEN_DOMCTL_SCHEDRT_extra`: an RTDS vCPU may run beyond its budget in spare time.
pub const XEN_DOMCTL_SCHEDRT_EXTRA: u32 = 1;
/// `XEN_DOMCTL_SCHEDOP_putinfo`: set the domain's parameters.
pub const XEN_DOMCTL_SCHEDOP_PUTINFO: u32 = 0;
/// `XEN_DOMCTL_SCHEDOP_getinfo`: read them.
pub const XEN_DOMCTL_SCHEDOP_GETINFO: u32 = 1;

/// Most vCPUs a domain may have.
pub const MAX_VCPUS: u32 = 32;

/// The argument of the `domctl` hypercall (136 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct Domctl {
    /// Command (`DOMCTL_*`).
    pub cmd: u32,
    /// Must be [`DOMCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// Target domain (in; for create and getdomaininfo also out).
    pub domain: u16,
    /// Padding, zero.
    pub _pad: [u8; 6],
    /// Command-specific payload at offset 0; in and/or out.
    pub u: [u8; DOMCTL_PAYLOAD_SIZE],
}

const _: () = assert!(core::mem::size_of::<Domctl>() == 144);

impl Domctl {
    /// A request for `cmd` on `domain` with the current interface version and a zeroed
    /// payload.
    pub const fn new(cmd: u32, domain: u16) -> Self {
        Domctl {
            cmd,
            interface_version: DOMCTL_INTERFACE_VERSION,
            domain,
            _pad: [0; 6],
            u: [0; DOMCTL_PAYLOAD_SIZE],
        }
    }

    /// A request carrying `payload` at the start of `u`.
    pub fn with_payload<T: IntoBytes + Immutable>(cmd: u32, domain: u16, payload: &T) -> Self {
        let mut d = Domctl::new(cmd, domain);
        d.write_payload(payload);
        d
    }

    /// Writes `payload` at the start of `u`.
    pub fn write_payload<T: IntoBytes + Immutable>(&mut self, payload: &T) {
        const { assert!(core::mem::size_of::<T>() <= DOMCTL_PAYLOAD_SIZE) };
        let b = payload.as_bytes();
        self.u[..b.len()].copy_from_slice(b);
    }

    /// Reads the payload as a `T` (a copy: `u` has no alignment guarantee).
    pub fn read_payload<T: FromBytes>(&self) -> T {
        const { assert!(core::mem::size_of::<T>() <= DOMCTL_PAYLOAD_SIZE) };
        match T::read_from_prefix(&self.u[..]) {
            Ok((v, _)) => v,
            Err(_) => unreachable!("payload fits (checked at compile time)"),
        }
    }
}

/// Input of `DOMCTL_CREATEDOMAIN` (64 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct CreateDomain {
    /// vCPUs (1..=[`MAX_VCPUS`]); vCPU 0 starts with `DOMCTL_SETVCPUCONTEXT`.
    pub max_vcpus: u32,
    /// Flags, zero.
    pub flags: u32,
    /// Most pages the domain may hold.
    pub max_pages: u64,
    /// Name, NUL-terminated (printed before the domain's console lines).
    pub name: [u8; DOMAIN_NAME_LEN],
    /// Highest event channel port the domain may use (Xen's `max_evtchn_port`; xl's
    /// `max_event_channels`): allocating past it fails with `-ENOSPC`. Capped by the
    /// 2-level ABI's 4096 ports; 0 means that cap.
    pub max_evtchn_port: u32,
    /// Most grant-table frames (Xen's `max_grant_frames`, xl's key of the same name); 0
    /// means the default, 64 (32768 v1 entries). At most 256.
    pub max_grant_frames: u32,
    /// Most maptrack frames, of 256 mapping handles each (Xen's `max_maptrack_frames`, xl's
    /// key of the same name); 0 means the default, 64 (Xen's is 1024; see the grant-tables
    /// crate). At most 1024.
    pub max_maptrack_frames: u32,
    /// Padding, zero.
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<CreateDomain>() == 64);

/// [`DomainInfo::flags`]: the domain is dying (destroyed, frames still referenced).
pub const DOMINF_DYING: u32 = 1 << 0;
/// The domain shut itself down (reason in [`DomainInfo::shutdown_reason`]).
pub const DOMINF_SHUTDOWN: u32 = 1 << 1;
/// The domain is paused (by the toolstack).
pub const DOMINF_PAUSED: u32 = 1 << 2;
/// The domain is blocked (waiting for an event).
pub const DOMINF_BLOCKED: u32 = 1 << 3;
/// A vCPU of the domain is running now.
pub const DOMINF_RUNNING: u32 = 1 << 4;
/// The domain is privileged (dom0).
pub const DOMINF_PRIVILEGED: u32 = 1 << 5;
/// The domain was stopped for a fault (crashed); [`DomainInfo::shutdown_reason`] is crash.
pub const DOMINF_CRASHED: u32 = 1 << 6;

/// Output of `DOMCTL_GETDOMAININFO` (88 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct DomainInfo {
    /// Domain id.
    pub domain: u16,
    /// Padding, zero.
    pub _pad0: u16,
    /// `DOMINF_*` bits.
    pub flags: u32,
    /// `SHUTDOWN_*` reason when `DOMINF_SHUTDOWN` or `DOMINF_CRASHED` is set.
    pub shutdown_reason: u32,
    /// vCPUs the domain has.
    pub max_vcpus: u32,
    /// Pages the domain holds.
    pub tot_pages: u64,
    /// Most pages it may hold.
    pub max_pages: u64,
    /// Machine frame of its `shared_info` page.
    pub shared_info_frame: u64,
    /// CPU time it has used, in nanoseconds.
    pub cpu_time_ns: u64,
    /// Name, NUL-terminated.
    pub name: [u8; DOMAIN_NAME_LEN],
    /// System time (ns since the microkernel started) at which the domain executed its
    /// first instruction; 0 if it has not run yet.
    pub first_run_ns: u64,
}

const _: () = assert!(core::mem::size_of::<DomainInfo>() == 88);

/// Input of `DOMCTL_MAX_MEM` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct MaxMem {
    /// Most pages the domain may hold.
    pub max_pages: u64,
}

/// Input of `DOMCTL_SETVCPUCONTEXT` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SetVcpuContext {
    /// vCPU number.
    pub vcpu: u32,
    /// Padding, zero.
    pub _pad: u32,
    /// Guest virtual address (in the caller) of a [`crate::arch::VcpuGuestContext`].
    pub ctxt: u64,
}

/// `struct xen_domctl_scheduler_op` (the per-domain forms): `sched_id` must name the
/// scheduler running, `cmd` is putinfo or getinfo, and `u` holds
/// `xen_domctl_sched_credit { u16 weight; u16 cap; }` (weight 0 and cap 0xffff leave the
/// value unchanged) or `xen_domctl_sched_rtds { u32 period; u32 budget; u32 flags; }` (µs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SchedulerOp {
    /// `XEN_SCHEDULER_*`.
    pub sched_id: u32,
    /// `XEN_DOMCTL_SCHEDOP_*`.
    pub cmd: u32,
    /// The parameters' union (16 bytes: Xen's union holds a guest handle and counts).
    pub u: [u32; 4],
}

impl SchedulerOp {
    /// Credit parameters: weight and cap.
    pub fn credit(cmd: u32, weight: u16, cap: u16) -> Self {
        SchedulerOp { sched_id: XEN_SCHEDULER_CREDIT, cmd, u: [u32::from(weight) | u32::from(cap) << 16, 0, 0, 0] }
    }

    /// The credit parameters in `u`: (weight, cap).
    pub fn credit_params(&self) -> (u16, u16) {
        (self.u[0] as u16, (self.u[0] >> 16) as u16)
    }

    /// RTDS parameters: period and budget in µs, `XEN_DOMCTL_SCHEDRT_*` flags; and, ours
    /// (in the union's unused last word, read back only), the deadline misses so far.
    pub fn rtds(cmd: u32, period_us: u32, budget_us: u32, flags: u32, misses: u64) -> Self {
        SchedulerOp { sched_id: XEN_SCHEDULER_RTDS, cmd, u: [period_us, budget_us, flags, misses.min(u64::from(u32::MAX)) as u32] }
    }

    /// The RTDS parameters in `u`: (period, budget, flags).
    pub fn rtds_params(&self) -> (u32, u32, u32) {
        (self.u[0], self.u[1], self.u[2])
    }

    /// The deadline misses an RTDS `getinfo` reports (ours).
    pub fn rtds_misses(&self) -> u32 {
        self.u[3]
    }
}
