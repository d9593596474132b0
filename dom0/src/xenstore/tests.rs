//! Host tests of the store service: guests played over shared fake pages, hostile rings.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use xenbus::ring::xenstore::{Side, XsRingEnd, ERROR, ERROR_RINGIDX, REQ_PROD};
use xenbus::ring::{LocalPage, SharedMem};
use xenbus::wire::{Message, MsgType, XsError};

use super::*;

/// A page both the service and the test's guest hold.
#[derive(Clone)]
struct Shared(Rc<RefCell<LocalPage>>);

impl Shared {
    fn new() -> Shared {
        Shared(Rc::new(RefCell::new(LocalPage::new(4096))))
    }
}

impl SharedMem for Shared {
    fn size(&self) -> usize {
        4096
    }
    fn read_u32(&self, offset: usize) -> u32 {
        self.0.borrow().read_u32(offset)
    }
    fn write_u32(&mut self, offset: usize, value: u32) {
        self.0.borrow_mut().write_u32(offset, value)
    }
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        self.0.borrow().read_bytes(offset, out)
    }
    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        self.0.borrow_mut().write_bytes(offset, data)
    }
}

/// A guest's client end over its page.
struct Guest {
    page: Shared,
    end: XsRingEnd,
    next: u32,
}

impl Guest {
    fn new(page: &Shared) -> Guest {
        Guest { page: page.clone(), end: XsRingEnd::new(Side::Client, page).unwrap(), next: 1 }
    }

    fn send(&mut self, ty: MsgType, payload: &[u8]) -> u32 {
        let id = self.next;
        self.next += 1;
        self.end.queue_message(Message::new(ty, id, 0, payload.to_vec()).to_bytes()).unwrap();
        self.end.flush(&mut self.page).unwrap();
        id
    }

    fn push(&mut self, bytes: Vec<u8>) {
        self.end.queue_message(bytes).unwrap();
        self.end.flush(&mut self.page).unwrap();
    }

    fn flush(&mut self) {
        self.end.flush(&mut self.page).unwrap();
    }

    fn receive(&mut self) -> Vec<Message> {
        let mut v = Vec::new();
        while let Some(b) = self.end.read_message(&mut self.page).unwrap() {
            v.push(Message::parse(&b).unwrap());
        }
        v
    }
}

fn service_with(doms: &[(u16, &str, u32)]) -> (StoreService<Shared>, Vec<Guest>) {
    let mut s = StoreService::new();
    let mut guests = Vec::new();
    for &(dom, name, port) in doms {
        let page = Shared::new();
        s.introduce(dom, name, port, page.clone()).unwrap();
        guests.push(Guest::new(&page));
    }
    (s, guests)
}

fn ls(s: &mut StoreService<Shared>, path: &str) -> String {
    let mut out = String::new();
    s.ls(path, &mut out).unwrap();
    out
}

#[test]
fn dom0_home_is_listed_like_xenstore_ls() {
    let (mut s, _) = service_with(&[]);
    assert_eq!(ls(&mut s, "/local/domain"), "0 = \"\"\n domid = \"0\"\n name = \"Domain-0\"\n");
    assert_eq!(s.read("/nope"), Err(XsError::ENOENT));
}

#[test]
fn introduced_guest_owns_its_name_and_domid() {
    let (mut s, mut g) = service_with(&[(3, "alpha", 40)]);
    assert_eq!(s.read("/local/domain/3/name").unwrap(), b"alpha");
    let id = g[0].send(MsgType::Read, b"domid\0");
    let served = s.serve(&[40]);
    assert_eq!(served.notify, [40]);
    let replies = g[0].receive();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].header.req_id, id);
    assert_eq!(replies[0].payload, b"3");
    assert_eq!(s.introduce(3, "again", 41, Shared::new()), Err(IntroduceError::AlreadyServed));
}

#[test]
fn a_guest_cannot_read_anothers_home() {
    let (mut s, mut g) = service_with(&[(1, "a", 10), (2, "b", 11)]);
    g[0].send(MsgType::Read, b"/local/domain/2/name\0");
    s.serve(&[10]);
    assert_eq!(g[0].receive()[0].as_error(), Some(XsError::EACCES));
}

#[test]
fn a_write_reaches_watchers_in_the_same_serve() {
    let (mut s, mut g) = service_with(&[(1, "a", 10), (2, "b", 11)]);
    g[0].send(MsgType::Watch, b"/local/domain/1/x\0tok\0");
    s.serve(&[10]);
    assert_eq!(g[0].receive().len(), 2); // the reply and the initial event
    // dom0 writes: the event goes out on the next serve without a signal from the guest.
    s.write("/local/domain/1/x", b"hi").unwrap();
    let served = s.serve(&[]);
    assert_eq!(served.notify, [10]);
    let ev = g[0].receive();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].header.msg_type, MsgType::WatchEvent as u32);
    assert!(ev[0].payload.starts_with(b"/local/domain/1/x\0tok"));
}

#[test]
fn dom0_watch_sees_guest_writes_and_release() {
    let (mut s, mut g) = service_with(&[(1, "a", 10)]);
    s.watch("@releaseDomain", "r").unwrap();
    assert_eq!(s.take_event(), Some((String::from("@releaseDomain"), String::from("r"))));
    s.watch("/local/domain/1", "h").unwrap();
    assert!(s.take_event().is_some());
    g[0].send(MsgType::Write, b"data\0v");
    s.serve(&[10]);
    assert_eq!(s.take_event().map(|e| e.0), Some(String::from("/local/domain/1/data")));
    assert!(s.release(1).is_some());
    let mut seen: Vec<String> = Vec::new();
    while let Some((p, _)) = s.take_event() {
        seen.push(p);
    }
    assert!(seen.contains(&String::from("@releaseDomain")), "{seen:?}");
    s.unwatch("@releaseDomain", "r").unwrap();
    s.unwatch("/local/domain/1", "h").unwrap();
}

