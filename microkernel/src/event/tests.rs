//! Host tests of the event channel engine: every operation, hostile calls with Xen's errnos,
//! the 2-level delivery rules, the port limit, and a 100000-event ping-pong.

use alloc::vec;

use hypercall_abi::errno::Errno;
use hypercall_abi::event_channel::{
    EvtchnStatus, EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_IPI, EVTCHNSTAT_UNBOUND,
    EVTCHNSTAT_VIRQ, NR_VIRQS, VIRQ_CONSOLE, VIRQ_DEBUG, VIRQ_TIMER,
};
use hypercall_abi::{DomId, Port, VcpuId};

use super::fake::FakeMemory;
use super::*;

type Engine = EventChannels<TwoLevel<FakeMemory>>;

const D0: DomId = DomId(0);
const A: DomId = DomId(1);
const B: DomId = DomId(2);

fn engine() -> Engine {
    let mut e = Engine::new();
    e.add_domain(
        D0,
        DomainConfig::control(1),
        TwoLevel::new(FakeMemory::new()),
    )
    .unwrap();
    e.add_domain(A, DomainConfig::guest(2), TwoLevel::new(FakeMemory::new()))
        .unwrap();
    e.add_domain(B, DomainConfig::guest(2), TwoLevel::new(FakeMemory::new()))
        .unwrap();
    e
}

fn mem(e: &mut Engine, d: DomId) -> &mut FakeMemory {
    e.layout_mut(d).unwrap().memory_mut()
}

/// Connects A and B: B offers a port to A, A binds. Returns (A's port, B's port).
fn connect(e: &mut Engine) -> (Port, Port) {
    let pb = e.alloc_unbound(B, DomId::SELF, A).unwrap();
    let (pa, _) = e.bind_interdomain(A, B, pb).unwrap();
    (pa, pb)
}

#[test]
fn alloc_unbound_gives_lowest_free_port_after_reserved_zero() {
    let mut e = engine();
    assert_eq!(e.alloc_unbound(A, DomId::SELF, B), Ok(Port(1)));
    assert_eq!(e.alloc_unbound(A, A, DomId::SELF), Ok(Port(2)));
    assert_eq!(e.port_state(A, Port(0)), Some(PortState::Reserved));
    assert_eq!(
        e.port_state(A, Port(1)),
        Some(PortState::Unbound { remote: B })
    );
    assert_eq!(
        e.port_state(A, Port(2)),
        Some(PortState::Unbound { remote: A })
    );
    e.close(A, Port(1)).unwrap();
    assert_eq!(e.alloc_unbound(A, DomId::SELF, B), Ok(Port(1)));
}

#[test]
fn alloc_unbound_hostile() {
    let mut e = engine();
    assert_eq!(e.alloc_unbound(A, B, A), Err(Errno::EPERM));
    assert_eq!(e.alloc_unbound(A, DomId(9), A), Err(Errno::ESRCH));
    // A remote domain that does not exist: ESRCH, and no port is used up.
    assert_eq!(e.alloc_unbound(A, DomId::SELF, DomId(77)), Err(Errno::ESRCH));
    assert_eq!(e.port_state(A, Port(1)), Some(PortState::Free));
    assert_eq!(e.port_state(B, Port(1)), Some(PortState::Free));
    // The control domain may allocate in another domain.
    assert_eq!(e.alloc_unbound(D0, B, D0), Ok(Port(1)));
    assert_eq!(
        e.port_state(B, Port(1)),
        Some(PortState::Unbound { remote: D0 })
    );
}

#[test]
fn bind_interdomain_connects_both_ends_and_sets_local_pending() {
    let mut e = engine();
    let pb = e.alloc_unbound(B, DomId::SELF, A).unwrap();
    let (pa, n) = e.bind_interdomain(A, B, pb).unwrap();
    assert_eq!(pa, Port(1));
    assert_eq!(
        e.port_state(A, pa),
        Some(PortState::Interdomain {
            remote: B,
            remote_port: pb
        })
    );
    assert_eq!(
        e.port_state(B, pb),
        Some(PortState::Interdomain {
            remote: A,
            remote_port: pa
        })
    );
    let kick = Delivery {
        newly_pending: true,
        kick: true,
    };
    assert_eq!(
        n,
        Notification {
            dom: A,
            vcpu: VcpuId(0),
            port: pa,
            delivery: kick
        }
    );
    assert_eq!(mem(&mut e, A).guest_take_events(0), vec![1]);
}

