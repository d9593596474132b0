//! The guest's store client: request ids, matching replies to requests, watch events set
//! aside while waiting, and transactions retried on `EAGAIN`. The transport is a trait so
//! the same code runs over the store ring in a guest ([`RingTransport`]) and over the store
//! engine directly in host tests.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::DomId;

use crate::path::Perms;
use crate::ring::xenstore::{Side, XsRingEnd};
use crate::ring::{RingError, SharedMem};
use crate::wire::{self, Message, MsgType, XsError};

/// How often [`Client::transaction`] retries a transaction that ended in `EAGAIN`.
pub const MAX_TRANSACTION_RETRIES: usize = 16;
/// Watch events kept while nobody takes them; older ones are dropped first.
pub const MAX_QUEUED_EVENTS: usize = 256;

/// Why a client call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The store answered with this error.
    Store(XsError),
    /// The ring failed.
    Ring(RingError),
    /// The store sent something that is not a well-formed reply.
    Protocol,
    /// A transaction kept conflicting ([`MAX_TRANSACTION_RETRIES`]).
    RetriesExhausted,
}

impl From<XsError> for ClientError {
    fn from(e: XsError) -> ClientError {
        ClientError::Store(e)
    }
}

/// Moves whole messages to and from the store.
pub trait Transport {
    /// Sends one whole message (header + payload).
    fn send(&mut self, msg: &[u8]) -> Result<(), ClientError>;
    /// Waits for, and returns, the next whole message from the store.
    fn receive(&mut self) -> Result<Vec<u8>, ClientError>;
}

/// A transaction id; [`TxId::NONE`] for operations outside a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxId(pub u32);

impl TxId {
    /// Outside any transaction.
    pub const NONE: TxId = TxId(0);
}

/// A fired watch: the path that changed and the token given to [`Client::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The changed path (relative if the watch was registered relative).
    pub path: String,
    /// The watch's token.
    pub token: String,
}

/// The store client.
pub struct Client<T: Transport> {
    transport: T,
    next_req: u32,
    events: VecDeque<WatchEvent>,
}

fn one_string(payload: &[u8]) -> Result<String, ClientError> {
    let [s]: [&str; 1] = wire::split_args(payload, 1)
        .map_err(|_| ClientError::Protocol)?
        .try_into()
        .map_err(|_| ClientError::Protocol)?;
    Ok(String::from(s))
}

impl<T: Transport> Client<T> {
    /// A client over `transport`.
    pub fn new(transport: T) -> Client<T> {
        Client { transport, next_req: 1, events: VecDeque::new() }
    }

