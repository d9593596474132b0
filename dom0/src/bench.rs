//! `bench-create N CONFIG`: the domain-creation benchmark. Creates N domains from one xl
//! config, one after another (named `<name>-1` .. `<name>-N`), keeps them all running, and
//! times each from the start of its creation to its first instruction; then prints the
//! `BENCH` lines (docs/interfaces.md) and destroys them all.
//!
//! Every time is system time, the clock of [`DomainInfo::first_run_ns`]: `physinfo`'s
//! `uptime_ns`, read through the same hypercall interface the toolstack uses. For domain k:
//! - *start*: just before `xl create`'s work begins (the config and kernel are looked up
//!   and parsed every time, as `xl create` does);
//! - *built*: the domain is built and paused, just before `DOMCTL_UNPAUSEDOMAIN`;
//! - *first instruction*: `first_run_ns`, polled with `DOMCTL_GETDOMAININFO`; between
//!   polls dom0 gives up the CPU (`idle`), so what domain k waits for includes a turn of
//!   the round robin through the k - 1 domains already running.
//!
//! `build` (start to built) is the toolstack's and the hypervisor's work on the domain,
//! without the wait for the CPU after the unpause (but a timer tick during a long build
//! still lets the running domains have their turn, and that counts); `to_first` (start to
//! first instruction) is the figure of the issue. Nothing is asserted about the times: they
//! are measurements.
//!
//! [`DomainInfo::first_run_ns`]: hypercall_abi::domctl::DomainInfo::first_run_ns
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use crate::archive::BootFiles;
use crate::builder::{self, Control};
use crate::xl::{crashed, stopped};

/// Most domains one `bench-create` makes.
pub const MAX_COUNT: u32 = 1000;

/// How long a domain may take from unpause to its first instruction before the benchmark
/// gives up on it (system time: 10 s).
pub const FIRST_RUN_TIMEOUT_NS: u64 = 10_000_000_000;

/// The times of one domain, in ns of system time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Its id.
    pub id: u16,
    /// Its name.
    pub name: String,
    /// When its creation began.
    pub start_ns: u64,
    /// When it was built (paused), just before the unpause.
    pub built_ns: u64,
    /// When it ran its first instruction.
    pub first_run_ns: u64,
}

impl Timing {
    /// Creation start to built: the toolstack's and hypervisor's work.
    pub fn build_ns(&self) -> u64 {
        self.built_ns.saturating_sub(self.start_ns)
    }

    /// Built to first instruction: the unpause and the wait for the CPU.
    pub fn wait_ns(&self) -> u64 {
        self.first_run_ns.saturating_sub(self.built_ns)
    }

    /// Creation start to first instruction.
    pub fn to_first_ns(&self) -> u64 {
        self.first_run_ns.saturating_sub(self.start_ns)
    }
}

/// Nanoseconds shown as microseconds with one decimal (`12345` is `12.3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Micros(pub u64);

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 / 1000, self.0 % 1000 / 100)
    }
}

