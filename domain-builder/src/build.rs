//! Writing a planned domain into its frames: kernel segments, modules, p2m list,
//! start_info, hypercall page and bootstrap page tables.
//!
//! The caller supplies the domain's memory through [`GuestMemory`] (the microkernel over
//! its direct map, dom0's builder over foreign mappings, tests over a map of arrays) and
//! the p2m: the machine frame backing each pseudo-physical frame. Every page of the
//! initial region is fully defined afterwards: pages the builder fills partly or not at
//! all (kernel gaps and bss, module tails, xenstore and console rings, stack, padding) are
//! zeroed first, the rest are written whole. Frames past the region are the caller's.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use hypercall_abi::layout::PT_ENTRIES;
use hypercall_abi::start_info::{
    StartInfo, StartInfoConsole, MAX_GUEST_CMDLINE, SIF_MOD_START_PFN, SIF_MULTIBOOT_MOD,
    START_INFO_MAGIC,
};
use zerocopy::{FromZeros, IntoBytes};

use crate::elf::KernelInfo;
use crate::hypercall_page::fill_hypercall_page;
use crate::layout::{DomainKind, Layout, ModuleSpec, Region};
use crate::pagetable::TableBuilder;
use crate::PAGE_SIZE;

/// Byte access to the frames of the domain being built, by pseudo-physical frame number.
///
/// The builder only ever names pfns below the layout's `nr_built_pages()`, and every
/// `write` stays within one page (`offset + bytes.len() <= 4096`).
pub trait GuestMemory {
    /// Copy `bytes` into frame `pfn` at byte `offset`.
    fn write(&mut self, pfn: u64, offset: usize, bytes: &[u8]) -> Result<(), BuildError>;
    /// Fill frame `pfn` with zeros.
    fn zero(&mut self, pfn: u64) -> Result<(), BuildError>;
    /// Whether every frame already reads as zero (freshly scrubbed by the hypervisor), so
    /// the builder need not zero what it does not write. Default: no.
    fn frames_scrubbed(&self) -> bool {
        false
    }
}

/// One boot module: its bytes and its command line (without NUL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootModule<'a> {
    /// The module's contents.
    pub data: &'a [u8],
    /// Its command line (only passed when modules form a package).
    pub cmdline: &'a [u8],
}

impl<'a> BootModule<'a> {
    /// The module as [`crate::layout::plan`] needs it.
    pub fn spec(&self) -> ModuleSpec<'a> {
        ModuleSpec {
            len: self.data.len() as u64,
            cmdline: self.cmdline,
        }
    }
}

/// What the builder needs besides the image and the layout.
#[derive(Clone, Copy, Debug)]
pub struct BuildParams<'a> {
    /// Machine frame of each pseudo-physical frame; exactly `layout.nr_pages()` entries.
    pub p2m: &'a [u64],
    /// The hypervisor's L4 entries 256..=271, copied verbatim into the guest's L4.
    pub hypervisor_l4_slots: [u64; 16],
    /// Machine address of the domain's shared_info page.
    pub shared_info_maddr: u64,
    /// `SIF_*` flags (e.g. `SIF_PRIVILEGED | SIF_INITDOMAIN` for dom0). `SIF_MULTIBOOT_MOD`
    /// and `SIF_MOD_START_PFN` are ignored: the layout decides them.
    pub flags: u32,
    /// Event channel of the xenstore ring.
    pub store_evtchn: u32,
    /// Event channel of the console ring (guests only).
    pub console_evtchn: u32,
    /// The modules, as planned (same count, lengths and command lines).
    pub modules: &'a [BootModule<'a>],
    /// The domain's command line; truncated to 1023 bytes.
    pub cmdline: &'a [u8],
}

/// What the caller needs to start the domain's first vCPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltDomain {
    /// Initial `rip`.
    pub entry: u64,
    /// Initial `rsp`: top of the boot stack page.
    pub stack_top: u64,
    /// Initial `rsi`: virtual address of start_info.
    pub start_info_va: u64,
    /// Machine frame of the L4 (the vCPU's `cr3`); the caller pins and validates it.
    pub l4_mfn: u64,
    /// Every page-table frame as `(pfn, level)`, L4 first; the caller types them.
    pub pt_frames: Vec<(u64, u8)>,
}

