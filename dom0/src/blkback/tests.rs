//! Host tests of the block back-end: targets, claims, store nodes, and serving a ring
//! played by a (sometimes hostile) front end over a fake disk and fake grants.

use super::*;
use alloc::collections::BTreeMap;
use alloc::vec;
use xenbus::blkif::{BlkifSegment, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_EOPNOTSUPP};
use xenbus::ring::generic::{FrontRing, REQ_PROD};
use xenbus::ring::LocalPage;

const D: u16 = 3;

fn parts() -> Vec<PartitionExtent> {
    vec![(1, Extent { first: 2048, sectors: 4096 }), (2, Extent { first: 6144, sectors: 1024 })]
}

#[test]
fn targets_name_the_disk_or_a_partition() {
    assert_eq!(resolve("vda", Some(8192), &parts()), Ok(Extent { first: 0, sectors: 8192 }));
    assert_eq!(resolve("vda2", Some(8192), &parts()), Ok(Extent { first: 6144, sectors: 1024 }));
    assert!(resolve("vda3", Some(8192), &parts()).unwrap_err().contains("no partition 3"));
    assert!(resolve("vdb", Some(8192), &parts()).unwrap_err().contains("no such disk"));
    assert!(resolve("vdax", Some(8192), &parts()).is_err());
    assert!(resolve("vda1", None, &parts()).unwrap_err().contains("no disk"));
}

fn claim(dom: u16, devid: u32, target: &str, extent: Extent, readonly: bool) -> Claim {
    Claim { dom, devid, target: target.into(), extent, readonly }
}

#[test]
fn no_sector_is_writable_by_two_guests() {
    let p2 = Extent { first: 6144, sectors: 1024 };
    let whole = Extent { first: 0, sectors: 8192 };
    let mut c = Claims::default();
    c.claim(claim(1, 51712, "vda2", p2, false)).unwrap();
    assert!(c.claim(claim(2, 51712, "vda2", p2, true)).unwrap_err().contains("in use by d1"));
    assert!(c.claim(claim(2, 51712, "vda", whole, false)).is_err(), "the whole disk overlaps");
    assert!(c.claim(claim(1, 51712, "vda1", Extent { first: 2048, sectors: 4096 }, false)).unwrap_err().contains("already has"));
    c.claim(claim(1, 51728, "vda1", Extent { first: 2048, sectors: 4096 }, false)).unwrap();
    assert!(c.release(1, 51712) && !c.release(1, 51712));
    c.claim(claim(2, 51712, "vda2", p2, true)).unwrap();
    c.claim(claim(3, 51712, "vda2", p2, true)).unwrap();
    assert!(c.claim(claim(4, 51712, "vda2", p2, false)).is_err(), "read-only sharers keep writers out");
    assert_eq!(c.of(1).count(), 1);
}

#[test]
fn dom0s_own_partition_is_only_given_read_only() {
    let mut c = Claims::default();
    let vda1 = Extent { first: 2048, sectors: 4096 };
    c.mounted_in_dom0("vda1", vda1);
    let e = c.claim(claim(1, 51712, "vda1", vda1, false)).unwrap_err();
    assert_eq!(e, "vda1 holds dom0's files (vda1): it can only be given read-only");
    let e = c.claim(claim(1, 51712, "vda", Extent { first: 0, sectors: 8192 }, false)).unwrap_err();
    assert!(e.starts_with("vda holds dom0's files (vda1)"), "{e}");
    c.claim(claim(1, 51712, "vda1", vda1, true)).unwrap();
    c.claim(claim(2, 51712, "vda2", Extent { first: 6144, sectors: 1024 }, false)).unwrap();
}

#[test]
fn store_nodes_are_xens() {
    let nodes = store_nodes(&claim(D, 51712, "vda2", Extent { first: 6144, sectors: 1024 }, true));
    let get = |k: &str| nodes.iter().find(|(p, _)| p == k).map(|(_, v)| v.as_str());
    let b = "/local/domain/0/backend/vbd/3/51712";
    let f = "/local/domain/3/device/vbd/51712";
    assert_eq!(get(&format!("{b}/frontend")), Some(f));
    assert_eq!(get(&format!("{b}/sectors")), Some("1024"));
    assert_eq!(get(&format!("{b}/mode")), Some("r"));
    assert_eq!(get(&format!("{b}/info")), Some("4"));
    assert_eq!(get(&format!("{b}/state")), Some("2"));
    assert_eq!(get(&format!("{f}/backend")), Some(b));
    assert_eq!(get(&format!("{f}/virtual-device")), Some("51712"));
    assert_eq!(get(&format!("{f}/state")), Some("1"));
    for k in ["sector-size", "feature-flush-cache", "feature-barrier", "feature-persistent", "max-ring-page-order", "params"] {
        assert!(get(&format!("{b}/{k}")).is_some(), "{k}");
    }
}

