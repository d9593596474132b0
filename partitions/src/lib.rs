//! GPT partition tables (UEFI spec, chapter 5): a reader that trusts nothing on the disk,
//! for dom0 finding the partitions it hands to guests (`phy:vda2`), and a writer, for
//! xtask making disk images and for tests.
//!
//! The reader checks what a careful OS checks: the protective MBR, the header's signature,
//! size, CRC and own LBA, the entry array's geometry and CRC, and every partition against
//! the usable range; partitions may not overlap (two guests given two partitions must
//! never share a sector). Sectors are 512 bytes. Partitions are numbered as Linux numbers
//! them: entry index + 1 (`vda1` is entry 0).
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

/// Bytes per sector.
pub const SECTOR: usize = 512;
/// Bytes of one partition entry (the only size written; larger multiples of 8 are read).
pub const ENTRY_SIZE: usize = 128;
/// Entries in the array this writer makes (16 KiB, 32 sectors, as tools make).
pub const ENTRIES: usize = 128;
/// Most entries the reader takes (a hostile header cannot make it read more).
pub const MAX_ENTRIES: u32 = 1024;
/// The GPT header's signature.
const SIGNATURE: &[u8; 8] = b"EFI PART";
/// Header bytes covered by its CRC (revision 1.0).
const HEADER_SIZE: usize = 92;
/// The "Linux filesystem data" partition type GUID, as stored (mixed-endian).
pub const LINUX_DATA: [u8; 16] = guid(0x0fc6_3daf, 0x8483, 0x4772, [0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4]);
/// The "Microsoft basic data" type GUID (FAT filesystems), as stored.
pub const BASIC_DATA: [u8; 16] = guid(0xebd0_a0a2, 0xb9e5, 0x4433, [0x87, 0xc0, 0x68, 0xb6, 0xb7, 0x26, 0x99, 0xc7]);

/// A GUID as GPT stores it: the first three fields little-endian, the rest as bytes.
pub const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let (a, b, c) = (a.to_le_bytes(), b.to_le_bytes(), c.to_le_bytes());
    [a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]
}

/// One partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Its number, as Linux gives it (entry index + 1).
    pub number: u32,
    /// Type GUID (as stored).
    pub type_guid: [u8; 16],
    /// First sector.
    pub first: u64,
    /// Sectors (last - first + 1).
    pub sectors: u64,
    /// Its name (UTF-16 in the entry; characters outside ASCII become `?`).
    pub name: String,
}

/// Why a disk's table was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GptError {
    /// The disk is too small to hold a table, or a read failed.
    Read,
    /// Sector 0 is not a protective MBR (no `55 AA`, or no `0xEE` partition).
    NoProtectiveMbr,
    /// No `EFI PART` header at sector 1.
    NoHeader,
    /// The header's size, own LBA or usable range is wrong.
    BadHeader,
    /// The header's CRC does not match.
    HeaderCrc,
    /// The entry array's place, count or entry size is wrong.
    BadEntries,
    /// The entry array's CRC does not match.
    EntriesCrc,
    /// Partition `n` lies outside the usable range or ends before it starts.
    BadPartition(u32),
    /// Partitions `a` and `b` share sectors.
    Overlap(u32, u32),
}

impl core::fmt::Display for GptError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GptError::Read => write!(f, "the disk cannot hold a GPT (or a read failed)"),
            GptError::NoProtectiveMbr => write!(f, "no protective MBR in sector 0"),
            GptError::NoHeader => write!(f, "no GPT header (\"EFI PART\") in sector 1"),
            GptError::BadHeader => write!(f, "the GPT header's size, LBA or usable range is wrong"),
            GptError::HeaderCrc => write!(f, "the GPT header's CRC does not match"),
            GptError::BadEntries => write!(f, "the GPT entry array's place, count or entry size is wrong"),
            GptError::EntriesCrc => write!(f, "the GPT entry array's CRC does not match"),
            GptError::BadPartition(n) => write!(f, "partition {n} lies outside the usable sectors"),
            GptError::Overlap(a, b) => write!(f, "partitions {a} and {b} overlap"),
        }
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).and_then(|s| s.try_into().ok()).map_or(0, u32::from_le_bytes)
}

fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// Reads whole sectors from a disk: (first sector, buffer of a whole number of sectors);
/// `Err` when the disk cannot be read there.
pub type SectorReader<'a> = dyn FnMut(u64, &mut [u8]) -> Result<(), ()> + 'a;

