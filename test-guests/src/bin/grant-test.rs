//! grant-test: two domains share pages through grant tables, mapped and by copy, and check
//! the bytes both ways, the in-use rules and the hostile cases with Xen's exact codes.
//!
//! Command line: `role=granter peer=<domid>` or `role=mapper peer=<domid>`.
//!
//! Handshake: the granter sets up a one-frame table and grants, in this order, page A
//! (read-write), page B (read-only) and page C (read-write: the mailbox) to `peer`, and page
//! A again to a domain that does not exist (references 8, 9, 10 and 11 on a fresh table);
//! it publishes the first three references through the store, as split drivers do
//! (`data/grant-refs` in its home, readable by `peer` only), then prints `grant-test:
//! granter granted refs 8 9 10 to domain <peer>`. The mapper reads the references from the
//! store (`refs_from_store`; waiting for them if need be). The two then talk through
//! the mailbox's first two words (word 0 written by the mapper, word 1 by the granter),
//! each waiting with `SCHEDOP_yield` for at most [`WAIT_NS`]:
//! 1. the mapper maps A read-write and read-only, B and C, checks the patterns, writes
//!    into A, copies with `GNTTABOP_copy` both ways, runs the hostile cases, sets word 0 = 1;
//! 2. the granter sees the mapper's bytes, sees `GTF_reading|GTF_writing` on ref 8 and is
//!    refused ending access to it, sets word 1 = 1;
//! 3. the mapper unmaps both mappings of A, sets word 0 = 2;
//! 4. the granter ends access to 8 (now allowed), finds 9 still in use, prints
//!    `grant-test: granter waiting for destroy`, sets word 1 = 2 and yields for good;
//! 5. dom0 destroys the granter; the mapper, polling with a copy from ref 9 until it gets
//!    `GNTST_bad_domain`, checks that page B (still mapped) kept its bytes, unmaps B and C
//!    (orphans: `GNTST_okay`), prints `grant-test: mapper done` and powers off.
//!
//! Beside the handshake, the granter switches its table to v2 and back (status frames, a
//! loopback map of a v2 grant, the in-use flags in the status word, `EBUSY` while a status
//! frame is mapped), and the mapper maps A with host and device halves and unmaps them one
//! at a time, maps B for a device only, and replaces a mapping of A with one of its own
//! pages (`GNTTABOP_unmap_and_replace`).
//!
//! Every check prints `TEST <name> PASS|FAIL <why>`; each side ends with `TESTS DONE`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use core::ptr;
use pv_guest::grant::{self, EndAccess, GrantTable};
use pv_guest::hypercall::sched_yield;
use pv_guest::hypercall_abi::grant_table::*;
use pv_guest::hypercall_abi::types::DOMID_SELF;
use pv_guest::mm::xen::GuestMm;
use pv_guest::start_info::cmdline;
use pv_guest::testing::{ensure, expect_ret, Outcome, Tests};
use pv_guest::time::{now_ns, NS_PER_MS};
use pv_guest::{println, ShutdownReason, StartInfo};

/// Longest wait for the other side.
const WAIT_NS: u64 = 20_000 * NS_PER_MS;
/// The node of the mapper's home the scenario writes once the granter's destroy is over.
const GONE_NODE: &str = "granter-gone";
/// The references the granter gets for its grants on a fresh table (see the handshake).
const REF_A: u32 = 8;
const REF_B: u32 = 9;
const REF_C: u32 = 10;
const REF_ELSEWHERE: u32 = 11;
/// Where the granter publishes its references, relative to its store home.
const REFS_NODE: &str = "data/grant-refs";
/// The granter's `max_grant_frames` (grant-g.cfg).
const GRANT_FRAMES: u32 = 4;
/// A domain that does not exist.
const NO_DOMAIN: u16 = 999;
/// Where the mapper writes into page A, and what.
const MAPPER_OFF: usize = 2048;
const MAPPER_BYTE: u8 = 0x5a;
/// Where the grant-to-grant copy lands in page A.
const BOTH_OFF: usize = 3500;
/// Where the mapper's copy lands in page A.
const COPY_OFF: usize = 3000;
const COPY_LEN: usize = 64;
const COPY_BYTE: u8 = 0xc3;