/// A disk of `Vec<u8>`, grants of one domain, and the staging buffer.
struct Fake {
    disk: Vec<u8>,
    grants: BTreeMap<(u16, u32), Vec<u8>>,
    staging: Vec<u8>,
    flushes: u32,
    /// Bytes written since the last flush (what a crash would lose).
    unflushed: usize,
}

impl Fake {
    fn new(sectors: usize) -> Self {
        Fake { disk: vec![0; sectors * 512], grants: BTreeMap::new(), staging: vec![0; STAGING_BYTES], flushes: 0, unflushed: 0 }
    }
}

impl BlockMachine for Fake {
    fn grant_copy(&mut self, dom: u16, segments: &[(u32, u16, u16, usize)], to_staging: bool) -> Result<(), usize> {
        for (i, &(gref, off, len, at)) in segments.iter().enumerate() {
            let page = self.grants.get_mut(&(dom, gref)).ok_or(i)?;
            let (off, len) = (usize::from(off), usize::from(len));
            if to_staging {
                self.staging[at..at + len].copy_from_slice(&page[off..off + len]);
            } else {
                page[off..off + len].copy_from_slice(&self.staging[at..at + len]);
            }
        }
        Ok(())
    }
    fn disk_read(&mut self, sector: u64, bytes: usize) -> Result<(), DiskFailed> {
        let at = sector as usize * 512;
        self.staging[..bytes].copy_from_slice(self.disk.get(at..at + bytes).ok_or(DiskFailed)?);
        Ok(())
    }
    fn disk_write(&mut self, sector: u64, bytes: usize) -> Result<(), DiskFailed> {
        let at = sector as usize * 512;
        self.disk.get_mut(at..at + bytes).ok_or(DiskFailed)?.copy_from_slice(&self.staging[..bytes]);
        self.unflushed += bytes;
        Ok(())
    }
    fn disk_flush(&mut self) -> Result<(), DiskFailed> {
        self.flushes += 1;
        self.unflushed = 0;
        Ok(())
    }
}

fn req(op: u8, id: u64, sector: u64, segs: &[(u32, u8, u8)]) -> BlkifRequest {
    let mut r = BlkifRequest { operation: op, nr_segments: segs.len() as u8, id, sector_number: sector, ..Default::default() };
    for (s, &(gref, first, last)) in r.seg.iter_mut().zip(segs) {
        *s = BlkifSegment { gref, first_sect: first, last_sect: last, _pad: 0 };
    }
    r
}

struct Pair {
    page: LocalPage,
    front: FrontRing<BlkifRequest, BlkifResponse>,
    back: Connection,
}

fn pair(extent: Extent, readonly: bool) -> Pair {
    let mut page = LocalPage::new(4096);
    let front = FrontRing::init(&mut page).unwrap();
    let back = Connection::new(&claim(D, 51712, "vda2", extent, readonly), &page).unwrap();
    Pair { page, front, back }
}

impl Pair {
    /// Sends `reqs`, serves, and returns the responses' (id, status).
    fn run(&mut self, m: &mut Fake, reqs: &[BlkifRequest]) -> Vec<(u64, i16)> {
        for r in reqs {
            self.front.push_request(&mut self.page, r).unwrap();
        }
        self.front.publish(&mut self.page);
        assert!(matches!(self.back.serve(&mut self.page, m), Served::Answered { .. }));
        let mut out = Vec::new();
        while let Some(rsp) = self.front.next_response(&self.page).unwrap() {
            out.push((rsp.id, rsp.status));
        }
        out
    }
}

