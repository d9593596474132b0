//! The network split driver's wire format (Xen's `io/netif.h`) and the back end's checks of
//! what a front end transmits, as pure logic.
//!
//! A vif has two rings in two granted pages, sharing one event channel:
//! - **tx** (front end → back end): each [`NetifTxRequest`] names a granted page, an offset
//!   and a size; a frame is one request, or a chain of them (`NETTXF_more_data`), whose
//!   first request's `size` is the whole frame's; `NETTXF_extra_info` says an
//!   [`NetifExtraInfo`] slot follows the first request (and another while
//!   `XEN_NETIF_EXTRA_FLAG_MORE`). Each slot gets a [`NetifTxResponse`] in order (an extra
//!   slot's is `NETIF_RSP_NULL`).
//! - **rx** (back end → front end): the front end posts empty granted pages
//!   ([`NetifRxRequest`]); the back end copies a received frame into one (`GNTTABOP_copy`,
//!   `feature-rx-copy`) and answers with its length ([`NetifRxResponse`]).
//!
//! [`gather_tx`] and [`check_tx`] are Linux netback's rules (`xenvif_count_requests`,
//! `xenvif_get_extras`, `xenvif_tx_build_gops`), so a front end written for Xen sees the
//! answers it expects, and a hostile one the same consequences:
//! - **fatal** (the ring is disconnected): a slot crossing its page, a chain longer than
//!   [`XEN_NETIF_NR_SLOTS_MIN`] slots or running past what the front end produced, a
//!   missing or unknown extra, GSO (not offered), and here a frame longer than
//!   [`MAX_FRAME`] (no GSO is offered, so nothing longer is a frame);
//! - **dropped** (`NETIF_RSP_ERROR`, serving goes on): a runt (shorter than an Ethernet
//!   header), slot sizes that do not add up to the frame's.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `NETTXF_csum_blank`: the L4 checksum is to be filled in (offload).
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// `NETTXF_data_validated`.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// `NETTXF_more_data`: the frame continues in the next request.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// `NETTXF_extra_info`: an extra-info slot follows.
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;
/// `NETRXF_data_validated`.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// `NETRXF_csum_blank`.
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// `NETRXF_more_data`.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// `NETIF_RSP_DROPPED`.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// `NETIF_RSP_ERROR`.
pub const NETIF_RSP_ERROR: i16 = -1;
/// `NETIF_RSP_OKAY`.
pub const NETIF_RSP_OKAY: i16 = 0;
/// `NETIF_RSP_NULL`: the response of an extra-info slot.
pub const NETIF_RSP_NULL: i16 = 1;
/// `XEN_NETIF_EXTRA_TYPE_GSO`.
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_ADD`.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_DEL`.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// `XEN_NETIF_EXTRA_TYPE_HASH`.
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// `XEN_NETIF_EXTRA_TYPE_MAX`: types are below it (0 is never valid).
pub const XEN_NETIF_EXTRA_TYPE_MAX: u8 = 5;
/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra slot follows.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;
/// `XEN_NETIF_NR_SLOTS_MIN`: the most slots a frame may take (Linux netback's
/// `fatal_skb_slots` default).
pub const XEN_NETIF_NR_SLOTS_MIN: usize = 18;
/// An Ethernet header's length: no frame is shorter.
pub const ETH_HLEN: usize = 14;
/// The MTU the vifs offer (`mtu` in the back end's directory).
pub const MTU: usize = 1500;
/// The longest frame: the MTU, the Ethernet header and one VLAN tag.
pub const MAX_FRAME: usize = MTU + ETH_HLEN + 4;
/// A granted page.
pub const PAGE: usize = 4096;

/// `struct netif_tx_request` (12 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct NetifTxRequest {
    /// The granted page holding the data.
    pub gref: u32,
    /// Where in it the data starts.
    pub offset: u16,
    /// `NETTXF_*`.
    pub flags: u16,
    /// Echoed in the response.
    pub id: u16,
    /// Bytes in this slot; in a chain's first slot, the whole frame's.
    pub size: u16,
}

/// `struct netif_extra_info` (8 bytes): `type`, `flags` and six bytes whose meaning the type
/// gives (GSO size/type/features, a multicast address, a hash).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct NetifExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_*`.
    pub kind: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
    /// The union's bytes.
    pub data: [u8; 6],
}

/// `struct netif_tx_response` (4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct NetifTxResponse {
    /// The request's `id`.
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}

/// `struct netif_rx_request` (8 bytes): an empty page the front end posts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct NetifRxRequest {
    /// Echoed in the response.
    pub id: u16,
    /// Padding.
    pub _pad: u16,
    /// The granted page to fill.
    pub gref: u32,
}

