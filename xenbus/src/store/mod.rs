//! The store engine: connections, quotas, and the dispatcher that turns one request message
//! into one reply (plus watch events) queued on the connection. Node operations are in
//! `ops`, watches in `watch`, the tree and transaction overlays in `tree`.

mod memory;
mod ops;
mod tree;
mod watch;

pub use memory::DEFAULT_QUOTA_MEMORY;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use hypercall_abi::DomId;

use crate::path::{self, Perms, SPECIAL_INTRODUCE, SPECIAL_RELEASE};
use crate::wire::{Message, MsgType, WireError, XsError};
use tree::{Tree, TxState};
use watch::Watch;

/// xenstored's `quota-nb-entry-per-domain`: nodes a domain may own.
pub const DEFAULT_QUOTA_NODES: usize = 1000;
/// xenstored's `quota-max-watch`: watches per domain.
pub const DEFAULT_QUOTA_WATCHES: usize = 128;
/// xenstored's `quota-max-transaction`: open transactions per domain.
pub const DEFAULT_QUOTA_TRANSACTIONS: usize = 10;
/// xenstored's `quota-req-outstanding`: replies a domain may leave unread before the store
/// stops taking its requests.
pub const DEFAULT_QUOTA_OUTSTANDING: usize = 20;
/// xenstored's `quota-max-entry-size`: bytes of one node's value.
pub const DEFAULT_QUOTA_ENTRY_SIZE: usize = 2048;
/// xenstored's `quota-trans-nodes`: nodes one transaction may touch.
pub const DEFAULT_QUOTA_TRANSACTION_NODES: usize = 1024;
/// Watch events queued, unread, on one connection before further events are dropped (and
/// counted). xenstored bounds these with its memory quota and a 20 s event timeout; a
/// fixed count is the portable equivalent.
pub const DEFAULT_QUOTA_QUEUED_EVENTS: usize = 256;

/// Per-domain limits. Privileged domains (dom0) are exempt from all but the queue bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Nodes owned.
    pub nodes: usize,
    /// Watches registered.
    pub watches: usize,
    /// Transactions open at once.
    pub transactions: usize,
    /// Replies queued and not yet taken by the ring (the store stops reading at this many).
    pub outstanding: usize,
    /// Bytes in one value.
    pub entry_size: usize,
    /// Nodes one transaction may read or write.
    pub transaction_nodes: usize,
    /// Watch events queued and not yet taken by the ring.
    pub queued_events: usize,
    /// Bytes of store memory the domain may hold (see [`memory`]).
    pub memory: usize,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas {
            nodes: DEFAULT_QUOTA_NODES,
            watches: DEFAULT_QUOTA_WATCHES,
            transactions: DEFAULT_QUOTA_TRANSACTIONS,
            outstanding: DEFAULT_QUOTA_OUTSTANDING,
            entry_size: DEFAULT_QUOTA_ENTRY_SIZE,
            transaction_nodes: DEFAULT_QUOTA_TRANSACTION_NODES,
            queued_events: DEFAULT_QUOTA_QUEUED_EVENTS,
            memory: DEFAULT_QUOTA_MEMORY,
        }
    }
}

/// Names one connection to the store (a guest's ring, or dom0's own local client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u32);

/// Why [`Store::handle`] did not take a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleError {
    /// The bytes are not a message; the connection cannot be trusted any more (drop it).
    Wire(WireError),
    /// Too many replies are unread ([`Quotas::outstanding`]); offer the request again after
    /// the connection's output has been drained. Check [`Store::wants_input`] first.
    Busy,
    /// No such connection.
    NoConnection,
}

/// A control request that needs the dom0 service (mapping a ring page, binding a port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlRequest {
    /// `XS_INTRODUCE`: map `mfn` as `domid`'s store ring, bind `port`, then call
    /// [`Store::introduce_domain`].
    Introduce {
        /// The domain.
        domid: DomId,
        /// Machine frame of its store ring page.
        mfn: u64,
        /// Its store event channel.
        port: u32,
    },
    /// `XS_RELEASE`: the store has already forgotten `domid`; unmap its ring.
    Release(DomId),
}

