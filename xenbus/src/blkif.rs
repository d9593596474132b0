//! The block split driver's wire format (Xen's `io/blkif.h`) and the back end's checks of a
//! request, as pure logic: a back end copies each ring slot once ([`crate::ring::generic`]),
//! decodes it here against the virtual disk it serves, and either gets an [`Io`] to carry
//! out or the response to send at once.
//!
//! The rules are Linux's `xen-blkback` (`dispatch_rw_block_io`, `xen_vbd_translate`,
//! `dispatch_discard_io`), so that any Xen front end sees the answers it expects:
//! - read and write carry 1 to [`BLKIF_MAX_SEGMENTS_PER_REQUEST`] segments, each a granted
//!   page and a range of its eight 512-byte sectors (`first_sect <= last_sect <= 7`);
//!   a flush or barrier may carry none;
//! - `sector_number` is in 512-byte units whatever the disk's `sector-size`, and the start
//!   and every segment must be aligned to that size;
//! - the whole range must lie inside the disk (no wrap);
//! - a read-only disk refuses every write, flush and barrier (`BLKIF_RSP_ERROR`);
//! - an operation the disk does not offer (discard, a secure discard, indirect requests,
//!   unknown numbers) is `BLKIF_RSP_EOPNOTSUPP`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `BLKIF_OP_READ`.
pub const BLKIF_OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`.
pub const BLKIF_OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER`: a write (of its segments, if any) ordered after every earlier
/// one and durable before the response, as Linux's blkback treats it (a flush).
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE`.
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_OP_RESERVED_1` (never valid).
pub const BLKIF_OP_RESERVED_1: u8 = 4;
/// `BLKIF_OP_DISCARD` (the slot is a [`BlkifRequestDiscard`]).
pub const BLKIF_OP_DISCARD: u8 = 5;
/// `BLKIF_OP_INDIRECT` (the slot is a `blkif_request_indirect`; not offered here).
pub const BLKIF_OP_INDIRECT: u8 = 6;
/// Segments in one request.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// `BLKIF_DISCARD_SECURE` in a discard's `flag`.
pub const BLKIF_DISCARD_SECURE: u8 = 1;
/// `BLKIF_RSP_OKAY`.
pub const BLKIF_RSP_OKAY: i16 = 0;
/// `BLKIF_RSP_ERROR`.
pub const BLKIF_RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_EOPNOTSUPP`.
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;
/// Bytes of a request's sector unit (`sector_number`, `first_sect`, `last_sect`).
pub const SECTOR: u64 = 512;
/// 512-byte sectors in a granted page.
pub const SECTORS_PER_PAGE: u8 = 8;

/// `struct blkif_request_segment` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct BlkifSegment {
    /// The granted page.
    pub gref: u32,
    /// First 512-byte sector of the page to transfer.
    pub first_sect: u8,
    /// Last one (inclusive).
    pub last_sect: u8,
    /// Padding (implicit in C).
    pub _pad: u16,
}

/// `struct blkif_request` (112 bytes on x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct BlkifRequest {
    /// `BLKIF_OP_*`.
    pub operation: u8,
    /// Segments used.
    pub nr_segments: u8,
    /// The virtual device (`blkif_vdev_t`).
    pub handle: u16,
    /// Padding (implicit in C).
    pub _pad: u32,
    /// The front end's value, echoed in the response.
    pub id: u64,
    /// First sector, in 512-byte units.
    pub sector_number: u64,
    /// The segments.
    pub seg: [BlkifSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}

/// `struct blkif_request_discard` (32 bytes), the same slot read as a discard.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct BlkifRequestDiscard {
    /// `BLKIF_OP_DISCARD`.
    pub operation: u8,
    /// `BLKIF_DISCARD_SECURE` or 0.
    pub flag: u8,
    /// The virtual device.
    pub handle: u16,
    /// Padding (implicit in C).
    pub _pad: u32,
    /// Echoed in the response.
    pub id: u64,
    /// First sector, 512-byte units.
    pub sector_number: u64,
    /// Sectors to discard.
    pub nr_sectors: u64,
}

/// `struct blkif_response` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct BlkifResponse {
    /// The request's `id`.
    pub id: u64,
    /// The request's operation.
    pub operation: u8,
    /// Padding (implicit in C).
    pub _pad0: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
    /// Padding (implicit in C).
    pub _pad1: u32,
}

const _: () = assert!(core::mem::size_of::<BlkifSegment>() == 8);
const _: () = assert!(core::mem::size_of::<BlkifRequest>() == 112);
const _: () = assert!(core::mem::offset_of!(BlkifRequest, id) == 8);
const _: () = assert!(core::mem::offset_of!(BlkifRequest, sector_number) == 16);
const _: () = assert!(core::mem::offset_of!(BlkifRequest, seg) == 24);
const _: () = assert!(core::mem::size_of::<BlkifRequestDiscard>() == 32);
const _: () = assert!(core::mem::size_of::<BlkifResponse>() == 16);
const _: () = assert!(core::mem::offset_of!(BlkifResponse, status) == 10);

/// The virtual disk a back end serves, as it advertises it (`sectors`, `sector-size`,
/// `mode`, the `feature-*` nodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vbd {
    /// Size in 512-byte sectors (the store's `sectors` is in `sector-size` units).
    pub sectors: u64,
    /// Logical sector size in bytes (512, or a larger power of two up to 4096).
    pub sector_size: u32,
    /// Mounted read-only (`mode = r`).
    pub readonly: bool,
    /// Offers `BLKIF_OP_DISCARD` (`feature-discard`).
    pub discard: bool,
    /// Offers secure discard (`discard-secure`).
    pub discard_secure: bool,
}

/// One segment of an I/O, in bytes of its granted page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The granted page.
    pub gref: u32,
    /// First byte.
    pub offset: u16,
    /// Bytes (a multiple of 512, at most 4096).
    pub len: u16,
}

/// What an accepted request asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoKind {
    /// Read the range into the segments.
    Read,
    /// Write the segments to the range.
    Write,
    /// Write the segments (if any), then make everything written durable before answering
    /// (`BLKIF_OP_FLUSH_DISKCACHE`, or `BLKIF_OP_WRITE_BARRIER` as blkback serves it).
    WriteFlush,
    /// Discard the range (no segments).
    Discard {
        /// Sectors (512-byte units).
        sectors: u64,
    },
}

/// An accepted request: what to do, where, with which pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Io {
    /// The front end's id, for the response.
    pub id: u64,
    /// The operation number, for the response.
    pub operation: u8,
    /// What to do.
    pub kind: IoKind,
    /// First 512-byte sector on the virtual disk.
    pub sector: u64,
    /// Segments used, in order (`segments[..nr_segments]`).
    pub segments: [Segment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
    /// How many of `segments` are used.
    pub nr_segments: usize,
}

impl Io {
    /// The segments used.
    pub fn segments(&self) -> &[Segment] {
        self.segments.get(..self.nr_segments).unwrap_or(&[])
    }

    /// Total bytes the segments move.
    pub fn bytes(&self) -> u64 {
        self.segments().iter().map(|s| u64::from(s.len)).sum()
    }

    /// The response for this request with `status`.
    pub fn response(&self, status: i16) -> BlkifResponse {
        response(self.id, self.operation, status)
    }
}

/// Why a request was refused (with the status it is answered with, [`Refusal::status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An operation this disk does not offer (`BLKIF_RSP_EOPNOTSUPP`).
    NotSupported,
    /// Too many segments, or none where some are needed.
    SegmentCount,
    /// A segment's sectors are out of its page or backwards.
    BadSegment,
    /// The start or a segment is not aligned to the disk's sector size.
    Misaligned,
    /// The range leaves the disk (or wraps).
    OutOfRange,
    /// A write to a read-only disk.
    ReadOnly,
}

