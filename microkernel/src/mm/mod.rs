//! Machine memory: which physical ranges are free at boot, the frame allocator, and direct
//! paging (per-frame accounting and the validated page-table operations).
#![forbid(unsafe_code)]

// Frame numbers, entries and counts here come from guests: no panics on any value.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod audit;
pub mod boot_mem;
pub mod descriptor;
pub mod frame_alloc;
pub mod grant;
pub mod ops;
pub mod page_info;
pub mod pt;
pub mod teardown;
pub mod validate;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod foreign_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod rules_tests;

/// Size of a page and of a frame.
pub const PAGE_SIZE: u64 = 4096;

/// Rounds `x` up to a multiple of the page size (saturating at the top of the address space).
pub const fn page_round_up(x: u64) -> u64 {
    match x.checked_add(PAGE_SIZE - 1) {
        Some(v) => v & !(PAGE_SIZE - 1),
        None => !(PAGE_SIZE - 1),
    }
}

/// Rounds `x` down to a multiple of the page size.
pub const fn page_round_down(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}
