//! x86_64 CPU state structures (`arch-x86/xen.h`, `arch-x86/xen-x86_64.h`): trap table entries, guest registers, vCPU context.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// One entry of the virtual IDT passed to `set_trap_table` (`struct trap_info`).
///
/// The table is terminated by an entry whose `address` is 0. `flags` bits
/// 0..=1 hold the privilege level that may raise the vector with a software
/// interrupt (0: nobody, 1 or 2: the guest kernel, 3: everyone); bit 2, when
/// set, masks event delivery on entry (like an interrupt gate clearing IF).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct TrapInfo {
    /// Exception or interrupt vector.
    pub vector: u8,
    /// `TI_DPL_MASK` and `TI_IF` bits.
    pub flags: u8,
    /// Code selector of the handler.
    pub cs: u16,
    /// Padding (implicit in C), zero.
    pub _pad: u32,
    /// Handler address; 0 terminates the table.
    pub address: u64,
}

/// Bits of [`TrapInfo::flags`] holding the privilege level (`TI_GET_DPL`).
pub const TI_DPL_MASK: u8 = 3;
/// Bit of [`TrapInfo::flags`] that masks events on entry (`TI_GET_IF`).
pub const TI_IF: u8 = 4;

impl TrapInfo {
    /// An entry for `vector` with the given privilege level (masked to 0..=3),
    /// event masking on entry, handler selector and address.
    pub const fn new(vector: u8, dpl: u8, mask_events: bool, cs: u16, address: u64) -> Self {
        let flags = (dpl & TI_DPL_MASK) | if mask_events { TI_IF } else { 0 };
        TrapInfo {
            vector,
            flags,
            cs,
            _pad: 0,
            address,
        }
    }

    /// `TI_GET_DPL`: the privilege level allowed to raise this vector with `int`.
    pub const fn dpl(&self) -> u8 {
        self.flags & TI_DPL_MASK
    }

    /// `TI_GET_IF`: whether event delivery is masked on entry to the handler.
    pub const fn masks_events(&self) -> bool {
        self.flags & TI_IF != 0
    }

    /// `TI_SET_DPL`, except that it replaces the level instead of OR-ing into it.
    pub fn set_dpl(&mut self, dpl: u8) {
        self.flags = (self.flags & !TI_DPL_MASK) | (dpl & TI_DPL_MASK);
    }

    /// `TI_SET_IF`, except that it can also clear the bit.
    pub fn set_masks_events(&mut self, mask: bool) {
        if mask {
            self.flags |= TI_IF;
        } else {
            self.flags &= !TI_IF;
        }
    }

    /// Whether this is the terminating entry (`address == 0`).
    pub const fn is_terminator(&self) -> bool {
        self.address == 0
    }
}

const _: () = assert!(core::mem::size_of::<TrapInfo>() == 16);

/// Guest general-purpose and segment registers (`struct cpu_user_regs`, x86_64).
///
/// Xen declares the general registers as unions (`rax`/`eax`/`ax`/`al`); only
/// the 64-bit names are kept here. Each 16-bit selector occupies 8 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct CpuUserRegs {
    /// `r15`.
    pub r15: u64,
    /// `r14`.
    pub r14: u64,
    /// `r13`.
    pub r13: u64,
    /// `r12`.
    pub r12: u64,
    /// `rbp`.
    pub rbp: u64,
    /// `rbx`.
    pub rbx: u64,
    /// `r11`.
    pub r11: u64,
    /// `r10`.
    pub r10: u64,
    /// `r9`.
    pub r9: u64,
    /// `r8`.
    pub r8: u64,
    /// `rax`.
    pub rax: u64,
    /// `rcx`.
    pub rcx: u64,
    /// `rdx`.
    pub rdx: u64,
    /// `rsi`.
    pub rsi: u64,
    /// `rdi`.
    pub rdi: u64,
    /// Exception error code (hypervisor-private).
    pub error_code: u32,
    /// Entry vector (hypervisor-private).
    pub entry_vector: u32,
    /// `rip`.
    pub rip: u64,
    /// `cs`.
    pub cs: u16,
    /// Padding, zero.
    pub _pad0: u16,
    /// Saved event upcall mask; `rflags.IF == !saved_upcall_mask`.
    pub saved_upcall_mask: u8,
    /// Padding, zero.
    pub _pad1: [u8; 3],
    /// `rflags`.
    pub rflags: u64,
    /// `rsp`.
    pub rsp: u64,
    /// `ss`.
    pub ss: u16,
    /// Padding, zero.
    pub _pad2: [u16; 3],
    /// `es`.
    pub es: u16,
    /// Padding, zero.
    pub _pad3: [u16; 3],
    /// `ds`.
    pub ds: u16,
    /// Padding, zero.
    pub _pad4: [u16; 3],
    /// `fs`.
    pub fs: u16,
    /// Padding, zero.
    pub _pad5: [u16; 3],
    /// `gs`.
    pub gs: u16,
    /// Padding, zero.
    pub _pad6: [u16; 3],
}

const _: () = assert!(core::mem::size_of::<CpuUserRegs>() == 200);

/// Number of entries in [`VcpuGuestContext::trap_ctxt`] (the whole IDT).
pub const NR_TRAP_ENTRIES: usize = 256;

