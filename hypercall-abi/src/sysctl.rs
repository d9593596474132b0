//! The `sysctl` hypercall as this project defines it: privileged (dom0 only), our own design under Xen's number 35.
//!
//! Xen's `sysctl.h` is a large toolstack interface that changes with every
//! release. This project keeps only the hypercall number
//! ([`crate::Hypercall::Sysctl`]) and defines its own small argument block:
//! a [`Sysctl`] with a command, an interface version, and a 128-byte payload
//! that holds one command-specific struct at offset 0. An unprivileged caller
//! gets `-EPERM`; a wrong `interface_version` gets `-EACCES` (as in Xen).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Version a caller must put in [`Sysctl::interface_version`] (`"RS"` and version 1).
pub const SYSCTL_INTERFACE_VERSION: u32 = 0x5253_0001;

/// Size of the payload area [`Sysctl::u`].
pub const SYSCTL_PAYLOAD_SIZE: usize = 128;

/// Command: fill a [`PhysInfo`] in the payload.
pub const SYSCTL_PHYSINFO: u32 = 3;

/// Command: benchmark controls; the payload is a [`BenchOp`].
pub const SYSCTL_BENCH: u32 = 0x100;

/// [`BenchOp::op`]: make the `syscall` entry return at once (`sysret`, no
/// dispatch) when `rax == 0`. Other numbers still take the normal path, so
/// the `OFF` call still works.
pub const BENCH_BARE_SYSCALL_ON: u32 = 1;

/// [`BenchOp::op`]: restore the normal `syscall` entry.
pub const BENCH_BARE_SYSCALL_OFF: u32 = 2;

/// The argument of the `sysctl` hypercall (136 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct Sysctl {
    /// Command (`SYSCTL_*`).
    pub cmd: u32,
    /// Must be [`SYSCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// Command-specific payload, the struct at offset 0; in and/or out.
    pub u: [u8; SYSCTL_PAYLOAD_SIZE],
}

const _: () = assert!(core::mem::size_of::<Sysctl>() == 136);

impl Sysctl {
    /// A request for `cmd` with the current interface version and a zeroed payload.
    pub const fn new(cmd: u32) -> Self {
        Sysctl {
            cmd,
            interface_version: SYSCTL_INTERFACE_VERSION,
            u: [0; SYSCTL_PAYLOAD_SIZE],
        }
    }

    /// A request for `cmd` carrying `payload` at the start of `u`.
    pub fn with_payload<T: IntoBytes + Immutable>(cmd: u32, payload: &T) -> Self {
        let mut sysctl = Sysctl::new(cmd);
        sysctl.write_payload(payload);
        sysctl
    }

    /// Reads the payload as a `T` (copied out of the start of `u`; `u` has
    /// no alignment guarantee, so no reference is handed out).
    ///
    /// `T` must fit in the payload; that is checked at compile time.
    pub fn read_payload<T: FromBytes>(&self) -> T {
        const { assert!(core::mem::size_of::<T>() <= SYSCTL_PAYLOAD_SIZE) };
        match T::read_from_prefix(&self.u) {
            Ok((value, _rest)) => value,
            Err(_) => unreachable!("payload size is checked at compile time"),
        }
    }

    /// Writes `payload` at the start of `u`, leaving the rest unchanged.
    ///
    /// `T` must fit in the payload; that is checked at compile time.
    pub fn write_payload<T: IntoBytes + Immutable>(&mut self, payload: &T) {
        const { assert!(core::mem::size_of::<T>() <= SYSCTL_PAYLOAD_SIZE) };
        let bytes = payload.as_bytes();
        self.u[..bytes.len()].copy_from_slice(bytes);
    }

    /// The payload as a [`PhysInfo`] (the output of `SYSCTL_PHYSINFO`).
    pub fn physinfo(&self) -> PhysInfo {
        self.read_payload()
    }

    /// The payload as a [`BenchOp`] (the input of `SYSCTL_BENCH`).
    pub fn bench_op(&self) -> BenchOp {
        self.read_payload()
    }
}

/// Output of `SYSCTL_PHYSINFO` (48 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PhysInfo {
    /// Physical CPUs in use.
    pub nr_cpus: u32,
    /// CPU (TSC) frequency in kHz.
    pub cpu_khz: u32,
    /// Usable RAM, in pages.
    pub total_pages: u64,
    /// Free RAM, in pages.
    pub free_pages: u64,
    /// Highest machine frame number.
    pub max_mfn: u64,
    /// Nanoseconds since the microkernel started.
    pub uptime_ns: u64,
    /// Number of existing domains.
    pub nr_domains: u32,
    /// Padding, zero.
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<PhysInfo>() == 48);

/// Input and output of `SYSCTL_BENCH` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct BenchOp {
    /// `BENCH_*` operation.
    pub op: u32,
    /// Padding, zero.
    pub _pad: u32,
    /// In: the operation's argument (a count for the in-kernel baselines).
    pub arg: u64,
    /// Out: the operation's result (cycles for the in-kernel baselines).
    pub result: u64,
}

const _: () = assert!(core::mem::size_of::<BenchOp>() == 24);

/// `SYSCTL_BENCH` op: the microkernel writes `arg` page-table entries directly into a
/// scratch L1 table of its own (no validation) and returns the cycles taken in `result`.
/// The baseline for the cost of a validated `pt_update`.
pub const BENCH_DIRECT_PTE_WRITES: u32 = 3;