#[test]
fn bind_interdomain_hostile() {
    let mut e = engine();
    let pb = e.alloc_unbound(B, DomId::SELF, D0).unwrap();
    // Unbound, but for someone else.
    assert_eq!(e.bind_interdomain(A, B, pb), Err(Errno::EINVAL));
    // Free, reserved and out-of-range remote ports.
    assert_eq!(e.bind_interdomain(A, B, Port(2)), Err(Errno::EINVAL));
    assert_eq!(e.bind_interdomain(A, B, Port(0)), Err(Errno::EINVAL));
    assert_eq!(e.bind_interdomain(A, B, Port(4096)), Err(Errno::EINVAL));
    assert_eq!(e.bind_interdomain(A, B, Port(u32::MAX)), Err(Errno::EINVAL));
    assert_eq!(e.bind_interdomain(A, DomId(9), Port(1)), Err(Errno::ESRCH));
    // Nothing was allocated by the failures.
    assert_eq!(e.port_state(A, Port(1)), Some(PortState::Free));
    // Binding twice: the remote port is no longer unbound.
    let pb = e.alloc_unbound(B, DomId::SELF, A).unwrap();
    e.bind_interdomain(A, B, pb).unwrap();
    assert_eq!(e.bind_interdomain(A, B, pb), Err(Errno::EINVAL));
}

#[test]
fn loopback_interdomain_within_one_domain() {
    let mut e = engine();
    let p1 = e.alloc_unbound(A, DomId::SELF, DomId::SELF).unwrap();
    let (p2, _) = e.bind_interdomain(A, DomId::SELF, p1).unwrap();
    assert_eq!(mem(&mut e, A).guest_take_events(0), vec![p2.0]);
    e.send(A, p2).unwrap();
    assert_eq!(mem(&mut e, A).guest_take_events(0), vec![p1.0]);
    e.close(A, p1).unwrap();
    assert_eq!(e.port_state(A, p2), Some(PortState::Unbound { remote: A }));
}

#[test]
fn send_interdomain_marks_remote_pending() {
    let mut e = engine();
    let (pa, pb) = connect(&mut e);
    let n = e.send(A, pa).unwrap().unwrap();
    assert_eq!((n.dom, n.port, n.vcpu), (B, pb, VcpuId(0)));
    assert!(n.delivery.kick && n.delivery.newly_pending);
    assert!(e.layout(B).unwrap().is_pending(pb));
    // A second send before the guest looks: already pending, nothing more to do.
    let n = e.send(A, pa).unwrap().unwrap();
    assert_eq!(n.delivery, Delivery::NONE);
    assert_eq!(mem(&mut e, B).guest_take_events(0), vec![pb.0]);
}

#[test]
fn send_hostile_and_unbound() {
    let mut e = engine();
    let (pa, _) = connect(&mut e);
    // Ports of other domains: B's port 2 does not exist in A.
    let pb2 = e.alloc_unbound(B, DomId::SELF, A).unwrap();
    assert_eq!(e.send(A, pb2), Err(Errno::EINVAL));
    assert_eq!(e.send(A, Port(0)), Err(Errno::EINVAL));
    assert_eq!(e.send(A, Port(4096)), Err(Errno::EINVAL));
    assert_eq!(e.send(DomId(9), pa), Err(Errno::ESRCH));
    // Unbound: silently dropped.
    assert_eq!(e.send(B, pb2), Ok(None));
    assert!(!e.layout(B).unwrap().is_pending(pb2));
    // VIRQ ports are raised by the hypervisor, not sent.
    let pv = e.bind_virq(A, VIRQ_TIMER, VcpuId(0)).unwrap();
    assert_eq!(e.send(A, pv), Err(Errno::EINVAL));
    // Closed.
    e.close(A, pa).unwrap();
    assert_eq!(e.send(A, pa), Err(Errno::EINVAL));
}

