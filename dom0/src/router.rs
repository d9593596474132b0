//! dom0's router for routed (`type=nat`) interfaces, as pure logic: Xen's `vif-nat` with
//! dom0 as the guests' gateway, translating their addresses to its own on the bridge
//! (NAPT, as Linux's masquerading does).
//!
//! - **Inside**: each routed vif is a link of its own (not a bridge port). The router
//!   answers ARP for its inside address ([`INSIDE_IP`]) and pings to it, and takes the
//!   guest's IPv4 packets if they come from the guest's MAC and configured address (the
//!   anti-spoofing rule).
//! - **Outside**: the router is a port of the switch with its own MAC and address
//!   ([`OUTSIDE_IP`], on QEMU's user network, its gateway [`OUTSIDE_GW`]). It answers ARP
//!   and pings for that address, learns its neighbours' MACs from ARP, and asks for a
//!   next hop it does not know (the packet waits, a few at most).
//! - **Translation**: a TCP or UDP packet from a guest leaves from the router's address and
//!   a port of its own ([`PORT_BASE`]..), an ICMP echo with an identifier of its own; the
//!   answers are translated back to the guest by the same entry. Entries expire after
//!   [`IDLE_NS`] without traffic, and there are at most [`MAX_ENTRIES`]: a guest cannot
//!   exhaust dom0's memory by opening connections. The TTL is decremented (a packet at 1
//!   is dropped), checksums recomputed.
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use xenbus::netif::Mac;

use crate::netback::complete_checksum;
use crate::split::DevKey;

/// The router's address on the routed guests' side (their gateway).
pub const INSIDE_IP: [u8; 4] = [10, 0, 0, 1];
/// The router's address on the bridge (QEMU's user network).
pub const OUTSIDE_IP: [u8; 4] = [10, 0, 2, 16];
/// The bridge's gateway (QEMU's user network).
pub const OUTSIDE_GW: [u8; 4] = [10, 0, 2, 2];
/// The router's MAC on both sides (Xen's prefix, dom0's number).
pub const ROUTER_MAC: Mac = Mac([0x00, 0x16, 0x3e, 0x7f, 0xff, 0xfe]);
/// The first port (and ICMP identifier) translations use.
pub const PORT_BASE: u16 = 20000;
/// Translations at most.
pub const MAX_ENTRIES: usize = 4096;
/// A translation unused this long is forgotten.
pub const IDLE_NS: u64 = 300_000_000_000;
/// Packets waiting for a neighbour's MAC, at most.
const MAX_WAITING: usize = 16;

const ETH_IPV4: [u8; 2] = [0x08, 0x00];
const ETH_ARP: [u8; 2] = [0x08, 0x06];
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;

/// Where the router sends a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// To a routed guest's interface.
    ToVif(DevKey, Vec<u8>),
    /// Out of its port on the switch.
    ToSwitch(Vec<u8>),
}

/// A routed guest: its interface and MAC, by its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Guest {
    key: DevKey,
    mac: Mac,
}

/// One translation: the guest's end, the protocol, and when it was last used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    ip: [u8; 4],
    port: u16,
    last: u64,
}

/// The router.
#[derive(Default)]
pub struct Router {
    guests: BTreeMap<[u8; 4], Guest>,
    /// (protocol, guest address, guest port or echo id) → the router's port.
    out_of: BTreeMap<(u8, [u8; 4], u16), u16>,
    /// (protocol, router port) → the guest's end.
    back_to: BTreeMap<(u8, u16), Entry>,
    next_port: u16,
    neighbours: BTreeMap<[u8; 4], Mac>,
    waiting: Vec<([u8; 4], Vec<u8>)>,
    /// Packets translated out, and back in.
    pub translated: (u64, u64),
    /// Packets dropped (spoofed, unknown, expired TTL, no room).
    pub dropped: u64,
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame.
fn eth(dst: Mac, src: Mac, kind: [u8; 2], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&kind);
    f.extend_from_slice(payload);
    f
}

/// An ARP packet (Ethernet, IPv4) of `op` (1 request, 2 reply).
fn arp(op: u16, sha: Mac, spa: [u8; 4], tha: Mac, tpa: [u8; 4]) -> Vec<u8> {
    let mut a = alloc::vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha.0);
    a.extend_from_slice(&spa);
    a.extend_from_slice(&tha.0);
    a.extend_from_slice(&tpa);
    a
}