/// `SYSCTL_BENCH` op: the microkernel builds, in frames of its own, a 4-level address space
/// mapping `arg` pages (allocating and zeroing the tables, writing every entry), tears it
/// down, and returns the cycles the build took in `result`. The baseline for a guest
/// building the same through `pt_update` batches.
pub const BENCH_DIRECT_BUILD: u32 = 4;

/// `SYSCTL_BENCH` op: the microkernel runs `arg` validated entry updates itself (the same
/// code `pt_update` runs per request, on a scratch L1 table of the calling domain, with no
/// hypercall, no copy and no batching around it) and returns the cycles in `result`. The
/// baseline that separates the hypercall and batching overhead from validation itself.
pub const BENCH_KERNEL_VALIDATED_UPDATES: u32 = 5;

/// [`BenchOp::op`]: point IDT vector 3 (#BP) at a stub that does nothing but `iretq`
/// (`exc_bare_iret` in the microkernel's entry.S), keeping the gate's DPL 3, so that `int3`
/// from ring 3 is a bare hardware exception round trip: ring 3 -> ring 0 -> ring 3, no
/// microkernel code and no bounce to the guest. The baseline for the cost of bouncing an
/// exception to the guest's own handler. While it is on, nobody's `int3` reaches a handler.
pub const BENCH_BARE_EXCEPTION_ON: u32 = 6;

/// [`BenchOp::op`]: restore the real #BP gate (the microkernel's exception entry).
pub const BENCH_BARE_EXCEPTION_OFF: u32 = 7;

/// `SYSCTL_BENCH` op: the microkernel maps 32 data frames into 32 entries of a scratch L1
/// table of the calling domain with its own validated entry update (references and types
/// taken as for any mapping) and unmaps them again, `arg` times, and returns the cycles in
/// `result`. The baseline for a batch of 32 grant maps plus 32 grant unmaps.
pub const BENCH_KERNEL_MAP_UNMAP_32: u32 = 8;

/// `SYSCTL_MEMSTATS`: the calling domain's frame accounting, as [`MemStats`].
pub const SYSCTL_MEMSTATS: u32 = 4;

/// Output of `SYSCTL_MEMSTATS` (80 bytes): how the calling domain's frames are typed and
/// referenced. A guest that builds and tears down page tables can check that every count
/// returns to where it started.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct MemStats {
    /// Frames the domain owns.
    pub owned: u64,
    /// Frames typed (and validated) as L1, L2, L3, L4 tables.
    pub l1: u64,
    /// See `l1`.
    pub l2: u64,
    /// See `l1`.
    pub l3: u64,
    /// See `l1`.
    pub l4: u64,
    /// Frames typed writable (mapped writable somewhere).
    pub writable: u64,
    /// Pinned frames.
    pub pinned: u64,
    /// Sum of the type counts of all owned frames.
    pub type_refs: u64,
    /// Sum of the general reference counts of all owned frames.
    pub refs: u64,
    /// Frames released to the hypervisor since boot by this domain (reservation decreases).
    pub released: u64,
}

const _: () = assert!(core::mem::size_of::<MemStats>() == 80);

/// `SYSCTL_AUDIT` (ours, privileged): the microkernel checks its own accounting (every
/// frame's references recomputed from what holds them, event channel pairs, grant pins
/// against mappings) and reports, as [`AuditResult`].
pub const SYSCTL_AUDIT: u32 = 0x101;

/// Longest violation text [`AuditResult`] carries (NUL-padded, cut if longer).
pub const AUDIT_WHAT_LEN: usize = 88;

/// Output of `SYSCTL_AUDIT` (128 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct AuditResult {
    /// 1: every invariant held; 0: `what` says which did not; 2: the audit could not run
    /// (no memory for its counters).
    pub ok: u32,
    /// Domains audited.
    pub domains: u32,
    /// Frames owned by domains.
    pub frames_owned: u64,
    /// Validated page-table frames.
    pub tables: u64,
    /// Event channel ports in use.
    pub ports: u64,
    /// Grant mappings in every maptrack.
    pub grant_mappings: u64,
    /// The first violation found, NUL-padded.
    pub what: [u8; AUDIT_WHAT_LEN],
}

const _: () = assert!(core::mem::size_of::<AuditResult>() == SYSCTL_PAYLOAD_SIZE);

impl Default for AuditResult {
    fn default() -> Self {
        AuditResult { ok: 0, domains: 0, frames_owned: 0, tables: 0, ports: 0, grant_mappings: 0, what: [0; AUDIT_WHAT_LEN] }
    }
}

impl AuditResult {
    /// Sets `what` from `text`, cut to fit.
    pub fn set_what(&mut self, text: &str) {
        self.what = [0; AUDIT_WHAT_LEN];
        let n = text.len().min(AUDIT_WHAT_LEN);
        self.what[..n].copy_from_slice(&text.as_bytes()[..n]);
    }

    /// `what` up to its first NUL.
    pub fn what(&self) -> &[u8] {
        let n = self.what.iter().position(|&b| b == 0).unwrap_or(AUDIT_WHAT_LEN);
        &self.what[..n]
    }
}
