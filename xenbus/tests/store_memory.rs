//! The store's per-domain memory quota (the XSA-326 class): within the count quotas a
//! domain could make dom0 allocate megabytes; the byte quota refuses it with `ENOMEM`,
//! other domains and dom0 keep being served, and everything is given back.
mod common;
use common::*;
use hypercall_abi::DomId;
use xenbus::store::{Quotas, Store, DEFAULT_QUOTA_MEMORY};
use xenbus::wire::{MsgType, XsError};

/// Slack over the quota a single request may leave (the reply to the request that was
/// refused, and the overhead estimates of one operation).
const SLACK: usize = 8 * 1024;

fn assert_within_quota(st: &Store, d: u16) {
    let used = st.memory_of(DomId(d));
    assert!(used <= DEFAULT_QUOTA_MEMORY + SLACK, "domain {d} holds {used} bytes, quota {DEFAULT_QUOTA_MEMORY}");
}

#[test]
fn big_values_stop_at_the_memory_quota_and_come_back_when_removed() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    let mut g = dom(&mut st, 4);
    let mut other = dom(&mut st, 5);
    let before = st.memory_of(DomId(4));
    let mut refused = None;
    for i in 0..1000 {
        match write(&mut st, &mut g, &format!("big/{i}"), &[b'v'; 2048]) {
            Ok(_) => {}
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    let (n, e) = refused.expect("the quota stops the flood");
    assert_eq!(e, XsError::ENOMEM);
    assert!(n > 50 && n < 200, "about quota / 2 KiB values: {n}");
    assert_within_quota(&st, 4);
    // Others are served; the flooder can still read and remove.
    write(&mut st, &mut other, "fine", b"yes").unwrap();
    assert_eq!(read(&mut st, &mut g, "big/0"), Ok(vec![b'v'; 2048]));
    write(&mut st, &mut d0, "/tool/x", &[b'd'; 2048]).unwrap();
    req(&mut st, &mut g, MsgType::Rm, 0, &s("big")).unwrap();
    assert_eq!(st.memory_of(DomId(4)), before, "every byte given back");
    write(&mut st, &mut g, "big/again", &[b'v'; 2048]).unwrap();
}

#[test]
fn transactions_holding_long_paths_stop_at_the_memory_quota() {
    let mut st = Store::new();
    let mut g = dom(&mut st, 4);
    let long = "component/".repeat(200);
    let mut txs = Vec::new();
    let mut enomem = 0;
    for _ in 0..10 {
        let tx = match tx_start(&mut st, &mut g) {
            Ok(tx) => tx,
            Err(e) => {
                assert_eq!(e, XsError::ENOMEM);
                enomem += 1;
                continue;
            }
        };
        txs.push(tx);
        for i in 0..1024 {
            let p = format!("{long}{i}");
            match req(&mut st, &mut g, MsgType::Read, tx, &s(&p)) {
                Err(XsError::ENOENT) => {}
                Err(XsError::ENOMEM) => {
                    enomem += 1;
                    break;
                }
                other => panic!("read {i}: {other:?}"),
            }
        }
        assert_within_quota(&st, 4);
    }
    assert!(enomem >= 9, "every transaction after the first hits the quota: {enomem}");
    for tx in txs {
        tx_end(&mut st, &mut g, tx, false).unwrap();
    }
    assert!(st.memory_of(DomId(4)) < 4096, "the transactions' memory is given back");
}

#[test]
fn watches_with_big_tokens_stop_at_the_memory_quota() {
    let mut st = Store::new();
    let mut g = dom(&mut st, 4);
    let token = "t".repeat(4000);
    let mut refused = false;
    for i in 0..128 {
        match watch(&mut st, &mut g, &format!("w{i}"), &token) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e, XsError::ENOMEM, "watch {i}");
                refused = true;
                break;
            }
        }
        let _ = events(&mut st, &g);
    }
    assert!(refused);
    assert_within_quota(&st, 4);
    req(&mut st, &mut g, MsgType::ResetWatches, 0, b"\0").unwrap();
    assert!(st.memory_of(DomId(4)) < 4096);
}

#[test]
fn unread_events_are_dropped_at_the_memory_quota() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    let mut g = dom(&mut st, 4);
    let token = "t".repeat(3000);
    for i in 0..40 {
        watch(&mut st, &mut g, &format!("x{i}"), &token).unwrap();
    }
    let _ = events(&mut st, &g);
    for round in 0..20 {
        for i in 0..40 {
            write(&mut st, &mut d0, &format!("/local/domain/4/x{i}"), format!("{round}").as_bytes()).unwrap();
        }
    }
    assert_within_quota(&st, 4);
    assert!(st.dropped_events(g.id) > 0);
}

#[test]
fn short_of_memory_refuses_guests_and_serves_dom0() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    let mut g = dom(&mut st, 4);
    st.set_memory_low(true);
    assert_eq!(write(&mut st, &mut g, "x", b"1"), Err(XsError::ENOMEM));
    assert_eq!(watch(&mut st, &mut g, "x", "t"), Err(XsError::ENOMEM));
    assert_eq!(tx_start(&mut st, &mut g), Err(XsError::ENOMEM));
    write(&mut st, &mut d0, "/local/domain/4/x", b"1").unwrap();
    assert_eq!(read(&mut st, &mut g, "x"), Ok(b"1".to_vec()), "reads need no memory");
    st.set_memory_low(false);
    write(&mut st, &mut g, "x", b"2").unwrap();
}

#[test]
fn a_domain_quota_can_be_set_per_domain() {
    let mut st = Store::new();
    let mut g = dom(&mut st, 4);
    st.set_quotas(DomId(4), Quotas { memory: 2048, ..Quotas::default() });
    assert_eq!(write(&mut st, &mut g, "v", &[b'x'; 2000]), Err(XsError::ENOMEM));
    assert_eq!(read(&mut st, &mut g, "v"), Err(XsError::ENOENT), "nothing half-created");
    write(&mut st, &mut g, "v", &[b'x'; 100]).unwrap();
}
