//! Hypercall dispatch: one decoder for the number, then one plain function per operation
//! over kernel-owned state, each returning `Result<_, Errno>`.
//!
//! Handlers see the machine only through [`Platform`], so every path, including the
//! hostile ones, is exercised by host tests with a fake platform.
#![forbid(unsafe_code)]
// Every argument here comes from a guest: no panics on any value.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

mod console;
pub mod descriptor;
mod grant;
mod memory;
mod mm;
mod multicall;
pub mod physdev;
mod segment;
pub mod evtchn;
mod traps;
pub mod domctl;

pub use domctl::{DomainControl, DomainName};
pub use grant::GrantBatch;

pub use segment::SegmentBase;
pub mod sched;
mod sysctl;
pub mod vcpu;
pub mod version;

use crate::guest_access::GuestMemory;
use crate::mm::pt::Mm;
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::Hypercall;
use hypercall_abi::sched::ShutdownReason;
use hypercall_abi::sysctl::PhysInfo;

/// Who is calling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Domain id.
    pub domid: u16,
    /// Whether the domain holds the control privilege (dom0).
    pub privileged: bool,
}

/// Facts fixed when the microkernel was built.
#[derive(Clone, Copy, Debug)]
pub struct BuildFacts {
    /// Compiler that built the microkernel.
    pub compiler: &'static str,
    /// Commit the microkernel was built from.
    pub changeset: &'static str,
    /// Date of that commit.
    pub date: &'static str,
}

/// What hypercall handlers may ask of the machine and the rest of the microkernel.
/// The machine as a whole for the calling domain: who calls, the console, machine facts,
/// shutdown, the watchdog, the audit, the domain toolstack's operations, the time.
pub trait System: GuestMemory {
    /// The calling domain.
    fn caller(&self) -> Caller;
    /// Writes guest console output.
    fn console_write(&mut self, bytes: &[u8]);
    /// Takes pending console input (never blocks); returns how many bytes were copied.
    fn console_read(&mut self, buf: &mut [u8]) -> usize;
    /// Machine facts for `sysctl` physinfo.
    fn physinfo(&self) -> PhysInfo;
    /// Switches the bare syscall entry used by the benchmark on or off.
    #[cfg(feature = "bench")]
    fn set_bare_syscall(&mut self, on: bool);
    /// Switches the bare #BP gate (`int3` returns at once) used by the benchmark on or off.
    #[cfg(feature = "bench")]
    fn set_bare_exception(&mut self, on: bool);
    /// Marks the calling domain shut down; takes effect when the hypercall returns.
    fn shutdown(&mut self, reason: ShutdownReason);
    /// The microkernel's command line.
    fn command_line(&self) -> &[u8];
    /// Build facts.
    fn build_facts(&self) -> BuildFacts;
    /// Runs an in-kernel benchmark baseline (`BENCH_DIRECT_*`) of size `arg`; returns cycles.
    #[cfg(feature = "bench")]
    fn bench_baseline(&mut self, op: u32, arg: u64) -> Result<u64, Errno>;
    /// The calling domain's frame accounting.
    fn memstats(&mut self) -> Result<hypercall_abi::sysctl::MemStats, Errno>;
    /// `SCHEDOP_watchdog` for the calling domain ([`crate::watchdog::Watchdogs::op`]).
    fn watchdog(&mut self, id: u32, timeout: u32) -> Result<i64, Errno>;
    /// The machine's audit of its own accounting (`SYSCTL_AUDIT`).
    fn audit(&mut self) -> Result<hypercall_abi::sysctl::AuditResult, Errno>;
    /// The domain control operations (called only for privileged callers).
    fn domain_control(&mut self) -> &mut dyn DomainControl;
    /// System time now, in ns.
    fn now_ns(&self) -> u64;
}

/// Direct paging: the memory-management view of a domain, and how long a batch may hold the
/// CPU.
pub trait Memory {
    /// Calls `f` once with the memory-management view of the calling domain: the frame
    /// table, the domain's [`crate::mm::page_info::DomainMm`] and the machine's
    /// [`crate::mm::pt::MmMachine`]. `f` must not be called more than once per call.
    fn with_mm(&mut self, f: &mut dyn FnMut(Mm<'_, '_>)) -> Result<(), Errno>;
    /// As [`Memory::with_mm`], with the view of domain `domid` (its
    /// [`crate::mm::page_info::DomainMm`]) instead of the caller's: for a privileged
    /// caller's operations on a domain it builds (`memory_op` with that `domid`), and to
    /// look at a page owner before mapping its frames (whether it is privileged). `ESRCH`
    /// unless `domid` exists and is not dying; it may be the caller itself. Handlers call
    /// it only for a privileged caller.
    /// The machine's side, for this and for [`Memory::with_mm`]: after `f` returns, pop
    /// every [`crate::mm::page_info::FrameTable::pop_foreign_release`] and charge it to its
    /// owner ([`crate::mm::page_info::DomainMm::charge_foreign_release`]); a dying owner
    /// whose [`crate::mm::page_info::DomainMm::frames_owned`] is then zero is gone (its id
    /// free).
    fn with_mm_of(&mut self, domid: u16, f: &mut dyn FnMut(Mm<'_, '_>)) -> Result<(), Errno>;
    /// Most entries a preemptible batch (`pt_update`, `mmuext_op`, reservation
    /// `memory_op`s) handles in one entry before it continues itself ([`Then::Again`]).
    fn preempt_chunk(&self) -> u32;
    /// Whether the hypercall has held the CPU long enough that it should stop at the next
    /// point where it can continue itself (Xen's `hypercall_preempt_check`).
    fn preempt_check(&self) -> bool;
    /// `shared_info.arch.max_pfn` of the caller (`None`) or of domain `target`
    /// (`XENMEM_maximum_gpfn`).
    fn shared_max_pfn(&mut self, target: Option<u16>) -> Result<u64, Errno>;
    /// The first machine frame of the M2P table's 2 MiB extent `i`, if it has one.
    fn m2p_extent(&self, i: u64) -> Option<u64>;
}

