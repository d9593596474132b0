//! The hypervisor's own address space, all inside Xen's reserved slice (L4 slots 256..=271):
//!
//! | slot | range | what |
//! |---|---|---|
//! | 256 | 0xffff800000000000 | read-only machine-to-physical table (guest readable) |
//! | 261 | 0xffff828000000000 | writable view of the same M2P (hypervisor only) |
//! | 261 | 0xffff82d080000000 | microkernel image: text RX, rodata R, data RW NX |
//! | 262.. | 0xffff830000000000 | direct map of RAM, RW NX, 2 MiB pages |
//!
//! Every one of the 16 slots gets its L3 table at boot, so guest L4 tables can copy the 16
//! entries once and see every later hypervisor mapping.

use crate::mm::frame_alloc::FrameAllocator;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::{
    FrameAllocator as X86FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as F,
    PhysFrame, Size2MiB, Size4KiB,
};
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::{PhysAddr, VirtAddr};

/// Direct map of all RAM.
pub const DIRECTMAP_BASE: u64 = 0xffff_8300_0000_0000;
/// Where the image is linked: virtual = KERNEL_VBASE + physical.
pub const KERNEL_VBASE: u64 = 0xffff_82d0_8000_0000;
/// Writable M2P view.
pub const M2P_RW_BASE: u64 = 0xffff_8280_0000_0000;
/// Read-only M2P for guests (Xen's RO_MPT_VIRT_START).
pub const M2P_RO_BASE: u64 = 0xffff_8000_0000_0000;

/// Hypervisor virtual address of physical address `paddr` (RAM only).
pub fn directmap(paddr: u64) -> *mut u8 {
    (DIRECTMAP_BASE + paddr) as *mut u8
}

extern "C" {
    static __text_start: u8;
    static __rodata_start: u8;
    static __data_start: u8;
    static __image_end: u8;
}

struct Frames<'a, 'b>(&'a mut FrameAllocator<'b>);

// SAFETY: hands out frames the allocator owns exclusively and never hands out twice.
unsafe impl X86FrameAllocator<Size4KiB> for Frames<'_, '_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        self.0.alloc().map(|mfn| PhysFrame::containing_address(PhysAddr::new(mfn << 12)))
    }
}

