//! abi-test: checks the hypercall ABI from inside a guest (run as dom0).
//!
//! Prints one machine-readable line per check, `TEST <name> PASS` or
//! `TEST <name> FAIL <why>`, then `TESTS DONE <passed> passed, <failed> failed`, and powers
//! off. Informational lines start with `NOTE `.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::ptr;

use pv_guest::hypercall::{self, hypercall_via_page, xen_version_raw};
use pv_guest::hypercall_abi::console_io::CONSOLEIO_WRITE;
use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::hypercall_abi::hypercall::Hypercall;
use pv_guest::hypercall_abi::sched::SCHEDOP_YIELD;
use pv_guest::hypercall_abi::start_info::{SIF_INITDOMAIN, SIF_PRIVILEGED};
use pv_guest::hypercall_abi::sysctl::{
    PhysInfo, Sysctl, BENCH_DIRECT_BUILD, BENCH_DIRECT_PTE_WRITES, SYSCTL_PHYSINFO,
};
use pv_guest::hypercall_abi::version::{
    XenCompileInfo, XenFeatureInfo, XENFEAT_DOM0, XENVER_CAPABILITIES, XENVER_CHANGESET,
    XENVER_COMPILE_INFO, XENVER_EXTRAVERSION, XENVER_GET_FEATURES, XENVER_PAGESIZE,
    XENVER_PLATFORM_PARAMETERS, XENVER_VERSION,
};
use pv_guest::start_info::{magic, virt_base};
use pv_guest::{println, StartInfo};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// Where the hypervisor maps the read-only M2P table for guests.
const RO_M2P_BASE: u64 = 0xffff_8000_0000_0000;
/// An address in the hypervisor's direct map (supervisor-only).
const HYPERVISOR_PTR: u64 = 0xffff_8300_0000_0000;
/// A low address nothing maps (abi-test is linked in the top 2 GiB).
const UNMAPPED_PTR: u64 = 0x1000;
/// A non-canonical address.
const NON_CANONICAL_PTR: u64 = 0x0000_8000_0000_0000;
/// Hypercall numbers Xen leaves unassigned or that are out of range.
const UNKNOWN_HYPERCALLS: [u64; 8] = [43, 44, 56, 63, 64, 127, 1000, u64::MAX];
/// The version the microkernel reports: Xen 4.19.
const EXPECTED_VERSION: i64 = (4 << 16) | 19;
/// A sub-op number xen_version does not define.
const UNKNOWN_XENVER_OP: u32 = 64;

const ENOSYS: i64 = Errno::ENOSYS.to_ret();
const EFAULT: i64 = Errno::EFAULT.to_ret();
const EINVAL: i64 = Errno::EINVAL.to_ret();
const EACCES: i64 = Errno::EACCES.to_ret();

type Outcome = Result<(), String>;

#[derive(Default)]
struct Tests {
    passed: u32,
    failed: u32,
}

impl Tests {
    fn report(&mut self, name: &str, outcome: Outcome) {
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("TEST {} PASS", name);
            }
            Err(why) => {
                self.failed += 1;
                println!("TEST {} FAIL {}", name, why);
            }
        }
    }
}

/// Describes a raw return value, with the errno name when it is one.
fn describe(ret: i64) -> String {
    match Errno::from_ret(ret) {
        Some(e) => format!("{} (-{})", ret, e.name()),
        None => format!("{}", ret),
    }
}

fn expect_ret(got: i64, want: i64) -> Outcome {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {}, want {}", describe(got), describe(want)))
    }
}

fn ensure(cond: bool, why: impl FnOnce() -> String) -> Outcome {
    if cond {
        Ok(())
    } else {
        Err(why())
    }
}

/// A field that must be a NUL-terminated string with every byte after the NUL zero (the
/// buffer was prefilled with 0xAA, so this shows every output byte was written).
fn check_c_string(field: &str, bytes: &[u8]) -> Outcome {
    let Some(nul) = bytes.iter().position(|&b| b == 0) else {
        return Err(format!("{field}: no NUL in {} bytes", bytes.len()));
    };
    match bytes[nul..].iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{field}: byte {} after the NUL is {:#04x}, not 0",
            nul + i,
            bytes[nul + i]
        )),
    }
}

fn name_for(nr: u64) -> String {
    if nr == u64::MAX {
        String::from("u64max")
    } else {
        format!("{nr}")
    }
}

