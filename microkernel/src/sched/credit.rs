//! Xen's credit scheduler (`xen/common/sched/credit.c`), for one CPU, in nanoseconds.
//!
//! - **Credit.** Every accounting period (30 ms) the CPU time of the period is handed out
//!   to the vCPUs that burned credit in it (the active ones), in proportion to their
//!   domains' weights (1..=65535, default 256), split evenly among a domain's active
//!   vCPUs; running debits a vCPU by the time it ran. Credit is kept within one period
//!   either way, so an idle vCPU cannot hoard it nor a busy one sink without end.
//! - **Priorities.** BOOST (woken by an event while it had credit) runs before UNDER
//!   (credit left), which runs before OVER (credit spent); a vCPU UNDER runs until its
//!   credit is gone or its slice (10 ms) ends. Uncapped, the scheduler is work-conserving:
//!   OVER vCPUs share what is left, the one with the most credit for its weight first, so
//!   leftover time too goes by weight.
//! - **BOOST.** A vCPU woken with credit left takes the CPU from a running vCPU that is
//!   not boosted (an I/O domain answers at once); the boost ends when it leaves the CPU.
//!   A vCPU that burns its credit waking often loses it, as in Xen.
//! - **Cap.** A capped domain (percent of one CPU) runs at most `cap`% of each period:
//!   once it has, its vCPUs are parked until the next period, even if the CPU would
//!   otherwise idle (Xen parks a capped domain over its credit the same way).
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;

use super::{Choice, ParamError, Params, Policy, Scheduler, VcpuKey, TSLICE_NS};

/// The accounting period.
pub const PERIOD_NS: u64 = 30_000_000;
/// The default weight.
pub const DEFAULT_WEIGHT: u16 = 256;
/// No slice shorter than this (a vCPU with a sliver of credit still makes progress).
const MIN_SLICE_NS: u64 = 100_000;

/// A priority: lower runs first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pri {
    /// Woken by an event with credit left.
    Boost,
    /// Credit left.
    Under,
    /// Credit spent.
    Over,
}

#[derive(Clone, Copy, Debug)]
struct Dom {
    weight: u16,
    cap: u16,
    /// Time its vCPUs ran in this period.
    used: u64,
}

#[derive(Clone, Copy, Debug)]
struct Vcpu {
    credit: i64,
    boost: bool,
    /// Ran, or waited to run, in this period.
    active: bool,
    /// The order in which it was last picked.
    turn: u64,
    /// It yielded: the next pick puts it behind a vCPU of lower priority.
    yielded: bool,
}

/// A vCPU's priority.
fn pri_of(c: &Vcpu) -> Pri {
    if c.boost {
        Pri::Boost
    } else if c.credit > 0 {
        Pri::Under
    } else {
        Pri::Over
    }
}

/// Whether domain `dom` has used its cap's share of this period.
fn parked_in(doms: &BTreeMap<u16, Dom>, dom: u16) -> bool {
    doms.get(&dom).is_some_and(|d| Credit::cap_budget(d).is_some_and(|b| d.used >= b))
}

/// The credit scheduler.
#[derive(Debug)]
pub struct Credit {
    doms: BTreeMap<u16, Dom>,
    vcpus: BTreeMap<VcpuKey, Vcpu>,
    counter: u64,
    /// When the current accounting period ends (0: not started).
    period_end: u64,
    ncpus: u64,
}

impl Credit {
    /// A credit scheduler for `ncpus` CPUs.
    pub fn new(ncpus: u32) -> Credit {
        Credit { doms: BTreeMap::new(), vcpus: BTreeMap::new(), counter: 0, period_end: 0, ncpus: u64::from(ncpus.max(1)) }
    }

    /// `dom`'s run time allowed per period under its cap, if it has one.
    fn cap_budget(d: &Dom) -> Option<u64> {
        (d.cap != 0).then(|| PERIOD_NS * u64::from(d.cap) / 100)
    }

    /// Whether `dom` has used its cap's share of this period.
    fn parked(&self, dom: u16) -> bool {
        parked_in(&self.doms, dom)
    }

