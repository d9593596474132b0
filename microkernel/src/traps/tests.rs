//! Host tests for trap delivery: exact frames and register state, and hostile input.

use alloc::vec;
use alloc::vec::Vec;

use hypercall_abi::arch::{IretContext, TrapInfo, VGCF_IN_SYSCALL, VGCF_SYSCALL_DISABLES_EVENTS};
use hypercall_abi::callback::{
    CALLBACKOP_REGISTER, CALLBACKOP_UNREGISTER, CALLBACKTYPE_EVENT, CALLBACKTYPE_FAILSAFE,
    CALLBACKTYPE_NMI, CALLBACKTYPE_SYSCALL, CALLBACKTYPE_SYSCALL32,
};
use hypercall_abi::errno::Errno;
use hypercall_abi::layout::{
    FLAT_KERNEL_CS, FLAT_KERNEL_SS, FLAT_USER_CS, FLAT_USER_SS, HYPERVISOR_CS, HYPERVISOR_DS,
    HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START,
};
use zerocopy::IntoBytes;

use super::*;
use crate::guest_access::{GuestMemory, GuestRange};

/// Guest memory: one flat window of bytes at `base`.
struct FakeMem {
    base: u64,
    bytes: Vec<u8>,
}

impl FakeMem {
    fn new(base: u64, len: usize) -> Self {
        FakeMem {
            base,
            bytes: vec![0; len],
        }
    }
    fn offset(&self, r: GuestRange) -> Result<usize, Errno> {
        let off = r.addr().checked_sub(self.base).ok_or(Errno::EFAULT)? as usize;
        if off + r.len() as usize > self.bytes.len() {
            return Err(Errno::EFAULT);
        }
        Ok(off)
    }
    fn put(&mut self, addr: u64, data: &[u8]) {
        let off = (addr - self.base) as usize;
        self.bytes[off..off + data.len()].copy_from_slice(data);
    }
}

impl GuestMemory for FakeMem {
    fn copy_from_guest(&mut self, src: GuestRange, buf: &mut [u8]) -> Result<(), Errno> {
        let off = self.offset(src)?;
        buf.copy_from_slice(&self.bytes[off..off + buf.len()]);
        Ok(())
    }
    fn copy_to_guest(&mut self, dst: GuestRange, buf: &[u8]) -> Result<(), Errno> {
        let off = self.offset(dst)?;
        self.bytes[off..off + buf.len()].copy_from_slice(buf);
        Ok(())
    }
}

const HANDLER: u64 = 0xffff_ffff_8100_1000;

fn entry(vector: u8, dpl: u8, mask: bool, address: u64) -> TrapInfo {
    TrapInfo::new(vector, dpl, mask, FLAT_KERNEL_CS, address)
}

fn table_bytes(entries: &[TrapInfo]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.as_bytes().to_vec()).collect()
}

// ---- set_trap_table ----

#[test]
fn set_trap_table_copies_until_the_terminator() {
    let mut mem = FakeMem::new(0x10000, 0x1000);
    let entries = [
        entry(14, 0, true, HANDLER),
        entry(0x80, 3, false, HANDLER + 0x40),
        entry(3, 3, false, HANDLER + 0x80),
        entry(0, 0, false, 0),
        entry(6, 0, false, HANDLER + 0xc0), // after the terminator: never read
    ];
    mem.put(0x10000, &table_bytes(&entries));
    let mut t = TrapTable::new();
    assert_eq!(
        t.set_from_guest(&mut mem, 0x10000),
        Ok(SetTrapTable::Done { installed: 3 })
    );
    assert_eq!(*t.entry(14), entries[0]);
    assert!(t.entry(14).masks_events());
    assert_eq!(t.entry(0x80).dpl(), 3);
    assert_eq!(t.entry(3).address, HANDLER + 0x80);
    assert_eq!(t.entry(6).address, 0);

    // A null table clears everything.
    assert_eq!(
        t.set_from_guest(&mut mem, 0),
        Ok(SetTrapTable::Done { installed: 0 })
    );
    assert_eq!(t, TrapTable::new());
}

