//! The register frame every guest entry builds, and the Rust side of the entry paths:
//! hypercalls, exceptions from guests, and faults of the microkernel itself.

use super::console::print_line_unlocked;
use super::exit::{exit, ExitCode};
use super::pic;
use core::ptr::addr_of;

/// Pseudo-vector entry.S uses for `syscall`.
pub const SYSCALL_VECTOR: u64 = 0x100;

/// Guest (or interrupted) register state, as entry.S lays it out on the stack.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(missing_docs)] // register names say what they are
pub struct GuestFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    /// Exception vector, or SYSCALL_VECTOR.
    pub vector: u64,
    /// Error code (0 where the CPU pushes none).
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = assert!(core::mem::size_of::<GuestFrame>() == 176);
const _: () = assert!(core::mem::offset_of!(GuestFrame, cs) == 144);

extern "C" {
    fn enter_guest(frame: *const GuestFrame) -> !;
    fn guest_copy(dst: *mut u8, src: *const u8, len: usize) -> u64;
    static guest_copy_fault_ip: u8;
    static guest_copy_fault_ip_tail: u8;
    static guest_copy_fixup: u8;
}

static mut FIRST_FRAME: GuestFrame = GuestFrame {
    r15: 0, r14: 0, r13: 0, r12: 0, rbp: 0, rbx: 0, r11: 0, r10: 0, r9: 0, r8: 0, rax: 0,
    rcx: 0, rdx: 0, rsi: 0, rdi: 0, vector: 0, error: 0, rip: 0, cs: 0, rflags: 0, rsp: 0, ss: 0,
};

/// Starts the first guest with register state `f`; the boot stack is abandoned.
pub fn enter_guest_first_time(f: GuestFrame) -> ! {
    // SAFETY: FIRST_FRAME is written once, right before the jump, with interrupts disabled;
    // enter_guest only pops it. The frame is not on the stack it abandons.
    unsafe {
        core::ptr::addr_of_mut!(FIRST_FRAME).write(f);
        enter_guest(addr_of!(FIRST_FRAME))
    }
}

/// Starts running the guest whose register state is `f` on this CPU, abandoning the Rust
/// code that called it (an application processor's first entry to a vCPU). Interrupts
/// must be off; `f` may live on the stack it abandons: it is read from the bottom up
/// before anything is pushed again.
pub fn enter_guest_from(f: &GuestFrame) -> ! {
    // SAFETY: enter_guest makes `f` the stack pointer and pops the frame into registers
    // and the iretq; nothing is pushed below it meanwhile (interrupts are off, and the
    // next entry from the guest starts at the stack top, above it).
    unsafe { enter_guest(f as *const GuestFrame) }
}

/// A page fault hit a guest copy.
#[derive(Clone, Copy, Debug)]
pub struct CopyFault;

/// Copies `len` bytes between a hypervisor buffer and guest virtual memory, turning a page
/// fault into `Err(CopyFault)`. One side must be a hypervisor buffer valid for `len` bytes.
///
/// # Safety
/// `dst`/`src`: the hypervisor side must be valid for `len` bytes; the guest side must
/// have been checked by `GuestRange` (outside the hypervisor slice), and the current page
/// tables must be the guest's.
pub unsafe fn copy_with_fixup(dst: *mut u8, src: *const u8, len: usize) -> Result<(), CopyFault> {
    // SAFETY: per the contract above; a fault on the guest side is fixed up by
    // exception_entry and reported as a return value of 1.
    match unsafe { guest_copy(dst, src, len) } {
        0 => Ok(()),
        _ => Err(CopyFault),
    }
}

/// Copies guest memory at `src` (checked: outside the hypervisor's slice) into `buf`
/// (at most `src.len()` bytes: `buf.len()` of them), through the running CPU's page
/// tables (a guest's, or while idle the hypervisor's own, where nothing is mapped); a
/// page fault is an error, never a fault of the hypervisor.
pub fn copy_from_guest(src: crate::guest_access::GuestRange, buf: &mut [u8]) -> Result<(), CopyFault> {
    if buf.len() as u64 > src.len() {
        return Err(CopyFault);
    }
    // SAFETY: `buf` is a hypervisor buffer valid for its length; the guest side lies
    // outside the hypervisor's slice (GuestRange) and is no longer than the range.
    unsafe { copy_with_fixup(buf.as_mut_ptr(), src.addr() as *const u8, buf.len()) }
}

