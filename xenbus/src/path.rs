//! Store paths and permissions: validation of untrusted path strings (xenstored's rules) and
//! the `"r0"`-style permission lists.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::DomId;

use crate::wire::{XsError, ABS_PATH_MAX, REL_PATH_MAX};

/// Prefix of the watch paths that name events rather than nodes.
pub const SPECIAL_INTRODUCE: &str = "@introduceDomain";
/// Fired when a domain is released.
pub const SPECIAL_RELEASE: &str = "@releaseDomain";

/// The home directory of a domain, to which relative paths are relative.
pub fn domain_path(domid: DomId) -> String {
    format!("/local/domain/{}", domid.0)
}

fn valid_chars(path: &str) -> bool {
    path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-/_@".contains(&b))
}

/// Turns an untrusted node path into an absolute one. Relative paths are taken relative to
/// the caller's home (`/local/domain/<id>`). Refused (`EINVAL`): empty, characters outside
/// `[A-Za-z0-9-/_@]`, `"//"`, a trailing `/` (except `"/"` itself), longer than
/// [`ABS_PATH_MAX`] (absolute) or [`REL_PATH_MAX`] (relative), and `@` names (only watches
/// take those, see [`canonical_watch_path`]).
pub fn canonical(domid: DomId, path: &str) -> Result<String, XsError> {
    if path.is_empty() || !valid_chars(path) || path.contains("//") || path.starts_with('@') {
        return Err(XsError::EINVAL);
    }
    if path.len() > 1 && path.ends_with('/') {
        return Err(XsError::EINVAL);
    }
    if path.starts_with('/') {
        if path.len() > ABS_PATH_MAX {
            return Err(XsError::EINVAL);
        }
        Ok(String::from(path))
    } else {
        if path.len() > REL_PATH_MAX {
            return Err(XsError::EINVAL);
        }
        Ok(format!("{}/{}", domain_path(domid), path))
    }
}

/// Like [`canonical`], but also accepts the special event names `@introduceDomain` and
/// `@releaseDomain`.
pub fn canonical_watch_path(domid: DomId, path: &str) -> Result<String, XsError> {
    if path == SPECIAL_INTRODUCE || path == SPECIAL_RELEASE {
        return Ok(String::from(path));
    }
    canonical(domid, path)
}

/// The parent of an absolute path (`None` for `"/"`).
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The last component of an absolute path.
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// `child` joined under `dir`.
pub fn join(dir: &str, child: &str) -> String {
    if dir == "/" {
        format!("/{child}")
    } else {
        format!("{dir}/{child}")
    }
}

/// Whether `path` is `ancestor` or lies below it.
pub fn is_under(path: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return path.starts_with('/');
    }
    path == ancestor || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

/// One permission letter: none, read, write, both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    /// `n`
    None,
    /// `r`
    Read,
    /// `w`
    Write,
    /// `b`
    Both,
}

impl Perm {
    /// Whether this grants reading.
    pub fn can_read(self) -> bool {
        matches!(self, Perm::Read | Perm::Both)
    }
    /// Whether this grants writing.
    pub fn can_write(self) -> bool {
        matches!(self, Perm::Write | Perm::Both)
    }
    fn letter(self) -> char {
        match self {
            Perm::None => 'n',
            Perm::Read => 'r',
            Perm::Write => 'w',
            Perm::Both => 'b',
        }
    }
}

/// Largest number of entries in one permission list (xenstored's `quota_nb_perms_per_node`).
pub const MAX_PERMS_PER_NODE: usize = 5;

/// A node's permissions: the first entry names the owner and the access every domain not
/// listed gets; later entries grant specific domains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Perms {
    /// `(domain, access)` pairs; never empty.
    pub entries: Vec<(DomId, Perm)>,
}

impl Perms {
    /// Owned by `owner`, nobody else may do anything (`"n<owner>"`).
    pub fn owned_by(owner: DomId) -> Perms {
        Perms { entries: alloc::vec![(owner, Perm::None)] }
    }

    /// The owning domain.
    pub fn owner(&self) -> DomId {
        // Never empty (parsing refuses an empty list); dom0 if it were.
        self.entries.first().map_or(DomId(0), |e| e.0)
    }

    /// The access of `domid`: the owner and privileged domains may do everything, a listed
    /// domain gets its entry, everyone else the first entry's letter.
    pub fn access(&self, domid: DomId, privileged: bool) -> Perm {
        if privileged || domid == self.owner() {
            return Perm::Both;
        }
        self.entries
            .iter()
            .skip(1)
            .find(|(d, _)| *d == domid)
            .map(|(_, p)| *p)
            .unwrap_or(self.entries.first().map_or(Perm::None, |e| e.1))
    }

    /// Parses the `XS_SET_PERMS` form: NUL-separated entries like `"r0"`, `"b3"`.
    pub fn parse(strings: &[&str]) -> Result<Perms, XsError> {
        if strings.is_empty() || strings.len() > MAX_PERMS_PER_NODE {
            return Err(XsError::EINVAL);
        }
        let mut entries = Vec::with_capacity(strings.len());
        for s in strings {
            let mut chars = s.chars();
            let perm = match chars.next() {
                Some('n') => Perm::None,
                Some('r') => Perm::Read,
                Some('w') => Perm::Write,
                Some('b') => Perm::Both,
                _ => return Err(XsError::EINVAL),
            };
            let digits = chars.as_str();
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(XsError::EINVAL);
            }
            let id: u32 = digits.parse().map_err(|_| XsError::EINVAL)?;
            let id = u16::try_from(id).map_err(|_| XsError::EINVAL)?;
            entries.push((DomId(id), perm));
        }
        Ok(Perms { entries })
    }

    /// The wire form: each entry followed by a NUL.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (d, p) in &self.entries {
            out.extend_from_slice(format!("{}{}", p.letter(), d.0).as_bytes());
            out.push(0);
        }
        out
    }
}
