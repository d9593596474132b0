//! The xenstore ring (`struct xenstore_domain_interface`): two 1024-byte byte rings in the
//! store page. [`XsRingEnd`] is either end: the server (dom0) consumes requests and produces
//! responses, the client (guest) the reverse. Messages are byte streams split anywhere, so the
//! consumer reassembles them in private memory.

use alloc::vec::Vec;

use super::{RingError, SharedMem};
use crate::wire::{Header, WireError, HEADER_SIZE};

/// `XENSTORE_RING_SIZE`: bytes in each direction.
pub const RING_SIZE: u32 = 1024;
/// Offset of `req[]`.
pub const REQ: usize = 0;
/// Offset of `rsp[]`.
pub const RSP: usize = 1024;
/// Offset of `req_cons`.
pub const REQ_CONS: usize = 2048;
/// Offset of `req_prod`.
pub const REQ_PROD: usize = 2052;
/// Offset of `rsp_cons`.
pub const RSP_CONS: usize = 2056;
/// Offset of `rsp_prod`.
pub const RSP_PROD: usize = 2060;
/// Offset of `server_features`.
pub const SERVER_FEATURES: usize = 2064;
/// Offset of `connection`.
pub const CONNECTION: usize = 2068;
/// Offset of `error`.
pub const ERROR: usize = 2072;
/// Size of the interface structure.
pub const INTERFACE_SIZE: usize = 2076;
/// `XENSTORE_ERROR_RINGIDX`: the server saw an impossible index.
pub const ERROR_RINGIDX: u32 = 2;
/// `XENSTORE_ERROR_PROTO`: the server saw a malformed message.
pub const ERROR_PROTO: u32 = 3;

/// `MASK_XENSTORE_IDX`.
pub fn mask(idx: u32) -> usize {
    (idx & (RING_SIZE - 1)) as usize
}

/// Which end of the store ring this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// dom0's store service: reads `req`, writes `rsp`.
    Server,
    /// The guest: writes `req`, reads `rsp`.
    Client,
}

struct Dir {
    data: usize,
    cons: usize,
    prod: usize,
}

const REQUESTS: Dir = Dir { data: REQ, cons: REQ_CONS, prod: REQ_PROD };
const RESPONSES: Dir = Dir { data: RSP, cons: RSP_CONS, prod: RSP_PROD };

/// One end of a store ring: private copies of the indices it owns, the message being
/// reassembled, and the one message being sent. Memory is bounded by two messages.
pub struct XsRingEnd {
    side: Side,
    /// Our consumer index of the incoming direction (never re-read from the page).
    in_cons: u32,
    /// Our producer index of the outgoing direction.
    out_prod: u32,
    inbuf: Vec<u8>,
    in_len: Option<usize>,
    outbuf: Vec<u8>,
    out_pos: usize,
    stopped: Option<RingError>,
}

impl XsRingEnd {
    /// Starts an end on a freshly zeroed or already-running page: the indices this end owns
    /// are read once from the page.
    pub fn new(side: Side, page: &impl SharedMem) -> Result<XsRingEnd, RingError> {
        if page.size() < INTERFACE_SIZE {
            return Err(RingError::PageTooSmall);
        }
        let (inc, outp) = match side {
            Side::Server => (REQUESTS.cons, RESPONSES.prod),
            Side::Client => (RESPONSES.cons, REQUESTS.prod),
        };
        Ok(XsRingEnd {
            side,
            in_cons: page.read_u32(inc),
            out_prod: page.read_u32(outp),
            inbuf: Vec::new(),
            in_len: None,
            outbuf: Vec::new(),
            out_pos: 0,
            stopped: None,
        })
    }

    fn dirs(&self) -> (&'static Dir, &'static Dir) {
        match self.side {
            Side::Server => (&REQUESTS, &RESPONSES),
            Side::Client => (&RESPONSES, &REQUESTS),
        }
    }

    /// Why this end stopped, if it did.
    pub fn stopped(&self) -> Option<RingError> {
        self.stopped
    }

