//! Property test: long random sequences of entry updates (valid and hostile), pins,
//! unpins, base-pointer switches, reservation changes, page clears and copies,
//! `update_va_mapping` and full teardowns. After every step the stored counts must equal
//! counts recomputed from scratch ([`Env::check_invariants`]), a failed step must have
//! changed nothing, and after every teardown every frame must be free and back in the
//! frame source.
extern crate std;

use super::fake::*;
use super::page_info::{Level, PageType};
use hypercall_abi::layout::pte;
use std::collections::BTreeMap;
use std::vec::Vec;

/// xorshift64*: small, deterministic, good enough to drive a test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.below(v.len() as u64) as usize])
    }
}

const LEVELS: [Level; 4] = [Level::L1, Level::L2, Level::L3, Level::L4];

fn owned(env: &Env) -> Vec<u64> {
    (0..NR_FRAMES).filter(|&m| env.frames.owned_by(m, env.dom.id())).collect()
}

fn tables(env: &Env) -> Vec<u64> {
    owned(env).into_iter().filter(|&m| env.page(m).page_type().level().is_some()).collect()
}

/// Any frame number a hostile guest might name: mostly its own, sometimes anything.
fn any_mfn(rng: &mut Rng, env: &Env) -> u64 {
    match rng.below(20) {
        0 => NR_FRAMES + rng.below(8),
        1 => HOLE.start + rng.below(HOLE.end - HOLE.start),
        2 => MAX_MFN + 1 + rng.below(4),
        3 => rng.below(FIRST_FREE),
        4 | 5 => rng.below(NR_FRAMES),
        _ => rng.pick(&owned(env)).unwrap_or(0),
    }
}

/// An entry value: usually plausible, sometimes with a forbidden bit.
fn entry(rng: &mut Rng, env: &Env, table: u64) -> u64 {
    if rng.chance(12) {
        return if rng.chance(50) { 0 } else { rng.next() & !pte::PRESENT };
    }
    let target = if rng.chance(8) { table } else { any_mfn(rng, env) };
    let mut flags = pte::PRESENT;
    for (bit, p) in [(pte::RW, 50), (pte::USER, 70), (pte::ACCESSED, 50), (pte::DIRTY, 20), (pte::NX, 10)] {
        if rng.chance(p) {
            flags |= bit;
        }
    }
    for bit in [pte::PSE, pte::GLOBAL, pte::PCD, pte::PWT, 1 << 52, 1 << 62, 1 << 9] {
        if rng.chance(3) {
            flags |= bit;
        }
    }
    ((target << 12) & pte::ADDR_MASK) | flags
}

fn index(rng: &mut Rng) -> usize {
    match rng.below(10) {
        0 => 256 + rng.below(16) as usize,
        1 => rng.below(512) as usize,
        _ => rng.below(4) as usize,
    }
}

/// A virtual address: mostly one the current tables translate (found by walking them at
/// random through present entries), sometimes anything.
fn va(rng: &mut Rng, env: &Env) -> u64 {
    let mut table = env.dom.kernel_base();
    if table != 0 && rng.chance(80) {
        let mut va = 0;
        for level in [Level::L4, Level::L3, Level::L2] {
            let present: Vec<usize> = (0..512)
                .filter(|&i| !(level == Level::L4 && (256..272).contains(&i)) && env.peek(table, i) & pte::PRESENT != 0)
                .collect();
            let Some(i) = rng.pick(&present) else { break };
            va |= (i as u64) << level.shift();
            table = (env.peek(table, i) & pte::ADDR_MASK) >> 12;
            // Through a linear entry the walk can reach the hypervisor's entries.
            if !env.frames.owned_by(table, env.dom.id()) {
                break;
            }
        }
        if va >> 47 != 0 {
            va |= 0xffff_0000_0000_0000;
        }
        return va | (rng.below(4) << 12);
    }
    let mut va = 0;
    for level in LEVELS {
        va |= rng.below(4) << level.shift();
    }
    if rng.chance(5) {
        va |= 0xffff_8000_0000_0000;
    }
    va
}

/// Checks the state after a teardown: nothing owned, every count zero, every frame back.
fn check_all_returned(env: &Env) {
    for mfn in 0..NR_FRAMES {
        let p = env.page(mfn);
        assert_eq!(
            (p.owner(), p.count(), p.type_count(), p.page_type(), p.is_pinned(), p.is_allocated()),
            (None, 0, 0, PageType::None, false, false),
            "mfn {mfn:#x} after teardown"
        );
    }
    let all: std::collections::BTreeSet<u64> = (FIRST_FREE..NR_FRAMES).filter(|m| !HOLE.contains(m)).collect();
    assert_eq!(env.mach.free, all, "frames missing from the frame source");
    assert_eq!((env.dom.tot_pages(), env.dom.kernel_base(), env.dom.user_base()), (0, 0, 0));
}

