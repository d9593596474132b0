//! blklog: an example guest that keeps a small persistent log on its virtual disk `xvda`.
//! On each boot it prints every entry written by earlier boots, then appends one of its
//! own (`boot N at <wall clock>`, and the command line's `note=` if any) and powers off.
//!
//! The format is crash-consistent: sector 0 is a header (magic `RPVLOG01`, the number of
//! entries, a CRC), entry `k` is sector `1 + k` (sequence number, length, text, CRC). A new
//! entry is written and flushed before the header that counts it, so a power cut between
//! the two leaves the old header, which does not see the half-added entry. A damaged
//! header starts a new log; a damaged entry is reported and skipped.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use pv_guest::blkfront::BlkFront;
use pv_guest::grant::GrantTable;
use pv_guest::mm::xen::GuestMm;
use pv_guest::start_info;
use pv_guest::{println, ShutdownReason, StartInfo};

const MAGIC: &[u8; 8] = b"RPVLOG01";
/// Longest entry text.
const MAX_TEXT: usize = 256;

/// A checksum over `bytes` (FNV-1a, 64-bit): enough to tell a torn or stale sector.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn header(count: u64) -> [u8; 512] {
    let mut s = [0u8; 512];
    s[..8].copy_from_slice(MAGIC);
    s[8..16].copy_from_slice(&count.to_le_bytes());
    let c = checksum(&s[..16]);
    s[16..24].copy_from_slice(&c.to_le_bytes());
    s
}

/// The entry count a header sector holds, if it is one.
fn read_header(s: &[u8; 512]) -> Option<u64> {
    (&s[..8] == MAGIC && s[16..24] == checksum(&s[..16]).to_le_bytes()).then(|| u64::from_le_bytes(s[8..16].try_into().unwrap_or_default()))
}

fn entry(seq: u64, text: &str) -> [u8; 512] {
    let mut s = [0u8; 512];
    let t = &text.as_bytes()[..text.len().min(MAX_TEXT)];
    s[..8].copy_from_slice(&seq.to_le_bytes());
    s[8..10].copy_from_slice(&(t.len() as u16).to_le_bytes());
    s[10..10 + t.len()].copy_from_slice(t);
    let c = checksum(&s[..10 + MAX_TEXT]);
    s[10 + MAX_TEXT..18 + MAX_TEXT].copy_from_slice(&c.to_le_bytes());
    s
}

/// An entry's sequence number and text, if the sector holds a whole one.
fn read_entry(s: &[u8; 512]) -> Option<(u64, String)> {
    let len = usize::from(u16::from_le_bytes([s[8], s[9]]));
    if len > MAX_TEXT || s[10 + MAX_TEXT..18 + MAX_TEXT] != checksum(&s[..10 + MAX_TEXT]).to_le_bytes() {
        return None;
    }
    let seq = u64::from_le_bytes(s[..8].try_into().ok()?);
    Some((seq, String::from_utf8_lossy(&s[10..10 + len]).into_owned()))
}

fn run(si: &'static StartInfo) -> Result<(), String> {
    pv_guest::events::init(si).map_err(|e| format!("events: {e}"))?;
    let mut mm = GuestMm::init(si, None).map_err(|e| format!("memory: {e}"))?;
    let mut gt = GrantTable::setup(&mut mm, 1).map_err(|e| format!("grant table: {e}"))?;
    let mut xs = pv_guest::xenbus::connect(si).map_err(|e| format!("store: {e}"))?;
    let mut disk = BlkFront::connect(&mut xs, &mut mm, &mut gt, 51712).map_err(|e| format!("xvda: {e:?}"))?;
    let io = |e| format!("xvda: {e:?}");
    let mut s = [0u8; 512];
    disk.read(0, &mut s).map_err(io)?;
    let count = match read_header(&s) {
        Some(n) if n < disk.sectors - 1 => n,
        Some(n) => return Err(format!("the header counts {n} entries, more than the disk holds")),
        None => {
            println!("blklog: no log on xvda yet: starting one");
            0
        }
    };
    println!("blklog: {count} entries");
    for k in 0..count {
        disk.read(1 + k, &mut s).map_err(io)?;
        match read_entry(&s) {
            Some((seq, text)) if seq == k + 1 => println!("blklog: #{seq} {text}"),
            _ => println!("blklog: #{} is damaged; skipped", k + 1),
        }
    }
    if disk.readonly {
        println!("blklog: xvda is read-only: nothing appended");
        return Ok(());
    }
    let (sec, _) = pv_guest::time::wall_clock();
    let note = start_info::cmdline(si).split_whitespace().find_map(|w| w.strip_prefix("note=")).unwrap_or("");
    let text = if note.is_empty() { format!("boot {} at {sec} s since the epoch", count + 1) } else { format!("boot {} at {sec} s since the epoch: {note}", count + 1) };
    // The entry first, durable; then the header that counts it.
    disk.write(1 + count, &entry(count + 1, &text)).map_err(io)?;
    disk.flush().map_err(io)?;
    disk.write(0, &header(count + 1)).map_err(io)?;
    disk.flush().map_err(io)?;
    println!("blklog: appended #{} {text}", count + 1);
    Ok(())
}

fn main(si: &'static StartInfo) -> ShutdownReason {
    match run(si) {
        Ok(()) => ShutdownReason::Poweroff,
        Err(e) => {
            println!("blklog: {e}");
            ShutdownReason::Crash
        }
    }
}

pv_guest::entry!(main, heap = 1 << 20);
