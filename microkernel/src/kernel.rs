//! The running system: the machine's memory and domains, what happens on a hypercall, a
//! guest exception or a timer tick, and the scheduling that moves each physical CPU
//! between vCPUs.
//!
//! Every CPU runs vCPUs. The machine is one lock ([`MACHINE`], taken with [`lock`]):
//! whatever a CPU does for a guest it does holding it, interrupts off; a CPU idles and
//! returns to its guest without it (docs/locking.md). Every entry from a guest leaves the
//! vCPU's registers in a `GuestFrame` on that CPU's hypervisor stack; a switch saves that
//! frame into the vCPU it belongs to and puts the next vCPU's frame in its place, so every
//! exit path (sysret or iret) simply resumes whatever is in the frame. Each entry ends in
//! [`finish`], which switches when this CPU must, idles (lock released) when nothing can
//! run here, and delivers pending events.
#![forbid(unsafe_code)]

use crate::arch::exit::{exit, ExitCode};
use crate::arch::x86_64::fpu;
use crate::arch::x86_64::{paging, time as hwtime, trap};
use crate::arch::GuestFrame;
use crate::domain::{self, reason_name, DomState, Domain, Vcpu};
use crate::emulate;
use crate::guest_access::GuestRange;
use crate::hypercall::{self, Then};
use hypercall_abi::hypercall::Hypercall;
use crate::mm::frame_alloc::FrameAllocator;
use crate::mm::page_info::FrameTable;
use crate::mm::pt::Mm;
use crate::mm_machine::{MachineMm, RamMap};
use crate::multiboot::CmdLine;
use crate::guest_access::GuestMemory;
use crate::platform::{FrameRegs, GuestCopy, MachineEmu, MachinePlatform};
use crate::event::EventChannels;
use crate::events_machine::MachineLayout;
use crate::time::TimeScale;
use crate::traps::{self, GuestMode, InterruptedState, SoftInt, SyscallRoute};
use hypercall_abi::vcpu::{RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNABLE, RUNSTATE_RUNNING};
use alloc::vec::Vec;
use hypercall_abi::sched::ShutdownReason;
use spin::Mutex;

/// Everything the microkernel owns after boot.
pub struct Machine {
    /// Machine frames.
    pub frames: FrameAllocator<'static>,
    /// Accounting of every frame (owner, type, references).
    pub frame_table: FrameTable<'static>,
    /// RAM ranges of the memory map.
    pub ram: RamMap,
    /// The hypervisor's L4 slots 256..=271, copied into every guest L4.
    pub hv_slots: [u64; 16],
    /// Entries in the M2P table.
    pub m2p_entries: u64,
    /// Highest frame number the CPU can address.
    pub max_mfn: u64,
    /// Usable RAM reported by the loader, in pages.
    pub total_pages: u64,
    /// TSC frequency.
    pub tsc_khz: u64,
    /// CPUs online: the boot CPU and the application processors that reported in.
    pub nr_cpus: u32,
    /// TSC ticks to nanoseconds (from `tsc_khz`; computed once, used on every hypercall
    /// that looks at the time).
    pub scale: TimeScale,
    /// TSC at microkernel entry (system time zero).
    pub boot_tsc: u64,
    /// The microkernel's command line (image name first).
    pub cmdline: CmdLine,
    /// All domains, dom0 first.
    pub domains: Vec<Domain>,
    /// Each online CPU's scheduling state, by CPU number.
    pub cpus: Vec<CpuSched>,
    /// The scheduler (`sched=`).
    pub sched: alloc::boxed::Box<dyn crate::sched::Scheduler>,
    /// How vCPUs move between CPUs (`balance=`).
    pub balance: crate::sched::balance::Balance,
    /// Every domain's event channels.
    pub events: EventChannels<MachineLayout>,
    /// Wall-clock time at system time zero, from the RTC (published in `shared_info`).
    pub wallclock: crate::time::WallClock,
    /// Every domain's grant table and maptrack.
    pub grants: grant_tables::Grants,
    /// The id of the last domain created (new ids start after it).
    pub last_domid: u16,
}

/// One CPU's scheduling state.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSched {
    /// The vCPU it runs (domain id, vCPU number); `None` while it idles.
    pub current: Option<crate::sched::VcpuKey>,
    /// TSC when the running vCPU got the CPU.
    pub slice_start: u64,
    /// System time (ns) when the running vCPU's slice ends.
    pub slice_end_ns: u64,
    /// It must choose again on its way back to a guest (a vCPU woke that should run before
    /// its current one, or its current one may no longer run).
    pub preempt: bool,
    /// System time (ns) at which its APIC timer is armed to fire; 0 or past: not armed.
    pub armed_at_ns: u64,
}

impl Machine {
    /// The running CPU's scheduling state.
    pub fn cpu(&self) -> &CpuSched {
        &self.cpus[crate::arch::x86_64::cpu::this_cpu()]
    }

    /// The running CPU's scheduling state.
    pub fn cpu_mut(&mut self) -> &mut CpuSched {
        &mut self.cpus[crate::arch::x86_64::cpu::this_cpu()]
    }

    /// The vCPU this CPU runs (every guest entry has one).
    pub fn current(&self) -> crate::sched::VcpuKey {
        self.cpu().current.expect("a vCPU runs on this CPU")
    }

    /// The CPU running vCPU `key`, if any.
    pub fn running_on(&self, key: crate::sched::VcpuKey) -> Option<usize> {
        self.cpus.iter().position(|c| c.current == Some(key))
    }

    /// The CPUs running a vCPU of domain `dom`, a bit each.
    pub fn cpus_running(&self, dom: u16) -> u64 {
        cpus_running(&self.cpus, Some(dom), u64::MAX)
    }

    /// Makes CPU `c` choose again on its way back to a guest; kicked if it is another.
    fn kick_cpu(&mut self, c: usize) {
        self.cpus[c].preempt = true;
        if c != crate::arch::x86_64::cpu::this_cpu() {
            crate::arch::x86_64::smp::kick(c);
        }
    }

    /// Makes every other CPU running a vCPU of domain `dom` choose again at once (the
    /// domain stopped, paused or is going): Xen's `vcpu_sleep_nosync` kick.
    pub fn kick_domain(&mut self, dom: u16) {
        let others = self.cpus_running(dom) & !(1 << crate::arch::x86_64::cpu::this_cpu());
        for c in (0..self.cpus.len()).filter(|c| others & (1 << c) != 0) {
            self.kick_cpu(c);
        }
    }

    /// Makes the CPU running vCPU `key`, if another, choose again at once.
    pub fn kick_vcpu(&mut self, key: crate::sched::VcpuKey) {
        if let Some(c) = self.running_on(key).filter(|&c| c != crate::arch::x86_64::cpu::this_cpu()) {
            self.kick_cpu(c);
        }
    }

    /// What the balancing rules see of each CPU.
    fn loads(&self) -> Vec<crate::sched::balance::CpuLoad> {
        let mut loads: Vec<_> = self
            .cpus
            .iter()
            .map(|c| crate::sched::balance::CpuLoad { online: true, busy: c.current.is_some(), waiting: 0 })
            .collect();
        for d in &self.domains {
            for (v, c) in d.vcpus.iter().enumerate() {
                if d.runnable(v) && self.running_on((d.id, v)).is_none() {
                    if let Some(l) = loads.get_mut(c.processor) {
                        l.waiting += 1;
                    }
                }
            }
        }
        loads
    }

