//! Host tests of the schedulers over a simulated CPU and a fake clock: CPU-bound and
//! I/O-bound vCPUs run for simulated seconds, and the shares, caps and wake-up latencies
//! are measured.

use super::credit::{Credit, Pri, PERIOD_NS};
use super::rr::RoundRobin;
use super::*;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

const MS: u64 = 1_000_000;
const US: u64 = 1_000;

/// How a simulated vCPU behaves.
#[derive(Clone, Copy, Debug)]
enum Load {
    /// Always runnable.
    Spin,
    /// Always runnable from this time on (it is woken then).
    SpinFrom(u64),
    /// Runs `burst` then blocks for `sleep`, woken by an event (an I/O domain).
    Io { burst: u64, sleep: u64 },
}

#[derive(Debug)]
struct SimVcpu {
    load: Load,
    blocked_until: Option<u64>,
    /// Left of the current burst.
    left: u64,
    ran: u64,
    /// When it last woke, while it waits for the CPU.
    woke_at: Option<u64>,
    worst_latency: u64,
    total_latency: u64,
    wakes: u64,
}

/// One CPU running `vcpus` under `s` for `seconds`; returns them with their run times.
fn simulate(s: &mut dyn Scheduler, vcpus: &[(VcpuKey, Load)], until: u64) -> BTreeMap<VcpuKey, SimVcpu> {
    let mut sim: BTreeMap<VcpuKey, SimVcpu> = BTreeMap::new();
    for &(k, load) in vcpus {
        let (left, blocked_until) = match load {
            Load::Spin => (u64::MAX, None),
            Load::SpinFrom(t) => (u64::MAX, Some(t)),
            Load::Io { burst, .. } => (burst, None),
        };
        sim.insert(k, SimVcpu { load, blocked_until, left, ran: 0, woke_at: None, worst_latency: 0, total_latency: 0, wakes: 0 });
    }
    let mut now = 0u64;
    let mut current: Option<VcpuKey> = None;
    let mut slice_end = 0;
    let mut started = 0;
    while now < until {
        // Wake whoever's sleep ended.
        let mut preempt = false;
        for (&k, v) in sim.iter_mut() {
            if v.blocked_until.is_some_and(|t| t <= now) {
                v.blocked_until = None;
                v.woke_at = Some(now);
                v.wakes += 1;
                preempt |= s.wake(k, current, now);
            }
        }
        if current.is_none() || preempt || now >= slice_end || current.is_some_and(|c| sim[&c].blocked_until.is_some()) {
            if let Some(c) = current {
                s.account(c, now - started, now);
            }
            let runnable = |k: VcpuKey| sim.get(&k).is_some_and(|v| v.blocked_until.is_none());
            match s.pick(now, &runnable) {
                Some(choice) => {
                    current = Some(choice.vcpu);
                    slice_end = now + choice.slice_ns;
                    let v = sim.get_mut(&choice.vcpu).unwrap();
                    if let Some(w) = v.woke_at.take() {
                        v.worst_latency = v.worst_latency.max(now - w);
                        v.total_latency += now - w;
                    }
                }
                None => {
                    current = None;
                    // Idle until the next wake or the scheduler's own event.
                    let next_wake = sim.values().filter_map(|v| v.blocked_until).min();
                    let next = [next_wake, s.next_event()].into_iter().flatten().min().unwrap_or(until);
                    now = next.max(now + 1);
                    continue;
                }
            }
            started = now;
        }
        // Run the current vCPU until its slice ends, its burst ends, or someone wakes.
        let c = current.unwrap();
        let next_wake = sim.values().filter_map(|v| v.blocked_until).min().unwrap_or(u64::MAX);
        let v = sim.get_mut(&c).unwrap();
        let step = (slice_end - now).min(v.left).min(next_wake.saturating_sub(now).max(1)).min(until - now).max(1);
        now += step;
        v.ran += step;
        if let Load::Io { burst, sleep } = v.load {
            v.left -= step.min(v.left);
            if v.left == 0 {
                v.left = burst;
                v.blocked_until = Some(now + sleep);
            }
        }
    }
    sim
}