    fn stop(&mut self, page: &mut impl SharedMem, e: RingError) -> RingError {
        self.stopped = Some(e);
        if self.side == Side::Server {
            let code = if matches!(e, RingError::Oversized(_)) { ERROR_PROTO } else { ERROR_RINGIDX };
            page.write_u32(ERROR, code);
        }
        e
    }

    /// Reads bytes towards the next whole message. Returns it (header + payload, private
    /// copy) once complete, `None` if the ring holds no more yet.
    pub fn read_message(&mut self, page: &mut impl SharedMem) -> Result<Option<Vec<u8>>, RingError> {
        if let Some(e) = self.stopped {
            return Err(if e == RingError::Stopped { e } else { RingError::Stopped });
        }
        let (dir, _) = self.dirs();
        loop {
            let want = self.in_len.map_or(HEADER_SIZE, |len| HEADER_SIZE + len);
            if self.inbuf.len() == want {
                if self.in_len.is_some() {
                    self.in_len = None;
                    return Ok(Some(core::mem::take(&mut self.inbuf)));
                }
                match Header::parse(&self.inbuf) {
                    Ok(h) => self.in_len = Some(h.len as usize),
                    Err(WireError::Oversized(len)) => return Err(self.stop(page, RingError::Oversized(len))),
                    Err(_) => return Err(self.stop(page, RingError::Oversized(0))),
                }
                continue;
            }
            let prod = page.read_u32(dir.prod);
            page.read_barrier();
            let avail = prod.wrapping_sub(self.in_cons);
            if avail > RING_SIZE {
                return Err(self.stop(page, RingError::IndexLie { prod, cons: self.in_cons }));
            }
            if avail == 0 {
                return Ok(None);
            }
            let start = mask(self.in_cons);
            let n = (want - self.inbuf.len()).min(avail as usize).min(RING_SIZE as usize - start);
            let old = self.inbuf.len();
            self.inbuf.resize(old + n, 0);
            if let Some(dst) = self.inbuf.get_mut(old..) {
                page.read_bytes(dir.data + start, dst);
            }
            self.in_cons = self.in_cons.wrapping_add(n as u32);
            page.full_barrier();
            page.write_u32(dir.cons, self.in_cons);
        }
    }

    /// Bytes taken from the ring so far (the consumer index, wrapping): a reader that took
    /// part of a message without completing it has still made room the writer may wait for.
    pub fn consumed(&self) -> u32 {
        self.in_cons
    }

    /// Whether the previous message has been sent completely.
    pub fn output_idle(&self) -> bool {
        self.out_pos == self.outbuf.len()
    }

    /// Takes `msg` to send; `Err(Full)` while the previous one is still going out.
    pub fn queue_message(&mut self, msg: Vec<u8>) -> Result<(), RingError> {
        if !self.output_idle() {
            return Err(RingError::Full);
        }
        self.outbuf = msg;
        self.out_pos = 0;
        Ok(())
    }

    /// Copies as much of the message being sent as the ring has room for. Returns the
    /// number of bytes published (notify the other side if non-zero).
    pub fn flush(&mut self, page: &mut impl SharedMem) -> Result<usize, RingError> {
        if self.stopped.is_some() {
            return Err(RingError::Stopped);
        }
        let (_, dir) = self.dirs();
        let mut written = 0;
        while !self.output_idle() {
            let cons = page.read_u32(dir.cons);
            page.read_barrier();
            let used = self.out_prod.wrapping_sub(cons);
            if used > RING_SIZE {
                return Err(self.stop(page, RingError::IndexLie { prod: self.out_prod, cons }));
            }
            let free = (RING_SIZE - used) as usize;
            if free == 0 {
                break;
            }
            let start = mask(self.out_prod);
            let n = (self.outbuf.len() - self.out_pos).min(free).min(RING_SIZE as usize - start);
            page.write_bytes(dir.data + start, self.outbuf.get(self.out_pos..self.out_pos + n).unwrap_or(&[]));
            self.out_pos += n;
            self.out_prod = self.out_prod.wrapping_add(n as u32);
            page.write_barrier();
            page.write_u32(dir.prod, self.out_prod);
            written += n;
        }
        if self.output_idle() {
            self.outbuf = Vec::new();
            self.out_pos = 0;
        }
        Ok(written)
    }
}
