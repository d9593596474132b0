//! dom0's boot files: the boot modules it was given (guest kernels, config files) and the
//! members of any tar archive among them, found by name.
//!
//! A module's name is the first word of its command line (xtask and GRUB give each module
//! its file name there). A module whose bytes are a tar archive (ustar or GNU, recognised by
//! its first header) also contributes its regular files, named by their path inside it
//! (`./` dropped). [`BootFiles::find`] looks a name up in that order: a module of that name;
//! an archive member of that path; an archive member of that base name, if only one has it.
//!
//! The archive comes from the boot loader and is not trusted: every header is checksummed,
//! every size and offset checked against the bytes that are there, and reading stops at the
//! first inconsistency ([`TarReader::error`] says what it was).
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Size of a tar block (every header, and the unit data is padded to).
pub const BLOCK: usize = 512;

/// Longest pax or GNU long name accepted.
const MAX_LONG_NAME: usize = 4096;

/// Why an archive could not be read to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TarError {
    /// A header's checksum is wrong (or the block is not a header at all).
    BadChecksum {
        /// Offset of the header.
        offset: usize,
    },
    /// A header's size field is not a number.
    BadSize {
        /// Offset of the header.
        offset: usize,
    },
    /// A member's data runs past the end of the archive.
    Truncated {
        /// Offset of the header.
        offset: usize,
    },
    /// A long-name record is malformed or too long.
    BadLongName {
        /// Offset of the header.
        offset: usize,
    },
}

impl fmt::Display for TarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TarError::BadChecksum { offset } => {
                write!(f, "bad header checksum at byte {offset}")
            }
            TarError::BadSize { offset } => write!(f, "bad size field at byte {offset}"),
            TarError::Truncated { offset } => {
                write!(f, "member at byte {offset} runs past the end")
            }
            TarError::BadLongName { offset } => {
                write!(f, "bad long name record at byte {offset}")
            }
        }
    }
}

/// A regular file in an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TarEntry<'a> {
    /// Its path, `./` and leading `/` dropped (invalid UTF-8 replaced).
    pub name: String,
    /// Its bytes.
    pub data: &'a [u8],
}

/// Whether `data` starts with a tar header (valid checksum and a ustar magic).
pub fn is_tar(data: &[u8]) -> bool {
    let Some(header) = data.get(..BLOCK) else {
        return false;
    };
    header[257..262] == *b"ustar" && checksum_ok(header)
}

/// Octal number in a header field (leading blanks, then digits, ended by NUL, blank or the
/// field's end), or GNU base-256 when the top bit of the first byte is set.
fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        // Base-256: big-endian, the first byte's top bit is the marker (negative: refused).
        if field[0] & 0x40 != 0 {
            return None;
        }
        let mut v: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    // An all-blank field reads as 0 (some writers leave unused fields so).
    let mut v: u64 = 0;
    for &b in field.iter().skip_while(|&&b| b == b' ') {
        match b {
            b'0'..=b'7' => v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?,
            0 | b' ' => break,
            _ => return None,
        }
    }
    Some(v)
}

/// Whether a header's checksum (the sum of its bytes, the checksum field counted as
/// blanks) matches, as unsigned or (old writers) signed bytes.
fn checksum_ok(header: &[u8]) -> bool {
    let Some(stored) = number(&header[148..156]) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in header[..BLOCK].iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
}

/// The bytes of a NUL-padded field up to its first NUL.
fn field(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// A path as it is looked up: `./` prefixes and leading slashes dropped.
pub fn normalise(path: &str) -> &str {
    let mut p = path;
    loop {
        if let Some(rest) = p.strip_prefix("./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix('/') {
            p = rest;
        } else {
            return p;
        }
    }
}

/// The last component of a path.
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The regular files of an archive, in order.
pub struct TarReader<'a> {
    data: &'a [u8],
    offset: usize,
    done: bool,
    error: Option<TarError>,
}

impl<'a> TarReader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        TarReader {
            data,
            offset: 0,
            done: false,
            error: None,
        }
    }

    /// What stopped the reader early, if anything did.
    pub fn error(&self) -> Option<TarError> {
        self.error
    }

    fn fail(&mut self, e: TarError) -> Option<TarEntry<'a>> {
        self.error = Some(e);
        self.done = true;
        None
    }

    /// The path in a pax extended header's records (`"<len> path=<value>\n"`).
    fn pax_path(records: &[u8]) -> Option<Option<String>> {
        let mut rest = records;
        let mut path = None;
        while !rest.is_empty() && rest[0] != 0 {
            let space = rest.iter().position(|&b| b == b' ')?;
            let len: usize = core::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
            if len <= space + 1 || len > rest.len() {
                return None;
            }
            let record = &rest[space + 1..len];
            let record = record.strip_suffix(b"\n")?;
            if let Some(value) = record.strip_prefix(b"path=") {
                path = Some(String::from_utf8_lossy(value).into_owned());
            }
            rest = &rest[len..];
        }
        Some(path)
    }
}

impl<'a> Iterator for TarReader<'a> {
    type Item = TarEntry<'a>;

