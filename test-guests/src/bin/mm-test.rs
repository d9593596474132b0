//! mm-test: the guest side of direct paging, end to end (run as dom0).
//!
//! Builds a fresh 4-level address space that maps thousands of pages in the lower half
//! (crossing L2, L3 and L4 boundaries) through batched `pt_update`s, switches to it,
//! writes and reads a pattern in every page, checks an alias and the read-only view of its
//! own tables, switches back and tears it down, and checks the hypervisor's frame
//! accounting (`SYSCTL_MEMSTATS`) is back where it started. Then: a `decrease_reservation`
//! / `populate_physmap` round trip, `update_va_mapping`, a `multicall` of
//! `update_va_mapping`s, `vm_assist`, and the emulated `mov from cr3` and forced `cpuid`.
//!
//! Prints `TEST <name> PASS|FAIL <why>` lines, `NOTE ...` lines, then
//! `TESTS DONE <p> passed, <f> failed`, and powers off.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::vec::Vec;
use core::ptr;

use pv_guest::hypercall;
use pv_guest::hypercall_abi::arch::{
    VMASST_CMD_ENABLE, VMASST_TYPE_M2P_STRICT, VMASST_TYPE_WRITABLE_PAGETABLES,
};
use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::hypercall_abi::hypercall::Hypercall;
use pv_guest::hypercall_abi::mmu::{MulticallEntry, UVMF_INVLPG, UVMF_TLB_FLUSH};
use pv_guest::hypercall_abi::sysctl::MemStats;
use pv_guest::hypercall_abi::types::{Mfn, INVALID_MFN};
use pv_guest::mm::xen::{
    self, cpuid_forced, current_reservation, memstats, read_cr3, update_va_mapping_raw,
    vm_assist_raw, GuestMm, XenMmu,
};
use pv_guest::mm::{
    make_entry, table_index, AddressSpace, Frame, MmError, DATA_RW_FLAGS, PAGE_SIZE,
};
use pv_guest::testing::{ensure, expect_ret, Outcome, Tests};
use pv_guest::{println, StartInfo};

/// The test range: 8 MiB below the 512 GiB line, so it crosses an L4 entry (and with it
/// L3 and L2 entries).
const TEST_BASE: u64 = (1 << 39) - (8 << 20);
/// Pages mapped in the range (at least 4096).
const TEST_PAGES: u64 = 4096 + 512;
/// Two addresses that map one frame (far apart: different L2s and L3s).
const ALIAS_A: u64 = 0x10_0000_0000;
const ALIAS_B: u64 = 0x20_4020_0000;
/// Where the new L4 is mapped read-only in the new space.
const TABLE_VIEW: u64 = 0x30_0000_0000;

/// The value of word `word` of test page `page`: distinct for every page and word.
fn pattern(page: u64, word: u64) -> u64 {
    (page << 32) ^ word.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5a5a_0000_0000_a5a5
}

/// Fills `pages` pages from `base` with the pattern and reads every word back.
fn write_and_check(base: u64, pages: u64) -> Outcome {
    for page in 0..pages {
        let p = (base + page * PAGE_SIZE) as *mut u64;
        for word in 0..512 {
            // SAFETY: the caller has `pages` pages at `base` mapped writable to frames that
            // hold nothing else.
            unsafe { ptr::write_volatile(p.add(word as usize), pattern(page, word)) };
        }
    }
    for page in 0..pages {
        let p = (base + page * PAGE_SIZE) as *const u64;
        for word in 0..512 {
            // SAFETY: as above.
            let got = unsafe { ptr::read_volatile(p.add(word as usize)) };
            if got != pattern(page, word) {
                return Err(format!(
                    "page {page} word {word}: read {got:#x}, wrote {:#x}",
                    pattern(page, word)
                ));
            }
        }
    }
    Ok(())
}

fn mm_err(e: MmError) -> alloc::string::String {
    format!("{e}")
}

