//! Starting the application processors (INIT, then two start-up IPIs, as Intel's
//! MultiProcessor Specification and Xen's `wakeup_secondary_cpu` do), one at a time.
//!
//! Each gets its own stack, GDT, TSS and IST stacks, per-CPU block and syscall MSRs, the
//! shared IDT and the hypervisor's page tables, enables its local APIC and reports in. Once
//! the machine is built ([`release_aps`]) each enters the scheduler (`kernel::run_ap`).
//!
//! Also the two inter-processor interrupts: the reschedule kick ([`kick`]) and the TLB
//! shootdown ([`shootdown`]), which a CPU serves without any lock, in its interrupt handler
//! or while it spins for the machine lock ([`service_flush`]).

use super::{apic, gdt, idt, paging, time::rdtsc};
use crate::cpus::MAX_CPUS;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Physical page the trampoline is copied to (below 1 MiB, never handed out: see
/// `mm::boot_mem::LOW_MEMORY_END`). ap_boot.S assumes this address.
pub const AP_BASE: u64 = 0x8000;
/// Where the boot CPU leaves what the next AP needs, in the trampoline's page: +0 the
/// boot page tables, +8 EFER, +0x10 the stack top, +0x18 `ap_entry`, +0x20 the CPU
/// number, +0x28 its descriptor tables.
const PARAMS: u64 = AP_BASE + 0xf00;
/// Each AP's hypervisor stack.
const AP_STACK: usize = 64 * 1024;

/// The hypervisor's own top-level table, which APs switch to.
static HV_L4: AtomicU64 = AtomicU64::new(0);
/// The CPU number of the last AP that reported in.
static REPORTED: AtomicU64 = AtomicU64::new(0);
/// Set once the machine is built: the APs waiting after their report enter the scheduler.
static RELEASED: AtomicBool = AtomicBool::new(false);
/// Each CPU's local APIC ID (CPU 0 the boot CPU's).
static APIC_IDS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Shootdowns asked of each CPU (a count) and the count it has served.
static FLUSH_ASKED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static FLUSH_DONE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// The top-level table of the hypervisor's own address space (no guest mappings), which an
/// idle CPU runs on.
pub fn hv_l4() -> u64 {
    HV_L4.load(Ordering::Relaxed)
}

/// Lets the APs waiting after their report into the scheduler (the machine is ready).
pub fn release_aps() {
    RELEASED.store(true, Ordering::SeqCst);
}

/// Sends the reschedule IPI to CPU `cpu`: it looks at its scheduling state under the
/// machine lock as soon as it can take interrupts (at once if it idles or runs a guest).
pub fn kick(cpu: usize) {
    if let Some(id) = APIC_IDS.get(cpu) {
        apic::send_ipi(id.load(Ordering::Relaxed), apic::RESCHEDULE_VECTOR);
    }
}

/// Flushes this CPU's TLB if a shootdown asked for it, and says so: called by the
/// shootdown IPI's handler and by a CPU spinning for the machine lock (whose interrupts are
/// off, and whose holder may be waiting for this very flush). Takes no lock.
pub fn service_flush() {
    let me = super::cpu::this_cpu();
    let asked = FLUSH_ASKED[me].load(Ordering::Acquire);
    if FLUSH_DONE[me].load(Ordering::Relaxed) != asked {
        x86_64::instructions::tlb::flush_all();
        FLUSH_DONE[me].store(asked, Ordering::Release);
    }
}

/// Flushes the TLBs of the CPUs in `cpus` (a bit per CPU; the running CPU's bit is
/// ignored) and returns once each has: Xen's `flush_tlb_mask`. Each target flushes its
/// whole TLB (guest mappings are never global). The caller holds the machine lock, so no
/// two shootdowns wait on each other; a target spinning for that lock serves it there.
pub fn shootdown(cpus: u64) {
    let me = super::cpu::this_cpu();
    let mut want = [0u64; MAX_CPUS];
    let targets = cpus & !(1 << me);
    for (cpu, w) in want.iter_mut().enumerate().filter(|(c, _)| targets & (1 << c) != 0) {
        *w = FLUSH_ASKED[cpu].fetch_add(1, Ordering::AcqRel) + 1;
        apic::send_ipi(APIC_IDS[cpu].load(Ordering::Relaxed), apic::FLUSH_VECTOR);
    }
    for (cpu, &w) in want.iter().enumerate().filter(|(c, _)| targets & (1 << c) != 0) {
        while FLUSH_DONE[cpu].load(Ordering::Acquire) < w {
            service_flush();
            core::hint::spin_loop();
        }
    }
}

extern "C" {
    static ap_tramp_start: u8;
    static ap_tramp_end: u8;
    static ap_boot_cr3: u64;
}

#[repr(C, align(16))]
struct Stack([u8; AP_STACK]);

fn put(off: u64, v: u64) {
    // SAFETY: PARAMS lies in the trampoline's page below 1 MiB, RAM in the direct map that
    // nothing else uses (the allocator never hands out low memory); written before the
    // start-up IPI that makes the AP read it.
    unsafe { core::ptr::write_volatile(paging::directmap(PARAMS + off) as *mut u64, v) }
}

fn get(off: u64) -> u64 {
    // SAFETY: as in `put`; the AP reads what the boot CPU wrote before starting it.
    unsafe { core::ptr::read_volatile(paging::directmap(PARAMS + off) as *const u64) }
}

/// Waits `us` microseconds of TSC time (`tsc_khz`).
fn delay_us(us: u64, tsc_khz: u64) {
    let t0 = rdtsc();
    while rdtsc().wrapping_sub(t0) < us * tsc_khz / 1000 {
        core::hint::spin_loop();
    }
}

/// Starts the APs of `apic_ids` (CPU `i` is `apic_ids[i]`; CPU 0, the boot CPU, is
/// running), with the hypervisor's table `hv_l4_mfn`: the CPU numbers that reported in.
/// A CPU that does not answer within 100 ms ends the starting (its trampoline might still
/// run later and must not find another CPU's stack).
pub fn start_aps(apic_ids: &[u32], hv_l4_mfn: u64, tsc_khz: u64) -> Vec<usize> {
    let mut online = Vec::new();
    HV_L4.store(hv_l4_mfn, Ordering::SeqCst);
    if apic_ids.len() < 2 {
        return online;
    }
    for (cpu, &id) in apic_ids.iter().enumerate().take(MAX_CPUS) {
        APIC_IDS[cpu].store(id, Ordering::Relaxed);
    }
    // SAFETY: the trampoline's bytes are a read-only blob of the image between the two
    // symbols (ap_boot.S), copied into the low page reserved for it (see `put`), whose
    // parameters start at 0xf00 (the blob is far shorter; checked).
    unsafe {
        let start = core::ptr::addr_of!(ap_tramp_start);
        let len = core::ptr::addr_of!(ap_tramp_end) as usize - start as usize;
        assert!(len < 0xf00, "the AP trampoline overlaps its parameters");
        core::ptr::copy_nonoverlapping(start, paging::directmap(AP_BASE), len);
        put(0, core::ptr::read_volatile(core::ptr::addr_of!(ap_boot_cr3)));
    }
    // EFER's LME, SCE and NXE as the boot CPU runs with them.
    // SAFETY: reading EFER has no side effect.
    let efer = unsafe { x86_64::registers::model_specific::Msr::new(0xC000_0080).read() } & ((1 << 0) | (1 << 8) | (1 << 11));
    put(8, efer);
    for (cpu, &id) in apic_ids.iter().enumerate().skip(1) {
        let stack = Box::leak(Box::new(Stack([0; AP_STACK])));
        let top = stack.0.as_ptr() as u64 + AP_STACK as u64;
        let tables = Box::leak(Box::new(gdt::CpuTables::new(top)));
        put(0x10, top);
        put(0x18, ap_entry as *const () as u64);
        put(0x20, cpu as u64);
        put(0x28, tables as *mut gdt::CpuTables as u64);
        REPORTED.store(0, Ordering::SeqCst);
        apic::send_init(id, tsc_khz);
        delay_us(10_000, tsc_khz);
        for _ in 0..2 {
            apic::send_startup(id, (AP_BASE >> 12) as u8, tsc_khz);
            delay_us(200, tsc_khz);
            if REPORTED.load(Ordering::SeqCst) == cpu as u64 {
                break;
            }
        }
        let t0 = rdtsc();
        while REPORTED.load(Ordering::SeqCst) != cpu as u64 && rdtsc().wrapping_sub(t0) < 100 * tsc_khz {
            core::hint::spin_loop();
        }
        if REPORTED.load(Ordering::SeqCst) != cpu as u64 {
            break;
        }
        online.push(cpu);
    }
    online
}

/// An AP's first Rust code, on its own stack, still on the boot page tables.
extern "C" fn ap_entry(cpu: u64) -> ! {
    paging::switch_to(HV_L4.load(Ordering::SeqCst));
    // SAFETY: the boot CPU leaked this CPU's tables for good and handed them to this CPU
    // alone (PARAMS + 0x28, written before the start-up IPI).
    let tables = unsafe { &mut *(get(0x28) as *mut gdt::CpuTables) };
    let stack_top = get(0x10);
    tables.load(cpu as usize);
    idt::load();
    super::cpu::init(cpu as usize, stack_top);
    apic::enable();
    REPORTED.store(cpu, Ordering::SeqCst);
    while !RELEASED.load(Ordering::SeqCst) {
        core::hint::spin_loop();
    }
    crate::kernel::run_ap()
}