    /// The transport (for its owner's bookkeeping).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    fn take_event(&mut self, m: &Message) -> Result<(), ClientError> {
        let body = m.payload.strip_suffix(b"\0").ok_or(ClientError::Protocol)?;
        let mut parts = body.splitn(2, |&b| b == 0);
        let path = parts.next().ok_or(ClientError::Protocol)?;
        let token = parts.next().ok_or(ClientError::Protocol)?;
        let text = |b: &[u8]| core::str::from_utf8(b).map(String::from).map_err(|_| ClientError::Protocol);
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(WatchEvent { path: text(path)?, token: text(token)? });
        Ok(())
    }

    /// Sends one request and waits for its reply, setting watch events aside.
    pub fn request(&mut self, ty: MsgType, tx: TxId, payload: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let req_id = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        self.transport.send(&Message::new(ty, req_id, tx.0, payload).to_bytes())?;
        loop {
            let bytes = self.transport.receive()?;
            let m = Message::parse(&bytes).map_err(|_| ClientError::Protocol)?;
            if m.header.msg_type == MsgType::WatchEvent as u32 {
                self.take_event(&m)?;
                continue;
            }
            if m.header.req_id != req_id {
                continue; // a stale reply to an abandoned request
            }
            if let Some(e) = m.as_error() {
                return Err(ClientError::Store(e));
            }
            if m.header.msg_type != ty as u32 {
                return Err(ClientError::Protocol);
            }
            return Ok(m.payload);
        }
    }

    /// `XS_READ`.
    pub fn read(&mut self, tx: TxId, path: &str) -> Result<Vec<u8>, ClientError> {
        self.request(MsgType::Read, tx, wire::nul_terminated(path.as_bytes()))
    }

    /// `XS_WRITE`.
    pub fn write(&mut self, tx: TxId, path: &str, value: &[u8]) -> Result<(), ClientError> {
        let mut p = wire::nul_terminated(path.as_bytes());
        p.extend_from_slice(value);
        self.request(MsgType::Write, tx, p).map(drop)
    }

    /// `XS_MKDIR`.
    pub fn mkdir(&mut self, tx: TxId, path: &str) -> Result<(), ClientError> {
        self.request(MsgType::Mkdir, tx, wire::nul_terminated(path.as_bytes())).map(drop)
    }

    /// `XS_RM`.
    pub fn rm(&mut self, tx: TxId, path: &str) -> Result<(), ClientError> {
        self.request(MsgType::Rm, tx, wire::nul_terminated(path.as_bytes())).map(drop)
    }

    /// `XS_DIRECTORY`: the children's names.
    pub fn directory(&mut self, tx: TxId, path: &str) -> Result<Vec<String>, ClientError> {
        let reply = self.request(MsgType::Directory, tx, wire::nul_terminated(path.as_bytes()))?;
        let Some(body) = reply.strip_suffix(b"\0") else {
            return if reply.is_empty() { Ok(Vec::new()) } else { Err(ClientError::Protocol) };
        };
        body.split(|&b| b == 0)
            .map(|s| core::str::from_utf8(s).map(String::from).map_err(|_| ClientError::Protocol))
            .collect()
    }

    /// `XS_GET_PERMS`.
    pub fn get_perms(&mut self, tx: TxId, path: &str) -> Result<Perms, ClientError> {
        let reply = self.request(MsgType::GetPerms, tx, wire::nul_terminated(path.as_bytes()))?;
        let body = reply.strip_suffix(b"\0").ok_or(ClientError::Protocol)?;
        let parts = body
            .split(|&b| b == 0)
            .map(core::str::from_utf8)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ClientError::Protocol)?;
        Perms::parse(&parts).map_err(|_| ClientError::Protocol)
    }

    /// `XS_SET_PERMS`.
    pub fn set_perms(&mut self, tx: TxId, path: &str, perms: &Perms) -> Result<(), ClientError> {
        let mut p = wire::nul_terminated(path.as_bytes());
        p.extend_from_slice(&perms.to_wire());
        self.request(MsgType::SetPerms, tx, p).map(drop)
    }

    /// `XS_WATCH`. The store fires the watch once at once; that event arrives like any other.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), ClientError> {
        self.request(MsgType::Watch, TxId::NONE, wire::join_nul(&[path.as_bytes(), token.as_bytes()])).map(drop)
    }

    /// `XS_UNWATCH`.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), ClientError> {
        self.request(MsgType::Unwatch, TxId::NONE, wire::join_nul(&[path.as_bytes(), token.as_bytes()])).map(drop)
    }

    /// `XS_TRANSACTION_START`.
    pub fn transaction_start(&mut self) -> Result<TxId, ClientError> {
        let reply = self.request(MsgType::TransactionStart, TxId::NONE, alloc::vec![0])?;
        let id = one_string(&reply)?.parse::<u32>().map_err(|_| ClientError::Protocol)?;
        Ok(TxId(id))
    }

    /// `XS_TRANSACTION_END`: commit (`true`) or abort. A conflicting commit is
    /// `Err(Store(EAGAIN))`.
    pub fn transaction_end(&mut self, tx: TxId, commit: bool) -> Result<(), ClientError> {
        self.request(MsgType::TransactionEnd, tx, wire::nul_terminated(if commit { b"T" } else { b"F" })).map(drop)
    }

    /// Runs `body` in a transaction and commits, starting again (up to
    /// [`MAX_TRANSACTION_RETRIES`] times) while the commit fails with `EAGAIN`. An error
    /// from `body` aborts the transaction and is returned.
    pub fn transaction<R>(&mut self, mut body: impl FnMut(&mut Self, TxId) -> Result<R, ClientError>) -> Result<R, ClientError> {
        for _ in 0..MAX_TRANSACTION_RETRIES {
            let tx = self.transaction_start()?;
            let r = match body(self, tx) {
                Ok(r) => r,
                Err(e) => {
                    // The body's error is what the caller needs; an abort failure adds nothing.
                    let _ = self.transaction_end(tx, false);
                    return Err(e);
                }
            };
            match self.transaction_end(tx, true) {
                Ok(()) => return Ok(r),
                Err(ClientError::Store(XsError::EAGAIN)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::RetriesExhausted)
    }

    /// `XS_GET_DOMAIN_PATH`.
    pub fn get_domain_path(&mut self, domid: DomId) -> Result<String, ClientError> {
        let reply = self.request(MsgType::GetDomainPath, TxId::NONE, wire::nul_terminated(format!("{}", domid.0).as_bytes()))?;
        one_string(&reply)
    }

    /// A watch event already received, if any (does not wait).
    pub fn next_event(&mut self) -> Option<WatchEvent> {
        self.events.pop_front()
    }

    /// Waits for the next watch event.
    pub fn wait_event(&mut self) -> Result<WatchEvent, ClientError> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            let bytes = self.transport.receive()?;
            let m = Message::parse(&bytes).map_err(|_| ClientError::Protocol)?;
            if m.header.msg_type == MsgType::WatchEvent as u32 {
                self.take_event(&m)?;
            }
        }
    }
}

