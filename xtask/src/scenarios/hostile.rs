//! The attacks of issue 10 from an unprivileged guest (`hostile`, one attack per boot),
//! each named after the Xen advisory class it guards against. Every scenario runs a
//! bystander (`counter`) first, runs the attack, and asserts the attack's precise outcome,
//! that the bystander counts on after it, that dom0 answers, and that dom0's free memory is
//! back where it was once both guests are gone.

use super::xl::{grant_leaves_nothing, INFO_FREE};
use super::{Image, Scenario, DEFAULT};
use std::time::Duration;

/// Waits for a whole output line matching the regex before the entries after it.
macro_rules! wait_for {
    ($regex:expr) => {
        concat!("\0wait-for ", $regex)
    };
}

/// The scenario for attack `$attack` (config `hostile-$attack.cfg`): `$end` is the regex
/// of dom0's line when the attacker stops, `$expect` what must be seen between the
/// attack's start and that line.
macro_rules! attack {
    ($name:literal, $attack:literal, $end:literal, [$($expect:expr),* $(,)?]) => {
        Scenario {
            name: $name,
            modules: &[
                Image::Guest("counter"),
                Image::Guest("hostile"),
                Image::Config("counter.cfg"),
                Image::Config(concat!("hostile-", $attack, ".cfg")),
            ],
            input: &[
                "info",
                "xl create counter.cfg",
                wait_for!(r"\[counter\] counter: "),
                concat!("xl create hostile-", $attack, ".cfg"),
                wait_for!($end),
                // The bystander still runs, and dom0 still answers.
                wait_for!(r"\[counter\] counter: "),
                wait_for!(r"\[counter\] counter: "),
                "xl destroy hostile",
                "xl destroy counter",
                "info",
                "shutdown",
            ],
            expect: &[
                INFO_FREE,
                // Guest lines reach the console when dom0 drains the ring, microkernel
                // lines at once: each scenario expects one kind before dom0's report.
                $($expect,)*
                $end,
                r"\[counter\] counter: ",
                INFO_FREE,
                r"^dom0: powering off$",
            ],
            forbid: &["PANIC", r"TEST .* FAIL", r"\(mk\) d0 crashed", r"hostile: survived", r"counter.*crashed"],
            check: Some(grant_leaves_nothing),
            timeout: Duration::from_secs(60),
            ..DEFAULT
        }
    };
}

/// The hostile-guest scenarios.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        // Direction flag at entry: the microkernel's copies ran downwards over its stack.
        attack!("xsa-entry-df-crash", "df", r"^xl: domain hostile \([0-9]+\) crashed; preserved", [
            r"\(mk\) d[0-9]+ crashed: vector 6 #UD rip=0x[0-9a-f]+ error=0x0\b",
        ]),
        attack!("xsa-entry-df-handler", "df-handler", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] hostile: df-handler set_trap_table 0, handler saw DF=0$",
            r"\[hostile\] TESTS DONE 1 passed, 0 failed$",
        ]),
        // iret to an unloadable selector (XSA-class: iret and callbacks).
        attack!("xsa-iret-failsafe", "iret-failsafe", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] hostile: iret-failsafe registered failsafe: 0$",
            r"\[hostile\] hostile: iret-failsafe callback entered: rip=0x[0-9a-f]+ ss=0xb$",
        ]),
        attack!("xsa-iret-no-failsafe", "iret-crash", r"^xl: domain hostile \([0-9]+\) crashed; preserved", [
            r"\(mk\) d[0-9]+ crashed: return to the guest faulted \(#GP, cs=0x[0-9a-f]+ ss=0xb\) and no failsafe callback could run: no handler registered",
        ]),
        // XSA-224: grant unmap through host_addr 0 or another address.
        attack!("xsa-224-grant-unmap", "grant-unmap-zero", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] TEST unmap_host_addr_zero_refused PASS$",
            r"\[hostile\] TEST flags_kept_after_zero PASS$",
            r"\[hostile\] TEST unmap_other_address_refused PASS$",
            r"\[hostile\] TEST end_access_refused_while_mapped PASS$",
            r"\[hostile\] TEST real_unmap PASS$",
            r"\[hostile\] TEST flags_clear_after_real_unmap PASS$",
            r"\[hostile\] TESTS DONE 8 passed, 0 failed$",
        ]),
        // Event channel allocation for a domain that does not exist.
        attack!("xsa-evtchn-unbound-nodomain", "evtchn-nodomain", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] hostile: evtchn-nodomain alloc_unbound: Err\(.ESRCH.\)$",
            r"\[hostile\] TESTS DONE 1 passed, 0 failed$",
        ]),
    ]
}
