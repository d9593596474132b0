//! One item of xl's `disk = [...]` (Xen's `xl-disk-configuration.txt`): what dom0 gives the
//! guest (a disk of its own or a partition of one, `phy:` only), under which virtual device
//! name, read-only or writable.
//!
//! Both of xl's forms are read: positional (`phy:vda2,xvda,w`, the legacy order with a
//! prefixed target, or `vda2,raw,xvda,w`, the canonical order) and `key=value` items
//! (`target=vda2, vdev=xvdb, access=r`), mixed as xl allows.

use alloc::format;
use alloc::string::{String, ToString};

/// A virtual disk of a guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    /// dom0's device: a disk (`vdb`) or a partition of one (`vda2`).
    pub target: String,
    /// The guest's name for it (`xvda`, `xvdb3`).
    pub vdev: String,
    /// Xen's device number for `vdev` (`virtual-device`; 51712 for `xvda`).
    pub devid: u32,
    /// Given read-only.
    pub readonly: bool,
}

/// Xen's device number of an `xvd<letters>[<partition>]` name (docs/misc/vbd-interface):
/// `202 << 8 | disk << 4 | partition` for disks 0..16 and partitions 0..16, else the
/// extended form `1 << 28 | disk << 8 | partition`.
pub fn xvd_number(vdev: &str) -> Option<u32> {
    let rest = vdev.strip_prefix("xvd")?;
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    let (name, part) = rest.split_at(letters);
    if !(1..=2).contains(&name.len()) {
        return None;
    }
    // a..z = 0..25, aa..zz = 26..701 (as Linux counts them).
    let b = name.as_bytes();
    let disk = match b {
        [c] => u32::from(c - b'a'),
        [c1, c2] => 26 + u32::from(c1 - b'a') * 26 + u32::from(c2 - b'a'),
        _ => return None,
    };
    let partition = if part.is_empty() {
        0
    } else if part.bytes().all(|b| b.is_ascii_digit()) && !part.starts_with('0') && part.len() <= 3 {
        part.parse::<u32>().ok()?
    } else {
        return None;
    };
    if partition > 255 {
        return None;
    }
    Some(if disk < 16 && partition < 16 { (202 << 8) | (disk << 4) | partition } else { (1 << 28) | (disk << 8) | partition })
}

/// Xen's device number of a vdev name (docs/misc/vbd-interface): `xvd*` as
/// [`xvd_number`], and the emulated names old guests use: `hd[a-d]` (majors 3 and 22, 64
/// minors a disk: Mini-OS's default `device/vbd/768` is `hda`) and `sd[a-p]` (major 8, 16
/// minors a disk), with a partition number after the letter.
pub fn vdev_number(vdev: &str) -> Option<u32> {
    if vdev.starts_with("xvd") {
        return xvd_number(vdev);
    }
    let (family, rest) = vdev.split_at_checked(2)?;
    let (&letter, part) = rest.as_bytes().split_first()?;
    let part = core::str::from_utf8(part).ok()?;
    let partition = if part.is_empty() {
        0
    } else if part.bytes().all(|b| b.is_ascii_digit()) && !part.starts_with('0') && part.len() <= 2 {
        part.parse::<u32>().ok()?
    } else {
        return None;
    };
    match family {
        "hd" if (b'a'..=b'd').contains(&letter) && partition < 64 => {
            let disk = u32::from(letter - b'a');
            let major = if disk < 2 { 3 } else { 22 };
            Some((major << 8) | ((disk & 1) * 64 + partition))
        }
        "sd" if (b'a'..=b'p').contains(&letter) && partition < 16 => Some((8 << 8) | (u32::from(letter - b'a') << 4) | partition),
        _ => None,
    }
}

/// Whether `t` names a device of dom0's: `vd<letters>` with an optional partition number.
fn valid_target(t: &str) -> bool {
    let Some(rest) = t.strip_prefix("vd") else { return false };
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    let (name, part) = rest.split_at(letters);
    (1..=2).contains(&name.len()) && part.len() <= 3 && part.bytes().all(|b| b.is_ascii_digit()) && !part.starts_with('0')
}

fn access(word: &str) -> Result<bool, String> {
    match word {
        "r" | "ro" => Ok(true),
        "w" | "rw" => Ok(false),
        other => Err(format!("access \"{other}\" is not one of r, ro, w, rw")),
    }
}

