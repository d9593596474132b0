//! traps-test: checks exception delivery to the guest kernel (run as dom0).
//!
//! Installs one handler for vectors 0 (#DE), 3 (#BP), 6 (#UD), 13 (#GP) and 14 (#PF), then
//! raises each: a division by zero, `int3`, `ud2`, `cli`, a read of the unmapped address
//! 0x1000, and `int 0x80` (no entry, DPL 0: arrives as #GP with error `(0x80 << 3) | 2`).
//! The handler records what it saw and advances the frame's rip past the instruction (by
//! the instruction's known length; 0 for `int3`, a trap). Each check compares the vector,
//! the error code, the frame's rip (and cr2 for #PF), and that every register the test set
//! before the instruction still holds its value after it. Finally the handler must have run
//! exactly once per raised exception.
//!
//! Prints `TEST <name> PASS|FAIL <why>`, then `TESTS DONE <p> passed, <f> failed`, and
//! powers off.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use pv_guest::hypercall_abi::layout::{FLAT_KERNEL_CS64, FLAT_KERNEL_SS64};
use pv_guest::testing::{ensure, Outcome, Tests};
use pv_guest::traps::{self, Trap};
use pv_guest::{println, StartInfo};

/// Handler invocations.
static COUNT: AtomicU64 = AtomicU64::new(0);
/// What the last invocation saw.
static VECTOR: AtomicU64 = AtomicU64::new(u64::MAX);
static ERROR: AtomicU64 = AtomicU64::new(u64::MAX);
static RIP: AtomicU64 = AtomicU64::new(0);
static CR2: AtomicU64 = AtomicU64::new(0);
static CS: AtomicU64 = AtomicU64::new(0);
static SS: AtomicU64 = AtomicU64::new(0);
/// Bytes the handler adds to the frame's rip.
static SKIP: AtomicU64 = AtomicU64::new(0);

/// An unmapped address (the guest is linked in the top 2 GiB).
const UNMAPPED: u64 = 0x1000;
/// Page-fault error code bits: present, user mode.
const PF_PRESENT: u64 = 1;
const PF_USER: u64 = 4;

fn handler(trap: &mut Trap<'_>) {
    if trap.vector == 14 {
        CR2.store(traps::read_cr2(), Ordering::Relaxed);
    }
    COUNT.fetch_add(1, Ordering::Relaxed);
    VECTOR.store(u64::from(trap.vector), Ordering::Relaxed);
    ERROR.store(trap.error_code.unwrap_or(u64::MAX), Ordering::Relaxed);
    RIP.store(trap.frame.rip, Ordering::Relaxed);
    CS.store(trap.frame.cs, Ordering::Relaxed);
    SS.store(trap.frame.ss, Ordering::Relaxed);
    trap.frame.rip += SKIP.load(Ordering::Relaxed);
}

/// Register values set before the instruction and read after it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Regs([u64; 14]);

const NAMES: [&str; 14] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
];

impl Regs {
    /// Distinct recognisable values, with rax, rcx, rdx, rsi overridable by the caller.
    fn magic() -> Regs {
        let mut r = [0; 14];
        for (i, v) in r.iter_mut().enumerate() {
            *v = 0x5eed_0000_0000_0000 | ((i as u64 + 1) * 0x1111_1111);
        }
        Regs(r)
    }
}

