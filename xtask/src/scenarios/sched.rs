//! The schedulers: the credit scheduler's weights and caps measured in QEMU, the round
//! robin kept as `sched=rr`.

use super::{Image, Scenario, DEFAULT};
use crate::expect::CheckInput;
use std::time::Duration;

/// The scenarios of the scheduling issue.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "sched-credit-shares",
            alone: true,
            // The shares of one CPU (with two, each hog would have one to itself).
            cpus: 1,
            modules: &[Image::Guest("cpuhog"), Image::Config("hog-a.cfg"), Image::Config("hog-b.cfg"), Image::Config("hog-c.cfg")],
            // Three CPU-bound guests: weights 256 and 512, and one capped at 25% (with a
            // weight so large that only the cap holds it back). Over 10 s of system time
            // the first two share what the third leaves 1:2, and the third gets 25%.
            input: &[
                "xl create hog-a.cfg",
                "xl create hog-b.cfg",
                "xl create hog-c.cfg",
                "xl sched-credit",
                "xl sched-credit -d hog-a -w 0",
                "xl sched-credit -d hog-a -c 101",
                "xl sched-credit -d hog-a -w many",
                sleep_ms!(13000),
                "xl destroy hog-a",
                "xl destroy hog-b",
                "xl destroy hog-c",
                "audit",
                "shutdown",
            ],
            expect: &[
                r"scheduler: credit",
                r"^hog-a +[0-9]+ +256 +0$",
                r"^hog-b +[0-9]+ +512 +0$",
                r"^hog-c +[0-9]+ +65535 +25$",
                r"^xl sched-credit: Cpu weight out of range, valid values are within range from 1 to 65535$",
                r"^xl sched-credit: Cpu cap out of range, valid range is from 0 to 100 for specified number of vcpus$",
                r"^xl sched-credit: -w: 'many' is not a number$",
                r"audit: ok: 1 domains",
                r"dom0: powering off",
            ],
            forbid: &[r"crashed", r"runstate:"],
            check: Some(shares_hold),
            timeout: Duration::from_secs(90),
            ..DEFAULT
        },
        Scenario {
            name: "sched-rtds",
            alone: true,
            // One CPU shared between the reservation and the spinners, on an instruction
            // clock: a loaded host that stops QEMU for longer than the reservation's slack
            // would otherwise make the machine miss deadlines the scheduler did not.
            cpus: 1,
            accel: crate::qemu::Accel::TcgInstructionClock,
            xen_cmdline: "sched=rtds",
            modules: &[
                Image::Guest("cpuhog"),
                Image::Config("hog-rt.cfg"),
                Image::Config("hog-a.cfg"),
                Image::Config("hog-b.cfg"),
                Image::Config("hog-c.cfg"),
                Image::Config("hog-big.cfg"),
            ],
            // A guest reserved 2 ms every 10 ms (no extra time) beside three spinners in
            // best-effort time: over 10 s it gets its 20% and misses no deadline, not even
            // while dom0 builds and destroys a 64 MiB domain (whose teardown goes in
            // bounded steps). A set of reservations past the CPU is refused by admission
            // control.
            input: &[
                "xl create hog-rt.cfg",
                "xl sched-rtds -d hog-rt -p 10000 -b 2000 -e 0",
                "xl create hog-a.cfg",
                "xl create hog-b.cfg",
                "xl create hog-c.cfg",
                "xl sched-rtds -d hog-a -p 10000 -b 9000",
                "xl sched-rtds -d hog-a -p 5 -b 5",
                // The waits are in the machine's time, read from the reservation's own
                // run time (20% of the time since it started, and some 0.1-0.5 s it ran
                // before the spinners): about 3 s, 4 s and 12 s after the spinners start.
                wait_for!(r"^\[hog-rt\] cpuhog: at [0-9]+ ran (1[0-9]{3}|[2-9][0-9]{3})$"),
                "xl create hog-big.cfg",
                wait_for!(r"^\[hog-rt\] cpuhog: at [0-9]+ ran (1[2-9][0-9]{2}|[2-9][0-9]{3})$"),
                "xl destroy hog-big",
                wait_for!(r"^\[hog-rt\] cpuhog: at [0-9]+ ran (2[89][0-9]{2}|[3-9][0-9]{3})$"),
                "xl sched-rtds",
                "xl destroy hog-rt",
                "xl destroy hog-a",
                "xl destroy hog-b",
                "xl destroy hog-c",
                "audit",
                "shutdown",
            ],
            expect: &[
                r"scheduler: rtds",
                r"^xl sched-rtds: hog-a \([0-9]+\): refused: the reservations would need more than the CPU \(admission control\)$",
                r"^xl sched-rtds: the period must be at least 10 us$",
                r"\(mk\) d[0-9]+ \(hog-big\) destroyed: 16385 frames returned",
                r"^hog-rt +[0-9]+ +10000 +2000 +no +0$",
                r"^hog-a +[0-9]+ +10000 +- +yes +0$",
                r"audit: ok: 1 domains",
                r"dom0: powering off",
            ],
            forbid: &[r"crashed", r"runstate:"],
            check: Some(reservation_held),
            timeout: Duration::from_secs(90),
            ..DEFAULT
        },
        Scenario {
            name: "sched-rr",
            xen_cmdline: "sched=rr",
            modules: &[Image::Guest("cpuhog"), Image::Config("hog-a.cfg")],
            // Round robin is kept: a config's weight is not applied (as libxl leaves another
            // scheduler's parameters), and the toolstack says the credit scheduler is not
            // running.
            input: &["xl create hog-a.cfg", "xl sched-credit -d hog-a", "xl destroy hog-a", "audit", "shutdown"],
            expect: &[
                r"scheduler: round robin",
                r"xl: domain hog-a \(1\) created",
                r"^xl sched-credit: hog-a \([0-9]+\): refused: the credit scheduler is not the one running",
                r"audit: ok",
            ],
            forbid: &[r"crashed"],
            ..DEFAULT
        },
        Scenario {
            name: "sched-rtds-config",
            xen_cmdline: "sched=rtds",
            modules: &[Image::Guest("cpuhog"), Image::Config("hog-edf.cfg"), Image::Config("hog-greedy.cfg")],
            // The reservation comes from the config (period=, budget=, extratime=); one the
            // CPU cannot meet beside it is refused at creation, and the domain with it.
            input: &["xl create hog-edf.cfg", "xl create hog-greedy.cfg", "xl sched-rtds", "xl destroy hog-edf", "audit", "shutdown"],
            expect: &[
                r"^xl: domain hog-edf \([0-9]+\) created$",
                r"^xl: creating 'hog-greedy' failed while setting its scheduling parameters: .*; domain [0-9]+ destroyed$",
                r"^hog-edf +[0-9]+ +10000 +3000 +no +[0-9]+$",
                r"audit: ok: 1 domains",
            ],
            forbid: &[r"^hog-greedy +[0-9]"],
            ..DEFAULT
        },
        Scenario {
            name: "sched-io-latency",
            alone: true,
            modules: &[Image::Guest("cpuhog"), Image::Guest("pingpong"), Image::Config("hog-a.cfg"), Image::Config("hog-b.cfg"), Image::Config("hog-c.cfg"), Image::Config("ping-load.cfg"), Image::Config("pong-load.cfg")],
            // Two guests bouncing events (one round trip every 2 ms: an I/O-style load) while
            // three CPU-bound ones spin: each woken side is
            // BOOSTed past the spinners, so a round trip stays far below a 10 ms slice (the
            // check: p99 under 5 ms).
            input: &[
                "xl create hog-a.cfg",
                "xl create hog-b.cfg",
                "xl create hog-c.cfg",
                "xl create ping-load.cfg",
                "xl create pong-load.cfg",
                // The round trips' line; the bench phases after it (yield loops) are not
                // wanted beside the spinners, and the guests are destroyed.
                wait_for!(r"\[ping\] pingpong: round trips: "),
                "xl destroy hog-a",
                "xl destroy hog-b",
                "xl destroy hog-c",
                "xl destroy ping",
                "xl destroy pong",
                "audit",
                "shutdown",
            ],
            expect: &[r"\[ping\] pingpong: round trips: p50 ([0-9]+) us, p99 ([0-9]+) us, max ([0-9]+) us$", r"audit: ok: 1 domains"],
            forbid: &[r"timed out", "crashed"],
            check: Some(io_latency_under_load),
            timeout: Duration::from_secs(90),
            ..DEFAULT
        },
    ]
}

