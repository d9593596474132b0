//! `event_channel_op` (hypercall 32): decodes each command's argument, runs it on the
//! event-channel engine (`crate::event`), writes the results back, and hands the
//! notifications it produced to the machine.
#![forbid(unsafe_code)]

use crate::event::{EventChannels, EventMemory, Fifo, FifoMemory, Notification, PortLayout, Switchable};
use alloc::vec::Vec;
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
        EVTCHNOP_BIND_PIRQ => {
            // `BIND_PIRQ__WILL_SHARE` is accepted and changes nothing: no line is shared.
            let mut a: EvtchnBindPirq = read_guest(mem, arg)?;
            a.port = ev.bind_pirq(caller, a.pirq)?.0;
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
        EVTCHNOP_BIND_VCPU => {
            let a: EvtchnBindVcpu = read_guest(mem, arg)?;
            ev.bind_vcpu(caller, Port(a.port), VcpuId(a.vcpu))?;
            Ok(None)
        }
        EVTCHNOP_SET_PRIORITY => {
            let a: EvtchnSetPriority = read_guest(mem, arg)?;
            ev.set_priority(caller, Port(a.port), a.priority)?;
            Ok(None)
        }
        // The FIFO ABI needs frames held: see `event_channel_op_switchable`.
        EVTCHNOP_EXPAND_ARRAY => Err(Errno::EOPNOTSUPP),
        _ => Err(Errno::ENOSYS),
    }
}

/// Frames the FIFO ABI keeps: held writable for the hypervisor while in use, as Xen's
/// `map_guest_page`/`unmap_guest_page`.
pub trait FrameHolder {
    /// Holds the caller's frame `mfn` writable: `EINVAL` if it is not the caller's or
    /// cannot be writable (a page table, a descriptor frame).
    fn hold(&mut self, mfn: u64) -> Result<(), Errno>;
    /// Lets go of one holding of `dom`'s frame `mfn`.
    fn release(&mut self, dom: DomId, mfn: u64);
}

/// The events an operation raised: at most one for every command but `expand_array`,
/// which may re-raise a page's worth (so the common path allocates nothing).
#[derive(Debug, Default)]
pub struct Raised {
    one: Option<Notification>,
    many: Vec<Notification>,
}

impl IntoIterator for Raised {
    type Item = Notification;
    type IntoIter = core::iter::Chain<core::option::IntoIter<Notification>, alloc::vec::IntoIter<Notification>>;

    /// Every notification raised.
    fn into_iter(self) -> Self::IntoIter {
        self.one.into_iter().chain(self.many)
    }
}

/// The event-channel commands whose layout is [`Switchable`]: `init_control` and
/// `expand_array` of the FIFO ABI, `reset` (which switches back to 2-level) and every
/// other command through [`event_channel_op`]. The notifications produced are returned.
pub fn event_channel_op_switchable<M: EventMemory, F: FifoMemory + Default>(
    ev: &mut EventChannels<Switchable<M, F>>,
    mem: &mut impl GuestMemory,
    frames: &mut impl FrameHolder,
    caller: DomId,
    cmd: u32,
    arg: u64,
) -> Result<Raised, Errno> {
    match cmd {
        EVTCHNOP_INIT_CONTROL => {
            let mut a: EvtchnInitControl = read_guest(mem, arg)?;
            init_control(ev, frames, caller, &a)?;
            // As Xen: the argument is written back only on success.
            a.link_bits = EVTCHN_FIFO_LINK_BITS as u8;
            write_guest(mem, arg, &a)?;
            Ok(Raised::default())
        }
        EVTCHNOP_EXPAND_ARRAY => {
            let a: EvtchnExpandArray = read_guest(mem, arg)?;
            Ok(Raised { one: None, many: expand_array(ev, frames, caller, a.array_gfn)? })
        }
        EVTCHNOP_RESET => {
            let a: EvtchnReset = read_guest(mem, arg)?;
            let dom = if DomId(a.dom) == DomId::SELF { caller } else { DomId(a.dom) };
            ev.reset(caller, DomId(a.dom))?;
            // Xen's evtchn_reset: back to the 2-level ABI, its FIFO pages let go.
            if let Some(fifo) = ev.layout_mut(dom).and_then(|l| l.switch_to_two_level()) {
                for mfn in fifo.memory().frames() {
                    frames.release(dom, mfn);
                }
            }
            Ok(Raised::default())
        }
        _ => Ok(Raised { one: event_channel_op(ev, mem, caller, cmd, arg)?, many: Vec::new() }),
    }
}

