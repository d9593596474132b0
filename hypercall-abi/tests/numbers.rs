//! Number tests: every enum against Xen 4.19's headers, `TryFrom` round trips, errno mapping and the key constants.

use hypercall_abi::console_io::{
    ConsoleIoCmd, UnknownConsoleIoCmd, CONSOLEIO_READ, CONSOLEIO_WRITE,
};
use hypercall_abi::elfnote::{UnknownXenElfNote, XenElfNote, XEN_ELFNOTE_MAX, XEN_ELFNOTE_NAME};
use hypercall_abi::errno::{Errno, UnknownErrno};
use hypercall_abi::hypercall::{
    Hypercall, UnknownHypercall, HYPERCALL_PAGE_STUBS, HYPERCALL_STUB_SIZE,
};
use hypercall_abi::mmu::{MmuextCmd, UnknownMmuextCmd};
use hypercall_abi::sched::{
    SchedOp, ShutdownReason, UnknownSchedOp, UnknownShutdownReason, SHUTDOWN_MAX,
};
use hypercall_abi::version::{UnknownXenVersionOp, XenVersionOp, XEN_VERSION};

/// Checks an enum against its `ALL` list and its `TryFrom`: every listed
/// variant round-trips, `ALL` is strictly increasing, and every raw value in
/// `0..=$probe` (plus the type's maximum) either decodes to the variant with
/// that number or is rejected with an error carrying the value.
macro_rules! round_trip {
    ($enum:ident, $err:ident, $raw:ty, $probe:expr) => {{
        let all = $enum::ALL;
        for pair in all.windows(2) {
            assert!(
                (pair[0] as $raw) < (pair[1] as $raw),
                "{:?} before {:?}",
                pair[0],
                pair[1]
            );
        }
        for &v in all.iter() {
            assert_eq!($enum::try_from(v as $raw), Ok(v));
        }
        let mut known = 0usize;
        for raw in (0..=$probe).chain([<$raw>::MAX]) {
            match $enum::try_from(raw) {
                Ok(v) => {
                    assert_eq!(v as $raw, raw);
                    known += 1;
                }
                Err(e) => {
                    assert_eq!(e, $err(raw));
                    assert!(!all.iter().any(|&v| v as $raw == raw), "{raw} rejected");
                }
            }
        }
        assert_eq!(
            known,
            all.len(),
            concat!("decodable ", stringify!($enum), " values")
        );
    }};
}

/// `__HYPERVISOR_*` from Xen 4.19 `xen.h`, in header order.
const XEN_HYPERCALLS: [(Hypercall, u64); 50] = [
    (Hypercall::SetTrapTable, 0),
    (Hypercall::PtUpdate, 1),
    (Hypercall::SetGdt, 2),
    (Hypercall::StackSwitch, 3),
    (Hypercall::SetCallbacks, 4),
    (Hypercall::FpuTaskswitch, 5),
    (Hypercall::SchedOpCompat, 6),
    (Hypercall::PlatformOp, 7),
    (Hypercall::SetDebugreg, 8),
    (Hypercall::GetDebugreg, 9),
    (Hypercall::UpdateDescriptor, 10),
    (Hypercall::MemoryOp, 12),
    (Hypercall::Multicall, 13),
    (Hypercall::UpdateVaMapping, 14),
    (Hypercall::SetTimerOp, 15),
    (Hypercall::EventChannelOpCompat, 16),
    (Hypercall::XenVersion, 17),
    (Hypercall::ConsoleIo, 18),
    (Hypercall::PhysdevOpCompat, 19),
    (Hypercall::GrantTableOp, 20),
    (Hypercall::VmAssist, 21),
    (Hypercall::UpdateVaMappingOtherdomain, 22),
    (Hypercall::Iret, 23),
    (Hypercall::VcpuOp, 24),
    (Hypercall::SetSegmentBase, 25),
    (Hypercall::MmuextOp, 26),
    (Hypercall::XsmOp, 27),
    (Hypercall::NmiOp, 28),
    (Hypercall::SchedOp, 29),
    (Hypercall::CallbackOp, 30),
    (Hypercall::XenoprofOp, 31),
    (Hypercall::EventChannelOp, 32),
    (Hypercall::PhysdevOp, 33),
    (Hypercall::HvmOp, 34),
    (Hypercall::Sysctl, 35),
    (Hypercall::Domctl, 36),
    (Hypercall::KexecOp, 37),
    (Hypercall::TmemOp, 38),
    (Hypercall::ArgoOp, 39),
    (Hypercall::XenpmuOp, 40),
    (Hypercall::DmOp, 41),
    (Hypercall::HypfsOp, 42),
    (Hypercall::Arch0, 48),
    (Hypercall::Arch1, 49),
    (Hypercall::Arch2, 50),
    (Hypercall::Arch3, 51),
    (Hypercall::Arch4, 52),
    (Hypercall::Arch5, 53),
    (Hypercall::Arch6, 54),
    (Hypercall::Arch7, 55),
];

