//! Machine memory: which physical ranges are free at boot, and the frame allocator.

pub mod boot_mem;
pub mod frame_alloc;

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
