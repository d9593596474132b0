//! Which CPU a vCPU waits on: each vCPU belongs to one CPU's run queue (its `processor`,
//! as in Xen), and the machine moves it between them by the two classic rules of
//! distributed load balancing, chosen with `balance=` on the command line:
//!
//! - **pull** (receiver-initiated): a CPU with nothing of its own to run takes the best
//!   waiting vCPU of another CPU's queue (Xen's credit scheduler steals the same way in
//!   `csched_load_balance`);
//! - **push** (sender-initiated): a CPU that has a vCPU waiting (one it was just woken
//!   for, or one left behind by its pick) hands it to an idle CPU and kicks that CPU
//!   (Xen's `__runq_tickle` of idlers);
//! - `both` (the default) does both; `off` neither: vCPUs stay where they were placed.
//!
//! Pinning (`xl vcpu-pin`, the config's `cpus=`) limits every rule: a vCPU waits and
//! runs only on the CPUs of its affinity mask. These are the decisions alone, over plain
//! counts, so host tests check them; the machine applies them under its lock.
#![forbid(unsafe_code)]

/// The balancing rules in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    /// vCPUs stay on the CPU they were placed on.
    Off,
    /// Receiver-initiated only.
    Pull,
    /// Sender-initiated only.
    Push,
    /// Both.
    Both,
}

impl Balance {
    /// Its name on the command line (`balance=`).
    pub fn name(self) -> &'static str {
        match self {
            Balance::Off => "off",
            Balance::Pull => "pull",
            Balance::Push => "push",
            Balance::Both => "both",
        }
    }

    /// The rules named `name`.
    pub fn parse(name: &[u8]) -> Option<Balance> {
        match name {
            b"off" => Some(Balance::Off),
            b"pull" => Some(Balance::Pull),
            b"push" => Some(Balance::Push),
            b"both" => Some(Balance::Both),
            _ => None,
        }
    }

    /// Whether an idle CPU takes waiting vCPUs from other CPUs' queues.
    pub fn pulls(self) -> bool {
        matches!(self, Balance::Pull | Balance::Both)
    }

    /// Whether a CPU hands waiting vCPUs to idle CPUs.
    pub fn pushes(self) -> bool {
        matches!(self, Balance::Push | Balance::Both)
    }
}

/// What the balancing rules see of one CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuLoad {
    /// It is online (takes vCPUs).
    pub online: bool,
    /// It runs a vCPU now.
    pub busy: bool,
    /// Runnable vCPUs of its queue waiting for it (not running anywhere).
    pub waiting: usize,
}

impl CpuLoad {
    /// Nothing to do: no vCPU running, none waiting.
    fn idle(&self) -> bool {
        self.online && !self.busy && self.waiting == 0
    }

    /// How loaded: running and waiting vCPUs.
    fn load(&self) -> usize {
        usize::from(self.busy) + self.waiting
    }
}

/// Whether CPU `cpu` is in affinity mask `affinity`.
pub fn allowed(affinity: u64, cpu: usize) -> bool {
    cpu < 64 && affinity & (1 << cpu) != 0
}

/// The CPU a vCPU coming up (or pinned anew) joins: the least loaded online CPU of its
/// affinity, the lowest number among equals; `None` when the mask names no online CPU.
pub fn initial_cpu(cpus: &[CpuLoad], affinity: u64) -> Option<usize> {
    cpus.iter()
        .enumerate()
        .filter(|&(c, l)| l.online && allowed(affinity, c))
        .min_by_key(|&(c, l)| (l.load(), c))
        .map(|(c, _)| c)
}

/// Sender-initiated: CPU `home` has a vCPU (of affinity `affinity`) waiting that it cannot
/// run now; an idle CPU it should go to instead, if the rules push and one exists (the
/// nearest after `home`, so that pushes from several CPUs spread).
pub fn push_target(b: Balance, home: usize, cpus: &[CpuLoad], affinity: u64) -> Option<usize> {
    if !b.pushes() || cpus.is_empty() {
        return None;
    }
    let n = cpus.len();
    (1..n).map(|k| (home + k) % n).find(|&c| allowed(affinity, c) && cpus[c].idle())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(busy: bool, waiting: usize) -> CpuLoad {
        CpuLoad { online: true, busy, waiting }
    }

    #[test]
    fn names_round_trip_and_rules() {
        for b in [Balance::Off, Balance::Pull, Balance::Push, Balance::Both] {
            assert_eq!(Balance::parse(b.name().as_bytes()), Some(b));
        }
        assert_eq!(Balance::parse(b"steal"), None);
        assert!(Balance::Both.pulls() && Balance::Both.pushes());
        assert!(Balance::Pull.pulls() && !Balance::Pull.pushes());
        assert!(!Balance::Push.pulls() && Balance::Push.pushes());
        assert!(!Balance::Off.pulls() && !Balance::Off.pushes());
    }

    #[test]
    fn a_new_vcpu_joins_the_least_loaded_cpu_it_may_use() {
        let cpus = [cpu(true, 2), cpu(true, 0), cpu(false, 0), CpuLoad::default()];
        assert_eq!(initial_cpu(&cpus, u64::MAX), Some(2), "idle beats busy");
        assert_eq!(initial_cpu(&cpus, 0b011), Some(1), "within its mask");
        assert_eq!(initial_cpu(&cpus, 0b1000), None, "an offline CPU is no choice");
        assert_eq!(initial_cpu(&cpus, 0), None);
        assert_eq!(initial_cpu(&[cpu(false, 0), cpu(false, 0)], u64::MAX), Some(0), "lowest among equals");
    }

    #[test]
    fn push_goes_to_an_idle_cpu_of_the_mask_only() {
        let cpus = [cpu(true, 1), cpu(true, 0), cpu(false, 0), cpu(false, 0)];
        assert_eq!(push_target(Balance::Push, 0, &cpus, u64::MAX), Some(2));
        assert_eq!(push_target(Balance::Both, 3, &cpus, u64::MAX), Some(2), "nearest after home, wrapping");
        assert_eq!(push_target(Balance::Both, 0, &cpus, 0b0011), None, "pinned to busy CPUs");
        assert_eq!(push_target(Balance::Pull, 0, &cpus, u64::MAX), None, "rules that do not push");
        assert_eq!(push_target(Balance::Off, 0, &cpus, u64::MAX), None);
        let waiting = [cpu(true, 1), cpu(false, 1)];
        assert_eq!(push_target(Balance::Both, 0, &waiting, u64::MAX), None, "a CPU with work waiting is not idle");
        let offline = [cpu(true, 1), CpuLoad::default()];
        assert_eq!(push_target(Balance::Both, 0, &offline, u64::MAX), None, "an offline CPU takes nothing");
        assert_eq!(push_target(Balance::Both, 0, &[], u64::MAX), None);
    }

    #[test]
    fn masks_past_64_cpus_allow_nothing() {
        assert!(allowed(u64::MAX, 63));
        assert!(!allowed(u64::MAX, 64));
        assert!(!allowed(0b10, 0));
    }
}
