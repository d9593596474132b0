//! x86_64: boot, descriptor tables, entry and exit paths, paging, serial, timer sources.

pub mod acpi;
pub mod apic;
pub mod console;
pub mod cpu;
pub mod debugreg;
pub mod exit;
pub mod fpu;
pub mod frames;
pub mod gdt;
pub mod idt;
pub mod paging;
pub mod pic;
pub mod rtc;
pub mod smp;
pub mod time;
pub mod trap;

core::arch::global_asm!(include_str!("boot.S"), options(att_syntax));
core::arch::global_asm!(include_str!("entry.S"), options(att_syntax));
core::arch::global_asm!(include_str!("ap_boot.S"), options(att_syntax));
#[cfg(feature = "bench")]
core::arch::global_asm!(include_str!("bench.S"), options(att_syntax));

/// Reads a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    // SAFETY: port reads in this kernel target only the fixed legacy devices (COM1, PIC,
    // PIT, keyboard controller status) whose reads have no memory-safety effect.
    unsafe { ::x86_64::instructions::port::Port::<u8>::new(port).read() }
}

/// Writes a byte to an I/O port.
pub fn outb(port: u16, v: u8) {
    // SAFETY: port writes target only the fixed legacy devices this kernel drives (COM1,
    // PIC, PIT, isa-debug-exit); none of them can touch memory.
    unsafe { ::x86_64::instructions::port::Port::<u8>::new(port).write(v) }
}

/// Writes a 16-bit value to an I/O port.
pub fn outw(port: u16, v: u16) {
    // SAFETY: used only for the ACPI power-off ports of QEMU's chipsets; no memory effect.
    unsafe { ::x86_64::instructions::port::Port::<u16>::new(port).write(v) }
}

/// `in` of `size` bytes (1, 2 or 4) for the control domain, whose device ports these are
/// (the caller checked the port is not one the hypervisor keeps).
pub fn port_in(port: u16, size: u8) -> u32 {
    // SAFETY: the control domain is trusted with the machine's devices, as Xen's hardware
    // domain is; the ports the hypervisor's own devices use are refused before this.
    unsafe {
        match size {
            1 => u32::from(::x86_64::instructions::port::Port::<u8>::new(port).read()),
            2 => u32::from(::x86_64::instructions::port::Port::<u16>::new(port).read()),
            _ => ::x86_64::instructions::port::Port::<u32>::new(port).read(),
        }
    }
}

/// `out` of `size` bytes (1, 2 or 4) for the control domain (see [`port_in`]).
pub fn port_out(port: u16, size: u8, value: u32) {
    // SAFETY: as `port_in`: the control domain's devices, never the hypervisor's ports.
    unsafe {
        match size {
            1 => ::x86_64::instructions::port::Port::<u8>::new(port).write(value as u8),
            2 => ::x86_64::instructions::port::Port::<u16>::new(port).write(value as u16),
            _ => ::x86_64::instructions::port::Port::<u32>::new(port).write(value),
        }
    }
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        ::x86_64::instructions::interrupts::disable();
        ::x86_64::instructions::hlt();
    }
}
