//! Test helpers shared by the builder and toolstack tests: a tiny PV kernel ELF, tar
//! archives, and a fake hypervisor ([`FakeControl`]) that keeps domains, machine frames and
//! free memory the way the real one does, with failures to inject at every step.

extern crate std;

use std::collections::{BTreeMap, BTreeSet};
use std::string::String;
use std::vec;
use std::vec::Vec;

use domain_builder::build::{BuildError, BuiltDomain, GuestMemory};
use hypercall_abi::arch::VcpuGuestContext;
use hypercall_abi::types::DOMID_FIRST_RESERVED;
use hypercall_abi::domctl::{
    DomainInfo, DOMINF_BLOCKED, DOMINF_PAUSED, DOMINF_PRIVILEGED, DOMINF_RUNNING, DOMINF_SHUTDOWN,
};
use hypercall_abi::errno::Errno;
use hypercall_abi::sched::ShutdownReason;
use hypercall_abi::sysctl::PhysInfo;
use pv_guest::mm::MmError;

use crate::builder::{Control, ForeignError};

/// Where the test kernel is linked (as pv-guest's guests).
pub const BASE: u64 = 0xffff_ffff_8000_0000;
/// Its entry point.
pub const ENTRY: u64 = BASE + 0x40;
/// Its code bytes (at BASE).
pub const CODE: &[u8] = b"\x90\x90\x0f\x0b test kernel text";

fn note(out: &mut Vec<u8>, kind: u32, desc: &[u8]) {
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(b"Xen\0");
    out.extend_from_slice(desc);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// A minimal PV kernel: one PT_LOAD of 0x3000 bytes (the code, then zeros) at [`BASE`], a
/// hypercall page at `BASE + 0x1000`, and the Xen notes pv-guest's guests carry.
pub fn kernel_elf() -> Vec<u8> {
    let mut notes = Vec::new();
    note(&mut notes, 6, b"rust-pv\0");
    note(&mut notes, 8, b"generic\0");
    note(&mut notes, 5, b"xen-3.0\0");
    note(&mut notes, 3, &BASE.to_le_bytes());
    note(&mut notes, 4, &BASE.to_le_bytes());
    note(&mut notes, 1, &ENTRY.to_le_bytes());
    note(&mut notes, 2, &(BASE + 0x1000).to_le_bytes());
    let notes_at = 64 + 2 * 56;
    let data_at = 0x1000;
    let mut out = vec![0u8; data_at];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    let put = |out: &mut Vec<u8>, at: usize, bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes)
    };
    put(&mut out, 16, &2u16.to_le_bytes()); // ET_EXEC
    put(&mut out, 18, &62u16.to_le_bytes()); // x86_64
    put(&mut out, 20, &1u32.to_le_bytes());
    put(&mut out, 24, &ENTRY.to_le_bytes());
    put(&mut out, 32, &64u64.to_le_bytes());
    put(&mut out, 52, &64u16.to_le_bytes());
    put(&mut out, 54, &56u16.to_le_bytes());
    put(&mut out, 56, &2u16.to_le_bytes());
    put(&mut out, 58, &64u16.to_le_bytes());
    let phdr = |out: &mut Vec<u8>,
                at: usize,
                p_type: u32,
                offset: u64,
                addr: u64,
                filesz: u64,
                memsz: u64| {
        put(out, at, &p_type.to_le_bytes());
        put(out, at + 4, &5u32.to_le_bytes());
        put(out, at + 8, &offset.to_le_bytes());
        put(out, at + 16, &addr.to_le_bytes());
        put(out, at + 24, &addr.to_le_bytes());
        put(out, at + 32, &filesz.to_le_bytes());
        put(out, at + 40, &memsz.to_le_bytes());
        put(out, at + 48, &0x1000u64.to_le_bytes());
    };
    phdr(
        &mut out,
        64,
        4,
        notes_at as u64,
        0,
        notes.len() as u64,
        notes.len() as u64,
    );
    phdr(
        &mut out,
        64 + 56,
        1,
        data_at as u64,
        BASE,
        CODE.len() as u64,
        0x3000,
    );
    put(&mut out, notes_at, &notes);
    out.extend_from_slice(CODE);
    out
}

