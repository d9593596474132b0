//! events-test: checks event channel delivery to the guest kernel (run as dom0).
//!
//! Maps the shared info page, registers the event callback and unmasks upcalls; makes a
//! loopback interdomain channel within itself (`alloc_unbound` for DOMID_SELF, then
//! `bind_interdomain` to that port: ports A and B, connected); sends on A 10000 times,
//! each time waiting (bounded, yielding) until B's handler ran, and checks exactly 10000
//! deliveries on B and none stray. Then masks B, sends, checks that nothing is delivered
//! and B's pending bit is set, unmasks it with `EVTCHNOP_unmask` and checks the event
//! arrives. Finally hostile calls: send on a closed port, bind to a port that is not
//! unbound, ports out of range, all `-EINVAL`.
//!
//! Prints `TEST <name> PASS|FAIL <why>`, then `TESTS DONE <p> passed, <f> failed`, and
//! powers off.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use pv_guest::events::{self, NR_PORTS};
use pv_guest::hypercall::sched_yield;
use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::hypercall_abi::event_channel::{EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN};
use pv_guest::hypercall_abi::types::DOMID_SELF;
use pv_guest::testing::{ensure, expect_ret, Outcome, Tests};
use pv_guest::{println, StartInfo};

/// Sends in the delivery loop.
const ROUNDS: u64 = 10_000;
/// Yields a wait allows before giving up.
const WAIT_YIELDS: u32 = 1000;

/// Deliveries on B.
static DELIVERED: AtomicU64 = AtomicU64::new(0);
/// The port the handler last ran for.
static LAST_PORT: AtomicU32 = AtomicU32::new(u32::MAX);

fn on_b(port: u32) {
    LAST_PORT.store(port, Ordering::Relaxed);
    DELIVERED.fetch_add(1, Ordering::Relaxed);
}

/// Waits (spinning, then yielding, bounded) until `DELIVERED` reaches `want`.
fn wait_for(want: u64) -> bool {
    for _ in 0..100 {
        if DELIVERED.load(Ordering::Relaxed) >= want {
            return true;
        }
        core::hint::spin_loop();
    }
    for _ in 0..WAIT_YIELDS {
        if DELIVERED.load(Ordering::Relaxed) >= want {
            return true;
        }
        let _ = sched_yield();
    }
    DELIVERED.load(Ordering::Relaxed) >= want
}

fn status_is(port: u32, status: u32, word0: u32, word1: u32) -> Outcome {
    let st = events::status(port).map_err(|e| format!("status({port}): -{}", e.name()))?;
    ensure(
        st.status == status && st.u.word0 == word0 && st.u.word1 == word1,
        || format!("status({port}) = {st:?}, want status {status} u ({word0}, {word1})"),
    )
}

fn check_init(si: &StartInfo) -> Outcome {
    events::map_shared_info(si).map_err(|e| format!("map_shared_info: -{}", e.name()))?;
    events::mask_all();
    events::register_callback().map_err(|e| format!("register_callback: -{}", e.name()))?;
    events::enable_upcalls();
    ensure(!events::upcalls_masked(), || "upcalls still masked".into())
}

/// Makes the loopback pair: A unbound for ourselves, B bound to it.
fn make_pair() -> Result<(u32, u32), alloc::string::String> {
    let a =
        events::alloc_unbound(DOMID_SELF).map_err(|e| format!("alloc_unbound: -{}", e.name()))?;
    let b = events::bind_interdomain(DOMID_SELF, a)
        .map_err(|e| format!("bind_interdomain({a}): -{}", e.name()))?;
    ensure(
        a != b && a < NR_PORTS && b < NR_PORTS && a != 0 && b != 0,
        || format!("ports a {a} b {b}"),
    )?;
    events::set_handler(b, on_b).map_err(|e| format!("set_handler: -{}", e.name()))?;
    Ok((a, b))
}

/// Binding notifies the new local port once (Xen: notifications sent to the unbound port
/// may have been lost); B is masked until now, so unmasking it delivers that one event.
fn check_bind_notifies(b: u32) -> Outcome {
    ensure(events::is_masked(b), || "b not masked after bind".into())?;
    ensure(events::is_pending(b), || "b not pending after bind".into())?;
    events::unmask(b).map_err(|e| format!("unmask: -{}", e.name()))?;
    ensure(wait_for(1), || "no delivery after unmask".into())?;
    ensure(DELIVERED.load(Ordering::Relaxed) == 1, || {
        format!("{} deliveries", DELIVERED.load(Ordering::Relaxed))
    })
}

