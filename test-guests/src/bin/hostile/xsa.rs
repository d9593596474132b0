//! The attacks of the XSA-class suite beyond the five holes of issue 10: each runs one
//! class of attack Xen has had an advisory for, from this unprivileged domain, and reports
//! `TEST <name> PASS|FAIL` lines for the precise refusal (Xen's errno or `GNTST_*`) and for
//! this domain still working afterwards.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use pv_guest::grant::{self, GrantTable};
use pv_guest::hypercall_abi::callback::CALLBACKTYPE_EVENT;
use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::hypercall_abi::grant_table::*;
use pv_guest::hypercall_abi::hypercall::Hypercall;
use pv_guest::hypercall_abi::layout::{pte, MACH2PHYS_VIRT_START};
use pv_guest::hypercall_abi::memory::{XenMemoryDomain, XENMEM_CURRENT_RESERVATION};
use pv_guest::hypercall_abi::mmu::{MmuUpdate, MulticallEntry, MMU_MACHPHYS_UPDATE, UVMF_INVLPG};
use pv_guest::hypercall_abi::types::{DomId, Mfn, Pfn, DOMID_SELF};
use pv_guest::hypercall_abi::vcpu::*;
use pv_guest::hypercall_abi::version::XENVER_EXTRAVERSION;
use pv_guest::mm::xen::{pt_update_raw, update_va_mapping_raw, GuestMm};
use pv_guest::mm::{canonical, entry_maddr, entry_mfn, make_entry, table_index, DATA_RO_FLAGS, DATA_RW_FLAGS, TABLE_FLAGS};
use pv_guest::testing::{describe, ensure, expect_ret, Tests};
use pv_guest::xenbus::{self as xs_guest, StoreClient};
use pv_guest::{events, println, StartInfo};
use xenbus::client::{ClientError, TxId};
use xenbus::path::{Perm, Perms};
use xenbus::wire::{MsgType, XsError};

/// A domain id no domain has.
const NO_DOMAIN: u16 = 999;
/// A hypervisor address: the start of the direct map of all RAM.
const DIRECT_MAP: u64 = 0xffff_8300_0000_0000;
/// An address that is not canonical.
const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;

const EINVAL: i64 = Errno::EINVAL.to_ret();
const EBUSY: i64 = Errno::EBUSY.to_ret();
const EFAULT: i64 = Errno::EFAULT.to_ret();
const ENOENT: i64 = Errno::ENOENT.to_ret();
const ESRCH: i64 = Errno::ESRCH.to_ret();

/// Runs attack `name`; false when there is no such attack here.
pub fn run(name: &str, t: &mut Tests, si: &'static StartInfo) -> bool {
    match name {
        "store-flood" => store_flood(t, si),
        "store-perms" => store_perms(t, si),
        "multicall-flood" => multicall_flood(si),
        "console-flood" => console_flood(t),
        "pt-validation" => pt_validation(t, si),
        "linear-pt" => linear_pt(t, si),
        "grant-map" => grant_map(t, si),
        "grant-copy" => grant_copy(t, si),
        "evtchn-misuse" => evtchn_misuse(t),
        "guest-pointers" => guest_pointers(t, si),
        "scrub" => scrub(t, si),
        "callback-hv" => callback_hv(t),
        "trap-hv" => trap_hv(t),
        "vcpu-op" => vcpu_op(t),
        "watchdog" => watchdog(t),
        "noncanonical-return" => noncanonical_return(t, si),
        _ => return false,
    }
    true
}

/// A raw hypercall.
fn raw(nr: Hypercall, a: [u64; 5]) -> i64 {
    // SAFETY: every caller passes pointers that are either buffers it owns (which the
    // hypervisor may read or write as the call says) or addresses that are not ours at
    // all, which the hypervisor must refuse; nothing of ours outside those buffers changes.
    unsafe { pv_guest::hypercall::hypercall(nr as u64, a[0], a[1], a[2], a[3], a[4]) }
}

fn xs_err(r: &Result<impl core::fmt::Debug, ClientError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(ClientError::Store(e)) => alloc::string::String::from(e.name()),
        Err(e) => format!("{e:?}"),
    }
}

fn refused_with<T>(r: &Result<T, ClientError>, want: XsError) -> bool {
    matches!(r, Err(ClientError::Store(e)) if *e == want)
}

fn connect(t: &mut Tests, si: &'static StartInfo) -> Option<StoreClient> {
    match xs_guest::connect(si) {
        Ok(xs) => Some(xs),
        Err(e) => {
            t.report("store_connect", Err(format!("{e:?}")));
            None
        }
    }
}