/// A ustar archive of regular files.
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(std::format!("{:011o}", data.len()).as_bytes());
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(std::format!("{sum:06o}\0").as_bytes());
        out.extend(h);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.extend([0u8; 1024]);
    out
}

/// A step at which [`FakeControl`] fails, once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    /// `create_domain` answers this.
    Create(Errno),
    /// `populate` answers this.
    Populate(Errno),
    /// `populate` gives one frame fewer than asked.
    PopulateShort,
    /// `domain_info` of the new domain answers this.
    Info(Errno),
    /// Mapping the frames fails.
    Map,
    /// Unmapping the frames fails (after a successful write).
    Unmap,
    /// `set_vcpu_context` answers this.
    VcpuContext(Errno),
    /// `unpause_domain` answers this.
    Unpause(Errno),
    /// `destroy_domain` answers this.
    Destroy(Errno),
    /// `domains` answers this.
    List(Errno),
}

/// A domain of the fake hypervisor.
#[derive(Clone, Debug)]
pub struct FakeDomain {
    /// What getdomaininfo says.
    pub info: DomainInfo,
    /// Its frames, by pfn.
    pub p2m: BTreeMap<u64, u64>,
    /// vCPU 0's context, once set.
    pub ctxt: Option<VcpuGuestContext>,
    /// Pause count.
    pub pauses: u32,
}

/// The fake hypervisor.
pub struct FakeControl {
    /// Domains by id (dom0 is id 0).
    pub domains: BTreeMap<u16, FakeDomain>,
    /// Machine memory: frame contents (frames never written are absent, reading as garbage).
    pub memory: BTreeMap<u64, Vec<u8>>,
    /// Free frames.
    pub free_pages: u64,
    /// Total frames.
    pub total_pages: u64,
    /// The next machine frame handed out.
    pub next_mfn: u64,
    /// Failures still to inject.
    pub fail: Vec<Fail>,
    /// Every call, by name and domain (for order checks).
    pub calls: Vec<(&'static str, u16)>,
    /// Virtual disks attached: (domain, device number, target).
    pub disks: Vec<(u16, u32, String)>,
    /// Network interfaces given: (dom, devid).
    pub nics: Vec<(u16, u32)>,
    /// vCPUs pinned: (dom, vCPU, CPU map); two CPUs online.
    pub affinities: Vec<(u16, u32, u64)>,
    /// Domains whose kernels do not watch `control/shutdown`.
    pub ignores_control: Vec<u16>,
    /// Frames mapped into dom0 right now.
    pub mapped: BTreeSet<u64>,
    /// Most frames mapped at once.
    pub max_mapped: usize,
    /// System time `physinfo` reports next (ns).
    pub clock_ns: u64,
    /// How far the clock moves on at each `physinfo` (0: it stands still).
    pub clock_step_ns: u64,
    /// Ports allocated in each domain (the next is one more).
    pub ports: BTreeMap<u16, u32>,
    /// dom0's ports bound to guests: local port -> (guest, guest's port).
    pub bound: BTreeMap<u32, (u16, u32)>,
    /// Consoles being served, by domain.
    pub consoles: BTreeMap<u16, crate::builder::DomainChannels>,
    /// The last domain id handed out.
    pub last_id: u16,
    /// Each domain's credit weight and cap, once read or set.
    pub sched: BTreeMap<u16, (u16, u16)>,
    /// Each domain's EDF reservation, once read or set.
    pub rtds: BTreeMap<u16, crate::builder::RtdsParams>,
}

impl FakeControl {
    /// A machine with `total_pages` frames, `free_pages` of them free, and dom0.
    pub fn new(total_pages: u64, free_pages: u64) -> Self {
        let mut dom0 = DomainInfo {
            domain: 0,
            flags: DOMINF_PRIVILEGED | DOMINF_RUNNING,
            max_vcpus: 1,
            tot_pages: total_pages - free_pages,
            cpu_time_ns: 3_000_000_000,
            ..DomainInfo::default()
        };
        dom0.name[..4].copy_from_slice(b"dom0");
        let mut domains = BTreeMap::new();
        domains.insert(
            0,
            FakeDomain {
                info: dom0,
                p2m: BTreeMap::new(),
                ctxt: None,
                pauses: 0,
            },
        );
        FakeControl {
            domains,
            memory: BTreeMap::new(),
            free_pages,
            total_pages,
            next_mfn: 0x10_0000,
            fail: Vec::new(),
            calls: Vec::new(),
            disks: Vec::new(),
            nics: Vec::new(),
            affinities: Vec::new(),
            ignores_control: Vec::new(),
            mapped: BTreeSet::new(),
            max_mapped: 0,
            clock_ns: 1,
            clock_step_ns: 0,
            ports: BTreeMap::new(),
            bound: BTreeMap::new(),
            consoles: BTreeMap::new(),
            last_id: 0,
            sched: BTreeMap::new(),
            rtds: BTreeMap::new(),
        }
    }