fn run(seed: u64, steps: usize, privileged: bool, tally: &mut BTreeMap<&'static str, (u64, u64)>) {
    let mut rng = Rng(seed | 1);
    let mut env = Env::new(privileged, 40);
    env.give(24);
    for step in 0..steps {
        let before = env.snapshot();
        let table_pick = |rng: &mut Rng, env: &Env| {
            if rng.chance(75) {
                rng.pick(&tables(env)).unwrap_or_else(|| any_mfn(rng, env))
            } else {
                any_mfn(rng, env)
            }
        };
        let (name, r): (&'static str, Result<(), hypercall_abi::errno::Errno>) = match rng.below(100) {
            0..=39 => {
                let t = table_pick(&mut rng, &env);
                let e = entry(&mut rng, &env, t);
                let ptr = (t << 12) | (index(&mut rng) as u64 * 8);
                let ad = rng.chance(20);
                ("update", env.mm().normal_update(ptr, e, ad).map(|_| ()))
            }
            40..=51 => {
                let m = any_mfn(&mut rng, &env);
                let l = rng.pick(&LEVELS).unwrap();
                ("pin", env.mm().pin(m, l))
            }
            52..=59 => {
                let m = if rng.chance(80) { rng.pick(&tables(&env)).unwrap_or(0) } else { any_mfn(&mut rng, &env) };
                ("unpin", env.mm().unpin(m))
            }
            60..=65 => {
                let m = table_pick(&mut rng, &env);
                ("new_baseptr", env.mm().new_baseptr(m))
            }
            66..=68 => {
                let m = if rng.chance(25) { 0 } else { table_pick(&mut rng, &env) };
                ("new_user_baseptr", env.mm().new_user_baseptr(m))
            }
            69..=73 => {
                let m = any_mfn(&mut rng, &env);
                ("decrease", env.mm().decrease_reservation(m))
            }
            74..=78 => {
                let r = if rng.chance(50) {
                    env.mm().increase_reservation().map(|_| ())
                } else {
                    let pfn = rng.below(1000);
                    env.mm().populate_physmap(pfn).map(|_| ())
                };
                ("increase", r)
            }
            79..=80 => {
                let m = any_mfn(&mut rng, &env);
                ("clear", env.mm().clear_page(m))
            }
            81..=82 => {
                let (d, s) = (any_mfn(&mut rng, &env), any_mfn(&mut rng, &env));
                ("copy", env.mm().copy_page(d, s))
            }
            83..=92 => {
                let (v, t) = (va(&mut rng, &env), rng.pick(&owned(&env)).unwrap_or(0));
                let e = entry(&mut rng, &env, t);
                ("update_va", env.mm().update_va_mapping(v, e))
            }
            93..=94 => {
                let m = any_mfn(&mut rng, &env);
                ("machphys", env.mm().machphys_update(m, rng.below(1000)))
            }
            95..=98 => {
                env.mm().flush_tlb();
                ("flush", Ok(()))
            }
            _ => {
                if rng.chance(30) {
                    let owned_before = env.dom.tot_pages();
                    let r = env.mm().relinquish();
                    assert_eq!(r.forced, 0, "seed {seed:#x} step {step}: teardown had to force counts");
                    assert!(r.released >= owned_before, "teardown released {} of {owned_before}", r.released);
                    check_all_returned(&env);
                    env.give(8 + rng.below(24) as usize);
                    ("teardown", Ok(()))
                } else {
                    ("flush", Ok(()))
                }
            }
        };
        let t = tally.entry(name).or_default();
        if r.is_ok() {
            t.0 += 1;
        } else {
            t.1 += 1;
            let after = env.snapshot();
            assert!(after == before, "seed {seed:#x} step {step}: failed {name} ({r:?}) changed state:\n{}", before.diff(&after));
        }
        env.check_invariants();
    }
    let r = env.mm().relinquish();
    assert_eq!(r.forced, 0);
    check_all_returned(&env);
}

#[test]
fn random_sequences_keep_every_count_exact() {
    let mut tally = BTreeMap::new();
    // MM_PROP_STEPS / MM_PROP_SEEDS make a longer soak (e.g. in release mode).
    let steps = std::env::var("MM_PROP_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(2500);
    let extra: u64 = std::env::var("MM_PROP_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let seeds = [0x5eed_0001u64, 0xdead_beef, 0x1234_5678_9abc, 0x0bad_cafe, 42, 7].into_iter().chain((0..extra).map(|i| 1000 + i));
    for (i, seed) in seeds.enumerate() {
        run(seed, steps, i % 3 == 2, &mut tally);
    }
    std::println!("{tally:?}");
    // The walk must exercise the interesting paths, not just bounce off the rules.
    for (name, min_ok) in [
        ("update", 500),
        ("pin", 100),
        ("unpin", 50),
        ("new_baseptr", 50),
        ("new_user_baseptr", 20),
        ("decrease", 30),
        ("increase", 50),
        ("update_va", 20),
        ("clear", 10),
        ("copy", 10),
        ("teardown", 5),
    ] {
        let (ok, _) = tally.get(name).copied().unwrap_or_default();
        assert!(ok >= min_ok, "only {ok} successful {name} steps");
    }
    for name in ["update", "pin", "unpin", "new_baseptr", "decrease", "update_va", "clear", "copy"] {
        assert!(tally[name].1 > 0, "no failing {name} steps");
    }
}
