//! user-test: checks guest user mode (Xen's x86_64 PV semantics) from a guest kernel that
//! runs its own process (run as dom0).
//!
//! The kernel builds a user address space with [`UserSpace`]: the process code (the
//! `u_*` routines below, copied into a fresh page) at 0x400000 read-only, a data page at
//! 0x600000 and a stack page below 0x800000, and nothing of the kernel. Each check enters
//! one routine through [`user::run`] and looks at what comes back:
//!
//! - `syscalls_1000`: 1000 syscalls with six arguments in registers, each answered with
//!   their sum, then an exit with the total and the count it saw;
//! - `user_data`: the process reads a word the kernel wrote into its data page;
//! - `user_reads_kernel`: a read of a kernel address arrives as #PF with cr2 that address
//!   and a user-mode, not-present error code; the kernel skips the instruction and the
//!   process exits normally;
//! - `ud2_from_user`: #UD, with the frame's cs the flat user selector (RPL 3);
//! - `int80_dpl0_gp`, `int80_dpl3`: `int $0x80` with a DPL-0 entry is #GP with error
//!   `(0x80 << 3) | 2` at the instruction; with a DPL-3 entry it reaches the vector, after it;
//! - `cli_gp`, `mov_cr3_gp`: privileged instructions are #GP (0), not emulated for user mode;
//! - `gs_bases`: the GS base the kernel sets for the process (`SEGBASE_GS_USER`) is what
//!   `%gs:0` reads there, while the kernel keeps seeing its own on every entry;
//! - `event_in_user`: a timer event that fires while the process spins is delivered to the
//!   kernel's handler (which sees user mode interrupted) and the process resumes with every
//!   register it had;
//! - `hypercall_number_from_user`: a process's `syscall` with `xen_version(0)`'s number and
//!   argument (answered at entry for a guest kernel) reaches the kernel's syscall callback;
//! - `syscall_no_callback`: with no syscall callback registered, `syscall` is #UD at the
//!   instruction (Xen 4.10 and later);
//! - `long_run`: a process that runs for many time slices (timer interrupts, and switches
//!   to other domains when there are any, arrive in user mode) ends with its count and
//!   registers right;
//! - `forced_cpuid`: the forced-emulation CPUID (not privileged) is emulated for user mode.
//!
//! With `bad-kernel-stack` on its command line it registers a kernel stack mapped nowhere
//! and enters a process that makes a syscall: the hypervisor must crash the domain.
//!
//! Prints `TEST <name> PASS|FAIL <why>`, then `TESTS DONE <p> passed, <f> failed`, and
//! powers off.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pv_guest::hypercall;
use pv_guest::hypercall_abi::event_channel::VIRQ_TIMER;
use pv_guest::hypercall_abi::layout::FLAT_USER_CS64;
use pv_guest::mm::xen::GuestMm;
use pv_guest::testing::{ensure, Outcome, Tests};
use pv_guest::user::{self, Action, Exit, UserException, UserRegs, UserSpace};
use pv_guest::{events, println, time, StartInfo};

/// Where the process's code, data and stack are.
const CODE_VA: u64 = 0x40_0000;
const DATA_VA: u64 = 0x60_0000;
const STACK_TOP: u64 = 0x80_0000;

/// The process's syscalls (this test's own ABI: number in rax, arguments in rdi, rsi, rdx,
/// r10, r8, r9, result in rax).
const SYS_SUM: u64 = 1;
const SYS_SET_GS: u64 = 2;
const SYS_REPORT: u64 = 3;
const SYS_EXIT: u64 = 60;

/// Offsets in the data page.
const DATA_WORD: u64 = 0x0;
const USER_GS_AREA: u64 = 0x100;
const EVENT_FLAG: u64 = 0x200;
const LONG_COUNTER: u64 = 0x300;

