//! The `xl` subcommands run against a [`Control`]: create, list, destroy, pause, unpause,
//! shutdown, and the polling that notices stopped domains and applies their actions. Output
//! goes to a `fmt::Write`, one line per fact or error, so host tests read exactly what the
//! console shows.
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use hypercall_abi::domctl::DomainInfo;
use hypercall_abi::errno::Errno;
use hypercall_abi::sched::ShutdownReason;

use crate::archive::BootFiles;
use crate::builder::{self, Control, DomainChannels};
use crate::config::StopAction;
use crate::watch::{Stop, Watcher};
use crate::xl::{
    crashed, display_name, stopped, ListHeader, ListLine, ReasonWord, Target, XlCommand, XlHelp,
    DOM0_NAME,
};

/// What the caller does after [`Toolstack::run`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing more.
    Done,
    /// Print the hypervisor facts (`xl info`: the caller owns that report).
    Info,
    /// Attach to domain `id`'s console until it stops or the user detaches (`xl create
    /// -c`, `xl console`).
    Attach {
        /// The domain.
        id: u16,
        /// Its name.
        name: String,
    },
}

/// How an attached wait ends, from [`Toolstack::poll_attached`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttachEnd {
    /// Still running: keep waiting.
    Running,
    /// It stopped (the line saying so was written).
    Stopped,
}

/// The toolstack: the hypervisor, the boot files and the watched domains.
pub struct Toolstack<'f, C> {
    /// The hypervisor.
    pub ctl: C,
    /// Where configs and kernels come from.
    pub files: BootFiles<'f>,
    /// Domains being watched for stops.
    pub watcher: Watcher,
    /// The store and console channels of each domain this toolstack built, until it is
    /// destroyed (the store service finds its ring and port here).
    pub channels: BTreeMap<u16, DomainChannels>,
    /// The config file of each domain with a `restart` action, to create it again from.
    restart_files: BTreeMap<u16, String>,
    /// The last poll failed (reported once until one succeeds).
    poll_failed: bool,
}

/// The word `xl shutdown`/`xl reboot` write to a domain's `control/shutdown` (libxl's
/// `libxl__domain_pvcontrol_write`).
fn control_word(reason: ShutdownReason) -> &'static str {
    match reason {
        ShutdownReason::Reboot => "reboot",
        ShutdownReason::Suspend => "suspend",
        _ => "poweroff",
    }
}

/// The verbs of the one-domain subcommands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Destroy,
    Pause,
    Unpause,
    /// Ask (through `control/shutdown`) or, forced, end it with the reason.
    Shutdown { reason: ShutdownReason, force: bool },
}

impl Verb {
    fn word(self) -> &'static str {
        match self {
            Verb::Destroy => "destroy",
            Verb::Pause => "pause",
            Verb::Unpause => "unpause",
            Verb::Shutdown { reason: ShutdownReason::Reboot, .. } => "reboot",
            Verb::Shutdown { .. } => "shutdown",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Verb::Destroy => "destroyed",
            Verb::Pause => "paused",
            Verb::Unpause => "unpaused",
            Verb::Shutdown { reason: ShutdownReason::Reboot, force: false } => "asked to reboot",
            Verb::Shutdown { force: false, .. } => "asked to shut down",
            Verb::Shutdown { force: true, .. } => "ended",
        }
    }
}

impl<'f, C: Control> Toolstack<'f, C> {
    /// A toolstack over `ctl` reading files from `files`.
    pub fn new(ctl: C, files: BootFiles<'f>) -> Self {
        Toolstack {
            ctl,
            files,
            watcher: Watcher::new(),
            channels: BTreeMap::new(),
            restart_files: BTreeMap::new(),
            poll_failed: false,
        }
    }

