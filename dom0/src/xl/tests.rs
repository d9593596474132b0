//! Tests of `xl` parsing, domain naming and the `xl list` text.

extern crate std;

use super::*;
use hypercall_abi::domctl::DOMINF_PRIVILEGED;
use hypercall_abi::sched::SHUTDOWN_POWEROFF;
use std::format;
use std::vec::Vec;

fn xl(line: &str) -> Result<XlCommand<'_>, XlUsage<'_>> {
    parse(line.split_whitespace())
}

fn usage(line: &str) -> std::string::String {
    format!("{}", xl(line).unwrap_err())
}

#[test]
fn subcommands_and_arguments() {
    assert_eq!(xl(""), Ok(XlCommand::Help));
    assert_eq!(xl("help"), Ok(XlCommand::Help));
    assert_eq!(xl("info"), Ok(XlCommand::Info));
    assert_eq!(xl("list"), Ok(XlCommand::List(None)));
    assert_eq!(xl("list web"), Ok(XlCommand::List(Some("web"))));
    assert_eq!(
        xl("create hello.cfg"),
        Ok(XlCommand::Create {
            file: "hello.cfg",
            attach: false,
            paused: false
        })
    );
    assert_eq!(
        xl("create -c hello.cfg"),
        Ok(XlCommand::Create {
            file: "hello.cfg",
            attach: true,
            paused: false
        })
    );
    assert_eq!(
        xl("create hello.cfg -p"),
        Ok(XlCommand::Create {
            file: "hello.cfg",
            attach: false,
            paused: true
        })
    );
    assert_eq!(
        xl("create -cp a"),
        Ok(XlCommand::Create {
            file: "a",
            attach: true,
            paused: true
        })
    );
    assert_eq!(xl("destroy 3"), Ok(XlCommand::Destroy("3")));
    assert_eq!(xl("pause web"), Ok(XlCommand::Pause("web")));
    assert_eq!(xl("unpause web"), Ok(XlCommand::Unpause("web")));
    use hypercall_abi::sched::ShutdownReason::{Poweroff, Reboot};
    assert_eq!(xl("shutdown web"), Ok(XlCommand::Shutdown { target: "web", reason: Poweroff, force: false }));
    assert_eq!(xl("shutdown -F 3"), Ok(XlCommand::Shutdown { target: "3", reason: Poweroff, force: true }));
    assert_eq!(xl("reboot web"), Ok(XlCommand::Shutdown { target: "web", reason: Reboot, force: false }));
    assert_eq!(xl("reboot -F web"), Ok(XlCommand::Shutdown { target: "web", reason: Reboot, force: true }));
    assert_eq!(xl("console web"), Ok(XlCommand::Console("web")));
    assert_eq!(xl("console 3"), Ok(XlCommand::Console("3")));
}

#[test]
fn usage_errors_are_one_line() {
    assert_eq!(
        usage("frob"),
        "xl: unknown subcommand 'frob'; type 'xl help' for the list"
    );
    assert_eq!(usage("create"), "xl create: missing a config file name");
    assert_eq!(usage("create -c"), "xl create: missing a config file name");
    assert_eq!(usage("create -x a"), "xl create: unknown option '-x'");
    assert_eq!(usage("create a b"), "xl create: unexpected argument 'b'");
    assert_eq!(usage("destroy"), "xl destroy: missing a domain name or id");
    assert_eq!(usage("pause a b"), "xl pause: unexpected argument 'b'");
    assert_eq!(usage("shutdown -w a"), "xl shutdown: unknown option '-w'");
    assert_eq!(usage("reboot -F"), "xl reboot: missing a domain name or id");
    assert_eq!(usage("reboot a -F"), "xl reboot: unexpected argument '-F'");
    assert_eq!(usage("list -l"), "xl list: unknown option '-l'");
    assert_eq!(usage("console"), "xl console: missing a domain name or id");
    assert_eq!(usage("console a b"), "xl console: unexpected argument 'b'");
    assert_eq!(usage("console -n a"), "xl console: unknown option '-n'");
    assert_eq!(usage("list a b"), "xl list: unexpected argument 'b'");
    assert_eq!(usage("info x"), "xl info: unexpected argument 'x'");
    assert_eq!(usage("help me"), "xl help: unexpected argument 'me'");
}

#[test]
fn vcpu_pin_takes_a_domain_a_vcpu_and_a_list() {
    assert_eq!(xl("vcpu-pin web 1 0-1"), Ok(XlCommand::VcpuPin { target: "web", vcpu: "1", cpus: "0-1" }));
    assert_eq!(xl("vcpu-pin 3 all 1"), Ok(XlCommand::VcpuPin { target: "3", vcpu: "all", cpus: "1" }));
    assert_eq!(usage("vcpu-pin"), "xl vcpu-pin: missing a domain name or id");
    assert_eq!(usage("vcpu-pin web"), "xl vcpu-pin: missing a vCPU number or 'all'");
    assert_eq!(usage("vcpu-pin web 0"), "xl vcpu-pin: missing a CPU list");
    assert_eq!(usage("vcpu-pin web 0 1 all"), "xl vcpu-pin: unexpected argument 'all'");
    assert_eq!(usage("vcpu-pin -f web 0 1"), "xl vcpu-pin: unknown option '-f'");
}