#[test]
fn bind_ipi_and_send_to_self() {
    let mut e = engine();
    let p = e.bind_ipi(A, VcpuId(1)).unwrap();
    assert_eq!(e.port_state(A, p), Some(PortState::Ipi));
    let n = e.send(A, p).unwrap().unwrap();
    assert_eq!((n.dom, n.vcpu, n.port), (A, VcpuId(1), p));
    assert!(n.delivery.kick);
    assert_eq!(mem(&mut e, A).sel(0), 0);
    assert_eq!(mem(&mut e, A).guest_take_events(1), vec![p.0]);
    assert_eq!(e.bind_ipi(A, VcpuId(2)), Err(Errno::ENOENT));
}

#[test]
fn bind_virq_rules() {
    let mut e = engine();
    let t0 = e.bind_virq(A, VIRQ_TIMER, VcpuId(0)).unwrap();
    let t1 = e.bind_virq(A, VIRQ_TIMER, VcpuId(1)).unwrap();
    assert_eq!(e.bind_virq(A, VIRQ_TIMER, VcpuId(1)), Err(Errno::EEXIST));
    assert_eq!(e.bind_virq(A, VIRQ_TIMER, VcpuId(2)), Err(Errno::ENOENT));
    assert_eq!(e.bind_virq(A, NR_VIRQS, VcpuId(0)), Err(Errno::EINVAL));
    // Global virqs bind on vCPU 0 only.
    assert_eq!(e.bind_virq(A, VIRQ_CONSOLE, VcpuId(1)), Err(Errno::EINVAL));
    let c = e.bind_virq(A, VIRQ_CONSOLE, VcpuId(0)).unwrap();
    assert_eq!(
        e.port_state(A, t1),
        Some(PortState::Virq { virq: VIRQ_TIMER })
    );

    let n = e.raise_virq(A, VcpuId(1), VIRQ_TIMER).unwrap();
    assert_eq!((n.vcpu, n.port), (VcpuId(1), t1));
    assert_eq!(mem(&mut e, A).guest_take_events(1), vec![t1.0]);
    assert_eq!(e.raise_virq(A, VcpuId(0), VIRQ_CONSOLE).unwrap().port, c);
    assert_eq!(e.raise_virq(A, VcpuId(0), VIRQ_DEBUG), None);
    assert_eq!(e.raise_virq(A, VcpuId(5), VIRQ_TIMER), None);

    // Closing unbinds: the virq can be bound again, and raising it does nothing meanwhile.
    e.close(A, t0).unwrap();
    assert_eq!(e.raise_virq(A, VcpuId(0), VIRQ_TIMER), None);
    assert_eq!(e.bind_virq(A, VIRQ_TIMER, VcpuId(0)), Ok(t0));
}

#[test]
fn close_rules() {
    let mut e = engine();
    let (pa, pb) = connect(&mut e);
    assert_eq!(e.close(A, Port(0)), Err(Errno::EINVAL));
    assert_eq!(e.close(A, Port(7)), Err(Errno::EINVAL));
    assert_eq!(e.close(A, Port(4096)), Err(Errno::EINVAL));
    // Closing while the remote end is bound: it goes back to unbound, for us.
    e.close(A, pa).unwrap();
    assert_eq!(e.port_state(A, pa), Some(PortState::Free));
    assert_eq!(e.port_state(B, pb), Some(PortState::Unbound { remote: A }));
    assert_eq!(e.close(A, pa), Err(Errno::EINVAL));
    // The remote may now send into the void, and A may reconnect to the same port.
    assert_eq!(e.send(B, pb), Ok(None));
    let (pa2, _) = e.bind_interdomain(A, B, pb).unwrap();
    e.send(B, pb).unwrap();
    assert!(e.layout(A).unwrap().is_pending(pa2));
    // Freeing clears a stale pending bit.
    e.close(A, pa2).unwrap();
    assert!(!e.layout(A).unwrap().is_pending(pa2));
}