/// An ARP packet's (op, sender MAC, sender IP, target IP), if it is one for IPv4.
fn parse_arp(p: &[u8]) -> Option<(u16, Mac, [u8; 4], [u8; 4])> {
    if p.len() < 28 || p[..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let op = u16::from_be_bytes([p[6], p[7]]);
    Some((op, Mac(p[8..14].try_into().ok()?), p[14..18].try_into().ok()?, p[24..28].try_into().ok()?))
}

/// An IPv4 packet's header length, protocol, source and destination, if it is a whole,
/// unfragmented one.
fn parse_ipv4(p: &[u8]) -> Option<(usize, u8, [u8; 4], [u8; 4])> {
    let ihl = usize::from(*p.first()? & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
    if p[0] >> 4 != 4 || ihl < 20 || total < ihl + 8 || total > p.len() || u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0 {
        return None;
    }
    Some((ihl, p[9], p[12..16].try_into().ok()?, p[16..20].try_into().ok()?))
}

/// Whether `ip` is on the outside subnet (/24).
fn outside_subnet(ip: [u8; 4]) -> bool {
    ip[..3] == OUTSIDE_IP[..3]
}

/// An echo reply to the echo request `ip` (an IPv4 packet), from `from`.
fn echo_reply(ip: &[u8], ihl: usize, from: [u8; 4], to: [u8; 4]) -> Option<Vec<u8>> {
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let icmp = ip.get(ihl..total)?;
    if icmp.first() != Some(&8) {
        return None;
    }
    let mut out = ip[..total].to_vec();
    out[12..16].copy_from_slice(&from);
    out[16..20].copy_from_slice(&to);
    out[8] = 64;
    out[10..12].copy_from_slice(&[0, 0]);
    let c = checksum(&out[..ihl]);
    out[10..12].copy_from_slice(&c.to_be_bytes());
    out[ihl] = 0;
    out[ihl + 2..ihl + 4].copy_from_slice(&[0, 0]);
    let c = checksum(&out[ihl..]);
    out[ihl + 2..ihl + 4].copy_from_slice(&c.to_be_bytes());
    Some(out)
}

/// The ports (or echo identifier) of a transport header: (source, destination), or
/// `None` for a protocol or ICMP type not translated.
fn ports(proto: u8, l4: &[u8]) -> Option<(u16, u16)> {
    match proto {
        TCP | UDP => Some((u16::from_be_bytes([*l4.first()?, *l4.get(1)?]), u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]))),
        // Echo request (8) or reply (0): the identifier both ways.
        ICMP if matches!(l4.first(), Some(0 | 8)) => {
            let id = u16::from_be_bytes([*l4.get(4)?, *l4.get(5)?]);
            Some((id, id))
        }
        _ => None,
    }
}