/// XSA-326 class: make dom0's store hold as much as it will for us. Values of 2 KiB until
/// refused, a watch with a 3000-byte token, a transaction that writes until refused: each
/// refused with `ENOMEM` at our 256 KiB quota, everything given back by removing.
fn store_flood(t: &mut Tests, si: &'static StartInfo) {
    let Some(mut xs) = connect(t, si) else { return };
    let value = vec![b'v'; 2048];
    let mut written = 0u32;
    let first = loop {
        let r = xs.write(TxId::NONE, &format!("data/flood/{written}"), &value);
        if r.is_err() || written >= 2000 {
            break r;
        }
        written += 1;
    };
    println!("hostile: store-flood wrote {written} values of 2 KiB, then {}", xs_err(&first));
    t.report(
        "values_refused_enomem_at_quota",
        ensure(refused_with(&first, XsError::ENOMEM) && (64..=128).contains(&written), || format!("{written} then {}", xs_err(&first))),
    );
    let token = "t".repeat(3000);
    let w = xs.watch("data", &token);
    t.report("big_watch_refused_enomem", ensure(refused_with(&w, XsError::ENOMEM), || xs_err(&w)));
    let read = xs.read(TxId::NONE, "data/flood/0");
    t.report("reads_still_answered", ensure(read.as_ref().is_ok_and(|v| *v == value), || xs_err(&read)));
    let rm = xs.rm(TxId::NONE, "data/flood");
    t.report("rm_gives_back", ensure(rm.is_ok(), || xs_err(&rm)));
    // What was given back can be used again: the same number of values, then refused.
    let mut again = 0u32;
    while again < written && xs.write(TxId::NONE, &format!("data/again/{again}"), &value).is_ok() {
        again += 1;
    }
    t.report("quota_given_back", ensure(again == written, || format!("{again} of {written}")));
    let _ = xs.rm(TxId::NONE, "data/again");
    // A transaction's writes count too: one transaction writing until refused.
    let tx = xs.transaction_start();
    let Ok(tx) = tx else { return t.report("transaction_start", Err(xs_err(&tx))) };
    let mut in_tx = 0u32;
    let end = loop {
        let r = xs.write(tx, &format!("data/tx/{in_tx}"), &value);
        if r.is_err() || in_tx >= 2000 {
            break r;
        }
        in_tx += 1;
    };
    println!("hostile: store-flood wrote {in_tx} values in one transaction, then {}", xs_err(&end));
    t.report("transaction_writes_refused_enomem", ensure(refused_with(&end, XsError::ENOMEM) && in_tx <= 128, || format!("{in_tx} then {}", xs_err(&end))));
    let abort = xs.transaction_end(tx, false);
    t.report("abort_gives_back", ensure(abort.is_ok(), || xs_err(&abort)));
    let after = xs.write(TxId::NONE, "data/after", b"1");
    t.report("writes_work_after", ensure(after.is_ok(), || xs_err(&after)));
}

/// Store permissions: nodes of dom0 and the tool tree cannot be written, removed or
/// re-permissioned, and the control messages are dom0's (`EACCES`, as xenstored).
fn store_perms(t: &mut Tests, si: &'static StartInfo) {
    let Some(mut xs) = connect(t, si) else { return };
    let w = xs.write(TxId::NONE, "/local/domain/0/hostile", b"x");
    t.report("write_dom0_home_eacces", ensure(refused_with(&w, XsError::EACCES), || xs_err(&w)));
    let w = xs.write(TxId::NONE, "/tool/hostile", b"x");
    t.report("write_tool_eacces", ensure(refused_with(&w, XsError::EACCES), || xs_err(&w)));
    let r = xs.rm(TxId::NONE, "/local/domain/0");
    t.report("rm_dom0_home_eacces", ensure(refused_with(&r, XsError::EACCES), || xs_err(&r)));
    let perms = Perms { entries: vec![(DomId(NO_DOMAIN), Perm::Both)] };
    let p = xs.set_perms(TxId::NONE, "/local/domain/0", &perms);
    t.report("set_perms_dom0_home_eacces", ensure(refused_with(&p, XsError::EACCES), || xs_err(&p)));
    for (ty, payload, name) in [
        (MsgType::Introduce, &b"5\x0012345\x001\x00"[..], "introduce_eacces"),
        (MsgType::Release, &b"0\x00"[..], "release_dom0_eacces"),
    ] {
        let r = xs.request(ty, TxId::NONE, payload.to_vec());
        t.report(name, ensure(refused_with(&r, XsError::EACCES), || xs_err(&r)));
    }
    let own = xs.write(TxId::NONE, "data/mine", b"ok");
    t.report("own_home_still_writable", ensure(own.is_ok(), || xs_err(&own)));
}

/// Entries of the multicall flood, and page-table requests per entry.
const FLOOD_ENTRIES: usize = 2048;
const FLOOD_REQS: usize = 8192;

/// XSA-45 class (long operations not preemptible): multicalls of 2048 `pt_update`s of
/// 8192 requests each (16M M2P updates of our own frame each), one after the other until
/// the end. Nothing returns: the scenario checks that dom0 and a bystander keep running meanwhile and that
/// `xl destroy` ends us in the middle of it.
fn multicall_flood(si: &'static StartInfo) {
    let Ok(mm) = GuestMm::init(si, None) else { return println!("hostile: multicall-flood: no mm") };
    let pfn = mm.layout.stack_pfn;
    let Some(mfn) = mm.maddr(Pfn(pfn)) else { return println!("hostile: multicall-flood: no mfn") };
    let reqs = vec![MmuUpdate { ptr: mfn | MMU_MACHPHYS_UPDATE, val: pfn }; FLOOD_REQS];
    let entries: Vec<MulticallEntry> = (0..FLOOD_ENTRIES)
        .map(|_| MulticallEntry {
            op: Hypercall::PtUpdate as u64,
            result: 0,
            args: [reqs.as_ptr() as u64, FLOOD_REQS as u64, 0, u64::from(DOMID_SELF), 0, 0],
        })
        .collect();
    println!("hostile: multicall-flood started: {FLOOD_ENTRIES} entries of {FLOOD_REQS} updates");
    // Again and again: on a CPU of its own one round may end before the destroy comes.
    loop {
        let r = raw(Hypercall::Multicall, [entries.as_ptr() as u64, FLOOD_ENTRIES as u64, 0, 0, 0]);
        let ok = entries.iter().filter(|e| e.result == 0).count();
        if r != 0 || ok != FLOOD_ENTRIES {
            return println!("hostile: multicall-flood: a round ended with {r}, {ok} entries ok");
        }
    }
}

