//! Tests of the `xl` subcommands and the stop polling against the fake hypervisor, by the
//! exact lines they print.

extern crate std;

use super::*;
use crate::testutil::{kernel_elf, lines, tar, Fail, FakeControl};
use crate::xl;
use hypercall_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
use std::string::String;

const CONFIGS: &[(&str, &str)] = &[
    ("hello.cfg", "name = \"hello\"\nkernel = \"hello\"\nmemory = 8\n"),
    ("keep.cfg", "name = \"keep\"\nkernel = \"hello\"\nmemory = 8\non_crash = \"preserve\"\non_poweroff = 'preserve'\n"),
    ("other.cfg", "name = \"other\"\nkernel = \"hello\"\nmemory = 8\n"),
    ("again.cfg", "name = \"again\"\nkernel = \"hello\"\nmemory = 8\non_crash = \"restart\"\non_poweroff = \"restart\"\n"),
];

fn boot_data() -> (Vec<u8>, Vec<u8>) {
    let entries: Vec<(&str, &[u8])> = CONFIGS.iter().map(|(n, t)| (*n, t.as_bytes())).collect();
    (kernel_elf(), tar(&entries))
}

/// Runs an `xl ...` line; returns what it printed and the outcome.
fn xl_line(ts: &mut Toolstack<'_, FakeControl>, line: &str) -> (Vec<String>, Outcome) {
    let cmd = xl::parse(line.split_whitespace().skip(1)).expect("a valid xl line");
    let mut out = String::new();
    let outcome = ts.run(&cmd, &mut out);
    (lines(&out), outcome)
}

fn xl_out(ts: &mut Toolstack<'_, FakeControl>, line: &str) -> Vec<String> {
    xl_line(ts, line).0
}

fn poll(ts: &mut Toolstack<'_, FakeControl>) -> Vec<String> {
    let mut out = String::new();
    ts.poll(&mut out);
    lines(&out)
}

/// `elf` as a bzImage (boot protocol 2.15) with an LZ4 (legacy framing) payload, the
/// unpacked size appended, as the kernel build makes it.
fn bzimage_lz4(elf: &[u8]) -> Vec<u8> {
    let mut payload = 0x184c_2102u32.to_le_bytes().to_vec();
    for chunk in elf.chunks(8 << 20) {
        let c = lz4_flex::block::compress(chunk);
        payload.extend_from_slice(&(c.len() as u32).to_le_bytes());
        payload.extend_from_slice(&c);
    }
    payload.extend_from_slice(&(elf.len() as u32).to_le_bytes());
    let mut image = std::vec![0u8; 4 * 512];
    image[0x1f1] = 3;
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    image[0x248..0x24c].copy_from_slice(&0u32.to_le_bytes());
    image[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    image.extend_from_slice(&payload);
    image
}

#[test]
fn a_bzimage_kernel_is_unpacked_and_a_corrupt_one_named() {
    let (kernel, archive) = boot_data();
    let bz = bzimage_lz4(&kernel);
    let files = BootFiles::new([("hello", &bz[..]), ("configs.tar", &archive[..])]);
    let mut ts = Toolstack::new(FakeControl::new(65536, 60000), files);
    assert_eq!(xl_out(&mut ts, "xl create hello.cfg"), ["xl: domain hello (1) created"]);
    let mut bad = bz.clone();
    let n = bad.len();
    bad[n - 4..].copy_from_slice(&(kernel.len() as u32 + 1).to_le_bytes());
    let files = BootFiles::new([("hello", &bad[..]), ("configs.tar", &archive[..])]);
    let mut ts = Toolstack::new(FakeControl::new(65536, 60000), files);
    assert_eq!(
        xl_out(&mut ts, "xl create hello.cfg"),
        [std::format!(
            "xl: hello.cfg: kernel 'hello' cannot be unpacked: bzImage payload unpacked to {} bytes but claims {}",
            kernel.len(),
            kernel.len() + 1
        )]
    );
    assert!(!ts.ctl.calls.iter().any(|c| c.0 == "create"), "nothing was created");
}

#[test]
fn create_list_pause_unpause_destroy() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ts = Toolstack::new(FakeControl::new(65536, 60000), files);
    assert_eq!(
        xl_out(&mut ts, "xl create hello.cfg"),
        ["xl: domain hello (1) created"]
    );
    assert_eq!(
        xl_out(&mut ts, "xl create -p other.cfg"),
        ["xl: domain other (2) created, paused"]
    );
    assert_eq!(
        xl_out(&mut ts, "xl list"),
        [
            "Name                                        ID   Mem VCPUs     State    Time(s)",
            "Domain-0                                     0    21     1     r-----       3.0",
            "hello                                        1     8     1     -b----       0.0",
            "other                                        2     8     1     --p---       0.0",
        ]
    );
    assert_eq!(
        xl_out(&mut ts, "xl pause hello"),
        ["xl: domain hello (1) paused"]
    );
    assert_eq!(
        xl_out(&mut ts, "xl list 1")[1],
        "hello                                        1     8     1     --p---       0.0"
    );
    assert_eq!(
        xl_out(&mut ts, "xl unpause 1"),
        ["xl: domain hello (1) unpaused"]
    );
    assert_eq!(
        xl_out(&mut ts, "xl unpause hello"),
        ["xl: domain hello (1) is not paused"]
    );
    assert_eq!(
        xl_out(&mut ts, "xl destroy other"),
        ["xl: domain other (2) destroyed"]
    );
    assert_eq!(
        xl_out(&mut ts, "xl destroy other"),
        ["xl: no domain named 'other'"]
    );
    assert_eq!(xl_out(&mut ts, "xl list 2"), ["xl: no domain with id 2"]);
    assert_eq!(
        xl_out(&mut ts, "xl destroy hello"),
        ["xl: domain hello (1) destroyed"]
    );
    // Every frame is back.
    assert_eq!(ts.ctl.free_pages, 60000);
    assert_eq!(ts.ctl.domains.len(), 1);
    // Nothing stopped, nothing to report.
    assert!(poll(&mut ts).is_empty());
}