/// `XEN_ERRNO(name, value)` from Xen 4.19 `errno.h`, aliases included.
const XEN_ERRNOS: [(&str, i32); 51] = [
    ("EPERM", 1),
    ("ENOENT", 2),
    ("ESRCH", 3),
    ("EINTR", 4),
    ("EIO", 5),
    ("ENXIO", 6),
    ("E2BIG", 7),
    ("ENOEXEC", 8),
    ("EBADF", 9),
    ("ECHILD", 10),
    ("EAGAIN", 11),
    ("EWOULDBLOCK", 11),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EFAULT", 14),
    ("EBUSY", 16),
    ("EEXIST", 17),
    ("EXDEV", 18),
    ("ENODEV", 19),
    ("ENOTDIR", 20),
    ("EISDIR", 21),
    ("EINVAL", 22),
    ("ENFILE", 23),
    ("EMFILE", 24),
    ("ENOSPC", 28),
    ("EROFS", 30),
    ("EMLINK", 31),
    ("EDOM", 33),
    ("ERANGE", 34),
    ("EDEADLK", 35),
    ("EDEADLOCK", 35),
    ("ENAMETOOLONG", 36),
    ("ENOLCK", 37),
    ("ENOSYS", 38),
    ("ENOTEMPTY", 39),
    ("ENODATA", 61),
    ("ETIME", 62),
    ("EBADMSG", 74),
    ("EOVERFLOW", 75),
    ("EILSEQ", 84),
    ("ERESTART", 85),
    ("ENOTSOCK", 88),
    ("EMSGSIZE", 90),
    ("EOPNOTSUPP", 95),
    ("EADDRINUSE", 98),
    ("EADDRNOTAVAIL", 99),
    ("ENOBUFS", 105),
    ("EISCONN", 106),
    ("ENOTCONN", 107),
    ("ETIMEDOUT", 110),
    ("ECONNREFUSED", 111),
];

#[test]
fn hypercall_numbers_match_xen() {
    for (h, nr) in XEN_HYPERCALLS {
        assert_eq!(h as u64, nr, "{h:?}");
        assert_eq!(h.number(), nr);
        assert_eq!(u64::from(h), nr);
        assert_eq!(Hypercall::try_from(nr), Ok(h));
    }
    assert_eq!(Hypercall::ALL.len(), XEN_HYPERCALLS.len());
    assert!(Hypercall::ALL
        .iter()
        .zip(XEN_HYPERCALLS)
        .all(|(&a, (b, _))| a == b));
}

#[test]
fn hypercall_try_from_round_trips_and_rejects_gaps() {
    round_trip!(Hypercall, UnknownHypercall, u64, 1024u64);
    for gap in [11u64, 43, 44, 45, 46, 47, 56, 64, 128, 1 << 32] {
        assert_eq!(Hypercall::try_from(gap), Err(UnknownHypercall(gap)));
    }
}

#[test]
fn hypercall_page_holds_every_stub() {
    assert_eq!(HYPERCALL_STUB_SIZE, 32);
    assert_eq!(HYPERCALL_PAGE_STUBS, 128);
    assert_eq!(
        HYPERCALL_STUB_SIZE * HYPERCALL_PAGE_STUBS,
        hypercall_abi::PAGE_SIZE
    );
    assert_eq!(Hypercall::ConsoleIo.stub_offset(), 18 * 32);
    assert!(Hypercall::ALL
        .iter()
        .all(|h| h.stub_offset() + HYPERCALL_STUB_SIZE <= hypercall_abi::PAGE_SIZE));
}

