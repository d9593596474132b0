//! `set_gdt` (2) and `update_descriptor` (10), as Xen's `do_set_gdt` and
//! `do_update_descriptor` for a 64-bit PV guest; the frame rules are
//! `crate::mm::descriptor`'s.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]
#![forbid(unsafe_code)]

use hypercall_abi::errno::Errno;

use super::mm::with_mm;
use super::Platform;
use crate::guest_access::read_guest;
use crate::mm::descriptor::FIRST_RESERVED_GDT_ENTRY;

/// Most frames a guest GDT has: the 14 pages below the hypervisor's entries.
pub const MAX_GDT_FRAMES: usize = (FIRST_RESERVED_GDT_ENTRY / 512) as usize;

/// `set_gdt(frame_list, entries)`: `entries` at most 7168 (`EINVAL`), the frame list (one
/// machine frame per 512 entries) read from the guest (`EFAULT`), then installed for the
/// calling vCPU (`EINVAL` for a frame that cannot be a descriptor table).
pub(super) fn set_gdt(p: &mut impl Platform, frame_list: u64, entries: u64) -> Result<i64, Errno> {
    if entries > u64::from(FIRST_RESERVED_GDT_ENTRY) {
        return Err(Errno::EINVAL);
    }
    let n = entries.div_ceil(512) as usize;
    let mut frames = [0u64; MAX_GDT_FRAMES];
    for (k, slot) in frames.iter_mut().enumerate().take(n) {
        *slot = read_guest(p, frame_list.wrapping_add(8 * k as u64))?;
    }
    p.set_gdt(frames.get(..n).unwrap_or(&[]), entries as u32)?;
    Ok(0)
}

/// The GDT a `vcpu_guest_context` names (Xen's `arch_set_info_guest` through its
/// `set_gdt`): `gdt_ents` at most 7168 (`EINVAL`), one frame of `gdt_frames` per 512 of
/// them. The frames' own checks are the memory layer's, as for `set_gdt`.
pub fn context_gdt(frames: &[u64; 16], entries: u64) -> Result<heapless::Vec<u64, MAX_GDT_FRAMES>, Errno> {
    if entries > u64::from(FIRST_RESERVED_GDT_ENTRY) {
        return Err(Errno::EINVAL);
    }
    Ok(frames.iter().copied().take(entries.div_ceil(512) as usize).collect())
}

/// `update_descriptor(maddr, desc)`.
pub(super) fn update_descriptor(p: &mut impl Platform, maddr: u64, desc: u64) -> Result<i64, Errno> {
    let mfn = with_mm(p, |mm| mm.update_descriptor(maddr, desc))??;
    p.descriptor_written(mfn);
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_contexts_gdt_is_one_frame_per_512_entries_up_to_7168() {
        let mut frames = [0u64; 16];
        frames.iter_mut().enumerate().for_each(|(k, f)| *f = 100 + k as u64);
        assert_eq!(super::context_gdt(&frames, 0).unwrap().as_slice(), &[] as &[u64]);
        assert_eq!(super::context_gdt(&frames, 16).unwrap().as_slice(), &[100]);
        assert_eq!(super::context_gdt(&frames, 513).unwrap().as_slice(), &[100, 101]);
        assert_eq!(super::context_gdt(&frames, 7168).unwrap().len(), 14);
        assert_eq!(super::context_gdt(&frames, 7169), Err(hypercall_abi::errno::Errno::EINVAL));
        assert_eq!(super::context_gdt(&frames, u64::MAX), Err(hypercall_abi::errno::Errno::EINVAL));
    }

    use crate::hypercall::dispatch;
    use crate::hypercall::fake::{FakePlatform, BASE};
    use hypercall_abi::errno::Errno;
    use hypercall_abi::hypercall::Hypercall;

    #[test]
    fn set_gdt_reads_one_frame_per_512_entries() {
        let mut p = FakePlatform::new(false);
        for k in 0..14u64 {
            p.mem[8 * k as usize..8 * k as usize + 8].copy_from_slice(&(0x100 + k).to_le_bytes());
        }
        let set = |p: &mut FakePlatform, list: u64, entries: u64| dispatch(p, Hypercall::SetGdt as u64, [list, entries, 0, 0, 0]);
        assert_eq!(set(&mut p, BASE, 16), 0);
        assert_eq!(set(&mut p, BASE, 513), 0);
        assert_eq!(set(&mut p, BASE, 7168), 0);
        assert_eq!(set(&mut p, BASE, 0), 0);
        assert_eq!(set(&mut p, BASE, 7169), Errno::EINVAL.to_ret());
        assert_eq!(set(&mut p, 0xffff_8000_0000_0000, 1), Errno::EFAULT.to_ret());
        assert_eq!(
            p.gdts,
            [(std::vec![0x100], 16), (std::vec![0x100, 0x101], 513), ((0x100..0x10e).collect(), 7168), (std::vec![], 0)]
        );
    }
}
