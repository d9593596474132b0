//! blk-test: a guest that checks its virtual disk `xvda` (device 51712) end to end through
//! blkfront and dom0's blkback.
//!
//! Command line: `check=rw seed=N` writes a pattern (each sector stamped with its number
//! and `N`) over the whole disk with several requests in flight, flushes, reads it all back
//! and checks every byte; then checks that sectors past the end and bad lengths are
//! refused. `check=ro` checks that a read-only disk reads and refuses writes. `check=seed
//! seed=N` only reads the disk and checks it holds seed N's pattern (a second boot, or a
//! second guest on another partition). `check=hostile` is a hostile front end: requests
//! with every field out of range, garbage slots and a revoked grant, each to be answered
//! with an error, then a ring whose producer index lies, to be disconnected. Each check
//! prints `TEST <name> PASS|FAIL`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use pv_guest::blkfront::{BlkError, BlkFront, MAX_IN_FLIGHT, MAX_REQUEST_BYTES};
use pv_guest::grant::GrantTable;
use pv_guest::mm::xen::GuestMm;
use pv_guest::start_info;
use pv_guest::testing::{ensure, Tests};
use pv_guest::{println, ShutdownReason, StartInfo};

/// The byte at `offset` of sector `sector` in seed `seed`'s pattern: the sector's number
/// and the seed in its first 16 bytes, then bytes that change with both.
fn pattern_byte(seed: u64, sector: u64, offset: usize) -> u8 {
    match offset {
        0..8 => sector.to_le_bytes()[offset],
        8..16 => seed.to_le_bytes()[offset - 8],
        _ => (sector.wrapping_mul(131).wrapping_add(offset as u64 * 7).wrapping_add(seed * 17)) as u8,
    }
}

fn fill(seed: u64, first: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(seed, first + (i / 512) as u64, i % 512);
    }
}

/// The first wrong byte of `buf` read from `first`, if any: (sector, offset, got, want).
fn mismatch(seed: u64, first: u64, buf: &[u8]) -> Option<(u64, usize, u8, u8)> {
    buf.iter().enumerate().find_map(|(i, &b)| {
        let (sector, offset) = (first + (i / 512) as u64, i % 512);
        let want = pattern_byte(seed, sector, offset);
        (b != want).then_some((sector, offset, b, want))
    })
}

/// Requests covering the disk: (first sector, bytes).
fn chunks(sectors: u64) -> impl Iterator<Item = (u64, usize)> {
    let per = (MAX_REQUEST_BYTES / 512) as u64;
    (0..sectors.div_ceil(per)).map(move |k| (k * per, ((sectors - k * per).min(per) * 512) as usize))
}

/// Writes the pattern over the whole disk with up to `MAX_IN_FLIGHT` requests at once.
fn write_all(blk: &mut BlkFront, seed: u64) -> Result<u64, BlkError> {
    let mut inflight: Vec<u64> = Vec::new();
    let mut buf = vec![0u8; MAX_REQUEST_BYTES];
    let mut n = 0;
    for (first, bytes) in chunks(blk.sectors) {
        if inflight.len() == MAX_IN_FLIGHT {
            blk.wait(inflight.remove(0), None)?;
        }
        fill(seed, first, &mut buf[..bytes]);
        inflight.push(blk.start_write(first, &buf[..bytes])?);
        n += 1;
    }
    for id in inflight {
        blk.wait(id, None)?;
    }
    Ok(n)
}

/// Reads the whole disk back, several requests at once; the first wrong byte, if any.
fn check_all(blk: &mut BlkFront, seed: u64) -> Result<Option<(u64, usize, u8, u8)>, BlkError> {
    let mut inflight: Vec<(u64, u64, usize)> = Vec::new();
    let mut buf = vec![0u8; MAX_REQUEST_BYTES];
    let mut chunks = chunks(blk.sectors).peekable();
    while chunks.peek().is_some() || !inflight.is_empty() {
        while inflight.len() < MAX_IN_FLIGHT {
            let Some((first, bytes)) = chunks.next() else { break };
            inflight.push((blk.start_read(first, bytes)?, first, bytes));
        }
        let (id, first, bytes) = inflight.remove(0);
        blk.wait(id, Some(&mut buf[..bytes]))?;
        if let Some(bad) = mismatch(seed, first, &buf[..bytes]) {
            return Ok(Some(bad));
        }
    }
    Ok(None)
}

