//! The network back end's machine half: `dom0::netback::Netback` over grant copies through
//! a staging page of dom0's, and the vifs given to guests (`dom0::split::XenbusDevices`:
//! attached by the toolstack, connected when the front end publishes its rings, served on
//! their events and whenever the switch queued frames for them).

use alloc::alloc::{alloc_zeroed, Layout};
use alloc::string::String;
use alloc::vec::Vec;

use dom0::config::vif::VifSpec;
use dom0::netback::{NetMachine, Netback, NicRow};
use dom0::split::{DevKey, Kind, XenbusDevices};
use dom0::vswitch::PortId;
use hypercall_abi::grant_table::{GnttabCopy, GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GNTST_OKAY};
use pv_guest::grant;
use pv_guest::shared_page::SharedPage;

use crate::devices::Nic;
use crate::xen_control::XenControl;

/// Grant copies through staging pages of dom0's (their addresses here and machine
/// frames), one per frame of a batch, made when the first vif is attached.
#[derive(Default)]
pub struct NetIo {
    staging: Vec<(u64, u64)>,
}

impl NetIo {
    /// Staging page `i`.
    fn page(&mut self, i: usize) -> Option<&mut [u8; 4096]> {
        let &(va, _) = self.staging.get(i)?;
        // SAFETY: a page-aligned page of dom0's heap taken for good by
        // `XenControl::vifs_ready` and used only here, by one batch at a time.
        Some(unsafe { &mut *(va as *mut [u8; 4096]) })
    }

    /// Runs `ops` (their frame indices beside them): which frames had every copy succeed.
    fn run(ops: &mut [GnttabCopy], owners: &[usize], frames: usize) -> Vec<bool> {
        let mut ok = alloc::vec![grant::copy(ops).is_ok(); frames];
        for (op, &i) in ops.iter().zip(owners) {
            if op.status != GNTST_OKAY {
                ok[i] = false;
            }
        }
        ok
    }
}

impl NetMachine for NetIo {
    fn copy_in(&mut self, dom: u16, frames: &[&[xenbus::netif::Piece]]) -> Vec<Option<Vec<u8>>> {
        let mut ops: Vec<GnttabCopy> = Vec::new();
        let mut owners = Vec::new();
        let mut lens = alloc::vec![0usize; frames.len()];
        for (i, pieces) in frames.iter().enumerate() {
            let Some(&(_, mfn)) = self.staging.get(i) else { break };
            let mut at = 0usize;
            for p in pieces.iter() {
                if at + usize::from(p.len) > 4096 {
                    break;
                }
                let source = grant::copy_gref(dom, p.gref, p.offset);
                let dest = grant::copy_local(mfn, at as u16);
                ops.push(GnttabCopy { source, dest, len: p.len, flags: GNTCOPY_SOURCE_GREF, status: 0, _pad: 0 });
                owners.push(i);
                at += usize::from(p.len);
            }
            lens[i] = at;
        }
        let ok = Self::run(&mut ops, &owners, frames.len());
        (0..frames.len())
            .map(|i| {
                let whole = lens[i] == frames[i].iter().map(|p| usize::from(p.len)).sum::<usize>();
                if ok[i] && whole {
                    self.page(i).map(|page| page[..lens[i]].to_vec())
                } else {
                    None
                }
            })
            .collect()
    }

    fn copy_out(&mut self, dom: u16, frames: &[(u32, &[u8])]) -> Vec<bool> {
        let mut ops: Vec<GnttabCopy> = Vec::new();
        let mut owners = Vec::new();
        let mut fits = alloc::vec![false; frames.len()];
        for (i, &(gref, frame)) in frames.iter().enumerate() {
            let Some(&(_, mfn)) = self.staging.get(i) else { break };
            let Some(dst) = self.page(i).and_then(|p| p.get_mut(..frame.len())) else { continue };
            dst.copy_from_slice(frame);
            fits[i] = true;
            ops.push(GnttabCopy {
                source: grant::copy_local(mfn, 0),
                dest: grant::copy_gref(dom, gref, 0),
                len: frame.len() as u16,
                flags: GNTCOPY_DEST_GREF,
                status: 0,
                _pad: 0,
            });
            owners.push(i);
        }
        let ok = Self::run(&mut ops, &owners, frames.len());
        ok.iter().zip(&fits).map(|(&a, &b)| a && b).collect()
    }

    fn now_ns(&self) -> u64 {
        pv_guest::time::now_ns()
    }
}

/// The network back end over dom0's grant copies.
pub type NetBackend = Netback<NetIo>;

/// The network back end, the vifs it serves and the machine's NIC (the switch's uplink).
pub struct Vifs {
    /// The back end: the switch and its machine.
    pub back: NetBackend,
    devices: XenbusDevices<NetBackend, SharedPage>,
    /// The NIC, if the machine has one.
    pub uplink: Option<Nic>,
}

impl Default for Vifs {
    fn default() -> Self {
        Vifs { back: Netback::new(NetIo::default()), devices: XenbusDevices::default(), uplink: None }
    }
}

impl Vifs {
    /// Makes `nic` the switch's uplink: frames to addresses not learned on a vif go out
    /// of it, and what it receives is switched to the guests.
    pub fn set_uplink(&mut self, nic: Nic) {
        self.back.switch.add_port(PortId::Uplink, dom0::vswitch::Policy::default());
        self.uplink = Some(nic);
    }

