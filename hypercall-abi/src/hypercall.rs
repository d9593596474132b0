//! Hypercall numbers (`__HYPERVISOR_*` in Xen's `xen.h`) and the hypercall page shape.

use core::fmt;

/// Every hypercall number Xen defines for x86_64 (`__HYPERVISOR_*` in `xen.h`).
///
/// The number goes in `rax`; see [`crate::raw`] for the register convention.
/// Numbers 11 and 43..=47 are unassigned. Variants are Xen's names in
/// CamelCase, except number 1, which this project calls `pt_update` (Xen:
/// `mmu_update`).
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hypercall {
    /// `set_trap_table` (0): install the virtual IDT, an array of [`crate::TrapInfo`].
    SetTrapTable = 0,
    /// `mmu_update` (1) in Xen; `pt_update` in this project: a batch of checked
    /// page-table writes ([`crate::MmuUpdate`]).
    PtUpdate = 1,
    /// `set_gdt` (2): install a GDT made of the given frames.
    SetGdt = 2,
    /// `stack_switch` (3): set the kernel stack (`ss`, `sp`) used on entry from user mode.
    StackSwitch = 3,
    /// `set_callbacks` (4): legacy registration of event and failsafe callbacks.
    SetCallbacks = 4,
    /// `fpu_taskswitch` (5): set or clear the virtual CR0.TS.
    FpuTaskswitch = 5,
    /// `sched_op_compat` (6): the pre-3.0.2 scheduler operation.
    SchedOpCompat = 6,
    /// `platform_op` (7): privileged platform operations (formerly `dom0_op`).
    PlatformOp = 7,
    /// `set_debugreg` (8): write a virtual debug register.
    SetDebugreg = 8,
    /// `get_debugreg` (9): read a virtual debug register.
    GetDebugreg = 9,
    /// `update_descriptor` (10): write one GDT/LDT descriptor.
    UpdateDescriptor = 10,
    /// `memory_op` (12): reservation and physmap operations (`XENMEM_*`).
    MemoryOp = 12,
    /// `multicall` (13): run a batch of hypercalls.
    Multicall = 13,
    /// `update_va_mapping` (14): write the PTE that maps one virtual address.
    UpdateVaMapping = 14,
    /// `set_timer_op` (15): set the one-shot timer (absolute system time, ns).
    SetTimerOp = 15,
    /// `event_channel_op_compat` (16): the pre-3.0.2 event channel operation.
    EventChannelOpCompat = 16,
    /// `xen_version` (17): version and feature queries (`XENVER_*`).
    XenVersion = 17,
    /// `console_io` (18): hypervisor console read and write (`CONSOLEIO_*`).
    ConsoleIo = 18,
    /// `physdev_op_compat` (19): the pre-3.0.2 physical device operation.
    PhysdevOpCompat = 19,
    /// `grant_table_op` (20): grant table operations (`GNTTABOP_*`).
    GrantTableOp = 20,
    /// `vm_assist` (21): enable or disable a `VMASST_TYPE_*` assist.
    VmAssist = 21,
    /// `update_va_mapping_otherdomain` (22): as `update_va_mapping`, for a foreign domain's frame.
    UpdateVaMappingOtherdomain = 22,
    /// `iret` (23): return from the guest kernel through the hypervisor (x86 only).
    Iret = 23,
    /// `vcpu_op` (24): per-vCPU operations (`VCPUOP_*`).
    VcpuOp = 24,
    /// `set_segment_base` (25): set FS or GS base (x86_64 only).
    SetSegmentBase = 25,
    /// `mmuext_op` (26): extended MMU operations ([`crate::MmuextOp`]).
    MmuextOp = 26,
    /// `xsm_op` (27): security module operations.
    XsmOp = 27,
    /// `nmi_op` (28): NMI callback registration.
    NmiOp = 28,
    /// `sched_op` (29): scheduler operations (`SCHEDOP_*`).
    SchedOp = 29,
    /// `callback_op` (30): callback registration (`CALLBACKOP_*`).
    CallbackOp = 30,
    /// `xenoprof_op` (31): profiling (removed from later Xen releases).
    XenoprofOp = 31,
    /// `event_channel_op` (32): event channel operations (`EVTCHNOP_*`).
    EventChannelOp = 32,
    /// `physdev_op` (33): physical device operations (`PHYSDEVOP_*`).
    PhysdevOp = 33,
    /// `hvm_op` (34): HVM operations.
    HvmOp = 34,
    /// `sysctl` (35): system-wide control. In this project the payload is our own
    /// design; see [`crate::sysctl`].
    Sysctl = 35,
    /// `domctl` (36): per-domain control, for the toolstack.
    Domctl = 36,
    /// `kexec_op` (37): kexec and crash kernel operations.
    KexecOp = 37,
    /// `tmem_op` (38): transcendent memory (retired).
    TmemOp = 38,
    /// `argo_op` (39): Argo inter-domain messaging.
    ArgoOp = 39,
    /// `xenpmu_op` (40): performance monitoring unit.
    XenpmuOp = 40,
    /// `dm_op` (41): device model operations.
    DmOp = 41,
    /// `hypfs_op` (42): hypervisor filesystem.
    HypfsOp = 42,
    /// `arch_0` (48): architecture-specific; `mca` on x86.
    Arch0 = 48,
    /// `arch_1` (49): architecture-specific; `paging_domctl_cont` on x86.
    Arch1 = 49,
    /// `arch_2` (50): architecture-specific, unused on x86.
    Arch2 = 50,
    /// `arch_3` (51): architecture-specific, unused on x86.
    Arch3 = 51,
    /// `arch_4` (52): architecture-specific, unused on x86.
    Arch4 = 52,
    /// `arch_5` (53): architecture-specific, unused on x86.
    Arch5 = 53,
    /// `arch_6` (54): architecture-specific, unused on x86.
    Arch6 = 54,
    /// `arch_7` (55): architecture-specific, unused on x86.
    Arch7 = 55,
}

