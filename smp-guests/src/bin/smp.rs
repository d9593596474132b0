//! smp: a guest with two vCPUs. vCPU 0 checks the bring-up rules (`VCPUOP_up` before a
//! state, `initialise` twice, the last vCPU up refusing `down`), starts vCPU 1 with
//! `pv_guest::smp::start`, and the two count the primes below 200000 between them, each
//! its half; then they bounce IPIs (ports bound with `EVTCHNOP_bind_ipi`, waited for with
//! `SCHEDOP_poll`), and vCPU 1 takes itself down. On the way: vCPU 1's GDT comes in its
//! context, and a page vCPU 1 has read, unmapped by vCPU 0, faults when vCPU 1 touches
//! it again. Prints `TEST` lines and the IPI round
//! trip. With `bench` on its command line it also prints `cargo xtask bench`'s figures,
//! each beside a baseline measured in the same boot: the IPI round trip beside an event
//! sent to and polled on one vCPU (no switch), and a yield round trip between the two
//! vCPUs (two switches) beside a yield with the other vCPU down (no switch). With
//! `quick` it only brings vCPU 1 up, bounces 10 IPIs and takes it down (a short life for
//! the many-lives scenario).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use hypercall_abi::errno::Errno;
use pv_guest::mm::xen::GuestMm;
use pv_guest::testing::{ensure, Tests};
use pv_guest::{events, println, smp, ShutdownReason, StartInfo};

/// Primes below this (17984 of them: 9592 in the lower half, 8392 in the upper).
const N: u64 = 200_000;
const PRIMES: u64 = 17_984;
/// IPI round trips.
const ROUNDS: u32 = 1000;

static TO_ONE: AtomicU32 = AtomicU32::new(0);
static TO_ZERO: AtomicU32 = AtomicU32::new(0);
static RESULT_ONE: AtomicU64 = AtomicU64::new(0);
static ONE_DONE: AtomicBool = AtomicBool::new(false);
/// The IPI round trips: vCPU 0 writes the round in `PING` and signals; vCPU 1 answers it
/// in `PONG`. Counted, not inferred from pending bits (a second send before the first is
/// seen is one event).
static PING: AtomicU32 = AtomicU32::new(0);
static PONG: AtomicU32 = AtomicU32::new(0);
/// The switch figure: vCPU 1 waits for `YIELD_START`, then yields in a loop until
/// `YIELD_STOP`.
const YIELD_START: u32 = 1;
const YIELD_STOP: u32 = 2;
static STAGE: AtomicU32 = AtomicU32::new(0);
/// Yields measured.
const YIELDS: u32 = 2000;

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

fn count(from: u64, to: u64) -> u64 {
    (from..to).filter(|&n| is_prime(n)).count() as u64
}

/// The TLB check: vCPU 0 maps a page at `TLB_VA` holding `TLB_BYTE`; vCPU 1 reads it
/// (its TLB holds the translation), says so (`TLB_STAGE` 1); vCPU 0 unmaps it with
/// `UVMF_INVLPG | UVMF_ALL` (stage 2); vCPU 1 touches it again and must take a page fault
/// at that address (stage 3).
static TLB_VA: AtomicU64 = AtomicU64::new(0);
static TLB_STAGE: AtomicU32 = AtomicU32::new(0);
static TLB_READ: AtomicU32 = AtomicU32::new(0);
static TLB_FAULTS: AtomicU32 = AtomicU32::new(0);
static TLB_CR2: AtomicU64 = AtomicU64::new(0);
const TLB_BYTE: u8 = 0x5a;

/// vCPU 1's page-fault handler for the TLB check: counts the fault, keeps its address,
/// and skips the 2-byte load (`mov al, [rcx]`).
fn tlb_fault(t: &mut pv_guest::traps::Trap<'_>) {
    TLB_FAULTS.fetch_add(1, Ordering::SeqCst);
    TLB_CR2.store(pv_guest::traps::read_cr2(), Ordering::SeqCst);
    t.frame.rip += 2;
}

/// Reads the byte at `va` with a 2-byte `mov al, [rcx]` (what [`tlb_fault`] skips).
fn touch(va: u64) -> u8 {
    let v: u64;
    // SAFETY: a load from `va`: mapped (the value comes back) or not (the page-fault
    // handler counts it and skips the instruction, leaving rax as it was: 0). No write.
    unsafe { core::arch::asm!("xor eax, eax", ".byte 0x8a, 0x01", in("rcx") va, out("rax") v, options(nostack, readonly)) };
    v as u8
}

