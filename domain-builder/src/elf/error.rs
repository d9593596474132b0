//! The errors of [`super::parse_kernel`]: one variant per reason an image is refused, each
//! with a one-line message naming what was wrong.

use alloc::string::String;
use core::fmt;

use super::{MAX_KERNEL_SPAN, PHDR64_SIZE};

/// Why a kernel image was refused. Every variant's `Display` is one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The image does not start with `\x7fELF`.
    NotElf,
    /// `EI_CLASS` is not ELFCLASS64.
    Not64Bit {
        /// The `EI_CLASS` byte found.
        class: u8,
    },
    /// `EI_DATA` is not ELFDATA2LSB.
    NotLittleEndian {
        /// The `EI_DATA` byte found.
        data: u8,
    },
    /// `EI_VERSION` is not EV_CURRENT.
    BadIdentVersion {
        /// The `EI_VERSION` byte found.
        version: u8,
    },
    /// The image is shorter than an ELF64 header.
    TruncatedHeader {
        /// Image length.
        len: usize,
    },
    /// `e_machine` is not EM_X86_64.
    WrongMachine {
        /// The `e_machine` found.
        machine: u16,
    },
    /// `e_type` is not ET_EXEC.
    NotExecutable {
        /// The `e_type` found.
        elf_type: u16,
    },
    /// The image has no program header table.
    NoProgramHeaders,
    /// `e_phentsize` is not the ELF64 program header size.
    BadProgramHeaderSize {
        /// The `e_phentsize` found.
        size: u16,
    },
    /// The program header table does not fit in the image (or its size overflows).
    ProgramHeadersOutOfBounds {
        /// `e_phoff`.
        offset: u64,
        /// `e_phnum`.
        count: u16,
    },
    /// The section header table is out of bounds or malformed.
    BadSectionHeaders,
    /// No PT_LOAD segment.
    NoLoadableSegment,
    /// A PT_LOAD has `p_filesz > p_memsz`.
    FileSizeExceedsMemSize {
        /// Program header index.
        index: usize,
    },
    /// A PT_LOAD's file bytes lie outside the image.
    SegmentOutOfFile {
        /// Program header index.
        index: usize,
    },
    /// A PT_LOAD's address range wraps around or leaves the canonical address space.
    SegmentAddressOverflow {
        /// Program header index.
        index: usize,
    },
    /// Two PT_LOAD segments occupy the same memory.
    SegmentsOverlap {
        /// Index of one segment.
        first: usize,
        /// Index of the other.
        second: usize,
    },
    /// The loaded image spans more than [`MAX_KERNEL_SPAN`].
    ImageTooLarge {
        /// Bytes from the lowest to the highest loaded address.
        span: u64,
    },
    /// A PT_NOTE segment or SHT_NOTE section lies outside the image.
    NoteAreaOutOfBounds,
    /// An ELF note runs past the end of its note area.
    MalformedNote {
        /// Offset of the note inside its area.
        offset: u64,
    },
    /// More than Xen's limit of 65536 notes.
    TooManyNotes,
    /// A numeric Xen note is not 1, 2, 4 or 8 bytes long.
    BadNumericNote {
        /// The note type.
        note_type: u32,
        /// Its descriptor size.
        size: usize,
    },
    /// The image is not a Xen PV kernel: no LOADER "generic" nor GUEST_OS "linux" note.
    NotXenKernel {
        /// How many notes named "Xen" were found.
        xen_notes: usize,
        /// The LOADER note, if any.
        loader: Option<String>,
        /// The GUEST_OS note, if any.
        guest_os: Option<String>,
    },
    /// XEN_VERSION is present and is not "xen-3.0".
    UnsupportedXenVersion {
        /// The XEN_VERSION found.
        found: String,
    },
    /// PADDR_OFFSET is given without VIRT_BASE (Xen refuses this too).
    PaddrOffsetWithoutVirtBase,
    /// VIRT_BASE is not page aligned.
    VirtBaseMisaligned {
        /// The VIRT_BASE found.
        virt_base: u64,
    },
    /// The image starts below VIRT_BASE.
    ImageBelowVirtBase {
        /// VIRT_BASE.
        virt_base: u64,
        /// Lowest loaded address.
        kstart: u64,
    },
    /// The image starts more than [`MAX_KERNEL_SPAN`] above VIRT_BASE.
    ImageFarAboveVirtBase {
        /// VIRT_BASE.
        virt_base: u64,
        /// Lowest loaded address.
        kstart: u64,
    },
    /// The entry point is outside the loaded image.
    EntryOutsideImage {
        /// The entry point.
        entry: u64,
        /// Lowest loaded address.
        kstart: u64,
        /// One past the highest loaded address.
        kend: u64,
    },
    /// HYPERCALL_PAGE is not page aligned.
    HypercallPageMisaligned {
        /// The address given.
        va: u64,
    },
    /// HYPERCALL_PAGE is outside the loaded image.
    HypercallPageOutsideImage {
        /// The address given.
        va: u64,
    },
    /// INIT_P2M points into the kernel image (Xen refuses this too).
    InitP2mInsideImage {
        /// The address given.
        va: u64,
    },
    /// The image is not in canonical address space (or straddles the non-canonical hole).
    NonCanonical {
        /// Lowest address involved.
        start: u64,
        /// One past the highest address involved.
        end: u64,
    },
    /// The image reaches into the hypervisor's reserved virtual range.
    OverlapsHypervisor {
        /// Lowest loaded address.
        start: u64,
        /// One past the highest loaded address.
        end: u64,
    },
}

