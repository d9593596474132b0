//! Test helpers: a tiny ELF64 writer for guest kernel images with Xen notes, and the
//! standard kernels the tests start from.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

pub mod memory;

/// XEN_ELFNOTE_* numbers used by the tests.
pub mod note {
    pub const ENTRY: u32 = 1;
    pub const HYPERCALL_PAGE: u32 = 2;
    pub const VIRT_BASE: u32 = 3;
    pub const PADDR_OFFSET: u32 = 4;
    pub const XEN_VERSION: u32 = 5;
    pub const GUEST_OS: u32 = 6;
    pub const GUEST_VERSION: u32 = 7;
    pub const LOADER: u32 = 8;
    pub const FEATURES: u32 = 10;
    pub const HV_START_LOW: u32 = 12;
    pub const INIT_P2M: u32 = 15;
    pub const MOD_START_PFN: u32 = 16;
    pub const SUPPORTED_FEATURES: u32 = 17;
    pub const PHYS32_ENTRY: u32 = 18;
}

pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;
pub const SHT_NOTE: u32 = 7;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

/// One ELF note, encoded with 4-byte padding.
pub fn raw_note(name: &[u8], note_type: u32, desc: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&note_type.to_le_bytes());
    out.extend_from_slice(name);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(desc);
    out.resize(out.len().next_multiple_of(4), 0);
    out
}

/// A "Xen" note with a 64-bit value.
pub fn xen_u64(note_type: u32, value: u64) -> Vec<u8> {
    raw_note(b"Xen\0", note_type, &value.to_le_bytes())
}

/// A "Xen" note with a NUL-terminated string.
pub fn xen_str(note_type: u32, value: &str) -> Vec<u8> {
    let mut desc = value.as_bytes().to_vec();
    desc.push(0);
    raw_note(b"Xen\0", note_type, &desc)
}

/// A loadable segment.
#[derive(Clone, Debug)]
pub struct Seg {
    pub vaddr: u64,
    pub paddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
    pub flags: u32,
}

/// Where the writer puts the note area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotesIn {
    Segment,
    Section,
    Both,
}

/// A description of an ELF64 image; `build` lays it out as
/// `ehdr | phdrs | notes | segment data... | shdrs`.
#[derive(Clone, Debug)]
pub struct ElfImage {
    pub class: u8,
    pub data_encoding: u8,
    pub machine: u16,
    pub elf_type: u16,
    pub entry: u64,
    pub segments: Vec<Seg>,
    pub notes: Vec<u8>,
    pub notes_in: NotesIn,
    /// Extra non-Xen note area put in a PT_NOTE (to test the section fallback).
    pub other_note_segment: Option<Vec<u8>>,
}

/// Offsets `build` chose, for tests that patch the image.
#[derive(Clone, Debug, Default)]
pub struct Offsets {
    pub phoff: usize,
    pub notes: usize,
    pub segments: Vec<usize>,
    pub shoff: usize,
}

impl ElfImage {
    pub fn build(&self) -> Vec<u8> {
        self.build_with_offsets().0
    }

