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
        call(Hypercall::ConsoleIo, [0, 2, BASE + 0x3000, 0, 0]),
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
    assert_eq!(p.out, b"hi");
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

#[test]
fn calls_inside_a_multicall_are_never_preempted() {
    let mut p = FakePlatform::new_with_mm(false, 16, 0x20000);
    p.chunk = 1024;
    let env = p.env();
    let l1 = env.give(1)[0];
    let d = env.give(1)[0];
    env.mm().pin(l1, Level::L1).unwrap();
    let reqs: Vec<MmuUpdate> = (0..3000).map(|i| MmuUpdate { ptr: (l1 << 12) | ((i % 512) * 8), val: pte_for(d, RO) * (i % 2) }).collect();
    put(&mut p, REQS, &reqs[..]);
    put(&mut p, PDONE, &0u32);
    put(&mut p, CALLS, &[call(Hypercall::PtUpdate, [BASE + REQS, 3000, BASE + PDONE, DOMID_SELF.into(), 0])]);
    assert_eq!(dispatch(&mut p, Hypercall::Multicall as u64, [BASE + CALLS, 1, 0, 0, 0]), 0);
    assert!(p.continuations.is_empty());
    assert_eq!((results(&p, 1)[0], get::<u32>(&p, PDONE)), (0, 3000));
    p.env().check_invariants();
}
