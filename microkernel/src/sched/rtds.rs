//! An earliest-deadline-first scheduler with reservations (`sched=rtds`, after Xen's RTDS,
//! `xen/common/sched/rt.c`), for one CPU, in nanoseconds.
//!
//! - **Reservations.** A domain may reserve a budget every period for each of its vCPUs
//!   (µs, as Xen's `xen_domctl_sched_rtds`: period at least 10 µs, budget from 10 µs to
//!   the period). At the start of each of its periods a vCPU's budget is full and its
//!   deadline is the period's end; it runs while it has budget, earliest deadline first,
//!   and a vCPU whose period starts with an earlier deadline than the running one's takes
//!   the CPU.
//! - **Admission control** (which Xen leaves to the administrator): the reservations may
//!   not add up to more than the CPU (the sum of budget/period over every reserved vCPU at
//!   most 1, which EDF can always meet); a set that would is refused and nothing changes.
//! - **Extra time.** A domain without a reservation (the default), or a reserved one with
//!   `extra` set (Xen's `XEN_DOMCTL_SCHEDRT_extra`) once its budget is spent, runs only in
//!   the time no reservation wants, in turns of 10 ms: best effort, never at a reserved
//!   vCPU's expense.
//! - **Deadline misses.** A period that ends with budget left although its vCPU wanted
//!   the CPU long enough before the deadline to use it is a miss, counted per domain (EDF
//!   within the admitted load never misses; a late timer or a long stay in the hypervisor
//!   would, which is what the counter is for).
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;

use super::{Choice, ParamError, Params, Policy, Scheduler, VcpuKey, TSLICE_NS};

/// Shortest period and budget (Xen's `RTDS_MIN_PERIOD`, `RTDS_MIN_BUDGET`).
pub const MIN_US: u32 = 10;
/// The period shown for a domain without a reservation.
pub const DEFAULT_PERIOD_US: u32 = 10_000;
/// No slice shorter than this.
const MIN_SLICE_NS: u64 = 10_000;

#[derive(Clone, Copy, Debug)]
struct Dom {
    /// Period and budget in µs; budget 0: no reservation.
    period_us: u32,
    budget_us: u32,
    extra: bool,
    misses: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Vcpu {
    /// The current period's end (0: not started).
    deadline: u64,
    /// Budget left in this period (ns).
    left: u64,
    /// Time it ran past its budget (the timer came late): taken from the next period's.
    over: u64,
    /// Since when it has wanted the CPU with budget left, as the picks saw it.
    wanted_since: Option<u64>,
    /// The order in which it was last picked in extra time.
    turn: u64,
    /// Since when it has run without its time being charged (set when it is picked).
    /// A period that ends while it runs, seen from a wake-up or from another CPU's pick
    /// before its own CPU accounts it, is charged what it ran up to the deadline first.
    running_since: Option<u64>,
}

/// The EDF scheduler.
#[derive(Debug)]
pub struct Rtds {
    doms: BTreeMap<u16, Dom>,
    vcpus: BTreeMap<VcpuKey, Vcpu>,
    counter: u64,
}

impl Rtds {
    /// An EDF scheduler for `ncpus` CPUs. Admission control counts one CPU whatever
    /// `ncpus` is (see `set_params`).
    pub fn new(ncpus: u32) -> Rtds {
        let _ = ncpus;
        Rtds { doms: BTreeMap::new(), vcpus: BTreeMap::new(), counter: 0 }
    }

    /// Deadline misses of `dom` so far.
    pub fn misses(&self, dom: u16) -> Option<u64> {
        self.doms.get(&dom).map(|d| d.misses)
    }

    /// The CPU share the reservations take, in millionths, with `dom`'s as `with` instead.
    fn utilisation(&self, dom: u16, with: Option<(u32, u32)>) -> u64 {
        self.doms
            .iter()
            .map(|(&id, d)| {
                let (p, b) = if id == dom { with.unwrap_or((d.period_us, d.budget_us)) } else { (d.period_us, d.budget_us) };
                let n = self.vcpus.range((id, 0)..=(id, usize::MAX)).count() as u64;
                if b == 0 { 0 } else { u64::from(b) * 1_000_000 / u64::from(p) * n }
            })
            .sum()
    }