#[test]
fn errno_values_and_names_match_xen() {
    for (name, value) in XEN_ERRNOS {
        let errno = Errno::try_from(value).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(errno as i32, value);
        assert_eq!(i32::from(errno), value);
        match name {
            "EWOULDBLOCK" => assert_eq!(errno, Errno::EWOULDBLOCK),
            "EDEADLOCK" => assert_eq!(errno, Errno::EDEADLOCK),
            _ => assert_eq!(errno.name(), name),
        }
    }
    assert_eq!(Errno::EWOULDBLOCK, Errno::EAGAIN);
    assert_eq!(Errno::EDEADLOCK, Errno::EDEADLK);
    // Every distinct value, and nothing else.
    assert_eq!(Errno::ALL.len(), XEN_ERRNOS.len() - 2);
}

#[test]
fn errno_try_from_round_trips() {
    round_trip!(Errno, UnknownErrno, i32, 200i32);
    for bad in [0, -1, -38, 15, 112, i32::MIN] {
        assert_eq!(Errno::try_from(bad), Err(UnknownErrno(bad)));
    }
}

#[test]
fn errno_return_values_are_negated() {
    assert_eq!(Errno::ENOSYS.to_ret(), -38);
    assert_eq!(Errno::EPERM.to_ret(), -1);
    assert_eq!(Errno::EACCES.to_ret(), -13);
    for &e in Errno::ALL.iter() {
        assert!(e.to_ret() < 0);
        assert_eq!(Errno::from_ret(e.to_ret()), Some(e));
    }
    assert_eq!(Errno::from_ret(-38), Some(Errno::ENOSYS));
    assert_eq!(Errno::ENOSYS.name(), "ENOSYS");
}

#[test]
fn errno_from_ret_rejects_success_and_unknown_values() {
    for ret in [0, 1, 38, 4096, i64::MAX] {
        assert_eq!(Errno::from_ret(ret), None, "{ret}");
    }
    for ret in [-15, -112, -4096, -(1 << 31), -(1 << 32) - 38, i64::MIN] {
        assert_eq!(Errno::from_ret(ret), None, "{ret}");
    }
}

#[test]
fn errno_displays_its_name() {
    let mut buf = String::new();
    use std::fmt::Write;
    write!(buf, "{}", Errno::EINVAL).unwrap();
    assert_eq!(buf, "EINVAL");
}

#[test]
fn console_io_commands_match_xen() {
    assert_eq!(ConsoleIoCmd::Write as u32, 0);
    assert_eq!(ConsoleIoCmd::Read as u32, 1);
    assert_eq!((CONSOLEIO_WRITE, CONSOLEIO_READ), (0, 1));
    round_trip!(ConsoleIoCmd, UnknownConsoleIoCmd, u32, 64u32);
}

#[test]
fn sched_ops_match_xen() {
    let expected = [
        (SchedOp::Yield, 0),
        (SchedOp::Block, 1),
        (SchedOp::Shutdown, 2),
        (SchedOp::Poll, 3),
        (SchedOp::RemoteShutdown, 4),
        (SchedOp::ShutdownCode, 5),
        (SchedOp::Watchdog, 6),
        (SchedOp::PinOverride, 7),
    ];
    for (op, nr) in expected {
        assert_eq!(op as u32, nr, "{op:?}");
    }
    round_trip!(SchedOp, UnknownSchedOp, u32, 64u32);
}

#[test]
fn shutdown_reasons_match_xen() {
    let expected = [
        (ShutdownReason::Poweroff, 0),
        (ShutdownReason::Reboot, 1),
        (ShutdownReason::Suspend, 2),
        (ShutdownReason::Crash, 3),
        (ShutdownReason::Watchdog, 4),
        (ShutdownReason::SoftReset, 5),
    ];
    for (reason, nr) in expected {
        assert_eq!(reason as u32, nr, "{reason:?}");
    }
    assert_eq!(SHUTDOWN_MAX, 5);
    round_trip!(ShutdownReason, UnknownShutdownReason, u32, 64u32);
}