/// Runs `$insn` with every general-purpose register but rsp and rbp set from `$regs`
/// (rbx through a buffer, as Rust reserves it) and returns the registers after it and the
/// instruction's address.
macro_rules! provoke {
    ($insn:literal, $regs:expr) => {{
        let r: Regs = $regs;
        // [0] rax in, [1] rbx in, [2] site out, [3] rbx out, [4] rax out
        let mut buf = [r.0[0], r.0[1], 0u64, 0, 0];
        let mut out = r.0;
        // SAFETY: the instruction raises an exception whose handler resumes after it; it
        // changes no memory. rbx is saved and restored around it on the stack, which the
        // block leaves as it found it.
        unsafe {
            asm!(
                "push rbx",
                "push rax",
                "lea rbx, [rip + 2f]",
                "mov [rax + 16], rbx",
                "mov rbx, [rax + 8]",
                "mov rax, [rax]",
                "2:",
                $insn,
                "xchg rax, [rsp]",
                "mov [rax + 24], rbx",
                "pop rbx",
                "mov [rax + 32], rbx",
                "pop rbx",
                inout("rax") buf.as_mut_ptr() => _,
                inout("rcx") out[2],
                inout("rdx") out[3],
                inout("rsi") out[4],
                inout("rdi") out[5],
                inout("r8") out[6],
                inout("r9") out[7],
                inout("r10") out[8],
                inout("r11") out[9],
                inout("r12") out[10],
                inout("r13") out[11],
                inout("r14") out[12],
                inout("r15") out[13],
            );
        }
        out[0] = buf[4];
        out[1] = buf[3];
        (Regs(out), buf[2])
    }};
}

/// What one check expects.
struct Expect {
    vector: u64,
    error: Option<u64>,
    /// The frame's rip relative to the instruction.
    rip_offset: u64,
    /// Bytes to skip from the frame's rip.
    skip: u64,
}

/// Compares what the handler recorded and the registers after the instruction with what
/// `want` and `before` say. `count_before` is COUNT before the instruction.
fn verify(want: &Expect, count_before: u64, site: u64, before: Regs, after: Regs) -> Outcome {
    let count = COUNT.load(Ordering::Relaxed);
    ensure(count == count_before + 1, || {
        format!("handler ran {} times, want 1", count - count_before)
    })?;
    let vector = VECTOR.load(Ordering::Relaxed);
    ensure(vector == want.vector, || {
        format!("vector {vector}, want {}", want.vector)
    })?;
    let error = ERROR.load(Ordering::Relaxed);
    let want_error = want.error.unwrap_or(u64::MAX);
    ensure(error == want_error, || {
        format!("error code {error:#x}, want {want_error:#x} (MAX: none)")
    })?;
    let rip = RIP.load(Ordering::Relaxed);
    ensure(rip == site + want.rip_offset, || {
        format!(
            "frame rip {rip:#x}, want {:#x} (instruction at {site:#x})",
            site + want.rip_offset
        )
    })?;
    // A frame from kernel mode has the RPL of cs cleared (Xen: "indicate kernel context").
    let cs = CS.load(Ordering::Relaxed) & 0xffff;
    let ss = SS.load(Ordering::Relaxed) & 0xffff;
    let want_cs = u64::from(FLAT_KERNEL_CS64 & !3);
    let want_ss = u64::from(FLAT_KERNEL_SS64);
    ensure(cs == want_cs && ss == want_ss, || {
        format!("frame cs {cs:#x} ss {ss:#x}, want {want_cs:#x} {want_ss:#x}")
    })?;
    for ((name, b), a) in NAMES.iter().zip(before.0).zip(after.0) {
        ensure(b == a, || {
            format!("{name} is {a:#x} after the trap, was {b:#x}")
        })?;
    }
    Ok(())
}

fn arm(skip: u64) -> u64 {
    SKIP.store(skip, Ordering::Relaxed);
    VECTOR.store(u64::MAX, Ordering::Relaxed);
    ERROR.store(u64::MAX, Ordering::Relaxed);
    RIP.store(0, Ordering::Relaxed);
    CR2.store(0, Ordering::Relaxed);
    COUNT.load(Ordering::Relaxed)
}

