//! The bench guest's timer figures: how late, in system time, a vCPU blocked on its
//! one-shot timer runs again after the deadline (p50 and p99), beside the same software
//! path for a deadline already past, which needs no waiting.
//!
//! Each sample masks upcalls, arms `set_timer_op` at an absolute deadline, then blocks
//! (`SCHEDOP_block`, which unmasks) until the `VIRQ_TIMER` handler of the guest kit has run,
//! and records `now_ns() - deadline`. The timed deadlines lie 1 ms ahead plus a varying
//! 0-499 us, so they do not line up with the 10 ms slice or with each other. The baseline
//! arms the timer at `now_ns()` read just before: the microkernel raises `VIRQ_TIMER` inside
//! `set_timer_op`, `SCHEDOP_block` finds it pending and returns at once, and the upcall runs
//! on the way back; its figure is the cost of that path (two hypercalls, the upcall and its
//! `iret`), the floor under a timed wake-up.

use alloc::vec::Vec;

use pv_guest::events;
use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::println;
use pv_guest::stats::percentile;
use pv_guest::time::{self, block, now_ns, set_timer_op, timer_fires, NS_PER_MS};
use pv_guest::StartInfo;

/// Samples per figure.
const SAMPLES: usize = 400;
/// Distance from arming to the deadline, before the variation.
const AHEAD_NS: u64 = NS_PER_MS;
/// The variation added to `AHEAD_NS`: 0 to this, exclusive.
const SPREAD_NS: u64 = 500_000;
/// Untimed wake-ups before each figure.
const WARMUP: usize = 10;

/// Arms the timer at `deadline` and blocks until its handler has run; returns how late
/// the guest runs again, in ns of system time (negative: before the deadline).
fn wake_at(deadline: u64) -> Result<i64, Errno> {
    let before = timer_fires();
    // Masked from arming on, so that a deadline already past raises the event while we are
    // still on our way to block: SCHEDOP_block then finds it pending and returns at once.
    events::disable_upcalls();
    let woke = set_timer_op(deadline).and_then(|()| loop {
        if timer_fires() != before {
            break Ok(());
        }
        // Unmasks; the upcall (the kit's VIRQ_TIMER handler) runs on the way back.
        if let Err(e) = block() {
            break Err(e);
        }
        events::disable_upcalls();
    });
    let late = now_ns() as i64 - deadline as i64;
    events::enable_upcalls();
    woke.map(|()| late)
}

/// A small linear congruential generator (Knuth's MMIX constants): varied, repeatable.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// `SAMPLES` wake-ups, the deadline of each from `deadline(now)`.
fn collect(mut deadline: impl FnMut(u64) -> u64) -> Result<Vec<i64>, Errno> {
    for _ in 0..WARMUP {
        wake_at(deadline(now_ns()))?;
    }
    let mut late = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        late.push(wake_at(deadline(now_ns()))?);
    }
    Ok(late)
}

/// Measures and prints the timer figures.
pub fn run(si: &StartInfo) {
    if let Err(e) = events::init(si).and_then(|()| time::init_timer().map(|_| ())) {
        println!("BENCH ERROR events::init / init_timer failed: {e}");
        return;
    }
    let mut lcg = Lcg(0x5eed);
    let timed = collect(|now| now + AHEAD_NS + lcg.next() % SPREAD_NS);
    let expired = collect(|now| now);
    let (mut timed, mut expired) = match (timed, expired) {
        (Ok(t), Ok(e)) => (t, e),
        (Err(e), _) | (_, Err(e)) => {
            println!("BENCH ERROR timer wake-ups: a hypercall failed: {e}");
            return;
        }
    };
    let early = timed.iter().filter(|&&l| l < 0).count();
    if early != 0 {
        println!("BENCH ERROR {early} of {SAMPLES} timed wake-ups came before their deadline");
    }
    for pct in [50, 99] {
        let t = percentile(&mut timed, pct).unwrap_or(0);
        let e = percentile(&mut expired, pct).unwrap_or(0);
        println!("BENCH timer_wakeup_p{pct} {t} ns timer_expired_wakeup_p{pct} {e}");
    }
    for pct in [50, 99] {
        let e = percentile(&mut expired, pct).unwrap_or(0);
        println!("BENCH timer_expired_wakeup_p{pct} {e} ns");
    }
    let worst = timed.iter().copied().max().unwrap_or(0);
    println!("BENCH timer_wakeup_max {worst} ns");
}