/// Rewrites an IPv4 packet in `frame` (Ethernet at 0): source or destination address and
/// port (or echo id), TTL down by one, checksums recomputed.
fn rewrite(frame: &mut [u8], ihl: usize, proto: u8, src: Option<([u8; 4], u16)>, dst: Option<([u8; 4], u16)>) {
    let ip = 14;
    let l4 = ip + ihl;
    if let Some((a, p)) = src {
        frame[ip + 12..ip + 16].copy_from_slice(&a);
        match proto {
            ICMP => frame[l4 + 4..l4 + 6].copy_from_slice(&p.to_be_bytes()),
            _ => frame[l4..l4 + 2].copy_from_slice(&p.to_be_bytes()),
        }
    }
    if let Some((a, p)) = dst {
        frame[ip + 16..ip + 20].copy_from_slice(&a);
        match proto {
            ICMP => frame[l4 + 4..l4 + 6].copy_from_slice(&p.to_be_bytes()),
            _ => frame[l4 + 2..l4 + 4].copy_from_slice(&p.to_be_bytes()),
        }
    }
    frame[ip + 8] = frame[ip + 8].saturating_sub(1);
    frame[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
    let c = checksum(&frame[ip..l4]);
    frame[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
    if proto == ICMP {
        let total = usize::from(u16::from_be_bytes([frame[ip + 2], frame[ip + 3]]));
        frame[l4 + 2..l4 + 4].copy_from_slice(&[0, 0]);
        let c = checksum(&frame[l4..ip + total]);
        frame[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    } else {
        complete_checksum(frame);
    }
}

impl Router {
    /// Routes for the guest `key` with `mac` at `ip`; false if that address is taken.
    pub fn add_guest(&mut self, key: DevKey, mac: Mac, ip: [u8; 4]) -> bool {
        if self.guests.contains_key(&ip) || ip == INSIDE_IP {
            return false;
        }
        self.guests.insert(ip, Guest { key, mac });
        true
    }

    /// Stops routing for `key`: its address and its translations go.
    pub fn remove_guest(&mut self, key: DevKey) {
        let ips: Vec<[u8; 4]> = self.guests.iter().filter(|(_, g)| g.key == key).map(|(ip, _)| *ip).collect();
        for ip in ips {
            self.guests.remove(&ip);
            self.out_of.retain(|(_, a, _), _| *a != ip);
            self.back_to.retain(|_, e| e.ip != ip);
        }
    }

    /// Translations held.
    pub fn entries(&self) -> usize {
        self.back_to.len()
    }

    /// A port of the router's for (`proto`, `ip`, `port`), made if need be.
    fn port_for(&mut self, proto: u8, ip: [u8; 4], port: u16, now: u64) -> Option<u16> {
        if let Some(&p) = self.out_of.get(&(proto, ip, port)) {
            if let Some(e) = self.back_to.get_mut(&(proto, p)) {
                e.last = now;
            }
            return Some(p);
        }
        if self.back_to.len() >= MAX_ENTRIES {
            let expired: Vec<(u8, u16)> = self.back_to.iter().filter(|(_, e)| now.saturating_sub(e.last) >= IDLE_NS).map(|(k, _)| *k).collect();
            for k in expired {
                if let Some(e) = self.back_to.remove(&k) {
                    self.out_of.remove(&(k.0, e.ip, e.port));
                }
            }
            if self.back_to.len() >= MAX_ENTRIES {
                return None;
            }
        }
        let span = u16::MAX - PORT_BASE;
        for _ in 0..span {
            let p = PORT_BASE + self.next_port % span;
            self.next_port = self.next_port.wrapping_add(1);
            if let alloc::collections::btree_map::Entry::Vacant(slot) = self.back_to.entry((proto, p)) {
                slot.insert(Entry { ip, port, last: now });
                self.out_of.insert((proto, ip, port), p);
                return Some(p);
            }
        }
        None
    }

    /// Sends an IPv4 packet out of the switch port toward `dst`: to its MAC if known,
    /// else after asking for it.
    fn send_out(&mut self, mut frame: Vec<u8>, dst: [u8; 4]) -> Vec<Out> {
        let hop = if outside_subnet(dst) { dst } else { OUTSIDE_GW };
        frame[6..12].copy_from_slice(&ROUTER_MAC.0);
        if let Some(mac) = self.neighbours.get(&hop) {
            frame[..6].copy_from_slice(&mac.0);
            return alloc::vec![Out::ToSwitch(frame)];
        }
        if self.waiting.len() >= MAX_WAITING {
            self.dropped += 1;
            return Vec::new();
        }
        self.waiting.push((hop, frame));
        let ask = arp(1, ROUTER_MAC, OUTSIDE_IP, Mac([0; 6]), hop);
        alloc::vec![Out::ToSwitch(eth(Mac::BROADCAST, ROUTER_MAC, ETH_ARP, &ask))]
    }

    /// A frame from routed guest `key` (MAC `mac`) at time `now`: what to send.
    pub fn from_vif(&mut self, key: DevKey, frame: &[u8], now: u64) -> Vec<Out> {
        let Some(src_mac) = Mac::src_of(frame) else { return Vec::new() };
        let Some(guest_ip) = self.guests.iter().find(|(_, g)| g.key == key).map(|(ip, _)| *ip) else { return Vec::new() };
        let guest = self.guests[&guest_ip];
        if src_mac != guest.mac || frame.len() < 14 {
            self.dropped += 1;
            return Vec::new();
        }
        let payload = &frame[14..];
        match [frame[12], frame[13]] {
            ETH_ARP => match parse_arp(payload) {
                Some((1, sha, spa, tpa)) if tpa == INSIDE_IP && sha == guest.mac && (spa == guest_ip || spa == [0; 4]) => {
                    let reply = arp(2, ROUTER_MAC, INSIDE_IP, sha, spa);
                    alloc::vec![Out::ToVif(key, eth(sha, ROUTER_MAC, ETH_ARP, &reply))]
                }
                _ => Vec::new(),
            },
            ETH_IPV4 => {
                let Some((ihl, proto, src, dst)) = parse_ipv4(payload) else {
                    self.dropped += 1;
                    return Vec::new();
                };
                if src != guest_ip {
                    self.dropped += 1;
                    return Vec::new();
                }
                if dst == INSIDE_IP {
                    return match (proto, echo_reply(payload, ihl, INSIDE_IP, src)) {
                        (ICMP, Some(r)) => alloc::vec![Out::ToVif(key, eth(guest.mac, ROUTER_MAC, ETH_IPV4, &r))],
                        _ => Vec::new(),
                    };
                }
                let Some((sport, _)) = ports(proto, &payload[ihl..]) else {
                    self.dropped += 1;
                    return Vec::new();
                };
                if payload[8] <= 1 {
                    self.dropped += 1;
                    return Vec::new();
                }
                let Some(p) = self.port_for(proto, src, sport, now) else {
                    self.dropped += 1;
                    return Vec::new();
                };
                let total = usize::from(u16::from_be_bytes([payload[2], payload[3]]));
                let mut out = frame[..14 + total].to_vec();
                rewrite(&mut out, ihl, proto, Some((OUTSIDE_IP, p)), None);
                self.translated.0 += 1;
                self.send_out(out, dst)
            }
            _ => Vec::new(),
        }
    }

    /// A frame the switch delivered to the router's port at time `now`: what to send.
    pub fn from_switch(&mut self, frame: &[u8], now: u64) -> Vec<Out> {
        if frame.len() < 14 {
            return Vec::new();
        }
        let payload = &frame[14..];
        match [frame[12], frame[13]] {
            ETH_ARP => {
                let Some((op, sha, spa, tpa)) = parse_arp(payload) else { return Vec::new() };
                let mut out = Vec::new();
                if outside_subnet(spa) && !sha.is_group() && spa != [0; 4] && (tpa == OUTSIDE_IP || self.neighbours.contains_key(&spa)) {
                    self.neighbours.insert(spa, sha);
                    let (ready, still): (Vec<_>, Vec<_>) = core::mem::take(&mut self.waiting).into_iter().partition(|(hop, _)| *hop == spa);
                    self.waiting = still;
                    for (_, mut f) in ready {
                        f[..6].copy_from_slice(&sha.0);
                        out.push(Out::ToSwitch(f));
                    }
                }
                if op == 1 && tpa == OUTSIDE_IP {
                    let reply = arp(2, ROUTER_MAC, OUTSIDE_IP, sha, spa);
                    out.push(Out::ToSwitch(eth(sha, ROUTER_MAC, ETH_ARP, &reply)));
                }
                out
            }
            ETH_IPV4 => {
                let Some((ihl, proto, src, dst)) = parse_ipv4(payload) else { return Vec::new() };
                if dst != OUTSIDE_IP || Mac::dst_of(frame) != Some(ROUTER_MAC) {
                    return Vec::new();
                }
                let Some((_, dport)) = ports(proto, &payload[ihl..]) else {
                    return Vec::new();
                };
                // A ping to the router itself.
                if proto == ICMP && payload.get(ihl) == Some(&8) {
                    let Some(src_mac) = Mac::src_of(frame) else { return Vec::new() };
                    return echo_reply(payload, ihl, OUTSIDE_IP, src).map(|r| alloc::vec![Out::ToSwitch(eth(src_mac, ROUTER_MAC, ETH_IPV4, &r))]).unwrap_or_default();
                }
                let Some(e) = self.back_to.get_mut(&(proto, dport)) else {
                    self.dropped += 1;
                    return Vec::new();
                };
                e.last = now;
                let e = *e;
                let Some(guest) = self.guests.get(&e.ip).copied() else { return Vec::new() };
                if payload[8] <= 1 {
                    self.dropped += 1;
                    return Vec::new();
                }
                let total = usize::from(u16::from_be_bytes([payload[2], payload[3]]));
                let mut out = frame[..14 + total].to_vec();
                rewrite(&mut out, ihl, proto, None, Some((e.ip, e.port)));
                out[..6].copy_from_slice(&guest.mac.0);
                out[6..12].copy_from_slice(&ROUTER_MAC.0);
                self.translated.1 += 1;
                alloc::vec![Out::ToVif(guest.key, out)]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
