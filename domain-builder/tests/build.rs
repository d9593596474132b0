//! Host tests of `build`: a fake guest memory and a p2m that is not the identity; the
//! produced page tables are walked like an MMU from the L4, and everything the guest
//! will read (segments, bss, modules, p2m list, start_info, hypercall page) is read back
//! through them.

mod common;

use std::collections::HashMap;

use common::memory::{scrambled_p2m, FakeMemory, PAGE};
use common::*;
use domain_builder::{
    build, fill_hypercall_page, parse_kernel, plan, start_info, BootModule, BuildParams,
    BuiltDomain, DomainKind, KernelInfo, Layout, LayoutRequest,
};
use hypercall_abi::layout::pte;
use hypercall_abi::start_info::{
    MultibootModList, StartInfo, SIF_INITDOMAIN, SIF_MULTIBOOT_MOD, SIF_PRIVILEGED,
};
use zerocopy::FromBytes;

const UPPER: u64 = pte::PRESENT | pte::RW | pte::USER | pte::ACCESSED | pte::DIRTY;
const LEAF_RO: u64 = pte::PRESENT | pte::USER | pte::ACCESSED;
const LEAF_RW: u64 = LEAF_RO | pte::RW;

/// A built domain and what it takes to look at it like the CPU would.
struct Built {
    kernel: KernelInfo,
    image: Vec<u8>,
    layout: Layout,
    p2m: Vec<u64>,
    mem: FakeMemory,
    m2p: HashMap<u64, u64>,
    domain: BuiltDomain,
    slots: [u64; 16],
}

/// Hypervisor L4 entries with recognisable values.
fn hypervisor_slots() -> [u64; 16] {
    std::array::from_fn(|i| 0x00ab_c000_0000_0000 | ((i as u64) << 12) | 0x63)
}

