//! Node operations (read, write, mkdir, rm, directory, permissions) over a [`View`], with
//! xenstored's permission rules. Each returns the reply payload and records the watch
//! events the change causes; the caller fires them (or keeps them until commit).

use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::DomId;

use super::tree::{Node, View};
use super::{ok, ConnId, Quotas, Store};
use crate::path::{self, Perms};
use crate::wire::{self, MsgType, XsError, PAYLOAD_MAX};

/// Who is asking and under which limits.
pub(crate) struct Ctx {
    pub domid: DomId,
    pub privileged: bool,
    pub quotas: Quotas,
    /// Bytes this request may add to the requester's store memory (see [`super::memory`]);
    /// `usize::MAX` for a privileged one.
    pub mem_budget: usize,
}

/// A change to report to watchers: the node path, the permissions that decide who may see
/// it (any of them granting read suffices), and whether only watches on exactly this path
/// fire (descendants of a removed node) rather than watches on it and its ancestors.
pub(crate) type Event = (String, Vec<Perms>, bool);

fn can(ctx: &Ctx, perms: &Perms, write: bool) -> bool {
    let a = perms.access(ctx.domid, ctx.privileged);
    if write {
        a.can_write()
    } else {
        a.can_read()
    }
}

/// The node at `path` if `ctx` may read (or write) it. A missing node is `ENOENT` only if
/// the caller could have seen it: if its nearest existing ancestor denies the access, the
/// answer is `EACCES`, so absence leaks nothing (xenstored's `errno_from_parents`).
fn get_node(view: &mut View<'_>, ctx: &Ctx, path: &str, write: bool) -> Result<Node, XsError> {
    if let Some(n) = view.get(path)? {
        return if can(ctx, &n.perms, write) { Ok(n) } else { Err(XsError::EACCES) };
    }
    let mut p = path;
    while let Some(par) = path::parent(p) {
        if let Some(n) = view.get(par)? {
            return Err(if can(ctx, &n.perms, write) { XsError::ENOENT } else { XsError::EACCES });
        }
        p = par;
    }
    Err(XsError::ENOENT)
}

/// Creates `path` and any missing ancestors. Each new node inherits its parent's
/// permissions; an unprivileged creator becomes the owner.
fn create(view: &mut View<'_>, ctx: &Ctx, path: &str, value: Vec<u8>, events: &mut Vec<Event>) -> Result<(), XsError> {
    let mut missing: Vec<&str> = alloc::vec![path];
    let mut p = path;
    let top_parent = loop {
        let par = path::parent(p).ok_or(XsError::EINVAL)?;
        match view.get(par)? {
            Some(n) => break n,
            None => {
                missing.push(par);
                p = par;
            }
        }
    };
    if !can(ctx, &top_parent.perms, true) {
        return Err(XsError::EACCES);
    }
    if !ctx.privileged && view.owned_by(ctx.domid) + missing.len() > ctx.quotas.nodes {
        return Err(XsError::ENOSPC);
    }
    // The whole cost up front, so that a write that cannot be afforded creates nothing.
    let cost: usize = missing.iter().map(|p| super::memory::new_node_cost(p, &top_parent.perms)).sum();
    view.can_afford(cost + value.len())?;
    let mut final_perms = top_parent.perms.clone();
    for (i, p) in missing.iter().rev().enumerate() {
        let par = path::parent(p).ok_or(XsError::EINVAL)?;
        let mut parent = view.get(par)?.ok_or(XsError::ENOENT)?;
        let mut perms = parent.perms.clone();
        if !ctx.privileged {
            if let Some(owner) = perms.entries.first_mut() {
                owner.0 = ctx.domid;
            }
        }
        let v = if i + 1 == missing.len() { value.clone() } else { Vec::new() };
        final_perms = perms.clone();
        view.put(p, Node::new(v, perms))?;
        parent.children.insert(String::from(path::basename(p)));
        view.put(par, parent)?;
    }
    events.push((String::from(path), alloc::vec![final_perms], false));
    Ok(())
}

fn write(view: &mut View<'_>, ctx: &Ctx, path: &str, value: &[u8], events: &mut Vec<Event>) -> Result<Vec<u8>, XsError> {
    if !ctx.privileged && value.len() > ctx.quotas.entry_size {
        return Err(XsError::ENOSPC);
    }
    match get_node(view, ctx, path, true) {
        Ok(mut n) => {
            n.value = value.to_vec();
            events.push((String::from(path), alloc::vec![n.perms.clone()], false));
            view.put(path, n)?;
        }
        Err(XsError::ENOENT) => create(view, ctx, path, value.to_vec(), events)?,
        Err(e) => return Err(e),
    }
    Ok(ok())
}

pub(crate) fn mkdir(view: &mut View<'_>, ctx: &Ctx, path: &str) -> Result<Vec<Event>, XsError> {
    let mut events = Vec::new();
    match get_node(view, ctx, path, true) {
        Ok(_) => {}
        Err(XsError::ENOENT) => create(view, ctx, path, Vec::new(), &mut events)?,
        Err(e) => return Err(e),
    }
    Ok(events)
}

fn rm(view: &mut View<'_>, ctx: &Ctx, path: &str, events: &mut Vec<Event>) -> Result<Vec<u8>, XsError> {
    let parent_path = path::parent(path).ok_or(XsError::EINVAL)?;
    let node = match get_node(view, ctx, path, true) {
        Ok(n) => n,
        // Removing a missing node whose parent exists succeeds, as in xenstored.
        Err(XsError::ENOENT) if view.get(parent_path)?.is_some() => return Ok(ok()),
        Err(e) => return Err(e),
    };
    events.push((String::from(path), alloc::vec![node.perms.clone()], false));
    let mut stack: Vec<(String, Node)> = alloc::vec![(String::from(path), node)];
    while let Some((p, n)) = stack.pop() {
        for child in &n.children {
            let cp = path::join(&p, child);
            if let Some(cn) = view.get(&cp)? {
                events.push((cp.clone(), alloc::vec![cn.perms.clone()], true));
                stack.push((cp, cn));
            }
        }
        view.remove(&p)?;
    }
    if let Some(mut parent) = view.get(parent_path)? {
        parent.children.remove(path::basename(path));
        view.put(parent_path, parent)?;
    }
    Ok(ok())
}

