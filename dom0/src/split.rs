//! The split-driver framework: what every back end in dom0 shares, so that a driver is only
//! its protocol.
//!
//! - **The dispatch table** ([`PortTable`]): dom0's event-channel port of each device it
//!   serves, and which device (kind, guest, device number) it is. Every device port runs
//!   one handler; the loop asks the table whose port signalled.
//! - **The machine** ([`SplitMachine`]): the store, mapping a guest's ring page (by grant, or
//!   by frame for the console and store rings the builder sets up, as Xen's xenconsoled and
//!   xenstored map them), binding and closing dom0's end of an event channel, notifying.
//!   dom0 implements it with hypercalls; host tests with a fake.
//! - **Channels** ([`Channel`]): a device's mapped rings and its port, made and released in
//!   one place ([`open_channel`], [`close_channel`]) for every kind of device, in the order
//!   that leaves nothing behind: out of the dispatch table, port closed, rings unmapped.
//! - **Ring back ends** ([`RingChannels`] over a [`RingBackend`]): the console and store,
//!   whose rings the builder sets up: connected to a channel's page, disconnected (the
//!   page given back) before the channel closes when the guest goes.
//! - **xenbus devices** ([`XenbusDevices`] over a [`Backend`]): the handshake of Xen's
//!   `xenbus_probe_backend` and `xenbus_*_otherend` for devices the toolstack adds to a
//!   guest (vbd, vif). Attach writes the back-end and front-end directories (the back end's
//!   readable by the guest, as libxl sets it) and watches the front end's `state`; when the
//!   front end says Initialised it maps the rings it names, binds its event channel and
//!   says Connected; a ring that lies, a front end that closes, `xl *-detach` and the
//!   guest's death disconnect it and release everything. A driver says only what differs:
//!   its nodes, its ring nodes, how it serves a connection.
//!
//! Everything here is plain data over the two traits, so host tests play the machine and
//! a hostile front end.
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xenbus::ring::SharedMem;
use xenbus::state::XenbusState;
use xenbus::wire::XsError;

use crate::xenstore::StoreService;

/// The kinds of device dom0's back ends serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A guest's first console (the ring the builder made).
    Console,
    /// A guest's store ring.
    Store,
    /// A virtual block device (`io/blkif.h`).
    Vbd,
    /// A virtual network interface (`io/netif.h`).
    Vif,
}

impl Kind {
    /// What a user calls it.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Console => "console",
            Kind::Store => "store ring",
            Kind::Vbd => "virtual disk",
            Kind::Vif => "network interface",
        }
    }

    /// The device type's name in the store (`backend/<name>/...`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Console => "console",
            Kind::Store => "store",
            Kind::Vbd => "vbd",
            Kind::Vif => "vif",
        }
    }
}

/// A device of a guest: the guest and the device number (0 for the console and store).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DevKey {
    /// The guest.
    pub dom: u16,
    /// The device number (a vbd's `virtual-device`, a vif's handle).
    pub devid: u32,
}

/// A device a back end in dom0 serves, as the dispatch table names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Device {
    /// Which back end.
    pub kind: Kind,
    /// Which device.
    pub key: DevKey,
}

impl Device {
    /// `kind`'s device `devid` of `dom`.
    pub fn new(kind: Kind, dom: u16, devid: u32) -> Device {
        Device { kind, key: DevKey { dom, devid } }
    }
}

/// The dispatch table: each port dom0 bound to serve a guest's device, and the device.
#[derive(Debug, Default)]
pub struct PortTable {
    by_port: BTreeMap<u32, Device>,
}

impl PortTable {
    /// Enters `port` for `device`; false if the port already serves a device (it is left so).
    pub fn enter(&mut self, port: u32, device: Device) -> bool {
        if self.by_port.contains_key(&port) {
            return false;
        }
        self.by_port.insert(port, device);
        true
    }

    /// Takes `port` out; the device it served.
    pub fn forget(&mut self, port: u32) -> Option<Device> {
        self.by_port.remove(&port)
    }

    /// The device `port` serves.
    pub fn device_of(&self, port: u32) -> Option<Device> {
        self.by_port.get(&port).copied()
    }

    /// The ports serving `dom`'s devices.
    pub fn ports_of(&self, dom: u16) -> Vec<u32> {
        self.by_port.iter().filter(|(_, d)| d.key.dom == dom).map(|(&p, _)| p).collect()
    }

