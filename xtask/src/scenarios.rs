//! The boot scenarios `cargo xtask test` runs: one struct literal per scenario.
//!
//! Each scenario boots QEMU with a dom0 (and modules), types its `input` lines one per
//! `dom0> ` prompt (or, with `InputMode::Upfront`, writes them all at spawn and closes
//! stdin, as a shell pipe would), and passes when every `expect` regex matches a line, in
//! order (each on a later line than the one before), no line matches a `forbid` regex,
//! QEMU exits with `exit`, and the optional `check` agrees. Lines have their `\r\n`
//! removed. Input entries made with `wait_for!` or `sleep_ms!` (scenarios/xl.rs) are not
//! typed: they hold back the entries after them until a line matches, or for a while.
//! The `xl` scenarios live in `scenarios/xl.rs`.

use crate::expect::CheckInput;
use crate::qemu::{Exit, InputMode};
use std::time::Duration;

/// An input entry that waits for a whole output line matching the regex (see
/// `qemu::WAIT_FOR`) before the entries after it.
macro_rules! wait_for {
    ($regex:expr) => {
        concat!("\0wait-for ", $regex)
    };
}

/// An input entry that lets `$ms` milliseconds pass before the entries after it (see
/// `qemu::SLEEP_MS`).
/// An input entry that cuts the power there (QEMU killed; see `qemu::POWER_CUT`).
macro_rules! power_cut {
    () => {
        "\0power-cut"
    };
}

/// An input entry that fetches `$path` from the host through the forwarded port (see
/// `qemu::HTTP_GET`); its result shows as `xtask: GET ...` lines.
macro_rules! http_get {
    ($path:literal) => {
        concat!("\0http-get ", $path)
    };
}

macro_rules! sleep_ms {
    ($ms:literal) => {
        concat!("\0sleep-ms ", $ms)
    };
}

/// An input entry typed at once, as it is (no prompt awaited, no newline added): keys for
/// a guest while `xl console` is attached (see `qemu::TYPE_RAW`).
macro_rules! type_raw {
    ($text:expr) => {
        concat!("\0type ", $text)
    };
}

/// An `xl list` row: name, then id, memory (MiB), vCPUs, the six state letters, CPU time.
/// `$state` is a regex for the letters (`r` running, `b` blocked, `p` paused, `s` shut
/// down, `c` crashed, `d` dying): `[-r][-b]----` for a domain that runs or may run.
macro_rules! list_row {
    ($name:literal, $mib:literal, $state:literal) => {
        concat!(
            "^",
            $name,
            r" +[0-9]+ +",
            $mib,
            r" +1 +",
            $state,
            r" +[0-9]+\.[0-9]$"
        )
    };
}

mod block;
pub mod sched;
mod net;
mod smp;
mod hostile;
mod peers;
mod xl;

/// A kernel image a scenario boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    /// The built dom0.
    Dom0,
    /// A built pv-guest binary (one of `build::GUESTS`).
    Guest(&'static str),
    /// 4 KiB of text: something that is not an ELF image.
    NotElf,
    /// A file of `xtask/configs/` (an xl domain config), by its file name, which is also
    /// its module name.
    Config(&'static str),
    /// A kernel nobody here wrote, from `peers/` (`mini-os/mini-os-test`); its file name
    /// is its module name.
    Peer(&'static str),
    /// Debian's Linux kernel as packaged (module `vmlinuz`), fetched by `xtask::linux`.
    LinuxKernel,
    /// The busybox initramfs for it (module `initramfs.cpio`).
    LinuxInitramfs,
}

/// A custom check run after the expectations passed.
pub type Check = fn(&CheckInput) -> Result<(), String>;

/// One boot and what it must print.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// What `--filter` matches and the report names.
    pub name: &'static str,
    /// The first module: dom0's kernel.
    pub dom0: Image,
    /// The modules after dom0 (their command line is their name).
    pub modules: &'static [Image],
    /// dom0's command line.
    pub cmdline: &'static str,
    /// The microkernel's command line.
    pub xen_cmdline: &'static str,
    /// QEMU's `-m`.
    pub memory_mib: u32,
    /// Boot the GRUB ISO (dom0 + hello, default command lines) instead of `-kernel`.
    pub iso: bool,
    /// Lines typed at the prompt, the n-th after the n-th prompt (see `input_mode`).
    pub input: &'static [&'static str],
    /// When `input` is written: at the prompts, or all at once at spawn.
    pub input_mode: InputMode,
    /// QEMU is killed after this long (and the scenario fails).
    pub timeout: Duration,
    /// Regexes that must match lines in this order.
    pub expect: &'static [&'static str],
    /// Regexes that must match no line.
    pub forbid: &'static [&'static str],
    /// The expected QEMU exit.
    pub exit: Exit,
    /// A further check over the matched lines and their captured groups.
    pub check: Option<Check>,
    /// The machine's disk.
    pub disk: Disk,
    /// A scenario booted after this one passes, on the same machine (its disk with
    /// `Disk::Reuse`): judged as part of this one.
    pub then: Option<&'static Scenario>,
    /// A NIC on QEMU's user network (dom0's uplink), a free host port forwarded to port 80
    /// of 10.0.2.15; `http_get!` entries fetch through it.
    pub nic: bool,
    /// It measures time (shares, deadlines): run after the others, with no other QEMU
    /// beside it.
    pub alone: bool,
    /// The machine's CPUs (`-smp`).
    pub cpus: u32,
    /// QEMU's accelerator: TCG, or TCG on an instruction clock for scenarios that judge
    /// deadlines (a loaded host then cannot make the machine late).
    pub accel: crate::qemu::Accel,
}

