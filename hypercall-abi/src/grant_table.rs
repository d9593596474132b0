//! Grant table operation numbers (`GNTTABOP_*`), v1 entries, flags, status codes and
//! argument structs (`grant_table.h`).
//!
//! The v1 entry, flags, status codes and argument structs follow `grant_table.h` (Xen 4.19)
//! field for field; explicit `_pad` fields stand where C has implicit padding.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

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

// ---- Grant entries (v1) -------------------------------------------------------------------

/// `GTF_invalid`: the entry grants nothing.
pub const GTF_INVALID: u16 = 0;
/// `GTF_permit_access`: `domid` may map or copy `frame`.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_accept_transfer`: `domid` may transfer a frame here (not supported by this hypervisor).
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// `GTF_transitive` (v2 only).
pub const GTF_TRANSITIVE: u16 = 3;
/// `GTF_type_mask`: the entry type bits.
pub const GTF_TYPE_MASK: u16 = 3;
/// `GTF_readonly`: the grantee may only read.
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading`: set by the hypervisor while the grantee has the frame mapped or in use.
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing`: set by the hypervisor while the grantee has the frame mapped writable.
pub const GTF_WRITING: u16 = 1 << 4;
/// `GTF_PWT` cache attribute.
pub const GTF_PWT: u16 = 1 << 5;
/// `GTF_PCD` cache attribute.
pub const GTF_PCD: u16 = 1 << 6;
/// `GTF_PAT` cache attribute.
pub const GTF_PAT: u16 = 1 << 7;
/// `GTF_sub_page` (v2 only): the grant covers part of the frame.
pub const GTF_SUB_PAGE: u16 = 1 << 8;

/// One v1 grant entry (`struct grant_entry_v1`, 8 bytes), in the granter's shared table.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GrantEntryV1 {
    /// `GTF_*`.
    pub flags: u16,
    /// The domain being granted access.
    pub domid: u16,
    /// The frame granted (a machine frame for a PV guest).
    pub frame: u32,
}

const _: () = assert!(core::mem::size_of::<GrantEntryV1>() == 8);

/// v1 entries per 4 KiB grant-table frame.
pub const GRANT_ENTRIES_V1_PER_FRAME: u32 = 4096 / 8;

/// Xen's reserved entries at the start of every table (`GNTTAB_NR_RESERVED_ENTRIES`):
/// 0 is the console ring's, 1 the xenstore ring's; guests allocate from 8 on.
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// Reserved entry for the console ring.
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// Reserved entry for the xenstore ring.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

// ---- Map flags and status codes -----------------------------------------------------------

/// `GNTMAP_device_map`: map for device (bus) access.
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// `GNTMAP_host_map`: map into the caller's page tables at `host_addr`.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// `GNTMAP_readonly`: map read-only.
pub const GNTMAP_READONLY: u32 = 1 << 2;
/// `GNTMAP_application_map`: user-accessible mapping (always, for a ring-3 PV kernel).
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
/// `GNTMAP_contains_pte`: `host_addr` is the machine address of the PTE (not supported here).
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;

/// `GNTCOPY_source_gref`: the copy's source is a grant reference (else a local frame).
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `GNTCOPY_dest_gref`: the copy's destination is a grant reference (else a local frame).
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// `GNTST_okay`.
pub const GNTST_OKAY: i16 = 0;
/// `GNTST_general_error`: bad flags or domid in the entry, a read-only grant mapped
/// writable, a frame that cannot be mapped, an unstable entry.
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// `GNTST_bad_domain`: unrecognised domain id.
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// `GNTST_bad_gntref`: unrecognised or inappropriate grant reference.
pub const GNTST_BAD_GNTREF: i16 = -3;
/// `GNTST_bad_handle`: unrecognised or inappropriate mapping handle.
pub const GNTST_BAD_HANDLE: i16 = -4;
/// `GNTST_bad_virt_addr`: inappropriate virtual address to map.
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// `GNTST_bad_dev_addr`: inappropriate device address to unmap.
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// `GNTST_no_device_space`: out of space in the I/O MMU.
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// `GNTST_permission_denied`: not enough privilege for the operation.
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// `GNTST_bad_page`: the frame is not valid for the operation.
pub const GNTST_BAD_PAGE: i16 = -9;
/// `GNTST_bad_copy_arg`: copy arguments cross a page boundary.
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// `GNTST_address_too_big`: transfer page address too large.
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// `GNTST_eagain`: operation not done; try again.
pub const GNTST_EAGAIN: i16 = -12;
/// `GNTST_no_space`: out of space (maptrack handles).
pub const GNTST_NO_SPACE: i16 = -13;

// ---- Operation arguments ------------------------------------------------------------------

