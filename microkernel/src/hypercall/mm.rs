//! The page-table hypercalls: `pt_update` (1, Xen's `mmu_update`), `mmuext_op` (26),
//! `update_va_mapping` (14) and `vm_assist` (21), as Xen's `do_mmu_update`,
//! `do_mmuext_op`, `do_update_va_mapping` and `do_vm_assist` present them; the rules
//! themselves are [`crate::mm`]'s.
//!
//! Batches stop at the first bad entry with its errno (earlier entries stay applied) and
//! report in `*pdone` how many were done. A batch handles at most
//! [`super::Memory::preempt_chunk`] entries per entry into the hypervisor, then continues
//! itself: the guest re-executes the hypercall with the request pointer advanced and
//! `count = remaining | MMU_UPDATE_PREEMPTED`, and the count done so far accumulates in
//! `*pdone` (read back when the flag is set), exactly as Xen.
//!
//! `foreigndom` (as Xen's): `pt_update`'s names a page owner, a domain whose frames the
//! batch's L1 entries map into the caller's own tables (dom0 building a domain); see
//! [`page_owner`] for who may name whom. `mmuext_op`'s may only name the caller.
#![forbid(unsafe_code)]

use super::{Handled, Outcome, Platform};
use crate::guest_access::{read_guest, write_guest, GuestRange};
use crate::mm::page_info::Level;
use crate::mm::pt::Mm;
use hypercall_abi::arch::{
    VMASST_CMD_DISABLE, VMASST_CMD_ENABLE, VMASST_TYPE_4GB_SEGMENTS, VMASST_TYPE_4GB_SEGMENTS_NOTIFY,
    VMASST_TYPE_ARCHITECTURAL_IOPL, VMASST_TYPE_M2P_STRICT, VMASST_TYPE_PAE_EXTENDED_CR3,
    VMASST_TYPE_RUNSTATE_UPDATE_FLAG, VMASST_TYPE_WRITABLE_PAGETABLES,
};
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::Hypercall;
use hypercall_abi::mmu::*;
use hypercall_abi::types::DOMID_SELF;
use zerocopy::IntoBytes;

/// Requests read from the guest in one copy.
const READ_BATCH: usize = 32;

/// Runs `f` over the caller's memory-management view; `ENOSYS` if the platform has none.
pub(super) fn with_mm<P: Platform + ?Sized, R>(p: &mut P, f: impl FnOnce(&mut Mm<'_, '_>) -> R) -> Result<R, Errno> {
    let mut f = Some(f);
    let mut out = None;
    p.with_mm(&mut |mut mm: Mm<'_, '_>| {
        if let Some(f) = f.take() {
            out = Some(f(&mut mm));
        }
    })?;
    out.ok_or(Errno::ENOSYS)
}

/// Runs `f` over the view of `target`: the caller's ([`super::Memory::with_mm`]) for `None`,
/// another domain's ([`super::Memory::with_mm_of`]) for `Some(domid)`, as [`resolve_domain`]
/// gave it.
pub(super) fn with_mm_for<P: Platform + ?Sized, R>(
    p: &mut P,
    target: Option<u16>,
    f: impl FnOnce(&mut Mm<'_, '_>) -> R,
) -> Result<R, Errno> {
    let Some(domid) = target else { return with_mm(p, f) };
    let mut f = Some(f);
    let mut out = None;
    p.with_mm_of(domid, &mut |mut mm: Mm<'_, '_>| {
        if let Some(f) = f.take() {
            out = Some(f(&mut mm));
        }
    })?;
    out.ok_or(Errno::ESRCH)
}

/// The domain a `domid` argument names: `None` for the caller (`DOMID_SELF` or its own
/// id), `Some(domid)` for another domain, which only a privileged caller may name
/// (`EPERM`, checked first so an unprivileged caller learns nothing about other domains)
/// and which must exist and not be dying (`ESRCH`, Xen's `rcu_lock_domain_by_id`).
pub(super) fn resolve_domain<P: Platform + ?Sized>(p: &mut P, domid: u16) -> Result<Option<u16>, Errno> {
    let c = p.caller();
    if domid == DOMID_SELF || domid == c.domid {
        return Ok(None);
    }
    if !c.privileged {
        return Err(Errno::EPERM);
    }
    with_mm_for(p, Some(domid), |_| ())?;
    Ok(Some(domid))
}