fn credit_with(doms: &[(u16, u16, u16)]) -> Credit {
    let mut c = Credit::new(1);
    for &(d, weight, cap) in doms {
        c.add_domain(d, 1);
        c.set_params(d, Params::Credit { weight, cap }).unwrap();
    }
    c
}

fn share(sim: &BTreeMap<VcpuKey, SimVcpu>, k: VcpuKey, total: u64) -> f64 {
    sim[&k].ran as f64 / total as f64
}

#[test]
fn weights_256_and_512_share_one_to_two() {
    let mut c = credit_with(&[(1, 256, 0), (2, 512, 0)]);
    let sim = simulate(&mut c, &[((1, 0), Load::Spin), ((2, 0), Load::Spin)], 10_000 * MS);
    let ratio = sim[&(2, 0)].ran as f64 / sim[&(1, 0)].ran as f64;
    assert!((ratio - 2.0).abs() < 0.02, "ratio {ratio}");
    assert_eq!(sim[&(1, 0)].ran + sim[&(2, 0)].ran, 10_000 * MS, "work-conserving");
}

#[test]
fn weights_hold_beside_an_io_domain() {
    // dom0-like: 200 us of work every 5 ms, woken by events; two spinners 256:512.
    let mut c = credit_with(&[(0, 256, 0), (1, 256, 0), (2, 512, 0)]);
    let io = Load::Io { burst: 200 * US, sleep: 5 * MS };
    let sim = simulate(&mut c, &[((0, 0), io), ((1, 0), Load::Spin), ((2, 0), Load::Spin)], 10_000 * MS);
    let ratio = sim[&(2, 0)].ran as f64 / sim[&(1, 0)].ran as f64;
    assert!((ratio - 2.0).abs() < 0.1, "ratio {ratio}");
    // BOOST: the I/O domain gets the CPU as soon as it wakes.
    assert!(sim[&(0, 0)].worst_latency <= 100 * US, "worst wake-to-run {} us", sim[&(0, 0)].worst_latency / US);
    assert!(sim[&(0, 0)].wakes > 1500);
}

#[test]
fn round_robin_makes_the_io_domain_wait() {
    let mut rr = RoundRobin::default();
    rr.add_domain(0, 1);
    rr.add_domain(1, 1);
    let io = Load::Io { burst: 200 * US, sleep: 5 * MS };
    let sim = simulate(&mut rr, &[((0, 0), io), ((1, 0), Load::Spin)], 2_000 * MS);
    assert!(sim[&(0, 0)].worst_latency >= 5 * MS, "the spinner's slice runs out first");
    let total = 2_000 * MS;
    assert!(share(&sim, (1, 0), total) > 0.9);
}

#[test]
fn a_cap_of_25_percent_holds_even_on_an_idle_cpu() {
    let mut c = credit_with(&[(1, 256, 25)]);
    let sim = simulate(&mut c, &[((1, 0), Load::Spin)], 10_000 * MS);
    let s = share(&sim, (1, 0), 10_000 * MS);
    assert!((s - 0.25).abs() < 0.005, "share {s}");
    // Beside an uncapped spinner it still gets no more, and the other takes the rest.
    let mut c = credit_with(&[(1, 256, 25), (2, 256, 0)]);
    let sim = simulate(&mut c, &[((1, 0), Load::Spin), ((2, 0), Load::Spin)], 10_000 * MS);
    let (a, b) = (share(&sim, (1, 0), 10_000 * MS), share(&sim, (2, 0), 10_000 * MS));
    assert!((a - 0.25).abs() < 0.01 && (b - 0.75).abs() < 0.01, "{a} {b}");
}

#[test]
fn a_cap_above_the_fair_share_does_not_bind() {
    let mut c = credit_with(&[(1, 256, 80), (2, 256, 0)]);
    let sim = simulate(&mut c, &[((1, 0), Load::Spin), ((2, 0), Load::Spin)], 3_000 * MS);
    let a = share(&sim, (1, 0), 3_000 * MS);
    assert!((a - 0.5).abs() < 0.02, "{a}");
}

