//! store-test: the store service's test guest. It talks to dom0's store over its store
//! ring and event channel (`pv_guest::xenbus`) and prints `TEST name PASS|FAIL` lines.
//!
//! The command line picks the part it plays:
//! - `a` (the default): its own home (GET_DOMAIN_PATH, write, read back, relative paths);
//!   a watch on `/` (prints `store-test: waiting for peer`, then waits until dom0 writes
//!   the peer's domid to `<home>/peer`: everything the watch saw must be its own); reads
//!   and writes into the peer's home (`EACCES`); the node quota (the write past it
//!   refused with `ENOSPC`, exactly at the quota); a conflicting transaction (`EAGAIN`),
//!   then one retried until it commits. Then it idles until destroyed.
//! - `b`: its own home, `store-test: ready`, then it watches `<home>/exit`; when dom0
//!   writes a number of milliseconds there, it sleeps that long and powers off.
//! - `solo`: its own home, the quota and the transactions, then powers off.
//! - `garbage`: one good request, then an impossible `req_prod` in its ring and events on
//!   the store channel; prints `store-test: garbage written` and idles.
//! - `bench`: median cycles (of 1001) of an event round trip through dom0's store service
//!   (an event on the store channel with no request: dom0 answers with an event), an
//!   `XS_READ` and an `XS_WRITE`, as `BENCH` lines, then `BENCH DONE`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use pv_guest::testing::{ensure, Tests};
use pv_guest::time::{self, rdtsc};
use pv_guest::xenbus::{self as store, StoreClient, StoreDoorbell};
use pv_guest::{events, println, start_info, StartInfo};
use xenbus::client::{ClientError, TxId};
use xenbus::ring::xenstore::REQ_PROD;
use xenbus::ring::SharedMem;
use xenbus::wire::XsError;

/// Xen's default node quota per domain.
const QUOTA_NODES: usize = 1000;
/// Round trips timed per figure.
const BENCH_ROUNDS: usize = 1001;

fn err(e: ClientError) -> String {
    match e {
        ClientError::Store(x) => String::from(x.name()),
        other => format!("{other:?}"),
    }
}

/// The domain's id and home, from its `domid` node and GET_DOMAIN_PATH.
fn home(c: &mut StoreClient, t: &mut Tests) -> Option<(u16, String)> {
    let got = (|| {
        let id = c.read(TxId::NONE, "domid").map_err(err)?;
        let id: u16 = core::str::from_utf8(&id).ok().and_then(|s| s.parse().ok()).ok_or("domid is not a number")?;
        let path = c.get_domain_path(hypercall_abi_domid(id)).map_err(err)?;
        Ok::<_, String>((id, path))
    })();
    match got {
        Ok((id, path)) => {
            let want = format!("/local/domain/{id}");
            let name = c.read(TxId::NONE, "name").map(|n| String::from_utf8_lossy(&n).into_owned());
            println!("store-test: domid {id} home {path} name {}", name.as_deref().unwrap_or("?"));
            t.report("domain-path", ensure(path == want, || format!("{path} != {want}")));
            Some((id, path))
        }
        Err(why) => {
            t.report("domain-path", Err(why));
            None
        }
    }
}

fn hypercall_abi_domid(id: u16) -> pv_guest::hypercall_abi::types::DomId {
    pv_guest::hypercall_abi::types::DomId(id)
}

/// Writes under the home and reads back, absolute and relative.
fn own_nodes(c: &mut StoreClient, t: &mut Tests, home: &str) {
    let value = format!("value of {home}");
    let r = (|| {
        c.write(TxId::NONE, &format!("{home}/data/x"), value.as_bytes()).map_err(err)?;
        let back = c.read(TxId::NONE, &format!("{home}/data/x")).map_err(err)?;
        ensure(back == value.as_bytes(), || String::from("read back differs"))?;
        let rel = c.read(TxId::NONE, "data/x").map_err(err)?;
        ensure(rel == value.as_bytes(), || String::from("relative read differs"))
    })();
    t.report("home-write-read", r);
}

/// Every node at and under `path` (counted with XS_DIRECTORY).
fn count_nodes(c: &mut StoreClient, path: &str) -> Result<usize, ClientError> {
    let mut n = 0;
    let mut todo = Vec::from([String::from(path)]);
    while let Some(p) = todo.pop() {
        n += 1;
        for child in c.directory(TxId::NONE, &p)? {
            todo.push(format!("{p}/{child}"));
        }
    }
    Ok(n)
}

