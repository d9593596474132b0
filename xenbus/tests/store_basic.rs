//! Store semantics: paths, permissions, quotas, hostile requests.

mod common;
use common::*;
use hypercall_abi::DomId;
use xenbus::store::{HandleError, Quotas, Store, DEFAULT_QUOTA_NODES, DEFAULT_QUOTA_OUTSTANDING, DEFAULT_QUOTA_WATCHES};
use xenbus::wire::{join_nul, Header, Message, MsgType, WireError, XsError, HEADER_SIZE, PAYLOAD_MAX};

#[test]
fn write_read_directory_rm() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    assert_eq!(write(&mut st, &mut d0, "/a/b/c", b"v1"), Ok(b"OK\0".to_vec()));
    assert_eq!(read(&mut st, &mut d0, "/a/b/c"), Ok(b"v1".to_vec()));
    assert_eq!(read(&mut st, &mut d0, "/a/b"), Ok(Vec::new()));
    assert_eq!(req(&mut st, &mut d0, MsgType::Directory, 0, &s("/a")), Ok(b"b\0".to_vec()));
    write(&mut st, &mut d0, "/a/x", b"").unwrap();
    assert_eq!(req(&mut st, &mut d0, MsgType::Directory, 0, &s("/a")), Ok(b"b\0x\0".to_vec()));
    assert_eq!(req(&mut st, &mut d0, MsgType::Rm, 0, &s("/a/b")), Ok(b"OK\0".to_vec()));
    assert_eq!(read(&mut st, &mut d0, "/a/b/c"), Err(XsError::ENOENT));
    // Removing a missing node whose parent exists is fine; one whose parent is missing is not.
    assert_eq!(req(&mut st, &mut d0, MsgType::Rm, 0, &s("/a/b")), Ok(b"OK\0".to_vec()));
    assert_eq!(req(&mut st, &mut d0, MsgType::Rm, 0, &s("/a/b/c/d")), Err(XsError::ENOENT));
    assert_eq!(req(&mut st, &mut d0, MsgType::Rm, 0, &s("/")), Err(XsError::EINVAL));
    assert_eq!(req(&mut st, &mut d0, MsgType::Mkdir, 0, &s("/m/n")), Ok(b"OK\0".to_vec()));
    assert_eq!(req(&mut st, &mut d0, MsgType::Mkdir, 0, &s("/m/n")), Ok(b"OK\0".to_vec()));
    assert_eq!(read(&mut st, &mut d0, "/m/n"), Ok(Vec::new()));
}

#[test]
fn relative_paths_and_domain_path() {
    let mut st = Store::new();
    let mut g = dom(&mut st, 3);
    assert_eq!(write(&mut st, &mut g, "device/vif", b"x"), Ok(b"OK\0".to_vec()));
    let mut d0 = dom(&mut st, 0);
    assert_eq!(read(&mut st, &mut d0, "/local/domain/3/device/vif"), Ok(b"x".to_vec()));
    assert_eq!(req(&mut st, &mut g, MsgType::GetDomainPath, 0, &s("7")), Ok(b"/local/domain/7\0".to_vec()));
    assert_eq!(req(&mut st, &mut g, MsgType::GetDomainPath, 0, &s("x7")), Err(XsError::EINVAL));
    assert_eq!(req(&mut st, &mut g, MsgType::GetDomainPath, 0, &s("99999")), Err(XsError::EINVAL));
}

#[test]
fn bad_paths_are_einval() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    let long_abs = format!("/{}", "a".repeat(3072));
    let long_rel = "a".repeat(2049);
    for p in ["", "/a//b", "/a/", "/a b", "/a/\u{e9}", "@introduceDomain", "/a/.", "/a\\b", &long_abs, &long_rel] {
        assert_eq!(write(&mut st, &mut d0, p, b"v"), Err(XsError::EINVAL), "{p:?}");
        assert_eq!(read(&mut st, &mut d0, p), Err(XsError::EINVAL), "{p:?}");
    }
    // Longest legal paths work.
    let ok_abs = format!("/{}", "a".repeat(3071));
    assert_eq!(write(&mut st, &mut d0, &ok_abs, b"v"), Ok(b"OK\0".to_vec()));
    // Non-UTF-8 bytes in a path.
    let mut p = b"/a\xff".to_vec();
    p.push(0);
    assert_eq!(req(&mut st, &mut d0, MsgType::Read, 0, &p), Err(XsError::EINVAL));
}