#[test]
fn a_vcpu_that_spends_its_credit_loses_its_boost() {
    let mut c = credit_with(&[(1, 256, 0), (2, 256, 0)]);
    let now = 1;
    c.account((1, 0), 0, now);
    assert_eq!(c.priority((1, 0)), Some(Pri::Under));
    assert!(c.wake((1, 0), Some((2, 0)), now), "boosted past an UNDER vCPU");
    assert_eq!(c.priority((1, 0)), Some(Pri::Boost));
    assert!(!c.wake((2, 0), Some((1, 0)), now), "a boosted vCPU is not preempted by another");
    // It runs; leaving the CPU ends the boost. Having burned its credit, it is OVER and a
    // wake-up no longer boosts it.
    c.account((1, 0), 3 * PERIOD_NS, now + 1);
    assert_eq!(c.priority((1, 0)), Some(Pri::Over));
    assert!(!c.wake((1, 0), Some((2, 0)), now + 2));
    assert_eq!(c.priority((1, 0)), Some(Pri::Over));
    assert!(c.credit((1, 0)).unwrap() >= -(PERIOD_NS as i64), "the debt is bounded");
}

#[test]
fn weights_follow_xens_rules_for_unchanged_values() {
    let mut c = credit_with(&[(1, 300, 40)]);
    c.set_params(1, Params::Credit { weight: 0, cap: u16::MAX }).unwrap();
    assert_eq!(c.params(1), Ok(Params::Credit { weight: 300, cap: 40 }));
    c.set_params(1, Params::Credit { weight: 0, cap: 0 }).unwrap();
    assert_eq!(c.params(1), Ok(Params::Credit { weight: 300, cap: 0 }));
    assert_eq!(c.set_params(9, Params::Credit { weight: 1, cap: 0 }), Err(ParamError::NoDomain));
    assert_eq!(RoundRobin::default().params(1), Err(ParamError::WrongScheduler));
}

#[test]
fn round_robin_takes_turns_and_yield_goes_last() {
    let mut rr = RoundRobin::default();
    rr.add_domain(0, 1);
    rr.add_domain(1, 2);
    let all = |_: VcpuKey| true;
    let order: Vec<VcpuKey> = (0..6).map(|_| rr.pick(0, &all).unwrap().vcpu).collect();
    assert_eq!(order, [(0, 0), (1, 0), (1, 1), (0, 0), (1, 0), (1, 1)]);
    rr.yielded((0, 0));
    assert_eq!(rr.pick(0, &all).unwrap().vcpu, (1, 0));
    assert_eq!(rr.pick(0, &|k| k.0 == 0).unwrap().vcpu, (0, 0), "alone, it runs again");
    assert_eq!(rr.pick(0, &|_| false), None);
    rr.remove_domain(1);
    assert_eq!(rr.pick(0, &all).unwrap().vcpu, (0, 0));
}

#[test]
fn nothing_runnable_but_a_parked_domain_idles_until_the_period_ends() {
    let mut c = credit_with(&[(1, 256, 10)]);
    let all = |_: VcpuKey| true;
    let first = c.pick(0, &all).unwrap();
    assert_eq!(first.slice_ns, 3 * MS, "10% of a 30 ms period");
    c.account((1, 0), 3 * MS, 3 * MS);
    assert_eq!(c.pick(3 * MS, &all), None, "parked");
    assert_eq!(c.next_event(), Some(PERIOD_NS));
    assert!(c.pick(PERIOD_NS, &all).is_some(), "a new period");
}

#[test]
fn policies_by_name() {
    assert_eq!(Policy::parse(b"credit"), Some(Policy::Credit));
    assert_eq!(Policy::parse(b"rr"), Some(Policy::RoundRobin));
    assert_eq!(Policy::parse(b"rtds"), Some(Policy::Rtds));
    assert_eq!(Policy::parse(b"sedf"), None);
    assert_eq!(Policy::Rtds.xen_id(), 8);
    assert_eq!(Policy::Credit.make(1).policy(), Policy::Credit);
    assert_eq!(Policy::Credit.xen_id(), 5);
}


