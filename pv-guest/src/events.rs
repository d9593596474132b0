//! Event channels, guest side (guest target only): Xen's x86_64 PV 2-level ABI, as Linux
//! uses it.
//!
//! - [`map_shared_info`] maps the shared info page (its machine address is
//!   `start_info.shared_info`) read-write over a page-aligned page of our .bss, as Mini-OS
//!   does, with `update_va_mapping`.
//! - [`register_callback`] registers the upcall entry stub as the event callback
//!   (`callback_op(CALLBACKOP_register, CALLBACKTYPE_event, CALLBACKF_mask_events)`).
//! - [`init`] does both and unmasks upcalls on vCPU 0 (domains start with them masked).
//! - [`set_handler`] binds a Rust handler to a port; [`mask`], [`unmask`], [`is_pending`],
//!   [`is_masked`] work on a port's bits; [`alloc_unbound`], [`bind_interdomain`],
//!   [`bind_virq`], [`send`], [`close`], [`status`] and [`unmask`] are the
//!   `event_channel_op` calls.
//!
//! The hypervisor enters the callback like an exception handler without error code: at rsp
//! `rcx, r11, rip, cs, rflags, rsp, ss`, with upcalls masked (`evtchn_upcall_mask = 1`). The
//! entry stub saves the other registers, runs the dispatcher and returns through the `iret`
//! hypercall exactly like the trap common path in [`crate::traps`]: pop rcx and r11, push a
//! flags word 0, jump to the page's `iret` stub. `iret` restores the upcall mask from the
//! frame's saved IF.
//!
//! The dispatcher is Linux's 2-level upcall: clear `evtchn_upcall_pending`, take the
//! selector with `xchg`, and for each selected word each pending and unmasked port: clear
//! its pending bit atomically, then run its handler; repeat while `evtchn_upcall_pending`
//! is set again.

use core::arch::global_asm;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};

use hypercall_abi::callback::{CALLBACKOP_REGISTER, CALLBACKTYPE_EVENT};
use hypercall_abi::errno::Errno;
use hypercall_abi::event_channel::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindPirq, EvtchnBindVirq, EvtchnClose, EvtchnSend,
    EvtchnStatus, EvtchnUnmask, EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_INTERDOMAIN,
    EVTCHNOP_BIND_PIRQ, EVTCHNOP_BIND_VIRQ, EVTCHNOP_CLOSE, EVTCHNOP_SEND, EVTCHNOP_STATUS, EVTCHNOP_UNMASK,
};
use hypercall_abi::hypercall::{Hypercall, HYPERCALL_STUB_SIZE};
use hypercall_abi::mmu::UVMF_INVLPG;
use hypercall_abi::shared_info::{SharedInfo, NR_EVENT_CHANNELS_2L};
use hypercall_abi::start_info::StartInfo;
use hypercall_abi::types::DOMID_SELF;

use crate::hypercall::{check, hypercall_via_page};
use crate::mm::xen::update_va_mapping_raw;
use crate::mm::DATA_RW_FLAGS;

/// Ports of the 2-level ABI.
pub const NR_PORTS: u32 = NR_EVENT_CHANNELS_2L as u32;

/// `CALLBACKF_mask_events`: the hypervisor masks upcalls when it enters the callback.
pub const CALLBACKF_MASK_EVENTS: u16 = 1;

/// `struct callback_register` (16 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CallbackRegister {
    /// `CALLBACKTYPE_*`.
    pub kind: u16,
    /// `CALLBACKF_*`.
    pub flags: u16,
    /// Padding (implicit in C), zero.
    pub pad: u32,
    /// Entry point.
    pub address: u64,
}

const _: () = assert!(core::mem::size_of::<CallbackRegister>() == 16);

/// A port handler; runs in the upcall with upcalls masked, on the interrupted stack.
pub type PortHandler = fn(u32);

/// The page the shared info page is mapped over.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// Its virtual address; its frame is given up when the shared info page is mapped there.
static mut SHARED_INFO_PAGE: Page = Page([0; 4096]);

/// The mapped shared info page (null until [`map_shared_info`]).
static SHARED: AtomicPtr<SharedInfo> = AtomicPtr::new(core::ptr::null_mut());

/// Handlers by port (null: none).
static HANDLERS: [AtomicPtr<()>; NR_EVENT_CHANNELS_2L] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; NR_EVENT_CHANNELS_2L];

