//! The toolstack's [`Control`] over the real hypervisor: the domctl wrappers, foreign
//! `populate_physmap`, and a [`ForeignWindow`] in dom0's own address space for writing a new
//! domain's initial region (guest target only; the kernel binary's module).
//!
//! The window sits just past dom0's initial region, 2 MiB aligned, under the bootstrap L2
//! that maps the region (entries the builder leaves empty). Its L1 tables come from dom0's
//! frames that are mapped nowhere and stay for the next build.
//!
//! It also holds the console back-end's machine half: the guests' console rings, each
//! mapped for the life of its domain in a second window (one slot per guest, the 8 MiB
//! after the build window), dom0's ends of each guest's event channels, and the
//! [`Consoles`] served; destroying a domain drains its ring one last time, unmaps it and
//! closes dom0's ports before the hypervisor destroys it.
//!
//! And the store service's machine half: each guest's store ring page, mapped for the life
//! of its domain in a slot of the same ring window, under a [`StoreService`] (the portable
//! half); destroying a domain releases it from the store, removes its home, and unmaps the
//! page.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use dom0::builder::{Control, DomainChannels, ForeignError};
use dom0::console::{Consoles, RingPage};
use dom0::split::{Device, MapId, PortSource, PortTable, RingChannels, RingSource, SplitMachine};
use dom0::xenstore::StoreService;
use xenbus::ring::SharedMem;
use domain_builder::build::{BuildError, BuiltDomain, GuestMemory};
use hypercall_abi::arch::VcpuGuestContext;
use hypercall_abi::domctl::DomainInfo;
use hypercall_abi::errno::Errno;
use hypercall_abi::layout::HYPERVISOR_L4_FIRST_SLOT;
use hypercall_abi::sched::ShutdownReason;
use hypercall_abi::sysctl::PhysInfo;
use hypercall_abi::types::{DomId, DOMID_SELF};
use pv_guest::domctl;
use pv_guest::events;
use pv_guest::foreign::{populate_physmap_foreign, ForeignWindow};
use pv_guest::hypercall;
use pv_guest::mm::xen::{GuestMm, XenMmu};
use pv_guest::shared_page::SharedPage;
use pv_guest::mm::{entry_span, table_index, MmError, ENTRIES, PAGE_SIZE};

/// Most pages the window maps at once (256 MiB): the largest initial region it can build.
/// A region is the kernel (Debian's Linux: 62 MiB from its VIRT_BASE), its modules, the
/// p2m (8 bytes a page) and a few pages more, so this covers guests of many GiB; dom0's
/// heap, which holds the whole p2m while building, is the tighter limit.
const WINDOW_PAGES: usize = 65536;

/// Most pages dom0's heap grows by (256 MiB), after the ring window: room for an unpacked
/// kernel (Debian's: 51 MiB) while it is built.
const HEAP_WINDOW_PAGES: usize = 65536;

/// Slots of the ring window: two per guest (console and store rings), so 1024 guests
/// served at once (8 MiB of address space; `bench-create` makes up to 1000 domains). L1 tables are made only up
/// to the highest slot used.
const RING_SLOTS: usize = 4 * ENTRIES;

/// Slots of the device window (8 MiB, after the heap window): the machine devices'
/// registers and the DMA pool, mapped for good.
const DEVICE_SLOTS: usize = 4 * ENTRIES;

/// A guest's console ring page, mapped in the ring window (its channel's page).
pub struct MappedRing(SharedPage);

impl RingPage for MappedRing {
    fn read(&self, offset: usize, buf: &mut [u8]) {
        self.0.read_bytes(offset, buf);
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) {
        self.0.write_bytes(offset, bytes);
    }
}