fn run(t: &mut Tests, si: &'static StartInfo, check: &str, seed: u64) {
    let mut mm = match GuestMm::init(si, None) {
        Ok(mm) => mm,
        Err(e) => return t.report("mm_init", Err(format!("{e}"))),
    };
    let mut gt = match GrantTable::setup(&mut mm, 1) {
        Ok(g) => g,
        Err(e) => return t.report("grant_table", Err(format!("{e}"))),
    };
    let mut xs = match pv_guest::xenbus::connect(si) {
        Ok(xs) => xs,
        Err(e) => return t.report("store", Err(format!("{e}"))),
    };
    if check == "badstore" {
        return bad_store(t, &mut xs);
    }
    if check == "hotplug" {
        return hotplug(t, &mut xs, &mut mm, &mut gt, seed);
    }
    let mut blk = match BlkFront::connect(&mut xs, &mut mm, &mut gt, 51712) {
        Ok(b) => b,
        Err(e) => return t.report("connect", Err(format!("{e:?}"))),
    };
    println!("blk-test: xvda: {} sectors ({} MiB), {}", blk.sectors, blk.sectors >> 11, if blk.readonly { "read-only" } else { "read-write" });
    t.report("connect", Ok(()));
    match check {
        "rw" => {
            let w = write_all(&mut blk, seed);
            t.report("write_pattern", w.as_ref().map(|n| println!("blk-test: wrote {} sectors in {n} requests", blk.sectors)).map_err(|e| format!("{e:?}")));
            t.report("flush", blk.flush().map_err(|e| format!("{e:?}")));
            t.report("pattern_reads_back", match check_all(&mut blk, seed) {
                Ok(None) => Ok(()),
                Ok(Some((s, o, got, want))) => Err(format!("sector {s} byte {o}: {got:#x}, want {want:#x}")),
                Err(e) => Err(format!("{e:?}")),
            });
            let end = blk.sectors;
            let one = [0u8; 512];
            t.report("write_past_the_end_refused", ensure(blk.write(end, &one) == Err(BlkError::Device(-1)), || "accepted".into()));
            let mut two = [0u8; 1024];
            t.report("read_across_the_end_refused", ensure(blk.read(end - 1, &mut two) == Err(BlkError::Device(-1)), || "accepted".into()));
            t.report("write_far_past_the_end_refused", ensure(blk.write(u64::MAX - 1, &one) == Err(BlkError::Device(-1)), || "accepted".into()));
            t.report("bad_length_refused", ensure(blk.start_read(0, 100) == Err(BlkError::BadLength), || "accepted".into()));
            t.report("last_sector_still_there", {
                let mut last = [0u8; 512];
                blk.read(end - 1, &mut last).map_err(|e| format!("{e:?}")).and_then(|()| match mismatch(seed, end - 1, &last) {
                    None => Ok(()),
                    Some(bad) => Err(format!("{bad:?}")),
                })
            });
            // The front end closes: the back end unmaps the ring and says Closed.
            t.report("closed", blk.close(&mut xs).map_err(|e| format!("{e:?}")));
        }
        "ro" => {
            t.report("readonly_announced", ensure(blk.readonly, || "the back end says read-write".into()));
            let mut s = [0u8; 512];
            t.report("read", blk.read(0, &mut s).map_err(|e| format!("{e:?}")));
            t.report("write_refused", ensure(blk.write(0, &s) == Err(BlkError::Device(-1)), || "accepted".into()));
            t.report("flush_refused", ensure(blk.flush() == Err(BlkError::Device(-1)), || "accepted".into()));
        }
        "seed" => t.report("pattern_is_there", match check_all(&mut blk, seed) {
            Ok(None) => Ok(()),
            Ok(Some((s, o, got, want))) => Err(format!("sector {s} byte {o}: {got:#x}, want {want:#x}")),
            Err(e) => Err(format!("{e:?}")),
        }),
        "hostile" => hostile(t, &mut blk, &mut gt, &mut xs),
        other => t.report("command_line", Err(format!("unknown check={other}"))),
    }
}