/// Builds, switches to, checks and tears down a whole address space.
fn address_space(t: &mut Tests, mm: &mut GuestMm) {
    let before = memstats();
    let boot = mm.boot_l4();
    let Some(kernel_entry) = mm.boot_l4_entry(pv_guest::start_info::virt_base()) else {
        t.report(
            "as_build",
            Err(format!(
                "cannot read the bootstrap L4 (mfn {:#x})",
                boot.mfn.0
            )),
        );
        return;
    };
    let kernel_slot = table_index(pv_guest::start_info::virt_base(), 4);

    // Data frames for the range and the alias: frames mapped nowhere.
    let mut data: Vec<Frame> = Vec::with_capacity(TEST_PAGES as usize + 1);
    for _ in 0..=TEST_PAGES {
        match mm.alloc_frame() {
            Some(f) => data.push(f),
            None => {
                t.report("as_build", Err(format!("only {} free frames", data.len())));
                data.into_iter().for_each(|f| mm.free(f));
                return;
            }
        }
    }
    let alias = data[TEST_PAGES as usize];
    let mut mmu = XenMmu;

    let built = (|| -> Result<AddressSpace, MmError> {
        let mut frames = mm.table_frames();
        let mut space = AddressSpace::new(&mut frames)?;
        space.share_slot(&mut mmu, kernel_slot, kernel_entry)?;
        for (i, f) in data.iter().take(TEST_PAGES as usize).enumerate() {
            space.map(
                &mut mmu,
                &mut frames,
                TEST_BASE + i as u64 * PAGE_SIZE,
                f.mfn,
                true,
            )?;
        }
        space.map(&mut mmu, &mut frames, ALIAS_A, alias.mfn, true)?;
        space.map(&mut mmu, &mut frames, ALIAS_B, alias.mfn, true)?;
        let l4 = space.l4().mfn;
        space.map(&mut mmu, &mut frames, TABLE_VIEW, l4, false)?;
        space.pin(&mut mmu)?;
        Ok(space)
    })();
    let mut space = match built {
        Ok(s) => s,
        Err(e) => {
            t.report("as_build", Err(mm_err(e)));
            return;
        }
    };
    let (batches, applied) = space.queue_stats();
    println!(
        "NOTE as: {} mappings, tables L3 {} L2 {} L1 {}, {applied} entries in {batches} pt_update batches",
        space.mappings(),
        space.table_count(3),
        space.table_count(2),
        space.table_count(1)
    );
    t.report(
        "as_build",
        ensure(
            space.table_count(3) == 2 && space.table_count(1) >= 10,
            || {
                format!(
                    "unexpected table counts L3 {} L1 {}",
                    space.table_count(3),
                    space.table_count(1)
                )
            },
        ),
    );
    let pinned = memstats();
    if let (Ok(b), Ok(p)) = (&before, &pinned) {
        t.report(
            "as_pinned_counts",
            ensure(
                p.l4 == b.l4 + 1
                    && p.l3 == b.l3 + 2
                    && p.l1 >= b.l1 + 10
                    && p.pinned == b.pinned + 1 + space.tables().count() as u64,
                || format!("before {b:?} pinned {p:?}"),
            ),
        );
    }

    if let Err(e) = space.activate(&mut mmu) {
        t.report("as_switch", Err(mm_err(e)));
    } else {
        // Everything below runs on the new tables; the kernel's slot is shared, so code,
        // data and stack are where they were.
        let cr3 = read_cr3();
        t.report(
            "as_switch_cr3",
            ensure(cr3 == space.l4().mfn.0 << 12, || {
                format!("cr3 {cr3:#x}, new L4 at {:#x}", space.l4().mfn.0 << 12)
            }),
        );
        t.report("as_pattern", write_and_check(TEST_BASE, TEST_PAGES));
        let (a, b) = (ALIAS_A as *mut u64, ALIAS_B as *mut u64);
        // SAFETY: both addresses map the alias frame writable in this space.
        let (seen, back) = unsafe {
            ptr::write_volatile(a.add(7), 0x1111_2222_3333_4444);
            let seen = ptr::read_volatile(b.add(7));
            ptr::write_volatile(b.add(9), 0x5555_6666_7777_8888);
            (seen, ptr::read_volatile(a.add(9)))
        };
        let alias_check = ensure(
            seen == 0x1111_2222_3333_4444 && back == 0x5555_6666_7777_8888,
            || format!("through B saw {seen:#x}, through A saw {back:#x}"),
        );
        t.report("as_alias", alias_check);
        // The new L4, mapped read-only: the kernel's slot is the bootstrap entry, and
        // slot 0 points at the first L3 the builder made.
        let view = TABLE_VIEW as *const u64;
        // SAFETY: TABLE_VIEW maps the new L4 read-only in this space.
        let (slot_k, slot_0) = unsafe {
            (
                ptr::read_volatile(view.add(kernel_slot)),
                ptr::read_volatile(view),
            )
        };
        let l3_0 = space.table_for(3, TEST_BASE).map(|f| f.mfn);
        t.report(
            "as_tables_read_only_view",
            ensure(
                slot_k & !0x60 == kernel_entry & !0x60
                    && Some(pv_guest::mm::entry_mfn(slot_0)) == l3_0,
                || format!("slot {kernel_slot} {slot_k:#x} (want {kernel_entry:#x}), slot 0 {slot_0:#x}"),
            ),
        );
        let back = space.deactivate(&mut mmu, boot.mfn).map_err(mm_err);
        let cr3 = read_cr3();
        t.report(
            "as_switch_back",
            back.and_then(|_| {
                ensure(cr3 == boot.mfn.0 << 12, || {
                    format!("cr3 {cr3:#x} after switching back")
                })
            }),
        );
    }

    let torn = {
        let mut frames = mm.table_frames();
        space.teardown(&mut mmu, &mut frames).map_err(mm_err)
    };
    t.report("as_teardown", torn);
    data.into_iter().for_each(|f| mm.free(f));
    let after = memstats();
    t.report("as_memstats_restored", compare_stats(&before, &after));
}

