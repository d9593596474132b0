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

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xenbus::blkif::{
    BlkifRequest, BlkifResponse, BlkifSegment, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ,
    BLKIF_OP_WRITE, BLKIF_RSP_OKAY,
};
use xenbus::ring::generic::FrontRing;
use xenbus::ring::SharedMem;

use crate::events;
use crate::frontend::{self, Device, SharedGrant};
use crate::grant::GrantTable;
use crate::mm::xen::GuestMm;
use crate::xenbus::StoreClient;


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

/// A request slot: its data pages (granted), and the request using it.
struct Slot {
    pages: Vec<SharedGrant>,
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
    ring_page: SharedGrant,
    device: Device,
    port: u32,
    slots: Vec<Slot>,
    next_id: u64,
}

impl BlkFront {
    /// Connects to virtual disk `devid`: reads the back end's description, shares the ring
    /// and the data pages, publishes `ring-ref`, `event-channel` and `protocol`, and walks
    /// the states to Connected (`frontend::Device::connect`).
    pub fn connect(xs: &mut StoreClient, mm: &mut GuestMm, gt: &mut GrantTable, devid: u32) -> Result<BlkFront, BlkError> {
        let setup = BlkError::Setup;
        let device = Device::find(xs, "vbd", devid).map_err(setup)?;
        let sectors = device.back_num(xs, "sectors").map_err(setup)?;
        let sector_size = device.back_num(xs, "sector-size").unwrap_or(512);
        if sector_size != 512 {
            return Err(BlkError::Setup(format!("sector-size {sector_size} is not 512")));
        }
        let info = device.back_num(xs, "info").unwrap_or(0);
        let mode_ro = device.back_str(xs, "mode").is_ok_and(|m| m.trim() == "r");
        let flush_cache = device.back_num(xs, "feature-flush-cache").unwrap_or(0) == 1;
        let ring_page = frontend::share_page(mm, gt, device.backend_id, false).map_err(setup)?;
        let ring = FrontRing::init(&mut ring_page.page()).map_err(|e| BlkError::Setup(format!("ring: {e:?}")))?;
        let mut slots = Vec::new();
        for _ in 0..MAX_IN_FLIGHT {
            let pages = (0..BLKIF_MAX_SEGMENTS_PER_REQUEST)
                .map(|_| frontend::share_page(mm, gt, device.backend_id, false))
                .collect::<Result<Vec<_>, _>>()
                .map_err(setup)?;
            slots.push(Slot { pages, busy: None });
        }
        let port = device.connect(xs, &[("ring-ref", ring_page.gref)], &[("protocol", "x86_64-abi")]).map_err(setup)?;
        let readonly = info & u64::from(xenbus::blkif::keys::VDISK_READONLY) != 0 || mode_ro;
        Ok(BlkFront { devid, sectors, readonly, flush_cache, ring, ring_page, device, port, slots, next_id: 1 })
    }

    /// Disconnects: answers are no longer awaited, the back end closes and unmaps our
    /// ring (`frontend::Device::close`). The pages stay granted (never reused).
    pub fn close(self, xs: &mut StoreClient) -> Result<(), BlkError> {
        self.device.close(xs, self.port).map_err(BlkError::Setup)
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
        for (seg, page) in req.seg.iter_mut().zip(self.slots[i].pages.iter()) {
            if left == 0 {
                break;
            }
            let n = left.min(4096);
            *seg = BlkifSegment { gref: page.gref, first_sect: 0, last_sect: (n / 512 - 1) as u8, _pad: 0 };
            req.nr_segments += 1;
            left -= n;
        }
        let mut page = self.ring_page.page();
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
        for (chunk, page) in data.chunks(4096).zip(self.slots[i].pages.iter()) {
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
        let page = self.ring_page.page();
        loop {
            while let Some(rsp) = self.ring.next_response(&page).map_err(|_| BlkError::Ring)? {
                if let Some(slot) = self.slots.iter_mut().find(|s| matches!(s.busy, Some((id, _, None)) if id == rsp.id)) {
                    if let Some((id, bytes, _)) = slot.busy {
                        slot.busy = Some((id, bytes, Some(rsp.status)));
                    }
                }
            }
            let mut page = self.ring_page.page();
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
                    for (chunk, page) in out[..n].chunks_mut(4096).zip(self.slots[i].pages.iter()) {
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
        self.slots.first()?.pages.get(page).map(|p| p.gref)
    }

    /// Test hook: pushes `req` exactly as given (any operation, counts, sectors or grants)
    /// and notifies; its answer comes from [`Self::next_raw_response`]. Use it only with no
    /// request of the queue in flight.
    pub fn push_raw(&mut self, req: &BlkifRequest) -> Result<(), BlkError> {
        let mut page = self.ring_page.page();
        self.ring.push_request(&mut page, req).map_err(|_| BlkError::Ring)?;
        self.ring.publish(&mut page);
        events::send(self.port).map_err(|_| BlkError::Ring)
    }

    /// Test hook: the next response, waiting for it up to `deadline_ns` (system time).
    pub fn next_raw_response(&mut self, deadline_ns: u64) -> Result<Option<BlkifResponse>, BlkError> {
        loop {
            let page = self.ring_page.page();
            if let Some(rsp) = self.ring.next_response(&page).map_err(|_| BlkError::Ring)? {
                return Ok(Some(rsp));
            }
            let mut page = self.ring_page.page();
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
        let mut page = self.ring_page.page();
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
