//! Store semantics: watches (who sees what) and transactions (commit, EAGAIN, quota).

mod common;
use common::*;
use hypercall_abi::DomId;
use xenbus::path::Perms;
use xenbus::store::{Store, DEFAULT_QUOTA_TRANSACTIONS};
use xenbus::wire::{join_nul, MsgType, XsError};

fn ev(p: &str, t: &str) -> (String, String) {
    (p.to_string(), t.to_string())
}

#[test]
fn watch_fires_once_on_registration_and_on_path_and_descendants() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    watch(&mut st, &mut d0, "/a", "tok").unwrap();
    assert_eq!(events(&mut st, &d0), vec![ev("/a", "tok")]);
    write(&mut st, &mut d0, "/a", b"1").unwrap();
    write(&mut st, &mut d0, "/a/b/c", b"1").unwrap();
    write(&mut st, &mut d0, "/ab", b"1").unwrap(); // not under /a
    write(&mut st, &mut d0, "/", b"1").unwrap(); // a parent: does not fire
    assert_eq!(events(&mut st, &d0), vec![ev("/a", "tok"), ev("/a/b/c", "tok")]);
    req(&mut st, &mut d0, MsgType::Unwatch, 0, &join_nul(&[b"/a", b"tok"])).unwrap();
    assert_eq!(req(&mut st, &mut d0, MsgType::Unwatch, 0, &join_nul(&[b"/a", b"tok"])), Err(XsError::ENOENT));
    write(&mut st, &mut d0, "/a", b"2").unwrap();
    assert!(events(&mut st, &d0).is_empty());
}

#[test]
fn rm_fires_for_node_ancestors_and_removed_descendants() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    write(&mut st, &mut d0, "/a/b/c", b"1").unwrap();
    watch(&mut st, &mut d0, "/a/b/c", "child").unwrap();
    watch(&mut st, &mut d0, "/a", "anc").unwrap();
    watch(&mut st, &mut d0, "/a/b/c/d", "missing").unwrap();
    events(&mut st, &d0);
    req(&mut st, &mut d0, MsgType::Rm, 0, &s("/a/b")).unwrap();
    let mut got = events(&mut st, &d0);
    got.sort();
    assert_eq!(got, vec![ev("/a/b", "anc"), ev("/a/b/c", "child")]);
}

#[test]
fn unprivileged_watch_on_root_sees_only_readable_nodes() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    let mut g1 = dom(&mut st, 1);
    let mut g2 = dom(&mut st, 2);
    watch(&mut st, &mut g2, "/", "all").unwrap();
    assert_eq!(events(&mut st, &g2), vec![ev("/", "all")]);
    write(&mut st, &mut g1, "secret", b"x").unwrap();
    write(&mut st, &mut d0, "/tool/x", b"x").unwrap();
    req(&mut st, &mut g1, MsgType::Rm, 0, &s("secret")).unwrap();
    assert!(events(&mut st, &g2).is_empty(), "nothing of domain 1 or dom0 leaks");
    write(&mut st, &mut g1, "public", b"x").unwrap();
    set_perms(&mut st, &mut g1, "public", &["n1", "r2"]).unwrap();
    write(&mut st, &mut g1, "public", b"y").unwrap();
    write(&mut st, &mut g2, "mine", b"y").unwrap();
    assert_eq!(
        events(&mut st, &g2),
        vec![ev("/local/domain/1/public", "all"), ev("/local/domain/1/public", "all"), ev("/local/domain/2/mine", "all")]
    );
}

#[test]
fn relative_watches_report_relative_paths() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    let mut g = dom(&mut st, 3);
    watch(&mut st, &mut g, "device", "dev").unwrap();
    write(&mut st, &mut d0, "/local/domain/3/device/vbd/0/state", b"1").unwrap();
    assert_eq!(events(&mut st, &g), vec![ev("device", "dev"), ev("device/vbd/0/state", "dev")]);
}

#[test]
fn introduce_and_release_events_reach_permitted_watchers_only() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    let mut g = dom(&mut st, 3);
    watch(&mut st, &mut d0, "@introduceDomain", "in").unwrap();
    watch(&mut st, &mut d0, "@releaseDomain", "out").unwrap();
    watch(&mut st, &mut g, "@releaseDomain", "g-out").unwrap();
    assert_eq!(events(&mut st, &g), vec![ev("@releaseDomain", "g-out")]);
    events(&mut st, &d0);
    st.introduce_domain(DomId(7));
    st.introduce_domain(DomId(7)); // already there: no second event
    assert!(st.release_domain(DomId(7)));
    assert!(!st.release_domain(DomId(7)));
    assert_eq!(events(&mut st, &d0), vec![ev("@introduceDomain", "in"), ev("@releaseDomain", "out")]);
    assert!(events(&mut st, &g).is_empty(), "special events are dom0's by default");
    st.set_special_perms("@releaseDomain", Perms::parse(&["r0"]).unwrap()).unwrap();
    st.introduce_domain(DomId(8));
    st.release_domain(DomId(8));
    assert_eq!(events(&mut st, &g), vec![ev("@releaseDomain", "g-out")]);
    assert_eq!(st.set_special_perms("/x", Perms::parse(&["r0"]).unwrap()), Err(XsError::EINVAL));
}

