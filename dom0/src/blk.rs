//! The block back-end's machine half: virtual disks given to guests on dom0's disk, each
//! found by its front end through the store, connected when the front end publishes its
//! ring (a grant mapped in dom0) and event channel, served on its events, and released
//! when the front end closes or the guest goes.
//!
//! The front end's state node is watched through dom0's own store connection (token
//! `vbd:<dom>:<devid>`); its events arrive on ports bound here, entered in dom0's one
//! dispatch table by port (`XenControl::serve_port`). The portable rules and serving live in `dom0::blkback`.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use dom0::blkback::{self, Claim, Claims, Connection, DiskFailed, PartitionExtent, Served, STAGING_BYTES};
use dom0::config::disk::DiskSpec;
use hypercall_abi::grant_table::{GnttabCopy, GNTCOPY_SOURCE_GREF, GNTCOPY_DEST_GREF, GNTST_OKAY};
use pv_guest::{events, grant};
use pv_guest::shared_page::SharedPage;

use crate::devices::Disk;
use crate::xen_control::{Device, XenControl};

/// A connected vbd: its ring (a grant mapped at a ring-window slot), dom0's port, and
/// the serving state.
struct Live {
    slot: usize,
    ring: SharedPage,
    port: u32,
    conn: Connection,
}

/// The front end's ring page mapped at `va` by `XenControl::map_grant`.
fn ring_at(va: u64) -> SharedPage {
    // SAFETY: `va` is a ring-window slot where the front end's ring grant was just mapped
    // writable; it stays mapped until `disconnect_vbd` unmaps it, after which the value
    // is never used; only this value (and the front end) touch the page.
    unsafe { SharedPage::new(va) }
}

/// One virtual disk given to a guest.
struct Vbd {
    claim: Claim,
    live: Option<Live>,
}

/// The block back-end: the disk, its partitions, the claims and the vbds.
#[derive(Default)]
pub struct BlockBackend {
    /// dom0's disk (`vda`).
    pub disk: Option<Disk>,
    /// Its partitions.
    pub partitions: Vec<PartitionExtent>,
    claims: Claims,
    vbds: BTreeMap<(u16, u32), Vbd>,
    /// The staging buffer: machine and virtual address of `STAGING_BYTES` in the DMA pool.
    staging: Option<(u64, u64)>,
}


/// The machine under `blkback::execute`: grant copies to and from the staging buffer in
/// the DMA pool, and the disk reading and writing it in place.
struct Machine<'a> {
    disk: &'a mut Disk,
    staging: (u64, u64),
}

impl Machine<'_> {
    fn staging(&mut self, bytes: usize) -> &mut [u8] {
        // SAFETY: the staging buffer is STAGING_BYTES of the DMA pool, mapped for good and
        // used only by the back-end, one request at a time; `bytes` is at most that (the
        // request was checked: at most 11 segments of a page).
        unsafe { core::slice::from_raw_parts_mut(self.staging.1 as *mut u8, bytes.min(STAGING_BYTES)) }
    }
}