/// Why a domain could not be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The layout was not planned for this kernel.
    LayoutMismatch,
    /// The p2m does not have `layout.nr_pages()` entries.
    P2mLengthMismatch {
        /// Entries expected.
        expected: u64,
        /// Entries given.
        len: u64,
    },
    /// A pfn has no p2m entry.
    P2mTooShort {
        /// Entries given.
        len: u64,
        /// The pfn looked up.
        pfn: u64,
    },
    /// A machine frame number does not fit in a page-table entry.
    BadMfn {
        /// The pfn.
        pfn: u64,
        /// Its machine frame.
        mfn: u64,
    },
    /// The modules differ from those the layout was planned for.
    ModulesMismatch,
    /// A kernel segment's bytes lie outside the image, or its memory outside the kernel region.
    SegmentOutOfBounds {
        /// Index among the PT_LOAD segments.
        index: usize,
    },
    /// The hypercall page is not a page of the kernel region.
    BadHypercallPage {
        /// Its address.
        va: u64,
    },
    /// The caller's [`GuestMemory`] could not access a frame.
    GuestMemory {
        /// The frame.
        pfn: u64,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LayoutMismatch => f.write_str("layout was not planned for this kernel"),
            Self::P2mLengthMismatch { expected, len } => {
                write!(f, "p2m has {len} entries, expected {expected}")
            }
            Self::P2mTooShort { len, pfn } => {
                write!(f, "p2m of {len} entries has no entry for pfn {pfn:#x}")
            }
            Self::BadMfn { pfn, mfn } => {
                write!(
                    f,
                    "pfn {pfn:#x} maps to mfn {mfn:#x}, beyond physical address width"
                )
            }
            Self::ModulesMismatch => f.write_str("modules differ from those the layout planned"),
            Self::SegmentOutOfBounds { index } => {
                write!(
                    f,
                    "kernel segment {index} lies outside the image or the kernel region"
                )
            }
            Self::BadHypercallPage { va } => {
                write!(
                    f,
                    "hypercall page {va:#x} is not a page of the kernel region"
                )
            }
            Self::GuestMemory { pfn } => write!(f, "cannot access guest frame {pfn:#x}"),
        }
    }
}

impl core::error::Error for BuildError {}

/// Copy `bytes` to virtual address `va` of the region, page by page.
fn write_va(
    mem: &mut impl GuestMemory,
    layout: &Layout,
    va: u64,
    bytes: &[u8],
) -> Result<(), BuildError> {
    let mut va = va;
    let mut rest = bytes;
    while !rest.is_empty() {
        let pfn = layout.pfn_of(va).ok_or(BuildError::LayoutMismatch)?;
        let offset = (va % PAGE_SIZE) as usize;
        let chunk = rest.len().min(PAGE_SIZE as usize - offset);
        mem.write(pfn, offset, &rest[..chunk])?;
        rest = &rest[chunk..];
        va += chunk as u64;
    }
    Ok(())
}

/// Zero every page of `region`.
fn zero_region(mem: &mut impl GuestMemory, region: Region) -> Result<(), BuildError> {
    zero_pfns(mem, region.pfn..region.pfn + region.pages())
}

/// Zeroes frames `pfns`, unless the memory says its frames are already zero.
fn zero_pfns(mem: &mut impl GuestMemory, pfns: core::ops::Range<u64>) -> Result<(), BuildError> {
    if mem.frames_scrubbed() {
        return Ok(());
    }
    pfns.into_iter().try_for_each(|pfn| mem.zero(pfn))
}

