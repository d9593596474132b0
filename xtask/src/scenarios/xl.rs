//! The `xl` scenarios: dom0 creates, lists, pauses, destroys guests built from the test
//! guests (spinner, counter, pattern, scanner, probe, crasher) and the configs in
//! `xtask/configs/`, and the checks that look at more than one line.
//!
//! Guest lines reach the console whole, as `[<name>] <line>`, but may follow a prompt on
//! the same line (`dom0> [counter] counter: 7`), so guest patterns are never anchored at
//! the start. dom0's own lines (`xl: ...`, `xl list` rows) are whole lines.
//!
//! A new guest runs as soon as `xl create` unpauses it, which is before dom0 prints
//! `xl: domain NAME (ID) created`: its first lines may come before that line or after it.
//! So expectations chain only lines whose order is certain (dom0's own lines; a guest's
//! lines among themselves; a guest's line before dom0's report of its end), and the
//! `wait_for!` entries, which make the run stall (and fail) without them, stand for the
//! rest.

use super::{Image, Scenario, DEFAULT};
use crate::expect::CheckInput;
use regex::Regex;
use std::time::Duration;


/// Any `xl list` row, with the name, memory and state letters captured.
const ANY_ROW: &str = r"^(\S+) +([0-9]+) +([0-9]+) +[0-9]+ +([-rbpscd]{6}) +([0-9]+)\.([0-9])$";
/// The header of `xl list`.
pub(super) const LIST_HEADER: &str = r"^Name +ID +Mem +VCPUs +State +Time\(s\)$";
/// dom0's `info` memory line, with the free KiB captured.
pub(super) const INFO_FREE: &str = r"^memory: total [0-9]+ KiB \([0-9]+ MiB\), free ([0-9]+) KiB";
/// A counter line, with its number captured.
const COUNTER_LINE: &str = r"\[counter\] counter: ([0-9]+)$";