#[test]
fn dom0_is_not_a_target() {
    let mut ts = Toolstack::new(FakeControl::new(100, 50), BootFiles::default());
    for verb in ["destroy", "pause", "unpause", "shutdown"] {
        for name in ["Domain-0", "0"] {
            assert_eq!(
                xl_out(&mut ts, &std::format!("xl {verb} {name}")),
                [std::format!("xl: cannot {verb} Domain-0")]
            );
        }
    }
    assert!(ts.ctl.calls.iter().all(|c| c.0 == "physinfo"));
}

#[test]
fn shutdown_asks_through_the_store_and_says_when_nobody_listens() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ts = Toolstack::new(FakeControl::new(100_000, 60_000), files);
    assert_eq!(xl_out(&mut ts, "xl create hello.cfg"), ["xl: domain hello (1) created"]);
    ts.ctl.ignores_control.push(1);
    assert_eq!(
        xl_out(&mut ts, "xl shutdown hello"),
        [
            "xl: domain hello (1) does not watch control/shutdown; its kernel may not act on it (xl shutdown -F hello ends it)",
            "xl: domain hello (1) asked to shut down"
        ]
    );
    assert!(poll(&mut ts).is_empty(), "it did not act");
    // -F: the hypervisor ends it with the reason given.
    assert_eq!(xl_out(&mut ts, "xl reboot -F hello"), ["xl: domain hello (1) ended"]);
    assert_eq!(ts.ctl.calls.last(), Some(&("shutdown", 1)));
    assert_eq!(poll(&mut ts).len(), 1);
}

#[test]
fn stops_are_reported_once_and_their_actions_applied() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ts = Toolstack::new(FakeControl::new(65536, 60000), files);
    xl_out(&mut ts, "xl create hello.cfg");
    xl_out(&mut ts, "xl create keep.cfg");
    xl_out(&mut ts, "xl create other.cfg");
    ts.ctl.guest_shuts_down(1, SHUTDOWN_POWEROFF);
    ts.ctl.guest_shuts_down(2, SHUTDOWN_CRASH);
    assert_eq!(
        poll(&mut ts),
        [
            "xl: domain hello (1) shut down: poweroff",
            "xl: domain keep (2) crashed; preserved (xl destroy keep removes it)",
        ]
    );
    // hello is gone (on_poweroff destroy), keep stays (preserve) and other runs on.
    assert!(!ts.ctl.domains.contains_key(&1));
    assert_eq!(
        xl_out(&mut ts, "xl list keep")[1],
        "keep                                         2     8     1     ----c-       0.0"
    );
    assert!(ts.ctl.domains.contains_key(&3));
    assert!(poll(&mut ts).is_empty());
    assert_eq!(
        xl_out(&mut ts, "xl destroy keep"),
        ["xl: domain keep (2) destroyed"]
    );
    // xl shutdown: the request through the store, then the poll sees the kernel's answer.
    assert_eq!(
        xl_out(&mut ts, "xl shutdown other"),
        ["xl: domain other (3) asked to shut down"]
    );
    assert_eq!(ts.ctl.calls.last(), Some(&("pv_control", 3)));
    assert_eq!(poll(&mut ts), ["xl: domain other (3) shut down: poweroff"]);
    assert_eq!(ts.ctl.free_pages, 60000);
}