/// XSA-45 class for the console: a domU may not write to the hypervisor console at all (as
/// release Xen: `-EPERM`; its console is its ring), so a 64 KiB write costs nothing; dom0's
/// writes run in bounded steps (host-tested).
fn console_flood(t: &mut Tests) {
    let mut text = String::with_capacity(64 * 1024);
    for i in 0..1024 {
        let line = format!("hostile: flood {i:05} ");
        text.push_str(&line);
        text.push_str(&"*".repeat(63 - line.len()));
        text.push('\n');
    }
    let r = raw(Hypercall::ConsoleIo, [0, text.len() as u64, text.as_ptr() as u64, 0, 0]);
    t.report("domu_console_write_eperm", expect_ret(r, Errno::EPERM.to_ret()));
}

/// The padding page and the L1 that maps it, for the page-table attacks.
struct Target {
    mm: GuestMm,
    va: u64,
    l4: u64,
    l1: u64,
}

fn target(t: &mut Tests, si: &'static StartInfo) -> Option<Target> {
    let Ok(mut mm) = GuestMm::init(si, None) else {
        t.report("mm_init", Err("failed".into()));
        return None;
    };
    let (Some((_, va)), l4) = (mm.alloc_mapped(), mm.boot_l4().mfn.0) else {
        t.report("padding_page", Err("none".into()));
        return None;
    };
    let Some(l1) = mm.boot_table_for(1, va) else {
        t.report("l1_of_padding", Err("none".into()));
        return None;
    };
    Some(Target { mm, va, l4, l1: l1.0 })
}

fn pt_update(ptr: u64, val: u64) -> i64 {
    pt_update_raw(&[MmuUpdate { ptr, val }]).0
}

/// Whether the padding page still holds what we write (the domain's mappings intact).
fn page_works(va: u64) -> bool {
    // SAFETY: `va` is a padding page of our initial region, mapped read-write and ours.
    unsafe {
        (va as *mut u64).write_volatile(0x1234_5678);
        (va as *const u64).read_volatile() == 0x1234_5678
    }
}

/// XSA-148/182 class (page-table validation): map our own tables writable, a superpage,
/// the hypervisor's slots and its frames, and the M2P of a frame not ours.
fn pt_validation(t: &mut Tests, si: &'static StartInfo) {
    let Some(tg) = target(t, si) else { return };
    let pte_of = |table: u64, va: u64, level: u8| entry_maddr(Mfn(table), table_index(va, level));
    t.report("l4_mapped_writable_ebusy", expect_ret(update_va_mapping_raw(tg.va, make_entry(Mfn(tg.l4), DATA_RW_FLAGS), UVMF_INVLPG), EBUSY));
    t.report("l1_mapped_writable_ebusy", expect_ret(pt_update(pte_of(tg.l1, tg.va, 1), make_entry(Mfn(tg.l1), DATA_RW_FLAGS)), EBUSY));
    // A 2 MiB superpage in an empty L2 slot.
    let l2 = tg.mm.boot_table_for(2, tg.va).map(|m| m.0).unwrap_or(0);
    let l2_table = tg.mm.read_table(Mfn(l2));
    let free_l2 = l2_table.and_then(|tab| (0..512).rev().find(|&i| tab[i] & pte::PRESENT == 0));
    match free_l2 {
        Some(i) => t.report(
            "superpage_einval",
            expect_ret(pt_update(entry_maddr(Mfn(l2), i), make_entry(Mfn(tg.l1), DATA_RW_FLAGS | pte::PSE)), EINVAL),
        ),
        None => t.report("superpage_einval", Err("no free L2 slot".into())),
    }
    // The hypervisor's L4 slots, and its own page-table frames (the M2P's L3, read from
    // the read-only copy of slot 256 in our L4).
    t.report("hypervisor_slot_einval", expect_ret(pt_update(entry_maddr(Mfn(tg.l4), 256), make_entry(Mfn(tg.l1), TABLE_FLAGS)), EINVAL));
    let hv_frame = tg.mm.read_table(Mfn(tg.l4)).map(|tab| entry_mfn(tab[256]).0).unwrap_or(0);
    println!("hostile: pt-validation hypervisor frame {hv_frame:#x}");
    let at = pte_of(tg.l1, tg.va, 1);
    t.report("hypervisor_frame_ro_ebusy", expect_ret(pt_update(at, make_entry(Mfn(hv_frame), DATA_RO_FLAGS)), EBUSY));
    t.report("hypervisor_frame_rw_ebusy", expect_ret(pt_update(at, make_entry(Mfn(hv_frame), DATA_RW_FLAGS)), EBUSY));
    t.report("m2p_of_foreign_frame_einval", expect_ret(pt_update((hv_frame << 12) | MMU_MACHPHYS_UPDATE, 0), EINVAL));
    t.report("padding_page_still_ours", ensure(page_works(tg.va), || "lost".into()));
}

