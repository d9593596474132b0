//! Teardown of a dying domain's memory (Xen's `relinquish_memory` and
//! `vcpu_destroy_pagetables`): every reference the domain holds is dropped and every frame
//! it owns goes back to the frame source.
//!
//! Page-table types only flow downwards (an Ln entry takes the L(n-1) type; linear entries
//! take none), and every type reference is held by a pin, a base pointer or a validated
//! table one level up. So dropping the base pointers and pins devalidates every table,
//! which drops what their entries hold, including reference cycles through read-only
//! mappings of page tables. A forced pass (top level first) then catches anything still
//! typed, and the allocation references go last.

use super::page_info::Level;
use super::pt::Mm;

/// What teardown did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relinquished {
    /// Frames returned to the frame source.
    pub released: u64,
    /// Frames whose counts had to be forced to zero because no legitimate holder was left
    /// to drop them: always 0 unless the accounting is broken.
    pub forced: u64,
}

impl Mm<'_, '_> {
    /// Drops everything this domain holds and returns all its frames to the frame source.
    /// Afterwards it owns nothing, its counts are all zero and it has no base pointers.
    ///
    /// Call it only when no CPU runs on the domain's page tables (CR3 switched to the
    /// hypervisor's own tables first): its top-level tables go back to the frame source.
    pub fn relinquish(&mut self) -> Relinquished {
        let released_before = self.dom.released();
        let mut forced = 0;
        self.settled(|mm| {
            let id = mm.dom.id();
            let n = mm.frames.nr_frames();
            let owned = |mm: &Mm<'_, '_>, mfn: u64| mm.frames.page(mfn).owner() == Some(id);

            for base in [mm.dom.kernel_base(), mm.dom.user_base()] {
                if base != 0 {
                    mm.put_type(base);
                    mm.put_page(base);
                }
            }
            mm.dom.set_kernel_base(0);
            mm.dom.set_user_base(0);

            for mfn in 0..n {
                if owned(mm, mfn) && mm.frames.page(mfn).is_pinned() {
                    mm.frames.page_mut(mfn).set_pinned(false);
                    mm.put_type(mfn);
                    mm.put_page(mfn);
                }
            }

            // Nothing legitimate holds a page-table type any more. Anything still typed is
            // forced down, top level first, so that each forced table's entries release the
            // tables below before those are looked at.
            for level in Level::TOP_DOWN {
                for mfn in 0..n {
                    let p = *mm.frames.page(mfn);
                    if owned(mm, mfn) && p.page_type() == level.page_type() {
                        forced += 1;
                        mm.frames.page_mut(mfn).set_validated(false);
                        mm.unwind(mfn, level, hypercall_abi::layout::PT_ENTRIES);
                        mm.frames.page_mut(mfn).type_count = 0;
                    }
                }
            }

            for mfn in 0..n {
                if !owned(mm, mfn) {
                    continue;
                }
                let p = *mm.frames.page(mfn);
                if p.is_shared() {
                    // The hypervisor's own references on a frame it shares.
                    mm.put_type(mfn);
                    mm.put_page(mfn);
                } else if p.is_allocated() {
                    mm.frames.page_mut(mfn).set_allocated(false);
                    mm.put_page(mfn);
                }
            }

            // Writable types held by entries of tables that are gone, or references from
            // nowhere: force the frame back (never happens while the accounting holds).
            for mfn in 0..n {
                if owned(mm, mfn) {
                    forced += 1;
                    let p = mm.frames.page_mut(mfn);
                    p.type_count = 0;
                    p.count = 1;
                    mm.put_page(mfn);
                }
            }
        });
        Relinquished { released: self.dom.released() - released_before, forced }
    }
}
