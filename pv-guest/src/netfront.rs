//! The network front end (Xen's `io/netif.h`, as Linux's `xen-netfront` and Mini-OS's
//! `netfront.c` drive it): finds the interface `device/vif/<devid>` in the store, reads
//! its MAC (and the addresses the back end allows it, `ip`), shares a tx and an rx ring
//! and an event channel with the back end, posts receive pages, and walks the xenbus
//! states to Connected.
//!
//! Frames go out of [`TX_SLOTS`] pages granted to the back end (one frame per page, at
//! offset 0, never crossing it), and come in copied by the back end into [`RX_SLOTS`]
//! posted pages, each posted again once read. [`NetFront::send`] and [`NetFront::recv`]
//! never block; [`NetFront::wait`] sleeps until the back end signals or a deadline. With
//! [`NetFront::set_batching`], a burst is published (and the back end woken) once, at
//! [`NetFront::flush`], as Linux's netfront does with `xmit_more`.
//!
//! With the `smoltcp` feature, [`NetFront`] is a `smoltcp::phy::Device` (an Ethernet
//! medium of MTU 1500, checksums in software), so a guest runs smoltcp's TCP/IP over it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xenbus::netif::{Mac, NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse, MAX_FRAME, NETIF_RSP_OKAY};
use xenbus::ring::generic::FrontRing;

use crate::events;
use crate::frontend::{self, Device, SharedGrant};
use crate::grant::GrantTable;
use crate::mm::xen::GuestMm;
use crate::xenbus::StoreClient;

/// Transmit pages (frames in flight at once).
pub const TX_SLOTS: usize = 64;
/// Receive pages posted to the back end.
pub const RX_SLOTS: usize = 64;

/// Why a network operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetError {
    /// Setting up: the message says what.
    Setup(String),
    /// The frame is empty or longer than [`MAX_FRAME`].
    BadLength,
    /// Every transmit page is in flight (the back end has not answered yet).
    Busy,
    /// The ring broke (the back end's indices lie).
    Ring,
}

/// The interface's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames handed to the back end.
    pub tx_frames: u64,
    /// Of those, answered with an error.
    pub tx_errors: u64,
    /// Frames received.
    pub rx_frames: u64,
    /// Receive responses with an error status.
    pub rx_errors: u64,
    /// Times [`NetFront::wait`] slept.
    pub waits: u64,
}

/// A connected network interface.
pub struct NetFront {
    /// The device number (`handle`).
    pub devid: u32,
    /// Its MAC (the `mac` node the toolstack wrote).
    pub mac: Mac,
    /// The addresses the back end lets it use (`ip`), if the toolstack set any.
    pub ips: Vec<[u8; 4]>,
    /// Its counters.
    pub stats: NetStats,
    tx: FrontRing<NetifTxRequest, NetifTxResponse>,
    tx_page: SharedGrant,
    rx: FrontRing<NetifRxRequest, NetifRxResponse>,
    rx_page: SharedGrant,
    device: Device,
    port: u32,
    tx_bufs: Vec<SharedGrant>,
    tx_free: Vec<u16>,
    rx_bufs: Vec<SharedGrant>,
    /// Publishing held back until [`NetFront::flush`].
    batching: bool,
    /// Requests pushed but not yet published.
    unpublished: bool,
}

/// Parses the back end's `ip` node: dotted addresses, space-separated.
fn parse_ips(text: &str) -> Vec<[u8; 4]> {
    text.split_whitespace()
        .filter_map(|a| {
            let mut out = [0u8; 4];
            let mut parts = a.split('.');
            for b in out.iter_mut() {
                *b = parts.next()?.parse().ok()?;
            }
            parts.next().is_none().then_some(out)
        })
        .collect()
}

impl NetFront {
    /// Connects to interface `devid`: reads its MAC, shares the rings and the data pages,
    /// posts every receive page, publishes `tx-ring-ref`, `rx-ring-ref`, `event-channel`,
    /// `request-rx-copy` and `feature-rx-notify`, and walks the states to Connected.
    pub fn connect(xs: &mut StoreClient, mm: &mut GuestMm, gt: &mut GrantTable, devid: u32) -> Result<NetFront, NetError> {
        let setup = NetError::Setup;
        let device = Device::find(xs, "vif", devid).map_err(setup)?;
        let mac_text = device.front_str(xs, "mac").map_err(setup)?;
        let mac = Mac::parse(mac_text.trim()).ok_or_else(|| NetError::Setup(format!("mac \"{mac_text}\" is not a MAC")))?;
        let ips = device.back_str(xs, "ip").map(|s| parse_ips(&s)).unwrap_or_default();
        if device.back_num(xs, "feature-rx-copy").unwrap_or(0) != 1 {
            return Err(NetError::Setup(String::from("the back end does not offer feature-rx-copy")));
        }
        let share = |mm: &mut GuestMm, gt: &mut GrantTable| frontend::share_page(mm, gt, device.backend_id, false);
        let tx_page = share(mm, gt).map_err(setup)?;
        let rx_page = share(mm, gt).map_err(setup)?;
        let tx = FrontRing::init(&mut tx_page.page()).map_err(|e| NetError::Setup(format!("tx ring: {e:?}")))?;
        let mut rx = FrontRing::init(&mut rx_page.page()).map_err(|e| NetError::Setup(format!("rx ring: {e:?}")))?;
        let tx_bufs = (0..TX_SLOTS).map(|_| share(mm, gt)).collect::<Result<Vec<_>, _>>().map_err(setup)?;
        let rx_bufs = (0..RX_SLOTS).map(|_| share(mm, gt)).collect::<Result<Vec<_>, _>>().map_err(setup)?;
        let mut page = rx_page.page();
        for (id, buf) in rx_bufs.iter().enumerate() {
            rx.push_request(&mut page, &NetifRxRequest { id: id as u16, _pad: 0, gref: buf.gref }).map_err(|_| NetError::Ring)?;
        }
        rx.publish(&mut page);
        let rings = [("tx-ring-ref", tx_page.gref), ("rx-ring-ref", rx_page.gref)];
        let port = device.connect(xs, &rings, &[("request-rx-copy", "1"), ("feature-rx-notify", "1")]).map_err(setup)?;
        let tx_free = (0..TX_SLOTS as u16).rev().collect();
        Ok(NetFront { devid, mac, ips, stats: NetStats::default(), tx, tx_page, rx, rx_page, device, port, tx_bufs, tx_free, rx_bufs, batching: false, unpublished: false })
    }