    pub fn build_with_offsets(&self) -> (Vec<u8>, Offsets) {
        let note_seg = matches!(self.notes_in, NotesIn::Segment | NotesIn::Both);
        let note_sec = matches!(self.notes_in, NotesIn::Section | NotesIn::Both);
        let phnum = self.segments.len()
            + usize::from(note_seg)
            + usize::from(self.other_note_segment.is_some());
        let mut off = Offsets {
            phoff: 64,
            ..Offsets::default()
        };
        let mut cursor = 64 + phnum * 56;
        let other_off = cursor;
        if let Some(other) = &self.other_note_segment {
            cursor += other.len();
        }
        off.notes = cursor;
        cursor += self.notes.len();
        for seg in &self.segments {
            cursor = cursor.next_multiple_of(16);
            off.segments.push(cursor);
            cursor += seg.data.len();
        }
        let shnum = if note_sec { 2 } else { 0 };
        if note_sec {
            cursor = cursor.next_multiple_of(8);
            off.shoff = cursor;
        }
        let total = cursor + shnum * 64;

        let mut out = vec![0u8; total];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = self.class;
        out[5] = self.data_encoding;
        out[6] = 1;
        put16(&mut out, 16, self.elf_type);
        put16(&mut out, 18, self.machine);
        put32(&mut out, 20, 1);
        put64(&mut out, 24, self.entry);
        put64(&mut out, 32, off.phoff as u64);
        put64(&mut out, 40, off.shoff as u64);
        put16(&mut out, 52, 64);
        put16(&mut out, 54, 56);
        put16(&mut out, 56, phnum as u16);
        put16(&mut out, 58, 64);
        put16(&mut out, 60, shnum as u16);
        put16(&mut out, 62, 0);

        let mut ph = off.phoff;
        let mut phdr = |out: &mut Vec<u8>,
                        p_type: u32,
                        flags: u32,
                        offset: usize,
                        vaddr: u64,
                        paddr: u64,
                        filesz: u64,
                        memsz: u64| {
            put32(out, ph, p_type);
            put32(out, ph + 4, flags);
            put64(out, ph + 8, offset as u64);
            put64(out, ph + 16, vaddr);
            put64(out, ph + 24, paddr);
            put64(out, ph + 32, filesz);
            put64(out, ph + 40, memsz);
            put64(out, ph + 48, if p_type == PT_LOAD { 0x1000 } else { 4 });
            ph += 56;
        };
        if let Some(other) = &self.other_note_segment {
            phdr(
                &mut out,
                PT_NOTE,
                PF_R,
                other_off,
                0,
                0,
                other.len() as u64,
                other.len() as u64,
            );
        }
        if note_seg {
            let len = self.notes.len() as u64;
            phdr(&mut out, PT_NOTE, PF_R, off.notes, 0, 0, len, len);
        }
        for (seg, &at) in self.segments.iter().zip(&off.segments) {
            phdr(
                &mut out,
                PT_LOAD,
                seg.flags,
                at,
                seg.vaddr,
                seg.paddr,
                seg.data.len() as u64,
                seg.memsz,
            );
        }
        if let Some(other) = &self.other_note_segment {
            out[other_off..other_off + other.len()].copy_from_slice(other);
        }
        out[off.notes..off.notes + self.notes.len()].copy_from_slice(&self.notes);
        for (seg, &at) in self.segments.iter().zip(&off.segments) {
            out[at..at + seg.data.len()].copy_from_slice(&seg.data);
        }
        if note_sec {
            // Section 0 is the null section; section 1 the notes.
            let sh = off.shoff + 64;
            put32(&mut out, sh + 4, SHT_NOTE);
            put64(&mut out, sh + 24, off.notes as u64);
            put64(&mut out, sh + 32, self.notes.len() as u64);
            put64(&mut out, sh + 48, 4);
        }
        (out, off)
    }
}

