//! The page-table half of grant mappings and grant copies (Xen's
//! `create_grant_pv_mapping`, `replace_grant_pv_mapping` and the frame side of
//! `gnttab_copy`); the grant rules themselves are the `grant-tables` crate's.
//!
//! A grant mapping is an L1 entry of the mapper's own tables that maps a frame of the
//! granter: it holds the same references as a foreign mapping (a general reference, and
//! the writable type if read-write, so a granted frame mapped writable can never become one
//! of the granter's page tables), and those references belong to the entry. So the frame
//! lives until the last entry mapping it goes, whether the granter ended its grant, gave
//! the frame back or died meanwhile (its release is then charged to the granter through
//! [`super::page_info::FrameTable::pop_foreign_release`]).
#![forbid(unsafe_code)]

use super::page_info::{Level, PageType};
use super::pt::Mm;
use super::ops::is_guest_va;
use super::validate::{entry_mfn, present};
use hypercall_abi::grant_table::{GNTMAP_READONLY, GNTST_BAD_COPY_ARG, GNTST_BAD_PAGE, GNTST_GENERAL_ERROR};

/// `_GNTMAP_guest_avail0`: the first of the three flags copied into the entry.
const GNTMAP_GUEST_AVAIL0_SHIFT: u32 = 16;
use hypercall_abi::layout::pte;

/// Page size, the bound of a copy's offset plus length.
const PAGE: usize = 4096;

impl Mm<'_, '_> {
    /// Maps frame `mfn` of domain `granter` at `va` in this domain's current kernel tables,
    /// read-only (`GNTMAP_readonly` in `flags`) or read-write, with the three
    /// `GNTMAP_guest_avail` bits of `flags` (16..18) in the entry's available bits (9..11,
    /// Xen's `grant_to_pte_flags`: `XENFEAT_gnttab_map_avail_bits`, which Linux requires),
    /// replacing whatever that entry held (Xen's `create_grant_va_mapping`). `GNTST_bad_page` if `granter` does not own `mfn`;
    /// `GNTST_general_error` if no validated L1 maps `va`, or if a read-write mapping
    /// cannot take the writable type (the frame is one of the granter's page tables).
    pub fn grant_map(&mut self, va: u64, mfn: u64, granter: u16, flags: u32) -> Result<(), i16> {
        self.grant_map_walked(&mut WalkHint::default(), va, mfn, granter, flags)
    }

    /// [`Mm::grant_map`], with the walk to the L1 of `va` taken from (and left in) `hint`.
    pub fn grant_map_walked(&mut self, hint: &mut WalkHint, va: u64, mfn: u64, granter: u16, flags: u32) -> Result<(), i16> {
        if !self.frames.owned_by(mfn, granter) {
            return Err(GNTST_BAD_PAGE);
        }
        self.settled(|mm| {
            let (l1, index) = mm.grant_l1_entry(hint, va)?;
            let rw = if flags & GNTMAP_READONLY != 0 { 0 } else { pte::RW };
            let avail = u64::from((flags >> GNTMAP_GUEST_AVAIL0_SHIFT) & 7) << 9;
            let new = (mfn << 12) | pte::PRESENT | pte::USER | pte::ACCESSED | pte::DIRTY | rw | pte::NX | avail;
            mm.take_entry_refs(Level::L1, l1, new, granter).map_err(|_| GNTST_GENERAL_ERROR)?;
            let old = mm.mach.read_pte(l1, index);
            mm.mach.write_pte(l1, index, new);
            mm.put_entry(Level::L1, l1, old);
            // A non-present entry is never cached in a TLB: only a replaced mapping needs
            // flushing.
            if present(old) {
                mm.mach.invlpg(va);
            }
            Ok(())
        })
    }