fn build_domain(
    image: &ElfImage,
    nr_pages: u64,
    modules: &[BootModule<'_>],
    kind: DomainKind,
    cmdline: &[u8],
) -> Built {
    build_domain_in(image, nr_pages, modules, kind, cmdline, FakeMemory::new(nr_pages))
}

fn build_domain_in(
    image: &ElfImage,
    nr_pages: u64,
    modules: &[BootModule<'_>],
    kind: DomainKind,
    cmdline: &[u8],
    mut mem: FakeMemory,
) -> Built {
    let bytes = image.build();
    let kernel = parse_kernel(&bytes).expect("valid kernel");
    let specs: Vec<_> = modules.iter().map(BootModule::spec).collect();
    let layout = plan(
        &kernel,
        &LayoutRequest {
            nr_pages,
            modules: &specs,
            domain: kind,
        },
    )
    .expect("layout");
    let p2m = scrambled_p2m(nr_pages);
    let slots = hypervisor_slots();
    let params = BuildParams {
        p2m: &p2m,
        hypervisor_l4_slots: slots,
        shared_info_maddr: 0x1234_5000,
        flags: if kind == DomainKind::Initial {
            SIF_PRIVILEGED | SIF_INITDOMAIN
        } else {
            0
        },
        store_evtchn: 3,
        console_evtchn: 4,
        modules,
        cmdline,
    };
    let domain = build(&bytes, &kernel, &layout, &params, &mut mem).expect("build");
    let m2p = p2m
        .iter()
        .enumerate()
        .map(|(pfn, &mfn)| (mfn, pfn as u64))
        .collect();
    Built {
        kernel,
        image: bytes,
        layout,
        p2m,
        mem,
        m2p,
        domain,
        slots,
    }
}

impl Built {
    /// Page-table entry `index` of the table in machine frame `mfn`.
    fn entry(&self, mfn: u64, index: usize) -> u64 {
        let pfn = self.m2p[&mfn];
        let frame = &self.mem.frames[&pfn];
        u64::from_le_bytes(frame[index * 8..index * 8 + 8].try_into().unwrap())
    }

    /// Translate `va` through the tables: the leaf's machine frame and flags, after
    /// checking every upper entry on the way.
    fn translate(&self, va: u64) -> Option<(u64, u64)> {
        let mut mfn = self.domain.l4_mfn;
        for shift in [39, 30, 21] {
            let entry = self.entry(mfn, ((va >> shift) & 511) as usize);
            if entry & pte::PRESENT == 0 {
                return None;
            }
            assert_eq!(
                entry & !pte::ADDR_MASK,
                UPPER,
                "upper entry flags for {va:#x}"
            );
            mfn = (entry & pte::ADDR_MASK) >> 12;
        }
        let leaf = self.entry(mfn, ((va >> 12) & 511) as usize);
        (leaf & pte::PRESENT != 0)
            .then_some(((leaf & pte::ADDR_MASK) >> 12, leaf & !pte::ADDR_MASK))
    }

    /// Read guest virtual memory through the page tables.
    fn read(&self, va: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut va = va;
        while out.len() < len {
            let (mfn, _) = self
                .translate(va)
                .unwrap_or_else(|| panic!("{va:#x} not mapped"));
            let frame = &self.mem.frames[&self.m2p[&mfn]];
            let offset = (va % PAGE as u64) as usize;
            let chunk = (len - out.len()).min(PAGE - offset);
            out.extend_from_slice(&frame[offset..offset + chunk]);
            va += chunk as u64;
        }
        out
    }

    /// Every leaf mapping reachable from the L4 (outside the hypervisor slots), as va.
    fn all_mappings(&self) -> Vec<u64> {
        let sign_extend = |va: u64| {
            if va & (1 << 47) != 0 {
                va | 0xffff_0000_0000_0000
            } else {
                va
            }
        };
        let mut out = Vec::new();
        for i4 in (0..512).filter(|i| !(256..=271).contains(i)) {
            let e4 = self.entry(self.domain.l4_mfn, i4);
            if e4 & pte::PRESENT == 0 {
                continue;
            }
            for i3 in 0..512 {
                let e3 = self.entry((e4 & pte::ADDR_MASK) >> 12, i3);
                if e3 & pte::PRESENT == 0 {
                    continue;
                }
                for i2 in 0..512 {
                    let e2 = self.entry((e3 & pte::ADDR_MASK) >> 12, i2);
                    if e2 & pte::PRESENT == 0 {
                        continue;
                    }
                    for i1 in 0..512 {
                        let e1 = self.entry((e2 & pte::ADDR_MASK) >> 12, i1);
                        if e1 != 0 {
                            let va = (i4 as u64) << 39
                                | (i3 as u64) << 30
                                | (i2 as u64) << 21
                                | (i1 as u64) << 12;
                            out.push(sign_extend(va));
                        }
                    }
                }
            }
        }
        out
    }

    fn start_info(&self) -> StartInfo {
        let bytes = self.read(self.domain.start_info_va, std::mem::size_of::<StartInfo>());
        StartInfo::read_from_bytes(&bytes).unwrap()
    }

    /// Check the page tables and every generic part of the domain.
    fn check_common(&self) {
        let layout = &self.layout;
        // Every region page maps to its p2m frame; page tables read-only, the rest RW.
        let pt_pfns: Vec<u64> = layout.pt_frames().iter().map(|&(pfn, _)| pfn).collect();
        for pfn in 0..layout.nr_region_pages() {
            let va = layout.v_start() + pfn * PAGE as u64;
            let (mfn, flags) = self
                .translate(va)
                .unwrap_or_else(|| panic!("{va:#x} not mapped"));
            assert_eq!(mfn, self.p2m[pfn as usize], "mfn of pfn {pfn}");
            let expected = if pt_pfns.contains(&pfn) {
                LEAF_RO
            } else {
                LEAF_RW
            };
            assert_eq!(flags, expected, "flags of pfn {pfn}");
        }
        // Nothing else is mapped but the p2m's own mapping (INIT_P2M), read-write.
        let mapped = self.all_mappings();
        let p2m_pages = layout.p2m_mapping().map_or(0, |m| m.data_pages);
        assert_eq!(mapped.len() as u64, layout.nr_region_pages() + p2m_pages);
        assert!(mapped.iter().all(|&va| (va >= layout.v_start() && va < layout.v_end())
            || layout.p2m_mapping().is_some_and(|m| va >= m.va && va < m.end())));
        // Hypervisor slots copied verbatim.
        for (i, &slot) in self.slots.iter().enumerate() {
            assert_eq!(self.entry(self.domain.l4_mfn, 256 + i), slot);
        }
        // Table frames really are the layout's frames, with the L4 first.
        assert_eq!(self.domain.pt_frames, layout.pt_frames());
        assert_eq!(self.domain.l4_mfn, self.p2m[pt_pfns[0] as usize]);
        assert_eq!(self.domain.pt_frames[0].1, 4);

        // Kernel contents and zeroed bss.
        for segment in &self.kernel.segments {
            let got = self.read(segment.vaddr, segment.memsz as usize);
            let file =
                &self.image[segment.offset as usize..(segment.offset + segment.filesz) as usize];
            let hypercall = self.kernel.hypercall_page.unwrap_or(u64::MAX);
            for (i, &byte) in got.iter().enumerate() {
                let va = segment.vaddr + i as u64;
                if va >= hypercall && va < hypercall + PAGE as u64 {
                    continue;
                }
                let want = if (i as u64) < segment.filesz {
                    file[i]
                } else {
                    0
                };
                assert_eq!(byte, want, "byte at {va:#x}");
            }
        }
        if let Some(va) = self.kernel.hypercall_page {
            let mut page = [0u8; PAGE];
            fill_hypercall_page(&mut page);
            assert_eq!(self.read(va, PAGE), page);
        }

        // The p2m list the guest sees.
        let list = self.read(layout.p2m().start, self.p2m.len() * 8);
        let read: Vec<u64> = list
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(read, self.p2m);

        // No garbage anywhere: pages the builder does not fill are zero.
        for region in [layout.xenstore(), layout.console(), layout.stack()] {
            assert!(self.read(region.start, PAGE).iter().all(|&b| b == 0));
        }
        let padding = layout.v_end() - layout.stack().end;
        assert!(self
            .read(layout.stack().end, padding as usize)
            .iter()
            .all(|&b| b == 0));
        if layout.kernel().start > layout.v_start() {
            let gap = (layout.kernel().start - layout.v_start()) as usize;
            assert!(self.read(layout.v_start(), gap).iter().all(|&b| b == 0));
        }
        let si_tail = self.read(
            layout.start_info_va() + std::mem::size_of::<StartInfo>() as u64,
            PAGE - std::mem::size_of::<StartInfo>(),
        );
        assert!(si_tail.iter().all(|&b| b == 0));

        // Start of day registers.
        assert_eq!(self.domain.entry, self.kernel.entry);
        assert_eq!(self.domain.stack_top, layout.stack().end);
        assert_eq!(self.domain.start_info_va, layout.start_info().start);
    }
}

#[test]
fn guest_without_modules() {
    let built = build_domain(
        &low_kernel(),
        2048,
        &[],
        DomainKind::Guest,
        b"console=hvc0 root=/dev/xvda",
    );
    built.check_common();
    let si = built.start_info();
    let layout = &built.layout;
    assert_eq!(si.magic_str(), b"xen-3.0-x86_64");
    assert_eq!(si.nr_pages, 2048);
    assert_eq!(si.shared_info, 0x1234_5000);
    assert_eq!(si.flags, 0);
    assert_eq!(si.store_mfn, built.p2m[layout.store_pfn() as usize]);
    assert_eq!(si.store_evtchn, 3);
    assert_eq!(
        si.console.domu_mfn(),
        built.p2m[layout.console_pfn() as usize]
    );
    assert_eq!(si.console.domu_evtchn(), 4);
    assert_eq!(si.pt_base, layout.page_tables().start);
    assert_eq!(si.nr_pt_frames, layout.nr_pt_frames());
    assert_eq!(si.mfn_list, layout.p2m().start);
    assert_eq!((si.mod_start, si.mod_len), (0, 0));
    assert_eq!(si.cmdline(), b"console=hvc0 root=/dev/xvda");
    assert_eq!((si.first_p2m_pfn, si.nr_p2m_frames), (0, 0));
    // start_info() is the same thing, without memory.
    let params = BuildParams {
        p2m: &built.p2m,
        hypervisor_l4_slots: built.slots,
        shared_info_maddr: 0x1234_5000,
        flags: 0,
        store_evtchn: 3,
        console_evtchn: 4,
        modules: &[],
        cmdline: b"console=hvc0 root=/dev/xvda",
    };
    assert_eq!(start_info(layout, &params).unwrap(), si);
}

#[test]
fn linux_style_dom0_with_initrd() {
    let initrd = pattern(10_000, 3);
    let modules = [BootModule {
        data: &initrd,
        cmdline: b"not passed",
    }];
    // Linux style: VIRT_BASE 16 MiB below the kernel, so the region has a 16 MiB gap.
    let built = build_domain(
        &kernel_at(KernelPlace::LINUX),
        8192,
        &modules,
        DomainKind::Initial,
        b"",
    );
    built.check_common();
    let si = built.start_info();
    assert_eq!(si.flags, SIF_PRIVILEGED | SIF_INITDOMAIN);
    assert_eq!(si.console.dom0_info_off(), 0);
    assert_eq!(si.console.dom0_info_size(), 0);
    assert_eq!(si.mod_start, built.layout.kernel().end);
    assert_eq!(si.mod_len, 10_000);
    assert_eq!(built.read(si.mod_start, initrd.len()), initrd);
    // The module's last page is zero past the module.
    let tail = built.layout.modules().end - (si.mod_start + 10_000);
    assert!(built
        .read(si.mod_start + 10_000, tail as usize)
        .iter()
        .all(|&b| b == 0));
    assert_eq!(si.cmdline(), b"");
    assert_eq!(built.layout.v_start(), 0xffff_ffff_8000_0000);
}

/// A kernel with XEN_ELFNOTE_INIT_P2M (Linux's, at 512 GiB) gets its p2m mapped there,
/// outside the initial region: in the frames after the region, with their own tables
/// under the region's L4, and start_info says where (`mfn_list`, `first_p2m_pfn`,
/// `nr_p2m_frames`), as Xen's builders do.
#[test]
fn init_p2m_maps_the_p2m_at_its_own_address() {
    const P2M_VA: u64 = 0x80_0000_0000;
    let mut image = kernel_at(KernelPlace::LINUX);
    image.notes.extend(xen_u64(note::INIT_P2M, P2M_VA));
    let nr_pages = 70_000; // 547 KiB of p2m: 137 pages, two L1 tables.
    let built = build_domain(&image, nr_pages, &[], DomainKind::Guest, b"");
    built.check_common();
    let m = built.layout.p2m_mapping().expect("a separate p2m mapping").clone();
    assert_eq!((m.va, m.first_pfn, m.data_pages), (P2M_VA, built.layout.nr_region_pages(), 137));
    assert_eq!(m.counts, [1, 1, 1]);
    let si = built.start_info();
    assert_eq!(si.mfn_list, P2M_VA);
    assert_eq!((si.first_p2m_pfn, si.nr_p2m_frames), (m.first_pfn, 137 + 3));
    let p2m_bytes: Vec<u8> = built.p2m.iter().flat_map(|m| m.to_le_bytes()).collect();
    assert_eq!(built.read(P2M_VA, p2m_bytes.len()), p2m_bytes);
    // The p2m's frames are those after the region, its tables the next three.
    assert_eq!(built.translate(P2M_VA).map(|(mfn, _)| mfn), Some(built.p2m[m.first_pfn as usize]));
    assert_eq!(built.layout.nr_built_pages(), m.first_pfn + 140);
    // The region no longer holds the p2m: start_info follows the modules (none) at once.
    assert_eq!(built.layout.start_info().start, built.layout.kernel().end);
}

/// An INIT_P2M address sharing a 512 GiB slot with the region (or unusable otherwise)
/// leaves the p2m in the region.
#[test]
fn an_unusable_init_p2m_leaves_the_p2m_in_the_region() {
    for va in [0xffff_ffff_0000_0000u64, 0x80_0000_0800] {
        let mut image = kernel_at(KernelPlace::LINUX);
        image.notes.extend(xen_u64(note::INIT_P2M, va));
        let built = build_domain(&image, 8192, &[], DomainKind::Guest, b"");
        built.check_common();
        assert!(built.layout.p2m_mapping().is_none(), "{va:#x}");
        assert_eq!(built.start_info().mfn_list, built.layout.p2m().start);
        assert_eq!(built.start_info().nr_p2m_frames, 0);
    }
}

#[test]
fn three_modules_as_a_package() {
    let data: Vec<Vec<u8>> = vec![pattern(5000, 1), Vec::new(), pattern(4096, 2)];
    let cmdlines: [&[u8]; 3] = [b"first", b"", b"third module"];
    let modules: Vec<BootModule<'_>> = data
        .iter()
        .zip(cmdlines)
        .map(|(d, c)| BootModule {
            data: d,
            cmdline: c,
        })
        .collect();
    let built = build_domain(&low_kernel(), 4096, &modules, DomainKind::Guest, b"");
    built.check_common();
    let si = built.start_info();
    assert_eq!(si.flags & SIF_MULTIBOOT_MOD, SIF_MULTIBOOT_MOD);
    let package = built.read(si.mod_start, si.mod_len as usize);
    // Walk the package as a guest would: descriptors until mod_start == 0.
    let mut found = Vec::new();
    for chunk in package.chunks_exact(16) {
        let d = MultibootModList::read_from_bytes(chunk).unwrap();
        if d.is_terminator() {
            break;
        }
        let bytes = package[d.mod_start as usize..(d.mod_end as usize + 1)].to_vec();
        let cmdline: Vec<u8> = package[d.cmdline as usize..]
            .iter()
            .take_while(|&&b| b != 0)
            .copied()
            .collect();
        found.push((bytes, cmdline));
    }
    assert_eq!(found.len(), 3);
    for ((bytes, cmdline), (want, want_cmdline)) in found.iter().zip(data.iter().zip(cmdlines)) {
        assert_eq!(bytes, want);
        assert_eq!(cmdline, want_cmdline);
    }
    assert_eq!(
        &package[..16 * 4],
        built
            .layout
            .package_descriptors()
            .iter()
            .flat_map(|d| {
                [d.mod_start, d.mod_end, d.cmdline, d.pad]
                    .into_iter()
                    .flat_map(u32::to_le_bytes)
            })
            .collect::<Vec<u8>>()
            .as_slice()
    );
}

#[test]
fn long_command_line_is_truncated() {
    let cmdline = vec![b'x'; 2000];
    let built = build_domain(&low_kernel(), 2048, &[], DomainKind::Guest, &cmdline);
    let si = built.start_info();
    assert_eq!(si.cmdline().len(), 1023);
    assert_eq!(si.cmd_line[1023], 0);
}

#[test]
fn region_crossing_a_gib_boundary() {
    // Kernel 256 KiB below 1 GiB: the region crosses into the next L2 table.
    let built = build_domain(
        &kernel_based_at(0x3ffc_0000),
        2048,
        &[],
        DomainKind::Guest,
        b"",
    );
    assert_eq!(
        built
            .layout
            .pt_frames()
            .iter()
            .filter(|&&(_, l)| l == 2)
            .count(),
        2
    );
    built.check_common();
}

#[test]
fn scrubbed_memory_is_not_zeroed_again_and_ends_the_same() {
    // The same guest built into garbage-filled memory (the builder zeroes what it does not
    // write) and into scrubbed memory that says so (the builder zeroes nothing): every
    // frame ends byte for byte the same, and the second build made no zero calls.
    let nr = 2048;
    let dirty = build_domain(&low_kernel(), nr, &[], DomainKind::Guest, b"x=1");
    let clean = build_domain_in(&low_kernel(), nr, &[], DomainKind::Guest, b"x=1", FakeMemory::scrubbed(nr));
    assert!(dirty.mem.zero_calls > 0);
    assert_eq!(clean.mem.zero_calls, 0);
    clean.check_common();
    // The region is what the builder owns; pages past it stay as they were.
    for pfn in 0..dirty.layout.nr_region_pages() {
        assert!(dirty.mem.frames[&pfn] == clean.mem.frames[&pfn], "pfn {pfn:#x} differs");
    }
}