#[test]
fn missing_nul_and_extra_args_are_einval() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    write(&mut st, &mut d0, "/a", b"v").unwrap();
    assert_eq!(req(&mut st, &mut d0, MsgType::Read, 0, b"/a"), Err(XsError::EINVAL));
    assert_eq!(req(&mut st, &mut d0, MsgType::Read, 0, b""), Err(XsError::EINVAL));
    assert_eq!(req(&mut st, &mut d0, MsgType::Read, 0, b"/a\0/b\0"), Err(XsError::EINVAL));
    assert_eq!(req(&mut st, &mut d0, MsgType::Write, 0, b"/a"), Err(XsError::EINVAL));
    assert_eq!(req(&mut st, &mut d0, MsgType::Watch, 0, b"/a\0tok"), Err(XsError::EINVAL));
    assert_eq!(req(&mut st, &mut d0, MsgType::Watch, 0, b"/a\0"), Err(XsError::EINVAL));
    assert_eq!(req(&mut st, &mut d0, MsgType::TransactionEnd, 0, b"T"), Err(XsError::EINVAL));
    assert_eq!(req(&mut st, &mut d0, MsgType::SetPerms, 0, b"/a\0"), Err(XsError::EINVAL));
    assert_eq!(req(&mut st, &mut d0, MsgType::SetPerms, 0, b"/a\0q1\0"), Err(XsError::EINVAL));
    assert_eq!(req(&mut st, &mut d0, MsgType::SetPerms, 0, b"/a\0r\0"), Err(XsError::EINVAL));
    assert_eq!(req(&mut st, &mut d0, MsgType::SetPerms, 0, b"/a\0r70000\0"), Err(XsError::EINVAL));
    assert_eq!(read(&mut st, &mut d0, "/a"), Ok(b"v".to_vec()), "nothing changed");
}

#[test]
fn unknown_types_get_enosys_and_replies_are_not_requests() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    let h = Header { msg_type: 999, req_id: 5, tx_id: 0, len: 0 };
    st.handle(d0.id, &h.to_bytes()).unwrap();
    let r = st.pop_output(d0.id).unwrap();
    assert_eq!(r.as_error(), Some(XsError::ENOSYS));
    assert_eq!(r.header.req_id, 5);
    for ty in [MsgType::WatchEvent, MsgType::Error, MsgType::Control, MsgType::SetTarget] {
        assert_eq!(req(&mut st, &mut d0, ty, 0, b"x\0"), Err(XsError::ENOSYS));
    }
}

#[test]
fn oversized_and_truncated_messages_are_wire_errors() {
    let mut st = Store::new();
    let d0 = dom(&mut st, 0);
    let h = Header { msg_type: MsgType::Read as u32, req_id: 1, tx_id: 0, len: PAYLOAD_MAX as u32 + 1 };
    let mut bytes = h.to_bytes().to_vec();
    bytes.resize(HEADER_SIZE + PAYLOAD_MAX + 1, b'a');
    assert_eq!(st.handle(d0.id, &bytes), Err(HandleError::Wire(WireError::Oversized(4097))));
    assert_eq!(st.handle(d0.id, &bytes[..10]), Err(HandleError::Wire(WireError::ShortHeader)));
    let h = Header { msg_type: 2, req_id: 1, tx_id: 0, len: 8 };
    assert_eq!(st.handle(d0.id, &h.to_bytes()), Err(HandleError::Wire(WireError::LengthMismatch)));
    assert!(st.pop_output(d0.id).is_none(), "no reply to garbage");
    // A full-size payload is fine (value quota does not apply to dom0).
    let mut payload = s("/big");
    payload.resize(PAYLOAD_MAX, b'v');
    let m = Message::new(MsgType::Write, 9, 0, payload);
    st.handle(d0.id, &m.to_bytes()).unwrap();
    assert_eq!(st.pop_output(d0.id).unwrap().payload, b"OK\0");
}