/// `(system ms, ran ms)` samples of the `cpuhog` guest `name` in `lines`.
pub fn samples(lines: &[String], name: &str) -> Vec<(u64, u64)> {
    let prefix = format!("[{name}] cpuhog: at ");
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (at, ran) = rest.trim().split_once(" ran ")?;
            Some((at.parse().ok()?, ran.parse().ok()?))
        })
        .collect()
}

/// When the last of `names` printed its first sample (ms of system time).
pub fn all_started(lines: &[String], names: &[&str]) -> u64 {
    names.iter().map(|n| samples(lines, n).first().map_or(u64::MAX, |s| s.0)).max().unwrap_or(u64::MAX)
}

/// The share of the CPU `name` got between system times `from` and `to` (ms), from its
/// samples in `lines`.
pub fn cpu_share(lines: &[String], name: &str, from: u64, to: u64) -> Result<f64, String> {
    let s = samples(lines, name);
    let first = s.iter().find(|&&(at, _)| at >= from).ok_or(format!("{name}: no sample after {from} ms"))?;
    let last = s.iter().rev().find(|&&(at, _)| at <= to).ok_or(format!("{name}: no sample before {to} ms"))?;
    if last.0 < first.0 + 9_000 {
        return Err(format!("{name}: samples cover {} ms only", last.0.saturating_sub(first.0)));
    }
    Ok((last.1 - first.1) as f64 / (last.0 - first.0) as f64)
}

