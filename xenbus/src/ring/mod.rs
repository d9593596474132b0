//! Shared rings. A ring lives in a page the other domain can write at any moment, so every
//! consumer here reads each index once into a local, checks it against the ring size before
//! use, copies the data it covers into private memory once, and stops for good (returning
//! [`RingError`]) when an index lies.
//!
//! The page itself is reached through [`SharedMem`], so this crate never holds a raw pointer:
//! dom0 implements it over a foreign mapping, a guest over its own page, tests over a `Vec`.

pub mod generic;
pub mod xenstore;

use alloc::vec;
use alloc::vec::Vec;

/// Access to a page shared with another domain. Each method is one access the other side
/// may race with; an implementation over real shared memory uses volatile accesses and puts
/// the barriers below where the protocol needs them (on x86 TSO, compiler fences for
/// `read_barrier`/`write_barrier` and an `mfence` for `full_barrier`).
pub trait SharedMem {
    /// Size of the shared area in bytes.
    fn size(&self) -> usize;
    /// Reads the little-endian `u32` at `offset` (4-byte aligned, in range).
    fn read_u32(&self, offset: usize) -> u32;
    /// Writes the little-endian `u32` at `offset`.
    fn write_u32(&mut self, offset: usize, value: u32);
    /// Copies `out.len()` bytes starting at `offset` into `out`.
    fn read_bytes(&self, offset: usize, out: &mut [u8]);
    /// Copies `data` to `offset`.
    fn write_bytes(&mut self, offset: usize, data: &[u8]);
    /// Orders an index read before the reads of the data it covers.
    fn read_barrier(&self) {}
    /// Orders data writes before the write of the index that publishes them.
    fn write_barrier(&self) {}
    /// Orders a published index before a following read of the other side's event index.
    fn full_barrier(&self) {}
}

/// A private page: the fake for host tests, and a staging buffer. Tests play the other
/// (possibly hostile) side by writing its fields directly.
#[derive(Clone, Debug)]
pub struct LocalPage {
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl LocalPage {
    /// A zeroed page of `size` bytes.
    pub fn new(size: usize) -> LocalPage {
        LocalPage { bytes: vec![0; size] }
    }
}

// The in-memory page of host tests and tools: the offsets are the ring code's own, and a
// bad one is a bug to see at once.
#[allow(clippy::indexing_slicing)]
impl SharedMem for LocalPage {
    fn size(&self) -> usize {
        self.bytes.len()
    }
    fn read_u32(&self, offset: usize) -> u32 {
        let b = &self.bytes[offset..offset + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    fn write_u32(&mut self, offset: usize, value: u32) {
        self.bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.bytes[offset..offset + out.len()]);
    }
    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        self.bytes[offset..offset + data.len()].copy_from_slice(data);
    }
}

/// Why a ring stopped, or refused an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The other side published an index that cannot be true (`prod - cons` beyond the ring
    /// size, or more responses than requests). The ring is stopped.
    IndexLie {
        /// The producer index read.
        prod: u32,
        /// Our consumer index.
        cons: u32,
    },
    /// A message header announced more than the protocol allows. The ring is stopped.
    Oversized(u32),
    /// The ring stopped earlier; nothing more is read or written.
    Stopped,
    /// No free slot for a request (front end), or the message in flight is not sent yet.
    Full,
    /// A response was pushed without an outstanding request (a back-end bug).
    NoRequestOutstanding,
    /// The shared area is too small for this ring.
    PageTooSmall,
}
