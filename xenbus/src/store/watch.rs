//! Watches: registration with quota, and delivery of events to the watchers allowed to
//! read the changed node, including the special `@introduceDomain` / `@releaseDomain`.

use alloc::string::String;
use alloc::vec::Vec;

use super::ops::Ctx;
use super::{ok, ConnId, Store};
use crate::path::{self, Perms, SPECIAL_INTRODUCE};
use crate::wire::{self, Message, MsgType, XsError};

/// One registered watch.
#[derive(Clone, Debug)]
pub(crate) struct Watch {
    /// Absolute path or special name.
    pub path: String,
    pub token: String,
    /// Registered with a relative path: events report paths relative to the domain's home.
    pub relative: bool,
}

fn event(path: &str, token: &str) -> Message {
    Message::new(MsgType::WatchEvent, 0, 0, wire::join_nul(&[path.as_bytes(), token.as_bytes()]))
}

impl Store {
    /// `XS_WATCH`: registers, replies OK (returned), then queues the initial event.
    pub(super) fn watch(&mut self, conn: ConnId, ctx: &Ctx, p: &[u8]) -> Result<Vec<u8>, XsError> {
        let [raw, token]: [&str; 2] = wire::split_args(p, 2)?.try_into().map_err(|_| XsError::EINVAL)?;
        let abs = path::canonical_watch_path(ctx.domid, raw)?;
        let c = self.conns.get_mut(&conn).ok_or(XsError::EINVAL)?;
        if c.watches.iter().any(|w| w.path == abs && w.token == token) {
            return Err(XsError::EEXIST);
        }
        if !ctx.privileged && c.watches.len() >= ctx.quotas.watches {
            return Err(XsError::E2BIG);
        }
        // The watch, and the event it fires at once.
        if super::memory::watch_cost(&abs, token) * 2 + raw.len() > ctx.mem_budget {
            return Err(XsError::ENOMEM);
        }
        let relative = !raw.starts_with('/') && !raw.starts_with('@');
        c.watches.push(Watch { path: abs, token: String::from(token), relative });
        self.initial_event = Some((conn, event(raw, token)));
        Ok(ok())
    }

    /// `XS_UNWATCH`.
    pub(super) fn unwatch(&mut self, conn: ConnId, ctx: &Ctx, p: &[u8]) -> Result<Vec<u8>, XsError> {
        let [raw, token]: [&str; 2] = wire::split_args(p, 2)?.try_into().map_err(|_| XsError::EINVAL)?;
        let abs = path::canonical_watch_path(ctx.domid, raw)?;
        let c = self.conns.get_mut(&conn).ok_or(XsError::EINVAL)?;
        let i = c.watches.iter().position(|w| w.path == abs && w.token == token).ok_or(XsError::ENOENT)?;
        c.watches.remove(i);
        Ok(ok())
    }

    /// Queues events for a change at `node_path`: watches on it (and, unless `exact`, on its
    /// ancestors) fire for connections allowed to read it under any of `perms`.
    pub(crate) fn fire(&mut self, node_path: &str, perms: &[Perms], exact: bool) {
        let mut out = Vec::new();
        for (id, c) in &self.conns {
            if !perms.iter().any(|p| p.access(c.domid, c.privileged).can_read()) {
                continue;
            }
            for w in &c.watches {
                let hit = if exact { w.path == node_path } else { path::is_under(node_path, &w.path) };
                if !hit {
                    continue;
                }
                let home = path::domain_path(c.domid);
                let shown = match node_path.strip_prefix(home.as_str()).and_then(|r| r.strip_prefix('/')) {
                    Some(rel) if w.relative => rel,
                    _ => node_path,
                };
                out.push((*id, event(shown, &w.token)));
            }
        }
        for (id, m) in out {
            self.queue_event(id, m);
        }
    }

    /// Whether domain `domid` has a watch that a change at absolute `node_path` fires (on
    /// it or an ancestor): a toolstack asks before relying on a guest to act on a node
    /// (`control/shutdown`).
    pub fn is_watched_by(&self, domid: hypercall_abi::DomId, node_path: &str) -> bool {
        self.introduced
            .get(&domid)
            .and_then(|id| self.conns.get(id))
            .is_some_and(|c| c.watches.iter().any(|w| path::is_under(node_path, &w.path)))
    }

    /// Fires a special watch (`@introduceDomain` or `@releaseDomain`) to the watchers allowed
    /// by its permissions (by default dom0 only; see [`Store::set_special_perms`]).
    pub(crate) fn fire_special(&mut self, name: &str) {
        if let Some(perms) = self.special_perms.get(usize::from(name != SPECIAL_INTRODUCE)).cloned() {
            self.fire(name, &[perms], true);
        }
    }

    /// Sets who may watch a special name (`@introduceDomain` or `@releaseDomain`). Returns
    /// `EINVAL` for any other name.
    pub fn set_special_perms(&mut self, name: &str, perms: Perms) -> Result<(), XsError> {
        let i = match name {
            path::SPECIAL_INTRODUCE => 0,
            path::SPECIAL_RELEASE => 1,
            _ => return Err(XsError::EINVAL),
        };
        let slot = self.special_perms.get_mut(i).ok_or(XsError::EINVAL)?;
        *slot = perms;
        Ok(())
    }
}
