//! dom0: the privileged domain's kernel. For now: the start-of-day banner and a console
//! shell (`help`, `info`, `version`, `shutdown`) over console_io.
//!
//! The parsing and report text live in the `dom0` library (host-tested); this file does the
//! hypercalls and the console loop.
#![no_std]
#![no_main]

use dom0::report::{HypervisorVersion, Info, StartInfoLine, UpLine, VersionDetails};
use dom0::shell::{self, Command, Help};
use dom0::{BANNER, MAX_LINE};
use hypercall_abi::errno::Errno;
use hypercall_abi::version::{
    XENVER_CAPABILITIES, XENVER_CHANGESET, XENVER_EXTRAVERSION, XENVER_PAGESIZE, XENVER_VERSION,
    XEN_CAPABILITIES_INFO_LEN, XEN_CHANGESET_INFO_LEN, XEN_EXTRAVERSION_LEN,
};
use pv_guest::console::write_bytes;
use pv_guest::hypercall::{self, check, console_io_read, sched_shutdown, sched_yield};
use pv_guest::line::{Action, LineEditor};
use pv_guest::text::Lossy;
use pv_guest::{print, println, start_info, ShutdownReason, StartInfo};

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

/// Runs one shell line.
fn run(line: &str) {
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
        Command::Version => version(),
        Command::Shutdown => {
            println!("dom0: powering off");
            sched_shutdown(ShutdownReason::Poweroff)
        }
        Command::Empty | Command::Unknown(_) | Command::UnexpectedArgument { .. } => Ok(()),
    };
    if let Err(e) = result {
        println!("{}: hypercall failed: {e}", line.trim());
    }
}

/// The console loop: read input without blocking (yielding when there is none), edit the
/// line, run it on Enter.
fn shell() -> ! {
    let mut editor = LineEditor::<MAX_LINE>::new();
    let mut input = [0u8; 64];
    let mut read_failed = false;
    print!("{PROMPT}");
    loop {
        let n = match console_io_read(&mut input) {
            Ok(n) => n,
            Err(e) => {
                if !read_failed {
                    println!("dom0: console read failed: {e}; no input");
                    read_failed = true;
                }
                0
            }
        };
        if n == 0 {
            let _ = sched_yield();
            continue;
        }
        // Echo is collected per read so a pasted line goes out in one write.
        let mut echo = [0u8; 3 * 64];
        let mut echo_len = 0;
        for &byte in &input[..n] {
            let out: &[u8] = match editor.feed(byte) {
                Action::None => b"",
                Action::Echo(_) => core::slice::from_ref(&byte),
                Action::Erase => b"\x08 \x08",
                Action::Full => b"\x07",
                Action::Submit => {
                    write_bytes(&echo[..echo_len]);
                    echo_len = 0;
                    println!();
                    run(editor.line());
                    editor.clear();
                    print!("{PROMPT}");
                    b""
                }
            };
            echo[echo_len..echo_len + out.len()].copy_from_slice(out);
            echo_len += out.len();
        }
        write_bytes(&echo[..echo_len]);
    }
}

fn main(si: &'static StartInfo) -> ! {
    banner(si);
    match hypercall::physinfo() {
        Ok(phys) => println!(
            "{}",
            UpLine {
                uptime_ns: phys.uptime_ns
            }
        ),
        Err(e) => println!("dom0: sysctl physinfo failed: {e}"),
    }
    shell()
}

pv_guest::entry!(main);