impl blkback::BlockMachine for Machine<'_> {
    fn grant_copy(&mut self, dom: u16, segments: &[(u32, u16, u16, usize)], to_staging: bool) -> Result<(), usize> {
        // A segment may straddle two staging pages: it is copied in two pieces.
        let mut ops: Vec<(usize, GnttabCopy)> = Vec::new();
        for (i, &(gref, offset, len, at)) in segments.iter().enumerate() {
            let (mut done, len) = (0usize, usize::from(len));
            while done < len {
                let local = at + done;
                let piece = (len - done).min(4096 - local % 4096);
                let mfn = (self.staging.0 + (local as u64 & !0xfff)) >> 12;
                let remote = grant::copy_gref(dom, gref, offset + done as u16);
                let mine = grant::copy_local(mfn, (local % 4096) as u16);
                let (source, dest, flags) = if to_staging { (remote, mine, GNTCOPY_SOURCE_GREF) } else { (mine, remote, GNTCOPY_DEST_GREF) };
                ops.push((i, GnttabCopy { source, dest, len: piece as u16, flags, status: 0, _pad: 0 }));
                done += piece;
            }
        }
        let mut raw: Vec<GnttabCopy> = ops.iter().map(|(_, op)| *op).collect();
        if grant::copy(&mut raw).is_err() {
            return Err(0);
        }
        match raw.iter().position(|op| op.status != GNTST_OKAY) {
            Some(bad) => Err(ops[bad].0),
            None => Ok(()),
        }
    }

    fn disk_read(&mut self, sector: u64, bytes: usize) -> Result<(), DiskFailed> {
        let (disk, buf) = (self.disk as *mut Disk, self.staging(bytes));
        // SAFETY: `disk` is the `&mut Disk` this machine holds, not otherwise used while
        // `buf` (the staging buffer, memory apart from it) is borrowed.
        unsafe { (*disk).read(sector, buf) }.map_err(|_| DiskFailed)
    }

    fn disk_write(&mut self, sector: u64, bytes: usize) -> Result<(), DiskFailed> {
        let (disk, buf) = (self.disk as *mut Disk, self.staging(bytes));
        // SAFETY: as in `disk_read`.
        unsafe { (*disk).write(sector, buf) }.map_err(|_| DiskFailed)
    }

    fn disk_flush(&mut self) -> Result<(), DiskFailed> {
        self.disk.flush().map_err(|_| DiskFailed)
    }
}

/// The store token of the watch on `dom`'s vbd `devid`'s front-end state.
fn token(dom: u16, devid: u32) -> String {
    format!("vbd:{dom}:{devid}")
}

impl XenControl {
    /// Gives `dom` the virtual disk `spec`: claims its extent, writes the back-end and
    /// front-end nodes (the back-end directory readable by the guest), and watches the
    /// front end's state. The error names what is wrong.
    pub fn attach_vbd(&mut self, dom: u16, spec: &DiskSpec) -> Result<(), String> {
        let sectors = self.blk.disk.as_ref().map(|d| d.sectors);
        let extent = blkback::resolve(&spec.target, sectors, &self.blk.partitions)?;
        if !spec.readonly && self.blk.disk.as_ref().is_some_and(|d| d.readonly) {
            return Err(format!("{}: the disk is read-only", spec.target));
        }
        let claim = Claim { dom, devid: spec.devid, target: spec.target.clone(), extent, readonly: spec.readonly };
        self.blk.claims.claim(claim.clone())?;
        let back = blkback::backend_path(dom, spec.devid);
        let store_err = |e: xenbus::wire::XsError| format!("the store refused the vbd's nodes: {}", e.name());
        let written = (|| {
            self.store.write(&back, b"").map_err(store_err)?;
            self.store.set_perms(&back, &["n0", &format!("r{dom}")]).map_err(store_err)?;
            for (path, value) in blkback::store_nodes(&claim) {
                self.store.write(&path, value.as_bytes()).map_err(store_err)?;
            }
            let front_state = format!("{}/state", blkback::frontend_path(dom, spec.devid));
            self.store.watch(&front_state, &token(dom, spec.devid)).map_err(store_err)
        })();
        if let Err(e) = written {
            self.blk.claims.release(dom, spec.devid);
            let _ = self.store.rm(&back);
            return Err(e);
        }
        self.blk.vbds.insert((dom, spec.devid), Vbd { claim, live: None });
        Ok(())
    }

