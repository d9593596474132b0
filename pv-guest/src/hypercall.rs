//! Typed hypercall wrappers that call through the hypercall page (guest target only).
//!
//! Xen x86_64 PV calling convention: number in rax, arguments in rdi, rsi, rdx, r10, r8,
//! result in rax (negative errno on failure). The page holds 128 stubs of 32 bytes each
//! (`mov eax, nr; syscall; ret`) that the domain builder writes; we `call` stub `nr`.
//! rcx and r11 are clobbered by `syscall`. Like Linux, we also treat the argument registers
//! as clobbered: Xen's debug builds poison the argument registers a hypercall does not use.

use core::arch::asm;
use core::ffi::c_void;

use hypercall_abi::console_io::{CONSOLEIO_READ, CONSOLEIO_WRITE};
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall::{Hypercall, HYPERCALL_PAGE_STUBS, HYPERCALL_STUB_SIZE};
use hypercall_abi::sched::{SchedShutdown, ShutdownReason, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD};
use hypercall_abi::sysctl::{BenchOp, PhysInfo, Sysctl, SYSCTL_BENCH, SYSCTL_PHYSINFO};
use hypercall_abi::version::{
    XenCommandline, XenCompileInfo, XenDomainHandle, XenFeatureInfo, XenPlatformParameters,
    XENVER_CAPABILITIES, XENVER_CHANGESET, XENVER_COMMANDLINE, XENVER_COMPILE_INFO,
    XENVER_EXTRAVERSION, XENVER_GET_FEATURES, XENVER_GUEST_HANDLE, XENVER_PLATFORM_PARAMETERS,
    XENVER_VERSION, XEN_CAPABILITIES_INFO_LEN, XEN_CHANGESET_INFO_LEN, XEN_EXTRAVERSION_LEN,
};
use zerocopy::{FromZeros, IntoBytes};

unsafe extern "C" {
    /// The hypercall page, defined in `start.rs` inside .text and filled by the builder.
    static hypercall_page: [u8; HYPERCALL_PAGE_SIZE];
}

/// Size of the hypercall page.
pub const HYPERCALL_PAGE_SIZE: usize = HYPERCALL_PAGE_STUBS * HYPERCALL_STUB_SIZE;
/// Number of stubs (hypercall numbers reachable through the page).
pub const HYPERCALL_PAGE_SLOTS: u64 = HYPERCALL_PAGE_STUBS as u64;

const _: () = assert!(HYPERCALL_PAGE_SIZE == 4096);

/// Address of the hypercall page.
pub fn hypercall_page_addr() -> usize {
    (&raw const hypercall_page) as usize
}

/// Converts a raw hypercall result into `Ok(value)` or `Err(errno)`. Every negative value is
/// an error; one that is not a known errno (which the hypervisor never returns) reads as
/// `EINVAL`. Callers that need the exact value use the raw call.
pub fn check(ret: i64) -> Result<u64, Errno> {
    if ret < 0 {
        Err(Errno::from_ret(ret).unwrap_or(Errno::EINVAL))
    } else {
        Ok(ret as u64)
    }
}

/// Calls hypercall `nr` (< 128) through its stub in the hypercall page.
///
/// # Safety
/// The arguments must be valid for the operation: every pointer the hypervisor will write
/// through must point to memory the caller owns and that may be overwritten.
#[inline]
pub unsafe fn hypercall_via_page(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    assert!(
        nr < HYPERCALL_PAGE_SLOTS,
        "hypercall {nr} has no stub in the page"
    );
    let stub = hypercall_page_addr() + nr as usize * HYPERCALL_STUB_SIZE;
    let ret: i64;
    // Memory effects of the hypercall itself are the caller's responsibility (see # Safety),
    // hence no `nomem`/`readonly`.
    // SAFETY: `stub` is a builder-written stub in our executable hypercall page; it only does
    // `syscall` and `ret`, using the stack (a return address) and the registers declared here.
    unsafe {
        asm!(
            "call {stub}",
            stub = in(reg) stub,
            inlateout("rax") nr as i64 => ret,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            out("rcx") _,
            out("r11") _,
        );
    }
    ret
}

/// A hypercall by number with five arguments: through the hypercall page when it has a stub
/// for `nr`, otherwise with a direct `syscall` (for tests of out-of-range numbers).
///
/// # Safety
/// As for [`hypercall_via_page`].
pub unsafe fn hypercall(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    if nr < HYPERCALL_PAGE_SLOTS {
        // SAFETY: forwarded from the caller.
        unsafe { hypercall_via_page(nr, a1, a2, a3, a4, a5) }
    } else {
        // SAFETY: forwarded from the caller.
        unsafe { hypercall_abi::raw::hypercall5(nr, a1, a2, a3, a4, a5) }
    }
}