pub(crate) struct Connection {
    pub domid: DomId,
    pub privileged: bool,
    pub watches: Vec<Watch>,
    pub txs: BTreeMap<u32, TxState>,
    next_tx: u32,
    out: VecDeque<Message>,
    replies_queued: usize,
    events_queued: usize,
    /// Bytes of the messages in `out` (see [`memory::message_cost`]).
    queued_bytes: usize,
    dropped_events: u64,
}

impl Connection {
    /// Store memory this connection holds besides the nodes its domain owns: open
    /// transactions, watches, queued messages.
    fn memory(&self) -> usize {
        let txs: usize = self.txs.values().map(|t| memory::TX_OVERHEAD + t.bytes).sum();
        let watches: usize = self.watches.iter().map(|w| memory::watch_cost(&w.path, &w.token)).sum();
        txs + watches + self.queued_bytes
    }
}

/// The store: the tree, every connection, per-domain quotas.
pub struct Store {
    pub(crate) tree: Tree,
    pub(crate) conns: BTreeMap<ConnId, Connection>,
    next_conn: u32,
    quotas: BTreeMap<DomId, Quotas>,
    default_quotas: Quotas,
    /// dom0 is short of memory: refuse what an unprivileged domain asks ([`Store::set_memory_low`]).
    memory_low: bool,
    introduced: BTreeMap<DomId, ConnId>,
    special_perms: [Perms; 2],
    control: VecDeque<ControlRequest>,
    /// The event `XS_WATCH` owes after its reply.
    initial_event: Option<(ConnId, Message)>,
}

impl Default for Store {
    fn default() -> Store {
        Store::new()
    }
}

impl Store {
    /// An empty store holding `/`, `/local` and `/local/domain`, owned by dom0, readable by
    /// nobody else.
    pub fn new() -> Store {
        let mut store = Store {
            tree: Tree::new(Perms::owned_by(DomId(0))),
            conns: BTreeMap::new(),
            next_conn: 1,
            quotas: BTreeMap::new(),
            default_quotas: Quotas::default(),
            memory_low: false,
            introduced: BTreeMap::new(),
            special_perms: [Perms::owned_by(DomId(0)), Perms::owned_by(DomId(0))],
            control: VecDeque::new(),
            initial_event: None,
        };
        for p in ["/local", "/local/domain"] {
            store.create_as_dom0(p);
        }
        store
    }

    fn create_as_dom0(&mut self, p: &str) {
        let mut view = tree::View { tree: &mut self.tree, tx: None, tx_limit: usize::MAX, budget: usize::MAX };
        let ctx = ops::Ctx { domid: DomId(0), privileged: true, quotas: self.default_quotas, mem_budget: usize::MAX };
        // Creating as dom0 cannot fail: dom0 has no quota and may write everywhere; the paths
        // are our own constants and `/local/domain/<id>`.
        if let Ok(events) = ops::mkdir(&mut view, &ctx, p) {
            for (path, perms, exact) in events {
                self.fire(&path, &perms, exact);
            }
        }
    }

    /// Limits used for domains without their own ([`Store::set_quotas`]).
    pub fn set_default_quotas(&mut self, q: Quotas) {
        self.default_quotas = q;
    }

    /// Overrides the limits for one domain.
    pub fn set_quotas(&mut self, domid: DomId, q: Quotas) {
        self.quotas.insert(domid, q);
    }

    /// The limits that apply to `domid`.
    pub fn quotas(&self, domid: DomId) -> Quotas {
        self.quotas.get(&domid).copied().unwrap_or(self.default_quotas)
    }

