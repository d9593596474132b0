//! idler: the guest of the creation benchmark (`bench-create` in dom0). It yields the CPU
//! (`SCHEDOP_yield`) forever and prints nothing, so a hundred of them running side by side
//! cost dom0 and each other one hypercall and one switch per turn of the round robin.
//!
//! With `block` on its command line it sleeps in `SCHEDOP_block` instead, with no event
//! channel bound, so nothing ever wakes it: a domain `xl list` shows blocked (`b`) and that
//! costs the CPU nothing.
#![no_std]
#![no_main]

use pv_guest::hypercall::sched_yield;
use pv_guest::{start_info, StartInfo};

fn main(si: &'static StartInfo) -> ! {
    let block = start_info::cmdline(si).split_whitespace().any(|w| w == "block");
    loop {
        // A failed yield or block only means this turn is not given up early; the timer
        // still preempts.
        if block {
            let _ = pv_guest::time::block();
        } else {
            let _ = sched_yield();
        }
    }
}

pv_guest::entry!(main);