/// `console_io(CONSOLEIO_write)`: writes `bytes` to the console. Xen returns 0 once all of
/// them are written; this returns the count, for `io::Write`-style callers.
pub fn console_io_write(bytes: &[u8]) -> Result<usize, Errno> {
    // SAFETY: the hypervisor only reads `bytes.len()` bytes from `bytes`.
    let ret = unsafe {
        hypercall_via_page(
            Hypercall::ConsoleIo as u64,
            u64::from(CONSOLEIO_WRITE),
            bytes.len() as u64,
            bytes.as_ptr() as u64,
            0,
            0,
        )
    };
    check(ret).map(|_| bytes.len())
}

/// `console_io(CONSOLEIO_read)`: copies pending input (non-blocking) into `buf`, returns the
/// count (0 when there is none).
pub fn console_io_read(buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: the hypervisor writes at most `buf.len()` bytes into `buf`, which we own.
    let ret = unsafe {
        hypercall_via_page(
            Hypercall::ConsoleIo as u64,
            u64::from(CONSOLEIO_READ),
            buf.len() as u64,
            buf.as_mut_ptr() as u64,
            0,
            0,
        )
    };
    check(ret).map(|n| n.min(buf.len() as u64) as usize)
}

/// `xen_version(op, arg)` with a raw argument pointer; returns the raw result.
///
/// # Safety
/// `arg` must be null or point to a writable buffer at least as large as the output of `op`
/// (e.g. 16 bytes for extraversion, 1024 for capabilities).
#[inline]
pub unsafe fn xen_version_raw(op: u32, arg: *mut c_void) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe {
        hypercall_via_page(
            Hypercall::XenVersion as u64,
            u64::from(op),
            arg as u64,
            0,
            0,
            0,
        )
    }
}

/// `xen_version(op, buf)` for the sub-ops whose output is a plain buffer; `buf` is passed
/// as the argument (Xen writes at most the op's fixed output size into it). Returns the raw
/// result, or `-EINVAL` without calling if `buf` is smaller than the op's output.
pub fn xen_version(op: u32, buf: &mut [u8]) -> i64 {
    if buf.len() < version_output_size(op) {
        return Errno::EINVAL.to_ret();
    }
    // SAFETY: `buf` is writable and at least as large as the output of any sub-op we know;
    // for sub-ops we do not know the hypervisor writes nothing (it returns -ENOSYS).
    unsafe { xen_version_raw(op, buf.as_mut_ptr().cast()) }
}

/// Bytes that `xen_version(op)` writes through its argument.
pub const fn version_output_size(op: u32) -> usize {
    match op {
        XENVER_EXTRAVERSION => XEN_EXTRAVERSION_LEN,
        XENVER_GUEST_HANDLE => core::mem::size_of::<XenDomainHandle>(),
        XENVER_COMPILE_INFO => core::mem::size_of::<XenCompileInfo>(),
        XENVER_CAPABILITIES => XEN_CAPABILITIES_INFO_LEN,
        XENVER_COMMANDLINE => core::mem::size_of::<XenCommandline>(),
        XENVER_CHANGESET => XEN_CHANGESET_INFO_LEN,
        XENVER_PLATFORM_PARAMETERS => core::mem::size_of::<XenPlatformParameters>(),
        XENVER_GET_FEATURES => core::mem::size_of::<XenFeatureInfo>(),
        _ => 0,
    }
}

/// `XENVER_version`: `(major, minor)`.
pub fn xen_version_number() -> (u16, u16) {
    let v = xen_version(XENVER_VERSION, &mut []) as u64;
    ((v >> 16) as u16, v as u16)
}

/// A fixed-size xen_version string sub-op (extraversion, capabilities, changeset, ...).
pub fn xen_version_string<const N: usize>(op: u32) -> Result<[u8; N], Errno> {
    let mut buf = [0u8; N];
    check(xen_version(op, &mut buf))?;
    Ok(buf)
}

/// `XENVER_compile_info`.
pub fn xen_compile_info() -> Result<XenCompileInfo, Errno> {
    let mut info = XenCompileInfo::new_zeroed();
    check(xen_version(XENVER_COMPILE_INFO, info.as_mut_bytes()))?;
    Ok(info)
}

/// `XENVER_platform_parameters`: the start of the hypervisor's reserved area.
pub fn xen_virt_start() -> Result<u64, Errno> {
    let mut params = XenPlatformParameters::new_zeroed();
    check(xen_version(
        XENVER_PLATFORM_PARAMETERS,
        params.as_mut_bytes(),
    ))?;
    Ok(params.virt_start)
}

/// `XENVER_get_features` for feature submap `index`.
pub fn xen_features(index: u32) -> Result<u32, Errno> {
    let mut info = XenFeatureInfo::new_zeroed();
    info.submap_idx = index;
    check(xen_version(XENVER_GET_FEATURES, info.as_mut_bytes()))?;
    Ok(info.submap)
}

