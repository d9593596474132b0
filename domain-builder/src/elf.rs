//! Reading a guest kernel image: an ELF64 x86_64 executable carrying Xen ELF notes.
//!
//! [`parse_kernel`] checks the image the way Xen's libelf does for a 64-bit PV domain
//! (`elf_init`, `elf_parse_binary`, `elf_xen_parse`, `elf_xen_note_check`,
//! `elf_xen_addr_calc_check`), plus the structural checks an untrusted image needs:
//! every offset and size is bounds-checked, every sum is checked for overflow, and every
//! problem is a distinct [`ElfError`]. No input makes it panic.

use alloc::string::String;
use alloc::vec::Vec;

use ::elf::abi::{EM_X86_64, ET_EXEC, PT_LOAD, PT_NOTE, SHT_NOTE};
use ::elf::endian::LittleEndian;
use ::elf::ElfBytes;

use crate::notes::{parse_note_area, XenNotes};
use crate::{check_guest_range, is_canonical, RangeProblem, PAGE_SIZE};

mod error;

pub use error::ElfError;

/// Largest kernel image we load: the span from the lowest to the highest loaded byte, and
/// also the distance from VIRT_BASE up to the image. Far above any real PV kernel, small
/// enough that a hostile header cannot make a builder plan gigabytes of page tables.
pub const MAX_KERNEL_SPAN: u64 = 1 << 30;

/// Size of an ELF64 file header.
const EHDR64_SIZE: usize = 64;
/// Size of an ELF64 program header.
pub(crate) const PHDR64_SIZE: u16 = 56;
/// `e_phnum` value meaning "the real count is in section header 0" (not supported here).
const PN_XNUM: u16 = 0xffff;

/// One loadable segment of the kernel, at the address it is loaded to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest virtual address of the segment's first byte (`p_paddr` + virt_offset, as Xen).
    pub vaddr: u64,
    /// Offset of the segment's bytes in the image.
    pub offset: u64,
    /// Bytes copied from the image.
    pub filesz: u64,
    /// Bytes occupied in memory; those past `filesz` are zero (bss).
    pub memsz: u64,
    /// ELF `p_flags` (PF_X = 1, PF_W = 2, PF_R = 4).
    pub flags: u32,
}

/// What a builder needs to know about a checked kernel image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelInfo {
    /// The PT_LOAD segments, in program header order.
    pub segments: Vec<Segment>,
    /// Entry point (XEN_ELFNOTE_ENTRY, else `e_entry`); inside `[virt_kstart, virt_kend)`.
    pub entry: u64,
    /// Start of the initial virtual region (XEN_ELFNOTE_VIRT_BASE, default 0); page aligned.
    pub virt_base: u64,
    /// XEN_ELFNOTE_PADDR_OFFSET (default 0, as for any image with ELF notes).
    pub paddr_offset: u64,
    /// Lowest loaded address of the image.
    pub virt_kstart: u64,
    /// One past the highest loaded address of the image (not page-rounded).
    pub virt_kend: u64,
    /// Virtual address of the page to fill with hypercall stubs (XEN_ELFNOTE_HYPERCALL_PAGE).
    pub hypercall_page: Option<u64>,
    /// XEN_ELFNOTE_GUEST_OS, e.g. "linux".
    pub guest_os: Option<String>,
    /// XEN_ELFNOTE_GUEST_VERSION.
    pub guest_version: Option<String>,
    /// XEN_ELFNOTE_LOADER, e.g. "generic".
    pub loader: Option<String>,
    /// XEN_ELFNOTE_XEN_VERSION; "xen-3.0" when present.
    pub xen_version: Option<String>,
    /// XEN_ELFNOTE_FEATURES string (`feature|!required_feature|...`), without NUL; empty if absent.
    pub features: Vec<u8>,
    /// XEN_ELFNOTE_SUPPORTED_FEATURES raw descriptor (XENFEAT bitmap words); empty if absent.
    pub supported_features: Vec<u8>,
    /// XEN_ELFNOTE_MOD_START_PFN was non-zero: the kernel accepts an unmapped initrd.
    pub mod_start_pfn: bool,
    /// XEN_ELFNOTE_INIT_P2M: where the kernel would like the p2m list mapped.
    pub init_p2m: Option<u64>,
    /// XEN_ELFNOTE_HV_START_LOW (meaningful for 32-bit guests only; recorded).
    pub hv_start_low: Option<u64>,
    /// XEN_ELFNOTE_PHYS32_ENTRY (PVH entry; recorded, unused for PV).
    pub phys32_entry: Option<u64>,
    /// The notes came from SHT_NOTE sections because no PT_NOTE segment held Xen notes.
    pub notes_from_sections: bool,
}

