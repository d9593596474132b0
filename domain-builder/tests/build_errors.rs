//! Host tests of `build` refusing inconsistent inputs, and of `start_info` flags.

mod common;

use common::memory::{scrambled_p2m, FakeMemory};
use common::*;
use domain_builder::{
    build, parse_kernel, plan, start_info, BootModule, BuildError, BuildParams, DomainKind,
    KernelInfo, Layout, LayoutRequest,
};
use hypercall_abi::start_info::{SIF_MOD_START_PFN, SIF_MULTIBOOT_MOD};

/// Inputs for the error tests: a low kernel planned for 2048 pages.
fn error_setup() -> (Vec<u8>, KernelInfo, Layout, Vec<u64>) {
    let bytes = low_kernel().build();
    let kernel = parse_kernel(&bytes).unwrap();
    let layout = plan(
        &kernel,
        &LayoutRequest {
            nr_pages: 2048,
            modules: &[],
            domain: DomainKind::Guest,
        },
    )
    .unwrap();
    (bytes, kernel, layout, scrambled_p2m(2048))
}

fn params<'a>(p2m: &'a [u64], modules: &'a [BootModule<'a>]) -> BuildParams<'a> {
    BuildParams {
        p2m,
        hypervisor_l4_slots: [0; 16],
        shared_info_maddr: 0,
        flags: SIF_MOD_START_PFN | SIF_MULTIBOOT_MOD,
        store_evtchn: 0,
        console_evtchn: 0,
        modules,
        cmdline: b"",
    }
}

#[test]
fn layout_decides_module_flags() {
    let (_, _, layout, p2m) = error_setup();
    let si = start_info(&layout, &params(&p2m, &[])).unwrap();
    assert_eq!(si.flags, 0);
}

#[test]
fn build_errors() {
    let (bytes, kernel, layout, p2m) = error_setup();
    let mut mem = FakeMemory::new(2048);

    let short = &p2m[..100];
    assert_eq!(
        build(&bytes, &kernel, &layout, &params(short, &[]), &mut mem),
        Err(BuildError::P2mLengthMismatch {
            expected: 2048,
            len: 100
        })
    );

    let extra = [BootModule {
        data: b"x",
        cmdline: b"",
    }];
    assert_eq!(
        build(&bytes, &kernel, &layout, &params(&p2m, &extra), &mut mem),
        Err(BuildError::ModulesMismatch)
    );

    let other = parse_kernel(&kernel_at(KernelPlace::LINUX).build()).unwrap();
    assert_eq!(
        build(&bytes, &other, &layout, &params(&p2m, &[]), &mut mem),
        Err(BuildError::LayoutMismatch)
    );

    // A different (shorter) image than the one parsed.
    assert_eq!(
        build(
            &bytes[..bytes.len() - 1],
            &kernel,
            &layout,
            &params(&p2m, &[]),
            &mut mem
        ),
        Err(BuildError::SegmentOutOfBounds { index: 1 })
    );

    let mut tampered = kernel.clone();
    tampered.segments[0].vaddr -= 0x1000;
    assert_eq!(
        build(&bytes, &tampered, &layout, &params(&p2m, &[]), &mut mem),
        Err(BuildError::SegmentOutOfBounds { index: 0 })
    );
    let mut tampered = kernel.clone();
    tampered.hypercall_page = Some(0x40_5000);
    assert_eq!(
        build(&bytes, &tampered, &layout, &params(&p2m, &[]), &mut mem),
        Err(BuildError::BadHypercallPage { va: 0x40_5000 })
    );

    let mut huge = p2m.clone();
    huge[3] = 1 << 40;
    assert_eq!(
        build(&bytes, &kernel, &layout, &params(&huge, &[]), &mut mem),
        Err(BuildError::BadMfn {
            pfn: 3,
            mfn: 1 << 40
        })
    );

    mem.fail_on = Some(layout.store_pfn());
    assert_eq!(
        build(&bytes, &kernel, &layout, &params(&p2m, &[]), &mut mem),
        Err(BuildError::GuestMemory {
            pfn: layout.store_pfn()
        })
    );

    for err in [
        BuildError::LayoutMismatch,
        BuildError::P2mLengthMismatch {
            expected: 1,
            len: 0,
        },
        BuildError::P2mTooShort { len: 0, pfn: 1 },
        BuildError::BadMfn { pfn: 0, mfn: 1 },
        BuildError::ModulesMismatch,
        BuildError::SegmentOutOfBounds { index: 0 },
        BuildError::BadHypercallPage { va: 0 },
        BuildError::GuestMemory { pfn: 0 },
    ] {
        assert!(!err.to_string().is_empty());
    }
}
