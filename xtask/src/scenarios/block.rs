//! The machine's disk and the block split driver: dom0 finds the virtio-blk disk on PCI,
//! maps its registers, gets its DMA pool by `XENMEM_exchange`, takes its interrupt as an
//! event and reads its partition table by interrupt-driven I/O.

use super::{Disk, Scenario, DEFAULT};

/// The scenarios of the block issue.
pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "disk-probe",
        disk: Disk::Fresh,
        input: &["audit", "shutdown"],
        expect: &[
            r"^dom0: pci 00:[0-9a-f]{2}\.0: virtio-blk vda: 64 MiB \(131072 sectors\), irq (5|9|10|11) as event port [0-9]+$",
            // Interrupt-driven: each request's completion comes as an event.
            r"^dom0: vda: GPT, 4 partition\(s\) \(read in ([0-9]+) requests, [1-9][0-9]* interrupts\)$",
            r#"^dom0: vda1: "dom0", 32 MiB from sector 2048$"#,
            r#"^dom0: vda2: "guest-a", 8 MiB from sector [0-9]+$"#,
            r#"^dom0: vda4: "guest-c", 8 MiB from sector [0-9]+$"#,
            r"dom0: up in",
            r"audit: ok",
            r"dom0: powering off",
        ],
        forbid: &[r"no disk", r"no partitions", r"crashed"],
        ..DEFAULT
    }]
}
