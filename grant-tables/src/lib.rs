//! Grant tables (v1): a granter's reference allocator and the rules that decide whether a
//! map, unmap or copy is allowed, as pure logic the microkernel calls.
//!
//! Not written yet: it arrives with the grant-table issue. The crate exists now so the
//! workspace has its final shape and the microkernel's dependency graph does not change
//! when it lands.
#![no_std]
#![forbid(unsafe_code)]