    /// Sender-initiated balancing: while vCPUs wait on this CPU's queue and another CPU
    /// they may use idles, hand one over to it and kick it.
    fn push_waiting(&mut self) {
        // Nothing to push to unless a CPU idles (the common case on a switch: skip the
        // count of every domain's vCPUs).
        if !self.balance.pushes() || self.cpus.iter().all(|c| c.current.is_some()) {
            return;
        }
        let me = crate::arch::x86_64::cpu::this_cpu();
        loop {
            let loads = self.loads();
            if loads.get(me).is_none_or(|l| l.waiting == 0) {
                return;
            }
            let mut moved = None;
            'find: for d in &self.domains {
                for (v, c) in d.vcpus.iter().enumerate() {
                    if c.processor != me || !d.runnable(v) || self.running_on((d.id, v)).is_some() {
                        continue;
                    }
                    if let Some(t) = crate::sched::balance::push_target(self.balance, me, &loads, c.affinity()) {
                        moved = Some(((d.id, v), t));
                        break 'find;
                    }
                }
            }
            let Some((key, t)) = moved else { return };
            if let Some(i) = self.idx(key.0) {
                self.domains[i].vcpus[key.1].processor = t;
            }
            self.kick_cpu(t);
        }
    }

    /// Tells the scheduler of every vCPU of domain index `i` that can run now and runs
    /// nowhere (the domain was unpaused), so that an idle CPU takes it at once.
    pub fn wake_domain(&mut self, i: usize) {
        let now = self.now_ns();
        let id = self.domains[i].id;
        for v in 0..self.domains[i].vcpus.len() {
            if self.domains[i].runnable(v) && self.running_on((id, v)).is_none() {
                self.scheduler_wake((id, v), now);
            }
        }
    }

    /// Places vCPU `v` of domain index `i`, coming up, on the least loaded CPU it may use.
    pub fn place_vcpu(&mut self, i: usize, v: usize) {
        let loads = self.loads();
        if let Some(c) = self.domains[i].vcpus.get(v).and_then(|c| crate::sched::balance::initial_cpu(&loads, c.affinity())) {
            self.domains[i].vcpus[v].processor = c;
        }
    }

    /// Index in `domains` of domain `domid`.
    pub fn idx(&self, domid: u16) -> Option<usize> {
        self.domains.iter().position(|d| d.id == domid)
    }

    /// Index of the running domain.
    pub fn cur_idx(&self) -> usize {
        self.idx(self.current().0).expect("the running domain exists")
    }

    /// The running domain.
    pub fn cur(&self) -> &Domain {
        &self.domains[self.cur_idx()]
    }

    /// The running domain.
    pub fn cur_mut(&mut self) -> &mut Domain {
        let i = self.cur_idx();
        &mut self.domains[i]
    }

    /// The running vCPU.
    pub fn cur_vcpu_mut(&mut self) -> &mut Vcpu {
        let v = self.current().1;
        &mut self.cur_mut().vcpus[v]
    }

    /// Checks the machine's own accounting (`SYSCTL_AUDIT`): frame references against
    /// everything that holds them, event channel pairs, grant pins against mappings. Only
    /// reads; the first violation found is reported.
    pub fn audit(&mut self) -> hypercall_abi::sysctl::AuditResult {
        use crate::mm::audit::{audit, AuditDomain, AuditError};
        let mut r = hypercall_abi::sysctl::AuditResult { domains: self.domains.len() as u32, ..Default::default() };
        let doms: Vec<AuditDomain<'_>> =
            self.domains.iter().map(|d| AuditDomain { mm: &d.mm, dying: d.state == DomState::Dying }).collect();
        let mach = MachineMm {
            frames: &mut self.frames,
            ram: &self.ram,
            slots: &self.hv_slots,
            m2p_entries: self.m2p_entries,
            max_mfn: self.max_mfn,
            dom: 0,
            cpus: &self.cpus,
        };
        let frames = audit(&self.frame_table, &mach, &doms, true);
        let events = self.events.audit();
        let grants = self.grants.audit();
        match (frames, events, grants) {
            (Ok(f), Ok(e), Ok(g)) => {
                r.ok = 1;
                r.frames_owned = f.owned;
                r.tables = f.tables;
                r.ports = e.ports;
                r.grant_mappings = g.mappings;
            }
            (Err(AuditError::NoMemory), _, _) => {
                r.ok = 2;
                r.set_what("no memory for the audit's counters");
            }
            (Err(AuditError::Violation(why)), _, _) => r.set_what(&alloc::format!("frames: {why}")),
            (_, Err(why), _) => r.set_what(&alloc::format!("events: {why}")),
            (_, _, Err(why)) => r.set_what(&alloc::format!("grants: {why}")),
        }
        if r.ok == 0 {
            crate::mkprintln!("audit: {}", core::str::from_utf8(r.what()).unwrap_or("?"));
        }
        r
    }

    /// Runs `f` over a memory-management view for domain `idx`.
    pub fn with_mm<R>(&mut self, idx: usize, f: impl FnOnce(&mut Mm<'_, '_>) -> R) -> R {
        let mut mach = MachineMm {
            frames: &mut self.frames,
            ram: &self.ram,
            slots: &self.hv_slots,
            m2p_entries: self.m2p_entries,
            max_mfn: self.max_mfn,
            dom: self.domains[idx].id,
            cpus: &self.cpus,
        };
        let mut mm = Mm { frames: &mut self.frame_table, dom: &mut self.domains[idx].mm, mach: &mut mach };
        let r = f(&mut mm);
        // Frames whose last reference another domain dropped are charged to their owners.
        while let Some(rel) = self.frame_table.pop_foreign_release() {
            if let Some(d) = self.domains.iter_mut().find(|d| d.id == rel.owner) {
                d.mm.charge_foreign_release(rel);
            }
        }
        r
    }

    /// Converts TSC ticks to nanoseconds.
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        self.scale.ticks_to_ns(ticks)
    }

    /// Nanoseconds since microkernel entry.
    pub fn now_ns(&self) -> u64 {
        self.ticks_to_ns(hwtime::rdtsc().wrapping_sub(self.boot_tsc))
    }

    /// Forgets dying domains that no longer own any frame (some may outlive the domain
    /// while another domain still maps them), which frees their ids.
    pub fn reap(&mut self) {
        let sched = &mut self.sched;
        self.domains.retain(|d| {
            // Not while its teardown is under way (its last frames may be gone before
            // the last step has said so).
            // Not while its teardown is under way (its last frames may be gone before
            // the last step has said so).
            let gone = d.state == DomState::Dying && d.teardown.is_none() && d.mm.frames_owned() == 0;
            if gone {
                sched.remove_domain(d.id);
            }
            !gone
        });
    }

    /// Raises VIRQ_TIMER for every vCPU whose one-shot (or periodic) timer has expired,
    /// and ends the `SCHEDOP_poll` of every vCPU whose poll timeout passed.
    pub fn run_timers(&mut self) {
        let now = self.now_ns();
        let mut timed_out = alloc::vec::Vec::new();
        for i in 0..self.domains.len() {
            let d = &mut self.domains[i];
            if d.watchdogs.expired(now) {
                d.watchdogs.clear();
                if d.state == DomState::Running {
                    // Xen's domain_watchdog_timeout: the domain is shut down for it.
                    d.state = DomState::Shutdown(ShutdownReason::Watchdog);
                    crate::mkprintln!("d{} ({}) shutdown: watchdog (its watchdog ran out)", d.id, d.name.as_str());
                    self.raise_dom0_virq(hypercall_abi::event_channel::VIRQ_DOM_EXC);
                }
            }
            let id = self.domains[i].id;
            for v in 0..self.domains[i].vcpus.len() {
                let c = &mut self.domains[i].vcpus[v];
                if c.polling().is_some_and(|p| p.deadline_ns != 0 && p.deadline_ns <= now) {
                    c.unblock();
                    timed_out.push((id, v));
                }
                let mut fire = false;
                if c.timer_ns != 0 && c.timer_ns <= now {
                    c.timer_ns = 0;
                    fire = true;
                }
                let t = c.periodic_next_ns;
                if t != 0 && t <= now {
                    // Next period after the deadline, or after now if the CPU was away
                    // for more than a period (missed periods are not made up, as Xen).
                    let next = t.saturating_add(c.periodic_ns);
                    c.periodic_next_ns = if next > now { next } else { now.saturating_add(c.periodic_ns) };
                    fire = true;
                }
                if fire {
                    let dom = hypercall_abi::types::DomId(self.domains[i].id);
                    let vcpu = hypercall_abi::types::VcpuId(v as u32);
                    if let Some(n) = self.events.raise_virq(dom, vcpu, hypercall_abi::event_channel::VIRQ_TIMER) {
                        self.wake(n);
                    }
                }
            }
        }
        // A poll that timed out wakes its vCPU as an event would (Xen's `vcpu_unblock`):
        // the scheduler hears of it, and may let it preempt (a boost), not only at the end
        // of the running vCPU's slice.
        for key in timed_out {
            self.scheduler_wake(key, now);
        }
    }

    /// Tells the scheduler vCPU `key` became runnable at `now` (Xen's `vcpu_wake`). It
    /// waits on its CPU's queue, or (push) on an idle CPU's; if it should take its CPU from
    /// the vCPU running there, or that CPU idles, that CPU chooses again (kicked if it is
    /// another).
    pub fn scheduler_wake(&mut self, key: crate::sched::VcpuKey, now: u64) {
        let Some(i) = self.idx(key.0) else { return };
        let Some(v) = self.domains[i].vcpus.get(key.1) else { return };
        let (mut target, affinity) = (v.processor, v.affinity());
        if target >= self.cpus.len() || !crate::sched::balance::allowed(affinity, target) {
            let loads = self.loads();
            target = crate::sched::balance::initial_cpu(&loads, affinity).unwrap_or(0);
        }
        if self.cpus[target].current.is_some() && self.balance.pushes() && self.cpus.iter().any(|c| c.current.is_none()) {
            let loads = self.loads();
            if let Some(idle) = crate::sched::balance::push_target(self.balance, target, &loads, affinity) {
                target = idle;
            }
        }
        self.domains[i].vcpus[key.1].processor = target;
        let on_target = self.cpus[target].current.and_then(|k| self.idx(k.0).and_then(|ci| self.domains[ci].runnable(k.1).then_some(k)));
        if self.sched.wake(key, on_target, now) || self.cpus[target].current.is_none() {
            self.kick_cpu(target);
        }
    }

    /// An event became pending for `n`'s vCPU: if it is blocked and the event is one it
    /// waits for (any upcall for `SCHEDOP_block`; also a port it polls, masked or not, for
    /// `SCHEDOP_poll`), it can run again. If it runs on another CPU, that CPU is kicked so
    /// that it enters its upcall now (Xen's `vcpu_kick`). Whether it woke.
    pub fn wake(&mut self, n: crate::event::Notification) -> bool {
        let Some(i) = self.idx(n.dom.0) else { return false };
        let v = n.vcpu.0 as usize;
        let at = self.domains[i].vcpu_info_at(v);
        let Some(c) = self.domains[i].vcpus.get_mut(v) else { return false };
        let polled = n.delivery.newly_pending && c.polling().is_some_and(|p| p.ports.contains(&n.port.0));
        if c.blocked && (domain::upcall_pending(at) || polled) {
            c.unblock();
            let now = self.now_ns();
            self.scheduler_wake((n.dom.0, v), now);
            return true;
        }
        if let Some(cpu) = self.running_on((n.dom.0, v)) {
            if cpu != crate::arch::x86_64::cpu::this_cpu() && domain::upcall_pending(at) {
                crate::arch::x86_64::smp::kick(cpu);
            }
        }
        false
    }

    /// Raises global virtual IRQ `virq` for dom0 (Xen's `send_global_virq` to the hardware
    /// domain); whether that woke it.
    pub fn raise_dom0_virq(&mut self, virq: u32) -> bool {
        let dom0 = hypercall_abi::types::DomId(0);
        match self.events.raise_virq(dom0, hypercall_abi::types::VcpuId(0), virq) {
            Some(n) => self.wake(n),
            None => false,
        }
    }

    /// Console input arrived since the last look: raise `VIRQ_CONSOLE` for dom0. Whether
    /// that woke it.
    pub fn note_console_input(&mut self) -> bool {
        crate::arch::console::take_input_arrived() && self.raise_dom0_virq(hypercall_abi::event_channel::VIRQ_CONSOLE)
    }

    /// Device lines fired since the last look: each bound line's owner port is made
    /// pending (the line stays masked until the owner's EOI). Whether that woke a vCPU.
    pub fn note_device_interrupts(&mut self) -> bool {
        let mut fired = crate::arch::x86_64::pic::take_fired();
        let mut woke = false;
        while fired != 0 {
            let line = fired.trailing_zeros();
            fired &= fired - 1;
            // A line nobody bound (its port closed as it fired) stays masked.
            if let Some(n) = self.events.raise_pirq(line) {
                woke |= self.wake(n);
            }
        }
        woke
    }

    /// Carries out the interrupt-line mask changes the event engine asked for (a pirq
    /// bound, closed, EOIed, or its domain gone).
    pub fn apply_line_changes(&mut self) {
        use crate::arch::x86_64::pic;
        for change in self.events.take_line_changes() {
            match change {
                crate::event::LineChange::Unmask(line) => pic::unmask_line(line),
                crate::event::LineChange::Mask(line) => pic::mask_line(line),
            }
        }
    }

    /// Whether any domain other than a stopped one has a started vCPU (blocked or not):
    /// something may still become runnable, so the CPU idles rather than stopping.
    fn anything_alive(&self) -> bool {
        self.domains.iter().any(|d| d.state == DomState::Running && d.vcpus.iter().any(|v| v.started))
    }

    /// The earliest deadline this CPU must wake for: the one-shot and periodic timers and
    /// poll timeouts of the vCPUs on its queue; on the boot CPU also the domains' watchdogs
    /// and the scheduler's own events (a cap's window ending).
    fn earliest_timer(&self) -> Option<u64> {
        let me = crate::arch::x86_64::cpu::this_cpu();
        let boot = me == 0;
        self.domains
            .iter()
            .flat_map(|d| {
                d.vcpus
                    .iter()
                    .filter(move |v| v.processor == me)
                    .flat_map(|v| [v.timer_ns, v.periodic_next_ns, v.polling().map_or(0, |p| p.deadline_ns)])
                    .chain(d.watchdogs.next_deadline().filter(|_| boot))
            })
            .chain(self.sched.next_event().filter(|_| boot))
            .filter(|&t| t != 0)
            .min()
    }

    /// Arms this CPU's APIC timer for the next thing that needs it: the end of the running
    /// vCPU's slice or the earliest timer, whichever comes first.
    pub fn rearm(&mut self) {
        let end = self.cpu().slice_end_ns;
        let earliest = self.earliest_timer().map_or(end, |t| t.min(end));
        self.arm_at(earliest);
    }

    /// Makes sure this CPU's APIC timer fires no later than system time `deadline`. The
    /// APIC is written only when the interrupt armed already would come too late (or has
    /// fired): a write costs far more than an early interrupt that finds nothing to do and
    /// re-arms.
    pub fn arm_at(&mut self, deadline: u64) {
        self.arm(deadline, false);
    }

    /// Makes this CPU's APIC timer fire at system time `deadline` (within 20 us), not
    /// earlier: for the idle loop, where an earlier interrupt (the end of the slice of the
    /// vCPU that just blocked) would cost a second wake-up of the host just before the
    /// deadline and make the wake-up late.
    fn arm_exactly(&mut self, deadline: u64) {
        self.arm(deadline, true);
    }

    fn arm(&mut self, deadline: u64, exactly: bool) {
        let now = self.now_ns();
        // The interrupt may come a little before the TSC says it is due: once it has come,
        // nothing is armed, whatever the clock says.
        if crate::arch::x86_64::apic::take_fired() {
            self.cpu_mut().armed_at_ns = 0;
        }
        let armed = self.cpu().armed_at_ns;
        let good_enough = if exactly { armed.abs_diff(deadline) < 20_000 } else { armed <= deadline };
        if armed > now && good_enough {
            return;
        }
        let programmed = crate::arch::x86_64::apic::arm_ns(deadline.saturating_sub(now));
        self.cpu_mut().armed_at_ns = now.saturating_add(programmed);
    }

    /// The next vCPU for this CPU and its slice, as the scheduler picks among the runnable
    /// ones of its queue (its own running vCPU included), or, with nothing there and the
    /// pull rule, among those waiting on other CPUs' queues that may run here (that one
    /// joins this CPU's queue); `None` if nothing can run here.
    fn pick_next(&mut self) -> Option<crate::sched::Choice> {
        use crate::sched::VcpuKey;
        let me = crate::arch::x86_64::cpu::this_cpu();
        let now = self.now_ns();
        let (domains, cpus) = (&self.domains, &self.cpus);
        // `domains` is in id order (`create_domain` keeps it so): a binary search per vCPU.
        let vcpu = |(dom, v): VcpuKey| domains.binary_search_by_key(&dom, |d| d.id).ok().filter(|&i| domains[i].runnable(v)).map(|i| &domains[i].vcpus[v]);
        let free = |key: VcpuKey| cpus.iter().enumerate().all(|(c, s)| c == me || s.current != Some(key));
        let mine = |key: VcpuKey| vcpu(key).is_some_and(|v| v.processor == me && crate::sched::balance::allowed(v.affinity(), me)) && free(key);
        if let Some(c) = self.sched.pick(now, &mine) {
            return Some(c);
        }
        if !self.balance.pulls() {
            return None;
        }
        let others = |key: VcpuKey| vcpu(key).is_some_and(|v| crate::sched::balance::allowed(v.affinity(), me)) && free(key);
        let c = self.sched.pick(now, &others)?;
        let i = self.idx(c.vcpu.0)?;
        self.domains[i].vcpus[c.vcpu.1].processor = me;
        Some(c)
    }

    /// Gives this CPU to the next vCPU it may run (possibly the current one): the frame `f`
    /// of the current vCPU is saved into it and replaced by the next one's. With nothing to
    /// run the CPU is left idle (no current vCPU, the hypervisor's own page table): the
    /// caller ([`finish`]) idles.
    fn schedule(&mut self, f: &mut GuestFrame) {
        let me = crate::arch::x86_64::cpu::this_cpu();
        let now = hwtime::rdtsc();
        let now_ns = self.ticks_to_ns(now.wrapping_sub(self.boot_tsc));
        let cur = self.cpus[me].current;
        let cur_i = cur.and_then(|k| self.idx(k.0));
        self.cpus[me].preempt = false;
        if let (Some(cur), Some(i)) = (cur, cur_i) {
            let ran = now.wrapping_sub(self.cpus[me].slice_start);
            self.domains[i].cpu_ticks += ran;
            let ran_ns = self.ticks_to_ns(ran);
            self.sched.account(cur, ran_ns, now_ns);
            // Leaving the CPU (for now): blocked, runnable or offline. Its page table is
            // still the active one, so its runstate area can be written.
            let d = &self.domains[i];
            let state = match d.vcpus.get(cur.1) {
                _ if d.state != DomState::Running => RUNSTATE_OFFLINE,
                Some(v) if v.blocked => RUNSTATE_BLOCKED,
                _ => RUNSTATE_RUNNABLE,
            };
            self.set_runstate(i, cur.1, state, now_ns);
        }
        let choice = self.pick_next();
        if let Some(choice) = choice {
            self.cpus[me].slice_start = now;
            self.cpus[me].slice_end_ns = now_ns.saturating_add(choice.slice_ns);
            if Some(choice.vcpu) == cur {
                if let Some(i) = cur_i {
                    self.set_runstate(i, choice.vcpu.1, RUNSTATE_RUNNING, now_ns);
                }
                self.push_waiting();
                return;
            }
        }
        // The outgoing vCPU's registers and FPU state go to its own areas (a vCPU that is
        // gone keeps nothing), straight into place: a 512-byte copy costs a few thousand
        // cycles under emulation. From here another CPU may pick it.
        let held = match (cur, cur_i) {
            (Some(cur), Some(i)) => {
                let v = &mut self.domains[i].vcpus[cur.1];
                v.frame = *f;
                fpu::save(&mut v.fpu);
                Some(domain::save_bases(v))
            }
            _ => None,
        };
        // The outgoing vCPU, still runnable, may belong to another CPU's queue now (it was
        // pinned away): an idle CPU there takes it at once.
        if let (Some(cur), Some(i)) = (cur, cur_i) {
            let p = self.domains[i].vcpus[cur.1].processor;
            if p != me && p < self.cpus.len() && self.domains[i].runnable(cur.1) && self.cpus[p].current.is_none() {
                self.kick_cpu(p);
            }
        }
        let Some(choice) = choice else {
            // Idle: nothing of any guest stays reachable from this CPU (a domain it ran may
            // be torn down meanwhile), and no shootdown needs to reach it.
            self.cpus[me].current = None;
            paging::switch_to(crate::arch::x86_64::smp::hv_l4());
            return;
        };
        let next = choice.vcpu;
        let ni = self.idx(next.0).expect("picked a live domain");
        let n = &self.domains[ni].vcpus[next.1];
        fpu::restore(&n.fpu, n.fpu_ts);
        let i = ni;
        if self.domains[i].first_run_tsc == 0 {
            self.domains[i].first_run_tsc = now;
        }
        // Base-pointer operations now act for this vCPU.
        self.domains[i].mm.set_active_vcpu(next.1);
        let d = &self.domains[i];
        let v = &d.vcpus[next.1];
        *f = v.frame;
        // The mode the vCPU left in: its kernel or one of its processes.
        domain::load_bases(v, held);
        domain::load_gdt(v);
        domain::load_ldt(v);
        crate::arch::x86_64::cpu::load_guest_cr4(v.cr4);
        crate::arch::x86_64::debugreg::load(&v.debug);
        paging::switch_to(domain::page_table_base(&d.mm, v));
        self.cpus[me].current = Some(next);
        // On the CPU, its page table active: its runstate area can be written.
        self.set_runstate(i, next.1, RUNSTATE_RUNNING, now_ns);
        // What is left waiting here may go to an idle CPU (sender-initiated).
        self.push_waiting();
    }

    /// Changes vCPU `vi` of domain index `i` to runstate `state` at `now_ns` and writes its
    /// registered area (through the active page table, which must be that vCPU's: the
    /// scheduler changes a runstate only while the vCPU is on the CPU or just leaving it).
    fn set_runstate(&mut self, i: usize, vi: usize, state: u32, now_ns: u64) {
        let Some(d) = self.domains.get_mut(i) else { return };
        let flag = runstate_update_flag(&d.mm);
        if let Some(v) = d.vcpus.get_mut(vi) {
            v.runstate.set(state, now_ns);
            write_runstate_area(v, now_ns, flag);
        }
    }
}

