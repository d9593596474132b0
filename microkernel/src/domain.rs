//! Domains and vCPUs as the microkernel keeps them, and what the control operations of
//! `domctl` do to them (dom0's toolstack drives these; see hypercall-abi's domctl.rs).
#![forbid(unsafe_code)]

use crate::arch::x86_64::{cpu, frames};
use crate::arch::GuestFrame;
use crate::hypercall::{DomainControl, DomainName};
use crate::kernel::Machine;
use crate::mkprintln;
use crate::mm::page_info::{DomainMm, Level};
use crate::traps::{GsBases, GuestMode, TrapTable};
use alloc::vec::Vec;
use hypercall_abi::arch::VcpuGuestContext;
use hypercall_abi::vcpu::RUNSTATE_RUNNING;
use hypercall_abi::domctl::*;
use hypercall_abi::errno::Errno;
use hypercall_abi::sched::ShutdownReason;
use hypercall_abi::shared_info::SharedInfo;

/// Where a domain is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomState {
    /// Runnable (unless paused).
    Running,
    /// Shut itself down (or was asked to).
    Shutdown(ShutdownReason),
    /// Stopped for a fault.
    Crashed,
    /// Destroyed; some of its frames are still referenced by another domain.
    Dying,
}

/// A virtual CPU's state while it is not running.
#[derive(Clone, Debug, Default)]
pub struct Vcpu {
    /// Registers (the frame it last left the CPU with, or its initial state).
    pub frame: GuestFrame,
    /// Has an initial state (Xen's `is_initialised`): may run once up.
    pub started: bool,
    /// Down (Xen's `_VPF_down`): initialised by `VCPUOP_initialise` and not yet brought
    /// up, or taken down by `VCPUOP_down`; it does not run.
    pub down: bool,
    /// FS base (one for both guest modes, as in Xen).
    pub fs_base: u64,
    /// The GS bases of guest kernel and user mode. While the vCPU runs, the CPU holds the
    /// base of its current mode and that field here is stale (see [`save_bases`]).
    pub gs: GsBases,
    /// Guest kernel or guest user mode (Xen's `TF_kernel_mode`).
    pub mode: GuestMode,
    /// Last page-fault address, as `mov %cr2` reads it.
    pub cr2: u64,
    /// The guest's virtual IDT (`set_trap_table`).
    pub traps: TrapTable,
    /// The guest kernel's stack for events that arrive in guest user mode (`stack_switch`).
    pub kernel_sp: u64,
    /// Event, failsafe and syscall callbacks (`callback_op`).
    pub callbacks: crate::traps::Callbacks,
    /// Blocked in `SCHEDOP_block` until an event is pending.
    pub blocked: bool,
    /// One-shot timer (`set_timer_op`): system time in ns at which VIRQ_TIMER is raised;
    /// 0 for none.
    pub timer_ns: u64,
    /// Period of the periodic timer (`VCPUOP_set_periodic_timer`), ns; 0 for none.
    pub periodic_ns: u64,
    /// When the periodic timer next raises VIRQ_TIMER (system time, ns; 0 for never).
    pub periodic_next_ns: u64,
    /// Its runstate, changed at every switch.
    pub runstate: crate::runstate::Runstate,
    /// Guest virtual address its runstate is written to at every change (0: none).
    pub runstate_area: u64,
    /// What `SCHEDOP_poll` waits for, when [`Poll::active`] (with `blocked` set); see
    /// [`Vcpu::polling`]. Kept in place between polls: building a fresh one zero-filled
    /// its 512-byte port array on every poll.
    pub poll: Poll,
    /// x87/SSE registers while the vCPU is not running.
    pub fpu: crate::arch::x86_64::fpu::FpuState,
    /// Virtual CR0.TS (`fpu_taskswitch`): its next FPU instruction raises #NM.
    pub fpu_ts: bool,
    /// Virtual IOPL (`PHYSDEVOP_set_iopl`), in rflags' IOPL bits (12..13), as Xen's
    /// `arch.pv.iopl`.
    pub iopl: u64,
    /// I/O bitmap (`PHYSDEVOP_set_iobitmap`): its guest address and the ports it covers.
    pub iobmp: u64,
    /// Ports the I/O bitmap covers (0: none).
    pub iobmp_limit: u32,
    /// Its GDT (`set_gdt`): the descriptor-table frames, held by the domain's memory state.
    pub gdt_frames: heapless::Vec<u64, { crate::hypercall::descriptor::MAX_GDT_FRAMES }>,
    /// Entries of its GDT.
    pub gdt_entries: u32,
    /// The CR4 bits it set for itself (`cpu::CR4_GUEST_BITS`), loaded while it runs.
    pub cr4: u64,
    /// Its LDT (`MMUEXT_SET_LDT`): the descriptor frame of each page (none where the page
    /// was not mapped or not acceptable: those entries read as empty and fault on use, as
    /// Xen's lazily mapped LDT would).
    pub ldt_frames: heapless::Vec<Option<u64>, 16>,
    /// Entries of its LDT (0: none).
    pub ldt_entries: u32,
    /// Machine address of its `vcpu_info` once registered (`VCPUOP_register_vcpu_info`);
    /// until then the one in shared_info.
    pub vcpu_info: Option<u64>,
    /// Its debug registers (`set_debugreg`), in the hardware while it runs with a
    /// breakpoint enabled.
    pub debug: crate::traps::DebugRegs,
    /// The CPU whose run queue it waits on (Xen's `v->processor`); balancing moves it.
    pub processor: usize,
    /// The CPUs it may run on (`xl vcpu-pin`, the config's `cpus=`), a bit each; `None`:
    /// any.
    pub pinned: Option<u64>,
}

