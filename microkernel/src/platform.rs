//! The hypercall handlers' view of the machine (the [`hypercall::Platform`] traits) and the emulator's
//! ([`emulate::Regs`], [`emulate::EmuEnv`]), for the running vCPU.
#![forbid(unsafe_code)]

use crate::arch::console;
use crate::arch::x86_64::{cpu, trap};
use crate::arch::GuestFrame;
use crate::domain::{DomState, Vcpu};
use crate::emulate;
use crate::guest_access::{GuestMemory, GuestRange};
use crate::hypercall::{self, BuildFacts, Caller, DomainControl, GuestCpu, Grants, Irqs, Memory, System, Vcpus, Waiting};
#[cfg(feature = "bench")]
use crate::kbench;
use crate::kernel::Machine;
use crate::mm::pt::Mm;
use crate::traps::GuestMode;
use hypercall_abi::errno::Errno;
use hypercall_abi::sched::ShutdownReason;
use hypercall_abi::sysctl::PhysInfo;

/// Requests a long batch handles in one hypercall entry before it continues in another:
/// bounds the time spent with interrupts off (and, with several vCPUs, the latency others
/// see), at the cost of one extra entry per chunk.
const PREEMPT_CHUNK: u32 = 1024;

/// The hypercall handlers' view of the machine, for one hypercall of the running vCPU.
pub struct MachinePlatform<'a> {
    /// The machine.
    pub m: &'a mut Machine,
    /// The caller's rsp at the hypercall.
    pub rsp: u64,
}

/// Guest memory of the running vCPU, through the exception-fixup copy.
pub struct GuestCopy;

impl GuestMemory for GuestCopy {
    fn copy_from_guest(&mut self, src: GuestRange, buf: &mut [u8]) -> Result<(), Errno> {
        trap::copy_from_guest(src, buf).map_err(|_| Errno::EFAULT)
    }

    fn copy_to_guest(&mut self, dst: GuestRange, buf: &[u8]) -> Result<(), Errno> {
        trap::copy_to_guest(dst, buf).map_err(|_| Errno::EFAULT)
    }
}

impl GuestMemory for MachinePlatform<'_> {
    fn copy_from_guest(&mut self, src: GuestRange, buf: &mut [u8]) -> Result<(), Errno> {
        GuestCopy.copy_from_guest(src, buf)
    }

    fn copy_to_guest(&mut self, dst: GuestRange, buf: &[u8]) -> Result<(), Errno> {
        GuestCopy.copy_to_guest(dst, buf)
    }
}

