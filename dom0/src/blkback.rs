//! The block back-end's portable half (Linux's `xen-blkback`, Xen's `io/blkif.h`): which
//! part of dom0's disk each virtual disk is, the rule that no sector is given writable to
//! two guests, the store nodes of a vbd, and serving a front end's ring.
//!
//! Serving never trusts the ring: each request is copied once into private memory
//! (`BackRing`), checked against the disk it may reach (`xenbus::blkif::check`: segment
//! counts and sectors, alignment, the range, read-only), and its data moved by grant copy
//! between the front end's granted pages and dom0's staging buffer ([`BlockMachine`]); a
//! bad request or a grant that does not copy is answered `BLKIF_RSP_ERROR` and serving
//! goes on; a ring whose indices lie stops for good ([`Served::Broken`]) and the device is
//! disconnected. Writes reach the disk before they are answered; a flush or barrier is
//! answered once the disk's cache is flushed, so an acknowledged write is never lost.
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xenbus::blkif::{self, BlkifRequest, BlkifResponse, Io, IoKind, Vbd, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY};
use xenbus::ring::generic::BackRing;
use xenbus::ring::{RingError, SharedMem};

use crate::config::disk::DiskSpec;
pub use crate::split::Served;
use crate::split::{Backend, DevKey, Kind};

/// A run of dom0's disk, in 512-byte sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// First sector.
    pub first: u64,
    /// Sectors.
    pub sectors: u64,
}

impl Extent {
    fn overlaps(&self, other: &Extent) -> bool {
        self.first < other.first + other.sectors && other.first < self.first + self.sectors
    }
}

/// A partition of dom0's disk, as `resolve` needs it: its number and extent.
pub type PartitionExtent = (u32, Extent);

/// The extent `target` (`vda`, or `vdaN`) names on dom0's disk `vda` of `disk_sectors`
/// sectors with `partitions`; the error says why not.
pub fn resolve(target: &str, disk_sectors: Option<u64>, partitions: &[PartitionExtent]) -> Result<Extent, String> {
    let Some(disk_sectors) = disk_sectors else {
        return Err(format!("{target}: dom0 has no disk"));
    };
    let Some(rest) = target.strip_prefix("vda") else {
        return Err(format!("{target}: no such disk (dom0 has vda)"));
    };
    if rest.is_empty() {
        return Ok(Extent { first: 0, sectors: disk_sectors });
    }
    let n: u32 = rest.parse().map_err(|_| format!("{target}: not a partition name"))?;
    partitions
        .iter()
        .find(|(number, _)| *number == n)
        .map(|(_, e)| *e)
        .ok_or_else(|| format!("{target}: vda has no partition {n}"))
}

/// A virtual disk given to a guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The guest.
    pub dom: u16,
    /// Its device number (`virtual-device`).
    pub devid: u32,
    /// dom0's device (`vda2`).
    pub target: String,
    /// Where on dom0's disk.
    pub extent: Extent,
    /// Given read-only.
    pub readonly: bool,
}

/// Every virtual disk given out: no sector is writable by one guest while another guest
/// has it (Xen's block script refuses a device in use elsewhere), and a guest's device
/// numbers are its own.
#[derive(Debug, Default)]
pub struct Claims {
    claims: Vec<Claim>,
}

impl Claims {
    /// Records `claim`, or says why it cannot be: the guest already has that device
    /// number, or the extent overlaps another guest's where either is writable.
    pub fn claim(&mut self, claim: Claim) -> Result<(), String> {
        for c in &self.claims {
            if c.dom == claim.dom && c.devid == claim.devid {
                return Err(format!("d{} already has virtual disk {}", c.dom, c.devid));
            }
            if c.dom != claim.dom && c.extent.overlaps(&claim.extent) && !(c.readonly && claim.readonly) {
                if c.dom == 0 {
                    // Xen's block script refuses a device dom0 has mounted (`check_sharing`).
                    return Err(format!("{} holds dom0's files ({}): it can only be given read-only", claim.target, c.target));
                }
                return Err(format!("{} is in use by d{} ({})", claim.target, c.dom, if c.readonly { "read-only" } else { "writable" }));
            }
        }
        self.claims.push(claim);
        Ok(())
    }

