//! `multicall` (13): runs a batch of hypercalls through the normal dispatcher, writing each
//! one's return value into its entry's `result` (Xen's `do_multicall`).
//!
//! `iret` and a nested `multicall` are refused inside a batch (result `-EINVAL`, and the
//! batch goes on with the next entry). A batch never holds the CPU for long, however many
//! entries it has or however long each one is, exactly as Xen's:
//! - between two entries, when [`super::Memory::preempt_check`] says other work is due, the
//!   multicall continues itself from the next entry;
//! - a call inside it may continue itself as it would alone (a long `pt_update`, say):
//!   its new arguments are written back into its entry and the multicall continues from
//!   that entry, so the guest re-enters the batch where it stopped (Xen's
//!   `MCSF_call_preempted`). The entry's `result` is written only when it completes.
#![forbid(unsafe_code)]

use super::{run, Handled, Outcome, Platform, Then};
use crate::guest_access::{read_guest, write_guest, GuestRange};
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::Hypercall;
use hypercall_abi::mmu::MulticallEntry;

const ENTRY: u64 = core::mem::size_of::<MulticallEntry>() as u64;

/// `multicall(calls, nr_calls)`: 0, or `EFAULT` if an entry cannot be read or its result
/// written (the entries before it have run); a continuation from the next entry to run.
/// The caller gives up the CPU afterwards if a call in the batch said so (a yield).
// Out of line: keeps its buffers and saved registers off the path of the small hypercalls.
#[inline(never)]
pub(super) fn multicall(p: &mut impl Platform, calls: u64, nr: u64) -> Handled {
    let nr = u64::from(nr as u32);
    GuestRange::new(calls, nr * ENTRY)?;
    // A call in the batch that gives up the CPU (a yield) does so once the batch ends.
    let mut reschedule = false;
    for i in 0..nr {
        let at = calls + i * ENTRY;
        if i > 0 && p.preempt_check() {
            return Ok(Outcome { reschedule, ..Outcome::again(Hypercall::Multicall, [at, nr - i, 0, 0, 0]) });
        }
        let mut e: MulticallEntry = read_guest(p, at)?;
        let done = match Hypercall::try_from(e.op) {
            Ok(Hypercall::Iret | Hypercall::Multicall) => Outcome::value(Errno::EINVAL.to_ret()),
            _ => run(p, e.op, [e.args[0], e.args[1], e.args[2], e.args[3], e.args[4]]),
        };
        reschedule |= done.reschedule;
        if let Then::Again { nr: op, args } = done.then {
            // The call stopped part-way: its entry now says how to go on, and the batch
            // resumes at it.
            e.op = op;
            e.args[..5].copy_from_slice(&args);
            write_guest(p, at, &e)?;
            return Ok(Outcome { reschedule, ..Outcome::again(Hypercall::Multicall, [at, nr - i, 0, 0, 0]) });
        }
        write_guest(p, at + core::mem::offset_of!(MulticallEntry, result) as u64, &(done.ret as u64))?;
    }
    Ok(Outcome::rescheduling(0, reschedule))
}

#[cfg(test)]
#[path = "multicall_tests.rs"]
mod tests;