    /// How many ports are entered.
    pub fn len(&self) -> usize {
        self.by_port.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.by_port.is_empty()
    }
}

/// Where a device's ring page is: a grant of the guest's (front ends publish these), or a
/// frame of the guest's (the console and store rings the builder set up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingSource {
    /// The guest's grant reference.
    Grant(u32),
    /// The guest's machine frame.
    Frame(u64),
}

/// Where dom0's end of a device's event channel comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortSource {
    /// The guest's unbound port, to bind now (front ends publish these).
    Remote(u32),
    /// dom0's port, already bound (by the builder).
    Local(u32),
}

/// A mapping the machine made (a slot of dom0's ring window); given back to unmap.
pub type MapId = usize;

/// What the framework needs from the machine: the store (as dom0, its own connection),
/// mapping guests' ring pages, and dom0's event channels. Errors are sentences.
pub trait SplitMachine {
    /// A mapped ring page.
    type Page: SharedMem;
    /// The page type of the store's guest rings.
    type StorePage: SharedMem;
    /// The store, which the framework uses as dom0 (its own connection).
    fn store(&mut self) -> &mut StoreService<Self::StorePage>;
    /// Reads a node.
    fn read(&mut self, path: &str) -> Result<Vec<u8>, XsError> {
        self.store().read(path)
    }
    /// Writes a node.
    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.store().write(path, value)
    }
    /// Removes a node and what is under it.
    fn rm(&mut self, path: &str) -> Result<(), XsError> {
        self.store().rm(path)
    }
    /// Sets a node's permissions (`n0`, `r5`, ...).
    fn set_perms(&mut self, path: &str, perms: &[&str]) -> Result<(), XsError> {
        self.store().set_perms(path, perms)
    }
    /// Watches `path` with `token` on dom0's connection.
    fn watch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.store().watch(path, token)
    }
    /// Removes that watch.
    fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.store().unwatch(path, token)
    }
    /// The token of the next watch event on dom0's connection whose token starts with
    /// `prefix` (taken out of the queue).
    fn take_event_for(&mut self, prefix: &str) -> Option<String> {
        self.store().take_event_for(prefix).map(|(_, token)| token)
    }
    /// Maps `dom`'s page writable: the mapping and the page.
    fn map(&mut self, dom: u16, ring: RingSource) -> Result<(MapId, Self::Page), String>;
    /// Unmaps it (the page value is gone by now).
    fn unmap(&mut self, map: MapId);
    /// dom0's end of `dom`'s channel: binds `Remote`, or takes `Local` as it is; then
    /// enters it in the dispatch table for `device`, with pending events cleared. Masked.
    fn bind(&mut self, device: Device, port: PortSource) -> Result<u32, String>;
    /// Unmasks a bound port (serving may start).
    fn unmask(&mut self, port: u32);
    /// Takes `port` out of the dispatch table, masks and closes it.
    fn unbind(&mut self, port: u32);
    /// Sends an event on `port`.
    fn notify(&mut self, port: u32);
}

/// A device's connection: its ring pages mapped in dom0, and dom0's port.
pub struct Channel<P> {
    /// The device.
    pub device: Device,
    /// The mapped rings, in the order asked for.
    pub rings: Vec<P>,
    maps: Vec<MapId>,
    /// dom0's port.
    pub port: u32,
}

/// Maps `rings` of `device`'s guest and binds its channel `port` (left masked: unmask when
/// serving may start). Nothing stays mapped or bound if it fails; the error names what.
pub fn open_channel<M: SplitMachine>(m: &mut M, device: Device, rings: &[(&str, RingSource)], port: PortSource) -> Result<Channel<M::Page>, String> {
    let mut maps = Vec::new();
    let mut pages = Vec::new();
    for &(what, source) in rings {
        match m.map(device.key.dom, source) {
            Ok((id, page)) => {
                maps.push(id);
                pages.push(page);
            }
            Err(why) => {
                drop(pages);
                maps.into_iter().for_each(|id| m.unmap(id));
                return Err(match source {
                    RingSource::Grant(g) => format!("{what} {g} does not map ({why})"),
                    RingSource::Frame(f) => format!("{what} (frame {f:#x}) does not map ({why})"),
                });
            }
        }
    }
    match m.bind(device, port) {
        Ok(port) => Ok(Channel { device, rings: pages, maps, port }),
        Err(why) => {
            drop(pages);
            maps.into_iter().for_each(|id| m.unmap(id));
            let what = match port {
                PortSource::Remote(p) | PortSource::Local(p) => p,
            };
            Err(format!("event-channel {what}: {why}"))
        }
    }
}

