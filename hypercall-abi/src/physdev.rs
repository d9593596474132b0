//! Physical device operation numbers (`PHYSDEVOP_*`, the `cmd` of `physdev_op`, in `physdev.h`).
//!
//! With the argument structs of the operations the control domain uses for the machine's
//! interrupts (`map_pirq`, `unmap_pirq`, `eoi`, `irq_status_query`, `setup_gsi`).
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

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `physdev_map_pirq.type`: a message-signalled interrupt.
pub const MAP_PIRQ_TYPE_MSI: i32 = 0;
/// `physdev_map_pirq.type`: a global system interrupt (an interrupt controller's line).
pub const MAP_PIRQ_TYPE_GSI: i32 = 1;
/// `physdev_map_pirq.type`: unknown.
pub const MAP_PIRQ_TYPE_UNKNOWN: i32 = 2;
/// `physdev_map_pirq.type`: MSI with a PCI segment in `bus`'s high half.
pub const MAP_PIRQ_TYPE_MSI_SEG: i32 = 3;
/// `physdev_map_pirq.type`: several MSI vectors of one device.
pub const MAP_PIRQ_TYPE_MULTI_MSI: i32 = 4;

/// `physdev_irq_status_query.flags`: the guest must `PHYSDEVOP_eoi` after each event.
pub const XENIRQSTAT_NEEDS_EOI: u32 = 1;
/// `physdev_irq_status_query.flags`: the IRQ is shared by several domains.
pub const XENIRQSTAT_SHARED: u32 = 2;

/// Argument of `PHYSDEVOP_map_pirq` (`struct physdev_map_pirq`, 40 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct PhysdevMapPirq {
    /// IN: the domain the physical IRQ is mapped for.
    pub domid: u16,
    /// Padding (C's alignment of `type`).
    pub pad: u16,
    /// IN: `MAP_PIRQ_TYPE_*`.
    pub map_type: i32,
    /// IN: for a GSI, its number.
    pub index: i32,
    /// IN or OUT: the physical IRQ number (IN negative: one is chosen).
    pub pirq: i32,
    /// IN (MSI): the PCI bus.
    pub bus: i32,
    /// IN (MSI): the PCI device and function.
    pub devfn: i32,
    /// IN (MSI-X): the table entry.
    pub entry_nr: i32,
    /// Padding (C's alignment of `table_base`).
    pub pad2: u32,
    /// IN (MSI-X): the table's base address.
    pub table_base: u64,
}

const _: () = assert!(core::mem::size_of::<PhysdevMapPirq>() == 40);
const _: () = assert!(core::mem::offset_of!(PhysdevMapPirq, table_base) == 32);

/// Argument of `PHYSDEVOP_unmap_pirq` (`struct physdev_unmap_pirq`, 8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct PhysdevUnmapPirq {
    /// IN: the domain.
    pub domid: u16,
    /// Padding.
    pub pad: u16,
    /// IN: the physical IRQ.
    pub pirq: i32,
}

const _: () = assert!(core::mem::size_of::<PhysdevUnmapPirq>() == 8);

/// Argument of `PHYSDEVOP_eoi` (`struct physdev_eoi`): the physical IRQ served.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct PhysdevEoi {
    /// IN: the physical IRQ.
    pub irq: u32,
}

/// Argument of `PHYSDEVOP_irq_status_query` (`struct physdev_irq_status_query`, 8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct PhysdevIrqStatusQuery {
    /// IN: the physical IRQ.
    pub irq: u32,
    /// OUT: `XENIRQSTAT_*`.
    pub flags: u32,
}

/// Argument of `PHYSDEVOP_setup_gsi` (`struct physdev_setup_gsi`, 8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct PhysdevSetupGsi {
    /// IN: the GSI.
    pub gsi: i32,
    /// IN: 0 edge, 1 level.
    pub triggering: u8,
    /// IN: 0 active high, 1 active low.
    pub polarity: u8,
    /// Padding.
    pub pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<PhysdevSetupGsi>() == 8);