#[test]
fn permissions_owner_default_and_acl() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    let mut g1 = dom(&mut st, 1);
    let mut g2 = dom(&mut st, 2);
    write(&mut st, &mut g1, "data", b"secret").unwrap();
    // Another guest cannot read, write, list or remove domain 1's nodes.
    assert_eq!(read(&mut st, &mut g2, "/local/domain/1/data"), Err(XsError::EACCES));
    assert_eq!(write(&mut st, &mut g2, "/local/domain/1/data", b"x"), Err(XsError::EACCES));
    assert_eq!(write(&mut st, &mut g2, "/local/domain/1/new", b"x"), Err(XsError::EACCES));
    assert_eq!(req(&mut st, &mut g2, MsgType::Rm, 0, &s("/local/domain/1/data")), Err(XsError::EACCES));
    assert_eq!(req(&mut st, &mut g2, MsgType::Directory, 0, &s("/local/domain/1")), Err(XsError::EACCES));
    // Absence is not revealed through an unreadable parent.
    assert_eq!(read(&mut st, &mut g2, "/local/domain/1/nothing"), Err(XsError::EACCES));
    assert_eq!(read(&mut st, &mut g1, "nothing"), Err(XsError::ENOENT));
    // dom0 sees everything.
    assert_eq!(read(&mut st, &mut d0, "/local/domain/1/data"), Ok(b"secret".to_vec()));
    assert_eq!(req(&mut st, &mut g1, MsgType::GetPerms, 0, &s("data")), Ok(b"n1\0".to_vec()));
    // Grant read to domain 2, default stays none.
    set_perms(&mut st, &mut g1, "data", &["n1", "r2"]).unwrap();
    assert_eq!(read(&mut st, &mut g2, "/local/domain/1/data"), Ok(b"secret".to_vec()));
    assert_eq!(write(&mut st, &mut g2, "/local/domain/1/data", b"x"), Err(XsError::EACCES));
    // Default entry: everyone may read.
    set_perms(&mut st, &mut g1, "data", &["r1"]).unwrap();
    let mut g3 = dom(&mut st, 3);
    assert_eq!(read(&mut st, &mut g3, "/local/domain/1/data"), Ok(b"secret".to_vec()));
    // Only the owner sets permissions, and an unprivileged owner cannot give a node away.
    assert_eq!(set_perms(&mut st, &mut g2, "/local/domain/1/data", &["b2"]), Err(XsError::EACCES));
    assert_eq!(set_perms(&mut st, &mut g1, "data", &["b2"]), Err(XsError::EPERM));
    // dom0 can.
    set_perms(&mut st, &mut d0, "/local/domain/1/data", &["b2"]).unwrap();
    assert_eq!(write(&mut st, &mut g2, "/local/domain/1/data", b"mine"), Ok(b"OK\0".to_vec()));
    // Guests cannot touch dom0's tree.
    assert_eq!(write(&mut st, &mut g1, "/tool", b"x"), Err(XsError::EACCES));
    assert_eq!(read(&mut st, &mut g1, "/local"), Err(XsError::EACCES));
}

#[test]
fn new_nodes_inherit_parent_perms_with_creator_as_owner() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    let mut g5 = dom(&mut st, 5);
    // dom0 makes a backend directory domain 5 may write into (as the toolstack does).
    write(&mut st, &mut d0, "/shared/dir", b"").unwrap();
    set_perms(&mut st, &mut d0, "/shared/dir", &["n0", "b5", "r6"]).unwrap();
    write(&mut st, &mut g5, "/shared/dir/a/b", b"v").unwrap();
    assert_eq!(req(&mut st, &mut d0, MsgType::GetPerms, 0, &s("/shared/dir/a/b")), Ok(b"n5\0b5\0r6\0".to_vec()));
    assert_eq!(req(&mut st, &mut d0, MsgType::GetPerms, 0, &s("/shared/dir/a")), Ok(b"n5\0b5\0r6\0".to_vec()));
    let mut g6 = dom(&mut st, 6);
    assert_eq!(read(&mut st, &mut g6, "/shared/dir/a/b"), Ok(b"v".to_vec()));
    // dom0 creating keeps the inherited owner.
    write(&mut st, &mut d0, "/local/domain/5/by-dom0", b"").unwrap();
    assert_eq!(req(&mut st, &mut d0, MsgType::GetPerms, 0, &s("/local/domain/5/by-dom0")), Ok(b"n5\0".to_vec()));
    assert_eq!(st.nodes_owned(DomId(5)), 4, "home, a, a/b, by-dom0");
}

