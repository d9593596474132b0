//! Host tests of the network back end: guests played by front-end rings over the fake
//! split machine, frames through the switch, and hostile front ends.

use super::*;
use alloc::vec;
use xenbus::netif::{NETTXF_CSUM_BLANK, NETTXF_MORE_DATA};
use xenbus::ring::generic::FrontRing;

use crate::split::XenbusDevices;
use crate::testutil::{SplitFake, SplitPage};

/// Data grants of the guests, and the clock.
#[derive(Default)]
struct FakeNet {
    pages: BTreeMap<(u16, u32), Vec<u8>>,
    now: u64,
    /// Grant-copy calls made.
    copies: u32,
}

impl NetMachine for FakeNet {
    fn copy_in(&mut self, dom: u16, frames: &[&[netif::Piece]]) -> Vec<Option<Vec<u8>>> {
        assert!(frames.len() <= BATCH);
        self.copies += 1;
        frames
            .iter()
            .map(|pieces| {
                let mut into = Vec::new();
                for p in pieces.iter() {
                    let page = self.pages.get(&(dom, p.gref))?;
                    into.extend_from_slice(&page[usize::from(p.offset)..usize::from(p.offset) + usize::from(p.len)]);
                }
                Some(into)
            })
            .collect()
    }
    fn copy_out(&mut self, dom: u16, frames: &[(u32, &[u8])]) -> Vec<bool> {
        assert!(frames.len() <= BATCH);
        self.copies += 1;
        frames
            .iter()
            .map(|(gref, frame)| match self.pages.get_mut(&(dom, *gref)) {
                Some(page) => {
                    page[..frame.len()].copy_from_slice(frame);
                    true
                }
                None => false,
            })
            .collect()
    }
    fn now_ns(&self) -> u64 {
        self.now
    }
}

type Devs = XenbusDevices<Netback<FakeNet>, SplitPage>;

/// A guest's front end: its rings and the next free ids and grants.
struct Front {
    dom: u16,
    mac: Mac,
    tx: FrontRing<NetifTxRequest, NetifTxResponse>,
    txp: SplitPage,
    rx: FrontRing<NetifRxRequest, NetifRxResponse>,
    rxp: SplitPage,
    next_gref: u32,
    /// Posted rx pages: id → gref.
    posted: BTreeMap<u16, u32>,
    next_rx_id: u16,
}

struct World {
    m: SplitFake,
    nb: Netback<FakeNet>,
    devs: Devs,
}

fn key(dom: u16) -> DevKey {
    DevKey { dom, devid: 0 }
}

fn spec(dom: u16) -> VifSpec {
    VifSpec { devid: 0, mac: None, bridge: String::from("xenbr0"), mode: VifMode::Bridge, ips: Vec::new(), rate: None }.with_mac(dom)
}

trait WithMac {
    fn with_mac(self, dom: u16) -> Self;
}

impl WithMac for VifSpec {
    fn with_mac(mut self, dom: u16) -> Self {
        self.mac = Some(Mac([0, 0x16, 0x3e, 0, 0, dom as u8]));
        self
    }
}

impl World {
    fn new() -> World {
        World { m: SplitFake::new(), nb: Netback::new(FakeNet::default()), devs: Devs::default() }
    }

    /// Attaches and connects `spec` for `dom`, as a front end that publishes its rings.
    fn guest(&mut self, dom: u16, spec: VifSpec) -> Front {
        self.devs.attach(&mut self.nb, &mut self.m, key(dom), &spec).unwrap();
        let front = format!("/local/domain/{dom}/device/vif/0");
        let (tx_ref, rx_ref) = (1000, 1001);
        let mut txp = self.m.grant(dom, tx_ref);
        let mut rxp = self.m.grant(dom, rx_ref);
        let tx = FrontRing::init(&mut txp).unwrap();
        let rx = FrontRing::init(&mut rxp).unwrap();
        self.m.unbound.insert((dom, 5));
        for (k, v) in [("tx-ring-ref", "1000"), ("rx-ring-ref", "1001"), ("event-channel", "5"), ("request-rx-copy", "1"), ("state", "4")] {
            self.m.store.write(&format!("{front}/{k}"), v.as_bytes()).unwrap();
        }
        let lines = self.devs.front_events(&mut self.nb, &mut self.m);
        assert_eq!(lines, [format!("dom0: d{dom} vif 0: connected")]);
        Front { dom, mac: spec.mac.unwrap(), tx, txp, rx, rxp, next_gref: 1, posted: BTreeMap::new(), next_rx_id: 0 }
    }