fn directory_part(node: &Node, offset: &str) -> Result<Vec<u8>, XsError> {
    let offset: usize = offset.parse().map_err(|_| XsError::EINVAL)?;
    let all = wire::join_nul(&node.children.iter().map(|c| c.as_bytes()).collect::<Vec<_>>());
    // The offset must start a name: the end, or just after a NUL.
    let starts_name = offset == 0 || offset.checked_sub(1).and_then(|i| all.get(i)) == Some(&0);
    let rest = all.get(offset..).filter(|_| starts_name).ok_or(XsError::EINVAL)?;
    let mut out = wire::nul_terminated(alloc::format!("{}", node.generation).as_bytes());
    let room = PAYLOAD_MAX.saturating_sub(out.len() + 1);
    if rest.len() <= room {
        out.extend_from_slice(rest);
        out.push(0);
    } else {
        // Whole names only: cut after the last NUL that fits.
        let fits = rest.get(..room).unwrap_or(&[]);
        let cut = fits.iter().rposition(|&b| b == 0).map_or(0, |i| i + 1);
        out.extend_from_slice(fits.get(..cut).unwrap_or(&[]));
    }
    Ok(out)
}

fn set_perms(view: &mut View<'_>, ctx: &Ctx, path: &str, strings: &[&str], events: &mut Vec<Event>) -> Result<Vec<u8>, XsError> {
    let perms = Perms::parse(strings)?;
    let mut node = get_node(view, ctx, path, true)?;
    let old = node.perms.clone();
    if !ctx.privileged {
        if old.owner() != ctx.domid {
            return Err(XsError::EACCES);
        }
        if perms.owner() != old.owner() {
            return Err(XsError::EPERM);
        }
    }
    node.perms = perms.clone();
    view.put(path, node)?;
    events.push((String::from(path), alloc::vec![old, perms], false));
    Ok(ok())
}

/// Runs one node operation on `view`.
pub(crate) fn run(view: &mut View<'_>, ctx: &Ctx, ty: MsgType, p: &[u8], events: &mut Vec<Event>) -> Result<Vec<u8>, XsError> {
    let canon = |s: &str| path::canonical(ctx.domid, s);
    match ty {
        MsgType::Write => {
            let (raw, value) = wire::split_path_value(p)?;
            write(view, ctx, &canon(raw)?, value, events)
        }
        MsgType::SetPerms => {
            let body = p.strip_suffix(b"\0").ok_or(XsError::EINVAL)?;
            let parts = body
                .split(|&b| b == 0)
                .map(|s| core::str::from_utf8(s).map_err(|_| XsError::EINVAL))
                .collect::<Result<Vec<_>, _>>()?;
            let (raw, strings) = parts.split_first().ok_or(XsError::EINVAL)?;
            set_perms(view, ctx, &canon(raw)?, strings, events)
        }
        MsgType::DirectoryPart => {
            let [raw, offset]: [&str; 2] = wire::split_args(p, 2)?.try_into().map_err(|_| XsError::EINVAL)?;
            let node = get_node(view, ctx, &canon(raw)?, false)?;
            directory_part(&node, offset)
        }
        _ => {
            let [raw]: [&str; 1] = wire::split_args(p, 1)?.try_into().map_err(|_| XsError::EINVAL)?;
            let path = canon(raw)?;
            match ty {
                MsgType::Read => Ok(get_node(view, ctx, &path, false)?.value),
                MsgType::GetPerms => Ok(get_node(view, ctx, &path, false)?.perms.to_wire()),
                MsgType::Directory => {
                    let node = get_node(view, ctx, &path, false)?;
                    let names: Vec<&[u8]> = node.children.iter().map(|c| c.as_bytes()).collect();
                    let out = wire::join_nul(&names);
                    if out.len() > PAYLOAD_MAX {
                        return Err(XsError::E2BIG);
                    }
                    Ok(out)
                }
                MsgType::Mkdir => {
                    events.extend(mkdir(view, ctx, &path)?);
                    Ok(ok())
                }
                MsgType::Rm => rm(view, ctx, &path, events),
                _ => Err(XsError::EINVAL),
            }
        }
    }
}

impl Store {
    /// Runs a node operation for `conn`, inside transaction `tx_id` if it is not 0.
    pub(super) fn node_op(&mut self, conn: ConnId, ctx: &Ctx, ty: MsgType, tx_id: u32, p: &[u8]) -> Result<Vec<u8>, XsError> {
        let mut events = Vec::new();
        let tx = match tx_id {
            0 => None,
            id => Some(self.conns.get_mut(&conn).ok_or(XsError::EINVAL)?.txs.get_mut(&id).ok_or(XsError::ENOENT)?),
        };
        let tx_limit = if ctx.privileged { usize::MAX } else { ctx.quotas.transaction_nodes };
        let mut view = View { tree: &mut self.tree, tx, tx_limit, budget: ctx.mem_budget };
        let result = run(&mut view, ctx, ty, p, &mut events);
        if let Some(tx) = view.tx {
            tx.events.append(&mut events);
        }
        for (path, perms, exact) in events {
            self.fire(&path, &perms, exact);
        }
        result
    }
}
