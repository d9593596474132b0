//! dom0: the privileged domain's kernel: the start-of-day banner and a console shell
//! (`help`, `info`, `version`, `xl ...`, `shutdown`, and the `bench-create` benchmark) over
//! console_io.
//!
//! The parsing, the toolstack and the report text live in the `dom0` library (host-tested);
//! this file does the hypercalls and the console loop, and `xen_control` gives the toolstack
//! the hypervisor.
//!
//! Between keys dom0 sleeps in `SCHEDOP_block`: `VIRQ_CONSOLE` wakes it when input arrives,
//! `VIRQ_DOM_EXC` when a domain shuts down or crashes (then it looks at the domains), and a
//! guest's console event channel when that guest wrote to its console ring (then the
//! console back-end drains it: `[name] line` lines, or raw output while `xl console` is
//! attached to it), or its store event channel (then the store service serves its ring,
//! and every ring with replies or watch events waiting). Should binding those fail, it falls back to polling with
//! `SCHEDOP_yield`.
#![no_std]
#![no_main]

extern crate alloc;

mod blk;
mod net;
mod devices;
mod files;
mod xen_control;

use alloc::collections::{BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dom0::archive::BootFiles;
use dom0::console::{corrupt_line, Drained};
use dom0::report::{AuditLine, HypervisorVersion, Info, StartInfoLine, UpLine, VersionDetails};
use hypercall_abi::sysctl::{AuditResult, Sysctl, SYSCTL_AUDIT};
use dom0::shell::{self, Command, Help, XsCommand};
use dom0::toolstack::{AttachEnd, Detached, Outcome, Toolstack};
use dom0::xl::XlCommand;
use dom0::{BANNER, MAX_LINE};
use hypercall_abi::errno::Errno;
use hypercall_abi::version::{
    XENVER_CAPABILITIES, XENVER_CHANGESET, XENVER_EXTRAVERSION, XENVER_PAGESIZE, XENVER_VERSION,
    XEN_CAPABILITIES_INFO_LEN, XEN_CHANGESET_INFO_LEN, XEN_EXTRAVERSION_LEN,
};
use pv_guest::console::write_bytes;
use pv_guest::hypercall::{self, check, console_io_read, sched_shutdown, sched_yield};
use pv_guest::line::{Action, LineEditor};
use pv_guest::mm::xen::GuestMm;
use pv_guest::text::Lossy;
use pv_guest::events;
use pv_guest::hypercall_abi::event_channel::{VIRQ_CONSOLE, VIRQ_DOM_EXC, VIRQ_TIMER};
use pv_guest::time::{self, rdtsc};
use pv_guest::{print, println, start_info, ShutdownReason, StartInfo};
use dom0::split::{Device, Kind};
use xen_control::XenControl;

const PROMPT: &str = "dom0> ";

fn banner(si: &StartInfo) {
    println!("dom0: {BANNER}");
    println!(
        "{}",
        StartInfoLine {
            nr_pages: si.nr_pages,
            flags: si.flags
        }
    );
    println!(
        "dom0: cmdline: \"{}\"",
        Lossy(start_info::cmdline_bytes(si))
    );
    let modules = start_info::modules(si);
    println!("dom0: modules: {}", modules.clone().count());
    let mut it = modules;
    for (i, m) in it.by_ref().enumerate() {
        println!(
            "dom0: module {i}: {} bytes \"{}\"",
            m.bytes.len(),
            Lossy(m.cmdline.as_bytes())
        );
    }
    if it.malformed() {
        println!("dom0: warning: the module package is malformed; listing stopped there");
    }
}

/// `XENVER_version` and `XENVER_extraversion`.
fn hypervisor_version(extraversion: &mut [u8; XEN_EXTRAVERSION_LEN]) -> Result<u32, Errno> {
    let version = check(hypercall::xen_version(XENVER_VERSION, &mut []))? as u32;
    check(hypercall::xen_version(XENVER_EXTRAVERSION, extraversion))?;
    Ok(version)
}

/// `audit`: the microkernel's check of its own accounting.
fn audit() -> Result<(), Errno> {
    let mut op = Sysctl::new(SYSCTL_AUDIT);
    hypercall::sysctl(&mut op)?;
    let result: AuditResult = op.read_payload();
    println!("{}", AuditLine(&result));
    Ok(())
}

fn info() -> Result<(), Errno> {
    let mut extraversion = [0; XEN_EXTRAVERSION_LEN];
    let version = hypervisor_version(&mut extraversion)?;
    let phys = hypercall::physinfo()?;
    print!(
        "{}",
        Info {
            hypervisor: HypervisorVersion {
                version,
                extraversion: &extraversion
            },
            phys
        }
    );
    Ok(())
}

fn version() -> Result<(), Errno> {
    let mut extraversion = [0; XEN_EXTRAVERSION_LEN];
    let version = hypervisor_version(&mut extraversion)?;
    let compile = hypercall::xen_compile_info()?;
    let capabilities: [u8; XEN_CAPABILITIES_INFO_LEN] =
        hypercall::xen_version_string(XENVER_CAPABILITIES)?;
    let changeset: [u8; XEN_CHANGESET_INFO_LEN] = hypercall::xen_version_string(XENVER_CHANGESET)?;
    let virt_start = hypercall::xen_virt_start()?;
    let pagesize = check(hypercall::xen_version(XENVER_PAGESIZE, &mut []))?;
    let features = hypercall::xen_features(0)?;
    print!(
        "{}",
        VersionDetails {
            hypervisor: HypervisorVersion {
                version,
                extraversion: &extraversion
            },
            compile: &compile,
            capabilities: &capabilities,
            changeset: &changeset,
            virt_start,
            pagesize,
            features,
        }
    );
    Ok(())
}

/// The longest time between two looks at the domain list, in milliseconds of CPU time.
const POLL_MS: u64 = 5;
/// Cycles between polls when the CPU frequency is unknown.
const POLL_CYCLES_FALLBACK: u64 = 10_000_000;
/// Ctrl-]: ends `xl create -c`'s wait, as it ends `xl console`.
const DETACH: u8 = 0x1d;

/// The console as a `fmt::Write` for the toolstack: each line goes out whole (guest output
/// cannot land inside it) as soon as it is complete, so it comes before what the hypervisor
/// prints about what follows it; the first is preceded by `lead`.
struct Console {
    lead: &'static str,
    wrote: bool,
    line: String,
}

impl Console {
    fn after(lead: &'static str) -> Self {
        Console {
            lead,
            wrote: false,
            line: String::new(),
        }
    }
}

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.line.push_str(s);
        if let Some(end) = self.line.rfind('\n') {
            let lead = if self.wrote { "" } else { self.lead };
            self.wrote = true;
            print!("{lead}{}", &self.line[..=end]);
            self.line.drain(..=end);
        }
        Ok(())
    }
}

