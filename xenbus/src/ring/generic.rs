//! Xen's generic request/response ring (`io/ring.h`, `DEFINE_RING_TYPES`) for split drivers:
//! a shared header (`req_prod`, `req_event`, `rsp_prod`, `rsp_event`, 48 bytes of padding)
//! followed by a power-of-two array of slots, each big enough for a request or a response.
//! [`FrontRing`] produces requests and consumes responses; [`BackRing`] the reverse.

use core::marker::PhantomData;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{RingError, SharedMem};

/// Offset of `req_prod`.
pub const REQ_PROD: usize = 0;
/// Offset of `req_event`.
pub const REQ_EVENT: usize = 4;
/// Offset of `rsp_prod`.
pub const RSP_PROD: usize = 8;
/// Offset of `rsp_event`.
pub const RSP_EVENT: usize = 12;
/// Offset of `ring[0]` (after 48 bytes of padding).
pub const RING_OFFSET: usize = 64;

/// A request or response type that can travel in a slot.
pub trait RingEntry: FromBytes + IntoBytes + Immutable + KnownLayout + Sized {}
impl<T: FromBytes + IntoBytes + Immutable + KnownLayout + Sized> RingEntry for T {}

/// Slot geometry shared by both ends (`__RING_SIZE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Slots in the ring (a power of two).
    pub slots: u32,
    /// Bytes per slot: the larger of request and response.
    pub slot_size: usize,
}

impl Geometry {
    /// The geometry of a ring of `Req`/`Rsp` in `area` bytes: the largest power of two of
    /// slots that fits after the header.
    pub fn new<Req, Rsp>(area: usize) -> Result<Geometry, RingError> {
        let slot_size = core::mem::size_of::<Req>().max(core::mem::size_of::<Rsp>()).max(1);
        let fit = area.saturating_sub(RING_OFFSET) / slot_size;
        if fit == 0 {
            return Err(RingError::PageTooSmall);
        }
        let slots = 1u32 << (usize::BITS - 1 - fit.leading_zeros()).min(31);
        Ok(Geometry { slots, slot_size })
    }

    fn offset(&self, idx: u32) -> usize {
        RING_OFFSET + (idx & (self.slots - 1)) as usize * self.slot_size
    }
}

fn read_entry<T: RingEntry>(mem: &impl SharedMem, at: usize) -> T {
    // One copy of the slot into private memory (the value itself, no allocation: this
    // runs for every request); it is decoded only from the copy.
    let mut entry = T::new_zeroed();
    mem.read_bytes(at, entry.as_mut_bytes());
    entry
}

/// `RING_PUSH_*_AND_CHECK_NOTIFY`: whether the other side asked to be woken for an index
/// between `old` and `new`.
fn needs_notify(old: u32, new: u32, event: u32) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// The back end: consumes requests, produces responses.
pub struct BackRing<Req, Rsp> {
    geo: Geometry,
    req_cons: u32,
    rsp_prod_pvt: u32,
    rsp_published: u32,
    stopped: bool,
    _types: PhantomData<(Req, Rsp)>,
}

impl<Req: RingEntry, Rsp: RingEntry> BackRing<Req, Rsp> {
    /// Attaches to a ring the front end has initialised (`SHARED_RING_INIT`: all zero).
    pub fn new(mem: &impl SharedMem) -> Result<Self, RingError> {
        Ok(BackRing {
            geo: Geometry::new::<Req, Rsp>(mem.size())?,
            req_cons: 0,
            rsp_prod_pvt: 0,
            rsp_published: 0,
            stopped: false,
            _types: PhantomData,
        })
    }

