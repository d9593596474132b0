//! bench: measures the cost of a null hypercall beside a bare ring 3 -> ring 0 -> ring 3
//! round trip, in TSC cycles, and the other figures below, each beside a baseline from the
//! same boot (run as dom0; needs SYSCTL_BENCH).
//!
//! Output (see docs/interfaces.md):
//! ```text
//! BENCH hypercall_null_xen_version <v> cycles bare_syscall_sysret <b>
//! BENCH bare_syscall_sysret <b> cycles
//! BENCH rdtsc_overhead <r> cycles
//! BENCH pt_update_batch_<n>_per_entry <v> cycles direct_pte_write <b>   (n = 1, 8, 64, 512)
//! BENCH pt_update_batch_<n>_vs_in_kernel <v> cycles kernel_validated_update <b>
//! BENCH build_1024_entries <v> cycles direct_build_1024 <b>
//! BENCH exception_bounce_int3 <v> cycles bare_exception_int3 <b>
//! BENCH exception_bounce_int3_minimal <v> cycles bare_exception_int3 <b>
//! BENCH bare_exception_int3 <b> cycles
//! BENCH timer_wakeup_p50 <v> ns timer_expired_wakeup_p50 <b>
//! BENCH timer_wakeup_p99 <v> ns timer_expired_wakeup_p99 <b>
//! BENCH timer_expired_wakeup_p50 <b> ns
//! BENCH timer_expired_wakeup_p99 <b> ns
//! BENCH timer_wakeup_max <v> ns
//! BENCH grant_map_unmap_32_per_page <v> cycles kernel_map_unmap_per_page <b>
//! BENCH grant_copy_4k <v> GB/s memcpy_4k <b>
//! BENCH DONE
//! ```
//! Each figure is the median of individually timed samples; the rdtsc overhead is included
//! in every sample and reported on its own so ratios can be corrected.
//!
//! The page-table figures (see `mm_bench`): validated `pt_update` batches remapping the same
//! entries of a pinned L1 between two sets of frames, per entry, beside the microkernel
//! storing PTEs with no validation (`BENCH_DIRECT_PTE_WRITES`); and building a 1024-entry
//! 4-level address space with the `AddressSpace` builder (tables cleared, entries batched,
//! tables pinned; teardown not timed) beside the microkernel doing the same build directly
//! (`BENCH_DIRECT_BUILD`).
//!
//! The exception figures (see `trap_bench`): `int3` in the guest kernel, bounced by the
//! microkernel to the guest's #BP handler and back through the `iret` hypercall, with the
//! kit's generic handler path (`exception_bounce_int3`) and with a minimal assembly handler
//! that goes straight to the `iret` stub (`_minimal`), beside the bare hardware round trip
//! ring 3 -> ring 0 -> ring 3 of the same `int3` (`BENCH_BARE_EXCEPTION_ON`: the #BP gate
//! points at a lone `iretq`).
//!
//! The timer figures (see `timer_bench`), in ns of system time, 400 samples each: p50, p99
//! and the worst of how late the guest runs again after a `set_timer_op` deadline 1-1.5 ms
//! ahead, blocked in `SCHEDOP_block`, beside the same path for a deadline already past
//! (raised at once, `SCHEDOP_block` returns at once).
#![no_std]
#![no_main]

extern crate alloc;

mod grant_bench;
mod mm_bench;
mod timer_bench;
mod trap_bench;

use alloc::vec::Vec;
use core::arch::asm;

use pv_guest::hypercall::{self, xen_version_raw};
use pv_guest::hypercall_abi::sysctl::{BENCH_BARE_SYSCALL_OFF, BENCH_BARE_SYSCALL_ON};
use pv_guest::hypercall_abi::version::XENVER_VERSION;
use pv_guest::mm::xen::GuestMm;
use pv_guest::stats::{median, sample};
use pv_guest::time::rdtsc;
use pv_guest::{println, StartInfo};

/// Samples per figure.
const SAMPLES: usize = 100_000;
/// Untimed iterations before each measurement (warm caches and TLB).
const WARMUP: usize = 1_000;

/// Times `op` `SAMPLES` times individually and returns the median in cycles.
fn measure(mut op: impl FnMut()) -> u32 {
    for _ in 0..WARMUP {
        op();
    }
    let mut samples: Vec<u32> = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let start = rdtsc();
        op();
        let end = rdtsc();
        samples.push(sample(start, end));
    }
    median(&mut samples).unwrap_or(0)
}

/// XENVER_version through the hypercall page: the cheapest real hypercall.
#[inline(always)]
fn null_hypercall() {
    // SAFETY: XENVER_version takes no argument and touches no guest memory.
    unsafe {
        xen_version_raw(XENVER_VERSION, core::ptr::null_mut());
    }
}

/// A bare `syscall` with rax = 0. Only valid while BENCH_BARE_SYSCALL_ON is in force: the
/// microkernel's entry then returns at once with sysret.
#[inline(always)]
fn bare_syscall() {
    // SAFETY: with the bare entry on, the hypervisor returns immediately, clobbering only
    // rcx and r11 (syscall/sysret); the argument registers are declared clobbered too, as
    // for a hypercall, so the comparison is fair and safe if the entry touches them.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") 0u64 => _,
            out("rdi") _, out("rsi") _, out("rdx") _, out("r10") _, out("r8") _,
            out("rcx") _, out("r11") _,
            options(nostack),
        );
    }
}

fn main(si: &'static StartInfo) {
    let rdtsc_overhead = measure(|| {});
    let null = measure(null_hypercall);

    let bare = match hypercall::bench_op(BENCH_BARE_SYSCALL_ON, 0) {
        Ok(_) => {
            let bare = measure(bare_syscall);
            if let Err(e) = hypercall::bench_op(BENCH_BARE_SYSCALL_OFF, 0) {
                println!("BENCH ERROR sysctl(BENCH_BARE_SYSCALL_OFF) failed: {e}");
            }
            Some(bare)
        }
        Err(e) => {
            // Without the bare entry a syscall with rax = 0 would be a real hypercall
            // (set_trap_table), so there is no baseline.
            println!("BENCH ERROR sysctl(BENCH_BARE_SYSCALL_ON) failed: {e}");
            None
        }
    };

    match bare {
        Some(b) => {
            println!("BENCH hypercall_null_xen_version {null} cycles bare_syscall_sysret {b}");
            println!("BENCH bare_syscall_sysret {b} cycles");
        }
        None => println!("BENCH hypercall_null_xen_version {null} cycles"),
    }
    println!("BENCH rdtsc_overhead {rdtsc_overhead} cycles");
    let max_mfn = hypercall::physinfo().map(|p| p.max_mfn).ok();
    match GuestMm::init(si, max_mfn) {
        Ok(mut mm) => {
            if let Err(e) = mm_bench::run(&mut mm) {
                println!("BENCH ERROR page-table figures: {e}");
            }
            if let Err(e) = grant_bench::run(&mut mm) {
                println!("BENCH ERROR grant figures: {e}");
            }
        }
        Err(e) => println!("BENCH ERROR memory init: {e}"),
    }
    trap_bench::run();
    timer_bench::run(si);
    println!("BENCH DONE");
}

pv_guest::entry!(main);