    /// Removes the grant mapping of `mfn` at `va` (Xen's `replace_grant_va_mapping` with
    /// no new frame): `GNTST_general_error`, with nothing changed, unless the entry for
    /// `va` is present and maps `mfn`. The translation of `va` is not flushed here: the
    /// caller flushes once per batch before the guest runs again (a frame whose last
    /// reference went is flushed at once, as always).
    pub fn grant_unmap(&mut self, va: u64, mfn: u64) -> Result<(), i16> {
        self.grant_unmap_walked(&mut WalkHint::default(), va, mfn)
    }

    /// [`Mm::grant_unmap`], with the walk to the L1 of `va` taken from (and left in) `hint`.
    pub fn grant_unmap_walked(&mut self, hint: &mut WalkHint, va: u64, mfn: u64) -> Result<(), i16> {
        self.settled(|mm| {
            let (l1, index) = mm.grant_l1_entry(hint, va)?;
            let old = mm.mach.read_pte(l1, index);
            if !present(old) || entry_mfn(old) != mfn {
                return Err(GNTST_GENERAL_ERROR);
            }
            mm.mach.write_pte(l1, index, 0);
            mm.put_entry(Level::L1, l1, old);
            Ok(())
        })
    }

    /// `GNTTABOP_unmap_and_replace`'s page-table half (Xen's `replace_grant_pv_mapping`):
    /// the grant mapping of `mfn` at `va` is replaced by the entry at `new_addr`, which is
    /// cleared; the moved entry keeps the references it holds. `GNTST_general_error`, with
    /// nothing changed, unless both addresses have an L1 entry in this domain's kernel
    /// tables and the one at `va` maps `mfn`. Both translations are flushed.
    pub fn grant_replace(&mut self, va: u64, mfn: u64, new_addr: u64) -> Result<(), i16> {
        self.settled(|mm| {
            let (l1, index) = mm.l1_entry_for(va).map_err(|_| GNTST_GENERAL_ERROR)?;
            let (nl1, nindex) = mm.l1_entry_for(new_addr).map_err(|_| GNTST_GENERAL_ERROR)?;
            let old = mm.mach.read_pte(l1, index);
            if !present(old) || entry_mfn(old) != mfn || (nl1, nindex) == (l1, index) {
                return Err(GNTST_GENERAL_ERROR);
            }
            let moved = mm.mach.read_pte(nl1, nindex);
            mm.mach.write_pte(nl1, nindex, 0);
            mm.mach.write_pte(l1, index, moved);
            mm.put_entry(Level::L1, l1, old);
            mm.mach.invlpg(new_addr);
            mm.mach.invlpg(va);
            Ok(())
        })
    }

    /// Lets go of a frame the hypervisor shared with this domain (a grant status frame
    /// whose table went back to v1): `EBUSY`, with nothing changed, while the domain still
    /// maps it (Xen's `gnttab_unpopulate_status_frames`).
    pub fn unshare(&mut self, mfn: u64) -> Result<(), hypercall_abi::errno::Errno> {
        if !shared_releasable(&*self.frames, mfn) || !self.owned(mfn) {
            return Err(hypercall_abi::errno::Errno::EBUSY);
        }
        self.settled(|mm| {
            mm.put_type(mfn);
            mm.put_page(mfn);
        });
        Ok(())
    }

    /// Copies `len` bytes from offset `src_off` of frame `src` (owned by `src_owner`) to
    /// offset `dst_off` of frame `dst` (owned by `dst_owner`), holding a general reference
    /// on both and the writable type on the destination for the copy (Xen's
    /// `gnttab_copy_claim_buf` and `gnttab_copy_buf`). `GNTST_bad_copy_arg` past the page;
    /// `GNTST_bad_page` for a frame its owner does not own, or a destination that cannot be
    /// written (a page table).
    #[allow(clippy::too_many_arguments)] // the two sides of a copy, as Xen's gnttab_copy
    pub fn grant_copy(&mut self, src: u64, src_owner: u16, src_off: usize, dst: u64, dst_owner: u16, dst_off: usize, len: usize) -> Result<(), i16> {
        if src_off + len > PAGE || dst_off + len > PAGE {
            return Err(GNTST_BAD_COPY_ARG);
        }
        self.grant_copy_claim(src, src_owner, false)?;
        if let Err(st) = self.grant_copy_claim(dst, dst_owner, true) {
            self.grant_copy_release(src, false);
            return Err(st);
        }
        let r = self.grant_copy_bytes(dst, dst_off, src, src_off, len);
        self.grant_copy_release(dst, true);
        self.grant_copy_release(src, false);
        r
    }

