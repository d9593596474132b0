//! Multiboot 1 and Multiboot 2 boot information, read into a fixed-size summary.
//!
//! The loader leaves its information structure in low memory; `parse` reads it through a
//! [`PhysRead`] so that the same code runs on the host against fake memory. Every length and
//! count comes from the loader and is bounded before use: a malformed structure gives a
//! [`BootInfoError`], never a panic.
#![forbid(unsafe_code)]

use core::fmt;

/// Magic value in eax when a Multiboot 1 loader enters the kernel.
pub const MB1_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// Magic value in eax when a Multiboot 2 loader enters the kernel.
pub const MB2_BOOTLOADER_MAGIC: u32 = 0x36D7_6289;

/// Most memory-map entries kept.
pub const MAX_REGIONS: usize = 64;
/// Most boot modules kept.
pub const MAX_MODULES: usize = 16;
/// Longest command line kept (kernel or module); longer ones are truncated.
pub const MAX_CMDLINE: usize = 1024;

/// Reads physical memory during boot.
pub trait PhysRead {
    /// Copies `buf.len()` bytes from physical address `paddr`; false if not readable.
    fn read(&self, paddr: u64, buf: &mut [u8]) -> bool;
}

/// A memory-map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MemRegion {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
    /// Multiboot type: 1 = available RAM, anything else is reserved.
    pub kind: u32,
}

impl MemRegion {
    /// Whether the region is RAM the kernel may use.
    pub fn is_available(&self) -> bool {
        self.kind == 1
    }
}

/// A command line copied out of loader memory.
#[derive(Clone, Copy)]
pub struct CmdLine {
    bytes: [u8; MAX_CMDLINE],
    len: usize,
}

impl CmdLine {
    /// An empty command line.
    pub const fn empty() -> Self {
        CmdLine { bytes: [0; MAX_CMDLINE], len: 0 }
    }

    /// Builds one from bytes, truncated to `MAX_CMDLINE - 1`.
    pub fn from_bytes(b: &[u8]) -> Self {
        let mut c = CmdLine::empty();
        let n = b.len().min(MAX_CMDLINE - 1);
        c.bytes[..n].copy_from_slice(&b[..n]);
        c.len = n;
        c
    }

    /// The whole line.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The line without its first word (the image name every loader puts there) and the
    /// blanks after it.
    pub fn args(&self) -> &[u8] {
        let b = self.as_bytes();
        let b = trim_start(b);
        let word_end = b.iter().position(|c| c.is_ascii_whitespace()).unwrap_or(b.len());
        trim_start(&b[word_end..])
    }

    /// The first word (the image name).
    pub fn name(&self) -> &[u8] {
        let b = trim_start(self.as_bytes());
        let word_end = b.iter().position(|c| c.is_ascii_whitespace()).unwrap_or(b.len());
        &b[..word_end]
    }
}

fn trim_start(b: &[u8]) -> &[u8] {
    let s = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    &b[s..]
}

impl fmt::Debug for CmdLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", core::str::from_utf8(self.as_bytes()).unwrap_or("<non-utf8>"))
    }
}

/// A boot module.
#[derive(Clone, Copy, Debug)]
pub struct Module {
    /// Physical address of the first byte.
    pub start: u64,
    /// Physical address one past the last byte.
    pub end: u64,
    /// The module's string (image name first).
    pub cmdline: CmdLine,
}

/// Which protocol brought us here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Multiboot 1 (QEMU `-kernel`).
    Multiboot1,
    /// Multiboot 2 (GRUB).
    Multiboot2,
}

/// What the loader told us.
#[derive(Clone, Debug)]
pub struct BootInfo {
    /// The protocol.
    pub protocol: Protocol,
    /// Physical range of the information structure itself.
    pub info_range: (u64, u64),
    /// Memory map.
    pub regions: heapless::Vec<MemRegion, MAX_REGIONS>,
    /// Boot modules, in order.
    pub modules: heapless::Vec<Module, MAX_MODULES>,
    /// The kernel's command line (image name first).
    pub cmdline: CmdLine,
}

