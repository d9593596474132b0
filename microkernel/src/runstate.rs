//! A vCPU's runstate (Xen's `struct vcpu_runstate_info`): which state it is in since when,
//! and the time it spent in each, kept by the machine at every state change.
#![forbid(unsafe_code)]

use hypercall_abi::vcpu::{VcpuRunstateInfo, RUNSTATE_RUNNING};

/// The runstate of one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runstate {
    info: VcpuRunstateInfo,
}

/// A new vCPU: runnable from system time zero.
impl Default for Runstate {
    fn default() -> Self {
        Runstate::new(hypercall_abi::vcpu::RUNSTATE_RUNNABLE, 0)
    }
}

impl Runstate {
    /// A vCPU in `state` from system time `now` on, with no time anywhere yet.
    pub fn new(state: u32, now: u64) -> Self {
        Runstate { info: VcpuRunstateInfo { state, state_entry_time: now, ..Default::default() } }
    }

    /// The state now.
    pub fn state(&self) -> u32 {
        self.info.state
    }

    /// Enters `state` at `now`: the time since the last change goes to the state left.
    /// (A clock that went backwards adds nothing.)
    pub fn set(&mut self, state: u32, now: u64) {
        if state == self.info.state {
            return;
        }
        let spent = now.saturating_sub(self.info.state_entry_time);
        if let Some(t) = self.info.time.get_mut(self.info.state as usize) {
            *t = t.saturating_add(spent);
        }
        self.info.state = state;
        self.info.state_entry_time = now;
    }

    /// What a guest sees at `now`, as Xen's `vcpu_runstate_get`: the time of the state it is
    /// in counts up to `now`.
    pub fn info(&self, now: u64) -> VcpuRunstateInfo {
        let mut info = self.info;
        let spent = now.saturating_sub(info.state_entry_time);
        if let Some(t) = info.time.get_mut(info.state as usize) {
            *t = t.saturating_add(spent);
        }
        info
    }

    /// Whether it is running.
    pub fn is_running(&self) -> bool {
        self.info.state == RUNSTATE_RUNNING
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypercall_abi::vcpu::{RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNABLE};

    #[test]
    fn time_goes_to_the_state_left_and_the_current_one_counts_to_now() {
        let mut r = Runstate::new(RUNSTATE_RUNNABLE, 100);
        r.set(RUNSTATE_RUNNING, 150);
        r.set(RUNSTATE_BLOCKED, 400);
        r.set(RUNSTATE_BLOCKED, 450);
        r.set(RUNSTATE_RUNNABLE, 1000);
        let i = r.info(1200);
        assert_eq!((i.state, i.state_entry_time), (RUNSTATE_RUNNABLE, 1000));
        assert_eq!(i.time, [250, 50 + 200, 600, 0]);
        // A clock that went backwards adds nothing.
        r.set(RUNSTATE_OFFLINE, 900);
        assert_eq!(r.info(800).time, [250, 50, 600, 0]);
        assert!(!r.is_running());
    }
}
