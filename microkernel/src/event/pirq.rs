//! Physical IRQs: which domain owns each line of the machine's interrupt controller, the
//! pirq each is known by there, and the mask-until-EOI cycle of Xen's PV guest IRQs
//! (`xen/arch/x86/irq.c`: `map_domain_pirq`, `pirq_guest_bind`, `__do_IRQ_guest`,
//! `pirq_guest_eoi`).
//!
//! The cycle: when a line fires, the machine masks it and acknowledges the controller, and
//! the owner's bound port is made pending; the line stays masked until the owner says
//! `PHYSDEVOP_eoi` (having quietened its device), so a level-triggered line that is still
//! asserted cannot storm the CPU, and a domain that never answers loses only its own
//! device's interrupts. A line nobody has bound stays masked.
//!
//! A pirq is the GSI it maps (the identity Xen gives the hardware domain's GSIs). Lines are
//! the two 8259 controllers' 16 (GSI n is ISA IRQ n); those the hypervisor uses itself (the
//! timer, the cascade and its serial console) are never mapped. Changes to the lines'
//! masks are queued here and carried out by the machine ([`Pirqs::take_line_changes`]).
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use hypercall_abi::errno::Errno;
use hypercall_abi::types::{DomId, Port};

/// Lines (and so pirqs) there are: the two 8259s'.
pub const NR_PIRQS: u32 = 16;

/// Lines the hypervisor keeps: the PIT (0), the cascade (2) and its serial console (4).
pub const HYPERVISOR_LINES: [u32; 3] = [0, 2, 4];

/// One line's owner and state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Line {
    /// The domain the line is mapped for.
    owner: Option<DomId>,
    /// The owner's port bound to it (`EVTCHNOP_bind_pirq`).
    port: Option<Port>,
    /// Fired and masked, waiting for the owner's EOI.
    in_service: bool,
    /// Times it fired for its owner.
    fired: u64,
}

/// A change of a line's mask for the machine to carry out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineChange {
    /// Let the line interrupt.
    Unmask(u8),
    /// Keep the line from interrupting.
    Mask(u8),
}

/// Every line's owner and state.
#[derive(Debug, Default)]
pub struct Pirqs {
    lines: [Line; NR_PIRQS as usize],
    changes: Vec<LineChange>,
}

/// A pirq's state, as the tests look at it.
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PirqStatus {
    /// Bound to this port.
    pub port: Option<Port>,
    /// Waiting for the owner's EOI.
    pub in_service: bool,
    /// Times it fired for its owner.
    pub fired: u64,
}

impl Pirqs {
    /// No line mapped.
    pub fn new() -> Self {
        Self::default()
    }

    fn line(&self, pirq: u32) -> Option<&Line> {
        self.lines.get(pirq as usize)
    }

    fn line_mut(&mut self, pirq: u32) -> Option<&mut Line> {
        self.lines.get_mut(pirq as usize)
    }

    /// `dom`'s line `pirq`, or `EINVAL` (out of range, or not mapped for `dom`), as Xen's
    /// `pirq_info` lookups answer.
    fn owned_mut(&mut self, dom: DomId, pirq: u32) -> Result<&mut Line, Errno> {
        self.line_mut(pirq).filter(|l| l.owner == Some(dom)).ok_or(Errno::EINVAL)
    }

    /// `PHYSDEVOP_map_pirq` of GSI `gsi` for `dom` (its caller was allowed): the pirq it is
    /// known by. `pirq` negative asks for any; otherwise it must be `gsi` (the identity).
    /// `EINVAL` for a GSI out of range or another pirq asked for, `EPERM` for a line the
    /// hypervisor keeps, `EBUSY` for a line mapped for another domain; mapping it again
    /// for the same domain is no change.
    pub fn map_gsi(&mut self, dom: DomId, gsi: i32, pirq: i32) -> Result<u32, Errno> {
        let gsi = u32::try_from(gsi).ok().filter(|&g| g < NR_PIRQS).ok_or(Errno::EINVAL)?;
        if pirq >= 0 && pirq as u32 != gsi {
            return Err(Errno::EINVAL);
        }
        if HYPERVISOR_LINES.contains(&gsi) {
            return Err(Errno::EPERM);
        }
        let line = self.line_mut(gsi).ok_or(Errno::EINVAL)?;
        match line.owner {
            Some(owner) if owner != dom => Err(Errno::EBUSY),
            _ => {
                line.owner = Some(dom);
                Ok(gsi)
            }
        }
    }