impl Drop for Console {
    /// What is left of an unfinished line.
    fn drop(&mut self) {
        if !self.line.is_empty() {
            let lead = if self.wrote { "" } else { self.lead };
            print!("{lead}{}", self.line);
        }
    }
}

/// Set by either VIRQ handler: something to look at (input, or a domain's end).
static WAKE: AtomicBool = AtomicBool::new(false);
/// Set by the `VIRQ_DOM_EXC` handler: a domain shut down, crashed or was destroyed.
static DOM_EXC: AtomicBool = AtomicBool::new(false);

fn on_console(_port: u32) {
    WAKE.store(true, Ordering::SeqCst);
}

fn on_dom_exc(_port: u32) {
    DOM_EXC.store(true, Ordering::SeqCst);
    WAKE.store(true, Ordering::SeqCst);
}

/// The NIC's interrupt: noted for the network back end, and the loop woken.
fn on_nic_irq(_port: u32) {
    devices::NIC_IRQ.store(true, Ordering::SeqCst);
    WAKE.store(true, Ordering::SeqCst);
}

/// dom0's ports on which a guest's device signalled: a console ring with output, a store
/// ring with requests, a virtual disk's ring (bit `p % 64` of word `p / 64`). Whose each
/// is, the back-ends' dispatch table says (`XenControl::device_of`).
static DEVICE_PORTS: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

/// The one handler of every device port.
fn on_device_event(port: u32) {
    if let Some(word) = DEVICE_PORTS.get((port / 64) as usize) {
        word.fetch_or(1 << (port % 64), Ordering::SeqCst);
    }
    WAKE.store(true, Ordering::SeqCst);
}