impl Hypercall {
    /// Every hypercall, in number order.
    pub const ALL: [Hypercall; 50] = [
        Hypercall::SetTrapTable,
        Hypercall::PtUpdate,
        Hypercall::SetGdt,
        Hypercall::StackSwitch,
        Hypercall::SetCallbacks,
        Hypercall::FpuTaskswitch,
        Hypercall::SchedOpCompat,
        Hypercall::PlatformOp,
        Hypercall::SetDebugreg,
        Hypercall::GetDebugreg,
        Hypercall::UpdateDescriptor,
        Hypercall::MemoryOp,
        Hypercall::Multicall,
        Hypercall::UpdateVaMapping,
        Hypercall::SetTimerOp,
        Hypercall::EventChannelOpCompat,
        Hypercall::XenVersion,
        Hypercall::ConsoleIo,
        Hypercall::PhysdevOpCompat,
        Hypercall::GrantTableOp,
        Hypercall::VmAssist,
        Hypercall::UpdateVaMappingOtherdomain,
        Hypercall::Iret,
        Hypercall::VcpuOp,
        Hypercall::SetSegmentBase,
        Hypercall::MmuextOp,
        Hypercall::XsmOp,
        Hypercall::NmiOp,
        Hypercall::SchedOp,
        Hypercall::CallbackOp,
        Hypercall::XenoprofOp,
        Hypercall::EventChannelOp,
        Hypercall::PhysdevOp,
        Hypercall::HvmOp,
        Hypercall::Sysctl,
        Hypercall::Domctl,
        Hypercall::KexecOp,
        Hypercall::TmemOp,
        Hypercall::ArgoOp,
        Hypercall::XenpmuOp,
        Hypercall::DmOp,
        Hypercall::HypfsOp,
        Hypercall::Arch0,
        Hypercall::Arch1,
        Hypercall::Arch2,
        Hypercall::Arch3,
        Hypercall::Arch4,
        Hypercall::Arch5,
        Hypercall::Arch6,
        Hypercall::Arch7,
    ];