#[test]
fn status_reports_each_state() {
    let mut e = engine();
    let (pa, pb) = connect(&mut e);
    let u = e.alloc_unbound(A, DomId::SELF, D0).unwrap();
    let v = e.bind_virq(A, VIRQ_TIMER, VcpuId(1)).unwrap();
    let i = e.bind_ipi(A, VcpuId(1)).unwrap();
    let abi = |s: ChannelStatus| {
        let mut out = EvtchnStatus::default();
        s.write_to(&mut out);
        (out.status, out.vcpu, out.u.word0, out.u.word1)
    };
    let st = |e: &Engine, p| abi(e.status(A, DomId::SELF, p).unwrap());
    assert_eq!(st(&e, pa), (EVTCHNSTAT_INTERDOMAIN, 0, 2, pb.0));
    assert_eq!(st(&e, u), (EVTCHNSTAT_UNBOUND, 0, 0, 0));
    assert_eq!(st(&e, v), (EVTCHNSTAT_VIRQ, 1, VIRQ_TIMER, 0));
    assert_eq!(st(&e, i), (EVTCHNSTAT_IPI, 1, 0, 0));
    assert_eq!(st(&e, Port(0)), (EVTCHNSTAT_CLOSED, 0, 0, 0));
    assert_eq!(st(&e, Port(100)), (EVTCHNSTAT_CLOSED, 0, 0, 0));
    // Hostile: out of range, foreign, unknown.
    assert_eq!(e.status(A, DomId::SELF, Port(4096)), Err(Errno::EINVAL));
    assert_eq!(e.status(A, B, pb), Err(Errno::EPERM));
    assert_eq!(e.status(A, B, Port(5000)), Err(Errno::EINVAL));
    assert_eq!(e.status(A, DomId(9), Port(1)), Err(Errno::ESRCH));
    assert_eq!(
        abi(e.status(D0, B, pb).unwrap()),
        (EVTCHNSTAT_INTERDOMAIN, 0, 1, pa.0)
    );
}

#[test]
fn delivery_rules_pending_mask_selector_upcall() {
    let mut e = engine();
    let (pa, _) = connect(&mut e);
    mem(&mut e, A).guest_take_events(0);
    // Ports 1 and 2 share selector word 0; port 65 is in word 1.
    let ipi = e.bind_ipi(A, VcpuId(0)).unwrap();
    assert_eq!(ipi, Port(2));
    let first = e.send(A, ipi).unwrap().unwrap().delivery;
    assert_eq!(
        first,
        Delivery {
            newly_pending: true,
            kick: true
        }
    );
    assert_eq!(mem(&mut e, A).sel(0), 1);
    assert!(e.layout(A).unwrap().memory().upcall_pending(VcpuId(0)));
    // Same word, selector already set: pending but no new kick.
    let n = e.send(B, Port(1)).unwrap().unwrap();
    assert_eq!(
        (n.port, n.delivery),
        (
            pa,
            Delivery {
                newly_pending: true,
                kick: false
            }
        )
    );
    assert_eq!(mem(&mut e, A).guest_take_events(0), vec![1, 2]);
    // Selector cleared but upcall still pending from before: a new word sets the selector
    // and does not kick again.
    for _ in 3..65 {
        e.bind_ipi(A, VcpuId(0)).unwrap();
    }
    let p65 = e.bind_ipi(A, VcpuId(0)).unwrap();
    assert_eq!(p65, Port(65));
    mem(&mut e, A).info.vcpu_info[0].evtchn_upcall_pending = 1;
    let d = e.send(A, p65).unwrap().unwrap().delivery;
    assert_eq!(
        d,
        Delivery {
            newly_pending: true,
            kick: false
        }
    );
    assert_eq!(mem(&mut e, A).sel(0), 1 << 1);
    // The upcall mask does not stop the bookkeeping; it only gates the bounce.
    mem(&mut e, A).guest_take_events(0);
    mem(&mut e, A).info.vcpu_info[0].evtchn_upcall_mask = 1;
    assert!(e.send(A, p65).unwrap().unwrap().delivery.kick);
    assert!(e.layout(A).unwrap().memory().upcall_mask(VcpuId(0)));
}