/// Takes the ports set in `set` since the last call.
fn take_ports(set: &[AtomicU64; 64]) -> Vec<u32> {
    let mut ports = Vec::new();
    for (w, word) in set.iter().enumerate() {
        let mut bits = word.swap(0, Ordering::SeqCst);
        while bits != 0 {
            ports.push(w as u32 * 64 + bits.trailing_zeros());
            bits &= bits - 1;
        }
    }
    ports
}

/// Binds `virq` to `handler` and unmasks it.
fn bind(virq: u32, handler: events::PortHandler) -> Result<u32, Errno> {
    let port = events::bind_virq(virq, 0)?;
    events::set_handler(port, handler)?;
    events::unmask(port)?;
    Ok(port)
}

/// Sets up the event channels dom0 sleeps on; whether it can block (otherwise it polls).
fn init_events(si: &StartInfo) -> bool {
    // The timer wakes the loop too (the network back end's rate windows).
    let r = events::init(si)
        .and_then(|()| bind(VIRQ_CONSOLE, on_console))
        .and_then(|_| bind(VIRQ_DOM_EXC, on_dom_exc))
        .and_then(|_| bind(VIRQ_TIMER, on_console));
    match r {
        Ok(_) => true,
        Err(e) => {
            println!("dom0: event channels: {e}; polling the console instead");
            false
        }
    }
}

/// The console shell: the line editor, input read but not yet handled, and the toolstack.
struct Shell {
    editor: LineEditor<MAX_LINE>,
    /// Bytes read from the console and not yet fed to the editor (typed ahead while a
    /// command ran, e.g. during `xl create -c`).
    pending: VecDeque<u8>,
    read_failed: bool,
    toolstack: Toolstack<'static, XenControl>,
    poll_cycles: u64,
    next_poll: u64,
    /// Sleeps on VIRQ_CONSOLE and VIRQ_DOM_EXC (else polls with yield).
    blocking: bool,
    /// The serial line is not at a line start (a prompt, echo, or raw guest output): a
    /// guest's `[name] line` starts on a new line.
    mid_line: bool,
    /// Device ports that signalled and whose back-end has not had its turn yet.
    signalled: BTreeSet<u32>,
}

impl Shell {
    /// The signalled ports whose device `wanted` accepts, taken out of the set (the ports
    /// nobody serves any more are dropped).
    fn take_device_ports(&mut self, wanted: fn(Device) -> bool) -> Vec<u32> {
        self.signalled.extend(take_ports(&DEVICE_PORTS));
        let ctl = &self.toolstack.ctl;
        let mut taken = Vec::new();
        self.signalled.retain(|&p| match ctl.device_of(p) {
            Some(d) if wanted(d) => {
                taken.push(p);
                false
            }
            Some(_) => true,
            None => false,
        });
        taken
    }

    /// Reads what console input there is into `pending`; whether any came.
    fn read_input(&mut self) -> bool {
        let mut input = [0u8; 64];
        match console_io_read(&mut input) {
            Ok(n) => {
                self.pending.extend(&input[..n]);
                n > 0
            }
            Err(e) => {
                if !self.read_failed {
                    println!("dom0: console read failed: {e}; no input");
                    self.read_failed = true;
                }
                false
            }
        }
    }

    /// Waits for something to do: blocks until a VIRQ handler ran, or (without event
    /// channels) yields once.
    fn wait(&mut self) {
        if self.blocking {
            // A vif held by its rate sends again at the next window: wake then.
            if let Some(at) = self.toolstack.ctl.vif_deadline() {
                let _ = time::set_timer_op(at);
            }
            if time::block_until(&WAKE).is_err() {
                let _ = sched_yield();
            }
            // Cleared after waking and before the next read: an event after this point
            // sets it again, so none is lost.
            WAKE.store(false, Ordering::SeqCst);
        } else {
            let _ = sched_yield();
        }
    }

    /// Whether to look at the domains now: VIRQ_DOM_EXC said something changed, or
    /// (polling) POLL_MS have passed.
    fn stops_due(&mut self) -> bool {
        if self.blocking {
            DOM_EXC.swap(false, Ordering::SeqCst)
        } else {
            self.poll_due()
        }
    }