/// The `xl` scenarios, in the order they are started.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "xl-three-guests",
            modules: &[
                Image::Guest("counter"),
                Image::Guest("spinner"),
                Image::Guest("probe"),
                Image::Config("counter.cfg"),
                Image::Config("spinner.cfg"),
                Image::Config("probe.cfg"),
            ],
            input: &[
                "xl create counter.cfg",
                wait_for!(r"\[counter\] counter: "),
                "xl create spinner.cfg",
                wait_for!(r"\[spinner\] spinner: spinning$"),
                "xl create probe.cfg",
                wait_for!(r"\[probe\] TESTS DONE [0-9]+ passed, 0 failed$"),
                wait_for!(r"^xl: domain probe \([0-9]+\) shut down"),
                "xl list",
                "xl pause counter",
                "xl list",
                // The counter would print a dozen lines meanwhile if it ran.
                sleep_ms!(400),
                "xl list",
                "info",
                "xl list",
                "xl unpause counter",
                wait_for!(r"\[counter\] counter: "),
                "xl list",
                "xl destroy spinner",
                "xl list",
                "xl destroy probe",
                "xl destroy counter",
                "xl list",
                "shutdown",
            ],
            expect: &[
                r"^xl: domain counter \([0-9]+\) created$",
                r"^xl: domain spinner \([0-9]+\) created$",
                r"^xl: domain probe \([0-9]+\) created$",
                r"^xl: domain probe \([0-9]+\) shut down: poweroff; preserved",
                // All four, with their states: dom0 lists, so it is the one running.
                LIST_HEADER,
                list_row!("Domain-0", "[0-9]+", "r-----"),
                list_row!("counter", "16", "[-r][-b]----"),
                list_row!("spinner", "16", "[-r][-b]----"),
                list_row!("probe", "16", "---s--"),
                r"^xl: domain counter \([0-9]+\) paused$",
                list_row!("counter", "16", "-[-b]p---"),
                list_row!("counter", "16", "-[-b]p---"),
                list_row!("counter", "16", "-[-b]p---"),
                r"^xl: domain counter \([0-9]+\) unpaused$",
                r"\[counter\] counter: ",
                list_row!("counter", "16", "[-r][-b]----"),
                r"^xl: domain spinner \([0-9]+\) destroyed$",
                LIST_HEADER,
                r"^xl: domain probe \([0-9]+\) destroyed$",
                r"^xl: domain counter \([0-9]+\) destroyed$",
                LIST_HEADER,
                list_row!("Domain-0", "[0-9]+", "r-----"),
                r"^dom0: powering off$",
                r"\(mk\) d0 shutdown: poweroff",
            ],
            forbid: &[
                "PANIC",
                r"\[probe\] TEST .* FAIL",
                "intruder",
                r"\(mk\) d[0-9]+ crashed",
                r"^xl: .*(failed|cannot)",
            ],
            check: Some(three_guests),
            timeout: Duration::from_secs(30),
            ..DEFAULT
        },
        Scenario {
            name: "xl-spinner-does-not-starve-dom0",
            modules: &[Image::Guest("spinner"), Image::Config("spinner.cfg")],
            input: &[
                "xl create spinner.cfg",
                wait_for!(r"\[spinner\] spinner: spinning$"),
                "info",
                "xl list",
                sleep_ms!(500),
                "version",
                "help",
                "xl list",
                "info",
                "shutdown",
            ],
            expect: &[
                r"^xl: domain spinner \([0-9]+\) created$",
                r"^domains: 2$",
                list_row!("spinner", "16", "[-r][-b]----"),
                r"^version: Xen-compatible",
                r"^  xl ",
                list_row!("spinner", "16", "[-r][-b]----"),
                r"^domains: 2$",
                r"^dom0: powering off$",
                r"\(mk\) d0 shutdown: poweroff",
            ],
            check: Some(spinner_got_the_cpu),
            timeout: Duration::from_secs(30),
            ..DEFAULT
        },
        Scenario {
            name: "xl-crash-is-contained",
            modules: &[
                Image::Guest("counter"),
                Image::Guest("crasher"),
                Image::Config("counter.cfg"),
                Image::Config("crasher.cfg"),
                Image::Config("crasher-destroy.cfg"),
            ],
            input: &[
                "xl create counter.cfg",
                wait_for!(r"\[counter\] counter: "),
                "xl create crasher.cfg",
                wait_for!(r"^xl: domain crasher \([0-9]+\) crashed"),
                "xl create crasher-destroy.cfg",
                wait_for!(r"^xl: domain crasher2 \([0-9]+\) crashed"),
                // The counter runs on after both crashes.
                wait_for!(r"\[counter\] counter: "),
                "xl list",
                "xl destroy crasher",
                "xl list",
                "shutdown",
            ],
            expect: &[
                r"^xl: domain counter \([0-9]+\) created$",
                // A guest's lines reach the console when dom0 drains its console ring, so
                // `[crasher] crasher: about to fault` may come before or after the
                // microkernel's line about the crash (which is printed at the fault); it
                // always comes before dom0's report (dom0 drains the rings before it looks
                // at the domains): `crash_contained` checks that.
                r"\(mk\) d([0-9]+) crashed: vector 6 #UD rip=0x[0-9a-f]+ error=0x0\b",
                r"^xl: domain crasher \(([0-9]+)\) crashed; preserved \(xl destroy crasher removes it\)$",
                r"\(mk\) d([0-9]+) crashed: vector 6 #UD",
                r"^xl: domain crasher2 \(([0-9]+)\) crashed$",
                COUNTER_LINE,
                LIST_HEADER,
                list_row!("Domain-0", "[0-9]+", "r-----"),
                list_row!("counter", "16", "[-r][-b]----"),
                list_row!("crasher", "16", "----c-"),
                r"^xl: domain crasher \([0-9]+\) destroyed$",
                LIST_HEADER,
                list_row!("counter", "16", "[-r][-b]----"),
                r"^dom0: powering off$",
                r"\(mk\) d0 shutdown: poweroff",
            ],
            forbid: &[
                "PANIC",
                "crasher: survived",
                r"\(mk\) d0 crashed",
                r"^xl: .*(failed|cannot)",
            ],
            check: Some(crash_contained),
            timeout: Duration::from_secs(30),
            ..DEFAULT
        },
        Scenario {
            name: "xl-fpu-isolation",
            modules: &[Image::Guest("fpu-test"), Image::Config("fpu-a.cfg"), Image::Config("fpu-b.cfg")],
            input: &[
                "xl create fpu-a.cfg",
                "xl create fpu-b.cfg",
                // Either may finish first: wait for two shutdowns, whichever they are.
                wait_for!(r"^xl: domain fpu-[ab] \([0-9]+\) shut down"),
                wait_for!(r"^xl: domain fpu-[ab] \([0-9]+\) shut down"),
                "shutdown",
            ],
            // Two domains fill the same SSE registers with different patterns and yield to
            // each other thousands of times: each must find its own values at the end.
            expect: &[
                // Either may finish first; each prints its line once.
                r"\[fpu-[ab]\] TEST fpu_isolated PASS$",
                r"\[fpu-[ab]\] TEST fpu_isolated PASS$",
                r"dom0: powering off",
            ],
            forbid: &[r"TEST .* FAIL", "crashed", "PANIC"],
            timeout: Duration::from_secs(120),
            ..DEFAULT
        },
        Scenario {
            name: "xl-user-mode-with-spinner",
            modules: &[
                Image::Guest("spinner"),
                Image::Guest("user-test"),
                Image::Config("spinner.cfg"),
                Image::Config("user-test.cfg"),
            ],
            input: &[
                "xl create spinner.cfg",
                wait_for!(r"\[spinner\] spinner: spinning$"),
                "xl create user-test.cfg",
                wait_for!(r"^xl: domain user-test \([0-9]+\) shut down"),
                "xl list",
                "shutdown",
            ],
            // user-test's processes are preempted in user mode by a domain that never
            // yields: each switch back must restore the user page table and GS base.
            expect: &[
                r"\[user-test\] TEST user_space PASS$",
                r"\[user-test\] TEST syscalls_1000 PASS$",
                r"\[user-test\] TEST gs_bases PASS$",
                r"\[user-test\] TEST event_in_user PASS$",
                r"\[user-test\] TEST long_run PASS$",
                r"\[user-test\] TESTS DONE 16 passed, 0 failed$",
                list_row!("spinner", "16", "[-r][-b]----"),
                r"^dom0: powering off$",
                r"\(mk\) d0 shutdown: poweroff",
            ],
            forbid: &[r"TEST .* FAIL", "crashed", "PANIC"],
            timeout: Duration::from_secs(120),
            ..DEFAULT
        },
        Scenario {
            name: "xl-pingpong",
            modules: &[
                Image::Guest("pingpong"),
                Image::Config("ping.cfg"),
                Image::Config("pong.cfg"),
            ],
            input: &[
                // Back to back: pong (domain 2) may look in the store before ping (domain 1)
                // has published its port, and must wait for it there.
                "xl create ping.cfg",
                "xl create pong.cfg",
                wait_for!(r"\[pong\] pingpong: pong bound port "),
                // While they bounce events, dom0 still answers.
                "xl list",
                // Either may finish first: two shutdowns, whichever they are (the
                // microkernel's lines: dom0 may report them only after the next command).
                wait_for!(r"\(mk\) d[12] \((ping|pong)\) shutdown: "),
                wait_for!(r"\(mk\) d[12] \((ping|pong)\) shutdown: "),
                "xl list",
                "shutdown",
            ],
            // Ping's lines and pong's handshake line are in a certain order (ping says its
            // port before publishing it, pong binds after reading it); pong's end
            // lines may come before or after ping's, so `pingpong_exact` finds them.
            expect: &[
                r"\[ping\] pingpong: ping port ([0-9]+) for domain 2$",
                r"\[pong\] pingpong: pong bound port ([0-9]+) of domain 1 as [0-9]+$",
                // dom0 lists both while they run: before ping's result.
                LIST_HEADER,
                list_row!("ping", "16", "[-r][-b]----"),
                list_row!("pong", "16", "[-r][-b]----"),
                r"\[ping\] pingpong: ping sent ([0-9]+) received ([0-9]+)$",
                r"\[ping\] pingpong: done$",
                // The microkernel's `(mk) d1 (ping) shutdown` line is printed at the
                // shutdown, ping's last lines when dom0 drains its console ring: either may
                // come first (the waits above stand for the shutdown lines).
                LIST_HEADER,
                list_row!("ping", "16", "---s--"),
                list_row!("pong", "16", "---s--"),
                r"^dom0: powering off$",
                r"\(mk\) d0 shutdown: poweroff",
            ],
            forbid: &[
                "PANIC",
                "crashed",
                r"pingpong: .*(timed out|stalled|failed|stray|refused|bad command line)",
            ],
            check: Some(pingpong_exact),
            timeout: Duration::from_secs(PINGPONG_TIMEOUT_S),
            ..DEFAULT
        },
        Scenario {
            name: "xl-grant-share",
            modules: &[
                Image::Guest("grant-test"),
                Image::Config("grant-g.cfg"),
                Image::Config("grant-m.cfg"),
            ],
            input: &[
                "info",
                // The granter first (domain 1): its references exist when the mapper looks.
                "xl create grant-g.cfg",
                wait_for!(r"\[grant-g\] grant-test: granter granted refs 8 9 10 to domain 2$"),
                "xl create grant-m.cfg",
                wait_for!(r"\[grant-g\] grant-test: granter waiting for destroy$"),
                // Destroyed while the mapper still maps two of its pages.
                "xl destroy grant-g",
                // Its teardown goes in steps; the mapper keeps its two pages until told it
                // is over.
                wait_for!(r"^xl: domain grant-g \(1\) destroyed$"),
                "xenstore-write /local/domain/2/granter-gone 1",
                wait_for!(r"\(mk\) d2 \(grant-m\) shutdown: "),
                "xl destroy grant-m",
                "info",
                "shutdown",
            ],
            // Each side's lines are in order; the two sides interleave as dom0 drains
            // their console rings, so the mapper's lines before the granter's end are
            // checked apart (`grant_share_checks`).
            expect: &[
                INFO_FREE,
                r"\(mk\) d1 \(grant-g\) grant limits: 4 grant frames, 64 maptrack frames$",
                r"\[grant-g\] TEST v2_map_sets_status_word PASS$",
                r"\[grant-g\] TEST set_version_back_to_1 PASS$",
                r"\[grant-g\] TEST setup_past_limit PASS$",
                r"\[grant-g\] grant-test: granter granted refs 8 9 10 to domain 2$",
                r"\(mk\) d2 \(grant-m\) grant limits: 64 grant frames, 1 maptrack frames$",
                r"\[grant-g\] TEST end_access_refused_while_mapped PASS$",
                r"\[grant-g\] TEST end_access_after_unmap PASS$",
                r"\[grant-g\] TESTS DONE [0-9]+ passed, 0 failed$",
                r"\(mk\) d1 \(grant-g\) destroyed: [0-9]+ frames returned, 2 still mapped by another domain$",
                r"\[grant-m\] TEST frame_alive_after_granter_destroyed PASS$",
                r"\[grant-m\] TEST unmap_after_granter_destroyed PASS$",
                r"\[grant-m\] TESTS DONE [0-9]+ passed, 0 failed$",
                r"\(mk\) d2 \(grant-m\) destroyed: [0-9]+ frames returned$",
                INFO_FREE,
                r"^dom0: powering off$",
            ],
            forbid: &[r"TEST .* FAIL", "PANIC", "crashed", "timed out"],
            check: Some(grant_share_checks),
            timeout: Duration::from_secs(120),
            ..DEFAULT
        },
        Scenario {
            name: "xl-pingpong-bad-cmdline",
            modules: &[Image::Guest("pingpong"), Image::Config("pingpong-bad.cfg")],
            input: &[
                "xl create pingpong-bad.cfg",
                wait_for!(r"^xl: domain badpp \([0-9]+\) crashed"),
                "shutdown",
            ],
            // The guest's line comes through dom0's console back-end, so the microkernel's
            // shutdown line may come before or after it; both come before dom0's report.
            expect: &[
                r"\(mk\) d1 \(badpp\) shutdown: crash$",
                r"^xl: domain badpp \(1\) crashed",
                r"^dom0: powering off$",
            ],
            check: Some(badpp_said_why),
            // It stops at the command line: no port, no bind.
            forbid: &["PANIC", r"pingpong: (ping|pong) ", "pingpong: done"],
            ..DEFAULT
        },
        Scenario {
            name: "xl-unprivileged-eperm",
            modules: &[Image::Guest("probe"), Image::Config("probe.cfg")],
            input: &[
                "xl create probe.cfg",
                wait_for!(r"^xl: domain probe \([0-9]+\) shut down"),
                "xl list",
                "info",
                "shutdown",
            ],
            // The checks that matter most, in the order the probe makes them.
            expect: &[
                r"\[probe\] TEST domctl_create_eperm PASS$",
                r"\[probe\] TEST domctl_destroy_dom0_eperm PASS$",
                r"\[probe\] TEST domctl_pause_dom0_eperm PASS$",
                r"\[probe\] TEST domctl_getdomaininfo_dom0_eperm PASS$",
                r"\[probe\] TEST domctl_destroy_nobody_eperm PASS$",
                r"\[probe\] TEST domctl_setvcpucontext_eperm PASS$",
                r"\[probe\] TEST sysctl_physinfo_eperm PASS$",
                r"\[probe\] TEST console_io_read_eperm PASS$",
                r"\[probe\] TEST sched_remote_shutdown_dom0_eperm PASS$",
                r"\[probe\] TEST memory_populate_physmap_dom0_eperm PASS$",
                r"\[probe\] TEST pt_update_foreign_dom0_eperm PASS$",
                r"\[probe\] TEST pt_update_self_still_works PASS$",
                r"\[probe\] TEST still_running PASS$",
                r"\[probe\] probe: still running after every refusal$",
                r"\[probe\] TESTS DONE ([0-9]+) passed, 0 failed$",
                r"^xl: domain probe \([0-9]+\) shut down: poweroff; preserved",
                // Nothing changed: dom0 runs, unpaused, and no other domain appeared.
                LIST_HEADER,
                list_row!("Domain-0", "[0-9]+", "r-----"),
                list_row!("probe", "16", "---s--"),
                r"^domains: 2$",
                r"^dom0: powering off$",
                r"\(mk\) d0 shutdown: poweroff",
            ],
            forbid: &["PANIC", r"\[probe\] TEST .* FAIL", "intruder"],
            check: Some(probe_ran_every_check),
            timeout: Duration::from_secs(30),
            ..DEFAULT
        },
        Scenario {
            name: "xl-scrub",
            // dom0 takes a quarter of 128 MiB; the two 64 MiB guests cannot both fit in the
            // rest, so the scanner gets frames the pattern guest wrote (`scrub_overlap`).
            memory_mib: 128,
            modules: &[
                Image::Guest("pattern"),
                Image::Guest("scanner"),
                Image::Config("pattern.cfg"),
                Image::Config("scanner.cfg"),
            ],
            input: &[
                "info",
                "xl create pattern.cfg",
                wait_for!(r"\[pattern\] pattern: wrote"),
                "xl destroy pattern",
                "xl create scanner.cfg",
                wait_for!(r"^xl: domain scanner \([0-9]+\) shut down"),
                "xl destroy scanner",
                "info",
                "shutdown",
            ],
            expect: &[
                INFO_FREE,
                r"\[pattern\] pattern: wrote ([0-9]+) pages$",
                r"^xl: domain pattern \([0-9]+\) destroyed$",
                r"\[scanner\] scanner: ([0-9]+) pages scanned, 0 with the old pattern$",
                r"\[scanner\] scanner: 0 pages not zero$",
                r"^xl: domain scanner \([0-9]+\) shut down: poweroff",
                r"^xl: domain scanner \([0-9]+\) destroyed$",
                INFO_FREE,
                r"^dom0: powering off$",
            ],
            forbid: &["PANIC", "failed", r"\(mk\) d[0-9]+ crashed"],
            check: Some(scrub_overlap),
            timeout: Duration::from_secs(30),
            ..DEFAULT
        },
        Scenario {
            name: "xl-create-destroy-100",
            modules: &[Image::Guest("hello"), Image::Config("small.cfg")],
            input: create_destroy_input(CREATE_DESTROY_CYCLES),
            expect: &[
                INFO_FREE,
                r"^xl: domain small \([0-9]+\) created$",
                r"^xl: domain small \([0-9]+\) destroyed$",
                LIST_HEADER,
                list_row!("Domain-0", "[0-9]+", "r-----"),
                INFO_FREE,
                r"^domains: 1$",
                r"^dom0: powering off$",
            ],
            forbid: &["PANIC", r"^xl: .*(failed|cannot|not enough)", "crashed"],
            check: Some(create_destroy_balanced),
            timeout: Duration::from_secs(60),
            ..DEFAULT
        },
        Scenario {
            name: "xl-bad-config",
            modules: &[
                Image::Guest("hello"),
                Image::Guest("counter"),
                Image::Config("bad-memory.cfg"),
                Image::Config("unknown-kernel.cfg"),
                Image::Config("too-big.cfg"),
                Image::Config("counter.cfg"),
                Image::Config("duplicate.cfg"),
            ],
            input: &[
                "info",
                "xl create bad-memory.cfg",
                "xl create unknown-kernel.cfg",
                "xl create too-big.cfg",
                "xl create no-such.cfg",
                "info",
                "xl create counter.cfg",
                "info",
                "xl create duplicate.cfg",
                "info",
                "xl list",
                "shutdown",
            ],
            expect: &[
                INFO_FREE,
                r"^xl: bad-memory\.cfg:4: memory: expected a number of MiB, got lots$",
                r"^xl: unknown-kernel\.cfg: kernel 'no-such-kernel': no boot file of that name",
                r"^xl: not enough free memory for 'toobig': it needs 65536 MiB, [0-9]+ MiB are free$",
                r"^xl: no boot file named 'no-such\.cfg'",
                INFO_FREE,
                r"^xl: domain counter \([0-9]+\) created$",
                INFO_FREE,
                r"^xl: a domain named 'counter' already exists",
                INFO_FREE,
                LIST_HEADER,
                list_row!("Domain-0", "[0-9]+", "r-----"),
                list_row!("counter", "16", "[-r][-b]----"),
                r"^dom0: powering off$",
            ],
            forbid: &["PANIC", "badmem", "nokernel", r"\(mk\) d[0-9]+ \(toobig\)"],
            check: Some(bad_configs_leave_nothing),
            timeout: Duration::from_secs(30),
            ..DEFAULT
        },
        Scenario {
            name: "xl-idle-blocks",
            modules: &[Image::Guest("idler"), Image::Config("sleeper.cfg")],
            // dom0 sleeps between keys (VIRQ_CONSOLE) and the sleeper in SCHEDOP_block:
            // over 3 s of waiting neither gets CPU time, and the sleeper shows blocked.
            input: &[
                sleep_ms!(1500),
                "xl create sleeper.cfg",
                sleep_ms!(1500),
                "xl list",
                "shutdown",
            ],
            expect: &[
                r"^xl: domain sleeper \([0-9]+\) created$",
                LIST_HEADER,
                r"^Domain-0 +0 +[0-9]+ +1 +r----- +0\.[0-2]$",
                list_row!("sleeper", "8", "-b----"),
                r"^dom0: powering off$",
            ],
            timeout: Duration::from_secs(30),
            ..DEFAULT
        },
        Scenario {
            name: "xl-port-limit",
            modules: &[
                Image::Guest("counter"),
                Image::Guest("portlimit"),
                Image::Config("counter.cfg"),
                Image::Config("portlimit-40.cfg"),
                Image::Config("portlimit-default.cfg"),
                Image::Config("portlimit-max.cfg"),
            ],
            // The counter runs throughout; each portlimit guest fills its port table to
            // its limit (40, xl's default 1023, the ABI's 4095) and is refused past it.
            input: &[
                "xl create counter.cfg",
                wait_for!(r"\[counter\] counter: "),
                "xl create portlimit-40.cfg",
                wait_for!(r"\[plimit40\] portlimit: done$"),
                "xl create portlimit-default.cfg",
                wait_for!(r"\[plimitdef\] portlimit: done$"),
                "xl create portlimit-max.cfg",
                wait_for!(r"\[plimitmax\] portlimit: done$"),
                wait_for!(r"\[counter\] counter: "),
                "xl list",
                "shutdown",
            ],
            expect: &[
                r"\(mk\) d[0-9]+ \(plimit40\) created: 1 vCPU\(s\), up to [0-9]+ pages, event channel ports 1\.\.40$",
                r"\[plimit40\] TEST fill PASS$",
                r"\[plimit40\] TEST refill PASS$",
                r"\[plimit40\] TEST still_works PASS$",
                r"\[plimit40\] TEST close_all PASS$",
                r"\[plimit40\] TESTS DONE 4 passed, 0 failed$",
                r"\(mk\) d[0-9]+ \(plimitdef\) created: .*event channel ports 1\.\.1023$",
                r"\[plimitdef\] TESTS DONE 4 passed, 0 failed$",
                r"\(mk\) d[0-9]+ \(plimitmax\) created: .*event channel ports 1\.\.4095$",
                r"\[plimitmax\] TESTS DONE 4 passed, 0 failed$",
                // The others kept working: the counter still counts, dom0 still answers.
                r"\[counter\] counter: ",
                LIST_HEADER,
                list_row!("Domain-0", "[0-9]+", "r-----"),
                list_row!("counter", "16", "[-r][-b]----"),
                r"^dom0: powering off$",
            ],
            forbid: &["PANIC", r"TEST .* FAIL", "crashed"],
            timeout: Duration::from_secs(90),
            ..DEFAULT
        },
        Scenario {
            name: "xl-console",
            modules: &[Image::Guest("echo"), Image::Config("echo.cfg")],
            // The echo guest prints through its console ring: dom0's back-end shows its
            // banner as a `[echo]` line; `xl console echo` replays the banner from the log
            // (raw), then a typed line goes to the guest's input ring and comes back raw;
            // Ctrl-] detaches and the prompt is back.
            input: &[
                "xl create echo.cfg",
                wait_for!(r"\[echo\] echo: ready on console port [0-9]+ \(ring\)"),
                "xl console echo",
                wait_for!(r"^echo: ready on console port [0-9]+ \(ring\), type a line$"),
                type_raw!("hello console\n"),
                wait_for!(r"^echo: hello console$"),
                type_raw!("\x1d"),
                wait_for!(r"^xl: detached from echo$"),
                "xl list",
                "xl destroy echo",
                // `xl create -c` attaches the same way: the banner comes raw.
                "xl create -c echo.cfg",
                wait_for!(r"^echo: ready on console port [0-9]+ \(ring\), type a line$"),
                type_raw!("again\r"),
                wait_for!(r"^echo: again$"),
                type_raw!("\x1d"),
                wait_for!(r"^xl: detached from echo$"),
                "shutdown",
            ],
            expect: &[
                r"^xl: domain echo \([0-9]+\) created$",
                r"\[echo\] echo: ready on console port [0-9]+ \(ring\), type a line$",
                r"^echo: ready on console port [0-9]+ \(ring\), type a line$",
                r"^echo: hello console$",
                r"^xl: detached from echo$",
                LIST_HEADER,
                list_row!("echo", "8", "[-r][-b]----"),
                // Its ring was unmapped first: every frame went back.
                r"\(mk\) d[0-9]+ \(echo\) destroyed: [0-9]+ frames returned$",
                r"^xl: domain echo \([0-9]+\) destroyed$",
                r"^xl: domain echo \([0-9]+\) created$",
                r"^echo: ready on console port [0-9]+ \(ring\), type a line$",
                r"^echo: again$",
                r"^xl: detached from echo$",
                r"^dom0: powering off$",
            ],
            forbid: &["PANIC", "crashed", r"^xl: .*(failed|cannot|corrupt)"],
            timeout: Duration::from_secs(30),
            ..DEFAULT
        },
        Scenario {
            name: "xl-console-hostile",
            modules: &[
                Image::Guest("echo"),
                Image::Guest("counter"),
                Image::Config("counter.cfg"),
                Image::Config("conspam.cfg"),
            ],
            // conspam writes garbage indices into its console ring: dom0 says so once,
            // stops serving that ring, and keeps serving the counter's and answering.
            input: &[
                "xl create counter.cfg",
                wait_for!(r"\[counter\] counter: "),
                "xl create conspam.cfg",
                wait_for!(r"^xl: console of conspam: ring indices corrupt"),
                wait_for!(r"\[counter\] counter: "),
                sleep_ms!(300),
                "xl list",
                "xl destroy conspam",
                // The destroy's report waits for a last pass over the rings, so a counter
                // line may come just before it: wait for one after it.
                wait_for!(r"^xl: domain conspam \([0-9]+\) destroyed$"),
                wait_for!(r"\[counter\] counter: "),
                "shutdown",
            ],
            expect: &[
                r"^xl: domain counter \([0-9]+\) created$",
                r"^xl: domain conspam \([0-9]+\) created$",
                r"\[conspam\] echo: ready on console port [0-9]+ \(ring\)",
                r"^xl: console of conspam: ring indices corrupt \(cons [0-9]+ prod [0-9]+\); no longer served$",
                r"\[counter\] counter: ",
                LIST_HEADER,
                list_row!("counter", "16", "[-r][-b]----"),
                list_row!("conspam", "8", "[-r][-b]----"),
                r"^xl: domain conspam \([0-9]+\) destroyed$",
                r"\[counter\] counter: ",
                r"^dom0: powering off$",
            ],
            forbid: &["PANIC", "crashed"],
            check: Some(corrupt_said_once),
            timeout: Duration::from_secs(30),
            ..DEFAULT
        },
        Scenario {
            name: "xl-store",
            modules: &[
                Image::Guest("store-test"),
                Image::Config("store-a.cfg"),
                Image::Config("store-b.cfg"),
            ],
            // store-a (domain 1) watches `/` and waits; store-b (domain 2) writes in its own
            // home; dom0 writes store-a's `peer` node, which store-a sees through its watch
            // (and nothing of store-b's), then it tries store-b's home (EACCES), the quota
            // and transactions. dom0 lists and reads the store, tells store-b to power off
            // while `xenstore-watch @releaseDomain` runs, destroys store-a, and lists again:
            // no node of either is left.
            input: &[
                "xl create store-a.cfg",
                wait_for!(r"\[store-a\] store-test: waiting for peer$"),
                "xl create store-b.cfg",
                wait_for!(r"\[store-b\] TESTS DONE [0-9]+ passed, [0-9]+ failed$"),
                "xenstore-write /local/domain/1/peer 2",
                wait_for!(r"\[store-a\] TESTS DONE [0-9]+ passed, [0-9]+ failed$"),
                "xenstore-ls /local/domain",
                "xenstore-read /local/domain/1/data/x",
                "xenstore-read /local/domain/1/nothing",
                "xenstore-write /local/domain/2/exit 1500",
                "xenstore-watch @releaseDomain",
                wait_for!(r"^xl: domain store-b \(2\) shut down: poweroff$"),
                sleep_ms!(300),
                type_raw!("\x1d"),
                "xl destroy store-a",
                "xenstore-ls /local/domain",
                "shutdown",
            ],
            expect: &[
                r"^xl: domain store-a \(1\) created$",
                r"^xl: domain store-b \(2\) created$",
                r"\[store-a\] TEST watch-root-no-foreign-node PASS$",
                r"\[store-a\] TEST watch-sees-dom0-write PASS$",
                r"\[store-a\] TEST foreign-read-eacces PASS$",
                r"\[store-a\] TEST foreign-write-eacces PASS$",
                r"\[store-a\] TEST quota-nodes PASS$",
                r"\[store-a\] TEST quota-plus-one-refused PASS$",
                r"\[store-a\] TEST transaction-conflict-eagain PASS$",
                r"\[store-a\] TEST transaction-retry-commits PASS$",
                r"\[store-a\] TESTS DONE [0-9]+ passed, 0 failed$",
                // xenstore-ls: one space of indent per level, children in name order.
                r#"^0 = ""$"#,
                r#"^ name = "Domain-0"$"#,
                r#"^1 = ""$"#,
                r#"^ data = ""$"#,
                r#"^  x = "value of /local/domain/1"$"#,
                r#"^ name = "store-a"$"#,
                r#"^ peer = "2"$"#,
                r#"^2 = ""$"#,
                r#"^ name = "store-b"$"#,
                r"^value of /local/domain/1$",
                r"^xenstore-read: /local/domain/1/nothing: ENOENT$",
                r"^@releaseDomain$",
                r"^xl: domain store-b \(2\) shut down: poweroff$",
                r"^@releaseDomain$",
                r"^xl: domain store-a \(1\) destroyed$",
                r#"^0 = ""$"#,
                r"^dom0: powering off$",
            ],
            forbid: &["PANIC", r"TEST .* FAIL", "crashed", "disconnected"],
            check: Some(store_left_nothing),
            timeout: Duration::from_secs(120),
            ..DEFAULT
        },
        Scenario {
            name: "xl-store-garbage",
            modules: &[
                Image::Guest("store-test"),
                Image::Config("store-garbage.cfg"),
                Image::Config("store-solo.cfg"),
            ],
            // store-garbage makes one good request, then writes an impossible req_prod and
            // signals three times: dom0 says so once and drops its ring; store-solo, created
            // after, is served to the end; dom0 still answers.
            input: &[
                "xl create store-garbage.cfg",
                wait_for!(r"\[store-garbage\] store-test: garbage written$"),
                "xl create store-solo.cfg",
                wait_for!(r"\[store-solo\] TESTS DONE [0-9]+ passed, [0-9]+ failed$"),
                "xl list",
                "xenstore-read /local/domain/1/name",
                "xl destroy store-garbage",
                "xenstore-ls /local/domain",
                "shutdown",
            ],
            expect: &[
                r"^xl: domain store-garbage \(1\) created$",
                // dom0's line about the ring (checked by `store_garbage_said_once`) may
                // come before or after the guest's own, which dom0 drains from its console
                // ring: the guest runs on another CPU.
                r"\[store-garbage\] TEST domain-path PASS$",
                r"\[store-garbage\] store-test: garbage written$",
                r"^xl: domain store-solo \(2\) created$",
                r"\[store-solo\] TEST quota-nodes PASS$",
                r"\[store-solo\] TEST transaction-retry-commits PASS$",
                r"\[store-solo\] TESTS DONE [0-9]+ passed, 0 failed$",
                LIST_HEADER,
                list_row!("store-garbage", "8", "[-r][-b]----"),
                r"^store-garbage$",
                r"^xl: domain store-garbage \(1\) destroyed$",
                r#"^0 = ""$"#,
                r"^dom0: powering off$",
            ],
            forbid: &["PANIC", r"TEST .* FAIL", "crashed"],
            check: Some(store_garbage_said_once),
            timeout: Duration::from_secs(90),
            ..DEFAULT
        },
    ]
}

