//! `grant_table_op` (hypercall 20): decodes each `GNTTABOP_*`, runs batches of maps,
//! unmaps and copies one operation at a time with each status written back (as Xen's
//! `do_grant_table_op`), and leaves the work to the machine through [`Platform`], which
//! applies the rules of the `grant-tables` crate and the page-type rules of [`crate::mm`].
//!
//! Errors of the hypercall itself are errnos (`EINVAL` for a bad count, `EFAULT` for an
//! argument that cannot be read or written back); the outcome of each operation is its
//! `GNTST_*` status. A batch longer than [`super::Memory::preempt_chunk`] continues itself: the
//! guest re-executes the hypercall with the pointer advanced and the count reduced, as Xen's
//! `hypercall_create_continuation` in `do_grant_table_op`.
//!
//! Each chunk of operations read in one copy shares a [`GrantBatch`] (the last page-table
//! walk, the copy sides held from one copy to the next, as Xen's `gnttab_copy_buf`), which
//! [`super::Grants::grant_batch_end`] empties before the chunk's statuses are written back.
#![forbid(unsafe_code)]

use super::mm::resolve_domain;
use crate::mm::grant::WalkHint;
use super::{Handled, Outcome, Platform};
use crate::guest_access::{read_guest, write_guest, GuestRange};
use hypercall_abi::errno::Errno;
use hypercall_abi::grant_table::*;
use hypercall_abi::hypercall::Hypercall;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// The domain a setup or query names, as a status: `GNTST_permission_denied` for another
/// domain without privilege, `GNTST_bad_domain` for one that does not exist.
fn target_domain(p: &mut impl Platform, dom: u16) -> Result<u16, i16> {
    match resolve_domain(p, dom) {
        Ok(None) => Ok(p.caller().domid),
        Ok(Some(d)) => Ok(d),
        Err(Errno::EPERM) => Err(GNTST_PERMISSION_DENIED),
        Err(_) => Err(GNTST_BAD_DOMAIN),
    }
}

fn status<T>(r: Result<T, i16>) -> i16 {
    r.err().unwrap_or(GNTST_OKAY)
}