const DATA_MAGIC: u64 = 0x7573_6572_6461_7461; // "userdata"
const USER_GS_MAGIC: u64 = 0x7573_6572_6773_2121; // "usergs!!"
const KERNEL_GS_MAGIC: u64 = 0x6b65_726e_656c_6773; // "kernelgs"

/// What the kernel's GS base points at.
static KERNEL_GS_AREA: AtomicU64 = AtomicU64::new(KERNEL_GS_MAGIC);

// The process's code: position independent, copied to CODE_VA. Each routine ends in an
// exit syscall (or an exception the kernel ends the process on).
global_asm!(
    r#"
    .section .text.user_blob, "ax", @progbits
    .balign 16
    .globl u_blob_start
u_blob_start:

    .globl u_syscalls
u_syscalls:
    xorl %ebx, %ebx
    xorl %r12d, %r12d
    xorl %r13d, %r13d
1:  movl $1, %eax
    movq %rbx, %rdi
    leaq (%rbx,%rbx), %rsi
    movl $3, %edx
    movl $4, %r10d
    movl $5, %r8d
    movl $6, %r9d
    syscall
    addq %rax, %r12
    incq %r13
    incq %rbx
    cmpq $1000, %rbx
    jb 1b
    movq %r12, %rdi
    movq %r13, %rsi
    movl $60, %eax
    syscall
    ud2

    .globl u_read
u_read:
    movq (%rdi), %rdi
    movl $60, %eax
    syscall
    ud2

    .globl u_read_kernel
u_read_kernel:
    movq (%rsi), %rax
    movl $42, %edi
    movl $60, %eax
    syscall
    ud2

    .globl u_ud2
u_ud2:
    ud2

    .globl u_int80
u_int80:
    int $0x80
    movl $0x80, %edi
    movl $60, %eax
    syscall
    ud2

    .globl u_cli
u_cli:
    cli
    ud2

    .globl u_mov_cr3
u_mov_cr3:
    movq %cr3, %rax
    ud2

    .globl u_gs
u_gs:
    movl $2, %eax
    syscall
    movq %gs:0, %rdi
    movl $60, %eax
    syscall
    ud2

    .globl u_event
u_event:
1:  cmpq $0, (%rcx)
    jne 2f
    rdtsc
    shlq $32, %rdx
    orq %rdx, %rax
    cmpq %rdi, %rax
    jb 1b
    xorl %edi, %edi
    jmp 3f
2:  movl $1, %edi
3:  movq %r11, %rdx
    movl $3, %eax
    syscall
    ud2

    .globl u_long
u_long:
1:  incq (%rsi)
    decq %rdi
    jnz 1b
    movq (%rsi), %rdi
    movl $60, %eax
    syscall
    ud2

    .globl u_cpuid
u_cpuid:
    movl $0x40000000, %eax
    xorl %ecx, %ecx
    ud2
    .ascii "xen"
    cpuid
    movq %rbx, %rdi
    movl $60, %eax
    syscall
    ud2

    .globl u_bare_syscall
u_bare_syscall:
    syscall
    ud2

    .globl u_xen_version
u_xen_version:
    movl $17, %eax
    xorl %edi, %edi
    syscall
    movq %rax, %rdi
    movl $60, %eax
    syscall
    ud2

    .globl u_blob_end
u_blob_end:
"#,
    options(att_syntax),
);

unsafe extern "C" {
    static u_blob_start: u8;
    static u_blob_end: u8;
    static u_syscalls: u8;
    static u_read: u8;
    static u_xen_version: u8;
    static u_read_kernel: u8;
    static u_ud2: u8;
    static u_int80: u8;
    static u_cli: u8;
    static u_mov_cr3: u8;
    static u_gs: u8;
    static u_event: u8;
    static u_cpuid: u8;
    static u_long: u8;
    static u_bare_syscall: u8;
}

/// The process address of a routine whose kernel-side label is `label`.
fn user_va(label: *const u8) -> u64 {
    CODE_VA + (label as u64 - (&raw const u_blob_start) as u64)
}