    /// The hypercall number (the value loaded into `rax`).
    pub const fn number(self) -> u64 {
        self as u64
    }

    /// Offset of this hypercall's stub in the hypercall page.
    pub const fn stub_offset(self) -> usize {
        self as usize * HYPERCALL_STUB_SIZE
    }
}

/// A hypercall number that Xen does not define.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnknownHypercall(pub u64);

impl fmt::Display for UnknownHypercall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown hypercall number {}", self.0)
    }
}

impl core::error::Error for UnknownHypercall {}

impl TryFrom<u64> for Hypercall {
    type Error = UnknownHypercall;

    fn try_from(nr: u64) -> Result<Self, Self::Error> {
        Ok(match nr {
            0 => Hypercall::SetTrapTable,
            1 => Hypercall::PtUpdate,
            2 => Hypercall::SetGdt,
            3 => Hypercall::StackSwitch,
            4 => Hypercall::SetCallbacks,
            5 => Hypercall::FpuTaskswitch,
            6 => Hypercall::SchedOpCompat,
            7 => Hypercall::PlatformOp,
            8 => Hypercall::SetDebugreg,
            9 => Hypercall::GetDebugreg,
            10 => Hypercall::UpdateDescriptor,
            12 => Hypercall::MemoryOp,
            13 => Hypercall::Multicall,
            14 => Hypercall::UpdateVaMapping,
            15 => Hypercall::SetTimerOp,
            16 => Hypercall::EventChannelOpCompat,
            17 => Hypercall::XenVersion,
            18 => Hypercall::ConsoleIo,
            19 => Hypercall::PhysdevOpCompat,
            20 => Hypercall::GrantTableOp,
            21 => Hypercall::VmAssist,
            22 => Hypercall::UpdateVaMappingOtherdomain,
            23 => Hypercall::Iret,
            24 => Hypercall::VcpuOp,
            25 => Hypercall::SetSegmentBase,
            26 => Hypercall::MmuextOp,
            27 => Hypercall::XsmOp,
            28 => Hypercall::NmiOp,
            29 => Hypercall::SchedOp,
            30 => Hypercall::CallbackOp,
            31 => Hypercall::XenoprofOp,
            32 => Hypercall::EventChannelOp,
            33 => Hypercall::PhysdevOp,
            34 => Hypercall::HvmOp,
            35 => Hypercall::Sysctl,
            36 => Hypercall::Domctl,
            37 => Hypercall::KexecOp,
            38 => Hypercall::TmemOp,
            39 => Hypercall::ArgoOp,
            40 => Hypercall::XenpmuOp,
            41 => Hypercall::DmOp,
            42 => Hypercall::HypfsOp,
            48 => Hypercall::Arch0,
            49 => Hypercall::Arch1,
            50 => Hypercall::Arch2,
            51 => Hypercall::Arch3,
            52 => Hypercall::Arch4,
            53 => Hypercall::Arch5,
            54 => Hypercall::Arch6,
            55 => Hypercall::Arch7,
            _ => return Err(UnknownHypercall(nr)),
        })
    }
}

impl From<Hypercall> for u64 {
    fn from(h: Hypercall) -> u64 {
        h as u64
    }
}

/// Size of one stub in the hypercall page: stub `n` starts at `n * 32`.
///
/// A guest calls hypercall `n` with `call hypercall_page + n * 32`
/// (`arch-x86/xen-x86_64.h`).
pub const HYPERCALL_STUB_SIZE: usize = 32;

/// Number of stubs in the hypercall page (one page of 32-byte stubs).
pub const HYPERCALL_PAGE_STUBS: usize = 128;

const _: () = assert!(HYPERCALL_STUB_SIZE * HYPERCALL_PAGE_STUBS == crate::PAGE_SIZE);
const _: () = assert!((Hypercall::Arch7 as usize) < HYPERCALL_PAGE_STUBS);