#[test]
fn transaction_commits_and_is_isolated_until_then() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    let mut g = dom(&mut st, 3);
    watch(&mut st, &mut d0, "/local/domain/3", "w").unwrap();
    events(&mut st, &d0);
    let tx = tx_start(&mut st, &mut g).unwrap();
    write_tx(&mut st, &mut g, tx, "a/b", b"1").unwrap();
    assert_eq!(req(&mut st, &mut g, MsgType::Read, tx, &s("a/b")), Ok(b"1".to_vec()));
    assert_eq!(read(&mut st, &mut g, "a/b"), Err(XsError::ENOENT), "invisible outside");
    assert!(events(&mut st, &d0).is_empty(), "no events before commit");
    assert_eq!(tx_end(&mut st, &mut g, tx, true), Ok(b"OK\0".to_vec()));
    assert_eq!(read(&mut st, &mut g, "a/b"), Ok(b"1".to_vec()));
    assert_eq!(events(&mut st, &d0), vec![ev("/local/domain/3/a/b", "w")]);
    assert_eq!(st.nodes_owned(DomId(3)), 3);
    // The id is gone.
    assert_eq!(tx_end(&mut st, &mut g, tx, true), Err(XsError::ENOENT));
    assert_eq!(req(&mut st, &mut g, MsgType::Read, tx, &s("a/b")), Err(XsError::ENOENT));
}

#[test]
fn transaction_abort_discards() {
    let mut st = Store::new();
    let mut g = dom(&mut st, 3);
    let tx = tx_start(&mut st, &mut g).unwrap();
    write_tx(&mut st, &mut g, tx, "x", b"1").unwrap();
    req(&mut st, &mut g, MsgType::Rm, tx, &s("/local/domain/3")).unwrap();
    assert_eq!(tx_end(&mut st, &mut g, tx, false), Ok(b"OK\0".to_vec()));
    assert_eq!(read(&mut st, &mut g, "x"), Err(XsError::ENOENT));
    assert_eq!(read(&mut st, &mut g, "/local/domain/3"), Ok(Vec::new()));
}

#[test]
fn conflicting_transaction_fails_with_eagain() {
    let mut st = Store::new();
    let mut g = dom(&mut st, 3);
    let mut d0 = dom(&mut st, 0);
    write(&mut st, &mut g, "counter", b"1").unwrap();
    let tx = tx_start(&mut st, &mut g).unwrap();
    assert_eq!(req(&mut st, &mut g, MsgType::Read, tx, &s("counter")), Ok(b"1".to_vec()));
    write_tx(&mut st, &mut g, tx, "counter", b"2").unwrap();
    write(&mut st, &mut d0, "/local/domain/3/counter", b"10").unwrap();
    assert_eq!(tx_end(&mut st, &mut g, tx, true), Err(XsError::EAGAIN));
    assert_eq!(read(&mut st, &mut g, "counter"), Ok(b"10".to_vec()));
    // A change to an unrelated node does not conflict.
    let tx = tx_start(&mut st, &mut g).unwrap();
    write_tx(&mut st, &mut g, tx, "counter", b"11").unwrap();
    write(&mut st, &mut d0, "/elsewhere", b"x").unwrap();
    assert_eq!(tx_end(&mut st, &mut g, tx, true), Ok(b"OK\0".to_vec()));
    assert_eq!(read(&mut st, &mut g, "counter"), Ok(b"11".to_vec()));
    // Two transactions creating the same node: the second loses.
    let t1 = tx_start(&mut st, &mut g).unwrap();
    let t2 = tx_start(&mut st, &mut g).unwrap();
    write_tx(&mut st, &mut g, t1, "new", b"1").unwrap();
    write_tx(&mut st, &mut g, t2, "new", b"2").unwrap();
    assert_eq!(tx_end(&mut st, &mut g, t1, true), Ok(b"OK\0".to_vec()));
    assert_eq!(tx_end(&mut st, &mut g, t2, true), Err(XsError::EAGAIN));
    assert_eq!(read(&mut st, &mut g, "new"), Ok(b"1".to_vec()));
}

#[test]
fn transaction_quota_refuses_one_more_and_closes_on_release() {
    let mut st = Store::new();
    let mut g = dom(&mut st, 3);
    let ids: Vec<u32> = (0..DEFAULT_QUOTA_TRANSACTIONS).map(|_| tx_start(&mut st, &mut g).unwrap()).collect();
    assert_eq!(tx_start(&mut st, &mut g), Err(XsError::ENOSPC));
    tx_end(&mut st, &mut g, ids[0], false).unwrap();
    assert!(tx_start(&mut st, &mut g).is_ok());
    assert_eq!(req(&mut st, &mut g, MsgType::TransactionEnd, 0, b"T\0"), Err(XsError::ENOENT));
    assert_eq!(req(&mut st, &mut g, MsgType::TransactionEnd, ids[1], b"X\0"), Err(XsError::EINVAL));
    assert_eq!(req(&mut st, &mut g, MsgType::Read, 4242, &s("x")), Err(XsError::ENOENT));
}