/// The process code as bytes.
fn blob() -> &'static [u8] {
    let start = &raw const u_blob_start;
    let len = (&raw const u_blob_end) as usize - start as usize;
    // SAFETY: the bytes between the two labels are the assembled routines, in our
    // read-only text, for the life of the guest.
    unsafe { core::slice::from_raw_parts(start, len) }
}

/// The kernel's view of the process: where its data page is for the kernel.
struct Process {
    data_kva: u64,
}

impl Process {
    fn write_data(&self, offset: u64, v: u64) {
        // SAFETY: the data page is ours, mapped writable at `data_kva`; offsets are inside it.
        unsafe { core::ptr::write_volatile((self.data_kva + offset) as *mut u64, v) }
    }
}

fn build(mm: &mut GuestMm) -> Result<Process, alloc::string::String> {
    let mut space = UserSpace::new(mm).map_err(|e| format!("new: {e}"))?;
    space.load(mm, CODE_VA, blob()).map_err(|e| format!("code: {e}"))?;
    let data = space.map_page(mm, DATA_VA, true).map_err(|e| format!("data: {e}"))?;
    space.map_page(mm, STACK_TOP - 0x1000, true).map_err(|e| format!("stack: {e}"))?;
    space.install().map_err(|e| format!("install: {e}"))?;
    // The space stays installed for the guest's life.
    core::mem::forget(space);
    Ok(Process { data_kva: data.kva })
}

fn regs_at(label: *const u8) -> UserRegs {
    UserRegs::new(user_va(label), STACK_TOP)
}

/// The exception handler of checks that expect none: reports it and ends the process.
fn unexpected(_: &mut UserRegs, e: &UserException) -> Action {
    println!("user-test: unexpected exception {e:?}");
    Action::Exit
}

/// A process's `syscall` with a hypercall's number and arguments (`xen_version(0)`, which
/// the hypervisor answers at entry, without its lock, for a guest kernel) reaches its own
/// kernel like any other: a process never makes hypercalls.
fn check_hypercall_number_from_user() -> Outcome {
    const XEN_VERSION: u64 = 17;
    let mut regs = regs_at(&raw const u_xen_version);
    let mut seen = 0u32;
    let exit = user::run(
        &mut regs,
        &mut |r| match r.syscall_nr() {
            XEN_VERSION => {
                seen += 1;
                r.set_return(0x5a);
                Action::Resume
            }
            _ => Action::Exit,
        },
        &mut unexpected,
    );
    ensure(exit == Exit::Syscall && regs.syscall_nr() == SYS_EXIT && regs.rdi == 0x5a && seen == 1, || {
        format!("the kernel saw {seen} call(s); the process ended with {exit:?}, status {:#x}", regs.rdi)
    })
}

fn check_syscalls() -> Outcome {
    let mut regs = regs_at(&raw const u_syscalls);
    let (mut sums, mut bad) = (0u64, None);
    let exit = user::run(
        &mut regs,
        &mut |r| match r.syscall_nr() {
            SYS_SUM => {
                let a = r.syscall_args();
                if bad.is_none() && a != [sums, 2 * sums, 3, 4, 5, 6] {
                    bad = Some(format!("call {sums}: arguments {a:x?}"));
                }
                sums += 1;
                r.set_return(a.iter().sum());
                Action::Resume
            }
            _ => Action::Exit,
        },
        &mut unexpected,
    );
    ensure(exit == Exit::Syscall && regs.syscall_nr() == SYS_EXIT, || format!("ended with {exit:?} rax {:#x}", regs.rax))?;
    if let Some(b) = bad {
        return Err(b);
    }
    // sum over i < 1000 of (3i + 18)
    let want_total = 3 * 999 * 1000 / 2 + 18 * 1000;
    ensure(sums == 1000, || format!("kernel served {sums} syscalls, want 1000"))?;
    ensure(regs.rdi == want_total && regs.rsi == 1000, || {
        format!("process saw total {} over {} calls, want {want_total} over 1000", regs.rdi, regs.rsi)
    })
}

