//! The block front-end (Xen's `io/blkif.h`, as Linux's `xen-blkfront` and Mini-OS's
//! `blkfront.c` drive it): finds the virtual disk `device/vbd/<devid>` in the store, reads
//! its size and features from the back-end directory, shares a ring page and an event
//! channel with the back end, walks the xenbus states to Connected, and moves data in
//! pages granted to the back end.
//!
//! Requests are queued: up to [`MAX_IN_FLIGHT`] at once ([`BlkFront::start_read`],
//! [`BlkFront::start_write`], [`BlkFront::start_flush`], then [`BlkFront::wait`]), each up to
//! 11 pages; [`BlkFront::read`], [`BlkFront::write`] and [`BlkFront::flush`] do one and wait.
//! The data pages of each slot are granted once, for the front end's life.

use alloc::alloc::{alloc_zeroed, Layout};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::errno::Errno;
use xenbus::blkif::{
    BlkifRequest, BlkifResponse, BlkifSegment, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ,
    BLKIF_OP_WRITE, BLKIF_RSP_OKAY,
};
use xenbus::client::TxId;
use xenbus::ring::generic::FrontRing;
use xenbus::ring::SharedMem;

use crate::shared_page::SharedPage;

/// Our ring page, as the ring code reaches it.
fn ring_page_at(va: u64) -> SharedPage {
    // SAFETY: `va` is the ring page `connect` allocated from the heap and keeps for the
    // front end's life (never freed); only the ring code and the back end touch it.
    unsafe { SharedPage::new(va) }
}
use xenbus::state::XenbusState;

use crate::grant::GrantTable;
use crate::mm::xen::GuestMm;
use crate::xenbus::StoreClient;
use crate::events;

/// Requests in flight at once.
pub const MAX_IN_FLIGHT: usize = 4;
/// Bytes one request moves at most.
pub const MAX_REQUEST_BYTES: usize = BLKIF_MAX_SEGMENTS_PER_REQUEST * 4096;

/// Why a block operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// Setting up: the message says what.
    Setup(String),
    /// The buffer is empty, not whole sectors, or larger than a request moves.
    BadLength,
    /// No slot free (wait for a request first).
    Busy,
    /// The back end answered with this `BLKIF_RSP_*`.
    Device(i16),
    /// The ring broke (the back end's indices lie) or the wait failed.
    Ring,
}

/// A page of ours: its address here and its machine frame.
#[derive(Clone, Copy, Debug)]
struct Page {
    va: u64,
    mfn: u64,
}

/// A page-aligned zeroed page from the heap, and its machine frame.
fn alloc_page(mm: &GuestMm) -> Option<Page> {
    let layout = Layout::from_size_align(4096, 4096).ok()?;
    // SAFETY: a non-zero size; the page is kept for the front end's life.
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        return None;
    }
    let va = p as u64;
    let mfn = mm.p2m.mfn(mm.layout.pfn_of(va)?)?.0;
    Some(Page { va, mfn })
}


/// A request slot: its data pages (granted), and the request using it.
struct Slot {
    pages: [(Page, u32); BLKIF_MAX_SEGMENTS_PER_REQUEST],
    /// The request in flight (its id), its byte count, and its status once answered.
    busy: Option<(u64, usize, Option<i16>)>,
}

/// A connected virtual disk.
pub struct BlkFront {
    /// The device number (`virtual-device`).
    pub devid: u32,
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// The back end refuses writes (`info` has `VDISK_READONLY`, or `mode = r`).
    pub readonly: bool,
    /// The back end offers flushes (`feature-flush-cache`).
    pub flush_cache: bool,
    ring: FrontRing<BlkifRequest, BlkifResponse>,
    ring_page: Page,
    port: u32,
    slots: Vec<Slot>,
    next_id: u64,
}

fn read_str(xs: &mut StoreClient, path: &str) -> Result<String, BlkError> {
    let v = xs.read(TxId::NONE, path).map_err(|e| BlkError::Setup(format!("{path}: {e:?}")))?;
    Ok(String::from_utf8_lossy(&v).into_owned())
}

