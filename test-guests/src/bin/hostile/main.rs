//! hostile: an unprivileged guest that attacks the hypervisor the way the holes of issue 10
//! did, one attack per boot, chosen by its command line (`attack=<name>`). Each attack
//! prints `hostile: <name> ...` lines saying what it saw; a scenario asserts those, that
//! the microkernel said what it did to this domain, and that dom0 and a bystander guest
//! went on running.
//!
//! - `df`: `std; ud2` with no #UD handler. The microkernel used to run its own copies with
//!   the guest's direction flag and overwrite its stack; now this domain crashes alone.
//! - `df-handler`: `std` then `int3` with a handler: the handler must start with DF clear.
//! - `iret-failsafe`: `HYPERVISOR_iret` to `ss = 0x000b` (an empty GDT slot): the return
//!   faults in the hypervisor, which enters our failsafe callback with the frame.
//! - `iret-crash`: the same with no failsafe callback: this domain crashes alone.
//! - `grant-unmap-zero`: grants a page to itself, maps it, then unmaps with `host_addr = 0`
//!   and through another address (XSA-224 class): both refused, the mapping and the in-use
//!   flags stay, a real unmap then works.
//! - `evtchn-nodomain`: `alloc_unbound` for a domain that does not exist: `-ESRCH`.
#![no_std]
#![no_main]

extern crate alloc;

mod xsa;

use alloc::format;
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};
use pv_guest::grant::{self, GrantTable};
use pv_guest::hypercall_abi::callback::CALLBACKTYPE_FAILSAFE;
use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::hypercall_abi::grant_table::*;
use pv_guest::hypercall_abi::hypercall::{Hypercall, HYPERCALL_STUB_SIZE};
use pv_guest::hypercall_abi::arch::TrapInfo;
use pv_guest::hypercall_abi::layout::FLAT_KERNEL_CS;
use pv_guest::mm::xen::GuestMm;
use pv_guest::start_info::cmdline;
use pv_guest::testing::{ensure, Tests};
use pv_guest::{events, println, ShutdownReason, StartInfo};

/// A domain id no domain has.
const NO_DOMAIN: u16 = 999;

/// The `ss` of the `iret` attack: GDT slot 1 with RPL 3, empty.
const BAD_SS: u64 = 0x000b;

/// What the failsafe callback saw: the frame's `ss` and `rip` slots.
static FAILSAFE_SS: AtomicU64 = AtomicU64::new(0);
static FAILSAFE_RIP: AtomicU64 = AtomicU64::new(0);

// The failsafe callback: the frame (rcx, r11, ds, es, fs, gs, rip, cs, rflags, rsp, ss)
// is at rsp, 8 bytes off 16-byte alignment. Record it and end the domain from Rust.
global_asm!(
    ".globl hostile_failsafe",
    "hostile_failsafe:",
    "    lea (%rsp), %rdi",
    "    sub $8, %rsp",
    "    call {record}",
    "    ud2",
    record = sym failsafe_entered,
    options(att_syntax)
);

extern "C" {
    fn hostile_failsafe();
}

extern "C" fn failsafe_entered(frame: *const u64) -> ! {
    // SAFETY: the hypervisor wrote the 11-word failsafe frame at `frame`, on our stack.
    let (rip, ss) = unsafe { (frame.add(6).read_volatile(), frame.add(10).read_volatile()) };
    FAILSAFE_RIP.store(rip, Ordering::SeqCst);
    FAILSAFE_SS.store(ss, Ordering::SeqCst);
    println!("hostile: iret-failsafe callback entered: rip={rip:#x} ss={ss:#x}");
    pv_guest::hypercall::sched_shutdown(ShutdownReason::Poweroff)
}

/// Where the `iret` would have returned to; never reached.
extern "C" fn iret_target() -> ! {
    println!("hostile: iret returned with an unloadable ss");
    pv_guest::hypercall::sched_shutdown(ShutdownReason::Crash)
}

/// `HYPERVISOR_iret` to [`iret_target`] in kernel mode (a kernel `cs` with RPL 0, as a
/// bounce frame hands it over) with `ss = BAD_SS`.
fn iret_bad_ss() -> ! {
    let target = iret_target as *const () as u64;
    // SAFETY: builds Xen's iret_context (lowest address first: rax, r11, rcx, flags, rip,
    // cs, rflags, rsp, ss; the page's stub pushes the first three) on our stack and enters
    // the iret stub; control never comes back here.
    unsafe {
        asm!(
            "mov %rsp, %rax",
            "push %rdx",
            "push %rax",
            "push $0x202",
            "push %rsi",
            "push %rdi",
            "push $0",
            "jmp hypercall_page + {off}",
            in("rdx") BAD_SS,
            in("rsi") u64::from(FLAT_KERNEL_CS & !3),
            in("rdi") target,
            off = const Hypercall::Iret as usize * HYPERCALL_STUB_SIZE,
            options(att_syntax, noreturn)
        )
    }
}

fn register_failsafe() -> i64 {
    let r = events::CallbackRegister {
        kind: CALLBACKTYPE_FAILSAFE as u16,
        flags: 0,
        pad: 0,
        address: hostile_failsafe as *const () as u64,
    };
    events::callback_register_raw(&r)
}

// The `int3` handler of `df-handler`, raw (the kit's stubs run `cld` before Rust code):
// records rflags as the hypervisor entered it, then returns with `iret` (the bounce frame
// is rcx, r11, rip, cs, rflags, rsp, ss; the iret stub wants flags below rip and pushes
// rcx, r11 and rax itself).
global_asm!(
    ".globl hostile_int3",
    "hostile_int3:",
    "    pushfq",
    "    popq {seen}(%rip)",
    "    popq %rcx",
    "    popq %r11",
    "    pushq $0",
    "    jmp hypercall_page + {off}",
    seen = sym HANDLER_RFLAGS,
    off = const Hypercall::Iret as usize * HYPERCALL_STUB_SIZE,
    options(att_syntax)
);

