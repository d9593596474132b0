//! Building dom0: the microkernel's half of Xen's PV start-of-day contract. The layout and
//! the writing of the initial memory are the shared, host-tested `domain-builder` crate;
//! this file gives it machine frames and turns the result into a domain and a first frame.

use crate::arch::x86_64::paging::{self, HypervisorSpace};
use crate::arch::{directmap, GuestFrame};
use crate::cmdline::Options;
use crate::domain::{init_shared_info, Domain, Vcpu};
use crate::hypercall::DomainName;
use crate::kernel::Machine;
use hypercall_abi::domctl::DOMAIN_NAME_LEN;
use crate::mkprintln;
use crate::mm::page_info::{DomainMm, Level};
use crate::multiboot::BootInfo;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use domain_builder::build::{BootModule, BuildError, BuildParams, GuestMemory};
use domain_builder::layout::{self, DomainKind, LayoutRequest, ModuleSpec};
use hypercall_abi::layout::{FLAT_KERNEL_CS, FLAT_KERNEL_SS};
use hypercall_abi::start_info::{SIF_INITDOMAIN, SIF_PRIVILEGED};

/// Smallest and largest dom0 when `dom0_mem=` is not given.
const DOM0_MIN_DEFAULT: u64 = 16 << 20;
const DOM0_MAX_DEFAULT: u64 = 512 << 20;
/// Memory kept back for the microkernel and later domains when choosing the default.
const RESERVE: u64 = 16 << 20;

/// The domain's frames, reached through the direct map.
struct DirectMem<'a> {
    p2m: &'a [u64],
}

impl GuestMemory for DirectMem<'_> {
    fn write(&mut self, pfn: u64, offset: usize, bytes: &[u8]) -> Result<(), BuildError> {
        let mfn = *self.p2m.get(pfn as usize).ok_or(BuildError::GuestMemory { pfn })?;
        if offset.checked_add(bytes.len()).is_none_or(|e| e > 4096) {
            return Err(BuildError::GuestMemory { pfn });
        }
        // SAFETY: `mfn` is a frame allocated to this domain (p2m), RAM mapped by the direct
        // map; the write stays inside that one frame (checked above) and nothing else
        // references the frame while the domain is built.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), directmap(mfn << 12).add(offset), bytes.len()) };
        Ok(())
    }

    /// Every frame was zeroed when it was allocated, just before the build.
    fn frames_scrubbed(&self) -> bool {
        true
    }

    fn zero(&mut self, pfn: u64) -> Result<(), BuildError> {
        let mfn = *self.p2m.get(pfn as usize).ok_or(BuildError::GuestMemory { pfn })?;
        // SAFETY: as in `write`, for the whole frame.
        unsafe { core::ptr::write_bytes(directmap(mfn << 12), 0, 4096) };
        Ok(())
    }
}

