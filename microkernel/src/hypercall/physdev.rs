//! `physdev_op` (33) as Xen's `do_physdev_op` gives it to every PV guest: the virtual I/O
//! privilege level (`PHYSDEVOP_set_iopl`) and the I/O port bitmap
//! (`PHYSDEVOP_set_iobitmap`), which decide whether the guest's `in`/`out`, `cli` and `sti`
//! are carried out for it (see `emulate`) or bounced as #GP; and the physical-IRQ path by
//! which the control domain takes a device's interrupts as events (`map_pirq`,
//! `unmap_pirq`, `eoi`, `irq_status_query`, `setup_gsi`, run by [`pirq_op`] on the event
//! engine's [`crate::event::Pirqs`]). The PCI and MSI sub-ops are `ENOSYS`, Xen's answer
//! for an operation it does not know.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]
#![forbid(unsafe_code)]

use hypercall_abi::errno::Errno;
use hypercall_abi::physdev::*;
use hypercall_abi::types::DomId;

use super::Platform;
use crate::event::{EventChannels, PortLayout, NR_PIRQS};
use crate::guest_access::{read_guest, write_guest, GuestMemory, GuestRange};

/// Bytes of an I/O bitmap Xen requires to be addressable (`IOBMP_BYTES`: 65536 ports).
pub const IOBMP_BYTES: u64 = 8192;

/// `struct physdev_set_iobitmap`: the bitmap's guest address and how many ports it covers.
#[derive(Clone, Copy, Debug, Default, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)]
#[repr(C)]
struct SetIobitmap {
    bitmap: u64,
    nr_ports: u32,
    pad: u32,
}

