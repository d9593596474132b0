//! `cargo xtask fuzz`: a campaign of the hostile-guest fuzzer (test-guests' `fuzz`). dom0
//! runs a bystander (`counter`) and the fuzzer, whose config restarts it after every life;
//! every few seconds dom0 asks the microkernel to audit its accounting. At the end both
//! guests are destroyed and the campaign is judged from the serial console:
//! - no microkernel panic, no dom0 crash;
//! - every audit ok, and the bystander counted between every two audits;
//! - dom0's free memory at the end equal to what it was before the guests.
//!
//! A panic is reported with the seed of the life that was running (`lifeseed=` replays
//! it). The figures: actions and hypercalls per second, seconds survived, lives, and
//! distinct hypercall sub-ops reached.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::build::build_kernels;
use crate::deps;
use crate::qemu::{run_scripted, Accel, Boot, InputMode, Module, QemuConfig, Serial, PROMPT, SLEEP_MS, WAIT_FOR};

/// Options of `cargo xtask fuzz`.
#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// How long the campaign runs, in seconds.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// The campaign seed (each life mixes in its domain id).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Actions per life.
    #[arg(long, default_value_t = 3000)]
    pub calls: u64,
    /// Run the fuzzer as dom0, so that the privileged operations are fuzzed too: one life
    /// per boot (dom0's end is the machine's), seeds `--seed`, `--seed + 1`, ...
    #[arg(long)]
    pub dom0: bool,
    /// Judge the console log of an earlier campaign instead of running one (its
    /// `--seconds` and `--calls` must be given again for the rates).
    #[arg(long)]
    pub judge: Option<std::path::PathBuf>,
}

/// Seconds between two audits.
const AUDIT_EVERY_S: u64 = 15;

/// The xl config of the campaign's fuzzer.
fn config(seed: u64, calls: u64) -> String {
    format!(
        "# Written by cargo xtask fuzz.\nname = \"fuzz\"\nkernel = \"fuzz\"\nmemory = 16\nvcpus = 1\n\
         cmdline = \"seed={seed} calls={calls}\"\non_poweroff = \"restart\"\non_crash = \"restart\"\n"
    )
}

/// What dom0 is told: start the guests, audit every [`AUDIT_EVERY_S`] seconds, stop.
fn inputs(seconds: u64) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "info".into(),
        "xl create counter.cfg".into(),
        format!("{WAIT_FOR}\\[counter\\] counter: "),
        "xl create fuzz.cfg".into(),
    ];
    let rounds = seconds.div_ceil(AUDIT_EVERY_S).max(1);
    for _ in 0..rounds {
        v.push(format!("{SLEEP_MS}{}", seconds.min(AUDIT_EVERY_S) * 1000));
        v.push("audit".into());
    }
    v.extend(["xl destroy fuzz", "xl destroy counter", "audit", "info", "shutdown"].map(String::from));
    v
}

/// What a campaign's console says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Lives begun.
    pub lives: u64,
    /// Lives that ran all their actions.
    pub lives_done: u64,
    /// Actions run (each life's last count).
    pub actions: u64,
    /// Hypercalls made by the lives that ran to the end.
    pub hypercalls: u64,
    /// Distinct (hypercall, sub-op) pairs reached over all lives.
    pub subops: usize,
    /// Audits that passed.
    pub audits_ok: u64,
    /// What went wrong: each a line for the report.
    pub failures: Vec<String>,
}

fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn free_kib(line: &str) -> Option<u64> {
    line.starts_with("memory: total ").then(|| number_after(line, "free "))?
}

