//! Page-table update requests (`pt_update`, Xen's `mmu_update`), extended MMU operations (`mmuext_op`) and `update_va_mapping` flags.

use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// One request of the `pt_update` hypercall (Xen's `mmu_update` and its
/// `struct mmu_update`; this project calls the hypercall `pt_update`).
///
/// `ptr[2:0]` selects the command (`MMU_*`, see [`MMU_UPDATE_CMD_MASK`]); the
/// rest of `ptr` is a machine address. The hypercall takes
/// `(reqs, count, done_out, foreigndom)`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct MmuUpdate {
    /// Command in bits 2:0; machine address of the PTE (or frame) above.
    pub ptr: u64,
    /// New PTE contents (or, for `MMU_MACHPHYS_UPDATE`, the PFN).
    pub val: u64,
}

const _: () = assert!(core::mem::size_of::<MmuUpdate>() == 16);

/// Mask of the command bits in [`MmuUpdate::ptr`].
///
/// `xen.h` documents the command as `ptr[1:0]`, but `do_mmu_update` decodes
/// `ptr & (sizeof(l1_pgentry_t) - 1)`, that is `ptr[2:0]`: an entry pointer is
/// 8-byte aligned, so a misaligned pointer reads as a command (4..=7 are
/// unknown and refused with `-ENOSYS`).
pub const MMU_UPDATE_CMD_MASK: u64 = 7;
/// Checked `*ptr = val`; `ptr` is the machine address of a PTE.
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// `M2P[ptr >> PAGE_SHIFT] = val`: set the PFN of a machine frame.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// As `MMU_NORMAL_PT_UPDATE`, keeping the A/D bits already in the PTE.
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;
/// As `MMU_NORMAL_PT_UPDATE`, but `val` is not translated through the foreign domain.
pub const MMU_PT_UPDATE_NO_TRANSLATE: u64 = 3;

/// Set in the `count` argument of `pt_update` and `mmuext_op` when the
/// hypervisor continues a preempted batch (Xen's `MMU_UPDATE_PREEMPTED`,
/// `~(~0U >> 1)` in `asm/hypercall.h`): the rest of `count` is what remains, and
/// the number already done is read back from `*done_out`.
pub const MMU_UPDATE_PREEMPTED: u32 = 1 << 31;

/// `pt_update`'s `foreigndom`: bits 15:0 name the domain whose frames the
/// entries map (`DOMID_SELF` for the caller); bits 31:16, when non-zero, are
/// one more than the id of the domain that owns the page tables.
pub const FOREIGNDOM_PT_OWNER_SHIFT: u32 = 16;

impl MmuUpdate {
    /// The command (`MMU_*`) in `ptr[2:0]`.
    pub const fn cmd(&self) -> u64 {
        self.ptr & MMU_UPDATE_CMD_MASK
    }

    /// `ptr` without the command bits.
    pub const fn addr(&self) -> u64 {
        self.ptr & !MMU_UPDATE_CMD_MASK
    }
}

/// One request of the `mmuext_op` hypercall (`struct mmuext_op`, 24 bytes).
///
/// `arg1` is `mfn` or `linear_addr` and `arg2` is `nr_ents`, `vcpumask` or
/// `src_mfn`, depending on `cmd` (see [`MmuextCmd`]).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct MmuextOp {
    /// An [`MmuextCmd`] value.
    pub cmd: u32,
    /// Padding (implicit in C), zero.
    pub _pad: u32,
    /// First argument: `mfn` or `linear_addr`.
    pub arg1: u64,
    /// Second argument: `nr_ents`, `vcpumask` (guest pointer) or `src_mfn`.
    pub arg2: u64,
}

const _: () = assert!(core::mem::size_of::<MmuextOp>() == 24);

