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

use core::arch::asm;
use core::ptr::addr_of;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use hypercall_abi::errno::Errno;
use hypercall_abi::event_channel::VIRQ_TIMER;
use hypercall_abi::hypercall::Hypercall;
use hypercall_abi::sched::SCHEDOP_BLOCK;
use hypercall_abi::shared_info::VcpuTimeInfo;

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
    let si = events::shared_info().expect("time: shared info page not mapped");
    // SAFETY: the page stays mapped for good; its fields are read with volatile loads
    // because the hypervisor updates them concurrently.
    let t = unsafe { addr_of!((*si).vcpu_info[0].time) };
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