    /// Runs one `xl` subcommand, writing its lines to `out`.
    pub fn run(&mut self, cmd: &XlCommand<'_>, out: &mut dyn Write) -> Outcome {
        match *cmd {
            XlCommand::Help => {
                let _ = write!(out, "{XlHelp}");
                Outcome::Done
            }
            XlCommand::Info => Outcome::Info,
            XlCommand::List(target) => {
                self.list(target, out);
                Outcome::Done
            }
            XlCommand::Create {
                file,
                attach,
                paused,
            } => self.create(file, attach, paused, out),
            XlCommand::Destroy(t) => self.one_domain(t, Verb::Destroy, out),
            XlCommand::Pause(t) => self.one_domain(t, Verb::Pause, out),
            XlCommand::Unpause(t) => self.one_domain(t, Verb::Unpause, out),
            XlCommand::Shutdown { target, reason, force } => {
                self.one_domain(target, Verb::Shutdown { reason, force }, out)
            }
            XlCommand::Console(t) => self.console(t, out),
            XlCommand::BlockAttach { target, spec } => self.block_attach(target, spec, out),
            XlCommand::BlockDetach { target, dev } => self.block_detach(target, dev, out),
            XlCommand::BlockList(target) => self.block_list(target, out),
            XlCommand::NetworkAttach { target, settings } => self.network_attach(target, &settings, out),
            XlCommand::NetworkDetach { target, dev } => self.network_detach(target, dev, out),
            XlCommand::VcpuList(target) => {
                self.vcpu_list(target, out);
                Outcome::Done
            }
            XlCommand::VcpuPin { target, vcpu, cpus } => {
                self.vcpu_pin(target, vcpu, cpus, out);
                Outcome::Done
            }
            XlCommand::NetworkList(target) => {
                if let Some((id, _)) = self.resolve(target, out) {
                    let rows = self.ctl.nics(id);
                    let _ = write!(out, "{}", crate::netback::network_list(id, &rows));
                }
                Outcome::Done
            }
            XlCommand::SchedCredit { target, weight, cap } => {
                self.sched_credit(target, weight, cap, out);
                Outcome::Done
            }
            XlCommand::SchedRtds { target, period, budget, extra } => {
                self.sched_rtds(target, period, budget, extra, out);
                Outcome::Done
            }
        }
    }

    /// The domains `target` names (every domain without one); `None`, said, if none.
    fn chosen(&mut self, target: Option<&str>, out: &mut dyn Write) -> Option<Vec<DomainInfo>> {
        let domains = self.domains(out)?;
        match target {
            None => Some(domains),
            Some(t) => match Target::parse(t).resolve(&domains) {
                Ok(d) => Some(alloc::vec![*d]),
                Err(e) => {
                    let _ = writeln!(out, "{e}");
                    None
                }
            },
        }
    }