impl System for MachinePlatform<'_> {
    fn caller(&self) -> Caller {
        let d = self.m.cur();
        Caller { domid: d.id, privileged: d.privileged }
    }

    fn console_write(&mut self, bytes: &[u8]) {
        let d = self.m.cur_mut();
        if d.privileged {
            console::write_bytes(bytes);
            return;
        }
        // Other domains' lines carry their name, and are printed whole so that two
        // domains' output never interleaves inside a line.
        for &b in bytes {
            if b != b'\n' {
                let _ = d.console_line.push(b);
            }
            if b == b'\n' || d.console_line.is_full() {
                console::write_prefixed_line(d.name.as_str(), &d.console_line);
                d.console_line.clear();
            }
        }
    }

    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        let n = console::read_bytes(buf);
        // Bytes the read moved in from the UART may have had their interrupt taken already.
        self.m.note_console_input();
        n
    }

    fn physinfo(&self) -> PhysInfo {
        PhysInfo {
            nr_cpus: self.m.nr_cpus,
            cpu_khz: self.m.tsc_khz as u32,
            total_pages: self.m.total_pages,
            free_pages: self.m.frames.free_frames(),
            max_mfn: self.m.frames.max_frame().saturating_sub(1),
            uptime_ns: self.m.now_ns(),
            nr_domains: self.m.domains.iter().filter(|d| d.state != DomState::Dying).count() as u32,
            _pad: 0,
        }
    }

    #[cfg(feature = "bench")]
    fn set_bare_syscall(&mut self, on: bool) {
        cpu::set_bare_syscall(on);
    }

    #[cfg(feature = "bench")]
    fn set_bare_exception(&mut self, on: bool) {
        crate::arch::x86_64::idt::set_bare_breakpoint(on);
    }

    fn watchdog(&mut self, id: u32, timeout: u32) -> Result<i64, Errno> {
        let now = self.m.now_ns();
        self.m.cur_mut().watchdogs.op(id, timeout, now)
    }

    fn shutdown(&mut self, reason: ShutdownReason) {
        self.m.cur_mut().state = DomState::Shutdown(reason);
    }

    fn domain_control(&mut self) -> &mut dyn DomainControl {
        &mut *self.m
    }

    fn command_line(&self) -> &[u8] {
        self.m.cmdline.args()
    }

    fn build_facts(&self) -> BuildFacts {
        BuildFacts { compiler: env!("MK_COMPILER"), changeset: env!("MK_CHANGESET"), date: env!("MK_DATE") }
    }

    fn now_ns(&self) -> u64 {
        self.m.now_ns()
    }

    fn memstats(&mut self) -> Result<hypercall_abi::sysctl::MemStats, Errno> {
        let i = self.m.cur_idx();
        Ok(self.m.frame_table.stats(&self.m.domains[i].mm))
    }

    fn audit(&mut self) -> Result<hypercall_abi::sysctl::AuditResult, Errno> {
        Ok(self.m.audit())
    }

    #[cfg(feature = "bench")]
    fn bench_baseline(&mut self, op: u32, arg: u64) -> Result<u64, Errno> {
        use hypercall_abi::sysctl::{BENCH_DIRECT_BUILD, BENCH_DIRECT_PTE_WRITES, BENCH_KERNEL_MAP_UNMAP_32, BENCH_KERNEL_VALIDATED_UPDATES};
        match op {
            BENCH_KERNEL_MAP_UNMAP_32 => {
                let cur = self.m.cur_idx();
                self.m.with_mm(cur, |mm| kbench::map_unmap_32(mm, arg))
            }
            BENCH_DIRECT_PTE_WRITES => kbench::direct_pte_writes(&mut self.m.frames, arg),
            BENCH_DIRECT_BUILD => kbench::direct_build(&mut self.m.frames, arg),
            BENCH_KERNEL_VALIDATED_UPDATES => {
                let cur = self.m.cur_idx();
                self.m.with_mm(cur, |mm| kbench::validated_updates(mm, arg))
            }
            _ => Err(Errno::EINVAL),
        }
    }
}

impl Memory for MachinePlatform<'_> {

    fn with_mm(&mut self, f: &mut dyn FnMut(Mm<'_, '_>)) -> Result<(), Errno> {
        let cur = self.m.cur_idx();
        self.m.with_mm(cur, |mm| {
            f(Mm { frames: &mut *mm.frames, dom: &mut *mm.dom, mach: &mut *mm.mach });
        });
        Ok(())
    }

    fn with_mm_of(&mut self, domid: u16, f: &mut dyn FnMut(Mm<'_, '_>)) -> Result<(), Errno> {
        let i = self.m.live_idx(domid)?;
        self.m.with_mm(i, |mm| f(Mm { frames: &mut *mm.frames, dom: &mut *mm.dom, mach: &mut *mm.mach }));
        Ok(())
    }

    fn shared_max_pfn(&mut self, target: Option<u16>) -> Result<u64, Errno> {
        let i = match target {
            None => self.m.cur_idx(),
            Some(id) => self.m.idx(id).ok_or(Errno::ESRCH)?,
        };
        Ok(crate::domain::shared_max_pfn(self.m.domains[i].shared_info_mfn))
    }

    fn m2p_extent(&self, i: u64) -> Option<u64> {
        crate::arch::x86_64::paging::m2p_extent(i)
    }

    fn preempt_chunk(&self) -> u32 {
        PREEMPT_CHUNK
    }

    /// Other work is due when the APIC timer is due: the end of the running vCPU's slice
    /// or a vCPU timer, whichever the timer is armed for (with interrupts off, the
    /// interrupt waits for the guest's return). No cost on the hypercalls that never ask.
    fn preempt_check(&self) -> bool {
        self.m.now_ns() >= self.m.cpu().armed_at_ns
    }
}

