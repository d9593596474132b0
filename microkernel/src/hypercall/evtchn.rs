//! `event_channel_op` (hypercall 32): decodes each command's argument, runs it on the
//! event-channel engine (`crate::event`), writes the results back, and hands the
//! notifications it produced to the machine.

use crate::event::{EventChannels, Notification, PortLayout};
use crate::guest_access::{read_guest, write_guest, GuestMemory};
use hypercall_abi::errno::Errno;
use hypercall_abi::event_channel::*;
use hypercall_abi::types::{DomId, Port, VcpuId};
use zerocopy::FromZeros;

/// Runs `EVTCHNOP_<cmd>` for `caller` with its argument at guest address `arg`. A
/// notification the operation produced (an event made pending) is returned for the machine
/// to act on (kick or wake the notified vCPU).
pub fn event_channel_op<L: PortLayout>(
    ev: &mut EventChannels<L>,
    mem: &mut impl GuestMemory,
    caller: DomId,
    cmd: u32,
    arg: u64,
) -> Result<Option<Notification>, Errno> {
    match cmd {
        EVTCHNOP_ALLOC_UNBOUND => {
            let mut a: EvtchnAllocUnbound = read_guest(mem, arg)?;
            let port = ev.alloc_unbound(caller, DomId(a.dom), DomId(a.remote_dom))?;
            a.port = port.0;
            write_guest(mem, arg, &a)?;
            Ok(None)
        }
        EVTCHNOP_BIND_INTERDOMAIN => {
            let mut a: EvtchnBindInterdomain = read_guest(mem, arg)?;
            let (port, n) = ev.bind_interdomain(caller, DomId(a.remote_dom), Port(a.remote_port))?;
            a.local_port = port.0;
            write_guest(mem, arg, &a)?;
            Ok(Some(n))
        }
        EVTCHNOP_BIND_VIRQ => {
            let mut a: EvtchnBindVirq = read_guest(mem, arg)?;
            a.port = ev.bind_virq(caller, a.virq, VcpuId(a.vcpu))?.0;
            write_guest(mem, arg, &a)?;
            Ok(None)
        }
        EVTCHNOP_BIND_IPI => {
            let mut a: EvtchnBindIpi = read_guest(mem, arg)?;
            a.port = ev.bind_ipi(caller, VcpuId(a.vcpu))?.0;
            write_guest(mem, arg, &a)?;
            Ok(None)
        }
        EVTCHNOP_CLOSE => {
            let a: EvtchnClose = read_guest(mem, arg)?;
            ev.close(caller, Port(a.port))?;
            Ok(None)
        }
        EVTCHNOP_SEND => {
            let a: EvtchnSend = read_guest(mem, arg)?;
            ev.send(caller, Port(a.port))
        }
        EVTCHNOP_STATUS => {
            let mut a: EvtchnStatus = read_guest(mem, arg)?;
            let s = ev.status(caller, DomId(a.dom), Port(a.port))?;
            s.write_to(&mut a);
            write_guest(mem, arg, &a)?;
            Ok(None)
        }
        EVTCHNOP_UNMASK => {
            let a: EvtchnUnmask = read_guest(mem, arg)?;
            Ok(Some(ev.unmask(caller, Port(a.port))?))
        }
        EVTCHNOP_RESET => {
            let a: EvtchnReset = read_guest(mem, arg)?;
            ev.reset(caller, DomId(a.dom))?;
            Ok(None)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// A zeroed status request (helper for callers building one).
pub fn status_request(dom: u16, port: u32) -> EvtchnStatus {
    let mut s = EvtchnStatus::new_zeroed();
    s.dom = dom;
    s.port = port;
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::fake::FakeMemory;
    use crate::event::{DomainConfig, TwoLevel};
    use crate::hypercall::fake::{FakePlatform, BASE};
    use zerocopy::{FromBytes, IntoBytes};

    fn engine() -> EventChannels<TwoLevel<FakeMemory>> {
        let mut ev = EventChannels::new();
        ev.add_domain(DomId(1), DomainConfig::guest(1), TwoLevel::new(FakeMemory::new())).unwrap();
        ev
    }

    fn put<T: IntoBytes + zerocopy::Immutable>(p: &mut FakePlatform, v: &T) {
        p.mem[..core::mem::size_of::<T>()].copy_from_slice(v.as_bytes());
    }

    fn get<T: FromBytes>(p: &FakePlatform) -> T {
        T::read_from_prefix(&p.mem[..]).unwrap().0
    }

    #[test]
    fn a_loopback_channel_through_the_decoder() {
        let mut ev = engine();
        let mut p = FakePlatform::new(false);
        let me = DomId(1);
        put(&mut p, &EvtchnAllocUnbound { dom: 0x7ff0, remote_dom: 0x7ff0, port: 0 });
        event_channel_op(&mut ev, &mut p, me, EVTCHNOP_ALLOC_UNBOUND, BASE).unwrap();
        let a = get::<EvtchnAllocUnbound>(&p).port;
        assert_ne!(a, 0);
        put(&mut p, &EvtchnBindInterdomain { remote_dom: 0x7ff0, _pad: 0, remote_port: a, local_port: 0 });
        assert!(event_channel_op(&mut ev, &mut p, me, EVTCHNOP_BIND_INTERDOMAIN, BASE).unwrap().is_some());
        let b = get::<EvtchnBindInterdomain>(&p).local_port;
        assert_ne!(b, a);
        put(&mut p, &EvtchnSend { port: b });
        let n = event_channel_op(&mut ev, &mut p, me, EVTCHNOP_SEND, BASE).unwrap().expect("notified");
        assert_eq!(n.port, Port(a));
        let mut s = status_request(0x7ff0, a);
        put(&mut p, &s);
        event_channel_op(&mut ev, &mut p, me, EVTCHNOP_STATUS, BASE).unwrap();
        s = get(&p);
        assert_eq!(s.status, EVTCHNSTAT_INTERDOMAIN);
    }

    #[test]
    fn hostile_arguments() {
        let mut ev = engine();
        let mut p = FakePlatform::new(false);
        let me = DomId(1);
        put(&mut p, &EvtchnSend { port: 5 });
        assert_eq!(event_channel_op(&mut ev, &mut p, me, EVTCHNOP_SEND, BASE), Err(Errno::EINVAL));
        put(&mut p, &EvtchnSend { port: 1 << 20 });
        assert_eq!(event_channel_op(&mut ev, &mut p, me, EVTCHNOP_SEND, BASE), Err(Errno::EINVAL));
        put(&mut p, &EvtchnBindInterdomain { remote_dom: 0x7ff0, _pad: 0, remote_port: 9, local_port: 0 });
        assert_eq!(event_channel_op(&mut ev, &mut p, me, EVTCHNOP_BIND_INTERDOMAIN, BASE), Err(Errno::EINVAL));
        assert_eq!(event_channel_op(&mut ev, &mut p, me, 99, BASE), Err(Errno::ENOSYS));
        assert_eq!(event_channel_op(&mut ev, &mut p, me, EVTCHNOP_SEND, 0x10), Err(Errno::EFAULT));
        assert_eq!(event_channel_op(&mut ev, &mut p, DomId(3), EVTCHNOP_SEND, BASE), Err(Errno::ESRCH));
    }
}
