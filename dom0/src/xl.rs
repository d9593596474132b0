//! The `xl` command at dom0's prompt: its subcommands and their arguments, domains named
//! by name or id, and the text of `xl list` (Xen's columns and state letters).
#![forbid(unsafe_code)]

use alloc::string::String;
use core::fmt;

use hypercall_abi::domctl::{
    DomainInfo, DOMINF_BLOCKED, DOMINF_CRASHED, DOMINF_DYING, DOMINF_PAUSED, DOMINF_RUNNING,
    DOMINF_SHUTDOWN,
};
use hypercall_abi::sched::{ShutdownReason, SHUTDOWN_CRASH};
use pv_guest::domctl::name_bytes;

/// The name `xl list` gives dom0, as Xen's toolstack does.
pub const DOM0_NAME: &str = "Domain-0";

/// A parsed `xl` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XlCommand<'a> {
    /// `xl help` (or `xl` alone).
    Help,
    /// `xl info`.
    Info,
    /// `xl list [NAME|ID]`.
    List(Option<&'a str>),
    /// `xl create [-c] [-p] FILE`.
    Create {
        /// The config file (a boot file name).
        file: &'a str,
        /// `-c`: wait on the guest's output until it stops or Ctrl-] is typed.
        attach: bool,
        /// `-p`: leave it paused.
        paused: bool,
    },
    /// `xl destroy NAME|ID`.
    Destroy(&'a str),
    /// `xl pause NAME|ID`.
    Pause(&'a str),
    /// `xl unpause NAME|ID`.
    Unpause(&'a str),
    /// `xl shutdown [-F] NAME|ID` and `xl reboot [-F] NAME|ID`: ask it, through its
    /// `control/shutdown` store node (as Xen's xl does), to power off or reboot; with `-F`
    /// the hypervisor ends it at once with that reason (`SCHEDOP_remote_shutdown`).
    Shutdown {
        /// The domain.
        target: &'a str,
        /// `Poweroff` or `Reboot`.
        reason: ShutdownReason,
        /// `-F`: not asked, ended.
        force: bool,
    },
    /// `xl console NAME|ID`: show its console (recent output, then live; input goes to it)
    /// until Ctrl-] or its end.
    Console(&'a str),
    /// `xl block-attach NAME|ID DISKSPEC`: give a running domain a virtual disk (one
    /// `disk =` item, `phy:vda3,xvdb,w`).
    BlockAttach {
        /// The domain.
        target: &'a str,
        /// The disk, as a config's `disk` item.
        spec: &'a str,
    },
    /// `xl block-detach NAME|ID DEV`: take a virtual disk away (DEV: its number or vdev).
    BlockDetach {
        /// The domain.
        target: &'a str,
        /// `51728` or `xvdb`.
        dev: &'a str,
    },
    /// `xl block-list NAME|ID`: a domain's virtual disks.
    BlockList(&'a str),
    /// `xl network-attach NAME|ID [KEY=VALUE ...]`: give a running domain a network
    /// interface (the settings of a `vif` item, one per word).
    NetworkAttach {
        /// The domain.
        target: &'a str,
        /// The settings (`mac=...`, `ip=...`), one per word, the unused ones empty.
        settings: [&'a str; MAX_NIC_SETTINGS],
    },
    /// `xl network-detach NAME|ID DEVID|MAC`: take a network interface away.
    NetworkDetach {
        /// The domain.
        target: &'a str,
        /// `1` or `00:16:3e:00:00:01`.
        dev: &'a str,
    },
    /// `xl network-list NAME|ID`: a domain's network interfaces.
    NetworkList(&'a str),
    /// `xl vcpu-list [NAME|ID]`: the vCPUs of every domain, or of one.
    VcpuList(Option<&'a str>),
    /// `xl vcpu-pin NAME|ID VCPU|all CPUS`: the CPUs a vCPU (or every one) may run on.
    VcpuPin {
        /// The domain.
        target: &'a str,
        /// A vCPU number, or `all`.
        vcpu: &'a str,
        /// A CPU list (`0-1`, `1,3`, `all`).
        cpus: &'a str,
    },
    /// `xl sched-rtds [-d NAME|ID [-p PERIOD -b BUDGET] [-e 0|1]]`: list the EDF
    /// reservations (and deadline misses), or set one domain's (µs).
    SchedRtds {
        /// `-d`: one domain.
        target: Option<&'a str>,
        /// `-p`: the period to set.
        period: Option<&'a str>,
        /// `-b`: the budget to set (0: no reservation).
        budget: Option<&'a str>,
        /// `-e`: extra time, 0 or 1.
        extra: Option<&'a str>,
    },
    /// `xl sched-credit [-d NAME|ID [-w WEIGHT] [-c CAP]]`: list the credit scheduler's
    /// weights and caps, or set one domain's (numbers checked by the toolstack, as libxl).
    SchedCredit {
        /// `-d`: one domain.
        target: Option<&'a str>,
        /// `-w`: the weight to set.
        weight: Option<&'a str>,
        /// `-c`: the cap to set.
        cap: Option<&'a str>,
    },
}

/// Why an `xl` line was not understood; displays as the one line to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XlUsage<'a> {
    /// Not a subcommand.
    UnknownSubcommand(&'a str),
    /// An option the subcommand does not take.
    UnknownOption {
        /// The subcommand.
        sub: &'static str,
        /// The option.
        option: &'a str,
    },
    /// A required argument is missing.
    Missing {
        /// The subcommand.
        sub: &'static str,
        /// What it needs.
        what: &'static str,
    },
    /// One argument too many.
    Extra {
        /// The subcommand.
        sub: &'static str,
        /// The first extra word.
        arg: &'a str,
    },
}

impl fmt::Display for XlUsage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            XlUsage::UnknownSubcommand(word) => {
                write!(
                    f,
                    "xl: unknown subcommand '{word}'; type 'xl help' for the list"
                )
            }
            XlUsage::UnknownOption { sub, option } => {
                write!(f, "xl {sub}: unknown option '{option}'")
            }
            XlUsage::Missing { sub, what } => write!(f, "xl {sub}: missing {what}"),
            XlUsage::Extra { sub, arg } => write!(f, "xl {sub}: unexpected argument '{arg}'"),
        }
    }
}

/// One subcommand for `xl help`.
#[derive(Clone, Copy, Debug)]
pub struct Subcommand {
    /// Name.
    pub name: &'static str,
    /// Arguments, as the user types them.
    pub args: &'static str,
    /// One line of explanation.
    pub summary: &'static str,
}

/// The header of `xl vcpu-list`, as xl prints it.
pub const VCPU_LIST_HEADER: &str = "Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)";

/// One line of `xl vcpu-list`: the domain's name and id, the vCPU and what
/// `DOMCTL_GETVCPUINFO` said of it. State letters as xl's: `r` running, `b` blocked, `-`
/// runnable; a vCPU down shows `--p` and no CPU.
pub fn vcpu_line(name: &str, dom: u16, v: &hypercall_abi::domctl::GetVcpuInfo, affinity: &str) -> alloc::string::String {
    let state = if v.online == 0 {
        "--p"
    } else if v.running != 0 {
        "r--"
    } else if v.blocked != 0 {
        "-b-"
    } else {
        "---"
    };
    let cpu = if v.online == 0 { alloc::string::String::from("-") } else { alloc::format!("{}", v.cpu) };
    let secs = v.cpu_time / 100_000_000;
    alloc::format!("{name:<32} {dom:>5} {:>5} {cpu:>5}   {state}  {:>6}.{} {affinity} / all", v.vcpu, secs / 10, secs % 10)
}

/// The most settings `xl network-attach` takes (each key at most once).
pub const MAX_NIC_SETTINGS: usize = 8;

/// Every subcommand, in the order `xl help` lists them.
pub const SUBCOMMANDS: [Subcommand; 20] = [
    Subcommand {
        name: "create",
        args: "[-c] [-p] FILE",
        summary: "create a domain from config FILE (-c: wait on its output, Ctrl-] detaches; -p: leave it paused)",
    },
    Subcommand {
        name: "list",
        args: "[NAME|ID]",
        summary: "list domains: name, id, memory (MiB), vCPUs, state, CPU time",
    },
    Subcommand {
        name: "destroy",
        args: "NAME|ID",
        summary: "stop a domain at once and free its memory",
    },
    Subcommand {
        name: "pause",
        args: "NAME|ID",
        summary: "stop scheduling a domain",
    },
    Subcommand {
        name: "unpause",
        args: "NAME|ID",
        summary: "schedule a paused domain again",
    },
    Subcommand {
        name: "shutdown",
        args: "[-F] NAME|ID",
        summary: "ask a domain to power off (control/shutdown); -F: end it now",
    },
    Subcommand {
        name: "reboot",
        args: "[-F] NAME|ID",
        summary: "ask a domain to reboot (control/shutdown); -F: end it now",
    },
    Subcommand {
        name: "console",
        args: "NAME|ID",
        summary: "attach to a domain's console: its recent output, then live; Ctrl-] detaches",
    },
    Subcommand {
        name: "block-attach",
        args: "NAME|ID DISKSPEC",
        summary: "give a running domain a virtual disk (DISKSPEC as a disk item: phy:vda3,xvdb,w)",
    },
    Subcommand {
        name: "block-detach",
        args: "NAME|ID DEV",
        summary: "take a virtual disk away (DEV: xvdb or 51728); queued requests are answered first",
    },
    Subcommand {
        name: "block-list",
        args: "NAME|ID",
        summary: "a domain's virtual disks, their back-end and front-end state",
    },
    Subcommand {
        name: "network-attach",
        args: "NAME|ID [KEY=VALUE ...]",
        summary: "give a running domain a network interface (keys of a vif item: mac=, ip=, rate=)",
    },
    Subcommand {
        name: "network-detach",
        args: "NAME|ID DEVID|MAC",
        summary: "take a network interface away",
    },
    Subcommand {
        name: "network-list",
        args: "NAME|ID",
        summary: "a domain's network interfaces, their states, rings and frame counts",
    },
    Subcommand {
        name: "vcpu-list",
        args: "[NAME|ID]",
        summary: "the vCPUs of every domain (or one): state, CPU, time, affinity",
    },
    Subcommand {
        name: "vcpu-pin",
        args: "NAME|ID VCPU|all CPUS",
        summary: "the CPUs a vCPU may run on (a list: 0-1, 1,3, all)",
    },
    Subcommand {
        name: "sched-credit",
        args: "[-d NAME|ID [-w W] [-c C]]",
        summary: "credit scheduler: list weights and caps, or set a domain's (weight 1-65535, cap % of a CPU, 0: none)",
    },
    Subcommand {
        name: "sched-rtds",
        args: "[-d NAME|ID [-p P -b B] [-e 0|1]]",
        summary: "EDF scheduler: list reservations and deadline misses, or reserve B us every P us (-b 0: none; -e: extra time)",
    },
    Subcommand {
        name: "info",
        args: "",
        summary: "hypervisor version, memory, uptime, domains and cpus",
    },
    Subcommand {
        name: "help",
        args: "",
        summary: "list these subcommands",
    },
];

/// The `xl help` text.
pub struct XlHelp;

impl fmt::Display for XlHelp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in SUBCOMMANDS {
            let usage = alloc::format!("{} {}", s.name, s.args);
            writeln!(f, "  xl {:<24}{}", usage.trim_end(), s.summary)?;
        }
        Ok(())
    }
}

/// Parses the words after `xl`.
pub fn parse<'a>(mut words: impl Iterator<Item = &'a str>) -> Result<XlCommand<'a>, XlUsage<'a>> {
    let Some(sub) = words.next() else {
        return Ok(XlCommand::Help);
    };
    let one_domain = |name: &'static str, words: &mut dyn Iterator<Item = &'a str>| {
        let target = words.next().ok_or(XlUsage::Missing {
            sub: name,
            what: "a domain name or id",
        })?;
        if target.starts_with('-') {
            return Err(XlUsage::UnknownOption {
                sub: name,
                option: target,
            });
        }
        no_more(name, words)?;
        Ok(target)
    };
    match sub {
        "help" | "-h" | "--help" => no_more("help", &mut words).map(|()| XlCommand::Help),
        "info" => no_more("info", &mut words).map(|()| XlCommand::Info),
        "list" => {
            let target = words.next();
            if let Some(option) = target.filter(|t| t.starts_with('-')) {
                return Err(XlUsage::UnknownOption {
                    sub: "list",
                    option,
                });
            }
            no_more("list", &mut words)?;
            Ok(XlCommand::List(target))
        }
        "create" => {
            let (mut attach, mut paused, mut file) = (false, false, None);
            for word in words {
                match word {
                    "-c" => attach = true,
                    "-p" => paused = true,
                    "-cp" | "-pc" => (attach, paused) = (true, true),
                    _ if word.starts_with('-') => {
                        return Err(XlUsage::UnknownOption {
                            sub: "create",
                            option: word,
                        })
                    }
                    _ if file.is_some() => {
                        return Err(XlUsage::Extra {
                            sub: "create",
                            arg: word,
                        })
                    }
                    _ => file = Some(word),
                }
            }
            let file = file.ok_or(XlUsage::Missing {
                sub: "create",
                what: "a config file name",
            })?;
            Ok(XlCommand::Create {
                file,
                attach,
                paused,
            })
        }
        "destroy" => one_domain("destroy", &mut words).map(XlCommand::Destroy),
        "pause" => one_domain("pause", &mut words).map(XlCommand::Pause),
        "unpause" => one_domain("unpause", &mut words).map(XlCommand::Unpause),
        "shutdown" | "reboot" => {
            let (name, reason) = if sub == "shutdown" {
                ("shutdown", ShutdownReason::Poweroff)
            } else {
                ("reboot", ShutdownReason::Reboot)
            };
            let mut words = words.peekable();
            let force = words.next_if_eq(&"-F").is_some();
            one_domain(name, &mut words).map(|target| XlCommand::Shutdown { target, reason, force })
        }
        "console" => one_domain("console", &mut words).map(XlCommand::Console),
        "block-list" => one_domain("block-list", &mut words).map(XlCommand::BlockList),
        "network-list" => one_domain("network-list", &mut words).map(XlCommand::NetworkList),
        "vcpu-list" => {
            let target = words.next();
            if let Some(option) = target.filter(|t| t.starts_with('-')) {
                return Err(XlUsage::UnknownOption { sub: "vcpu-list", option });
            }
            no_more("vcpu-list", &mut words)?;
            Ok(XlCommand::VcpuList(target))
        }
        "vcpu-pin" => {
            let target = words.next().ok_or(XlUsage::Missing { sub: "vcpu-pin", what: "a domain name or id" })?;
            if target.starts_with('-') {
                return Err(XlUsage::UnknownOption { sub: "vcpu-pin", option: target });
            }
            let vcpu = words.next().ok_or(XlUsage::Missing { sub: "vcpu-pin", what: "a vCPU number or 'all'" })?;
            let cpus = words.next().ok_or(XlUsage::Missing { sub: "vcpu-pin", what: "a CPU list" })?;
            no_more("vcpu-pin", &mut words)?;
            Ok(XlCommand::VcpuPin { target, vcpu, cpus })
        }
        "network-attach" => {
            let target = words.next().ok_or(XlUsage::Missing { sub: "network-attach", what: "a domain name or id" })?;
            if target.starts_with('-') {
                return Err(XlUsage::UnknownOption { sub: "network-attach", option: target });
            }
            let mut settings = [""; MAX_NIC_SETTINGS];
            for (i, w) in words.enumerate() {
                *settings.get_mut(i).ok_or(XlUsage::Extra { sub: "network-attach", arg: w })? = w;
            }
            Ok(XlCommand::NetworkAttach { target, settings })
        }
        "network-detach" => {
            let target = words.next().ok_or(XlUsage::Missing { sub: "network-detach", what: "a domain name or id" })?;
            if target.starts_with('-') {
                return Err(XlUsage::UnknownOption { sub: "network-detach", option: target });
            }
            let dev = words.next().ok_or(XlUsage::Missing { sub: "network-detach", what: "a device (its number or MAC)" })?;
            no_more("network-detach", &mut words)?;
            Ok(XlCommand::NetworkDetach { target, dev })
        }
        "block-attach" | "block-detach" => {
            let (name, what) = if sub == "block-attach" { ("block-attach", "a disk spec (phy:vda3,xvdb,w)") } else { ("block-detach", "a device (xvdb or 51728)") };
            let target = words.next().ok_or(XlUsage::Missing { sub: name, what: "a domain name or id" })?;
            if target.starts_with('-') {
                return Err(XlUsage::UnknownOption { sub: name, option: target });
            }
            let arg = words.next().ok_or(XlUsage::Missing { sub: name, what })?;
            no_more(name, &mut words)?;
            Ok(if sub == "block-attach" { XlCommand::BlockAttach { target, spec: arg } } else { XlCommand::BlockDetach { target, dev: arg } })
        }
        "sched-credit" => {
            let [target, weight, cap, _] = options("sched-credit", &mut words, [("-d", "a domain after -d"), ("-w", "a weight after -w"), ("-c", "a cap after -c"), ("", "")])?;
            if target.is_none() && (weight.is_some() || cap.is_some()) {
                return Err(XlUsage::Missing { sub: "sched-credit", what: "a domain (-d) to set" });
            }
            Ok(XlCommand::SchedCredit { target, weight, cap })
        }
        "sched-rtds" => {
            let [target, period, budget, extra] = options("sched-rtds", &mut words, [("-d", "a domain after -d"), ("-p", "a period after -p"), ("-b", "a budget after -b"), ("-e", "0 or 1 after -e")])?;
            if target.is_none() && (period.is_some() || budget.is_some() || extra.is_some()) {
                return Err(XlUsage::Missing { sub: "sched-rtds", what: "a domain (-d) to set" });
            }
            if period.is_some() != budget.is_some() {
                return Err(XlUsage::Missing { sub: "sched-rtds", what: "both a period (-p) and a budget (-b)" });
            }
            Ok(XlCommand::SchedRtds { target, period, budget, extra })
        }
        other => Err(XlUsage::UnknownSubcommand(other)),
    }
}

/// Options that each take a value (`-d DOM`), up to four, in any order: their values.
fn options<'a>(sub: &'static str, words: &mut dyn Iterator<Item = &'a str>, flags: [(&'static str, &'static str); 4]) -> Result<[Option<&'a str>; 4], XlUsage<'a>> {
    let mut got = [None; 4];
    while let Some(word) = words.next() {
        let Some(i) = flags.iter().position(|&(f, _)| !f.is_empty() && f == word) else {
            return Err(if word.starts_with('-') { XlUsage::UnknownOption { sub, option: word } } else { XlUsage::Extra { sub, arg: word } });
        };
        got[i] = Some(words.next().ok_or(XlUsage::Missing { sub, what: flags[i].1 })?);
    }
    Ok(got)
}

