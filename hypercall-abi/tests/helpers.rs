//! Tests of the small accessors: start_info fields, the console union, trap info flags, sysctl payloads, byte round trips.

use hypercall_abi::arch::{TrapInfo, TI_IF};
use hypercall_abi::shared_info::SharedInfo;
use hypercall_abi::start_info::{
    MultibootModList, StartInfo, StartInfoConsole, SIF_INITDOMAIN, SIF_PRIVILEGED, START_INFO_MAGIC,
};
use hypercall_abi::sysctl::{
    BenchOp, PhysInfo, Sysctl, BENCH_BARE_SYSCALL_ON, SYSCTL_BENCH, SYSCTL_INTERFACE_VERSION,
    SYSCTL_PHYSINFO,
};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

fn start_info_with(magic: &[u8], cmdline: &[u8], flags: u32) -> StartInfo {
    let mut si = StartInfo::new_zeroed();
    si.magic[..magic.len()].copy_from_slice(magic);
    si.cmd_line[..cmdline.len()].copy_from_slice(cmdline);
    si.flags = flags;
    si
}

#[test]
fn cmdline_stops_at_the_first_nul() {
    let si = start_info_with(START_INFO_MAGIC, b"console=com1 loglvl=all\0junk", 0);
    assert_eq!(si.cmdline(), b"console=com1 loglvl=all");
    assert_eq!(start_info_with(b"", b"", 0).cmdline(), b"");
}

#[test]
fn cmdline_without_nul_is_the_whole_array() {
    let mut si = StartInfo::new_zeroed();
    si.cmd_line = [b'x'; 1024];
    assert_eq!(si.cmdline().len(), 1024);
}

#[test]
fn magic_str_is_the_magic_without_padding() {
    let si = start_info_with(START_INFO_MAGIC, b"", 0);
    assert_eq!(si.magic_str(), START_INFO_MAGIC);
    assert!(si.magic_str().starts_with(b"xen-3.0"));
}

#[test]
fn privilege_flags() {
    let dom0 = start_info_with(START_INFO_MAGIC, b"", SIF_PRIVILEGED | SIF_INITDOMAIN);
    assert!(dom0.is_privileged() && dom0.is_initial_domain());
    let domu = start_info_with(START_INFO_MAGIC, b"", 0);
    assert!(!domu.is_privileged() && !domu.is_initial_domain());
    let privileged_domu = start_info_with(START_INFO_MAGIC, b"", SIF_PRIVILEGED);
    assert!(privileged_domu.is_privileged() && !privileged_domu.is_initial_domain());
}

#[test]
fn console_union_domu_reading_puts_bytes_where_c_does() {
    let mut si = StartInfo::new_zeroed();
    si.console = StartInfoConsole::domu(0x1122_3344_5566_7788, 0xAABB_CCDD);
    let bytes = si.as_bytes();
    // domU.mfn at 72..80, domU.evtchn at 80..84 (little-endian).
    assert_eq!(&bytes[72..80], &0x1122_3344_5566_7788u64.to_le_bytes());
    assert_eq!(&bytes[80..84], &0xAABB_CCDDu32.to_le_bytes());
    assert_eq!(si.console.domu_mfn(), 0x1122_3344_5566_7788);
    assert_eq!(si.console.domu_evtchn(), 0xAABB_CCDD);
}

#[test]
fn console_union_dom0_reading_puts_bytes_where_c_does() {
    let mut si = StartInfo::new_zeroed();
    si.console = StartInfoConsole::dom0(0x0000_0800, 0x0000_0024);
    let bytes = si.as_bytes();
    // dom0.info_off at 72..76, dom0.info_size at 76..80.
    assert_eq!(&bytes[72..76], &0x800u32.to_le_bytes());
    assert_eq!(&bytes[76..80], &0x24u32.to_le_bytes());
    assert_eq!(
        (si.console.dom0_info_off(), si.console.dom0_info_size()),
        (0x800, 0x24)
    );
}

