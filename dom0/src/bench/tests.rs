//! Tests of `bench-create` against the fake hypervisor, whose clock moves on at every
//! `physinfo` and whose "scheduler" (`run_guests`) runs the unpaused domains when dom0
//! idles.

extern crate std;

use super::*;
use crate::testutil::{kernel_elf, lines, tar, Fail, FakeControl};
use hypercall_abi::errno::Errno;
use hypercall_abi::sched::SHUTDOWN_CRASH;
use std::string::String;

const IDLER: &str = "name = \"idler\"\nkernel = \"hello\"\nmemory = 8\nbogus = 1\n";

fn boot_data() -> (Vec<u8>, Vec<u8>) {
    (kernel_elf(), tar(&[("idler.cfg", IDLER.as_bytes())]))
}

fn fake() -> FakeControl {
    let mut ctl = FakeControl::new(65536, 60000);
    ctl.clock_ns = 1_000_000;
    ctl.clock_step_ns = 1000;
    ctl
}

fn run(ctl: &mut FakeControl, files: &BootFiles<'_>, count: u32) -> (bool, Vec<String>) {
    let mut out = String::new();
    let ok = create_many(
        ctl,
        files,
        "idler.cfg",
        count,
        &mut |c: &mut FakeControl| c.run_guests(),
        &mut out,
    );
    (ok, lines(&out))
}

#[test]
fn micros_and_median() {
    assert_eq!(std::format!("{}", Micros(12_345)), "12.3");
    assert_eq!(std::format!("{}", Micros(999)), "0.9");
    assert_eq!(std::format!("{}", Micros(7_000_000)), "7000.0");
    assert_eq!(median(&[]), 0);
    assert_eq!(median(&[5, 1, 3]), 3);
    assert_eq!(median(&[4, 1, 3, 10]), 3);
}

#[test]
fn creates_times_and_destroys_them_all() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ctl = fake();
    let free = ctl.free_pages;
    let (ok, out) = run(&mut ctl, &files, 3);
    assert!(ok, "{out:#?}");
    // The config warning once, not once per domain.
    assert_eq!(
        out.iter()
            .filter(|l| l.contains("unknown key 'bogus'"))
            .count(),
        1
    );
    for k in 1..=3 {
        assert!(
            out.iter()
                .any(|l| l.starts_with(&std::format!("bench-create: idler-{k} ({k}): built in "))),
            "{out:#?}"
        );
    }
    let bench: Vec<&String> = out.iter().filter(|l| l.starts_with("BENCH ")).collect();
    let names: Vec<&str> = bench.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(
        names,
        [
            "create_to_first_instruction_1",
            "create_to_first_instruction_3",
            "create_to_first_instruction_median",
            "create_build_1",
            "create_build_3",
            "create_build_median",
            "create_unpause_to_run_1",
            "create_unpause_to_run_3",
            "create_unpause_to_run_median",
            "DONE",
        ]
    );
    // The last domain's line names the first as its baseline; every value is positive.
    let words: Vec<&str> = bench[1].split(' ').collect();
    assert_eq!(words.len(), 6, "{}", bench[1]);
    assert_eq!(
        (words[3], words[4]),
        ("us", "create_to_first_instruction_1")
    );
    for l in &bench[..9] {
        let v: f64 = l.split(' ').nth(2).unwrap().parse().unwrap();
        assert!(v > 0.0, "{l}");
    }
    assert_eq!(out[out.len() - 2], "bench-create: destroyed 3 domains");
    assert_eq!(ctl.domains.len(), 1, "only dom0 is left");
    assert_eq!(ctl.free_pages, free);
    // Built paused, then unpaused by the benchmark itself.
    let unpauses = ctl.calls.iter().filter(|c| c.0 == "unpause").count();
    assert_eq!(unpauses, 3);
}

#[test]
fn one_domain_has_no_slope_lines() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ctl = fake();
    let (ok, out) = run(&mut ctl, &files, 1);
    assert!(ok);
    assert_eq!(out.iter().filter(|l| l.starts_with("BENCH ")).count(), 7);
    // No baselines: the first is also the last.
    assert!(out
        .iter()
        .filter(|l| l.starts_with("BENCH ") && *l != "BENCH DONE")
        .all(|l| l.split(' ').count() == 4));
}

#[test]
fn a_failed_creation_stops_and_cleans_up_without_done() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ctl = fake();
    // Too little memory for the third: 8 MiB each.
    ctl.free_pages = 2 * 2048 + 100;
    let (ok, out) = run(&mut ctl, &files, 3);
    assert!(!ok);
    assert!(
        out.iter()
            .any(|l| l.starts_with("bench-create: domain 3 of 3: xl: not enough free memory")),
        "{out:#?}"
    );
    assert!(!out.iter().any(|l| l.starts_with("BENCH")), "{out:#?}");
    assert_eq!(out.last().unwrap(), "bench-create: destroyed 2 domains");
    assert_eq!(ctl.domains.len(), 1);
    assert_eq!(ctl.free_pages, 2 * 2048 + 100);
}

#[test]
fn a_domain_that_fails_after_creation_is_destroyed_too() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ctl = fake();
    ctl.fail.push(Fail::Unpause(Errno::EINVAL));
    let (ok, out) = run(&mut ctl, &files, 2);
    assert!(!ok);
    assert_eq!(
        out[1],
        "bench-create: domain 1 of 2: unpausing domain 1 failed: EINVAL"
    );
    assert_eq!(ctl.domains.len(), 1);
}

#[test]
fn a_guest_that_crashes_before_running_or_never_runs() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ctl = fake();
    let mut out = String::new();
    let ok = create_many(
        &mut ctl,
        &files,
        "idler.cfg",
        2,
        &mut |c: &mut FakeControl| c.guest_shuts_down(1, SHUTDOWN_CRASH),
        &mut out,
    );
    assert!(!ok);
    assert!(
        out.contains("bench-create: domain 1 of 2: domain 1 crashed before it ran"),
        "{out}"
    );
    assert_eq!(ctl.domains.len(), 1);

    // A scheduler that never runs it: the benchmark gives up after the timeout.
    let mut ctl = fake();
    ctl.clock_step_ns = FIRST_RUN_TIMEOUT_NS / 4;
    let mut out = String::new();
    let ok = create_many(
        &mut ctl,
        &files,
        "idler.cfg",
        1,
        &mut |_: &mut FakeControl| {},
        &mut out,
    );
    assert!(!ok);
    assert!(
        out.contains("did not run within 10 s of its unpause"),
        "{out}"
    );
    assert_eq!(ctl.domains.len(), 1);
}

#[test]
fn a_name_too_long_with_its_suffix() {
    let long = "name = \"a-name-of-exactly-30-character\"\nkernel = \"hello\"\nmemory = 8\n";
    let archive = tar(&[("long.cfg", long.as_bytes())]);
    let kernel = kernel_elf();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ctl = fake();
    let mut out = String::new();
    let ok = create_many(
        &mut ctl,
        &files,
        "long.cfg",
        10,
        &mut |c: &mut FakeControl| c.run_guests(),
        &mut out,
    );
    assert!(!ok);
    let out = lines(&out);
    assert!(out[0].starts_with("bench-create: domain 1 of 10: xl: long.cfg: name: \"a-name-of-exactly-30-character-1\" (with the suffix) is longer than 31 characters"), "{out:#?}");
    // Nothing was created.
    assert!(!ctl.calls.iter().any(|c| c.0 == "create"));
}
