//! The store service's portable half: one [`xenbus::store::Store`], dom0's own local
//! connection (the `xenstore-*` commands and the toolstack use it), and per guest the
//! server end of its store ring over a [`SharedMem`] page the kernel maps. The kernel
//! (`xen_control.rs`, `main.rs`) maps the pages, routes each guest's store event to
//! [`StoreService::serve`], sends the notifications it asks for, and prints the lines it
//! returns; everything else is here and host-tested with hostile rings.
//!
//! A guest whose ring lies (an impossible index, an oversized or malformed message) is
//! disconnected: its connection goes (watches, transactions), the `error` field of its page
//! says why, and its ring is never read again; the others keep being served. On destroy
//! [`StoreService::release`] drops the connection, fires `@releaseDomain`, removes
//! `/local/domain/<id>` and hands the page back for unmapping.
#![forbid(unsafe_code)]
// The store rings are guests': no panics on any value.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use hypercall_abi::types::DomId;
use xenbus::path::domain_path;
use xenbus::ring::xenstore::{Side, XsRingEnd};
use xenbus::ring::{RingError, SharedMem};
use xenbus::service::{serve, ServeError};
use xenbus::store::{ConnId, Store};
use xenbus::wire::{self, Message, MsgType, XsError};

/// dom0's name in the store (`/local/domain/0/name`), as libxl writes it.
pub const DOM0_STORE_NAME: &str = "Domain-0";
/// Serving rounds per [`StoreService::serve`] call: a change by one guest may queue events
/// for others, whose serving may queue more; a ring that cannot take them stops early.
const MAX_ROUNDS: usize = 8;
/// Watch events kept for dom0's own `xenstore-watch` while nobody prints them.
const MAX_LOCAL_EVENTS: usize = 256;

/// One guest's store ring as the service holds it.
struct GuestRing<P> {
    name: String,
    /// dom0's end of the guest's store channel.
    port: u32,
    page: P,
    end: XsRingEnd,
    /// `None` once disconnected.
    conn: Option<ConnId>,
    /// The last serve that found work published replies or events: an empty event after
    /// it is the guest saying it read them (room freed), not a ping to answer.
    published: bool,
    /// The guest has sent a request: a guest that never used its store gets no event
    /// from the service (spurious ones, like the pending bit a fresh binding sets, would
    /// wake a guest that has no handler for them).
    active: bool,
}

/// What one [`StoreService::serve`] call asks the kernel to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// dom0 ports to notify (replies or events were published, or requests taken).
    pub notify: Vec<u32>,
    /// Guests just disconnected: their port (mask it) and the line to print.
    pub disconnected: Vec<(u32, String)>,
    /// dom0 ports that signalled while there was nothing to do: answered with an event
    /// anyway (the guest may use it as an event round trip; see docs/architecture.md),
    /// except right after replies went out (that event is the guest saying it read them).
    pub echo: Vec<u32>,
}

/// Why a guest could not be introduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntroduceError {
    /// It already has a ring served.
    AlreadyServed,
    /// The page does not hold a store ring.
    Ring(RingError),
}

impl fmt::Display for IntroduceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntroduceError::AlreadyServed => write!(f, "its store ring is already served"),
            IntroduceError::Ring(e) => write!(f, "its store page: {e:?}"),
        }
    }
}

/// Why the ring of a guest was dropped, in words.
pub fn ring_error_words(e: ServeError) -> String {
    match e {
        ServeError::Ring(RingError::IndexLie { prod, cons }) => {
            format!("impossible index (prod {prod}, cons {cons})")
        }
        ServeError::Ring(RingError::Oversized(n)) => format!("message of {n} bytes announced"),
        ServeError::Ring(RingError::Stopped) => String::from("malformed message"),
        ServeError::Ring(other) => format!("ring error {other:?}"),
        ServeError::NoConnection => String::from("connection gone"),
    }
}

/// The line printed when a guest's ring is dropped.
pub fn disconnect_line(name: &str, e: ServeError) -> String {
    format!("xl: store ring of {name}: {}; disconnected", ring_error_words(e))
}