#[test]
fn node_quota_refuses_one_more() {
    let mut st = Store::new();
    let mut g = dom(&mut st, 4);
    // The home directory counts as one.
    for i in 1..DEFAULT_QUOTA_NODES {
        write(&mut st, &mut g, &format!("n{i}"), b"").unwrap();
    }
    assert_eq!(st.nodes_owned(DomId(4)), DEFAULT_QUOTA_NODES);
    assert_eq!(write(&mut st, &mut g, "one-more", b""), Err(XsError::ENOSPC));
    assert_eq!(req(&mut st, &mut g, MsgType::Mkdir, 0, &s("one-more")), Err(XsError::ENOSPC));
    // Rewriting an existing node is still fine, removing frees room.
    write(&mut st, &mut g, "n1", b"again").unwrap();
    req(&mut st, &mut g, MsgType::Rm, 0, &s("n1")).unwrap();
    assert_eq!(write(&mut st, &mut g, "one-more", b""), Ok(b"OK\0".to_vec()));
}

#[test]
fn value_size_quota_and_per_domain_override() {
    let mut st = Store::new();
    let mut g = dom(&mut st, 4);
    assert!(write(&mut st, &mut g, "v", &[b'x'; 2048]).is_ok());
    assert_eq!(write(&mut st, &mut g, "v", &[b'x'; 2049]), Err(XsError::ENOSPC));
    st.set_quotas(DomId(4), Quotas { entry_size: 10, nodes: 3, ..Quotas::default() });
    assert_eq!(write(&mut st, &mut g, "w", &[b'x'; 11]), Err(XsError::ENOSPC));
    assert!(write(&mut st, &mut g, "w", &[b'x'; 10]).is_ok());
    assert_eq!(write(&mut st, &mut g, "a/b", b""), Err(XsError::ENOSPC), "two new nodes, one left");
    assert_eq!(read(&mut st, &mut g, "a"), Err(XsError::ENOENT), "nothing half-created");
}

#[test]
fn watch_quota_refuses_one_more() {
    let mut st = Store::new();
    let mut g = dom(&mut st, 4);
    for i in 0..DEFAULT_QUOTA_WATCHES {
        watch(&mut st, &mut g, "w", &format!("t{i}")).unwrap();
    }
    assert_eq!(watch(&mut st, &mut g, "w", "extra"), Err(XsError::E2BIG));
    assert_eq!(watch(&mut st, &mut g, "w", "t0"), Err(XsError::EEXIST));
    req(&mut st, &mut g, MsgType::ResetWatches, 0, b"\0").unwrap();
    assert!(watch(&mut st, &mut g, "w", "extra").is_ok());
}

#[test]
fn guest_that_never_reads_replies_is_stalled_not_grown() {
    let mut st = Store::new();
    let g = dom(&mut st, 4);
    let m = Message::new(MsgType::Read, 1, 0, s("nothing"));
    for _ in 0..DEFAULT_QUOTA_OUTSTANDING {
        assert!(st.wants_input(g.id));
        st.handle(g.id, &m.to_bytes()).unwrap();
    }
    assert!(!st.wants_input(g.id));
    assert_eq!(st.handle(g.id, &m.to_bytes()), Err(HandleError::Busy));
    st.pop_output(g.id).unwrap();
    assert!(st.wants_input(g.id));
}

#[test]
fn watch_events_never_read_are_bounded_and_counted() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    let mut g = dom(&mut st, 4);
    st.set_quotas(DomId(4), Quotas { queued_events: 8, ..Quotas::default() });
    watch(&mut st, &mut g, "x", "t").unwrap();
    for i in 0..100 {
        write(&mut st, &mut d0, "/local/domain/4/x", format!("{i}").as_bytes()).unwrap();
    }
    // The initial event and 7 changes fill the queue of 8; the other 93 are dropped.
    let ev = events(&mut st, &g);
    assert_eq!(ev.len(), 8);
    assert_eq!(ev[0], ("x".to_string(), "t".to_string()));
    assert_eq!(st.dropped_events(g.id), 93);
}

