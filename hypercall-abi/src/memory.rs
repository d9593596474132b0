//! Memory operations (`memory_op`, `memory.h`): the `XENMEM_*` numbers and the argument
//! structures the hypervisor implements for PV guests.
//!
//! Number 8 (`XENMEM_translate_gpfn_list`) is retired.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

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

/// `memory_op`'s `cmd` carries a start extent above this shift (Xen's
/// `MEMOP_EXTENT_SHIFT`, `xen/hypercall.h`): a preempted reservation operation is
/// continued with `cmd = op | (extents_done << MEMOP_EXTENT_SHIFT)`.
pub const MEMOP_EXTENT_SHIFT: u32 = 6;
/// Mask of the operation number in `memory_op`'s `cmd` (`MEMOP_CMD_MASK`).
pub const MEMOP_CMD_MASK: u64 = (1 << MEMOP_EXTENT_SHIFT) - 1;

/// `XENMEMF_address_bits(x)`: the allocation must lie below `2^x` bytes (0: anywhere).
pub const fn xenmemf_address_bits(x: u32) -> u32 {
    x
}
/// `XENMEMF_get_address_bits(flags)`.
pub const fn xenmemf_get_address_bits(flags: u32) -> u32 {
    flags & 0xff
}
/// `XENMEMF_node(n)`: allocate from NUMA node `n`.
pub const fn xenmemf_node(n: u32) -> u32 {
    (n + 1) << 8
}
/// `XENMEMF_populate_on_demand`: populate with populate-on-demand entries (HVM).
pub const XENMEMF_POPULATE_ON_DEMAND: u32 = 1 << 16;
/// `XENMEMF_exact_node_request`: only from the node given.
pub const XENMEMF_EXACT_NODE_REQUEST: u32 = 1 << 17;
/// `XENMEMF_vnode`: the node given is a virtual node.
pub const XENMEMF_VNODE: u32 = 1 << 18;

/// `struct xen_memory_reservation` (32 bytes): the argument of
/// `XENMEM_increase_reservation`, `XENMEM_decrease_reservation` and
/// `XENMEM_populate_physmap`.
///
/// `extent_start` is a guest pointer to an array of `xen_pfn_t` (u64): machine
/// frames out (increase), machine frames in (decrease, for a PV guest), or
/// pseudo-physical frames in and machine frames out (populate).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenMemoryReservation {
    /// Guest pointer to the extent list (`XEN_GUEST_HANDLE(xen_pfn_t)`).
    pub extent_start: u64,
    /// Number of extents.
    pub nr_extents: u64,
    /// Each extent is `2^extent_order` pages.
    pub extent_order: u32,
    /// `XENMEMF_*` flags.
    pub mem_flags: u32,
    /// The domain whose reservation changes (`DOMID_SELF` for the caller).
    pub domid: u16,
    /// Padding (implicit in C), zero.
    pub _pad: [u16; 3],
}

const _: () = assert!(core::mem::size_of::<XenMemoryReservation>() == 32);

/// `struct xen_memory_exchange` (72 bytes), the argument of `XENMEM_exchange`: the
/// extents given up (for a PV guest, machine frames), the extents wanted (pseudo-physical
/// frames in, the first machine frame of each extent out) and the progress.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenMemoryExchange {
    /// The extents given up.
    pub input: XenMemoryReservation,
    /// The extents wanted.
    pub output: XenMemoryReservation,
    /// IN/OUT: `input` extents exchanged so far (0 on the first call).
    pub nr_exchanged: u64,
}

const _: () = assert!(core::mem::size_of::<XenMemoryExchange>() == 72);

/// `struct xen_memory_domain` (2 bytes): the argument of
/// `XENMEM_current_reservation`, `XENMEM_maximum_reservation` and
/// `XENMEM_maximum_gpfn`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenMemoryDomain {
    /// The domain asked about (`DOMID_SELF` for the caller).
    pub domid: u16,
}

const _: () = assert!(core::mem::size_of::<XenMemoryDomain>() == 2);

/// `struct xen_memory_map` (16 bytes): the argument of `XENMEM_memory_map` and
/// `XENMEM_machine_memory_map`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenMemoryMap {
    /// In: entries the buffer can hold. Out: entries stored.
    pub nr_entries: u32,
    /// Padding (implicit in C), zero.
    pub _pad: u32,
    /// Guest pointer to an array of [`E820Entry`].
    pub buffer: u64,
}

const _: () = assert!(core::mem::size_of::<XenMemoryMap>() == 16);

/// One entry of a memory map in the BIOS INT 15h E820 format (Xen's
/// `struct __packed e820entry`, 20 bytes: no padding between entries).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct E820Entry {
    /// First byte of the range.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// `E820_*` type.
    pub kind: u32,
}

const _: () = assert!(core::mem::size_of::<E820Entry>() == 20);

/// E820 type: usable RAM.
pub const E820_RAM: u32 = 1;
/// E820 type: reserved.
pub const E820_RESERVED: u32 = 2;
/// E820 type: ACPI tables, reclaimable.
pub const E820_ACPI: u32 = 3;
/// E820 type: ACPI non-volatile storage.
pub const E820_NVS: u32 = 4;
/// E820 type: unusable.
pub const E820_UNUSABLE: u32 = 5;

/// `struct xen_machphys_mapping` (24 bytes): the argument of
/// `XENMEM_machphys_mapping`, where the read-only M2P table lies in every PV
/// guest's address space.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenMachphysMapping {
    /// First virtual address of the table.
    pub v_start: u64,
    /// End (exclusive) of the table.
    pub v_end: u64,
    /// Largest machine frame number the table can be looked up with.
    pub max_mfn: u64,
}

const _: () = assert!(core::mem::size_of::<XenMachphysMapping>() == 24);

/// `struct xen_machphys_mfn_list` (24 bytes): the argument of `XENMEM_machphys_mfn_list`,
/// the machine frames of each 2 MiB extent of the M2P table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct XenMachphysMfnList {
    /// IN: entries `extent_start` has room for.
    pub max_extents: u32,
    /// Padding.
    pub _pad0: u32,
    /// IN: where the frames go (one `xen_pfn_t` each).
    pub extent_start: u64,
    /// OUT: entries written.
    pub nr_extents: u32,
    /// Padding.
    pub _pad1: u32,
}

const _: () = assert!(core::mem::size_of::<XenMachphysMfnList>() == 24);