#[test]
fn restart_creates_the_domain_again_from_its_config_until_destroyed() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ts = Toolstack::new(FakeControl::new(100_000, 60_000), files);
    assert_eq!(xl_out(&mut ts, "xl create again.cfg"), ["xl: domain again (1) created"]);
    ts.ctl.guest_shuts_down(1, SHUTDOWN_CRASH);
    assert_eq!(poll(&mut ts), ["xl: domain again (1) crashed; restarting", "xl: domain again (2) created"]);
    assert!(!ts.ctl.domains.contains_key(&1));
    ts.ctl.guest_shuts_down(2, SHUTDOWN_POWEROFF);
    assert_eq!(poll(&mut ts), ["xl: domain again (2) shut down: poweroff; restarting", "xl: domain again (3) created"]);
    // xl destroy is no stop: it stays destroyed, and every page is back.
    assert_eq!(xl_out(&mut ts, "xl destroy again"), ["xl: domain again (3) destroyed"]);
    assert!(poll(&mut ts).is_empty());
    assert_eq!(ts.ctl.domains.keys().copied().collect::<Vec<_>>(), [0], "dom0 alone");
    assert_eq!(ts.ctl.free_pages, 60000);
}

#[test]
fn a_failing_poll_is_said_once() {
    let mut ts = Toolstack::new(FakeControl::new(100, 50), BootFiles::default());
    // Nothing watched: no hypercall at all.
    ts.ctl.fail.push(Fail::List(Errno::ENOSYS));
    assert!(poll(&mut ts).is_empty());
    assert_eq!(ts.ctl.fail.len(), 1);
    // A watched domain (domain 0 stands in: it stays listed).
    ts.watcher
        .watch(0, "Domain-0", StopAction::Destroy, StopAction::Destroy);
    ts.ctl.fail.push(Fail::List(Errno::ENOSYS));
    assert_eq!(poll(&mut ts), ["xl: cannot watch the domains: ENOSYS"]);
    assert!(poll(&mut ts).is_empty());
    assert!(poll(&mut ts).is_empty());
    ts.ctl.fail.push(Fail::List(Errno::ENOSYS));
    assert_eq!(poll(&mut ts), ["xl: cannot watch the domains: ENOSYS"]);
    ts.ctl.fail.push(Fail::List(Errno::EPERM));
    assert_eq!(
        xl_out(&mut ts, "xl list"),
        ["xl: cannot list the domains: EPERM"]
    );
}

#[test]
fn a_failed_destroy_is_said() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ts = Toolstack::new(FakeControl::new(65536, 60000), files);
    xl_out(&mut ts, "xl create hello.cfg");
    ts.ctl.fail.push(Fail::Destroy(Errno::EBUSY));
    assert_eq!(
        xl_out(&mut ts, "xl destroy hello"),
        ["xl: destroy hello (1) failed: EBUSY"]
    );
    ts.ctl.guest_shuts_down(1, SHUTDOWN_POWEROFF);
    ts.ctl.fail.push(Fail::Destroy(Errno::EBUSY));
    assert_eq!(
        poll(&mut ts),
        [
            "xl: domain hello (1) shut down: poweroff",
            "xl: destroying domain hello (1) failed: EBUSY",
        ]
    );
}

