//! Host tests of `parse_kernel` on hostile input: not ELF, wrong class or machine,
//! every truncation, out-of-bounds tables, random mutations; and the error messages.

mod common;

use common::*;
use domain_builder::{parse_kernel, ElfError};

#[test]
fn not_elf() {
    for bytes in [
        &b""[..],
        b"\x7fEL",
        b"MZ\x90\x00 not elf at all",
        &[0u8; 128],
    ] {
        let err = parse_kernel(bytes).unwrap_err();
        assert_eq!(err, ElfError::NotElf);
        assert!(err.to_string().contains("not an ELF image"));
    }
}

#[test]
fn wrong_class_encoding_machine_or_type() {
    let mut image = low_kernel();
    image.class = 1;
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::Not64Bit { class: 1 })
    );
    let mut image = low_kernel();
    image.data_encoding = 2;
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::NotLittleEndian { data: 2 })
    );
    let mut image = low_kernel();
    image.machine = 3;
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::WrongMachine { machine: 3 })
    );
    let mut image = low_kernel();
    image.elf_type = 3;
    assert_eq!(
        parse_kernel(&image.build()),
        Err(ElfError::NotExecutable { elf_type: 3 })
    );
    let mut bytes = low_kernel().build();
    bytes[6] = 9;
    assert_eq!(
        parse_kernel(&bytes),
        Err(ElfError::BadIdentVersion { version: 9 })
    );
}

#[test]
fn every_truncation_is_an_error() {
    for image in [low_kernel(), {
        let mut s = low_kernel();
        s.notes_in = NotesIn::Section;
        s
    }] {
        let bytes = image.build();
        assert!(parse_kernel(&bytes).is_ok());
        for len in 0..bytes.len() {
            assert!(
                parse_kernel(&bytes[..len]).is_err(),
                "prefix of {len} bytes accepted"
            );
        }
    }
}

#[test]
fn program_header_table_bounds() {
    let bytes = low_kernel().build();
    let patched = |at: usize, value: &[u8]| {
        let mut b = bytes.clone();
        b[at..at + value.len()].copy_from_slice(value);
        parse_kernel(&b)
    };
    let oob = |r: Result<_, ElfError>| matches!(r, Err(ElfError::ProgramHeadersOutOfBounds { .. }));
    assert!(
        oob(patched(32, &(u64::MAX - 8).to_le_bytes())),
        "phoff overflow"
    );
    assert!(
        oob(patched(32, &(bytes.len() as u64).to_le_bytes())),
        "phoff past end"
    );
    assert!(oob(patched(56, &0xfffeu16.to_le_bytes())), "huge phnum");
    assert!(oob(patched(56, &0xffffu16.to_le_bytes())), "PN_XNUM");
    assert_eq!(
        patched(56, &0u16.to_le_bytes()),
        Err(ElfError::NoProgramHeaders)
    );
    assert_eq!(
        patched(32, &0u64.to_le_bytes()),
        Err(ElfError::NoProgramHeaders)
    );
    assert_eq!(
        patched(54, &32u16.to_le_bytes()),
        Err(ElfError::BadProgramHeaderSize { size: 32 })
    );
}

#[test]
fn section_header_table_bounds() {
    let mut image = low_kernel();
    image.notes_in = NotesIn::Section;
    let (bytes, off) = image.build_with_offsets();
    let mut b = bytes.clone();
    put64(&mut b, 40, u64::MAX - 16);
    assert_eq!(parse_kernel(&b), Err(ElfError::BadSectionHeaders));
    let mut b = bytes.clone();
    put16(&mut b, 60, 0x7fff);
    assert_eq!(parse_kernel(&b), Err(ElfError::BadSectionHeaders));
    // A note section pointing outside the file.
    let mut b = bytes;
    put64(&mut b, off.shoff + 64 + 24, u64::MAX - 2);
    assert_eq!(parse_kernel(&b), Err(ElfError::NoteAreaOutOfBounds));
}

/// A deterministic xorshift generator for the mutation test.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let bases = [low_kernel().build(), {
        let mut s = kernel_at(KernelPlace::LINUX);
        s.notes_in = NotesIn::Both;
        s.build()
    }];
    let mut accepted = 0;
    for round in 0..20_000 {
        let mut bytes = bases[round % 2].clone();
        // Mutations focus on the headers and notes, where the structure lives.
        let hot = 0x200.min(bytes.len()) as u64;
        for _ in 0..1 + rng.next() % 4 {
            let at = if rng.next().is_multiple_of(4) {
                rng.next() % bytes.len() as u64
            } else {
                rng.next() % hot
            };
            let value = match rng.next() % 4 {
                0 => 0,
                1 => 0xff,
                _ => rng.next() as u8,
            };
            bytes[at as usize] = value;
        }
        if parse_kernel(&bytes).is_ok() {
            accepted += 1;
        }
    }
    // Some mutations hit padding or irrelevant fields and keep the image valid.
    assert!(accepted > 0);
}

#[test]
fn every_error_has_a_message() {
    let errors = [
        ElfError::NotElf,
        ElfError::Not64Bit { class: 1 },
        ElfError::NotLittleEndian { data: 2 },
        ElfError::BadIdentVersion { version: 0 },
        ElfError::TruncatedHeader { len: 10 },
        ElfError::WrongMachine { machine: 3 },
        ElfError::NotExecutable { elf_type: 3 },
        ElfError::NoProgramHeaders,
        ElfError::BadProgramHeaderSize { size: 1 },
        ElfError::ProgramHeadersOutOfBounds {
            offset: 1,
            count: 2,
        },
        ElfError::BadSectionHeaders,
        ElfError::NoLoadableSegment,
        ElfError::FileSizeExceedsMemSize { index: 1 },
        ElfError::SegmentOutOfFile { index: 1 },
        ElfError::SegmentAddressOverflow { index: 1 },
        ElfError::SegmentsOverlap {
            first: 1,
            second: 2,
        },
        ElfError::ImageTooLarge { span: 1 << 40 },
        ElfError::NoteAreaOutOfBounds,
        ElfError::MalformedNote { offset: 4 },
        ElfError::TooManyNotes,
        ElfError::BadNumericNote {
            note_type: 1,
            size: 3,
        },
        ElfError::NotXenKernel {
            xen_notes: 0,
            loader: None,
            guest_os: None,
        },
        ElfError::UnsupportedXenVersion { found: "x".into() },
        ElfError::PaddrOffsetWithoutVirtBase,
        ElfError::VirtBaseMisaligned { virt_base: 1 },
        ElfError::ImageBelowVirtBase {
            virt_base: 2,
            kstart: 1,
        },
        ElfError::ImageFarAboveVirtBase {
            virt_base: 0,
            kstart: 1 << 40,
        },
        ElfError::EntryOutsideImage {
            entry: 0,
            kstart: 1,
            kend: 2,
        },
        ElfError::HypercallPageMisaligned { va: 1 },
        ElfError::HypercallPageOutsideImage { va: 0 },
        ElfError::InitP2mInsideImage { va: 0 },
        ElfError::NonCanonical { start: 0, end: 1 },
        ElfError::OverlapsHypervisor { start: 0, end: 1 },
    ];
    let mut messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(messages.iter().all(|m| !m.is_empty() && !m.contains('\n')));
    messages.sort();
    messages.dedup();
    assert_eq!(messages.len(), errors.len(), "messages are distinct");
}
