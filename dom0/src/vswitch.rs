//! dom0's virtual switch, as pure logic: a learning bridge between the guests' interfaces
//! and the machine's NIC (Linux's bridge with Xen's `vif-bridge` rules), with per-port
//! queues that no port can fill for the others.
//!
//! - **Learning.** A frame's source MAC is learned on the port it came in on (a group
//!   address never is); entries age out after [`AGEING_NS`], and the table holds at most
//!   [`FDB_LIMIT`] of them (the oldest goes first), so a port inventing addresses cannot
//!   grow dom0's memory.
//! - **Forwarding.** A frame to a learned address goes to that port only (never back out
//!   of the port it came in on); a group (broadcast, multicast) or unknown destination is
//!   flooded to every other port.
//! - **Anti-spoofing** (Xen's `vif-common.sh` `ip=`, and the MAC rule of its `antispoof`
//!   setting): a guest's port takes frames from its configured MAC only; with addresses
//!   configured, its IPv4 packets must come from one of them (or be a DHCP request from
//!   0.0.0.0), and its ARP must name one of them as the sender. A VLAN-tagged frame cannot
//!   be checked and is refused where addresses are configured.
//! - **Sanity.** Frames shorter than an Ethernet header or longer than
//!   [`xenbus::netif::MAX_FRAME`], and frames from a group address, are dropped.
//! - **Queues.** Each port's queue holds at most [`QUEUE_LIMIT`] frames and no source port
//!   more than half of them, so a broadcast storm from one guest cannot shut the others
//!   out; what does not fit is dropped and counted.
#![forbid(unsafe_code)]

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use xenbus::netif::{Mac, ETH_HLEN, MAX_FRAME};

use crate::split::DevKey;

/// How long a learned address is kept without a frame from it (Linux's bridge default).
pub const AGEING_NS: u64 = 300_000_000_000;
/// The most addresses the table learns.
pub const FDB_LIMIT: usize = 1024;
/// The most frames queued for one port.
pub const QUEUE_LIMIT: usize = 256;
/// The most of one port's queue that frames from one source may take.
pub const PER_SOURCE_LIMIT: usize = QUEUE_LIMIT / 2;

/// A port of the switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PortId {
    /// A guest's interface.
    Vif(DevKey),
    /// The machine's NIC.
    Uplink,
    /// dom0's router (the gateway of routed, NATed guests).
    Router,
}

impl core::fmt::Display for PortId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PortId::Vif(k) => write!(f, "vif{}.{}", k.dom, k.devid),
            PortId::Uplink => f.write_str("uplink"),
            PortId::Router => f.write_str("router"),
        }
    }
}

/// What a port may send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// The only source MAC it may use (`None`: any, as the uplink).
    pub mac: Option<Mac>,
    /// The IPv4 addresses it may send from (empty: any).
    pub ips: Vec<[u8; 4]>,
}

/// Why a frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// Shorter than an Ethernet header.
    Runt,
    /// Longer than the largest frame.
    Giant,
    /// From a group address.
    GroupSource,
    /// From a MAC that is not the port's.
    SpoofedMac,
    /// From an address (IPv4 or ARP sender) that is not the port's.
    SpoofedIp,
    /// From a port the switch does not have.
    NoPort,
    /// To the port it came from (the learned address is there).
    Hairpin,
}

/// What became of a frame given to the switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Queued for these ports (some may have been full: see their counters).
    Forwarded(Vec<PortId>),
    /// Dropped at the door.
    Dropped(Drop),
}

/// A port's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames and bytes that came in on it and were accepted.
    pub rx_frames: u64,
    /// Bytes of those.
    pub rx_bytes: u64,
    /// Frames and bytes taken out of its queue (sent to it).
    pub tx_frames: u64,
    /// Bytes of those.
    pub tx_bytes: u64,
    /// Frames it sent that were refused (spoofed, malformed).
    pub refused: u64,
    /// Frames for it that its full queue dropped.
    pub overflow: u64,
}

struct Port {
    policy: Policy,
    /// A bridge port (learned and flooded to); otherwise a routed link that only the
    /// router delivers to.
    bridged: bool,
    queue: VecDeque<(PortId, Vec<u8>)>,
    /// How many of the queue's frames came from each port.
    from_counts: BTreeMap<PortId, usize>,
    counters: Counters,
}

