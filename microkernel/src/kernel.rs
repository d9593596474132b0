//! The running system: machine memory, the domains, and what happens on a hypercall or a
//! guest fault. Single CPU for now: hypercalls and exceptions run with interrupts off, so
//! the one lock below is never contended; it is there to make the sharing explicit.

use crate::arch::console;
use crate::arch::exit::{exit, ExitCode};
use crate::arch::x86_64::{cpu, time as hwtime, trap};
use crate::arch::GuestFrame;
use crate::emulate;
use crate::guest_access::{GuestMemory, GuestRange};
use crate::hypercall::{self, BuildFacts, Caller, Platform};
use crate::mm::frame_alloc::FrameAllocator;
use crate::mm::page_info::{DomainMm, FrameTable};
use crate::mm::pt::Mm;
use crate::mm_machine::{MachineMm, RamMap};
use crate::multiboot::CmdLine;
use crate::time::TimeScale;
use alloc::vec::Vec;
use hypercall_abi::errno::Errno;
use hypercall_abi::sched::ShutdownReason;
use hypercall_abi::sysctl::PhysInfo;
use spin::Mutex;

/// Where a domain is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomState {
    /// Runnable.
    Running,
    /// Shut itself down.
    Shutdown(ShutdownReason),
    /// Killed for a fault.
    Crashed,
}

/// A domain as the microkernel keeps it.
// The p2m and shared_info frame are read once domains are torn down and listed (the domain
// builder in dom0 and `xl list` come next); until then only construction writes them.
#[allow(dead_code)]
pub struct Domain {
    /// Domain id.
    pub id: u16,
    /// Control privilege.
    pub privileged: bool,
    /// Life state.
    pub state: DomState,
    /// Pseudo-physical to machine frame map.
    pub p2m: Vec<u64>,
    /// Machine frame of shared_info.
    pub shared_info_mfn: u64,
    /// Machine frame of the top-level page table it was built with.
    pub l4_mfn: u64,
    /// Reservation, base pointers and memory-management settings.
    pub mm: DomainMm,
    /// The guest's GS base for its user mode (swapped in when it returns to user mode).
    pub gs_base_user: u64,
    /// The guest's last page-fault address, as `mov %cr2` reads it.
    pub cr2: u64,
}

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
    /// TSC at microkernel entry (system time zero).
    pub boot_tsc: u64,
    /// The microkernel's command line (image name first).
    pub cmdline: CmdLine,
    /// All domains.
    pub domains: Vec<Domain>,
    /// Index of the running domain.
    pub current: usize,
}

impl Machine {
    /// Runs `f` over a memory-management view for domain `idx`.
    pub fn with_mm<R>(&mut self, idx: usize, f: impl FnOnce(&mut Mm<'_, '_>) -> R) -> R {
        let mut mach = MachineMm {
            frames: &mut self.frames,
            ram: &self.ram,
            slots: &self.hv_slots,
            m2p_entries: self.m2p_entries,
            max_mfn: self.max_mfn,
        };
        let mut mm = Mm { frames: &mut self.frame_table, dom: &mut self.domains[idx].mm, mach: &mut mach };
        f(&mut mm)
    }

    /// Nanoseconds since microkernel entry.
    pub fn now_ns(&self) -> u64 {
        TimeScale::for_frequency(self.tsc_khz * 1000).ticks_to_ns(hwtime::rdtsc().wrapping_sub(self.boot_tsc))
    }
}

/// The machine, once booted.
pub static MACHINE: Mutex<Option<Machine>> = Mutex::new(None);

/// Requests a long batch handles in one hypercall entry before it continues in another:
/// bounds the time spent with interrupts off (and, with several vCPUs, the latency others
/// see), at the cost of one extra entry per chunk.
const PREEMPT_CHUNK: u32 = 1024;

/// Length of the `syscall` instruction: a continuation moves the guest's rip back by it.
const SYSCALL_LEN: u64 = 2;

struct MachinePlatform<'a> {
    m: &'a mut Machine,
    /// A continuation the handler asked for: the hypercall and its new arguments.
    continuation: Option<(u64, [u64; 5])>,
}