impl Grants for MachinePlatform<'_> {

    fn grant_setup_table(&mut self, domid: u16, nr_frames: u32) -> Result<alloc::vec::Vec<u64>, i16> {
        self.m.grant_setup_table(domid, nr_frames)
    }

    fn grant_query_size(&mut self, domid: u16) -> Result<(u32, u32), i16> {
        self.m.grants.query_size(domid)
    }

    fn grant_map(&mut self, req: grant_tables::MapRequest, batch: &mut hypercall::GrantBatch) -> Result<(u32, u64), i16> {
        self.m.grant_map(req, &mut batch.walk)
    }

    fn grant_unmap(&mut self, host_addr: u64, dev_bus_addr: u64, handle: u32, batch: &mut hypercall::GrantBatch) -> Result<(), i16> {
        self.m.grant_unmap(host_addr, dev_bus_addr, handle, &mut batch.walk)
    }

    fn grant_flush_tlb(&mut self, vas: Option<&[u64]>) {
        let cur = self.m.cur_idx();
        self.m.with_mm(cur, |mm| match vas {
            Some(vas) => vas.iter().for_each(|&va| mm.invlpg(va)),
            None => mm.flush_vcpus(None, u64::MAX),
        });
    }

    fn grant_copy(&mut self, op: &hypercall_abi::grant_table::GnttabCopy, batch: &mut hypercall::GrantBatch) -> Result<(), i16> {
        self.m.grant_copy(op, &mut batch.copies)
    }

    fn grant_unmap_and_replace(&mut self, host_addr: u64, new_addr: u64, handle: u32, batch: &mut hypercall::GrantBatch) -> Result<(), i16> {
        self.m.grant_unmap_replace(host_addr, 0, new_addr, handle, &mut batch.walk)
    }

    fn grant_set_version(&mut self, version: u32) -> Result<u32, Errno> {
        self.m.grant_set_version(version)
    }

    fn grant_version(&mut self, domid: u16) -> u32 {
        self.m.grants.table(domid).map_or(1, |t| t.version())
    }

    fn grant_status_frames(&mut self, domid: u16, n: u32) -> Result<alloc::vec::Vec<u64>, i16> {
        self.m.grants.get_status_frames(domid, n).map(|f| f.to_vec())
    }

    fn grant_batch_end(&mut self, batch: &mut hypercall::GrantBatch) {
        self.m.grant_copy_finish(&mut batch.copies);
    }
}

