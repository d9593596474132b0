//! time-test: checks system time, the one-shot timer and blocking (run as dom0).
//!
//! Maps the shared info page, registers the event callback, binds `VIRQ_TIMER` on vCPU 0.
//! Then: system time is sane and monotonic over 1000 reads; `sleep_ns(50 ms)` wakes after
//! at least 50 ms and at most 50 + 15 ms of system time; three 20 ms sleeps in a row each
//! do too; a deadline in the past fires at once (< 5 ms); `set_timer_op(0)` cancels a
//! 10 ms timer (nothing fires while we spin 30 ms, then a 30 ms guard timer set after
//! cancelling another 10 ms one fires exactly once, no earlier than 30 ms). Measured
//! wake-ups are printed as `NOTE` lines.
//!
//! Then the rest of the time and polling ABI: the wall clock reads as a date after 2024
//! and advances with system time; `VCPUOP_set_singleshot_timer` fires like `set_timer_op`,
//! and refuses a past deadline with `-ETIME` when asked to; a 2 ms periodic timer fires
//! about five times in 11 ms and not after it is stopped; `SCHEDOP_poll` returns at once
//! for a pending port, waits for a masked port's event with upcalls masked (no upcall
//! runs), ends at its timeout with nothing pending, and refuses a port out of range or
//! more than 128 ports with `-EINVAL`.
//!
//! Prints `TEST <name> PASS|FAIL <why>`, then `TESTS DONE <p> passed, <f> failed`, and
//! powers off.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use pv_guest::events;
use pv_guest::hypercall::sched_yield;
use pv_guest::testing::{ensure, Outcome, Tests};
use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::time::{self, now_ns, NS_PER_MS};
use pv_guest::{println, StartInfo};

/// Slack allowed past a deadline before a wake-up counts as late.
const LATE_NS: u64 = 15 * NS_PER_MS;
/// A deadline in the past must fire within this.
const AT_ONCE_NS: u64 = 5 * NS_PER_MS;

fn ms(ns: u64) -> String {
    format!("{}.{:03} ms", ns / NS_PER_MS, (ns % NS_PER_MS) / 1000)
}

fn err(what: &str, e: pv_guest::hypercall_abi::errno::Errno) -> String {
    format!("{what}: -{}", e.name())
}

fn check_init(si: &StartInfo) -> Result<u32, String> {
    events::init(si).map_err(|e| err("events::init", e))?;
    let port = time::init_timer().map_err(|e| err("bind VIRQ_TIMER", e))?;
    ensure(port != 0 && port < events::NR_PORTS, || {
        format!("VIRQ_TIMER bound to port {port}")
    })?;
    ensure(!events::is_masked(port), || {
        "timer port still masked".into()
    })?;
    Ok(port)
}

fn check_time_info() -> Outcome {
    let t = time::time_info();
    println!(
        "NOTE time info: version {} tsc_timestamp {} system_time {} mul {:#x} shift {} flags {:#x}",
        t.version, t.tsc_timestamp, t.system_time, t.tsc_to_system_mul, t.tsc_shift, t.flags
    );
    ensure(t.version & 1 == 0, || format!("version {} odd", t.version))?;
    ensure(t.version != 0, || "version 0: never published".into())?;
    ensure(t.tsc_to_system_mul != 0, || "tsc_to_system_mul 0".into())?;
    let at = time::system_time_at(&t, t.tsc_timestamp);
    ensure(at == t.system_time, || {
        format!("system time at tsc_timestamp {at}, want {}", t.system_time)
    })
}

fn check_monotonic() -> Outcome {
    let first = now_ns();
    let mut prev = first;
    for i in 0..1000 {
        let n = now_ns();
        ensure(n >= prev, || {
            format!(
                "read {i}: {n} < previous {prev} (went back {} ns)",
                prev - n
            )
        })?;
        prev = n;
    }
    ensure(prev > first, || {
        format!("no progress over 1000 reads ({first})")
    })
}

/// Runs a timing check up to three times while it fails only for being late: a host that
/// stops QEMU's thread (a loaded CI machine) makes one wake-up late now and then, while a
/// timer the hypervisor arms wrongly is late every time. Any other failure counts at once.
fn late_at_most_twice(name: &str, mut check: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let mut tries = 0;
    loop {
        match check() {
            Err(e) if e.contains("late") && tries < 2 => {
                tries += 1;
                println!("time-test: {name}: {e}; again ({tries} of 2)");
            }
            r => return r,
        }
    }
}

/// Sleeps `d` and checks the wake-up is in `[d, d + LATE_NS]`; returns the measured time.
fn sleep_checked(name: &str, d: u64) -> Result<u64, String> {
    let fires = time::timer_fires();
    let t0 = now_ns();
    time::sleep_ns(d).map_err(|e| err("sleep_ns", e))?;
    let dt = now_ns() - t0;
    println!("NOTE {name} asked {} woke after {}", ms(d), ms(dt));
    ensure(dt >= d, || {
        format!("woke early: after {} of {}", ms(dt), ms(d))
    })?;
    ensure(dt <= d + LATE_NS, || {
        format!("woke late: after {} of {}", ms(dt), ms(d))
    })?;
    let got = time::timer_fires() - fires;
    ensure(got == 1, || format!("{got} timer events for one sleep"))?;
    Ok(dt)
}

