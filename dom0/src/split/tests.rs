//! Host tests of the split-driver framework: the handshake of a xenbus device over a fake
//! machine (the real store service, fake grants and ports) with a fake back end, played
//! from the front end's side, honest and hostile.

use super::*;
use crate::testutil::{SplitFake as Fake, SplitPage as Page};
use crate::xenstore::StoreService;
use alloc::collections::BTreeSet;
use alloc::rc::Rc;
use alloc::vec;
use core::cell::RefCell;

/// A back end whose "ring" is word 0 of each page: a front end writes how many requests it
/// queued; 0xdead is a lie. The back end refuses a `protocol` other than `x86_64-abi`.
#[derive(Default)]
struct Echo {
    taken: BTreeSet<DevKey>,
    released: Vec<DevKey>,
}

impl Backend<Page> for Echo {
    type Spec = &'static str;
    type Config = String;
    type Conn = u32;
    const KIND: Kind = Kind::Vif;
    const RING_NODES: &'static [&'static str] = &["tx-ring-ref", "rx-ring-ref"];

    fn attach(&mut self, key: DevKey, spec: &&'static str) -> Result<String, String> {
        if *spec == "busy" {
            return Err(String::from("busy: in use"));
        }
        self.taken.insert(key);
        Ok(String::from(*spec))
    }
    fn nodes(&self, key: DevKey, config: &String) -> Vec<(String, String)> {
        let (back, front) = (backend_path(Kind::Vif, key), frontend_path(Kind::Vif, key));
        vec![
            (format!("{back}/mac"), config.clone()),
            (format!("{back}/state"), String::from("2")),
            (format!("{front}/backend"), back.clone()),
            (format!("{front}/state"), String::from("1")),
        ]
    }
    fn connect(&mut self, _key: DevKey, _config: &String, front: &mut dyn FnMut(&str) -> Option<Vec<u8>>, rings: &mut [Page]) -> Result<u32, String> {
        assert_eq!(rings.len(), 2);
        match front("protocol") {
            None => Ok(0),
            Some(p) if p == b"x86_64-abi" => Ok(0),
            Some(_) => Err(String::from("protocol is not x86_64-abi")),
        }
    }
    fn serve(&mut self, _key: DevKey, conn: &mut u32, rings: &mut [Page]) -> Served {
        let queued = rings[0].read_u32(0);
        if queued == 0xdead {
            return Served::Broken(String::from("IndexLie"));
        }
        rings[0].write_u32(0, 0);
        *conn += queued;
        Served::Answered { notify: queued > 0 }
    }
    fn release(&mut self, key: DevKey, _config: &String) {
        assert!(self.taken.remove(&key), "released twice");
        self.released.push(key);
    }
}

const K: DevKey = DevKey { dom: 3, devid: 0 };
const BACK: &str = "/local/domain/0/backend/vif/3/0";
const FRONT: &str = "/local/domain/3/device/vif/0";

struct World {
    m: Fake,
    b: Echo,
    devs: XenbusDevices<Echo, Page>,
}

impl World {
    fn attached() -> World {
        let mut w = World { m: Fake::new(), b: Echo::default(), devs: XenbusDevices::default() };
        w.devs.attach(&mut w.b, &mut w.m, K, &"00:16:3e:00:00:01").unwrap();
        w
    }

    /// The front end publishes its rings (grefs 8 and 9) and its port 5, says `state`.
    fn publish(&mut self, state: &str) -> (Page, Page) {
        let tx = self.m.grant(3, 8);
        let rx = self.m.grant(3, 9);
        self.m.unbound.insert((3, 5));
        for (k, v) in [("tx-ring-ref", "8"), ("rx-ring-ref", "9"), ("event-channel", "5"), ("state", state)] {
            self.m.store.write(&format!("{FRONT}/{k}"), v.as_bytes()).unwrap();
        }
        (tx, rx)
    }

    fn events(&mut self) -> Vec<String> {
        self.devs.front_events(&mut self.b, &mut self.m)
    }

    fn back_state(&mut self) -> String {
        String::from_utf8(self.m.store.read(&format!("{BACK}/state")).unwrap()).unwrap()
    }

    fn nothing_held(&self) {
        assert!(self.m.mapped.is_empty(), "still mapped: {:?}", self.m.mapped);
        assert!(self.m.table.is_empty(), "ports still bound");
    }
}

