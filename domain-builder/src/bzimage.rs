//! Kernels as distributions ship them: a Linux `bzImage` (`vmlinuz`), whose protected-mode
//! payload is the ELF kernel, compressed. Xen's builders (`xen/common/bzimage.c` for dom0,
//! `xg_dom_bzimageloader.c` for guests) find the payload through the boot protocol's setup
//! header, read the unpacked size from the payload's last four bytes, and decompress it;
//! an image that is not a bzImage is taken as the ELF itself.
//!
//! Formats: LZ4 in the kernel's legacy framing (what Debian's kernels use), and an
//! uncompressed ELF payload. Others are refused by name. Every length is checked: a lying
//! header or stream is an error, never a read past the image or a write past the buffer.

use core::fmt;

/// Where the setup header starts (`hdr` in the boot protocol).
const SETUP_HEADER: usize = 0x1f1;
/// `header` field: "HdrS".
const HDR_MAGIC_AT: usize = 0x202;
/// `version` field.
const VERSION_AT: usize = 0x206;
/// `payload_offset` and `payload_length` (protocol 2.08+).
const PAYLOAD_OFFSET_AT: usize = 0x248;
const PAYLOAD_LENGTH_AT: usize = 0x24c;
/// The first protocol version with `payload_offset` (Xen requires it too).
const MIN_VERSION: u16 = 0x0208;

/// Largest kernel we unpack: far above any real one (Debian's is about 51 MiB), low enough
/// that a lying size field cannot make dom0 set aside gigabytes.
pub const MAX_UNPACKED: usize = 256 << 20;

/// LZ4 legacy frame magic (`lz4 -l`, what the kernel's `unlz4` reads).
const LZ4_LEGACY_MAGIC: u32 = 0x184c_2102;
/// Uncompressed bytes per LZ4 legacy block.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// How the payload is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// LZ4, legacy framing.
    Lz4,
    /// Not compressed: the payload is the ELF.
    Elf,
}

/// A bzImage's payload, found but not yet unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload<'a> {
    /// The compressed bytes (without the trailing size).
    pub data: &'a [u8],
    /// Their format.
    pub format: Format,
    /// The unpacked size, from the payload's last four bytes.
    pub unpacked_len: usize,
}

/// Why a bzImage could not be unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BzError {
    /// Boot protocol older than 2.08 (no payload fields), as Xen refuses.
    OldProtocol {
        /// The header's version.
        version: u16,
    },
    /// The payload lies outside the image or is too short to hold its size.
    PayloadOutOfImage,
    /// A compression this builder does not unpack (the payload's first bytes name it).
    Unsupported(&'static str),
    /// The unpacked size is 0 or above [`MAX_UNPACKED`].
    BadSize {
        /// The size the payload claims.
        len: usize,
    },
    /// The output buffer is not the unpacked size.
    BufferSize,
    /// The compressed stream is corrupt at this payload offset.
    Corrupt {
        /// Offset into the payload.
        at: usize,
    },
    /// The stream unpacked to another size than the one the payload claims.
    SizeMismatch {
        /// Claimed.
        claimed: usize,
        /// Unpacked.
        got: usize,
    },
}

impl fmt::Display for BzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BzError::OldProtocol { version } => write!(
                f,
                "bzImage boot protocol {}.{:02} is too old (2.08 or later has the payload fields)",
                version >> 8,
                version & 0xff
            ),
            BzError::PayloadOutOfImage => f.write_str("bzImage payload lies outside the image"),
            BzError::Unsupported(name) => {
                write!(f, "bzImage payload is {name}-compressed; dom0 unpacks LZ4 and plain ELF payloads")
            }
            BzError::BadSize { len } => write!(
                f,
                "bzImage payload claims {len} bytes unpacked (at most {MAX_UNPACKED})"
            ),
            BzError::BufferSize => f.write_str("output buffer is not the unpacked size"),
            BzError::Corrupt { at } => write!(f, "bzImage payload is corrupt at byte {at}"),
            BzError::SizeMismatch { claimed, got } => write!(
                f,
                "bzImage payload unpacked to {got} bytes but claims {claimed}"
            ),
        }
    }
}

impl core::error::Error for BzError {}

fn le16(image: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(image.get(at..at + 2)?.try_into().ok()?))
}

fn le32(image: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(image.get(at..at + 4)?.try_into().ok()?))
}

/// Whether `image` is a bzImage (its setup header says "HdrS"), as Xen's `bzimage_check`.
pub fn is_bzimage(image: &[u8]) -> bool {
    image.get(HDR_MAGIC_AT..HDR_MAGIC_AT + 4) == Some(b"HdrS")
}