    /// Disconnects (Closing, the back end follows, Closed). The pages stay granted.
    pub fn close(self, xs: &mut StoreClient) -> Result<(), NetError> {
        self.device.close(xs, self.port).map_err(NetError::Setup)
    }

    /// The event channel shared with the back end (masked: [`Self::wait`] polls it).
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Takes the back end's answers to sent frames, freeing their pages.
    fn reap_tx(&mut self) -> Result<(), NetError> {
        loop {
            let page = self.tx_page.page();
            while let Some(rsp) = self.tx.next_response(&page).map_err(|_| NetError::Ring)? {
                if usize::from(rsp.id) < TX_SLOTS && !self.tx_free.contains(&rsp.id) {
                    self.tx_free.push(rsp.id);
                }
                if rsp.status != NETIF_RSP_OKAY {
                    self.stats.tx_errors += 1;
                }
            }
            let mut page = self.tx_page.page();
            if !self.tx.final_check_for_responses(&mut page).map_err(|_| NetError::Ring)? {
                return Ok(());
            }
        }
    }

    /// Whether a frame can be sent now (a transmit page is free).
    pub fn can_send(&mut self) -> bool {
        let _ = self.reap_tx();
        !self.tx_free.is_empty()
    }

    /// Sends a frame of `len` bytes that `fill` writes (in place, in a granted page).
    pub fn send_with<R>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> Result<R, NetError> {
        if len == 0 || len > MAX_FRAME {
            return Err(NetError::BadLength);
        }
        self.reap_tx()?;
        let id = self.tx_free.pop().ok_or(NetError::Busy)?;
        let buf = self.tx_bufs[usize::from(id)];
        // SAFETY: our granted page, 4096 bytes, not in the back end's hands (its id was
        // free: the back end answered its last frame); `len` is at most MAX_FRAME.
        let bytes = unsafe { core::slice::from_raw_parts_mut(buf.va as *mut u8, len) };
        let out = fill(bytes);
        let req = NetifTxRequest { gref: buf.gref, offset: 0, flags: 0, id, size: len as u16 };
        let mut page = self.tx_page.page();
        self.tx.push_request(&mut page, &req).map_err(|_| NetError::Ring)?;
        self.stats.tx_frames += 1;
        if self.batching {
            self.unpublished = true;
        } else {
            self.flush();
        }
        Ok(out)
    }

    /// Holds back publishing what is sent and posted until [`Self::flush`] (Linux's
    /// `xmit_more`): a burst then costs the back end one wake-up, not one per frame.
    pub fn set_batching(&mut self, on: bool) {
        self.batching = on;
        if !on {
            self.flush();
        }
    }

    /// Publishes the frames sent and the pages posted since the last flush, and notifies
    /// the back end once if either ring asked for it.
    pub fn flush(&mut self) {
        if !self.unpublished {
            return;
        }
        self.unpublished = false;
        let notify_tx = self.tx.publish(&mut self.tx_page.page());
        let notify_rx = self.rx.publish(&mut self.rx_page.page());
        if notify_tx || notify_rx {
            let _ = events::send(self.port);
        }
    }

