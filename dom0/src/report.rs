//! The text of dom0's reports (banner facts, `info`, `version`), built from hypercall
//! results. Each report is a `Display` value, so the kernel prints it and tests format it.

use core::fmt;

use hypercall_abi::sysctl::PhysInfo;
use hypercall_abi::version::XenCompileInfo;
use pv_guest::text::{c_str, pages_to_kib, pages_to_mib, Lossy, Thousandths};

/// `XENVER_version`'s result split into major and minor.
pub const fn split_version(raw: u32) -> (u32, u32) {
    (raw >> 16, raw & 0xffff)
}

/// `hypervisor: Xen-compatible <maj>.<min><extraversion>` (without the label).
#[derive(Clone, Copy)]
pub struct HypervisorVersion<'a> {
    /// `XENVER_version`'s result.
    pub version: u32,
    /// `XENVER_extraversion`'s buffer (NUL-terminated).
    pub extraversion: &'a [u8],
}

impl fmt::Display for HypervisorVersion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor) = split_version(self.version);
        write!(
            f,
            "Xen-compatible {major}.{minor}{}",
            Lossy(c_str(self.extraversion))
        )
    }
}

/// The `info` command's lines.
pub struct Info<'a> {
    /// The hypervisor version.
    pub hypervisor: HypervisorVersion<'a>,
    /// `SYSCTL_PHYSINFO`'s result.
    pub phys: PhysInfo,
}

impl fmt::Display for Info<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.phys;
        writeln!(f, "hypervisor: {}", self.hypervisor)?;
        writeln!(
            f,
            "memory: total {} KiB ({} MiB), free {} KiB ({} MiB)",
            pages_to_kib(p.total_pages),
            pages_to_mib(p.total_pages),
            pages_to_kib(p.free_pages),
            pages_to_mib(p.free_pages)
        )?;
        writeln!(f, "uptime: {} s", Thousandths::secs_from_nanos(p.uptime_ns))?;
        writeln!(f, "domains: {}", p.nr_domains)?;
        writeln!(f, "cpus: {} at {} MHz", p.nr_cpus, p.cpu_khz / 1000)
    }
}

/// The `version` command's lines.
pub struct VersionDetails<'a> {
    /// The hypervisor version.
    pub hypervisor: HypervisorVersion<'a>,
    /// `XENVER_compile_info`.
    pub compile: &'a XenCompileInfo,
    /// `XENVER_capabilities` (NUL-terminated).
    pub capabilities: &'a [u8],
    /// `XENVER_changeset` (NUL-terminated).
    pub changeset: &'a [u8],
    /// `XENVER_platform_parameters.virt_start`.
    pub virt_start: u64,
    /// `XENVER_pagesize`.
    pub pagesize: u64,
    /// `XENVER_get_features` submap 0.
    pub features: u32,
}

impl fmt::Display for VersionDetails<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.compile;
        writeln!(f, "version: {}", self.hypervisor)?;
        writeln!(f, "compiler: {}", Lossy(c_str(&c.compiler)))?;
        writeln!(
            f,
            "compiled: by {}@{} on {}",
            Lossy(c_str(&c.compile_by)),
            Lossy(c_str(&c.compile_domain)),
            Lossy(c_str(&c.compile_date))
        )?;
        writeln!(
            f,
            "capabilities: {}",
            Lossy(trim_trailing_spaces(c_str(self.capabilities)))
        )?;
        writeln!(f, "changeset: {}", Lossy(c_str(self.changeset)))?;
        writeln!(f, "virt_start: {:#x}", self.virt_start)?;
        writeln!(f, "pagesize: {}", self.pagesize)?;
        writeln!(f, "features[0]: {:#010x}", self.features)
    }
}

/// `bytes` without trailing ASCII spaces (Xen's capabilities string ends with one).
fn trim_trailing_spaces(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &bytes[..end]
}

/// `dom0: start_info: nr_pages=<n> (<MiB> MiB) flags=0x<hex>`.
pub struct StartInfoLine {
    /// `start_info.nr_pages`.
    pub nr_pages: u64,
    /// `start_info.flags`.
    pub flags: u32,
}

impl fmt::Display for StartInfoLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dom0: start_info: nr_pages={} ({} MiB) flags={:#x}",
            self.nr_pages,
            pages_to_mib(self.nr_pages),
            self.flags
        )
    }
}

/// `dom0: up in <ms>.<3 digits> ms since microkernel entry`.
pub struct UpLine {
    /// `PhysInfo::uptime_ns` when dom0 reached its prompt.
    pub uptime_ns: u64,
}