    /// What a turn of the scheduler does: every unpaused domain that never ran and has not
    /// stopped runs its first instruction now (`first_run_ns` is set to the clock).
    pub fn run_guests(&mut self) {
        let now = self.clock_ns;
        for d in self.domains.values_mut() {
            if d.info.domain != 0
                && d.pauses == 0
                && d.info.first_run_ns == 0
                && d.info.flags & DOMINF_SHUTDOWN == 0
            {
                d.info.first_run_ns = now;
            }
        }
    }

    /// Takes the injected failure `f` if it matches.
    fn failing(&mut self, f: impl Fn(&Fail) -> bool) -> Option<Fail> {
        let i = self.fail.iter().position(f)?;
        Some(self.fail.remove(i))
    }

    fn dom(&mut self, dom: u16) -> Result<&mut FakeDomain, Errno> {
        self.domains.get_mut(&dom).ok_or(Errno::ESRCH)
    }

    /// The domain named `name`.
    pub fn by_name(&self, name: &str) -> Option<&FakeDomain> {
        self.domains
            .values()
            .find(|d| pv_guest::domctl::name_bytes(&d.info) == name.as_bytes())
    }

    /// Reads `len` bytes of guest `dom`'s pfn `pfn` at `offset`.
    pub fn read(&self, dom: u16, pfn: u64, offset: usize, len: usize) -> Vec<u8> {
        let mfn = self.domains[&dom].p2m[&pfn];
        self.memory[&mfn][offset..offset + len].to_vec()
    }

    /// Marks `dom` as shut down with `reason` (what a guest's SCHEDOP_shutdown does).
    pub fn guest_shuts_down(&mut self, dom: u16, reason: u32) {
        let d = self.domains.get_mut(&dom).expect("domain exists");
        d.info.flags = (d.info.flags & !(DOMINF_RUNNING | DOMINF_BLOCKED)) | DOMINF_SHUTDOWN;
        d.info.shutdown_reason = reason;
    }
}

/// Guest memory through the fake's machine memory, checking each frame is mapped.
struct FakeMem<'a> {
    memory: &'a mut BTreeMap<u64, Vec<u8>>,
    mfns: &'a [u64],
}

impl FakeMem<'_> {
    fn frame(&mut self, pfn: u64) -> Result<&mut Vec<u8>, BuildError> {
        let mfn = *self
            .mfns
            .get(pfn as usize)
            .ok_or(BuildError::GuestMemory { pfn })?;
        Ok(self.memory.entry(mfn).or_insert_with(|| vec![0xa5; 4096]))
    }
}