/// The bad command line is said before dom0 reports the crash.
fn badpp_said_why(input: &CheckInput) -> Result<(), String> {
    let said = only_line(
        input.lines,
        r#"\[badpp\] pingpong: bad command line "role=pong peer=1 count=lots": count must be 1 to 10000000, not 'lots'$"#,
    )?;
    let reported = only_line(input.lines, r"^xl: domain badpp \(1\) crashed")?;
    if said > reported {
        return Err(format!("the guest's line (line {said}) came after dom0's report"));
    }
    Ok(())
}

/// dom0 reports a corrupt console ring once, however often the guest signals.
fn corrupt_said_once(input: &CheckInput) -> Result<(), String> {
    only_line(input.lines, r"^xl: console of conspam: ring indices corrupt").map(|_| ())
}

/// After the last destroy, `xenstore-ls /local/domain` shows dom0's home only; and
/// `@releaseDomain` fired (the first line is the watch's initial firing).
fn store_left_nothing(input: &CheckInput) -> Result<(), String> {
    let destroyed = only_line(input.lines, r"^xl: domain store-a \(1\) destroyed$")?;
    let after = &input.lines[destroyed..];
    let left: Vec<&String> = after
        .iter()
        .filter(|l| re(r#"^[1-9][0-9]* = ""$"#).is_match(l))
        .collect();
    if !left.is_empty() {
        return Err(format!("nodes left behind: {left:?}"));
    }
    let releases = lines_matching(input.lines, r"^@releaseDomain$").len();
    if releases < 2 {
        return Err(format!("@releaseDomain printed {releases} times, want the initial firing and one more"));
    }
    Ok(())
}

/// The disconnect is said once, however often the guest signals.
fn store_garbage_said_once(input: &CheckInput) -> Result<(), String> {
    let at = only_line(input.lines, r"store ring of store-garbage")?;
    let line = &input.lines[at];
    let said = regex::Regex::new(r"^xl: store ring of store-garbage: impossible index \(prod [0-9]+, cons [0-9]+\); disconnected$").map_err(|e| e.to_string())?;
    if !said.is_match(line) {
        return Err(format!("dom0 said `{line}`"));
    }
    match input.lines.iter().position(|l| l == "xl: domain store-garbage (1) created") {
        Some(created) if created < at => Ok(()),
        _ => Err("the ring was dropped before the domain was created".into()),
    }
}

/// Create/destroy cycles of `xl-create-destroy-100`.
const CREATE_DESTROY_CYCLES: usize = 100;

/// `info`, then `cycles` times: create the small guest, wait until it has printed (it ran),
/// destroy it; then `xl list`, `info` and `shutdown`.
fn create_destroy_input(cycles: usize) -> &'static [&'static str] {
    let mut input = vec!["info"];
    for _ in 0..cycles {
        input.extend([
            "xl create small.cfg",
            wait_for!(r"\[small\] hello: nr_pages="),
            "xl destroy small",
        ]);
    }
    input.extend(["xl list", "info", "shutdown"]);
    // Scenarios are built once per xtask run; leaking this one table keeps `input` a
    // plain static slice like every other scenario's.
    Box::leak(input.into_boxed_slice())
}

/// A compiled regex of this file's own patterns.
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("bad regex `{pattern}`: {e}"))
}

