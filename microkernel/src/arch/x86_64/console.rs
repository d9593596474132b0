//! The debug serial line (COM1, 16550) and the `mkprintln!` macro.
//!
//! The receive FIFO stays disabled: QEMU then hands over one byte at a time and holds the
//! rest back, so input typed or piped before anyone reads it is never dropped (enabling or
//! resetting the FIFO would discard what is already there).
//!
//! Input, once [`enable_rx_interrupt`] ran, is taken by the receive interrupt (IRQ 4) into
//! a ring ([`rx_interrupt`]) that `console_io` reads, and the machine raises `VIRQ_CONSOLE`
//! for dom0 so that dom0 can block instead of polling (Xen's serial rx ring). When the ring
//! is full the interrupt is switched off, which leaves the next byte in the UART and QEMU
//! holding the rest back: nothing is dropped; reading makes room and switches it on again.

use super::{inb, outb};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};
use heapless::Deque;
use spin::Mutex;

const COM1: u16 = 0x3f8;
/// Interrupt enable register: bit 0, received data available.
const IER: u16 = COM1 + 1;
/// Modem control: DTR, RTS and OUT2 (which gates the UART's interrupt line on a PC).
const MCR: u16 = COM1 + 4;
/// Line status: bit 0, a byte is waiting.
const LSR: u16 = COM1 + 5;
/// ISA IRQ of COM1.
pub const COM1_IRQ: u8 = 4;

/// Bytes of input the microkernel holds for `console_io` reads.
const RX_RING: usize = 4096;

/// Received input not yet read.
static RX: Mutex<Deque<u8, RX_RING>> = Mutex::new(Deque::new());
/// The receive interrupt is in use ([`enable_rx_interrupt`] ran).
static RX_IRQ: AtomicBool = AtomicBool::new(false);
/// Input arrived since [`take_input_arrived`] last looked.
static INPUT_ARRIVED: AtomicBool = AtomicBool::new(false);

/// Serialises writers so lines do not interleave.
static LOCK: Mutex<()> = Mutex::new(());

/// Whether the last byte written ended a line (so a guest's line can start on its own
/// line rather than inside dom0's prompt or echo).
static AT_LINE_START: AtomicBool = AtomicBool::new(true);

/// Programs COM1 for 115200 8N1, interrupts off, FIFO off.
pub fn init() {
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x80);
    outb(COM1, 0x01);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);
    outb(COM1 + 4, 0x03);
}

fn put(b: u8) {
    while inb(COM1 + 5) & 0x20 == 0 {
        core::hint::spin_loop();
    }
    outb(COM1, b);
    AT_LINE_START.store(b == b'\n', Ordering::Relaxed);
}

/// Writes raw bytes (guest console output), turning "\n" into "\r\n".
pub fn write_bytes(bytes: &[u8]) {
    let _g = LOCK.lock();
    for &b in bytes {
        if b == b'\n' {
            put(b'\r');
        }
        put(b);
    }
}

/// Writes one line of a guest's console output as `[name] line`.
pub fn write_prefixed_line(name: &str, line: &[u8]) {
    let _g = LOCK.lock();
    if !AT_LINE_START.load(Ordering::Relaxed) {
        put(b'\r');
        put(b'\n');
    }
    put(b'[');
    for &b in name.as_bytes() {
        put(b);
    }
    put(b']');
    put(b' ');
    for &b in line {
        // Control characters other than tab would let a guest rewrite other lines.
        put(if b == b'\t' || (0x20..0x7f).contains(&b) { b } else { b'.' });
    }
    put(b'\r');
    put(b'\n');
}

/// Moves waiting bytes from the UART into the ring while it has room; whether any moved.
/// A full ring switches the receive interrupt off (the UART keeps the next byte).
fn drain_uart(rx: &mut Deque<u8, RX_RING>) -> bool {
    let mut any = false;
    while !rx.is_full() && inb(LSR) & 0x01 != 0 {
        let _ = rx.push_back(inb(COM1));
        any = true;
    }
    outb(IER, if rx.is_full() { 0x00 } else { 0x01 });
    any
}

/// Switches input to the receive interrupt: from now on bytes go through the ring and
/// [`take_input_arrived`] says when some came. Call with interrupts off, once the machine
/// can handle IRQ 4.
pub fn enable_rx_interrupt() {
    outb(MCR, 0x0b);
    RX_IRQ.store(true, Ordering::SeqCst);
    let mut rx = RX.lock();
    if drain_uart(&mut rx) {
        INPUT_ARRIVED.store(true, Ordering::SeqCst);
    }
}

/// The receive interrupt: takes what the UART holds into the ring. Runs with interrupts
/// off, so it never meets a reader holding the ring's lock.
pub fn rx_interrupt() {
    let mut rx = RX.lock();
    if drain_uart(&mut rx) {
        INPUT_ARRIVED.store(true, Ordering::SeqCst);
    }
}

/// Whether input arrived since the last call (the machine then raises `VIRQ_CONSOLE`).
pub fn take_input_arrived() -> bool {
    INPUT_ARRIVED.swap(false, Ordering::SeqCst)
}

/// Takes bytes that have arrived, without waiting.
pub fn read_bytes(buf: &mut [u8]) -> usize {
    if !RX_IRQ.load(Ordering::SeqCst) {
        let mut n = 0;
        while n < buf.len() && inb(LSR) & 0x01 != 0 {
            buf[n] = inb(COM1);
            n += 1;
        }
        return n;
    }
    let mut rx = RX.lock();
    let mut n = 0;
    while n < buf.len() {
        match rx.pop_front() {
            Some(b) => {
                buf[n] = b;
                n += 1;
            }
            None => break,
        }
    }
    // Room again: take what waited in the UART and let the interrupt back on. What came
    // counts as new input: its interrupt may already have been taken with nothing to read.
    if drain_uart(&mut rx) {
        INPUT_ARRIVED.store(true, Ordering::SeqCst);
    }
    n
}

struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if b == b'\n' {
                put(b'\r');
            }
            put(b);
        }
        Ok(())
    }
}

/// Prints one microkernel line: "(mk) " + the text + newline.
pub fn print_line(args: fmt::Arguments<'_>) {
    let _g = LOCK.lock();
    let _ = Serial.write_str("(mk) ");
    let _ = Serial.write_fmt(args);
    let _ = Serial.write_str("\n");
}

/// Prints without taking the lock: for the panic and fault paths, which must print even
/// if the lock holder was interrupted.
pub fn print_line_unlocked(args: fmt::Arguments<'_>) {
    let _ = Serial.write_str("(mk) ");
    let _ = Serial.write_fmt(args);
    let _ = Serial.write_str("\n");
}

/// Prints a microkernel line on the serial console.
#[macro_export]
macro_rules! mkprintln {
    ($($arg:tt)*) => { $crate::arch::console::print_line(format_args!($($arg)*)) };
}