/// Xen's `evtchn_fifo_init_control`, errnos in its order: `ENOENT` no such vCPU, `EINVAL`
/// an offset that is unaligned or leaves the block past the page, a vCPU that has its block
/// already, or a frame that cannot be held. The first call switches the domain to FIFO.
fn init_control<M: EventMemory, F: FifoMemory + Default>(
    ev: &mut EventChannels<Switchable<M, F>>,
    frames: &mut impl FrameHolder,
    caller: DomId,
    a: &EvtchnInitControl,
) -> Result<(), Errno> {
    let vcpus = ev.vcpus(caller).ok_or(Errno::ESRCH)?;
    if a.vcpu >= vcpus {
        return Err(Errno::ENOENT);
    }
    if a.offset > 4096 - crate::event::fifo::CONTROL_BLOCK_SIZE || a.offset & 7 != 0 {
        return Err(Errno::EINVAL);
    }
    let vcpu = VcpuId(a.vcpu);
    let ports = ev.ports_in_use(caller);
    let layout = ev.layout_mut(caller).ok_or(Errno::ESRCH)?;
    if layout.fifo().is_some_and(|f| f.memory().has_control_block(vcpu)) {
        return Err(Errno::EINVAL);
    }
    frames.hold(a.control_gfn)?;
    match layout.fifo_mut() {
        Some(f) => f.memory_mut().set_control_block(vcpu, a.control_gfn, a.offset),
        None => {
            let mut f = Fifo::new(F::default(), vcpus);
            f.memory_mut().set_control_block(vcpu, a.control_gfn, a.offset);
            layout.switch_to_fifo(f, ports.into_iter());
        }
    }
    Ok(())
}

