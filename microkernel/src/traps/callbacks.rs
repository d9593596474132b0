//! Callback registrations: `callback_op` and the older `set_callbacks` (Xen's
//! `pv/callback.c`), 64-bit guests only.
#![forbid(unsafe_code)]

use hypercall_abi::arch::{TrapInfo, VGCF_FAILSAFE_DISABLES_EVENTS, VGCF_SYSCALL_DISABLES_EVENTS};
use hypercall_abi::callback::{
    CALLBACKOP_REGISTER, CALLBACKOP_UNREGISTER, CALLBACKTYPE_EVENT, CALLBACKTYPE_FAILSAFE,
    CALLBACKTYPE_NMI, CALLBACKTYPE_SYSCALL, CALLBACKTYPE_SYSCALL32, CALLBACKTYPE_SYSENTER,
};
use hypercall_abi::errno::Errno;
use hypercall_abi::layout::FLAT_KERNEL_CS;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::table::TrapTable;
use super::{is_guest_address, vector};
use crate::guest_access::{read_guest, GuestMemory};

/// `CALLBACKF_mask_events`: entering the callback masks event delivery.
pub const CALLBACKF_MASK_EVENTS: u16 = 1 << 0;

/// `nmi_op` commands (Xen's `xen/include/public/nmi.h`).
pub const XENNMI_REGISTER_CALLBACK: u32 = 0;
/// See [`XENNMI_REGISTER_CALLBACK`].
pub const XENNMI_UNREGISTER_CALLBACK: u32 = 1;

/// `struct callback_register` (x86_64: `xen_callback_t` is a plain address).
///
/// Kept here until `hypercall-abi/src/callback.rs` grows its argument structs.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct CallbackRegister {
    /// `CALLBACKTYPE_*`.
    pub kind: u16,
    /// `CALLBACKF_*`.
    pub flags: u16,
    /// Padding (implicit in C).
    pub _pad: u32,
    /// Entry point.
    pub address: u64,
}

/// `struct callback_unregister`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct CallbackUnregister {
    /// `CALLBACKTYPE_*`.
    pub kind: u16,
    /// Padding (implicit in C).
    pub _pad: u16,
}

const _: () = assert!(core::mem::size_of::<CallbackRegister>() == 16);
const _: () = assert!(core::mem::offset_of!(CallbackRegister, address) == 8);
const _: () = assert!(core::mem::size_of::<CallbackUnregister>() == 4);

/// A vCPU's registered callbacks. An address of 0 means "none": delivering to it crashes
/// the domain, as in Xen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Callbacks {
    /// Event upcall entry point (always entered with events masked).
    pub event: u64,
    /// Failsafe callback: entered when the hypervisor cannot restore guest state.
    pub failsafe: u64,
    /// `syscall` from guest user mode.
    pub syscall: u64,
    /// `syscall` from 32-bit guest user code (stored, as Xen does for 64-bit guests; this
    /// hypervisor runs no compatibility-mode user code yet, so nothing enters it).
    pub syscall32: u64,
    /// `sysenter` from 32-bit guest user code (stored likewise).
    pub sysenter: u64,
    /// Whether entering `syscall32` / `sysenter` masks events (`CALLBACKF_mask_events`).
    pub compat_masks: (bool, bool),
    /// `VGCF_FAILSAFE_DISABLES_EVENTS | VGCF_SYSCALL_DISABLES_EVENTS` as set.
    flags: u64,
}

impl Callbacks {
    /// Whether entering the failsafe callback masks events.
    pub fn failsafe_masks_events(&self) -> bool {
        self.flags & VGCF_FAILSAFE_DISABLES_EVENTS != 0
    }

    /// Whether entering the syscall callback masks events.
    pub fn syscall_masks_events(&self) -> bool {
        self.flags & VGCF_SYSCALL_DISABLES_EVENTS != 0
    }

    /// The `VGCF_*_DISABLES_EVENTS` bits, for a `vcpu_guest_context`.
    pub fn vgc_flags(&self) -> u64 {
        self.flags
    }

    /// Loads callbacks from a `vcpu_guest_context` (its three entry points and flags).
    pub fn load_context(
        &mut self,
        event: u64,
        failsafe: u64,
        syscall: u64,
        vgc_flags: u64,
    ) -> Result<(), Errno> {
        Self::check_all(event, failsafe, syscall)?;
        self.event = event;
        self.failsafe = failsafe;
        self.syscall = syscall;
        self.flags = vgc_flags & (VGCF_FAILSAFE_DISABLES_EVENTS | VGCF_SYSCALL_DISABLES_EVENTS);
        Ok(())
    }

