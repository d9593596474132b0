//! One domain's port table: channel states, the notify vCPU of each port, and VIRQ bindings.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use hypercall_abi::errno::Errno;
use hypercall_abi::event_channel::{
    EvtchnStatus, EvtchnStatusUnion, EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_IPI, EVTCHNSTAT_PIRQ,
    EVTCHNSTAT_UNBOUND, EVTCHNSTAT_VIRQ, NR_VIRQS,
};
use hypercall_abi::{DomId, Port, VcpuId};

use super::DomainConfig;

/// The state of one port (Xen's `ECS_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortState {
    /// Not in use.
    Free,
    /// Port 0: never allocated.
    Reserved,
    /// Waiting for `remote` to bind to it.
    Unbound {
        /// The domain allowed to bind.
        remote: DomId,
    },
    /// Connected to `remote_port` of `remote`.
    Interdomain {
        /// The other end's domain.
        remote: DomId,
        /// The other end's port.
        remote_port: Port,
    },
    /// Bound to a virtual IRQ.
    Virq {
        /// The `VIRQ_*` number.
        virq: u32,
    },
    /// Bound to an inter-vCPU IPI.
    Ipi,
    /// Bound to a physical IRQ (`EVTCHNOP_bind_pirq`).
    Pirq {
        /// The pirq.
        pirq: u32,
    },
}

/// What `EVTCHNOP_status` reports about a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelStatus {
    /// The port's state.
    pub state: PortState,
    /// The vCPU it notifies.
    pub vcpu: VcpuId,
}

impl ChannelStatus {
    /// Fills the OUT fields of an `evtchn_status` (`status`, `vcpu`, `u`) as Xen does.
    pub fn write_to(&self, out: &mut EvtchnStatus) {
        let (status, u) = match self.state {
            PortState::Free | PortState::Reserved => (EVTCHNSTAT_CLOSED, [0, 0]),
            PortState::Unbound { remote } => (EVTCHNSTAT_UNBOUND, [u32::from(remote.0), 0]),
            PortState::Interdomain {
                remote,
                remote_port,
            } => (EVTCHNSTAT_INTERDOMAIN, [u32::from(remote.0), remote_port.0]),
            PortState::Virq { virq } => (EVTCHNSTAT_VIRQ, [virq, 0]),
            PortState::Ipi => (EVTCHNSTAT_IPI, [0, 0]),
            PortState::Pirq { pirq } => (EVTCHNSTAT_PIRQ, [pirq, 0]),
        };
        out.status = status;
        out.vcpu = self.vcpu.0;
        out.u = EvtchnStatusUnion {
            word0: u[0],
            word1: u[1],
        };
    }
}

/// One port's bookkeeping (Xen's `struct evtchn`, minus the layout's bits).
#[derive(Clone, Copy, Debug)]
pub(super) struct Channel {
    pub state: PortState,
    pub notify_vcpu: VcpuId,
}

impl Channel {
    const FREE: Channel = Channel {
        state: PortState::Free,
        notify_vcpu: VcpuId(0),
    };
}

/// A domain's ports: grown on demand up to the limit, port 0 reserved.
#[derive(Debug)]
pub(super) struct PortTable {
    channels: Vec<Channel>,
    limit: u32,
    /// Per vCPU, the port bound to each VIRQ (0: none), Xen's `virq_to_evtchn`.
    virq_to_port: Vec<[u32; NR_VIRQS as usize]>,
}

impl PortTable {
    pub fn new(config: &DomainConfig, layout_max: u32) -> Self {
        let channels = alloc::vec![Channel {
            state: PortState::Reserved,
            notify_vcpu: VcpuId(0),
        }];
        PortTable {
            channels,
            limit: config.port_limit.clamp(1, layout_max),
            virq_to_port: alloc::vec![[0; NR_VIRQS as usize]; config.vcpus as usize],
        }
    }

    pub fn vcpus(&self) -> u32 {
        self.virq_to_port.len() as u32
    }

    /// Xen's `port_is_valid`: below the domain's limit.
    pub fn is_valid(&self, port: Port) -> bool {
        port.0 < self.limit
    }

    /// The channel of a valid port (ports never touched are free).
    pub fn get(&self, port: Port) -> Result<Channel, Errno> {
        if !self.is_valid(port) {
            return Err(Errno::EINVAL);
        }
        Ok(self
            .channels
            .get(port.0 as usize)
            .copied()
            .unwrap_or(Channel::FREE))
    }

    /// The lowest free port that is not `busy` (Xen's `get_free_port`), without claiming it.
    pub fn free_port(&self, busy: impl Fn(Port) -> bool) -> Result<Port, Errno> {
        match self
            .channels
            .iter()
            .enumerate()
            .position(|(i, c)| c.state == PortState::Free && !busy(Port(i as u32)))
        {
            Some(i) => Ok(Port(i as u32)),
            None if (self.channels.len() as u32) < self.limit => {
                Ok(Port(self.channels.len() as u32))
            }
            None => Err(Errno::ENOSPC),
        }
    }

    /// Sets a valid port's state and notify vCPU.
    pub fn set(&mut self, port: Port, state: PortState, notify_vcpu: VcpuId) {
        let i = port.0 as usize;
        if i >= self.channels.len() {
            self.channels.resize(i + 1, Channel::FREE);
        }
        if let Some(c) = self.channels.get_mut(i) {
            *c = Channel { state, notify_vcpu };
        }
    }

    /// Ports that have ever been allocated (all others are free).
    pub fn touched(&self) -> u32 {
        self.channels.len() as u32
    }

    /// The port bound to `virq` on `vcpu` (0: none, or no such vCPU or VIRQ).
    pub fn virq_port(&self, vcpu: VcpuId, virq: u32) -> u32 {
        self.virq_to_port.get(vcpu.0 as usize).and_then(|t| t.get(virq as usize)).copied().unwrap_or(0)
    }

    /// Binds `virq` on `vcpu` to `port` (callers checked both; otherwise nothing happens).
    pub fn set_virq_port(&mut self, vcpu: VcpuId, virq: u32, port: u32) {
        if let Some(slot) = self.virq_to_port.get_mut(vcpu.0 as usize).and_then(|t| t.get_mut(virq as usize)) {
            *slot = port;
        }
    }

    /// Every port ever allocated, with its channel.
    pub fn channels(&self) -> impl Iterator<Item = (Port, Channel)> + '_ {
        self.channels.iter().enumerate().map(|(i, c)| (Port(i as u32), *c))
    }

    /// Every VIRQ binding: (vCPU, VIRQ, port).
    pub fn virq_bindings(&self) -> impl Iterator<Item = (u32, u32, u32)> + '_ {
        self.virq_to_port.iter().enumerate().flat_map(|(v, t)| {
            t.iter().enumerate().filter(|(_, &p)| p != 0).map(move |(virq, &p)| (v as u32, virq as u32, p))
        })
    }

    /// Forgets `port` wherever it is bound to `virq`.
    pub fn unbind_virq(&mut self, virq: u32, port: Port) {
        for slot in self.virq_to_port.iter_mut().filter_map(|t| t.get_mut(virq as usize)) {
            if *slot == port.0 {
                *slot = 0;
            }
        }
    }
}
