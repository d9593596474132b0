//! dom0's domain builder: `xl create` from a config file to a running guest, over the
//! privileged control calls ([`Control`]) and the shared start-of-day implementation in
//! `domain-builder` (the same code the microkernel builds dom0 with).
//!
//! The sequence (hypercall-abi's `domctl` module documents the calls):
//! 1. read the config and the kernel from the boot files, and check, before anything is
//!    created, everything that can be checked: the kernel is a PV kernel, the name is free,
//!    there is enough free memory, the initial region fits in it, dom0 has room for the p2m;
//! 2. create the domain (paused), populate pfns `0..nr_pages` in batches (pfns in, machine
//!    frames out: the p2m), read its `shared_info` frame;
//! 3. map its initial region into dom0 ([`Control::write_foreign`]), write it with
//!    [`domain_builder::build::build`], unmap;
//! 4. set vCPU 0's registers (entry, boot stack, start_info, the L4 in `cr3`), unpause.
//!
//! A failure after step 2 began destroys the domain: nothing is left half-created.
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use domain_builder::build::{BootModule, BuildError, BuildParams, BuiltDomain, GuestMemory};
use domain_builder::elf::{parse_kernel, ElfError};
use domain_builder::bzimage::{self, BzError};
use domain_builder::layout::{plan, DomainKind, LayoutError, LayoutRequest, ModuleSpec};
use hypercall_abi::arch::{VcpuGuestContext, VGCF_IN_KERNEL, VGCF_ONLINE};
use hypercall_abi::domctl::{DomainInfo, DOMAIN_NAME_LEN};
use hypercall_abi::errno::Errno;
use hypercall_abi::layout::{FLAT_KERNEL_CS, FLAT_KERNEL_SS};
use hypercall_abi::sched::ShutdownReason;
use hypercall_abi::sysctl::PhysInfo;
use pv_guest::mm::MmError;
use zerocopy::FromZeros;

use crate::archive::{BootFiles, LookupError};
use crate::config::{self, Config, ConfigError};
use crate::xl::display_name;

/// Pfns per `populate_physmap` call.
pub const POPULATE_BATCH: usize = 1024;

/// Initial rflags: IF and the reserved bit 1 (Xen's builder sets IF only; bit 1 always
/// reads as one).
pub const INITIAL_RFLAGS: u64 = 0x202;

