//! The I/O plane between domains: the xenstore wire protocol, the store engine, the store
//! ring and the generic request/response ring, the guest's store client, and the xenbus
//! front/back state machine. Portable (`no_std` + `alloc`), no unsafe code, host-tested.
//!
//! # Modules
//!
//! | module | what |
//! |---|---|
//! | [`wire`] | `xsd_sockmsg` header, [`wire::MsgType`], [`wire::XsError`] names, message parsing and building |
//! | [`path`] | path validation (xenstored's rules), `/local/domain/<id>`, [`path::Perms`] (`"r0"` lists) |
//! | [`store`] | the engine: [`store::Store`], connections, watches, transactions, [`store::Quotas`] |
//! | [`ring`] | [`ring::SharedMem`] page access; [`ring::xenstore`] (store ring ends), [`ring::generic`] (`ring.h` rings) |
//! | [`service`] | [`service::serve`]: one domain's ring ↔ the store, within its quotas |
//! | [`client`] | the guest's [`client::Client`] over a [`client::Transport`] (e.g. [`client::RingTransport`]) |
//! | [`state`] | [`state::XenbusState`] and the split-driver handshake |
//! | [`blkif`] | the block ring's requests and responses (`io/blkif.h`), the back end's checks of a request, the vbd's store keys |
//! | [`netif`] | the network rings (`io/netif.h`), the back end's checks of a transmitted frame, the vif's store keys, [`netif::Mac`] |
//!
//! # The dom0 store service
//!
//! The service owns one [`store::Store`] and, per guest, the mapping of its store page (an
//! implementation of [`ring::SharedMem`]), a server [`ring::xenstore::XsRingEnd`] and the
//! [`store::ConnId`] the store gave it:
//!
//! 1. **A domain is created**: map its store page (the frame in its `start_info`), bind its
//!    store event channel, then `let conn = store.introduce_domain(domid)` and
//!    `let end = XsRingEnd::new(Side::Server, &page)?`. The store creates
//!    `/local/domain/<id>` owned by the domain and fires `@introduceDomain`.
//! 2. **Its event channel fires** (and after any change that may have queued watch events
//!    for other domains: serve every connection in
//!    [`store::Store::connections_with_output`]): call [`service::serve`]`(&mut store, conn, &mut end,
//!    &mut page)`. It moves replies and watch events out, requests in (one whole message at
//!    a time, reassembled privately), and returns [`service::ServeOutcome`]; if
//!    `outcome.notify()`, send an event on the domain's store port.
//! 3. **`serve` fails** ([`service::ServeError`]): the ring lied or the guest sent a
//!    malformed message; the `error` field of the page has been set. Stop serving it and
//!    release the domain.
//! 4. **A domain dies**: `store.release_domain(domid)` drops its connection, watches and
//!    transactions and fires `@releaseDomain`; unmap the page. Its nodes stay until the
//!    toolstack removes `/local/domain/<id>` (as with xenstored).
//! 5. **Wire control requests** (`XS_INTRODUCE`, `XS_RELEASE` from a privileged client)
//!    are queued for the service: drain [`store::Store::take_control_request`] after
//!    serving and do step 1 or 4's mapping work.
//! 6. **dom0's own tools** (the `xenstore-*` commands) use `store.connect(DomId(0))` and
//!    either [`store::Store::handle`] + [`store::Store::pop_output`] or a
//!    [`client::Client`] over a transport that does just that.
//!
//! Memory per connection is bounded: at most [`store::Quotas::outstanding`] replies (the
//! store stops taking requests, [`store::Store::wants_input`], until the guest reads them),
//! at most [`store::Quotas::queued_events`] watch events (more are dropped and counted,
//! [`store::Store::dropped_events`]), one message being reassembled and one being sent.
//!
//! ```
//! use hypercall_abi::DomId;
//! use xenbus::ring::{LocalPage, xenstore::{Side, XsRingEnd}};
//! use xenbus::{service::serve, store::Store};
//!
//! let mut store = Store::new();
//! let mut page = LocalPage::new(4096); // in dom0: the mapped guest store page
//! let conn = store.introduce_domain(DomId(1));
//! let mut end = XsRingEnd::new(Side::Server, &page).unwrap();
//! // ... the guest writes requests, its event channel fires ...
//! let outcome = serve(&mut store, conn, &mut end, &mut page).unwrap();
//! assert!(!outcome.notify()); // nothing to do yet
//! ```
//!
//! # The guest
//!
//! pv-guest implements [`ring::SharedMem`] over its store page and [`client::Doorbell`]
//! over its store event channel (notify = `EVTCHNOP_send`, wait = block until the port is
//! pending), builds `Client::new(RingTransport::new(page, doorbell)?)` and calls
//! [`client::Client::read`], [`client::Client::write`], [`client::Client::directory`],
//! [`client::Client::watch`] / [`client::Client::wait_event`] and
//! [`client::Client::transaction`] (retried on `EAGAIN`).
//!
//! # Split drivers
//!
//! Back ends consume a [`ring::generic::BackRing`], front ends produce into a
//! [`ring::generic::FrontRing`]; both copy each slot once into private memory and stop on a
//! lying index. The handshake through `state` nodes follows [`state::XenbusState`].
//!
//! # Differences from xenstored
//!
//! Documented where they live: children are listed in name order, not creation order;
//! the value-size quota counts the value only; the watch quota admits exactly 128 (xenstored's
//! `>` check admits one more); `XS_SET_TARGET`, `XS_CONTROL`, features and quota messages answer
//! `ENOSYS`; unread watch events are bounded by count, not memory and time.
#![no_std]
#![forbid(unsafe_code)]
// Everything here reads what guests write (rings, messages, paths): no panics on any value.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

extern crate alloc;

pub mod blkif;
pub mod netif;
pub mod client;
pub mod console;
pub mod path;
pub mod ring;
pub mod service;
pub mod state;
pub mod store;
pub mod wire;
