//! x86_64 address-space layout, segment selectors and page-table entry bits a PV guest shares with the hypervisor.

pub use crate::arch::{
    VGCF_FAILSAFE_DISABLES_EVENTS, VGCF_I387_VALID, VGCF_IN_KERNEL, VGCF_IN_SYSCALL, VGCF_ONLINE,
    VGCF_SYSCALL_DISABLES_EVENTS,
};

/// Start of the virtual range reserved for the hypervisor in every guest
/// address space (`__HYPERVISOR_VIRT_START`).
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End (exclusive) of the hypervisor's reserved virtual range (`__HYPERVISOR_VIRT_END`).
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// Start of the read-only machine-to-physical table mapped into every PV
/// guest (`__MACH2PHYS_VIRT_START`); entry `mfn` holds that frame's PFN.
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End (exclusive) of the machine-to-physical table (`__MACH2PHYS_VIRT_END`).
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;
/// Number of 8-byte entries in the machine-to-physical table.
pub const MACH2PHYS_NR_ENTRIES: u64 = (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) >> 3;

/// First L4 (PML4) slot of the hypervisor's reserved range.
pub const HYPERVISOR_L4_FIRST_SLOT: usize = 256;
/// Last L4 (PML4) slot of the hypervisor's reserved range (inclusive).
pub const HYPERVISOR_L4_LAST_SLOT: usize = 271;
/// Entries in one page table at any level.
pub const PT_ENTRIES: usize = 512;
/// Bits of virtual address covered by one L4 entry.
pub const L4_SHIFT: u32 = 39;

const _: () =
    assert!(((HYPERVISOR_VIRT_START >> L4_SHIFT) & 511) as usize == HYPERVISOR_L4_FIRST_SLOT);
const _: () =
    assert!((((HYPERVISOR_VIRT_END - 1) >> L4_SHIFT) & 511) as usize == HYPERVISOR_L4_LAST_SLOT);
const _: () = assert!(MACH2PHYS_NR_ENTRIES == 0x8_0000_0000);

/// Flat 32-bit ring-3 code selector (GDT entry `FIRST_RESERVED_GDT_ENTRY + 4`).
pub const FLAT_RING3_CS32: u16 = 0xe023;
/// Flat 64-bit ring-3 code selector (GDT entry `FIRST_RESERVED_GDT_ENTRY + 6`).
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// Flat 32-bit ring-3 data selector (GDT entry `FIRST_RESERVED_GDT_ENTRY + 5`).
pub const FLAT_RING3_DS32: u16 = 0xe02b;
/// 64-bit ring-3 data selector: the null selector.
pub const FLAT_RING3_DS64: u16 = 0x0000;
/// Flat 32-bit ring-3 stack selector.
pub const FLAT_RING3_SS32: u16 = 0xe02b;
/// Flat 64-bit ring-3 stack selector.
pub const FLAT_RING3_SS64: u16 = 0xe02b;

/// Guest kernel 64-bit data selector (a 64-bit PV kernel runs in ring 3).
pub const FLAT_KERNEL_DS64: u16 = FLAT_RING3_DS64;
/// Guest kernel 32-bit data selector.
pub const FLAT_KERNEL_DS32: u16 = FLAT_RING3_DS32;
/// Guest kernel data selector.
pub const FLAT_KERNEL_DS: u16 = FLAT_KERNEL_DS64;
/// Guest kernel 64-bit code selector.
pub const FLAT_KERNEL_CS64: u16 = FLAT_RING3_CS64;
/// Guest kernel 32-bit code selector.
pub const FLAT_KERNEL_CS32: u16 = FLAT_RING3_CS32;
/// Guest kernel code selector.
pub const FLAT_KERNEL_CS: u16 = FLAT_KERNEL_CS64;
/// Guest kernel 64-bit stack selector.
pub const FLAT_KERNEL_SS64: u16 = FLAT_RING3_SS64;
/// Guest kernel 32-bit stack selector.
pub const FLAT_KERNEL_SS32: u16 = FLAT_RING3_SS32;
/// Guest kernel stack selector.
pub const FLAT_KERNEL_SS: u16 = FLAT_KERNEL_SS64;

