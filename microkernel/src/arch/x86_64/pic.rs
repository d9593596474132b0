//! The legacy 8259 PICs: moved off the exception vectors (the BIOS leaves IRQ 0 on vector
//! 8, #DF) and masked; the one device interrupt the microkernel takes, its serial line's
//! (IRQ 4), is unmasked once the machine can handle it. The PIC reaches the CPU through the
//! local APIC's LINT0 in ExtINT mode.

use super::outb;

/// Remaps the PICs to vectors 32..47 and masks every line.
pub fn disable() {
    outb(0x20, 0x11);
    outb(0xa0, 0x11);
    outb(0x21, 32);
    outb(0xa1, 40);
    outb(0x21, 4);
    outb(0xa1, 2);
    outb(0x21, 0x01);
    outb(0xa1, 0x01);
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

/// Vector of ISA IRQ `irq` after [`disable`] remapped the PICs.
pub const fn vector_of(irq: u8) -> u64 {
    32 + irq as u64
}

/// Unmasks ISA IRQ `irq` (0..8, the master PIC; the others stay masked).
pub fn unmask_master(irq: u8) {
    outb(0x21, !(1u8 << (irq & 7)));
}

/// Acknowledges an interrupt on vector `v` in 32..47.
pub fn eoi(v: u64) {
    if v >= 40 {
        outb(0xa0, 0x20);
    }
    outb(0x20, 0x20);
}