impl GuestMemory for MachinePlatform<'_> {
    fn copy_from_guest(&mut self, src: GuestRange, buf: &mut [u8]) -> Result<(), Errno> {
        // SAFETY: `buf` is a hypervisor buffer of exactly src.len() bytes; `src` was checked
        // by GuestRange and the current page tables are the calling guest's.
        unsafe { trap::copy_with_fixup(buf.as_mut_ptr(), src.addr() as *const u8, buf.len()) }
            .map_err(|_| Errno::EFAULT)
    }

    fn copy_to_guest(&mut self, dst: GuestRange, buf: &[u8]) -> Result<(), Errno> {
        // SAFETY: as above, in the other direction; CR0.WP makes read-only guest pages fault.
        unsafe { trap::copy_with_fixup(dst.addr() as *mut u8, buf.as_ptr(), buf.len()) }.map_err(|_| Errno::EFAULT)
    }
}

impl Platform for MachinePlatform<'_> {
    fn caller(&self) -> Caller {
        let d = &self.m.domains[self.m.current];
        Caller { domid: d.id, privileged: d.privileged }
    }

    fn console_write(&mut self, bytes: &[u8]) {
        console::write_bytes(bytes);
    }

    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        console::read_bytes(buf)
    }

    fn physinfo(&self) -> PhysInfo {
        PhysInfo {
            nr_cpus: 1,
            cpu_khz: self.m.tsc_khz as u32,
            total_pages: self.m.total_pages,
            free_pages: self.m.frames.free_frames(),
            max_mfn: self.m.frames.max_frame().saturating_sub(1),
            uptime_ns: self.m.now_ns(),
            nr_domains: self.m.domains.iter().filter(|d| d.state == DomState::Running).count() as u32,
            _pad: 0,
        }
    }

    fn set_bare_syscall(&mut self, on: bool) {
        cpu::set_bare_syscall(on);
    }

    fn shutdown(&mut self, reason: ShutdownReason) {
        let cur = self.m.current;
        self.m.domains[cur].state = DomState::Shutdown(reason);
    }

    fn yield_cpu(&mut self) {
        // One runnable vCPU: nothing to switch to.
    }

    fn command_line(&self) -> &[u8] {
        self.m.cmdline.args()
    }

    fn build_facts(&self) -> BuildFacts {
        BuildFacts { compiler: env!("MK_COMPILER"), changeset: env!("MK_CHANGESET"), date: env!("MK_DATE") }
    }

    fn with_mm(&mut self, f: &mut dyn FnMut(Mm<'_, '_>)) -> Result<(), Errno> {
        let cur = self.m.current;
        self.m.with_mm(cur, |mm| {
            f(Mm { frames: &mut *mm.frames, dom: &mut *mm.dom, mach: &mut *mm.mach });
        });
        Ok(())
    }

    fn set_segment_base(&mut self, which: hypercall::SegmentBase, value: u64) -> Result<(), Errno> {
        match which {
            hypercall::SegmentBase::Fs => cpu::set_fs_base(value),
            hypercall::SegmentBase::GsKernel => cpu::set_guest_gs_base(value),
            hypercall::SegmentBase::GsUser => {
                let cur = self.m.current;
                self.m.domains[cur].gs_base_user = value;
            }
        }
        Ok(())
    }

    fn preempt_chunk(&self) -> u32 {
        PREEMPT_CHUNK
    }

    fn continuation(&mut self, nr: u64, args: [u64; 5]) {
        self.continuation = Some((nr, args));
    }

    fn memstats(&mut self) -> Result<hypercall_abi::sysctl::MemStats, Errno> {
        let d = &self.m.domains[self.m.current];
        Ok(self.m.frame_table.stats(&d.mm))
    }

    fn bench_baseline(&mut self, op: u32, arg: u64) -> Result<u64, Errno> {
        use hypercall_abi::sysctl::{BENCH_DIRECT_BUILD, BENCH_DIRECT_PTE_WRITES, BENCH_KERNEL_VALIDATED_UPDATES};
        match op {
            BENCH_DIRECT_PTE_WRITES => bench::direct_pte_writes(&mut self.m.frames, arg),
            BENCH_DIRECT_BUILD => bench::direct_build(&mut self.m.frames, arg),
            BENCH_KERNEL_VALIDATED_UPDATES => {
                let cur = self.m.current;
                self.m.with_mm(cur, |mm| bench::validated_updates(mm, arg))
            }
            _ => Err(Errno::EINVAL),
        }
    }
}

