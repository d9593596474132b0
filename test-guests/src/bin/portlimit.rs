//! portlimit: allocates event channel ports until the hypervisor refuses, to check the
//! per-domain port limit (xl's `max_event_channels`).
//!
//! Command line: `expect=N`, the number of ports the domain may have (ports 1..=N; port 0
//! is never allocated). The builder already made two of them, the store and console ports
//! named in start_info; those are never closed here. Checks, each a `TEST <name> PASS|FAIL`
//! line:
//! - `fill`: `alloc_unbound` succeeds exactly N times less the builder's ports, with the
//!   other ports of 1..=N in order, then fails with `-ENOSPC`;
//! - `refill`: after closing one port, one more allocation succeeds (the same port) and the
//!   next is `-ENOSPC` again;
//! - `still_works`: with two ports closed, a loopback pair delivers one event per send;
//! - `close_all`: every port closes, and N can be allocated again.
//!
//! Then `TESTS DONE`, `portlimit: done` and a clean shutdown.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use pv_guest::events;
use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::hypercall_abi::types::DOMID_SELF;
use pv_guest::testing::{ensure, Outcome, Tests};
use pv_guest::{println, start_info, StartInfo};

/// Events seen on the loopback pair's B end.
static DELIVERED: AtomicU64 = AtomicU64::new(0);

fn on_b(_port: u32) {
    DELIVERED.fetch_add(1, Ordering::SeqCst);
}

/// Allocates until refused: the ports, and the errno that ended it.
fn fill(ports: &mut Vec<u32>) -> Errno {
    loop {
        match events::alloc_unbound(DOMID_SELF) {
            Ok(p) => ports.push(p),
            Err(e) => return e,
        }
        if ports.len() > events::NR_PORTS as usize {
            return Errno::EINVAL; // the hypervisor handed out more ports than exist
        }
    }
}

/// The ports the builder made (store, console), which this guest leaves alone.
static GIVEN: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];

fn given(p: u32) -> bool {
    p != 0 && GIVEN.iter().any(|g| g.load(Ordering::Relaxed) == p)
}

fn check_fill(expect: usize, ports: &mut Vec<u32>) -> Outcome {
    let e = fill(ports);
    ensure(e == Errno::ENOSPC, || format!("allocation ended with -{}, not -ENOSPC", e.name()))?;
    let wanted: Vec<u32> = (1..=expect as u32).filter(|&p| !given(p)).collect();
    ensure(ports.len() == wanted.len(), || format!("got {} ports, expected {}", ports.len(), wanted.len()))?;
    ensure(*ports == wanted, || "ports are not 1..=N (less the builder's) in order".into())
}

fn check_refill(ports: &mut [u32]) -> Outcome {
    let victim = ports[ports.len() / 2];
    events::close(victim).map_err(|e| format!("close({victim}): -{}", e.name()))?;
    let again = events::alloc_unbound(DOMID_SELF).map_err(|e| format!("alloc after close: -{}", e.name()))?;
    ensure(again == victim, || format!("got port {again} back, expected {victim}"))?;
    match events::alloc_unbound(DOMID_SELF) {
        Err(Errno::ENOSPC) => Ok(()),
        other => Err(format!("allocation past the limit gave {other:?}")),
    }
}

fn check_still_works(ports: &mut Vec<u32>) -> Outcome {
    for _ in 0..2 {
        let p = ports.pop().ok_or("no port to close")?;
        events::close(p).map_err(|e| format!("close({p}): -{}", e.name()))?;
    }
    let a = events::alloc_unbound(DOMID_SELF).map_err(|e| format!("alloc_unbound: -{}", e.name()))?;
    ports.push(a);
    let b = events::bind_interdomain(DOMID_SELF, a).map_err(|e| format!("bind_interdomain: -{}", e.name()))?;
    ports.push(b);
    events::set_handler(b, on_b).map_err(|e| format!("set_handler: -{}", e.name()))?;
    // Binding notifies the new port (as Xen does, for events sent while it was unbound);
    // `events::init` masked every port, so that one arrives at the unmask: count after it.
    events::unmask(b).map_err(|e| format!("unmask: -{}", e.name()))?;
    let before = DELIVERED.load(Ordering::SeqCst);
    events::send(a).map_err(|e| format!("send: -{}", e.name()))?;
    // The upcall runs on the way back from `send` (upcalls are unmasked).
    let got = DELIVERED.load(Ordering::SeqCst) - before;
    ensure(got == 1, || format!("{got} deliveries for one send, expected 1"))
}

fn check_close_all(expect: usize, ports: &mut Vec<u32>) -> Outcome {
    for &p in ports.iter() {
        events::close(p).map_err(|e| format!("close({p}): -{}", e.name()))?;
    }
    ports.clear();
    check_fill(expect, ports)
}

fn main(si: &'static StartInfo) {
    let mut tests = Tests::default();
    let cmdline = start_info::cmdline(si);
    let Some(expect) = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("expect="))
        .and_then(|v| v.parse::<usize>().ok())
    else {
        println!("portlimit: bad command line \"{cmdline}\" (want expect=N)");
        return;
    };
    if let Err(e) = events::init(si) {
        println!("portlimit: events::init: -{}", e.name());
        return;
    }
    GIVEN[0].store(si.store_evtchn, Ordering::Relaxed);
    GIVEN[1].store(si.console.domu_evtchn(), Ordering::Relaxed);
    let mut ports = Vec::new();
    tests.report("fill", check_fill(expect, &mut ports));
    let mine = (1..=expect as u32).filter(|&p| !given(p)).count();
    tests.report("refill", if ports.len() == mine && mine > 0 { check_refill(&mut ports) } else { Err("fill failed".into()) });
    tests.report("still_works", check_still_works(&mut ports));
    tests.report("close_all", check_close_all(expect, &mut ports));
    tests.done();
    println!("portlimit: done");
}

pv_guest::entry!(main);