/// Events delivered to ports without a handler.
static STRAY: AtomicU64 = AtomicU64::new(0);
/// The last port an event arrived on without a handler (`u32::MAX`: none).
static LAST_STRAY: AtomicU32 = AtomicU32::new(u32::MAX);
/// Upcalls entered.
static UPCALLS: AtomicU64 = AtomicU64::new(0);

// The upcall entry stub: the trap common path's save/restore, without a vector or error
// code, ending in the iret hypercall.
global_asm!(
    concat!(
    r#"
    .section .text.pv_guest_events, "ax", @progbits
    .balign 16
    .globl pv_guest_event_upcall
pv_guest_event_upcall:
    pushq %rax
"#,
    push_regs_after_rax!(),
    r#"
    movq %rsp, %rbp
    andq $-16, %rsp
    cld
    call {dispatch}
    movq %rbp, %rsp
"#,
    pop_regs_rax_rcx_r11!(),
    r#"
    pushq $0
    jmp hypercall_page + {iret_offset}
"#
    ),
    dispatch = sym dispatch,
    iret_offset = const Hypercall::Iret as usize * HYPERCALL_STUB_SIZE,
    options(att_syntax),
);

unsafe extern "C" {
    /// The upcall entry stub.
    static pv_guest_event_upcall: [u8; 16];
}

/// Address of the upcall entry stub.
pub fn upcall_address() -> u64 {
    (&raw const pv_guest_event_upcall) as u64
}

fn shared() -> *mut SharedInfo {
    let p = SHARED.load(Ordering::Acquire);
    assert!(!p.is_null(), "events: shared info page not mapped");
    p
}

/// The shared info page, once mapped.
pub fn shared_info() -> Option<*mut SharedInfo> {
    let p = SHARED.load(Ordering::Acquire);
    (!p.is_null()).then_some(p)
}

fn pending_word(w: usize) -> &'static AtomicU64 {
    // SAFETY: the page stays mapped for good once mapped; the word is 8-aligned and only
    // accessed atomically by us and the hypervisor.
    unsafe { AtomicU64::from_ptr(&raw mut (*shared()).evtchn_pending[w]) }
}

fn mask_word(w: usize) -> &'static AtomicU64 {
    // SAFETY: as for `pending_word`.
    unsafe { AtomicU64::from_ptr(&raw mut (*shared()).evtchn_mask[w]) }
}

fn upcall_pending() -> &'static AtomicU8 {
    // SAFETY: as for `pending_word`.
    unsafe { AtomicU8::from_ptr(&raw mut (*shared()).vcpu_info[0].evtchn_upcall_pending) }
}

fn upcall_mask() -> &'static AtomicU8 {
    // SAFETY: as for `pending_word`.
    unsafe { AtomicU8::from_ptr(&raw mut (*shared()).vcpu_info[0].evtchn_upcall_mask) }
}

/// Masks (or unmasks) event upcalls of vCPU `vcpu` in the shared page (before it runs:
/// a secondary vCPU with no callback of its own). Out of the shared page's range: nothing.
pub fn set_upcall_mask_of(vcpu: usize, masked: bool) {
    // SAFETY: as for `pending_word`; the index is checked against the array.
    let info = unsafe { &raw mut (*shared()).vcpu_info };
    // SAFETY: `info` points at the shared page's vcpu_info array, mapped for good.
    if let Some(v) = unsafe { (*info).get_mut(vcpu) } {
        // SAFETY: a byte of the mapped shared page, only ever accessed atomically.
        unsafe { AtomicU8::from_ptr(&raw mut v.evtchn_upcall_mask) }.store(u8::from(masked), Ordering::SeqCst);
    }
}

fn pending_sel() -> &'static AtomicU64 {
    // SAFETY: as for `pending_word`.
    unsafe { AtomicU64::from_ptr(&raw mut (*shared()).vcpu_info[0].evtchn_pending_sel) }
}

/// Maps the shared info page (machine address `si.shared_info`) read-write and returns
/// its address. Mapping it again is harmless.
pub fn map_shared_info(si: &StartInfo) -> Result<*mut SharedInfo, Errno> {
    let va = (&raw mut SHARED_INFO_PAGE) as u64;
    let mfn = si.shared_info >> 12;
    check(update_va_mapping_raw(
        va,
        (mfn << 12) | DATA_RW_FLAGS,
        UVMF_INVLPG,
    ))?;
    let p = va as *mut SharedInfo;
    SHARED.store(p, Ordering::Release);
    Ok(p)
}

