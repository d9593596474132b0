//! netpeer: the network test guest. Over smoltcp on interface 0:
//!
//! - `role=server [port=5001] [count=N]`: accepts TCP connections one after another; checks
//!   each stream byte by byte against the test pattern, and when the client closes its
//!   side answers `OK <bytes> <fnv>` and closes. Prints a line per stream. After `count`
//!   streams (default: never) it powers off.
//! - `role=client peer=A.B.C.D [port=5001] [bytes=N] [ping=K] [timeout=S]`: pings the peer
//!   `ping` times (ICMP echo, round trips printed), then sends `bytes` of the pattern over
//!   one TCP connection, closes its side, waits for the server's answer and checks its
//!   count and checksum against its own. A peer that stops answering ends the connection
//!   after `timeout` seconds (default 10), which it reports, and it powers off either way.
//!
//! - `role=get peer=A.B.C.D [port=80] [path=/] [ping=K]`: pings the peer, then fetches
//!   `http://peer:port/path` (HTTP/1.0) and prints the status line and the body's lines.
//! - `role=hostile peer=A.B.C.D [victim=MAC,IP]`: pings the peer once, then misbehaves:
//!   frames naming grants it never made, an echo request from a forged MAC and one from a
//!   forged address (both the victim's), a broadcast storm, and at last a frame past the
//!   MTU, for which dom0 must disconnect it. It prints what came back of each.
//!
//! With `bench=1` the client measures the figures of `cargo xtask bench` and their
//! baselines in the same boot (see `bench.rs`) and prints them as `BENCH` lines.
//!
//! The address comes from `ip=`, the back end's `ip`, or DHCP (see the library).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;

use net_guests::{arg, fnv, ip, num_arg, parse_ipv4, pattern, tcp_socket, Stack, FNV_START};
use pv_guest::{println, start_info, ShutdownReason, StartInfo};
use smoltcp::socket::{icmp, tcp};
use smoltcp::time::Duration;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, Ipv4Address};

const NAME: &str = "netpeer";
/// Socket buffers each way (smoltcp scales its window to use them).
pub const BUFFER: usize = 64 * 1024;

fn server(stack: &mut Stack, port: u16, count: u64) -> Result<(), String> {
    let h = stack.sockets.add(tcp_socket(BUFFER));
    let mut served = 0;
    while count == 0 || served < count {
        {
            let s = stack.sockets.get_mut::<tcp::Socket>(h);
            s.set_ack_delay(Some(Duration::from_millis(1)));
            s.listen(port).map_err(|e| format!("listen on {port}: {e}"))?;
        }
        println!("{NAME}: listening on port {port}");
        let (mut got, mut sum, mut bad) = (0u64, FNV_START, None::<u64>);
        let mut peer = None;
        let mut answered = false;
        let mut cpu_start = None;
        loop {
            stack.poll(NAME);
            let s = stack.sockets.get_mut::<tcp::Socket>(h);
            if peer.is_none() {
                peer = s.remote_endpoint();
                cpu_start = peer.map(|_| net_guests::cpu_ns());
            }
            while s.can_recv() {
                let _ = s.recv(|buf| {
                    for (k, &b) in buf.iter().enumerate() {
                        if bad.is_none() && b != pattern(got + k as u64) {
                            bad = Some(got + k as u64);
                        }
                    }
                    sum = fnv(sum, buf);
                    got += buf.len() as u64;
                    (buf.len(), ())
                });
            }
            if !s.may_recv() && s.state() != tcp::State::Listen && !answered && s.may_send() {
                let line = format!("OK {got} {sum:016x}\n");
                let _ = s.send_slice(line.as_bytes());
                s.close();
                answered = true;
                let from = peer.map_or(String::from("?"), |p| format!("{p}"));
                match bad {
                    None => {
                        let st = stack.nf.stats;
                        let cpu_us = cpu_start.map_or(0, |t| net_guests::cpu_ns().saturating_sub(t) / 1000);
                        println!("{NAME}: received {got} bytes from {from}, pattern ok, fnv {sum:016x}; CPU {cpu_us} us; vif 0 so far: {} frames out, {} in, {} waits", st.tx_frames, st.rx_frames, st.waits);

                    }
                    Some(at) => println!("{NAME}: received {got} bytes from {from}, pattern BAD at byte {at}"),
                }
            }
            if !s.is_active() && s.state() == tcp::State::Closed {
                break;
            }
            if s.state() == tcp::State::Listen && peer.is_some() {
                break;
            }
            stack.wait(Duration::from_millis(100));
        }
        if !answered {
            let from = peer.map_or(String::from("?"), |p| format!("{p}"));
            println!("{NAME}: the stream from {from} ended after {got} bytes without a close: reset or timed out");
        }
        served += 1;
    }
    Ok(())
}