fn no_more<'a>(
    sub: &'static str,
    words: &mut dyn Iterator<Item = &'a str>,
) -> Result<(), XlUsage<'a>> {
    match words.next() {
        None => Ok(()),
        Some(arg) => Err(XlUsage::Extra { sub, arg }),
    }
}

/// A domain as the user names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// All digits: an id (too large for one: matches nothing).
    Id(u32),
    /// Anything else: a name (`Domain-0` is dom0).
    Name(&'a str),
}

impl<'a> Target<'a> {
    /// Reads a `NAME|ID` argument. Names cannot be all digits (the config parser refuses
    /// them), so digits are always an id.
    pub fn parse(word: &'a str) -> Target<'a> {
        if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
            Target::Id(word.parse().unwrap_or(u32::MAX))
        } else {
            Target::Name(word)
        }
    }

    /// The domain it names among `domains`.
    pub fn resolve<'d>(
        &self,
        domains: &'d [DomainInfo],
    ) -> Result<&'d DomainInfo, NoSuchDomain<'a>> {
        domains
            .iter()
            .find(|d| match *self {
                Target::Id(id) => u32::from(d.domain) == id,
                Target::Name(name) => display_name(d) == name,
            })
            .ok_or(NoSuchDomain(*self))
    }
}

/// `xl: no domain named 'x'` / `xl: no domain with id 7`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoSuchDomain<'a>(pub Target<'a>);

