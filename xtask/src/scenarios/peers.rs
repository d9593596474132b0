//! Kernels nobody here wrote, run as Xen's users run them: Mini-OS (`peers/`), Xen's
//! reference PV kernel, boots as a domU to its test program, passes its xenbus tests, is
//! reached by `xl console` and powers off on `xl shutdown` through `control/shutdown`;
//! Debian's Linux (fetched by `xtask::linux`) boots from its packaged `vmlinuz` to a
//! busybox shell on its Xen console, runs a command there and powers off.

use super::xl::LIST_HEADER;
use super::{Image, Scenario, DEFAULT};
use std::time::Duration;

/// The scenarios of `peers/` kernels.
pub fn scenarios() -> Vec<Scenario> {
    vec![linux_shell(), linux_smp(), Scenario {
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
            list_row!("minios", "32", "[-r][-b]----"),
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

/// Debian's cloud kernel with two vCPUs: Linux brings its second CPU up (its GDT and
/// kernel stack in the `vcpu_guest_context`, `VCPUOP_up`), both show online, a command
/// runs on CPU 1 (`taskset`), `xl vcpu-list` shows the two, and `xl shutdown` powers it
/// off with nothing left (the audit).
fn linux_smp() -> Scenario {
    Scenario {
        name: "linux-smp",
        modules: &[Image::LinuxKernel, Image::LinuxInitramfs, Image::Config("linux-smp.cfg")],
        memory_mib: crate::run::LINUX_MEMORY_MIB,
        input: &[
            "xl create linux-smp.cfg",
            wait_for!(r"\[linux-smp\] rcS: ready: Linux [0-9.]+-[0-9]+-cloud-amd64$"),
            "xl console linux-smp",
            type_raw!("\n"),
            type_raw!("echo online=$(cat /sys/devices/system/cpu/online); echo cpus=$(grep -c ^processor /proc/cpuinfo); taskset -c 1 sh -c 'echo on1=$((6*7))'; echo done-$((1+1))\n"),
            wait_for!(r"^done-2\r?$"),
            type_raw!("\x1d"),
            wait_for!(r"^xl: detached from linux-smp$"),
            "xl vcpu-list linux-smp",
            "xl shutdown linux-smp",
            wait_for!(r"^xl: domain linux-smp \([0-9]+\) shut down: poweroff"),
            "audit",
            "shutdown",
        ],
        expect: &[
            r"\(mk\) d[0-9]+ \(linux-smp\) created: 2 vCPU\(s\)",
            r"\[linux-smp\] .*smp: Brought up 1 node, 2 CPUs",
            r"^online=0-1\r?$",
            r"^cpus=2\r?$",
            r"^on1=42\r?$",
            r"^done-2\r?$",
            r"^linux-smp +[0-9]+ +0 +[01] ",
            r"^linux-smp +[0-9]+ +1 +[01] ",
            // Its poweroff ends (with CPU 1's clock at zero, CPU 1 re-armed its timer for
            // ever and busybox's `sleep` there never returned).
            r"^xl: domain linux-smp \([0-9]+\) shut down: poweroff",
            r"\(mk\) d[0-9]+ \(linux-smp\) destroyed: [0-9]+ frames returned$",
            r"^audit: ok: 1 domains, ",
        ],
        forbid: &["PANIC", r"Kernel panic", r"BUG:", r"Oops", r"WARNING: CPU", "crashed", r"failed to bring up CPU"],
        timeout: Duration::from_secs(300),
        ..DEFAULT
    }
}

/// Debian's cloud kernel as a domU: dom0 unpacks its bzImage, it boots with the busybox
/// initramfs to a shell on hvc0, `xl console` reaches the shell, a command's output comes
/// back, and `xl shutdown` powers it off through `control/shutdown` (Linux runs
/// `/sbin/poweroff`, busybox init ends the domain with SCHEDOP_shutdown).
fn linux_shell() -> Scenario {
    Scenario {
        name: "linux-shell",
        modules: &[Image::LinuxKernel, Image::LinuxInitramfs, Image::Config("linux.cfg")],
        memory_mib: crate::run::LINUX_MEMORY_MIB,
        input: &[
            "xl create linux.cfg",
            wait_for!(r"\[linux\] rcS: ready: Linux [0-9.]+-[0-9]+-cloud-amd64$"),
            "xl console linux",
            type_raw!("\n"),
            type_raw!("echo sum=$((6*7)); cat /proc/cmdline; grep -c xen /proc/modules; echo done-$((1+1))\n"),
            wait_for!(r"^done-2\r?$"),
            type_raw!("\x1d"),
            wait_for!(r"^xl: detached from linux$"),
            "xl list",
            "xl shutdown linux",
            wait_for!(r"^xl: domain linux \([0-9]+\) shut down: poweroff"),
            "audit",
            "shutdown",
        ],
        expect: &[
            r"^xl: domain linux \([0-9]+\) created$",
            r"\[linux\] .*Linux version [0-9.]+-[0-9]+-cloud-amd64 .*Debian",
            r"\[linux\] .*Booting kernel on Xen",
            // Linux takes the FIFO event channel ABI when the hypervisor offers it.
            r"\[linux\] .*xen:events: Using FIFO-based ABI",
            r"\[linux\] .*Run /init as init process",
            r"\[linux\] rcS: ready: Linux ",
            r"^sum=42\r?$",
            r"^console=hvc0\r?$",
            // Both front-end modules loaded.
            r"^2\r?$",
            r"^done-2\r?$",
            r"^xl: detached from linux$",
            r"^linux +[0-9]+ +256 +1 +[-r][-b]---- ",
            r"^xl: domain linux \([0-9]+\) asked to shut down$",
            r"^xl: domain linux \([0-9]+\) shut down: poweroff",
            r"\(mk\) d[0-9]+ \(linux\) destroyed: [0-9]+ frames returned$",
            r"^audit: ok: 1 domains, ",
            r"^dom0: powering off$",
        ],
        forbid: &["PANIC", r"Kernel panic", r"BUG:", r"Oops", r"WARNING: CPU", "crashed", r"rcS: insmod .* failed"],
        timeout: Duration::from_secs(240),
        ..DEFAULT
    }
}
