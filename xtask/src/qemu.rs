//! The QEMU command line, its exit statuses, and a runner that scripts the serial console.
//!
//! Multiboot strings: QEMU's loader hands the microkernel `"<kernel path> <-append>"` as its
//! command line and `"<module path> <args>"` for each `-initrd` entry, so the first word of
//! every string is an image name that the microkernel strips (Xen's convention). GRUB drops
//! the path instead, which is why grub.cfg (image.rs) spells an image name out.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The dom0 prompt; it ends without a newline.
pub const PROMPT: &str = "dom0> ";

/// QEMU's accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Accel {
    /// Software emulation: works everywhere, what the tests use (`sched-rtds` on the
    /// instruction clock below).
    #[default]
    Tcg,
    /// KVM: opt-in; this machine's paravirtual KVM (no VT-x/SVM) may not run PV guests.
    Kvm,
    /// Software emulation on an instruction clock (QEMU's `-icount`, one CPU thread): the
    /// machine's time advances with the instructions it executes, 8 ns each, not with the
    /// host's clock, so a host that stops QEMU (a loaded machine) stops the machine's time
    /// too. For measuring deadlines; roughly real time on this host, not tied to it.
    TcgInstructionClock,
}

/// `-icount`'s value for [`Accel::TcgInstructionClock`]: 2^3 ns per instruction; no
/// catching up with the host's clock; idle time jumps straight to the next timer.
const ICOUNT: &str = "shift=3,align=off,sleep=off";

/// How the serial port reaches the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serial {
    /// `mon:stdio`: interactive terminal, Ctrl-A X quits, Ctrl-A C for the monitor.
    MonitorAndStdio,
    /// `stdio`: pipes (scripts, CI, the test runner).
    Stdio,
}

/// A Multiboot module: the file and the words after its image name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The file QEMU loads.
    pub path: PathBuf,
    /// The module's command line as the microkernel passes it on (image name stripped).
    pub cmdline: String,
}

impl Module {
    /// A module whose command line is its own file name (`hello`, `abi-test`...), the way
    /// dom0 lists modules.
    pub fn named(path: &Path) -> Module {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Module {
            path: path.to_path_buf(),
            cmdline: name,
        }
    }
}

/// What QEMU boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// `-kernel` with the ELF32 microkernel; the first module is dom0's kernel.
    Kernel {
        /// The ELF32 microkernel.
        kernel: PathBuf,
        /// The microkernel's own command line.
        xen_cmdline: String,
        /// dom0 first, then the others.
        modules: Vec<Module>,
    },
    /// `-cdrom` with the GRUB ISO from `cargo xtask image`.
    Iso(PathBuf),
}

/// Everything that varies between QEMU runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// What to boot.
    pub boot: Boot,
    /// Guest RAM in MiB (`-m`).
    pub memory_mib: u32,
    /// CPUs (`-smp`).
    pub cpus: u32,
    /// `-accel`.
    pub accel: Accel,
    /// `-serial`.
    pub serial: Serial,
    /// A raw disk image attached as a virtio-blk device (dom0's `vda`).
    pub disk: Option<PathBuf>,
    /// A virtio-net NIC on QEMU's user networking (dom0's uplink), with a host port
    /// forwarded.
    pub nic: Option<NicForward>,
}

/// QEMU's user network (10.0.2.0/24, its gateway at 10.0.2.2) with host TCP port `host`
/// on 127.0.0.1 forwarded to `guest_port` of `GUEST_IP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NicForward {
    /// The host's port.
    pub host: u16,
    /// The guest's port.
    pub guest_port: u16,
}

/// The address QEMU's user network forwards to: the first it hands out by DHCP, which the
/// `web` guest's config takes.
pub const GUEST_IP: &str = "10.0.2.15";

/// A free TCP port on the host's loopback (the OS picks it; it is free once returned).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free host port")?;
    Ok(listener.local_addr().context("finding a free host port")?.port())
}