/// The hypervisor, as the toolstack sees it.
pub struct XenControl {
    /// dom0's own memory (frames for the window's tables, its bootstrap tables).
    mm: Option<GuestMm>,
    /// Made on first use.
    window: Option<ForeignWindow>,
    /// The console rings' window, made on first use.
    rings: Option<ForeignWindow>,
    /// The window of the heap's added memory, made on first use, and its pages mapped.
    heap: Option<ForeignWindow>,
    heap_pages: usize,
    /// The device window, made on first use, and its slots used so far.
    devices: Option<ForeignWindow>,
    device_pages: usize,
    /// Which domain each ring slot maps (`RING_SLOTS` of them).
    ring_slots: Vec<Option<u16>>,
    /// Ring slots holding a grant mapping (a back-end's view of a front end's ring):
    /// the granting domain and the mapping's handle. Unmapped with the grant operation.
    grant_slots: BTreeMap<usize, (u16, u32)>,
    /// The block back-end and its virtual disks.
    pub blk: crate::blk::Vbds,
    /// The network back end, its switch and its vifs.
    pub net: crate::net::Vifs,
    /// The back-ends' dispatch table: each port dom0 bound to a guest's device (console,
    /// store ring, virtual disk) and the device it serves. Every such port runs the one
    /// handler `on_device`, which notes the port; the loop asks here whose it is.
    ports: PortTable,
    /// The channels of the console and store rings (their pages lent to the services).
    ring_channels: RingChannels<SharedPage>,
    /// dom0's ports bound to each guest's channels by the builder (closed with the guest
    /// if no channel took them).
    bound: BTreeMap<u16, Vec<u32>>,
    /// The consoles served.
    pub consoles: Consoles<MappedRing>,
    /// Runs on an event from any device a back-end serves.
    on_device: events::PortHandler,
    /// The store, dom0's connection to it and the guests' rings.
    pub store: StoreService<SharedPage>,
}

impl XenControl {
    /// Over dom0's memory layer, if it could be set up; `on_device` runs on an event from
    /// any device served (with dom0's port).
    pub fn new(mm: Option<GuestMm>, on_device: events::PortHandler) -> Self {
        XenControl {
            mm,
            window: None,
            rings: None,
            heap: None,
            heap_pages: 0,
            devices: None,
            device_pages: 0,
            ring_slots: alloc::vec![None; RING_SLOTS],
            grant_slots: BTreeMap::new(),
            blk: crate::blk::Vbds::default(),
            net: crate::net::Vifs::default(),
            ports: PortTable::default(),
            ring_channels: RingChannels::default(),
            bound: BTreeMap::new(),
            consoles: Consoles::default(),
            on_device,
            store: {
                let mut s = StoreService::new();
                s.set_memory_probe(store_memory_low);
                s
            },
        }
    }

    /// The machine frame of dom0's page at `va` (in its initial region or heap).
    pub fn frame_of(&self, va: u64) -> Option<u64> {
        let mm = self.mm.as_ref()?;
        mm.layout.pfn_of(va).and_then(|pfn| mm.p2m.mfn(pfn)).map(|m| m.0)
    }

    /// Where the build window goes: its base, its pages and the L2 covering it.
    fn build_window_place(&self) -> Result<(u64, usize), MmError> {
        let mm = self
            .mm
            .as_ref()
            .ok_or(MmError::WrongState("dom0's memory layer is not available"))?;
        let span = entry_span(2);
        let region_end = mm.layout.virt_base + mm.layout.region_end_pfn * PAGE_SIZE;
        let base = region_end.next_multiple_of(span);
        // Up to the end of the 1 GiB the L2 covers.
        let room = ((base | (entry_span(3) - 1)) - base + 1) / PAGE_SIZE;
        Ok((base, WINDOW_PAGES.min(room as usize)))
    }

    /// A window of `pages` at `base` whose L2 entries are free.
    fn new_window(&self, base: u64, pages: usize) -> Result<ForeignWindow, MmError> {
        let mm = self
            .mm
            .as_ref()
            .ok_or(MmError::WrongState("dom0's memory layer is not available"))?;
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
        ForeignWindow::new(base, l2, pages)
    }

    /// The ring window (the 2 MiB after the build window), made on first use.
    fn ring_window(&mut self) -> Result<&mut ForeignWindow, MmError> {
        if self.rings.is_none() {
            let (ring_base, _) = self.ring_and_heap_bases()?;
            self.rings = Some(self.new_window(ring_base, RING_SLOTS)?);
        }
        self.rings
            .as_mut()
            .ok_or(MmError::WrongState("no ring window"))
    }

    /// Where the ring window starts and where the heap window starts after it.
    fn ring_and_heap_bases(&self) -> Result<(u64, u64), MmError> {
        let (base, pages) = self.build_window_place()?;
        let ring_base = base + (pages as u64 * PAGE_SIZE).next_multiple_of(entry_span(2));
        let heap_base = ring_base + (RING_SLOTS as u64 * PAGE_SIZE).next_multiple_of(entry_span(2));
        Ok((ring_base, heap_base))
    }

