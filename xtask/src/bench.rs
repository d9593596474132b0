//! `cargo xtask bench`: runs the bench guest, a normal boot, dom0's domain-creation
//! benchmark, the two-domain event benchmark (`events`), the store round trips
//! (`store`), guests' TCP through the switch and the NIC (`net`), IPIs and switches
//! between a guest's vCPUs (`smp`) and the schedulers' shares and deadlines (`sched`),
//! writes
//! target/bench/latest.json.
//!
//! The bench guest and dom0's `bench-create` print
//! `BENCH <name> <value> <unit> [<baseline-name> <baseline-value>]` lines and `BENCH DONE`;
//! each figure is reported with its ratio to the baseline measured in the same run (under
//! TCG only ratios from one run mean much). Timing is never asserted.

use crate::build::{build_kernels_for_bench, Layout};
use crate::deps;
use crate::qemu::{
    run_scripted, Accel, Boot, InputMode, Module, QemuConfig, Serial, Session, PROMPT,
};
use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::Serialize;
use serde_json::Number;
use std::time::Duration;

mod events;
mod guests;
mod net;
mod scale;
mod sched;
mod smp;
mod store;

const BENCH_TIMEOUT: Duration = Duration::from_secs(300);
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
const CREATE_TIMEOUT: Duration = Duration::from_secs(240);
/// Memory of the usual boots, MiB.
const MEMORY_MIB: u32 = 256;
/// Memory of the creation benchmark, MiB: dom0 takes a quarter of what is free, the
/// idlers 4 MiB each.
const CREATE_MEMORY_MIB: u32 = 1024;
/// Domains `bench-create` makes and keeps running.
const CREATE_COUNT: u32 = 100;
/// The guest and its config (dom0/configs).
const IDLER: &str = "idler";
const IDLER_CONFIG: &str = "idler.cfg";

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// QEMU accelerator (figures under kvm and tcg are not comparable).
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    accel: Accel,
    /// Run one phase alone (its own boot, its baselines with it) and write
    /// target/bench/<phase>.json instead of latest.json.
    #[arg(long, value_enum)]
    only: Option<Phase>,
}

/// The phases that boot on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// Store round trips beside the event round trip through dom0.
    Store,
    /// Guests' TCP through the switch and the NIC.
    Net,
    /// The schedulers' shares and deadlines.
    Sched,
    /// IPIs and switches between a guest's vCPUs.
    Smp,
    /// Null hypercalls on two CPUs beside one; balancing an uneven load, pull and push.
    Scale,
    /// Event round trips between two domains beside the yield round trip.
    Events,
    /// The bench guest as dom0: hypercalls, page tables, traps, timers, grants.
    Guest,
}

