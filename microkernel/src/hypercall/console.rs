//! `console_io`: guest console output to the serial line, and dom0's input from it.
#![forbid(unsafe_code)]

use super::{Handled, Outcome, Platform};
use crate::guest_access::GuestRange;
use hypercall_abi::console_io::{CONSOLEIO_READ, CONSOLEIO_WRITE};
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::Hypercall;

/// Bytes copied per step, so the hypervisor's buffer stays small.
const CHUNK: usize = 128;

/// Most bytes one entry writes before the call continues itself: a guest asking for
/// gigabytes holds the CPU (and the serial line) for one bounded step at a time, and the
/// scheduler runs others between the steps.
const WRITE_PER_ENTRY: u64 = 4096;

// Out of line: keeps its buffers and saved registers off the path of the small hypercalls.
#[inline(never)]
pub(super) fn console_io(p: &mut impl Platform, cmd: u32, count: u32, buf: u64) -> Handled {
    let range = GuestRange::new(buf, count as u64);
    match cmd {
        CONSOLEIO_WRITE => {
            // As release Xen (XSM's dummy policy without VERBOSE_DEBUG): only the console
            // domain writes to the hypervisor console; a domU has its console ring. With
            // `domu_console` on the microkernel's command line, as a debug Xen, any may.
            let debug = crate::cmdline::parse(p.command_line()).is_ok_and(|o| o.domu_console);
            if !p.caller().privileged && !debug {
                return Err(Errno::EPERM);
            }
            let range = range?;
            let mut off = 0u64;
            let mut tmp = [0u8; CHUNK];
            while off < range.len() {
                if off >= WRITE_PER_ENTRY || (off > 0 && p.preempt_check()) {
                    // Xen's guest_console_write: the rest in a continuation.
                    return Ok(Outcome::again(Hypercall::ConsoleIo, [u64::from(cmd), range.len() - off, buf + off, 0, 0]));
                }
                let n = (range.len() - off).min(CHUNK as u64);
                let part = tmp.get_mut(..n as usize).ok_or(Errno::EINVAL)?;
                p.copy_from_guest(range.slice(off, n)?, part)?;
                p.console_write(part);
                off += n;
            }
            Ok(Outcome::value(0))
        }
        CONSOLEIO_READ => {
            if !p.caller().privileged {
                return Err(Errno::EPERM);
            }
            let range = range?;
            let mut tmp = [0u8; CHUNK];
            let want = range.len().min(CHUNK as u64) as usize;
            let n = p.console_read(tmp.get_mut(..want).ok_or(Errno::EINVAL)?);
            p.copy_to_guest(range.slice(0, n as u64)?, tmp.get(..n).ok_or(Errno::EINVAL)?)?;
            Ok(Outcome::value(n as i64))
        }
        _ => Err(Errno::ENOSYS),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::*;
    use super::super::dispatch;
    use hypercall_abi::errno::Errno;

    const CONSOLE_IO: u64 = 18;

    #[test]
    fn write_reaches_the_console_in_order() {
        let mut p = FakePlatform::new(true);
        let msg: std::vec::Vec<u8> = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
        p.mem[..300].copy_from_slice(&msg);
        assert_eq!(dispatch(&mut p, CONSOLE_IO, [0, 300, BASE, 0, 0]), 0);
        assert_eq!(p.out, msg);
    }

    #[test]
    fn long_writes_continue_themselves_a_bounded_step_at_a_time() {
        let mut p = FakePlatform::new(true);
        p.mem = std::vec![b'x'; 10_000];
        assert_eq!(dispatch(&mut p, CONSOLE_IO, [0, 10_000, BASE, 0, 0]), CONSOLE_IO as i64);
        assert_eq!(p.out.len(), 4096);
        assert_eq!(p.continuations, [(CONSOLE_IO, [0, 10_000 - 4096, BASE + 4096, 0, 0])]);
        // The guest re-executes it with those arguments, twice more.
        let mut args = p.continuations.pop().unwrap().1;
        while dispatch(&mut p, CONSOLE_IO, args) == CONSOLE_IO as i64 {
            args = p.continuations.pop().unwrap().1;
        }
        assert_eq!(p.out.len(), 10_000);
        // Preemption due: the step ends at the next chunk.
        let mut p = FakePlatform::new(true);
        p.mem = std::vec![b'y'; 1000];
        p.preempt_after = Some(0);
        assert_eq!(dispatch(&mut p, CONSOLE_IO, [0, 1000, BASE, 0, 0]), CONSOLE_IO as i64);
        assert_eq!(p.out.len(), 128);
    }

    #[test]
    fn bad_buffers_are_efault_and_nothing_is_written() {
        let mut p = FakePlatform::new(true);
        for (count, buf) in [(16u64, 0xffff_8300_0000_0000u64), (16, 0x1000), (16, 0x0000_9000_0000_0000)] {
            let r = dispatch(&mut p, CONSOLE_IO, [0, count, buf, 0, 0]);
            assert_eq!(r, Errno::EFAULT.to_ret(), "count {count:#x} buf {buf:#x}");
        }
        assert!(p.out.is_empty());
        // A count running past the guest's memory: what was readable is printed (as Xen
        // does), then EFAULT; the count is 32 bits as in Xen's ABI.
        let mut args = [0, u64::MAX, BASE, 0, 0];
        let last = loop {
            match dispatch(&mut p, CONSOLE_IO, args) {
                r if r == CONSOLE_IO as i64 => args = p.continuations.pop().unwrap().1,
                r => break r,
            }
        };
        assert_eq!(last, Errno::EFAULT.to_ret());
        assert_eq!(p.out.len(), p.mem.len());
    }

    #[test]
    fn read_is_for_dom0_only_and_returns_what_is_pending() {
        let mut p = FakePlatform::new(false);
        p.input.extend_from_slice(b"info\n");
        assert_eq!(dispatch(&mut p, CONSOLE_IO, [1, 16, BASE, 0, 0]), Errno::EPERM.to_ret());
        let mut p = FakePlatform::new(true);
        p.input.extend_from_slice(b"info\n");
        assert_eq!(dispatch(&mut p, CONSOLE_IO, [1, 3, BASE, 0, 0]), 3);
        assert_eq!(&p.mem[..3], b"inf");
        assert_eq!(dispatch(&mut p, CONSOLE_IO, [1, 16, BASE, 0, 0]), 2);
        assert_eq!(dispatch(&mut p, CONSOLE_IO, [1, 16, BASE, 0, 0]), 0);
        assert_eq!(dispatch(&mut p, CONSOLE_IO, [7, 16, BASE, 0, 0]), Errno::ENOSYS.to_ret());
    }

    #[test]
    fn a_domu_may_not_write_to_the_hypervisor_console() {
        let mut p = FakePlatform::new(false);
        p.mem[..5].copy_from_slice(b"hello");
        assert_eq!(dispatch(&mut p, CONSOLE_IO, [0, 5, BASE, 0, 0]), Errno::EPERM.to_ret());
        assert!(p.out.is_empty());
    }
}