#[test]
fn start_info_round_trips_through_bytes() {
    let mut si = start_info_with(START_INFO_MAGIC, b"root=/dev/xvda", SIF_INITDOMAIN);
    si.nr_pages = 0x8000;
    si.nr_p2m_frames = 17;
    let bytes = si.as_bytes().to_vec();
    assert_eq!(bytes.len(), 1168);
    assert_eq!(&bytes[1160..1168], &17u64.to_le_bytes());
    let back = StartInfo::read_from_bytes(&bytes).unwrap();
    assert_eq!(back, si);
    assert!(StartInfo::read_from_bytes(&bytes[..1167]).is_err());
}

#[test]
fn multiboot_module_list_terminator() {
    let list = [
        MultibootModList {
            mod_start: 0x40,
            mod_end: 0x13f,
            cmdline: 0x30,
            pad: 0,
        },
        MultibootModList {
            mod_start: 0,
            mod_end: 0,
            cmdline: 0,
            pad: 0,
        },
    ];
    let bytes = list.as_bytes();
    let (entries, _) = <[MultibootModList]>::ref_from_prefix_with_elems(bytes, 2).unwrap();
    let count = entries.iter().take_while(|m| !m.is_terminator()).count();
    assert_eq!(count, 1);
    // mod_end is inclusive.
    assert_eq!(entries[0].mod_end - entries[0].mod_start + 1, 0x100);
}

#[test]
fn trap_info_flags_follow_ti_macros() {
    let mut ti = TrapInfo::new(14, 0, true, 0xe033, 0xffff_ffff_8000_1000);
    assert_eq!((ti.dpl(), ti.masks_events()), (0, true));
    assert_eq!(ti.flags, TI_IF);
    ti.set_dpl(3);
    assert_eq!((ti.dpl(), ti.flags), (3, TI_IF | 3));
    ti.set_dpl(1);
    assert_eq!(ti.dpl(), 1);
    ti.set_masks_events(false);
    assert_eq!((ti.masks_events(), ti.flags), (false, 1));
    // Out-of-range levels are masked to two bits.
    assert_eq!(TrapInfo::new(3, 7, false, 0, 1).dpl(), 3);
    assert!(TrapInfo::new_zeroed().is_terminator());
    assert!(!ti.is_terminator());
}

#[test]
fn sysctl_new_sets_the_interface_version() {
    let s = Sysctl::new(SYSCTL_PHYSINFO);
    assert_eq!(
        (s.cmd, s.interface_version),
        (SYSCTL_PHYSINFO, SYSCTL_INTERFACE_VERSION)
    );
    assert!(s.u.iter().all(|&b| b == 0));
}

#[test]
fn sysctl_payload_round_trips() {
    let info = PhysInfo {
        nr_cpus: 2,
        cpu_khz: 2_400_000,
        total_pages: 0x8_0000,
        free_pages: 0x7_0000,
        max_mfn: 0x8_ffff,
        uptime_ns: 123_456_789,
        nr_domains: 1,
        _pad: 0,
    };
    let mut s = Sysctl::new(SYSCTL_PHYSINFO);
    s.write_payload(&info);
    assert_eq!(s.physinfo(), info);
    assert_eq!(s.read_payload::<PhysInfo>(), info);
    assert_eq!(&s.u[..48], info.as_bytes());
    assert!(s.u[48..].iter().all(|&b| b == 0));
    // The whole request as bytes: cmd, version, then the payload at offset 8.
    let bytes = s.as_bytes();
    assert_eq!(&bytes[0..4], &3u32.to_le_bytes());
    assert_eq!(&bytes[4..8], &0x5253_0001u32.to_le_bytes());
    assert_eq!(&bytes[8..12], &2u32.to_le_bytes());
}

#[test]
fn sysctl_bench_request() {
    let s = Sysctl::with_payload(
        SYSCTL_BENCH,
        &BenchOp {
            op: BENCH_BARE_SYSCALL_ON,
            ..BenchOp::default()
        },
    );
    assert_eq!(s.cmd, 0x100);
    assert_eq!(s.bench_op(), BenchOp { op: 1, ..BenchOp::default() });
    assert_eq!(&s.as_bytes()[8..16], &[1, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn shared_info_fits_a_zeroed_page() {
    let page = [0u8; 4096];
    let (si, _) = SharedInfo::ref_from_prefix(&page[..]).unwrap();
    assert_eq!(si.vcpu_info[0].evtchn_upcall_mask, 0);
    assert_eq!(si.evtchn_pending, [0; 64]);
}