fn unknown_hypercalls(t: &mut Tests) {
    for nr in UNKNOWN_HYPERCALLS {
        if nr < hypercall::HYPERCALL_PAGE_SLOTS {
            // SAFETY: unknown hypercalls take no memory arguments; all arguments are 0.
            let ret = unsafe { hypercall_via_page(nr, 0, 0, 0, 0, 0) };
            t.report(
                &format!("unknown_hypercall_page_{}", name_for(nr)),
                expect_ret(ret, ENOSYS),
            );
        }
        // SAFETY: as above, via a direct `syscall`.
        let ret = unsafe { pv_guest::hypercall_abi::raw::hypercall5(nr, 0, 0, 0, 0, 0) };
        t.report(
            &format!("unknown_hypercall_syscall_{}", name_for(nr)),
            expect_ret(ret, ENOSYS),
        );
    }
}

/// Calls xen_version(op) on a buffer prefilled with 0xAA; returns (ret, buffer).
fn version_into<const N: usize>(op: u32) -> (i64, [u8; N]) {
    let mut buf = [0xAAu8; N];
    let ret = hypercall::xen_version(op, &mut buf);
    (ret, buf)
}

fn version_string<const N: usize>(t: &mut Tests, name: &str, op: u32) -> [u8; N] {
    let (ret, buf) = version_into::<N>(op);
    t.report(
        name,
        expect_ret(ret, 0).and_then(|()| check_c_string(name, &buf)),
    );
    buf
}

fn xen_version(t: &mut Tests) {
    // SAFETY: XENVER_version takes no argument.
    let ret = unsafe { xen_version_raw(XENVER_VERSION, ptr::null_mut()) };
    t.report("xen_version_version", expect_ret(ret, EXPECTED_VERSION));

    version_string::<16>(t, "xen_version_extraversion", XENVER_EXTRAVERSION);

    let mut info = [0xAAu8; core::mem::size_of::<XenCompileInfo>()];
    let ret = hypercall::xen_version(XENVER_COMPILE_INFO, &mut info);
    let outcome = expect_ret(ret, 0).and_then(|()| {
        let ci = XenCompileInfo::read_from_bytes(&info[..]).map_err(|_| String::from("size"))?;
        check_c_string("compiler", &ci.compiler)?;
        check_c_string("compile_by", &ci.compile_by)?;
        check_c_string("compile_domain", &ci.compile_domain)?;
        check_c_string("compile_date", &ci.compile_date)
    });
    t.report("xen_version_compile_info", outcome);

    let caps = version_string::<1024>(t, "xen_version_capabilities", XENVER_CAPABILITIES);
    let want = b"xen-3.0-x86_64";
    t.report(
        "xen_version_capabilities_x86_64",
        ensure(caps.windows(want.len()).any(|w| w == want), || {
            format!(
                "\"{}\" lacks xen-3.0-x86_64",
                pv_guest::text::Lossy(pv_guest::text::c_str(&caps))
            )
        }),
    );

    version_string::<64>(t, "xen_version_changeset", XENVER_CHANGESET);

    let mut features = XenFeatureInfo::new_zeroed();
    features.submap_idx = 0;
    features.submap = 0xAAAA_AAAA;
    let ret = hypercall::xen_version(XENVER_GET_FEATURES, features.as_mut_bytes());
    t.report(
        "xen_version_get_features_dom0",
        expect_ret(ret, 0).and_then(|()| {
            ensure(features.submap & (1 << XENFEAT_DOM0) != 0, || {
                format!("submap 0 = {:#x} lacks XENFEAT_dom0", features.submap)
            })
        }),
    );

    let (ret, buf) = version_into::<8>(XENVER_PLATFORM_PARAMETERS);
    let virt_start = u64::from_le_bytes(buf);
    t.report(
        "xen_version_platform_parameters",
        expect_ret(ret, 0).and_then(|()| {
            ensure(virt_start == RO_M2P_BASE, || {
                format!("virt_start = {virt_start:#x}")
            })
        }),
    );

    // SAFETY: XENVER_pagesize takes no argument.
    let ret = unsafe { xen_version_raw(XENVER_PAGESIZE, ptr::null_mut()) };
    t.report("xen_version_pagesize", expect_ret(ret, 4096));

    // SAFETY: an unknown sub-op writes nothing; the argument is null anyway.
    let ret = unsafe { xen_version_raw(UNKNOWN_XENVER_OP, ptr::null_mut()) };
    t.report("xen_version_unknown_op", expect_ret(ret, ENOSYS));
}