#[test]
fn introduce_release_and_privileged_operations() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    let mut g = dom(&mut st, 4);
    assert_eq!(req(&mut st, &mut g, MsgType::IsDomainIntroduced, 0, &s("4")), Ok(b"T\0".to_vec()));
    assert_eq!(req(&mut st, &mut g, MsgType::IsDomainIntroduced, 0, &s("5")), Ok(b"F\0".to_vec()));
    let intro = join_nul(&[b"5", b"1234", b"7"]);
    assert_eq!(req(&mut st, &mut g, MsgType::Introduce, 0, &intro), Err(XsError::EACCES));
    assert_eq!(req(&mut st, &mut g, MsgType::Release, 0, &s("4")), Err(XsError::EACCES));
    assert_eq!(req(&mut st, &mut d0, MsgType::Introduce, 0, &intro), Ok(b"OK\0".to_vec()));
    assert_eq!(
        st.take_control_request(),
        Some(xenbus::store::ControlRequest::Introduce { domid: DomId(5), mfn: 1234, port: 7 })
    );
    assert_eq!(req(&mut st, &mut d0, MsgType::Introduce, 0, &join_nul(&[b"5", b"x", b"7"])), Err(XsError::EINVAL));
    assert_eq!(req(&mut st, &mut d0, MsgType::Release, 0, &s("4")), Ok(b"OK\0".to_vec()));
    assert_eq!(st.take_control_request(), Some(xenbus::store::ControlRequest::Release(DomId(4))));
    assert!(!st.is_introduced(DomId(4)));
    assert_eq!(req(&mut st, &mut d0, MsgType::Release, 0, &s("4")), Err(XsError::ENOENT));
    assert_eq!(st.handle(g.id, &Message::new(MsgType::Read, 1, 0, s("x")).to_bytes()), Err(HandleError::NoConnection));
}

#[test]
fn large_directory_needs_directory_part() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    let mut names = Vec::new();
    for i in 0..300 {
        let n = format!("child-with-a-long-name-{i:04}");
        req(&mut st, &mut d0, MsgType::Mkdir, 0, &s(&format!("/big/{n}"))).unwrap();
        names.push(n);
    }
    names.sort();
    assert_eq!(req(&mut st, &mut d0, MsgType::Directory, 0, &s("/big")), Err(XsError::E2BIG));
    let mut got: Vec<String> = Vec::new();
    let mut offset = 0usize;
    let mut parts = 0;
    loop {
        let r = req(&mut st, &mut d0, MsgType::DirectoryPart, 0, &join_nul(&[b"/big", offset.to_string().as_bytes()])).unwrap();
        assert!(r.len() <= PAYLOAD_MAX);
        parts += 1;
        let gen_end = r.iter().position(|&b| b == 0).unwrap();
        let body = &r[gen_end + 1..];
        let done = body.ends_with(b"\0\0") || body == b"\0";
        let list = if done { &body[..body.len() - 1] } else { body };
        offset += list.len();
        got.extend(list.split(|&b| b == 0).filter(|x| !x.is_empty()).map(|x| String::from_utf8(x.to_vec()).unwrap()));
        if done {
            break;
        }
    }
    assert!(parts >= 2);
    assert_eq!(got, names);
    // An offset inside a name, or past the end, is refused.
    assert_eq!(req(&mut st, &mut d0, MsgType::DirectoryPart, 0, &join_nul(&[b"/big", b"3"])), Err(XsError::EINVAL));
    assert_eq!(req(&mut st, &mut d0, MsgType::DirectoryPart, 0, &join_nul(&[b"/big", b"999999"])), Err(XsError::EINVAL));
}

#[test]
fn introduce_creates_a_home_owned_by_the_domain_and_tells_watchers() {
    let mut st = Store::new();
    let mut d0 = dom(&mut st, 0);
    watch(&mut st, &mut d0, "/local/domain", "doms").unwrap();
    events(&mut st, &d0);
    let mut g = dom(&mut st, 9);
    assert_eq!(req(&mut st, &mut g, MsgType::GetPerms, 0, &s("/local/domain/9")), Ok(b"n9\0".to_vec()));
    assert_eq!(events(&mut st, &d0), vec![("/local/domain/9".to_string(), "doms".to_string())]);
}
