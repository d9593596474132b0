//! Tests of the QEMU command line, the exit statuses and the scripted runner (with shell
//! scripts standing in for QEMU).

use super::*;

fn kernel_config(modules: Vec<Module>) -> QemuConfig {
    QemuConfig {
        nic: None,
        boot: Boot::Kernel {
            kernel: PathBuf::from("/w/target/boot/microkernel.elf32"),
            xen_cmdline: "loglvl=all".into(),
            modules,
        },
        memory_mib: 256,
        cpus: crate::qemu::DEFAULT_CPUS,
        accel: Accel::Tcg,
        serial: Serial::Stdio,
        disk: None,
    }
}

fn value_after<'a>(args: &'a [String], flag: &str) -> &'a str {
    let at = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    &args[at + 1]
}

#[test]
fn kernel_command_line() {
    let modules = vec![
        Module {
            path: "/w/k/dom0".into(),
            cmdline: "console=hvc0 answer=42".into(),
        },
        Module::named(Path::new("/w/k/hello")),
        Module::named(Path::new("/w/k/abi-test")),
    ];
    let args = kernel_config(modules).args().unwrap();
    let joined = args.join(" ");
    assert!(joined.starts_with(
        "-machine pc -cpu max -display none -no-reboot -nic none -mem-prealloc \
         -device isa-debug-exit,iobase=0xf4,iosize=0x04 -m 256 -smp 2 -accel tcg -serial stdio"
    ));
    assert_eq!(
        value_after(&args, "-kernel"),
        "/w/target/boot/microkernel.elf32"
    );
    assert_eq!(value_after(&args, "-append"), "loglvl=all");
    assert_eq!(
        value_after(&args, "-initrd"),
        "/w/k/dom0 console=hvc0 answer=42,/w/k/hello hello,/w/k/abi-test abi-test"
    );
    assert!(!args.contains(&"-cdrom".to_string()));
}

#[test]
fn commas_are_doubled_in_initrd() {
    let modules = vec![Module {
        path: "/w/dom0".into(),
        cmdline: "a=1,2".into(),
    }];
    let args = kernel_config(modules).args().unwrap();
    assert_eq!(value_after(&args, "-initrd"), "/w/dom0 a=1,,2");
}

#[test]
fn module_without_cmdline_and_no_modules() {
    let modules = vec![Module {
        path: "/w/dom0".into(),
        cmdline: String::new(),
    }];
    assert_eq!(
        value_after(&kernel_config(modules).args().unwrap(), "-initrd"),
        "/w/dom0"
    );
    assert!(!kernel_config(vec![])
        .args()
        .unwrap()
        .contains(&"-initrd".to_string()));
}

#[test]
fn module_path_with_space_is_refused() {
    let modules = vec![Module::named(Path::new("/my dir/dom0"))];
    assert!(kernel_config(modules).args().is_err());
}

#[test]
fn iso_kvm_and_monitor() {
    let config = QemuConfig {
        nic: None,
        boot: Boot::Iso("/w/target/boot/microkernel.iso".into()),
        memory_mib: 512,
        cpus: crate::qemu::DEFAULT_CPUS,
        accel: Accel::Kvm,
        serial: Serial::MonitorAndStdio,
        disk: None,
    };
    let args = config.args().unwrap();
    assert_eq!(
        value_after(&args, "-cdrom"),
        "/w/target/boot/microkernel.iso"
    );
    assert_eq!(value_after(&args, "-accel"), "kvm");
    assert_eq!(value_after(&args, "-serial"), "mon:stdio");
    assert_eq!(value_after(&args, "-m"), "512");
    assert!(!args.contains(&"-kernel".to_string()));
    assert!(!args.contains(&"-initrd".to_string()));
}

#[test]
fn the_instruction_clock_is_tcg_with_icount() {
    let config = QemuConfig {
        nic: None,
        boot: Boot::Iso("/w/target/boot/microkernel.iso".into()),
        memory_mib: 256,
        cpus: 1,
        accel: Accel::TcgInstructionClock,
        serial: Serial::Stdio,
        disk: None,
    };
    let args = config.args().unwrap();
    assert_eq!(value_after(&args, "-accel"), "tcg");
    assert_eq!(value_after(&args, "-icount"), "shift=3,align=off,sleep=off");
    let plain = QemuConfig { accel: Accel::Tcg, ..config };
    assert!(!plain.args().unwrap().contains(&"-icount".to_string()));
}

#[test]
fn exit_statuses_map_to_run_exit_codes() {
    let table = [
        (33, 0),
        (35, 2),
        (37, 3),
        (39, 4),
        (41, 5),
        (0, 1),
        (1, 1),
        (3, 1),
    ];
    for (status, code) in table {
        let exit = Exit::from_status(status);
        assert_eq!(exit.run_exit_code(), code, "status {status}");
        assert_eq!(exit.status(), status);
    }
    assert_eq!(Exit::from_status(35).describe(), "dom0 rebooted");
    assert!(Exit::from_status(7).describe().contains('7'));
}

