//! `memory_op` (12): the domain's reservation (increase, decrease, populate), what it may
//! hold, its memory map, and where the M2P is, as Xen's `do_memory_op` and
//! `arch_memory_op` for a PV guest.
//!
//! The reservation operations answer the number of extents done (never an errno once the
//! work has started: a frame that cannot be had or given back just ends the run, as in
//! Xen) and continue themselves after [`Platform::preempt_chunk`] extents, with the done
//! count in `cmd >> MEMOP_EXTENT_SHIFT`. Deviations from Xen, before any work: an
//! unreadable argument is `EFAULT`, a domain that cannot be named is `EPERM`/`ESRCH`, an
//! extent order other than 0 is `EINVAL` (Xen answers the start extent for all three).
//!
//! The reservation operations and the current/maximum reservation queries may name
//! another domain: a privileged caller (`EPERM` otherwise) building an existing domain
//! (`ESRCH` otherwise, dying ones included). They then act on that domain's reservation
//! as if it had asked itself: its `max_pages` limits, its `tot_pages` counts, the frames
//! must be its own, the M2P entries of populated frames are set; the frames are handed
//! out to the caller's list.

use super::mm::{resolve_domain, with_mm, with_mm_for};
use super::Platform;
use crate::guest_access::{read_guest, write_guest, GuestRange};
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::Hypercall;
use hypercall_abi::layout::{MACH2PHYS_VIRT_END, MACH2PHYS_VIRT_START};
use hypercall_abi::memory::*;

/// `memory_op(cmd, arg)` (`args[2..]` are unused, and kept as they are by a continuation).
// Out of line: keeps its buffers and saved registers off the path of the small hypercalls.
#[inline(never)]
pub(super) fn memory_op(p: &mut impl Platform, args: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, arg) = (args[0], args[1]);
    let op = (cmd & MEMOP_CMD_MASK) as u32;
    let start = cmd >> MEMOP_EXTENT_SHIFT;
    match op {
        XENMEM_INCREASE_RESERVATION | XENMEM_DECREASE_RESERVATION | XENMEM_POPULATE_PHYSMAP => {
            reservation(p, op, start, args)
        }
        _ if start != 0 => Err(Errno::EINVAL),
        XENMEM_MAXIMUM_RAM_PAGE => with_mm(p, |mm| mm.frames.nr_frames() as i64),
        XENMEM_CURRENT_RESERVATION | XENMEM_MAXIMUM_RESERVATION => {
            let d: XenMemoryDomain = read_guest(p, arg)?;
            let target = resolve_domain(p, d.domid)?;
            with_mm_for(p, target, |mm| if op == XENMEM_CURRENT_RESERVATION { mm.dom.tot_pages() } else { mm.dom.max_pages() } as i64)
        }
        XENMEM_MEMORY_MAP => memory_map(p, arg),
        XENMEM_MACHPHYS_MAPPING => {
            let max_mfn = with_mm(p, |mm| mm.frames.nr_frames().saturating_sub(1))?;
            let m = XenMachphysMapping { v_start: MACH2PHYS_VIRT_START, v_end: MACH2PHYS_VIRT_END, max_mfn };
            write_guest(p, arg, &m)?;
            Ok(0)
        }
        XENMEM_EXCHANGE => exchange(p, args),
        // Everything else: not implemented.
        _ => Err(Errno::ENOSYS),
    }
}

/// `XENMEM_memory_map`: the domain's pseudo-physical map is one RAM range covering its
/// maximum reservation.
fn memory_map(p: &mut impl Platform, arg: u64) -> Result<i64, Errno> {
    let mut map: XenMemoryMap = read_guest(p, arg)?;
    let max_pages = with_mm(p, |mm| mm.dom.max_pages())?;
    let entries = [E820Entry { addr: 0, size: max_pages << 12, kind: E820_RAM }];
    let n = (map.nr_entries as usize).min(entries.len());
    for (i, e) in entries.iter().take(n).enumerate() {
        write_guest(p, map.buffer + (i * core::mem::size_of::<E820Entry>()) as u64, e)?;
    }
    map.nr_entries = n as u32;
    write_guest(p, arg, &map)?;
    Ok(0)
}

