//! The toolstack's [`Control`] over the real hypervisor: the domctl wrappers, foreign
//! `populate_physmap`, and a [`ForeignWindow`] in dom0's own address space for writing a new
//! domain's initial region (guest target only; the kernel binary's module).
//!
//! The window sits just past dom0's initial region, 2 MiB aligned, under the bootstrap L2
//! that maps the region (entries the builder leaves empty). Its L1 tables come from dom0's
//! frames that are mapped nowhere and stay for the next build.

use alloc::vec::Vec;

use dom0::builder::{Control, ForeignError};
use domain_builder::build::{BuildError, BuiltDomain, GuestMemory};
use hypercall_abi::arch::VcpuGuestContext;
use hypercall_abi::domctl::DomainInfo;
use hypercall_abi::errno::Errno;
use hypercall_abi::layout::HYPERVISOR_L4_FIRST_SLOT;
use hypercall_abi::sched::ShutdownReason;
use hypercall_abi::sysctl::PhysInfo;
use hypercall_abi::types::DomId;
use pv_guest::domctl;
use pv_guest::foreign::{populate_physmap_foreign, ForeignWindow};
use pv_guest::hypercall;
use pv_guest::mm::xen::{GuestMm, XenMmu};
use pv_guest::mm::{entry_span, table_index, MmError, ENTRIES, PAGE_SIZE};

/// Most pages the window maps at once (64 MiB): the largest initial region it can build.
/// A region is the kernel, the p2m (8 bytes a page) and a few pages more, so this covers
/// guests of many GiB; dom0's heap, which holds the whole p2m while building, is the
/// tighter limit.
const WINDOW_PAGES: usize = 16384;

/// The hypervisor, as the toolstack sees it.
pub struct XenControl {
    /// dom0's own memory (frames for the window's tables, its bootstrap tables).
    mm: Option<GuestMm>,
    /// Made on first use.
    window: Option<ForeignWindow>,
}

impl XenControl {
    /// Over dom0's memory layer, if it could be set up.
    pub fn new(mm: Option<GuestMm>) -> Self {
        XenControl { mm, window: None }
    }

    /// The window, made on first use.
    fn window(&mut self) -> Result<&mut ForeignWindow, MmError> {
        if self.window.is_none() {
            let mm = self
                .mm
                .as_ref()
                .ok_or(MmError::WrongState("dom0's memory layer is not available"))?;
            let span = entry_span(2);
            let region_end = mm.layout.virt_base + mm.layout.region_end_pfn * PAGE_SIZE;
            let base = region_end.next_multiple_of(span);
            // Up to the end of the 1 GiB the L2 covers.
            let room = ((base | (entry_span(3) - 1)) - base + 1) / PAGE_SIZE;
            let pages = WINDOW_PAGES.min(room as usize);
            let l2 = mm.boot_table_for(2, base).ok_or(MmError::WrongState(
                "no page table covers the foreign window",
            ))?;
            let table = mm
                .read_table(l2)
                .ok_or(MmError::WrongState("the foreign window's L2 is unreadable"))?;
            let first = table_index(base, 2);
            let last = first + pages.div_ceil(ENTRIES);
            if table
                .get(first..last)
                .is_none_or(|e| e.iter().any(|&e| e != 0))
            {
                return Err(MmError::WrongState("the foreign window's place is in use"));
            }
            self.window = Some(ForeignWindow::new(base, l2, pages)?);
        }
        self.window
            .as_mut()
            .ok_or(MmError::WrongState("no foreign window"))
    }
}

/// The builder's view of the window: pfn `i` of the new domain is slot `i`.
struct WindowMemory<'a>(&'a mut ForeignWindow);

