//! Xen ELF notes: walking an ELF note area and decoding the notes named "Xen"
//! (xen/include/public/elfnote.h), with the semantics of Xen's `elf_xen_parse_note`.
//!
//! Every read is bounds-checked against the note area; a note that does not fit is an error
//! rather than being read past (Xen bounds reads against the whole image instead).

use alloc::vec::Vec;

use hypercall_abi::elfnote::XenElfNote;

use crate::elf::ElfError;

/// Xen's `ELF_MAX_TOTAL_NOTE_COUNT`: notes examined across all note areas of one image.
pub(crate) const MAX_TOTAL_NOTES: usize = 65536;

/// Size of an ELF note header (`n_namesz`, `n_descsz`, `n_type`), the same for ELF32/64.
const NOTE_HEADER_SIZE: usize = 12;

/// The values gathered from Xen notes; `None` / empty means "not present".
///
/// Strings are kept without their terminating NUL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct XenNotes {
    pub entry: Option<u64>,
    pub hypercall_page: Option<u64>,
    pub virt_base: Option<u64>,
    pub paddr_offset: Option<u64>,
    pub xen_version: Option<Vec<u8>>,
    pub guest_os: Option<Vec<u8>>,
    pub guest_version: Option<Vec<u8>>,
    pub loader: Option<Vec<u8>>,
    pub features: Option<Vec<u8>>,
    pub supported_features: Option<Vec<u8>>,
    pub hv_start_low: Option<u64>,
    pub init_p2m: Option<u64>,
    pub mod_start_pfn: Option<u64>,
    pub phys32_entry: Option<u64>,
}

/// Round a note field size up to the 4-byte alignment Xen (and the ELF64 x86 ABI in
/// practice) uses for note names and descriptors.
fn align4(size: u32) -> u64 {
    (u64::from(size) + 3) & !3
}

/// Decode a numeric note like Xen's `elf_note_numeric`: 1, 2, 4 or 8 little-endian bytes.
///
/// Xen reads any other size as 0; we reject it, since a silent 0 for VIRT_BASE or ENTRY
/// would only fail later with a less helpful message.
fn numeric(note_type: u32, desc: &[u8]) -> Result<u64, ElfError> {
    match desc.len() {
        1 | 2 | 4 | 8 => {
            let mut bytes = [0u8; 8];
            bytes[..desc.len()].copy_from_slice(desc);
            Ok(u64::from_le_bytes(bytes))
        }
        size => Err(ElfError::BadNumericNote { note_type, size }),
    }
}

/// Decode a string note: the text before the first NUL, or the whole descriptor when it
/// has none. Xen's libelf reads a string note up to its NUL wherever that is; kernels fill
/// the descriptor exactly (Linux's FEATURES note has no NUL in its `descsz`, the zero
/// alignment padding after it ends the string), so the descriptor's end ends it here.
fn string(desc: &[u8]) -> Vec<u8> {
    let end = desc.iter().position(|&b| b == 0).unwrap_or(desc.len());
    desc[..end].to_vec()
}

impl XenNotes {
    /// Record one note named "Xen". Unknown types are ignored, as Xen does.
    fn record(&mut self, note_type: u32, desc: &[u8]) -> Result<(), ElfError> {
        let Ok(kind) = XenElfNote::try_from(note_type) else {
            return Ok(());
        };
        match kind {
            XenElfNote::Entry => self.entry = Some(numeric(note_type, desc)?),
            XenElfNote::HypercallPage => self.hypercall_page = Some(numeric(note_type, desc)?),
            XenElfNote::VirtBase => self.virt_base = Some(numeric(note_type, desc)?),
            XenElfNote::PaddrOffset => self.paddr_offset = Some(numeric(note_type, desc)?),
            XenElfNote::HvStartLow => self.hv_start_low = Some(numeric(note_type, desc)?),
            XenElfNote::InitP2m => self.init_p2m = Some(numeric(note_type, desc)?),
            XenElfNote::ModStartPfn => self.mod_start_pfn = Some(numeric(note_type, desc)?),
            XenElfNote::Phys32Entry => self.phys32_entry = Some(numeric(note_type, desc)?),
            XenElfNote::XenVersion => self.xen_version = Some(string(desc)),
            XenElfNote::GuestOs => self.guest_os = Some(string(desc)),
            XenElfNote::GuestVersion => self.guest_version = Some(string(desc)),
            XenElfNote::Loader => self.loader = Some(string(desc)),
            XenElfNote::Features => self.features = Some(string(desc)),
            // A bitmap of XENFEAT_* words: kept as raw bytes for the caller.
            XenElfNote::SupportedFeatures => self.supported_features = Some(desc.to_vec()),
            // Notes a 64-bit PV build has no use for (PAE_MODE and HV_START_LOW matter to
            // 32-bit guests; the others to PVH, suspend or legacy loaders).
            XenElfNote::Info
            | XenElfNote::PaeMode
            | XenElfNote::BsdSymtab
            | XenElfNote::L1MfnValid
            | XenElfNote::SuspendCancel
            | XenElfNote::Phys32Reloc => {}
        }
        Ok(())
    }
}