    fn next(&mut self) -> Option<TarEntry<'a>> {
        // A name from a GNU 'L' or pax 'x' record, for the header that follows it.
        let mut long_name: Option<String> = None;
        while !self.done {
            let offset = self.offset;
            let Some(header) = offset
                .checked_add(BLOCK)
                .and_then(|end| self.data.get(offset..end))
            else {
                // No room for another header: the archive simply ends (no end blocks).
                self.done = true;
                return None;
            };
            if header.iter().all(|&b| b == 0) {
                self.done = true;
                return None;
            }
            if !checksum_ok(header) {
                return self.fail(TarError::BadChecksum { offset });
            }
            let Some(size) = number(&header[124..136]).and_then(|s| usize::try_from(s).ok()) else {
                return self.fail(TarError::BadSize { offset });
            };
            let start = offset + BLOCK;
            let Some(data) = start
                .checked_add(size)
                .and_then(|end| self.data.get(start..end))
            else {
                return self.fail(TarError::Truncated { offset });
            };
            // The next header follows the data rounded up to a block (the padding may be
            // missing after the last member; the next read then finds the end).
            self.offset = start.saturating_add(size.div_ceil(BLOCK).saturating_mul(BLOCK));
            let typeflag = header[156];
            match typeflag {
                b'L' | b'x' => {
                    if size > MAX_LONG_NAME {
                        return self.fail(TarError::BadLongName { offset });
                    }
                    let name = if typeflag == b'L' {
                        Some(String::from_utf8_lossy(field(data)).into_owned())
                    } else {
                        match Self::pax_path(data) {
                            Some(path) => path,
                            None => return self.fail(TarError::BadLongName { offset }),
                        }
                    };
                    if name.is_some() {
                        long_name = name;
                    }
                }
                b'0' | 0 | b'7' => {
                    let name = long_name.take().unwrap_or_else(|| {
                        let name = field(&header[..100]);
                        let prefix = field(&header[345..500]);
                        // Only ustar has a prefix field; GNU keeps other data there.
                        let ustar = header[257..263] == *b"ustar\0";
                        let mut full = String::new();
                        if ustar && !prefix.is_empty() {
                            full.push_str(&String::from_utf8_lossy(prefix));
                            full.push('/');
                        }
                        full.push_str(&String::from_utf8_lossy(name));
                        full
                    });
                    return Some(TarEntry {
                        name: String::from(normalise(&name)),
                        data,
                    });
                }
                // Directories, links, devices, global pax headers and the like.
                _ => long_name = None,
            }
        }
        None
    }
}

/// A file found by [`BootFiles::find`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootFile<'a> {
    /// Its bytes.
    pub data: &'a [u8],
}

/// Why a name was not found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// Nothing has that name.
    NotFound,
    /// Several archive members have that base name (their paths).
    Ambiguous(Vec<String>),
}

/// One boot module: its name and bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamedModule<'a> {
    /// The first word of its command line (may be empty: a lone module has none).
    pub name: &'a str,
    /// Its bytes.
    pub data: &'a [u8],
}

/// The boot modules dom0 can read files from.
#[derive(Clone, Debug, Default)]
pub struct BootFiles<'a> {
    modules: Vec<NamedModule<'a>>,
}

impl<'a> BootFiles<'a> {
    /// From each module's command line and bytes.
    pub fn new(modules: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let modules = modules
            .into_iter()
            .map(|(cmdline, data)| NamedModule {
                name: cmdline.split_whitespace().next().unwrap_or(""),
                data,
            })
            .collect();
        BootFiles { modules }
    }

    /// The modules, in order.
    pub fn modules(&self) -> &[NamedModule<'a>] {
        &self.modules
    }

    /// The archives among the modules.
    fn archives(&self) -> impl Iterator<Item = &NamedModule<'a>> {
        self.modules.iter().filter(|m| is_tar(m.data))
    }

    /// Looks `name` up (see the module documentation).
    pub fn find(&self, name: &str) -> Result<BootFile<'a>, LookupError> {
        let wanted = normalise(name);
        if wanted.is_empty() {
            return Err(LookupError::NotFound);
        }
        if let Some(m) = self.modules.iter().find(|m| {
            !m.name.is_empty() && (normalise(m.name) == wanted || base_name(m.name) == wanted)
        }) {
            return Ok(BootFile { data: m.data });
        }
        for archive in self.archives() {
            if let Some(e) = TarReader::new(archive.data).find(|e| e.name == wanted) {
                return Ok(BootFile { data: e.data });
            }
        }
        let mut matches: Vec<TarEntry<'a>> = self
            .archives()
            .flat_map(|a| TarReader::new(a.data))
            .filter(|e| base_name(&e.name) == wanted)
            .collect();
        match matches.len() {
            0 => Err(LookupError::NotFound),
            1 => Ok(BootFile {
                data: matches.remove(0).data,
            }),
            _ => Err(LookupError::Ambiguous(
                matches.into_iter().map(|e| e.name).collect(),
            )),
        }
    }

    /// Every name [`BootFiles::find`] knows: module names, then archive member paths.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .modules
            .iter()
            .filter(|m| !m.name.is_empty() && !is_tar(m.data))
            .map(|m| String::from(m.name))
            .collect();
        for archive in self.archives() {
            names.extend(TarReader::new(archive.data).map(|e| e.name));
        }
        names
    }

    /// Archives that could not be read to their end: `(module name, error)`.
    pub fn damaged(&self) -> Vec<(&'a str, TarError)> {
        self.archives()
            .filter_map(|a| {
                let mut reader = TarReader::new(a.data);
                reader.by_ref().for_each(drop);
                reader.error().map(|e| (a.name, e))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
