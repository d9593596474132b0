//! `console_io`: guest console output to the serial line, and dom0's input from it.

use super::Platform;
use crate::guest_access::GuestRange;
use hypercall_abi::console_io::{CONSOLEIO_READ, CONSOLEIO_WRITE};
use hypercall_abi::errno::Errno;

/// Bytes copied per step, so the hypervisor's buffer stays small.
const CHUNK: usize = 128;

// Out of line: keeps its buffers and saved registers off the path of the small hypercalls.
#[inline(never)]
pub(super) fn console_io(p: &mut impl Platform, cmd: u32, count: u32, buf: u64) -> Result<i64, Errno> {
    let range = GuestRange::new(buf, count as u64);
    match cmd {
        CONSOLEIO_WRITE => {
            let range = range?;
            let mut off = 0u64;
            let mut tmp = [0u8; CHUNK];
            while off < range.len() {
                let n = (range.len() - off).min(CHUNK as u64);
                p.copy_from_guest(range.slice(off, n)?, &mut tmp[..n as usize])?;
                p.console_write(&tmp[..n as usize]);
                off += n;
            }
            Ok(0)
        }
        CONSOLEIO_READ => {
            if !p.caller().privileged {
                return Err(Errno::EPERM);
            }
            let range = range?;
            let mut tmp = [0u8; CHUNK];
            let want = range.len().min(CHUNK as u64) as usize;
            let n = p.console_read(&mut tmp[..want]);
            p.copy_to_guest(range.slice(0, n as u64)?, &tmp[..n])?;
            Ok(n as i64)
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
        let mut p = FakePlatform::new(false);
        let msg: std::vec::Vec<u8> = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
        p.mem[..300].copy_from_slice(&msg);
        assert_eq!(dispatch(&mut p, CONSOLE_IO, [0, 300, BASE, 0, 0]), 0);
        assert_eq!(p.out, msg);
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
        assert_eq!(dispatch(&mut p, CONSOLE_IO, [0, u64::MAX, BASE, 0, 0]), Errno::EFAULT.to_ret());
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
}
