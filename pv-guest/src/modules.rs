//! The boot modules a PV guest finds through `start_info.mod_start`/`mod_len`
//! (portable, host-tested: it works on a byte slice and trusts nothing in it).
//!
//! Xen hands a PV guest either nothing (`mod_len == 0`), one module (the initrd), or, with
//! `SIF_MULTIBOOT_MOD` in `flags`, a *multiboot module package*: an array of
//! `xen_multiboot_mod_list` descriptors at the start of the package, terminated by an entry
//! whose `mod_start` is 0. Every address in a descriptor is an offset from the start of the
//! package; `mod_end` is inclusive; `cmdline` points at a NUL-terminated string (0 = none).
#![forbid(unsafe_code)]

use hypercall_abi::start_info::{MultibootModList, SIF_MULTIBOOT_MOD};
use zerocopy::FromBytes;

use crate::text::utf8_prefix;

/// Size of one `xen_multiboot_mod_list` descriptor.
const DESCRIPTOR_SIZE: usize = core::mem::size_of::<MultibootModList>();

/// One boot module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module<'a> {
    /// The module's contents.
    pub bytes: &'a [u8],
    /// Its command line (empty if it has none; the valid UTF-8 prefix if it is not UTF-8).
    pub cmdline: &'a str,
}

#[derive(Clone, Copy, Debug)]
enum Source<'a> {
    /// Nothing (left).
    Done,
    /// A single module with no command line.
    Single(&'a [u8]),
    /// A multiboot module package; `next` is the index of the next descriptor.
    Package { package: &'a [u8], next: usize },
}

/// Iterator over boot modules. It stops at the first malformed descriptor of a package
/// (out of bounds, `mod_end` before `mod_start`, unterminated command line) and remembers
/// that it did; see [`Modules::malformed`].
#[derive(Clone, Debug)]
pub struct Modules<'a> {
    source: Source<'a>,
    malformed: bool,
}

impl<'a> Modules<'a> {
    /// No modules.
    pub const fn none() -> Self {
        Modules {
            source: Source::Done,
            malformed: false,
        }
    }

    /// Exactly one module (`bytes`, possibly empty) with an empty command line.
    pub const fn single(bytes: &'a [u8]) -> Self {
        Modules {
            source: Source::Single(bytes),
            malformed: false,
        }
    }

    /// The modules described by a multiboot module package.
    pub const fn package(package: &'a [u8]) -> Self {
        Modules {
            source: Source::Package { package, next: 0 },
            malformed: false,
        }
    }

    /// Interprets the module area from start_info: `area` is the `mod_len` bytes at
    /// `mod_start`, `flags` is `start_info.flags`.
    pub fn from_area(area: &'a [u8], flags: u32) -> Self {
        if area.is_empty() {
            Self::none()
        } else if flags & SIF_MULTIBOOT_MOD != 0 {
            Self::package(area)
        } else {
            Self::single(area)
        }
    }

    /// Whether iteration stopped early at a malformed descriptor.
    pub fn malformed(&self) -> bool {
        self.malformed
    }

    fn fail(&mut self) -> Option<Module<'a>> {
        self.source = Source::Done;
        self.malformed = true;
        None
    }
}

/// The NUL-terminated string at `offset` in `package`; `None` if it runs off the end.
fn cmdline_at(package: &[u8], offset: u32) -> Option<&str> {
    if offset == 0 {
        return Some("");
    }
    let tail = package.get(usize::try_from(offset).ok()?..)?;
    let len = tail.iter().position(|&b| b == 0)?;
    Some(utf8_prefix(&tail[..len]))
}

/// The bytes `start..=end_inclusive` of `package`; `end_inclusive == start - 1` is an empty
/// module.
fn module_bytes(package: &[u8], start: u32, end_inclusive: u32) -> Option<&[u8]> {
    let start = usize::try_from(start).ok()?;
    let end = usize::try_from(end_inclusive).ok()?.checked_add(1)?;
    package.get(start..end)
}

impl<'a> Iterator for Modules<'a> {
    type Item = Module<'a>;