    /// `PHYSDEVOP_unmap_pirq`: `EINVAL` if `pirq` is not mapped for `dom`, `EBUSY` while a
    /// port is bound to it (close the port first).
    pub fn unmap(&mut self, dom: DomId, pirq: u32) -> Result<(), Errno> {
        let line = self.owned_mut(dom, pirq)?;
        if line.port.is_some() {
            return Err(Errno::EBUSY);
        }
        *line = Line::default();
        Ok(())
    }

    /// Whether `dom` may bind `pirq` (Xen's `pirq_access_permitted`).
    pub fn permitted(&self, dom: DomId, pirq: u32) -> bool {
        self.line(pirq).is_some_and(|l| l.owner == Some(dom))
    }

    /// The port bound to `pirq` for `dom`, if any.
    pub fn port_of(&self, dom: DomId, pirq: u32) -> Option<Port> {
        self.line(pirq).filter(|l| l.owner == Some(dom)).and_then(|l| l.port)
    }

    /// Binds `pirq` (permitted, unbound) to `port`: the line starts interrupting, a fresh
    /// cycle (an EOI owed from an earlier binding is forgiven).
    pub fn bind(&mut self, dom: DomId, pirq: u32, port: Port) {
        if let Ok(line) = self.owned_mut(dom, pirq) {
            line.port = Some(port);
            line.in_service = false;
            self.changes.push(LineChange::Unmask(pirq as u8));
        }
    }

    /// `dom` closed the port bound to `pirq`: the line stops interrupting.
    pub fn unbind(&mut self, dom: DomId, pirq: u32) {
        if let Ok(line) = self.owned_mut(dom, pirq) {
            line.port = None;
            line.in_service = false;
            self.changes.push(LineChange::Mask(pirq as u8));
        }
    }

    /// Line `line` fired (the machine masked it and acknowledged the controller): the
    /// owner and port to make pending, if it is bound; it then waits for the owner's EOI.
    /// A line nobody has bound stays masked.
    pub fn fired(&mut self, line: u32) -> Option<(DomId, Port)> {
        let l = self.line_mut(line)?;
        let (Some(owner), Some(port)) = (l.owner, l.port) else {
            return None;
        };
        l.in_service = true;
        l.fired += 1;
        Some((owner, port))
    }

    /// `PHYSDEVOP_eoi` from `dom`: the line interrupts again if it was waiting for this.
    /// `EINVAL` for a pirq out of range or not `dom`'s.
    pub fn eoi(&mut self, dom: DomId, pirq: u32) -> Result<(), Errno> {
        let line = self.owned_mut(dom, pirq)?;
        if line.in_service && line.port.is_some() {
            line.in_service = false;
            self.changes.push(LineChange::Unmask(pirq as u8));
        }
        Ok(())
    }

    /// What `dom` sees of its `pirq`: `EINVAL` if it is not mapped for it.
    #[cfg(test)]
    pub fn status(&self, dom: DomId, pirq: u32) -> Result<PirqStatus, Errno> {
        let l = self.line(pirq).filter(|l| l.owner == Some(dom)).ok_or(Errno::EINVAL)?;
        Ok(PirqStatus { port: l.port, in_service: l.in_service, fired: l.fired })
    }

    /// Forgets every line of `dom` (its end): those that could interrupt are masked.
    pub fn release(&mut self, dom: DomId) {
        for (i, l) in self.lines.iter_mut().enumerate() {
            if l.owner == Some(dom) {
                if l.port.is_some() {
                    self.changes.push(LineChange::Mask(i as u8));
                }
                *l = Line::default();
            }
        }
    }

    /// The mask changes since the last call, in order, for the machine to carry out.
    pub fn take_line_changes(&mut self) -> Vec<LineChange> {
        core::mem::take(&mut self.changes)
    }