/// The machine every run uses. No default NIC (a run that wants one says so: `nic`).
/// Guest RAM is allocated when QEMU starts (`-mem-prealloc`): otherwise the host's lazy
/// allocation makes the first touch of every guest page cost a host page fault, which the
/// figures would then measure instead of the hypervisor.
const FIXED_ARGS: &str = "-machine pc -cpu max -display none -no-reboot -nic none -mem-prealloc \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04";

/// CPUs of the machine unless told otherwise (`cargo xtask run --cpus N`).
pub const DEFAULT_CPUS: u32 = 2;

/// QEMU's option parser splits on commas; a literal comma is written twice.
fn escape_commas(text: &str) -> String {
    text.replace(',', ",,")
}

impl QemuConfig {
    /// The arguments after `qemu-system-x86_64`.
    pub fn args(&self) -> Result<Vec<String>> {
        let mut args: Vec<String> = FIXED_ARGS.split(' ').map(String::from).collect();
        args.extend(["-m".into(), self.memory_mib.to_string(), "-smp".into(), self.cpus.to_string()]);
        let accel = match self.accel {
            Accel::Tcg | Accel::TcgInstructionClock => "tcg",
            Accel::Kvm => "kvm",
        };
        args.extend(["-accel".into(), accel.into()]);
        if self.accel == Accel::TcgInstructionClock {
            args.extend(["-icount".into(), ICOUNT.into()]);
        }
        let serial = match self.serial {
            Serial::MonitorAndStdio => "mon:stdio",
            Serial::Stdio => "stdio",
        };
        args.extend(["-serial".into(), serial.into()]);
        if let Some(disk) = &self.disk {
            let file = escape_commas(&disk.display().to_string());
            args.extend(["-drive".into(), format!("file={file},if=none,id=vda,format=raw")]);
            args.extend(["-device".into(), "virtio-blk-pci,drive=vda".into()]);
        }
        if let Some(nic) = &self.nic {
            args.extend(["-netdev".into(), format!("user,id=eth0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:{}-{GUEST_IP}:{}", nic.host, nic.guest_port)]);
            // No option ROM: nothing boots from the network.
            args.extend(["-device".into(), "virtio-net-pci,netdev=eth0,romfile=".into()]);
        }
        match &self.boot {
            Boot::Kernel {
                kernel,
                xen_cmdline,
                modules,
            } => {
                args.extend(["-kernel".into(), kernel.display().to_string()]);
                // QEMU puts the kernel path in front: that is the image name.
                args.extend(["-append".into(), xen_cmdline.clone()]);
                if !modules.is_empty() {
                    let mut entries = Vec::new();
                    for module in modules {
                        let path = module.path.display().to_string();
                        if path.contains(' ') {
                            bail!("module path {path:?} contains a space, which QEMU's -initrd cannot express");
                        }
                        let entry = if module.cmdline.is_empty() {
                            path
                        } else {
                            format!("{path} {}", module.cmdline)
                        };
                        entries.push(escape_commas(&entry));
                    }
                    args.extend(["-initrd".into(), entries.join(",")]);
                }
            }
            Boot::Iso(iso) => {
                args.extend(["-cdrom".into(), escape_commas(&iso.display().to_string())]);
            }
        }
        Ok(args)
    }

    /// The full command, without stdio set up.
    pub fn command(&self) -> Result<Command> {
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(self.args()?);
        Ok(cmd)
    }
}

/// What a QEMU exit status means (isa-debug-exit exits with `(value << 1) | 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0x10: dom0 powered off.
    Poweroff,
    /// 0x11: dom0 rebooted.
    Reboot,
    /// 0x12: dom0 crashed or was killed for a fault.
    Crash,
    /// 0x13: boot error.
    BootError,
    /// 0x14: microkernel panic.
    Panic,
    /// Anything else (QEMU itself failed, a triple fault with -no-reboot exits 0...).
    Other(i32),
    /// The scenario cut the power itself (`power_cut!()`): QEMU was killed mid-run.
    PowerCut,
}

