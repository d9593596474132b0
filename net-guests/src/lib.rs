//! What the network guests share: the command line's `key=value` settings, and a TCP/IP
//! stack (smoltcp) over interface 0's netfront, with its address from the command line
//! (`ip=10.0.0.2/24`, `gw=10.0.0.1`), else from the back end (`ip` in its directory, the
//! config's `ip=`), else from DHCP.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use pv_guest::grant::GrantTable;
use pv_guest::mm::xen::GuestMm;
use pv_guest::netfront::NetFront;
use pv_guest::xenbus::StoreClient;
use pv_guest::{println, start_info, StartInfo};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address, Ipv4Cidr};

/// The value of `key=` on the command line.
pub fn arg<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// The value of `key=` as a number, or `default`.
pub fn num_arg(cmdline: &str, key: &str, default: u64) -> Result<u64, String> {
    match arg(cmdline, key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("{key}={v} is not a number")),
    }
}

/// Parses `a.b.c.d`.
pub fn parse_ipv4(text: &str) -> Option<Ipv4Address> {
    let mut out = [0u8; 4];
    let mut parts = text.split('.');
    for b in out.iter_mut() {
        *b = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then(|| Ipv4Address::from(out))
}

/// Parses `a.b.c.d/n` (`/24` if no prefix is given).
pub fn parse_cidr(text: &str) -> Option<Ipv4Cidr> {
    let (ip, prefix) = text.split_once('/').unwrap_or((text, "24"));
    let prefix: u8 = prefix.parse().ok().filter(|&p| p <= 32)?;
    Some(Ipv4Cidr::new(parse_ipv4(ip)?, prefix))
}

/// smoltcp's clock: system time.
pub fn now() -> Instant {
    Instant::from_micros((pv_guest::time::now_ns() / 1000) as i64)
}

/// The time this guest's vCPU 0 has run, in ns (its runstate; 0 if the hypervisor does
/// not say).
pub fn cpu_ns() -> u64 {
    pv_guest::time::runstate().map_or(0, |r| r.time[hypercall_abi::vcpu::RUNSTATE_RUNNING as usize])
}

/// A guest's TCP/IP stack on interface 0.
pub struct Stack {
    /// The interface.
    pub nf: NetFront,
    /// smoltcp's interface.
    pub iface: Interface,
    /// The sockets.
    pub sockets: SocketSet<'static>,
    /// The store (to close the interface).
    pub xs: StoreClient,
    dhcp: Option<SocketHandle>,
    /// The memory layer (the pages shared come from it).
    pub mm: GuestMm,
    /// The grant table.
    pub gt: GrantTable,
}

impl Stack {
    /// Sets up events, memory, grants and the store, connects interface 0 and gives it
    /// its address (`name` prefixes what it prints).
    pub fn up(si: &'static StartInfo, name: &str) -> Result<Stack, String> {
        pv_guest::events::init(si).map_err(|e| format!("events: {e}"))?;
        let mut mm = GuestMm::init(si, None).map_err(|e| format!("memory: {e}"))?;
        let mut gt = GrantTable::setup(&mut mm, 4).map_err(|e| format!("grant table: {e}"))?;
        let mut xs = pv_guest::xenbus::connect(si).map_err(|e| format!("store: {e}"))?;
        if arg(start_info::cmdline(si), "hotplug") == Some("1") {
            wait_for_vif(&mut xs, name)?;
        }
        let mut nf = NetFront::connect(&mut xs, &mut mm, &mut gt, 0).map_err(|e| format!("vif 0: {e:?}"))?;
        println!("{name}: vif 0 connected, mac {}", nf.mac);
        nf.set_batching(true);
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(nf.mac.0)));
        config.random_seed = pv_guest::time::rdtsc();
        let mut iface = Interface::new(config, &mut nf, now());
        let mut sockets = SocketSet::new(Vec::new());
        let cmdline = start_info::cmdline(si);
        let fixed = match arg(cmdline, "ip") {
            Some(text) => Some(parse_cidr(text).ok_or_else(|| format!("ip={text} is not an address"))?),
            None => nf.ips.first().map(|ip| Ipv4Cidr::new(Ipv4Address::from(*ip), 24)),
        };
        let mut dhcp = None;
        match fixed {
            Some(cidr) => {
                iface.update_ip_addrs(|a| {
                    let _ = a.push(IpCidr::Ipv4(cidr));
                });
                if let Some(gw) = arg(cmdline, "gw") {
                    let gw = parse_ipv4(gw).ok_or_else(|| format!("gw={gw} is not an address"))?;
                    iface.routes_mut().add_default_ipv4_route(gw).map_err(|_| String::from("no room for a route"))?;
                }
                println!("{name}: address {cidr}");
            }
            None => {
                println!("{name}: asking DHCP for an address");
                dhcp = Some(sockets.add(dhcpv4::Socket::new()));
            }
        }
        Ok(Stack { nf, iface, sockets, xs, dhcp, mm, gt })
    }

    /// The interface's IPv4 address, once it has one.
    pub fn address(&self) -> Option<Ipv4Address> {
        self.iface.ipv4_addr()
    }

    /// Runs the stack once: frames in and out, timers, DHCP; whether anything happened.
    pub fn poll(&mut self, name: &str) -> bool {
        let changed = self.iface.poll(now(), &mut self.nf, &mut self.sockets) != smoltcp::iface::PollResult::None;
        // The burst smoltcp just sent (and the pages it read) go to the back end at once.
        self.nf.flush();
        if let Some(h) = self.dhcp {
            match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
                Some(dhcpv4::Event::Configured(c)) => {
                    self.iface.update_ip_addrs(|a| {
                        a.clear();
                        let _ = a.push(IpCidr::Ipv4(c.address));
                    });
                    if let Some(gw) = c.router {
                        let _ = self.iface.routes_mut().add_default_ipv4_route(gw);
                    }
                    println!("{name}: DHCP gave address {}{}", c.address, c.router.map_or(String::new(), |r| format!(", router {r}")));
                }
                Some(dhcpv4::Event::Deconfigured) => {
                    self.iface.update_ip_addrs(|a| a.clear());
                    self.iface.routes_mut().remove_default_ipv4_route();
                }
                None => {}
            }
        }
        changed
    }

    /// Sleeps until a frame comes or smoltcp has something to do (at most `max`).
    pub fn wait(&mut self, max: Duration) {
        let t = now();
        let delay = self.iface.poll_delay(t, &self.sockets).map_or(max, |d| d.min(max));
        if delay == Duration::ZERO {
            return;
        }
        let deadline_ns = (t + delay).total_micros() as u64 * 1000;
        self.nf.wait(deadline_ns);
    }

    /// Polls until the interface has an address or `timeout` passes.
    pub fn wait_for_address(&mut self, name: &str, timeout: Duration) -> Result<Ipv4Address, String> {
        let end = now() + timeout;
        loop {
            self.poll(name);
            if let Some(a) = self.address() {
                return Ok(a);
            }
            if now() >= end {
                return Err(format!("no address after {} ms", timeout.total_millis()));
            }
            self.wait(Duration::from_millis(50));
        }
    }
}

