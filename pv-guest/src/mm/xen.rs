//! The memory layer's hypercall glue (guest target only): `pt_update`, `mmuext_op`,
//! `update_va_mapping`, `multicall`, `memory_op` reservations, `vm_assist`, `SYSCTL_MEMSTATS`,
//! the read-only M2P, the emulated `mov from cr3` and forced-emulation `cpuid`, and
//! [`GuestMm`], which ties the portable pieces to this domain's start_info.
//!
//! Each wrapper is one hypercall; the raw forms return the hypervisor's value untouched so
//! tests can check exact errnos.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::Hypercall;
use hypercall_abi::layout::MACH2PHYS_VIRT_START;
use hypercall_abi::memory::{
    XenMemoryDomain, XenMemoryReservation, XENMEM_CURRENT_RESERVATION, XENMEM_DECREASE_RESERVATION,
    XENMEM_EXCHANGE, XENMEM_MAXIMUM_RESERVATION, XENMEM_POPULATE_PHYSMAP,
};
use hypercall_abi::mmu::{MmuUpdate, MmuextOp, MulticallEntry};
use hypercall_abi::start_info::StartInfo;
use hypercall_abi::sysctl::{MemStats, Sysctl, SYSCTL_MEMSTATS};
use hypercall_abi::types::{Mfn, Pfn, DOMID_SELF, INVALID_MFN};

use super::frames::{FrameAllocator, P2mFrames};
use super::phys::{LayoutError, P2m, PhysLayout};
use super::{table_index, BatchFailure, Frame, Mmu, ENTRIES, PAGE_SHIFT};
use crate::hypercall::{check, hypercall_via_page};

/// `pt_update(reqs, count, &done, DOMID_SELF)`; returns the raw result and the done count.
pub fn pt_update_raw(reqs: &[MmuUpdate]) -> (i64, u32) {
    // SAFETY: the requests act on page tables, which the hypervisor validates (a bad one is
    // refused, not applied).
    unsafe { batch_call(Hypercall::PtUpdate, reqs) }
}

/// `mmuext_op(ops, count, &done, DOMID_SELF)`; returns the raw result and the done count.
pub fn mmuext_raw(ops: &[MmuextOp]) -> (i64, u32) {
    // SAFETY: the operations act on frames the hypervisor checks we own. Switching the base
    // pointer keeps this code mapped only if the new tables map it, which the callers
    // (AddressSpace shares the kernel's slot) ensure.
    unsafe { batch_call(Hypercall::MmuextOp, ops) }
}

/// A batched call of the `(items, count, &done, DOMID_SELF)` shape; returns the raw result
/// and the done count.
///
/// # Safety
/// What the items ask for must be sound for this guest (the hypervisor refuses what breaks
/// isolation, not what breaks the guest's own memory).
unsafe fn batch_call<T>(nr: Hypercall, items: &[T]) -> (i64, u32) {
    let mut done: u32 = 0;
    // SAFETY: the hypervisor reads `items.len()` items from `items` and writes the done
    // count into `done`, both ours; the rest is the caller's contract.
    let ret = unsafe {
        hypercall_via_page(
            nr as u64,
            items.as_ptr() as u64,
            items.len() as u64,
            (&raw mut done) as u64,
            u64::from(DOMID_SELF),
            0,
        )
    };
    (ret, done)
}

fn failure(ret: i64, done: u32) -> BatchFailure {
    BatchFailure {
        done: done as usize,
        errno: Errno::from_ret(ret).unwrap_or(Errno::EINVAL),
    }
}

/// The hypervisor, as the memory layer's [`Mmu`].
#[derive(Clone, Copy, Debug, Default)]
pub struct XenMmu;

impl Mmu for XenMmu {
    fn pt_update(&mut self, reqs: &[MmuUpdate]) -> Result<(), BatchFailure> {
        match pt_update_raw(reqs) {
            (0, _) => Ok(()),
            (ret, done) => Err(failure(ret, done)),
        }
    }

    fn mmuext(&mut self, ops: &[MmuextOp]) -> Result<(), BatchFailure> {
        match mmuext_raw(ops) {
            (0, _) => Ok(()),
            (ret, done) => Err(failure(ret, done)),
        }
    }
}