impl GuestMemory for FakeMem<'_> {
    fn write(&mut self, pfn: u64, offset: usize, bytes: &[u8]) -> Result<(), BuildError> {
        assert!(offset + bytes.len() <= 4096);
        self.frame(pfn)?[offset..offset + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }
    fn zero(&mut self, pfn: u64) -> Result<(), BuildError> {
        self.frame(pfn)?.fill(0);
        Ok(())
    }
}

impl Control for FakeControl {
    fn physinfo(&mut self) -> Result<PhysInfo, Errno> {
        self.calls.push(("physinfo", 0));
        let uptime_ns = self.clock_ns;
        self.clock_ns += self.clock_step_ns;
        Ok(PhysInfo {
            nr_cpus: 2,
            cpu_khz: 3_000_000,
            total_pages: self.total_pages,
            free_pages: self.free_pages,
            max_mfn: self.next_mfn,
            uptime_ns,
            nr_domains: self.domains.len() as u32,
            _pad: 0,
        })
    }

    fn domains(&mut self) -> Result<Vec<DomainInfo>, Errno> {
        if let Some(Fail::List(e)) = self.failing(|f| matches!(f, Fail::List(_))) {
            return Err(e);
        }
        Ok(self.domains.values().map(|d| d.info).collect())
    }

    fn domain_info(&mut self, dom: u16) -> Result<DomainInfo, Errno> {
        if dom != 0 {
            if let Some(Fail::Info(e)) = self.failing(|f| matches!(f, Fail::Info(_))) {
                return Err(e);
            }
        }
        Ok(self.dom(dom)?.info)
    }

    fn create_domain(
        &mut self,
        name: &str,
        max_vcpus: u32,
        max_pages: u64,
        _max_evtchn_port: u32,
        _max_grant_frames: u32,
        _max_maptrack_frames: u32,
    ) -> Result<u16, Errno> {
        self.calls.push(("create", 0));
        if let Some(Fail::Create(e)) = self.failing(|f| matches!(f, Fail::Create(_))) {
            return Err(e);
        }
        if self.by_name(name).is_some() {
            return Err(Errno::EEXIST);
        }
        // As the microkernel (and Xen): the first free id after the last one handed out.
        let last = self.last_id;
        let id = (last + 1..DOMID_FIRST_RESERVED)
            .chain(1..=last)
            .find(|i| !self.domains.contains_key(i))
            .ok_or(Errno::ENOSPC)?;
        self.last_id = id;
        let mut info = DomainInfo {
            domain: id,
            flags: DOMINF_PAUSED,
            max_vcpus,
            max_pages,
            shared_info_frame: 0x777 + u64::from(id),
            ..DomainInfo::default()
        };
        info.name[..name.len()].copy_from_slice(name.as_bytes());
        self.domains.insert(
            id,
            FakeDomain {
                info,
                p2m: BTreeMap::new(),
                ctxt: None,
                pauses: 1,
            },
        );
        Ok(id)
    }

    fn destroy_domain(&mut self, dom: u16) -> Result<(), Errno> {
        self.calls.push(("destroy", dom));
        if let Some(Fail::Destroy(e)) = self.failing(|f| matches!(f, Fail::Destroy(_))) {
            return Err(e);
        }
        if dom == 0 {
            return Err(Errno::EINVAL);
        }
        let d = self.domains.remove(&dom).ok_or(Errno::ESRCH)?;
        self.consoles.remove(&dom);
        self.bound.retain(|_, (g, _)| *g != dom);
        self.ports.remove(&dom);
        assert!(
            d.p2m.values().all(|m| !self.mapped.contains(m)),
            "destroying a domain whose frames dom0 still maps"
        );
        self.free_pages += d.p2m.len() as u64;
        for mfn in d.p2m.values() {
            self.memory.remove(mfn);
        }
        Ok(())
    }

    fn pause_domain(&mut self, dom: u16) -> Result<(), Errno> {
        self.calls.push(("pause", dom));
        let d = self.dom(dom)?;
        d.pauses += 1;
        d.info.flags = (d.info.flags & !(DOMINF_RUNNING | DOMINF_BLOCKED)) | DOMINF_PAUSED;
        Ok(())
    }