/// A hostile front end through the store: a `ring-ref` that is not a number, then one
/// that names no grant, each published with `state = 3` (Initialised); the back end must
/// refuse to connect (`state = 5`, Closing; dom0 prints why) and map nothing. The back
/// end's nodes are read-only to the guest.
fn bad_store(t: &mut Tests, xs: &mut pv_guest::xenbus::StoreClient) {
    use xenbus::client::TxId;
    let me = pv_guest::xenbus::own_domid(xs).unwrap_or(0);
    let back_state = format!("/local/domain/0/backend/vbd/{me}/51712/state");
    let front = "device/vbd/51712";
    t.report("back_end_nodes_read_only", ensure(xs.write(TxId::NONE, &back_state, b"4").is_err(), || "the guest wrote the back end's state".into()));
    let mut attempt = |xs: &mut pv_guest::xenbus::StoreClient, ring_ref: &str, name: &str| {
        for (k, v) in [("ring-ref", ring_ref), ("event-channel", "1"), ("protocol", "x86_64-abi"), ("state", "3")] {
            let _ = xs.write(TxId::NONE, &format!("{front}/{k}"), v.as_bytes());
        }
        // dom0 answers within its next turn; give it half a second, watching that it never
        // says Connected.
        let deadline = pv_guest::time::now_ns() + 500_000_000;
        let mut connected = false;
        while pv_guest::time::now_ns() < deadline {
            connected |= xs.read(TxId::NONE, &back_state).is_ok_and(|v| v == b"4");
            let _ = pv_guest::hypercall::sched_yield();
        }
        let closing = xs.read(TxId::NONE, &back_state).is_ok_and(|v| v == b"5");
        t.report(name, ensure(!connected && closing, || format!("{back_state}: connected {connected}, closing {closing}")));
        // As a front end does when its back end gives up: Closed, then Initialising to
        // start again once the back end is Closed, and the back end waits again (InitWait).
        let wait_back = |xs: &mut pv_guest::xenbus::StoreClient, want: &[u8]| {
            let deadline = pv_guest::time::now_ns() + 2_000_000_000;
            while xs.read(TxId::NONE, &back_state).map_or(true, |v| v != want) && pv_guest::time::now_ns() < deadline {
                let _ = pv_guest::hypercall::sched_yield();
            }
            xs.read(TxId::NONE, &back_state).is_ok_and(|v| v == want)
        };
        let _ = xs.write(TxId::NONE, &format!("{front}/state"), b"6");
        let closed = wait_back(xs, b"6");
        let _ = xs.write(TxId::NONE, &format!("{front}/state"), b"1");
        let waits = wait_back(xs, b"2");
        t.report(&format!("{name}_then_restart"), ensure(closed && waits, || format!("back end closed {closed}, waits again {waits}")));
    };
    attempt(xs, "not-a-number", "ring_ref_not_a_number_refused");
    attempt(xs, "999999", "ring_ref_of_no_grant_refused");
}

