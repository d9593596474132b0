//! `physdev_op` for a kernel that drives the machine's devices (the control domain): the
//! virtual I/O privilege level that lets its `in`/`out` reach the ports, and the physical
//! IRQ path by which a device's interrupt line arrives as an event channel.
//!
//! The cycle, as Xen's PV guests run it: [`map_gsi`] the device's line, bind the pirq with
//! [`crate::events::bind_pirq`], then on each event quieten the device (read its
//! interrupt status) and say [`eoi`]; the hypervisor keeps the line masked in between.

use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::Hypercall;
use hypercall_abi::physdev::*;
use hypercall_abi::types::DOMID_SELF;

use crate::hypercall::{check, hypercall_via_page};

fn op<T>(cmd: u32, arg: &mut T) -> Result<u64, Errno> {
    // SAFETY: every caller passes `cmd`'s own argument struct, which we own.
    check(unsafe { hypercall_via_page(Hypercall::PhysdevOp as u64, u64::from(cmd), (arg as *mut T) as u64, 0, 0, 0) })
}

/// `PHYSDEVOP_set_iopl`: the virtual IOPL (1 lets the kernel's `in`/`out`, `cli`/`sti`
/// through, as Linux sets it; the control domain's then reach the hardware).
pub fn set_iopl(iopl: u32) -> Result<(), Errno> {
    let mut iopl = iopl;
    op(PHYSDEVOP_SET_IOPL, &mut iopl).map(|_| ())
}

/// `PHYSDEVOP_map_pirq` of GSI `gsi` for ourselves: the pirq to bind.
pub fn map_gsi(gsi: u32) -> Result<u32, Errno> {
    let mut a = PhysdevMapPirq { domid: DOMID_SELF, map_type: MAP_PIRQ_TYPE_GSI, index: gsi as i32, pirq: -1, ..Default::default() };
    op(PHYSDEVOP_MAP_PIRQ, &mut a)?;
    Ok(a.pirq as u32)
}

/// `PHYSDEVOP_unmap_pirq` of our `pirq` (its port closed first).
pub fn unmap(pirq: u32) -> Result<(), Errno> {
    let mut a = PhysdevUnmapPirq { domid: DOMID_SELF, pad: 0, pirq: pirq as i32 };
    op(PHYSDEVOP_UNMAP_PIRQ, &mut a).map(|_| ())
}

/// `PHYSDEVOP_eoi`: the device behind `pirq` is served; its line may interrupt again.
pub fn eoi(pirq: u32) -> Result<(), Errno> {
    let mut a = PhysdevEoi { irq: pirq };
    op(PHYSDEVOP_EOI, &mut a).map(|_| ())
}

/// `PHYSDEVOP_irq_status_query`: `XENIRQSTAT_*` of `pirq`.
pub fn status(pirq: u32) -> Result<u32, Errno> {
    let mut a = PhysdevIrqStatusQuery { irq: pirq, flags: 0 };
    op(PHYSDEVOP_IRQ_STATUS_QUERY, &mut a)?;
    Ok(a.flags)
}