/// One `xl list` output: its rows, each `(name, id, MiB, state, tenths of a second)`, and
/// the index of its header line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listing {
    header: usize,
    rows: Vec<(String, u32, u64, String, u64)>,
}

impl Listing {
    fn row(&self, name: &str) -> Option<&(String, u32, u64, String, u64)> {
        self.rows.iter().find(|r| r.0 == name)
    }

    fn names(&self) -> Vec<&str> {
        self.rows.iter().map(|r| r.0.as_str()).collect()
    }
}

/// Every `xl list` output: a header and the rows after it, skipping guest lines that came
/// in between, up to the first other line.
fn listings(lines: &[String]) -> Vec<Listing> {
    let (header, row) = (re(LIST_HEADER), re(ANY_ROW));
    let mut out = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        if !header.is_match(line) {
            continue;
        }
        let mut rows = Vec::new();
        for line in &lines[at + 1..] {
            if line.starts_with('[') {
                continue;
            }
            let Some(c) = row.captures(line) else { break };
            let num = |i: usize| c[i].parse::<u64>().unwrap_or(u64::MAX);
            rows.push((
                c[1].to_string(),
                num(2) as u32,
                num(3),
                c[4].to_string(),
                num(5) * 10 + num(6),
            ));
        }
        out.push(Listing { header: at, rows });
    }
    out
}

