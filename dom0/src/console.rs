//! The console back-end's portable half: Xen's console ring (`xencons_interface` in
//! xen/include/public/io/console.h) read and written as a back-end that trusts nothing in
//! it, and each guest's console state (its bounded log, the line being assembled, whether
//! its ring is still served). The kernel maps each guest's ring page and implements
//! [`RingPage`] over it; host tests use a plain array and write hostile indices into it.
//!
//! The rules, as xenconsoled's: each index is read once into private memory; the
//! producer's distance from the consumer is checked against the ring size before any byte
//! is copied; the consumer index is written only after the bytes are copied. A ring whose
//! indices are impossible is marked broken and never read again (its domain keeps running;
//! the others keep being served).
#![forbid(unsafe_code)]
// The rings here are guests': no panics on any value.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};

pub use xenbus::console::{IN_CONS, IN_OFFSET, IN_PROD, IN_SIZE, OUT_CONS, OUT_OFFSET, OUT_PROD, OUT_SIZE};

/// Bytes of each guest's output kept for `xl console` (the newest).
pub const LOG_SIZE: usize = 16 * 1024;
/// Longest line printed as one `[name] line`; a longer one is cut into pieces of this size
/// (as the microkernel's fallback console does).
pub const LINE_MAX: usize = 160;

/// One guest's console ring page as the back-end sees it (shared with the guest, which may
/// change any byte at any time).
pub trait RingPage {
    /// Copies `buf.len()` bytes from `offset` (in the page).
    fn read(&self, offset: usize, buf: &mut [u8]);
    /// Copies `bytes` to `offset` (in the page).
    fn write(&mut self, offset: usize, bytes: &[u8]);
}

fn read_u32(ring: &impl RingPage, offset: usize) -> u32 {
    let mut b = [0; 4];
    ring.read(offset, &mut b);
    u32::from_le_bytes(b)
}

fn write_u32(ring: &mut impl RingPage, offset: usize, v: u32) {
    ring.write(offset, &v.to_le_bytes());
}

/// A ring whose indices cannot be right: the producer is more than a ring ahead of the
/// consumer (or behind it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt {
    /// The consumer index read.
    pub cons: u32,
    /// The producer index read.
    pub prod: u32,
}

/// Copies what the guest wrote to `out` since the last call into `into`, then publishes the
/// new `out_cons`; the count copied. Reads each index once.
pub fn read_output(ring: &mut impl RingPage, into: &mut Vec<u8>) -> Result<usize, Corrupt> {
    let cons = read_u32(ring, OUT_CONS);
    let prod = read_u32(ring, OUT_PROD);
    // rmb: the bytes are read after the producer index that covers them.
    fence(Ordering::Acquire);
    let n = prod.wrapping_sub(cons);
    if n > OUT_SIZE {
        return Err(Corrupt { cons, prod });
    }
    copy_out(ring, OUT_OFFSET, OUT_SIZE, cons, n, into);
    // mb: the bytes are copied before the guest may reuse their slots.
    fence(Ordering::SeqCst);
    write_u32(ring, OUT_CONS, prod);
    Ok(n as usize)
}

/// Reads `n` bytes of a ring of `size` at `base` from index `cons` (wrapping) into `into`.
fn copy_out(
    ring: &impl RingPage,
    base: usize,
    size: u32,
    cons: u32,
    n: u32,
    into: &mut Vec<u8>,
) {
    let mut done = 0;
    while done < n {
        let at = cons.wrapping_add(done) & (size - 1);
        let len = (n - done).min(size - at);
        let start = into.len();
        into.resize(start + len as usize, 0);
        if let Some(dst) = into.get_mut(start..) {
            ring.read(base + at as usize, dst);
        }
        done += len;
    }
}

