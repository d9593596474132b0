//! The network figures of `cargo xtask bench`, from one boot with a NIC (QEMU's user
//! network, a host port forwarded to 10.0.2.15:80):
//!
//! - the host sends 32 MiB of the test pattern to a `netpeer` server at 10.0.2.15 through
//!   the forwarded port, the NIC, dom0's switch and netback (`net_tcp_host_to_guest`,
//!   host wall time, checked by the server's count);
//! - a `netpeer` client sends 5 streams of 16 MiB to another through the switch and
//!   prints, measured in the same boot, its baselines: the same stream over smoltcp's
//!   loopback inside the guest, grant copies of the same bytes, and ping round trips (see
//!   net-guests/src/bin/netpeer/bench.rs);
//! - where the CPU goes for one stream: the sender's (the client's figure), the
//!   receiver's (the server's lines) and dom0's (`xl list` before and after), each beside
//!   the loopback stream's CPU (both ends in one guest).
//!
//! The console is kept in target/bench/net.log.

use super::{guest_modules, parse_bench, Record};
use crate::build::Layout;
use crate::qemu::{free_port, run_scripted, Accel, Boot, InputMode, Module, NicForward, QemuConfig, Serial, Session, PROMPT, UPLOAD, WAIT_FOR};
use anyhow::{Context, Result};
use serde_json::Number;
use std::time::Duration;

/// Room for a loaded host.
pub const TIMEOUT: Duration = Duration::from_secs(240);
const MEMORY_MIB: u32 = 256;
/// What the host uploads.
const UPLOAD_BYTES: u64 = 32 << 20;

/// What the boot gave.
pub struct NetBench {
    /// The records.
    pub records: Vec<Record>,
    /// The client printed its `bench done`.
    pub done: bool,
    /// The console.
    pub session: Session,
}

use super::store::guest_lines;

/// The host-to-guest record from the upload line, if the server counted every byte.
fn upload_record(lines: &[String]) -> Option<Record> {
    let re = regex::Regex::new(r"^xtask: upload ([0-9]+) bytes in ([0-9]+) us: OK ([0-9]+) ").expect("valid regex");
    let caps = lines.iter().find_map(|l| re.captures(l))?;
    let (sent, us, counted): (u64, u64, u64) = (caps[1].parse().ok()?, caps[2].parse().ok()?, caps[3].parse().ok()?);
    if sent != counted || us == 0 {
        return None;
    }
    let mbs = (sent as f64 / us as f64 * 100.0).round() / 100.0;
    Some(Record::plain("net_tcp_host_to_guest", Number::from_f64(mbs)?, "MB/s"))
}

/// Streams the client sends (netpeer's `ROUNDS`).
const ROUNDS: u64 = 5;

/// The receiver's CPU per stream (the median of the server's `CPU N us`) and dom0's (its
/// `Time(s)` in the `xl list` before the server was made and at the end, over the
/// streams), each beside the client's loopback CPU figure.
fn cpu_records(lines: &[String], client: &[Record]) -> Result<Vec<Record>> {
    let Some(lo) = client.iter().find(|r| r.name == "net_tcp_sender_cpu").and_then(|r| r.baseline_value.clone()) else {
        return Ok(Vec::new());
    };
    let got = regex::Regex::new(r"^\[net-server\] netpeer: received [0-9]+ bytes .*; CPU ([0-9]+) us;").expect("valid regex");
    let mut cpu: Vec<u64> = lines.iter().filter_map(|l| got.captures(l)?[1].parse().ok()).collect();
    let mut out = Vec::new();
    if !cpu.is_empty() {
        cpu.sort_unstable();
        out.push(format!("BENCH net_tcp_receiver_cpu {} us net_tcp_loopback_cpu {lo}", cpu[cpu.len() / 2]));
    }
    let dom0 = regex::Regex::new(r"^Domain-0\s+0\s+\S+\s+\S+\s+\S+\s+([0-9.]+)\s*$").expect("valid regex");
    let times: Vec<f64> = lines.iter().filter_map(|l| dom0.captures(l)?[1].parse().ok()).collect();
    if let (Some(first), Some(last)) = (times.first(), times.last()) {
        if times.len() >= 2 {
            let us = ((last - first) * 1e6 / ROUNDS as f64).round() as u64;
            out.push(format!("BENCH net_tcp_dom0_cpu {us} us net_tcp_loopback_cpu {lo}"));
        }
    }
    Ok(parse_bench(&out)?.0)
}