#[test]
fn a_pattern_written_across_segments_reads_back_where_the_extent_is() {
    let extent = Extent { first: 100, sectors: 64 };
    let mut m = Fake::new(200);
    let mut p = pair(extent, false);
    // Two source pages with a pattern, two empty destination pages.
    let pattern: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
    m.grants.insert((D, 10), pattern[..4096].to_vec());
    m.grants.insert((D, 11), pattern[4096..].to_vec());
    m.grants.insert((D, 20), vec![0; 4096]);
    m.grants.insert((D, 21), vec![0; 4096]);
    // 12 sectors from guest sector 5: 8 from page 10, then sectors 2..5 of page 11.
    let w = req(BLKIF_OP_WRITE, 1, 5, &[(10, 0, 7), (11, 2, 5)]);
    let f = req(BLKIF_OP_FLUSH_DISKCACHE, 2, 0, &[]);
    assert_eq!(p.run(&mut m, &[w, f]), [(1, BLKIF_RSP_OKAY), (2, BLKIF_RSP_OKAY)]);
    assert_eq!(m.unflushed, 0, "the flush was answered after the disk flushed");
    let on_disk = &m.disk[(100 + 5) * 512..(100 + 17) * 512];
    assert_eq!(&on_disk[..4096], &pattern[..4096]);
    assert_eq!(&on_disk[4096..], &pattern[4096 + 1024..4096 + 3072]);
    assert!(m.disk[..105 * 512].iter().all(|&b| b == 0), "nothing before the guest's sector 5");
    let r = req(BLKIF_OP_READ, 3, 5, &[(20, 0, 7), (21, 2, 5)]);
    assert_eq!(p.run(&mut m, &[r]), [(3, BLKIF_RSP_OKAY)]);
    assert_eq!(&m.grants[&(D, 20)][..], &pattern[..4096]);
    assert_eq!(&m.grants[&(D, 21)][1024..3072], &pattern[4096 + 1024..4096 + 3072]);
    assert_eq!((p.back.answered, p.back.errors), (3, 0));
}

#[test]
fn hostile_requests_are_answered_with_errors_and_serving_goes_on() {
    let mut m = Fake::new(200);
    let mut p = pair(Extent { first: 100, sectors: 64 }, false);
    m.grants.insert((D, 10), vec![0xaa; 4096]);
    m.grants.insert((4, 12), vec![0xbb; 4096]); // another domain's grant
    let twelve: Vec<(u32, u8, u8)> = (0..12).map(|_| (10, 0, 0)).collect();
    let mut too_many = req(BLKIF_OP_WRITE, 1, 0, &twelve[..11]);
    too_many.nr_segments = 12;
    let reqs = [
        too_many,
        req(BLKIF_OP_WRITE, 2, 64, &[(10, 0, 0)]),        // past the extent's end
        req(BLKIF_OP_WRITE, 3, u64::MAX - 1, &[(10, 0, 7)]), // wraps
        req(BLKIF_OP_WRITE, 4, 0, &[(10, 3, 2)]),         // backwards segment
        req(BLKIF_OP_WRITE, 5, 0, &[(10, 0, 8)]),         // past the page
        req(BLKIF_OP_WRITE, 6, 0, &[(999, 0, 7)]),        // no such grant
        req(BLKIF_OP_WRITE, 7, 0, &[(12, 0, 7)]),         // a grant of another domain's
        req(BLKIF_OP_READ, 8, 0, &[]),                    // no segments
        req(99, 9, 0, &[(10, 0, 0)]),                     // unknown operation
        req(BLKIF_OP_WRITE, 10, 63, &[(10, 0, 0)]),       // the last sector: fine
    ];
    let got = p.run(&mut m, &reqs);
    let want: Vec<(u64, i16)> = (1..=10).map(|id| (id, if id == 10 { BLKIF_RSP_OKAY } else if id == 9 { BLKIF_RSP_EOPNOTSUPP } else { BLKIF_RSP_ERROR })).collect();
    assert_eq!(got, want);
    assert!(m.disk[..163 * 512].iter().all(|&b| b == 0) && m.disk[163 * 512..164 * 512].iter().all(|&b| b == 0xaa));
    assert!(m.disk[164 * 512..].iter().all(|&b| b == 0), "nothing past the extent");
}

#[test]
fn a_read_only_disk_refuses_writes_and_flushes_but_reads() {
    let mut m = Fake::new(64);
    m.disk[512..1024].fill(0x5a);
    m.grants.insert((D, 10), vec![0; 4096]);
    let mut p = pair(Extent { first: 0, sectors: 64 }, true);
    let got = p.run(&mut m, &[req(BLKIF_OP_WRITE, 1, 0, &[(10, 0, 0)]), req(BLKIF_OP_FLUSH_DISKCACHE, 2, 0, &[]), req(BLKIF_OP_READ, 3, 1, &[(10, 0, 0)])]);
    assert_eq!(got, [(1, BLKIF_RSP_ERROR), (2, BLKIF_RSP_ERROR), (3, BLKIF_RSP_OKAY)]);
    assert!(m.disk[..512].iter().all(|&b| b == 0));
    assert!(m.grants[&(D, 10)][..512].iter().all(|&b| b == 0x5a));
}

#[test]
fn a_lying_ring_breaks_the_connection() {
    let mut m = Fake::new(64);
    let mut p = pair(Extent { first: 0, sectors: 64 }, false);
    // The front end claims 1000 requests in a ring of 32.
    p.page.bytes[REQ_PROD..REQ_PROD + 4].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(p.back.serve(&mut p.page, &mut m), Served::Broken(_)));
    assert!(matches!(p.back.serve(&mut p.page, &mut m), Served::Broken(_)), "and stays broken");
    assert_eq!(p.back.answered, 0);
}