/// Releases a channel: its port out of the dispatch table and closed (no event can come
/// for it any more), then its rings unmapped.
pub fn close_channel<M: SplitMachine>(m: &mut M, channel: Channel<M::Page>) {
    let Channel { rings, maps, port, .. } = channel;
    m.unbind(port);
    drop(rings);
    maps.into_iter().for_each(|id| m.unmap(id));
}

/// A back end whose devices' rings the builder sets up rather than the store negotiates:
/// a guest's console and store rings, named in its `start_info` (Xen's xenconsoled and
/// xenstored take them the same way). It is given the page of a channel the framework
/// opened, serves it, and gives it back when the device goes.
pub trait RingBackend<P> {
    /// The kind of device.
    const KIND: Kind;
    /// Starts serving guest `dom` (named `name`) over `page`, dom0's end being `port`.
    fn connect(&mut self, dom: u16, name: &str, page: P, port: u32) -> Result<(), String>;
    /// Stops serving `dom` (what it left is handled first): its page, for unmapping.
    fn disconnect(&mut self, dom: u16) -> Option<P>;
}

/// The channels of the [`RingBackend`]s' devices, each kept until its guest goes.
pub struct RingChannels<P> {
    channels: BTreeMap<Device, Channel<P>>,
}

impl<P> Default for RingChannels<P> {
    fn default() -> Self {
        RingChannels { channels: BTreeMap::new() }
    }
}

impl<P> RingChannels<P> {
    /// Maps `dom`'s ring (frame `mfn`), takes dom0's bound `port`, and hands the page to
    /// the back end `b` finds in the machine (wrapped by `wrap`); serving starts unmasked.
    /// Nothing stays if any step fails.
    #[allow(clippy::too_many_arguments)] // the device's name, ring and port, as the builder has them
    pub fn connect<M, B, Q>(&mut self, m: &mut M, b: fn(&mut M) -> &mut B, dom: u16, name: &str, mfn: u64, port: u32, wrap: fn(P) -> Q) -> Result<(), String>
    where
        M: SplitMachine<Page = P>,
        B: RingBackend<Q>,
    {
        let device = Device::new(B::KIND, dom, 0);
        if self.channels.contains_key(&device) {
            return Err(format!("d{dom}'s {} is served already", B::KIND.noun()));
        }
        let mut channel = open_channel(m, device, &[(B::KIND.noun(), RingSource::Frame(mfn))], PortSource::Local(port))?;
        let page = channel.rings.pop().ok_or("no ring")?;
        if let Err(e) = b(m).connect(dom, name, wrap(page), port) {
            close_channel(m, channel);
            return Err(e);
        }
        m.unmask(port);
        self.channels.insert(device, channel);
        Ok(())
    }

    /// Stops `b` serving `dom` and closes the channel (out of the table, port closed,
    /// ring unmapped), in that order.
    pub fn release<M, B, Q>(&mut self, m: &mut M, b: fn(&mut M) -> &mut B, dom: u16)
    where
        M: SplitMachine<Page = P>,
        B: RingBackend<Q>,
    {
        drop(b(m).disconnect(dom));
        if let Some(channel) = self.channels.remove(&Device::new(B::KIND, dom, 0)) {
            close_channel(m, channel);
        }
    }
}

/// What a turn of serving a device did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Served {
    /// Responses published; whether the front end asked to be notified.
    Answered {
        /// Notify the front end.
        notify: bool,
    },
    /// The ring lied: stop serving it and disconnect the device.
    Broken(String),
}

