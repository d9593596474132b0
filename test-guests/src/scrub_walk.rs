//! Shared by `pattern` and `scanner`: every free page of this guest, one at a time, through
//! a writable mapping.
//!
//! The free pages are the initial region's padding (mapped writable there at start of day)
//! and every pfn past the region (mapped nowhere). The padding is reached where it is
//! mapped. For the others, one padding page's virtual address serves as a window:
//! `update_va_mapping` points it at each frame in turn (with INVLPG), and at the end back at
//! its own frame. The kernel image, start_info, the p2m, the boot tables and the stack are
//! not visited: they are not free, and the image itself holds the pattern's constant.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use pv_guest::hypercall_abi::mmu::UVMF_INVLPG;
use pv_guest::hypercall_abi::types::Pfn;
use pv_guest::mm::xen::{update_va_mapping_raw, GuestMm};
use pv_guest::mm::{make_entry, DATA_RW_FLAGS, ENTRIES};
use pv_guest::StartInfo;

/// The top half of every word the pattern guest writes (`0x5a5a_c0de_xxxx_xxxx`).
pub const TAG: u64 = 0x5a5a_c0de;

/// One page, as 512 words.
pub type Page = [u64; ENTRIES];

/// Calls `visit(pfn, page)` for every free page of this guest; returns how many it visited.
pub fn each_free_page(
    si: &'static StartInfo,
    mut visit: impl FnMut(u64, &mut Page),
) -> Result<u64, String> {
    // An unprivileged guest may not ask for physinfo; the p2m bounds the M2P lookups, and
    // this walk makes none.
    let mm = GuestMm::init(si, None).map_err(|e| format!("memory layer: {e}"))?;
    let padding: Vec<u64> = mm
        .layout
        .mapped_free()
        .filter(|&pfn| mm.frames.is_free(Pfn(pfn)))
        .collect();
    let beyond: Vec<u64> = mm
        .layout
        .unmapped_free()
        .filter(|&pfn| mm.frames.is_free(Pfn(pfn)))
        .collect();
    let mut visited = 0;
    for &pfn in &padding {
        let va = mm.va_of(Pfn(pfn)).ok_or("padding pfn outside the region")?;
        // SAFETY: `va` is the initial-region mapping of a free padding page: writable, page
        // aligned, and used by nothing else in this program.
        visit(pfn, unsafe { &mut *(va as *mut Page) });
        visited += 1;
    }
    let Some(&window_pfn) = padding.first() else {
        return Err("no padding page to use as a window".into());
    };
    let window = mm
        .va_of(Pfn(window_pfn))
        .ok_or("window outside the region")?;
    let own = mm
        .p2m
        .mfn(Pfn(window_pfn))
        .ok_or("window pfn has no frame")?;
    for &pfn in &beyond {
        let Some(mfn) = mm.p2m.mfn(Pfn(pfn)) else {
            continue; // given back: no memory behind it
        };
        let ret = update_va_mapping_raw(window, make_entry(mfn, DATA_RW_FLAGS), UVMF_INVLPG);
        if ret != 0 {
            let _ = update_va_mapping_raw(window, make_entry(own, DATA_RW_FLAGS), UVMF_INVLPG);
            return Err(format!(
                "update_va_mapping of pfn {pfn:#x} (mfn {:#x}) returned {ret}",
                mfn.0
            ));
        }
        // SAFETY: the window now maps `mfn`, a free frame of ours mapped nowhere else,
        // writable; nothing else uses the window's address meanwhile.
        visit(pfn, unsafe { &mut *(window as *mut Page) });
        visited += 1;
    }
    let ret = update_va_mapping_raw(window, make_entry(own, DATA_RW_FLAGS), UVMF_INVLPG);
    if ret != 0 {
        return Err(format!("restoring the window returned {ret}"));
    }
    Ok(visited)
}
