//! `set_trap_table`, `stack_switch` and `iret`: a PV kernel registers its exception
//! handlers, says where its stack is, and returns from a bounced exception. The frame
//! logic is `crate::traps`; this file decodes the calls.
#![forbid(unsafe_code)]

use super::{Handled, Outcome, Platform, Then};
use crate::guest_access::read_guest;
use crate::traps::{decode_iret, SetTrapTable};
use hypercall_abi::arch::IretContext;
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::Hypercall;

pub(super) fn set_trap_table(p: &mut impl Platform, table: u64) -> Handled {
    match p.set_trap_table(table) {
        Ok(SetTrapTable::Done { .. }) => Ok(Outcome::value(0)),
        Ok(SetTrapTable::Preempted { next, .. }) => Ok(Outcome::again(Hypercall::SetTrapTable, [next, 0, 0, 0, 0])),
        Err(e) => Err(e.errno),
    }
}

pub(super) fn stack_switch(p: &mut impl Platform, ss: u64, sp: u64) -> Result<i64, Errno> {
    // As Xen's x86_64 do_stack_switch: any `ss` is taken (a 64-bit guest's events always
    // land on the flat kernel stack segment, so it is not used; Linux gives its own
    // __KERNEL_DS); only the stack pointer matters.
    let _ = ss;
    p.set_kernel_stack(sp)?;
    Ok(0)
}

/// `iret`: the guest goes on in the state its frame decodes to (or, refused, crashes).
pub(super) fn iret(p: &mut impl Platform) -> Handled {
    let ctx: IretContext = read_guest(p, p.caller_rsp())?;
    let to = decode_iret(&ctx, p.has_user_page_table());
    Ok(Outcome { ret: ctx.rax as i64, reschedule: false, then: Then::Iret(to) })
}

#[cfg(test)]
mod tests {
    use super::super::dispatch;
    use super::super::fake::*;
    use hypercall_abi::errno::Errno;

    const SET_TRAP_TABLE: u64 = 0;
    const STACK_SWITCH: u64 = 3;
    const IRET: u64 = 23;

    #[test]
    fn stack_switch_takes_any_stack_segment_as_xen() {
        let mut p = FakePlatform::new(false);
        // The fake platform keeps no vCPU state: a call reaches it and gets ENOSYS.
        for ss in [0xe02bu64, 0xe029, 0x18, 0, 0xffff] {
            assert_eq!(dispatch(&mut p, STACK_SWITCH, [ss, 0x1000, 0, 0, 0]), Errno::ENOSYS.to_ret(), "ss {ss:#x}");
        }
    }

    #[test]
    fn iret_reads_its_frame_at_the_caller_stack() {
        // The fake's caller rsp is 0, below its guest memory: the frame is unreadable.
        let mut p = FakePlatform::new(false);
        assert_eq!(dispatch(&mut p, IRET, [0; 5]), Errno::EFAULT.to_ret());
        assert_eq!(dispatch(&mut p, SET_TRAP_TABLE, [BASE, 0, 0, 0, 0]), Errno::ENOSYS.to_ret());
    }
}
