//! `memory_op` (12): the domain's reservation (increase, decrease, populate), what it may
//! hold, its memory map, and where the M2P is, as Xen's `do_memory_op` and
//! `arch_memory_op` for a PV guest.
//!
//! The reservation operations answer the number of extents done (never an errno once the
//! work has started: a frame that cannot be had or given back just ends the run, as in
//! Xen) and continue themselves after [`super::Memory::preempt_chunk`] extents, with the done
//! count in `cmd >> MEMOP_EXTENT_SHIFT`. Deviations from Xen, before any work: an
//! unreadable argument is `EFAULT`, a domain that cannot be named is `EPERM`/`ESRCH` (Xen
//! answers the start extent for both). Extents are `2^extent_order` machine-contiguous
//! frames, up to Xen's `max_order` (9 for a domU, 12 for the control domain); a larger
//! order does nothing (the start extent), as in Xen.
//!
//! The reservation operations and the current/maximum reservation queries may name
//! another domain: a privileged caller (`EPERM` otherwise) building an existing domain
//! (`ESRCH` otherwise, dying ones included). They then act on that domain's reservation
//! as if it had asked itself: its `max_pages` limits, its `tot_pages` counts, the frames
//! must be its own, the M2P entries of populated frames are set; the frames are handed
//! out to the caller's list.
#![forbid(unsafe_code)]

use super::mm::{resolve_domain, with_mm, with_mm_for};
use super::{Handled, Outcome, Platform};
use crate::guest_access::{read_guest, write_guest, GuestRange};
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::Hypercall;
use hypercall_abi::layout::{MACH2PHYS_VIRT_END, MACH2PHYS_VIRT_START};
use hypercall_abi::memory::*;

/// `memory_op(cmd, arg)` (`args[2..]` are unused, and kept as they are by a continuation).
// Out of line: keeps its buffers and saved registers off the path of the small hypercalls.
#[inline(never)]
pub(super) fn memory_op(p: &mut impl Platform, args: [u64; 5]) -> Handled {
    let (cmd, arg) = (args[0], args[1]);
    let op = (cmd & MEMOP_CMD_MASK) as u32;
    let start = cmd >> MEMOP_EXTENT_SHIFT;
    match op {
        XENMEM_INCREASE_RESERVATION | XENMEM_DECREASE_RESERVATION | XENMEM_POPULATE_PHYSMAP => {
            reservation(p, op, start, args)
        }
        XENMEM_EXCHANGE if start == 0 => exchange(p, args),
        _ => single_op(p, op, start, arg).map(Outcome::value),
    }
}