/// What dom0's builder and `xl` need from the hypervisor. The kernel implements it with
/// hypercalls; host tests with a fake.
pub trait Control {
    /// `SYSCTL_PHYSINFO`.
    fn physinfo(&mut self) -> Result<PhysInfo, Errno>;
    /// Every domain, in id order (`DOMCTL_GETDOMAININFO` walk).
    fn domains(&mut self) -> Result<Vec<DomainInfo>, Errno>;
    /// `DOMCTL_GETDOMAININFO` for exactly `dom`.
    fn domain_info(&mut self, dom: u16) -> Result<DomainInfo, Errno>;
    /// `DOMCTL_CREATEDOMAIN`: the new id. `max_evtchn_port` is the highest event channel
    /// port it may use; `max_grant_frames` and `max_maptrack_frames` its grant limits (0:
    /// the hypervisor's defaults).
    fn create_domain(
        &mut self,
        name: &str,
        max_vcpus: u32,
        max_pages: u64,
        max_evtchn_port: u32,
        max_grant_frames: u32,
        max_maptrack_frames: u32,
    ) -> Result<u16, Errno>;
    /// `DOMCTL_DESTROYDOMAIN`.
    fn destroy_domain(&mut self, dom: u16) -> Result<(), Errno>;
    /// `DOMCTL_PAUSEDOMAIN`.
    fn pause_domain(&mut self, dom: u16) -> Result<(), Errno>;
    /// `DOMCTL_UNPAUSEDOMAIN`.
    fn unpause_domain(&mut self, dom: u16) -> Result<(), Errno>;
    /// Makes sure dom0's heap can hold a block of `bytes` (an unpacked kernel), growing it
    /// with dom0's free memory if need be; `ENOMEM` when there is not that much.
    fn grow_heap(&mut self, bytes: usize) -> Result<(), Errno>;
    /// Asks a domain's kernel to shut down as Xen's toolstack does: writes `request`
    /// (`poweroff`, `reboot`) to its `control/shutdown` store node, which PV kernels
    /// (Linux, Mini-OS) watch: whether the guest watches it (a kernel that does not
    /// will not act on it). `ENOENT` if the store does not serve it.
    fn pv_control(&mut self, dom: u16, request: &str) -> Result<bool, Errno>;
    /// `SCHEDOP_remote_shutdown`.
    fn shutdown_domain(&mut self, dom: u16, reason: ShutdownReason) -> Result<(), Errno>;
    /// `XENMEM_populate_physmap` for `dom`: pfns in, machine frames out; the count done.
    fn populate(&mut self, dom: u16, list: &mut [u64]) -> Result<u64, Errno>;
    /// `DOMCTL_SETVCPUCONTEXT`.
    fn set_vcpu_context(
        &mut self,
        dom: u16,
        vcpu: u32,
        ctxt: &VcpuGuestContext,
    ) -> Result<(), Errno>;
    /// The hypervisor's L4 entries (slots 256..=271) to put in a new domain's L4; the
    /// hypervisor writes its own over them when it validates the table.
    fn hypervisor_l4_slots(&mut self) -> [u64; 16];
    /// Maps `mfns` (frames of `dom`: pfn `i` is `mfns[i]`) into dom0, runs `write` over
    /// them, and unmaps them all again, whatever `write` returned.
    fn write_foreign(
        &mut self,
        dom: u16,
        mfns: &[u64],
        write: &mut dyn FnMut(&mut dyn GuestMemory) -> Result<BuiltDomain, BuildError>,
    ) -> Result<BuiltDomain, ForeignError>;
    /// `EVTCHNOP_alloc_unbound {dom: guest, remote_dom: 0}` (the privileged form, Xen's
    /// toolstack's way): a port of `guest`, unbound, that dom0 may bind.
    fn alloc_guest_port(&mut self, guest: u16) -> Result<u32, Errno>;
    /// `EVTCHNOP_bind_interdomain(guest, port)`: dom0's local port. The implementation
    /// closes it when the domain is destroyed.
    fn bind_guest_port(&mut self, guest: u16, port: u32) -> Result<u32, Errno>;
    /// The domain is built (not yet unpaused): the console back-end starts serving its
    /// ring. [`Control::destroy_domain`] stops serving it and unmaps the ring first.
    fn connect_console(
        &mut self,
        dom: u16,
        name: &str,
        channels: &DomainChannels,
    ) -> Result<(), Errno>;
    /// The domain is built (not yet unpaused): the store service maps its store ring,
    /// introduces it (`/local/domain/<id>` with `name` and `domid`, owned by the domain,
    /// and `cpu/<n>/availability` = `online` for each of its `vcpus` vCPUs, as libxl
    /// writes them: Linux reads them for its CPUs) and serves its ring.
    /// [`Control::destroy_domain`] releases it and removes its home.
    fn connect_store(&mut self, dom: u16, name: &str, vcpus: u32, channels: &DomainChannels) -> Result<(), Errno>;
    /// Gives domain `dom` the virtual disk `disk` (the block back-end's store nodes; the
    /// back end connects when the front end does); the error says why not.
    fn attach_disk(&mut self, dom: u16, disk: &crate::config::disk::DiskSpec) -> Result<(), String>;
    /// Takes virtual disk `devid` away from domain `dom` (requests already in its ring are
    /// answered first); the error says why not.
    fn detach_disk(&mut self, dom: u16, devid: u32) -> Result<(), String>;
    /// Domain `dom`'s virtual disks.
    fn disks(&mut self, dom: u16) -> Vec<crate::blkback::DiskRow>;
    /// Gives domain `dom` the network interface `vif` (netback's store nodes and its port
    /// on the switch; the back end connects when the front end does); the error says why not.
    fn attach_nic(&mut self, dom: u16, vif: &crate::config::vif::VifSpec) -> Result<(), String>;
    /// Takes network interface `devid` away from domain `dom`; the error says why not.
    fn detach_nic(&mut self, dom: u16, devid: u32) -> Result<(), String>;
    /// Domain `dom`'s network interfaces.
    fn nics(&mut self, dom: u16) -> Vec<crate::netback::NicRow>;
    /// vCPU `vcpu` of domain `dom` (`DOMCTL_GETVCPUINFO`).
    fn vcpu_info(&mut self, dom: u16, vcpu: u32) -> Result<hypercall_abi::domctl::GetVcpuInfo, Errno>;
    /// The CPUs vCPU `vcpu` of domain `dom` may run on (a bit each), after pinning it to
    /// `set` if given (`DOMCTL_VCPUAFFINITY`: `EINVAL` for a map with no online CPU).
    fn vcpu_affinity(&mut self, dom: u16, vcpu: u32, set: Option<u64>) -> Result<u64, Errno>;
    /// Domain `dom`'s credit-scheduler weight and cap, after setting them to `set` if given
    /// (as Xen's `XEN_DOMCTL_scheduler_op`: weight 0 and cap 0xffff leave a value as it
    /// is); `EINVAL` if another scheduler runs.
    fn sched_credit(&mut self, dom: u16, set: Option<(u16, u16)>) -> Result<(u16, u16), Errno>;
    /// Domain `dom`'s EDF reservation, after setting it to `set` (period µs, budget µs,
    /// extra time) if given; `EINVAL` if another scheduler runs or the values are out of
    /// range, `ENOSPC` if admission control refuses it.
    fn sched_rtds(&mut self, dom: u16, set: Option<(u32, u32, bool)>) -> Result<RtdsParams, Errno>;
}