#[test]
fn release_leaves_no_node_behind() {
    let (mut s, mut g) = service_with(&[(1, "a", 10), (2, "b", 11)]);
    g[0].send(MsgType::Write, b"deep/er/node\0v");
    s.serve(&[10]);
    assert!(s.release(1).is_some());
    assert!(s.release(1).is_none());
    assert_eq!(s.read("/local/domain/1"), Err(XsError::ENOENT));
    let listing = ls(&mut s, "/local/domain");
    assert!(!listing.lines().any(|l| l.starts_with("1 ")), "{listing}");
    assert!(listing.lines().any(|l| l.starts_with("2 ")), "{listing}");
    assert_eq!(s.store.nodes_owned(DomId(1)), 0);
    assert_eq!(s.dom_of_port(10), None);
}

#[test]
fn a_lying_ring_is_disconnected_once_and_the_others_are_served() {
    let (mut s, mut g) = service_with(&[(1, "bad", 10), (2, "good", 11)]);
    g[0].page.write_u32(REQ_PROD, 5000);
    g[1].send(MsgType::Read, b"name\0");
    let served = s.serve(&[10, 11]);
    assert_eq!(served.disconnected, [(10, String::from("xl: store ring of bad: impossible index (prod 5000, cons 0); disconnected"))]);
    assert_eq!(served.notify, [11]);
    assert_eq!(g[0].page.read_u32(ERROR), ERROR_RINGIDX);
    assert_eq!(g[1].receive()[0].payload, b"good");
    assert!(!s.is_connected(1));
    // More signals from it: nothing more is read, said or echoed.
    let again = s.serve(&[10]);
    assert_eq!(again, Served::default());
    // Its home still goes on destroy.
    assert!(s.release(1).is_some());
    assert_eq!(s.read("/local/domain/1"), Err(XsError::ENOENT));
}

#[test]
fn an_oversized_or_garbled_header_disconnects() {
    let (mut s, mut g) = service_with(&[(1, "big", 10), (2, "junk", 11)]);
    // A header announcing 5000 bytes of payload.
    let mut h = Message::new(MsgType::Read, 1, 0, Vec::new()).to_bytes();
    h[12..16].copy_from_slice(&5000u32.to_le_bytes());
    g[0].push(h);
    // Random bytes whose header is well-sized but whose body is not a request.
    g[1].push(alloc::vec![0xff; 16]);
    let served = s.serve(&[10, 11]);
    assert_eq!(served.disconnected.len(), 2, "{served:?}");
    assert!(served.disconnected[0].1.contains("message of 5000 bytes"), "{served:?}");
}

#[test]
fn a_signal_with_nothing_to_do_is_echoed() {
    let (mut s, mut g) = service_with(&[(1, "a", 10)]);
    // Not before the guest has used its store (a fresh binding's pending bit).
    assert_eq!(s.serve(&[10]), Served::default());
    g[0].send(MsgType::Read, b"name\0");
    s.serve(&[10]);
    g[0].receive();
    s.serve(&[10]);
    let served = s.serve(&[10]);
    assert_eq!(served.echo, [10]);
    assert!(served.notify.is_empty());
    g[0].send(MsgType::Read, b"name\0");
    let served = s.serve(&[10]);
    assert!(served.echo.is_empty());
    assert_eq!(served.notify, [10]);
    g[0].receive();
    // The guest's "I read the reply" event is not answered; a later empty one is.
    assert_eq!(s.serve(&[10]), Served::default());
    assert_eq!(s.serve(&[10]).echo, [10]);
    // Unknown ports are ignored.
    assert_eq!(s.serve(&[99]), Served::default());
}

#[test]
fn a_guest_that_never_reads_stalls_only_itself() {
    let (mut s, mut g) = service_with(&[(1, "slow", 10), (2, "fast", 11)]);
    // Fill slow's response ring with replies it never reads.
    for _ in 0..200 {
        if g[0].end.output_idle() {
            g[0].send(MsgType::Read, b"name\0");
        } else {
            g[0].flush();
        }
        s.serve(&[10]);
    }
    g[1].send(MsgType::Read, b"name\0");
    s.serve(&[11]);
    assert_eq!(g[1].receive()[0].payload, b"fast");
}

#[test]
fn values_are_escaped() {
    let s = alloc::format!("{}", Escaped(b"a\\b\n\x01\"z"));
    assert_eq!(s, "a\\\\b\\n\\x01\"z");
}

#[test]
fn ls_of_the_root_and_of_bad_paths() {
    let (mut s, _) = service_with(&[]);
    assert_eq!(
        ls(&mut s, "/"),
        "local = \"\"\n domain = \"\"\n  0 = \"\"\n   domid = \"0\"\n   name = \"Domain-0\"\n"
    );
    let mut out = String::new();
    assert_eq!(s.ls("/nope", &mut out), Err(XsError::ENOENT));
    assert_eq!(s.ls("//x", &mut out), Err(XsError::EINVAL));
    assert!(out.is_empty());
}
