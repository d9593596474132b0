//! User processes of a guest kernel (guest target only): Xen's x86_64 PV user mode.
//!
//! A 64-bit PV kernel and its processes both run in hardware ring 3 with the same flat
//! selectors; the hypervisor keeps a per-vCPU *guest mode* and switches page table and GS
//! base with it. This module is the kernel's side of that contract:
//!
//! - [`UserSpace`] builds a process's address space: a separate L4 built with
//!   [`crate::mm::AddressSpace`] that maps only the process's pages (code copied into fresh
//!   frames, data, stack), then registered with `MMUEXT_NEW_USER_BASEPTR`
//!   ([`UserSpace::install`]). The frames come from the initial region's padding, so the
//!   kernel still reaches each of them through its own mapping ([`UserPage::kva`]).
//! - [`init`] registers what user mode needs: the kernel stack the hypervisor switches to
//!   on any entry from user mode (`stack_switch`), the syscall callback
//!   (`callback_op(CALLBACKTYPE_syscall)`, events masked on entry), and trap-table entries
//!   for the exceptions a process can raise.
//! - [`enter`] runs the process described by a [`UserRegs`] until it makes a `syscall` or
//!   takes an exception, and returns why ([`Exit`]) with the registers updated; [`run`]
//!   loops over it with a syscall handler and an exception handler that say whether to
//!   [`Action::Resume`] or [`Action::Exit`].
//!
//! How a round trip works. [`enter`] saves the kernel's callee-saved registers and stack
//! pointer, pushes an `iret` frame with `cs = FLAT_USER_CS64` (RPL 3: the hypervisor
//! switches to user mode; it refuses without a user page table), loads every register of
//! the process and jumps to the `iret` stub of the hypercall page. A `syscall` in the
//! process enters the syscall callback on the registered kernel stack with Xen's frame
//! (`rcx, r11, rip, cs, rflags, rsp, ss`, rip after the `syscall`); an exception enters
//! the trap stubs of [`crate::traps`], whose dispatcher sees the RPL-3 `cs` and hands the
//! frame here. Either way the process's registers are stored into its [`UserRegs`] and
//! execution jumps back to the kernel context [`enter`] saved, abandoning the kernel stack.
//! Event upcalls that arrive in user mode need nothing from this module: the hypervisor
//! enters the event callback on the kernel stack, and its `iret` resumes the process with
//! every register as it was.
//!
//! Processes run with events enabled (the hypervisor takes the event mask from the `iret`
//! frame's IF); [`enter`] puts the kernel's own mask back on return. One process runs at a
//! time, on vCPU 0.

use alloc::vec::Vec;
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use hypercall_abi::arch::{SEGBASE_GS_KERNEL, SEGBASE_GS_USER};
use hypercall_abi::callback::CALLBACKTYPE_SYSCALL;
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::{Hypercall, HYPERCALL_STUB_SIZE};
use hypercall_abi::layout::{FLAT_KERNEL_SS, FLAT_USER_CS64, FLAT_USER_SS64};
use hypercall_abi::mmu::MMUEXT_NEW_USER_BASEPTR;
use hypercall_abi::sched::ShutdownReason;

use crate::events::{self, CallbackRegister, CALLBACKF_MASK_EVENTS};
use crate::hypercall::{check, hypercall_via_page, sched_shutdown};
use crate::mm::xen::{GuestMm, XenMmu};
use crate::mm::{ext_op, run_ext, AddressSpace, Frame, MmError, PAGE_SIZE};
use crate::println;
use crate::traps::{self, ExceptionFrame};

/// A process's registers while it is not running. `cs` and `ss` are always the flat user
/// selectors.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // register names say what they are
pub struct UserRegs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
}

// Offsets the entry code uses.
const _: () = assert!(core::mem::offset_of!(UserRegs, rbx) == 8);
const _: () = assert!(core::mem::offset_of!(UserRegs, r15) == 112);
const _: () = assert!(core::mem::offset_of!(UserRegs, rip) == 120);
const _: () = assert!(core::mem::offset_of!(UserRegs, rsp) == 128);
const _: () = assert!(core::mem::offset_of!(UserRegs, rflags) == 136);

/// rflags a process starts with: IF (events enabled) and the always-one bit.
pub const USER_RFLAGS: u64 = 0x202;

impl UserRegs {
    /// A process that starts at `rip` with its stack at `rsp`, every other register zero.
    pub fn new(rip: u64, rsp: u64) -> UserRegs {
        UserRegs { rip, rsp, rflags: USER_RFLAGS, ..UserRegs::default() }
    }

