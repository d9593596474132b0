//! hello: the smallest guest, linked at the default base (0xffffffff80000000).
//! The program is in `hello/program.rs`, shared with `hello-low`.
#![no_std]
#![no_main]

#[path = "hello/program.rs"]
mod program;
