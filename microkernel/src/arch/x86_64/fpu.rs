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
    // SAFETY: CR0.TS only decides whether the next FPU instruction raises #NM; the
    // microkernel runs no FPU instruction except fxsave/fxrstor, done with TS clear below.
    unsafe {
        Cr0::update(|f| f.set(Cr0Flags::TASK_SWITCHED, on));
    }
}

/// Saves the running vCPU's FPU state into `save` and loads `load`'s; then sets CR0.TS as
/// the incoming vCPU's virtual TS says.
pub fn switch(save: &mut FpuState, load: &FpuState, load_ts: bool) {
    set_ts(false);
    // SAFETY: both areas are 512 bytes, 16-byte aligned (repr(align(16))), and owned by the
    // vCPUs being switched; TS is clear, so fxsave/fxrstor cannot fault with #NM, and a
    // state produced by fxsave or the default above is always valid for fxrstor.
    unsafe {
        core::arch::asm!(
            "fxsave64 [{s}]",
            "fxrstor64 [{l}]",
            s = in(reg) save.0.as_mut_ptr(),
            l = in(reg) load.0.as_ptr(),
            options(nostack)
        );
    }
    set_ts(load_ts);
}

/// Sets the running vCPU's virtual TS (`fpu_taskswitch`).
pub fn set_task_switched(on: bool) {
    set_ts(on);
}