/// Reads the partition table of a disk of `disk_sectors` sectors through `read` (sector
/// number, buffer of a whole number of sectors). The primary table only: a damaged one is
/// refused, not repaired from the backup.
pub fn read(disk_sectors: u64, read: &mut SectorReader<'_>) -> Result<Vec<Partition>, GptError> {
    if disk_sectors < 34 {
        return Err(GptError::Read);
    }
    let mut s = [0u8; SECTOR];
    read(0, &mut s).map_err(|_| GptError::Read)?;
    let protective = (0..4).any(|i| s.get(446 + 16 * i + 4) == Some(&0xee));
    if s.get(510..512) != Some(&[0x55, 0xaa][..]) || !protective {
        return Err(GptError::NoProtectiveMbr);
    }
    read(1, &mut s).map_err(|_| GptError::Read)?;
    if s.get(..8) != Some(&SIGNATURE[..]) {
        return Err(GptError::NoHeader);
    }
    let size = le32(&s, 12) as usize;
    if !(HEADER_SIZE..=SECTOR).contains(&size) {
        return Err(GptError::BadHeader);
    }
    let mut h = [0u8; SECTOR];
    h.get_mut(..size).zip(s.get(..size)).map(|(d, src)| d.copy_from_slice(src)).ok_or(GptError::BadHeader)?;
    let crc = le32(&h, 16);
    h.get_mut(16..20).ok_or(GptError::BadHeader)?.fill(0);
    if crc32fast::hash(h.get(..size).ok_or(GptError::BadHeader)?) != crc {
        return Err(GptError::HeaderCrc);
    }
    let (my_lba, first_usable, last_usable) = (le64(&s, 24), le64(&s, 40), le64(&s, 48));
    if my_lba != 1 || first_usable < 2 || first_usable > last_usable || last_usable >= disk_sectors {
        return Err(GptError::BadHeader);
    }
    let (entries_lba, count, esize) = (le64(&s, 72), le32(&s, 80), le32(&s, 84) as usize);
    let array_bytes = count as usize * esize;
    let array_sectors = array_bytes.div_ceil(SECTOR) as u64;
    if count == 0
        || count > MAX_ENTRIES
        || esize < ENTRY_SIZE
        || esize % 8 != 0
        || esize > SECTOR
        || entries_lba < 2
        || entries_lba.saturating_add(array_sectors) > first_usable
    {
        return Err(GptError::BadEntries);
    }
    let mut array = alloc::vec![0u8; array_sectors as usize * SECTOR];
    read(entries_lba, &mut array).map_err(|_| GptError::Read)?;
    if crc32fast::hash(array.get(..array_bytes).ok_or(GptError::BadEntries)?) != le32(&s, 88) {
        return Err(GptError::EntriesCrc);
    }
    let mut parts: Vec<Partition> = Vec::new();
    for (i, e) in array.chunks(esize).take(count as usize).enumerate() {
        let type_guid: [u8; 16] = e.get(..16).and_then(|t| t.try_into().ok()).unwrap_or([0; 16]);
        if type_guid == [0; 16] {
            continue;
        }
        let number = i as u32 + 1;
        let (first, last) = (le64(e, 32), le64(e, 40));
        if first < first_usable || last > last_usable || last < first {
            return Err(GptError::BadPartition(number));
        }
        let name = e
            .get(56..128)
            .unwrap_or(&[])
            .chunks(2)
            .map(|c| u16::from_le_bytes([c.first().copied().unwrap_or(0), c.get(1).copied().unwrap_or(0)]))
            .take_while(|&u| u != 0)
            .map(|u| if u < 0x80 { u as u8 as char } else { '?' })
            .collect();
        if let Some(other) = parts.iter().find(|p| first < p.first + p.sectors && p.first <= last) {
            return Err(GptError::Overlap(other.number, number));
        }
        parts.push(Partition { number, type_guid, first, sectors: last - first + 1, name });
    }
    Ok(parts)
}

/// A partition to write: its name, size in sectors and type.
#[derive(Clone, Copy, Debug)]
pub struct NewPartition<'a> {
    /// Name (ASCII, at most 36 characters).
    pub name: &'a str,
    /// Sectors.
    pub sectors: u64,
    /// Type GUID (as stored).
    pub type_guid: [u8; 16],
}

