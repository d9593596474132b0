//! Tests of the config parser: xl syntax, the keys, defaults, and hostile input.

extern crate std;

use super::*;
use std::format;
use std::string::String;
use std::vec::Vec;

fn ok(text: &str) -> Parsed {
    parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
}

/// The error line as the user sees it, for a file named `t.cfg`.
fn err(text: &[u8]) -> String {
    match parse(text) {
        Ok(p) => panic!("{:?} parsed: {p:?}", String::from_utf8_lossy(text)),
        Err(e) => format!("{}", e.in_file("t.cfg")),
    }
}

#[test]
fn minimal_config_takes_the_defaults() {
    let p = ok("name = \"hello\"\nkernel = \"hello\"\n");
    assert_eq!(
        p.config,
        Config {
            name: "hello".into(),
            kernel: "hello".into(),
            ramdisk: None,
            memory_mib: 128,
            maxmem_mib: 128,
            vcpus: 1,
            cmdline: String::new(),
            on_poweroff: StopAction::Destroy,
            on_crash: StopAction::Destroy,
            max_event_channels: 1023,
            max_grant_frames: 0,
            max_maptrack_frames: 0,
            weight: None,
            cap: None,
            rtds: None,
            cpus: None,
            disks: Vec::new(),
            vifs: Vec::new(),
        }
    );
    assert!(p.warnings.is_empty());
    assert_eq!(p.config.nr_pages(), 128 * 256);
    let p = ok("name = \"hello\"\nkernel = \"hello\"\nmax_event_channels = 40\n");
    assert_eq!(p.config.max_event_channels, 40);
    let p = ok("name = \"hello\"\nkernel = \"hello\"\nmax_grant_frames = 4\nmax_maptrack_frames = 0x10\n");
    assert_eq!((p.config.max_grant_frames, p.config.max_maptrack_frames), (4, 16));
    assert!(p.warnings.is_empty(), "xl's grant keys are known");
}

#[test]
fn a_full_xl_config() {
    let text = "# A guest\n\
        name = 'web'   # trailing comment\n\
        kernel = \"kernels/web\"\n\
        ramdisk = \"web.initrd\"\n\
        memory = 0x40\n\
        maxmem = 96; vcpus = 2\n\
        cmdline = \"console=hvc0 quiet\\tx=\\\"y\\\" \\x41\"\n\
        on_poweroff = \"preserve\"\n\
        on_crash = preserve\n\
        disk = [ 'phy:vda2,xvda,w',\n\
                 'vdb,raw,xvdb,r', ]\n\
        vif = [ ]\n\
        type = \"pv\"\n";
    let p = ok(text);
    let c = &p.config;
    assert_eq!(c.name, "web");
    assert_eq!(c.kernel, "kernels/web");
    assert_eq!(c.ramdisk.as_deref(), Some("web.initrd"));
    assert_eq!((c.memory_mib, c.maxmem_mib, c.vcpus), (64, 96, 2));
    assert_eq!(c.cmdline, "console=hvc0 quiet\tx=\"y\" A");
    assert_eq!(c.on_poweroff, StopAction::Preserve);
    assert_eq!(c.on_crash, StopAction::Preserve);
    assert_eq!(c.max_pages(), 96 * 256);
    assert_eq!(c.disks.iter().map(|d| (d.target.as_str(), d.devid, d.readonly)).collect::<Vec<_>>(), [("vda2", 51712, false), ("vdb", 51728, true)]);
    assert!(c.vifs.is_empty());
    // One warning per unknown key, with its line.
    let w: Vec<String> = p
        .warnings
        .iter()
        .map(|w| format!("{}", w.in_file("web.cfg")))
        .collect();
    assert_eq!(
        w,
        ["web.cfg:13: warning: unknown key 'type' ignored"]
    );
}