/// Loads `v`'s LDT into the hardware (at a switch to it, or when it changed).
pub fn load_ldt(v: &Vcpu) {
    let frames = &v.ldt_frames;
    crate::arch::x86_64::gdt::load_ldt(v.ldt_entries as usize, |i| match frames.get(i / 512) {
        Some(&Some(mfn)) => crate::mm_machine::frame_word(mfn, i % 512),
        _ => 0,
    });
}

/// Loads `v`'s GDT into the hardware table (at a switch to it, or when it changed).
pub fn load_gdt(v: &Vcpu) {
    let frames = &v.gdt_frames;
    crate::arch::x86_64::gdt::load_guest(v.gdt_entries as usize, |i| match frames.get(i / 512) {
        Some(&mfn) => crate::mm_machine::frame_word(mfn, i % 512),
        None => 0,
    });
}

/// Whether the domain asked for `VMASST_TYPE_architectural_iopl`: its kernel counts as
/// ring 0 for I/O, `iret` sets the virtual IOPL and bounce frames show it.
pub fn architectural_iopl(mm: &crate::mm::page_info::DomainMm) -> bool {
    mm.vm_assist() & (1 << hypercall_abi::arch::VMASST_TYPE_ARCHITECTURAL_IOPL) != 0
}

/// The IOPL bits bounce and failsafe frames show for `v` (Xen's `vcpu_iopl`... as
/// `create_bounce_frame` reads it): its virtual IOPL with the architectural assist, else 0.
pub fn shown_iopl(v: &Vcpu, mm: &crate::mm::page_info::DomainMm) -> u64 {
    if architectural_iopl(mm) {
        v.iopl
    } else {
        0
    }
}

/// Xen's `iopl_ok`: whether `v`'s virtual IOPL allows I/O instructions in its current
/// mode (the kernel counts as ring 1, or ring 0 with the architectural assist; its
/// processes as ring 3).
pub fn iopl_ok(v: &Vcpu, mm: &crate::mm::page_info::DomainMm) -> bool {
    let cpl = match v.mode {
        GuestMode::Kernel if architectural_iopl(mm) => 0,
        GuestMode::Kernel => 1,
        GuestMode::User => 3,
    };
    (cpl << 12) <= v.iopl
}

/// What a vCPU in `SCHEDOP_poll` waits for.
#[derive(Clone, Debug, Default)]
pub struct Poll {
    /// The vCPU is in `SCHEDOP_poll`: the fields below are its wait.
    pub active: bool,
    /// Ports whose event ends the poll, masked or not.
    pub ports: heapless::Vec<u32, { crate::hypercall::sched::MAX_POLL_PORTS }>,
    /// System time (ns) at which the poll ends anyway; 0 for never.
    pub deadline_ns: u64,
}

impl Vcpu {
    /// The CPUs it may run on, a bit each.
    pub fn affinity(&self) -> u64 {
        self.pinned.unwrap_or(u64::MAX)
    }

    /// Whether it set CR4.DE (debugging extensions: DR4/DR5 do not alias, I/O breakpoints).
    pub fn cr4_de(&self) -> bool {
        self.cr4 & (1 << 3) != 0
    }

    /// `set_debugreg` (or an emulated `mov` to `%drN`) for this vCPU, which is the running
    /// one: checked by [`crate::traps::DebugRegs::set`], then loaded into the hardware.
    pub fn set_debugreg(&mut self, reg: u32, value: u64) -> Result<(), hypercall_abi::errno::Errno> {
        let de = self.cr4_de();
        self.debug.set(reg, value, de)?;
        crate::arch::x86_64::debugreg::load(&self.debug);
        Ok(())
    }

    /// `get_debugreg` (or an emulated `mov` from `%drN`).
    pub fn get_debugreg(&self, reg: u32) -> Result<u64, hypercall_abi::errno::Errno> {
        self.debug.get(reg, self.cr4_de())
    }

    /// Ends a block or poll: the vCPU may run again.
    pub fn unblock(&mut self) {
        self.blocked = false;
        self.poll.active = false;
    }

    /// The `SCHEDOP_poll` this vCPU is in, if any.
    pub fn polling(&self) -> Option<&Poll> {
        self.poll.active.then_some(&self.poll)
    }
}

/// Most bytes of a console line kept before it is printed anyway.
pub const CONSOLE_LINE: usize = 160;

