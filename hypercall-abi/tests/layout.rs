//! Layout tests: every struct's size, alignment and field offsets against Xen 4.19's x86_64 public headers.
//!
//! The expected numbers were produced by compiling the Xen 4.19.0 public
//! headers (`xen/include/public`, `__XEN_INTERFACE_VERSION__` 0x00041300)
//! with GCC on x86_64 and printing `sizeof` / `offsetof` for each field.
//! Explicit `_pad` fields stand where C has implicit padding; their offsets
//! are where that padding lies.

use core::mem::{align_of, offset_of, size_of};

use hypercall_abi::arch::{CpuUserRegs, IretContext, TrapInfo, VcpuGuestContext};
use hypercall_abi::event_channel::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu, EvtchnBindVirq,
    EvtchnClose, EvtchnReset, EvtchnSend, EvtchnStatus, EvtchnStatusUnion, EvtchnUnmask,
};
use hypercall_abi::mmu::{MmuUpdate, MmuextOp};
use hypercall_abi::sched::{
    SchedPinOverride, SchedPoll, SchedRemoteShutdown, SchedShutdown, SchedWatchdog,
};
use hypercall_abi::shared_info::{
    ArchSharedInfo, ArchVcpuInfo, SharedInfo, VcpuInfo, VcpuTimeInfo,
};
use hypercall_abi::start_info::{MultibootModList, StartInfo, StartInfoConsole};
use hypercall_abi::sysctl::{BenchOp, MemStats, PhysInfo, Sysctl};
use hypercall_abi::version::{
    XenCapabilitiesInfo, XenChangesetInfo, XenCommandline, XenCompileInfo, XenDomainHandle,
    XenExtraversion, XenFeatureInfo, XenPlatformParameters,
};
use hypercall_abi::{DomId, GrantRef, Mfn, Pfn, Port, VcpuId};

/// Asserts the size and alignment of `$t` and the offset of each listed field.
macro_rules! layout {
    ($t:ty, size $size:expr, align $align:expr, { $($field:ident : $off:expr),* $(,)? }) => {{
        assert_eq!(size_of::<$t>(), $size, concat!("size of ", stringify!($t)));
        assert_eq!(align_of::<$t>(), $align, concat!("align of ", stringify!($t)));
        $(
            assert_eq!(
                offset_of!($t, $field),
                $off,
                concat!("offset of ", stringify!($t), ".", stringify!($field))
            );
        )*
    }};
}

#[test]
fn start_info_matches_xen() {
    layout!(StartInfo, size 1168, align 8, {
        magic: 0,
        nr_pages: 32,
        shared_info: 40,
        flags: 48,
        _pad0: 52,
        store_mfn: 56,
        store_evtchn: 64,
        _pad1: 68,
        console: 72,
        pt_base: 88,
        nr_pt_frames: 96,
        mfn_list: 104,
        mod_start: 112,
        mod_len: 120,
        cmd_line: 128,
        first_p2m_pfn: 1152,
        nr_p2m_frames: 1160,
    });
}

#[test]
fn start_info_console_union_matches_xen() {
    // The union is 16 bytes at offset 72: domU.mfn at +0, domU.evtchn at +8,
    // dom0.info_off at +0, dom0.info_size at +4.
    layout!(StartInfoConsole, size 16, align 8, { word0: 0, word1: 8, _pad: 12 });
}

#[test]
fn multiboot_mod_list_matches_xen() {
    layout!(MultibootModList, size 16, align 4, { mod_start: 0, mod_end: 4, cmdline: 8, pad: 12 });
}

#[test]
fn vcpu_time_info_matches_xen() {
    layout!(VcpuTimeInfo, size 32, align 8, {
        version: 0,
        pad0: 4,
        tsc_timestamp: 8,
        system_time: 16,
        tsc_to_system_mul: 24,
        tsc_shift: 28,
        flags: 29,
        pad1: 30,
    });
}

#[test]
fn arch_vcpu_info_matches_xen() {
    layout!(ArchVcpuInfo, size 16, align 8, { cr2: 0, pad: 8 });
}

#[test]
fn vcpu_info_matches_xen() {
    layout!(VcpuInfo, size 64, align 8, {
        evtchn_upcall_pending: 0,
        evtchn_upcall_mask: 1,
        _pad0: 2,
        evtchn_pending_sel: 8,
        arch: 16,
        time: 32,
    });
}

#[test]
fn arch_shared_info_matches_xen() {
    layout!(ArchSharedInfo, size 48, align 8, {
        max_pfn: 0,
        pfn_to_mfn_frame_list_list: 8,
        nmi_reason: 16,
        p2m_cr3: 24,
        p2m_vaddr: 32,
        p2m_generation: 40,
    });
}

#[test]
fn shared_info_matches_xen() {
    layout!(SharedInfo, size 3136, align 8, {
        vcpu_info: 0,
        evtchn_pending: 2048,
        evtchn_mask: 2560,
        wc_version: 3072,
        wc_sec: 3076,
        wc_nsec: 3080,
        wc_sec_hi: 3084,
        arch: 3088,
    });
    assert!(size_of::<SharedInfo>() <= hypercall_abi::PAGE_SIZE);
}