    /// Serves `dom`'s vif, then every vif the switch kicked; the lines printed.
    fn serve(&mut self, dom: u16) -> Vec<String> {
        let mut lines: Vec<String> = self.devs.serve(&mut self.nb, &mut self.m, key(dom)).into_iter().collect();
        loop {
            let kicks = self.nb.take_kicks();
            if kicks.is_empty() {
                return lines;
            }
            for p in kicks {
                if let PortId::Vif(k) = p {
                    lines.extend(self.devs.serve(&mut self.nb, &mut self.m, k));
                }
            }
        }
    }
}

impl Front {
    fn page(&mut self, w: &mut World, bytes: &[u8], offset: usize) -> u32 {
        let g = self.next_gref;
        self.next_gref += 1;
        let mut page = vec![0u8; 4096];
        page[offset..offset + bytes.len()].copy_from_slice(bytes);
        w.nb.machine.pages.insert((self.dom, g), page);
        g
    }

    /// Queues `reqs` on the tx ring and publishes them.
    fn send_raw(&mut self, reqs: &[NetifTxRequest]) {
        for r in reqs {
            self.tx.push_request(&mut self.txp, r).unwrap();
        }
        self.tx.publish(&mut self.txp);
    }

    /// Sends `frame` in one slot.
    fn send(&mut self, w: &mut World, frame: &[u8], id: u16) {
        let g = self.page(w, frame, 0);
        self.send_raw(&[NetifTxRequest { gref: g, offset: 0, flags: 0, id, size: frame.len() as u16 }]);
    }

    /// The tx responses (id, status) so far.
    fn tx_done(&mut self) -> Vec<(u16, i16)> {
        core::iter::from_fn(|| self.tx.next_response(&self.txp).unwrap()).map(|r| (r.id, r.status)).collect()
    }

    /// Posts `n` empty pages for receiving.
    fn post(&mut self, w: &mut World, n: u16) {
        for _ in 0..n {
            let g = self.page(w, &[], 0);
            let id = self.next_rx_id;
            self.next_rx_id += 1;
            self.posted.insert(id, g);
            self.rx.push_request(&mut self.rxp, &NetifRxRequest { id, _pad: 0, gref: g }).unwrap();
        }
        self.rx.publish(&mut self.rxp);
    }

    /// The frames received so far (their pages given back).
    fn received(&mut self, w: &World) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(r) = self.rx.next_response(&self.rxp).unwrap() {
            assert!(r.status > 0, "rx status {}", r.status);
            let gref = self.posted.remove(&r.id).expect("a response for a posted page");
            let page = &w.nb.machine.pages[&(self.dom, gref)];
            out.push(page[usize::from(r.offset)..usize::from(r.offset) + r.status as usize].to_vec());
        }
        out
    }
}

fn frame(dst: Mac, src: Mac, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend_from_slice(payload);
    f
}

#[test]
fn store_nodes_are_what_xen_netfronts_read() {
    let vif = Vif { dom: 3, spec: VifSpec { ips: vec![[10, 0, 0, 2]], ..spec(3) }, mac: Mac([0, 0x16, 0x3e, 0, 0, 3]) };
    let nodes = store_nodes(&vif);
    let get = |k: &str| nodes.iter().find(|(p, _)| p == k).map(|(_, v)| v.as_str());
    let b = "/local/domain/0/backend/vif/3/0";
    let f = "/local/domain/3/device/vif/0";
    assert_eq!(get(&format!("{b}/frontend")), Some(f));
    assert_eq!(get(&format!("{b}/mac")), Some("00:16:3e:00:00:03"));
    assert_eq!(get(&format!("{f}/mac")), Some("00:16:3e:00:00:03"), "Mini-OS and Linux read the front end's mac");
    assert_eq!(get(&format!("{b}/ip")), Some("10.0.0.2"));
    assert_eq!(get(&format!("{b}/feature-rx-copy")), Some("1"));
    assert_eq!(get(&format!("{b}/state")), Some("2"));
    assert_eq!(get(&format!("{f}/state")), Some("1"));
    assert_eq!(get(&format!("{f}/handle")), Some("0"));
}

