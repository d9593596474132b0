//! Direct paging, as Xen's PV guests do it: guests write their own page tables in frames
//! they own, and every change is validated here so that no guest can map what it does not
//! own, write a page table, or touch the hypervisor's slots.
//!
//! An operation runs over an [`Mm`]: the frame table, the calling domain's state and the
//! machine services of [`MmMachine`]. The rules are split by responsibility:
//! - [`super::validate`]: what an entry may hold, and taking and dropping the references
//!   of entries, types and whole tables (Xen's `get_page_from_lNe`, `get_page_type`,
//!   `put_page_type`);
//! - [`super::ops`]: the operations the hypercalls expose (Xen's `mod_lN_entry`, pin,
//!   base pointers, `update_va_mapping`, reservations);
//! - [`super::teardown`]: giving back everything a dying domain holds.
//!
//! Nothing here recurses without bound: taking a table's type validates its entries, each
//! of which may take the type of a table one level down, and dropping works the same way,
//! so the depth is at most the four levels.
//!
//! ## Error numbers (as Xen 4.19's `xen/arch/x86/mm.c`, except where noted)
//! - A bad bit in a present entry (global, superpage, PWT/PCD above L1, bits 52..62, cache
//!   bits in an unprivileged L1 entry): `EINVAL` (`mod_lN_entry`, "Bad L%d flags").
//!   Deviation: Xen allows the global bit and bits 52..62 in L1 entries; we refuse them.
//! - An address above the machine's physical width (`mfn > max_mfn`): `EINVAL`, at every
//!   level. Deviation: Xen sends it to the MMIO path and answers `EPERM`.
//! - L1 entry to a frame that is not RAM: allowed without references for a privileged
//!   domain, unless the hypervisor keeps it ([`MmMachine::reserved_mmio`]); `EPERM`
//!   otherwise (`get_page_from_l1e`, "non-privileged attempt to map MMIO").
//! - L1 entry to RAM the domain does not own, or read-write to a frame that cannot take the
//!   writable type (a page table): `EBUSY` (`get_page_from_l1e`'s `could_not_pin`).
//! - With a page owner (`pt_update`'s `foreigndom`, Xen's `pg_owner`): an L1 entry must map
//!   a frame of the page owner instead (`EBUSY` otherwise, the caller's own frames
//!   included, as Xen); device memory is `EPERM` (the page owner's access counts); a page
//!   owner other than the caller needs a privileged caller (`EPERM`). Upper-level entries
//!   ignore the page owner: they reference the caller's own tables.
//! - L2..L4 entry to a frame not owned, not RAM, or of the wrong type (including a linear
//!   entry to another table of the same level): `EINVAL` (`get_page_and_type_from_mfn`);
//!   a failure inside the validation of the referenced table passes its own errno up.
//! - Linear entry (to the table itself) with RW: `EINVAL` (`get_lN_linear_pagetable`).
//! - Update of an L4 slot in 256..=271: `EINVAL` ("L4 update in Xen-private area").
#![forbid(unsafe_code)]

use super::page_info::{DomainMm, FrameTable};