/// A domain as the microkernel keeps it.
pub struct Domain {
    /// Domain id.
    pub id: u16,
    /// Name (printed before its console lines).
    pub name: DomainName,
    /// Control privilege.
    pub privileged: bool,
    /// Life state.
    pub state: DomState,
    /// Pauses by the toolstack (a count).
    pub pause_count: u32,
    /// A toolstack pause is counted and waits for a vCPU still running on another CPU to
    /// leave it (the pause call continues until it has: Xen's `vcpu_sleep_sync`).
    pub pause_syncing: bool,
    /// A destroy under way: its memory is given back in steps, the destroying hypercall
    /// continuing itself between them (Xen's preemptible `domain_kill`).
    pub teardown: Option<crate::mm::teardown::Teardown>,
    /// vCPUs.
    pub vcpus: Vec<Vcpu>,
    /// Machine frame of shared_info.
    pub shared_info_mfn: u64,
    /// Reservation, base pointers and memory-management settings.
    pub mm: DomainMm,
    /// CPU time used, in TSC ticks.
    pub cpu_ticks: u64,
    /// Console output not yet printed (waiting for its newline).
    pub console_line: heapless::Vec<u8, CONSOLE_LINE>,
    /// TSC when it first ran (0: not yet).
    pub first_run_tsc: u64,
    /// Its watchdogs (`SCHEDOP_watchdog`).
    pub watchdogs: crate::watchdog::Watchdogs,
}

impl Domain {
    /// Machine address of vCPU `v`'s `vcpu_info`: the registered one, or its slot in
    /// shared_info (`None` past the 32 slots, with none registered).
    pub fn vcpu_info_at(&self, v: usize) -> Option<u64> {
        match self.vcpus.get(v).and_then(|c| c.vcpu_info) {
            Some(at) => Some(at),
            None => (v < 32).then(|| (self.shared_info_mfn << 12) + VCPU_INFO_SIZE * v as u64),
        }
    }

    /// A new, paused domain with no memory and `max_vcpus` unstarted vCPUs.
    pub fn new(id: u16, name: DomainName, privileged: bool, max_vcpus: u32, max_pages: u64) -> Self {
        Domain {
            id,
            name,
            privileged,
            state: DomState::Running,
            pause_count: 1,
            pause_syncing: false,
            teardown: None,
            vcpus: (0..max_vcpus).map(|_| Vcpu::default()).collect(),
            shared_info_mfn: 0,
            mm: DomainMm::new(id, privileged, max_pages),
            cpu_ticks: 0,
            console_line: heapless::Vec::new(),
            first_run_tsc: 0,
            watchdogs: crate::watchdog::Watchdogs::default(),
        }
    }

    /// Whether vCPU `v` may be scheduled.
    pub fn runnable(&self, v: usize) -> bool {
        self.state == DomState::Running
            && self.pause_count == 0
            && self.vcpus.get(v).is_some_and(|c| c.started && !c.down && !c.blocked)
    }

    /// `DOMINF_*` flags, the shutdown reason.
    fn info_flags(&self, current: bool) -> (u32, u32) {
        let mut f = 0;
        let mut reason = 0;
        match self.state {
            DomState::Running => {}
            DomState::Shutdown(r) => {
                f |= DOMINF_SHUTDOWN;
                reason = r as u32;
            }
            DomState::Crashed => {
                f |= DOMINF_CRASHED;
                reason = ShutdownReason::Crash as u32;
            }
            DomState::Dying => f |= DOMINF_DYING,
        }
        if self.pause_count > 0 {
            f |= DOMINF_PAUSED;
        }
        if current {
            f |= DOMINF_RUNNING;
        } else if self.state == DomState::Running && self.vcpus.iter().any(|v| v.started) && self.vcpus.iter().filter(|v| v.started).all(|v| v.blocked) {
            // Xen's rule: blocked when every vCPU that can run is blocked.
            f |= DOMINF_BLOCKED;
        }
        if self.privileged {
            f |= DOMINF_PRIVILEGED;
        }
        (f, reason)
    }
}

/// `arch.max_pfn` of the `shared_info` in frame `mfn` (which its guest may change).
pub fn shared_max_pfn(mfn: u64) -> u64 {
    // A domain's shared_info frame, held by the hypervisor for the domain's life.
    let at = core::mem::offset_of!(SharedInfo, arch) + core::mem::offset_of!(hypercall_abi::shared_info::ArchSharedInfo, max_pfn);
    frames::read_u64((mfn << 12) + at as u64)
}