fn compare_stats(before: &Result<MemStats, Errno>, after: &Result<MemStats, Errno>) -> Outcome {
    match (before, after) {
        (Ok(b), Ok(a)) => ensure(a == b, || format!("before {b:?} after {a:?}")),
        _ => Err(format!("SYSCTL_MEMSTATS: {before:?} / {after:?}")),
    }
}

/// decrease_reservation, then populate_physmap for the same pfn.
fn reservation(t: &mut Tests, mm: &mut GuestMm) {
    let Some(frame) = mm.alloc_frame() else {
        t.report("reservation_round_trip", Err("no free frame".into()));
        return;
    };
    mm.free(frame);
    let tot_before = current_reservation();
    let stats_before = memstats();
    let old = mm.give_back(frame.pfn);
    let tot_mid = current_reservation();
    let stats_mid = memstats();
    let m2p_old = mm.m2p.get(frame.mfn);
    t.report(
        "reservation_decrease",
        match (&old, &tot_before, &tot_mid) {
            (Ok(mfn), Ok(b), Ok(m)) => ensure(
                *mfn == frame.mfn
                    && *m + 1 == *b
                    && mm.p2m.mfn(frame.pfn).is_none()
                    && m2p_old == Some(INVALID_MFN),
                || format!("tot_pages {b} -> {m}, m2p[old mfn] {m2p_old:x?}"),
            ),
            _ => Err(format!(
                "decrease {old:?}, current_reservation {tot_before:?} / {tot_mid:?}"
            )),
        },
    );
    if let (Ok(b), Ok(m)) = (&stats_before, &stats_mid) {
        t.report(
            "reservation_memstats",
            ensure(
                m.owned + 1 == b.owned && m.released == b.released + 1,
                || format!("before {b:?} after decrease {m:?}"),
            ),
        );
    }
    if old.is_err() {
        return;
    }
    let new = mm.reclaim(frame.pfn);
    let tot_after = current_reservation();
    t.report(
        "reservation_populate",
        match (&new, &tot_after) {
            (Ok(mfn), Ok(a)) => {
                let m2p = mm.m2p.get(*mfn);
                ensure(
                    Ok(*a) == tot_before
                        && mm.p2m.mfn(frame.pfn) == Some(*mfn)
                        && m2p == Some(frame.pfn.0),
                    || {
                        format!(
                            "tot_pages {a} (was {tot_before:?}), m2p[{:#x}] = {m2p:x?}",
                            mfn.0
                        )
                    },
                )
            }
            _ => Err(format!(
                "populate {new:?}, current_reservation {tot_after:?}"
            )),
        },
    );
    // The reclaimed frame is usable: map it and write through the mapping.
    if let Ok(mfn) = new {
        t.report("reservation_frame_usable", use_frame(mm, mfn));
    }
}

