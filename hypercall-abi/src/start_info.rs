//! The start-of-day page a PV guest finds at `rsi` (`struct start_info`) and the multiboot module list format.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of [`StartInfo::cmd_line`] (`MAX_GUEST_CMDLINE`).
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// The magic string an x86_64 PV guest finds at the start of [`StartInfo::magic`]
/// (`"xen-<version>-<platform>"`, NUL-padded).
pub const START_INFO_MAGIC: &[u8] = b"xen-3.0-x86_64";

/// `SIF_PRIVILEGED`: the domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `SIF_INITDOMAIN`: the domain is the initial control domain (dom0).
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `SIF_MULTIBOOT_MOD`: the module at `mod_start` is a multiboot module
/// package (see [`MultibootModList`]).
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `SIF_MOD_START_PFN`: `mod_start` is a PFN, not a virtual address.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// `SIF_VIRT_P2M_4TOOLS`: the tools understand a virtually mapped P2M list.
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;
/// `SIF_PM_MASK`: byte reserved for power-management options.
pub const SIF_PM_MASK: u32 = 0xFF << 8;

/// The `console` union of [`StartInfo`], 16 bytes.
///
/// A domU reads it as `domU { mfn: u64, evtchn: u32 }`; dom0 reads it as
/// `dom0 { info_off: u32, info_size: u32 }`, the offset and size of a
/// `dom0_vga_console_info` within the start-info page. The words are kept raw
/// and the accessors give each reading (little-endian, as on x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct StartInfoConsole {
    /// domU: console ring MFN. dom0: `info_off` (low half), `info_size` (high half).
    pub word0: u64,
    /// domU: console event channel. dom0: unused.
    pub word1: u32,
    /// Tail padding of the union, zero.
    pub _pad: u32,
}

impl StartInfoConsole {
    /// The domU reading: console ring page `mfn` and event channel `evtchn`.
    pub const fn domu(mfn: u64, evtchn: u32) -> Self {
        StartInfoConsole {
            word0: mfn,
            word1: evtchn,
            _pad: 0,
        }
    }

    /// The dom0 reading: offset and size of the console info within the start-info page.
    pub const fn dom0(info_off: u32, info_size: u32) -> Self {
        StartInfoConsole {
            word0: (info_off as u64) | ((info_size as u64) << 32),
            word1: 0,
            _pad: 0,
        }
    }

    /// domU: machine frame of the console ring page (`console.domU.mfn`).
    pub const fn domu_mfn(&self) -> u64 {
        self.word0
    }

    /// domU: event channel of the console (`console.domU.evtchn`).
    pub const fn domu_evtchn(&self) -> u32 {
        self.word1
    }

    /// dom0: offset of the console info struct in the start-info page (`console.dom0.info_off`).
    pub const fn dom0_info_off(&self) -> u32 {
        self.word0 as u32
    }

    /// dom0: size of the console info struct (`console.dom0.info_size`).
    pub const fn dom0_info_size(&self) -> u32 {
        (self.word0 >> 32) as u32
    }
}

const _: () = assert!(core::mem::size_of::<StartInfoConsole>() == 16);

/// The start-of-day information page (`struct start_info`, x86_64, 1168 bytes).
///
/// The hypervisor (or domain builder) fills it in and passes its virtual
/// address in `rsi`. Fields up to and including `console` are also refilled on
/// resume; the rest only at first boot. Field names are Xen's.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct StartInfo {
    /// `"xen-<version>-<platform>"`, NUL-padded; see [`START_INFO_MAGIC`].
    pub magic: [u8; 32],
    /// Total pages allocated to this domain.
    pub nr_pages: u64,
    /// Machine address of the shared info page.
    pub shared_info: u64,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Padding (implicit in C), zero.
    pub _pad0: u32,
    /// Machine frame of the store (xenstore) ring page.
    pub store_mfn: u64,
    /// Event channel of the store.
    pub store_evtchn: u32,
    /// Padding (implicit in C), zero.
    pub _pad1: u32,
    /// Console location; see [`StartInfoConsole`].
    pub console: StartInfoConsole,
    /// Virtual address of the initial page-table root (L4).
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// Virtual address of the page-frame list (the P2M: PFN -> MFN, `nr_pages` entries).
    pub mfn_list: u64,
    /// Virtual address (or PFN with `SIF_MOD_START_PFN`) of the pre-loaded module.
    pub mod_start: u64,
    /// Size of the pre-loaded module in bytes.
    pub mod_len: u64,
    /// Guest command line, NUL-terminated unless it fills the array.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First PFN of the initial P2M table frames (covers page tables and P2M).
    pub first_p2m_pfn: u64,
    /// Number of PFNs forming the initial P2M table.
    pub nr_p2m_frames: u64,
}

const _: () = assert!(core::mem::size_of::<StartInfo>() == 1168);
const _: () = assert!(core::mem::offset_of!(StartInfo, console) == 72);
const _: () = assert!(core::mem::offset_of!(StartInfo, cmd_line) == 128);
const _: () = assert!(core::mem::size_of::<StartInfo>() <= crate::PAGE_SIZE);

/// The bytes of `bytes` before its first NUL (all of them if there is none).
fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

impl StartInfo {
    /// The command line, up to (not including) the first NUL.
    pub fn cmdline(&self) -> &[u8] {
        until_nul(&self.cmd_line)
    }

    /// The magic string, up to (not including) the first NUL; compare with
    /// [`START_INFO_MAGIC`].
    pub fn magic_str(&self) -> &[u8] {
        until_nul(&self.magic)
    }

    /// Whether `SIF_INITDOMAIN` is set: this is the initial control domain.
    pub const fn is_initial_domain(&self) -> bool {
        self.flags & SIF_INITDOMAIN != 0
    }

    /// Whether `SIF_PRIVILEGED` is set.
    pub const fn is_privileged(&self) -> bool {
        self.flags & SIF_PRIVILEGED != 0
    }
}

/// One module descriptor in a multiboot module package (`struct xen_multiboot_mod_list`).
///
/// With `SIF_MULTIBOOT_MOD`, the module at `mod_start` is a package of
/// modules: by convention an array of these descriptors sits at the start of
/// the package; every address in them is relative to the start of the
/// package; and the array ends with a descriptor whose `mod_start` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct MultibootModList {
    /// Offset of the module's first byte; 0 terminates the list.
    pub mod_start: u32,
    /// Offset of the module's last byte (inclusive).
    pub mod_end: u32,
    /// Offset of the module's NUL-terminated command line.
    pub cmdline: u32,
    /// Unused, zero.
    pub pad: u32,
}

const _: () = assert!(core::mem::size_of::<MultibootModList>() == 16);

impl MultibootModList {
    /// Whether this is the terminating descriptor (`mod_start == 0`).
    pub const fn is_terminator(&self) -> bool {
        self.mod_start == 0
    }
}