/// Walk the notes in `area` (the bytes of one PT_NOTE segment or SHT_NOTE section) and
/// record those named "Xen" into `notes`.
///
/// `total` counts notes across all areas and is bounded by [`MAX_TOTAL_NOTES`].
/// Returns how many notes named "Xen" the area held.
pub(crate) fn parse_note_area(
    area: &[u8],
    total: &mut usize,
    notes: &mut XenNotes,
) -> Result<usize, ElfError> {
    let mut xen_notes = 0;
    let mut offset = 0usize;
    while offset < area.len() {
        let rest = &area[offset..];
        if rest.len() < NOTE_HEADER_SIZE {
            // Alignment padding at the end of an area is harmless; anything else is a
            // note header cut short.
            if rest.iter().all(|&b| b == 0) {
                break;
            }
            return Err(ElfError::MalformedNote {
                offset: offset as u64,
            });
        }
        if *total >= MAX_TOTAL_NOTES {
            return Err(ElfError::TooManyNotes);
        }
        *total += 1;

        let field =
            |at: usize| u32::from_le_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
        let (namesz, descsz, note_type) = (field(0), field(4), field(8));
        // All arithmetic in u64: the sizes are u32, so none of it can overflow.
        let name_start = NOTE_HEADER_SIZE as u64;
        let desc_start = name_start + align4(namesz);
        let desc_end = desc_start + u64::from(descsz);
        let rest_len = rest.len() as u64;
        if name_start + u64::from(namesz) > rest_len || desc_end > rest_len {
            return Err(ElfError::MalformedNote {
                offset: offset as u64,
            });
        }
        // In bounds of `rest`, hence of usize.
        let name = &rest[NOTE_HEADER_SIZE..NOTE_HEADER_SIZE + namesz as usize];
        let desc = &rest[desc_start as usize..desc_end as usize];

        // Xen compares the name with strcmp: what precedes the first NUL must be "Xen".
        let name_text = name.split(|&b| b == 0).next().unwrap_or(&[]);
        if name_text == b"Xen" {
            notes.record(note_type, desc)?;
            xen_notes += 1;
        }

        let next = desc_start + align4(descsz);
        if next >= rest_len {
            break;
        }
        // `next < rest_len <= usize::MAX`.
        offset += next as usize;
    }
    Ok(xen_notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn note(name: &[u8], note_type: u32, desc: &[u8]) -> Vec<u8> {
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

    #[test]
    fn decodes_numeric_and_string_notes() {
        let mut area = note(b"Xen\0", 1, &0x1234u64.to_le_bytes());
        area.extend(note(b"Xen\0", 3, &[0x80]));
        area.extend(note(b"Xen\0", 4, &0xbeefu16.to_le_bytes()));
        area.extend(note(b"Xen\0", 16, &1u32.to_le_bytes()));
        area.extend(note(b"Xen\0", 6, b"linux\0junk"));
        area.extend(note(b"GNU\0", 1, &[0; 8]));
        area.extend(note(b"Xen\0", 0x4242, b"ignored"));
        let mut notes = XenNotes::default();
        let mut total = 0;
        assert_eq!(parse_note_area(&area, &mut total, &mut notes), Ok(6));
        assert_eq!(total, 7);
        assert_eq!(notes.entry, Some(0x1234));
        assert_eq!(notes.virt_base, Some(0x80));
        assert_eq!(notes.paddr_offset, Some(0xbeef));
        assert_eq!(notes.mod_start_pfn, Some(1));
        assert_eq!(notes.guest_os.as_deref(), Some(&b"linux"[..]));
    }

    #[test]
    fn rejects_bad_notes() {
        let mut notes = XenNotes::default();
        let mut total = 0;
        let bad_size = note(b"Xen\0", 1, &[0; 3]);
        assert_eq!(
            parse_note_area(&bad_size, &mut total, &mut notes),
            Err(ElfError::BadNumericNote {
                note_type: 1,
                size: 3
            })
        );
        // A string filling its descriptor (Linux's FEATURES) is the whole descriptor.
        let unterminated = note(b"Xen\0", 10, b"!writable_page_tables|pae_pgdir_above_4gb");
        assert_eq!(parse_note_area(&unterminated, &mut total, &mut notes), Ok(1));
        assert_eq!(notes.features.as_deref(), Some(&b"!writable_page_tables|pae_pgdir_above_4gb"[..]));
        let mut huge_desc = note(b"Xen\0", 1, &[0; 8]);
        huge_desc[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            parse_note_area(&huge_desc, &mut total, &mut notes),
            Err(ElfError::MalformedNote { offset: 0 })
        );
        assert_eq!(
            parse_note_area(&[1, 0, 0, 0], &mut total, &mut notes),
            Err(ElfError::MalformedNote { offset: 0 })
        );
        assert_eq!(parse_note_area(&[0; 8], &mut total, &mut notes), Ok(0));
    }

    #[test]
    fn bounds_the_total_note_count() {
        let area = vec![0u8; NOTE_HEADER_SIZE * 4];
        let mut notes = XenNotes::default();
        let mut total = MAX_TOTAL_NOTES - 2;
        assert_eq!(
            parse_note_area(&area, &mut total, &mut notes),
            Err(ElfError::TooManyNotes)
        );
    }
}
