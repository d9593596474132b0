//! Host tests of the console back-end's ring logic: a guest writing lines, wrapping,
//! a full ring, typed input, and hostile indices that must break only that console.

extern crate std;

use super::*;
use alloc::vec;

/// A ring page in plain memory.
struct Page(std::vec::Vec<u8>);

impl Page {
    fn new() -> Self {
        Page(vec![0; 4096])
    }
    fn set(&mut self, offset: usize, v: u32) {
        self.0[offset..offset + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn get(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.0[offset..offset + 4].try_into().unwrap())
    }
    /// What a front-end does: bytes into `out`, then `out_prod` moves.
    fn guest_write(&mut self, bytes: &[u8]) {
        let prod = self.get(OUT_PROD);
        for (i, &b) in bytes.iter().enumerate() {
            let at = prod.wrapping_add(i as u32) & (OUT_SIZE - 1);
            self.0[OUT_OFFSET + at as usize] = b;
        }
        self.set(OUT_PROD, prod.wrapping_add(bytes.len() as u32));
    }
    /// What a front-end does to read input.
    fn guest_read(&mut self) -> std::vec::Vec<u8> {
        let (cons, prod) = (self.get(IN_CONS), self.get(IN_PROD));
        let v = (cons..prod)
            .map(|i| self.0[IN_OFFSET + (i & (IN_SIZE - 1)) as usize])
            .collect();
        self.set(IN_CONS, prod);
        v
    }
}

impl RingPage for Page {
    fn read(&self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.0[offset..offset + buf.len()]);
    }
    fn write(&mut self, offset: usize, bytes: &[u8]) {
        self.0[offset..offset + bytes.len()].copy_from_slice(bytes);
    }
}

fn collect(c: &mut GuestConsole<Page>, attached: bool) -> (Drained, std::string::String) {
    let mut out = std::vec::Vec::new();
    let d = c.drain(attached, &mut |b: &[u8]| out.extend_from_slice(b));
    (d, std::string::String::from_utf8(out).unwrap())
}

#[test]
fn whole_lines_prefixed_and_sanitized() {
    let mut c = GuestConsole::new("echo", 5, Page::new());
    c.ring.guest_write(b"hello\nhalf");
    let (d, out) = collect(&mut c, false);
    assert_eq!(d, Drained::Read(10));
    assert_eq!(out, "[echo] hello\n");
    assert_eq!(c.ring.get(OUT_CONS), 10);
    c.ring.guest_write(b" done\x1b[2J\tx\r\r\n");
    let (_, out) = collect(&mut c, false);
    assert_eq!(out, "[echo] half done.[2J\tx.\n", "one \\r of a line end is dropped");
    assert_eq!(collect(&mut c, false).0, Drained::Nothing);
    assert_eq!(c.log(), b"hello\nhalf done\x1b[2J\tx\r\r\n");
}

#[test]
fn attached_output_is_raw_and_long_lines_are_cut() {
    let mut c = GuestConsole::new("g", 1, Page::new());
    c.ring.guest_write(b"raw\x07 bytes");
    assert_eq!(collect(&mut c, true).1, "raw\x07 bytes");
    c.forget_line();
    c.ring.guest_write(&[b'a'; LINE_MAX + 3]);
    let (_, out) = collect(&mut c, false);
    assert_eq!(out.len(), 4 + LINE_MAX + 1);
    let mut rest = std::vec::Vec::new();
    c.flush_line(&mut |b: &[u8]| rest.extend_from_slice(b));
    assert_eq!(rest, b"[g] aaa\n");
}

#[test]
fn wraps_around_the_ring_and_its_indices() {
    let mut page = Page::new();
    // Indices near u32::MAX: the distance is what counts.
    page.set(OUT_CONS, u32::MAX - 5);
    page.set(OUT_PROD, u32::MAX - 5);
    let mut c = GuestConsole::new("w", 1, page);
    for round in 0..5 {
        let text = std::format!("line {round} {}\n", "x".repeat(1500));
        c.ring.guest_write(text.as_bytes());
        let (d, out) = collect(&mut c, true);
        assert_eq!(d, Drained::Read(text.len()));
        assert_eq!(out, text);
    }
    // A completely full ring is legal.
    c.ring.guest_write(&[b'z'; OUT_SIZE as usize]);
    assert_eq!(collect(&mut c, true).0, Drained::Read(OUT_SIZE as usize));
    // The log keeps the newest LOG_SIZE bytes.
    for _ in 0..10 {
        c.ring.guest_write(&[b'q'; 2000]);
        collect(&mut c, true);
    }
    assert_eq!(c.log().len(), LOG_SIZE);
}