    /// Every mapped line: (pirq, owner, bound port).
    pub fn mapped(&self) -> impl Iterator<Item = (u32, DomId, Option<Port>)> + '_ {
        self.lines.iter().enumerate().filter_map(|(i, l)| l.owner.map(|o| (i as u32, o, l.port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D0: DomId = DomId(0);
    const D1: DomId = DomId(1);

    #[test]
    fn mapping_rules_and_errnos() {
        let mut p = Pirqs::new();
        assert_eq!(p.map_gsi(D0, 11, -1), Ok(11));
        assert_eq!(p.map_gsi(D0, 11, 11), Ok(11), "mapping again is no change");
        assert_eq!(p.map_gsi(D1, 11, -1), Err(Errno::EBUSY));
        assert_eq!(p.map_gsi(D0, 10, 3), Err(Errno::EINVAL), "pirq is the gsi");
        for gsi in [-1, 16, i32::MAX, i32::MIN] {
            assert_eq!(p.map_gsi(D0, gsi, -1), Err(Errno::EINVAL), "gsi {gsi}");
        }
        for gsi in HYPERVISOR_LINES {
            assert_eq!(p.map_gsi(D0, gsi as i32, -1), Err(Errno::EPERM), "the hypervisor's line {gsi}");
        }
        assert!(p.permitted(D0, 11) && !p.permitted(D1, 11) && !p.permitted(D0, 10) && !p.permitted(D0, 99));
        assert_eq!(p.unmap(D1, 11), Err(Errno::EINVAL));
        assert_eq!(p.unmap(D0, 99), Err(Errno::EINVAL));
        p.bind(D0, 11, Port(5));
        assert_eq!(p.unmap(D0, 11), Err(Errno::EBUSY), "bound");
        p.unbind(D0, 11);
        assert_eq!(p.unmap(D0, 11), Ok(()));
        assert_eq!(p.map_gsi(D1, 11, -1), Ok(11), "free again");
    }

    #[test]
    fn a_line_is_masked_from_firing_until_its_owner_says_eoi() {
        let mut p = Pirqs::new();
        p.map_gsi(D0, 11, -1).unwrap();
        assert_eq!(p.fired(11), None, "not bound: nobody to tell, it stays masked");
        p.bind(D0, 11, Port(7));
        assert_eq!(p.take_line_changes(), [LineChange::Unmask(11)]);
        assert_eq!(p.fired(11), Some((D0, Port(7))));
        assert!(p.status(D0, 11).unwrap().in_service);
        assert_eq!(p.eoi(D1, 11), Err(Errno::EINVAL), "another domain's EOI");
        assert_eq!(p.eoi(D0, 16), Err(Errno::EINVAL));
        assert!(p.take_line_changes().is_empty());
        assert_eq!(p.eoi(D0, 11), Ok(()));
        assert_eq!(p.take_line_changes(), [LineChange::Unmask(11)]);
        assert_eq!(p.eoi(D0, 11), Ok(()), "a second EOI is harmless");
        assert!(p.take_line_changes().is_empty(), "and unmasks nothing");
        assert_eq!(p.status(D0, 11).unwrap().fired, 1);
    }

    #[test]
    fn closing_and_dying_mask_the_lines() {
        let mut p = Pirqs::new();
        p.map_gsi(D1, 5, -1).unwrap();
        p.map_gsi(D1, 9, -1).unwrap();
        p.map_gsi(D0, 10, -1).unwrap();
        p.bind(D1, 5, Port(1));
        p.bind(D0, 10, Port(2));
        p.take_line_changes();
        p.fired(5);
        p.unbind(D1, 5);
        assert_eq!(p.take_line_changes(), [LineChange::Mask(5)]);
        assert_eq!(p.eoi(D1, 5), Ok(()));
        assert!(p.take_line_changes().is_empty(), "an EOI after the port closed unmasks nothing");
        p.bind(D1, 5, Port(3));
        p.release(D1);
        assert_eq!(p.take_line_changes(), [LineChange::Unmask(5), LineChange::Mask(5)]);
        assert_eq!(p.mapped().collect::<Vec<_>>(), [(10, D0, Some(Port(2)))]);
    }
}