    /// Opens a connection for `domid` without announcing it (dom0's own client, tests).
    /// Domain 0 is privileged.
    pub fn connect(&mut self, domid: DomId) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(
            id,
            Connection {
                domid,
                privileged: domid == DomId(0),
                watches: Vec::new(),
                txs: BTreeMap::new(),
                next_tx: 1,
                out: VecDeque::new(),
                replies_queued: 0,
                events_queued: 0,
                queued_bytes: 0,
                dropped_events: 0,
            },
        );
        id
    }

    /// Closes a connection: its watches and open transactions go with it.
    pub fn disconnect(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.introduced.retain(|_, c| *c != conn);
    }

    /// Announces a new domain (the dom0 service calls this once it has mapped the domain's
    /// ring): opens its connection, creates `/local/domain/<id>` owned by it if missing, and
    /// fires `@introduceDomain`. Introducing an introduced domain returns its connection.
    pub fn introduce_domain(&mut self, domid: DomId) -> ConnId {
        if let Some(c) = self.introduced.get(&domid) {
            return *c;
        }
        let conn = self.connect(domid);
        self.introduced.insert(domid, conn);
        let home = path::domain_path(domid);
        if !self.tree.nodes.contains_key(&home) {
            self.create_as_dom0(&home);
            if let Some(node) = self.tree.nodes.get(&home).cloned() {
                let mut node = node;
                node.perms = Perms::owned_by(domid);
                self.tree.put(home, node);
            }
        }
        self.fire_special(SPECIAL_INTRODUCE);
        conn
    }

    /// Forgets a domain (it died or was destroyed): closes its connection, drops its
    /// watches and transactions, fires `@releaseDomain`. Its nodes stay until the toolstack
    /// removes them, as in xenstored. Returns whether it was introduced.
    pub fn release_domain(&mut self, domid: DomId) -> bool {
        let Some(conn) = self.introduced.remove(&domid) else { return false };
        self.conns.remove(&conn);
        self.fire_special(SPECIAL_RELEASE);
        true
    }

    /// Whether `domid` has been introduced and not released.
    pub fn is_introduced(&self, domid: DomId) -> bool {
        self.introduced.contains_key(&domid)
    }

    /// The connection of an introduced domain.
    pub fn connection_of(&self, domid: DomId) -> Option<ConnId> {
        self.introduced.get(&domid).copied()
    }

    /// Takes the next control request (`XS_INTRODUCE`, `XS_RELEASE`) that needs the service.
    pub fn take_control_request(&mut self) -> Option<ControlRequest> {
        self.control.pop_front()
    }

    /// Whether the store will take another request from `conn` now: false while
    /// [`Quotas::outstanding`] replies are queued unread. A service stops reading the
    /// connection's ring until its output drains; a guest that never reads replies therefore
    /// stalls only itself.
    pub fn wants_input(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| {
            let limit = self.quotas(c.domid).outstanding;
            c.replies_queued < limit
        })
    }

    /// The next message to send on `conn` (a reply or watch event), without taking it.
    pub fn peek_output(&self, conn: ConnId) -> Option<&Message> {
        self.conns.get(&conn)?.out.front()
    }

    /// Takes the next message to send on `conn`.
    pub fn pop_output(&mut self, conn: ConnId) -> Option<Message> {
        let c = self.conns.get_mut(&conn)?;
        let m = c.out.pop_front()?;
        c.queued_bytes = c.queued_bytes.saturating_sub(memory::message_cost(&m));
        if m.header.msg_type == MsgType::WatchEvent as u32 {
            c.events_queued -= 1;
        } else {
            c.replies_queued -= 1;
        }
        Some(m)
    }

    /// Connections with replies or events waiting to go out: serve these after handling a
    /// request, since a change may have fired watches of other domains.
    pub fn connections_with_output(&self) -> Vec<ConnId> {
        self.conns.iter().filter(|(_, c)| !c.out.is_empty()).map(|(id, _)| *id).collect()
    }

    /// Watch events dropped on `conn` because its queue was full.
    pub fn dropped_events(&self, conn: ConnId) -> u64 {
        self.conns.get(&conn).map_or(0, |c| c.dropped_events)
    }

    /// Nodes owned by `domid`.
    pub fn nodes_owned(&self, domid: DomId) -> usize {
        self.tree.owned_by(domid)
    }

    /// Takes one complete request message (header + payload, untrusted bytes) from `conn`
    /// and queues its reply. Malformed bytes are [`HandleError::Wire`]: drop the connection.
    pub fn handle(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), HandleError> {
        let msg = Message::parse(bytes).map_err(HandleError::Wire)?;
        self.handle_message(conn, &msg)
    }

    /// As [`Store::handle`], for a message already parsed.
    pub fn handle_message(&mut self, conn: ConnId, msg: &Message) -> Result<(), HandleError> {
        if !self.conns.contains_key(&conn) {
            return Err(HandleError::NoConnection);
        }
        if !self.wants_input(conn) {
            return Err(HandleError::Busy);
        }
        let h = msg.header;
        let reply = match self.dispatch(conn, msg) {
            Ok((ty, payload)) => Message::new(ty, h.req_id, h.tx_id, payload),
            Err(e) => Message::error(h.req_id, h.tx_id, e),
        };
        self.queue_reply(conn, reply);
        if let Some((c, ev)) = self.initial_event.take() {
            self.queue_event(c, ev);
        }
        Ok(())
    }

    fn queue_reply(&mut self, conn: ConnId, reply: Message) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.replies_queued += 1;
            c.queued_bytes += memory::message_cost(&reply);
            c.out.push_back(reply);
        }
    }

    /// Queues a watch event for `conn`, or drops it (counted) when its queue is full or it
    /// would take the domain past its memory quota.
    pub(crate) fn queue_event(&mut self, conn: ConnId, event: Message) {
        let Some(c) = self.conns.get(&conn) else { return };
        let (domid, privileged) = (c.domid, c.privileged);
        let q = self.quotas(domid);
        let cost = memory::message_cost(&event);
        let over_memory = !privileged && self.memory_of(domid) + cost > q.memory;
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if c.events_queued >= q.queued_events || over_memory {
            c.dropped_events += 1;
            return;
        }
        c.events_queued += 1;
        c.queued_bytes += cost;
        c.out.push_back(event);
    }

    /// Bytes of store memory charged to `domid`: the nodes it owns, and its connections'
    /// transactions, watches and queued messages (see [`memory`]).
    pub fn memory_of(&self, domid: DomId) -> usize {
        let conns: usize = self.conns.values().filter(|c| c.domid == domid).map(Connection::memory).sum();
        self.tree.bytes_owned_by(domid) + conns
    }

    /// Says whether dom0 is short of memory: while it is, every request of an unprivileged
    /// domain that could allocate is refused with `ENOMEM` (whatever its quota), so that an
    /// allocation never fails inside the store. The service sets this from its heap's free
    /// space before each request.
    pub fn set_memory_low(&mut self, low: bool) {
        self.memory_low = low;
    }

    fn ctx(&self, conn: ConnId) -> Result<ops::Ctx, XsError> {
        let c = self.conns.get(&conn).ok_or(XsError::EIO)?;
        let quotas = self.quotas(c.domid);
        let mem_budget = match (c.privileged, self.memory_low) {
            (true, _) => usize::MAX,
            (false, true) => 0,
            (false, false) => quotas.memory.saturating_sub(self.memory_of(c.domid)),
        };
        Ok(ops::Ctx { domid: c.domid, privileged: c.privileged, quotas, mem_budget })
    }

    fn dispatch(&mut self, conn: ConnId, msg: &Message) -> Result<(MsgType, Vec<u8>), XsError> {
        let ty = msg.msg_type().map_err(|_| XsError::ENOSYS)?;
        let ctx = self.ctx(conn)?;
        let p = &msg.payload[..];
        let tx_id = msg.header.tx_id;
        let payload = match ty {
            MsgType::Read
            | MsgType::Write
            | MsgType::Mkdir
            | MsgType::Rm
            | MsgType::Directory
            | MsgType::DirectoryPart
            | MsgType::GetPerms
            | MsgType::SetPerms => self.node_op(conn, &ctx, ty, tx_id, p)?,
            MsgType::Watch => self.watch(conn, &ctx, p)?,
            MsgType::Unwatch => self.unwatch(conn, &ctx, p)?,
            MsgType::ResetWatches => {
                let c = self.conns.get_mut(&conn).ok_or(XsError::EINVAL)?;
                c.watches.clear();
                ok()
            }
            MsgType::TransactionStart => self.transaction_start(conn, &ctx, p)?,
            MsgType::TransactionEnd => self.transaction_end(conn, tx_id, p)?,
            MsgType::GetDomainPath => {
                let [d] = args::<1>(p)?;
                let domid = parse_domid(d)?;
                crate::wire::nul_terminated(path::domain_path(domid).as_bytes())
            }
            MsgType::IsDomainIntroduced => {
                let [d] = args::<1>(p)?;
                let yes = self.is_introduced(parse_domid(d)?);
                crate::wire::nul_terminated(if yes { b"T" } else { b"F" })
            }
            MsgType::Introduce => {
                require_privileged(&ctx)?;
                let [d, mfn, port] = args::<3>(p)?;
                let domid = parse_domid(d)?;
                let mfn = mfn.parse::<u64>().map_err(|_| XsError::EINVAL)?;
                let port = port.parse::<u32>().map_err(|_| XsError::EINVAL)?;
                if domid == DomId(0) {
                    return Err(XsError::EINVAL);
                }
                self.control.push_back(ControlRequest::Introduce { domid, mfn, port });
                ok()
            }
            MsgType::Release => {
                require_privileged(&ctx)?;
                let [d] = args::<1>(p)?;
                let domid = parse_domid(d)?;
                if !self.release_domain(domid) {
                    return Err(XsError::ENOENT);
                }
                self.control.push_back(ControlRequest::Release(domid));
                ok()
            }
            MsgType::Resume => {
                require_privileged(&ctx)?;
                let [d] = args::<1>(p)?;
                if !self.is_introduced(parse_domid(d)?) {
                    return Err(XsError::ENOENT);
                }
                ok()
            }
            // Replies, not requests, and operations this store does not offer.
            MsgType::WatchEvent
            | MsgType::Error
            | MsgType::Control
            | MsgType::SetTarget
            | MsgType::Restrict
            | MsgType::GetFeature
            | MsgType::SetFeature
            | MsgType::GetQuota
            | MsgType::SetQuota => return Err(XsError::ENOSYS),
        };
        Ok((ty, payload))
    }

    fn transaction_start(&mut self, conn: ConnId, ctx: &ops::Ctx, p: &[u8]) -> Result<Vec<u8>, XsError> {
        let [_] = args::<1>(p)?;
        let c = self.conns.get_mut(&conn).ok_or(XsError::EINVAL)?;
        if !ctx.privileged && c.txs.len() >= ctx.quotas.transactions {
            return Err(XsError::ENOSPC);
        }
        if memory::TX_OVERHEAD > ctx.mem_budget {
            return Err(XsError::ENOMEM);
        }
        let mut id = c.next_tx;
        while id == 0 || c.txs.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        c.next_tx = id.wrapping_add(1);
        c.txs.insert(id, TxState::default());
        Ok(crate::wire::nul_terminated(alloc::format!("{id}").as_bytes()))
    }

    fn transaction_end(&mut self, conn: ConnId, tx_id: u32, p: &[u8]) -> Result<Vec<u8>, XsError> {
        let [how] = args::<1>(p)?;
        let commit = match how {
            "T" => true,
            "F" => false,
            _ => return Err(XsError::EINVAL),
        };
        let c = self.conns.get_mut(&conn).ok_or(XsError::EINVAL)?;
        let privileged = c.privileged;
        let tx = c.txs.remove(&tx_id).ok_or(XsError::ENOENT)?;
        if commit {
            if tx.conflicts_with(&self.tree) {
                return Err(XsError::EAGAIN);
            }
            // Other transactions may have committed nodes since this one checked its quota.
            let over = |(d, delta): (&DomId, &isize)| {
                *delta > 0 && self.tree.owned_by(*d).saturating_add_signed(*delta) > self.quotas(*d).nodes
            };
            if !privileged && tx.owned_delta.iter().any(over) {
                return Err(XsError::ENOSPC);
            }
            let events = tx.apply(&mut self.tree);
            for (path, perms, exact) in events {
                self.fire(&path, &perms, exact);
            }
        }
        Ok(ok())
    }
}

/// `"OK\0"`, the reply of operations that return nothing.
pub(crate) fn ok() -> Vec<u8> {
    alloc::vec![b'O', b'K', 0]
}

fn args<const N: usize>(p: &[u8]) -> Result<[&str; N], XsError> {
    let v = crate::wire::split_args(p, N)?;
    v.try_into().map_err(|_| XsError::EINVAL)
}

fn parse_domid(s: &str) -> Result<DomId, XsError> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(XsError::EINVAL);
    }
    let v: u32 = s.parse().map_err(|_| XsError::EINVAL)?;
    if v >= u32::from(hypercall_abi::types::DOMID_FIRST_RESERVED) {
        return Err(XsError::EINVAL);
    }
    Ok(DomId(v as u16))
}

fn require_privileged(ctx: &ops::Ctx) -> Result<(), XsError> {
    if ctx.privileged {
        Ok(())
    } else {
        Err(XsError::EACCES)
    }
}