impl Refusal {
    /// The `BLKIF_RSP_*` the front end gets.
    pub fn status(self) -> i16 {
        match self {
            Refusal::NotSupported => BLKIF_RSP_EOPNOTSUPP,
            _ => BLKIF_RSP_ERROR,
        }
    }
}

/// A response to send.
pub fn response(id: u64, operation: u8, status: i16) -> BlkifResponse {
    BlkifResponse { id, operation, _pad0: 0, status, _pad1: 0 }
}

/// Checks `req` (a private copy of its ring slot) against `vbd`: the [`Io`] to carry out,
/// or the refusal (answer it with `response(req.id, req.operation, refusal.status())`).
pub fn check(req: &BlkifRequest, vbd: &Vbd) -> Result<Io, Refusal> {
    let kind = match req.operation {
        BLKIF_OP_READ => IoKind::Read,
        BLKIF_OP_WRITE => IoKind::Write,
        BLKIF_OP_WRITE_BARRIER | BLKIF_OP_FLUSH_DISKCACHE => IoKind::WriteFlush,
        BLKIF_OP_DISCARD => return check_discard(req, vbd),
        _ => return Err(Refusal::NotSupported),
    };
    let n = usize::from(req.nr_segments);
    if n > BLKIF_MAX_SEGMENTS_PER_REQUEST || (n == 0 && kind != IoKind::WriteFlush) {
        return Err(Refusal::SegmentCount);
    }
    // The disk's logical sector in 512-byte units (1..=8).
    let unit = u64::from(vbd.sector_size / 512).max(1);
    let mut segments = [Segment { gref: 0, offset: 0, len: 0 }; BLKIF_MAX_SEGMENTS_PER_REQUEST];
    let mut total: u64 = 0;
    for (s, out) in req.seg.iter().take(n).zip(segments.iter_mut()) {
        if s.last_sect >= SECTORS_PER_PAGE || s.last_sect < s.first_sect {
            return Err(Refusal::BadSegment);
        }
        let nsec = u64::from(s.last_sect - s.first_sect) + 1;
        if !(u64::from(s.first_sect) | nsec).is_multiple_of(unit) {
            return Err(Refusal::Misaligned);
        }
        *out = Segment { gref: s.gref, offset: u16::from(s.first_sect) * 512, len: nsec as u16 * 512 };
        total += nsec;
    }
    if !req.sector_number.is_multiple_of(unit) {
        return Err(Refusal::Misaligned);
    }
    if kind != IoKind::Read && vbd.readonly {
        return Err(Refusal::ReadOnly);
    }
    let end = req.sector_number.checked_add(total).ok_or(Refusal::OutOfRange)?;
    if total > 0 && end > vbd.sectors {
        return Err(Refusal::OutOfRange);
    }
    // A flush without data names no sector (the front end's value means nothing).
    let sector = if n == 0 { 0 } else { req.sector_number };
    Ok(Io { id: req.id, operation: req.operation, kind, sector, segments, nr_segments: n })
}