/// Judges a campaign of lives of `calls` actions from its console lines. A life's own
/// lines may be garbled (the hypervisor writes where the fuzzer's random arguments point,
/// its own memory included): counts past `calls` are not counted.
pub fn judge(lines: &[String], calls: u64) -> Report {
    let mut r = Report::default();
    let mut subops: BTreeSet<String> = BTreeSet::new();
    let mut life_seed = String::new();
    let mut life_actions = 0;
    let mut counted_since_audit = false;
    let mut free: Vec<u64> = Vec::new();
    for line in lines {
        if let Some(at) = line.find("fuzz: life seed ") {
            r.lives += 1;
            r.actions += life_actions;
            life_actions = 0;
            life_seed = line[at + "fuzz: life seed ".len()..].split(' ').next().unwrap_or("").to_string();
        } else if line.contains("fuzz: life done: ") {
            let done = number_after(line, "life done: ").filter(|&n| n == calls);
            let hypercalls = number_after(line, "actions, ").filter(|&n| n <= calls * 64);
            if let (Some(done), Some(h)) = (done, hypercalls) {
                r.lives_done += 1;
                life_actions = done;
                r.hypercalls += h;
            }
        } else if line.contains("] fuzz: ") && line.contains(" actions, ") {
            life_actions = number_after(line, "fuzz: ").filter(|&n| n <= calls).unwrap_or(life_actions);
        } else if let Some(at) = line.find("fuzz: sub-ops") {
            subops.extend(line[at + "fuzz: sub-ops".len()..].split_whitespace().map(String::from));
        } else if line.contains("[counter] counter: ") {
            counted_since_audit = true;
        } else if line.starts_with("audit: ok: ") {
            r.audits_ok += 1;
            // The last audit comes after the bystander is gone.
            if !counted_since_audit && !line.contains(": ok: 1 domains") {
                r.failures.push(format!("the bystander did not count between two audits (before audit {})", r.audits_ok));
            }
            counted_since_audit = false;
        } else if line.starts_with("audit: FAILED") || line.starts_with("audit: not run") {
            r.failures.push(format!("{line} (life seed {life_seed})"));
            counted_since_audit = false;
        } else if line.contains("(mk) PANIC") {
            r.failures.push(format!("microkernel panic during the life with seed {life_seed}: {line}"));
        } else if line.contains("(mk) d0 crashed") || line.starts_with("dom0: panic") {
            r.failures.push(format!("dom0 crashed during the life with seed {life_seed}: {line}"));
        } else if line.contains("counter") && line.contains("crashed") {
            r.failures.push(format!("the bystander crashed: {line}"));
        } else if let Some(kib) = free_kib(line) {
            free.push(kib);
        }
    }
    r.actions += life_actions;
    r.subops = subops.len();
    match (free.first(), free.last()) {
        (Some(a), Some(b)) if free.len() >= 2 && a != b => {
            r.failures.push(format!("dom0's free memory was {a} KiB before the guests and {b} KiB after them"))
        }
        _ if free.len() < 2 => r.failures.push("the campaign did not reach its final `info`".into()),
        _ => {}
    }
    if r.lives == 0 {
        r.failures.push("the fuzzer never started".into());
    }
    r
}

