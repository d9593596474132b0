//! mm-hostile: tries every forbidden page-table operation and checks the exact errno (run
//! as dom0), then proves the domain still works.
//!
//! The errnos are Xen's (`xen/arch/x86/mm.c`): a frame whose type cannot be taken for the
//! mapping asked (a page table mapped writable, a frame of someone else) is `-EBUSY`
//! (`get_page_from_l1e`'s `could_not_pin`); bad flags, a hypervisor slot, a type conflict
//! in a table entry or a pin, pinning twice and a base pointer that is not a valid L4 are
//! `-EINVAL`; an unknown `pt_update` command (a pointer not 8-byte aligned reads as one) is
//! `-ENOSYS`; a frame number past what the machine can address is `-EINVAL`. (The frame
//! right after the last RAM frame is not one: it is a hole or firmware-reserved, which is
//! device memory that dom0 may map, as in Xen; the guest checks that too.)
//! After every refusal the entry it aimed at is checked unchanged, and at the end the
//! frame accounting (`SYSCTL_MEMSTATS`) must equal what it was at the start.
//!
//! A plain `mov cr3, rax` write is left to the `fault` guest: it kills the domain.
//!
//! Prints `TEST <name> PASS|FAIL <why>` lines, then `TESTS DONE <p> passed, <f> failed`, and
//! powers off.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::ptr;

use pv_guest::hypercall;
use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::hypercall_abi::layout::pte;
use pv_guest::hypercall_abi::mmu::{
    MmuUpdate, MMUEXT_CLEAR_PAGE, MMUEXT_MARK_SUPER, MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L2_TABLE,
    MMUEXT_PIN_L4_TABLE, MMUEXT_UNPIN_TABLE, MMU_MACHPHYS_UPDATE, UVMF_INVLPG,
};
use pv_guest::hypercall_abi::types::{Mfn, INVALID_MFN};
use pv_guest::mm::xen::{
    memstats, mmuext_raw, pt_update_raw, read_cr3, update_va_mapping_raw, GuestMm,
};
use pv_guest::mm::{
    canonical, entry_maddr, entry_mfn, ext_op, make_entry, table_index, Frame, DATA_RO_FLAGS,
    DATA_RW_FLAGS, TABLE_FLAGS,
};
use pv_guest::testing::{describe, ensure, expect_ret, Outcome, Tests};
use pv_guest::{println, StartInfo};

const EINVAL: i64 = Errno::EINVAL.to_ret();
const EBUSY: i64 = Errno::EBUSY.to_ret();
const ENOSYS: i64 = Errno::ENOSYS.to_ret();
const EOPNOTSUPP: i64 = Errno::EOPNOTSUPP.to_ret();

/// A top-level slot nothing uses (not the hypervisor's 256..=271, not the kernel's 511).
const FREE_SLOT: usize = 300;
/// Bits of an entry the CPU may change on its own (accessed, dirty).
const AD: u64 = pte::ACCESSED | pte::DIRTY;

/// A padding page of the initial region and the entry that maps it.
#[derive(Clone, Copy)]
struct Scratch {
    frame: Frame,
    va: u64,
    l1: Mfn,
    /// Machine address of its L1 entry.
    pte: u64,
}

fn scratch(mm: &mut GuestMm) -> Option<Scratch> {
    let (frame, va) = mm.alloc_mapped()?;
    let l1 = mm.boot_table_for(1, va)?;
    Some(Scratch {
        frame,
        va,
        l1,
        pte: entry_maddr(l1, table_index(va, 1)),
    })
}

/// The current value of `s`'s L1 entry, read through the read-only bootstrap tables.
fn entry_of(mm: &GuestMm, s: &Scratch) -> u64 {
    mm.read_table(s.l1)
        .map_or(u64::MAX, |t| t[table_index(s.va, 1)])
}

