//! The schedulers' figures of `cargo xtask bench`, from two boots of CPU-bound `cpuhog`
//! guests that print their running time (the scenarios `sched-credit-shares` and
//! `sched-rtds` run the same mixes and assert on them; here they are measured):
//!
//! - credit: weights 256 and 512 beside a guest capped at 25%; the error of the 1:2 share
//!   and of the cap, in percent of the goal, over 10 s;
//! - rtds: a guest reserved 2 ms every 10 ms beside three spinners; its deadline misses
//!   and its share, over the same time.

use super::{boot_with_cpus, guest_modules, Record};
use crate::build::Layout;
use crate::qemu::{Accel, SLEEP_MS};
use crate::scenarios::sched::{all_started, cpu_share};
use anyhow::{anyhow, Result};
use serde_json::Number;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(90);
const MEMORY_MIB: u32 = 256;

fn figure(name: &str, value: f64, unit: &str) -> Result<Record> {
    let n = Number::from_f64((value * 1000.0).round() / 1000.0).ok_or(anyhow!("{name}: not a number"))?;
    Ok(Record::plain(name, n, unit))
}

/// Both boots; their figures.
pub fn run(layout: &Layout, accel: Accel) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    let inputs: Vec<String> = ["xl create hog-a.cfg", "xl create hog-b.cfg", "xl create hog-c.cfg"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("{SLEEP_MS}12000"), "shutdown".to_string()])
        .collect();
    // Shares of one CPU (on two, each hog would have one to itself).
    let credit = boot_with_cpus(layout, accel, "", 1, "dom0", guest_modules(layout, "cpuhog", &["hog-a.cfg", "hog-b.cfg", "hog-c.cfg"])?, MEMORY_MIB, &inputs, TIMEOUT)?;
    let lines = credit.lines();
    let start = all_started(&lines, &["hog-a", "hog-b", "hog-c"]);
    let (from, to) = (start.saturating_add(1000), start.saturating_add(11_500));
    let share = |n| cpu_share(&lines, n, from, to).map_err(|e| anyhow!("credit boot: {e}"));
    let (a, b, c) = (share("hog-a")?, share("hog-b")?, share("hog-c")?);
    records.push(figure("sched_credit_256_512_share_error", ((b / a) - 2.0).abs() / 2.0 * 100.0, "%")?);
    records.push(figure("sched_credit_cap_25_error", (c - 0.25).abs() / 0.25 * 100.0, "%")?);

    let inputs: Vec<String> = [
        "xl create hog-rt.cfg",
        "xl sched-rtds -d hog-rt -p 10000 -b 2000 -e 0",
        "xl create hog-a.cfg",
        "xl create hog-b.cfg",
        "xl create hog-c.cfg",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("{SLEEP_MS}12000"), "xl sched-rtds -d hog-rt".to_string(), "shutdown".to_string()])
    .collect();
    let rtds = boot_with_cpus(layout, accel, "sched=rtds", 1, "dom0", guest_modules(layout, "cpuhog", &["hog-rt.cfg", "hog-a.cfg", "hog-b.cfg", "hog-c.cfg"])?, MEMORY_MIB, &inputs, TIMEOUT)?;
    let lines = rtds.lines();
    let start = all_started(&lines, &["hog-rt", "hog-a", "hog-b", "hog-c"]);
    let rt = cpu_share(&lines, "hog-rt", start.saturating_add(500), start.saturating_add(11_000)).map_err(|e| anyhow!("rtds boot: {e}"))?;
    let misses: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("hog-rt").and_then(|rest| rest.split_whitespace().last()?.parse().ok()))
        .ok_or(anyhow!("rtds boot: no `xl sched-rtds` row for hog-rt"))?;
    records.push(Record::plain("sched_rtds_deadline_misses_2ms_10ms_beside_3_spinners", misses.into(), "count"));
    records.push(figure("sched_rtds_reserved_20_share", rt * 100.0, "%")?);
    Ok(records)
}
