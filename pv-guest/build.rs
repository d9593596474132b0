//! Links the guest bins with `guest.ld` as fixed-address, non-PIE images (target os `none` only;
//! host builds of the library, used by `cargo test --lib`, get no extra link arguments).

use std::env;
use std::path::PathBuf;

fn main() {
    let dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo"));
    let script = dir.join("guest.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");

    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    // The target's default relocation model is PIC (static-pie link); with --no-pie and the
    // script we get an ET_EXEC image at its link address with no runtime relocations.
    println!("cargo:rustc-link-arg-bins=--no-pie");
    // hello-low is the same program linked in the low half.
    println!("cargo:rustc-link-arg-bin=hello-low=--defsym=GUEST_BASE=0x400000");
}