/// XSA-240 class (linear page tables): a writable linear L4 entry is refused; a read-only
/// one works and shows the L4 itself; a cross-level loop (an L3 entry to the L4) is
/// refused; everything is undone.
fn linear_pt(t: &mut Tests, si: &'static StartInfo) {
    let Some(tg) = target(t, si) else { return };
    const SLOT: u64 = 300;
    let l4 = Mfn(tg.l4);
    let at = entry_maddr(l4, SLOT as usize);
    t.report("writable_linear_l4_einval", expect_ret(pt_update(at, make_entry(l4, TABLE_FLAGS)), EINVAL));
    let ro = make_entry(l4, TABLE_FLAGS & !pte::RW);
    t.report("read_only_linear_l4_ok", expect_ret(pt_update(at, ro), 0));
    // Through slot 300 four times, the L4 reads as a data page.
    let self_va = canonical(SLOT << 39 | SLOT << 30 | SLOT << 21 | SLOT << 12);
    // SAFETY: the read-only linear entry just installed maps our L4 at `self_va`; reading
    // it changes nothing.
    let seen = unsafe { (self_va as *const u64).add(SLOT as usize).read_volatile() };
    t.report("linear_view_reads_the_l4", ensure(seen & !(pte::ACCESSED | pte::DIRTY) == ro & !(pte::ACCESSED | pte::DIRTY), || format!("{seen:#x} vs {ro:#x}")));
    t.report("linear_entry_removed", expect_ret(pt_update(at, 0), 0));
    let kernel_va = pv_guest::start_info::virt_base();
    match tg.mm.boot_table_for(3, kernel_va) {
        Some(l3) => {
            let free = tg.mm.read_table(l3).and_then(|tab| (0..512).rev().find(|&i| tab[i] & pte::PRESENT == 0));
            match free {
                Some(i) => t.report("l3_entry_to_l4_einval", expect_ret(pt_update(entry_maddr(l3, i), ro), EINVAL)),
                None => t.report("l3_entry_to_l4_einval", Err("no free L3 slot".into())),
            }
        }
        None => t.report("l3_entry_to_l4_einval", Err("no L3".into())),
    }
    t.report("padding_page_still_ours", ensure(page_works(tg.va), || "lost".into()));
}

/// Grant map with hostile arguments (XSA-class: grant map/unmap): a reference past the
/// table, a domain that does not exist, a reference not granted to us, a host address in
/// the hypervisor or not canonical, an unmap of a handle never given.
fn grant_map(t: &mut Tests, si: &'static StartInfo) {
    let Ok(mut mm) = GuestMm::init(si, None) else { return t.report("mm_init", Err("failed".into())) };
    let Some(mut xs) = connect(t, si) else { return };
    let Ok(own) = xs_guest::own_domid(&mut xs) else { return t.report("own_domid", Err("none".into())) };
    let Ok(mut gt) = GrantTable::setup(&mut mm, 1) else { return t.report("setup_table", Err("failed".into())) };
    let (Some((page, _)), Some((_, va))) = (mm.alloc_mapped(), mm.alloc_mapped()) else {
        return t.report("pages", Err("none".into()));
    };
    let status = |r: Result<u32, i16>| r.err().unwrap_or(0);
    t.report("ref_past_table_bad_gntref", ensure(status(grant::map_one(va, own, 1 << 20, false)) == GNTST_BAD_GNTREF, || "other".into()));
    t.report("no_domain_bad_domain", ensure(status(grant::map_one(va, NO_DOMAIN, 8, false)) == GNTST_BAD_DOMAIN, || "other".into()));
    // Granted to dom0, not to us.
    let Some(to_dom0) = gt.grant_access(0, page.mfn.0, false) else { return t.report("grant", Err("no ref".into())) };
    let s = status(grant::map_one(va, own, to_dom0, false));
    t.report("ref_for_another_domain_refused", ensure(s == GNTST_GENERAL_ERROR, || format!("status {s}")));
    let _ = gt.end_access(to_dom0);
    let Some(mine) = gt.grant_access(own, page.mfn.0, false) else { return t.report("grant", Err("no ref".into())) };
    for (addr, name) in [(DIRECT_MAP, "host_addr_in_hypervisor_refused"), (NON_CANONICAL, "host_addr_non_canonical_refused")] {
        let r = grant::map_one(addr, own, mine, false);
        t.report(name, ensure(r.is_err(), || format!("{r:?}")));
    }
    t.report("flags_clear_after_refusals", ensure(gt.flags(mine) & (GTF_READING | GTF_WRITING) == 0, || format!("{:#x}", gt.flags(mine))));
    t.report("unmap_unknown_handle_bad_handle", ensure(grant::unmap_one(va, 4242) == Err(GNTST_BAD_HANDLE), || "other".into()));
    // Still a working table: map and unmap for real.
    let h = grant::map_one(va, own, mine, false);
    t.report("real_map_works", ensure(h.is_ok(), || format!("{h:?}")));
    if let Ok(h) = h {
        t.report("real_unmap_works", ensure(grant::unmap_one(va, h).is_ok(), || "refused".into()));
    }
    t.report("end_access", ensure(gt.end_access(mine).is_ok(), || "refused".into()));
}