/// `mmuext_op` commands (`MMUEXT_*`). Number 14 is unassigned.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MmuextCmd {
    /// Pin frame `arg1` (mfn) as an L1 table.
    PinL1Table = 0,
    /// Pin frame `arg1` as an L2 table.
    PinL2Table = 1,
    /// Pin frame `arg1` as an L3 table.
    PinL3Table = 2,
    /// Pin frame `arg1` as an L4 table.
    PinL4Table = 3,
    /// Unpin page-table frame `arg1`, whatever its level.
    UnpinTable = 4,
    /// Install frame `arg1` as the kernel page-table base.
    NewBaseptr = 5,
    /// Flush the local TLB.
    TlbFlushLocal = 6,
    /// Flush `arg1` (linear address) from the local TLB.
    InvlpgLocal = 7,
    /// Flush the TLBs of the vCPUs in the bitmap at `arg2`.
    TlbFlushMulti = 8,
    /// Flush `arg1` from the TLBs of the vCPUs in the bitmap at `arg2`.
    InvlpgMulti = 9,
    /// Flush all vCPUs' TLBs.
    TlbFlushAll = 10,
    /// Flush `arg1` from all vCPUs' TLBs.
    InvlpgAll = 11,
    /// Write back and flush the cache.
    FlushCache = 12,
    /// Set the LDT: base `arg1` (page-aligned linear address), `arg2` entries.
    SetLdt = 13,
    /// Install frame `arg1` as the user page-table base (x86_64).
    NewUserBaseptr = 15,
    /// Zero frame `arg1`.
    ClearPage = 16,
    /// Copy frame `arg2` (src_mfn) to frame `arg1`.
    CopyPage = 17,
    /// Write back and flush caches on all CPUs.
    FlushCacheGlobal = 18,
    /// Mark the superpage headed by frame `arg1`.
    MarkSuper = 19,
    /// Unmark the superpage headed by frame `arg1`.
    UnmarkSuper = 20,
}

impl MmuextCmd {
    /// Every command, in number order.
    pub const ALL: [MmuextCmd; 20] = [
        MmuextCmd::PinL1Table,
        MmuextCmd::PinL2Table,
        MmuextCmd::PinL3Table,
        MmuextCmd::PinL4Table,
        MmuextCmd::UnpinTable,
        MmuextCmd::NewBaseptr,
        MmuextCmd::TlbFlushLocal,
        MmuextCmd::InvlpgLocal,
        MmuextCmd::TlbFlushMulti,
        MmuextCmd::InvlpgMulti,
        MmuextCmd::TlbFlushAll,
        MmuextCmd::InvlpgAll,
        MmuextCmd::FlushCache,
        MmuextCmd::SetLdt,
        MmuextCmd::NewUserBaseptr,
        MmuextCmd::ClearPage,
        MmuextCmd::CopyPage,
        MmuextCmd::FlushCacheGlobal,
        MmuextCmd::MarkSuper,
        MmuextCmd::UnmarkSuper,
    ];
}

/// An `mmuext_op` command number that Xen does not define.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnknownMmuextCmd(pub u32);

impl fmt::Display for UnknownMmuextCmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown mmuext_op command {}", self.0)
    }
}

impl core::error::Error for UnknownMmuextCmd {}

impl TryFrom<u32> for MmuextCmd {
    type Error = UnknownMmuextCmd;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Ok(match value {
            0 => MmuextCmd::PinL1Table,
            1 => MmuextCmd::PinL2Table,
            2 => MmuextCmd::PinL3Table,
            3 => MmuextCmd::PinL4Table,
            4 => MmuextCmd::UnpinTable,
            5 => MmuextCmd::NewBaseptr,
            6 => MmuextCmd::TlbFlushLocal,
            7 => MmuextCmd::InvlpgLocal,
            8 => MmuextCmd::TlbFlushMulti,
            9 => MmuextCmd::InvlpgMulti,
            10 => MmuextCmd::TlbFlushAll,
            11 => MmuextCmd::InvlpgAll,
            12 => MmuextCmd::FlushCache,
            13 => MmuextCmd::SetLdt,
            15 => MmuextCmd::NewUserBaseptr,
            16 => MmuextCmd::ClearPage,
            17 => MmuextCmd::CopyPage,
            18 => MmuextCmd::FlushCacheGlobal,
            19 => MmuextCmd::MarkSuper,
            20 => MmuextCmd::UnmarkSuper,
            _ => return Err(UnknownMmuextCmd(value)),
        })
    }
}

