//! The store figures of `cargo xtask bench`: dom0 creates store-test in bench mode
//! (dom0/configs/store-bench.cfg), which prints `[store-bench] BENCH store_read ...` and
//! `store_write` beside `event_round_trip_dom0_poll`, measured in the same boot: a bare
//! event on the store channel that dom0's service answers with an event (no request, no
//! store work), then `BENCH DONE`.

use super::{boot, parse_bench, Record};
use crate::build::Layout;
use crate::qemu::{Accel, Module, Session, WAIT_FOR};
use anyhow::{bail, Result};
use std::time::Duration;

/// 3 x 1001 round trips take a few seconds under TCG; room for a loaded host.
pub const TIMEOUT: Duration = Duration::from_secs(120);
const KERNEL: &str = "store-test";
const CONFIG: &str = "store-bench.cfg";
const NAME: &str = "store-bench";
/// Memory of the boot, MiB.
const MEMORY_MIB: u32 = 256;

/// What the boot gave: the records, whether the guest printed `BENCH DONE`, the console.
pub struct StoreBench {
    pub records: Vec<Record>,
    pub done: bool,
    pub session: Session,
}

/// The guest's BENCH lines, without the `[store-bench] ` prefix (and what precedes it).
pub fn guest_bench_lines(lines: &[String]) -> Vec<String> {
    guest_lines(lines, NAME)
}

/// The BENCH lines guest `name` printed, without the `[name] ` prefix.
pub fn guest_lines(lines: &[String], name: &str) -> Vec<String> {
    let prefix = format!("[{name}] ");
    lines
        .iter()
        .filter_map(|l| {
            l.find(&format!("{prefix}BENCH "))
                .map(|at| l[at + prefix.len()..].to_string())
        })
        .collect()
}

/// Boots dom0, creates the store bench guest, waits for its figures, shuts down.
pub fn run(layout: &Layout, accel: Accel) -> Result<StoreBench> {
    let kernel = layout.kernel(KERNEL);
    let config = layout.root.join("dom0").join("configs").join(CONFIG);
    for path in [&kernel, &config] {
        if !path.is_file() {
            bail!("{} is missing", path.display());
        }
    }
    let inputs = [
        format!("xl create {CONFIG}"),
        format!(r"{WAIT_FOR}\[{NAME}\] BENCH DONE$"),
        "shutdown".to_string(),
    ];
    let session = boot(
        layout,
        accel,
        "dom0",
        vec![Module::named(&kernel), Module::named(&config)],
        MEMORY_MIB,
        &inputs,
        TIMEOUT,
    )?;
    let (records, done) = parse_bench(&guest_bench_lines(&session.lines()))?;
    Ok(StoreBench { records, done, session })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_guests_lines_only() {
        let out = "dom0> [store-bench] BENCH store_read 9000 cycles event_round_trip_dom0_poll 4500\n\
                   BENCH not_from_the_guest 2 x\n\
                   [store-bench] BENCH DONE\n";
        let (records, done) = parse_bench(&guest_bench_lines(&crate::qemu::split_lines(out))).unwrap();
        assert!(done);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].name, "store_read");
        assert_eq!(records[0].ratio, Some(2.0));
    }

    #[test]
    fn config_exists() {
        assert!(Layout::workspace().root.join("dom0/configs").join(CONFIG).is_file());
    }
}
