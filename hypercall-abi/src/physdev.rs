//! Physical device operation numbers (`PHYSDEVOP_*`, the `cmd` of `physdev_op`, in `physdev.h`).
//!
//! Numbers only for now; the argument structs come with later work.
//! Numbers 0..=3, 18 and 22 are unassigned.

/// Obsolete since interface version 0x00030202 and unsupported by newer Xen.
pub const PHYSDEVOP_IRQ_UNMASK_NOTIFY: u32 = 4;
/// Query the status of a physical IRQ.
pub const PHYSDEVOP_IRQ_STATUS_QUERY: u32 = 5;
/// Set the virtual I/O privilege level.
pub const PHYSDEVOP_SET_IOPL: u32 = 6;
/// Set the I/O port permission bitmap.
pub const PHYSDEVOP_SET_IOBITMAP: u32 = 7;
/// Read an IO-APIC register.
pub const PHYSDEVOP_APIC_READ: u32 = 8;
/// Write an IO-APIC register.
pub const PHYSDEVOP_APIC_WRITE: u32 = 9;
/// Allocate an IRQ vector.
pub const PHYSDEVOP_ALLOC_IRQ_VECTOR: u32 = 10;
/// Free an IRQ vector.
pub const PHYSDEVOP_FREE_IRQ_VECTOR: u32 = 11;
/// Signal end-of-interrupt for a PIRQ.
pub const PHYSDEVOP_EOI: u32 = 12;
/// Map a GSI or MSI to a PIRQ.
pub const PHYSDEVOP_MAP_PIRQ: u32 = 13;
/// Unmap a PIRQ.
pub const PHYSDEVOP_UNMAP_PIRQ: u32 = 14;
/// Report a PCI device added.
pub const PHYSDEVOP_MANAGE_PCI_ADD: u32 = 15;
/// Report a PCI device removed.
pub const PHYSDEVOP_MANAGE_PCI_REMOVE: u32 = 16;
/// Register the PIRQ EOI bitmap frame (version 1).
pub const PHYSDEVOP_PIRQ_EOI_GMFN_V1: u32 = 17;
/// Restore MSI state of a device.
pub const PHYSDEVOP_RESTORE_MSI: u32 = 19;
/// Report a PCI device added, with extended information.
pub const PHYSDEVOP_MANAGE_PCI_ADD_EXT: u32 = 20;
/// Set up a GSI's trigger mode and polarity.
pub const PHYSDEVOP_SETUP_GSI: u32 = 21;
/// Allocate a free PIRQ.
pub const PHYSDEVOP_GET_FREE_PIRQ: u32 = 23;
/// Report a reserved PCI MMCONFIG region.
pub const PHYSDEVOP_PCI_MMCFG_RESERVED: u32 = 24;
/// Report a PCI device added (segment-aware).
pub const PHYSDEVOP_PCI_DEVICE_ADD: u32 = 25;
/// Report a PCI device removed (segment-aware).
pub const PHYSDEVOP_PCI_DEVICE_REMOVE: u32 = 26;
/// Restore MSI state of a device (segment-aware).
pub const PHYSDEVOP_RESTORE_MSI_EXT: u32 = 27;
/// Register the PIRQ EOI bitmap frame (version 2).
pub const PHYSDEVOP_PIRQ_EOI_GMFN_V2: u32 = 28;
/// USB debug port operations.
pub const PHYSDEVOP_DBGP_OP: u32 = 29;
/// Prepare a device for MSI-X use.
pub const PHYSDEVOP_PREPARE_MSIX: u32 = 30;
/// Release a device's MSI-X setup.
pub const PHYSDEVOP_RELEASE_MSIX: u32 = 31;