/// A domain's EDF reservation as the hypervisor reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtdsParams {
    /// Period, µs.
    pub period_us: u32,
    /// Budget per period, µs (0: none reserved).
    pub budget_us: u32,
    /// Runs in spare time beyond its budget.
    pub extra: bool,
    /// Deadline misses so far.
    pub misses: u32,
}

/// A guest's two rings and event channels, made by the builder: the xenstore ring (for the
/// store service, which attaches to `store_port_local` and maps `store_mfn`) and the
/// console ring (served by dom0's console back-end). Kept per domain in
/// [`crate::toolstack::Toolstack::channels`] until the domain is destroyed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainChannels {
    /// The guest's end of the store channel (`start_info.store_evtchn`).
    pub store_port: u32,
    /// dom0's end of it.
    pub store_port_local: u32,
    /// The store ring page (`start_info.store_mfn`).
    pub store_mfn: u64,
    /// The guest's end of the console channel (`start_info.console.domU.evtchn`).
    pub console_port: u32,
    /// dom0's end of it.
    pub console_port_local: u32,
    /// The console ring page (`start_info.console.domU.mfn`).
    pub console_mfn: u64,
}

/// Why [`Control::write_foreign`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForeignError {
    /// The frames could not be mapped.
    Map(MmError),
    /// The builder failed (the frames were unmapped).
    Build(BuildError),
    /// The frames could not all be unmapped.
    Unmap(MmError),
}

impl fmt::Display for ForeignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForeignError::Map(e) => write!(f, "mapping its memory into dom0: {e}"),
            ForeignError::Build(e) => write!(f, "writing its initial region: {e}"),
            ForeignError::Unmap(e) => write!(f, "unmapping its memory from dom0: {e}"),
        }
    }
}

/// `&mut dyn GuestMemory` as a `GuestMemory` (the builder takes a sized one).
struct DynMemory<'a>(&'a mut dyn GuestMemory);

impl GuestMemory for DynMemory<'_> {
    fn write(&mut self, pfn: u64, offset: usize, bytes: &[u8]) -> Result<(), BuildError> {
        self.0.write(pfn, offset, bytes)
    }
    fn zero(&mut self, pfn: u64) -> Result<(), BuildError> {
        self.0.zero(pfn)
    }
    fn frames_scrubbed(&self) -> bool {
        self.0.frames_scrubbed()
    }
}