#[test]
fn help_names_every_subcommand() {
    let text = format!("{XlHelp}");
    assert_eq!(text.lines().count(), SUBCOMMANDS.len());
    for s in SUBCOMMANDS {
        assert!(text.contains(&format!("  xl {}", s.name)), "{}", s.name);
        assert!(
            xl(s.name).is_ok() || xl(&format!("{} x", s.name)).is_ok() || xl(&format!("{} x y", s.name)).is_ok() || xl(&format!("{} x y z", s.name)).is_ok(),
            "{}",
            s.name
        );
    }
}

#[test]
fn block_subcommands() {
    assert_eq!(xl("block-attach g phy:vda3,xvdb,w"), Ok(XlCommand::BlockAttach { target: "g", spec: "phy:vda3,xvdb,w" }));
    assert_eq!(xl("block-detach 3 xvdb"), Ok(XlCommand::BlockDetach { target: "3", dev: "xvdb" }));
    assert_eq!(xl("block-list g"), Ok(XlCommand::BlockList("g")));
    assert_eq!(usage("block-attach g"), "xl block-attach: missing a disk spec (phy:vda3,xvdb,w)");
    assert_eq!(usage("block-detach"), "xl block-detach: missing a domain name or id");
    assert_eq!(usage("block-detach g xvdb more"), "xl block-detach: unexpected argument 'more'");
    assert_eq!(usage("block-list -x"), "xl block-list: unknown option '-x'");
}

#[test]
fn network_subcommands() {
    assert_eq!(xl("network-attach g mac=00:16:3e:00:00:09 ip=10.0.0.9"), Ok(XlCommand::NetworkAttach { target: "g", settings: ["mac=00:16:3e:00:00:09", "ip=10.0.0.9", "", "", "", "", "", ""] }));
    assert_eq!(xl("network-attach g"), Ok(XlCommand::NetworkAttach { target: "g", settings: [""; 8] }));
    assert_eq!(xl("network-detach 3 1"), Ok(XlCommand::NetworkDetach { target: "3", dev: "1" }));
    assert_eq!(xl("network-list g"), Ok(XlCommand::NetworkList("g")));
    assert_eq!(usage("network-attach"), "xl network-attach: missing a domain name or id");
    assert_eq!(usage("network-attach g a b c d e f g h i"), "xl network-attach: unexpected argument 'i'");
    assert_eq!(usage("network-detach g"), "xl network-detach: missing a device (its number or MAC)");
    assert_eq!(usage("network-detach g 1 2"), "xl network-detach: unexpected argument '2'");
    assert_eq!(usage("network-list -x"), "xl network-list: unknown option '-x'");
}

#[test]
fn vcpu_list_and_its_lines() {
    assert_eq!(xl("vcpu-list"), Ok(XlCommand::VcpuList(None)));
    assert_eq!(xl("vcpu-list g"), Ok(XlCommand::VcpuList(Some("g"))));
    assert_eq!(usage("vcpu-list -x"), "xl vcpu-list: unknown option '-x'");
    assert_eq!(usage("vcpu-list a b"), "xl vcpu-list: unexpected argument 'b'");
    let up = hypercall_abi::domctl::GetVcpuInfo { vcpu: 1, online: 1, running: 1, cpu_time: 2_345_000_000, ..Default::default() };
    assert_eq!(crate::xl::vcpu_line("smp", 3, &up, "all"), "smp                                  3     1     0   r--       2.3 all / all");
    let down = hypercall_abi::domctl::GetVcpuInfo { vcpu: 1, ..Default::default() };
    assert!(crate::xl::vcpu_line("smp", 3, &down, "1").contains("    1     -   --p"));
}

#[test]
fn sched_credit_options() {
    assert_eq!(xl("sched-credit"), Ok(XlCommand::SchedCredit { target: None, weight: None, cap: None }));
    assert_eq!(xl("sched-credit -d g -c 25 -w 512"), Ok(XlCommand::SchedCredit { target: Some("g"), weight: Some("512"), cap: Some("25") }));
    assert_eq!(usage("sched-credit -w 5"), "xl sched-credit: missing a domain (-d) to set");
    assert_eq!(usage("sched-credit -d"), "xl sched-credit: missing a domain after -d");
    assert_eq!(usage("sched-credit -d g -c"), "xl sched-credit: missing a cap after -c");
    assert_eq!(usage("sched-credit -x"), "xl sched-credit: unknown option '-x'");
    assert_eq!(usage("sched-credit g"), "xl sched-credit: unexpected argument 'g'");
    assert_eq!(xl("sched-rtds -d rt -p 10000 -b 2000 -e 0"), Ok(XlCommand::SchedRtds { target: Some("rt"), period: Some("10000"), budget: Some("2000"), extra: Some("0") }));
    assert_eq!(xl("sched-rtds"), Ok(XlCommand::SchedRtds { target: None, period: None, budget: None, extra: None }));
    assert_eq!(usage("sched-rtds -d rt -p 10000"), "xl sched-rtds: missing both a period (-p) and a budget (-b)");
    assert_eq!(usage("sched-rtds -b 5"), "xl sched-rtds: missing a domain (-d) to set");
    assert_eq!(usage("sched-rtds -d rt -e"), "xl sched-rtds: missing 0 or 1 after -e");
    assert_eq!(usage("sched-rtds -w 5"), "xl sched-rtds: unknown option '-w'");
}