/// Indices of the lines matching `pattern`.
fn lines_matching(lines: &[String], pattern: &str) -> Vec<usize> {
    let regex = re(pattern);
    (0..lines.len())
        .filter(|&i| regex.is_match(&lines[i]))
        .collect()
}

/// The counter's numbers, with their line indices.
fn counter_lines(lines: &[String]) -> Vec<(usize, u64)> {
    let regex = re(COUNTER_LINE);
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| Some((i, regex.captures(l)?[1].parse().ok()?)))
        .collect()
}

/// The one line matching `pattern`, or why there is not exactly one.
fn only_line(lines: &[String], pattern: &str) -> Result<usize, String> {
    match lines_matching(lines, pattern)[..] {
        [one] => Ok(one),
        ref many => Err(format!(
            "{} lines match `{pattern}`, expected one",
            many.len()
        )),
    }
}

/// While the counter is paused (from dom0's `paused` line to the last listing that shows it
/// paused, across a 400 ms sleep) it prints nothing; it runs before and after, and after the
/// unpause it goes on from where it stopped (the next number), not from the start. The
/// spinner is gone from every listing after its destroy, and only dom0 is left at the end.
fn three_guests(input: &CheckInput) -> Result<(), String> {
    let lines = input.lines;
    let paused = only_line(lines, r"^xl: domain counter \([0-9]+\) paused$")?;
    let unpaused = only_line(lines, r"^xl: domain counter \([0-9]+\) unpaused$")?;
    let all = listings(lines);
    let last_paused = all
        .iter()
        .filter(|l| l.header > paused && l.header < unpaused)
        .filter(|l| l.row("counter").is_some_and(|r| r.3.contains('p')))
        .map(|l| l.header + l.rows.len())
        .max()
        .ok_or("no listing shows the counter paused")?;
    let counts = counter_lines(lines);
    if let Some((at, n)) = counts
        .iter()
        .find(|(at, _)| (paused..=last_paused).contains(at))
    {
        return Err(format!(
            "the counter printed `counter: {n}` (line {}) while paused (lines {}..={})",
            at + 1,
            paused + 1,
            last_paused + 1
        ));
    }
    let before = counts.iter().rev().find(|(at, _)| *at < paused);
    let after = counts.iter().find(|(at, _)| *at > unpaused);
    match (before, after) {
        (Some((_, b)), Some((_, a))) if *a == b + 1 => {}
        (b, a) => {
            return Err(format!(
                "the counter's last line before the pause and first after the unpause are \
                 {b:?} and {a:?} (line index, number): expected consecutive numbers"
            ))
        }
    }
    let destroyed = only_line(lines, r"^xl: domain spinner \([0-9]+\) destroyed$")?;
    for l in all.iter().filter(|l| l.header > destroyed) {
        if l.row("spinner").is_some() {
            return Err(format!(
                "the listing at line {} still shows the destroyed spinner: {:?}",
                l.header + 1,
                l.names()
            ));
        }
    }
    let last = all.last().ok_or("no listing")?;
    if last.names() != ["Domain-0"] {
        return Err(format!(
            "after every guest was destroyed, xl list shows {:?}",
            last.names()
        ));
    }
    Ok(())
}

