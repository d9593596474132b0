//! Property test: long random sequences of entry updates (valid and hostile), pins,
//! unpins, base-pointer switches, reservation changes, page clears and copies,
//! `update_va_mapping` and full teardowns, first by one domain alone, then by a privileged
//! domain mapping the frames of an unprivileged one (foreign mappings) interleaved with
//! that domain's own operations, reservation decreases and teardowns while still mapped.
//! After every step the stored counts must equal counts recomputed from scratch, foreign
//! entries included ([`Env::check_invariants`]), a failed step must have changed nothing,
//! every domain's accounting must match what it owns and every frame it was ever given
//! must be either still owned or released *by it*; at the end every frame is free and back
//! in the frame source and every domain's accounting is zero.
extern crate std;

use super::fake::*;
use super::page_info::{Level, PageType};
use hypercall_abi::errno::Errno;
use hypercall_abi::layout::pte;
use std::collections::{BTreeMap, HashMap};
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

/// Successes and failures per step kind.
type Tally = BTreeMap<&'static str, (u64, u64)>;

fn owned(env: &Env, id: u16) -> Vec<u64> {
    (0..NR_FRAMES).filter(|&m| env.frames.owned_by(m, id)).collect()
}

fn tables(env: &Env, id: u16) -> Vec<u64> {
    owned(env, id).into_iter().filter(|&m| env.page(m).page_type().level().is_some()).collect()
}

/// Any frame number a hostile guest might name: mostly its own, sometimes anything
/// (another domain's frames included).
fn any_mfn(rng: &mut Rng, env: &Env, id: u16) -> u64 {
    match rng.below(20) {
        0 => NR_FRAMES + rng.below(8),
        1 => HOLE.start + rng.below(HOLE.end - HOLE.start),
        2 => MAX_MFN + 1 + rng.below(4),
        3 => rng.below(FIRST_FREE),
        4 | 5 => rng.below(NR_FRAMES),
        _ => rng.pick(&owned(env, id)).unwrap_or(0),
    }
}

/// Flags for a present entry: usually plausible, sometimes with a forbidden bit.
fn flags(rng: &mut Rng) -> u64 {
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
    flags
}

/// An entry value for `table` of domain `id`: usually plausible, sometimes hostile.
fn entry(rng: &mut Rng, env: &Env, id: u16, table: u64) -> u64 {
    if rng.chance(12) {
        return if rng.chance(50) { 0 } else { rng.next() & !pte::PRESENT };
    }
    let target = if rng.chance(8) { table } else { any_mfn(rng, env, id) };
    ((target << 12) & pte::ADDR_MASK) | flags(rng)
}

fn index(rng: &mut Rng) -> usize {
    match rng.below(10) {
        0 => 256 + rng.below(16) as usize,
        1 => rng.below(512) as usize,
        _ => rng.below(4) as usize,
    }
}