impl Waiting for MachinePlatform<'_> {

    fn event_channel_op(&mut self, cmd: u32, arg: u64) -> Result<i64, Errno> {
        let caller = hypercall_abi::types::DomId(self.m.cur().id);
        // A notification needs no action here: the notified vCPU finds its upcall pending
        // when it next returns to its guest (one CPU; blocking arrives with SCHEDOP_block).
        // The engine is moved out for the call (a map move), so that the frame holder can
        // reach the domains' memory state through the machine meanwhile.
        let mut events = core::mem::take(&mut self.m.events);
        let mut frames = HeldFrames { m: &mut *self.m };
        let r = crate::hypercall::evtchn::event_channel_op_switchable(&mut events, &mut GuestCopy, &mut frames, caller, cmd, arg);
        self.m.events = events;
        self.m.apply_line_changes();
        for n in r? {
            self.m.wake(n);
        }
        Ok(0)
    }

    fn set_timer(&mut self, deadline_ns: u64) {
        self.m.cur_vcpu_mut().timer_ns = deadline_ns;
        // A deadline already past fires at once (Xen's set_timer_op); a later one may be
        // earlier than what the APIC timer is armed for.
        self.m.run_timers();
        self.m.rearm();
    }

    fn block(&mut self) -> bool {
        let (i, v) = (self.m.cur_idx(), self.m.current().1);
        let at = self.m.domains[i].vcpu_info_at(v);
        // Xen's SCHEDOP_block: events are unmasked, and the vCPU sleeps only if none is
        // pending already (it is then delivered on the way back).
        crate::domain::set_upcall_mask_and_cr2(at, 0, None);
        let sleeps = !crate::domain::upcall_pending(at);
        if sleeps {
            self.m.domains[i].vcpus[v].blocked = true;
        }
        sleeps
    }

    fn poll(&mut self, ports: &[u32], deadline_ns: u64) -> Result<bool, Errno> {
        let dom = hypercall_abi::types::DomId(self.m.cur().id);
        for &port in ports {
            if self.m.events.poll_pending(dom, hypercall_abi::types::Port(port))? {
                return Ok(false);
            }
        }
        if deadline_ns != 0 && deadline_ns <= self.m.now_ns() {
            // The timeout has passed already: nothing to wait for.
            return Ok(false);
        }
        let v = self.m.cur_vcpu_mut();
        // Filled in place: a `Poll` is over 512 bytes, and moving (or zero-filling) one
        // costs thousands of cycles under emulation.
        v.poll.ports.clear();
        // At most MAX_POLL_PORTS ports arrive here: the vector holds them all.
        let _ = v.poll.ports.extend_from_slice(ports);
        v.poll.deadline_ns = deadline_ns;
        v.poll.active = true;
        v.blocked = true;
        if deadline_ns != 0 {
            self.m.arm_at(deadline_ns);
        }
        Ok(true)
    }

    fn set_periodic_timer(&mut self, period_ns: u64) {
        let now = self.m.now_ns();
        let v = self.m.cur_vcpu_mut();
        v.periodic_ns = period_ns;
        v.periodic_next_ns = if period_ns == 0 { 0 } else { now.saturating_add(period_ns) };
        self.m.rearm();
    }
}