/// `update_va_mapping(va, val, flags)`: sets the L1 entry that maps `va` in the current
/// address space; `flags` is `UVMF_*`. Returns the raw result.
pub fn update_va_mapping_raw(va: u64, val: u64, flags: u64) -> i64 {
    // SAFETY: the hypervisor validates the new entry like a pt_update; the caller is
    // responsible for what the mapping change does to memory it uses (the test guests only
    // remap pages they own and do not hold references into).
    unsafe { hypercall_via_page(Hypercall::UpdateVaMapping as u64, va, val, flags, 0, 0) }
}

/// `multicall(entries)`: runs each entry's hypercall and stores its result in the entry.
/// Returns the raw result of the multicall itself.
///
/// # Safety
/// Every entry's hypercall and arguments must be safe to make (see
/// [`crate::hypercall::hypercall_via_page`]).
pub unsafe fn multicall_raw(entries: &mut [MulticallEntry]) -> i64 {
    // SAFETY: the hypervisor reads and writes the entries, which we own; each call's own
    // safety is the caller's promise.
    unsafe {
        hypercall_via_page(
            Hypercall::Multicall as u64,
            entries.as_mut_ptr() as u64,
            entries.len() as u64,
            0,
            0,
            0,
        )
    }
}

/// `vm_assist(cmd, type)`; returns the raw result.
pub fn vm_assist_raw(cmd: u32, kind: u32) -> i64 {
    // SAFETY: vm_assist only switches hypervisor-side behaviour flags; no guest memory.
    unsafe {
        hypercall_via_page(
            Hypercall::VmAssist as u64,
            u64::from(cmd),
            u64::from(kind),
            0,
            0,
            0,
        )
    }
}

/// `memory_op(cmd, arg)`; returns the raw result.
///
/// # Safety
/// `arg` must point to the argument structure `cmd` expects, and every guest buffer it
/// names must be valid for the access `cmd` makes.
pub unsafe fn memory_op_raw(cmd: u32, arg: u64) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe { hypercall_via_page(Hypercall::MemoryOp as u64, u64::from(cmd), arg, 0, 0, 0) }
}

fn reservation(list: &mut [u64]) -> XenMemoryReservation {
    XenMemoryReservation {
        extent_start: list.as_mut_ptr() as u64,
        nr_extents: list.len() as u64,
        extent_order: 0,
        mem_flags: 0,
        domid: DOMID_SELF,
        _pad: [0; 3],
    }
}

/// `XENMEM_decrease_reservation` of single pages: gives the machine frames in `mfns` back
/// to the hypervisor (a PV guest names them by mfn). Returns how many were released.
pub fn decrease_reservation(mfns: &mut [u64]) -> Result<u64, Errno> {
    let arg = reservation(mfns);
    // SAFETY: the hypervisor reads `arg` and the extent list it points at, both ours.
    check(unsafe { memory_op_raw(XENMEM_DECREASE_RESERVATION, (&raw const arg) as u64) })
}

/// `XENMEM_populate_physmap` of single pages: `list` holds pfns on the way in and, for a
/// PV guest, the machine frames given on the way out (the hypervisor sets the M2P entry;
/// the p2m is ours to update). Returns how many were populated.
pub fn populate_physmap(list: &mut [u64]) -> Result<u64, Errno> {
    let arg = reservation(list);
    // SAFETY: the hypervisor reads `arg` and reads and writes the extent list, both ours.
    check(unsafe { memory_op_raw(XENMEM_POPULATE_PHYSMAP, (&raw const arg) as u64) })
}

/// `XENMEM_current_reservation` of the calling domain: its pages (tot_pages).
pub fn current_reservation() -> Result<u64, Errno> {
    let arg = XenMemoryDomain { domid: DOMID_SELF };
    // SAFETY: the hypervisor reads the two-byte domid we pass.
    check(unsafe { memory_op_raw(XENMEM_CURRENT_RESERVATION, (&raw const arg) as u64) })
}

/// `XENMEM_maximum_reservation` of the calling domain (max_pages).
pub fn maximum_reservation() -> Result<u64, Errno> {
    let arg = XenMemoryDomain { domid: DOMID_SELF };
    // SAFETY: the hypervisor reads the two-byte domid we pass.
    check(unsafe { memory_op_raw(XENMEM_MAXIMUM_RESERVATION, (&raw const arg) as u64) })
}