#[test]
fn hostile_out_indices_break_only_that_console() {
    let mut consoles: Consoles<Page> = Consoles::default();
    consoles.by_dom.insert(1, GuestConsole::new("evil", 7, Page::new()));
    consoles.by_dom.insert(2, GuestConsole::new("good", 8, Page::new()));
    let evil = consoles.by_dom.get_mut(&1).unwrap();
    evil.ring.guest_write(b"first\n");
    evil.ring.set(OUT_PROD, 6 + 100_000);
    consoles.by_dom.get_mut(&2).unwrap().ring.guest_write(b"fine\n");
    let mut out = std::vec::Vec::new();
    let notify = consoles.drain_all(None, &mut |b: &[u8]| out.extend_from_slice(b));
    let out = std::string::String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        "xl: console of evil: ring indices corrupt (cons 0 prod 100006); no longer served\n[good] fine\n"
    );
    assert_eq!(notify, [8]);
    // Never read again, whatever it writes; the other keeps working.
    for hostile in [0u32, 6, u32::MAX, 0x8000_0000] {
        let evil = consoles.by_dom.get_mut(&1).unwrap();
        evil.ring.set(OUT_PROD, hostile);
        evil.ring.set(OUT_CONS, hostile.wrapping_sub(3));
        consoles.by_dom.get_mut(&2).unwrap().ring.guest_write(b"more\n");
        let mut out = std::vec::Vec::new();
        consoles.drain_all(Some(1), &mut |b: &[u8]| out.extend_from_slice(b));
        assert_eq!(out, b"[good] more\n");
        assert_eq!(consoles.by_dom[&1].ring.get(OUT_CONS), hostile.wrapping_sub(3));
    }
    assert_eq!(consoles.by_port(8), Some(2));
    assert_eq!(consoles.by_port(9), None);
}

#[test]
fn producer_behind_consumer_is_corrupt() {
    let mut page = Page::new();
    page.set(OUT_CONS, 100);
    page.set(OUT_PROD, 99);
    assert_eq!(
        read_output(&mut page, &mut std::vec::Vec::new()),
        Err(Corrupt { cons: 100, prod: 99 })
    );
    // Exactly one ring ahead is fine, one more is not.
    page.set(OUT_PROD, 100 + OUT_SIZE);
    assert_eq!(read_output(&mut page, &mut std::vec::Vec::new()), Ok(OUT_SIZE as usize));
    page.set(OUT_PROD, 100 + 2 * OUT_SIZE + 1);
    assert!(read_output(&mut page, &mut std::vec::Vec::new()).is_err());
}

#[test]
fn input_fills_the_ring_and_no_more() {
    let mut c = GuestConsole::new("in", 1, Page::new());
    let mut none = |_: &[u8]| panic!("no output expected");
    assert_eq!(c.input(b"hello\r", &mut none), 6);
    assert_eq!(c.ring.guest_read(), b"hello\r");
    let big = [b'k'; 1500];
    assert_eq!(c.input(&big, &mut none), IN_SIZE as usize);
    assert_eq!(c.input(b"x", &mut none), 0);
    assert_eq!(c.ring.guest_read().len(), IN_SIZE as usize);
    assert_eq!(c.input(b"ab", &mut none), 2);
    assert_eq!(c.ring.guest_read(), b"ab");
}

#[test]
fn hostile_in_indices_break_the_console() {
    let mut c = GuestConsole::new("bad", 1, Page::new());
    c.ring.set(IN_PROD, 5000);
    let mut out = std::vec::Vec::new();
    assert_eq!(c.input(b"abc", &mut |b: &[u8]| out.extend_from_slice(b)), 0);
    assert!(c.broken);
    assert!(std::string::String::from_utf8(out).unwrap().contains("cons 0 prod 5000"));
    // Nothing written into the page.
    assert!(c.ring.0[..IN_SIZE as usize].iter().all(|&b| b == 0));
    assert_eq!(c.input(b"abc", &mut |_: &[u8]| panic!()), 0);
    c.ring.guest_write(b"ignored\n");
    assert_eq!(collect(&mut c, false).0, Drained::Nothing);
}
