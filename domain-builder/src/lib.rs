//! One implementation of Xen's x86_64 PV start-of-day contract, shared by the microkernel
//! (building dom0) and dom0's domain builder (building guests).
//!
//! The crate is pure logic over byte slices: it never touches hardware or raw pointers.
//! The three steps, in the order a builder runs them:
//!
//! 1. [`elf::parse_kernel`] reads and checks a guest kernel image (ELF64, x86_64, with Xen
//!    ELF notes), following Xen's libelf (`libelf-dominfo.c`).
//! 2. [`layout::plan`] lays out the initial virtual region in Xen's order: kernel, modules,
//!    p2m list, start_info, xenstore page, console page, page tables, boot stack, padding.
//! 3. [`build::build`] writes it all into the domain's frames through the caller's
//!    [`build::GuestMemory`]: kernel segments, modules, p2m list, start_info, the hypercall
//!    page and the 4-level bootstrap page tables.
//!
//! The caller owns policy and memory: it chooses `nr_pages`, allocates the frames (the p2m
//! passed to [`build::build`]), and creates the vCPU with `rip = entry`, `rsp = stack_top`
//! and `rsi = start_info_va` from [`build::BuiltDomain`].
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod build;
pub mod bzimage;
pub mod elf;
pub mod hypercall_page;
pub mod layout;
mod notes;
mod pagetable;

pub use build::{build, start_info, BootModule, BuildError, BuildParams, BuiltDomain, GuestMemory};
pub use elf::{parse_kernel, ElfError, KernelInfo, Segment};
pub use hypercall_page::fill_hypercall_page;
pub use layout::{
    plan, DomainKind, Layout, LayoutError, LayoutRequest, ModuleSpec, P2mMapping, PlacedModule, Region,
};

use hypercall_abi::layout::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};

/// Size of a guest page (x86 4 KiB page).
pub const PAGE_SIZE: u64 = 4096;

/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// Round `value` down to a multiple of [`PAGE_SIZE`].
pub(crate) const fn page_floor(value: u64) -> u64 {
    value & !(PAGE_SIZE - 1)
}

/// Round `value` up to a multiple of [`PAGE_SIZE`], or `None` on overflow.
pub(crate) const fn page_ceil(value: u64) -> Option<u64> {
    match value.checked_add(PAGE_SIZE - 1) {
        Some(v) => Some(page_floor(v)),
        None => None,
    }
}

/// Is `va` a canonical 48-bit (4-level paging) virtual address?
pub(crate) const fn is_canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == 0x1_ffff
}

/// Why a virtual range cannot belong to a PV guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeProblem {
    /// Part of the range is not canonical (or it straddles the non-canonical hole).
    NonCanonical,
    /// The range intersects the slice Xen (and we) reserve for the hypervisor.
    Hypervisor,
}

/// Check that the non-empty range `[start, end)` is usable by a guest: canonical, in one
/// half of the address space, and clear of `[HYPERVISOR_VIRT_START, HYPERVISOR_VIRT_END)`.
///
/// An empty range (`start == end`) is checked as the single address `start`.
pub(crate) fn check_guest_range(start: u64, end: u64) -> Result<(), RangeProblem> {
    let last = if end > start { end - 1 } else { start };
    if end < start || !is_canonical(start) || !is_canonical(last) || (start >> 47) != (last >> 47) {
        return Err(RangeProblem::NonCanonical);
    }
    if start < HYPERVISOR_VIRT_END && last >= HYPERVISOR_VIRT_START {
        return Err(RangeProblem::Hypervisor);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_addresses() {
        assert!(is_canonical(0));
        assert!(is_canonical(0x0000_7fff_ffff_ffff));
        assert!(!is_canonical(0x0000_8000_0000_0000));
        assert!(!is_canonical(0xffff_7fff_ffff_ffff));
        assert!(is_canonical(0xffff_8000_0000_0000));
        assert!(is_canonical(u64::MAX));
    }

    #[test]
    fn guest_ranges() {
        assert_eq!(check_guest_range(0x40_0000, 0x80_0000), Ok(()));
        assert_eq!(
            check_guest_range(0xffff_ffff_8000_0000, 0),
            Err(RangeProblem::NonCanonical)
        );
        assert_eq!(
            check_guest_range(0x7fff_ffff_f000, 0x8000_0000_1000),
            Err(RangeProblem::NonCanonical)
        );
        assert_eq!(
            check_guest_range(HYPERVISOR_VIRT_START, HYPERVISOR_VIRT_START + 1),
            Err(RangeProblem::Hypervisor)
        );
        assert_eq!(
            check_guest_range(HYPERVISOR_VIRT_END - 0x1000, HYPERVISOR_VIRT_END + 0x1000),
            Err(RangeProblem::Hypervisor)
        );
        assert_eq!(
            check_guest_range(HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_END + 0x1000),
            Ok(())
        );
        assert_eq!(check_guest_range(0xffff_ffff_8000_0000, u64::MAX), Ok(()));
        assert_eq!(page_ceil(u64::MAX), None);
        assert_eq!(page_ceil(1), Some(PAGE_SIZE));
    }
}
