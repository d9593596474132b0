//! The network back end's portable half (Linux's `xen-netback`, Xen's `io/netif.h`): a
//! vif's store nodes, serving its two rings, and its port on dom0's switch.
//!
//! Serving never trusts the rings. Each transmitted frame's slots are copied once into
//! private memory and checked (`xenbus::netif::gather_tx`, `check_tx`: Linux netback's
//! rules); its bytes are copied out of the front end's granted pages by grant copy
//! ([`NetMachine`]), a blank checksum the front end left to offload is completed, and the
//! frame goes to the switch, which checks its source and queues it where it goes. Every
//! slot is answered. A dropped frame (a runt, sizes that do not add up, a grant that does
//! not copy) is answered `NETIF_RSP_ERROR` and serving goes on; a fatal one (a slot across
//! its page, a chain that never ends, a frame past the MTU) or a ring whose indices lie
//! stops the device ([`Served::Broken`]), which the framework disconnects while every
//! other vif keeps switching.
//!
//! Received frames wait in the switch's queue for the port until the front end posts
//! pages (rx requests); each is copied into one page at offset 0 and answered with its
//! length. A vif with a `rate=` is credited as Linux netback does: once a window's bytes
//! are spent its frames stay in its ring (the guest is slowed, nothing is lost) until
//! the next window ([`Netback::next_deadline`]).
#![forbid(unsafe_code)]

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xenbus::netif::{self, keys, Mac, NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse, TxSlots, TxVerdict, NETIF_RSP_ERROR, NETIF_RSP_OKAY};
use xenbus::ring::generic::BackRing;
use xenbus::ring::SharedMem;

use crate::config::vif::{default_mac, VifMode, VifSpec};
pub use crate::split::Served;
use crate::split::{backend_path, frontend_path, Backend, DevKey, Kind};
use crate::router::{self, Out, Router};
use crate::vswitch::{Credit, Outcome, Policy, PortId, Switch};

/// Frames moved per grant copy (one hypercall for a batch, as Linux netback batches).
pub const BATCH: usize = 32;

/// What netback needs from the machine: grant copies between front ends' pages and
/// dom0's memory, a batch of frames at a time (at most [`BATCH`]), and the time.
pub trait NetMachine {
    /// The bytes of each frame (its pieces of `dom`'s granted pages, in order), or `None`
    /// for a frame a piece of which did not copy (a bad or revoked grant).
    fn copy_in(&mut self, dom: u16, frames: &[&[netif::Piece]]) -> Vec<Option<Vec<u8>>>;
    /// Copies each frame to the start of `dom`'s granted page `gref`: whether each copied.
    fn copy_out(&mut self, dom: u16, frames: &[(u32, &[u8])]) -> Vec<bool>;
    /// The time, in ns (learning, ageing, rates).
    fn now_ns(&self) -> u64;
}

/// An attached vif: its spec with its MAC fixed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vif {
    /// The guest.
    pub dom: u16,
    /// What the config asked.
    pub spec: VifSpec,
    /// Its MAC.
    pub mac: Mac,
}

/// A vif's counters, as `xl network-list` shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VifCounters {
    /// Frames the guest sent that were taken (switched or refused by the switch).
    pub tx_frames: u64,
    /// Frames it sent that were answered with an error (malformed, bad grants).
    pub tx_errors: u64,
    /// Frames delivered into its posted pages.
    pub rx_frames: u64,
    /// Frames whose delivery failed (a posted page that did not copy).
    pub rx_errors: u64,
}

/// One connected vif: its rings' back ends, the pages it posted, its credit.
pub struct Connection {
    tx: BackRing<NetifTxRequest, NetifTxResponse>,
    rx: BackRing<NetifRxRequest, NetifRxResponse>,
    posted: VecDeque<NetifRxRequest>,
    credit: Option<Credit>,
    /// A frame gathered but over the credit: it goes first at the next window.
    deferred: Option<TxSlots>,
    /// A routed (`type=nat`) vif: its frames go to the router.
    routed: bool,
    /// Its counters.
    pub counters: VifCounters,
}

/// The ring order of `RING_NODES`.
const TX: usize = 0;
const RX: usize = 1;

/// The network back end: the switch and the machine under it.
pub struct Netback<M> {
    /// The grant copies and the clock.
    pub machine: M,
    /// dom0's switch.
    pub switch: Switch,
    /// dom0's router for routed (`type=nat`) vifs.
    pub router: Router,
    /// Ports that got frames while serving: to deliver to next.
    kicks: BTreeSet<PortId>,
    /// Vifs held by their credit, and when the next window opens.
    waiting: BTreeMap<DevKey, u64>,
}