/// The switch.
#[derive(Default)]
pub struct Switch {
    ports: BTreeMap<PortId, Port>,
    fdb: BTreeMap<Mac, (PortId, u64)>,
}

/// The EtherType and the payload after the Ethernet header (and one VLAN tag, whose
/// presence is the bool).
fn ethertype(frame: &[u8]) -> Option<(u16, bool, &[u8])> {
    let t = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if t == 0x8100 {
        let inner = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
        return Some((inner, true, frame.get(18..)?));
    }
    Some((t, false, frame.get(ETH_HLEN..)?))
}

/// Whether `frame` from a port with `policy` passes the anti-spoofing rules.
pub fn check_source(policy: &Policy, frame: &[u8]) -> Result<(), Drop> {
    let src = Mac::src_of(frame).ok_or(Drop::Runt)?;
    if src.is_group() {
        return Err(Drop::GroupSource);
    }
    if policy.mac.is_some_and(|m| m != src) {
        return Err(Drop::SpoofedMac);
    }
    if policy.ips.is_empty() {
        return Ok(());
    }
    let (t, tagged, payload) = ethertype(frame).ok_or(Drop::Runt)?;
    if tagged {
        return Err(Drop::SpoofedIp);
    }
    match t {
        0x0800 => {
            let src_ip: [u8; 4] = payload.get(12..16).and_then(|b| b.try_into().ok()).ok_or(Drop::SpoofedIp)?;
            if policy.ips.contains(&src_ip) || is_dhcp_request(payload) {
                Ok(())
            } else {
                Err(Drop::SpoofedIp)
            }
        }
        0x0806 => {
            // ARP for IPv4 over Ethernet: the sender's protocol address at 14..18.
            let sender: [u8; 4] = payload.get(14..18).and_then(|b| b.try_into().ok()).ok_or(Drop::SpoofedIp)?;
            if policy.ips.contains(&sender) || sender == [0; 4] {
                Ok(())
            } else {
                Err(Drop::SpoofedIp)
            }
        }
        _ => Ok(()),
    }
}

/// A DHCP client's message from 0.0.0.0 (UDP 68 to 67), which a guest sends before it has
/// an address.
fn is_dhcp_request(ip: &[u8]) -> bool {
    let ihl = usize::from(ip.first().map_or(0, |b| b & 0xf)) * 4;
    ip.get(12..16) == Some(&[0, 0, 0, 0])
        && ip.get(9) == Some(&17)
        && ihl >= 20
        && ip.get(ihl..ihl + 4) == Some(&[0, 68, 0, 67])
}

impl Switch {
    /// Adds port `id` with `policy`; false if it exists (it is left as it was).
    pub fn add_port(&mut self, id: PortId, policy: Policy) -> bool {
        if self.ports.contains_key(&id) {
            return false;
        }
        self.ports.insert(id, Port { policy, bridged: true, queue: VecDeque::new(), from_counts: BTreeMap::new(), counters: Counters::default() });
        true
    }

    /// Adds port `id` as a routed link: its queue only (frames reach it by [`Self::deliver`]),
    /// never learned nor flooded to. False if it exists.
    pub fn add_routed_port(&mut self, id: PortId) -> bool {
        if self.ports.contains_key(&id) {
            return false;
        }
        self.ports.insert(id, Port { policy: Policy::default(), bridged: false, queue: VecDeque::new(), from_counts: BTreeMap::new(), counters: Counters::default() });
        true
    }

    /// Queues `frame` for port `id` (from the router): false if there is no such port or
    /// its queue is full.
    pub fn deliver(&mut self, id: PortId, frame: Vec<u8>) -> bool {
        let before = self.queued(id);
        self.enqueue(id, PortId::Router, frame);
        self.queued(id) > before
    }

    /// Counts a frame port `id` sent on a routed link (the router took it).
    pub fn count_routed(&mut self, id: PortId, bytes: usize) {
        if let Some(p) = self.ports.get_mut(&id) {
            p.counters.rx_frames += 1;
            p.counters.rx_bytes += bytes as u64;
        }
    }

    /// Removes port `id`: its queue, and every address learned on it. Its counters.
    pub fn remove_port(&mut self, id: PortId) -> Option<Counters> {
        self.fdb.retain(|_, (p, _)| *p != id);
        let port = self.ports.remove(&id)?;
        for p in self.ports.values_mut() {
            p.queue.retain(|(from, _)| *from != id);
            p.from_counts.remove(&id);
        }
        Some(port.counters)
    }

