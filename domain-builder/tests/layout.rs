//! Host tests of `layout::plan`: Xen's region order and padding rule, page-table frame
//! counts (checked against a brute-force count), module placement and the errors.

mod common;

use std::collections::BTreeSet;

use common::*;
use domain_builder::layout::Region;
use domain_builder::{
    parse_kernel, plan, DomainKind, KernelInfo, Layout, LayoutError, LayoutRequest, ModuleSpec,
};
use hypercall_abi::start_info::SIF_MULTIBOOT_MOD;

const MIB: u64 = 1 << 20;

fn kernel(image: &ElfImage) -> KernelInfo {
    parse_kernel(&image.build()).expect("valid test kernel")
}

fn request(nr_pages: u64, modules: &[ModuleSpec<'_>]) -> Layout {
    plan(
        &kernel(&low_kernel()),
        &LayoutRequest {
            nr_pages,
            modules,
            domain: DomainKind::Guest,
        },
    )
    .expect("layout")
}

/// Page tables a brute-force walk over every page of the region needs, per level (L1 first).
fn brute_force_counts(layout: &Layout) -> [usize; 4] {
    let mut sets: [BTreeSet<u64>; 3] = Default::default();
    let mut va = layout.v_start();
    while va < layout.v_end() {
        sets[0].insert(va >> 21);
        sets[1].insert(va >> 30);
        sets[2].insert(va >> 39);
        va += 4096;
    }
    [sets[0].len(), sets[1].len(), sets[2].len(), 1]
}

/// Every structural property a layout must have.
fn check_layout(layout: &Layout) {
    let v_start = layout.v_start();
    let regions: Vec<(&str, Region)> = vec![
        ("kernel", layout.kernel()),
        ("modules", layout.modules()),
        ("p2m", layout.p2m()),
        ("start_info", layout.start_info()),
        ("xenstore", layout.xenstore()),
        ("console", layout.console()),
        ("page tables", layout.page_tables()),
        ("stack", layout.stack()),
    ];
    for pair in regions.windows(2) {
        let ((a_name, a), (b_name, b)) = (&pair[0], &pair[1]);
        assert_eq!(a.end, b.start, "{a_name} is followed by {b_name}");
    }
    for (name, r) in &regions {
        assert_eq!(r.start % 4096, 0, "{name} page aligned");
        assert_eq!(r.end % 4096, 0, "{name} ends page aligned");
        assert_eq!(r.pfn, (r.start - v_start) >> 12, "{name} pfn");
    }
    assert_eq!(
        layout.p2m().end - layout.p2m().start,
        (layout.nr_pages() * 8).next_multiple_of(4096)
    );
    for one_page in [
        layout.start_info(),
        layout.xenstore(),
        layout.console(),
        layout.stack(),
    ] {
        assert_eq!(one_page.pages(), 1);
    }
    assert_eq!(layout.v_end() % (4 * MIB), 0);
    let spare = layout.v_end() - layout.stack().end;
    assert!(spare >= 512 << 10, "spare {spare:#x} after the stack");
    assert!(spare < 512 * 1024 + 4 * MIB);
    assert_eq!(layout.stack_top(), layout.stack().end);
    assert_eq!(layout.start_info_va(), layout.start_info().start);
    assert_eq!(layout.store_pfn(), layout.xenstore().pfn);
    assert_eq!(layout.console_pfn(), layout.console().pfn);
    assert_eq!(layout.nr_region_pages(), (layout.v_end() - v_start) / 4096);
    assert!(layout.nr_region_pages() <= layout.nr_pages());

    // The tables: exactly as many as a brute-force count of the region (which includes
    // them), L4 first, then L3s, L2s, L1s, occupying the page-table region in order.
    let counts = brute_force_counts(layout);
    let frames = layout.pt_frames();
    assert_eq!(frames.len(), counts.iter().sum::<usize>());
    assert_eq!(layout.nr_pt_frames(), frames.len() as u64);
    assert_eq!(layout.page_tables().pages(), frames.len() as u64);
    let mut expected_levels = Vec::new();
    for level in (1..=4u8).rev() {
        expected_levels.extend(std::iter::repeat_n(level, counts[usize::from(level) - 1]));
    }
    assert_eq!(
        frames.iter().map(|&(_, l)| l).collect::<Vec<_>>(),
        expected_levels
    );
    for (i, &(pfn, _)) in frames.iter().enumerate() {
        assert_eq!(pfn, layout.page_tables().pfn + i as u64);
    }
}

#[test]
fn region_order_without_modules() {
    let layout = request(4096, &[]);
    check_layout(&layout);
    assert_eq!(layout.v_start(), 0x40_0000);
    assert_eq!(
        layout.kernel(),
        Region {
            start: 0x40_0000,
            end: 0x40_5000,
            pfn: 0
        }
    );
    assert_eq!(layout.modules().pages(), 0);
    assert_eq!(
        (layout.mod_start(), layout.mod_len(), layout.module_flags()),
        (0, 0, 0)
    );
    // 4096 pages of p2m = 32 KiB = 8 pages.
    assert_eq!(
        layout.p2m(),
        Region {
            start: 0x40_5000,
            end: 0x40_d000,
            pfn: 5
        }
    );
    assert_eq!(layout.start_info().start, 0x40_d000);
    assert_eq!(layout.xenstore().start, 0x40_e000);
    assert_eq!(layout.console().start, 0x40_f000);
    assert_eq!(layout.page_tables().start, 0x41_0000);
    // Region 0x400000..0x800000: 1 L4, 1 L3, 1 L2, 2 L1s.
    assert_eq!(
        layout.pt_frames(),
        &[(16, 4), (17, 3), (18, 2), (19, 1), (20, 1)]
    );
    assert_eq!(
        layout.stack(),
        Region {
            start: 0x41_5000,
            end: 0x41_6000,
            pfn: 21
        }
    );
    assert_eq!(layout.v_end(), 0x80_0000);
    assert_eq!(layout.nr_region_pages(), 1024);
    assert_eq!(layout.pfn_of(0x40_0fff), Some(0));
    assert_eq!(layout.pfn_of(0x80_0000), None);
}

#[test]
fn padding_rule_adds_four_mib_when_less_than_512_kib_remain() {
    // A module that leaves the stack just below a 4 MiB boundary.
    let len = 0x7b_0000 - 0x40_5000;
    let layout = request(4096, &[ModuleSpec { len, cmdline: b"" }]);
    check_layout(&layout);
    assert!(layout.stack().end <= 0x80_0000 && 0x80_0000 - layout.stack().end < 512 << 10);
    assert_eq!(layout.v_end(), 0xc0_0000);
}

#[test]
fn one_module_is_a_plain_initrd() {
    let layout = request(
        8192,
        &[ModuleSpec {
            len: 10_000,
            cmdline: b"ignored",
        }],
    );
    check_layout(&layout);
    assert_eq!(layout.mod_start(), 0x40_5000);
    assert_eq!(layout.mod_len(), 10_000);
    assert_eq!(layout.module_flags(), 0);
    assert_eq!(
        layout.modules(),
        Region {
            start: 0x40_5000,
            end: 0x40_8000,
            pfn: 5
        }
    );
    assert!(layout.package_descriptors().is_empty());
    assert_eq!(layout.placed_modules().len(), 1);
    assert_eq!(layout.placed_modules()[0].cmdline_va, None);

    // An empty single module is no module, as in Xen.
    let layout = request(
        8192,
        &[ModuleSpec {
            len: 0,
            cmdline: b"",
        }],
    );
    assert_eq!((layout.mod_start(), layout.mod_len()), (0, 0));
}

#[test]
fn three_modules_form_a_multiboot_package() {
    let modules = [
        ModuleSpec {
            len: 5000,
            cmdline: b"first",
        },
        ModuleSpec {
            len: 0,
            cmdline: b"",
        },
        ModuleSpec {
            len: 4096,
            cmdline: b"third module",
        },
    ];
    let layout = request(8192, &modules);
    check_layout(&layout);
    let base = 0x40_5000;
    assert_eq!(layout.mod_start(), base);
    assert_eq!(layout.module_flags(), SIF_MULTIBOOT_MOD);
    let d = layout.package_descriptors();
    assert_eq!(d.len(), 4);
    // Descriptors (4 * 16 = 64 bytes), then "first\0" at 64, "\0" at 70, "third module\0" at 71.
    assert_eq!(
        (d[0].mod_start, d[0].mod_end, d[0].cmdline, d[0].pad),
        (0x1000, 0x1000 + 4999, 64, 0)
    );
    assert_eq!(
        (d[1].mod_start, d[1].mod_end, d[1].cmdline),
        (0x3000, 0x2fff, 70)
    );
    assert_eq!(
        (d[2].mod_start, d[2].mod_end, d[2].cmdline),
        (0x3000, 0x3fff, 71)
    );
    assert!(d[3].is_terminator());
    assert_eq!(layout.mod_len(), 0x4000);
    assert_eq!(
        layout.modules(),
        Region {
            start: base,
            end: base + 0x4000,
            pfn: 5
        }
    );
    let placed = layout.placed_modules();
    assert_eq!(placed[0].va, base + 0x1000);
    assert_eq!(placed[0].cmdline_va, Some(base + 64));
    assert_eq!(placed[2].va, base + 0x3000);
}

#[test]
fn not_enough_pages() {
    let good = request(1024, &[]);
    assert_eq!(good.nr_region_pages(), 1024);
    let err = plan(
        &kernel(&low_kernel()),
        &LayoutRequest {
            nr_pages: 1023,
            modules: &[],
            domain: DomainKind::Guest,
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        LayoutError::NotEnoughPages {
            needed: 1024,
            nr_pages: 1023
        }
    );
    assert!(err.to_string().contains("1024"));
    let err = plan(
        &kernel(&low_kernel()),
        &LayoutRequest {
            nr_pages: 4096,
            modules: &[ModuleSpec {
                len: 64 * MIB,
                cmdline: b"",
            }],
            domain: DomainKind::Initial,
        },
    )
    .unwrap_err();
    assert!(matches!(err, LayoutError::NotEnoughPages { .. }));
}

#[test]
fn table_counts_across_boundaries() {
    // (virt_base, expected (L1, L2, L3) tables).
    let cases = [
        // 4 MiB region crossing a 2 MiB boundary: 2 L1s.
        (0x40_0000u64, (2, 1, 1)),
        // Ending exactly at 1 GiB: one L2.
        (0x3fe0_0000, (1, 1, 1)),
        // Starting 256 KiB before 1 GiB: the padding rule pushes the end to 1 GiB + 4 MiB,
        // so the region crosses 1 GiB: 3 L1s, two L2s.
        (0x3ffc_0000, (3, 2, 1)),
        // The same across a 512 GiB boundary: two L3s as well.
        (0x7f_fffc_0000, (3, 2, 2)),
        // Linux's top 2 GiB.
        (0xffff_ffff_8000_0000, (2, 1, 1)),
    ];
    for (base, (l1, l2, l3)) in cases {
        let info = kernel(&kernel_based_at(base));
        let layout = plan(
            &info,
            &LayoutRequest {
                nr_pages: 2048,
                modules: &[],
                domain: DomainKind::Guest,
            },
        )
        .expect("layout");
        check_layout(&layout);
        let frames = layout.pt_frames();
        let count = |level| frames.iter().filter(|&&(_, l)| l == level).count();
        assert_eq!(
            (count(1), count(2), count(3), count(4)),
            (l1, l2, l3, 1),
            "base {base:#x}"
        );
    }
}

#[test]
fn large_region_table_counts() {
    // A 1.5 GiB module and 1 Mi pages of p2m (8 MiB): hundreds of L1s, crossing 1 GiB.
    let info = kernel(&low_kernel());
    let modules = [ModuleSpec {
        len: 3 << 29,
        cmdline: b"",
    }];
    let layout = plan(
        &info,
        &LayoutRequest {
            nr_pages: 1 << 20,
            modules: &modules,
            domain: DomainKind::Guest,
        },
    )
    .expect("layout");
    check_layout(&layout);
    assert!(layout.nr_pt_frames() > 770);
    assert_eq!(
        layout.pt_frames().iter().filter(|&&(_, l)| l == 2).count(),
        2
    );
}

#[test]
fn table_count_is_a_fixed_point_for_many_sizes() {
    // Sweep module sizes so that the tables (and the stack after them) land on every
    // offset around 2 MiB and 4 MiB boundaries; each time the count must be exact.
    let info = kernel(&kernel_based_at(0x3fc0_0000));
    for step in 0..600u64 {
        let len = 0x1e_0000 + step * 0x1000 + (step % 3) * 0x123;
        let modules = [ModuleSpec { len, cmdline: b"" }];
        let layout = plan(
            &info,
            &LayoutRequest {
                nr_pages: 4096,
                modules: &modules,
                domain: DomainKind::Guest,
            },
        )
        .expect("layout");
        check_layout(&layout);
    }
}

#[test]
fn region_address_space_errors() {
    // Region running off the top of the lower half.
    let mut info = kernel(&kernel_based_at(0x7fff_fffc_0000));
    let req = LayoutRequest {
        nr_pages: 4096,
        modules: &[],
        domain: DomainKind::Guest,
    };
    assert!(matches!(
        plan(&info, &req),
        Err(LayoutError::NonCanonical { .. })
    ));

    // Region at the very top of the address space: v_end would wrap.
    let top = kernel(&kernel_based_at(0xffff_ffff_ffc0_0000));
    assert_eq!(plan(&top, &req), Err(LayoutError::AddressOverflow));

    // Hand-made descriptions are checked too.
    info.virt_base = 0xffff_8000_0000_0000;
    info.virt_kstart = info.virt_base;
    info.virt_kend = info.virt_base + 0x1000;
    assert!(matches!(
        plan(&info, &req),
        Err(LayoutError::OverlapsHypervisor { .. })
    ));
    info.virt_kstart = info.virt_base - 0x1000;
    assert_eq!(plan(&info, &req), Err(LayoutError::BadKernel));
    info.virt_base += 1;
    assert_eq!(plan(&info, &req), Err(LayoutError::BadKernel));

    // p2m size overflow.
    let req = LayoutRequest {
        nr_pages: u64::MAX / 4,
        modules: &[],
        domain: DomainKind::Guest,
    };
    assert_eq!(
        plan(&kernel(&low_kernel()), &req),
        Err(LayoutError::AddressOverflow)
    );
}

#[test]
fn package_too_large() {
    let modules = [
        ModuleSpec {
            len: 3 << 30,
            cmdline: b"",
        },
        ModuleSpec {
            len: 2 << 30,
            cmdline: b"",
        },
    ];
    let req = LayoutRequest {
        nr_pages: 1 << 22,
        modules: &modules,
        domain: DomainKind::Guest,
    };
    assert_eq!(
        plan(&kernel(&low_kernel()), &req),
        Err(LayoutError::ModulePackageTooLarge)
    );
}

#[test]
fn layout_errors_have_messages() {
    for err in [
        LayoutError::BadKernel,
        LayoutError::AddressOverflow,
        LayoutError::ModulePackageTooLarge,
        LayoutError::NotEnoughPages {
            needed: 2,
            nr_pages: 1,
        },
        LayoutError::NonCanonical { start: 0, end: 1 },
        LayoutError::OverlapsHypervisor { start: 0, end: 1 },
    ] {
        assert!(!err.to_string().is_empty());
    }
}