/// In-kernel baselines for `cargo xtask bench`: the same work as a guest's `pt_update`
/// batches, done by the microkernel with plain stores and no validation.
mod bench {
    use super::*;
    use crate::arch::directmap;

    /// Most entries or pages one baseline run may ask for.
    const MAX_ARG: u64 = 1 << 20;

    fn alloc_zeroed(frames: &mut FrameAllocator<'static>) -> Result<u64, Errno> {
        let mfn = frames.alloc().ok_or(Errno::ENOMEM)?;
        // SAFETY: a frame just taken from the allocator: RAM, direct-mapped, ours alone.
        unsafe { core::ptr::write_bytes(directmap(mfn << 12), 0, 4096) };
        Ok(mfn)
    }

    fn entry(mfn: u64, index: u64) -> *mut u64 {
        // SAFETY: callers pass frames they allocated and index < 512, so the pointer stays
        // inside that direct-mapped frame.
        unsafe { (directmap(mfn << 12) as *mut u64).add(index as usize) }
    }

    fn store(mfn: u64, index: u64, v: u64) {
        // SAFETY: see `entry`; the frame is a private scratch page table never loaded in CR3.
        unsafe { core::ptr::write_volatile(entry(mfn, index), v) }
    }

    /// Writes `n` entries into a scratch L1 table; returns the cycles taken.
    pub fn direct_pte_writes(frames: &mut FrameAllocator<'static>, n: u64) -> Result<u64, Errno> {
        if n == 0 || n > MAX_ARG {
            return Err(Errno::EINVAL);
        }
        let l1 = alloc_zeroed(frames)?;
        let t0 = hwtime::rdtsc();
        for i in 0..n {
            store(l1, i % 512, ((l1 + i) << 12) | 0x67);
        }
        let t1 = hwtime::rdtsc();
        frames.free(l1).map_err(|_| Errno::EINVAL)?;
        Ok(t1 - t0)
    }

    /// Builds a 4-level address space mapping `n` pages (tables allocated and zeroed, every
    /// entry written), then frees it; returns the cycles the build took.
    pub fn direct_build(frames: &mut FrameAllocator<'static>, n: u64) -> Result<u64, Errno> {
        if n == 0 || n > 512 * 512 {
            return Err(Errno::EINVAL);
        }
        let mut tables: Vec<u64> = Vec::with_capacity(3 + n.div_ceil(512) as usize);
        let t0 = hwtime::rdtsc();
        let built = build_into(frames, &mut tables, n);
        let t1 = hwtime::rdtsc();
        // Free what was allocated even when the build ran out of frames.
        for t in tables {
            frames.free(t).map_err(|_| Errno::EINVAL)?;
        }
        built?;
        Ok(t1 - t0)
    }

    /// Runs `n` validated L1 updates on a scratch table of the calling domain, remapping its
    /// entries between two scratch frames as the guest benchmark does; returns the cycles.
    /// Every frame and reference it takes is given back.
    pub fn validated_updates(mm: &mut Mm<'_, '_>, n: u64) -> Result<u64, Errno> {
        use crate::mm::page_info::Level;
        if n == 0 || n > MAX_ARG {
            return Err(Errno::EINVAL);
        }
        // Three scratch frames beyond the reservation, for the length of the run.
        let max = mm.dom.max_pages();
        mm.dom.set_max_pages(max + 3);
        let mut got = heapless::Vec::<u64, 3>::new();
        let result = (|| {
            for _ in 0..3 {
                let f = mm.increase_reservation()?;
                let _ = got.push(f);
            }
            let (l1, a, b) = (got[0], got[1], got[2]);
            mm.pin(l1, Level::L1)?;
            let flags = 0x27; // present, writable, user, accessed
            let t0 = hwtime::rdtsc();
            for i in 0..n {
                let data = if (i / 512) % 2 == 0 { a } else { b };
                mm.normal_update((l1 << 12) + (i % 512) * 8, (data << 12) | flags, false)?;
            }
            let t1 = hwtime::rdtsc();
            for i in 0..512 {
                mm.normal_update((l1 << 12) + i * 8, 0, false)?;
            }
            mm.unpin(l1)?;
            Ok(t1 - t0)
        })();
        for f in got {
            let _ = mm.decrease_reservation(f);
        }
        mm.dom.set_max_pages(max);
        result
    }

