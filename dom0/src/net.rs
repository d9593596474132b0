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

/// Grant copies through one staging page (its address here and its machine frame), made
/// when the first vif is attached.
#[derive(Default)]
pub struct NetIo {
    staging: Option<(u64, u64)>,
}

impl NetIo {
    fn staging(&mut self) -> Option<(&mut [u8; 4096], u64)> {
        let (va, mfn) = self.staging?;
        // SAFETY: a page-aligned page of dom0's heap taken for good by `XenControl::vifs_ready`
        // and used only here, one copy at a time.
        Some((unsafe { &mut *(va as *mut [u8; 4096]) }, mfn))
    }
}

impl NetMachine for NetIo {
    fn copy_in(&mut self, dom: u16, pieces: &[xenbus::netif::Piece], into: &mut Vec<u8>) -> Result<(), usize> {
        let Some((_, mfn)) = self.staging() else { return Err(0) };
        let mut at = 0u16;
        let mut ops: Vec<GnttabCopy> = Vec::with_capacity(pieces.len());
        for p in pieces {
            if usize::from(at) + usize::from(p.len) > 4096 {
                return Err(ops.len());
            }
            let source = grant::copy_gref(dom, p.gref, p.offset);
            let dest = grant::copy_local(mfn, at);
            ops.push(GnttabCopy { source, dest, len: p.len, flags: GNTCOPY_SOURCE_GREF, status: 0, _pad: 0 });
            at += p.len;
        }
        if grant::copy(&mut ops).is_err() {
            return Err(0);
        }
        if let Some(bad) = ops.iter().position(|op| op.status != GNTST_OKAY) {
            return Err(bad);
        }
        let Some((page, _)) = self.staging() else { return Err(0) };
        into.extend_from_slice(&page[..usize::from(at)]);
        Ok(())
    }

    fn copy_out(&mut self, dom: u16, gref: u32, frame: &[u8]) -> bool {
        let Some((page, mfn)) = self.staging() else { return false };
        let Some(dst) = page.get_mut(..frame.len()) else { return false };
        dst.copy_from_slice(frame);
        let mut op = [GnttabCopy {
            source: grant::copy_local(mfn, 0),
            dest: grant::copy_gref(dom, gref, 0),
            len: frame.len() as u16,
            flags: GNTCOPY_DEST_GREF,
            status: 0,
            _pad: 0,
        }];
        grant::copy(&mut op).is_ok() && op[0].status == GNTST_OKAY
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

    /// The staging page, made on first use: a page of the heap and its frame.
    fn vifs_ready(&mut self) -> Result<(), String> {
        if self.net.back.machine.staging.is_some() {
            return Ok(());
        }
        let layout = Layout::from_size_align(4096, 4096).map_err(|_| String::from("no page layout"))?;
        // SAFETY: a non-zero size; the page is kept for good (the staging page).
        let p = unsafe { alloc_zeroed(layout) };
        if p.is_null() {
            return Err(String::from("no memory for the network staging page"));
        }
        let mfn = self.frame_of(p as u64).ok_or("the staging page has no frame")?;
        self.net.back.machine.staging = Some((p as u64, mfn));
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