/// Whether the domain asked for `XEN_RUNSTATE_UPDATE` around runstate area writes
/// (`VMASST_TYPE_runstate_update_flag`).
pub fn runstate_update_flag(mm: &crate::mm::page_info::DomainMm) -> bool {
    mm.vm_assist() & (1 << hypercall_abi::arch::VMASST_TYPE_RUNSTATE_UPDATE_FLAG) != 0
}

/// Writes `v`'s runstate to its registered area, if it has one (the active page table must
/// be `v`'s); an area that cannot be written is skipped, as Xen does. With `update_flag`, as Xen's `update_runstate_area`: bit 63 of
/// `state_entry_time` is set in the guest's copy first, the whole record written, then the
/// bit cleared, so a reader that sees it knows to read again.
pub fn write_runstate_area(v: &Vcpu, now_ns: u64, update_flag: bool) {
    use zerocopy::IntoBytes;
    const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;
    if v.runstate_area == 0 {
        return;
    }
    let mut info = v.runstate.info(now_ns);
    let entry_time_at = v.runstate_area.wrapping_add(8);
    let write = |addr: u64, bytes: &[u8]| {
        if let Ok(range) = GuestRange::new(addr, bytes.len() as u64) {
            let _ = GuestCopy.copy_to_guest(range, bytes);
        }
    };
    if update_flag {
        write(entry_time_at, &(info.state_entry_time | XEN_RUNSTATE_UPDATE).to_le_bytes());
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        info.state_entry_time |= XEN_RUNSTATE_UPDATE;
    }
    write(v.runstate_area, info.as_bytes());
    if update_flag {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        write(entry_time_at, &(info.state_entry_time & !XEN_RUNSTATE_UPDATE).to_le_bytes());
    }
}