fn ping(stack: &mut Stack, peer: Ipv4Address, count: u16) -> Result<vec::Vec<u64>, String> {
    let rx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 2048]);
    let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 2048]);
    let h = stack.sockets.add(icmp::Socket::new(rx, tx));
    let ident = 0x4e50;
    stack.sockets.get_mut::<icmp::Socket>(h).bind(icmp::Endpoint::Ident(ident)).map_err(|e| format!("icmp bind: {e}"))?;
    let caps = smoltcp::phy::Device::capabilities(&stack.nf);
    let mut replies = 0;
    let mut rtts = vec::Vec::new();
    for seq_no in 0..count {
        let data = [0xa5u8; 56];
        let sent_at = net_guests::now();
        {
            let s = stack.sockets.get_mut::<icmp::Socket>(h);
            let repr = Icmpv4Repr::EchoRequest { ident, seq_no, data: &data };
            let buf = s.send(repr.buffer_len(), ip(peer)).map_err(|e| format!("icmp send: {e}"))?;
            repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps.checksum);
        }
        let deadline = sent_at + Duration::from_secs(2);
        let mut answered = false;
        while net_guests::now() < deadline && !answered {
            stack.poll(NAME);
            let s = stack.sockets.get_mut::<icmp::Socket>(h);
            while let Ok((payload, _)) = s.recv() {
                let Ok(packet) = Icmpv4Packet::new_checked(payload) else { continue };
                if let Ok(Icmpv4Repr::EchoReply { seq_no: got, .. }) = Icmpv4Repr::parse(&packet, &caps.checksum) {
                    if got == seq_no {
                        let us = (net_guests::now() - sent_at).total_micros();
                        if !QUIET.load(core::sync::atomic::Ordering::Relaxed) {
                            println!("{NAME}: 64 bytes from {peer}: icmp_seq={seq_no} time={}.{:03} ms", us / 1000, us % 1000);
                        }
                        rtts.push(us);
                        answered = true;
                        replies += 1;
                    }
                }
            }
            if !answered {
                stack.wait(Duration::from_millis(50));
            }
        }
        if !answered {
            println!("{NAME}: no reply from {peer} for icmp_seq={seq_no}");
        }
    }
    println!("{NAME}: ping {peer}: {count} sent, {replies} received");
    stack.sockets.remove(h);
    if replies == 0 {
        return Err(format!("{peer} does not answer pings"));
    }
    Ok(rtts)
}