/// Print an optional note string for error messages.
struct NoteText<'a>(&'a Option<String>);

impl fmt::Display for NoteText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(text) => write!(f, "{text:?}"),
            None => f.write_str("absent"),
        }
    }
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotElf => f.write_str("not an ELF image (bad magic)"),
            Self::Not64Bit { class } => write!(f, "not a 64-bit ELF image (EI_CLASS {class})"),
            Self::NotLittleEndian { data } => {
                write!(f, "not a little-endian ELF image (EI_DATA {data})")
            }
            Self::BadIdentVersion { version } => {
                write!(f, "unsupported ELF version {version} in e_ident")
            }
            Self::TruncatedHeader { len } => {
                write!(
                    f,
                    "ELF image truncated: {len} bytes, shorter than the ELF64 header"
                )
            }
            Self::WrongMachine { machine } => {
                write!(f, "ELF image is for machine {machine}, not x86_64 (62)")
            }
            Self::NotExecutable { elf_type } => {
                write!(
                    f,
                    "ELF image has type {elf_type}, not an executable (ET_EXEC)"
                )
            }
            Self::NoProgramHeaders => f.write_str("ELF image has no program headers"),
            Self::BadProgramHeaderSize { size } => {
                write!(f, "ELF program header size {size}, expected {PHDR64_SIZE}")
            }
            Self::ProgramHeadersOutOfBounds { offset, count } => write!(
                f,
                "ELF program header table ({count} entries at {offset:#x}) is outside the image"
            ),
            Self::BadSectionHeaders => {
                f.write_str("ELF section header table is outside the image or malformed")
            }
            Self::NoLoadableSegment => f.write_str("ELF image has no PT_LOAD segment"),
            Self::FileSizeExceedsMemSize { index } => {
                write!(f, "ELF segment {index}: file size exceeds memory size")
            }
            Self::SegmentOutOfFile { index } => {
                write!(f, "ELF segment {index}: file bytes lie outside the image")
            }
            Self::SegmentAddressOverflow { index } => {
                write!(f, "ELF segment {index}: load address range overflows")
            }
            Self::SegmentsOverlap { first, second } => {
                write!(f, "ELF segments {first} and {second} overlap in memory")
            }
            Self::ImageTooLarge { span } => write!(
                f,
                "kernel image spans {span:#x} bytes, more than the limit of {MAX_KERNEL_SPAN:#x}"
            ),
            Self::NoteAreaOutOfBounds => {
                f.write_str("ELF note segment or section lies outside the image")
            }
            Self::MalformedNote { offset } => {
                write!(
                    f,
                    "ELF note at offset {offset:#x} of its note area is truncated"
                )
            }
            Self::TooManyNotes => f.write_str("too many ELF notes"),
            Self::BadNumericNote { note_type, size } => write!(
                f,
                "Xen ELF note {note_type}: numeric value of {size} bytes (expected 1, 2, 4 or 8)"
            ),
            Self::NotXenKernel { xen_notes: 0, .. } => {
                f.write_str("not a Xen PV kernel: no Xen ELF notes found")
            }
            Self::NotXenKernel {
                loader, guest_os, ..
            } => write!(
                f,
                "not a Xen PV kernel: needs Xen note LOADER \"generic\" or GUEST_OS \"linux\" \
                 (LOADER {}, GUEST_OS {})",
                NoteText(loader),
                NoteText(guest_os)
            ),
            Self::UnsupportedXenVersion { found } => {
                write!(
                    f,
                    "kernel is built for Xen version {found:?}, not \"xen-3.0\""
                )
            }
            Self::PaddrOffsetWithoutVirtBase => {
                f.write_str("Xen note PADDR_OFFSET is set but VIRT_BASE is not")
            }
            Self::VirtBaseMisaligned { virt_base } => {
                write!(f, "VIRT_BASE {virt_base:#x} is not page aligned")
            }
            Self::ImageBelowVirtBase { virt_base, kstart } => {
                write!(
                    f,
                    "kernel image starts at {kstart:#x}, below VIRT_BASE {virt_base:#x}"
                )
            }
            Self::ImageFarAboveVirtBase { virt_base, kstart } => write!(
                f,
                "kernel image starts at {kstart:#x}, more than {MAX_KERNEL_SPAN:#x} above \
                 VIRT_BASE {virt_base:#x}"
            ),
            Self::EntryOutsideImage {
                entry,
                kstart,
                kend,
            } => write!(
                f,
                "entry point {entry:#x} is outside the kernel image [{kstart:#x}, {kend:#x})"
            ),
            Self::HypercallPageMisaligned { va } => {
                write!(f, "hypercall page {va:#x} is not page aligned")
            }
            Self::HypercallPageOutsideImage { va } => {
                write!(f, "hypercall page {va:#x} is outside the kernel image")
            }
            Self::InitP2mInsideImage { va } => {
                write!(f, "INIT_P2M address {va:#x} is inside the kernel image")
            }
            Self::NonCanonical { start, end } => write!(
                f,
                "kernel range [{start:#x}, {end:#x}) is not in canonical address space"
            ),
            Self::OverlapsHypervisor { start, end } => write!(
                f,
                "kernel range [{start:#x}, {end:#x}) overlaps the hypervisor's virtual range"
            ),
        }
    }
}

impl core::error::Error for ElfError {}