/// Runs one phase alone and writes its records.
fn run_phase(layout: &Layout, accel: Accel, phase: Phase) -> Result<()> {
    let (name, records) = match phase {
        Phase::Store => ("store", store::run(layout, accel)?.records),
        Phase::Net => {
            let n = net::run(layout, accel)?;
            require_done(n.done, "the network bench client", &n.session)?;
            ("net", n.records)
        }
        Phase::Sched => ("sched", sched::run(layout, accel)?),
        Phase::Scale => ("scale", scale::run(layout, accel)?),
        Phase::Guest => {
            let b = boot(layout, accel, "bench", Vec::new(), MEMORY_MIB, &[], BENCH_TIMEOUT)?;
            let (records, done) = parse_bench(&b.lines())?;
            require_done(done, "the bench guest", &b)?;
            ("guest", records)
        }
        Phase::Events => {
            let r = events::run(layout, accel)?;
            require_done(r.done, "the pingpong guest", &r.session)?;
            ("events", r.records)
        }
        Phase::Smp => {
            let r = smp::run(layout, accel)?;
            require_done(r.done, "the smp bench guest", &r.session)?;
            ("smp", r.records)
        }
    };
    let dir = layout.target.join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    let json = serde_json::to_string_pretty(&records).context("encoding the records")?;
    std::fs::write(&path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    print!("{}", table(&records));
    println!("wrote {}", path.display());
    Ok(())
}

/// One figure of target/bench/latest.json.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// What was measured.
    pub name: String,
    /// The figure, as printed (integer or decimal).
    pub value: Number,
    /// `cycles`, `ms`...
    pub unit: String,
    /// The baseline's name, when the figure has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// The baseline's figure, same unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_value: Option<Number>,
    /// value / baseline_value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

impl Record {
    fn plain(name: &str, value: Number, unit: &str) -> Record {
        Record {
            name: name.into(),
            value,
            unit: unit.into(),
            baseline: None,
            baseline_value: None,
            ratio: None,
        }
    }
}

fn number(text: &str) -> Result<Number> {
    text.parse::<Number>()
        .with_context(|| format!("{text:?} is not a number"))
}

/// Parses the BENCH lines; the bool says whether `BENCH DONE` was seen. Values may be
/// integers or decimals, negative too (a wake-up before its deadline), in any unit.
/// `BENCH ERROR ...` lines are free text and are skipped (the run's log shows them).
pub fn parse_bench(lines: &[String]) -> Result<(Vec<Record>, bool)> {
    let line_re =
        Regex::new(r"^BENCH (\S+) (\S+) (\S+)(?: (\S+) (\S+))?\s*$").expect("valid regex");
    let mut records = Vec::new();
    for line in lines {
        let line = line.trim_end();
        if line == "BENCH DONE" {
            return Ok((records, true));
        }
        if line.starts_with("BENCH ERROR ") {
            continue;
        }
        let Some(caps) = line_re.captures(line) else {
            continue;
        };
        let value = number(&caps[2]).with_context(|| format!("in {line:?}"))?;
        let mut record = Record::plain(&caps[1], value, &caps[3]);
        if let (Some(name), Some(base)) = (caps.get(4), caps.get(5)) {
            let base = number(base.as_str()).with_context(|| format!("in {line:?}"))?;
            let ratio = match (record.value.as_f64(), base.as_f64()) {
                (Some(v), Some(b)) if b != 0.0 => Some(v / b),
                _ => None,
            };
            record.baseline = Some(name.as_str().into());
            record.baseline_value = Some(base);
            record.ratio = ratio;
        }
        records.push(record);
    }
    Ok((records, false))
}

/// The figures of a normal boot: dom0's own boot time and the host's wall time to the prompt.
pub fn boot_records(session: &Session) -> Vec<Record> {
    let up_re = Regex::new(r"dom0: up in ([0-9]+(?:\.[0-9]+)?) ms").expect("valid regex");
    let mut records = Vec::new();
    if let Some(ms) = session
        .lines()
        .iter()
        .find_map(|l| up_re.captures(l).and_then(|c| number(&c[1]).ok()))
    {
        records.push(Record::plain("boot_dom0_up", ms, "ms"));
    }
    if let Some(wall) = session.first_prompt {
        let ms = (wall.as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
        if let Some(ms) = Number::from_f64(ms) {
            records.push(Record::plain("boot_wall_to_prompt", ms, "ms"));
        }
    }
    records
}

/// A table of the records.
pub fn table(records: &[Record]) -> String {
    let mut out = format!(
        "{:<36} {:>14} {:<8} {:<40} {:>8}\n",
        "name", "value", "unit", "baseline", "ratio"
    );
    for r in records {
        let baseline = match (&r.baseline, &r.baseline_value) {
            (Some(name), Some(value)) => format!("{name} {value}"),
            _ => String::new(),
        };
        let ratio = r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default();
        out += &format!(
            "{:<36} {:>14} {:<8} {:<40} {:>8}\n",
            r.name,
            r.value.to_string(),
            r.unit,
            baseline,
            ratio
        );
    }
    out
}

/// Guest kernel `kernel` and the xl configs `configs` (from `xtask/configs`) as boot
/// modules, each checked to exist.
pub fn guest_modules(layout: &Layout, kernel: &str, configs: &[&str]) -> Result<Vec<Module>> {
    let mut paths = vec![layout.kernel(kernel)];
    paths.extend(configs.iter().map(|c| layout.root.join("xtask").join("configs").join(c)));
    paths
        .iter()
        .map(|path| if path.is_file() { Ok(Module::named(path)) } else { bail!("{} is missing", path.display()) })
        .collect()
}

/// Boots `dom0` (a kernel's name) with `modules` and `memory_mib` of RAM, typing `inputs`
/// at its prompts.
fn boot(
    layout: &Layout,
    accel: Accel,
    dom0: &str,
    modules: Vec<Module>,
    memory_mib: u32,
    inputs: &[String],
    timeout: Duration,
) -> Result<Session> {
    boot_with(layout, accel, "", dom0, modules, memory_mib, inputs, timeout)
}

/// As [`boot`], with the microkernel's command line.
#[allow(clippy::too_many_arguments)] // one boot's every setting
fn boot_with(
    layout: &Layout,
    accel: Accel,
    xen_cmdline: &str,
    dom0: &str,
    modules: Vec<Module>,
    memory_mib: u32,
    inputs: &[String],
    timeout: Duration,
) -> Result<Session> {
    boot_with_cpus(layout, accel, xen_cmdline, crate::qemu::DEFAULT_CPUS, dom0, modules, memory_mib, inputs, timeout)
}

/// As [`boot_with`], on a machine of `cpus` CPUs.
#[allow(clippy::too_many_arguments)] // one boot's every setting
fn boot_with_cpus(
    layout: &Layout,
    accel: Accel,
    xen_cmdline: &str,
    cpus: u32,
    dom0: &str,
    modules: Vec<Module>,
    memory_mib: u32,
    inputs: &[String],
    timeout: Duration,
) -> Result<Session> {
    let mut all = vec![Module {
        path: layout.kernel(dom0),
        cmdline: String::new(),
    }];
    all.extend(modules);
    let config = QemuConfig {
        nic: None,
        boot: Boot::Kernel {
            kernel: layout.microkernel_elf32(),
            xen_cmdline: xen_cmdline.to_string(),
            modules: all,
        },
        memory_mib,
        cpus,
        accel,
        serial: Serial::Stdio,
        disk: None,
    };
    run_scripted(
        config.command()?,
        PROMPT,
        inputs,
        InputMode::AtPrompts,
        timeout,
    )
}

fn tail(session: &Session) -> String {
    let lines = session.lines();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// `Ok` if `done`, else the error naming `what` did not finish, how the boot ended and its
/// last lines.
fn require_done(done: bool, what: &str, session: &Session) -> Result<()> {
    if !done {
        bail!("{what} did not finish ({}); its last lines:\n{}", ending(session), tail(session));
    }
    Ok(())
}

/// Why a session gave no `BENCH DONE`: a timeout or its exit status.
fn ending(session: &Session) -> String {
    if session.timed_out {
        "timed out".to_string()
    } else {
        format!("exit status {:?}", session.status)
    }
}

/// The modules of the creation benchmark: the idler kernel and its config, by file name.
fn create_modules(layout: &Layout) -> Result<Vec<Module>> {
    let kernel = layout.kernel(IDLER);
    let config = layout.root.join("dom0").join("configs").join(IDLER_CONFIG);
    for path in [&kernel, &config] {
        if !path.is_file() {
            bail!("{} is missing", path.display());
        }
    }
    Ok(vec![Module::named(&kernel), Module::named(&config)])
}

/// Runs both boots, writes the JSON, prints the table.
pub fn main(args: BenchArgs) -> Result<()> {
    let layout = build_kernels_for_bench()?;
    deps::ensure_tools(deps::QEMU)?;
    if let Some(phase) = args.only {
        return run_phase(&layout, args.accel, phase);
    }

    eprintln!(
        "xtask: running the bench guest (up to {} s)",
        BENCH_TIMEOUT.as_secs()
    );
    let bench = boot(
        &layout,
        args.accel,
        "bench",
        Vec::new(),
        MEMORY_MIB,
        &[],
        BENCH_TIMEOUT,
    )?;
    let (mut records, done) = parse_bench(&bench.lines())?;
    eprintln!(
        "xtask: the bench guest ran for {:.1} s",
        bench.elapsed.as_secs_f64()
    );

    eprintln!("xtask: booting dom0 for the boot time");
    let normal = boot(
        &layout,
        args.accel,
        "dom0",
        vec![Module::named(&layout.kernel("hello"))],
        MEMORY_MIB,
        &["shutdown".into()],
        BOOT_TIMEOUT,
    )?;
    records.extend(boot_records(&normal));

    eprintln!(
        "xtask: dom0 creating {CREATE_COUNT} {IDLER} domains (up to {} s)",
        CREATE_TIMEOUT.as_secs()
    );
    let create = boot(
        &layout,
        args.accel,
        "dom0",
        create_modules(&layout)?,
        CREATE_MEMORY_MIB,
        &[
            format!("bench-create {CREATE_COUNT} {IDLER_CONFIG}"),
            "shutdown".into(),
        ],
        CREATE_TIMEOUT,
    )?;
    let (create_records, create_done) = parse_bench(&create.lines())?;
    records.extend(create_records);
    eprintln!(
        "xtask: the creation benchmark ran for {:.1} s",
        create.elapsed.as_secs_f64()
    );

    eprintln!(
        "xtask: two domains bouncing events (up to {} s)",
        events::TIMEOUT.as_secs()
    );
    let pingpong = events::run(&layout, args.accel)?;
    records.extend(pingpong.records);
    eprintln!(
        "xtask: the event benchmark ran for {:.1} s",
        pingpong.session.elapsed.as_secs_f64()
    );

    eprintln!("xtask: store round trips (up to {} s)", store::TIMEOUT.as_secs());
    let store = store::run(&layout, args.accel)?;
    records.extend(store.records);

    eprintln!("xtask: guests' TCP through dom0's switch and the NIC (up to {} s)", net::TIMEOUT.as_secs());
    let network = net::run(&layout, args.accel)?;
    records.extend(network.records);

    eprintln!("xtask: a guest's two vCPUs: IPIs and switches (up to {} s)", smp::TIMEOUT.as_secs());
    let vcpus = smp::run(&layout, args.accel)?;
    records.extend(vcpus.records);

    eprintln!("xtask: the schedulers' shares and deadlines (two boots of about 15 s)");
    records.extend(sched::run(&layout, args.accel)?);

    eprintln!("xtask: two CPUs: null hypercalls and balancing (three boots of about 10 s)");
    records.extend(scale::run(&layout, args.accel)?);

    let mut guests_ok = true;
    for (what, run) in [("Debian's Linux to its shell", guests::linux as fn(&Layout, Accel) -> Result<guests::GuestBoot>), ("Mini-OS to its test main", guests::minios)] {
        eprintln!("xtask: {what} (up to {} s)", guests::TIMEOUT.as_secs());
        let g = run(&layout, args.accel)?;
        match g.record {
            Some(r) => records.push(r),
            None => {
                guests_ok = false;
                eprintln!("xtask: {what}: the mark never came ({}); last lines:\n{}", ending(&g.session), tail(&g.session));
            }
        }
    }

    let dir = layout.target.join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // The per-domain lines of bench-create show the whole curve, not just its ends.
    let log = dir.join("bench-create.log");
    std::fs::write(&log, &create.output).with_context(|| format!("writing {}", log.display()))?;
    let pingpong_log = dir.join("pingpong.log");
    std::fs::write(&pingpong_log, &pingpong.session.output)
        .with_context(|| format!("writing {}", pingpong_log.display()))?;
    let path = dir.join("latest.json");
    let json = serde_json::to_string_pretty(&records).context("encoding the records")?;
    std::fs::write(&path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    print!("{}", table(&records));
    println!("wrote {} and {}", path.display(), log.display());

    require_done(done, "the bench guest", &bench)?;
    require_done(create_done, "dom0's bench-create", &create)?;
    require_done(pingpong.done, "the pingpong guest", &pingpong.session)?;
    require_done(store.done, "the store bench guest", &store.session)?;
    require_done(vcpus.done, "the smp bench guest", &vcpus.session)?;
    require_done(network.done, "the network bench client", &network.session)?;
    if !guests_ok {
        bail!("a guest boot was not timed (see above)");
    }
    if normal.first_prompt.is_none() {
        bail!(
            "dom0 never printed its prompt; its last lines:\n{}",
            tail(&normal)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        crate::qemu::split_lines(text)
    }

    #[test]
    fn parses_records_and_ratios() {
        let out = "(mk) booting\nBENCH hypercall_null 840 cycles bare_syscall 210\n\
                   BENCH pt_update 1200.5 cycles\nnot a BENCH line\nBENCH DONE\nBENCH after_done 1 x\n";
        let (records, done) = parse_bench(&lines(out)).unwrap();
        assert!(done);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].name, "hypercall_null");
        assert_eq!(records[0].baseline.as_deref(), Some("bare_syscall"));
        assert_eq!(records[0].ratio, Some(4.0));
        assert_eq!(records[1].ratio, None);
        let json = serde_json::to_string(&records).unwrap();
        assert_eq!(
            json,
            r#"[{"name":"hypercall_null","value":840,"unit":"cycles","baseline":"bare_syscall","baseline_value":210,"ratio":4.0},{"name":"pt_update","value":1200.5,"unit":"cycles"}]"#
        );
    }

    #[test]
    fn missing_done_and_bad_numbers() {
        let (records, done) = parse_bench(&lines("BENCH a 1 ms\n")).unwrap();
        assert!(!done);
        assert_eq!(records.len(), 1);
        assert!(parse_bench(&lines("BENCH a lots ms\n")).is_err());
        let (records, _) = parse_bench(&lines("BENCH a 5 ms b 0\n")).unwrap();
        assert_eq!(records[0].ratio, None, "no ratio against a zero baseline");
    }

    #[test]
    fn percentile_lines_in_ns() {
        let out = "BENCH timer_wakeup_p99 812345 ns timer_expired_wakeup_p99 20500\n\
                   BENCH timer_wakeup_p50 61.25 us timer_expired_wakeup_p50 12.5\n\
                   BENCH timer_wakeup_min -1200 ns\n\
                   BENCH ERROR timer wake-ups failed: -EINVAL\n\
                   BENCH ERROR 3 of 400 timed wake-ups came before their deadline\n\
                   BENCH DONE\n";
        let (records, done) = parse_bench(&lines(out)).unwrap();
        assert!(done);
        assert_eq!(records.len(), 3, "ERROR lines are not figures: {records:?}");
        assert_eq!(records[0].unit, "ns");
        assert_eq!(records[0].value.as_u64(), Some(812_345));
        assert_eq!(records[0].baseline.as_deref(), Some("timer_expired_wakeup_p99"));
        assert!((records[0].ratio.unwrap() - 812_345.0 / 20_500.0).abs() < 1e-9);
        assert_eq!(records[1].unit, "us");
        assert_eq!(records[1].value.as_f64(), Some(61.25));
        assert_eq!(records[1].ratio, Some(4.9));
        assert_eq!(records[2].value.as_i64(), Some(-1200));
    }

    #[test]
    fn boot_figures() {
        let session = Session {
            output: "dom0: up in 12.345 ms since microkernel entry\ndom0> ".into(),
            first_prompt: Some(Duration::from_millis(1234)),
            ..Session::default()
        };
        let records = boot_records(&session);
        assert_eq!(
            records[0],
            Record::plain("boot_dom0_up", number("12.345").unwrap(), "ms")
        );
        assert_eq!(records[1].name, "boot_wall_to_prompt");
        assert_eq!(records[1].value.as_f64(), Some(1234.0));
        assert!(table(&records).contains("boot_dom0_up"));
    }
}