impl Exit {
    /// Decodes a QEMU exit status.
    pub fn from_status(status: i32) -> Exit {
        match status {
            33 => Exit::Poweroff,
            35 => Exit::Reboot,
            37 => Exit::Crash,
            39 => Exit::BootError,
            41 => Exit::Panic,
            -9 => Exit::PowerCut,
            other => Exit::Other(other),
        }
    }

    /// The QEMU exit status this stands for.
    pub fn status(self) -> i32 {
        match self {
            Exit::Poweroff => 33,
            Exit::Reboot => 35,
            Exit::Crash => 37,
            Exit::BootError => 39,
            Exit::Panic => 41,
            Exit::Other(status) => status,
            Exit::PowerCut => -9,
        }
    }

    /// The exit code of `cargo xtask run` (docs/interfaces.md).
    pub fn run_exit_code(self) -> u8 {
        match self {
            Exit::Poweroff => 0,
            Exit::Reboot => 2,
            Exit::Crash => 3,
            Exit::BootError => 4,
            Exit::Panic => 5,
            Exit::Other(_) | Exit::PowerCut => 1,
        }
    }

    /// One line for the user.
    pub fn describe(self) -> String {
        match self {
            Exit::Poweroff => "dom0 powered off".into(),
            Exit::Reboot => "dom0 rebooted".into(),
            Exit::Crash => "dom0 crashed".into(),
            Exit::BootError => "boot error".into(),
            Exit::Panic => "microkernel panic".into(),
            Exit::Other(status) => format!("QEMU exited with status {status}"),
            Exit::PowerCut => "power cut (QEMU killed by the scenario)".into(),
        }
    }
}

/// Everything a scripted run saw.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// All serial output, lossily decoded.
    pub output: String,
    /// The exit status; None on timeout (or if killed by a signal).
    pub status: Option<i32>,
    /// Whether the run hit its timeout and was killed.
    pub timed_out: bool,
    /// What the process wrote to stderr.
    pub stderr: String,
    /// Wall time from spawn to exit (or kill).
    pub elapsed: Duration,
    /// Wall time from spawn to the first prompt.
    pub first_prompt: Option<Duration>,
    /// The input step not yet done when the run ended (scripted input only), described.
    pub stalled_at: Option<String>,
    /// Wall time from spawn at which each input step was done (a line typed, a wait met),
    /// in step order (scripted input at the prompts only).
    pub step_times: Vec<Duration>,
}

impl Session {
    /// The output split into lines, `\r` dropped; a last partial line (the prompt) included.
    pub fn lines(&self) -> Vec<String> {
        split_lines(&self.output)
    }
}

/// Splits serial output into lines without their `\r\n`, keeping a partial last line.
pub fn split_lines(output: &str) -> Vec<String> {
    let mut lines: Vec<String> = output
        .split('\n')
        .map(|line| line.trim_end_matches('\r').to_string())
        .collect();
    if lines.last().is_some_and(|last| last.is_empty()) {
        lines.pop();
    }
    lines
}

/// After the process exits, how long to wait for its stdout to reach end of file (a
/// grandchild may still hold it open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(20);

/// Counts prompts in a growing buffer without rescanning what it has already seen.
struct PromptCounter {
    prompt: Vec<u8>,
    scanned: usize,
    seen: usize,
}

impl PromptCounter {
    fn update(&mut self, buffer: &[u8]) {
        let len = self.prompt.len();
        while let Some(found) = buffer[self.scanned..]
            .windows(len)
            .position(|w| w == self.prompt)
        {
            self.seen += 1;
            self.scanned += found + len;
        }
        // Keep the last len-1 bytes: a prompt may straddle two reads.
        self.scanned = self.scanned.max(buffer.len().saturating_sub(len - 1));
    }
}