/// `callback_op(CALLBACKOP_register, &arg)`; returns the raw result.
pub fn callback_register_raw(arg: &CallbackRegister) -> i64 {
    // SAFETY: the hypervisor only reads the 16-byte argument.
    unsafe {
        hypercall_via_page(
            Hypercall::CallbackOp as u64,
            u64::from(CALLBACKOP_REGISTER),
            arg as *const CallbackRegister as u64,
            0,
            0,
            0,
        )
    }
}

/// Registers the upcall entry stub as the event callback, upcalls masked on entry.
pub fn register_callback() -> Result<(), Errno> {
    let arg = CallbackRegister {
        kind: CALLBACKTYPE_EVENT as u16,
        flags: CALLBACKF_MASK_EVENTS,
        pad: 0,
        address: upcall_address(),
    };
    check(callback_register_raw(&arg)).map(|_| ())
}

/// Maps the shared info page, masks every port, registers the callback and unmasks
/// upcalls on vCPU 0. Ports then deliver once [`unmask`]ed, as in Linux: bind, set the
/// handler, unmask.
pub fn init(si: &StartInfo) -> Result<(), Errno> {
    map_shared_info(si)?;
    mask_all();
    register_callback()?;
    enable_upcalls();
    Ok(())
}

/// Masks upcalls on vCPU 0 (the virtual `cli`).
pub fn disable_upcalls() {
    upcall_mask().store(1, Ordering::SeqCst);
}

/// Unmasks upcalls on vCPU 0 (the virtual `sti`); if one is already pending, makes a
/// trivial hypercall so the hypervisor delivers it (Linux's `xen_force_evtchn_callback`).
pub fn enable_upcalls() {
    upcall_mask().store(0, Ordering::SeqCst);
    if upcall_pending().load(Ordering::SeqCst) != 0 {
        force_callback();
    }
}

/// Whether upcalls are masked on vCPU 0.
pub fn upcalls_masked() -> bool {
    upcall_mask().load(Ordering::SeqCst) != 0
}

/// A hypercall that does nothing (`xen_version(0)`), on whose return the hypervisor
/// delivers pending upcalls.
pub fn force_callback() {
    // SAFETY: XENVER_version takes no buffer.
    let _ = unsafe { crate::hypercall::xen_version_raw(0, core::ptr::null_mut()) };
}

/// Binds `handler` to `port` (replacing any). Ports beyond the 2-level ABI are refused.
pub fn set_handler(port: u32, handler: PortHandler) -> Result<(), Errno> {
    let slot = HANDLERS.get(port as usize).ok_or(Errno::EINVAL)?;
    slot.store(handler as *mut (), Ordering::Release);
    Ok(())
}

/// Removes `port`'s handler.
pub fn clear_handler(port: u32) {
    if let Some(slot) = HANDLERS.get(port as usize) {
        slot.store(core::ptr::null_mut(), Ordering::Release);
    }
}

fn split(port: u32) -> (usize, u64) {
    ((port / 64) as usize, 1u64 << (port % 64))
}

/// Sets `port`'s mask bit in the shared info page (`lock or`).
pub fn mask(port: u32) {
    let (w, bit) = split(port % NR_PORTS);
    mask_word(w).fetch_or(bit, Ordering::SeqCst);
}

/// Sets every port's mask bit (Linux's `xen_evtchn_mask_all`): a port delivers only once
/// its owner has set a handler and unmasked it.
pub fn mask_all() {
    for w in 0..NR_EVENT_CHANNELS_2L / 64 {
        mask_word(w).store(!0, Ordering::SeqCst);
    }
}

/// Whether `port`'s mask bit is set.
pub fn is_masked(port: u32) -> bool {
    let (w, bit) = split(port % NR_PORTS);
    mask_word(w).load(Ordering::SeqCst) & bit != 0
}

/// Whether `port`'s pending bit is set.
pub fn is_pending(port: u32) -> bool {
    let (w, bit) = split(port % NR_PORTS);
    pending_word(w).load(Ordering::SeqCst) & bit != 0
}

/// Clears `port`'s pending bit (what the upcall dispatcher does before a handler runs): for
/// a guest that takes a port's events with [`poll`] and upcalls masked.
pub fn clear_pending(port: u32) {
    let (w, bit) = split(port % NR_PORTS);
    pending_word(w).fetch_and(!bit, Ordering::SeqCst);
}

