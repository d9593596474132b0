//! Console output: `print!`/`println!` over a domU's console ring (`console_ring`) or
//! `console_io(CONSOLEIO_write)` (dom0, guests without a ring), buffered by line.
//!
//! The buffering ([`LineBuffer`]) is portable and host-tested; the global console that sends
//! through the hypercall exists on the guest target only.

#![forbid(unsafe_code)]

use core::fmt;

/// Size of the console line buffer; longer lines go out in pieces of this size.
pub const LINE_BUFFER_SIZE: usize = 256;

/// Collects output and hands it to a sink a line at a time (or when full).
pub struct LineBuffer<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for LineBuffer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineBuffer<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        LineBuffer {
            buf: [0; N],
            len: 0,
        }
    }

    /// Appends `bytes`, calling `sink` with the buffered bytes after each `'\n'` and whenever
    /// the buffer fills.
    pub fn write(&mut self, bytes: &[u8], sink: &mut impl FnMut(&[u8])) {
        for &b in bytes {
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' || self.len == N {
                self.flush(sink);
            }
        }
    }

    /// Hands any buffered bytes to `sink`.
    pub fn flush(&mut self, sink: &mut impl FnMut(&[u8])) {
        if self.len > 0 {
            sink(&self.buf[..self.len]);
            self.len = 0;
        }
    }

    /// Bytes waiting to be flushed.
    pub fn pending(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A `fmt::Write` adapter that feeds a [`LineBuffer`] and a sink.
pub struct BufferedWriter<'b, const N: usize, F: FnMut(&[u8])> {
    /// The buffer.
    pub buffer: &'b mut LineBuffer<N>,
    /// Where complete lines go.
    pub sink: F,
}

impl<const N: usize, F: FnMut(&[u8])> fmt::Write for BufferedWriter<'_, N, F> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.buffer.write(s.as_bytes(), &mut self.sink);
        Ok(())
    }
}

#[cfg(target_os = "none")]
mod global {
    use super::{BufferedWriter, LineBuffer, LINE_BUFFER_SIZE};
    use core::fmt::{self, Write};
    use spin::Mutex;

    static CONSOLE: Mutex<LineBuffer<LINE_BUFFER_SIZE>> = Mutex::new(LineBuffer::new());

    /// Sends bytes to the console ring if this domU has one, else to the hypervisor
    /// console, retrying short writes; errors are dropped (there is nowhere else to report
    /// them).
    pub fn write_raw(mut bytes: &[u8]) {
        if crate::console_ring::write(bytes) {
            return;
        }
        while !bytes.is_empty() {
            match crate::hypercall::console_io_write(bytes) {
                Ok(n) if n > 0 && n <= bytes.len() => bytes = &bytes[n..],
                _ => return,
            }
        }
    }

    /// Formats `args` into the console buffer and flushes it (so prompts without a newline
    /// appear at once). Used by `print!`/`println!`.
    #[doc(hidden)]
    pub fn _print(args: fmt::Arguments<'_>) {
        let mut buffer = CONSOLE.lock();
        let mut w = BufferedWriter {
            buffer: &mut buffer,
            sink: write_raw,
        };
        // BufferedWriter never fails; a formatting error of a Display impl is ignored.
        let _ = w.write_fmt(args);
        w.buffer.flush(&mut write_raw);
    }

    /// Writes raw bytes through the console buffer and flushes (for echoing input).
    pub fn write_bytes(bytes: &[u8]) {
        let mut buffer = CONSOLE.lock();
        buffer.write(bytes, &mut write_raw);
        buffer.flush(&mut write_raw);
    }

    /// Writes `args` directly, bypassing the shared buffer (for the panic handler, which may
    /// run while the buffer is locked). Pending buffered output is flushed first if possible.
    pub fn emergency_print(args: fmt::Arguments<'_>) {
        if let Some(mut buffer) = CONSOLE.try_lock() {
            buffer.flush(&mut write_raw);
        }
        let mut local = LineBuffer::<LINE_BUFFER_SIZE>::new();
        let mut w = BufferedWriter {
            buffer: &mut local,
            sink: write_raw,
        };
        let _ = w.write_fmt(args);
        w.buffer.flush(&mut write_raw);
    }
}

#[cfg(target_os = "none")]
pub use global::{_print, emergency_print, write_bytes, write_raw};

/// Reads typed input from this domU's console ring into `buf` (non-blocking): the count, 0
/// when none is waiting or there is no ring (dom0 reads with `console_io` instead).
#[cfg(target_os = "none")]
pub fn read(buf: &mut [u8]) -> usize {
    crate::console_ring::read(buf)
}

/// Prints to the hypervisor console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::console::_print(::core::format_args!($($arg)*))
    };
}

/// Prints to the hypervisor console, with a newline.
#[macro_export]
macro_rules! println {
    () => {
        $crate::print!("\n")
    };
    ($($arg:tt)*) => {
        $crate::console::_print(::core::format_args!("{}\n", ::core::format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::fmt::Write;
    use std::vec::Vec;

    #[test]
    fn flushes_on_newline_and_when_full() {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut buf = LineBuffer::<8>::new();
        buf.write(b"ab\ncd", &mut |b: &[u8]| out.push(b.to_vec()));
        assert_eq!(out, [b"ab\n".to_vec()]);
        assert_eq!(buf.pending(), b"cd");
        buf.write(b"efghijklm", &mut |b: &[u8]| out.push(b.to_vec()));
        assert_eq!(out[1], b"cdefghij");
        assert_eq!(buf.pending(), b"klm");
        buf.flush(&mut |b: &[u8]| out.push(b.to_vec()));
        assert_eq!(out[2], b"klm");
        buf.flush(&mut |_: &[u8]| panic!("nothing pending"));
    }

    #[test]
    fn writer_formats_through_buffer() {
        let mut out: Vec<u8> = Vec::new();
        let mut buf = LineBuffer::<LINE_BUFFER_SIZE>::new();
        let mut w = BufferedWriter {
            buffer: &mut buf,
            sink: |b: &[u8]| out.extend_from_slice(b),
        };
        writeln!(w, "x={} y={:#x}", 5, 255).unwrap();
        write!(w, "prompt> ").unwrap();
        assert_eq!(w.buffer.pending(), b"prompt> ");
        w.buffer.flush(&mut w.sink);
        assert_eq!(out, b"x=5 y=0xff\nprompt> ");
    }
}