/// Pings print no line each (the bench's twenty).
static QUIET: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn client(stack: &mut Stack, peer: Ipv4Address, port: u16, bytes: u64, timeout_s: u64) -> Result<u64, String> {
    let h = stack.sockets.add(tcp_socket(BUFFER));
    {
        let local = 49152 + (pv_guest::time::rdtsc() % 16384) as u16;
        let s = stack.sockets.get_mut::<tcp::Socket>(h);
        s.set_timeout(Some(Duration::from_secs(timeout_s)));
        s.set_nagle_enabled(false);
        s.connect(stack.iface.context(), (ip(peer), port), local).map_err(|e| format!("connect: {e}"))?;
    }
    let start = net_guests::now();
    let (mut sent, mut sum, mut closed) = (0u64, FNV_START, false);
    let mut answer = String::new();
    let mut established = false;
    let mut next_report = bytes / 4;
    loop {
        stack.poll(NAME);
        let s = stack.sockets.get_mut::<tcp::Socket>(h);
        if s.state() == tcp::State::Established && !established {
            established = true;
            println!("{NAME}: connected to {peer}:{port}");
        }
        while s.can_send() && sent < bytes {
            let n = s
                .send(|buf| {
                    let n = buf.len().min((bytes - sent) as usize);
                    for (k, b) in buf[..n].iter_mut().enumerate() {
                        *b = pattern(sent + k as u64);
                    }
                    sum = fnv(sum, &buf[..n]);
                    (n, n)
                })
                .unwrap_or(0);
            sent += n as u64;
            if n == 0 {
                break;
            }
        }
        if sent >= next_report && next_report > 0 && sent < bytes {
            println!("{NAME}: sent {} MiB", sent >> 20);
            next_report += bytes / 4;
        }
        if sent == bytes && !closed && s.send_queue() == 0 {
            s.close();
            closed = true;
        }
        while s.can_recv() {
            let _ = s.recv(|buf| {
                answer.push_str(&String::from_utf8_lossy(buf));
                (buf.len(), ())
            });
        }
        if !s.is_open() || (closed && !s.may_recv()) {
            break;
        }
        stack.wait(Duration::from_millis(100));
    }
    let ms = (net_guests::now() - start).total_millis().max(1);
    // Our last ACK (of the server's FIN) goes out before we leave.
    let linger = net_guests::now() + Duration::from_millis(500);
    while net_guests::now() < linger && !matches!(stack.sockets.get::<tcp::Socket>(h).state(), tcp::State::TimeWait | tcp::State::Closed) {
        stack.poll(NAME);
        stack.wait(Duration::from_millis(20));
    }
    stack.poll(NAME);
    let s = stack.sockets.get_mut::<tcp::Socket>(h);
    if !established || (sent < bytes && s.state() == tcp::State::Closed) || answer.is_empty() {
        println!("{NAME}: the connection to {peer}:{port} ended after {sent} bytes ({ms} ms): timed out or reset");
        return Err(String::from("the transfer did not complete"));
    }
    let want = format!("OK {bytes} {sum:016x}");
    let got = answer.trim();
    println!("{NAME}: sent {bytes} bytes in {ms} ms ({} KiB/s); server says \"{got}\"", bytes * 1000 / 1024 / ms);
    if got != want {
        return Err(format!("the server's count or checksum differs: expected \"{want}\""));
    }
    let st = stack.nf.stats;
    println!("{NAME}: stream checked: {bytes} bytes, fnv {sum:016x}; vif 0 so far: {} frames out, {} in, {} waits", st.tx_frames, st.rx_frames, st.waits);
    Ok(ms)
}

fn get(stack: &mut Stack, peer: Ipv4Address, port: u16, path: &str) -> Result<(), String> {
    let h = stack.sockets.add(tcp_socket(16 * 1024));
    {
        let local = 49152 + (pv_guest::time::rdtsc() % 16384) as u16;
        let s = stack.sockets.get_mut::<tcp::Socket>(h);
        s.set_timeout(Some(Duration::from_secs(10)));
        s.connect(stack.iface.context(), (ip(peer), port), local).map_err(|e| format!("connect: {e}"))?;
    }
    let request = format!("GET {path} HTTP/1.0\r\nHost: {peer}\r\n\r\n");
    let (mut sent, mut reply) = (false, vec::Vec::new());
    loop {
        stack.poll(NAME);
        let s = stack.sockets.get_mut::<tcp::Socket>(h);
        if !sent && s.can_send() {
            s.send_slice(request.as_bytes()).map_err(|e| format!("send: {e}"))?;
            sent = true;
        }
        while s.can_recv() {
            let _ = s.recv(|b| {
                reply.extend_from_slice(b);
                (b.len(), ())
            });
        }
        if sent && !s.may_recv() {
            s.close();
            break;
        }
        if !s.is_open() {
            break;
        }
        stack.wait(Duration::from_millis(100));
    }
    settle(stack, 100);
    if reply.is_empty() {
        return Err(format!("http://{peer}:{port}{path}: no answer"));
    }
    let text = String::from_utf8_lossy(&reply);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    println!("{NAME}: GET http://{peer}:{port}{path}: {}", head.lines().next().unwrap_or(""));
    for line in body.lines() {
        println!("{NAME}: body: {line}");
    }
    Ok(())
}