/// `GNTTABOP_copy` with hostile arguments (XSA-class: grant copy): past the page, a bad
/// reference, a domain that does not exist, a local frame that is not ours.
fn grant_copy(t: &mut Tests, si: &'static StartInfo) {
    let Ok(mut mm) = GuestMm::init(si, None) else { return t.report("mm_init", Err("failed".into())) };
    let Some(mut xs) = connect(t, si) else { return };
    let Ok(own) = xs_guest::own_domid(&mut xs) else { return t.report("own_domid", Err("none".into())) };
    let Ok(mut gt) = GrantTable::setup(&mut mm, 1) else { return t.report("setup_table", Err("failed".into())) };
    let (Some((src, src_va)), Some((dst, dst_va))) = (mm.alloc_mapped(), mm.alloc_mapped()) else {
        return t.report("pages", Err("none".into()));
    };
    let Some(gref) = gt.grant_access(own, src.mfn.0, true) else { return t.report("grant", Err("no ref".into())) };
    let hv_frame = mm.read_table(mm.boot_l4().mfn).map(|tab| entry_mfn(tab[256]).0).unwrap_or(0);
    let copy = |source: GnttabCopyPtr, dest: GnttabCopyPtr, len: u16, flags: u16| -> i16 {
        let mut op = [GnttabCopy { source, dest, len, flags, ..Default::default() }];
        match grant::copy(&mut op) {
            Ok(()) => op[0].status,
            Err(_) => i16::MIN,
        }
    };
    let from = |off| grant::copy_gref(own, gref, off);
    let to = |off| grant::copy_local(dst.mfn.0, off);
    t.report("past_the_page_bad_copy_arg", ensure(copy(from(1), to(0), 4096, GNTCOPY_SOURCE_GREF) == GNTST_BAD_COPY_ARG, || "other".into()));
    t.report("dest_past_the_page_bad_copy_arg", ensure(copy(from(0), to(4000), 200, GNTCOPY_SOURCE_GREF) == GNTST_BAD_COPY_ARG, || "other".into()));
    let s = copy(grant::copy_gref(own, 1 << 20, 0), to(0), 8, GNTCOPY_SOURCE_GREF);
    t.report("bad_ref_bad_gntref", ensure(s == GNTST_BAD_GNTREF, || format!("status {s}")));
    let s = copy(grant::copy_gref(NO_DOMAIN, gref, 0), to(0), 8, GNTCOPY_SOURCE_GREF);
    t.report("no_domain_bad_domain", ensure(s == GNTST_BAD_DOMAIN, || format!("status {s}")));
    let s = copy(grant::copy_local(hv_frame, 0), to(0), 8, 0);
    t.report("hypervisor_frame_source_refused", ensure(s < 0 && s != i16::MIN, || format!("status {s}")));
    let s = copy(from(0), grant::copy_local(hv_frame, 0), 8, GNTCOPY_SOURCE_GREF);
    t.report("hypervisor_frame_dest_refused", ensure(s < 0 && s != i16::MIN, || format!("status {s}")));
    // A real copy still works.
    // SAFETY: both are padding pages of ours, mapped read-write.
    unsafe {
        (src_va as *mut u64).write_volatile(0xfeed_f00d);
        (dst_va as *mut u64).write_volatile(0);
    }
    let s = copy(from(0), to(0), 8, GNTCOPY_SOURCE_GREF);
    // SAFETY: as above.
    let got = unsafe { (dst_va as *const u64).read_volatile() };
    t.report("real_copy_works", ensure(s == GNTST_OKAY && got == 0xfeed_f00d, || format!("status {s}, {got:#x}")));
    t.report("end_access", ensure(gt.end_access(gref).is_ok(), || "refused".into()));
}

/// Event channels used wrongly (XSA-class: event channel allocation and closing): ports
/// that do not exist or are reserved, closed twice, bound to what is not unbound for us.
fn evtchn_misuse(t: &mut Tests) {
    t.report("close_port_0_einval", expect_ret(events::close_raw(0), EINVAL));
    t.report("close_huge_port_einval", expect_ret(events::close_raw(1 << 20), EINVAL));
    t.report("send_free_port_einval", expect_ret(events::send_raw(4000), EINVAL));
    t.report("unmask_huge_port_einval", expect_ret(events::unmask_raw(u32::MAX), EINVAL));
    let r = events::bind_interdomain(0, 1).err().map(|e| e.to_ret());
    t.report("bind_dom0_bound_port_einval", ensure(r == Some(EINVAL), || format!("{r:?}")));
    let r = events::bind_interdomain(NO_DOMAIN, 1).err().map(|e| e.to_ret());
    t.report("bind_no_domain_esrch", ensure(r == Some(ESRCH), || format!("{r:?}")));
    let r = events::bind_virq(1000, 0).err().map(|e| e.to_ret());
    t.report("bind_virq_past_end_einval", ensure(r == Some(EINVAL), || format!("{r:?}")));
    let r = events::bind_virq(0, 7).err().map(|e| e.to_ret());
    t.report("bind_virq_no_vcpu_enoent", ensure(r == Some(ENOENT), || format!("{r:?}")));
    match events::alloc_unbound(DOMID_SELF) {
        Ok(p) => {
            t.report("close_own_port", expect_ret(events::close_raw(p), 0));
            t.report("close_twice_einval", expect_ret(events::close_raw(p), EINVAL));
            t.report("send_closed_port_einval", expect_ret(events::send_raw(p), EINVAL));
        }
        Err(e) => t.report("alloc_unbound_self", Err(format!("{e:?}"))),
    }
    let again = events::alloc_unbound(DOMID_SELF);
    t.report("ports_still_allocate", ensure(again.is_ok(), || format!("{again:?}")));
}

