//! Xen ELF note types (`elfnote.h`): how a PV kernel image describes itself to the domain builder.
//!
//! The notes live in a `PT_NOTE` segment with owner name `"Xen"`. String
//! values are NUL-terminated ASCII; numeric values are native-endian
//! integers of the note's size.

use core::fmt;

/// Owner name of Xen ELF notes (the note's `namesz` includes a trailing NUL).
pub const XEN_ELFNOTE_NAME: &[u8] = b"Xen";

/// Xen ELF note types (`XEN_ELFNOTE_*`, the note's `n_type`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum XenElfNote {
    /// `XEN_ELFNOTE_INFO` (0): NAME=VALUE pair (string).
    Info = 0,
    /// `XEN_ELFNOTE_ENTRY` (1): virtual address of the entry point (numeric).
    Entry = 1,
    /// `XEN_ELFNOTE_HYPERCALL_PAGE` (2): virtual address of the hypercall page (numeric).
    HypercallPage = 2,
    /// `XEN_ELFNOTE_VIRT_BASE` (3): virtual address where the image is mapped (numeric, default 0).
    VirtBase = 3,
    /// `XEN_ELFNOTE_PADDR_OFFSET` (4): offset of ELF `p_paddr` from the
    /// pseudo-physical load address (numeric, default 0).
    PaddrOffset = 4,
    /// `XEN_ELFNOTE_XEN_VERSION` (5): Xen version the kernel works with (string).
    XenVersion = 5,
    /// `XEN_ELFNOTE_GUEST_OS` (6): guest OS name (string).
    GuestOs = 6,
    /// `XEN_ELFNOTE_GUEST_VERSION` (7): guest OS version (string).
    GuestVersion = 7,
    /// `XEN_ELFNOTE_LOADER` (8): loader type, e.g. `"generic"` (string).
    Loader = 8,
    /// `XEN_ELFNOTE_PAE_MODE` (9): PAE support, x86_32 only (string).
    PaeMode = 9,
    /// `XEN_ELFNOTE_FEATURES` (10): `|`-separated `XENFEAT_*` names, `!` marks required (string).
    Features = 10,
    /// `XEN_ELFNOTE_BSD_SYMTAB` (11): load the symbol table, `"yes"` or `"no"` (string).
    BsdSymtab = 11,
    /// `XEN_ELFNOTE_HV_START_LOW` (12): lowest address the hypervisor hole may start at (numeric).
    HvStartLow = 12,
    /// `XEN_ELFNOTE_L1_MFN_VALID` (13): mask/value pairs recognising
    /// non-present L1 entries that carry valid MFNs (numeric).
    L1MfnValid = 13,
    /// `XEN_ELFNOTE_SUSPEND_CANCEL` (14): supports cooperative suspend cancellation (numeric).
    SuspendCancel = 14,
    /// `XEN_ELFNOTE_INIT_P2M` (15): non-default virtual address for the initial P2M (numeric).
    InitP2m = 15,
    /// `XEN_ELFNOTE_MOD_START_PFN` (16): can take an initrd not mapped by the
    /// initial page tables (numeric).
    ModStartPfn = 16,
    /// `XEN_ELFNOTE_SUPPORTED_FEATURES` (17): bitmap of supported `XENFEAT_*` (numeric).
    SupportedFeatures = 17,
    /// `XEN_ELFNOTE_PHYS32_ENTRY` (18): 32-bit physical entry point for PVH (numeric).
    Phys32Entry = 18,
    /// `XEN_ELFNOTE_PHYS32_RELOC` (19): PVH relocation constraints (up to three u32s).
    Phys32Reloc = 19,
}

impl XenElfNote {
    /// Every note type, in number order.
    pub const ALL: [XenElfNote; 20] = [
        XenElfNote::Info,
        XenElfNote::Entry,
        XenElfNote::HypercallPage,
        XenElfNote::VirtBase,
        XenElfNote::PaddrOffset,
        XenElfNote::XenVersion,
        XenElfNote::GuestOs,
        XenElfNote::GuestVersion,
        XenElfNote::Loader,
        XenElfNote::PaeMode,
        XenElfNote::Features,
        XenElfNote::BsdSymtab,
        XenElfNote::HvStartLow,
        XenElfNote::L1MfnValid,
        XenElfNote::SuspendCancel,
        XenElfNote::InitP2m,
        XenElfNote::ModStartPfn,
        XenElfNote::SupportedFeatures,
        XenElfNote::Phys32Entry,
        XenElfNote::Phys32Reloc,
    ];
}

/// An ELF note type that is not a Xen guest image note.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnknownXenElfNote(pub u32);

impl fmt::Display for UnknownXenElfNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown Xen ELF note type {}", self.0)
    }
}

impl core::error::Error for UnknownXenElfNote {}