fn read_num(xs: &mut StoreClient, path: &str) -> Result<u64, BlkError> {
    let s = read_str(xs, path)?;
    s.trim().parse().map_err(|_| BlkError::Setup(format!("{path}: \"{s}\" is not a number")))
}

fn state_of(xs: &mut StoreClient, path: &str) -> Option<XenbusState> {
    xs.read(TxId::NONE, path).ok().and_then(|v| XenbusState::parse(&v))
}

impl BlkFront {
    /// Connects to virtual disk `devid`: reads the back end's description, shares the ring
    /// and the data pages, publishes `ring-ref`, `event-channel` and `protocol`, says
    /// Initialised, and waits (on the store) for the back end to say Connected.
    pub fn connect(xs: &mut StoreClient, mm: &mut GuestMm, gt: &mut GrantTable, devid: u32) -> Result<BlkFront, BlkError> {
        let front = format!("device/vbd/{devid}");
        let back = read_str(xs, &format!("{front}/backend"))?;
        let backend_id = read_num(xs, &format!("{front}/backend-id"))? as u16;
        let sectors = read_num(xs, &format!("{back}/sectors"))?;
        let sector_size = read_num(xs, &format!("{back}/sector-size")).unwrap_or(512);
        if sector_size != 512 {
            return Err(BlkError::Setup(format!("sector-size {sector_size} is not 512")));
        }
        let info = read_num(xs, &format!("{back}/info")).unwrap_or(0);
        let mode_ro = read_str(xs, &format!("{back}/mode")).is_ok_and(|m| m.trim() == "r");
        let flush_cache = read_num(xs, &format!("{back}/feature-flush-cache")).unwrap_or(0) == 1;
        let setup = |what: &str| BlkError::Setup(String::from(what));
        let ring_page = alloc_page(mm).ok_or_else(|| setup("no memory for the ring"))?;
        let ring = FrontRing::init(&mut ring_page_at(ring_page.va)).map_err(|e| BlkError::Setup(format!("ring: {e:?}")))?;
        let ring_ref = gt.grant_access(backend_id, ring_page.mfn, false).ok_or_else(|| setup("no grant reference for the ring"))?;
        let mut slots = Vec::new();
        for _ in 0..MAX_IN_FLIGHT {
            let mut pages = [(Page { va: 0, mfn: 0 }, 0u32); BLKIF_MAX_SEGMENTS_PER_REQUEST];
            for p in pages.iter_mut() {
                let page = alloc_page(mm).ok_or_else(|| setup("no memory for the data pages"))?;
                let gref = gt.grant_access(backend_id, page.mfn, false).ok_or_else(|| setup("no grant reference for a data page"))?;
                *p = (page, gref);
            }
            slots.push(Slot { pages, busy: None });
        }
        let port = events::alloc_unbound(backend_id).map_err(|e: Errno| BlkError::Setup(format!("event channel: {e}")))?;
        let w = |xs: &mut StoreClient, k: &str, v: &str| xs.write(TxId::NONE, &format!("{front}/{k}"), v.as_bytes()).map_err(|e| BlkError::Setup(format!("{front}/{k}: {e:?}")));
        w(xs, "ring-ref", &format!("{ring_ref}"))?;
        w(xs, "event-channel", &format!("{port}"))?;
        w(xs, "protocol", "x86_64-abi")?;
        w(xs, "state", &format!("{}", XenbusState::Initialised as u32))?;
        // Wait for the back end: Connected, or it gave up.
        let back_state = format!("{back}/state");
        xs.watch(&back_state, "blkfront").map_err(|e| BlkError::Setup(format!("watch: {e:?}")))?;
        loop {
            match state_of(xs, &back_state) {
                Some(XenbusState::Connected) => break,
                Some(s @ (XenbusState::Closing | XenbusState::Closed)) => {
                    let _ = xs.unwatch(&back_state, "blkfront");
                    return Err(BlkError::Setup(format!("the back end is {}", s.as_str())));
                }
                _ => {
                    xs.wait_event().map_err(|e| BlkError::Setup(format!("waiting for the back end: {e:?}")))?;
                }
            }
        }
        let _ = xs.unwatch(&back_state, "blkfront");
        w(xs, "state", &format!("{}", XenbusState::Connected as u32))?;
        Ok(BlkFront { devid, sectors, readonly: info & u64::from(xenbus::blkif::keys::VDISK_READONLY) != 0 || mode_ro, flush_cache, ring, ring_page, port, slots, next_id: 1 })
    }

