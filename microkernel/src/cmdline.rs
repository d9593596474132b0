//! The microkernel's own command line (`dom0_mem=...`), parsed with Xen's conventions.
#![forbid(unsafe_code)]

use core::fmt;

/// A deliberate microkernel fault, to check in QEMU that the fault paths print a register
/// dump and stop the machine cleanly (never a triple fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfTest {
    /// `selftest=page-fault`: read an unmapped hypervisor address.
    PageFault,
    /// `selftest=double-fault`: take an exception with an unusable stack (needs the #DF IST).
    DoubleFault,
}

/// Options the microkernel understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Memory for dom0 in bytes (`dom0_mem=`), if given.
    pub dom0_mem: Option<u64>,
    /// A fault to provoke after boot (`selftest=`), if given.
    pub selftest: Option<SelfTest>,
    /// `domu_console`: other domains than dom0 may write to the hypervisor console
    /// (`CONSOLEIO_write`), as in a debug build of Xen; for a kernel's earliest messages
    /// (Linux's `xen_raw_console_write`), before its console ring works. Off by default,
    /// as in release Xen.
    pub domu_console: bool,
    /// The scheduler (`sched=credit`, the default, `sched=rtds` or `sched=rr`).
    pub sched: crate::sched::Policy,
    /// How vCPUs move between CPUs (`balance=both`, the default, `pull`, `push` or `off`).
    pub balance: crate::sched::balance::Balance,
}

impl Default for Options {
    fn default() -> Self {
        Options { dom0_mem: None, selftest: None, domu_console: false, sched: crate::sched::Policy::Credit, balance: crate::sched::balance::Balance::Both }
    }
}

/// A command-line option the microkernel cannot use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionError {
    /// The offending `name=value` word (truncated to 64 bytes).
    word: [u8; 64],
    len: usize,
    /// What is wrong with it.
    pub why: &'static str,
}

impl OptionError {
    fn new(word: &[u8], why: &'static str) -> Self {
        let mut w = [0u8; 64];
        let n = word.len().min(64);
        w[..n].copy_from_slice(&word[..n]);
        OptionError { word: w, len: n, why }
    }
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = core::str::from_utf8(&self.word[..self.len]).unwrap_or("<non-utf8>");
        write!(f, "bad option '{w}': {}", self.why)
    }
}

/// Parses a size like Xen's `parse_size_and_unit`: a decimal number with an optional
/// suffix B, K, M, G or T (either case); no suffix means KiB.
pub fn parse_size(s: &[u8]) -> Option<u64> {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in &s[..digits] {
        n = n.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    let shift = match &s[digits..] {
        b"" | b"k" | b"K" => 10,
        b"b" | b"B" => 0,
        b"m" | b"M" => 20,
        b"g" | b"G" => 30,
        b"t" | b"T" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// Parses the arguments (image name already removed). Unknown options are ignored, as Xen
/// does, so that command lines written for Xen still boot.
pub fn parse(args: &[u8]) -> Result<Options, OptionError> {
    let mut o = Options::default();
    for word in args.split(|c| c.is_ascii_whitespace()).filter(|w| !w.is_empty()) {
        let (name, value) = match word.iter().position(|&c| c == b'=') {
            Some(i) => (&word[..i], &word[i + 1..]),
            None => (word, &b""[..]),
        };
        if name == b"dom0_mem" {
            let size = parse_size(value).ok_or(OptionError::new(word, "expected a size such as 512M or 1G"))?;
            if size < (4 << 20) {
                return Err(OptionError::new(word, "dom0 needs at least 4M"));
            }
            o.dom0_mem = Some(size);
        } else if name == b"domu_console" {
            o.domu_console = match value {
                b"" | b"1" | b"on" | b"yes" | b"true" => true,
                b"0" | b"off" | b"no" | b"false" => false,
                _ => return Err(OptionError::new(word, "expected on or off")),
            };
        } else if name == b"sched" {
            o.sched = crate::sched::Policy::parse(value).ok_or(OptionError::new(word, "expected credit, rtds or rr"))?;
        } else if name == b"balance" {
            o.balance = crate::sched::balance::Balance::parse(value).ok_or(OptionError::new(word, "expected both, pull, push or off"))?;
        } else if name == b"selftest" {
            o.selftest = Some(match value {
                b"page-fault" => SelfTest::PageFault,
                b"double-fault" => SelfTest::DoubleFault,
                _ => return Err(OptionError::new(word, "expected page-fault or double-fault")),
            });
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    #[test]
    fn the_scheduler_is_chosen_by_name() {
        assert_eq!(parse(b"").unwrap().sched, crate::sched::Policy::Credit);
        assert_eq!(parse(b"sched=rr").unwrap().sched, crate::sched::Policy::RoundRobin);
        assert_eq!(parse(b"sched=credit").unwrap().sched, crate::sched::Policy::Credit);
        assert_eq!(parse(b"sched=rtds").unwrap().sched, crate::sched::Policy::Rtds);
        assert_eq!(parse(b"sched=sedf").unwrap_err().to_string(), "bad option 'sched=sedf': expected credit, rtds or rr");
        assert_eq!(parse(b"").unwrap().balance, crate::sched::balance::Balance::Both);
        assert_eq!(parse(b"balance=pull").unwrap().balance, crate::sched::balance::Balance::Pull);
        assert_eq!(parse(b"balance=push").unwrap().balance, crate::sched::balance::Balance::Push);
        assert_eq!(parse(b"balance=off").unwrap().balance, crate::sched::balance::Balance::Off);
        assert_eq!(parse(b"balance=steal").unwrap_err().to_string(), "bad option 'balance=steal': expected both, pull, push or off");
    }

    #[test]
    fn sizes_follow_xen() {
        assert_eq!(parse_size(b"512M"), Some(512 << 20));
        assert_eq!(parse_size(b"1g"), Some(1 << 30));
        assert_eq!(parse_size(b"65536"), Some(65536 << 10));
        assert_eq!(parse_size(b"4096B"), Some(4096));
        assert_eq!(parse_size(b""), None);
        assert_eq!(parse_size(b"M"), None);
        assert_eq!(parse_size(b"12X"), None);
        assert_eq!(parse_size(b"99999999999999999999"), None);
        assert_eq!(parse_size(b"99999999999T"), None);
    }

    #[test]
    fn options_are_parsed_and_errors_name_the_word() {
        assert_eq!(parse(b"").unwrap(), Options::default());
        assert!(parse(b"domu_console").unwrap().domu_console);
        assert!(!parse(b"domu_console=off").unwrap().domu_console);
        assert!(parse(b"domu_console=maybe").is_err());
        assert_eq!(parse(b"  loglvl=all dom0_mem=64M noreboot ").unwrap().dom0_mem, Some(64 << 20));
        let e = parse(b"dom0_mem=lots").unwrap_err();
        assert_eq!(e.to_string(), "bad option 'dom0_mem=lots': expected a size such as 512M or 1G");
        assert!(parse(b"dom0_mem=1M").is_err());
        assert!(parse(b"dom0_mem=").is_err());
        assert_eq!(parse(b"selftest=double-fault").unwrap().selftest, Some(SelfTest::DoubleFault));
        assert!(parse(b"selftest=explode").is_err());
    }
}
