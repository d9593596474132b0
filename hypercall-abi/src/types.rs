//! Id newtypes (domains, frames, ports, grants, vCPUs) and the reserved values Xen gives them.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A domain id (`domid_t`, 16 bits).
///
/// Ids at or above [`DomId::FIRST_RESERVED`] name something other than an
/// ordinary domain (`xen.h`).
#[repr(transparent)]
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
pub struct DomId(pub u16);

/// `DOMID_FIRST_RESERVED`: ids from here up cannot be ordinary domains.
pub const DOMID_FIRST_RESERVED: u16 = 0x7FF0;
/// `DOMID_SELF`: the calling domain.
pub const DOMID_SELF: u16 = 0x7FF0;
/// `DOMID_IO`: restricts page-table updates to I/O memory (foreign-domain argument).
pub const DOMID_IO: u16 = 0x7FF1;
/// `DOMID_XEN`: lets a privileged domain map restricted parts of the hypervisor heap.
pub const DOMID_XEN: u16 = 0x7FF2;
/// `DOMID_COW`: owner of shared (copy-on-write) pages.
pub const DOMID_COW: u16 = 0x7FF3;
/// `DOMID_INVALID`: owner of pages whose owner is unknown.
pub const DOMID_INVALID: u16 = 0x7FF4;
/// `DOMID_IDLE`: the idle domain.
pub const DOMID_IDLE: u16 = 0x7FFF;
/// `DOMID_MASK`: mask of the bits a valid domain id may use.
pub const DOMID_MASK: u16 = 0x7FFF;

impl DomId {
    /// The first domain (dom0, the initial control domain).
    pub const DOM0: DomId = DomId(0);
    /// `DOMID_FIRST_RESERVED` (0x7FF0): ids from here up are not ordinary domains.
    pub const FIRST_RESERVED: DomId = DomId(DOMID_FIRST_RESERVED);
    /// `DOMID_SELF` (0x7FF0): the calling domain.
    pub const SELF: DomId = DomId(DOMID_SELF);
    /// `DOMID_IO` (0x7FF1): I/O memory owner, for foreign-domain arguments.
    pub const IO: DomId = DomId(DOMID_IO);
    /// `DOMID_XEN` (0x7FF2): the hypervisor as a page owner.
    pub const XEN: DomId = DomId(DOMID_XEN);
    /// `DOMID_COW` (0x7FF3): owner of shared copy-on-write pages.
    pub const COW: DomId = DomId(DOMID_COW);
    /// `DOMID_INVALID` (0x7FF4): unknown owner.
    pub const INVALID: DomId = DomId(DOMID_INVALID);
    /// `DOMID_IDLE` (0x7FFF): the idle domain.
    pub const IDLE: DomId = DomId(DOMID_IDLE);

    /// Whether this id is one of the reserved values rather than an ordinary domain.
    pub const fn is_reserved(self) -> bool {
        self.0 >= DOMID_FIRST_RESERVED
    }
}

/// A machine frame number: a host physical address shifted right by
/// [`crate::PAGE_SHIFT`] (`xen_pfn_t` when it names machine memory).
#[repr(transparent)]
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
pub struct Mfn(pub u64);

impl Mfn {
    /// [`INVALID_MFN`] as an `Mfn`.
    pub const INVALID: Mfn = Mfn(INVALID_MFN);

    /// The machine address of the first byte of this frame.
    pub const fn addr(self) -> u64 {
        self.0 << crate::PAGE_SHIFT
    }
}

/// A pseudo-physical frame number: a guest's own view of its memory, which
/// the P2M list translates to [`Mfn`]s.
#[repr(transparent)]
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
pub struct Pfn(pub u64);

impl Pfn {
    /// The pseudo-physical address of the first byte of this frame.
    pub const fn addr(self) -> u64 {
        self.0 << crate::PAGE_SHIFT
    }
}

/// An event channel port (`evtchn_port_t`, 32 bits).
#[repr(transparent)]
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
pub struct Port(pub u32);

/// A grant reference: an index into the granting domain's grant table (`grant_ref_t`, 32 bits).
#[repr(transparent)]
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
pub struct GrantRef(pub u32);

/// A virtual CPU number within a domain (32 bits, as `vcpu_op` takes it).
#[repr(transparent)]
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
pub struct VcpuId(pub u32);

/// `INVALID_MFN`: no machine frame (all ones).
pub const INVALID_MFN: u64 = !0;

/// `INVALID_M2P_ENTRY`: the M2P entry of a machine frame that belongs to no guest pseudo-physical frame.
pub const INVALID_M2P_ENTRY: u64 = !0;

/// `SHARED_M2P_ENTRY`: the M2P entry of a machine frame shared between domains.
pub const SHARED_M2P_ENTRY: u64 = !0 - 1;
