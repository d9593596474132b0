//! Per-CPU state and the CPU features the microkernel switches on: syscall MSRs, NX,
//! SMEP, write protection in ring 0.

use core::ptr::addr_of_mut;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::Msr;

const IA32_EFER: u32 = 0xc000_0080;
const IA32_STAR: u32 = 0xc000_0081;
const IA32_LSTAR: u32 = 0xc000_0082;
const IA32_CSTAR: u32 = 0xc000_0083;
const IA32_FMASK: u32 = 0xc000_0084;
const IA32_GS_BASE: u32 = 0xc000_0101;
const IA32_KERNEL_GS_BASE: u32 = 0xc000_0102;

/// The block GS points at while the microkernel runs (offsets used by entry.S). Each on
/// its own cache lines: every entry writes its CPU's (the guest's rsp), and blocks
/// sharing a line would bounce it between the CPUs on every hypercall.
#[repr(C, align(128))]
pub struct PerCpu {
    /// Its own address.
    pub self_ptr: u64,
    /// Top of the hypervisor stack (entry.S: +8).
    pub stack_top: u64,
    /// Guest rsp saved on syscall entry (entry.S: +16).
    pub user_rsp: u64,
    /// This CPU's number (`this_cpu`: +24).
    pub cpu: u64,
}

/// One block per CPU, each written only by its own CPU (in [`init`]).
static mut PERCPU: [PerCpu; crate::cpus::MAX_CPUS] =
    [const { PerCpu { self_ptr: 0, stack_top: 0, user_rsp: 0, cpu: 0 } }; crate::cpus::MAX_CPUS];

/// The number of the CPU running this code (0 the boot CPU), from its per-CPU block: valid
/// wherever GS holds the block, which is all of the microkernel's code after [`init`]
/// except the first instructions of the entry paths.
pub fn this_cpu() -> usize {
    let cpu: u64;
    // SAFETY: GS points at this CPU's PerCpu while the microkernel runs (set in `init`,
    // swapped with the guest's only around ring 3); +24 is its `cpu` field.
    unsafe { core::arch::asm!("mov {}, gs:[24]", out(reg) cpu, options(nostack, readonly, preserves_flags)) };
    cpu as usize
}

extern "C" {
    fn syscall_entry();
    #[cfg(feature = "bench")]
    fn syscall_entry_bare();
    fn cstar_entry();
}

fn wrmsr(msr: u32, v: u64) {
    // SAFETY: callers write only the architectural MSRs named above with values this module
    // computed (selectors from the GDT, addresses of entry stubs and of PERCPU).
    unsafe { Msr::new(msr).write(v) }
}

fn rdmsr(msr: u32) -> u64 {
    // SAFETY: callers read only EFER and the segment-base MSRs, which exist on every
    // x86_64 CPU and have no side effects when read.
    unsafe { Msr::new(msr).read() }
}

/// Whether CPUID reports SMEP.
fn has_smep() -> bool {
    let max = core::arch::x86_64::__cpuid(0).eax;
    max >= 7 && core::arch::x86_64::__cpuid_count(7, 0).ebx & (1 << 7) != 0
}