#[test]
fn masked_events_stay_pending_and_arrive_on_unmask() {
    let mut e = engine();
    let (pa, pb) = connect(&mut e);
    mem(&mut e, A).guest_take_events(0);
    mem(&mut e, B).guest_mask(pb.0);
    let d = e.send(A, pa).unwrap().unwrap().delivery;
    assert_eq!(
        d,
        Delivery {
            newly_pending: true,
            kick: false
        }
    );
    assert!(e.layout(B).unwrap().is_pending(pb));
    assert!(e.layout(B).unwrap().is_masked(pb));
    assert_eq!(mem(&mut e, B).sel(0), 0);
    assert_eq!(mem(&mut e, B).guest_take_events(0), vec![]);
    let n = e.unmask(B, pb).unwrap();
    assert_eq!((n.dom, n.vcpu, n.port), (B, VcpuId(0), pb));
    assert!(n.delivery.kick);
    assert!(!e.layout(B).unwrap().is_masked(pb));
    assert_eq!(mem(&mut e, B).guest_take_events(0), vec![pb.0]);
    // Unmasking an unmasked or non-pending port changes nothing.
    assert_eq!(e.unmask(B, pb).unwrap().delivery, Delivery::NONE);
    mem(&mut e, B).guest_mask(pb.0);
    assert_eq!(e.unmask(B, pb).unwrap().delivery, Delivery::NONE);
    assert_eq!(mem(&mut e, B).sel(0), 0);
    // Hostile.
    assert_eq!(e.unmask(B, Port(4096)), Err(Errno::EINVAL));
    assert_eq!(e.unmask(DomId(9), pb), Err(Errno::ESRCH));
}

#[test]
fn port_limit_gives_enospc_and_others_keep_working() {
    let mut e = engine();
    let small = DomainConfig {
        port_limit: 8,
        ..DomainConfig::guest(1)
    };
    let s = DomId(5);
    e.add_domain(s, small, TwoLevel::new(FakeMemory::new()))
        .unwrap();
    for p in 1..8 {
        assert_eq!(e.bind_ipi(s, VcpuId(0)), Ok(Port(p)));
    }
    assert_eq!(e.bind_ipi(s, VcpuId(0)), Err(Errno::ENOSPC));
    assert_eq!(e.alloc_unbound(s, DomId::SELF, A), Err(Errno::ENOSPC));
    assert_eq!(e.bind_virq(s, VIRQ_TIMER, VcpuId(0)), Err(Errno::ENOSPC));
    let pa = e.alloc_unbound(A, DomId::SELF, s).unwrap();
    assert_eq!(e.bind_interdomain(s, A, pa), Err(Errno::ENOSPC));
    assert_eq!(e.send(s, Port(8)), Err(Errno::EINVAL));
    e.close(s, Port(3)).unwrap();
    assert_eq!(e.bind_interdomain(s, A, pa).unwrap().0, Port(3));
    // The default limit: 4095 usable ports.
    for p in 1..4096 {
        assert_eq!(e.bind_ipi(B, VcpuId(0)), Ok(Port(p)));
    }
    assert_eq!(e.bind_ipi(B, VcpuId(0)), Err(Errno::ENOSPC));
    assert_eq!(e.alloc_unbound(A, DomId::SELF, B), Ok(Port(2)));
    // A limit above the layout's is capped at 4096.
    let big = DomainConfig {
        port_limit: 100_000,
        ..DomainConfig::guest(1)
    };
    e.add_domain(DomId(6), big, TwoLevel::new(FakeMemory::new()))
        .unwrap();
    assert_eq!(
        e.status(DomId(6), DomId::SELF, Port(4096)),
        Err(Errno::EINVAL)
    );
}

