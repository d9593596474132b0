//! spinner: prints `spinner: spinning`, then spins forever without another hypercall.
//!
//! It never yields, blocks or shuts down, so only the microkernel's preemption (the APIC
//! timer's time slices) lets dom0 and other guests run beside it; the
//! `xl-spinner-does-not-starve-dom0` scenario checks that they do.
#![no_std]
#![no_main]

use pv_guest::{println, StartInfo};

fn main(_si: &'static StartInfo) -> ! {
    println!("spinner: spinning");
    loop {
        core::hint::spin_loop();
    }
}

pv_guest::entry!(main);