/// The parallelism check: vCPU 0 sets `SPIN` to 1 (and signals), vCPU 1 says it spins
/// (`SPINNING`) and spins until `SPIN` is 2; meanwhile vCPU 0 spins for `SPIN_NS` and
/// compares the two vCPUs' running time with the time that passed.
static SPIN: AtomicU32 = AtomicU32::new(0);
static SPINNING: AtomicBool = AtomicBool::new(false);
const SPIN_NS: u64 = 200_000_000;

/// A flat ring-3 data segment (what `update_descriptor` accepts for a guest GDT).
const USER_DS: u64 = 0x00cf_f200_0000_ffff;
/// System time as vCPU 1 read it from its own `vcpu_info` when it started.
static ONE_CLOCK: AtomicU64 = AtomicU64::new(0);
/// The `ds` vCPU 1 read back after loading selector 0x2b of the GDT its context gave.
static ONE_DS: AtomicU32 = AtomicU32::new(0);

/// vCPU 1: loads a selector of its GDT, counts the upper half, answers IPIs, goes down.
extern "C" fn secondary(vcpu: u64, _arg: u64) -> ! {
    if ONE_DS.load(Ordering::SeqCst) == 0 {
        let ds: u16;
        // SAFETY: loads ds with selector 0x2b, entry 5 of the GDT vCPU 0 gave this vCPU
        // (a flat data segment; ds is ignored in 64-bit mode), reads it back and loads
        // the null selector again. Without that GDT the load faults and the test fails.
        unsafe {
            core::arch::asm!("mov ds, {0:x}", in(reg) 0x2bu16, options(nomem, nostack));
            core::arch::asm!("mov {0:x}, ds", out(reg) ds, options(nomem, nostack));
            core::arch::asm!("mov ds, {0:x}", in(reg) 0u16, options(nomem, nostack));
        }
        // Its own clock: vcpu_info[1]'s time information.
        ONE_CLOCK.store(pv_guest::time::system_time_at(&pv_guest::time::time_info_of(1), pv_guest::time::rdtsc()), Ordering::SeqCst);
        ONE_DS.store(u32::from(ds), Ordering::SeqCst);
        // The TLB check's side on this vCPU.
        let va = TLB_VA.load(Ordering::SeqCst);
        if va != 0 && pv_guest::traps::install(&[(14, tlb_fault)]).is_ok() {
            TLB_READ.store(u32::from(touch(va)), Ordering::SeqCst);
            TLB_STAGE.store(1, Ordering::SeqCst);
            while TLB_STAGE.load(Ordering::SeqCst) < 2 {
                let _ = pv_guest::hypercall::sched_yield();
            }
            let _ = touch(va);
            TLB_STAGE.store(3, Ordering::SeqCst);
        }
    }
    RESULT_ONE.store(count(N / 2, N), Ordering::SeqCst);
    let (to_one, to_zero) = (TO_ONE.load(Ordering::SeqCst), TO_ZERO.load(Ordering::SeqCst));
    let _ = events::send(to_zero);
    // Both spin at once while vCPU 0 measures.
    wait_for(to_one, || SPIN.load(Ordering::SeqCst) != 0);
    SPINNING.store(true, Ordering::SeqCst);
    while SPIN.load(Ordering::SeqCst) == 1 {
        core::hint::spin_loop();
    }
    answer_pings(ROUNDS, to_one, to_zero);
    // The switch figure: yield until vCPU 0 says stop.
    wait_for(to_one, || STAGE.load(Ordering::SeqCst) >= YIELD_START);
    while STAGE.load(Ordering::SeqCst) < YIELD_STOP {
        let _ = pv_guest::hypercall::sched_yield();
    }
    ONE_DONE.store(true, Ordering::SeqCst);
    let _ = events::send(to_zero);
    let _ = smp::down(vcpu as u32);
    // Not reached: a vCPU down does not run.
    loop {
        let _ = pv_guest::hypercall::sched_yield();
    }
}

/// vCPU 1's side of the IPI round trips: waits on `to_one` for each of vCPU 0's `rounds`
/// pings and answers it in `PONG`, signalling `to_zero`.
fn answer_pings(rounds: u32, to_one: u32, to_zero: u32) {
    let mut answered = 0;
    while answered < rounds {
        wait_for(to_one, || PING.load(Ordering::SeqCst) > answered);
        answered = PING.load(Ordering::SeqCst);
        PONG.store(answered, Ordering::SeqCst);
        let _ = events::send(to_zero);
    }
}