/// Runs a process that should end with `exit(status)`; returns the status.
fn run_to_exit(regs: &mut UserRegs) -> Result<u64, alloc::string::String> {
    let exit = user::run(regs, &mut |_| Action::Exit, &mut unexpected);
    ensure(exit == Exit::Syscall && regs.syscall_nr() == SYS_EXIT, || format!("ended with {exit:?} rax {:#x}", regs.rax))?;
    Ok(regs.rdi)
}

fn check_user_data(p: &Process) -> Outcome {
    p.write_data(DATA_WORD, DATA_MAGIC);
    let mut regs = regs_at(&raw const u_read);
    regs.rdi = DATA_VA + DATA_WORD;
    let v = run_to_exit(&mut regs)?;
    ensure(v == DATA_MAGIC, || format!("process read {v:#x}, want {DATA_MAGIC:#x}"))
}

/// Runs a process expected to raise exactly one exception first; returns it and the
/// registers at that point, and ends the process.
fn first_exception(regs: &mut UserRegs) -> Result<UserException, alloc::string::String> {
    match user::enter(regs) {
        Exit::Exception(e) => Ok(e),
        Exit::Syscall => Err(format!("syscall {:#x} instead of an exception", regs.rax)),
    }
}

fn expect_exception(e: &UserException, vector: u8, error: Option<u64>, rip: u64, regs: &UserRegs) -> Outcome {
    ensure(e.vector == vector && e.error_code == error, || {
        format!("vector {} error {:x?}, want {vector} {error:x?}", e.vector, e.error_code)
    })?;
    ensure(regs.rip == rip, || format!("rip {:#x}, want {rip:#x}", regs.rip))?;
    let cs = u64::from(e.cs);
    ensure(e.cs == FLAT_USER_CS64 && cs & 3 == 3, || format!("frame cs {cs:#x}, want {FLAT_USER_CS64:#x}"))?;
    ensure(regs.rsp == STACK_TOP, || format!("rsp {:#x}, want {STACK_TOP:#x}", regs.rsp))
}

fn check_user_reads_kernel() -> Outcome {
    let kernel_addr = (&raw const KERNEL_GS_AREA) as u64;
    let mut regs = regs_at(&raw const u_read_kernel);
    regs.rsi = kernel_addr;
    let e = first_exception(&mut regs)?;
    // Not present in the process's tables, a read, from user mode.
    expect_exception(&e, 14, Some(4), user_va(&raw const u_read_kernel), &regs)?;
    ensure(e.cr2 == Some(kernel_addr), || format!("cr2 {:x?}, want {kernel_addr:#x}", e.cr2))?;
    // Skip the 3-byte load and let the process finish.
    regs.rip += 3;
    let v = run_to_exit(&mut regs)?;
    ensure(v == 42, || format!("resumed process exited {v}, want 42"))
}

fn check_ud2() -> Outcome {
    let mut regs = regs_at(&raw const u_ud2);
    let e = first_exception(&mut regs)?;
    expect_exception(&e, 6, None, user_va(&raw const u_ud2), &regs)
}

fn check_int80(dpl: u8) -> Outcome {
    pv_guest::traps::install_entries(&[(0x80, dpl)]).map_err(|e| format!("set_trap_table: {e:?}"))?;
    let at = user_va(&raw const u_int80);
    let mut regs = regs_at(&raw const u_int80);
    let e = first_exception(&mut regs)?;
    if dpl < 3 {
        return expect_exception(&e, 13, Some((0x80 << 3) | 2), at, &regs);
    }
    expect_exception(&e, 0x80, None, at + 2, &regs)?;
    let v = run_to_exit(&mut regs)?;
    ensure(v == 0x80, || format!("process exited {v:#x} after the int, want 0x80"))
}