/// console_io(cmd, count, buf) with raw arguments.
fn console_io_raw(cmd: u32, count: u64, buf: u64) -> i64 {
    // SAFETY: CONSOLEIO_write only reads guest memory; bad pointers are the point of the
    // tests and must be refused by the hypervisor. Unknown sub-ops touch nothing.
    unsafe {
        hypercall_via_page(
            Hypercall::ConsoleIo as u64,
            u64::from(cmd),
            count,
            buf,
            0,
            0,
        )
    }
}

fn console_io(t: &mut Tests) {
    let line = b"abi-test: console_io write check\n";
    let ret = console_io_raw(CONSOLEIO_WRITE, line.len() as u64, line.as_ptr() as u64);
    // Xen's CONSOLEIO_write returns 0 once everything is written.
    t.report("console_io_write", expect_ret(ret, 0));

    let ret = console_io_raw(CONSOLEIO_WRITE, 0, line.as_ptr() as u64);
    t.report("console_io_write_empty", expect_ret(ret, 0));

    for (name, ptr) in [
        ("console_io_write_hypervisor_ptr", HYPERVISOR_PTR),
        ("console_io_write_unmapped_ptr", UNMAPPED_PTR),
        ("console_io_write_noncanonical_ptr", NON_CANONICAL_PTR),
    ] {
        t.report(
            name,
            expect_ret(console_io_raw(CONSOLEIO_WRITE, 16, ptr), EFAULT),
        );
    }

    let ret = console_io_raw(CONSOLEIO_WRITE, u64::MAX, line.as_ptr() as u64);
    if ret == EFAULT || ret == EINVAL {
        println!(
            "NOTE console_io_write_huge_count returned {}",
            describe(ret)
        );
    }
    t.report(
        "console_io_write_huge_count",
        ensure(ret == EFAULT || ret == EINVAL, || {
            format!("got {}, want -EFAULT or -EINVAL", describe(ret))
        }),
    );

    t.report(
        "console_io_bad_subop",
        expect_ret(console_io_raw(7, 0, 0), ENOSYS),
    );
}

fn sched_op(t: &mut Tests) {
    // SAFETY: SCHEDOP_yield and unknown sched ops take no memory argument.
    let ret = unsafe {
        hypercall_via_page(
            Hypercall::SchedOp as u64,
            u64::from(SCHEDOP_YIELD),
            0,
            0,
            0,
            0,
        )
    };
    t.report("sched_op_yield", expect_ret(ret, 0));
    // SAFETY: as above.
    let ret = unsafe { hypercall_via_page(Hypercall::SchedOp as u64, 99, 0, 0, 0, 0) };
    t.report("sched_op_unknown", expect_ret(ret, ENOSYS));
}

fn sysctl(t: &mut Tests) {
    let outcome = match hypercall::physinfo() {
        Err(e) => Err(format!("sysctl physinfo failed: {e}")),
        Ok(PhysInfo {
            total_pages,
            free_pages,
            nr_domains,
            ..
        }) => ensure(total_pages > 0, || String::from("total_pages = 0"))
            .and_then(|()| {
                ensure(free_pages <= total_pages, || {
                    format!("free_pages {free_pages} > total_pages {total_pages}")
                })
            })
            .and_then(|()| {
                ensure(nr_domains == 1, || {
                    format!("nr_domains = {nr_domains}, want 1")
                })
            }),
    };
    t.report("sysctl_physinfo", outcome);

    let mut op = Sysctl::new(SYSCTL_PHYSINFO);
    op.interface_version = op.interface_version.wrapping_add(0x100);
    let ret = match hypercall::sysctl(&mut op) {
        Ok(()) => 0,
        Err(e) => e.to_ret(),
    };
    t.report("sysctl_bad_interface_version", expect_ret(ret, EACCES));

    // The benchmark's hooks are built only for `cargo xtask bench` (the microkernel's
    // `bench` feature): the hypervisor every test boots has none, and says so with ENOSYS
    // (the bench guest exercises them under `cargo xtask bench`).
    let free_before = hypercall::physinfo().map(|p| p.free_pages);
    let writes = hypercall::bench_op(BENCH_DIRECT_PTE_WRITES, 512).map_err(|e| e.to_ret());
    let build = hypercall::bench_op(BENCH_DIRECT_BUILD, 1024).map_err(|e| e.to_ret());
    let free_after = hypercall::physinfo().map(|p| p.free_pages);
    t.report(
        "sysctl_bench_not_built",
        ensure(writes == Err(ENOSYS) && build == Err(ENOSYS) && free_before == free_after, || {
            format!("writes {writes:?} build {build:?} free {free_before:?} -> {free_after:?}")
        }),
    );
}

