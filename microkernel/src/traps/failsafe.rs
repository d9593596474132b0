//! The failsafe callback frame: what the guest kernel gets when the hypervisor cannot
//! load the guest's data segment selectors on the way back (Xen's `load_segments`).
//!
//! The frame, lowest address first, is `rcx, r11, ds, es, fs, gs, rip, cs, rflags, rsp,
//! ss`: the bounce frame with the four selectors the guest must repair, and never an error
//! code. The `cs` slot carries the event mask in bits 32..39 and `rflags` its inverse as
//! IF, as in the bounce frame; unlike there, `rflags` is kept 64 bits wide.
#![forbid(unsafe_code)]

use hypercall_abi::errno::Errno;
use hypercall_abi::layout::{FLAT_KERNEL_CS, FLAT_KERNEL_SS};

use super::bounce::{
    BounceError, BounceFrame, Delivery, EntryState, InterruptedState, MAX_FRAME_WORDS,
};
use super::callbacks::Callbacks;
use super::{handler_entry_rflags, rflags, GuestMode};
use crate::guest_access::GuestRange;

/// The data selectors that failed to load, in the order the frame holds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataSelectors {
    /// `ds`.
    pub ds: u16,
    /// `es`.
    pub es: u16,
    /// `fs`.
    pub fs: u16,
    /// `gs`.
    pub gs: u16,
}

/// Builds the failsafe callback frame. `mode`, `kernel_sp`, `upcall_mask` and `iopl` as
/// for [`super::create_bounce_frame`]. The events mask is set afterwards when the guest
/// registered the failsafe callback with `CALLBACKF_mask_events`.
pub fn create_failsafe_frame(
    state: &InterruptedState,
    mode: GuestMode,
    kernel_sp: u64,
    upcall_mask: u8,
    iopl: u64,
    segs: DataSelectors,
    callbacks: &Callbacks,
) -> Result<Delivery, BounceError> {
    let (stack, saved_cs) = match mode {
        GuestMode::Kernel => (state.rsp, state.cs & !3),
        GuestMode::User => (kernel_sp, state.cs),
    };
    let size = MAX_FRAME_WORDS as u64 * 8;
    let addr = (stack & !0xf)
        .checked_sub(size)
        .ok_or(BounceError::BadStack)?;
    let range = GuestRange::new(addr, size).map_err(|_: Errno| BounceError::BadStack)?;
    if callbacks.failsafe == 0 {
        return Err(BounceError::NoHandler);
    }
    let mut saved_rflags = state.rflags & !(rflags::IF | rflags::IOPL);
    if upcall_mask == 0 {
        saved_rflags |= rflags::IF;
    }
    saved_rflags |= iopl & rflags::IOPL;
    let words = [
        state.rcx,
        state.r11,
        u64::from(segs.ds),
        u64::from(segs.es),
        u64::from(segs.fs),
        u64::from(segs.gs),
        state.rip,
        u64::from(saved_cs) | (u64::from(upcall_mask) << 32),
        saved_rflags,
        state.rsp,
        u64::from(state.ss),
    ];
    let entry_rflags = handler_entry_rflags(state.rflags);
    Ok(Delivery {
        frame: BounceFrame {
            range,
            words,
            len: MAX_FRAME_WORDS,
        },
        entry: EntryState {
            rip: callbacks.failsafe,
            cs: FLAT_KERNEL_CS,
            rflags: entry_rflags,
            rsp: addr,
            ss: FLAT_KERNEL_SS,
        },
        upcall_mask: upcall_mask | u8::from(callbacks.failsafe_masks_events()),
        switch_to_kernel: mode == GuestMode::User,
    })
}
