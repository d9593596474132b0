//! Guest kernel mode and guest user mode (Xen's `TF_kernel_mode` and `toggle_guest_mode`),
//! the portable half: which page table and which GS base belong to a mode, and where a
//! `syscall` goes.
//!
//! A 64-bit PV guest runs both its kernel and its processes in hardware ring 3 with the
//! same flat selectors; only the vCPU's mode tells them apart. Kernel mode runs on the
//! kernel base pointer (`MMUEXT_NEW_BASEPTR`) with the kernel GS base; user mode on the
//! user base pointer (`MMUEXT_NEW_USER_BASEPTR`) with the user GS base. The `iret`
//! hypercall with an RPL-3 `cs` enters user mode; any bounce (exception, event, syscall)
//! from user mode returns to kernel mode first and puts its frame on the kernel stack
//! registered with `stack_switch`. The FS base is not switched (Xen leaves it to the
//! guest kernel).
#![forbid(unsafe_code)]

use super::bounce::{exception, syscall_callback, BounceRequest};
use super::callbacks::Callbacks;
use super::table::TrapTable;
use super::{vector, GuestMode};

impl GuestMode {
    /// The other mode (`toggle_guest_mode`).
    pub fn toggled(self) -> GuestMode {
        match self {
            GuestMode::Kernel => GuestMode::User,
            GuestMode::User => GuestMode::Kernel,
        }
    }
}

/// Machine frame of the top-level table a vCPU in `mode` runs on (Xen's `update_cr3`).
pub fn page_table_base(mode: GuestMode, kernel_base: u64, user_base: u64) -> u64 {
    match mode {
        GuestMode::Kernel => kernel_base,
        GuestMode::User => user_base,
    }
}

/// A vCPU's two GS bases. The one of the running mode lives in the CPU while the vCPU
/// runs; the other waits here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GsBases {
    /// GS base of guest kernel mode (`SEGBASE_GS_KERNEL`).
    pub kernel: u64,
    /// GS base of guest user mode (`SEGBASE_GS_USER`).
    pub user: u64,
}

impl GsBases {
    /// The base of `mode`.
    pub fn of(&self, mode: GuestMode) -> u64 {
        match mode {
            GuestMode::Kernel => self.kernel,
            GuestMode::User => self.user,
        }
    }

    /// Records `value` as the base of `mode`.
    pub fn set(&mut self, mode: GuestMode, value: u64) {
        match mode {
            GuestMode::Kernel => self.kernel = value,
            GuestMode::User => self.user = value,
        }
    }

    /// Toggles from `mode`, whose live base (read from the CPU) is `live`: records it and
    /// returns the base the CPU must load for the other mode.
    pub fn toggle(&mut self, mode: GuestMode, live: u64) -> u64 {
        self.set(mode, live);
        self.of(mode.toggled())
    }
}

/// Where a `syscall` from the guest goes (Xen's `lstar_enter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallRoute {
    /// From kernel mode: a hypercall.
    Hypercall,
    /// From user mode: switch to kernel mode and bounce into the syscall callback, resuming
    /// after the `syscall` (its `rcx`); the handler starts with DF clear, Xen's fixed
    /// virtual `SYSCALL_MASK`.
    Callback(BounceRequest),
    /// From user mode with no syscall callback: Xen (since 4.10) raises #UD at the
    /// `syscall` instruction itself (rip moved back over it), delivered through the trap
    /// table like any exception; DF is left alone.
    InvalidOpcode(BounceRequest),
}

/// Decides where a `syscall` from a vCPU in `mode` goes.
pub fn route_syscall(mode: GuestMode, callbacks: &Callbacks, table: &TrapTable) -> SyscallRoute {
    if mode == GuestMode::Kernel {
        return SyscallRoute::Hypercall;
    }
    let request = syscall_callback(callbacks);
    if request.handler != 0 {
        SyscallRoute::Callback(request)
    } else {
        SyscallRoute::InvalidOpcode(exception(table, vector::UD, 0, 0, GuestMode::User).request)
    }
}

#[cfg(test)]
mod tests {
    use hypercall_abi::arch::TrapInfo;
    use hypercall_abi::callback::CALLBACKTYPE_SYSCALL;
    use hypercall_abi::layout::FLAT_KERNEL_CS;

