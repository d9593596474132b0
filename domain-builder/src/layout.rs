//! Planning a PV domain's initial virtual region, in the order Xen's public `xen.h`
//! ("Start-of-day memory layout") and `dom0_build.c` give it.
//!
//! The region starts at VIRT_BASE (`v_start`) and is a 1:1 image of the first
//! pseudo-physical pages: the pfn of an address `va` is `(va - v_start) >> 12`. In order,
//! each element page aligned:
//!
//! 1. the kernel image `[virt_kstart, virt_kend)`;
//! 2. the modules: none; one as a plain initrd; two or more as one multiboot module
//!    package (`SIF_MULTIBOOT_MOD`, see [`MultibootModList`]);
//! 3. the p2m list (`nr_pages` machine frame numbers, 8 bytes each), unless the kernel
//!    asks for it at its own address (INIT_P2M: see [`P2mMapping`]);
//! 4. the start_info page; 5. the xenstore ring page; 6. the console ring page;
//! 7. the bootstrap page tables, which map the whole region *including themselves*;
//! 8. the boot stack page;
//!
//! and then padding: the region ends on a 4 MiB boundary with at least 512 KiB after the
//! stack, as Xen guarantees. Every sum is checked; the result is a pure description that
//! [`crate::build::build`] writes out.

use alloc::vec::Vec;
use core::fmt;

use hypercall_abi::start_info::{MultibootModList, SIF_MULTIBOOT_MOD};

use crate::elf::KernelInfo;
use crate::pagetable::{table_counts, PT_LEVELS};
use crate::{check_guest_range, page_ceil, page_floor, RangeProblem, PAGE_SHIFT, PAGE_SIZE};

/// The region ends on a multiple of this (Xen: "ends on an aligned 4MB boundary").
const REGION_ALIGN: u64 = 4 << 20;
/// Minimum padding after the boot stack (Xen: "at least 512kB padding").
const MIN_PADDING: u64 = 512 << 10;

/// Which kind of domain is being built; decides the `console` union of start_info.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainKind {
    /// The initial domain (dom0), built by the microkernel: `console.dom0` (no VGA info).
    Initial,
    /// Any other domain, built by dom0: `console.domU` names the console ring.
    Guest,
}

/// One module to place: its length and its command line (used only in a package).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleSpec<'a> {
    /// Module size in bytes.
    pub len: u64,
    /// Module command line, without NUL. A single module is a plain initrd and its
    /// command line is not passed (Xen's start_info has no place for it).
    pub cmdline: &'a [u8],
}

/// What to plan for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutRequest<'a> {
    /// Pages the domain gets in all (start_info `nr_pages`); the region must fit in them.
    pub nr_pages: u64,
    /// Modules in the order the guest sees them.
    pub modules: &'a [ModuleSpec<'a>],
    /// Initial domain or guest.
    pub domain: DomainKind,
}

/// A page-aligned piece of the region: virtual `[start, end)`, first pfn `pfn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First virtual address (page aligned).
    pub start: u64,
    /// One past the last virtual address (page aligned; equal to `start` if empty).
    pub end: u64,
    /// Pseudo-physical frame number of `start`.
    pub pfn: u64,
}

impl Region {
    /// Number of pages in the region.
    pub const fn pages(&self) -> u64 {
        (self.end - self.start) >> PAGE_SHIFT
    }

    /// Does the region contain `pfn`?
    pub const fn contains_pfn(&self, pfn: u64) -> bool {
        pfn >= self.pfn && pfn < self.pfn + self.pages()
    }
}

/// Where one module's bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlacedModule {
    /// Virtual address of the module's first byte (page aligned).
    pub va: u64,
    /// Module size in bytes.
    pub len: u64,
    /// Virtual address of its NUL-terminated command line (in a package only).
    pub cmdline_va: Option<u64>,
}