/// The spinner used CPU time (it runs) while dom0 kept answering.
fn spinner_got_the_cpu(input: &CheckInput) -> Result<(), String> {
    let all = listings(input.lines);
    let tenths = all
        .iter()
        .filter_map(|l| l.row("spinner"))
        .map(|r| r.4)
        .max()
        .ok_or("no listing shows the spinner")?;
    if tenths == 0 {
        return Err("the spinner's CPU time stayed at 0.0 s across a 500 ms sleep".into());
    }
    Ok(())
}

/// The id in the one `xl: domain NAME (ID) created` line.
fn created_id(lines: &[String], name: &str) -> Result<String, String> {
    let pattern = format!(r"^xl: domain {name} \(([0-9]+)\) created$");
    let at = only_line(lines, &pattern)?;
    Ok(re(&pattern)
        .captures(&lines[at])
        .map_or(String::new(), |c| c[1].to_string()))
}

/// The microkernel's crash lines name the domains xl created; the crasher destroyed on its
/// crash is in no listing; the preserved one is in the first and not after its destroy.
fn crash_contained(input: &CheckInput) -> Result<(), String> {
    for name in ["crasher", "crasher2"] {
        let said = only_line(input.lines, &format!(r"\[{name}\] crasher: about to fault$"))?;
        let reported = only_line(input.lines, &format!(r"^xl: domain {name} \([0-9]+\) crashed"))?;
        if said > reported {
            return Err(format!("{name}'s last line (line {said}) came after dom0's report of its crash"));
        }
    }
    let created = created_id(input.lines, "crasher")?;
    let crashed_mk = input.group(r"\(mk\) d([0-9]+) crashed: vector 6 #UD rip", 1)?;
    let crashed_xl = input.group(r"crasher \(([0-9]+)\) crashed; preserved", 1)?;
    if created != crashed_mk || created != crashed_xl {
        return Err(format!(
            "crasher created as {created}, the microkernel says d{crashed_mk} crashed, xl says {crashed_xl}"
        ));
    }
    let created2 = created_id(input.lines, "crasher2")?;
    let crashed2 = input.group(r"crasher2 \(([0-9]+)\) crashed$", 1)?;
    if created2 != crashed2 {
        return Err(format!(
            "crasher2 created as {created2}, xl says {crashed2} crashed"
        ));
    }
    let all = listings(input.lines);
    if let Some(l) = all.iter().find(|l| l.row("crasher2").is_some()) {
        return Err(format!(
            "crasher2 (on_crash = destroy) is still listed at line {}: {:?}",
            l.header + 1,
            l.names()
        ));
    }
    match all.last() {
        Some(l) if l.names() == ["Domain-0", "counter"] => Ok(()),
        other => Err(format!(
            "the last listing should be Domain-0 and counter, it is {:?}",
            other.map(Listing::names)
        )),
    }
}