/// The flat kernel selector with RPL 0, 1 or 2 is taken and stored with RPL 3, as Xen's
/// `fixup_guest_code_selector` does (Mini-OS and others pass RPL 0).
#[test]
fn set_trap_table_fixes_up_the_selector_rpl() {
    for cs in [FLAT_KERNEL_CS & !3, (FLAT_KERNEL_CS & !3) | 1, (FLAT_KERNEL_CS & !3) | 2, FLAT_KERNEL_CS] {
        let mut mem = FakeMem::new(0x10000, 0x1000);
        mem.put(0x10000, &table_bytes(&[TrapInfo::new(13, 0, false, cs, HANDLER), entry(0, 0, false, 0)]));
        let mut t = TrapTable::new();
        assert!(t.set_from_guest(&mut mem, 0x10000).is_ok(), "cs {cs:#x}");
        assert_eq!((t.entry(13).cs, t.entry(13).address), (FLAT_KERNEL_CS, HANDLER));
    }
    // A selector of the guest's own GDT (Linux's __KERNEL_CS, 0x10) or its LDT: taken with
    // RPL 3, as Xen's guest_gate_selector_okay and fixup do.
    for (cs, stored) in [(0x10u16, 0x13u16), (0xdff8, 0xdffb), (0x0f, 0x0f)] {
        let mut mem = FakeMem::new(0x10000, 0x1000);
        mem.put(0x10000, &table_bytes(&[TrapInfo::new(13, 0, false, cs, HANDLER), entry(0, 0, false, 0)]));
        let mut t = TrapTable::new();
        assert!(t.set_from_guest(&mut mem, 0x10000).is_ok(), "cs {cs:#x}");
        assert_eq!(t.entry(13).cs, stored);
    }
}

#[test]
fn set_trap_table_refuses_bad_entries_keeping_the_earlier_ones() {
    let bad_cs = TrapInfo::new(13, 0, false, HYPERVISOR_CS, HANDLER);
    let non_canonical = entry(13, 0, false, 0x0000_8000_0000_0000);
    let in_slice = entry(13, 0, false, HYPERVISOR_VIRT_START + 0x1000);
    for bad in [bad_cs, non_canonical, in_slice] {
        let mut mem = FakeMem::new(0x10000, 0x1000);
        mem.put(
            0x10000,
            &table_bytes(&[entry(14, 0, true, HANDLER), bad, entry(0, 0, false, 0)]),
        );
        let mut t = TrapTable::new();
        assert_eq!(
            t.set_from_guest(&mut mem, 0x10000),
            Err(TrapTableError {
                installed: 1,
                errno: Errno::EINVAL
            }),
            "{bad:?}"
        );
        assert_eq!(t.entry(14).address, HANDLER);
        assert_eq!(t.entry(13).address, 0);
    }
}

#[test]
fn set_trap_table_faults_and_preempts() {
    // Unreadable second entry.
    let mut mem = FakeMem::new(0x10000, 16);
    mem.put(0x10000, entry(1, 0, false, HANDLER).as_bytes());
    let mut t = TrapTable::new();
    assert_eq!(
        t.set_from_guest(&mut mem, 0x10000),
        Err(TrapTableError {
            installed: 1,
            errno: Errno::EFAULT
        })
    );
    // A table pointing into the hypervisor slice.
    assert_eq!(
        t.set_from_guest(&mut mem, HYPERVISOR_VIRT_START),
        Err(TrapTableError {
            installed: 0,
            errno: Errno::EFAULT
        })
    );
    // A table that never ends stops after one batch with where to continue.
    let n = TRAP_TABLE_BATCH + 4;
    let mut mem = FakeMem::new(0x10000, n * 16);
    let endless: Vec<TrapInfo> = (0..n).map(|i| entry(i as u8, 0, false, HANDLER)).collect();
    mem.put(0x10000, &table_bytes(&endless));
    assert_eq!(
        t.set_from_guest(&mut mem, 0x10000),
        Ok(SetTrapTable::Preempted {
            installed: TRAP_TABLE_BATCH,
            next: 0x10000 + 16 * TRAP_TABLE_BATCH as u64
        })
    );
}

#[test]
fn load_context_is_all_or_nothing() {
    let mut t = TrapTable::new();
    let mut ctx = [TrapInfo::new(0, 0, false, 0, 0); 256];
    ctx[14] = entry(14, 0, true, HANDLER);
    assert_eq!(t.load_context(&ctx), Ok(()));
    assert_eq!(t.entry(14).address, HANDLER);
    let mut bad = ctx;
    bad[3] = entry(4, 3, false, HANDLER); // vector does not match its slot
    assert_eq!(TrapTable::new().load_context(&bad), Err(Errno::EINVAL));
    bad[3] = TrapInfo::new(3, 3, false, HYPERVISOR_CS, HANDLER);
    assert_eq!(t.load_context(&bad), Err(Errno::EINVAL));
    assert_eq!(t.entry(14).address, HANDLER);
}

// ---- callbacks ----

fn reg(kind: u32, flags: u16, address: u64) -> CallbackRegister {
    CallbackRegister {
        kind: kind as u16,
        flags,
        _pad: 0,
        address,
    }
}

