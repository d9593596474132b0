//! The store ring and the service loop: split messages, wrap-around, a guest that never
//! reads, and rings whose indices lie.

mod common;
use common::s;
use hypercall_abi::DomId;
use xenbus::ring::xenstore::{self, Side, XsRingEnd, ERROR, INTERFACE_SIZE, REQ, REQ_CONS, REQ_PROD, RING_SIZE, RSP_CONS, RSP_PROD};
use xenbus::ring::{LocalPage, RingError, SharedMem};
use xenbus::service::{serve, ServeError};
use xenbus::store::{Store, DEFAULT_QUOTA_OUTSTANDING};
use xenbus::wire::{Header, Message, MsgType, HEADER_SIZE, PAYLOAD_MAX};

/// A guest that writes raw bytes into its request ring.
fn guest_put(page: &mut LocalPage, bytes: &[u8]) {
    let mut prod = page.read_u32(REQ_PROD);
    for &b in bytes {
        let cons = page.read_u32(REQ_CONS);
        assert!(prod.wrapping_sub(cons) < RING_SIZE, "test writes only what fits");
        page.bytes[REQ + xenstore::mask(prod)] = b;
        prod = prod.wrapping_add(1);
    }
    page.write_u32(REQ_PROD, prod);
}

/// A guest that reads every response byte available.
fn guest_take(page: &mut LocalPage) -> Vec<u8> {
    let mut cons = page.read_u32(RSP_CONS);
    let prod = page.read_u32(RSP_PROD);
    let mut out = Vec::new();
    while cons != prod {
        out.push(page.bytes[xenstore::RSP + xenstore::mask(cons)]);
        cons = cons.wrapping_add(1);
    }
    page.write_u32(RSP_CONS, cons);
    out
}

fn split_messages(mut bytes: &[u8]) -> Vec<Message> {
    let mut v = Vec::new();
    while !bytes.is_empty() {
        let h = Header::parse(bytes).unwrap();
        let end = HEADER_SIZE + h.len as usize;
        v.push(Message::parse(&bytes[..end]).unwrap());
        bytes = &bytes[end..];
    }
    v
}

fn setup() -> (Store, xenbus::store::ConnId, XsRingEnd, LocalPage) {
    let mut st = Store::new();
    let conn = st.introduce_domain(DomId(3));
    let page = LocalPage::new(4096);
    let end = XsRingEnd::new(Side::Server, &page).unwrap();
    (st, conn, end, page)
}

#[test]
fn message_split_byte_by_byte_and_across_the_wrap() {
    let (mut st, conn, mut end, mut page) = setup();
    // Start near the end of the ring so the message wraps.
    for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD] {
        page.write_u32(off, u32::MAX - 5);
    }
    let mut end2 = XsRingEnd::new(Side::Server, &page).unwrap();
    std::mem::swap(&mut end, &mut end2);
    let mut p = s("key");
    p.extend_from_slice(b"value");
    let msg = Message::new(MsgType::Write, 7, 0, p).to_bytes();
    for b in &msg {
        guest_put(&mut page, std::slice::from_ref(b));
        serve(&mut st, conn, &mut end, &mut page).unwrap();
    }
    let replies = split_messages(&guest_take(&mut page));
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].header.req_id, 7);
    assert_eq!(replies[0].payload, b"OK\0");
}

#[test]
fn largest_message_streams_through_the_small_ring() {
    let (mut st, conn, mut end, mut page) = setup();
    let mut p = s("/local/domain/3/big");
    p.resize(PAYLOAD_MAX, b'x');
    // Value is over the 2048-byte quota: the point is that a 4 KiB message gets through.
    let msg = Message::new(MsgType::Write, 1, 0, p).to_bytes();
    let mut sent = 0;
    while sent < msg.len() {
        let room = (RING_SIZE - page.read_u32(REQ_PROD).wrapping_sub(page.read_u32(REQ_CONS))) as usize;
        let n = room.min(msg.len() - sent);
        guest_put(&mut page, &msg[sent..sent + n]);
        sent += n;
        serve(&mut st, conn, &mut end, &mut page).unwrap();
    }
    let replies = split_messages(&guest_take(&mut page));
    assert_eq!(replies[0].as_error(), Some(xenbus::wire::XsError::ENOSPC));
}