    fn unpause_domain(&mut self, dom: u16) -> Result<(), Errno> {
        self.calls.push(("unpause", dom));
        if let Some(Fail::Unpause(e)) = self.failing(|f| matches!(f, Fail::Unpause(_))) {
            return Err(e);
        }
        let d = self.dom(dom)?;
        if d.pauses == 0 {
            return Err(Errno::EINVAL);
        }
        d.pauses -= 1;
        if d.pauses == 0 {
            d.info.flags = (d.info.flags & !DOMINF_PAUSED) | DOMINF_BLOCKED;
        }
        Ok(())
    }

    fn grow_heap(&mut self, _bytes: usize) -> Result<(), Errno> {
        // The host's heap has room.
        Ok(())
    }

    fn pv_control(&mut self, dom: u16, request: &str) -> Result<bool, Errno> {
        self.calls.push(("pv_control", dom));
        self.dom(dom)?;
        if self.ignores_control.contains(&dom) {
            return Ok(false);
        }
        // The fake's other kernels honour control/shutdown at once.
        let reason = if request == "reboot" { ShutdownReason::Reboot } else { ShutdownReason::Poweroff };
        self.guest_shuts_down(dom, reason as u32);
        Ok(true)
    }

    fn shutdown_domain(&mut self, dom: u16, reason: ShutdownReason) -> Result<(), Errno> {
        self.calls.push(("shutdown", dom));
        self.dom(dom)?;
        self.guest_shuts_down(dom, reason as u32);
        Ok(())
    }

    fn populate(&mut self, dom: u16, list: &mut [u64]) -> Result<u64, Errno> {
        self.calls.push(("populate", dom));
        if let Some(Fail::Populate(e)) = self.failing(|f| matches!(f, Fail::Populate(_))) {
            return Err(e);
        }
        let short = self.failing(|f| *f == Fail::PopulateShort).is_some();
        let want = if short { list.len() - 1 } else { list.len() };
        let mut done = 0;
        for slot in list.iter_mut().take(want) {
            if self.free_pages == 0 {
                break;
            }
            let pfn = *slot;
            let mfn = self.next_mfn;
            self.next_mfn += 1;
            self.free_pages -= 1;
            let d = self.dom(dom)?;
            assert!(
                d.p2m.insert(pfn, mfn).is_none(),
                "pfn {pfn} populated twice"
            );
            d.info.tot_pages += 1;
            *slot = mfn;
            done += 1;
        }
        Ok(done)
    }

    fn set_vcpu_context(
        &mut self,
        dom: u16,
        vcpu: u32,
        ctxt: &VcpuGuestContext,
    ) -> Result<(), Errno> {
        self.calls.push(("setvcpucontext", dom));
        if let Some(Fail::VcpuContext(e)) = self.failing(|f| matches!(f, Fail::VcpuContext(_))) {
            return Err(e);
        }
        assert_eq!(vcpu, 0);
        // The L4 must be the domain's and no longer mapped in dom0.
        let l4 = ctxt.ctrlreg[3] >> 12;
        assert!(
            !self.mapped.contains(&l4),
            "L4 still mapped writable in dom0"
        );
        let d = self.dom(dom)?;
        if !d.p2m.values().any(|&m| m == l4) {
            return Err(Errno::EINVAL);
        }
        d.ctxt = Some(*ctxt);
        Ok(())
    }

    fn hypervisor_l4_slots(&mut self) -> [u64; 16] {
        [0x1234_5000 | 0x63; 16]
    }

