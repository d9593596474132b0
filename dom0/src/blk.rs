//! The block back-end's machine half: dom0's disk under `dom0::blkback::Blkback` (the
//! split-driver framework's back end for vbds), with grant copies between the front ends'
//! pages and a staging buffer in the DMA pool, and the virtual disks given to guests
//! (`dom0::split::XenbusDevices`: attached by the toolstack, connected when the front end
//! publishes its ring, served on its events, released when it closes or its guest goes).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use dom0::blkback::{self, Blkback, DiskFailed, STAGING_BYTES};
use dom0::config::disk::DiskSpec;
use dom0::split::{DevKey, XenbusDevices};
use hypercall_abi::grant_table::{GnttabCopy, GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GNTST_OKAY};
use pv_guest::grant;
use pv_guest::shared_page::SharedPage;

use crate::devices::Disk;
use crate::xen_control::XenControl;

/// dom0's disk as blkback drives it: the disk, and the staging buffer (machine and virtual
/// address of `STAGING_BYTES` in the DMA pool), made on first use.
pub struct DiskIo {
    disk: Disk,
    staging: Option<(u64, u64)>,
}

impl DiskIo {
    /// Over `disk`.
    pub fn new(disk: Disk) -> DiskIo {
        DiskIo { disk, staging: None }
    }

    /// The staging buffer, made on first use: its machine address and its first `bytes`.
    fn staging(&mut self, bytes: usize) -> Option<(u64, &mut [u8])> {
        if self.staging.is_none() {
            self.staging = crate::devices::staging(STAGING_BYTES / 4096);
        }
        let (maddr, va) = self.staging?;
        // SAFETY: the staging buffer is STAGING_BYTES of the DMA pool, mapped for good and
        // used only by the back end, one request at a time; `bytes` is at most that (the
        // request was checked: at most 11 segments of a page).
        Some((maddr, unsafe { core::slice::from_raw_parts_mut(va as *mut u8, bytes.min(STAGING_BYTES)) }))
    }
}

impl blkback::BlockMachine for DiskIo {
    fn grant_copy(&mut self, dom: u16, segments: &[(u32, u16, u16, usize)], to_staging: bool) -> Result<(), usize> {
        let Some((staging, _)) = self.staging(0) else {
            return Err(0);
        };
        // A segment may straddle two staging pages: it is copied in two pieces.
        let mut ops: Vec<(usize, GnttabCopy)> = Vec::new();
        for (i, &(gref, offset, len, at)) in segments.iter().enumerate() {
            let (mut done, len) = (0usize, usize::from(len));
            while done < len {
                let local = at + done;
                let piece = (len - done).min(4096 - local % 4096);
                let mfn = (staging + (local as u64 & !0xfff)) >> 12;
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
        let disk = &mut self.disk as *mut Disk;
        let (_, buf) = self.staging(bytes).ok_or(DiskFailed)?;
        // SAFETY: `disk` is this value's own disk, not otherwise used while `buf` (the
        // staging buffer, memory apart from it) is borrowed.
        unsafe { (*disk).read(sector, buf) }.map_err(|_| DiskFailed)
    }

    fn disk_write(&mut self, sector: u64, bytes: usize) -> Result<(), DiskFailed> {
        let disk = &mut self.disk as *mut Disk;
        let (_, buf) = self.staging(bytes).ok_or(DiskFailed)?;
        // SAFETY: as in `disk_read`.
        unsafe { (*disk).write(sector, buf) }.map_err(|_| DiskFailed)
    }

    fn disk_flush(&mut self) -> Result<(), DiskFailed> {
        self.disk.flush().map_err(|_| DiskFailed)
    }
}

/// The block back end over dom0's disk.
pub type BlockBackend = Blkback<DiskIo>;

/// The block back end and the virtual disks it serves.
#[derive(Default)]
pub struct Vbds {
    /// The back end: the disk, its partitions, the claims.
    pub back: BlockBackend,
    devices: XenbusDevices<BlockBackend, SharedPage>,
}

impl Vbds {
    /// Takes dom0's disk and its `partitions`; `files` is the one holding dom0's files.
    pub fn set_disk(&mut self, disk: Disk, partitions: Vec<blkback::PartitionExtent>, files: Option<u32>) {
        let (sectors, readonly) = (disk.sectors, disk.readonly);
        self.back.set_disk(DiskIo::new(disk), sectors, readonly, partitions, files);
    }
}

impl XenControl {
    /// Runs `f` on the vbds with the machine (`self`) beside them.
    fn with_vbds<T>(&mut self, f: impl FnOnce(&mut XenbusDevices<BlockBackend, SharedPage>, &mut BlockBackend, &mut XenControl) -> T) -> T {
        let mut vbds = core::mem::take(&mut self.blk);
        let out = f(&mut vbds.devices, &mut vbds.back, self);
        self.blk = vbds;
        out
    }

    /// Gives `dom` the virtual disk `spec`. The error names what is wrong.
    pub fn attach_vbd(&mut self, dom: u16, spec: &DiskSpec) -> Result<(), String> {
        let key = DevKey { dom, devid: spec.devid };
        self.with_vbds(|devs, back, m| devs.attach(back, m, key, spec))
    }

    /// Looks at the front ends whose state changed, and serves the vbds whose ports
    /// signalled (`keys`): the lines to print (a vbd connected, refused, or disconnected).
    pub fn serve_vbds(&mut self, keys: &[DevKey]) -> Vec<String> {
        self.with_vbds(|devs, back, m| {
            let mut lines = devs.front_events(back, m);
            lines.extend(keys.iter().filter_map(|&key| devs.serve(back, m, key)));
            lines
        })
    }

    /// `xl block-detach`: answers what the front end has queued, disconnects and removes
    /// the device. Nothing acknowledged is lost.
    pub fn detach_vbd(&mut self, dom: u16, devid: u32) -> Result<(), String> {
        let broke = self.with_vbds(|devs, back, m| devs.detach(back, m, DevKey { dom, devid }))?;
        if let Some(line) = broke {
            pv_guest::println!("{line}");
        }
        Ok(())
    }

    /// `xl block-list`: `dom`'s virtual disks with their states.
    pub fn vbd_rows(&mut self, dom: u16) -> Vec<blkback::DiskRow> {
        let mut rows = Vec::new();
        for key in self.blk.devices.keys_of(dom) {
            let num = |ctl: &mut XenControl, path: String| dom0::split::read_number(ctl, &path).ok();
            let (back, front) = (blkback::backend_path(dom, key.devid), blkback::frontend_path(dom, key.devid));
            let states = (num(self, format!("{back}/state")), num(self, format!("{front}/state")));
            let evtchn = num(self, format!("{front}/event-channel"));
            let ring_ref = num(self, format!("{front}/ring-ref"));
            let Some(claim) = self.blk.devices.config(key) else { continue };
            let answered = self.blk.devices.conn(key).map_or((0, 0), |c| (c.answered, c.errors));
            rows.push(blkback::DiskRow { devid: key.devid, target: claim.target.clone(), readonly: claim.readonly, states, evtchn, ring_ref, answered });
        }
        rows
    }

    /// Everything of `dom`'s virtual disks (it is being destroyed).
    pub fn release_vbds(&mut self, dom: u16) {
        self.with_vbds(|devs, back, m| devs.release_dom(back, m, dom));
    }
}