/// The CPUs of `cpus` running a vCPU of any domain (`dom` `None`), or one of domain `dom`
/// whose number is in `vcpus` (a bit each; numbers past 63 are in no mask), a bit each.
pub fn cpus_running(cpus: &[CpuSched], dom: Option<u16>, vcpus: u64) -> u64 {
    cpus.iter().enumerate().fold(0, |mask, (c, s)| match (s.current, dom) {
        (Some(_), None) => mask | (1 << c),
        (Some((d, v)), Some(dom)) if d == dom && v < 64 && vcpus & (1 << v) != 0 => mask | (1 << c),
        _ => mask,
    })
}

/// The machine, once booted.
pub static MACHINE: Mutex<Option<Machine>> = Mutex::new(None);

/// The machine lock, held.
pub type MachineGuard = spin::MutexGuard<'static, Option<Machine>>;

/// Takes the machine lock. While it waits (interrupts off), the CPU serves the TLB
/// shootdowns asked of it: the holder may be waiting for this CPU's flush. Once held, the
/// memory state of the domain this CPU runs acts for this CPU's vCPU (its base pointers,
/// the tables a write fault walks, a mode switch): another vCPU of the domain may have
/// used it on another CPU meanwhile.
pub fn lock() -> MachineGuard {
    loop {
        if let Some(mut g) = MACHINE.try_lock() {
            if let Some(m) = g.as_mut() {
                if let Some((dom, v)) = m.cpu().current {
                    if let Some(i) = m.idx(dom) {
                        m.domains[i].mm.set_active_vcpu(v);
                    }
                }
            }
            return g;
        }
        crate::arch::x86_64::smp::service_flush();
        core::hint::spin_loop();
    }
}

