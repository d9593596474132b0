//! Tests of `xl create` against the fake hypervisor: what a built domain holds, the checks
//! made before anything exists, and that every later failure leaves nothing behind.

extern crate std;

use super::*;
use crate::testutil::{kernel_elf, tar, Fail, FakeControl, BASE, CODE, ENTRY};
use hypercall_abi::arch::VGCF_IN_KERNEL;
use hypercall_abi::domctl::{DOMINF_BLOCKED, DOMINF_PAUSED};
use hypercall_abi::start_info::{StartInfo, SIF_MULTIBOOT_MOD, START_INFO_MAGIC};
use std::format;
use std::string::String;
use zerocopy::FromBytes;

const HELLO: &str = "name = \"hello\"\nkernel = \"hello\"\nmemory = 16\ncmdline = \"answer=42\"\n";

struct Files {
    kernel: Vec<u8>,
    archive: Vec<u8>,
}

impl Files {
    fn new(configs: &[(&str, &str)]) -> Files {
        let entries: Vec<(&str, &[u8])> = configs.iter().map(|(n, t)| (*n, t.as_bytes())).collect();
        Files {
            kernel: kernel_elf(),
            archive: tar(&entries),
        }
    }

    fn boot(&self) -> BootFiles<'_> {
        BootFiles::new([
            ("hello", &self.kernel[..]),
            ("configs.tar", &self.archive[..]),
        ])
    }
}

/// `xl create` with `files`; the output lines and the result.
fn create_with(
    ctl: &mut FakeControl,
    files: &Files,
    file: &str,
    paused: bool,
) -> (String, Result<Created, CreateError>) {
    let mut out = String::new();
    let result = create(ctl, &files.boot(), file, paused, &mut out);
    (out, result)
}

fn error_line(result: Result<Created, CreateError>) -> String {
    format!("{}", result.expect_err("creation should fail"))
}