    /// Whether port `id` exists.
    pub fn has_port(&self, id: PortId) -> bool {
        self.ports.contains_key(&id)
    }

    /// The ports.
    pub fn ports(&self) -> impl Iterator<Item = PortId> + '_ {
        self.ports.keys().copied()
    }

    /// Port `id`'s counters.
    pub fn counters(&self, id: PortId) -> Option<Counters> {
        self.ports.get(&id).map(|p| p.counters)
    }

    /// Where `mac` was learned, if it was.
    pub fn port_of(&self, mac: Mac) -> Option<PortId> {
        self.fdb.get(&mac).map(|(p, _)| *p)
    }

    /// Addresses learned.
    pub fn learned(&self) -> usize {
        self.fdb.len()
    }

    /// Takes `frame` in on port `from` at time `now_ns`: checks it, learns its source and
    /// queues it where it goes.
    pub fn input(&mut self, from: PortId, frame: Vec<u8>, now_ns: u64) -> Outcome {
        let Some(port) = self.ports.get_mut(&from).filter(|p| p.bridged) else {
            return Outcome::Dropped(Drop::NoPort);
        };
        let verdict = if frame.len() < ETH_HLEN {
            Err(Drop::Runt)
        } else if frame.len() > MAX_FRAME {
            Err(Drop::Giant)
        } else {
            check_source(&port.policy, &frame)
        };
        if let Err(why) = verdict {
            port.counters.refused += 1;
            return Outcome::Dropped(why);
        }
        port.counters.rx_frames += 1;
        port.counters.rx_bytes += frame.len() as u64;
        let (Some(src), Some(dst)) = (Mac::src_of(&frame), Mac::dst_of(&frame)) else {
            return Outcome::Dropped(Drop::Runt);
        };
        self.learn(src, from, now_ns);
        let to: Vec<PortId> = match self.fdb.get(&dst) {
            Some(&(p, seen)) if !dst.is_group() && now_ns.saturating_sub(seen) < AGEING_NS => {
                if p == from {
                    return Outcome::Dropped(Drop::Hairpin);
                }
                alloc::vec![p]
            }
            _ => self.ports.iter().filter(|(&p, port)| p != from && port.bridged).map(|(&p, _)| p).collect(),
        };
        let mut frame = Some(frame);
        for (i, &p) in to.iter().enumerate() {
            // The last port takes the frame itself; the others a copy.
            let f = if i + 1 == to.len() { frame.take().unwrap_or_default() } else { frame.clone().unwrap_or_default() };
            self.enqueue(p, from, f);
        }
        Outcome::Forwarded(to)
    }

    fn learn(&mut self, src: Mac, port: PortId, now_ns: u64) {
        if !self.fdb.contains_key(&src) && self.fdb.len() >= FDB_LIMIT {
            self.fdb.retain(|_, (_, seen)| now_ns.saturating_sub(*seen) < AGEING_NS);
            if self.fdb.len() >= FDB_LIMIT {
                if let Some(oldest) = self.fdb.iter().min_by_key(|(_, (_, seen))| *seen).map(|(m, _)| *m) {
                    self.fdb.remove(&oldest);
                }
            }
        }
        self.fdb.insert(src, (port, now_ns));
    }

    fn enqueue(&mut self, to: PortId, from: PortId, frame: Vec<u8>) {
        let Some(port) = self.ports.get_mut(&to) else { return };
        let from_source = port.from_counts.entry(from).or_insert(0);
        if port.queue.len() >= QUEUE_LIMIT || *from_source >= PER_SOURCE_LIMIT {
            port.counters.overflow += 1;
            return;
        }
        *from_source += 1;
        port.queue.push_back((from, frame));
    }

    /// Frames queued for port `id`.
    pub fn queued(&self, id: PortId) -> usize {
        self.ports.get(&id).map_or(0, |p| p.queue.len())
    }

    /// The next frame queued for port `id` (its delivery).
    pub fn take(&mut self, id: PortId) -> Option<Vec<u8>> {
        let port = self.ports.get_mut(&id)?;
        let (from, frame) = port.queue.pop_front()?;
        if let Some(n) = port.from_counts.get_mut(&from) {
            *n = n.saturating_sub(1);
        }
        port.counters.tx_frames += 1;
        port.counters.tx_bytes += frame.len() as u64;
        Some(frame)
    }

    /// The ports with frames queued.
    pub fn pending(&self) -> Vec<PortId> {
        self.ports.iter().filter(|(_, p)| !p.queue.is_empty()).map(|(&id, _)| id).collect()
    }
}