    /// Marks `extent` (`target`, dom0's own filesystem) as mounted read-only in dom0: no
    /// guest may have any of it writable, as Xen's block script refuses a device mounted in
    /// the privileged domain; read-only sharing stays allowed.
    pub fn mounted_in_dom0(&mut self, target: &str, extent: Extent) {
        self.claims.push(Claim { dom: 0, devid: 0, target: String::from(target), extent, readonly: true });
    }

    /// Forgets `dom`'s device `devid`; whether it had it.
    pub fn release(&mut self, dom: u16, devid: u32) -> bool {
        let before = self.claims.len();
        self.claims.retain(|c| !(c.dom == dom && c.devid == devid));
        before != self.claims.len()
    }

    /// The claims of `dom`.
    pub fn of(&self, dom: u16) -> impl Iterator<Item = &Claim> {
        self.claims.iter().filter(move |c| c.dom == dom)
    }
}

/// The back-end directory of `dom`'s vbd `devid`, as libxl places it.
pub fn backend_path(dom: u16, devid: u32) -> String {
    crate::split::backend_path(Kind::Vbd, DevKey { dom, devid })
}

/// The front-end directory of `dom`'s vbd `devid`.
pub fn frontend_path(dom: u16, devid: u32) -> String {
    crate::split::frontend_path(Kind::Vbd, DevKey { dom, devid })
}

/// The nodes the toolstack and the back end write for a new vbd, as libxl and blkback
/// do: the back-end directory (`frontend`, `params`, `mode`, the disk's geometry and
/// features, `state` = InitWait, as blkback leaves it once it waits for the front end), and
/// the front-end directory (`backend`, `virtual-device`, `device-type`, `state` =
/// Initialising). (path, value) pairs, in writing order.
pub fn store_nodes(claim: &Claim) -> Vec<(String, String)> {
    use xenbus::blkif::keys;
    let back = backend_path(claim.dom, claim.devid);
    let front = frontend_path(claim.dom, claim.devid);
    let info = if claim.readonly { keys::VDISK_READONLY } else { 0 };
    let mut nodes = Vec::new();
    let mut b = |k: &str, v: String| nodes.push((format!("{back}/{k}"), v));
    b("frontend", front.clone());
    b("frontend-id", format!("{}", claim.dom));
    b("online", String::from("1"));
    b("type", String::from("phy"));
    b(keys::PARAMS, claim.target.clone());
    b(keys::MODE, String::from(if claim.readonly { "r" } else { "w" }));
    b(keys::SECTORS, format!("{}", claim.extent.sectors));
    b(keys::SECTOR_SIZE, String::from("512"));
    b("physical-sector-size", String::from("512"));
    b(keys::INFO, format!("{info}"));
    b(keys::FEATURE_FLUSH_CACHE, String::from("1"));
    b(keys::FEATURE_BARRIER, String::from("1"));
    b(keys::FEATURE_PERSISTENT, String::from("0"));
    b(keys::MAX_RING_PAGE_ORDER, String::from("0"));
    b(keys::STATE, String::from("2"));
    let mut f = |k: &str, v: String| nodes.push((format!("{front}/{k}"), v));
    f("backend", back.clone());
    f("backend-id", String::from("0"));
    f(keys::VIRTUAL_DEVICE, format!("{}", claim.devid));
    f("device-type", String::from("disk"));
    f(keys::STATE, String::from("1"));
    nodes
}

/// One virtual disk as `xl block-list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskRow {
    /// Its device number.
    pub devid: u32,
    /// dom0's device.
    pub target: String,
    /// Given read-only.
    pub readonly: bool,
    /// The back end's and the front end's `state` (XenbusState numbers), if set.
    pub states: (Option<u32>, Option<u32>),
    /// The front end's `event-channel` and `ring-ref`, once published.
    pub evtchn: Option<u32>,
    /// The front end's ring grant.
    pub ring_ref: Option<u32>,
    /// Requests answered, and of those with an error.
    pub answered: (u64, u64),
}

/// The `xl block-list` table for domain `dom`: a header, then a line per disk.
pub fn block_list(dom: u16, rows: &[DiskRow]) -> String {
    use core::fmt::Write;
    let opt = |v: Option<u32>| v.map_or(String::from("-"), |v| format!("{v}"));
    let mut out = String::from("Vdev      Target  Mode  BE-state FE-state evt-ch ring-ref requests errors BE-path\n");
    for r in rows {
        let _ = writeln!(
            out,
            "{:<9} {:<7} {:<5} {:<8} {:<8} {:<6} {:<8} {:<8} {:<6} {}",
            r.devid,
            r.target,
            if r.readonly { "r" } else { "w" },
            opt(r.states.0),
            opt(r.states.1),
            opt(r.evtchn),
            opt(r.ring_ref),
            r.answered.0,
            r.answered.1,
            backend_path(dom, r.devid)
        );
    }
    out
}