/// Copies `buf` to guest memory at `dst` (see [`copy_from_guest`]); CR0.WP makes a
/// read-only guest page fault, which is an error.
pub fn copy_to_guest(dst: crate::guest_access::GuestRange, buf: &[u8]) -> Result<(), CopyFault> {
    if buf.len() as u64 > dst.len() {
        return Err(CopyFault);
    }
    // SAFETY: as in `copy_from_guest`, in the other direction.
    unsafe { copy_with_fixup(dst.addr() as *mut u8, buf.as_ptr(), buf.len()) }
}

fn canonical(a: u64) -> bool {
    let top = a >> 47;
    top == 0 || top == 0x1ffff
}

/// Called by entry.S for every `syscall` from a guest. Returns 1 when the fast `sysret`
/// return may be used.
#[no_mangle]
extern "C" fn hypercall_from_guest(f: &mut GuestFrame) -> u64 {
    crate::kernel::hypercall(f);
    // A non-canonical rsp is the guest's business, as in Xen: `sysret` loads it as it is,
    // and the guest's next push faults in the guest (a bounce frame onto such a stack is
    // refused and ends the domain). A non-canonical rip (a `syscall` at the top of the
    // lower half) would make `sysret` fault in ring 0: as Xen, the guest gets the #GP its
    // return would have raised, at that rip (the frame is the running vCPU's, whichever
    // that is now).
    if !canonical(f.rip) {
        f.vector = 13;
        f.error = 0;
        crate::kernel::bounce_or_fault(f);
    }
    // Never hand ring 3 IOPL, NT, VM, AC, or a cleared IF.
    f.rflags = (f.rflags | 0x200 | 0x2) & !(0x3000 | 0x4000 | 0x2_0000 | 0x4_0000 | 0x1_0000);
    (f.vector == SYSCALL_VECTOR) as u64
}

/// Mnemonic of an exception vector.
pub fn vector_name(v: u64) -> &'static str {
    const N: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP", "#SS", "#GP", "#PF",
        "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC",
        "#SX", "#31",
    ];
    N.get(v as usize).copied().unwrap_or("IRQ")
}

/// Marks, in `GuestFrame::vector`, a fault of the `iretq` returning to a guest (entry.S).
pub const IRET_FAULT: u64 = 0x200;

/// The data selectors loaded now: the guest's, which the microkernel never changes.
fn data_selectors() -> crate::traps::DataSelectors {
    use x86_64::instructions::segmentation::{Segment, DS, ES, FS, GS};
    crate::traps::DataSelectors { ds: DS::get_reg().0, es: ES::get_reg().0, fs: FS::get_reg().0, gs: GS::get_reg().0 }
}

/// Called by entry.S for every exception and interrupt.
#[no_mangle]
extern "C" fn exception_entry(f: &mut GuestFrame) {
    if f.vector & IRET_FAULT != 0 {
        f.vector &= !IRET_FAULT;
        let vector = f.vector;
        crate::kernel::iret_fault(f, vector, data_selectors());
        return;
    }
    if f.vector == pic::vector_of(super::console::COM1_IRQ) {
        super::console::rx_interrupt();
        pic::eoi(f.vector);
        // In ring 0 this is the idle loop, which raises VIRQ_CONSOLE itself.
        if f.cs & 3 == 3 {
            crate::kernel::console_input(f);
        }
        return;
    }
    if (32..48).contains(&f.vector) {
        pic::device_interrupt((f.vector - 32) as u8);
        // In ring 0 this is the idle loop, which raises the owners' events itself.
        if f.cs & 3 == 3 {
            crate::kernel::device_interrupt(f);
        }
        return;
    }
    if f.vector == super::apic::SPURIOUS_VECTOR {
        return;
    }
    if f.vector == super::apic::FLUSH_VECTOR {
        // Served wherever it lands, without a lock: the asking CPU holds the machine.
        super::smp::service_flush();
        super::apic::eoi();
        return;
    }
    if f.vector == super::apic::RESCHEDULE_VECTOR {
        super::apic::eoi();
        // In ring 0 this is the idle loop, which looks at its state itself.
        if f.cs & 3 == 3 {
            crate::kernel::reschedule(f);
        }
        return;
    }
    if f.vector == super::apic::TIMER_VECTOR {
        super::apic::eoi();
        super::apic::note_fired();
        if f.cs & 3 == 3 {
            crate::kernel::timer_tick(f);
        }
        return;
    }
    if f.vector == 1 {
        let hit = super::debugreg::take_dr6();
        if f.cs & 3 == 3 {
            crate::kernel::guest_debug_exception(f, hit);
        } else {
            hypervisor_debug_exception(f, hit);
        }
        return;
    }
    if f.cs & 3 == 3 {
        crate::kernel::guest_exception(f);
        return;
    }
    let (fault_ip, fixup) = (addr_of!(guest_copy_fault_ip) as u64, addr_of!(guest_copy_fixup) as u64);
    let fault_ip_tail = addr_of!(guest_copy_fault_ip_tail) as u64;
    if f.vector == 14 && (f.rip == fault_ip || f.rip == fault_ip_tail) {
        f.rip = fixup;
        return;
    }
    hypervisor_fault(f)
}