    /// Sends `frame`.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
        self.send_with(frame.len(), |b| b.copy_from_slice(frame))
    }

    /// The next received frame, if one came; its page is posted again.
    pub fn recv(&mut self) -> Result<Option<Vec<u8>>, NetError> {
        loop {
            let page = self.rx_page.page();
            if let Some(rsp) = self.rx.next_response(&page).map_err(|_| NetError::Ring)? {
                let frame = self.take_rx(&rsp);
                let id = usize::from(rsp.id);
                if let Some(buf) = self.rx_bufs.get(id) {
                    let mut page = self.rx_page.page();
                    self.rx.push_request(&mut page, &NetifRxRequest { id: rsp.id, _pad: 0, gref: buf.gref }).map_err(|_| NetError::Ring)?;
                    if self.batching {
                        self.unpublished = true;
                    } else if self.rx.publish(&mut page) {
                        let _ = events::send(self.port);
                    }
                }
                match frame {
                    Some(f) => return Ok(Some(f)),
                    None => continue,
                }
            }
            let mut page = self.rx_page.page();
            if !self.rx.final_check_for_responses(&mut page).map_err(|_| NetError::Ring)? {
                return Ok(None);
            }
        }
    }

    /// The bytes of a receive response (its page's data), or `None` for an error.
    fn take_rx(&mut self, rsp: &NetifRxResponse) -> Option<Vec<u8>> {
        let buf = self.rx_bufs.get(usize::from(rsp.id))?;
        let (offset, len) = (usize::from(rsp.offset), rsp.status);
        if len <= 0 || offset + len as usize > 4096 {
            self.stats.rx_errors += 1;
            return None;
        }
        // SAFETY: our granted page, answered: the back end is done with it until we post
        // it again; offset and length were checked to lie inside it.
        let bytes = unsafe { core::slice::from_raw_parts((buf.va as *const u8).add(offset), len as usize) };
        self.stats.rx_frames += 1;
        Some(bytes.to_vec())
    }

    /// Test hook for back-end authors: pushes `reqs` exactly as given (any grants, sizes,
    /// flags or chains; ids at or above [`TX_SLOTS`] keep them apart from the queue's),
    /// publishes and notifies. Their answers count in `stats.tx_errors`.
    pub fn push_raw(&mut self, reqs: &[NetifTxRequest]) -> Result<(), NetError> {
        let mut page = self.tx_page.page();
        for r in reqs {
            self.tx.push_request(&mut page, r).map_err(|_| NetError::Ring)?;
        }
        self.tx.publish(&mut page);
        events::send(self.port).map_err(|_| NetError::Ring)
    }

    /// Test hook: answers to sent frames taken so far (the queue's pages freed).
    pub fn reap(&mut self) -> Result<(), NetError> {
        self.reap_tx()
    }

    /// Test hook: writes `bytes` at `offset` of transmit page `i` (for [`Self::push_raw`]);
    /// its grant.
    pub fn fill_tx_page(&mut self, i: usize, offset: usize, bytes: &[u8]) -> Option<u32> {
        let buf = self.tx_bufs.get(i)?;
        if offset + bytes.len() > 4096 {
            return None;
        }
        // SAFETY: our granted page; the caller uses it for raw requests only, and the
        // range was checked to lie inside it.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), (buf.va as *mut u8).add(offset), bytes.len()) };
        Some(buf.gref)
    }

    /// The back end's state (Connected, or Closing once it dropped us).
    pub fn back_state(&self, xs: &mut StoreClient) -> Option<xenbus::state::XenbusState> {
        self.device.back_state(xs)
    }

    /// Sleeps until the back end signals or system time `deadline_ns` (0: no deadline).
    /// What was held back is published first.
    pub fn wait(&mut self, deadline_ns: u64) {
        self.flush();
        self.stats.waits += 1;
        let _ = events::poll(&[self.port], deadline_ns);
        events::clear_pending(self.port);
    }
}

#[cfg(feature = "smoltcp")]
mod phy {
    //! `NetFront` as smoltcp's device.
    use alloc::vec::Vec;

    use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
    use smoltcp::time::Instant;

    use super::NetFront;

    /// A received frame.
    pub struct RxToken(Vec<u8>);
    /// Room to send one frame.
    pub struct TxToken<'a>(&'a mut NetFront);

    impl phy::RxToken for RxToken {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            f(&self.0)
        }
    }

    impl phy::TxToken for TxToken<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let mut f = Some(f);
            match self.0.send_with(len, |b| (f.take().expect("called once"))(b)) {
                Ok(r) => r,
                // Not sendable (too long, or the ring broke): smoltcp still needs its
                // answer, from a scratch buffer that goes nowhere.
                Err(_) => {
                    let mut scratch = alloc::vec![0u8; len];
                    (f.take().expect("not called yet"))(&mut scratch)
                }
            }
        }
    }

    impl phy::Device for NetFront {
        type RxToken<'a> = RxToken;
        type TxToken<'a> = TxToken<'a>;

        fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_>)> {
            let frame = self.recv().ok()??;
            Some((RxToken(frame), TxToken(self)))
        }

        fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
            self.can_send().then_some(TxToken(self))
        }

        fn capabilities(&self) -> DeviceCapabilities {
            let mut caps = DeviceCapabilities::default();
            caps.medium = Medium::Ethernet;
            caps.max_transmission_unit = xenbus::netif::MTU + xenbus::netif::ETH_HLEN;
            caps.max_burst_size = Some(super::TX_SLOTS);
            let mut sums = ChecksumCapabilities::default();
            sums.ipv4 = Checksum::Both;
            sums.tcp = Checksum::Both;
            sums.udp = Checksum::Both;
            sums.icmpv4 = Checksum::Both;
            caps.checksum = sums;
            caps
        }
    }
}
