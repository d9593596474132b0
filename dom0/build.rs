//! Links the dom0 kernel with the guest kit's linker script (`pv-guest/guest.ld`) as a
//! fixed-address, non-PIE image (target os `none` only; host builds of the library get
//! nothing).

use std::env;
use std::path::PathBuf;

fn main() {
    let dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo"));
    let script = dir.join("../pv-guest/guest.ld");
    let script = script.canonicalize().unwrap_or(script);
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");

    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    println!("cargo:rustc-link-arg-bins=--no-pie");
}
