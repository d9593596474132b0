//! The local APIC: its timer gives the scheduler a tick, so a guest that never yields
//! cannot keep the CPU. xAPIC registers through a mapping in the hypervisor's slice.

use super::time::rdtsc;
use core::sync::atomic::{AtomicU32, Ordering};

/// Timer ticks per millisecond, measured at boot.
static TICKS_PER_MS: AtomicU32 = AtomicU32::new(0);
/// Each CPU's one-shot timer fired since [`take_fired`] last looked.
static FIRED: [core::sync::atomic::AtomicBool; crate::cpus::MAX_CPUS] =
    [const { core::sync::atomic::AtomicBool::new(false) }; crate::cpus::MAX_CPUS];

/// Records that the running CPU's timer interrupt came (called by the interrupt entry).
pub fn note_fired() {
    FIRED[super::cpu::this_cpu()].store(true, Ordering::SeqCst);
}

/// Whether the running CPU's timer fired since [`take_fired`] last looked (left as it is).
pub fn fired() -> bool {
    FIRED[super::cpu::this_cpu()].load(Ordering::Relaxed)
}

/// Whether the running CPU's timer fired since the last call: nothing is armed any more.
pub fn take_fired() -> bool {
    FIRED[super::cpu::this_cpu()].swap(false, Ordering::SeqCst)
}

/// Where the APIC's registers are mapped (the vmap area of Xen's layout).
pub const APIC_VA: u64 = 0xffff_82c0_0000_0000;
/// Vector of the timer interrupt.
pub const TIMER_VECTOR: u64 = 0xf0;
/// Vector of the reschedule IPI: the CPU looks at its scheduling state (a vCPU woke for
/// it, one it runs must stop, an event for the vCPU it runs) under the machine lock.
pub const RESCHEDULE_VECTOR: u64 = 0xf1;
/// Vector of the TLB shootdown IPI: the CPU flushes its TLB and acknowledges, without
/// taking any lock (`kernel::tlb`).
pub const FLUSH_VECTOR: u64 = 0xf2;
/// Vector of spurious interrupts.
pub const SPURIOUS_VECTOR: u64 = 0xff;

const REG_TPR: u64 = 0x80;
const REG_EOI: u64 = 0xb0;
const REG_SVR: u64 = 0xf0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_LVT_LINT0: u64 = 0x350;
const REG_TIMER_INIT: u64 = 0x380;
const REG_TIMER_CUR: u64 = 0x390;
const REG_TIMER_DIV: u64 = 0x3e0;
const REG_ID: u64 = 0x20;
const REG_ICR_LOW: u64 = 0x300;
const REG_ICR_HIGH: u64 = 0x310;
/// ICR: delivery still pending.
const ICR_PENDING: u32 = 1 << 12;
/// ICR: INIT, level asserted.
const ICR_INIT: u32 = 0x4500;
/// ICR: start-up (the vector is the page of the code to run).
const ICR_STARTUP: u32 = 0x4600;

fn write(reg: u64, v: u32) {
    // SAFETY: APIC_VA maps the local APIC's 4 KiB register page (uncached) for the whole
    // run; `reg` is one of the architectural register offsets above, 16-byte aligned.
    unsafe { core::ptr::write_volatile((APIC_VA + reg) as *mut u32, v) }
}

fn read(reg: u64) -> u32 {
    // SAFETY: as in `write`.
    unsafe { core::ptr::read_volatile((APIC_VA + reg) as *const u32) }
}

/// Physical address of the local APIC (IA32_APIC_BASE).
pub fn phys_base() -> u64 {
    // SAFETY: reading IA32_APIC_BASE has no side effects; every x86_64 CPU has it.
    unsafe { x86_64::registers::model_specific::Msr::new(0x1b).read() & 0x000f_ffff_ffff_f000 }
}