/// The IPv4 header checksum of `h`.
fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request from `src_mac`/`src_ip` to `dst_mac`/`dst_ip`, built by hand.
fn echo_frame(src_mac: [u8; 6], dst_mac: [u8; 6], src_ip: [u8; 4], dst_ip: [u8; 4]) -> vec::Vec<u8> {
    let mut f = vec::Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 28 + 8, 0, 1, 0, 0, 64, 1, 0, 0];
    ip.extend_from_slice(&src_ip);
    ip.extend_from_slice(&dst_ip);
    let c = ip_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8];
    let c = ip_checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&icmp);
    f
}

/// Waits `ms` while the stack runs.
fn settle(stack: &mut Stack, ms: u64) {
    let end = net_guests::now() + Duration::from_millis(ms);
    while net_guests::now() < end {
        stack.poll(NAME);
        stack.wait(Duration::from_millis(20));
    }
}

fn hostile(stack: &mut Stack, peer: Ipv4Address, victim: &str) -> Result<(), String> {
    use xenbus::netif::{NetifTxRequest, NETTXF_MORE_DATA};
    ping(stack, peer, 1)?;
    let (vmac, vip) = victim.split_once(',').ok_or("victim=MAC,IP is needed")?;
    let vmac = xenbus::netif::Mac::parse(vmac).ok_or("victim's MAC")?;
    let vip = parse_ipv4(vip).ok_or("victim's IP")?;
    let me = stack.address().ok_or("no address")?;
    let my_mac = stack.nf.mac.0;
    // Frames naming grants never made: each answered with an error, nothing else.
    let before = stack.nf.stats.tx_errors;
    let bogus: vec::Vec<NetifTxRequest> = (0..10).map(|i| NetifTxRequest { gref: 0xdead_0000 + i, offset: 0, flags: 0, id: 1000 + i as u16, size: 60 }).collect();
    stack.nf.push_raw(&bogus).map_err(|e| format!("{e:?}"))?;
    settle(stack, 300);
    let _ = stack.nf.reap();
    println!("{NAME}: 10 frames naming bad grants: {} answered with errors", stack.nf.stats.tx_errors - before);
    // The peer's MAC, learned by the ping (smoltcp's neighbour cache is not public: a
    // broadcast destination reaches it all the same).
    let bcast = [0xff; 6];
    let forged_mac = echo_frame(vmac.0, bcast, me.octets(), peer.octets());
    let forged_ip = echo_frame(my_mac, bcast, vip.octets(), peer.octets());
    stack.nf.send(&forged_mac).map_err(|e| format!("{e:?}"))?;
    stack.nf.send(&forged_ip).map_err(|e| format!("{e:?}"))?;
    println!("{NAME}: sent an echo request from {vmac} (forged MAC) and one from {vip} (forged address)");
    // A broadcast storm: as fast as the ring takes frames.
    let storm = echo_frame(my_mac, bcast, me.octets(), [255, 255, 255, 255]);
    let mut sent = 0;
    let end = net_guests::now() + Duration::from_millis(1000);
    while net_guests::now() < end && sent < 5000 {
        match stack.nf.send(&storm) {
            Ok(()) => sent += 1,
            Err(_) => stack.nf.wait(0),
        }
    }
    println!("{NAME}: broadcast storm of {sent} frames sent");
    settle(stack, 200);
    // A frame past the MTU, in two slots: dom0 must drop the whole interface.
    let g1 = stack.nf.fill_tx_page(TX_RAW_PAGE, 0, &[0xee; 2000]).ok_or("no page")?;
    let g2 = stack.nf.fill_tx_page(TX_RAW_PAGE + 1, 0, &[0xee; 1000]).ok_or("no page")?;
    stack.nf.push_raw(&[
        NetifTxRequest { gref: g1, offset: 0, flags: NETTXF_MORE_DATA, id: 2000, size: 3000 },
        NetifTxRequest { gref: g2, offset: 0, flags: 0, id: 2001, size: 1000 },
    ])
    .map_err(|e| format!("{e:?}"))?;
    println!("{NAME}: sent a frame of 3000 bytes");
    let end = net_guests::now() + Duration::from_secs(5);
    loop {
        let state = stack.nf.back_state(&mut stack.xs);
        if matches!(state, Some(xenbus::state::XenbusState::Closing | xenbus::state::XenbusState::Closed)) {
            println!("{NAME}: the back end dropped us (state {})", state.map_or("?", |s| s.as_str()));
            return Ok(());
        }
        if net_guests::now() > end {
            return Err(String::from("the back end kept a front end that sent a frame past the MTU"));
        }
        settle(stack, 100);
    }
}