/// Maps `mfn` over a padding page with update_va_mapping, writes and reads it, and puts the
/// padding page back.
fn use_frame(mm: &mut GuestMm, mfn: Mfn) -> Outcome {
    let (scratch, va) = mm.alloc_mapped().ok_or("no padding page")?;
    let ret = update_va_mapping_raw(va, make_entry(mfn, DATA_RW_FLAGS), UVMF_INVLPG);
    let mut result = expect_ret(ret, 0);
    if result.is_ok() {
        // SAFETY: `va` now maps `mfn`, a free frame of ours, writable.
        let seen = unsafe {
            ptr::write_volatile(va as *mut u64, 0xfeed_f00d);
            ptr::read_volatile(va as *const u64)
        };
        result = ensure(seen == 0xfeed_f00d, || format!("read {seen:#x}"));
    }
    let ret = update_va_mapping_raw(va, make_entry(scratch.mfn, DATA_RW_FLAGS), UVMF_INVLPG);
    mm.free(scratch);
    result.and(expect_ret(ret, 0))
}

/// update_va_mapping with UVMF_INVLPG and UVMF_TLB_FLUSH changes what an address shows.
fn va_mapping(t: &mut Tests, mm: &mut GuestMm) {
    let (Some((fa, va)), Some((fb, vb))) = (mm.alloc_mapped(), mm.alloc_mapped()) else {
        t.report("update_va_mapping_invlpg", Err("no padding pages".into()));
        return;
    };
    // SAFETY: both are free padding pages of the initial region, mapped writable.
    unsafe {
        ptr::write_volatile(va as *mut u64, 0xaaaa);
        ptr::write_volatile(vb as *mut u64, 0xbbbb);
    }
    let read = |addr: u64| {
        // SAFETY: `addr` is one of the two padding pages, mapped to a frame of ours.
        unsafe { ptr::read_volatile(addr as *const u64) }
    };
    for (name, flags) in [
        ("update_va_mapping_invlpg", UVMF_INVLPG),
        ("update_va_mapping_tlb_flush", UVMF_TLB_FLUSH),
    ] {
        let first = read(va);
        let r1 = update_va_mapping_raw(va, make_entry(fb.mfn, DATA_RW_FLAGS), flags);
        let swapped = read(va);
        let r2 = update_va_mapping_raw(va, make_entry(fa.mfn, DATA_RW_FLAGS), flags);
        let restored = read(va);
        t.report(
            name,
            expect_ret(r1, 0).and(expect_ret(r2, 0)).and(ensure(
                first == 0xaaaa && swapped == 0xbbbb && restored == 0xaaaa,
                || format!("read {first:#x}, {swapped:#x} after the remap, {restored:#x} after restoring"),
            )),
        );
    }
    mm.free(fa);
    mm.free(fb);
}

fn uvm_entry(va: u64, val: u64, flags: u64) -> MulticallEntry {
    MulticallEntry {
        op: Hypercall::UpdateVaMapping as u64,
        result: 0x5555,
        args: [va, val, flags, 0, 0, 0],
    }
}