    fn free_slot(&self) -> Option<usize> {
        self.slots.iter().position(|s| s.busy.is_none())
    }

    /// Queues a request of `op` at `sector` over `bytes` of slot `i`'s pages.
    fn push(&mut self, i: usize, op: u8, sector: u64, bytes: usize) -> Result<u64, BlkError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut req = BlkifRequest { operation: op, nr_segments: 0, handle: self.devid as u16, id, sector_number: sector, ..Default::default() };
        let mut left = bytes;
        for (seg, (_, gref)) in req.seg.iter_mut().zip(self.slots[i].pages.iter()) {
            if left == 0 {
                break;
            }
            let n = left.min(4096);
            *seg = BlkifSegment { gref: *gref, first_sect: 0, last_sect: (n / 512 - 1) as u8, _pad: 0 };
            req.nr_segments += 1;
            left -= n;
        }
        let mut page = ring_page_at(self.ring_page.va);
        self.ring.push_request(&mut page, &req).map_err(|_| BlkError::Ring)?;
        if self.ring.publish(&mut page) {
            let _ = events::send(self.port);
        }
        self.slots[i].busy = Some((id, bytes, None));
        Ok(id)
    }

    fn check_len(len: usize) -> Result<(), BlkError> {
        if len == 0 || !len.is_multiple_of(512) || len > MAX_REQUEST_BYTES {
            return Err(BlkError::BadLength);
        }
        Ok(())
    }

    /// Queues a read of `len` bytes from `sector`: its id (the data comes with [`Self::wait`]).
    pub fn start_read(&mut self, sector: u64, len: usize) -> Result<u64, BlkError> {
        Self::check_len(len)?;
        let i = self.free_slot().ok_or(BlkError::Busy)?;
        self.push(i, BLKIF_OP_READ, sector, len)
    }

    /// Queues a write of `data` at `sector`: its id.
    pub fn start_write(&mut self, sector: u64, data: &[u8]) -> Result<u64, BlkError> {
        Self::check_len(data.len())?;
        let i = self.free_slot().ok_or(BlkError::Busy)?;
        for (chunk, (page, _)) in data.chunks(4096).zip(self.slots[i].pages.iter()) {
            // SAFETY: our page, 4096 bytes, not in the back end's hands (the slot is free).
            unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr(), page.va as *mut u8, chunk.len()) };
        }
        self.push(i, BLKIF_OP_WRITE, sector, data.len())
    }

    /// Queues a flush: everything written before it is durable when it is answered.
    pub fn start_flush(&mut self) -> Result<u64, BlkError> {
        let i = self.free_slot().ok_or(BlkError::Busy)?;
        self.push(i, BLKIF_OP_FLUSH_DISKCACHE, 0, 0)
    }

    /// Takes every response waiting, marking their slots answered.
    fn collect(&mut self) -> Result<(), BlkError> {
        let page = ring_page_at(self.ring_page.va);
        loop {
            while let Some(rsp) = self.ring.next_response(&page).map_err(|_| BlkError::Ring)? {
                if let Some(slot) = self.slots.iter_mut().find(|s| matches!(s.busy, Some((id, _, None)) if id == rsp.id)) {
                    if let Some((id, bytes, _)) = slot.busy {
                        slot.busy = Some((id, bytes, Some(rsp.status)));
                    }
                }
            }
            let mut page = ring_page_at(self.ring_page.va);
            if !self.ring.final_check_for_responses(&mut page).map_err(|_| BlkError::Ring)? {
                return Ok(());
            }
        }
    }

    /// Waits for request `id`; for a read, its data is copied into `out` (up to its
    /// length). The slot is free again afterwards.
    pub fn wait(&mut self, id: u64, out: Option<&mut [u8]>) -> Result<(), BlkError> {
        let i = self.slots.iter().position(|s| matches!(s.busy, Some((sid, _, _)) if sid == id)).ok_or(BlkError::Ring)?;
        loop {
            self.collect()?;
            if let Some((_, bytes, Some(status))) = self.slots[i].busy {
                if let Some(out) = out {
                    let n = bytes.min(out.len());
                    for (chunk, (page, _)) in out[..n].chunks_mut(4096).zip(self.slots[i].pages.iter()) {
                        // SAFETY: our page, answered: the back end is done with it.
                        unsafe { core::ptr::copy_nonoverlapping(page.va as *const u8, chunk.as_mut_ptr(), chunk.len()) };
                    }
                }
                self.slots[i].busy = None;
                return if status == BLKIF_RSP_OKAY { Ok(()) } else { Err(BlkError::Device(status)) };
            }
            // The port stays masked: SCHEDOP_poll wakes on it all the same.
            let _ = events::poll(&[self.port], 0);
            events::clear_pending(self.port);
        }
    }

    /// Test hooks for back-end authors: the grant reference of data page `page` (0..11) of
    /// request slot 0, to build requests by hand.
    pub fn data_gref(&self, page: usize) -> Option<u32> {
        self.slots.first()?.pages.get(page).map(|(_, g)| *g)
    }

    /// Test hook: pushes `req` exactly as given (any operation, counts, sectors or grants)
    /// and notifies; its answer comes from [`Self::next_raw_response`]. Use it only with no
    /// request of the queue in flight.
    pub fn push_raw(&mut self, req: &BlkifRequest) -> Result<(), BlkError> {
        let mut page = ring_page_at(self.ring_page.va);
        self.ring.push_request(&mut page, req).map_err(|_| BlkError::Ring)?;
        self.ring.publish(&mut page);
        events::send(self.port).map_err(|_| BlkError::Ring)
    }

    /// Test hook: the next response, waiting for it up to `deadline_ns` (system time).
    pub fn next_raw_response(&mut self, deadline_ns: u64) -> Result<Option<BlkifResponse>, BlkError> {
        loop {
            let page = ring_page_at(self.ring_page.va);
            if let Some(rsp) = self.ring.next_response(&page).map_err(|_| BlkError::Ring)? {
                return Ok(Some(rsp));
            }
            let mut page = ring_page_at(self.ring_page.va);
            if self.ring.final_check_for_responses(&mut page).map_err(|_| BlkError::Ring)? {
                continue;
            }
            if crate::time::now_ns() >= deadline_ns {
                return Ok(None);
            }
            let _ = events::poll(&[self.port], deadline_ns);
            events::clear_pending(self.port);
        }
    }

    /// Test hook: makes the ring lie, `req_prod` claiming `extra` requests that were never
    /// written, and notifies.
    pub fn lie_about_requests(&mut self, extra: u32) {
        let mut page = ring_page_at(self.ring_page.va);
        let prod = page.read_u32(xenbus::ring::generic::REQ_PROD);
        page.write_u32(xenbus::ring::generic::REQ_PROD, prod.wrapping_add(extra));
        let _ = events::send(self.port);
    }

    /// Reads `buf.len()` bytes (whole sectors, up to 11 pages) from `sector`.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        let id = self.start_read(sector, buf.len())?;
        self.wait(id, Some(buf))
    }

    /// Writes `data` at `sector`.
    pub fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), BlkError> {
        let id = self.start_write(sector, data)?;
        self.wait(id, None)
    }

    /// Makes everything written so far durable.
    pub fn flush(&mut self) -> Result<(), BlkError> {
        let id = self.start_flush()?;
        self.wait(id, None)
    }
}