/// The page owner `pt_update`'s `foreigndom` names (Xen's `get_pg_owner`): `None` for the
/// caller; another domain only for a privileged caller (`EPERM`), existing (`ESRCH`) and
/// not privileged itself (`EINVAL`: dom0 maps the frames of the domains it builds, never
/// another control domain's; Xen leaves that to XSM).
fn page_owner<P: Platform + ?Sized>(p: &mut P, domid: u16) -> Result<Option<u16>, Errno> {
    let target = resolve_domain(p, domid)?;
    if target.is_some() && with_mm_for(p, target, |mm| mm.dom.privileged())? {
        return Err(Errno::EINVAL);
    }
    Ok(target)
}

/// The `(count, done)` a batch starts from: a continued batch carries
/// `MMU_UPDATE_PREEMPTED` in `count` and its count done so far in `*pdone`.
fn batch_start(p: &mut impl Platform, count: u32, pdone: u64) -> (u32, u32) {
    if count & MMU_UPDATE_PREEMPTED == 0 {
        return (count, 0);
    }
    // As Xen, a done count that cannot be read restarts from zero.
    let done = if pdone != 0 { read_guest::<u32>(p, pdone).unwrap_or(0) } else { 0 };
    (count & !MMU_UPDATE_PREEMPTED, done)
}

/// Ends a batch: continues itself ([`super::Then::Again`]) if it stopped at the chunk limit, and adds the
/// entries done in this entry to `*pdone` (a failed write is ignored, as in Xen).
#[allow(clippy::too_many_arguments)] // each is one of the hypercall's own arguments
fn batch_end(
    p: &mut impl Platform,
    nr: Hypercall,
    args: [u64; 5],
    entry_size: u64,
    count: u32,
    done: u32,
    i: u32,
    rc: Result<(), Errno>,
    preempted: bool,
) -> Handled {
    let mut ret = rc.map(|_| Outcome::value(0));
    if preempted {
        let rest = [args[0] + u64::from(i) * entry_size, u64::from((count - i) | MMU_UPDATE_PREEMPTED), args[2], args[3], args[4]];
        ret = Ok(Outcome::again(nr, rest));
    }
    if args[2] != 0 {
        let _ = write_guest(p, args[2], &done.wrapping_add(i));
    }
    ret
}

/// One `pt_update` request, with page owner `pg_owner`.
fn apply_update(mm: &mut Mm<'_, '_>, req: MmuUpdate, pg_owner: u16) -> Result<Option<Level>, Errno> {
    match req.cmd() {
        MMU_NORMAL_PT_UPDATE => mm.normal_update_as(req.addr(), req.val, false, pg_owner),
        MMU_PT_UPDATE_PRESERVE_AD => mm.normal_update_as(req.addr(), req.val, true, pg_owner),
        MMU_MACHPHYS_UPDATE => mm.machphys_update_as(req.ptr >> 12, req.val, pg_owner).map(|_| None),
        // MMU_PT_UPDATE_NO_TRANSLATE (3) and a misaligned pointer (4..=7).
        _ => Err(Errno::ENOSYS),
    }
}

