//! `cargo xtask run`: builds everything and boots it in QEMU on this terminal.

use crate::build::{build_kernels, describe, Layout};
use crate::deps;
use crate::image::{self, IsoSpec};
use crate::qemu::{Accel, Boot, Exit, Module, QemuConfig, Serial};
use anyhow::{bail, Context, Result};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// What is booted: shared by `run` and `image`.
#[derive(Debug, Clone, clap::Args)]
pub struct BootArgs {
    /// dom0's kernel: a file, or a built image name (dom0, hello, hello-low, abi-test,
    /// fault, bench). Default: the built dom0.
    #[arg(long, value_name = "PATH")]
    pub dom0: Option<PathBuf>,
    /// A further module after dom0 (repeatable; a file or a built image name).
    /// Default: the built `hello` guest.
    #[arg(long = "module", value_name = "PATH")]
    pub modules: Vec<PathBuf>,
    /// dom0's command line.
    #[arg(
        long,
        value_name = "STR",
        default_value = "",
        hide_default_value = true
    )]
    pub cmdline: String,
    /// The microkernel's command line.
    #[arg(
        long,
        value_name = "STR",
        default_value = "",
        hide_default_value = true
    )]
    pub xen_cmdline: String,
}

impl BootArgs {
    /// The dom0 kernel and the other modules, resolved to files.
    pub fn resolve(&self, layout: &Layout) -> Result<(PathBuf, Vec<PathBuf>)> {
        let dom0 = match &self.dom0 {
            Some(arg) => layout.resolve_image(arg)?,
            None => layout.kernel("dom0"),
        };
        let modules = if self.modules.is_empty() {
            vec![layout.kernel("hello")]
        } else {
            self.modules
                .iter()
                .map(|arg| layout.resolve_image(arg))
                .collect::<Result<_>>()?
        };
        for path in std::iter::once(&dom0).chain(&modules) {
            if !path.is_file() {
                bail!(
                    "{} does not exist (did the build produce it?)",
                    path.display()
                );
            }
        }
        Ok((dom0, modules))
    }

    /// The ISO contents these arguments describe.
    pub fn iso_spec(&self, layout: &Layout) -> Result<IsoSpec> {
        let (dom0, modules) = self.resolve(layout)?;
        Ok(IsoSpec {
            xen_cmdline: self.xen_cmdline.clone(),
            dom0,
            dom0_cmdline: self.cmdline.clone(),
            modules,
        })
    }
}

/// QEMU's RAM with `--linux`: dom0 unpacks the kernel (51 MiB) and the guest has 256 MiB.
pub const LINUX_MEMORY_MIB: u32 = 1024;

/// Options of `cargo xtask run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    boot: BootArgs,
    /// Guest RAM in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    memory: u32,
    /// QEMU accelerator. `kvm` is opt-in: this machine's paravirtual KVM may not run PV
    /// guests; the tests use tcg (and `sched-rtds` tcg-instruction-clock, where the
    /// machine's time follows the instructions it runs, not the host's clock).
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    accel: Accel,
    /// Boot the GRUB ISO (as `cargo xtask image` builds it) with -cdrom instead of -kernel.
    #[arg(long)]
    iso: bool,
    /// Add Debian's Linux (fetched into target/linux), its busybox initramfs and
    /// `linux.cfg` as modules (`xl create -c linux.cfg` boots it); at least 1 GiB of RAM.
    #[arg(long)]
    linux: bool,
    /// The machine's disk (dom0's `vda`, a raw image). Default: `target/boot/disk.img`,
    /// created with the standard partitions if there is none.
    #[arg(long, value_name = "PATH")]
    disk: Option<PathBuf>,
    /// Boot with no disk.
    #[arg(long, conflicts_with = "disk")]
    no_disk: bool,
    /// Give the machine a NIC (virtio-net on QEMU's user network, dom0's uplink) with
    /// host port `--http-port` forwarded to port 80 of 10.0.2.15, the `web` guest's
    /// address (`xl create web.cfg`, then `curl http://localhost:8080/`).
    #[arg(long)]
    net: bool,
    /// The host port forwarded with `--net`.
    #[arg(long, value_name = "PORT", default_value_t = 8080, requires = "net")]
    http_port: u16,
    /// CPUs of the machine (`-smp`): the microkernel starts each one ACPI's MADT lists,
    /// up to 16.
    #[arg(long, value_name = "N", default_value_t = crate::qemu::DEFAULT_CPUS, value_parser = clap::value_parser!(u32).range(1..=16))]
    cpus: u32,
}

/// Builds, boots, and maps QEMU's exit status to ours (docs/interfaces.md).
pub fn main(args: RunArgs) -> Result<ExitCode> {
    let layout = build_kernels()?;
    deps::ensure_tools(deps::QEMU)?;
    let boot = if args.iso {
        deps::ensure_tools(deps::IMAGE)?;
        Boot::Iso(image::build_iso(
            &layout,
            &args.boot.iso_spec(&layout)?,
            &layout.iso(),
        )?)
    } else {
        let (dom0, mut modules) = args.boot.resolve(&layout)?;
        if args.linux {
            let files = crate::linux::prepare(&layout)?;
            eprintln!("xtask: Linux {}", files.version);
            modules.extend([files.vmlinuz, files.initramfs, crate::test::configs_dir(&layout).join("linux.cfg")]);
        }
        let mut all = vec![Module {
            path: dom0,
            cmdline: args.boot.cmdline.clone(),
        }];
        all.extend(modules.iter().map(|path| Module::named(path)));
        Boot::Kernel {
            kernel: layout.microkernel_elf32(),
            xen_cmdline: args.boot.xen_cmdline.clone(),
            modules: all,
        }
    };
    let disk = if args.no_disk {
        None
    } else {
        let path = args.disk.clone().unwrap_or_else(|| layout.boot_dir().join("disk.img"));
        if args.disk.is_none() && crate::disk::ensure(&path, &crate::disk::standard_files(&layout)?)? {
            eprintln!("xtask: made {} ({} MiB, the standard partitions; vda1 holds the example guests and their configs)", path.display(), crate::disk::DISK_MIB);
        }
        if !path.exists() {
            anyhow::bail!("--disk {}: no such file", path.display());
        }
        Some(path)
    };
    let interactive = std::io::stdin().is_terminal();
    let config = QemuConfig {
        disk,
        nic: args.net.then_some(crate::qemu::NicForward { host: args.http_port, guest_port: 80 }),
        boot,
        memory_mib: if args.linux { args.memory.max(LINUX_MEMORY_MIB) } else { args.memory },
        cpus: args.cpus,
        accel: args.accel,
        serial: if interactive {
            Serial::MonitorAndStdio
        } else {
            Serial::Stdio
        },
    };
    let mut cmd = config.command()?;
    eprintln!("xtask: {}", describe(&cmd));
    if interactive {
        eprintln!("xtask: Ctrl-A X quits QEMU, Ctrl-A C toggles its monitor");
    }
    let status = cmd.status().context("cannot start qemu-system-x86_64")?;
    let Some(code) = status.code() else {
        eprintln!("xtask: QEMU was killed ({status})");
        return Ok(ExitCode::FAILURE);
    };
    let exit = Exit::from_status(code);
    if exit != Exit::Poweroff {
        eprintln!("xtask: {}", exit.describe());
    }
    Ok(ExitCode::from(exit.run_exit_code()))
}