/// Marks an input entry that is not typed but waits: until a whole output line that ended
/// after the previous line was typed (or after the line that met the previous wait) matches
/// the regex after this prefix. Scenarios write it
/// with `wait_for!` (scenarios.rs). A NUL never reaches a console line.
pub const WAIT_FOR: &str = "\0wait-for ";
/// Marks an input entry that is not typed but lets this many milliseconds pass (host time)
/// before the next entry; written with `sleep_ms!`. Nothing is asserted about time: it only
/// gives the guests time to show what they do meanwhile.
pub const SLEEP_MS: &str = "\0sleep-ms ";
/// Marks an input entry whose text (after this prefix) is written as it is, at once, not
/// at a prompt and with no newline added: keys for a guest while `xl console` is attached
/// (no prompt shows then), Ctrl-] included. Written with `type_raw!`.
pub const TYPE_RAW: &str = "\0type ";
/// Marks an input entry that kills QEMU there, as a power cut would (no shutdown, nothing
/// flushed that the guests had not flushed); written with `power_cut!()`. The run then
/// ends with `Exit::PowerCut`.
pub const POWER_CUT: &str = "\0power-cut";
/// Marks an input entry that fetches `http://127.0.0.1:<port><path>` from the host
/// (`"\0http-get <port> <path>"`; scenarios write `http_get!(path)` and the runner fills
/// in the forwarded port) and adds what came back to the console as lines of its own:
/// `xtask: GET <path>: <status line>` and `xtask: body: <line>` for each line of the
/// body, or `xtask: GET <path> failed: <why>`.
pub const HTTP_GET: &str = "\0http-get ";
/// Marks an input entry that sends `<bytes>` of the guests' test pattern to
/// `127.0.0.1:<port>` from the host (`"\0upload <port> <bytes>"`), half-closes, reads the
/// answer and adds `xtask: upload <bytes> bytes in <us> us: <answer>` (or `xtask: upload
/// failed: <why>`) to the console.
pub const UPLOAD: &str = "\0upload ";

/// One entry of a scripted run's input.
#[derive(Debug, Clone)]
enum Step {
    /// A line typed at the next prompt.
    Line(String),
    /// Wait for an output line that matches.
    WaitFor(regex::Regex),
    /// Let time pass.
    Sleep(Duration),
    /// Bytes written at once, as they are.
    Raw(String),
    /// Kill QEMU now.
    PowerCut,
    /// Fetch a page from the host side.
    HttpGet(u16, String),
    /// Send bytes from the host side.
    Upload(u16, u64),
}

impl Step {
    fn parse(entry: &str) -> Result<Step> {
        if let Some(pattern) = entry.strip_prefix(WAIT_FOR) {
            let regex = regex::Regex::new(pattern)
                .with_context(|| format!("bad wait-for regex `{pattern}`"))?;
            Ok(Step::WaitFor(regex))
        } else if let Some(ms) = entry.strip_prefix(SLEEP_MS) {
            let ms: u64 = ms
                .parse()
                .with_context(|| format!("bad sleep-ms value `{ms}`"))?;
            Ok(Step::Sleep(Duration::from_millis(ms)))
        } else if let Some(text) = entry.strip_prefix(TYPE_RAW) {
            Ok(Step::Raw(text.to_string()))
        } else if entry == POWER_CUT {
            Ok(Step::PowerCut)
        } else if let Some(rest) = entry.strip_prefix(HTTP_GET) {
            let (port, path) = rest.split_once(' ').with_context(|| format!("bad http-get `{rest}`: no port"))?;
            let port: u16 = port.parse().with_context(|| format!("bad http-get port `{port}`"))?;
            Ok(Step::HttpGet(port, path.to_string()))
        } else if let Some(rest) = entry.strip_prefix(UPLOAD) {
            let (port, bytes) = rest.split_once(' ').with_context(|| format!("bad upload `{rest}`"))?;
            Ok(Step::Upload(port.parse().with_context(|| format!("bad upload port `{port}`"))?, bytes.parse().with_context(|| format!("bad upload size `{bytes}`"))?))
        } else if entry.starts_with('\0') {
            bail!("input entry {entry:?} starts with NUL but is no known step");
        } else {
            Ok(Step::Line(entry.to_string()))
        }
    }