/// Enables the APIC, measures its timer against the TSC (which runs at `tsc_khz`) and arms
/// it once, `first_ms` from now; returns timer ticks per millisecond. From then on the
/// timer is one-shot: the scheduler re-arms it for its next deadline with [`arm_ns`].
pub fn start_timer(tsc_khz: u64, first_ms: u32) -> u32 {
    write(REG_SVR, 0x100 | SPURIOUS_VECTOR as u32);
    write(REG_TPR, 0);
    write(REG_TIMER_DIV, 0b1011); // divide by 1
    write(REG_LVT_TIMER, 0x1_0000 | TIMER_VECTOR as u32); // masked, one shot
    write(REG_TIMER_INIT, u32::MAX);
    // Count between two reads of the current count, each followed by a TSC read, rather
    // than from the write: under TCG the first pass through this code (its translation)
    // takes tens of microseconds, which the count from the write would include and the
    // TSC window not (that made the timer fire about 1% late).
    let c0 = read(REG_TIMER_CUR);
    let t0 = rdtsc();
    while rdtsc().wrapping_sub(t0) < tsc_khz * 5 {
        core::hint::spin_loop();
    }
    let c1 = read(REG_TIMER_CUR);
    let t1 = rdtsc();
    let ticks = u64::from(c0.wrapping_sub(c1));
    let per_ms = (ticks * tsc_khz / t1.wrapping_sub(t0).max(1)).clamp(1, u64::from(u32::MAX)) as u32;
    TICKS_PER_MS.store(per_ms, Ordering::Relaxed);
    write(REG_LVT_TIMER, TIMER_VECTOR as u32); // one shot, unmasked
    write(REG_TIMER_INIT, per_ms.saturating_mul(first_ms));
    per_ms
}

/// Arms the one-shot timer to fire `ns` nanoseconds from now (at least 20 us, so a deadline
/// just missed still gets its interrupt; at most what the counter holds). Returns the delay
/// actually programmed, in ns.
///
/// Each call is a write to the APIC, which under TCG costs tens of thousands of cycles:
/// callers skip it when an interrupt early enough is armed already.
pub fn arm_ns(ns: u64) -> u64 {
    let per_ms = u64::from(TICKS_PER_MS.load(Ordering::Relaxed).max(1));
    let ticks = (ns.max(20_000) as u128 * per_ms as u128 / 1_000_000).clamp(1, u32::MAX as u128);
    write(REG_TIMER_INIT, ticks as u32);
    (ticks * 1_000_000 / per_ms as u128) as u64
}

/// Lets the legacy PIC's interrupts in through LINT0 (ExtINT delivery, unmasked), as the
/// BIOS usually leaves it; set explicitly since a boot loader need not.
pub fn accept_pic_interrupts() {
    write(REG_LVT_LINT0, 0x700);
}

/// The running CPU's local APIC ID (xAPIC: bits 24..32 of the ID register).
pub fn id() -> u32 {
    read(REG_ID) >> 24
}

/// Enables the running CPU's local APIC (an application processor's: the boot CPU's is
/// enabled by [`start_timer`]), accepting every priority, its one-shot timer unmasked at
/// the rate the boot CPU measured (the CPUs' timers run from one clock) and not armed.
pub fn enable() {
    write(REG_SVR, 0x100 | SPURIOUS_VECTOR as u32);
    write(REG_TPR, 0);
    write(REG_TIMER_DIV, 0b1011); // divide by 1, as the boot CPU's
    write(REG_LVT_TIMER, TIMER_VECTOR as u32);
    write(REG_TIMER_INIT, 0);
}

/// ICR: fixed delivery, physical destination, edge.
const ICR_FIXED: u32 = 0x4000;

/// Sends interrupt `vector` to the CPU whose local APIC ID is `apic_id` (an IPI). Waits
/// for the previous IPI to have left the APIC first, not for this one to be taken.
pub fn send_ipi(apic_id: u32, vector: u64) {
    while read(REG_ICR_LOW) & ICR_PENDING != 0 {
        core::hint::spin_loop();
    }
    write(REG_ICR_HIGH, apic_id << 24);
    write(REG_ICR_LOW, ICR_FIXED | vector as u32);
}

/// Sends `command` to the CPU whose local APIC ID is `apic_id` and waits (at most about a
/// millisecond of TSC ticks, `tsc_khz`) until the APIC has delivered it.
fn send(apic_id: u32, command: u32, tsc_khz: u64) {
    write(REG_ICR_HIGH, apic_id << 24);
    write(REG_ICR_LOW, command);
    let t0 = rdtsc();
    while read(REG_ICR_LOW) & ICR_PENDING != 0 && rdtsc().wrapping_sub(t0) < tsc_khz {
        core::hint::spin_loop();
    }
}

/// INIT to CPU `apic_id`: it resets and waits for a start-up IPI.
pub fn send_init(apic_id: u32, tsc_khz: u64) {
    send(apic_id, ICR_INIT, tsc_khz);
}

/// A start-up IPI to CPU `apic_id`: it starts in real mode at physical `page << 12`.
pub fn send_startup(apic_id: u32, page: u8, tsc_khz: u64) {
    send(apic_id, ICR_STARTUP | u32::from(page), tsc_khz);
}

/// Signals the end of the interrupt being handled.
pub fn eoi() {
    write(REG_EOI, 0);
}