#[test]
fn guest_that_never_reads_stalls_itself_with_bounded_memory() {
    let (mut st, conn, mut end, mut page) = setup();
    let req = Message::new(MsgType::GetDomainPath, 1, 0, s("3")).to_bytes();
    // Keep writing requests; never read replies.
    let mut written = 0;
    for _ in 0..500 {
        let room = RING_SIZE - page.read_u32(REQ_PROD).wrapping_sub(page.read_u32(REQ_CONS));
        if room as usize >= req.len() {
            guest_put(&mut page, &req);
            written += 1;
        }
        serve(&mut st, conn, &mut end, &mut page).unwrap();
    }
    // The response ring filled, then 20 replies queued, then the store stopped reading.
    assert!(!st.wants_input(conn));
    // What was written is bounded by the response ring plus the outstanding quota plus the
    // request ring, not by how long the guest keeps trying.
    let per_ring = RING_SIZE as usize / req.len() + 2;
    assert!(written <= 2 * per_ring + DEFAULT_QUOTA_OUTSTANDING, "the guest was throttled (wrote {written})");
    // Reading everything lets it all flow again.
    let mut got = 0;
    for _ in 0..100 {
        got += split_messages(&guest_take(&mut page)).len();
        serve(&mut st, conn, &mut end, &mut page).unwrap();
    }
    assert_eq!(got, written);
    assert!(st.wants_input(conn));
}

#[test]
fn request_index_that_lies_stops_the_ring() {
    let (mut st, conn, mut end, mut page) = setup();
    page.write_u32(REQ_PROD, RING_SIZE + 1);
    assert_eq!(serve(&mut st, conn, &mut end, &mut page), Err(ServeError::Ring(RingError::IndexLie { prod: RING_SIZE + 1, cons: 0 })));
    assert_eq!(page.read_u32(ERROR), xenstore::ERROR_RINGIDX);
    // Stays stopped even if the guest "fixes" the index.
    page.write_u32(REQ_PROD, 0);
    assert_eq!(serve(&mut st, conn, &mut end, &mut page), Err(ServeError::Ring(RingError::Stopped)));
}

#[test]
fn response_consumer_index_that_lies_stops_the_ring() {
    let (mut st, conn, mut end, mut page) = setup();
    guest_put(&mut page, &Message::new(MsgType::Read, 1, 0, s("x")).to_bytes());
    page.write_u32(RSP_CONS, 5000);
    assert!(matches!(serve(&mut st, conn, &mut end, &mut page), Err(ServeError::Ring(RingError::IndexLie { .. }))));
}

#[test]
fn oversized_header_stops_the_ring_with_proto_error() {
    let (mut st, conn, mut end, mut page) = setup();
    let h = Header { msg_type: 2, req_id: 1, tx_id: 0, len: 5000 };
    guest_put(&mut page, &h.to_bytes());
    assert_eq!(serve(&mut st, conn, &mut end, &mut page), Err(ServeError::Ring(RingError::Oversized(5000))));
    assert_eq!(page.read_u32(ERROR), xenstore::ERROR_PROTO);
}

#[test]
fn page_too_small_is_refused() {
    let page = LocalPage::new(INTERFACE_SIZE - 1);
    assert!(matches!(XsRingEnd::new(Side::Server, &page), Err(RingError::PageTooSmall)));
}