/// `xl block-attach` and `block-detach` on a running guest: waits for `xvdb` (51728) to
/// appear, connects and checks a pattern over it, then waits for it to be taken away and
/// checks that a request made after that is never answered.
fn hotplug(t: &mut Tests, xs: &mut pv_guest::xenbus::StoreClient, mm: &mut GuestMm, gt: &mut GrantTable, seed: u64) {
    use xenbus::client::TxId;
    let exists = |xs: &mut pv_guest::xenbus::StoreClient, p: &str| xs.read(TxId::NONE, p).is_ok();
    let _ = xs.watch("device", "hotplug");
    println!("blk-test: waiting for xvdb");
    while !exists(xs, "device/vbd/51728/backend") {
        if xs.wait_event().is_err() {
            return t.report("wait_for_xvdb", Err("the store wait failed".into()));
        }
    }
    let back = xs.read(TxId::NONE, "device/vbd/51728/backend").map(|v| alloc::string::String::from_utf8_lossy(&v).into_owned()).unwrap_or_default();
    let mut blk = match BlkFront::connect(xs, mm, gt, 51728) {
        Ok(b) => b,
        Err(e) => return t.report("connect_xvdb", Err(format!("{e:?}"))),
    };
    t.report("connect_xvdb", Ok(()));
    let w = write_all(&mut blk, seed).and_then(|_| blk.flush()).and_then(|()| check_all(&mut blk, seed));
    t.report("xvdb_pattern_reads_back", match w {
        Ok(None) => Ok(()),
        Ok(Some(bad)) => Err(format!("{bad:?}")),
        Err(e) => Err(format!("{e:?}")),
    });
    let state = format!("{back}/state");
    let _ = xs.watch(&state, "detach");
    println!("blk-test: waiting for detach");
    loop {
        match xs.read(TxId::NONE, &state) {
            Ok(v) if v != b"6" => {
                if xs.wait_event().is_err() {
                    return t.report("detached", Err("the store wait failed".into()));
                }
            }
            _ => break,
        }
    }
    t.report("detached", Ok(()));
    let r = xenbus::blkif::BlkifRequest { operation: xenbus::blkif::BLKIF_OP_READ, nr_segments: 1, id: 4242, seg: [xenbus::blkif::BlkifSegment { gref: blk.data_gref(0).unwrap_or(0), first_sect: 0, last_sect: 7, _pad: 0 }; 11], ..Default::default() };
    let answer = blk.push_raw(&r).and_then(|()| blk.next_raw_response(pv_guest::time::now_ns() + 500_000_000));
    t.report("io_after_detach_unanswered", ensure(!matches!(answer, Ok(Some(_))), || format!("{answer:?}")));
}