/// Xen's `evtchn_fifo_expand_array`: `EOPNOTSUPP` before `init_control`, `ENOSPC` past
/// the last page, `EINVAL` a frame that cannot be held. Ports of the new page made pending
/// before it existed are raised now.
fn expand_array<M: EventMemory, F: FifoMemory + Default>(
    ev: &mut EventChannels<Switchable<M, F>>,
    frames: &mut impl FrameHolder,
    caller: DomId,
    gfn: u64,
) -> Result<Vec<Notification>, Errno> {
    let layout = ev.layout_mut(caller).ok_or(Errno::ESRCH)?;
    let fifo = layout.fifo_mut().ok_or(Errno::EOPNOTSUPP)?;
    let pages = fifo.memory().array_pages();
    if pages >= crate::event::fifo::MAX_ARRAY_PAGES {
        return Err(Errno::ENOSPC);
    }
    frames.hold(gfn)?;
    fifo.memory_mut().add_array_page(gfn);
    let first = pages * crate::event::fifo::WORDS_PER_PAGE;
    let mut raised = Vec::new();
    for port in (first..first + crate::event::fifo::WORDS_PER_PAGE).map(Port) {
        let Some(layout) = ev.layout(caller) else { break };
        if ev.notify_vcpu(caller, port).is_none() {
            break;
        }
        if layout.saved_pending(port) {
            raised.extend(ev.raise(caller, port));
        }
    }
    Ok(raised)
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

    // ---- The FIFO ABI, through the decoder ----

    use crate::event::fake::FakeFifo;
    use crate::event::Switchable;

    type Fifo2 = EventChannels<Switchable<FakeMemory, FakeFifo>>;

    /// Holds any frame below 0x1000 (the caller's), refuses the rest; records releases.
    #[derive(Default)]
    struct Holder {
        held: std::vec::Vec<u64>,
        released: std::vec::Vec<(u16, u64)>,
    }

    impl FrameHolder for Holder {
        fn hold(&mut self, mfn: u64) -> Result<(), Errno> {
            if mfn >= 0x1000 {
                return Err(Errno::EINVAL);
            }
            self.held.push(mfn);
            Ok(())
        }
        fn release(&mut self, dom: DomId, mfn: u64) {
            self.released.push((dom.0, mfn));
        }
    }

    const ME: DomId = DomId(1);
    const PEER: DomId = DomId(2);

    fn fifo_engine() -> Fifo2 {
        let mut ev = Fifo2::new();
        ev.add_domain(ME, DomainConfig::guest(2), Switchable::new(FakeMemory::new())).unwrap();
        ev.add_domain(PEER, DomainConfig::guest(1), Switchable::new(FakeMemory::new())).unwrap();
        ev
    }

    fn op<T: IntoBytes + zerocopy::Immutable>(ev: &mut Fifo2, h: &mut Holder, who: DomId, cmd: u32, a: &T) -> Result<std::vec::Vec<Notification>, Errno> {
        let mut p = FakePlatform::new(false);
        put(&mut p, a);
        event_channel_op_switchable(ev, &mut p, h, who, cmd, BASE).map(|r| r.into_iter().collect())
    }

    fn init(ev: &mut Fifo2, h: &mut Holder, vcpu: u32, gfn: u64, offset: u32) -> Result<u8, Errno> {
        let mut p = FakePlatform::new(false);
        put(&mut p, &EvtchnInitControl { control_gfn: gfn, offset, vcpu, link_bits: 0, _pad: [0; 7] });
        event_channel_op_switchable(ev, &mut p, h, ME, EVTCHNOP_INIT_CONTROL, BASE)?;
        Ok(get::<EvtchnInitControl>(&p).link_bits)
    }

    fn fifo(ev: &mut Fifo2) -> &mut FakeFifo {
        ev.layout_mut(ME).unwrap().fifo_mut().unwrap().memory_mut()
    }

    /// An engine whose ME runs FIFO with one array page, every event unmasked.
    fn fifo_running() -> (Fifo2, Holder) {
        let (mut ev, mut h) = (fifo_engine(), Holder::default());
        init(&mut ev, &mut h, 0, 0x10, 0).unwrap();
        op(&mut ev, &mut h, ME, EVTCHNOP_EXPAND_ARRAY, &EvtchnExpandArray { array_gfn: 0x20 }).unwrap();
        unmask_all(&mut ev, 0);
        (ev, h)
    }

    fn unmask_all(ev: &mut Fifo2, page: usize) {
        fifo(ev).pages[page].1.iter_mut().for_each(|w| *w &= !(1 << 30));
    }

    /// A channel from PEER to ME: (ME's port, PEER's port).
    fn channel(ev: &mut Fifo2) -> (Port, Port) {
        let mine = ev.alloc_unbound(ME, ME, PEER).unwrap();
        let (theirs, _) = ev.bind_interdomain(PEER, ME, mine).unwrap();
        (mine, theirs)
    }

    #[test]
    fn init_control_checks_in_xens_order() {
        let (mut ev, mut h) = (fifo_engine(), Holder::default());
        assert_eq!(init(&mut ev, &mut h, 2, 0x10, 0), Err(Errno::ENOENT));
        assert_eq!(init(&mut ev, &mut h, 0, 0x10, 4), Err(Errno::EINVAL), "unaligned");
        assert_eq!(init(&mut ev, &mut h, 0, 0x10, 4096 - 64), Err(Errno::EINVAL), "past the page");
        assert_eq!(init(&mut ev, &mut h, 0, 0x5000, 0), Err(Errno::EINVAL), "a frame that cannot be held");
        assert!(ev.layout(ME).unwrap().fifo().is_none(), "nothing switched on a refusal");
        assert_eq!(init(&mut ev, &mut h, 0, 0x10, 4096 - 72), Ok(17));
        assert_eq!(init(&mut ev, &mut h, 0, 0x11, 0), Err(Errno::EINVAL), "a second block for vCPU 0");
        assert_eq!(init(&mut ev, &mut h, 1, 0x11, 0), Ok(17));
        assert_eq!(h.held, [0x10, 0x11]);
        // expand_array before init is EOPNOTSUPP; 128 pages at most.
        assert_eq!(op(&mut ev, &mut h, PEER, EVTCHNOP_EXPAND_ARRAY, &EvtchnExpandArray { array_gfn: 0x20 }), Err(Errno::EOPNOTSUPP));
        for k in 0..128 {
            op(&mut ev, &mut h, ME, EVTCHNOP_EXPAND_ARRAY, &EvtchnExpandArray { array_gfn: 0x100 + k }).unwrap();
        }
        assert_eq!(op(&mut ev, &mut h, ME, EVTCHNOP_EXPAND_ARRAY, &EvtchnExpandArray { array_gfn: 0x300 }), Err(Errno::ENOSPC));
        assert_eq!(op(&mut ev, &mut h, ME, EVTCHNOP_EXPAND_ARRAY, &EvtchnExpandArray { array_gfn: 0x300 }), Err(Errno::ENOSPC));
        let mut ev2 = fifo_engine();
        init(&mut ev2, &mut h, 0, 0x10, 0).unwrap();
        assert_eq!(op(&mut ev2, &mut h, ME, EVTCHNOP_EXPAND_ARRAY, &EvtchnExpandArray { array_gfn: 0x9999 }), Err(Errno::EINVAL));
    }

    #[test]
    fn events_queue_in_order_and_raise_the_upcall_once() {
        let (mut ev, _) = fifo_running();
        let (a, pa) = channel(&mut ev);
        let (b, pb) = channel(&mut ev);
        let (c, pc) = channel(&mut ev);
        // Binding set each local end pending (as Xen); consume those first.
        let first = fifo(&mut ev).guest_consume(0);
        assert!(first.is_empty(), "bind_interdomain marks the binder's (PEER's) port: {first:?}");
        ev.layout_mut(ME).unwrap().memory_mut().info.vcpu_info[0].evtchn_upcall_pending = 0;
        let n1 = ev.send(PEER, pc).unwrap().unwrap();
        let n2 = ev.send(PEER, pa).unwrap().unwrap();
        let n3 = ev.send(PEER, pb).unwrap().unwrap();
        assert!(n1.delivery.kick && !n2.delivery.kick && !n3.delivery.kick, "one kick for the queue");
        assert!(n1.delivery.newly_pending && n2.delivery.newly_pending);
        // A second send of a pending port changes nothing.
        assert_eq!(ev.send(PEER, pa).unwrap().unwrap().delivery, crate::event::Delivery::NONE);
        assert_eq!(ev.layout(ME).unwrap().memory().info.vcpu_info[0].evtchn_upcall_pending, 1);
        assert_eq!(fifo(&mut ev).block(0).ready, 1 << 7);
        assert_eq!(fifo(&mut ev).guest_consume(0), [c.0, a.0, b.0]);
        assert!(fifo(&mut ev).guest_consume(0).is_empty());
        // The queue was drained: the next event is a new head.
        ev.send(PEER, pb).unwrap();
        assert_eq!(fifo(&mut ev).block(0).head[7], b.0);
        assert_eq!(fifo(&mut ev).guest_consume(0), [b.0]);
    }

    #[test]
    fn priorities_masks_and_the_unmask_hypercall() {
        let (mut ev, mut h) = (fifo_engine(), Holder::default());
        // Under 2-level, set_priority is ENOSYS.
        let (a, pa) = channel(&mut ev);
        assert_eq!(op(&mut ev, &mut h, ME, EVTCHNOP_SET_PRIORITY, &EvtchnSetPriority { port: a.0, priority: 3 }), Err(Errno::ENOSYS));
        init(&mut ev, &mut h, 0, 0x10, 0).unwrap();
        op(&mut ev, &mut h, ME, EVTCHNOP_EXPAND_ARRAY, &EvtchnExpandArray { array_gfn: 0x20 }).unwrap();
        let (b, pb) = channel(&mut ev);
        fifo(&mut ev).guest_consume(0);
        assert_eq!(op(&mut ev, &mut h, ME, EVTCHNOP_SET_PRIORITY, &EvtchnSetPriority { port: a.0, priority: 16 }), Err(Errno::EINVAL));
        assert_eq!(op(&mut ev, &mut h, ME, EVTCHNOP_SET_PRIORITY, &EvtchnSetPriority { port: 5000, priority: 1 }), Err(Errno::EINVAL));
        op(&mut ev, &mut h, ME, EVTCHNOP_SET_PRIORITY, &EvtchnSetPriority { port: b.0, priority: 3 }).unwrap();
        // a stays masked (as Linux hands pages over); b is unmasked.
        *fifo(&mut ev).word_mut(b.0) &= !(1 << 30);
        ev.send(PEER, pa).unwrap();
        ev.send(PEER, pb).unwrap();
        assert_eq!(fifo(&mut ev).block(0).ready, 1 << 3);
        assert_eq!(fifo(&mut ev).word(a.0) >> 29, 0b110, "pending, masked, not linked");
        assert_eq!(fifo(&mut ev).guest_consume(0), [b.0]);
        // EVTCHNOP_unmask links the pending port.
        op(&mut ev, &mut h, ME, EVTCHNOP_UNMASK, &EvtchnUnmask { port: a.0 }).unwrap();
        assert_eq!(fifo(&mut ev).block(0).ready, 1 << 7);
        assert_eq!(fifo(&mut ev).guest_consume(0), [a.0]);
        // Poll sees the FIFO pending bit.
        ev.send(PEER, pb).unwrap();
        assert_eq!(ev.poll_pending(ME, b), Ok(true));
    }

    #[test]
    fn a_port_pending_before_its_page_is_raised_when_the_page_comes() {
        let (mut ev, mut h) = (fifo_engine(), Holder::default());
        // Pending under 2-level, then the switch, then the page.
        let (a, pa) = channel(&mut ev);
        ev.send(PEER, pa).unwrap();
        assert!(ev.layout(ME).unwrap().is_pending(a));
        init(&mut ev, &mut h, 0, 0x10, 0).unwrap();
        assert!(!ev.layout(ME).unwrap().is_pending(a), "no word yet");
        // Made pending with no page: saved.
        let (b, pb) = channel(&mut ev);
        ev.send(PEER, pb).unwrap();
        let raised = op(&mut ev, &mut h, ME, EVTCHNOP_EXPAND_ARRAY, &EvtchnExpandArray { array_gfn: 0x20 }).unwrap();
        // Pages come masked, so the events are pending but wait for their unmask.
        assert_eq!(raised.iter().map(|n| n.port).collect::<std::vec::Vec<_>>(), [a, b]);
        assert!(ev.layout(ME).unwrap().is_pending(a) && ev.layout(ME).unwrap().is_pending(b));
        op(&mut ev, &mut h, ME, EVTCHNOP_UNMASK, &EvtchnUnmask { port: a.0 }).unwrap();
        op(&mut ev, &mut h, ME, EVTCHNOP_UNMASK, &EvtchnUnmask { port: b.0 }).unwrap();
        assert_eq!(fifo(&mut ev).guest_consume(0), [a.0, b.0]);
    }

    #[test]
    fn a_guest_racing_the_link_is_handled_and_busy_ports_are_not_reused() {
        let (mut ev, _) = fifo_running();
        let (a, pa) = channel(&mut ev);
        let (b, pb) = channel(&mut ev);
        fifo(&mut ev).guest_consume(0);
        ev.send(PEER, pa).unwrap();
        // The guest masks the tail between the hypervisor's read and its exchange, twice.
        fifo(&mut ev).race = std::vec![1 << 30, 0];
        ev.send(PEER, pb).unwrap();
        let w = fifo(&mut ev).word(a.0);
        assert_eq!(w & 0x1ffff, b.0, "linked to b after the retry");
        assert_eq!(w & (1 << 28), 0, "BUSY cleared");
        // The guest unmasks a again and consumes: a is masked (skipped), b is handled.
        assert_eq!(fifo(&mut ev).guest_consume(0), [b.0]);
        // A closed port still on a queue (LINKED) is not handed out again until the guest
        // has taken it off.
        *fifo(&mut ev).word_mut(a.0) &= !(1 << 30);
        ev.send(PEER, pa).unwrap();
        assert_ne!(fifo(&mut ev).word(a.0) & (1 << 29), 0);
        ev.close(ME, a).unwrap();
        let next = ev.alloc_unbound(ME, ME, PEER).unwrap();
        assert_ne!(next, a, "reused while linked");
        ev.close(ME, next).unwrap();
        fifo(&mut ev).guest_consume(0);
        assert_eq!(ev.alloc_unbound(ME, ME, PEER), Ok(a), "free once unlinked");
    }

    #[test]
    fn reset_goes_back_to_two_level_and_releases_the_frames() {
        let (mut ev, mut h) = (fifo_engine(), Holder::default());
        init(&mut ev, &mut h, 0, 0x10, 0).unwrap();
        init(&mut ev, &mut h, 1, 0x11, 8).unwrap();
        op(&mut ev, &mut h, ME, EVTCHNOP_EXPAND_ARRAY, &EvtchnExpandArray { array_gfn: 0x20 }).unwrap();
        channel(&mut ev);
        op(&mut ev, &mut h, ME, EVTCHNOP_RESET, &EvtchnReset { dom: 0x7ff0 }).unwrap();
        assert!(ev.layout(ME).unwrap().fifo().is_none());
        h.released.sort();
        assert_eq!(h.released, [(1, 0x10), (1, 0x11), (1, 0x20)]);
        assert_eq!(op(&mut ev, &mut h, ME, EVTCHNOP_SET_PRIORITY, &EvtchnSetPriority { port: 1, priority: 1 }), Err(Errno::ENOSYS));
        // And FIFO can be set up again.
        assert_eq!(init(&mut ev, &mut h, 0, 0x12, 0), Ok(17));
    }

    #[test]
    fn bind_vcpu_moves_notifications() {
        let (mut ev, mut h) = (fifo_engine(), Holder::default());
        let (a, pa) = channel(&mut ev);
        assert_eq!(op(&mut ev, &mut h, ME, EVTCHNOP_BIND_VCPU, &EvtchnBindVcpu { port: a.0, vcpu: 2 }), Err(Errno::ENOENT));
        assert_eq!(op(&mut ev, &mut h, ME, EVTCHNOP_BIND_VCPU, &EvtchnBindVcpu { port: 4000, vcpu: 1 }), Err(Errno::EINVAL));
        let ipi = ev.bind_ipi(ME, VcpuId(0)).unwrap();
        assert_eq!(op(&mut ev, &mut h, ME, EVTCHNOP_BIND_VCPU, &EvtchnBindVcpu { port: ipi.0, vcpu: 1 }), Err(Errno::EINVAL));
        let timer = ev.bind_virq(ME, hypercall_abi::event_channel::VIRQ_TIMER, VcpuId(0)).unwrap();
        assert_eq!(op(&mut ev, &mut h, ME, EVTCHNOP_BIND_VCPU, &EvtchnBindVcpu { port: timer.0, vcpu: 1 }), Err(Errno::EINVAL));
        op(&mut ev, &mut h, ME, EVTCHNOP_BIND_VCPU, &EvtchnBindVcpu { port: a.0, vcpu: 1 }).unwrap();
        ev.layout_mut(ME).unwrap().clear_pending(a);
        assert_eq!(ev.send(PEER, pa).unwrap().unwrap().vcpu, VcpuId(1));
    }
}
