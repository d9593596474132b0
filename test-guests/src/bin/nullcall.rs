//! nullcall: makes null hypercalls (`xen_version(XENVER_version)`, the cheapest real
//! hypercall) as fast as it can, and every quarter second of system time prints how many
//! it has made so far: `nullcall: at <ms> calls <n>`. The scaling figure of `cargo xtask
//! bench` runs two of these at once, first pinned to one CPU, then on two, and compares
//! their aggregate rates.
#![no_std]
#![no_main]

use pv_guest::{println, time, StartInfo};

/// Between reports, in ns of system time.
const EVERY_NS: u64 = 250_000_000;
/// Hypercalls between looks at the clock.
const BATCH: u64 = 256;

fn main(si: &'static StartInfo) -> ! {
    // The shared info page (the clock).
    if let Err(e) = pv_guest::events::init(si) {
        println!("nullcall: events: {e}");
    }
    let mut calls = 0u64;
    let mut next = time::now_ns();
    loop {
        for _ in 0..BATCH {
            // SAFETY: XENVER_version takes no argument and touches no guest memory.
            unsafe {
                pv_guest::hypercall::xen_version_raw(hypercall_abi::version::XENVER_VERSION, core::ptr::null_mut());
            }
        }
        calls += BATCH;
        let now = time::now_ns();
        if now >= next {
            println!("nullcall: at {} calls {}", now / 1_000_000, calls);
            next = now + EVERY_NS;
        }
    }
}

pv_guest::entry!(main);