/// Debug exceptions the hypervisor took and dropped (a guest's data breakpoint on memory
/// the hypervisor read or wrote for it, or a breakpoint delayed past `syscall`).
pub static HYPERVISOR_DEBUG_EXCEPTIONS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// A #DB in ring 0, on its IST stack, with GS perhaps still the guest's (the first
/// instruction of the `syscall` path): as Xen's `handle_DB` for hypervisor context, it is
/// dropped. A single step is stopped (the trap flag cleared in the interrupted state);
/// an instruction breakpoint, which the rules keep out of the hypervisor's addresses and
/// which would fire again at once, disables the breakpoints. Nothing here takes a lock.
fn hypervisor_debug_exception(f: &mut GuestFrame, hit: u64) {
    HYPERVISOR_DEBUG_EXCEPTIONS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    f.rflags &= !(1 << 8);
    let dr7: u64;
    // SAFETY: reading DR7 touches no memory (GD is never set, so it cannot fault).
    unsafe { core::arch::asm!("mov {}, dr7", out(reg) dr7, options(nomem, nostack, preserves_flags)) };
    let instruction_bp = (0..4).any(|bp| hit & (1 << bp) != 0 && dr7 & (3 << (2 * bp)) != 0 && (dr7 >> (16 + 4 * bp)) & 3 == 0);
    if instruction_bp {
        super::debugreg::disable();
    }
}

/// Reads CR2.
pub fn cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

fn hypervisor_fault(f: &GuestFrame) -> ! {
    let cr3 = x86_64::registers::control::Cr3::read().0.start_address().as_u64();
    print_line_unlocked(format_args!(
        "PANIC: microkernel fault: vector {} {} rip={:#x} error={:#x} cr2={:#x} cr3={:#x}",
        f.vector,
        vector_name(f.vector),
        f.rip,
        f.error,
        cr2(),
        cr3
    ));
    dump(f);
    print_line_unlocked(format_args!("stopping the machine"));
    exit(ExitCode::Panic)
}

/// Prints every register of `f`.
pub fn dump(f: &GuestFrame) {
    print_line_unlocked(format_args!("rax={:016x} rbx={:016x} rcx={:016x} rdx={:016x}", f.rax, f.rbx, f.rcx, f.rdx));
    print_line_unlocked(format_args!("rsi={:016x} rdi={:016x} rbp={:016x} rsp={:016x}", f.rsi, f.rdi, f.rbp, f.rsp));
    print_line_unlocked(format_args!("r8 ={:016x} r9 ={:016x} r10={:016x} r11={:016x}", f.r8, f.r9, f.r10, f.r11));
    print_line_unlocked(format_args!("r12={:016x} r13={:016x} r14={:016x} r15={:016x}", f.r12, f.r13, f.r14, f.r15));
    print_line_unlocked(format_args!("rip={:016x} cs={:04x} rflags={:08x} ss={:04x}", f.rip, f.cs, f.rflags, f.ss));
}
