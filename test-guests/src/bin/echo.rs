//! echo: the console split driver's test guest. It prints a banner through its console
//! ring, then reads typed lines from the ring's input side and prints each back as
//! `echo: <line>`, sleeping (`SCHEDOP_block` on its console event channel) between them.
//!
//! With `corrupt` on its command line it plays a hostile front-end instead: after the
//! banner it sets its ring's `out_prod` 100000 bytes past `out_cons`, notifies dom0 (which
//! must refuse the ring and keep serving the others), prints `echo: corrupted my console
//! ring` (the kit, finding the indices impossible, falls back to `console_io`, so the
//! microkernel prints it as `[name] ...`), and sleeps forever.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use pv_guest::hypercall::sched_yield;
use pv_guest::text::Lossy;
use pv_guest::{console, console_ring, events, println, start_info, time, StartInfo};

/// Set by the console port's handler: input (or room) arrived.
static WOKEN: AtomicBool = AtomicBool::new(false);

fn on_console(_port: u32) {
    WOKEN.store(true, Ordering::SeqCst);
}

/// Sleeps until the console port fires (or, without events, yields once).
fn wait(blocking: bool) {
    if blocking {
        let _ = time::block_until(&WOKEN);
        WOKEN.store(false, Ordering::SeqCst);
    } else {
        let _ = sched_yield();
    }
}

fn main(si: &'static StartInfo) -> ! {
    let corrupt = start_info::cmdline(si)
        .split_whitespace()
        .any(|w| w == "corrupt");
    println!(
        "echo: ready on console port {} ({}), type a line",
        console_ring::port(),
        if console_ring::active() { "ring" } else { "console_io" }
    );
    let port = console_ring::port();
    let blocking = port != 0
        && events::init(si).is_ok()
        && events::set_handler(port, on_console).is_ok()
        && events::unmask(port).is_ok();
    if corrupt {
        // Let dom0 show the banner first.
        while console_ring::out_cons() != console_ring::out_prod() {
            let _ = sched_yield();
        }
        let cons = console_ring::out_cons();
        console_ring::set_out_prod(cons.wrapping_add(100_000));
        println!("echo: corrupted my console ring");
        loop {
            // No handler ever sets WOKEN again for good: sleep.
            wait(blocking);
        }
    }
    let mut line: Vec<u8> = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        let n = console::read(&mut buf);
        if n == 0 {
            wait(blocking);
            continue;
        }
        for &b in &buf[..n] {
            match b {
                b'\r' | b'\n' if !line.is_empty() => {
                    println!("echo: {}", Lossy(&line));
                    line.clear();
                }
                b'\r' | b'\n' => {}
                _ if line.len() < 200 => line.push(b),
                _ => {}
            }
        }
    }
}

pv_guest::entry!(main);