/// Read a little-endian u16 at `at`; the caller has checked the bounds.
fn le16(image: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([image[at], image[at + 1]])
}

/// Read a little-endian u64 at `at`; the caller has checked the bounds.
fn le64(image: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&image[at..at + 8]);
    u64::from_le_bytes(bytes)
}

/// Check the ELF identification and the header fields we depend on, before handing the
/// image to the `elf` crate, so that each problem gets its own error.
fn check_header(image: &[u8]) -> Result<(), ElfError> {
    if image.len() < 4 || image[..4] != *b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    let ident = |at: usize| image.get(at).copied();
    match ident(4) {
        Some(2) => {}
        Some(class) => return Err(ElfError::Not64Bit { class }),
        None => return Err(ElfError::TruncatedHeader { len: image.len() }),
    }
    match ident(5) {
        Some(1) => {}
        Some(data) => return Err(ElfError::NotLittleEndian { data }),
        None => return Err(ElfError::TruncatedHeader { len: image.len() }),
    }
    match ident(6) {
        Some(1) => {}
        Some(version) => return Err(ElfError::BadIdentVersion { version }),
        None => return Err(ElfError::TruncatedHeader { len: image.len() }),
    }
    if image.len() < EHDR64_SIZE {
        return Err(ElfError::TruncatedHeader { len: image.len() });
    }
    let elf_type = le16(image, 16);
    let machine = le16(image, 18);
    let phoff = le64(image, 32);
    let phentsize = le16(image, 54);
    let phnum = le16(image, 56);
    if machine != EM_X86_64 {
        return Err(ElfError::WrongMachine { machine });
    }
    if elf_type != ET_EXEC {
        return Err(ElfError::NotExecutable { elf_type });
    }
    if phoff == 0 || phnum == 0 {
        return Err(ElfError::NoProgramHeaders);
    }
    if phentsize != PHDR64_SIZE {
        return Err(ElfError::BadProgramHeaderSize { size: phentsize });
    }
    let out_of_bounds = ElfError::ProgramHeadersOutOfBounds {
        offset: phoff,
        count: phnum,
    };
    // Extended numbering (PN_XNUM) is for core files; no kernel has 65535 segments.
    if phnum == PN_XNUM {
        return Err(out_of_bounds);
    }
    let table_end = u64::from(phnum)
        .checked_mul(u64::from(PHDR64_SIZE))
        .and_then(|size| phoff.checked_add(size));
    match table_end {
        Some(end) if end <= image.len() as u64 => Ok(()),
        _ => Err(out_of_bounds),
    }
}

/// The bytes `[offset, offset + size)` of the image, if they are all inside it.
fn file_range(image: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    image.get(start..end)
}

/// Gather the Xen notes: from PT_NOTE segments, or failing that SHT_NOTE sections (Xen's
/// order in `elf_xen_parse`). Returns the notes, how many were named "Xen", and whether
/// they came from sections.
fn collect_notes(
    image: &[u8],
    file: &ElfBytes<'_, LittleEndian>,
) -> Result<(XenNotes, usize, bool), ElfError> {
    let mut notes = XenNotes::default();
    let mut total = 0usize;
    let mut xen_notes = 0usize;
    if let Some(phdrs) = file.segments() {
        for phdr in phdrs.iter() {
            // Some binutils leave p_offset 0 on note segments; Xen skips them, so do we.
            if phdr.p_type != PT_NOTE || phdr.p_offset == 0 {
                continue;
            }
            let area = file_range(image, phdr.p_offset, phdr.p_filesz)
                .ok_or(ElfError::NoteAreaOutOfBounds)?;
            xen_notes += parse_note_area(area, &mut total, &mut notes)?;
        }
    }
    if xen_notes > 0 {
        return Ok((notes, xen_notes, false));
    }
    if let Some(shdrs) = file.section_headers() {
        // Section 0 is the reserved null section.
        for shdr in shdrs.iter().skip(1) {
            if shdr.sh_type != SHT_NOTE {
                continue;
            }
            let area = file_range(image, shdr.sh_offset, shdr.sh_size)
                .ok_or(ElfError::NoteAreaOutOfBounds)?;
            xen_notes += parse_note_area(area, &mut total, &mut notes)?;
        }
    }
    Ok((notes, xen_notes, true))
}

