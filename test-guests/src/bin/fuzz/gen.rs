//! What the fuzzer does: one random action per [`Fuzzer::step`].

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;
use core::arch::asm;

use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::hypercall_abi::hypercall::{Hypercall, HYPERCALL_STUB_SIZE};
use pv_guest::hypercall_abi::layout::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START, MACH2PHYS_VIRT_START};
use pv_guest::hypercall_abi::mmu::{MulticallEntry, UVMF_INVLPG};
use pv_guest::hypercall_abi::types::Mfn;
use pv_guest::mm::xen::{update_va_mapping_raw, GuestMm};
use pv_guest::mm::{make_entry, DATA_RW_FLAGS};
use pv_guest::{events, println, StartInfo};

use crate::rng::Rng;
use crate::state::{self, RECOVER, SAVED_RSP};

/// The hypervisor's direct map of RAM.
const DIRECT_MAP: u64 = 0xffff_8300_0000_0000;
/// Bytes of the argument buffer. Pointers go into its first [`BUF_USED`] bytes; the rest
/// takes what the hypervisor writes past a structure (a list of frames as long as a
/// count asked for), so that it does not land on the fuzzer's own heap.
const BUF: usize = 320 * 1024;
/// The part of the buffer pointers go into.
const BUF_USED: usize = 64 * 1024;
/// Multicall entries in each array.
const ENTRIES: usize = 16;

/// Hypercall numbers Xen gives 64-bit PV guests, `iret` aside (it has its own action).
const NUMBERS: [u64; 37] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
    35, 36, 37, 38,
];

/// Sub-op counts (argument 0) of the calls that have them: (number, sub-ops).
const SUBOPS: [(u64, u64); 15] = [
    (6, 8),   // sched_op_compat
    (12, 30), // memory_op
    (17, 22), // xen_version
    (18, 3),  // console_io
    (20, 16), // grant_table_op
    (21, 3),  // vm_assist
    (24, 17), // vcpu_op
    (25, 5),  // set_segment_base
    (28, 3),  // nmi_op
    (29, 9),  // sched_op
    (30, 3),  // callback_op
    (32, 16), // event_channel_op
    (33, 32), // physdev_op
    (35, 8),  // sysctl (a pointer, but a small number is a good attack too)
    (34, 8),  // hvm_op
];

/// Numbers at the edges of every field width.
const BOUNDARY: [u64; 40] = [
    0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 0x7f, 0x80, 0xff, 0x100, 0x1ff, 0x200, 0x3ff, 0x400, 0xfff, 0x1000,
    0x7fff, 0x8000, 0xffff, 0x10000, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1 << 32, (1 << 47) - 1, 1 << 47, 1 << 63,
    u64::MAX, u64::MAX - 1, 0x7ff0, 0x7ff1, 0x7ff2, 999,
];

/// What a console write may print.
const PRINTABLE: &[u8; 32] = b"fuzz: console_io write pattern.\n";

/// rflags bits a hostile entry or `iret` sets: DF, AC, TF, NT, IOPL, RF, VM, IF.
const FLAG_BITS: [u64; 8] = [1 << 10, 1 << 18, 1 << 8, 1 << 14, 3 << 12, 1 << 16, 1 << 17, 1 << 9];
/// Data selectors loaded before a hypercall: null ones, Xen's flat ones, empty and odd slots.
const SELECTORS: [u16; 10] = [0, 3, 0xe02b, 0xe033, 0xe023, 0xe02a, 0x10, 0x0b, 0xfff8, 0xffff];
/// Code selectors of an `iret` back to kernel mode (RPL below 3), empty and odd slots
/// among them. (Not the 32-bit kernel one: landing in compatibility mode at a 64-bit
/// address faults with a truncated stack, which ends the life, in Xen as here.)
const IRET_CS: [u16; 5] = [0xe030, 0xe031, 0xe032, 0x0008, 0xfff8];
/// Stack selectors of an `iret`.
const IRET_SS: [u16; 7] = [0xe02b, 0, 0x0b, 0x10, 0xe028, 0xe02a, 0xffff];

