//! Xen's x86_64 paravirtualised (PV) guest ABI, written down as Rust data.
//!
//! This crate is to the project what `xen/include/public/` is to Xen: the one
//! contract the microkernel and every guest compile against. It holds
//!
//! * numbers as enums with a hand-written `TryFrom` (hypercalls, sub-ops,
//!   errno values, ELF note types) and as plain constants;
//! * `#[repr(C)]` structures laid out byte for byte as Xen's x86_64 headers
//!   (`start_info`, `shared_info`, `vcpu_guest_context`, ...), with `zerocopy`
//!   derives and compile-time size checks, so both sides can copy them to and
//!   from guest memory without `unsafe`;
//! * newtypes for ids ([`DomId`], [`Mfn`], [`Pfn`], [`Port`], [`GrantRef`],
//!   [`VcpuId`]);
//! * the only code: the `syscall` instruction wrappers in [`raw`].
//!
//! Every number was checked against the Xen 4.19 public headers
//! (`xen.h`, `arch-x86/xen.h`, `arch-x86/xen-x86_64.h`, `sched.h`,
//! `version.h`, `features.h`, `elfnote.h`, `errno.h`, `event_channel.h`,
//! `grant_table.h`, `memory.h`, `vcpu.h`, `callback.h`, `physdev.h`). The
//! [`sysctl`] module is the exception: it is this project's own design.
//!
//! Xen spells many constants with lower-case suffixes (`CONSOLEIO_write`,
//! `SCHEDOP_yield`); here they are upper-cased (`CONSOLEIO_WRITE`,
//! `SCHEDOP_YIELD`) as Rust expects. The x86_64 ABI is little-endian, and so
//! are the accessors that split a word into halves.
#![no_std]
#![deny(unsafe_code)]

pub mod arch;
pub mod callback;
pub mod console_io;
pub mod domctl;
pub mod elfnote;
pub mod errno;
pub mod event_channel;
pub mod grant_table;
pub mod hypercall;
pub mod layout;
pub mod memory;
pub mod mmu;
pub mod physdev;
pub mod sched;
pub mod shared_info;
pub mod start_info;
pub mod sysctl;
pub mod types;
pub mod vcpu;
pub mod version;

// The hypercall instruction wrappers are the crate's only unsafe code: they
// run `syscall`, which hands guest pointers to the hypervisor, and no safe
// signature can promise that those pointers are valid.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub mod raw;

pub use arch::{CpuUserRegs, TrapInfo, VcpuGuestContext};
pub use console_io::ConsoleIoCmd;
pub use elfnote::XenElfNote;
pub use errno::Errno;
pub use hypercall::{Hypercall, UnknownHypercall};
pub use mmu::{MmuUpdate, MmuextCmd, MmuextOp};
pub use sched::{SchedOp, ShutdownReason};
pub use shared_info::{SharedInfo, VcpuInfo, VcpuTimeInfo};
pub use start_info::{MultibootModList, StartInfo, StartInfoConsole};
pub use sysctl::Sysctl;
pub use types::{DomId, GrantRef, Mfn, Pfn, Port, VcpuId};
pub use version::XenVersionOp;

/// Version of this crate's ABI definitions, `major << 16 | minor`.
///
/// Bumped whenever a definition here changes in a way that the microkernel
/// and its guests must agree on.
pub const ABI_VERSION: u32 = 0x0001_0000;

/// Size of a guest and machine page frame, in bytes (x86 4 KiB pages).
pub const PAGE_SIZE: usize = 4096;

/// `log2(PAGE_SIZE)`: shift between a frame number and its address.
pub const PAGE_SHIFT: u32 = 12;

const _: () = assert!(1usize << PAGE_SHIFT == PAGE_SIZE);
