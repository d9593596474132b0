//! Leaving the machine: QEMU's isa-debug-exit device with the project's exit codes, then
//! ACPI power-off, then halting.

use super::{halt_forever, outb, outw};

/// Exit codes written to isa-debug-exit (QEMU exits with `(code << 1) | 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// dom0 powered off.
    Poweroff = 0x10,
    /// dom0 asked for a reboot.
    Reboot = 0x11,
    /// dom0 crashed or was killed for a fault.
    Crash = 0x12,
    /// The machine could not be brought up (bad dom0 image, no memory...).
    BootError = 0x13,
    /// The microkernel itself failed.
    Panic = 0x14,
}

/// Stops the machine with `code`.
pub fn exit(code: ExitCode) -> ! {
    outb(0xf4, code as u8);
    // Not under QEMU with isa-debug-exit: try ACPI S5 on QEMU's chipsets, then halt.
    outw(0x604, 0x2000);
    outw(0xb004, 0x2000);
    halt_forever()
}