/// The disk a scenario's machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disk {
    /// None: dom0 finds no virtio-blk device.
    None,
    /// A fresh image of the standard layout (`target/boot/disks/NAME.img`).
    Fresh,
    /// A fresh image of this many MiB (sparse): the standard layout with `vda4` grown to
    /// the end.
    Large(u64),
    /// The image another scenario left (`target/boot/disks/<that name>.img`), as it is: a
    /// second boot of the same machine (see `Scenario::then`).
    Reuse(&'static str),
}

/// What a scenario is unless it says otherwise.
pub const DEFAULT: Scenario = Scenario {
    name: "",
    dom0: Image::Dom0,
    modules: &[],
    cmdline: "",
    xen_cmdline: "",
    memory_mib: 256,
    iso: false,
    input: &[],
    input_mode: InputMode::AtPrompts,
    timeout: Duration::from_secs(30),
    expect: &[],
    forbid: &["PANIC"],
    exit: Exit::Poweroff,
    check: None,
    disk: Disk::None,
    then: None,
    nic: false,
    alone: false,
    cpus: crate::qemu::DEFAULT_CPUS,
    accel: crate::qemu::Accel::Tcg,
};

/// The dom0 `info` memory total lies within 2 MiB below QEMU's `-m`.
fn memory_total_matches_qemu(input: &CheckInput) -> Result<(), String> {
    let kib: u64 = input
        .group("memory: total", 1)?
        .parse()
        .map_err(|e| format!("{e}"))?;
    let mem_kib = u64::from(input.scenario.memory_mib) * 1024;
    let low = mem_kib.saturating_sub(2 * 1024);
    if (low..=mem_kib).contains(&kib) {
        Ok(())
    } else {
        Err(format!(
            "memory total {kib} KiB is not within [{low}, {mem_kib}] KiB (-m {})",
            input.scenario.memory_mib
        ))
    }
}

/// The base of the fault scenarios: the fault guest as dom0, its command line picks the
/// faulting instruction, and the microkernel kills it.
const FAULT: Scenario = Scenario {
    dom0: Image::Guest("fault"),
    exit: Exit::Crash,
    ..DEFAULT
};

/// The base of the microkernel fault scenarios: `selftest=` makes the microkernel fault in
/// ring 0 before dom0 starts; it must print its panic and register dump and stop the
/// machine with the panic code. (A triple fault would make QEMU exit 0 with -no-reboot,
/// which fails the exit check.)
const SELFTEST: Scenario = Scenario {
    forbid: &[],
    exit: Exit::Panic,
    ..DEFAULT
};

/// The register dump line of a microkernel fault, taken in ring 0 (the hypervisor's cs).
const MK_REGS: &str = r"\(mk\) rip=[0-9a-f]{16} cs=e008";
const MK_STOP: &str = r"\(mk\) stopping the machine";

