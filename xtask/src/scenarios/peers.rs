//! Kernels nobody here wrote (`peers/`), run as Xen's users run them: Mini-OS, Xen's
//! reference PV kernel, boots as a domU to its test program, passes its xenbus tests, is
//! reached by `xl console` and powers off on `xl shutdown` through `control/shutdown`.

use super::xl::LIST_HEADER;
use super::{Image, Scenario, DEFAULT};
use std::time::Duration;

/// The scenarios of `peers/` kernels.
pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "minios-test",
        modules: &[Image::Peer("mini-os/mini-os-test"), Image::Config("minios.cfg")],
        // Its front-ends find no back-ends yet (the block and network issues add them) and
        // give up; its xenbus tests write, read and remove under its own `device/vif/0`.
        input: &[
            "xl create minios.cfg",
            wait_for!(r#"\[minios\] Thread "xenbus_tester" exited\.$"#),
            "xl console minios",
            // Its periodic thread prints the wall clock once a second, raw while attached.
            wait_for!(r"^T\(s=[0-9]+ us=[0-9]+\)$"),
            type_raw!("\x1d"),
            wait_for!(r"^xl: detached from minios$"),
            "xl list",
            "xl shutdown minios",
            wait_for!(r"^xl: domain minios \([0-9]+\) shut down: poweroff"),
            "xl list",
            "audit",
            "shutdown",
        ],
        expect: &[
            r"^xl: domain minios \([0-9]+\) created$",
            r"\[minios\] Xen Minimal OS \(pv\)!$",
            r"\[minios\] Test main: par=0$",
            r"\[minios\] Doing xenbus test\.$",
            r"\[minios\] Write flobble to device/vif/0/flibble\.\.\.$",
            r"\[minios\] Success\.$",
            r"\[minios\] Read device/vif/0/flibble -> flobble\.$",
            r"\[minios\] Write widget to device/vif/0/flibble\.\.\.$",
            r"\[minios\] Success\.$",
            r"\[minios\] Read device/vif/0/flibble -> widget\.$",
            r"\[minios\] rm device/vif/0/flibble\.\.\.$",
            r"\[minios\] Success\.$",
            r"\[minios\] Error in xenbus read: ENOENT$",
            r"\[minios\] \(Should have said ENOENT\)$",
            r"^T\(s=[0-9]+ us=[0-9]+\)$",
            r"^xl: detached from minios$",
            LIST_HEADER,
            list_row!("minios", "32", "-[-b]----"),
            r"^xl: domain minios \([0-9]+\) asked to shut down$",
            // Its shutdown thread read `poweroff`, cleared the node and powered off.
            r"\[minios\] Shutting down \(poweroff\)$",
            r"^xl: domain minios \([0-9]+\) shut down: poweroff$",
            r"\(mk\) d[0-9]+ \(minios\) destroyed: [0-9]+ frames returned$",
            LIST_HEADER,
            r"^audit: ok: 1 domains, ",
            r"^dom0: powering off$",
        ],
        forbid: &[
            "PANIC",
            "crashed",
            r"\(mk\) d[0-9]+ \(minios\) (fault|crash|stopped)",
            // A console line written twice (hypercall and ring) would show here.
            r"\[minios\] Xen Minimal OS.*Xen Minimal OS",
            r"^xl: .*(failed|cannot|corrupt)",
        ],
        timeout: Duration::from_secs(60),
        ..DEFAULT
    }]
}