#[test]
fn a_cap_leaves_the_rest_by_weight_and_no_one_starves() {
    // The QEMU scenario's mix: 256, 512, and a huge weight held to 25% by its cap.
    // Started one after the other, as `xl create` does, beside a dom0 woken now and then;
    // measured over the 10 s after the last started (the simulation is deterministic, so a
    // shorter run is the longer one's beginning).
    let run = |until: u64| {
        let mut c = credit_with(&[(0, 256, 0), (1, 256, 0), (2, 512, 0), (3, 65535, 25)]);
        let io = Load::Io { burst: 300 * US, sleep: 20 * MS };
        simulate(&mut c, &[((0, 0), io), ((1, 0), Load::Spin), ((2, 0), Load::SpinFrom(700 * MS)), ((3, 0), Load::SpinFrom(1400 * MS))], until)
    };
    let (early, late) = (run(2_000 * MS), run(12_000 * MS));
    let got = |k: VcpuKey| (late[&k].ran - early[&k].ran) as f64 / (10_000 * MS) as f64;
    let (a, b, cc) = (got((1, 0)), got((2, 0)), got((3, 0)));
    assert!((cc - 0.25).abs() < 0.005, "{a} {b} {cc}");
    assert!((b / a - 2.0).abs() < 0.05, "{a} {b} {cc}");
}

#[test]
fn a_yield_lets_a_lower_priority_vcpu_run_once() {
    let mut c = credit_with(&[(1, 256, 0), (2, 256, 0)]);
    let all = |_: VcpuKey| true;
    // Domain 2 spends its credit: OVER. Domain 1 has credit: UNDER, picked first.
    c.account((2, 0), 20 * MS, 1);
    assert_eq!(c.pick(1, &all).unwrap().vcpu, (1, 0));
    c.yielded((1, 0));
    assert_eq!(c.pick(2, &all).unwrap().vcpu, (2, 0), "behind the OVER vCPU once");
    assert_eq!(c.pick(3, &all).unwrap().vcpu, (1, 0), "then first again");
    c.yielded((1, 0));
    assert_eq!(c.pick(4, &|k| k.0 == 1).unwrap().vcpu, (1, 0), "alone, a yield runs it again");
}

fn rtds_with(doms: &[(u16, u32, u32, bool)]) -> super::rtds::Rtds {
    let mut r = super::rtds::Rtds::new(1);
    for &(d, period_us, budget_us, extra) in doms {
        r.add_domain(d, 1);
        if budget_us != 0 {
            r.set_params(d, Params::Rtds { period_us, budget_us, extra, misses: 0 }).unwrap();
        }
    }
    r
}

#[test]
fn edf_admits_one_cpus_worth_on_any_number_of_cpus() {
    let mut r = super::rtds::Rtds::new(4);
    r.add_domain(1, 1);
    r.add_domain(2, 1);
    let p = |b| Params::Rtds { period_us: 10_000, budget_us: b, extra: false, misses: 0 };
    assert_eq!(r.set_params(1, p(6_000)), Ok(()));
    assert_eq!(r.set_params(2, p(5_000)), Err(ParamError::Unschedulable), "110% of one CPU, on four");
    assert_eq!(r.set_params(2, p(4_000)), Ok(()));
}

#[test]
fn edf_meets_a_reservation_beside_three_spinners() {
    // 2 ms every 10 ms for an always-busy guest, three spinners without reservations.
    let mut r = rtds_with(&[(1, 10_000, 2_000, false), (2, 0, 0, true), (3, 0, 0, true), (4, 0, 0, true)]);
    let sim = simulate(&mut r, &[((1, 0), Load::Spin), ((2, 0), Load::Spin), ((3, 0), Load::Spin), ((4, 0), Load::Spin)], 10_000 * MS);
    assert_eq!(r.misses(1), Some(0));
    let got = sim[&(1, 0)].ran as f64 / (10_000 * MS) as f64;
    assert!((got - 0.2).abs() < 0.002, "{got}: exactly its budget, no extra time");
    let rest: Vec<u64> = (2..=4).map(|d| sim[&(d, 0)].ran).collect();
    assert!(rest.iter().all(|&t| t.abs_diff(rest[0]) < 50 * MS), "the spinners share the rest: {rest:?}");
}

