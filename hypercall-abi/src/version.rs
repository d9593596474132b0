//! The `xen_version` hypercall (`version.h`): sub-commands, their output types, and the feature bits (`features.h`).

use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Major version this hypervisor reports (Xen-compatible 4.19).
pub const XEN_VERSION_MAJOR: u32 = 4;
/// Minor version this hypervisor reports.
pub const XEN_VERSION_MINOR: u32 = 19;
/// What `XENVER_version` returns: `major << 16 | minor`.
pub const XEN_VERSION: u32 = (XEN_VERSION_MAJOR << 16) | XEN_VERSION_MINOR;

/// `xen_version` sub-commands (`XENVER_*`).
///
/// All return 0 on success except `Version`, `Pagesize` and `BuildId`,
/// which return a value.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum XenVersionOp {
    /// `XENVER_version` (0): `arg` is null; returns `major << 16 | minor`.
    Version = 0,
    /// `XENVER_extraversion` (1): fills a [`XenExtraversion`].
    Extraversion = 1,
    /// `XENVER_compile_info` (2): fills a [`XenCompileInfo`].
    CompileInfo = 2,
    /// `XENVER_capabilities` (3): fills a [`XenCapabilitiesInfo`].
    Capabilities = 3,
    /// `XENVER_changeset` (4): fills a [`XenChangesetInfo`].
    Changeset = 4,
    /// `XENVER_platform_parameters` (5): fills a [`XenPlatformParameters`].
    PlatformParameters = 5,
    /// `XENVER_get_features` (6): fills in a [`XenFeatureInfo`].
    GetFeatures = 6,
    /// `XENVER_pagesize` (7): `arg` is null; returns the page size.
    Pagesize = 7,
    /// `XENVER_guest_handle` (8): fills a [`XenDomainHandle`].
    GuestHandle = 8,
    /// `XENVER_commandline` (9): fills a [`XenCommandline`] (privileged).
    Commandline = 9,
    /// `XENVER_build_id` (10): fills a `xen_build_id` (`u32` length, then
    /// bytes); returns the number of bytes written.
    BuildId = 10,
}

impl XenVersionOp {
    /// Every sub-command, in number order.
    pub const ALL: [XenVersionOp; 11] = [
        XenVersionOp::Version,
        XenVersionOp::Extraversion,
        XenVersionOp::CompileInfo,
        XenVersionOp::Capabilities,
        XenVersionOp::Changeset,
        XenVersionOp::PlatformParameters,
        XenVersionOp::GetFeatures,
        XenVersionOp::Pagesize,
        XenVersionOp::GuestHandle,
        XenVersionOp::Commandline,
        XenVersionOp::BuildId,
    ];
}

/// A `xen_version` sub-command number that Xen 4.19 does not define.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnknownXenVersionOp(pub u32);

impl fmt::Display for UnknownXenVersionOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown xen_version command {}", self.0)
    }
}

impl core::error::Error for UnknownXenVersionOp {}

impl TryFrom<u32> for XenVersionOp {
    type Error = UnknownXenVersionOp;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Ok(match value {
            0 => XenVersionOp::Version,
            1 => XenVersionOp::Extraversion,
            2 => XenVersionOp::CompileInfo,
            3 => XenVersionOp::Capabilities,
            4 => XenVersionOp::Changeset,
            5 => XenVersionOp::PlatformParameters,
            6 => XenVersionOp::GetFeatures,
            7 => XenVersionOp::Pagesize,
            8 => XenVersionOp::GuestHandle,
            9 => XenVersionOp::Commandline,
            10 => XenVersionOp::BuildId,
            _ => return Err(UnknownXenVersionOp(value)),
        })
    }
}

/// `XENVER_version`.
pub const XENVER_VERSION: u32 = XenVersionOp::Version as u32;
/// `XENVER_extraversion`.
pub const XENVER_EXTRAVERSION: u32 = XenVersionOp::Extraversion as u32;
/// `XENVER_compile_info`.
pub const XENVER_COMPILE_INFO: u32 = XenVersionOp::CompileInfo as u32;
/// `XENVER_capabilities`.
pub const XENVER_CAPABILITIES: u32 = XenVersionOp::Capabilities as u32;
/// `XENVER_changeset`.
pub const XENVER_CHANGESET: u32 = XenVersionOp::Changeset as u32;
/// `XENVER_platform_parameters`.
pub const XENVER_PLATFORM_PARAMETERS: u32 = XenVersionOp::PlatformParameters as u32;
/// `XENVER_get_features`.
pub const XENVER_GET_FEATURES: u32 = XenVersionOp::GetFeatures as u32;
/// `XENVER_pagesize`.
pub const XENVER_PAGESIZE: u32 = XenVersionOp::Pagesize as u32;
/// `XENVER_guest_handle`.
pub const XENVER_GUEST_HANDLE: u32 = XenVersionOp::GuestHandle as u32;
/// `XENVER_commandline`.
pub const XENVER_COMMANDLINE: u32 = XenVersionOp::Commandline as u32;
/// `XENVER_build_id`.
pub const XENVER_BUILD_ID: u32 = XenVersionOp::BuildId as u32;