    /// `xl sched-rtds [-d NAME|ID [-p PERIOD -b BUDGET] [-e 0|1]]`: with nothing to set,
    /// the table of reservations and deadline misses; otherwise the checked values set
    /// (period at least 10 µs, budget 10 µs to the period or 0 for none), which the
    /// hypervisor's admission control may refuse.
    fn sched_rtds(&mut self, target: Option<&str>, period: Option<&str>, budget: Option<&str>, extra: Option<&str>, out: &mut dyn Write) {
        let Some(chosen) = self.chosen(target, out) else { return };
        if period.is_some() || extra.is_some() {
            let Some(d) = chosen.first() else { return };
            let number = |flag: &str, v: &str| v.parse::<u32>().map_err(|_| alloc::format!("xl sched-rtds: {flag}: '{v}' is not a number"));
            let checked = (|| {
                let now = self.ctl.sched_rtds(d.domain, None).map_err(|e| alloc::format!("xl sched-rtds: {} ({}): {}", display_name(d), d.domain, rtds_error(e)))?;
                let (p, b) = match (period, budget) {
                    (Some(p), Some(b)) => (number("-p", p)?, number("-b", b)?),
                    _ => (now.period_us, now.budget_us),
                };
                if p < 10 {
                    return Err(String::from("xl sched-rtds: the period must be at least 10 us"));
                }
                if b != 0 && !(10..=p).contains(&b) {
                    return Err(alloc::format!("xl sched-rtds: the budget must be from 10 us to the period ({p} us), or 0 for no reservation"));
                }
                let e = match extra {
                    None => now.extra,
                    Some("0") => false,
                    Some("1") => true,
                    Some(v) => return Err(alloc::format!("xl sched-rtds: -e: '{v}' is not 0 or 1")),
                };
                Ok((p, b, e))
            })();
            match checked {
                Ok(set) => {
                    if let Err(e) = self.ctl.sched_rtds(d.domain, Some(set)) {
                        let _ = writeln!(out, "xl sched-rtds: {} ({}): {}", display_name(d), d.domain, rtds_error(e));
                    }
                }
                Err(line) => {
                    let _ = writeln!(out, "{line}");
                }
            }
            return;
        }
        let _ = writeln!(out, "{:<32} {:>5} {:>9} {:>9} {:>9} {:>6}", "Name", "ID", "Period", "Budget", "Extratime", "Misses");
        for d in &chosen {
            match self.ctl.sched_rtds(d.domain, None) {
                Ok(r) => {
                    let budget = if r.budget_us == 0 { String::from("-") } else { alloc::format!("{}", r.budget_us) };
                    let _ = writeln!(out, "{:<32} {:>5} {:>9} {:>9} {:>9} {:>6}", display_name(d), d.domain, r.period_us, budget, if r.extra { "yes" } else { "no" }, r.misses);
                }
                Err(e) => {
                    let _ = writeln!(out, "xl sched-rtds: {} ({}): {}", display_name(d), d.domain, rtds_error(e));
                    return;
                }
            }
        }
    }

    /// `xl sched-credit [-d NAME|ID [-w WEIGHT] [-c CAP]]`: with nothing to set, the table
    /// of weights and caps (every domain, or the one named); with `-w`/`-c`, checked as
    /// libxl checks them (weight 1 to 65535, cap 0 to 100 per vCPU), then set.
    fn sched_credit(&mut self, target: Option<&str>, weight: Option<&str>, cap: Option<&str>, out: &mut dyn Write) {
        let Some(chosen) = self.chosen(target, out) else { return };
        if weight.is_some() || cap.is_some() {
            let Some(d) = chosen.first() else { return };
            let number = |flag: &str, v: &str| v.parse::<u32>().map_err(|_| alloc::format!("xl sched-credit: {flag}: '{v}' is not a number"));
            let checked = (|| {
                let w = match weight {
                    Some(v) => match number("-w", v)? {
                        n @ 1..=65535 => n as u16,
                        _ => return Err(String::from("xl sched-credit: Cpu weight out of range, valid values are within range from 1 to 65535")),
                    },
                    None => 0,
                };
                let most = d.max_vcpus.max(1) * 100;
                let c = match cap {
                    Some(v) => match number("-c", v)? {
                        n if n <= most => n as u16,
                        _ => return Err(alloc::format!("xl sched-credit: Cpu cap out of range, valid range is from 0 to {most} for specified number of vcpus")),
                    },
                    None => u16::MAX,
                };
                Ok((w, c))
            })();
            match checked {
                Ok(set) => {
                    if let Err(e) = self.ctl.sched_credit(d.domain, Some(set)) {
                        let _ = writeln!(out, "xl sched-credit: {} ({}): {}", display_name(d), d.domain, sched_error(e));
                    }
                }
                Err(line) => {
                    let _ = writeln!(out, "{line}");
                }
            }
            return;
        }
        let _ = writeln!(out, "{:<32} {:>5} {:>6} {:>4}", "Name", "ID", "Weight", "Cap");
        for d in &chosen {
            match self.ctl.sched_credit(d.domain, None) {
                Ok((w, c)) => {
                    let _ = writeln!(out, "{:<32} {:>5} {:>6} {:>4}", display_name(d), d.domain, w, c);
                }
                Err(e) => {
                    let _ = writeln!(out, "xl sched-credit: {} ({}): {}", display_name(d), d.domain, sched_error(e));
                    return;
                }
            }
        }
    }

