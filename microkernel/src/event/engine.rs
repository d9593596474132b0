//! The multi-domain registry and the `EVTCHNOP_*` operations over it.
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;

use hypercall_abi::errno::Errno;
use hypercall_abi::event_channel::{NR_VIRQS, VIRQ_DEBUG, VIRQ_TIMER, VIRQ_XENOPROF, VIRQ_XENPMU};
use hypercall_abi::{DomId, Port, VcpuId};

use super::pirq::{LineChange, Pirqs, NR_PIRQS};
use super::table::{ChannelStatus, PortState, PortTable};
use super::{DomainConfig, Notification, PortLayout};

/// One domain's event channel state.
#[derive(Debug)]
struct DomainEvents<L> {
    privileged: bool,
    /// Set by the machine while a controller has the domain paused; a foreign reset needs it.
    controller_paused: bool,
    ports: PortTable,
    layout: L,
}

impl<L: PortLayout> DomainEvents<L> {
    fn set_pending(&mut self, dom: DomId, port: Port, vcpu: VcpuId) -> Notification {
        let delivery = self.layout.set_pending(vcpu, port);
        Notification {
            dom,
            vcpu,
            port,
            delivery,
        }
    }
}

/// Every domain's ports, by domain id: the state behind `event_channel_op`.
///
/// Operations take the calling domain and return Xen's errno on failure; checks run before
/// any state changes, so a failed call leaves no trace.
#[derive(Debug)]
pub struct EventChannels<L> {
    domains: BTreeMap<DomId, DomainEvents<L>>,
    /// The machine's interrupt lines and the domains they are mapped for.
    pirqs: Pirqs,
}

impl<L> Default for EventChannels<L> {
    fn default() -> Self {
        EventChannels {
            domains: BTreeMap::new(),
            pirqs: Pirqs::new(),
        }
    }
}

/// What [`EventChannels::audit`] counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventAudit {
    /// Ports in use (not free, not the reserved port 0), over all domains.
    pub ports: u64,
    /// Of those, interdomain ends.
    pub interdomain: u64,
}

/// Whether a virtual IRQ is global (bound on vCPU 0, delivered to the port's notify vCPU)
/// rather than per-vCPU (`virq_is_global`; x86 treats the architectural VIRQs as global).
pub fn virq_is_global(virq: u32) -> bool {
    !matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU)
}

impl<L: PortLayout> EventChannels<L> {
    /// No domains.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers domain `dom` with its layout. `-EEXIST` if present, `-EINVAL` for a reserved
    /// id or no vCPUs.
    pub fn add_domain(&mut self, dom: DomId, config: DomainConfig, layout: L) -> Result<(), Errno> {
        if dom.is_reserved() || config.vcpus == 0 {
            return Err(Errno::EINVAL);
        }
        if self.domains.contains_key(&dom) {
            return Err(Errno::EEXIST);
        }
        let ports = PortTable::new(&config, layout.max_ports());
        let events = DomainEvents {
            privileged: config.privileged,
            controller_paused: false,
            ports,
            layout,
        };
        self.domains.insert(dom, events);
        Ok(())
    }

    /// Closes all of `dom`'s ports (remote ends of its interdomain channels become unbound
    /// for it, as Xen's `evtchn_destroy`) and forgets it, returning its layout.
    pub fn remove_domain(&mut self, dom: DomId) -> Option<L> {
        self.close_all(dom);
        self.pirqs.release(dom);
        self.domains.remove(&dom).map(|d| d.layout)
    }

    /// Records whether a controller has `dom` paused (needed for a foreign `reset`).
    pub fn set_controller_paused(&mut self, dom: DomId, paused: bool) -> Result<(), Errno> {
        self.domain_mut(dom)?.controller_paused = paused;
        Ok(())
    }

    /// `dom`'s layout (for 2-level, its view of shared-info memory).
    pub fn layout(&self, dom: DomId) -> Option<&L> {
        self.domains.get(&dom).map(|d| &d.layout)
    }

    /// `dom`'s layout, mutably.
    pub fn layout_mut(&mut self, dom: DomId) -> Option<&mut L> {
        self.domains.get_mut(&dom).map(|d| &mut d.layout)
    }