    /// Whether it is time to look at the domains again (at most every POLL_MS).
    fn poll_due(&mut self) -> bool {
        let now = rdtsc();
        if now < self.next_poll {
            return false;
        }
        self.next_poll = now.saturating_add(self.poll_cycles);
        true
    }

    /// At the prompt: reports domains that stopped, on lines of their own, then shows the
    /// prompt and the line being typed again.
    fn poll_at_prompt(&mut self) {
        let mut out = Console::after(if self.mid_line { "\n" } else { "" });
        self.toolstack.poll(&mut out);
        if out.wrote {
            print!("{PROMPT}{}", self.editor.line());
            self.mid_line = true;
        }
    }

    /// Ends a partial line on the serial console.
    fn end_line(&mut self) {
        if self.mid_line {
            println!();
            self.mid_line = false;
        }
    }

    /// The console back-end's turn: drains the rings of the guests that signalled (every
    /// ring with `all`), printing each guest's whole lines as `[name] line`, or the raw
    /// output of the `attached` one (the others' output then only goes to their logs),
    /// and notifies each guest whose ring it emptied.
    fn serve_consoles(&mut self, all: bool, attached: Option<u16>) {
        let ports = self.take_device_ports(|d| d.kind == Kind::Console);
        let consoles = &mut self.toolstack.ctl.consoles;
        let doms: Vec<u16> = if all {
            consoles.by_dom.keys().copied().collect()
        } else {
            ports.iter().filter_map(|&p| consoles.by_port(p)).collect()
        };
        let mid_line = &mut self.mid_line;
        let mut notify = Vec::new();
        for dom in doms {
            let Some(c) = consoles.by_dom.get_mut(&dom) else {
                continue;
            };
            let raw = attached == Some(dom);
            let shown = raw || attached.is_none();
            let mut emit = |b: &[u8]| {
                if !shown || b.is_empty() {
                    return;
                }
                if !raw && *mid_line {
                    write_bytes(b"\n");
                }
                write_bytes(b);
                *mid_line = b.last() != Some(&b'\n');
            };
            match c.drain(raw, &mut emit) {
                Drained::Read(_) => notify.push(c.local_port),
                Drained::Broke(corrupt) if !shown => {
                    if *mid_line {
                        write_bytes(b"\n");
                    }
                    write_bytes(corrupt_line(&c.name, corrupt).as_bytes());
                    *mid_line = false;
                    // Its events would only wake dom0 for nothing now.
                    events::mask(c.local_port);
                }
                Drained::Broke(_) => events::mask(c.local_port),
                Drained::Nothing => {}
            }
        }
        for port in notify {
            let _ = events::send(port);
        }
    }

    /// The store service's turn: serves the rings of the guests that signalled and every
    /// ring with replies or watch events waiting, notifies them, and drops (with one line
    /// each) the rings that lied.
    fn serve_stores(&mut self) {
        let ports = self.take_device_ports(|d| d.kind == Kind::Store);
        let served = self.toolstack.ctl.store.serve(&ports);
        for (port, line) in &served.disconnected {
            events::mask(*port);
            self.end_line();
            println!("{line}");
        }
        for &port in served.notify.iter().chain(&served.echo) {
            let _ = events::send(port);
        }
        self.serve_backends();
    }

    /// The split devices' back-ends' turn: front ends that changed state, and rings that
    /// signalled.
    fn serve_backends(&mut self) {
        let ports = self.take_device_ports(|d| d.kind == Kind::Vbd);
        let keys: Vec<_> = ports.iter().filter_map(|&p| self.toolstack.ctl.device_of(p)).map(|d| d.key).collect();
        for line in self.toolstack.ctl.serve_vbds(&keys) {
            self.end_line();
            println!("{line}");
        }
        let ports = self.take_device_ports(|d| d.kind == Kind::Vif);
        let keys: Vec<_> = ports.iter().filter_map(|&p| self.toolstack.ctl.device_of(p)).map(|d| d.key).collect();
        for line in self.toolstack.ctl.serve_vifs(&keys) {
            self.end_line();
            println!("{line}");
        }
    }