/// The p2m mapped at the kernel's INIT_P2M address, outside the initial region (Xen's
/// `p2m_base`): its frames, and the page tables mapping them, follow the region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct P2mMapping {
    /// Where the p2m is mapped (`start_info.mfn_list`).
    pub va: u64,
    /// First pfn of the segment: the p2m's pages, then its page tables.
    pub first_pfn: u64,
    /// Pages of p2m entries.
    pub data_pages: u64,
    /// Its page-table frames: (pfn, level), the L3s, then the L2s, then the L1s.
    pub pt_frames: Vec<(u64, u8)>,
    /// Tables per level, index 0 being L1 (L4: none, the region's is shared).
    pub counts: [u64; 3],
}

impl P2mMapping {
    /// Frames of the segment (`start_info.nr_p2m_frames`).
    pub fn nr_frames(&self) -> u64 {
        self.data_pages + self.pt_frames.len() as u64
    }

    /// One past the mapping's last byte.
    pub fn end(&self) -> u64 {
        self.va + (self.data_pages << PAGE_SHIFT)
    }
}

/// Why no layout could be planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The kernel description is inconsistent (not from [`crate::elf::parse_kernel`]?).
    BadKernel,
    /// An address computation overflowed 64 bits.
    AddressOverflow,
    /// The modules do not fit in a multiboot package (its offsets are 32 bits).
    ModulePackageTooLarge,
    /// The region needs more pages than the domain has.
    NotEnoughPages {
        /// Pages the region needs.
        needed: u64,
        /// `nr_pages` requested.
        nr_pages: u64,
    },
    /// The region leaves canonical address space.
    NonCanonical {
        /// Region start.
        start: u64,
        /// Region end.
        end: u64,
    },
    /// The kernel's INIT_P2M address cannot take the p2m (misaligned, leaving canonical
    /// space, in the hypervisor's range, or sharing a 512 GiB slot with the initial
    /// region); the p2m then goes in the initial region, as for a kernel without the note.
    P2mPlacement,
    /// The region reaches into the hypervisor's reserved virtual range.
    OverlapsHypervisor {
        /// Region start.
        start: u64,
        /// Region end.
        end: u64,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadKernel => f.write_str("kernel description is inconsistent"),
            Self::AddressOverflow => f.write_str("initial region overflows the address space"),
            Self::ModulePackageTooLarge => {
                f.write_str("modules too large for a multiboot module package (4 GiB)")
            }
            Self::NotEnoughPages { needed, nr_pages } => write!(
                f,
                "initial region needs {needed} pages but the domain has only {nr_pages}"
            ),
            Self::NonCanonical { start, end } => write!(
                f,
                "initial region [{start:#x}, {end:#x}) leaves canonical address space"
            ),
            Self::P2mPlacement => f.write_str("INIT_P2M address cannot take the p2m"),
            Self::OverlapsHypervisor { start, end } => write!(
                f,
                "initial region [{start:#x}, {end:#x}) overlaps the hypervisor's virtual range"
            ),
        }
    }
}

impl core::error::Error for LayoutError {}

/// The planned initial region; only [`plan`] makes one, so its parts are consistent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub(crate) domain: DomainKind,
    pub(crate) nr_pages: u64,
    pub(crate) v_start: u64,
    pub(crate) v_end: u64,
    pub(crate) kernel_span: (u64, u64),
    pub(crate) requested_modules: Vec<(u64, usize)>,
    pub(crate) kernel: Region,
    pub(crate) modules: Region,
    pub(crate) placed_modules: Vec<PlacedModule>,
    pub(crate) package: Vec<MultibootModList>,
    pub(crate) mod_start: u64,
    pub(crate) mod_len: u64,
    pub(crate) p2m: Region,
    pub(crate) start_info: Region,
    pub(crate) xenstore: Region,
    pub(crate) console: Region,
    pub(crate) page_tables: Region,
    pub(crate) stack: Region,
    pub(crate) pt_frames: Vec<(u64, u8)>,
    pub(crate) p2m_mapping: Option<P2mMapping>,
}