/// The fuzzer's state for one life.
pub struct Fuzzer {
    si: &'static StartInfo,
    rng: Rng,
    buf: Vec<u64>,
    entries: Vec<MulticallEntry>,
    nested: Vec<MulticallEntry>,
    victim: u64,
    victim_pte: u64,
    region_end: u64,
    ports: [u32; 2],
    domid: u16,
    /// Running as dom0: the privileged operations are fuzzed too.
    privileged: bool,
    /// Print every action before it runs (`verbose=1`: for replaying a life).
    pub verbose: bool,
    /// Hypercalls made (multicall entries count one each).
    pub hypercalls: u64,
    /// Of those, refused (a negative result).
    pub refused: u64,
}

impl Fuzzer {
    /// Sets up the buffers, the victim page and the handlers.
    pub fn new(si: &'static StartInfo, domid: u16, rng: Rng) -> Result<Fuzzer, &'static str> {
        let mut mm = GuestMm::init(si, None).map_err(|_| "no memory layer")?;
        let (frame, victim) = mm.alloc_mapped().ok_or("no padding page")?;
        let region_end = mm.layout.region_end();
        state::install().map_err(|_| "cannot install the handlers")?;
        Ok(Fuzzer {
            si,
            rng,
            buf: vec![0; BUF / 8],
            entries: vec![MulticallEntry::default(); ENTRIES],
            nested: vec![MulticallEntry::default(); ENTRIES],
            victim,
            victim_pte: make_entry(Mfn(frame.mfn.0), DATA_RW_FLAGS),
            region_end,
            ports: [si.store_evtchn, si.console.domu_evtchn()],
            domid,
            privileged: si.is_privileged(),
            verbose: false,
            hypercalls: 0,
            refused: 0,
        })
    }

    /// One random action.
    pub fn step(&mut self, reached: &mut BTreeSet<(u64, u64)>) {
        let upcalls = !events::upcalls_masked();
        let action = self.rng.below(100);
        if self.verbose {
            println!("fuzz: action {action}");
        }
        match action {
            0..=69 => {
                let (nr, a) = self.call();
                if self.verbose {
                    println!("fuzz: call {nr} {a:x?}");
                }
                let r = raw(nr, a);
                self.count(nr, a, r, reached);
                self.after(nr);
            }
            70..=79 => self.multicall(reached),
            80..=87 => self.fault(),
            88..=95 => {
                let (nr, a) = self.call();
                if self.verbose {
                    println!("fuzz: hostile entry {nr} {a:x?}");
                }
                let r = self.hostile_entry(nr, a);
                self.count(nr, a, r, reached);
                self.after(nr);
            }
            _ => self.iret(),
        }
        if upcalls {
            events::enable_upcalls();
        }
    }

    fn count(&mut self, nr: u64, a: [u64; 5], r: i64, reached: &mut BTreeSet<(u64, u64)>) {
        self.hypercalls += 1;
        if r < 0 {
            self.refused += 1;
        }
        if r != Errno::ENOSYS.to_ret() {
            let sub = if SUBOPS.iter().any(|&(n, _)| n == nr) { a[0].min(64) } else { 0 };
            reached.insert((nr, sub));
        }
    }

    /// A number from the edges, a random one or a pointer.
    fn value(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=3 => self.pointer(),
            4..=7 => self.rng.pick(&BOUNDARY),
            8 => u64::from(self.domid),
            _ => self.rng.next(),
        }
    }

    /// An address: mostly into the argument buffer (filled with random words and edge
    /// numbers there), else one the guest may not hand over.
    fn pointer(&mut self) -> u64 {
        match self.rng.below(14) {
            0..=7 => {
                let words = BUF_USED / 8;
                let at = self.rng.below(words as u64) as usize;
                for w in at..(at + 64).min(self.buf.len()) {
                    self.buf[w] = if self.rng.chance(30) { self.rng.pick(&BOUNDARY) } else { self.rng.next() };
                }
                let misalign = if self.rng.chance(10) { self.rng.below(8) } else { 0 };
                self.buf.as_ptr() as u64 + at as u64 * 8 + misalign
            }
            8 => self.region_end - 1 - self.rng.below(64),
            9 => DIRECT_MAP + (self.rng.below(1 << 28) & !7),
            10 => MACH2PHYS_VIRT_START + (self.rng.below(1 << 30) & !7),
            11 => HYPERVISOR_VIRT_START + self.rng.below(HYPERVISOR_VIRT_END - HYPERVISOR_VIRT_START),
            12 => self.rng.pick(&[0x0000_8000_0000_0000, 0xffff_7fff_ffff_f000, 1 << 63, u64::MAX - 7]),
            _ => self.rng.below(0x10_0000),
        }
    }