    /// Runs one `xenstore-*` command as dom0.
    fn xenstore(&mut self, command: XsCommand<'_>) {
        let name = command.name();
        let store = &mut self.toolstack.ctl.store;
        let result = match command {
            XsCommand::Ls(path) => store.ls(path, &mut Console::after("")).map(|()| None),
            XsCommand::Read(path) => store.read(path).map(Some),
            XsCommand::Write(path, value) => store.write(path, value.as_bytes()).map(|()| None),
            XsCommand::Rm(path) => store.rm(path).map(|()| None),
            XsCommand::Watch(path) => {
                self.xenstore_watch(path);
                return;
            }
        };
        let path = match command {
            XsCommand::Ls(p) | XsCommand::Read(p) | XsCommand::Write(p, _) | XsCommand::Rm(p) | XsCommand::Watch(p) => p,
        };
        match result {
            Ok(Some(value)) => println!("{}", Lossy(&value)),
            Ok(None) => {}
            Err(e) => println!("{name}: {path}: {}", e.name()),
        }
        // A change may have fired guests' watches.
        self.serve_stores();
    }

    /// `xenstore-watch PATH`: prints the path of each event (the first at once) until
    /// Ctrl-] is typed; domains keep being watched and served meanwhile.
    fn xenstore_watch(&mut self, path: &str) {
        const TOKEN: &str = "dom0-xenstore-watch";
        if let Err(e) = self.toolstack.ctl.store.watch(path, TOKEN) {
            println!("xenstore-watch: {path}: {}", e.name());
            return;
        }
        loop {
            while let Some((p, token)) = self.toolstack.ctl.store.take_event() {
                if token == TOKEN {
                    println!("{p}");
                }
            }
            self.read_input();
            if let Some(at) = self.pending.iter().position(|&b| b == DETACH) {
                // Keys typed before Ctrl-] are dropped, as an interrupted command's are.
                self.pending.drain(..=at);
                break;
            }
            self.pending.clear();
            let stops = self.stops_due();
            self.serve_consoles(stops || !self.blocking, None);
            if stops {
                self.end_line();
                self.toolstack.poll(&mut Console::after(""));
            }
            self.serve_stores();
            if self.toolstack.ctl.store.has_event() {
                continue;
            }
            self.wait();
        }
        let _ = self.toolstack.ctl.store.unwatch(path, TOKEN);
    }

    /// Typed bytes for domain `id`'s console: how many were taken (all of them when it
    /// has no console served, or a broken one: they are dropped).
    fn console_input(&mut self, id: u16, bytes: &[u8]) -> usize {
        let Some(c) = self.toolstack.ctl.consoles.by_dom.get_mut(&id) else {
            return bytes.len();
        };
        if c.broken {
            return bytes.len();
        }
        let mid_line = &mut self.mid_line;
        let n = c.input(bytes, &mut |b: &[u8]| {
            write_bytes(b);
            *mid_line = false;
        });
        if n > 0 {
            let _ = events::send(c.local_port);
        }
        if c.broken {
            bytes.len()
        } else {
            n
        }
    }

    /// `xl console` and `xl create -c`: shows the domain's recent output, then its output
    /// live, and sends typed input to it, until it stops or Ctrl-] is typed.
    fn attach(&mut self, id: u16, name: &str) {
        if let Some(c) = self.toolstack.ctl.consoles.by_dom.get_mut(&id) {
            let log = c.log();
            c.forget_line();
            write_bytes(&log);
            if let Some(&last) = log.last() {
                self.mid_line = last != b'\n';
            }
        }
        loop {
            self.read_input();
            let detach = self.pending.iter().position(|&b| b == DETACH);
            let upto = detach.unwrap_or(self.pending.len());
            if upto > 0 {
                let bytes: Vec<u8> = self.pending.iter().take(upto).copied().collect();
                let taken = self.console_input(id, &bytes);
                // Bytes typed before Ctrl-] that the guest has no room for are dropped.
                let taken = if detach.is_some() { upto } else { taken };
                self.pending.drain(..taken);
            }
            if detach.is_some() {
                self.pending.pop_front();
                self.serve_consoles(true, Some(id));
                self.end_line();
                println!("{}", Detached(name));
                return;
            }
            let stops = self.stops_due();
            self.serve_consoles(stops || !self.blocking, Some(id));
            self.serve_stores();
            if stops {
                self.end_line();
                let end = self
                    .toolstack
                    .poll_attached(id, name, &mut Console::after(""));
                if end == AttachEnd::Stopped {
                    return;
                }
            }
            self.wait();
        }
    }