/// Reads a u64 from a virtual address that the start of day maps for us.
///
/// # Safety
/// `addr` must be mapped readable and 8-byte aligned.
unsafe fn read_u64(addr: u64) -> u64 {
    // SAFETY: forwarded from the caller.
    unsafe { ptr::read_volatile(addr as *const u64) }
}

fn start_info(t: &mut Tests, si: &'static StartInfo) {
    let m = magic(si);
    t.report(
        "start_info_magic",
        ensure(m.starts_with("xen-3.0-x86_64"), || format!("magic \"{m}\"")),
    );

    let want = SIF_INITDOMAIN | SIF_PRIVILEGED;
    t.report(
        "start_info_flags",
        ensure(si.flags & want == want, || {
            format!("flags {:#x} lack INITDOMAIN|PRIVILEGED", si.flags)
        }),
    );

    let base = virt_base();
    let region_end = base.saturating_add(si.nr_pages.saturating_mul(4096));
    t.report(
        "start_info_pt_base",
        ensure(
            si.pt_base.is_multiple_of(4096) && (base..region_end).contains(&si.pt_base),
            || {
                format!(
                    "pt_base {:#x} not a page in {base:#x}..{region_end:#x}",
                    si.pt_base
                )
            },
        ),
    );

    let list_ok = si.mfn_list.is_multiple_of(8)
        && (base..region_end).contains(&si.mfn_list)
        && si.nr_pages > 0
        && si.mfn_list.saturating_add(si.nr_pages * 8) <= region_end;
    let outcome = ensure(list_ok, || {
        format!(
            "mfn_list {:#x} (nr_pages {}) outside the region",
            si.mfn_list, si.nr_pages
        )
    })
    .map(|()| {
        // SAFETY: the list is inside our initial region (checked above) and the builder
        // maps it readable. A fault here crashes the domain, which the scenario reports.
        let (first, last) = unsafe {
            (
                read_u64(si.mfn_list),
                read_u64(si.mfn_list + (si.nr_pages - 1) * 8),
            )
        };
        println!(
            "NOTE mfn_list[0]={first:#x} mfn_list[{}]={last:#x}",
            si.nr_pages - 1
        );
    });
    t.report("start_info_mfn_list", outcome);
    if !list_ok {
        t.report("m2p", Err(String::from("no usable mfn_list")));
        return;
    }

    // pfns that are certainly mapped: the image start, start_info, the page tables and the
    // p2m list itself. Each must round-trip through the read-only M2P.
    let si_va = si as *const StartInfo as u64;
    let max_mfn = hypercall::physinfo().map_or(0, |p| p.max_mfn);
    let mut outcome = Ok(());
    for va in [base, si_va, si.pt_base, si.mfn_list] {
        let pfn = (va - base) >> 12;
        if pfn >= si.nr_pages {
            outcome = Err(format!("va {va:#x} gives pfn {pfn} >= nr_pages"));
            break;
        }
        // SAFETY: pfn < nr_pages, so the entry is inside the list checked above.
        let mfn = unsafe { read_u64(si.mfn_list + pfn * 8) };
        if mfn > max_mfn {
            outcome = Err(format!("pfn {pfn} -> mfn {mfn:#x} > max_mfn {max_mfn:#x}"));
            break;
        }
        // SAFETY: the hypervisor maps the M2P read-only for every guest at RO_M2P_BASE,
        // covering every machine frame up to max_mfn (checked above); a fault would crash
        // the domain, which the scenario reports.
        let back = unsafe { read_u64(RO_M2P_BASE + mfn * 8) };
        if back != pfn {
            outcome = Err(format!("pfn {pfn} -> mfn {mfn:#x} -> m2p {back:#x}"));
            break;
        }
    }
    t.report("m2p", outcome);
}