fn pattern_a(i: usize) -> u8 {
    (i * 7 + 1) as u8
}

fn pattern_b(i: usize) -> u8 {
    (i * 13 + 5) as u8
}

fn read(va: u64, off: usize) -> u8 {
    // SAFETY: callers pass addresses of pages mapped for the whole test.
    unsafe { ptr::read_volatile((va as *const u8).add(off)) }
}

fn write(va: u64, off: usize, b: u8) {
    // SAFETY: callers pass addresses of pages mapped writable.
    unsafe { ptr::write_volatile((va as *mut u8).add(off), b) }
}

fn mailbox(va: u64, word: usize) -> &'static core::sync::atomic::AtomicU64 {
    // SAFETY: the mailbox page stays mapped (writable) on both sides for the whole handshake;
    // its words are 8-aligned and only accessed atomically.
    unsafe { core::sync::atomic::AtomicU64::from_ptr((va as *mut u64).add(word)) }
}

/// Yields until `cond` holds; false after [`WAIT_NS`].
fn wait(mut cond: impl FnMut() -> bool) -> bool {
    let end = now_ns() + WAIT_NS;
    while !cond() {
        if now_ns() > end {
            return false;
        }
        let _ = sched_yield();
    }
    true
}

fn bytes_are(va: u64, range: core::ops::Range<usize>, f: impl Fn(usize) -> u8) -> Outcome {
    for i in range {
        if read(va, i) != f(i) {
            return Err(format!("byte {i} is {:#x}, want {:#x}", read(va, i), f(i)));
        }
    }
    Ok(())
}

fn status(got: Result<u32, i16>, want: i16) -> Outcome {
    match got {
        Err(s) if s == want => Ok(()),
        other => Err(format!("got {other:?}, want status {want}")),
    }
}