/// 1:2 within 5% between weights 256 and 512, and the 25% cap within 5% of itself.
fn shares_hold(input: &CheckInput) -> Result<(), String> {
    let start = all_started(input.lines, &["hog-a", "hog-b", "hog-c"]);
    let (from, to) = (start.saturating_add(1000), start.saturating_add(11_500));
    let share = |n| cpu_share(input.lines, n, from, to);
    let (a, b, c) = (share("hog-a")?, share("hog-b")?, share("hog-c")?);
    let ratio = b / a;
    println!("    shares over 10 s: hog-a {:.1}%, hog-b {:.1}%, hog-c {:.1}% (cap 25); b/a {ratio:.3}", a * 100.0, b * 100.0, c * 100.0);
    if (ratio - 2.0).abs() > 0.1 {
        return Err(format!("weights 256:512 gave 1:{ratio:.3}"));
    }
    if (c - 0.25).abs() > 0.0125 {
        return Err(format!("cap 25% gave {:.1}%", c * 100.0));
    }
    Ok(())
}

/// The reserved guest got its 2 ms in 10 (20%, within 5% of it), no more, and the three
/// best-effort spinners shared what was left alike (within 10% of each other).
fn reservation_held(input: &CheckInput) -> Result<(), String> {
    let names = ["hog-rt", "hog-a", "hog-b", "hog-c"];
    let start = all_started(input.lines, &names);
    let (from, to) = (start.saturating_add(500), start.saturating_add(11_000));
    let rt = cpu_share(input.lines, "hog-rt", from, to)?;
    let rest: Vec<f64> = names[1..].iter().map(|n| cpu_share(input.lines, n, from, to)).collect::<Result<_, _>>()?;
    println!("    shares over 10 s: hog-rt {:.1}% (reserved 20%), best effort {:.1}% {:.1}% {:.1}%", rt * 100.0, rest[0] * 100.0, rest[1] * 100.0, rest[2] * 100.0);
    if (rt - 0.2).abs() > 0.01 {
        return Err(format!("the reservation of 20% gave {:.1}%", rt * 100.0));
    }
    let (lo, hi) = rest.iter().fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    if hi > lo * 1.1 {
        return Err(format!("best-effort shares {rest:?} differ by more than 10%"));
    }
    Ok(())
}

/// The 99th percentile of the event round trip under load stays below 5 ms.
fn io_latency_under_load(input: &CheckInput) -> Result<(), String> {
    let p99: u64 = input.group("round trips: p50", 2)?.parse().map_err(|e| format!("{e}"))?;
    if p99 >= 5000 {
        return Err(format!("p99 of the event round trip under load is {p99} us (limit 5000 us)"));
    }
    Ok(())
}