/// `xl-grant-share`: every frame of both guests, the granted ones the mapper still mapped
/// when the granter died included, is free again once both are gone.
pub(super) fn grant_leaves_nothing(input: &CheckInput) -> Result<(), String> {
    let last = input.hits.len() - 2;
    let (before, after) = (number(input, 0, 1)?, number(input, last, 1)?);
    if before != after {
        return Err(format!("free memory {before} KiB before the grant guests, {after} KiB after"));
    }
    Ok(())
}

/// `xl-grant-share`: as [`grant_leaves_nothing`], and the mapper's checks in their order
/// (its lines interleave with the granter's as dom0 drains their rings).
fn grant_share_checks(input: &CheckInput) -> Result<(), String> {
    grant_leaves_nothing(input)?;
    let mapper = [
        r"\[grant-m\] TEST refs_from_store PASS$",
        r"\[grant-m\] TEST map_readonly_grant_writable PASS$",
        r"\[grant-m\] TEST copy_to_grant PASS$",
        r"\[grant-m\] TEST unmap_device_half PASS$",
        r"\[grant-m\] TEST unmap_and_replace PASS$",
        r"\[grant-m\] TEST unmap_batch PASS$",
    ];
    crate::expect::match_in_order(input.lines, &mapper).map(drop).map_err(|u| format!("the mapper's checks: {u:?}"))
}

/// Round trips of `xl-pingpong` (`count=` in ping.cfg and pong.cfg).
const PINGPONG_COUNT: u64 = 100_000;
/// `xl-pingpong`'s timeout: about 3x the 9 to 15 s the whole run took under TCG on a busy
/// 2-core host (the 100000 round trips about 110 us each, dom0 polling in between).
const PINGPONG_TIMEOUT_S: u64 = 45;

/// The two guests counted exactly `PINGPONG_COUNT` events each way (a lost or extra event
/// makes one of the four numbers differ), pong bound ping's printed port, and both ended.
fn pingpong_exact(input: &CheckInput) -> Result<(), String> {
    let lines = input.lines;
    let (ping_port, bound_port) = (number(input, 0, 1)?, number(input, 1, 1)?);
    if ping_port != bound_port {
        return Err(format!(
            "ping allocated port {ping_port} but pong bound port {bound_port}"
        ));
    }
    let (ping_sent, ping_received) = (number(input, 5, 1)?, number(input, 5, 2)?);
    let pong_re = re(r"\[pong\] pingpong: pong received ([0-9]+) sent ([0-9]+)$");
    let at = only_line(lines, pong_re.as_str())?;
    let caps = pong_re.captures(&lines[at]).ok_or("pong's line does not match")?;
    let (pong_received, pong_sent): (u64, u64) = (
        caps[1].parse().map_err(|e| format!("{e}"))?,
        caps[2].parse().map_err(|e| format!("{e}"))?,
    );
    only_line(lines, r"\[pong\] pingpong: done$")?;
    let got = [ping_sent, pong_received, pong_sent, ping_received];
    if got != [PINGPONG_COUNT; 4] {
        return Err(format!(
            "ping sent {ping_sent}, pong received {pong_received} and sent {pong_sent}, \
             ping received {ping_received}; expected {PINGPONG_COUNT} each"
        ));
    }
    Ok(())
}

/// Least number of checks the probe must have made (and passed).
const PROBE_MIN_CHECKS: u32 = 20;

/// The probe made (and passed) all its checks, not just a few.
fn probe_ran_every_check(input: &CheckInput) -> Result<(), String> {
    created_id(input.lines, "probe")?;
    let passed: u32 = input
        .group(r"TESTS DONE ([0-9]+) passed", 1)?
        .parse()
        .map_err(|e| format!("{e}"))?;
    let lines = lines_matching(input.lines, r"\[probe\] TEST \S+ PASS$").len();
    if passed < PROBE_MIN_CHECKS || lines != passed as usize {
        return Err(format!(
            "the probe says {passed} passed and printed {lines} PASS lines; expected at least {PROBE_MIN_CHECKS} of each, equal"
        ));
    }
    Ok(())
}

pub(super) fn number(input: &CheckInput, hit: usize, group: usize) -> Result<u64, String> {
    input
        .hits
        .get(hit)
        .and_then(|h| h.groups.get(group).cloned().flatten())
        .ok_or_else(|| format!("expectation {hit} has no group {group}"))?
        .parse()
        .map_err(|e| format!("expectation {hit} group {group}: {e}"))
}

/// Least number of pages the scanner must have been given that the pattern guest wrote:
/// 16 MiB.
const SCRUB_MIN_OVERLAP: u64 = 4096;

/// The scanner's clean result means something only if it looked at frames the pattern
/// guest wrote: the two guests' pages cannot all fit in the memory that was free, so they
/// share at least `written + scanned - free` frames. Memory is back where it was at the end.
fn scrub_overlap(input: &CheckInput) -> Result<(), String> {
    let free_kib = number(input, 0, 1)?;
    let written = number(input, 1, 1)?;
    let scanned = number(input, 3, 1)?;
    let free_end = number(input, 7, 1)?;
    let forced = (written + scanned).saturating_sub(free_kib / 4);
    if forced < SCRUB_MIN_OVERLAP {
        return Err(format!(
            "{written} pages written and {scanned} scanned fit in {} free pages: they share \
             only {forced} frames for sure (want at least {SCRUB_MIN_OVERLAP})",
            free_kib / 4
        ));
    }
    if free_end != free_kib {
        return Err(format!(
            "free memory was {free_kib} KiB before the guests and {free_end} KiB after"
        ));
    }
    Ok(())
}

/// Every cycle created, ran and destroyed its guest, and free memory ended exactly where it
/// started.
fn create_destroy_balanced(input: &CheckInput) -> Result<(), String> {
    let lines = input.lines;
    let created = lines_matching(lines, r"^xl: domain small \([0-9]+\) created$").len();
    let ran = lines_matching(lines, r"\[small\] hello: nr_pages=").len();
    let destroyed = lines_matching(lines, r"^xl: domain small \([0-9]+\) destroyed$").len();
    if [created, ran, destroyed] != [CREATE_DESTROY_CYCLES; 3] {
        return Err(format!(
            "{created} created, {ran} ran, {destroyed} destroyed; expected {CREATE_DESTROY_CYCLES} of each"
        ));
    }
    let (start, end) = (number(input, 0, 1)?, number(input, 5, 1)?);
    if start != end {
        return Err(format!(
            "free memory: {start} KiB before the {CREATE_DESTROY_CYCLES} cycles, {end} KiB after"
        ));
    }
    match listings(lines).last() {
        Some(l) if l.names() == ["Domain-0"] => Ok(()),
        other => Err(format!(
            "the last listing should be Domain-0 alone, it is {:?}",
            other.map(Listing::names)
        )),
    }
}

