//! The bounce frame: how an exception, event upcall or callback enters the guest kernel
//! (Xen's `pv_inject_event`, `pv_inject_callback` and `create_bounce_frame`).
//!
//! The frame, lowest address first, is `rcx, r11, [error code,] rip, cs, rflags, rsp, ss`,
//! each 8 bytes, below the guest kernel stack rounded down to 16 bytes. The `cs` slot
//! carries the interrupted selector in bits 0..15 (RPL cleared when the guest kernel was
//! interrupted, so the handler can tell) and the vCPU's event mask at the time in bits
//! 32..39; the `rflags` slot carries `IF = !mask`, since the guest's real IF is always on.
#![forbid(unsafe_code)]

use hypercall_abi::errno::Errno;
use hypercall_abi::layout::{FLAT_KERNEL_CS, FLAT_KERNEL_SS};

use super::callbacks::Callbacks;
use super::table::TrapTable;
use super::{handler_entry_rflags, rflags, vector, GuestMode, EXCEPTIONS_WITH_ERROR_CODE, PFEC_USER_MODE};
use crate::guest_access::GuestRange;

/// Register state at the moment the guest was interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptedState {
    /// Interrupted `rip` (for a trap or `int $n`, the instruction after it).
    pub rip: u64,
    /// Interrupted `cs`.
    pub cs: u16,
    /// Interrupted `rflags`.
    pub rflags: u64,
    /// Interrupted `rsp`.
    pub rsp: u64,
    /// Interrupted `ss`.
    pub ss: u16,
    /// `rcx`, saved in the frame so that the return may use `sysret`.
    pub rcx: u64,
    /// `r11`, saved for the same reason.
    pub r11: u64,
}

/// What to bounce into (Xen's `struct trap_bounce`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BounceRequest {
    /// Guest handler; 0 (nothing registered) crashes the domain.
    pub handler: u64,
    /// Mask events on entry (`TBF_INTERRUPT`).
    pub mask_events: bool,
    /// Error code to push (`TBF_EXCEPTION_ERRCODE`), zero-extended to 64 bits.
    pub error_code: Option<u32>,
}

/// An exception to deliver, as worked out from the trap table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExceptionBounce {
    /// What to bounce into.
    pub request: BounceRequest,
    /// For a page fault, the faulting address: the machine stores it as the vCPU's
    /// virtual cr2 and in `vcpu_info.arch.cr2`.
    pub cr2: Option<u64>,
}

/// Slots in the largest frame, the failsafe callback's.
pub(super) const MAX_FRAME_WORDS: usize = 11;

/// The bytes to write below the guest kernel stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BounceFrame {
    pub(super) range: GuestRange,
    pub(super) words: [u64; MAX_FRAME_WORDS],
    pub(super) len: usize,
}

impl BounceFrame {
    /// The frame's 8-byte slots, lowest address first.
    pub fn words(&self) -> &[u64] {
        self.words.get(..self.len).unwrap_or(&[])
    }

    /// The frame as little-endian bytes, lowest address first, and how many of them are
    /// used (56 or 64 for a bounce frame, 88 for a failsafe frame).
    pub fn to_bytes(&self) -> ([u8; MAX_FRAME_WORDS * 8], usize) {
        let mut out = [0u8; MAX_FRAME_WORDS * 8];
        for (chunk, w) in out.chunks_exact_mut(8).zip(self.words()) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        (out, self.len * 8)
    }

    /// Guest address of the frame's first byte: also the handler's `rsp`.
    pub fn addr(&self) -> u64 {
        self.range.addr()
    }

    /// The checked guest range the frame occupies, for `GuestMemory::copy_to_guest`.
    pub fn range(&self) -> GuestRange {
        self.range
    }
}

/// Register state the guest handler starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryState {
    /// The handler.
    pub rip: u64,
    /// `FLAT_KERNEL_CS`.
    pub cs: u16,
    /// Interrupted `rflags` without DF, TF, NT, RF, VM, AC and IOPL, with IF and bit 1 set.
    pub rflags: u64,
    /// The frame's address.
    pub rsp: u64,
    /// `FLAT_KERNEL_SS`.
    pub ss: u16,
}

/// Everything the machine applies after a successful bounce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Write these bytes to the guest (a fault while writing crashes the domain).
    pub frame: BounceFrame,
    /// Enter the guest with this state. `rcx` and `r11` are saved in the frame, so the
    /// return may use `sysret` (Xen's `TRAP_syscall` mark).
    pub entry: EntryState,
    /// The vCPU's new `evtchn_upcall_mask`.
    pub upcall_mask: u8,
    /// The vCPU was in guest user mode: switch to kernel mode (kernel page table, kernel
    /// GS base) before entering, as Xen's `toggle_guest_mode`.
    pub switch_to_kernel: bool,
}

