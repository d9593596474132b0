//! The boot sequence, from the first Rust instruction to entering dom0.

use crate::arch::console;
use crate::arch::exit::{exit, ExitCode};
use crate::arch::x86_64::{cpu, gdt, idt, paging, pic, time as hwtime};
use crate::kernel::{Machine, MACHINE};
use crate::mm::boot_mem::{FreeRanges, Range};
use crate::mm::frame_alloc::FrameAllocator;
use crate::mm::page_info::{FrameTable, PageInfo};
use crate::mm_machine::RamMap;
use crate::multiboot::{self, PhysRead};
use crate::{cmdline, dom0_build, mkprintln};
use alloc::vec::Vec;
use core::fmt;
use core::ptr::addr_of;
use linked_list_allocator::LockedHeap;

/// Physical address the image is loaded at (linker.ld PHYS_BASE).
const PHYS_BASE: u64 = 0x10_0000;
/// Scheduler time slice.
const SLICE_MS: u32 = 10;
/// The microkernel's heap.
const HEAP_SIZE: u64 = 8 << 20;
/// Boot structures and carve-outs must lie here: the boot page tables map 4 GiB.
const BOOT_MAPPED: u64 = 4 << 30;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

extern "C" {
    static hv_stack_top: u8;
    static __image_end: u8;
}

/// Physical memory as seen through the boot direct map (first 4 GiB).
struct BootPhys;

impl PhysRead for BootPhys {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = paddr.checked_add(buf.len() as u64) else { return false };
        if end > BOOT_MAPPED {
            return false;
        }
        // SAFETY: the boot tables map [0, 4 GiB) at DIRECTMAP_BASE; the range is inside it
        // and we only read.
        unsafe { core::ptr::copy_nonoverlapping(paging::directmap(paddr), buf.as_mut_ptr(), buf.len()) };
        true
    }
}

/// Stops the boot with one clear line.
pub fn boot_error(why: fmt::Arguments<'_>) -> ! {
    mkprintln!("boot error: {}", why);
    mkprintln!("nothing to run; stopping the machine");
    exit(ExitCode::BootError)
}