impl Vcpus for MachinePlatform<'_> {

    fn vcpu_ids(&self) -> (u32, u32) {
        (self.m.current().1 as u32, self.m.cur().vcpus.len() as u32)
    }

    fn runstate(&mut self, vcpu: u32) -> Result<hypercall_abi::vcpu::VcpuRunstateInfo, Errno> {
        let now = self.m.now_ns();
        let v = self.m.cur().vcpus.get(vcpu as usize).ok_or(Errno::ENOENT)?;
        Ok(v.runstate.info(now))
    }

    fn register_vcpu_info(&mut self, vcpu: u32, mfn: u64, offset: u32) -> Result<(), Errno> {
        let (i, vi) = (self.m.cur_idx(), self.m.current().1);
        let v = vcpu as usize;
        let c = self.m.domains[i].vcpus.get(v).ok_or(Errno::ENOENT)?;
        // Once per vCPU; on itself, or on one that is down.
        if c.vcpu_info.is_some() || (v != vi && c.started) {
            return Err(Errno::EINVAL);
        }
        self.m.with_mm(i, |mm| mm.hold_writable(mfn))?;
        let d = &mut self.m.domains[i];
        let to = (mfn << 12) + u64::from(offset);
        crate::domain::move_vcpu_info(d.vcpu_info_at(v), to);
        d.vcpus[v].vcpu_info = Some(to);
        if let Some(layout) = self.m.events.layout_mut(hypercall_abi::types::DomId(d.id)) {
            layout.memory_mut().set_vcpu_info(v, to);
        }
        Ok(())
    }

    fn register_runstate_area(&mut self, vcpu: u32, addr: u64) -> Result<(), Errno> {
        let now = self.m.now_ns();
        let current = self.m.current().1 == vcpu as usize;
        let d = self.m.cur_mut();
        let flag = crate::kernel::runstate_update_flag(&d.mm);
        let v = d.vcpus.get_mut(vcpu as usize).ok_or(Errno::ENOENT)?;
        v.runstate_area = addr;
        // As Xen: the caller's own area is filled at once (its page table is active).
        if current {
            crate::kernel::write_runstate_area(v, now, flag);
        }
        Ok(())
    }

    fn vcpu_is_up(&self, v: u32) -> bool {
        self.m.cur().vcpus.get(v as usize).is_some_and(|c| c.started && !c.down)
    }

    fn initialise_vcpu(&mut self, v: u32, ctxt: &hypercall_abi::arch::VcpuGuestContext) -> Result<(), Errno> {
        crate::hypercall::vcpu::check_initialise(&bringup(self.m.cur()), v as usize)?;
        let i = self.m.cur_idx();
        self.m.initialise_vcpu(i, v as usize, ctxt)
    }

    fn vcpu_up(&mut self, v: u32) -> Result<(), Errno> {
        if crate::hypercall::vcpu::check_up(&bringup(self.m.cur()), v as usize)? {
            let i = self.m.cur_idx();
            self.m.domains[i].vcpus[v as usize].down = false;
            self.m.place_vcpu(i, v as usize);
            // A vCPU brought up competes at once (Xen's `vcpu_wake`).
            let now = self.m.now_ns();
            let dom = self.m.domains[i].id;
            self.m.scheduler_wake((dom, v as usize), now);
        }
        Ok(())
    }

    fn vcpu_down(&mut self, v: u32) -> Result<bool, Errno> {
        let changed = crate::hypercall::vcpu::check_down(&bringup(self.m.cur()), v as usize)?;
        if changed {
            let i = self.m.cur_idx();
            self.m.domains[i].vcpus[v as usize].down = true;
            // Running on another CPU, it stops there now.
            let key = (self.m.domains[i].id, v as usize);
            self.m.kick_vcpu(key);
        }
        Ok(changed && v as usize == self.m.current().1)
    }
}

