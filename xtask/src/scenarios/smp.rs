//! Guests with several vCPUs: brought up with `VCPUOP_initialise`/`up`, sharing work,
//! exchanging IPIs, taken down.

use super::{Image, Scenario, DEFAULT};
use std::time::Duration;

/// The scenarios of the multi-vCPU part of the scheduling issue.
pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
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
            r"^smp +1 +0 +0 +--- +0\.0 all / all$",
            r"^smp +1 +1 +- +--p +0\.0 all / all$",
            r"\[smp\] TEST no_state_no_up PASS",
            r"\[smp\] TEST past_the_vcpus PASS",
            r"\[smp\] TEST up PASS",
            r"\[smp\] TEST initialise_twice_eexist PASS",
            r"\[smp\] smp: primes below 200000: 9592 on vCPU 0 \+ 8392 on vCPU 1 in [0-9]+ ms",
            r"\[smp\] TEST split_work PASS",
            r"\[smp\] smp: IPI round trip between the vCPUs: [0-9]+ cycles \(mean of 1000\)",
            r"\[smp\] TEST down PASS",
            r"\[smp\] TEST last_vcpu_stays_up PASS",
            r"\[smp\] TEST up_again PASS",
            r"\[smp\] TEST down_other PASS",
            r"\[smp\] TESTS DONE 9 passed, 0 failed",
            r"audit: ok: 1 domains",
        ],
        forbid: &[r"FAIL", r"crashed"],
        timeout: Duration::from_secs(60),
        ..DEFAULT
    }]
}