#[no_mangle]
extern "C" fn kmain_entry(magic: u64, info: u64, boot_tsc: u64) -> ! {
    console::init();
    mkprintln!("microkernel {} booting", env!("CARGO_PKG_VERSION"));
    let stack_top = addr_of!(hv_stack_top) as u64;
    gdt::init(stack_top);
    idt::init();
    pic::disable();
    cpu::init(0, stack_top);

    let bi = multiboot::parse(magic as u32, info, &BootPhys).unwrap_or_else(|e| boot_error(format_args!("{e}")));
    let args = core::str::from_utf8(bi.cmdline.args()).unwrap_or("<non-utf8>");
    mkprintln!("loader: {:?}, {} module(s), command line \"{}\"", bi.protocol, bi.modules.len(), args);
    let opts = cmdline::parse(bi.cmdline.args()).unwrap_or_else(|e| boot_error(format_args!("{e}")));

    // What must never be handed out: the image, the modules, the boot information.
    let image_end = addr_of!(__image_end) as u64 - paging::KERNEL_VBASE;
    let mut reserved: heapless::Vec<Range, 24> = heapless::Vec::new();
    let _ = reserved.push(Range { start: PHYS_BASE, end: image_end });
    let _ = reserved.push(Range { start: bi.info_range.0, end: bi.info_range.1 });
    for m in &bi.modules {
        let _ = reserved.push(Range { start: m.start, end: m.end });
    }
    let mut free = FreeRanges::new(&bi.regions, &reserved);
    let total_bytes: u64 = bi.regions.iter().filter(|r| r.is_available()).map(|r| r.len).sum();

    // The frame table: one PageInfo per frame up to the top of RAM.
    let nr_frames = free.top() / 4096;
    let ft_bytes = FrameTable::bytes_for(nr_frames);
    let ft_at = free
        .carve(ft_bytes, BOOT_MAPPED)
        .unwrap_or_else(|| boot_error(format_args!("no room below 4 GiB for the frame table")));
    // SAFETY: carved out of free RAM below 4 GiB, so nothing else uses it; mapped by the
    // boot direct map and later the real one; PageInfo is plain data and FrameTable::new
    // initialises every entry before use. It lives for the rest of the run.
    let frame_table = FrameTable::new(unsafe {
        core::slice::from_raw_parts_mut(paging::directmap(ft_at) as *mut PageInfo, nr_frames as usize)
    });
    let words = FrameAllocator::words_for(free.top() / 4096);
    let bitmap_bytes = (words * 8) as u64;
    let bitmaps = free
        .carve(2 * bitmap_bytes, BOOT_MAPPED)
        .unwrap_or_else(|| boot_error(format_args!("no room below 4 GiB for the frame bitmaps")));
    let heap = free
        .carve(HEAP_SIZE, BOOT_MAPPED)
        .unwrap_or_else(|| boot_error(format_args!("no room below 4 GiB for the microkernel heap")));
    // SAFETY: both ranges were just carved out of free RAM below 4 GiB, so nothing else will
    // ever use them, and the boot tables (and later the direct map) map them; they live for
    // the rest of the run.
    let (bits, managed) = unsafe {
        let b = paging::directmap(bitmaps) as *mut u64;
        (
            core::slice::from_raw_parts_mut(b, words),
            core::slice::from_raw_parts_mut(b.add(words), words),
        )
    };
    // SAFETY: as above: a carved, exclusively owned, mapped range of HEAP_SIZE bytes.
    unsafe { HEAP.lock().init(paging::directmap(heap), HEAP_SIZE as usize) };
    let mut frames = FrameAllocator::new(&free, bits, managed);
    mkprintln!("memory: {} KiB usable, {} frames free", total_bytes / 1024, frames.free_frames());

    // The CPUs, from ACPI's MADT while the boot mappings still show the firmware's tables.
    let cpus = match crate::arch::x86_64::acpi::madt_cpus() {
        Ok(entries) => crate::cpus::select(&entries, boot_apic_id()),
        Err(e) => {
            mkprintln!("cpus: no ACPI processor table ({:?}); running on the boot CPU only", e);
            crate::cpus::select(&[], boot_apic_id())
        }
    };

    let tsc_khz = hwtime::calibrate_tsc_khz();
    mkprintln!("tsc: {}.{:03} MHz", tsc_khz / 1000, tsc_khz % 1000);
    let rtc = crate::arch::x86_64::rtc::read();
    let system_ns = crate::time::TimeScale::for_frequency(tsc_khz * 1000).ticks_to_ns(hwtime::rdtsc().wrapping_sub(boot_tsc));
    let wallclock = match crate::time::rtc_to_unix(&rtc) {
        Some(secs) => {
            mkprintln!("wall clock: {} s since the epoch (RTC)", secs);
            crate::time::WallClock::at_system_zero(secs, system_ns)
        }
        None => {
            mkprintln!("wall clock: the RTC holds no valid time ({:?}); guests see the epoch", rtc);
            crate::time::WallClock::default()
        }
    };

    let ram: Vec<(u64, u64)> = bi.regions.iter().filter(|r| r.is_available()).map(|r| (r.base, r.len)).collect();
    // The machine layer's direct-map accesses stay below the end of RAM.
    crate::arch::x86_64::frames::set_ram_end(ram.iter().map(|&(b, l)| b + l).max().unwrap_or(0));
    let m2p_entries = frames.max_frame();
    let hv = paging::init(&mut frames, &ram, m2p_entries);
    mkprintln!("hypervisor address space ready ({} M2P entries)", m2p_entries);

    let mut machine = Machine {
        last_domid: 0,
        frames,
        frame_table,
        ram: RamMap::new(&bi.regions),
        hv_slots: hv.slots,
        m2p_entries,
        max_mfn: crate::mm_machine::cpu_max_mfn(),
        total_pages: total_bytes / 4096,
        tsc_khz,
        nr_cpus: 1,
        scale: crate::time::TimeScale::for_frequency(tsc_khz * 1000),
        boot_tsc,
        cmdline: bi.cmdline,
        domains: Vec::new(),
        cpus: alloc::vec![crate::kernel::CpuSched { current: Some((0, 0)), ..Default::default() }],
        sched: opts.sched.make(1),
        balance: opts.balance,
        events: crate::event::EventChannels::new(),
        wallclock,
        grants: grant_tables::Grants::new(),
    };
    let entry = dom0_build::build_dom0(&mut machine, &bi, &opts, &hv)
        .unwrap_or_else(|e| boot_error(format_args!("{e}")));
    if let Some(t) = opts.selftest {
        self_test(t);
    }
    let l4 = machine.domains[0].mm.kernel_base();
    let ticks = crate::arch::x86_64::apic::start_timer(machine.tsc_khz, SLICE_MS);
    let what = match opts.sched {
        crate::sched::Policy::Credit => "credit (weights, caps, BOOST; 30 ms accounting)",
        crate::sched::Policy::RoundRobin => "round robin",
        crate::sched::Policy::Rtds => "rtds (earliest deadline first over reservations, admission control)",
    };
    mkprintln!("scheduler: {}, {} ms slices (APIC one-shot timer, {} ticks/ms)", what, SLICE_MS, ticks);
    let online = crate::arch::x86_64::smp::start_aps(&cpus.apic_ids, hv.l4_mfn, machine.tsc_khz);
    machine.nr_cpus = 1 + online.len() as u32;
    mkprintln!(
        "cpus: {} online of {} in the MADT (APIC IDs {:?}{}{}{}); vCPUs run on every one, balance={}",
        machine.nr_cpus,
        cpus.apic_ids.len(),
        &cpus.apic_ids[..machine.nr_cpus as usize],
        if cpus.disabled > 0 { alloc::format!(", {} disabled", cpus.disabled) } else { alloc::string::String::new() },
        if cpus.over_limit > 0 { alloc::format!(", {} past the limit of {}", cpus.over_limit, crate::cpus::MAX_CPUS) } else { alloc::string::String::new() },
        if machine.nr_cpus as usize != cpus.apic_ids.len() { alloc::format!(", cpu{} did not start", machine.nr_cpus) } else { alloc::string::String::new() },
        opts.balance.name(),
    );
    // The scheduler shares the CPUs that came up (dom0 joins it again).
    machine.sched = opts.sched.make(machine.nr_cpus);
    for d in &machine.domains {
        machine.sched.add_domain(d.id, d.vcpus.len());
    }
    machine.cpus.resize(machine.nr_cpus as usize, crate::kernel::CpuSched::default());
    machine.cpus[0].slice_start = hwtime::rdtsc();
    machine.cpus[0].slice_end_ns = machine.now_ns() + crate::sched::TSLICE_NS;
    *MACHINE.lock() = Some(machine);
    crate::arch::x86_64::smp::release_aps();
    // Console input by interrupt from here on (interrupts stay off until dom0 runs).
    crate::arch::x86_64::apic::accept_pic_interrupts();
    pic::unmask_line(console::COM1_IRQ);
    console::enable_rx_interrupt();
    paging::switch_to(l4);
    mkprintln!("starting dom0");
    crate::arch::enter_guest_first_time(entry)
}

/// The boot CPU's local APIC ID (CPUID leaf 1, EBX bits 24..32).
fn boot_apic_id() -> u32 {
    core::arch::x86_64::__cpuid(1).ebx >> 24
}

/// Provokes a microkernel fault on purpose (see `cmdline::SelfTest`).
fn self_test(t: crate::cmdline::SelfTest) {
    mkprintln!("selftest: provoking a microkernel {:?}", t);
    match t {
        // SAFETY: deliberately reads an address the hypervisor never maps (the low half of
        // its own address space after the switch); the #PF handler reports it and stops the
        // machine, so nothing after the read runs.
        crate::cmdline::SelfTest::PageFault => unsafe {
            core::ptr::read_volatile(0x10 as *const u64);
        },
        // SAFETY: deliberately points rsp at unmapped memory and faults: the CPU cannot
        // push the #PF frame, raises #DF, which runs on its own IST stack, reports and stops.
        crate::cmdline::SelfTest::DoubleFault => unsafe {
            core::arch::asm!("mov rsp, 0x1000", "push rax", options(noreturn));
        },
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::print_line_unlocked(format_args!("PANIC: {info}"));
    exit(ExitCode::Panic)
}