/// One kind of xenbus device served in dom0 (blkback, netback): only what differs between
/// drivers. `P` is the machine's ring page.
pub trait Backend<P: SharedMem> {
    /// What the toolstack asks for (a config's `disk = [...]` entry).
    type Spec;
    /// What attaching made of it (the device's claim on dom0's resources).
    type Config;
    /// A connected device's serving state.
    type Conn;
    /// The device type.
    const KIND: Kind;
    /// The front end's nodes naming its ring grants, in the order `connect` gets the rings.
    const RING_NODES: &'static [&'static str];

    /// Takes what `spec` needs (a partition, an address): the device's config, or why not.
    fn attach(&mut self, key: DevKey, spec: &Self::Spec) -> Result<Self::Config, String>;
    /// The nodes to write for a new device, both directories, `state`s included (the back
    /// end's InitWait, the front end's Initialising): (path, value), in writing order.
    fn nodes(&self, key: DevKey, config: &Self::Config) -> Vec<(String, String)>;
    /// Sets up serving over the front end's mapped rings; `front` reads its other nodes
    /// (by name, under its directory). The error says what is wrong.
    fn connect(&mut self, key: DevKey, config: &Self::Config, front: &mut dyn FnMut(&str) -> Option<Vec<u8>>, rings: &mut [P]) -> Result<Self::Conn, String>;
    /// Serves what the front end queued.
    fn serve(&mut self, key: DevKey, conn: &mut Self::Conn, rings: &mut [P]) -> Served;
    /// The device is gone (detached, or its guest destroyed): gives back what attach took.
    fn release(&mut self, key: DevKey, config: &Self::Config);
}

/// The back-end directory of `kind`'s device `key`, where libxl places it.
pub fn backend_path(kind: Kind, key: DevKey) -> String {
    format!("/local/domain/0/backend/{}/{}/{}", kind.name(), key.dom, key.devid)
}

/// The front-end directory of `kind`'s device `key`.
pub fn frontend_path(kind: Kind, key: DevKey) -> String {
    format!("/local/domain/{}/device/{}/{}", key.dom, kind.name(), key.devid)
}

/// The token of dom0's watch on a front end's `state`: `<kind>:<dom>:<devid>`.
pub fn token(kind: Kind, key: DevKey) -> String {
    format!("{}:{}:{}", kind.name(), key.dom, key.devid)
}

/// The device a watch token names, if it is one of `kind`'s.
pub fn parse_token(kind: Kind, token: &str) -> Option<DevKey> {
    let rest = token.strip_prefix(kind.name())?.strip_prefix(':')?;
    let (dom, devid) = rest.split_once(':')?;
    Some(DevKey { dom: dom.parse().ok()?, devid: devid.parse().ok()? })
}

/// The number a node holds; the error names the node and says what is wrong.
pub fn read_number(m: &mut impl SplitMachine, path: &str) -> Result<u32, String> {
    let v = m.read(path).map_err(|e| format!("no {path} ({})", e.name()))?;
    core::str::from_utf8(&v).ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| format!("{path} is not a number"))
}

/// One attached device.
struct Dev<B: Backend<P>, P: SharedMem> {
    config: B::Config,
    live: Option<(Channel<P>, B::Conn)>,
}

/// The devices of one back end, and the xenbus handshake with their front ends.
pub struct XenbusDevices<B: Backend<P>, P: SharedMem> {
    devices: BTreeMap<DevKey, Dev<B, P>>,
}

impl<B: Backend<P>, P: SharedMem> Default for XenbusDevices<B, P> {
    fn default() -> Self {
        XenbusDevices { devices: BTreeMap::new() }
    }
}

/// The line a device's change of state prints.
fn line(kind: Kind, key: DevKey, what: &str) -> String {
    format!("dom0: d{} {} {}: {what}", key.dom, kind.name(), key.devid)
}

impl<B: Backend<P>, P: SharedMem> XenbusDevices<B, P> {
    /// Gives `key.dom` the device `spec`: the back end takes what it needs, the nodes are
    /// written (the back-end directory readable by the guest, owned by dom0), and the front
    /// end's `state` is watched. Nothing is left if it fails; the error says why.
    pub fn attach<M: SplitMachine<Page = P>>(&mut self, b: &mut B, m: &mut M, key: DevKey, spec: &B::Spec) -> Result<(), String> {
        if self.devices.contains_key(&key) {
            return Err(format!("d{} already has {} {}", key.dom, B::KIND.noun(), key.devid));
        }
        let config = b.attach(key, spec)?;
        let back = backend_path(B::KIND, key);
        let front_state = format!("{}/state", frontend_path(B::KIND, key));
        let store_err = |e: XsError| format!("the store refused the {}'s nodes: {}", B::KIND.name(), e.name());
        let mut written = m.write(&back, b"").map_err(store_err);
        written = written.and_then(|()| m.set_perms(&back, &["n0", &format!("r{}", key.dom)]).map_err(store_err));
        for (path, value) in b.nodes(key, &config) {
            written = written.and_then(|()| m.write(&path, value.as_bytes()).map_err(store_err));
        }
        written = written.and_then(|()| m.watch(&front_state, &token(B::KIND, key)).map_err(store_err));
        if let Err(e) = written {
            let _ = m.unwatch(&front_state, &token(B::KIND, key));
            let _ = m.rm(&back);
            let _ = m.rm(&frontend_path(B::KIND, key));
            b.release(key, &config);
            return Err(e);
        }
        self.devices.insert(key, Dev { config, live: None });
        Ok(())
    }