    fn write_foreign(
        &mut self,
        dom: u16,
        mfns: &[u64],
        write: &mut dyn FnMut(&mut dyn GuestMemory) -> Result<BuiltDomain, BuildError>,
    ) -> Result<BuiltDomain, ForeignError> {
        self.calls.push(("map", dom));
        if self.failing(|f| *f == Fail::Map).is_some() {
            return Err(ForeignError::Map(MmError::OutOfFrames));
        }
        let owned: BTreeSet<u64> = self
            .dom(dom)
            .map_err(|_| ForeignError::Map(MmError::OutOfFrames))?
            .p2m
            .values()
            .copied()
            .collect();
        assert!(
            mfns.iter().all(|m| owned.contains(m)),
            "mapping frames the domain does not own"
        );
        self.mapped.extend(mfns.iter().copied());
        self.max_mapped = self.max_mapped.max(self.mapped.len());
        let result = write(&mut FakeMem {
            memory: &mut self.memory,
            mfns,
        });
        if self.failing(|f| *f == Fail::Unmap).is_some() {
            // Nothing stays mapped in the fake, but the error is reported.
            self.mapped.clear();
            return Err(ForeignError::Unmap(MmError::OutOfFrames));
        }
        self.mapped.clear();
        self.calls.push(("unmap", dom));
        result.map_err(ForeignError::Build)
    }

    fn alloc_guest_port(&mut self, guest: u16) -> Result<u32, Errno> {
        self.calls.push(("alloc_guest_port", guest));
        if !self.domains.contains_key(&guest) {
            return Err(Errno::ESRCH);
        }
        let next = self.ports.entry(guest).or_insert(0);
        *next += 1;
        Ok(*next)
    }

    fn bind_guest_port(&mut self, guest: u16, port: u32) -> Result<u32, Errno> {
        self.calls.push(("bind_guest_port", guest));
        if self.ports.get(&guest).is_none_or(|&n| port == 0 || port > n) {
            return Err(Errno::EINVAL);
        }
        let local = 100 + self.bound.len() as u32;
        self.bound.insert(local, (guest, port));
        Ok(local)
    }

    fn connect_console(
        &mut self,
        dom: u16,
        _name: &str,
        channels: &crate::builder::DomainChannels,
    ) -> Result<(), Errno> {
        self.calls.push(("connect_console", dom));
        self.consoles.insert(dom, *channels);
        Ok(())
    }

    fn connect_store(
        &mut self,
        dom: u16,
        _name: &str,
        _vcpus: u32,
        _channels: &crate::builder::DomainChannels,
    ) -> Result<(), Errno> {
        self.calls.push(("connect_store", dom));
        Ok(())
    }

    fn attach_disk(&mut self, dom: u16, disk: &crate::config::disk::DiskSpec) -> Result<(), String> {
        self.calls.push(("attach_disk", dom));
        if disk.target == "vdz" {
            return Err(String::from("vdz: no such disk (dom0 has vda)"));
        }
        self.disks.push((dom, disk.devid, disk.target.clone()));
        Ok(())
    }

    fn detach_disk(&mut self, dom: u16, devid: u32) -> Result<(), String> {
        self.calls.push(("detach_disk", dom));
        let before = self.disks.len();
        self.disks.retain(|d| !(d.0 == dom && d.1 == devid));
        if before == self.disks.len() {
            return Err(alloc::format!("d{dom} has no virtual disk {devid}"));
        }
        Ok(())
    }

    fn sched_credit(&mut self, dom: u16, set: Option<(u16, u16)>) -> Result<(u16, u16), Errno> {
        self.calls.push(("sched_credit", dom));
        self.dom(dom)?;
        let now = self.sched.entry(dom).or_insert((256, 0));
        if let Some((w, c)) = set {
            if w != 0 {
                now.0 = w;
            }
            if c != u16::MAX {
                now.1 = c;
            }
        }
        Ok(*now)
    }

    fn sched_rtds(&mut self, dom: u16, set: Option<(u32, u32, bool)>) -> Result<crate::builder::RtdsParams, Errno> {
        self.calls.push(("sched_rtds", dom));
        self.dom(dom)?;
        let now = self.rtds.entry(dom).or_insert(crate::builder::RtdsParams { period_us: 10_000, budget_us: 0, extra: true, misses: 0 });
        if let Some((period_us, budget_us, extra)) = set {
            if period_us < 10 || (budget_us != 0 && (budget_us < 10 || budget_us > period_us)) {
                return Err(Errno::EINVAL);
            }
            if budget_us * 2 > period_us {
                // The fake's admission control: at most half the CPU for any one domain.
                return Err(Errno::ENOSPC);
            }
            (now.period_us, now.budget_us, now.extra) = (period_us, budget_us, extra);
        }
        Ok(*now)
    }