/// The machine frame of a page inside `buf` (a heap buffer of at least two pages, so one
/// whole page lies in it), mapped writable in our initial region; 0 if it has none.
fn heap_page_mfn(mm: &GuestMm, buf: &[u8]) -> u64 {
    let page = (buf.as_ptr() as u64 + 4095) & !4095;
    mm.layout.pfn_of(page).and_then(|p| mm.p2m.mfn(p)).map_or(0, |m| m.0)
}

/// Waits (polling `port`, on the vCPU it is bound to) until `done` holds; the other side
/// makes `done` hold, then sends.
fn wait_for(port: u32, done: impl Fn() -> bool) {
    while !done() {
        let _ = events::poll(&[port], 0);
        events::clear_pending(port);
    }
}

fn run(si: &'static StartInfo, t: &mut Tests) -> Result<(), alloc::string::String> {
    let bench = pv_guest::start_info::cmdline(si).split_whitespace().any(|w| w == "bench");
    events::init(si).map_err(|e| format!("events: {e}"))?;
    let mm = GuestMm::init(si, None).map_err(|e| format!("memory: {e}"))?;
    t.report("no_state_no_up", ensure(smp::up(1) == Err(Errno::EINVAL) && smp::is_up(1) == Ok(false), || format!("up: {:?}, is_up: {:?}", smp::up(1), smp::is_up(1))));
    t.report("past_the_vcpus", ensure(smp::is_up(2) == Err(Errno::ENOENT) && smp::bind_ipi(2).is_err(), || format!("is_up(2): {:?}", smp::is_up(2))));
    // vCPU 1's GDT comes in its context, as Linux gives its secondary CPUs theirs: one
    // frame, not mapped, entry 5 a flat ring-3 data segment (selector 0x2b), written
    // with `update_descriptor`; vCPU 1 loads that selector first thing.
    let mut mm = mm;
    let gdt = mm.alloc_frame().ok_or("no frame for vCPU 1's GDT")?;
    pv_guest::hypercall::update_descriptor((gdt.mfn.0 << 12) + 5 * 8, USER_DS).map_err(|e| format!("update_descriptor: {e}"))?;
    // Hostile contexts: each refused, and the vCPU still has no state.
    {
        use hypercall_abi::arch::VcpuGuestContext;
        use zerocopy::FromZeros;
        let good = || {
            let mut c = alloc::boxed::Box::new(VcpuGuestContext::new_zeroed());
            c.user_regs.cs = hypercall_abi::layout::FLAT_KERNEL_CS;
            c.user_regs.ss = hypercall_abi::layout::FLAT_KERNEL_SS64;
            c.user_regs.rip = secondary as smp::Entry as usize as u64;
            c.user_regs.rsp = 0x1000;
            c.ctrlreg[3] = mm.boot_l4().mfn.0 << 12;
            c
        };
        let mut refusals = alloc::vec::Vec::new();
        let mut c = good();
        // The hypervisor's own ring-0 code selector (a guest's 0x10 would be raised to
        // 0x13, its own GDT's, as Xen does: Linux gives that).
        c.user_regs.cs = 0xe008;
        refusals.push(("the hypervisor's code selector", smp::initialise(1, &c)));
        let mut c = good();
        c.kernel_sp = 0x8000_0000_0000_0000;
        refusals.push(("a non-canonical kernel stack", smp::initialise(1, &c)));
        let mut c = good();
        c.user_regs.rip = 0x8000_0000_0000_0000;
        refusals.push(("non-canonical rip", smp::initialise(1, &c)));
        let mut c = good();
        c.gdt_ents = 7169;
        refusals.push(("a GDT past 7168 entries", smp::initialise(1, &c)));
        let mut c = good();
        c.ldt_ents = 16;
        refusals.push(("an LDT", smp::initialise(1, &c)));
        let mut c = good();
        // A page of our own heap, mapped writable: not a descriptor table.
        let writable = alloc::boxed::Box::new([0u8; 8192]);
        c.gdt_frames[0] = heap_page_mfn(&mm, &*writable);
        c.gdt_ents = 16;
        refusals.push(("a GDT in a writable page", smp::initialise(1, &c)));
        let mut c = good();
        c.gdt_frames[0] = 0xf_ffff;
        c.gdt_ents = 16;
        refusals.push(("a GDT in a frame not ours", smp::initialise(1, &c)));
        let mut c = good();
        c.gdt_frames[0] = mm.boot_l4().mfn.0;
        c.gdt_ents = 16;
        refusals.push(("a GDT in a page table", smp::initialise(1, &c)));
        let mut c = good();
        // A page of our own heap as the page table: not an L4 it can validate.
        let data = alloc::boxed::Box::new([0u8; 8192]);
        c.ctrlreg[3] = heap_page_mfn(&mm, &*data) << 12;
        refusals.push(("a writable page as its L4", smp::initialise(1, &c)));
        let mut c = good();
        c.ctrlreg[3] = 0xffff_f000;
        refusals.push(("a frame not ours as its L4", smp::initialise(1, &c)));
        // A good GDT with a bad L4: refused, and the GDT's frame given back (it is used
        // below; a reference kept would show in the free memory after many lives).
        let mut c = good();
        c.ctrlreg[3] = 0xffff_f000;
        c.gdt_frames[0] = gdt.mfn.0;
        c.gdt_ents = 16;
        refusals.push(("a good GDT with a bad L4", smp::initialise(1, &c)));
        let bad: alloc::vec::Vec<_> = refusals.iter().filter(|(_, r)| *r != Err(Errno::EINVAL)).collect();
        t.report("hostile_contexts_refused", ensure(bad.is_empty() && smp::up(1) == Err(Errno::EINVAL), || format!("{bad:?}")));
    }
    let to_one = smp::bind_ipi(1).map_err(|e| format!("bind_ipi(1): {e}"))?;
    let to_zero = smp::bind_ipi(0).map_err(|e| format!("bind_ipi(0): {e}"))?;
    TO_ONE.store(to_one, Ordering::SeqCst);
    TO_ZERO.store(to_zero, Ordering::SeqCst);
    let (_, tlb_va) = mm.alloc_mapped().ok_or("no mapped page for the TLB check")?;
    // SAFETY: a page of the initial region's padding, mapped writable, ours alone.
    unsafe { core::ptr::write_volatile(tlb_va as *mut u8, TLB_BYTE) };
    TLB_VA.store(tlb_va, Ordering::SeqCst);
    smp::start_with_gdt(&mm, 1, secondary, 0, 64 * 1024, &[gdt.mfn.0], 16).map_err(|e| format!("starting vCPU 1: {e}"))?;
    t.report("up", ensure(smp::is_up(1) == Ok(true), || format!("is_up: {:?}", smp::is_up(1))));
    // The TLB check: once vCPU 1 has read the page, unmap it for every vCPU.
    while TLB_STAGE.load(Ordering::SeqCst) < 1 {
        let _ = pv_guest::hypercall::sched_yield();
    }
    let unmapped = pv_guest::mm::xen::update_va_mapping_raw(tlb_va, 0, hypercall_abi::mmu::UVMF_INVLPG | hypercall_abi::mmu::UVMF_ALL);
    TLB_STAGE.store(2, Ordering::SeqCst);
    while TLB_STAGE.load(Ordering::SeqCst) < 3 {
        let _ = pv_guest::hypercall::sched_yield();
    }
    let (read, faults, cr2) = (TLB_READ.load(Ordering::SeqCst), TLB_FAULTS.load(Ordering::SeqCst), TLB_CR2.load(Ordering::SeqCst));
    t.report(
        "tlb_unmap_faults_on_the_other_vcpu",
        ensure(unmapped == 0 && read == u32::from(TLB_BYTE) && faults == 1 && cr2 == tlb_va, || format!("unmap {unmapped}, read {read:#x}, {faults} fault(s) at {cr2:#x} (page {tlb_va:#x})")),
    );
    let again = {
        use hypercall_abi::arch::VcpuGuestContext;
        let c = alloc::boxed::Box::new(<VcpuGuestContext as zerocopy::FromZeros>::new_zeroed());
        smp::initialise(1, &c)
    };
    t.report("initialise_twice_eexist", ensure(again == Err(Errno::EEXIST), || format!("{again:?}")));
    // Both halves at once (on two CPUs when there are two).
    let start = pv_guest::time::now_ns();
    let mine = count(0, N / 2);
    wait_for(to_zero, || RESULT_ONE.load(Ordering::SeqCst) != 0);
    let theirs = RESULT_ONE.load(Ordering::SeqCst);
    println!("smp: primes below {N}: {mine} on vCPU 0 + {theirs} on vCPU 1 in {} ms", (pv_guest::time::now_ns() - start) / 1_000_000);
    t.report("split_work", ensure(mine + theirs == PRIMES, || format!("{} primes, want {PRIMES}", mine + theirs)));
    // Both spinning: on two CPUs the time both vCPUs spent running adds up to more than the
    // time that passed (on one CPU it cannot).
    SPIN.store(1, Ordering::SeqCst);
    events::send(to_one).map_err(|e| format!("send: {e}"))?;
    while !SPINNING.load(Ordering::SeqCst) {
        core::hint::spin_loop();
    }
    let running = |v| pv_guest::time::runstate_of(v).map_or(0, |r| r.time[hypercall_abi::vcpu::RUNSTATE_RUNNING as usize]);
    let (start, ran0, ran1) = (pv_guest::time::now_ns(), running(0), running(1));
    while pv_guest::time::now_ns() - start < SPIN_NS {
        core::hint::spin_loop();
    }
    let (window, both) = (pv_guest::time::now_ns() - start, running(0) - ran0 + running(1) - ran1);
    SPIN.store(2, Ordering::SeqCst);
    let cpus = pv_guest::start_info::cmdline(si).split_whitespace().find_map(|w| w.strip_prefix("cpus=")).and_then(|n| n.parse::<u32>().ok());
    if let Some(cpus) = cpus {
        // With two CPUs at least 1.5 CPUs' worth of running time in the window; with one,
        // at most the window.
        let parallel = both * 10 > window * 15;
        println!("smp: {} ms of running time on the two vCPUs in {} ms", both / 1_000_000, window / 1_000_000);
        t.report("both_vcpus_at_once", ensure(parallel == (cpus >= 2), || format!("{} ms running in a {} ms window on {cpus} CPU(s)", both / 1_000_000, window / 1_000_000)));
    }
    t.report("gdt_from_context", ensure(ONE_DS.load(Ordering::SeqCst) == 0x2b, || format!("vCPU 1's ds: {:#x}", ONE_DS.load(Ordering::SeqCst))));
    // vCPU 1's clock (its own vcpu_info's) agrees with vCPU 0's: it read it before now,
    // and not long before.
    let (one, now) = (ONE_CLOCK.load(Ordering::SeqCst), pv_guest::time::now_ns());
    t.report("clock_of_vcpu_1", ensure(one != 0 && one <= now && now - one < 60_000_000_000, || format!("vCPU 1 read {one} ns, vCPU 0 reads {now} ns")));
    // IPIs back and forth.
    let start = pv_guest::time::rdtsc();
    for round in 1..=ROUNDS {
        PING.store(round, Ordering::SeqCst);
        events::send(to_one).map_err(|e| format!("send: {e}"))?;
        wait_for(to_zero, || PONG.load(Ordering::SeqCst) >= round);
    }
    let cycles = (pv_guest::time::rdtsc() - start) / u64::from(ROUNDS);
    println!("smp: IPI round trip between the vCPUs: {cycles} cycles (mean of {ROUNDS})");
    // Baseline: an event sent to a port of vCPU 0's own and polled there (no switch).
    let start = pv_guest::time::rdtsc();
    for _ in 0..ROUNDS {
        events::send(to_zero).map_err(|e| format!("send: {e}"))?;
        let _ = events::poll(&[to_zero], 0);
        events::clear_pending(to_zero);
    }
    let own = (pv_guest::time::rdtsc() - start) / u64::from(ROUNDS);
    // Two vCPUs yielding to each other: each yield of vCPU 0 is a switch there and back.
    STAGE.store(YIELD_START, Ordering::SeqCst);
    events::send(to_one).map_err(|e| format!("send: {e}"))?;
    let start = pv_guest::time::rdtsc();
    for _ in 0..YIELDS {
        let _ = pv_guest::hypercall::sched_yield();
    }
    let switch = (pv_guest::time::rdtsc() - start) / u64::from(YIELDS);
    STAGE.store(YIELD_STOP, Ordering::SeqCst);
    wait_for(to_zero, || ONE_DONE.load(Ordering::SeqCst));
    // vCPU 1 took itself down once it said so; let it get there.
    wait_until_down(1);
    t.report("down", ensure(smp::is_up(1) == Ok(false), || format!("is_up: {:?}", smp::is_up(1))));
    t.report("last_vcpu_stays_up", ensure(smp::down(0) == Err(Errno::EINVAL), || format!("{:?}", smp::down(0))));
    // Up again: it resumes where it went down (and yields there, harmlessly), then down.
    t.report("up_again", ensure(smp::up(1).is_ok() && smp::is_up(1) == Ok(true), || format!("{:?}", smp::is_up(1))));
    t.report("down_other", ensure(smp::down(1).is_ok() && smp::is_up(1) == Ok(false), || format!("{:?}", smp::is_up(1))));
    if bench {
        // A yield with the other vCPU down: the hypercall and the scheduler's pick alone.
        let start = pv_guest::time::rdtsc();
        for _ in 0..YIELDS {
            let _ = pv_guest::hypercall::sched_yield();
        }
        let alone = (pv_guest::time::rdtsc() - start) / u64::from(YIELDS);
        println!("BENCH ipi_round_trip {cycles} cycles event_on_one_vcpu {own}");
        println!("BENCH vcpu_yield_round_trip {switch} cycles yield_alone {alone}");
        println!("BENCH DONE");
    }
    Ok(())
}