/// Fills a fresh `shared_info`: events masked on every vCPU, vCPU 0's time info, the wall
/// clock.
pub fn init_shared_info(mfn: u64, tsc_khz: u64, boot_tsc: u64, max_pfn: u64, wc: crate::time::WallClock) {
    // A frame just allocated for this domain's shared_info, referenced by nothing else
    // yet: filled here, then written whole (SharedInfo, 3136 bytes, fits in it).
    use zerocopy::{FromZeros, IntoBytes};
    let mut si = alloc::boxed::Box::new(SharedInfo::new_zeroed());
    {
        let si = &mut *si;
        for v in si.vcpu_info.iter_mut() {
            v.evtchn_upcall_mask = 1;
        }
        // Every vCPU's clock, not vCPU 0's only: a secondary vCPU reads its own
        // vcpu_info's (Linux's CPU 1 with a zero clock re-armed its timer for ever).
        let scale = crate::time::TimeScale::for_frequency(tsc_khz * 1000);
        for v in si.vcpu_info.iter_mut() {
            let t = &mut v.time;
            t.version = 2;
            t.tsc_timestamp = boot_tsc;
            t.system_time = 0;
            t.tsc_to_system_mul = scale.mul_frac;
            t.tsc_shift = scale.shift;
        }
        si.arch.max_pfn = max_pfn;
        // Set once, before the guest can look: an even version, never changed after.
        si.wc_version = 2;
        si.wc_sec = wc.sec as u32;
        si.wc_sec_hi = (wc.sec >> 32) as u32;
        si.wc_nsec = wc.nsec;
    }
    frames::zero(mfn);
    frames::write_bytes(mfn << 12, si.as_bytes());
}

fn canonical(v: u64) -> bool {
    let top = v >> 47;
    top == 0 || top == 0x1_ffff
}

impl Machine {
    /// The first part of a destroy, all at once: domain `i` is dying, its ports and grants
    /// go, and the teardown of its memory starts (in steps: `DomainControl::destroy_domain`).
    fn begin_teardown(&mut self, i: usize) {
        let domid = self.domains[i].id;
        self.domains[i].state = DomState::Dying;
        // Its ports close (remote ends go back to unbound) before its shared_info goes.
        self.events.remove_domain(hypercall_abi::types::DomId(domid));
        self.apply_line_changes();
        for v in self.domains[i].vcpus.iter_mut() {
            v.started = false;
        }
        // Its grants go before its memory (the table frames are given back with it):
        // its mappings release their pins in their granters' tables, and other
        // domains' mappings of its grants become orphans (their frames live on in
        // their entries).
        let g = self.grants.remove_domain(&mut crate::grants_machine::DirectEntries, domid);
        // Its device halves held their frames' references: those go too.
        for &(frame, writable) in &g.device_frames {
            self.with_mm(i, |mm| mm.grant_copy_release(frame, writable));
        }
        if g.mappings_released + g.mappings_orphaned > 0 {
            mkprintln!(
                "d{} grants: {} own mappings released, {} mappings of its grants orphaned",
                domid,
                g.mappings_released,
                g.mappings_orphaned
            );
        }
        self.domains[i].teardown = Some(crate::mm::teardown::Teardown::new(self.domains[i].mm.released()));
    }

    /// Index of domain `domid` if it exists and is not dying.
    pub(crate) fn live_idx(&self, domid: u16) -> Result<usize, Errno> {
        let i = self.idx(domid).ok_or(Errno::ESRCH)?;
        if self.domains[i].state == DomState::Dying {
            return Err(Errno::ESRCH);
        }
        Ok(i)
    }
}

impl DomainControl for Machine {
    fn create_domain(&mut self, name: DomainName, max_vcpus: u32, max_pages: u64, max_evtchn_port: u32, grants: grant_tables::Limits) -> Result<u16, Errno> {
        if self.domains.iter().any(|d| d.state != DomState::Dying && d.name == name) {
            return Err(Errno::EEXIST);
        }
        let id = crate::hypercall::domctl::next_domid(self.last_domid, |id| self.idx(id).is_some()).ok_or(Errno::ENOSPC)?;
        let mut d = Domain::new(id, name, false, max_vcpus, max_pages);
        let si = self.frames.alloc().ok_or(Errno::ENOMEM)?;
        init_shared_info(si, self.tsc_khz, self.boot_tsc, 0, self.wallclock);
        let layout = crate::events_machine::MachineLayout::new(crate::events_machine::SharedInfoEvents::new(si));
        let dom = hypercall_abi::types::DomId(id);
        let mut config = crate::event::DomainConfig::guest(max_vcpus);
        if max_evtchn_port != 0 {
            config.port_limit = max_evtchn_port.saturating_add(1).min(crate::event::DEFAULT_PORT_LIMIT);
        }
        if let Err(e) = self.events.add_domain(dom, config, layout) {
            let _ = self.frames.free(si);
            return Err(e);
        }
        if let Err(e) = self.frame_table.share_with_guest(si, &mut d.mm) {
            self.events.remove_domain(dom);
            let _ = self.frames.free(si);
            return Err(e);
        }
        d.shared_info_mfn = si;
        self.grants.add_domain(id, grants);
        self.last_domid = id;
        mkprintln!(
            "d{} ({}) created: {} vCPU(s), up to {} pages, event channel ports 1..{}",
            id,
            name.as_str(),
            max_vcpus,
            max_pages,
            config.port_limit - 1
        );
        if grants != grant_tables::Limits::default() {
            mkprintln!(
                "d{} ({}) grant limits: {} grant frames, {} maptrack frames",
                id,
                name.as_str(),
                grants.max_grant_frames,
                grants.max_maptrack_frames
            );
        }
        self.sched.add_domain(id, d.vcpus.len());
        // Kept in id order (ids come from a rover and wrap), so that a domain is found by
        // binary search on the scheduler's path.
        let at = self.domains.partition_point(|x| x.id < id);
        self.domains.insert(at, d);
        Ok(id)
    }