/// The end of every entry that holds the machine: this CPU chooses again if it must (its
/// vCPU stopped, blocked or yielded, or a woken vCPU should run first); with nothing to run
/// here it idles, the lock released, until an interrupt (its timer, a kick, a device)
/// brings work; then the upcall of the vCPU it returns to is entered if one is pending.
/// `f` is then the state of the vCPU to resume.
pub fn finish(mut guard: MachineGuard, f: &mut GuestFrame) {
    loop {
        let m = guard.as_mut().expect("the machine is built");
        let me = crate::arch::x86_64::cpu::this_cpu();
        let cur = m.cpus[me].current;
        let runnable = cur.is_some_and(|k| m.idx(k.0).is_some_and(|i| m.domains[i].runnable(k.1)));
        let mut switched = false;
        if m.cpus[me].preempt || !runnable {
            m.schedule(f);
            switched = true;
        }
        if m.cpus[me].current.is_some() {
            // After a switch, or once the timer has fired (nothing is armed), arm it for
            // the slice's end or the next timer.
            if switched || crate::arch::x86_64::apic::fired() || m.cpus[me].armed_at_ns <= m.now_ns() {
                m.rearm();
            }
            deliver_events(m, f);
            // Entering the upcall may have crashed the domain: choose again.
            if !m.cpus[me].preempt {
                set_fast(m, me);
                return;
            }
            continue;
        }
        FAST_VCPU_INFO[me].0.store(0, core::sync::atomic::Ordering::Relaxed);
        if !m.anything_alive() {
            crate::mkprintln!("no runnable vCPU left; powering off");
            exit(ExitCode::Crash)
        }
        // No vCPU runs here, so no slice can end: wake for this CPU's earliest timer only
        // (with none, as late as the counter allows), or a kick. With the pull rule alone
        // nobody kicks an idle CPU for work waiting elsewhere: it looks every slice.
        let mut earliest = m.earliest_timer();
        if m.balance == crate::sched::balance::Balance::Pull {
            let look = m.now_ns().saturating_add(crate::sched::TSLICE_NS);
            earliest = Some(earliest.map_or(look, |t| t.min(look)));
        }
        m.arm_exactly(earliest.unwrap_or(u64::MAX));
        drop(guard);
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
        guard = lock();
        let m = guard.as_mut().expect("the machine is built");
        m.note_console_input();
        m.note_device_interrupts();
        m.run_timers();
    }
}

/// An application processor's way into the scheduler, once the machine is built: it idles
/// until a vCPU can run on it, then enters it.
pub fn run_ap() -> ! {
    let mut f = GuestFrame::default();
    finish(lock(), &mut f);
    crate::arch::enter_guest_from(&f)
}

/// The reschedule IPI, taken from a guest: this CPU chooses again if it was asked to, and
/// the upcall of the vCPU it runs is entered if an event came for it.
pub fn reschedule(f: &mut GuestFrame) {
    finish(lock(), f);
}

/// What each CPU's lock-free hypercalls need of the vCPU it runs, kept by [`finish`] on
/// every way back to a guest: its `vcpu_info` (machine address) while it is in guest
/// kernel mode, 0 otherwise (idle, user mode, or not known). Only its own CPU reads or
/// writes a slot. A mode change without `finish` (a bounce from user mode) only goes
/// from user to kernel, so a stale 0 is all it can leave: the slow path.
static FAST_VCPU_INFO: [FastNote; crate::cpus::MAX_CPUS] = [const { FastNote(core::sync::atomic::AtomicU64::new(0)) }; crate::cpus::MAX_CPUS];

/// One CPU's note, on cache lines of its own (written on every slow return).
#[repr(align(128))]
struct FastNote(core::sync::atomic::AtomicU64);

/// Records what [`fast_hypercall`] needs of the vCPU this CPU returns to.
fn set_fast(m: &Machine, me: usize) {
    let at = m.cpus[me].current.and_then(|(dom, v)| {
        let d = &m.domains[m.idx(dom)?];
        (d.vcpus.get(v)?.mode == GuestMode::Kernel).then(|| d.vcpu_info_at(v)).flatten()
    });
    FAST_VCPU_INFO[me].0.store(at.unwrap_or(0), core::sync::atomic::Ordering::Relaxed);
}

/// A hypercall answered without the machine lock (Xen's `do_xen_version` takes none): a
/// `xen_version` sub-op whose answer is a constant, from the guest kernel, when no event
/// upcall waits to be entered (Linux's `xen_force_evtchn_callback` makes this very call
/// to get its pending events delivered). Anything another CPU wants of this one (a
/// switch, an event) comes with a kick, taken as the guest resumes. Whether it answered.
fn fast_hypercall(f: &mut GuestFrame) -> bool {
    if f.rax != Hypercall::XenVersion as u64 {
        return false;
    }
    let Some(answer) = u32::try_from(f.rdi).ok().and_then(crate::hypercall::version::constant_answer) else { return false };
    let at = FAST_VCPU_INFO[crate::arch::x86_64::cpu::this_cpu()].0.load(core::sync::atomic::Ordering::Relaxed);
    if at == 0 || (domain::upcall_pending(Some(at)) && domain::upcall_mask(Some(at)) == 0) {
        return false;
    }
    f.rax = answer as u64;
    true
}

/// Length of the `syscall` instruction: a continuation moves the guest's rip back by it.
const SYSCALL_LEN: u64 = 2;