/// `physdev_op(cmd, arg)`.
pub(super) fn physdev_op(p: &mut impl Platform, cmd: u32, arg: u64) -> Result<i64, Errno> {
    match cmd {
        PHYSDEVOP_SET_IOPL => {
            let iopl: u32 = read_guest(p, arg)?;
            if iopl > 3 {
                return Err(Errno::EINVAL);
            }
            p.set_io_access(IoAccess::Iopl(iopl as u8))?;
            Ok(0)
        }
        PHYSDEVOP_SET_IOBITMAP => {
            let set: SetIobitmap = read_guest(p, arg)?;
            // Xen: the whole bitmap must be addressable, at most 65536 ports.
            if GuestRange::new(set.bitmap, IOBMP_BYTES).is_err() || set.nr_ports > 65536 {
                return Err(Errno::EINVAL);
            }
            p.set_io_access(IoAccess::Bitmap { addr: set.bitmap, nr_ports: set.nr_ports })?;
            Ok(0)
        }
        PHYSDEVOP_MAP_PIRQ | PHYSDEVOP_UNMAP_PIRQ | PHYSDEVOP_EOI | PHYSDEVOP_IRQ_STATUS_QUERY | PHYSDEVOP_SETUP_GSI => {
            p.physdev_pirq_op(cmd, arg)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// The physical-IRQ commands of `physdev_op` for `caller`, on the event engine (whose
/// [`EventChannels::take_line_changes`] the machine then carries out).
pub fn pirq_op<L: PortLayout>(
    ev: &mut EventChannels<L>,
    mem: &mut impl GuestMemory,
    caller: DomId,
    cmd: u32,
    arg: u64,
) -> Result<i64, Errno> {
    match cmd {
        PHYSDEVOP_MAP_PIRQ => {
            let mut a: PhysdevMapPirq = read_guest(mem, arg)?;
            let dom = DomId(a.domid);
            // MSI would need the hypervisor to own the devices' MSI capabilities; the lines
            // here are the interrupt controller's. Xen answers a type it cannot map EINVAL,
            // after the domain and permission checks.
            if a.map_type != MAP_PIRQ_TYPE_GSI {
                ev.check_pirq_control(caller, dom)?;
                return Err(Errno::EINVAL);
            }
            a.pirq = ev.map_pirq(caller, dom, a.index, a.pirq)? as i32;
            write_guest(mem, arg, &a)?;
            Ok(0)
        }
        PHYSDEVOP_UNMAP_PIRQ => {
            let a: PhysdevUnmapPirq = read_guest(mem, arg)?;
            ev.unmap_pirq(caller, DomId(a.domid), a.pirq)?;
            Ok(0)
        }
        PHYSDEVOP_EOI => {
            let a: PhysdevEoi = read_guest(mem, arg)?;
            ev.pirq_eoi(caller, a.irq)?;
            Ok(0)
        }
        PHYSDEVOP_IRQ_STATUS_QUERY => {
            let mut a: PhysdevIrqStatusQuery = read_guest(mem, arg)?;
            if a.irq >= NR_PIRQS {
                return Err(Errno::EINVAL);
            }
            // As Xen for a PV guest without an EOI bitmap: always EOI, conservatively.
            a.flags = XENIRQSTAT_NEEDS_EOI;
            write_guest(mem, arg, &a)?;
            Ok(0)
        }
        PHYSDEVOP_SETUP_GSI => {
            // The 8259 lines' trigger modes are the firmware's (its ELCR setting for PCI
            // lines): accepted for a line the caller may map, with nothing to change.
            let a: PhysdevSetupGsi = read_guest(mem, arg)?;
            ev.check_pirq_control(caller, DomId::SELF)?;
            if !(0..NR_PIRQS as i32).contains(&a.gsi) || a.triggering > 1 || a.polarity > 1 {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// `physdev_op_compat(uop)`, the pre-3.0.2 form, as Xen's `do_physdev_op_compat`: `uop`
/// is `struct physdev_op { u32 cmd; union u; }` with the union at offset 8 (its members
/// hold 64-bit handles); the command runs as `physdev_op(cmd, uop + 8)`.
pub(super) fn physdev_op_compat(p: &mut impl Platform, uop: u64) -> Result<i64, Errno> {
    let cmd: u32 = read_guest(p, uop)?;
    physdev_op(p, cmd, uop.wrapping_add(8))
}

/// What `physdev_op` changes of the calling vCPU's I/O access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoAccess {
    /// The virtual IOPL, 0..=3.
    Iopl(u8),
    /// The I/O bitmap: a guest address and the ports it covers (a set bit denies).
    Bitmap {
        /// Guest virtual address.
        addr: u64,
        /// Ports covered, from 0.
        nr_ports: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::dispatch;
    use crate::hypercall::fake::{FakePlatform, BASE};
    use hypercall_abi::hypercall::Hypercall;

    fn op(p: &mut FakePlatform, cmd: u32, arg: u64) -> i64 {
        dispatch(p, Hypercall::PhysdevOp as u64, [cmd.into(), arg, 0, 0, 0])
    }

    #[test]
    fn set_iopl_takes_0_to_3() {
        let mut p = FakePlatform::new(false);
        for iopl in 0..=3u32 {
            p.mem[..4].copy_from_slice(&iopl.to_le_bytes());
            assert_eq!(op(&mut p, PHYSDEVOP_SET_IOPL, BASE), 0);
            assert_eq!(p.io_access.last(), Some(&IoAccess::Iopl(iopl as u8)));
        }
        p.mem[..4].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(op(&mut p, PHYSDEVOP_SET_IOPL, BASE), Errno::EINVAL.to_ret());
        assert_eq!(op(&mut p, PHYSDEVOP_SET_IOPL, 0xffff_8000_0000_0000), Errno::EFAULT.to_ret());
        assert_eq!(op(&mut p, PHYSDEVOP_SET_IOPL, 1 << 63), Errno::EFAULT.to_ret());
        assert_eq!(p.io_access.len(), 4, "a refused call changes nothing");
    }

    #[test]
    fn set_iobitmap_checks_the_bitmap_and_the_port_count() {
        let mut p = FakePlatform::new(false);
        let put = |p: &mut FakePlatform, addr: u64, ports: u32| {
            p.mem[..8].copy_from_slice(&addr.to_le_bytes());
            p.mem[8..12].copy_from_slice(&ports.to_le_bytes());
        };
        put(&mut p, 0x40_0000, 65536);
        assert_eq!(op(&mut p, PHYSDEVOP_SET_IOBITMAP, BASE), 0);
        assert_eq!(p.io_access.last(), Some(&IoAccess::Bitmap { addr: 0x40_0000, nr_ports: 65536 }));
        put(&mut p, 0x40_0000, 65537);
        assert_eq!(op(&mut p, PHYSDEVOP_SET_IOBITMAP, BASE), Errno::EINVAL.to_ret());
        // In the hypervisor's slice, or running into it: not addressable.
        put(&mut p, 0xffff_8000_0000_0000, 8);
        assert_eq!(op(&mut p, PHYSDEVOP_SET_IOBITMAP, BASE), Errno::EINVAL.to_ret());
        put(&mut p, 0x7fff_ffff_f000, 8);
        assert_eq!(op(&mut p, PHYSDEVOP_SET_IOBITMAP, BASE), Errno::EINVAL.to_ret());
        assert_eq!(p.io_access.len(), 1);
    }

    #[test]
    fn the_compat_form_reads_the_command_before_the_union() {
        let mut p = FakePlatform::new(false);
        p.mem[..4].copy_from_slice(&PHYSDEVOP_SET_IOPL.to_le_bytes());
        p.mem[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(dispatch(&mut p, Hypercall::PhysdevOpCompat as u64, [BASE, 0, 0, 0, 0]), 0);
        assert_eq!(p.io_access, [IoAccess::Iopl(2)]);
    }

    #[test]
    fn the_device_sub_ops_are_not_here() {
        let mut p = FakePlatform::new(true);
        for cmd in [0, 5, 12, 13, 25, 1000] {
            assert_eq!(op(&mut p, cmd, BASE), Errno::ENOSYS.to_ret(), "cmd {cmd}");
        }
    }
}
