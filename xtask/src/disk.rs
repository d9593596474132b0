//! The machine's disk image: a raw file QEMU attaches as a virtio-blk device, with a GPT
//! that dom0 reads. The standard layout: `vda1` for dom0's own files, `vda2`..`vda4` for
//! guests (`disk = ['phy:vda2,xvda,w']`). Sparse: a fresh image takes no space until
//! written.

use anyhow::{Context, Result};
use partitions::{NewPartition, BASIC_DATA, LINUX_DATA};
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// The image's size.
pub const DISK_MIB: u64 = 64;

/// The standard partitions, in order (`vda1` first).
pub const PARTITIONS: [NewPartition<'static>; 4] = [
    NewPartition { name: "dom0", sectors: 32 << 11, type_guid: BASIC_DATA },
    NewPartition { name: "guest-a", sectors: 8 << 11, type_guid: LINUX_DATA },
    NewPartition { name: "guest-b", sectors: 8 << 11, type_guid: LINUX_DATA },
    NewPartition { name: "guest-c", sectors: 8 << 11, type_guid: LINUX_DATA },
];

/// Writes a fresh image at `path` (replacing any): zeroes, then the partition table.
pub fn create(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let sectors = DISK_MIB << 11;
    let guid = *b"rust-pv disk 001";
    let table = partitions::write(sectors, guid, &PARTITIONS).context("the standard partitions do not fit the disk")?;
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.set_len(sectors * 512)?;
    for (sector, bytes) in table {
        file.seek(SeekFrom::Start(sector * 512))?;
        file.write_all(&bytes)?;
    }
    file.sync_all()?;
    Ok(())
}

/// Creates the image at `path` if there is none; whether it did.
pub fn ensure(path: &Path) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    create(path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_image_reads_back_with_the_standard_partitions() {
        let path = std::env::temp_dir().join(format!("xtask-disk-{}.img", std::process::id()));
        create(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(bytes.len() as u64, DISK_MIB << 20);
        let mut read = |sector: u64, buf: &mut [u8]| {
            let at = sector as usize * 512;
            buf.copy_from_slice(bytes.get(at..at + buf.len()).ok_or(())?);
            Ok(())
        };
        let parts = partitions::read(DISK_MIB << 11, &mut read).unwrap();
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["dom0", "guest-a", "guest-b", "guest-c"]);
        assert_eq!(parts[1].sectors, 8 << 11);
    }
}