    fn sched_policy(&self) -> crate::sched::Policy {
        self.sched.policy()
    }

    fn vcpu_state(&mut self, domid: u16, vcpu: u32) -> Result<crate::hypercall::domctl::VcpuState, Errno> {
        let i = self.live_idx(domid)?;
        let now = self.now_ns();
        let on = self.running_on((domid, vcpu as usize));
        let v = self.domains[i].vcpus.get(vcpu as usize).ok_or(Errno::EINVAL)?;
        let time = v.runstate.info(now).time[RUNSTATE_RUNNING as usize];
        Ok(crate::hypercall::domctl::VcpuState {
            up: v.started && !v.down,
            blocked: v.blocked,
            running: on.is_some(),
            cpu_time: time,
            cpu: on.unwrap_or(v.processor) as u32,
        })
    }

    fn vcpu_affinity(&mut self, domid: u16, vcpu: u32, set: Option<u64>) -> Result<u64, Errno> {
        let i = self.live_idx(domid)?;
        let v = vcpu as usize;
        self.domains[i].vcpus.get(v).ok_or(Errno::EINVAL)?;
        let online = if self.cpus.len() >= 64 { u64::MAX } else { (1u64 << self.cpus.len()) - 1 };
        if let Some(map) = set {
            let map = map & online;
            if map == 0 {
                return Err(Errno::EINVAL);
            }
            let c = &mut self.domains[i].vcpus[v];
            c.pinned = (map != online).then_some(map);
            // Off a CPU it may no longer use: it waits on one it may, and leaves the one it
            // runs on at once.
            if !crate::sched::balance::allowed(map, c.processor) {
                self.place_vcpu(i, v);
            }
            let key = (domid, v);
            if self.running_on(key).is_some_and(|cpu| !crate::sched::balance::allowed(map, cpu)) {
                self.kick_vcpu(key);
            }
            if self.domains[i].runnable(v) && self.running_on(key).is_none() {
                let now = self.now_ns();
                self.scheduler_wake(key, now);
            }
        }
        Ok(self.domains[i].vcpus[v].affinity() & online)
    }

    fn sched_params(&mut self, domid: u16, set: Option<crate::sched::Params>) -> Result<crate::sched::Params, Errno> {
        use crate::sched::ParamError;
        self.live_idx(domid)?;
        let errno = |e| match e {
            ParamError::NoDomain => Errno::ESRCH,
            ParamError::Invalid | ParamError::WrongScheduler => Errno::EINVAL,
            // The reservations would take more than the CPU: no room for this one.
            ParamError::Unschedulable => Errno::ENOSPC,
        };
        if let Some(p) = set {
            self.sched.set_params(domid, p).map_err(errno)?;
        }
        self.sched.params(domid).map_err(errno)
    }

    fn destroy_domain(&mut self, domid: u16) -> Result<(), Errno> {
        let i = self.idx(domid).ok_or(Errno::ESRCH)?;
        if self.domains[i].state != DomState::Dying {
            if self.domains[i].privileged {
                return Err(Errno::EPERM);
            }
            // A vCPU of it still runs on another CPU: it is stopped there first (paused
            // and kicked), and the call starts again once this CPU has let the others in
            // (Xen's `domain_kill` is a continuation too). Nothing is torn down meanwhile.
            if self.cpus_running(domid) != 0 {
                let d = &mut self.domains[i];
                d.pause_count = d.pause_count.saturating_add(1);
                self.kick_domain(domid);
                return Err(Errno::ERESTART);
            }
            self.begin_teardown(i);
        }
        // Its memory, one bounded step per entry: the hypercall continues itself until
        // the last step. A dying domain whose teardown is over (kept only for frames
        // other domains still map) is gone already.
        let Some(mut t) = self.domains[i].teardown.take() else { return Err(Errno::ESRCH) };
        let Some(r) = self.with_mm(i, |mm| mm.relinquish_some(&mut t, crate::mm::teardown::STEP_WORK)) else {
            self.domains[i].teardown = Some(t);
            return Err(Errno::ERESTART);
        };
        let name = self.domains[i].name;
        if r.held == 0 {
            mkprintln!("d{} ({}) destroyed: {} frames returned", domid, name.as_str(), r.released);
        } else {
            mkprintln!(
                "d{} ({}) destroyed: {} frames returned, {} still mapped by another domain",
                domid,
                name.as_str(),
                r.released,
                r.held
            );
        }
        self.reap();
        self.raise_dom0_virq(hypercall_abi::event_channel::VIRQ_DOM_EXC);
        Ok(())
    }