/// Parses one `disk` item; the error says what is wrong with it.
pub fn parse(item: &str) -> Result<DiskSpec, String> {
    let mut target = None;
    let mut vdev = None;
    let mut readonly = None;
    let mut legacy = false;
    let mut positional = 0;
    for part in item.split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        if let Some((key, value)) = part.split_once('=') {
            match key.trim() {
                "target" => target = Some(value.trim().to_string()),
                "vdev" => vdev = Some(value.trim().to_string()),
                "access" | "mode" => readonly = Some(access(value.trim())?),
                "format" if value.trim() == "raw" => {}
                "format" => return Err(format!("format \"{}\" is not supported (raw only)", value.trim())),
                "devtype" if value.trim() == "disk" => {}
                "backendtype" if value.trim() == "phy" => {}
                other => return Err(format!("\"{other}\" is not a disk setting here (target, vdev, access, format)")),
            }
            continue;
        }
        match positional {
            0 => {
                let t = match part.split_once(':') {
                    Some(("phy", t)) => {
                        legacy = true;
                        t
                    }
                    Some((prefix, _)) => return Err(format!("\"{prefix}:\" targets are not supported (phy: only)")),
                    None => part,
                };
                target = Some(t.to_string());
            }
            // The canonical order has a format second; the legacy one (prefixed target)
            // goes straight to the vdev.
            1 if !legacy && part == "raw" => {}
            1 if !legacy && matches!(part, "qcow" | "qcow2" | "vhd" | "qed") => {
                return Err(format!("format \"{part}\" is not supported (raw only)"))
            }
            1 | 2 if vdev.is_none() => vdev = Some(part.to_string()),
            _ if readonly.is_none() => readonly = Some(access(part)?),
            _ => return Err(format!("\"{part}\": too many positional parameters")),
        }
        positional += 1;
    }
    let target = target.ok_or("no target (phy:<dom0 device>)")?;
    if !valid_target(&target) {
        return Err(format!("target \"{target}\" is not one of dom0's disks or partitions (vda, vda2, vdb, ...)"));
    }
    let vdev = vdev.ok_or("no vdev (xvda, xvdb, ...)")?;
    let devid = vdev_number(&vdev).ok_or_else(|| format!("vdev \"{vdev}\" is not a disk name (xvda, xvdb2, xvdaa, hda, sdb, ...)"))?;
    Ok(DiskSpec { target, vdev, devid, readonly: readonly.unwrap_or(false) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulated_device_numbers() {
        assert_eq!(vdev_number("hda"), Some(768));
        assert_eq!(vdev_number("hdb"), Some(768 + 64));
        assert_eq!(vdev_number("hdc1"), Some((22 << 8) | 1));
        assert_eq!(vdev_number("hdd"), Some((22 << 8) | 64));
        assert_eq!(vdev_number("sda"), Some(8 << 8));
        assert_eq!(vdev_number("sdb2"), Some((8 << 8) | 18));
        assert_eq!(vdev_number("xvda"), Some(51712));
        for bad in ["hde", "hda64", "hda0", "sdq", "sda16", "hd", "h", "", "vda", "hdA", "sda01"] {
            assert_eq!(vdev_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn xen_device_numbers() {
        assert_eq!(xvd_number("xvda"), Some(51712));
        assert_eq!(xvd_number("xvdb"), Some(51728));
        assert_eq!(xvd_number("xvda1"), Some(51713));
        assert_eq!(xvd_number("xvdp15"), Some((202 << 8) | (15 << 4) | 15));
        assert_eq!(xvd_number("xvdq"), Some((1 << 28) | (16 << 8)));
        assert_eq!(xvd_number("xvda16"), Some((1 << 28) | 16));
        assert_eq!(xvd_number("xvdaa"), Some((1 << 28) | (26 << 8)));
        for bad in ["xvd", "sda", "xvda0", "xvdA", "xvdaaa", "xvda1x", "xvda256", "xvd1"] {
            assert_eq!(xvd_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn both_forms() {
        let want = DiskSpec { target: "vda2".into(), vdev: "xvda".into(), devid: 51712, readonly: false };
        assert_eq!(parse("phy:vda2,xvda,w"), Ok(want.clone()));
        assert_eq!(parse("vda2,raw,xvda,rw"), Ok(want.clone()));
        assert_eq!(parse("target=vda2, vdev=xvda, access=w"), Ok(want.clone()));
        assert_eq!(parse(" vdev=xvda , target=vda2 "), Ok(want));
        let ro = parse("phy:vdb,xvdb,r").unwrap();
        assert_eq!((ro.target.as_str(), ro.devid, ro.readonly), ("vdb", 51728, true));
        assert!(parse("phy:vda3,xvdc").is_ok_and(|d| !d.readonly), "writable by default");
    }

    #[test]
    fn bad_items_say_what_is_wrong() {
        for (item, words) in [
            ("file:/img,xvda,w", "phy: only"),
            ("phy:vda2,xvda,x", "access"),
            ("phy:/dev/sda,xvda,w", "not one of dom0's"),
            ("phy:vda2,hde,w", "not a disk name"),
            ("phy:vda2", "no vdev"),
            ("vdev=xvda", "no target"),
            ("vda2,qcow2,xvda", "raw only"),
            ("phy:vda2,xvda,w,extra", "too many"),
            ("script=block,phy:vda2,xvda", "not a disk setting"),
        ] {
            let e = parse(item).unwrap_err();
            assert!(e.contains(words), "{item}: {e}");
        }
    }
}
