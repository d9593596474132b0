//! A distribution Linux for the Linux scenarios: Debian's cloud kernel (built with
//! `CONFIG_XEN_PV`) as Debian ships it (`vmlinuz`, an LZ4 bzImage that dom0 unpacks), and
//! an initramfs of Debian's `busybox-static` with the kernel's own `xen-blkfront` and
//! `xen-netfront` modules. Both packages come from Debian's archive through
//! `apt-get download`; everything lands in `target/linux/` and is reused while there.
//!
//! The initramfs boots busybox `init` (`/init`): `/etc/init.d/rcS` mounts `/proc`, `/sys`
//! and `/dev`, loads the two front-ends and says `rcS: ready`; a login shell runs on the
//! Xen console (`hvc0`) with the prompt `linux# `; `poweroff` (or dom0's `xl shutdown`,
//! which Linux turns into one) ends the domain.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build::{run_checked, Layout};

/// The meta-package naming Debian's current cloud kernel.
const KERNEL_META: &str = "linux-image-cloud-amd64";
/// Busybox, statically linked.
const BUSYBOX: &str = "busybox-static";
/// The front-end modules put in the initramfs, by their path under the kernel's
/// `lib/modules/<version>/kernel/`.
const MODULES: [&str; 2] = ["drivers/block/xen-blkfront.ko", "drivers/net/xen-netfront.ko"];

/// What the Linux scenarios boot: module names are the file names.
#[derive(Debug, Clone)]
pub struct LinuxFiles {
    /// The kernel as packaged.
    pub vmlinuz: PathBuf,
    /// The initramfs (newc cpio, uncompressed).
    pub initramfs: PathBuf,
    /// The kernel's version (`6.1.0-57-cloud-amd64`).
    pub version: String,
}

/// `target/linux`.
pub fn dir(layout: &Layout) -> PathBuf {
    layout.target.join("linux")
}

/// The kernel's path (module name `vmlinuz`).
pub fn vmlinuz_path(layout: &Layout) -> PathBuf {
    dir(layout).join("vmlinuz")
}

/// The initramfs's path (module name `initramfs.cpio`).
pub fn initramfs_path(layout: &Layout) -> PathBuf {
    dir(layout).join("initramfs.cpio")
}

/// Fetches and builds what is missing; returns the files.
pub fn prepare(layout: &Layout) -> Result<LinuxFiles> {
    let dir = dir(layout);
    let version_file = dir.join("version");
    let files = |version: String| LinuxFiles {
        vmlinuz: vmlinuz_path(layout),
        initramfs: initramfs_path(layout),
        version,
    };
    if let Ok(version) = std::fs::read_to_string(&version_file) {
        if vmlinuz_path(layout).is_file() && initramfs_path(layout).is_file() {
            return Ok(files(version.trim().to_string()));
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let kernel_pkg = kernel_package()?;
    let debs = dir.join("debs");
    let _ = std::fs::remove_dir_all(&debs);
    std::fs::create_dir_all(&debs)?;
    eprintln!("xtask: fetching {kernel_pkg} and {BUSYBOX} from Debian's archive");
    run_checked(
        Command::new("apt-get")
            .args(["download", &kernel_pkg, BUSYBOX])
            .current_dir(&debs),
    )
    .context("apt-get download (needs Debian's package lists: apt-get update)")?;
    let extract = dir.join("extract");
    let _ = std::fs::remove_dir_all(&extract);
    for deb in std::fs::read_dir(&debs)? {
        let deb = deb?.path();
        run_checked(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&extract))
            .with_context(|| format!("unpacking {}", deb.display()))?;
    }
    let boot = extract.join("boot");
    let vmlinuz = find_one(&boot, "vmlinuz-")?;
    let version = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .context("the kernel's file name")?
        .to_string();
    std::fs::copy(&vmlinuz, vmlinuz_path(layout)).context("copying vmlinuz")?;
    let modules = extract.join("lib/modules").join(&version).join("kernel");
    let busybox = extract.join("bin/busybox");
    let image = initramfs(&busybox, &modules)?;
    std::fs::write(initramfs_path(layout), image).context("writing the initramfs")?;
    std::fs::write(&version_file, format!("{version}\n"))?;
    let _ = std::fs::remove_dir_all(&extract);
    Ok(files(version))
}

/// The versioned kernel package the meta-package depends on; runs `apt-get update` first
/// (as root) when the package lists do not know it.
fn kernel_package() -> Result<String> {
    let depends = || -> Result<Option<String>> {
        let out = Command::new("apt-cache")
            .args(["depends", KERNEL_META])
            .output()
            .context("running apt-cache")?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|p| p.starts_with("linux-image-") && !p.contains('<'))
            .map(str::to_string))
    };
    if let Some(p) = depends()? {
        return Ok(p);
    }
    eprintln!("xtask: apt-get update (the package lists do not know {KERNEL_META})");
    run_checked(Command::new("apt-get").arg("update")).context("apt-get update")?;
    match depends()? {
        Some(p) => Ok(p),
        None => bail!("Debian's archive has no {KERNEL_META} (apt-cache depends found nothing)"),
    }
}