/// Runs the hypercall in `f` for the current vCPU, then lets another run if this one
/// yielded or its domain stopped.
pub fn hypercall(f: &mut GuestFrame) {
    if fast_hypercall(f) {
        return;
    }
    let mut guard = lock();
    let m = guard.as_mut().expect("hypercall before boot finished");
    // Xen's lstar_enter: only the guest kernel makes hypercalls; a `syscall` from one of
    // its processes enters the kernel's syscall callback.
    let route = {
        let v = m.cur_vcpu_mut();
        traps::route_syscall(v.mode, &v.callbacks, &v.traps)
    };
    if route != SyscallRoute::Hypercall {
        syscall_from_user(m, f, route);
        return finish(guard, f);
    }
    let nr = f.rax;
    let mut p = MachinePlatform { m, rsp: f.rsp };
    let outcome = hypercall::run(&mut p, nr, [f.rdi, f.rsi, f.rdx, f.r10, f.r8]);
    f.rax = outcome.ret as u64;
    match outcome.then {
        Then::Iret(Ok(to)) => {
            // Return to where the bounced exception (or event) interrupted the guest, with
            // every register as it was: through iretq, since rcx and r11 are restored.
            (f.rip, f.cs, f.rflags, f.rsp, f.ss, f.rax) =
                (to.rip, to.cs as u64, to.rflags, to.rsp, to.ss as u64, to.rax);
            if let Some((rcx, r11)) = to.rcx_r11 {
                (f.rcx, f.r11) = (rcx, r11);
            }
            f.vector = 0;
            let (i, vi) = (m.cur_idx(), m.current().1);
            let d = &mut m.domains[i];
            domain::set_upcall_mask_and_cr2(d.vcpu_info_at(vi), to.upcall_mask, None);
            if domain::architectural_iopl(&d.mm) {
                // Xen's do_iret: the frame's IOPL becomes the virtual one.
                d.vcpus[vi].iopl = to.iopl;
            }
            if to.mode != d.vcpus[vi].mode {
                // Only kernel mode makes hypercalls, so this enters user mode; the decoder
                // refused it when there is no user page table.
                domain::toggle_guest_mode(&mut d.vcpus[vi], &d.mm);
            }
        }
        Then::Iret(Err(e)) => {
            crate::mkprintln!("d{} crashed: iret with a bad frame ({:?}) rip={:#x}", m.cur().id, e, f.rip);
            m.cur_mut().state = DomState::Crashed;
        }
        Then::Again { nr, args: a } => {
            // Xen's hypercall continuation: the guest executes the same `syscall` again,
            // with the arguments the handler left for the rest of the work.
            f.rip = f.rip.wrapping_sub(SYSCALL_LEN);
            f.rax = nr;
            (f.rdi, f.rsi, f.rdx, f.r10, f.r8) = (a[0], a[1], a[2], a[3], a[4]);
        }
        Then::Return => {}
    }
    // A memory or control hypercall may have dropped the last foreign reference to a dying
    // domain's frame; the others cannot, and stay off this path.
    if matches!(
        hypercall_abi::hypercall::Hypercall::try_from(nr),
        Ok(Hypercall::PtUpdate | Hypercall::MmuextOp | Hypercall::UpdateVaMapping | Hypercall::MemoryOp | Hypercall::Multicall)
    ) {
        m.reap();
    }
    let state = m.cur().state;
    if state != DomState::Running {
        domain_stopped(m);
    }
    if outcome.reschedule {
        let cur = m.current();
        m.sched.yielded(cur);
        m.cpu_mut().preempt = true;
    }
    finish(guard, f);
}

/// On the way back to a guest: if its vCPU has an event upcall pending and not masked, and
/// a callback registered, enter the callback through a bounce frame (Xen's
/// `test_all_events`). The callback returns with `iret`.
fn deliver_events(m: &mut Machine, f: &mut GuestFrame) {
    let (i, vi) = (m.cur_idx(), m.current().1);
    let at = m.domains[i].vcpu_info_at(vi);
    if !domain::upcall_pending(at) || domain::upcall_mask(at) != 0 {
        return;
    }
    let d = &mut m.domains[i];
    let request = traps::event_upcall(&d.vcpus[vi].callbacks);
    if request.handler == 0 {
        return;
    }
    if let Err(e) = enter_bounce(d, vi, f, f.rip, 0, &request, None) {
        // From kernel mode a frame that cannot be written leaves the event pending. From
        // user mode the vCPU is in kernel mode already, with no frame to return through:
        // Xen crashes the domain (`create_bounce_frame`), and so do we.
        if e.from_user {
            crash_current(m, f, format_args!("event upcall from user mode: {}", e));
        }
    }
}

/// Why [`enter_bounce`] could not enter the guest handler.
#[derive(Clone, Copy, Debug)]
struct BounceFailure {
    /// The vCPU was in guest user mode (it is in kernel mode now).
    from_user: bool,
    /// The registered kernel stack (`stack_switch`), where a frame from user mode goes.
    kernel_sp: u64,
    /// What went wrong.
    why: &'static str,
}

impl core::fmt::Display for BounceFailure {
    fn fmt(&self, out: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.from_user {
            write!(out, "{} (kernel stack {:#x})", self.why, self.kernel_sp)
        } else {
            out.write_str(self.why)
        }
    }
}

/// Enters the guest handler of `request` for vCPU `vi` of `d` (the running one): Xen's
/// bounce frame for the interrupted state in `f` (resuming at `rip`) goes on the guest
/// kernel's stack, `f` becomes the handler's entry state, and the vCPU's upcall mask (and
/// cr2 for a page fault) are updated. From guest user mode the vCPU first returns to kernel
/// mode (page table and GS base, Xen's `toggle_guest_mode`) and the frame goes below its
/// registered kernel stack. On failure `f` is unchanged; from kernel mode nothing else is
/// either, from user mode the vCPU stays in kernel mode and the caller crashes the domain.
#[allow(clippy::too_many_arguments)] // the pieces of one bounce, each from a different owner
fn enter_bounce(
    d: &mut Domain,
    vi: usize,
    f: &mut GuestFrame,
    rip: u64,
    mask: u8,
    request: &traps::BounceRequest,
    cr2: Option<u64>,
) -> Result<(), BounceFailure> {
    let v = &d.vcpus[vi];
    let iopl = domain::shown_iopl(v, &d.mm);
    let built = traps::create_bounce_frame(&interrupted(f, rip), v.mode, v.kernel_sp, mask, iopl, request);
    enter_delivery(d, vi, f, built, cr2)
}

/// The guest state in `f`, resuming at `rip`, as the bounce frames see it.
fn interrupted(f: &GuestFrame, rip: u64) -> InterruptedState {
    InterruptedState { rip, cs: f.cs as u16, rflags: f.rflags, rsp: f.rsp, ss: f.ss as u16, rcx: f.rcx, r11: f.r11 }
}

/// Applies a bounce (or failsafe) frame `built` for vCPU `vi` of `d` (the running one), as
/// [`enter_bounce`] describes.
fn enter_delivery(
    d: &mut Domain,
    vi: usize,
    f: &mut GuestFrame,
    built: Result<traps::Delivery, traps::BounceError>,
    cr2: Option<u64>,
) -> Result<(), BounceFailure> {
    let at = d.vcpu_info_at(vi);
    let v = &mut d.vcpus[vi];
    let failure =
        BounceFailure { from_user: v.mode == GuestMode::User, kernel_sp: v.kernel_sp, why: "bounce frame not writable" };
    if v.mode == GuestMode::User {
        // As Xen's create_bounce_frame, back to kernel mode before anything else (a failure
        // then crashes the domain): the kernel stack is mapped in the kernel's page table,
        // not necessarily in the process's.
        domain::toggle_guest_mode(v, &d.mm);
    }
    let delivery = built.map_err(|e| BounceFailure {
        why: match e {
            traps::BounceError::BadStack => "bounce frame outside guest space",
            traps::BounceError::NoHandler => "no handler registered",
        },
        ..failure
    })?;
    let (bytes, len) = delivery.frame.to_bytes();
    if GuestCopy.copy_to_guest(delivery.frame.range(), bytes.get(..len).unwrap_or(&[])).is_err() {
        return Err(failure);
    }
    if let Some(a) = cr2 {
        v.cr2 = a;
    }
    let e = delivery.entry;
    (f.rip, f.cs, f.rflags, f.rsp, f.ss) = (e.rip, e.cs as u64, e.rflags, e.rsp, e.ss as u64);
    f.vector = 0;
    domain::set_upcall_mask_and_cr2(at, delivery.upcall_mask, cr2);
    Ok(())
}