/// `grant_table_op(cmd, uop, count)`.
pub(super) fn grant_table_op(p: &mut impl Platform, args: [u64; 5]) -> Handled {
    let (cmd, uop, count) = (args[0] as u32, args[1], args[2] as u32);
    // Xen: `if ( (int)count < 0 ) return -EINVAL;`
    if (count as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    match cmd {
        GNTTABOP_MAP_GRANT_REF => batch(p, args, |p, op: &mut GnttabMapGrantRef, b| {
            let req = grant_tables::MapRequest { flags: op.flags, gref: op.r#ref, granter: op.dom, host_addr: op.host_addr };
            match p.grant_map(req, b) {
                Ok((handle, maddr)) => {
                    op.status = GNTST_OKAY;
                    op.handle = handle;
                    op.dev_bus_addr = if op.flags & GNTMAP_DEVICE_MAP != 0 { maddr } else { 0 };
                }
                Err(st) => op.status = st,
            }
        }),
        GNTTABOP_UNMAP_GRANT_REF => {
            // Host mappings removed in the batch are flushed from the TLB once, at its end
            // (Xen's `gnttab_flush_tlb` after each batch of unmaps): the guest cannot run
            // before, and a frame whose last reference went is flushed at once anyway.
            // Up to FLUSH_ONE_BY_ONE addresses are flushed one by one, more all at once.
            let mut removed = heapless::Vec::<u64, FLUSH_ONE_BY_ONE>::new();
            let mut too_many = false;
            let r = batch(p, args, |p, op: &mut GnttabUnmapGrantRef, b| {
                op.status = status(p.grant_unmap(op.host_addr, op.dev_bus_addr, op.handle, b));
                if op.status == GNTST_OKAY && op.host_addr != 0 {
                    too_many |= removed.push(op.host_addr).is_err();
                }
            });
            if too_many {
                p.grant_flush_tlb(None);
            } else if !removed.is_empty() {
                p.grant_flush_tlb(Some(&removed));
            }
            r
        }
        GNTTABOP_COPY => batch(p, args, |p, op: &mut GnttabCopy, b| {
            op.status = status(p.grant_copy(op, b));
        }),
        GNTTABOP_UNMAP_AND_REPLACE => {
            // As an unmap of the host half; each address (the moved one too) is flushed at
            // the end of the batch.
            let mut removed = heapless::Vec::<u64, FLUSH_ONE_BY_ONE>::new();
            let mut too_many = false;
            let r = batch(p, args, |p, op: &mut GnttabUnmapAndReplace, b| {
                op.status = status(p.grant_unmap_and_replace(op.host_addr, op.new_addr, op.handle, b));
                if op.status == GNTST_OKAY {
                    too_many |= removed.push(op.host_addr).is_err();
                    if op.new_addr != 0 {
                        too_many |= removed.push(op.new_addr).is_err();
                    }
                }
            });
            if too_many {
                p.grant_flush_tlb(None);
            } else if !removed.is_empty() {
                p.grant_flush_tlb(Some(&removed));
            }
            r
        }
        _ => single_op(p, cmd, uop, count).map(Outcome::value),
    }
}

/// The commands that take no batch of operations.
fn single_op(p: &mut impl Platform, cmd: u32, uop: u64, count: u32) -> Result<i64, Errno> {
    match cmd {
        GNTTABOP_GET_STATUS_FRAMES => {
            if count != 1 {
                return Err(Errno::EINVAL);
            }
            let mut op: GnttabGetStatusFrames = read_guest(p, uop)?;
            // Xen: the whole list must be reachable before anything (EFAULT).
            GuestRange::new(op.frame_list, u64::from(op.nr_frames) * 8)?;
            op.status = match target_domain(p, op.dom).and_then(|d| p.grant_status_frames(d, op.nr_frames)) {
                Ok(frames) => {
                    let list = op.frame_list;
                    let ok = frames.iter().enumerate().all(|(i, f)| write_guest(p, list.wrapping_add(i as u64 * 8), f).is_ok());
                    if ok { GNTST_OKAY } else { GNTST_BAD_VIRT_ADDR }
                }
                Err(st) => st,
            };
            write_guest(p, uop, &op)?;
            Ok(0)
        }
        // Xen: these take exactly one argument.
        GNTTABOP_SETUP_TABLE | GNTTABOP_QUERY_SIZE | GNTTABOP_SET_VERSION | GNTTABOP_GET_VERSION if count != 1 => {
            Err(Errno::EINVAL)
        }
        GNTTABOP_SETUP_TABLE => {
            let mut op: GnttabSetupTable = read_guest(p, uop)?;
            op.status = match target_domain(p, op.dom).and_then(|d| p.grant_setup_table(d, op.nr_frames)) {
                Ok(frames) => {
                    // Xen: a frame list that cannot be written is GNTST_bad_virt_addr.
                    let n = (op.nr_frames as usize).min(frames.len());
                    let list = op.frame_list;
                    let ok = frames.iter().take(n).enumerate().all(|(i, f)| write_guest(p, list.wrapping_add(i as u64 * 8), f).is_ok());
                    if ok { GNTST_OKAY } else { GNTST_BAD_VIRT_ADDR }
                }
                Err(st) => st,
            };
            write_guest(p, uop, &op)?;
            Ok(0)
        }
        GNTTABOP_QUERY_SIZE => {
            let mut op: GnttabQuerySize = read_guest(p, uop)?;
            match target_domain(p, op.dom).and_then(|d| p.grant_query_size(d)) {
                Ok((n, max)) => {
                    op.nr_frames = n;
                    op.max_nr_frames = max;
                    op.status = GNTST_OKAY;
                }
                Err(st) => op.status = st,
            }
            write_guest(p, uop, &op)?;
            Ok(0)
        }
        GNTTABOP_SET_VERSION => {
            let mut op: GnttabSetVersion = read_guest(p, uop)?;
            // Xen's gnttab_set_version: neither 1 nor 2 is -EINVAL; the same version does
            // nothing; a change needs every entry past the reserved 8 unused (-EBUSY), v2
            // to v1 reserved entries v1 can hold (-ERANGE) and status frames the domain no
            // longer maps (-EBUSY). The version in use is written back in every case.
            let caller = p.caller().domid;
            let r = p.grant_set_version(op.version);
            op.version = p.grant_version(caller);
            write_guest(p, uop, &op)?;
            r.map(|_| 0)
        }
        GNTTABOP_GET_VERSION => {
            // struct gnttab_get_version { domid_t dom; uint16_t pad; uint32_t version; }
            let mut op: [u16; 4] = read_guest(p, uop)?;
            let d = target_domain(p, op[0]).map_err(|_| Errno::ESRCH)?;
            let v = p.grant_version(d);
            op[2] = v as u16;
            op[3] = 0;
            write_guest(p, uop, &op)?;
            Ok(0)
        }
        // Transfers, swaps, dumps and Arm cache flushes are not provided.
        _ => Err(Errno::ENOSYS),
    }
}

/// Operations read from (and written back to) the guest in one copy.
const READ_BATCH: usize = 32;

/// Most unmapped addresses flushed from the TLB one by one after a batch of unmaps; past
/// that the whole TLB is flushed. Under emulation a full flush cost about 9300 cycles
/// plus the refill of every translation the guest and the microkernel then touch; one
/// address's flush costs a few hundred.
const FLUSH_ONE_BY_ONE: usize = 64;

/// State kept across one chunk of grant operations of one hypercall, given back by
/// [`super::Grants::grant_batch_end`] at the end of the chunk: the last walk to an L1 table
/// (maps and unmaps) and the copy sides held from one copy to the next.
#[derive(Default)]
pub struct GrantBatch {
    /// The last page-table walk of the chunk's maps or unmaps.
    pub walk: WalkHint,
    /// The sides held between copies.
    pub copies: grant_tables::CopyBatch,
}

/// Runs `count` operations of type `T` at `uop`, each handled by `f` (which sets its
/// status) and written back, [`READ_BATCH`] at a time in one copy each way; continues
/// itself after [`super::Memory::preempt_chunk`] of them. An argument that cannot be read or
/// written back ends the hypercall with `EFAULT` (the operations before it are done).
fn batch<P: Platform, T: FromBytes + IntoBytes + Immutable + Copy + Default>(
    p: &mut P,
    args: [u64; 5],
    mut f: impl FnMut(&mut P, &mut T, &mut GrantBatch),
) -> Handled {
    let (uop, count) = (args[1], args[2] as u32);
    let size = core::mem::size_of::<T>() as u64;
    let limit = p.preempt_chunk().max(1);
    let mut i = 0u32;
    while i < count {
        let at = uop.wrapping_add(u64::from(i) * size);
        if i >= limit {
            return Ok(Outcome::again(Hypercall::GrantTableOp, [args[0], at, u64::from(count - i), 0, 0]));
        }
        let n = (count - i).min(limit - i).min(READ_BATCH as u32) as usize;
        let mut buf = [T::default(); READ_BATCH];
        let whole = match buf.get_mut(..n) {
            Some(part) => GuestRange::new(at, n as u64 * size).and_then(|r| p.copy_from_guest(r, part.as_mut_bytes())),
            None => Err(Errno::EINVAL),
        };
        // A chunk that cannot be read whole is done one by one, so that exactly the
        // operations before the unreadable one are done.
        let n = if whole.is_ok() {
            n
        } else {
            let first = read_guest(p, at)?;
            if let Some(slot) = buf.first_mut() {
                *slot = first;
            }
            1
        };
        let mut held = GrantBatch::default();
        for op in buf.iter_mut().take(n) {
            f(p, op, &mut held);
        }
        p.grant_batch_end(&mut held);
        let back = GuestRange::new(at, n as u64 * size)?;
        p.copy_to_guest(back, buf.get(..n).ok_or(Errno::EINVAL)?.as_bytes())?;
        i += n as u32;
    }
    Ok(Outcome::value(0))
}

#[cfg(test)]
mod tests {
    use super::super::fake::*;
    use super::super::dispatch;
    use super::*;
    use zerocopy::FromZeros;

    const NR: u64 = Hypercall::GrantTableOp as u64;

    #[test]
    fn set_version_get_version_and_status_frames_through_the_decoder() {
        let mut p = FakePlatform::new(false);
        for (v, ret, now) in [(2u32, 0, 2), (0, Errno::EINVAL.to_ret(), 2), (3, Errno::EINVAL.to_ret(), 2), (1, 0, 1)] {
            write_guest(&mut p, BASE, &GnttabSetVersion { version: v }).unwrap();
            assert_eq!(dispatch(&mut p, NR, [u64::from(GNTTABOP_SET_VERSION), BASE, 1, 0, 0]), ret, "version {v}");
            let back: GnttabSetVersion = read_guest(&mut p, BASE).unwrap();
            assert_eq!(back.version, now, "the version in use is written back");
        }
        assert_eq!(dispatch(&mut p, NR, [u64::from(GNTTABOP_SET_VERSION), BASE, 2, 0, 0]), Errno::EINVAL.to_ret());
        // get_version names a domain.
        write_guest(&mut p, BASE, &[0x7ff0u16, 0, 0, 0]).unwrap();
        assert_eq!(dispatch(&mut p, NR, [u64::from(GNTTABOP_GET_VERSION), BASE, 1, 0, 0]), 0);
        assert_eq!(read_guest::<[u16; 4]>(&mut p, BASE).unwrap()[2], 1);
        // get_status_frames: under v1 there are none; under v2 the list is filled.
        let ask = |p: &mut FakePlatform, n: u32, list: u64| {
            write_guest(p, BASE, &GnttabGetStatusFrames { nr_frames: n, dom: 0x7ff0, status: 99, frame_list: list }).unwrap();
            let r = dispatch(p, NR, [u64::from(GNTTABOP_GET_STATUS_FRAMES), BASE, 1, 0, 0]);
            (r, read_guest::<GnttabGetStatusFrames>(p, BASE).unwrap().status)
        };
        assert_eq!(ask(&mut p, 1, BASE + 64), (0, GNTST_GENERAL_ERROR));
        p.grant_version = 2;
        assert_eq!(ask(&mut p, 1, BASE + 64), (0, GNTST_OKAY));
        assert_eq!(read_guest::<u64>(&mut p, BASE + 64).unwrap(), 0x9000);
        assert_eq!(ask(&mut p, 1, 0xffff_8000_0000_0000).0, Errno::EFAULT.to_ret(), "a list out of reach");
        assert_eq!(dispatch(&mut p, NR, [u64::from(GNTTABOP_GET_STATUS_FRAMES), BASE, 2, 0, 0]), Errno::EINVAL.to_ret());
    }

    #[test]
    fn counts_and_unknown_ops() {
        let mut p = FakePlatform::new(false);
        assert_eq!(dispatch(&mut p, NR, [u64::from(GNTTABOP_MAP_GRANT_REF), BASE, 0x8000_0000, 0, 0]), Errno::EINVAL.to_ret());
        assert_eq!(dispatch(&mut p, NR, [u64::from(GNTTABOP_QUERY_SIZE), BASE, 0, 0, 0]), Errno::EINVAL.to_ret());
        for cmd in [GNTTABOP_TRANSFER, GNTTABOP_DUMP_TABLE, GNTTABOP_SWAP_GRANT_REF, 99] {
            assert_eq!(dispatch(&mut p, NR, [u64::from(cmd), BASE, 1, 0, 0]), Errno::ENOSYS.to_ret(), "cmd {cmd}");
        }
        // A batch that cannot be read.
        assert_eq!(dispatch(&mut p, NR, [u64::from(GNTTABOP_COPY), 0x10, 1, 0, 0]), Errno::EFAULT.to_ret());
    }

    #[test]
    fn statuses_are_written_back_per_op_and_long_batches_continue() {
        let mut p = FakePlatform::new(false);
        p.chunk = 2;
        let mut ops = [GnttabUnmapGrantRef::new_zeroed(); 3];
        ops[1].handle = 7;
        for (i, op) in ops.iter().enumerate() {
            write_guest(&mut p, BASE + i as u64 * 24, op).unwrap();
        }
        // The fake platform refuses every unmap as a bad handle.
        let r = dispatch(&mut p, NR, [u64::from(GNTTABOP_UNMAP_GRANT_REF), BASE, 3, 0, 0]);
        assert_eq!(r, NR as i64);
        assert_eq!(p.continuations, std::vec![(NR, [u64::from(GNTTABOP_UNMAP_GRANT_REF), BASE + 48, 1, 0, 0])]);
        for i in 0..2 {
            let op: GnttabUnmapGrantRef = read_guest(&mut p, BASE + i * 24).unwrap();
            assert_eq!(op.status, GNTST_BAD_HANDLE);
        }
        let third: GnttabUnmapGrantRef = read_guest(&mut p, BASE + 48).unwrap();
        assert_eq!(third.status, 0, "not done yet");
    }

    #[test]
    fn every_chunk_of_copies_ends_before_statuses_go_back_or_the_batch_continues() {
        let mut p = FakePlatform::new(false);
        p.chunk = 40;
        let mut ops = [GnttabCopy::new_zeroed(); 45];
        ops[33].source.offset = 1;
        for (i, op) in ops.iter().enumerate() {
            write_guest(&mut p, BASE + i as u64 * 40, op).unwrap();
        }
        let r = dispatch(&mut p, NR, [u64::from(GNTTABOP_COPY), BASE, 45, 0, 0]);
        assert_eq!(r, NR as i64, "continued after 40");
        assert_eq!(p.grant_batch_ends, std::vec![32, 7], "chunks of 32 and 8 (one failed), all given back");
        assert_eq!(p.grant_held, 0);
        let failed: GnttabCopy = read_guest(&mut p, BASE + 33 * 40).unwrap();
        assert_eq!(failed.status, GNTST_BAD_COPY_ARG);
        // Nothing is held when the statuses cannot be written back either.
        p.grant_batch_ends.clear();
        p.chunk = u32::MAX;
        let end = BASE + 0x4000 - 2 * 40;
        for i in 0..2 {
            write_guest(&mut p, end + i * 40, &GnttabCopy::new_zeroed()).unwrap();
        }
        // A batch of 3 whose last op lies past guest memory: two done one by one.
        assert_eq!(dispatch(&mut p, NR, [u64::from(GNTTABOP_COPY), end, 3, 0, 0]), Errno::EFAULT.to_ret());
        assert_eq!(p.grant_batch_ends, std::vec![1, 1]);
        assert_eq!(p.grant_held, 0);
    }

    #[test]
    fn unmapped_addresses_are_flushed_one_by_one_up_to_a_limit() {
        let mut p = FakePlatform::new(false);
        p.grant_unmap_ok = true;
        let mut op = GnttabUnmapGrantRef::new_zeroed();
        for i in 0..FLUSH_ONE_BY_ONE as u64 + 2 {
            op.host_addr = if i == 1 { 0 } else { 0x1000 * (i + 1) };
            write_guest(&mut p, BASE + i * 24, &op).unwrap();
        }
        assert_eq!(dispatch(&mut p, NR, [u64::from(GNTTABOP_UNMAP_GRANT_REF), BASE, 3, 0, 0]), 0);
        assert_eq!(p.grant_flushes, std::vec![Some(std::vec![0x1000, 0x3000])], "no host mapping, nothing to flush");
        p.grant_flushes.clear();
        let n = FLUSH_ONE_BY_ONE as u64 + 2;
        assert_eq!(dispatch(&mut p, NR, [u64::from(GNTTABOP_UNMAP_GRANT_REF), BASE, n, 0, 0]), 0);
        assert_eq!(p.grant_flushes, std::vec![None], "too many: everything at once");
        p.grant_flushes.clear();
        p.grant_unmap_ok = false;
        assert_eq!(dispatch(&mut p, NR, [u64::from(GNTTABOP_UNMAP_GRANT_REF), BASE, 3, 0, 0]), 0);
        assert!(p.grant_flushes.is_empty(), "nothing unmapped, nothing flushed");
    }

    #[test]
    fn setup_and_query_name_domains_like_xen() {
        let mut p = FakePlatform::new(false);
        let mut q = GnttabQuerySize::new_zeroed();
        q.dom = 0;
        write_guest(&mut p, BASE, &q).unwrap();
        assert_eq!(dispatch(&mut p, NR, [u64::from(GNTTABOP_QUERY_SIZE), BASE, 1, 0, 0]), 0);
        let back: GnttabQuerySize = read_guest(&mut p, BASE).unwrap();
        assert_eq!(back.status, GNTST_PERMISSION_DENIED, "another domain, unprivileged");
        q.dom = hypercall_abi::types::DOMID_SELF;
        write_guest(&mut p, BASE, &q).unwrap();
        assert_eq!(dispatch(&mut p, NR, [u64::from(GNTTABOP_QUERY_SIZE), BASE, 1, 0, 0]), 0);
        let back: GnttabQuerySize = read_guest(&mut p, BASE).unwrap();
        assert_eq!((back.status, back.nr_frames, back.max_nr_frames), (GNTST_OKAY, 1, 64));
    }
}
