//! Host tests of `multicall` through the fake platform.
extern crate std;

use super::super::dispatch;
use super::super::fake::{FakePlatform, BASE};
use super::super::mm::tests::{get, put};
use crate::mm::fake::{pte_for, RO};
use crate::mm::page_info::Level;
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::Hypercall;
use hypercall_abi::mmu::{MmuUpdate, MulticallEntry};
use hypercall_abi::types::DOMID_SELF;
use std::vec::Vec;

const CALLS: u64 = 0x100;
const REQS: u64 = 0x2000;
const PDONE: u64 = 0x10;

fn call(op: Hypercall, args: [u64; 5]) -> MulticallEntry {
    MulticallEntry { op: op as u64, result: 0xdead, args: [args[0], args[1], args[2], args[3], args[4], 0] }
}

fn results(p: &FakePlatform, n: usize) -> Vec<i64> {
    (0..n).map(|i| get::<MulticallEntry>(p, CALLS + 64 * i as u64).result as i64).collect()
}

#[test]
fn runs_each_call_and_refuses_iret_and_nesting() {
    let mut p = FakePlatform::new_with_mm(false, 16, 0x10000);
    let env = p.env();
    let l1 = env.give(1)[0];
    let d = env.give(1)[0];
    env.mm().pin(l1, Level::L1).unwrap();
    put(&mut p, REQS, &[MmuUpdate { ptr: l1 << 12, val: pte_for(d, RO) }]);
    put(&mut p, 0x3000, b"hi");
    let calls = [
        call(Hypercall::SchedOp, [0, 0, 0, 0, 0]),
        call(Hypercall::Iret, [0; 5]),
        call(Hypercall::PtUpdate, [BASE + REQS, 1, 0, DOMID_SELF.into(), 0]),
        call(Hypercall::Multicall, [BASE + CALLS, 1, 0, 0, 0]),
        call(Hypercall::PtUpdate, [BASE + REQS, 1, 0, 7, 0]),
        MulticallEntry { op: 999, result: 0, args: [0; 6] },
    ];
    put(&mut p, CALLS, &calls[..]);
    assert_eq!(dispatch(&mut p, Hypercall::Multicall as u64, [BASE + CALLS, calls.len() as u64, 0, 0, 0]), 0);
    let e = |x: Errno| x.to_ret();
    assert_eq!(results(&p, 6), [0, e(Errno::EINVAL), 0, e(Errno::EINVAL), e(Errno::EPERM), e(Errno::ENOSYS)]);
    assert_eq!(p.yields, 1);
    assert_eq!(p.env().peek(l1, 0), pte_for(d, RO));
    // The arguments are left as they were: only `result` is written.
    assert_eq!(get::<MulticallEntry>(&p, CALLS + 64 * 2).args, calls[2].args);
}

#[test]
fn bad_lists_are_efault_after_the_calls_before() {
    let mut p = FakePlatform::new_with_mm(false, 16, 0x10000);
    assert_eq!(dispatch(&mut p, Hypercall::Multicall as u64, [0x10, 1, 0, 0, 0]), Errno::EFAULT.to_ret());
    assert_eq!(dispatch(&mut p, Hypercall::Multicall as u64, [0xffff_8000_0000_0000, 1, 0, 0, 0]), Errno::EFAULT.to_ret());
    let at = p.mem.len() as u64 - 64;
    put(&mut p, at, &call(Hypercall::XenVersion, [0; 5]));
    assert_eq!(dispatch(&mut p, Hypercall::Multicall as u64, [BASE + at, 2, 0, 0, 0]), Errno::EFAULT.to_ret());
    assert_eq!(get::<MulticallEntry>(&p, at).result, (4 << 16) | 19, "the first call ran");
    assert_eq!(dispatch(&mut p, Hypercall::Multicall as u64, [BASE + CALLS, 0, 0, 0, 0]), 0);
}

/// Runs the multicall at [`CALLS`] as a guest would: again after each continuation, with
/// the arguments it left; returns the final result and how many entries into the
/// hypervisor it took.
fn run_to_completion(p: &mut FakePlatform, n: u64) -> (i64, u32) {
    let mc = Hypercall::Multicall as u64;
    let mut args = [BASE + CALLS, n, 0, 0, 0];
    let mut entries = 0;
    loop {
        entries += 1;
        let r = dispatch(p, mc, args);
        if r != mc as i64 {
            assert!(p.continuations.is_empty(), "a continuation with a final result");
            return (r, entries);
        }
        let (nr, next) = p.continuations.pop().expect("a continuation");
        assert_eq!(nr, mc, "only the multicall continues itself");
        args = next;
    }
}

#[test]
fn a_long_call_inside_a_multicall_continues_the_batch_at_its_entry() {
    let mut p = FakePlatform::new_with_mm(false, 16, 0x20000);
    p.chunk = 1024;
    let env = p.env();
    let l1 = env.give(1)[0];
    let d = env.give(1)[0];
    env.mm().pin(l1, Level::L1).unwrap();
    let reqs: Vec<MmuUpdate> = (0..3000).map(|i| MmuUpdate { ptr: (l1 << 12) | ((i % 512) * 8), val: pte_for(d, RO) * (i % 2) }).collect();
    put(&mut p, REQS, &reqs[..]);
    put(&mut p, PDONE, &0u32);
    put(&mut p, 0x10000, b"ok");
    let calls = [
        call(Hypercall::PtUpdate, [BASE + REQS, 3000, BASE + PDONE, DOMID_SELF.into(), 0]),
        call(Hypercall::SchedOp, [0, 0, 0, 0, 0]),
    ];
    put(&mut p, CALLS, &calls[..]);
    let (r, entries) = run_to_completion(&mut p, 2);
    assert_eq!((r, entries), (0, 3), "1024 requests per entry");
    assert_eq!((results(&p, 2), get::<u32>(&p, PDONE)), (std::vec![0, 0], 3000));
    assert_eq!(p.yields, 1, "the call after it ran once");
    // The preempted entry was rewritten to say how to go on, as Xen's.
    let e: MulticallEntry = get(&p, CALLS);
    assert_eq!(e.args[0], BASE + REQS + 2048 * 16);
    p.env().check_invariants();
}

#[test]
fn a_multicall_of_many_calls_stops_when_preemption_is_due() {
    let mut p = FakePlatform::new(false);
    p.mem = std::vec![0; 0x20000];
    let n = 1000u64;
    let calls: Vec<MulticallEntry> = (0..n).map(|_| call(Hypercall::XenVersion, [0; 5])).collect();
    put(&mut p, CALLS, &calls[..]);
    // Preemption is due from the 100th check on: the batch continues from there.
    p.preempt_after = Some(100);
    let mc = Hypercall::Multicall as u64;
    assert_eq!(dispatch(&mut p, mc, [BASE + CALLS, n, 0, 0, 0]), mc as i64);
    assert_eq!(p.continuations, [(mc, [BASE + CALLS + 101 * 64, n - 101, 0, 0, 0])]);
    let done = results(&p, n as usize).iter().filter(|&&r| r == (4 << 16) | 19).count();
    assert_eq!(done, 101, "entries 0..=100 ran, the rest wait");
    // Resumed (each entry again preempted after one call): every entry runs exactly once.
    p.preempt_after = Some(0);
    p.continuations.clear();
    let mut args = [BASE + CALLS + 101 * 64, n - 101, 0, 0, 0];
    while dispatch(&mut p, mc, args) == mc as i64 {
        p.preempt_checks.set(0);
        args = p.continuations.pop().unwrap().1;
    }
    assert!(results(&p, n as usize).iter().all(|&r| r == (4 << 16) | 19));
}