/// The one entry of `dir` whose name starts with `prefix`.
fn find_one(dir: &Path, prefix: &str) -> Result<PathBuf> {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("expected one {prefix}* in {}, found {}", dir.display(), found.len()),
    }
}

/// busybox's inittab: rcS, then a login shell on the Xen console, respawned.
const INITTAB: &str = "\
::sysinit:/etc/init.d/rcS
hvc0::respawn:-/bin/sh
::shutdown:/bin/echo init: powering off
";

/// Mounts, loads the front-ends, says it is ready.
const RCS: &str = "\
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in /lib/modules/*.ko; do insmod $m || echo \"rcS: insmod $m failed\"; done
echo \"rcS: ready: $(uname -sr)\"
";

/// The shell's prompt, which the scenarios wait for.
const PROFILE: &str = "export PS1='linux# '\nexport PATH=/sbin:/usr/sbin:/bin:/usr/bin\n";

/// The initramfs: busybox with a link for each applet, `/init`, the scripts, the modules,
/// and `/dev/console` (the kernel opens it for init before anything is mounted).
pub fn initramfs(busybox: &Path, modules: &Path) -> Result<Vec<u8>> {
    let applets = Command::new(busybox)
        .arg("--list-full")
        .output()
        .with_context(|| format!("running {} --list-full", busybox.display()))?;
    if !applets.status.success() {
        bail!("{} --list-full failed", busybox.display());
    }
    let applets = String::from_utf8(applets.stdout).context("busybox's applet list")?;
    let mut cpio = Cpio::default();
    for d in ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "etc", "etc/init.d", "lib", "lib/modules", "root"] {
        cpio.dir(d)?;
    }
    cpio.char_device("dev/console", 5, 1)?;
    cpio.file("bin/busybox", 0o755, &std::fs::read(busybox).context("reading busybox")?)?;
    for path in applets.lines().map(str::trim).filter(|p| !p.is_empty() && *p != "bin/busybox") {
        let depth = path.matches('/').count();
        let target = format!("{}bin/busybox", "../".repeat(depth));
        cpio.symlink(path, &target)?;
    }
    cpio.symlink("init", "bin/busybox")?;
    cpio.file("etc/inittab", 0o644, INITTAB.as_bytes())?;
    cpio.file("etc/init.d/rcS", 0o755, RCS.as_bytes())?;
    cpio.file("etc/profile", 0o644, PROFILE.as_bytes())?;
    for m in MODULES {
        let path = modules.join(m);
        let name = Path::new(m).file_name().and_then(|n| n.to_str()).context("module name")?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        cpio.file(&format!("lib/modules/{name}"), 0o644, &bytes)?;
    }
    cpio.finish()
}

/// A newc cpio archive being written (through the `cpio` crate).
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) -> Result<()> {
        self.ino += 1;
        let builder = cpio::newc::Builder::new(name)
            .ino(self.ino)
            .mode(mode)
            .nlink(if mode & 0o170000 == 0o040000 { 2 } else { 1 })
            .rdev_major(rdev.0)
            .rdev_minor(rdev.1);
        let len = u32::try_from(data.len()).context("cpio member too large")?;
        let mut writer = builder.write(&mut self.out, len);
        writer.write_all(data)?;
        writer.finish()?;
        Ok(())
    }

    fn dir(&mut self, name: &str) -> Result<()> {
        self.entry(name, 0o040755, &[], (0, 0))
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<()> {
        self.entry(name, 0o100000 | perm, data, (0, 0))
    }

    fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        self.entry(name, 0o120777, target.as_bytes(), (0, 0))
    }

    fn char_device(&mut self, name: &str, major: u32, minor: u32) -> Result<()> {
        self.entry(name, 0o020600, &[], (major, minor))
    }

    fn finish(mut self) -> Result<Vec<u8>> {
        cpio::newc::trailer(&mut self.out)?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_members_read_back_with_their_kinds() {
        let mut c = Cpio::default();
        c.dir("etc").unwrap();
        c.file("etc/inittab", 0o644, INITTAB.as_bytes()).unwrap();
        c.symlink("init", "bin/busybox").unwrap();
        c.char_device("dev/console", 5, 1).unwrap();
        let bytes = c.finish().unwrap();
        let mut rest = &bytes[..];
        let mut seen = Vec::new();
        loop {
            let reader = cpio::NewcReader::new(rest).unwrap();
            if reader.entry().is_trailer() {
                break;
            }
            let e = reader.entry();
            seen.push((e.name().to_string(), e.mode(), e.file_size(), e.rdev_major(), e.rdev_minor()));
            rest = reader.finish().unwrap();
        }
        assert_eq!(
            seen,
            [
                ("etc".to_string(), 0o040755, 0, 0, 0),
                ("etc/inittab".to_string(), 0o100644, INITTAB.len() as u32, 0, 0),
                ("init".to_string(), 0o120777, 11, 0, 0),
                ("dev/console".to_string(), 0o020600, 0, 5, 1),
            ]
        );
    }
}