/// `set_debugreg(reg, value)`: sets one of this vCPU's debug registers (DR0..3 a guest
/// address; DR6, DR7 32-bit values, DR7.GD refused). The raw result (0 or a negative
/// errno).
pub fn set_debugreg(reg: u32, value: u64) -> i64 {
    // SAFETY: the hypervisor reads no memory for this call.
    unsafe { hypercall_via_page(Hypercall::SetDebugreg as u64, u64::from(reg), value, 0, 0, 0) }
}

/// `get_debugreg(reg)`: the register's value, or a negative errno (`ENODEV`) for one that
/// does not exist. (A DR0..3 holding an upper-half address reads as negative too, as from
/// Xen: check the register number, not the sign, when that matters.)
pub fn get_debugreg(reg: u32) -> i64 {
    // SAFETY: the hypervisor reads no memory for this call.
    unsafe { hypercall_via_page(Hypercall::GetDebugreg as u64, u64::from(reg), 0, 0, 0, 0) }
}

/// `SCHEDOP_watchdog { id, timeout }`: `id` 0 creates a watchdog of `timeout` seconds and
/// returns its id; with an id, a `timeout` of 0 destroys it and any other pokes it. The raw
/// result (an id, 0, or a negative errno).
pub fn sched_watchdog_raw(id: u32, timeout: u32) -> i64 {
    let arg = hypercall_abi::sched::SchedWatchdog { id, timeout };
    // SAFETY: the hypervisor only reads the argument, which we own.
    unsafe {
        hypercall_via_page(
            Hypercall::SchedOp as u64,
            u64::from(hypercall_abi::sched::SCHEDOP_WATCHDOG),
            (&raw const arg) as u64,
            0,
            0,
            0,
        )
    }
}

/// `update_descriptor(maddr, desc)`: writes descriptor `desc` at machine address `maddr`
/// (8-byte aligned, in a frame of this domain's that is not mapped writable), which the
/// hypervisor checks as Xen does (`EINVAL` for one a guest may not have).
pub fn update_descriptor(maddr: u64, desc: u64) -> Result<(), Errno> {
    // SAFETY: update_descriptor takes two values and writes only the descriptor frame,
    // which the hypervisor checks is ours and not mapped writable.
    let ret = unsafe { hypercall_via_page(Hypercall::UpdateDescriptor as u64, maddr, desc, 0, 0, 0) };
    check(ret).map(|_| ())
}

/// `SCHEDOP_yield`: gives up the CPU.
pub fn sched_yield() -> Result<(), Errno> {
    // SAFETY: SCHEDOP_yield takes no argument and touches no guest memory.
    let ret = unsafe {
        hypercall_via_page(
            Hypercall::SchedOp as u64,
            u64::from(SCHEDOP_YIELD),
            0,
            0,
            0,
            0,
        )
    };
    check(ret).map(|_| ())
}

/// `SCHEDOP_shutdown(reason)`. It does not return; if the hypervisor refuses, this retries
/// (yielding in between) forever.
pub fn sched_shutdown(reason: ShutdownReason) -> ! {
    let arg = SchedShutdown {
        reason: reason as u32,
    };
    loop {
        // SAFETY: the hypervisor only reads the `SchedShutdown` we pass.
        unsafe {
            hypercall_via_page(
                Hypercall::SchedOp as u64,
                u64::from(SCHEDOP_SHUTDOWN),
                (&raw const arg) as u64,
                0,
                0,
                0,
            );
        }
        let _ = sched_yield();
    }
}

/// `sysctl(op)`: the privileged control hypercall; the hypervisor reads and updates `op`.
pub fn sysctl(op: &mut Sysctl) -> Result<(), Errno> {
    // SAFETY: the hypervisor reads and writes only the `Sysctl` we own.
    let ret = unsafe {
        hypercall_via_page(
            Hypercall::Sysctl as u64,
            (op as *mut Sysctl) as u64,
            0,
            0,
            0,
            0,
        )
    };
    check(ret).map(|_| ())
}

/// `SYSCTL_PHYSINFO`.
pub fn physinfo() -> Result<PhysInfo, Errno> {
    let mut op = Sysctl::new(SYSCTL_PHYSINFO);
    sysctl(&mut op)?;
    Ok(op.physinfo())
}

/// `SYSCTL_BENCH` with sub-op `op` (`BENCH_*`) and its argument; returns its result.
pub fn bench_op(op: u32, arg: u64) -> Result<u64, Errno> {
    let mut s = Sysctl::with_payload(SYSCTL_BENCH, &BenchOp { op, arg, ..BenchOp::default() });
    sysctl(&mut s)?;
    Ok(s.bench_op().result)
}