    fn attach_nic(&mut self, dom: u16, vif: &crate::config::vif::VifSpec) -> Result<(), String> {
        self.calls.push(("attach_nic", dom));
        if self.nics.iter().any(|n| n.0 == dom && n.1 == vif.devid) {
            return Err(alloc::format!("d{dom} already has a network interface {}", vif.devid));
        }
        self.nics.push((dom, vif.devid));
        Ok(())
    }

    fn detach_nic(&mut self, dom: u16, devid: u32) -> Result<(), String> {
        self.calls.push(("detach_nic", dom));
        let before = self.nics.len();
        self.nics.retain(|n| !(n.0 == dom && n.1 == devid));
        if before == self.nics.len() {
            return Err(alloc::format!("d{dom} has no network interface {devid}"));
        }
        Ok(())
    }

    fn vcpu_info(&mut self, dom: u16, vcpu: u32) -> Result<hypercall_abi::domctl::GetVcpuInfo, Errno> {
        let d = self.dom(dom)?;
        if vcpu >= d.info.max_vcpus {
            return Err(Errno::EINVAL);
        }
        Ok(hypercall_abi::domctl::GetVcpuInfo { vcpu, online: u8::from(vcpu == 0), blocked: u8::from(vcpu == 0), cpu_time: 1_230_000_000, ..Default::default() })
    }

    fn vcpu_affinity(&mut self, dom: u16, vcpu: u32, set: Option<u64>) -> Result<u64, Errno> {
        let d = self.dom(dom)?;
        if vcpu >= d.info.max_vcpus {
            return Err(Errno::EINVAL);
        }
        if let Some(map) = set {
            if map & 0b11 == 0 {
                return Err(Errno::EINVAL);
            }
            self.affinities.retain(|a| (a.0, a.1) != (dom, vcpu));
            self.affinities.push((dom, vcpu, map & 0b11));
        }
        Ok(self.affinities.iter().find(|a| (a.0, a.1) == (dom, vcpu)).map_or(0b11, |a| a.2))
    }

    fn nics(&mut self, dom: u16) -> Vec<crate::netback::NicRow> {
        self.nics
            .iter()
            .filter(|n| n.0 == dom)
            .map(|n| crate::netback::NicRow { devid: n.1, mac: alloc::format!("{}", crate::config::vif::default_mac(dom, n.1)), states: (Some(2), Some(1)), evtchn: None, rings: (None, None), counters: None, refused: 0, overflow: 0 })
            .collect()
    }

    fn disks(&mut self, dom: u16) -> Vec<crate::blkback::DiskRow> {
        self.disks
            .iter()
            .filter(|d| d.0 == dom)
            .map(|d| crate::blkback::DiskRow { devid: d.1, target: d.2.clone(), readonly: false, states: (Some(2), Some(1)), evtchn: None, ring_ref: None, answered: (0, 0) })
            .collect()
    }
}

/// Output written to a String, for comparing lines.
pub fn lines(out: &str) -> Vec<String> {
    out.lines().map(String::from).collect()
}

// The split-driver framework's machine, for its tests and its drivers' (blkback's).

use crate::split::{Device, MapId, PortSource, PortTable, RingSource, SplitMachine};
use crate::xenstore::StoreService;
use alloc::rc::Rc;
use core::cell::RefCell;
use xenbus::ring::{LocalPage, SharedMem};
use xenbus::wire::{self, MsgType};

/// A page both the test (as the front end) and the back end see.
#[derive(Clone)]
pub struct SplitPage(pub Rc<RefCell<Vec<u8>>>);