/// `GNTTABOP_map_grant_ref` argument (`struct gnttab_map_grant_ref`, 32 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabMapGrantRef {
    /// IN: where to map (with `GNTMAP_host_map`).
    pub host_addr: u64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN: the granter's reference.
    pub r#ref: u32,
    /// IN: the granting domain.
    pub dom: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: handle for the unmap.
    pub handle: u32,
    /// OUT: bus address of the frame (with `GNTMAP_device_map`; here the machine address).
    pub dev_bus_addr: u64,
}

const _: () = assert!(core::mem::size_of::<GnttabMapGrantRef>() == 32);

/// `GNTTABOP_unmap_grant_ref` argument (`struct gnttab_unmap_grant_ref`, 24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabUnmapGrantRef {
    /// IN: the mapped address (0: no host mapping to remove).
    pub host_addr: u64,
    /// IN: the bus address returned by the map (0: not checked).
    pub dev_bus_addr: u64,
    /// IN: the handle returned by the map.
    pub handle: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding (implicit in C).
    pub _pad: u16,
}

const _: () = assert!(core::mem::size_of::<GnttabUnmapGrantRef>() == 24);

/// `GNTTABOP_setup_table` argument (`struct gnttab_setup_table`, 24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabSetupTable {
    /// IN: the domain (`DOMID_SELF`, or another for a privileged caller).
    pub dom: u16,
    /// Padding (implicit in C).
    pub _pad0: u16,
    /// IN: frames wanted (the table grows to at least this).
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding (implicit in C).
    pub _pad1: [u8; 6],
    /// OUT: guest address of `nr_frames` `xen_pfn_t` (u64) to fill with the frames.
    pub frame_list: u64,
}

const _: () = assert!(core::mem::size_of::<GnttabSetupTable>() == 24);

/// `GNTTABOP_query_size` argument (`struct gnttab_query_size`, 16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabQuerySize {
    /// IN: the domain.
    pub dom: u16,
    /// Padding (implicit in C).
    pub _pad0: u16,
    /// OUT: frames in the table now.
    pub nr_frames: u32,
    /// OUT: most frames it may grow to.
    pub max_nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding (implicit in C).
    pub _pad1: u16,
}

const _: () = assert!(core::mem::size_of::<GnttabQuerySize>() == 16);

/// `GNTTABOP_set_version` argument (`struct gnttab_set_version`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabSetVersion {
    /// IN: version wanted; OUT: version in use.
    pub version: u32,
}

/// One side of a copy (`struct gnttab_copy_ptr`, 16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabCopyPtr {
    /// A grant reference (with the matching `GNTCOPY_*_gref` flag) or a local frame
    /// (`gmfn`; a machine frame for a PV guest).
    pub u: u64,
    /// The granting domain (a grant reference) or `DOMID_SELF` (a local frame).
    pub domid: u16,
    /// Byte offset in the frame.
    pub offset: u16,
    /// Padding (implicit in C).
    pub _pad: u32,
}

/// `GNTTABOP_copy` argument (`struct gnttab_copy`, 40 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabCopy {
    /// IN: where the bytes come from.
    pub source: GnttabCopyPtr,
    /// IN: where they go.
    pub dest: GnttabCopyPtr,
    /// IN: bytes to copy (offset + len within the page on both sides).
    pub len: u16,
    /// IN: `GNTCOPY_*`.
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding (implicit in C).
    pub _pad: u16,
}

const _: () = assert!(core::mem::size_of::<GnttabCopy>() == 40);

/// v2 entries per grant frame (`grant_entry_v2`, 16 bytes).
pub const GRANT_ENTRIES_V2_PER_FRAME: u32 = 4096 / 16;
/// v2 status words per status frame (`grant_status_t`, 2 bytes).
pub const GRANT_STATUS_PER_FRAME: u32 = 4096 / 2;

/// `GNTTABOP_get_status_frames` argument (`struct gnttab_get_status_frames`, 16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabGetStatusFrames {
    /// IN: frames wanted.
    pub nr_frames: u32,
    /// IN: the domain.
    pub dom: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: guest address of `nr_frames` u64 to fill with the status frames.
    pub frame_list: u64,
}

const _: () = assert!(core::mem::size_of::<GnttabGetStatusFrames>() == 16);

/// `GNTTABOP_unmap_and_replace` argument (`struct gnttab_unmap_and_replace`, 24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabUnmapAndReplace {
    /// IN: the mapped address.
    pub host_addr: u64,
    /// IN: an address whose entry moves to `host_addr` (and is cleared); 0: none.
    pub new_addr: u64,
    /// IN: the handle returned by the map.
    pub handle: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding (implicit in C).
    pub _pad: u16,
}

const _: () = assert!(core::mem::size_of::<GnttabUnmapAndReplace>() == 24);
