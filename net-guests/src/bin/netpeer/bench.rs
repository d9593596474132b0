//! netpeer's `bench=1`: the figures of `cargo xtask bench` that need a guest, each beside
//! a baseline measured in the same boot (under TCG only ratios mean much):
//!
//! - `net_tcp_guest_to_guest` (MB/s, the stream the client just sent through dom0's
//!   switch) beside `net_tcp_loopback`: the same bytes over the same smoltcp stack on a
//!   loopback device inside this guest (same MTU, same software checksums, the same work
//!   per byte: the pattern and its FNV-1a sent, checked and summed received);
//! - `net_tcp_sender_cpu` (µs of this guest's vCPU for one stream, the median) beside
//!   `net_tcp_loopback_cpu` (the loopback stream's, both ends in this guest);
//! - `net_tcp_guest_to_guest` again beside `grant_copy_same_bytes`: the same bytes moved
//!   page by page with `GNTTABOP_copy` between two of this guest's pages (the copy netback
//!   does twice per frame);
//! - `net_rtt_guest_to_guest` (µs, the median of 20 pings through the switch) beside
//!   `net_rtt_loopback` (the same pings over the loopback device).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use hypercall_abi::grant_table::{GnttabCopy, GNTST_OKAY};
use net_guests::{fnv, now, pattern, tcp_socket, Stack, FNV_START};
use pv_guest::{grant, println};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Loopback, Medium};
use smoltcp::socket::{icmp, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, Ipv4Address};

use super::{ping, NAME, QUIET};

/// smoltcp's loopback with the netfront's capabilities (MTU 1514, software checksums), so
/// the baseline differs from the real path only by what lies between the two guests.
struct Lo {
    inner: Loopback,
    caps: DeviceCapabilities,
}

impl Device for Lo {
    type RxToken<'a> = <Loopback as Device>::RxToken<'a>;
    type TxToken<'a> = <Loopback as Device>::TxToken<'a>;

    fn receive(&mut self, t: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.inner.receive(t)
    }

    fn transmit(&mut self, t: Instant) -> Option<Self::TxToken<'_>> {
        self.inner.transmit(t)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

/// MB/s of `bytes` in `us` microseconds, with two decimals.
fn mb_per_s(bytes: u64, us: u64) -> String {
    let hundredths = bytes as u128 * 100 * 1_000_000 / (us.max(1) as u128) / 1_000_000;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// `bytes` of the pattern from one socket to another over the loopback: µs taken.
fn loopback_stream(caps: DeviceCapabilities, bytes: u64) -> Result<u64, String> {
    let mut dev = Lo { inner: Loopback::new(Medium::Ethernet), caps };
    let mut iface = Interface::new(Config::new(HardwareAddress::Ethernet(EthernetAddress([0x02, 0, 0, 0, 0, 1]))), &mut dev, now());
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8));
    });
    let mut sockets = SocketSet::new(Vec::new());
    let server = sockets.add(tcp_socket(super::BUFFER));
    let client = sockets.add(tcp_socket(super::BUFFER));
    sockets.get_mut::<tcp::Socket>(server).listen(5002).map_err(|e| format!("{e}"))?;
    sockets.get_mut::<tcp::Socket>(client).connect(iface.context(), (IpAddress::v4(127, 0, 0, 1), 5002), 50000).map_err(|e| format!("{e}"))?;
    let start = now();
    let (mut sent, mut got, mut bad) = (0u64, 0u64, false);
    // The same work per byte as the stream between two guests: the pattern and its
    // FNV-1a on the way out, the check and the FNV-1a on the way in.
    let (mut tx_sum, mut rx_sum) = (FNV_START, FNV_START);
    while got < bytes {
        iface.poll(now(), &mut dev, &mut sockets);
        let c = sockets.get_mut::<tcp::Socket>(client);
        while c.can_send() && sent < bytes {
            let n = c
                .send(|buf| {
                    let n = buf.len().min((bytes - sent) as usize);
                    for (k, b) in buf[..n].iter_mut().enumerate() {
                        *b = pattern(sent + k as u64);
                    }
                    tx_sum = fnv(tx_sum, &buf[..n]);
                    (n, n)
                })
                .unwrap_or(0);
            sent += n as u64;
            if n == 0 {
                break;
            }
        }
        let s = sockets.get_mut::<tcp::Socket>(server);
        while s.can_recv() {
            let _ = s.recv(|buf| {
                bad |= buf.iter().enumerate().any(|(k, &b)| b != pattern(got + k as u64));
                rx_sum = fnv(rx_sum, buf);
                got += buf.len() as u64;
                (buf.len(), ())
            });
        }
        if (now() - start) > Duration::from_secs(120) {
            return Err(format!("the loopback stream stalled at {got} bytes"));
        }
    }
    if bad || tx_sum != rx_sum {
        return Err(String::from("the loopback stream came back different"));
    }
    Ok((now() - start).total_micros())
}