#[test]
fn root_and_extra_make_the_command_line_unless_cmdline_is_given() {
    let base = "name='a'\nkernel='k'\n";
    let p = ok(&format!(
        "{base}root = \"/dev/xvda1 ro\"\nextra = \"quiet\"\n"
    ));
    assert_eq!(p.config.cmdline, "root=/dev/xvda1 ro quiet");
    let p = ok(&format!("{base}extra = \"quiet\"\n"));
    assert_eq!(p.config.cmdline, "quiet");
    let p = ok(&format!("{base}extra = \"quiet\"\ncmdline = \"x\"\n"));
    assert_eq!(p.config.cmdline, "x");
    // The longest command line start_info holds, and one byte more.
    let long = "c".repeat(1023);
    assert_eq!(
        ok(&format!("{base}cmdline='{long}'")).config.cmdline.len(),
        1023
    );
    assert_eq!(
        err(format!("{base}cmdline='{long}c'").as_bytes()),
        "t.cfg:3: cmdline: 1024 bytes, longer than 1023"
    );
}

#[test]
fn bad_values_name_the_line_and_the_problem() {
    let base = "name = \"hello\"\nkernel = \"hello\"\n";
    let cases: &[(&str, &str)] = &[
        (
            "memory = \"lots\"",
            "t.cfg:3: memory: expected a number of MiB, got \"lots\"",
        ),
        (
            "memory = lots",
            "t.cfg:3: memory: expected a number of MiB, got lots",
        ),
        (
            "memory = 0",
            "t.cfg:3: memory: 0 MiB is out of range (1 to 1048576)",
        ),
        (
            "memory = 1048577",
            "t.cfg:3: memory: 1048577 MiB is out of range (1 to 1048576)",
        ),
        (
            "memory = [1]",
            "t.cfg:3: memory: expected a number of MiB, got a list",
        ),
        (
            "memory = 99999999999999999999999",
            "t.cfg:3: '99999999999999999999999' is too large",
        ),
        ("memory = 12abc", "t.cfg:3: '12abc' is not a number"),
        (
            "memory = 64\nmaxmem = 32",
            "t.cfg:4: maxmem: 32 MiB is less than memory (64 MiB)",
        ),
        (
            "vcpus = 0",
            "t.cfg:3: vcpus: expected a number from 1 to 32, got 0",
        ),
        (
            "vcpus = 33",
            "t.cfg:3: vcpus: expected a number from 1 to 32, got 33",
        ),
        (
            "vcpus = \"2\"",
            "t.cfg:3: vcpus: expected a number from 1 to 32, got \"2\"",
        ),
        (
            "max_event_channels = 0",
            "t.cfg:3: max_event_channels: expected a number from 1 to 4095, got 0",
        ),
        (
            "max_event_channels = 4096",
            "t.cfg:3: max_event_channels: expected a number from 1 to 4095, got 4096",
        ),
        (
            "max_event_channels = 40\nmax_event_channels = 41",
            "t.cfg:4: max_event_channels: set again (first on line 3)",
        ),
        (
            "max_grant_frames = 0",
            "t.cfg:3: max_grant_frames: expected a number from 1 to 256, got 0",
        ),
        (
            "max_grant_frames = 257",
            "t.cfg:3: max_grant_frames: expected a number from 1 to 256, got 257",
        ),
        (
            "max_maptrack_frames = 1025",
            "t.cfg:3: max_maptrack_frames: expected a number from 1 to 1024, got 1025",
        ),
        (
            "max_maptrack_frames = \"8\"",
            "t.cfg:3: max_maptrack_frames: expected a number from 1 to 1024, got \"8\"",
        ),
        (
            "max_grant_frames = 2\nmax_grant_frames = 3",
            "t.cfg:4: max_grant_frames: set again (first on line 3)",
        ),
        (
            "on_crash = \"rename-restart\"",
            "t.cfg:3: on_crash: \"rename-restart\" is not supported here (destroy, preserve or restart)",
        ),
        (
            "on_poweroff = \"explode\"",
            "t.cfg:3: on_poweroff: expected destroy, preserve or restart, got \"explode\"",
        ),
        (
            "on_poweroff = 3",
            "t.cfg:3: on_poweroff: expected destroy, preserve or restart, got 3",
        ),
        (
            "cmdline = 5",
            "t.cfg:3: cmdline: expected a command line in quotes, got 5",
        ),
        (
            "ramdisk = \"\"",
            "t.cfg:3: ramdisk: \"\" is not a boot file name (1 to 255 printable characters)",
        ),
        (
            "memory = 64\nmemory = 32",
            "t.cfg:4: memory: set again (first on line 3)",
        ),
        (
            "memory += 64",
            "t.cfg:3: memory: '+=' only appends to lists",
        ),
    ];
    for (extra, want) in cases {
        assert_eq!(err(format!("{base}{extra}\n").as_bytes()), *want, "{extra}");
    }
}