#[test]
fn a_built_domain_is_what_the_guest_expects() {
    let files = Files::new(&[("hello.cfg", HELLO)]);
    let mut ctl = FakeControl::new(65536, 60000);
    let (out, result) = create_with(&mut ctl, &files, "hello.cfg", false);
    let created = result.unwrap();
    assert_eq!(out, "");
    assert_eq!(created.id, 1);
    assert_eq!(ctl.free_pages, 60000 - 16 * 256);

    let d = &ctl.domains[&1];
    assert_eq!(d.info.tot_pages, 4096);
    assert_eq!(d.info.max_pages, 4096);
    assert_eq!(d.info.flags, DOMINF_BLOCKED, "unpaused");
    assert_eq!(d.p2m.len(), 4096);
    // Only the initial region was mapped, and nothing is mapped any more.
    assert!(ctl.mapped.is_empty());
    assert!(
        ctl.max_mapped < 4096 && ctl.max_mapped >= 1024,
        "{}",
        ctl.max_mapped
    );

    // vCPU 0 starts at the entry with rsi = start_info, on the boot stack, in kernel mode.
    let c = d.ctxt.expect("vCPU context set");
    assert_eq!(c.user_regs.rip, ENTRY);
    assert_eq!((c.user_regs.cs, c.user_regs.ss), (0xe033, 0xe02b));
    assert_eq!(c.user_regs.rflags, 0x202);
    assert_eq!(c.kernel_ss, 0xe02b);
    assert_eq!(c.kernel_sp, c.user_regs.rsp);
    assert_eq!(c.flags, VGCF_IN_KERNEL | VGCF_ONLINE);
    assert_eq!(c.user_regs.rsp % 4096, 0);
    let si_va = c.user_regs.rsi;
    let si_pfn = (si_va - BASE) >> 12;
    let raw = ctl.read(1, si_pfn, 0, core::mem::size_of::<StartInfo>());
    let si = StartInfo::read_from_bytes(&raw).unwrap();
    assert!(si.magic.starts_with(START_INFO_MAGIC));
    assert_eq!(si.nr_pages, 4096);
    assert_eq!(si.shared_info, 0x778 << 12);
    assert_eq!(&si.cmd_line[..10], b"answer=42\0");
    assert_eq!(si.flags, 0);
    assert_eq!(si.mod_start, 0);
    // cr3 is the L4 at pt_base, one of the domain's own frames.
    let l4_pfn = (si.pt_base - BASE) >> 12;
    assert_eq!(c.ctrlreg[3], d.p2m[&l4_pfn] << 12);
    // The kernel's bytes are at its first page, the hypercall page filled.
    assert_eq!(ctl.read(1, 0, 0, CODE.len()), CODE);
    assert_eq!(
        ctl.read(1, 1, 0, 4),
        [0x51, 0x41, 0x53, 0xb8],
        "stub 0: push rcx; push r11; mov eax"
    );
    // The order: create, populate, map, unmap, set the context, unpause.
    let order: Vec<&str> = ctl
        .calls
        .iter()
        .map(|c| c.0)
        .filter(|&c| c != "physinfo")
        .collect();
    assert_eq!(order.first(), Some(&"create"));
    assert_eq!(
        &order[order.len() - 10..],
        [
            "alloc_guest_port",
            "bind_guest_port",
            "alloc_guest_port",
            "bind_guest_port",
            "map",
            "unmap",
            "setvcpucontext",
            "connect_console",
            "connect_store",
            "unpause"
        ]
    );
    // The guest's ends of the store and console channels are in start_info, the rings'
    // frames are the ones the record keeps, and dom0 bound its ends to them.
    let ch = created.channels;
    assert_eq!((ch.store_port, ch.console_port), (1, 2));
    assert_eq!(si.store_evtchn, ch.store_port);
    assert_eq!(si.store_mfn, ch.store_mfn);
    assert_eq!(si.console.domu_evtchn(), ch.console_port);
    assert_eq!(si.console.domu_mfn(), ch.console_mfn);
    assert_eq!(ctl.bound[&ch.store_port_local], (1, 1));
    assert_eq!(ctl.bound[&ch.console_port_local], (1, 2));
    assert_eq!(ctl.consoles[&1], ch);
    assert!(d.p2m.values().any(|&m| m == ch.console_mfn));
    assert_eq!(
        order.iter().filter(|&&c| c == "populate").count(),
        4,
        "batches of 1024"
    );
}

#[test]
fn paused_and_with_a_ramdisk() {
    let cfg = "name='r'\nkernel='hello'\nramdisk='initrd.img'\nmemory=8\nvcpus=3\n";
    let files = Files::new(&[("r.cfg", cfg), ("initrd.img", "INITRD")]);
    let mut ctl = FakeControl::new(65536, 60000);
    let (_, result) = create_with(&mut ctl, &files, "r.cfg", true);
    assert!(result.unwrap().paused);
    let d = &ctl.domains[&1];
    assert_eq!(d.info.flags, DOMINF_PAUSED);
    assert_eq!(d.info.max_vcpus, 3);
    let si_pfn = (d.ctxt.unwrap().user_regs.rsi - BASE) >> 12;
    let si = StartInfo::read_from_bytes(&ctl.read(1, si_pfn, 0, core::mem::size_of::<StartInfo>()))
        .unwrap();
    assert_eq!(si.mod_len, 6);
    assert_eq!(si.flags & SIF_MULTIBOOT_MOD, 0);
    assert_eq!(ctl.read(1, (si.mod_start - BASE) >> 12, 0, 6), b"INITRD");
    assert!(!ctl.calls.iter().any(|c| c.0 == "unpause"));
}