#[test]
fn edf_runs_the_earliest_deadline_and_an_io_reservation_keeps_its_latency() {
    // An I/O guest (300 us every 5 ms) reserving 1 ms every 5 ms, a 3/10 reservation that
    // spins, and a best-effort spinner.
    let mut r = rtds_with(&[(1, 5_000, 1_000, false), (2, 10_000, 3_000, true), (3, 0, 0, true)]);
    let io = Load::Io { burst: 300 * US, sleep: 5 * MS };
    let sim = simulate(&mut r, &[((1, 0), io), ((2, 0), Load::Spin), ((3, 0), Load::Spin)], 5_000 * MS);
    assert_eq!((r.misses(1), r.misses(2)), (Some(0), Some(0)));
    assert!(sim[&(1, 0)].worst_latency <= 10 * US, "woken with budget, it preempts: {} us", sim[&(1, 0)].worst_latency / US);
    let two = sim[&(2, 0)].ran as f64 / (5_000 * MS) as f64;
    assert!(two >= 0.3, "{two}: its budget at least, and extra time too");
}

#[test]
fn edf_admission_refuses_an_impossible_set_and_keeps_the_old_one() {
    let mut r = rtds_with(&[(1, 10_000, 6_000, false), (2, 0, 0, true)]);
    let want = |b| Params::Rtds { period_us: 10_000, budget_us: b, extra: false, misses: 0 };
    assert_eq!(r.set_params(2, want(5_000)), Err(ParamError::Unschedulable), "60% + 50%");
    assert_eq!(r.params(2), Ok(Params::Rtds { period_us: 10_000, budget_us: 0, extra: true, misses: 0 }));
    r.set_params(2, want(4_000)).unwrap();
    assert_eq!(r.set_params(1, want(6_001)), Err(ParamError::Unschedulable));
    for bad in [Params::Rtds { period_us: 5, budget_us: 0, extra: true, misses: 0 }, want(9), Params::Rtds { period_us: 1_000, budget_us: 2_000, extra: false, misses: 0 }] {
        assert_eq!(r.set_params(1, bad), Err(ParamError::Invalid), "{bad:?}");
    }
    assert_eq!(r.set_params(1, Params::Credit { weight: 1, cap: 0 }), Err(ParamError::WrongScheduler));
    r.set_params(1, want(0)).unwrap();
    r.set_params(2, want(10_000)).unwrap();
}

#[test]
fn edf_counts_a_deadline_the_machine_was_too_late_for() {
    let mut r = rtds_with(&[(1, 10_000, 5_000, false), (2, 10_000, 5_000, false)]);
    let all = |_: VcpuKey| true;
    assert_eq!(r.pick(0, &all).unwrap().vcpu, (1, 0));
    // The timer comes 11 ms late (a long stay in the hypervisor): domain 1 ran through
    // its deadline, and domain 2, which wanted its budget all along, got none of it.
    r.account((1, 0), 16 * MS, 16 * MS);
    assert_eq!((r.misses(1), r.misses(2)), (Some(0), Some(1)));
    // A vCPU that woke too late to use its budget is not a miss.
    let mut r = rtds_with(&[(1, 10_000, 5_000, false), (2, 10_000, 5_000, false)]);
    let sim = simulate(&mut r, &[((1, 0), Load::SpinFrom(8 * MS)), ((2, 0), Load::Spin)], 1_000 * MS);
    assert_eq!((r.misses(1), r.misses(2)), (Some(0), Some(0)));
    assert!(sim[&(1, 0)].ran.abs_diff(497 * MS) < 2 * MS, "{}", sim[&(1, 0)].ran / MS);
}

