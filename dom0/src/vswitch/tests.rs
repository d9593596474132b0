//! Host tests of the switch with hostile frames: learning, flooding, anti-spoofing, queue
//! limits, rates.

use super::*;
use alloc::vec;

fn vif(dom: u16) -> PortId {
    PortId::Vif(DevKey { dom, devid: 0 })
}

fn mac(n: u8) -> Mac {
    Mac([0x00, 0x16, 0x3e, 0, 0, n])
}

/// An Ethernet frame from `src` to `dst` of EtherType `t` with `payload`.
fn frame(dst: Mac, src: Mac, t: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&t.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 header from `src` (UDP, ports `sport` to `dport`).
fn ipv4(src: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&[10, 0, 0, 9]);
    ip.extend_from_slice(&sport.to_be_bytes());
    ip.extend_from_slice(&dport.to_be_bytes());
    ip.extend_from_slice(&[0, 8, 0, 0]);
    ip
}

/// An ARP request from `sender`.
fn arp(sender_mac: Mac, sender: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&sender_mac.0);
    a.extend_from_slice(&sender);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&[10, 0, 0, 9]);
    a
}

fn switch_of(n: u16) -> Switch {
    let mut s = Switch::default();
    for d in 1..=n {
        assert!(s.add_port(vif(d), Policy { mac: Some(mac(d as u8)), ips: Vec::new() }));
    }
    s
}

#[test]
fn unknown_destinations_flood_then_the_switch_learns() {
    let mut s = switch_of(3);
    let f = frame(mac(2), mac(1), 0x0800, &[0; 40]);
    assert_eq!(s.input(vif(1), f.clone(), 0), Outcome::Forwarded(vec![vif(2), vif(3)]));
    assert_eq!(s.port_of(mac(1)), Some(vif(1)));
    // 2 answers: 1 is known, so only 1 gets it; and 2 is learned.
    assert_eq!(s.input(vif(2), frame(mac(1), mac(2), 0x0800, &[0; 40]), 1), Outcome::Forwarded(vec![vif(1)]));
    // Now 1 to 2 goes to 2 alone.
    assert_eq!(s.input(vif(1), f.clone(), 2), Outcome::Forwarded(vec![vif(2)]));
    assert_eq!(s.queued(vif(2)), 2);
    assert_eq!(s.queued(vif(3)), 1);
    assert_eq!(s.take(vif(2)), Some(f.clone()));
    assert_eq!(s.counters(vif(2)).unwrap().tx_frames, 1);
    assert_eq!(s.counters(vif(1)).unwrap().rx_frames, 2);
    // Learned entries age out: after that, flooding again.
    assert_eq!(s.input(vif(1), f, 2 + AGEING_NS), Outcome::Forwarded(vec![vif(2), vif(3)]));
}

#[test]
fn broadcast_and_multicast_flood() {
    let mut s = switch_of(3);
    s.input(vif(2), frame(mac(1), mac(2), 0x0800, &[0; 40]), 0);
    assert_eq!(s.input(vif(1), frame(Mac::BROADCAST, mac(1), 0x0806, &arp(mac(1), [10, 0, 0, 1])), 0), Outcome::Forwarded(vec![vif(2), vif(3)]));
    let group = Mac([0x01, 0x00, 0x5e, 0, 0, 1]);
    assert_eq!(s.input(vif(1), frame(group, mac(1), 0x0800, &[0; 40]), 0), Outcome::Forwarded(vec![vif(2), vif(3)]));
}

#[test]
fn spoofed_macs_and_malformed_frames_reach_no_one() {
    let mut s = switch_of(2);
    assert_eq!(s.input(vif(1), frame(mac(2), mac(9), 0x0800, &[0; 40]), 0), Outcome::Dropped(Drop::SpoofedMac));
    // Pretending to be the other guest, to steal its traffic: refused, nothing learned.
    assert_eq!(s.input(vif(1), frame(Mac::BROADCAST, mac(2), 0x0800, &[0; 40]), 0), Outcome::Dropped(Drop::SpoofedMac));
    assert_eq!(s.port_of(mac(2)), None);
    assert_eq!(s.input(vif(1), vec![0; 13], 0), Outcome::Dropped(Drop::Runt));
    assert_eq!(s.input(vif(1), vec![0; MAX_FRAME + 1], 0), Outcome::Dropped(Drop::Giant));
    let mut s = Switch::default();
    s.add_port(PortId::Uplink, Policy::default());
    s.add_port(vif(1), Policy::default());
    assert_eq!(s.input(PortId::Uplink, frame(mac(1), Mac([0x01, 0, 0, 0, 0, 1]), 0x0800, &[0; 40]), 0), Outcome::Dropped(Drop::GroupSource));
    assert_eq!(s.input(vif(7), frame(mac(1), mac(2), 0x0800, &[0; 40]), 0), Outcome::Dropped(Drop::NoPort));
    assert_eq!(s.queued(vif(1)), 0);
    assert_eq!(s.counters(PortId::Uplink).unwrap().refused, 1);
}