/// `pt_update(reqs, count, pdone, foreigndom)`.
// Out of line: keeps its buffers and saved registers off the path of the small hypercalls.
#[inline(never)]
pub(super) fn pt_update(p: &mut impl Platform, args: [u64; 5]) -> Handled {
    let (reqs, pdone, foreigndom) = (args[0], args[2], args[3] as u32);
    let (count, done) = batch_start(p, args[1] as u32, pdone);
    GuestRange::new(reqs, u64::from(count) * 16)?;
    // Bits 31:16, if set, name the domain whose tables are written (plus one): only the
    // caller's own (another, existing one: EINVAL; Xen allows it for a domain with paging
    // assistance, which PV guests here never have). Bits 15:0 name the page owner.
    let pt_owner = foreigndom >> FOREIGNDOM_PT_OWNER_SHIFT;
    if pt_owner != 0 && resolve_domain(p, (pt_owner - 1) as u16)?.is_some() {
        return Err(Errno::EINVAL);
    }
    let pg_owner = page_owner(p, foreigndom as u16)?;

    let limit = p.preempt_chunk().max(1);
    let (mut i, mut rc, mut upper) = (0u32, Ok(()), false);
    while i < count && i < limit {
        let n = (count - i).min(limit - i).min(READ_BATCH as u32) as usize;
        let mut buf = [MmuUpdate::default(); READ_BATCH];
        let at = reqs + u64::from(i) * 16;
        let part = buf.get_mut(..n).ok_or(Errno::EINVAL)?;
        let got = if p.copy_from_guest(GuestRange::new(at, n as u64 * 16)?, part.as_mut_bytes()).is_ok() {
            n
        } else {
            // Find exactly which request faults: the ones before it are done.
            match read_guest::<MmuUpdate>(p, at) {
                Ok(r) => {
                    if let Some(slot) = buf.first_mut() {
                        *slot = r;
                    }
                    1
                }
                Err(e) => {
                    rc = Err(e);
                    break;
                }
            }
        };
        let (ok, err, up) = with_mm(p, |mm| {
            let (mut up, owner) = (false, pg_owner.unwrap_or(mm.dom.id()));
            for (k, req) in buf.iter().take(got).enumerate() {
                match apply_update(mm, *req, owner) {
                    Ok(level) => up |= level.is_some_and(|l| l != Level::L1),
                    Err(e) => return (k, Some(e), up),
                }
            }
            (got, None, up)
        })?;
        i += ok as u32;
        upper |= up;
        if let Some(e) = err {
            rc = Err(e);
            break;
        }
    }
    if upper {
        // Upper-level entries changed: flush, so that linear page-table mappings (and the
        // guest's view through them) are current before anything else runs (Xen's
        // `flush_linear_pt`).
        with_mm(p, |mm| mm.flush_tlb())?;
    }
    let preempted = rc.is_ok() && i < count;
    batch_end(p, Hypercall::PtUpdate, args, 16, count, done, i, rc, preempted)
}

/// Reads the first word of a guest vCPU bitmap (one vCPU per domain for now).
fn vcpu_mask(p: &mut impl Platform, addr: u64) -> Result<u64, Errno> {
    read_guest::<u64>(p, addr)
}

/// The calling vCPU's bit in a vCPU mask (a `_LOCAL` flush).
fn own_vcpu(p: &impl Platform) -> u64 {
    let me = p.vcpu_ids().0;
    if me < 64 {
        1 << me
    } else {
        0
    }
}

