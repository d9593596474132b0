//! Host tests of `parse_kernel` on well-formed images: both note placements, both link
//! styles, and the semantic checks (Xen notes, entry, hypercall page, address space).

mod common;

use common::*;
use domain_builder::elf::MAX_KERNEL_SPAN;
use domain_builder::{parse_kernel, ElfError};

#[test]
fn low_kernel_with_notes_in_pt_note() {
    let info = parse_kernel(&low_kernel().build()).expect("valid kernel");
    assert_eq!(info.virt_base, 0x40_0000);
    assert_eq!(info.paddr_offset, 0x40_0000);
    assert_eq!(info.virt_kstart, 0x40_0000);
    assert_eq!(info.virt_kend, 0x40_0000 + DATA_OFFSET + DATA_MEM);
    assert_eq!(info.entry, 0x40_0000 + ENTRY_OFFSET);
    assert_eq!(info.hypercall_page, Some(0x40_0000 + HYPERCALL_OFFSET));
    assert_eq!(info.guest_os.as_deref(), Some("test-os"));
    assert_eq!(info.guest_version.as_deref(), Some("1.2"));
    assert_eq!(info.loader.as_deref(), Some("generic"));
    assert_eq!(info.xen_version.as_deref(), Some("xen-3.0"));
    assert_eq!(
        info.features,
        b"writable_descriptor_tables|!pae_pgdir_above_4gb"
    );
    assert_eq!(info.supported_features, 0x81u32.to_le_bytes());
    assert!(info.mod_start_pfn);
    assert_eq!(info.init_p2m, None);
    assert!(!info.notes_from_sections);
    assert_eq!(info.segments.len(), 2);
    let text = info.segments[0];
    assert_eq!(
        (text.vaddr, text.filesz, text.memsz, text.flags),
        (0x40_0000, TEXT_LEN as u64, TEXT_LEN as u64, 5)
    );
    let data = info.segments[1];
    assert_eq!(
        (data.vaddr, data.filesz, data.memsz, data.flags),
        (0x40_2000, DATA_FILE as u64, DATA_MEM, 6)
    );
}

#[test]
fn linux_style_kernel_in_top_two_gib() {
    let image = kernel_at(KernelPlace::LINUX);
    // p_paddr is physical (0x1000000), p_vaddr virtual; PADDR_OFFSET 0 relocates by VIRT_BASE.
    assert_eq!(image.segments[0].paddr, 0x100_0000);
    let info = parse_kernel(&image.build()).expect("valid kernel");
    assert_eq!(info.virt_base, 0xffff_ffff_8000_0000);
    assert_eq!(info.virt_kstart, 0xffff_ffff_8100_0000);
    assert_eq!(info.segments[0].vaddr, 0xffff_ffff_8100_0000);
    assert_eq!(info.segments[1].vaddr, 0xffff_ffff_8100_2000);
    assert_eq!(info.entry, 0xffff_ffff_8100_0040);

    // Old Linux: PADDR_OFFSET == VIRT_BASE and p_paddr == p_vaddr gives the same result.
    let old = kernel_at(KernelPlace {
        virt_base: Some(0xffff_ffff_8000_0000),
        paddr_offset: Some(0xffff_ffff_8000_0000),
        text: 0xffff_ffff_8100_0000,
    });
    assert_eq!(old.segments[0].paddr, 0xffff_ffff_8100_0000);
    let old_info = parse_kernel(&old.build()).expect("valid kernel");
    assert_eq!(old_info.segments, info.segments);
}

#[test]
fn defaults_without_virt_base_and_paddr_offset() {
    // No VIRT_BASE, no PADDR_OFFSET: both 0, load address == p_paddr.
    let image = kernel_at(KernelPlace {
        virt_base: None,
        paddr_offset: None,
        text: 0x40_0000,
    });
    let info = parse_kernel(&image.build()).expect("valid kernel");
    assert_eq!(
        (info.virt_base, info.paddr_offset, info.virt_kstart),
        (0, 0, 0x40_0000)
    );
}

#[test]
fn entry_defaults_to_e_entry() {
    let mut image = low_kernel();
    // Notes without ENTRY or HYPERCALL_PAGE.
    let mut notes = Vec::new();
    notes.extend(xen_str(note::LOADER, "generic"));
    notes.extend(xen_u64(note::VIRT_BASE, 0x40_0000));
    notes.extend(xen_u64(note::PADDR_OFFSET, 0x40_0000));
    image.notes = notes;
    image.entry = 0x40_0123;
    let info = parse_kernel(&image.build()).expect("valid kernel");
    assert_eq!(info.entry, 0x40_0123);
    assert_eq!(info.hypercall_page, None);
    assert_eq!(info.guest_os, None);
}