/// The step a creation failed at, once the domain existed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `XENMEM_populate_physmap`.
    Populate,
    /// `DOMCTL_GETDOMAININFO` of the new domain.
    Info,
    /// Making its store and console event channels.
    Channels,
    /// Mapping, writing and unmapping the initial region.
    Write,
    /// `DOMCTL_SETVCPUCONTEXT`.
    VcpuContext,
    /// Giving it its virtual disks.
    Disks,
    /// Giving it its network interfaces.
    Nics,
    /// Setting its scheduling parameters (`weight`, `cap`).
    Sched,
    /// Pinning its vCPUs (`cpus`).
    Affinity,
    /// `DOMCTL_UNPAUSEDOMAIN`.
    Unpause,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Populate => "populating its memory",
            Step::Info => "reading its domain info",
            Step::Channels => "making its event channels",
            Step::Write => "building it",
            Step::VcpuContext => "setting vCPU 0's registers",
            Step::Disks => "giving it its disks",
            Step::Nics => "giving it its network interfaces",
            Step::Sched => "setting its scheduling parameters",
            Step::Affinity => "pinning its vCPUs",
            Step::Unpause => "unpausing it",
        })
    }
}

/// Why `xl create` did not create a domain. Displays as the one line to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateError {
    /// No boot file has the name.
    NoFile {
        /// What was asked for (`what` names the role: config file, kernel, ramdisk).
        name: String,
        /// "config file", "kernel" or "ramdisk".
        what: &'static str,
        /// The config file naming it (for kernel and ramdisk).
        config: Option<String>,
        /// The boot files there are.
        known: Vec<String>,
    },
    /// Several archive members have the base name.
    Ambiguous {
        /// The name.
        name: String,
        /// Their paths.
        matches: Vec<String>,
    },
    /// The config file is wrong.
    Config {
        /// Its name.
        file: String,
        /// The problem.
        error: ConfigError,
    },
    /// The kernel is not a PV kernel we can build.
    BadKernel {
        /// The config file.
        config: String,
        /// The kernel's name.
        kernel: String,
        /// Why.
        error: ElfError,
    },
    /// The kernel is a bzImage whose payload cannot be unpacked (or dom0 has no room for
    /// it unpacked).
    BadBzImage {
        /// The config file.
        config: String,
        /// The kernel's name.
        kernel: String,
        /// Why: the payload's problem, or the room dom0 could not find.
        error: UnpackError,
    },
    /// A domain of that name exists.
    Duplicate {
        /// The name.
        name: String,
        /// Its id, when known (the hypervisor's `EEXIST` does not say).
        id: Option<u16>,
    },
    /// Less free memory than the domain needs.
    NoMemory {
        /// The domain.
        name: String,
        /// Pages it needs.
        needed: u64,
        /// Pages free.
        free: u64,
    },
    /// The initial region does not fit in the domain's memory.
    Layout {
        /// The domain.
        name: String,
        /// Why.
        error: LayoutError,
    },
    /// dom0's heap cannot hold the p2m.
    Dom0Heap {
        /// The domain.
        name: String,
        /// Its memory in MiB.
        memory_mib: u64,
    },
    /// A hypercall before the domain existed failed (physinfo, the domain list, create).
    Hypercall {
        /// The domain.
        name: String,
        /// What was being done.
        doing: &'static str,
        /// The hypervisor's answer.
        errno: Errno,
    },
    /// A step after the domain existed failed; the domain was destroyed (or not: `cleanup`).
    Failed {
        /// The domain.
        name: String,
        /// Its id.
        id: u16,
        /// The step.
        step: Step,
        /// What went wrong.
        detail: String,
        /// The destroy that followed.
        cleanup: Result<(), Errno>,
    },
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateError::NoFile {
                name,
                what,
                config,
                known,
            } => {
                match config {
                    Some(c) => write!(f, "xl: {c}: {what} '{name}': no boot file of that name")?,
                    None => write!(f, "xl: no boot file named '{name}'")?,
                }
                if known.is_empty() {
                    f.write_str(" (there are no boot files)")
                } else {
                    const SHOWN: usize = 8;
                    f.write_str(" (boot files: ")?;
                    for (i, n) in known.iter().take(SHOWN).enumerate() {
                        let sep = if i == 0 { "" } else { ", " };
                        write!(f, "{sep}{}", pv_guest::text::Lossy(n.as_bytes()))?;
                    }
                    if known.len() > SHOWN {
                        write!(f, ", and {} more", known.len() - SHOWN)?;
                    }
                    f.write_str(")")
                }
            }
            CreateError::Ambiguous { name, matches } => {
                write!(f, "xl: '{name}' names several archive members:")?;
                for m in matches {
                    write!(f, " {m}")?;
                }
                Ok(())
            }
            CreateError::Config { file, error } => write!(f, "xl: {}", error.in_file(file)),
            CreateError::BadKernel {
                config,
                kernel,
                error,
            } => write!(
                f,
                "xl: {config}: kernel '{kernel}' cannot be loaded: {error}"
            ),
            CreateError::BadBzImage {
                config,
                kernel,
                error,
            } => match error {
                Ok(e) => write!(f, "xl: {config}: kernel '{kernel}' cannot be unpacked: {e}"),
                Err((len, errno)) => write!(
                    f,
                    "xl: {config}: kernel '{kernel}': dom0 has no room for it unpacked ({} MiB): {errno}",
                    len.div_ceil(1 << 20)
                ),
            },
            CreateError::Duplicate { name, id } => match id {
                Some(id) => write!(f, "xl: a domain named '{name}' already exists (id {id})"),
                None => write!(f, "xl: a domain named '{name}' already exists"),
            },
            CreateError::NoMemory { name, needed, free } => write!(
                f,
                "xl: not enough free memory for '{name}': it needs {} MiB, {} MiB are free",
                needed >> 8,
                free >> 8
            ),
            CreateError::Layout { name, error } => {
                write!(f, "xl: '{name}' does not fit in its memory: {error}")
            }
            CreateError::Dom0Heap { name, memory_mib } => write!(
                f,
                "xl: dom0 has no room for the frame list of '{name}' ({memory_mib} MiB)"
            ),
            CreateError::Hypercall { name, doing, errno } => {
                write!(f, "xl: cannot create '{name}': {doing} failed: {errno}")
            }
            CreateError::Failed {
                name,
                id,
                step,
                detail,
                cleanup,
            } => {
                write!(f, "xl: creating '{name}' failed while {step}: {detail}; ")?;
                match cleanup {
                    Ok(()) => write!(f, "domain {id} destroyed"),
                    Err(e) => write!(f, "destroying domain {id} failed too: {e}"),
                }
            }
        }
    }
}