impl GuestCpu for MachinePlatform<'_> {

    fn set_segment_base(&mut self, which: hypercall::SegmentBase, value: u64) -> Result<(), Errno> {
        match which {
            hypercall::SegmentBase::Fs => cpu::set_fs_base(value),
            hypercall::SegmentBase::GsKernel => crate::domain::set_gs_base(self.m.cur_vcpu_mut(), GuestMode::Kernel, value),
            hypercall::SegmentBase::GsUser => crate::domain::set_gs_base(self.m.cur_vcpu_mut(), GuestMode::User, value),
        }
        Ok(())
    }

    fn set_gdt(&mut self, frames: &[u64], entries: u32) -> Result<(), Errno> {
        let (i, vi) = (self.m.cur_idx(), self.m.current().1);
        let new: heapless::Vec<u64, { hypercall::descriptor::MAX_GDT_FRAMES }> =
            frames.iter().copied().collect();
        let old = self.m.domains[i].vcpus[vi].gdt_frames.clone();
        self.m.with_mm(i, |mm| mm.set_gdt_frames(&old, frames))?;
        let v = &mut self.m.domains[i].vcpus[vi];
        (v.gdt_frames, v.gdt_entries) = (new, entries);
        crate::domain::load_gdt(v);
        Ok(())
    }

    fn descriptor_written(&mut self, mfn: u64) {
        let v = self.m.cur_vcpu_mut();
        if v.gdt_frames.contains(&mfn) {
            crate::domain::load_gdt(v);
        }
        if v.ldt_frames.contains(&Some(mfn)) {
            crate::domain::load_ldt(v);
        }
    }

    /// Xen maps an LDT page when the guest first uses it; here each page is looked up in
    /// the kernel's tables at once and, when mapped, its frame held as a descriptor frame
    /// (every descriptor checked); a page that is not (unmapped, writable elsewhere, a bad
    /// descriptor) reads as empty, so its selectors fault, as Xen's would. The old LDT's
    /// frames are let go.
    fn set_ldt(&mut self, base: u64, ents: u32) -> Result<(), Errno> {
        let (i, vi) = (self.m.cur_idx(), self.m.current().1);
        let old: heapless::Vec<u64, 16> = self.m.domains[i].vcpus[vi].ldt_frames.iter().flatten().copied().collect();
        let pages = (u64::from(ents) * 8).div_ceil(4096);
        let frames: heapless::Vec<Option<u64>, 16> = self.m.with_mm(i, |mm| {
            let _ = mm.set_gdt_frames(&old, &[]);
            (0..pages)
                .map(|k| {
                    let mfn = mm.frame_at(base + k * 4096)?;
                    mm.set_gdt_frames(&[], &[mfn]).ok().map(|()| mfn)
                })
                .collect()
        });
        let v = &mut self.m.domains[i].vcpus[vi];
        (v.ldt_frames, v.ldt_entries) = (frames, ents);
        crate::domain::load_ldt(v);
        Ok(())
    }

    fn set_io_access(&mut self, access: hypercall::physdev::IoAccess) -> Result<(), Errno> {
        let v = self.m.cur_vcpu_mut();
        match access {
            hypercall::physdev::IoAccess::Iopl(iopl) => v.iopl = u64::from(iopl) << 12,
            hypercall::physdev::IoAccess::Bitmap { addr, nr_ports } => (v.iobmp, v.iobmp_limit) = (addr, nr_ports),
        }
        Ok(())
    }

    fn set_trap_table(&mut self, table: u64) -> Result<crate::traps::SetTrapTable, crate::traps::TrapTableError> {
        self.m.cur_vcpu_mut().traps.set_from_guest(&mut GuestCopy, table)
    }

    fn callback_op(&mut self, cmd: u32, arg: u64) -> Result<i64, Errno> {
        let v = self.m.cur_vcpu_mut();
        v.callbacks.callback_op(&mut v.traps, &mut GuestCopy, cmd, arg)?;
        Ok(0)
    }

    fn nmi_op(&mut self, cmd: u32, arg: u64) -> Result<i64, Errno> {
        let v = self.m.cur_vcpu_mut();
        v.callbacks.nmi_op(&mut v.traps, &mut GuestCopy, cmd, arg)?;
        Ok(0)
    }

    fn set_callbacks(&mut self, event: u64, failsafe: u64, syscall: u64) -> Result<i64, Errno> {
        self.m.cur_vcpu_mut().callbacks.set_callbacks(event, failsafe, syscall)?;
        Ok(0)
    }

    fn fpu_taskswitch(&mut self, set: bool) {
        self.m.cur_vcpu_mut().fpu_ts = set;
        crate::arch::x86_64::fpu::set_task_switched(set);
    }

    fn set_debugreg(&mut self, reg: u32, value: u64) -> Result<(), Errno> {
        self.m.cur_vcpu_mut().set_debugreg(reg, value)
    }

    fn get_debugreg(&mut self, reg: u32) -> Result<u64, Errno> {
        self.m.cur_vcpu_mut().get_debugreg(reg)
    }

    fn set_kernel_stack(&mut self, sp: u64) -> Result<(), Errno> {
        self.m.cur_vcpu_mut().kernel_sp = sp;
        Ok(())
    }

    fn caller_rsp(&self) -> u64 {
        self.rsp
    }

    fn has_user_page_table(&self) -> bool {
        self.m.cur().mm.user_base() != 0
    }
}