/// The hypervisor's top-level table and the 16 entries every guest L4 copies.
pub struct HypervisorSpace {
    /// Machine frame of the L4.
    pub l4_mfn: u64,
    /// L4 entries 256..=271.
    pub slots: [u64; 16],
    /// Entries in the M2P table.
    pub m2p_entries: u64,
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Builds the hypervisor address space over the RAM ranges `ram` (physical, any
/// alignment), with an M2P of `m2p_entries` entries (all INVALID), and switches to it.
pub fn init(frames: &mut FrameAllocator<'_>, ram: &[(u64, u64)], m2p_entries: u64) -> HypervisorSpace {
    let mut fa = Frames(frames);
    let l4_mfn = fa.0.alloc().expect("no frame for the hypervisor L4");
    // SAFETY: the boot page tables map the first 4 GiB at DIRECTMAP_BASE and boot allocations
    // come lowest-first, so the frame is reachable there; it is ours alone.
    let l4 = unsafe { &mut *(directmap(l4_mfn << 12) as *mut PageTable) };
    l4.zero();
    for slot in 256..=271usize {
        let l3 = fa.0.alloc().expect("no frame for a hypervisor L3");
        // SAFETY: as above: a fresh frame, reachable through the boot direct map.
        unsafe { core::ptr::write_bytes(directmap(l3 << 12), 0, 4096) };
        let flags = if slot == 256 { F::PRESENT | F::USER_ACCESSIBLE } else { F::PRESENT | F::WRITABLE };
        l4[slot].set_addr(PhysAddr::new(l3 << 12), flags);
    }
    // SAFETY: `l4` is a valid, exclusively owned top-level table, and every table frame the
    // mapper reaches is RAM visible at DIRECTMAP_BASE + physical in the current (boot) tables.
    let mut m = unsafe { OffsetPageTable::new(l4, VirtAddr::new(DIRECTMAP_BASE)) };

    // The image, with its permissions.
    // SAFETY: linker-script symbols; only their addresses are taken.
    let (text, rodata, data, end) =
        unsafe { (sym(&__text_start), sym(&__rodata_start), sym(&__data_start), sym(&__image_end)) };
    let mut va = text & !0xfff;
    while va < end {
        let flags = if va < rodata {
            F::PRESENT
        } else if va < data {
            F::PRESENT | F::NO_EXECUTE
        } else {
            F::PRESENT | F::WRITABLE | F::NO_EXECUTE
        };
        map4k(&mut m, &mut fa, va, va - KERNEL_VBASE, flags);
        va += 4096;
    }

    // Direct map of RAM in 2 MiB pages.
    for &(base, len) in ram {
        let mut p = base & !0x1f_ffff;
        let end = (base + len + 0x1f_ffff) & !0x1f_ffff;
        while p < end {
            let page = Page::<Size2MiB>::containing_address(VirtAddr::new(DIRECTMAP_BASE + p));
            if m.translate_page(page).is_err() {
                let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(p));
                // SAFETY: maps RAM into the hypervisor-only direct map; no existing mapping
                // changes meaning.
                unsafe { m.map_to(page, frame, F::PRESENT | F::WRITABLE | F::NO_EXECUTE, &mut fa) }
                    .expect("direct map")
                    .ignore();
            }
            p += 0x20_0000;
        }
    }

    // The local APIC's registers, uncached.
    map4k(
        &mut m,
        &mut fa,
        super::apic::APIC_VA,
        super::apic::phys_base(),
        F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::NO_CACHE | F::WRITE_THROUGH,
    );

    // M2P: fresh frames filled with INVALID, mapped twice, taken in 2 MiB machine extents
    // as Xen's (`XENMEM_machphys_mfn_list` names each extent's first frame).
    let m2p_pages = (m2p_entries * 8).div_ceil(4096);
    for chunk in 0..m2p_pages.div_ceil(512) {
        let first = fa.0.alloc_aligned(9).expect("no 2 MiB extent for the M2P table");
        if let Some(slot) = M2P_EXTENTS.get(chunk as usize) {
            slot.store(first, Ordering::Relaxed);
        }
        for i in chunk * 512..m2p_pages.min((chunk + 1) * 512) {
            let mfn = first + i % 512;
            // SAFETY: fresh frame below 4 GiB or already direct-mapped above; exclusively ours.
            unsafe { core::ptr::write_bytes(directmap(mfn << 12), 0xff, 4096) };
            map4k(&mut m, &mut fa, M2P_RW_BASE + i * 4096, mfn << 12, F::PRESENT | F::WRITABLE | F::NO_EXECUTE);
            map4k(&mut m, &mut fa, M2P_RO_BASE + i * 4096, mfn << 12, F::PRESENT | F::USER_ACCESSIBLE | F::NO_EXECUTE);
        }
    }
    M2P_EXTENT_COUNT.store(m2p_pages.div_ceil(512).min(M2P_EXTENTS.len() as u64), Ordering::Relaxed);

    let mut slots = [0u64; 16];
    for (i, s) in slots.iter_mut().enumerate() {
        *s = m.level_4_table()[256 + i].addr().as_u64() | m.level_4_table()[256 + i].flags().bits();
    }
    // SAFETY: the new tables map the running image (text, stack in .bss, data) at the same
    // virtual addresses as the boot tables, plus the direct map; nothing in use disappears
    // except the identity map, which no code after this point uses.
    unsafe { Cr3::write(PhysFrame::containing_address(PhysAddr::new(l4_mfn << 12)), Cr3Flags::empty()) };
    HypervisorSpace { l4_mfn, slots, m2p_entries }
}

fn map4k(m: &mut OffsetPageTable<'_>, fa: &mut Frames<'_, '_>, va: u64, pa: u64, flags: F) {
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
    let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(pa));
    // SAFETY: callers map hypervisor-only or read-only ranges of the reserved slice to frames
    // the microkernel owns; the page is not mapped yet.
    unsafe { m.map_to_with_table_flags(page, frame, flags, flags & (F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE), fa) }
        .expect("hypervisor mapping")
        .ignore();
}

/// The first machine frame of each 2 MiB extent of the M2P table, in order (at most 512
/// extents: an M2P of 1 GiB, for 512 GiB of RAM).
static M2P_EXTENTS: [AtomicU64; 512] = [const { AtomicU64::new(0) }; 512];
static M2P_EXTENT_COUNT: AtomicU64 = AtomicU64::new(0);

/// The first machine frame of the M2P's 2 MiB extent `i` (`XENMEM_machphys_mfn_list`).
pub fn m2p_extent(i: u64) -> Option<u64> {
    if i >= M2P_EXTENT_COUNT.load(Ordering::Relaxed) {
        return None;
    }
    M2P_EXTENTS.get(i as usize).map(|e| e.load(Ordering::Relaxed))
}

/// Writes entry `mfn` of the M2P table.
pub fn set_m2p(mfn: u64, pfn: u64, entries: u64) {
    assert!(mfn < entries, "M2P index {mfn:#x} out of range");
    // SAFETY: the writable M2P view covers `entries` entries (checked above) and is mapped
    // for the whole life of the microkernel.
    unsafe { core::ptr::write_volatile((M2P_RW_BASE as *mut u64).add(mfn as usize), pfn) };
}

/// Switches to the address space whose top level is `l4_mfn`.
pub fn switch_to(l4_mfn: u64) {
    // SAFETY: callers pass a top-level table that carries the hypervisor's 16 slots, so the
    // microkernel's own mappings (code, stack, data) stay in place across the switch.
    unsafe { Cr3::write(PhysFrame::containing_address(PhysAddr::new(l4_mfn << 12)), Cr3Flags::empty()) };
}