#[test]
fn trap_info_matches_xen() {
    layout!(TrapInfo, size 16, align 8, { vector: 0, flags: 1, cs: 2, _pad: 4, address: 8 });
}

#[test]
fn cpu_user_regs_matches_xen() {
    layout!(CpuUserRegs, size 200, align 8, {
        r15: 0,
        r14: 8,
        r13: 16,
        r12: 24,
        rbp: 32,
        rbx: 40,
        r11: 48,
        r10: 56,
        r9: 64,
        r8: 72,
        rax: 80,
        rcx: 88,
        rdx: 96,
        rsi: 104,
        rdi: 112,
        error_code: 120,
        entry_vector: 124,
        rip: 128,
        cs: 136,
        _pad0: 138,
        saved_upcall_mask: 140,
        _pad1: 141,
        rflags: 144,
        rsp: 152,
        ss: 160,
        _pad2: 162,
        es: 168,
        _pad3: 170,
        ds: 176,
        _pad4: 178,
        fs: 184,
        _pad5: 186,
        gs: 192,
        _pad6: 194,
    });
}

#[test]
fn vcpu_guest_context_matches_xen() {
    layout!(VcpuGuestContext, size 5168, align 8, {
        fpu_ctxt: 0,
        flags: 512,
        user_regs: 520,
        trap_ctxt: 720,
        ldt_base: 4816,
        ldt_ents: 4824,
        gdt_frames: 4832,
        gdt_ents: 4960,
        kernel_ss: 4968,
        kernel_sp: 4976,
        ctrlreg: 4984,
        debugreg: 5048,
        event_callback_eip: 5112,
        failsafe_callback_eip: 5120,
        syscall_callback_eip: 5128,
        vm_assist: 5136,
        fs_base: 5144,
        gs_base_kernel: 5152,
        gs_base_user: 5160,
    });
}

#[test]
fn iret_context_matches_xen() {
    layout!(IretContext, size 72, align 8, {
        rax: 0,
        r11: 8,
        rcx: 16,
        flags: 24,
        rip: 32,
        cs: 40,
        rflags: 48,
        rsp: 56,
        ss: 64,
    });
}

#[test]
fn mmu_structs_match_xen() {
    layout!(MmuUpdate, size 16, align 8, { ptr: 0, val: 8 });
    // arg1 is the mfn/linear_addr union, arg2 the nr_ents/vcpumask/src_mfn union.
    layout!(MmuextOp, size 24, align 8, { cmd: 0, _pad: 4, arg1: 8, arg2: 16 });
}

#[test]
fn sched_structs_match_xen() {
    layout!(SchedShutdown, size 4, align 4, { reason: 0 });
    layout!(SchedPoll, size 24, align 8, { ports: 0, nr_ports: 8, _pad: 12, timeout: 16 });
    layout!(SchedRemoteShutdown, size 8, align 4, { domain_id: 0, _pad: 2, reason: 4 });
    layout!(SchedWatchdog, size 8, align 4, { id: 0, timeout: 4 });
    layout!(SchedPinOverride, size 4, align 4, { pcpu: 0 });
}

#[test]
fn vcpu_timer_structs_match_xen() {
    use hypercall_abi::vcpu::{VcpuSetPeriodicTimer, VcpuSetSingleshotTimer};
    layout!(VcpuSetPeriodicTimer, size 8, align 8, { period_ns: 0 });
    layout!(VcpuSetSingleshotTimer, size 16, align 8, { timeout_abs_ns: 0, flags: 8, _pad: 12 });
}

#[test]
fn version_types_match_xen() {
    layout!(XenCompileInfo, size 144, align 1, {
        compiler: 0,
        compile_by: 64,
        compile_domain: 80,
        compile_date: 112,
    });
    layout!(XenPlatformParameters, size 8, align 8, { virt_start: 0 });
    layout!(XenFeatureInfo, size 8, align 4, { submap_idx: 0, submap: 4 });
    assert_eq!(size_of::<XenExtraversion>(), 16);
    assert_eq!(size_of::<XenCapabilitiesInfo>(), 1024);
    assert_eq!(size_of::<XenChangesetInfo>(), 64);
    assert_eq!(size_of::<XenDomainHandle>(), 16);
    assert_eq!(size_of::<XenCommandline>(), 1024);
}

#[test]
fn sysctl_structs_have_the_documented_layout() {
    // Our own ABI (interfaces.md), not Xen's.
    layout!(Sysctl, size 136, align 4, { cmd: 0, interface_version: 4, u: 8 });
    layout!(PhysInfo, size 48, align 8, {
        nr_cpus: 0,
        cpu_khz: 4,
        total_pages: 8,
        free_pages: 16,
        max_mfn: 24,
        uptime_ns: 32,
        nr_domains: 40,
        _pad: 44,
    });
    layout!(BenchOp, size 24, align 8, { op: 0, _pad: 4, arg: 8, result: 16 });
    layout!(MemStats, size 80, align 8, {
        owned: 0,
        l1: 8,
        l2: 16,
        l3: 24,
        l4: 32,
        writable: 40,
        pinned: 48,
        type_refs: 56,
        refs: 64,
        released: 72,
    });
}

