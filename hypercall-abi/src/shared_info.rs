//! The shared info page (`struct shared_info`): per-vCPU event and time state, event channel bitmaps, wall clock.
//!
//! This page is shared memory: the hypervisor and the guest update it
//! concurrently. These types give the layout; code touching a live page
//! should go through atomics or volatile accesses at these offsets, and follow
//! the version-counter protocol documented on [`VcpuTimeInfo::version`].

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XEN_LEGACY_MAX_VCPUS`: vCPUs with a [`VcpuInfo`] slot in the shared info page.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;

/// `EVTCHN_2L_NR_CHANNELS` on x86_64: ports of the 2-level event channel ABI
/// (64 selector bits x 64 bits per word).
pub const NR_EVENT_CHANNELS_2L: usize = 4096;

/// `XEN_PVCLOCK_TSC_STABLE_BIT`: the TSC is stable across vCPUs (in [`VcpuTimeInfo::flags`]).
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `XEN_PVCLOCK_GUEST_STOPPED`: the guest was stopped (in [`VcpuTimeInfo::flags`]).
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// Per-vCPU system time (`struct vcpu_time_info`, 32 bytes).
///
/// Current system time in ns is
/// `system_time + ((((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul) >> 32)`,
/// with a negative `tsc_shift` meaning a right shift.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VcpuTimeInfo {
    /// Incremented before and after every update: an odd value means an
    /// update is in progress, and a reader retries if it changed (a seqlock).
    pub version: u32,
    /// Padding, zero.
    pub pad0: u32,
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// System time (ns since boot) at `tsc_timestamp`.
    pub system_time: u64,
    /// TSC-to-ns multiplier, a 32.32 fixed-point fraction.
    pub tsc_to_system_mul: u32,
    /// Shift applied to the TSC delta before multiplying (signed).
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding, zero.
    pub pad1: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<VcpuTimeInfo>() == 32);

/// x86 part of [`VcpuInfo`] (`struct arch_vcpu_info`, 16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct ArchVcpuInfo {
    /// Faulting address of the last page fault delivered to the guest.
    pub cr2: u64,
    /// Padding that makes `VcpuInfo` 64 bytes.
    pub pad: u64,
}

const _: () = assert!(core::mem::size_of::<ArchVcpuInfo>() == 16);

/// Per-vCPU event and time state (`struct vcpu_info`, 64 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VcpuInfo {
    /// Set non-zero by the hypervisor when an event is pending for this vCPU;
    /// the guest clears it before scanning for work.
    pub evtchn_upcall_pending: u8,
    /// Non-zero masks event upcalls to this vCPU (the virtual IF, inverted).
    pub evtchn_upcall_mask: u8,
    /// Padding (implicit in C), zero.
    pub _pad0: [u8; 6],
    /// 2-level ABI selector: bit `i` set means word `i` of `evtchn_pending` may have work.
    pub evtchn_pending_sel: u64,
    /// x86 state.
    pub arch: ArchVcpuInfo,
    /// System time.
    pub time: VcpuTimeInfo,
}

const _: () = assert!(core::mem::size_of::<VcpuInfo>() == 64);

/// x86 part of [`SharedInfo`] (`struct arch_shared_info`, 48 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct ArchSharedInfo {
    /// Number of valid entries in the P2M reachable through the fields below.
    pub max_pfn: u64,
    /// Frame of the list of frames of the list of frames holding the P2M
    /// (3-level tree); 0 when not set up, `!0` when invalid.
    pub pfn_to_mfn_frame_list_list: u64,
    /// NMI reason bits.
    pub nmi_reason: u64,
    /// `cr3` of the address space in which `p2m_vaddr` is valid; 0 if unused.
    pub p2m_cr3: u64,
    /// Virtual address of the linear P2M list.
    pub p2m_vaddr: u64,
    /// Bumped by the guest before and after every change to the P2M mapping.
    pub p2m_generation: u64,
}

const _: () = assert!(core::mem::size_of::<ArchSharedInfo>() == 48);

/// The shared info page (`struct shared_info`, x86_64, 3136 bytes).
///
/// Its machine address is [`crate::StartInfo::shared_info`]. Xen allows the
/// size to grow within a page; guests must not depend on the total size.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct SharedInfo {
    /// Event and time state of vCPUs 0..32.
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// 2-level ABI pending bits, one per port; set by the hypervisor, cleared by the guest.
    pub evtchn_pending: [u64; 64],
    /// 2-level ABI mask bits, one per port; only the guest writes them.
    pub evtchn_mask: [u64; 64],
    /// Version counter of the wall clock, as [`VcpuTimeInfo::version`].
    pub wc_version: u32,
    /// Wall clock seconds since the Unix epoch at system time 0 (low 32 bits).
    pub wc_sec: u32,
    /// Wall clock nanoseconds.
    pub wc_nsec: u32,
    /// Wall clock seconds, high 32 bits.
    pub wc_sec_hi: u32,
    /// x86 state.
    pub arch: ArchSharedInfo,
}

const _: () = assert!(core::mem::size_of::<SharedInfo>() == 3136);
const _: () = assert!(core::mem::size_of::<SharedInfo>() <= crate::PAGE_SIZE);
const _: () = assert!(64 * 64 == NR_EVENT_CHANNELS_2L);
const _: () = assert!(core::mem::offset_of!(SharedInfo, arch) == 3088);