impl fmt::Display for NoSuchDomain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Target::Id(id) => write!(f, "xl: no domain with id {id}"),
            Target::Name(name) => write!(f, "xl: no domain named '{name}'"),
        }
    }
}

/// A domain's name as `xl` shows it: `Domain-0` for dom0, otherwise its own (invalid
/// UTF-8 replaced, control characters escaped).
pub fn display_name(info: &DomainInfo) -> String {
    if info.domain == 0 {
        return String::from(DOM0_NAME);
    }
    alloc::format!("{}", pv_guest::text::Lossy(name_bytes(info)))
}

/// Whether the domain stopped because it crashed (a fault, or a shutdown with reason crash).
pub fn crashed(info: &DomainInfo) -> bool {
    info.flags & DOMINF_CRASHED != 0
        || (info.flags & DOMINF_SHUTDOWN != 0 && info.shutdown_reason == SHUTDOWN_CRASH)
}

/// Whether the domain has stopped running for good (shut down or crashed), dying or not.
pub fn stopped(info: &DomainInfo) -> bool {
    info.flags & (DOMINF_SHUTDOWN | DOMINF_CRASHED) != 0
}

/// The six state columns of `xl list`: `r` running, `b` blocked, `p` paused, `s` shut
/// down, `c` crashed, `d` dying, each `-` when not so.
pub fn state_letters(info: &DomainInfo) -> [u8; 6] {
    let f = info.flags;
    let crash = crashed(info);
    let on = |set: bool, letter: u8| if set { letter } else { b'-' };
    [
        on(f & DOMINF_RUNNING != 0, b'r'),
        on(f & DOMINF_BLOCKED != 0, b'b'),
        on(f & DOMINF_PAUSED != 0, b'p'),
        on(f & DOMINF_SHUTDOWN != 0 && !crash, b's'),
        on(crash, b'c'),
        on(f & DOMINF_DYING != 0, b'd'),
    ]
}

