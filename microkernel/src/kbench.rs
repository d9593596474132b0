//! In-kernel baselines for `cargo xtask bench`: the same work as a guest's `pt_update`
//! batches, done by the microkernel with plain stores (no validation), or the validated
//! update itself with no hypercall around it.

use crate::arch::directmap;
use crate::arch::x86_64::time as hwtime;
use crate::mm::frame_alloc::FrameAllocator;
use crate::mm::pt::Mm;
use alloc::vec::Vec;
use hypercall_abi::errno::Errno;

/// Most entries or pages one baseline run may ask for.
const MAX_ARG: u64 = 1 << 20;

fn alloc_zeroed(frames: &mut FrameAllocator<'static>) -> Result<u64, Errno> {
    let mfn = frames.alloc().ok_or(Errno::ENOMEM)?;
    // SAFETY: a frame just taken from the allocator: RAM, direct-mapped, ours alone.
    unsafe { core::ptr::write_bytes(directmap(mfn << 12), 0, 4096) };
    Ok(mfn)
}

fn entry(mfn: u64, index: u64) -> *mut u64 {
    // SAFETY: callers pass frames they allocated and index < 512, so the pointer stays
    // inside that direct-mapped frame.
    unsafe { (directmap(mfn << 12) as *mut u64).add(index as usize) }
}

fn store(mfn: u64, index: u64, v: u64) {
    // SAFETY: see `entry`; the frame is a private scratch page table never loaded in CR3.
    unsafe { core::ptr::write_volatile(entry(mfn, index), v) }
}

/// Writes `n` entries into a scratch L1 table; returns the cycles taken.
pub fn direct_pte_writes(frames: &mut FrameAllocator<'static>, n: u64) -> Result<u64, Errno> {
    if n == 0 || n > MAX_ARG {
        return Err(Errno::EINVAL);
    }
    let l1 = alloc_zeroed(frames)?;
    let t0 = hwtime::rdtsc();
    for i in 0..n {
        store(l1, i % 512, ((l1 + i) << 12) | 0x67);
    }
    let t1 = hwtime::rdtsc();
    frames.free(l1).map_err(|_| Errno::EINVAL)?;
    Ok(t1 - t0)
}

/// Builds a 4-level address space mapping `n` pages (tables allocated and zeroed, every
/// entry written), then frees it; returns the cycles the build took.
pub fn direct_build(frames: &mut FrameAllocator<'static>, n: u64) -> Result<u64, Errno> {
    if n == 0 || n > 512 * 512 {
        return Err(Errno::EINVAL);
    }
    let mut tables: Vec<u64> = Vec::with_capacity(3 + n.div_ceil(512) as usize);
    let t0 = hwtime::rdtsc();
    let built = build_into(frames, &mut tables, n);
    let t1 = hwtime::rdtsc();
    // Free what was allocated even when the build ran out of frames.
    for t in tables {
        frames.free(t).map_err(|_| Errno::EINVAL)?;
    }
    built?;
    Ok(t1 - t0)
}

/// Runs `n` validated L1 updates on a scratch table of the calling domain, remapping its
/// entries between two scratch frames as the guest benchmark does; returns the cycles.
/// Every frame and reference it takes is given back.
pub fn validated_updates(mm: &mut Mm<'_, '_>, n: u64) -> Result<u64, Errno> {
    use crate::mm::page_info::Level;
    if n == 0 || n > MAX_ARG {
        return Err(Errno::EINVAL);
    }
    // Three scratch frames beyond the reservation, for the length of the run.
    let max = mm.dom.max_pages();
    mm.dom.set_max_pages(max + 3);
    let mut got = heapless::Vec::<u64, 3>::new();
    let result = (|| {
        for _ in 0..3 {
            let f = mm.increase_reservation()?;
            let _ = got.push(f);
        }
        let (l1, a, b) = (got[0], got[1], got[2]);
        mm.pin(l1, Level::L1)?;
        let flags = 0x27; // present, writable, user, accessed
        let t0 = hwtime::rdtsc();
        for i in 0..n {
            let data = if (i / 512) % 2 == 0 { a } else { b };
            mm.normal_update((l1 << 12) + (i % 512) * 8, (data << 12) | flags, false)?;
        }
        let t1 = hwtime::rdtsc();
        for i in 0..512 {
            mm.normal_update((l1 << 12) + i * 8, 0, false)?;
        }
        mm.unpin(l1)?;
        Ok(t1 - t0)
    })();
    for f in got {
        let _ = mm.decrease_reservation(f);
    }
    mm.dom.set_max_pages(max);
    result
}

/// Frames mapped and unmapped per round of [`map_unmap_32`].
const MAP_BATCH: u64 = 32;

/// Maps 32 scratch data frames into a pinned scratch L1 of the calling domain through the
/// validated entry update and unmaps them again, `rounds` times; returns the cycles.
/// Every frame and reference it takes is given back.
pub fn map_unmap_32(mm: &mut Mm<'_, '_>, rounds: u64) -> Result<u64, Errno> {
    use crate::mm::page_info::Level;
    if rounds == 0 || rounds > MAX_ARG / MAP_BATCH {
        return Err(Errno::EINVAL);
    }
    let n = 1 + MAP_BATCH as usize;
    let max = mm.dom.max_pages();
    mm.dom.set_max_pages(max + n as u64);
    let mut got = Vec::with_capacity(n);
    let result = (|| {
        for _ in 0..n {
            got.push(mm.increase_reservation()?);
        }
        let l1 = got[0];
        mm.pin(l1, Level::L1)?;
        let flags = 0x67; // present, writable, user, accessed, dirty
        let t0 = hwtime::rdtsc();
        for _ in 0..rounds {
            for i in 0..MAP_BATCH {
                mm.normal_update((l1 << 12) + i * 8, (got[1 + i as usize] << 12) | flags, false)?;
            }
            for i in 0..MAP_BATCH {
                mm.normal_update((l1 << 12) + i * 8, 0, false)?;
            }
        }
        let t1 = hwtime::rdtsc();
        mm.unpin(l1)?;
        Ok(t1 - t0)
    })();
    for f in got {
        let _ = mm.decrease_reservation(f);
    }
    mm.dom.set_max_pages(max);
    result
}

fn build_into(frames: &mut FrameAllocator<'static>, tables: &mut Vec<u64>, n: u64) -> Result<(), Errno> {
    let mut table = |frames: &mut FrameAllocator<'static>| -> Result<u64, Errno> {
        let t = alloc_zeroed(frames)?;
        tables.push(t);
        Ok(t)
    };
    let l4 = table(frames)?;
    let l3 = table(frames)?;
    let l2 = table(frames)?;
    store(l4, 1, (l3 << 12) | 0x67);
    store(l3, 0, (l2 << 12) | 0x67);
    let mut l1 = 0;
    for i in 0..n {
        if i % 512 == 0 {
            l1 = table(frames)?;
            store(l2, i / 512, (l1 << 12) | 0x67);
        }
        store(l1, i % 512, ((l4 + i) << 12) | 0x67);
    }
    Ok(())
}