/// A domain `xl create` made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// Its id.
    pub id: u16,
    /// Its configuration.
    pub config: Config,
    /// Left paused (`-p`).
    pub paused: bool,
    /// Its store and console rings and channels.
    pub channels: DomainChannels,
}

/// vCPU 0's registers for a freshly built domain, as Xen's builder sets them (rip the
/// entry, rsp the top of the boot stack, rsi start_info, the flat ring-3 kernel selectors,
/// IF set, `kernel_ss:kernel_sp` the same stack, in kernel mode and online) with the L4 in
/// `cr3` (`ctrlreg[3] = mfn << 12`).
pub fn initial_context(built: &BuiltDomain) -> VcpuGuestContext {
    let mut ctxt = VcpuGuestContext::new_zeroed();
    ctxt.flags = VGCF_IN_KERNEL | VGCF_ONLINE;
    let regs = &mut ctxt.user_regs;
    regs.rip = built.entry;
    regs.rsp = built.stack_top;
    regs.rsi = built.start_info_va;
    regs.cs = FLAT_KERNEL_CS;
    regs.ss = FLAT_KERNEL_SS;
    regs.rflags = INITIAL_RFLAGS;
    ctxt.kernel_ss = u64::from(FLAT_KERNEL_SS);
    ctxt.kernel_sp = built.stack_top;
    ctxt.ctrlreg[3] = built.l4_mfn << 12;
    ctxt
}

