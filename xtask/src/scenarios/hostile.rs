//! The attacks of issue 10 from an unprivileged guest (`hostile`, one attack per boot),
//! each named after the Xen advisory class it guards against. Every scenario runs a
//! bystander (`counter`) first, runs the attack, and asserts the attack's precise outcome,
//! that the bystander counts on after it, that dom0 answers, and that dom0's free memory is
//! back where it was once both guests are gone.

use super::xl::{grant_leaves_nothing, INFO_FREE};
use super::{Image, Scenario, DEFAULT};
use std::time::Duration;


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
                // The microkernel's accounting holds after the attack.
                "audit",
                // The bystander still runs, and dom0 still answers.
                wait_for!(r"\[counter\] counter: "),
                wait_for!(r"\[counter\] counter: "),
                "xl destroy hostile",
                "xl destroy counter",
                "audit",
                "info",
                "shutdown",
            ],
            expect: &[
                INFO_FREE,
                // Guest lines reach the console when dom0 drains the ring, microkernel
                // lines at once: each scenario expects one kind before dom0's report.
                $($expect,)*
                $end,
                // The attacker powered off (destroyed) or crashed (preserved).
                r"^audit: ok: [23] domains, ",
                r"\[counter\] counter: ",
                r"^audit: ok: 1 domains, ",
                INFO_FREE,
                r"^dom0: powering off$",
            ],
            forbid: &["PANIC", r"TEST .* FAIL", r"\(mk\) d0 crashed", r"hostile: survived", "did not fire", r"counter.*crashed", "audit: FAILED", r"\(mk\) audit: "],
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
        // Store quotas (XSA-326) and permissions.
        attack!("xsa-326-store-memory", "store-flood", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] hostile: store-flood wrote [0-9]+ values of 2 KiB, then ENOMEM$",
            r"\[hostile\] TESTS DONE 8 passed, 0 failed$",
        ]),
        attack!("xsa-store-permissions", "store-perms", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] TESTS DONE 7 passed, 0 failed$",
        ]),
        // A multicall of minutes of page-table work (XSA-45 class): dom0 and the bystander
        // keep running while it does, and `xl destroy` ends it in the middle.
        Scenario {
            name: "xsa-45-multicall-preemption",
            modules: &[
                Image::Guest("counter"),
                Image::Guest("hostile"),
                Image::Config("counter.cfg"),
                Image::Config("hostile-multicall-flood.cfg"),
            ],
            input: &[
                "info",
                "xl create counter.cfg",
                wait_for!(r"\[counter\] counter: "),
                "xl create hostile-multicall-flood.cfg",
                wait_for!(r"\[hostile\] hostile: multicall-flood started"),
                wait_for!(r"\[counter\] counter: "),
                wait_for!(r"\[counter\] counter: "),
                wait_for!(r"\[counter\] counter: "),
                "xl list",
                wait_for!(r"^hostile +[0-9]+ "),
                "audit",
                "xl destroy hostile",
                wait_for!(r"^xl: domain hostile \([0-9]+\) destroyed$"),
                wait_for!(r"\[counter\] counter: "),
                "xl destroy counter",
                "info",
                "shutdown",
            ],
            expect: &[
                INFO_FREE,
                r"\[hostile\] hostile: multicall-flood started: 2048 entries of 8192 updates$",
                r"\[counter\] counter: ",
                r"\[counter\] counter: ",
                r"^hostile +[0-9]+ ",
                r"^audit: ok: 3 domains, ",
                r"^xl: domain hostile \([0-9]+\) destroyed$",
                r"\[counter\] counter: ",
                INFO_FREE,
                r"^dom0: powering off$",
            ],
            forbid: &["PANIC", r"\(mk\) d0 crashed", r"multicall-flood finished", r"counter.*crashed", r"hostile.*crashed", "audit: FAILED", r"\(mk\) audit: "],
            check: Some(grant_leaves_nothing),
            timeout: Duration::from_secs(90),
            ..DEFAULT
        },
        // The fuzzer's short fixed-seed campaign: lives of random hostile actions, each
        // restarted by dom0, with a bystander counting and the accounting audited.
        Scenario {
            name: "fuzz-short",
            modules: &[
                Image::Guest("counter"),
                Image::Guest("fuzz"),
                Image::Config("counter.cfg"),
                Image::Config("fuzz.cfg"),
            ],
            input: &[
                "info",
                "xl create counter.cfg",
                wait_for!(r"\[counter\] counter: "),
                "xl create fuzz.cfg",
                wait_for!(r"\[fuzz\] fuzz: life done: "),
                "audit",
                wait_for!(r"\[fuzz\] fuzz: life seed "),
                wait_for!(r"\[fuzz\] fuzz: life seed "),
                wait_for!(r"\[fuzz\] fuzz: life seed "),
                wait_for!(r"\[fuzz\] fuzz: life seed "),
                "audit",
                wait_for!(r"\[counter\] counter: "),
                "xl destroy fuzz",
                "xl destroy counter",
                "audit",
                "info",
                "shutdown",
            ],
            expect: &[
                INFO_FREE,
                r"\[fuzz\] fuzz: life seed 0x[0-9a-f]+ \(seed 1, domain [0-9]+\)",
                r"\[fuzz\] fuzz: life done: 1000 actions, ",
                r"^audit: ok: ",
                r"^audit: ok: ",
                r"^xl: domain fuzz \([0-9]+\) destroyed$",
                r"^audit: ok: 1 domains, ",
                INFO_FREE,
                r"^dom0: powering off$",
            ],
            forbid: &["PANIC", r"\(mk\) d0 crashed", r"counter.*crashed", "audit: FAILED", r"\(mk\) audit: "],
            check: Some(grant_leaves_nothing),
            timeout: Duration::from_secs(240),
            ..DEFAULT
        },
        // The fuzzer as dom0: the privileged operations (domctl, sysctl, foreign
        // mappings, other domains' memory, ports and grants) fuzzed too, one life, then the
        // microkernel's audit.
        Scenario {
            name: "fuzz-dom0",
            dom0: Image::Guest("fuzz"),
            cmdline: "seed=3 calls=2000",
            expect: &[
                r"fuzz: life seed 0x[0-9a-f]+ \(seed 3, domain 0\)",
                r"fuzz: life done: 2000 actions, ",
                r"^audit: ok: ",
                r"\(mk\) d0 shutdown: poweroff",
            ],
            forbid: &["PANIC", "audit: FAILED", r"\(mk\) audit: "],
            timeout: Duration::from_secs(120),
            ..DEFAULT
        },
        // Long operations are preempted (XSA-45 class).
        attack!("xsa-45-console-write", "console-flood", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] TESTS DONE 1 passed, 0 failed$",
        ]),
        // Page-table validation (XSA-148/182 class) and linear page tables (XSA-240).
        attack!("xsa-148-pt-validation", "pt-validation", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] TESTS DONE 8 passed, 0 failed$",
        ]),
        attack!("xsa-240-linear-pt", "linear-pt", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] TESTS DONE 6 passed, 0 failed$",
        ]),
        // Grant map and copy with hostile arguments.
        attack!("xsa-grant-map-args", "grant-map", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] TESTS DONE 10 passed, 0 failed$",
        ]),
        attack!("xsa-grant-copy-args", "grant-copy", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] TESTS DONE 8 passed, 0 failed$",
        ]),
        // Event channels used wrongly.
        attack!("xsa-evtchn-misuse", "evtchn-misuse", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] TESTS DONE 12 passed, 0 failed$",
        ]),
        // Hypercall arguments that point where the guest may not.
        attack!("xsa-guest-pointers", "guest-pointers", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] TESTS DONE 33 passed, 0 failed$",
        ]),
        // Memory given back is scrubbed (XSA-100 class).
        attack!("xsa-100-scrub", "scrub", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] hostile: scrub 16 pages given back and reclaimed, 0 not zero$",
            r"\[hostile\] TESTS DONE 1 passed, 0 failed$",
        ]),
        // vcpu_op for vCPUs that do not exist, and buffers not the guest's.
        attack!("xsa-vcpu-op-args", "vcpu-op", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] TESTS DONE 16 passed, 0 failed$",
        ]),
        // A hypercall whose return address is not canonical: a #GP for the guest, as Xen
        // (the sysret class: never a fault in ring 0).
        attack!("xsa-noncanonical-return", "noncanonical-return", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] hostile: noncanonical-return #GP at 0x800000000000, xen_version returned 0x[0-9a-f]+$",
            r"\[hostile\] TESTS DONE 2 passed, 0 failed$",
        ]),
        // SCHEDOP_watchdog: a guest that stops poking its watchdog is shut down for it.
        attack!("watchdog-expires", "watchdog", r"^xl: domain hostile \([0-9]+\) shut down: watchdog", [
            r"\[hostile\] TESTS DONE 6 passed, 0 failed$",
            r"\(mk\) d[0-9]+ \(hostile\) shutdown: watchdog \(its watchdog ran out\)$",
        ]),
        // Callbacks and trap handlers pointed into the hypervisor (iret and callbacks).
        attack!("xsa-callback-in-hypervisor", "callback-hv", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] TESTS DONE 3 passed, 0 failed$",
        ]),
        attack!("xsa-trap-in-hypervisor", "trap-hv", r"^xl: domain hostile \([0-9]+\) shut down: poweroff", [
            r"\[hostile\] TESTS DONE 4 passed, 0 failed$",
        ]),
    ]
}