    /// Starts new periods that are due: budget full again; a period that ended with budget
    /// left while the vCPU wanted to run is a miss.
    fn replenish(&mut self, now: u64) {
        for (&(dom, _), c) in self.vcpus.iter_mut() {
            let Some(d) = self.doms.get_mut(&dom) else { continue };
            if d.budget_us == 0 {
                continue;
            }
            let period = u64::from(d.period_us) * 1000;
            if c.deadline == 0 {
                c.deadline = now + period;
                c.left = u64::from(d.budget_us) * 1000;
                // The reservation's first period: what it ran before is not charged to it.
                c.running_since = c.running_since.map(|s| s.max(now));
                continue;
            }
            if now < c.deadline {
                continue;
            }
            // Running as the period ends: what it ran before the deadline is the old
            // period's; the rest the new one's, when it is accounted.
            if let Some(since) = c.running_since.filter(|&s| s < c.deadline) {
                let ran = c.deadline - since;
                c.over = c.over.saturating_add(ran.saturating_sub(c.left));
                c.left = c.left.saturating_sub(ran);
                c.running_since = Some(c.deadline);
            }
            // A miss: it wanted the CPU long enough before the deadline to use what was
            // left of its budget, and did not get it (EDF within the admitted load never
            // does this; a late timer or a long stretch in the hypervisor would).
            if c.left > 0 && c.wanted_since.is_some_and(|w| c.deadline.saturating_sub(w) >= c.left) {
                d.misses += 1;
            }
            // The period now runs; periods missed entirely (the vCPU blocked) are skipped.
            let behind = (now - c.deadline) / period + 1;
            let start = c.deadline + (behind - 1) * period;
            c.wanted_since = c.wanted_since.map(|w| w.max(start));
            c.deadline += behind * period;
            let budget = u64::from(d.budget_us) * 1000;
            // Debt is paid from this period, at most half of it, so that it always runs;
            // the rest from the next ones (forgiven, a long overrun would give it more
            // than its reservation over time).
            let paid = c.over.min(budget / 2);
            c.left = budget - paid;
            c.over -= paid;
        }
    }

    /// The earliest deadline among reserved vCPUs (when a new period starts).
    fn next_deadline(&self) -> Option<u64> {
        self.vcpus.iter().filter(|(k, c)| c.deadline != 0 && self.doms.get(&k.0).is_some_and(|d| d.budget_us != 0)).map(|(_, c)| c.deadline).min()
    }
}

impl Scheduler for Rtds {
    fn policy(&self) -> Policy {
        Policy::Rtds
    }

    fn add_domain(&mut self, dom: u16, vcpus: usize) {
        self.doms.insert(dom, Dom { period_us: DEFAULT_PERIOD_US, budget_us: 0, extra: true, misses: 0 });
        for v in 0..vcpus {
            self.vcpus.insert((dom, v), Vcpu::default());
        }
    }

    fn remove_domain(&mut self, dom: u16) {
        self.doms.remove(&dom);
        self.vcpus.retain(|&(d, _), _| d != dom);
    }

    fn account(&mut self, v: VcpuKey, ran_ns: u64, now: u64) {
        if let Some(c) = self.vcpus.get_mut(&v) {
            // What a replenishment has not charged yet (all of it, unless a period ended
            // while it ran).
            let ran_ns = c.running_since.take().map_or(ran_ns, |since| now.saturating_sub(since));
            // A reserved vCPU that overran its budget owes it to its next period, so that
            // a late timer does not give it more than it reserved.
            if self.doms.get(&v.0).is_some_and(|d| d.budget_us != 0) {
                c.over = c.over.saturating_add(ran_ns.saturating_sub(c.left));
            }
            c.left = c.left.saturating_sub(ran_ns);
        }
        self.replenish(now);
    }

    fn wake(&mut self, v: VcpuKey, current: Option<VcpuKey>, now: u64) -> bool {
        self.replenish(now);
        let Some(c) = self.vcpus.get_mut(&v) else { return false };
        if c.left == 0 {
            return false;
        }
        // It wants the CPU from now, with budget left.
        c.wanted_since.get_or_insert(now);
        let c = *c;
        // A reserved vCPU with budget preempts extra time, or a later deadline.
        match current.and_then(|k| self.vcpus.get(&k)) {
            Some(cur) if cur.left > 0 => c.deadline < cur.deadline,
            Some(_) => true,
            None => false,
        }
    }