impl SharedMem for SplitPage {
    fn size(&self) -> usize {
        4096
    }
    fn read_u32(&self, offset: usize) -> u32 {
        let b = self.0.borrow();
        u32::from_le_bytes([b[offset], b[offset + 1], b[offset + 2], b[offset + 3]])
    }
    fn write_u32(&mut self, offset: usize, value: u32) {
        self.0.borrow_mut()[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.0.borrow()[offset..offset + out.len()]);
    }
    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        self.0.borrow_mut()[offset..offset + data.len()].copy_from_slice(data);
    }
}

/// The machine: the store service, the guests' grants and unbound ports, dom0's mappings,
/// ports and the events it sent.
pub struct SplitFake {
    pub store: StoreService<LocalPage>,
    /// (dom, gref) → the granted page.
    pub grants: BTreeMap<(u16, u32), SplitPage>,
    /// Frames of guests (console, store rings).
    pub frames: BTreeMap<(u16, u64), SplitPage>,
    /// (dom, port) the guests left unbound for dom0.
    pub unbound: BTreeSet<(u16, u32)>,
    pub mapped: BTreeMap<MapId, (u16, RingSource)>,
    pub next_map: MapId,
    pub table: PortTable,
    pub masked: BTreeSet<u32>,
    pub next_port: u32,
    pub sent: Vec<u32>,
}

impl SplitFake {
    pub fn new() -> SplitFake {
        SplitFake {
            store: StoreService::new(),
            grants: BTreeMap::new(),
            frames: BTreeMap::new(),
            unbound: BTreeSet::new(),
            mapped: BTreeMap::new(),
            next_map: 0,
            table: PortTable::default(),
            masked: BTreeSet::new(),
            next_port: 10,
            sent: Vec::new(),
        }
    }

    /// A guest page granted to dom0 as `gref`.
    pub fn grant(&mut self, dom: u16, gref: u32) -> SplitPage {
        let page = SplitPage(Rc::new(RefCell::new(vec![0; 4096])));
        self.grants.insert((dom, gref), page.clone());
        page
    }

    pub fn perms(&mut self, path: &str) -> Vec<u8> {
        self.store.request(MsgType::GetPerms, wire::nul_terminated(path.as_bytes())).unwrap()
    }

    pub fn exists(&mut self, path: &str) -> bool {
        self.store.read(path).is_ok()
    }
}

impl SplitMachine for SplitFake {
    type Page = SplitPage;
    type StorePage = LocalPage;

    fn store(&mut self) -> &mut StoreService<LocalPage> {
        &mut self.store
    }

    fn map(&mut self, dom: u16, ring: RingSource) -> Result<(MapId, SplitPage), String> {
        let page = match ring {
            RingSource::Grant(g) => self.grants.get(&(dom, g)),
            RingSource::Frame(f) => self.frames.get(&(dom, f)),
        };
        let page = page.cloned().ok_or("status -3")?;
        let id = self.next_map;
        self.next_map += 1;
        self.mapped.insert(id, (dom, ring));
        Ok((id, page))
    }
    fn unmap(&mut self, map: MapId) {
        assert!(self.mapped.remove(&map).is_some(), "unmapped twice");
    }
    fn bind(&mut self, device: Device, port: PortSource) -> Result<u32, String> {
        let local = match port {
            PortSource::Remote(p) => {
                if !self.unbound.remove(&(device.key.dom, p)) {
                    return Err(String::from("EINVAL"));
                }
                self.next_port += 1;
                self.next_port
            }
            PortSource::Local(p) => p,
        };
        assert!(self.table.enter(local, device));
        self.masked.insert(local);
        Ok(local)
    }
    fn unmask(&mut self, port: u32) {
        self.masked.remove(&port);
    }
    fn unbind(&mut self, port: u32) {
        assert!(self.table.forget(port).is_some(), "port {port} was not bound");
        self.masked.remove(&port);
    }
    fn notify(&mut self, port: u32) {
        self.sent.push(port);
    }
}