/// A shutdown reason's word (`poweroff`, `reboot`, ..., `reason <n>` for others).
pub struct ReasonWord(pub u32);

impl fmt::Display for ReasonWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match ShutdownReason::try_from(self.0) {
            Ok(ShutdownReason::Poweroff) => "poweroff",
            Ok(ShutdownReason::Reboot) => "reboot",
            Ok(ShutdownReason::Suspend) => "suspend",
            Ok(ShutdownReason::Crash) => "crash",
            Ok(ShutdownReason::Watchdog) => "watchdog",
            Ok(ShutdownReason::SoftReset) => "soft_reset",
            Err(_) => return write!(f, "reason {}", self.0),
        };
        f.write_str(word)
    }
}

/// The header of `xl list`.
pub struct ListHeader;

impl fmt::Display for ListHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<40} {:>5} {:>5} {:>5}     {:<6}  {:>8}",
            "Name", "ID", "Mem", "VCPUs", "State", "Time(s)"
        )
    }
}

/// One line of `xl list`: memory in MiB, CPU time in seconds with one decimal (as xl).
pub struct ListLine<'a>(pub &'a DomainInfo);

impl fmt::Display for ListLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let state = state_letters(d);
        let tenths = d.cpu_time_ns / 100_000_000;
        let time = alloc::format!("{}.{}", tenths / 10, tenths % 10);
        write!(
            f,
            "{:<40} {:>5} {:>5} {:>5}     {}  {:>8}",
            display_name(d),
            d.domain,
            d.tot_pages >> 8,
            d.max_vcpus,
            core::str::from_utf8(&state).unwrap_or("------"),
            time
        )
    }
}

#[cfg(test)]
mod tests;
