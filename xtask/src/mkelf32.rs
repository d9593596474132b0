//! mkelf32: turns the ELF64 microkernel into the ELF32 image QEMU's Multiboot loader accepts.
//!
//! QEMU's `-kernel` Multiboot loader refuses ELF64 files. Xen solves the same problem with
//! its `mkelf32` tool, and so do we: the microkernel is linked high (0xffff82d080000000 +
//! physical) but every PT_LOAD program header carries the physical load address in `p_paddr`
//! and `e_entry` is the physical 32-bit entry point. The ELF32 keeps one PT_LOAD per source
//! PT_LOAD with `p_vaddr = p_paddr = source p_paddr`, the same bytes, sizes and flags, and
//! no sections (loaders only read program headers).

use anyhow::{bail, ensure, Context, Result};
use std::path::Path;

const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u8 = 1;
const ET_EXEC: u16 = 2;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;

const ELF64_EHDR_SIZE: usize = 64;
const ELF64_PHDR_SIZE: usize = 56;
const ELF32_EHDR_SIZE: usize = 52;
const ELF32_PHDR_SIZE: usize = 32;

/// Segment data is placed at file offsets congruent to the physical address modulo this.
/// Loaders do not need page alignment, and a small one keeps the Multiboot header (which
/// QEMU looks for in the first 8 KiB of the file, 4-byte aligned; GRUB wants the Multiboot2
/// header 8-byte aligned in the first 32 KiB) close to the start and at the same alignment
/// as in memory.
const FILE_ALIGN: u64 = 16;

const MULTIBOOT1_MAGIC: u32 = 0x1bad_b002;
const MULTIBOOT2_MAGIC: u32 = 0xe852_50d6;

/// One loadable segment as both ELF flavours describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Physical load address (the ELF32 uses it as both vaddr and paddr).
    pub paddr: u64,
    /// Bytes in the file.
    pub filesz: u64,
    /// Bytes in memory (the rest is zeroed by the loader).
    pub memsz: u64,
    /// PF_X / PF_W / PF_R.
    pub flags: u32,
    /// Offset of the segment's bytes in the source file.
    pub offset: u64,
}

/// Reads a little-endian integer of `N` bytes at `at`, with a bounds check.
fn le<const N: usize>(bytes: &[u8], at: usize) -> Result<u64> {
    let end = at.checked_add(N).context("ELF offset overflow")?;
    let slice = bytes
        .get(at..end)
        .with_context(|| format!("ELF file truncated: need bytes {at:#x}..{end:#x}"))?;
    let mut value = 0u64;
    for (i, byte) in slice.iter().enumerate() {
        value |= u64::from(*byte) << (8 * i);
    }
    Ok(value)
}

/// The facts of an ELF64 executable that the conversion needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elf64Image {
    /// `e_entry`: the physical 32-bit entry point.
    pub entry: u64,
    /// PT_LOAD segments in program header order.
    pub segments: Vec<Segment>,
}