/// One `pt_update` request that must be refused with `want` and change nothing.
fn refused(ptr: u64, val: u64, want: i64) -> Outcome {
    let (ret, done) = pt_update_raw(&[MmuUpdate { ptr, val }]);
    expect_ret(ret, want).and(ensure(done == 0, || format!("done {done}, want 0")))
}

/// One `mmuext_op` that must return `want`.
fn ext(cmd: u32, arg1: u64, want: i64) -> Outcome {
    let (ret, done) = mmuext_raw(&[ext_op(cmd, arg1)]);
    let want_done = u32::from(want == 0);
    expect_ret(ret, want).and(ensure(done == want_done, || {
        format!("done {done}, want {want_done}")
    }))
}

/// The entry `s` had at start, unchanged (but for the A/D bits the CPU sets).
fn unchanged(mm: &GuestMm, s: &Scratch, before: u64) -> Outcome {
    let now = entry_of(mm, s);
    ensure(now & !AD == before & !AD, || {
        format!("entry changed {before:#x} -> {now:#x}")
    })
}

/// A machine frame this domain does not own: past our highest frame (or below our lowest),
/// above the first MiB, below `max_mfn`, with an invalid M2P entry.
fn foreign_mfn(mm: &GuestMm, max_mfn: u64, shared_info: u64) -> Option<Mfn> {
    let ours = mm.p2m.max_mfn().0;
    let candidate = |m: u64| {
        m != shared_info && mm.m2p.get(Mfn(m)) == Some(INVALID_MFN) && !mm.p2m.owns(Mfn(m))
    };
    (ours + 1..max_mfn)
        .find(|&m| candidate(m))
        .or_else(|| (0x100..max_mfn).rev().find(|&m| candidate(m)))
        .map(Mfn)
}