#[test]
fn callback_op_registers_each_type() {
    let mut cb = Callbacks::default();
    let mut t = TrapTable::new();
    let mut mem = FakeMem::new(0x20000, 0x100);
    for (i, (kind, flags)) in [
        (CALLBACKTYPE_EVENT, 0),
        (CALLBACKTYPE_FAILSAFE, CALLBACKF_MASK_EVENTS),
        (CALLBACKTYPE_SYSCALL, CALLBACKF_MASK_EVENTS),
        (CALLBACKTYPE_NMI, 0),
    ]
    .into_iter()
    .enumerate()
    {
        let r = reg(kind, flags, HANDLER + 0x100 * i as u64);
        mem.put(0x20000, r.as_bytes());
        assert_eq!(
            cb.callback_op(&mut t, &mut mem, CALLBACKOP_REGISTER, 0x20000),
            Ok(())
        );
    }
    assert_eq!(cb.event, HANDLER);
    assert_eq!(cb.failsafe, HANDLER + 0x100);
    assert_eq!(cb.syscall, HANDLER + 0x200);
    assert!(cb.failsafe_masks_events() && cb.syscall_masks_events());
    assert_eq!(
        *t.entry(2),
        TrapInfo::new(2, 0, true, FLAT_KERNEL_CS, HANDLER + 0x300)
    );

    // Re-registering without the flag clears it.
    assert_eq!(
        cb.register(&mut t, &reg(CALLBACKTYPE_SYSCALL, 0, HANDLER)),
        Ok(())
    );
    assert!(!cb.syscall_masks_events());
    assert_eq!(cb.vgc_flags() & VGCF_SYSCALL_DISABLES_EVENTS, 0);

    // Only NMI can be unregistered.
    let un = CallbackUnregister {
        kind: CALLBACKTYPE_EVENT as u16,
        _pad: 0,
    };
    mem.put(0x20000, un.as_bytes());
    assert_eq!(
        cb.callback_op(&mut t, &mut mem, CALLBACKOP_UNREGISTER, 0x20000),
        Err(Errno::EINVAL)
    );
    let un = CallbackUnregister {
        kind: CALLBACKTYPE_NMI as u16,
        _pad: 0,
    };
    assert_eq!(cb.unregister(&mut t, &un), Ok(()));
    assert_eq!(t.entry(2).address, 0);
    assert_eq!(
        cb.unregister(&mut t, &CallbackUnregister { kind: 99, _pad: 0 }),
        Err(Errno::ENOSYS)
    );
}