fn check_privileged(label: *const u8) -> Outcome {
    let mut regs = UserRegs::new(user_va(label), STACK_TOP);
    regs.rax = 0x1234;
    let e = first_exception(&mut regs)?;
    expect_exception(&e, 13, Some(0), user_va(label), &regs)?;
    ensure(regs.rax == 0x1234, || format!("rax {:#x} changed (emulated?)", regs.rax))
}

fn kernel_gs_word() -> u64 {
    let v: u64;
    // SAFETY: the kernel's GS base points at KERNEL_GS_AREA (set in main); an 8-byte read.
    unsafe { asm!("mov {}, gs:[0]", out(reg) v, options(nostack, readonly, preserves_flags)) };
    v
}

fn check_gs(p: &Process) -> Outcome {
    p.write_data(USER_GS_AREA, USER_GS_MAGIC);
    let mut regs = regs_at(&raw const u_gs);
    // The process asks for its GS base to be the GS area of its data page.
    regs.rdi = DATA_VA + USER_GS_AREA;
    let mut kernel_saw = alloc::vec::Vec::new();
    let exit = user::run(
        &mut regs,
        &mut |r| {
            kernel_saw.push(kernel_gs_word());
            match r.syscall_nr() {
                SYS_SET_GS => {
                    let ok = user::set_user_gs_base(r.rdi).is_ok();
                    r.set_return(u64::from(!ok));
                    Action::Resume
                }
                _ => Action::Exit,
            }
        },
        &mut unexpected,
    );
    kernel_saw.push(kernel_gs_word());
    ensure(exit == Exit::Syscall && regs.syscall_nr() == SYS_EXIT, || format!("ended with {exit:?}"))?;
    ensure(regs.rdi == USER_GS_MAGIC, || format!("process read {:#x} at %gs:0, want {USER_GS_MAGIC:#x}", regs.rdi))?;
    ensure(kernel_saw.iter().all(|&v| v == KERNEL_GS_MAGIC), || {
        format!("kernel read {kernel_saw:x?} at %gs:0, want {KERNEL_GS_MAGIC:#x} each time")
    })
}

/// Set by the timer handler: it ran, and whether a process was interrupted.
static TIMER_RAN: AtomicBool = AtomicBool::new(false);
static TIMER_IN_USER: AtomicBool = AtomicBool::new(false);
/// Kernel address of the process's event flag.
static FLAG_KVA: AtomicU64 = AtomicU64::new(0);

fn on_timer(_port: u32) {
    TIMER_IN_USER.store(user::in_user_mode(), Ordering::SeqCst);
    TIMER_RAN.store(true, Ordering::SeqCst);
    let flag = FLAG_KVA.load(Ordering::SeqCst);
    if flag != 0 {
        // SAFETY: the process's event flag, in its data page, mapped writable for us.
        unsafe { core::ptr::write_volatile(flag as *mut u64, 1) };
    }
}