    /// The syscall number (rax), by the Linux x86_64 convention this kit follows.
    pub fn syscall_nr(&self) -> u64 {
        self.rax
    }

    /// Syscall argument registers: rdi, rsi, rdx, r10, r8, r9.
    pub fn syscall_args(&self) -> [u64; 6] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9]
    }

    /// Sets the syscall's result (rax).
    pub fn set_return(&mut self, v: u64) {
        self.rax = v;
    }
}

/// Why [`enter`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The process executed `syscall`; its rip is after the instruction, and rcx and r11
    /// hold what the CPU put there (the return rip and rflags).
    Syscall,
    /// The process took an exception (or an `int $n` its trap entry allows).
    Exception(UserException),
}

/// An exception taken in user mode, as the hypervisor delivered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserException {
    /// The vector.
    pub vector: u8,
    /// The error code, for vectors that have one.
    pub error_code: Option<u64>,
    /// For a page fault, the faulting address (cr2).
    pub cr2: Option<u64>,
    /// The interrupted `cs` from the frame (RPL 3: user mode).
    pub cs: u16,
}

/// What a handler of [`run`] wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Resume the process with its (possibly changed) registers.
    Resume,
    /// Stop running it: [`run`] returns.
    Exit,
}

/// Pages of the stack the hypervisor switches to on entries from user mode.
const KERNEL_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct KernelStack([u8; KERNEL_STACK_SIZE]);

/// The kernel stack for entries from user mode (`stack_switch`).
static mut KERNEL_STACK: KernelStack = KernelStack([0; KERNEL_STACK_SIZE]);

/// The kernel's stack pointer inside [`enter`], for the way back (written by the entry code).
static mut KERNEL_RSP: u64 = 0;

/// The registers of the running process (null: none).
static CURRENT: AtomicPtr<UserRegs> = AtomicPtr::new(core::ptr::null_mut());
/// Set while a process runs (between the `iret` into it and the entry back).
static IN_USER: AtomicBool = AtomicBool::new(false);
/// The last exit: vector (`u64::MAX` for a syscall), error code (`u64::MAX`: none), cr2
/// (`u64::MAX`: none), cs.
static EXIT_VECTOR: AtomicU64 = AtomicU64::new(0);
static EXIT_ERROR: AtomicU64 = AtomicU64::new(0);
static EXIT_CR2: AtomicU64 = AtomicU64::new(0);
static EXIT_CS: AtomicU64 = AtomicU64::new(0);

// pv_guest_user_enter(regs): saves the kernel context, pushes the iret frame and the
// process's registers and enters it through the hypercall page's iret stub (which pushes
// rcx, r11 and rax, completing Xen's `struct iret_context`, flags 0: every register is
// restored). Returns, through pv_guest_user_back_to_kernel, when the process leaves.
//
// pv_guest_user_syscall_entry: the syscall callback. The hypervisor put the frame at rsp
// on the kernel stack; save the registers the way the trap common path does (the frame
// then sits 13 words above) and hand them to Rust, which never returns.
global_asm!(
    concat!(
    r#"
    .section .text.pv_guest_user, "ax", @progbits
    .balign 16
    .globl pv_guest_user_enter
pv_guest_user_enter:
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, {kernel_rsp}(%rip)
    pushq ${user_ss}
    pushq 128(%rdi)
    pushq 136(%rdi)
    pushq ${user_cs}
    pushq 120(%rdi)
    pushq $0
    movq %rdi, %rax
    movq 8(%rax), %rbx
    movq 16(%rax), %rcx
    movq 24(%rax), %rdx
    movq 32(%rax), %rsi
    movq 40(%rax), %rdi
    movq 48(%rax), %rbp
    movq 56(%rax), %r8
    movq 64(%rax), %r9
    movq 72(%rax), %r10
    movq 80(%rax), %r11
    movq 88(%rax), %r12
    movq 96(%rax), %r13
    movq 104(%rax), %r14
    movq 112(%rax), %r15
    movq 0(%rax), %rax
    jmp hypercall_page + {iret_offset}

    .balign 16
    .globl pv_guest_user_back_to_kernel
pv_guest_user_back_to_kernel:
    movq {kernel_rsp}(%rip), %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    ret

    .balign 16
    .globl pv_guest_user_syscall_entry
pv_guest_user_syscall_entry:
    pushq %rax
"#,
    push_regs_after_rax!(),
    r#"
    movq %rsp, %rdi
    andq $-16, %rsp
    cld
    call {syscall_from_user}
    ud2
"#
    ),
    user_ss = const FLAT_USER_SS64,
    user_cs = const FLAT_USER_CS64,
    iret_offset = const Hypercall::Iret as usize * HYPERCALL_STUB_SIZE,
    syscall_from_user = sym syscall_from_user,
    kernel_rsp = sym KERNEL_RSP,
    options(att_syntax),
);

