//! `cargo xtask test`: host unit tests, then every boot scenario checked on the serial console.

use crate::build::{build_kernels, Layout};
use crate::deps;
use crate::expect::judge;
use crate::image::{self, IsoSpec};
use crate::qemu::{run_scripted, Boot, Module, QemuConfig, Serial, Session, PROMPT};
use crate::scenarios::{self, Disk, Image, Scenario};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The crates with host tests.
const HOST_TEST_CRATES: &[&str] = &[
    "hypercall-abi",
    "domain-builder",
    "grant-tables",
    "xenbus",
    "partitions",
    "microkernel",
    "xtask",
];

/// Crates whose binaries are guest kernels: only their libraries run on the host.
const HOST_TEST_LIBS: &[&str] = &["pv-guest", "test-guests", "dom0"];

/// The name `--filter` matches for the host tests.
const HOST_TESTS: &str = "host-tests";

/// How many lines of output a failure report shows.
const TAIL_LINES: usize = 30;

/// Options of `cargo xtask test`.
#[derive(Debug, Clone, clap::Args)]
pub struct TestArgs {
    /// Run only the scenarios whose name contains this (`host-tests` names the host tests).
    #[arg(long, value_name = "SUBSTR")]
    filter: Option<String>,
    /// Go on after a failure (the default stops starting new work at the first one).
    #[arg(long)]
    keep_going: bool,
    /// How many QEMU scenarios run at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 2)]
    jobs: usize,
}

/// Counts what passed and failed.
#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    fn finish(&self) -> ExitCode {
        println!("{} passed, {} failed", self.passed, self.failed);
        if self.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Runs the host tests, builds, and runs the selected scenarios.
pub fn main(args: TestArgs) -> Result<ExitCode> {
    let matches = |name: &str| {
        args.filter
            .as_deref()
            .is_none_or(|filter| name.contains(filter))
    };
    let selected: Vec<Scenario> = scenarios::all()
        .into_iter()
        .filter(|s| matches(s.name))
        .collect();
    let run_host_tests = matches(HOST_TESTS);
    if selected.is_empty() && !run_host_tests {
        bail!(
            "no scenario name contains {:?}",
            args.filter.unwrap_or_default()
        );
    }
    let mut tally = Tally::default();

    let layout = Layout::workspace();
    if run_host_tests {
        let start = Instant::now();
        let mut cmd = layout.cargo();
        cmd.arg("test");
        for krate in HOST_TEST_CRATES {
            cmd.args(["-p", krate]);
        }
        let mut passed = cmd.status().context("cannot start cargo test")?.success();
        if passed {
            let mut libs = layout.cargo();
            libs.args(["test", "--lib"]);
            for krate in HOST_TEST_LIBS {
                libs.args(["-p", krate]);
            }
            passed = libs.status().context("cannot start cargo test")?.success();
        }
        if passed {
            // The benchmark's hooks are built only for `cargo xtask bench`: their tests too.
            let mut bench = layout.cargo();
            bench.args(["test", "--lib", "-p", "microkernel", "--features", "bench", "--", "sysctl"]);
            passed = bench.status().context("cannot start cargo test")?.success();
        }
        report_line(HOST_TESTS, passed, start);
        if passed {
            tally.passed += 1;
        } else {
            tally.failed += 1;
            if !args.keep_going {
                return Ok(tally.finish());
            }
        }
    }
    if selected.is_empty() {
        return Ok(tally.finish());
    }

    let layout = match prepare(&selected) {
        Ok(layout) => layout,
        Err(err) => {
            // Still end with the tally line: the build counts as one failed item.
            eprintln!("error: {err:#}");
            tally.failed += 1;
            return Ok(tally.finish());
        }
    };
    // Scenarios that measure time run last, one at a time: another QEMU beside them takes
    // host CPU time their guests' clocks still count.
    let (alone, shared): (Vec<Scenario>, Vec<Scenario>) = selected.into_iter().partition(|s| s.alone);
    let outcome = run_all(&layout, &shared, args.jobs.max(1), args.keep_going);
    tally.passed += outcome.passed;
    tally.failed += outcome.failed;
    if outcome.failed == 0 || args.keep_going {
        let outcome = run_all(&layout, &alone, 1, args.keep_going);
        tally.passed += outcome.passed;
        tally.failed += outcome.failed;
    }
    Ok(tally.finish())
}