/// The transmit pages the hostile role writes by hand (the queue's own are in use).
const TX_RAW_PAGE: usize = pv_guest::netfront::TX_SLOTS - 2;

fn run(si: &'static StartInfo) -> Result<(), String> {
    let cmdline = start_info::cmdline(si);
    let mut stack = Stack::up(si, NAME)?;
    let addr = stack.wait_for_address(NAME, Duration::from_secs(10))?;
    let port = num_arg(cmdline, "port", 5001)? as u16;
    match arg(cmdline, "role") {
        Some("server") => {
            println!("{NAME}: up at {addr}");
            server(&mut stack, port, num_arg(cmdline, "count", 0)?)
        }
        Some("client") => {
            let peer = arg(cmdline, "peer").and_then(parse_ipv4).ok_or("peer=A.B.C.D is needed")?;
            println!("{NAME}: up at {addr}");
            let pings = num_arg(cmdline, "ping", 3)? as u16;
            if pings > 0 {
                ping(&mut stack, peer, pings)?;
            }
            let bytes = num_arg(cmdline, "bytes", 1 << 20)?;
            if arg(cmdline, "bench") == Some("1") {
                return bench::run(&mut stack, peer, port, bytes);
            }
            client(&mut stack, peer, port, bytes, num_arg(cmdline, "timeout", 10)?).map(|_| ())
        }
        Some("get") => {
            let peer = arg(cmdline, "peer").and_then(parse_ipv4).ok_or("peer=A.B.C.D is needed")?;
            println!("{NAME}: up at {addr}");
            let pings = num_arg(cmdline, "ping", 0)? as u16;
            if pings > 0 {
                ping(&mut stack, peer, pings)?;
            }
            get(&mut stack, peer, num_arg(cmdline, "port", 80)? as u16, arg(cmdline, "path").unwrap_or("/"))
        }
        Some("hostile") => {
            let peer = arg(cmdline, "peer").and_then(parse_ipv4).ok_or("peer=A.B.C.D is needed")?;
            println!("{NAME}: up at {addr}");
            hostile(&mut stack, peer, arg(cmdline, "victim").unwrap_or(""))
        }
        other => Err(format!("role={} is not server, client, get or hostile", other.unwrap_or("(none)"))),
    }
}

fn main(si: &'static StartInfo) -> ShutdownReason {
    match run(si) {
        Ok(()) => {
            println!("{NAME}: done");
            ShutdownReason::Poweroff
        }
        Err(e) => {
            println!("{NAME}: {e}");
            ShutdownReason::Crash
        }
    }
}

mod bench;

pv_guest::entry!(main, heap = 8 << 20);