/// Grant tables: the caller's table and its mappings and copies of others' grants.
pub trait Grants {
    /// `GNTTABOP_setup_table` for domain `domid` (resolved and allowed): grows its grant
    /// table to at least `nr_frames` frames (shared with it writable) and returns them all.
    fn grant_setup_table(&mut self, domid: u16, nr_frames: u32) -> Result<alloc::vec::Vec<u64>, i16>;
    /// `GNTTABOP_query_size` for domain `domid` (resolved and allowed): frames now, most.
    fn grant_query_size(&mut self, domid: u16) -> Result<(u32, u32), i16>;
    /// One `GNTTABOP_map_grant_ref` for the caller: returns the handle and the frame's
    /// machine address. `batch` is the state kept across one chunk of operations.
    fn grant_map(&mut self, req: grant_tables::MapRequest, batch: &mut GrantBatch) -> Result<(u32, u64), i16>;
    /// One `GNTTABOP_unmap_grant_ref` for the caller.
    fn grant_unmap(&mut self, host_addr: u64, dev_bus_addr: u64, handle: u32, batch: &mut GrantBatch) -> Result<(), i16>;
    /// Flushes the caller's TLB after a batch of grant unmaps (which do not flush one by
    /// one): the translations of `vas` only, or all of them for `None`.
    fn grant_flush_tlb(&mut self, vas: Option<&[u64]>);
    /// `GNTTABOP_unmap_and_replace` of the caller's `handle` (a host half at `host_addr`,
    /// replaced by the entry at `new_addr`, or removed for 0).
    fn grant_unmap_and_replace(&mut self, host_addr: u64, new_addr: u64, handle: u32, batch: &mut GrantBatch) -> Result<(), i16>;
    /// `GNTTABOP_set_version` for the caller: the version now in use, or Xen's errno.
    fn grant_set_version(&mut self, version: u32) -> Result<u32, Errno>;
    /// The grant-table version of domain `domid` (1 if it has no table).
    fn grant_version(&mut self, domid: u16) -> u32;
    /// `GNTTABOP_get_status_frames`: the first `n` status frames of domain `domid`.
    fn grant_status_frames(&mut self, domid: u16, n: u32) -> Result<alloc::vec::Vec<u64>, i16>;
    /// One `GNTTABOP_copy` for the caller; the sides it claims may stay held in `batch`.
    fn grant_copy(&mut self, op: &hypercall_abi::grant_table::GnttabCopy, batch: &mut GrantBatch) -> Result<(), i16>;
    /// Ends a chunk of grant operations: gives back whatever `batch` holds. Called after
    /// every chunk, whatever its operations' outcomes, before statuses are written back.
    fn grant_batch_end(&mut self, batch: &mut GrantBatch);
}

/// Event channels, timers, and waiting for either.
pub trait Waiting {
    /// `event_channel_op(cmd, arg)` for the caller (the machine runs the event engine).
    fn event_channel_op(&mut self, cmd: u32, arg: u64) -> Result<i64, Errno>;
    /// Arms (or with 0 cancels) the calling vCPU's one-shot timer at system time `deadline_ns`.
    fn set_timer(&mut self, deadline_ns: u64);
    /// Blocks the calling vCPU until an event is pending (unmasking its events): whether it
    /// sleeps (none was pending).
    fn block(&mut self) -> bool;
    /// `SCHEDOP_poll` for the calling vCPU over `ports` (already copied in, at most
    /// [`sched::MAX_POLL_PORTS`]): `-EINVAL` if one is out of the caller's range; returns at
    /// once if one is pending; otherwise blocks until one becomes pending, an upcall is
    /// pending, or system time reaches `deadline_ns` (0: no timeout). The upcall mask is
    /// left as it is. Whether it sleeps.
    fn poll(&mut self, ports: &[u32], deadline_ns: u64) -> Result<bool, Errno>;
    /// Sets (or with 0 stops) the calling vCPU's periodic timer.
    fn set_periodic_timer(&mut self, period_ns: u64);
}

/// The calling domain's vCPUs: their states, bring-up, runstate and vcpu_info.
pub trait Vcpus {
    /// The runstate of the caller's vCPU `vcpu` (an existing one) now.
    fn runstate(&mut self, vcpu: u32) -> Result<hypercall_abi::vcpu::VcpuRunstateInfo, Errno>;
    /// `VCPUOP_register_vcpu_info`: vCPU `vcpu`'s `vcpu_info` moves to `offset` (checked:
    /// inside the page, aligned) in frame `mfn` of the caller, for good (Xen's
    /// `map_vcpu_info`: `EINVAL` if already moved, if the vCPU is another one that is up,
    /// or if the frame is not the caller's or cannot be writable).
    fn register_vcpu_info(&mut self, vcpu: u32, mfn: u64, offset: u32) -> Result<(), Errno>;
    /// Registers (0: unregisters) the guest virtual address where vCPU `vcpu`'s runstate is
    /// written at every change.
    fn register_runstate_area(&mut self, vcpu: u32, addr: u64) -> Result<(), Errno>;
    /// The calling vCPU's number and how many vCPUs its domain has.
    fn vcpu_ids(&self) -> (u32, u32);
    /// Whether vCPU `v` of the caller's domain is up (has a state and is not down).
    fn vcpu_is_up(&self, v: u32) -> bool;
    /// `VCPUOP_initialise`: gives vCPU `v` of the caller's domain its initial state
    /// (`EEXIST` if it has one; it stays down until `VCPUOP_up`).
    fn initialise_vcpu(&mut self, v: u32, ctxt: &hypercall_abi::arch::VcpuGuestContext) -> Result<(), Errno>;
    /// `VCPUOP_up`: vCPU `v` may run (`EINVAL` if it has no state).
    fn vcpu_up(&mut self, v: u32) -> Result<(), Errno>;
    /// `VCPUOP_down`: vCPU `v` stops running (`EINVAL` for the domain's last one up);
    /// whether that was the caller itself (it gives up the CPU).
    fn vcpu_down(&mut self, v: u32) -> Result<bool, Errno>;
}