    fn pause_domain(&mut self, domid: u16, pause: bool) -> Result<(), Errno> {
        let i = self.live_idx(domid)?;
        let d = &mut self.domains[i];
        if pause {
            // Counted once; then, while a vCPU of it still runs on another CPU (kicked), the
            // call starts again after this CPU has let the lock go, as Xen's pause waits
            // for the vCPUs to be descheduled. It returns once none runs.
            if !d.pause_syncing {
                d.pause_count = d.pause_count.checked_add(1).ok_or(Errno::EINVAL)?;
                self.kick_domain(domid);
            }
            let others = self.cpus_running(domid) & !(1u64 << crate::arch::x86_64::cpu::this_cpu());
            self.domains[i].pause_syncing = others != 0;
            if others != 0 {
                return Err(Errno::ERESTART);
            }
        } else {
            d.pause_count = d.pause_count.checked_sub(1).ok_or(Errno::EINVAL)?;
            if d.pause_count == 0 {
                self.wake_domain(i);
            }
        }
        Ok(())
    }

    fn domain_info(&mut self, domid: u16) -> Result<DomainInfo, Errno> {
        let d = self.domains.iter().filter(|d| d.id >= domid).min_by_key(|d| d.id).ok_or(Errno::ESRCH)?;
        let (flags, shutdown_reason) = d.info_flags(self.cpus_running(d.id) != 0);
        Ok(DomainInfo {
            domain: d.id,
            _pad0: 0,
            flags,
            shutdown_reason,
            max_vcpus: d.vcpus.len() as u32,
            tot_pages: d.mm.tot_pages(),
            max_pages: d.mm.max_pages(),
            shared_info_frame: d.shared_info_mfn,
            cpu_time_ns: self.ticks_to_ns(d.cpu_ticks),
            name: d.name.raw(),
            first_run_ns: match d.first_run_tsc {
                0 => 0,
                t => self.ticks_to_ns(t.wrapping_sub(self.boot_tsc)),
            },
        })
    }

    fn set_max_mem(&mut self, domid: u16, max_pages: u64) -> Result<(), Errno> {
        let i = self.live_idx(domid)?;
        let mm = &mut self.domains[i].mm;
        if max_pages < mm.tot_pages() {
            return Err(Errno::EINVAL);
        }
        mm.set_max_pages(max_pages);
        Ok(())
    }

    fn set_vcpu_context(&mut self, domid: u16, vcpu: u32, c: &VcpuGuestContext) -> Result<(), Errno> {
        let i = self.live_idx(domid)?;
        let d = &self.domains[i];
        if d.pause_count == 0 || d.state != DomState::Running {
            return Err(Errno::EBUSY);
        }
        // Secondary vCPUs come up through VCPUOP_initialise/up, which arrive with events.
        if vcpu != 0 || d.vcpus.is_empty() {
            return Err(Errno::EINVAL);
        }
        if d.vcpus[0].started {
            return Err(Errno::EBUSY);
        }
        // The toolstack's first vCPU starts up (libxc sets `VGCF_online` for it).
        self.apply_vcpu_context(i, 0, c, true)?;
        self.place_vcpu(i, 0);
        Ok(())
    }

    fn remote_shutdown(&mut self, domid: u16, reason: ShutdownReason) -> Result<(), Errno> {
        let i = self.live_idx(domid)?;
        let d = &mut self.domains[i];
        if d.state == DomState::Running {
            d.state = DomState::Shutdown(reason);
            mkprintln!("d{} ({}) shutdown: {} (asked by dom0)", d.id, d.name.as_str(), reason_name(reason));
            self.kick_domain(domid);
            self.raise_dom0_virq(hypercall_abi::event_channel::VIRQ_DOM_EXC);
        }
        Ok(())
    }
}

