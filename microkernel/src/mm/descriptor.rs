//! Descriptor-table frames (Xen's `PGT_seg_desc_page`): the frames of a guest's GDT
//! (`set_gdt`) and the descriptors written into them (`update_descriptor`), checked as
//! Xen's `check_descriptor` checks them for a 64-bit PV guest:
//!
//! - a not-present descriptor is taken as it is (it always faults);
//! - a code or data segment is taken, its DPL raised to 3 (the guest kernel runs in ring
//!   3; Xen's `__fixup_guest_selector`); base and limit are not looked at (long mode
//!   ignores them, but for FS/GS whose bases the guest sets through the MSRs anyway);
//! - a system descriptor of type 0 is taken (it is the upper half of a 16-byte one);
//! - a call gate is taken when its target selector is a guest one or the flat kernel code
//!   selector, with its DPL moved into the target's RPL and the DPL made 0 (so that using
//!   it faults into the hypervisor, as Xen does to emulate it);
//! - any other system descriptor (a TSS, an LDT, an interrupt or trap gate) is refused.
//!
//! While a frame has the descriptor type it cannot be mapped writable (and a frame mapped
//! writable cannot take the type): the guest changes it only through `update_descriptor`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]
#![forbid(unsafe_code)]

use hypercall_abi::errno::Errno;
use hypercall_abi::layout::PT_ENTRIES;

use super::page_info::PageType;
use super::pt::Mm;

/// Present bit, in the descriptor's high dword.
const P: u32 = 1 << 15;
/// DPL field.
const DPL: u32 = 3 << 13;
/// Code/data (1) or system (0).
const S: u32 = 1 << 12;
/// Type field.
const TYPE: u32 = 0xf << 8;
/// A 64-bit call gate's type.
const CALL_GATE: u32 = 0xc << 8;
/// First GDT entry the hypervisor owns.
pub const FIRST_RESERVED_GDT_ENTRY: u32 = 7168;
/// The flat kernel code selector (Xen's `FLAT_KERNEL_CS` for 64-bit guests).
const FLAT_KERNEL_CS: u32 = 0xe033;

/// Xen's `check_descriptor` for a 64-bit PV guest: the descriptor to store (with Xen's
/// fixups), or `None` when it is refused.
pub fn check_descriptor(desc: u64) -> Option<u64> {
    let mut a = desc as u32;
    let mut b = (desc >> 32) as u32;
    if b & P == 0 {
        return Some(desc);
    }
    // The DPL a guest gives is at least its kernel's ring, 3.
    b |= DPL;
    if b & S != 0 {
        return Some(u64::from(a) | (u64::from(b) << 32));
    }
    if b & TYPE == 0 {
        return Some(desc);
    }
    if b & TYPE != CALL_GATE {
        return None;
    }
    let cs = a >> 16;
    let gate_ok = (cs >> 3) < FIRST_RESERVED_GDT_ENTRY || (cs & !3) == (FLAT_KERNEL_CS & !3) || cs & 4 != 0;
    if !gate_ok {
        return None;
    }
    // DPL 0 so that its use faults; the guest's (fixed-up) DPL, 3, kept in the target's
    // RPL.
    b &= !DPL;
    let cs = (cs & !3) | 3;
    a = (a & 0xffff) | (cs << 16);
    // The reserved bits of a 64-bit gate's second dword must be zero.
    if b & 0xff != 0 {
        return None;
    }
    Some(u64::from(a) | (u64::from(b) << 32))
}

impl Mm<'_, '_> {
    /// Checks every descriptor of frame `mfn`, storing Xen's fixups (Xen's
    /// `alloc_segdesc_page`); `EINVAL` at the first refused one (the ones before it keep
    /// their fixups, as in Xen).
    pub(super) fn validate_descriptors(&mut self, mfn: u64) -> Result<(), Errno> {
        for i in 0..PT_ENTRIES {
            let d = self.mach.read_pte(mfn, i);
            let fixed = check_descriptor(d).ok_or(Errno::EINVAL)?;
            if fixed != d {
                self.mach.write_pte(mfn, i, fixed);
            }
        }
        Ok(())
    }

