//! The store front-end (guest target only): the guest's end of its xenstore ring and event
//! channel from `start_info` (`store_mfn`, `store_evtchn`), under [`::xenbus::client::Client`].
//!
//! - [`StorePage`] implements [`SharedMem`] over the store page. The page is in the
//!   guest's initial mapping (the builder puts it right after start_info): its pfn is the
//!   M2P entry of `store_mfn`, its address `virt_base + pfn * 4096`; nothing new is mapped.
//! - [`StoreDoorbell`] implements [`Doorbell`]: notify is `EVTCHNOP_send` on
//!   `store_evtchn`; wait polls that port (`SCHEDOP_poll`) until it is pending, then clears
//!   it. The port is masked, so store events never run an upcall handler.
//! - [`connect`] builds the client: `pv_guest::xenbus::connect(si)?.read(TxId::NONE, "name")`.
//!
//! Needs [`crate::events::init`] first (the pending and mask bits live in shared_info).

use core::sync::atomic::{compiler_fence, fence, AtomicU32, Ordering};

use ::xenbus::client::{Client, Doorbell, RingTransport};
use ::xenbus::ring::SharedMem;
use hypercall_abi::errno::Errno;
use hypercall_abi::layout::MACH2PHYS_VIRT_START;
use hypercall_abi::start_info::StartInfo;

use crate::events;

/// Size of the store page.
const PAGE: usize = 4096;

/// The guest's store ring page, in its initial mapping.
pub struct StorePage {
    va: u64,
}

/// The store client over the guest's ring.
pub type StoreClient = Client<RingTransport<StorePage, StoreDoorbell>>;

impl StorePage {
    /// Finds the store page `si` names (`store_mfn`) in the initial mapping.
    pub fn find(si: &StartInfo) -> Result<StorePage, Errno> {
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
        Ok(StorePage { va })
    }

    /// Its virtual address.
    pub fn address(&self) -> u64 {
        self.va
    }

    /// The address of `len` bytes at `offset`, kept inside the page.
    fn at(&self, offset: usize, len: usize) -> u64 {
        self.va + offset.min(PAGE - len.min(PAGE)) as u64
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        let p = self.at(offset & !3, 4) as *const AtomicU32;
        // SAFETY: `va` is the store page, mapped read-write in our initial region for the
        // life of the domain (checked in `find`); `p` is 4-byte aligned inside it; dom0
        // accesses the same words concurrently, hence atomics.
        unsafe { &*p }
    }
}

impl SharedMem for StorePage {
    fn size(&self) -> usize {
        PAGE
    }

    fn read_u32(&self, offset: usize) -> u32 {
        self.word(offset).load(Ordering::Relaxed)
    }

    fn write_u32(&mut self, offset: usize, value: u32) {
        self.word(offset).store(value, Ordering::Relaxed)
    }

    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        let base = self.at(offset, out.len());
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: as in `word`; `base + i` stays inside the page (`at` clamps).
            // Volatile: dom0 may change the bytes meanwhile.
            *b = unsafe { core::ptr::read_volatile((base + i as u64) as *const u8) };
        }
    }

    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        let base = self.at(offset, data.len());
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: as in `read_bytes`.
            unsafe { core::ptr::write_volatile((base + i as u64) as *mut u8, b) };
        }
    }

    fn read_barrier(&self) {
        compiler_fence(Ordering::Acquire);
    }

    fn write_barrier(&self) {
        compiler_fence(Ordering::Release);
    }

    fn full_barrier(&self) {
        fence(Ordering::SeqCst);
    }
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
    let page = StorePage::find(si)?;
    let bell = StoreDoorbell::new(si);
    RingTransport::new(page, bell).map(Client::new).map_err(|_| Errno::EINVAL)
}
