//! The two-CPU figures of `cargo xtask bench`, each against a baseline in the same boot:
//!
//! - **null-hypercall scaling**: two `nullcall` guests pinned together to CPU 1, then
//!   `xl vcpu-pin`ned to both CPUs: their aggregate hypercall rate on two CPUs beside the
//!   rate on one (goal: at least 1.8x);
//! - **balancing on an uneven load**: three `cpuhog` guests start pinned to CPU 1 and are
//!   then let loose on both CPUs; the CPUs' worth they get after (the rules must spread
//!   three vCPUs over two CPUs: at most 2.0) beside what they got pinned (1.0), once with
//!   receiver-initiated balancing alone (`balance=pull`) and once with sender-initiated
//!   alone (`balance=push`).

use super::{boot_with_cpus, guest_modules, Record};
use crate::build::Layout;
use crate::qemu::{Accel, SLEEP_MS};
use anyhow::{anyhow, bail, Result};
use serde_json::Number;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);
const MEMORY_MIB: u32 = 256;
/// How long each half of a boot measures, ms.
const HALF_MS: u64 = 4000;
/// Left out at the start of each half (the pinning settling), ms.
const SETTLE_MS: u64 = 500;

/// A guest's `<prog>: at <ms> <word> <n>` lines: (at, n) with the index of the line.
pub fn counters(lines: &[String], guest: &str, prog: &str, word: &str) -> Vec<(usize, u64, u64)> {
    let prefix = format!("[{guest}] {prog}: at ");
    let sep = format!(" {word} ");
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let (at, n) = l.strip_prefix(&prefix)?.trim().split_once(&sep)?;
            Some((i, at.parse().ok()?, n.parse().ok()?))
        })
        .collect()
}

/// The rate of a counter (per ms) between the samples of lines `from..to` whose times lie
/// within `[t0, t1]`.
fn rate(samples: &[(usize, u64, u64)], lines: std::ops::Range<usize>, t0: u64, t1: u64) -> Result<f64> {
    let inside: Vec<_> = samples.iter().filter(|s| lines.contains(&s.0) && s.1 >= t0 && s.1 <= t1).collect();
    let (first, last) = match (inside.first(), inside.last()) {
        (Some(f), Some(l)) if l.1 > f.1 => (f, l),
        _ => bail!("too few samples between {t0} and {t1} ms"),
    };
    Ok((last.2 - first.2) as f64 / (last.1 - first.1) as f64)
}

/// The line where `marker` was typed (its echo).
fn line_of(lines: &[String], marker: &str) -> Result<usize> {
    lines.iter().position(|l| l.contains(marker)).ok_or(anyhow!("no line shows `{marker}`"))
}

/// Aggregate rates of `guests` before and after the line where `marker` was typed, each
/// over the half's samples past its settling time.
fn halves(lines: &[String], guests: &[&str], prog: &str, word: &str, marker: &str) -> Result<(f64, f64)> {
    let split = line_of(lines, marker)?;
    let (mut before, mut after) = (0.0, 0.0);
    for g in guests {
        let s = counters(lines, g, prog, word);
        let start = s.first().ok_or(anyhow!("{g}: no `{prog}` line"))?.1;
        let cut = s.iter().filter(|x| x.0 < split).map(|x| x.1).max().ok_or(anyhow!("{g}: nothing before `{marker}`"))?;
        before += rate(&s, 0..split, start + SETTLE_MS, cut).map_err(|e| anyhow!("{g} before: {e}"))?;
        after += rate(&s, split..lines.len(), cut + SETTLE_MS, u64::MAX).map_err(|e| anyhow!("{g} after: {e}"))?;
    }
    Ok((before, after))
}

fn round3(x: f64) -> Result<Number> {
    Number::from_f64((x * 1000.0).round() / 1000.0).ok_or(anyhow!("not a number: {x}"))
}

/// A figure beside its baseline.
fn beside(name: &str, value: f64, unit: &str, baseline: &str, base: f64) -> Result<Record> {
    Ok(Record {
        name: name.into(),
        value: round3(value)?,
        unit: unit.into(),
        baseline: Some(baseline.into()),
        baseline_value: Some(round3(base)?),
        ratio: (base > 0.0).then(|| ((value / base) * 1000.0).round() / 1000.0),
    })
}

/// The inputs of a boot: create the guests (pinned to CPU 1 by their configs), measure,
/// let them loose on every CPU, measure, stop.
fn inputs(configs: &[&str], guests: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = configs.iter().map(|c| format!("xl create {c}")).collect();
    v.push(format!("{SLEEP_MS}{}", HALF_MS + SETTLE_MS));
    v.extend(guests.iter().map(|g| format!("xl vcpu-pin {g} all all")));
    v.push(format!("{SLEEP_MS}{}", HALF_MS + SETTLE_MS));
    v.extend(guests.iter().map(|g| format!("xl destroy {g}")));
    v.push("shutdown".into());
    v
}

/// The boots; their figures.
pub fn run(layout: &Layout, accel: Accel) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    let nulls = ["null-a", "null-b"];
    let s = boot_with_cpus(layout, accel, "", 2, "dom0", guest_modules(layout, "nullcall", &["null-a.cfg", "null-b.cfg"])?, MEMORY_MIB, &inputs(&["null-a.cfg", "null-b.cfg"], &nulls), TIMEOUT)?;
    let (one, two) = halves(&s.lines(), &nulls, "nullcall", "calls", "xl vcpu-pin null-a all all").map_err(|e| anyhow!("scaling boot: {e}"))?;
    // Calls per ms, shown per second.
    records.push(beside("null_hypercalls_2_guests_2_cpus", two * 1000.0, "calls/s", "null_hypercalls_2_guests_1_cpu", one * 1000.0)?);

    let hogs = ["hog-p1", "hog-p2", "hog-p3"];
    let configs = ["hog-p1.cfg", "hog-p2.cfg", "hog-p3.cfg"];
    for rules in ["pull", "push"] {
        let s = boot_with_cpus(layout, accel, &format!("balance={rules}"), 2, "dom0", guest_modules(layout, "cpuhog", &configs)?, MEMORY_MIB, &inputs(&configs, &hogs), TIMEOUT)?;
        let (pinned, loose) = halves(&s.lines(), &hogs, "cpuhog", "ran", "xl vcpu-pin hog-p1 all all").map_err(|e| anyhow!("balance={rules} boot: {e}"))?;
        records.push(beside(&format!("balance_{rules}_3_hogs_2_cpus_cpus_used"), loose, "CPUs", "pinned_to_1_cpu", pinned)?);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn halves_split_at_the_typed_line() {
        let l = lines(
            "[g] nullcall: at 100 calls 0\n[g] nullcall: at 700 calls 600\n[g] nullcall: at 1700 calls 1600\n\
             dom0> xl vcpu-pin g all all\n[g] nullcall: at 1800 calls 1700\n[g] nullcall: at 2400 calls 2900\n[g] nullcall: at 3400 calls 4900\n",
        );
        let (before, after) = halves(&l, &["g"], "nullcall", "calls", "xl vcpu-pin g all all").unwrap();
        assert!((before - 1.0).abs() < 1e-9, "{before}");
        assert!((after - 2.0).abs() < 1e-9, "{after}");
        assert!(halves(&l, &["h"], "nullcall", "calls", "xl vcpu-pin g all all").is_err(), "no such guest");
        assert!(halves(&l, &["g"], "nullcall", "calls", "xl destroy").is_err(), "no such line");
    }
}
