//! `multicall` (13): runs a batch of hypercalls through the normal dispatcher, writing each
//! one's return value into its entry's `result` (Xen's `do_multicall`).
//!
//! `iret` and a nested `multicall` are refused inside a batch (result `-EINVAL`, and the
//! batch goes on with the next entry). Calls inside a batch are never preempted: the
//! dispatcher tells the batched handlers so, and they run to the end of their own batch.

use super::{dispatch_call, Platform};
use crate::guest_access::{read_guest, write_guest, GuestRange};
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::Hypercall;
use hypercall_abi::mmu::MulticallEntry;

const ENTRY: u64 = core::mem::size_of::<MulticallEntry>() as u64;

/// `multicall(calls, nr_calls)`: 0, or `EFAULT` if an entry cannot be read or its result
/// written (the entries before it have run).
// Out of line: keeps its buffers and saved registers off the path of the small hypercalls.
#[inline(never)]
pub(super) fn multicall(p: &mut impl Platform, calls: u64, nr: u64) -> Result<i64, Errno> {
    let nr = u64::from(nr as u32);
    GuestRange::new(calls, nr * ENTRY)?;
    for i in 0..nr {
        let at = calls + i * ENTRY;
        let e: MulticallEntry = read_guest(p, at)?;
        let result = match Hypercall::try_from(e.op) {
            Ok(Hypercall::Iret | Hypercall::Multicall) => Errno::EINVAL.to_ret(),
            _ => dispatch_call(p, e.op, [e.args[0], e.args[1], e.args[2], e.args[3], e.args[4]], false),
        };
        write_guest(p, at + core::mem::offset_of!(MulticallEntry, result) as u64, &(result as u64))?;
    }
    Ok(0)
}

#[cfg(test)]
#[path = "multicall_tests.rs"]
mod tests;