    /// One side of a copy (Xen's `gnttab_copy_claim_buf`, frame half): a general reference
    /// on `mfn`, which `owner` must own, and for a destination (`write`) the writable type;
    /// `GNTST_bad_page` otherwise, with nothing taken.
    pub fn grant_copy_claim(&mut self, mfn: u64, owner: u16, write: bool) -> Result<(), i16> {
        self.settled(|mm| {
            if !mm.get_page_of(mfn, owner) {
                return Err(GNTST_BAD_PAGE);
            }
            if write && mm.get_type(mfn, PageType::Writable).is_err() {
                mm.put_page(mfn);
                return Err(GNTST_BAD_PAGE);
            }
            Ok(())
        })
    }

    /// Drops what [`Mm::grant_copy_claim`] took.
    pub fn grant_copy_release(&mut self, mfn: u64, write: bool) {
        self.settled(|mm| {
            if write {
                mm.put_type(mfn);
            }
            mm.put_page(mfn);
        })
    }

    /// Copies between two claimed frames; `GNTST_bad_copy_arg` past the page.
    pub fn grant_copy_bytes(&mut self, dst: u64, dst_off: usize, src: u64, src_off: usize, len: usize) -> Result<(), i16> {
        if src_off + len > PAGE || dst_off + len > PAGE {
            return Err(GNTST_BAD_COPY_ARG);
        }
        self.mach.copy_bytes(dst, dst_off, src, src_off, len);
        Ok(())
    }

    /// The L1 entry for `va` in this domain's kernel tables, as [`Mm::l1_entry_for`]
    /// (`GNTST_general_error` where that fails), reusing `hint`'s walk when it covers `va`.
    fn grant_l1_entry(&self, hint: &mut WalkHint, va: u64) -> Result<(u64, usize), i16> {
        let base = self.dom.kernel_base();
        let region = va >> L1_SPAN_SHIFT;
        if hint.l1 != 0 && hint.base == base && hint.region == region && is_guest_va(va) {
            // Grant maps and unmaps write L1 entries only: the L4, L3 and L2 entries of the
            // walk, and the ownership of the tables they name, are as the walk found them.
            // That the table is still a validated L1 is checked anyway (one lookup).
            let p = self.frames.page(hint.l1);
            if p.page_type() == PageType::L1 && p.is_validated() {
                return Ok((hint.l1, Level::L1.index(va)));
            }
        }
        let (l1, index) = self.l1_entry_for(va).map_err(|_| GNTST_GENERAL_ERROR)?;
        *hint = WalkHint { base, region, l1 };
        Ok((l1, index))
    }
}

/// Whether shared frame `mfn` holds only the hypervisor's own references (its domain maps
/// it nowhere), so that it may be let go.
pub fn shared_releasable(frames: &super::page_info::FrameTable<'_>, mfn: u64) -> bool {
    frames.get(mfn).is_some_and(|p| p.is_shared() && p.count() == 1 && p.type_count() == 1)
}

/// Bits of the address range one L1 table translates (2 MiB).
const L1_SPAN_SHIFT: u32 = 21;