/// Builds the kernels and whatever the selected scenarios boot besides (ISO, non-ELF file).
fn prepare(selected: &[Scenario]) -> Result<Layout> {
    let layout = build_kernels()?;
    deps::ensure_tools(deps::QEMU)?;
    if selected.iter().any(|s| s.iso) {
        deps::ensure_tools(deps::IMAGE)?;
        let spec = IsoSpec {
            xen_cmdline: String::new(),
            dom0: layout.kernel("dom0"),
            dom0_cmdline: String::new(),
            modules: vec![layout.kernel("hello")],
        };
        image::build_iso(&layout, &spec, &layout.iso())
            .context("building the ISO for the ISO scenarios")?;
    }
    let not_elf = |s: &Scenario| s.dom0 == Image::NotElf || s.modules.contains(&Image::NotElf);
    if selected.iter().any(not_elf) {
        write_not_elf(&layout)?;
    }
    let linux = |s: &Scenario| s.modules.iter().any(|m| matches!(m, Image::LinuxKernel | Image::LinuxInitramfs));
    if selected.iter().any(linux) {
        let files = crate::linux::prepare(&layout).context("fetching Debian's Linux for the Linux scenarios")?;
        eprintln!("xtask: Linux {} ({})", files.version, files.vmlinuz.display());
    }
    Ok(layout)
}

fn report_line(name: &str, passed: bool, start: Instant) {
    let verdict = if passed { "ok" } else { "FAILED" };
    println!(
        "scenario {name} ... {verdict} ({:.1} s)",
        start.elapsed().as_secs_f64()
    );
}

fn not_elf_path(layout: &Layout) -> PathBuf {
    layout.boot_dir().join("not-elf.txt")
}

/// 4 KiB of text standing in for a dom0 kernel that is not an ELF image.
fn write_not_elf(layout: &Layout) -> Result<()> {
    let line = "This is not an ELF image; the microkernel must refuse to boot it as dom0.\n";
    let text: String = line.chars().cycle().take(4096).collect();
    let path = not_elf_path(layout);
    std::fs::create_dir_all(layout.boot_dir()).context("creating target/boot")?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// `xtask/configs`: the xl configs scenarios give dom0 as modules.
pub fn configs_dir(layout: &Layout) -> PathBuf {
    layout.root.join("xtask").join("configs")
}

fn image_path(layout: &Layout, image: Image) -> Result<PathBuf> {
    let path = match image {
        Image::Dom0 => layout.kernel("dom0"),
        Image::Guest(name) => layout.kernel(name),
        Image::NotElf => not_elf_path(layout),
        Image::Config(name) => configs_dir(layout).join(name),
        Image::Peer(name) => layout.root.join("peers").join(name),
        Image::LinuxKernel => crate::linux::vmlinuz_path(layout),
        Image::LinuxInitramfs => crate::linux::initramfs_path(layout),
    };
    if !path.is_file() {
        bail!(
            "{} does not exist (did the build produce it?)",
            path.display()
        );
    }
    Ok(path)
}

/// The QEMU setup of a scenario.
pub fn qemu_config(layout: &Layout, scenario: &Scenario) -> Result<QemuConfig> {
    let boot = if scenario.iso {
        Boot::Iso(layout.iso())
    } else {
        let mut modules = vec![Module {
            path: image_path(layout, scenario.dom0)?,
            cmdline: scenario.cmdline.into(),
        }];
        for image in scenario.modules {
            modules.push(Module::named(&image_path(layout, *image)?));
        }
        Boot::Kernel {
            kernel: layout.microkernel_elf32(),
            xen_cmdline: scenario.xen_cmdline.into(),
            modules,
        }
    };
    Ok(QemuConfig {
        boot,
        nic: match scenario.nic {
            true => Some(crate::qemu::NicForward { host: crate::qemu::free_port()?, guest_port: 80 }),
            false => None,
        },
        memory_mib: scenario.memory_mib,
        cpus: scenario.cpus,
        accel: scenario.accel,
        serial: Serial::Stdio,
        disk: match scenario.disk {
            Disk::None => None,
            Disk::Fresh => {
                let path = layout.boot_dir().join("disks").join(format!("{}.img", scenario.name));
                crate::disk::create(&path, &crate::disk::standard_files(layout)?).map_err(|e| anyhow::anyhow!("{e:#}"))?;
                Some(path)
            }
            Disk::Large(mib) => {
                let path = layout.boot_dir().join("disks").join(format!("{}.img", scenario.name));
                crate::disk::create_sized(&path, &crate::disk::standard_files(layout)?, mib).map_err(|e| anyhow::anyhow!("{e:#}"))?;
                Some(path)
            }
            Disk::Reuse(name) => {
                let path = layout.boot_dir().join("disks").join(format!("{name}.img"));
                if !path.exists() {
                    bail!("{}: no disk image left by scenario {name}", path.display());
                }
                Some(path)
            }
        },
    })
}

/// Boots one scenario and judges it, then the boots it chains (`then`); the error is the
/// report.
fn run_one(layout: &Layout, scenario: &Scenario) -> Result<(), String> {
    run_boot(layout, scenario)?;
    match scenario.then {
        Some(next) => run_one(layout, next).map_err(|why| format!("    (second boot: {})\n{why}", next.name)),
        None => Ok(()),
    }
}

/// Boots one scenario and judges it; the error is the report.
fn run_boot(layout: &Layout, scenario: &Scenario) -> Result<(), String> {
    let config = qemu_config(layout, scenario).map_err(|e| format!("{e:#}"))?;
    let cmd = config.command().map_err(|e| format!("{e:#}"))?;
    // HTTP fetches go to the port forwarded for this run.
    let port = config.nic.map_or(0, |n| n.host);
    let inputs: Vec<String> = scenario
        .input
        .iter()
        .map(|s| match s.strip_prefix(crate::qemu::HTTP_GET) {
            Some(path) => format!("{}{port} {path}", crate::qemu::HTTP_GET),
            None => s.to_string(),
        })
        .collect();
    let session = run_scripted(cmd, PROMPT, &inputs, scenario.input_mode, scenario.timeout)
        .map_err(|e| format!("{e:#}"))?;
    // The whole console of a failed run, for what the tail does not show.
    let dir = layout.boot_dir().join("failed");
    let path = dir.join(format!("{}.log", scenario.name));
    let _ = std::fs::remove_file(&path);
    let judged = judge(scenario, &session);
    // A large sparse image holds what its guest wrote (hundreds of MiB): gone once passed.
    if judged.is_ok() && matches!(scenario.disk, Disk::Large(_)) {
        let _ = std::fs::remove_file(layout.boot_dir().join("disks").join(format!("{}.img", scenario.name)));
    }
    judged.map_err(|why| {
        let mut report = failure_report(&why, &session);
        let written = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, session.lines().join("\n") + "\n"));
        if written.is_ok() {
            report += &format!("    whole console: {}\n", path.display());
        }
        report
    })
}