/// Parses the ELF64 header and its PT_LOAD program headers.
pub fn parse_elf64(bytes: &[u8]) -> Result<Elf64Image> {
    ensure!(
        bytes.len() >= ELF64_EHDR_SIZE,
        "not an ELF file: only {} bytes",
        bytes.len()
    );
    ensure!(bytes[0..4] == ELF_MAGIC, "not an ELF file (bad magic)");
    ensure!(
        bytes[4] == ELFCLASS64,
        "not an ELF64 file (EI_CLASS = {})",
        bytes[4]
    );
    ensure!(bytes[5] == ELFDATA2LSB, "not a little-endian ELF file");
    let machine = le::<2>(bytes, 18)? as u16;
    ensure!(
        machine == EM_X86_64,
        "not an x86_64 ELF file (e_machine = {machine})"
    );
    let entry = le::<8>(bytes, 24)?;
    let phoff = le::<8>(bytes, 32)?;
    let phentsize = le::<2>(bytes, 54)? as usize;
    let phnum = le::<2>(bytes, 56)? as usize;
    ensure!(
        phentsize == ELF64_PHDR_SIZE,
        "unexpected program header size {phentsize} (want {ELF64_PHDR_SIZE})"
    );
    let mut segments = Vec::new();
    for i in 0..phnum {
        let at = usize::try_from(phoff)
            .ok()
            .and_then(|off| off.checked_add(i * ELF64_PHDR_SIZE))
            .context("program header offset overflow")?;
        if le::<4>(bytes, at)? as u32 != PT_LOAD {
            continue;
        }
        let segment = Segment {
            flags: le::<4>(bytes, at + 4)? as u32,
            offset: le::<8>(bytes, at + 8)?,
            paddr: le::<8>(bytes, at + 24)?,
            filesz: le::<8>(bytes, at + 32)?,
            memsz: le::<8>(bytes, at + 40)?,
        };
        ensure!(
            segment.filesz <= segment.memsz,
            "PT_LOAD {i}: p_filesz {:#x} > p_memsz {:#x}",
            segment.filesz,
            segment.memsz
        );
        let end = segment.offset.checked_add(segment.filesz);
        ensure!(
            end.is_some_and(|end| end <= bytes.len() as u64),
            "PT_LOAD {i}: file bytes {:#x}+{:#x} lie outside the {}-byte file",
            segment.offset,
            segment.filesz,
            bytes.len()
        );
        segments.push(segment);
    }
    ensure!(
        !segments.is_empty(),
        "the ELF file has no PT_LOAD program header"
    );
    Ok(Elf64Image { entry, segments })
}