    fn next(&mut self) -> Option<Module<'a>> {
        match self.source {
            Source::Done => None,
            Source::Single(bytes) => {
                self.source = Source::Done;
                Some(Module { bytes, cmdline: "" })
            }
            Source::Package { package, next } => {
                let Some(at) = next.checked_mul(DESCRIPTOR_SIZE) else {
                    return self.fail();
                };
                let Some(raw) = at
                    .checked_add(DESCRIPTOR_SIZE)
                    .and_then(|end| package.get(at..end))
                else {
                    // The terminator is missing: the descriptors run off the package.
                    return self.fail();
                };
                let Ok(desc) = MultibootModList::read_from_bytes(raw) else {
                    return self.fail();
                };
                if desc.mod_start == 0 {
                    self.source = Source::Done;
                    return None;
                }
                let (Some(bytes), Some(cmdline)) = (
                    module_bytes(package, desc.mod_start, desc.mod_end),
                    cmdline_at(package, desc.cmdline),
                ) else {
                    return self.fail();
                };
                self.source = Source::Package {
                    package,
                    next: next + 1,
                };
                Some(Module { bytes, cmdline })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;
    use zerocopy::IntoBytes;

    fn desc(mod_start: u32, mod_end: u32, cmdline: u32) -> MultibootModList {
        MultibootModList {
            mod_start,
            mod_end,
            cmdline,
            pad: 0,
        }
    }

    /// Builds a package: descriptors (plus terminator), then each module, then each cmdline.
    fn build(mods: &[(&[u8], &str)]) -> Vec<u8> {
        let table = (mods.len() + 1) * DESCRIPTOR_SIZE;
        let mut data = Vec::new();
        let mut descs = Vec::new();
        let mut offset = table;
        for (bytes, _) in mods {
            descs.push((offset, bytes.len()));
            offset += bytes.len();
            data.extend_from_slice(bytes);
        }
        let mut out = Vec::new();
        let mut strings = Vec::new();
        let strings_at = offset;
        for (i, (_, cmdline)) in mods.iter().enumerate() {
            let (start, len) = descs[i];
            let cmd_off = if cmdline.is_empty() {
                0
            } else {
                let at = strings_at + strings.len();
                strings.extend_from_slice(cmdline.as_bytes());
                strings.push(0);
                at
            };
            let end = (start + len) as u32 - 1;
            out.extend_from_slice(desc(start as u32, end, cmd_off as u32).as_bytes());
        }
        out.extend_from_slice(desc(0, 0, 0).as_bytes());
        out.extend_from_slice(&data);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn nothing_when_area_is_empty() {
        assert_eq!(Modules::from_area(&[], 0).count(), 0);
        assert_eq!(Modules::from_area(&[], SIF_MULTIBOOT_MOD).count(), 0);
    }

    #[test]
    fn plain_module_is_the_initrd() {
        let initrd = [1u8, 2, 3];
        let mods: Vec<_> = Modules::from_area(&initrd, 0).collect();
        assert_eq!(
            mods,
            [Module {
                bytes: &initrd[..],
                cmdline: ""
            }]
        );
    }

    #[test]
    fn package_with_modules_and_cmdlines() {
        let pkg = build(&[
            (b"first module", "root=/dev/xvda"),
            (b"2", ""),
            (b"third", "x y z"),
        ]);
        let mut it = Modules::from_area(&pkg, SIF_MULTIBOOT_MOD);
        assert_eq!(
            it.next(),
            Some(Module {
                bytes: b"first module",
                cmdline: "root=/dev/xvda"
            })
        );
        assert_eq!(
            it.next(),
            Some(Module {
                bytes: b"2",
                cmdline: ""
            })
        );
        assert_eq!(
            it.next(),
            Some(Module {
                bytes: b"third",
                cmdline: "x y z"
            })
        );
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
        assert!(!it.malformed());
    }

    #[test]
    fn package_with_no_modules() {
        let pkg = build(&[]);
        let mut it = Modules::package(&pkg);
        assert_eq!(it.next(), None);
        assert!(!it.malformed());
    }

    #[test]
    fn empty_module_is_end_before_start() {
        let mut pkg = Vec::new();
        pkg.extend_from_slice(desc(32, 31, 0).as_bytes());
        pkg.extend_from_slice(desc(0, 0, 0).as_bytes());
        let mods: Vec<_> = Modules::package(&pkg).collect();
        assert_eq!(
            mods,
            [Module {
                bytes: &[][..],
                cmdline: ""
            }]
        );
    }

    fn parse(pkg: &[u8]) -> (Vec<Module<'_>>, bool) {
        let mut it = Modules::package(pkg);
        let mods = it.by_ref().collect();
        (mods, it.malformed())
    }

    #[test]
    fn hostile_missing_terminator() {
        // One good descriptor, then the package ends.
        let mut pkg = Vec::new();
        pkg.extend_from_slice(desc(1, 3, 0).as_bytes());
        let (mods, bad) = parse(&pkg);
        assert_eq!(mods.len(), 1);
        assert!(bad);
        // A truncated descriptor.
        let (mods, bad) = parse(&pkg[..10]);
        assert!(mods.is_empty() && bad);
        // A package too small to hold a descriptor at all.
        let (mods, bad) = parse(&[7]);
        assert!(mods.is_empty() && bad);
    }

    #[test]
    fn hostile_module_out_of_bounds() {
        for (start, end) in [
            (32, 1000),
            (1000, 1001),
            (u32::MAX, u32::MAX),
            (40, 35),
            (33, 31),
        ] {
            let mut pkg = Vec::new();
            pkg.extend_from_slice(desc(start, end, 0).as_bytes());
            pkg.extend_from_slice(desc(0, 0, 0).as_bytes());
            pkg.extend_from_slice(&[0xee; 16]);
            let (mods, bad) = parse(&pkg);
            assert!(mods.is_empty(), "{start:#x}..={end:#x} accepted");
            assert!(bad);
        }
        // mod_end exactly at the last byte is fine.
        let mut pkg = Vec::new();
        pkg.extend_from_slice(desc(32, 47, 0).as_bytes());
        pkg.extend_from_slice(desc(0, 0, 0).as_bytes());
        pkg.extend_from_slice(&[0xee; 16]);
        let (mods, bad) = parse(&pkg);
        assert_eq!(mods.len(), 1);
        assert_eq!(mods[0].bytes.len(), 16);
        assert!(!bad);
    }

    #[test]
    fn hostile_cmdline() {
        // Unterminated command line at the end of the package.
        let mut pkg = Vec::new();
        pkg.extend_from_slice(desc(32, 32, 33).as_bytes());
        pkg.extend_from_slice(desc(0, 0, 0).as_bytes());
        pkg.extend_from_slice(b"xabc");
        let (mods, bad) = parse(&pkg);
        assert!(mods.is_empty() && bad);
        // Command line offset past the end.
        let mut pkg2 = pkg.clone();
        pkg2[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let (mods, bad) = parse(&pkg2);
        assert!(mods.is_empty() && bad);
        // Invalid UTF-8 is cut at the first bad byte.
        pkg.push(0xff);
        pkg.extend_from_slice(b"tail\0");
        let (mods, bad) = parse(&pkg);
        assert_eq!(
            mods,
            [Module {
                bytes: b"x",
                cmdline: "abc"
            }]
        );
        assert!(!bad);
    }

    #[test]
    fn hostile_self_referencing_descriptors() {
        // A descriptor pointing at the descriptor table itself is only bytes; it must not
        // loop or panic. Fill a package with copies of one descriptor and no terminator.
        let mut pkg = Vec::new();
        for _ in 0..64 {
            pkg.extend_from_slice(desc(1, 15, 4).as_bytes());
        }
        let (mods, bad) = parse(&pkg);
        assert!(bad);
        // The string at offset 4 is the bytes of desc.mod_end = 15, then NUL.
        assert_eq!(mods.len(), 64);
        assert_eq!(mods[0].cmdline, "\u{f}");
    }

    #[test]
    fn random_garbage_never_panics() {
        // A small deterministic xorshift fuzz.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let len = (next() % 200) as usize;
            let mut pkg: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Bias the descriptor fields towards small, plausible offsets.
            for chunk in pkg.chunks_mut(4) {
                if next() % 2 == 0 {
                    let v = (next() % (len as u64 + 8)) as u32;
                    let b = v.to_le_bytes();
                    chunk.copy_from_slice(&b[..chunk.len()]);
                }
            }
            for m in Modules::package(&pkg) {
                assert!(m.bytes.len() <= pkg.len());
                assert!(m.cmdline.len() < pkg.len());
            }
        }
    }
}