    /// `xl block-attach NAME|ID DISKSPEC`.
    fn block_attach(&mut self, target: &str, spec: &str, out: &mut dyn Write) -> Outcome {
        let Some((id, name)) = self.resolve(target, out) else {
            return Outcome::Done;
        };
        let disk = match crate::config::disk::parse(spec) {
            Ok(d) => d,
            Err(e) => {
                let _ = writeln!(out, "xl block-attach: {spec}: {e}");
                return Outcome::Done;
            }
        };
        if let Err(e) = self.ctl.attach_disk(id, &disk) {
            let _ = writeln!(out, "xl block-attach: {name} ({id}): {e}");
        }
        Outcome::Done
    }

    /// `xl block-detach NAME|ID DEV`.
    fn block_detach(&mut self, target: &str, dev: &str, out: &mut dyn Write) -> Outcome {
        let Some((id, name)) = self.resolve(target, out) else {
            return Outcome::Done;
        };
        let devid = match dev.parse::<u32>().ok().or_else(|| crate::config::disk::vdev_number(dev)) {
            Some(d) => d,
            None => {
                let _ = writeln!(out, "xl block-detach: \"{dev}\" is not a device number or disk name");
                return Outcome::Done;
            }
        };
        if let Err(e) = self.ctl.detach_disk(id, devid) {
            let _ = writeln!(out, "xl block-detach: {name} ({id}): {e}");
        }
        Outcome::Done
    }

