//! Wire format and path/permission parsing on their own.

use hypercall_abi::DomId;
use xenbus::path::{self, Perm, Perms};
use xenbus::wire::{split_args, split_path_value, Header, Message, MsgType, WireError, XsError};

#[test]
fn message_types_match_xs_wire_h() {
    assert_eq!(MsgType::Read as u32, 2);
    assert_eq!(MsgType::GetDomainPath as u32, 10);
    assert_eq!(MsgType::WatchEvent as u32, 15);
    assert_eq!(MsgType::Error as u32, 16);
    assert_eq!(MsgType::ResetWatches as u32, 21);
    assert_eq!(MsgType::DirectoryPart as u32, 22);
    for n in 0..27 {
        assert_eq!(MsgType::try_from(n).unwrap() as u32, n);
    }
    assert_eq!(MsgType::try_from(27), Err(27));
    assert_eq!(MsgType::try_from(0xffff), Err(0xffff));
}

#[test]
fn error_names_round_trip() {
    for e in XsError::ALL {
        assert_eq!(XsError::from_name(e.name().as_bytes()), Some(e));
        let m = Message::error(3, 4, e);
        assert_eq!(m.payload, [e.name().as_bytes(), b"\0"].concat());
        assert_eq!(m.as_error(), Some(e));
    }
    assert_eq!(XsError::from_name(b"EWHAT\0"), None);
}

#[test]
fn header_is_little_endian_and_bounded() {
    let h = Header { msg_type: 2, req_id: 0x0102_0304, tx_id: 5, len: 4096 };
    let b = h.to_bytes();
    assert_eq!(&b[4..8], &[4, 3, 2, 1]);
    assert_eq!(Header::parse(&b), Ok(h));
    let big = Header { len: 4097, ..h }.to_bytes();
    assert_eq!(Header::parse(&big), Err(WireError::Oversized(4097)));
    let huge = Header { len: u32::MAX, ..h }.to_bytes();
    assert_eq!(Header::parse(&huge), Err(WireError::Oversized(u32::MAX)));
    assert_eq!(Header::parse(&b[..15]), Err(WireError::ShortHeader));
}

#[test]
fn argument_splitting() {
    assert_eq!(split_args(b"a\0b\0", 2), Ok(vec!["a", "b"]));
    assert_eq!(split_args(b"\0", 1), Ok(vec![""]));
    assert_eq!(split_args(b"a\0b", 2), Err(XsError::EINVAL));
    assert_eq!(split_args(b"a\0b\0c\0", 2), Err(XsError::EINVAL));
    assert_eq!(split_args(b"\xff\0", 1), Err(XsError::EINVAL));
    assert_eq!(split_path_value(b"/p\0val\0ue"), Ok(("/p", &b"val\0ue"[..])));
    assert_eq!(split_path_value(b"/p"), Err(XsError::EINVAL));
}

#[test]
fn path_helpers() {
    assert_eq!(path::canonical(DomId(4), "x/y").unwrap(), "/local/domain/4/x/y");
    assert_eq!(path::canonical(DomId(4), "/").unwrap(), "/");
    assert_eq!(path::canonical_watch_path(DomId(4), "@releaseDomain").unwrap(), "@releaseDomain");
    assert_eq!(path::canonical_watch_path(DomId(4), "@other"), Err(XsError::EINVAL));
    assert_eq!(path::parent("/a/b"), Some("/a"));
    assert_eq!(path::parent("/a"), Some("/"));
    assert_eq!(path::parent("/"), None);
    assert!(path::is_under("/a/b", "/a"));
    assert!(path::is_under("/a", "/a"));
    assert!(!path::is_under("/ab", "/a"));
    assert!(path::is_under("/ab", "/"));
}

#[test]
fn permission_lists() {
    let p = Perms::parse(&["r1", "b2", "n3", "w65000"]).unwrap();
    assert_eq!(p.owner(), DomId(1));
    assert_eq!(p.to_wire(), b"r1\0b2\0n3\0w65000\0");
    assert_eq!(p.access(DomId(1), false), Perm::Both, "owner");
    assert_eq!(p.access(DomId(2), false), Perm::Both);
    assert_eq!(p.access(DomId(3), false), Perm::None);
    assert_eq!(p.access(DomId(9), false), Perm::Read, "default is the first entry's letter");
    assert_eq!(p.access(DomId(9), true), Perm::Both, "privileged");
    for bad in [&[][..], &["x1"], &["r"], &["r-1"], &["r1x"], &["r99999"], &["r1", "r2", "r3", "r4", "r5", "r6"]] {
        assert_eq!(Perms::parse(bad), Err(XsError::EINVAL), "{bad:?}");
    }
}