#[test]
fn names_are_checked() {
    let with = |name: &str| format!("name = \"{name}\"\nkernel = \"k\"\n");
    assert_eq!(ok(&with("web-1.example_x")).config.name, "web-1.example_x");
    assert_eq!(ok(&with(&"n".repeat(31))).config.name.len(), 31);
    let cases: &[(&str, &str)] = &[
        ("", "t.cfg:1: name: \"\" is empty"),
        (&"n".repeat(32), "is longer than 31 characters"),
        ("two words", "may hold only printable ASCII without spaces"),
        ("tab\\there", "may hold only printable ASCII without spaces"),
        (
            "caf\\xc3\\xa9",
            "may hold only printable ASCII without spaces",
        ),
        (
            "42",
            "t.cfg:1: name: \"42\" is all digits, which would read as a domain id",
        ),
        ("Domain-0", "t.cfg:1: name: \"Domain-0\" is dom0's"),
    ];
    for (name, want) in cases {
        let e = err(with(name).as_bytes());
        assert!(e.contains(want), "{name:?}: {e}");
        assert!(e.starts_with("t.cfg:1: name: "), "{e}");
    }
    assert_eq!(
        err(b"name = hello\nkernel = 'k'"),
        "t.cfg:1: name: expected a domain name in quotes, got hello"
    );
}

#[test]
fn required_keys() {
    assert_eq!(err(b"kernel = 'k'\n"), "t.cfg: name: missing (required)");
    assert_eq!(err(b"name = 'n'\n"), "t.cfg: kernel: missing (required)");
    assert_eq!(err(b""), "t.cfg: name: missing (required)");
    assert_eq!(err(b"# only a comment"), "t.cfg: name: missing (required)");
}

#[test]
fn syntax_errors() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"name 'x'",
            "t.cfg:1: expected '=' after 'name', found \"x\"",
        ),
        (
            b"name =",
            "t.cfg:1: name: expected a value, found the end of the file",
        ),
        (
            b"name =\nkernel='k'",
            "t.cfg:1: name: expected a value, found the end of the line",
        ),
        (
            b"= 5",
            "t.cfg:1: expected a setting (key = value), found '='",
        ),
        (
            b"\n\n'x' = 5",
            "t.cfg:3: expected a setting (key = value), found \"x\"",
        ),
        (
            b"name = 'x' 'y'",
            "t.cfg:1: name: expected the end of the line after the value, found \"y\"",
        ),
        (b"name = \"abc", "t.cfg:1: unterminated string"),
        (b"name = 'abc\n'", "t.cfg:1: unterminated string"),
        (
            b"name = \"a\\qb\"",
            "t.cfg:1: unknown escape '\\' followed by 'q'",
        ),
        (b"name = \"a\\x4\"", "t.cfg:1: \\x needs two hex digits"),
        (b"name = \"a\\x00\"", "t.cfg:1: string holds a NUL"),
        (b"name = \"\xff\"", "t.cfg:1: string is not valid UTF-8"),
        (b"name = 'a' @", "t.cfg:1: unexpected '@'"),
        (b"\x00", "t.cfg:1: unexpected byte \\x00"),
        (b"\n\xc3\xa9 = 1", "t.cfg:2: unexpected byte \\xc3"),
        (
            b"disk = [ 'a' 'b' ]",
            "t.cfg:1: disk: expected ',' or ']' in the list, found \"b\"",
        ),
        (
            b"disk = [ 'a',\n 'b',\n",
            "t.cfg:1: disk: list is not closed with ']'",
        ),
        (
            b"disk = [ 'a'; ]",
            "t.cfg:1: disk: expected ',' or ']' in the list, found ';'",
        ),
        (
            b"disk = [ , ]",
            "t.cfg:1: disk: expected a value, found ','",
        ),
        (b"disk = ]", "t.cfg:1: disk: expected a value, found ']'"),
    ];
    for (text, want) in cases {
        assert_eq!(err(text), *want, "{:?}", String::from_utf8_lossy(text));
    }
}