#[test]
fn edf_takes_an_overrun_from_the_next_period() {
    let mut r = rtds_with(&[(1, 10_000, 2_000, false), (2, 0, 0, true)]);
    let all = |_: VcpuKey| true;
    let first = r.pick(0, &all).unwrap();
    assert_eq!((first.vcpu, first.slice_ns), ((1, 0), 2 * MS));
    // The timer comes 300 us late.
    r.account((1, 0), 2300 * US, 2300 * US);
    assert_eq!(r.pick(2300 * US, &all).unwrap().vcpu, (2, 0));
    r.account((2, 0), 7700 * US, 10 * MS);
    let next = r.pick(10 * MS, &all).unwrap();
    assert_eq!((next.vcpu, next.slice_ns), ((1, 0), 1700 * US), "the 300 us owed are taken");
    // An overrun of 3 ms (a host that stopped the machine): half a budget from each of
    // the next periods until it is paid.
    r.account((1, 0), 4700 * US, 14_700 * US);
    assert_eq!(r.pick(14_700 * US, &all).unwrap().vcpu, (2, 0));
    r.account((2, 0), 5300 * US, 20 * MS);
    let slices: Vec<u64> = (2..6)
        .map(|p| {
            let c = r.pick(p * 10 * MS, &all).unwrap();
            assert_eq!(c.vcpu, (1, 0));
            r.account((1, 0), c.slice_ns, p * 10 * MS + c.slice_ns);
            let rest = r.pick(p * 10 * MS + c.slice_ns, &all).unwrap();
            r.account(rest.vcpu, (p + 1) * 10 * MS - (p * 10 * MS + c.slice_ns), (p + 1) * 10 * MS);
            c.slice_ns
        })
        .collect();
    assert_eq!(slices, [MS, MS, MS, 2 * MS], "3 ms owed: 1 ms paid from each of three periods, then the full budget");
    assert_eq!(r.misses(1), Some(0));
}

#[test]
fn edf_charges_a_vcpu_running_through_its_deadline_before_judging_it() {
    // Domain 1 runs the last of its budget right up to its deadline; the period ends
    // before its CPU accounts it, and a wake-up (or another CPU's pick) sees the new
    // period first. No miss: it used what it reserved.
    let mut r = rtds_with(&[(1, 10_000, 2_000, false), (2, 0, 0, true), (3, 0, 0, true)]);
    let all = |_: VcpuKey| true;
    let not_one = |k: VcpuKey| k.0 != 1;
    assert_eq!(r.pick(0, &all).unwrap().vcpu, (1, 0));
    // It blocks after 1.5 ms, and wakes at 9.5 ms.
    r.account((1, 0), 1500 * US, 1500 * US);
    assert_eq!(r.pick(1500 * US, &not_one).unwrap().vcpu, (2, 0));
    assert!(r.wake((1, 0), Some((2, 0)), 9500 * US), "with budget, it preempts extra time");
    r.account((2, 0), 8 * MS, 9500 * US);
    let last = r.pick(9500 * US, &all).unwrap();
    assert_eq!((last.vcpu, last.slice_ns), ((1, 0), 500 * US));
    // Domain 3 wakes at 10.1 ms, before domain 1's CPU has accounted it.
    let _ = r.wake((3, 0), Some((1, 0)), 10_100 * US);
    assert_eq!(r.misses(1), Some(0), "the 500 us it ran before the deadline were its last budget");
    r.account((1, 0), 600 * US, 10_100 * US);
    // The 100 us past the deadline are the new period's.
    let next = r.pick(10_100 * US, &all).unwrap();
    assert_eq!((next.vcpu, next.slice_ns), ((1, 0), 1900 * US));

    // Woken with 500 us left 1 ms before its deadline, it is made to wait past it (the
    // machine is late): a miss.
    let mut r = rtds_with(&[(1, 10_000, 2_000, false), (2, 0, 0, true)]);
    assert_eq!(r.pick(0, &all).unwrap().vcpu, (1, 0));
    r.account((1, 0), 1500 * US, 1500 * US);
    assert_eq!(r.pick(1500 * US, &not_one).unwrap().vcpu, (2, 0));
    assert!(r.wake((1, 0), Some((2, 0)), 9 * MS));
    r.account((2, 0), 8600 * US, 10_100 * US);
    assert_eq!(r.misses(1), Some(1), "wanted from 9 ms with 500 us left, and did not get them");
}