    /// A hypercall with its arguments, turned harmless where it would end this life.
    fn call(&mut self) -> (u64, [u64; 5]) {
        let nr = match self.rng.below(100) {
            0..=91 => self.rng.pick(&NUMBERS),
            92..=96 => 39 + self.rng.below(25),
            _ => self.rng.pick(&[64, 100, 0xffff, 1 << 32, u64::MAX]),
        };
        let mut a = [0u64; 5];
        for v in a.iter_mut() {
            *v = self.value();
        }
        if let Some(&(_, n)) = SUBOPS.iter().find(|&&(s, _)| s == nr) {
            if !self.rng.chance(5) {
                a[0] = self.rng.below(n + 3);
            }
        }
        self.defuse(nr, &mut a);
        (nr, a)
    }

    /// The buffer word at guest address `p`, if `p` is in the buffer.
    fn word_at(&mut self, p: u64) -> Option<&mut u32> {
        let base = self.buf.as_ptr() as u64;
        let off = p.checked_sub(base).filter(|&o| o + 4 <= BUF as u64 && o % 4 == 0)? as usize;
        let bytes: &mut [u8] = bytemuck_words(&mut self.buf);
        let slice = &mut bytes[off..off + 4];
        // SAFETY: 4 bytes inside the buffer, 4-aligned (checked above; the buffer is
        // 8-aligned).
        Some(unsafe { &mut *slice.as_mut_ptr().cast::<u32>() })
    }

    /// Makes `nr(a)` one that cannot end this life by design.
    fn defuse(&mut self, nr: u64, a: &mut [u64; 5]) {
        match nr {
            // sched_op: block, shutdown, poll, remote shutdown, watchdog: yield instead.
            6 | 29 if matches!(a[0], 1..=4 | 6) => a[0] = 0,
            // vcpu_op down (of vCPU 0, our only one): is_up instead. Areas the hypervisor
            // keeps writing (vcpu_info, runstate, time) named by a guest-physical address
            // may land on our code: mostly not.
            24 if a[0] == 2 => a[0] = 3,
            24 if matches!(a[0], 10 | 13 | 14 | 15) && !self.rng.chance(10) => a[0] = 3,
            // Memory given back or moved by frame number may be our own: now and then only.
            12 if matches!(a[0], 1 | 7 | 11 | 15 | 23) && !self.rng.chance(20) => a[0] = 3,
            // console_io write: a bounded piece of a printable line.
            18 if a[0] == 0 => {
                a[1] = if a[1].is_multiple_of(4) { 0 } else { PRINTABLE.len() as u64 };
                a[2] = PRINTABLE.as_ptr() as u64;
            }
            // event channel reset of ourselves, or close/rebind of the console and store
            // channels: status instead / another port.
            32 => {
                if a[0] == 10 {
                    a[0] = 5;
                }
                let ports = self.ports;
                if let Some(w) = self.word_at(a[1]) {
                    if ports.contains(w) {
                        *w = 4095;
                    }
                }
            }
            16 => {
                let ports = self.ports;
                let cmd = self.rng.pick(&[0u32, 1, 2, 4, 5, 6, 7, 9]);
                if let Some(w) = self.word_at(a[0]) {
                    *w = cmd;
                }
                if let Some(w) = self.word_at(a[0].wrapping_add(4)) {
                    if ports.contains(w) {
                        *w = 4095;
                    }
                }
            }
            // update_va_mapping: our own memory only through the victim page.
            14 | 22 => {
                // Half the time the victim; otherwise only an address inside our region is
                // redirected to it (the chance is drawn first, as before, so seeds replay).
                let draw = self.rng.chance(50);
                if draw || (a[0] < self.region_end && a[0] >= pv_guest::start_info::virt_base()) {
                    a[0] = self.victim;
                }
            }
            // iret has its own action.
            23 => a[0] = 0,
            // A multicall of random words reads its entries from wherever `a[0]` points,
            // our own memory past the buffer included: a few entries only (the multicall
            // action builds defused ones).
            13 => a[1] %= 4,
            // As dom0: domctl and sysctl with the right interface version (else all of
            // them stop at EACCES), commands and domains from the interesting ones; not the
            // in-kernel benchmarks (SYSCTL_BENCH runs what dom0 asks, by design).
            36 if self.privileged => {
                let cmd = self.rng.pick(&[1u32, 2, 3, 4, 5, 11, 12, 12, 12]);
                let cmd = if self.rng.chance(10) { self.rng.below(16) as u32 } else { cmd };
                let dom = self.rng.pick(&[0u32, 1, 2, 3, 4, 5, 0x7ff0, 999]);
                self.set_words(a[0], &[cmd, pv_guest::hypercall_abi::domctl::DOMCTL_INTERFACE_VERSION, dom]);
            }
            35 if self.privileged => {
                let cmd = self.rng.pick(&[3u32, 4, 0x101, 0, 1, 2, 5, 6, 7]);
                self.set_words(a[0], &[cmd, pv_guest::hypercall_abi::sysctl::SYSCTL_INTERFACE_VERSION]);
            }
            _ => {}
        }
    }