    /// `v`'s priority now.
    pub fn priority(&self, v: VcpuKey) -> Option<Pri> {
        self.vcpus.get(&v).map(pri_of)
    }

    /// `v`'s credit (ns), for tests and reports.
    pub fn credit(&self, v: VcpuKey) -> Option<i64> {
        self.vcpus.get(&v).map(|c| c.credit)
    }

    /// Runs the accounting if the period is over.
    fn tick(&mut self, now: u64) {
        if self.period_end == 0 {
            self.period_end = now + PERIOD_NS;
            return;
        }
        if now < self.period_end {
            return;
        }
        self.account_period();
        // After a long idle, the next period starts now (nothing is made up).
        self.period_end = if now - self.period_end >= PERIOD_NS { now + PERIOD_NS } else { self.period_end + PERIOD_NS };
    }

    /// Xen's `csched_acct`: hands the period's CPU time to the active vCPUs by weight.
    /// A vCPU that cannot take its whole share (its credit would pass the upper bound, or
    /// its domain's cap) takes what it can, and the rest goes to the others by weight
    /// (water-filling), so that the time an I/O domain leaves is not lost to the debts of
    /// the busy ones (Xen drops such a vCPU from the active list for the same reason).
    fn account_period(&mut self) {
        let period = u128::from(PERIOD_NS * self.ncpus);
        let upper = PERIOD_NS as i64;
        // Each active vCPU's weight: its domain's, split among the domain's active vCPUs
        // (scaled so the split stays exact enough), and the most it can take.
        let mut open: BTreeMap<VcpuKey, (u128, u128)> = BTreeMap::new();
        for (&id, d) in &self.doms {
            let active: alloc::vec::Vec<VcpuKey> = self.vcpus.range((id, 0)..=(id, usize::MAX)).filter(|(_, c)| c.active).map(|(&k, _)| k).collect();
            let n = active.len() as u128;
            for k in active {
                let credit = self.vcpus.get(&k).map_or(0, |c| c.credit);
                let mut room = (upper - credit).max(0) as u128;
                if let Some(b) = Self::cap_budget(d) {
                    room = room.min(u128::from(b) / n);
                }
                open.insert(k, ((u128::from(d.weight) << 32) / n, room));
            }
        }
        let mut grants: BTreeMap<VcpuKey, u128> = BTreeMap::new();
        let mut pool = period;
        while !open.is_empty() && pool > 0 {
            let total: u128 = open.values().map(|&(w, _)| w).sum();
            let full: alloc::vec::Vec<VcpuKey> = open.iter().filter(|(_, &(w, room))| pool * w / total >= room).map(|(&k, _)| k).collect();
            if full.is_empty() {
                for (k, (w, _)) in core::mem::take(&mut open) {
                    grants.insert(k, pool * w / total);
                }
                break;
            }
            for k in full {
                if let Some((_, room)) = open.remove(&k) {
                    grants.insert(k, room);
                    pool -= room.min(pool);
                }
            }
        }
        for (k, g) in grants {
            if let Some(c) = self.vcpus.get_mut(&k) {
                c.credit = (c.credit + g as i64).clamp(-(PERIOD_NS as i64), upper);
            }
        }
        for c in self.vcpus.values_mut() {
            c.active = false;
        }
        for d in self.doms.values_mut() {
            d.used = 0;
        }
    }
}

impl Scheduler for Credit {
    fn policy(&self) -> Policy {
        Policy::Credit
    }

    fn add_domain(&mut self, dom: u16, vcpus: usize) {
        self.doms.insert(dom, Dom { weight: DEFAULT_WEIGHT, cap: 0, used: 0 });
        for v in 0..vcpus {
            // A new vCPU starts with a slice's worth, UNDER.
            self.vcpus.insert((dom, v), Vcpu { credit: TSLICE_NS as i64, boost: false, active: false, turn: 0, yielded: false });
        }
    }

    fn remove_domain(&mut self, dom: u16) {
        self.doms.remove(&dom);
        self.vcpus.retain(|&(d, _), _| d != dom);
    }

