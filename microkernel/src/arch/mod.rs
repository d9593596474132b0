//! Hardware glue. Portable code reaches the machine only through the names re-exported
//! here; everything below `x86_64/` is the only place that touches registers, port I/O,
//! descriptor tables, page-table frames or assembly.

pub mod x86_64;

pub use self::x86_64::{
    console, exit, paging,
    paging::{directmap, DIRECTMAP_BASE},
    time,
    trap::{enter_guest_first_time, enter_guest_from, GuestFrame},
};