    /// Looks at the front ends whose state changed, and serves the vbds whose ports
    /// signalled: the lines to print (a vbd connected, refused, or disconnected).
    pub fn serve_vbds(&mut self, ports: &[u32]) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some((_, tok)) = self.store.take_event_for("vbd:") {
            let mut parts = tok.split(':').skip(1);
            let (Some(Ok(dom)), Some(Ok(devid))) = (parts.next().map(str::parse::<u16>), parts.next().map(str::parse::<u32>)) else {
                continue;
            };
            if let Some(line) = self.front_changed(dom, devid) {
                lines.push(line);
            }
        }
        for &port in ports {
            if let Some(Device::Vbd(dom, devid)) = self.device_of(port) {
                if let Some(line) = self.serve_vbd((dom, devid)) {
                    lines.push(line);
                }
            }
        }
        lines
    }

    /// The front end of `dom`'s vbd `devid` changed state.
    fn front_changed(&mut self, dom: u16, devid: u32) -> Option<String> {
        let front = blkback::frontend_path(dom, devid);
        let state = self.store.read(&format!("{front}/state")).ok().and_then(|v| xenbus::state::XenbusState::parse(&v));
        let live = self.blk.vbds.get(&(dom, devid))?.live.is_some();
        use xenbus::state::XenbusState as S;
        match state {
            Some(S::Initialised | S::Connected) if !live => Some(match self.connect_vbd(dom, devid) {
                Ok(()) => format!("dom0: d{dom} vbd {devid}: connected"),
                Err(why) => {
                    self.set_back_state(dom, devid, S::Closing);
                    format!("dom0: d{dom} vbd {devid}: cannot connect: {why}")
                }
            }),
            Some(S::Closing | S::Closed) if live => {
                self.disconnect_vbd(dom, devid);
                self.set_back_state(dom, devid, S::Closed);
                Some(format!("dom0: d{dom} vbd {devid}: disconnected by the front end"))
            }
            _ => None,
        }
    }

    fn set_back_state(&mut self, dom: u16, devid: u32, state: xenbus::state::XenbusState) {
        let path = format!("{}/state", blkback::backend_path(dom, devid));
        let _ = self.store.write(&path, format!("{}", state as u32).as_bytes());
    }

    /// The number a store node holds (a front end's `ring-ref`, a `state`...); the error
    /// names the node and says what is wrong with it.
    fn store_number(&mut self, path: &str) -> Result<u32, String> {
        let v = self.store.read(path).map_err(|e| format!("no {path}: {}", e.name()))?;
        core::str::from_utf8(&v).ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| format!("{path} is not a number"))
    }

    /// Maps the front end's ring, binds its event channel, and says Connected.
    fn connect_vbd(&mut self, dom: u16, devid: u32) -> Result<(), String> {
        let front = blkback::frontend_path(dom, devid);
        let gref = self.store_number(&format!("{front}/ring-ref"))?;
        let evtchn = self.store_number(&format!("{front}/event-channel"))?;
        if let Ok(p) = self.store.read(&format!("{front}/protocol")) {
            if !p.is_empty() && p != b"x86_64-abi" {
                return Err(format!("protocol {} is not x86_64-abi", pv_guest::text::Lossy(&p)));
            }
        }
        if self.blk.staging.is_none() {
            self.blk.staging = crate::devices::staging(STAGING_BYTES / 4096);
        }
        if self.blk.staging.is_none() {
            return Err(String::from("no DMA memory for the staging buffer"));
        }
        let (slot, va) = self.map_grant(dom, gref).map_err(|s| format!("ring-ref {gref} does not map (status {s})"))?;
        let claim = self.blk.vbds.get(&(dom, devid)).map(|v| v.claim.clone()).ok_or("gone")?;
        let ring = ring_at(va);
        let conn = match Connection::new(&claim, &ring) {
            Ok(c) => c,
            Err(e) => {
                self.unmap_grant(slot);
                return Err(format!("ring: {e:?}"));
            }
        };
        let port = match events::bind_interdomain(dom, evtchn) {
            Ok(p) => p,
            Err(e) => {
                self.unmap_grant(slot);
                return Err(format!("event-channel {evtchn}: {e}"));
            }
        };
        if let Err(e) = self.serve_port(port, Device::Vbd(dom, devid)) {
            let _ = events::close(port);
            self.unmap_grant(slot);
            return Err(format!("event-channel {evtchn}: {e}"));
        }
        let _ = events::unmask(port);
        if let Some(v) = self.blk.vbds.get_mut(&(dom, devid)) {
            v.live = Some(Live { slot, ring, port, conn });
        }
        self.set_back_state(dom, devid, xenbus::state::XenbusState::Connected);
        // Requests may already wait.
        self.serve_vbd((dom, devid));
        Ok(())
    }

    /// Serves one vbd's ring; a line if it broke (it is then disconnected).
    fn serve_vbd(&mut self, key: (u16, u32)) -> Option<String> {
        let staging = self.blk.staging?;
        let blk = &mut self.blk;
        let disk = blk.disk.as_mut()?;
        let live = blk.vbds.get_mut(&key)?.live.as_mut()?;
        let mut machine = Machine { disk, staging };
        match live.conn.serve(&mut live.ring, &mut machine) {
            Served::Answered { notify } => {
                if notify {
                    let _ = events::send(live.port);
                }
                None
            }
            Served::Broken(why) => {
                let (dom, devid) = key;
                self.disconnect_vbd(dom, devid);
                self.set_back_state(dom, devid, xenbus::state::XenbusState::Closing);
                Some(format!("dom0: d{dom} vbd {devid}: the front end's ring lies ({why}); disconnected"))
            }
        }
    }

    /// Unbinds and unmaps a connected vbd (it stays given, waiting for a new connection).
    fn disconnect_vbd(&mut self, dom: u16, devid: u32) {
        let Some(live) = self.blk.vbds.get_mut(&(dom, devid)).and_then(|v| v.live.take()) else {
            return;
        };
        self.forget_port(live.port);
        events::mask(live.port);
        let _ = events::close(live.port);
        // `live` (and its view of the ring) is not used past this point.
        self.unmap_grant(live.slot);
    }

    /// `xl block-detach`: answers what the front end has queued, disconnects, says Closed,
    /// and removes the device (its nodes on both sides, its claim). Nothing acknowledged
    /// is lost: every request answered was carried out (writes reached the disk).
    pub fn detach_vbd(&mut self, dom: u16, devid: u32) -> Result<(), String> {
        if !self.blk.vbds.contains_key(&(dom, devid)) {
            return Err(format!("d{dom} has no virtual disk {devid}"));
        }
        let live = self.blk.vbds.get(&(dom, devid)).is_some_and(|v| v.live.is_some());
        if live {
            if let Some(line) = self.serve_vbd((dom, devid)) {
                pv_guest::println!("{line}");
            }
        }
        self.disconnect_vbd(dom, devid);
        self.set_back_state(dom, devid, xenbus::state::XenbusState::Closed);
        self.blk.vbds.remove(&(dom, devid));
        self.blk.claims.release(dom, devid);
        let front = blkback::frontend_path(dom, devid);
        let _ = self.store.unwatch(&format!("{front}/state"), &token(dom, devid));
        let _ = self.store.rm(&blkback::backend_path(dom, devid));
        let _ = self.store.rm(&front);
        Ok(())
    }

    /// `xl block-list`: `dom`'s virtual disks with their states.
    pub fn vbd_rows(&mut self, dom: u16) -> Vec<blkback::DiskRow> {
        let keys: Vec<u32> = self.blk.vbds.keys().filter(|(d, _)| *d == dom).map(|&(_, id)| id).collect();
        let mut rows = Vec::new();
        for devid in keys {
            let num = |ctl: &mut XenControl, path: String| ctl.store_number(&path).ok();
            let (back, front) = (blkback::backend_path(dom, devid), blkback::frontend_path(dom, devid));
            let states = (num(self, format!("{back}/state")), num(self, format!("{front}/state")));
            let evtchn = num(self, format!("{front}/event-channel"));
            let ring_ref = num(self, format!("{front}/ring-ref"));
            let Some(v) = self.blk.vbds.get(&(dom, devid)) else { continue };
            let answered = v.live.as_ref().map_or((0, 0), |l| (l.conn.answered, l.conn.errors));
            rows.push(blkback::DiskRow { devid, target: v.claim.target.clone(), readonly: v.claim.readonly, states, evtchn, ring_ref, answered });
        }
        rows
    }

    /// Everything of `dom`'s virtual disks: connections, claims, watches, back-end nodes
    /// (its front-end nodes go with its home).
    pub fn release_vbds(&mut self, dom: u16) {
        let devids: Vec<u32> = self.blk.vbds.keys().filter(|(d, _)| *d == dom).map(|&(_, id)| id).collect();
        for devid in devids {
            self.disconnect_vbd(dom, devid);
            self.blk.vbds.remove(&(dom, devid));
            self.blk.claims.release(dom, devid);
            let front_state = format!("{}/state", blkback::frontend_path(dom, devid));
            let _ = self.store.unwatch(&front_state, &token(dom, devid));
        }
        let _ = self.store.rm(&format!("/local/domain/0/backend/vbd/{dom}"));
    }
}
