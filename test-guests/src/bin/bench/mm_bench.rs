//! The bench guest's page-table figures: validated `pt_update` batches and a whole
//! address-space build through the `AddressSpace` builder, each beside the microkernel
//! doing the same work directly in the same boot (`SYSCTL_BENCH` baselines).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use pv_guest::hypercall;
use pv_guest::hypercall_abi::mmu::MmuUpdate;
use pv_guest::hypercall_abi::sysctl::{
    BENCH_DIRECT_BUILD, BENCH_DIRECT_PTE_WRITES, BENCH_KERNEL_VALIDATED_UPDATES,
};
use pv_guest::mm::xen::{pt_update_raw, GuestMm, XenMmu};
use pv_guest::mm::{entry_maddr, make_entry, AddressSpace, Frame, DATA_RW_FLAGS, PAGE_SIZE};
use pv_guest::println;
use pv_guest::stats::median;
use pv_guest::testing::describe;
use pv_guest::time::rdtsc;

/// Batch sizes measured.
const BATCHES: [usize; 4] = [1, 8, 64, 512];
/// Timed batches per size (an even number, so the entries end where they started).
const BATCH_SAMPLES: usize = 200;
/// Untimed batches before each size (even, likewise).
const BATCH_WARMUP: usize = 10;
/// Runs of each in-kernel baseline and of the build.
const RUNS: usize = 21;
/// Entries of the address space built.
const BUILD_ENTRIES: u64 = 1024;
/// Where the batch entries map (one L1: 2 MiB aligned).
const BATCH_VA: u64 = 0x4000_0000;
/// Where the built space maps its pages.
const BUILD_VA: u64 = 0x80_0000_0000;

/// A value in tenths as `<int>.<tenth>`.
fn tenths(v: u64) -> String {
    format!("{}.{}", v / 10, v % 10)
}

/// Median of `RUNS` runs of an in-kernel baseline, in tenths of a cycle per `per` units.
fn baseline(op: u32, arg: u64, per: u64) -> Result<u64, String> {
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let cycles = hypercall::bench_op(op, arg)
            .map_err(|e| format!("SYSCTL_BENCH op {op}: {}", describe(e.to_ret())))?;
        samples.push(u32::try_from(cycles * 10 / per).unwrap_or(u32::MAX));
    }
    Ok(u64::from(median(&mut samples).unwrap_or(0)))
}

/// Takes `n` frames mapped nowhere.
fn take_frames(mm: &mut GuestMm, n: usize) -> Result<Vec<Frame>, String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(mm.alloc_frame().ok_or("out of free frames")?);
    }
    Ok(out)
}

/// Per-entry cost of pt_update batches of each size, remapping the first `n` entries of a
/// pinned L1 between frame sets `a` and `b`.
fn batches(mm: &mut GuestMm, a: &[Frame], b: &[Frame]) -> Result<(), String> {
    let direct = baseline(BENCH_DIRECT_PTE_WRITES, 512, 512)?;
    // The same validated update run by the microkernel itself, 2 x 512 of them (both
    // frame sets, as the batches alternate): what is left is validation alone.
    let validated = baseline(BENCH_KERNEL_VALIDATED_UPDATES, 1024, 1024)?;
    let mut mmu = XenMmu;
    let mut space = {
        let mut frames = mm.table_frames();
        let mut space = AddressSpace::new(&mut frames).map_err(|e| format!("{e}"))?;
        for (i, f) in a.iter().enumerate() {
            space
                .map(
                    &mut mmu,
                    &mut frames,
                    BATCH_VA + i as u64 * PAGE_SIZE,
                    f.mfn,
                    true,
                )
                .map_err(|e| format!("{e}"))?;
        }
        space.pin(&mut mmu).map_err(|e| format!("{e}"))?;
        space
    };
    let l1 = space.table_for(1, BATCH_VA).ok_or("no L1")?.mfn;
    let request = |set: &[Frame], i: usize| MmuUpdate {
        ptr: entry_maddr(l1, i),
        val: make_entry(set[i].mfn, DATA_RW_FLAGS),
    };
    let to_b: Vec<MmuUpdate> = (0..512).map(|i| request(b, i)).collect();
    let to_a: Vec<MmuUpdate> = (0..512).map(|i| request(a, i)).collect();
    let mut result = Ok(());
    'sizes: for n in BATCHES {
        let mut samples: Vec<u32> = Vec::with_capacity(BATCH_SAMPLES);
        for k in 0..BATCH_WARMUP + BATCH_SAMPLES {
            let reqs = if k % 2 == 0 { &to_b[..n] } else { &to_a[..n] };
            let t0 = rdtsc();
            let (ret, done) = pt_update_raw(reqs);
            let t1 = rdtsc();
            if ret != 0 {
                result = Err(format!(
                    "pt_update of {n} returned {} after {done}",
                    describe(ret)
                ));
                break 'sizes;
            }
            if k >= BATCH_WARMUP {
                let per_entry = t1.wrapping_sub(t0) * 10 / n as u64;
                samples.push(u32::try_from(per_entry).unwrap_or(u32::MAX));
            }
        }
        let v = u64::from(median(&mut samples).unwrap_or(0));
        println!(
            "BENCH pt_update_batch_{n}_per_entry {} cycles direct_pte_write {}",
            tenths(v),
            tenths(direct)
        );
        println!(
            "BENCH pt_update_batch_{n}_vs_in_kernel {} cycles kernel_validated_update {}",
            tenths(v),
            tenths(validated)
        );
    }
    let mut frames = mm.table_frames();
    space
        .teardown(&mut mmu, &mut frames)
        .map_err(|e| format!("{e}"))?;
    result
}