#[test]
fn xen_version_ops_match_xen() {
    let expected = [
        (XenVersionOp::Version, 0),
        (XenVersionOp::Extraversion, 1),
        (XenVersionOp::CompileInfo, 2),
        (XenVersionOp::Capabilities, 3),
        (XenVersionOp::Changeset, 4),
        (XenVersionOp::PlatformParameters, 5),
        (XenVersionOp::GetFeatures, 6),
        (XenVersionOp::Pagesize, 7),
        (XenVersionOp::GuestHandle, 8),
        (XenVersionOp::Commandline, 9),
        (XenVersionOp::BuildId, 10),
    ];
    for (op, nr) in expected {
        assert_eq!(op as u32, nr, "{op:?}");
    }
    round_trip!(XenVersionOp, UnknownXenVersionOp, u32, 64u32);
    assert_eq!(XEN_VERSION, (4 << 16) | 19);
}

#[test]
fn mmuext_commands_match_xen() {
    let expected = [
        (MmuextCmd::PinL1Table, 0),
        (MmuextCmd::PinL2Table, 1),
        (MmuextCmd::PinL3Table, 2),
        (MmuextCmd::PinL4Table, 3),
        (MmuextCmd::UnpinTable, 4),
        (MmuextCmd::NewBaseptr, 5),
        (MmuextCmd::TlbFlushLocal, 6),
        (MmuextCmd::InvlpgLocal, 7),
        (MmuextCmd::TlbFlushMulti, 8),
        (MmuextCmd::InvlpgMulti, 9),
        (MmuextCmd::TlbFlushAll, 10),
        (MmuextCmd::InvlpgAll, 11),
        (MmuextCmd::FlushCache, 12),
        (MmuextCmd::SetLdt, 13),
        (MmuextCmd::NewUserBaseptr, 15),
        (MmuextCmd::ClearPage, 16),
        (MmuextCmd::CopyPage, 17),
        (MmuextCmd::FlushCacheGlobal, 18),
        (MmuextCmd::MarkSuper, 19),
        (MmuextCmd::UnmarkSuper, 20),
    ];
    for (cmd, nr) in expected {
        assert_eq!(cmd as u32, nr, "{cmd:?}");
    }
    assert_eq!(MmuextCmd::try_from(14), Err(UnknownMmuextCmd(14)));
    round_trip!(MmuextCmd, UnknownMmuextCmd, u32, 64u32);
}

#[test]
fn elf_notes_match_xen() {
    let expected = [
        (XenElfNote::Info, 0),
        (XenElfNote::Entry, 1),
        (XenElfNote::HypercallPage, 2),
        (XenElfNote::VirtBase, 3),
        (XenElfNote::PaddrOffset, 4),
        (XenElfNote::XenVersion, 5),
        (XenElfNote::GuestOs, 6),
        (XenElfNote::GuestVersion, 7),
        (XenElfNote::Loader, 8),
        (XenElfNote::PaeMode, 9),
        (XenElfNote::Features, 10),
        (XenElfNote::BsdSymtab, 11),
        (XenElfNote::HvStartLow, 12),
        (XenElfNote::L1MfnValid, 13),
        (XenElfNote::SuspendCancel, 14),
        (XenElfNote::InitP2m, 15),
        (XenElfNote::ModStartPfn, 16),
        (XenElfNote::SupportedFeatures, 17),
        (XenElfNote::Phys32Entry, 18),
        (XenElfNote::Phys32Reloc, 19),
    ];
    for (note, nr) in expected {
        assert_eq!(note as u32, nr, "{note:?}");
    }
    assert_eq!(XEN_ELFNOTE_MAX, 19);
    assert_eq!(XEN_ELFNOTE_NAME, b"Xen");
    round_trip!(XenElfNote, UnknownXenElfNote, u32, 64u32);
    assert_eq!(
        XenElfNote::try_from(0x100_0001),
        Err(UnknownXenElfNote(0x100_0001))
    );
}
