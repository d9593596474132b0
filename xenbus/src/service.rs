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
    /// Bytes taken from the ring, whole requests or not.
    pub bytes_in: usize,
}

impl ServeOutcome {
    /// Whether to notify the domain's store event channel.
    pub fn notify(&self) -> bool {
        // Bytes taken without a whole request: a writer with a message longer than the
        // ring waits for that room.
        self.requests > 0 || self.bytes_out > 0 || self.bytes_in > 0
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
            let cons = end.consumed();
            let read = end.read_message(page).map_err(ServeError::Ring);
            out.bytes_in += end.consumed().wrapping_sub(cons) as usize;
            let Some(bytes) = read? else { break };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::xenstore::{Side, RING_SIZE};
    use crate::ring::LocalPage;
    use crate::store::Store;
    use crate::wire::{Message, MsgType};
    use hypercall_abi::types::DomId;

    /// A request longer than the ring arrives in pieces: taking the first piece is
    /// progress the client must be told of, or it waits for room for ever.
    #[test]
    fn part_of_a_long_request_is_progress() {
        let mut store = Store::new();
        let conn = store.introduce_domain(DomId(5));
        let mut page = LocalPage::new(4096);
        let mut server = XsRingEnd::new(Side::Server, &page).unwrap();
        let nodes_before = store.nodes_owned(DomId(5));
        let mut client = XsRingEnd::new(Side::Client, &page).unwrap();
        let mut payload = b"data/long\0".to_vec();
        payload.extend(core::iter::repeat_n(b'v', 2 * RING_SIZE as usize));
        client.queue_message(Message::new(MsgType::Write, 1, 0, payload).to_bytes()).unwrap();
        assert_eq!(client.flush(&mut page).unwrap(), RING_SIZE as usize);
        let first = serve(&mut store, conn, &mut server, &mut page).unwrap();
        assert_eq!(first.requests, 0);
        assert_eq!(first.bytes_in, RING_SIZE as usize);
        assert!(first.notify(), "room was made: the client must hear of it");
        let mut requests = 0;
        while !client.output_idle() {
            client.flush(&mut page).unwrap();
            requests += serve(&mut store, conn, &mut server, &mut page).unwrap().requests;
        }
        assert_eq!(requests, 1);
        assert!(store.nodes_owned(DomId(5)) > nodes_before, "the write was applied");
        // Nothing moved: no progress, no notification.
        assert!(!serve(&mut store, conn, &mut server, &mut page).unwrap().notify());
    }
}