/// How long vCPU 0 waits for vCPU 1 to reach its own `VCPUOP_down`.
const DOWN_WAIT_NS: u64 = 5_000_000_000;

/// Yields until vCPU `v` is down, or `DOWN_WAIT_NS` of system time passed. Time, not a
/// count of yields: with other domains' vCPUs queued on its CPU, vCPU `v` may wait there
/// for several slices while a yield here returns at once.
fn wait_until_down(v: u32) {
    let start = pv_guest::time::now_ns();
    while smp::is_up(v) == Ok(true) && pv_guest::time::now_ns() - start < DOWN_WAIT_NS {
        let _ = pv_guest::hypercall::sched_yield();
    }
}

/// IPI round trips of the `quick` life.
const QUICK_ROUNDS: u32 = 10;

/// vCPU 1 in a `quick` life: answers the pings, then goes down.
extern "C" fn quick_secondary(vcpu: u64, _arg: u64) -> ! {
    let (to_one, to_zero) = (TO_ONE.load(Ordering::SeqCst), TO_ZERO.load(Ordering::SeqCst));
    answer_pings(QUICK_ROUNDS, to_one, to_zero);
    ONE_DONE.store(true, Ordering::SeqCst);
    let _ = events::send(to_zero);
    let _ = smp::down(vcpu as u32);
    loop {
        let _ = pv_guest::hypercall::sched_yield();
    }
}

