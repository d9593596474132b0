//! ACPI's processor list (the MADT), found with the `acpi` crate through the boot direct
//! map (the first 4 GiB, where BIOS firmware keeps its tables): read once at boot, before
//! the hypervisor's own page tables replace the boot ones.

use super::paging::directmap;
use crate::cpus::MadtCpu;
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use alloc::vec::Vec;
use core::ptr::NonNull;

/// The boot mappings cover physical memory below this.
const BOOT_MAPPED: usize = 4 << 30;

/// Tables are read through the boot direct map: mapping is an address computation.
#[derive(Clone, Copy)]
struct BootMap;

impl AcpiHandler for BootMap {
    unsafe fn map_physical_region<T>(&self, physical_address: usize, size: usize) -> PhysicalMapping<Self, T> {
        // A table past the boot mappings cannot be read: the crate's callers check
        // signatures and checksums of what they map, and a null-free dangling mapping
        // would be read; stop the lookup instead by mapping the zero page's view.
        let pa = if physical_address.saturating_add(size) <= BOOT_MAPPED { physical_address } else { 0 };
        let va = directmap(pa as u64) as *mut T;
        // SAFETY: `va` is a direct-map address, never null; the region lies in the boot
        // mappings (checked above), which stay until the hypervisor's tables replace them,
        // after the lookup is over.
        unsafe { PhysicalMapping::new(pa, NonNull::new_unchecked(va), size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// The MADT's processor entries, or why there are none (no RSDP, no MADT).
pub fn madt_cpus() -> Result<Vec<MadtCpu>, acpi::AcpiError> {
    // SAFETY: a BIOS machine (Multiboot from a BIOS loader, or QEMU's -kernel): the crate
    // reads the BDA's EBDA pointer, the EBDA and 0xe0000..0xfffff, all in the boot mappings.
    let tables = unsafe { AcpiTables::search_for_rsdp_bios(BootMap)? };
    let madt = tables.find_table::<Madt>()?;
    let mut cpus = Vec::new();
    for e in madt.get().entries() {
        match e {
            MadtEntry::LocalApic(l) => cpus.push(MadtCpu { apic_id: u32::from(l.apic_id), flags: l.flags }),
            MadtEntry::LocalX2Apic(x) => cpus.push(MadtCpu { apic_id: x.x2apic_id, flags: x.flags }),
            _ => {}
        }
    }
    Ok(cpus)
}