#[test]
fn a_change_by_one_guest_reaches_another_guests_ring() {
    let mut st = Store::new();
    let c1 = st.introduce_domain(DomId(1));
    let c2 = st.introduce_domain(DomId(2));
    let (mut p1, mut p2) = (LocalPage::new(4096), LocalPage::new(4096));
    let mut e1 = XsRingEnd::new(Side::Server, &p1).unwrap();
    let mut e2 = XsRingEnd::new(Side::Server, &p2).unwrap();
    // Domain 1 shares a directory with domain 2; domain 2 watches it.
    let mut setperm = s("/local/domain/1");
    setperm.extend_from_slice(b"n1\0r2\0");
    guest_put(&mut p1, &Message::new(MsgType::SetPerms, 1, 0, setperm).to_bytes());
    serve(&mut st, c1, &mut e1, &mut p1).unwrap();
    let watch = xenbus::wire::join_nul(&[b"/local/domain/1", b"peer"]);
    guest_put(&mut p2, &Message::new(MsgType::Watch, 1, 0, watch).to_bytes());
    serve(&mut st, c2, &mut e2, &mut p2).unwrap();
    assert_eq!(split_messages(&guest_take(&mut p2)).len(), 2, "reply and initial event");
    let mut w = s("state");
    w.extend_from_slice(b"4");
    guest_put(&mut p1, &Message::new(MsgType::Write, 2, 0, w).to_bytes());
    serve(&mut st, c1, &mut e1, &mut p1).unwrap();
    assert_eq!(st.connections_with_output(), vec![c2]);
    assert!(serve(&mut st, c2, &mut e2, &mut p2).unwrap().notify());
    let got = split_messages(&guest_take(&mut p2));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header.msg_type, MsgType::WatchEvent as u32);
    assert_eq!(got[0].payload, b"/local/domain/1/state\0peer\0");
}

/// The store ring page as dom0 sees it, counting how often each byte of the request area
/// is fetched.
struct CountingPage {
    page: LocalPage,
    fetched: std::cell::RefCell<Vec<u32>>,
}

impl SharedMem for CountingPage {
    fn size(&self) -> usize {
        self.page.size()
    }
    fn read_u32(&self, offset: usize) -> u32 {
        self.page.read_u32(offset)
    }
    fn write_u32(&mut self, offset: usize, value: u32) {
        self.page.write_u32(offset, value)
    }
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        let mut fetched = self.fetched.borrow_mut();
        for i in offset..offset + out.len() {
            if let Some(n) = i.checked_sub(REQ).and_then(|k| fetched.get_mut(k)) {
                *n += 1;
            }
        }
        self.page.read_bytes(offset, out)
    }
    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        self.page.write_bytes(offset, data)
    }
}

/// The double-fetch class: the back-end reads every request byte exactly once, into
/// memory of its own, however the requests arrive (whole, in pieces, across the wrap), so a
/// guest rewriting its ring while dom0 works (a header's length after it was checked, say)
/// changes nothing dom0 decided on.
#[test]
fn every_request_byte_is_fetched_once() {
    let mut st = Store::new();
    let conn = st.introduce_domain(DomId(3));
    let mut page = CountingPage { page: LocalPage::new(4096), fetched: std::cell::RefCell::new(vec![0; RING_SIZE as usize]) };
    let mut end = XsRingEnd::new(Side::Server, &page).unwrap();
    let nodes_before = st.nodes_owned(DomId(3));
    let mut sent = 0usize;
    for i in 0..60u32 {
        let mut payload = format!("data/n{i}\0").into_bytes();
        payload.extend(std::iter::repeat_n(b'v', (i as usize * 37) % 700));
        let msg = Message::new(MsgType::Write, i, 0, payload).to_bytes();
        for piece in msg.chunks(1 + (i as usize * 13) % 300) {
            guest_put(&mut page.page, piece);
            serve(&mut st, conn, &mut end, &mut page).unwrap();
            guest_take(&mut page.page);
        }
        sent += msg.len();
    }
    let fetched: u32 = page.fetched.borrow().iter().sum();
    assert!(sent > 3 * RING_SIZE as usize, "the test laps the ring");
    assert_eq!(fetched as usize, sent, "each request byte fetched once");
    assert_eq!(st.nodes_owned(DomId(3)), nodes_before + 61, "every write applied (60 nodes and data/)");
}