impl GuestMemory for WindowMemory<'_> {
    fn write(&mut self, pfn: u64, offset: usize, bytes: &[u8]) -> Result<(), BuildError> {
        let slot = usize::try_from(pfn).map_err(|_| BuildError::GuestMemory { pfn })?;
        self.0
            .write(slot, offset, bytes)
            .ok_or(BuildError::GuestMemory { pfn })
    }

    fn zero(&mut self, pfn: u64) -> Result<(), BuildError> {
        let slot = usize::try_from(pfn).map_err(|_| BuildError::GuestMemory { pfn })?;
        self.0.zero(slot).ok_or(BuildError::GuestMemory { pfn })
    }

    /// The frames came from `populate_physmap`, which hands out scrubbed frames.
    fn frames_scrubbed(&self) -> bool {
        true
    }
}

impl Control for XenControl {
    fn physinfo(&mut self) -> Result<PhysInfo, Errno> {
        hypercall::physinfo()
    }

    fn domains(&mut self) -> Result<Vec<DomainInfo>, Errno> {
        domctl::domains().collect()
    }

    fn domain_info(&mut self, dom: u16) -> Result<DomainInfo, Errno> {
        domctl::domain_info(DomId(dom))
    }

    fn create_domain(
        &mut self,
        name: &str,
        max_vcpus: u32,
        max_pages: u64,
        max_evtchn_port: u32,
        max_grant_frames: u32,
        max_maptrack_frames: u32,
    ) -> Result<u16, Errno> {
        domctl::create_domain(name, max_vcpus, max_pages, max_evtchn_port, max_grant_frames, max_maptrack_frames).map(|d| d.0)
    }

    fn destroy_domain(&mut self, dom: u16) -> Result<(), Errno> {
        domctl::destroy_domain(DomId(dom))
    }

    fn pause_domain(&mut self, dom: u16) -> Result<(), Errno> {
        domctl::pause_domain(DomId(dom))
    }

    fn unpause_domain(&mut self, dom: u16) -> Result<(), Errno> {
        domctl::unpause_domain(DomId(dom))
    }

    fn shutdown_domain(&mut self, dom: u16, reason: ShutdownReason) -> Result<(), Errno> {
        domctl::remote_shutdown(DomId(dom), reason)
    }

    fn populate(&mut self, dom: u16, list: &mut [u64]) -> Result<u64, Errno> {
        populate_physmap_foreign(dom, list)
    }

    fn set_vcpu_context(
        &mut self,
        dom: u16,
        vcpu: u32,
        ctxt: &VcpuGuestContext,
    ) -> Result<(), Errno> {
        domctl::set_vcpu_context(DomId(dom), vcpu, ctxt)
    }

    fn hypervisor_l4_slots(&mut self) -> [u64; 16] {
        // Ours, copied: the hypervisor writes its own over them when it validates the new
        // L4, so any value would do; these are at least the right ones.
        let mut slots = [0; 16];
        if let Some(mm) = &self.mm {
            if let Some(l4) = mm.read_table(mm.boot_l4().mfn) {
                slots.copy_from_slice(&l4[HYPERVISOR_L4_FIRST_SLOT..HYPERVISOR_L4_FIRST_SLOT + 16]);
            }
        }
        slots
    }

    fn write_foreign(
        &mut self,
        dom: u16,
        mfns: &[u64],
        write: &mut dyn FnMut(&mut dyn GuestMemory) -> Result<BuiltDomain, BuildError>,
    ) -> Result<BuiltDomain, ForeignError> {
        self.window().map_err(ForeignError::Map)?;
        let (Some(mm), Some(window)) = (self.mm.as_mut(), self.window.as_mut()) else {
            return Err(ForeignError::Map(MmError::WrongState("no foreign window")));
        };
        let mut mmu = XenMmu;
        // A previous build that could not unmap: try again first.
        window.unmap(&mut mmu).map_err(ForeignError::Unmap)?;
        window
            .map(&mut mmu, &mut mm.table_frames(), dom, mfns)
            .map_err(ForeignError::Map)?;
        let built = write(&mut WindowMemory(window));
        window.unmap(&mut mmu).map_err(ForeignError::Unmap)?;
        built.map_err(ForeignError::Build)
    }
}