/// Builds dom0 from the first boot module and returns the register state to enter it with.
pub fn build_dom0(m: &mut Machine, bi: &BootInfo, opts: &Options, hv: &HypervisorSpace) -> Result<GuestFrame, String> {
    let kmod = bi.modules.first().ok_or("no dom0 kernel: give it as the first boot module")?;
    // SAFETY: boot modules are RAM reserved from the allocator for the microkernel's whole
    // run and mapped by the direct map; nothing writes them.
    let image = unsafe { core::slice::from_raw_parts(directmap(kmod.start), (kmod.end - kmod.start) as usize) };
    let kernel = domain_builder::parse_kernel(image).map_err(|e| format!("dom0 kernel is {e}"))?;

    let free_bytes = m.frames.free_frames() * 4096;
    let bytes = match opts.dom0_mem {
        Some(b) if b + RESERVE > free_bytes => {
            return Err(format!(
                "dom0_mem={}M is more than the {}M free (less {}M kept back)",
                b >> 20,
                free_bytes >> 20,
                RESERVE >> 20
            ))
        }
        Some(b) => b,
        None => (free_bytes / 4).clamp(DOM0_MIN_DEFAULT, DOM0_MAX_DEFAULT).min(free_bytes.saturating_sub(RESERVE)),
    };
    let nr_pages = bytes / 4096;

    // Frames, scrubbed, given to dom0 in the frame table, with their M2P entries.
    let mut dom_mm = DomainMm::new(0, true, nr_pages);
    let mut p2m = Vec::with_capacity(nr_pages as usize);
    for pfn in 0..nr_pages {
        let mfn = m.frames.alloc().ok_or("out of memory while allocating dom0's frames")?;
        m.frame_table.assign(mfn, &mut dom_mm).map_err(|e| format!("frame {mfn:#x} for dom0: {e:?}"))?;
        // SAFETY: a frame just taken from the allocator: RAM, direct-mapped, ours alone.
        unsafe { core::ptr::write_bytes(directmap(mfn << 12), 0, 4096) };
        paging::set_m2p(mfn, pfn, hv.m2p_entries);
        p2m.push(mfn);
    }

    let shared_info_mfn = m.frames.alloc().ok_or("out of memory for dom0's shared_info")?;
    m.frame_table
        .share_with_guest(shared_info_mfn, &mut dom_mm)
        .map_err(|e| format!("sharing shared_info with dom0: {e:?}"))?;
    init_shared_info(shared_info_mfn, m.tsc_khz, m.boot_tsc, nr_pages, m.wallclock);

    // The other boot modules go to dom0 (one: as Xen's initrd; more: as a module package).
    let modules: Vec<BootModule<'_>> = bi.modules[1..]
        .iter()
        .map(|md| BootModule {
            // SAFETY: as for the kernel image above.
            data: unsafe { core::slice::from_raw_parts(directmap(md.start), (md.end - md.start) as usize) },
            cmdline: md.cmdline.args(),
        })
        .collect();
    let specs: Vec<ModuleSpec<'_>> = modules.iter().map(|md| md.spec()).collect();
    let layout = layout::plan(&kernel, &LayoutRequest { nr_pages, modules: &specs, domain: DomainKind::Initial })
        .map_err(|e| format!("dom0 does not fit in {} MiB: {e}", nr_pages >> 8))?;
    let params = BuildParams {
        p2m: &p2m,
        hypervisor_l4_slots: hv.slots,
        shared_info_maddr: shared_info_mfn << 12,
        flags: SIF_PRIVILEGED | SIF_INITDOMAIN,
        store_evtchn: 0,
        console_evtchn: 0,
        modules: &modules,
        cmdline: kmod.cmdline.args(),
    };
    let built = domain_builder::build::build(image, &kernel, &layout, &params, &mut DirectMem { p2m: &p2m })
        .map_err(|e| format!("building dom0: {e}"))?;

    mkprintln!(
        "dom0: {} kernel, image {:#x}-{:#x}, entry {:#x}, hypercall page {}",
        kernel.guest_os.as_deref().unwrap_or("unnamed"),
        kernel.virt_kstart,
        kernel.virt_kend,
        built.entry,
        kernel.hypercall_page.map(|h| format!("{h:#x}")).unwrap_or_else(|| "none".into())
    );
    mkprintln!(
        "dom0: {} pages ({} MiB), initial region {:#x}-{:#x}, {} page-table frames, start_info at {:#x}",
        nr_pages,
        nr_pages >> 8,
        layout.v_start(),
        layout.v_end(),
        layout.nr_pt_frames(),
        built.start_info_va
    );
    let frame = GuestFrame {
        rip: built.entry,
        rsp: built.stack_top,
        rsi: built.start_info_va,
        cs: FLAT_KERNEL_CS as u64,
        ss: FLAT_KERNEL_SS as u64,
        rflags: 0x202,
        ..GuestFrame::default()
    };
    let mut name = [0u8; DOMAIN_NAME_LEN];
    name[..8].copy_from_slice(b"Domain-0");
    let mut dom0 = Domain::new(0, DomainName::parse(&name).expect("a valid name"), true, 1, nr_pages);
    dom0.mm = dom_mm;
    dom0.shared_info_mfn = shared_info_mfn;
    dom0.pause_count = 0;
    dom0.vcpus[0] = Vcpu { frame, started: true, ..Vcpu::default() };
    m.sched.add_domain(dom0.id, dom0.vcpus.len());
    m.domains.push(dom0);
    m.events
        .add_domain(
            hypercall_abi::types::DomId(0),
            crate::event::DomainConfig::control(1),
            crate::events_machine::MachineLayout::new(crate::events_machine::SharedInfoEvents::new(shared_info_mfn)),
        )
        .map_err(|e| format!("dom0's event channels: {}", e.name()))?;
    m.grants.add_domain(0, grant_tables::Limits::default());
    // The start-of-day tables become what they are to the hypervisor: the L4 is validated
    // (and with it every table and mapping below it), pinned, and installed as the base.
    let idx = m.domains.len() - 1;
    m.with_mm(idx, |mm| {
        mm.pin(built.l4_mfn, Level::L4)?;
        mm.install_baseptr(built.l4_mfn)
    })
    .map_err(|e| format!("dom0's start-of-day page tables do not validate: {}", e.name()))?;
    Ok(frame)
}
