//! The frame accounting audit: recomputes every frame's general and type references from
//! what holds them (the entries of every validated page table, pins, base pointers,
//! allocation and sharing) and checks them against the frame table, with the typing and
//! entry rules and each domain's totals. The host tests run it after every step of their
//! random operation sequences; the microkernel runs it on demand for dom0
//! (`SYSCTL_AUDIT`), so a fuzzing campaign can ask after each attack whether anything in
//! the accounting went wrong.
//!
//! The audit only reads. It needs two counters and a type per frame; when the heap cannot
//! hold them it says so ([`AuditError::NoMemory`]) rather than guessing.
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::layout::{pte, PT_ENTRIES};

use super::page_info::{DomainMm, FrameTable, Level, PageType};
use super::pt::MmMachine;
use super::validate::{check_flags, entry_mfn, is_hypervisor_slot, present};

/// One domain as the audit sees it.
#[derive(Clone, Copy)]
pub struct AuditDomain<'a> {
    /// Its memory state.
    pub mm: &'a DomainMm,
    /// Destroyed, with frames still referenced by others.
    pub dying: bool,
}

/// What an audit found when everything held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditSummary {
    /// Frames owned by some domain.
    pub owned: u64,
    /// Validated page-table frames (all levels).
    pub tables: u64,
    /// Present entries checked in them.
    pub entries: u64,
}

/// Why an audit failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditError {
    /// An invariant does not hold: what and where.
    Violation(String),
    /// The heap cannot hold the audit's counters.
    NoMemory,
}

fn fail<T>(why: String) -> Result<T, AuditError> {
    Err(AuditError::Violation(why))
}

/// Per-frame tallies, dense over the frame table.
struct Tally {
    count: Vec<u32>,
    types: Vec<u32>,
    want: Vec<Option<PageType>>,
}

impl Tally {
    fn new(n: usize) -> Result<Tally, AuditError> {
        let mut t = Tally { count: Vec::new(), types: Vec::new(), want: Vec::new() };
        t.count.try_reserve_exact(n).map_err(|_| AuditError::NoMemory)?;
        t.types.try_reserve_exact(n).map_err(|_| AuditError::NoMemory)?;
        t.want.try_reserve_exact(n).map_err(|_| AuditError::NoMemory)?;
        t.count.resize(n, 0);
        t.types.resize(n, 0);
        t.want.resize(n, None);
        Ok(t)
    }

    /// One holder of a general reference (and a type reference when `ty` is given).
    fn hold(&mut self, mfn: u64, ty: Option<PageType>, why: &str) -> Result<(), AuditError> {
        let m = usize::try_from(mfn).unwrap_or(usize::MAX);
        let (Some(count), Some(types), Some(want)) = (self.count.get_mut(m), self.types.get_mut(m), self.want.get_mut(m)) else {
            return fail(format!("{why} names mfn {mfn:#x}, past the frame table"));
        };
        *count = count.saturating_add(1);
        if let Some(ty) = ty {
            *types = types.saturating_add(1);
            match *want {
                Some(w) if w != ty => return fail(format!("mfn {mfn:#x} held as {ty:?} ({why}) and as {w:?}")),
                _ => *want = Some(ty),
            }
        }
        Ok(())
    }
}

