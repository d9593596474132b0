//! The multi-vCPU figures of `cargo xtask bench`: the `smp` guest in bench mode
//! (`xtask/configs/smp-bench.cfg`) prints an IPI round trip between its two vCPUs beside
//! an event sent and polled on one vCPU, and a yield round trip between them (two
//! switches) beside a yield alone; all in one boot.

use super::{boot, guest_modules, parse_bench, Record};
use crate::build::Layout;
use crate::qemu::{Accel, Session, WAIT_FOR};
use anyhow::Result;
use std::time::Duration;

/// A few seconds under TCG.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// What the boot gave: the records, whether the guest printed `BENCH DONE`, the console.
pub struct SmpBench {
    /// The records.
    pub records: Vec<Record>,
    /// `BENCH DONE` came.
    pub done: bool,
    /// The console.
    pub session: Session,
}

/// Boots dom0 with the smp guest in bench mode and reads its figures.
pub fn run(layout: &Layout, accel: Accel) -> Result<SmpBench> {
    let inputs = ["xl create smp-bench.cfg".to_string(), format!(r"{WAIT_FOR}\[smp-bench\] (BENCH DONE|TESTS DONE)"), "shutdown".to_string()];
    let session = boot(layout, accel, "dom0", guest_modules(layout, "smp", &["smp-bench.cfg"])?, 256, &inputs, TIMEOUT)?;
    let lines = crate::bench::store::guest_lines(&session.lines(), "smp-bench");
    let (records, done) = parse_bench(&lines)?;
    Ok(SmpBench { records, done, session })
}