/// A malformed or unsupported boot information structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// eax held neither Multiboot magic value.
    BadMagic(u32),
    /// The structure could not be read.
    Unreadable(u64),
    /// The loader gave no memory map.
    NoMemoryMap,
    /// A length or offset in the structure is inconsistent.
    Malformed(&'static str),
}

impl fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootInfoError::BadMagic(m) => write!(f, "not started by a Multiboot loader (eax=0x{m:x})"),
            BootInfoError::Unreadable(a) => write!(f, "boot information at 0x{a:x} is unreadable"),
            BootInfoError::NoMemoryMap => write!(f, "the boot loader gave no memory map"),
            BootInfoError::Malformed(why) => write!(f, "malformed boot information: {why}"),
        }
    }
}

fn rd<const N: usize>(m: &impl PhysRead, a: u64) -> Result<[u8; N], BootInfoError> {
    let mut b = [0u8; N];
    if m.read(a, &mut b) {
        Ok(b)
    } else {
        Err(BootInfoError::Unreadable(a))
    }
}

fn rd32(m: &impl PhysRead, a: u64) -> Result<u32, BootInfoError> {
    Ok(u32::from_le_bytes(rd::<4>(m, a)?))
}

fn rd64(m: &impl PhysRead, a: u64) -> Result<u64, BootInfoError> {
    Ok(u64::from_le_bytes(rd::<8>(m, a)?))
}

/// Reads a NUL-terminated string of at most `MAX_CMDLINE - 1` bytes (or `limit` bytes).
fn read_cstr(m: &impl PhysRead, a: u64, limit: usize) -> Result<CmdLine, BootInfoError> {
    let mut buf = [0u8; MAX_CMDLINE];
    let limit = limit.min(MAX_CMDLINE - 1);
    let mut n = 0;
    while n < limit {
        let mut c = [0u8; 1];
        if !m.read(a + n as u64, &mut c) {
            return Err(BootInfoError::Unreadable(a + n as u64));
        }
        if c[0] == 0 {
            break;
        }
        buf[n] = c[0];
        n += 1;
    }
    Ok(CmdLine::from_bytes(&buf[..n]))
}

/// Parses the boot information the loader left at `info` (eax held `magic`).
pub fn parse(magic: u32, info: u64, m: &impl PhysRead) -> Result<BootInfo, BootInfoError> {
    match magic {
        MB1_BOOTLOADER_MAGIC => parse_mb1(info, m),
        MB2_BOOTLOADER_MAGIC => parse_mb2(info, m),
        other => Err(BootInfoError::BadMagic(other)),
    }
}

fn parse_mb1(info: u64, m: &impl PhysRead) -> Result<BootInfo, BootInfoError> {
    let flags = rd32(m, info)?;
    let mut bi = BootInfo {
        protocol: Protocol::Multiboot1,
        info_range: (info, info + 116),
        regions: heapless::Vec::new(),
        modules: heapless::Vec::new(),
        cmdline: CmdLine::empty(),
    };
    if flags & (1 << 2) != 0 {
        let p = rd32(m, info + 16)? as u64;
        bi.cmdline = read_cstr(m, p, MAX_CMDLINE)?;
    }
    if flags & (1 << 3) != 0 {
        let count = rd32(m, info + 20)? as u64;
        let addr = rd32(m, info + 24)? as u64;
        if count > MAX_MODULES as u64 {
            return Err(BootInfoError::Malformed("more boot modules than supported (16)"));
        }
        for i in 0..count {
            let e = addr + i * 16;
            let start = rd32(m, e)? as u64;
            let end = rd32(m, e + 4)? as u64;
            let s = rd32(m, e + 8)? as u64;
            if end < start {
                return Err(BootInfoError::Malformed("module ends before it starts"));
            }
            let cmdline = if s != 0 { read_cstr(m, s, MAX_CMDLINE)? } else { CmdLine::empty() };
            let _ = bi.modules.push(Module { start, end, cmdline });
        }
    }
    if flags & (1 << 6) == 0 {
        return Err(BootInfoError::NoMemoryMap);
    }
    let len = rd32(m, info + 44)? as u64;
    let addr = rd32(m, info + 48)? as u64;
    let mut off = 0u64;
    while off + 24 <= len {
        let size = rd32(m, addr + off)? as u64;
        if size < 20 {
            return Err(BootInfoError::Malformed("memory map entry too small"));
        }
        let base = rd64(m, addr + off + 4)?;
        let rlen = rd64(m, addr + off + 12)?;
        let kind = rd32(m, addr + off + 20)?;
        push_region(&mut bi, base, rlen, kind)?;
        off += size + 4;
    }
    if bi.regions.is_empty() {
        return Err(BootInfoError::NoMemoryMap);
    }
    Ok(bi)
}