/// The store service.
pub struct StoreService<P: SharedMem> {
    /// The engine.
    pub store: Store,
    /// dom0's own connection.
    local: ConnId,
    next_req: u32,
    guests: BTreeMap<u16, GuestRing<P>>,
    /// Watch events for dom0's own connection, oldest first: (path, token).
    events: VecDeque<(String, String)>,
    /// Whether dom0 is short of memory now ([`StoreService::set_memory_probe`]).
    memory_low: fn() -> bool,
}

impl<P: SharedMem> Default for StoreService<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: SharedMem> StoreService<P> {
    /// A store with dom0's home (`/local/domain/0` with `name` and `domid`) and dom0's
    /// local connection.
    pub fn new() -> Self {
        let mut store = Store::new();
        let local = store.connect(DomId(0));
        let mut s = StoreService {
            store,
            local,
            next_req: 1,
            guests: BTreeMap::new(),
            events: VecDeque::new(),
            memory_low: || false,
        };
        // dom0 may write anywhere and has no quota: these cannot fail.
        let _ = s.write("/local/domain/0/name", DOM0_STORE_NAME.as_bytes());
        let _ = s.write("/local/domain/0/domid", b"0");
        s
    }

    /// Starts serving guest `dom`'s store ring on `page` (its store page, mapped in dom0;
    /// zeroed by the builder), `port` being dom0's end of its store channel: introduces the
    /// domain (`/local/domain/<id>`, owned by it; `@introduceDomain`) and writes the nodes
    /// libxl writes, `name`, `domid`, an empty `control/shutdown`, `device` and `data`,
    /// which the domain owns too.
    pub fn introduce(&mut self, dom: u16, name: &str, port: u32, page: P) -> Result<(), IntroduceError> {
        if self.guests.contains_key(&dom) {
            return Err(IntroduceError::AlreadyServed);
        }
        let end = XsRingEnd::new(Side::Server, &page).map_err(IntroduceError::Ring)?;
        let conn = self.store.introduce_domain(DomId(dom));
        let home = domain_path(DomId(dom));
        let _ = self.write(&format!("{home}/name"), name.as_bytes());
        let _ = self.write(&format!("{home}/domid"), format!("{dom}").as_bytes());
        // The empty nodes libxl makes for a new domain: `control/shutdown`, which PV kernels
        // watch for `xl shutdown`/`xl reboot` and clear, and the directories front-ends
        // and guest agents write under.
        for node in ["control/shutdown", "device", "data"] {
            let _ = self.write(&format!("{home}/{node}"), b"");
        }
        self.guests.insert(dom, GuestRing { name: String::from(name), port, page, end, conn: Some(conn), published: false, active: false });
        Ok(())
    }

    /// The guest whose store channel is dom0's `port`.
    pub fn dom_of_port(&self, port: u32) -> Option<u16> {
        self.guests.iter().find(|(_, g)| g.port == port).map(|(d, _)| *d)
    }

    /// Whether guest `dom` watches absolute `path` (or an ancestor of it).
    pub fn is_watched_by(&self, dom: u16, path: &str) -> bool {
        self.store.is_watched_by(DomId(dom), path)
    }

    /// Whether `dom`'s ring is served and not disconnected.
    pub fn is_connected(&self, dom: u16) -> bool {
        self.guests.get(&dom).is_some_and(|g| g.conn.is_some())
    }

    /// Stops serving `dom` (it is being destroyed): releases its connection (firing
    /// `@releaseDomain`), removes `/local/domain/<id>` and everything under it, and returns
    /// the page for unmapping (`None` if it had no ring served). Events this queued for
    /// other guests go out on the next [`StoreService::serve`].
    pub fn release(&mut self, dom: u16) -> Option<P> {
        let g = self.guests.remove(&dom);
        self.store.release_domain(DomId(dom));
        match self.rm(&domain_path(DomId(dom))) {
            Ok(()) | Err(XsError::ENOENT) => {}
            // dom0 is privileged: nothing else can refuse it.
            Err(_) => {}
        }
        g.map(|g| g.page)
    }

    /// Sets how the service learns that dom0 is short of memory: asked before each guest's
    /// requests are served; while it says so, the store refuses guests' requests that could
    /// allocate with `ENOMEM` ([`Store::set_memory_low`]), so that no guest input makes an
    /// allocation fail in dom0 (which would end dom0, and the machine with it).
    pub fn set_memory_probe(&mut self, low: fn() -> bool) {
        self.memory_low = low;
    }

