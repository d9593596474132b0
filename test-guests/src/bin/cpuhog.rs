//! cpuhog: spins, and every half second of system time prints how long its vCPU has run
//! so far (`VCPUOP_get_runstate_info`): `cpuhog: at <ms> ran <ms>`. The scheduler
//! scenarios read the lines of two or three of these to measure their shares of the CPU.
#![no_std]
#![no_main]

use pv_guest::{println, time, StartInfo};

/// Between reports, in ns of system time.
const EVERY_NS: u64 = 500_000_000;

fn main(si: &'static StartInfo) -> ! {
    // The shared info page (the clock).
    if let Err(e) = pv_guest::events::init(si) {
        println!("cpuhog: events: {e}");
    }
    let mut next = time::now_ns();
    loop {
        let now = time::now_ns();
        if now >= next {
            match time::runstate() {
                Ok(info) => println!("cpuhog: at {} ran {}", now / 1_000_000, info.time[hypercall_abi::vcpu::RUNSTATE_RUNNING as usize] / 1_000_000),
                Err(e) => println!("cpuhog: runstate: {e}"),
            }
            next = now + EVERY_NS;
        }
        core::hint::spin_loop();
    }
}

pv_guest::entry!(main);