fn failure_report(why: &str, session: &Session) -> String {
    let lines = session.lines();
    let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
    let mut report = format!(
        "    {why}\n    last {} lines of the serial console:\n",
        tail.len()
    );
    for line in tail {
        report += &format!("    | {line}\n");
    }
    let stderr = session.stderr.trim();
    if !stderr.is_empty() {
        report += &format!(
            "    QEMU stderr:\n    ! {}\n",
            stderr.replace('\n', "\n    ! ")
        );
    }
    report
}

/// Runs the scenarios `jobs` at a time, printing a line for each as it finishes.
fn run_all(layout: &Layout, scenarios: &[Scenario], jobs: usize, keep_going: bool) -> Tally {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let tally = Mutex::new(Tally::default());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(scenarios.len()) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= scenarios.len() || stop.load(Ordering::SeqCst) {
                    break;
                }
                let scenario = &scenarios[index];
                let start = Instant::now();
                let result = run_one(layout, scenario);
                // Hold the tally lock while printing so reports do not interleave.
                let mut tally = tally
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                report_line(scenario.name, result.is_ok(), start);
                match result {
                    Ok(()) => tally.passed += 1,
                    Err(report) => {
                        print!("{report}");
                        tally.failed += 1;
                        if !keep_going {
                            stop.store(true, Ordering::SeqCst);
                        }
                    }
                }
                let _ = std::io::stdout().flush();
            });
        }
    });
    tally
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_configs() {
        let layout = Layout {
            root: "/nonexistent".into(),
            target: std::env::temp_dir(),
        };
        let iso = Scenario {
            name: "iso",
            iso: true,
            ..scenarios::DEFAULT
        };
        let config = qemu_config(&layout, &iso).unwrap();
        assert_eq!(config.boot, Boot::Iso(layout.iso()));
        assert_eq!(
            (config.memory_mib, config.serial, config.accel),
            (256, Serial::Stdio, crate::qemu::Accel::Tcg)
        );
        // A kernel scenario whose images were never built says which file is missing.
        let missing = Scenario {
            name: "k",
            dom0: Image::Guest("no-such-guest"),
            ..scenarios::DEFAULT
        };
        let err = qemu_config(&layout, &missing).unwrap_err().to_string();
        assert!(err.contains("no-such-guest does not exist"), "{err}");
    }

    #[test]
    fn failure_report_shows_the_tail_and_stderr() {
        let output: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        let session = Session {
            output,
            stderr: "qemu: oops\n".into(),
            ..Session::default()
        };
        let report = failure_report("expectation 1 of 1 not found", &session);
        assert!(report.starts_with("    expectation 1 of 1 not found\n    last 30 lines"));
        assert!(report.contains("    | line 11\n") && report.contains("    | line 40\n"));
        assert!(!report.contains("| line 10\n"));
        assert!(report.contains("! qemu: oops"));
    }

    #[test]
    fn host_test_crates_exist() {
        let root = Layout::workspace().root;
        for krate in HOST_TEST_CRATES.iter().chain(HOST_TEST_LIBS) {
            assert!(root.join(krate).join("Cargo.toml").is_file(), "{krate}");
        }
    }
}