    /// Writes `words` at guest address `p` if it is in the buffer, else points `p`'s
    /// call at nothing of ours (the words cannot be placed).
    fn set_words(&mut self, p: u64, words: &[u32]) {
        for (i, &w) in words.iter().enumerate() {
            if let Some(slot) = self.word_at(p.wrapping_add(4 * i as u64)) {
                *slot = w;
            }
        }
    }

    /// Puts back what a call may have replaced.
    fn after(&mut self, nr: u64) {
        match nr {
            0 | 4 | 28 | 30 => {
                let _ = state::install();
            }
            8 => {
                let _ = raw(Hypercall::SetDebugreg as u64, [7, 0, 0, 0, 0]);
            }
            14 | 22 => {
                let _ = update_va_mapping_raw(self.victim, self.victim_pte, UVMF_INVLPG);
            }
            _ => {}
        }
    }

    fn fill_entries(&mut self, nested: bool) -> usize {
        let n = 1 + self.rng.below(ENTRIES as u64) as usize;
        for i in 0..n {
            let (op, a) = self.call();
            let e = MulticallEntry { op, result: 0, args: [a[0], a[1], a[2], a[3], a[4], self.value()] };
            if nested {
                self.nested[i] = e;
            } else {
                self.entries[i] = e;
            }
        }
        n
    }

    /// A multicall of generated calls, sometimes with a nested multicall or a count past
    /// the array.
    fn multicall(&mut self, reached: &mut BTreeSet<(u64, u64)>) {
        let inner = self.fill_entries(true);
        let n = self.fill_entries(false);
        if self.rng.chance(30) {
            let i = self.rng.below(n as u64) as usize;
            self.entries[i] = MulticallEntry {
                op: Hypercall::Multicall as u64,
                result: 0,
                args: [self.nested.as_ptr() as u64, inner as u64, 0, 0, 0, 0],
            };
        }
        let count = if self.rng.chance(3) { n as u64 + self.rng.below(4) } else { n as u64 };
        let count = count.min(ENTRIES as u64);
        let r = raw(Hypercall::Multicall as u64, [self.entries.as_ptr() as u64, count, 0, 0, 0]);
        self.count(13, [0; 5], r, reached);
        for i in 0..n {
            let e = self.entries[i];
            self.count(e.op, [e.args[0], 0, 0, 0, 0], e.result as i64, reached);
            self.after(e.op);
        }
        for i in 0..inner {
            self.after(self.nested[i].op);
        }
    }

