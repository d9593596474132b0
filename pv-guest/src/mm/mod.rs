//! The guest's memory layer: its pseudo-physical view, a frame allocator, batched page-table
//! updates and whole address spaces built through `pt_update` (Xen's direct paging).
//!
//! The portable parts are host-tested and need no hypervisor:
//! - [`phys`]: the initial region's layout (which pfns start_info's tables, stack and padding
//!   occupy) and the p2m (pfn → mfn);
//! - [`frames`]: an allocator over the free pseudo-physical frames;
//! - [`queue`]: a queue of [`MmuUpdate`]s flushed in one `pt_update` batch, whose errors
//!   name the failing request;
//! - [`space`]: the [`AddressSpace`] builder (allocate and clear tables, fill them while they
//!   are plain frames, pin bottom-up, switch, tear down top-down).
//!
//! They talk to the hypervisor through the [`Mmu`] trait; [`xen`] (guest target only) is the
//! thin implementation over the hypercalls, together with the other memory hypercalls
//! (`update_va_mapping`, `multicall`, `memory_op`, `vm_assist`), the read-only M2P, and the
//! emulated `mov from cr3` and forced-emulation `cpuid`.
//!
//! Vocabulary: a *pfn* is one of the guest's own pseudo-physical frame numbers, an *mfn* a
//! machine frame number. Page-table entries hold machine addresses.

use core::fmt;

use hypercall_abi::errno::Errno;
use hypercall_abi::layout::pte;
use hypercall_abi::mmu::{MmuUpdate, MmuextOp};
use hypercall_abi::types::{Mfn, Pfn};

#[cfg(test)]
mod fake;
pub mod frames;
pub mod phys;
pub mod queue;
pub mod space;

#[cfg(target_os = "none")]
pub mod xen;

pub use frames::FrameAllocator;
pub use phys::{P2m, PhysLayout};
pub use queue::UpdateQueue;
pub use space::AddressSpace;

/// Bytes in a page.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;
/// Entries in a page table of any level.
pub const ENTRIES: usize = 512;

/// Flags of an entry that points at a lower-level table (Xen's `L[234]_PROT` for a 64-bit PV
/// kernel, which runs in ring 3: hence USER). Write permission is decided at the leaf.
pub const TABLE_FLAGS: u64 = pte::PRESENT | pte::RW | pte::USER | pte::ACCESSED;
/// Flags of a writable leaf mapping.
pub const DATA_RW_FLAGS: u64 = pte::PRESENT | pte::RW | pte::USER | pte::ACCESSED | pte::DIRTY;
/// Flags of a read-only leaf mapping (how page-table frames are mapped).
pub const DATA_RO_FLAGS: u64 = pte::PRESENT | pte::USER | pte::ACCESSED;

/// Bits of the virtual address that index the table at `level` (1..=4).
pub const fn level_shift(level: u8) -> u32 {
    PAGE_SHIFT + 9 * (level as u32 - 1)
}

/// Index of `va`'s entry in its table at `level` (1..=4).
pub const fn table_index(va: u64, level: u8) -> usize {
    ((va >> level_shift(level)) & 511) as usize
}

/// Bytes mapped by one entry at `level`: 4 KiB, 2 MiB, 1 GiB, 512 GiB.
pub const fn entry_span(level: u8) -> u64 {
    1 << level_shift(level)
}

/// `va` sign-extended from bit 47: the canonical form of a 48-bit address.
pub const fn canonical(va: u64) -> u64 {
    (((va << 16) as i64) >> 16) as u64
}

/// Machine frame of an entry's address bits.
pub const fn entry_mfn(entry: u64) -> Mfn {
    Mfn((entry & pte::ADDR_MASK) >> PAGE_SHIFT)
}

/// A page-table entry mapping `mfn` with `flags`.
pub const fn make_entry(mfn: Mfn, flags: u64) -> u64 {
    ((mfn.0 << PAGE_SHIFT) & pte::ADDR_MASK) | flags
}

/// Machine address of entry `index` in table frame `table`: the `ptr` of a `pt_update`
/// request (command `MMU_NORMAL_PT_UPDATE` = 0 in the low bits).
pub const fn entry_maddr(table: Mfn, index: usize) -> u64 {
    (table.0 << PAGE_SHIFT) + (index as u64) * 8
}

/// A frame by both its names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frame {
    /// The guest's pseudo-physical frame number.
    pub pfn: Pfn,
    /// The machine frame behind it.
    pub mfn: Mfn,
}

/// A batch the hypervisor stopped: how many of its requests it completed and why the next
/// one failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchFailure {
    /// Requests completed (and applied) before the failing one.
    pub done: usize,
    /// The hypervisor's error for request `done`.
    pub errno: Errno,
}

/// What the memory layer needs from the hypervisor: batched page-table updates and extended
/// MMU operations. [`xen::XenMmu`] is the real one; host tests use fakes.
pub trait Mmu {
    /// `pt_update(reqs)` on the calling domain's tables; `Err` names how many were done.
    fn pt_update(&mut self, reqs: &[MmuUpdate]) -> Result<(), BatchFailure>;
    /// `mmuext_op(ops)`; `Err` names how many were done.
    fn mmuext(&mut self, ops: &[MmuextOp]) -> Result<(), BatchFailure>;
}

