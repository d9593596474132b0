//! Host tests of the router: ARP and pings on both sides, translation out and back,
//! and hostile guests (spoofed sources, unknown answers, table exhaustion).

use super::*;

const G: DevKey = DevKey { dom: 5, devid: 0 };
const GMAC: Mac = Mac([0, 0x16, 0x3e, 0, 0, 5]);
const GIP: [u8; 4] = [10, 0, 0, 2];
const WEB: [u8; 4] = [10, 0, 2, 15];
const WEB_MAC: Mac = Mac([0, 0x16, 0x3e, 0, 0, 0x80]);

/// A TCP segment from `src:sport` to `dst:dport` (a SYN, no options) in an Ethernet frame.
fn tcp(smac: Mac, dmac: Mac, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, ttl: u8) -> Vec<u8> {
    let mut ip = alloc::vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, ttl, TCP, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut seg = Vec::new();
    seg.extend_from_slice(&sport.to_be_bytes());
    seg.extend_from_slice(&dport.to_be_bytes());
    seg.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0x00, 0, 0, 0, 0]);
    ip.extend_from_slice(&seg);
    let mut f = eth(dmac, smac, ETH_IPV4, &ip);
    complete_checksum(&mut f);
    f
}

fn echo(smac: Mac, dmac: Mac, src: [u8; 4], dst: [u8; 4], id: u16) -> Vec<u8> {
    let mut ip = alloc::vec![0x45, 0, 0, 36, 0, 0, 0, 0, 64, ICMP, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut icmp = alloc::vec![8, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&[0, 1, 1, 2, 3, 4, 5, 6, 7, 8]);
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    eth(dmac, smac, ETH_IPV4, &ip)
}

/// Whether the IPv4 header and TCP/ICMP checksums of `f` hold.
fn sums_hold(f: &[u8]) -> bool {
    let ip = &f[14..];
    let (ihl, proto, src, dst) = parse_ipv4(ip).unwrap();
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if checksum(&ip[..ihl]) != 0 {
        return false;
    }
    let l4 = &ip[ihl..total];
    match proto {
        ICMP => checksum(l4) == 0,
        _ => {
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&src);
            pseudo.extend_from_slice(&dst);
            pseudo.extend_from_slice(&[0, proto]);
            pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            pseudo.extend_from_slice(l4);
            checksum(&pseudo) == 0
        }
    }
}

fn router() -> Router {
    let mut r = Router::default();
    assert!(r.add_guest(G, GMAC, GIP));
    assert!(!r.add_guest(DevKey { dom: 6, devid: 0 }, Mac([0, 0x16, 0x3e, 0, 0, 6]), GIP), "an address routes to one guest");
    r
}

/// Teaches the router the web guest's MAC (it answers the router's ARP).
fn learn_web(r: &mut Router) {
    let reply = arp(2, WEB_MAC, WEB, ROUTER_MAC, OUTSIDE_IP);
    r.from_switch(&eth(ROUTER_MAC, WEB_MAC, ETH_ARP, &reply), 0);
}

#[test]
fn the_gateway_answers_arp_and_pings_inside() {
    let mut r = router();
    let ask = arp(1, GMAC, GIP, Mac([0; 6]), INSIDE_IP);
    let out = r.from_vif(G, &eth(Mac::BROADCAST, GMAC, ETH_ARP, &ask), 0);
    let [Out::ToVif(k, f)] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!(*k, G);
    assert_eq!(parse_arp(&f[14..]), Some((2, ROUTER_MAC, INSIDE_IP, GIP)));
    let out = r.from_vif(G, &echo(GMAC, ROUTER_MAC, GIP, INSIDE_IP, 7), 0);
    let [Out::ToVif(_, f)] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!(f[14 + 20], 0, "an echo reply");
    assert!(sums_hold(f));
}

#[test]
fn a_connection_is_translated_out_and_back() {
    let mut r = router();
    // Unknown next hop: the packet waits, the router asks.
    let out = r.from_vif(G, &tcp(GMAC, ROUTER_MAC, GIP, 40000, WEB, 80, 64), 1);
    let [Out::ToSwitch(ask)] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!(parse_arp(&ask[14..]), Some((1, ROUTER_MAC, OUTSIDE_IP, WEB)));
    let reply = arp(2, WEB_MAC, WEB, ROUTER_MAC, OUTSIDE_IP);
    let out = r.from_switch(&eth(ROUTER_MAC, WEB_MAC, ETH_ARP, &reply), 2);
    let [Out::ToSwitch(f)] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!(Mac::dst_of(f), Some(WEB_MAC));
    assert_eq!(Mac::src_of(f), Some(ROUTER_MAC));
    assert_eq!(&f[26..30], &OUTSIDE_IP, "from the router's address");
    let port = u16::from_be_bytes([f[34], f[35]]);
    assert!(port >= PORT_BASE);
    assert_eq!(f[22], 63, "TTL down by one");
    assert!(sums_hold(f));
    // The answer comes back to the guest's own port.
    let back = tcp(WEB_MAC, ROUTER_MAC, WEB, 80, OUTSIDE_IP, port, 64);
    let out = r.from_switch(&back, 3);
    let [Out::ToVif(k, f)] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!(*k, G);
    assert_eq!(Mac::dst_of(f), Some(GMAC));
    assert_eq!(&f[30..34], &GIP);
    assert_eq!(u16::from_be_bytes([f[36], f[37]]), 40000);
    assert!(sums_hold(f));
    // The same connection keeps its port.
    let out = r.from_vif(G, &tcp(GMAC, ROUTER_MAC, GIP, 40000, WEB, 80, 64), 4);
    let [Out::ToSwitch(f)] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!(u16::from_be_bytes([f[34], f[35]]), port);
    assert_eq!(r.entries(), 1);
    assert_eq!(r.translated, (2, 1));
}