impl Machine {
    /// Gives vCPU `vcpu` of domain index `i` its initial state from `c` (Xen's
    /// `arch_set_info_guest`): registers (selectors raised to ring 3 as Xen does, `rip`,
    /// `rsp` and the kernel stack canonical, flags sanitised, their IOPL the vCPU's
    /// virtual one), segment bases, kernel stack, callbacks, virtual IDT, and its base
    /// pointer (`ctrlreg[3]`, pinned and held for this vCPU), and its GDT (`gdt_frames`,
    /// `gdt_ents`: each frame taken as a descriptor table, as `set_gdt` takes them, which
    /// Linux's secondary CPUs rely on). An LDT in the context is refused (`EINVAL`): set
    /// it with `MMUEXT_SET_LDT` once running. `online` leaves it up; otherwise it waits
    /// for `VCPUOP_up`. Nothing changes if it fails.
    fn apply_vcpu_context(&mut self, i: usize, vcpu: usize, c: &VcpuGuestContext, online: bool) -> Result<(), Errno> {
        if c.ldt_ents != 0 {
            return Err(Errno::EINVAL);
        }
        let gdt = crate::hypercall::descriptor::context_gdt(&c.gdt_frames, c.gdt_ents)?;
        let old_gdt = self.domains[i].vcpus.get(vcpu).ok_or(Errno::EINVAL)?.gdt_frames.clone();
        let mut traps = crate::traps::TrapTable::default();
        traps.load_context(&c.trap_ctxt)?;
        let mut callbacks = crate::traps::Callbacks::default();
        callbacks.load_context(c.event_callback_eip, c.failsafe_callback_eip, c.syscall_callback_eip, c.flags)?;
        let r = &c.user_regs;
        let (cs, ss) = crate::hypercall::vcpu::context_selectors(r.cs, r.ss)?;
        if !canonical(r.rip) || !canonical(r.rsp) || !canonical(c.kernel_sp) {
            return Err(Errno::EINVAL);
        }
        for b in [c.fs_base, c.gs_base_kernel, c.gs_base_user] {
            if !canonical(b) {
                return Err(Errno::EINVAL);
            }
        }
        let l4 = c.ctrlreg[3] >> 12;
        // The new GDT's frames are taken before anything else changes, the old ones let
        // go only once everything has.
        self.with_mm(i, |mm| mm.set_gdt_frames(&[], &gdt))?;
        let before = self.domains[i].mm.active_vcpu();
        self.domains[i].mm.set_active_vcpu(vcpu);
        // The toolstack's first vCPU: its L4 is pinned here (our builder leaves that to
        // this call). A vCPU the guest brings up takes a reference on the table, as Xen's
        // `arch_set_info_guest` does (the guest pinned it itself).
        let pin = vcpu == 0 && online;
        let installed = self.with_mm(i, |mm| {
            if pin {
                mm.pin(l4, Level::L4)?;
            }
            if let Err(e) = mm.install_baseptr(l4) {
                if pin {
                    let _ = mm.unpin(l4);
                }
                return Err(e);
            }
            Ok(())
        });
        self.domains[i].mm.set_active_vcpu(before);
        if let Err(e) = installed {
            let _ = self.with_mm(i, |mm| mm.set_gdt_frames(&gdt, &[]));
            return Err(e);
        }
        let _ = self.with_mm(i, |mm| mm.set_gdt_frames(&old_gdt, &[]));
        let frame = GuestFrame {
            r15: r.r15,
            r14: r.r14,
            r13: r.r13,
            r12: r.r12,
            rbp: r.rbp,
            rbx: r.rbx,
            r11: r.r11,
            r10: r.r10,
            r9: r.r9,
            r8: r.r8,
            rax: r.rax,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            vector: 0,
            error: 0,
            rip: r.rip,
            cs: u64::from(cs),
            rflags: (r.rflags | 0x202) & !(0x3000 | 0x4000 | 0x2_0000 | 0x4_0000 | 0x1_0000 | 0x100),
            rsp: r.rsp,
            ss: u64::from(ss),
        };
        let Some(v) = self.domains[i].vcpus.get_mut(vcpu) else { return Err(Errno::EINVAL) };
        // What the guest registered for the vCPU apart from its context stays, as in Xen:
        // Linux registers a secondary CPU's vcpu_info and runstate area before its
        // context.
        let (vcpu_info, runstate, runstate_area) = (v.vcpu_info, v.runstate, v.runstate_area);
        let (processor, pinned) = (v.processor, v.pinned);
        *v = Vcpu {
            vcpu_info,
            runstate,
            runstate_area,
            processor,
            pinned,
            frame,
            started: true,
            down: !online,
            traps,
            callbacks,
            fs_base: c.fs_base,
            gs: GsBases { kernel: c.gs_base_kernel, user: c.gs_base_user },
            kernel_sp: c.kernel_sp,
            // The context's IOPL is the vCPU's virtual one (Xen: `v->arch.pv.iopl =
            // eflags & X86_EFLAGS_IOPL`); Linux gives its secondary CPUs ring 1's.
            iopl: r.rflags & 0x3000,
            gdt_entries: if gdt.is_empty() { 0 } else { c.gdt_ents as u32 },
            gdt_frames: gdt,
            ..Vcpu::default()
        };
        Ok(())
    }

    /// `VCPUOP_initialise` for vCPU `vcpu` of domain index `i`: `EEXIST` if it has a state
    /// already; it stays down until `VCPUOP_up` (unless `VGCF_online`).
    pub fn initialise_vcpu(&mut self, i: usize, vcpu: usize, c: &VcpuGuestContext) -> Result<(), Errno> {
        let v = self.domains.get(i).and_then(|d| d.vcpus.get(vcpu)).ok_or(Errno::ENOENT)?;
        if v.started {
            return Err(Errno::EEXIST);
        }
        self.apply_vcpu_context(i, vcpu, c, c.flags & hypercall_abi::arch::VGCF_ONLINE != 0)
    }
}

/// The word for a shutdown reason in console lines.
pub fn reason_name(r: ShutdownReason) -> &'static str {
    match r {
        ShutdownReason::Poweroff => "poweroff",
        ShutdownReason::Reboot => "reboot",
        ShutdownReason::Suspend => "suspend",
        ShutdownReason::Crash => "crash",
        ShutdownReason::Watchdog => "watchdog",
        ShutdownReason::SoftReset => "soft_reset",
    }
}

/// Offsets in `vcpu_info`: the two flags and the saved cr2 (`struct vcpu_info`).
const VI_UPCALL_PENDING: u64 = 0;
const VI_UPCALL_MASK: u64 = 1;
const VI_PENDING_SEL: u64 = 8;
const VI_CR2: u64 = 16;
/// Size of `struct vcpu_info`.
pub const VCPU_INFO_SIZE: u64 = 64;

