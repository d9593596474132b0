//! Tests of the tar reader and the boot-file lookup: archives written by GNU tar in its
//! three formats, archives written here, and damaged or hostile ones.

extern crate std;

use super::*;
use std::format;
use std::string::ToString;
use std::vec;

/// `tar --format=gnu -b1 -cf gnu.tar hello.cfg sub <120 x's>` (a GNU long name).
const GNU: &[u8] = include_bytes!("gnu.tar");
/// The same files with `--format=pax` (the long name in a pax header).
const PAX: &[u8] = include_bytes!("pax.tar");
/// `tar --format=ustar -b1 -cf ustar.tar ./hello.cfg sub`.
const USTAR: &[u8] = include_bytes!("ustar.tar");

const HELLO_CFG: &[u8] = b"name = \"hello\"\nkernel = \"hello\"\n";

/// A ustar header for a member; the checksum is filled in.
fn header(name: &str, size: usize, typeflag: u8) -> Vec<u8> {
    let mut h = vec![0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    seal(&mut h);
    h
}

/// Writes the checksum of a header.
fn seal(h: &mut [u8]) {
    h[148..156].fill(b' ');
    let sum: u32 = h[..BLOCK].iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

/// An archive of regular files, with the two end blocks.
fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        out.extend(header(name, data.len(), b'0'));
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(BLOCK), 0);
    }
    out.extend([0u8; 2 * BLOCK]);
    out
}

fn names(data: &[u8]) -> Vec<String> {
    TarReader::new(data).map(|e| e.name).collect()
}

#[test]
fn archives_from_gnu_tar() {
    let long = "x".repeat(120);
    for (format, data) in [("gnu", GNU), ("pax", PAX)] {
        assert!(is_tar(data), "{format}");
        let mut r = TarReader::new(data);
        let entries: Vec<TarEntry<'_>> = r.by_ref().collect();
        assert_eq!(r.error(), None, "{format}");
        let got: Vec<(&str, &[u8])> = entries.iter().map(|e| (e.name.as_str(), e.data)).collect();
        assert_eq!(
            got,
            [
                ("hello.cfg", HELLO_CFG),
                ("sub/k", &b"abc"[..]),
                (long.as_str(), &b"long"[..])
            ],
            "{format}"
        );
    }
    assert_eq!(names(USTAR), ["hello.cfg", "sub/k"]);
}

#[test]
fn written_archives_and_prefixes() {
    let data = archive(&[("a", b"1"), ("dir/b", &[7u8; 1000]), ("./c", b"")]);
    assert!(is_tar(&data));
    let entries: Vec<TarEntry<'_>> = TarReader::new(&data).collect();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[1].data, &[7u8; 1000][..]);
    assert_eq!(entries[2].name, "c");
    assert!(entries[2].data.is_empty());
    // The ustar prefix field joins the name.
    let mut h = header("file", 0, b'0');
    h[345..348].copy_from_slice(b"a/b");
    seal(&mut h);
    assert_eq!(names(&h), ["a/b/file"]);
    // Without end blocks, the archive ends with its data.
    let mut short = header("x", 3, b'0');
    short.extend_from_slice(b"abc");
    let mut r = TarReader::new(&short);
    assert_eq!(r.next().map(|e| e.data), Some(&b"abc"[..]));
    assert_eq!(r.next(), None);
    assert_eq!(r.error(), None);
}

#[test]
fn damaged_archives_stop_with_the_reason() {
    let good = archive(&[("a", b"1"), ("b", b"22")]);
    // A flipped byte in the second header.
    let mut bad = good.clone();
    bad[2 * BLOCK + 10] ^= 1;
    let mut r = TarReader::new(&bad);
    assert_eq!(r.by_ref().count(), 1);
    assert_eq!(r.error(), Some(TarError::BadChecksum { offset: 1024 }));
    // A size past the end.
    let mut h = header("big", 5000, b'0');
    h.extend_from_slice(b"only this");
    let mut r = TarReader::new(&h);
    assert_eq!(r.next(), None);
    assert_eq!(r.error(), Some(TarError::Truncated { offset: 0 }));
    // A size field that is not octal.
    let mut h = header("x", 0, b'0');
    h[124..136].copy_from_slice(b"00000000009\0");
    seal(&mut h);
    let mut r = TarReader::new(&h);
    assert_eq!(r.next(), None);
    assert_eq!(r.error(), Some(TarError::BadSize { offset: 0 }));
    // A huge base-256 size.
    let mut h = header("x", 0, b'0');
    h[124..136].copy_from_slice(&[
        0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ]);
    seal(&mut h);
    let mut r = TarReader::new(&h);
    assert_eq!(r.next(), None);
    assert!(matches!(
        r.error(),
        Some(TarError::Truncated { .. } | TarError::BadSize { .. })
    ));
    // A negative base-256 size.
    h[124] = 0xff;
    seal(&mut h);
    let mut r = TarReader::new(&h);
    assert_eq!(r.next(), None);
    assert_eq!(r.error(), Some(TarError::BadSize { offset: 0 }));
    // Not an archive at all.
    assert!(!is_tar(b"\x7fELF"));
    assert!(!is_tar(&[0u8; 512]));
    assert!(!is_tar(&[b' '; 600]));
}