/// Events delivered to ports without a handler.
pub fn stray_events() -> u64 {
    STRAY.load(Ordering::Relaxed)
}

/// The last port an event arrived on without a handler, if any.
pub fn last_stray_port() -> Option<u32> {
    let p = LAST_STRAY.load(Ordering::Relaxed);
    (p != u32::MAX).then_some(p)
}

/// A test check: no event arrived on a port without a handler.
pub fn check_no_stray_events() -> crate::testing::Outcome {
    crate::testing::ensure(stray_events() == 0, || {
        alloc::format!("{} stray events, last on port {:?}", stray_events(), last_stray_port())
    })
}

/// Upcalls entered so far.
pub fn upcalls() -> u64 {
    UPCALLS.load(Ordering::Relaxed)
}

/// The upcall dispatcher, called by the entry stub with upcalls masked.
extern "C" fn dispatch() {
    UPCALLS.fetch_add(1, Ordering::Relaxed);
    if SHARED.load(Ordering::Acquire).is_null() {
        return;
    }
    loop {
        upcall_pending().store(0, Ordering::SeqCst);
        let mut sel = pending_sel().swap(0, Ordering::SeqCst);
        while sel != 0 {
            let w = sel.trailing_zeros() as usize;
            sel &= sel - 1;
            loop {
                let pend =
                    pending_word(w).load(Ordering::SeqCst) & !mask_word(w).load(Ordering::SeqCst);
                if pend == 0 {
                    break;
                }
                let b = pend.trailing_zeros();
                // `lock and`: clears the bit atomically, like Linux's `lock btr`.
                pending_word(w).fetch_and(!(1u64 << b), Ordering::SeqCst);
                run_handler(w as u32 * 64 + b);
            }
        }
        if upcall_pending().load(Ordering::SeqCst) == 0 {
            break;
        }
    }
}

fn run_handler(port: u32) {
    let h = HANDLERS[port as usize].load(Ordering::Acquire);
    if h.is_null() {
        STRAY.fetch_add(1, Ordering::Relaxed);
        LAST_STRAY.store(port, Ordering::Relaxed);
        return;
    }
    // SAFETY: only `set_handler` stores into HANDLERS, and only `PortHandler` values.
    let h = unsafe { core::mem::transmute::<*mut (), PortHandler>(h) };
    h(port);
}

/// `event_channel_op(cmd, arg)`; returns the raw result.
///
/// # Safety
/// `arg` must point to the argument struct of `cmd`, which the hypervisor may write.
pub unsafe fn event_channel_op_raw(cmd: u32, arg: *mut u8) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe {
        hypercall_via_page(
            Hypercall::EventChannelOp as u64,
            u64::from(cmd),
            arg as u64,
            0,
            0,
            0,
        )
    }
}

fn op<T>(cmd: u32, arg: &mut T) -> i64 {
    // SAFETY: every caller passes `cmd`'s own argument struct, which we own.
    unsafe { event_channel_op_raw(cmd, (arg as *mut T).cast()) }
}

/// `EVTCHNOP_alloc_unbound` in our domain for `remote_dom` (`DOMID_SELF`: loopback).
pub fn alloc_unbound(remote_dom: u16) -> Result<u32, Errno> {
    let mut arg = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom,
        port: 0,
    };
    check(op(EVTCHNOP_ALLOC_UNBOUND, &mut arg))?;
    Ok(arg.port)
}

/// `EVTCHNOP_alloc_unbound` in domain `dom` for `remote_dom` (privileged when `dom` is
/// another domain): how Xen's toolstack makes a guest's end of a channel to dom0
/// (`dom` = the guest, `remote_dom` = 0), which dom0 then binds with [`bind_interdomain`].
pub fn alloc_unbound_in(dom: u16, remote_dom: u16) -> Result<u32, Errno> {
    let mut arg = EvtchnAllocUnbound {
        dom,
        remote_dom,
        port: 0,
    };
    check(op(EVTCHNOP_ALLOC_UNBOUND, &mut arg))?;
    Ok(arg.port)
}

/// `EVTCHNOP_bind_interdomain` to `remote_dom`'s unbound `remote_port`: the local port.
pub fn bind_interdomain(remote_dom: u16, remote_port: u32) -> Result<u32, Errno> {
    let mut arg = EvtchnBindInterdomain {
        remote_dom,
        _pad: 0,
        remote_port,
        local_port: 0,
    };
    check(op(EVTCHNOP_BIND_INTERDOMAIN, &mut arg))?;
    Ok(arg.local_port)
}