    /// Runs one `xl` line.
    fn xl(&mut self, command: &XlCommand<'_>) -> Result<(), Errno> {
        let outcome = if matches!(
            command,
            XlCommand::Pause(_) | XlCommand::Destroy(_) | XlCommand::Shutdown { .. } | XlCommand::List(_)
        ) {
            // What a guest wrote before the command took effect is shown before the
            // command's report (`paused`, `destroyed`...): the report waits for one more
            // pass over the rings. (A domain destroyed is drained by the destroy itself.)
            let mut report = String::new();
            let outcome = self.toolstack.run(command, &mut report);
            self.serve_consoles(true, None);
            let _ = fmt::Write::write_str(&mut Console::after(""), &report);
            outcome
        } else {
            self.toolstack.run(command, &mut Console::after(""))
        };
        match outcome {
            Outcome::Done => Ok(()),
            Outcome::Info => info(),
            Outcome::Attach { id, name } => {
                self.attach(id, &name);
                Ok(())
            }
        }
    }

    /// `bench-create COUNT FILE`: dom0 yields while it waits for each domain's first
    /// instruction, so the wait is a turn of the scheduler through the domains running.
    /// Under the credit scheduler dom0 runs the benchmark with the highest weight (put
    /// back after): the idlers yield in a loop, so by fair share a hundred of them would
    /// leave dom0 a hundredth of the CPU, and the figure would measure that share rather
    /// than what creating a domain costs.
    fn bench_create(&mut self, count: u32, file: &str) {
        use dom0::builder::Control;
        let before = self.toolstack.ctl.sched_credit(0, None).ok();
        if before.is_some() {
            let _ = self.toolstack.ctl.sched_credit(0, Some((u16::MAX, u16::MAX)));
        }
        self.bench_create_run(count, file);
        if let Some((weight, _)) = before {
            let _ = self.toolstack.ctl.sched_credit(0, Some((weight, u16::MAX)));
        }
    }

    fn bench_create_run(&mut self, count: u32, file: &str) {
        let toolstack = &mut self.toolstack;
        dom0::bench::create_many(
            &mut toolstack.ctl,
            &toolstack.files,
            file,
            count,
            &mut |_| {
                let _ = sched_yield();
            },
            &mut Console::after(""),
        );
    }

    /// Runs one shell line.
    fn run(&mut self, line: &str) {
        let command = shell::parse(line);
        if let Some(error) = shell::error_line(&command) {
            println!("{error}");
            return;
        }
        let result = match command {
            Command::Help => {
                print!("{Help}");
                Ok(())
            }
            Command::Info => info(),
            Command::Audit => audit(),
            Command::Version => version(),
            Command::Shutdown => {
                println!("dom0: powering off");
                sched_shutdown(ShutdownReason::Poweroff)
            }
            Command::Xl(xl) => self.xl(&xl),
            Command::Xenstore(c) => {
                self.xenstore(c);
                Ok(())
            }
            Command::BenchCreate { count, file } => {
                self.bench_create(count, file);
                Ok(())
            }
            Command::Empty
            | Command::Unknown(_)
            | Command::UnexpectedArgument { .. }
            | Command::XlUsage(_)
            | Command::XenstoreUsage(_)
            | Command::BenchUsage => Ok(()),
        };
        if let Err(e) = result {
            println!("{}: hypercall failed: {e}", line.trim());
        }
    }

