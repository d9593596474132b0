//! The legacy 8259 PICs: moved off the exception vectors (the BIOS leaves IRQ 0 on vector
//! 8, #DF) and masked; the one device interrupt the microkernel takes, its serial line's
//! (IRQ 4), is unmasked once the machine can handle it. The PIC reaches the CPU through the
//! local APIC's LINT0 in ExtINT mode.
//!
//! The other lines are the machine's devices' (PCI INTx lines are routed to ISA IRQs 5, 9,
//! 10 and 11 by the firmware, level-triggered): each is unmasked while a domain has a port
//! bound to it, and masked from its interrupt until that domain's `PHYSDEVOP_eoi`
//! (`crate::event::Pirqs` decides; [`mask_line`] and [`unmask_line`] carry it out).

use core::sync::atomic::{AtomicU16, Ordering};

use super::{inb, outb};

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

/// The lines masked now (bit n: IRQ n), as last written to the two mask registers.
static MASKED: AtomicU16 = AtomicU16::new(0xffff);

/// Writes the mask registers from `MASKED`; the cascade (IRQ 2) is open while any line of
/// the second PIC is.
fn write_masks() {
    let mut m = MASKED.load(Ordering::SeqCst);
    if m & 0xff00 != 0xff00 {
        m &= !(1 << 2);
    } else {
        m |= 1 << 2;
    }
    outb(0x21, m as u8);
    outb(0xa1, (m >> 8) as u8);
}

/// Lets IRQ `irq` (0..16) interrupt.
pub fn unmask_line(irq: u8) {
    MASKED.fetch_and(!(1u16 << (irq & 15)), Ordering::SeqCst);
    write_masks();
}

/// Keeps IRQ `irq` (0..16) from interrupting.
pub fn mask_line(irq: u8) {
    MASKED.fetch_or(1u16 << (irq & 15), Ordering::SeqCst);
    write_masks();
}

/// Whether an interrupt on IRQ 7 or 15 is real: the PICs raise those when a line dropped
/// before the CPU took its interrupt, without setting the in-service bit (OCW3 reads it).
pub fn in_service(irq: u8) -> bool {
    let (cmd, bit) = if irq < 8 { (0x20, irq) } else { (0xa0, irq - 8) };
    outb(cmd, 0x0b);
    inb(cmd) & (1 << bit) != 0
}

/// Acknowledges an interrupt on vector `v` in 32..47.
pub fn eoi(v: u64) {
    if v >= 40 {
        outb(0xa0, 0x20);
    }
    outb(0x20, 0x20);
}

/// Device lines that fired since the last [`take_fired`] (bit n: IRQ n).
static FIRED: AtomicU16 = AtomicU16::new(0);

/// A device line's interrupt, in the interrupt handler: the line is masked (until its
/// owner's EOI), the PIC acknowledged, and the line noted for [`take_fired`]. Spurious
/// interrupts on IRQ 7 and 15 are dropped (the master still acknowledges the slave's).
pub fn device_interrupt(irq: u8) {
    if (irq == 7 || irq == 15) && !in_service(irq) {
        if irq == 15 {
            eoi(vector_of(2));
        }
        return;
    }
    mask_line(irq);
    eoi(vector_of(irq));
    FIRED.fetch_or(1 << (irq & 15), Ordering::SeqCst);
}

/// Takes the device lines that fired since the last call.
pub fn take_fired() -> u16 {
    FIRED.swap(0, Ordering::SeqCst)
}
