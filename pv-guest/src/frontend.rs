//! The front-end half of the split-driver framework (Linux's `xenbus_probe_frontend` and
//! `xenbus_client`, Mini-OS's `xenbus_*` helpers): what every front end does around its
//! protocol.
//!
//! - [`Device::find`]: the device `device/<kind>/<devid>` the toolstack gave this guest,
//!   its back end's directory and domain, and that directory's nodes (sizes, features).
//! - [`share_page`]: a zeroed page granted to the back end (rings, data pages).
//! - [`Device::connect`]: an event channel for the back end, the ring grants and other
//!   nodes published, the states walked (Initialised, wait for the back end's Connected,
//!   Connected); a back end that gives up (Closing, Closed) is an error naming its state.
//! - [`Device::close`]: Closing, wait for the back end to close, Closed.
//!
//! The blkfront uses it, and so can a porter's own front end.

use alloc::alloc::{alloc_zeroed, Layout};
use alloc::format;
use alloc::string::String;

use xenbus::client::TxId;
use xenbus::state::XenbusState;

use crate::events;
use crate::grant::GrantTable;
use crate::mm::xen::GuestMm;
use crate::shared_page::SharedPage;
use crate::xenbus::StoreClient;

/// A page of this guest granted to a back end: its address here, its machine frame, and
/// the grant reference. Kept for the front end's life (never freed: the back end may hold
/// it mapped).
#[derive(Clone, Copy, Debug)]
pub struct SharedGrant {
    /// Its virtual address.
    pub va: u64,
    /// Its machine frame.
    pub mfn: u64,
    /// The grant reference the back end uses.
    pub gref: u32,
}

impl SharedGrant {
    /// The page, as ring code reaches it.
    pub fn page(&self) -> SharedPage {
        // SAFETY: `va` is a page [`share_page`] took from the heap for good (never freed);
        // only ring code through these values and the back end touch it.
        unsafe { SharedPage::new(self.va) }
    }
}

/// A zeroed page from the heap, granted to `backend` (writable unless `readonly`).
pub fn share_page(mm: &GuestMm, gt: &mut GrantTable, backend: u16, readonly: bool) -> Result<SharedGrant, String> {
    let layout = Layout::from_size_align(4096, 4096).map_err(|_| String::from("no page layout"))?;
    // SAFETY: a non-zero size; the page is kept for good.
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        return Err(String::from("no memory for a shared page"));
    }
    let va = p as u64;
    let mfn = mm.layout.pfn_of(va).and_then(|pfn| mm.p2m.mfn(pfn)).ok_or("a heap page has no frame")?.0;
    let gref = gt.grant_access(backend, mfn, readonly).ok_or("no grant reference free")?;
    Ok(SharedGrant { va, mfn, gref })
}

/// A device the toolstack gave this guest, as its front end sees it.
#[derive(Clone, Debug)]
pub struct Device {
    /// Its directory, relative to the guest's home (`device/vbd/51712`).
    pub front: String,
    /// The back end's directory (`/local/domain/0/backend/vbd/<dom>/51712`).
    pub back: String,
    /// The back end's domain.
    pub backend_id: u16,
    /// The device number.
    pub devid: u32,
}

fn state_at(xs: &mut StoreClient, path: &str) -> Option<XenbusState> {
    xs.read(TxId::NONE, path).ok().and_then(|v| XenbusState::parse(&v))
}

impl Device {
    /// The device `device/<kind>/<devid>`: its `backend` and `backend-id`.
    pub fn find(xs: &mut StoreClient, kind: &str, devid: u32) -> Result<Device, String> {
        let front = format!("device/{kind}/{devid}");
        let mut dev = Device { front, back: String::new(), backend_id: 0, devid };
        dev.back = dev.front_str(xs, "backend")?;
        let id = dev.front_str(xs, "backend-id")?;
        dev.backend_id = id.trim().parse().map_err(|_| format!("{}/backend-id: \"{id}\" is not a domain", dev.front))?;
        Ok(dev)
    }