/// The calling vCPU's virtual CPU state: traps and callbacks, stacks, segments and
/// descriptor tables, debug registers, the FPU, I/O privilege.
pub trait GuestCpu {
    /// `set_trap_table` on the calling vCPU's trap table (entries read from `table`).
    fn set_trap_table(&mut self, table: u64) -> Result<crate::traps::SetTrapTable, crate::traps::TrapTableError>;
    /// `callback_op(cmd, arg)` for the calling vCPU.
    fn callback_op(&mut self, cmd: u32, arg: u64) -> Result<i64, Errno>;
    /// `nmi_op(cmd, arg)` for the calling vCPU.
    fn nmi_op(&mut self, cmd: u32, arg: u64) -> Result<i64, Errno>;
    /// `set_callbacks(event, failsafe, syscall)` for the calling vCPU.
    fn set_callbacks(&mut self, event: u64, failsafe: u64, syscall: u64) -> Result<i64, Errno>;
    /// Sets (`true`) or clears the calling vCPU's virtual CR0.TS.
    fn fpu_taskswitch(&mut self, set: bool);
    /// Records the guest kernel's stack pointer for events arriving in guest user mode.
    fn set_kernel_stack(&mut self, sp: u64) -> Result<(), Errno>;
    /// The caller's stack pointer at the hypercall (where `iret` finds its frame).
    fn caller_rsp(&self) -> u64;
    /// Whether the caller registered a user page table (`MMUEXT_NEW_USER_BASEPTR`): `iret`
    /// to user mode needs one.
    fn has_user_page_table(&self) -> bool;
    /// Sets one of the calling vCPU's segment bases (value checked canonical).
    fn set_segment_base(&mut self, which: SegmentBase, value: u64) -> Result<(), Errno>;
    /// Installs `frames` as the calling vCPU's GDT of `entries` entries (`set_gdt`): the
    /// frames must take the descriptor type (`Mm::set_gdt_frames`), else `EINVAL`.
    fn set_gdt(&mut self, frames: &[u64], entries: u32) -> Result<(), Errno>;
    /// `MMUEXT_SET_LDT` for the calling vCPU (arguments checked: `base` page aligned and a
    /// guest address, at most 8192 entries; 0 entries: no LDT).
    fn set_ldt(&mut self, base: u64, ents: u32) -> Result<(), Errno>;
    /// A descriptor in frame `mfn` was written (`update_descriptor`): a GDT using it
    /// sees the new value.
    fn descriptor_written(&mut self, mfn: u64);
    /// `set_debugreg(reg, value)` for the calling vCPU ([`crate::traps::DebugRegs::set`]),
    /// loaded into the hardware at once when it is the running one.
    fn set_debugreg(&mut self, reg: u32, value: u64) -> Result<(), Errno>;
    /// `get_debugreg(reg)` of the calling vCPU ([`crate::traps::DebugRegs::get`]).
    fn get_debugreg(&mut self, reg: u32) -> Result<u64, Errno>;
    /// Sets the calling vCPU's virtual IOPL or I/O bitmap (values checked).
    fn set_io_access(&mut self, access: physdev::IoAccess) -> Result<(), Errno>;
}

/// Physical interrupt lines (the control domain's devices).
pub trait Irqs {
    /// The physical-IRQ commands of `physdev_op` (the machine runs
    /// [`physdev::pirq_op`] on its event engine and carries out the line changes).
    fn physdev_pirq_op(&mut self, cmd: u32, arg: u64) -> Result<i64, Errno>;
}

/// Everything the hypercall handlers need from the machine, in the small traits above:
/// a type with all of them is a `Platform`.
pub trait Platform: GuestMemory + System + Memory + Grants + Waiting + Vcpus + GuestCpu + Irqs {}

impl<T: GuestMemory + System + Memory + Grants + Waiting + Vcpus + GuestCpu + Irqs> Platform for T {}

/// The hypercalls [`run`] carries out (every other number is `ENOSYS`), in number
/// order; docs/porting.md's table of §5 lists exactly these (a test checks it).
pub const DISPATCHED: [Hypercall; 32] = [
    Hypercall::SetTrapTable,
    Hypercall::PtUpdate,
    Hypercall::SetGdt,
    Hypercall::StackSwitch,
    Hypercall::SetCallbacks,
    Hypercall::FpuTaskswitch,
    Hypercall::SchedOpCompat,
    Hypercall::SetDebugreg,
    Hypercall::GetDebugreg,
    Hypercall::UpdateDescriptor,
    Hypercall::MemoryOp,
    Hypercall::Multicall,
    Hypercall::UpdateVaMapping,
    Hypercall::SetTimerOp,
    Hypercall::EventChannelOpCompat,
    Hypercall::XenVersion,
    Hypercall::ConsoleIo,
    Hypercall::PhysdevOpCompat,
    Hypercall::GrantTableOp,
    Hypercall::VmAssist,
    Hypercall::UpdateVaMappingOtherdomain,
    Hypercall::Iret,
    Hypercall::VcpuOp,
    Hypercall::SetSegmentBase,
    Hypercall::MmuextOp,
    Hypercall::NmiOp,
    Hypercall::SchedOp,
    Hypercall::CallbackOp,
    Hypercall::EventChannelOp,
    Hypercall::PhysdevOp,
    Hypercall::Sysctl,
    Hypercall::Domctl,
];

/// What follows a hypercall, as its handler returns it: the value for the guest's `rax`,
/// whether the caller gives up the CPU, and how the guest goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The value for `rax`.
    pub ret: i64,
    /// The caller gives up the CPU (Xen's scheduler softirq): it yielded, it blocked or
    /// polls with nothing pending, or it went down.
    pub reschedule: bool,
    /// How the guest goes on.
    pub then: Then,
}

/// How the guest goes on after a hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// After its `syscall`.
    Return,
    /// Xen's `hypercall_create_continuation`: the same `syscall` again, hypercall `nr`
    /// with `args` (the rest of the work; `ret` is `nr`).
    Again {
        /// The hypercall.
        nr: u64,
        /// Its arguments from here on.
        args: [u64; 5],
    },
    /// `iret`: to the decoded state, or (a refused frame) the caller crashes, as Xen's
    /// `do_iret`.
    Iret(Result<crate::traps::IretReturn, crate::traps::IretError>),
}