#[test]
fn console_attaches_to_served_domains_only() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ts = Toolstack::new(FakeControl::new(65536, 60000), files);
    xl_out(&mut ts, "xl create hello.cfg");
    let ch = ts.channels[&1];
    assert_eq!(ts.ctl.consoles[&1], ch);
    for line in ["xl console hello", "xl console 1"] {
        let (out, outcome) = xl_line(&mut ts, line);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(
            outcome,
            Outcome::Attach {
                id: 1,
                name: "hello".into()
            }
        );
    }
    assert_eq!(xl_out(&mut ts, "xl console nobody"), ["xl: no domain named 'nobody'"]);
    assert_eq!(
        xl_out(&mut ts, "xl console Domain-0"),
        ["xl: Domain-0 (0) has no console ring served by dom0"]
    );
    // Destroyed: its record and its console go.
    xl_out(&mut ts, "xl destroy hello");
    assert!(ts.channels.is_empty());
    assert!(ts.ctl.consoles.is_empty());
    assert!(ts.ctl.bound.is_empty());
    assert_eq!(xl_out(&mut ts, "xl console hello"), ["xl: no domain named 'hello'"]);
}

#[test]
fn attaching_waits_for_the_stop() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ts = Toolstack::new(FakeControl::new(65536, 60000), files);
    let (out, outcome) = xl_line(&mut ts, "xl create -c hello.cfg");
    assert_eq!(out, ["xl: domain hello (1) created"]);
    assert_eq!(
        outcome,
        Outcome::Attach {
            id: 1,
            name: "hello".into()
        }
    );
    let mut out = String::new();
    assert_eq!(ts.poll_attached(1, "hello", &mut out), AttachEnd::Running);
    assert_eq!(out, "");
    ts.ctl.guest_shuts_down(1, SHUTDOWN_POWEROFF);
    assert_eq!(ts.poll_attached(1, "hello", &mut out), AttachEnd::Stopped);
    assert_eq!(
        lines(&out),
        [
            "xl: domain hello (1) shut down: poweroff",
            "xl: hello stopped (poweroff)"
        ]
    );
    // A preserved domain that crashed before the wait began still ends it.
    // (It gets id 2: ids are not reused until they wrap.)
    let (_, outcome) = xl_line(&mut ts, "xl create -c keep.cfg");
    assert!(matches!(outcome, Outcome::Attach { id: 2, .. }));
    ts.ctl.guest_shuts_down(2, SHUTDOWN_CRASH);
    poll(&mut ts);
    let mut out = String::new();
    assert_eq!(ts.poll_attached(2, "keep", &mut out), AttachEnd::Stopped);
    assert_eq!(out, "xl: keep stopped (crashed)\n");
    // A domain that vanished.
    let mut out = String::new();
    assert_eq!(ts.poll_attached(9, "ghost", &mut out), AttachEnd::Stopped);
    assert_eq!(out, "xl: ghost stopped (gone)\n");
    assert_eq!(
        std::format!("{}", Detached("hello")),
        "xl: detached from hello"
    );
}

#[test]
fn help_and_info() {
    let mut ts = Toolstack::new(FakeControl::new(100, 50), BootFiles::default());
    let (out, outcome) = xl_line(&mut ts, "xl help");
    assert_eq!(out.len(), xl::SUBCOMMANDS.len());
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(xl_line(&mut ts, "xl info").1, Outcome::Info);
    assert_eq!(
        xl_out(&mut ts, "xl create nothing.cfg"),
        ["xl: no boot file named 'nothing.cfg' (there are no boot files)"]
    );
}

#[test]
fn block_attach_list_and_detach_name_their_errors() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ts = Toolstack::new(FakeControl::new(65536, 60000), files);
    xl_out(&mut ts, "xl create hello.cfg");
    assert_eq!(xl_out(&mut ts, "xl block-attach hello phy:vda3,xvdb,w"), Vec::<String>::new());
    assert_eq!(xl_out(&mut ts, "xl block-attach hello phy:vdz,xvdc,w"), ["xl block-attach: hello (1): vdz: no such disk (dom0 has vda)"]);
    assert_eq!(xl_out(&mut ts, "xl block-attach hello phy:vda3,xvd,w"), ["xl block-attach: phy:vda3,xvd,w: vdev \"xvd\" is not a disk name (xvda, xvdb2, xvdaa, hda, sdb, ...)"]);
    assert_eq!(xl_out(&mut ts, "xl block-attach nobody phy:vda3,xvdb,w").len(), 1);
    let list = xl_out(&mut ts, "xl block-list hello");
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list[0].starts_with("Vdev") && list[1].starts_with("51728     vda3    w     2        1"), "{list:?}");
    assert!(list[1].ends_with("/local/domain/0/backend/vbd/1/51728"), "{list:?}");
    assert_eq!(xl_out(&mut ts, "xl block-detach hello xvdc"), ["xl block-detach: hello (1): d1 has no virtual disk 51744"]);
    assert_eq!(xl_out(&mut ts, "xl block-detach hello bogus"), ["xl block-detach: \"bogus\" is not a device number or disk name"]);
    assert_eq!(xl_out(&mut ts, "xl block-detach hello 51728"), Vec::<String>::new());
    assert_eq!(xl_out(&mut ts, "xl block-list hello").len(), 1, "only the header");
}

