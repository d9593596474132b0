//! Helpers over `start_info`: magic check, command line, boot modules, image layout.
//!
//! The accessors on the structure are portable (host-tested); the functions that turn the
//! addresses in it into memory (modules, the image base) exist on the guest target only.

use hypercall_abi::start_info::StartInfo;

use crate::text::{c_str, c_str_lossy};

/// Prefix every start_info magic has (`"xen-<version>-<platform>"`).
pub const MAGIC_PREFIX: &[u8] = b"xen-";

/// Whether `si.magic` starts with `"xen-"`.
pub fn has_valid_magic(si: &StartInfo) -> bool {
    si.magic.starts_with(MAGIC_PREFIX)
}

/// The magic string (e.g. `"xen-3.0-x86_64"`), up to its NUL, lossy.
pub fn magic(si: &StartInfo) -> &str {
    c_str_lossy(&si.magic)
}

/// The guest command line, up to its NUL (or the end of the 1024-byte field), lossy: the
/// valid UTF-8 prefix.
pub fn cmdline(si: &StartInfo) -> &str {
    c_str_lossy(&si.cmd_line)
}

/// The raw command-line bytes up to the NUL (for display with [`crate::text::Lossy`]).
pub fn cmdline_bytes(si: &StartInfo) -> &[u8] {
    c_str(&si.cmd_line)
}

#[cfg(target_os = "none")]
mod guest {
    use hypercall_abi::start_info::{StartInfo, SIF_MOD_START_PFN};

    use crate::modules::Modules;

    unsafe extern "C" {
        /// First byte of the image (= the link base, GUEST_BASE), from guest.ld.
        static __image_start: u8;
        /// End of the image (page-aligned end of .bss), from guest.ld.
        static __image_end: u8;
    }

    /// The virtual address the image is linked (and loaded) at: Xen's VIRT_BASE. Pfn `p` of
    /// the initial region is mapped at `virt_base() + p * 4096`.
    pub fn virt_base() -> u64 {
        (&raw const __image_start) as u64
    }

    /// The end of the loaded image; the builder puts start_info, page tables and the like
    /// after it.
    pub fn image_end() -> u64 {
        (&raw const __image_end) as u64
    }

    /// The module area (`mod_len` bytes at `mod_start`), if it is mapped.
    ///
    /// With `SIF_MOD_START_PFN` the module is given as a pfn and is not in the initial
    /// mapping; the kit does not map it (yet), so this returns `None`.
    pub fn module_area(si: &StartInfo) -> Option<&'static [u8]> {
        if si.mod_len == 0 || si.mod_start == 0 || si.flags & SIF_MOD_START_PFN != 0 {
            return None;
        }
        let len = usize::try_from(si.mod_len)
            .ok()
            .filter(|&l| l <= isize::MAX as usize)?;
        si.mod_start.checked_add(si.mod_len)?;
        // SAFETY: the domain builder maps the module area (mod_start, mod_len) into our
        // initial region, readable, for the life of the domain; nobody writes it while we
        // hold this shared slice (the kit never does). The range does not wrap (checked).
        Some(unsafe { core::slice::from_raw_parts(si.mod_start as *const u8, len) })
    }

    /// The boot modules (see [`crate::modules`]).
    pub fn modules(si: &StartInfo) -> Modules<'static> {
        match module_area(si) {
            Some(area) => Modules::from_area(area, si.flags),
            None => Modules::none(),
        }
    }
}

#[cfg(target_os = "none")]
pub use crate::start::current;
#[cfg(target_os = "none")]
pub use guest::{image_end, module_area, modules, virt_base};

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn magic_and_cmdline() {
        let mut si = StartInfo::new_zeroed();
        assert!(!has_valid_magic(&si));
        si.magic[..14].copy_from_slice(b"xen-3.0-x86_64");
        assert!(has_valid_magic(&si));
        assert_eq!(magic(&si), "xen-3.0-x86_64");
        assert_eq!(cmdline(&si), "");
        si.cmd_line[..11].copy_from_slice(b"console=hvc");
        assert_eq!(cmdline(&si), "console=hvc");
        // No NUL at all: the whole field.
        si.cmd_line.fill(b'a');
        assert_eq!(cmdline(&si).len(), si.cmd_line.len());
        // Invalid UTF-8 is cut.
        si.cmd_line[3] = 0xff;
        assert_eq!(cmdline(&si), "aaa");
        assert_eq!(cmdline_bytes(&si).len(), si.cmd_line.len());
        si.magic.fill(b'x');
        assert!(!has_valid_magic(&si));
    }
}