#[test]
fn lists_nest_a_little_and_may_span_lines() {
    let p = ok("name='a'\nkernel='k'\nx = [ [1, 2], [ 'a', [ b ] ],\n\n ]\n");
    assert_eq!(p.warnings.len(), 1);
    let deep = format!("x = {}1{}\n", "[".repeat(8), "]".repeat(8));
    assert!(parse(format!("name='a'\nkernel='k'\n{deep}").as_bytes()).is_ok());
    let deeper = format!("x = {}1{}\n", "[".repeat(9), "]".repeat(9));
    assert_eq!(
        err(deeper.as_bytes()),
        "t.cfg:1: x: lists nested too deeply"
    );
    // A million brackets neither recurse nor take long.
    let hostile = "x = ".to_string() + &"[".repeat(1_000_000);
    assert_eq!(
        err(hostile.as_bytes()),
        "t.cfg:1: x: lists nested too deeply"
    );
}

#[test]
fn crlf_semicolons_and_comments() {
    let p = ok("name='a' ; kernel='k'\r\n# memory = 5\r\nmemory = 7 # memory = 9\r\n;;\n");
    assert_eq!(p.config.memory_mib, 7);
    // '#' inside a string is not a comment.
    assert_eq!(ok("name='a#b'\nkernel=\"k#\"").config.kernel, "k#");
}

#[test]
fn warnings_are_capped() {
    let mut text = String::from("name='a'\nkernel='k'\n");
    for i in 0..100 {
        text += &format!("unknown{i} = {i}\n");
    }
    let p = ok(&text);
    assert_eq!(p.warnings.len(), MAX_WARNINGS);
    assert_eq!(p.more_warnings, 100 - MAX_WARNINGS);
    assert_eq!(p.warnings[0].line, 3);
}

#[test]
fn control_characters_never_reach_the_terminal() {
    let e = err(b"name = 'a'\nkernel='k'\nmemory = \"\x1b[2J\"");
    assert_eq!(
        e,
        "t.cfg:3: memory: expected a number of MiB, got \"\\x1b[2J\""
    );
}

#[test]
fn random_garbage_never_panics() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // Bytes biased towards the ones the grammar cares about.
    let alphabet = b"name=kernel memory 0x12 ' \" [ ] , ; # \n \\ + - a 9 \xff \x00";
    for _ in 0..5000 {
        let len = (next() % 120) as usize;
        let text: Vec<u8> = (0..len)
            .map(|_| {
                if next() % 4 == 0 {
                    next() as u8
                } else {
                    alphabet[(next() % alphabet.len() as u64) as usize]
                }
            })
            .collect();
        match parse(&text) {
            Ok(p) => assert!(!p.config.name.is_empty() && !p.config.kernel.is_empty()),
            Err(e) => {
                let line = format!("{}", e.in_file("f"));
                assert!(!line.contains('\n'), "{line:?}");
                assert!(e.line.is_none_or(|l| l >= 1 && l <= text.len() + 1));
            }
        }
    }
}

#[test]
fn disks_from_a_list_and_appends() {
    let p = ok("name = \"g\"\nkernel = \"k\"\ndisk = [ 'phy:vda2,xvda,w',\n  'target=vdb, vdev=xvdb, access=r' ]\ndisk += [\"phy:vda3,xvdc\"]\n");
    let d = &p.config.disks;
    assert_eq!(d.len(), 3);
    assert_eq!((d[0].target.as_str(), d[0].vdev.as_str(), d[0].devid, d[0].readonly), ("vda2", "xvda", 51712, false));
    assert_eq!((d[1].target.as_str(), d[1].readonly), ("vdb", true));
    assert_eq!(d[2].vdev, "xvdc");
}