unsafe extern "C" {
    fn pv_guest_user_enter(regs: *mut UserRegs);
    fn pv_guest_user_back_to_kernel() -> !;
    fn pv_guest_user_syscall_entry();
}

/// The registers the entry code saved, lowest address first: what the trap common path of
/// [`crate::traps`] and the syscall entry push below the hypervisor's frame.
#[repr(C)]
struct SavedRegs {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rbx: u64,
    rax: u64,
}

/// Words between the saved registers and the hypervisor's frame (its rcx slot).
pub(crate) const SAVED_WORDS: usize = 13;
const _: () = assert!(core::mem::size_of::<SavedRegs>() == SAVED_WORDS * 8);

/// Stores the process's registers and the exit, and goes back to the kernel in [`enter`].
fn leave(saved: &SavedRegs, rcx: u64, r11: u64, frame: &ExceptionFrame, exit: (u64, u64, u64)) -> ! {
    let regs = CURRENT.load(Ordering::Acquire);
    if regs.is_null() || !IN_USER.load(Ordering::Acquire) {
        println!("pv-guest: entry from user mode with no process running (rip {:#x})", frame.rip);
        sched_shutdown(ShutdownReason::Crash);
    }
    // SAFETY: CURRENT points at the `UserRegs` that `enter` was given, which lives in its
    // caller and stays borrowed by `enter` until we jump back into it below.
    let r = unsafe { &mut *regs };
    *r = UserRegs {
        rax: saved.rax,
        rbx: saved.rbx,
        rcx,
        rdx: saved.rdx,
        rsi: saved.rsi,
        rdi: saved.rdi,
        rbp: saved.rbp,
        r8: saved.r8,
        r9: saved.r9,
        r10: saved.r10,
        r11,
        r12: saved.r12,
        r13: saved.r13,
        r14: saved.r14,
        r15: saved.r15,
        rip: frame.rip,
        rsp: frame.rsp,
        rflags: frame.rflags,
    };
    EXIT_VECTOR.store(exit.0, Ordering::Relaxed);
    EXIT_ERROR.store(exit.1, Ordering::Relaxed);
    EXIT_CR2.store(exit.2, Ordering::Relaxed);
    EXIT_CS.store(frame.cs & 0xffff, Ordering::Relaxed);
    IN_USER.store(false, Ordering::Release);
    // SAFETY: `enter` saved its context in KERNEL_RSP before entering the
    // process (IN_USER was set, so it is still waiting); this stack is the kernel stack for
    // entries from user mode, which nothing else is using and which we abandon.
    unsafe { pv_guest_user_back_to_kernel() }
}

/// Called by the syscall entry with the registers it saved; the frame is above them.
extern "C" fn syscall_from_user(saved: *const SavedRegs) -> ! {
    // SAFETY: the entry pushed exactly a `SavedRegs` at `saved`, right below the
    // hypervisor's callback frame: rcx, r11, then the five words of `ExceptionFrame`.
    let (s, rcx, r11, frame) = unsafe {
        let f = saved.cast::<u64>().add(SAVED_WORDS);
        (&*saved, *f, *f.add(1), &*f.add(2).cast::<ExceptionFrame>())
    };
    leave(s, rcx, r11, frame, (u64::MAX, u64::MAX, u64::MAX))
}

/// Called by the trap dispatcher of [`crate::traps`] for an exception whose frame says user
/// mode (RPL-3 `cs`); `frame` is the frame's rcx slot, with the common path's saved
/// registers right below it.
pub(crate) fn exception_from_user(vector: u8, error_code: Option<u64>, frame: *mut u64) -> ! {
    let cr2 = if vector == 14 { traps::read_cr2() } else { u64::MAX };
    // SAFETY: the trap common path pushed the `SavedRegs` right below the frame; the frame
    // holds rcx, r11, the error code when the vector has one, then an `ExceptionFrame`.
    let (s, rcx, r11, ef) = unsafe {
        let skip = if error_code.is_some() { 3 } else { 2 };
        (
            &*frame.sub(SAVED_WORDS).cast::<SavedRegs>(),
            *frame,
            *frame.add(1),
            &*frame.add(skip).cast::<ExceptionFrame>(),
        )
    };
    leave(s, rcx, r11, ef, (u64::from(vector), error_code.unwrap_or(u64::MAX), cr2))
}