#[test]
fn checks_before_anything_is_created() {
    let bad_kernel = "name='b'\nkernel='hello.cfg'\n";
    let files = Files::new(&[
        ("hello.cfg", HELLO),
        ("nokernel.cfg", "name='n'\nkernel='vmlinuz'\n"),
        ("noinitrd.cfg", "name='n'\nkernel='hello'\nramdisk='gone'\n"),
        ("bad.cfg", "name='b'\nkernel='hello'\nmemory=\"lots\"\n"),
        ("badkernel.cfg", bad_kernel),
        ("big.cfg", "name='big'\nkernel='hello'\nmemory=4096\n"),
        ("tiny.cfg", "name='tiny'\nkernel='hello'\nmemory=1\n"),
        ("warn.cfg", "name='w'\nkernel='nope'\nusbdev=['x']\n"),
    ]);
    let mut ctl = FakeControl::new(65536, 60000);
    let (_, first) = create_with(&mut ctl, &files, "hello.cfg", false);
    first.unwrap();
    let calls = ctl.calls.len();
    let domains = ctl.domains.len();

    let cases: &[(&str, &str)] = &[
        ("missing.cfg", "xl: no boot file named 'missing.cfg' (boot files: hello, hello.cfg, nokernel.cfg, noinitrd.cfg, bad.cfg, badkernel.cfg, big.cfg, tiny.cfg, and 1 more)"),
        ("nokernel.cfg", "xl: nokernel.cfg: kernel 'vmlinuz': no boot file of that name (boot files: hello, hello.cfg, nokernel.cfg, noinitrd.cfg, bad.cfg, badkernel.cfg, big.cfg, tiny.cfg, and 1 more)"),
        ("noinitrd.cfg", "xl: noinitrd.cfg: ramdisk 'gone': no boot file of that name (boot files: hello, hello.cfg, nokernel.cfg, noinitrd.cfg, bad.cfg, badkernel.cfg, big.cfg, tiny.cfg, and 1 more)"),
        ("bad.cfg", "xl: bad.cfg:3: memory: expected a number of MiB, got \"lots\""),
        ("badkernel.cfg", "xl: badkernel.cfg: kernel 'hello.cfg' cannot be loaded: not an ELF image (bad magic)"),
        ("hello.cfg", "xl: a domain named 'hello' already exists (id 1)"),
        ("big.cfg", "xl: not enough free memory for 'big': it needs 4096 MiB, 218 MiB are free"),
    ];
    for (file, want) in cases {
        let (_, result) = create_with(&mut ctl, &files, file, false);
        assert_eq!(error_line(result), *want, "{file}");
    }
    // None of them created a domain or even tried.
    assert_eq!(ctl.domains.len(), domains);
    assert!(
        ctl.calls[calls..].iter().all(|c| c.0 == "physinfo"),
        "{:?}",
        &ctl.calls[calls..]
    );

    // A memory too small for the initial region is refused by the layout.
    let (_, result) = create_with(&mut ctl, &files, "tiny.cfg", false);
    let line = error_line(result);
    assert!(
        line.starts_with("xl: 'tiny' does not fit in its memory: initial region needs"),
        "{line}"
    );
    // Warnings come out before the error.
    let (out, result) = create_with(&mut ctl, &files, "warn.cfg", false);
    assert_eq!(out, "xl: warn.cfg:3: warning: unknown key 'usbdev' ignored\n");
    assert!(error_line(result).starts_with("xl: warn.cfg: kernel 'nope'"));
    assert_eq!(ctl.domains.len(), domains);
}

#[test]
fn no_boot_files_at_all() {
    let mut ctl = FakeControl::new(100, 100);
    let mut out = String::new();
    let r = create(&mut ctl, &BootFiles::default(), "x.cfg", false, &mut out);
    assert_eq!(
        error_line(r),
        "xl: no boot file named 'x.cfg' (there are no boot files)"
    );
}