/// How a guest signals and waits for the store's event channel.
pub trait Doorbell<P> {
    /// Notifies the store (`EVTCHNOP_send` on the store port).
    fn notify(&mut self, page: &mut P);
    /// Blocks until the store has notified us (or may have: spurious wake-ups are fine).
    fn wait(&mut self, page: &mut P);
}

/// A [`Transport`] over the guest's store ring page and event channel.
pub struct RingTransport<P: SharedMem, D: Doorbell<P>> {
    page: P,
    end: XsRingEnd,
    doorbell: D,
}

impl<P: SharedMem, D: Doorbell<P>> RingTransport<P, D> {
    /// Starts the client end on `page` (the store page from `start_info`).
    pub fn new(page: P, doorbell: D) -> Result<Self, ClientError> {
        let end = XsRingEnd::new(Side::Client, &page).map_err(ClientError::Ring)?;
        Ok(RingTransport { page, end, doorbell })
    }

    /// The doorbell (tests reach the fake store through it).
    pub fn doorbell_mut(&mut self) -> &mut D {
        &mut self.doorbell
    }
}

impl<P: SharedMem, D: Doorbell<P>> Transport for RingTransport<P, D> {
    fn send(&mut self, msg: &[u8]) -> Result<(), ClientError> {
        self.end.queue_message(msg.to_vec()).map_err(ClientError::Ring)?;
        loop {
            let n = self.end.flush(&mut self.page).map_err(ClientError::Ring)?;
            if n > 0 {
                self.doorbell.notify(&mut self.page);
            }
            if self.end.output_idle() {
                return Ok(());
            }
            self.doorbell.wait(&mut self.page);
        }
    }

    fn receive(&mut self) -> Result<Vec<u8>, ClientError> {
        loop {
            let cons = self.end.consumed();
            let m = self.end.read_message(&mut self.page).map_err(ClientError::Ring)?;
            if self.end.consumed() != cons {
                // We freed ring space; the store may be waiting to send more (of a reply
                // longer than the ring, too).
                self.doorbell.notify(&mut self.page);
            }
            if let Some(m) = m {
                return Ok(m);
            }
            self.doorbell.wait(&mut self.page);
        }
    }
}