/// `quick` on the command line: a short life for the many-lives scenario. vCPU 1 comes
/// up, the two exchange `QUICK_ROUNDS` IPI round trips, vCPU 1 goes down.
fn quick(si: &'static StartInfo) -> Result<(), alloc::string::String> {
    events::init(si).map_err(|e| format!("events: {e}"))?;
    let mm = GuestMm::init(si, None).map_err(|e| format!("memory: {e}"))?;
    let to_one = smp::bind_ipi(1).map_err(|e| format!("bind_ipi(1): {e}"))?;
    let to_zero = smp::bind_ipi(0).map_err(|e| format!("bind_ipi(0): {e}"))?;
    TO_ONE.store(to_one, Ordering::SeqCst);
    TO_ZERO.store(to_zero, Ordering::SeqCst);
    smp::start(&mm, 1, quick_secondary, 0, 16 * 1024).map_err(|e| format!("starting vCPU 1: {e}"))?;
    for round in 1..=QUICK_ROUNDS {
        PING.store(round, Ordering::SeqCst);
        events::send(to_one).map_err(|e| format!("send: {e}"))?;
        wait_for(to_zero, || PONG.load(Ordering::SeqCst) >= round);
    }
    wait_for(to_zero, || ONE_DONE.load(Ordering::SeqCst));
    wait_until_down(1);
    if smp::is_up(1) != Ok(false) {
        return Err(format!("vCPU 1 did not go down: {:?}", smp::is_up(1)));
    }
    println!("smp: quick: vCPU 1 up, {QUICK_ROUNDS} IPI round trips, down");
    Ok(())
}

fn main(si: &'static StartInfo) -> ShutdownReason {
    if pv_guest::start_info::cmdline(si).split_whitespace().any(|w| w == "quick") {
        return match quick(si) {
            Ok(()) => ShutdownReason::Poweroff,
            Err(e) => {
                println!("smp: quick: {e}");
                ShutdownReason::Crash
            }
        };
    }
    let mut t = Tests::default();
    if let Err(e) = run(si, &mut t) {
        println!("smp: {e}");
        t.report("setup", Err(e));
    }
    t.done();
    ShutdownReason::Poweroff
}

pv_guest::entry!(main, heap = 1 << 20);