    /// Makes `frames` this domain's descriptor-table frames for one vCPU's GDT (Xen's
    /// `pv_set_gdt`): each must be its own and take the descriptor type (not mapped
    /// writable, not a page table, every descriptor acceptable). On success the frames are
    /// held (a general and a type reference each, recorded in the domain's descriptor
    /// frames) and the `old` ones let go; on failure nothing changes: `EINVAL`.
    pub fn set_gdt_frames(&mut self, old: &[u64], frames: &[u64]) -> Result<(), Errno> {
        self.settled(|mm| {
            for (k, &mfn) in frames.iter().enumerate() {
                let ok = mm.get_page(mfn) && {
                    let typed = mm.get_type(mfn, PageType::SegDesc).is_ok();
                    if !typed {
                        mm.put_page(mfn);
                    }
                    typed
                };
                if !ok {
                    for &taken in frames.get(..k).unwrap_or(&[]) {
                        mm.put_type(taken);
                        mm.put_page(taken);
                    }
                    return Err(Errno::EINVAL);
                }
            }
            for &mfn in frames {
                mm.dom.hold_frame(mfn, PageType::SegDesc);
            }
            for &mfn in old {
                if mm.dom.release_held(mfn, PageType::SegDesc) {
                    mm.put_type(mfn);
                    mm.put_page(mfn);
                }
            }
            Ok(())
        })
    }

    /// `update_descriptor(maddr, desc)` (Xen's `do_update_descriptor`): `maddr` must be
    /// 8-byte aligned in a frame of this domain that is a descriptor frame or may be
    /// writable data, and `desc` acceptable to [`check_descriptor`]; the checked value is
    /// written. `EINVAL` otherwise, with nothing changed. Returns the frame written.
    pub fn update_descriptor(&mut self, maddr: u64, desc: u64) -> Result<u64, Errno> {
        if !maddr.is_multiple_of(8) {
            return Err(Errno::EINVAL);
        }
        let fixed = check_descriptor(desc).ok_or(Errno::EINVAL)?;
        let mfn = maddr >> 12;
        let index = ((maddr & 0xfff) / 8) as usize;
        self.settled(|mm| {
            if !mm.get_page(mfn) {
                return Err(Errno::EINVAL);
            }
            let ty = if mm.frames.page(mfn).page_type() == PageType::SegDesc { PageType::SegDesc } else { PageType::Writable };
            if mm.get_type(mfn, ty).is_err() {
                mm.put_page(mfn);
                return Err(Errno::EINVAL);
            }
            mm.mach.write_pte(mfn, index, fixed);
            mm.put_type(mfn);
            mm.put_page(mfn);
            Ok(mfn)
        })
    }

    /// Holds frame `mfn` of this domain writable for the hypervisor (a registered
    /// `vcpu_info`, Xen's `map_vcpu_info`) for the domain's life: `EINVAL` if it is not its
    /// own or cannot be writable (a page table, a descriptor frame).
    pub fn hold_writable(&mut self, mfn: u64) -> Result<(), Errno> {
        self.settled(|mm| {
            if !mm.get_page(mfn) {
                return Err(Errno::EINVAL);
            }
            if mm.get_type(mfn, PageType::Writable).is_err() {
                mm.put_page(mfn);
                return Err(Errno::EINVAL);
            }
            mm.dom.hold_frame(mfn, PageType::Writable);
            Ok(())
        })
    }

    /// Lets go of one holding of `mfn` made by [`Mm::hold_writable`] (FIFO event pages
    /// when the domain resets its event channels); nothing if it holds none.
    pub fn release_writable(&mut self, mfn: u64) {
        self.settled(|mm| {
            if mm.dom.release_held(mfn, PageType::Writable) {
                mm.put_type(mfn);
                mm.put_page(mfn);
            }
        })
    }

