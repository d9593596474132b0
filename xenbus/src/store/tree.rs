//! The node tree and transaction overlays: one [`View`] gives operations the same
//! get/put/remove whether they run directly on the tree or inside a transaction.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::DomId;

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

/// The committed tree: path → node, plus nodes owned per domain (for the node quota).
#[derive(Debug)]
pub(crate) struct Tree {
    pub nodes: BTreeMap<String, Node>,
    pub generation: u64,
    pub owned: BTreeMap<DomId, usize>,
}

impl Tree {
    pub fn new(root_perms: Perms) -> Tree {
        let mut tree = Tree { nodes: BTreeMap::new(), generation: 0, owned: BTreeMap::new() };
        tree.put(String::from("/"), Node::new(Vec::new(), root_perms));
        tree
    }

    fn generation_of(&self, path: &str) -> u64 {
        self.nodes.get(path).map_or(0, |n| n.generation)
    }

    pub fn owned_by(&self, domid: DomId) -> usize {
        self.owned.get(&domid).copied().unwrap_or(0)
    }

    fn count(&mut self, owner: DomId, delta: isize) {
        let c = self.owned.entry(owner).or_insert(0);
        *c = c.saturating_add_signed(delta);
    }

    pub fn put(&mut self, path: String, mut node: Node) {
        self.generation += 1;
        node.generation = self.generation;
        self.count(node.perms.owner(), 1);
        if let Some(old) = self.nodes.insert(path, node) {
            self.count(old.perms.owner(), -1);
        }
    }

    pub fn remove(&mut self, path: &str) {
        if let Some(old) = self.nodes.remove(path) {
            self.generation += 1;
            self.count(old.perms.owner(), -1);
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
}

impl View<'_> {
    fn note_read(&mut self, path: &str) -> Result<(), XsError> {
        if let Some(tx) = self.tx.as_deref_mut() {
            if !tx.reads.contains_key(path) {
                if tx.size() >= self.tx_limit {
                    return Err(XsError::ENOSPC);
                }
                tx.reads.insert(String::from(path), self.tree.generation_of(path));
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
        let old_owner = self.get(path)?.map(|n| n.perms.owner());
        let new_owner = node.as_ref().map(|n| n.perms.owner());
        match self.tx.as_deref_mut() {
            Some(tx) => {
                if !tx.writes.contains_key(path) && tx.size() >= self.tx_limit {
                    return Err(XsError::ENOSPC);
                }
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