/// A multicall of update_va_mappings: every entry runs and carries its own result.
fn multicall(t: &mut Tests, mm: &mut GuestMm) {
    let mut pages = Vec::new();
    for _ in 0..4 {
        match mm.alloc_mapped() {
            Some(p) => pages.push(p),
            None => {
                t.report(
                    "multicall_update_va_mapping",
                    Err("no padding pages".into()),
                );
                return;
            }
        }
    }
    for (i, (_, va)) in pages.iter().enumerate() {
        // SAFETY: free padding pages of ours, mapped writable.
        unsafe { ptr::write_volatile(*va as *mut u64, 0x100 + i as u64) };
    }
    let read = |va: u64| {
        // SAFETY: as above; the multicall only moves these pages among our frames.
        unsafe { ptr::read_volatile(va as *const u64) }
    };
    // Rotate: page i shows frame i+1.
    let mut entries: Vec<MulticallEntry> = (0..4)
        .map(|i| {
            uvm_entry(
                pages[i].1,
                make_entry(pages[(i + 1) % 4].0.mfn, DATA_RW_FLAGS),
                UVMF_INVLPG,
            )
        })
        .collect();
    // SAFETY: update_va_mapping of our own padding pages to our own frames.
    let ret = unsafe { xen::multicall_raw(&mut entries) };
    let seen: Vec<u64> = pages.iter().map(|p| read(p.1)).collect();
    t.report(
        "multicall_update_va_mapping",
        expect_ret(ret, 0).and(ensure(
            entries.iter().all(|e| e.result == 0) && seen == [0x101, 0x102, 0x103, 0x100],
            || {
                format!(
                    "results {:?}, pages read {seen:x?}",
                    entries.iter().map(|e| e.result as i64).collect::<Vec<_>>()
                )
            },
        )),
    );
    // Put them back, with a refused entry in the middle (a page table mapped writable):
    // its own result says so and the entries after it still run, as in Xen.
    let l4 = mm.boot_l4().mfn;
    let mut entries = alloc::vec![
        uvm_entry(
            pages[0].1,
            make_entry(pages[0].0.mfn, DATA_RW_FLAGS),
            UVMF_INVLPG
        ),
        uvm_entry(
            pages[1].1,
            make_entry(pages[1].0.mfn, DATA_RW_FLAGS),
            UVMF_INVLPG
        ),
        uvm_entry(pages[2].1, make_entry(l4, DATA_RW_FLAGS), UVMF_INVLPG),
        uvm_entry(
            pages[2].1,
            make_entry(pages[2].0.mfn, DATA_RW_FLAGS),
            UVMF_INVLPG
        ),
        uvm_entry(
            pages[3].1,
            make_entry(pages[3].0.mfn, DATA_RW_FLAGS),
            UVMF_TLB_FLUSH
        ),
    ];
    // SAFETY: as above; the refused entry changes nothing.
    let ret = unsafe { xen::multicall_raw(&mut entries) };
    let seen: Vec<u64> = pages.iter().map(|p| read(p.1)).collect();
    let results: Vec<i64> = entries.iter().map(|e| e.result as i64).collect();
    t.report(
        "multicall_results_per_entry",
        expect_ret(ret, 0).and(ensure(
            results[..2] == [0, 0]
                && results[2] == Errno::EBUSY.to_ret()
                && results[3..] == [0, 0]
                && seen == [0x100, 0x101, 0x102, 0x103],
            || format!("results {results:?}, pages read {seen:x?}"),
        )),
    );
    pages.into_iter().for_each(|(f, _)| mm.free(f));
}

fn vm_assist(t: &mut Tests, mm: &mut GuestMm) {
    t.report(
        "vm_assist_m2p_strict",
        expect_ret(vm_assist_raw(VMASST_CMD_ENABLE, VMASST_TYPE_M2P_STRICT), 0),
    );
    t.report(
        "vm_assist_writable_pagetables",
        expect_ret(vm_assist_raw(VMASST_CMD_ENABLE, VMASST_TYPE_WRITABLE_PAGETABLES), 0),
    );
    t.report("writable_pagetables_direct_write", writable_pagetables_write(mm));
}