/// A virtual address: mostly one domain `id`'s current tables translate (found by walking
/// them at random through present entries), sometimes anything.
fn va(rng: &mut Rng, env: &Env, id: u16) -> u64 {
    let mut table = env.dom_of(id).unwrap().kernel_base();
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
            if !env.frames.owned_by(table, id) {
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

/// One random operation of domain `id` on its own memory (teardown aside).
fn own_step(rng: &mut Rng, env: &mut Env, id: u16) -> (&'static str, Result<(), Errno>) {
    let table_pick = |rng: &mut Rng, env: &Env| {
        if rng.chance(75) {
            rng.pick(&tables(env, id)).unwrap_or_else(|| any_mfn(rng, env, id))
        } else {
            any_mfn(rng, env, id)
        }
    };
    match rng.below(99) {
        0..=39 => {
            let t = table_pick(rng, env);
            let e = entry(rng, env, id, t);
            let ptr = (t << 12) | (index(rng) as u64 * 8);
            let ad = rng.chance(20);
            ("update", env.mm_of(id).normal_update(ptr, e, ad).map(|_| ()))
        }
        40..=51 => {
            let m = any_mfn(rng, env, id);
            let l = rng.pick(&LEVELS).unwrap();
            ("pin", env.mm_of(id).pin(m, l))
        }
        52..=59 => {
            let m = if rng.chance(80) { rng.pick(&tables(env, id)).unwrap_or(0) } else { any_mfn(rng, env, id) };
            ("unpin", env.mm_of(id).unpin(m))
        }
        60..=65 => {
            let m = table_pick(rng, env);
            ("new_baseptr", env.mm_of(id).new_baseptr(m))
        }
        66..=68 => {
            let m = if rng.chance(25) { 0 } else { table_pick(rng, env) };
            ("new_user_baseptr", env.mm_of(id).new_user_baseptr(m))
        }
        69..=73 => {
            let m = any_mfn(rng, env, id);
            ("decrease", env.mm_of(id).decrease_reservation(m))
        }
        74..=78 => {
            let r = if rng.chance(50) {
                env.mm_of(id).increase_reservation().map(|_| ())
            } else {
                let pfn = rng.below(1000);
                env.mm_of(id).populate_physmap(pfn).map(|_| ())
            };
            ("increase", r)
        }
        79..=80 => {
            let m = any_mfn(rng, env, id);
            ("clear", env.mm_of(id).clear_page(m))
        }
        81..=82 => {
            let (d, s) = (any_mfn(rng, env, id), any_mfn(rng, env, id));
            ("copy", env.mm_of(id).copy_page(d, s))
        }
        83..=92 => {
            let (v, t) = (va(rng, env, id), rng.pick(&owned(env, id)).unwrap_or(0));
            let e = entry(rng, env, id, t);
            ("update_va", env.mm_of(id).update_va_mapping(v, e))
        }
        93..=94 => {
            let m = any_mfn(rng, env, id);
            ("machphys", env.mm_of(id).machphys_update(m, rng.below(1000)))
        }
        _ => {
            env.mm_of(id).flush_tlb();
            ("flush", Ok(()))
        }
    }
}

/// Checks the state after everything was torn down: nothing owned, every count zero,
/// every frame back, every domain's accounting zero.
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
    for d in core::iter::once(&env.dom).chain(env.others.iter().map(|o| &o.mm)).chain(env.gone.iter()) {
        assert_eq!((d.tot_pages(), d.shared_pages(), d.kernel_base(), d.user_base()), (0, 0, 0, 0), "d{}", d.id());
    }
    assert!(!env.frames.has_foreign_releases());
}

/// Counts a step's outcome; a failed step must have changed nothing.
fn record(tally: &mut Tally, name: &'static str, r: Result<(), Errno>, before: &Snapshot, env: &Env, at: (u64, usize)) {
    let t = tally.entry(name).or_default();
    if r.is_ok() {
        t.0 += 1;
    } else {
        t.1 += 1;
        let after = env.snapshot();
        assert!(after == *before, "seed {:#x} step {}: failed {name} ({r:?}) changed state:\n{}", at.0, at.1, before.diff(&after));
    }
}

fn run(seed: u64, steps: usize, privileged: bool, tally: &mut Tally) {
    let mut rng = Rng(seed | 1);
    let mut env = Env::new(privileged, 40);
    let id = env.dom.id();
    env.give(24);
    for step in 0..steps {
        let before = env.snapshot();
        let (name, r) = if rng.below(100) == 99 && rng.chance(30) {
            let owned_before = env.dom.tot_pages();
            let r = teardown_in_steps(&mut env, &mut rng);
            assert_eq!((r.forced, r.held), (0, 0), "seed {seed:#x} step {step}: teardown had to force counts or kept frames");
            assert!(r.released >= owned_before, "teardown released {} of {owned_before}", r.released);
            check_all_returned(&env);
            env.give(8 + rng.below(24) as usize);
            ("teardown", Ok(()))
        } else {
            own_step(&mut rng, &mut env, id)
        };
        record(tally, name, r, &before, &env, (seed, step));
        env.check_invariants();
    }
    let r = teardown_in_steps(&mut env, &mut rng);
    assert_eq!((r.forced, r.held), (0, 0));
    check_all_returned(&env);
}

/// Teardown in steps of random small amounts of work (as the destroying hypercall
/// continues itself), the whole frame table audited between any two steps.
fn teardown_in_steps(env: &mut Env, rng: &mut Rng) -> super::teardown::Relinquished {
    let mut t = super::teardown::Teardown::new(env.dom.released());
    loop {
        let work = 1 + rng.below(3000);
        if let Some(r) = env.mm().relinquish_some(&mut t, work) {
            return r;
        }
        env.check_invariants();
    }
}

/// Frames ever given to each domain, from owner changes seen after each step: with the
/// domain's releases and what it still owns, the conservation that shows every release
/// was charged to the frame's owner and to nobody else.
struct Given {
    owners: Vec<Option<u16>>,
    given: HashMap<u16, u64>,
    /// Domains of [`Env::gone`] already checked (their ids may be in use again).
    retired: usize,
}

impl Given {
    fn new() -> Self {
        Given { owners: std::vec![None; NR_FRAMES as usize], given: HashMap::new(), retired: 0 }
    }

    /// Notes frames that changed owner since the last call (no frame goes from one owner to
    /// another within a step without passing through the frame source: it would show as
    /// a change too, and is counted as given to the new owner).
    fn note(&mut self, env: &Env) {
        for mfn in 0..NR_FRAMES {
            let now = env.page(mfn).owner();
            if let Some(o) = now.filter(|_| now != self.owners[mfn as usize]) {
                *self.given.entry(o).or_default() += 1;
            }
            self.owners[mfn as usize] = now;
        }
    }

    /// Notes what changed, then checks every domain: the ones that went since the last
    /// call (whose ids may be reused after this) released all they were given.
    fn check(&mut self, env: &Env) {
        self.note(env);
        for d in &env.gone[self.retired..] {
            let given = self.given.remove(&d.id()).unwrap_or(0);
            assert_eq!((d.released(), d.frames_owned()), (given, 0), "d{} gone: released != frames given", d.id());
        }
        self.retired = env.gone.len();
        for d in core::iter::once(&env.dom).chain(env.others.iter().map(|o| &o.mm)) {
            let given = self.given.get(&d.id()).copied().unwrap_or(0);
            assert_eq!(d.released() + d.frames_owned(), given, "d{}: released + owned != frames given", d.id());
        }
    }
}

/// Gives domain `id` up to `n` frames (fewer if the frame source or its limit runs out).
fn give_some(env: &mut Env, id: u16, n: u64) {
    for _ in 0..n {
        if env.mm_of(id).increase_reservation().is_err() {
            break;
        }
    }
}

/// Foreign-mapping slots in each of dom0's two L1 tables.
const SLOTS: u64 = 24;

/// Machine addresses of the present slots of dom0's L1s (or only of L1 `only`).
fn present_slots(env: &Env, l1s: [u64; 2], only: Option<usize>) -> Vec<u64> {
    let l1s = match only {
        Some(k) => &l1s[k..=k],
        None => &l1s[..],
    };
    l1s.iter()
        .flat_map(|&l1| (0..SLOTS).map(move |i| (l1, i)))
        .filter(|&(l1, i)| env.peek(l1, i as usize) & pte::PRESENT != 0)
        .map(|(l1, i)| (l1 << 12) | (i * 8))
        .collect()
}

fn run_two(seed: u64, steps: usize, tally: &mut Tally) {
    let mut rng = Rng(seed | 1);
    let mut env = Env::new(true, 24);
    let mut given = Given::new();
    // dom0: one tree whose L2 links two L1s (the foreign-mapping slots).
    let t = env.give(5);
    let (l2, l1s) = (t[2], [t[3], t[4]]);
    env.poke(t[0], 0, pte_for(t[1], RW));
    env.poke(t[1], 0, pte_for(l2, RW));
    env.poke(l2, 0, pte_for(l1s[0], RW));
    env.poke(l2, 1, pte_for(l1s[1], RW));
    env.mm().new_baseptr(t[0]).unwrap();
    let mut guest = env.add_domain(false, 40);
    give_some(&mut env, guest, 20);
    given.check(&env);
    env.check_invariants();
    let mut held_teardowns = 0;

    for step in 0..steps {
        let before = env.snapshot();
        let slot = |rng: &mut Rng| (rng.pick(&l1s).unwrap() << 12) | (rng.below(SLOTS) * 8);
        let (name, r): (&'static str, Result<(), Errno>) = match rng.below(100) {
            0..=39 => own_step(&mut rng, &mut env, guest),
            40..=61 => {
                let target = match rng.below(10) {
                    0..=5 => rng.pick(&owned(&env, guest)).unwrap_or(0),
                    6 => rng.pick(&tables(&env, guest)).unwrap_or(0),
                    7 => rng.pick(&owned(&env, 0)).unwrap_or(0),
                    8 => rng.below(NR_FRAMES),
                    _ => any_mfn(&mut rng, &env, guest),
                };
                let f = if rng.chance(80) { RO | (pte::RW * rng.below(2)) } else { flags(&mut rng) };
                let ptr = slot(&mut rng);
                ("foreign_map", env.mm().normal_update_as(ptr, pte_for(target, f), rng.chance(20), guest).map(|_| ()))
            }
            62..=75 => {
                let ptr = rng.pick(&present_slots(&env, l1s, None)).unwrap_or_else(|| slot(&mut rng));
                // Unmapping needs no page owner; with one it works the same.
                let pg_owner = if rng.chance(30) { guest } else { 0 };
                ("foreign_unmap", env.mm().normal_update_as(ptr, 0, false, pg_owner).map(|_| ()))
            }
            76..=77 => {
                // Devalidates one L1: every foreign reference in it goes at once.
                let k = rng.below(2);
                ("drop_l1", env.mm().normal_update((l2 << 12) | (k * 8), 0, false).map(|_| ()))
            }
            78..=83 => {
                // An unlinked L1 is plain data: its foreign entries must be cleared before it
                // can be linked again (validation takes no page owner: EBUSY until then).
                let k = rng.below(2) as usize;
                let left = present_slots(&env, l1s, Some(k));
                if !left.is_empty() && rng.chance(70) {
                    ("scrub_l1", env.mm().normal_update(rng.pick(&left).unwrap(), 0, false).map(|_| ()))
                } else {
                    ("relink_l1", env.mm().normal_update((l2 << 12) | (k as u64 * 8), pte_for(l1s[k], RW), false).map(|_| ()))
                }
            }
            84..=89 => {
                // dom0 working on the guest's reservation (memory_op with its domid) acts on
                // the guest's view; prefer the frames dom0 maps.
                if rng.chance(50) {
                    ("remote_populate", env.mm_of(guest).populate_physmap(rng.below(1000)).map(|_| ()))
                } else {
                    let mapped: Vec<u64> = owned(&env, guest).into_iter().filter(|&m| env.page(m).count() > 1).collect();
                    let m = rng.pick(&mapped).unwrap_or_else(|| any_mfn(&mut rng, &env, guest));
                    ("remote_decrease", env.mm_of(guest).decrease_reservation(m))
                }
            }
            90 if env.others.iter().filter(|o| o.dying).count() < 2 => {
                let r = env.destroy(guest);
                assert_eq!(r.forced, 0, "seed {seed:#x} step {step}: teardown forced counts");
                match env.dom_of(guest) {
                    Some(d) => {
                        assert_eq!(r.held, d.frames_owned());
                        assert!(r.held > 0 && env.is_dying(guest));
                        held_teardowns += 1;
                    }
                    None => assert_eq!(r.held, 0, "gone at once only when nothing is held"),
                }
                // Before the id can be used again.
                given.check(&env);
                guest = env.add_domain(false, 40);
                let n = 8 + rng.below(16);
                give_some(&mut env, guest, n);
                ("guest_teardown", Ok(()))
            }
            91..=92 => {
                let (name, r) = own_step(&mut rng, &mut env, 0);
                (if r.is_ok() { "dom0_own" } else { name }, r)
            }
            93..=94 => ("dom0_restore", if env.dom.kernel_base() == t[0] { Ok(()) } else { env.mm().new_baseptr(t[0]) }),
            _ => {
                env.mm().flush_tlb();
                ("flush", Ok(()))
            }
        };
        record(tally, name, r, &before, &env, (seed, step));
        if env.frames.has_foreign_releases() {
            tally.entry("charged").or_default().0 += 1;
        }
        env.settle();
        given.check(&env);
        env.check_invariants();
    }
    tally.entry("held_teardown").or_default().0 += held_teardowns;

    // The guest goes (dying while dom0 maps it), then dom0 itself, which lets go of every
    // foreign frame: every dying domain is gone and everything is back.
    env.destroy(guest);
    env.check_invariants();
    let r = env.mm().relinquish();
    assert_eq!((r.forced, r.held), (0, 0), "nobody maps dom0's frames");
    env.settle();
    given.check(&env);
    assert!(env.others.is_empty(), "dying domains left: {:?}", env.others);
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

#[test]
fn foreign_mappings_and_teardowns_keep_every_count_and_owner_exact() {
    let mut tally = BTreeMap::new();
    let steps = std::env::var("MM_PROP_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(2500);
    let extra: u64 = std::env::var("MM_PROP_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let seeds = [0xf0_4e16u64, 0xd0_0d1e, 0x5eed_0002, 99].into_iter().chain((0..extra).map(|i| 2000 + i));
    for seed in seeds {
        run_two(seed, steps, &mut tally);
    }
    std::println!("{tally:?}");
    for (name, min_ok) in [
        ("update", 200),
        ("pin", 50),
        ("decrease", 10),
        ("foreign_map", 300),
        ("foreign_unmap", 300),
        ("drop_l1", 30),
        ("relink_l1", 30),
        ("scrub_l1", 30),
        ("dom0_restore", 30),
        ("remote_populate", 30),
        ("remote_decrease", 30),
        ("guest_teardown", 20),
        ("held_teardown", 10),
        ("charged", 30),
    ] {
        let (ok, _) = tally.get(name).copied().unwrap_or_default();
        assert!(ok >= min_ok, "only {ok} successful {name} steps");
    }
    for name in ["foreign_map", "relink_l1", "remote_decrease"] {
        assert!(tally[name].1 > 0, "no failing {name} steps");
    }
}