impl fmt::Display for UpLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dom0: up in {} ms since microkernel entry",
            Thousandths::millis_from_nanos(self.uptime_ns)
        )
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use zerocopy::FromZeros;

    fn hv() -> HypervisorVersion<'static> {
        HypervisorVersion {
            version: (4 << 16) | 19,
            extraversion: b".0-rs\0\0\0\0\0\0\0\0\0\0\0",
        }
    }

    #[test]
    fn hypervisor_version() {
        assert_eq!(format!("{}", hv()), "Xen-compatible 4.19.0-rs");
        let empty = HypervisorVersion {
            version: 0x0003_0000,
            extraversion: &[0; 16],
        };
        assert_eq!(format!("{empty}"), "Xen-compatible 3.0");
        // An unterminated, non-UTF-8 extraversion still prints.
        let odd = HypervisorVersion {
            version: 0x0004_0013,
            extraversion: b"-x\xff",
        };
        assert_eq!(format!("{odd}"), "Xen-compatible 4.19-x\u{fffd}");
    }

    #[test]
    fn info_lines() {
        let phys = PhysInfo {
            nr_cpus: 1,
            cpu_khz: 2_995_200,
            total_pages: 32_768,
            free_pages: 30_000,
            max_mfn: 32_767,
            uptime_ns: 1_234_567_890,
            nr_domains: 1,
            _pad: 0,
        };
        let text = format!(
            "{}",
            Info {
                hypervisor: hv(),
                phys
            }
        );
        assert_eq!(
            text,
            "hypervisor: Xen-compatible 4.19.0-rs\n\
             memory: total 131072 KiB (128 MiB), free 120000 KiB (117 MiB)\n\
             uptime: 1.234 s\n\
             domains: 1\n\
             cpus: 1 at 2995 MHz\n"
        );
    }

    #[test]
    fn version_lines() {
        let mut compile = XenCompileInfo::new_zeroed();
        compile.compiler[..5].copy_from_slice(b"rustc");
        compile.compile_by[..4].copy_from_slice(b"root");
        compile.compile_domain[..5].copy_from_slice(b"local");
        compile.compile_date[..10].copy_from_slice(b"2026-01-01");
        let text = format!(
            "{}",
            VersionDetails {
                hypervisor: hv(),
                compile: &compile,
                capabilities: b"xen-3.0-x86_64 \0",
                changeset: b"abc123\0",
                virt_start: 0xffff_8000_0000_0000,
                pagesize: 4096,
                features: 1 << 11,
            }
        );
        assert_eq!(
            text,
            "version: Xen-compatible 4.19.0-rs\n\
             compiler: rustc\n\
             compiled: by root@local on 2026-01-01\n\
             capabilities: xen-3.0-x86_64\n\
             changeset: abc123\n\
             virt_start: 0xffff800000000000\n\
             pagesize: 4096\n\
             features[0]: 0x00000800\n"
        );
    }

    #[test]
    fn banner_lines() {
        assert_eq!(
            format!(
                "{}",
                StartInfoLine {
                    nr_pages: 32768,
                    flags: 0x3
                }
            ),
            "dom0: start_info: nr_pages=32768 (128 MiB) flags=0x3"
        );
        assert_eq!(
            format!(
                "{}",
                UpLine {
                    uptime_ns: 187_654_321
                }
            ),
            "dom0: up in 187.654 ms since microkernel entry"
        );
        assert_eq!(
            format!("{}", UpLine { uptime_ns: 5_000 }),
            "dom0: up in 0.005 ms since microkernel entry"
        );
    }
}

/// `audit`'s line: `audit: ok: ...` with what was counted, or `audit: FAILED: <what>`.
pub struct AuditLine<'a>(pub &'a hypercall_abi::sysctl::AuditResult);

impl fmt::Display for AuditLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        match r.ok {
            1 => write!(
                f,
                "audit: ok: {} domains, {} frames owned, {} page tables, {} event channels, {} grant mappings",
                r.domains, r.frames_owned, r.tables, r.ports, r.grant_mappings
            ),
            2 => write!(f, "audit: not run: {}", Lossy(r.what())),
            _ => write!(f, "audit: FAILED: {}", Lossy(r.what())),
        }
    }
}

#[cfg(test)]
mod audit_tests {
    use super::*;
    use alloc::string::ToString;
    use hypercall_abi::sysctl::AuditResult;

    #[test]
    fn audit_lines_say_what_held_or_what_did_not() {
        let ok = AuditResult { ok: 1, domains: 3, frames_owned: 900, tables: 12, ports: 9, grant_mappings: 1, ..Default::default() };
        assert_eq!(
            AuditLine(&ok).to_string(),
            "audit: ok: 3 domains, 900 frames owned, 12 page tables, 9 event channels, 1 grant mappings"
        );
        let mut bad = AuditResult::default();
        bad.set_what("frames: mfn 0x10 is owned by d7, which does not exist");
        assert_eq!(AuditLine(&bad).to_string(), "audit: FAILED: frames: mfn 0x10 is owned by d7, which does not exist");
    }
}