    fn yielded(&mut self, v: VcpuKey) {
        self.counter += 1;
        if let Some(c) = self.vcpus.get_mut(&v) {
            c.turn = self.counter;
        }
    }

    fn pick(&mut self, now: u64, runnable: &dyn Fn(VcpuKey) -> bool) -> Option<Choice> {
        self.replenish(now);
        // Since when each has wanted the CPU with budget left (there is a pick at every
        // deadline, so a period's end sees it).
        for (&k, c) in self.vcpus.iter_mut() {
            c.wanted_since = if c.left > 0 && runnable(k) { Some(c.wanted_since.unwrap_or(now)) } else { None };
        }
        let edf = self.vcpus.iter().filter(|(&k, c)| c.left > 0 && runnable(k)).min_by_key(|(&k, c)| (c.deadline, k)).map(|(&k, _)| k);
        let next_period = self.next_deadline();
        if let Some(k) = edf {
            let c = self.vcpus.get(&k)?;
            // Until its budget is spent, or a new period (with perhaps an earlier deadline)
            // starts for another vCPU.
            let mut slice = c.left;
            if let Some(t) = next_period.filter(|&t| t > now) {
                slice = slice.min(t - now);
            }
            if let Some(c) = self.vcpus.get_mut(&k) {
                c.running_since = Some(now);
            }
            return Some(Choice { vcpu: k, slice_ns: slice.max(MIN_SLICE_NS) });
        }
        // Extra time: vCPUs without a reservation, or with `extra`, in turns.
        let doms = &self.doms;
        let (&k, _) = self
            .vcpus
            .iter()
            .filter(|(&k, _)| runnable(k) && doms.get(&k.0).is_some_and(|d| d.budget_us == 0 || d.extra))
            .min_by_key(|(_, c)| c.turn)?;
        self.counter += 1;
        if let Some(c) = self.vcpus.get_mut(&k) {
            c.turn = self.counter;
            c.running_since = Some(now);
        }
        let mut slice = TSLICE_NS;
        if let Some(t) = next_period.filter(|&t| t > now) {
            slice = slice.min(t - now);
        }
        Some(Choice { vcpu: k, slice_ns: slice.max(MIN_SLICE_NS) })
    }

    fn next_event(&self) -> Option<u64> {
        self.next_deadline()
    }

    fn params(&self, dom: u16) -> Result<Params, ParamError> {
        let d = self.doms.get(&dom).ok_or(ParamError::NoDomain)?;
        Ok(Params::Rtds { period_us: d.period_us, budget_us: d.budget_us, extra: d.extra, misses: d.misses })
    }

    /// As Xen's `rt_validate_params`, then admission control; a budget of 0 with a period
    /// drops the reservation.
    fn set_params(&mut self, dom: u16, params: Params) -> Result<(), ParamError> {
        let Params::Rtds { period_us, budget_us, extra, .. } = params else {
            return Err(ParamError::WrongScheduler);
        };
        if !self.doms.contains_key(&dom) {
            return Err(ParamError::NoDomain);
        }
        if period_us < MIN_US || (budget_us != 0 && (budget_us < MIN_US || budget_us > period_us)) {
            return Err(ParamError::Invalid);
        }
        // One CPU's worth, whatever the number of CPUs: vCPUs wait on per-CPU queues that
        // balancing moves them between, so only a set that fits one CPU is met wherever
        // its vCPUs end up (global EDF across CPUs is not done).
        if self.utilisation(dom, Some((period_us, budget_us))) > 1_000_000 {
            return Err(ParamError::Unschedulable);
        }
        let d = self.doms.get_mut(&dom).ok_or(ParamError::NoDomain)?;
        (d.period_us, d.budget_us, d.extra) = (period_us, budget_us, extra);
        // The new reservation starts with a new period.
        for (_, c) in self.vcpus.range_mut((dom, 0)..=(dom, usize::MAX)) {
            *c = Vcpu { turn: c.turn, running_since: c.running_since, ..Vcpu::default() };
        }
        Ok(())
    }
}