    /// How a failure report names the step.
    fn describe(&self) -> String {
        match self {
            Step::Line(line) => format!("typing `{line}` at the next prompt"),
            Step::WaitFor(regex) => format!("waiting for a line matching `{}`", regex.as_str()),
            Step::Sleep(d) => format!("sleeping {} ms", d.as_millis()),
            Step::Raw(text) => format!("typing {text:?}"),
            Step::PowerCut => "cutting the power".into(),
            Step::HttpGet(port, path) => format!("fetching http://127.0.0.1:{port}{path}"),
            Step::Upload(port, bytes) => format!("sending {bytes} bytes to 127.0.0.1:{port}"),
        }
    }
}

/// Whether a whole line of `output` at or after byte `from` matches `regex`; `from` moves
/// past the whole lines already looked at, so each line is tried once.
fn whole_line_matches(output: &[u8], from: &mut usize, regex: &regex::Regex) -> bool {
    while let Some(len) = output[*from..].iter().position(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(&output[*from..*from + len]);
        *from += len + 1;
        if regex.is_match(line.trim_end_matches('\r')) {
            return true;
        }
    }
    false
}

/// When a scripted run writes its input lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputMode {
    /// The n-th typed line (plus a newline) is written once the prompt has appeared n times,
    /// so no input reaches the UART before the guest reads it. `WAIT_FOR` and `SLEEP_MS`
    /// entries hold back the entries after them.
    #[default]
    AtPrompts,
    /// Every line (each plus a newline) is written at once right after spawning, and stdin
    /// is then closed: what `printf 'info\nshutdown\n' | cargo xtask run` does.
    Upfront,
}