impl<M> Netback<M> {
    /// A back end over `machine` with an empty switch.
    pub fn new(machine: M) -> Self {
        Netback { machine, switch: Switch::default(), router: Router::default(), kicks: BTreeSet::new(), waiting: BTreeMap::new() }
    }

    /// The ports that got frames since the last call: serve the vifs among them (their
    /// rx), and the uplink.
    pub fn take_kicks(&mut self) -> Vec<PortId> {
        core::mem::take(&mut self.kicks).into_iter().collect()
    }

    /// The earliest time a vif held by its rate may send again.
    pub fn next_deadline(&self) -> Option<u64> {
        self.waiting.values().min().copied()
    }

    /// The vifs whose credit window has opened by `now_ns` (serve them).
    pub fn due(&mut self, now_ns: u64) -> Vec<DevKey> {
        let due: Vec<DevKey> = self.waiting.iter().filter(|(_, &at)| at <= now_ns).map(|(&k, _)| k).collect();
        due.iter().for_each(|k| {
            self.waiting.remove(k);
        });
        due
    }

    /// Gives the switch a frame from port `from` (the uplink, a bridged vif, the router):
    /// queued where it goes, the ports among them kicked; what reached the router is
    /// routed at once.
    pub fn input(&mut self, from: PortId, frame: Vec<u8>, now_ns: u64) -> Outcome {
        let out = self.switch.input(from, frame, now_ns);
        if let Outcome::Forwarded(to) = &out {
            self.kicks.extend(to.iter().copied().filter(|&p| p != PortId::Router));
            if to.contains(&PortId::Router) {
                while let Some(f) = self.switch.take(PortId::Router) {
                    let outs = self.router.from_switch(&f, now_ns);
                    self.route(outs, now_ns);
                }
            }
        }
        out
    }

    /// Sends what the router produced: to a routed vif's queue, or into the switch from
    /// the router's port.
    fn route(&mut self, outs: Vec<Out>, now_ns: u64) {
        for o in outs {
            match o {
                Out::ToVif(key, f) => {
                    if self.switch.deliver(PortId::Vif(key), f) {
                        self.kicks.insert(PortId::Vif(key));
                    }
                }
                // Never back to the router: the switch does not send a frame out of the
                // port it came in on.
                Out::ToSwitch(f) => {
                    if let Outcome::Forwarded(to) = self.switch.input(PortId::Router, f, now_ns) {
                        self.kicks.extend(to);
                    }
                }
            }
        }
    }

    /// A frame a routed vif sent: the router's.
    fn input_routed(&mut self, key: DevKey, frame: &[u8], now_ns: u64) {
        self.switch.count_routed(PortId::Vif(key), frame.len());
        let outs = self.router.from_vif(key, frame, now_ns);
        self.route(outs, now_ns);
    }
}

/// The back-end directory of `dom`'s vif `devid`.
pub fn vif_backend_path(dom: u16, devid: u32) -> String {
    backend_path(Kind::Vif, DevKey { dom, devid })
}

fn dotted(ip: &[u8; 4]) -> String {
    format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3])
}

/// The nodes libxl and netback write for a new vif: the back-end directory (`frontend`,
/// `handle`, `mac`, `bridge`, `ip`, the features: copying receive, several slots per
/// frame, no GSO; `mtu`; `state` = InitWait) and the front-end directory (`backend`,
/// `handle`, `mac`, `state` = Initialising).
pub fn store_nodes(vif: &Vif) -> Vec<(String, String)> {
    let key = DevKey { dom: vif.dom, devid: vif.spec.devid };
    let back = backend_path(Kind::Vif, key);
    let front = frontend_path(Kind::Vif, key);
    let mac = format!("{}", vif.mac);
    let mut nodes = Vec::new();
    let mut b = |k: &str, v: String| nodes.push((format!("{back}/{k}"), v));
    b("frontend", front.clone());
    b("frontend-id", format!("{}", vif.dom));
    b("online", String::from("1"));
    b("type", String::from("vif"));
    b(keys::HANDLE, format!("{}", vif.spec.devid));
    b(keys::MAC, mac.clone());
    b("bridge", vif.spec.bridge.clone());
    b("script", String::from(if vif.spec.mode == VifMode::Nat { "vif-nat" } else { "vif-bridge" }));
    if !vif.spec.ips.is_empty() {
        b(keys::IP, vif.spec.ips.iter().map(dotted).collect::<Vec<_>>().join(" "));
    }
    if let Some(r) = vif.spec.rate {
        b("rate", format!("{},{}", r.bytes, r.interval_us));
    }
    b("mtu", format!("{}", netif::MTU));
    b(keys::FEATURE_RX_COPY, String::from("1"));
    b(keys::FEATURE_RX_FLIP, String::from("0"));
    b(keys::FEATURE_SG, String::from("1"));
    b(keys::FEATURE_GSO_TCPV4, String::from("0"));
    b("state", String::from("2"));
    let mut f = |k: &str, v: String| nodes.push((format!("{front}/{k}"), v));
    f("backend", back.clone());
    f("backend-id", String::from("0"));
    f(keys::HANDLE, format!("{}", vif.spec.devid));
    f(keys::MAC, mac);
    f("state", String::from("1"));
    nodes
}

