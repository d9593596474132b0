//! The glue the dom0 store service runs for each domain: move replies from the [`Store`] onto
//! the domain's ring, and requests from the ring into the store, within the store's
//! outstanding-request quota.

use crate::ring::xenstore::XsRingEnd;
use crate::ring::{RingError, SharedMem};
use crate::store::{ConnId, HandleError, Store};

/// What one [`serve`] pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeOutcome {
    /// Requests taken from the ring.
    pub requests: usize,
    /// Bytes of replies and events published.
    pub bytes_out: usize,
}

impl ServeOutcome {
    /// Whether to notify the domain's store event channel.
    pub fn notify(&self) -> bool {
        self.requests > 0 || self.bytes_out > 0
    }
}

/// Why a connection must be dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeError {
    /// The ring lied or stopped.
    Ring(RingError),
    /// The connection is gone from the store.
    NoConnection,
}

/// Serves `conn` on its ring until neither side can make progress: replies out, requests in
/// (only while [`Store::wants_input`]), replies out again. Call it when the domain's store
/// event channel fires and after anything that may have queued watch events for it. On
/// error, stop serving the ring (call [`Store::release_domain`] or [`Store::disconnect`]).
pub fn serve(store: &mut Store, conn: ConnId, end: &mut XsRingEnd, page: &mut impl SharedMem) -> Result<ServeOutcome, ServeError> {
    let mut out = ServeOutcome::default();
    loop {
        let before = out;
        loop {
            if end.output_idle() {
                match store.pop_output(conn) {
                    Some(m) => end.queue_message(m.to_bytes()).map_err(ServeError::Ring)?,
                    None => break,
                }
            }
            let n = end.flush(page).map_err(ServeError::Ring)?;
            out.bytes_out += n;
            if !end.output_idle() {
                break;
            }
        }
        while store.wants_input(conn) {
            let Some(bytes) = end.read_message(page).map_err(ServeError::Ring)? else { break };
            match store.handle(conn, &bytes) {
                Ok(()) => out.requests += 1,
                Err(HandleError::NoConnection) => return Err(ServeError::NoConnection),
                // The ring end has already checked the length, so these cannot happen.
                Err(HandleError::Wire(_)) | Err(HandleError::Busy) => {
                    return Err(ServeError::Ring(RingError::Stopped))
                }
            }
        }
        if out == before {
            return Ok(out);
        }
    }
}
