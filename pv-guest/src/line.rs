//! A byte-at-a-time line editor for serial consoles (portable, host-tested).
//!
//! Feed it every input byte; it says what to echo and when a line is complete. Enter is
//! `'\r'` or `'\n'`, and `"\r\n"` counts as one line end. Backspace (0x08) and DEL (0x7f)
//! erase the last character. Printable ASCII is kept; other bytes (control characters,
//! escape sequences, non-ASCII) are dropped, so the buffer is always valid UTF-8 and erasing
//! one byte erases one column. Lines hold at most `N` bytes; further input is dropped and
//! reported with [`Action::Full`] (ring a bell).
#![forbid(unsafe_code)]

/// What the caller should do after feeding a byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to show.
    None,
    /// Echo this printable byte.
    Echo(u8),
    /// Erase the last character on the terminal (`"\x08 \x08"`).
    Erase,
    /// The byte was dropped because the line is full (ring the bell).
    Full,
    /// Enter: the line is complete; read it with [`LineEditor::line`], then call
    /// [`LineEditor::clear`]. Echo a newline.
    Submit,
}

/// Line editor with a fixed `N`-byte buffer.
#[derive(Clone, Debug)]
pub struct LineEditor<const N: usize> {
    buf: [u8; N],
    len: usize,
    /// The previous byte was '\r' (so a following '\n' belongs to the same line end).
    after_cr: bool,
}

impl<const N: usize> Default for LineEditor<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineEditor<N> {
    /// The longest line this editor keeps, in bytes.
    pub const CAPACITY: usize = N;

    /// An empty editor.
    pub const fn new() -> Self {
        LineEditor {
            buf: [0; N],
            len: 0,
            after_cr: false,
        }
    }

    /// Processes one input byte.
    pub fn feed(&mut self, byte: u8) -> Action {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match byte {
            b'\n' if after_cr => Action::None,
            b'\r' | b'\n' => Action::Submit,
            0x08 | 0x7f => {
                if self.len > 0 {
                    self.len -= 1;
                    Action::Erase
                } else {
                    Action::None
                }
            }
            0x20..=0x7e => {
                if self.len < N {
                    self.buf[self.len] = byte;
                    self.len += 1;
                    Action::Echo(byte)
                } else {
                    Action::Full
                }
            }
            _ => Action::None,
        }
    }

    /// The current line (printable ASCII only).
    pub fn line(&self) -> &str {
        // Only bytes 0x20..=0x7e are ever stored, so this is always valid UTF-8.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Empties the line (after a submit).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Bytes in the current line.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the current line is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    /// Feeds `input`, returning the submitted lines and the final editor.
    fn run<const N: usize>(input: &[u8]) -> (Vec<String>, Vec<Action>, LineEditor<N>) {
        let mut ed = LineEditor::<N>::new();
        let mut lines = Vec::new();
        let mut actions = Vec::new();
        for &b in input {
            let a = ed.feed(b);
            if a == Action::Submit {
                lines.push(String::from(ed.line()));
                ed.clear();
            }
            actions.push(a);
        }
        (lines, actions, ed)
    }

    #[test]
    fn cr_lf_and_crlf_end_lines_once() {
        let (lines, _, ed) = run::<256>(b"help\rinfo\nversion\r\nshutdown\n\r\r\n");
        assert_eq!(lines, ["help", "info", "version", "shutdown", "", ""]);
        assert!(ed.is_empty());
        // "\n\r" is two line ends; "\r\n" is one.
        let (lines, _, _) = run::<256>(b"a\n\rb\r\n\nc\r");
        assert_eq!(lines, ["a", "", "b", "", "c"]);
    }

    #[test]
    fn echo_and_erase() {
        let (lines, actions, _) = run::<256>(b"hx\x08elp\x7f\x7fp\r");
        assert_eq!(lines, ["hep"]);
        assert_eq!(
            actions,
            [
                Action::Echo(b'h'),
                Action::Echo(b'x'),
                Action::Erase,
                Action::Echo(b'e'),
                Action::Echo(b'l'),
                Action::Echo(b'p'),
                Action::Erase,
                Action::Erase,
                Action::Echo(b'p'),
                Action::Submit,
            ]
        );
    }

    #[test]
    fn erase_on_empty_line_does_nothing() {
        let (lines, actions, _) = run::<256>(b"\x08\x7fa\x08\x08\r");
        assert_eq!(lines, [""]);
        assert_eq!(
            actions,
            [
                Action::None,
                Action::None,
                Action::Echo(b'a'),
                Action::Erase,
                Action::None,
                Action::Submit
            ]
        );
    }

    #[test]
    fn control_and_non_ascii_bytes_are_dropped() {
        let (lines, _, _) = run::<256>(b"\x1b[Ai\x00n\tf\xc3\xa9o\x07\r");
        assert_eq!(lines, ["[Ainfo"]);
    }

    #[test]
    fn line_capped_at_capacity() {
        let (lines, actions, _) = run::<4>(b"abcdefg\x08x\r");
        assert_eq!(lines, ["abcx"]);
        assert_eq!(&actions[4..7], [Action::Full, Action::Full, Action::Full]);
        let mut input = Vec::from([b'z'; 300]);
        input.push(b'\n');
        let (lines, actions, _) = run::<256>(&input);
        assert_eq!(lines[0].len(), 256);
        assert_eq!(actions.iter().filter(|a| **a == Action::Full).count(), 44);
    }

    #[test]
    fn cr_state_resets_after_other_bytes() {
        // '\r' then a printable byte then '\n': the '\n' ends a second line.
        let (lines, _, _) = run::<256>(b"\rx\n");
        assert_eq!(lines, ["", "x"]);
    }
}