/// Guest pointers that are not the guest's (XSA-class: hypercall argument checks): into
/// the hypervisor's direct map, the read-only M2P (which a write must not reach), not
/// canonical, or a structure that runs off the end of our mapped memory.
fn guest_pointers(t: &mut Tests, si: &'static StartInfo) {
    let region_end = region_end(si);
    for (addr, what) in [(DIRECT_MAP, "direct_map"), (MACH2PHYS_VIRT_START, "m2p"), (NON_CANONICAL, "non_canonical"), (region_end - 1, "page_crossing")] {
        let checks: [(&str, i64); 8] = [
            ("xen_version_out", raw(Hypercall::XenVersion, [u64::from(XENVER_EXTRAVERSION), addr, 0, 0, 0])),
            ("pt_update_list", raw(Hypercall::PtUpdate, [addr, 1, 0, u64::from(DOMID_SELF), 0])),
            ("multicall_list", raw(Hypercall::Multicall, [addr, 1, 0, 0, 0])),
            ("set_trap_table", raw(Hypercall::SetTrapTable, [addr, 0, 0, 0, 0])),
            ("grant_copy", raw(Hypercall::GrantTableOp, [u64::from(GNTTABOP_COPY), addr, 1, 0, 0])),
            ("evtchn_send", raw(Hypercall::EventChannelOp, [u64::from(pv_guest::hypercall_abi::event_channel::EVTCHNOP_SEND), addr, 0, 0, 0])),
            ("grant_query_size", raw(Hypercall::GrantTableOp, [u64::from(GNTTABOP_QUERY_SIZE), addr, 1, 0, 0])),
            ("memory_op", raw(Hypercall::MemoryOp, [u64::from(XENMEM_CURRENT_RESERVATION), addr, 0, 0, 0])),
        ];
        for (call, r) in checks {
            t.report(&format!("{call}_{what}_efault"), expect_ret(r, EFAULT));
        }
    }
    // The same calls with our own buffers still work.
    let mut dom = XenMemoryDomain { domid: DOMID_SELF };
    let r = raw(Hypercall::MemoryOp, [u64::from(XENMEM_CURRENT_RESERVATION), (&raw mut dom) as u64, 0, 0, 0]);
    t.report("memory_op_own_buffer_works", ensure(r > 0, || describe(r)));
}

/// One past the last address of our initial region.
fn region_end(si: &'static StartInfo) -> u64 {
    pv_guest::mm::phys::PhysLayout::new(pv_guest::start_info::virt_base(), si.pt_base, si.nr_pt_frames, si.nr_pages)
        .map(|l| l.region_end())
        .unwrap_or(0)
}

/// XSA-100 class (memory not scrubbed): pages written with a pattern and given back come
/// back, from `populate_physmap`, all zero.
fn scrub(t: &mut Tests, si: &'static StartInfo) {
    let Ok(mut mm) = GuestMm::init(si, None) else { return t.report("mm_init", Err("failed".into())) };
    let mut dirty = 0u32;
    let mut checked = 0u32;
    for _ in 0..16 {
        let Some((frame, va)) = mm.alloc_mapped() else { break };
        // SAFETY: a padding page of ours, mapped read-write; we fill it, then unmap it.
        unsafe { core::ptr::write_bytes(va as *mut u8, 0xa5, 4096) };
        if update_va_mapping_raw(va, 0, UVMF_INVLPG) != 0 {
            return t.report("unmap", Err("refused".into()));
        }
        mm.free(frame);
        if mm.give_back(frame.pfn).is_err() {
            return t.report("give_back", Err("refused".into()));
        }
        let Ok(new) = mm.reclaim(frame.pfn) else { return t.report("reclaim", Err("refused".into())) };
        if update_va_mapping_raw(va, make_entry(new, DATA_RW_FLAGS), UVMF_INVLPG) != 0 {
            return t.report("remap", Err("refused".into()));
        }
        // SAFETY: `va` maps the new frame, ours, read-write.
        let page = unsafe { core::slice::from_raw_parts(va as *const u64, 512) };
        dirty += u32::from(page.iter().any(|&w| w != 0));
        checked += 1;
    }
    println!("hostile: scrub {checked} pages given back and reclaimed, {dirty} not zero");
    t.report("reclaimed_pages_are_zero", ensure(checked == 16 && dirty == 0, || format!("{dirty} of {checked}")));
}

/// XSA-class (iret and callbacks): the event callback pointed into the hypervisor or at
/// a non-canonical address is refused (`EINVAL`; Xen takes any address and lets the
/// delivery fault in the guest), and events keep arriving at the callback we had.
fn callback_hv(t: &mut Tests) {
    for (address, name) in [(DIRECT_MAP, "event_callback_in_hypervisor_einval"), (NON_CANONICAL, "event_callback_non_canonical_einval")] {
        let r = events::callback_register_raw(&events::CallbackRegister {
            kind: CALLBACKTYPE_EVENT as u16,
            flags: 0,
            pad: 0,
            address,
        });
        t.report(name, expect_ret(r, EINVAL));
    }
    let before = events::upcalls();
    let delivered = events::alloc_unbound(DOMID_SELF).and_then(|p| {
        let local = events::bind_interdomain(DOMID_SELF, p)?;
        events::set_handler(p, |_| {})?;
        events::unmask(p)?;
        events::send(local)
    });
    t.report("event_still_delivered", ensure(delivered.is_ok() && events::upcalls() > before, || format!("{delivered:?}, upcalls {before} -> {}", events::upcalls())));
}