/// The last walk of a batch of grant maps or unmaps, kept for the next operation of the
/// same batch when its address lies under the same L1 (Xen's batches re-walk for each
/// operation; here the walk was a third of a map's cost under emulation). Valid only
/// within one batch of grant maps or unmaps of one domain: those write L1 entries and
/// nothing else, so the upper levels cannot change under it. Start each batch with
/// `WalkHint::default()`.
#[derive(Clone, Copy, Debug, Default)]
pub struct WalkHint {
    /// The kernel base table the walk started from.
    base: u64,
    /// `va >> L1_SPAN_SHIFT` of the walk.
    region: u64,
    /// The L1 found; 0 for none.
    l1: u64,
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::super::fake::*;
    use super::*;

    /// Mapper (domain 1, unprivileged) with a validated tree whose L1 maps one data frame
    /// at va 0 and is the kernel base; granter (domain 2) with `n` frames.
    fn mapper_and_granter(n: usize) -> (Env, [u64; 4], u16, std::vec::Vec<u64>) {
        let mut env = Env::new(false, 64);
        let data = env.give(1);
        let t = env.build_tree(&data);
        env.mm().new_baseptr(t[0]).unwrap();
        let g = env.add_domain(false, 32);
        let frames = env.give_to(g, n);
        env.grant_mappings = true;
        env.check_invariants();
        (env, t, g, frames)
    }

    const VA: u64 = 5 << 12;

    #[test]
    fn writable_grant_mapping_holds_type_and_reference_until_unmap() {
        let (mut env, [.., l1], g, f) = mapper_and_granter(2);
        assert_eq!(env.mm().grant_map(VA, f[0], g, 0), Ok(()));
        env.check_invariants();
        let p = env.page(f[0]);
        assert_eq!((p.owner(), p.count(), p.page_type()), (Some(g), 2, PageType::Writable));
        assert_ne!(env.peek(l1, 5) & pte::RW, 0);
        // The granter cannot make it a page table while it is mapped writable.
        assert!(env.mm_of(g).pin(f[0], Level::L1).is_err());
        // Unmap must name the frame mapped there.
        assert_eq!(env.mm().grant_unmap(VA, f[1]), Err(GNTST_GENERAL_ERROR));
        assert_eq!(env.mm().grant_unmap(VA + 4096, f[0]), Err(GNTST_GENERAL_ERROR));
        assert_eq!(env.mm().grant_unmap(VA, f[0]), Ok(()));
        env.check_invariants();
        let p = env.page(f[0]);
        assert_eq!((p.count(), p.type_count()), (1, 0));
        assert_eq!(env.mm().grant_unmap(VA, f[0]), Err(GNTST_GENERAL_ERROR), "double unmap");
    }

    #[test]
    fn unmap_and_replace_moves_the_other_entry_over_the_grant() {
        let (mut env, [.., l1], g, f) = mapper_and_granter(1);
        // va 0 maps the mapper's own data frame (the tree's); va 5 the grant.
        let own = env.peek(l1, 0);
        assert_eq!(env.mm().grant_map(VA, f[0], g, 0), Ok(()));
        // The wrong frame, the same slot twice, or an address without an L1: refused.
        assert_eq!(env.mm().grant_replace(VA, f[0] + 1, 0), Err(GNTST_GENERAL_ERROR));
        assert_eq!(env.mm().grant_replace(VA, f[0], VA), Err(GNTST_GENERAL_ERROR));
        assert_eq!(env.mm().grant_replace(VA, f[0], 0x7000_0000_0000), Err(GNTST_GENERAL_ERROR));
        assert_eq!(env.peek(l1, 5) >> 12 & 0xf_ffff_ffff, f[0]);
        assert_eq!(env.mm().grant_replace(VA, f[0], 0), Ok(()));
        assert_eq!((env.peek(l1, 5), env.peek(l1, 0)), (own, 0), "the entry moved, its old slot cleared");
        env.check_invariants();
        let p = env.page(f[0]);
        assert_eq!((p.count(), p.type_count()), (1, 0), "the grant's references went");
    }

