//! fpu-test: proves that a domain's SSE registers are its own. It fills xmm0..xmm15 with a
//! pattern made from its command line (`seed=N`), then yields and spins thousands of times
//! so that other domains run (and use the same registers) in between, and checks every
//! register still holds its pattern. Run two at once with different seeds (`xl create`).
//! Prints `TEST fpu_isolated PASS|FAIL <why>` and `TESTS DONE <p> passed, <f> failed`.
#![no_std]
#![no_main]

use core::arch::asm;
use pv_guest::hypercall;
use pv_guest::start_info::cmdline;
use pv_guest::{println, StartInfo};

/// Rounds of yield-and-spin between writing and checking the registers.
const ROUNDS: u32 = 3000;

fn seed(si: &StartInfo) -> u64 {
    cmdline(si)
        .split_whitespace()
        .find_map(|w| w.strip_prefix("seed="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn pattern(seed: u64, reg: u64) -> u64 {
    0x5eed_0000_0000_0000 ^ (seed << 32) ^ (reg << 8) ^ 0xa5
}

/// Writes the low 64 bits of xmm0..xmm15.
fn fill(seed: u64) {
    macro_rules! set {
        ($($n:literal),*) => {$(
            // SAFETY: writes one xmm register, which nothing in this guest's Rust code uses
            // (the target is built without SSE); no memory is touched.
            unsafe { asm!(concat!("movq xmm", $n, ", {}"), in(reg) pattern(seed, $n), options(nomem, nostack)) };
        )*};
    }
    set!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

/// Reads the low 64 bits of xmm0..xmm15.
fn read() -> [u64; 16] {
    let mut r = [0u64; 16];
    macro_rules! get {
        ($($n:literal),*) => {$(
            // SAFETY: reads one xmm register into a general register; no memory is touched.
            unsafe { asm!(concat!("movq {}, xmm", $n), out(reg) r[$n], options(nomem, nostack)) };
        )*};
    }
    get!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    r
}

fn main(si: &'static StartInfo) {
    let seed = seed(si);
    println!("fpu-test: seed {seed}");
    fill(seed);
    let mut spin = 0u64;
    for _ in 0..ROUNDS {
        let _ = hypercall::sched_yield();
        for i in 0..2000u64 {
            spin = spin.wrapping_add(i);
            core::hint::spin_loop();
        }
    }
    let got = read();
    let bad = (0..16u64).find(|&n| got[n as usize] != pattern(seed, n));
    match bad {
        None => {
            println!("TEST fpu_isolated PASS");
            println!("TESTS DONE 1 passed, 0 failed");
        }
        Some(n) => {
            println!(
                "TEST fpu_isolated FAIL xmm{n} holds {:#x}, want {:#x}",
                got[n as usize],
                pattern(seed, n)
            );
            println!("TESTS DONE 0 passed, 1 failed");
        }
    }
    core::hint::black_box(spin);
}

pv_guest::entry!(main);