impl Irqs for MachinePlatform<'_> {

    fn physdev_pirq_op(&mut self, cmd: u32, arg: u64) -> Result<i64, Errno> {
        let caller = hypercall_abi::types::DomId(self.m.cur().id);
        let r = crate::hypercall::physdev::pirq_op(&mut self.m.events, &mut GuestCopy, caller, cmd, arg);
        self.m.apply_line_changes();
        r
    }
}

/// `emulate::Regs` over a guest frame.
pub struct FrameRegs<'a>(pub &'a mut GuestFrame);

impl emulate::Regs for FrameRegs<'_> {
    fn gpr(&self, n: u8) -> u64 {
        let f = &self.0;
        [f.rax, f.rcx, f.rdx, f.rbx, f.rsp, f.rbp, f.rsi, f.rdi, f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15]
            [n as usize & 15]
    }
    fn set_gpr(&mut self, n: u8, v: u64) {
        let f = &mut *self.0;
        let r = match n & 15 {
            0 => &mut f.rax,
            1 => &mut f.rcx,
            2 => &mut f.rdx,
            3 => &mut f.rbx,
            4 => &mut f.rsp,
            5 => &mut f.rbp,
            6 => &mut f.rsi,
            7 => &mut f.rdi,
            8 => &mut f.r8,
            9 => &mut f.r9,
            10 => &mut f.r10,
            11 => &mut f.r11,
            12 => &mut f.r12,
            13 => &mut f.r13,
            14 => &mut f.r14,
            _ => &mut f.r15,
        };
        *r = v;
    }
    fn advance(&mut self, len: u8) {
        self.0.rip = self.0.rip.wrapping_add(len as u64);
    }
}

/// `emulate::EmuEnv` for the running guest.
pub struct MachineEmu<'a> {
    /// The faulting vCPU.
    pub vcpu: &'a mut Vcpu,
    /// Its virtual IOPL allows I/O in its current mode (`domain::iopl_ok`).
    pub iopl_ok: bool,
    /// It is the control domain, whose I/O reaches the hardware ports
    /// ([`emulate::hardware_port_allowed`]).
    pub hardware_ports: bool,
}