/// One `mmuext_op`.
fn apply_ext(p: &mut impl Platform, op: MmuextOp) -> Result<(), Errno> {
    let Ok(cmd) = MmuextCmd::try_from(op.cmd) else {
        return Err(Errno::ENOSYS);
    };
    let pin = |p: &mut _, level| with_mm(p, |mm| mm.pin(op.arg1, level))?;
    match cmd {
        MmuextCmd::PinL1Table => pin(p, Level::L1),
        MmuextCmd::PinL2Table => pin(p, Level::L2),
        MmuextCmd::PinL3Table => pin(p, Level::L3),
        MmuextCmd::PinL4Table => pin(p, Level::L4),
        MmuextCmd::UnpinTable => with_mm(p, |mm| mm.unpin(op.arg1))?,
        MmuextCmd::NewBaseptr => with_mm(p, |mm| mm.new_baseptr(op.arg1))?,
        MmuextCmd::NewUserBaseptr => with_mm(p, |mm| mm.new_user_baseptr(op.arg1))?,
        MmuextCmd::TlbFlushLocal | MmuextCmd::TlbFlushAll | MmuextCmd::InvlpgLocal | MmuextCmd::InvlpgAll => {
            let vcpus = if matches!(cmd, MmuextCmd::TlbFlushLocal | MmuextCmd::InvlpgLocal) { own_vcpu(p) } else { u64::MAX };
            let va = matches!(cmd, MmuextCmd::InvlpgLocal | MmuextCmd::InvlpgAll).then_some(op.arg1);
            with_mm(p, |mm| mm.flush_vcpus(va, vcpus))
        }
        MmuextCmd::TlbFlushMulti | MmuextCmd::InvlpgMulti => {
            // Xen turns an unreadable vCPU mask into EINVAL here.
            let mask = vcpu_mask(p, op.arg2).map_err(|_| Errno::EINVAL)?;
            let va = (cmd == MmuextCmd::InvlpgMulti).then_some(op.arg1);
            with_mm(p, |mm| mm.flush_vcpus(va, mask))
        }
        // Privileged only. Xen 4.19 refuses FLUSH_CACHE with EACCES and FLUSH_CACHE_GLOBAL
        // with EINVAL (`cache_flush_permitted`); this project answers EPERM for both.
        MmuextCmd::FlushCache | MmuextCmd::FlushCacheGlobal => {
            if !p.caller().privileged {
                return Err(Errno::EPERM);
            }
            with_mm(p, |mm| mm.wbinvd())
        }
        // Xen's checks: a page-aligned guest address (0 with no entries), at most 8192
        // entries; the LDT itself is the machine's (`Platform::set_ldt`).
        MmuextCmd::SetLdt => {
            let ents = op.arg2 as u32;
            let ptr = if ents == 0 { 0 } else { op.arg1 };
            if !ptr.is_multiple_of(4096) || ents > 8192 || crate::guest_access::GuestRange::new(ptr, u64::from(ents) * 8).is_err() {
                return Err(Errno::EINVAL);
            }
            p.set_ldt(ptr, ents)
        }
        MmuextCmd::ClearPage => with_mm(p, |mm| mm.clear_page(op.arg1))?,
        MmuextCmd::CopyPage => with_mm(p, |mm| mm.copy_page(op.arg1, op.arg2))?,
        // Removed from Xen; 4.19 answers EOPNOTSUPP.
        MmuextCmd::MarkSuper | MmuextCmd::UnmarkSuper => Err(Errno::EOPNOTSUPP),
    }
}

/// `mmuext_op(ops, count, pdone, foreigndom)`.
// Out of line: keeps its buffers and saved registers off the path of the small hypercalls.
#[inline(never)]
pub(super) fn mmuext_op(p: &mut impl Platform, args: [u64; 5]) -> Handled {
    let (ops, pdone) = (args[0], args[2]);
    let (count, done) = batch_start(p, args[1] as u32, pdone);
    GuestRange::new(ops, u64::from(count) * 24)?;
    // Another domain: refused. Xen lets a privileged caller pin and unpin the tables of the
    // domain named (and answers EPERM for most other ops); here dom0 builds a domain's
    // tables in the domain's frames through `pt_update` with it as page owner, and the
    // domain's L4 is pinned and installed by `DOMCTL_SETVCPUCONTEXT`.
    if resolve_domain(p, args[3] as u16)?.is_some() {
        return Err(Errno::EINVAL);
    }

    let limit = p.preempt_chunk().max(1);
    let (mut i, mut rc) = (0u32, Ok(()));
    while i < count && i < limit {
        let r = read_guest::<MmuextOp>(p, ops + u64::from(i) * 24).and_then(|op| apply_ext(p, op));
        if let Err(e) = r {
            rc = Err(e);
            break;
        }
        i += 1;
    }
    let preempted = rc.is_ok() && i < count;
    batch_end(p, Hypercall::MmuextOp, args, 24, count, done, i, rc, preempted)
}

/// `update_va_mapping(va, val, flags)`: the L1 entry that maps `va` in the current
/// kernel tables becomes `val`, then the flush `flags` ask for. Bad flags (flush type 3),
/// checked first, are `EINVAL`; an unreadable vCPU bitmap is `EFAULT`, also before
/// anything changes.
// Out of line: keeps its buffers and saved registers off the path of the small hypercalls.
#[inline(never)]
pub(super) fn update_va_mapping(p: &mut impl Platform, va: u64, val: u64, flags: u64) -> Result<i64, Errno> {
    update_va_mapping_as(p, va, val, flags, None)
}

