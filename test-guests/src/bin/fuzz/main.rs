//! fuzz: the hostile-guest fuzzer. An unprivileged guest that issues random hypercalls with
//! random and boundary arguments (pointers into the hypervisor, the M2P, unmapped and
//! non-canonical addresses, page-crossing structures, huge counts, every sub-op number and
//! a few past the end), random multicalls (nested ones too), hypercalls entered with
//! hostile flags and selectors (DF, AC, TF, NT, data selectors, a non-canonical stack),
//! `iret` to random flags and selectors, privileged and faulting instructions, and at the
//! end of some lives garbage written into its own shared rings.
//!
//! One life runs `calls=N` actions from a seed, then powers off; the config restarts it
//! (`on_poweroff = "restart"`, `on_crash = "restart"`), and each life's seed is the
//! campaign seed mixed with the domain id, so a campaign goes on across lives. Every life
//! prints its seed (`fuzz: life seed 0x...`): `cmdline = "lifeseed=0x..."` replays it.
//! dom0, a bystander and the microkernel's audit (`audit`) judge; see xtask's `fuzz`.
//!
//! The fuzzer does not end itself on purpose: calls that would (shutdown, block, taking
//! down its vCPU, closing its console and store channels, unmapping its own memory) are
//! turned into harmless ones, and handlers it depends on are put back after calls that
//! replace them. What it cannot foresee may still end a life; dom0 starts the next.
#![no_std]
#![no_main]

extern crate alloc;

mod gen;
mod rng;
mod state;

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use core::sync::atomic::Ordering;

use pv_guest::start_info::cmdline;
use pv_guest::{events, println, ShutdownReason, StartInfo};

use gen::Fuzzer;
use rng::Rng;

/// Actions per life when the command line does not say.
const DEFAULT_CALLS: u64 = 3000;

/// Seconds of the life's watchdog: a life that stops making progress (blocked on a ring
/// whose channel a random call closed, say) is shut down by the hypervisor and restarted.
const WATCHDOG_S: u32 = 20;



fn arg<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn main(si: &'static StartInfo) -> ShutdownReason {
    let line = String::from(cmdline(si));
    if let Err(e) = events::init(si) {
        println!("fuzz: events init: {e:?}");
        return ShutdownReason::Crash;
    }
    // dom0 has no store ring (it runs the store): its id is 0.
    let domid = if si.is_privileged() {
        0
    } else {
        pv_guest::xenbus::connect(si)
            .ok()
            .and_then(|mut xs| pv_guest::xenbus::own_domid(&mut xs).ok())
            .unwrap_or(0)
    };
    let seed = arg(&line, "seed").and_then(number).unwrap_or(1);
    let calls = arg(&line, "calls").and_then(number).unwrap_or(DEFAULT_CALLS);
    let life_seed = arg(&line, "lifeseed").and_then(number).unwrap_or_else(|| rng::mix(seed, u64::from(domid)));
    println!("fuzz: life seed {life_seed:#x} (seed {seed}, domain {domid}); replay with cmdline = \"lifeseed={life_seed:#x}\"");
    let mut f = match Fuzzer::new(si, domid, Rng::new(life_seed)) {
        Ok(f) => f,
        Err(why) => {
            println!("fuzz: setup failed: {why}");
            return ShutdownReason::Crash;
        }
    };
    f.verbose = arg(&line, "verbose").is_some_and(|v| v != "0");
    let dog = pv_guest::hypercall::sched_watchdog_raw(0, WATCHDOG_S);
    if dog <= 0 {
        println!("fuzz: no watchdog ({dog}): a life that hangs will not be restarted");
    }
    let mut reached: BTreeSet<(u64, u64)> = BTreeSet::new();
    for n in 1..=calls {
        if n % 100 == 0 && dog > 0 {
            pv_guest::hypercall::sched_watchdog_raw(dog as u32, WATCHDOG_S);
        }
        f.step(&mut reached);
        if n % 1000 == 0 {
            println!("fuzz: {n} actions, {} sub-ops reached, {} exceptions", reached.len(), state::EXCEPTIONS.load(Ordering::Relaxed));
        }
    }
    println!(
        "fuzz: life done: {calls} actions, {} hypercalls, {} refused, {} sub-ops reached, {} exceptions",
        f.hypercalls,
        f.refused,
        reached.len(),
        state::EXCEPTIONS.load(Ordering::Relaxed)
    );
    // The sub-ops reached, a few per line (console lines are bounded).
    let all: alloc::vec::Vec<String> = reached.iter().map(|(nr, sub)| format!("{nr}.{sub}")).collect();
    for chunk in all.chunks(12) {
        println!("fuzz: sub-ops {}", chunk.join(" "));
    }
    f.finish();
    ShutdownReason::Poweroff
}

pv_guest::entry!(main);