/// The median of `values` (the mean of the middle two for an even count); 0 if empty.
pub fn median(values: &[u64]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    match v.len() {
        0 => 0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

/// One of a [`Timing`]'s durations.
type Part = fn(&Timing) -> u64;

/// Writes the `BENCH` lines for `timings` (in creation order, at least one): the 1st and
/// the last domain (with the 1st as baseline, so the ratio is the slope) and the median,
/// each for start-to-first-instruction, start-to-built and built-to-first-instruction.
pub fn bench_lines(timings: &[Timing], out: &mut dyn Write) -> fmt::Result {
    let (Some(first), Some(last)) = (timings.first(), timings.last()) else {
        return Ok(());
    };
    let n = timings.len();
    let parts: [(&str, Part); 3] = [
        ("create_to_first_instruction", Timing::to_first_ns),
        ("create_build", Timing::build_ns),
        ("create_unpause_to_run", Timing::wait_ns),
    ];
    for (name, part) in parts {
        writeln!(out, "BENCH {name}_1 {} us", Micros(part(first)))?;
        if n > 1 {
            writeln!(
                out,
                "BENCH {name}_{n} {} us {name}_1 {}",
                Micros(part(last)),
                Micros(part(first))
            )?;
        }
        let all: Vec<u64> = timings.iter().map(part).collect();
        writeln!(out, "BENCH {name}_median {} us", Micros(median(&all)))?;
    }
    Ok(())
}

/// A `fmt::Write` that keeps nothing (config warnings after the first creation).
struct Discard;

impl Write for Discard {
    fn write_str(&mut self, _: &str) -> fmt::Result {
        Ok(())
    }
}

fn now<C: Control>(ctl: &mut C) -> Result<u64, String> {
    ctl.physinfo()
        .map(|p| p.uptime_ns)
        .map_err(|e| format!("sysctl physinfo failed: {e}"))
}

/// Creates domain `k` from `file` and waits for its first instruction.
fn create_one<C: Control>(
    ctl: &mut C,
    files: &BootFiles<'_>,
    file: &str,
    k: u32,
    idle: &mut dyn FnMut(&mut C),
    warnings: &mut dyn Write,
) -> Result<Timing, (Option<u16>, String)> {
    let start_ns = now(ctl).map_err(|e| (None, e))?;
    let suffix = format!("-{k}");
    let created = builder::create_suffixed(ctl, files, file, &suffix, true, warnings)
        .map_err(|e| (None, format!("{e}")))?;
    let id = created.id;
    let fail = |e: String| (Some(id), e);
    let built_ns = now(ctl).map_err(fail)?;
    ctl.unpause_domain(id)
        .map_err(|e| fail(format!("unpausing domain {id} failed: {e}")))?;
    loop {
        let info = ctl
            .domain_info(id)
            .map_err(|e| fail(format!("getdomaininfo of domain {id} failed: {e}")))?;
        if info.first_run_ns != 0 {
            return Ok(Timing {
                id,
                name: created.config.name,
                start_ns,
                built_ns,
                first_run_ns: info.first_run_ns,
            });
        }
        if stopped(&info) {
            let how = if crashed(&info) {
                "crashed"
            } else {
                "shut down"
            };
            return Err(fail(format!("domain {id} {how} before it ran")));
        }
        if now(ctl).map_err(fail)?.saturating_sub(built_ns) > FIRST_RUN_TIMEOUT_NS {
            return Err(fail(format!(
                "domain {id} did not run within {} s of its unpause",
                FIRST_RUN_TIMEOUT_NS / 1_000_000_000
            )));
        }
        idle(ctl);
    }
}

/// `bench-create COUNT FILE`: creates, times and destroys the domains; writes one line per
/// domain, the `BENCH` lines and, if every domain was created, ran and was destroyed,
/// `BENCH DONE`. `idle` gives up the CPU while a domain is awaited. Whether all went well.
pub fn create_many<C: Control>(
    ctl: &mut C,
    files: &BootFiles<'_>,
    file: &str,
    count: u32,
    idle: &mut dyn FnMut(&mut C),
    out: &mut dyn Write,
) -> bool {
    let mut timings: Vec<Timing> = Vec::new();
    let mut failed = false;
    for k in 1..=count {
        let warnings: &mut dyn Write = if k == 1 { &mut *out } else { &mut Discard };
        match create_one(ctl, files, file, k, idle, warnings) {
            Ok(t) => {
                let _ = writeln!(
                    out,
                    "bench-create: {} ({}): built in {} us, first instruction after {} us",
                    t.name,
                    t.id,
                    Micros(t.build_ns()),
                    Micros(t.to_first_ns())
                );
                timings.push(t);
            }
            Err((id, why)) => {
                let _ = writeln!(out, "bench-create: domain {k} of {count}: {why}");
                if let Some(id) = id {
                    if let Err(e) = ctl.destroy_domain(id) {
                        let _ = writeln!(out, "bench-create: destroying domain {id} failed: {e}");
                    }
                }
                failed = true;
                break;
            }
        }
    }
    if !failed {
        let _ = bench_lines(&timings, out);
    }
    let mut destroyed = 0;
    for t in &timings {
        match ctl.destroy_domain(t.id) {
            Ok(()) => destroyed += 1,
            Err(e) => {
                let _ = writeln!(
                    out,
                    "bench-create: destroying {} ({}) failed: {e}",
                    t.name, t.id
                );
                failed = true;
            }
        }
    }
    let _ = writeln!(out, "bench-create: destroyed {destroyed} domains");
    if !failed {
        let _ = writeln!(out, "BENCH DONE");
    }
    !failed
}

#[cfg(test)]
mod tests;