    fn check(address: u64) -> Result<(), Errno> {
        // Xen checks only canonicality; the hypervisor slice is refused too because a
        // guest can never run there and a bounce into it would fault in the hypervisor's
        // own range.
        if address != 0 && !is_guest_address(address) {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    fn check_all(event: u64, failsafe: u64, syscall: u64) -> Result<(), Errno> {
        Self::check(event)?;
        Self::check(failsafe)?;
        Self::check(syscall)
    }

    fn set_flag(&mut self, bit: u64, on: bool) {
        if on {
            self.flags |= bit;
        } else {
            self.flags &= !bit;
        }
    }

    /// `CALLBACKOP_register`. The NMI callback lives in the trap table's vector 2, as in
    /// Xen. The 32-bit entry points (`syscall32`, `sysenter`) are stored with their flag, as
    /// Xen does for 64-bit guests (Linux registers them at boot); the deprecated sysenter
    /// type (3) and unknown types are `ENOSYS`.
    pub fn register(&mut self, table: &mut TrapTable, reg: &CallbackRegister) -> Result<(), Errno> {
        Self::check(reg.address)?;
        let masks = reg.flags & CALLBACKF_MASK_EVENTS != 0;
        match u32::from(reg.kind) {
            CALLBACKTYPE_EVENT => self.event = reg.address,
            CALLBACKTYPE_FAILSAFE => {
                self.failsafe = reg.address;
                self.set_flag(VGCF_FAILSAFE_DISABLES_EVENTS, masks);
            }
            CALLBACKTYPE_SYSCALL => {
                self.syscall = reg.address;
                self.set_flag(VGCF_SYSCALL_DISABLES_EVENTS, masks);
            }
            CALLBACKTYPE_SYSCALL32 => {
                self.syscall32 = reg.address;
                self.compat_masks.0 = masks;
            }
            CALLBACKTYPE_SYSENTER => {
                self.sysenter = reg.address;
                self.compat_masks.1 = masks;
            }
            CALLBACKTYPE_NMI => {
                table.install(&TrapInfo::new(
                    vector::NMI,
                    0,
                    true,
                    FLAT_KERNEL_CS,
                    reg.address,
                ))?;
            }
            _ => return Err(Errno::ENOSYS),
        }
        Ok(())
    }

    /// `CALLBACKOP_unregister`: only the NMI callback can be removed (`EINVAL` for the
    /// others, `ENOSYS` for unknown types), as in Xen.
    pub fn unregister(
        &mut self,
        table: &mut TrapTable,
        unreg: &CallbackUnregister,
    ) -> Result<(), Errno> {
        match u32::from(unreg.kind) {
            CALLBACKTYPE_NMI => {
                let empty = TrapInfo::new(vector::NMI, 0, false, FLAT_KERNEL_CS, 0);
                table.install(&empty)?;
                Ok(())
            }
            CALLBACKTYPE_EVENT | CALLBACKTYPE_FAILSAFE | CALLBACKTYPE_SYSCALL | CALLBACKTYPE_SYSCALL32 | CALLBACKTYPE_SYSENTER => {
                Err(Errno::EINVAL)
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    /// The `callback_op` hypercall: `cmd` and the guest address of its argument.
    pub fn callback_op(
        &mut self,
        table: &mut TrapTable,
        mem: &mut impl GuestMemory,
        cmd: u32,
        arg: u64,
    ) -> Result<(), Errno> {
        match cmd {
            CALLBACKOP_REGISTER => {
                let reg: CallbackRegister = read_guest(mem, arg)?;
                self.register(table, &reg)
            }
            CALLBACKOP_UNREGISTER => {
                let unreg: CallbackUnregister = read_guest(mem, arg)?;
                self.unregister(table, &unreg)
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    /// `nmi_op(cmd, arg)`, the older NMI registration, as Xen's `do_nmi_op`:
    /// `XENNMI_register_callback` (0) reads `{handler_address, pad}` and registers it as
    /// `CALLBACKTYPE_nmi` does; `XENNMI_unregister_callback` (1) removes it; others `ENOSYS`.
    pub fn nmi_op(&mut self, table: &mut TrapTable, mem: &mut impl GuestMemory, cmd: u32, arg: u64) -> Result<(), Errno> {
        match cmd {
            XENNMI_REGISTER_CALLBACK => {
                let cb: [u64; 2] = read_guest(mem, arg)?;
                let reg = CallbackRegister { kind: CALLBACKTYPE_NMI as u16, flags: 0, _pad: 0, address: cb[0] };
                self.register(table, &reg)
            }
            XENNMI_UNREGISTER_CALLBACK => {
                self.unregister(table, &CallbackUnregister { kind: CALLBACKTYPE_NMI as u16, _pad: 0 })
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    /// The older `set_callbacks(event, failsafe, syscall)` hypercall: all three, neither
    /// masking flag. Xen ignores a bad address and returns 0; here all three are checked
    /// first and nothing changes unless all pass.
    pub fn set_callbacks(&mut self, event: u64, failsafe: u64, syscall: u64) -> Result<(), Errno> {
        Self::check_all(event, failsafe, syscall)?;
        self.event = event;
        self.failsafe = failsafe;
        self.syscall = syscall;
        self.flags = 0;
        Ok(())
    }
}
