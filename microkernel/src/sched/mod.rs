//! The scheduling core: which vCPU runs next and for how long, as plain data over a clock
//! the caller passes in, so that host tests drive it with a fake one.
//!
//! A [`Scheduler`] is told of domains and their vCPUs, of the time each vCPU ran, of wake
//! ups and yields, and picks the next vCPU among those the machine says can run, with its
//! slice (Xen's `struct scheduler` ops: `insert_unit`, `wake`, `yield`, `do_schedule`,
//! `adjust`). Runnability (blocked, paused, stopped) stays the machine's: the scheduler
//! asks through a closure, so the two never disagree.
//!
//! - [`rr::RoundRobin`] (`sched=rr`): every runnable vCPU in turn, 10 ms slices.
//! - [`credit::Credit`] (`sched=credit`, the default): Xen's credit scheduler: CPU time
//!   shared by weight, an optional cap, BOOST for a vCPU woken by an event.
//! - [`rtds::Rtds`] (`sched=rtds`): earliest deadline first over reservations (a budget
//!   every period) with admission control, the rest of the time best effort.
#![forbid(unsafe_code)]

pub mod balance;
pub mod credit;
pub mod rr;
pub mod rtds;

#[cfg(test)]
mod tests;

use alloc::boxed::Box;

/// A vCPU: its domain and number.
pub type VcpuKey = (u16, usize);

/// The default time slice.
pub const TSLICE_NS: u64 = 10_000_000;

/// Which scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Round robin.
    RoundRobin,
    /// Xen's credit scheduler.
    Credit,
    /// Earliest deadline first with reservations (Xen's RTDS).
    Rtds,
}

impl Policy {
    /// Its name on the command line (`sched=`).
    pub fn name(self) -> &'static str {
        match self {
            Policy::RoundRobin => "rr",
            Policy::Credit => "credit",
            Policy::Rtds => "rtds",
        }
    }

    /// The policy named `name`.
    pub fn parse(name: &[u8]) -> Option<Policy> {
        match name {
            b"rr" => Some(Policy::RoundRobin),
            b"credit" => Some(Policy::Credit),
            b"rtds" => Some(Policy::Rtds),
            _ => None,
        }
    }

    /// Xen's `XEN_SCHEDULER_*` number (round robin has none in Xen: 0).
    pub fn xen_id(self) -> u32 {
        match self {
            Policy::RoundRobin => 0,
            Policy::Credit => hypercall_abi::domctl::XEN_SCHEDULER_CREDIT,
            Policy::Rtds => hypercall_abi::domctl::XEN_SCHEDULER_RTDS,
        }
    }

    /// A scheduler of this policy for `ncpus` CPUs.
    pub fn make(self, ncpus: u32) -> Box<dyn Scheduler> {
        match self {
            Policy::RoundRobin => Box::new(rr::RoundRobin::default()),
            Policy::Credit => Box::new(credit::Credit::new(ncpus)),
            Policy::Rtds => Box::new(rtds::Rtds::new(ncpus)),
        }
    }
}

/// The next vCPU to run and how long it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The vCPU.
    pub vcpu: VcpuKey,
    /// Its slice, in ns.
    pub slice_ns: u64,
}

/// A domain's scheduling parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Params {
    /// The credit scheduler's: weight 1..=65535, cap in percent of one CPU (0: none).
    Credit {
        /// Share of CPU time against the other domains' weights.
        weight: u16,
        /// Most CPU time it may use, in percent of one CPU; 0 for no cap.
        cap: u16,
    },
    /// EDF's: a budget every period for each vCPU (µs; budget 0: no reservation), extra
    /// time allowed, and the deadline misses so far (read only).
    Rtds {
        /// Period, µs.
        period_us: u32,
        /// Budget per period, µs (0: none reserved).
        budget_us: u32,
        /// May run in time no reservation wants once its budget is spent.
        extra: bool,
        /// Deadline misses so far (ignored when setting).
        misses: u64,
    },
}

/// Why parameters were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamError {
    /// The scheduler running is not the one they are for.
    WrongScheduler,
    /// A value out of range.
    Invalid,
    /// No such domain.
    NoDomain,
    /// The reservations would take more than the CPUs (admission control).
    Unschedulable,
}

/// A scheduler: the policy deciding which vCPU runs (one CPU for now).
pub trait Scheduler: Send {
    /// Which policy this is.
    fn policy(&self) -> Policy;
    /// A domain with `vcpus` vCPUs joins (with the default parameters).
    fn add_domain(&mut self, dom: u16, vcpus: usize);
    /// A domain is gone.
    fn remove_domain(&mut self, dom: u16);
    /// vCPU `v` ran `ran_ns` ending at `now` and leaves the CPU (or is picked again).
    fn account(&mut self, v: VcpuKey, ran_ns: u64, now: u64);
    /// vCPU `v` woke up (an event came while it was blocked) while `current` runs:
    /// whether `v` should take the CPU from it now.
    fn wake(&mut self, v: VcpuKey, current: Option<VcpuKey>, now: u64) -> bool;
    /// vCPU `v` gives up the rest of its slice.
    fn yielded(&mut self, v: VcpuKey);
    /// The next vCPU among those `runnable` says can run, and its slice; `None` if none
    /// may run now (all blocked, or held back by a cap).
    fn pick(&mut self, now: u64, runnable: &dyn Fn(VcpuKey) -> bool) -> Option<Choice>;
    /// When the scheduler needs the CPU next whatever runs (a cap's window ending), if
    /// anything waits for it.
    fn next_event(&self) -> Option<u64>;
    /// A domain's parameters.
    fn params(&self, dom: u16) -> Result<Params, ParamError>;
    /// Changes a domain's parameters.
    fn set_params(&mut self, dom: u16, params: Params) -> Result<(), ParamError>;
}
