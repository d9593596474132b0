//! The store front-end (guest target only): the guest's end of its xenstore ring and event
//! channel from `start_info` (`store_mfn`, `store_evtchn`), under [`::xenbus::client::Client`].
//!
//! - [`store_page`] finds the store page, a [`SharedPage`] (`SharedMem`). The page is in the
//!   guest's initial mapping (the builder puts it right after start_info): its pfn is the
//!   M2P entry of `store_mfn`, its address `virt_base + pfn * 4096`; nothing new is mapped.
//! - [`StoreDoorbell`] implements [`Doorbell`]: notify is `EVTCHNOP_send` on
//!   `store_evtchn`; wait polls that port (`SCHEDOP_poll`) until it is pending, then clears
//!   it. The port is masked, so store events never run an upcall handler.
//! - [`connect`] builds the client: `pv_guest::xenbus::connect(si)?.read(TxId::NONE, "name")`.
//!
//! - [`publish_to`] and [`read_from`] hand a value (a port, a grant reference) from one
//!   domain to another through the store: written in the first one's home, readable by the
//!   second only.
//!
//! Needs [`crate::events::init`] first (the pending and mask bits live in shared_info).


use ::xenbus::client::{Client, ClientError, Doorbell, RingTransport, TxId};
use ::xenbus::path::{Perm, Perms};
use ::xenbus::wire::XsError;
use alloc::vec::Vec;
use hypercall_abi::types::DomId;
use hypercall_abi::errno::Errno;
use hypercall_abi::layout::MACH2PHYS_VIRT_START;
use hypercall_abi::start_info::StartInfo;

use crate::events;
use crate::shared_page::SharedPage;

/// Size of the store page.
const PAGE: usize = 4096;

/// The store client over the guest's ring.
pub type StoreClient = Client<RingTransport<SharedPage, StoreDoorbell>>;

/// Finds the store page `si` names (`store_mfn`) in the initial mapping.
pub fn store_page(si: &StartInfo) -> Result<SharedPage, Errno> {
    let mfn = si.store_mfn;
    if mfn == 0 {
        return Err(Errno::ENOENT);
    }
    let entry = MACH2PHYS_VIRT_START.checked_add(mfn.checked_mul(8).ok_or(Errno::EINVAL)?).ok_or(Errno::EINVAL)?;
    // SAFETY: the M2P is mapped read-only for every guest up to the machine's highest
    // frame and `mfn` is one of our own frames (the builder gave it), so its entry is
    // mapped; 8-byte aligned.
    let pfn = unsafe { core::ptr::read_volatile(entry as *const u64) };
    let va = pfn
        .checked_mul(PAGE as u64)
        .and_then(|off| crate::start_info::virt_base().checked_add(off))
        .filter(|_| pfn < si.nr_pages)
        .ok_or(Errno::EINVAL)?;
    // The initial region ends with the page tables: a page past them is not mapped.
    if va.checked_add(PAGE as u64).is_none_or(|end| end > si.pt_base) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: `va` is the store page, mapped read-write in our initial region for the
    // life of the domain (just checked to lie before the page tables), page-aligned.
    Ok(unsafe { SharedPage::new(va) })
}

/// The store event channel: notify sends on it, wait polls it.
pub struct StoreDoorbell {
    port: u32,
}

impl StoreDoorbell {
    /// The doorbell of `si.store_evtchn`; masks the port (its events are polled, never
    /// delivered as upcalls).
    pub fn new(si: &StartInfo) -> StoreDoorbell {
        events::mask(si.store_evtchn);
        StoreDoorbell { port: si.store_evtchn }
    }

    /// The guest's end of the store channel.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Sends an event to dom0's store service.
    pub fn ring(&self) {
        let _ = events::send(self.port);
    }

    /// Waits until the port is pending, then clears it.
    pub fn wait_event(&self) {
        if !events::is_pending(self.port) {
            // Returns at once if the port became pending since the check.
            let _ = events::poll(&[self.port], 0);
        }
        events::clear_pending(self.port);
    }
}

impl<P> Doorbell<P> for StoreDoorbell {
    fn notify(&mut self, _page: &mut P) {
        self.ring();
    }

    fn wait(&mut self, _page: &mut P) {
        self.wait_event();
    }
}

/// The store client over this guest's ring (needs [`crate::events::init`]).
pub fn connect(si: &StartInfo) -> Result<StoreClient, Errno> {
    let page = store_page(si)?;
    let bell = StoreDoorbell::new(si);
    RingTransport::new(page, bell).map(Client::new).map_err(|_| Errno::EINVAL)
}

/// Our own domain id, as the toolstack wrote it in our home (`domid`).
pub fn own_domid(xs: &mut StoreClient) -> Result<u16, ClientError> {
    let v = xs.read(TxId::NONE, "domid")?;
    core::str::from_utf8(&v)
        .ok()
        .and_then(|s| s.trim_end_matches('\0').parse().ok())
        .ok_or(ClientError::Protocol)
}

/// Writes `value` at `node` (relative to our home) so that domain `peer` alone may read
/// it (permissions `n<us> r<peer>`): how a domain hands another one a port or a grant
/// reference, as split drivers do. The write and the permissions are one transaction, so
/// the peer never finds the node before it may read it.
pub fn publish_to(xs: &mut StoreClient, node: &str, value: &[u8], peer: u16) -> Result<(), ClientError> {
    let me = own_domid(xs)?;
    let perms = Perms { entries: alloc::vec![(DomId(me), Perm::None), (DomId(peer), Perm::Read)] };
    xs.transaction(|c, tx| {
        c.write(tx, node, value)?;
        c.set_perms(tx, node, &perms)
    })
}

/// Reads `node` under domain `peer`'s home, yielding and reading again for up to
/// `timeout_ns` of system time while it is not there yet. Until the peer has published it,
/// the store answers `EACCES` rather than `ENOENT` (the peer's home is not ours to read,
/// and the store does not tell what exists in it), so both mean "not yet".
pub fn read_from(xs: &mut StoreClient, peer: u16, node: &str, timeout_ns: u64) -> Result<Vec<u8>, ClientError> {
    let home = xs.get_domain_path(DomId(peer))?;
    let path = alloc::format!("{home}/{node}");
    let deadline = crate::time::now_ns().saturating_add(timeout_ns);
    loop {
        match xs.read(TxId::NONE, &path) {
            Err(ClientError::Store(XsError::ENOENT | XsError::EACCES)) if crate::time::now_ns() < deadline => {
                let _ = crate::hypercall::sched_yield();
            }
            r => return r,
        }
    }
}