fn check_discard(req: &BlkifRequest, vbd: &Vbd) -> Result<Io, Refusal> {
    // The same bytes, read as a discard.
    let d = BlkifRequestDiscard::read_from_prefix(req.as_bytes()).map_err(|_| Refusal::NotSupported)?.0;
    if !vbd.discard || (d.flag & BLKIF_DISCARD_SECURE != 0 && !vbd.discard_secure) {
        return Err(Refusal::NotSupported);
    }
    if vbd.readonly {
        return Err(Refusal::ReadOnly);
    }
    let end = d.sector_number.checked_add(d.nr_sectors).ok_or(Refusal::OutOfRange)?;
    if end > vbd.sectors {
        return Err(Refusal::OutOfRange);
    }
    let empty = [Segment { gref: 0, offset: 0, len: 0 }; BLKIF_MAX_SEGMENTS_PER_REQUEST];
    Ok(Io { id: d.id, operation: d.operation, kind: IoKind::Discard { sectors: d.nr_sectors }, sector: d.sector_number, segments: empty, nr_segments: 0 })
}

/// The store keys of Xen's vbd, relative to the back-end directory
/// (`backend/vbd/<domid>/<devid>`) and the front-end directory (`device/vbd/<devid>`).
pub mod keys {
    /// Back end: what it serves (`phy:` target), `mode` (`r` or `w`).
    pub const PARAMS: &str = "params";
    /// Back end: `r` or `w`.
    pub const MODE: &str = "mode";
    /// Back end: size in `sector-size` units.
    pub const SECTORS: &str = "sectors";
    /// Back end: logical sector size in bytes.
    pub const SECTOR_SIZE: &str = "sector-size";
    /// Back end: `VDISK_*` bits (read-only: 4).
    pub const INFO: &str = "info";
    /// Back end: `1` when flushes are honoured.
    pub const FEATURE_FLUSH_CACHE: &str = "feature-flush-cache";
    /// Back end: `1` when barriers are honoured.
    pub const FEATURE_BARRIER: &str = "feature-barrier";
    /// Back end: `1` when grants may stay mapped across requests.
    pub const FEATURE_PERSISTENT: &str = "feature-persistent";
    /// Back end: largest ring, as a power of two of pages.
    pub const MAX_RING_PAGE_ORDER: &str = "max-ring-page-order";
    /// Both: the xenbus state.
    pub const STATE: &str = "state";
    /// Front end: the ring's grant reference.
    pub const RING_REF: &str = "ring-ref";
    /// Front end: its event channel.
    pub const EVENT_CHANNEL: &str = "event-channel";
    /// Front end: the ring ABI (`x86_64-abi`).
    pub const PROTOCOL: &str = "protocol";
    /// Front end: the device number (e.g. 51712 for xvda).
    pub const VIRTUAL_DEVICE: &str = "virtual-device";
    /// `info` bit of a read-only disk (`VDISK_READONLY`).
    pub const VDISK_READONLY: u32 = 4;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk() -> Vbd {
        Vbd { sectors: 1000, sector_size: 512, readonly: false, discard: false, discard_secure: false }
    }