/// The return to the guest faulted in the hypervisor (`iretq` refused a selector the
/// guest chose): `f` holds the state it was returning to and `vector` the fault. As Xen's
/// fixup of that `iretq`, enter the guest's failsafe callback with a frame describing that
/// state and its data selectors, for the guest to repair; with no failsafe callback (or no
/// stack to put the frame on) the domain crashes. The machine goes on either way.
pub fn iret_fault(f: &mut GuestFrame, vector: u64, segs: traps::DataSelectors) {
    let mut guard = lock();
    let m = guard.as_mut().expect("guest return before boot finished");
    let (i, vi) = (m.cur_idx(), m.current().1);
    let d = &mut m.domains[i];
    let mask = domain::upcall_mask(d.vcpu_info_at(vi));
    let v = &d.vcpus[vi];
    let iopl = domain::shown_iopl(v, &d.mm);
    let built = traps::create_failsafe_frame(&interrupted(f, f.rip), v.mode, v.kernel_sp, mask, iopl, segs, &v.callbacks);
    if let Err(e) = enter_delivery(d, vi, f, built, None) {
        let (cs, ss) = (f.cs, f.ss);
        crash_current(
            m,
            f,
            format_args!("return to the guest faulted ({}, cs={:#x} ss={:#x}) and no failsafe callback could run: {}", trap::vector_name(vector), cs, ss, e),
        );
    }
    finish(guard, f);
}

/// A `syscall` from guest user mode (`route` is not a hypercall): bounce into the guest
/// kernel's syscall callback, or raise #UD at the `syscall` when it registered none, as
/// Xen's `lstar_enter` does. A bounce that fails crashes the domain.
fn syscall_from_user(m: &mut Machine, f: &mut GuestFrame, route: SyscallRoute) {
    let (request, rip, what) = match route {
        // The frame's rip is the instruction after the syscall (rcx), its rflags r11.
        SyscallRoute::Callback(r) => (r, f.rip, "syscall"),
        SyscallRoute::InvalidOpcode(r) => (r, f.rip.wrapping_sub(SYSCALL_LEN), "syscall without a callback (#UD)"),
        SyscallRoute::Hypercall => return,
    };
    let (i, vi) = (m.cur_idx(), m.current().1);
    let mask = domain::upcall_mask(m.domains[i].vcpu_info_at(vi));
    // Every bounce clears DF (Xen's virtual SYSCALL_MASK for the callback, the bounce
    // frame's own rule for the #UD).
    if let Err(e) = enter_bounce(&mut m.domains[i], vi, f, rip, mask, &request, None) {
        crash_current(m, f, format_args!("{} from user mode: {}", what, e));
    }
}

/// Crashes the running domain with the one-line report; the CPU goes to another vCPU at
/// [`finish`] (dom0's end stops the machine).
fn crash_current(m: &mut Machine, f: &mut GuestFrame, why: core::fmt::Arguments<'_>) {
    crate::mkprintln!("d{} crashed: {} rip={:#x}", m.cur().id, why, f.rip);
    stop_crashed(m);
}

/// Marks the current domain crashed (its line already printed) and reports it; this CPU
/// and any other running one of its vCPUs choose again (dom0's end stops the machine).
fn stop_crashed(m: &mut Machine) {
    m.cur_mut().state = DomState::Crashed;
    domain_stopped(m);
    m.cpu_mut().preempt = true;
}

/// Console input arrived while a guest ran: raise `VIRQ_CONSOLE` for dom0, and if that
/// woke it, let it run now (its shell answers a key at once rather than after the running
/// vCPU's slice), as Xen's schedulers boost a waking vCPU.
pub fn console_input(f: &mut GuestFrame) {
    let mut guard = lock();
    if let Some(m) = guard.as_mut() {
        m.note_console_input();
        finish(guard, f);
    }
}

/// A device interrupt taken from a guest: its owner's event is raised, and a vCPU it
/// woke in another domain runs next (the back-ends in dom0 answer their guests promptly).
pub fn device_interrupt(f: &mut GuestFrame) {
    let mut guard = lock();
    if let Some(m) = guard.as_mut() {
        m.note_device_interrupts();
        finish(guard, f);
    }
}

/// A timer tick from a guest: the running vCPU's slice is over.
pub fn timer_tick(f: &mut GuestFrame) {
    let mut guard = lock();
    if let Some(m) = guard.as_mut() {
        m.run_timers();
        // The interrupt may be for a vCPU's timer rather than the end of the slice: only
        // rotate when the slice is over (`finish` also does when the running vCPU can no
        // longer run or a woken one should run first).
        if m.now_ns() >= m.cpu().slice_end_ns {
            m.cpu_mut().preempt = true;
        }
        finish(guard, f);
    }
}

/// A guest exception: emulate the instruction if it is one a PV kernel may use, otherwise
/// stop the domain with the one-line report (and run another vCPU in its place).
pub fn guest_exception(f: &mut GuestFrame) {
    // A write to a read-only mapping of one of its own page tables by a guest kernel with
    // `VMASST_TYPE_writable_pagetables`: carried out as a validated update (Xen's ptwr).
    if f.vector == 14 && f.error & 3 == 3 && writable_pagetables_write(f) {
        if f.rflags & traps::rflags::TF != 0 {
            guest_debug_exception(f, traps::debugreg::DR6_BS);
        }
        return;
    }
    let kind = match (f.vector, f.error) {
        (13, 0) => emulate::FaultKind::GeneralProtection,
        (6, _) => emulate::FaultKind::InvalidOpcode,
        _ => return bounce_or_fault(f),
    };
    let mut bytes = [0u8; emulate::MAX_INSN];
    // Read as much of the instruction as is mapped (a fetch near the end of a mapping may
    // be short; the decoder refuses what it cannot see).
    let mut n = emulate::MAX_INSN;
    while n > 0 {
        let ok = match bytes.get_mut(..n) {
            Some(part) => GuestRange::new(f.rip, n as u64).and_then(|r| GuestCopy.copy_from_guest(r, part)).is_ok(),
            None => false,
        };
        if ok {
            break;
        }
        n -= 1;
    }
    let Some(insn) = emulate::decode(bytes.get(..n).unwrap_or(&[]), kind) else { return bounce_or_fault(f) };
    let outcome = {
        let mut guard = lock();
        let m = guard.as_mut().expect("guest exception before boot finished");
        let (i, vi) = (m.cur_idx(), m.current().1);
        let d = &mut m.domains[i];
        let iopl_ok = domain::iopl_ok(&d.vcpus[vi], &d.mm);
        let hardware_ports = d.privileged;
        let vcpu = &mut d.vcpus[vi];
        // Xen emulates privileged instructions for the guest kernel only: its processes get
        // the #GP. The forced-emulation CPUID is not privileged and is emulated in both
        // modes (Xen refuses it to user mode only with CPUID faulting, which we lack); I/O
        // and cli/sti are allowed by the virtual IOPL or the I/O bitmap, in either mode.
        let allowed = vcpu.mode == GuestMode::Kernel
            || matches!(insn, emulate::Insn::ForcedCpuid { .. } | emulate::Insn::CliSti { .. } | emulate::Insn::In { .. } | emulate::Insn::Out { .. });
        if allowed {
            emulate::execute(insn, &mut FrameRegs(f), &mut MachineEmu { vcpu, iopl_ok, hardware_ports }).map(|done| {
                // After the instruction, as the hardware would (Xen's `bpmatch`): the I/O
                // breakpoints it hit, and a single step.
                let io = done.io.map_or(0, |(port, size)| vcpu.debug.io_breakpoints(port, size, vcpu.cr4_de()));
                io | if f.rflags & traps::rflags::TF != 0 { traps::debugreg::DR6_BS } else { 0 }
            })
        } else {
            Err(emulate::Inject::Gp)
        }
    };
    match outcome {
        Ok(0) => {}
        Ok(hit) => guest_debug_exception(f, hit),
        Err(emulate::Inject::Gp) => bounce_or_fault(f),
        Err(emulate::Inject::Ud) => {
            f.vector = u64::from(traps::vector::UD);
            f.error = 0;
            bounce_or_fault(f);
        }
    }
}

/// A debug exception for the running vCPU: `hit` (DR6's bits in positive polarity, from
/// the hardware or the emulation) is recorded in its DR6 and the #DB goes to its handler,
/// as Xen's `pv_inject_DB`.
pub fn guest_debug_exception(f: &mut GuestFrame, hit: u64) {
    {
        let mut guard = lock();
        let m = guard.as_mut().expect("guest exception before boot finished");
        m.cur_vcpu_mut().debug.merge_dr6(hit);
    }
    f.vector = u64::from(traps::vector::DB);
    f.error = 0;
    bounce_or_fault(f);
}