    /// Serves the guests whose channels signalled (`ports`: dom0's ends) and every guest
    /// with replies or events waiting, until no ring makes progress; dom0's own events are
    /// set aside for [`StoreService::take_event`].
    pub fn serve(&mut self, ports: &[u32]) -> Served {
        let mut out = Served::default();
        let mut flagged: BTreeSet<u16> = ports.iter().filter_map(|&p| self.dom_of_port(p)).collect();
        let mut notify: BTreeSet<u32> = BTreeSet::new();
        let signalled = flagged.clone();
        let mut progressed: BTreeSet<u16> = BTreeSet::new();
        for _ in 0..MAX_ROUNDS {
            self.drain_local();
            let mut todo = core::mem::take(&mut flagged);
            for conn in self.store.connections_with_output() {
                if let Some((d, _)) = self.guests.iter().find(|(_, g)| g.conn == Some(conn)) {
                    todo.insert(*d);
                }
            }
            let mut progress = false;
            for dom in todo {
                let Some(g) = self.guests.get_mut(&dom) else { continue };
                let Some(conn) = g.conn else { continue };
                self.store.set_memory_low((self.memory_low)());
                let served = serve(&mut self.store, conn, &mut g.end, &mut g.page);
                self.store.set_memory_low(false);
                match served {
                    Ok(o) if o.notify() => {
                        progress = true;
                        progressed.insert(dom);
                        notify.insert(g.port);
                        g.published = o.bytes_out > 0;
                        g.active |= o.requests > 0;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // The watches and transactions go with the connection; the domain
                        // stays introduced in name only until it is destroyed.
                        self.store.disconnect(conn);
                        g.conn = None;
                        out.disconnected.push((g.port, disconnect_line(&g.name, e)));
                        notify.remove(&g.port);
                    }
                }
            }
            if !progress {
                break;
            }
        }
        self.drain_local();
        for dom in signalled {
            if let Some(g) = self.guests.get_mut(&dom) {
                if g.conn.is_some() && !progressed.contains(&dom) {
                    // The first empty event after replies went out is the guest's "read
                    // them"; answer only the ones after that.
                    if !g.published && g.active {
                        out.echo.push(g.port);
                    }
                    g.published = false;
                }
            }
        }
        out.notify = notify.into_iter().collect();
        out
    }

    /// Moves dom0's queued watch events aside (its replies are taken by `request`).
    fn drain_local(&mut self) {
        while let Some(m) = self.store.pop_output(self.local) {
            if m.header.msg_type == MsgType::WatchEvent as u32 {
                self.keep_event(&m);
            }
        }
    }

    fn keep_event(&mut self, m: &Message) {
        let body = m.payload.strip_suffix(b"\0").unwrap_or(&m.payload);
        let mut parts = body.splitn(2, |&b| b == 0);
        let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
        let path = text(parts.next());
        let token = text(parts.next());
        if self.events.len() >= MAX_LOCAL_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back((path, token));
    }

    /// The oldest watch event of dom0's connection: (path, token).
    pub fn take_event(&mut self) -> Option<(String, String)> {
        self.drain_local();
        self.events.pop_front()
    }

    /// The oldest watch event of dom0's connection whose token starts with `prefix`
    /// (others stay queued, in order, for whoever watches with them).
    pub fn take_event_for(&mut self, prefix: &str) -> Option<(String, String)> {
        self.drain_local();
        let at = self.events.iter().position(|(_, t)| t.starts_with(prefix))?;
        self.events.remove(at)
    }

    /// `XS_SET_PERMS` as dom0: `perms` in the wire form (`n0`, `r3`...), owner first.
    pub fn set_perms(&mut self, path: &str, perms: &[&str]) -> Result<(), XsError> {
        let parsed = xenbus::path::Perms::parse(perms)?;
        let mut p = wire::nul_terminated(path.as_bytes());
        p.extend_from_slice(&parsed.to_wire());
        self.request(MsgType::SetPerms, p).map(drop)
    }

    /// Whether dom0's connection has watch events waiting.
    pub fn has_event(&mut self) -> bool {
        self.drain_local();
        !self.events.is_empty()
    }

