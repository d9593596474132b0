//! One item of xl's `vif = [...]` (Xen's `xl-network-configuration`): a guest's network
//! interface, its MAC, how dom0 connects it, and what it may send.
//!
//! Keys: `mac=` (default: `00:16:3e` and the guest's and the device's numbers, fixed
//! when it is attached), `bridge=` (default `xenbr0`, dom0's one switch), `type=` (`vif`
//! or `ioemu`, both a PV interface here, or `nat`: routed through dom0, which translates
//! to the uplink), `script=` (`vif-bridge`, or `vif-nat`/`vif-route`, the same as
//! `type=nat`), `ip=` (the addresses the guest may send from, space-separated; a
//! routed guest needs one), `rate=` (xl's `RATE[@INTERVAL]`), `vifname=` and `model=`
//! (taken, not used).
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use xenbus::netif::Mac;

use crate::vswitch::Rate;

/// How dom0 connects an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VifMode {
    /// A port of the bridge, with the uplink and the other guests.
    Bridge,
    /// Routed through dom0's router, which translates its addresses to the uplink's.
    Nat,
}

/// A network interface of a guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VifSpec {
    /// Its device number (its place in the list, or `xl network-attach`'s next free one).
    pub devid: u32,
    /// Its MAC (`None`: made from the guest's and device's numbers when attached).
    pub mac: Option<Mac>,
    /// The bridge named (only `xenbr0` exists).
    pub bridge: String,
    /// How it is connected.
    pub mode: VifMode,
    /// The IPv4 addresses it may send from (empty: any).
    pub ips: Vec<[u8; 4]>,
    /// Its transmit rate limit.
    pub rate: Option<Rate>,
}

/// The only bridge: dom0's switch.
pub const BRIDGE: &str = "xenbr0";

/// Parses a dotted IPv4 address.
pub fn parse_ipv4(text: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = text.split('.');
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *b = p.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The MAC an interface gets when none is given: Xen's prefix `00:16:3e`, the guest's
/// number and the device's, so that no two live interfaces share one.
pub fn default_mac(dom: u16, devid: u32) -> Mac {
    let [hi, lo] = dom.to_be_bytes();
    Mac([0x00, 0x16, 0x3e, hi & 0x7f, lo, devid as u8])
}

/// Parses one `vif` item, the `devid`th; the error says what is wrong with it.
pub fn parse(item: &str, devid: u32) -> Result<VifSpec, String> {
    let mut spec = VifSpec { devid, mac: None, bridge: BRIDGE.to_string(), mode: VifMode::Bridge, ips: Vec::new(), rate: None };
    let mut seen: Vec<&str> = Vec::new();
    for part in item.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return Err(format!("\"{part}\" is not a key=value setting"));
        };
        let (key, value) = (key.trim(), value.trim());
        if seen.contains(&key) {
            return Err(format!("{key} given twice"));
        }
        match key {
            "mac" => {
                let mac = Mac::parse(value).ok_or_else(|| format!("mac \"{value}\" is not six hex bytes (00:16:3e:00:00:01)"))?;
                if mac.is_group() {
                    return Err(format!("mac {mac} is a multicast address"));
                }
                spec.mac = Some(mac);
            }
            "bridge" if value == BRIDGE => spec.bridge = value.to_string(),
            "bridge" => return Err(format!("bridge \"{value}\": dom0 has one bridge, {BRIDGE}")),
            "type" => match value {
                "vif" | "ioemu" => {}
                "nat" => spec.mode = VifMode::Nat,
                other => return Err(format!("type \"{other}\" is not vif, ioemu or nat")),
            },
            "script" => match value.rsplit('/').next().unwrap_or(value) {
                "vif-bridge" => {}
                "vif-nat" | "vif-route" => spec.mode = VifMode::Nat,
                other => return Err(format!("script \"{other}\" is not vif-bridge, vif-nat or vif-route")),
            },
            "ip" => {
                for a in value.split_whitespace() {
                    let ip = parse_ipv4(a).ok_or_else(|| format!("ip \"{a}\" is not an IPv4 address"))?;
                    spec.ips.push(ip);
                }
                if spec.ips.is_empty() {
                    return Err(String::from("ip is empty"));
                }
            }
            "rate" => spec.rate = Some(Rate::parse(value)?),
            "vifname" | "model" => {}
            other => return Err(format!("\"{other}\" is not a vif setting here (mac, bridge, type, script, ip, rate, vifname, model)")),
        }
        seen.push(key);
    }
    if spec.mode == VifMode::Nat && spec.ips.is_empty() {
        return Err(String::from("a routed (nat) interface needs its address: ip=10.0.0.2"));
    }
    Ok(spec)
}