    fn build_into(frames: &mut FrameAllocator<'static>, tables: &mut Vec<u64>, n: u64) -> Result<(), Errno> {
        let mut table = |frames: &mut FrameAllocator<'static>| -> Result<u64, Errno> {
            let t = alloc_zeroed(frames)?;
            tables.push(t);
            Ok(t)
        };
        let l4 = table(frames)?;
        let l3 = table(frames)?;
        let l2 = table(frames)?;
        store(l4, 1, (l3 << 12) | 0x67);
        store(l3, 0, (l2 << 12) | 0x67);
        let mut l1 = 0;
        for i in 0..n {
            if i % 512 == 0 {
                l1 = table(frames)?;
                store(l2, i / 512, (l1 << 12) | 0x67);
            }
            store(l1, i % 512, ((l4 + i) << 12) | 0x67);
        }
        Ok(())
    }
}

/// Runs the hypercall in `f` for the current domain.
pub fn hypercall(f: &mut GuestFrame) {
    let mut guard = MACHINE.lock();
    let m = guard.as_mut().expect("hypercall before boot finished");
    let nr = f.rax;
    let mut p = MachinePlatform { m, continuation: None };
    f.rax = hypercall::dispatch(&mut p, nr, [f.rdi, f.rsi, f.rdx, f.r10, f.r8]) as u64;
    if let Some((nr, a)) = p.continuation {
        // Xen's hypercall continuation: the guest executes the same `syscall` again, with
        // the arguments the handler left for the rest of the work.
        f.rip = f.rip.wrapping_sub(SYSCALL_LEN);
        f.rax = nr;
        (f.rdi, f.rsi, f.rdx, f.r10, f.r8) = (a[0], a[1], a[2], a[3], a[4]);
    }
    let cur = m.current;
    if m.domains[cur].state != DomState::Running {
        drop(guard);
        domain_stopped(cur);
    }
}

/// A guest exception: emulate the instruction if it is one a PV kernel may use, otherwise
/// stop the domain with the one-line report. Returns only when the guest may resume.
pub fn guest_exception(f: &mut GuestFrame) {
    let kind = match (f.vector, f.error) {
        (13, 0) => emulate::FaultKind::GeneralProtection,
        (6, _) => emulate::FaultKind::InvalidOpcode,
        _ => guest_fault(f, ""),
    };
    let mut bytes = [0u8; emulate::MAX_INSN];
    // Read as much of the instruction as is mapped (a fetch near the end of a mapping may
    // be short; the decoder refuses what it cannot see).
    let mut n = emulate::MAX_INSN;
    while n > 0 {
        let ok = GuestRange::new(f.rip, n as u64).is_ok()
            // SAFETY: a hypervisor buffer of n bytes; the guest range was checked; the
            // current page tables are the faulting guest's.
            && unsafe { trap::copy_with_fixup(bytes.as_mut_ptr(), f.rip as *const u8, n) }.is_ok();
        if ok {
            break;
        }
        n -= 1;
    }
    let Some(insn) = emulate::decode(&bytes[..n], kind) else { guest_fault(f, "") };
    let mut guard = MACHINE.lock();
    let m = guard.as_mut().expect("guest exception before boot finished");
    let cur = m.current;
    let mut env = MachineEmu { dom: &mut m.domains[cur] };
    let mut regs = FrameRegs(f);
    if emulate::execute(insn, &mut regs, &mut env).is_err() {
        drop(guard);
        guest_fault(f, "");
    }
}