/// Looks a boot file up, as a `CreateError` when it is not there.
fn find_file<'a>(
    files: &BootFiles<'a>,
    name: &str,
    what: &'static str,
    config: Option<&str>,
) -> Result<&'a [u8], CreateError> {
    match files.find(name) {
        Ok(f) => Ok(f.data),
        Err(LookupError::NotFound) => Err(CreateError::NoFile {
            name: String::from(name),
            what,
            config: config.map(String::from),
            known: files.names(),
        }),
        Err(LookupError::Ambiguous(matches)) => Err(CreateError::Ambiguous {
            name: String::from(name),
            matches,
        }),
    }
}

/// Why a bzImage was not unpacked: its payload's problem, or the room dom0 could not find
/// (bytes wanted, the error).
type UnpackError = Result<BzError, (usize, Errno)>;

/// The ELF inside `image` when it is a bzImage (`None` when it is not one): grows dom0's
/// heap for it and unpacks it there.
fn unpack_kernel(ctl: &mut impl Control, image: &[u8]) -> Result<Option<Vec<u8>>, UnpackError> {
    if !bzimage::is_bzimage(image) {
        return Ok(None);
    }
    let payload = bzimage::payload(image).map_err(Ok)?;
    let len = payload.unpacked_len;
    ctl.grow_heap(len).map_err(|errno| Err((len, errno)))?;
    let mut out = Vec::new();
    out.try_reserve_exact(len).map_err(|_| Err((len, Errno::ENOMEM)))?;
    out.resize(len, 0);
    bzimage::unpack(&payload, &mut out).map_err(Ok)?;
    Ok(Some(out))
}

/// `xl create FILE`: reads the config from the boot files, builds the domain and starts it
/// (or leaves it paused). Warnings about the config are written to `out` first.
pub fn create(
    ctl: &mut impl Control,
    files: &BootFiles<'_>,
    file: &str,
    paused: bool,
    out: &mut dyn fmt::Write,
) -> Result<Created, CreateError> {
    create_suffixed(ctl, files, file, "", paused, out)
}