    /// Handles the watch events on dom0's connection for this kind's front ends: the lines
    /// to print (a device connected, refused, or disconnected).
    pub fn front_events<M: SplitMachine<Page = P>>(&mut self, b: &mut B, m: &mut M) -> Vec<String> {
        let prefix = format!("{}:", B::KIND.name());
        let mut lines = Vec::new();
        while let Some(tok) = m.take_event_for(&prefix) {
            if let Some(key) = parse_token(B::KIND, &tok) {
                lines.extend(self.front_changed(b, m, key));
            }
        }
        lines
    }

    /// The front end of `key` may have changed state: the back end moves as Xen's state
    /// machine says (`XenbusState::back_reacts_to`). It connects from InitWait when the
    /// front end says Initialised (or Connected); when the front end says Closing or Closed
    /// it answers what is queued, disconnects and follows; Initialising after Closed waits
    /// again. A front end refused once must close and start again.
    pub fn front_changed<M: SplitMachine<Page = P>>(&mut self, b: &mut B, m: &mut M, key: DevKey) -> Option<String> {
        let live = self.devices.get(&key)?.live.is_some();
        let front = frontend_path(B::KIND, key);
        let state = m.read(&format!("{front}/state")).ok().and_then(|v| XenbusState::parse(&v))?;
        let next = read_state(m, B::KIND, key)?.back_reacts_to(state)?;
        use XenbusState as S;
        match next {
            S::Connected if !live => Some(match self.connect(b, m, key) {
                Ok(()) => line(B::KIND, key, "connected"),
                Err(why) => {
                    set_state(m, B::KIND, key, S::Closing);
                    line(B::KIND, key, &format!("cannot connect: {why}"))
                }
            }),
            S::Closing | S::Closed => {
                let mut said = None;
                if live {
                    said = self.serve(b, m, key);
                    self.disconnect(m, key);
                }
                set_state(m, B::KIND, key, next);
                said.or(live.then(|| line(B::KIND, key, "disconnected by the front end")))
            }
            other => {
                set_state(m, B::KIND, key, other);
                None
            }
        }
    }

    /// Maps the rings the front end names, binds its event channel, lets the back end set
    /// up, says Connected and serves what already waits.
    fn connect<M: SplitMachine<Page = P>>(&mut self, b: &mut B, m: &mut M, key: DevKey) -> Result<(), String> {
        let front = frontend_path(B::KIND, key);
        let mut rings = Vec::new();
        for node in B::RING_NODES {
            let gref = read_number(m, &format!("{front}/{node}"))?;
            rings.push((*node, RingSource::Grant(gref)));
        }
        let evtchn = read_number(m, &format!("{front}/event-channel"))?;
        let device = Device { kind: B::KIND, key };
        let mut channel = open_channel(m, device, &rings, PortSource::Remote(evtchn))?;
        let dev = self.devices.get_mut(&key).ok_or("detached meanwhile")?;
        let mut read = |name: &str| m.read(&format!("{front}/{name}")).ok();
        match b.connect(key, &dev.config, &mut read, &mut channel.rings) {
            Ok(conn) => {
                let port = channel.port;
                dev.live = Some((channel, conn));
                m.unmask(port);
            }
            Err(why) => {
                close_channel(m, channel);
                return Err(why);
            }
        }
        set_state(m, B::KIND, key, XenbusState::Connected);
        // Requests may already wait.
        if let Some(broke) = self.serve(b, m, key) {
            return Err(broke);
        }
        Ok(())
    }