#[test]
fn a_frame_crosses_the_switch_into_the_peers_posted_page() {
    let mut w = World::new();
    let mut a = w.guest(3, spec(3));
    let mut b = w.guest(4, spec(4));
    b.post(&mut w, 4);
    w.serve(4);
    let hello = frame(Mac::BROADCAST, a.mac, b"hello from d3");
    a.send(&mut w, &hello, 7);
    assert!(w.serve(3).is_empty());
    assert_eq!(a.tx_done(), [(7, NETIF_RSP_OKAY)]);
    assert_eq!(b.received(&w), [hello]);
    // b answers a: a has no page yet, so the frame waits in the switch, then arrives.
    let reply = frame(a.mac, b.mac, b"and back");
    b.send(&mut w, &reply, 1);
    w.serve(4);
    assert_eq!(w.nb.switch.queued(PortId::Vif(key(3))), 1);
    a.post(&mut w, 1);
    w.serve(3);
    assert_eq!(a.received(&w), [reply]);
    let c = w.devs.conn(key(3)).unwrap().counters;
    assert_eq!((c.tx_frames, c.rx_frames, c.tx_errors), (1, 1, 0));
}

#[test]
fn a_chain_is_copied_whole_and_a_blank_checksum_completed() {
    let mut w = World::new();
    let mut a = w.guest(3, spec(3));
    let mut b = w.guest(4, spec(4));
    b.post(&mut w, 1);
    w.serve(4);
    // A UDP packet, its checksum left blank, split over two pages.
    let mut udp = frame(b.mac, a.mac, &[]);
    udp[12..14].copy_from_slice(&[0x08, 0x00]);
    let payload = b"checksum me";
    let ip_len = 20 + 8 + payload.len();
    udp.extend_from_slice(&[0x45, 0, 0, ip_len as u8, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 3, 10, 0, 0, 4]);
    udp.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, (8 + payload.len()) as u8, 0x12, 0x34]);
    udp.extend_from_slice(payload);
    let g1 = a.page(&mut w, &udp[..20], 4076);
    let g2 = a.page(&mut w, &udp[20..], 0);
    a.send_raw(&[
        NetifTxRequest { gref: g1, offset: 4076, flags: NETTXF_MORE_DATA | NETTXF_CSUM_BLANK, id: 1, size: udp.len() as u16 },
        NetifTxRequest { gref: g2, offset: 0, flags: 0, id: 2, size: (udp.len() - 20) as u16 },
    ]);
    w.serve(3);
    assert_eq!(a.tx_done(), [(1, 0), (2, 0)]);
    let got = b.received(&w).pop().unwrap();
    assert_eq!(got.len(), udp.len());
    // The checksum over pseudo-header and segment now folds to all ones.
    let seg = &got[34..];
    let mut sum: u32 = [[10u8, 0], [0, 3], [10, 0], [0, 4], [0, 17], [0, seg.len() as u8]].iter().map(|w| u32::from(u16::from_be_bytes(*w))).sum();
    for c in seg.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    assert_eq!(sum, 0xffff);
    assert_ne!(&got[40..42], &[0x12, 0x34]);
}