/// What page-table management needs from the machine. The microkernel implements it over
/// the direct map, the frame allocator, the M2P and the CPU; host tests over a fake.
/// Methods take frame numbers the core has already checked (covered by the frame table
/// and RAM, unless said otherwise).
pub trait MmMachine {
    /// Reads entry `index` (0..512) of frame `mfn`.
    fn read_pte(&self, mfn: u64, index: usize) -> u64;
    /// Writes entry `index` (0..512) of frame `mfn`.
    fn write_pte(&mut self, mfn: u64, index: usize, val: u64);
    /// Fills frame `mfn` with zeroes.
    fn zero_frame(&mut self, mfn: u64);
    /// Copies frame `src` over frame `dst`.
    fn copy_frame(&mut self, dst: u64, src: u64);
    /// Copies `len` bytes from offset `src_off` of frame `src` to offset `dst_off` of frame
    /// `dst` (the core checked that both ranges stay inside their frame; the frames may be
    /// the same, the ranges may overlap).
    fn copy_bytes(&mut self, dst: u64, dst_off: usize, src: u64, src_off: usize, len: usize);
    /// Whether `mfn` (any value) is RAM. Fixed for the machine's life; true for every frame
    /// the hypervisor uses or hands out (whether or not the frame table covers it), false
    /// for holes and device memory, which a privileged domain may map.
    fn is_ram(&self, mfn: u64) -> bool;
    /// Whether non-RAM frame `mfn` is device memory the hypervisor keeps for itself, which
    /// not even a privileged domain may map (Xen's `iomem_deny_access` for dom0). Default:
    /// the x86 interrupt-controller window 0xFEC0_0000..0xFEF0_0000 (I/O APICs, HPET,
    /// local APIC, MSI addresses).
    fn reserved_mmio(&self, mfn: u64) -> bool {
        (0xfec00..0xfef00).contains(&mfn)
    }
    /// Highest frame number the machine's physical address width can name.
    fn max_mfn(&self) -> u64;
    /// The hypervisor's entry for L4 slot `slot` (256..=271), written into every guest L4.
    fn hypervisor_l4e(&self, slot: usize) -> u64;
    /// Sets `M2P[mfn] = pfn`.
    fn set_m2p(&mut self, mfn: u64, pfn: u64);
    /// Takes `2^order` machine-contiguous frames, aligned to their size, from the frame
    /// source: zeroed, covered by the frame table, free; the first. `None` when no such run
    /// is free.
    fn alloc_frames(&mut self, order: u32) -> Option<u64>;
    /// Gives frame `mfn` back to the frame source (scrubbing it there). The core flushes
    /// TLBs ([`MmMachine::flush_tlb`]) before the operation that released it returns.
    fn release_frame(&mut self, mfn: u64);
    /// Flushes every TLB entry that may translate a guest address, on every CPU that may
    /// hold one: a flush for a type change or a release must reach every domain that may
    /// map the frame (its owner, a privileged domain's foreign mappings, a grantee's grant
    /// mappings), so it reaches every CPU running any guest. After it, every TLB is clean
    /// ([`FrameTable::note_flush`]).
    fn flush_tlb(&mut self);
    /// Flushes the translation of this domain's guest address `va` (canonical, outside the
    /// hypervisor's slice) on every CPU running one of its vCPUs.
    fn invlpg(&mut self, va: u64);
    /// A flush the domain asked for (`MMUEXT_TLB_FLUSH_*`, `MMUEXT_INVLPG_*`, the flush
    /// flags of `update_va_mapping`): address `va` (`None`: every address) on the CPUs
    /// running those of its vCPUs in `vcpus` (a bit each). Not a clean point for
    /// [`FrameTable::note_flush`]: other domains' CPUs are not flushed.
    fn flush_guest(&mut self, va: Option<u64>, vcpus: u64);
    /// Loads `mfn` (a validated L4 of this domain) into CR3; flushes the TLB as a side effect.
    fn load_cr3(&mut self, mfn: u64);
    /// Writes back and invalidates the caches.
    fn wbinvd(&mut self);
}

/// One memory-management operation's view: the frame table, the domain it acts for, and
/// the machine.
///
/// **Machine contract.** Whoever builds one must, once the operation is over, charge the
/// releases it recorded for other owners: pop them with
/// [`FrameTable::pop_foreign_release`] and apply each to its owner's [`DomainMm`] with
/// [`DomainMm::charge_foreign_release`]. Only operations of a privileged domain (which may
/// hold foreign mappings) ever record any.
pub struct Mm<'x, 'f> {
    /// Every frame's accounting.
    pub frames: &'x mut FrameTable<'f>,
    /// The domain whose tables and frames are acted on (the caller).
    pub dom: &'x mut DomainMm,
    /// The machine.
    pub mach: &'x mut dyn MmMachine,
}

impl Mm<'_, '_> {
    /// Runs `f` then flushes TLBs if it released a frame: a released frame must not stay
    /// reachable through a stale translation once it can be handed out again.
    pub(super) fn settled<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let r = f(self);
        if self.frames.release_pending() {
            self.mach.flush_tlb();
            self.frames.note_flush();
        }
        r
    }

    /// Whether `mfn` is RAM. RAM the frame table does not cover (it should cover all) is
    /// still RAM: nobody owns it, so no entry may map it, not even a privileged domain's.
    pub(super) fn is_ram(&self, mfn: u64) -> bool {
        self.mach.is_ram(mfn)
    }

    /// Whether `mfn` is covered and owned by this domain.
    pub(super) fn owned(&self, mfn: u64) -> bool {
        self.frames.owned_by(mfn, self.dom.id())
    }
}