    /// Lets go of every frame held for the domain's vCPUs (its teardown).
    pub(super) fn release_held_frames(&mut self) {
        while let Some((mfn, _)) = self.dom.take_any_held() {
            self.put_type(mfn);
            self.put_page(mfn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::fake::Env;
    use crate::mm::page_info::Level;

    /// Linux's flat 64-bit kernel code (DPL 0) and user data (DPL 3) descriptors.
    const KERNEL_CS64: u64 = 0x00af_9b00_0000_ffff;
    const USER_DS: u64 = 0x00cf_f300_0000_ffff;

    #[test]
    fn xen_check_descriptor_rules() {
        assert_eq!(check_descriptor(0), Some(0), "null");
        assert_eq!(check_descriptor(0x0000_1234_5678_9abc), Some(0x0000_1234_5678_9abc), "not present");
        assert_eq!(check_descriptor(KERNEL_CS64), Some(KERNEL_CS64 | (3 << 45)), "DPL raised to 3");
        assert_eq!(check_descriptor(USER_DS), Some(USER_DS));
        // System descriptors: type 0 (the upper half of a 16-byte one) is fine; a TSS, an
        // LDT and an interrupt gate are refused.
        assert_eq!(check_descriptor(0x0000_8000_0000_0000), Some(0x0000_8000_0000_0000));
        for ty in [0x9u64, 0x2, 0xe, 0xf] {
            assert_eq!(check_descriptor((0x80 | ty) << 40), None, "type {ty:#x}");
        }
        // A call gate to a guest selector, DPL 3: DPL 0, the DPL in the target's RPL.
        let gate = (0xffffu64 << 48) | (0xec << 40) | (0x0010 << 16) | 0x1234;
        let fixed = check_descriptor(gate).unwrap();
        assert_eq!((fixed >> 45) & 3, 0);
        assert_eq!((fixed >> 16) & 0xffff, 0x0013);
        // ... to a hypervisor selector: refused; reserved bits set: refused.
        assert_eq!(check_descriptor((0xec << 40) | (0xe008 << 16)), None);
        assert_eq!(check_descriptor((0xec << 40) | (0x10 << 16) | (1 << 32)), None);
    }

    #[test]
    fn gdt_frames_are_typed_read_only_and_go_back() {
        let mut env = Env::new(false, 64);
        let f = env.give(3);
        env.poke(f[0], 5, USER_DS);
        env.poke(f[0], 2, KERNEL_CS64);
        env.mm().set_gdt_frames(&[], &[f[0]]).unwrap();
        assert_eq!(env.peek(f[0], 2), KERNEL_CS64 | (3 << 45), "fixed up in place");
        let p = env.page(f[0]);
        assert_eq!((p.page_type(), p.type_count(), p.count()), (PageType::SegDesc, 1, 2));
        env.check_invariants();
        // Now it cannot be mapped writable, nor become a page table.
        assert!(env.mm().pin(f[0], Level::L1).is_err());
        // A frame with a bad descriptor is refused, and nothing changes.
        env.poke(f[1], 7, 0x0000_8900_0000_0067); // a TSS
        assert_eq!(env.mm().set_gdt_frames(&[f[0]], &[f[2], f[1]]), Err(Errno::EINVAL));
        assert_eq!(env.page(f[2]).type_count(), 0, "the frame taken first was let go");
        assert_eq!(env.page(f[0]).page_type(), PageType::SegDesc);
        env.check_invariants();
        // Replacing lets the old frame go.
        env.mm().set_gdt_frames(&[f[0]], &[f[2]]).unwrap();
        assert_eq!((env.page(f[0]).type_count(), env.page(f[0]).count()), (0, 1));
        env.check_invariants();
        // update_descriptor into the installed frame and into a plain data frame.
        let m = env.mm().update_descriptor((f[2] << 12) | (3 * 8), KERNEL_CS64).unwrap();
        assert_eq!(m, f[2]);
        assert_eq!(env.peek(f[2], 3), KERNEL_CS64 | (3 << 45));
        env.mm().update_descriptor(f[0] << 12, USER_DS).unwrap();
        assert_eq!(env.mm().update_descriptor((f[0] << 12) | 4, USER_DS), Err(Errno::EINVAL), "unaligned");
        assert_eq!(env.mm().update_descriptor(f[0] << 12, 0x0000_8900_0000_0067), Err(Errno::EINVAL), "a TSS");
        assert_eq!(env.mm().update_descriptor(0x7fff_0000 << 12, USER_DS), Err(Errno::EINVAL), "not its frame");
        env.check_invariants();
        env.mm().set_gdt_frames(&[f[2]], &[]).unwrap();
        assert_eq!(env.page(f[2]).type_count(), 0);
        env.check_invariants();
    }

    #[test]
    fn a_vcpu_info_frame_is_held_writable() {
        let mut env = Env::new(false, 64);
        let f = env.give(2);
        env.mm().hold_writable(f[0]).unwrap();
        let p = env.page(f[0]);
        assert_eq!((p.page_type(), p.type_count(), p.count()), (PageType::Writable, 1, 2));
        env.check_invariants();
        // It cannot become a page table or a descriptor frame now; another's frame and a
        // descriptor frame cannot be held writable.
        assert!(env.mm().pin(f[0], Level::L1).is_err());
        assert_eq!(env.mm().set_gdt_frames(&[], &[f[0]]), Err(Errno::EINVAL));
        env.mm().set_gdt_frames(&[], &[f[1]]).unwrap();
        assert_eq!(env.mm().hold_writable(f[1]), Err(Errno::EINVAL));
        assert_eq!(env.mm().hold_writable(0x7fff_0000), Err(Errno::EINVAL));
        env.check_invariants();
    }
}