    /// `xl network-attach NAME|ID [KEY=VALUE ...]`: the next free device number.
    fn network_attach(&mut self, target: &str, settings: &[&str], out: &mut dyn Write) -> Outcome {
        let Some((id, name)) = self.resolve(target, out) else {
            return Outcome::Done;
        };
        let used: alloc::vec::Vec<u32> = self.ctl.nics(id).iter().map(|r| r.devid).collect();
        let devid = (0..).find(|d| !used.contains(d)).unwrap_or(0);
        let words: alloc::vec::Vec<&str> = settings.iter().copied().filter(|w| !w.is_empty()).collect();
        let spec = match crate::config::vif::parse(&words.join(","), devid) {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(out, "xl network-attach: {e}");
                return Outcome::Done;
            }
        };
        if let Err(e) = self.ctl.attach_nic(id, &spec) {
            let _ = writeln!(out, "xl network-attach: {name} ({id}): {e}");
        }
        Outcome::Done
    }

    /// `xl network-detach NAME|ID DEVID|MAC`.
    fn network_detach(&mut self, target: &str, dev: &str, out: &mut dyn Write) -> Outcome {
        let Some((id, name)) = self.resolve(target, out) else {
            return Outcome::Done;
        };
        let devid = match (dev.parse::<u32>().ok(), xenbus::netif::Mac::parse(dev)) {
            (Some(d), _) => Some(d),
            (None, Some(mac)) => self.ctl.nics(id).iter().find(|r| xenbus::netif::Mac::parse(&r.mac) == Some(mac)).map(|r| r.devid),
            (None, None) => {
                let _ = writeln!(out, "xl network-detach: \"{dev}\" is not a device number or MAC");
                return Outcome::Done;
            }
        };
        let Some(devid) = devid else {
            let _ = writeln!(out, "xl network-detach: {name} ({id}): no network interface has MAC {dev}");
            return Outcome::Done;
        };
        if let Err(e) = self.ctl.detach_nic(id, devid) {
            let _ = writeln!(out, "xl network-detach: {name} ({id}): {e}");
        }
        Outcome::Done
    }

    /// `xl block-list NAME|ID`.
    fn block_list(&mut self, target: &str, out: &mut dyn Write) -> Outcome {
        let Some((id, _)) = self.resolve(target, out) else {
            return Outcome::Done;
        };
        let rows = self.ctl.disks(id);
        let _ = write!(out, "{}", crate::blkback::block_list(id, &rows));
        Outcome::Done
    }

    /// The id and display name of the domain `target` (a name or an id) names; `None`, with
    /// the one-line reason written to `out`, if the list fails or no domain matches.
    fn resolve(&mut self, target: &str, out: &mut dyn Write) -> Option<(u16, String)> {
        let domains = self.domains(out)?;
        match Target::parse(target).resolve(&domains) {
            Ok(d) => Some((d.domain, display_name(d))),
            Err(e) => {
                let _ = writeln!(out, "{e}");
                None
            }
        }
    }

    /// `xl console NAME|ID`: attach, if the domain has a console this dom0 serves.
    fn console(&mut self, target: &str, out: &mut dyn Write) -> Outcome {
        let Some((id, name)) = self.resolve(target, out) else {
            return Outcome::Done;
        };
        if !self.channels.contains_key(&id) {
            let _ = writeln!(out, "xl: {name} ({id}) has no console ring served by dom0");
            return Outcome::Done;
        }
        Outcome::Attach { id, name }
    }

    /// Forgets a destroyed domain.
    fn forget(&mut self, id: u16) {
        self.watcher.forget(id);
        self.channels.remove(&id);
        self.restart_files.remove(&id);
    }

    fn create(&mut self, file: &str, attach: bool, paused: bool, out: &mut dyn Write) -> Outcome {
        match builder::create(&mut self.ctl, &self.files, file, paused, out) {
            Ok(created) => {
                let c = &created.config;
                self.watcher
                    .watch(created.id, &c.name, c.on_poweroff, c.on_crash);
                self.channels.insert(created.id, created.channels);
                if c.on_poweroff == StopAction::Restart || c.on_crash == StopAction::Restart {
                    self.restart_files.insert(created.id, String::from(file));
                }
                let _ = writeln!(
                    out,
                    "xl: domain {} ({}) created{}",
                    c.name,
                    created.id,
                    if paused { ", paused" } else { "" }
                );
                if attach {
                    Outcome::Attach {
                        id: created.id,
                        name: c.name.clone(),
                    }
                } else {
                    Outcome::Done
                }
            }
            Err(e) => {
                let _ = writeln!(out, "{e}");
                Outcome::Done
            }
        }
    }

    /// The domain list, or the line saying why there is none.
    fn domains(&mut self, out: &mut dyn Write) -> Option<Vec<DomainInfo>> {
        match self.ctl.domains() {
            Ok(list) => Some(list),
            Err(e) => {
                let _ = writeln!(out, "xl: cannot list the domains: {e}");
                None
            }
        }
    }

    /// `xl vcpu-list [NAME|ID]`.
    fn vcpu_list(&mut self, target: Option<&str>, out: &mut dyn Write) {
        let Some(shown) = self.shown_domains(target, out) else {
            return;
        };
        let ncpus = self.ctl.physinfo().map_or(1, |p| p.nr_cpus);
        let _ = writeln!(out, "{}", crate::xl::VCPU_LIST_HEADER);
        for d in &shown {
            let name = crate::xl::display_name(d);
            for v in 0..d.max_vcpus {
                match self.ctl.vcpu_info(d.domain, v) {
                    Ok(info) => {
                        let affinity = self.ctl.vcpu_affinity(d.domain, v, None).map_or_else(|_| String::from("?"), |m| crate::cpulist::format(m, ncpus));
                        let _ = writeln!(out, "{}", crate::xl::vcpu_line(&name, d.domain, &info, &affinity));
                    }
                    Err(e) => {
                        let _ = writeln!(out, "xl vcpu-list: {name} ({}) vCPU {v}: {e}", d.domain);
                    }
                }
            }
        }
    }

    /// `xl vcpu-pin NAME|ID VCPU|all CPUS`: pins one vCPU (or each) to the CPUs of a list;
    /// a bad vCPU or list gets one line saying why, and nothing changes.
    fn vcpu_pin(&mut self, target: &str, vcpu: &str, cpus: &str, out: &mut dyn Write) {
        let Some((id, name)) = self.resolve(target, out) else { return };
        let map = match crate::cpulist::parse(cpus) {
            Ok(m) => m,
            Err(e) => {
                let _ = writeln!(out, "xl vcpu-pin: {e}");
                return;
            }
        };
        let max = self.domains(out).and_then(|ds| ds.iter().find(|d| d.domain == id).map(|d| d.max_vcpus)).unwrap_or(0);
        let vcpus: Vec<u32> = if vcpu == "all" {
            (0..max).collect()
        } else {
            match vcpu.parse::<u32>() {
                Ok(v) if v < max => alloc::vec![v],
                _ => {
                    let _ = writeln!(out, "xl vcpu-pin: {name} ({id}) has no vCPU '{vcpu}' (it has {max})");
                    return;
                }
            }
        };
        let ncpus = self.ctl.physinfo().map_or(1, |p| p.nr_cpus);
        for v in vcpus {
            match self.ctl.vcpu_affinity(id, v, Some(map)) {
                Ok(m) => {
                    let _ = writeln!(out, "xl: {name} ({id}) vCPU {v} may run on CPUs {}", crate::cpulist::format(m, ncpus));
                }
                Err(Errno::EINVAL) => {
                    let _ = writeln!(out, "xl vcpu-pin: {name} ({id}) vCPU {v}: no CPU of '{cpus}' is online (the machine has {ncpus})");
                    return;
                }
                Err(e) => {
                    let _ = writeln!(out, "xl vcpu-pin: {name} ({id}) vCPU {v}: {e}");
                    return;
                }
            }
        }
    }

    /// Every domain, or the one `target` names: `None` (with the line saying why) if there
    /// is no such domain or no list.
    fn shown_domains(&mut self, target: Option<&str>, out: &mut dyn Write) -> Option<Vec<DomainInfo>> {
        let domains = self.domains(out)?;
        match target {
            Some(t) => match Target::parse(t).resolve(&domains) {
                Ok(d) => Some(alloc::vec![*d]),
                Err(e) => {
                    let _ = writeln!(out, "{e}");
                    None
                }
            },
            None => Some(domains),
        }
    }

    fn list(&mut self, target: Option<&str>, out: &mut dyn Write) {
        let Some(shown) = self.shown_domains(target, out) else {
            return;
        };
        let _ = writeln!(out, "{ListHeader}");
        for d in &shown {
            let _ = writeln!(out, "{}", ListLine(d));
        }
    }

    fn one_domain(&mut self, target: &str, verb: Verb, out: &mut dyn Write) -> Outcome {
        let Some((id, name)) = self.resolve(target, out) else {
            return Outcome::Done;
        };
        if id == 0 {
            let _ = writeln!(out, "xl: cannot {} {DOM0_NAME}", verb.word());
            return Outcome::Done;
        }
        let result = match verb {
            Verb::Destroy => self.ctl.destroy_domain(id),
            Verb::Pause => self.ctl.pause_domain(id),
            Verb::Unpause => self.ctl.unpause_domain(id),
            Verb::Shutdown { reason, force: true } => self.ctl.shutdown_domain(id, reason),
            Verb::Shutdown { reason, force: false } => match self.ctl.pv_control(id, control_word(reason)) {
                Ok(true) => Ok(()),
                Ok(false) => {
                    let _ = writeln!(
                        out,
                        "xl: domain {name} ({id}) does not watch control/shutdown; its kernel may not act on it (xl {} -F {name} ends it)",
                        verb.word()
                    );
                    Ok(())
                }
                Err(e) => Err(e),
            },
        };
        let _ = match result {
            Ok(()) => {
                if verb == Verb::Destroy {
                    self.forget(id);
                }
                writeln!(out, "xl: domain {name} ({id}) {}", verb.done())
            }
            Err(Errno::EINVAL) if verb == Verb::Unpause => {
                writeln!(out, "xl: domain {name} ({id}) is not paused")
            }
            Err(e) => writeln!(out, "xl: {} {name} ({id}) failed: {e}", verb.word()),
        };
        Outcome::Done
    }

    /// Looks for domains that stopped, reports each once and applies its action. A failing
    /// domain list is reported once (until a poll succeeds again) and yields no stops.
    /// Until dom0 has created a domain (or after all it created are gone) there is nothing
    /// to look for, and no hypercall is made.
    pub fn poll(&mut self, out: &mut dyn Write) -> Vec<Stop> {
        if self.watcher.is_empty() {
            return Vec::new();
        }
        let domains = match self.ctl.domains() {
            Ok(list) => list,
            Err(e) => {
                if !self.poll_failed {
                    let _ = writeln!(out, "xl: cannot watch the domains: {e}");
                }
                self.poll_failed = true;
                return Vec::new();
            }
        };
        self.poll_failed = false;
        let stops = self.watcher.scan(&domains);
        for s in &stops {
            let _ = writeln!(out, "{s}");
            if matches!(s.action, StopAction::Destroy | StopAction::Restart) {
                let file = self.restart_files.get(&s.id).cloned();
                match self.ctl.destroy_domain(s.id) {
                    Ok(()) => self.forget(s.id),
                    Err(e) => {
                        let _ = writeln!(
                            out,
                            "xl: destroying domain {} ({}) failed: {e}",
                            s.name, s.id
                        );
                        continue;
                    }
                }
                // Created again from its config file, as xl does; it gets a new id.
                if let (StopAction::Restart, Some(file)) = (s.action, file) {
                    self.create(&file, false, false, out);
                }
            }
        }
        stops
    }

    /// One turn of an attached wait on domain `id`: polls, and ends the wait (saying
    /// `xl: NAME stopped (why)`) once the domain has stopped or is gone.
    pub fn poll_attached(&mut self, id: u16, name: &str, out: &mut dyn Write) -> AttachEnd {
        let stops = self.poll(out);
        if let Some(s) = stops.iter().find(|s| s.id == id) {
            let _ = writeln!(out, "xl: {name} stopped ({})", s.why());
            return AttachEnd::Stopped;
        }
        match self.ctl.domain_info(id) {
            Err(Errno::ESRCH) => {
                let _ = writeln!(out, "xl: {name} stopped (gone)");
                AttachEnd::Stopped
            }
            Ok(d) if display_name(&d) != name => {
                let _ = writeln!(out, "xl: {name} stopped (gone)");
                AttachEnd::Stopped
            }
            // Stopped, but reported before the wait began.
            Ok(d) if stopped(&d) => {
                let why: &dyn fmt::Display = if crashed(&d) {
                    &"crashed"
                } else {
                    &ReasonWord(d.shutdown_reason)
                };
                let _ = writeln!(out, "xl: {name} stopped ({why})");
                AttachEnd::Stopped
            }
            _ => AttachEnd::Running,
        }
    }
}

/// `xl: detached from NAME`.
pub struct Detached<'a>(pub &'a str);

impl fmt::Display for Detached<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "xl: detached from {}", self.0)
    }
}

#[cfg(test)]
mod tests;

/// What a scheduler-op error means to the user.
fn sched_error(e: Errno) -> String {
    match e {
        Errno::EINVAL => String::from("refused: the credit scheduler is not the one running (the microkernel's sched= option)"),
        e => alloc::format!("{e}"),
    }
}

/// What an EDF scheduler-op error means to the user.
fn rtds_error(e: Errno) -> String {
    match e {
        Errno::EINVAL => String::from("refused: the EDF scheduler is not the one running (the microkernel's sched= option), or a value is out of range"),
        Errno::ENOSPC => String::from("refused: the reservations would need more than the CPU (admission control)"),
        e => alloc::format!("{e}"),
    }
}
