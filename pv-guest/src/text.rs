//! Small text helpers shared by guests: C strings from fixed buffers, lossy UTF-8 and
//! fixed-point number formatting (portable, host-tested, no allocation).
#![forbid(unsafe_code)]

use core::fmt;

/// The bytes of `buf` up to (not including) its first NUL, or all of `buf` if it has none.
pub fn c_str(buf: &[u8]) -> &[u8] {
    match buf.iter().position(|&b| b == 0) {
        Some(n) => &buf[..n],
        None => buf,
    }
}

/// The longest prefix of `bytes` that is valid UTF-8.
///
/// This is the allocation-free "lossy" conversion used for strings the hypervisor or a
/// module package hands us: everything from the first invalid sequence on is dropped.
pub fn utf8_prefix(bytes: &[u8]) -> &str {
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        // `valid_up_to` marks the end of the valid prefix, so this cannot fail; fall back to
        // "" rather than panic should that ever change.
        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    }
}

/// `utf8_prefix(c_str(buf))`: a NUL-terminated (or NUL-padded) string from a fixed buffer.
pub fn c_str_lossy(buf: &[u8]) -> &str {
    utf8_prefix(c_str(buf))
}

/// Displays bytes as text, replacing each invalid UTF-8 sequence with U+FFFD and each
/// control character with `\xNN` (so hostile strings cannot drive the terminal).
#[derive(Clone, Copy)]
pub struct Lossy<'a>(pub &'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() {
                    write!(f, "\\x{:02x}", u32::from(c))?;
                } else {
                    fmt::Write::write_char(f, c)?;
                }
            }
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }
}

/// A non-negative number with three decimals, displayed as `<whole>.<3 digits>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thousandths {
    /// The integer part.
    pub whole: u64,
    /// The fraction in thousandths, `0..1000`.
    pub frac: u16,
}

impl Thousandths {
    /// Splits `value` given in thousandths of the unit (truncating further digits is the
    /// caller's business).
    pub const fn from_thousandths(value: u64) -> Self {
        Thousandths {
            whole: value / 1000,
            frac: (value % 1000) as u16,
        }
    }

    /// Milliseconds from nanoseconds, truncated to whole microseconds.
    pub const fn millis_from_nanos(ns: u64) -> Self {
        Self::from_thousandths(ns / 1_000)
    }

    /// Seconds from nanoseconds, truncated to whole milliseconds.
    pub const fn secs_from_nanos(ns: u64) -> Self {
        Self::from_thousandths(ns / 1_000_000)
    }
}

impl fmt::Display for Thousandths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.whole, self.frac)
    }
}

/// KiB in `pages` 4 KiB pages (saturating; a hostile count cannot overflow).
pub const fn pages_to_kib(pages: u64) -> u64 {
    pages.saturating_mul(4)
}

/// Whole MiB in `pages` 4 KiB pages (rounded down).
pub const fn pages_to_mib(pages: u64) -> u64 {
    pages / 256
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn c_str_stops_at_first_nul() {
        assert_eq!(c_str(b"abc\0def\0"), b"abc");
        assert_eq!(c_str(b"\0abc"), b"");
        assert_eq!(c_str(b"no nul"), b"no nul");
        assert_eq!(c_str(b""), b"");
    }

    #[test]
    fn utf8_prefix_drops_invalid_tail() {
        assert_eq!(utf8_prefix(b"hello"), "hello");
        assert_eq!(utf8_prefix(b"ab\xffcd"), "ab");
        assert_eq!(utf8_prefix("h\u{e9}".as_bytes()), "h\u{e9}");
        // A truncated multi-byte sequence at the end.
        assert_eq!(utf8_prefix(b"x\xc3"), "x");
        assert_eq!(utf8_prefix(b"\x80"), "");
        assert_eq!(c_str_lossy(b"console=hvc0\0\xff\xff"), "console=hvc0");
    }

    #[test]
    fn lossy_display_escapes_and_replaces() {
        assert_eq!(format!("{}", Lossy(b"ok")), "ok");
        assert_eq!(format!("{}", Lossy(b"a\xffb")), "a\u{fffd}b");
        assert_eq!(format!("{}", Lossy(b"\x1b[2J\n")), "\\x1b[2J\\x0a");
        assert_eq!(format!("{}", Lossy(b"")), "");
    }

    #[test]
    fn thousandths_format_with_three_digits() {
        assert_eq!(format!("{}", Thousandths::millis_from_nanos(0)), "0.000");
        assert_eq!(
            format!("{}", Thousandths::millis_from_nanos(1_234_567)),
            "1.234"
        );
        assert_eq!(
            format!("{}", Thousandths::millis_from_nanos(205_007_999)),
            "205.007"
        );
        assert_eq!(
            format!("{}", Thousandths::secs_from_nanos(61_050_000_000)),
            "61.050"
        );
        assert_eq!(
            format!("{}", Thousandths::secs_from_nanos(999_999_999)),
            "0.999"
        );
        assert_eq!(
            format!("{}", Thousandths::secs_from_nanos(u64::MAX)),
            "18446744073.709"
        );
    }

    #[test]
    fn page_conversions() {
        assert_eq!(pages_to_kib(32768), 131072);
        assert_eq!(pages_to_mib(32768), 128);
        assert_eq!(pages_to_mib(255), 0);
        assert_eq!(pages_to_kib(u64::MAX), u64::MAX);
    }
}
