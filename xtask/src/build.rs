//! Builds the kernels for x86_64-unknown-none and knows where every artifact lives.

use crate::{deps, mkelf32};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kernels' target; passed explicitly (the workspace has no global `build.target`).
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// The example and test guests (the example-guests, test-guests, net-guests and smp-guests crates).
pub const GUESTS: &[&str] = &[
    "hello",
    "fuzz",
    "hello-low",
    "abi-test",
    "xen-abi",
    "fault",
    "bench",
    "mm-test",
    "mm-hostile",
    "spinner",
    "cpuhog",
    "nullcall",
    "counter",
    "pattern",
    "scanner",
    "probe",
    "crasher",
    "idler",
    "traps-test",
    "fpu-test",
    "events-test",
    "time-test",
    "portlimit",
    "user-test",
    "pingpong",
    "echo",
    "grant-test",
    "store-test",
    "blk-test",
    // net-guests
    "netpeer",
    "web",
    // smp-guests
    "smp",
    "blklog",
    "hostile",
];

/// Where the workspace and its build outputs are.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The workspace root (parent of xtask/).
    pub root: PathBuf,
    /// The workspace's normal target directory, `<root>/target`.
    pub target: PathBuf,
}

impl Layout {
    /// The layout of the workspace this xtask was built from.
    pub fn workspace() -> Layout {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf();
        let target = root.join("target");
        Layout { root, target }
    }

    /// `target/x86_64-unknown-none/release`: the kernel binaries.
    pub fn kernel_dir(&self) -> PathBuf {
        self.target.join(KERNEL_TARGET).join("release")
    }

    /// A kernel binary by its cargo name (`microkernel`, `dom0`, `hello`...).
    pub fn kernel(&self, name: &str) -> PathBuf {
        self.kernel_dir().join(name)
    }

    /// `target/boot`: what xtask assembles for booting.
    pub fn boot_dir(&self) -> PathBuf {
        self.target.join("boot")
    }

    /// The ELF32 microkernel that QEMU's Multiboot loader and GRUB load.
    pub fn microkernel_elf32(&self) -> PathBuf {
        self.boot_dir().join("microkernel.elf32")
    }

    /// The default GRUB ISO.
    pub fn iso(&self) -> PathBuf {
        self.boot_dir().join("microkernel.iso")
    }

    /// Resolves a `--dom0`/`--module` argument: an existing file, or the name of a built
    /// kernel (`dom0`, `hello`, `abi-test`...).
    pub fn resolve_image(&self, arg: &Path) -> Result<PathBuf> {
        if arg.is_file() {
            return Ok(arg.to_path_buf());
        }
        if let Some(name) = arg.to_str() {
            if name == "dom0" || GUESTS.contains(&name) {
                return Ok(self.kernel(name));
            }
        }
        bail!(
            "{} is neither a file nor a built image name (dom0, {})",
            arg.display(),
            GUESTS.join(", ")
        )
    }

    /// A `cargo` command run at the workspace root with the workspace's normal target
    /// directory, whatever CARGO_TARGET_DIR the caller has.
    pub fn cargo(&self) -> Command {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&self.root)
            .env("CARGO_TARGET_DIR", &self.target);
        cmd
    }
}

/// Runs a command with inherited stdio and fails unless it exits 0.
pub fn run_checked(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

/// A command as a shell would show it (for error messages).
pub fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Builds microkernel, dom0 and the guests in release mode, then writes the ELF32
/// microkernel. Returns the layout for finding the results.
pub fn build_kernels() -> Result<Layout> {
    build_kernels_with(&[])
}

/// As [`build_kernels`], with the microkernel's benchmark hooks (`--features bench`): for
/// `cargo xtask bench` only.
pub fn build_kernels_for_bench() -> Result<Layout> {
    build_kernels_with(&["--features", "microkernel/bench"])
}

fn build_kernels_with(extra: &[&str]) -> Result<Layout> {
    deps::ensure_rust_target()?;
    let layout = Layout::workspace();
    let mut cmd = layout.cargo();
    cmd.args(["build", "--release", "--target", KERNEL_TARGET])
        .args(["-p", "microkernel", "-p", "dom0", "-p", "example-guests", "-p", "test-guests", "-p", "net-guests", "-p", "smp-guests"])
        .args(extra);
    run_checked(&mut cmd).context("building the kernels")?;
    // Guests are checked where they are used, so one missing test guest does not stop
    // `run` with the others.
    for name in ["microkernel", "dom0"] {
        let path = layout.kernel(name);
        if !path.is_file() {
            bail!("the build did not produce {}", path.display());
        }
    }
    mkelf32::convert_file(&layout.kernel("microkernel"), &layout.microkernel_elf32())?;
    Ok(layout)
}