/// `emulate::Regs` over a guest frame.
struct FrameRegs<'a>(&'a mut GuestFrame);

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
struct MachineEmu<'a> {
    dom: &'a mut Domain,
}

impl emulate::EmuEnv for MachineEmu<'_> {
    fn guest_cr3(&self) -> u64 {
        cpu::read_cr3()
    }
    fn guest_cr0(&self) -> u64 {
        cpu::read_cr0() & !(1 << 3) // TS is the guest's own business (fpu_taskswitch)
    }
    fn guest_cr2(&self) -> u64 {
        self.dom.cr2
    }
    fn guest_cr4(&self) -> u64 {
        // PAE, PGE, OSFXSR, OSXMMEXCPT, OSXSAVE: what a guest may assume is on.
        cpu::read_cr4() & ((1 << 5) | (1 << 7) | (1 << 9) | (1 << 10) | (1 << 18))
    }
    fn read_base(&self, msr: u32) -> u64 {
        match msr {
            emulate::MSR_FS_BASE => cpu::fs_base(),
            emulate::MSR_GS_BASE => cpu::guest_gs_base(),
            _ => self.dom.gs_base_user,
        }
    }
    fn write_base(&mut self, msr: u32, v: u64) {
        match msr {
            emulate::MSR_FS_BASE => cpu::set_fs_base(v),
            emulate::MSR_GS_BASE => cpu::set_guest_gs_base(v),
            _ => self.dom.gs_base_user = v,
        }
    }
    fn host_cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    }
}

/// Stops the current domain for a fault it took (or a state it cannot be resumed from).
pub fn guest_fault(f: &GuestFrame, why: &str) -> ! {
    let cur;
    {
        let mut guard = MACHINE.lock();
        let m = guard.as_mut().expect("guest fault before boot finished");
        cur = m.current;
        let d = &mut m.domains[cur];
        d.state = DomState::Crashed;
        if !why.is_empty() {
            crate::mkprintln!("d{} crashed: {} rip={:#x}", d.id, why, f.rip);
        } else if f.vector == 14 {
            crate::mkprintln!(
                "d{} crashed: vector {} {} rip={:#x} error={:#x} cr2={:#x}",
                d.id,
                f.vector,
                trap::vector_name(f.vector),
                f.rip,
                f.error,
                trap::cr2()
            );
        } else {
            crate::mkprintln!(
                "d{} crashed: vector {} {} rip={:#x} error={:#x}",
                d.id,
                f.vector,
                trap::vector_name(f.vector),
                f.rip,
                f.error
            );
        }
    }
    domain_stopped(cur)
}

/// A domain stopped running: report it and decide what the machine does next.
fn domain_stopped(idx: usize) -> ! {
    let guard = MACHINE.lock();
    let m = guard.as_ref().expect("domain stopped before boot finished");
    let d = &m.domains[idx];
    let (what, code) = match d.state {
        DomState::Shutdown(ShutdownReason::Poweroff) => ("poweroff", ExitCode::Poweroff),
        DomState::Shutdown(ShutdownReason::Reboot) => ("reboot", ExitCode::Reboot),
        DomState::Shutdown(ShutdownReason::Watchdog) => ("watchdog", ExitCode::Crash),
        DomState::Shutdown(_) => ("crash", ExitCode::Crash),
        DomState::Crashed => ("crash", ExitCode::Crash),
        DomState::Running => unreachable!("domain_stopped on a running domain"),
    };
    if let DomState::Shutdown(_) = d.state {
        crate::mkprintln!("d{} shutdown: {}", d.id, what);
    }
    let left = m.domains.iter().filter(|d| d.state == DomState::Running).count();
    if left == 0 {
        crate::mkprintln!("d{} stopped; no domains left to run; powering off ({})", d.id, what);
        exit(code)
    }
    // Several domains arrive with the domain builder in dom0; until then dom0 is the only one.
    crate::mkprintln!("d{} stopped; {} domains left but no scheduler yet; powering off", d.id, left);
    exit(code)
}