/// The compression a payload's first bytes name (the magics Xen's `decompress` knows).
fn format_of(data: &[u8]) -> Result<Format, BzError> {
    let starts = |magic: &[u8]| data.starts_with(magic);
    if starts(&LZ4_LEGACY_MAGIC.to_le_bytes()) {
        Ok(Format::Lz4)
    } else if starts(b"\x7fELF") {
        Ok(Format::Elf)
    } else if starts(&[0x1f, 0x8b]) {
        Err(BzError::Unsupported("gzip"))
    } else if starts(b"BZh") {
        Err(BzError::Unsupported("bzip2"))
    } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Err(BzError::Unsupported("xz"))
    } else if starts(&[0x5d, 0]) {
        Err(BzError::Unsupported("lzma"))
    } else if starts(&[0x89, b'L', b'Z', b'O']) {
        Err(BzError::Unsupported("lzo"))
    } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(BzError::Unsupported("zstd"))
    } else {
        Err(BzError::Unsupported("an unknown format"))
    }
}

/// Finds the payload of bzImage `image` (see [`is_bzimage`]) and its unpacked size.
pub fn payload(image: &[u8]) -> Result<Payload<'_>, BzError> {
    let version = le16(image, VERSION_AT).ok_or(BzError::PayloadOutOfImage)?;
    if version < MIN_VERSION {
        return Err(BzError::OldProtocol { version });
    }
    // Setup sectors: 0 means 4 (boot protocol); then the boot sector itself.
    let sects = match image.get(SETUP_HEADER) {
        Some(0) => 4,
        Some(&n) => usize::from(n),
        None => return Err(BzError::PayloadOutOfImage),
    };
    let offset = le32(image, PAYLOAD_OFFSET_AT).ok_or(BzError::PayloadOutOfImage)?;
    let length = le32(image, PAYLOAD_LENGTH_AT).ok_or(BzError::PayloadOutOfImage)?;
    let start = (sects + 1)
        .checked_mul(512)
        .and_then(|s| s.checked_add(offset as usize))
        .ok_or(BzError::PayloadOutOfImage)?;
    let end = start
        .checked_add(length as usize)
        .ok_or(BzError::PayloadOutOfImage)?;
    let whole = image.get(start..end).ok_or(BzError::PayloadOutOfImage)?;
    if whole.len() < 4 {
        return Err(BzError::PayloadOutOfImage);
    }
    let (data, size) = whole.split_at(whole.len() - 4);
    let format = format_of(data)?;
    let unpacked_len = match format {
        // The kernel build appends the size after the compressed stream.
        Format::Lz4 => le32(size, 0).ok_or(BzError::PayloadOutOfImage)? as usize,
        Format::Elf => whole.len(),
    };
    if unpacked_len == 0 || unpacked_len > MAX_UNPACKED {
        return Err(BzError::BadSize { len: unpacked_len });
    }
    let data = if format == Format::Elf { whole } else { data };
    Ok(Payload {
        data,
        format,
        unpacked_len,
    })
}

/// Unpacks `payload` into `out`, which must be exactly `payload.unpacked_len` bytes.
pub fn unpack(payload: &Payload<'_>, out: &mut [u8]) -> Result<(), BzError> {
    if out.len() != payload.unpacked_len {
        return Err(BzError::BufferSize);
    }
    match payload.format {
        Format::Elf => {
            out.copy_from_slice(payload.data);
            Ok(())
        }
        Format::Lz4 => unlz4_legacy(payload.data, out),
    }
}