/// `SYSCTL_MEMSTATS`: the calling domain's frame accounting.
pub fn memstats() -> Result<MemStats, Errno> {
    let mut op = Sysctl::new(SYSCTL_MEMSTATS);
    crate::hypercall::sysctl(&mut op)?;
    Ok(op.read_payload())
}

/// `mov rax, cr3`: faults in ring 3 and the hypervisor emulates it, returning the machine
/// address of the current top-level table.
pub fn read_cr3() -> u64 {
    let cr3: u64;
    // SAFETY: reading CR3 from ring 3 raises #GP, which the hypervisor emulates for a PV
    // kernel; only the output register changes.
    unsafe { asm!("mov {}, cr3", out(reg) cr3, options(nostack, nomem)) };
    cr3
}

/// CPUID through Xen's forced-emulation prefix (`ud2; .ascii "xen"; cpuid`), which the
/// hypervisor emulates, hypervisor leaves (0x4000_0000..) included. Returns
/// `[eax, ebx, ecx, edx]`.
pub fn cpuid_forced(leaf: u32, subleaf: u32) -> [u32; 4] {
    let (eax, ebx, ecx, edx): (u32, u64, u32, u32);
    // SAFETY: the #UD this raises is recognised by the hypervisor and emulated as CPUID;
    // only the four registers change. rbx is saved and restored through a scratch
    // register because LLVM reserves it.
    unsafe {
        asm!(
            "mov {tmp}, rbx",
            "ud2",
            ".ascii \"xen\"",
            "cpuid",
            "xchg {tmp}, rbx",
            tmp = out(reg) ebx,
            inout("eax") leaf => eax,
            inout("ecx") subleaf => ecx,
            out("edx") edx,
            options(nostack, nomem)
        )
    };
    [eax, ebx as u32, ecx, edx]
}

/// The read-only M2P, bounded so a lookup never reads past the table's end (which faults).
#[derive(Clone, Copy, Debug)]
pub struct M2p {
    /// Entries that may be read: mfns `0..limit`.
    pub limit: u64,
}

impl M2p {
    /// Entry `mfn`: the pfn of that machine frame in its owner, or `!0` (not ours, unused).
    /// `None` past the limit.
    pub fn get(&self, mfn: Mfn) -> Option<u64> {
        if mfn.0 >= self.limit {
            return None;
        }
        let addr = MACH2PHYS_VIRT_START + mfn.0 * 8;
        // SAFETY: the hypervisor maps the M2P read-only for every guest at
        // MACH2PHYS_VIRT_START, up to the machine's highest frame; `limit` is at most one
        // past that frame (see `GuestMm::init`).
        Some(unsafe { core::ptr::read_volatile(addr as *const u64) })
    }
}

/// Why the memory layer could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// Already initialised: the p2m has one owner.
    AlreadyTaken,
    /// start_info does not describe a region.
    Layout(LayoutError),
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::AlreadyTaken => write!(f, "the memory layer is already initialised"),
            InitError::Layout(e) => write!(f, "start_info: {e}"),
        }
    }
}

static TAKEN: AtomicBool = AtomicBool::new(false);

/// This domain's memory: the initial region's layout, the p2m, a frame allocator and the
/// M2P. One per guest ([`GuestMm::init`] succeeds once).
pub struct GuestMm {
    /// Where things are in the initial region.
    pub layout: PhysLayout,
    /// pfn → mfn (start_info's `mfn_list`).
    pub p2m: P2m<'static>,
    /// Free pseudo-physical frames.
    pub frames: FrameAllocator,
    /// mfn → pfn.
    pub m2p: M2p,
}

