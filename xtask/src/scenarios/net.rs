//! The network split driver: guests on dom0's switch, talking TCP/IP (smoltcp over the
//! netfront) to each other.

use super::{Disk, Image, Scenario, DEFAULT};
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
    }, Scenario {
        name: "net-destroy-midway",
        modules: &[Image::Guest("netpeer"), Image::Config("net-server.cfg"), Image::Config("net-client-long.cfg")],
        // The server is destroyed while the client streams to it: the client's connection
        // times out cleanly (it reports how far it got), and nothing of the server is left
        // (its port, rings and grant mappings: the audit).
        input: &[
            "xl create net-server.cfg",
            wait_for!(r"\[net-server\] netpeer: listening on port 5001"),
            "xl create net-client-long.cfg",
            wait_for!(r"\[net-client\] netpeer: sent 8 MiB"),
            "xl destroy net-server",
            wait_for!(r"\[net-client\] netpeer: (done|the connection)"),
            // It ends itself (a crash: the transfer failed) before the audit counts.
            wait_for!(r"\(mk\) d2 \(net-client\) destroyed"),
            "audit",
            "shutdown",
        ],
        expect: &[
            r"\[net-client\] netpeer: connected to 10\.0\.0\.2:5001",
            r"xl: domain net-server \(1\) destroyed",
            r"\[net-client\] netpeer: the connection to 10\.0\.0\.2:5001 ended after [0-9]+ bytes \([0-9]+ ms\): timed out or reset",
            r"audit: ok: 1 domains, [0-9]+ frames owned, [0-9]+ page tables, [0-9]+ event channels, 0 grant mappings",
        ],
        forbid: &[r"BAD", r"lies", r"stream checked"],
        timeout: Duration::from_secs(120),
        ..DEFAULT
    }, Scenario {
        name: "net-attach-detach",
        modules: &[Image::Guest("netpeer"), Image::Config("net-server.cfg"), Image::Config("net-hot.cfg")],
        // A running guest with no interface gets one (`xl network-attach`), connects,
        // pings and streams; then the server's interface is taken away while it runs.
        input: &[
            "xl create net-server.cfg",
            wait_for!(r"\[net-server\] netpeer: listening on port 5001"),
            "xl create net-hot.cfg",
            wait_for!(r"\[net-hot\] netpeer: waiting for a network interface"),
            "xl network-list net-hot",
            "xl network-attach net-hot mac=00:16:3e:00:00:04 ip=10.0.0.4",
            wait_for!(r"\[net-hot\] netpeer: (done|the connection|no reply)"),
            "xl network-list net-hot",
            "xl network-detach net-server 0",
            "xl network-list net-server",
            "xl network-detach net-server 0",
            "xl destroy net-hot",
            "xl destroy net-server",
            "audit",
            "shutdown",
        ],
        expect: &[
            r"^Idx BE Mac Addr\.",
            r"dom0: d2 vif 0: connected",
            r"\[net-hot\] netpeer: vif 0 connected, mac 00:16:3e:00:00:04",
            r"\[net-hot\] netpeer: ping 10\.0\.0\.2: 2 sent, 2 received",
            r"\[net-hot\] netpeer: stream checked: 1048576 bytes",
            r"^0   0  00:16:3e:00:00:04 0      4 ",
            // The typed lines without their prompt: a guest's line, drained from its
            // console ring, may come between the two.
            r"xl network-list net-server$",
            r"^Idx BE Mac Addr\.",
            r"xl network-detach net-server 0$",
            r"xl network-detach: net-server \(1\): d1 has no network interface 0",
            r"audit: ok: 1 domains, [0-9]+ frames owned, [0-9]+ page tables, [0-9]+ event channels, 0 grant mappings",
        ],
        forbid: &[r"BAD", r"lies", r"crashed"],
        timeout: Duration::from_secs(120),
        ..DEFAULT
    }, Scenario {
        name: "net-web",
        disk: Disk::Fresh,
        nic: true,
        // dom0 drives the machine's NIC as the switch's uplink; the web guest (from
        // dom0's partition) serves HTTP at 10.0.2.15, and xtask fetches its page from the
        // host through QEMU's forwarded port: host → NIC → dom0's switch → netback → the
        // guest's netfront and smoltcp, and back.
        input: &[
            "xl create web.cfg",
            wait_for!(r"\[web\] web: serving http://10\.0\.2\.15:80/"),
            http_get!("/"),
            http_get!("/missing"),
            "xl network-list web",
            "xl destroy web",
            "audit",
            "shutdown",
        ],
        expect: &[
            r"^dom0: pci 00:[0-9a-f]{2}\.0: virtio-net eth0: mac 52:54:00:12:34:56, irq [0-9]+ as event port [0-9]+; the switch's uplink$",
            r"dom0: d1 vif 0: connected",
            r"\[web\] web: address 10\.0\.2\.15/24",
            r"^xtask: GET /: HTTP/1\.0 200 OK$",
            r"^xtask: body: <html><body><h1>Hello from the web guest</h1><p>Served by a PV guest at 10\.0\.2\.15 over netfront, dom0's switch and smoltcp; request 1\.</p></body></html>$",
            r"^xtask: GET /missing: HTTP/1\.0 404 Not Found$",
            r"audit: ok",
        ],
        forbid: &[r"xtask: GET .* failed", r"lies", r"crashed", r"no uplink"],
        timeout: Duration::from_secs(90),
        ..DEFAULT
    }, Scenario {
        name: "minios-netfront",
        modules: &[Image::Peer("mini-os/mini-os-test"), Image::Config("minios-net.cfg")],
        // Mini-OS's netfront, written for Xen, connects to our netback: it reads the MAC
        // the config gave, grants its rings, says Connected and sees the back end
        // Connected; it is then shut down through control/shutdown and nothing of it is
        // left.
        input: &[
            "xl create minios-net.cfg",
            // dom0 says connected just before Mini-OS sees it.
            wait_for!(r"\[minios-net\] mac is "),
            "xl network-list minios-net",
            "xl shutdown minios-net",
            wait_for!(r"^xl: domain minios-net \([0-9]+\) shut down"),
            "audit",
            "shutdown",
        ],
        expect: &[
            r"\[minios-net\] \*+ NETFRONT for device/vif/0 \*+",
            r"^dom0: d1 vif 0: connected$",
            r"\[minios-net\] backend at /local/domain/0/backend/vif/1/0",
            r"\[minios-net\] mac is 00:16:3e:00:00:42",
            r"^0   0  00:16:3e:00:00:42 0      4 ",
            r"audit: ok: 1 domains, [0-9]+ frames owned, [0-9]+ page tables, [0-9]+ event channels, 0 grant mappings",
        ],
        forbid: &[r"lies", r"cannot connect", r"backend not avalable"],
        timeout: Duration::from_secs(60),
        ..DEFAULT
    }, Scenario {
        name: "linux-netfront",
        modules: &[Image::LinuxKernel, Image::LinuxInitramfs, Image::Config("linux-net.cfg"), Image::Guest("web"), Image::Config("web-lan.cfg")],
        memory_mib: crate::run::LINUX_MEMORY_MIB,
        // Debian's Linux, its xen-netfront written for Xen: eth0 comes up on our
        // netback (checksums left to offload completed by dom0), gets an address and
        // fetches the web guest's page with busybox wget through the switch.
        input: &[
            "xl create web-lan.cfg",
            wait_for!(r"\[web-lan\] web: serving http://10\.0\.0\.80:80/"),
            "xl create linux-net.cfg",
            wait_for!(r"\[linux-net\] rcS: ready: Linux [0-9.]+-[0-9]+-cloud-amd64$"),
            "xl console linux-net",
            type_raw!("\n"),
            type_raw!("ifconfig eth0 10.0.0.5 netmask 255.255.255.0 up; cat /sys/class/net/eth0/address; wget -q -O - http://10.0.0.80/; echo wget-done-$?\n"),
            wait_for!(r"^wget-done-[0-9]+\r?$"),
            type_raw!("\x1d"),
            wait_for!(r"^xl: detached from linux-net$"),
            "xl network-list linux-net",
            "xl shutdown linux-net",
            wait_for!(r"^xl: domain linux-net \([0-9]+\) shut down: poweroff"),
            "xl destroy web-lan",
            "audit",
            "shutdown",
        ],
        expect: &[
            r"dom0: d2 vif 0: connected",
            r"\[linux-net\] rcS: ready: Linux ",
            r"^00:16:3e:00:00:05\r?$",
            r"<h1>Hello from the web guest</h1>",
            r"^wget-done-0\r?$",
            r"^xl: detached from linux-net$",
            r"^0   0  00:16:3e:00:00:05 0      4 ",
            r"^audit: ok: 1 domains, [0-9]+ frames owned, [0-9]+ page tables, [0-9]+ event channels, 0 grant mappings",
        ],
        forbid: &["PANIC", r"Kernel panic", r"BUG:", r"Oops", r"WARNING: CPU", "crashed", r"lies", r"cannot connect"],
        timeout: Duration::from_secs(240),
        ..DEFAULT
    }, Scenario {
        name: "net-nat",
        disk: Disk::Fresh,
        nic: true,
        modules: &[Image::Guest("netpeer"), Image::Config("net-nat.cfg")],
        // A routed guest reaches the web guest on the bridge through dom0's router, which
        // translates it to its own address (the web guest sees 10.0.2.16); the host
        // fetches the same page through the uplink meanwhile.
        input: &[
            "xl create web.cfg",
            wait_for!(r"\[web\] web: serving http://10\.0\.2\.15:80/"),
            "xl create net-nat.cfg",
            wait_for!(r"\[net-nat\] netpeer: (done|the connection|no reply|http)"),
            http_get!("/"),
            "xl network-list net-nat",
            "xl destroy web",
            "audit",
            "shutdown",
        ],
        expect: &[
            r"\[net-nat\] netpeer: address 10\.0\.0\.2/24",
            r"\[net-nat\] netpeer: ping 10\.0\.2\.15: 2 sent, 2 received",
            r"\[web\] web: GET / HTTP/1\.0 from 10\.0\.2\.16:[0-9]+",
            r"\[net-nat\] netpeer: GET http://10\.0\.2\.15:80/: HTTP/1\.0 200 OK",
            r"\[net-nat\] netpeer: body: <html><body><h1>Hello from the web guest</h1>",
            r"\[net-nat\] netpeer: done",
            r"^xtask: GET /: HTTP/1\.0 200 OK$",
            r"audit: ok",
        ],
        forbid: &[r"xtask: GET .* failed", r"lies", r"crashed"],
        timeout: Duration::from_secs(90),
        ..DEFAULT
    }]
}