#[test]
fn reset_closes_everything() {
    let mut e = engine();
    let (pa, pb) = connect(&mut e);
    e.bind_virq(A, VIRQ_TIMER, VcpuId(0)).unwrap();
    assert_eq!(e.reset(B, A), Err(Errno::EPERM));
    assert_eq!(e.reset(A, DomId(9)), Err(Errno::ESRCH));
    assert_eq!(e.reset(D0, A), Err(Errno::EINVAL));
    e.reset(A, DomId::SELF).unwrap();
    for p in 1..4 {
        assert_eq!(e.port_state(A, Port(p)), Some(PortState::Free));
    }
    assert_eq!(e.port_state(B, pb), Some(PortState::Unbound { remote: A }));
    assert_eq!(e.bind_virq(A, VIRQ_TIMER, VcpuId(0)), Ok(pa));
    e.set_controller_paused(A, true).unwrap();
    e.reset(D0, A).unwrap();
    assert_eq!(e.port_state(A, pa), Some(PortState::Free));
}

#[test]
fn domain_registry_rules() {
    let mut e = engine();
    let cfg = DomainConfig::guest(1);
    assert_eq!(
        e.add_domain(A, cfg, TwoLevel::new(FakeMemory::new())),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        e.add_domain(DomId::SELF, cfg, TwoLevel::new(FakeMemory::new())),
        Err(Errno::EINVAL)
    );
    let (_, pb) = connect(&mut e);
    assert!(e.remove_domain(A).is_some());
    assert_eq!(e.port_state(B, pb), Some(PortState::Unbound { remote: A }));
    assert_eq!(e.send(A, Port(1)), Err(Errno::ESRCH));
}

#[test]
fn ping_pong_100000_events_exact_counts() {
    const ROUNDS: u32 = 100_000;
    let mut e = engine();
    let (pa, pb) = connect(&mut e);
    // The bind's conservative notification.
    assert_eq!(mem(&mut e, A).guest_take_events(0), vec![pa.0]);
    let (mut got_a, mut got_b, mut kicks) = (0u32, 0u32, 0u32);
    for _ in 0..ROUNDS {
        let n = e.send(A, pa).unwrap().unwrap();
        kicks += u32::from(n.delivery.kick);
        for p in mem(&mut e, B).guest_take_events(n.vcpu.0) {
            assert_eq!(p, pb.0);
            got_b += 1;
        }
        let n = e.send(B, pb).unwrap().unwrap();
        kicks += u32::from(n.delivery.kick);
        for p in mem(&mut e, A).guest_take_events(n.vcpu.0) {
            assert_eq!(p, pa.0);
            got_a += 1;
        }
    }
    assert_eq!((got_a, got_b, kicks), (ROUNDS, ROUNDS, 2 * ROUNDS));
    assert!(!e.layout(A).unwrap().is_pending(pa));
    assert!(!e.layout(B).unwrap().is_pending(pb));
}

/// Random operations by three domains, with hostile arguments among them, and a domain
/// removed and re-added now and then: after every step the registry's invariants hold
/// (`EventChannels::audit`), and a failed operation leaves the audit's counts unchanged.
#[test]
fn random_operations_keep_the_registry_consistent() {
    let mut e = engine();
    let doms = [D0, A, B, DomId(9)];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut ok = 0;
    for step in 0..20_000 {
        let me = doms[next(3) as usize];
        let other = doms[next(4) as usize];
        let port = Port(next(40) as u32);
        let before = e.audit().unwrap();
        let r = match next(9) {
            0 => e.alloc_unbound(me, me, other).map(drop),
            1 => e.bind_interdomain(me, other, port).map(drop),
            2 => e.bind_virq(me, next(NR_VIRQS as u64 + 2) as u32, VcpuId(next(3) as u32)).map(drop),
            3 => e.bind_ipi(me, VcpuId(next(3) as u32)).map(drop),
            4 => e.send(me, port).map(drop),
            5 | 6 => e.close(me, port),
            7 => e.unmask(me, port).map(drop),
            _ if next(50) == 0 && me != D0 => {
                e.remove_domain(me);
                e.add_domain(me, DomainConfig::guest(2), TwoLevel::new(FakeMemory::new())).unwrap();
                Ok(())
            }
            _ => e.reset(me, me),
        };
        let after = e.audit().unwrap_or_else(|why| panic!("step {step}: {why}"));
        if r.is_err() {
            assert_eq!(before, after, "step {step}: a failed operation changed the registry");
        } else {
            ok += 1;
        }
    }
    assert!(ok > 2000, "too few operations succeeded to mean anything: {ok}");
}