/// Guest user 64-bit data selector.
pub const FLAT_USER_DS64: u16 = FLAT_RING3_DS64;
/// Guest user 32-bit data selector.
pub const FLAT_USER_DS32: u16 = FLAT_RING3_DS32;
/// Guest user data selector.
pub const FLAT_USER_DS: u16 = FLAT_USER_DS64;
/// Guest user 64-bit code selector.
pub const FLAT_USER_CS64: u16 = FLAT_RING3_CS64;
/// Guest user 32-bit code selector.
pub const FLAT_USER_CS32: u16 = FLAT_RING3_CS32;
/// Guest user code selector.
pub const FLAT_USER_CS: u16 = FLAT_USER_CS64;
/// Guest user 64-bit stack selector.
pub const FLAT_USER_SS64: u16 = FLAT_RING3_SS64;
/// Guest user 32-bit stack selector.
pub const FLAT_USER_SS32: u16 = FLAT_RING3_SS32;
/// Guest user stack selector.
pub const FLAT_USER_SS: u16 = FLAT_USER_SS64;

/// The hypervisor's own 64-bit ring-0 code selector (Xen's `__HYPERVISOR_CS`).
pub const HYPERVISOR_CS: u16 = 0xe008;
/// The hypervisor's flat ring-0 data selector, 0xe010.
///
/// This is Xen's `__HYPERVISOR_DS32`. Xen's own `__HYPERVISOR_DS` is an alias
/// of `__HYPERVISOR_DS64`, the null selector ([`HYPERVISOR_DS64`]); this
/// project's `HYPERVISOR_DS` names the real flat descriptor instead.
pub const HYPERVISOR_DS: u16 = 0xe010;
/// Xen's `__HYPERVISOR_DS32`: flat ring-0 data selector.
pub const HYPERVISOR_DS32: u16 = 0xe010;
/// Xen's `__HYPERVISOR_DS64`: the null selector, enough for 64-bit data segments.
pub const HYPERVISOR_DS64: u16 = 0x0000;

/// First GDT page reserved for the hypervisor; a guest GDT may use pages 0..14.
pub const FIRST_RESERVED_GDT_PAGE: usize = 14;
/// Byte offset of the first reserved GDT entry.
pub const FIRST_RESERVED_GDT_BYTE: usize = FIRST_RESERVED_GDT_PAGE * 4096;
/// Index of the first reserved GDT entry (selector 0xe000).
pub const FIRST_RESERVED_GDT_ENTRY: usize = FIRST_RESERVED_GDT_BYTE / 8;

const _: () = assert!((HYPERVISOR_CS as usize >> 3) == FIRST_RESERVED_GDT_ENTRY + 1);
const _: () = assert!((FLAT_RING3_CS64 as usize >> 3) == FIRST_RESERVED_GDT_ENTRY + 6);

/// x86_64 page-table entry bits, shared by guests (who write PTEs and hand
/// them to `pt_update`) and the hypervisor (which validates them).
pub mod pte {
    /// The entry maps something.
    pub const PRESENT: u64 = 1 << 0;
    /// Writable.
    pub const RW: u64 = 1 << 1;
    /// Accessible from user mode (ring 3). A PV kernel also runs in ring 3,
    /// so its own mappings need this bit too.
    pub const USER: u64 = 1 << 2;
    /// Page write-through.
    pub const PWT: u64 = 1 << 3;
    /// Page cache disable.
    pub const PCD: u64 = 1 << 4;
    /// Set by the CPU on access.
    pub const ACCESSED: u64 = 1 << 5;
    /// Set by the CPU on write (last level only).
    pub const DIRTY: u64 = 1 << 6;
    /// Large page (in L2 and L3 entries).
    pub const PSE: u64 = 1 << 7;
    /// Global mapping (not flushed on CR3 load).
    pub const GLOBAL: u64 = 1 << 8;
    /// No-execute.
    pub const NX: u64 = 1 << 63;
    /// Bits 12..=51: the frame address.
    pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
}