impl emulate::EmuEnv for MachineEmu<'_> {
    fn guest_cr3(&self) -> u64 {
        cpu::read_cr3()
    }
    fn guest_cr0(&self) -> u64 {
        // TS is the guest's virtual one (fpu_taskswitch).
        (cpu::read_cr0() & !(1 << 3)) | if self.vcpu.fpu_ts { 1 << 3 } else { 0 }
    }
    fn guest_cr2(&self) -> u64 {
        self.vcpu.cr2
    }
    fn guest_cr4(&self) -> u64 {
        // PAE, PGE, OSFXSR, OSXMMEXCPT, OSXSAVE: what a guest may assume is on; and the
        // bits it controls itself (`write_cr4`).
        (cpu::read_cr4() & ((1 << 5) | (1 << 7) | (1 << 9) | (1 << 10) | (1 << 18))) | self.vcpu.cr4
    }
    // Only the guest kernel's instructions are emulated: GS_BASE is the kernel's base and
    // the shadow GS base the user's, as after Xen's `swapgs` in `toggle_guest_mode`.
    fn read_base(&self, msr: u32) -> u64 {
        match msr {
            emulate::MSR_FS_BASE => cpu::fs_base(),
            emulate::MSR_GS_BASE => crate::domain::gs_base(&*self.vcpu, GuestMode::Kernel),
            _ => crate::domain::gs_base(&*self.vcpu, GuestMode::User),
        }
    }
    fn write_base(&mut self, msr: u32, v: u64) {
        match msr {
            emulate::MSR_FS_BASE => cpu::set_fs_base(v),
            emulate::MSR_GS_BASE => crate::domain::set_gs_base(self.vcpu, GuestMode::Kernel, v),
            _ => crate::domain::set_gs_base(self.vcpu, GuestMode::User, v),
        }
    }
    fn write_cr0(&mut self, v: u64) -> Result<(), emulate::InjectGp> {
        if (v ^ self.guest_cr0()) & !(1 << 3) != 0 {
            return Err(emulate::InjectGp);
        }
        let ts = v & (1 << 3) != 0;
        self.vcpu.fpu_ts = ts;
        crate::arch::x86_64::fpu::set_task_switched(ts);
        Ok(())
    }
    fn write_cr4(&mut self, v: u64) {
        let allowed = cpu::CR4_GUEST_BITS & if cpu::has_fsgsbase() { !0 } else { !(1 << 16) };
        self.vcpu.cr4 = v & allowed;
        cpu::load_guest_cr4(self.vcpu.cr4);
    }
    fn iopl_ok(&self) -> bool {
        self.iopl_ok
    }
    /// Xen's `guest_io_okay` over the bitmap: the two bytes covering the port, read through
    /// the current page table (a byte that cannot be read denies), must have the port's
    /// bits clear. (Xen reads it through the kernel's page table from user mode too; here a
    /// process's I/O sees the bitmap only if its page table maps it.)
    fn bitmap_allows(&self, port: u16, size: u8) -> bool {
        if u32::from(port) + u32::from(size) > self.vcpu.iobmp_limit {
            return false;
        }
        let mut bytes = [0xffu8; 2];
        for (k, b) in bytes.iter_mut().enumerate() {
            let at = self.vcpu.iobmp.wrapping_add(u64::from(port >> 3) + k as u64);
            let mut one = [0u8; 1];
            if GuestRange::new(at, 1).and_then(|r| GuestCopy.copy_from_guest(r, &mut one)).is_ok() {
                *b = one[0];
            }
        }
        let mask = u16::from_le_bytes(bytes);
        mask & (((1u16 << size) - 1) << (port & 7)) == 0
    }
    /// The control domain's I/O reaches the hardware, except the ports the hypervisor
    /// keeps; any other read sees all ones, as Xen's `guest_io_read` gives for ports a
    /// domain is not given.
    fn port_in(&mut self, port: u16, size: u8) -> u32 {
        if self.hardware_ports && emulate::hardware_port_allowed(port, size) {
            crate::arch::x86_64::port_in(port, size)
        } else {
            !0
        }
    }
    /// As `port_in`; other writes are dropped, as Xen's `guest_io_write` does.
    fn port_out(&mut self, port: u16, size: u8, value: u32) {
        if self.hardware_ports && emulate::hardware_port_allowed(port, size) {
            crate::arch::x86_64::port_out(port, size, value);
        }
    }
    fn read_dr(&self, n: u8) -> Result<u64, Errno> {
        self.vcpu.get_debugreg(u32::from(n))
    }
    fn write_dr(&mut self, n: u8, v: u64) -> Result<(), Errno> {
        self.vcpu.set_debugreg(u32::from(n), v)
    }
    fn host_cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    }
}

/// Holds and releases frames for the FIFO event ABI through the domains' memory state.
struct HeldFrames<'a> {
    m: &'a mut crate::kernel::Machine,
}

impl crate::hypercall::evtchn::FrameHolder for HeldFrames<'_> {
    fn hold(&mut self, mfn: u64) -> Result<(), Errno> {
        let i = self.m.cur_idx();
        self.m.with_mm(i, |mm| mm.hold_writable(mfn))
    }
    fn release(&mut self, dom: hypercall_abi::types::DomId, mfn: u64) {
        if let Some(i) = self.m.idx(dom.0) {
            self.m.with_mm(i, |mm| mm.release_writable(mfn));
        }
    }
}

/// The bring-up state of each of `d`'s vCPUs.
fn bringup(d: &crate::domain::Domain) -> alloc::vec::Vec<crate::hypercall::vcpu::Bringup> {
    use crate::hypercall::vcpu::Bringup;
    d.vcpus.iter().map(|c| if !c.started { Bringup::Uninitialised } else if c.down { Bringup::Down } else { Bringup::Up }).collect()
}