fn granter(t: &mut Tests, si: &StartInfo, mm: &mut GuestMm, peer: u16) {
    t.report("set_version_1", expect_ret(grant::set_version(1).0, 0));
    t.report("set_version_3_einval", expect_ret(grant::set_version(3).0, -22));
    let mut gt = match GrantTable::setup(mm, 1) {
        Ok(g) => g,
        Err(e) => return t.report("setup_table", Err(format!("{e:?}"))),
    };
    version_2(t, si, mm, &gt);
    // grant-g.cfg sets `max_grant_frames = 4`: the limit reaches the hypervisor.
    t.report("query_size", ensure(grant::query_size(DOMID_SELF) == Ok((1, GRANT_FRAMES)), || format!("{:?}", grant::query_size(DOMID_SELF))));
    let mut list = [0u64; GRANT_FRAMES as usize + 1];
    let mut op = GnttabSetupTable { dom: DOMID_SELF, nr_frames: GRANT_FRAMES + 1, frame_list: list.as_mut_ptr() as u64, ..Default::default() };
    let r = grant::grant_table_op_raw(GNTTABOP_SETUP_TABLE, (&raw mut op).cast(), 1);
    t.report("setup_past_limit", ensure(r == 0 && op.status == GNTST_GENERAL_ERROR, || format!("ret {r} status {}", op.status)));
    let (Some((a, va_a)), Some((b, va_b)), Some((c, va_c))) = (mm.alloc_mapped(), mm.alloc_mapped(), mm.alloc_mapped()) else {
        return t.report("pages", Err("no padding pages".into()));
    };
    for i in 0..4096 {
        write(va_a, i, pattern_a(i));
        write(va_b, i, pattern_b(i));
        write(va_c, i, 0);
    }
    let refs = [
        gt.grant_access(peer, a.mfn.0, false),
        gt.grant_access(peer, b.mfn.0, true),
        gt.grant_access(peer, c.mfn.0, false),
        gt.grant_access(NO_DOMAIN, a.mfn.0, false),
    ];
    if refs != [Some(REF_A), Some(REF_B), Some(REF_C), Some(REF_ELSEWHERE)] {
        return t.report("grant_refs", Err(format!("{refs:?}")));
    }
    let published = pv_guest::xenbus::connect(si)
        .map_err(|e| format!("store: -{}", e.name()))
        .and_then(|mut xs| {
            let refs = format!("{REF_A} {REF_B} {REF_C}");
            pv_guest::xenbus::publish_to(&mut xs, REFS_NODE, refs.as_bytes(), peer).map_err(|e| format!("{e:?}"))
        });
    if let Err(e) = published {
        return t.report("publish_refs", Err(e));
    }
    println!("grant-test: granter granted refs 8 9 10 to domain {peer}");
    if !wait(|| mailbox(va_c, 0).load(core::sync::atomic::Ordering::Acquire) >= 1) {
        return t.report("mapper_stage_1", Err("timed out".into()));
    }
    t.report("granter_sees_mapper_write", bytes_are(va_a, MAPPER_OFF..MAPPER_OFF + 16, |_| MAPPER_BYTE));
    t.report("granter_sees_mapper_copy", bytes_are(va_a, COPY_OFF..COPY_OFF + COPY_LEN, |_| COPY_BYTE));
    let f = gt.flags(REF_A);
    t.report("in_use_flags_while_mapped", ensure(f & (GTF_READING | GTF_WRITING) == GTF_READING | GTF_WRITING, || format!("flags {f:#x}")));
    let end = gt.end_access(REF_A);
    t.report("end_access_refused_while_mapped", ensure(matches!(end, Err(EndAccess::InUse(_))), || format!("{end:?}")));
    t.report("entry_kept_after_refusal", ensure(gt.flags(REF_A) & GTF_PERMIT_ACCESS != 0, || "entry cleared".into()));
    mailbox(va_c, 1).store(1, core::sync::atomic::Ordering::Release);
    if !wait(|| mailbox(va_c, 0).load(core::sync::atomic::Ordering::Acquire) >= 2) {
        return t.report("mapper_stage_2", Err("timed out".into()));
    }
    let f = gt.flags(REF_A);
    t.report("in_use_flags_clear_after_unmap", ensure(f & (GTF_READING | GTF_WRITING) == 0, || format!("flags {f:#x}")));
    t.report("end_access_after_unmap", ensure(gt.end_access(REF_A).is_ok() && gt.flags(REF_A) == 0, || "refused".into()));
    t.report("end_access_b_still_mapped", ensure(gt.end_access(REF_B).is_err(), || "allowed".into()));
    t.done();
    println!("grant-test: granter waiting for destroy");
    mailbox(va_c, 1).store(2, core::sync::atomic::Ordering::Release);
    loop {
        let _ = sched_yield();
    }
}

/// The mapper: the granter's references, from the store (waiting up to [`WAIT_NS`]).
/// `GNTTABOP_get_status_frames` for this domain: the status and the frames.
fn status_frames(n: usize) -> (i16, alloc::vec::Vec<u64>) {
    let mut list = alloc::vec![0u64; n];
    let mut op = GnttabGetStatusFrames { nr_frames: n as u32, dom: DOMID_SELF, status: 0, frame_list: list.as_mut_ptr() as u64 };
    let r = grant::grant_table_op_raw(GNTTABOP_GET_STATUS_FRAMES, (&raw mut op).cast(), 1);
    (if r == 0 { op.status } else { r as i16 }, list)
}