    /// Grows the heap so that it can hold a block of `bytes` (with some room besides): maps
    /// more of dom0's free frames after the memory already added (`heap::add_memory`). The
    /// frames stay heap for good; later calls reuse them.
    fn grow_heap_by(&mut self, bytes: usize) -> Result<(), Errno> {
        let want = bytes
            .checked_add(64 * 1024)
            .map(|b| b.next_multiple_of(PAGE_SIZE as usize))
            .ok_or(Errno::ENOMEM)?;
        let have = pv_guest::heap::added_size();
        if have >= want {
            return Ok(());
        }
        let more = (want - have) / PAGE_SIZE as usize;
        if self.heap.is_none() {
            let (_, heap_base) = self.ring_and_heap_bases().map_err(|_| Errno::ENOMEM)?;
            // Up to the end of the 1 GiB its L2 covers.
            let room = ((heap_base | (entry_span(3) - 1)) - heap_base + 1) / PAGE_SIZE;
            let pages = HEAP_WINDOW_PAGES.min(room as usize);
            self.heap = Some(self.new_window(heap_base, pages).map_err(|_| Errno::ENOMEM)?);
        }
        let (Some(mm), Some(window)) = (self.mm.as_mut(), self.heap.as_mut()) else {
            return Err(Errno::ENOMEM);
        };
        if self.heap_pages + more > window.capacity() {
            return Err(Errno::ENOMEM);
        }
        let mut frames = Vec::new();
        frames.try_reserve_exact(more).map_err(|_| Errno::ENOMEM)?;
        while frames.len() < more {
            match mm.alloc_frame() {
                Some(f) => frames.push(f),
                None => {
                    frames.into_iter().for_each(|f| mm.free(f));
                    return Err(Errno::ENOMEM);
                }
            }
        }
        let mfns: Vec<u64> = frames.iter().map(|f| f.mfn.0).collect();
        let first = self.heap_pages;
        if let Err(e) = window.map_slots(&mut XenMmu, &mut mm.table_frames(), first, DOMID_SELF, &mfns) {
            // Slots that were mapped stay so (mapped nowhere else, unused): the frames are
            // lost to the heap but never handed out twice.
            return Err(e.errno().unwrap_or(Errno::ENOMEM));
        }
        let start = window.slot_va(first) as *mut u8;
        // SAFETY: `more` pages at `start` were just mapped writable to frames taken from
        // dom0's allocator (so used by nothing else); the heap window's slots are only ever
        // mapped here, after the ones before, so the range continues the added memory.
        unsafe { pv_guest::heap::add_memory(start, more * PAGE_SIZE as usize) }.map_err(|_| Errno::ENOMEM)?;
        self.heap_pages += more;
        Ok(())
    }

    /// The device window, after the heap window (in the same 1 GiB), made on first use.
    fn device_window(&mut self) -> Result<&mut ForeignWindow, Errno> {
        if self.devices.is_none() {
            let (_, heap_base) = self.ring_and_heap_bases().map_err(|_| Errno::ENOMEM)?;
            let base = heap_base + (HEAP_WINDOW_PAGES as u64 * PAGE_SIZE).next_multiple_of(entry_span(2));
            self.devices = Some(self.new_window(base, DEVICE_SLOTS).map_err(|_| Errno::ENOMEM)?);
        }
        self.devices.as_mut().ok_or(Errno::ENOMEM)
    }

    /// Maps the machine's device memory at `maddr..maddr + len` (a PCI BAR) uncached, for
    /// good; the virtual address of `maddr`. Only dom0 may: the hypervisor refuses others
    /// (and its own interrupt controllers' pages to dom0 too).
    pub fn map_device_memory(&mut self, maddr: u64, len: u64) -> Result<u64, Errno> {
        let first = maddr / PAGE_SIZE;
        let last = maddr.checked_add(len.max(1) - 1).ok_or(Errno::EINVAL)? / PAGE_SIZE;
        let mfns: Vec<u64> = (first..=last).collect();
        let slot = self.device_pages;
        if slot + mfns.len() > DEVICE_SLOTS {
            return Err(Errno::ENOSPC);
        }
        self.device_window()?;
        let (Some(mm), Some(window)) = (self.mm.as_mut(), self.devices.as_mut()) else {
            return Err(Errno::ENOMEM);
        };
        window
            .map_device_slots(&mut XenMmu, &mut mm.table_frames(), slot, &mfns)
            .map_err(|e| e.errno().unwrap_or(Errno::ENOMEM))?;
        self.device_pages += mfns.len();
        Ok(window.slot_va(slot) + maddr % PAGE_SIZE)
    }