    /// Sends what the switch queued for the uplink.
    fn flush_uplink(&mut self) {
        if let Some(nic) = self.uplink.as_mut() {
            while let Some(frame) = self.back.switch.take(PortId::Uplink) {
                nic.send(&frame);
            }
        }
    }
}

impl XenControl {
    /// Runs `f` on the vifs with the machine (`self`) beside them.
    fn with_vifs<T>(&mut self, f: impl FnOnce(&mut XenbusDevices<NetBackend, SharedPage>, &mut NetBackend, &mut XenControl) -> T) -> T {
        let mut vifs = core::mem::take(&mut self.net);
        let out = f(&mut vifs.devices, &mut vifs.back, self);
        self.net = vifs;
        out
    }

    /// The staging pages, made on first use: a batch's worth of heap pages and their frames.
    fn vifs_ready(&mut self) -> Result<(), String> {
        if !self.net.back.machine.staging.is_empty() {
            return Ok(());
        }
        let layout = Layout::from_size_align(4096, 4096).map_err(|_| String::from("no page layout"))?;
        let mut pages = Vec::new();
        for _ in 0..dom0::netback::BATCH {
            // SAFETY: a non-zero size; the page is kept for good (a staging page).
            let p = unsafe { alloc_zeroed(layout) };
            if p.is_null() {
                return Err(String::from("no memory for the network staging pages"));
            }
            let mfn = self.frame_of(p as u64).ok_or("a staging page has no frame")?;
            pages.push((p as u64, mfn));
        }
        self.net.back.machine.staging = pages;
        Ok(())
    }

    /// Gives `dom` the network interface `spec`. The error names what is wrong.
    pub fn attach_vif(&mut self, dom: u16, spec: &VifSpec) -> Result<(), String> {
        self.vifs_ready()?;
        let key = DevKey { dom, devid: spec.devid };
        self.with_vifs(|devs, back, m| devs.attach(back, m, key, spec))
    }

    /// `xl network-detach`: answers what is queued, disconnects and removes the vif.
    pub fn detach_vif(&mut self, dom: u16, devid: u32) -> Result<(), String> {
        let broke = self.with_vifs(|devs, back, m| devs.detach(back, m, DevKey { dom, devid }))?;
        if let Some(line) = broke {
            pv_guest::println!("{line}");
        }
        Ok(())
    }

    /// Looks at the front ends whose state changed, serves the vifs whose ports signalled
    /// (`keys`), the vifs whose rate window opened, and then every vif the switch queued
    /// frames for, until none is left: the lines to print.
    pub fn serve_vifs(&mut self, keys: &[DevKey]) -> Vec<String> {
        // What the NIC received goes into the switch first.
        let now = pv_guest::time::now_ns();
        if let Some(nic) = self.net.uplink.as_mut() {
            for frame in nic.receive() {
                self.net.back.input(PortId::Uplink, frame, now);
            }
        }
        let lines = self.with_vifs(|devs, back, m| {
            let mut lines = devs.front_events(back, m);
            let mut todo: Vec<DevKey> = keys.to_vec();
            todo.extend(back.due(now));
            // The vifs the NIC's frames went to.
            todo.extend(back.take_kicks().into_iter().filter_map(|p| if let PortId::Vif(k) = p { Some(k) } else { None }));
            // A bound on the rounds: each round only delivers what the last one queued.
            for _ in 0..64 {
                if todo.is_empty() {
                    break;
                }
                todo.sort_unstable();
                todo.dedup();
                for key in core::mem::take(&mut todo) {
                    lines.extend(devs.serve(back, m, key));
                }
                todo = back.take_kicks().into_iter().filter_map(|p| if let PortId::Vif(k) = p { Some(k) } else { None }).collect();
            }
            lines
        });
        self.net.flush_uplink();
        lines
    }

    /// When a vif held by its rate may send again.
    pub fn vif_deadline(&self) -> Option<u64> {
        self.net.back.next_deadline()
    }

    /// `xl network-list`: `dom`'s vifs.
    pub fn vif_rows(&mut self, dom: u16) -> Vec<NicRow> {
        let mut rows = Vec::new();
        for key in self.net.devices.keys_of(dom) {
            let num = |ctl: &mut XenControl, path: String| dom0::split::read_number(ctl, &path).ok();
            let (back, front) = (dom0::split::backend_path(Kind::Vif, key), dom0::split::frontend_path(Kind::Vif, key));
            let states = (num(self, alloc::format!("{back}/state")), num(self, alloc::format!("{front}/state")));
            let evtchn = num(self, alloc::format!("{front}/event-channel"));
            let rings = (num(self, alloc::format!("{front}/tx-ring-ref")), num(self, alloc::format!("{front}/rx-ring-ref")));
            let Some(vif) = self.net.devices.config(key) else { continue };
            let mac = alloc::format!("{}", vif.mac);
            let counters = self.net.devices.conn(key).map(|c| c.counters);
            let sw = self.net.back.switch.counters(PortId::Vif(key)).unwrap_or_default();
            rows.push(NicRow { devid: key.devid, mac, states, evtchn, rings, counters, refused: sw.refused, overflow: sw.overflow });
        }
        rows
    }

    /// Everything of `dom`'s vifs (it is being destroyed).
    pub fn release_vifs(&mut self, dom: u16) {
        self.with_vifs(|devs, back, m| devs.release_dom(back, m, dom));
    }
}