#[test]
fn notes_only_in_sht_note_sections() {
    let mut image = low_kernel();
    image.notes_in = NotesIn::Section;
    let info = parse_kernel(&image.build()).expect("valid kernel");
    assert!(info.notes_from_sections);
    assert_eq!(info.loader.as_deref(), Some("generic"));
    assert_eq!(info.virt_base, 0x40_0000);

    // A PT_NOTE holding only foreign notes does not stop the fallback.
    image.other_note_segment = Some(raw_note(b"GNU\0", 3, &[1, 2, 3, 4]));
    let info = parse_kernel(&image.build()).expect("valid kernel");
    assert!(info.notes_from_sections);

    // With Xen notes in a segment, sections are not looked at.
    image.notes_in = NotesIn::Both;
    assert!(!parse_kernel(&image.build()).unwrap().notes_from_sections);
}

#[test]
fn missing_notes_is_not_a_xen_kernel() {
    let mut image = low_kernel();
    image.notes = raw_note(b"GNU\0", 3, &[0; 4]);
    let err = parse_kernel(&image.build()).unwrap_err();
    assert!(
        matches!(err, ElfError::NotXenKernel { xen_notes: 0, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("no Xen ELF notes"), "{err}");
}

#[test]
fn wrong_loader_and_guest_os_is_not_a_xen_kernel() {
    let mut image = low_kernel();
    let mut notes = xen_str(note::LOADER, "custom");
    notes.extend(xen_u64(note::VIRT_BASE, 0x40_0000));
    notes.extend(xen_u64(note::PADDR_OFFSET, 0x40_0000));
    image.notes = notes;
    let err = parse_kernel(&image.build()).unwrap_err();
    assert_eq!(
        err,
        ElfError::NotXenKernel {
            xen_notes: 3,
            loader: Some("custom".into()),
            guest_os: None
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("LOADER \"custom\"") && text.contains("GUEST_OS absent"),
        "{text}"
    );

    // GUEST_OS "linux" alone is enough, like Xen.
    let mut notes = xen_str(note::GUEST_OS, "linux");
    notes.extend(xen_u64(note::VIRT_BASE, 0x40_0000));
    notes.extend(xen_u64(note::PADDR_OFFSET, 0x40_0000));
    image.notes = notes;
    assert_eq!(
        parse_kernel(&image.build()).unwrap().guest_os.as_deref(),
        Some("linux")
    );
}

#[test]
fn other_xen_version_is_refused() {
    let mut image = low_kernel();
    image.notes.extend(xen_str(note::XEN_VERSION, "xen-4.0"));
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::UnsupportedXenVersion {
            found: "xen-4.0".into()
        })
    );
}

#[test]
fn segment_checks() {
    let mut image = low_kernel();
    image.segments[1].memsz = 0x10;
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::FileSizeExceedsMemSize { index: 2 })
    );

    let (bytes, _) = low_kernel().build_with_offsets();
    // Program header 1 is the text PT_LOAD (0 is the PT_NOTE).
    let text_ph = 64 + 56;
    let mut b = bytes.clone();
    put64(&mut b, text_ph + 8, bytes.len() as u64);
    assert_eq!(
        parse_kernel(&b),
        Err(ElfError::SegmentOutOfFile { index: 1 })
    );
    let mut b = bytes.clone();
    put64(&mut b, text_ph + 8, u64::MAX - 4);
    assert_eq!(
        parse_kernel(&b),
        Err(ElfError::SegmentOutOfFile { index: 1 })
    );
    let mut b = bytes.clone();
    put64(&mut b, text_ph + 24, u64::MAX - 0x100);
    assert_eq!(
        parse_kernel(&b),
        Err(ElfError::SegmentAddressOverflow { index: 1 })
    );

    let mut image = low_kernel();
    image.segments[1].vaddr = 0x40_1000;
    image.segments[1].paddr = 0x40_1000;
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::SegmentsOverlap {
            first: 1,
            second: 2
        })
    );

    let mut image = low_kernel();
    image.segments.clear();
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::NoLoadableSegment)
    );

    let mut image = low_kernel();
    image.segments[1].memsz = MAX_KERNEL_SPAN;
    assert!(matches!(
        parse_kernel(&image.build()),
        Err(ElfError::ImageTooLarge { .. })
    ));
}

#[test]
fn entry_outside_image() {
    let mut image = low_kernel();
    image
        .notes
        .extend(xen_u64(note::ENTRY, 0x40_0000 + DATA_OFFSET + DATA_MEM));
    assert!(matches!(
        parse_kernel(&image.build()),
        Err(ElfError::EntryOutsideImage { .. })
    ));
    let mut image = low_kernel();
    image.notes.extend(xen_u64(note::ENTRY, 0x3f_ffff));
    let err = parse_kernel(&image.build()).unwrap_err();
    assert_eq!(
        err,
        ElfError::EntryOutsideImage {
            entry: 0x3f_ffff,
            kstart: 0x40_0000,
            kend: 0x40_5000
        }
    );
}