#[test]
fn lines_keep_partial_last_line() {
    assert_eq!(split_lines("a\r\nb\ndom0> "), ["a", "b", "dom0> "]);
    assert_eq!(split_lines("a\n"), ["a"]);
    assert!(split_lines("").is_empty());
}

#[test]
fn prompt_counter_sees_prompts_across_reads() {
    let mut counter = PromptCounter {
        prompt: PROMPT.as_bytes().to_vec(),
        scanned: 0,
        seen: 0,
    };
    let mut buffer = b"boot\ndom".to_vec();
    counter.update(&buffer);
    assert_eq!(counter.seen, 0);
    buffer.extend_from_slice(b"0> info\ndom0> ");
    counter.update(&buffer);
    assert_eq!(counter.seen, 2);
    counter.update(&buffer);
    assert_eq!(counter.seen, 2, "no prompt counted twice");
}

fn bash(script: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-c", script]);
    cmd
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn scripted_input_follows_prompts() {
    // Input sent before the first prompt would be read by the first `read -t`.
    let script = r#"if read -t 1 early; then echo "early: $early"; fi
        printf 'dom0> '; read a; echo "got $a"
        printf 'dom0> '; read b; echo "got $b"; echo oops >&2; exit 33"#;
    let inputs = strings(&["info", "shutdown"]);
    let session = run_scripted(
        bash(script),
        PROMPT,
        &inputs,
        InputMode::AtPrompts,
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(
        session.lines(),
        ["dom0> got info", "dom0> got shutdown"],
        "{session:?}"
    );
    assert_eq!(session.status, Some(33));
    assert!(!session.timed_out);
    assert_eq!(session.stderr, "oops\n");
    let first = session.first_prompt.expect("prompt seen");
    assert!(
        first >= Duration::from_millis(900),
        "prompt after the early read: {first:?}"
    );
}

#[test]
fn upfront_input_is_written_at_once_then_closed() {
    // Nothing is read at a prompt: both lines are there before the first one, and then
    // stdin is at end of file (read's status 1; a timeout would give more than 128).
    let script = r#"read -t 5 a; read -t 5 b; read -t 5 c; echo "status $?"
        printf 'dom0> '; echo "got $a $b"; exit 33"#;
    let inputs = strings(&["info", "shutdown"]);
    let session = run_scripted(
        bash(script),
        PROMPT,
        &inputs,
        InputMode::Upfront,
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(
        session.lines(),
        ["status 1", "dom0> got info shutdown"],
        "{session:?}"
    );
    assert_eq!(session.status, Some(33));
}

#[test]
fn timeout_kills_and_keeps_output() {
    let start = Instant::now();
    let session = run_scripted(
        bash("echo a; printf 'dom0> '; exec sleep 30"),
        PROMPT,
        &[],
        InputMode::AtPrompts,
        Duration::from_secs(1),
    )
    .unwrap();
    assert!(session.timed_out);
    assert_eq!(session.status, None);
    assert_eq!(session.lines(), ["a", "dom0> "]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn timeout_with_a_grandchild_holding_stdout() {
    // sh forks sleep, which keeps the pipe open after sh is killed: the drain is bounded.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo a; sleep 6; echo b"]);
    let start = Instant::now();
    let session = run_scripted(
        cmd,
        PROMPT,
        &[],
        InputMode::AtPrompts,
        Duration::from_millis(500),
    )
    .unwrap();
    assert!(session.timed_out);
    assert_eq!(session.lines(), ["a"]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn unanswered_inputs_and_exit_status() {
    // The process ends before prompting: nothing is sent, the status is kept.
    let inputs = strings(&["never sent"]);
    let session = run_scripted(
        bash("echo done; exit 37"),
        PROMPT,
        &inputs,
        InputMode::AtPrompts,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(session.status, Some(37));
    assert_eq!(session.lines(), ["done"]);
    assert!(session.first_prompt.is_none());
}

#[test]
fn missing_program_is_an_error() {
    let cmd = Command::new("surely-no-such-qemu-binary");
    assert!(run_scripted(
        cmd,
        PROMPT,
        &[],
        InputMode::AtPrompts,
        Duration::from_secs(1)
    )
    .is_err());
}

#[test]
fn wait_for_holds_back_the_next_line() {
    // The second prompt comes at once, but the line after the wait is only typed once
    // "ready" is printed: `read -t 0` finds no input waiting before that.
    let script = r#"printf 'dom0> '; read a; echo "got $a"; printf 'dom0> '; sleep 0.5
        if read -t 0; then echo early; fi; echo "ready now"; read b; echo "got $b"; exit 33"#;
    let inputs = vec![
        "first".to_string(),
        format!("{WAIT_FOR}^dom0> ready"),
        "second".to_string(),
    ];
    let session = run_scripted(
        bash(script),
        PROMPT,
        &inputs,
        InputMode::AtPrompts,
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(
        session.lines(),
        ["dom0> got first", "dom0> ready now", "got second"],
        "{session:?}"
    );
    assert_eq!(session.stalled_at, None);
}

#[test]
fn wait_for_looks_only_after_the_previous_line() {
    // "ready" printed before the line is typed does not count; the one after it does.
    let script = r#"echo ready 0; printf 'dom0> '; read a; sleep 0.3; echo "ready 1"
        printf 'dom0> '; read b; echo "got $b"; exit 33"#;
    let inputs = vec![
        "first".to_string(),
        format!("{WAIT_FOR}ready"),
        "second".to_string(),
    ];
    let session = run_scripted(
        bash(script),
        PROMPT,
        &inputs,
        InputMode::AtPrompts,
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(
        session.lines(),
        ["ready 0", "dom0> ready 1", "dom0> got second"]
    );
}

#[test]
fn sleep_lets_time_pass_before_the_next_line() {
    let script = r#"printf 'dom0> '; read a; s=$(date +%s%N); printf 'dom0> '; read b
        e=$(date +%s%N); echo "waited $(( (e - s) / 1000000 )) ms for $b"; exit 33"#;
    let inputs = vec![
        "first".to_string(),
        format!("{SLEEP_MS}400"),
        "second".to_string(),
    ];
    let session = run_scripted(
        bash(script),
        PROMPT,
        &inputs,
        InputMode::AtPrompts,
        Duration::from_secs(20),
    )
    .unwrap();
    let last = session.lines().pop().unwrap();
    let ms: u64 = last
        .trim_start_matches("dom0> dom0> waited ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{last:?}"));
    assert!(ms >= 380, "{last}");
    assert!(last.ends_with("for second"), "{last}");
}

#[test]
fn an_unmet_wait_is_reported_and_bad_steps_are_refused() {
    let inputs = vec![format!("{WAIT_FOR}never"), "unsent".to_string()];
    let session = run_scripted(
        bash("printf 'dom0> '; sleep 5"),
        PROMPT,
        &inputs,
        InputMode::AtPrompts,
        Duration::from_millis(500),
    )
    .unwrap();
    assert!(session.timed_out);
    assert_eq!(
        session.stalled_at.as_deref(),
        Some("waiting for a line matching `never`")
    );
    for bad in [
        format!("{WAIT_FOR}("),
        format!("{SLEEP_MS}soon"),
        "\0nap 3".to_string(),
    ] {
        let run = run_scripted(
            bash("exit 33"),
            PROMPT,
            std::slice::from_ref(&bad),
            InputMode::AtPrompts,
            Duration::from_secs(5),
        );
        assert!(run.is_err(), "{bad:?}");
    }
    let upfront = run_scripted(
        bash("exit 33"),
        PROMPT,
        &[format!("{SLEEP_MS}1")],
        InputMode::Upfront,
        Duration::from_secs(5),
    );
    assert!(upfront.is_err());
}

#[test]
fn raw_keys_go_out_at_once_without_a_prompt() {
    // After one prompt, the script reads a raw line with no prompt before it (as a guest
    // attached with `xl console` does), then one byte (Ctrl-]), then prompts again.
    let script = r#"printf 'dom0> '; read a; echo "attached to $a"; read b; echo "guest got $b"
        c=$(dd bs=1 count=1 2>/dev/null | od -An -tx1 | tr -d ' '); echo "key $c"
        printf 'dom0> '; read d; echo "then $d"; exit 33"#;
    let inputs = vec![
        "console".to_string(),
        format!("{WAIT_FOR}attached to console$"),
        format!("{TYPE_RAW}hello\n"),
        format!("{WAIT_FOR}^guest got hello$"),
        format!("{TYPE_RAW}\x1d"),
        "list".to_string(),
    ];
    let session = run_scripted(
        bash(script),
        PROMPT,
        &inputs,
        InputMode::AtPrompts,
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(
        session.lines(),
        ["dom0> attached to console", "guest got hello", "key 1d", "dom0> then list"]
    );
}

#[test]
fn a_nic_is_user_networking_with_the_port_forwarded() {
    let mut config = kernel_config(Vec::new());
    config.nic = Some(NicForward { host: 18080, guest_port: 80 });
    let args = config.args().unwrap();
    let at = args.iter().position(|a| a == "-netdev").unwrap();
    assert_eq!(args[at + 1], "user,id=eth0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:18080-10.0.2.15:80");
    assert!(args.contains(&"virtio-net-pci,netdev=eth0,romfile=".to_string()));
    assert!(!kernel_config(Vec::new()).args().unwrap().contains(&"-netdev".to_string()));
}

#[test]
fn http_get_reports_the_status_and_body_as_lines() {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        assert_eq!(first, "GET /page HTTP/1.0\r\n");
        let mut s = s;
        s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nhi\nthere\n").unwrap();
    });
    assert_eq!(http_get(port, "/page"), "xtask: GET /page: HTTP/1.0 200 OK\nxtask: body: hi\nxtask: body: there\n");
    assert!(matches!(Step::parse(&format!("{HTTP_GET}{port} /x")), Ok(Step::HttpGet(p, path)) if p == port && path == "/x"));
    assert!(Step::parse(&format!("{HTTP_GET}/x")).is_err());
    // Nobody listening: a failure line, after the retries.
    let closed = free_port().unwrap();
    assert!(http_get(closed, "/").starts_with("xtask: GET / failed: "));
}