pub fn main(args: FuzzArgs) -> Result<ExitCode> {
    if let Some(log) = &args.judge {
        let text = std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
        let lines: Vec<String> = text.lines().map(String::from).collect();
        let report = judge(&lines, args.calls);
        print_report(&report, args.seconds, args.calls, log);
        return Ok(if report.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let layout = build_kernels()?;
    deps::ensure_tools(deps::QEMU)?;
    if args.dom0 {
        return dom0_campaign(&layout, &args);
    }
    let dir = layout.boot_dir().join("fuzz");
    std::fs::create_dir_all(&dir).context("creating target/boot/fuzz")?;
    let cfg = dir.join("fuzz.cfg");
    std::fs::write(&cfg, config(args.seed, args.calls)).context("writing the fuzzer's config")?;
    let configs = crate::test::configs_dir(&layout);
    let modules = vec![
        Module { path: layout.kernel("dom0"), cmdline: String::new() },
        Module::named(&layout.kernel("counter")),
        Module::named(&layout.kernel("fuzz")),
        Module::named(&configs.join("counter.cfg")),
        Module::named(&cfg),
    ];
    let qemu = QemuConfig {
        nic: None,
        boot: Boot::Kernel { kernel: layout.microkernel_elf32(), xen_cmdline: String::new(), modules },
        memory_mib: 256,
        cpus: crate::qemu::DEFAULT_CPUS,
        accel: Accel::Tcg,
        serial: Serial::Stdio,
        disk: None,
    };
    eprintln!("xtask: fuzzing for {} s (seed {}, {} actions per life)", args.seconds, args.seed, args.calls);
    let timeout = Duration::from_secs(args.seconds + 180);
    let session = run_scripted(qemu.command()?, PROMPT, &inputs(args.seconds), InputMode::AtPrompts, timeout)?;
    let lines = session.lines();
    let log = dir.join("console.log");
    std::fs::write(&log, lines.join("\n") + "\n").context("writing the console log")?;
    let mut report = judge(&lines, args.calls);
    if session.timed_out {
        report.failures.push(format!("the campaign did not end within {} s", timeout.as_secs()));
    }
    print_report(&report, args.seconds, args.calls, &log);
    Ok(if report.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// How one boot of the fuzzer as dom0 ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Dom0Life {
    /// It ran its actions and the audit after them held: the hypercalls it made.
    Done(u64),
    /// It ended itself (a crash it brought on itself, a shutdown a random call asked for,
    /// its watchdog when it stopped making progress).
    Ended,
    /// What went wrong with the machine: a panic, a failed audit, no end.
    Failed(String),
}

/// Judges one boot of the fuzzer as dom0 of `calls` actions from its console lines.
pub fn judge_dom0(lines: &[String], calls: u64) -> Dom0Life {
    if let Some(l) = lines.iter().find(|l| l.contains("(mk) PANIC")) {
        return Dom0Life::Failed(l.clone());
    }
    if let Some(l) = lines.iter().find(|l| l.starts_with("audit: FAILED") || l.contains("(mk) audit: ")) {
        return Dom0Life::Failed(l.clone());
    }
    let done = lines.iter().find(|l| l.contains("fuzz: life done: ") && number_after(l, "life done: ") == Some(calls));
    let stopped = lines.iter().any(|l| l.contains("(mk) d0 stopped") || l.contains("(mk) no runnable vCPU left"));
    match (done, stopped) {
        (Some(l), true) if lines.iter().any(|l| l.starts_with("audit: ok: ")) => {
            Dom0Life::Done(number_after(l, "actions, ").unwrap_or(0))
        }
        (Some(_), true) => Dom0Life::Failed("the life ran to the end but printed no audit".into()),
        (_, true) => Dom0Life::Ended,
        (_, false) => Dom0Life::Failed("the machine did not stop".into()),
    }
}

fn dom0_campaign(layout: &crate::build::Layout, args: &FuzzArgs) -> Result<ExitCode> {
    let start = std::time::Instant::now();
    let (mut boots, mut done, mut hypercalls) = (0u64, 0u64, 0u64);
    let mut failures = Vec::new();
    let mut seed = args.seed;
    eprintln!("xtask: fuzzing as dom0 for {} s (seeds from {}, {} actions per boot)", args.seconds, args.seed, args.calls);
    while start.elapsed() < Duration::from_secs(args.seconds) {
        let modules = vec![Module { path: layout.kernel("fuzz"), cmdline: format!("seed={seed} calls={}", args.calls) }];
        let qemu = QemuConfig {
            nic: None,
            boot: Boot::Kernel { kernel: layout.microkernel_elf32(), xen_cmdline: String::new(), modules },
            memory_mib: 256,
            cpus: crate::qemu::DEFAULT_CPUS,
            accel: Accel::Tcg,
            serial: Serial::Stdio,
            disk: None,
        };
        let session = run_scripted(qemu.command()?, PROMPT, &[], InputMode::AtPrompts, Duration::from_secs(180))?;
        boots += 1;
        match judge_dom0(&session.lines(), args.calls) {
            Dom0Life::Done(h) => {
                done += 1;
                hypercalls += h;
            }
            Dom0Life::Ended => {}
            Dom0Life::Failed(why) => failures.push((seed, why)),
        }
        seed += 1;
    }
    let secs = start.elapsed().as_secs().max(1);
    println!("fuzz: as dom0, {secs} s survived: {}", if failures.is_empty() { "yes" } else { "NO" });
    println!("fuzz: {boots} boots, {done} ran all {} actions, {hypercalls} hypercalls in those ({:.0}/s)", args.calls, hypercalls as f64 / secs as f64);
    for (seed, why) in &failures {
        println!(
            "fuzz: FAILURE: seed {seed}: {why} (replay: cargo xtask run --dom0 target/x86_64-unknown-none/release/fuzz --cmdline \"seed={seed} calls={} verbose=1\")",
            args.calls
        );
    }
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_report(r: &Report, seconds: u64, calls: u64, log: &Path) {
    let per_s = |n: u64| n as f64 / seconds.max(1) as f64;
    println!("fuzz: {seconds} s survived: {}", if r.failures.is_empty() { "yes" } else { "NO" });
    println!("fuzz: {} lives ({} ran all their actions), {} actions ({:.0}/s)", r.lives, r.lives_done, r.actions, per_s(r.actions));
    // Lives that ended early did not say how many hypercalls they made: estimate from the
    // ratio of the lives that ran to the end.
    let done_actions = r.lives_done * calls;
    if done_actions > 0 {
        let ratio = r.hypercalls as f64 / done_actions as f64;
        let estimate = (r.actions as f64 * ratio) as u64;
        println!(
            "fuzz: about {estimate} hypercalls ({:.0}/s; {ratio:.2} per action in the {} lives that ran to the end, which made {})",
            per_s(estimate),
            r.lives_done,
            r.hypercalls
        );
    }
    println!("fuzz: {} distinct hypercall sub-ops reached", r.subops);
    println!("fuzz: {} audits ok", r.audits_ok);
    for f in &r.failures {
        println!("fuzz: FAILURE: {f}");
    }
    println!("fuzz: console log: {}", log.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    const GOOD: &str = "memory: total 1000 KiB (0 MiB), free 900 KiB (0 MiB)
[fuzz] fuzz: life seed 0xabc (seed 1, domain 2); replay with cmdline = \"lifeseed=0xabc\"
[counter] counter: 1
[fuzz] fuzz: 1000 actions, 50 sub-ops reached, 3 exceptions
[fuzz] fuzz: life done: 2000 actions, 1800 hypercalls, 900 refused, 60 sub-ops reached, 7 exceptions
[fuzz] fuzz: sub-ops 1.0 12.3 29.0
audit: ok: 3 domains, 1 frames owned, 1 page tables, 1 event channels, 0 grant mappings
[fuzz] fuzz: life seed 0xdef (seed 1, domain 3); replay with cmdline = \"lifeseed=0xdef\"
[fuzz] fuzz: 1000 actions, 40 sub-ops reached, 3 exceptions
(mk) d3 crashed: vector 14 #PF rip=0x1 error=0x0 cr2=0x0
[counter] counter: 2
[fuzz] fuzz: sub-ops 1.0 17.0
audit: ok: 3 domains, 1 frames owned, 1 page tables, 1 event channels, 0 grant mappings
audit: ok: 1 domains, 1 frames owned, 1 page tables, 1 event channels, 0 grant mappings
memory: total 1000 KiB (0 MiB), free 900 KiB (0 MiB)";

    #[test]
    fn a_good_campaign_is_counted() {
        let r = judge(&lines(GOOD), 2000);
        assert_eq!(r.failures, Vec::<String>::new());
        assert_eq!((r.lives, r.lives_done, r.actions, r.hypercalls, r.subops, r.audits_ok), (2, 1, 3000, 1800, 4, 3));
    }

    #[test]
    fn panics_audits_starvation_and_leaks_fail_it() {
        let bad = GOOD
            .replace("(mk) d3 crashed", "(mk) PANIC: microkernel fault")
            .replace("[counter] counter: 2", "")
            .replace("free 900 KiB (0 MiB)\n[fuzz]", "free 800 KiB (0 MiB)\n[fuzz]")
            .replacen("audit: ok: 3 domains, 1 frames owned, 1 page tables, 1 event channels, 0 grant mappings", "audit: FAILED: frames: x", 1);
        let r = judge(&lines(&bad), 2000);
        let text = r.failures.join("\n");
        assert!(text.contains("microkernel panic during the life with seed 0xdef"), "{text}");
        assert!(text.contains("audit: FAILED: frames: x (life seed 0xabc)"), "{text}");
        assert!(text.contains("did not count between two audits"), "{text}");
        assert!(text.contains("800 KiB before the guests and 900 KiB after"), "{text}");
    }

    #[test]
    fn garbled_counts_are_not_counted() {
        let garbled = GOOD.replace(
            "[fuzz] fuzz: 1000 actions, 40 sub-ops reached",
            "[fuzz] fuzz: life done: 18446744071562072992 actions, 6909862438335668240 hypercalls, 0 refused, 3 sub-ops reached, 1 exceptions\n[fuzz] fuzz: 99999999 actions, 40 sub-ops reached",
        );
        let r = judge(&lines(&garbled), 2000);
        assert_eq!((r.lives_done, r.actions, r.hypercalls), (1, 2000, 1800));
    }

    #[test]
    fn dom0_lives_are_judged() {
        let l = |t: &str| lines(t);
        assert_eq!(
            judge_dom0(&l("fuzz: life done: 2000 actions, 3422 hypercalls, 1 refused\naudit: ok: 1 domains\n(mk) d0 stopped; no domains left"), 2000),
            Dom0Life::Done(3422)
        );
        assert_eq!(judge_dom0(&l("(mk) d0 crashed: vector 14\n(mk) d0 stopped; no domains left"), 2000), Dom0Life::Ended);
        assert_eq!(judge_dom0(&l("(mk) d0 (Domain-0) shutdown: watchdog\n(mk) no runnable vCPU left; powering off"), 2000), Dom0Life::Ended);
        assert!(matches!(judge_dom0(&l("(mk) PANIC: microkernel fault\n"), 2000), Dom0Life::Failed(_)));
        assert!(matches!(judge_dom0(&l("fuzz: life done: 2000 actions, 3 hypercalls\naudit: FAILED: x\n(mk) d0 stopped"), 2000), Dom0Life::Failed(_)));
        assert!(matches!(judge_dom0(&l("fuzz: life seed 0x1"), 2000), Dom0Life::Failed(_)));
    }
}
