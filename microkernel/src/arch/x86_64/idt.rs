//! The IDT: every exception vector goes to a stub in entry.S, which builds a GuestFrame
//! and calls `exception_entry` (trap.rs). #DF, NMI and #MC run on their own IST stacks so
//! that a broken stack still yields a register dump instead of a triple fault; #DB on its
//! own so that one arriving on the `syscall` path never uses the guest's stack (entry.S
//! moves a guest's #DB frame to the hypervisor stack).
//! [`set_bare_breakpoint`] swaps the #BP gate for the benchmark's bare `iretq` stub.

use super::gdt::{HYPERVISOR_CS, IST_DEBUG, IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI};
use core::ptr::addr_of;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

/// Vectors with stubs (exceptions and the legacy PIC lines).
const STUBS: usize = 48;

extern "C" {
    static exception_stubs: [u64; STUBS];
    fn exc_240();
    fn exc_241();
    fn exc_242();
    fn exc_255();
    #[cfg(feature = "bench")]
    fn exc_bare_iret();
}

#[repr(C, align(16))]
struct Idt([[u64; 2]; 256]);

static mut IDT: Idt = Idt([[0; 2]; 256]);

fn gate(handler: u64, ist: u8) -> [u64; 2] {
    gate_dpl(handler, ist, 0)
}

fn gate_dpl(handler: u64, ist: u8, dpl: u64) -> [u64; 2] {
    // Present, DPL `dpl`, 64-bit interrupt gate (IF cleared on entry).
    let low = (handler & 0xffff)
        | ((HYPERVISOR_CS as u64) << 16)
        | ((ist as u64 & 7) << 32)
        | ((0x8e | (dpl << 5)) << 40)
        | (((handler >> 16) & 0xffff) << 48);
    [low, handler >> 32]
}

/// The #BP gate: DPL 3, so that `int3` from a guest kernel (ring 3) reaches `handler`.
fn breakpoint_gate(handler: u64) -> [u64; 2] {
    gate_dpl(handler, 0, 3)
}

/// Fills and loads the IDT.
pub fn init() {
    // SAFETY: `exception_stubs` is a read-only table of code addresses defined in entry.S;
    // the IDT is written once on the boot CPU with interrupts disabled, before lidt.
    unsafe {
        let stubs = &*addr_of!(exception_stubs);
        let idt = &mut (*core::ptr::addr_of_mut!(IDT)).0;
        for (v, &h) in stubs.iter().enumerate() {
            let ist = match v {
                1 => IST_DEBUG,
                2 => IST_NMI,
                8 => IST_DOUBLE_FAULT,
                18 => IST_MACHINE_CHECK,
                _ => 0,
            };
            // `int3` and `into` may be executed by a guest (ring 3) and reach its own
            // handlers as vectors 3 and 4, as on Xen; every other `int $n` is a #GP.
            idt[v] = match v {
                3 => breakpoint_gate(h),
                4 => gate_dpl(h, ist, 3),
                _ => gate(h, ist),
            };
        }
        idt[super::apic::TIMER_VECTOR as usize] = gate(exc_240 as *const () as u64, 0);
        idt[super::apic::RESCHEDULE_VECTOR as usize] = gate(exc_241 as *const () as u64, 0);
        idt[super::apic::FLUSH_VECTOR as usize] = gate(exc_242 as *const () as u64, 0);
        idt[super::apic::SPURIOUS_VECTOR as usize] = gate(exc_255 as *const () as u64, 0);
        let ptr = DescriptorTablePointer {
            limit: (core::mem::size_of::<Idt>() - 1) as u16,
            base: VirtAddr::new(idt.as_ptr() as u64),
        };
        lidt(&ptr);
    }
}

/// Loads the IDT [`init`] built on the running CPU (an application processor: every CPU
/// shares the one table).
pub fn load() {
    // SAFETY: the IDT is a static, complete once `init` ran on the boot CPU (before any
    // application processor starts); loading it changes no memory.
    unsafe {
        let idt = &(*addr_of!(IDT)).0;
        let ptr = DescriptorTablePointer { limit: (core::mem::size_of::<Idt>() - 1) as u16, base: VirtAddr::new(idt.as_ptr() as u64) };
        lidt(&ptr);
    }
}

/// Points vector 3 (#BP) at `exc_bare_iret` (`on`), a stub that only does `iretq`, or back
/// at its real stub. The benchmark's floor for an exception round trip (sysctl
/// `BENCH_BARE_EXCEPTION_ON`/`_OFF`): while it is on, `int3` from anywhere resumes after the
/// instruction without entering the microkernel or any guest handler.
#[cfg(feature = "bench")]
pub fn set_bare_breakpoint(on: bool) {
    // The IDTR already points at this table and the CPU reads gates from memory at each
    // delivery, so no reload is needed.
    // SAFETY: `exception_stubs` is read-only code addresses (entry.S); the gate is rewritten
    // with interrupts off (inside a hypercall) on the only CPU: no delivery sees half of it.
    unsafe {
        let handler = if on { exc_bare_iret as *const () as u64 } else { (*addr_of!(exception_stubs))[3] };
        (*core::ptr::addr_of_mut!(IDT)).0[3] = breakpoint_gate(handler);
    }
}