    #[test]
    fn the_guest_avail_flags_land_in_the_entrys_available_bits() {
        let (mut env, [.., l1], g, f) = mapper_and_granter(1);
        // GNTMAP_guest_avail0 and avail2 (bits 16 and 18), with bits past them ignored.
        assert_eq!(env.mm().grant_map(VA, f[0], g, (0b101 << 16) | (1 << 19)), Ok(()));
        assert_eq!(env.peek(l1, 5) & 0xe00, 0b101 << 9);
        assert_eq!(entry_mfn(env.peek(l1, 5)), f[0]);
        env.check_invariants();
    }

    #[test]
    fn read_only_mapping_takes_no_type_and_may_map_a_page_table() {
        let (mut env, _, g, f) = mapper_and_granter(1);
        assert_eq!(env.mm().grant_map(VA, f[0], g, GNTMAP_READONLY), Ok(()));
        assert_eq!(env.page(f[0]).type_count(), 0);
        env.mm_of(g).pin(f[0], Level::L1).unwrap();
        // Now a writable mapping is refused: it is a page table.
        assert_eq!(env.mm().grant_map(VA + 4096, f[0], g, 0), Err(GNTST_GENERAL_ERROR));
        env.mm_of(g).unpin(f[0]).unwrap();
    }

    #[test]
    fn frame_outlives_its_dead_granter_until_the_last_unmap() {
        let (mut env, _, g, f) = mapper_and_granter(3);
        env.mm().grant_map(VA, f[1], g, 0).unwrap();
        let r = env.destroy(g);
        assert_eq!(r.held, 1, "one frame still mapped by the mapper");
        assert!(env.is_dying(g));
        env.check_invariants();
        let before = env.mach.free.len();
        env.mm().grant_unmap(VA, f[1]).unwrap();
        env.settle();
        assert_eq!(env.mach.free.len(), before + 1, "the frame went back at the last unmap");
        assert!(!env.is_dying(g), "the dead granter is forgotten once it owns nothing");
        env.check_invariants();
    }

    #[test]
    fn map_refuses_frames_the_granter_does_not_own_and_bad_addresses() {
        let (mut env, [.., l1], g, f) = mapper_and_granter(1);
        assert_eq!(env.mm().grant_map(VA, l1, g, GNTMAP_READONLY), Err(GNTST_BAD_PAGE), "mapper's own frame named as granter's");
        assert_eq!(env.mm().grant_map(1 << 40, f[0], g, GNTMAP_READONLY), Err(GNTST_GENERAL_ERROR), "no L1 there");
        assert_eq!(env.mm().grant_map(0xffff_8000_0000_0000, f[0], g, GNTMAP_READONLY), Err(GNTST_GENERAL_ERROR), "hypervisor slice");
        assert_eq!(env.page(f[0]).count(), 1);
    }

    #[test]
    fn copy_checks_bounds_owners_and_destination_type() {
        let (mut env, [.., l1], g, f) = mapper_and_granter(2);
        let me = env.dom.id();
        env.poke(f[0], 1, 0x1122_3344_5566_7788);
        assert_eq!(env.mm().grant_copy(f[0], g, 8, f[1], g, 16, 8), Ok(()));
        assert_eq!(env.peek(f[1], 2), 0x1122_3344_5566_7788);
        assert_eq!(env.mm().grant_copy(f[0], g, 4090, f[1], g, 0, 8), Err(GNTST_BAD_COPY_ARG));
        assert_eq!(env.mm().grant_copy(f[0], g, 0, f[1], g, 4089, 8), Err(GNTST_BAD_COPY_ARG));
        assert_eq!(env.mm().grant_copy(f[0], me, 0, f[1], g, 0, 8), Err(GNTST_BAD_PAGE));
        assert_eq!(env.mm().grant_copy(f[0], g, 0, l1, me, 0, 8), Err(GNTST_BAD_PAGE), "into a page table");
        assert_eq!((env.page(f[0]).count(), env.page(f[1]).count(), env.page(f[1]).type_count()), (1, 1, 0));
        env.check_invariants();
    }