/// The sectors of a GPT for a disk of `disk_sectors` sectors holding `parts` in order from
/// sector 2048 (1 MiB alignment, as tools do), each starting on a 1 MiB boundary: the
/// protective MBR, the primary header and array, the backup array and header, as
/// (first sector, bytes). `None` if they do not fit.
pub fn write(disk_sectors: u64, disk_guid: [u8; 16], parts: &[NewPartition<'_>]) -> Option<Vec<(u64, Vec<u8>)>> {
    let array_sectors = (ENTRIES * ENTRY_SIZE / SECTOR) as u64;
    let last_usable = disk_sectors.checked_sub(2 + array_sectors)?;
    let mut array = alloc::vec![0u8; ENTRIES * ENTRY_SIZE];
    let mut next = 2048u64;
    for (i, p) in parts.iter().enumerate() {
        let e = array.get_mut(i * ENTRY_SIZE..(i + 1) * ENTRY_SIZE)?;
        let last = next.checked_add(p.sectors)?.checked_sub(1)?;
        if last > last_usable || p.name.len() > 36 {
            return None;
        }
        e.get_mut(..16)?.copy_from_slice(&p.type_guid);
        // A unique GUID derived from the disk's and the index.
        let mut unique = disk_guid;
        *unique.get_mut(15)? ^= i as u8 + 1;
        e.get_mut(16..32)?.copy_from_slice(&unique);
        e.get_mut(32..40)?.copy_from_slice(&next.to_le_bytes());
        e.get_mut(40..48)?.copy_from_slice(&last.to_le_bytes());
        for (k, c) in p.name.bytes().enumerate() {
            e.get_mut(56 + 2 * k..58 + 2 * k)?.copy_from_slice(&u16::from(c).to_le_bytes());
        }
        next = (last + 1).div_ceil(2048) * 2048;
    }
    let array_crc = crc32fast::hash(&array);
    fn put(h: &mut [u8; SECTOR], at: usize, b: &[u8]) {
        if let Some(d) = h.get_mut(at..at + b.len()) {
            d.copy_from_slice(b);
        }
    }
    let header = |my: u64, alternate: u64, entries: u64| -> [u8; SECTOR] {
        let mut h = [0u8; SECTOR];
        let put = |h: &mut [u8; SECTOR], at: usize, b: &[u8]| put(h, at, b);
        put(&mut h, 0, SIGNATURE);
        put(&mut h, 8, &0x0001_0000u32.to_le_bytes());
        put(&mut h, 12, &(HEADER_SIZE as u32).to_le_bytes());
        put(&mut h, 24, &my.to_le_bytes());
        put(&mut h, 32, &alternate.to_le_bytes());
        put(&mut h, 40, &(2 + array_sectors).to_le_bytes());
        put(&mut h, 48, &last_usable.to_le_bytes());
        put(&mut h, 56, &disk_guid);
        put(&mut h, 72, &entries.to_le_bytes());
        put(&mut h, 80, &(ENTRIES as u32).to_le_bytes());
        put(&mut h, 84, &(ENTRY_SIZE as u32).to_le_bytes());
        put(&mut h, 88, &array_crc.to_le_bytes());
        let crc = crc32fast::hash(h.get(..HEADER_SIZE).unwrap_or(&[]));
        put(&mut h, 16, &crc.to_le_bytes());
        h
    };
    let mut mbr = alloc::vec![0u8; SECTOR];
    let size = u32::try_from(disk_sectors - 1).unwrap_or(u32::MAX);
    // One partition of type 0xEE from sector 1 over the whole disk.
    mbr.get_mut(446..462)?.copy_from_slice(&[0, 0, 2, 0, 0xee, 0xff, 0xff, 0xff, 1, 0, 0, 0, size as u8, (size >> 8) as u8, (size >> 16) as u8, (size >> 24) as u8]);
    mbr.get_mut(510..512)?.copy_from_slice(&[0x55, 0xaa]);
    let backup_array = disk_sectors - 1 - array_sectors;
    Some(alloc::vec![
        (0, mbr),
        (1, header(1, disk_sectors - 1, 2).to_vec()),
        (2, array.clone()),
        (backup_array, array),
        (disk_sectors - 1, header(disk_sectors - 1, 1, backup_array).to_vec()),
    ])
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;

    const DISK: u64 = 64 * 2048; // 64 MiB

    fn image(parts: &[NewPartition<'_>]) -> Vec<u8> {
        let mut img = vec![0u8; DISK as usize * SECTOR];
        for (lba, bytes) in write(DISK, [7; 16], parts).unwrap() {
            img[lba as usize * SECTOR..][..bytes.len()].copy_from_slice(&bytes);
        }
        img
    }

    fn parse(img: &[u8]) -> Result<Vec<Partition>, GptError> {
        let sectors = (img.len() / SECTOR) as u64;
        read(sectors, &mut |lba, buf| {
            let at = lba as usize * SECTOR;
            buf.copy_from_slice(img.get(at..at + buf.len()).ok_or(())?);
            Ok(())
        })
    }

    fn two() -> Vec<u8> {
        image(&[
            NewPartition { name: "dom0-files", sectors: 16 * 2048, type_guid: BASIC_DATA },
            NewPartition { name: "guest-a", sectors: 8 * 2048 + 5, type_guid: LINUX_DATA },
        ])
    }

    /// Recomputes the header CRC after a test changed the header.
    fn fix_header_crc(img: &mut [u8]) {
        let h = &mut img[SECTOR..2 * SECTOR];
        h[16..20].fill(0);
        let crc = crc32fast::hash(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
    }

    /// Recomputes the entries CRC (and then the header's).
    fn fix_crcs(img: &mut [u8]) {
        let crc = crc32fast::hash(&img[2 * SECTOR..2 * SECTOR + ENTRIES * ENTRY_SIZE]);
        img[SECTOR + 88..SECTOR + 92].copy_from_slice(&crc.to_le_bytes());
        fix_header_crc(img);
    }

    #[test]
    fn written_tables_read_back() {
        let parts = parse(&two()).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].number, parts[0].first, parts[0].sectors, parts[0].name.as_str()), (1, 2048, 32768, "dom0-files"));
        assert_eq!((parts[1].number, parts[1].first, parts[1].sectors), (2, 2048 + 32768, 16389));
        assert_eq!(parts[1].type_guid, LINUX_DATA);
        // The backup header is at the last sector and names the primary.
        let img = two();
        let last = &img[(DISK as usize - 1) * SECTOR..];
        assert_eq!(&last[..8], b"EFI PART");
        assert_eq!(le64(last, 24), DISK - 1);
        assert_eq!(le64(last, 32), 1);
        // Too big for the disk: nothing written.
        assert!(write(DISK, [0; 16], &[NewPartition { name: "x", sectors: DISK, type_guid: LINUX_DATA }]).is_none());
    }

    #[test]
    fn damaged_tables_are_refused_with_the_reason() {
        let mut img = two();
        img[510] = 0;
        assert_eq!(parse(&img), Err(GptError::NoProtectiveMbr));
        let mut img = two();
        img[SECTOR] = b'X';
        assert_eq!(parse(&img), Err(GptError::NoHeader));
        let mut img = two();
        img[SECTOR + 40] ^= 1; // first usable LBA, CRC not fixed
        assert_eq!(parse(&img), Err(GptError::HeaderCrc));
        let mut img = two();
        img[2 * SECTOR + 60] ^= 1; // a partition's name
        assert_eq!(parse(&img), Err(GptError::EntriesCrc));
        // A header whose usable range ends past the disk, with a right CRC.
        let mut img = two();
        img[SECTOR + 48..SECTOR + 56].copy_from_slice(&DISK.to_le_bytes());
        fix_header_crc(&mut img);
        assert_eq!(parse(&img), Err(GptError::BadHeader));
        // A header asking for a million entries.
        let mut img = two();
        img[SECTOR + 80..SECTOR + 84].copy_from_slice(&1_000_000u32.to_le_bytes());
        fix_header_crc(&mut img);
        assert_eq!(parse(&img), Err(GptError::BadEntries));
        // An entry array overlapping the usable sectors.
        let mut img = two();
        img[SECTOR + 72..SECTOR + 80].copy_from_slice(&30u64.to_le_bytes());
        fix_header_crc(&mut img);
        assert_eq!(parse(&img), Err(GptError::BadEntries));
    }

    #[test]
    fn partitions_outside_the_disk_or_overlapping_are_refused() {
        // Partition 2 made to end past the last usable sector.
        let mut img = two();
        let e2 = 2 * SECTOR + ENTRY_SIZE;
        img[e2 + 40..e2 + 48].copy_from_slice(&DISK.to_le_bytes());
        fix_crcs(&mut img);
        assert_eq!(parse(&img), Err(GptError::BadPartition(2)));
        // Partition 2 made to start inside partition 1.
        let mut img = two();
        img[e2 + 32..e2 + 40].copy_from_slice(&4096u64.to_le_bytes());
        fix_crcs(&mut img);
        assert_eq!(parse(&img), Err(GptError::Overlap(1, 2)));
        // Backwards.
        let mut img = two();
        img[e2 + 40..e2 + 48].copy_from_slice(&3000u64.to_le_bytes());
        fix_crcs(&mut img);
        assert_eq!(parse(&img), Err(GptError::BadPartition(2)));
        // A disk too small for any table, and a failing read.
        assert_eq!(read(10, &mut |_, _| Ok(())), Err(GptError::Read));
        assert_eq!(read(DISK, &mut |_, _| Err(())), Err(GptError::Read));
    }

    #[test]
    fn random_damage_never_panics() {
        // Only the first 34 sectors are ever read: damage and restore those in place.
        let mut img = two();
        let pristine = img[..34 * SECTOR].to_vec();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2000 {
            img[..34 * SECTOR].copy_from_slice(&pristine);
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x as usize) % (34 * SECTOR);
                img[at] = (x >> 32) as u8;
            }
            if x & 1 == 0 {
                fix_crcs(&mut img);
            }
            if let Ok(parts) = parse(&img) {
                for p in &parts {
                    assert!(p.first >= 34 && p.first + p.sectors <= DISK - 33, "{p:?}");
                }
            }
        }
    }
}