    /// `2^order` pages of dom0's memory made machine-contiguous (`XENMEM_exchange`) and
    /// mapped for good, for DMA: their machine and virtual addresses.
    pub fn dma_extent(&mut self, order: u32) -> Result<(u64, u64), Errno> {
        let n = 1usize << order;
        if self.device_pages + n > DEVICE_SLOTS {
            return Err(Errno::ENOSPC);
        }
        self.device_window()?;
        let (Some(mm), Some(window)) = (self.mm.as_mut(), self.devices.as_mut()) else {
            return Err(Errno::ENOMEM);
        };
        let (frames, first) = mm.contiguous(order)?;
        let mfns: Vec<u64> = frames.iter().map(|f| f.mfn.0).collect();
        let slot = self.device_pages;
        window
            .map_slots(&mut XenMmu, &mut mm.table_frames(), slot, DOMID_SELF, &mfns)
            .map_err(|e| e.errno().unwrap_or(Errno::ENOMEM))?;
        self.device_pages += n;
        Ok((first.0 * PAGE_SIZE, window.slot_va(slot)))
    }

    /// Maps `dom`'s grant `gref` writable in a free slot of the ring window (a front
    /// end's ring, for a back end): the slot and its address, or the `GNTST_*` status.
    fn map_grant(&mut self, dom: u16, gref: u32) -> Result<(usize, u64), i16> {
        use hypercall_abi::grant_table::GNTST_GENERAL_ERROR;
        let slot = self.ring_slots.iter().position(Option::is_none).ok_or(GNTST_GENERAL_ERROR)?;
        self.ring_window().map_err(|_| GNTST_GENERAL_ERROR)?;
        let (Some(mm), Some(rings)) = (self.mm.as_mut(), self.rings.as_mut()) else {
            return Err(GNTST_GENERAL_ERROR);
        };
        rings.prepare(&mut XenMmu, &mut mm.table_frames(), slot + 1).map_err(|_| GNTST_GENERAL_ERROR)?;
        let va = rings.slot_va(slot);
        let handle = pv_guest::grant::map_one(va, dom, gref, false)?;
        self.ring_slots[slot] = Some(dom);
        self.grant_slots.insert(slot, (dom, handle));
        Ok((slot, va))
    }

    /// Maps `dom`'s frame `mfn` in a free slot of the ring window: the slot and its address.
    fn map_frame(&mut self, dom: u16, mfn: u64) -> Result<(usize, u64), Errno> {
        let slot = self
            .ring_slots
            .iter()
            .position(Option::is_none)
            .ok_or(Errno::ENOSPC)?;
        self.ring_window().map_err(|e| e.errno().unwrap_or(Errno::ENOMEM))?;
        let (Some(mm), Some(rings)) = (self.mm.as_mut(), self.rings.as_mut()) else {
            return Err(Errno::ENOMEM);
        };
        rings
            .map_slot(&mut XenMmu, &mut mm.table_frames(), slot, dom, mfn)
            .map_err(|e| e.errno().unwrap_or(Errno::ENOMEM))?;
        self.ring_slots[slot] = Some(dom);
        Ok((slot, rings.slot_va(slot)))
    }

    /// Maps `dom`'s store ring and starts serving it.
    fn serve_store(&mut self, dom: u16, name: &str, ch: &DomainChannels) -> Result<(), Errno> {
        let mut chans = core::mem::take(&mut self.ring_channels);
        let r = chans.connect(self, |c| &mut c.store, dom, name, ch.store_mfn, ch.store_port_local, |p| p);
        self.ring_channels = chans;
        r.map_err(|why| {
            pv_guest::println!("dom0: d{dom} store ring: {why}");
            Errno::EINVAL
        })
    }

    /// Maps `dom`'s console ring and starts serving it.
    fn serve_console(&mut self, dom: u16, name: &str, ch: &DomainChannels) -> Result<(), Errno> {
        let mut chans = core::mem::take(&mut self.ring_channels);
        let r = chans.connect(self, |c| &mut c.consoles, dom, name, ch.console_mfn, ch.console_port_local, MappedRing);
        self.ring_channels = chans;
        r.map_err(|why| {
            pv_guest::println!("dom0: d{dom} console ring: {why}");
            Errno::EINVAL
        })
    }