#[test]
fn physical_irqs_map_bind_fire_eoi_and_close() {
    let mut e = engine();
    // Only the control domain maps lines, for itself or for another domain.
    assert_eq!(e.map_pirq(A, DomId::SELF, 11, -1), Err(Errno::EPERM));
    assert_eq!(e.map_pirq(A, B, 11, -1), Err(Errno::EPERM));
    assert_eq!(e.map_pirq(D0, DomId(77), 11, -1), Err(Errno::ESRCH));
    assert_eq!(e.map_pirq(D0, DomId::SELF, 11, -1), Ok(11));
    assert_eq!(e.unmap_pirq(A, D0, 11), Err(Errno::EPERM));
    // Binding: range, permission, then one port per pirq.
    assert_eq!(e.bind_pirq(D0, NR_PIRQS), Err(Errno::EINVAL));
    assert_eq!(e.bind_pirq(A, 11), Err(Errno::EPERM), "not A's line");
    assert_eq!(e.bind_pirq(D0, 10), Err(Errno::EPERM), "not mapped");
    let port = e.bind_pirq(D0, 11).unwrap();
    assert_eq!(e.bind_pirq(D0, 11), Err(Errno::EEXIST));
    assert_eq!(e.take_line_changes(), [LineChange::Unmask(11)]);
    let mut st = EvtchnStatus::default();
    e.status(D0, DomId::SELF, port).unwrap().write_to(&mut st);
    assert_eq!((st.status, status_word0(&st)), (hypercall_abi::event_channel::EVTCHNSTAT_PIRQ, 11));
    assert_eq!(e.send(D0, port), Err(Errno::EINVAL), "the hardware raises a pirq, not a send");
    // A fire makes the port pending; the line waits for the owner's EOI.
    assert!(e.raise_pirq(5).is_none(), "a line nobody mapped");
    let n = e.raise_pirq(11).unwrap();
    assert_eq!((n.dom, n.port), (D0, port));
    assert!(e.layout(D0).unwrap().is_pending(port));
    assert_eq!(e.pirq_eoi(A, 11), Err(Errno::EINVAL));
    assert_eq!(e.pirq_eoi(D0, 11), Ok(()));
    assert_eq!(e.take_line_changes(), [LineChange::Unmask(11)]);
    assert!(e.audit().is_ok());
    // Unmapping waits for the port to close; closing masks the line.
    assert_eq!(e.unmap_pirq(D0, D0, 11), Err(Errno::EBUSY));
    e.close(D0, port).unwrap();
    assert_eq!(e.take_line_changes(), [LineChange::Mask(11)]);
    assert!(e.raise_pirq(11).is_none(), "bound to nothing now");
    assert_eq!(e.unmap_pirq(D0, D0, 11), Ok(()));
    assert_eq!(e.bind_pirq(D0, 11), Err(Errno::EPERM));
    // A line mapped for a guest is its own, and goes with it.
    assert_eq!(e.map_pirq(D0, A, 9, -1), Ok(9));
    assert_eq!(e.map_pirq(D0, B, 9, -1), Err(Errno::EBUSY));
    let pa = e.bind_pirq(A, 9).unwrap();
    e.take_line_changes();
    assert_eq!(e.raise_pirq(9).map(|n| (n.dom, n.port)), Some((A, pa)));
    e.remove_domain(A);
    assert_eq!(e.take_line_changes(), [LineChange::Mask(9)]);
    assert_eq!(e.map_pirq(D0, B, 9, -1), Ok(9), "the line is free again");
    assert!(e.audit().is_ok());
}

/// `evtchn_status.u`'s first word.
fn status_word0(st: &EvtchnStatus) -> u32 {
    st.u.word0
}