#[test]
fn attach_writes_both_directories_readable_by_the_guest_and_watches() {
    let mut w = World::attached();
    assert_eq!(w.m.store.read(&format!("{BACK}/mac")).unwrap(), b"00:16:3e:00:00:01");
    assert_eq!(w.back_state(), "2");
    assert_eq!(w.m.perms(BACK), b"n0\0r3\0");
    assert!(w.b.taken.contains(&K));
    // The watch fired once when set; the front end is still Initialising: nothing happens.
    assert!(w.events().is_empty());
    assert!(w.devs.has(K) && w.devs.conn(K).is_none());
    let again = w.devs.attach(&mut w.b, &mut w.m, K, &"x").unwrap_err();
    assert!(again.contains("already has network interface 0"), "{again}");
}

#[test]
fn a_refused_attach_leaves_nothing() {
    let mut w = World { m: Fake::new(), b: Echo::default(), devs: XenbusDevices::default() };
    let e = w.devs.attach(&mut w.b, &mut w.m, K, &"busy").unwrap_err();
    assert_eq!(e, "busy: in use");
    assert!(!w.m.exists(BACK) && !w.m.exists(FRONT) && !w.devs.has(K));
}

#[test]
fn initialised_connects_maps_binds_and_serves_what_waits() {
    let mut w = World::attached();
    let (mut tx, _rx) = w.publish("1");
    tx.write_u32(0, 2);
    w.m.store.write(&format!("{FRONT}/state"), b"3").unwrap();
    assert_eq!(w.events(), ["dom0: d3 vif 0: connected"]);
    assert_eq!(w.back_state(), "4");
    assert_eq!(w.m.mapped.len(), 2);
    let port = w.devs.port(K).unwrap();
    assert_eq!(w.m.table.device_of(port), Some(Device::new(Kind::Vif, 3, 0)));
    assert!(!w.m.masked.contains(&port), "unmasked once connected");
    assert_eq!(w.devs.conn(K), Some(&2), "the requests queued before Connected were served");
    assert_eq!(w.m.sent, [port]);
    tx.write_u32(0, 3);
    assert_eq!(w.devs.serve(&mut w.b, &mut w.m, K), None);
    assert_eq!(w.devs.conn(K), Some(&5));
    // Connected written by the front end after ours changes nothing.
    w.m.store.write(&format!("{FRONT}/state"), b"4").unwrap();
    assert!(w.events().is_empty());
    assert_eq!(w.m.mapped.len(), 2);
}

#[test]
fn a_front_end_naming_bad_rings_or_ports_is_refused_and_nothing_stays() {
    for (node, value, says) in [
        ("tx-ring-ref", "eight", "tx-ring-ref is not a number"),
        ("rx-ring-ref", "77", "rx-ring-ref 77 does not map (status -3)"),
        ("event-channel", "6", "event-channel 6: EINVAL"),
        ("protocol", "x86_32-abi", "protocol is not x86_64-abi"),
    ] {
        let mut w = World::attached();
        w.publish("1");
        w.m.store.write(&format!("{FRONT}/{node}"), value.as_bytes()).unwrap();
        w.m.store.write(&format!("{FRONT}/state"), b"3").unwrap();
        let lines = w.events();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("dom0: d3 vif 0: cannot connect: ") && lines[0].ends_with(says), "{}", lines[0]);
        assert_eq!(w.back_state(), "5", "Closing");
        w.nothing_held();
        assert!(w.devs.conn(K).is_none());
    }
    // Refused, the back end waits for the front end to close and start again: saying
    // Initialised once more does nothing.
    let mut w = World::attached();
    w.publish("1");
    w.m.store.write(&format!("{FRONT}/tx-ring-ref"), b"99").unwrap();
    w.m.store.write(&format!("{FRONT}/state"), b"3").unwrap();
    assert_eq!(w.events().len(), 1);
    w.m.store.write(&format!("{FRONT}/tx-ring-ref"), b"8").unwrap();
    w.m.store.write(&format!("{FRONT}/state"), b"3").unwrap();
    assert!(w.events().is_empty() && w.m.mapped.is_empty());
    w.m.store.write(&format!("{FRONT}/state"), b"6").unwrap();
    w.events();
    assert_eq!(w.back_state(), "6");
    w.m.store.write(&format!("{FRONT}/state"), b"1").unwrap();
    w.events();
    assert_eq!(w.back_state(), "2");
    w.m.store.write(&format!("{FRONT}/state"), b"3").unwrap();
    assert_eq!(w.events(), ["dom0: d3 vif 0: connected"]);
    // A missing node is named.
    let mut w = World::attached();
    w.m.store.write(&format!("{FRONT}/state"), b"3").unwrap();
    assert_eq!(w.events(), [format!("dom0: d3 vif 0: cannot connect: no {FRONT}/tx-ring-ref (ENOENT)")]);
}

