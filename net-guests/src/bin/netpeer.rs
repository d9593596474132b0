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
/// Socket buffers each way.
const BUFFER: usize = 64 * 1024;

fn server(stack: &mut Stack, port: u16, count: u64) -> Result<(), String> {
    let h = stack.sockets.add(tcp_socket(BUFFER));
    let mut served = 0;
    while count == 0 || served < count {
        {
            let s = stack.sockets.get_mut::<tcp::Socket>(h);
            s.listen(port).map_err(|e| format!("listen on {port}: {e}"))?;
        }
        println!("{NAME}: listening on port {port}");
        let (mut got, mut sum, mut bad) = (0u64, FNV_START, None::<u64>);
        let mut peer = None;
        let mut answered = false;
        loop {
            stack.poll(NAME);
            let s = stack.sockets.get_mut::<tcp::Socket>(h);
            if peer.is_none() {
                peer = s.remote_endpoint();
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
                    None => println!("{NAME}: received {got} bytes from {from}, pattern ok, fnv {sum:016x}"),
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

fn ping(stack: &mut Stack, peer: Ipv4Address, count: u16) -> Result<(), String> {
    let rx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 2048]);
    let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 2048]);
    let h = stack.sockets.add(icmp::Socket::new(rx, tx));
    let ident = 0x4e50;
    stack.sockets.get_mut::<icmp::Socket>(h).bind(icmp::Endpoint::Ident(ident)).map_err(|e| format!("icmp bind: {e}"))?;
    let caps = smoltcp::phy::Device::capabilities(&stack.nf);
    let mut replies = 0;
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
                        println!("{NAME}: 64 bytes from {peer}: icmp_seq={seq_no} time={}.{:03} ms", us / 1000, us % 1000);
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
    Ok(())
}

fn client(stack: &mut Stack, peer: Ipv4Address, port: u16, bytes: u64, timeout_s: u64) -> Result<(), String> {
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
    println!("{NAME}: stream checked: {bytes} bytes, fnv {sum:016x}");
    Ok(())
}

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
            client(&mut stack, peer, port, bytes, num_arg(cmdline, "timeout", 10)?)
        }
        other => Err(format!("role={} is not server or client", other.unwrap_or("(none)"))),
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

pv_guest::entry!(main, heap = 4 << 20);