/// The reservation operations.
fn reservation(p: &mut impl Platform, op: u32, start: u64, args: [u64; 5]) -> Result<i64, Errno> {
    let r: XenMemoryReservation = read_guest(p, args[1])?;
    let n = r.nr_extents;
    // Too many to encode a continuation, or nothing left: Xen answers the start extent.
    if n > u64::from(u32::MAX >> MEMOP_EXTENT_SHIFT) || start >= n {
        return Ok(start as i64);
    }
    let target = resolve_domain(p, r.domid)?;
    if r.extent_order != 0 {
        return Err(Errno::EINVAL);
    }
    let list = r.extent_start;
    let no_list = op == XENMEM_INCREASE_RESERVATION && list == 0;
    if !no_list && GuestRange::new(list, n * 8).is_err() {
        return Ok(start as i64);
    }
    let limit = u64::from(p.preempt_chunk().max(1));
    let mut i = start;
    while i < n {
        if i - start >= limit {
            let next = u64::from(op) | (i << MEMOP_EXTENT_SHIFT);
            p.continuation(Hypercall::MemoryOp as u64, [next, args[1], args[2], args[3], args[4]]);
            return Ok(Hypercall::MemoryOp as i64);
        }
        let slot = list + i * 8;
        let ok = match op {
            XENMEM_DECREASE_RESERVATION => match read_guest::<u64>(p, slot) {
                Ok(mfn) => with_mm_for(p, target, |mm| mm.decrease_reservation(mfn))?.is_ok(),
                Err(_) => false,
            },
            XENMEM_POPULATE_PHYSMAP => match read_guest::<u64>(p, slot) {
                Ok(pfn) => match with_mm_for(p, target, |mm| mm.populate_physmap(pfn))? {
                    Ok(mfn) => hand_out(p, target, slot, mfn)?,
                    Err(_) => false,
                },
                Err(_) => false,
            },
            _ => match with_mm_for(p, target, |mm| mm.increase_reservation())? {
                Ok(_) if no_list => true,
                Ok(mfn) => hand_out(p, target, slot, mfn)?,
                Err(_) => false,
            },
        };
        if !ok {
            break;
        }
        i += 1;
    }
    Ok(i as i64)
}

/// `struct xen_memory_exchange`: the frames given up, the frames wanted, and the progress.
#[derive(Clone, Copy, Debug, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)]
#[repr(C)]
struct XenMemoryExchange {
    input: XenMemoryReservation,
    output: XenMemoryReservation,
    nr_exchanged: u64,
}

/// `XENMEM_exchange`, as Xen's `memory_exchange` for single pages: `in` lists machine
/// frames of the domain to give up, `out` the pfns the new frames take (their machine
/// frame numbers are written back over them); `nr_exchanged` in the argument counts the
/// progress, written back when the call ends or continues. `EINVAL` for mismatched lists
/// or domains, progress past the end, a frame that is mapped, typed or not the domain's;
/// `EFAULT` for unreadable lists; `ENOMEM` when no frame is left. Extent orders other
/// than 0 are `EINVAL` here (this hypervisor hands out single frames; Xen allows up to
/// order 9 for a domU).
fn exchange(p: &mut impl Platform, args: [u64; 5]) -> Result<i64, Errno> {
    let arg = args[1];
    let mut x: XenMemoryExchange = read_guest(p, arg)?;
    let (inp, out) = (x.input, x.output);
    if x.nr_exchanged > inp.nr_extents
        || inp.domid != out.domid
        || inp.extent_order != 0
        || out.extent_order != 0
        || inp.nr_extents != out.nr_extents
    {
        return Err(Errno::EINVAL);
    }
    let n = inp.nr_extents;
    if x.nr_exchanged == n {
        return Ok(0);
    }
    let bytes = n.checked_mul(8).ok_or(Errno::EFAULT)?;
    GuestRange::new(inp.extent_start, bytes)?;
    GuestRange::new(out.extent_start, bytes)?;
    let target = resolve_domain(p, inp.domid)?;
    let limit = u64::from(p.preempt_chunk().max(1));
    let first = x.nr_exchanged;
    let mut rc = Ok(0);
    while x.nr_exchanged < n {
        if x.nr_exchanged - first >= limit {
            write_guest(p, arg, &x)?;
            p.continuation(Hypercall::MemoryOp as u64, args);
            return Ok(Hypercall::MemoryOp as i64);
        }
        let k = x.nr_exchanged;
        let step = (|| {
            let mfn: u64 = read_guest(p, inp.extent_start + 8 * k)?;
            let pfn: u64 = read_guest(p, out.extent_start + 8 * k)?;
            let new = with_mm_for(p, target, |mm| mm.exchange_page(mfn, pfn))??;
            write_guest(p, out.extent_start + 8 * k, &new)
        })();
        if let Err(e) = step {
            rc = Err(e);
            break;
        }
        x.nr_exchanged += 1;
    }
    write_guest(p, arg, &x)?;
    rc
}

/// Tells the caller the machine frame `target` got; if that cannot be written, the frame
/// goes straight back (a frame nobody can name would be lost).
fn hand_out(p: &mut impl Platform, target: Option<u16>, slot: u64, mfn: u64) -> Result<bool, Errno> {
    if write_guest(p, slot, &mfn).is_ok() {
        return Ok(true);
    }
    with_mm_for(p, target, |mm| mm.decrease_reservation(mfn))?.ok();
    Ok(false)
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