    /// A faulting or privileged instruction, recovered from.
    fn fault(&mut self) {
        let which = self.rng.below(22);
        if self.verbose {
            println!("fuzz: fault {which}");
        }
        let addr = match which {
            17 => DIRECT_MAP,
            18 => MACH2PHYS_VIRT_START,
            _ => 0x0000_8000_0000_0000,
        };
        macro_rules! recover {
            ($($insn:literal),+ ; $($rest:tt)*) => {
                // SAFETY: the instruction either runs (it changes nothing of ours: only
                // registers declared clobbered) or faults; the handler then resumes at
                // label 2 with the registers as they were at the fault.
                unsafe {
                    asm!(
                        "lea 2f(%rip), %rax",
                        "mov %rax, {recover}(%rip)",
                        $($insn,)+
                        "2:",
                        "movq $0, {recover}(%rip)",
                        recover = sym RECOVER,
                        out("rax") _, out("rcx") _, out("rdx") _,
                        $($rest)*
                        options(att_syntax)
                    )
                }
            };
        }
        match which {
            0 => recover!("ud2";),
            1 => recover!("int3";),
            2 => recover!("cli";),
            3 => recover!("sti";),
            4 => recover!("hlt";),
            5 => recover!("inb %dx, %al";),
            6 => recover!("outb %al, %dx";),
            7 => recover!("mov $0x10, %ecx", "rdmsr";),
            8 => recover!("mov $0xc0000080, %ecx", "xor %eax, %eax", "xor %edx, %edx", "wrmsr";),
            9 => recover!("mov %cr0, %rax";),
            10 => recover!("mov %cr4, %rax";),
            11 => recover!("mov %dr7, %rax";),
            12 => recover!("clts";),
            13 => recover!("wbinvd";),
            14 => recover!("int $0x80";),
            15 => recover!("int $0x82";),
            16 => recover!("xor %ecx, %ecx", "xor %eax, %eax", "div %ecx";),
            17 | 18 => recover!("mov ({a}), %rax"; a = in(reg) addr,),
            19 => recover!("movq $1, ({a})"; a = in(reg) addr,),
            20 => recover!("swapgs";),
            _ => recover!("rdpmc";),
        }
    }

    /// A hypercall entered with hostile flags, data selectors and (sometimes) a
    /// non-canonical stack pointer; events are masked while the stack is not ours.
    fn hostile_entry(&mut self, nr: u64, a: [u64; 5]) -> i64 {
        let mut flags = 0x2;
        for _ in 0..1 + self.rng.below(3) {
            flags |= self.rng.pick(&FLAG_BITS);
        }
        let sel = u64::from(self.rng.pick(&SELECTORS));
        let bad_rsp = if self.rng.chance(20) { self.rng.pick(&[0x0000_8000_0000_0000u64, 0xffff_7fff_ffff_fff8, 8, DIRECT_MAP]) } else { 0 };
        if bad_rsp != 0 {
            // A single-step trap on a stack that is not ours would end this life.
            flags &= !(1 << 8);
            events::disable_upcalls();
        }
        let ret: i64;
        // The block saves the stack pointer and flags, loads hostile ones, makes the
        // hypercall with a raw `syscall` (no stack use), and restores them; a fault on the
        // way (a selector that cannot be loaded, a single step) resumes at label 2.
        // SAFETY: label 2 restores stack, flags and selectors from the saved copies however
        // it is reached; every register the block changes is declared.
        unsafe {
            asm!(
                "mov %rsp, {saved}(%rip)",
                "lea 2f(%rip), %r12",
                "mov %r12, {recover}(%rip)",
                "movq $-38, {result}(%rip)",
                "mov %ds, %r14d",
                "mov %es, %r15d",
                "pushfq",
                "pop %r13",
                "push {flags}",
                "popfq",
                "mov {sel:e}, %ds",
                "mov {sel:e}, %es",
                "test {bad}, {bad}",
                "jz 1f",
                "mov {bad}, %rsp",
                "1:",
                "syscall",
                "mov %rax, {result}(%rip)",
                "2:",
                "mov {saved}(%rip), %rsp",
                "push %r13",
                "popfq",
                "mov %r14d, %ds",
                "mov %r15d, %es",
                "movq $0, {recover}(%rip)",
                "mov {result}(%rip), %rax",
                saved = sym SAVED_RSP,
                recover = sym RECOVER,
                result = sym state::RESULT,
                flags = in(reg) flags,
                sel = in(reg) sel,
                bad = in(reg) bad_rsp,
                inout("rax") nr => ret,
                inout("rdi") a[0] => _,
                inout("rsi") a[1] => _,
                inout("rdx") a[2] => _,
                inout("r10") a[3] => _,
                inout("r8") a[4] => _,
                out("rcx") _, out("r11") _, out("r12") _, out("r13") _, out("r14") _, out("r15") _,
                options(att_syntax)
            )
        }
        ret
    }

