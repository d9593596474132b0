//! The node tree and transaction overlays: one [`View`] gives operations the same
//! get/put/remove whether they run directly on the tree or inside a transaction.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::DomId;

use super::memory::{node_cost, read_cost};
use crate::path::Perms;
use crate::wire::XsError;

/// One node: its value, permissions, children names and the generation of its last change.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub value: Vec<u8>,
    pub perms: Perms,
    pub children: BTreeSet<String>,
    /// Tree generation of the last change; compared by transactions at commit.
    pub generation: u64,
}

impl Node {
    pub fn new(value: Vec<u8>, perms: Perms) -> Node {
        Node { value, perms, children: BTreeSet::new(), generation: 0 }
    }
}

/// The committed tree: path → node, plus nodes and bytes owned per domain (for the node
/// and memory quotas).
#[derive(Debug)]
pub(crate) struct Tree {
    pub nodes: BTreeMap<String, Node>,
    pub generation: u64,
    pub owned: BTreeMap<DomId, usize>,
    pub owned_bytes: BTreeMap<DomId, usize>,
}

impl Tree {
    pub fn new(root_perms: Perms) -> Tree {
        let mut tree = Tree { nodes: BTreeMap::new(), generation: 0, owned: BTreeMap::new(), owned_bytes: BTreeMap::new() };
        tree.put(String::from("/"), Node::new(Vec::new(), root_perms));
        tree
    }

    fn generation_of(&self, path: &str) -> u64 {
        self.nodes.get(path).map_or(0, |n| n.generation)
    }

    pub fn owned_by(&self, domid: DomId) -> usize {
        self.owned.get(&domid).copied().unwrap_or(0)
    }

    /// Bytes of store data in the tree owned by `domid` (see [`super::memory`]).
    pub fn bytes_owned_by(&self, domid: DomId) -> usize {
        self.owned_bytes.get(&domid).copied().unwrap_or(0)
    }

    fn count(&mut self, owner: DomId, path: &str, node: &Node, sign: isize) {
        let c = self.owned.entry(owner).or_insert(0);
        *c = c.saturating_add_signed(sign);
        let cost = node_cost(path, node) as isize;
        let b = self.owned_bytes.entry(owner).or_insert(0);
        *b = b.saturating_add_signed(sign * cost);
    }

    pub fn put(&mut self, path: String, mut node: Node) {
        self.generation += 1;
        node.generation = self.generation;
        self.count(node.perms.owner(), &path, &node, 1);
        let old = self.nodes.remove(&path);
        if let Some(old) = &old {
            self.count(old.perms.owner(), &path, old, -1);
        }
        self.nodes.insert(path, node);
    }

    pub fn remove(&mut self, path: &str) {
        if let Some(old) = self.nodes.remove(path) {
            self.generation += 1;
            self.count(old.perms.owner(), path, &old, -1);
        }
    }
}

/// A transaction's private state: what it read (with the generation seen, 0 for absent)
/// and what it will write (`None` = delete).
#[derive(Debug, Default)]
pub(crate) struct TxState {
    pub reads: BTreeMap<String, u64>,
    pub writes: BTreeMap<String, Option<Node>>,
    /// Watch events to fire on commit: path, perms of the node, exact-only.
    pub events: Vec<(String, Vec<Perms>, bool)>,
    /// Change in nodes owned, per domain, if this commits.
    pub owned_delta: BTreeMap<DomId, isize>,
    /// Bytes the transaction holds privately (its reads and writes, see [`super::memory`]).
    pub bytes: usize,
}

impl TxState {
    /// Nodes this transaction holds privately (bounded by the transaction-nodes quota).
    pub fn size(&self) -> usize {
        self.reads.len() + self.writes.len()
    }

    /// Whether any node this transaction touched has changed in `tree` since it was first
    /// touched (optimistic concurrency: such a commit fails with `EAGAIN`).
    pub(crate) fn conflicts_with(&self, tree: &Tree) -> bool {
        self.reads.iter().any(|(p, g)| tree.generation_of(p) != *g)
    }

    /// Applies the writes to the tree.
    pub(crate) fn apply(self, tree: &mut Tree) -> Vec<(String, Vec<Perms>, bool)> {
        for (path, node) in self.writes {
            match node {
                Some(n) => tree.put(path, n),
                None => tree.remove(&path),
            }
        }
        self.events
    }
}