#[test]
fn bad_grants_runts_and_spoofs_reach_no_one_and_serving_goes_on() {
    let mut w = World::new();
    let mut a = w.guest(3, spec(3));
    let mut b = w.guest(4, spec(4));
    b.post(&mut w, 8);
    w.serve(4);
    a.send_raw(&[NetifTxRequest { gref: 999, offset: 0, flags: 0, id: 1, size: 60 }]);
    a.send(&mut w, &[0xff; 10], 2);
    a.send(&mut w, &frame(b.mac, Mac([0, 0x16, 0x3e, 9, 9, 9]), b"spoofed"), 3);
    a.send(&mut w, &frame(b.mac, b.mac, b"pretending to be b"), 4);
    let good = frame(b.mac, a.mac, b"honest");
    a.send(&mut w, &good, 5);
    assert!(w.serve(3).is_empty());
    assert_eq!(a.tx_done(), [(1, NETIF_RSP_ERROR), (2, NETIF_RSP_ERROR), (3, NETIF_RSP_OKAY), (4, NETIF_RSP_OKAY), (5, NETIF_RSP_OKAY)]);
    assert_eq!(b.received(&w), [good]);
    assert_eq!(w.nb.switch.counters(PortId::Vif(key(3))).unwrap().refused, 2);
    assert_eq!(w.nb.switch.port_of(b.mac), None, "b's MAC was not learned on a's port");
}

#[test]
fn a_hostile_front_end_is_disconnected_and_the_others_keep_switching() {
    for hostile in [
        vec![NetifTxRequest { gref: 1, offset: 0, flags: 0, id: 1, size: 9000 }],
        vec![NetifTxRequest { gref: 1, offset: 4000, flags: 0, id: 1, size: 200 }],
        vec![NetifTxRequest { gref: 1, offset: 0, flags: NETTXF_MORE_DATA, id: 1, size: 100 }],
    ] {
        let mut w = World::new();
        let mut a = w.guest(3, spec(3));
        let mut b = w.guest(4, spec(4));
        let mut c = w.guest(5, spec(5));
        b.post(&mut w, 4);
        w.serve(4);
        a.send_raw(&hostile);
        let lines = w.serve(3);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("dom0: d3 vif 0: the front end's ring lies"), "{}", lines[0]);
        assert!(w.devs.conn(key(3)).is_none());
        let f = frame(b.mac, c.mac, b"still here");
        c.send(&mut w, &f, 1);
        w.serve(5);
        assert_eq!(b.received(&w), [f]);
    }
    // A ring whose producer lies.
    let mut w = World::new();
    let mut a = w.guest(3, spec(3));
    a.txp.write_u32(0, 5000);
    assert!(w.serve(3)[0].contains("ring lies"));
}

#[test]
fn a_rate_holds_frames_in_the_ring_until_the_next_window() {
    let mut w = World::new();
    let rate = crate::vswitch::Rate { bytes: 1000, interval_us: 1000 };
    let mut a = w.guest(3, VifSpec { rate: Some(rate), ..spec(3) });
    let mut b = w.guest(4, spec(4));
    b.post(&mut w, 16);
    w.serve(4);
    for i in 0..5 {
        a.send(&mut w, &frame(b.mac, a.mac, &[i as u8; 386]), i);
    }
    w.serve(3);
    // 400-byte frames: two fit the first window.
    assert_eq!(a.tx_done().len(), 2);
    assert_eq!(w.nb.next_deadline(), Some(1_000_000));
    assert!(w.nb.due(999_999).is_empty());
    w.nb.machine.now = 1_000_000;
    assert_eq!(w.nb.due(1_000_000), [key(3)]);
    w.serve(3);
    assert_eq!(a.tx_done().len(), 2);
    w.nb.machine.now = 2_000_000;
    w.serve(3);
    assert_eq!(a.tx_done().len(), 1);
    assert_eq!(b.received(&w).len(), 5, "nothing lost, only slowed");
}