/// The LZ4 legacy framing, as the kernel's `unlz4`: the magic, then blocks, each a
/// little-endian compressed length and that many bytes of an LZ4 block that unpacks to at
/// most 8 MiB; a repeated magic starts another frame. `out` must be filled exactly.
fn unlz4_legacy(data: &[u8], out: &mut [u8]) -> Result<(), BzError> {
    let mut at = 0usize;
    let mut done = 0usize;
    while at < data.len() {
        let Some(word) = le32(data, at) else {
            return Err(BzError::Corrupt { at });
        };
        at += 4;
        if word == LZ4_LEGACY_MAGIC {
            continue;
        }
        let len = word as usize;
        let block = data
            .get(at..at.saturating_add(len))
            .filter(|_| len > 0)
            .ok_or(BzError::Corrupt { at: at - 4 })?;
        let room = out.len() - done;
        let dst = out
            .get_mut(done..done + room.min(LZ4_LEGACY_BLOCK))
            .ok_or(BzError::Corrupt { at })?;
        let n = lz4_flex::block::decompress_into(block, dst).map_err(|_| BzError::Corrupt { at })?;
        done += n;
        at += len;
    }
    if done != out.len() {
        return Err(BzError::SizeMismatch {
            claimed: out.len(),
            got: done,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// A bzImage around `payload` (with the size word appended for LZ4) and protocol 2.15.
    fn bzimage(payload: &[u8], version: u16) -> Vec<u8> {
        let setup_sects = 3u8;
        let mut image = vec![0u8; (usize::from(setup_sects) + 1) * 512];
        image[SETUP_HEADER] = setup_sects;
        image[HDR_MAGIC_AT..HDR_MAGIC_AT + 4].copy_from_slice(b"HdrS");
        image[VERSION_AT..VERSION_AT + 2].copy_from_slice(&version.to_le_bytes());
        let offset = 0x100u32;
        image[PAYLOAD_OFFSET_AT..PAYLOAD_OFFSET_AT + 4].copy_from_slice(&offset.to_le_bytes());
        image[PAYLOAD_LENGTH_AT..PAYLOAD_LENGTH_AT + 4]
            .copy_from_slice(&(payload.len() as u32).to_le_bytes());
        image.resize(image.len() + offset as usize, 0xcc);
        image.extend_from_slice(payload);
        image
    }

    /// `data` in LZ4 legacy framing (blocks of `block` bytes) with its size appended.
    fn lz4_legacy(data: &[u8], block: usize) -> Vec<u8> {
        let mut out = LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
        for chunk in data.chunks(block) {
            let c = lz4_flex::block::compress(chunk);
            out.extend_from_slice(&(c.len() as u32).to_le_bytes());
            out.extend_from_slice(&c);
        }
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    fn kernel_bytes(len: usize) -> Vec<u8> {
        let mut k: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        k[..4].copy_from_slice(b"\x7fELF");
        k
    }

    #[test]
    fn unpacks_an_lz4_payload_of_several_blocks() {
        let kernel = kernel_bytes(LZ4_LEGACY_BLOCK * 2 + 12345);
        let image = bzimage(&lz4_legacy(&kernel, LZ4_LEGACY_BLOCK), 0x020f);
        assert!(is_bzimage(&image));
        let p = payload(&image).unwrap();
        assert_eq!((p.format, p.unpacked_len), (Format::Lz4, kernel.len()));
        let mut out = vec![0u8; p.unpacked_len];
        unpack(&p, &mut out).unwrap();
        assert!(out == kernel);
    }

    #[test]
    fn a_plain_elf_payload_is_taken_as_it_is() {
        let kernel = kernel_bytes(5000);
        let image = bzimage(&kernel, 0x0208);
        let p = payload(&image).unwrap();
        assert_eq!((p.format, p.unpacked_len), (Format::Elf, 5000));
        let mut out = vec![0u8; 5000];
        unpack(&p, &mut out).unwrap();
        assert_eq!(out, kernel);
        assert!(!is_bzimage(&kernel));
    }

    #[test]
    fn refuses_what_it_cannot_unpack_by_name() {
        assert_eq!(payload(&bzimage(b"\x7fELF....", 0x0207)), Err(BzError::OldProtocol { version: 0x0207 }));
        assert_eq!(payload(&bzimage(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0], 0x020f)), Err(BzError::Unsupported("zstd")));
        assert_eq!(payload(&bzimage(&[0x1f, 0x8b, 8, 0, 1, 0, 0, 0], 0x020f)), Err(BzError::Unsupported("gzip")));
        assert_eq!(payload(&bzimage(b"??", 0x020f)), Err(BzError::PayloadOutOfImage));
        // The length field points past the end.
        let mut image = bzimage(&lz4_legacy(b"abc", 16), 0x020f);
        image[PAYLOAD_LENGTH_AT..PAYLOAD_LENGTH_AT + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(payload(&image), Err(BzError::PayloadOutOfImage));
        // A lying size word.
        let mut stream = lz4_legacy(b"abc", 16);
        let n = stream.len();
        stream[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(payload(&bzimage(&stream, 0x020f)), Err(BzError::BadSize { len: u32::MAX as usize }));
    }

    #[test]
    fn corrupt_or_short_streams_are_errors() {
        let kernel = kernel_bytes(100_000);
        let good = lz4_legacy(&kernel, 30_000);
        // A size word that claims more than the stream holds.
        let mut longer = good.clone();
        let n = longer.len();
        longer[n - 4..].copy_from_slice(&200_000u32.to_le_bytes());
        let image = bzimage(&longer, 0x020f);
        let p = payload(&image).unwrap();
        let mut out = vec![0u8; p.unpacked_len];
        assert_eq!(unpack(&p, &mut out), Err(BzError::SizeMismatch { claimed: 200_000, got: 100_000 }));
        // A block length past the end, and garbage blocks: errors, never a panic.
        let mut cut = good.clone();
        cut[4..8].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
        let image = bzimage(&cut, 0x020f);
        let p = payload(&image).unwrap();
        let mut out = vec![0u8; p.unpacked_len];
        assert_eq!(unpack(&p, &mut out), Err(BzError::Corrupt { at: 4 }));
        for seed in 0..200u32 {
            let mut bad = good.clone();
            let at = 8 + (seed as usize * 7919) % (bad.len() - 12);
            bad[at] ^= (seed as u8) | 1;
            let image = bzimage(&bad, 0x020f);
            if let Ok(p) = payload(&image) {
                let mut out = vec![0u8; p.unpacked_len];
                let _ = unpack(&p, &mut out);
            }
        }
        let mut small = vec![0u8; 10];
        let image = bzimage(&good, 0x020f);
        assert_eq!(unpack(&payload(&image).unwrap(), &mut small), Err(BzError::BufferSize));
    }
}