/// `xen_extraversion_t`: version suffix such as `".0"`, NUL-terminated.
pub type XenExtraversion = [u8; 16];
/// `XEN_EXTRAVERSION_LEN`.
pub const XEN_EXTRAVERSION_LEN: usize = 16;

/// Output of `XENVER_compile_info` (`struct xen_compile_info`, 144 bytes);
/// NUL-terminated strings.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct XenCompileInfo {
    /// Compiler name and version.
    pub compiler: [u8; 64],
    /// Who built it.
    pub compile_by: [u8; 16],
    /// Build host domain.
    pub compile_domain: [u8; 32],
    /// Build date.
    pub compile_date: [u8; 32],
}

const _: () = assert!(core::mem::size_of::<XenCompileInfo>() == 144);

/// `xen_capabilities_info_t`: space-separated guest types, e.g. `"xen-3.0-x86_64 "`.
pub type XenCapabilitiesInfo = [u8; 1024];
/// `XEN_CAPABILITIES_INFO_LEN`.
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;

/// `xen_changeset_info_t`: source revision, NUL-terminated.
pub type XenChangesetInfo = [u8; 64];
/// `XEN_CHANGESET_INFO_LEN`.
pub const XEN_CHANGESET_INFO_LEN: usize = 64;

/// Output of `XENVER_platform_parameters` (`struct xen_platform_parameters`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenPlatformParameters {
    /// Start of the hypervisor's virtual range (x86_64 reports [`crate::layout::HYPERVISOR_VIRT_START`]).
    pub virt_start: u64,
}

const _: () = assert!(core::mem::size_of::<XenPlatformParameters>() == 8);

/// In/out argument of `XENVER_get_features` (`struct xen_feature_info`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenFeatureInfo {
    /// In: which 32-bit submap to return (`< XENFEAT_NR_SUBMAPS`).
    pub submap_idx: u32,
    /// Out: bit `n` set means feature `submap_idx * 32 + n` (`XENFEAT_*`) is present.
    pub submap: u32,
}

const _: () = assert!(core::mem::size_of::<XenFeatureInfo>() == 8);

/// `xen_domain_handle_t`: the domain's UUID as set by the toolstack.
pub type XenDomainHandle = [u8; 16];

/// `xen_commandline_t`: the hypervisor command line, NUL-terminated.
pub type XenCommandline = [u8; 1024];

/// Guest may update its page tables by direct writes.
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// Guest may update its descriptor tables by direct writes.
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// The hypervisor translates pseudo-physical to machine addresses.
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// The guest kernel runs in supervisor mode (ring 0).
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// PAE page directories need not be below 4 GiB.
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// `MMU_PT_UPDATE_PRESERVE_AD` is supported.
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// `MMUEXT_CLEAR_PAGE` and `MMUEXT_COPY_PAGE` are supported.
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
/// `GNTTABOP_map_grant_ref` honours the guest-available PTE bits.
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// x86 HVM: the callback-vector upcall type is supported.
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// x86 HVM: the pvclock algorithm is safe to use.
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
/// x86 HVM: PIRQs can be used.
pub const XENFEAT_HVM_PIRQS: u32 = 10;
/// Operation as dom0 is supported.
pub const XENFEAT_DOM0: u32 = 11;
/// Deprecated (grant references also mapped at pfn == mfn); the 4.19 header
/// keeps it only inside a comment, and it is never advertised.
pub const XENFEAT_GRANT_MAP_IDENTITY: u32 = 12;
/// `XENMEMF_vnode` is supported by memory ops.
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// Arm: the SMC calling convention is supported.
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
/// x86 PVH: the ACPI RSDP may be anywhere.
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
/// The domain is not direct-mapped (gfn != mfn).
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
/// The domain is direct-mapped (gfn == mfn).
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;
/// `VCPUOP_register_runstate_phys_area` is available.
pub const XENFEAT_RUNSTATE_PHYS_AREA: u32 = 18;
/// `VCPUOP_register_vcpu_time_phys_area` is available.
pub const XENFEAT_VCPU_TIME_PHYS_AREA: u32 = 19;
/// All MSI-X vector control writes are passed to the device model.
pub const XENFEAT_DM_MSIX_ALL_WRITES: u32 = 20;
/// Number of 32-bit feature submaps (`XENFEAT_NR_SUBMAPS`).
pub const XENFEAT_NR_SUBMAPS: u32 = 1;