/// A hostile front end: requests with every field out of range, garbage slots, a grant
/// revoked before its request, each answered with an error while the ring keeps being
/// served; then a ring whose producer index lies, which the back end disconnects.
fn hostile(t: &mut Tests, blk: &mut BlkFront, gt: &mut GrantTable, xs: &mut pv_guest::xenbus::StoreClient) {
    use xenbus::blkif::{BlkifRequest, BlkifSegment, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_OKAY};
    use zerocopy::FromBytes;
    let g0 = blk.data_gref(0).unwrap_or(0);
    let seg = |gref: u32, first: u8, last: u8| BlkifSegment { gref, first_sect: first, last_sect: last, _pad: 0 };
    let req = |op: u8, n: u8, sector: u64, segs: &[BlkifSegment]| {
        let mut r = BlkifRequest { operation: op, nr_segments: n, handle: 0, _pad: 0, id: 0, sector_number: sector, seg: [seg(0, 0, 0); 11] };
        for (d, s) in r.seg.iter_mut().zip(segs) {
            *d = *s;
        }
        r
    };
    let mut reqs = vec![
        req(BLKIF_OP_READ, 12, 0, &[seg(g0, 0, 7)]),
        req(BLKIF_OP_READ, 255, 0, &[seg(g0, 0, 7)]),
        req(BLKIF_OP_READ, 0, 0, &[]),
        req(BLKIF_OP_WRITE, 1, 0, &[seg(g0, 5, 2)]),
        req(BLKIF_OP_WRITE, 1, 0, &[seg(g0, 0, 8)]),
        req(BLKIF_OP_WRITE, 1, blk.sectors, &[seg(g0, 0, 0)]),
        req(BLKIF_OP_READ, 1, u64::MAX - 3, &[seg(g0, 0, 7)]),
        req(BLKIF_OP_READ, 1, 0, &[seg(0x7fff_fff0, 0, 7)]),
        req(BLKIF_OP_WRITE, 1, 0, &[seg(1, 0, 7)]),
        req(200, 1, 0, &[seg(g0, 0, 7)]),
    ];
    // Garbage: whole slots of pseudo-random bytes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20 {
        let mut bytes = [0u8; 112];
        for b in bytes.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        if let Ok(r) = BlkifRequest::read_from_bytes(&bytes) {
            reqs.push(r);
        }
    }
    let mut errors = 0;
    let mut answered = 0;
    let mut wrong = alloc::string::String::new();
    for (i, r) in reqs.iter_mut().enumerate() {
        r.id = 1000 + i as u64;
        if blk.push_raw(r).is_err() {
            break;
        }
        match blk.next_raw_response(pv_guest::time::now_ns() + 2_000_000_000) {
            Ok(Some(rsp)) if rsp.id == r.id => {
                answered += 1;
                if rsp.status != BLKIF_RSP_OKAY {
                    errors += 1;
                } else if wrong.is_empty() {
                    wrong = format!("request {i} ({r:?}) was answered OKAY");
                }
            }
            other => {
                wrong = format!("request {i}: {other:?}");
                break;
            }
        }
    }
    t.report("hostile_requests_answered_with_errors", if wrong.is_empty() && errors == reqs.len() { Ok(()) } else { Err(format!("{answered} answered, {errors} errors of {}: {wrong}", reqs.len())) });
    // A grant revoked before its request: the copy fails, the request gets an error.
    let revoked = gt.end_access(g0).is_ok();
    let r = req(BLKIF_OP_WRITE, 1, 0, &[seg(g0, 0, 7)]);
    let got = blk.push_raw(&BlkifRequest { id: 7777, ..r }).and_then(|()| blk.next_raw_response(pv_guest::time::now_ns() + 2_000_000_000));
    t.report("revoked_grant_answered_with_error", match got {
        Ok(Some(rsp)) if revoked && rsp.id == 7777 && rsp.status != BLKIF_RSP_OKAY => Ok(()),
        other => Err(format!("revoked={revoked}, {other:?}")),
    });
    // The ring lies: the back end stops serving it and says Closing.
    blk.lie_about_requests(1000);
    let back_state = "/local/domain/0/backend/vbd";
    let mut closed = false;
    let deadline = pv_guest::time::now_ns() + 3_000_000_000;
    let me = pv_guest::xenbus::own_domid(xs).unwrap_or(0);
    let path = format!("{back_state}/{me}/51712/state");
    while pv_guest::time::now_ns() < deadline {
        if xs.read(xenbus::client::TxId::NONE, &path).is_ok_and(|v| v == b"5") {
            closed = true;
            break;
        }
        let _ = pv_guest::hypercall::sched_yield();
    }
    t.report("lying_ring_disconnected", ensure(closed, || format!("{path} never became 5 (Closing)")));
}

fn main(si: &'static StartInfo) -> ShutdownReason {
    let line = start_info::cmdline(si);
    let (mut check, mut seed) = ("rw", 1u64);
    for w in line.split_whitespace() {
        match w.split_once('=') {
            Some(("check", c)) => check = c,
            Some(("seed", s)) => seed = s.parse().unwrap_or(1),
            _ => {}
        }
    }
    let mut t = Tests::default();
    if let Err(e) = pv_guest::events::init(si) {
        t.report("events_init", Err(format!("{e:?}")));
    } else {
        run(&mut t, si, check, seed);
    }
    t.done();
    ShutdownReason::Poweroff
}

pv_guest::entry!(main, heap = 2 << 20);