impl Outcome {
    /// `ret`, and back to the caller.
    pub fn value(ret: i64) -> Outcome {
        Outcome { ret, reschedule: false, then: Then::Return }
    }

    /// `ret`, and the caller gives up the CPU if `reschedule`.
    pub fn rescheduling(ret: i64, reschedule: bool) -> Outcome {
        Outcome { ret, reschedule, then: Then::Return }
    }

    /// The rest of the work in a continuation: hypercall `nr` again with `args`.
    pub fn again(nr: Hypercall, args: [u64; 5]) -> Outcome {
        Outcome { ret: nr as i64, reschedule: false, then: Then::Again { nr: nr as u64, args } }
    }
}

/// A handler's result: what follows, or the errno for `rax`.
pub type Handled = Result<Outcome, Errno>;

/// Tests: runs one hypercall on the fake platform, which records what follows it (a
/// reschedule in `yields`, a continuation in `continuations`); the value for `rax`.
#[cfg(test)]
pub fn dispatch(p: &mut fake::FakePlatform, nr: u64, args: [u64; 5]) -> i64 {
    let o = run(p, nr, args);
    p.yields += u32::from(o.reschedule);
    if let Then::Again { nr, args } = o.then {
        p.continuations.push((nr, args));
    }
    o.ret
}

/// Decodes and runs one hypercall; what follows it.
pub fn run(p: &mut impl Platform, nr: u64, args: [u64; 5]) -> Outcome {
    let v = Outcome::value;
    let r: Handled = match Hypercall::try_from(nr) {
        Ok(Hypercall::PtUpdate) => mm::pt_update(p, args),
        Ok(Hypercall::MmuextOp) => mm::mmuext_op(p, args),
        Ok(Hypercall::UpdateVaMapping) => mm::update_va_mapping(p, args[0], args[1], args[2]).map(v),
        Ok(Hypercall::UpdateVaMappingOtherdomain) => mm::update_va_mapping_otherdomain(p, args[0], args[1], args[2], args[3]).map(v),
        Ok(Hypercall::VmAssist) => mm::vm_assist(p, args[0] as u32, args[1] as u32).map(v),
        Ok(Hypercall::MemoryOp) => memory::memory_op(p, args),
        Ok(Hypercall::Multicall) => multicall::multicall(p, args[0], args[1]),
        Ok(Hypercall::ConsoleIo) => console::console_io(p, args[0] as u32, args[1] as u32, args[2]),
        Ok(Hypercall::XenVersion) => version::xen_version(p, args[0] as u32, args[1]).map(v),
        Ok(Hypercall::SchedOp) => sched::sched_op(p, args[0] as u32, args[1]),
        Ok(Hypercall::Domctl) => domctl::domctl(p, args[0]).map(v),
        Ok(Hypercall::SetTrapTable) => traps::set_trap_table(p, args[0]),
        Ok(Hypercall::StackSwitch) => traps::stack_switch(p, args[0], args[1]).map(v),
        Ok(Hypercall::SetTimerOp) => {
            p.set_timer(args[0]);
            Ok(v(0))
        }
        Ok(Hypercall::EventChannelOp) => p.event_channel_op(args[0] as u32, args[1]).map(v),
        Ok(Hypercall::CallbackOp) => p.callback_op(args[0] as u32, args[1]).map(v),
        Ok(Hypercall::NmiOp) => p.nmi_op(args[0] as u32, args[1]).map(v),
        Ok(Hypercall::SchedOpCompat) => sched::sched_op_compat(p, args[0] as u32, args[1]),
        Ok(Hypercall::EventChannelOpCompat) => evtchn_op_compat(p, args[0]).map(v),
        Ok(Hypercall::SetCallbacks) => p.set_callbacks(args[0], args[1], args[2]).map(v),
        Ok(Hypercall::FpuTaskswitch) => {
            p.fpu_taskswitch(args[0] as u32 != 0);
            Ok(v(0))
        }
        Ok(Hypercall::SetDebugreg) => p.set_debugreg(args[0] as u32, args[1]).map(|()| v(0)),
        // The register's value is the result (a DR0..3 in the upper half reads as negative,
        // as from Xen).
        Ok(Hypercall::GetDebugreg) => p.get_debugreg(args[0] as u32).map(|reg| v(reg as i64)),
        Ok(Hypercall::Iret) => traps::iret(p),
        Ok(Hypercall::SetSegmentBase) => segment::set_segment_base(p, args[0] as u32, args[1]).map(v),
        Ok(Hypercall::GrantTableOp) => grant::grant_table_op(p, args),
        Ok(Hypercall::Sysctl) => sysctl::sysctl(p, args[0]).map(v),
        Ok(Hypercall::VcpuOp) => vcpu::vcpu_op(p, args[0] as u32, args[1] as u32, args[2]),
        Ok(Hypercall::SetGdt) => descriptor::set_gdt(p, args[0], args[1]).map(v),
        Ok(Hypercall::UpdateDescriptor) => descriptor::update_descriptor(p, args[0], args[1]).map(v),
        Ok(Hypercall::PhysdevOp) => physdev::physdev_op(p, args[0] as u32, args[1]).map(v),
        Ok(Hypercall::PhysdevOpCompat) => physdev::physdev_op_compat(p, args[0]).map(v),
        _ => Err(Errno::ENOSYS),
    };
    match r {
        Ok(o) => o,
        // Xen's `-ERESTART`: the handler could not finish now and changed nothing that a
        // second try would do twice; the guest makes the same call again (a continuation
        // with the same arguments), and never sees the value.
        Err(Errno::ERESTART) => Outcome { ret: 0, reschedule: false, then: Then::Again { nr, args } },
        Err(e) => Outcome::value(e.to_ret()),
    }
}

