//! The I/O plane between domains (placeholder overview, completed below).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod path;
pub mod store;
pub mod wire;