#[test]
fn network_attach_list_and_detach_name_their_errors() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ts = Toolstack::new(FakeControl::new(65536, 60000), files);
    xl_out(&mut ts, "xl create hello.cfg");
    assert_eq!(xl_out(&mut ts, "xl network-attach hello"), Vec::<String>::new());
    assert_eq!(xl_out(&mut ts, "xl network-attach hello ip=10.0.0.2 rate=1MB/s"), Vec::<String>::new());
    assert_eq!(xl_out(&mut ts, "xl network-attach hello colour=blue"), ["xl network-attach: \"colour\" is not a vif setting here (mac, bridge, type, script, ip, rate, vifname, model)"]);
    let list = xl_out(&mut ts, "xl network-list hello");
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(list[0].starts_with("Idx BE Mac Addr."), "{list:?}");
    assert!(list[1].starts_with("0   0  00:16:3e:00:01:00"), "{list:?}");
    assert!(list[2].starts_with("1   0  00:16:3e:00:01:01") && list[2].ends_with("/local/domain/0/backend/vif/1/1"), "{list:?}");
    assert_eq!(xl_out(&mut ts, "xl network-detach hello 7"), ["xl network-detach: hello (1): d1 has no network interface 7"]);
    assert_eq!(xl_out(&mut ts, "xl network-detach hello 00:16:3e:00:01:07"), ["xl network-detach: hello (1): no network interface has MAC 00:16:3e:00:01:07"]);
    assert_eq!(xl_out(&mut ts, "xl network-detach hello eth0"), ["xl network-detach: \"eth0\" is not a device number or MAC"]);
    assert_eq!(xl_out(&mut ts, "xl network-detach hello 00:16:3e:00:01:00"), Vec::<String>::new());
    assert_eq!(xl_out(&mut ts, "xl network-detach hello 1"), Vec::<String>::new());
    assert_eq!(xl_out(&mut ts, "xl network-list hello").len(), 1, "only the header");
}

#[test]
fn vcpu_list_shows_every_vcpu() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ts = Toolstack::new(FakeControl::new(65536, 60000), files);
    xl_out(&mut ts, "xl create hello.cfg");
    let all = xl_out(&mut ts, "xl vcpu-list");
    assert_eq!(all[0], crate::xl::VCPU_LIST_HEADER);
    assert!(all.iter().any(|l| l.starts_with("Domain-0") && l.contains("-b-") && l.ends_with("1.2 all / all")), "{all:?}");
    let one = xl_out(&mut ts, "xl vcpu-list hello");
    assert_eq!(one.len(), 2, "{one:?}");
    assert!(one[1].starts_with("hello ") && one[1].contains("    1     0     0   -b-"), "{one:?}");
    assert_eq!(xl_out(&mut ts, "xl vcpu-list nobody").len(), 1);
}

#[test]
fn vcpu_pin_pins_and_says_why_not() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ts = Toolstack::new(FakeControl::new(65536, 60000), files);
    xl_out(&mut ts, "xl create hello.cfg");
    assert_eq!(xl_out(&mut ts, "xl vcpu-pin hello 0 1"), ["xl: hello (1) vCPU 0 may run on CPUs 1"]);
    assert!(xl_out(&mut ts, "xl vcpu-list hello")[1].ends_with(" 1 / all"));
    assert_eq!(xl_out(&mut ts, "xl vcpu-pin hello all 0-1"), ["xl: hello (1) vCPU 0 may run on CPUs all"]);
    assert!(xl_out(&mut ts, "xl vcpu-list hello")[1].ends_with(" all / all"));
    assert_eq!(xl_out(&mut ts, "xl vcpu-pin hello 0 5"), ["xl vcpu-pin: hello (1) vCPU 0: no CPU of '5' is online (the machine has 2)"]);
    assert_eq!(xl_out(&mut ts, "xl vcpu-pin hello 0 2-1"), ["xl vcpu-pin: '2-1': the range runs backwards"]);
    assert_eq!(xl_out(&mut ts, "xl vcpu-pin hello 3 1"), ["xl vcpu-pin: hello (1) has no vCPU '3' (it has 1)"]);
    assert_eq!(xl_out(&mut ts, "xl vcpu-pin nobody 0 1").len(), 1);
    assert_eq!(ts.ctl.affinities, [(1, 0, 0b11)], "the refusals changed nothing");
}

