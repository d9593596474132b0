//! FPU and SSE state: each vCPU has its own 512-byte `fxsave` area, switched eagerly with
//! the vCPU, so no domain can see another's x87/SSE registers. The guest's lazy switching
//! (`fpu_taskswitch`, Xen's virtual CR0.TS) is honoured by setting the real TS while that
//! vCPU runs, so its next FPU instruction raises #NM, which goes to the guest's handler.
//! The microkernel itself never touches these registers (it is built without SSE).

use x86_64::registers::control::{Cr0, Cr0Flags};

/// A vCPU's x87/SSE state in `fxsave` format.
#[repr(C, align(16))]
#[derive(Clone, Debug)]
pub struct FpuState(pub [u8; 512]);

impl Default for FpuState {
    /// The state after `fninit` plus the default MXCSR: what a fresh vCPU starts with.
    fn default() -> Self {
        let mut a = [0u8; 512];
        a[0..2].copy_from_slice(&0x037fu16.to_le_bytes()); // FCW
        a[24..28].copy_from_slice(&0x1f80u32.to_le_bytes()); // MXCSR
        a[28..32].copy_from_slice(&0xffffu32.to_le_bytes()); // MXCSR_MASK (ignored on load)
        FpuState(a)
    }
}

fn set_ts(on: bool) {
    // A CR0 write is costly under emulation (and serialising on hardware): skip it when TS
    // already has the wanted value, as on most switches between guests that do not use
    // `fpu_taskswitch`.
    if Cr0::read().contains(Cr0Flags::TASK_SWITCHED) == on {
        return;
    }
    // SAFETY: CR0.TS only decides whether the next FPU instruction raises #NM; the
    // microkernel runs no FPU instruction except fxsave/fxrstor, done with TS clear below.
    unsafe {
        Cr0::update(|f| f.set(Cr0Flags::TASK_SWITCHED, on));
    }
}

/// Saves the running vCPU's FPU state into its own area `save` (in place: no 512-byte copy
/// through a temporary), leaving TS clear for the [`restore`] that follows.
pub fn save(save: &mut FpuState) {
    set_ts(false);
    // SAFETY: the area is 512 bytes, 16-byte aligned (repr(align(16))), and owned by the
    // outgoing vCPU; TS is clear, so fxsave cannot fault with #NM.
    unsafe {
        core::arch::asm!("fxsave64 [{s}]", s = in(reg) save.0.as_mut_ptr(), options(nostack));
    }
}

/// Loads the incoming vCPU's FPU state from its area `load`; then sets CR0.TS as its
/// virtual TS says.
pub fn restore(load: &FpuState, load_ts: bool) {
    set_ts(false);
    // SAFETY: the area is 512 bytes, 16-byte aligned, owned by the incoming vCPU; TS is
    // clear, so fxrstor cannot fault with #NM, and a state produced by fxsave or the
    // default above is always valid for fxrstor.
    unsafe {
        core::arch::asm!("fxrstor64 [{l}]", l = in(reg) load.0.as_ptr(), options(nostack));
    }
    set_ts(load_ts);
}

/// Sets the running vCPU's virtual TS (`fpu_taskswitch`).
pub fn set_task_switched(on: bool) {
    set_ts(on);
}