/// Check that `layout` was planned for `kernel` and `params`.
fn check_inputs(
    image: &[u8],
    kernel: &KernelInfo,
    layout: &Layout,
    params: &BuildParams<'_>,
) -> Result<(), BuildError> {
    if layout.kernel_span != (kernel.virt_kstart, kernel.virt_kend)
        || layout.v_start != kernel.virt_base
    {
        return Err(BuildError::LayoutMismatch);
    }
    if params.p2m.len() as u64 != layout.nr_pages {
        return Err(BuildError::P2mLengthMismatch {
            expected: layout.nr_pages,
            len: params.p2m.len() as u64,
        });
    }
    let given = params
        .modules
        .iter()
        .map(|m| (m.data.len() as u64, m.cmdline.len()));
    if !given.eq(layout.requested_modules.iter().copied()) {
        return Err(BuildError::ModulesMismatch);
    }
    let kernel_region = layout.kernel;
    for (index, segment) in kernel.segments.iter().enumerate() {
        let in_image = usize::try_from(segment.offset)
            .ok()
            .zip(usize::try_from(segment.filesz).ok())
            .and_then(|(start, len)| start.checked_add(len))
            .is_some_and(|end| end <= image.len());
        let in_region = segment.filesz <= segment.memsz
            && segment.vaddr >= kernel_region.start
            && segment
                .vaddr
                .checked_add(segment.memsz)
                .is_some_and(|end| end <= kernel_region.end);
        if !(in_image || segment.filesz == 0) || !in_region {
            return Err(BuildError::SegmentOutOfBounds { index });
        }
    }
    if let Some(va) = kernel.hypercall_page {
        if !va.is_multiple_of(PAGE_SIZE) || va < kernel_region.start || va >= kernel_region.end {
            return Err(BuildError::BadHypercallPage { va });
        }
    }
    Ok(())
}

/// Look up the machine frame of `pfn`.
fn mfn_of(p2m: &[u64], pfn: u64) -> Result<u64, BuildError> {
    usize::try_from(pfn)
        .ok()
        .and_then(|i| p2m.get(i))
        .copied()
        .ok_or(BuildError::P2mTooShort {
            len: p2m.len() as u64,
            pfn,
        })
}

/// The start_info page for this layout and these parameters (pure: writes nothing).
///
/// Fails only if the p2m lacks the xenstore or console pfn.
pub fn start_info(layout: &Layout, params: &BuildParams<'_>) -> Result<StartInfo, BuildError> {
    let mut info = StartInfo::new_zeroed();
    info.magic[..START_INFO_MAGIC.len()].copy_from_slice(START_INFO_MAGIC);
    info.nr_pages = layout.nr_pages;
    info.shared_info = params.shared_info_maddr;
    info.flags = (params.flags & !(SIF_MULTIBOOT_MOD | SIF_MOD_START_PFN)) | layout.module_flags();
    info.store_mfn = mfn_of(params.p2m, layout.store_pfn())?;
    info.store_evtchn = params.store_evtchn;
    info.console = match layout.domain {
        // No VGA/VESA console info for dom0: offset and size 0.
        DomainKind::Initial => StartInfoConsole::dom0(0, 0),
        DomainKind::Guest => StartInfoConsole::domu(
            mfn_of(params.p2m, layout.console_pfn())?,
            params.console_evtchn,
        ),
    };
    info.pt_base = layout.page_tables.start;
    info.nr_pt_frames = layout.nr_pt_frames();
    info.mfn_list = layout.p2m.start;
    info.mod_start = layout.mod_start;
    info.mod_len = layout.mod_len;
    let len = params.cmdline.len().min(MAX_GUEST_CMDLINE - 1);
    info.cmd_line[..len].copy_from_slice(&params.cmdline[..len]);
    // With INIT_P2M, the segment after the region holding the p2m and its tables; without,
    // 0: the p2m is in the initial region.
    if let Some(m) = layout.p2m_mapping() {
        info.first_p2m_pfn = m.first_pfn;
        info.nr_p2m_frames = m.nr_frames();
    }
    Ok(info)
}

/// Write the modules: a plain initrd, or a multiboot package (descriptors, command
/// lines, module bytes). The module pages were zeroed beforehand.
fn write_modules(
    mem: &mut impl GuestMemory,
    layout: &Layout,
    params: &BuildParams<'_>,
) -> Result<(), BuildError> {
    if !layout.package.is_empty() {
        write_va(mem, layout, layout.mod_start, layout.package.as_bytes())?;
    }
    for (placed, module) in layout.placed_modules.iter().zip(params.modules) {
        write_va(mem, layout, placed.va, module.data)?;
        if let Some(va) = placed.cmdline_va {
            write_va(mem, layout, va, module.cmdline)?;
            // The NUL is already there: the page was zeroed.
        }
    }
    Ok(())
}

