//! Installs what the build and the boots need, or says exactly how to.
//!
//! The rustup target is added with rustup. Host tools come from Debian packages: when
//! running as root they are installed with apt-get (only the missing ones); otherwise xtask
//! stops with the one command to run.

use crate::build::{run_checked, KERNEL_TARGET};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A host tool (or file) xtask needs and the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    /// A program looked up in PATH, or an absolute path that must exist.
    pub what: &'static str,
    /// The Debian package providing it.
    pub package: &'static str,
}

/// What booting with QEMU needs.
pub const QEMU: &[Tool] = &[Tool {
    what: "qemu-system-x86_64",
    package: "qemu-system-x86",
}];

/// What building the GRUB ISO needs.
pub const IMAGE: &[Tool] = &[
    Tool {
        what: "grub-mkrescue",
        package: "grub-common",
    },
    Tool {
        what: "/usr/lib/grub/i386-pc",
        package: "grub-pc-bin",
    },
    Tool {
        what: "xorriso",
        package: "xorriso",
    },
    Tool {
        what: "mformat",
        package: "mtools",
    },
];

/// Finds a program in PATH.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

impl Tool {
    /// Whether the tool is there.
    pub fn present(&self) -> bool {
        if self.what.starts_with('/') {
            Path::new(self.what).exists()
        } else {
            find_in_path(self.what).is_some()
        }
    }
}

/// The packages to install for the missing tools, without duplicates, in order.
pub fn missing_packages(tools: &[Tool], present: impl Fn(&Tool) -> bool) -> Vec<&'static str> {
    let mut packages = Vec::new();
    for tool in tools.iter().filter(|tool| !present(tool)) {
        if !packages.contains(&tool.package) {
            packages.push(tool.package);
        }
    }
    packages
}

/// The command that installs `packages`.
pub fn install_command(packages: &[&str]) -> String {
    format!(
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
         --no-install-recommends {}",
        packages.join(" ")
    )
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Makes sure every tool in `tools` is there, installing the missing packages as root.
pub fn ensure_tools(tools: &[Tool]) -> Result<()> {
    let packages = missing_packages(tools, Tool::present);
    if packages.is_empty() {
        return Ok(());
    }
    let command = install_command(&packages);
    if !running_as_root() {
        bail!("missing host tools; install them with: sudo sh -c '{command}'");
    }
    eprintln!("xtask: installing {}", packages.join(" "));
    run_checked(Command::new("apt-get").arg("update")).context("apt-get update")?;
    run_checked(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&packages),
    )
    .with_context(|| format!("installing {}", packages.join(" ")))?;
    let still = missing_packages(tools, Tool::present);
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(" "));
    }
    Ok(())
}

/// Makes sure the kernels' rustup target is installed.
pub fn ensure_rust_target() -> Result<()> {
    let Ok(out) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        // A toolchain without rustup: let cargo say what is missing.
        eprintln!("xtask: warning: rustup not found; assuming {KERNEL_TARGET} is installed");
        return Ok(());
    };
    let installed = String::from_utf8_lossy(&out.stdout);
    if installed.lines().any(|line| line.trim() == KERNEL_TARGET) {
        return Ok(());
    }
    eprintln!("xtask: adding the rustup target {KERNEL_TARGET}");
    run_checked(Command::new("rustup").args(["target", "add", KERNEL_TARGET]))
        .with_context(|| format!("run: rustup target add {KERNEL_TARGET}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_missing_packages_once_each() {
        let tools = [
            Tool {
                what: "a",
                package: "pkg-a",
            },
            Tool {
                what: "b",
                package: "pkg-b",
            },
            Tool {
                what: "c",
                package: "pkg-a",
            },
            Tool {
                what: "d",
                package: "pkg-d",
            },
        ];
        let missing = missing_packages(&tools, |tool| tool.what == "b");
        assert_eq!(missing, ["pkg-a", "pkg-d"]);
        assert!(missing_packages(&tools, |_| true).is_empty());
    }

    #[test]
    fn install_command_names_the_packages() {
        let cmd = install_command(&["qemu-system-x86", "mtools"]);
        assert!(cmd.starts_with("apt-get update && "));
        assert!(cmd.ends_with("apt-get install -y --no-install-recommends qemu-system-x86 mtools"));
    }

    #[test]
    fn finds_sh_in_path() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("surely-no-such-program-here").is_none());
        assert!(Tool {
            what: "/",
            package: "x"
        }
        .present());
    }
}