#[test]
fn configured_addresses_are_enforced() {
    let mut s = Switch::default();
    s.add_port(vif(1), Policy { mac: Some(mac(1)), ips: vec![[10, 0, 0, 2]] });
    s.add_port(vif(2), Policy::default());
    let to2 = |t, p: &[u8]| frame(Mac::BROADCAST, mac(1), t, p);
    assert!(matches!(s.input(vif(1), to2(0x0800, &ipv4([10, 0, 0, 2], 1000, 80)), 0), Outcome::Forwarded(_)));
    assert_eq!(s.input(vif(1), to2(0x0800, &ipv4([10, 0, 0, 3], 1000, 80)), 0), Outcome::Dropped(Drop::SpoofedIp));
    // DHCP before an address is allowed; anything else from 0.0.0.0 is not.
    assert!(matches!(s.input(vif(1), to2(0x0800, &ipv4([0; 4], 68, 67)), 0), Outcome::Forwarded(_)));
    assert_eq!(s.input(vif(1), to2(0x0800, &ipv4([0; 4], 68, 80)), 0), Outcome::Dropped(Drop::SpoofedIp));
    // ARP must name the guest's own address (or none, a probe).
    assert!(matches!(s.input(vif(1), to2(0x0806, &arp(mac(1), [10, 0, 0, 2])), 0), Outcome::Forwarded(_)));
    assert!(matches!(s.input(vif(1), to2(0x0806, &arp(mac(1), [0; 4])), 0), Outcome::Forwarded(_)));
    assert_eq!(s.input(vif(1), to2(0x0806, &arp(mac(1), [10, 0, 0, 1])), 0), Outcome::Dropped(Drop::SpoofedIp));
    // Truncated headers and VLAN tags cannot be checked.
    assert_eq!(s.input(vif(1), to2(0x0800, &[0x45, 0, 0]), 0), Outcome::Dropped(Drop::SpoofedIp));
    assert_eq!(s.input(vif(1), to2(0x8100, &[0, 1, 8, 0, 0x45]), 0), Outcome::Dropped(Drop::SpoofedIp));
    // Other protocols (IPv6) pass, as Xen's IPv4 rules let them.
    assert!(matches!(s.input(vif(1), to2(0x86dd, &[0x60; 40]), 0), Outcome::Forwarded(_)));
}

#[test]
fn a_broadcast_storm_leaves_room_for_others() {
    let mut s = switch_of(3);
    for i in 0..10_000u32 {
        s.input(vif(1), frame(Mac::BROADCAST, mac(1), 0x0800, &i.to_be_bytes()), 0);
    }
    assert_eq!(s.queued(vif(2)), PER_SOURCE_LIMIT);
    assert_eq!(s.counters(vif(2)).unwrap().overflow, 10_000 - PER_SOURCE_LIMIT as u64);
    // Guest 3 still reaches guest 2.
    let hello = frame(mac(2), mac(3), 0x0800, b"hello, through the storm");
    assert!(matches!(s.input(vif(3), hello.clone(), 0), Outcome::Forwarded(_)));
    assert_eq!(s.queued(vif(2)), PER_SOURCE_LIMIT + 1);
    let got: Vec<_> = core::iter::from_fn(|| s.take(vif(2))).collect();
    assert_eq!(got.last(), Some(&hello));
}

#[test]
fn a_port_inventing_addresses_cannot_grow_the_table() {
    let mut s = Switch::default();
    s.add_port(PortId::Uplink, Policy::default());
    s.add_port(vif(1), Policy::default());
    for i in 0..5000u32 {
        let b = i.to_be_bytes();
        s.input(PortId::Uplink, frame(mac(1), Mac([0x02, 0, b[0], b[1], b[2], b[3]]), 0x0800, &[0; 40]), u64::from(i));
        s.take(vif(1));
    }
    assert_eq!(s.learned(), FDB_LIMIT);
    // The newest is kept, the oldest gone.
    assert_eq!(s.port_of(Mac([0x02, 0, 0, 0, 0x13, 0x87])), Some(PortId::Uplink));
    assert_eq!(s.port_of(Mac([0x02, 0, 0, 0, 0, 0])), None);
}