#[test]
fn long_names_are_bounded_and_checked() {
    // A GNU long name longer than the limit.
    let mut data = header("././@LongLink", 5000, b'L');
    data.extend(vec![b'n'; 5120]);
    let mut r = TarReader::new(&data);
    assert_eq!(r.next(), None);
    assert_eq!(r.error(), Some(TarError::BadLongName { offset: 0 }));
    // A pax record whose length lies.
    let records = b"99 path=abc\n";
    let mut data = header("pax", records.len(), b'x');
    data.extend_from_slice(records);
    data.resize(2 * BLOCK, 0);
    data.extend(header("real", 0, b'0'));
    let mut r = TarReader::new(&data);
    assert_eq!(r.next(), None);
    assert_eq!(r.error(), Some(TarError::BadLongName { offset: 0 }));
    // A good pax record names the next member only.
    let records = b"12 path=abc\n";
    let mut data = header("pax", records.len(), b'x');
    data.extend_from_slice(records);
    data.resize(2 * BLOCK, 0);
    data.extend(header("real", 0, b'0'));
    data.extend(header("next", 0, b'0'));
    assert_eq!(names(&data), ["abc", "next"]);
}

#[test]
fn other_member_types_are_skipped() {
    let mut data = header("dir/", 0, b'5');
    data.extend(header("link", 0, b'2'));
    let mut with_data = header("fifo-ish", 3, b'6');
    with_data.extend_from_slice(b"abc");
    with_data.resize(2 * BLOCK, 0);
    data.extend(with_data);
    data.extend(archive(&[("file", b"x")]));
    assert_eq!(names(&data), ["file"]);
}

#[test]
fn random_garbage_never_panics() {
    let base = archive(&[("a", b"hello"), ("b/c", &[1u8; 700]), ("d", b"")]);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut data = base.clone();
        for _ in 0..(next() % 8) {
            let at = (next() % data.len() as u64) as usize;
            data[at] = next() as u8;
        }
        if next() % 3 == 0 {
            let at = (next() % data.len() as u64) as usize;
            data.truncate(at);
        }
        // Re-seal sometimes, so damage past the checksum is exercised too.
        if next() % 2 == 0 && data.len() >= BLOCK {
            seal(&mut data[..BLOCK]);
        }
        for e in TarReader::new(&data) {
            assert!(e.data.len() <= data.len());
        }
    }
}

fn files<'a>(modules: &[(&'a str, &'a [u8])]) -> BootFiles<'a> {
    BootFiles::new(modules.iter().copied())
}

#[test]
fn lookup_order_modules_then_paths_then_base_names() {
    let tar = archive(&[
        ("configs/hello.cfg", HELLO_CFG),
        ("hello", b"tar kernel"),
        ("a/dup", b"1"),
        ("b/dup", b"2"),
    ]);
    let f = files(&[
        ("hello", b"module kernel"),
        ("boot.tar", &tar),
        ("/boot/extra.img some args", b"x"),
    ]);
    assert_eq!(f.find("hello").unwrap().data, b"module kernel");
    assert_eq!(f.find("configs/hello.cfg").unwrap().data, HELLO_CFG);
    assert_eq!(f.find("./configs/hello.cfg").unwrap().data, HELLO_CFG);
    assert_eq!(f.find("hello.cfg").unwrap().data, HELLO_CFG);
    assert_eq!(f.find("extra.img").unwrap().data, b"x");
    assert_eq!(f.find("/boot/extra.img").unwrap().data, b"x");
    assert_eq!(f.find("boot.tar").unwrap().data, &tar[..]);
    assert_eq!(
        f.find("dup"),
        Err(LookupError::Ambiguous(vec![
            "a/dup".to_string(),
            "b/dup".to_string()
        ]))
    );
    assert_eq!(f.find("a/dup").unwrap().data, b"1");
    assert_eq!(f.find("nothing"), Err(LookupError::NotFound));
    assert_eq!(f.find(""), Err(LookupError::NotFound));
    assert_eq!(f.find("./"), Err(LookupError::NotFound));
    assert_eq!(
        f.names(),
        [
            "hello",
            "/boot/extra.img",
            "configs/hello.cfg",
            "hello",
            "a/dup",
            "b/dup"
        ]
    );
    assert!(f.damaged().is_empty());
}

#[test]
fn a_lone_module_has_no_name_but_its_archive_is_read() {
    let tar = archive(&[("hello.cfg", HELLO_CFG)]);
    let f = files(&[("", &tar)]);
    assert_eq!(f.find("hello.cfg").unwrap().data, HELLO_CFG);
    let f = files(&[("", b"\x7fELF...")]);
    assert_eq!(f.find(""), Err(LookupError::NotFound));
    assert!(f.names().is_empty());
}

#[test]
fn damaged_archives_are_listed() {
    let mut tar = archive(&[("a", b"1"), ("b", b"2")]);
    tar[1024 + 3] ^= 0x40;
    let f = files(&[("configs.tar", &tar)]);
    assert_eq!(f.find("a").unwrap().data, b"1");
    assert_eq!(f.find("b"), Err(LookupError::NotFound));
    assert_eq!(
        f.damaged(),
        [("configs.tar", TarError::BadChecksum { offset: 1024 })]
    );
    assert_eq!(
        format!("{}", f.damaged()[0].1),
        "bad header checksum at byte 1024"
    );
}