impl Layout {
    /// Kind of domain planned for.
    pub fn domain(&self) -> DomainKind {
        self.domain
    }
    /// `nr_pages` planned for (the length the p2m must have).
    pub fn nr_pages(&self) -> u64 {
        self.nr_pages
    }
    /// First address of the region (VIRT_BASE).
    pub fn v_start(&self) -> u64 {
        self.v_start
    }
    /// One past the last address of the region (4 MiB aligned).
    pub fn v_end(&self) -> u64 {
        self.v_end
    }
    /// Pages in the region, `(v_end - v_start) / 4096`; pfns `0..nr_region_pages()`.
    pub fn nr_region_pages(&self) -> u64 {
        (self.v_end - self.v_start) >> PAGE_SHIFT
    }
    /// The kernel image, page rounded.
    pub fn kernel(&self) -> Region {
        self.kernel
    }
    /// The modules (the initrd or the whole package); empty when there are none.
    pub fn modules(&self) -> Region {
        self.modules
    }
    /// Where each module's bytes (and, in a package, its command line) go.
    pub fn placed_modules(&self) -> &[PlacedModule] {
        &self.placed_modules
    }
    /// The package's descriptors, terminator included (empty unless two or more
    /// modules). Offsets are relative to [`Layout::mod_start`].
    pub fn package_descriptors(&self) -> &[MultibootModList] {
        &self.package
    }
    /// start_info `mod_start`: virtual address of the initrd or package, 0 if none.
    pub fn mod_start(&self) -> u64 {
        self.mod_start
    }
    /// start_info `mod_len`: bytes of the initrd or package, 0 if none.
    pub fn mod_len(&self) -> u64 {
        self.mod_len
    }
    /// `SIF_MULTIBOOT_MOD` if the modules form a package, else 0.
    pub fn module_flags(&self) -> u32 {
        if self.package.is_empty() {
            0
        } else {
            SIF_MULTIBOOT_MOD
        }
    }
    /// The p2m list (start_info `mfn_list` is its start).
    pub fn p2m(&self) -> Region {
        self.p2m
    }
    /// The start_info page.
    pub fn start_info(&self) -> Region {
        self.start_info
    }
    /// Virtual address of start_info (the guest's `rsi`).
    pub fn start_info_va(&self) -> u64 {
        self.start_info.start
    }
    /// The xenstore ring page.
    pub fn xenstore(&self) -> Region {
        self.xenstore
    }
    /// Pfn of the xenstore ring page.
    pub fn store_pfn(&self) -> u64 {
        self.xenstore.pfn
    }
    /// The console ring page.
    pub fn console(&self) -> Region {
        self.console
    }
    /// Pfn of the console ring page.
    pub fn console_pfn(&self) -> u64 {
        self.console.pfn
    }
    /// The bootstrap page-table frames (start_info `pt_base` is its start, the L4).
    pub fn page_tables(&self) -> Region {
        self.page_tables
    }
    /// Every page-table frame as `(pfn, level)`, level 4 = L4: the L4 first, then the
    /// L3s, L2s and L1s, each level in address order.
    pub fn pt_frames(&self) -> &[(u64, u8)] {
        &self.pt_frames
    }
    /// Number of page-table frames (start_info `nr_pt_frames`).
    pub fn nr_pt_frames(&self) -> u64 {
        self.pt_frames.len() as u64
    }
    /// The boot stack page.
    pub fn stack(&self) -> Region {
        self.stack
    }
    /// Initial stack pointer: the top of the boot stack page.
    pub fn stack_top(&self) -> u64 {
        self.stack.end
    }
    /// The p2m's own mapping at the kernel's INIT_P2M address, if it has one.
    pub fn p2m_mapping(&self) -> Option<&P2mMapping> {
        self.p2m_mapping.as_ref()
    }