impl GuestMm {
    /// Takes ownership of the p2m and builds the layout and the allocator from `si`.
    /// `max_mfn` bounds M2P lookups (dom0: physinfo's `max_mfn`; otherwise the largest
    /// mfn of the p2m is a safe bound for frames of our own).
    pub fn init(si: &'static StartInfo, max_mfn: Option<u64>) -> Result<GuestMm, InitError> {
        let layout = PhysLayout::new(
            crate::start_info::virt_base(),
            si.pt_base,
            si.nr_pt_frames,
            si.nr_pages,
        )
        .map_err(InitError::Layout)?;
        if TAKEN.swap(true, Ordering::AcqRel) {
            return Err(InitError::AlreadyTaken);
        }
        // SAFETY: the domain builder puts `nr_pages` u64 entries at `mfn_list`, inside the
        // initial region, mapped writable and owned by us; the TAKEN flag makes this the only
        // reference to them for the rest of the guest's life.
        let entries = unsafe {
            core::slice::from_raw_parts_mut(si.mfn_list as *mut u64, si.nr_pages as usize)
        };
        let p2m = P2m::new(entries);
        let limit = max_mfn.unwrap_or(p2m.max_mfn().0) + 1;
        let frames = FrameAllocator::new(&layout);
        Ok(GuestMm {
            layout,
            p2m,
            frames,
            m2p: M2p { limit },
        })
    }

    /// A frame source for page tables: free frames mapped nowhere.
    pub fn table_frames(&mut self) -> P2mFrames<'_, 'static> {
        P2mFrames {
            alloc: &mut self.frames,
            p2m: &self.p2m,
        }
    }

    /// A free frame mapped nowhere, by pfn and mfn.
    pub fn alloc_frame(&mut self) -> Option<Frame> {
        use super::FrameSource;
        self.table_frames().alloc_frame()
    }

    /// A free frame of the initial region's padding and its virtual address there.
    pub fn alloc_mapped(&mut self) -> Option<(Frame, u64)> {
        let pfn = self.frames.alloc_mapped()?;
        let mfn = self.p2m.mfn(pfn)?;
        Some((Frame { pfn, mfn }, self.layout.va_of(pfn)?))
    }

    /// Gives a frame back to the allocator.
    pub fn free(&mut self, frame: Frame) {
        let _ = self.frames.free(frame.pfn);
    }

    /// The bootstrap L4 (`pt_base`) by pfn and mfn.
    pub fn boot_l4(&self) -> Frame {
        let pfn = Pfn(self.layout.pt_pfn);
        Frame {
            pfn,
            mfn: self.p2m.mfn(pfn).unwrap_or(Mfn::INVALID),
        }
    }