/// Xen's `ptwr_do_page_fault`: the write at the faulting address, to an entry of one of the
/// guest kernel's L1 tables mapped read-only, goes through the page-table rules as if by
/// `pt_update`, and the guest resumes after the instruction. False (nothing changed) when
/// it is not such a write, the instruction is not one of the writes this emulates, or the
/// rules refuse the new entry: the #PF is then the guest's.
fn writable_pagetables_write(f: &mut GuestFrame) -> bool {
    let va = trap::cr2();
    let mut bytes = [0u8; emulate::MAX_INSN];
    let mut n = emulate::MAX_INSN;
    while n > 0 {
        let ok = bytes.get_mut(..n).is_some_and(|part| GuestRange::new(f.rip, n as u64).and_then(|r| GuestCopy.copy_from_guest(r, part)).is_ok());
        if ok {
            break;
        }
        n -= 1;
    }
    let Some(w) = emulate::decode_pt_write(bytes.get(..n).unwrap_or(&[])) else { return false };
    if !va.is_multiple_of(u64::from(w.size)) {
        return false;
    }
    let mut guard = lock();
    let m = guard.as_mut().expect("guest exception before boot finished");
    let i = m.cur_idx();
    let d = &m.domains[i];
    let assist = d.mm.vm_assist() & (1 << hypercall_abi::arch::VMASST_TYPE_WRITABLE_PAGETABLES) != 0;
    if !assist || d.vcpus[m.current().1].mode != GuestMode::Kernel {
        return false;
    }
    let Ok((maddr, old)) = m.with_mm(i, |mm| mm.ptwr_entry(va)) else { return false };
    let mut regs = FrameRegs(f);
    let mut zf = None;
    let new = emulate::pt_write_value(&w, old, va & 7, &mut regs, &mut |z| zf = Some(z));
    if let Some(new) = new {
        if m.with_mm(i, |mm| mm.normal_update(maddr, new, false)).is_err() {
            return false;
        }
    }
    if let Some(z) = zf {
        f.rflags = if z { f.rflags | (1 << 6) } else { f.rflags & !(1 << 6) };
    }
    f.rip = f.rip.wrapping_add(u64::from(w.len));
    true
}

/// Delivers the exception in `f` to the guest's own handler (a bounce frame on its kernel
/// stack, as Xen does); with no handler, or no stack to put the frame on, the domain stops.
pub fn bounce_or_fault(f: &mut GuestFrame) {
    let result = {
        let mut guard = lock();
        let m = guard.as_mut().expect("guest exception before boot finished");
        bounce(m, f)
    };
    match result {
        Ok(()) => {}
        Err(e) if e.from_user => {
            let why = alloc::format!("vector {} {} from user mode: {}", f.vector, trap::vector_name(f.vector), e);
            guest_fault(f, &why);
        }
        Err(_) => guest_fault(f, ""),
    }
}

fn bounce(m: &mut Machine, f: &mut GuestFrame) -> Result<(), BounceFailure> {
    let (i, vi) = (m.cur_idx(), m.current().1);
    let d = &mut m.domains[i];
    let at = d.vcpu_info_at(vi);
    let v = &d.vcpus[vi];
    let mode = v.mode;
    let vector = f.vector as u8;
    let fault_addr = if vector == traps::vector::PF { trap::cr2() } else { 0 };
    // A #GP with the IDT bit set comes from `int $n`. Take n from the instruction (CD ib)
    // rather than from the error code, which emulators do not all compute the same way;
    // the guest then sees the architectural (n << 3) | 2. (Read before any mode switch:
    // the instruction is in the interrupted mode's address space.)
    let mut error = f.error as u32;
    if vector == traps::vector::GP && error & 3 == 2 {
        let mut insn = [0u8; 2];
        let readable = GuestRange::new(f.rip, 2).and_then(|r| GuestCopy.copy_from_guest(r, &mut insn)).is_ok();
        if readable && insn[0] == 0xcd {
            error = (u32::from(insn[1]) << 3) | 2;
        }
    }
    // `int $n` arrives as #GP with error (n << 3) | 2: deliver it if the guest's table
    // allows it from the interrupted mode (DPL 1 for the kernel, 3 for user mode); a page
    // fault's user bit is the guest mode's.
    let (request, cr2, rip) = match traps::software_interrupt(&v.traps, error, mode) {
        SoftInt::Deliver { request, .. } if vector == traps::vector::GP => (request, None, f.rip.wrapping_add(2)),
        _ => {
            let e = traps::exception(&v.traps, vector, error, fault_addr, mode);
            (e.request, e.cr2, f.rip)
        }
    };
    let mask = domain::upcall_mask(at);
    enter_bounce(d, vi, f, rip, mask, &request, cr2)
}

/// The first words on a guest's stack (those that can be read), for the crash report: the
/// return addresses a guest's author needs to find where it was.
struct StackWords(u64);

impl core::fmt::Display for StackWords {
    fn fmt(&self, out: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for k in 0..24u64 {
            let mut word = [0u8; 8];
            let at = self.0.wrapping_add(8 * k);
            if GuestRange::new(at, 8).and_then(|r| GuestCopy.copy_from_guest(r, &mut word)).is_err() {
                break;
            }
            write!(out, " {:#x}", u64::from_le_bytes(word))?;
        }
        Ok(())
    }
}

/// Stops the current domain for a fault it took (or a state it cannot be resumed from),
/// with the one-line report; another vCPU then runs in its place (dom0's end stops the
/// machine).
pub fn guest_fault(f: &mut GuestFrame, why: &str) {
    let mut guard = lock();
    let m = guard.as_mut().expect("guest fault before boot finished");
    let id = m.cur().id;
    if f.vector == 14 {
        m.cur_vcpu_mut().cr2 = trap::cr2();
    }
    if !why.is_empty() {
        crash_current(m, f, format_args!("{why}"));
        return finish(guard, f);
    }
    let cr2 = if f.vector == 14 { alloc::format!(" cr2={:#x}", trap::cr2()) } else { alloc::string::String::new() };
    crate::mkprintln!(
        "d{} crashed: vector {} {} rip={:#x} error={:#x}{} rsp={:#x} stack:{}",
        id,
        f.vector,
        trap::vector_name(f.vector),
        f.rip,
        f.error,
        cr2,
        f.rsp,
        StackWords(f.rsp)
    );
    stop_crashed(m);
    finish(guard, f);
}

/// The current domain stopped running: report it; if it is dom0, stop the machine.
fn domain_stopped(m: &mut Machine) {
    let d = m.cur();
    let (what, code) = match d.state {
        DomState::Shutdown(ShutdownReason::Poweroff) => ("poweroff", ExitCode::Poweroff),
        DomState::Shutdown(ShutdownReason::Reboot) => ("reboot", ExitCode::Reboot),
        DomState::Shutdown(r) => (reason_name(r), ExitCode::Crash),
        DomState::Crashed | DomState::Dying => ("crash", ExitCode::Crash),
        DomState::Running => return,
    };
    if let DomState::Shutdown(_) = d.state {
        if d.privileged {
            crate::mkprintln!("d{} shutdown: {}", d.id, what);
        } else {
            crate::mkprintln!("d{} ({}) shutdown: {}", d.id, d.name.as_str(), what);
        }
    }
    if d.privileged {
        // dom0 is the machine's owner: its end is the machine's end, as in Xen.
        let others = m.domains.iter().filter(|o| !o.privileged && o.state == DomState::Running).count();
        if others == 0 {
            crate::mkprintln!("d{} stopped; no domains left to run; powering off ({})", d.id, what);
        } else {
            crate::mkprintln!("d{} stopped; stopping {} other domain(s); powering off ({})", d.id, others, what);
        }
        exit(code)
    }
    // Its vCPUs running on other CPUs stop there too.
    let id = d.id;
    m.kick_domain(id);
    // The toolstack hears of it (Xen's VIRQ_DOM_EXC from domain_shutdown).
    m.raise_dom0_virq(hypercall_abi::event_channel::VIRQ_DOM_EXC);
}