fn check_past_deadline() -> Outcome {
    let fires = time::timer_fires();
    let t0 = now_ns();
    let deadline = t0.saturating_sub(NS_PER_MS).max(1);
    time::sleep_until(deadline).map_err(|e| err("sleep_until(past)", e))?;
    let dt = now_ns() - t0;
    println!("NOTE past_deadline fired after {}", ms(dt));
    ensure(dt < AT_ONCE_NS, || format!("fired late: after {}", ms(dt)))?;
    let got = time::timer_fires() - fires;
    ensure(got == 1, || format!("{got} timer events"))
}

/// Arms 10 ms, cancels, spins (yielding) 30 ms: nothing may fire or be pending.
fn check_cancel_spin(port: u32) -> Outcome {
    let fires = time::timer_fires();
    let t0 = now_ns();
    time::set_timer_op(t0 + 10 * NS_PER_MS).map_err(|e| err("set_timer_op(+10 ms)", e))?;
    time::set_timer_op(0).map_err(|e| err("set_timer_op(0)", e))?;
    while now_ns() - t0 < 30 * NS_PER_MS {
        let _ = sched_yield();
    }
    let got = time::timer_fires() - fires;
    ensure(got == 0, || format!("{got} timer events after cancelling"))?;
    ensure(!events::is_pending(port), || {
        "timer port pending after cancelling".into()
    })
}

/// Arms 10 ms, cancels, then sleeps on a 30 ms guard timer: exactly one fire, no earlier
/// than 30 ms.
fn check_cancel_guard() -> Outcome {
    let fires = time::timer_fires();
    let t0 = now_ns();
    time::set_timer_op(t0 + 10 * NS_PER_MS).map_err(|e| err("set_timer_op(+10 ms)", e))?;
    time::set_timer_op(0).map_err(|e| err("set_timer_op(0)", e))?;
    time::sleep_until(t0 + 30 * NS_PER_MS).map_err(|e| err("sleep_until(+30 ms)", e))?;
    let dt = now_ns() - t0;
    println!("NOTE cancel_guard woke after {}", ms(dt));
    ensure(dt >= 30 * NS_PER_MS, || {
        format!("woke after {}: the cancelled 10 ms timer fired", ms(dt))
    })?;
    ensure(dt <= 30 * NS_PER_MS + LATE_NS, || {
        format!("guard late: woke after {}", ms(dt))
    })?;
    let got = time::timer_fires() - fires;
    ensure(got == 1, || {
        format!("{got} timer events, want 1 (the guard)")
    })
}

/// 2024-01-01T00:00:00Z: any clock before it is wrong.
const YEAR_2024: u64 = 1_704_067_200;

fn check_wall_clock() -> Outcome {
    let (s1, n1) = time::wall_clock();
    let (y, mo, d, h, mi, sec) = time::civil_from_unix(s1);
    println!("NOTE wall clock: {y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{sec:02} UTC ({s1}.{n1:09})");
    ensure(s1 >= YEAR_2024, || format!("wall clock {s1} is before 2024"))?;
    let t0 = now_ns();
    while now_ns() - t0 < 10 * NS_PER_MS {
        core::hint::spin_loop();
    }
    let (s2, n2) = time::wall_clock();
    let d_ns = (s2 as i128 * 1_000_000_000 + n2 as i128) - (s1 as i128 * 1_000_000_000 + n1 as i128);
    ensure((10_000_000..20_000_000).contains(&d_ns), || format!("wall clock advanced {d_ns} ns over 10 ms of system time"))
}

fn check_singleshot() -> Outcome {
    let before = time::timer_fires();
    let deadline = now_ns() + 5 * NS_PER_MS;
    time::set_singleshot_timer(deadline, true).map_err(|e| err("set_singleshot_timer", e))?;
    while time::timer_fires() == before {
        time::block().map_err(|e| err("block", e))?;
    }
    let woke = now_ns();
    ensure(woke >= deadline, || format!("fired {} early", ms(deadline - woke)))?;
    ensure(woke - deadline < LATE_NS, || format!("fired {} late", ms(woke - deadline)))?;
    match time::set_singleshot_timer(now_ns() - NS_PER_MS, true) {
        Err(Errno::ETIME) => {}
        other => return Err(format!("past deadline with VCPU_SSHOTTMR_future gave {other:?}, not -ETIME")),
    }
    // Set, then stopped: nothing fires. (The deadline leaves room for a slow host between
    // the two calls: under TCG with other QEMUs busy, 2 ms did not always.)
    let before = time::timer_fires();
    time::set_singleshot_timer(now_ns() + 20 * NS_PER_MS, false).map_err(|e| err("set_singleshot_timer", e))?;
    time::stop_singleshot_timer().map_err(|e| err("stop_singleshot_timer", e))?;
    let t0 = now_ns();
    while now_ns() - t0 < 30 * NS_PER_MS {
        let _ = sched_yield();
    }
    ensure(time::timer_fires() == before, || "a stopped one-shot timer fired".into())
}

