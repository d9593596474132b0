//! The machine's disk image: a raw file QEMU attaches as a virtio-blk device, with a GPT
//! that dom0 reads. The standard layout: `vda1` for dom0's own files (a FAT filesystem,
//! formatted and filled here with the `fatfs` crate: dom0 reads guest kernels and configs
//! from it), `vda2`..`vda4` for guests (`disk = ['phy:vda2,xvda,w']`). Sparse: a fresh
//! image takes little space until written.

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

/// The files `cargo xtask run` and the scenarios put on dom0's partition: the example
/// guests and their configs (built kernels must exist).
pub fn standard_files(layout: &crate::build::Layout) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for kernel in ["hello", "blklog", "blk-test", "web", "netpeer"] {
        let path = layout.kernel(kernel);
        files.push((kernel.to_string(), std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?));
    }
    let configs = [("hello.cfg", layout.root.join("dom0/configs/hello.cfg")), ("blklog.cfg", layout.root.join("xtask/configs/blklog.cfg")), ("blk-rw.cfg", layout.root.join("xtask/configs/blk-rw.cfg")), ("web.cfg", layout.root.join("dom0/configs/web.cfg"))];
    for (name, path) in configs {
        files.push((name.to_string(), std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?));
    }
    Ok(files)
}

/// A FAT16 filesystem of `sectors` sectors holding `files` (name, bytes) in its root.
pub fn fat_image(sectors: u64, files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut image = std::io::Cursor::new(vec![0u8; (sectors * 512) as usize]);
    fatfs::format_volume(&mut image, fatfs::FormatVolumeOptions::new().fat_type(fatfs::FatType::Fat16).volume_label(*b"DOM0       "))
        .context("formatting dom0's FAT partition")?;
    image.set_position(0);
    {
        let fs = fatfs::FileSystem::new(&mut image, fatfs::FsOptions::new()).context("opening the new FAT filesystem")?;
        for (name, bytes) in files {
            let mut f = fs.root_dir().create_file(name).with_context(|| format!("creating {name} on dom0's partition"))?;
            f.truncate().and_then(|()| f.write_all(bytes)).with_context(|| format!("writing {name} on dom0's partition"))?;
        }
    }
    Ok(image.into_inner())
}

/// Writes a fresh image at `path` (replacing any): zeroes, then the partition table, then
/// dom0's FAT partition holding `files`.
pub fn create(path: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    create_sized(path, files, DISK_MIB)
}

/// As [`create`], for an image of `mib` MiB (at least [`DISK_MIB`]): the standard
/// partitions, the last one grown to the end of the disk (less 1 MiB for the GPT's
/// backup). Sparse: a large image costs only what is written.
pub fn create_sized(path: &Path, files: &[(String, Vec<u8>)], mib: u64) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let sectors = mib.max(DISK_MIB) << 11;
    let guid = *b"rust-pv disk 001";
    let mut parts = PARTITIONS;
    let before_last: u64 = FIRST_SECTOR + parts[..3].iter().map(|p| p.sectors).sum::<u64>();
    if mib > DISK_MIB {
        parts[3].sectors = sectors - before_last - (1 << 11);
    }
    let table = partitions::write(sectors, guid, &parts).context("the standard partitions do not fit the disk")?;
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
    let fat = fat_image(PARTITIONS[0].sectors, files)?;
    file.seek(SeekFrom::Start(FIRST_SECTOR * 512))?;
    file.write_all(&fat)?;
    file.sync_all()?;
    Ok(())
}

/// Where `vda1` starts (the writer's 1 MiB alignment).
pub const FIRST_SECTOR: u64 = 2048;

/// Creates the image at `path` with `files` on dom0's partition if there is none; whether
/// it did.
pub fn ensure(path: &Path, files: &[(String, Vec<u8>)]) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    create(path, files)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_image_reads_back_with_the_standard_partitions() {
        let path = std::env::temp_dir().join(format!("xtask-disk-{}.img", std::process::id()));
        create(&path, &[("hello.cfg".into(), b"name = \"hello\"\n".to_vec())]).unwrap();
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
        assert_eq!(parts[0].first, FIRST_SECTOR);
        // The FAT partition holds the file.
        let start = FIRST_SECTOR as usize * 512;
        let fat = std::io::Cursor::new(bytes[start..start + (parts[0].sectors as usize) * 512].to_vec());
        let fs = fatfs::FileSystem::new(fat, fatfs::FsOptions::new()).unwrap();
        assert_eq!(fs.fat_type(), fatfs::FatType::Fat16);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut fs.root_dir().open_file("hello.cfg").unwrap(), &mut text).unwrap();
        assert_eq!(text, "name = \"hello\"\n");
    }
}
