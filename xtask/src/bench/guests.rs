//! Xen's own guests in `cargo xtask bench`: the wall time (under TCG, on this host) from
//! typing `xl create` at dom0's prompt to Debian's Linux reaching its busybox shell (the
//! line the shell prints just before its prompt), and to Mini-OS reaching its test main.
//! The steps are timed by the scripted session as they happen (`Session::step_times`).

use super::{boot, Record};
use crate::build::Layout;
use crate::qemu::{Accel, Module, Session, WAIT_FOR};
use anyhow::{bail, Result};
use serde_json::Number;
use std::time::Duration;

/// Linux boots in tens of seconds under TCG; room for a loaded host.
pub const TIMEOUT: Duration = Duration::from_secs(240);

/// One guest's figure: the session and the milliseconds from `xl create` to its mark.
pub struct GuestBoot {
    /// The figure, when the mark was seen.
    pub record: Option<Record>,
    /// The console.
    pub session: Session,
}

/// Boots dom0 with `modules`, creates `config`'s guest and times it to `mark` (a regex of
/// a whole line); the figure is named `name`.
fn time_to(layout: &Layout, accel: Accel, modules: Vec<Module>, memory_mib: u32, config: &str, mark: &str, name: &str) -> Result<GuestBoot> {
    let inputs = [format!("xl create {config}"), format!("{WAIT_FOR}{mark}"), "shutdown".to_string()];
    let session = boot(layout, accel, "dom0", modules, memory_mib, &inputs, TIMEOUT)?;
    let record = match session.step_times.as_slice() {
        [typed, seen, ..] => {
            let ms = ((*seen - *typed).as_secs_f64() * 1000.0).round();
            Number::from_f64(ms).map(|ms| Record::plain(name, ms, "ms"))
        }
        _ => None,
    };
    Ok(GuestBoot { record, session })
}

/// Linux to its shell, wall time from `xl create`.
pub fn linux(layout: &Layout, accel: Accel) -> Result<GuestBoot> {
    let files = crate::linux::prepare(layout)?;
    let config = crate::test::configs_dir(layout).join("linux.cfg");
    let modules = vec![Module::named(&files.vmlinuz), Module::named(&files.initramfs), Module::named(&config)];
    time_to(
        layout,
        accel,
        modules,
        crate::run::LINUX_MEMORY_MIB,
        "linux.cfg",
        r"\[linux\] Enter 'help' for a list of built-in commands\.$",
        "linux_create_to_shell_wall",
    )
}

/// Mini-OS to its test main, wall time from `xl create`.
pub fn minios(layout: &Layout, accel: Accel) -> Result<GuestBoot> {
    let kernel = layout.root.join("peers/mini-os/mini-os-test");
    let config = crate::test::configs_dir(layout).join("minios.cfg");
    for path in [&kernel, &config] {
        if !path.is_file() {
            bail!("{} is missing", path.display());
        }
    }
    time_to(
        layout,
        accel,
        vec![Module::named(&kernel), Module::named(&config)],
        256,
        "minios.cfg",
        r"\[minios\] Test main: par=0$",
        "minios_create_to_test_main_wall",
    )
}