    /// One request on dom0's local connection; its reply's payload or error.
    pub fn request(&mut self, ty: MsgType, payload: Vec<u8>) -> Result<Vec<u8>, XsError> {
        let id = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        let msg = Message::new(ty, id, 0, payload);
        self.store.handle_message(self.local, &msg).map_err(|_| XsError::EIO)?;
        let mut reply = None;
        while let Some(m) = self.store.pop_output(self.local) {
            if m.header.msg_type == MsgType::WatchEvent as u32 {
                self.keep_event(&m);
            } else if m.header.req_id == id {
                reply = Some(m);
            }
        }
        let m = reply.ok_or(XsError::EIO)?;
        match m.as_error() {
            Some(e) => Err(e),
            None => Ok(m.payload),
        }
    }

    /// `XS_READ` as dom0.
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, XsError> {
        self.request(MsgType::Read, wire::nul_terminated(path.as_bytes()))
    }

    /// `XS_WRITE` as dom0.
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), XsError> {
        let mut p = wire::nul_terminated(path.as_bytes());
        p.extend_from_slice(value);
        self.request(MsgType::Write, p).map(drop)
    }

    /// `XS_RM` as dom0.
    pub fn rm(&mut self, path: &str) -> Result<(), XsError> {
        self.request(MsgType::Rm, wire::nul_terminated(path.as_bytes())).map(drop)
    }

    /// `XS_DIRECTORY` as dom0.
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, XsError> {
        let reply = self.request(MsgType::Directory, wire::nul_terminated(path.as_bytes()))?;
        let body = reply.strip_suffix(b"\0").unwrap_or(&reply);
        if body.is_empty() {
            return Ok(Vec::new());
        }
        Ok(body.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect())
    }

    /// `XS_WATCH` as dom0 (the first event is queued at once).
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.request(MsgType::Watch, wire::join_nul(&[path.as_bytes(), token.as_bytes()])).map(drop)
    }

    /// `XS_UNWATCH` as dom0; events already queued for the watch are dropped.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        let r = self.request(MsgType::Unwatch, wire::join_nul(&[path.as_bytes(), token.as_bytes()])).map(drop);
        self.events.retain(|(_, t)| t != token);
        r
    }

    /// `xenstore-ls PATH`: the tree under `path`, one `name = "value"` line per node,
    /// indented one space per level below `path` (as xenstore-ls prints it).
    pub fn ls(&mut self, path: &str, out: &mut dyn Write) -> Result<(), XsError> {
        // Depth-first with an explicit stack: paths may nest more than a stack can.
        let mut stack: Vec<(String, usize)> = Vec::new();
        let push_children = |s: &mut Self, stack: &mut Vec<(String, usize)>, dir: &str, depth: usize| {
            s.directory(dir).map(|names| {
                for n in names.into_iter().rev() {
                    stack.push((xenbus::path::join(dir, &n), depth));
                }
            })
        };
        push_children(self, &mut stack, path, 0)?;
        while let Some((p, depth)) = stack.pop() {
            // A node removed meanwhile, or unreadable (not for dom0): shown empty.
            let value = self.read(&p).unwrap_or_default();
            let name = xenbus::path::basename(&p);
            let _ = writeln!(out, "{:width$}{name} = \"{}\"", "", Escaped(&value), width = depth);
            let _ = push_children(self, &mut stack, &p, depth + 1);
        }
        Ok(())
    }
}

/// A value as xenstore-ls shows it: printable ASCII as is, `\` doubled, the rest `\xNN`.
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            match b {
                b'\\' => f.write_str("\\\\")?,
                b'\t' => f.write_str("\\t")?,
                b'\n' => f.write_str("\\n")?,
                b' '..=b'~' => f.write_char(b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        Ok(())
    }
}

/// The store service on the split-driver framework: a guest's store ring is connected
/// to its channel (the guest introduced), and disconnected when the guest goes (its home
/// removed, `@releaseDomain` fired).
impl<P: SharedMem> crate::split::RingBackend<P> for StoreService<P> {
    const KIND: crate::split::Kind = crate::split::Kind::Store;

    fn connect(&mut self, dom: u16, name: &str, page: P, port: u32) -> Result<(), String> {
        self.introduce(dom, name, port, page).map_err(|e| format!("{e}"))
    }

    fn disconnect(&mut self, dom: u16) -> Option<P> {
        self.release(dom)
    }
}

#[cfg(test)]
mod tests;