/// The median round trip of `count` pings to 127.0.0.1 over the loopback, µs.
fn loopback_rtt(caps: DeviceCapabilities, count: u16) -> Result<u64, String> {
    let mut dev = Lo { inner: Loopback::new(Medium::Ethernet), caps: caps.clone() };
    let mut iface = Interface::new(Config::new(HardwareAddress::Ethernet(EthernetAddress([0x02, 0, 0, 0, 0, 1]))), &mut dev, now());
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8));
    });
    let mut sockets = SocketSet::new(Vec::new());
    let rx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]);
    let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]);
    let h = sockets.add(icmp::Socket::new(rx, tx));
    sockets.get_mut::<icmp::Socket>(h).bind(icmp::Endpoint::Ident(7)).map_err(|e| format!("{e}"))?;
    let mut rtts = Vec::new();
    for seq_no in 0..count {
        let data = [0xa5u8; 56];
        let start = now();
        {
            let s = sockets.get_mut::<icmp::Socket>(h);
            let repr = Icmpv4Repr::EchoRequest { ident: 7, seq_no, data: &data };
            let buf = s.send(repr.buffer_len(), IpAddress::Ipv4(Ipv4Address::new(127, 0, 0, 1))).map_err(|e| format!("{e}"))?;
            repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps.checksum);
        }
        loop {
            iface.poll(now(), &mut dev, &mut sockets);
            let s = sockets.get_mut::<icmp::Socket>(h);
            if s.recv().is_ok() {
                rtts.push((now() - start).total_micros());
                break;
            }
            if (now() - start) > Duration::from_secs(2) {
                return Err(String::from("no loopback echo"));
            }
        }
    }
    rtts.sort_unstable();
    Ok(rtts[rtts.len() / 2])
}

/// `bytes` moved page by page with `GNTTABOP_copy` between two pages of this guest, 16
/// copies a call: µs taken.
fn grant_copy(mm: &pv_guest::mm::xen::GuestMm, bytes: u64) -> Result<u64, String> {
    let page = |_: u8| -> Result<(Vec<u8>, u64), String> {
        let v = vec![0x5au8; 8192];
        let va = v.as_ptr() as u64;
        let aligned = (va + 4095) & !4095;
        let mfn = mm.layout.pfn_of(aligned).and_then(|p| mm.p2m.mfn(p)).ok_or("a heap page has no frame")?;
        Ok((v, mfn.0))
    };
    let (_a, src) = page(0)?;
    let (_b, dst) = page(1)?;
    let op = GnttabCopy { source: grant::copy_local(src, 0), dest: grant::copy_local(dst, 0), len: 4096, flags: 0, status: 0, _pad: 0 };
    let start = now();
    let mut moved = 0u64;
    while moved < bytes {
        let mut ops = [op; 16];
        grant::copy(&mut ops).map_err(|e| format!("grant copy: {e}"))?;
        if ops.iter().any(|o| o.status != GNTST_OKAY) {
            return Err(format!("grant copy: status {}", ops[0].status));
        }
        moved += 16 * 4096;
    }
    Ok((now() - start).total_micros())
}

/// Rounds of (stream through the switch, stream over the loopback), alternated so that a
/// slow stretch of the host weighs on both: the medians are reported.
const ROUNDS: usize = 5;

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Measures the figures and their baselines and prints the BENCH lines: `bytes` per
/// stream, to the server at `peer:port`.
pub fn run(stack: &mut Stack, peer: Ipv4Address, port: u16, bytes: u64) -> Result<(), String> {
    let caps = stack.nf.capabilities();
    let (mut g2g_us, mut lo_us) = (Vec::new(), Vec::new());
    let (mut g2g_cpu, mut lo_cpu) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let cpu = net_guests::cpu_ns();
        // The server listens again once its last stream closed: a connection refused
        // meanwhile is tried again.
        let mut ms = super::client(stack, peer, port, bytes, 10);
        for _ in 0..5 {
            if ms.is_ok() {
                break;
            }
            super::settle(stack, 200);
            ms = super::client(stack, peer, port, bytes, 10);
        }
        g2g_us.push(ms? * 1000);
        let cpu_lo = net_guests::cpu_ns();
        g2g_cpu.push((cpu_lo - cpu) / 1000);
        lo_us.push(loopback_stream(caps.clone(), bytes)?);
        lo_cpu.push((net_guests::cpu_ns() - cpu_lo) / 1000);
    }
    let g2g = mb_per_s(bytes, median(g2g_us));
    let lo = mb_per_s(bytes, median(lo_us));
    println!("BENCH net_tcp_guest_to_guest {g2g} MB/s net_tcp_loopback {lo}");
    // Where the time goes: this guest's CPU for one stream (the sender's side), beside the
    // loopback's (both sides); xtask puts the receiver's and dom0's beside them.
    println!("BENCH net_tcp_sender_cpu {} us net_tcp_loopback_cpu {}", median(g2g_cpu.clone()), median(lo_cpu.clone()));
    let copy = mb_per_s(bytes, grant_copy(&stack.mm, bytes)?);
    println!("BENCH net_tcp_guest_to_guest_vs_copy {g2g} MB/s grant_copy_same_bytes {copy}");
    QUIET.store(true, core::sync::atomic::Ordering::Relaxed);
    let mut rtts = ping(stack, peer, 20)?;
    rtts.sort_unstable();
    let rtt = rtts[rtts.len() / 2];
    let lo_rtt = loopback_rtt(caps, 20)?;
    println!("BENCH net_rtt_guest_to_guest {rtt} us net_rtt_loopback {lo_rtt}");
    println!("{NAME}: bench done");
    Ok(())
}