/// What blkback needs from the machine for one request: grant copies between the front
/// end's pages and a staging buffer of [`STAGING_BYTES`], and the disk (sectors absolute
/// on dom0's disk, lengths whole sectors, the staging buffer's first bytes).
pub trait BlockMachine {
    /// Copies segment by segment: `(gref, offset in its page, bytes, offset in staging)`,
    /// from the front end `dom`'s granted pages into staging (`to_staging`) or back. The
    /// index of the first segment that did not copy (a bad or revoked grant).
    fn grant_copy(&mut self, dom: u16, segments: &[(u32, u16, u16, usize)], to_staging: bool) -> Result<(), usize>;
    /// Reads `bytes` from the disk at `sector` into staging.
    fn disk_read(&mut self, sector: u64, bytes: usize) -> Result<(), DiskFailed>;
    /// Writes `bytes` of staging to the disk at `sector`.
    fn disk_write(&mut self, sector: u64, bytes: usize) -> Result<(), DiskFailed>;
    /// Makes every write done so far durable.
    fn disk_flush(&mut self) -> Result<(), DiskFailed>;
}

/// The disk refused or failed an operation (the request is answered `BLKIF_RSP_ERROR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskFailed;

/// The staging buffer's size: the most one request moves (11 pages).
pub const STAGING_BYTES: usize = blkif::BLKIF_MAX_SEGMENTS_PER_REQUEST * 4096;

/// Carries out an accepted request on `extent` of the disk: its status.
pub fn execute(m: &mut impl BlockMachine, dom: u16, io: &Io, extent: Extent) -> i16 {
    let mut at = 0;
    let segs: Vec<(u32, u16, u16, usize)> = io
        .segments()
        .iter()
        .map(|s| {
            let seg = (s.gref, s.offset, s.len, at);
            at += usize::from(s.len);
            seg
        })
        .collect();
    let bytes = at;
    let sector = extent.first + io.sector;
    let ok = match io.kind {
        IoKind::Read => m.disk_read(sector, bytes).is_ok() && m.grant_copy(dom, &segs, false).is_ok(),
        IoKind::Write => m.grant_copy(dom, &segs, true).is_ok() && m.disk_write(sector, bytes).is_ok(),
        IoKind::WriteFlush => {
            (bytes == 0 || (m.grant_copy(dom, &segs, true).is_ok() && m.disk_write(sector, bytes).is_ok())) && m.disk_flush().is_ok()
        }
        // `check` refuses discard: the vbd does not offer it.
        IoKind::Discard { .. } => false,
    };
    if ok {
        BLKIF_RSP_OKAY
    } else {
        BLKIF_RSP_ERROR
    }
}

/// One connected vbd: its disk, its extent and its ring's back end.
pub struct Connection {
    /// The guest.
    pub dom: u16,
    /// What the guest sees.
    pub vbd: Vbd,
    /// Where on dom0's disk.
    pub extent: Extent,
    ring: BackRingOf,
    /// Requests answered, and of those refused or failed.
    pub answered: u64,
    /// Requests answered with an error.
    pub errors: u64,
}

type BackRingOf = BackRing<BlkifRequest, BlkifResponse>;

impl Connection {
    /// A connection for `claim`'s guest over its ring `mem` (zeroed by it,
    /// `SHARED_RING_INIT`).
    pub fn new(claim: &Claim, mem: &impl SharedMem) -> Result<Self, RingError> {
        let vbd = Vbd { sectors: claim.extent.sectors, sector_size: 512, readonly: claim.readonly, discard: false, discard_secure: false };
        Ok(Connection { dom: claim.dom, vbd, extent: claim.extent, ring: BackRing::new(mem)?, answered: 0, errors: 0 })
    }