#[test]
fn id_newtypes_are_their_c_types() {
    assert_eq!((size_of::<DomId>(), align_of::<DomId>()), (2, 2));
    assert_eq!((size_of::<Mfn>(), align_of::<Mfn>()), (8, 8));
    assert_eq!((size_of::<Pfn>(), align_of::<Pfn>()), (8, 8));
    assert_eq!((size_of::<Port>(), align_of::<Port>()), (4, 4));
    assert_eq!((size_of::<GrantRef>(), align_of::<GrantRef>()), (4, 4));
    assert_eq!((size_of::<VcpuId>(), align_of::<VcpuId>()), (4, 4));
}

#[test]
fn domctl_structs_have_the_documented_layout() {
    use hypercall_abi::domctl::{CreateDomain, DomainInfo, Domctl, MaxMem, SetVcpuContext};
    // Our own ABI (domctl.rs), not Xen's.
    layout!(Domctl, size 144, align 4, { cmd: 0, interface_version: 4, domain: 8, _pad: 10, u: 16 });
    layout!(CreateDomain, size 64, align 8, { max_vcpus: 0, flags: 4, max_pages: 8, name: 16, max_evtchn_port: 48, max_grant_frames: 52, max_maptrack_frames: 56, _pad: 60 });
    layout!(DomainInfo, size 88, align 8, {
        domain: 0,
        _pad0: 2,
        flags: 4,
        shutdown_reason: 8,
        max_vcpus: 12,
        tot_pages: 16,
        max_pages: 24,
        shared_info_frame: 32,
        cpu_time_ns: 40,
        name: 48,
        first_run_ns: 80,
    });
    layout!(MaxMem, size 8, align 8, { max_pages: 0 });
    layout!(SetVcpuContext, size 16, align 8, { vcpu: 0, _pad: 4, ctxt: 8 });
}

#[test]
fn event_channel_structs_match_xen() {
    layout!(EvtchnAllocUnbound, size 8, align 4, { dom: 0, remote_dom: 2, port: 4 });
    layout!(EvtchnBindInterdomain, size 12, align 4, {
        remote_dom: 0,
        _pad: 2,
        remote_port: 4,
        local_port: 8,
    });
    layout!(EvtchnBindVirq, size 12, align 4, { virq: 0, vcpu: 4, port: 8 });
    layout!(EvtchnBindIpi, size 8, align 4, { vcpu: 0, port: 4 });
    layout!(EvtchnClose, size 4, align 4, { port: 0 });
    layout!(EvtchnSend, size 4, align 4, { port: 0 });
    // The union: unbound.dom and interdomain.dom at +0 (u16), interdomain.port at +4,
    // pirq and virq at +0; 8 bytes, 4-aligned, at offset 16.
    layout!(EvtchnStatusUnion, size 8, align 4, { word0: 0, word1: 4 });
    layout!(EvtchnStatus, size 24, align 4, {
        dom: 0,
        _pad: 2,
        port: 4,
        status: 8,
        vcpu: 12,
        u: 16,
    });
    layout!(EvtchnBindVcpu, size 8, align 4, { port: 0, vcpu: 4 });
    layout!(EvtchnUnmask, size 4, align 4, { port: 0 });
    layout!(EvtchnReset, size 2, align 2, { dom: 0 });
}

#[test]
fn grant_table_structs_match_xen() {
    use hypercall_abi::grant_table::*;
    layout!(GrantEntryV1, size 8, align 4, { flags: 0, domid: 2, frame: 4 });
    layout!(GnttabMapGrantRef, size 32, align 8, {
        host_addr: 0, flags: 8, r#ref: 12, dom: 16, status: 18, handle: 20, dev_bus_addr: 24,
    });
    layout!(GnttabUnmapGrantRef, size 24, align 8, { host_addr: 0, dev_bus_addr: 8, handle: 16, status: 20 });
    layout!(GnttabSetupTable, size 24, align 8, { dom: 0, nr_frames: 4, status: 8, frame_list: 16 });
    layout!(GnttabQuerySize, size 16, align 4, { dom: 0, nr_frames: 4, max_nr_frames: 8, status: 12 });
    layout!(GnttabSetVersion, size 4, align 4, { version: 0 });
    layout!(GnttabCopyPtr, size 16, align 8, { u: 0, domid: 8, offset: 10 });
    layout!(GnttabCopy, size 40, align 8, { source: 0, dest: 16, len: 32, flags: 34, status: 36 });
    assert_eq!((GNTST_BAD_DOMAIN, GNTST_BAD_GNTREF, GNTST_BAD_HANDLE, GNTST_PERMISSION_DENIED), (-2, -3, -4, -8));
    assert_eq!((GTF_READONLY, GTF_READING, GTF_WRITING), (4, 8, 16));
    assert_eq!((GNTMAP_HOST_MAP, GNTMAP_READONLY, GNTMAP_CONTAINS_PTE), (2, 4, 16));
}