/// The table as v2 and back to v1, on the one frame `gt` set up (no grant in use yet):
/// status frames, a v2 grant of one of our pages mapped by ourselves, its in-use flags in
/// the status word, and the way back refused while a status frame is mapped.
fn version_2(t: &mut Tests, si: &StartInfo, mm: &mut GuestMm, gt: &GrantTable) {
    use core::sync::atomic::{AtomicU32, Ordering};
    let (Some(me), Some(((page, va_page), (_, va_map), (_, va_status)))) = (own_domid(si), (|| Some((mm.alloc_mapped()?, mm.alloc_mapped()?, mm.alloc_mapped()?)))()) else {
        return t.report("v2_setup", Err("no domid or pages".into()));
    };
    t.report("status_frames_under_v1", ensure(status_frames(1).0 == GNTST_GENERAL_ERROR, || format!("{:?}", status_frames(1))));
    let (r, v) = grant::set_version(2);
    t.report("set_version_2", ensure(r == 0 && v == 2, || format!("{r}, version {v}")));
    let (st, frames) = status_frames(1);
    t.report("get_status_frames", ensure(st == GNTST_OKAY && frames[0] != 0, || format!("{st} {frames:x?}")));
    t.report("get_status_frames_past_the_end", ensure(status_frames(2).0 == GNTST_GENERAL_ERROR, || "allowed".into()));
    // Entry 12 of the v2 layout (16 bytes each) grants our page to ourselves, read-write.
    let entry = gt.frame_va(0) + 12 * 16;
    if entry == 12 * 16 {
        return t.report("v2_table_mapped", Err("no table frame".into()));
    }
    for i in 0..4096 {
        write(va_page, i, (i % 253) as u8);
    }
    // SAFETY: the table frame is mapped writable for us at `frame_va(0)`; entry 12 lies in it.
    unsafe {
        ptr::write_volatile((entry + 8) as *mut u64, page.mfn.0);
        ptr::write_volatile((entry + 4) as *mut u32, 0);
        (*(entry as *const AtomicU32)).store(u32::from(GTF_PERMIT_ACCESS) | u32::from(me) << 16, Ordering::Release);
    }
    let map = grant::map_one(va_map, me, 12, false);
    let mapped_status = pv_guest::mm::xen::update_va_mapping_raw(va_status, pv_guest::mm::make_entry(pv_guest::hypercall_abi::types::Mfn(frames[0]), pv_guest::mm::DATA_RO_FLAGS), pv_guest::hypercall_abi::mmu::UVMF_INVLPG);
    // SAFETY: `va_status` maps the status frame read-only; word 12 is its 13th u16.
    let st12 = || unsafe { ptr::read_volatile((va_status + 24) as *const u16) };
    t.report("v2_map_sets_status_word", ensure(map.is_ok() && mapped_status == 0 && st12() == GTF_READING | GTF_WRITING, || format!("map {map:?}, status frame mapped {mapped_status}, status {:#x}", st12())));
    // SAFETY: entry 12's header, read.
    let header = unsafe { ptr::read_volatile(entry as *const u32) };
    t.report("v2_header_untouched", ensure(header == u32::from(GTF_PERMIT_ACCESS) | u32::from(me) << 16, || format!("{header:#x}")));
    t.report("v2_mapping_shows_the_page", bytes_are(va_map, 0..4096, |i| (i % 253) as u8));
    t.report("set_version_1_while_in_use_ebusy", expect_ret(grant::set_version(1).0, -16));
    let un = map.map(|h| grant::unmap_one(va_map, h));
    t.report("v2_unmap_clears_status_word", ensure(matches!(un, Ok(Ok(()))) && st12() == 0, || format!("{un:?}, status {:#x}", st12())));
    t.report("set_version_1_while_status_mapped_ebusy", expect_ret(grant::set_version(1).0, -16));
    let unmapped = pv_guest::mm::xen::update_va_mapping_raw(va_status, 0, pv_guest::hypercall_abi::mmu::UVMF_INVLPG);
    let (r, v) = grant::set_version(1);
    t.report("set_version_back_to_1", ensure(unmapped == 0 && r == 0 && v == 1 && status_frames(1).0 == GNTST_GENERAL_ERROR, || format!("{unmapped}, {r}, version {v}")));
}

/// Our domain id, from the store.
fn own_domid(si: &StartInfo) -> Option<u16> {
    let mut xs = pv_guest::xenbus::connect(si).ok()?;
    pv_guest::xenbus::own_domid(&mut xs).ok()
}