impl TryFrom<u32> for XenElfNote {
    type Error = UnknownXenElfNote;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Ok(match value {
            0 => XenElfNote::Info,
            1 => XenElfNote::Entry,
            2 => XenElfNote::HypercallPage,
            3 => XenElfNote::VirtBase,
            4 => XenElfNote::PaddrOffset,
            5 => XenElfNote::XenVersion,
            6 => XenElfNote::GuestOs,
            7 => XenElfNote::GuestVersion,
            8 => XenElfNote::Loader,
            9 => XenElfNote::PaeMode,
            10 => XenElfNote::Features,
            11 => XenElfNote::BsdSymtab,
            12 => XenElfNote::HvStartLow,
            13 => XenElfNote::L1MfnValid,
            14 => XenElfNote::SuspendCancel,
            15 => XenElfNote::InitP2m,
            16 => XenElfNote::ModStartPfn,
            17 => XenElfNote::SupportedFeatures,
            18 => XenElfNote::Phys32Entry,
            19 => XenElfNote::Phys32Reloc,
            _ => return Err(UnknownXenElfNote(value)),
        })
    }
}

/// `XEN_ELFNOTE_INFO`.
pub const XEN_ELFNOTE_INFO: u32 = XenElfNote::Info as u32;
/// `XEN_ELFNOTE_ENTRY`.
pub const XEN_ELFNOTE_ENTRY: u32 = XenElfNote::Entry as u32;
/// `XEN_ELFNOTE_HYPERCALL_PAGE`.
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = XenElfNote::HypercallPage as u32;
/// `XEN_ELFNOTE_VIRT_BASE`.
pub const XEN_ELFNOTE_VIRT_BASE: u32 = XenElfNote::VirtBase as u32;
/// `XEN_ELFNOTE_PADDR_OFFSET`.
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = XenElfNote::PaddrOffset as u32;
/// `XEN_ELFNOTE_XEN_VERSION`.
pub const XEN_ELFNOTE_XEN_VERSION: u32 = XenElfNote::XenVersion as u32;
/// `XEN_ELFNOTE_GUEST_OS`.
pub const XEN_ELFNOTE_GUEST_OS: u32 = XenElfNote::GuestOs as u32;
/// `XEN_ELFNOTE_GUEST_VERSION`.
pub const XEN_ELFNOTE_GUEST_VERSION: u32 = XenElfNote::GuestVersion as u32;
/// `XEN_ELFNOTE_LOADER`.
pub const XEN_ELFNOTE_LOADER: u32 = XenElfNote::Loader as u32;
/// `XEN_ELFNOTE_PAE_MODE`.
pub const XEN_ELFNOTE_PAE_MODE: u32 = XenElfNote::PaeMode as u32;
/// `XEN_ELFNOTE_FEATURES`.
pub const XEN_ELFNOTE_FEATURES: u32 = XenElfNote::Features as u32;
/// `XEN_ELFNOTE_BSD_SYMTAB`.
pub const XEN_ELFNOTE_BSD_SYMTAB: u32 = XenElfNote::BsdSymtab as u32;
/// `XEN_ELFNOTE_HV_START_LOW`.
pub const XEN_ELFNOTE_HV_START_LOW: u32 = XenElfNote::HvStartLow as u32;
/// `XEN_ELFNOTE_L1_MFN_VALID`.
pub const XEN_ELFNOTE_L1_MFN_VALID: u32 = XenElfNote::L1MfnValid as u32;
/// `XEN_ELFNOTE_SUSPEND_CANCEL`.
pub const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = XenElfNote::SuspendCancel as u32;
/// `XEN_ELFNOTE_INIT_P2M`.
pub const XEN_ELFNOTE_INIT_P2M: u32 = XenElfNote::InitP2m as u32;
/// `XEN_ELFNOTE_MOD_START_PFN`.
pub const XEN_ELFNOTE_MOD_START_PFN: u32 = XenElfNote::ModStartPfn as u32;
/// `XEN_ELFNOTE_SUPPORTED_FEATURES`.
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = XenElfNote::SupportedFeatures as u32;
/// `XEN_ELFNOTE_PHYS32_ENTRY`.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = XenElfNote::Phys32Entry as u32;
/// `XEN_ELFNOTE_PHYS32_RELOC`.
pub const XEN_ELFNOTE_PHYS32_RELOC: u32 = XenElfNote::Phys32Reloc as u32;
/// `XEN_ELFNOTE_MAX`: the highest guest image note type.
pub const XEN_ELFNOTE_MAX: u32 = XEN_ELFNOTE_PHYS32_RELOC;

/// `XEN_ELFNOTE_CRASH_INFO`: system information in a crash dump (not a guest image note).
pub const XEN_ELFNOTE_CRASH_INFO: u32 = 0x100_0001;
/// `XEN_ELFNOTE_CRASH_REGS`: per-CPU registers in a crash dump.
pub const XEN_ELFNOTE_CRASH_REGS: u32 = 0x100_0002;
/// `XEN_ELFNOTE_DUMPCORE_NONE`: placeholder note in a domain core file.
pub const XEN_ELFNOTE_DUMPCORE_NONE: u32 = 0x200_0000;
/// `XEN_ELFNOTE_DUMPCORE_HEADER`: header note of a domain core file.
pub const XEN_ELFNOTE_DUMPCORE_HEADER: u32 = 0x200_0001;
/// `XEN_ELFNOTE_DUMPCORE_XEN_VERSION`: Xen version note of a domain core file.
pub const XEN_ELFNOTE_DUMPCORE_XEN_VERSION: u32 = 0x200_0002;
/// `XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION`: format version note of a domain core file.
pub const XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION: u32 = 0x200_0003;
