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
//!
//! Frames another (privileged) domain still maps survive that: their remaining references
//! are that domain's, so they stay owned by the dying domain, and go back to the frame
//! source, charged to it, when the last mapping goes (see
//! [`super::page_info::FrameTable::pop_foreign_release`]). Until then the dying domain, its
//! id and its [`super::page_info::DomainMm`] must be kept.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use super::page_info::Level;
use super::pt::Mm;

/// What teardown did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relinquished {
    /// Frames returned to the frame source.
    pub released: u64,
    /// Page tables whose type had to be forced down because no legitimate holder was left
    /// to drop it: always 0 unless the accounting is broken.
    pub forced: u64,
    /// Frames still owned because other domains reference them (foreign mappings; the
    /// general references and any writable type left are theirs). Equal to
    /// [`super::page_info::DomainMm::frames_owned`] afterwards. The machine keeps the
    /// domain (dying) until that reaches zero as their releases are charged to it.
    pub held: u64,
}

impl Mm<'_, '_> {
    /// Drops everything this domain holds and returns its frames to the frame source,
    /// except those other domains still reference ([`Relinquished::held`]): afterwards it
    /// holds no reference itself, has no base pointers and owns only those.
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

            let bases: Vec<u64> = mm.dom.all_bases().collect();
            for base in bases {
                mm.put_type(base);
                mm.put_page(base);
            }
            mm.dom.clear_bases();
            mm.release_held_frames();

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

            // What is still owned is referenced from outside the domain: only another
            // domain's L1 entries can reference a frame they do not own, and they take no
            // page-table type. Those references are the other domain's to drop.
        });
        let held = (0..self.frames.nr_frames()).filter(|&m| self.owned(m)).count() as u64;
        debug_assert_eq!(held, self.dom.frames_owned(), "d{}: owned frames and accounting disagree", self.dom.id());
        Relinquished { released: self.dom.released() - released_before, forced, held }
    }
}
