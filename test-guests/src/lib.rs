//! What the test guests share: the pingpong guest's command line (portable, host-tested
//! here) and the free-page walk of `pattern` and `scanner`.
#![no_std]

extern crate alloc;

pub mod pingpong_args;
#[cfg(target_os = "none")]
pub mod scrub_walk;