#[test]
fn a_removed_port_is_forgotten() {
    let mut s = switch_of(3);
    s.input(vif(3), frame(Mac::BROADCAST, mac(3), 0x0800, &[0; 40]), 0);
    s.input(vif(1), frame(mac(3), mac(1), 0x0800, &[0; 40]), 0);
    assert_eq!(s.queued(vif(1)), 1);
    assert!(s.remove_port(vif(3)).is_some());
    assert_eq!(s.port_of(mac(3)), None);
    // Frames it sent are gone from the others' queues too.
    assert_eq!(s.queued(vif(1)), 0);
    // Frames to it now flood to those left.
    assert_eq!(s.input(vif(1), frame(mac(3), mac(1), 0x0800, &[0; 40]), 1), Outcome::Forwarded(vec![vif(2)]));
    assert!(s.remove_port(vif(3)).is_none());
}

#[test]
fn frames_back_to_their_port_are_dropped() {
    let mut s = switch_of(2);
    s.input(vif(1), frame(Mac::BROADCAST, mac(1), 0x0800, &[0; 40]), 0);
    s.add_port(PortId::Uplink, Policy::default());
    // A frame from the uplink to an address learned on the uplink goes nowhere.
    s.input(PortId::Uplink, frame(Mac::BROADCAST, mac(50), 0x0800, &[0; 40]), 0);
    assert_eq!(s.input(PortId::Uplink, frame(mac(50), mac(51), 0x0800, &[0; 40]), 0), Outcome::Dropped(Drop::Hairpin));
}

#[test]
fn rates_parse_as_xl_writes_them() {
    assert_eq!(Rate::parse("10Mb/s").unwrap(), Rate { bytes: 10 * 1024 * 1024 / 8 / 20, interval_us: 50_000 });
    assert_eq!(Rate::parse("1MB/s@20ms").unwrap(), Rate { bytes: 1024 * 1024 / 50, interval_us: 20_000 });
    assert_eq!(Rate::parse("100KB/s@1s").unwrap(), Rate { bytes: 102_400, interval_us: 1_000_000 });
    assert_eq!(Rate::parse("8b/s@100us").unwrap(), Rate { bytes: 1, interval_us: 100 });
    for bad in ["", "10", "10Mbps", "0MB/s", "1MB/s@", "1MB/s@0ms", "1MB/s@5m", "MB/s", "1MB/s@10ms@1s"] {
        assert!(Rate::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn credit_holds_a_port_to_its_rate() {
    let rate = Rate { bytes: 3000, interval_us: 1000 };
    let mut c = Credit::new(rate, 0);
    assert_eq!(c.take(1500, 0), Ok(()));
    assert_eq!(c.take(1500, 10), Ok(()));
    assert_eq!(c.take(1500, 20), Err(1_000_000));
    assert_eq!(c.take(1500, 1_000_000), Ok(()));
    // Over simulated time, the bytes let through stay within the rate.
    let mut c = Credit::new(rate, 0);
    let (mut sent, mut now) = (0u64, 0u64);
    while now < 1_000_000_000 {
        match c.take(1000, now) {
            Ok(()) => sent += 1000,
            Err(at) => now = at,
        }
    }
    assert_eq!(sent, 3000 * 1000, "a thousand windows of 3000 bytes");
    // A frame larger than a window still goes, alone in a fresh window.
    let mut c = Credit::new(Rate { bytes: 100, interval_us: 1000 }, 0);
    assert_eq!(c.take(1500, 0), Ok(()));
    assert_eq!(c.take(1500, 10), Err(1_000_000));
}

#[test]
fn routed_links_are_neither_flooded_nor_bridged() {
    let mut s = switch_of(2);
    assert!(s.add_routed_port(vif(9)));
    assert!(!s.add_routed_port(vif(9)));
    assert_eq!(s.input(vif(1), frame(Mac::BROADCAST, mac(1), 0x0800, &[0; 40]), 0), Outcome::Forwarded(vec![vif(2)]));
    // A routed guest's frames cannot enter the bridge directly.
    assert_eq!(s.input(vif(9), frame(Mac::BROADCAST, mac(9), 0x0800, &[0; 40]), 0), Outcome::Dropped(Drop::NoPort));
    assert!(s.deliver(vif(9), frame(mac(9), mac(1), 0x0800, b"routed")));
    assert_eq!(s.queued(vif(9)), 1);
    assert!(!s.deliver(vif(7), vec![0; 60]), "no such port");
}