/// Runs `cmd` with piped stdio, writing `inputs` as `mode` says. The process is killed when
/// `timeout` expires; stdout is read to its end either way. Waits and sleeps (`WAIT_FOR`,
/// `SLEEP_MS`) are for `InputMode::AtPrompts` only.
pub fn run_scripted(
    mut cmd: Command,
    prompt: &str,
    inputs: &[String],
    mode: InputMode,
    timeout: Duration,
) -> Result<Session> {
    assert!(!prompt.is_empty(), "the prompt must not be empty");
    let steps: Vec<Step> = inputs
        .iter()
        .map(|entry| Step::parse(entry))
        .collect::<Result<_>>()?;
    if mode == InputMode::Upfront && steps.iter().any(|s| !matches!(s, Step::Line(_))) {
        bail!("waits and sleeps need input written at the prompts");
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    let mut stdin = child.stdin.take();
    if mode == InputMode::Upfront {
        if let Some(mut pipe) = stdin.take() {
            let all: String = inputs.iter().map(|line| format!("{line}\n")).collect();
            // Written from a thread: a pipe buffer smaller than the input must not block the
            // reader below. A closed pipe only means the process is going away. Dropping the
            // pipe at the end closes QEMU's stdin.
            std::thread::spawn(move || {
                let _ = pipe.write_all(all.as_bytes()).and_then(|()| pipe.flush());
            });
        }
    }
    let mut stdout = child.stdout.take().context("no stdout pipe")?;
    let mut stderr = child.stderr.take().context("no stderr pipe")?;

    let (chunks_tx, chunks) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            if chunks_tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let (stderr_tx, stderr_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all);
        let _ = stderr_tx.send(all);
    });

    let deadline = start + timeout;
    let mut output = Vec::new();
    let mut prompts = PromptCounter {
        prompt: prompt.as_bytes().to_vec(),
        scanned: 0,
        seen: 0,
    };
    let mut first_prompt = None;
    let mut script = Script {
        steps: &steps,
        next: 0,
        typed: 0,
        mark: 0,
        sleep_until: None,
        start,
        done_at: Vec::new(),
        power_cut: false,
        injected: Vec::new(),
    };
    let mut status = None;
    let mut timed_out = false;
    let mut power_cut = false;
    let mut eof = false;

    loop {
        match chunks.recv_timeout(POLL) {
            Ok(chunk) => {
                output.extend_from_slice(&chunk);
                prompts.update(&output);
                if prompts.seen > 0 && first_prompt.is_none() {
                    first_prompt = Some(start.elapsed());
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => eof = true,
        }
        if mode == InputMode::AtPrompts {
            script.advance(&output, prompts.seen, stdin.as_mut());
            output.append(&mut script.injected);
            if script.power_cut {
                kill(&mut child);
                power_cut = true;
                break;
            }
        }
        if let Some(exit) = child.try_wait().context("waiting for the process")? {
            status = exit.code();
            break;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            kill(&mut child);
            break;
        }
        if eof {
            std::thread::sleep(POLL);
        }
    }
    let elapsed = start.elapsed();
    drop(stdin);

    // Read the console to its end (bounded: a grandchild may keep the pipe open).
    let drain_until = Instant::now() + DRAIN_GRACE;
    while !eof {
        let left = drain_until.saturating_duration_since(Instant::now());
        match chunks.recv_timeout(left) {
            Ok(chunk) => output.extend_from_slice(&chunk),
            Err(RecvTimeoutError::Disconnected) => eof = true,
            Err(RecvTimeoutError::Timeout) => break,
        }
    }
    let stderr = stderr_rx.recv_timeout(DRAIN_GRACE).unwrap_or_default();

    let stalled_at = (mode == InputMode::AtPrompts)
        .then(|| script.steps.get(script.next).map(Step::describe))
        .flatten();
    Ok(Session {
        step_times: script.done_at,
        stalled_at,
        output: String::from_utf8_lossy(&output).into_owned(),
        status: if power_cut { Some(Exit::PowerCut.status()) } else if timed_out { None } else { status },
        timed_out,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed,
        first_prompt,
    })
}

/// Where a scripted run is in its input.
struct Script<'a> {
    steps: &'a [Step],
    /// The step to do next.
    next: usize,
    /// Lines typed so far.
    typed: usize,
    /// Where a wait looks: the start of the line under way when the last line was typed, or
    /// just after the line that met the last wait.
    mark: usize,
    /// The end of the sleep under way.
    sleep_until: Option<Instant>,
    /// A power cut was reached: the caller kills QEMU.
    power_cut: bool,
    /// When the run started.
    start: Instant,
    /// When each step was done, since `start`.
    done_at: Vec<Duration>,
    /// Lines the steps produced (an HTTP fetch's result), for the caller to add to the
    /// console's output.
    injected: Vec<u8>,
}