/// Completes the L4 checksum of an IPv4 TCP or UDP packet in `frame` that a front end left
/// blank for offload (`NETTXF_csum_blank`): the field is recomputed from scratch over the
/// pseudo-header and the segment. Anything else is left as it is.
pub fn complete_checksum(frame: &mut [u8]) {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip[0] >> 4 != 4 || ihl < 20 || total < ihl || total > ip.len() || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return;
    }
    let proto = ip[9];
    let field = match proto {
        6 => 16,
        17 => 6,
        _ => return,
    };
    let l4_len = total - ihl;
    if l4_len < field + 2 {
        return;
    }
    let (src, dst) = ([ip[12], ip[13], ip[14], ip[15]], [ip[16], ip[17], ip[18], ip[19]]);
    let seg = &mut frame[14 + ihl..14 + total];
    seg[field] = 0;
    seg[field + 1] = 0;
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for c in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&src);
    add(&dst);
    add(&[0, proto]);
    add(&(l4_len as u16).to_be_bytes());
    add(seg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let mut csum = !(sum as u16);
    if proto == 17 && csum == 0 {
        csum = 0xffff;
    }
    seg[field..field + 2].copy_from_slice(&csum.to_be_bytes());
}

impl<M: NetMachine> Netback<M> {
    /// Takes what the guest transmitted, while its credit lasts, [`BATCH`] frames a grant
    /// copy. `Err` if the ring lied.
    fn serve_tx(&mut self, key: DevKey, conn: &mut Connection, ring: &mut impl SharedMem) -> Result<bool, String> {
        let now = self.machine.now_ns();
        if self.waiting.get(&key).is_some_and(|&at| at > now) {
            return Ok(false);
        }
        self.waiting.remove(&key);
        let mut notify = false;
        loop {
            loop {
                // Gather a batch: each frame's slots and what to answer, or its pieces.
                let mut batch: Vec<(TxSlots, Result<i16, netif::TxFrame>)> = Vec::new();
                while batch.len() < BATCH {
                    let tx = match conn.deferred.take() {
                        Some(tx) => tx,
                        None => {
                            let ring_ref = &*ring;
                            let txr = &mut conn.tx;
                            match netif::gather_tx(&mut || txr.next_request(ring_ref).map_err(|e| format!("tx ring: {e:?}")))? {
                                Some(tx) => tx,
                                None => break,
                            }
                        }
                    };
                    let what = match netif::check_tx(&tx) {
                        TxVerdict::Fatal(why) => return Err(why),
                        TxVerdict::Drop(_) => Ok(NETIF_RSP_ERROR),
                        TxVerdict::Control => Ok(NETIF_RSP_OKAY),
                        TxVerdict::Frame(f) => {
                            if let Some(Err(at)) = conn.credit.as_mut().map(|c| c.take(f.len as u64, now)) {
                                conn.deferred = Some(tx);
                                self.waiting.insert(key, at);
                                break;
                            }
                            Err(f)
                        }
                    };
                    batch.push((tx, what));
                }
                if batch.is_empty() {
                    break;
                }
                let frames: Vec<&[netif::Piece]> = batch.iter().filter_map(|(_, w)| w.as_ref().err().map(|f| f.pieces.as_slice())).collect();
                let mut copied = self.machine.copy_in(key.dom, &frames).into_iter();
                for (tx, what) in batch {
                    let status = match what {
                        Ok(status) => status,
                        Err(f) => match copied.next().flatten() {
                            Some(mut bytes) => {
                                if f.csum_blank {
                                    complete_checksum(&mut bytes);
                                }
                                if conn.routed {
                                    self.input_routed(key, &bytes, now);
                                } else {
                                    self.input(PortId::Vif(key), bytes, now);
                                }
                                NETIF_RSP_OKAY
                            }
                            None => NETIF_RSP_ERROR,
                        },
                    };
                    if status == NETIF_RSP_OKAY {
                        conn.counters.tx_frames += 1;
                    } else {
                        conn.counters.tx_errors += 1;
                    }
                    for rsp in netif::tx_responses(&tx, status) {
                        conn.tx.push_response(ring, &rsp).map_err(|e| format!("tx ring: {e:?}"))?;
                    }
                }
                if conn.deferred.is_some() {
                    break;
                }
            }
            notify |= conn.tx.publish(ring);
            if conn.deferred.is_some() {
                return Ok(notify);
            }
            if !conn.tx.final_check_for_requests(ring).map_err(|e| format!("tx ring: {e:?}"))? {
                return Ok(notify);
            }
        }
    }

