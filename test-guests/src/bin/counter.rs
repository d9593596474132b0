//! counter: counts in a tight loop, without hypercalls, and prints `counter: <n>` each
//! time another 2^[`SHIFT`] iterations are done (`n` is the count in those units: 1, 2,
//! 3, ...), forever.
//!
//! Scenarios watch its lines to see whether it runs: they stop while it is paused and
//! resume, with the next number, when it is unpaused. Between lines it makes no hypercall,
//! so it is preempted like the spinner.
#![no_std]
#![no_main]

use core::hint::black_box;

use pv_guest::{println, StartInfo};

/// log2 of the iterations per line: under QEMU TCG on this project's test machine, running
/// alone (as dom0), 2^22 iterations take about 25 ms (measured with host timestamps on the
/// serial output), within the 20-50 ms that lets a scenario see it stop and resume quickly.
const SHIFT: u32 = 22;

fn main(_si: &'static StartInfo) -> ! {
    let mut iterations: u64 = 0;
    loop {
        // black_box: the loop must really count, not be folded into a multiplication.
        iterations = black_box(iterations + 1);
        if iterations & ((1 << SHIFT) - 1) == 0 {
            println!("counter: {}", iterations >> SHIFT);
        }
    }
}

pv_guest::entry!(main);
