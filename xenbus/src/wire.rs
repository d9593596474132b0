//! The xenstore wire protocol (Xen's `io/xs_wire.h`): message header, message types, error
//! names, and a parser for untrusted bytes plus a builder for requests and replies.

use alloc::vec::Vec;

/// Largest payload a message may carry (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = 4096;
/// Size of `struct xsd_sockmsg` on the wire.
pub const HEADER_SIZE: usize = 16;
/// Largest absolute path (`XENSTORE_ABS_PATH_MAX`).
pub const ABS_PATH_MAX: usize = 3072;
/// Largest relative path (`XENSTORE_REL_PATH_MAX`).
pub const REL_PATH_MAX: usize = 2048;

/// Message types (`enum xsd_sockmsg_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
#[allow(missing_docs)] // Names are Xen's; xs_wire.h is their documentation.
pub enum MsgType {
    Control = 0,
    Directory = 1,
    Read = 2,
    GetPerms = 3,
    Watch = 4,
    Unwatch = 5,
    TransactionStart = 6,
    TransactionEnd = 7,
    Introduce = 8,
    Release = 9,
    GetDomainPath = 10,
    Write = 11,
    Mkdir = 12,
    Rm = 13,
    SetPerms = 14,
    WatchEvent = 15,
    Error = 16,
    IsDomainIntroduced = 17,
    Resume = 18,
    SetTarget = 19,
    /// Obsolete `XS_RESTRICT`; parsed so it can be answered with an error.
    Restrict = 20,
    ResetWatches = 21,
    DirectoryPart = 22,
    GetFeature = 23,
    SetFeature = 24,
    GetQuota = 25,
    SetQuota = 26,
}

impl TryFrom<u32> for MsgType {
    type Error = u32;
    fn try_from(value: u32) -> Result<Self, u32> {
        use MsgType::*;
        Ok(match value {
            0 => Control,
            1 => Directory,
            2 => Read,
            3 => GetPerms,
            4 => Watch,
            5 => Unwatch,
            6 => TransactionStart,
            7 => TransactionEnd,
            8 => Introduce,
            9 => Release,
            10 => GetDomainPath,
            11 => Write,
            12 => Mkdir,
            13 => Rm,
            14 => SetPerms,
            15 => WatchEvent,
            16 => Error,
            17 => IsDomainIntroduced,
            18 => Resume,
            19 => SetTarget,
            20 => Restrict,
            21 => ResetWatches,
            22 => DirectoryPart,
            23 => GetFeature,
            24 => SetFeature,
            25 => GetQuota,
            26 => SetQuota,
            other => return Err(other),
        })
    }
}

/// The error names a store reply may carry (`xsd_errors`), sent as `"EINVAL\0"` in an
/// `XS_ERROR` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // POSIX errno names.
pub enum XsError {
    EINVAL,
    EACCES,
    EEXIST,
    EISDIR,
    ENOENT,
    ENOMEM,
    ENOSPC,
    EIO,
    ENOTEMPTY,
    ENOSYS,
    EROFS,
    EBUSY,
    EAGAIN,
    EISCONN,
    E2BIG,
    EPERM,
}

impl XsError {
    /// Every error, in `xsd_errors` order.
    pub const ALL: [XsError; 16] = [
        XsError::EINVAL,
        XsError::EACCES,
        XsError::EEXIST,
        XsError::EISDIR,
        XsError::ENOENT,
        XsError::ENOMEM,
        XsError::ENOSPC,
        XsError::EIO,
        XsError::ENOTEMPTY,
        XsError::ENOSYS,
        XsError::EROFS,
        XsError::EBUSY,
        XsError::EAGAIN,
        XsError::EISCONN,
        XsError::E2BIG,
        XsError::EPERM,
    ];

    /// The name as it travels on the wire (without the NUL).
    pub fn name(self) -> &'static str {
        use XsError::*;
        match self {
            EINVAL => "EINVAL",
            EACCES => "EACCES",
            EEXIST => "EEXIST",
            EISDIR => "EISDIR",
            ENOENT => "ENOENT",
            ENOMEM => "ENOMEM",
            ENOSPC => "ENOSPC",
            EIO => "EIO",
            ENOTEMPTY => "ENOTEMPTY",
            ENOSYS => "ENOSYS",
            EROFS => "EROFS",
            EBUSY => "EBUSY",
            EAGAIN => "EAGAIN",
            EISCONN => "EISCONN",
            E2BIG => "E2BIG",
            EPERM => "EPERM",
        }
    }

    /// Parses an error name as found in an `XS_ERROR` payload (a trailing NUL is allowed).
    pub fn from_name(bytes: &[u8]) -> Option<XsError> {
        let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
        XsError::ALL.into_iter().find(|e| e.name().as_bytes() == bytes)
    }
}

/// `struct xsd_sockmsg`: the 16-byte header in front of every message (little endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Raw message type; may be unknown (see [`MsgType`]).
    pub msg_type: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 outside a transaction.
    pub tx_id: u32,
    /// Payload length in bytes.
    pub len: u32,
}