    /// The device dom0's `port` serves.
    pub fn device_of(&self, port: u32) -> Option<Device> {
        self.ports.device_of(port)
    }

    /// Stops serving `dom`'s devices: its virtual disks, its console (its last output
    /// printed first) and store; then every channel of it is closed (out of the dispatch
    /// table, port closed, ring unmapped).
    fn release_domain(&mut self, dom: u16) {
        // Its virtual disks and interfaces first: their rings are grant mappings of its pages.
        self.release_vbds(dom);
        self.release_vifs(dom);
        let mut emit = |b: &[u8]| pv_guest::console::write_bytes(b);
        self.consoles.drain_last(dom, &mut emit);
        // The console, then the store (its home removed, `@releaseDomain` fired), each
        // before its channel closes and its page goes.
        let mut chans = core::mem::take(&mut self.ring_channels);
        chans.release(self, |c| &mut c.consoles, dom);
        chans.release(self, |c| &mut c.store, dom);
        self.ring_channels = chans;
        // Ports the builder bound that no channel took (a build that failed half way).
        for port in self.bound.remove(&dom).unwrap_or_default() {
            self.ports.forget(port);
            let _ = events::close(port);
        }
    }

    /// The window, made on first use.
    fn window(&mut self) -> Result<&mut ForeignWindow, MmError> {
        if self.window.is_none() {
            let (base, pages) = self.build_window_place()?;
            self.window = Some(self.new_window(base, pages)?);
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
        // Unmapped first, so the domain's frames all go back at once.
        self.release_domain(dom);
        domctl::destroy_domain(DomId(dom))
    }

    fn pause_domain(&mut self, dom: u16) -> Result<(), Errno> {
        domctl::pause_domain(DomId(dom))
    }

    fn unpause_domain(&mut self, dom: u16) -> Result<(), Errno> {
        domctl::unpause_domain(DomId(dom))
    }

    fn grow_heap(&mut self, bytes: usize) -> Result<(), Errno> {
        self.grow_heap_by(bytes)
    }

    fn pv_control(&mut self, dom: u16, request: &str) -> Result<bool, Errno> {
        if !self.store.is_connected(dom) {
            return Err(Errno::ENOENT);
        }
        let path = alloc::format!("{}/control/shutdown", xenbus::path::domain_path(DomId(dom)));
        self.store.write(&path, request.as_bytes()).map_err(|e| match e {
            xenbus::wire::XsError::ENOMEM => Errno::ENOMEM,
            xenbus::wire::XsError::ENOENT => Errno::ENOENT,
            _ => Errno::EIO,
        })?;
        Ok(self.store.is_watched_by(dom, &path))
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

    fn alloc_guest_port(&mut self, guest: u16) -> Result<u32, Errno> {
        events::alloc_unbound_in(guest, 0)
    }

    fn bind_guest_port(&mut self, guest: u16, port: u32) -> Result<u32, Errno> {
        let local = events::bind_interdomain(guest, port)?;
        self.bound.entry(guest).or_default().push(local);
        Ok(local)
    }

    fn connect_console(
        &mut self,
        dom: u16,
        name: &str,
        channels: &DomainChannels,
    ) -> Result<(), Errno> {
        self.serve_console(dom, name, channels)
    }

    fn connect_store(&mut self, dom: u16, name: &str, vcpus: u32, channels: &DomainChannels) -> Result<(), Errno> {
        self.serve_store(dom, name, channels)?;
        let home = xenbus::path::domain_path(hypercall_abi::types::DomId(dom));
        for v in 0..vcpus {
            // dom0 writes anywhere; the domain owns its home, and these with it.
            let _ = self.store.write(&alloc::format!("{home}/cpu/{v}/availability"), b"online");
        }
        Ok(())
    }

    fn attach_disk(&mut self, dom: u16, disk: &dom0::config::disk::DiskSpec) -> Result<(), alloc::string::String> {
        self.attach_vbd(dom, disk)
    }

    fn detach_disk(&mut self, dom: u16, devid: u32) -> Result<(), alloc::string::String> {
        self.detach_vbd(dom, devid)
    }

    fn disks(&mut self, dom: u16) -> Vec<dom0::blkback::DiskRow> {
        self.vbd_rows(dom)
    }

    fn attach_nic(&mut self, dom: u16, vif: &dom0::config::vif::VifSpec) -> Result<(), alloc::string::String> {
        self.attach_vif(dom, vif)
    }

    fn detach_nic(&mut self, dom: u16, devid: u32) -> Result<(), alloc::string::String> {
        self.detach_vif(dom, devid)
    }

    fn nics(&mut self, dom: u16) -> Vec<dom0::netback::NicRow> {
        self.vif_rows(dom)
    }

    fn vcpu_info(&mut self, dom: u16, vcpu: u32) -> Result<hypercall_abi::domctl::GetVcpuInfo, Errno> {
        domctl::vcpu_info(DomId(dom), vcpu)
    }

    fn vcpu_affinity(&mut self, dom: u16, vcpu: u32, set: Option<u64>) -> Result<u64, Errno> {
        domctl::vcpu_affinity(DomId(dom), vcpu, set)
    }

    fn sched_credit(&mut self, dom: u16, set: Option<(u16, u16)>) -> Result<(u16, u16), Errno> {
        domctl::sched_credit(DomId(dom), set)
    }

    fn sched_rtds(&mut self, dom: u16, set: Option<(u32, u32, bool)>) -> Result<dom0::builder::RtdsParams, Errno> {
        let (period_us, budget_us, extra, misses) = domctl::sched_rtds(DomId(dom), set)?;
        Ok(dom0::builder::RtdsParams { period_us, budget_us, extra, misses })
    }
}

impl SplitMachine for XenControl {
    type Page = SharedPage;
    type StorePage = SharedPage;

    fn store(&mut self) -> &mut StoreService<SharedPage> {
        &mut self.store
    }

    fn map(&mut self, dom: u16, ring: RingSource) -> Result<(MapId, SharedPage), String> {
        let (slot, va) = match ring {
            RingSource::Grant(gref) => self.map_grant(dom, gref).map_err(|s| format!("status {s}"))?,
            RingSource::Frame(mfn) => self.map_frame(dom, mfn).map_err(|e| format!("{e}"))?,
        };
        // SAFETY: `va` is a ring-window slot just mapped writable to the guest's page, until
        // `unmap` of the slot, which comes after the page value is dropped (`close_channel`);
        // only this value and the guest touch the page.
        Ok((slot, unsafe { SharedPage::new(va) }))
    }

    fn unmap(&mut self, slot: MapId) {
        if let Some((_, handle)) = self.grant_slots.remove(&slot) {
            let va = self.rings.as_ref().map_or(0, |r| r.slot_va(slot));
            match pv_guest::grant::unmap_one(va, handle) {
                Ok(()) => self.ring_slots[slot] = None,
                // The slot stays taken: its entry may still map the page.
                Err(status) => pv_guest::println!("dom0: cannot unmap a front end's ring (slot {slot}): status {status}"),
            }
        } else if let Some(rings) = self.rings.as_mut() {
            if rings.unmap_slot(&mut XenMmu, slot).is_ok() {
                self.ring_slots[slot] = None;
            }
        }
    }

    fn bind(&mut self, device: Device, port: PortSource) -> Result<u32, String> {
        let local = match port {
            PortSource::Remote(remote) => events::bind_interdomain(device.key.dom, remote).map_err(|e| format!("{e}"))?,
            PortSource::Local(local) => local,
        };
        events::mask(local);
        let entered = self.ports.enter(local, device) && events::set_handler(local, self.on_device).is_ok();
        if !entered {
            if matches!(port, PortSource::Remote(_)) {
                let _ = events::close(local);
            }
            return Err(format!("port {local} cannot be served"));
        }
        // Binding left our end pending; what waits is served once connected.
        events::clear_pending(local);
        Ok(local)
    }

    fn unmask(&mut self, port: u32) {
        let _ = events::unmask(port);
    }

    fn unbind(&mut self, port: u32) {
        self.ports.forget(port);
        events::mask(port);
        let _ = events::close(port);
        for ports in self.bound.values_mut() {
            ports.retain(|&p| p != port);
        }
    }

    fn notify(&mut self, port: u32) {
        let _ = events::send(port);
    }
}

/// dom0's heap space below which guests' store requests are refused (`ENOMEM`): room for
/// the largest batch one guest's serve can allocate (20 outstanding requests at its quota)
/// and dom0's own work.
const STORE_LOW_WATER: usize = 512 * 1024;

/// Whether dom0's heap is below [`STORE_LOW_WATER`].
fn store_memory_low() -> bool {
    pv_guest::heap::usage().1 < STORE_LOW_WATER
}
