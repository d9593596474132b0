//! The console front-end (guest target only): a domU whose `start_info` names a console ring
//! (`console.domU.mfn` and `evtchn`) prints through it, as Mini-OS and Linux's hvc_xen do;
//! dom0's console back-end reads it. dom0 itself, and a guest without a ring, keep using
//! `console_io` (Xen's rule).
//!
//! The ring is Xen's `xencons_interface` (xen/include/public/io/console.h): `in[1024]`
//! (dom0 to guest), `out[2048]` (guest to dom0), then `in_cons, in_prod, out_cons,
//! out_prod`. Writing: bytes into `out` from `out_prod`, a write barrier, `out_prod`
//! moved, the event channel notified. When the ring is full the guest notifies and yields
//! until dom0 has made room: output is never dropped. Reading: `in` from `in_cons` to
//! `in_prod`, then `in_cons` moved and dom0 notified.
//!
//! The page is in the guest's initial mapping (the builder puts it after start_info and
//! the xenstore page): its pfn is the M2P entry of `console.domU.mfn`, its address
//! `virt_base + pfn * 4096`. Sending an event needs no event-channel setup.

use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use hypercall_abi::layout::MACH2PHYS_VIRT_START;
use hypercall_abi::start_info::{StartInfo, SIF_INITDOMAIN};

use xenbus::console::{IN_SIZE, OUT_SIZE};

/// Offsets in the page (`xenbus::console`, Xen's layout), as addresses are added here.
const OUT_OFFSET: u64 = xenbus::console::OUT_OFFSET as u64;
const IN_CONS: u64 = xenbus::console::IN_CONS as u64;
const IN_PROD: u64 = xenbus::console::IN_PROD as u64;
const OUT_CONS: u64 = xenbus::console::OUT_CONS as u64;
const OUT_PROD: u64 = xenbus::console::OUT_PROD as u64;

/// Virtual address of the ring page; 0: no ring (console_io is used).
static RING: AtomicU64 = AtomicU64::new(0);
/// The guest's end of the console event channel.
static PORT: AtomicU32 = AtomicU32::new(0);

/// Finds the ring `si` names, if this is a domU that has one; called at start of day.
pub fn init(si: &StartInfo) {
    let mfn = si.console.domu_mfn();
    if si.flags & SIF_INITDOMAIN != 0 || mfn == 0 {
        return;
    }
    // The M2P is mapped read-only for every guest up to the machine's highest frame, and
    // `mfn` is one of our own frames (the builder gave it), so its entry is mapped.
    let entry = MACH2PHYS_VIRT_START + mfn * 8;
    // SAFETY: see above: a read-only, always-mapped hypervisor table, 8-byte aligned.
    let pfn = unsafe { core::ptr::read_volatile(entry as *const u64) };
    let base = crate::start_info::virt_base();
    let Some(va) = pfn
        .checked_mul(4096)
        .and_then(|off| base.checked_add(off))
        .filter(|_| pfn < si.nr_pages)
    else {
        return;
    };
    // The initial region ends with the page tables: a ring page past them is not mapped.
    if va.checked_add(4096).is_none_or(|end| end > si.pt_base) {
        return;
    }
    PORT.store(si.console.domu_evtchn(), Ordering::Relaxed);
    RING.store(va, Ordering::Release);
}

/// Whether output goes through the ring.
pub fn active() -> bool {
    RING.load(Ordering::Acquire) != 0
}

/// The guest's end of the console channel (0 without a ring).
pub fn port() -> u32 {
    PORT.load(Ordering::Relaxed)
}

fn index(ring: u64, offset: u64) -> &'static AtomicU32 {
    // SAFETY: `ring` is the ring page, mapped read-write in our initial region for the
    // life of the domain (checked in `init`); the indices are 4-byte aligned u32s that
    // dom0 also accesses, hence atomics.
    unsafe { &*((ring + offset) as *const AtomicU32) }
}

fn notify() {
    let _ = crate::events::send(port());
}

/// Writes all of `bytes` to the ring; `false` if there is no ring or dom0 left it with
/// impossible indices (the caller then uses console_io).
pub fn write(mut bytes: &[u8]) -> bool {
    let ring = RING.load(Ordering::Acquire);
    if ring == 0 {
        return false;
    }
    while !bytes.is_empty() {
        let cons = index(ring, OUT_CONS).load(Ordering::Acquire);
        let prod = index(ring, OUT_PROD).load(Ordering::Relaxed);
        let used = prod.wrapping_sub(cons);
        if used > OUT_SIZE {
            return false;
        }
        let space = (OUT_SIZE - used) as usize;
        if space == 0 {
            // Full: dom0 has been told; give it the CPU until it makes room.
            notify();
            let _ = crate::hypercall::sched_yield();
            continue;
        }
        let n = space.min(bytes.len());
        for (i, &b) in bytes[..n].iter().enumerate() {
            let at = u64::from(prod.wrapping_add(i as u32) & (OUT_SIZE - 1));
            // SAFETY: `at` < OUT_SIZE, so the byte is inside `out` of the mapped ring page.
            unsafe { core::ptr::write_volatile((ring + OUT_OFFSET + at) as *mut u8, b) };
        }
        // wmb: the bytes before the index that publishes them.
        fence(Ordering::Release);
        index(ring, OUT_PROD).store(prod.wrapping_add(n as u32), Ordering::Release);
        bytes = &bytes[n..];
    }
    notify();
    true
}

/// Copies typed input waiting in the ring into `buf`; the count (0: none, or no ring).
pub fn read(buf: &mut [u8]) -> usize {
    let ring = RING.load(Ordering::Acquire);
    if ring == 0 || buf.is_empty() {
        return 0;
    }
    let cons = index(ring, IN_CONS).load(Ordering::Relaxed);
    let prod = index(ring, IN_PROD).load(Ordering::Acquire);
    let avail = prod.wrapping_sub(cons);
    if avail == 0 || avail > IN_SIZE {
        return 0;
    }
    let n = (avail as usize).min(buf.len());
    for (i, slot) in buf[..n].iter_mut().enumerate() {
        let at = u64::from(cons.wrapping_add(i as u32) & (IN_SIZE - 1));
        // SAFETY: `at` < IN_SIZE: inside `in`, at the start of the mapped ring page.
        *slot = unsafe { core::ptr::read_volatile((ring + at) as *const u8) };
    }
    // mb: the bytes are read before dom0 may reuse their slots.
    fence(Ordering::SeqCst);
    index(ring, IN_CONS).store(cons.wrapping_add(n as u32), Ordering::Release);
    notify();
    n
}

/// The raw ring page, for test guests that play a hostile front-end (`None`: no ring).
pub fn ring_address() -> Option<u64> {
    let ring = RING.load(Ordering::Acquire);
    (ring != 0).then_some(ring)
}

/// Sets `out_prod` to `value` and notifies: what a hostile front-end does (test guests).
pub fn set_out_prod(value: u32) {
    let ring = RING.load(Ordering::Acquire);
    if ring != 0 {
        index(ring, OUT_PROD).store(value, Ordering::Release);
        notify();
    }
}

/// `out_prod` as this guest last published it (test guests).
pub fn out_prod() -> u32 {
    let ring = RING.load(Ordering::Acquire);
    if ring == 0 {
        return 0;
    }
    index(ring, OUT_PROD).load(Ordering::Acquire)
}

/// `out_cons` as dom0 last published it (test guests).
pub fn out_cons() -> u32 {
    let ring = RING.load(Ordering::Acquire);
    if ring == 0 {
        return 0;
    }
    index(ring, OUT_CONS).load(Ordering::Acquire)
}
