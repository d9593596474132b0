//! The microkernel binary: everything lives in the library; this only pulls it in so the
//! linker sees the entry point, the panic handler and the allocator. Built for the host it
//! is a stub that says how to run the real thing, so `cargo build` at the root works.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
use microkernel as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the microkernel runs on bare metal: use `cargo xtask run`");
    std::process::exit(1);
}