/// A mapping of A with host and device halves, unmapped half by half; a device-only
/// mapping of B; and `GNTTABOP_unmap_and_replace` of a mapping of A by a page of ours.
fn halves_and_replace(t: &mut Tests, mm: &mut GuestMm, peer: u16, ref_a: u32, ref_b: u32, va_x: u64) {
    let map = |va: u64, gref: u32, flags: u32| {
        let mut op = [GnttabMapGrantRef { host_addr: va, flags, r#ref: gref, dom: peer, ..Default::default() }];
        let r = grant::map_grants(&mut op);
        if r.is_ok() && op[0].status == GNTST_OKAY { Ok((op[0].handle, op[0].dev_bus_addr)) } else { Err(op[0].status) }
    };
    let unmap = |host_addr: u64, dev_bus_addr: u64, handle: u32| {
        let mut op = [GnttabUnmapGrantRef { host_addr, dev_bus_addr, handle, ..Default::default() }];
        let _ = grant::unmap_grants(&mut op);
        op[0].status
    };
    let Ok((h, dev)) = map(va_x, ref_a, GNTMAP_HOST_MAP | GNTMAP_DEVICE_MAP) else {
        return t.report("map_host_and_device", Err("refused".into()));
    };
    t.report("map_host_and_device", ensure(dev != 0 && dev % 4096 == 0, || format!("bus address {dev:#x}")).and(bytes_are(va_x, 0..64, pattern_a)));
    t.report("unmap_wrong_bus_address", ensure(unmap(0, dev + 4096, h) == GNTST_BAD_DEV_ADDR, || "accepted".into()));
    t.report("unmap_host_half", ensure(unmap(va_x, 0, h) == GNTST_OKAY, || "refused".into()));
    t.report("unmap_host_half_again", ensure(unmap(va_x, 0, h) == GNTST_GENERAL_ERROR, || "accepted".into()));
    t.report("unmap_device_half", ensure(unmap(0, dev, h) == GNTST_OKAY && unmap(0, dev, h) == GNTST_BAD_HANDLE, || "handle not freed".into()));
    let dev_b = map(0, ref_b, GNTMAP_DEVICE_MAP | GNTMAP_READONLY);
    t.report("map_device_only", ensure(dev_b.is_ok_and(|(h, d)| d != 0 && unmap(0, d, h) == GNTST_OKAY), || format!("{dev_b:?}")));
    t.report("map_device_only_writable_of_readonly_grant", ensure(map(0, ref_b, GNTMAP_DEVICE_MAP) == Err(GNTST_GENERAL_ERROR), || "allowed".into()));
    // Replace: A at va_x, one of our pages at va_y; afterwards va_x shows our page.
    let Some((_, va_y)) = mm.alloc_mapped() else { return t.report("replace_page", Err("no page".into())) };
    for i in 0..4096 {
        write(va_y, i, 0x77);
    }
    let Ok((h, _)) = map(va_x, ref_a, GNTMAP_HOST_MAP | GNTMAP_READONLY) else { return t.report("unmap_and_replace", Err("map refused".into())) };
    let replace = |host_addr: u64, new_addr: u64, handle: u32| {
        let mut op = GnttabUnmapAndReplace { host_addr, new_addr, handle, ..Default::default() };
        let r = grant::grant_table_op_raw(GNTTABOP_UNMAP_AND_REPLACE, (&raw mut op).cast(), 1);
        if r == 0 { op.status } else { r as i16 }
    };
    t.report("unmap_and_replace_wrong_address", ensure(replace(va_x + 4096, va_y, h) == GNTST_GENERAL_ERROR, || "accepted".into()));
    t.report("unmap_and_replace", ensure(replace(va_x, va_y, h) == GNTST_OKAY, || "refused".into()).and(bytes_are(va_x, 0..4096, |_| 0x77)));
    t.report("unmap_and_replace_handle_gone", ensure(replace(va_x, 0, h) == GNTST_BAD_HANDLE, || "accepted".into()));
}

fn refs_from_store(si: &StartInfo, peer: u16) -> Result<[u32; 3], alloc::string::String> {
    let mut xs = pv_guest::xenbus::connect(si).map_err(|e| format!("store: -{}", e.name()))?;
    let v = pv_guest::xenbus::read_from(&mut xs, peer, REFS_NODE, WAIT_NS).map_err(|e| format!("{REFS_NODE}: {e:?}"))?;
    let text = core::str::from_utf8(&v).map_err(|_| format!("{REFS_NODE}: not text"))?;
    let mut refs = text.trim_end_matches('\0').split(' ').map(|r| r.parse::<u32>());
    match (refs.next(), refs.next(), refs.next(), refs.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => Ok([a, b, c]),
        _ => Err(format!("{REFS_NODE}: \"{text}\" is not three references")),
    }
}

fn mapper(t: &mut Tests, si: &StartInfo, mm: &mut GuestMm, peer: u16) {
    let (ref_a, ref_b, ref_c) = match refs_from_store(si, peer) {
        Ok([a, b, c]) => {
            t.report("refs_from_store", Ok(()));
            (a, b, c)
        }
        Err(e) => return t.report("refs_from_store", Err(e)),
    };
    let vas: alloc::vec::Vec<(pv_guest::mm::Frame, u64)> = (0..6).filter_map(|_| mm.alloc_mapped()).collect();
    if vas.len() < 6 {
        return t.report("pages", Err("no padding pages".into()));
    }
    let (va_rw, va_ro, va_b, va_c, va_x) = (vas[0].1, vas[1].1, vas[2].1, vas[3].1, vas[4].1);
    let (local, va_local) = vas[5];
    // Hostile maps first: nothing may be left mapped by them.
    t.report("map_unknown_domain", status(grant::map_one(va_x, NO_DOMAIN, ref_a, true), GNTST_BAD_DOMAIN));
    t.report("map_ref_out_of_range", status(grant::map_one(va_x, peer, 512, true), GNTST_BAD_GNTREF));
    t.report("map_ref_far_out_of_range", status(grant::map_one(va_x, peer, 1 << 30, true), GNTST_BAD_GNTREF));
    t.report("map_readonly_grant_writable", status(grant::map_one(va_x, peer, ref_b, false), GNTST_GENERAL_ERROR));
    t.report("map_grant_for_another_domain", status(grant::map_one(va_x, peer, REF_ELSEWHERE, true), GNTST_GENERAL_ERROR));
    t.report("map_bad_address", status(grant::map_one(0xffff_8000_0000_0000, peer, ref_a, true), GNTST_GENERAL_ERROR));
    t.report("unmap_bad_handle", status(grant::unmap_one(va_x, 9999).map(|_| 0), GNTST_BAD_HANDLE));
    // The real maps, in one batch.
    let mut ops = [
        grant::map_op(va_rw, peer, ref_a, false),
        grant::map_op(va_ro, peer, ref_a, true),
        grant::map_op(va_b, peer, ref_b, true),
        grant::map_op(va_c, peer, ref_c, false),
    ];
    let r = grant::map_grants(&mut ops);
    let st: alloc::vec::Vec<i16> = ops.iter().map(|o| o.status).collect();
    t.report("map_batch", ensure(r.is_ok() && st.iter().all(|&s| s == 0), || format!("{r:?} {st:?}")));
    if st.iter().any(|&s| s != 0) {
        return;
    }
    let (h_rw, h_ro, h_b, h_c) = (ops[0].handle, ops[1].handle, ops[2].handle, ops[3].handle);
    t.report("mapper_reads_granted_bytes", bytes_are(va_rw, 0..4096, pattern_a).and(bytes_are(va_ro, 0..4096, pattern_a)));
    t.report("mapper_reads_readonly_grant", bytes_are(va_b, 0..4096, pattern_b));
    for i in 0..16 {
        write(va_rw, MAPPER_OFF + i, MAPPER_BYTE);
    }
    t.report("write_seen_through_both_mappings", bytes_are(va_ro, MAPPER_OFF..MAPPER_OFF + 16, |_| MAPPER_BYTE));
    // Copies: grant B -> local, local -> grant A, and the hostile ones.
    for i in 0..4096 {
        write(va_local, i, 0);
    }
    let mut cp = [GnttabCopy { source: grant::copy_gref(peer, ref_b, 100), dest: grant::copy_local(local.mfn.0, 50), len: 200, flags: GNTCOPY_SOURCE_GREF, ..Default::default() }];
    let r = grant::copy(&mut cp);
    t.report("copy_from_grant", ensure(r.is_ok() && cp[0].status == 0, || format!("{r:?} {}", cp[0].status)).and(bytes_are(va_local, 50..250, |i| pattern_b(i + 50))));
    for i in 0..COPY_LEN {
        write(va_local, i, COPY_BYTE);
    }
    cp[0] = GnttabCopy { source: grant::copy_local(local.mfn.0, 0), dest: grant::copy_gref(peer, ref_a, COPY_OFF as u16), len: COPY_LEN as u16, flags: GNTCOPY_DEST_GREF, ..Default::default() };
    let r = grant::copy(&mut cp);
    t.report("copy_to_grant", ensure(r.is_ok() && cp[0].status == 0, || format!("{r:?} {}", cp[0].status)).and(bytes_are(va_ro, COPY_OFF..COPY_OFF + COPY_LEN, |_| COPY_BYTE)));
    // Both sides granted: B (read-only) into A, without touching a local frame.
    cp[0] = GnttabCopy { source: grant::copy_gref(peer, ref_b, 0), dest: grant::copy_gref(peer, ref_a, BOTH_OFF as u16), len: 32, flags: GNTCOPY_SOURCE_GREF | GNTCOPY_DEST_GREF, ..Default::default() };
    let r = grant::copy(&mut cp);
    t.report("copy_grant_to_grant", ensure(r.is_ok() && cp[0].status == 0, || format!("{r:?} {}", cp[0].status)).and(bytes_are(va_ro, BOTH_OFF..BOTH_OFF + 32, |i| pattern_b(i - BOTH_OFF))));
    let hostile = [
        ("copy_past_page", GnttabCopy { source: grant::copy_gref(peer, ref_b, 4000), dest: grant::copy_local(local.mfn.0, 0), len: 200, flags: GNTCOPY_SOURCE_GREF, ..Default::default() }, GNTST_BAD_COPY_ARG),
        ("copy_into_readonly_grant", GnttabCopy { source: grant::copy_local(local.mfn.0, 0), dest: grant::copy_gref(peer, ref_b, 0), len: 8, flags: GNTCOPY_DEST_GREF, ..Default::default() }, GNTST_GENERAL_ERROR),
        ("copy_foreign_frame_not_self", GnttabCopy { source: GnttabCopyPtr { u: local.mfn.0, domid: peer, offset: 0, _pad: 0 }, dest: grant::copy_local(local.mfn.0, 0), len: 8, flags: 0, ..Default::default() }, GNTST_PERMISSION_DENIED),
        ("copy_unknown_domain", GnttabCopy { source: grant::copy_gref(NO_DOMAIN, ref_b, 0), dest: grant::copy_local(local.mfn.0, 0), len: 8, flags: GNTCOPY_SOURCE_GREF, ..Default::default() }, GNTST_BAD_DOMAIN),
        ("copy_bad_ref", GnttabCopy { source: grant::copy_gref(peer, 4096, 0), dest: grant::copy_local(local.mfn.0, 0), len: 8, flags: GNTCOPY_SOURCE_GREF, ..Default::default() }, GNTST_BAD_GNTREF),
        ("copy_not_my_frame", GnttabCopy { source: grant::copy_local(1, 0), dest: grant::copy_local(local.mfn.0, 0), len: 8, flags: 0, ..Default::default() }, GNTST_BAD_PAGE),
    ];
    for (name, op, want) in hostile {
        let mut cp = [op];
        let r = grant::copy(&mut cp);
        t.report(name, ensure(r.is_ok() && cp[0].status == want, || format!("{r:?} status {}, want {want}", cp[0].status)));
    }
    halves_and_replace(t, mm, peer, ref_a, ref_b, va_x);
    mailbox(va_c, 0).store(1, core::sync::atomic::Ordering::Release);
    if !wait(|| mailbox(va_c, 1).load(core::sync::atomic::Ordering::Acquire) >= 1) {
        return t.report("granter_stage_1", Err("timed out".into()));
    }
    let mut un = [grant::unmap_op(va_rw, h_rw), grant::unmap_op(va_ro, h_ro)];
    let r = grant::unmap_grants(&mut un);
    t.report("unmap_batch", ensure(r.is_ok() && un.iter().all(|u| u.status == 0), || format!("{r:?} {} {}", un[0].status, un[1].status)));
    t.report("double_unmap", status(grant::unmap_one(va_rw, h_rw).map(|_| 0), GNTST_BAD_HANDLE));
    mailbox(va_c, 0).store(2, core::sync::atomic::Ordering::Release);
    if !wait(|| mailbox(va_c, 1).load(core::sync::atomic::Ordering::Acquire) >= 2) {
        return t.report("granter_stage_2", Err("timed out".into()));
    }
    println!("grant-test: mapper holding page B while the granter is destroyed");
    // The granter is gone once a copy from its grant names an unknown domain.
    let gone = wait(|| {
        let mut cp = [GnttabCopy { source: grant::copy_gref(peer, ref_b, 0), dest: grant::copy_local(local.mfn.0, 0), len: 8, flags: GNTCOPY_SOURCE_GREF, ..Default::default() }];
        grant::copy(&mut cp).is_ok() && cp[0].status == GNTST_BAD_DOMAIN
    });
    t.report("granter_destroyed", ensure(gone, || "still there".into()));
    // Its memory goes back in steps after that (the destroy continues itself): the
    // scenario writes `granter-gone` into this domain's home once the destroy is over,
    // so that the two pages mapped here are the ones it leaves behind.
    let over = pv_guest::xenbus::connect(si).map_err(|e| format!("store: -{}", e.name())).and_then(|mut xs| {
        let me = pv_guest::xenbus::own_domid(&mut xs).map_err(|e| format!("{e:?}"))?;
        pv_guest::xenbus::read_from(&mut xs, me, GONE_NODE, WAIT_NS).map(drop).map_err(|e| format!("{GONE_NODE}: {e:?}"))
    });
    t.report("granter_destroy_over", over);
    t.report("frame_alive_after_granter_destroyed", bytes_are(va_b, 0..4096, pattern_b));
    let mut un = [grant::unmap_op(va_b, h_b), grant::unmap_op(va_c, h_c)];
    let r = grant::unmap_grants(&mut un);
    t.report("unmap_after_granter_destroyed", ensure(r.is_ok() && un.iter().all(|u| u.status == 0), || format!("{r:?} {} {}", un[0].status, un[1].status)));
    println!("grant-test: mapper done");
}

fn main(si: &'static StartInfo) -> ShutdownReason {
    let line = cmdline(si);
    let mut role = None;
    let mut peer = None;
    for w in line.split_whitespace() {
        match w.split_once('=') {
            Some(("role", r)) => role = Some(r),
            Some(("peer", p)) => peer = p.parse::<u16>().ok(),
            _ => {}
        }
    }
    let (Some(role), Some(peer)) = (role, peer) else {
        println!("grant-test: bad command line \"{line}\"");
        return ShutdownReason::Crash;
    };
    let mut t = Tests::default();
    // The clock (for the bounded waits) reads the shared info page; the store client needs
    // the event channels.
    if let Err(e) = pv_guest::events::init(si) {
        t.report("events_init", Err(format!("{e:?}")));
        t.done();
        return ShutdownReason::Crash;
    }
    let mut mm = match GuestMm::init(si, None) {
        Ok(mm) => mm,
        Err(e) => {
            t.report("mm_init", Err(format!("{e}")));
            t.done();
            return ShutdownReason::Crash;
        }
    };
    match role {
        "granter" => granter(&mut t, si, &mut mm, peer),
        "mapper" => mapper(&mut t, si, &mut mm, peer),
        _ => {
            println!("grant-test: bad command line \"{line}\"");
            return ShutdownReason::Crash;
        }
    }
    t.done();
    ShutdownReason::Poweroff
}

pv_guest::entry!(main);