/// Puts as much of `bytes` as fits into the guest's `in` ring and publishes the new
/// `in_prod`; the count written (0 when it is full).
pub fn write_input(ring: &mut impl RingPage, bytes: &[u8]) -> Result<usize, Corrupt> {
    let cons = read_u32(ring, IN_CONS);
    let prod = read_u32(ring, IN_PROD);
    fence(Ordering::SeqCst);
    let used = prod.wrapping_sub(cons);
    if used > IN_SIZE {
        return Err(Corrupt { cons, prod });
    }
    let n = (IN_SIZE - used).min(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    let mut done = 0;
    while done < n {
        let at = prod.wrapping_add(done) & (IN_SIZE - 1);
        let len = (n - done).min(IN_SIZE - at);
        ring.write(
            IN_OFFSET + at as usize,
            bytes.get(done as usize..(done + len) as usize).unwrap_or(&[]),
        );
        done += len;
    }
    // wmb: the bytes are in place before the index that publishes them.
    fence(Ordering::Release);
    write_u32(ring, IN_PROD, prod.wrapping_add(n));
    Ok(n as usize)
}

/// `[name] line` with control characters (but tab) shown as `.`, so a guest cannot move
/// the cursor over other lines; ends with `\n`. The `\r` of a `\r\n` line end (Mini-OS
/// and Linux write those) is dropped.
pub fn prefixed_line(name: &str, line: &[u8]) -> Vec<u8> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut out = Vec::with_capacity(name.len() + line.len() + 4);
    out.push(b'[');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"] ");
    out.extend(line.iter().map(|&b| {
        if b == b'\t' || (0x20..0x7f).contains(&b) {
            b
        } else {
            b'.'
        }
    }));
    out.push(b'\n');
    out
}

/// The line dom0 prints once when it gives up on a ring.
pub fn corrupt_line(name: &str, c: Corrupt) -> String {
    alloc::format!(
        "xl: console of {name}: ring indices corrupt (cons {} prod {}); no longer served\n",
        c.cons,
        c.prod
    )
}

/// What a drain did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// Nothing new (or the ring is no longer served).
    Nothing,
    /// Bytes were taken: notify the guest (its ring has room again).
    Read(usize),
    /// The ring was found corrupt now; the line saying so was emitted.
    Broke(Corrupt),
}

/// One guest's console: its ring, its log and the line being assembled.
pub struct GuestConsole<R> {
    /// Its name (for `[name]` and messages).
    pub name: String,
    /// dom0's end of its console event channel.
    pub local_port: u32,
    /// The mapped ring page.
    pub ring: R,
    /// Its ring was corrupt: never read or written again.
    pub broken: bool,
    /// The newest output bytes, at most [`LOG_SIZE`].
    log: VecDeque<u8>,
    /// The unfinished line (printed when its newline comes, or at [`LINE_MAX`]).
    line: Vec<u8>,
}

impl<R: RingPage> GuestConsole<R> {
    /// A console for guest `name` over `ring`, notified through `local_port`.
    pub fn new(name: &str, local_port: u32, ring: R) -> Self {
        GuestConsole {
            name: String::from(name),
            local_port,
            ring,
            broken: false,
            log: VecDeque::new(),
            line: Vec::new(),
        }
    }

    /// The kept output, oldest first.
    pub fn log(&self) -> Vec<u8> {
        self.log.iter().copied().collect()
    }

    /// Drops the unfinished line (on attach: it is in the log, shown raw).
    pub fn forget_line(&mut self) {
        self.line.clear();
    }