#[test]
fn callback_op_hostile_input() {
    let mut cb = Callbacks::default();
    let mut t = TrapTable::new();
    let mut mem = FakeMem::new(0x20000, 0x100);
    for addr in [
        0x0000_8000_0000_0000,
        HYPERVISOR_VIRT_START,
        HYPERVISOR_VIRT_END - 8,
    ] {
        assert_eq!(
            cb.register(&mut t, &reg(CALLBACKTYPE_EVENT, 0, addr)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            cb.register(&mut t, &reg(CALLBACKTYPE_NMI, 0, addr)),
            Err(Errno::EINVAL)
        );
    }
    assert_eq!(cb.register(&mut t, &reg(3, 0, HANDLER)), Err(Errno::ENOSYS), "the deprecated sysenter type");
    assert_eq!(
        cb.register(&mut t, &reg(42, 0, HANDLER)),
        Err(Errno::ENOSYS)
    );
    assert_eq!(
        cb.callback_op(&mut t, &mut mem, 7, 0x20000),
        Err(Errno::ENOSYS)
    );
    assert_eq!(
        cb.callback_op(&mut t, &mut mem, CALLBACKOP_REGISTER, HYPERVISOR_VIRT_START),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        cb.callback_op(&mut t, &mut mem, CALLBACKOP_REGISTER, 0x90000),
        Err(Errno::EFAULT)
    );
    assert_eq!(cb, Callbacks::default());
    assert_eq!(t, TrapTable::new());
}

#[test]
fn set_callbacks_sets_all_three_or_none() {
    let mut cb = Callbacks::default();
    let mut t = TrapTable::new();
    cb.register(
        &mut t,
        &reg(CALLBACKTYPE_FAILSAFE, CALLBACKF_MASK_EVENTS, HANDLER),
    )
    .unwrap();
    assert_eq!(
        cb.set_callbacks(HANDLER, HANDLER + 8, HYPERVISOR_VIRT_START),
        Err(Errno::EINVAL)
    );
    assert_eq!(cb.event, 0);
    assert!(cb.failsafe_masks_events());
    assert_eq!(cb.set_callbacks(HANDLER, HANDLER + 8, HANDLER + 16), Ok(()));
    assert_eq!(
        (cb.event, cb.failsafe, cb.syscall),
        (HANDLER, HANDLER + 8, HANDLER + 16)
    );
    assert!(!cb.failsafe_masks_events());
}

// ---- bounce frame ----

const KSTACK: u64 = 0xffff_ffff_8200_0000;

fn user_state() -> InterruptedState {
    InterruptedState {
        rip: 0x40_1234,
        cs: FLAT_USER_CS,
        rflags: 0x246 | rflags::TF | rflags::AC | rflags::IOPL | (1 << 40),
        rsp: 0x7fff_0000_1008,
        ss: FLAT_USER_SS,
        rcx: 0x1111,
        r11: 0x2222,
    }
}

#[test]
fn page_fault_from_user_mode_goes_to_the_registered_kernel_stack() {
    let mut t = TrapTable::new();
    t.install(&entry(14, 0, true, HANDLER)).unwrap();
    // The CPU reports user mode (ring 3) with a write to a not-present page.
    let ex = exception(&t, 14, 0b110, 0xdead_b000, GuestMode::User);
    assert_eq!(ex.cr2, Some(0xdead_b000));
    assert_eq!(
        ex.request,
        BounceRequest {
            handler: HANDLER,
            mask_events: true,
            error_code: Some(0b110)
        }
    );

    let d = create_bounce_frame(
        &user_state(),
        GuestMode::User,
        KSTACK + 8,
        0,
        0,
        &ex.request,
    )
    .unwrap();
    // Rounded down to 16, minus eight slots.
    assert_eq!(d.frame.addr(), KSTACK - 64);
    assert_eq!(
        d.frame.words(),
        &[
            0x1111,                          // rcx
            0x2222,                          // r11
            0b110,                           // error code
            0x40_1234,                       // rip
            u64::from(FLAT_USER_CS),         // cs, RPL 3 kept: user mode was interrupted; mask 0
            0x246 | rflags::TF | rflags::AC, // rflags: IOPL gone, IF = !mask, 32 bits
            0x7fff_0000_1008,                // rsp
            u64::from(FLAT_USER_SS),         // ss
        ]
    );
    let (bytes, len) = d.frame.to_bytes();
    assert_eq!(len, 64);
    assert_eq!(&bytes[..8], &0x1111u64.to_le_bytes());
    assert_eq!(&bytes[32..40], &[0x33, 0xe0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        d.entry,
        EntryState {
            rip: HANDLER,
            cs: FLAT_KERNEL_CS,
            rflags: 0x246 | (1 << 40),
            rsp: KSTACK - 64,
            ss: FLAT_KERNEL_SS
        }
    );
    assert_eq!(d.upcall_mask, 1);
    assert!(d.switch_to_kernel);
    assert_eq!(d.frame.range(), GuestRange::new(KSTACK - 64, 64).unwrap());
}

#[test]
fn kernel_mode_fault_pushes_below_the_current_stack_with_rpl_cleared_and_mask_saved() {
    let mut t = TrapTable::new();
    t.install(&entry(6, 0, false, HANDLER)).unwrap();
    let ex = exception(&t, 6, 0xffff, 0, GuestMode::Kernel);
    assert_eq!(ex.cr2, None);
    assert_eq!(ex.request.error_code, None, "#UD has no error code");
    let s = InterruptedState {
        rip: HANDLER + 0x500,
        cs: FLAT_KERNEL_CS,
        rflags: 0x202,
        rsp: KSTACK - 0x107,
        ss: FLAT_KERNEL_SS,
        rcx: 7,
        r11: 8,
    };
    // Events already masked when the fault hit.
    let d = create_bounce_frame(&s, GuestMode::Kernel, 0xbad, 1, 0, &ex.request).unwrap();
    assert_eq!(d.frame.addr(), KSTACK - 0x110 - 56);
    assert_eq!(
        d.frame.words(),
        &[
            7,
            8,
            HANDLER + 0x500,
            u64::from(FLAT_KERNEL_CS & !3) | (1 << 32),
            0x002, // IF clear: the mask was set
            KSTACK - 0x107,
            u64::from(FLAT_KERNEL_SS),
        ]
    );
    assert_eq!(d.upcall_mask, 1);
    assert!(!d.switch_to_kernel);
    assert_eq!(d.frame.to_bytes().1, 56);
}

#[test]
fn page_fault_user_bit_follows_guest_mode() {
    let mut t = TrapTable::new();
    t.install(&entry(14, 0, false, HANDLER)).unwrap();
    let ex = exception(&t, 14, 0b111, 0x1000, GuestMode::Kernel);
    assert_eq!(ex.request.error_code, Some(0b011));
    assert!(!ex.request.mask_events);
    let ex = exception(&t, 14, 0b001, 0x1000, GuestMode::User);
    assert_eq!(ex.request.error_code, Some(0b101));
    // #GP, #DF, #SS carry error codes; #DE, #BP do not.
    assert_eq!(
        exception(&t, 13, 0x10, 0, GuestMode::Kernel)
            .request
            .error_code,
        Some(0x10)
    );
    assert_eq!(
        exception(&t, 8, 0, 0, GuestMode::Kernel).request.error_code,
        Some(0)
    );
    assert_eq!(
        exception(&t, 0, 5, 0, GuestMode::Kernel).request.error_code,
        None
    );
    assert_eq!(
        exception(&t, 3, 5, 0, GuestMode::Kernel).request.error_code,
        None
    );
}

#[test]
fn virtual_iopl_is_shown_in_the_saved_rflags() {
    let req = BounceRequest {
        handler: HANDLER,
        mask_events: false,
        error_code: None,
    };
    let d = create_bounce_frame(
        &user_state(),
        GuestMode::User,
        KSTACK,
        0,
        rflags::IOPL,
        &req,
    )
    .unwrap();
    assert_eq!(d.frame.words()[4] & rflags::IOPL, rflags::IOPL);
    assert_eq!(d.entry.rflags & rflags::IOPL, 0);
    assert_eq!(d.upcall_mask, 0);
}

#[test]
fn bounce_refuses_stacks_outside_guest_space() {
    let req = BounceRequest {
        handler: HANDLER,
        mask_events: true,
        error_code: Some(0),
    };
    let mut s = user_state();
    for sp in [
        HYPERVISOR_VIRT_END + 0x30, // frame would dip into the slice
        HYPERVISOR_VIRT_START + 0x1000,
        0x0000_8000_0000_0020, // frame in the non-canonical hole
        0x30,                  // would wrap below zero
    ] {
        assert_eq!(
            create_bounce_frame(&s, GuestMode::User, sp, 0, 0, &req),
            Err(BounceError::BadStack),
            "{sp:#x}"
        );
        s.rsp = sp;
        assert_eq!(
            create_bounce_frame(&s, GuestMode::Kernel, KSTACK, 0, 0, &req),
            Err(BounceError::BadStack),
            "{sp:#x}"
        );
        s = user_state();
    }
    // Just above the slice is fine: the frame fits exactly.
    assert!(create_bounce_frame(&s, GuestMode::User, HYPERVISOR_VIRT_END + 64, 0, 0, &req).is_ok());
    // Just below the slice, the top of the lower half works too.
    assert!(create_bounce_frame(&s, GuestMode::User, 0x0000_8000_0000_0000, 0, 0, &req).is_ok());
}

#[test]
fn bounce_without_a_handler_crashes() {
    let t = TrapTable::new();
    let ex = exception(&t, 13, 0, 0, GuestMode::User);
    assert_eq!(
        create_bounce_frame(&user_state(), GuestMode::User, KSTACK, 0, 0, &ex.request),
        Err(BounceError::NoHandler)
    );
    let cb = Callbacks::default();
    assert_eq!(
        create_bounce_frame(
            &user_state(),
            GuestMode::User,
            KSTACK,
            0,
            0,
            &event_upcall(&cb)
        ),
        Err(BounceError::NoHandler)
    );
}

#[test]
fn event_upcall_and_syscall_callback_requests() {
    let mut cb = Callbacks::default();
    let mut t = TrapTable::new();
    cb.register(&mut t, &reg(CALLBACKTYPE_EVENT, 0, HANDLER))
        .unwrap();
    cb.register(&mut t, &reg(CALLBACKTYPE_SYSCALL, 0, HANDLER + 0x10))
        .unwrap();
    assert_eq!(
        event_upcall(&cb),
        BounceRequest {
            handler: HANDLER,
            mask_events: true,
            error_code: None
        }
    );
    assert_eq!(
        syscall_callback(&cb),
        BounceRequest {
            handler: HANDLER + 0x10,
            mask_events: false,
            error_code: None
        }
    );
    cb.register(
        &mut t,
        &reg(CALLBACKTYPE_SYSCALL, CALLBACKF_MASK_EVENTS, HANDLER + 0x10),
    )
    .unwrap();
    assert!(syscall_callback(&cb).mask_events);
}

// ---- iret ----

fn iret_ctx() -> IretContext {
    IretContext {
        rax: 0xaa,
        r11: 0xbb,
        rcx: 0xcc,
        flags: 0,
        rip: 0x40_2000,
        cs: u64::from(FLAT_USER_CS),
        rflags: 0x246,
        rsp: 0x7fff_0000_2000,
        ss: u64::from(FLAT_USER_SS),
    }
}

#[test]
fn iret_to_user_mode_restores_everything() {
    let r = decode_iret(&iret_ctx(), true).unwrap();
    assert_eq!(
        r,
        IretReturn {
            rip: 0x40_2000,
            cs: FLAT_USER_CS,
            rflags: 0x246,
            rsp: 0x7fff_0000_2000,
            ss: FLAT_USER_SS,
            rax: 0xaa,
            rcx_r11: Some((0xcc, 0xbb)),
            upcall_mask: 0,
            mode: GuestMode::User,
            iopl: 0,
        }
    );
    assert_eq!(
        decode_iret(&iret_ctx(), false),
        Err(IretError::NoUserPageTable)
    );
}

#[test]
fn iret_round_trips_a_kernel_mode_bounce_frame() {
    // The handler pops rcx and r11 and passes the rest back with `iret`.
    let s = InterruptedState {
        rip: HANDLER + 0x500,
        cs: FLAT_KERNEL_CS,
        rflags: 0x286,
        rsp: KSTACK - 0x100,
        ss: FLAT_KERNEL_SS,
        rcx: 7,
        r11: 8,
    };
    let req = BounceRequest {
        handler: HANDLER,
        mask_events: true,
        error_code: None,
    };
    let d = create_bounce_frame(&s, GuestMode::Kernel, 0, 0, 0, &req).unwrap();
    let w = d.frame.words();
    let ctx = IretContext {
        rax: 1,
        r11: w[1],
        rcx: w[0],
        flags: 0,
        rip: w[2],
        cs: w[3],
        rflags: w[4],
        rsp: w[5],
        ss: w[6],
    };
    let r = decode_iret(&ctx, false).unwrap();
    assert_eq!(
        (r.rip, r.cs, r.rsp, r.ss),
        (s.rip, FLAT_KERNEL_CS, s.rsp, FLAT_KERNEL_SS)
    );
    assert_eq!(r.mode, GuestMode::Kernel);
    assert_eq!(r.rflags, 0x286);
    assert_eq!(r.rcx_r11, Some((7, 8)));
    assert_eq!(r.upcall_mask, 0, "the mask saved in the frame comes back");
}

#[test]
fn iret_sanitises_flags_and_masks_from_if() {
    let mut c = iret_ctx();
    c.rflags = 0x046 | rflags::IOPL | rflags::VM | (1 << 40) | rflags::NT;
    c.flags = VGCF_IN_SYSCALL;
    let r = decode_iret(&c, true).unwrap();
    assert_eq!(r.rflags, 0x046 | rflags::NT | rflags::IF);
    assert_eq!(r.upcall_mask, 1);
    assert_eq!(r.rcx_r11, None);
    assert_eq!(r.iopl, rflags::IOPL);
}

#[test]
fn iret_forces_rpl3_and_leaves_loading_to_the_cpu() {
    // RPL 0 on the flat selectors: forced to 3 (and cs RPL 0 means kernel mode).
    let mut c = iret_ctx();
    c.cs = u64::from(FLAT_KERNEL_CS & !3);
    c.ss = u64::from(FLAT_KERNEL_SS & !3);
    let r = decode_iret(&c, false).unwrap();
    assert_eq!(
        (r.cs, r.ss, r.mode),
        (FLAT_KERNEL_CS, FLAT_KERNEL_SS, GuestMode::Kernel)
    );
    // Selectors the CPU will refuse are passed on with RPL 3, as Xen's do_iret: the
    // `iretq` faults and the guest's failsafe callback runs (QEMU scenario iret-failsafe).
    // Never with RPL 0: the return cannot reach ring 0 whatever the descriptor says.
    for (cs, ss) in [
        (u64::from(HYPERVISOR_CS), u64::from(FLAT_USER_SS)),
        (u64::from(FLAT_USER_CS), u64::from(HYPERVISOR_DS)),
        (0, u64::from(FLAT_USER_SS)),
        (u64::from(FLAT_USER_CS), 0xb),
    ] {
        let mut c = iret_ctx();
        c.cs = cs;
        c.ss = ss;
        let r = decode_iret(&c, true).expect("decoded");
        assert_eq!((r.cs, r.ss), (cs as u16 | 3, ss as u16 | 3), "{cs:#x}:{ss:#x}");
    }
}

#[test]
fn iret_ignores_the_bits_above_the_selectors() {
    // A bounce frame's cs slot holds the saved upcall mask in bits 32..39; the guest hands
    // the frame back unchanged.
    let mut c = iret_ctx();
    c.cs = u64::from(FLAT_USER_CS) | (1 << 32) | (1 << 16);
    c.ss = u64::from(FLAT_USER_SS) | (7 << 40);
    let r = decode_iret(&c, true).expect("accepted");
    assert_eq!(r.cs, FLAT_USER_CS | 3);
    assert_eq!(r.ss, FLAT_USER_SS | 3);
}

#[test]
fn iret_refuses_a_non_canonical_rip_and_takes_a_non_canonical_rsp() {
    let mut c = iret_ctx();
    c.rip = 0x0000_8000_0000_0000;
    c.rsp = 0x1000;
    assert_eq!(decode_iret(&c, true), Err(IretError::NonCanonical));
    // As Xen: the stack pointer is the guest's business.
    let mut c = iret_ctx();
    c.rsp = 0xffff_7fff_ffff_f000;
    let r = decode_iret(&c, true).unwrap();
    assert_eq!(r.rsp, 0xffff_7fff_ffff_f000);
}

// ---- int $n ----

#[test]
fn int_n_follows_the_entry_dpl() {
    let mut t = TrapTable::new();
    t.install(&entry(0x80, 3, false, HANDLER)).unwrap();
    t.install(&entry(0x81, 1, true, HANDLER + 8)).unwrap();
    t.install(&entry(0x82, 0, false, HANDLER + 16)).unwrap();
    let gp = |n: u32| (n << 3) | 2;

    let deliver = |v: u8, h: u64, m: bool| SoftInt::Deliver {
        vector: v,
        request: BounceRequest {
            handler: h,
            mask_events: m,
            error_code: None,
        },
    };
    assert_eq!(
        software_interrupt(&t, gp(0x80), GuestMode::User),
        deliver(0x80, HANDLER, false)
    );
    assert_eq!(
        software_interrupt(&t, gp(0x80), GuestMode::Kernel),
        deliver(0x80, HANDLER, false)
    );
    assert_eq!(
        software_interrupt(&t, gp(0x81), GuestMode::Kernel),
        deliver(0x81, HANDLER + 8, true)
    );
    assert_eq!(
        software_interrupt(&t, gp(0x81), GuestMode::User),
        SoftInt::GeneralProtection { error_code: 0x40a }
    );
    assert_eq!(
        software_interrupt(&t, gp(0x82), GuestMode::Kernel),
        SoftInt::GeneralProtection {
            error_code: (0x82 << 3) | 2
        }
    );
    // An empty entry has DPL 0.
    assert_eq!(
        software_interrupt(&t, gp(0x20), GuestMode::Kernel),
        SoftInt::GeneralProtection { error_code: 0x102 }
    );
    // A plain #GP (selector error, or EXT set) is passed through untouched.
    assert_eq!(
        software_interrupt(&t, 0, GuestMode::Kernel),
        SoftInt::GeneralProtection { error_code: 0 }
    );
    assert_eq!(
        software_interrupt(&t, gp(0x80) | 1, GuestMode::Kernel),
        SoftInt::GeneralProtection { error_code: 0x403 }
    );
    assert_eq!(
        software_interrupt(&t, 0xffff_fffa, GuestMode::User),
        SoftInt::GeneralProtection {
            error_code: 0xffff_fffa
        }
    );
    assert!(permit_softint(1, GuestMode::Kernel) && !permit_softint(2, GuestMode::User));
}

#[test]
fn address_predicates() {
    assert!(is_guest_address(0) && is_guest_address(0x0000_7fff_ffff_ffff));
    assert!(!is_guest_address(0x0000_8000_0000_0000));
    assert!(!is_guest_address(HYPERVISOR_VIRT_START) && !is_guest_address(HYPERVISOR_VIRT_END - 1));
    assert!(is_guest_address(HYPERVISOR_VIRT_END) && is_guest_address(u64::MAX));
}

// ---- failsafe ----

#[test]
fn failsafe_frame_layout_and_masking() {
    let mut cb = Callbacks::default();
    let mut t = TrapTable::new();
    let segs = DataSelectors {
        ds: 0x2b,
        es: 0x2b,
        fs: 0,
        gs: 0x63,
    };
    let s = user_state();
    assert_eq!(
        create_failsafe_frame(&s, GuestMode::User, KSTACK, 0, 0, segs, &cb),
        Err(BounceError::NoHandler)
    );
    cb.register(
        &mut t,
        &reg(CALLBACKTYPE_FAILSAFE, CALLBACKF_MASK_EVENTS, HANDLER),
    )
    .unwrap();
    let d = create_failsafe_frame(&s, GuestMode::User, KSTACK + 4, 0, 0, segs, &cb).unwrap();
    assert_eq!(d.frame.addr(), KSTACK - 88);
    assert_eq!(
        d.frame.words(),
        &[
            0x1111,
            0x2222,
            0x2b,
            0x2b,
            0,
            0x63,
            0x40_1234,
            u64::from(FLAT_USER_CS),
            0x246 | rflags::TF | rflags::AC | (1 << 40), // 64 bits kept, IOPL gone
            0x7fff_0000_1008,
            u64::from(FLAT_USER_SS),
        ]
    );
    assert_eq!(d.frame.to_bytes().1, 88);
    assert_eq!(d.entry.rip, HANDLER);
    assert_eq!(d.entry.rsp, KSTACK - 88);
    assert_eq!(d.upcall_mask, 1);
    assert!(d.switch_to_kernel);
    // From kernel mode with events masked: RPL cleared, mask saved, IF clear.
    let k = InterruptedState {
        cs: FLAT_KERNEL_CS,
        rsp: KSTACK - 0x200,
        rflags: 0x202,
        ..s
    };
    let d = create_failsafe_frame(&k, GuestMode::Kernel, 0, 1, 0, segs, &cb).unwrap();
    assert_eq!(
        d.frame.words()[7],
        u64::from(FLAT_KERNEL_CS & !3) | (1 << 32)
    );
    assert_eq!(d.frame.words()[8], 0x002);
    // A kernel stack in the hypervisor slice is refused.
    assert_eq!(
        create_failsafe_frame(
            &s,
            GuestMode::User,
            HYPERVISOR_VIRT_END + 16,
            0,
            0,
            segs,
            &cb
        ),
        Err(BounceError::BadStack)
    );
}

#[test]
fn handlers_start_with_df_and_ac_clear_and_the_frame_keeps_the_interrupted_df() {
    // A guest that runs `std` (and sets AC) before faulting: its handler must not inherit
    // them, while the saved rflags shows them so that `iret` restores them.
    let req = BounceRequest { handler: HANDLER, mask_events: false, error_code: None };
    let mut st = user_state();
    st.rflags |= rflags::DF | rflags::AC | rflags::TF | rflags::NT;
    let d = create_bounce_frame(&st, GuestMode::User, KSTACK, 0, 0, &req).unwrap();
    assert_eq!(d.entry.rflags & (rflags::DF | rflags::AC | rflags::TF | rflags::NT), 0);
    assert_eq!(d.entry.rflags & rflags::IF, rflags::IF);
    assert_eq!(d.frame.words()[4] & rflags::DF, rflags::DF);
    let mut cb = Callbacks::default();
    cb.failsafe = HANDLER;
    let fs = create_failsafe_frame(&st, GuestMode::User, KSTACK, 0, 0, DataSelectors::default(), &cb).unwrap();
    assert_eq!(fs.entry.rflags & (rflags::DF | rflags::AC), 0);
}

/// `syscall32` and `sysenter` are stored with their mask flag, as Xen does for 64-bit
/// guests (Linux registers both at boot), and refused at an address no guest owns; they
/// cannot be unregistered (`EINVAL`), the deprecated sysenter type is `ENOSYS`.
#[test]
fn callbacks_for_32_bit_entry_points_are_stored() {
    let mut t = TrapTable::new();
    let mut cb = Callbacks::default();
    assert_eq!(cb.register(&mut t, &reg(CALLBACKTYPE_SYSCALL32, CALLBACKF_MASK_EVENTS, HANDLER)), Ok(()));
    assert_eq!(cb.register(&mut t, &reg(hypercall_abi::callback::CALLBACKTYPE_SYSENTER, 0, HANDLER + 8)), Ok(()));
    assert_eq!((cb.syscall32, cb.sysenter, cb.compat_masks), (HANDLER, HANDLER + 8, (true, false)));
    assert_eq!(cb.register(&mut t, &reg(CALLBACKTYPE_SYSCALL32, 0, HYPERVISOR_VIRT_START)), Err(Errno::EINVAL));
    assert_eq!(cb.syscall32, HANDLER, "a refused registration changes nothing");
    for kind in [CALLBACKTYPE_SYSCALL32, hypercall_abi::callback::CALLBACKTYPE_SYSENTER] {
        assert_eq!(cb.unregister(&mut t, &CallbackUnregister { kind: kind as u16, _pad: 0 }), Err(Errno::EINVAL));
    }
    assert_eq!(cb.unregister(&mut t, &CallbackUnregister { kind: 3, _pad: 0 }), Err(Errno::ENOSYS));
}

/// `nmi_op`: register reads `{handler_address, pad}` into the NMI trap entry, unregister
/// clears it, other commands `ENOSYS`, and the address rules are the callbacks'.
#[test]
fn nmi_op_registers_and_unregisters_the_nmi_callback() {
    use super::callbacks::{XENNMI_REGISTER_CALLBACK, XENNMI_UNREGISTER_CALLBACK};
    let mut t = TrapTable::new();
    let mut cb = Callbacks::default();
    let mut mem = FakeMem::new(0x20000, 0x100);
    mem.put(0x20000, [HANDLER, 0u64].as_bytes());
    assert_eq!(cb.nmi_op(&mut t, &mut mem, XENNMI_REGISTER_CALLBACK, 0x20000), Ok(()));
    assert_eq!(t.entry(2).address, HANDLER);
    assert_eq!(cb.nmi_op(&mut t, &mut mem, XENNMI_UNREGISTER_CALLBACK, 0), Ok(()));
    assert_eq!(t.entry(2).address, 0);
    mem.put(0x20000, [HYPERVISOR_VIRT_START, 0u64].as_bytes());
    assert_eq!(cb.nmi_op(&mut t, &mut mem, XENNMI_REGISTER_CALLBACK, 0x20000), Err(Errno::EINVAL));
    assert_eq!(cb.nmi_op(&mut t, &mut mem, XENNMI_REGISTER_CALLBACK, HYPERVISOR_VIRT_START), Err(Errno::EFAULT));
    assert_eq!(cb.nmi_op(&mut t, &mut mem, 7, 0x20000), Err(Errno::ENOSYS));
}

