//! The guest client against the real engine: directly, and through the ring and service.

use std::cell::RefCell;
use std::rc::Rc;

use hypercall_abi::DomId;
use xenbus::client::{Client, ClientError, Doorbell, RingTransport, Transport, TxId, WatchEvent};
use xenbus::path::Perms;
use xenbus::ring::xenstore::{Side, XsRingEnd};
use xenbus::ring::LocalPage;
use xenbus::service::serve;
use xenbus::store::{ConnId, Store};
use xenbus::wire::{Message, MsgType, XsError};

type Shared = Rc<RefCell<Store>>;

struct Direct {
    store: Shared,
    conn: ConnId,
}

impl Transport for Direct {
    fn send(&mut self, msg: &[u8]) -> Result<(), ClientError> {
        self.store.borrow_mut().handle(self.conn, msg).map_err(|_| ClientError::Protocol)
    }
    fn receive(&mut self) -> Result<Vec<u8>, ClientError> {
        self.store.borrow_mut().pop_output(self.conn).map(|m| m.to_bytes()).ok_or(ClientError::Protocol)
    }
}

fn direct(store: &Shared, d: u16) -> Client<Direct> {
    let conn = if d == 0 { store.borrow_mut().connect(DomId(0)) } else { store.borrow_mut().introduce_domain(DomId(d)) };
    Client::new(Direct { store: store.clone(), conn })
}

/// dom0's store service as the guest sees it: it serves the ring when notified, and on
/// its own only when it has replies or events to send. A client that waits without
/// having told it of its progress (bytes taken or given) would wait for ever.
struct FakeStoreDoorbell {
    store: Shared,
    conn: ConnId,
    end: XsRingEnd,
    notified: usize,
    pending: bool,
}

impl Doorbell<LocalPage> for FakeStoreDoorbell {
    fn notify(&mut self, _page: &mut LocalPage) {
        self.notified += 1;
        self.pending = true;
    }
    fn wait(&mut self, page: &mut LocalPage) {
        // A message it has begun waits for room, which only a notification announces.
        let has_output = self.end.output_idle() && self.store.borrow().peek_output(self.conn).is_some();
        assert!(self.pending || has_output, "the client waits, but never told the store of its progress");
        self.pending = false;
        serve(&mut self.store.borrow_mut(), self.conn, &mut self.end, page).expect("ring stays healthy");
    }
}

fn over_ring(store: &Shared, d: u16) -> Client<RingTransport<LocalPage, FakeStoreDoorbell>> {
    let conn = store.borrow_mut().introduce_domain(DomId(d));
    let page = LocalPage::new(4096);
    let end = XsRingEnd::new(Side::Server, &page).unwrap();
    let bell = FakeStoreDoorbell { store: store.clone(), conn, end, notified: 0, pending: false };
    Client::new(RingTransport::new(page, bell).unwrap())
}

fn ev(p: &str, t: &str) -> WatchEvent {
    WatchEvent { path: p.into(), token: t.into() }
}

#[test]
fn client_basic_operations_directly() {
    let store: Shared = Rc::new(RefCell::new(Store::new()));
    let mut c = direct(&store, 2);
    assert_eq!(c.get_domain_path(DomId(2)).unwrap(), "/local/domain/2");
    c.write(TxId::NONE, "device/vif/0/state", b"1").unwrap();
    assert_eq!(c.read(TxId::NONE, "device/vif/0/state").unwrap(), b"1");
    c.mkdir(TxId::NONE, "device/vbd").unwrap();
    assert_eq!(c.directory(TxId::NONE, "device").unwrap(), vec!["vbd", "vif"]);
    assert_eq!(c.directory(TxId::NONE, "device/vbd").unwrap(), Vec::<String>::new());
    c.set_perms(TxId::NONE, "device", &Perms::parse(&["n2", "r0"]).unwrap()).unwrap();
    assert_eq!(c.get_perms(TxId::NONE, "device").unwrap(), Perms::parse(&["n2", "r0"]).unwrap());
    c.rm(TxId::NONE, "device/vif").unwrap();
    assert_eq!(c.read(TxId::NONE, "device/vif/0/state"), Err(ClientError::Store(XsError::ENOENT)));
    assert_eq!(c.read(TxId::NONE, "/local/domain/0"), Err(ClientError::Store(XsError::EACCES)));
}