#[test]
fn bad_disks_name_their_line() {
    for (text, line, words) in [
        ("disk = [ 'phy:vda2,xvda,w',\n 'phy:vda3,hdz' ]\n", 4, "not a disk name"),
        ("disk = [ 'phy:vda2,xvda', 'phy:vda3,xvda' ]\n", 3, "xvda given twice"),
        ("disk = 'phy:vda2,xvda'\n", 3, "expected a list"),
        ("disk = [ 7 ]\n", 3, "quoted"),
        ("disk += [ 'phy:vda2,xvda' ]\n", 3, "before"),
        ("disk = []\ndisk = []\n", 4, "set twice"),
    ] {
        let e = parse(alloc::format!("name = \"g\"\nkernel = \"k\"\n{text}").as_bytes()).unwrap_err();
        assert_eq!(e.line, Some(line), "{text}: {e:?}");
        assert!(e.message.contains(words), "{text}: {}", e.message);
    }
}

#[test]
fn vifs_from_a_list_in_both_modes() {
    use super::vif::{default_mac, VifMode};
    let p = ok("name = \"g\"\nkernel = \"k\"\nvif = [ 'mac=00:16:3E:00:00:01,bridge=xenbr0',\n 'type=nat,ip=10.0.0.2' ]\nvif += ['ip=10.0.2.15 10.0.2.16, rate=10Mb/s@20ms, vifname=web0, model=e1000']\n");
    let v = &p.config.vifs;
    assert_eq!(v.len(), 3);
    assert_eq!((v[0].devid, v[0].mac, v[0].mode), (0, Some(xenbus::netif::Mac([0, 0x16, 0x3e, 0, 0, 1])), VifMode::Bridge));
    assert_eq!((v[1].devid, v[1].mac, v[1].mode, v[1].ips.as_slice()), (1, None, VifMode::Nat, &[[10, 0, 0, 2]][..]));
    assert_eq!(v[2].ips, [[10, 0, 2, 15], [10, 0, 2, 16]]);
    assert_eq!(v[2].rate, Some(crate::vswitch::Rate { bytes: 10 * 1024 * 1024 / 8 / 50, interval_us: 20_000 }));
    assert_eq!(default_mac(5, 1), xenbus::netif::Mac([0, 0x16, 0x3e, 0, 5, 1]));
    assert_eq!(ok("name = \"g\"\nkernel = \"k\"\nvif = [ 'script=vif-nat, ip=10.0.0.3' ]\n").config.vifs[0].mode, VifMode::Nat);
}

#[test]
fn bad_vifs_name_their_line() {
    for (text, line, words) in [
        ("vif = [ 'mac=00:16:3e:00:00:01',\n 'mac=00:16:3e:zz:00:01' ]\n", 4, "not six hex bytes"),
        ("vif = [ 'mac=01:16:3e:00:00:01' ]\n", 3, "multicast"),
        ("vif = [ 'mac=00:16:3e:00:00:01', 'mac=00:16:3e:00:00:01' ]\n", 3, "given twice"),
        ("vif = [ 'bridge=br1' ]\n", 3, "one bridge"),
        ("vif = [ 'type=nat' ]\n", 3, "needs its address"),
        ("vif = [ 'type=tap' ]\n", 3, "not vif, ioemu or nat"),
        ("vif = [ 'ip=10.0.0.300' ]\n", 3, "not an IPv4 address"),
        ("vif = [ 'rate=fast' ]\n", 3, "rate"),
        ("vif = [ 'colour=blue' ]\n", 3, "not a vif setting"),
        ("vif = [ 'mac' ]\n", 3, "key=value"),
        ("vif = [ 'ip=10.0.0.1,ip=10.0.0.2' ]\n", 3, "ip given twice"),
        ("vif = 'mac=00:16:3e:00:00:01'\n", 3, "expected a list"),
        ("vif += [ '' ]\n", 3, "before"),
        ("vif = []\nvif = []\n", 4, "set twice"),
    ] {
        let e = parse(alloc::format!("name = \"g\"\nkernel = \"k\"\n{text}").as_bytes()).unwrap_err();
        assert_eq!(e.line, Some(line), "{text}: {e:?}");
        assert!(e.message.contains(words), "{text}: {}", e.message);
    }
}