#[test]
fn transaction_node_quota_bounds_a_transaction() {
    let mut st = Store::new();
    let mut g = dom(&mut st, 3);
    st.set_quotas(DomId(3), xenbus::store::Quotas { transaction_nodes: 10, ..Default::default() });
    let tx = tx_start(&mut st, &mut g).unwrap();
    let mut refused = false;
    for i in 0..20 {
        if write_tx(&mut st, &mut g, tx, &format!("n{i}"), b"") == Err(XsError::ENOSPC) {
            refused = true;
            break;
        }
    }
    assert!(refused);
}

#[test]
fn transactions_belong_to_their_connection_and_die_with_it() {
    let mut st = Store::new();
    let mut g1 = dom(&mut st, 1);
    let mut g2 = dom(&mut st, 2);
    let tx = tx_start(&mut st, &mut g1).unwrap();
    write_tx(&mut st, &mut g1, tx, "x", b"1").unwrap();
    // Another domain cannot use or end it, even with the right number.
    assert_eq!(req(&mut st, &mut g2, MsgType::Read, tx, &s("/local/domain/1/x")), Err(XsError::ENOENT));
    assert_eq!(tx_end(&mut st, &mut g2, tx, true), Err(XsError::ENOENT));
    // Released: the transaction and its writes are gone; a new incarnation starts clean.
    assert!(st.release_domain(DomId(1)));
    let mut g1 = dom(&mut st, 1);
    assert_eq!(tx_end(&mut st, &mut g1, tx, true), Err(XsError::ENOENT));
    assert_eq!(read(&mut st, &mut g1, "x"), Err(XsError::ENOENT));
}

#[test]
fn transaction_sees_its_own_removals_and_commits_them() {
    let mut st = Store::new();
    let mut g = dom(&mut st, 1);
    write(&mut st, &mut g, "a/b/c", b"1").unwrap();
    let tx = tx_start(&mut st, &mut g).unwrap();
    req(&mut st, &mut g, MsgType::Rm, tx, &s("a")).unwrap();
    assert_eq!(req(&mut st, &mut g, MsgType::Read, tx, &s("a/b/c")), Err(XsError::ENOENT));
    assert_eq!(read(&mut st, &mut g, "a/b/c"), Ok(b"1".to_vec()));
    tx_end(&mut st, &mut g, tx, true).unwrap();
    assert_eq!(read(&mut st, &mut g, "a"), Err(XsError::ENOENT));
    assert_eq!(st.nodes_owned(DomId(1)), 1);
}

#[test]
fn node_quota_is_checked_again_at_commit() {
    let mut st = Store::new();
    let mut g = dom(&mut st, 1);
    write(&mut st, &mut g, "p", b"").unwrap();
    write(&mut st, &mut g, "q", b"").unwrap();
    st.set_quotas(DomId(1), xenbus::store::Quotas { nodes: 5, ..Default::default() });
    // Home, p and q are three nodes; two transactions each add two under different
    // parents, so they do not conflict, and each fits the quota alone.
    let t1 = tx_start(&mut st, &mut g).unwrap();
    let t2 = tx_start(&mut st, &mut g).unwrap();
    write_tx(&mut st, &mut g, t1, "p/a", b"").unwrap();
    write_tx(&mut st, &mut g, t1, "p/b", b"").unwrap();
    write_tx(&mut st, &mut g, t2, "q/c", b"").unwrap();
    write_tx(&mut st, &mut g, t2, "q/d", b"").unwrap();
    assert_eq!(tx_end(&mut st, &mut g, t1, true), Ok(b"OK\0".to_vec()));
    assert_eq!(tx_end(&mut st, &mut g, t2, true), Err(XsError::ENOSPC));
    assert_eq!(st.nodes_owned(DomId(1)), 5);
    assert_eq!(read(&mut st, &mut g, "q/c"), Err(XsError::ENOENT));
}

#[test]
fn a_toolstack_can_ask_whether_a_guest_watches_a_node() {
    let mut st = Store::new();
    let mut g = dom(&mut st, 5);
    let node = "/local/domain/5/control/shutdown";
    assert!(!st.is_watched_by(DomId(5), node), "no watch yet");
    watch(&mut st, &mut g, "control/shutdown", "tok").unwrap();
    assert!(st.is_watched_by(DomId(5), node), "a relative watch on the node");
    assert!(!st.is_watched_by(DomId(5), "/local/domain/5/control"), "not a parent");
    assert!(!st.is_watched_by(DomId(6), node), "another domain");
    req(&mut st, &mut g, MsgType::Unwatch, 0, &join_nul(&[b"control/shutdown", b"tok"])).unwrap();
    watch(&mut st, &mut g, "control", "t2").unwrap();
    assert!(st.is_watched_by(DomId(5), node), "a watch on an ancestor fires for it too");
}