    /// The state of `dom`'s `port`, as the hypervisor sees it (no permission check).
    pub fn port_state(&self, dom: DomId, port: Port) -> Option<PortState> {
        self.domains
            .get(&dom)?
            .ports
            .get(port)
            .ok()
            .map(|c| c.state)
    }

    /// The lowest port of `dom` that is free and not busy in its layout.
    fn free_port(&self, dom: DomId) -> Result<Port, Errno> {
        let d = self.domain(dom)?;
        d.ports.free_port(|p| d.layout.is_busy(p))
    }

    fn domain(&self, dom: DomId) -> Result<&DomainEvents<L>, Errno> {
        self.domains.get(&dom).ok_or(Errno::ESRCH)
    }

    fn domain_mut(&mut self, dom: DomId) -> Result<&mut DomainEvents<L>, Errno> {
        self.domains.get_mut(&dom).ok_or(Errno::ESRCH)
    }

    /// `DOMID_SELF` means the caller.
    fn resolve(caller: DomId, dom: DomId) -> DomId {
        if dom == DomId::SELF {
            caller
        } else {
            dom
        }
    }

    /// Xen's `XSM_TARGET` default: a domain acts on itself, a privileged one on any.
    fn check_target(&self, caller: DomId, target: DomId) -> Result<(), Errno> {
        if caller == target || self.domain(caller)?.privileged {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    }

    /// `EVTCHNOP_alloc_unbound`: a fresh port in `dom` that `remote_dom` may bind to.
    ///
    /// `-ESRCH` unknown `dom`, `-ENOSPC` no free port, `-EPERM` foreign `dom` for an
    /// unprivileged caller, `-ESRCH` unknown `remote_dom` (in Xen's order; the last is the
    /// check Xen's XSM policies make, e.g. SILO's `silo_evtchn_unbound`, where the default
    /// policy makes none: a port reserved for a domain that does not exist would wait for
    /// whichever domain gets that id next).
    pub fn alloc_unbound(
        &mut self,
        caller: DomId,
        dom: DomId,
        remote_dom: DomId,
    ) -> Result<Port, Errno> {
        let dom = Self::resolve(caller, dom);
        let port = self.free_port(dom)?;
        self.check_target(caller, dom)?;
        let remote = Self::resolve(caller, remote_dom);
        self.domain(remote)?;
        let d = self.domain_mut(dom)?;
        d.ports.set(port, PortState::Unbound { remote }, VcpuId(0));
        d.layout.init_port(port);
        Ok(port)
    }

    /// `EVTCHNOP_bind_interdomain`: connects a fresh local port to `remote_dom`'s unbound
    /// `remote_port`, which must accept the caller.
    ///
    /// `-ESRCH` unknown remote domain, `-ENOSPC` no free local port, `-EINVAL` remote port out
    /// of range or not unbound for the caller. As Xen, the local port is set pending (events
    /// sent to the unbound end were dropped); the returned notification says so.
    pub fn bind_interdomain(
        &mut self,
        caller: DomId,
        remote_dom: DomId,
        remote_port: Port,
    ) -> Result<(Port, Notification), Errno> {
        let rdom = Self::resolve(caller, remote_dom);
        self.domain(rdom)?;
        let lport = self.free_port(caller)?;
        let rchan = self.domain(rdom)?.ports.get(remote_port)?;
        if rchan.state != (PortState::Unbound { remote: caller }) {
            return Err(Errno::EINVAL);
        }
        let local = self.domain_mut(caller)?;
        local.layout.init_port(lport);
        local.ports.set(
            lport,
            PortState::Interdomain {
                remote: rdom,
                remote_port,
            },
            VcpuId(0),
        );
        let remote = self.domain_mut(rdom)?;
        remote.ports.set(
            remote_port,
            PortState::Interdomain {
                remote: caller,
                remote_port: lport,
            },
            rchan.notify_vcpu,
        );
        let local = self.domain_mut(caller)?;
        Ok((lport, local.set_pending(caller, lport, VcpuId(0))))
    }

    /// `EVTCHNOP_bind_virq`: a fresh port for `virq` on `vcpu`.
    ///
    /// `-EINVAL` virq out of range or a global virq on a vCPU other than 0, `-ENOENT` no such
    /// vCPU, `-EEXIST` virq already bound on that vCPU, `-ENOSPC` no free port.
    pub fn bind_virq(&mut self, caller: DomId, virq: u32, vcpu: VcpuId) -> Result<Port, Errno> {
        if virq >= NR_VIRQS || (virq_is_global(virq) && vcpu.0 != 0) {
            return Err(Errno::EINVAL);
        }
        let d = self.domain_mut(caller)?;
        if vcpu.0 >= d.ports.vcpus() {
            return Err(Errno::ENOENT);
        }
        if d.ports.virq_port(vcpu, virq) != 0 {
            return Err(Errno::EEXIST);
        }
        let port = d.ports.free_port(|p| d.layout.is_busy(p))?;
        d.ports.set(port, PortState::Virq { virq }, vcpu);
        d.ports.set_virq_port(vcpu, virq, port.0);
        d.layout.init_port(port);
        Ok(port)
    }

    /// `EVTCHNOP_bind_ipi`: a fresh port notifying `vcpu`. `-ENOENT` no such vCPU,
    /// `-ENOSPC` no free port.
    pub fn bind_ipi(&mut self, caller: DomId, vcpu: VcpuId) -> Result<Port, Errno> {
        let d = self.domain_mut(caller)?;
        if vcpu.0 >= d.ports.vcpus() {
            return Err(Errno::ENOENT);
        }
        let port = d.ports.free_port(|p| d.layout.is_busy(p))?;
        d.ports.set(port, PortState::Ipi, vcpu);
        d.layout.init_port(port);
        Ok(port)
    }

    /// `EVTCHNOP_send`: an interdomain port makes the remote end pending, an IPI port itself;
    /// on an unbound port the event is dropped (`Ok(None)`).
    ///
    /// `-EINVAL` port out of range, free, reserved or bound to a VIRQ (as Xen: VIRQs are
    /// raised by the hypervisor, see [`Self::raise_virq`]).
    pub fn send(&mut self, caller: DomId, port: Port) -> Result<Option<Notification>, Errno> {
        let chan = self.domain(caller)?.ports.get(port)?;
        match chan.state {
            PortState::Interdomain {
                remote,
                remote_port,
            } => {
                let rd = self.domain_mut(remote)?;
                let vcpu = rd.ports.get(remote_port)?.notify_vcpu;
                Ok(Some(rd.set_pending(remote, remote_port, vcpu)))
            }
            PortState::Ipi => {
                let d = self.domain_mut(caller)?;
                Ok(Some(d.set_pending(caller, port, chan.notify_vcpu)))
            }
            PortState::Unbound { .. } => Ok(None),
            PortState::Free | PortState::Reserved | PortState::Virq { .. } | PortState::Pirq { .. } => Err(Errno::EINVAL),
        }
    }

    /// The hypervisor raises `virq` for `dom`'s `vcpu` (`send_guest_vcpu_virq`, or for a
    /// global virq `send_guest_global_virq`, whose binding lives on vCPU 0 and which notifies
    /// the port's vCPU). `None` if nothing is bound.
    pub fn raise_virq(&mut self, dom: DomId, vcpu: VcpuId, virq: u32) -> Option<Notification> {
        if virq >= NR_VIRQS {
            return None;
        }
        let d = self.domains.get_mut(&dom)?;
        let table_vcpu = if virq_is_global(virq) {
            VcpuId(0)
        } else {
            vcpu
        };
        if table_vcpu.0 >= d.ports.vcpus() {
            return None;
        }
        let port = Port(d.ports.virq_port(table_vcpu, virq));
        if port.0 == 0 {
            return None;
        }
        let notify = d.ports.get(port).ok()?.notify_vcpu;
        Some(d.set_pending(dom, port, notify))
    }

    /// `PHYSDEVOP_map_pirq` of GSI `gsi` for `dom` (`DOMID_SELF`: the caller) by `caller`:
    /// the pirq. As Xen: `ESRCH` unknown domain, `EPERM` an unprivileged caller (the
    /// default XSM policy's `XSM_DM_PRIV`), then [`Pirqs::map_gsi`]'s errnos.
    pub fn map_pirq(&mut self, caller: DomId, dom: DomId, gsi: i32, pirq: i32) -> Result<u32, Errno> {
        let dom = self.check_pirq_control(caller, dom)?;
        self.pirqs.map_gsi(dom, gsi, pirq)
    }

    /// Whether `caller` may map and unmap `dom`'s (`DOMID_SELF`: its own) physical IRQs:
    /// the domain meant, or `ESRCH` for an unknown one, `EPERM` for an unprivileged caller.
    pub fn check_pirq_control(&self, caller: DomId, dom: DomId) -> Result<DomId, Errno> {
        let dom = Self::resolve(caller, dom);
        self.domain(dom)?;
        if !self.domain(caller)?.privileged {
            return Err(Errno::EPERM);
        }
        Ok(dom)
    }

    /// `PHYSDEVOP_unmap_pirq`: `ESRCH`, `EPERM` as [`Self::map_pirq`], then
    /// [`Pirqs::unmap`]'s.
    pub fn unmap_pirq(&mut self, caller: DomId, dom: DomId, pirq: i32) -> Result<(), Errno> {
        let dom = self.check_pirq_control(caller, dom)?;
        self.pirqs.unmap(dom, u32::try_from(pirq).map_err(|_| Errno::EINVAL)?)
    }

    /// `EVTCHNOP_bind_pirq`: a fresh port (notifying vCPU 0) for the caller's `pirq`, whose
    /// line then interrupts. As Xen's `evtchn_bind_pirq`: `EINVAL` out of range, `EPERM`
    /// not mapped for the caller, `EEXIST` already bound, `ENOSPC` no free port.
    pub fn bind_pirq(&mut self, caller: DomId, pirq: u32) -> Result<Port, Errno> {
        if pirq >= NR_PIRQS {
            return Err(Errno::EINVAL);
        }
        if !self.pirqs.permitted(caller, pirq) {
            return Err(Errno::EPERM);
        }
        if self.pirqs.port_of(caller, pirq).is_some() {
            return Err(Errno::EEXIST);
        }
        let d = self.domain_mut(caller)?;
        let port = d.ports.free_port(|p| d.layout.is_busy(p))?;
        d.ports.set(port, PortState::Pirq { pirq }, VcpuId(0));
        d.layout.init_port(port);
        self.pirqs.bind(caller, pirq, port);
        Ok(port)
    }

    /// Interrupt line `line` fired (the machine masked it): its owner's bound port is made
    /// pending, and the line waits for the owner's `PHYSDEVOP_eoi`.
    pub fn raise_pirq(&mut self, line: u32) -> Option<Notification> {
        let (dom, port) = self.pirqs.fired(line)?;
        self.raise(dom, port)
    }

    /// `PHYSDEVOP_eoi` from `caller`: `EINVAL` for a pirq that is not its own.
    pub fn pirq_eoi(&mut self, caller: DomId, pirq: u32) -> Result<(), Errno> {
        self.pirqs.eoi(caller, pirq)
    }

    /// Line mask changes the operations since the last call asked for, in order.
    pub fn take_line_changes(&mut self) -> alloc::vec::Vec<LineChange> {
        self.pirqs.take_line_changes()
    }

    /// Whether `caller`'s `port` is pending, for `SCHEDOP_poll` (Xen's `evtchn_port_poll`
    /// check and `evtchn_port_is_pending`). `-EINVAL` for a port out of the domain's range.
    pub fn poll_pending(&self, caller: DomId, port: Port) -> Result<bool, Errno> {
        let d = self.domain(caller)?;
        d.ports.get(port)?;
        Ok(d.layout.is_pending(port))
    }

    /// `EVTCHNOP_close`: frees `port`; an interdomain peer goes back to unbound for the
    /// caller. `-EINVAL` port out of range, free or reserved.
    pub fn close(&mut self, caller: DomId, port: Port) -> Result<(), Errno> {
        let chan = self.domain(caller)?.ports.get(port)?;
        match chan.state {
            PortState::Free | PortState::Reserved => return Err(Errno::EINVAL),
            PortState::Virq { virq } => self.domain_mut(caller)?.ports.unbind_virq(virq, port),
            PortState::Interdomain {
                remote,
                remote_port,
            } => {
                if let Ok(rd) = self.domain_mut(remote) {
                    let peer = rd.ports.get(remote_port)?;
                    rd.ports.set(
                        remote_port,
                        PortState::Unbound { remote: caller },
                        peer.notify_vcpu,
                    );
                }
            }
            PortState::Pirq { pirq } => self.pirqs.unbind(caller, pirq),
            PortState::Unbound { .. } | PortState::Ipi => {}
        }
        let d = self.domain_mut(caller)?;
        // Xen's evtchn_free: a stale pending bit must not fire when the port is reused.
        d.layout.clear_pending(port);
        d.ports.set(port, PortState::Free, VcpuId(0));
        Ok(())
    }

    /// `EVTCHNOP_status` of `dom`'s `port`. `-ESRCH` unknown domain, `-EINVAL` port out of
    /// range, `-EPERM` a foreign domain for an unprivileged caller (in Xen's order).
    pub fn status(&self, caller: DomId, dom: DomId, port: Port) -> Result<ChannelStatus, Errno> {
        let dom = Self::resolve(caller, dom);
        let chan = self.domain(dom)?.ports.get(port)?;
        self.check_target(caller, dom)?;
        Ok(ChannelStatus {
            state: chan.state,
            vcpu: chan.notify_vcpu,
        })
    }

    /// `EVTCHNOP_unmask`: clears the mask and delivers a pending event. As Xen, any port
    /// below the limit may be unmasked whatever its state; `-EINVAL` past it.
    pub fn unmask(&mut self, caller: DomId, port: Port) -> Result<Notification, Errno> {
        let d = self.domain_mut(caller)?;
        let vcpu = d.ports.get(port)?.notify_vcpu;
        let delivery = d.layout.unmask(vcpu, port);
        Ok(Notification {
            dom: caller,
            vcpu,
            port,
            delivery,
        })
    }

    /// `EVTCHNOP_set_priority` (FIFO): `-EINVAL` for a port out of range or a priority
    /// past `EVTCHN_FIFO_PRIORITY_MIN`, `-ENOSYS` under the 2-level ABI (Xen's order).
    pub fn set_priority(&mut self, caller: DomId, port: Port, priority: u32) -> Result<(), Errno> {
        let d = self.domain_mut(caller)?;
        d.ports.get(port)?;
        d.layout.set_priority(port, priority)
    }

    /// `EVTCHNOP_bind_vcpu`: `port` notifies `vcpu` from now on. As Xen: `-ENOENT` no such
    /// vCPU, `-EINVAL` a port out of range or one whose notifications cannot move (free,
    /// an IPI, a per-vCPU VIRQ).
    pub fn bind_vcpu(&mut self, caller: DomId, port: Port, vcpu: VcpuId) -> Result<(), Errno> {
        let d = self.domain_mut(caller)?;
        if vcpu.0 >= d.ports.vcpus() {
            return Err(Errno::ENOENT);
        }
        let chan = d.ports.get(port)?;
        match chan.state {
            PortState::Virq { virq } if virq_is_global(virq) => {}
            PortState::Unbound { .. } | PortState::Interdomain { .. } | PortState::Pirq { .. } => {}
            _ => return Err(Errno::EINVAL),
        }
        d.ports.set(port, chan.state, vcpu);
        Ok(())
    }

    /// The ports of `dom` in use (not free), in order.
    pub fn ports_in_use(&self, dom: DomId) -> alloc::vec::Vec<Port> {
        self.domains.get(&dom).map_or_else(alloc::vec::Vec::new, |d| {
            d.ports.channels().filter(|(p, c)| p.0 != 0 && c.state != PortState::Free).map(|(p, _)| p).collect()
        })
    }

    /// The vCPU `dom`'s `port` notifies (for a port in use).
    pub fn notify_vcpu(&self, dom: DomId, port: Port) -> Option<VcpuId> {
        self.domains.get(&dom)?.ports.get(port).ok().map(|c| c.notify_vcpu)
    }

    /// Sets `dom`'s `port` pending on its notify vCPU, as an event from the hypervisor (a
    /// FIFO event word appearing for a port made pending before it existed).
    pub fn raise(&mut self, dom: DomId, port: Port) -> Option<Notification> {
        let d = self.domains.get_mut(&dom)?;
        let vcpu = d.ports.get(port).ok()?.notify_vcpu;
        Some(d.set_pending(dom, port, vcpu))
    }

    /// The number of vCPUs `dom` has.
    pub fn vcpus(&self, dom: DomId) -> Option<u32> {
        self.domains.get(&dom).map(|d| d.ports.vcpus())
    }

    /// Checks the registry's invariants: port 0 reserved and never bound; every
    /// interdomain port's other end exists, is interdomain and points back; every unbound
    /// port waits for a domain id that is valid; every VIRQ binding names a port bound to
    /// that VIRQ, and every VIRQ port is in the binding table; notify vCPUs exist.
    pub fn audit(&self) -> Result<EventAudit, alloc::string::String> {
        use alloc::format;
        let mut a = EventAudit::default();
        for (&dom, d) in &self.domains {
            let vcpus = d.ports.vcpus();
            for (port, ch) in d.ports.channels() {
                let at = || format!("d{}'s port {}", dom.0, port.0);
                if port.0 == 0 {
                    if ch.state != PortState::Reserved {
                        return Err(format!("{}: not reserved: {:?}", at(), ch.state));
                    }
                    continue;
                }
                if !d.ports.is_valid(port) {
                    return Err(format!("{}: past the limit and allocated", at()));
                }
                if ch.notify_vcpu.0 >= vcpus {
                    return Err(format!("{}: notifies vCPU {}, which does not exist", at(), ch.notify_vcpu.0));
                }
                match ch.state {
                    PortState::Free => continue,
                    PortState::Reserved => return Err(format!("{}: reserved", at())),
                    PortState::Unbound { .. } | PortState::Ipi => {}
                    PortState::Pirq { pirq } => {
                        if self.pirqs.port_of(dom, pirq) != Some(port) {
                            return Err(format!("{}: bound to pirq {pirq}, which names port {:?}", at(), self.pirqs.port_of(dom, pirq)));
                        }
                    }
                    PortState::Interdomain { remote, remote_port } => {
                        a.interdomain += 1;
                        let back = self.domains.get(&remote).and_then(|r| r.ports.get(remote_port).ok()).map(|c| c.state);
                        let want = PortState::Interdomain { remote: dom, remote_port: port };
                        if back != Some(want) {
                            return Err(format!("{}: bound to d{} port {}, whose state is {back:?}", at(), remote.0, remote_port.0));
                        }
                    }
                    PortState::Virq { virq } => {
                        let v = if virq_is_global(virq) { 0 } else { ch.notify_vcpu.0 };
                        if virq >= NR_VIRQS || d.ports.virq_port(VcpuId(v), virq) != port.0 {
                            return Err(format!("{}: VIRQ {virq} not in the binding table", at()));
                        }
                    }
                }
                a.ports += 1;
            }
            for (pirq, owner, port) in self.pirqs.mapped() {
                if owner != dom {
                    continue;
                }
                if let Some(port) = port {
                    let state = d.ports.get(port).map(|c| c.state);
                    if state != Ok(PortState::Pirq { pirq }) {
                        return Err(format!("d{}: pirq {pirq} names port {}, whose state is {state:?}", dom.0, port.0));
                    }
                }
            }
            for (vcpu, virq, port) in d.ports.virq_bindings() {
                let state = d.ports.get(Port(port)).map(|c| c.state);
                if state != Ok(PortState::Virq { virq }) {
                    return Err(format!("d{}: VIRQ {virq} on vCPU {vcpu} names port {port}, whose state is {state:?}", dom.0));
                }
            }
        }
        Ok(a)
    }

    /// `EVTCHNOP_reset`: closes every port of `dom`. `-ESRCH` unknown domain, `-EPERM` a
    /// foreign domain for an unprivileged caller, `-EINVAL` a foreign domain that its
    /// controller has not paused.
    pub fn reset(&mut self, caller: DomId, dom: DomId) -> Result<(), Errno> {
        let dom = Self::resolve(caller, dom);
        let target = self.domain(dom)?;
        let paused = target.controller_paused;
        self.check_target(caller, dom)?;
        if dom != caller && !paused {
            return Err(Errno::EINVAL);
        }
        self.close_all(dom);
        Ok(())
    }

    fn close_all(&mut self, dom: DomId) {
        let Some(d) = self.domains.get(&dom) else {
            return;
        };
        for port in 1..d.ports.touched() {
            // Free ports answer -EINVAL, which is what "already closed" means here.
            let _ = self.close(dom, Port(port));
        }
    }
}
