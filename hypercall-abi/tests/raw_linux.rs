//! Exercises the `raw` hypercall wrappers on the Linux host, whose x86_64 system call convention is the same register assignment.
//!
//! Linux takes the number in `rax` and arguments in `rdi`, `rsi`, `rdx`,
//! `r10`, `r8`, returns `-errno` in `rax`, and `syscall` clobbers `rcx` and
//! `r11`: exactly the PV hypercall convention. So running harmless Linux
//! system calls through `hypercallN` checks that each argument lands in the
//! right register and that the result comes back, without a hypervisor.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use std::ffi::CString;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use hypercall_abi::raw::{hypercall0, hypercall1, hypercall2, hypercall3, hypercall4, hypercall5};
use hypercall_abi::Errno;

const SYS_WRITE: u64 = 1;
const SYS_CLOSE: u64 = 3;
const SYS_PWRITE64: u64 = 18;
const SYS_GETPID: u64 = 39;
const SYS_GETCWD: u64 = 79;
const SYS_STATX: u64 = 332;
const AT_FDCWD: i64 = -100;
const STATX_SIZE: u32 = 0x200;
/// Offset of `stx_size` (u64) in `struct statx`.
const STATX_SIZE_OFFSET: usize = 0x28;

/// A scratch file path unique to this test process and `tag`.
fn scratch(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("hypercall-abi-raw-{}-{tag}", std::process::id()))
}

#[test]
fn zero_arguments_return_rax() {
    // SAFETY: on the Linux host `syscall` is a system call; getpid takes no
    // arguments and touches no memory.
    let pid = unsafe { hypercall0(SYS_GETPID) };
    assert_eq!(pid, i64::from(std::process::id()));
}

#[test]
fn one_argument_goes_in_rdi_and_errors_come_back_negative() {
    // SAFETY: close(-1) touches no memory and fails with EBADF.
    let ret = unsafe { hypercall1(SYS_CLOSE, (-1i64) as u64) };
    assert_eq!(ret, -9);
    assert_eq!(Errno::from_ret(ret), Some(Errno::EBADF));
}

#[test]
fn two_arguments_go_in_rdi_rsi() {
    let mut buf = [0u8; 4096];
    // SAFETY: getcwd writes at most `buf.len()` bytes into `buf`, which is
    // live and exclusively borrowed for the call.
    let ret = unsafe { hypercall2(SYS_GETCWD, buf.as_mut_ptr() as u64, buf.len() as u64) };
    assert!(ret > 0, "getcwd failed: {ret}");
    let cwd = std::env::current_dir().unwrap();
    let len = ret as usize - 1; // the length includes the NUL
    assert_eq!(&buf[..len], cwd.as_os_str().as_bytes());
}

#[test]
fn three_arguments_go_in_rdi_rsi_rdx() {
    let path = scratch("write");
    let file = File::create(&path).unwrap();
    let data = b"hello, hypercall";
    // SAFETY: write reads `data.len()` bytes from `data`, which is live for
    // the call; the descriptor belongs to `file`, open for writing.
    let ret = unsafe {
        hypercall3(
            SYS_WRITE,
            file.as_raw_fd() as u64,
            data.as_ptr() as u64,
            data.len() as u64,
        )
    };
    drop(file);
    let written = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    assert_eq!(ret, data.len() as i64);
    assert_eq!(written, data);
}

#[test]
fn fourth_argument_goes_in_r10() {
    let path = scratch("pwrite");
    fs::write(&path, b"..........").unwrap();
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    let data = b"XYZ";
    // SAFETY: pwrite64 reads 3 bytes from `data`, live for the call, and
    // writes them at offset 4 of the file behind the descriptor of `file`.
    let ret = unsafe {
        hypercall4(
            SYS_PWRITE64,
            file.as_raw_fd() as u64,
            data.as_ptr() as u64,
            3,
            4,
        )
    };
    drop(file);
    let contents = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    assert_eq!(ret, 3);
    assert_eq!(contents, b"....XYZ...");
}

#[test]
fn fifth_argument_goes_in_r8() {
    let path = scratch("statx");
    fs::write(&path, [7u8; 1234]).unwrap();
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    // struct statx is 256 bytes; u64 words keep it aligned.
    let mut statx = [0u64; 32];
    // SAFETY: statx reads the NUL-terminated `c_path` and writes at most 256
    // bytes into `statx`; both are live for the call and `statx` is
    // exclusively borrowed.
    let ret = unsafe {
        hypercall5(
            SYS_STATX,
            AT_FDCWD as u64,
            c_path.as_ptr() as u64,
            0,
            u64::from(STATX_SIZE),
            statx.as_mut_ptr() as u64,
        )
    };
    fs::remove_file(&path).unwrap();
    assert_eq!(ret, 0);
    assert_eq!(statx[STATX_SIZE_OFFSET / 8], 1234);
}