/// xl's `rate=` (`docs/man/xl-network-configuration`): at most `bytes` every `interval_us`
/// (Linux netback's `credit_bytes` and `credit_usec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Bytes a window may send.
    pub bytes: u64,
    /// The window, in microseconds.
    pub interval_us: u64,
}

impl Rate {
    /// Parses xl's `RATE[@INTERVAL]`: a number with `B/s`, `KB/s`, `MB/s`, `GB/s` or the
    /// same in bits (`b/s`, `Kb/s`, ...), and an interval in `s`, `ms` or `us` (default
    /// 50 ms), as libxl's `parse_vif_rate` does.
    pub fn parse(text: &str) -> Result<Rate, alloc::string::String> {
        use alloc::format;
        let (rate, interval) = match text.split_once('@') {
            Some((r, i)) => (r, Some(i)),
            None => (text, None),
        };
        let digits = rate.bytes().take_while(u8::is_ascii_digit).count();
        let (n, unit) = rate.split_at(digits);
        let n: u64 = n.parse().map_err(|_| format!("rate {rate:?}: no number"))?;
        let per_sec = match unit {
            "B/s" => n,
            "KB/s" => n * 1024,
            "MB/s" => n * 1024 * 1024,
            "GB/s" => n * 1024 * 1024 * 1024,
            "b/s" => n / 8,
            "Kb/s" => n * 1024 / 8,
            "Mb/s" => n * 1024 * 1024 / 8,
            "Gb/s" => n * 1024 * 1024 * 1024 / 8,
            _ => return Err(format!("rate {rate:?}: the unit must be B/s, KB/s, MB/s, GB/s or b/s, Kb/s, Mb/s, Gb/s")),
        };
        if per_sec == 0 {
            return Err(format!("rate {rate:?} is zero"));
        }
        let interval_us = match interval {
            None => 50_000,
            Some(i) => {
                let digits = i.bytes().take_while(u8::is_ascii_digit).count();
                let (v, unit) = i.split_at(digits);
                let v: u64 = v.parse().map_err(|_| format!("interval {i:?}: no number"))?;
                let us = match unit {
                    "s" => v.saturating_mul(1_000_000),
                    "ms" => v.saturating_mul(1000),
                    "us" => v,
                    _ => return Err(format!("interval {i:?}: the unit must be s, ms or us")),
                };
                if us == 0 || us > u64::from(u32::MAX) {
                    return Err(format!("interval {i:?} is out of range"));
                }
                us
            }
        };
        let bytes = (u128::from(per_sec) * u128::from(interval_us) / 1_000_000).max(1) as u64;
        Ok(Rate { bytes, interval_us })
    }
}

/// A port's transmit credit under a [`Rate`] (Linux netback's `tx_credit_exceeded`): a
/// window's bytes, refilled at each new window; a frame larger than the whole window is
/// let through once the window is full, so nothing starves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credit {
    rate: Rate,
    remaining: u64,
    window_start_ns: u64,
}

impl Credit {
    /// A full window at `now_ns`.
    pub fn new(rate: Rate, now_ns: u64) -> Credit {
        Credit { rate, remaining: rate.bytes, window_start_ns: now_ns }
    }

    /// Whether `bytes` may go at `now_ns` (they are then counted); if not, when to try
    /// again (the next window's start).
    pub fn take(&mut self, bytes: u64, now_ns: u64) -> Result<(), u64> {
        let window = self.rate.interval_us * 1000;
        if now_ns >= self.window_start_ns + window {
            self.window_start_ns = now_ns;
            self.remaining = self.rate.bytes;
        }
        let fits = bytes <= self.remaining || (bytes > self.rate.bytes && self.remaining == self.rate.bytes);
        if fits {
            self.remaining = self.remaining.saturating_sub(bytes);
            Ok(())
        } else {
            Err(self.window_start_ns + window)
        }
    }
}

#[cfg(test)]
mod tests;