/// `event_channel_op_compat(uop)`, the pre-3.0.2 form, as Xen's
/// `do_event_channel_op_compat`: `uop` is `struct evtchn_op { u32 cmd; union u; }` with the
/// union at offset 4 (its members are 4-byte aligned); the ten original commands (0..=9)
/// run as `event_channel_op(cmd, uop + 4)`, anything else is `ENOSYS`.
fn evtchn_op_compat(p: &mut impl Platform, uop: u64) -> Result<i64, Errno> {
    let cmd: u32 = crate::guest_access::read_guest(p, uop)?;
    if cmd > 9 {
        return Err(Errno::ENOSYS);
    }
    p.event_channel_op(cmd, uop.wrapping_add(4))
}

#[cfg(test)]
pub(crate) mod fake {
    //! A fake platform over a flat buffer of "guest memory" at a fixed address.
    extern crate std;
    use super::*;
    use crate::guest_access::GuestRange;
    use std::vec::Vec;

    pub const BASE: u64 = 0x10_0000;

    pub struct FakePlatform {
        pub mem: Vec<u8>,
        pub caller: Caller,
        pub out: Vec<u8>,
        pub input: Vec<u8>,
        pub shutdown: Option<ShutdownReason>,
        pub bare: bool,
        pub bare_exception: bool,
        /// Hypercalls (through [`super::dispatch`]) after which the caller gave up the CPU.
        pub yields: u32,
        /// Direct paging state (none: memory hypercalls get `ENOSYS`).
        pub mm: Option<crate::mm::fake::Env>,
        /// What `preempt_chunk` answers.
        pub chunk: u32,
        /// Continuations the hypercalls run through [`super::dispatch`] ended with, in order.
        pub continuations: Vec<(u64, [u64; 5])>,
        /// `preempt_check` says yes from its `n`-th call on (counting from 0); `None`: never.
        pub preempt_after: Option<u32>,
        /// How many times `preempt_check` was asked.
        pub preempt_checks: core::cell::Cell<u32>,
        /// The caller's watchdogs.
        pub watchdogs: crate::watchdog::Watchdogs,
        /// The caller's grant-table version.
        pub grant_version: u32,
        /// `event_channel_op` calls made: (cmd, arg).
        pub evtchn_calls: Vec<(u32, u64)>,
        /// The caller's runstate area, as registered.
        pub runstate_area: Option<(u32, u64)>,
        /// Segment bases set, in order.
        pub segment_bases: Vec<(SegmentBase, u64)>,
        /// Domain control operations carried out, as text.
        pub domctl_calls: Vec<std::string::String>,
        /// The scheduler the fake says runs.
        pub sched_policy: crate::sched::Policy,
        /// Timer settings made, in order: `("oneshot" | "periodic", value)`.
        pub timers: Vec<(&'static str, u64)>,
        /// Polls made: ports and deadline.
        pub polls: Vec<(Vec<u32>, u64)>,
        /// Ports the fake event engine has (`poll` refuses ports at or past this).
        pub ports: u32,
        /// System time.
        pub now: u64,
        /// Each vCPU's bring-up state (two: vCPU 0 up).
        pub bringup: Vec<super::vcpu::Bringup>,
        /// `VCPUOP_initialise` calls: (vCPU, its `rip`).
        pub initialised: Vec<(u32, u64)>,
        /// Grant copies done and not yet given back by `grant_batch_end`.
        pub grant_held: u32,
        /// At each `grant_batch_end`: how many copies it gave back.
        pub grant_batch_ends: Vec<u32>,
        /// Whether grant unmaps succeed (else `GNTST_bad_handle`).
        pub grant_unmap_ok: bool,
        /// TLB flushes after grant unmaps: the addresses, `None` for everything.
        pub grant_flushes: Vec<Option<Vec<u64>>>,
        /// I/O access changes (`physdev_op`), in order.
        pub io_access: Vec<physdev::IoAccess>,
        /// GDTs installed: frames and entries.
        pub gdts: Vec<(Vec<u64>, u32)>,
        /// vcpu_info registrations: vCPU, frame, offset.
        pub vcpu_infos: Vec<(u32, u64, u32)>,
        /// LDTs set: base and entries.
        pub ldts: Vec<(u64, u32)>,
    }

    impl FakePlatform {
        pub fn new(privileged: bool) -> Self {
            FakePlatform {
                mem: std::vec![0; 0x4000],
                caller: Caller { domid: if privileged { 0 } else { 1 }, privileged },
                out: Vec::new(),
                input: Vec::new(),
                shutdown: None,
                bare: false,
                bare_exception: false,
                yields: 0,
                mm: None,
                chunk: u32::MAX,
                continuations: Vec::new(),
                preempt_after: None,
                preempt_checks: core::cell::Cell::new(0),
                watchdogs: crate::watchdog::Watchdogs::default(),
                grant_version: 1,
                evtchn_calls: Vec::new(),
                runstate_area: None,
                segment_bases: Vec::new(),
                domctl_calls: Vec::new(),
                sched_policy: crate::sched::Policy::Credit,
                timers: Vec::new(),
                polls: Vec::new(),
                ports: 4096,
                now: 1_000_000_000,
                bringup: std::vec![super::vcpu::Bringup::Up, super::vcpu::Bringup::Uninitialised],
                initialised: Vec::new(),
                grant_held: 0,
                grant_batch_ends: Vec::new(),
                grant_unmap_ok: false,
                grant_flushes: Vec::new(),
                io_access: Vec::new(),
                gdts: Vec::new(),
                vcpu_infos: Vec::new(),
                ldts: Vec::new(),
            }
        }

        /// A platform whose caller has direct-paging state (a fake machine, no frames yet,
        /// room for `max_pages`) and `len` bytes of guest memory at [`BASE`].
        pub fn new_with_mm(privileged: bool, max_pages: u64, len: usize) -> Self {
            let mut p = FakePlatform::new(privileged);
            p.mem = std::vec![0; len];
            p.mm = Some(crate::mm::fake::Env::new(privileged, max_pages));
            p
        }

        /// The direct-paging state.
        pub fn env(&mut self) -> &mut crate::mm::fake::Env {
            self.mm.as_mut().expect("platform without mm")
        }