/// `struct netif_rx_response` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct NetifRxResponse {
    /// The request's `id`.
    pub id: u16,
    /// Where in the page the data starts.
    pub offset: u16,
    /// `NETRXF_*`.
    pub flags: u16,
    /// Bytes received (positive), or `NETIF_RSP_*` (negative).
    pub status: i16,
}

const _: () = assert!(core::mem::size_of::<NetifTxRequest>() == 12);
const _: () = assert!(core::mem::offset_of!(NetifTxRequest, flags) == 6);
const _: () = assert!(core::mem::offset_of!(NetifTxRequest, size) == 10);
const _: () = assert!(core::mem::size_of::<NetifExtraInfo>() == 8);
const _: () = assert!(core::mem::size_of::<NetifTxResponse>() == 4);
const _: () = assert!(core::mem::size_of::<NetifRxRequest>() == 8);
const _: () = assert!(core::mem::offset_of!(NetifRxRequest, gref) == 4);
const _: () = assert!(core::mem::size_of::<NetifRxResponse>() == 8);
const _: () = assert!(core::mem::offset_of!(NetifRxResponse, status) == 6);

impl NetifTxRequest {
    /// The slot read as an extra-info slot (its first eight bytes).
    pub fn as_extra(&self) -> NetifExtraInfo {
        NetifExtraInfo::read_from_prefix(self.as_bytes()).map(|(e, _)| e).unwrap_or_default()
    }
}

/// The store keys of a vif (`docs/misc/xenstore-paths`, `io/netif.h`).
pub mod keys {
    /// Both directories: the MAC address (`aa:bb:cc:dd:ee:ff`).
    pub const MAC: &str = "mac";
    /// Both directories: the device number.
    pub const HANDLE: &str = "handle";
    /// Back end: it copies received frames into posted pages.
    pub const FEATURE_RX_COPY: &str = "feature-rx-copy";
    /// Back end: it can flip pages (never, here).
    pub const FEATURE_RX_FLIP: &str = "feature-rx-flip";
    /// Back end: it takes frames in several slots.
    pub const FEATURE_SG: &str = "feature-sg";
    /// Back end: TCP segmentation offload.
    pub const FEATURE_GSO_TCPV4: &str = "feature-gso-tcpv4";
    /// Front end: the tx ring's grant.
    pub const TX_RING_REF: &str = "tx-ring-ref";
    /// Front end: the rx ring's grant.
    pub const RX_RING_REF: &str = "rx-ring-ref";
    /// Front end: it wants received frames copied.
    pub const REQUEST_RX_COPY: &str = "request-rx-copy";
    /// Back end: the addresses the guest may send from (space-separated), if set.
    pub const IP: &str = "ip";
}

/// The slots of one transmitted frame as the front end wrote them, in ring order: its first
/// request, its extras, the rest of its chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxSlots {
    /// Every slot, in order.
    pub slots: Vec<NetifTxRequest>,
    /// How many of them (after the first) are extras.
    pub extras: usize,
}

/// Reads one frame's slots from the ring, `next` giving the next produced request (`None`
/// once the front end has produced no more). A chain that runs past what was produced, or
/// is longer than [`XEN_NETIF_NR_SLOTS_MIN`], is fatal (the error says so); `Ok(None)` if no
/// request waits.
pub fn gather_tx(next: &mut dyn FnMut() -> Result<Option<NetifTxRequest>, String>) -> Result<Option<TxSlots>, String> {
    let Some(first) = next()? else { return Ok(None) };
    let mut slots = alloc::vec![first];
    let mut extras = 0;
    let mut more_extras = first.flags & NETTXF_EXTRA_INFO != 0;
    while more_extras {
        let slot = next()?.ok_or("an extra-info slot is missing")?;
        let extra = slot.as_extra();
        if extra.kind == 0 || extra.kind >= XEN_NETIF_EXTRA_TYPE_MAX {
            return Err(format!("extra-info type {} is not valid", extra.kind));
        }
        more_extras = extra.flags & XEN_NETIF_EXTRA_FLAG_MORE != 0;
        slots.push(slot);
        extras += 1;
        if extras >= XEN_NETIF_EXTRA_TYPE_MAX as usize {
            return Err(String::from("more extra-info slots than there are types"));
        }
    }
    let mut last = first;
    while last.flags & NETTXF_MORE_DATA != 0 {
        if slots.len() - extras >= XEN_NETIF_NR_SLOTS_MIN {
            return Err(format!("a frame in more than {XEN_NETIF_NR_SLOTS_MIN} slots"));
        }
        last = next()?.ok_or("a frame's chain runs past the requests produced")?;
        slots.push(last);
    }
    Ok(Some(TxSlots { slots, extras }))
}

/// One piece of a transmitted frame: a granted page's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// The granted page.
    pub gref: u32,
    /// First byte.
    pub offset: u16,
    /// Bytes.
    pub len: u16,
}