fn check_event(p: &Process) -> Outcome {
    let port = events::bind_virq(VIRQ_TIMER, 0).map_err(|e| format!("bind_virq: {e:?}"))?;
    events::set_handler(port, on_timer).map_err(|e| format!("set_handler: {e:?}"))?;
    events::unmask(port).map_err(|e| format!("unmask: {e:?}"))?;
    p.write_data(EVENT_FLAG, 0);
    FLAG_KVA.store(p.data_kva + EVENT_FLAG, Ordering::SeqCst);
    let mut regs = regs_at(&raw const u_event);
    let magic = |i: u64| 0x5eed_0000_0000_0000 | (i * 0x1111_1111);
    (regs.rbx, regs.rbp, regs.rsi, regs.r8, regs.r9, regs.r10) = (magic(1), magic(2), magic(3), magic(4), magic(5), magic(6));
    (regs.r11, regs.r12, regs.r13, regs.r14, regs.r15) = (magic(7), magic(8), magic(9), magic(10), magic(11));
    regs.rcx = DATA_VA + EVENT_FLAG;
    // Give up after some 10^10 TSC ticks (seconds) if the event never comes.
    regs.rdi = time::rdtsc() + 10_000_000_000;
    let before = regs;
    // Events stay masked from arming the timer to the `iret` into the process (which
    // unmasks them from the frame's IF): should the timer fire before, the upcall is
    // pending and delivered as the process starts, still interrupting user mode.
    events::disable_upcalls();
    let armed = time::set_timer_op(time::now_ns() + 5_000_000);
    let exit = armed.map(|()| user::run(&mut regs, &mut |_| Action::Exit, &mut unexpected));
    events::enable_upcalls();
    let exit = exit.map_err(|e| format!("set_timer_op: {e:?}"))?;
    FLAG_KVA.store(0, Ordering::SeqCst);
    let _ = events::close(port);
    ensure(exit == Exit::Syscall && regs.syscall_nr() == SYS_REPORT, || format!("ended with {exit:?} rax {:#x}", regs.rax))?;
    ensure(TIMER_RAN.load(Ordering::SeqCst), || "the timer handler never ran".into())?;
    ensure(TIMER_IN_USER.load(Ordering::SeqCst), || "the timer event arrived while the kernel ran, not the process".into())?;
    ensure(regs.rdi == 1, || "the process timed out waiting for the flag".into())?;
    let pairs = [
        ("rbx", regs.rbx, before.rbx),
        ("rbp", regs.rbp, before.rbp),
        ("rsi", regs.rsi, before.rsi),
        ("r8", regs.r8, before.r8),
        ("r9", regs.r9, before.r9),
        ("r10", regs.r10, before.r10),
        ("r11 (in rdx)", regs.rdx, before.r11),
        ("r12", regs.r12, before.r12),
        ("r13", regs.r13, before.r13),
        ("r14", regs.r14, before.r14),
        ("r15", regs.r15, before.r15),
    ];
    for (name, got, want) in pairs {
        ensure(got == want, || format!("{name} is {got:#x} after the event, was {want:#x}"))?;
    }
    Ok(())
}

/// Iterations of the long run: well over one 10 ms time slice under QEMU's TCG.
const LONG_ITERATIONS: u64 = 5_000_000;

/// A process that runs for many time slices: timer interrupts (and, with other domains
/// running, switches to them) arrive in user mode and it must resume each time on its own
/// page table with its registers.
fn check_long_run(p: &Process) -> Outcome {
    p.write_data(LONG_COUNTER, 0);
    let mut regs = regs_at(&raw const u_long);
    (regs.rdi, regs.rsi) = (LONG_ITERATIONS, DATA_VA + LONG_COUNTER);
    let magic = |i: u64| 0x1ced_0000_0000_0000 | (i * 0x0101_0101);
    (regs.rbx, regs.rbp, regs.rdx, regs.r8, regs.r9, regs.r10) = (magic(1), magic(2), magic(3), magic(4), magic(5), magic(6));
    (regs.r12, regs.r13, regs.r14, regs.r15) = (magic(8), magic(9), magic(10), magic(11));
    let before = regs;
    let start = time::now_ns();
    let count = run_to_exit(&mut regs)?;
    let ms = (time::now_ns() - start) / 1_000_000;
    println!("user-test: long run took {ms} ms");
    ensure(count == LONG_ITERATIONS, || format!("counter {count}, want {LONG_ITERATIONS}"))?;
    let pairs = [
        ("rbx", regs.rbx, before.rbx),
        ("rbp", regs.rbp, before.rbp),
        ("rdx", regs.rdx, before.rdx),
        ("r8", regs.r8, before.r8),
        ("r9", regs.r9, before.r9),
        ("r10", regs.r10, before.r10),
        ("r12", regs.r12, before.r12),
        ("r13", regs.r13, before.r13),
        ("r14", regs.r14, before.r14),
        ("r15", regs.r15, before.r15),
    ];
    for (name, got, want) in pairs {
        ensure(got == want, || format!("{name} is {got:#x} after the run, was {want:#x}"))?;
    }
    Ok(())
}