/// Waits (a watch on `device/vif`) until the toolstack gives this guest interface 0
/// (`xl network-attach`).
fn wait_for_vif(xs: &mut StoreClient, name: &str) -> Result<(), String> {
    use xenbus::client::TxId;
    println!("{name}: waiting for a network interface");
    xs.watch("device/vif", "hotplug").map_err(|e| format!("watch device/vif: {e:?}"))?;
    let found = loop {
        if xs.read(TxId::NONE, "device/vif/0/state").is_ok() {
            break Ok(());
        }
        if let Err(e) = xs.wait_event() {
            break Err(format!("waiting for device/vif/0: {e:?}"));
        }
    };
    let _ = xs.unwatch("device/vif", "hotplug");
    found
}

/// The address `IpAddress` of `a`.
pub fn ip(a: Ipv4Address) -> IpAddress {
    IpAddress::Ipv4(a)
}

/// A TCP socket with `bytes` of buffer each way.
pub fn tcp_socket(bytes: usize) -> smoltcp::socket::tcp::Socket<'static> {
    use smoltcp::socket::tcp;
    tcp::Socket::new(tcp::SocketBuffer::new(vec![0; bytes]), tcp::SocketBuffer::new(vec![0; bytes]))
}

/// The test stream's byte at offset `i`: a 251-byte cycle shifted every 64 KiB, so that a
/// lost, repeated or reordered stretch shows.
pub fn pattern(i: u64) -> u8 {
    ((i % 251) as u8).wrapping_add((i >> 16) as u8)
}

/// FNV-1a over a stream, continued from `h` (start with [`FNV_START`]).
pub fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a's starting value.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;