#[test]
fn a_lying_ring_is_disconnected_and_released() {
    let mut w = World::attached();
    let (mut tx, _) = w.publish("3");
    w.events();
    tx.write_u32(0, 0xdead);
    let line = w.devs.serve(&mut w.b, &mut w.m, K).unwrap();
    assert_eq!(line, "dom0: d3 vif 0: the front end's ring lies (IndexLie); disconnected");
    assert_eq!(w.back_state(), "5");
    w.nothing_held();
    // Its events no longer reach anything.
    assert_eq!(w.devs.serve(&mut w.b, &mut w.m, K), None);
    assert!(w.devs.has(K), "still given: the toolstack decides");
}

#[test]
fn a_front_end_closing_disconnects_and_may_connect_again() {
    let mut w = World::attached();
    let (mut tx, _) = w.publish("3");
    w.events();
    tx.write_u32(0, 3);
    w.m.store.write(&format!("{FRONT}/state"), b"5").unwrap();
    assert_eq!(w.events(), ["dom0: d3 vif 0: disconnected by the front end"]);
    assert_eq!(w.back_state(), "5", "Closing, as the front end");
    assert_eq!(tx.read_u32(0), 0, "what was queued was answered first");
    w.nothing_held();
    w.m.store.write(&format!("{FRONT}/state"), b"6").unwrap();
    assert!(w.events().is_empty());
    assert_eq!(w.back_state(), "6");
    // It starts again: InitWait, then a new connection.
    w.m.store.write(&format!("{FRONT}/state"), b"1").unwrap();
    assert!(w.events().is_empty());
    assert_eq!(w.back_state(), "2");
    w.publish("3");
    assert_eq!(w.events(), ["dom0: d3 vif 0: connected"]);
    assert_eq!(w.m.mapped.len(), 2);
}

#[test]
fn detach_serves_what_is_queued_then_removes_everything() {
    let mut w = World::attached();
    let (mut tx, _) = w.publish("3");
    w.events();
    tx.write_u32(0, 4);
    assert_eq!(w.devs.detach(&mut w.b, &mut w.m, K), Ok(None));
    assert_eq!(w.b.released, [K]);
    w.nothing_held();
    assert!(!w.m.exists(BACK) && !w.m.exists(FRONT) && !w.devs.has(K));
    assert_eq!(tx.read_u32(0), 0, "the queued requests were answered first");
    // The watch is gone: a front end writing its state again reaches nothing.
    w.m.store.write(&format!("{FRONT}/state"), b"3").unwrap();
    assert!(w.events().is_empty());
    assert!(w.devs.detach(&mut w.b, &mut w.m, K).unwrap_err().contains("has no network interface 0"));
}

#[test]
fn a_guests_death_releases_its_devices_only() {
    let mut w = World::attached();
    let other = DevKey { dom: 4, devid: 0 };
    w.devs.attach(&mut w.b, &mut w.m, DevKey { dom: 3, devid: 1 }, &"b").unwrap();
    w.devs.attach(&mut w.b, &mut w.m, other, &"c").unwrap();
    w.publish("3");
    w.events();
    w.devs.release_dom(&mut w.b, &mut w.m, 3);
    assert!(w.m.mapped.is_empty() && w.m.table.is_empty());
    assert_eq!(w.b.released.len(), 2);
    assert!(!w.m.exists("/local/domain/0/backend/vif/3"));
    assert!(w.devs.has(other) && w.m.exists("/local/domain/0/backend/vif/4/0"));
    assert_eq!(w.devs.keys_of(3), []);
}

#[test]
fn channels_open_whole_or_not_at_all() {
    let mut m = Fake::new();
    m.frames.insert((2, 0x100), Page(Rc::new(RefCell::new(vec![0; 4096]))));
    let dev = Device::new(Kind::Console, 2, 0);
    // A second ring that does not map: the first is unmapped again.
    let e = open_channel(&mut m, dev, &[("ring", RingSource::Frame(0x100)), ("other", RingSource::Frame(0x200))], PortSource::Local(7)).err().unwrap();
    assert_eq!(e, "other (frame 0x200) does not map (status -3)");
    assert!(m.mapped.is_empty() && m.table.is_empty());
    let ch = open_channel(&mut m, dev, &[("ring", RingSource::Frame(0x100))], PortSource::Local(7)).ok().unwrap();
    assert_eq!((ch.port, m.table.device_of(7)), (7, Some(dev)));
    assert_eq!(m.table.ports_of(2), [7]);
    close_channel(&mut m, ch);
    assert!(m.mapped.is_empty() && m.table.is_empty());
}

