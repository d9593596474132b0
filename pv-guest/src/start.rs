//! Start of day (guest target only): the `_start` entry point, the boot stack, the hypercall
//! page, the Xen ELF notes, and `pv_guest_start`, which sets up the kit and calls the guest's
//! main (see [`crate::entry!`]).
//!
//! Xen x86_64 PV start of day: rip = entry, rsi = virtual address of start_info, rsp = a
//! stack in the initial region, all other registers 0, events masked.

use core::arch::global_asm;
use core::sync::atomic::{AtomicPtr, Ordering};

use hypercall_abi::elfnote::XenElfNote;
use hypercall_abi::sched::ShutdownReason;
use hypercall_abi::start_info::StartInfo;

use crate::start_info::has_valid_magic;

/// Size of the boot stack (in .bss).
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

// `_start`: zero .bss with string instructions (no stack use: the boot stack is in .bss),
// switch to the boot stack, and call `pv_guest_start(rsi)`. The stack top is 16-byte
// aligned, so rsp is 16-byte aligned at the call as the SysV ABI wants.
global_asm!(
    r#"
    .section .text.pv_guest_start, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    cld
    mov r12, rsi
    lea rdi, [rip + __bss_start]
    lea rcx, [rip + __bss_end]
    sub rcx, rdi
    xor eax, eax
    rep stosb
    lea rsp, [rip + pv_guest_boot_stack_top]
    xor ebp, ebp
    mov rdi, r12
    call {start}
    ud2
    .size _start, . - _start

    .section .text.hypercall_page, "ax", @progbits
    .balign 4096
    .globl hypercall_page
    .type hypercall_page, @function
hypercall_page:
    /* int3 until the domain builder writes the stubs. */
    .fill 4096, 1, 0xcc
    .size hypercall_page, 4096

    .section .bss.pv_guest_boot_stack, "aw", @nobits
    .balign 16
pv_guest_boot_stack:
    .skip {stack_size}
pv_guest_boot_stack_top:
"#,
    start = sym pv_guest_start,
    stack_size = const BOOT_STACK_SIZE,
);

/// One Xen ELF note (`Elf64_Nhdr`, name "Xen", 4-byte aligned) in `.note.Xen`; the
/// descriptor is the given assembler lines. Labels 2/3 (not 0/1, which read as binary
/// numbers in Intel syntax) delimit it.
macro_rules! xen_note {
    ($ty:literal, $($desc:expr),+) => {
        concat!(
            ".pushsection .note.Xen, \"a\", @note\n",
            ".balign 4\n",
            ".long 4\n",
            ".long 3f - 2f\n",
            ".long {", $ty, "}\n",
            ".asciz \"Xen\"\n",
            "2:\n",
            $($desc, "\n",)+
            "3:\n",
            ".balign 4\n",
            ".popsection\n",
        )
    };
}

// The notes Xen's libelf reads to load a PV kernel. VIRT_BASE == PADDR_OFFSET makes the load
// address of each segment its p_paddr, which the linker sets to p_vaddr (see guest.ld).
global_asm!(
    xen_note!("guest_os", ".asciz \"rust-pv\""),
    xen_note!("guest_version", concat!(".asciz \"", env!("CARGO_PKG_VERSION"), "\"")),
    xen_note!("xen_version", ".asciz \"xen-3.0\""),
    xen_note!("loader", ".asciz \"generic\""),
    xen_note!("virt_base", ".quad __guest_base"),
    xen_note!("paddr_offset", ".quad __guest_base"),
    xen_note!("entry", ".quad _start"),
    xen_note!("hypercall_page", ".quad hypercall_page"),
    xen_note!("features", ".asciz \"!writable_page_tables\""),
    guest_os = const XenElfNote::GuestOs as u32,
    guest_version = const XenElfNote::GuestVersion as u32,
    xen_version = const XenElfNote::XenVersion as u32,
    loader = const XenElfNote::Loader as u32,
    virt_base = const XenElfNote::VirtBase as u32,
    paddr_offset = const XenElfNote::PaddrOffset as u32,
    entry = const XenElfNote::Entry as u32,
    hypercall_page = const XenElfNote::HypercallPage as u32,
    features = const XenElfNote::Features as u32,
);

static START_INFO: AtomicPtr<StartInfo> = AtomicPtr::new(core::ptr::null_mut());

/// The start_info page the hypervisor gave us (also passed to main).
pub fn current() -> &'static StartInfo {
    let si = START_INFO.load(Ordering::Acquire);
    assert!(!si.is_null(), "start_info used before pv_guest_start");
    // SAFETY: set once by `pv_guest_start` to the validated start_info page, which stays
    // mapped and unchanged for the life of the guest.
    unsafe { &*si }
}

unsafe extern "Rust" {
    /// The guest's main, defined by [`crate::entry!`].
    fn __pv_guest_main(si: &'static StartInfo) -> ShutdownReason;
    /// The guest's heap area, defined by [`crate::entry!`].
    fn __pv_guest_heap() -> crate::heap::HeapSpan;
}

/// Rust entry from `_start`: validate start_info, set up console and heap, run main, and
/// shut down with the reason main returns.
extern "C" fn pv_guest_start(si: *const StartInfo) -> ! {
    if si.is_null() || !si.is_aligned() {
        crate::console::write_raw(b"pv-guest: no start_info in rsi\n");
        crate::hypercall::sched_shutdown(ShutdownReason::Crash);
    }
    // SAFETY: the Xen PV ABI passes the virtual address of the start_info page, mapped
    // read-write in our initial region, in rsi; it is non-null and aligned (checked above).
    let si: &'static StartInfo = unsafe { &*si };
    if !has_valid_magic(si) {
        crate::console::write_raw(b"pv-guest: bad start_info magic\n");
        crate::hypercall::sched_shutdown(ShutdownReason::Crash);
    }
    START_INFO.store((si as *const StartInfo).cast_mut(), Ordering::Release);
    // A domU prints through its console ring from here on; the heap needs setting up.
    crate::console_ring::init(si);
    // SAFETY: defined by `entry!` with exactly this signature (see `__pv_guest_main`).
    crate::heap::init(unsafe { __pv_guest_heap() });
    // SAFETY: `__pv_guest_main` is defined by `entry!` with exactly this signature; a guest
    // binary that does not use `entry!` fails to link.
    let reason = unsafe { __pv_guest_main(si) };
    crate::hypercall::sched_shutdown(reason)
}