    /// Takes the guest's new output: appended to the log and passed to `emit` raw when
    /// `attached`, else as whole `[name] line` lines (an unfinished line waits).
    pub fn drain(&mut self, attached: bool, emit: &mut dyn FnMut(&[u8])) -> Drained {
        if self.broken {
            return Drained::Nothing;
        }
        let mut bytes = Vec::new();
        let n = match read_output(&mut self.ring, &mut bytes) {
            Ok(n) => n,
            Err(c) => {
                self.broken = true;
                self.flush_line(emit);
                emit(corrupt_line(&self.name, c).as_bytes());
                return Drained::Broke(c);
            }
        };
        if n == 0 {
            return Drained::Nothing;
        }
        let excess = (self.log.len() + bytes.len()).saturating_sub(LOG_SIZE);
        self.log.drain(..excess.min(self.log.len()));
        let skip = bytes.len().saturating_sub(LOG_SIZE);
        self.log.extend(bytes.get(skip..).unwrap_or(&[]));
        if attached {
            emit(&bytes);
        } else {
            for &b in &bytes {
                if b != b'\n' {
                    self.line.push(b);
                }
                if b == b'\n' || self.line.len() >= LINE_MAX {
                    emit(&prefixed_line(&self.name, &self.line));
                    self.line.clear();
                }
            }
        }
        Drained::Read(n)
    }

    /// Prints the unfinished line, if any (the domain is going away).
    pub fn flush_line(&mut self, emit: &mut dyn FnMut(&[u8])) {
        if !self.line.is_empty() {
            emit(&prefixed_line(&self.name, &self.line));
            self.line.clear();
        }
    }

    /// Typed input for the guest: as much as its `in` ring takes (the count). A corrupt
    /// `in` ring breaks the console like a corrupt `out` ring (the line is emitted).
    pub fn input(&mut self, bytes: &[u8], emit: &mut dyn FnMut(&[u8])) -> usize {
        if self.broken {
            return 0;
        }
        match write_input(&mut self.ring, bytes) {
            Ok(n) => n,
            Err(c) => {
                self.broken = true;
                emit(corrupt_line(&self.name, c).as_bytes());
                0
            }
        }
    }
}

/// Every served console, by domain id.
pub struct Consoles<R> {
    /// The consoles.
    pub by_dom: BTreeMap<u16, GuestConsole<R>>,
}

impl<R: RingPage> Default for Consoles<R> {
    fn default() -> Self {
        Consoles {
            by_dom: BTreeMap::new(),
        }
    }
}

impl<R: RingPage> Consoles<R> {
    /// The domain whose console dom0's `port` belongs to.
    pub fn by_port(&self, port: u32) -> Option<u16> {
        self.by_dom
            .iter()
            .find(|(_, c)| c.local_port == port)
            .map(|(&d, _)| d)
    }

    /// Drains every console (`attached` raw, the others as lines); the ports to notify.
    pub fn drain_all(&mut self, attached: Option<u16>, emit: &mut dyn FnMut(&[u8])) -> Vec<u32> {
        let mut notify = Vec::new();
        for (&dom, c) in self.by_dom.iter_mut() {
            if let Drained::Read(_) = c.drain(attached == Some(dom), emit) {
                notify.push(c.local_port);
            }
        }
        notify
    }
}

/// The console back end on the split-driver framework: a guest's console is connected to
/// its ring's channel, and disconnected (its last output printed) when the guest goes.
impl<R: RingPage> crate::split::RingBackend<R> for Consoles<R> {
    const KIND: crate::split::Kind = crate::split::Kind::Console;

    fn connect(&mut self, dom: u16, name: &str, page: R, port: u32) -> Result<(), String> {
        if self.by_dom.contains_key(&dom) {
            return Err(alloc::format!("d{dom}'s console is served already"));
        }
        self.by_dom.insert(dom, GuestConsole::new(name, port, page));
        Ok(())
    }

    /// Takes its console away; what it wrote last is left for the caller to print
    /// ([`Consoles::drain_last`] before this).
    fn disconnect(&mut self, dom: u16) -> Option<R> {
        self.by_dom.remove(&dom).map(|c| c.ring)
    }
}

impl<R: RingPage> Consoles<R> {
    /// Prints what `dom`'s console holds, its partial last line included, through `emit`
    /// (before it is disconnected).
    pub fn drain_last(&mut self, dom: u16, emit: &mut dyn FnMut(&[u8])) {
        if let Some(c) = self.by_dom.get_mut(&dom) {
            c.drain(false, emit);
            c.flush_line(emit);
        }
    }
}

#[cfg(test)]
mod tests;
