//! The legacy 8259 PICs: moved off the exception vectors (the BIOS leaves IRQ 0 on vector
//! 8, #DF) and masked. The microkernel takes no device interrupts yet.

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

/// Acknowledges a (spurious) interrupt on vector `v` in 32..47.
pub fn eoi(v: u64) {
    if v >= 40 {
        outb(0xa0, 0x20);
    }
    outb(0x20, 0x20);
}
