//! Memory operation numbers (`XENMEM_*`, the `cmd` of `memory_op`, in `memory.h`).
//!
//! Numbers only for now; the argument structs come with the memory work.
//! Number 8 (`XENMEM_translate_gpfn_list`) is retired.

/// Add frames to the domain's reservation.
pub const XENMEM_INCREASE_RESERVATION: u32 = 0;
/// Release frames from the domain's reservation.
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
/// Largest machine frame number in the system.
pub const XENMEM_MAXIMUM_RAM_PAGE: u32 = 2;
/// Current reservation of a domain, in pages.
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
/// Maximum reservation of a domain, in pages.
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;
/// List the machine frames that hold the M2P table.
pub const XENMEM_MACHPHYS_MFN_LIST: u32 = 5;
/// Populate pseudo-physical frames with memory.
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// Map a special page (shared info, grant table, ...) into the physmap.
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// The domain's pseudo-physical memory map (e820-style).
pub const XENMEM_MEMORY_MAP: u32 = 9;
/// The machine memory map (privileged).
pub const XENMEM_MACHINE_MEMORY_MAP: u32 = 10;
/// Exchange frames for frames with other constraints.
pub const XENMEM_EXCHANGE: u32 = 11;
/// Virtual location and size of the M2P table.
pub const XENMEM_MACHPHYS_MAPPING: u32 = 12;
/// Set a domain's pseudo-physical memory map (toolstack).
pub const XENMEM_SET_MEMORY_MAP: u32 = 13;
/// Largest pseudo-physical frame number of a domain.
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;
/// Remove a frame from the physmap.
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;
/// Set the populate-on-demand target.
pub const XENMEM_SET_POD_TARGET: u32 = 16;
/// Get the populate-on-demand target.
pub const XENMEM_GET_POD_TARGET: u32 = 17;
/// Number of frames freed by memory sharing.
pub const XENMEM_GET_SHARING_FREED_PAGES: u32 = 18;
/// Number of frames shared.
pub const XENMEM_GET_SHARING_SHARED_PAGES: u32 = 19;
/// Memory paging operations.
pub const XENMEM_PAGING_OP: u32 = 20;
/// Memory access (permissions) operations.
pub const XENMEM_ACCESS_OP: u32 = 21;
/// Memory sharing operations.
pub const XENMEM_SHARING_OP: u32 = 22;
/// Batched `XENMEM_ADD_TO_PHYSMAP` (formerly `add_to_physmap_range`).
pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u32 = 23;
/// Claim pages for a domain being built.
pub const XENMEM_CLAIM_PAGES: u32 = 24;
/// List the machine frames of the 32-bit compat M2P table.
pub const XENMEM_MACHPHYS_COMPAT_MFN_LIST: u32 = 25;
/// Virtual NUMA topology of a domain.
pub const XENMEM_GET_VNUMAINFO: u32 = 26;
/// Reserved device memory regions.
pub const XENMEM_RESERVED_DEVICE_MEMORY_MAP: u32 = 27;
/// Map a resource (ioreq server, grant table, trace buffer) of a domain.
pub const XENMEM_ACQUIRE_RESOURCE: u32 = 28;