/// Cycles to build (tables, entries, pins) a 1024-entry address space.
fn build(mm: &mut GuestMm, data: &[Frame]) -> Result<(), String> {
    let direct = baseline(BENCH_DIRECT_BUILD, BUILD_ENTRIES, 1)?;
    let mut mmu = XenMmu;
    let mut total = Vec::with_capacity(RUNS);
    let mut fill = Vec::with_capacity(RUNS);
    let mut pin = Vec::with_capacity(RUNS);
    for run in 0..RUNS + 2 {
        let mut frames = mm.table_frames();
        let t0 = rdtsc();
        let mut t1 = t0;
        let built = (|| {
            let mut space = AddressSpace::new(&mut frames)?;
            for (i, f) in data.iter().enumerate().take(BUILD_ENTRIES as usize) {
                space.map(
                    &mut mmu,
                    &mut frames,
                    BUILD_VA + i as u64 * PAGE_SIZE,
                    f.mfn,
                    true,
                )?;
            }
            space.flush(&mut mmu)?;
            t1 = rdtsc();
            space.pin(&mut mmu)?;
            Ok::<_, pv_guest::mm::MmError>(space)
        })();
        let t2 = rdtsc();
        let mut space = built.map_err(|e| format!("{e}"))?;
        space
            .teardown(&mut mmu, &mut frames)
            .map_err(|e| format!("{e}"))?;
        if run >= 2 {
            let cycles = |a: u64, b: u64| u32::try_from(b.wrapping_sub(a)).unwrap_or(u32::MAX);
            total.push(cycles(t0, t2));
            fill.push(cycles(t0, t1));
            pin.push(cycles(t1, t2));
        }
    }
    let v = u64::from(median(&mut total).unwrap_or(0));
    println!(
        "BENCH build_{BUILD_ENTRIES}_entries {v} cycles direct_build_{BUILD_ENTRIES} {}",
        direct / 10
    );
    // Where the build's time goes: clearing the tables and writing the entries (data writes
    // into frames that are not tables yet), then pinning (each table validated once).
    println!(
        "BENCH build_{BUILD_ENTRIES}_fill {} cycles",
        median(&mut fill).unwrap_or(0)
    );
    println!(
        "BENCH build_{BUILD_ENTRIES}_pin {} cycles",
        median(&mut pin).unwrap_or(0)
    );
    Ok(())
}

/// An `Mmu` that does nothing: times the builder's own work, without the hypervisor.
struct NullMmu;

impl pv_guest::mm::Mmu for NullMmu {
    fn pt_update(&mut self, _reqs: &[MmuUpdate]) -> Result<(), pv_guest::mm::BatchFailure> {
        Ok(())
    }
    fn mmuext(
        &mut self,
        _ops: &[pv_guest::hypercall_abi::mmu::MmuextOp],
    ) -> Result<(), pv_guest::mm::BatchFailure> {
        Ok(())
    }
}

/// Cycles the builder itself spends on a 1024-entry build (queueing, table bookkeeping),
/// with a hypervisor that does nothing.
fn build_guest_side(mm: &mut GuestMm, data: &[Frame]) -> Result<(), String> {
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let mut frames = mm.table_frames();
        let mut mmu = NullMmu;
        let t0 = rdtsc();
        let mut space = AddressSpace::new(&mut frames).map_err(|e| format!("{e}"))?;
        for (i, f) in data.iter().enumerate().take(BUILD_ENTRIES as usize) {
            space
                .map(
                    &mut mmu,
                    &mut frames,
                    BUILD_VA + i as u64 * PAGE_SIZE,
                    f.mfn,
                    true,
                )
                .map_err(|e| format!("{e}"))?;
        }
        space.pin(&mut mmu).map_err(|e| format!("{e}"))?;
        let t1 = rdtsc();
        space
            .teardown(&mut mmu, &mut frames)
            .map_err(|e| format!("{e}"))?;
        samples.push(u32::try_from(t1.wrapping_sub(t0)).unwrap_or(u32::MAX));
    }
    println!(
        "BENCH build_{BUILD_ENTRIES}_guest_side {} cycles",
        median(&mut samples).unwrap_or(0)
    );
    Ok(())
}

/// Runs both page-table figures.
pub fn run(mm: &mut GuestMm) -> Result<(), String> {
    let a = take_frames(mm, 512)?;
    let b = take_frames(mm, 512)?;
    let r1 = batches(mm, &a, &b);
    let data: Vec<Frame> = a.iter().chain(b.iter()).copied().collect();
    let r2 = build(mm, &data).and(build_guest_side(mm, &data));
    data.into_iter().for_each(|f| mm.free(f));
    r1.and(r2)
}