#[test]
fn hypercall_page_checks() {
    let mut image = low_kernel();
    image.notes.extend(xen_u64(note::HYPERCALL_PAGE, 0x40_0800));
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::HypercallPageMisaligned { va: 0x40_0800 })
    );
    let mut image = low_kernel();
    image.notes.extend(xen_u64(note::HYPERCALL_PAGE, 0x40_5000));
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::HypercallPageOutsideImage { va: 0x40_5000 })
    );
    let mut image = low_kernel();
    image.notes.extend(xen_u64(note::HYPERCALL_PAGE, 0x3f_f000));
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::HypercallPageOutsideImage { va: 0x3f_f000 })
    );
}

#[test]
fn address_space_checks() {
    // Inside the hypervisor's slice.
    let image = kernel_based_at(0xffff_8100_0000_0000);
    assert!(matches!(
        parse_kernel(&image.build()),
        Err(ElfError::OverlapsHypervisor { .. })
    ));
    // Just above it is fine.
    assert!(parse_kernel(&kernel_based_at(0xffff_8800_0000_0000).build()).is_ok());
    // Non-canonical.
    let image = kernel_based_at(0x0000_8000_0000_0000);
    assert!(matches!(
        parse_kernel(&image.build()),
        Err(ElfError::NonCanonical { .. })
    ));
    // Straddling the top of the lower half.
    let image = kernel_based_at(0x0000_7fff_ffff_e000);
    assert!(matches!(
        parse_kernel(&image.build()),
        Err(ElfError::NonCanonical { .. })
    ));
}

#[test]
fn virt_base_checks() {
    let mut image = low_kernel();
    image.notes.extend(xen_u64(note::VIRT_BASE, 0x40_0800));
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::VirtBaseMisaligned {
            virt_base: 0x40_0800
        })
    );

    // VIRT_BASE above the image (PADDR_OFFSET keeps the load address).
    let mut image = low_kernel();
    image.notes.extend(xen_u64(note::VIRT_BASE, 0x80_0000));
    image.notes.extend(xen_u64(note::PADDR_OFFSET, 0x80_0000));
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::ImageBelowVirtBase {
            virt_base: 0x80_0000,
            kstart: 0x40_0000
        })
    );

    let image = kernel_at(KernelPlace {
        virt_base: None,
        paddr_offset: Some(0),
        text: 0x40_0000,
    });
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::PaddrOffsetWithoutVirtBase)
    );

    // Linked high without VIRT_BASE: the region from 0 would be huge.
    for text in [0xffff_ffff_8000_0000, 0x10_0000_0000] {
        let image = kernel_at(KernelPlace {
            virt_base: None,
            paddr_offset: None,
            text,
        });
        assert_eq!(
            parse_kernel(&image.build()),
            Err(ElfError::ImageFarAboveVirtBase {
                virt_base: 0,
                kstart: text
            })
        );
    }
}

#[test]
fn init_p2m_inside_image_is_refused() {
    let mut image = low_kernel();
    image.notes.extend(xen_u64(note::INIT_P2M, 0x40_1000));
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::InitP2mInsideImage { va: 0x40_1000 })
    );
    let mut image = low_kernel();
    image.notes.extend(xen_u64(note::INIT_P2M, 0x80_0000_0000));
    assert_eq!(
        parse_kernel(&image.build()).unwrap().init_p2m,
        Some(0x80_0000_0000)
    );
}

#[test]
fn malformed_notes() {
    let mut image = low_kernel();
    image
        .notes
        .extend(raw_note(b"Xen\0", note::VIRT_BASE, &[0; 3]));
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::BadNumericNote {
            note_type: note::VIRT_BASE,
            size: 3
        })
    );
    let mut image = low_kernel();
    image
        .notes
        .extend(raw_note(b"Xen\0", note::GUEST_OS, b"linux"));
    // No NUL in the descriptor (Linux's FEATURES note is so): the whole of it, as Xen.
    assert_eq!(
        parse_kernel(&image.build()).map(|k| k.guest_os),
        Ok(Some("linux".into()))
    );
    // A note whose descsz runs past the segment.
    let mut image = low_kernel();
    let mut bad = raw_note(b"Xen\0", note::ENTRY, &[0; 8]);
    bad[4..8].copy_from_slice(&0x100u32.to_le_bytes());
    image.notes.extend(bad);
    assert!(matches!(
        parse_kernel(&image.build()),
        Err(ElfError::MalformedNote { .. })
    ));
    // Small numeric notes are accepted, like Xen's elf_note_numeric.
    let mut image = low_kernel();
    image.notes.extend(raw_note(
        b"Xen\0",
        note::HV_START_LOW,
        &0x1234u16.to_le_bytes(),
    ));
    image.notes.extend(raw_note(
        b"Xen\0",
        note::PHYS32_ENTRY,
        &0x10_0000u32.to_le_bytes(),
    ));
    let info = parse_kernel(&image.build()).unwrap();
    assert_eq!(
        (info.hv_start_low, info.phys32_entry),
        (Some(0x1234), Some(0x10_0000))
    );
}