    /// Pages a builder writes: the initial region and, with an INIT_P2M mapping, the p2m
    /// segment after it (pfns `0..nr_built_pages()`).
    pub fn nr_built_pages(&self) -> u64 {
        self.nr_region_pages() + self.p2m_mapping.as_ref().map_or(0, P2mMapping::nr_frames)
    }

    /// Pfn of a virtual address inside the region.
    pub fn pfn_of(&self, va: u64) -> Option<u64> {
        (va >= self.v_start && va < self.v_end).then(|| (va - self.v_start) >> PAGE_SHIFT)
    }
}

/// Allocates page-aligned pieces upwards from a cursor, with checked arithmetic.
struct Cursor {
    v_start: u64,
    next: u64,
}

impl Cursor {
    /// Take `bytes` (rounded up to pages) at the cursor.
    fn take(&mut self, bytes: u64) -> Result<Region, LayoutError> {
        let start = self.next;
        let end = start
            .checked_add(bytes)
            .and_then(page_ceil)
            .ok_or(LayoutError::AddressOverflow)?;
        self.next = end;
        Ok(Region {
            start,
            end,
            pfn: (start - self.v_start) >> PAGE_SHIFT,
        })
    }
}

/// Lay out two or more modules as a multiboot package at `base`: descriptors and their
/// terminator, then the command lines, then each module on its own page boundary.
/// Returns the descriptors, placements and the package length.
fn plan_package(
    base: u64,
    modules: &[ModuleSpec<'_>],
) -> Result<(Vec<MultibootModList>, Vec<PlacedModule>, u64), LayoutError> {
    let too_large = LayoutError::ModulePackageTooLarge;
    let descriptor_size = core::mem::size_of::<MultibootModList>() as u64;
    let count = modules.len() as u64 + 1;
    let mut cursor = count
        .checked_mul(descriptor_size)
        .ok_or(too_large.clone())?;
    let mut cmdline_offsets = Vec::with_capacity(modules.len());
    for module in modules {
        cmdline_offsets.push(cursor);
        cursor = cursor
            .checked_add(module.cmdline.len() as u64)
            .and_then(|c| c.checked_add(1))
            .ok_or(too_large.clone())?;
    }
    let mut descriptors = Vec::with_capacity(modules.len() + 1);
    let mut placed = Vec::with_capacity(modules.len());
    let mut package_len = cursor;
    for (module, cmdline) in modules.iter().zip(cmdline_offsets) {
        let start = page_ceil(cursor).ok_or(too_large.clone())?;
        let end = start.checked_add(module.len).ok_or(too_large.clone())?;
        package_len = end;
        cursor = page_ceil(end).ok_or(too_large.clone())?;
        // `mod_end` is inclusive; an empty module ends just before it starts.
        let last = end - 1;
        let field = |v: u64| u32::try_from(v).map_err(|_| too_large.clone());
        descriptors.push(MultibootModList {
            mod_start: field(start)?,
            mod_end: field(last)?,
            cmdline: field(cmdline)?,
            pad: 0,
        });
        placed.push(PlacedModule {
            va: base + start,
            len: module.len,
            cmdline_va: Some(base + cmdline),
        });
    }
    u32::try_from(package_len).map_err(|_| too_large.clone())?;
    descriptors.push(MultibootModList {
        mod_start: 0,
        mod_end: 0,
        cmdline: 0,
        pad: 0,
    });
    Ok((descriptors, placed, package_len))
}

/// The part of the region that depends on the number of page-table frames.
struct Tail {
    page_tables: Region,
    stack: Region,
    v_end: u64,
}

/// Place `nr_pt` page-table frames, the stack and the padding after `cursor`.
fn plan_tail(cursor: &Cursor, nr_pt: u64) -> Result<Tail, LayoutError> {
    let mut cursor = Cursor {
        v_start: cursor.v_start,
        next: cursor.next,
    };
    let pt_bytes = nr_pt
        .checked_mul(PAGE_SIZE)
        .ok_or(LayoutError::AddressOverflow)?;
    let page_tables = cursor.take(pt_bytes)?;
    let stack = cursor.take(PAGE_SIZE)?;
    let mut v_end = stack
        .end
        .checked_add(REGION_ALIGN - 1)
        .map(|v| v & !(REGION_ALIGN - 1))
        .ok_or(LayoutError::AddressOverflow)?;
    if v_end - stack.end < MIN_PADDING {
        v_end = v_end
            .checked_add(REGION_ALIGN)
            .ok_or(LayoutError::AddressOverflow)?;
    }
    Ok(Tail {
        page_tables,
        stack,
        v_end,
    })
}

/// Plan the initial region for `kernel` (see the module documentation). A kernel with an
/// INIT_P2M note gets its p2m mapped there, outside the region, as Xen's builders do
/// (`start_info.first_p2m_pfn`, `nr_p2m_frames`); when that address cannot take it
/// ([`LayoutError::P2mPlacement`]), the p2m goes in the region as for any other kernel.
pub fn plan(kernel: &KernelInfo, req: &LayoutRequest<'_>) -> Result<Layout, LayoutError> {
    if let Some(va) = kernel.init_p2m {
        match plan_with(kernel, req, Some(va)) {
            Err(LayoutError::P2mPlacement) => {}
            other => return other,
        }
    }
    plan_with(kernel, req, None)
}

/// The p2m's own mapping at `va` for a region `[v_start, v_end)` of `region_pages` pages.
fn plan_p2m_mapping(va: u64, nr_pages: u64, v_start: u64, v_end: u64, region_pages: u64) -> Result<P2mMapping, LayoutError> {
    let bytes = nr_pages.checked_mul(8).and_then(page_ceil).ok_or(LayoutError::P2mPlacement)?;
    let end = va.checked_add(bytes).ok_or(LayoutError::P2mPlacement)?;
    if !va.is_multiple_of(PAGE_SIZE) || check_guest_range(va, end).is_err() {
        return Err(LayoutError::P2mPlacement);
    }
    // Its own L3s: no 512 GiB slot shared with the region (nor, canonical, wrapping).
    let slots = |a: u64, b: u64| (a >> 39, (b - 1) >> 39);
    let (p0, p1) = slots(va, end);
    let (r0, r1) = slots(v_start, v_end);
    if p1 >= r0 && p0 <= r1 {
        return Err(LayoutError::P2mPlacement);
    }
    let counts = table_counts(va, end);
    let data_pages = bytes >> PAGE_SHIFT;
    let mut pt_frames = Vec::new();
    let mut pfn = region_pages + data_pages;
    for level in [3u8, 2, 1] {
        for _ in 0..counts[usize::from(level) - 1] {
            pt_frames.push((pfn, level));
            pfn += 1;
        }
    }
    Ok(P2mMapping { va, first_pfn: region_pages, data_pages, pt_frames, counts: [counts[0], counts[1], counts[2]] })
}

fn plan_with(kernel: &KernelInfo, req: &LayoutRequest<'_>, init_p2m: Option<u64>) -> Result<Layout, LayoutError> {
    let v_start = kernel.virt_base;
    if !v_start.is_multiple_of(PAGE_SIZE)
        || kernel.virt_kstart < v_start
        || kernel.virt_kend < kernel.virt_kstart
    {
        return Err(LayoutError::BadKernel);
    }
    let kstart = page_floor(kernel.virt_kstart);
    let kend = page_ceil(kernel.virt_kend).ok_or(LayoutError::AddressOverflow)?;
    let kernel_region = Region {
        start: kstart,
        end: kend,
        pfn: (kstart - v_start) >> PAGE_SHIFT,
    };
    let mut cursor = Cursor {
        v_start,
        next: kend,
    };

    let (modules, placed_modules, package, mod_start, mod_len) = match req.modules {
        [] => (cursor.take(0)?, Vec::new(), Vec::new(), 0, 0),
        // Xen passes an empty initrd as no initrd at all.
        [single] if single.len == 0 => (cursor.take(0)?, Vec::new(), Vec::new(), 0, 0),
        [single] => {
            let region = cursor.take(single.len)?;
            let placed = PlacedModule {
                va: region.start,
                len: single.len,
                cmdline_va: None,
            };
            (
                region,
                alloc::vec![placed],
                Vec::new(),
                region.start,
                single.len,
            )
        }
        several => {
            let base = cursor.next;
            let (descriptors, placed, len) = plan_package(base, several)?;
            (cursor.take(len)?, placed, descriptors, base, len)
        }
    };

    let p2m_bytes = req
        .nr_pages
        .checked_mul(8)
        .ok_or(LayoutError::AddressOverflow)?;
    // With INIT_P2M the p2m is not in the region (placed below, after it).
    let mut p2m = cursor.take(if init_p2m.is_some() { 0 } else { p2m_bytes })?;
    let start_info = cursor.take(PAGE_SIZE)?;
    let xenstore = cursor.take(PAGE_SIZE)?;
    let console = cursor.take(PAGE_SIZE)?;

    // The tables must map the region, which contains the tables: find the least number
    // of frames that maps a region holding that many frames (Xen searches upwards from
    // 2; iterating `needed` from below reaches the same least fixed point, in a handful
    // of steps even for huge regions, since `needed` grows far slower than its argument).
    let mut nr_pt = PT_LEVELS as u64;
    let tail = loop {
        let tail = plan_tail(&cursor, nr_pt)?;
        let needed: u64 = table_counts(v_start, tail.v_end).iter().sum();
        if needed <= nr_pt {
            break tail;
        }
        nr_pt = needed;
    };

    let v_end = tail.v_end;
    check_guest_range(v_start, v_end).map_err(|problem| match problem {
        RangeProblem::NonCanonical => LayoutError::NonCanonical {
            start: v_start,
            end: v_end,
        },
        RangeProblem::Hypervisor => LayoutError::OverlapsHypervisor {
            start: v_start,
            end: v_end,
        },
    })?;
    let region_pages = (v_end - v_start) >> PAGE_SHIFT;
    let p2m_mapping = match init_p2m {
        Some(va) => Some(plan_p2m_mapping(va, req.nr_pages, v_start, v_end, region_pages)?),
        None => None,
    };
    if let Some(m) = &p2m_mapping {
        p2m = Region { start: m.va, end: m.end(), pfn: m.first_pfn };
    }
    let needed = region_pages + p2m_mapping.as_ref().map_or(0, P2mMapping::nr_frames);
    if needed > req.nr_pages {
        return Err(LayoutError::NotEnoughPages {
            needed,
            nr_pages: req.nr_pages,
        });
    }

    let counts = table_counts(v_start, v_end);
    let mut pt_frames = Vec::with_capacity(tail.page_tables.pages() as usize);
    let mut pfn = tail.page_tables.pfn;
    for level in (1..=PT_LEVELS as u8).rev() {
        for _ in 0..counts[usize::from(level) - 1] {
            pt_frames.push((pfn, level));
            pfn += 1;
        }
    }
    debug_assert_eq!(pt_frames.len() as u64, tail.page_tables.pages());

    Ok(Layout {
        domain: req.domain,
        nr_pages: req.nr_pages,
        v_start,
        v_end,
        kernel_span: (kernel.virt_kstart, kernel.virt_kend),
        requested_modules: req
            .modules
            .iter()
            .map(|m| (m.len, m.cmdline.len()))
            .collect(),
        kernel: kernel_region,
        modules,
        placed_modules,
        package,
        mod_start,
        mod_len,
        p2m,
        start_info,
        xenstore,
        console,
        page_tables: tail.page_tables,
        stack: tail.stack,
        pt_frames,
        p2m_mapping,
    })
}