/// Turn a note string into text for [`KernelInfo`] and error messages.
fn text(bytes: &Option<Vec<u8>>) -> Option<String> {
    bytes
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

/// Xen's `elf_xen_note_check` for a 64-bit PV guest.
fn check_xen_kernel(notes: &XenNotes, xen_notes: usize) -> Result<(), ElfError> {
    // Xen compares with strncmp, i.e. these are prefixes.
    let starts = |field: &Option<Vec<u8>>, prefix: &[u8]| {
        field
            .as_deref()
            .is_some_and(|value| value.starts_with(prefix))
    };
    if !starts(&notes.loader, b"generic") && !starts(&notes.guest_os, b"linux") {
        return Err(ElfError::NotXenKernel {
            xen_notes,
            loader: text(&notes.loader),
            guest_os: text(&notes.guest_os),
        });
    }
    // Xen insists on XEN_VERSION; we accept its absence (our own guests need not carry
    // it), but a kernel that names another ABI version is refused.
    if notes.xen_version.is_some() && !starts(&notes.xen_version, b"xen-3.0") {
        return Err(ElfError::UnsupportedXenVersion {
            found: text(&notes.xen_version).unwrap_or_default(),
        });
    }
    Ok(())
}

/// Read the PT_LOAD segments at their ELF physical addresses (`p_paddr`), checking each.
fn load_segments(
    image: &[u8],
    file: &ElfBytes<'_, LittleEndian>,
) -> Result<Vec<(usize, Segment)>, ElfError> {
    let mut segments = Vec::new();
    let Some(phdrs) = file.segments() else {
        return Err(ElfError::NoProgramHeaders);
    };
    for (index, phdr) in phdrs.iter().enumerate() {
        if phdr.p_type != PT_LOAD {
            continue;
        }
        if phdr.p_filesz > phdr.p_memsz {
            return Err(ElfError::FileSizeExceedsMemSize { index });
        }
        if phdr.p_filesz > 0 && file_range(image, phdr.p_offset, phdr.p_filesz).is_none() {
            return Err(ElfError::SegmentOutOfFile { index });
        }
        if phdr.p_paddr.checked_add(phdr.p_memsz).is_none() {
            return Err(ElfError::SegmentAddressOverflow { index });
        }
        segments.push((
            index,
            Segment {
                vaddr: phdr.p_paddr,
                offset: phdr.p_offset,
                filesz: phdr.p_filesz,
                memsz: phdr.p_memsz,
                flags: phdr.p_flags,
            },
        ));
    }
    if segments.is_empty() {
        return Err(ElfError::NoLoadableSegment);
    }
    Ok(segments)
}

/// Reject segments that overlap in memory (empty segments overlap nothing).
fn check_overlaps(segments: &[(usize, Segment)]) -> Result<(), ElfError> {
    let mut sorted: Vec<&(usize, Segment)> = segments.iter().filter(|(_, s)| s.memsz > 0).collect();
    sorted.sort_by_key(|(_, s)| s.vaddr);
    for pair in sorted.windows(2) {
        let (first, a) = pair[0];
        let (second, b) = pair[1];
        // Both ends were checked not to overflow.
        if a.vaddr + a.memsz > b.vaddr {
            return Err(ElfError::SegmentsOverlap {
                first: *first.min(second),
                second: *first.max(second),
            });
        }
    }
    Ok(())
}

/// Map a guest-range problem to the error naming this image range.
fn range_error(problem: RangeProblem, start: u64, end: u64) -> ElfError {
    match problem {
        RangeProblem::NonCanonical => ElfError::NonCanonical { start, end },
        RangeProblem::Hypervisor => ElfError::OverlapsHypervisor { start, end },
    }
}

/// Read and check a guest kernel image; see the module documentation.
///
/// The image must be an ELF64 little-endian x86_64 executable with at least one PT_LOAD
/// segment and Xen ELF notes saying it is a PV kernel (LOADER "generic" or GUEST_OS
/// "linux"). Load addresses follow Xen: `p_paddr + VIRT_BASE - PADDR_OFFSET`.
pub fn parse_kernel(image: &[u8]) -> Result<KernelInfo, ElfError> {
    check_header(image)?;
    // The header and program header table are already known to be sound, so the only
    // thing left for the elf crate to refuse is the section header table.
    let file =
        ElfBytes::<LittleEndian>::minimal_parse(image).map_err(|_| ElfError::BadSectionHeaders)?;

    let mut segments = load_segments(image, &file)?;
    check_overlaps(&segments)?;

    let (notes, xen_notes, notes_from_sections) = collect_notes(image, &file)?;
    check_xen_kernel(&notes, xen_notes)?;

    // elf_xen_addr_calc_check. With ELF notes (as opposed to the legacy __xen_guest
    // section, which we do not read) PADDR_OFFSET defaults to 0.
    if notes.paddr_offset.is_some() && notes.virt_base.is_none() {
        return Err(ElfError::PaddrOffsetWithoutVirtBase);
    }
    let virt_base = notes.virt_base.unwrap_or(0);
    let paddr_offset = notes.paddr_offset.unwrap_or(0);
    if !virt_base.is_multiple_of(PAGE_SIZE) {
        return Err(ElfError::VirtBaseMisaligned { virt_base });
    }
    // Unsigned wrap-around is intended: a kernel linked with physical addresses above
    // VIRT_BASE gets a "negative" offset (Xen computes the same modulo 2^64).
    let virt_offset = virt_base.wrapping_sub(paddr_offset);

    let mut kstart = u64::MAX;
    let mut kend = 0u64;
    for (index, segment) in &mut segments {
        let vaddr = segment.vaddr.wrapping_add(virt_offset);
        let end = vaddr
            .checked_add(segment.memsz)
            .ok_or(ElfError::SegmentAddressOverflow { index: *index })?;
        segment.vaddr = vaddr;
        kstart = kstart.min(vaddr);
        kend = kend.max(end);
    }
    // Relocation preserves distances (mod 2^64) and no relocated segment wraps, so the
    // relocated segments still do not overlap.
    let span = kend - kstart;
    if span > MAX_KERNEL_SPAN {
        return Err(ElfError::ImageTooLarge { span });
    }
    check_guest_range(kstart, kend).map_err(|p| range_error(p, kstart, kend))?;
    if !is_canonical(virt_base) {
        return Err(ElfError::NonCanonical {
            start: virt_base,
            end: kend,
        });
    }
    if kstart < virt_base {
        return Err(ElfError::ImageBelowVirtBase { virt_base, kstart });
    }
    if kstart - virt_base > MAX_KERNEL_SPAN {
        return Err(ElfError::ImageFarAboveVirtBase { virt_base, kstart });
    }
    // The region from VIRT_BASE to the end of the image must be usable as a whole.
    check_guest_range(virt_base, kend).map_err(|p| range_error(p, virt_base, kend))?;

    let entry = notes.entry.unwrap_or(file.ehdr.e_entry);
    if entry < kstart || entry >= kend {
        return Err(ElfError::EntryOutsideImage {
            entry,
            kstart,
            kend,
        });
    }
    if let Some(va) = notes.hypercall_page {
        if !va.is_multiple_of(PAGE_SIZE) {
            return Err(ElfError::HypercallPageMisaligned { va });
        }
        // Aligned and starting inside the image: the whole page lies in the kernel's
        // page-rounded range, which the layout maps.
        if va < kstart || va >= kend {
            return Err(ElfError::HypercallPageOutsideImage { va });
        }
    }
    if let Some(va) = notes.init_p2m {
        if va >= kstart && va < kend {
            return Err(ElfError::InitP2mInsideImage { va });
        }
    }

    Ok(KernelInfo {
        segments: segments.into_iter().map(|(_, segment)| segment).collect(),
        entry,
        virt_base,
        paddr_offset,
        virt_kstart: kstart,
        virt_kend: kend,
        hypercall_page: notes.hypercall_page,
        guest_os: text(&notes.guest_os),
        guest_version: text(&notes.guest_version),
        loader: text(&notes.loader),
        xen_version: text(&notes.xen_version),
        features: notes.features.clone().unwrap_or_default(),
        supported_features: notes.supported_features.clone().unwrap_or_default(),
        mod_start_pfn: notes.mod_start_pfn.is_some_and(|v| v != 0),
        init_p2m: notes.init_p2m,
        hv_start_low: notes.hv_start_low,
        phys32_entry: notes.phys32_entry,
        notes_from_sections,
    })
}
