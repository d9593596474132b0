//! `cargo xtask image`: a bootable GRUB (multiboot2) ISO with the microkernel, dom0 and
//! guest modules.
//!
//! GRUB passes a module's words after its path, without the path, while QEMU's loader
//! passes the path too; the microkernel strips the first word (Xen's convention). So each
//! grub.cfg line names its image first, and a module's own command line follows as in
//! QEMU (`hello` for the hello guest). GRUB keeps its default console terminal: a serial
//! terminal would make GRUB read the serial input meant for dom0.

use crate::build::{build_kernels, describe, Layout};
use crate::run::BootArgs;
use crate::{deps, mkelf32};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Options of `cargo xtask image`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImageArgs {
    #[command(flatten)]
    boot: BootArgs,
    /// Where to write the ISO [default: target/boot/microkernel.iso].
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
}

/// What goes on the ISO.
#[derive(Debug, Clone)]
pub struct IsoSpec {
    /// The microkernel's command line.
    pub xen_cmdline: String,
    /// dom0's kernel.
    pub dom0: PathBuf,
    /// dom0's command line.
    pub dom0_cmdline: String,
    /// Further modules; each is named by its file name.
    pub modules: Vec<PathBuf>,
}

/// Builds and prints the ISO's path.
pub fn main(args: ImageArgs) -> Result<()> {
    let layout = build_kernels()?;
    deps::ensure_tools(deps::IMAGE)?;
    let out = args.out.unwrap_or_else(|| layout.iso());
    let iso = build_iso(&layout, &args.boot.iso_spec(&layout)?, &out)?;
    println!("{}", iso.display());
    Ok(())
}

/// Quotes a word for grub.cfg when it holds anything but plain characters.
fn grub_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./=:,+-@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        // Inside single quotes GRUB takes everything literally; a quote is closed,
        // escaped and reopened.
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A multiboot2 / module2 line: loader, file, image name, then the command line's words.
fn grub_line(loader: &str, file: &str, name: &str, cmdline: &str) -> String {
    let mut line = format!("    {loader} {file} {}", grub_word(name));
    for word in cmdline.split_whitespace() {
        line.push(' ');
        line.push_str(&grub_word(word));
    }
    line
}

/// The grub.cfg text; `modules` are file names under /boot, also used as their command line.
pub fn grub_cfg(xen_cmdline: &str, dom0_cmdline: &str, modules: &[String]) -> String {
    let mut cfg = String::from(
        "# Written by `cargo xtask image`.\n\
         # GRUB drops the file's path from a multiboot string, so each line names its image\n\
         # first (the microkernel strips that word, as Xen does); its command line follows.\n\
         set timeout=0\nset default=0\n\nmenuentry \"microkernel\" {\n",
    );
    cfg += &grub_line(
        "multiboot2",
        "/boot/microkernel.elf",
        "microkernel",
        xen_cmdline,
    );
    cfg += "\n";
    cfg += &grub_line("module2", "/boot/dom0", "dom0", dom0_cmdline);
    cfg += "\n";
    for name in modules {
        cfg += &grub_line("module2", &format!("/boot/{name}"), name, name);
        cfg += "\n";
    }
    cfg += "    boot\n}\n";
    cfg
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Lays out target/boot/iso and runs grub-mkrescue; returns the ISO path (`out`).
pub fn build_iso(layout: &Layout, spec: &IsoSpec, out: &Path) -> Result<PathBuf> {
    let tree = layout.boot_dir().join("iso");
    if tree.exists() {
        std::fs::remove_dir_all(&tree).with_context(|| format!("removing {}", tree.display()))?;
    }
    let boot = tree.join("boot");
    std::fs::create_dir_all(boot.join("grub"))
        .with_context(|| format!("creating {}", boot.display()))?;
    let kernel = layout.microkernel_elf32();
    let kernel_bytes =
        std::fs::read(&kernel).with_context(|| format!("reading {}", kernel.display()))?;
    if !mkelf32::has_multiboot2_header(&kernel_bytes) {
        eprintln!(
            "warning: {} has no Multiboot2 header in its first 32 KiB; GRUB's multiboot2 will not load it",
            kernel.display()
        );
    }
    copy(&kernel, &boot.join("microkernel.elf"))?;
    copy(&spec.dom0, &boot.join("dom0"))?;
    let mut names = Vec::new();
    for module in &spec.modules {
        let name = module
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .with_context(|| format!("{} has no file name", module.display()))?;
        if name == "dom0" || name == "microkernel.elf" || name == "grub" || names.contains(&name) {
            bail!("two files named {name:?} would go to the ISO's /boot");
        }
        copy(module, &boot.join(&name))?;
        names.push(name);
    }
    let cfg = grub_cfg(&spec.xen_cmdline, &spec.dom0_cmdline, &names);
    std::fs::write(boot.join("grub/grub.cfg"), cfg).context("writing grub.cfg")?;

    if let Some(dir) = out.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut cmd = Command::new("grub-mkrescue");
    cmd.arg("-o").arg(out).arg(&tree);
    // xorriso is chatty: show its output only when it fails.
    let output = cmd.output().context("cannot start grub-mkrescue")?;
    if !output.status.success() {
        bail!(
            "{} failed ({}):\n{}{}",
            describe(&cmd),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(out.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_lines() {
        let cfg = grub_cfg("loglvl=all", "console=hvc0 answer=42", &["hello".into()]);
        assert!(cfg.contains("set timeout=0\nset default=0\n"));
        assert!(cfg.contains("    multiboot2 /boot/microkernel.elf microkernel loglvl=all\n"));
        assert!(cfg.contains("    module2 /boot/dom0 dom0 console=hvc0 answer=42\n"));
        assert!(cfg.contains("    module2 /boot/hello hello hello\n"));
        assert!(!cfg.contains("serial"), "GRUB must not use the serial port");
        let dom0 = cfg.find("module2 /boot/dom0").unwrap();
        assert!(
            dom0 < cfg.find("module2 /boot/hello").unwrap(),
            "dom0 is the first module"
        );
    }

    #[test]
    fn empty_cmdlines() {
        let cfg = grub_cfg("", "", &[]);
        assert!(cfg.contains("    multiboot2 /boot/microkernel.elf microkernel\n"));
        assert!(cfg.contains("    module2 /boot/dom0 dom0\n"));
    }

    #[test]
    fn odd_words_are_quoted() {
        assert_eq!(grub_word("a=b,c"), "a=b,c");
        assert_eq!(grub_word("$x"), "'$x'");
        assert_eq!(grub_word("it's"), r"'it'\''s'");
        assert_eq!(grub_word("a;b"), "'a;b'");
    }
}