    use super::*;
    use crate::traps::{CallbackRegister, CALLBACKF_MASK_EVENTS};

    const SYSCALL_HANDLER: u64 = 0xffff_ffff_8100_2000;
    const UD_HANDLER: u64 = 0xffff_ffff_8100_3000;

    fn syscall_reg(flags: u16, address: u64) -> CallbackRegister {
        CallbackRegister { kind: CALLBACKTYPE_SYSCALL as u16, flags, _pad: 0, address }
    }

    #[test]
    fn toggling_twice_is_the_identity_and_picks_the_mode_base() {
        for m in [GuestMode::Kernel, GuestMode::User] {
            assert_ne!(m.toggled(), m);
            assert_eq!(m.toggled().toggled(), m);
        }
        assert_eq!(GuestMode::default(), GuestMode::Kernel, "vCPUs start in kernel mode");
        assert_eq!(page_table_base(GuestMode::Kernel, 0x100, 0x200), 0x100);
        assert_eq!(page_table_base(GuestMode::User, 0x100, 0x200), 0x200);
    }

    #[test]
    fn gs_toggle_keeps_the_live_base_of_the_mode_left() {
        let mut gs = GsBases { kernel: 0xffff_8000_0000_0000, user: 0x7000 };
        // Kernel mode changed its base while running (the CPU holds 0xffff_8000_0000_1000):
        // going to user mode records it and loads the user base.
        assert_eq!(gs.toggle(GuestMode::Kernel, 0xffff_8000_0000_1000), 0x7000);
        assert_eq!(gs.kernel, 0xffff_8000_0000_1000);
        // User mode's live base is recorded on the way back; the kernel's comes back.
        assert_eq!(gs.toggle(GuestMode::User, 0x9000), 0xffff_8000_0000_1000);
        assert_eq!(gs, GsBases { kernel: 0xffff_8000_0000_1000, user: 0x9000 });
        gs.set(GuestMode::User, 0x1234);
        assert_eq!((gs.of(GuestMode::User), gs.of(GuestMode::Kernel)), (0x1234, 0xffff_8000_0000_1000));
    }

    #[test]
    fn syscall_from_kernel_mode_is_a_hypercall_whatever_is_registered() {
        let mut cb = Callbacks::default();
        let mut t = TrapTable::new();
        assert_eq!(route_syscall(GuestMode::Kernel, &cb, &t), SyscallRoute::Hypercall);
        cb.register(&mut t, &syscall_reg(0, SYSCALL_HANDLER)).unwrap();
        assert_eq!(route_syscall(GuestMode::Kernel, &cb, &t), SyscallRoute::Hypercall);
    }

    #[test]
    fn syscall_from_user_mode_enters_the_callback_masking_as_registered() {
        let mut cb = Callbacks::default();
        let mut t = TrapTable::new();
        cb.register(&mut t, &syscall_reg(0, SYSCALL_HANDLER)).unwrap();
        assert_eq!(
            route_syscall(GuestMode::User, &cb, &t),
            SyscallRoute::Callback(BounceRequest { handler: SYSCALL_HANDLER, mask_events: false, error_code: None })
        );
        cb.register(&mut t, &syscall_reg(CALLBACKF_MASK_EVENTS, SYSCALL_HANDLER)).unwrap();
        assert_eq!(
            route_syscall(GuestMode::User, &cb, &t),
            SyscallRoute::Callback(BounceRequest { handler: SYSCALL_HANDLER, mask_events: true, error_code: None })
        );
    }

    #[test]
    fn syscall_from_user_mode_without_a_callback_is_an_invalid_opcode() {
        let cb = Callbacks::default();
        let mut t = TrapTable::new();
        // No #UD handler either: the request has none, and the bounce crashes the domain.
        assert_eq!(
            route_syscall(GuestMode::User, &cb, &t),
            SyscallRoute::InvalidOpcode(BounceRequest { handler: 0, mask_events: false, error_code: None })
        );
        t.install(&TrapInfo::new(vector::UD, 0, true, FLAT_KERNEL_CS, UD_HANDLER)).unwrap();
        assert_eq!(
            route_syscall(GuestMode::User, &cb, &t),
            SyscallRoute::InvalidOpcode(BounceRequest { handler: UD_HANDLER, mask_events: true, error_code: None })
        );
    }
}
