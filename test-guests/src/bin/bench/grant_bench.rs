//! The bench guest's grant figures, each beside a baseline from the same boot: grant map
//! plus unmap of 32 pages per batch (one `GNTTABOP_map_grant_ref` hypercall of 32 and one
//! `GNTTABOP_unmap_grant_ref` of 32), per page, beside the microkernel's own validated map
//! and unmap of 32 entries (`BENCH_KERNEL_MAP_UNMAP_32`); and `GNTTABOP_copy` of 4 KiB
//! pages, 32 per hypercall, in GB/s, beside a 4 KiB `memcpy` in this guest.
//!
//! dom0 grants its own frames to itself (Xen allows a domain to map its own grants: the
//! entry names the mapper's domid, here 0), so one domain measures both sides.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use pv_guest::grant::{self, GrantTable};
use pv_guest::hypercall;
use pv_guest::hypercall_abi::grant_table::*;
use pv_guest::hypercall_abi::sysctl::BENCH_KERNEL_MAP_UNMAP_32;
use pv_guest::mm::xen::GuestMm;
use pv_guest::println;
use pv_guest::stats::{median, sample};
use pv_guest::testing::describe;
use pv_guest::time::rdtsc;

/// Pages per map, unmap and copy batch.
const BATCH: usize = 32;
/// Timed batches.
const SAMPLES: usize = 200;
/// Untimed batches first.
const WARMUP: usize = 10;
/// Rounds of the in-kernel baseline per run, and runs.
const KERNEL_ROUNDS: u64 = 16;
const KERNEL_RUNS: usize = 21;
/// This domain (the bench runs as dom0).
const SELF_ID: u16 = 0;

fn tenths(v: u64) -> String {
    format!("{}.{}", v / 10, v % 10)
}

fn hundredths(v: u64) -> String {
    format!("{}.{:02}", v / 100, v % 100)
}

/// Runs the grant figures.
pub fn run(mm: &mut GuestMm) -> Result<(), String> {
    let mut gt = GrantTable::setup(mm, 1).map_err(|e| format!("setup_table: {e:?}"))?;
    let mut frames = Vec::new();
    let mut vas = Vec::new();
    for _ in 0..BATCH {
        frames.push(mm.alloc_frame().ok_or("out of frames")?);
        vas.push(mm.alloc_mapped().ok_or("out of padding pages")?.1);
    }
    let refs: Vec<u32> = frames.iter().map(|f| gt.grant_access(SELF_ID, f.mfn.0, false)).collect::<Option<_>>().ok_or("out of grant references")?;
    map_unmap(&refs, &vas)?;
    copy(&refs, mm)?;
    Ok(())
}

fn map_unmap(refs: &[u32], vas: &[u64]) -> Result<(), String> {
    let mut per_page = Vec::with_capacity(SAMPLES);
    for i in 0..WARMUP + SAMPLES {
        let mut maps: Vec<GnttabMapGrantRef> = refs.iter().zip(vas).map(|(&r, &va)| grant::map_op(va, SELF_ID, r, false)).collect();
        let t0 = rdtsc();
        grant::map_grants(&mut maps).map_err(|e| format!("map: {e:?}"))?;
        let mut unmaps: Vec<GnttabUnmapGrantRef> = maps.iter().zip(vas).map(|(m, &va)| grant::unmap_op(va, m.handle)).collect();
        grant::unmap_grants(&mut unmaps).map_err(|e| format!("unmap: {e:?}"))?;
        let t1 = rdtsc();
        if let Some(m) = maps.iter().find(|m| m.status != 0) {
            return Err(format!("map status {}", m.status));
        }
        if let Some(u) = unmaps.iter().find(|u| u.status != 0) {
            return Err(format!("unmap status {}", u.status));
        }
        if i >= WARMUP {
            per_page.push(sample(t0, t1) * 10 / BATCH as u32);
        }
    }
    let mut kernel = Vec::with_capacity(KERNEL_RUNS);
    for _ in 0..KERNEL_RUNS {
        let c = hypercall::bench_op(BENCH_KERNEL_MAP_UNMAP_32, KERNEL_ROUNDS)
            .map_err(|e| format!("SYSCTL_BENCH map_unmap_32: {}", describe(e.to_ret())))?;
        kernel.push(u32::try_from(c * 10 / (KERNEL_ROUNDS * BATCH as u64)).unwrap_or(u32::MAX));
    }
    let v = u64::from(median(&mut per_page).unwrap_or(0));
    let b = u64::from(median(&mut kernel).unwrap_or(0));
    println!("BENCH grant_map_unmap_32_per_page {} cycles kernel_map_unmap_per_page {}", tenths(v), tenths(b));
    Ok(())
}

/// GB/s, in hundredths, of `bytes` moved in `cycles` at `khz`.
fn gbps_hundredths(bytes: u64, cycles: u64, khz: u64) -> u64 {
    // bytes / (cycles / (khz * 1000)) / 1e9, times 100.
    (u128::from(bytes) * u128::from(khz) * 100 / (u128::from(cycles.max(1)) * 1_000_000)) as u64
}

fn copy(refs: &[u32], mm: &mut GuestMm) -> Result<(), String> {
    let khz = hypercall::physinfo().map_err(|e| format!("physinfo: {e:?}"))?.cpu_khz.into();
    // Source: the page behind the first grant; destinations: padding pages of our own.
    let mut dst = Vec::with_capacity(BATCH);
    for _ in 0..BATCH {
        dst.push(mm.alloc_mapped().ok_or("out of padding pages")?);
    }
    let (src_frame, src_va) = mm.alloc_mapped().ok_or("out of padding pages")?;
    let _ = src_frame;
    let mut ops: Vec<GnttabCopy> = dst
        .iter()
        .map(|(f, _)| GnttabCopy {
            source: grant::copy_gref(SELF_ID, refs[0], 0),
            dest: grant::copy_local(f.mfn.0, 0),
            len: 4096,
            flags: GNTCOPY_SOURCE_GREF,
            ..Default::default()
        })
        .collect();
    let mut gcopy = Vec::with_capacity(SAMPLES);
    let mut mcopy = Vec::with_capacity(SAMPLES);
    for i in 0..WARMUP + SAMPLES {
        let t0 = rdtsc();
        grant::copy(&mut ops).map_err(|e| format!("copy: {e:?}"))?;
        let t1 = rdtsc();
        if let Some(o) = ops.iter().find(|o| o.status != 0) {
            return Err(format!("copy status {}", o.status));
        }
        let t2 = rdtsc();
        for (_, va) in &dst {
            // SAFETY: two distinct padding pages of ours, mapped writable, 4 KiB each.
            unsafe { core::ptr::copy_nonoverlapping(src_va as *const u8, *va as *mut u8, 4096) };
        }
        let t3 = rdtsc();
        if i >= WARMUP {
            gcopy.push(sample(t0, t1));
            mcopy.push(sample(t2, t3));
        }
    }
    let bytes = (4096 * BATCH) as u64;
    let g = gbps_hundredths(bytes, u64::from(median(&mut gcopy).unwrap_or(0)), khz);
    let m = gbps_hundredths(bytes, u64::from(median(&mut mcopy).unwrap_or(0)), khz);
    println!("BENCH grant_copy_4k {} GB/s memcpy_4k {}", hundredths(g), hundredths(m));
    Ok(())
}