fn check_rounds(a: u32, b: u32) -> Outcome {
    let start = DELIVERED.load(Ordering::Relaxed);
    for i in 1..=ROUNDS {
        events::send(a).map_err(|e| format!("send #{i}: -{}", e.name()))?;
        if !wait_for(start + i) {
            return Err(format!(
                "send #{i}: no delivery (delivered {}, upcalls {}, b pending {}, masked {})",
                DELIVERED.load(Ordering::Relaxed) - start,
                events::upcalls(),
                events::is_pending(b),
                events::is_masked(b)
            ));
        }
    }
    // Let anything extra arrive before counting.
    for _ in 0..10 {
        let _ = sched_yield();
    }
    let got = DELIVERED.load(Ordering::Relaxed) - start;
    ensure(got == ROUNDS, || format!("{got} deliveries, want {ROUNDS}"))?;
    ensure(LAST_PORT.load(Ordering::Relaxed) == b, || {
        format!("handler ran for port {}", LAST_PORT.load(Ordering::Relaxed))
    })?;
    ensure(events::stray_events() == 0, || {
        format!(
            "{} stray events, last on port {:?}",
            events::stray_events(),
            events::last_stray_port()
        )
    })
}

fn check_masked(a: u32, b: u32) -> Outcome {
    let before = DELIVERED.load(Ordering::Relaxed);
    events::mask(b);
    events::send(a).map_err(|e| format!("send: -{}", e.name()))?;
    for _ in 0..20 {
        let _ = sched_yield();
    }
    ensure(DELIVERED.load(Ordering::Relaxed) == before, || {
        "delivered while masked".into()
    })?;
    ensure(events::is_pending(b), || {
        "pending bit not set while masked".into()
    })
}

fn check_unmask(b: u32) -> Outcome {
    let before = DELIVERED.load(Ordering::Relaxed);
    events::unmask(b).map_err(|e| format!("unmask: -{}", e.name()))?;
    ensure(!events::is_masked(b), || "still masked after unmask".into())?;
    ensure(wait_for(before + 1), || "no delivery after unmask".into())?;
    ensure(DELIVERED.load(Ordering::Relaxed) == before + 1, || {
        format!(
            "{} deliveries after unmask",
            DELIVERED.load(Ordering::Relaxed) - before
        )
    })?;
    ensure(!events::is_pending(b), || "pending bit still set".into())
}

fn main(si: &'static StartInfo) {
    let mut t = Tests::default();
    let init = check_init(si);
    let ok = init.is_ok();
    t.report("init", init);
    if !ok {
        t.done();
        return;
    }
    let (a, b) = match make_pair() {
        Ok(p) => {
            t.report("loopback_pair", Ok(()));
            p
        }
        Err(e) => {
            t.report("loopback_pair", Err(e));
            t.done();
            return;
        }
    };
    println!("events-test: ports a {a} b {b}");
    // Xen reports the remote domain by id: ourselves, dom0.
    t.report(
        "status_interdomain",
        status_is(a, EVTCHNSTAT_INTERDOMAIN, 0, b)
            .and_then(|()| status_is(b, EVTCHNSTAT_INTERDOMAIN, 0, a)),
    );
    t.report("bind_notifies", check_bind_notifies(b));
    t.report("send_10000", check_rounds(a, b));
    t.report("masked_no_delivery", check_masked(a, b));
    t.report("unmask_delivers", check_unmask(b));

    let einval = Errno::EINVAL.to_ret();
    t.report("bind_not_unbound", {
        let r = events::bind_interdomain(DOMID_SELF, a);
        ensure(r == Err(Errno::EINVAL), || {
            format!("got {r:?}, want EINVAL")
        })
    });
    t.report(
        "send_out_of_range",
        expect_ret(events::send_raw(NR_PORTS), einval),
    );
    t.report(
        "send_far_out_of_range",
        expect_ret(events::send_raw(u32::MAX), einval),
    );
    t.report(
        "unmask_out_of_range",
        expect_ret(events::unmask_raw(NR_PORTS), einval),
    );
    t.report(
        "close_out_of_range",
        expect_ret(events::close_raw(NR_PORTS), einval),
    );
    t.report(
        "status_out_of_range",
        expect_ret(events::status_raw(NR_PORTS).0, einval),
    );

    t.report(
        "close",
        events::close(b)
            .and_then(|()| events::close(a))
            .map_err(|e| format!("close: -{}", e.name()))
            .and_then(|()| status_is(a, EVTCHNSTAT_CLOSED, 0, 0))
            .and_then(|()| status_is(b, EVTCHNSTAT_CLOSED, 0, 0)),
    );
    t.report("send_closed", expect_ret(events::send_raw(a), einval));
    t.report("close_closed", expect_ret(events::close_raw(a), einval));
    t.report("stray_events", events::check_no_stray_events());
    t.done();
}

pv_guest::entry!(main);