/// A frame accepted for copying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxFrame {
    /// Its bytes, piece by piece.
    pub pieces: Vec<Piece>,
    /// Its length.
    pub len: usize,
    /// `NETTXF_csum_blank`: the L4 checksum is to be completed.
    pub csum_blank: bool,
}

/// What to do with one frame's slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxVerdict {
    /// Copy it (and answer `NETIF_RSP_OKAY`, or `NETIF_RSP_ERROR` if the copy fails).
    Frame(TxFrame),
    /// Answer `NETIF_RSP_OKAY` without a frame (a multicast-list or hash extra with a
    /// dummy request: nothing to forward).
    Control,
    /// Answer `NETIF_RSP_ERROR` and drop it; serving goes on.
    Drop(String),
    /// The front end broke the protocol: disconnect it.
    Fatal(String),
}

/// Checks one frame's slots (from [`gather_tx`]), in Linux netback's order: the extras,
/// the chain (each later slot inside its page, their sizes within the frame's), then the
/// first slot's own bytes (at least an Ethernet header, inside its page).
pub fn check_tx(tx: &TxSlots) -> TxVerdict {
    let (Some(&first), Some(extras), Some(rest)) = (tx.slots.first(), tx.slots.get(1..1 + tx.extras), tx.slots.get(1 + tx.extras..)) else {
        return TxVerdict::Fatal(String::from("no slots"));
    };
    let mut control = false;
    for e in extras.iter().map(NetifTxRequest::as_extra) {
        match e.kind {
            XEN_NETIF_EXTRA_TYPE_GSO => return TxVerdict::Fatal(String::from("GSO, which the back end does not offer")),
            XEN_NETIF_EXTRA_TYPE_MCAST_ADD | XEN_NETIF_EXTRA_TYPE_MCAST_DEL => control = true,
            _ => {}
        }
    }
    for s in rest {
        if usize::from(s.offset) + usize::from(s.size) > PAGE {
            return TxVerdict::Fatal(format!("a slot crosses its page (offset {}, size {})", s.offset, s.size));
        }
    }
    if control {
        return TxVerdict::Control;
    }
    let len = usize::from(first.size);
    if len > MAX_FRAME {
        return TxVerdict::Fatal(format!("a frame of {len} bytes (the MTU is {MTU})"));
    }
    let rest_len: usize = rest.iter().map(|s| usize::from(s.size)).sum();
    if rest_len > len {
        return TxVerdict::Drop(format!("slots of {rest_len} bytes after the first in a frame of {len}"));
    }
    let first_len = len - rest_len;
    if first_len < ETH_HLEN {
        return TxVerdict::Drop(format!("a first slot of {first_len} bytes, shorter than an Ethernet header"));
    }
    if usize::from(first.offset) + first_len > PAGE {
        return TxVerdict::Fatal(format!("a slot crosses its page (offset {}, size {first_len})", first.offset));
    }
    let mut pieces = Vec::with_capacity(1 + rest.len());
    pieces.push(Piece { gref: first.gref, offset: first.offset, len: first_len as u16 });
    pieces.extend(rest.iter().filter(|s| s.size > 0).map(|s| Piece { gref: s.gref, offset: s.offset, len: s.size }));
    TxVerdict::Frame(TxFrame { pieces, len, csum_blank: first.flags & NETTXF_CSUM_BLANK != 0 })
}

/// The responses of one frame's slots, in ring order: `status` for the data slots (their
/// ids), `NETIF_RSP_NULL` for the extras.
pub fn tx_responses(tx: &TxSlots, status: i16) -> Vec<NetifTxResponse> {
    tx.slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let extra = i >= 1 && i <= tx.extras;
            NetifTxResponse { id: s.id, status: if extra { NETIF_RSP_NULL } else { status } }
        })
        .collect()
}

/// A MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    /// Parses `aa:bb:cc:dd:ee:ff` (hex digits, either case).
    pub fn parse(text: &str) -> Option<Mac> {
        let mut out = [0u8; 6];
        let mut parts = text.split(':');
        for b in out.iter_mut() {
            let p = parts.next()?;
            if p.len() != 2 {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(Mac(out))
    }

    /// A group (multicast or broadcast) address: the I/G bit.
    pub fn is_group(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// Where a frame goes: its first six bytes.
    pub fn dst_of(frame: &[u8]) -> Option<Mac> {
        frame.get(..6).and_then(|b| b.try_into().ok()).map(Mac)
    }

    /// Where a frame comes from: bytes 6 to 12.
    pub fn src_of(frame: &[u8]) -> Option<Mac> {
        frame.get(6..12).and_then(|b| b.try_into().ok()).map(Mac)
    }
}

impl core::fmt::Display for Mac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

#[cfg(test)]
mod tests;
