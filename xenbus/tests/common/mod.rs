//! Helpers shared by the host tests: send a request to a store connection and read replies.
#![allow(dead_code)] // Each test file uses a different subset.

use hypercall_abi::DomId;
use xenbus::store::{ConnId, Store};
use xenbus::wire::{join_nul, Message, MsgType, XsError};

pub struct Conn {
    pub id: ConnId,
    pub next_req: u32,
}

pub fn dom(store: &mut Store, d: u16) -> Conn {
    let id = if d == 0 { store.connect(DomId(0)) } else { store.introduce_domain(DomId(d)) };
    Conn { id, next_req: 1 }
}

/// Sends one request and returns its reply, collecting watch events on the way.
pub fn req(store: &mut Store, c: &mut Conn, ty: MsgType, tx: u32, payload: &[u8]) -> Result<Vec<u8>, XsError> {
    let rid = c.next_req;
    c.next_req += 1;
    let m = Message::new(ty, rid, tx, payload.to_vec());
    store.handle(c.id, &m.to_bytes()).expect("store takes the request");
    let mut pending = Vec::new();
    let reply = loop {
        let m = store.pop_output(c.id).expect("a reply");
        if m.header.msg_type == MsgType::WatchEvent as u32 {
            pending.push(m);
            continue;
        }
        break m;
    };
    assert_eq!(reply.header.req_id, rid);
    assert_eq!(reply.header.tx_id, tx);
    // Put events back in front of whatever else is queued is not possible; tests read
    // events with `events` after the fact, so keep them in a side buffer.
    EVENTS.with(|e| e.borrow_mut().extend(pending.into_iter().map(|m| (c.id, m))));
    match reply.as_error() {
        Some(e) => Err(e),
        None => {
            assert_eq!(reply.header.msg_type, ty as u32);
            Ok(reply.payload)
        }
    }
}

std::thread_local! {
    static EVENTS: std::cell::RefCell<Vec<(ConnId, Message)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Every watch event queued on `c` so far, as (path, token), oldest first.
pub fn events(store: &mut Store, c: &Conn) -> Vec<(String, String)> {
    let mut all: Vec<Message> = EVENTS.with(|e| {
        let mut v = e.borrow_mut();
        let (mine, rest): (Vec<_>, Vec<_>) = v.drain(..).partition(|(id, _)| *id == c.id);
        *v = rest;
        mine.into_iter().map(|(_, m)| m).collect()
    });
    while let Some(m) = store.pop_output(c.id) {
        assert_eq!(m.header.msg_type, MsgType::WatchEvent as u32, "only events left");
        all.push(m);
    }
    all.iter()
        .map(|m| {
            let parts: Vec<&[u8]> = m.payload.strip_suffix(b"\0").unwrap().split(|&b| b == 0).collect();
            assert_eq!(parts.len(), 2);
            (String::from_utf8(parts[0].to_vec()).unwrap(), String::from_utf8(parts[1].to_vec()).unwrap())
        })
        .collect()
}

pub fn s(x: &str) -> Vec<u8> {
    join_nul(&[x.as_bytes()])
}

pub fn read(store: &mut Store, c: &mut Conn, p: &str) -> Result<Vec<u8>, XsError> {
    req(store, c, MsgType::Read, 0, &s(p))
}

pub fn write(store: &mut Store, c: &mut Conn, p: &str, v: &[u8]) -> Result<Vec<u8>, XsError> {
    let mut payload = s(p);
    payload.extend_from_slice(v);
    req(store, c, MsgType::Write, 0, &payload)
}

pub fn write_tx(store: &mut Store, c: &mut Conn, tx: u32, p: &str, v: &[u8]) -> Result<Vec<u8>, XsError> {
    let mut payload = s(p);
    payload.extend_from_slice(v);
    req(store, c, MsgType::Write, tx, &payload)
}

pub fn set_perms(store: &mut Store, c: &mut Conn, p: &str, perms: &[&str]) -> Result<Vec<u8>, XsError> {
    let mut parts: Vec<&[u8]> = vec![p.as_bytes()];
    parts.extend(perms.iter().map(|x| x.as_bytes()));
    req(store, c, MsgType::SetPerms, 0, &join_nul(&parts))
}

pub fn watch(store: &mut Store, c: &mut Conn, p: &str, token: &str) -> Result<Vec<u8>, XsError> {
    req(store, c, MsgType::Watch, 0, &join_nul(&[p.as_bytes(), token.as_bytes()]))
}

pub fn tx_start(store: &mut Store, c: &mut Conn) -> Result<u32, XsError> {
    let r = req(store, c, MsgType::TransactionStart, 0, b"\0")?;
    Ok(std::str::from_utf8(r.strip_suffix(b"\0").unwrap()).unwrap().parse().unwrap())
}

pub fn tx_end(store: &mut Store, c: &mut Conn, tx: u32, commit: bool) -> Result<Vec<u8>, XsError> {
    req(store, c, MsgType::TransactionEnd, tx, if commit { b"T\0" } else { b"F\0" })
}