    /// Serves every request waiting in the ring, with the front end's races: answers each,
    /// publishes the responses and checks again before it stops.
    pub fn serve(&mut self, mem: &mut impl SharedMem, m: &mut impl BlockMachine) -> Served {
        let mut notify = false;
        loop {
            loop {
                let req = match self.ring.next_request(mem) {
                    Ok(Some(req)) => req,
                    Ok(None) => break,
                    Err(e) => return Served::Broken(format!("{e:?}")),
                };
                let rsp = match blkif::check(&req, &self.vbd) {
                    Ok(io) => io.response(execute(m, self.dom, &io, self.extent)),
                    Err(refusal) => blkif::response(req.id, req.operation, refusal.status()),
                };
                if rsp.status != BLKIF_RSP_OKAY {
                    self.errors += 1;
                }
                self.answered += 1;
                if let Err(e) = self.ring.push_response(mem, &rsp) {
                    return Served::Broken(format!("{e:?}"));
                }
            }
            notify |= self.ring.publish(mem);
            match self.ring.final_check_for_requests(mem) {
                Ok(true) => continue,
                Ok(false) => return Served::Answered { notify },
                Err(e) => return Served::Broken(format!("{e:?}")),
            }
        }
    }
}

/// The block back end (the split-driver framework's [`Backend`] for vbds): dom0's disk,
/// its partitions and the claims on them.
pub struct Blkback<M> {
    /// The disk's I/O (`None`: dom0 has no disk).
    pub machine: Option<M>,
    /// Its size in sectors.
    pub disk_sectors: Option<u64>,
    /// Whether it refuses writes.
    pub disk_readonly: bool,
    /// Its partitions.
    pub partitions: Vec<PartitionExtent>,
    claims: Claims,
}

impl<M> Blkback<M> {
    /// Takes dom0's disk: `machine` doing its I/O, its size and read-only flag, its
    /// partitions, and the one holding dom0's own files (`vda<n>`, never given writable).
    pub fn set_disk(&mut self, machine: M, sectors: u64, readonly: bool, partitions: Vec<PartitionExtent>, files: Option<u32>) {
        self.machine = Some(machine);
        self.disk_sectors = Some(sectors);
        self.disk_readonly = readonly;
        if let Some((n, extent)) = files.and_then(|f| partitions.iter().find(|(n, _)| *n == f)) {
            self.claims.mounted_in_dom0(&format!("vda{n}"), *extent);
        }
        self.partitions = partitions;
    }
}

impl<M> Default for Blkback<M> {
    fn default() -> Self {
        Blkback { machine: None, disk_sectors: None, disk_readonly: false, partitions: Vec::new(), claims: Claims::default() }
    }
}

impl<M: BlockMachine, P: SharedMem> Backend<P> for Blkback<M> {
    type Spec = DiskSpec;
    type Config = Claim;
    type Conn = Connection;
    const KIND: Kind = Kind::Vbd;
    const RING_NODES: &'static [&'static str] = &["ring-ref"];

    /// Claims the extent `spec` names; no sector is given writable to two guests.
    fn attach(&mut self, key: DevKey, spec: &DiskSpec) -> Result<Claim, String> {
        let extent = resolve(&spec.target, self.disk_sectors, &self.partitions)?;
        if !spec.readonly && self.disk_readonly {
            return Err(format!("{}: the disk is read-only", spec.target));
        }
        let claim = Claim { dom: key.dom, devid: key.devid, target: spec.target.clone(), extent, readonly: spec.readonly };
        self.claims.claim(claim.clone())?;
        Ok(claim)
    }

    fn nodes(&self, _key: DevKey, claim: &Claim) -> Vec<(String, String)> {
        store_nodes(claim)
    }

    /// The ring is Xen's x86_64 layout (`protocol` absent or `x86_64-abi`).
    fn connect(&mut self, _key: DevKey, claim: &Claim, front: &mut dyn FnMut(&str) -> Option<Vec<u8>>, rings: &mut [P]) -> Result<Connection, String> {
        if let Some(p) = front("protocol") {
            if !p.is_empty() && p != b"x86_64-abi" {
                return Err(format!("protocol {} is not x86_64-abi", String::from_utf8_lossy(&p)));
            }
        }
        let ring = rings.first().ok_or("no ring")?;
        Connection::new(claim, ring).map_err(|e| format!("ring: {e:?}"))
    }

    fn serve(&mut self, _key: DevKey, conn: &mut Connection, rings: &mut [P]) -> Served {
        match (self.machine.as_mut(), rings.first_mut()) {
            (Some(m), Some(ring)) => conn.serve(ring, m),
            _ => Served::Broken(String::from("dom0 has no disk")),
        }
    }

    fn release(&mut self, key: DevKey, _claim: &Claim) {
        self.claims.release(key.dom, key.devid);
    }
}

#[cfg(test)]
mod tests;