/// The same for trap handlers: a trap-table entry in the hypervisor or not canonical is
/// refused (`EINVAL`; Xen checks canonicality only), and a good table still installs.
fn trap_hv(t: &mut Tests) {
    use pv_guest::hypercall_abi::arch::TrapInfo;
    use pv_guest::hypercall_abi::layout::FLAT_KERNEL_CS;
    for (address, name) in [(DIRECT_MAP, "trap_handler_in_hypervisor_einval"), (NON_CANONICAL, "trap_handler_non_canonical_einval")] {
        let table = [TrapInfo::new(3, 3, true, FLAT_KERNEL_CS, address), TrapInfo::new(0, 0, false, 0, 0)];
        t.report(name, expect_ret(raw(Hypercall::SetTrapTable, [table.as_ptr() as u64, 0, 0, 0, 0]), EINVAL));
    }
    let ok = pv_guest::traps::install(&[(3, |_| {})]);
    t.report("good_table_installs", ensure(ok.is_ok(), || format!("{ok:?}")));
    // SAFETY: raises #BP, which the handler just installed takes and returns from.
    unsafe { core::arch::asm!("int3", options(nomem)) };
    t.report("int3_handled", Ok(()));
}

/// `vcpu_op` for vCPUs we do not have, and with buffers not ours.
fn vcpu_op(t: &mut Tests) {
    let op = |cmd: u32, vcpu: u64, arg: u64| raw(Hypercall::VcpuOp, [u64::from(cmd), vcpu, arg, 0, 0]);
    t.report("up_missing_vcpu_enoent", expect_ret(op(VCPUOP_UP, 1, 0), ENOENT));
    t.report("is_up_huge_vcpu_enoent", expect_ret(op(VCPUOP_IS_UP, 1 << 31, 0), ENOENT));
    t.report("singleshot_from_hypervisor_efault", expect_ret(op(VCPUOP_SET_SINGLESHOT_TIMER, 0, DIRECT_MAP), EFAULT));
    let r = op(99, 0, 0);
    t.report("unknown_op_refused", ensure(r < 0, || describe(r)));
    t.report("is_up_self", expect_ret(op(VCPUOP_IS_UP, 0, 0), 1));
    // The runstate: ours now (running, with time in it), and an area kept up to date.
    let mut info = VcpuRunstateInfo::default();
    t.report("get_runstate_info", expect_ret(op(VCPUOP_GET_RUNSTATE_INFO, 0, (&raw mut info) as u64), 0));
    t.report("running_with_time", ensure(info.state == RUNSTATE_RUNNING && info.time[0] > 0, || format!("{info:?}")));
    t.report("runstate_of_missing_vcpu_enoent", expect_ret(op(VCPUOP_GET_RUNSTATE_INFO, 1, (&raw mut info) as u64), ENOENT));
    t.report("runstate_into_hypervisor_efault", expect_ret(op(VCPUOP_GET_RUNSTATE_INFO, 0, DIRECT_MAP), EFAULT));
    // With Xen's update flag asked for: bit 63 of state_entry_time is set during a write
    // and cleared after it.
    let assist = pv_guest::mm::xen::vm_assist_raw(pv_guest::hypercall_abi::arch::VMASST_CMD_ENABLE, pv_guest::hypercall_abi::arch::VMASST_TYPE_RUNSTATE_UPDATE_FLAG);
    t.report("runstate_update_flag_assist", expect_ret(assist, 0));
    let area = alloc::boxed::Box::new(VcpuRunstateInfo { state: 99, ..Default::default() });
    let addr = (&*area as *const VcpuRunstateInfo) as u64;
    t.report("register_runstate_area", expect_ret(op(VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, (&raw const addr) as u64), 0));
    // SAFETY: `area` is ours; the hypervisor writes it while we are on the CPU.
    let first = unsafe { core::ptr::read_volatile(&*area) };
    let _ = pv_guest::hypercall::sched_yield();
    let _ = pv_guest::hypercall::sched_yield();
    // SAFETY: as above.
    let later = unsafe { core::ptr::read_volatile(&*area) };
    println!("hostile: runstate area {first:?} then {later:?}");
    t.report("area_filled_at_once", ensure(first.state == RUNSTATE_RUNNING, || format!("{first:?}")));
    // Each yield passes through the scheduler, which writes the area again (with another
    // vCPU to run on this CPU the time goes to runnable, else to running: with several
    // CPUs the others may run elsewhere).
    t.report(
        "area_follows_switches",
        ensure(later.state == RUNSTATE_RUNNING && later.time[0] + later.time[1] > first.time[0] + first.time[1] && later.state_entry_time > first.state_entry_time, || format!("{first:?} then {later:?}")),
    );
    t.report("update_flag_cleared_after_writes", ensure(later.state_entry_time >> 63 == 0 && later.state_entry_time > 0, || format!("{later:?}")));
    // An area in the hypervisor: taken, as Xen does, and never written (every write goes
    // through the guest-range check); switches go on.
    let hv = DIRECT_MAP;
    t.report("runstate_area_in_hypervisor_taken", expect_ret(op(VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, (&raw const hv) as u64), 0));
    let yielded = pv_guest::hypercall::sched_yield();
    t.report("switches_go_on", ensure(yielded.is_ok(), || format!("{yielded:?}")));
    let zero = 0u64;
    let _ = op(VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, (&raw const zero) as u64);
}

