//! Teardown of a dying domain's memory (Xen's `relinquish_memory` and
//! `vcpu_destroy_pagetables`): every reference the domain holds is dropped and every frame
//! it owns goes back to the frame source.
//!
//! Teardown goes in steps of bounded work ([`Mm::relinquish_some`], Xen's preemptible
//! `relinquish_memory`): the hypercall that destroys a domain continues itself between
//! steps, so a large domain does not hold the machine for the whole of it. First the
//! domain's page tables are emptied bottom up, L1 tables first: each validated table's
//! entries drop their references and are cleared, 512 entries at a time. A table so
//! emptied holds nothing, so whatever later drops its type (an entry above, a pin, a base
//! pointer) has nothing left to unwind: no single step cascades through a whole address
//! space.
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

/// Where a teardown stands between two steps: kept by the machine with the dying domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Teardown {
    phase: Phase,
    /// The next frame to look at in this phase.
    next: u64,
    /// The domain's released count when teardown began.
    released_before: u64,
    forced: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Emptying validated page tables of this level (L1 first).
    Empty(Level),
    /// Dropping the base pointers and the frames held for the vCPUs.
    Bases,
    /// Dropping the pins.
    Unpin,
    /// Forcing down anything still typed as a table of this level (L4 first).
    Force(Level),
    /// Dropping the allocation references.
    Release,
}

/// Work units of one step: a frame looked at costs 1, a page-table entry emptied 1, a
/// frame acted on [`FRAME_WORK`]. About a millisecond under emulation.
pub const STEP_WORK: u64 = 8 * 1024;

/// What visiting one frame costs beyond looking at it.
const FRAME_WORK: u64 = 8;

impl Teardown {
    /// A teardown of a domain whose released count is `released` so far.
    pub fn new(released: u64) -> Teardown {
        Teardown { phase: Phase::Empty(Level::L1), next: 0, released_before: released, forced: 0 }
    }
}

impl Mm<'_, '_> {
    /// Drops everything this domain holds and returns its frames to the frame source,
    /// except those other domains still reference ([`Relinquished::held`]): afterwards it
    /// holds no reference itself, has no base pointers and owns only those. All in one
    /// go: [`Mm::relinquish_some`] until it is done.
    ///
    /// Call it only when no CPU runs on the domain's page tables (CR3 switched to the
    /// hypervisor's own tables first): its top-level tables go back to the frame source.
    pub fn relinquish(&mut self) -> Relinquished {
        let mut t = Teardown::new(self.dom.released());
        loop {
            if let Some(r) = self.relinquish_some(&mut t, u64::MAX) {
                return r;
            }
        }
    }

    /// One step of teardown, of at most about `work` units (see [`STEP_WORK`]): what it
    /// did once it is complete, `None` while there is more. Between steps the domain's
    /// frames stay consistent (every count matches what references them; emptied tables
    /// are tables with no entries), so the machine may run other work in between, as long
    /// as nothing runs on the domain's page tables or gives it references.
    pub fn relinquish_some(&mut self, t: &mut Teardown, work: u64) -> Option<Relinquished> {
        let done = self.settled(|mm| {
            let id = mm.dom.id();
            let n = mm.frames.nr_frames();
            let owned = |mm: &Mm<'_, '_>, mfn: u64| mm.frames.page(mfn).owner() == Some(id);
            let mut spent = 0u64;
            while spent < work {
                if t.phase == Phase::Bases {
                    let bases: Vec<u64> = mm.dom.all_bases().collect();
                    spent += FRAME_WORK * (bases.len() as u64 + 1);
                    for base in bases {
                        mm.put_type(base);
                        mm.put_page(base);
                    }
                    mm.dom.clear_bases();
                    mm.release_held_frames();
                    (t.phase, t.next) = (Phase::Unpin, 0);
                    continue;
                }
                if t.next >= n {
                    t.next = 0;
                    t.phase = match t.phase {
                        Phase::Empty(Level::L1) => Phase::Empty(Level::L2),
                        Phase::Empty(Level::L2) => Phase::Empty(Level::L3),
                        Phase::Empty(Level::L3) => Phase::Empty(Level::L4),
                        Phase::Empty(Level::L4) | Phase::Bases => Phase::Bases,
                        Phase::Unpin => Phase::Force(Level::L4),
                        Phase::Force(l) => l.lower().map_or(Phase::Release, Phase::Force),
                        Phase::Release => return true,
                    };
                    continue;
                }
                let mfn = t.next;
                t.next += 1;
                spent += 1;
                if !owned(mm, mfn) {
                    continue;
                }
                let p = *mm.frames.page(mfn);
                match t.phase {
                    Phase::Empty(level) => {
                        if p.page_type() == level.page_type() && p.is_validated() {
                            spent += mm.empty_table(mfn, level);
                        }
                    }
                    Phase::Force(level) => {
                        // Nothing legitimate holds a page-table type any more. Anything
                        // still typed is forced down, top level first, so that each forced
                        // table's entries release the tables below before those are
                        // looked at.
                        if p.page_type() == level.page_type() {
                            t.forced += 1;
                            mm.frames.page_mut(mfn).set_validated(false);
                            mm.unwind(mfn, level, hypercall_abi::layout::PT_ENTRIES);
                            mm.frames.page_mut(mfn).type_count = 0;
                            spent += FRAME_WORK;
                        }
                    }
                    Phase::Release => {
                        if p.is_shared() {
                            // The hypervisor's own references on a frame it shares.
                            mm.put_type(mfn);
                            mm.put_page(mfn);
                            spent += FRAME_WORK;
                        } else if p.is_allocated() {
                            mm.frames.page_mut(mfn).set_allocated(false);
                            mm.put_page(mfn);
                            spent += FRAME_WORK;
                        }
                    }
                    Phase::Unpin => {
                        if p.is_pinned() {
                            mm.frames.page_mut(mfn).set_pinned(false);
                            mm.put_type(mfn);
                            mm.put_page(mfn);
                            spent += FRAME_WORK;
                        }
                    }
                    Phase::Bases => {}
                }
            }
            false
        });
        if !done {
            return None;
        }
        // What is still owned is referenced from outside the domain: only another
        // domain's L1 entries can reference a frame they do not own, and they take no
        // page-table type. Those references are the other domain's to drop.
        let held = (0..self.frames.nr_frames()).filter(|&m| self.owned(m)).count() as u64;
        debug_assert_eq!(held, self.dom.frames_owned(), "d{}: owned frames and accounting disagree", self.dom.id());
        Some(Relinquished { released: self.dom.released() - t.released_before, forced: t.forced, held })
    }

    /// Drops what every entry of validated `level` table `table` holds and clears the
    /// entry (the hypervisor's slots of an L4 stay); the table keeps its type, as a table
    /// with no entries. Returns the work done.
    fn empty_table(&mut self, table: u64, level: Level) -> u64 {
        for i in 0..hypercall_abi::layout::PT_ENTRIES {
            if level == Level::L4 && super::validate::is_hypervisor_slot(i) {
                continue;
            }
            let e = self.mach.read_pte(table, i);
            if e != 0 {
                self.put_entry(level, table, e);
                self.mach.write_pte(table, i, 0);
            }
        }
        hypercall_abi::layout::PT_ENTRIES as u64
    }
}