/// Reads a vCPU's `evtchn_upcall_mask` from its `vcpu_info` at machine address `at`
/// ([`Domain::vcpu_info_at`]; `None`: it has none, and counts as masked).
pub fn upcall_mask(at: Option<u64>) -> u8 {
    let Some(at) = at else { return 1 };
    // A vcpu_info the hypervisor keeps for the domain's life (in its shared_info frame, or
    // a frame it registered and the domain holds a reference on).
    frames::read_u8(at + VI_UPCALL_MASK)
}

/// Reads a vCPU's `evtchn_upcall_pending` (see [`upcall_mask`]).
pub fn upcall_pending(at: Option<u64>) -> bool {
    let Some(at) = at else { return false };
    // As in `upcall_mask`, for the pending flag.
    frames::read_u8(at + VI_UPCALL_PENDING) != 0
}

/// Sets a vCPU's `evtchn_upcall_mask`, and for a page fault `arch.cr2` (see
/// [`upcall_mask`]).
pub fn set_upcall_mask_and_cr2(at: Option<u64>, mask: u8, cr2: Option<u64>) {
    let Some(at) = at else { return };
    // As in `upcall_mask`; plain stores into the vcpu_info, which the guest only reads or
    // updates with single-byte/word accesses of its own.
    frames::write_u8(at + VI_UPCALL_MASK, mask);
    if let Some(a) = cr2 {
        frames::write_u64(at + VI_CR2, a);
    }
}

/// `VCPUOP_register_vcpu_info`'s move (Xen's `map_vcpu_info`): the vCPU's `vcpu_info` is
/// copied from `from` to `to` (both machine addresses of 64 bytes in frames the domain
/// holds), then every event is marked pending there, so that none is lost in the move.
pub fn move_vcpu_info(from: Option<u64>, to: u64) {
    // `to` lies in a frame the domain owns and holds a writable reference on (the caller
    // took it), `from` is its current vcpu_info; 64 bytes each inside their pages (offsets
    // checked); distinct or identical.
    match from {
        Some(f) => frames::copy(to >> 12, (to & 0xfff) as usize, f >> 12, (f & 0xfff) as usize, VCPU_INFO_SIZE as usize),
        None => frames::fill(to, 0, VCPU_INFO_SIZE as usize),
    }
    frames::write_u8(to + VI_UPCALL_PENDING, 1);
    frames::write_u64(to + VI_PENDING_SEL, !0);
}

/// Saves the running vCPU's segment bases (the ones not in the frame); the CPU's guest GS
/// base is that of the vCPU's current mode. Returns what the CPU holds: (FS, guest GS).
pub fn save_bases(v: &mut Vcpu) -> (u64, u64) {
    let (fs, gs) = (cpu::fs_base(), cpu::guest_gs_base());
    v.fs_base = fs;
    v.gs.set(v.mode, gs);
    (fs, gs)
}

/// Loads a vCPU's segment bases: the GS base of the mode it is in. `held` is what the CPU
/// holds already (from [`save_bases`]), if known: an MSR write costs far more than a
/// compare, and guests that share a base (zero, typically) need none.
pub fn load_bases(v: &Vcpu, held: Option<(u64, u64)>) {
    let (fs, gs) = (v.fs_base, v.gs.of(v.mode));
    if held.is_none_or(|(f, _)| f != fs) {
        cpu::set_fs_base(fs);
    }
    if held.is_none_or(|(_, g)| g != gs) {
        cpu::set_guest_gs_base(gs);
    }
}

/// The top-level table the vCPU's current mode runs on.
pub fn page_table_base(mm: &DomainMm, v: &Vcpu) -> u64 {
    crate::traps::page_table_base(v.mode, mm.kernel_base(), mm.user_base())
}

/// Xen's `toggle_guest_mode` for the running vCPU `v` of the domain whose memory state is
/// `mm`: the other mode's GS base and page table are loaded. Entering user mode needs a
/// user base pointer (the `iret` decoder refused the switch otherwise).
pub fn toggle_guest_mode(v: &mut Vcpu, mm: &DomainMm) {
    let load = v.gs.toggle(v.mode, cpu::guest_gs_base());
    v.mode = v.mode.toggled();
    cpu::set_guest_gs_base(load);
    let base = page_table_base(mm, v);
    debug_assert!(base != 0, "guest mode without a page table");
    crate::arch::x86_64::paging::switch_to(base);
}

/// Sets GS base `which` of the running vCPU `v`: in the CPU when it is the base of the
/// current mode, in `v` otherwise.
pub fn set_gs_base(v: &mut Vcpu, which: GuestMode, value: u64) {
    v.gs.set(which, value);
    if which == v.mode {
        cpu::set_guest_gs_base(value);
    }
}

/// GS base `which` of the running vCPU `v` (from the CPU when it is the current mode's).
pub fn gs_base(v: &Vcpu, which: GuestMode) -> u64 {
    if which == v.mode {
        cpu::guest_gs_base()
    } else {
        v.gs.of(which)
    }
}