    /// Serves device `key` (its port signalled); a line if its ring lied (it is then
    /// disconnected, its back end Closing).
    pub fn serve<M: SplitMachine<Page = P>>(&mut self, b: &mut B, m: &mut M, key: DevKey) -> Option<String> {
        let (channel, conn) = self.devices.get_mut(&key)?.live.as_mut()?;
        match b.serve(key, conn, &mut channel.rings) {
            Served::Answered { notify } => {
                if notify {
                    m.notify(channel.port);
                }
                None
            }
            Served::Broken(why) => {
                self.disconnect(m, key);
                set_state(m, B::KIND, key, XenbusState::Closing);
                Some(line(B::KIND, key, &format!("the front end's ring lies ({why}); disconnected")))
            }
        }
    }

    /// Unbinds and unmaps a connected device (it stays given, waiting for a new connection).
    fn disconnect<M: SplitMachine<Page = P>>(&mut self, m: &mut M, key: DevKey) {
        if let Some((channel, conn)) = self.devices.get_mut(&key).and_then(|d| d.live.take()) {
            drop(conn);
            close_channel(m, channel);
        }
    }

    /// `xl *-detach`: answers what the front end has queued, disconnects, says Closed, and
    /// removes the device: its nodes on both sides, the watch, what the back end took.
    /// Every request answered was carried out, so nothing acknowledged is lost. The line
    /// if the ring lied on that last turn.
    pub fn detach<M: SplitMachine<Page = P>>(&mut self, b: &mut B, m: &mut M, key: DevKey) -> Result<Option<String>, String> {
        if !self.devices.contains_key(&key) {
            return Err(format!("d{} has no {} {}", key.dom, B::KIND.noun(), key.devid));
        }
        let broke = self.serve(b, m, key);
        self.disconnect(m, key);
        set_state(m, B::KIND, key, XenbusState::Closed);
        self.remove(b, m, key);
        let _ = m.rm(&backend_path(B::KIND, key));
        let _ = m.rm(&frontend_path(B::KIND, key));
        Ok(broke)
    }

    /// Forgets `key`: the watch and what its back end took (it is disconnected).
    fn remove<M: SplitMachine<Page = P>>(&mut self, b: &mut B, m: &mut M, key: DevKey) {
        if let Some(dev) = self.devices.remove(&key) {
            let _ = m.unwatch(&format!("{}/state", frontend_path(B::KIND, key)), &token(B::KIND, key));
            b.release(key, &dev.config);
        }
    }

    /// Releases every device of `dom` (it is being destroyed): connections, watches, what
    /// the back end took, the back-end nodes (its front-end nodes go with its home).
    pub fn release_dom<M: SplitMachine<Page = P>>(&mut self, b: &mut B, m: &mut M, dom: u16) {
        for key in self.keys_of(dom) {
            self.disconnect(m, key);
            self.remove(b, m, key);
        }
        let _ = m.rm(&format!("/local/domain/0/backend/{}/{dom}", B::KIND.name()));
    }

    /// The devices of `dom`.
    pub fn keys_of(&self, dom: u16) -> Vec<DevKey> {
        self.devices.keys().filter(|k| k.dom == dom).copied().collect()
    }

    /// Whether `key` is attached.
    pub fn has(&self, key: DevKey) -> bool {
        self.devices.contains_key(&key)
    }

    /// `key`'s config, if attached.
    pub fn config(&self, key: DevKey) -> Option<&B::Config> {
        self.devices.get(&key).map(|d| &d.config)
    }

    /// `key`'s connection, if connected.
    pub fn conn(&self, key: DevKey) -> Option<&B::Conn> {
        self.devices.get(&key)?.live.as_ref().map(|(_, c)| c)
    }

    /// The port of `key`'s connection, if connected.
    pub fn port(&self, key: DevKey) -> Option<u32> {
        self.devices.get(&key)?.live.as_ref().map(|(ch, _)| ch.port)
    }
}

/// The back end's `state` node of `kind`'s device `key`.
fn read_state(m: &mut impl SplitMachine, kind: Kind, key: DevKey) -> Option<XenbusState> {
    m.read(&format!("{}/state", backend_path(kind, key))).ok().and_then(|v| XenbusState::parse(&v))
}

/// Writes the back end's `state`.
fn set_state(m: &mut impl SplitMachine, kind: Kind, key: DevKey, state: XenbusState) {
    let _ = m.write(&format!("{}/state", backend_path(kind, key)), state.as_str().as_bytes());
}

#[cfg(test)]
mod tests;
