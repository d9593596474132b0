//! Random operation sequences against a simple model of the tree (values, implicit parents,
//! recursive removal, node counts), with and without transactions.

mod common;
use common::*;
use hypercall_abi::DomId;
use std::collections::BTreeMap;
use xenbus::store::Store;
use xenbus::wire::{MsgType, XsError};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, so a failure replays.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const PATHS: &[&str] = &["a", "a/b", "a/b/c", "a/d", "e", "e/f", "e/f/g/h"];

#[derive(Default, Clone)]
struct Model(BTreeMap<String, Vec<u8>>);

impl Model {
    fn write(&mut self, p: &str, v: &[u8]) {
        let parts: Vec<&str> = p.split('/').collect();
        for i in 1..parts.len() {
            self.0.entry(parts[..i].join("/")).or_default();
        }
        self.0.insert(p.to_string(), v.to_vec());
    }
    fn mkdir(&mut self, p: &str) {
        if !self.0.contains_key(p) {
            self.write(p, b"");
        }
    }
    fn rm(&mut self, p: &str) {
        let prefix = format!("{p}/");
        self.0.retain(|k, _| k != p && !k.starts_with(&prefix));
    }
    fn parent_exists(&self, p: &str) -> bool {
        match p.rfind('/') {
            None => true,
            Some(i) => self.0.contains_key(&p[..i]),
        }
    }
    fn children(&self, p: &str) -> Vec<u8> {
        let prefix = format!("{p}/");
        let mut out = Vec::new();
        for k in self.0.keys() {
            if let Some(rest) = k.strip_prefix(&prefix) {
                if !rest.contains('/') {
                    out.extend_from_slice(rest.as_bytes());
                    out.push(0);
                }
            }
        }
        out
    }
}

fn step(st: &mut Store, c: &mut Conn, tx: u32, m: &mut Model, rng: &mut Rng) {
    let p = rng.pick(PATHS);
    match rng.next() % 5 {
        0 | 1 => {
            let v = format!("{}", rng.next() % 1000);
            let mut payload = s(p);
            payload.extend_from_slice(v.as_bytes());
            assert_eq!(req(st, c, MsgType::Write, tx, &payload), Ok(b"OK\0".to_vec()));
            m.write(p, v.as_bytes());
        }
        2 => {
            assert_eq!(req(st, c, MsgType::Mkdir, tx, &s(p)), Ok(b"OK\0".to_vec()));
            m.mkdir(p);
        }
        3 => {
            let expect = if m.0.contains_key(p) || m.parent_exists(p) { Ok(b"OK\0".to_vec()) } else { Err(XsError::ENOENT) };
            assert_eq!(req(st, c, MsgType::Rm, tx, &s(p)), expect, "rm {p}");
            m.rm(p);
        }
        _ => {
            let expect = m.0.get(p).cloned().ok_or(XsError::ENOENT);
            assert_eq!(req(st, c, MsgType::Read, tx, &s(p)), expect, "read {p}");
            let expect = m.0.get(p).map(|_| m.children(p)).ok_or(XsError::ENOENT);
            assert_eq!(req(st, c, MsgType::Directory, tx, &s(p)), expect, "directory {p}");
        }
    }
}

#[test]
fn random_sequences_match_the_model() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut st = Store::new();
        let mut g = dom(&mut st, 1);
        let mut m = Model::default();
        for _ in 0..150 {
            if rng.next().is_multiple_of(10) {
                // A transaction nobody else disturbs always commits; an aborted one changes
                // nothing.
                let tx = tx_start(&mut st, &mut g).unwrap();
                let mut tm = m.clone();
                for _ in 0..(rng.next() % 6) {
                    step(&mut st, &mut g, tx, &mut tm, &mut rng);
                }
                let commit = !rng.next().is_multiple_of(3);
                assert_eq!(tx_end(&mut st, &mut g, tx, commit), Ok(b"OK\0".to_vec()));
                if commit {
                    m = tm;
                }
            } else {
                step(&mut st, &mut g, 0, &mut m, &mut rng);
            }
            assert_eq!(st.nodes_owned(DomId(1)), m.0.len() + 1, "seed {seed}: node count");
        }
        for p in PATHS {
            assert_eq!(read(&mut st, &mut g, p), m.0.get(*p).cloned().ok_or(XsError::ENOENT), "seed {seed}: {p}");
        }
    }
}

#[test]
fn random_hostile_bytes_never_break_the_store() {
    let mut rng = Rng(0xdead_beef);
    let mut st = Store::new();
    let g = dom(&mut st, 1);
    for _ in 0..5000 {
        let len = (rng.next() % 40) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| (rng.next() % 256) as u8).collect();
        if rng.next().is_multiple_of(2) && bytes.len() >= 16 {
            // A plausible header: small type, matching length.
            bytes[0..4].copy_from_slice(&((rng.next() % 30) as u32).to_le_bytes());
            bytes[8..12].copy_from_slice(&((rng.next() % 3) as u32).to_le_bytes());
            let l = (bytes.len() - 16) as u32;
            bytes[12..16].copy_from_slice(&l.to_le_bytes());
        }
        let _ = st.handle(g.id, &bytes);
        while st.pop_output(g.id).is_some() {}
    }
    // Still serving.
    let mut g = g;
    assert!(req(&mut st, &mut g, MsgType::GetDomainPath, 0, &s("1")).is_ok());
}
