//! `set_trap_table`, `stack_switch` and `iret`: a PV kernel registers its exception
//! handlers, says where its stack is, and returns from a bounced exception. The frame
//! logic is `crate::traps`; this file decodes the calls.

use super::Platform;
use crate::guest_access::read_guest;
use crate::traps::{decode_iret, SetTrapTable};
use hypercall_abi::arch::IretContext;
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::Hypercall;
use hypercall_abi::layout::FLAT_KERNEL_SS;

pub(super) fn set_trap_table(p: &mut impl Platform, table: u64) -> Result<i64, Errno> {
    match p.set_trap_table(table) {
        Ok(SetTrapTable::Done { .. }) => Ok(0),
        Ok(SetTrapTable::Preempted { next, .. }) => {
            p.continuation(Hypercall::SetTrapTable as u64, [next, 0, 0, 0, 0]);
            Ok(Hypercall::SetTrapTable as i64)
        }
        Err(e) => Err(e.errno),
    }
}

pub(super) fn stack_switch(p: &mut impl Platform, ss: u64, sp: u64) -> Result<i64, Errno> {
    // The guest kernel's stack segment is the flat ring-3 one (any RPL the guest writes).
    if ss & !3 != u64::from(FLAT_KERNEL_SS & !3) {
        return Err(Errno::EINVAL);
    }
    p.set_kernel_stack(sp)?;
    Ok(0)
}

pub(super) fn iret(p: &mut impl Platform) -> Result<i64, Errno> {
    let ctx: IretContext = read_guest(p, p.caller_rsp())?;
    let r = decode_iret(&ctx, p.has_user_page_table());
    let rax = ctx.rax as i64;
    p.iret(r);
    Ok(rax)
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
    fn stack_switch_wants_the_flat_kernel_stack_segment() {
        let mut p = FakePlatform::new(false);
        // The fake platform keeps no vCPU state: a good call reaches it and gets ENOSYS.
        assert_eq!(dispatch(&mut p, STACK_SWITCH, [0xe02b, 0x1000, 0, 0, 0]), Errno::ENOSYS.to_ret());
        assert_eq!(dispatch(&mut p, STACK_SWITCH, [0xe029, 0x1000, 0, 0, 0]), Errno::ENOSYS.to_ret(), "any RPL");
        for ss in [0u64, 0xe010, 0xe033, 0xffff] {
            assert_eq!(dispatch(&mut p, STACK_SWITCH, [ss, 0x1000, 0, 0, 0]), Errno::EINVAL.to_ret(), "ss {ss:#x}");
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