#[test]
fn tokens_and_the_port_table() {
    let key = DevKey { dom: 12, devid: 51712 };
    assert_eq!(token(Kind::Vbd, key), "vbd:12:51712");
    assert_eq!(parse_token(Kind::Vbd, "vbd:12:51712"), Some(key));
    assert_eq!(parse_token(Kind::Vif, "vbd:12:51712"), None);
    assert_eq!(parse_token(Kind::Vbd, "vbd:12"), None);
    assert_eq!(parse_token(Kind::Vbd, "vbdx:1:2"), None);
    assert_eq!(parse_token(Kind::Vbd, "vbd:99999:1"), None);
    let mut t = PortTable::default();
    assert!(t.enter(3, Device::new(Kind::Store, 1, 0)));
    assert!(!t.enter(3, Device::new(Kind::Console, 1, 0)), "a port serves one device");
    assert_eq!(t.device_of(3).unwrap().kind, Kind::Store);
    assert_eq!(t.forget(3).unwrap().kind, Kind::Store);
    assert!(t.forget(3).is_none() && t.is_empty());
    assert_eq!(backend_path(Kind::Vbd, key), "/local/domain/0/backend/vbd/12/51712");
    assert_eq!(frontend_path(Kind::Vif, key), "/local/domain/12/device/vif/51712");
}

/// A ring back end that keeps the pages it is given.
#[derive(Default)]
struct Keeper {
    pages: BTreeMap<u16, (String, Page, u32)>,
    refuse: bool,
}

impl RingBackend<Page> for Keeper {
    const KIND: Kind = Kind::Console;
    fn connect(&mut self, dom: u16, name: &str, page: Page, port: u32) -> Result<(), String> {
        if self.refuse {
            return Err(String::from("refused"));
        }
        self.pages.insert(dom, (String::from(name), page, port));
        Ok(())
    }
    fn disconnect(&mut self, dom: u16) -> Option<Page> {
        self.pages.remove(&dom).map(|(_, p, _)| p)
    }
}

struct RingWorld {
    m: Fake,
    keeper: Keeper,
}

#[test]
fn ring_back_ends_get_the_page_and_give_it_back_before_the_channel_closes() {
    let mut w = RingWorld { m: Fake::new(), keeper: Keeper::default() };
    w.m.frames.insert((5, 0x200), Page(Rc::new(RefCell::new(vec![0; 4096]))));
    let mut chans: RingChannels<Page> = RingChannels::default();
    // A back end that refuses leaves nothing mapped or bound.
    w.keeper.refuse = true;
    let e = connect(&mut chans, &mut w, 5, 0x200, 9).unwrap_err();
    assert_eq!(e, "refused");
    assert!(w.m.mapped.is_empty() && w.m.table.is_empty());
    w.keeper.refuse = false;
    connect(&mut chans, &mut w, 5, 0x200, 9).unwrap();
    assert_eq!(w.keeper.pages[&5].0, "guest");
    assert_eq!(w.m.table.device_of(9), Some(Device::new(Kind::Console, 5, 0)));
    assert!(!w.m.masked.contains(&9), "served: unmasked");
    assert!(connect(&mut chans, &mut w, 5, 0x200, 9).unwrap_err().contains("served already"));
    // A frame that does not map is named.
    assert!(connect(&mut chans, &mut w, 6, 0x300, 10).unwrap_err().contains("console (frame 0x300) does not map"));
    release(&mut chans, &mut w, 5);
    assert!(w.keeper.pages.is_empty() && w.m.mapped.is_empty() && w.m.table.is_empty());
}

/// The world as a machine whose back end is the keeper.
impl SplitMachine for RingWorld {
    type Page = Page;
    type StorePage = xenbus::ring::LocalPage;

    fn store(&mut self) -> &mut StoreService<xenbus::ring::LocalPage> {
        &mut self.m.store
    }

    fn map(&mut self, dom: u16, ring: RingSource) -> Result<(MapId, Page), String> {
        self.m.map(dom, ring)
    }
    fn unmap(&mut self, map: MapId) {
        self.m.unmap(map)
    }
    fn bind(&mut self, device: Device, port: PortSource) -> Result<u32, String> {
        self.m.bind(device, port)
    }
    fn unmask(&mut self, port: u32) {
        self.m.unmask(port)
    }
    fn unbind(&mut self, port: u32) {
        self.m.unbind(port)
    }
    fn notify(&mut self, port: u32) {
        self.m.notify(port)
    }
}

fn connect(chans: &mut RingChannels<Page>, w: &mut RingWorld, dom: u16, mfn: u64, port: u32) -> Result<(), String> {
    chans.connect(w, |w| &mut w.keeper, dom, "guest", mfn, port, |p| p)
}

fn release(chans: &mut RingChannels<Page>, w: &mut RingWorld, dom: u16) {
    chans.release(w, |w| &mut w.keeper, dom)
}
