//! The machine's CPUs as ACPI's MADT lists them, and which of them the hypervisor starts.
//!
//! The MADT names each processor by its local APIC ID (a Processor Local APIC entry, or a
//! Local x2APIC entry for IDs past 254) with flags: bit 0 *enabled* (usable now), bit 1
//! *online capable* (ACPI 6.3: may be brought up later). As Xen's `acpi_parse_lapic`
//! does, the hypervisor starts the enabled ones, counts the others as disabled (no CPU
//! hot-plug here), ignores an ID listed twice and stops at [`MAX_CPUS`]. The boot CPU is
//! always CPU 0, whatever its place in the table.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// The most CPUs the hypervisor runs on.
pub const MAX_CPUS: usize = 16;

/// A processor entry of the MADT: its local APIC ID and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MadtCpu {
    /// Local APIC ID.
    pub apic_id: u32,
    /// The entry's flags (bit 0 enabled, bit 1 online capable).
    pub flags: u32,
}

/// The CPUs to run on, in CPU-number order (the boot CPU first), and what was left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuSet {
    /// Local APIC IDs; CPU `i` is `apic_ids[i]`.
    pub apic_ids: Vec<u32>,
    /// Entries not enabled (firmware-disabled or only hot-pluggable).
    pub disabled: usize,
    /// Enabled CPUs past [`MAX_CPUS`].
    pub over_limit: usize,
    /// Entries naming an APIC ID already listed.
    pub duplicates: usize,
}

/// Chooses the CPUs to start from the MADT's processor entries, the boot CPU (`bsp`) first.
/// The boot CPU is in the set even if the table lacks it or calls it disabled: it runs.
pub fn select(entries: &[MadtCpu], bsp: u32) -> CpuSet {
    let mut set = CpuSet { apic_ids: alloc::vec![bsp], ..CpuSet::default() };
    let mut seen: Vec<u32> = Vec::new();
    for e in entries {
        if seen.contains(&e.apic_id) {
            set.duplicates += 1;
            continue;
        }
        seen.push(e.apic_id);
        if e.apic_id == bsp {
            continue;
        }
        if e.flags & 1 == 0 {
            set.disabled += 1;
        } else if set.apic_ids.len() >= MAX_CPUS {
            set.over_limit += 1;
        } else {
            set.apic_ids.push(e.apic_id);
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(apic_id: u32, flags: u32) -> MadtCpu {
        MadtCpu { apic_id, flags }
    }

    #[test]
    fn the_boot_cpu_comes_first_and_enabled_ones_follow_in_table_order() {
        let s = select(&[cpu(0, 1), cpu(1, 1), cpu(2, 1)], 0);
        assert_eq!(s.apic_ids, [0, 1, 2]);
        // The boot CPU need not be the first entry, nor have ID 0.
        let s = select(&[cpu(4, 1), cpu(2, 1), cpu(6, 1)], 2);
        assert_eq!(s.apic_ids, [2, 4, 6]);
    }

    #[test]
    fn disabled_duplicate_and_excess_entries_are_left_out_and_counted() {
        let s = select(&[cpu(0, 1), cpu(1, 0), cpu(2, 2), cpu(3, 1), cpu(3, 1)], 0);
        assert_eq!(s.apic_ids, [0, 3]);
        assert_eq!((s.disabled, s.duplicates, s.over_limit), (2, 1, 0));
        let many: Vec<MadtCpu> = (0..40).map(|i| cpu(i, 1)).collect();
        let s = select(&many, 0);
        assert_eq!(s.apic_ids.len(), MAX_CPUS);
        assert_eq!(s.over_limit, 40 - MAX_CPUS);
    }

    #[test]
    fn a_table_without_the_boot_cpu_or_with_none_still_runs_it() {
        assert_eq!(select(&[], 5).apic_ids, [5]);
        let s = select(&[cpu(5, 0), cpu(1, 1)], 5);
        assert_eq!(s.apic_ids, [5, 1]);
        assert_eq!(s.disabled, 0, "the boot CPU is running whatever the table says");
    }
}
