//! dom0's portable logic: the shell and the `xl` toolstack (config files, the boot archive,
//! the domain builder over a [`builder::Control`] trait, domain watching, `xl list`), the
//! console back-end's ring logic ([`console`]), the store service ([`xenstore`]: the store,
//! dom0's local connection, each guest's ring), and the text of its reports. Everything here
//! is plain data in, text out, so it is unit-tested on the host; the kernel (`main.rs`)
//! implements `Control` with hypercalls and feeds it console input.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod archive;
pub mod bench;
pub mod builder;
pub mod config;
pub mod blkback;
pub mod console;
pub mod cpulist;
pub mod dma;
pub mod report;
pub mod shell;
pub mod split;
pub mod netback;
pub mod router;
pub mod vswitch;
pub mod toolstack;
pub mod watch;
pub mod xenstore;
pub mod xl;

#[cfg(test)]
mod testutil;

/// The longest shell line, in bytes; further input is dropped (with a bell).
pub const MAX_LINE: usize = 256;

/// Name and version shown in the banner.
pub const BANNER: &str = concat!("rust-pv dom0 ", env!("CARGO_PKG_VERSION"));