/// `update_va_mapping_otherdomain(va, val, flags, domid)`: as `update_va_mapping`, the new
/// entry mapping a frame of page owner `domid` (Xen's `get_pg_owner`, with the rules of
/// `pt_update`'s `foreigndom`: privileged callers only, `EPERM`; `ESRCH` for a domain that
/// does not exist).
pub(super) fn update_va_mapping_otherdomain(p: &mut impl Platform, va: u64, val: u64, flags: u64, domid: u64) -> Result<i64, Errno> {
    let domid = u16::try_from(domid).map_err(|_| Errno::ESRCH)?;
    let owner = page_owner(p, domid)?;
    update_va_mapping_as(p, va, val, flags, owner)
}

fn update_va_mapping_as(p: &mut impl Platform, va: u64, val: u64, flags: u64, owner: Option<u16>) -> Result<i64, Errno> {
    let kind = flags & UVMF_FLUSHTYPE_MASK;
    let target = flags & !UVMF_FLUSHTYPE_MASK;
    if kind == UVMF_FLUSHTYPE_MASK {
        return Err(Errno::EINVAL);
    }
    let vcpus = match target {
        _ if kind == UVMF_NONE => 0,
        UVMF_LOCAL => own_vcpu(p),
        UVMF_ALL => u64::MAX,
        bitmap => vcpu_mask(p, bitmap)?,
    };
    with_mm(p, |mm| {
        let owner = owner.unwrap_or(mm.dom.id());
        mm.update_va_mapping_as(va, val, owner)?;
        match kind {
            UVMF_TLB_FLUSH => mm.flush_vcpus(None, vcpus),
            UVMF_INVLPG => mm.flush_vcpus(Some(va), vcpus),
            _ => {}
        }
        Ok(0)
    })?
}

/// The `VMASST_TYPE_*` this kernel takes, as Xen's `PV64_VM_ASSIST_MASK`: the 32-bit-only
/// segment assists and `pae_extended_cr3` (recorded, no effect on a 64-bit guest, as in
/// Xen), writable page tables (a guest kernel's write to its L1 tables is carried out as an
/// update, `kernel::writable_pagetables_write`), `architectural_iopl`, the runstate update
/// flag and the strict M2P. Anything else is `EINVAL`.
const VMASST_VALID: u64 = (1 << VMASST_TYPE_4GB_SEGMENTS)
    | (1 << VMASST_TYPE_WRITABLE_PAGETABLES)
    | (1 << VMASST_TYPE_4GB_SEGMENTS_NOTIFY)
    | (1 << VMASST_TYPE_PAE_EXTENDED_CR3)
    | (1 << VMASST_TYPE_ARCHITECTURAL_IOPL)
    | (1 << VMASST_TYPE_RUNSTATE_UPDATE_FLAG)
    | (1 << VMASST_TYPE_M2P_STRICT);

/// `vm_assist(cmd, type)`.
// Out of line: keeps its buffers and saved registers off the path of the small hypercalls.
#[inline(never)]
pub(super) fn vm_assist(p: &mut impl Platform, cmd: u32, kind: u32) -> Result<i64, Errno> {
    if kind >= 64 || VMASST_VALID & (1 << kind) == 0 {
        return Err(Errno::EINVAL);
    }
    let bit = 1u64 << kind;
    with_mm(p, |mm| {
        let bits = mm.dom.vm_assist();
        match cmd {
            VMASST_CMD_ENABLE => mm.dom.set_vm_assist(bits | bit),
            VMASST_CMD_DISABLE => mm.dom.set_vm_assist(bits & !bit),
            _ => return Err(Errno::ENOSYS),
        }
        Ok(0)
    })?
}

#[cfg(test)]
#[path = "mm_tests.rs"]
pub(crate) mod tests;