#[test]
fn client_watch_events_are_set_aside_while_waiting_for_replies() {
    let store: Shared = Rc::new(RefCell::new(Store::new()));
    let mut c = direct(&store, 2);
    let mut d0 = direct(&store, 0);
    c.watch("backend-state", "be").unwrap();
    d0.write(TxId::NONE, "/local/domain/2/backend-state", b"4").unwrap();
    // The events arrived while the client was not looking; a read goes through them.
    assert_eq!(c.read(TxId::NONE, "backend-state").unwrap(), b"4");
    assert_eq!(c.next_event(), Some(ev("backend-state", "be")));
    assert_eq!(c.wait_event().unwrap(), ev("backend-state", "be"));
    assert_eq!(c.next_event(), None);
    c.unwatch("backend-state", "be").unwrap();
}

#[test]
fn client_transaction_retries_on_eagain() {
    let store: Shared = Rc::new(RefCell::new(Store::new()));
    let mut c = direct(&store, 2);
    let mut d0 = direct(&store, 0);
    c.write(TxId::NONE, "counter", b"0").unwrap();
    let mut attempts = 0;
    let r = c.transaction(|c, tx| {
        attempts += 1;
        let v: u32 = String::from_utf8(c.read(tx, "counter")?).unwrap().parse().unwrap();
        if attempts == 1 {
            // Someone else changes the counter under our feet, once.
            d0.write(TxId::NONE, "/local/domain/2/counter", b"10").unwrap();
        }
        c.write(tx, "counter", format!("{}", v + 1).as_bytes())?;
        Ok(v + 1)
    });
    assert_eq!(r, Ok(11));
    assert_eq!(attempts, 2);
    assert_eq!(c.read(TxId::NONE, "counter").unwrap(), b"11");
    // An error in the body aborts and is returned.
    let r: Result<(), _> = c.transaction(|c, tx| {
        c.write(tx, "never", b"x")?;
        c.read(tx, "/local/domain/0").map(drop)
    });
    assert_eq!(r, Err(ClientError::Store(XsError::EACCES)));
    assert_eq!(c.read(TxId::NONE, "never"), Err(ClientError::Store(XsError::ENOENT)));
}

#[test]
fn client_ignores_stale_replies_and_rejects_garbage() {
    struct Scripted(Vec<Vec<u8>>);
    impl Transport for Scripted {
        fn send(&mut self, _: &[u8]) -> Result<(), ClientError> {
            Ok(())
        }
        fn receive(&mut self) -> Result<Vec<u8>, ClientError> {
            if self.0.is_empty() {
                return Err(ClientError::Protocol);
            }
            Ok(self.0.remove(0))
        }
    }
    let stale = Message::new(MsgType::Read, 99, 0, b"old".to_vec()).to_bytes();
    let good = Message::new(MsgType::Read, 1, 0, b"new".to_vec()).to_bytes();
    let mut c = Client::new(Scripted(vec![stale, good]));
    assert_eq!(c.read(TxId::NONE, "x").unwrap(), b"new");
    // A reply of the wrong type for our id, and bytes that are not a message.
    let wrong_type = Message::new(MsgType::Write, 1, 0, b"OK\0".to_vec()).to_bytes();
    assert_eq!(Client::new(Scripted(vec![wrong_type])).read(TxId::NONE, "x"), Err(ClientError::Protocol));
    assert_eq!(Client::new(Scripted(vec![b"short".to_vec()])).read(TxId::NONE, "x"), Err(ClientError::Protocol));
    let bad_event = Message::new(MsgType::WatchEvent, 0, 0, b"no-token\0".to_vec()).to_bytes();
    let mut c4 = Client::new(Scripted(vec![bad_event]));
    assert_eq!(c4.read(TxId::NONE, "x"), Err(ClientError::Protocol));
}

#[test]
fn client_over_the_ring_talks_to_the_store_service() {
    let store: Shared = Rc::new(RefCell::new(Store::new()));
    let mut c = over_ring(&store, 5);
    let mut d0 = direct(&store, 0);
    c.watch("device", "dev").unwrap();
    // Values bigger than the ring go through in pieces both ways.
    let big = vec![b'z'; 2048];
    c.write(TxId::NONE, "device/blob", &big).unwrap();
    assert_eq!(c.read(TxId::NONE, "device/blob").unwrap(), big);
    d0.write(TxId::NONE, "/local/domain/5/device/vbd/state", b"2").unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(c.wait_event().unwrap());
    }
    assert_eq!(seen, vec![ev("device", "dev"), ev("device/blob", "dev"), ev("device/vbd/state", "dev")]);
    let n = c.transaction(|c, tx| {
        c.write(tx, "device/vbd/state", b"3")?;
        Ok(1)
    });
    assert_eq!(n, Ok(1));
    assert_eq!(d0.read(TxId::NONE, "/local/domain/5/device/vbd/state").unwrap(), b"3");
    assert!(c.transport_mut().doorbell_mut().notified > 0);
}