/// Runs the process whose registers are `regs` until it makes a syscall or takes an
/// exception; `regs` then holds its registers at that point. Needs [`init`] and a user
/// page table ([`UserSpace::install`]); without one the hypervisor crashes the domain.
pub fn enter(regs: &mut UserRegs) -> Exit {
    let was_masked = events::upcalls_masked();
    // Nothing may arrive on the kernel side between here and the `iret`, which enables
    // events for the process from the frame's IF.
    events::disable_upcalls();
    regs.rflags |= USER_RFLAGS;
    CURRENT.store(regs as *mut UserRegs, Ordering::Release);
    IN_USER.store(true, Ordering::Release);
    // SAFETY: `regs` is valid for the whole call; the entry code saves every callee-saved
    // register and comes back here through `pv_guest_user_back_to_kernel` with them restored
    // and the stack as it was, after `leave` has written the new state into `regs`.
    unsafe { pv_guest_user_enter(regs) };
    CURRENT.store(core::ptr::null_mut(), Ordering::Release);
    let vector = EXIT_VECTOR.load(Ordering::Relaxed);
    let exit = if vector == u64::MAX {
        Exit::Syscall
    } else {
        let error = EXIT_ERROR.load(Ordering::Relaxed);
        let cr2 = EXIT_CR2.load(Ordering::Relaxed);
        Exit::Exception(UserException {
            vector: vector as u8,
            error_code: (error != u64::MAX).then_some(error),
            cr2: (cr2 != u64::MAX).then_some(cr2),
            cs: EXIT_CS.load(Ordering::Relaxed) as u16,
        })
    };
    if was_masked {
        events::disable_upcalls();
    } else {
        events::enable_upcalls();
    }
    exit
}

/// Runs a process until a handler says [`Action::Exit`]; returns the exit that ended it.
/// `on_syscall` serves each syscall (sets the result with [`UserRegs::set_return`]);
/// `on_exception` decides about each exception (it may change the registers, e.g. move rip
/// past the faulting instruction, before resuming).
pub fn run(
    regs: &mut UserRegs,
    on_syscall: &mut dyn FnMut(&mut UserRegs) -> Action,
    on_exception: &mut dyn FnMut(&mut UserRegs, &UserException) -> Action,
) -> Exit {
    loop {
        let exit = enter(regs);
        let action = match exit {
            Exit::Syscall => on_syscall(regs),
            Exit::Exception(e) => on_exception(regs, &e),
        };
        if action == Action::Exit {
            return exit;
        }
    }
}

/// Whether a process is running (true only inside handlers of events that interrupted it).
pub fn in_user_mode() -> bool {
    IN_USER.load(Ordering::Acquire)
}

/// Vectors a process can raise that [`init`] routes through the trap stubs (not NMI, #DF,
/// #MC, which are the kernel's alone).
const USER_VECTORS: [u8; 16] = [0, 1, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 16, 17, 19, 20];

/// Sets up user mode: the kernel stack for entries from user mode (`stack_switch`), the
/// syscall callback (events masked on entry), and trap entries for the exceptions a process
/// can raise. Needs [`crate::events::init`] first (the entry code restores the event
/// mask). Kernel handlers registered with [`traps::install`] keep serving kernel-mode
/// exceptions.
pub fn init() -> Result<(), Errno> {
    let top = (&raw const KERNEL_STACK) as u64 + KERNEL_STACK_SIZE as u64;
    stack_switch(top)?;
    register_syscall_callback(pv_guest_user_syscall_entry as *const () as u64, CALLBACKF_MASK_EVENTS)?;
    let entries: Vec<(u8, u8)> = USER_VECTORS.iter().map(|&v| (v, traps::default_dpl(v))).collect();
    traps::install_entries(&entries)
}

/// `stack_switch(FLAT_KERNEL_SS, sp)`: the stack the hypervisor puts frames on when an
/// exception, event or syscall arrives in user mode.
pub fn stack_switch(sp: u64) -> Result<(), Errno> {
    // SAFETY: the hypervisor only records the value.
    check(unsafe { hypercall_via_page(Hypercall::StackSwitch as u64, u64::from(FLAT_KERNEL_SS), sp, 0, 0, 0) })
        .map(|_| ())
}