    #[test]
    fn a_batch_walk_serves_its_l1_only_with_the_same_outcomes() {
        let (mut env, [.., l1], g, f) = mapper_and_granter(3);
        let mut hint = WalkHint::default();
        for (i, &fr) in f.iter().enumerate() {
            assert_eq!(env.mm().grant_map_walked(&mut hint, VA + i as u64 * 4096, fr, g, 0), Ok(()));
        }
        assert_eq!(hint.l1, l1);
        env.check_invariants();
        // Addresses under no L1, or outside the guest's half, fail as without the hint.
        assert_eq!(env.mm().grant_map_walked(&mut hint, 1 << 40, f[0], g, GNTMAP_READONLY), Err(GNTST_GENERAL_ERROR));
        assert_eq!(env.mm().grant_map_walked(&mut hint, 0xffff_8000_0000_0000, f[0], g, GNTMAP_READONLY), Err(GNTST_GENERAL_ERROR));
        assert_eq!(env.mm().grant_unmap_walked(&mut hint, VA, f[1]), Err(GNTST_GENERAL_ERROR), "another frame there");
        for (i, &fr) in f.iter().enumerate() {
            assert_eq!(env.mm().grant_unmap_walked(&mut hint, VA + i as u64 * 4096, fr), Ok(()));
        }
        env.check_invariants();
        assert!(f.iter().all(|&fr| env.page(fr).count() == 1 && env.page(fr).type_count() == 0));
        // A hint whose table is no longer a validated L1 is not trusted.
        let stale = WalkHint { base: env.dom.kernel_base(), region: VA >> L1_SPAN_SHIFT, l1: f[0] };
        assert_eq!(env.mm().grant_map_walked(&mut { stale }, VA, f[1], g, GNTMAP_READONLY), Ok(()));
        env.mm().grant_unmap(VA, f[1]).unwrap();
    }

    #[test]
    fn copy_claims_take_and_give_back_references() {
        let (mut env, [.., l1], g, f) = mapper_and_granter(2);
        let me = env.dom.id();
        assert_eq!(env.mm().grant_copy_claim(f[0], g, false), Ok(()));
        assert_eq!(env.mm().grant_copy_claim(f[1], g, true), Ok(()));
        assert_eq!((env.page(f[0]).count(), env.page(f[1]).count(), env.page(f[1]).type_count()), (2, 2, 1));
        assert_eq!(env.mm().grant_copy_claim(l1, me, true), Err(GNTST_BAD_PAGE), "a page table");
        assert_eq!(env.mm().grant_copy_claim(f[0], me, false), Err(GNTST_BAD_PAGE), "not its owner");
        assert_eq!(env.mm().grant_copy_bytes(f[1], 4095, f[0], 0, 2), Err(GNTST_BAD_COPY_ARG));
        env.mm().grant_copy_release(f[1], true);
        env.mm().grant_copy_release(f[0], false);
        assert_eq!((env.page(f[0]).count(), env.page(f[1]).count(), env.page(f[1]).type_count()), (1, 1, 0));
        env.check_invariants();
    }

    #[test]
    fn mapper_teardown_drops_grant_references() {
        let (mut env, _, g, f) = mapper_and_granter(2);
        env.mm().grant_map(VA, f[0], g, 0).unwrap();
        env.mm().grant_map(VA + 4096, f[1], g, GNTMAP_READONLY).unwrap();
        env.check_invariants();
        // The mapper (the env's own domain) gives everything back: only the granter's
        // allocation references are left on its frames.
        env.mm().relinquish();
        env.settle();
        let (a, b) = (env.page(f[0]), env.page(f[1]));
        assert_eq!((a.count(), a.type_count(), b.count(), b.type_count()), (1, 0, 1, 0));
    }
}