#[test]
fn pings_are_translated_by_identifier() {
    let mut r = router();
    learn_web(&mut r);
    let out = r.from_vif(G, &echo(GMAC, ROUTER_MAC, GIP, WEB, 0x4e50), 0);
    let [Out::ToSwitch(f)] = out.as_slice() else { panic!("{out:?}") };
    assert!(sums_hold(f));
    let mut reply = f.clone();
    reply[..6].copy_from_slice(&ROUTER_MAC.0);
    reply[26..30].copy_from_slice(&WEB);
    reply[30..34].copy_from_slice(&OUTSIDE_IP);
    reply[34] = 0;
    let ip_c = checksum(&{
        let mut h = reply[14..34].to_vec();
        h[10] = 0;
        h[11] = 0;
        h
    });
    reply[24..26].copy_from_slice(&ip_c.to_be_bytes());
    reply[36..38].copy_from_slice(&[0, 0]);
    let c = checksum(&reply[34..]);
    reply[36..38].copy_from_slice(&c.to_be_bytes());
    let out = r.from_switch(&reply, 1);
    let [Out::ToVif(_, f)] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!(u16::from_be_bytes([f[38], f[39]]), 0x4e50);
    assert!(sums_hold(f));
    // A ping to the router's outside address is answered by it.
    let out = r.from_switch(&echo(WEB_MAC, ROUTER_MAC, WEB, OUTSIDE_IP, 9), 2);
    assert!(matches!(out.as_slice(), [Out::ToSwitch(f)] if f[34] == 0 && Mac::dst_of(f) == Some(WEB_MAC)));
}

#[test]
fn hostile_guests_and_strangers_get_nothing_through() {
    let mut r = router();
    learn_web(&mut r);
    // A forged source address, a forged MAC, an expiring TTL, a protocol not translated.
    assert!(r.from_vif(G, &tcp(GMAC, ROUTER_MAC, [10, 0, 0, 3], 1, WEB, 80, 64), 0).is_empty());
    assert!(r.from_vif(G, &tcp(WEB_MAC, ROUTER_MAC, GIP, 1, WEB, 80, 64), 0).is_empty());
    assert!(r.from_vif(G, &tcp(GMAC, ROUTER_MAC, GIP, 1, WEB, 80, 1), 0).is_empty());
    let mut gre = tcp(GMAC, ROUTER_MAC, GIP, 1, WEB, 80, 64);
    gre[23] = 47;
    assert!(r.from_vif(G, &gre, 0).is_empty());
    // Truncated and garbage frames.
    for bad in [&[][..], &[0u8; 13][..], &[0xffu8; 60][..]] {
        assert!(r.from_vif(G, bad, 0).is_empty());
        assert!(r.from_switch(bad, 0).is_empty());
    }
    // Another interface's frames are not this guest's.
    assert!(r.from_vif(DevKey { dom: 9, devid: 0 }, &tcp(GMAC, ROUTER_MAC, GIP, 1, WEB, 80, 64), 0).is_empty());
    // An answer to a port nobody opened goes nowhere.
    assert!(r.from_switch(&tcp(WEB_MAC, ROUTER_MAC, WEB, 80, OUTSIDE_IP, PORT_BASE + 7, 64), 0).is_empty());
    assert_eq!(r.entries(), 0);
    assert!(r.dropped >= 5);
}

#[test]
fn the_table_is_bounded_and_forgets_idle_entries() {
    let mut r = router();
    learn_web(&mut r);
    for p in 0..MAX_ENTRIES as u16 + 10 {
        r.from_vif(G, &tcp(GMAC, ROUTER_MAC, GIP, 1000 + p, WEB, 80, 64), 0);
    }
    assert_eq!(r.entries(), MAX_ENTRIES);
    // Later, the idle ones make room.
    let out = r.from_vif(G, &tcp(GMAC, ROUTER_MAC, GIP, 60000, WEB, 80, 64), IDLE_NS);
    assert_eq!(out.len(), 1);
    assert_eq!(r.entries(), 1);
    // A guest that goes takes its entries with it.
    r.remove_guest(G);
    assert_eq!(r.entries(), 0);
    assert!(r.from_vif(G, &tcp(GMAC, ROUTER_MAC, GIP, 1, WEB, 80, 64), 0).is_empty());
}