impl Script<'_> {
    /// Queues `lines` for the console's output, starting on a line of their own.
    fn inject(&mut self, output: &[u8], lines: &str) {
        if output.last().is_some_and(|&b| b != b'\n') {
            self.injected.push(b'\n');
        }
        self.injected.extend_from_slice(lines.as_bytes());
    }

    /// Does every step that can be done now.
    fn advance(&mut self, output: &[u8], prompts_seen: usize, mut stdin: Option<&mut impl Write>) {
        while let Some(step) = self.steps.get(self.next) {
            match step {
                Step::Line(line) => {
                    if prompts_seen <= self.typed {
                        return;
                    }
                    if let Some(pipe) = stdin.as_mut() {
                        // A closed pipe only means the process is going away.
                        let line = format!("{line}\n");
                        let _ = pipe.write_all(line.as_bytes()).and_then(|()| pipe.flush());
                    }
                    self.typed += 1;
                    // Whole lines that end after this: the line under way included.
                    self.mark = output
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |at| at + 1);
                }
                Step::Raw(text) => {
                    if let Some(pipe) = stdin.as_mut() {
                        let _ = pipe.write_all(text.as_bytes()).and_then(|()| pipe.flush());
                    }
                    // Later waits look at lines that end after these keys.
                    self.mark = output
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |at| at + 1);
                }
                Step::WaitFor(regex) => {
                    if !whole_line_matches(output, &mut self.mark, regex) {
                        return;
                    }
                }
                Step::Sleep(duration) => {
                    let until = *self
                        .sleep_until
                        .get_or_insert_with(|| Instant::now() + *duration);
                    if Instant::now() < until {
                        return;
                    }
                    self.sleep_until = None;
                }
                Step::HttpGet(port, path) => self.inject(output, &http_get(*port, path)),
                Step::Upload(port, bytes) => self.inject(output, &upload(*port, *bytes)),
                Step::PowerCut => {
                    self.power_cut = true;
                    self.done_at.push(self.start.elapsed());
                    self.next += 1;
                    return;
                }
            }
            self.done_at.push(self.start.elapsed());
            self.next += 1;
        }
    }
}

/// Fetches `http://127.0.0.1:<port><path>` (HTTP/1.0, 10 s at most, retried while the
/// connection is refused for the first 5 s): the lines to add to the console.
fn http_get(port: u16, path: &str) -> String {
    use std::io::Read as _;
    use std::net::TcpStream;
    let start = Instant::now();
    let fetch = || -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost:{port}\r\nUser-Agent: xtask\r\n\r\n").as_bytes())?;
        let mut all = Vec::new();
        s.read_to_end(&mut all)?;
        Ok(String::from_utf8_lossy(&all).into_owned())
    };
    let reply = loop {
        match fetch() {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && start.elapsed() < Duration::from_secs(5) => std::thread::sleep(Duration::from_millis(200)),
            other => break other,
        }
    };
    match reply {
        Ok(text) if text.is_empty() => format!("xtask: GET {path} failed: the connection closed with no answer\n"),
        Ok(text) => {
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let mut out = format!("xtask: GET {path}: {}\n", head.lines().next().unwrap_or(""));
            for line in body.lines() {
                out += &format!("xtask: body: {line}\n");
            }
            out
        }
        Err(e) => format!("xtask: GET {path} failed: {e}\n"),
    }
}

/// The guests' test stream's byte at offset `i` (net-guests' `pattern`).
pub fn pattern(i: u64) -> u8 {
    ((i % 251) as u8).wrapping_add((i >> 16) as u8)
}

/// Sends `bytes` of the pattern to `127.0.0.1:<port>`, half-closes and reads the answer:
/// the line to add to the console.
fn upload(port: u16, bytes: u64) -> String {
    use std::io::Read as _;
    use std::net::{Shutdown, TcpStream};
    let start = Instant::now();
    let run = || -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.set_write_timeout(Some(Duration::from_secs(60)))?;
        let mut sent = 0u64;
        let mut chunk = vec![0u8; 64 * 1024];
        while sent < bytes {
            let n = (bytes - sent).min(chunk.len() as u64) as usize;
            for (k, b) in chunk[..n].iter_mut().enumerate() {
                *b = pattern(sent + k as u64);
            }
            s.write_all(&chunk[..n])?;
            sent += n as u64;
        }
        s.shutdown(Shutdown::Write)?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok(answer.trim().to_string())
    };
    match run() {
        Ok(answer) => format!("xtask: upload {bytes} bytes in {} us: {answer}\n", start.elapsed().as_micros()),
        Err(e) => format!("xtask: upload failed: {e}\n"),
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests;
