//! Guests with several vCPUs: brought up with `VCPUOP_initialise`/`up`, sharing work,
//! exchanging IPIs, taken down.

use super::xl::INFO_FREE;
use super::{Image, Scenario, DEFAULT};
use crate::expect::CheckInput;
use std::time::Duration;

/// Lives of the two-vCPU guest in `smp-lifecycle`.
const LIVES: usize = 20;

/// `info`, then `LIVES` times: create the smp guest (both vCPUs up, then one down), wait
/// for its end (it powers off and is destroyed); then `info`, `audit`, `shutdown`.
fn lifecycle_input() -> &'static [&'static str] {
    let mut input = vec!["info"];
    for _ in 0..LIVES {
        input.extend(["xl create smp.cfg", wait_for!(r"\(mk\) d[0-9]+ \(smp\) destroyed")]);
    }
    input.extend(["info", "audit", "shutdown"]);
    // Built once per xtask run; leaked to be a static slice like every scenario's input.
    Box::leak(input.into_boxed_slice())
}

/// Every life passed its tests, and the free memory after is what it was before.
fn lifecycle_balanced(input: &CheckInput) -> Result<(), String> {
    let done = input.lines.iter().filter(|l| l.contains("[smp] TESTS DONE 14 passed, 0 failed")).count();
    if done != LIVES {
        return Err(format!("{done} lives passed their tests, expected {LIVES}"));
    }
    free_memory_unchanged(input, LIVES)
}

/// The free memory of the first two `info`s (before and after `lives` lives) is the same.
fn free_memory_unchanged(input: &CheckInput, lives: usize) -> Result<(), String> {
    let free = |h: &crate::expect::Hit| h.groups.get(1).cloned().flatten().unwrap_or_default();
    let mut hits = input.hits.iter().filter(|h| h.pattern == INFO_FREE);
    let (start, end) = (hits.next().map(free).unwrap_or_default(), hits.next().map(free).unwrap_or_default());
    if start != end {
        return Err(format!("free memory: {start} KiB before the {lives} lives, {end} KiB after"));
    }
    Ok(())
}

/// Rounds of `smp-many-lives`, each of [`GUESTS`] two-vCPU guests at once.
const ROUNDS: usize = 100;
const GUESTS: usize = 8;

/// `info`, then `ROUNDS` times: create the eight `smp8-N` guests paused, unpause the
/// eight at once (typed in one go: every destruction comes after it), and wait for eight
/// destructions (each a quick life: its second vCPU up, IPIs, down, power off); then
/// `info`, `audit`, `shutdown`.
fn many_lives_input() -> &'static [&'static str] {
    const CREATE: [&str; GUESTS] = [
        "xl create -p smp8-1.cfg",
        "xl create -p smp8-2.cfg",
        "xl create -p smp8-3.cfg",
        "xl create -p smp8-4.cfg",
        "xl create -p smp8-5.cfg",
        "xl create -p smp8-6.cfg",
        "xl create -p smp8-7.cfg",
        "xl create -p smp8-8.cfg",
    ];
    const UNPAUSE: &str = type_raw!("xl unpause smp8-1\nxl unpause smp8-2\nxl unpause smp8-3\nxl unpause smp8-4\nxl unpause smp8-5\nxl unpause smp8-6\nxl unpause smp8-7\nxl unpause smp8-8\n");
    let mut input = vec!["info"];
    for _ in 0..ROUNDS {
        input.extend(CREATE);
        input.push(UNPAUSE);
        // Each wait takes the next destruction after the one before, in any order.
        input.extend([wait_for!(r"\(mk\) d[0-9]+ \(smp8-[1-8]\) destroyed"); GUESTS]);
    }
    input.extend(["info", "audit", "shutdown"]);
    Box::leak(input.into_boxed_slice())
}

/// Every life ended well (a quick life's line each), and the free memory after is what it
/// was before.
fn many_lives_balanced(input: &CheckInput) -> Result<(), String> {
    let lives = input.lines.iter().filter(|l| l.contains("] smp: quick: vCPU 1 up, 10 IPI round trips, down")).count();
    if lives != ROUNDS * GUESTS {
        return Err(format!("{lives} lives ended well, expected {}", ROUNDS * GUESTS));
    }
    free_memory_unchanged(input, ROUNDS * GUESTS)
}