#[test]
fn edf_reservations_from_the_config() {
    let p = ok("name = \"a\"\nkernel = \"k\"\nperiod = 10000\nbudget = 2000\nextratime = 0\n");
    assert_eq!(p.config.rtds, Some((10_000, 2_000, false)));
    // Xen's defaults fill what is not given: a 10 ms period, a 4 ms budget, extra time.
    assert_eq!(ok("name = \"a\"\nkernel = \"k\"\nbudget = 500\n").config.rtds, Some((10_000, 500, true)));
    assert_eq!(ok("name = \"a\"\nkernel = \"k\"\nperiod = 2000\n").config.rtds, Some((2_000, 2_000, true)));
    assert_eq!(ok("name = \"a\"\nkernel = \"k\"\n").config.rtds, None);
    for (text, line, words) in [
        ("period = 5\n", 3, "too short"),
        ("budget = 20000\n", 3, "out of range"),
        ("period = 1000\nbudget = 5\n", 3, "out of range"),
        ("extratime = 2\n", 3, "0 or 1"),
        ("period = 'soon'\n", 3, "microseconds"),
        ("budget = 100\nbudget = 200\n", 4, "set again"),
    ] {
        let e = parse(alloc::format!("name = \"a\"\nkernel = \"k\"\n{text}").as_bytes()).unwrap_err();
        assert_eq!(e.line, Some(line), "{text}: {e:?}");
        assert!(e.message.contains(words), "{text}: {}", e.message);
    }
}

#[test]
fn cpus_pin_every_vcpu() {
    assert_eq!(ok("name = \"a\"\nkernel = \"k\"\ncpus = \"0-1\"\n").config.cpus, Some(0b11));
    assert_eq!(ok("name = \"a\"\nkernel = \"k\"\ncpus = \"1,3\"\n").config.cpus, Some(0b1010));
    assert_eq!(ok("name = \"a\"\nkernel = \"k\"\ncpus = 1\n").config.cpus, Some(0b10));
    assert_eq!(ok("name = \"a\"\nkernel = \"k\"\ncpus = \"all\"\n").config.cpus, Some(u64::MAX));
    for (text, says) in [
        ("cpus = \"2-1\"\n", "cpus: '2-1': the range runs backwards"),
        ("cpus = \"x\"\n", "cpus: 'x' is not a CPU number or range"),
        ("cpus = 64\n", "cpus: expected a CPU list such as \"0-1\", got 64"),
        ("cpus = \"1\"\ncpus = \"0\"\n", "cpus: set again (first on line 3)"),
    ] {
        let e = parse(format!("name = \"a\"\nkernel = \"k\"\n{text}").as_bytes()).unwrap_err();
        assert_eq!(e.message.as_str(), says, "{text}");
    }
}

#[test]
fn weight_and_cap_are_checked_as_libxl_does() {
    let p = ok("name = \"a\"\nkernel = \"k\"\nweight = 512\ncap = 25\n");
    assert_eq!((p.config.weight, p.config.cap), (Some(512), Some(25)));
    for (text, line, says) in [
        ("weight = 0\n", 3, "weight: expected a number from 1 to 65535, got 0"),
        ("weight = 65536\n", 3, "weight: expected a number from 1 to 65535, got 65536"),
        ("cap = \"half\"\n", 3, "cap: expected a percentage of one CPU (0 for none), got \"half\""),
        ("cap = 101\n", 3, "cap: 101 is out of range: from 0 to 100 for 1 vcpu(s)"),
        ("vcpus = 2\ncap = 201\n", 4, "cap: 201 is out of range: from 0 to 200 for 2 vcpu(s)"),
    ] {
        let e = parse(format!("name = \"a\"\nkernel = \"k\"\n{text}").as_bytes()).unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (Some(line), says), "{text}");
    }
    assert_eq!(ok("name = \"a\"\nkernel = \"k\"\nvcpus = 2\ncap = 200\n").config.cap, Some(200));
}