/// Builds the ELF32 image from an ELF64 one; fails if anything lies at or above 4 GiB.
pub fn convert(bytes: &[u8]) -> Result<Vec<u8>> {
    let image = parse_elf64(bytes)?;
    let four_gib = 1u64 << 32;
    ensure!(
        image.entry < four_gib,
        "entry point {:#x} is not below 4 GiB: e_entry must be the physical 32-bit entry",
        image.entry
    );
    for (i, seg) in image.segments.iter().enumerate() {
        let end = seg.paddr.checked_add(seg.memsz);
        if end.is_none_or(|end| end > four_gib) {
            bail!(
                "PT_LOAD {i}: physical range {:#x}+{:#x} is not below 4 GiB \
                 (p_paddr must hold the physical load address)",
                seg.paddr,
                seg.memsz
            );
        }
    }

    let phnum = image.segments.len();
    ensure!(phnum <= usize::from(u16::MAX), "too many PT_LOAD segments");
    let headers_end = (ELF32_EHDR_SIZE + phnum * ELF32_PHDR_SIZE) as u64;

    // Lay the segment bytes out after the headers.
    let mut offsets = Vec::with_capacity(phnum);
    let mut cursor = headers_end;
    for seg in &image.segments {
        if seg.filesz == 0 {
            offsets.push(0);
            continue;
        }
        let misalign = (seg.paddr.wrapping_sub(cursor)) % FILE_ALIGN;
        let offset = cursor + misalign;
        offsets.push(offset);
        cursor = offset + seg.filesz;
    }
    ensure!(
        cursor < four_gib,
        "the ELF32 file would be larger than 4 GiB"
    );

    let mut out = vec![0u8; cursor as usize];
    let put16 =
        |out: &mut Vec<u8>, at: usize, v: u16| out[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |out: &mut Vec<u8>, at: usize, v: u32| out[at..at + 4].copy_from_slice(&v.to_le_bytes());

    out[0..4].copy_from_slice(&ELF_MAGIC);
    out[4] = ELFCLASS32;
    out[5] = ELFDATA2LSB;
    out[6] = EV_CURRENT;
    put16(&mut out, 16, ET_EXEC);
    put16(&mut out, 18, EM_386);
    put32(&mut out, 20, u32::from(EV_CURRENT));
    put32(&mut out, 24, image.entry as u32);
    put32(&mut out, 28, ELF32_EHDR_SIZE as u32); // e_phoff
    put32(&mut out, 32, 0); // e_shoff: no sections
    put32(&mut out, 36, 0); // e_flags
    put16(&mut out, 40, ELF32_EHDR_SIZE as u16);
    put16(&mut out, 42, ELF32_PHDR_SIZE as u16);
    put16(&mut out, 44, phnum as u16);
    put16(&mut out, 46, 0); // e_shentsize
    put16(&mut out, 48, 0); // e_shnum
    put16(&mut out, 50, 0); // e_shstrndx = SHN_UNDEF

    for (i, (seg, offset)) in image.segments.iter().zip(&offsets).enumerate() {
        let at = ELF32_EHDR_SIZE + i * ELF32_PHDR_SIZE;
        put32(&mut out, at, PT_LOAD);
        put32(&mut out, at + 4, *offset as u32);
        put32(&mut out, at + 8, seg.paddr as u32); // p_vaddr
        put32(&mut out, at + 12, seg.paddr as u32); // p_paddr
        put32(&mut out, at + 16, seg.filesz as u32);
        put32(&mut out, at + 20, seg.memsz as u32);
        put32(&mut out, at + 24, seg.flags);
        put32(&mut out, at + 28, FILE_ALIGN as u32);
        let (src, dst, len) = (seg.offset as usize, *offset as usize, seg.filesz as usize);
        out[dst..dst + len].copy_from_slice(&bytes[src..src + len]);
    }
    Ok(out)
}

/// Whether `magic` sits `align`-byte aligned in the first `window` bytes of `image`.
fn has_magic(image: &[u8], magic: u32, align: usize, window: usize) -> bool {
    image[..image.len().min(window)]
        .chunks_exact(align)
        .any(|chunk| chunk[..4] == magic.to_le_bytes())
}

/// Whether a Multiboot (1) header magic sits 4-byte aligned in the first 8 KiB, where
/// QEMU's `-kernel` loader looks for it.
pub fn has_multiboot1_header(image: &[u8]) -> bool {
    has_magic(image, MULTIBOOT1_MAGIC, 4, 8192)
}

/// Whether a Multiboot2 header magic sits 8-byte aligned in the first 32 KiB, where
/// GRUB's `multiboot2` command looks for it.
pub fn has_multiboot2_header(image: &[u8]) -> bool {
    has_magic(image, MULTIBOOT2_MAGIC, 8, 32768)
}

/// Converts the file `input` into the file `output` (creating its directory).
pub fn convert_file(input: &Path, output: &Path) -> Result<()> {
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let elf32 =
        convert(&bytes).with_context(|| format!("converting {} to ELF32", input.display()))?;
    if !has_multiboot1_header(&elf32) {
        eprintln!(
            "warning: {} has no Multiboot header in its first 8 KiB; QEMU -kernel will not boot it",
            output.display()
        );
    }
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(output, elf32).with_context(|| format!("writing {}", output.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TestSegment {
        ptype: u32,
        flags: u32,
        vaddr: u64,
        paddr: u64,
        data: Vec<u8>,
        memsz: u64,
    }

    /// Builds an ELF64 executable with the given program headers, data after them.
    fn build_elf64(entry: u64, segments: &[TestSegment]) -> Vec<u8> {
        let phoff = ELF64_EHDR_SIZE;
        let mut data_at = phoff + segments.len() * ELF64_PHDR_SIZE;
        let mut out = vec![0u8; data_at];
        out[0..4].copy_from_slice(&ELF_MAGIC);
        out[4] = ELFCLASS64;
        out[5] = ELFDATA2LSB;
        out[6] = EV_CURRENT;
        out[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        out[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[24..32].copy_from_slice(&entry.to_le_bytes());
        out[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
        out[52..54].copy_from_slice(&(ELF64_EHDR_SIZE as u16).to_le_bytes());
        out[54..56].copy_from_slice(&(ELF64_PHDR_SIZE as u16).to_le_bytes());
        out[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (i, seg) in segments.iter().enumerate() {
            let at = phoff + i * ELF64_PHDR_SIZE;
            let fields: [(usize, u64, usize); 8] = [
                (0, u64::from(seg.ptype), 4),
                (4, u64::from(seg.flags), 4),
                (8, data_at as u64, 8),
                (16, seg.vaddr, 8),
                (24, seg.paddr, 8),
                (32, seg.data.len() as u64, 8),
                (40, seg.memsz, 8),
                (48, 0x1000, 8),
            ];
            for (off, value, size) in fields {
                out[at + off..at + off + size].copy_from_slice(&value.to_le_bytes()[..size]);
            }
            out.extend_from_slice(&seg.data);
            data_at += seg.data.len();
        }
        out
    }

    fn read32(bytes: &[u8], at: usize) -> u32 {
        le::<4>(bytes, at).unwrap() as u32
    }

    fn read16(bytes: &[u8], at: usize) -> u16 {
        le::<2>(bytes, at).unwrap() as u16
    }

    const HIGH: u64 = 0xffff_82d0_8000_0000;

    fn kernel_like() -> Vec<TestSegment> {
        let mut text = MULTIBOOT1_MAGIC.to_le_bytes().to_vec();
        text.extend((0..100u8).collect::<Vec<_>>());
        vec![
            TestSegment {
                ptype: PT_LOAD,
                flags: 5,
                vaddr: HIGH + 0x10_0000,
                paddr: 0x10_0000,
                data: text,
                memsz: 104,
            },
            // A non-load header in between must be skipped.
            TestSegment {
                ptype: 0x6474_e551,
                flags: 6,
                vaddr: 0,
                paddr: 0,
                data: vec![],
                memsz: 0,
            },
            TestSegment {
                ptype: PT_LOAD,
                flags: 6,
                vaddr: HIGH + 0x10_2008,
                paddr: 0x10_2008,
                data: vec![0xaa; 24],
                memsz: 0x3000,
            },
            // bss only.
            TestSegment {
                ptype: PT_LOAD,
                flags: 6,
                vaddr: HIGH + 0x20_0000,
                paddr: 0x20_0000,
                data: vec![],
                memsz: 0x8000,
            },
        ]
    }

    #[test]
    fn converts_header_and_program_headers() {
        let segments = kernel_like();
        let elf64 = build_elf64(0x10_000c, &segments);
        let elf32 = convert(&elf64).unwrap();

        assert_eq!(elf32[0..4], ELF_MAGIC);
        assert_eq!(elf32[4], ELFCLASS32);
        assert_eq!(elf32[5], ELFDATA2LSB);
        assert_eq!(read16(&elf32, 16), ET_EXEC);
        assert_eq!(read16(&elf32, 18), EM_386);
        assert_eq!(read32(&elf32, 24), 0x10_000c, "e_entry");
        assert_eq!(read32(&elf32, 28), ELF32_EHDR_SIZE as u32, "e_phoff");
        assert_eq!(read16(&elf32, 42), ELF32_PHDR_SIZE as u16);
        assert_eq!(read16(&elf32, 44), 3, "one PT_LOAD per source PT_LOAD");
        assert_eq!(read16(&elf32, 48), 0, "no sections");

        let loads: Vec<&TestSegment> = segments.iter().filter(|s| s.ptype == PT_LOAD).collect();
        for (i, src) in loads.iter().enumerate() {
            let at = ELF32_EHDR_SIZE + i * ELF32_PHDR_SIZE;
            assert_eq!(read32(&elf32, at), PT_LOAD);
            let offset = read32(&elf32, at + 4) as usize;
            assert_eq!(
                u64::from(read32(&elf32, at + 8)),
                src.paddr,
                "p_vaddr = source p_paddr"
            );
            assert_eq!(u64::from(read32(&elf32, at + 12)), src.paddr, "p_paddr");
            assert_eq!(read32(&elf32, at + 16) as usize, src.data.len(), "p_filesz");
            assert_eq!(u64::from(read32(&elf32, at + 20)), src.memsz, "p_memsz");
            assert_eq!(read32(&elf32, at + 24), src.flags, "p_flags");
            assert_eq!(
                &elf32[offset..offset + src.data.len()],
                &src.data[..],
                "segment bytes"
            );
            if !src.data.is_empty() {
                assert_eq!(
                    offset as u64 % FILE_ALIGN,
                    src.paddr % FILE_ALIGN,
                    "alignment kept"
                );
            }
        }
        assert!(has_multiboot1_header(&elf32));
        assert!(!has_multiboot2_header(&elf32));
    }

    #[test]
    fn multiboot_header_search() {
        let mut image = vec![0u8; 40_000];
        assert!(!has_multiboot1_header(&image) && !has_multiboot2_header(&image));
        image[8192..8196].copy_from_slice(&MULTIBOOT1_MAGIC.to_le_bytes());
        assert!(!has_multiboot1_header(&image), "past 8 KiB");
        image[8188..8192].copy_from_slice(&MULTIBOOT1_MAGIC.to_le_bytes());
        assert!(has_multiboot1_header(&image));
        image[1004..1008].copy_from_slice(&MULTIBOOT2_MAGIC.to_le_bytes());
        assert!(!has_multiboot2_header(&image), "not 8-byte aligned");
        image[32760..32764].copy_from_slice(&MULTIBOOT2_MAGIC.to_le_bytes());
        assert!(has_multiboot2_header(&image));
    }

    #[test]
    fn parse_skips_non_load_headers() {
        let elf64 = build_elf64(0x10_000c, &kernel_like());
        let image = parse_elf64(&elf64).unwrap();
        assert_eq!(image.segments.len(), 3);
        assert_eq!(image.segments[1].paddr, 0x10_2008);
        assert_eq!(image.segments[2].filesz, 0);
    }

    #[test]
    fn refuses_entry_at_or_above_4gib() {
        let elf64 = build_elf64(HIGH + 0x10_000c, &kernel_like());
        let err = convert(&elf64).unwrap_err().to_string();
        assert!(err.contains("entry point"), "{err}");
    }

    #[test]
    fn refuses_segment_above_4gib() {
        let mut segments = kernel_like();
        segments[0].paddr = segments[0].vaddr; // forgot AT(): paddr = vaddr
        let err = convert(&build_elf64(0x10_000c, &segments))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not below 4 GiB"), "{err}");

        // A segment ending exactly at 4 GiB is fine; one crossing it is not.
        let mut segments = kernel_like();
        segments[3].paddr = (1 << 32) - 0x8000;
        assert!(convert(&build_elf64(0x10_000c, &segments)).is_ok());
        segments[3].paddr += 1;
        assert!(convert(&build_elf64(0x10_000c, &segments)).is_err());
    }

    #[test]
    fn refuses_non_elf64_input() {
        assert!(convert(b"just some text, not an ELF image").is_err());
        let mut elf64 = build_elf64(0x10_000c, &kernel_like());
        elf64[4] = ELFCLASS32;
        assert!(convert(&elf64).unwrap_err().to_string().contains("ELF64"));
        let mut elf64 = build_elf64(0x10_000c, &kernel_like());
        elf64[18] = 40; // EM_ARM
        assert!(convert(&elf64).is_err());
    }

    #[test]
    fn refuses_truncated_segments_and_no_loads() {
        let mut elf64 = build_elf64(0x10_000c, &kernel_like());
        elf64.truncate(elf64.len() - 10);
        assert!(convert(&elf64).unwrap_err().to_string().contains("outside"));

        let none = build_elf64(0x10_000c, &[]);
        assert!(convert(&none)
            .unwrap_err()
            .to_string()
            .contains("no PT_LOAD"));
    }
}
