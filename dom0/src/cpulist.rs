//! CPU lists as xl writes them (`cpus = "0-1"`, `xl vcpu-pin d 0 1,3`): `all`, numbers,
//! ranges `a-b`, separated by commas, read into a map of one bit per CPU (CPUs 0 to 63),
//! and written back the same way.
#![forbid(unsafe_code)]

use alloc::string::String;

/// The highest CPU number a list may name.
pub const MAX_CPU: u32 = 63;

/// Reads a CPU list: `all` (every CPU), or numbers and ranges separated by commas. The
/// error names the part that is wrong.
pub fn parse(list: &str) -> Result<u64, String> {
    let list = list.trim();
    if list == "all" {
        return Ok(u64::MAX);
    }
    if list.is_empty() {
        return Err(String::from("an empty CPU list"));
    }
    let mut map = 0u64;
    for part in list.split(',') {
        let part = part.trim();
        let number = |s: &str| -> Result<u32, String> {
            let n: u32 = s.parse().map_err(|_| alloc::format!("'{part}' is not a CPU number or range"))?;
            if n > MAX_CPU {
                return Err(alloc::format!("CPU {n} is past the last one this toolstack knows ({MAX_CPU})"));
            }
            Ok(n)
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let n = number(part)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(alloc::format!("'{part}': the range runs backwards"));
        }
        for cpu in lo..=hi {
            map |= 1 << cpu;
        }
    }
    Ok(map)
}

/// Writes map `map` of a machine with `ncpus` CPUs as a list: `all` when it holds every
/// one, else its runs (`0-1,3`); `none` when it holds none.
pub fn format(map: u64, ncpus: u32) -> String {
    let all = if ncpus >= 64 { u64::MAX } else { (1u64 << ncpus) - 1 };
    if map & all == all {
        return String::from("all");
    }
    let mut out = String::new();
    let mut cpu = 0u32;
    while cpu < 64 {
        if map & (1 << cpu) == 0 {
            cpu += 1;
            continue;
        }
        let start = cpu;
        while cpu < 64 && map & (1 << cpu) != 0 {
            cpu += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if cpu - 1 == start {
            out.push_str(&alloc::format!("{start}"));
        } else {
            out.push_str(&alloc::format!("{start}-{}", cpu - 1));
        }
    }
    if out.is_empty() {
        String::from("none")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_read() {
        assert_eq!(parse("all"), Ok(u64::MAX));
        assert_eq!(parse("1"), Ok(0b10));
        assert_eq!(parse("0-2"), Ok(0b111));
        assert_eq!(parse("0,2-3, 5"), Ok(0b101101));
        assert_eq!(parse("63"), Ok(1 << 63));
    }

    #[test]
    fn bad_lists_say_why() {
        assert_eq!(parse(""), Err(String::from("an empty CPU list")));
        assert_eq!(parse("64"), Err(String::from("CPU 64 is past the last one this toolstack knows (63)")));
        assert_eq!(parse("3-1"), Err(String::from("'3-1': the range runs backwards")));
        assert_eq!(parse("one"), Err(String::from("'one' is not a CPU number or range")));
        assert_eq!(parse("1,,2"), Err(String::from("'' is not a CPU number or range")));
        assert_eq!(parse("-1"), Err(String::from("'-1' is not a CPU number or range")));
    }

    #[test]
    fn maps_are_written() {
        assert_eq!(format(0b11, 2), "all");
        assert_eq!(format(u64::MAX, 4), "all");
        assert_eq!(format(0b10, 2), "1");
        assert_eq!(format(0b1011, 8), "0-1,3");
        assert_eq!(format(0, 2), "none");
        assert_eq!(format(1 << 63, 64), "63");
    }
}
