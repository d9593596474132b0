//! The I/O plane between domains (placeholder overview, completed below).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod client;
pub mod path;
pub mod ring;
pub mod service;
pub mod state;
pub mod store;
pub mod wire;