    /// `HYPERVISOR_iret` to the next instruction with random flags and selectors: either
    /// it lands (flags cleaned up as Xen does), or the return faults and the failsafe
    /// callback takes us back, or a fault after landing does.
    fn iret(&mut self) {
        let mut flags = 0x202;
        for _ in 0..self.rng.below(4) {
            flags |= self.rng.pick(&FLAG_BITS);
        }
        let cs = u64::from(self.rng.pick(&IRET_CS));
        let ss = u64::from(self.rng.pick(&IRET_SS));
        if self.verbose {
            println!("fuzz: iret cs={cs:#x} ss={ss:#x} rflags={flags:#x}");
        }
        // Builds Xen's iret frame (rip = label 2 on this stack) and enters the hypercall
        // page's iret stub; we come back to label 2 through the iret itself, the failsafe
        // callback or an exception handler.
        // SAFETY: label 2 restores the stack pointer from the saved copy and the flags from
        // r13 however it is reached; every register the block changes is declared.
        unsafe {
            asm!(
                "mov %rsp, {saved}(%rip)",
                "lea 2f(%rip), %r12",
                "mov %r12, {recover}(%rip)",
                "pushfq",
                "pop %r13",
                "mov %rsp, %rax",
                "push {ss}",
                "push %rax",
                "push {flags}",
                "push {cs}",
                "push %r12",
                "push $0",
                "jmp hypercall_page + {off}",
                "2:",
                "mov {saved}(%rip), %rsp",
                "push %r13",
                "popfq",
                "movq $0, {recover}(%rip)",
                saved = sym SAVED_RSP,
                recover = sym RECOVER,
                ss = in(reg) ss,
                flags = in(reg) flags,
                cs = in(reg) cs,
                off = const Hypercall::Iret as usize * HYPERCALL_STUB_SIZE,
                out("rax") _, out("rcx") _, out("r11") _, out("r12") _, out("r13") _,
                options(att_syntax)
            )
        }
    }

    /// The end of a life: now and then, garbage into our own console and store rings
    /// (their back-ends in dom0 must refuse it and serve the others).
    pub fn finish(&mut self) {
        if self.privileged {
            self.audit();
            return;
        }
        if !self.rng.chance(33) {
            return;
        }
        println!("fuzz: writing garbage into the console and store rings");
        let garbage = self.rng.next();
        if let Some(ring) = pv_guest::console_ring::ring_address() {
            for i in 0..64 {
                // SAFETY: the console ring page is ours, mapped read-write; the back-end
                // reads it as hostile input anyway.
                unsafe { (ring as *mut u64).add(self.rng.below(512) as usize).write_volatile(garbage.rotate_left(i)) };
            }
            pv_guest::console_ring::set_out_prod(garbage as u32);
        }
        if let Ok(page) = pv_guest::xenbus::store_page(self.si).map(|p| p.address()) {
            for i in 0..64 {
                // SAFETY: as above, for the store ring page.
                unsafe { (page as *mut u64).add(self.rng.below(512) as usize).write_volatile(garbage.rotate_right(i)) };
            }
        }
        for p in self.ports {
            let _ = events::send(p);
        }
    }
}

impl Fuzzer {
    /// As dom0: the microkernel's audit of its accounting after the life, printed as
    /// dom0's `audit` command prints it.
    fn audit(&mut self) {
        use pv_guest::hypercall_abi::sysctl::{AuditResult, Sysctl, SYSCTL_AUDIT};
        let mut op = Sysctl::new(SYSCTL_AUDIT);
        match pv_guest::hypercall::sysctl(&mut op) {
            Ok(()) => {
                let r: AuditResult = op.read_payload();
                let what = core::str::from_utf8(r.what()).unwrap_or("?");
                match r.ok {
                    1 => println!("audit: ok: {} domains, {} frames owned, {} page tables", r.domains, r.frames_owned, r.tables),
                    _ => println!("audit: FAILED: {what}"),
                }
            }
            Err(e) => println!("audit: FAILED: sysctl {e:?}"),
        }
    }
}

/// The buffer's words as bytes.
fn bytemuck_words(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: u64s reinterpreted as their bytes: same memory, every bit pattern valid, the
    // length in bytes is eight times the length in words.
    unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) }
}

/// A raw hypercall.
pub fn raw(nr: u64, a: [u64; 5]) -> i64 {
    // SAFETY: the arguments are either buffers of ours (the hypervisor may read and write
    // them: they hold nothing we rely on) or addresses that are not ours, which the
    // hypervisor must refuse; calls that would change what we rely on were defused.
    unsafe { pv_guest::hypercall::hypercall(nr, a[0], a[1], a[2], a[3], a[4]) }
}