pub fn put16(out: &mut [u8], at: usize, v: u16) {
    out[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn put32(out: &mut [u8], at: usize, v: u32) {
    out[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put64(out: &mut [u8], at: usize, v: u64) {
    out[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Recognisable bytes for segment contents.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

/// Where the standard test kernel sits.
#[derive(Clone, Copy, Debug)]
pub struct KernelPlace {
    /// VIRT_BASE note value (None: no note).
    pub virt_base: Option<u64>,
    /// PADDR_OFFSET note value (None: no note).
    pub paddr_offset: Option<u64>,
    /// Virtual address of the text segment (page aligned).
    pub text: u64,
}

impl KernelPlace {
    /// Linked low, like `hello-low`: VIRT_BASE = PADDR_OFFSET = 0x400000, p_paddr = p_vaddr.
    pub const LOW: KernelPlace = KernelPlace {
        virt_base: Some(0x40_0000),
        paddr_offset: Some(0x40_0000),
        text: 0x40_0000,
    };
    /// Linux style: VIRT_BASE 0xffffffff80000000, PADDR_OFFSET 0, p_paddr physical.
    pub const LINUX: KernelPlace = KernelPlace {
        virt_base: Some(0xffff_ffff_8000_0000),
        paddr_offset: Some(0),
        text: 0xffff_ffff_8100_0000,
    };
}

/// Text: 0x1800 bytes (the second page is the hypercall page); data: 0x234 bytes of file
/// and 0x3000 of memory (bss), at text + 0x2000. Entry text + 0x40.
pub const TEXT_LEN: usize = 0x1800;
pub const DATA_OFFSET: u64 = 0x2000;
pub const DATA_FILE: usize = 0x234;
pub const DATA_MEM: u64 = 0x3000;
pub const ENTRY_OFFSET: u64 = 0x40;
pub const HYPERCALL_OFFSET: u64 = 0x1000;

/// The standard Xen notes for a kernel at `place`.
pub fn standard_notes(place: KernelPlace) -> Vec<u8> {
    let mut notes = Vec::new();
    notes.extend(xen_str(note::GUEST_OS, "test-os"));
    notes.extend(xen_str(note::GUEST_VERSION, "1.2"));
    notes.extend(xen_str(note::XEN_VERSION, "xen-3.0"));
    notes.extend(xen_str(note::LOADER, "generic"));
    if let Some(v) = place.virt_base {
        notes.extend(xen_u64(note::VIRT_BASE, v));
    }
    if let Some(p) = place.paddr_offset {
        notes.extend(xen_u64(note::PADDR_OFFSET, p));
    }
    notes.extend(xen_u64(note::ENTRY, place.text + ENTRY_OFFSET));
    notes.extend(xen_u64(note::HYPERCALL_PAGE, place.text + HYPERCALL_OFFSET));
    notes.extend(xen_str(
        note::FEATURES,
        "writable_descriptor_tables|!pae_pgdir_above_4gb",
    ));
    notes.extend(raw_note(b"Xen\0", note::MOD_START_PFN, &1u32.to_le_bytes()));
    notes.extend(raw_note(
        b"Xen\0",
        note::SUPPORTED_FEATURES,
        &0x81u32.to_le_bytes(),
    ));
    notes
}

/// The standard test kernel at `place`, notes in a PT_NOTE segment.
pub fn kernel_at(place: KernelPlace) -> ElfImage {
    let virt_offset = place
        .virt_base
        .unwrap_or(0)
        .wrapping_sub(place.paddr_offset.unwrap_or(0));
    let paddr = |va: u64| va.wrapping_sub(virt_offset);
    ElfImage {
        class: 2,
        data_encoding: 1,
        machine: 62,
        elf_type: 2,
        entry: place.text + ENTRY_OFFSET,
        segments: vec![
            Seg {
                vaddr: place.text,
                paddr: paddr(place.text),
                data: pattern(TEXT_LEN, 7),
                memsz: TEXT_LEN as u64,
                flags: PF_R | PF_X,
            },
            Seg {
                vaddr: place.text + DATA_OFFSET,
                paddr: paddr(place.text + DATA_OFFSET),
                data: pattern(DATA_FILE, 99),
                memsz: DATA_MEM,
                flags: PF_R | PF_W,
            },
        ],
        notes: standard_notes(place),
        notes_in: NotesIn::Segment,
        other_note_segment: None,
    }
}

/// The standard low kernel.
pub fn low_kernel() -> ElfImage {
    kernel_at(KernelPlace::LOW)
}

/// A kernel whose VIRT_BASE, PADDR_OFFSET and text all sit at `base` (page aligned).
pub fn kernel_based_at(base: u64) -> ElfImage {
    kernel_at(KernelPlace {
        virt_base: Some(base),
        paddr_offset: Some(base),
        text: base,
    })
}