/// The privileged instructions the microkernel emulates for a PV kernel.
fn emulation(t: &mut Tests, si: &'static StartInfo) {
    // mov %cr3, %rax: the machine address of the current top level, which is the frame
    // behind start_info.pt_base.
    let cr3: u64;
    // SAFETY: reading CR3 from ring 3 faults (#GP) and the microkernel emulates it; no
    // memory is touched.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) cr3, options(nostack)) };
    let pfn = (si.pt_base - virt_base()) / 4096;
    // SAFETY: mfn_list maps nr_pages entries in the initial region and pfn < nr_pages.
    let mfn = unsafe { read_u64(si.mfn_list + pfn * 8) };
    t.report(
        "emulate_mov_from_cr3",
        ensure(cr3 == mfn << 12, || format!("cr3 {cr3:#x}, L4 frame {:#x}", mfn << 12)),
    );

    // CPUID through Xen's forced-emulation prefix.
    let (mut eax, mut ebx, mut ecx, mut edx) = (0x4000_0000u64, 0u64, 0u64, 0u64);
    // SAFETY: ud2 + "xen" + cpuid raises #UD, which the microkernel recognises and emulates
    // as CPUID; only the four named registers change. rbx is saved around it because LLVM
    // reserves it.
    unsafe {
        core::arch::asm!(
            "mov {tmp}, rbx",
            "ud2",
            ".ascii \"xen\"",
            "cpuid",
            "xchg {tmp}, rbx",
            tmp = out(reg) ebx,
            inout("rax") eax,
            inout("rcx") ecx,
            out("rdx") edx,
            options(nostack)
        )
    };
    let mut sig = [0u8; 12];
    sig[..4].copy_from_slice(&(ebx as u32).to_le_bytes());
    sig[4..8].copy_from_slice(&(ecx as u32).to_le_bytes());
    sig[8..].copy_from_slice(&(edx as u32).to_le_bytes());
    t.report(
        "emulate_forced_cpuid",
        ensure(&sig == b"XenVMMXenVMM" && eax >= 0x4000_0002, || {
            format!("signature {:?} max leaf {eax:#x}", String::from_utf8_lossy(&sig))
        }),
    );

    // wrmsr/rdmsr of FS_BASE round trip.
    let want = 0x0000_1234_5678_9000u64;
    let got_lo: u32;
    let got_hi: u32;
    // SAFETY: wrmsr/rdmsr raise #GP in ring 3 and the microkernel emulates the FS base
    // MSR; nothing in this guest uses FS.
    unsafe {
        core::arch::asm!(
            "wrmsr",
            "xor eax, eax",
            "xor edx, edx",
            "rdmsr",
            in("ecx") 0xc000_0100u32,
            inout("eax") want as u32 => got_lo,
            inout("edx") (want >> 32) as u32 => got_hi,
            options(nostack)
        )
    };
    let got = ((got_hi as u64) << 32) | got_lo as u64;
    t.report("emulate_fs_base_msr", ensure(got == want, || format!("read back {got:#x}")));

    // set_segment_base(SEGBASE_GS_KERNEL) is the GS base rdmsr(GS_BASE) then reads; a
    // non-canonical base is refused.
    let gs = 0xffff_ffff_8123_4000u64;
    // SAFETY: set_segment_base takes two integers; this guest does not use GS.
    let ret = unsafe { hypercall_via_page(Hypercall::SetSegmentBase as u64, 2, gs, 0, 0, 0) };
    let (lo, hi): (u32, u32);
    // SAFETY: rdmsr raises #GP in ring 3 and the microkernel emulates the GS base MSR.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") 0xc000_0101u32, out("eax") lo, out("edx") hi, options(nostack, nomem))
    };
    let read = ((hi as u64) << 32) | lo as u64;
    t.report(
        "set_segment_base_gs_kernel",
        ensure(ret == 0 && read == gs, || format!("ret {ret}, rdmsr(GS_BASE) {read:#x}")),
    );
    // SAFETY: as above.
    let bad = unsafe { hypercall_via_page(Hypercall::SetSegmentBase as u64, 0, 0x0000_8000_0000_0000, 0, 0, 0) };
    t.report("set_segment_base_noncanonical", expect_ret(bad, -22));
}

fn main(si: &'static StartInfo) {
    let mut t = Tests::default();
    emulation(&mut t, si);
    unknown_hypercalls(&mut t);
    xen_version(&mut t);
    console_io(&mut t);
    sched_op(&mut t);
    sysctl(&mut t);
    start_info(&mut t, si);
    println!("TESTS DONE {} passed, {} failed", t.passed, t.failed);
}

pv_guest::entry!(main);