fn run(t: &mut Tests, mm: &mut GuestMm, si: &StartInfo, max_mfn: u64) -> Result<(), String> {
    let l4 = mm.boot_l4().mfn;
    let a = scratch(mm).ok_or("no padding page")?;
    let b = scratch(mm).ok_or("no padding page")?;
    let c = scratch(mm).ok_or("no padding page")?;
    let (ea, eb, ec) = (entry_of(mm, &a), entry_of(mm, &b), entry_of(mm, &c));
    println!(
        "NOTE L4 mfn {:#x}, scratch pages at {:#x} {:#x} {:#x} (L1 mfn {:#x}), max_mfn {max_mfn:#x}",
        l4.0, a.va, b.va, c.va, a.l1.0
    );

    // A page-table frame mapped writable: the L4, and the L1 that maps the scratch page.
    t.report(
        "pt_frame_writable_l4",
        refused(a.pte, make_entry(l4, DATA_RW_FLAGS), EBUSY).and(unchanged(mm, &a, ea)),
    );
    t.report(
        "pt_frame_writable_l1",
        refused(a.pte, make_entry(a.l1, DATA_RW_FLAGS), EBUSY).and(unchanged(mm, &a, ea)),
    );
    // Read-only is how page tables are mapped: allowed, and it shows the table.
    let ro = update_va_mapping_raw(a.va, make_entry(a.l1, DATA_RO_FLAGS), UVMF_INVLPG);
    let seen = if ro == 0 {
        // SAFETY: a.va now maps the L1 table read-only; entry `index` of it is a u64.
        unsafe { ptr::read_volatile((a.va as *const u64).add(table_index(a.va, 1))) }
    } else {
        0
    };
    let back = update_va_mapping_raw(a.va, ea & !AD, UVMF_INVLPG);
    t.report(
        "pt_frame_read_only_allowed",
        expect_ret(ro, 0).and(expect_ret(back, 0)).and(ensure(
            entry_mfn(seen) == a.l1 && seen & pte::RW == 0,
            || format!("read entry {seen:#x} through the view"),
        )),
    );

    // A frame the domain does not own.
    match foreign_mfn(mm, max_mfn, si.shared_info >> 12) {
        Some(m) => {
            println!("NOTE foreign mfn {:#x}", m.0);
            t.report(
                "foreign_frame",
                refused(a.pte, make_entry(m, DATA_RW_FLAGS), EBUSY).and(unchanged(mm, &a, ea)),
            );
            t.report(
                "foreign_frame_read_only",
                refused(a.pte, make_entry(m, DATA_RO_FLAGS), EBUSY).and(unchanged(mm, &a, ea)),
            );
            t.report(
                "foreign_frame_machphys_update",
                refused(m.0 << 12 | MMU_MACHPHYS_UPDATE, 5, EINVAL),
            );
        }
        None => t.report(
            "foreign_frame",
            Err("found no frame that is not ours".into()),
        ),
    }

    // The hypervisor's slots of the L4: 256 holds the M2P the next check reads.
    t.report(
        "hypervisor_slot_clear",
        refused(entry_maddr(l4, 256), 0, EINVAL),
    );
    t.report(
        "hypervisor_slot_map",
        refused(
            entry_maddr(l4, 261),
            make_entry(a.frame.mfn, DATA_RW_FLAGS),
            EINVAL,
        ),
    );
    t.report(
        "hypervisor_slot_intact",
        ensure(mm.m2p.get(a.frame.mfn) == Some(a.frame.pfn.0), || {
            format!("m2p[{:#x}] = {:x?}", a.frame.mfn.0, mm.m2p.get(a.frame.mfn))
        }),
    );

    // Linear (self-referencing) entries: writable refused, read-only allowed.
    let l4_table = mm.read_table(l4).ok_or("cannot read the L4")?;
    if l4_table[FREE_SLOT] != 0 {
        return Err(format!("L4 slot {FREE_SLOT} is in use"));
    }
    t.report(
        "linear_writable",
        refused(
            entry_maddr(l4, FREE_SLOT),
            make_entry(l4, TABLE_FLAGS),
            EINVAL,
        ),
    );
    let (ret, _) = pt_update_raw(&[MmuUpdate {
        ptr: entry_maddr(l4, FREE_SLOT),
        val: make_entry(l4, pte::PRESENT | pte::USER | pte::ACCESSED),
    }]);
    let linear_view = if ret == 0 {
        let s = FREE_SLOT as u64;
        let va = canonical((s << 39) | (s << 30) | (s << 21) | (s << 12));
        // SAFETY: the read-only linear entry maps the L4 itself at `va` (all four indices
        // FREE_SLOT); entry 511 is a u64 inside it.
        unsafe { ptr::read_volatile((va as *const u64).add(511)) }
    } else {
        0
    };
    let (cleared, _) = pt_update_raw(&[MmuUpdate {
        ptr: entry_maddr(l4, FREE_SLOT),
        val: 0,
    }]);
    t.report(
        "linear_read_only_allowed",
        expect_ret(ret, 0).and(expect_ret(cleared, 0)).and(ensure(
            linear_view & !AD == l4_table[511] & !AD,
            || {
                format!(
                    "slot 511 through the linear map {linear_view:#x}, want {:#x}",
                    l4_table[511]
                )
            },
        )),
    );

    // A writable superpage in the L2 that maps the kernel.
    let l2 = mm.boot_table_for(2, a.va).ok_or("no L2")?;
    let l2_table = mm.read_table(l2).ok_or("cannot read the L2")?;
    let free = (0..512)
        .rev()
        .find(|&i| l2_table[i] == 0)
        .ok_or("L2 has no free entry")?;
    let big = Mfn(a.frame.mfn.0 & !511);
    t.report(
        "superpage_writable",
        refused(
            entry_maddr(l2, free),
            make_entry(big, DATA_RW_FLAGS | pte::PSE),
            EINVAL,
        ),
    );

    // Unpinning the table in use is allowed (the base pointer still holds it) but it stays
    // a table; pin it again, and a second pin is refused.
    t.report("unpin_current_l4", ext(MMUEXT_UNPIN_TABLE, l4.0, 0));
    t.report(
        "unpinned_l4_still_not_writable",
        refused(a.pte, make_entry(l4, DATA_RW_FLAGS), EBUSY).and(unchanged(mm, &a, ea)),
    );
    t.report("repin_current_l4", ext(MMUEXT_PIN_L4_TABLE, l4.0, 0));
    t.report("pin_twice", ext(MMUEXT_PIN_L4_TABLE, l4.0, EINVAL));
    t.report("pin_wrong_level", ext(MMUEXT_PIN_L2_TABLE, a.l1.0, EINVAL));
    t.report(
        "unpin_not_pinned",
        ext(MMUEXT_UNPIN_TABLE, a.frame.mfn.0, EINVAL),
    );
    t.report(
        "mark_super_refused",
        ext(MMUEXT_MARK_SUPER, big.0, EOPNOTSUPP),
    );
    t.report("unknown_mmuext_op", ext(14, a.frame.mfn.0, ENOSYS));

    // Past the end of memory: the last frame an entry can name, beyond any machine's
    // physical address width (Xen refuses it with -EINVAL as INVALID_MFN; the microkernel
    // bounds every frame number by the CPU's address width first).
    t.report(
        "mfn_past_end_of_memory",
        refused(
            a.pte,
            make_entry(Mfn(pte::ADDR_MASK >> 12), DATA_RW_FLAGS),
            EINVAL,
        )
        .and(unchanged(mm, &a, ea)),
    );
    // The frame after the last RAM frame (physinfo's max_mfn + 1) is not RAM: a hole or
    // firmware-reserved memory, which counts as device memory and dom0 may map, as in Xen
    // (an unprivileged domain would get -EPERM). Mapped read-only, never touched, put back.
    let device = update_va_mapping_raw(
        a.va,
        make_entry(Mfn(max_mfn + 1), DATA_RO_FLAGS),
        UVMF_INVLPG,
    );
    let back = update_va_mapping_raw(a.va, ea & !AD, UVMF_INVLPG);
    t.report(
        "after_last_ram_frame_is_device_memory_for_dom0",
        expect_ret(device, 0)
            .and(expect_ret(back, 0))
            .and(unchanged(mm, &a, ea)),
    );

    // A pointer that is not 8-byte aligned: bits 2:0 are the command, so 4 is unknown.
    t.report(
        "misaligned_pointer",
        refused(a.pte | 4, ea, ENOSYS).and(unchanged(mm, &a, ea)),
    );

    // A batch of three whose middle request is bad: the first applied, done 1, the third not.
    let batch = [
        MmuUpdate {
            ptr: a.pte,
            val: make_entry(b.frame.mfn, DATA_RW_FLAGS),
        },
        MmuUpdate {
            ptr: b.pte,
            val: make_entry(l4, DATA_RW_FLAGS),
        },
        MmuUpdate {
            ptr: c.pte,
            val: make_entry(a.frame.mfn, DATA_RW_FLAGS),
        },
    ];
    let (ret, done) = pt_update_raw(&batch);
    let (na, nb, nc) = (entry_of(mm, &a), entry_of(mm, &b), entry_of(mm, &c));
    t.report(
        "batch_bad_middle",
        expect_ret(ret, EBUSY).and(ensure(
            done == 1
                && na & !AD == batch[0].val & !AD
                && nb & !AD == eb & !AD
                && nc & !AD == ec & !AD,
            || format!("done {done}; entries {na:#x} {nb:#x} {nc:#x}, was {ea:#x} {eb:#x} {ec:#x}"),
        )),
    );
    let restore = update_va_mapping_raw(a.va, ea & !AD, UVMF_INVLPG);
    t.report(
        "batch_first_restored",
        expect_ret(restore, 0).and(unchanged(mm, &a, ea)),
    );

    // A new base pointer that is not a valid L4: a frame mapped writable, and a fresh frame
    // whose contents do not validate (a writable link to itself).
    let cr3 = read_cr3();
    t.report(
        "new_baseptr_writable_frame",
        ext(MMUEXT_NEW_BASEPTR, a.frame.mfn.0, EINVAL)
            .and(ensure(read_cr3() == cr3, || "cr3 changed".into())),
    );
    let fresh = mm.alloc_frame().ok_or("no free frame")?;
    let prepared = ext(MMUEXT_CLEAR_PAGE, fresh.mfn.0, 0).and({
        // A plain frame: pt_update is a (checked) data write into it.
        let (ret, _) = pt_update_raw(&[MmuUpdate {
            ptr: entry_maddr(fresh.mfn, 0),
            val: make_entry(fresh.mfn, TABLE_FLAGS),
        }]);
        expect_ret(ret, 0)
    });
    t.report(
        "new_baseptr_unvalidated",
        prepared
            .and(ext(MMUEXT_NEW_BASEPTR, fresh.mfn.0, EINVAL))
            .and(ext(MMUEXT_PIN_L4_TABLE, fresh.mfn.0, EINVAL))
            .and(ensure(read_cr3() == cr3, || "cr3 changed".into())),
    );
    // Its type fell back: it can be cleared (made writable) again.
    t.report(
        "refused_frame_reusable",
        ext(MMUEXT_CLEAR_PAGE, fresh.mfn.0, 0),
    );
    mm.free(fresh);

    // Still alive: a page maps, shows its frame and unmaps.
    // SAFETY: b.va and c.va are padding pages of ours, mapped writable.
    unsafe {
        ptr::write_volatile(b.va as *mut u64, 0xb0b0);
        ptr::write_volatile(c.va as *mut u64, 0xc0c0);
    }
    let r1 = update_va_mapping_raw(b.va, make_entry(c.frame.mfn, DATA_RW_FLAGS), UVMF_INVLPG);
    // SAFETY: b.va maps c's frame now.
    let seen = unsafe { ptr::read_volatile(b.va as *const u64) };
    let r2 = update_va_mapping_raw(b.va, 0, UVMF_INVLPG);
    let r3 = update_va_mapping_raw(b.va, eb & !AD, UVMF_INVLPG);
    // SAFETY: b.va maps its own frame again.
    let own = unsafe { ptr::read_volatile(b.va as *const u64) };
    t.report(
        "still_works",
        expect_ret(r1, 0)
            .and(expect_ret(r2, 0))
            .and(expect_ret(r3, 0))
            .and(ensure(seen == 0xc0c0 && own == 0xb0b0, || {
                format!("read {seen:#x} through the remap, {own:#x} after")
            })),
    );
    for s in [a, b, c] {
        mm.free(s.frame);
    }
    Ok(())
}

fn main(si: &'static StartInfo) {
    let mut t = Tests::default();
    let max_mfn = match hypercall::physinfo() {
        Ok(p) => p.max_mfn,
        Err(e) => {
            t.report("physinfo", Err(describe(e.to_ret())));
            t.done();
            return;
        }
    };
    let mut mm = match GuestMm::init(si, Some(max_mfn)) {
        Ok(mm) => mm,
        Err(e) => {
            t.report("mm_init", Err(format!("{e}")));
            t.done();
            return;
        }
    };
    let before = memstats();
    if let Err(why) = run(&mut t, &mut mm, si, max_mfn) {
        t.report("setup", Err(why));
    }
    let after = memstats();
    t.report(
        "memstats_unchanged",
        match (&before, &after) {
            (Ok(b), Ok(a)) => ensure(a == b, || format!("before {b:?} after {a:?}")),
            _ => Err(format!("SYSCTL_MEMSTATS: {before:?} / {after:?}")),
        },
    );
    println!("mm-hostile: still running after every refusal");
    t.done();
}

pv_guest::entry!(main);