#[test]
fn sched_credit_lists_sets_and_refuses_as_libxl() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ts = Toolstack::new(FakeControl::new(65536, 60000), files);
    xl_out(&mut ts, "xl create hello.cfg");
    assert_eq!(xl_out(&mut ts, "xl sched-credit -d hello -w 512 -c 25"), Vec::<String>::new());
    assert_eq!(xl_out(&mut ts, "xl sched-credit -d hello -w 300"), Vec::<String>::new(), "the cap stays");
    let all = xl_out(&mut ts, "xl sched-credit");
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all[0].starts_with("Name") && all[0].ends_with("ID Weight  Cap"), "{all:?}");
    assert!(all[1].starts_with("Domain-0") && all[1].ends_with("    0    256    0"), "{all:?}");
    assert!(all[2].starts_with("hello") && all[2].ends_with("    1    300   25"), "{all:?}");
    assert_eq!(xl_out(&mut ts, "xl sched-credit -d 1").len(), 2);
    for (line, says) in [
        ("xl sched-credit -d hello -w 0", "xl sched-credit: Cpu weight out of range, valid values are within range from 1 to 65535"),
        ("xl sched-credit -d hello -w 65536", "xl sched-credit: Cpu weight out of range, valid values are within range from 1 to 65535"),
        ("xl sched-credit -d hello -c 101", "xl sched-credit: Cpu cap out of range, valid range is from 0 to 100 for specified number of vcpus"),
        ("xl sched-credit -d hello -w lots", "xl sched-credit: -w: 'lots' is not a number"),
        ("xl sched-credit -d nobody -w 5", "xl: no domain named 'nobody'"),
    ] {
        assert_eq!(xl_out(&mut ts, line), [says], "{line}");
    }
    let all = xl_out(&mut ts, "xl sched-credit -d hello");
    assert!(all[1].ends_with("    1    300   25"), "nothing changed: {all:?}");
}

#[test]
fn sched_rtds_lists_reserves_and_names_refusals() {
    let (kernel, archive) = boot_data();
    let files = BootFiles::new([("hello", &kernel[..]), ("configs.tar", &archive[..])]);
    let mut ts = Toolstack::new(FakeControl::new(65536, 60000), files);
    xl_out(&mut ts, "xl create hello.cfg");
    assert_eq!(xl_out(&mut ts, "xl sched-rtds -d hello -p 10000 -b 2000 -e 0"), Vec::<String>::new());
    let all = xl_out(&mut ts, "xl sched-rtds");
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all[0].ends_with("ID    Period    Budget Extratime Misses"), "{all:?}");
    assert!(all[1].starts_with("Domain-0") && all[1].ends_with("0     10000         -       yes      0"), "{all:?}");
    assert!(all[2].starts_with("hello") && all[2].ends_with("1     10000      2000        no      0"), "{all:?}");
    assert_eq!(xl_out(&mut ts, "xl sched-rtds -d hello -e 1"), Vec::<String>::new(), "extra time alone keeps the reservation");
    assert!(xl_out(&mut ts, "xl sched-rtds -d hello")[1].ends_with("2000       yes      0"));
    for (line, says) in [
        ("xl sched-rtds -d hello -p 5 -b 5", "xl sched-rtds: the period must be at least 10 us"),
        ("xl sched-rtds -d hello -p 1000 -b 2000", "xl sched-rtds: the budget must be from 10 us to the period (1000 us), or 0 for no reservation"),
        ("xl sched-rtds -d hello -p 1000 -b x", "xl sched-rtds: -b: 'x' is not a number"),
        ("xl sched-rtds -d hello -e 2", "xl sched-rtds: -e: '2' is not 0 or 1"),
        ("xl sched-rtds -d hello -p 10000 -b 9000", "xl sched-rtds: hello (1): refused: the reservations would need more than the CPU (admission control)"),
    ] {
        assert_eq!(xl_out(&mut ts, line), [says], "{line}");
    }
    assert!(xl_out(&mut ts, "xl sched-rtds -d hello")[1].ends_with("10000      2000       yes      0"), "unchanged");
}
