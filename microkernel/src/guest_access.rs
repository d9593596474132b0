//! Guest memory, seen from a hypercall handler.
//!
//! A PV guest passes virtual addresses of its own address space. Handlers never dereference
//! them: they build a [`GuestRange`] (which refuses ranges that wrap, are non-canonical or
//! touch the hypervisor's reserved slice) and copy through a [`GuestMemory`], whose
//! implementation on the machine uses an exception-fixup copy so that an unmapped or
//! read-only guest page gives `EFAULT` instead of a hypervisor fault.
#![forbid(unsafe_code)]

use hypercall_abi::errno::Errno;
use hypercall_abi::layout::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};

/// Highest canonical lower-half address plus one.
const LOWER_HALF_END: u64 = 0x0000_8000_0000_0000;

/// A checked range of guest virtual addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestRange {
    addr: u64,
    len: u64,
}

impl GuestRange {
    /// Checks that `[addr, addr + len)` lies entirely in guest-owned virtual space: the
    /// canonical lower half, or the upper half above the hypervisor's slice.
    pub fn new(addr: u64, len: u64) -> Result<Self, Errno> {
        if len == 0 {
            return Ok(GuestRange { addr, len });
        }
        let last = addr.checked_add(len - 1).ok_or(Errno::EFAULT)?;
        let in_lower = last < LOWER_HALF_END;
        let in_upper = addr >= HYPERVISOR_VIRT_END;
        if !(in_lower || in_upper) {
            return Err(Errno::EFAULT);
        }
        debug_assert!(!(addr < HYPERVISOR_VIRT_END && last >= HYPERVISOR_VIRT_START));
        Ok(GuestRange { addr, len })
    }

    /// First address.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sub-range `[off, off + len)` of this one.
    pub fn slice(&self, off: u64, len: u64) -> Result<GuestRange, Errno> {
        let end = off.checked_add(len).ok_or(Errno::EFAULT)?;
        if end > self.len {
            return Err(Errno::EFAULT);
        }
        Ok(GuestRange { addr: self.addr + off, len })
    }
}

/// Copies between hypervisor buffers and the current guest's memory.
pub trait GuestMemory {
    /// Copies `buf.len()` bytes from the guest at `src` (which has that length).
    fn copy_from_guest(&mut self, src: GuestRange, buf: &mut [u8]) -> Result<(), Errno>;
    /// Copies `buf` to the guest at `dst` (which has that length).
    fn copy_to_guest(&mut self, dst: GuestRange, buf: &[u8]) -> Result<(), Errno>;
}

/// Copies a plain-data value out of guest memory at `addr`.
pub fn read_guest<T: zerocopy::FromBytes + zerocopy::IntoBytes>(
    mem: &mut impl GuestMemory,
    addr: u64,
) -> Result<T, Errno> {
    let mut v = T::new_zeroed();
    let r = GuestRange::new(addr, core::mem::size_of::<T>() as u64)?;
    mem.copy_from_guest(r, v.as_mut_bytes())?;
    Ok(v)
}

/// Copies a plain-data value into guest memory at `addr`.
pub fn write_guest<T: zerocopy::IntoBytes + zerocopy::Immutable>(
    mem: &mut impl GuestMemory,
    addr: u64,
    v: &T,
) -> Result<(), Errno> {
    let r = GuestRange::new(addr, core::mem::size_of::<T>() as u64)?;
    mem.copy_to_guest(r, v.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_guest_owned_ranges_pass() {
        assert!(GuestRange::new(0x1000, 0x1000).is_ok());
        assert!(GuestRange::new(0, 0).is_ok());
        assert!(GuestRange::new(0xffff_ffff_8000_0000, 4096).is_ok());
        assert!(GuestRange::new(0x0000_7fff_ffff_f000, 0x1000).is_ok());
        // Crosses into the non-canonical hole.
        assert_eq!(GuestRange::new(0x0000_7fff_ffff_f000, 0x1001), Err(Errno::EFAULT));
        // Non-canonical.
        assert_eq!(GuestRange::new(0x0000_9000_0000_0000, 8), Err(Errno::EFAULT));
        // The hypervisor's slice, its edges, and a range ending in it.
        assert_eq!(GuestRange::new(HYPERVISOR_VIRT_START, 1), Err(Errno::EFAULT));
        assert_eq!(GuestRange::new(HYPERVISOR_VIRT_END - 1, 1), Err(Errno::EFAULT));
        assert_eq!(GuestRange::new(0xffff_8300_0000_0000, 8), Err(Errno::EFAULT));
        assert!(GuestRange::new(HYPERVISOR_VIRT_END, 1).is_ok());
        // Wrapping.
        assert_eq!(GuestRange::new(u64::MAX, 2), Err(Errno::EFAULT));
        assert_eq!(GuestRange::new(0x1000, u64::MAX), Err(Errno::EFAULT));
    }

    #[test]
    fn sub_ranges_stay_inside() {
        let r = GuestRange::new(0x1000, 0x100).unwrap();
        assert_eq!(r.slice(0x10, 0x20).unwrap().addr(), 0x1010);
        assert_eq!(r.slice(0xf0, 0x11), Err(Errno::EFAULT));
        assert_eq!(r.slice(u64::MAX, 2), Err(Errno::EFAULT));
    }
}
