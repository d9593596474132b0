//! Time and sleeping (guest target only): the TSC, Xen's system time, the one-shot timer
//! and blocking.
//!
//! - [`rdtsc`] reads the time-stamp counter.
//! - [`now_ns`] is system time (ns since the hypervisor booted), from vCPU 0's
//!   `vcpu_time_info` in the shared info page ([`crate::events::map_shared_info`] must
//!   have run): read under the version protocol, then extrapolated with the TSC,
//!   `system_time + ((rdtsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul >> 32`.
//! - [`set_timer_op`] arms vCPU 0's one-shot timer at an absolute system time (0
//!   cancels); when it passes, the hypervisor raises `VIRQ_TIMER`.
//! - [`block`] is `SCHEDOP_block`: sleep until an event is pending, upcalls unmasked.
//! - [`init_timer`] binds `VIRQ_TIMER` on vCPU 0 to a handler that counts fires and sets
//!   a flag; [`sleep_ns`] and [`sleep_until`] arm the timer and block until it fired.
//! - [`wall_clock`] is the time of day: `shared_info`'s wall clock at system time zero
//!   (from the hypervisor's RTC, read under `wc_version`) plus [`now_ns`].
//! - [`set_singleshot_timer`], [`stop_singleshot_timer`], [`set_periodic_timer`] and
//!   [`stop_periodic_timer`] are the `vcpu_op` timer calls (the one-shot timer is the
//!   same one `set_timer_op` arms).

use core::arch::asm;
use core::ptr::addr_of;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use hypercall_abi::errno::Errno;
use hypercall_abi::event_channel::VIRQ_TIMER;
use hypercall_abi::hypercall::Hypercall;
use hypercall_abi::sched::SCHEDOP_BLOCK;
use hypercall_abi::shared_info::VcpuTimeInfo;
use hypercall_abi::vcpu::{
    VcpuSetPeriodicTimer, VcpuSetSingleshotTimer, VCPUOP_SET_PERIODIC_TIMER, VCPUOP_SET_SINGLESHOT_TIMER,
    VCPUOP_STOP_PERIODIC_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER, VCPU_SSHOTTMR_FUTURE,
};

use crate::events;
use crate::hypercall::{check, hypercall_via_page};

/// Reads the time-stamp counter after all earlier instructions have completed
/// (`lfence; rdtsc`), so it can time a short sequence.
#[inline(always)]
pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: lfence and rdtsc only read the TSC into edx:eax (rdtsc is allowed in ring 3
    // unless CR4.TSD is set, which the hypervisor does not do for PV guests).
    unsafe {
        asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Nanoseconds in a millisecond.
pub const NS_PER_MS: u64 = 1_000_000;

/// Scales a TSC delta to nanoseconds as Xen's `pvclock_scale_delta`: shift, then
/// multiply by the 32.32 fraction `mul` (128-bit intermediate).
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = if shift >= 0 {
        delta << shift
    } else {
        delta >> shift.unsigned_abs()
    };
    ((u128::from(d) * u128::from(mul)) >> 32) as u64
}

/// A consistent copy of vCPU 0's `vcpu_time_info`, read under the version protocol
/// (retry while the version is odd or changed across the read).
///
/// # Panics
/// If the shared info page is not mapped.
pub fn time_info() -> VcpuTimeInfo {
    time_info_of(0)
}

/// The time information in `shared_info`'s `vcpu_info[vcpu]` (the clock a secondary vCPU
/// reads; `vcpu` below 32, else vCPU 0's).
pub fn time_info_of(vcpu: usize) -> VcpuTimeInfo {
    let si = events::shared_info().expect("time: shared info page not mapped");
    let vcpu = if vcpu < 32 { vcpu } else { 0 };
    // SAFETY: the page stays mapped for good; its fields are read with volatile loads
    // because the hypervisor updates them concurrently; `vcpu` indexes the 32 slots.
    let t = unsafe { addr_of!((*si).vcpu_info[vcpu].time) };
    loop {
        // SAFETY: as above.
        let v1 = unsafe { addr_of!((*t).version).read_volatile() };
        if v1 & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        core::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: as above; `VcpuTimeInfo` is plain data, any bit pattern is valid.
        let copy = unsafe { t.read_volatile() };
        core::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: as above.
        let v2 = unsafe { addr_of!((*t).version).read_volatile() };
        if v1 == v2 {
            return copy;
        }
    }
}

/// System time in ns at TSC value `tsc`, from the snapshot `t`.
pub fn system_time_at(t: &VcpuTimeInfo, tsc: u64) -> u64 {
    t.system_time.wrapping_add(scale_delta(
        tsc.wrapping_sub(t.tsc_timestamp),
        t.tsc_to_system_mul,
        t.tsc_shift,
    ))
}

/// Current system time in ns (since the hypervisor booted).
pub fn now_ns() -> u64 {
    let t = time_info();
    system_time_at(&t, rdtsc())
}

/// Wall-clock time now: seconds and nanoseconds since the Unix epoch (UTC).
///
/// # Panics
/// If the shared info page is not mapped.
pub fn wall_clock() -> (u64, u32) {
    let si = events::shared_info().expect("time: shared info page not mapped");
    let (sec, nsec) = loop {
        // SAFETY: the page stays mapped for good; the hypervisor may update the wall clock
        // under `wc_version` (odd while it writes), so every field is a volatile load.
        let (v1, sec, sec_hi, nsec, v2) = unsafe {
            let v1 = addr_of!((*si).wc_version).read_volatile();
            core::sync::atomic::fence(Ordering::Acquire);
            let sec = addr_of!((*si).wc_sec).read_volatile();
            let sec_hi = addr_of!((*si).wc_sec_hi).read_volatile();
            let nsec = addr_of!((*si).wc_nsec).read_volatile();
            core::sync::atomic::fence(Ordering::Acquire);
            (v1, sec, sec_hi, nsec, addr_of!((*si).wc_version).read_volatile())
        };
        if v1 & 1 == 0 && v1 == v2 {
            break ((u64::from(sec_hi) << 32) | u64::from(sec), nsec);
        }
        core::hint::spin_loop();
    };
    let total = u128::from(sec) * 1_000_000_000 + u128::from(nsec) + u128::from(now_ns());
    ((total / 1_000_000_000) as u64, (total % 1_000_000_000) as u32)
}

/// The civil date and time (UTC) of `secs` since the epoch: (year, month, day, hour,
/// minute, second).
pub fn civil_from_unix(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, (rem / 3600) as u32, (rem % 3600 / 60) as u32, (rem % 60) as u32)
}

