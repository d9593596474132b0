//! The pingpong guest's command line (portable, host-tested: `cargo test -p test-guests`).
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;

use hypercall_abi::types::DOMID_FIRST_RESERVED;

/// Largest `count=`.
pub const MAX_COUNT: u64 = 10_000_000;

/// Which end of the channel this domain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Allocates the port, sends first, times the round trips.
    Ping,
    /// Binds to ping's port and answers.
    Pong,
}

/// The parsed command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    /// `role=`.
    pub role: Role,
    /// `peer=`: the other domain's id.
    pub peer: u16,
    /// `count=`: round trips.
    pub count: u64,
    /// `bench`: time the round trips and the floor.
    pub bench: bool,
    /// `gap=<µs>`: ping waits this long between round trips (an I/O-style load, not a
    /// CPU-bound one); 0 by default.
    pub gap_us: u64,
}

/// Parses `role=ping|pong peer=<domid> count=<n> [bench] [gap=<µs>]`, each word once,
/// nothing else.
pub fn parse_args(line: &str) -> Result<Args, String> {
    let (mut role, mut peer, mut count, mut bench, mut gap) = (None, None, None, false, None);
    for word in line.split_whitespace() {
        let (key, value) = word.split_once('=').unwrap_or((word, ""));
        match (key, value) {
            ("bench", "") if !bench => bench = true,
            ("role", v) if role.is_none() => {
                role = Some(match v {
                    "ping" => Role::Ping,
                    "pong" => Role::Pong,
                    _ => return Err(format!("role must be ping or pong, not '{v}'")),
                })
            }
            ("peer", v) if peer.is_none() => {
                peer = Some(
                    v.parse::<u16>()
                        .ok()
                        .filter(|&d| d < DOMID_FIRST_RESERVED)
                        .ok_or_else(|| format!("peer must be a domain id, not '{v}'"))?,
                )
            }
            ("count", v) if count.is_none() => {
                count = Some(
                    v.parse::<u64>()
                        .ok()
                        .filter(|n| (1..=MAX_COUNT).contains(n))
                        .ok_or_else(|| format!("count must be 1 to {MAX_COUNT}, not '{v}'"))?,
                )
            }
            ("gap", v) if gap.is_none() => {
                gap = Some(
                    v.parse::<u64>()
                        .ok()
                        .filter(|&g| g <= 1_000_000)
                        .ok_or_else(|| format!("gap must be 0 to 1000000 us, not '{v}'"))?,
                )
            }
            ("role" | "peer" | "count" | "bench" | "gap", _) => {
                return Err(format!("'{word}' repeated or malformed"))
            }
            _ => return Err(format!("unknown word '{word}'")),
        }
    }
    Ok(Args {
        role: role.ok_or("role= is missing")?,
        peer: peer.ok_or("peer= is missing")?,
        count: count.ok_or("count= is missing")?,
        bench,
        gap_us: gap.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_lines() {
        assert_eq!(
            parse_args("role=ping peer=2 count=100000"),
            Ok(Args {
                role: Role::Ping,
                peer: 2,
                count: 100_000,
                bench: false,
                gap_us: 0
            })
        );
        assert_eq!(
            parse_args("  bench count=1   peer=0 role=pong "),
            Ok(Args {
                role: Role::Pong,
                peer: 0,
                count: 1,
                bench: true,
                gap_us: 0
            })
        );
        assert_eq!(
            parse_args("role=ping peer=32751 count=10000000").map(|a| (a.peer, a.count)),
            Ok((32751, MAX_COUNT))
        );
    }

    #[test]
    fn a_gap_between_round_trips() {
        let a = parse_args("role=ping peer=2 count=10 gap=1000").unwrap();
        assert_eq!(a.gap_us, 1000);
        assert_eq!(parse_args("role=ping peer=2 count=10").unwrap().gap_us, 0);
        assert!(parse_args("role=ping peer=2 count=10 gap=2000000").is_err());
        assert!(parse_args("role=ping peer=2 count=10 gap=1 gap=2").is_err());
    }

    #[test]
    fn bad_lines_say_why() {
        let why = |line: &str| parse_args(line).unwrap_err();
        assert_eq!(why(""), "role= is missing");
        assert_eq!(why("role=ping count=5"), "peer= is missing");
        assert_eq!(why("role=ping peer=2"), "count= is missing");
        assert_eq!(
            why("role=pang peer=2 count=5"),
            "role must be ping or pong, not 'pang'"
        );
        assert_eq!(
            why("role= peer=2 count=5"),
            "role must be ping or pong, not ''"
        );
        assert_eq!(
            why("role=ping peer=32752 count=5"),
            "peer must be a domain id, not '32752'"
        );
        assert_eq!(
            why("role=ping peer=-1 count=5"),
            "peer must be a domain id, not '-1'"
        );
        assert_eq!(
            why("role=ping peer=2 count=0"),
            "count must be 1 to 10000000, not '0'"
        );
        assert_eq!(
            why("role=ping peer=2 count=10000001"),
            "count must be 1 to 10000000, not '10000001'"
        );
        assert_eq!(
            why("role=ping peer=2 count=lots"),
            "count must be 1 to 10000000, not 'lots'"
        );
        assert_eq!(
            why("role=ping peer=2 count=99999999999999999999999"),
            "count must be 1 to 10000000, not '99999999999999999999999'"
        );
        assert_eq!(
            why("role=ping role=pong peer=2 count=5"),
            "'role=pong' repeated or malformed"
        );
        assert_eq!(
            why("role=ping peer=2 count=5 bench bench"),
            "'bench' repeated or malformed"
        );
        assert_eq!(
            why("role=ping peer=2 count=5 bench=1"),
            "'bench=1' repeated or malformed"
        );
        assert_eq!(why("role=ping peer=2 count=5 fast"), "unknown word 'fast'");
        assert_eq!(why("role=ping peer=2 count=5 =3"), "unknown word '=3'");
    }
}