/// The machine's CPUs brought up from ACPI's MADT, as many as QEMU has.
fn cpus_boot(name: &'static str, cpus: u32, expect: &'static [&'static str]) -> Scenario {
    Scenario {
        name,
        cpus,
        input: &["info", "shutdown"],
        expect,
        forbid: &["PANIC", "did not start", "no ACPI processor table"],
        ..DEFAULT
    }
}

/// The scenarios of the multi-vCPU part of the scheduling issue.
pub fn scenarios() -> Vec<Scenario> {
    vec![
    cpus_boot("smp-cpus-one", 1, &[r"\(mk\) cpus: 1 online of 1 in the MADT \(APIC IDs \[0\]\)", r"^cpus: 1 at [0-9]+ MHz$"]),
    cpus_boot("smp-cpus-four", 4, &[r"\(mk\) cpus: 4 online of 4 in the MADT \(APIC IDs \[0, 1, 2, 3\]\)", r"^cpus: 4 at [0-9]+ MHz$"]),
    Scenario {
        name: "smp-two-vcpus",
        modules: &[Image::Guest("smp"), Image::Config("smp.cfg")],
        input: &[
            // Created paused: vCPU 0 has its state and is up, vCPU 1 is down until the
            // guest brings it up.
            "xl create -p smp.cfg",
            "xl vcpu-list smp",
            "xl unpause smp",
            wait_for!(r"\[smp\] TESTS DONE"),
            wait_for!(r"\(mk\) d1 \(smp\) destroyed"),
            "audit",
            "shutdown",
        ],
        expect: &[
            r"\(mk\) d1 \(smp\) created: 2 vCPU\(s\)",
            r"^Name +ID +VCPU +CPU State +Time\(s\) Affinity \(Hard / Soft\)$",
            r"^smp +1 +0 +[01] +--- +0\.0 all / all$",
            r"^smp +1 +1 +- +--p +0\.0 all / all$",
            r"\[smp\] TEST no_state_no_up PASS",
            r"\[smp\] TEST past_the_vcpus PASS",
            r"\[smp\] TEST hostile_contexts_refused PASS",
            r"\[smp\] TEST up PASS",
            r"\[smp\] TEST tlb_unmap_faults_on_the_other_vcpu PASS",
            r"\[smp\] TEST initialise_twice_eexist PASS",
            r"\[smp\] smp: primes below 200000: 9592 on vCPU 0 \+ 8392 on vCPU 1 in [0-9]+ ms",
            r"\[smp\] TEST split_work PASS",
            r"\[smp\] smp: [0-9]+ ms of running time on the two vCPUs in [0-9]+ ms",
            r"\[smp\] TEST both_vcpus_at_once PASS",
            r"\[smp\] TEST gdt_from_context PASS",
            r"\[smp\] TEST clock_of_vcpu_1 PASS",
            r"\[smp\] smp: IPI round trip between the vCPUs: [0-9]+ cycles \(mean of 1000\)",
            r"\[smp\] TEST down PASS",
            r"\[smp\] TEST last_vcpu_stays_up PASS",
            r"\[smp\] TEST up_again PASS",
            r"\[smp\] TEST down_other PASS",
            r"\[smp\] TESTS DONE 14 passed, 0 failed",
            r"audit: ok: 1 domains",
        ],
        forbid: &[r"FAIL", r"crashed"],
        timeout: Duration::from_secs(60),
        ..DEFAULT
    }, Scenario {
        name: "smp-one-cpu",
        cpus: 1,
        modules: &[Image::Guest("smp"), Image::Config("smp-one-cpu.cfg")],
        // The same guest on one CPU: its vCPUs take turns, never run at once.
        input: &["xl create smp-one-cpu.cfg", wait_for!(r"\[smp\] TESTS DONE"), wait_for!(r"\(mk\) d1 \(smp\) destroyed"), "audit", "shutdown"],
        expect: &[r"\[smp\] TEST split_work PASS", r"\[smp\] TEST both_vcpus_at_once PASS", r"\[smp\] TESTS DONE 14 passed, 0 failed", r"audit: ok: 1 domains"],
        forbid: &[r"FAIL", r"crashed"],
        timeout: Duration::from_secs(60),
        ..DEFAULT
    }, Scenario {
        name: "smp-pinning",
        modules: &[Image::Guest("cpuhog"), Image::Config("hog-pinned.cfg"), Image::Config("hog-a.cfg"), Image::Config("hog-bad-cpus.cfg")],
        // A guest pinned to CPU 1 by its config runs there; `xl vcpu-pin` moves it to CPU
        // 0 and another to CPU 1; lists with no online CPU, a vCPU it lacks and a bad
        // config line are refused.
        input: &[
            "xl create hog-pinned.cfg",
            "xl create hog-a.cfg",
            sleep_ms!(300),
            "xl vcpu-list hog-pinned",
            "xl vcpu-pin hog-pinned 0 0",
            "xl vcpu-pin hog-a all 1",
            sleep_ms!(300),
            "xl vcpu-list",
            "xl vcpu-pin hog-a 0 7",
            "xl vcpu-pin hog-a 1 0",
            "xl create hog-bad-cpus.cfg",
            "xl destroy hog-pinned",
            "xl destroy hog-a",
            "audit",
            "shutdown",
        ],
        expect: &[
            r"^hog-pinned +[0-9]+ +0 +1 +[-r][-b]- +[0-9]+\.[0-9] 1 / all$",
            r"^xl: hog-pinned \([0-9]+\) vCPU 0 may run on CPUs 0$",
            r"^xl: hog-a \([0-9]+\) vCPU 0 may run on CPUs 1$",
            r"^hog-pinned +[0-9]+ +0 +0 +[-r][-b]- +[0-9]+\.[0-9] 0 / all$",
            r"^hog-a +[0-9]+ +0 +1 +[-r][-b]- +[0-9]+\.[0-9] 1 / all$",
            r"^xl vcpu-pin: hog-a \([0-9]+\) vCPU 0: no CPU of '7' is online \(the machine has 2\)$",
            r"^xl vcpu-pin: hog-a \([0-9]+\) has no vCPU '1' \(it has 1\)$",
            r"^xl: hog-bad-cpus.cfg:5: cpus: '3-1': the range runs backwards$",
            r"audit: ok: 1 domains",
        ],
        forbid: &[r"crashed", "PANIC"],
        timeout: Duration::from_secs(60),
        ..DEFAULT
    }, Scenario {
        name: "smp-many-lives",
        modules: &[
            Image::Guest("smp"),
            Image::Config("smp8-1.cfg"),
            Image::Config("smp8-2.cfg"),
            Image::Config("smp8-3.cfg"),
            Image::Config("smp8-4.cfg"),
            Image::Config("smp8-5.cfg"),
            Image::Config("smp8-6.cfg"),
            Image::Config("smp8-7.cfg"),
            Image::Config("smp8-8.cfg"),
        ],
        // Eight guests of two vCPUs at once, created and ended 100 times: nothing is left
        // (free memory as before, the audit).
        input: many_lives_input(),
        expect: &[INFO_FREE, INFO_FREE, r"audit: ok: 1 domains"],
        forbid: &[r"crashed", "PANIC", r"smp: quick: (events|memory|bind_ipi|starting|send|vCPU 1 did not)"],
        check: Some(many_lives_balanced),
        timeout: Duration::from_secs(600),
        ..DEFAULT
    }, Scenario {
        name: "smp-lifecycle",
        modules: &[Image::Guest("smp"), Image::Config("smp.cfg")],
        // A two-vCPU guest created and ended 20 times: each brings its second vCPU up and
        // down; nothing is left (free memory as before, the audit).
        input: lifecycle_input(),
        expect: &[INFO_FREE, r"\[smp\] TESTS DONE 14 passed, 0 failed", INFO_FREE, r"audit: ok: 1 domains"],
        forbid: &[r"FAIL", r"crashed", "PANIC"],
        check: Some(lifecycle_balanced),
        timeout: Duration::from_secs(120),
        ..DEFAULT
    }]
}