fn vcpu_op(cmd: u32, arg: u64) -> i64 {
    // SAFETY: vcpu_op reads at most the argument struct the caller passes by address (a
    // live local of the wrappers below) and writes nothing.
    unsafe { hypercall_via_page(Hypercall::VcpuOp as u64, u64::from(cmd), 0, arg, 0, 0) }
}

/// `VCPUOP_get_runstate_info` for vCPU 0: the time it spent in each runstate (ns).
pub fn runstate() -> Result<hypercall_abi::vcpu::VcpuRunstateInfo, Errno> {
    runstate_of(0)
}

/// `VCPUOP_get_runstate_info` for vCPU `vcpu` of this domain (any of them, running or
/// not): the time it spent in each runstate (ns).
pub fn runstate_of(vcpu: u32) -> Result<hypercall_abi::vcpu::VcpuRunstateInfo, Errno> {
    let mut info = hypercall_abi::vcpu::VcpuRunstateInfo::default();
    let ret = {
        let arg = (&raw mut info) as u64;
        // SAFETY: the hypervisor writes one `vcpu_runstate_info` at `arg`, a live local
        // of exactly that type.
        unsafe { hypercall_via_page(Hypercall::VcpuOp as u64, u64::from(hypercall_abi::vcpu::VCPUOP_GET_RUNSTATE_INFO), u64::from(vcpu), arg, 0, 0) }
    };
    crate::hypercall::check(ret).map(|_| info)
}

/// `VCPUOP_set_singleshot_timer` on vCPU 0: VIRQ_TIMER at absolute system time
/// `deadline_ns`; with `future_only`, `-ETIME` if that time has already passed.
pub fn set_singleshot_timer(deadline_ns: u64, future_only: bool) -> Result<(), Errno> {
    let arg = VcpuSetSingleshotTimer {
        timeout_abs_ns: deadline_ns,
        flags: if future_only { VCPU_SSHOTTMR_FUTURE } else { 0 },
        _pad: 0,
    };
    check(vcpu_op(VCPUOP_SET_SINGLESHOT_TIMER, addr_of!(arg) as u64)).map(|_| ())
}

/// `VCPUOP_stop_singleshot_timer` on vCPU 0.
pub fn stop_singleshot_timer() -> Result<(), Errno> {
    check(vcpu_op(VCPUOP_STOP_SINGLESHOT_TIMER, 0)).map(|_| ())
}