extern "C" {
    fn hostile_int3();
}

/// rflags as the raw `int3` handler found them.
static HANDLER_RFLAGS: AtomicU64 = AtomicU64::new(u64::MAX);

fn install_raw_int3() -> i64 {
    let table = [
        TrapInfo::new(3, 3, true, FLAT_KERNEL_CS, hostile_int3 as *const () as u64),
        TrapInfo::new(0, 0, false, 0, 0),
    ];
    // SAFETY: the hypervisor only reads the table, up to its terminator.
    unsafe { pv_guest::hypercall::hypercall(Hypercall::SetTrapTable as u64, table.as_ptr() as u64, 0, 0, 0, 0) }
}

fn grant_unmap_zero(t: &mut Tests, si: &'static StartInfo) {
    let Ok(mut mm) = GuestMm::init(si, None) else { return t.report("mm_init", Err("failed".into())) };
    let own = pv_guest::xenbus::connect(si).ok().and_then(|mut xs| pv_guest::xenbus::own_domid(&mut xs).ok());
    let Some(own) = own else { return t.report("own_domid", Err("no domid in the store".into())) };
    let Ok(mut gt) = GrantTable::setup(&mut mm, 1) else { return t.report("setup_table", Err("failed".into())) };
    let (Some((page, _)), Some((_, va)), Some((_, other))) = (mm.alloc_mapped(), mm.alloc_mapped(), mm.alloc_mapped()) else {
        return t.report("pages", Err("no padding pages".into()));
    };
    let Some(gref) = gt.grant_access(own, page.mfn.0, false) else { return t.report("grant", Err("no ref".into())) };
    let h = match grant::map_one(va, own, gref, false) {
        Ok(h) => h,
        Err(st) => return t.report("map", Err(format!("status {st}"))),
    };
    let in_use = GTF_READING | GTF_WRITING;
    let zero = grant::unmap_one(0, h);
    println!("hostile: grant-unmap-zero host_addr=0 status {}", zero.err().unwrap_or(0));
    t.report("unmap_host_addr_zero_refused", ensure(zero == Err(GNTST_GENERAL_ERROR), || format!("{zero:?}")));
    t.report("flags_kept_after_zero", ensure(gt.flags(gref) & in_use == in_use, || format!("flags {:#x}", gt.flags(gref))));
    let wrong = grant::unmap_one(other, h);
    t.report("unmap_other_address_refused", ensure(wrong == Err(GNTST_GENERAL_ERROR), || format!("{wrong:?}")));
    // The mapping still works, and ending access is refused while it is mapped.
    // SAFETY: `va` maps the granted page (the map succeeded and nothing unmapped it).
    unsafe { (va as *mut u64).write_volatile(0x5a5a) };
    t.report("end_access_refused_while_mapped", ensure(gt.end_access(gref).is_err(), || "ended".into()));
    let real = grant::unmap_one(va, h);
    t.report("real_unmap", ensure(real == Ok(()), || format!("{real:?}")));
    t.report("flags_clear_after_real_unmap", ensure(gt.flags(gref) & in_use == 0, || format!("flags {:#x}", gt.flags(gref))));
    t.report("double_unmap_bad_handle", ensure(grant::unmap_one(va, h) == Err(GNTST_BAD_HANDLE), || "accepted".into()));
    t.report("end_access_after_unmap", ensure(gt.end_access(gref).is_ok(), || "refused".into()));
}

fn main(si: &'static StartInfo) -> ShutdownReason {
    let line = cmdline(si);
    let attack = line.split_whitespace().find_map(|w| w.strip_prefix("attack=")).unwrap_or("");
    let mut t = Tests::default();
    if let Err(e) = events::init(si) {
        println!("hostile: events init: {e:?}");
        return ShutdownReason::Crash;
    }
    println!("hostile: attack {attack}");
    match attack {
        "df" => {
            // SAFETY: sets DF and raises #UD with no handler: the microkernel ends us.
            unsafe { asm!("std", "ud2", options(nomem, nostack)) };
            println!("hostile: survived std; ud2");
        }
        "df-handler" => {
            let r = install_raw_int3();
            // SAFETY: DF set across an int3 that our raw handler takes; cleared after.
            unsafe { asm!("std", "int3", "cld", options(nomem)) };
            let df = HANDLER_RFLAGS.load(Ordering::SeqCst) >> 10 & 1;
            println!("hostile: df-handler set_trap_table {r}, handler saw DF={df}");
            t.report("handler_starts_with_df_clear", ensure(r == 0 && df == 0, || format!("ret {r} DF={df}")));
        }
        "iret-failsafe" => {
            let r = register_failsafe();
            println!("hostile: iret-failsafe registered failsafe: {r}");
            iret_bad_ss();
        }
        "iret-crash" => iret_bad_ss(),
        "grant-unmap-zero" => grant_unmap_zero(&mut t, si),
        "evtchn-nodomain" => {
            let r = events::alloc_unbound(NO_DOMAIN);
            println!("hostile: evtchn-nodomain alloc_unbound: {:?}", r.map_err(|e| e.name()));
            t.report("alloc_unbound_esrch", ensure(r == Err(Errno::ESRCH), || format!("{r:?}")));
        }
        other => {
            if !xsa::run(other, &mut t, si) {
                println!("hostile: unknown attack \"{attack}\"");
                return ShutdownReason::Crash;
            }
        }
    }
    t.done();
    ShutdownReason::Poweroff
}

pv_guest::entry!(main);