/// With the writable page-table assist, a plain store to one of our own L1 entries (mapped
/// read-only in the initial region) is carried out by the hypervisor: a padding page is
/// made read-only and back again by writing its entry directly, each change read back
/// from the table.
fn writable_pagetables_write(mm: &mut GuestMm) -> Outcome {
    let (frame, va) = mm.alloc_mapped().ok_or("no padding page")?;
    let l1 = mm.boot_table_for(1, va).ok_or("no L1 maps the padding page")?;
    let index = pv_guest::mm::table_index(va, 1);
    let l1_pfn = mm.m2p.get(l1).ok_or("L1 not in the M2P")?;
    let l1_va = mm.va_of(pv_guest::hypercall_abi::types::Pfn(l1_pfn)).ok_or("L1 not in the initial region")?;
    let entry_va = l1_va + 8 * index as u64;
    let read_entry = |mm: &GuestMm| mm.read_table(l1).map(|t| t[index]).unwrap_or(0);
    let before = read_entry(mm);
    // SAFETY: `entry_va` is our own L1 entry for `va`, mapped read-only; the store faults
    // into the hypervisor, which validates and carries it out (the entry keeps mapping
    // our own padding frame, read-only now); nothing reads `va` meanwhile.
    unsafe { ptr::write_volatile(entry_va as *mut u64, before & !2) };
    let read_only = read_entry(mm);
    // SAFETY: as above, making the entry writable again (the frame is plain data).
    unsafe { ptr::write_volatile(entry_va as *mut u64, before) };
    let restored = read_entry(mm);
    mm.free(frame);
    ensure(
        read_only == before & !2 && restored == before && before & 2 != 0,
        || format!("entry {before:#x}, after clearing RW {read_only:#x}, restored {restored:#x}"),
    )
}

fn emulation(t: &mut Tests, mm: &GuestMm) {
    let cr3 = read_cr3();
    let l4 = mm.boot_l4().mfn.0 << 12;
    t.report(
        "mov_from_cr3",
        ensure(cr3 == l4, || {
            format!("cr3 {cr3:#x}, pt_base frame at {l4:#x}")
        }),
    );
    let [eax, ebx, ecx, edx] = cpuid_forced(0x4000_0000, 0);
    let mut sig = [0u8; 12];
    sig[..4].copy_from_slice(&ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&ecx.to_le_bytes());
    sig[8..].copy_from_slice(&edx.to_le_bytes());
    t.report(
        "cpuid_forced_signature",
        ensure(&sig == b"XenVMMXenVMM" && eax >= 0x4000_0002, || {
            format!(
                "signature {:?}, max leaf {eax:#x}",
                core::str::from_utf8(&sig)
            )
        }),
    );
    let [version, ..] = cpuid_forced(0x4000_0001, 0);
    t.report(
        "cpuid_forced_version",
        ensure(version == (4 << 16) | 19, || format!("eax {version:#x}")),
    );
}

fn main(si: &'static StartInfo) {
    let mut t = Tests::default();
    let max_mfn = hypercall::physinfo().map(|p| p.max_mfn).ok();
    let mut mm = match GuestMm::init(si, max_mfn) {
        Ok(mm) => mm,
        Err(e) => {
            t.report("mm_init", Err(format!("{e}")));
            t.done();
            return;
        }
    };
    println!(
        "NOTE layout: {} pages, tables at pfn {:#x} (+{}), region ends at pfn {:#x}, {} frames free ({} unmapped)",
        mm.layout.nr_pages,
        mm.layout.pt_pfn,
        mm.layout.nr_pt_frames,
        mm.layout.region_end_pfn,
        mm.frames.free_count(),
        mm.frames.free_unmapped()
    );
    emulation(&mut t, &mm);
    address_space(&mut t, &mut mm);
    reservation(&mut t, &mut mm);
    va_mapping(&mut t, &mut mm);
    multicall(&mut t, &mut mm);
    vm_assist(&mut t, &mut mm);
    t.done();
}

pv_guest::entry!(main);