    fn rw(op: u8, sector: u64, segs: &[(u32, u8, u8)]) -> BlkifRequest {
        let mut r = BlkifRequest { operation: op, nr_segments: segs.len() as u8, handle: 51712, id: 0xfeed, sector_number: sector, ..Default::default() };
        for (slot, &(gref, first, last)) in r.seg.iter_mut().zip(segs) {
            *slot = BlkifSegment { gref, first_sect: first, last_sect: last, _pad: 0 };
        }
        r
    }

    #[test]
    fn layouts_are_xens() {
        // The ring of a 4 KiB page holds 32 requests, as Linux's __CONST_RING_SIZE(blkif).
        let g = crate::ring::generic::Geometry::new::<BlkifRequest, BlkifResponse>(4096).unwrap();
        assert_eq!((g.slots, g.slot_size), (32, 112));
        let r = response(7, BLKIF_OP_WRITE, BLKIF_RSP_EOPNOTSUPP);
        assert_eq!(r.as_bytes(), &[7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0xfe, 0xff, 0, 0, 0, 0]);
    }

    #[test]
    fn a_read_and_a_write_are_accepted_with_their_byte_ranges() {
        let io = check(&rw(BLKIF_OP_READ, 8, &[(10, 0, 7), (11, 2, 3)]), &disk()).unwrap();
        assert_eq!((io.kind, io.sector, io.id, io.bytes()), (IoKind::Read, 8, 0xfeed, 4096 + 1024));
        assert_eq!(io.segments(), &[Segment { gref: 10, offset: 0, len: 4096 }, Segment { gref: 11, offset: 1024, len: 1024 }]);
        // The last sectors of the disk, exactly.
        assert!(check(&rw(BLKIF_OP_WRITE, 992, &[(1, 0, 7)]), &disk()).is_ok());
        assert_eq!(io.response(BLKIF_RSP_OKAY).status, 0);
    }

    #[test]
    fn every_field_out_of_range_is_refused() {
        let d = disk();
        let cases: &[(BlkifRequest, Refusal)] = &[
            (rw(BLKIF_OP_READ, 0, &[]), Refusal::SegmentCount),
            (BlkifRequest { nr_segments: 12, ..rw(BLKIF_OP_READ, 0, &[(1, 0, 7)]) }, Refusal::SegmentCount),
            (BlkifRequest { nr_segments: 255, ..rw(BLKIF_OP_WRITE, 0, &[(1, 0, 7)]) }, Refusal::SegmentCount),
            (rw(BLKIF_OP_READ, 0, &[(1, 0, 8)]), Refusal::BadSegment),
            (rw(BLKIF_OP_READ, 0, &[(1, 5, 4)]), Refusal::BadSegment),
            (rw(BLKIF_OP_READ, 0, &[(1, 0, 255)]), Refusal::BadSegment),
            (rw(BLKIF_OP_READ, 993, &[(1, 0, 7)]), Refusal::OutOfRange),
            (rw(BLKIF_OP_READ, u64::MAX - 3, &[(1, 0, 7)]), Refusal::OutOfRange),
            (rw(BLKIF_OP_READ, 1000, &[(1, 0, 0)]), Refusal::OutOfRange),
            (rw(BLKIF_OP_RESERVED_1, 0, &[(1, 0, 7)]), Refusal::NotSupported),
            (rw(BLKIF_OP_INDIRECT, 0, &[(1, 0, 7)]), Refusal::NotSupported),
            (rw(99, 0, &[(1, 0, 7)]), Refusal::NotSupported),
            (rw(BLKIF_OP_DISCARD, 0, &[]), Refusal::NotSupported),
        ];
        for (req, want) in cases {
            assert_eq!(check(req, &d), Err(*want), "{req:?}");
        }
        assert_eq!(Refusal::NotSupported.status(), BLKIF_RSP_EOPNOTSUPP);
        assert_eq!(Refusal::OutOfRange.status(), BLKIF_RSP_ERROR);
        // Twelve valid-looking segments: the count alone refuses it (the 12th is never read).
        let mut twelve = rw(BLKIF_OP_WRITE, 0, &[(1, 0, 7); 11]);
        twelve.nr_segments = 12;
        assert_eq!(check(&twelve, &d), Err(Refusal::SegmentCount));
    }