/// A vCPU's full register state (`struct vcpu_guest_context`, x86_64), as
/// passed to `VCPUOP_initialise` and the domctls that get and set it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct VcpuGuestContext {
    /// FPU/SSE state in FXSAVE format; first so that it can be aligned.
    pub fpu_ctxt: [u8; 512],
    /// `VGCF_*` flags.
    pub flags: u64,
    /// General-purpose and segment registers.
    pub user_regs: CpuUserRegs,
    /// Virtual IDT.
    pub trap_ctxt: [TrapInfo; NR_TRAP_ENTRIES],
    /// LDT linear address.
    pub ldt_base: u64,
    /// LDT entry count.
    pub ldt_ents: u64,
    /// GDT machine frames.
    pub gdt_frames: [u64; 16],
    /// GDT entry count.
    pub gdt_ents: u64,
    /// Kernel stack segment (the virtual TSS's SS1).
    pub kernel_ss: u64,
    /// Kernel stack pointer (the virtual TSS's SP1).
    pub kernel_sp: u64,
    /// CR0..CR7; on x86_64 the user page-table base is in `ctrlreg[1]`.
    pub ctrlreg: [u64; 8],
    /// DR0..DR7.
    pub debugreg: [u64; 8],
    /// Event upcall entry point.
    pub event_callback_eip: u64,
    /// Failsafe callback entry point.
    pub failsafe_callback_eip: u64,
    /// `syscall` from guest user mode entry point.
    pub syscall_callback_eip: u64,
    /// Bitmap of enabled `VMASST_TYPE_*` assists.
    pub vm_assist: u64,
    /// FS base.
    pub fs_base: u64,
    /// GS base while in guest kernel mode.
    pub gs_base_kernel: u64,
    /// GS base while in guest user mode.
    pub gs_base_user: u64,
}

const _: () = assert!(core::mem::size_of::<VcpuGuestContext>() == 5168);

/// `VGCF_i387_valid`: `fpu_ctxt` holds valid state.
pub const VGCF_I387_VALID: u64 = 1 << 0;
/// `VGCF_in_kernel`: the vCPU is in guest kernel mode.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// `VGCF_failsafe_disables_events`: entering the failsafe callback masks events.
pub const VGCF_FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3;
/// `VGCF_syscall_disables_events`: entering the syscall callback masks events.
pub const VGCF_SYSCALL_DISABLES_EVENTS: u64 = 1 << 4;
/// `VGCF_online`: the vCPU is up.
pub const VGCF_ONLINE: u64 = 1 << 5;
/// `VGCF_in_syscall` (x86_64): the guest entered through `syscall`; return
/// with `sysret` semantics (flag in the `iret` hypercall frame, bit 8).
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;

/// `set_segment_base` selector: FS base.
pub const SEGBASE_FS: u32 = 0;
/// `set_segment_base` selector: user-mode GS base.
pub const SEGBASE_GS_USER: u32 = 1;
/// `set_segment_base` selector: kernel-mode GS base.
pub const SEGBASE_GS_KERNEL: u32 = 2;
/// `set_segment_base` selector: load the user `gs` selector given in `base[15:0]`.
pub const SEGBASE_GS_USER_SEL: u32 = 3;

/// `vm_assist` command: enable an assist.
pub const VMASST_CMD_ENABLE: u32 = 0;
/// `vm_assist` command: disable an assist.
pub const VMASST_CMD_DISABLE: u32 = 1;
/// x86_32 only: simulate full 4 GiB segment limits.
pub const VMASST_TYPE_4GB_SEGMENTS: u32 = 0;
/// x86_32 only: trap (vector 15) whenever the 4 GiB segment assist is used.
pub const VMASST_TYPE_4GB_SEGMENTS_NOTIFY: u32 = 1;
/// Allow direct writes to L1 page-table entries (emulated by the hypervisor).
pub const VMASST_TYPE_WRITABLE_PAGETABLES: u32 = 2;
/// x86 PAE only: page directory pointer tables may live above 4 GiB.
pub const VMASST_TYPE_PAE_EXTENDED_CR3: u32 = 3;
/// Architectural behaviour of the virtual IOPL.
pub const VMASST_TYPE_ARCHITECTURAL_IOPL: u32 = 4;
/// Set `XEN_RUNSTATE_UPDATE` while updating a guest-mapped runstate area.
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;
/// x86_64: strictly hide the M2P from guest user mode.
pub const VMASST_TYPE_M2P_STRICT: u32 = 32;

/// `struct iret_context`: the frame a guest pushes before the `iret`
/// hypercall, lowest address (top of stack) first.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct IretContext {
    /// `rax` to restore.
    pub rax: u64,
    /// `r11` to restore (discarded with `VGCF_IN_SYSCALL`).
    pub r11: u64,
    /// `rcx` to restore (discarded with `VGCF_IN_SYSCALL`).
    pub rcx: u64,
    /// `VGCF_IN_SYSCALL` or 0.
    pub flags: u64,
    /// Return `rip`.
    pub rip: u64,
    /// Return `cs`.
    pub cs: u64,
    /// Return `rflags`.
    pub rflags: u64,
    /// Return `rsp`.
    pub rsp: u64,
    /// Return `ss`.
    pub ss: u64,
}

const _: () = assert!(core::mem::size_of::<IretContext>() == 72);