        fn span(&self, r: GuestRange) -> Result<core::ops::Range<usize>, Errno> {
            let off = r.addr().checked_sub(BASE).ok_or(Errno::EFAULT)? as usize;
            let end = off.checked_add(r.len() as usize).ok_or(Errno::EFAULT)?;
            if end > self.mem.len() {
                return Err(Errno::EFAULT);
            }
            Ok(off..end)
        }
    }

    impl GuestMemory for FakePlatform {
        fn copy_from_guest(&mut self, src: GuestRange, buf: &mut [u8]) -> Result<(), Errno> {
            let s = self.span(src)?;
            buf.copy_from_slice(&self.mem[s]);
            Ok(())
        }
        fn copy_to_guest(&mut self, dst: GuestRange, buf: &[u8]) -> Result<(), Errno> {
            let s = self.span(dst)?;
            self.mem[s].copy_from_slice(buf);
            Ok(())
        }
    }

    impl System for FakePlatform {
        fn caller(&self) -> Caller {
            self.caller
        }
        fn console_write(&mut self, bytes: &[u8]) {
            self.out.extend_from_slice(bytes);
        }
        fn console_read(&mut self, buf: &mut [u8]) -> usize {
            let n = buf.len().min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input.drain(..n);
            n
        }
        fn physinfo(&self) -> PhysInfo {
            PhysInfo {
                nr_cpus: 1,
                cpu_khz: 2_000_000,
                total_pages: 65536,
                free_pages: 1000,
                max_mfn: 65536,
                uptime_ns: 5,
                nr_domains: 1,
                _pad: 0,
            }
        }
        #[cfg(feature = "bench")]
        fn set_bare_syscall(&mut self, on: bool) {
            self.bare = on;
        }
        #[cfg(feature = "bench")]
        fn set_bare_exception(&mut self, on: bool) {
            self.bare_exception = on;
        }
        fn shutdown(&mut self, reason: ShutdownReason) {
            self.shutdown = Some(reason);
        }
        fn command_line(&self) -> &[u8] {
            b"dom0_mem=64M"
        }
        fn build_facts(&self) -> BuildFacts {
            BuildFacts { compiler: "rustc test", changeset: "abc123", date: "today" }
        }
        fn watchdog(&mut self, id: u32, timeout: u32) -> Result<i64, Errno> {
            self.watchdogs.op(id, timeout, self.now)
        }
        fn domain_control(&mut self) -> &mut dyn DomainControl {
            self
        }
        fn now_ns(&self) -> u64 {
            self.now
        }
        #[cfg(feature = "bench")]
        fn bench_baseline(&mut self, _op: u32, _arg: u64) -> Result<u64, Errno> {
            Err(Errno::ENOSYS)
        }
        fn memstats(&mut self) -> Result<hypercall_abi::sysctl::MemStats, Errno> {
            Err(Errno::ENOSYS)
        }
        fn audit(&mut self) -> Result<hypercall_abi::sysctl::AuditResult, Errno> {
            Err(Errno::ENOSYS)
        }
    }

    impl Memory for FakePlatform {
        fn with_mm(&mut self, f: &mut dyn FnMut(Mm<'_, '_>)) -> Result<(), Errno> {
            let env = self.mm.as_mut().ok_or(Errno::ENOSYS)?;
            f(env.mm());
            env.settle();
            Ok(())
        }
        fn with_mm_of(&mut self, domid: u16, f: &mut dyn FnMut(Mm<'_, '_>)) -> Result<(), Errno> {
            let env = self.mm.as_mut().ok_or(Errno::ESRCH)?;
            if !env.is_live(domid) {
                return Err(Errno::ESRCH);
            }
            f(env.mm_of(domid));
            env.settle();
            Ok(())
        }
        fn preempt_chunk(&self) -> u32 {
            self.chunk
        }

        fn preempt_check(&self) -> bool {
            let n = self.preempt_checks.get();
            self.preempt_checks.set(n + 1);
            self.preempt_after.is_some_and(|after| n >= after)
        }
        fn shared_max_pfn(&mut self, _target: Option<u16>) -> Result<u64, Errno> {
            Err(Errno::ENOSYS)
        }
        fn m2p_extent(&self, _i: u64) -> Option<u64> {
            None
        }
    }

    impl Grants for FakePlatform {
        fn grant_unmap(&mut self, _host_addr: u64, _dev_bus_addr: u64, _handle: u32, _batch: &mut GrantBatch) -> Result<(), i16> {
            if self.grant_unmap_ok { Ok(()) } else { Err(hypercall_abi::grant_table::GNTST_BAD_HANDLE) }
        }
        fn grant_flush_tlb(&mut self, vas: Option<&[u64]>) {
            self.grant_flushes.push(vas.map(<[u64]>::to_vec));
        }
        fn grant_set_version(&mut self, version: u32) -> Result<u32, Errno> {
            if version != 1 && version != 2 {
                return Err(Errno::EINVAL);
            }
            self.grant_version = version;
            Ok(version)
        }
        fn grant_version(&mut self, _domid: u16) -> u32 {
            self.grant_version
        }
        fn grant_status_frames(&mut self, _domid: u16, n: u32) -> Result<Vec<u64>, i16> {
            if self.grant_version == 2 && n <= 1 {
                Ok(alloc::vec![0x9000; n as usize])
            } else {
                Err(hypercall_abi::grant_table::GNTST_GENERAL_ERROR)
            }
        }
        fn grant_copy(&mut self, op: &hypercall_abi::grant_table::GnttabCopy, _batch: &mut GrantBatch) -> Result<(), i16> {
            // Offset 1 fails, to show a failed copy still ends its chunk.
            if op.source.offset == 1 {
                return Err(hypercall_abi::grant_table::GNTST_BAD_COPY_ARG);
            }
            self.grant_held += 1;
            Ok(())
        }
        fn grant_batch_end(&mut self, _batch: &mut GrantBatch) {
            self.grant_batch_ends.push(core::mem::take(&mut self.grant_held));
        }
        fn grant_setup_table(&mut self, _domid: u16, _nr_frames: u32) -> Result<alloc::vec::Vec<u64>, i16> {
            Err(hypercall_abi::grant_table::GNTST_GENERAL_ERROR)
        }
        fn grant_query_size(&mut self, _domid: u16) -> Result<(u32, u32), i16> {
            Ok((1, grant_tables::DEFAULT_MAX_GRANT_FRAMES))
        }
        fn grant_map(&mut self, _req: grant_tables::MapRequest, _batch: &mut GrantBatch) -> Result<(u32, u64), i16> {
            Err(hypercall_abi::grant_table::GNTST_GENERAL_ERROR)
        }
        fn grant_unmap_and_replace(&mut self, _host_addr: u64, _new_addr: u64, _handle: u32, _batch: &mut GrantBatch) -> Result<(), i16> {
            Err(hypercall_abi::grant_table::GNTST_GENERAL_ERROR)
        }
    }