/// `EVTCHNOP_bind_virq`: binds virtual IRQ `virq` on `vcpu` to a new port (masked, as
/// every port after [`init`]: set a handler, then [`unmask`]).
pub fn bind_virq(virq: u32, vcpu: u32) -> Result<u32, Errno> {
    let mut arg = EvtchnBindVirq {
        virq,
        vcpu,
        port: 0,
    };
    check(op(EVTCHNOP_BIND_VIRQ, &mut arg))?;
    Ok(arg.port)
}

/// `EVTCHNOP_bind_pirq`: binds physical IRQ `pirq` (mapped for us with
/// [`crate::physdev::map_gsi`]) to a new port (masked: set a handler, then [`unmask`]).
/// After each event, quieten the device and say [`crate::physdev::eoi`].
pub fn bind_pirq(pirq: u32) -> Result<u32, Errno> {
    let mut arg = EvtchnBindPirq { pirq, flags: 0, port: 0 };
    check(op(EVTCHNOP_BIND_PIRQ, &mut arg))?;
    Ok(arg.port)
}

/// `EVTCHNOP_send`; returns the raw result.
pub fn send_raw(port: u32) -> i64 {
    op(EVTCHNOP_SEND, &mut EvtchnSend { port })
}

/// `EVTCHNOP_send`: notifies `port`'s remote end.
pub fn send(port: u32) -> Result<(), Errno> {
    check(send_raw(port)).map(|_| ())
}

/// `EVTCHNOP_close`; returns the raw result.
pub fn close_raw(port: u32) -> i64 {
    op(EVTCHNOP_CLOSE, &mut EvtchnClose { port })
}

/// `EVTCHNOP_close` (the port's handler is removed too).
pub fn close(port: u32) -> Result<(), Errno> {
    check(close_raw(port))?;
    clear_handler(port);
    Ok(())
}

/// `EVTCHNOP_unmask`; returns the raw result.
pub fn unmask_raw(port: u32) -> i64 {
    op(EVTCHNOP_UNMASK, &mut EvtchnUnmask { port })
}

/// `EVTCHNOP_unmask`: clears `port`'s mask bit; the hypervisor delivers an event that
/// became pending while it was masked.
pub fn unmask(port: u32) -> Result<(), Errno> {
    check(unmask_raw(port)).map(|_| ())
}

/// `SCHEDOP_poll`: sleeps until one of `ports` is pending (masked or not), an upcall is
/// pending, or system time reaches `deadline_ns` (0: no timeout); returns at once if one
/// of them is already pending. Unlike `SCHEDOP_block` it leaves the upcall mask alone, so
/// with upcalls masked it waits for these ports without running handlers; the caller looks
/// at [`is_pending`] afterwards (a return does not say which, or whether the time ran out).
/// At most 128 ports (`-EINVAL` past that, or for a port out of range).
pub fn poll(ports: &[u32], deadline_ns: u64) -> Result<(), Errno> {
    let arg = hypercall_abi::sched::SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: u32::try_from(ports.len()).map_err(|_| Errno::EINVAL)?,
        _pad: 0,
        timeout: deadline_ns,
    };
    // SAFETY: SCHEDOP_poll reads `arg` and the `ports` slice it points to, both live for
    // the call; it writes no guest memory.
    let ret = unsafe {
        hypercall_via_page(
            Hypercall::SchedOp as u64,
            u64::from(hypercall_abi::sched::SCHEDOP_POLL),
            (&raw const arg) as u64,
            0,
            0,
            0,
        )
    };
    check(ret).map(|_| ())
}

/// `EVTCHNOP_status` of our `port`; returns the raw result and the struct.
pub fn status_raw(port: u32) -> (i64, EvtchnStatus) {
    let mut arg = EvtchnStatus {
        dom: DOMID_SELF,
        port,
        ..EvtchnStatus::default()
    };
    let ret = op(EVTCHNOP_STATUS, &mut arg);
    (ret, arg)
}

/// `EVTCHNOP_status` of our `port`.
pub fn status(port: u32) -> Result<EvtchnStatus, Errno> {
    let (ret, st) = status_raw(port);
    check(ret).map(|_| st)
}