/// Boots dom0 with the NIC and the netpeer guests, runs the transfers, shuts down.
pub fn run(layout: &Layout, accel: Accel) -> Result<NetBench> {
    let mut modules = vec![Module::named(&layout.kernel("dom0"))];
    modules.extend(guest_modules(layout, "netpeer", &["net-bench-up.cfg", "net-bench-server.cfg", "net-bench-client.cfg"])?);
    let port = free_port()?;
    let config = QemuConfig {
        boot: Boot::Kernel { kernel: layout.microkernel_elf32(), xen_cmdline: String::new(), modules },
        memory_mib: MEMORY_MIB,
        cpus: crate::qemu::DEFAULT_CPUS,
        accel,
        serial: Serial::Stdio,
        disk: None,
        nic: Some(NicForward { host: port, guest_port: 80 }),
    };
    let inputs = [
        "xl create net-bench-up.cfg".to_string(),
        format!(r"{WAIT_FOR}\[net-up\] netpeer: listening on port 80"),
        format!("{UPLOAD}{port} {UPLOAD_BYTES}"),
        "xl list".to_string(),
        "xl create net-bench-server.cfg".to_string(),
        format!(r"{WAIT_FOR}\[net-server\] netpeer: listening on port 5001"),
        "xl create net-bench-client.cfg".to_string(),
        format!(r"{WAIT_FOR}\[net-client\] netpeer: (bench done|the transfer did not complete|.* does not answer|role=)"),
        "xl list".to_string(),
        "shutdown".to_string(),
    ];
    let session = run_scripted(config.command()?, PROMPT, &inputs, InputMode::AtPrompts, TIMEOUT).context("the network bench boot")?;
    let log = layout.target.join("bench").join("net.log");
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&log, &session.output).with_context(|| format!("writing {}", log.display()))?;
    let lines = session.lines();
    let (mut records, _) = parse_bench(&guest_lines(&lines, "net-client"))?;
    let done = lines.iter().any(|l| l.contains("[net-client] netpeer: bench done"));
    records.extend(cpu_records(&lines, &records)?);
    match upload_record(&lines) {
        Some(r) => records.insert(0, r),
        None => eprintln!("xtask: the host's upload did not complete: {}", lines.iter().find(|l| l.starts_with("xtask: upload")).map_or("no line", |l| l.as_str())),
    }
    Ok(NetBench { records, done, session })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_the_receivers_and_dom0s_cpu_beside_the_loopbacks() {
        let lines: Vec<String> = [
            "Domain-0                                     0    60     1     r-----       1.5",
            "[net-server] netpeer: received 16777216 bytes from 10.0.2.21:1, pattern ok, fnv 9b; CPU 300000 us; vif 0 so far: 1 frames out, 2 in, 3 waits",
            "[net-server] netpeer: received 16777216 bytes from 10.0.2.21:2, pattern ok, fnv 9b; CPU 100000 us; vif 0 so far: 1 frames out, 2 in, 3 waits",
            "[net-server] netpeer: received 16777216 bytes from 10.0.2.21:3, pattern ok, fnv 9b; CPU 200000 us; vif 0 so far: 1 frames out, 2 in, 3 waits",
            "Domain-0                                     0    60     1     r-----       3.5",
        ]
        .map(String::from)
        .to_vec();
        let (client, _) = parse_bench(&["BENCH net_tcp_sender_cpu 250000 us net_tcp_loopback_cpu 400000".to_string()]).unwrap();
        let r = cpu_records(&lines, &client).unwrap();
        let got: Vec<(&str, Option<u64>, Option<u64>)> = r.iter().map(|r| (r.name.as_str(), r.value.as_u64(), r.baseline_value.as_ref().and_then(|b| b.as_u64()))).collect();
        assert_eq!(got, vec![("net_tcp_receiver_cpu", Some(200000), Some(400000)), ("net_tcp_dom0_cpu", Some(400000), Some(400000))]);
        // Without the client's figure there is no baseline, and no record.
        assert!(cpu_records(&lines, &[]).unwrap().is_empty());
    }

    #[test]
    fn reads_the_upload_and_the_clients_lines() {
        let lines: Vec<String> = [
            "xtask: upload 1000000 bytes in 500000 us: OK 1000000 0123456789abcdef",
            "[net-client] BENCH net_tcp_guest_to_guest 21.50 MB/s net_tcp_loopback 40.00",
            "[net-server] BENCH not_this_one 1 x",
        ]
        .map(String::from)
        .to_vec();
        let r = upload_record(&lines).unwrap();
        assert_eq!((r.name.as_str(), r.value.as_f64()), ("net_tcp_host_to_guest", Some(2.0)));
        let (records, _) = parse_bench(&guest_lines(&lines, "net-client")).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].ratio.map(|r| (r * 1000.0).round()), Some(538.0));
        // A short count is no figure.
        assert!(upload_record(&["xtask: upload 1000 bytes in 5 us: OK 999 0".to_string()]).is_none());
    }
}