fn quota(c: &mut StoreClient, t: &mut Tests, home: &str) {
    let before = match count_nodes(c, home) {
        Ok(n) => n,
        Err(e) => return t.report("quota-nodes", Err(err(e))),
    };
    let mut written = 0;
    let refusal = loop {
        match c.write(TxId::NONE, &format!("{home}/q/{written}"), b"x") {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        if written > QUOTA_NODES {
            break ClientError::Protocol;
        }
    };
    // `q` itself and the nodes written.
    let owned = before + 1 + written;
    println!("store-test: quota: {owned} nodes owned, the next write got {}", err(refusal));
    t.report(
        "quota-nodes",
        ensure(refusal == ClientError::Store(XsError::ENOSPC) && owned == QUOTA_NODES, || {
            format!("{owned} nodes, then {}", err(refusal))
        }),
    );
    let again = c.write(TxId::NONE, &format!("{home}/q/extra"), b"x");
    let rewrite = c.write(TxId::NONE, &format!("{home}/q/0"), b"y");
    t.report(
        "quota-plus-one-refused",
        ensure(again == Err(ClientError::Store(XsError::ENOSPC)) && rewrite.is_ok(), || {
            format!("new node: {again:?}, rewrite: {rewrite:?}")
        }),
    );
    let freed = c.rm(TxId::NONE, &format!("{home}/q")).and_then(|()| c.write(TxId::NONE, &format!("{home}/q2"), b"x"));
    t.report("quota-freed-by-rm", freed.map_err(err));
}

fn transactions(c: &mut StoreClient, t: &mut Tests, home: &str) {
    let node = format!("{home}/tx");
    let r = (|| {
        c.write(TxId::NONE, &node, b"0").map_err(err)?;
        let tx = c.transaction_start().map_err(err)?;
        c.read(tx, &node).map_err(err)?;
        c.write(TxId::NONE, &node, b"outside").map_err(err)?;
        c.write(tx, &node, b"inside").map_err(err)?;
        let end = c.transaction_end(tx, true);
        ensure(end == Err(ClientError::Store(XsError::EAGAIN)), || format!("commit gave {end:?}"))?;
        let v = c.read(TxId::NONE, &node).map_err(err)?;
        ensure(v == b"outside", || String::from("the conflicting transaction's write landed"))
    })();
    t.report("transaction-conflict-eagain", r);
    let mut attempts = 0;
    let r = c.transaction(|c, tx| {
        attempts += 1;
        let mut v = c.read(tx, &node)?;
        if attempts == 1 {
            // Someone else changes the node under the first attempt: its commit conflicts.
            c.write(TxId::NONE, &node, b"changed")?;
        }
        v.push(b'!');
        c.write(tx, &node, &v)
    });
    let v = c.read(TxId::NONE, &node);
    t.report(
        "transaction-retry-commits",
        ensure(r.is_ok() && attempts == 2 && v.as_deref() == Ok(b"changed!".as_slice()), || {
            format!("{r:?} after {attempts} attempts, value {v:?}")
        }),
    );
}

/// The watch on `/` sees only what this domain may read; dom0's write of `<home>/peer`
/// arrives through it.
fn watch_and_peer(c: &mut StoreClient, t: &mut Tests, home: &str) -> Option<u16> {
    if let Err(e) = c.watch("/", "root") {
        t.report("watch-root-initial", Err(err(e)));
        return None;
    }
    let first = c.wait_event();
    t.report(
        "watch-root-initial",
        ensure(first.as_ref().is_ok_and(|e| e.path == "/" && e.token == "root"), || format!("{first:?}")),
    );
    println!("store-test: waiting for peer");
    let peer_node = format!("{home}/peer");
    let mut seen = Vec::new();
    loop {
        match c.wait_event() {
            Ok(e) => {
                let done = e.path == peer_node;
                seen.push(e.path);
                if done {
                    break;
                }
            }
            Err(e) => {
                t.report("watch-sees-dom0-write", Err(err(e)));
                return None;
            }
        }
    }
    let foreign: Vec<&String> = seen.iter().filter(|p| *p != "/" && !p.starts_with(home)).collect();
    println!("store-test: watch on / saw {} events, {} outside my home", seen.len(), foreign.len());
    t.report("watch-root-no-foreign-node", ensure(foreign.is_empty(), || format!("saw {foreign:?}")));
    let peer = c.read(TxId::NONE, &peer_node).ok().and_then(|v| core::str::from_utf8(&v).ok()?.trim().parse::<u16>().ok());
    t.report("watch-sees-dom0-write", ensure(peer.is_some(), || String::from("peer is not a domid")));
    let _ = c.unwatch("/", "root");
    peer
}

fn foreign(c: &mut StoreClient, t: &mut Tests, peer: u16) {
    let peer_home = format!("/local/domain/{peer}");
    let r = c.read(TxId::NONE, &format!("{peer_home}/name"));
    println!("store-test: read {peer_home}/name: {}", r.as_ref().map(|_| String::from("ok")).unwrap_or_else(|e| err(*e)));
    t.report("foreign-read-eacces", ensure(r == Err(ClientError::Store(XsError::EACCES)), || format!("{r:?}")));
    let w = c.write(TxId::NONE, &format!("{peer_home}/intruder"), b"x");
    t.report("foreign-write-eacces", ensure(w == Err(ClientError::Store(XsError::EACCES)), || format!("{w:?}")));
    let d = c.directory(TxId::NONE, &peer_home);
    t.report("foreign-directory-eacces", ensure(d == Err(ClientError::Store(XsError::EACCES)), || format!("{d:?}")));
}

/// Sleeps until an event arrives (the domain is about to be destroyed).
fn idle() -> ! {
    loop {
        let _ = time::block();
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn bench(si: &StartInfo, c: &mut StoreClient, home: &str) {
    // The event round trip: a bare event on the store channel; dom0's service finds no
    // request and answers with an event (see docs/architecture.md). A doorbell of our own
    // on the same port; the client's is idle meanwhile.
    let bell = StoreDoorbell::new(si);
    let node = format!("{home}/bench");
    let _ = c.write(TxId::NONE, &node, b"0123456789");
    let (mut ping, mut reads, mut writes) = (Vec::new(), Vec::new(), Vec::new());
    let mut unanswered = 0;
    // Interleaved, so that a slow stretch of the host weighs on the three figures alike.
    for _ in 0..BENCH_ROUNDS {
        // dom0 does not answer the event a guest sends after reading a reply (it says
        // "room freed"): if ours merged with that one, it goes unanswered. Time out,
        // count it and ring again.
        let _ = time::sleep_ns(100_000);
        loop {
            events::clear_pending(bell.port());
            let t0 = rdtsc();
            bell.ring();
            let deadline = time::now_ns() + 5_000_000;
            while !events::is_pending(bell.port()) && time::now_ns() < deadline {
                let _ = events::poll(&[bell.port()], deadline);
            }
            if events::is_pending(bell.port()) {
                events::clear_pending(bell.port());
                ping.push(rdtsc() - t0);
                break;
            }
            unanswered += 1;
            if unanswered > BENCH_ROUNDS {
                println!("BENCH ERROR dom0 does not answer events on the store channel");
                return;
            }
        }
        let t0 = rdtsc();
        let _ = c.read(TxId::NONE, &node);
        reads.push(rdtsc() - t0);
        let t0 = rdtsc();
        let _ = c.write(TxId::NONE, &node, b"0123456789");
        writes.push(rdtsc() - t0);
    }
    let ping = median(ping);
    // Not `event_round_trip_2dom_poll`: that is the pingpong figure (two domUs), which
    // this boot does not measure; this one's other end is dom0's store service.
    println!("store-test: {unanswered} events merged with a \"room freed\" one and rung again");
    println!("BENCH event_round_trip_dom0_poll {ping} cycles");
    println!("BENCH store_read {} cycles event_round_trip_dom0_poll {ping}", median(reads));
    println!("BENCH store_write {} cycles event_round_trip_dom0_poll {ping}", median(writes));
    println!("BENCH DONE");
}

fn garbage(si: &StartInfo) {
    let Ok(mut page) = store::store_page(si) else { return };
    let prod = page.read_u32(REQ_PROD);
    page.write_u32(REQ_PROD, prod.wrapping_add(5000));
    let bell = StoreDoorbell::new(si);
    for _ in 0..3 {
        bell.ring();
        let _ = time::sleep_ns(20_000_000);
    }
    println!("store-test: garbage written");
}

fn main(si: &'static StartInfo) {
    let role = start_info::cmdline(si).split_whitespace().next().unwrap_or("a");
    let mut t = Tests::default();
    if let Err(e) = events::init(si).and_then(|()| time::init_timer().map(drop)) {
        println!("store-test: events: {e}");
        return;
    }
    let mut c = match store::connect(si) {
        Ok(c) => c,
        Err(e) => {
            t.report("connect", Err(format!("{e}")));
            return t.done();
        }
    };
    let Some((_, home)) = home(&mut c, &mut t) else { return t.done() };
    match role {
        "garbage" => {
            t.done();
            garbage(si);
            idle();
        }
        "bench" => return bench(si, &mut c, &home),
        _ => {}
    }
    own_nodes(&mut c, &mut t, &home);
    match role {
        "b" => {
            println!("store-test: ready");
            t.done();
            let exit = format!("{home}/exit");
            if c.watch(&exit, "exit").is_err() {
                idle();
            }
            loop {
                let _ = c.wait_event();
                if let Ok(v) = c.read(TxId::NONE, &exit) {
                    let ms: u64 = core::str::from_utf8(&v).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
                    println!("store-test: exiting in {ms} ms");
                    let _ = time::sleep_ns(ms * 1_000_000);
                    return;
                }
            }
        }
        "solo" => {
            quota(&mut c, &mut t, &home);
            transactions(&mut c, &mut t, &home);
            t.done();
        }
        _ => {
            let peer = watch_and_peer(&mut c, &mut t, &home);
            if let Some(peer) = peer {
                foreign(&mut c, &mut t, peer);
            }
            quota(&mut c, &mut t, &home);
            transactions(&mut c, &mut t, &home);
            t.done();
            idle();
        }
    }
}

pv_guest::entry!(main);