    fn account(&mut self, v: VcpuKey, ran_ns: u64, now: u64) {
        if let Some(c) = self.vcpus.get_mut(&v) {
            let ran = ran_ns.min(4 * PERIOD_NS) as i64;
            c.credit = (c.credit - ran).max(-(PERIOD_NS as i64));
            c.boost = false;
            c.active |= ran > 0;
        }
        if let Some(d) = self.doms.get_mut(&v.0) {
            d.used = d.used.saturating_add(ran_ns);
        }
        self.tick(now);
    }

    fn wake(&mut self, v: VcpuKey, current: Option<VcpuKey>, now: u64) -> bool {
        self.tick(now);
        if self.parked(v.0) {
            return false;
        }
        let Some(c) = self.vcpus.get_mut(&v) else { return false };
        if c.credit > 0 {
            c.boost = true;
        }
        let (woken, running) = (self.priority(v), current.and_then(|k| self.priority(k)));
        matches!((woken, running), (Some(w), Some(r)) if w < r)
    }

    /// As Xen's credit scheduler: the vCPU goes behind the others of its priority, and
    /// behind one of lower priority if there is one (for the next pick).
    fn yielded(&mut self, v: VcpuKey) {
        self.counter += 1;
        if let Some(c) = self.vcpus.get_mut(&v) {
            c.turn = self.counter;
            c.yielded = true;
        }
    }

    fn pick(&mut self, now: u64, runnable: &dyn Fn(VcpuKey) -> bool) -> Option<Choice> {
        self.tick(now);
        // Within BOOST and UNDER, the one picked least recently; within OVER, the one with
        // the most credit for its weight (leftover time goes by weight too).
        // One pass, no allocation (this runs at every switch). A vCPU that wants the CPU is
        // active this period even if it does not get it yet: it gets its share at the next
        // accounting, so that no runnable vCPU starves. A yield counts for this pick only.
        let mut best: Option<(bool, Pri, i128, u64, VcpuKey)> = None;
        let doms = &self.doms;
        for (&k, c) in self.vcpus.iter_mut() {
            let yielded = core::mem::take(&mut c.yielded);
            if !runnable(k) || parked_in(doms, k.0) {
                continue;
            }
            c.active = true;
            let pri = pri_of(c);
            let weight = i128::from(doms.get(&k.0).map_or(DEFAULT_WEIGHT, |d| d.weight).max(1));
            let depth = if pri == Pri::Over { -(i128::from(c.credit) << 16) / weight } else { 0 };
            let key = (yielded, pri, depth, c.turn, k);
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
        let (_, pri, _, _, vcpu) = best?;
        self.counter += 1;
        let c = self.vcpus.get_mut(&vcpu)?;
        c.turn = self.counter;
        let mut slice = TSLICE_NS.min(self.period_end.saturating_sub(now));
        if pri == Pri::Under {
            slice = slice.min(c.credit as u64);
        }
        if let Some(b) = self.doms.get(&vcpu.0).and_then(|d| Self::cap_budget(d).map(|b| b - d.used.min(b))) {
            slice = slice.min(b);
        }
        Some(Choice { vcpu, slice_ns: slice.max(MIN_SLICE_NS) })
    }

    fn next_event(&self) -> Option<u64> {
        self.doms.keys().any(|&d| self.parked(d)).then_some(self.period_end)
    }

    fn params(&self, dom: u16) -> Result<Params, ParamError> {
        let d = self.doms.get(&dom).ok_or(ParamError::NoDomain)?;
        Ok(Params::Credit { weight: d.weight, cap: d.cap })
    }

    /// As Xen's `csched_dom_cntl`: weight 0 and cap 0xffff leave the value as it is.
    fn set_params(&mut self, dom: u16, params: Params) -> Result<(), ParamError> {
        let Params::Credit { weight, cap } = params else {
            return Err(ParamError::WrongScheduler);
        };
        let d = self.doms.get_mut(&dom).ok_or(ParamError::NoDomain)?;
        if weight != 0 {
            d.weight = weight;
        }
        if cap != u16::MAX {
            d.cap = cap;
        }
        Ok(())
    }
}
