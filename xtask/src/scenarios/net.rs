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
    }, Scenario {
        name: "net-hostile",
        modules: &[Image::Guest("netpeer"), Image::Config("net-server.cfg"), Image::Config("net-client-long.cfg"), Image::Config("net-hostile.cfg")],
        // While a client streams to the server, a hostile guest names bad grants, forges
        // the client's MAC and address, floods broadcasts and sends a frame past the MTU:
        // its errors are answered, its forgeries reach no one (the switch counts them
        // refused), its storm leaves the stream alone, and the giant frame gets it
        // disconnected; the stream completes, checked.
        input: &[
            "xl create net-server.cfg",
            wait_for!(r"\[net-server\] netpeer: listening on port 5001"),
            "xl create net-client-long.cfg",
            wait_for!(r"\[net-client\] netpeer: connected"),
            "xl create net-hostile.cfg",
            wait_for!(r"\[net-hostile\] netpeer: (done|the back end)"),
            wait_for!(r"\[net-client\] netpeer: (done|the connection)"),
            "xl network-list net-hostile",
            "xl destroy net-hostile",
            "xl destroy net-server",
            "audit",
            "shutdown",
        ],
        expect: &[
            r"\[net-hostile\] netpeer: ping 10\.0\.0\.2: 1 sent, 1 received",
            r"\[net-hostile\] netpeer: 10 frames naming bad grants: 10 answered with errors",
            r"\[net-hostile\] netpeer: broadcast storm of [0-9]+ frames sent",
            r"dom0: d3 vif 0: the front end's ring lies \(a frame of 3000 bytes \(the MTU is 1500\)\); disconnected",
            r"\[net-hostile\] netpeer: the back end dropped us \(state 5\)",
            r"\[net-client\] netpeer: stream checked: 33554432 bytes",
            // Both forgeries were refused at the hostile guest's port.
            r"^0   0  00:16:3e:00:00:09 0      5     [0-9]+ +[0-9]+/[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +2 ",
            r"audit: ok",
        ],
        forbid: &[r"BAD", r"crashed", r"timed out or reset", r"d[12] vif 0: the front end"],
        timeout: Duration::from_secs(180),
        ..DEFAULT
    }]
}
