//! Grant table operation numbers (`GNTTABOP_*` in `grant_table.h`).
//!
//! Numbers only for now; the argument structs come with the grant table work.

/// Map a foreign domain's granted frame.
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// Unmap a mapping made by `GNTTABOP_MAP_GRANT_REF`.
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// Set up (and return the frames of) a domain's grant table.
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// Dump a grant table to the hypervisor console (debugging).
pub const GNTTABOP_DUMP_TABLE: u32 = 3;
/// Transfer a frame to a foreign domain.
pub const GNTTABOP_TRANSFER: u32 = 4;
/// Copy between granted frames without mapping them.
pub const GNTTABOP_COPY: u32 = 5;
/// Query the current and maximum grant table size.
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// Unmap a grant mapping and replace it with another.
pub const GNTTABOP_UNMAP_AND_REPLACE: u32 = 7;
/// Select grant table format version 1 or 2.
pub const GNTTABOP_SET_VERSION: u32 = 8;
/// Get the frames of the v2 status table.
pub const GNTTABOP_GET_STATUS_FRAMES: u32 = 9;
/// Get the grant table format version in use.
pub const GNTTABOP_GET_VERSION: u32 = 10;
/// Swap two grant entries.
pub const GNTTABOP_SWAP_GRANT_REF: u32 = 11;
/// Cache maintenance on granted frames (Arm).
pub const GNTTABOP_CACHE_FLUSH: u32 = 12;