/// Audits the frame table against everything that holds frames. `domains` must list every
/// domain that exists (dying ones included); `foreign_mappings` allows L1 entries of an
/// unprivileged domain to map another domain's frames (grant mappings do).
pub fn audit(
    frames: &FrameTable<'_>,
    mem: &impl MmMachine,
    domains: &[AuditDomain<'_>],
    foreign_mappings: bool,
) -> Result<AuditSummary, AuditError> {
    let n = usize::try_from(frames.nr_frames()).map_err(|_| AuditError::NoMemory)?;
    let mut tally = Tally::new(n)?;
    let mut summary = AuditSummary::default();
    let dom_of = |id: u16| domains.iter().find(|d| d.mm.id() == id);
    let mut owned: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
    for mfn in 0..frames.nr_frames() {
        let Some(p) = frames.get(mfn) else { continue };
        if p.owner().is_some() != (p.count() > 0) {
            return fail(format!("mfn {mfn:#x}: an owner but no reference, or the reverse: {p:?}"));
        }
        if p.count() < p.type_count() {
            return fail(format!("mfn {mfn:#x}: fewer references than type references: {p:?}"));
        }
        if (p.type_count() > 0) != p.is_validated() {
            return fail(format!("mfn {mfn:#x}: validated but untyped, or the reverse: {p:?}"));
        }
        let Some(id) = p.owner() else {
            if p.is_pinned() || p.is_allocated() || p.is_shared() {
                return fail(format!("free mfn {mfn:#x} has flags: {p:?}"));
            }
            continue;
        };
        let Some(dom) = dom_of(id) else { return fail(format!("mfn {mfn:#x} is owned by d{id}, which does not exist")) };
        summary.owned += 1;
        let o = owned.entry(id).or_default();
        if p.is_shared() {
            o.1 += 1;
        } else {
            o.0 += 1;
        }
        if !mem.is_ram(mfn) {
            return fail(format!("d{id} owns mfn {mfn:#x}, which is not RAM"));
        }
        if dom.dying {
            if p.is_pinned() || p.is_allocated() {
                return fail(format!("dying d{id} still holds mfn {mfn:#x}: {p:?}"));
            }
            if !matches!(p.page_type(), PageType::None | PageType::Writable) {
                return fail(format!("dying d{id}'s mfn {mfn:#x} is still a table"));
            }
        }
        if p.is_allocated() {
            tally.hold(mfn, None, "allocation")?;
        }
        // The hypervisor's references on a shared frame go with the domain's teardown.
        if p.is_shared() && !dom.dying {
            tally.hold(mfn, Some(PageType::Writable), "sharing")?;
        }
        if p.is_pinned() {
            let ty = p.page_type();
            if ty.level().is_none() {
                return fail(format!("pinned mfn {mfn:#x} is not a table: {p:?}"));
            }
            tally.hold(mfn, Some(ty), "pin")?;
        }
        let Some(level) = p.page_type().level() else { continue };
        summary.tables += 1;
        for i in 0..PT_ENTRIES {
            let e = mem.read_pte(mfn, i);
            if level == Level::L4 && is_hypervisor_slot(i) {
                // The CPU sets the accessed bit as it walks.
                if (e ^ mem.hypervisor_l4e(i)) & !pte::ACCESSED != 0 {
                    return fail(format!("L4 {mfn:#x} slot {i} is not the hypervisor's: {e:#x}"));
                }
                continue;
            }
            if !present(e) {
                continue;
            }
            summary.entries += 1;
            let at = || format!("d{id}'s {level:?} {mfn:#x}[{i}] = {e:#x}");
            if check_flags(level, e, dom.mm.privileged()).is_err() {
                return fail(format!("{}: flags refused by the rules", at()));
            }
            if e & pte::USER == 0 {
                return fail(format!("{}: no USER bit", at()));
            }
            if level != Level::L1 && e & pte::ACCESSED == 0 {
                return fail(format!("{}: upper entry without A", at()));
            }
            let t = entry_mfn(e);
            if level == Level::L1 {
                // An L1 entry holds references exactly when its frame is RAM with an owner.
                if !mem.is_ram(t) {
                    if !dom.mm.privileged() {
                        return fail(format!("{}: device memory in an unprivileged domain", at()));
                    }
                    if frames.get(t).and_then(|q| q.owner()).is_some() {
                        return fail(format!("{}: device frame with an owner", at()));
                    }
                    continue;
                }
                let Some(to) = frames.get(t).and_then(|q| q.owner()) else {
                    return fail(format!("{}: maps RAM nobody owns", at()));
                };
                if to != id {
                    let Some(other) = dom_of(to) else { return fail(format!("{}: maps a frame of d{to}, gone", at())) };
                    let foreign = dom.mm.privileged() && !other.mm.privileged();
                    if !foreign && !foreign_mappings {
                        return fail(format!("{}: maps d{to}'s frame", at()));
                    }
                }
                let ty = (e & pte::RW != 0).then_some(PageType::Writable);
                tally.hold(t, ty, "an L1 entry")?;
            } else {
                if t == mfn {
                    if e & pte::RW != 0 {
                        return fail(format!("{}: writable linear entry", at()));
                    }
                    continue;
                }
                if !frames.owned_by(t, id) {
                    return fail(format!("{}: references a table not its own", at()));
                }
                let lower = level.lower().map(|l| l.page_type());
                tally.hold(t, lower, "an upper entry")?;
            }
        }
    }
    for d in domains {
        let id = d.mm.id();
        if d.dying {
            if d.mm.all_bases().next().is_some() {
                return fail(format!("dying d{id} has base pointers"));
            }
            if d.mm.frames_owned() == 0 {
                return fail(format!("dying d{id} owns nothing but was kept"));
            }
        }
        for &(mfn, ty) in d.mm.held_frames() {
            if !frames.owned_by(mfn, id) {
                return fail(format!("d{id}'s held frame {mfn:#x} is not its own"));
            }
            tally.hold(mfn, Some(ty), "a vCPU's GDT or vcpu_info")?;
        }
        for base in d.mm.all_bases() {
            if !frames.owned_by(base, id) {
                return fail(format!("d{id}'s base pointer {base:#x} is not its own"));
            }
            tally.hold(base, Some(PageType::L4), "a base pointer")?;
        }
        let (tot, shared) = owned.get(&id).copied().unwrap_or_default();
        if (d.mm.tot_pages(), d.mm.shared_pages()) != (tot, shared) {
            return fail(format!(
                "d{id} counts {} pages and {} shared, but owns {tot} and {shared}",
                d.mm.tot_pages(),
                d.mm.shared_pages()
            ));
        }
    }
    for mfn in 0..frames.nr_frames() {
        let Some(p) = frames.get(mfn) else { continue };
        let m = mfn as usize;
        let held = (tally.count.get(m).copied().unwrap_or(0), tally.types.get(m).copied().unwrap_or(0));
        if (p.count(), p.type_count()) != held {
            return fail(format!(
                "mfn {mfn:#x}: {} references and {} type references recorded, {} and {} held: {p:?}",
                p.count(),
                p.type_count(),
                held.0,
                held.1
            ));
        }
        if let Some(ty) = tally.want.get(m).copied().flatten() {
            if p.page_type() != ty {
                return fail(format!("mfn {mfn:#x} is {:?}, held as {ty:?}", p.page_type()));
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::super::fake::{Env, FIRST_FREE};
    use super::*;

    fn run(env: &Env) -> Result<AuditSummary, AuditError> {
        audit(&env.frames, &env.mach, &[AuditDomain { mm: &env.dom, dying: false }], false)
    }

    #[test]
    fn a_consistent_machine_passes_and_is_counted() {
        let mut env = Env::new(false, 40);
        env.give(8);
        let s = run(&env).unwrap();
        assert_eq!(s.owned, 8);
    }

    #[test]
    fn a_frame_the_domain_does_not_count_is_found() {
        let mut env = Env::new(false, 40);
        env.give(4);
        // Ownership recorded in the table but not in the domain's total (a leak).
        let mut shadow = env.dom.clone();
        let mfn = env.mach.free.pop_first().unwrap();
        env.frames.assign(mfn, &mut shadow).unwrap();
        let Err(AuditError::Violation(why)) = run(&env) else { panic!("not found") };
        assert!(why.contains("counts 4 pages"), "{why}");
    }

    #[test]
    fn a_frame_of_a_domain_that_is_gone_is_found() {
        let mut env = Env::new(false, 40);
        let mut gone = DomainMm::new(7, false, 10);
        let mfn = env.mach.free.pop_first().unwrap();
        assert!(mfn >= FIRST_FREE);
        env.frames.assign(mfn, &mut gone).unwrap();
        let Err(AuditError::Violation(why)) = run(&env) else { panic!("not found") };
        assert!(why.contains("d7, which does not exist"), "{why}");
    }

    #[test]
    fn a_table_entry_the_counts_do_not_know_is_found() {
        let mut env = Env::new(false, 40);
        let data = env.give(2);
        let [l4, _, _, l1] = env.build_tree(&data);
        env.mm().new_baseptr(l4).unwrap();
        assert!(run(&env).is_ok());
        // A write behind the validator's back: an entry in a live L1 that took no
        // reference.
        let extra = env.give(1)[0];
        env.poke(l1, 7, (extra << 12) | pte::PRESENT | pte::USER);
        let Err(AuditError::Violation(why)) = run(&env) else { panic!("not found") };
        assert!(why.contains(&format!("mfn {extra:#x}")), "{why}");
    }
}
