//! The `iret` hypercall (Xen's `do_iret`): the guest kernel pushes a `struct iret_context`
//! and asks the hypervisor to return through it, to its own kernel or to a user process.
#![forbid(unsafe_code)]

use hypercall_abi::arch::{IretContext, VGCF_IN_SYSCALL};

use super::{is_canonical, rflags, GuestMode};

/// The state `iret` returns to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IretReturn {
    /// `rip`, canonical.
    pub rip: u64,
    /// `cs`, RPL 3.
    pub cs: u16,
    /// Sanitised `rflags`: IOPL 0, VM 0, IF 1, bit 1 set, only defined bits.
    pub rflags: u64,
    /// `rsp`, canonical.
    pub rsp: u64,
    /// `ss`, RPL 3.
    pub ss: u16,
    /// `rax` (the hypercall's return value, so the guest sees its own `rax`).
    pub rax: u64,
    /// `rcx` and `r11` to restore; `None` with `VGCF_in_syscall`, when the guest accepts
    /// their loss and the machine may return with `sysret`.
    pub rcx_r11: Option<(u64, u64)>,
    /// New `evtchn_upcall_mask`: the inverse of the frame's IF.
    pub upcall_mask: u8,
    /// The guest mode returned to; `User` from `Kernel` means the machine switches to the
    /// user page table and user GS base (Xen's `toggle_guest_mode`).
    pub mode: GuestMode,
    /// Virtual IOPL bits from the frame, for a guest with `VMASST_TYPE_architectural_iopl`.
    pub iopl: u64,
}

/// Why the frame was refused; the machine crashes the domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IretError {
    /// Returning to user mode with no user page table (Xen crashes the domain too).
    NoUserPageTable,
    /// `rip` is not canonical (`iretq` or `sysret` would fault in the hypervisor).
    NonCanonical,
}

/// Decodes and sanitises the frame the guest pushed (read from its `rsp` by the machine).
///
/// As in Xen: `cs & 3 == 3` returns to user mode (the bounce frame clears the RPL of a
/// kernel-mode `cs`); selectors get RPL 3 forced; `rflags` loses IOPL and VM and gains IF;
/// the event mask comes from the frame's IF; without `VGCF_in_syscall` `rcx` and `r11` are
/// restored. A non-canonical `rsp` is the guest's business, as in Xen (`iretq` loads it as
/// it is; the guest's next push faults in the guest). Beyond Xen, a non-canonical `rip` is
/// refused here.
///
/// Selectors are not looked up, as in Xen: whether `cs` and `ss` can be loaded is decided
/// by the CPU's own checks when `iretq` returns to the guest, and a refusal there (an empty
/// or hypervisor descriptor, a null `ss`) enters the guest's failsafe callback, or crashes
/// the domain that has none, never the machine (the fixup in entry.S, `kernel::iret_fault`).
pub fn decode_iret(ctx: &IretContext, has_user_page_table: bool) -> Result<IretReturn, IretError> {
    let mode = if ctx.cs & 3 == 3 {
        GuestMode::User
    } else {
        GuestMode::Kernel
    };
    if mode == GuestMode::User && !has_user_page_table {
        return Err(IretError::NoUserPageTable);
    }
    if !is_canonical(ctx.rip) {
        return Err(IretError::NonCanonical);
    }
    // Only the low 16 bits are the selector (Xen's do_iret keeps just those): a bounce
    // frame's cs slot carries the saved upcall mask in bits 32..39, and guests hand the
    // frame back as it was.
    let cs = ctx.cs as u16 | 3;
    let ss = ctx.ss as u16 | 3;
    let rflags_out =
        (ctx.rflags & rflags::ALL & !(rflags::IOPL | rflags::VM)) | rflags::IF | rflags::MBS;
    Ok(IretReturn {
        rip: ctx.rip,
        cs,
        rflags: rflags_out,
        rsp: ctx.rsp,
        ss,
        rax: ctx.rax,
        rcx_r11: (ctx.flags & VGCF_IN_SYSCALL == 0).then_some((ctx.rcx, ctx.r11)),
        upcall_mask: u8::from(ctx.rflags & rflags::IF == 0),
        mode,
        iopl: ctx.rflags & rflags::IOPL,
    })
}