    #[test]
    fn read_only_disks_refuse_every_write_and_flush() {
        let d = Vbd { readonly: true, ..disk() };
        assert!(check(&rw(BLKIF_OP_READ, 0, &[(1, 0, 7)]), &d).is_ok());
        for op in [BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER, BLKIF_OP_FLUSH_DISKCACHE] {
            assert_eq!(check(&rw(op, 0, &[(1, 0, 7)]), &d), Err(Refusal::ReadOnly), "op {op}");
        }
    }

    #[test]
    fn flush_and_barrier_may_carry_no_segment() {
        let io = check(&rw(BLKIF_OP_FLUSH_DISKCACHE, 0, &[]), &disk()).unwrap();
        assert_eq!((io.kind, io.nr_segments), (IoKind::WriteFlush, 0));
        // A barrier with data writes it, then flushes; its range is checked as a write's.
        let io = check(&rw(BLKIF_OP_WRITE_BARRIER, 16, &[(3, 0, 7)]), &disk()).unwrap();
        assert_eq!((io.kind, io.bytes()), (IoKind::WriteFlush, 4096));
        assert_eq!(check(&rw(BLKIF_OP_WRITE_BARRIER, 999, &[(3, 0, 7)]), &disk()), Err(Refusal::OutOfRange));
    }

    #[test]
    fn a_4k_sector_disk_wants_aligned_requests() {
        let d = Vbd { sector_size: 4096, ..disk() };
        assert!(check(&rw(BLKIF_OP_READ, 8, &[(1, 0, 7)]), &d).is_ok());
        assert_eq!(check(&rw(BLKIF_OP_READ, 4, &[(1, 0, 7)]), &d), Err(Refusal::Misaligned));
        assert_eq!(check(&rw(BLKIF_OP_READ, 8, &[(1, 0, 3)]), &d), Err(Refusal::Misaligned));
        assert_eq!(check(&rw(BLKIF_OP_READ, 8, &[(1, 4, 7)]), &d), Err(Refusal::Misaligned));
    }

    #[test]
    fn discards_when_offered() {
        let mut req = BlkifRequest::default();
        let d = BlkifRequestDiscard { operation: BLKIF_OP_DISCARD, flag: 0, handle: 1, _pad: 0, id: 5, sector_number: 100, nr_sectors: 50 };
        req.as_mut_bytes()[..32].copy_from_slice(d.as_bytes());
        let with = Vbd { discard: true, ..disk() };
        let io = check(&req, &with).unwrap();
        assert_eq!((io.kind, io.sector, io.id), (IoKind::Discard { sectors: 50 }, 100, 5));
        assert_eq!(check(&req, &disk()), Err(Refusal::NotSupported));
        let secure = BlkifRequestDiscard { flag: BLKIF_DISCARD_SECURE, ..d };
        req.as_mut_bytes()[..32].copy_from_slice(secure.as_bytes());
        assert_eq!(check(&req, &with), Err(Refusal::NotSupported));
        let past = BlkifRequestDiscard { nr_sectors: u64::MAX, ..d };
        req.as_mut_bytes()[..32].copy_from_slice(past.as_bytes());
        assert_eq!(check(&req, &with), Err(Refusal::OutOfRange));
        assert_eq!(check(&req, &Vbd { readonly: true, ..with }), Err(Refusal::ReadOnly));
    }

    #[test]
    fn any_slot_bytes_decode_without_panicking() {
        // A front end may write anything: every byte pattern gives an Io or a refusal.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut slot = [0u8; 112];
            for b in slot.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            slot[0] %= 8;
            let req = BlkifRequest::read_from_bytes(&slot).unwrap();
            if let Ok(io) = check(&req, &disk()) {
                assert!(io.nr_segments <= BLKIF_MAX_SEGMENTS_PER_REQUEST);
                assert!(io.sector + io.bytes() / SECTOR <= 1000 || matches!(io.kind, IoKind::Discard { .. }));
                assert!(io.segments().iter().all(|s| u32::from(s.offset) + u32::from(s.len) <= 4096));
            }
        }
    }
}