    impl Waiting for FakePlatform {

        fn event_channel_op(&mut self, cmd: u32, arg: u64) -> Result<i64, Errno> {
            self.evtchn_calls.push((cmd, arg));
            Ok(0)
        }
        fn set_timer(&mut self, deadline_ns: u64) {
            self.timers.push(("oneshot", deadline_ns));
        }
        fn set_periodic_timer(&mut self, period_ns: u64) {
            self.timers.push(("periodic", period_ns));
        }
        fn poll(&mut self, ports: &[u32], deadline_ns: u64) -> Result<bool, Errno> {
            if ports.iter().any(|&p| p >= self.ports) {
                return Err(Errno::EINVAL);
            }
            self.polls.push((ports.to_vec(), deadline_ns));
            Ok(false)
        }
        fn block(&mut self) -> bool {
            false
        }
    }

    impl Vcpus for FakePlatform {

        fn runstate(&mut self, _vcpu: u32) -> Result<hypercall_abi::vcpu::VcpuRunstateInfo, Errno> {
            Ok(hypercall_abi::vcpu::VcpuRunstateInfo { state: 0, _pad: 0, state_entry_time: self.now, time: [7, 8, 9, 10] })
        }

        fn register_runstate_area(&mut self, vcpu: u32, addr: u64) -> Result<(), Errno> {
            self.runstate_area = Some((vcpu, addr));
            Ok(())
        }

        fn register_vcpu_info(&mut self, vcpu: u32, mfn: u64, offset: u32) -> Result<(), Errno> {
            self.vcpu_infos.push((vcpu, mfn, offset));
            Ok(())
        }
        fn vcpu_ids(&self) -> (u32, u32) {
            (0, 2)
        }
        fn vcpu_is_up(&self, v: u32) -> bool {
            self.bringup.get(v as usize) == Some(&super::vcpu::Bringup::Up)
        }
        fn initialise_vcpu(&mut self, v: u32, ctxt: &hypercall_abi::arch::VcpuGuestContext) -> Result<(), Errno> {
            super::vcpu::check_initialise(&self.bringup, v as usize)?;
            self.bringup[v as usize] = super::vcpu::Bringup::Down;
            self.initialised.push((v, ctxt.user_regs.rip));
            Ok(())
        }
        fn vcpu_up(&mut self, v: u32) -> Result<(), Errno> {
            super::vcpu::check_up(&self.bringup, v as usize)?;
            self.bringup[v as usize] = super::vcpu::Bringup::Up;
            Ok(())
        }
        fn vcpu_down(&mut self, v: u32) -> Result<bool, Errno> {
            super::vcpu::check_down(&self.bringup, v as usize)?;
            self.bringup[v as usize] = super::vcpu::Bringup::Down;
            Ok(false)
        }
    }

    impl GuestCpu for FakePlatform {
        fn set_segment_base(&mut self, which: SegmentBase, value: u64) -> Result<(), Errno> {
            self.segment_bases.push((which, value));
            Ok(())
        }
        fn set_io_access(&mut self, access: physdev::IoAccess) -> Result<(), Errno> {
            self.io_access.push(access);
            Ok(())
        }
        fn set_gdt(&mut self, frames: &[u64], entries: u32) -> Result<(), Errno> {
            self.gdts.push((frames.to_vec(), entries));
            Ok(())
        }
        fn set_ldt(&mut self, base: u64, ents: u32) -> Result<(), Errno> {
            self.ldts.push((base, ents));
            Ok(())
        }
        fn set_trap_table(&mut self, _table: u64) -> Result<crate::traps::SetTrapTable, crate::traps::TrapTableError> {
            Err(crate::traps::TrapTableError { installed: 0, errno: Errno::ENOSYS })
        }
        fn callback_op(&mut self, _cmd: u32, _arg: u64) -> Result<i64, Errno> {
            Err(Errno::ENOSYS)
        }
        fn nmi_op(&mut self, _cmd: u32, _arg: u64) -> Result<i64, Errno> {
            Err(Errno::ENOSYS)
        }
        fn set_callbacks(&mut self, _event: u64, _failsafe: u64, _syscall: u64) -> Result<i64, Errno> {
            Err(Errno::ENOSYS)
        }
        fn fpu_taskswitch(&mut self, _set: bool) {}
        fn set_kernel_stack(&mut self, _sp: u64) -> Result<(), Errno> {
            Err(Errno::ENOSYS)
        }
        fn caller_rsp(&self) -> u64 {
            0
        }
        fn has_user_page_table(&self) -> bool {
            false
        }
        fn descriptor_written(&mut self, _mfn: u64) {}
        fn set_debugreg(&mut self, _reg: u32, _value: u64) -> Result<(), Errno> {
            Err(Errno::ENOSYS)
        }
        fn get_debugreg(&mut self, _reg: u32) -> Result<u64, Errno> {
            Err(Errno::ENOSYS)
        }
    }

