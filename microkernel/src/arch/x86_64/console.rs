//! The debug serial line (COM1, 16550) and the `mkprintln!` macro.
//!
//! The receive FIFO stays disabled: QEMU then hands over one byte at a time and holds the
//! rest back, so input typed or piped before anyone reads it is never dropped (enabling or
//! resetting the FIFO would discard what is already there).

use super::{inb, outb};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;

const COM1: u16 = 0x3f8;

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

/// Takes bytes that have arrived, without waiting.
pub fn read_bytes(buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() && inb(COM1 + 5) & 0x01 != 0 {
        buf[n] = inb(COM1);
        n += 1;
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