/// The tree as one operation sees it: directly, or through a transaction overlay.
pub(crate) struct View<'a> {
    pub tree: &'a mut Tree,
    pub tx: Option<&'a mut TxState>,
    /// Largest `TxState::size` allowed.
    pub tx_limit: usize,
    /// Bytes the operation may add to its requester's store memory (its memory quota less
    /// what it holds already); `usize::MAX` for a privileged requester.
    pub budget: usize,
}

impl View<'_> {
    /// Takes `bytes` of the budget, or `ENOMEM` (and nothing is taken) when it has not
    /// that much left.
    fn charge(&mut self, bytes: usize) -> Result<(), XsError> {
        self.budget = self.budget.checked_sub(bytes).ok_or(XsError::ENOMEM)?;
        Ok(())
    }

    /// `ENOMEM` unless `bytes` fit in what is left of the budget (nothing is taken): for an
    /// operation that checks its whole cost before its first change.
    pub fn can_afford(&self, bytes: usize) -> Result<(), XsError> {
        if bytes > self.budget {
            return Err(XsError::ENOMEM);
        }
        Ok(())
    }

    fn note_read(&mut self, path: &str) -> Result<(), XsError> {
        let needs = self.tx.as_deref().is_some_and(|tx| !tx.reads.contains_key(path));
        if needs {
            let tx_full = self.tx.as_deref().is_some_and(|tx| tx.size() >= self.tx_limit);
            if tx_full {
                return Err(XsError::ENOSPC);
            }
            self.charge(read_cost(path))?;
            let generation = self.tree.generation_of(path);
            if let Some(tx) = self.tx.as_deref_mut() {
                tx.reads.insert(String::from(path), generation);
                tx.bytes += read_cost(path);
            }
        }
        Ok(())
    }

    /// The node at `path` (a private copy).
    pub fn get(&mut self, path: &str) -> Result<Option<Node>, XsError> {
        self.note_read(path)?;
        if let Some(tx) = self.tx.as_deref() {
            if let Some(n) = tx.writes.get(path) {
                return Ok(n.clone());
            }
        }
        Ok(self.tree.nodes.get(path).cloned())
    }

    /// Nodes owned by `domid` as this view sees them.
    pub fn owned_by(&self, domid: DomId) -> usize {
        let base = self.tree.owned_by(domid);
        let delta = self.tx.as_deref().and_then(|t| t.owned_delta.get(&domid).copied()).unwrap_or(0);
        base.saturating_add_signed(delta)
    }

    fn set(&mut self, path: &str, node: Option<Node>) -> Result<(), XsError> {
        let old = self.get(path)?;
        let old_owner = old.as_ref().map(|n| n.perms.owner());
        let new_owner = node.as_ref().map(|n| n.perms.owner());
        let new_cost = node.as_ref().map_or(0, |n| node_cost(path, n));
        let tx_full = self.tx.as_deref().is_some_and(|tx| !tx.writes.contains_key(path) && tx.size() >= self.tx_limit);
        if tx_full {
            return Err(XsError::ENOSPC);
        }
        // In a transaction the new node is a private copy (a delete still holds its path);
        // on the tree it replaces the old node.
        let growth = match self.tx.as_deref() {
            Some(tx) => {
                let held = tx.writes.get(path).map(|w| w.as_ref().map_or(path.len(), |n| node_cost(path, n)));
                new_cost.max(path.len()).saturating_sub(held.unwrap_or(0))
            }
            None => new_cost.saturating_sub(old.as_ref().map_or(0, |n| node_cost(path, n))),
        };
        self.charge(growth)?;
        match self.tx.as_deref_mut() {
            Some(tx) => {
                tx.bytes += growth;
                if let Some(o) = old_owner {
                    *tx.owned_delta.entry(o).or_insert(0) -= 1;
                }
                if let Some(o) = new_owner {
                    *tx.owned_delta.entry(o).or_insert(0) += 1;
                }
                tx.writes.insert(String::from(path), node);
            }
            None => match node {
                Some(n) => self.tree.put(String::from(path), n),
                None => self.tree.remove(path),
            },
        }
        Ok(())
    }

    /// Stores `node` at `path`.
    pub fn put(&mut self, path: &str, node: Node) -> Result<(), XsError> {
        self.set(path, Some(node))
    }

    /// Deletes the node at `path` (children are the caller's business).
    pub fn remove(&mut self, path: &str) -> Result<(), XsError> {
        self.set(path, None)
    }
}
