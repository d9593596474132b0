//! What the store's data costs in dom0's memory, charged to the domain that made it
//! (xenstored's per-domain memory quota, the fix of the XSA-326 class): every node a domain
//! owns, every transaction it holds open with what it read and wrote there, every watch it
//! registered and every reply or event queued for it. The count quotas (nodes, watches,
//! transactions) alone let one domain make dom0 allocate megabytes (1000 nodes x 2 KiB
//! values, 3 KiB paths, transaction copies, 4 KiB watch tokens); the byte quota bounds the
//! sum, so that dom0's heap can be sized for every domain at its quota.
//!
//! The costs are the bytes held plus a fixed overhead for the containers that hold them
//! (map entries, string and vector headers), rounded up: an estimate that errs high.

use super::tree::Node;
use crate::path::Perms;
use crate::wire::Message;

/// Default bytes a domain's store data may take (`Quotas::memory`): ample for a domain's
/// own nodes and devices (a few KiB), far below what the count quotas would allow.
pub const DEFAULT_QUOTA_MEMORY: usize = 256 * 1024;

const NODE_OVERHEAD: usize = 128;
const CHILD_OVERHEAD: usize = 32;
const PERM_COST: usize = 8;
const WATCH_OVERHEAD: usize = 64;
const MESSAGE_OVERHEAD: usize = 64;
/// An open transaction's own bookkeeping.
pub(crate) const TX_OVERHEAD: usize = 256;
/// One path a transaction remembers having read.
const READ_OVERHEAD: usize = 48;

/// A node stored at `path`.
pub(crate) fn node_cost(path: &str, n: &Node) -> usize {
    let children: usize = n.children.iter().map(|c| c.len() + CHILD_OVERHEAD).sum();
    NODE_OVERHEAD + path.len() + n.value.len() + n.perms.entries.len() * PERM_COST + children
}

/// A path a transaction read.
pub(crate) fn read_cost(path: &str) -> usize {
    READ_OVERHEAD + path.len()
}

/// A watch on `path` with `token`.
pub(crate) fn watch_cost(path: &str, token: &str) -> usize {
    WATCH_OVERHEAD + path.len() + token.len()
}

/// A message queued for a connection.
pub(crate) fn message_cost(m: &Message) -> usize {
    MESSAGE_OVERHEAD + m.payload.len()
}

/// A new empty node at `path` with `perms`, and its name in its parent's children.
pub(crate) fn new_node_cost(path: &str, perms: &Perms) -> usize {
    NODE_OVERHEAD + path.len() + perms.entries.len() * PERM_COST + CHILD_OVERHEAD + crate::path::basename(path).len()
}