/// `VCPUOP_set_periodic_timer` on vCPU 0: VIRQ_TIMER every `period_ns` (at least 1 ms).
pub fn set_periodic_timer(period_ns: u64) -> Result<(), Errno> {
    let arg = VcpuSetPeriodicTimer { period_ns };
    check(vcpu_op(VCPUOP_SET_PERIODIC_TIMER, addr_of!(arg) as u64)).map(|_| ())
}

/// `VCPUOP_stop_periodic_timer` on vCPU 0.
pub fn stop_periodic_timer() -> Result<(), Errno> {
    check(vcpu_op(VCPUOP_STOP_PERIODIC_TIMER, 0)).map(|_| ())
}

/// `set_timer_op(deadline)`; returns the raw result.
pub fn set_timer_op_raw(deadline_ns: u64) -> i64 {
    // SAFETY: set_timer_op takes a value and touches no guest memory.
    unsafe { hypercall_via_page(Hypercall::SetTimerOp as u64, deadline_ns, 0, 0, 0, 0) }
}

/// Arms vCPU 0's one-shot timer at absolute system time `deadline_ns` (0 cancels it).
pub fn set_timer_op(deadline_ns: u64) -> Result<(), Errno> {
    check(set_timer_op_raw(deadline_ns)).map(|_| ())
}

/// `SCHEDOP_block`: clears vCPU 0's upcall mask and sleeps until an event is pending
/// (returns at once if one already is); the event is delivered on the way back.
pub fn block() -> Result<(), Errno> {
    // SAFETY: SCHEDOP_block takes no argument and touches no guest memory.
    let ret = unsafe {
        hypercall_via_page(
            Hypercall::SchedOp as u64,
            u64::from(SCHEDOP_BLOCK),
            0,
            0,
            0,
            0,
        )
    };
    check(ret).map(|_| ())
}

/// The port `VIRQ_TIMER` is bound to (`u32::MAX`: not yet).
static TIMER_PORT: AtomicU32 = AtomicU32::new(u32::MAX);
/// Set by the timer handler; cleared by [`sleep_until`] before arming.
static TIMER_FIRED: AtomicBool = AtomicBool::new(false);
/// Timer events handled so far.
static TIMER_FIRES: AtomicU64 = AtomicU64::new(0);

fn on_timer(_port: u32) {
    TIMER_FIRES.fetch_add(1, Ordering::SeqCst);
    TIMER_FIRED.store(true, Ordering::SeqCst);
}

/// Binds `VIRQ_TIMER` on vCPU 0 to the timer handler and unmasks its port (once; later
/// calls return the same port). Needs [`crate::events::init`] first.
pub fn init_timer() -> Result<u32, Errno> {
    let p = TIMER_PORT.load(Ordering::Acquire);
    if p != u32::MAX {
        return Ok(p);
    }
    let port = events::bind_virq(VIRQ_TIMER, 0)?;
    events::set_handler(port, on_timer)?;
    TIMER_PORT.store(port, Ordering::Release);
    events::unmask(port)?;
    Ok(port)
}

/// The port `VIRQ_TIMER` is bound to, once [`init_timer`] ran.
pub fn timer_port() -> Option<u32> {
    let p = TIMER_PORT.load(Ordering::Acquire);
    (p != u32::MAX).then_some(p)
}

/// Timer events handled so far.
pub fn timer_fires() -> u64 {
    TIMER_FIRES.load(Ordering::SeqCst)
}

/// Blocks until `flag` is set (by an event handler). Checks it with upcalls masked so an
/// event between the check and `SCHEDOP_block` is not lost: the hypervisor then sees it
/// pending and returns at once. Upcalls are unmasked on return.
pub fn block_until(flag: &AtomicBool) -> Result<(), Errno> {
    loop {
        events::disable_upcalls();
        if flag.load(Ordering::SeqCst) {
            events::enable_upcalls();
            return Ok(());
        }
        if let Err(e) = block() {
            events::enable_upcalls();
            return Err(e);
        }
    }
}

/// Arms the timer at absolute system time `deadline_ns` and blocks until it fired.
/// Needs [`init_timer`].
pub fn sleep_until(deadline_ns: u64) -> Result<(), Errno> {
    if timer_port().is_none() {
        return Err(Errno::EINVAL);
    }
    TIMER_FIRED.store(false, Ordering::SeqCst);
    set_timer_op(deadline_ns)?;
    block_until(&TIMER_FIRED)
}

/// Sleeps for at least `d` ns of system time. Needs [`init_timer`].
pub fn sleep_ns(d: u64) -> Result<(), Errno> {
    sleep_until(now_ns().saturating_add(d).max(1))
}