const GP_CRASH: &str = r"\(mk\) d0 crashed: vector 13 #GP rip=0x[0-9a-f]+ error=0x0\b";
const CRASH_STOP: &str = r"\(mk\) d0 stopped; no domains left to run; powering off \(crash\)";

/// Every scenario, in the order they are started.
pub fn all() -> Vec<Scenario> {
    let mut all = vec![
        Scenario {
            name: "boot-prompt",
            modules: &[Image::Guest("hello")],
            input: &["info", "help", "bogus", "shutdown"],
            expect: &[
                r"\(mk\) microkernel .* booting",
                r"dom0: modules: 1",
                r"dom0: up in [0-9]+\.[0-9]{3} ms",
                r"dom0> ",
                r"memory: total ([0-9]+) KiB",
                r"unknown command 'bogus'",
                r"dom0: powering off",
                r"\(mk\) d0 shutdown: poweroff",
            ],
            check: Some(memory_total_matches_qemu),
            ..DEFAULT
        },
        Scenario {
            name: "dom0-cmdline-modules",
            cmdline: "console=hvc0 answer=42",
            modules: &[Image::Guest("hello"), Image::Guest("abi-test")],
            input: &["shutdown"],
            expect: &[
                r#"dom0: cmdline: "console=hvc0 answer=42""#,
                r"dom0: modules: 2",
                r#"dom0: module 0: [0-9]+ bytes "hello""#,
                r#"dom0: module 1: [0-9]+ bytes "abi-test""#,
                r"dom0: powering off",
            ],
            ..DEFAULT
        },
        Scenario {
            name: "guest-top-2g-as-dom0",
            dom0: Image::Guest("hello"),
            expect: &[r"hello: running at 0xffffffff8"],
            ..DEFAULT
        },
        Scenario {
            name: "guest-low-as-dom0",
            dom0: Image::Guest("hello-low"),
            expect: &[r"hello: running at 0x4"],
            ..DEFAULT
        },
        Scenario {
            name: "abi-test",
            dom0: Image::Guest("abi-test"),
            expect: &[r"TESTS DONE [0-9]+ passed, 0 failed"],
            forbid: &["PANIC", r"TEST .* FAIL"],
            ..DEFAULT
        },
        Scenario {
            // The conformance guest: Xen's 64-bit PV ABI as Linux and Mini-OS use it, one
            // line per check, as an unprivileged domU (test-guests/src/bin/xen-abi.rs).
            name: "xen-abi",
            modules: &[Image::Guest("xen-abi"), Image::Config("xen-abi.cfg")],
            input: &[
                "xl create xen-abi.cfg",
                wait_for!(r"\[xen-abi\] TESTS DONE [0-9]+ passed, [0-9]+ failed$"),
                "shutdown",
            ],
            expect: &[r"\[xen-abi\] TEST pci_config_under_iopl_reads_all_ones PASS$", r"\[xen-abi\] TEST physdev_map_pirq_is_eperm PASS$", r"\[xen-abi\] TEST evtchn_bind_pirq_unmapped_is_eperm PASS$", r"\[xen-abi\] TEST set_gdt PASS$", r"\[xen-abi\] TEST debugreg_breakpoint_in_hypervisor_copy_is_dropped PASS$", r"\[xen-abi\] TEST debugreg_movss_breakpoint_then_syscall PASS$", r"\[xen-abi\] TEST xenmem_exchange_pages_for_an_extent PASS$", r"\[xen-abi\] TEST register_vcpu_info PASS$", r"\[xen-abi\] TEST fifo_unmask_links_a_pending_masked_event PASS$", r"\[xen-abi\] TESTS DONE [0-9]+ passed, 0 failed$"],
            forbid: &["PANIC", r"TEST .* FAIL", r"\(mk\) d[0-9]+ \(xen-abi\) crashed"],
            ..DEFAULT
        },
        Scenario {
            name: "traps",
            dom0: Image::Guest("traps-test"),
            // Each exception the guest raises, in order, so one it skips fails here.
            expect: &[
                r"TEST set_trap_table PASS",
                r"TEST divide_error PASS",
                r"TEST int3 PASS",
                r"TEST ud2 PASS",
                r"TEST cli_gp PASS",
                r"TEST page_fault PASS",
                r"TEST int80_gp PASS",
                r"TEST handler_count PASS",
                r"TESTS DONE [0-9]+ passed, 0 failed",
            ],
            forbid: &["PANIC", r"TEST .* FAIL", "crashed"],
            ..DEFAULT
        },
        Scenario {
            name: "user-mode",
            dom0: Image::Guest("user-test"),
            // Each check, in order, so one the guest skips fails here.
            expect: &[
                r"TEST user_space PASS",
                r"TEST syscalls_1000 PASS",
                r"TEST user_data PASS",
                r"TEST user_reads_kernel PASS",
                r"TEST ud2_from_user PASS",
                r"TEST int80_dpl0_gp PASS",
                r"TEST int80_dpl3 PASS",
                r"TEST cli_gp PASS",
                r"TEST mov_cr3_gp PASS",
                r"TEST gs_bases PASS",
                r"TEST event_in_user PASS",
                r"TEST long_run PASS",
                r"TEST forced_cpuid PASS",
                r"TEST hypercall_number_from_user PASS",
                r"TEST syscall_no_callback PASS",
                r"TEST kernel_gs_kept PASS",
                r"TESTS DONE 16 passed, 0 failed",
                r"d0 shutdown: poweroff",
            ],
            forbid: &["PANIC", r"TEST .* FAIL", "crashed"],
            timeout: Duration::from_secs(60),
            ..DEFAULT
        },
        Scenario {
            name: "user-mode-bad-stack",
            dom0: Image::Guest("user-test"),
            cmdline: "bad-kernel-stack",
            // A syscall from user mode whose frame cannot be written crashes the domain,
            // after the switch to kernel mode (the stack is the kernel's to provide).
            expect: &[
                r"TEST user_space PASS",
                r"\(mk\) d0 crashed: syscall from user mode: bounce frame not writable \(kernel stack 0x10000000\) rip=0x40[0-9a-f]{4}$",
                CRASH_STOP,
            ],
            forbid: &["PANIC", "TEST bad_kernel_stack_survived"],
            ..FAULT
        },
        Scenario {
            name: "events",
            dom0: Image::Guest("events-test"),
            // Each check, in order, so one the guest skips fails here.
            expect: &[
                r"TEST init PASS",
                r"TEST loopback_pair PASS",
                r"TEST status_interdomain PASS",
                r"TEST bind_notifies PASS",
                r"TEST send_10000 PASS",
                r"TEST masked_no_delivery PASS",
                r"TEST unmask_delivers PASS",
                r"TEST bind_not_unbound PASS",
                r"TEST send_out_of_range PASS",
                r"TEST unmask_out_of_range PASS",
                r"TEST close PASS",
                r"TEST send_closed PASS",
                r"TEST stray_events PASS",
                r"TESTS DONE [0-9]+ passed, 0 failed",
                r"\(mk\) d0 shutdown: poweroff",
            ],
            forbid: &["PANIC", r"TEST .* FAIL", "crashed"],
            timeout: Duration::from_secs(90),
            ..DEFAULT
        },
        Scenario {
            name: "time",
            dom0: Image::Guest("time-test"),
            // Each check, in order, so one the guest skips fails here.
            expect: &[
                r"TEST init PASS",
                r"TEST time_info PASS",
                r"TEST monotonic_1000 PASS",
                r"TEST sleep_50ms PASS",
                r"TEST sleep_20ms_x3 PASS",
                r"TEST past_deadline PASS",
                r"TEST cancel_spin PASS",
                r"TEST cancel_guard PASS",
                r"TEST wall_clock PASS",
                r"TEST singleshot PASS",
                r"TEST periodic PASS",
                r"TEST poll PASS",
                r"TEST stray_events PASS",
                r"TESTS DONE [0-9]+ passed, 0 failed",
                r"\(mk\) d0 shutdown: poweroff",
            ],
            forbid: &["PANIC", r"TEST .* FAIL", "crashed"],
            timeout: Duration::from_secs(90),
            ..DEFAULT
        },
        Scenario {
            name: "mm-test",
            dom0: Image::Guest("mm-test"),
            // The checks that matter most, in the order the guest makes them, so a guest that
            // skips a part fails here rather than passing quietly.
            expect: &[
                r"TEST mov_from_cr3 PASS",
                r"TEST as_build PASS",
                r"TEST as_switch_cr3 PASS",
                r"TEST as_pattern PASS",
                r"TEST as_alias PASS",
                r"TEST as_teardown PASS",
                r"TEST as_memstats_restored PASS",
                r"TEST reservation_populate PASS",
                r"TEST multicall_update_va_mapping PASS",
                r"TESTS DONE [0-9]+ passed, 0 failed",
                r"\(mk\) d0 shutdown: poweroff",
            ],
            forbid: &["PANIC", r"TEST .* FAIL", r"\(mk\) d0 crashed"],
            timeout: Duration::from_secs(90),
            ..DEFAULT
        },
        Scenario {
            name: "mm-hostile",
            dom0: Image::Guest("mm-hostile"),
            // Every refusal has its errno checked by the guest; the microkernel and the guest
            // must both still be running at the end.
            expect: &[
                r"TEST pt_frame_writable_l4 PASS",
                r"TEST batch_bad_middle PASS",
                r"TEST new_baseptr_unvalidated PASS",
                r"TEST still_works PASS",
                r"TEST memstats_unchanged PASS",
                r"mm-hostile: still running after every refusal",
                r"TESTS DONE [0-9]+ passed, 0 failed",
                r"\(mk\) d0 shutdown: poweroff",
            ],
            forbid: &["PANIC", r"TEST .* FAIL", r"\(mk\) d0 crashed"],
            timeout: Duration::from_secs(60),
            ..DEFAULT
        },
        Scenario {
            name: "fault-cli",
            cmdline: "cli",
            expect: &[GP_CRASH, CRASH_STOP],
            ..FAULT
        },
        Scenario {
            name: "fault-hlt",
            cmdline: "hlt",
            expect: &[GP_CRASH, CRASH_STOP],
            ..FAULT
        },
        Scenario {
            name: "fault-cr3",
            cmdline: "cr3",
            expect: &[GP_CRASH, CRASH_STOP],
            ..FAULT
        },
        Scenario {
            name: "fault-hv-read",
            cmdline: "hv-read",
            expect: &[
                r"\(mk\) d0 crashed: vector 14 #PF rip=0x[0-9a-f]+ error=0x5 cr2=0xffff830000000000\b",
                CRASH_STOP,
            ],
            ..FAULT
        },
        Scenario {
            name: "fault-m2p-write",
            cmdline: "m2p-write",
            expect: &[
                r"\(mk\) d0 crashed: vector 14 #PF rip=0x[0-9a-f]+ error=0x7 cr2=0xffff800000000000\b",
                CRASH_STOP,
            ],
            ..FAULT
        },
        Scenario {
            name: "fault-ud2",
            cmdline: "ud2",
            expect: &[r"\(mk\) d0 crashed: vector 6 #UD rip=0x[0-9a-f]+ error=0x0\b", CRASH_STOP],
            ..FAULT
        },
        Scenario {
            name: "shutdown-reboot",
            cmdline: "reboot",
            expect: &[r"fault: about to reboot", r"\(mk\) d0 shutdown: reboot"],
            forbid: &["PANIC", "fault: survived"],
            exit: Exit::Reboot,
            ..FAULT
        },
        Scenario {
            name: "shutdown-crash",
            cmdline: "crash",
            expect: &[r"fault: about to crash", r"\(mk\) d0 shutdown: crash"],
            forbid: &["PANIC", "fault: survived"],
            ..FAULT
        },
        Scenario {
            name: "shutdown-guest-panic",
            cmdline: "panic",
            expect: &[
                r"panic: deliberate panic from the fault guest",
                r"\(mk\) d0 shutdown: crash",
            ],
            forbid: &["PANIC", "fault: survived"],
            ..FAULT
        },
        Scenario {
            name: "shutdown-bad-reason",
            cmdline: "bad-shutdown",
            // -22 is -EINVAL: the undefined reason is refused and the guest carries on.
            expect: &[
                r"fault: shutdown\(77\) returned -22$",
                r"\(mk\) d0 shutdown: poweroff",
            ],
            forbid: &["PANIC", r"\(mk\) d0 shutdown: (reboot|crash)"],
            exit: Exit::Poweroff,
            ..FAULT
        },
        Scenario {
            name: "mk-page-fault",
            xen_cmdline: "selftest=page-fault",
            expect: &[
                r"\(mk\) selftest: provoking",
                r"\(mk\) PANIC: microkernel fault: vector 14 #PF",
                MK_REGS,
                MK_STOP,
            ],
            ..SELFTEST
        },
        Scenario {
            name: "mk-double-fault",
            xen_cmdline: "selftest=double-fault",
            expect: &[
                r"\(mk\) selftest: provoking",
                r"\(mk\) PANIC: microkernel fault: vector 8 #DF",
                MK_REGS,
                MK_STOP,
            ],
            ..SELFTEST
        },
        Scenario {
            name: "dom0-mem-32m",
            xen_cmdline: "dom0_mem=32M",
            input: &["shutdown"],
            expect: &[
                r"\(mk\) dom0: 8192 pages \(32 MiB\)",
                r"dom0: start_info: nr_pages=8192 \(32 MiB\)",
                r"dom0> ",
                r"dom0: powering off",
            ],
            ..DEFAULT
        },
        Scenario {
            name: "dom0-mem-not-a-size",
            xen_cmdline: "dom0_mem=lots",
            expect: &[
                r"\(mk\) boot error: bad option 'dom0_mem=lots': expected a size such as 512M or 1G$",
            ],
            exit: Exit::BootError,
            ..DEFAULT
        },
        Scenario {
            name: "dom0-mem-too-big",
            xen_cmdline: "dom0_mem=100G",
            expect: &[r"\(mk\) boot error: .*dom0_mem=.*free"],
            exit: Exit::BootError,
            ..DEFAULT
        },
        Scenario {
            name: "piped-input",
            input: &["info", "shutdown"],
            input_mode: InputMode::Upfront,
            expect: &[
                r"memory: total [0-9]+ KiB",
                r"dom0: powering off",
                r"\(mk\) d0 shutdown: poweroff",
            ],
            ..DEFAULT
        },
        Scenario {
            name: "boot-not-elf",
            dom0: Image::NotElf,
            expect: &[r"\(mk\) boot error: .*dom0 kernel is not an ELF image"],
            exit: Exit::BootError,
            ..DEFAULT
        },
        Scenario {
            name: "iso-boot",
            iso: true,
            input: &["shutdown"],
            timeout: Duration::from_secs(60),
            // The ISO carries dom0 and the hello guest (test.rs, `prepare`). A lone module
            // reaches dom0 as Xen's initrd, which has no command line: hence "".
            expect: &[
                r"dom0: modules: 1$",
                r#"dom0: module 0: [1-9][0-9]* bytes ""$"#,
                r"dom0> ",
                r"dom0: powering off",
            ],
            ..DEFAULT
        },
    ];
    all.extend(xl::scenarios());
    all.extend(hostile::scenarios());
    all.extend(peers::scenarios());
    all.extend(block::scenarios());
    all.extend(sched::scenarios());
    all.extend(net::scenarios());
    all.extend(smp::scenarios());
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_well_formed() {
        let all = all();
        for (i, scenario) in all.iter().enumerate() {
            assert!(!scenario.name.is_empty());
            assert!(
                all[..i].iter().all(|other| other.name != scenario.name),
                "duplicate {}",
                scenario.name
            );
            assert!(
                !scenario.expect.is_empty(),
                "{} expects nothing",
                scenario.name
            );
            assert!(
                scenario.input_mode == InputMode::AtPrompts || !scenario.input.is_empty(),
                "{} writes its input up front but has none",
                scenario.name
            );
            for pattern in scenario.expect.iter().chain(scenario.forbid) {
                regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
            }
        }
    }

    #[test]
    fn memory_check_bounds() {
        let scenario = Scenario {
            name: "m",
            memory_mib: 256,
            ..DEFAULT
        };
        let run = |kib: u64| {
            let lines = vec![format!("memory: total {kib} KiB (x MiB)")];
            let hits =
                crate::expect::match_in_order(&lines, &[r"memory: total ([0-9]+) KiB"]).unwrap();
            memory_total_matches_qemu(&CheckInput {
                scenario: &scenario,
                lines: &lines,
                hits: &hits,
            })
        };
        assert!(run(262_144).is_ok());
        assert!(run(261_500).is_ok());
        assert!(run(260_096).is_ok());
        assert!(run(260_095).is_err());
        assert!(run(262_145).is_err());
    }
}