/// Write the p2m list: `nr_pages` little-endian u64, page by page, the last page padded
/// with zeros.
fn write_p2m(mem: &mut impl GuestMemory, layout: &Layout, p2m: &[u64]) -> Result<(), BuildError> {
    const PER_PAGE: usize = PAGE_SIZE as usize / 8;
    let mut page = [0u8; PAGE_SIZE as usize];
    let mut chunks = p2m.chunks(PER_PAGE);
    for pfn in layout.p2m.pfn..layout.p2m.pfn + layout.p2m.pages() {
        page.fill(0);
        if let Some(chunk) = chunks.next() {
            for (slot, mfn) in page.chunks_exact_mut(8).zip(chunk) {
                slot.copy_from_slice(&mfn.to_le_bytes());
            }
        }
        mem.write(pfn, 0, &page)?;
    }
    Ok(())
}

/// Write the domain described by `kernel` and `layout` into `mem`; see the module
/// documentation. `image` must be the image `kernel` was parsed from.
pub fn build(
    image: &[u8],
    kernel: &KernelInfo,
    layout: &Layout,
    params: &BuildParams<'_>,
    mem: &mut impl GuestMemory,
) -> Result<BuiltDomain, BuildError> {
    check_inputs(image, kernel, layout, params)?;
    let info = start_info(layout, params)?;
    let tables = TableBuilder::new(layout, params.p2m, &params.hypervisor_l4_slots);

    // Any pages between VIRT_BASE and the kernel, then the kernel: zero them, then copy
    // the file bytes (bss and gaps stay zero).
    zero_pfns(mem, 0..layout.kernel.pfn)?;
    zero_region(mem, layout.kernel)?;
    for segment in &kernel.segments {
        if segment.filesz > 0 {
            // Bounds checked in check_inputs.
            let start = segment.offset as usize;
            let bytes = &image[start..start + segment.filesz as usize];
            write_va(mem, layout, segment.vaddr, bytes)?;
        }
    }
    if let Some(va) = kernel.hypercall_page {
        let mut page = Box::new([0u8; PAGE_SIZE as usize]);
        fill_hypercall_page(&mut page);
        write_va(mem, layout, va, &page[..])?;
    }

    zero_region(mem, layout.modules)?;
    write_modules(mem, layout, params)?;
    write_p2m(mem, layout, params.p2m)?;

    let mut page = Box::new([0u8; PAGE_SIZE as usize]);
    page[..core::mem::size_of::<StartInfo>()].copy_from_slice(info.as_bytes());
    mem.write(layout.start_info.pfn, 0, &page[..])?;

    zero_region(mem, layout.xenstore)?;
    zero_region(mem, layout.console)?;

    let mut entries = Box::new([0u64; PT_ENTRIES]);
    for (index, &(pfn, _)) in layout.pt_frames.iter().enumerate() {
        tables.fill(index, &mut entries)?;
        mem.write(pfn, 0, entries.as_bytes())?;
    }

    if let Some(m) = layout.p2m_mapping() {
        for (index, &(pfn, _)) in m.pt_frames.iter().enumerate() {
            tables.fill_p2m(index, &mut entries)?;
            mem.write(pfn, 0, entries.as_bytes())?;
        }
    }

    // The stack page and the padding up to v_end.
    let stack_pfn = layout.stack.pfn;
    let end_pfn = layout.nr_region_pages();
    zero_pfns(mem, stack_pfn..end_pfn)?;

    let l4_pfn = layout
        .pt_frames
        .first()
        .ok_or(BuildError::LayoutMismatch)?
        .0;
    Ok(BuiltDomain {
        entry: kernel.entry,
        stack_top: layout.stack_top(),
        start_info_va: layout.start_info_va(),
        l4_mfn: mfn_of(params.p2m, l4_pfn)?,
        pt_frames: layout.pt_frames.clone(),
    })
}