fn push_region(bi: &mut BootInfo, base: u64, len: u64, kind: u32) -> Result<(), BootInfoError> {
    if len == 0 {
        return Ok(());
    }
    if base.checked_add(len).is_none() {
        return Err(BootInfoError::Malformed("memory region wraps around"));
    }
    bi.regions
        .push(MemRegion { base, len, kind })
        .map_err(|_| BootInfoError::Malformed("more memory map entries than supported (64)"))
}

fn parse_mb2(info: u64, m: &impl PhysRead) -> Result<BootInfo, BootInfoError> {
    let total = rd32(m, info)? as u64;
    if !(16..=1 << 20).contains(&total) {
        return Err(BootInfoError::Malformed("total size out of range"));
    }
    let mut bi = BootInfo {
        protocol: Protocol::Multiboot2,
        info_range: (info, info + total),
        regions: heapless::Vec::new(),
        modules: heapless::Vec::new(),
        cmdline: CmdLine::empty(),
    };
    let mut off = 8u64;
    let mut saw_mmap = false;
    while off + 8 <= total {
        let tag = info + off;
        let ty = rd32(m, tag)?;
        let size = rd32(m, tag + 4)? as u64;
        if ty == 0 {
            break;
        }
        if size < 8 || off + size > total {
            return Err(BootInfoError::Malformed("tag size out of range"));
        }
        match ty {
            1 => bi.cmdline = read_cstr(m, tag + 8, (size - 8) as usize)?,
            3 => {
                if size < 16 {
                    return Err(BootInfoError::Malformed("module tag too small"));
                }
                let start = rd32(m, tag + 8)? as u64;
                let end = rd32(m, tag + 12)? as u64;
                if end < start {
                    return Err(BootInfoError::Malformed("module ends before it starts"));
                }
                let cmdline = read_cstr(m, tag + 16, (size - 16) as usize)?;
                bi.modules
                    .push(Module { start, end, cmdline })
                    .map_err(|_| BootInfoError::Malformed("more boot modules than supported (16)"))?;
            }
            6 => {
                if size < 16 {
                    return Err(BootInfoError::Malformed("memory map tag too small"));
                }
                let esize = rd32(m, tag + 8)? as u64;
                if esize < 24 {
                    return Err(BootInfoError::Malformed("memory map entry too small"));
                }
                saw_mmap = true;
                let mut e = 16;
                while e + esize <= size {
                    let base = rd64(m, tag + e)?;
                    let len = rd64(m, tag + e + 8)?;
                    let kind = rd32(m, tag + e + 16)?;
                    push_region(&mut bi, base, len, kind)?;
                    e += esize;
                }
            }
            _ => {}
        }
        off += (size + 7) & !7;
    }
    if !saw_mmap || bi.regions.is_empty() {
        return Err(BootInfoError::NoMemoryMap);
    }
    Ok(bi)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    struct Mem {
        base: u64,
        bytes: Vec<u8>,
    }

    impl PhysRead for Mem {
        fn read(&self, paddr: u64, buf: &mut [u8]) -> bool {
            let Some(off) = paddr.checked_sub(self.base) else { return false };
            let off = off as usize;
            match off.checked_add(buf.len()) {
                Some(end) if end <= self.bytes.len() => {
                    buf.copy_from_slice(&self.bytes[off..end]);
                    true
                }
                _ => false,
            }
        }
    }

    fn put32(b: &mut [u8], off: usize, v: u32) {
        b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put64(b: &mut [u8], off: usize, v: u64) {
        b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// A Multiboot 1 structure at 0x1000 with a command line, two modules and a map.
    fn mb1_image() -> Mem {
        let mut b = vec![0u8; 0x1000];
        put32(&mut b, 0, (1 << 2) | (1 << 3) | (1 << 6));
        put32(&mut b, 16, 0x1000 + 0x200);
        b[0x200..0x200 + 22].copy_from_slice(b"/boot/mk dom0_mem=64M\0");
        put32(&mut b, 20, 2);
        put32(&mut b, 24, 0x1000 + 0x300);
        put32(&mut b, 0x300, 0x20_0000);
        put32(&mut b, 0x304, 0x20_1234);
        put32(&mut b, 0x308, 0x1000 + 0x400);
        put32(&mut b, 0x310, 0x30_0000);
        put32(&mut b, 0x314, 0x30_0010);
        put32(&mut b, 0x318, 0);
        b[0x400..0x400 + 19].copy_from_slice(b"dom0 console=hvc0 \0");
        put32(&mut b, 44, 48);
        put32(&mut b, 48, 0x1000 + 0x500);
        put32(&mut b, 0x500, 20);
        put64(&mut b, 0x504, 0);
        put64(&mut b, 0x50c, 0x9fc00);
        put32(&mut b, 0x514, 1);
        put32(&mut b, 0x518, 20);
        put64(&mut b, 0x51c, 0x10_0000);
        put64(&mut b, 0x524, 0x0ff0_0000);
        put32(&mut b, 0x52c, 1);
        Mem { base: 0x1000, bytes: b }
    }

    #[test]
    fn multiboot1_is_read_whole() {
        let m = mb1_image();
        let bi = parse(MB1_BOOTLOADER_MAGIC, 0x1000, &m).unwrap();
        assert_eq!(bi.protocol, Protocol::Multiboot1);
        assert_eq!(bi.cmdline.as_bytes(), b"/boot/mk dom0_mem=64M");
        assert_eq!(bi.cmdline.args(), b"dom0_mem=64M");
        assert_eq!(bi.modules.len(), 2);
        assert_eq!(bi.modules[0].start, 0x20_0000);
        assert_eq!(bi.modules[0].end, 0x20_1234);
        assert_eq!(bi.modules[0].cmdline.name(), b"dom0");
        assert_eq!(bi.modules[0].cmdline.args(), b"console=hvc0 ");
        assert_eq!(bi.modules[1].cmdline.as_bytes(), b"");
        assert_eq!(bi.regions.len(), 2);
        assert_eq!(bi.regions[1], MemRegion { base: 0x10_0000, len: 0x0ff0_0000, kind: 1 });
    }

    #[test]
    fn multiboot1_hostile_inputs_are_errors() {
        assert_eq!(parse(0x1234, 0x1000, &mb1_image()).unwrap_err(), BootInfoError::BadMagic(0x1234));
        // Module count beyond the limit.
        let mut m = mb1_image();
        put32(&mut m.bytes, 20, 1_000_000);
        assert!(matches!(parse(MB1_BOOTLOADER_MAGIC, 0x1000, &m), Err(BootInfoError::Malformed(_))));
        // Module table pointing outside memory.
        let mut m = mb1_image();
        put32(&mut m.bytes, 24, 0xdead_0000);
        assert!(matches!(parse(MB1_BOOTLOADER_MAGIC, 0x1000, &m), Err(BootInfoError::Unreadable(_))));
        // No memory map.
        let mut m = mb1_image();
        put32(&mut m.bytes, 0, 1 << 3);
        assert_eq!(parse(MB1_BOOTLOADER_MAGIC, 0x1000, &m).unwrap_err(), BootInfoError::NoMemoryMap);
        // Zero-sized map entry would loop forever if not refused.
        let mut m = mb1_image();
        put32(&mut m.bytes, 0x500, 0);
        assert!(matches!(parse(MB1_BOOTLOADER_MAGIC, 0x1000, &m), Err(BootInfoError::Malformed(_))));
        // Unterminated command line stops at the limit instead of running away.
        let mut m = mb1_image();
        for b in &mut m.bytes[0x200..0x1000] {
            *b = b'x';
        }
        assert!(parse(MB1_BOOTLOADER_MAGIC, 0x1000, &m).is_err());
        // Structure itself unreadable.
        assert!(parse(MB1_BOOTLOADER_MAGIC, 0x9000, &mb1_image()).is_err());
    }

    fn mb2_image() -> Mem {
        let mut b = vec![0u8; 0x200];
        let mut off = 8;
        // cmdline tag
        put32(&mut b, off, 1);
        put32(&mut b, off + 4, 8 + 16);
        b[off + 8..off + 24].copy_from_slice(b"mk dom0_mem=32M\0");
        off += 24;
        // module tag
        put32(&mut b, off, 3);
        put32(&mut b, off + 4, 16 + 5);
        put32(&mut b, off + 8, 0x40_0000);
        put32(&mut b, off + 12, 0x40_8000);
        b[off + 16..off + 21].copy_from_slice(b"dom0\0");
        off += 24;
        // mmap tag with two entries
        put32(&mut b, off, 6);
        put32(&mut b, off + 4, 16 + 48);
        put32(&mut b, off + 8, 24);
        put64(&mut b, off + 16, 0);
        put64(&mut b, off + 24, 0x9f000);
        put32(&mut b, off + 32, 1);
        put64(&mut b, off + 40, 0x10_0000);
        put64(&mut b, off + 48, 0x700_0000);
        put32(&mut b, off + 56, 1);
        off += 64;
        put32(&mut b, off, 0);
        put32(&mut b, off + 4, 8);
        off += 8;
        put32(&mut b, 0, off as u32);
        Mem { base: 0x8000, bytes: b }
    }

    #[test]
    fn multiboot2_is_read_whole() {
        let bi = parse(MB2_BOOTLOADER_MAGIC, 0x8000, &mb2_image()).unwrap();
        assert_eq!(bi.protocol, Protocol::Multiboot2);
        assert_eq!(bi.cmdline.args(), b"dom0_mem=32M");
        assert_eq!(bi.modules.len(), 1);
        assert_eq!(bi.modules[0].end - bi.modules[0].start, 0x8000);
        assert_eq!(bi.modules[0].cmdline.name(), b"dom0");
        assert_eq!(bi.regions.len(), 2);
    }

    #[test]
    fn multiboot2_hostile_inputs_are_errors() {
        let mut m = mb2_image();
        put32(&mut m.bytes, 0, 0xffff_ffff);
        assert!(parse(MB2_BOOTLOADER_MAGIC, 0x8000, &m).is_err());
        let mut m = mb2_image();
        put32(&mut m.bytes, 12, 4); // cmdline tag size below header
        assert!(parse(MB2_BOOTLOADER_MAGIC, 0x8000, &m).is_err());
        let mut m = mb2_image();
        put32(&mut m.bytes, 12, 0x1000); // tag runs past the end
        assert!(parse(MB2_BOOTLOADER_MAGIC, 0x8000, &m).is_err());
        let mut m = mb2_image();
        put32(&mut m.bytes, 8 + 24 + 24 + 8, 0); // mmap entry size 0
        assert!(parse(MB2_BOOTLOADER_MAGIC, 0x8000, &m).is_err());
        // Every truncation of the total size is handled.
        for total in 0..0x100u32 {
            let mut m = mb2_image();
            put32(&mut m.bytes, 0, total);
            let _ = parse(MB2_BOOTLOADER_MAGIC, 0x8000, &m);
        }
    }
}
