//! dom0's portable logic: shell command parsing and the text of its reports. Everything here
//! is plain data in, text out, so it is unit-tested on the host; the kernel (`main.rs`)
//! feeds it hypercall results and console input.
#![no_std]
#![forbid(unsafe_code)]

pub mod report;
pub mod shell;

/// The longest shell line, in bytes; further input is dropped (with a bell).
pub const MAX_LINE: usize = 256;

/// Name and version shown in the banner.
pub const BANNER: &str = concat!("rust-pv dom0 ", env!("CARGO_PKG_VERSION"));
