//! Round robin (`sched=rr`): every runnable vCPU in turn, the one that ran least recently
//! first, for a fixed slice; a wake-up never preempts.
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;

use super::{Choice, ParamError, Params, Policy, Scheduler, VcpuKey, TSLICE_NS};

/// The round-robin scheduler.
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// Each vCPU's turn: the order in which it was last picked (0: never).
    turn: BTreeMap<VcpuKey, u64>,
    counter: u64,
}

impl Scheduler for RoundRobin {
    fn policy(&self) -> Policy {
        Policy::RoundRobin
    }

    fn add_domain(&mut self, dom: u16, vcpus: usize) {
        for v in 0..vcpus {
            self.turn.insert((dom, v), 0);
        }
    }

    fn remove_domain(&mut self, dom: u16) {
        self.turn.retain(|&(d, _), _| d != dom);
    }

    fn account(&mut self, _v: VcpuKey, _ran_ns: u64, _now: u64) {}

    fn wake(&mut self, _v: VcpuKey, _current: Option<VcpuKey>, _now: u64) -> bool {
        false
    }

    fn yielded(&mut self, v: VcpuKey) {
        self.counter += 1;
        if let Some(t) = self.turn.get_mut(&v) {
            *t = self.counter;
        }
    }

    fn pick(&mut self, _now: u64, runnable: &dyn Fn(VcpuKey) -> bool) -> Option<Choice> {
        let (&vcpu, _) = self.turn.iter().filter(|(&k, _)| runnable(k)).min_by_key(|(_, &t)| t)?;
        self.counter += 1;
        self.turn.insert(vcpu, self.counter);
        Some(Choice { vcpu, slice_ns: TSLICE_NS })
    }

    fn next_event(&self) -> Option<u64> {
        None
    }

    fn params(&self, _dom: u16) -> Result<Params, ParamError> {
        Err(ParamError::WrongScheduler)
    }

    fn set_params(&mut self, _dom: u16, _params: Params) -> Result<(), ParamError> {
        Err(ParamError::WrongScheduler)
    }
}
