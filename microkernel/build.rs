//! Links the microkernel with its linker script (fixed address, no PIE) and records the
//! build facts that `xen_version` reports.

use std::process::Command;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    }
    let run = |cmd: &str, args: &[&str]| -> Option<String> {
        let out = Command::new(cmd).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let compiler = run(&rustc, &["--version"]).unwrap_or_else(|| "rustc".into());
    let changeset = run("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let date = run("git", &["log", "-1", "--format=%cd", "--date=iso"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MK_COMPILER={compiler}");
    println!("cargo:rustc-env=MK_CHANGESET={changeset}");
    println!("cargo:rustc-env=MK_DATE={date}");
}