/// Each refused create is one line, followed by the prompt; the refused ones took no memory
/// (free is the same before and after them, and again before and after the duplicate);
/// the listing holds dom0 and the one counter only.
fn bad_configs_leave_nothing(input: &CheckInput) -> Result<(), String> {
    for hit in [1, 2, 3, 4, 8] {
        let at = input.hits[hit].line;
        let next = input.lines[at + 1..]
            .iter()
            .find(|l| !l.starts_with('['))
            .map(String::as_str)
            .unwrap_or("");
        if !next.starts_with("dom0> ") {
            return Err(format!(
                "the error `{}` is followed by `{next}`, not by the prompt",
                input.lines[at]
            ));
        }
    }
    let (before, after) = (number(input, 0, 1)?, number(input, 5, 1)?);
    if before != after {
        return Err(format!(
            "free memory {before} KiB before the refused creates, {after} KiB after"
        ));
    }
    let (with_counter, after_dup) = (number(input, 7, 1)?, number(input, 9, 1)?);
    if with_counter != after_dup {
        return Err(format!(
            "free memory {with_counter} KiB before the duplicate, {after_dup} KiB after"
        ));
    }
    match listings(input.lines).last() {
        Some(l) if l.names() == ["Domain-0", "counter"] => Ok(()),
        other => Err(format!(
            "the listing should be Domain-0 and counter, it is {:?}",
            other.map(Listing::names)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::{SLEEP_MS, WAIT_FOR};

    #[test]
    fn step_macros_match_the_runner() {
        assert_eq!(wait_for!("x"), format!("{WAIT_FOR}x"));
        assert_eq!(sleep_ms!("5"), format!("{SLEEP_MS}5"));
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    const LISTING: &str = "dom0> xl list\n\
        Name                                        ID   Mem VCPUs     State    Time(s)\n\
        Domain-0                                     0    61     1     r-----       0.3\n\
        [counter] counter: 5\n\
        counter                                      1    16     1     --p---      12.5\n\
        dom0> ";

    #[test]
    fn listings_skip_guest_lines() {
        let all = listings(&lines(LISTING));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].header, 1);
        assert_eq!(all[0].names(), ["Domain-0", "counter"]);
        assert_eq!(
            all[0].row("counter"),
            Some(&("counter".to_string(), 1, 16, "--p---".to_string(), 125))
        );
        assert!(re(list_row!("counter", "16", "-[-b]p---")).is_match(&lines(LISTING)[4]));
        assert!(!re(list_row!("counter", "16", "[-r][-b]----")).is_match(&lines(LISTING)[4]));
        assert_eq!(counter_lines(&lines(LISTING)), [(3, 5)]);
    }

    #[test]
    fn create_destroy_input_has_every_cycle() {
        let input = create_destroy_input(3);
        assert_eq!(input.len(), 1 + 3 * 3 + 3);
        assert_eq!(input[1], "xl create small.cfg");
        assert!(input[2].starts_with(WAIT_FOR));
        assert_eq!(input[input.len() - 1], "shutdown");
    }

    /// Runs `name`'s expectations and check over `output`, as `judge` would.
    fn check(name: &str, output: &str) -> Result<(), String> {
        let scenario = scenarios()
            .into_iter()
            .find(|s| s.name == name)
            .expect("scenario");
        let lines = crate::qemu::split_lines(output);
        let hits = crate::expect::match_in_order(&lines, scenario.expect).map_err(|u| u.message)?;
        (scenario.check.expect("a check"))(&CheckInput {
            scenario: &scenario,
            lines: &lines,
            hits: &hits,
        })
    }

    /// A real run of `xl-three-guests`.
    const THREE_GUESTS: &str = include_str!("xl/three-guests.log");
    /// A real run of `xl-scrub`.
    const SCRUB: &str = include_str!("xl/scrub.log");

    #[test]
    fn pause_check_sees_a_counter_that_ran_or_restarted() {
        check("xl-three-guests", THREE_GUESTS).unwrap();
        let ran = THREE_GUESTS.replace(
            "xl: domain counter (1) paused\n",
            "xl: domain counter (1) paused\n[counter] counter: 9\n",
        );
        let err = check("xl-three-guests", &ran).unwrap_err();
        assert!(err.contains("while paused"), "{err}");
        let restarted = THREE_GUESTS.replace("[counter] counter: 9\n", "[counter] counter: 1\n");
        let err = check("xl-three-guests", &restarted).unwrap_err();
        assert!(err.contains("consecutive"), "{err}");
        let lingering = THREE_GUESTS.replace(
            "dom0> xl destroy p[counter] counter: 10",
            "spinner                                      2    16     1     -----d       0.4\n\
             dom0> xl destroy p[counter] counter: 10",
        );
        let err = check("xl-three-guests", &lingering).unwrap_err();
        assert!(err.contains("destroyed spinner"), "{err}");
    }

    #[test]
    fn scrub_check_wants_overlap_and_memory_back() {
        check("xl-scrub", SCRUB).unwrap();
        let small = SCRUB.replace("wrote 15805 pages", "wrote 6000 pages");
        let err = check("xl-scrub", &small).unwrap_err();
        assert!(err.contains("share only"), "{err}");
        let leak = SCRUB.replace(
            "free 90112 KiB (88 MiB)\nuptime: 0.445",
            "free 90108 KiB (87 MiB)\nuptime: 0.445",
        );
        let err = check("xl-scrub", &leak).unwrap_err();
        assert!(err.contains("90108 KiB after"), "{err}");
    }

    #[test]
    fn pingpong_check_wants_exact_counts() {
        let ok = "[ping] pingpong: ping port 3 for domain 2\n\
            [pong] pingpong: pong bound port 3 of domain 1 as 2\n\
            dom0> xl list\n\
            Name                                        ID   Mem VCPUs     State    Time(s)\n\
            Domain-0                                     0    61     1     r-----       0.3\n\
            ping                                         1    16     1     ------       1.5\n\
            pong                                         2    16     1     -b----       1.4\n\
            dom0> [pong] pingpong: pong received 100000 sent 100000\n\
            [ping] pingpong: ping sent 100000 received 100000\n\
            [ping] pingpong: done\n\
            (mk) d1 (ping) shutdown: poweroff\n\
            [pong] pingpong: done\n\
            (mk) d2 (pong) shutdown: poweroff\n\
            xl list\n\
            Name                                        ID   Mem VCPUs     State    Time(s)\n\
            Domain-0                                     0    61     1     r-----       0.3\n\
            ping                                         1    16     1     ---s--       9.5\n\
            pong                                         2    16     1     ---s--       9.4\n\
            dom0> \n\
            xl: domain ping (1) shut down: poweroff; preserved\n\
            xl: domain pong (2) shut down: poweroff; preserved\n\
            dom0> shutdown\n\
            dom0: powering off\n\
            (mk) d0 shutdown: poweroff\n";
        check("xl-pingpong", ok).unwrap();
        let lost = ok.replace("pong received 100000", "pong received 99999");
        let err = check("xl-pingpong", &lost).unwrap_err();
        assert!(err.contains("pong received 99999"), "{err}");
        let extra = ok.replace("received 100000\n[ping]", "received 100001\n[ping]");
        assert!(check("xl-pingpong", &extra).is_err());
        let wrong_port = ok.replace("bound port 3", "bound port 4");
        let err = check("xl-pingpong", &wrong_port).unwrap_err();
        assert!(err.contains("port 4"), "{err}");
        let no_pong = ok.replace("[pong] pingpong: done\n", "");
        assert!(check("xl-pingpong", &no_pong).is_err());
    }

    #[test]
    fn pingpong_configs_name_the_count() {
        let dir = crate::test::configs_dir(&crate::build::Layout::workspace());
        for (cfg, peer) in [("ping.cfg", 2), ("pong.cfg", 1)] {
            let text = std::fs::read_to_string(dir.join(cfg)).unwrap();
            assert!(text.contains(&format!("peer={peer} count={PINGPONG_COUNT}\"")), "{cfg}");
        }
    }

    #[test]
    fn configs_exist() {
        let dir = crate::test::configs_dir(&crate::build::Layout::workspace());
        for scenario in scenarios() {
            for image in scenario.modules {
                if let Image::Config(name) = image {
                    assert!(dir.join(name).is_file(), "{}: {name}", scenario.name);
                }
            }
        }
    }
}