/// `SCHEDOP_watchdog` end to end: two watchdogs at most, bad ids refused, then one of one
/// second left to run out while we spin: the hypervisor shuts us down (reason watchdog).
fn watchdog(t: &mut Tests) {
    use pv_guest::hypercall_abi::sched::SCHEDOP_WATCHDOG;
    let op = pv_guest::hypercall::sched_watchdog_raw;
    let first = op(0, 60);
    let second = op(0, 1);
    t.report("two_watchdogs", ensure(first == 1 && second == 2, || format!("{first}, {second}")));
    t.report("third_enospc", expect_ret(op(0, 1), Errno::ENOSPC.to_ret()));
    t.report("unknown_id_einval", expect_ret(op(3, 1), EINVAL));
    t.report("first_destroyed", expect_ret(op(1, 0), 0));
    t.report("destroyed_id_einval", expect_ret(op(1, 5), EINVAL));
    t.report("bad_pointer_efault", expect_ret(raw(Hypercall::SchedOp, [u64::from(SCHEDOP_WATCHDOG), DIRECT_MAP, 0, 0, 0]), EFAULT));
    t.done();
    println!("hostile: watchdog armed for 1 s; spinning");
    let start = pv_guest::time::now_ns();
    while pv_guest::time::now_ns() - start < 10_000_000_000 {
        core::hint::spin_loop();
    }
    println!("hostile: watchdog did not fire in 10 s");
}

/// Where the #GP handler of `noncanonical-return` resumes, and the rip it was given.
static NC_RECOVER: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
static NC_SEEN_RIP: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn nc_gp(trap: &mut pv_guest::traps::Trap<'_>) {
    use core::sync::atomic::Ordering;
    NC_SEEN_RIP.store(trap.frame.rip, Ordering::SeqCst);
    trap.frame.rip = NC_RECOVER.load(Ordering::SeqCst);
}

/// A hypercall whose return address is not canonical: `syscall` in the last two bytes of
/// the lower half. As in Xen, the hypercall runs and the return gives the guest a #GP at
/// `0x0000800000000000` (it used to crash the domain).
fn noncanonical_return(t: &mut Tests, si: &'static StartInfo) {
    use core::sync::atomic::Ordering;
    const TOP_PAGE: u64 = 0x0000_7fff_ffff_f000;
    let Some(tg) = target(t, si) else { return };
    let mut mm = tg.mm;
    let _ = &mut mm;
    // The code page: `syscall` at its last two bytes, written through its padding mapping.
    // SAFETY: `tg.va` is a padding page of ours, mapped read-write.
    unsafe {
        (tg.va as *mut u8).add(0xffe).write_volatile(0x0f);
        (tg.va as *mut u8).add(0xfff).write_volatile(0x05);
    }
    let Some(code) = mm.layout.pfn_of(tg.va).and_then(|p| mm.p2m.mfn(p)) else {
        return t.report("code_frame", Err("none".into()));
    };
    // Tables for slot 255 of our L4: fresh frames (zero), each entry validated as it goes in.
    let l4 = Mfn(tg.l4);
    let (Some(l3), Some(l2), Some(l1)) = (mm.alloc_frame(), mm.alloc_frame(), mm.alloc_frame()) else {
        return t.report("table_frames", Err("none".into()));
    };
    let steps = [
        (entry_maddr(l1.mfn, table_index(TOP_PAGE, 1)), make_entry(code, DATA_RO_FLAGS)),
        (entry_maddr(l2.mfn, table_index(TOP_PAGE, 2)), make_entry(l1.mfn, TABLE_FLAGS)),
        (entry_maddr(l3.mfn, table_index(TOP_PAGE, 3)), make_entry(l2.mfn, TABLE_FLAGS)),
        (entry_maddr(l4, table_index(TOP_PAGE, 4)), make_entry(l3.mfn, TABLE_FLAGS)),
    ];
    for (ptr, val) in steps {
        let r = pt_update(ptr, val);
        if r != 0 {
            return t.report("map_top_page", Err(format!("{ptr:#x} <- {val:#x}: {}", describe(r))));
        }
    }
    if pv_guest::traps::install(&[(13, nc_gp)]).is_err() {
        return t.report("install_gp_handler", Err("refused".into()));
    }
    let ret: u64;
    // SAFETY: jumps to the `syscall` mapped at the top of the lower half with rax = 17
    // (xen_version 0); the hypercall runs, its return raises #GP at 0x0000800000000000,
    // and our handler resumes at label 2 with the registers as they were (rax the result).
    unsafe {
        core::arch::asm!(
            "lea 2f(%rip), %rcx",
            "mov %rcx, {recover}(%rip)",
            "mov $17, %eax",
            "xor %edi, %edi",
            "xor %esi, %esi",
            "jmp *{target}",
            "2:",
            recover = sym NC_RECOVER,
            target = in(reg) TOP_PAGE + 0xffe,
            out("rax") ret, out("rcx") _, out("rdi") _, out("rsi") _, out("r11") _,
            options(att_syntax)
        )
    }
    let seen = NC_SEEN_RIP.load(Ordering::SeqCst);
    println!("hostile: noncanonical-return #GP at {seen:#x}, xen_version returned {ret:#x}");
    t.report("gp_at_the_non_canonical_rip", ensure(seen == 0x0000_8000_0000_0000, || format!("{seen:#x}")));
    let (major, minor) = pv_guest::hypercall::xen_version_number();
    let want = u64::from(major) << 16 | u64::from(minor);
    t.report("the_hypercall_ran", ensure(ret == want, || format!("{ret:#x}, want {want:#x}")));
}