/// Why bytes could not be taken as a message. Each of these is a protocol violation that
/// ends the connection: the sender cannot be resynchronised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Fewer than [`HEADER_SIZE`] bytes.
    ShortHeader,
    /// `len` is larger than [`PAYLOAD_MAX`].
    Oversized(u32),
    /// The buffer does not hold exactly header + `len` bytes.
    LengthMismatch,
}

impl Header {
    /// Decodes a header from the first 16 bytes; checks `len` against [`PAYLOAD_MAX`].
    pub fn parse(bytes: &[u8]) -> Result<Header, WireError> {
        let b = bytes.get(..HEADER_SIZE).ok_or(WireError::ShortHeader)?;
        let word = |i: usize| b.get(i..i + 4).and_then(|w| <[u8; 4]>::try_from(w).ok()).map_or(0, u32::from_le_bytes);
        let header = Header { msg_type: word(0), req_id: word(4), tx_id: word(8), len: word(12) };
        if header.len as usize > PAYLOAD_MAX {
            return Err(WireError::Oversized(header.len));
        }
        Ok(header)
    }

    /// Encodes the header.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[0..4].copy_from_slice(&self.msg_type.to_le_bytes());
        out[4..8].copy_from_slice(&self.req_id.to_le_bytes());
        out[8..12].copy_from_slice(&self.tx_id.to_le_bytes());
        out[12..16].copy_from_slice(&self.len.to_le_bytes());
        out
    }
}

/// A whole message in private memory: header and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The header; `header.len == payload.len()`.
    pub header: Header,
    /// The payload bytes, exactly as received.
    pub payload: Vec<u8>,
}

impl Message {
    /// Takes one complete message from untrusted bytes (header + exactly `len` bytes).
    pub fn parse(bytes: &[u8]) -> Result<Message, WireError> {
        let header = Header::parse(bytes)?;
        if bytes.len() != HEADER_SIZE + header.len as usize {
            return Err(WireError::LengthMismatch);
        }
        Ok(Message { header, payload: bytes.get(HEADER_SIZE..).unwrap_or(&[]).to_vec() })
    }

    /// Builds a message of a known type. Payloads longer than [`PAYLOAD_MAX`] are the
    /// caller's bug; the store never produces one (see [`Message::to_bytes`]).
    pub fn new(msg_type: MsgType, req_id: u32, tx_id: u32, payload: Vec<u8>) -> Message {
        let header = Header { msg_type: msg_type as u32, req_id, tx_id, len: payload.len() as u32 };
        Message { header, payload }
    }

    /// Builds an `XS_ERROR` reply.
    pub fn error(req_id: u32, tx_id: u32, err: XsError) -> Message {
        Message::new(MsgType::Error, req_id, tx_id, nul_terminated(err.name().as_bytes()))
    }

    /// The message type, if known.
    pub fn msg_type(&self) -> Result<MsgType, u32> {
        MsgType::try_from(self.header.msg_type)
    }

    /// If this is an `XS_ERROR` reply, the error it carries (`EINVAL` if unreadable).
    pub fn as_error(&self) -> Option<XsError> {
        (self.header.msg_type == MsgType::Error as u32)
            .then(|| XsError::from_name(&self.payload).unwrap_or(XsError::EINVAL))
    }

    /// Header and payload as one byte vector, ready for a ring.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_SIZE + self.payload.len());
        out.extend_from_slice(&self.header.to_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// `s` followed by a NUL.
pub fn nul_terminated(s: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s);
    v.push(0);
    v
}

/// Joins strings, each followed by a NUL (`"a\0b\0"`), as `XS_WATCH` and friends expect.
pub fn join_nul(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p);
        v.push(0);
    }
    v
}

/// Splits a payload into exactly `n` NUL-terminated strings. Fails (`EINVAL`) if a NUL is
/// missing, if there are more or fewer strings, or if a string is not UTF-8.
pub fn split_args(payload: &[u8], n: usize) -> Result<Vec<&str>, XsError> {
    let body = payload.strip_suffix(b"\0").ok_or(XsError::EINVAL)?;
    let parts: Vec<&[u8]> = body.split(|&b| b == 0).collect();
    if parts.len() != n {
        return Err(XsError::EINVAL);
    }
    parts.into_iter().map(|p| core::str::from_utf8(p).map_err(|_| XsError::EINVAL)).collect()
}

/// Splits a payload into a NUL-terminated string followed by raw bytes (as `XS_WRITE` sends:
/// `"path\0value"`, the value not terminated).
pub fn split_path_value(payload: &[u8]) -> Result<(&str, &[u8]), XsError> {
    let nul = payload.iter().position(|&b| b == 0).ok_or(XsError::EINVAL)?;
    let (path, rest) = payload.split_at(nul);
    let path = core::str::from_utf8(path).map_err(|_| XsError::EINVAL)?;
    Ok((path, rest.get(1..).unwrap_or(&[])))
}