/// Sets up GS, the syscall MSRs and protection bits of CPU `cpu` (the one running this,
/// once, interrupts off). `stack_top` is its hypervisor stack.
pub fn init(cpu: usize, stack_top: u64) {
    // SAFETY: each CPU calls this once for its own slot, with interrupts disabled, before
    // GS points at it; no other CPU ever touches that slot.
    let pc = unsafe { &mut (*addr_of_mut!(PERCPU))[cpu] };
    pc.self_ptr = pc as *mut PerCpu as u64;
    pc.stack_top = stack_top;
    pc.cpu = cpu as u64;
    wrmsr(IA32_GS_BASE, pc.self_ptr);
    wrmsr(IA32_KERNEL_GS_BASE, 0);

    // sysret: CS = 0xe023 + 16 = 0xe033, SS = 0xe023 + 8 = 0xe02b (Xen's XEN_MSR_STAR).
    // syscall: CS = 0xe008, SS = 0xe010.
    wrmsr(IA32_STAR, (0xe023u64 << 48) | (0xe008u64 << 32));
    wrmsr(IA32_LSTAR, syscall_entry as *const () as u64);
    wrmsr(IA32_CSTAR, cstar_entry as *const () as u64);
    // Cleared on entry: TF, IF, DF, IOPL, NT, AC.
    wrmsr(IA32_FMASK, 0x0004_7700);
    wrmsr(IA32_EFER, rdmsr(IA32_EFER) | 1); // SCE (boot.S set it too)

    // SAFETY: WP makes ring 0 honour read-only guest pages (the copy routine relies on it);
    // SMEP stops ring 0 from executing guest (user) pages; the FPU bits only let guests use
    // x87/SSE (the microkernel itself is built without SSE). None changes any mapping.
    unsafe {
        Cr0::update(|f| f.insert(Cr0Flags::WRITE_PROTECT));
        // Guests may use the FPU and SSE; their state is switched with each vCPU (fpu.rs).
        Cr0::update(|f| {
            f.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            f.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
        });
        Cr4::update(|f| f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
        if has_smep() {
            Cr4::update(|f| f.insert(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION));
        }
    }
}

/// Points LSTAR at the bare benchmark entry (`on`) or back at the real one.
#[cfg(feature = "bench")]
pub fn set_bare_syscall(on: bool) {
    let entry = if on { syscall_entry_bare as *const () } else { syscall_entry as *const () };
    wrmsr(IA32_LSTAR, entry as u64);
}

/// Writes back and invalidates the caches.
pub fn wbinvd() {
    // SAFETY: write-back-and-invalidate has no effect on memory contents or mappings.
    unsafe { core::arch::asm!("wbinvd", options(nostack)) }
}

/// Machine address of the current top-level page table.
pub fn read_cr3() -> u64 {
    x86_64::registers::control::Cr3::read_raw().0.start_address().as_u64()
}

/// CR0 as the hardware has it.
pub fn read_cr0() -> u64 {
    Cr0::read_raw()
}

/// CR4 as the hardware has it.
pub fn read_cr4() -> u64 {
    Cr4::read_raw()
}

/// CR4's bits a PV guest controls for itself (Xen's `PV_CR4_GUEST_MASK` less TSD and
/// OSXSAVE): debugging extensions and, where the CPU has them, the FS/GS base instructions.
pub const CR4_GUEST_BITS: u64 = (1 << 3) | (1 << 16);

/// Puts a vCPU's guest-controlled CR4 bits (`CR4_GUEST_BITS` only) into the hardware
/// register, if they differ from what it holds.
pub fn load_guest_cr4(bits: u64) {
    let hw = Cr4::read_raw();
    let want = (hw & !CR4_GUEST_BITS) | (bits & CR4_GUEST_BITS);
    if want != hw {
        // Only DE and FSGSBASE change, bits the microkernel does not depend on (it uses
        // neither I/O breakpoints nor the base instructions); the guest can already set
        // its bases through the MSR emulation.
        // SAFETY: FSGSBASE is set only where CPUID reports it (the caller masks it), so the
        // write cannot #GP; the other bits stay as they were.
        unsafe { Cr4::write_raw(want) }
    }
}

/// Whether the CPU has the FS/GS base instructions (CPUID 7.0:EBX bit 0).
pub fn has_fsgsbase() -> bool {
    core::arch::x86_64::__cpuid_count(7, 0).ebx & 1 != 0
}

/// The FS base (the guest's: the microkernel does not use FS).
pub fn fs_base() -> u64 {
    rdmsr(0xc000_0100)
}

/// Sets the FS base for the guest.
pub fn set_fs_base(v: u64) {
    wrmsr(0xc000_0100, v);
}

/// The guest's active GS base. While the microkernel runs, GS points at the per-CPU block
/// and the guest's GS base waits in KERNEL_GS_BASE until the `swapgs` on the way out.
pub fn guest_gs_base() -> u64 {
    rdmsr(IA32_KERNEL_GS_BASE)
}

/// Sets the guest's active GS base (see `guest_gs_base`).
pub fn set_guest_gs_base(v: u64) {
    wrmsr(IA32_KERNEL_GS_BASE, v);
}