/// Blkback as the framework drives it: attach (claims checked), a front end publishing its
/// ring, a write served at connect, detach giving the partition back.
#[test]
fn blkback_through_the_framework() {
    use crate::split::{DevKey, XenbusDevices};
    use crate::testutil::SplitFake;
    let mut m = SplitFake::new();
    let mut back: Blkback<Fake> = Blkback { machine: Some(Fake::new(8192)), disk_sectors: Some(8192), partitions: parts(), ..Default::default() };
    let mut devs: XenbusDevices<Blkback<Fake>, _> = XenbusDevices::default();
    let spec = DiskSpec { target: "vda2".into(), vdev: "xvda".into(), devid: 51712, readonly: false };
    let key = DevKey { dom: D, devid: 51712 };
    let other = DevKey { dom: 4, devid: 51712 };
    devs.attach(&mut back, &mut m, key, &spec).unwrap();
    assert!(devs.attach(&mut back, &mut m, other, &spec).unwrap_err().contains("vda2 is in use by d3 (writable)"));
    assert!(!m.exists("/local/domain/0/backend/vbd/4/51712"));
    let far = DiskSpec { target: "vda7".into(), ..spec.clone() };
    assert!(devs.attach(&mut back, &mut m, DevKey { dom: D, devid: 51728 }, &far).unwrap_err().contains("no partition 7"));
    assert_eq!(m.store.read("/local/domain/0/backend/vbd/3/51712/sectors").unwrap(), b"1024");

    // The front end: its ring (grant 8), a data page (grant 9) and a write queued before
    // it says Initialised.
    let mut ring = m.grant(D, 8);
    let mut front = FrontRing::<BlkifRequest, BlkifResponse>::init(&mut ring).unwrap();
    back.machine.as_mut().unwrap().grants.insert((D, 9), vec![0xab; 4096]);
    front.push_request(&mut ring, &req(BLKIF_OP_WRITE, 7, 2, &[(9, 0, 7)])).unwrap();
    front.publish(&mut ring);
    m.unbound.insert((D, 5));
    let f = "/local/domain/3/device/vbd/51712";
    for (k, v) in [("ring-ref", "8"), ("event-channel", "5"), ("protocol", "x86_64-abi"), ("state", "3")] {
        m.store.write(&format!("{f}/{k}"), v.as_bytes()).unwrap();
    }
    assert_eq!(devs.front_events(&mut back, &mut m), ["dom0: d3 vbd 51712: connected"]);
    let rsp = front.next_response(&ring).unwrap().unwrap();
    assert_eq!((rsp.id, rsp.status), (7, BLKIF_RSP_OKAY));
    let at = (6144 + 2) * 512;
    assert!(back.machine.as_ref().unwrap().disk[at..at + 4096].iter().all(|&b| b == 0xab), "written inside vda2");
    assert_eq!(devs.conn(key).map(|c| c.answered), Some(1));

    assert_eq!(devs.detach(&mut back, &mut m, key), Ok(None));
    assert!(m.mapped.is_empty() && m.table.is_empty());
    devs.attach(&mut back, &mut m, other, &spec).unwrap();
}

/// A grant named twice in one request, as Linux's blkback allows: each segment is its own
/// copy, a read's later segment wins the shared page, and nothing else is touched.
#[test]
fn a_grant_named_twice_is_two_copies() {
    let mut m = Fake::new(200);
    let mut p = pair(Extent { first: 100, sectors: 64 }, false);
    let page: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    m.grants.insert((D, 10), page.clone());
    let w = req(BLKIF_OP_WRITE, 1, 0, &[(10, 0, 1), (10, 0, 1)]);
    assert_eq!(p.run(&mut m, &[w]), [(1, BLKIF_RSP_OKAY)]);
    assert_eq!(&m.disk[100 * 512..101 * 512], &page[..512]);
    assert_eq!(&m.disk[102 * 512..103 * 512], &page[..512], "the same sectors of the page twice");
    m.disk[100 * 512..102 * 512].fill(1);
    m.disk[102 * 512..104 * 512].fill(2);
    let r = req(BLKIF_OP_READ, 2, 0, &[(10, 0, 1), (10, 0, 1)]);
    assert_eq!(p.run(&mut m, &[r]), [(2, BLKIF_RSP_OKAY)]);
    assert!(m.grants[&(D, 10)][..1024].iter().all(|&b| b == 2), "the second segment copied last");
    assert_eq!(&m.grants[&(D, 10)][1024..], &page[1024..]);
}
