//! idler: the guest of the creation benchmark (`bench-create` in dom0). It yields the CPU
//! (`SCHEDOP_yield`) forever and prints nothing, so a hundred of them running side by side
//! cost dom0 and each other one hypercall and one switch per turn of the round robin.
#![no_std]
#![no_main]

use pv_guest::hypercall::sched_yield;
use pv_guest::StartInfo;

fn main(_si: &'static StartInfo) -> ! {
    loop {
        // A failed yield only means this turn is not given up early; the timer still
        // preempts.
        let _ = sched_yield();
    }
}

pv_guest::entry!(main);
