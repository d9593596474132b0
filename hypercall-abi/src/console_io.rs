//! Sub-commands of the `console_io` hypercall (`CONSOLEIO_*` in `xen.h`).
//!
//! `console_io(cmd, count, buffer)`: `Write` sends `count` bytes from
//! `buffer` to the hypervisor console; `Read` copies up to `count` pending
//! input bytes into `buffer` and returns how many it copied.

use core::fmt;

/// `console_io` sub-commands.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConsoleIoCmd {
    /// `CONSOLEIO_write` (0): write the buffer to the console.
    Write = 0,
    /// `CONSOLEIO_read` (1): read pending console input into the buffer.
    Read = 1,
}

impl ConsoleIoCmd {
    /// Every sub-command, in number order.
    pub const ALL: [ConsoleIoCmd; 2] = [ConsoleIoCmd::Write, ConsoleIoCmd::Read];
}

/// A `console_io` sub-command number that Xen does not define.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnknownConsoleIoCmd(pub u32);

impl fmt::Display for UnknownConsoleIoCmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown console_io command {}", self.0)
    }
}

impl core::error::Error for UnknownConsoleIoCmd {}

impl TryFrom<u32> for ConsoleIoCmd {
    type Error = UnknownConsoleIoCmd;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(ConsoleIoCmd::Write),
            1 => Ok(ConsoleIoCmd::Read),
            _ => Err(UnknownConsoleIoCmd(value)),
        }
    }
}

/// `CONSOLEIO_write`.
pub const CONSOLEIO_WRITE: u32 = ConsoleIoCmd::Write as u32;
/// `CONSOLEIO_read`.
pub const CONSOLEIO_READ: u32 = ConsoleIoCmd::Read as u32;
