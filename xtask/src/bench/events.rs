//! The event channel figures of `cargo xtask bench`: dom0 creates the pingpong guest twice
//! in bench mode (dom0/configs/ping-bench.cfg, pong-bench.cfg: ping is domain 1, pong
//! domain 2) and ping prints the figures as `[ping] BENCH ...` lines, ending with
//! `[ping] BENCH DONE`.

use super::{boot, parse_bench, Record};
use crate::build::Layout;
use crate::qemu::{Accel, Module, Session, WAIT_FOR};
use anyhow::{bail, Result};
use std::time::Duration;

/// The whole boot: 20000 round trips plus 3 x 21000 timed hypercalls take a few seconds
/// under TCG; this leaves room for a loaded host.
pub const TIMEOUT: Duration = Duration::from_secs(180);
const KERNEL: &str = "pingpong";
const CONFIGS: [&str; 2] = ["ping-bench.cfg", "pong-bench.cfg"];
/// Memory of the boot, MiB (dom0 takes a quarter; the guests 16 MiB each).
const MEMORY_MIB: u32 = 256;

/// What the boot gave: the records, whether ping printed `BENCH DONE`, and the console.
pub struct EventBench {
    pub records: Vec<Record>,
    pub done: bool,
    pub session: Session,
}

/// The guest's BENCH lines from ping, without the `[ping] ` prefix (and whatever precedes
/// it on the line, such as a prompt).
pub fn ping_bench_lines(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            l.find("[ping] BENCH ")
                .map(|at| l[at + "[ping] ".len()..].to_string())
        })
        .collect()
}

fn modules(layout: &Layout) -> Result<Vec<Module>> {
    let kernel = layout.kernel(KERNEL);
    let dir = layout.root.join("dom0").join("configs");
    let mut paths = vec![kernel];
    paths.extend(CONFIGS.iter().map(|c| dir.join(c)));
    for path in &paths {
        if !path.is_file() {
            bail!("{} is missing", path.display());
        }
    }
    Ok(paths.iter().map(|p| Module::named(p)).collect())
}

/// Boots dom0, creates ping then pong, waits for both to finish, shuts down.
pub fn run(layout: &Layout, accel: Accel) -> Result<EventBench> {
    let done_line = format!(r"{WAIT_FOR}\[(ping|pong)\] pingpong: done$");
    let inputs = [
        format!("xl create {}", CONFIGS[0]),
        format!("xl create {}", CONFIGS[1]),
        done_line.clone(),
        done_line,
        "shutdown".to_string(),
    ];
    let session = boot(
        layout,
        accel,
        "dom0",
        modules(layout)?,
        MEMORY_MIB,
        &inputs,
        TIMEOUT,
    )?;
    let (records, done) = parse_bench(&ping_bench_lines(&session.lines()))?;
    Ok(EventBench {
        records,
        done,
        session,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_pings_lines_only() {
        let out =
            "dom0> [ping] BENCH event_round_trip_2dom 9000 cycles yield_round_trip_2dom 4000\n\
                   [pong] BENCH nonsense 1 x\n\
                   BENCH not_from_a_guest 2 x\n\
                   [ping] BENCH yield_round_trip_2dom 4000 cycles\n\
                   [ping] BENCH DONE\n";
        let lines = ping_bench_lines(&crate::qemu::split_lines(out));
        let (records, done) = parse_bench(&lines).unwrap();
        assert!(done);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].name, "event_round_trip_2dom");
        assert_eq!(records[0].ratio, Some(2.25));
        assert_eq!(records[1].name, "yield_round_trip_2dom");
    }

    #[test]
    fn configs_exist() {
        let layout = Layout::workspace();
        for c in CONFIGS {
            assert!(layout.root.join("dom0/configs").join(c).is_file(), "{c}");
        }
    }
}
