//! What a guest crate's `build.rs` calls so that its bins link as PV kernels: with the
//! kit's linker script (`pv-guest/guest.ld`) into fixed-address, non-PIE ELF images at
//! their link address, with no runtime relocations. Host builds (a crate's library under
//! `cargo test`) get no link arguments.
//!
//! ```ignore
//! // build.rs of a guest crate; `guest-link` in its [build-dependencies]
//! fn main() {
//!     guest_link::link_guest_bins(&[]);
//! }
//! ```
#![forbid(unsafe_code)]

use std::env;
use std::path::PathBuf;

/// The kit's linker script.
pub fn script() -> PathBuf {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("pv-guest").join("guest.ld");
    script.canonicalize().unwrap_or(script)
}

/// Prints the link arguments of the calling crate's bins: the script and `--no-pie` for
/// every bin, then each `(bin, argument)` of `per_bin` (e.g. a `--defsym` moving one bin's
/// base). Only when building for target os `none`.
pub fn link_guest_bins(per_bin: &[(&str, &str)]) {
    let script = script();
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    // The target's default relocation model is PIC (a static-pie link); with --no-pie and
    // the script the image is an ET_EXEC at its link address.
    println!("cargo:rustc-link-arg-bins=--no-pie");
    for (bin, arg) in per_bin {
        println!("cargo:rustc-link-arg-bin={bin}={arg}");
    }
}
