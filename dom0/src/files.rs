//! dom0's own files: the FAT filesystem on `vda1` (put there by `cargo xtask run`, or by a
//! user), read at boot with the `embedded-sdmmc` crate, so that `xl create hello.cfg` finds
//! the config and its kernel with no boot module. Boot modules keep working and come first
//! when a name is in both places.
//!
//! The crate reads volumes through an MBR, and the disk has a GPT: the crate is given a view
//! of the partition alone, whose block 0 is a one-entry MBR (a FAT16 partition from block 1)
//! and whose blocks 1.. are the partition's.

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ops::ControlFlow;

use embedded_sdmmc::{Block, BlockCount, BlockDevice, BlockIdx, Mode, TimeSource, Timestamp, VolumeIdx, VolumeManager};
use pv_guest::println;

use crate::devices::Disk;

/// Most bytes read from the partition in all (dom0's heap holds them for good).
const MAX_TOTAL: usize = 4 << 20;

/// A partition of the disk as a whole device with an MBR in front.
struct PartitionView<'a> {
    disk: RefCell<&'a mut Disk>,
    first: u64,
    sectors: u64,
}

/// A failed read of the disk.
#[derive(Debug)]
struct ReadFailed;

impl core::fmt::Display for ReadFailed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the disk could not be read")
    }
}

impl core::error::Error for ReadFailed {}

impl PartitionView<'_> {
    /// The MBR the view begins with: partition 1, FAT16 (LBA), from block 1.
    fn mbr(&self) -> [u8; 512] {
        let mut b = [0u8; 512];
        let e = &mut b[446..462];
        e[4] = 0x0e;
        e[8..12].copy_from_slice(&1u32.to_le_bytes());
        e[12..16].copy_from_slice(&(self.sectors.min(u64::from(u32::MAX)) as u32).to_le_bytes());
        b[510] = 0x55;
        b[511] = 0xaa;
        b
    }
}

impl BlockDevice for PartitionView<'_> {
    type Error = ReadFailed;

    fn read(&self, blocks: &mut [Block], start: BlockIdx) -> Result<(), ReadFailed> {
        for (i, block) in blocks.iter_mut().enumerate() {
            let idx = u64::from(start.0) + i as u64;
            if idx == 0 {
                block.contents = self.mbr();
                continue;
            }
            if idx > self.sectors {
                return Err(ReadFailed);
            }
            self.disk.borrow_mut().read(self.first + idx - 1, &mut block.contents).map_err(|_| ReadFailed)?;
        }
        Ok(())
    }

    /// Read-only here: dom0 only reads its files.
    fn write(&self, _blocks: &[Block], _start: BlockIdx) -> Result<(), ReadFailed> {
        Err(ReadFailed)
    }

    fn num_blocks(&self) -> Result<BlockCount, ReadFailed> {
        Ok(BlockCount((self.sectors + 1).min(u64::from(u32::MAX)) as u32))
    }
}

/// No clock is needed to read.
struct NoClock;

impl TimeSource for NoClock {
    fn get_timestamp(&self) -> Timestamp {
        Timestamp { year_since_1970: 0, zero_indexed_month: 0, zero_indexed_day: 0, hours: 0, minutes: 0, seconds: 0 }
    }
}

/// The files in the root directory of the FAT filesystem on `first..first + sectors` of
/// the disk, by lower-case name; each problem is reported on one line and ends the reading.
pub fn read_root(disk: &mut Disk, first: u64, sectors: u64) -> Vec<(String, Vec<u8>)> {
    let view = PartitionView { disk: RefCell::new(disk), first, sectors };
    let vm = VolumeManager::new(view, NoClock);
    let mut files = Vec::new();
    let volume = match vm.open_volume(VolumeIdx(0)) {
        Ok(v) => v,
        Err(e) => {
            println!("dom0: vda1: no FAT filesystem ({e:?}); no files from the disk");
            return files;
        }
    };
    let Ok(root) = volume.open_root_dir() else {
        println!("dom0: vda1: the root directory cannot be read; no files from the disk");
        return files;
    };
    let mut names: Vec<(String, u32)> = Vec::new();
    let listed = root.iterate_dir(|e| {
        if !e.attributes.is_directory() && !e.attributes.is_volume() {
            names.push((alloc::format!("{}", e.name), e.size));
        }
        ControlFlow::Continue(())
    });
    if listed.is_err() {
        println!("dom0: vda1: the root directory cannot be read; no files from the disk");
        return files;
    }
    let mut total = 0usize;
    for (name, size) in names {
        let size = size as usize;
        if total + size > MAX_TOTAL {
            println!("dom0: vda1: {name} ({size} bytes) left on the disk: more than {} MiB of files", MAX_TOTAL >> 20);
            continue;
        }
        let mut bytes = alloc::vec![0u8; size];
        let read = root.open_file_in_dir(name.as_str(), Mode::ReadOnly).and_then(|f| {
            let mut at = 0;
            while at < size {
                let n = f.read(&mut bytes[at..])?;
                if n == 0 {
                    break;
                }
                at += n;
            }
            Ok(at)
        });
        match read {
            Ok(n) if n == size => {
                total += size;
                files.push((name.to_ascii_lowercase(), bytes));
            }
            other => println!("dom0: vda1: {name} cannot be read ({other:?}); skipped"),
        }
    }
    println!("dom0: vda1: {} file(s), {} KiB, from dom0's FAT partition", files.len(), total >> 10);
    files
}