#[test]
fn detaching_takes_the_port_and_what_was_queued_for_it() {
    let mut w = World::new();
    let mut a = w.guest(3, spec(3));
    let b = w.guest(4, spec(4));
    a.send(&mut w, &frame(b.mac, a.mac, b"never read"), 1);
    w.serve(3);
    assert_eq!(w.nb.switch.queued(PortId::Vif(key(4))), 1);
    w.devs.detach(&mut w.nb, &mut w.m, key(4)).unwrap();
    assert!(!w.nb.switch.has_port(PortId::Vif(key(4))));
    w.devs.release_dom(&mut w.nb, &mut w.m, 3);
    assert!(w.nb.switch.ports().next().is_none());
    assert!(w.m.mapped.is_empty() && w.m.table.is_empty());
    // The front end that asks for page flipping is refused.
    let mut w = World::new();
    w.devs.attach(&mut w.nb, &mut w.m, key(6), &spec(6)).unwrap();
    w.m.grant(6, 1000);
    w.m.grant(6, 1001);
    w.m.unbound.insert((6, 5));
    for (k, v) in [("tx-ring-ref", "1000"), ("rx-ring-ref", "1001"), ("event-channel", "5"), ("state", "4")] {
        w.m.store.write(&format!("/local/domain/6/device/vif/0/{k}"), v.as_bytes()).unwrap();
    }
    let lines = w.devs.front_events(&mut w.nb, &mut w.m);
    assert!(lines[0].contains("request-rx-copy"), "{lines:?}");
    assert!(w.m.mapped.is_empty());
}

#[test]
fn a_routed_guest_talks_to_the_router_only() {
    let mut w = World::new();
    let nat = VifSpec { mode: VifMode::Nat, ips: vec![[10, 0, 0, 2]], ..spec(3) };
    let mut a = w.guest(3, nat.clone());
    let mut b = w.guest(4, spec(4));
    a.post(&mut w, 4);
    b.post(&mut w, 4);
    w.serve(3);
    w.serve(4);
    // b's broadcast does not reach the routed guest.
    b.send(&mut w, &frame(Mac::BROADCAST, b.mac, b"to all"), 1);
    w.serve(4);
    assert!(a.received(&w).is_empty());
    // The routed guest asks for its gateway and gets the router's answer.
    let mut ask = vec![0, 1, 8, 0, 6, 4, 0, 1];
    ask.extend_from_slice(&a.mac.0);
    ask.extend_from_slice(&[10, 0, 0, 2]);
    ask.extend_from_slice(&[0; 6]);
    ask.extend_from_slice(&crate::router::INSIDE_IP);
    let mut f = Vec::new();
    f.extend_from_slice(&Mac::BROADCAST.0);
    f.extend_from_slice(&a.mac.0);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&ask);
    a.send(&mut w, &f, 2);
    w.serve(3);
    let got = a.received(&w);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0][6..12], &crate::router::ROUTER_MAC.0);
    assert_eq!(&got[0][28..32], &crate::router::INSIDE_IP, "the gateway's address answered");
    assert!(b.received(&w).is_empty(), "the ARP stayed on the routed link");
    // Its address is taken while it has it.
    let e = w.devs.attach(&mut w.nb, &mut w.m, key(5), &VifSpec { mode: VifMode::Nat, ips: vec![[10, 0, 0, 2]], ..spec(5) }).unwrap_err();
    assert!(e.contains("routed to another interface"), "{e}");
    w.devs.release_dom(&mut w.nb, &mut w.m, 3);
    w.devs.attach(&mut w.nb, &mut w.m, key(5), &VifSpec { mode: VifMode::Nat, ips: vec![[10, 0, 0, 2]], ..spec(5) }).unwrap();
}

#[test]
fn frames_are_copied_a_batch_at_a_time() {
    let mut w = World::new();
    let mut a = w.guest(3, spec(3));
    let mut b = w.guest(4, spec(4));
    b.post(&mut w, 60);
    w.serve(4);
    for i in 0..40u16 {
        a.send(&mut w, &frame(b.mac, a.mac, &i.to_be_bytes()), i);
    }
    let before = w.nb.machine.copies;
    w.serve(3);
    assert_eq!(b.received(&w).len(), 40);
    // 40 frames in: two batches; 40 out: two batches (the switch queued them all first).
    assert_eq!(w.nb.machine.copies - before, 4);
}