    /// The slot geometry.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Whether the ring stopped because the front end lied.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    fn unconsumed(&mut self, mem: &impl SharedMem) -> Result<u32, RingError> {
        if self.stopped {
            return Err(RingError::Stopped);
        }
        let prod = mem.read_u32(REQ_PROD);
        mem.read_barrier();
        let n = prod.wrapping_sub(self.req_cons);
        if n > self.geo.slots {
            self.stopped = true;
            return Err(RingError::IndexLie { prod, cons: self.req_cons });
        }
        Ok(n)
    }

    /// The next request, copied once into private memory; `None` if there is none or if
    /// every response slot is spoken for (`RING_REQUEST_CONS_OVERFLOW`: respond first).
    pub fn next_request(&mut self, mem: &impl SharedMem) -> Result<Option<Req>, RingError> {
        if self.unconsumed(mem)? == 0 || self.req_cons.wrapping_sub(self.rsp_prod_pvt) >= self.geo.slots {
            return Ok(None);
        }
        let req = read_entry(mem, self.geo.offset(self.req_cons));
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(req))
    }

    /// Writes a response into the next private slot (published by [`Self::publish`]).
    pub fn push_response(&mut self, mem: &mut impl SharedMem, rsp: &Rsp) -> Result<(), RingError> {
        if self.stopped {
            return Err(RingError::Stopped);
        }
        if self.rsp_prod_pvt == self.req_cons {
            return Err(RingError::NoRequestOutstanding);
        }
        mem.write_bytes(self.geo.offset(self.rsp_prod_pvt), rsp.as_bytes());
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes pushed responses; returns whether to notify the front end.
    pub fn publish(&mut self, mem: &mut impl SharedMem) -> bool {
        let (old, new) = (self.rsp_published, self.rsp_prod_pvt);
        if old == new {
            return false;
        }
        mem.write_barrier();
        mem.write_u32(RSP_PROD, new);
        self.rsp_published = new;
        mem.full_barrier();
        needs_notify(old, new, mem.read_u32(RSP_EVENT))
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: asks to be notified of the next request, then looks
    /// once more so a request that raced with the request is not missed.
    pub fn final_check_for_requests(&mut self, mem: &mut impl SharedMem) -> Result<bool, RingError> {
        if self.unconsumed(mem)? > 0 {
            return Ok(true);
        }
        mem.write_u32(REQ_EVENT, self.req_cons.wrapping_add(1));
        mem.full_barrier();
        Ok(self.unconsumed(mem)? > 0)
    }
}

/// The front end: produces requests, consumes responses.
pub struct FrontRing<Req, Rsp> {
    geo: Geometry,
    req_prod_pvt: u32,
    req_published: u32,
    rsp_cons: u32,
    stopped: bool,
    _types: PhantomData<(Req, Rsp)>,
}

impl<Req: RingEntry, Rsp: RingEntry> FrontRing<Req, Rsp> {
    /// `SHARED_RING_INIT` + `FRONT_RING_INIT`: zeroes the indices and asks for a
    /// notification on the first response.
    pub fn init(mem: &mut impl SharedMem) -> Result<Self, RingError> {
        let geo = Geometry::new::<Req, Rsp>(mem.size())?;
        for off in [REQ_PROD, RSP_PROD] {
            mem.write_u32(off, 0);
        }
        mem.write_u32(REQ_EVENT, 1);
        mem.write_u32(RSP_EVENT, 1);
        Ok(FrontRing { geo, req_prod_pvt: 0, req_published: 0, rsp_cons: 0, stopped: false, _types: PhantomData })
    }

    /// The slot geometry.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Requests that may still be pushed before responses are consumed.
    pub fn free_requests(&self) -> u32 {
        self.geo.slots - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Writes a request into the next private slot (published by [`Self::publish`]).
    pub fn push_request(&mut self, mem: &mut impl SharedMem, req: &Req) -> Result<(), RingError> {
        if self.stopped {
            return Err(RingError::Stopped);
        }
        if self.free_requests() == 0 {
            return Err(RingError::Full);
        }
        mem.write_bytes(self.geo.offset(self.req_prod_pvt), req.as_bytes());
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes pushed requests; returns whether to notify the back end.
    pub fn publish(&mut self, mem: &mut impl SharedMem) -> bool {
        let (old, new) = (self.req_published, self.req_prod_pvt);
        if old == new {
            return false;
        }
        mem.write_barrier();
        mem.write_u32(REQ_PROD, new);
        self.req_published = new;
        mem.full_barrier();
        needs_notify(old, new, mem.read_u32(REQ_EVENT))
    }

    fn unconsumed(&mut self, mem: &impl SharedMem) -> Result<u32, RingError> {
        if self.stopped {
            return Err(RingError::Stopped);
        }
        let prod = mem.read_u32(RSP_PROD);
        mem.read_barrier();
        let n = prod.wrapping_sub(self.rsp_cons);
        // More responses than requests outstanding is a lie too.
        if n > self.req_published.wrapping_sub(self.rsp_cons) {
            self.stopped = true;
            return Err(RingError::IndexLie { prod, cons: self.rsp_cons });
        }
        Ok(n)
    }

    /// The next response, copied once into private memory.
    pub fn next_response(&mut self, mem: &impl SharedMem) -> Result<Option<Rsp>, RingError> {
        if self.unconsumed(mem)? == 0 {
            return Ok(None);
        }
        let rsp = read_entry(mem, self.geo.offset(self.rsp_cons));
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`.
    pub fn final_check_for_responses(&mut self, mem: &mut impl SharedMem) -> Result<bool, RingError> {
        if self.unconsumed(mem)? > 0 {
            return Ok(true);
        }
        mem.write_u32(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        mem.full_barrier();
        Ok(self.unconsumed(mem)? > 0)
    }
}