/// `MMUEXT_PIN_L1_TABLE`.
pub const MMUEXT_PIN_L1_TABLE: u32 = MmuextCmd::PinL1Table as u32;
/// `MMUEXT_PIN_L2_TABLE`.
pub const MMUEXT_PIN_L2_TABLE: u32 = MmuextCmd::PinL2Table as u32;
/// `MMUEXT_PIN_L3_TABLE`.
pub const MMUEXT_PIN_L3_TABLE: u32 = MmuextCmd::PinL3Table as u32;
/// `MMUEXT_PIN_L4_TABLE`.
pub const MMUEXT_PIN_L4_TABLE: u32 = MmuextCmd::PinL4Table as u32;
/// `MMUEXT_UNPIN_TABLE`.
pub const MMUEXT_UNPIN_TABLE: u32 = MmuextCmd::UnpinTable as u32;
/// `MMUEXT_NEW_BASEPTR`.
pub const MMUEXT_NEW_BASEPTR: u32 = MmuextCmd::NewBaseptr as u32;
/// `MMUEXT_TLB_FLUSH_LOCAL`.
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = MmuextCmd::TlbFlushLocal as u32;
/// `MMUEXT_INVLPG_LOCAL`.
pub const MMUEXT_INVLPG_LOCAL: u32 = MmuextCmd::InvlpgLocal as u32;
/// `MMUEXT_TLB_FLUSH_MULTI`.
pub const MMUEXT_TLB_FLUSH_MULTI: u32 = MmuextCmd::TlbFlushMulti as u32;
/// `MMUEXT_INVLPG_MULTI`.
pub const MMUEXT_INVLPG_MULTI: u32 = MmuextCmd::InvlpgMulti as u32;
/// `MMUEXT_TLB_FLUSH_ALL`.
pub const MMUEXT_TLB_FLUSH_ALL: u32 = MmuextCmd::TlbFlushAll as u32;
/// `MMUEXT_INVLPG_ALL`.
pub const MMUEXT_INVLPG_ALL: u32 = MmuextCmd::InvlpgAll as u32;
/// `MMUEXT_FLUSH_CACHE`.
pub const MMUEXT_FLUSH_CACHE: u32 = MmuextCmd::FlushCache as u32;
/// `MMUEXT_SET_LDT`.
pub const MMUEXT_SET_LDT: u32 = MmuextCmd::SetLdt as u32;
/// `MMUEXT_NEW_USER_BASEPTR`.
pub const MMUEXT_NEW_USER_BASEPTR: u32 = MmuextCmd::NewUserBaseptr as u32;
/// `MMUEXT_CLEAR_PAGE`.
pub const MMUEXT_CLEAR_PAGE: u32 = MmuextCmd::ClearPage as u32;
/// `MMUEXT_COPY_PAGE`.
pub const MMUEXT_COPY_PAGE: u32 = MmuextCmd::CopyPage as u32;
/// `MMUEXT_FLUSH_CACHE_GLOBAL`.
pub const MMUEXT_FLUSH_CACHE_GLOBAL: u32 = MmuextCmd::FlushCacheGlobal as u32;
/// `MMUEXT_MARK_SUPER`.
pub const MMUEXT_MARK_SUPER: u32 = MmuextCmd::MarkSuper as u32;
/// `MMUEXT_UNMARK_SUPER`.
pub const MMUEXT_UNMARK_SUPER: u32 = MmuextCmd::UnmarkSuper as u32;

/// `update_va_mapping` flags: no TLB flush.
pub const UVMF_NONE: u64 = 0;
/// Flush the entire TLB(s).
pub const UVMF_TLB_FLUSH: u64 = 1;
/// Flush only the one entry.
pub const UVMF_INVLPG: u64 = 2;
/// Mask of the flush type (`UVMF_NONE`, `UVMF_TLB_FLUSH`, `UVMF_INVLPG`).
pub const UVMF_FLUSHTYPE_MASK: u64 = 3;
/// Flush a subset of TLBs: OR in a pointer to a vCPU bitmap.
pub const UVMF_MULTI: u64 = 0;
/// Flush the local TLB only (`UVMF_MULTI` with a null bitmap).
pub const UVMF_LOCAL: u64 = 0;
/// Flush all vCPUs' TLBs.
pub const UVMF_ALL: u64 = 1 << 2;

/// One entry of a `multicall` batch (`struct multicall_entry` in `xen.h`, 64
/// bytes on x86_64): the hypercall number, where its result goes, and up to six
/// arguments (x86_64 hypercalls use the first five).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct MulticallEntry {
    /// Hypercall number.
    pub op: u64,
    /// Written by the hypervisor: the call's return value.
    pub result: u64,
    /// Arguments, in register order (rdi, rsi, rdx, r10, r8, r9).
    pub args: [u64; 6],
}

const _: () = assert!(core::mem::size_of::<MulticallEntry>() == 64);
