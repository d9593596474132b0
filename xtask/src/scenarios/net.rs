//! The network split driver: guests on dom0's switch, talking TCP/IP (smoltcp over the
//! netfront) to each other.

use super::{Image, Scenario, DEFAULT};
use std::time::Duration;

/// The scenarios of the network issue.
pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "net-two-guests",
        modules: &[Image::Guest("netpeer"), Image::Config("net-server.cfg"), Image::Config("net-client.cfg")],
        // A server and a client on the bridge: the client pings the server, then sends it
        // a stream of the test pattern, which the server checks byte by byte and answers
        // with its count and checksum, which the client compares with its own.
        input: &[
            "xl create net-server.cfg",
            wait_for!(r"\[net-server\] netpeer: listening on port 5001"),
            "xl create net-client.cfg",
            wait_for!(r"\[net-client\] netpeer: (done|the connection)"),
            "xl network-list net-server",
            "xl destroy net-server",
            "audit",
            "shutdown",
        ],
        expect: &[
            r"dom0: d1 vif 0: connected",
            r"\[net-server\] netpeer: vif 0 connected, mac 00:16:3e:00:00:02",
            r"\[net-server\] netpeer: address 10\.0\.0\.2/24",
            r"dom0: d2 vif 0: connected",
            r"\[net-client\] netpeer: 64 bytes from 10\.0\.0\.2: icmp_seq=0 time=",
            r"\[net-client\] netpeer: ping 10\.0\.0\.2: 3 sent, 3 received",
            r"\[net-client\] netpeer: connected to 10\.0\.0\.2:5001",
            r"\[net-server\] netpeer: received 104857600 bytes from 10\.0\.0\.3:[0-9]+, pattern ok",
            r"\[net-client\] netpeer: stream checked: 104857600 bytes",
            r"\[net-client\] netpeer: done",
            r"^0   0  00:16:3e:00:00:02 0      4",
            r"audit: ok",
        ],
        forbid: &[r"BAD", r"lies", r"cannot connect", r"crashed", r"timed out or reset"],
        timeout: Duration::from_secs(180),
        ..DEFAULT
    }]
}