fn check_periodic() -> Outcome {
    let before = time::timer_fires();
    let t0 = now_ns();
    time::set_periodic_timer(2 * NS_PER_MS).map_err(|e| err("set_periodic_timer", e))?;
    while now_ns() - t0 < 11 * NS_PER_MS {
        time::block().map_err(|e| err("block", e))?;
    }
    time::stop_periodic_timer().map_err(|e| err("stop_periodic_timer", e))?;
    let fired = time::timer_fires() - before;
    ensure((4..=6).contains(&fired), || format!("{fired} periodic fires in 11 ms at a 2 ms period"))?;
    match time::set_periodic_timer(NS_PER_MS / 2) {
        Err(Errno::EINVAL) => {}
        other => return Err(format!("a 0.5 ms period gave {other:?}, not -EINVAL")),
    }
    let after = time::timer_fires();
    let t1 = now_ns();
    while now_ns() - t1 < 6 * NS_PER_MS {
        let _ = sched_yield();
    }
    ensure(time::timer_fires() == after, || "the stopped periodic timer fired".into())
}

fn check_poll(timer_port: u32) -> Outcome {
    // A pending port: back at once, with upcalls masked so it stays pending.
    events::disable_upcalls();
    let upcalls = events::upcalls();
    time::set_timer_op(now_ns() + 3 * NS_PER_MS).map_err(|e| err("set_timer_op", e))?;
    let t0 = now_ns();
    events::poll(&[timer_port], 0).map_err(|e| err("poll(timer)", e))?;
    let waited = now_ns() - t0;
    let pending = events::is_pending(timer_port);
    ensure(pending, || "poll returned with the timer port not pending".into())?;
    ensure(waited >= 2 * NS_PER_MS, || format!("poll for the timer returned after {}", ms(waited)))?;
    ensure(events::upcalls() == upcalls, || "an upcall ran during the poll with upcalls masked".into())?;
    let t1 = now_ns();
    events::poll(&[timer_port], 0).map_err(|e| err("poll(pending)", e))?;
    ensure(now_ns() - t1 < AT_ONCE_NS, || "poll on a pending port did not return at once".into())?;
    // Nothing pending among the polled ports: the timeout ends it.
    let spare = events::alloc_unbound(pv_guest::hypercall_abi::types::DOMID_SELF).map_err(|e| err("alloc_unbound", e))?;
    let t2 = now_ns();
    events::poll(&[spare], t2 + 4 * NS_PER_MS).map_err(|e| err("poll(timeout)", e))?;
    let waited = now_ns() - t2;
    ensure((4 * NS_PER_MS..4 * NS_PER_MS + LATE_NS).contains(&waited), || format!("poll with a 4 ms timeout returned after {}", ms(waited)))?;
    ensure(!events::is_pending(spare), || "the spare port became pending".into())?;
    // Hostile polls.
    match events::poll(&[spare, events::NR_PORTS], 0) {
        Err(Errno::EINVAL) => {}
        other => return Err(format!("poll of an out-of-range port gave {other:?}")),
    }
    let many = [spare; 129];
    match events::poll(&many, 0) {
        Err(Errno::EINVAL) => {}
        other => return Err(format!("poll of 129 ports gave {other:?}")),
    }
    events::close(spare).map_err(|e| err("close", e))?;
    // The timer event is still pending: unmasking upcalls delivers it now.
    events::enable_upcalls();
    events::force_callback();
    ensure(events::upcalls() > upcalls, || "the pending timer event was not delivered after unmasking".into())
}

fn main(si: &'static StartInfo) {
    let mut t = Tests::default();
    let port = match check_init(si) {
        Ok(p) => {
            t.report("init", Ok(()));
            p
        }
        Err(e) => {
            t.report("init", Err(e));
            t.done();
            return;
        }
    };
    println!("time-test: VIRQ_TIMER on port {port}");
    t.report("time_info", check_time_info());
    t.report("monotonic_1000", check_monotonic());
    t.report("sleep_50ms", late_at_most_twice("sleep_50ms", || sleep_checked("sleep_50ms", 50 * NS_PER_MS).map(|_| ())));
    t.report("sleep_20ms_x3", {
        let mut r = Ok(());
        for i in 0..3 {
            let name = format!("sleep_20ms_{i}");
            if let Err(e) = late_at_most_twice(&name, || sleep_checked(&name, 20 * NS_PER_MS).map(|_| ())) {
                r = Err(format!("sleep {i}: {e}"));
                break;
            }
        }
        r
    });
    t.report("past_deadline", late_at_most_twice("past_deadline", check_past_deadline));
    t.report("cancel_spin", check_cancel_spin(port));
    t.report("cancel_guard", late_at_most_twice("cancel_guard", check_cancel_guard));
    t.report("wall_clock", check_wall_clock());
    t.report("singleshot", check_singleshot());
    t.report("periodic", check_periodic());
    t.report("poll", check_poll(port));
    t.report("stray_events", events::check_no_stray_events());
    t.done();
}

pv_guest::entry!(main);