/// [`create`] with `suffix` appended to the config's domain name (`bench-create` makes
/// `idler-1`, `idler-2`... from one config); a name that becomes too long is a config error.
pub fn create_suffixed(
    ctl: &mut impl Control,
    files: &BootFiles<'_>,
    file: &str,
    suffix: &str,
    paused: bool,
    out: &mut dyn fmt::Write,
) -> Result<Created, CreateError> {
    // 1. Everything that can be checked before the domain exists.
    let text = find_file(files, file, "config file", None)?;
    let parsed = config::parse(text).map_err(|error| CreateError::Config {
        file: String::from(file),
        error,
    })?;
    for w in &parsed.warnings {
        let _ = writeln!(out, "xl: {}", w.in_file(file));
    }
    if parsed.more_warnings > 0 {
        let _ = writeln!(
            out,
            "xl: {file}: warning: {} more unknown keys ignored",
            parsed.more_warnings
        );
    }
    let mut cfg = parsed.config;
    if !suffix.is_empty() {
        cfg.name.push_str(suffix);
        if cfg.name.len() >= DOMAIN_NAME_LEN {
            return Err(CreateError::Config {
                file: String::from(file),
                error: ConfigError {
                    line: None,
                    message: alloc::format!(
                        "name: \"{}\" (with the suffix) is longer than {} characters",
                        pv_guest::text::Lossy(cfg.name.as_bytes()),
                        DOMAIN_NAME_LEN - 1
                    ),
                },
            });
        }
    }
    let name = cfg.name.clone();
    let image = find_file(files, &cfg.kernel, "kernel", Some(file))?;
    let ramdisk = match &cfg.ramdisk {
        Some(r) => Some(find_file(files, r, "ramdisk", Some(file))?),
        None => None,
    };
    // A bzImage (`vmlinuz` as distributions ship it) is unpacked first, as Xen's builder.
    let unpacked = unpack_kernel(ctl, image).map_err(|error| CreateError::BadBzImage {
        config: String::from(file),
        kernel: cfg.kernel.clone(),
        error,
    })?;
    let image = unpacked.as_deref().unwrap_or(image);
    let kernel = parse_kernel(image).map_err(|error| CreateError::BadKernel {
        config: String::from(file),
        kernel: cfg.kernel.clone(),
        error,
    })?;
    let hypercall = |doing: &'static str| {
        let name = name.clone();
        move |errno| CreateError::Hypercall { name, doing, errno }
    };
    let domains = ctl.domains().map_err(hypercall("listing the domains"))?;
    if let Some(d) = domains.iter().find(|d| display_name(d) == name) {
        return Err(CreateError::Duplicate {
            name,
            id: Some(d.domain),
        });
    }
    let nr_pages = cfg.nr_pages();
    let free = ctl
        .physinfo()
        .map_err(hypercall("reading free memory"))?
        .free_pages;
    if free < nr_pages {
        return Err(CreateError::NoMemory {
            name,
            needed: nr_pages,
            free,
        });
    }
    let modules: Vec<BootModule<'_>> = ramdisk
        .map(|data| BootModule { data, cmdline: b"" })
        .into_iter()
        .collect();
    let specs: Vec<ModuleSpec<'_>> = modules.iter().map(BootModule::spec).collect();
    let layout = plan(
        &kernel,
        &LayoutRequest {
            nr_pages,
            modules: &specs,
            domain: DomainKind::Guest,
        },
    )
    .map_err(|error| CreateError::Layout {
        name: name.clone(),
        error,
    })?;
    let mut p2m: Vec<u64> = Vec::new();
    usize::try_from(nr_pages)
        .ok()
        .and_then(|n| p2m.try_reserve_exact(n).ok())
        .ok_or_else(|| CreateError::Dom0Heap {
            name: name.clone(),
            memory_mib: cfg.memory_mib,
        })?;
    p2m.extend(0..nr_pages);

    // 2. The domain, paused, with its memory.
    let id = ctl
        .create_domain(&name, cfg.vcpus, cfg.max_pages(), cfg.max_event_channels, cfg.max_grant_frames, cfg.max_maptrack_frames)
        .map_err(|errno| match errno {
            Errno::EEXIST => CreateError::Duplicate {
                name: name.clone(),
                id: None,
            },
            errno => CreateError::Hypercall {
                name: name.clone(),
                doing: "DOMCTL_createdomain",
                errno,
            },
        })?;
    match build_created(
        ctl, id, &cfg, image, &kernel, &layout, &modules, &mut p2m, paused,
    ) {
        Ok(channels) => Ok(Created {
            id,
            config: cfg,
            paused,
            channels,
        }),
        Err((step, detail)) => Err(CreateError::Failed {
            name,
            id,
            step,
            detail,
            cleanup: ctl.destroy_domain(id),
        }),
    }
}

/// The store and console channels of domain `id` (rings at `store_mfn`, `console_mfn`):
/// the guest's ends allocated for dom0, and dom0's ends bound to them.
fn make_channels(
    ctl: &mut impl Control,
    id: u16,
    store_mfn: u64,
    console_mfn: u64,
) -> Result<DomainChannels, Errno> {
    let store_port = ctl.alloc_guest_port(id)?;
    let store_port_local = ctl.bind_guest_port(id, store_port)?;
    let console_port = ctl.alloc_guest_port(id)?;
    let console_port_local = ctl.bind_guest_port(id, console_port)?;
    Ok(DomainChannels {
        store_port,
        store_port_local,
        store_mfn,
        console_port,
        console_port_local,
        console_mfn,
    })
}