/// Why a bounce could not be made; the machine crashes the domain (Xen's
/// `domain_crash_synchronous`), as the failsafe callback cannot help either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BounceError {
    /// The frame would wrap, leave canonical space or touch the hypervisor slice.
    BadStack,
    /// No handler registered.
    NoHandler,
}

/// Builds the bounce frame for `req`.
///
/// `mode` is the guest mode that was interrupted; the frame goes below `state.rsp` in
/// kernel mode, below `kernel_sp` (the vCPU's registered kernel stack, `stack_switch`)
/// from user mode. `upcall_mask` is `vcpu_info.evtchn_upcall_mask` now; `iopl` is the
/// virtual IOPL bits (12..13) to show in the saved `rflags` when the guest enabled
/// `VMASST_TYPE_architectural_iopl`, else 0.
pub fn create_bounce_frame(
    state: &InterruptedState,
    mode: GuestMode,
    kernel_sp: u64,
    upcall_mask: u8,
    iopl: u64,
    req: &BounceRequest,
) -> Result<Delivery, BounceError> {
    let (stack, saved_cs) = match mode {
        GuestMode::Kernel => (state.rsp, state.cs & !3),
        GuestMode::User => (kernel_sp, state.cs),
    };
    let len = if req.error_code.is_some() { 8 } else { 7 };
    let size = len as u64 * 8;
    let top = stack & !0xf;
    let addr = top.checked_sub(size).ok_or(BounceError::BadStack)?;
    let range = GuestRange::new(addr, size).map_err(|_: Errno| BounceError::BadStack)?;
    if req.handler == 0 {
        return Err(BounceError::NoHandler);
    }

    // The saved rflags is 32 bits wide in Xen (`movl`), its IF the inverse of the mask.
    let mut saved_rflags = state.rflags & 0xffff_ffff & !(rflags::IF | rflags::IOPL);
    if upcall_mask == 0 {
        saved_rflags |= rflags::IF;
    }
    saved_rflags |= iopl & rflags::IOPL;
    let cs_slot = u64::from(saved_cs) | (u64::from(upcall_mask) << 32);

    let mut words = [0u64; MAX_FRAME_WORDS];
    let mut i = 0;
    let mut push = |w: u64| {
        // At most MAX_FRAME_WORDS pushes: the frame has room for all of them.
        if let Some(slot) = words.get_mut(i) {
            *slot = w;
        }
        i += 1;
    };
    push(state.rcx);
    push(state.r11);
    if let Some(ec) = req.error_code {
        push(u64::from(ec));
    }
    push(state.rip);
    push(cs_slot);
    push(saved_rflags);
    push(state.rsp);
    push(u64::from(state.ss));

    let entry_rflags = handler_entry_rflags(state.rflags);
    Ok(Delivery {
        frame: BounceFrame { range, words, len },
        entry: EntryState {
            rip: req.handler,
            cs: FLAT_KERNEL_CS,
            rflags: entry_rflags,
            rsp: addr,
            ss: FLAT_KERNEL_SS,
        },
        upcall_mask: upcall_mask | u8::from(req.mask_events),
        switch_to_kernel: mode == GuestMode::User,
    })
}

/// A hardware exception `vec` (below 32) raised by the guest, as `pv_inject_event`: the
/// handler and masking from the trap table, the error code where the vector has one, and
/// for a page fault `cr2` and the user-mode bit of the error code set from the *guest*
/// mode (the CPU always reports user mode, since the guest kernel runs in ring 3).
pub fn exception(
    table: &TrapTable,
    vec: u8,
    error_code: u32,
    fault_addr: u64,
    mode: GuestMode,
) -> ExceptionBounce {
    let ti = table.entry(vec);
    let has_ec = vec < 32 && EXCEPTIONS_WITH_ERROR_CODE & (1 << vec) != 0;
    let mut ec = error_code;
    let mut cr2 = None;
    if vec == vector::PF {
        cr2 = Some(fault_addr);
        ec &= !PFEC_USER_MODE;
        if mode == GuestMode::User {
            ec |= PFEC_USER_MODE;
        }
    }
    ExceptionBounce {
        request: BounceRequest {
            handler: ti.address,
            mask_events: ti.masks_events(),
            error_code: has_ec.then_some(ec),
        },
        cr2,
    }
}

/// An event upcall (`evtchn_upcall_pending` set and not masked): always masks events.
pub fn event_upcall(callbacks: &Callbacks) -> BounceRequest {
    BounceRequest {
        handler: callbacks.event,
        mask_events: true,
        error_code: None,
    }
}

/// A `syscall` from guest user mode, entering the registered syscall callback
/// (`pv_inject_callback(CALLBACKTYPE_syscall)`); the interrupted `rip` is the instruction
/// after `syscall`, and `rcx`/`r11` are what the CPU left there.
pub fn syscall_callback(callbacks: &Callbacks) -> BounceRequest {
    BounceRequest {
        handler: callbacks.syscall,
        mask_events: callbacks.syscall_masks_events(),
        error_code: None,
    }
}
