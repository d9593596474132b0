//! A guest's other vCPUs (Xen's `vcpu_op`, as Linux's `cpu_initialize_context` and
//! `xen_cpu_up` use it) and the IPIs between them (`EVTCHNOP_bind_ipi`).
//!
//! [`start`] brings vCPU `n` up running a function of yours on a stack of its own, in the
//! kernel's address space: it builds a `vcpu_guest_context` (flat kernel selectors, `rdi`
//! = the vCPU, `rsi` = your argument, the boot page table), gives it with
//! `VCPUOP_initialise` and says `VCPUOP_up`. The new vCPU starts with its event upcalls
//! masked (its `vcpu_info` in the shared page, set before it runs) and no trap table or
//! callbacks of its own: it waits on ports with [`crate::events::poll`], which needs
//! neither, and IPIs reach it on a port bound to it with [`bind_ipi`].

use alloc::alloc::{alloc_zeroed, Layout};
use alloc::boxed::Box;

use hypercall_abi::arch::VcpuGuestContext;
use hypercall_abi::errno::Errno;
use hypercall_abi::event_channel::{EvtchnBindIpi, EVTCHNOP_BIND_IPI};
use hypercall_abi::vcpu::{VCPUOP_DOWN, VCPUOP_INITIALISE, VCPUOP_IS_UP, VCPUOP_UP};
use hypercall_abi::Hypercall;
use zerocopy::FromZeros;

use crate::hypercall::hypercall_via_page;
use crate::mm::xen::GuestMm;
use hypercall_abi::layout::{FLAT_KERNEL_CS, FLAT_KERNEL_SS64 as FLAT_KERNEL_SS};

/// What a secondary vCPU runs: `entry(vcpu, arg)`, never returning (end it with [`down`]).
pub type Entry = extern "C" fn(u64, u64) -> !;

fn vcpu_op(cmd: u32, vcpu: u32, arg: u64) -> i64 {
    // SAFETY: vcpu_op reads at most the argument the caller passes by address (a live
    // value of the wrappers below) and writes nothing here.
    unsafe { hypercall_via_page(Hypercall::VcpuOp as u64, u64::from(cmd), u64::from(vcpu), arg, 0, 0) }
}

fn check(ret: i64) -> Result<i64, Errno> {
    match Errno::from_ret(ret) {
        Some(e) => Err(e),
        None => Ok(ret),
    }
}

/// `VCPUOP_is_up`.
pub fn is_up(vcpu: u32) -> Result<bool, Errno> {
    check(vcpu_op(VCPUOP_IS_UP, vcpu, 0)).map(|r| r != 0)
}

/// `VCPUOP_up`: `EINVAL` if it has no state yet.
pub fn up(vcpu: u32) -> Result<(), Errno> {
    check(vcpu_op(VCPUOP_UP, vcpu, 0)).map(|_| ())
}

/// `VCPUOP_down`: `EINVAL` for the domain's last vCPU up. A vCPU taking itself down stops
/// here until brought up again.
pub fn down(vcpu: u32) -> Result<(), Errno> {
    check(vcpu_op(VCPUOP_DOWN, vcpu, 0)).map(|_| ())
}

/// `VCPUOP_initialise` with `ctxt` as it is: `EEXIST` if the vCPU has a state.
pub fn initialise(vcpu: u32, ctxt: &VcpuGuestContext) -> Result<(), Errno> {
    check(vcpu_op(VCPUOP_INITIALISE, vcpu, ctxt as *const VcpuGuestContext as u64)).map(|_| ())
}

/// `EVTCHNOP_bind_ipi`: a port of this domain whose events go to `vcpu` (masked, as
/// every port: poll it, or give it a handler and unmask it on that vCPU).
pub fn bind_ipi(vcpu: u32) -> Result<u32, Errno> {
    let mut arg = EvtchnBindIpi { vcpu, port: 0 };
    // SAFETY: EVTCHNOP_bind_ipi reads and writes `arg`, a live local.
    let ret = unsafe { hypercall_via_page(Hypercall::EventChannelOp as u64, u64::from(EVTCHNOP_BIND_IPI), (&raw mut arg) as u64, 0, 0, 0) };
    check(ret).map(|_| arg.port)
}

/// Brings `vcpu` up running `entry(vcpu, arg)` on a new stack of `stack_bytes` (taken from
/// the heap for good), in the boot page table, its upcalls masked.
pub fn start(mm: &GuestMm, vcpu: u32, entry: Entry, arg: u64, stack_bytes: usize) -> Result<(), Errno> {
    start_with_gdt(mm, vcpu, entry, arg, stack_bytes, &[], 0)
}

/// As [`start`], the vCPU's GDT given in its context (as Linux's `cpu_initialize_context`
/// does): `entries` descriptors in `gdt_mfns` (one machine frame per 512, not mapped
/// writable anywhere: the hypervisor takes them as descriptor tables), at most 16 frames.
pub fn start_with_gdt(mm: &GuestMm, vcpu: u32, entry: Entry, arg: u64, stack_bytes: usize, gdt_mfns: &[u64], entries: u32) -> Result<(), Errno> {
    if gdt_mfns.len() > 16 {
        return Err(Errno::EINVAL);
    }
    let layout = Layout::from_size_align(stack_bytes.max(4096), 16).map_err(|_| Errno::EINVAL)?;
    // SAFETY: a non-zero size; the stack is kept for good (the vCPU may run on it forever).
    let stack = unsafe { alloc_zeroed(layout) };
    if stack.is_null() {
        return Err(Errno::ENOMEM);
    }
    let l4 = mm.boot_l4().mfn;
    crate::events::set_upcall_mask_of(vcpu as usize, true);
    let mut c = Box::new(VcpuGuestContext::new_zeroed());
    let top = (stack as u64 + layout.size() as u64) & !15;
    let r = &mut c.user_regs;
    r.rip = entry as usize as u64;
    // As after a `call`: the return address slot below a 16-byte boundary.
    r.rsp = top - 8;
    r.rdi = u64::from(vcpu);
    r.rsi = arg;
    r.cs = FLAT_KERNEL_CS;
    r.ss = FLAT_KERNEL_SS;
    r.rflags = 0x200;
    c.ctrlreg[3] = l4.0 << 12;
    c.kernel_ss = u64::from(FLAT_KERNEL_SS);
    c.kernel_sp = top;
    c.gdt_frames[..gdt_mfns.len()].copy_from_slice(gdt_mfns);
    c.gdt_ents = u64::from(entries);
    initialise(vcpu, &c)?;
    up(vcpu)
}