fn check_de() -> Outcome {
    let want = Expect {
        vector: 0,
        error: None,
        rip_offset: 0,
        skip: 3,
    };
    let count = arm(want.skip);
    let mut before = Regs::magic();
    before.0[0] = 1; // rax: dividend low
    before.0[2] = 0; // rcx: divisor
    before.0[3] = 0; // rdx: dividend high
                     // div rcx: 48 f7 f1
    let (after, site) = provoke!("div rcx", before);
    verify(&want, count, site, before, after)
}

fn check_bp() -> Outcome {
    let want = Expect {
        vector: 3,
        error: None,
        rip_offset: 1,
        skip: 0,
    };
    let count = arm(want.skip);
    let before = Regs::magic();
    // int3: cc (a trap: the frame's rip is after it)
    let (after, site) = provoke!("int3", before);
    verify(&want, count, site, before, after)
}

fn check_ud() -> Outcome {
    let want = Expect {
        vector: 6,
        error: None,
        rip_offset: 0,
        skip: 2,
    };
    let count = arm(want.skip);
    let before = Regs::magic();
    // ud2: 0f 0b
    let (after, site) = provoke!("ud2", before);
    verify(&want, count, site, before, after)
}

fn check_gp_cli() -> Outcome {
    let want = Expect {
        vector: 13,
        error: Some(0),
        rip_offset: 0,
        skip: 1,
    };
    let count = arm(want.skip);
    let before = Regs::magic();
    // cli: fa
    let (after, site) = provoke!("cli", before);
    verify(&want, count, site, before, after)
}

fn check_pf() -> Outcome {
    let count = arm(3);
    let mut before = Regs::magic();
    before.0[4] = UNMAPPED; // rsi: the address read
                            // mov rdi, [rsi]: 48 8b 3e
    let (after, site) = provoke!("mov rdi, qword ptr [rsi]", before);
    let error = ERROR.load(Ordering::Relaxed);
    ensure(
        VECTOR.load(Ordering::Relaxed) == 14 && error != u64::MAX,
        || {
            format!(
                "vector {}, error {error:#x}, want 14 with an error code",
                VECTOR.load(Ordering::Relaxed) as i64
            )
        },
    )?;
    ensure(error & (PF_PRESENT | PF_USER) == 0, || {
        format!("error code {error:#x}: present or user bit set, want both clear")
    })?;
    let cr2 = CR2.load(Ordering::Relaxed);
    ensure(cr2 == UNMAPPED, || {
        format!("cr2 {cr2:#x}, want {UNMAPPED:#x}")
    })?;
    let want = Expect {
        vector: 14,
        error: Some(error),
        rip_offset: 0,
        skip: 3,
    };
    verify(&want, count, site, before, after)
}

fn check_int80() -> Outcome {
    let want = Expect {
        vector: 13,
        error: Some((0x80 << 3) | 2),
        rip_offset: 0,
        skip: 2,
    };
    let count = arm(want.skip);
    let before = Regs::magic();
    // int 0x80: cd 80
    let (after, site) = provoke!("int 0x80", before);
    verify(&want, count, site, before, after)
}

fn main(_si: &'static StartInfo) {
    let mut t = Tests::default();
    let installed = traps::install(&[
        (0, handler),
        (3, handler),
        (6, handler),
        (13, handler),
        (14, handler),
    ]);
    let ok = installed.is_ok();
    t.report(
        "set_trap_table",
        installed.map_err(|e| format!("set_trap_table failed: -{}", e.name())),
    );
    if ok {
        t.report("divide_error", check_de());
        t.report("int3", check_bp());
        t.report("ud2", check_ud());
        t.report("cli_gp", check_gp_cli());
        t.report("page_fault", check_pf());
        t.report("int80_gp", check_int80());
        let count = COUNT.load(Ordering::Relaxed);
        t.report(
            "handler_count",
            ensure(count == 6, || format!("handler ran {count} times, want 6")),
        );
    }
    println!(
        "NOTE traps-test: {} handler invocations",
        COUNT.load(Ordering::Relaxed)
    );
    t.done();
}

pv_guest::entry!(main);