    /// A page-table frame of the initial region, read through its read-only mapping there;
    /// `None` when the frame is not one of ours in the region.
    pub fn read_table(&self, mfn: Mfn) -> Option<&'static [u64; ENTRIES]> {
        let pfn = self.m2p.get(mfn)?;
        if pfn == INVALID_MFN || self.p2m.mfn(Pfn(pfn)) != Some(mfn) {
            return None;
        }
        let va = self.layout.va_of(Pfn(pfn))?;
        // SAFETY: `va` is the initial-region mapping of one of our frames (checked through the
        // M2P and the p2m), page aligned and readable. Tables are only changed by the
        // hypervisor, through entries the guest cannot write; readers see plain u64s.
        Some(unsafe { &*(va as *const [u64; ENTRIES]) })
    }

    /// The entry of the bootstrap L4 that maps `va` (for sharing the kernel's slot).
    pub fn boot_l4_entry(&self, va: u64) -> Option<u64> {
        Some(self.read_table(self.boot_l4().mfn)?[table_index(va, 4)])
    }

    /// Walks the current bootstrap tables (those in the initial region) down to `level` and
    /// returns the frame of the level-`level` table covering `va`.
    pub fn boot_table_for(&self, level: u8, va: u64) -> Option<Mfn> {
        let mut table = self.boot_l4().mfn;
        for l in (level + 1..=4).rev() {
            let e = self.read_table(table)?[table_index(va, l)];
            if e & hypercall_abi::layout::pte::PRESENT == 0 {
                return None;
            }
            table = super::entry_mfn(e);
        }
        Some(table)
    }

    /// Virtual address of a pfn of the initial region.
    pub fn va_of(&self, pfn: Pfn) -> Option<u64> {
        self.layout.va_of(pfn)
    }

    /// Gives `pfn`'s memory back to the hypervisor (`decrease_reservation` of its mfn):
    /// the p2m entry becomes invalid and the pfn leaves the allocator. The frame must be
    /// free and mapped nowhere. Returns the machine frame given up.
    pub fn give_back(&mut self, pfn: Pfn) -> Result<Mfn, Errno> {
        let mfn = self.p2m.mfn(pfn).ok_or(Errno::EINVAL)?;
        self.frames.take(pfn).map_err(|_| Errno::EBUSY)?;
        let mut list = [mfn.0];
        match decrease_reservation(&mut list) {
            Ok(1) => {
                self.p2m.set(pfn, Mfn::INVALID);
                Ok(mfn)
            }
            other => {
                let _ = self.frames.free(pfn);
                Err(other.err().unwrap_or(Errno::ENOMEM))
            }
        }
    }

    /// Gets memory for `pfn` again (`populate_physmap`): the p2m entry takes the new mfn
    /// (the hypervisor has set the M2P) and the pfn is free again. Returns the new mfn.
    pub fn reclaim(&mut self, pfn: Pfn) -> Result<Mfn, Errno> {
        if self.p2m.mfn(pfn).is_some() || pfn.0 >= self.p2m.len() {
            return Err(Errno::EINVAL);
        }
        let mut list = [pfn.0];
        match populate_physmap(&mut list)? {
            1 => {
                let mfn = Mfn(list[0]);
                self.p2m.set(pfn, mfn);
                let _ = self.frames.free(pfn);
                Ok(mfn)
            }
            _ => Err(Errno::ENOMEM),
        }
    }

    /// `2^order` free frames mapped nowhere, made machine-contiguous with
    /// `XENMEM_exchange` (as Linux's `xen_create_contiguous_region`, for memory a device
    /// reaches by DMA): the frames taken, by pfn, whose machine frames are now the extent
    /// starting at the returned mfn, in order. The p2m and the M2P follow. On failure the
    /// frames go back to the allocator as they were.
    pub fn contiguous(&mut self, order: u32) -> Result<(alloc::vec::Vec<Frame>, Mfn), Errno> {
        let n = 1usize.checked_shl(order).ok_or(Errno::EINVAL)?;
        let mut frames = alloc::vec::Vec::with_capacity(n);
        while frames.len() < n {
            match self.alloc_frame() {
                Some(f) => frames.push(f),
                None => {
                    frames.into_iter().for_each(|f| self.free(f));
                    return Err(Errno::ENOMEM);
                }
            }
        }
        let mut give: alloc::vec::Vec<u64> = frames.iter().map(|f| f.mfn.0).collect();
        let mut want = [frames[0].pfn.0];
        let mut x = hypercall_abi::memory::XenMemoryExchange {
            input: XenMemoryReservation { extent_order: 0, ..reservation(&mut give) },
            output: XenMemoryReservation { extent_order: order, ..reservation(&mut want) },
            nr_exchanged: 0,
        };
        // SAFETY: `x` and both lists are ours and live across the call.
        let rc = check(unsafe { memory_op_raw(XENMEM_EXCHANGE, (&raw mut x) as u64) });
        let done = rc.and_then(|_| (x.nr_exchanged == n as u64).then_some(()).ok_or(Errno::ENOMEM));
        if let Err(e) = done {
            // A refused exchange changes nothing (it is all one chunk of the larger order).
            frames.into_iter().for_each(|f| self.free(f));
            return Err(e);
        }
        let first = want[0];
        let mut fix = alloc::vec::Vec::with_capacity(n);
        for (j, f) in frames.iter_mut().enumerate() {
            f.mfn = Mfn(first + j as u64);
            self.p2m.set(f.pfn, f.mfn);
            fix.push(MmuUpdate { ptr: (f.mfn.0 << PAGE_SHIFT) | hypercall_abi::mmu::MMU_MACHPHYS_UPDATE, val: f.pfn.0 });
        }
        // The hypervisor numbered the extent from the first pfn; ours need not be in a run.
        let (rc, _) = pt_update_raw(&fix);
        check(rc)?;
        Ok((frames, Mfn(first)))
    }

    /// Machine address (`mfn << 12`) of `pfn`, for entries.
    pub fn maddr(&self, pfn: Pfn) -> Option<u64> {
        self.p2m.mfn(pfn).map(|m| m.0 << PAGE_SHIFT)
    }
}