#[test]
fn every_failure_after_creation_destroys_the_domain() {
    let files = Files::new(&[("hello.cfg", HELLO)]);
    let cases: &[(Fail, &str)] = &[
        (Fail::Populate(Errno::ENOMEM), "xl: creating 'hello' failed while populating its memory: ENOMEM; domain 1 destroyed"),
        (Fail::PopulateShort, "xl: creating 'hello' failed while populating its memory: the hypervisor gave 1023 of 1024 frames (ENOMEM); domain 1 destroyed"),
        (Fail::Info(Errno::ESRCH), "xl: creating 'hello' failed while reading its domain info: ESRCH; domain 1 destroyed"),
        (Fail::Map, "xl: creating 'hello' failed while building it: mapping its memory into dom0: no free frames; domain 1 destroyed"),
        (Fail::Unmap, "xl: creating 'hello' failed while building it: unmapping its memory from dom0: no free frames; domain 1 destroyed"),
        (Fail::VcpuContext(Errno::EINVAL), "xl: creating 'hello' failed while setting vCPU 0's registers: EINVAL; domain 1 destroyed"),
        (Fail::Unpause(Errno::EPERM), "xl: creating 'hello' failed while unpausing it: EPERM; domain 1 destroyed"),
    ];
    for (fail, want) in cases {
        let mut ctl = FakeControl::new(65536, 60000);
        ctl.fail.push(*fail);
        let (_, result) = create_with(&mut ctl, &files, "hello.cfg", false);
        assert_eq!(error_line(result), *want, "{fail:?}");
        assert_eq!(ctl.domains.len(), 1, "{fail:?}: only dom0 is left");
        assert_eq!(ctl.free_pages, 60000, "{fail:?}: every frame is back");
        assert!(ctl.mapped.is_empty());
    }
    // The destroy itself failing is said too.
    let mut ctl = FakeControl::new(65536, 60000);
    ctl.fail.extend([
        Fail::VcpuContext(Errno::EINVAL),
        Fail::Destroy(Errno::EBUSY),
    ]);
    let (_, result) = create_with(&mut ctl, &files, "hello.cfg", false);
    assert_eq!(
        error_line(result),
        "xl: creating 'hello' failed while setting vCPU 0's registers: EINVAL; destroying domain 1 failed too: EBUSY"
    );
}

#[test]
fn refusals_of_the_create_itself() {
    let files = Files::new(&[("hello.cfg", HELLO)]);
    let mut ctl = FakeControl::new(65536, 60000);
    ctl.fail.push(Fail::Create(Errno::EEXIST));
    let (_, r) = create_with(&mut ctl, &files, "hello.cfg", false);
    assert_eq!(error_line(r), "xl: a domain named 'hello' already exists");
    ctl.fail.push(Fail::Create(Errno::EPERM));
    let (_, r) = create_with(&mut ctl, &files, "hello.cfg", false);
    assert_eq!(
        error_line(r),
        "xl: cannot create 'hello': DOMCTL_createdomain failed: EPERM"
    );
    ctl.fail.push(Fail::List(Errno::ENOSYS));
    let (_, r) = create_with(&mut ctl, &files, "hello.cfg", false);
    assert_eq!(
        error_line(r),
        "xl: cannot create 'hello': listing the domains failed: ENOSYS"
    );
    assert_eq!(ctl.domains.len(), 1);
}

#[test]
fn the_initial_context_is_xens() {
    let built = BuiltDomain {
        entry: 0x1000,
        stack_top: 0x9000,
        start_info_va: 0x5000,
        l4_mfn: 0xabc,
        pt_frames: Vec::new(),
    };
    let c = initial_context(&built);
    assert_eq!(c.ctrlreg[3], 0xabc000);
    assert_eq!(c.user_regs.rsi, 0x5000);
    assert_eq!(c.user_regs.rsp, 0x9000);
    assert_eq!(c.user_regs.rip, 0x1000);
    assert_eq!(c.user_regs.rax | c.user_regs.rdi | c.user_regs.rbx, 0);
    assert_eq!(
        c.user_regs.ds | c.user_regs.es | c.user_regs.fs | c.user_regs.gs,
        0
    );
    assert_eq!(c.event_callback_eip, 0);
}