/// The commands that never continue themselves.
fn single_op(p: &mut impl Platform, op: u32, start: u64, arg: u64) -> Result<i64, Errno> {
    match op {
        _ if start != 0 => Err(Errno::EINVAL),
        XENMEM_MAXIMUM_RAM_PAGE => with_mm(p, |mm| mm.frames.nr_frames() as i64),
        XENMEM_CURRENT_RESERVATION | XENMEM_MAXIMUM_RESERVATION | XENMEM_MAXIMUM_GPFN => {
            let d: XenMemoryDomain = read_guest(p, arg)?;
            let target = resolve_domain(p, d.domid)?;
            if op == XENMEM_MAXIMUM_GPFN {
                // Xen's domain_get_maximum_gpfn for a PV guest: `shared_info.arch.max_pfn`
                // (which the guest may update) less one, at least 0.
                return Ok(p.shared_max_pfn(target)?.max(1).saturating_sub(1) as i64);
            }
            with_mm_for(p, target, |mm| if op == XENMEM_CURRENT_RESERVATION { mm.dom.tot_pages() } else { mm.dom.max_pages() } as i64)
        }
        XENMEM_MACHPHYS_MFN_LIST => machphys_mfn_list(p, arg),
        // A PV guest has no physmap to change (Xen's `xatp_permission_check` and
        // `remove_from_physmap` for a domain without paging_mode_translate), once the
        // argument is read.
        XENMEM_ADD_TO_PHYSMAP | XENMEM_ADD_TO_PHYSMAP_BATCH | XENMEM_REMOVE_FROM_PHYSMAP => {
            let _: XenMemoryDomain = read_guest(p, arg)?;
            Err(Errno::EACCES)
        }
        XENMEM_MEMORY_MAP => memory_map(p, arg),
        XENMEM_MACHPHYS_MAPPING => {
            let max_mfn = with_mm(p, |mm| mm.frames.nr_frames().saturating_sub(1))?;
            let m = XenMachphysMapping { v_start: MACH2PHYS_VIRT_START, v_end: MACH2PHYS_VIRT_END, max_mfn };
            write_guest(p, arg, &m)?;
            Ok(0)
        }
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

/// Xen's `max_order`: the largest extent a domain may ask for (`CONFIG_DOMU_MAX_ORDER`,
/// `CONFIG_CTLDOM_MAX_ORDER`).
fn max_order(p: &impl Platform) -> u32 {
    if p.caller().privileged {
        12
    } else {
        9
    }
}

/// `XENMEM_machphys_mfn_list`: the first machine frame of each 2 MiB extent of the M2P,
/// at most `max_extents` of them, as Xen's (any PV guest may ask).
fn machphys_mfn_list(p: &mut impl Platform, arg: u64) -> Result<i64, Errno> {
    let mut l: XenMachphysMfnList = read_guest(p, arg)?;
    let mut i = 0u32;
    while i < l.max_extents {
        let Some(mfn) = p.m2p_extent(u64::from(i)) else { break };
        write_guest(p, l.extent_start.wrapping_add(8 * u64::from(i)), &mfn)?;
        i += 1;
    }
    l.nr_extents = i;
    write_guest(p, arg, &l)?;
    Ok(0)
}

/// The reservation operations.
fn reservation(p: &mut impl Platform, op: u32, start: u64, args: [u64; 5]) -> Handled {
    let r: XenMemoryReservation = read_guest(p, args[1])?;
    let n = r.nr_extents;
    // Too many to encode a continuation, or nothing left: Xen answers the start extent.
    if n > u64::from(u32::MAX >> MEMOP_EXTENT_SHIFT) || start >= n {
        return Ok(Outcome::value(start as i64));
    }
    let target = resolve_domain(p, r.domid)?;
    let order = r.extent_order;
    if order > max_order(p) {
        return Ok(Outcome::value(start as i64));
    }
    let list = r.extent_start;
    let no_list = op == XENMEM_INCREASE_RESERVATION && list == 0;
    if !no_list && GuestRange::new(list, n * 8).is_err() {
        return Ok(Outcome::value(start as i64));
    }
    let limit = u64::from(p.preempt_chunk().max(1));
    let mut i = start;
    while i < n {
        if i - start >= limit {
            let next = u64::from(op) | (i << MEMOP_EXTENT_SHIFT);
            return Ok(Outcome::again(Hypercall::MemoryOp, [next, args[1], args[2], args[3], args[4]]));
        }
        let slot = list + i * 8;
        let ok = match op {
            XENMEM_DECREASE_RESERVATION => match read_guest::<u64>(p, slot) {
                Ok(mfn) => with_mm_for(p, target, |mm| mm.decrease_reservation_extent(mfn, order))?.is_ok(),
                Err(_) => false,
            },
            XENMEM_POPULATE_PHYSMAP => match read_guest::<u64>(p, slot) {
                Ok(pfn) => match with_mm_for(p, target, |mm| mm.increase_reservation_extent(order, Some(pfn)))? {
                    Ok(mfn) => hand_out(p, target, slot, mfn, order)?,
                    Err(_) => false,
                },
                Err(_) => false,
            },
            _ => match with_mm_for(p, target, |mm| mm.increase_reservation_extent(order, None))? {
                Ok(_) if no_list => true,
                Ok(mfn) => hand_out(p, target, slot, mfn, order)?,
                Err(_) => false,
            },
        };
        if !ok {
            break;
        }
        i += 1;
    }
    Ok(Outcome::value(i as i64))
}

/// `XENMEM_exchange`, as Xen's `memory_exchange`: `in` lists extents of the domain
/// (`2^in.extent_order` machine frames from each listed one) to give up, `out` the pfns
/// that extents of `2^out.extent_order` machine-contiguous fresh frames take (the first
/// machine frame of each is written back over its pfn). The work goes in chunks of the
/// larger order; `nr_exchanged` counts the `in` extents done, written back when the call
/// ends, fails or continues. Errnos in Xen's order: `EPERM` an order past `max_order`;
/// `EINVAL` progress past the end, mismatched domains or sizes; `EFAULT` lists out of
/// reach; then for a chunk, `EINVAL` a frame that is not the domain's or is mapped, typed
/// or pinned (Xen's `steal_page`), `ENOMEM` no extent free: that chunk is left as it was.
fn exchange(p: &mut impl Platform, args: [u64; 5]) -> Handled {
    let arg = args[1];
    let mut x: hypercall_abi::memory::XenMemoryExchange = read_guest(p, arg)?;
    let (inp, out) = (x.input, x.output);
    if inp.extent_order.max(out.extent_order) > max_order(p) {
        return Err(Errno::EPERM);
    }
    let total_in = inp.nr_extents.checked_shl(inp.extent_order).filter(|&t| t >> inp.extent_order == inp.nr_extents);
    let total_out = out.nr_extents.checked_shl(out.extent_order).filter(|&t| t >> out.extent_order == out.nr_extents);
    if x.nr_exchanged > inp.nr_extents || inp.domid != out.domid || total_in.is_none() || total_in != total_out {
        return Err(Errno::EINVAL);
    }
    let n = inp.nr_extents;
    if x.nr_exchanged == n {
        return Ok(Outcome::value(0));
    }
    GuestRange::new(inp.extent_start, n.checked_mul(8).ok_or(Errno::EFAULT)?)?;
    GuestRange::new(out.extent_start, out.nr_extents.checked_mul(8).ok_or(Errno::EFAULT)?)?;
    let (in_chunk, out_chunk) = if inp.extent_order <= out.extent_order {
        (out.extent_order - inp.extent_order, 0)
    } else {
        (0, inp.extent_order - out.extent_order)
    };
    let target = resolve_domain(p, inp.domid)?;
    let limit = u64::from(p.preempt_chunk().max(1));
    let first = x.nr_exchanged >> in_chunk;
    let mut rc = Ok(0);
    for i in first..n >> in_chunk {
        if i - first >= limit {
            x.nr_exchanged = i << in_chunk;
            write_guest(p, arg, &x)?;
            return Ok(Outcome::again(Hypercall::MemoryOp, args));
        }
        if let Err(e) = exchange_chunk(p, target, &inp, &out, i, in_chunk, out_chunk) {
            rc = Err(e);
            x.nr_exchanged = i << in_chunk;
            write_guest(p, arg, &x)?;
            return rc.map(Outcome::value);
        }
    }
    x.nr_exchanged = n;
    write_guest(p, arg, &x)?;
    rc.map(Outcome::value)
}

/// Chunk `i` of an exchange: `2^in_chunk` extents in, `2^out_chunk` extents out, the same
/// number of frames. The lists are read once into private memory; every frame given up is
/// checked and every new extent allocated before anything changes, so a refusal leaves the
/// chunk as it was. A pfn or frame number that cannot be read or written back is
/// `EFAULT` after the chunk is done (as Xen).
fn exchange_chunk(
    p: &mut impl Platform,
    target: Option<u16>,
    inp: &XenMemoryReservation,
    out: &XenMemoryReservation,
    i: u64,
    in_chunk: u32,
    out_chunk: u32,
) -> Result<(), Errno> {
    let mut give: alloc::vec::Vec<u64> = alloc::vec::Vec::new();
    for j in 0..1u64 << in_chunk {
        let gmfn: u64 = read_guest(p, inp.extent_start + 8 * ((i << in_chunk) + j))?;
        for k in 0..1u64 << inp.extent_order {
            give.push(gmfn.checked_add(k).ok_or(Errno::EINVAL)?);
        }
    }
    let mut sorted = give.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let ok = sorted.len() == give.len() && with_mm_for(p, target, |mm| give.iter().all(|&m| mm.stealable(m)))?;
    if !ok {
        return Err(Errno::EINVAL);
    }
    let order = out.extent_order;
    let mut fresh: alloc::vec::Vec<u64> = alloc::vec::Vec::new();
    for _ in 0..1u64 << out_chunk {
        match with_mm_for(p, target, |mm| mm.alloc_unassigned(order))? {
            Ok(first) => fresh.push(first),
            Err(e) => {
                with_mm_for(p, target, |mm| fresh.iter().for_each(|&f| mm.release_unassigned(f, order)))?;
                return Err(e);
            }
        }
    }
    // Nothing can fail from here on for the frames: give up the old, take the new.
    with_mm_for(p, target, |mm| {
        for &m in &give {
            let _ = mm.decrease_reservation(m);
        }
    })?;
    let mut rc = Ok(());
    for (j, &first) in fresh.iter().enumerate() {
        let slot = out.extent_start + 8 * ((i << out_chunk) + j as u64);
        let pfn = read_guest::<u64>(p, slot).ok();
        with_mm_for(p, target, |mm| mm.assign_extent(first, order, pfn))?;
        if pfn.is_none() || write_guest(p, slot, &first).is_err() {
            rc = Err(Errno::EFAULT);
        }
    }
    rc
}

/// Tells the caller the first machine frame of the extent `target` got; if that cannot be
/// written, the extent goes straight back (frames nobody can name would be lost).
fn hand_out(p: &mut impl Platform, target: Option<u16>, slot: u64, mfn: u64, order: u32) -> Result<bool, Errno> {
    if write_guest(p, slot, &mfn).is_ok() {
        return Ok(true);
    }
    with_mm_for(p, target, |mm| mm.decrease_reservation_extent(mfn, order))?.ok();
    Ok(false)
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