/// The forced-emulation CPUID is not privileged: Xen emulates it for user mode too.
fn check_forced_cpuid() -> Outcome {
    let mut regs = regs_at(&raw const u_cpuid);
    let ebx = run_to_exit(&mut regs)?;
    ensure(ebx == 0x566e_6558, || format!("leaf 0x40000000 ebx {ebx:#x}, want 0x566e6558 (\"XenV\")"))
}

fn check_no_callback() -> Outcome {
    user::register_syscall_callback(0, 0).map_err(|e| format!("unregistering: {e:?}"))?;
    let mut regs = regs_at(&raw const u_bare_syscall);
    let e = first_exception(&mut regs);
    user::register_syscall_callback(user::syscall_entry_address(), pv_guest::events::CALLBACKF_MASK_EVENTS)
        .map_err(|e| format!("registering again: {e:?}"))?;
    expect_exception(&e?, 6, None, user_va(&raw const u_bare_syscall), &regs)
}

fn setup(si: &'static StartInfo) -> Result<(GuestMm, Process), alloc::string::String> {
    events::init(si).map_err(|e| format!("events: {e:?}"))?;
    user::init().map_err(|e| format!("user mode: {e:?}"))?;
    user::set_kernel_gs_base((&raw const KERNEL_GS_AREA) as u64).map_err(|e| format!("kernel GS: {e:?}"))?;
    let max_mfn = hypercall::physinfo().map(|p| p.max_mfn).ok();
    let mut mm = GuestMm::init(si, max_mfn).map_err(|e| format!("mm: {e}"))?;
    let p = build(&mut mm)?;
    Ok((mm, p))
}

/// Kernel stack for the `bad-kernel-stack` run: canonical, but mapped in neither page table.
const UNMAPPED_KERNEL_STACK: u64 = 0x1000_0000;

fn main(si: &'static StartInfo) {
    let mut t = Tests::default();
    let bad_stack = pv_guest::start_info::cmdline(si).split_whitespace().any(|w| w == "bad-kernel-stack");
    let (_mm, p) = match setup(si) {
        Ok(x) => {
            t.report("user_space", Ok(()));
            x
        }
        Err(e) => {
            t.report("user_space", Err(e));
            t.done();
            return;
        }
    };
    if bad_stack {
        // The hypervisor cannot write the syscall's frame: it must crash the domain (here
        // the machine) with one line, never fault itself.
        println!("user-test: kernel stack {UNMAPPED_KERNEL_STACK:#x}, then a syscall from user mode");
        let r = user::stack_switch(UNMAPPED_KERNEL_STACK).map_err(|e| format!("{e:?}"));
        let mut regs = regs_at(&raw const u_read);
        regs.rdi = DATA_VA;
        let exit = r.map(|()| user::enter(&mut regs));
        t.report("bad_kernel_stack_survived", Err(format!("came back with {exit:?}")));
        t.done();
        return;
    }
    t.report("syscalls_1000", check_syscalls());
    t.report("user_data", check_user_data(&p));
    t.report("user_reads_kernel", check_user_reads_kernel());
    t.report("ud2_from_user", check_ud2());
    t.report("int80_dpl0_gp", check_int80(0));
    t.report("int80_dpl3", check_int80(3));
    t.report("cli_gp", check_privileged(&raw const u_cli));
    t.report("mov_cr3_gp", check_privileged(&raw const u_mov_cr3));
    t.report("gs_bases", check_gs(&p));
    t.report("event_in_user", check_event(&p));
    t.report("long_run", check_long_run(&p));
    t.report("forced_cpuid", check_forced_cpuid());
    t.report("hypercall_number_from_user", check_hypercall_number_from_user());
    t.report("syscall_no_callback", check_no_callback());
    t.report("kernel_gs_kept", {
        let v = kernel_gs_word();
        ensure(v == KERNEL_GS_MAGIC, || format!("kernel %gs:0 is {v:#x} at the end"))
    });
    t.done();
}

pv_guest::entry!(main);