    impl Irqs for FakePlatform {
        fn physdev_pirq_op(&mut self, _cmd: u32, _arg: u64) -> Result<i64, Errno> {
            Err(Errno::ENOSYS)
        }
    }
}

#[cfg(test)]
impl DomainControl for fake::FakePlatform {
    fn create_domain(&mut self, name: DomainName, _: u32, _: u64, _: u32, _: grant_tables::Limits) -> Result<u16, Errno> {
        self.domctl_calls.push(std::format!("create {}", name.as_str()));
        Ok(7)
    }
    fn destroy_domain(&mut self, domid: u16) -> Result<(), Errno> {
        self.domctl_calls.push(std::format!("destroy {domid}"));
        Ok(())
    }
    fn pause_domain(&mut self, domid: u16, pause: bool) -> Result<(), Errno> {
        self.domctl_calls.push(std::format!("{} {domid}", if pause { "pause" } else { "unpause" }));
        Ok(())
    }
    fn domain_info(&mut self, domid: u16) -> Result<hypercall_abi::domctl::DomainInfo, Errno> {
        self.domctl_calls.push(std::format!("info {domid}"));
        Err(Errno::ESRCH)
    }
    fn set_max_mem(&mut self, domid: u16, max: u64) -> Result<(), Errno> {
        self.domctl_calls.push(std::format!("max_mem {domid} {max}"));
        Ok(())
    }
    fn set_vcpu_context(&mut self, domid: u16, vcpu: u32, _: &hypercall_abi::arch::VcpuGuestContext) -> Result<(), Errno> {
        self.domctl_calls.push(std::format!("context {domid} {vcpu}"));
        Ok(())
    }
    fn remote_shutdown(&mut self, domid: u16, reason: ShutdownReason) -> Result<(), Errno> {
        self.domctl_calls.push(std::format!("shutdown {domid} {reason:?}"));
        Ok(())
    }
    fn sched_policy(&self) -> crate::sched::Policy {
        self.sched_policy
    }
    fn vcpu_state(&mut self, domid: u16, vcpu: u32) -> Result<domctl::VcpuState, Errno> {
        self.domctl_calls.push(std::format!("vcpu_state {domid} {vcpu}"));
        match vcpu {
            0 => Ok(domctl::VcpuState { up: true, running: true, cpu_time: 5_000_000, cpu: 1, ..Default::default() }),
            1 => Ok(domctl::VcpuState::default()),
            _ => Err(Errno::EINVAL),
        }
    }
    fn vcpu_affinity(&mut self, domid: u16, vcpu: u32, set: Option<u64>) -> Result<u64, Errno> {
        self.domctl_calls.push(std::format!("affinity {domid} {vcpu} {set:?}"));
        // Two CPUs online.
        match set.map(|m| m & 0b11) {
            _ if vcpu > 1 => Err(Errno::EINVAL),
            Some(0) => Err(Errno::EINVAL),
            Some(m) => Ok(m),
            None => Ok(0b11),
        }
    }
    fn sched_params(&mut self, domid: u16, set: Option<crate::sched::Params>) -> Result<crate::sched::Params, Errno> {
        self.domctl_calls.push(std::format!("sched {domid} {set:?}"));
        if domid != 3 {
            return Err(Errno::ESRCH);
        }
        let now = match self.sched_policy {
            crate::sched::Policy::Rtds => crate::sched::Params::Rtds { period_us: 10_000, budget_us: 2_000, extra: false, misses: 3 },
            _ => crate::sched::Params::Credit { weight: 512, cap: 25 },
        };
        Ok(set.unwrap_or(now))
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;

    /// Every hypercall not in [`DISPATCHED`] is `ENOSYS`, whatever its arguments (so the
    /// list misses nothing that is carried out), and docs/porting.md's table of §5 names
    /// exactly the dispatched numbers, each once.
    #[test]
    fn dispatched_list_and_the_porting_guide_agree() {
        for h in Hypercall::ALL {
            if DISPATCHED.contains(&h) {
                continue;
            }
            for args in [[0u64; 5], [1, BASE, 1, 0, 0], [2, BASE, BASE, 1, 0]] {
                let mut p = FakePlatform::new(true);
                assert_eq!(dispatch(&mut p, h as u64, args), Errno::ENOSYS.to_ret(), "{h:?} is carried out: list it");
            }
        }
        let guide = include_str!("../../../docs/porting.md");
        let section = guide
            .split("## 5. Hypercalls available today")
            .nth(1)
            .and_then(|s| s.split("| everything else").next())
            .expect("the guide's hypercall table");
        let mut documented: std::vec::Vec<u64> = section
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| nr"))
            .flat_map(|l| l.split('|').nth(1).unwrap_or("").split(',').map(|n| n.trim().parse::<u64>().expect("a number")).collect::<std::vec::Vec<_>>())
            .collect();
        documented.sort_unstable();
        let mut dispatched: std::vec::Vec<u64> = DISPATCHED.iter().map(|&h| h as u64).collect();
        dispatched.sort_unstable();
        assert_eq!(documented, dispatched, "docs/porting.md §5 against DISPATCHED");
    }

    #[test]
    fn unknown_and_unimplemented_numbers_get_enosys() {
        let mut p = FakePlatform::new(true);
        for nr in [43u64, 44, 56, 63, 64, 127, 1000, u64::MAX] {
            assert_eq!(dispatch(&mut p, nr, [0; 5]), Errno::ENOSYS.to_ret(), "hypercall {nr}");
        }
    }
}

#[cfg(test)]
mod compat_tests {
    use super::dispatch;
    use super::fake::*;
    use hypercall_abi::errno::Errno;

    /// `event_channel_op_compat`: the command from the struct, the union 4 bytes in.
    #[test]
    fn event_channel_op_compat_forwards_the_ten_original_commands() {
        let mut p = FakePlatform::new(false);
        p.mem[..4].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(dispatch(&mut p, 16, [BASE, 0, 0, 0, 0]), 0);
        assert_eq!(p.evtchn_calls, [(4, BASE + 4)]);
        p.mem[..4].copy_from_slice(&11u32.to_le_bytes());
        assert_eq!(dispatch(&mut p, 16, [BASE, 0, 0, 0, 0]), Errno::ENOSYS.to_ret(), "FIFO ops were never compat");
        assert_eq!(dispatch(&mut p, 16, [0xffff_8300_0000_0000, 0, 0, 0, 0]), Errno::EFAULT.to_ret());
        assert_eq!(p.evtchn_calls.len(), 1);
    }
}