/// Steps 2 to 4 for domain `id`; on failure, the step and what went wrong.
#[allow(clippy::too_many_arguments)] // One call site; a struct would only rename them.
fn build_created(
    ctl: &mut impl Control,
    id: u16,
    cfg: &Config,
    image: &[u8],
    kernel: &domain_builder::elf::KernelInfo,
    layout: &domain_builder::layout::Layout,
    modules: &[BootModule<'_>],
    p2m: &mut [u64],
    paused: bool,
) -> Result<DomainChannels, (Step, String)> {
    let errno = |step: Step| move |e: Errno| (step, alloc::format!("{e}"));
    for chunk in p2m.chunks_mut(POPULATE_BATCH) {
        let wanted = chunk.len() as u64;
        let done = ctl.populate(id, chunk).map_err(errno(Step::Populate))?;
        if done != wanted {
            return Err((
                Step::Populate,
                alloc::format!("the hypervisor gave {done} of {wanted} frames (ENOMEM)"),
            ));
        }
    }
    let info = ctl.domain_info(id).map_err(errno(Step::Info))?;
    let p2m: &[u64] = p2m;
    let frame = |pfn: u64| {
        usize::try_from(pfn)
            .ok()
            .and_then(|i| p2m.get(i).copied())
            .ok_or((Step::Channels, String::from("a ring page is outside the domain")))
    };
    let channels = make_channels(
        ctl,
        id,
        frame(layout.store_pfn())?,
        frame(layout.console_pfn())?,
    )
    .map_err(errno(Step::Channels))?;
    let params = BuildParams {
        p2m,
        hypervisor_l4_slots: ctl.hypervisor_l4_slots(),
        shared_info_maddr: info.shared_info_frame << 12,
        flags: 0,
        store_evtchn: channels.store_port,
        console_evtchn: channels.console_port,
        modules,
        cmdline: cfg.cmdline.as_bytes(),
    };
    // The initial region, and the p2m segment after it for an INIT_P2M kernel.
    let region = usize::try_from(layout.nr_built_pages())
        .ok()
        .and_then(|n| p2m.get(..n))
        .ok_or((
            Step::Write,
            String::from("the initial region is larger than the domain"),
        ))?;
    let mut write = |mem: &mut dyn GuestMemory| {
        domain_builder::build::build(image, kernel, layout, &params, &mut DynMemory(mem))
    };
    let built = ctl
        .write_foreign(id, region, &mut write)
        .map_err(|e| (Step::Write, alloc::format!("{e}")))?;
    ctl.set_vcpu_context(id, 0, &initial_context(&built))
        .map_err(errno(Step::VcpuContext))?;
    ctl.connect_console(id, &cfg.name, &channels)
        .map_err(errno(Step::Channels))?;
    ctl.connect_store(id, &cfg.name, cfg.vcpus, &channels)
        .map_err(errno(Step::Channels))?;
    if cfg.weight.is_some() || cfg.cap.is_some() {
        // As libxl, parameters of a scheduler that is not running are not applied.
        match ctl.sched_credit(id, Some((cfg.weight.unwrap_or(0), cfg.cap.unwrap_or(u16::MAX)))) {
            Ok(_) | Err(Errno::EINVAL) => {}
            Err(e) => return Err(errno(Step::Sched)(e)),
        }
    }
    if let Some(rtds) = cfg.rtds {
        // Likewise; an EDF set the CPU cannot meet is refused (ENOSPC) and the domain with it.
        match ctl.sched_rtds(id, Some(rtds)) {
            Ok(_) | Err(Errno::EINVAL) => {}
            Err(e) => return Err(errno(Step::Sched)(e)),
        }
    }
    if let Some(map) = cfg.cpus {
        for v in 0..cfg.vcpus {
            ctl.vcpu_affinity(id, v, Some(map)).map_err(errno(Step::Affinity))?;
        }
    }
    for disk in &cfg.disks {
        ctl.attach_disk(id, disk).map_err(|e| (Step::Disks, e))?;
    }
    for vif in &cfg.vifs {
        ctl.attach_nic(id, vif).map_err(|e| (Step::Nics, e))?;
    }
    if !paused {
        ctl.unpause_domain(id).map_err(errno(Step::Unpause))?;
    }
    Ok(channels)
}

#[cfg(test)]
mod tests;