    /// Delivers what the switch queued for the vif into the pages it posted, [`BATCH`]
    /// frames a grant copy. `Err` if the ring lied.
    fn serve_rx(&mut self, key: DevKey, conn: &mut Connection, ring: &mut impl SharedMem) -> Result<bool, String> {
        let port = PortId::Vif(key);
        let mut notify = false;
        loop {
            while let Some(req) = conn.rx.next_request(ring).map_err(|e| format!("rx ring: {e:?}"))? {
                conn.posted.push_back(req);
            }
            while !conn.posted.is_empty() && self.switch.queued(port) > 0 {
                let mut batch: Vec<(NetifRxRequest, Vec<u8>)> = Vec::new();
                while batch.len() < BATCH && !conn.posted.is_empty() {
                    let Some(frame) = self.switch.take(port) else { break };
                    let Some(req) = conn.posted.pop_front() else { break };
                    batch.push((req, frame));
                }
                let outs: Vec<(u32, &[u8])> = batch.iter().map(|(r, f)| (r.gref, f.as_slice())).collect();
                let done = self.machine.copy_out(key.dom, &outs);
                for (i, (req, frame)) in batch.iter().enumerate() {
                    let status = if done.get(i).copied().unwrap_or(false) {
                        conn.counters.rx_frames += 1;
                        frame.len() as i16
                    } else {
                        conn.counters.rx_errors += 1;
                        NETIF_RSP_ERROR
                    };
                    let rsp = NetifRxResponse { id: req.id, offset: 0, flags: 0, status };
                    conn.rx.push_response(ring, &rsp).map_err(|e| format!("rx ring: {e:?}"))?;
                }
            }
            notify |= conn.rx.publish(ring);
            // Frames still wait and every page is used: ask to hear of the next one.
            if self.switch.queued(port) == 0 || !conn.posted.is_empty() {
                return Ok(notify);
            }
            if !conn.rx.final_check_for_requests(ring).map_err(|e| format!("rx ring: {e:?}"))? {
                return Ok(notify);
            }
        }
    }
}