fn dom(id: u16, name: &str, flags: u32) -> DomainInfo {
    let mut d = DomainInfo {
        domain: id,
        flags,
        max_vcpus: 1,
        tot_pages: 32768,
        cpu_time_ns: 1_234_567_890,
        ..DomainInfo::default()
    };
    d.name[..name.len()].copy_from_slice(name.as_bytes());
    d
}

#[test]
fn targets_by_name_or_id() {
    let list = [
        dom(0, "dom0", DOMINF_PRIVILEGED | DOMINF_RUNNING),
        dom(1, "web", 0),
        dom(12, "db", 0),
    ];
    assert_eq!(Target::parse("12").resolve(&list).unwrap().domain, 12);
    assert_eq!(Target::parse("db").resolve(&list).unwrap().domain, 12);
    assert_eq!(Target::parse("Domain-0").resolve(&list).unwrap().domain, 0);
    assert_eq!(Target::parse("0").resolve(&list).unwrap().domain, 0);
    let missing = |t: &str| format!("{}", Target::parse(t).resolve(&list).unwrap_err());
    assert_eq!(missing("7"), "xl: no domain with id 7");
    assert_eq!(missing("99999999999"), "xl: no domain with id 4294967295");
    assert_eq!(missing("dom0"), "xl: no domain named 'dom0'");
    assert_eq!(missing("Web"), "xl: no domain named 'Web'");
    assert_eq!(Target::parse("007"), Target::Id(7));
}

#[test]
fn state_letters_follow_xl() {
    let letters = |flags: u32, reason: u32| {
        let mut d = dom(1, "x", flags);
        d.shutdown_reason = reason;
        std::string::String::from_utf8(state_letters(&d).to_vec()).unwrap()
    };
    assert_eq!(letters(0, 0), "------");
    assert_eq!(letters(DOMINF_RUNNING, 0), "r-----");
    assert_eq!(letters(DOMINF_BLOCKED, 0), "-b----");
    assert_eq!(letters(DOMINF_PAUSED, 0), "--p---");
    assert_eq!(letters(DOMINF_SHUTDOWN, SHUTDOWN_POWEROFF), "---s--");
    assert_eq!(letters(DOMINF_SHUTDOWN, SHUTDOWN_CRASH), "----c-");
    assert_eq!(letters(DOMINF_CRASHED, SHUTDOWN_CRASH), "----c-");
    assert_eq!(letters(DOMINF_DYING | DOMINF_SHUTDOWN, 0), "---s-d");
    assert_eq!(letters(u32::MAX, SHUTDOWN_CRASH), "rbp-cd");
}

#[test]
fn list_lines() {
    assert_eq!(
        format!("{ListHeader}"),
        "Name                                        ID   Mem VCPUs     State    Time(s)"
    );
    let lines: Vec<_> = [
        dom(0, "whatever", DOMINF_PRIVILEGED | DOMINF_RUNNING),
        dom(3, "hello", DOMINF_BLOCKED),
    ]
    .iter()
    .map(|d| format!("{}", ListLine(d)))
    .collect();
    assert_eq!(
        lines,
        [
            "Domain-0                                     0   128     1     r-----       1.2",
            "hello                                        3   128     1     -b----       1.2",
        ]
    );
    // Hostile names: control characters escaped, invalid UTF-8 replaced, no NUL.
    let mut d = dom(4, "a\x1b[2Jb", 0);
    assert!(format!("{}", ListLine(&d)).starts_with("a\\x1b[2Jb "));
    d.name = [0xff; 32];
    assert!(format!("{}", ListLine(&d)).starts_with('\u{fffd}'));
    // Large numbers keep their columns' order.
    let mut big = dom(32767, "big", 0);
    big.tot_pages = u64::MAX;
    big.cpu_time_ns = u64::MAX;
    big.max_vcpus = u32::MAX;
    let line = format!("{}", ListLine(&big));
    assert!(line.ends_with("18446744073.7"), "{line}");
}

#[test]
fn reasons() {
    assert_eq!(format!("{}", ReasonWord(0)), "poweroff");
    assert_eq!(format!("{}", ReasonWord(1)), "reboot");
    assert_eq!(format!("{}", ReasonWord(3)), "crash");
    assert_eq!(format!("{}", ReasonWord(5)), "soft_reset");
    assert_eq!(format!("{}", ReasonWord(77)), "reason 77");
}