/// Where frames for page tables come from and go back to.
pub trait FrameSource {
    /// A free frame that is mapped nowhere (so it may become a page table).
    fn alloc_frame(&mut self) -> Option<Frame>;
    /// Gives back a frame from [`FrameSource::alloc_frame`].
    fn free_frame(&mut self, frame: Frame);
}

/// Errors of the memory layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmError {
    /// A `pt_update` batch stopped: `request` (index `index` of the batch, `applied` done
    /// before it) failed with `errno`.
    Update {
        /// The failing request.
        request: MmuUpdate,
        /// Its index in the batch sent.
        index: usize,
        /// Requests of the batch applied before it.
        applied: usize,
        /// The hypervisor's error.
        errno: Errno,
    },
    /// An `mmuext_op` batch stopped at `op` (index `index`).
    Ext {
        /// The failing operation.
        op: MmuextOp,
        /// Its index in the batch sent.
        index: usize,
        /// The hypervisor's error.
        errno: Errno,
    },
    /// No free frame left.
    OutOfFrames,
    /// The address is not canonical, lies in the hypervisor's slots, or is not page aligned.
    BadAddress(u64),
    /// The address lies in a top-level slot shared with another address space.
    SharedSlot(u64),
    /// A page-table frame of this address space was to be mapped writable.
    TableMappedWritable(Mfn),
    /// The operation does not fit the address space's state (e.g. tearing down while active).
    WrongState(&'static str),
}

impl fmt::Display for MmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MmError::Update {
                request,
                index,
                applied,
                errno,
            } => write!(
                f,
                "pt_update request {index} (ptr {:#x} val {:#x}) failed with -{} after {applied} applied",
                request.ptr,
                request.val,
                errno.name()
            ),
            MmError::Ext { op, index, errno } => write!(
                f,
                "mmuext_op {index} (cmd {} arg1 {:#x}) failed with -{}",
                op.cmd,
                op.arg1,
                errno.name()
            ),
            MmError::OutOfFrames => write!(f, "no free frames"),
            MmError::BadAddress(va) => write!(f, "{va:#x} is not a mappable page address"),
            MmError::SharedSlot(va) => {
                write!(f, "{va:#x} lies in a top-level slot shared with another space")
            }
            MmError::TableMappedWritable(mfn) => {
                write!(f, "mfn {:#x} is a page table and cannot be mapped writable", mfn.0)
            }
            MmError::WrongState(why) => write!(f, "{why}"),
        }
    }
}

impl MmError {
    /// The hypervisor's errno, when the error came from a hypercall.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            MmError::Update { errno, .. } | MmError::Ext { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// Runs `ops` in one `mmuext_op` call, naming the failing op on error.
pub fn run_ext(mmu: &mut impl Mmu, ops: &[MmuextOp]) -> Result<(), MmError> {
    if ops.is_empty() {
        return Ok(());
    }
    mmu.mmuext(ops).map_err(|failure| {
        let index = failure.done.min(ops.len() - 1);
        MmError::Ext {
            op: ops[index],
            index,
            errno: failure.errno,
        }
    })
}

/// An `mmuext_op` with `cmd` and `arg1` (the common one-argument form).
pub const fn ext_op(cmd: u32, arg1: u64) -> MmuextOp {
    MmuextOp {
        cmd,
        _pad: 0,
        arg1,
        arg2: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_and_spans() {
        let va = 0xffff_ffff_8020_3000u64;
        assert_eq!(table_index(va, 4), 511);
        assert_eq!(table_index(va, 3), 510);
        assert_eq!(table_index(va, 2), 1);
        assert_eq!(table_index(va, 1), 3);
        assert_eq!(entry_span(1), 4096);
        assert_eq!(entry_span(2), 2 << 20);
        assert_eq!(entry_span(3), 1 << 30);
        assert_eq!(entry_span(4), 1 << 39);
        assert_eq!(canonical(0x0000_8000_0000_0000), 0xffff_8000_0000_0000);
        assert_eq!(canonical(0x0000_7fff_ffff_f000), 0x0000_7fff_ffff_f000);
    }

    #[test]
    fn entries() {
        let e = make_entry(Mfn(0x1234), DATA_RW_FLAGS);
        assert_eq!(entry_mfn(e), Mfn(0x1234));
        assert_eq!(e & 0xfff, DATA_RW_FLAGS);
        assert_eq!(entry_maddr(Mfn(2), 3), 0x2018);
        // An mfn past the 52-bit address space is cut to the address bits.
        assert_eq!(
            entry_mfn(make_entry(Mfn(u64::MAX), 0)),
            Mfn(pte::ADDR_MASK >> 12)
        );
    }

    #[test]
    fn errors_name_the_request() {
        let err = MmError::Update {
            request: MmuUpdate {
                ptr: 0x5008,
                val: 0x7003,
            },
            index: 1,
            applied: 1,
            errno: Errno::EINVAL,
        };
        let text = alloc::format!("{err}");
        assert!(text.contains("request 1"), "{text}");
        assert!(text.contains("0x5008"), "{text}");
        assert!(text.contains("EINVAL"), "{text}");
        assert_eq!(err.errno(), Some(Errno::EINVAL));
        assert_eq!(MmError::OutOfFrames.errno(), None);
    }
}