impl<M: NetMachine, P: SharedMem> Backend<P> for Netback<M> {
    type Spec = VifSpec;
    type Config = Vif;
    type Conn = Connection;
    const KIND: Kind = Kind::Vif;
    const RING_NODES: &'static [&'static str] = &[keys::TX_RING_REF, keys::RX_RING_REF];

    /// Fixes the MAC and gives the vif its port on the switch, with the anti-spoofing
    /// rules of its MAC and addresses.
    /// A routed one gets a link of its own to the router, which routes its first address.
    fn attach(&mut self, key: DevKey, spec: &VifSpec) -> Result<Vif, String> {
        let mac = spec.mac.unwrap_or_else(|| default_mac(key.dom, key.devid));
        if self.switch.has_port(PortId::Vif(key)) {
            return Err(format!("d{} already has a network interface {}", key.dom, key.devid));
        }
        if spec.mode == VifMode::Nat {
            let ip = *spec.ips.first().ok_or("a routed interface needs its address (ip=)")?;
            if !self.router.add_guest(key, mac, ip) {
                return Err(format!("{} is routed to another interface already", dotted(&ip)));
            }
            self.switch.add_routed_port(PortId::Vif(key));
            // The router's own port on the bridge, with its address.
            self.switch.add_port(PortId::Router, Policy { mac: Some(router::ROUTER_MAC), ips: alloc::vec![router::OUTSIDE_IP] });
        } else {
            self.switch.add_port(PortId::Vif(key), Policy { mac: Some(mac), ips: spec.ips.clone() });
        }
        Ok(Vif { dom: key.dom, spec: spec.clone(), mac })
    }

    fn nodes(&self, _key: DevKey, vif: &Vif) -> Vec<(String, String)> {
        store_nodes(vif)
    }

    /// The front end must ask for copied receives (`request-rx-copy`), as Linux netback
    /// requires; split event channels and several queues are not offered.
    fn connect(&mut self, _key: DevKey, vif: &Vif, front: &mut dyn FnMut(&str) -> Option<Vec<u8>>, rings: &mut [P]) -> Result<Connection, String> {
        let copy = front(keys::REQUEST_RX_COPY).and_then(|v| core::str::from_utf8(&v).ok().and_then(|s| s.trim().parse::<u32>().ok()));
        if copy != Some(1) {
            return Err(String::from("the front end does not ask for request-rx-copy (page flipping is not offered)"));
        }
        let (Some(tx), Some(rx)) = (rings.get(TX), rings.get(RX)) else {
            return Err(String::from("two rings are needed"));
        };
        let tx = BackRing::new(tx).map_err(|e| format!("tx ring: {e:?}"))?;
        let rx = BackRing::new(rx).map_err(|e| format!("rx ring: {e:?}"))?;
        let credit = vif.spec.rate.map(|r| Credit::new(r, self.machine.now_ns()));
        Ok(Connection { tx, rx, posted: VecDeque::new(), credit, deferred: None, routed: vif.spec.mode == VifMode::Nat, counters: VifCounters::default() })
    }

    fn serve(&mut self, key: DevKey, conn: &mut Connection, rings: &mut [P]) -> Served {
        let [tx, rx] = rings else {
            return Served::Broken(String::from("two rings are needed"));
        };
        let sent = match self.serve_tx(key, conn, tx) {
            Ok(n) => n,
            Err(why) => return Served::Broken(why),
        };
        match self.serve_rx(key, conn, rx) {
            Ok(received) => Served::Answered { notify: sent || received },
            Err(why) => Served::Broken(why),
        }
    }

    /// The port goes, with what was queued for it and what was learned on it.
    fn release(&mut self, key: DevKey, _vif: &Vif) {
        self.switch.remove_port(PortId::Vif(key));
        self.router.remove_guest(key);
        self.waiting.remove(&key);
        self.kicks.remove(&PortId::Vif(key));
    }
}

/// One vif as `xl network-list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicRow {
    /// Its device number.
    pub devid: u32,
    /// Its MAC.
    pub mac: String,
    /// The back end's and front end's states.
    pub states: (Option<u32>, Option<u32>),
    /// The front end's event channel.
    pub evtchn: Option<u32>,
    /// Its ring grants (tx, rx).
    pub rings: (Option<u32>, Option<u32>),
    /// Its counters, once connected.
    pub counters: Option<VifCounters>,
    /// Frames of its the switch refused (spoofed, malformed), and frames for it its full
    /// queue dropped.
    pub refused: u64,
    /// Frames for it dropped on a full queue.
    pub overflow: u64,
}

/// The `xl network-list` table: a header, then a line per vif.
pub fn network_list(dom: u16, rows: &[NicRow]) -> String {
    use core::fmt::Write;
    let opt = |v: Option<u32>| v.map_or(String::from("-"), |v| format!("{v}"));
    let mut out = String::from("Idx BE Mac Addr.         handle state evt-ch tx-/rx-ring-ref  tx-frames rx-frames errors refused dropped BE-path\n");
    for r in rows {
        let c = r.counters.unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<3} {:<2} {:<17} {:<6} {:<5} {:<6} {:<16} {:<9} {:<9} {:<6} {:<7} {:<7} {}",
            r.devid,
            0,
            r.mac,
            r.devid,
            opt(r.states.0),
            opt(r.evtchn),
            format!("{}/{}", opt(r.rings.0), opt(r.rings.1)),
            c.tx_frames,
            c.rx_frames,
            c.tx_errors + c.rx_errors,
            r.refused,
            r.overflow,
            vif_backend_path(dom, r.devid)
        );
    }
    out
}

#[cfg(test)]
mod tests;
