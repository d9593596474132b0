//! The I/O plane between domains: the shared request/response ring, the xenstore wire
//! protocol and store engine, the store client, the front/back state machine, and the
//! block, net and console ring formats.
//!
//! Not written yet: it arrives with the store and split-driver issues. The crate exists now
//! so the workspace has its final shape.
#![no_std]
#![forbid(unsafe_code)]