    /// The console loop: read input without blocking, edit the line, run it on Enter;
    /// between keys, look at the domains when one stopped, and sleep.
    fn run_forever(mut self) -> ! {
        print!("{PROMPT}");
        self.mid_line = true;
        loop {
            // Guests' output first, before dom0's report of their end and before the input
            // that came meanwhile is handled: what a guest printed before something dom0
            // saw is printed before dom0 acts on it.
            let stops = self.stops_due();
            self.serve_consoles(stops || !self.blocking, None);
            if stops {
                self.poll_at_prompt();
            }
            self.serve_stores();
            if self.pending.is_empty() && !self.read_input() {
                self.wait();
                continue;
            }
            // Echo is collected per batch so a pasted line goes out in one write.
            let mut echo: Vec<u8> = Vec::new();
            while let Some(byte) = self.pending.pop_front() {
                match self.editor.feed(byte) {
                    Action::None => {}
                    Action::Echo(b) => echo.push(b),
                    Action::Erase => echo.extend_from_slice(b"\x08 \x08"),
                    Action::Full => echo.push(0x07),
                    Action::Submit => {
                        write_bytes(&echo);
                        echo.clear();
                        println!();
                        self.mid_line = false;
                        let line = String::from(self.editor.line());
                        self.editor.clear();
                        self.run(&line);
                        self.end_line();
                        print!("{PROMPT}");
                        self.mid_line = true;
                    }
                }
            }
            write_bytes(&echo);
        }
    }
}

/// The boot files: every module dom0 was given, by name, then the files of its disk's FAT
/// partition; archives among them that cannot be read to their end are reported.
fn boot_files(si: &'static StartInfo, disk: &'static [(String, Vec<u8>)]) -> BootFiles<'static> {
    let files = BootFiles::new(start_info::modules(si).map(|m| (m.cmdline, m.bytes)).chain(disk.iter().map(|(n, b)| (n.as_str(), b.as_slice()))));
    for (name, error) in files.damaged() {
        println!(
            "dom0: warning: archive \"{}\": {error}; members after it are ignored",
            Lossy(name.as_bytes())
        );
    }
    files
}

fn main(si: &'static StartInfo) -> ! {
    banner(si);
    let phys = hypercall::physinfo();
    let mm = match &phys {
        Ok(p) => GuestMm::init(si, Some(p.max_mfn)),
        Err(_) => GuestMm::init(si, None),
    };
    let mm = mm
        .map_err(|e| println!("dom0: memory layer: {e}; xl create cannot build domains"))
        .ok();
    let poll_cycles = match &phys {
        Ok(p) if p.cpu_khz > 0 => u64::from(p.cpu_khz) * POLL_MS,
        _ => POLL_CYCLES_FALLBACK,
    };
    let blocking = init_events(si);
    let mut ctl = XenControl::new(mm, on_device_event);
    // dom0's own files: the FAT filesystem on vda1, kept for good (the boot files borrow
    // them, as they borrow the modules).
    let mut disk_files: &'static [(String, Vec<u8>)] = &[];
    if let Some(mut disk) = devices::probe(&mut ctl) {
        let partitions = devices::partitions(&mut disk);
        let vda1 = partitions.iter().find(|(n, _)| *n == 1).map(|&(_, e)| e);
        if let Some(vda1) = vda1 {
            disk_files = alloc::boxed::Box::leak(files::read_root(&mut disk, vda1.first, vda1.sectors).into_boxed_slice());
        }
        ctl.blk.set_disk(disk, partitions, vda1.map(|_| 1));
    }
    if let Some(nic) = devices::probe_nic(&mut ctl, on_nic_irq) {
        ctl.net.set_uplink(nic);
    }
    let shell = Shell {
        editor: LineEditor::new(),
        pending: VecDeque::new(),
        read_failed: false,
        toolstack: Toolstack::new(ctl, boot_files(si, disk_files)),
        poll_cycles,
        next_poll: 0,
        blocking,
        mid_line: false,
        signalled: BTreeSet::new(),
    };
    match phys {
        Ok(phys) => println!(
            "{}",
            UpLine {
                uptime_ns: phys.uptime_ns
            }
        ),
        Err(e) => println!("dom0: sysctl physinfo failed: {e}"),
    }
    shell.run_forever()
}

/// dom0's heap: the store (at most `xenbus::store::DEFAULT_QUOTA_MEMORY` per guest,
/// refused past [`xen_control`]'s low-water mark), the toolstack and the p2m of a guest
/// being built.
const DOM0_HEAP: usize = 8 << 20;

pv_guest::entry!(main, heap = DOM0_HEAP);