    /// Our node `key` (the toolstack's `mac`, `handle`...).
    pub fn front_str(&self, xs: &mut StoreClient, key: &str) -> Result<String, String> {
        let path = format!("{}/{key}", self.front);
        let v = xs.read(TxId::NONE, &path).map_err(|e| format!("{path}: {e:?}"))?;
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    /// The back end's node `key`.
    pub fn back_str(&self, xs: &mut StoreClient, key: &str) -> Result<String, String> {
        let path = format!("{}/{key}", self.back);
        let v = xs.read(TxId::NONE, &path).map_err(|e| format!("{path}: {e:?}"))?;
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    /// The number the back end's node `key` holds.
    pub fn back_num(&self, xs: &mut StoreClient, key: &str) -> Result<u64, String> {
        let s = self.back_str(xs, key)?;
        s.trim().parse().map_err(|_| format!("{}/{key}: \"{s}\" is not a number", self.back))
    }

    /// Writes our node `key`.
    pub fn write(&self, xs: &mut StoreClient, key: &str, value: &str) -> Result<(), String> {
        let path = format!("{}/{key}", self.front);
        xs.write(TxId::NONE, &path, value.as_bytes()).map_err(|e| format!("{path}: {e:?}"))
    }

    /// The back end's state.
    pub fn back_state(&self, xs: &mut StoreClient) -> Option<XenbusState> {
        state_at(xs, &format!("{}/state", self.back))
    }

    /// Publishes the rings (`(node, grant)`: `ring-ref`, or `tx-ring-ref` and
    /// `rx-ring-ref`...), a new event channel for the back end as `event-channel`, and
    /// `extra` nodes (`protocol`...); says Initialised, waits for the back end to say
    /// Connected, and says Connected. dom0's port is ours to send on: it is returned,
    /// masked (poll it, or give it a handler and unmask it).
    pub fn connect(&self, xs: &mut StoreClient, rings: &[(&str, u32)], extra: &[(&str, &str)]) -> Result<u32, String> {
        let port = events::alloc_unbound(self.backend_id).map_err(|e| format!("event channel: {e}"))?;
        events::mask(port);
        for &(node, gref) in rings {
            self.write(xs, node, &format!("{gref}"))?;
        }
        self.write(xs, "event-channel", &format!("{port}"))?;
        for &(node, value) in extra {
            self.write(xs, node, value)?;
        }
        self.write(xs, "state", XenbusState::Initialised.as_str())?;
        let outcome = self.wait_back(xs, "connect", |s| match s {
            Some(XenbusState::Connected) => Some(Ok(())),
            Some(s @ (XenbusState::Closing | XenbusState::Closed)) => Some(Err(format!("the back end is {}", s.as_str()))),
            _ => None,
        });
        if let Err(e) = outcome.and_then(|r| r) {
            let _ = events::close(port);
            return Err(e);
        }
        self.write(xs, "state", XenbusState::Connected.as_str())?;
        Ok(port)
    }

    /// Closes as Xen's front ends do: says Closing and waits for the back end to follow
    /// (it answers what is queued and stops using our rings), says Closed and waits for
    /// the back end to say Closed (it has unmapped them). The port is closed too.
    pub fn close(&self, xs: &mut StoreClient, port: u32) -> Result<(), String> {
        use XenbusState::{Closed, Closing};
        self.write(xs, "state", Closing.as_str())?;
        let closing = self.wait_back(xs, "close", |s| matches!(s, Some(Closing | Closed) | None).then_some(()));
        let _ = events::close(port);
        self.write(xs, "state", Closed.as_str())?;
        closing.and_then(|()| self.wait_back(xs, "close", |s| matches!(s, Some(Closed) | None).then_some(())))
    }

    /// Watches the back end's state until `done` says what it means.
    fn wait_back<T>(&self, xs: &mut StoreClient, what: &str, mut done: impl FnMut(Option<XenbusState>) -> Option<T>) -> Result<T, String> {
        let path = format!("{}/state", self.back);
        let token = format!("{what}:{}", self.front);
        xs.watch(&path, &token).map_err(|e| format!("watch {path}: {e:?}"))?;
        let outcome = loop {
            if let Some(t) = done(state_at(xs, &path)) {
                break Ok(t);
            }
            if let Err(e) = xs.wait_event() {
                break Err(format!("waiting for the back end: {e:?}"));
            }
        };
        let _ = xs.unwatch(&path, &token);
        outcome
    }
}