/// Registers `address` as the syscall callback (0: none; a process's `syscall` is then
/// #UD), with `flags` (`CALLBACKF_mask_events` or 0).
pub fn register_syscall_callback(address: u64, flags: u16) -> Result<(), Errno> {
    let arg = CallbackRegister { kind: CALLBACKTYPE_SYSCALL as u16, flags, pad: 0, address };
    check(events::callback_register_raw(&arg)).map(|_| ())
}

/// The address of this module's syscall callback, for registering it again.
pub fn syscall_entry_address() -> u64 {
    pv_guest_user_syscall_entry as *const () as u64
}

/// `set_segment_base(SEGBASE_GS_USER, base)`: the GS base processes see.
pub fn set_user_gs_base(base: u64) -> Result<(), Errno> {
    set_segment_base(SEGBASE_GS_USER, base)
}

/// `set_segment_base(SEGBASE_GS_KERNEL, base)`: the GS base of the kernel.
pub fn set_kernel_gs_base(base: u64) -> Result<(), Errno> {
    set_segment_base(SEGBASE_GS_KERNEL, base)
}

fn set_segment_base(which: u32, base: u64) -> Result<(), Errno> {
    // SAFETY: the hypervisor only loads the base (GS-relative accesses then use it).
    check(unsafe { hypercall_via_page(Hypercall::SetSegmentBase as u64, u64::from(which), base, 0, 0, 0) })
        .map(|_| ())
}

/// A page of a process: where the process sees it and where the kernel does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserPage {
    /// Its address in the process.
    pub va: u64,
    /// Its address in the kernel (in the initial region's padding).
    pub kva: u64,
    /// The frame.
    pub frame: Frame,
}

/// A process's address space: its own L4, mapping only its pages.
pub struct UserSpace {
    space: AddressSpace,
    pages: Vec<UserPage>,
}

impl UserSpace {
    /// An empty address space; its tables come from frames mapped nowhere.
    pub fn new(mm: &mut GuestMm) -> Result<UserSpace, MmError> {
        Ok(UserSpace { space: AddressSpace::new(&mut mm.table_frames())?, pages: Vec::new() })
    }

    /// Maps a fresh zeroed page at `va` in the process, writable or read-only for it; the
    /// kernel reaches the page at the returned page's `kva`.
    pub fn map_page(&mut self, mm: &mut GuestMm, va: u64, writable: bool) -> Result<UserPage, MmError> {
        let (frame, kva) = mm.alloc_mapped().ok_or(MmError::OutOfFrames)?;
        // SAFETY: `kva` is the kernel's writable mapping of a frame just taken from the
        // allocator: nothing else refers to it.
        unsafe { core::ptr::write_bytes(kva as *mut u8, 0, PAGE_SIZE as usize) };
        self.space.map(&mut XenMmu, &mut mm.table_frames(), va, frame.mfn, writable)?;
        let page = UserPage { va, kva, frame };
        self.pages.push(page);
        Ok(page)
    }

    /// Maps `bytes` at `va` (page aligned) in fresh pages, read-only for the process (code
    /// or constants): the pages are filled through the kernel's mapping.
    pub fn load(&mut self, mm: &mut GuestMm, va: u64, bytes: &[u8]) -> Result<(), MmError> {
        for (i, chunk) in bytes.chunks(PAGE_SIZE as usize).enumerate() {
            let page = self.map_page(mm, va + i as u64 * PAGE_SIZE, false)?;
            // SAFETY: the page is ours, 4096 bytes at `kva`, and `chunk` is at most that.
            unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr(), page.kva as *mut u8, chunk.len()) };
        }
        Ok(())
    }

    /// The page mapped at `va`, if this space mapped one there.
    pub fn page(&self, va: u64) -> Option<UserPage> {
        self.pages.iter().copied().find(|p| p.va == va & !(PAGE_SIZE - 1))
    }

    /// Pins the tables and makes this the user page table (`MMUEXT_NEW_USER_BASEPTR`):
    /// processes entered with [`enter`] then run on it.
    pub fn install(&mut self) -> Result<(), MmError> {
        self.space.pin(&mut XenMmu)?;
        run_ext(&mut XenMmu, &[ext_op(MMUEXT_NEW_USER_BASEPTR, self.space.l4().mfn.0)])
    }

    /// The L4's frame.
    pub fn l4(&self) -> Frame {
        self.space.l4()
    }
}
