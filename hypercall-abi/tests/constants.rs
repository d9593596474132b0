//! Constant tests: ids, address layout, selectors, flags and op numbers, against Xen 4.19's headers.

use hypercall_abi::types::{INVALID_M2P_ENTRY, INVALID_MFN, SHARED_M2P_ENTRY};
use hypercall_abi::{
    arch, callback, event_channel, grant_table, layout, memory, mmu, shared_info, start_info,
};
use hypercall_abi::{layout::pte, sysctl, vcpu, version, DomId, Mfn, Pfn};

#[test]
fn reserved_domain_ids_match_xen() {
    assert_eq!(DomId::FIRST_RESERVED, DomId(0x7FF0));
    assert_eq!(DomId::SELF, DomId(0x7FF0));
    assert_eq!(DomId::IO, DomId(0x7FF1));
    assert_eq!(DomId::XEN, DomId(0x7FF2));
    assert_eq!(DomId::COW, DomId(0x7FF3));
    assert_eq!(DomId::INVALID, DomId(0x7FF4));
    assert_eq!(DomId::IDLE, DomId(0x7FFF));
    assert!(DomId::SELF.is_reserved() && DomId::IDLE.is_reserved());
    assert!(!DomId(0).is_reserved() && !DomId(0x7FEF).is_reserved());
}

#[test]
fn frame_sentinels_and_addresses() {
    assert_eq!(INVALID_MFN, u64::MAX);
    assert_eq!(INVALID_M2P_ENTRY, u64::MAX);
    assert_eq!(SHARED_M2P_ENTRY, u64::MAX - 1);
    assert_eq!(Mfn::INVALID.0, INVALID_MFN);
    assert_eq!(Mfn(0x1234).addr(), 0x123_4000);
    assert_eq!(Pfn(1).addr(), 4096);
}

#[test]
fn address_layout_matches_xen_x86_64() {
    assert_eq!(layout::HYPERVISOR_VIRT_START, 0xFFFF_8000_0000_0000);
    assert_eq!(layout::HYPERVISOR_VIRT_END, 0xFFFF_8800_0000_0000);
    assert_eq!(layout::MACH2PHYS_VIRT_START, 0xFFFF_8000_0000_0000);
    assert_eq!(layout::MACH2PHYS_VIRT_END, 0xFFFF_8040_0000_0000);
    // (END - START) >> 3, as computed by the C header: 34359738368.
    assert_eq!(layout::MACH2PHYS_NR_ENTRIES, 34_359_738_368);
    let slot = |va: u64| ((va >> layout::L4_SHIFT) & 511) as usize;
    assert_eq!(
        slot(layout::HYPERVISOR_VIRT_START),
        layout::HYPERVISOR_L4_FIRST_SLOT
    );
    assert_eq!(
        slot(layout::HYPERVISOR_VIRT_END - 1),
        layout::HYPERVISOR_L4_LAST_SLOT
    );
    assert_eq!(
        (
            layout::HYPERVISOR_L4_FIRST_SLOT,
            layout::HYPERVISOR_L4_LAST_SLOT
        ),
        (256, 271)
    );
}

#[test]
fn selectors_match_xen_x86_64() {
    assert_eq!(layout::FLAT_RING3_CS32, 0xe023);
    assert_eq!(layout::FLAT_RING3_CS64, 0xe033);
    assert_eq!(layout::FLAT_RING3_DS32, 0xe02b);
    assert_eq!(layout::FLAT_RING3_DS64, 0);
    assert_eq!(layout::FLAT_RING3_SS32, 0xe02b);
    assert_eq!(layout::FLAT_RING3_SS64, 0xe02b);
    assert_eq!(
        (
            layout::FLAT_KERNEL_CS,
            layout::FLAT_KERNEL_SS,
            layout::FLAT_KERNEL_DS
        ),
        (0xe033, 0xe02b, 0)
    );
    assert_eq!(
        (
            layout::FLAT_USER_CS,
            layout::FLAT_USER_SS,
            layout::FLAT_USER_DS
        ),
        (0xe033, 0xe02b, 0)
    );
    assert_eq!(
        (layout::FLAT_KERNEL_CS32, layout::FLAT_USER_DS32),
        (0xe023, 0xe02b)
    );
    assert_eq!(layout::HYPERVISOR_CS, 0xe008);
    assert_eq!(layout::HYPERVISOR_DS, 0xe010);
    assert_eq!(
        (layout::HYPERVISOR_DS32, layout::HYPERVISOR_DS64),
        (0xe010, 0)
    );
    assert_eq!(layout::FIRST_RESERVED_GDT_ENTRY, 7168);
    // Guest selectors are RPL 3; the hypervisor's are RPL 0.
    assert_eq!(layout::FLAT_KERNEL_CS & 3, 3);
    assert_eq!(layout::HYPERVISOR_CS & 3, 0);
}

#[test]
fn vgcf_flags_match_xen() {
    assert_eq!(layout::VGCF_I387_VALID, 1);
    assert_eq!(layout::VGCF_IN_KERNEL, 4);
    assert_eq!(layout::VGCF_FAILSAFE_DISABLES_EVENTS, 8);
    assert_eq!(layout::VGCF_SYSCALL_DISABLES_EVENTS, 16);
    assert_eq!(layout::VGCF_ONLINE, 32);
    assert_eq!(layout::VGCF_IN_SYSCALL, 256);
    assert_eq!(arch::VMASST_TYPE_WRITABLE_PAGETABLES, 2);
    assert_eq!(arch::VMASST_TYPE_M2P_STRICT, 32);
    assert_eq!(
        (
            arch::SEGBASE_FS,
            arch::SEGBASE_GS_USER,
            arch::SEGBASE_GS_KERNEL
        ),
        (0, 1, 2)
    );
}

#[test]
fn pte_bits_are_the_x86_64_ones() {
    let bits = [
        pte::PRESENT,
        pte::RW,
        pte::USER,
        pte::PWT,
        pte::PCD,
        pte::ACCESSED,
        pte::DIRTY,
        pte::PSE,
        pte::GLOBAL,
    ];
    for (i, bit) in bits.into_iter().enumerate() {
        assert_eq!(bit, 1 << i);
    }
    assert_eq!(pte::NX, 1 << 63);
    assert_eq!(pte::ADDR_MASK, 0x000f_ffff_ffff_f000);
    assert_eq!(pte::ADDR_MASK & (pte::NX | pte::GLOBAL | 0xfff), 0);
}

#[test]
fn start_info_flags_match_xen() {
    assert_eq!(start_info::SIF_PRIVILEGED, 1);
    assert_eq!(start_info::SIF_INITDOMAIN, 2);
    assert_eq!(start_info::SIF_MULTIBOOT_MOD, 4);
    assert_eq!(start_info::SIF_MOD_START_PFN, 8);
    assert_eq!(start_info::SIF_VIRT_P2M_4TOOLS, 16);
    assert_eq!(start_info::SIF_PM_MASK, 0xff00);
    assert_eq!(start_info::MAX_GUEST_CMDLINE, 1024);
    assert_eq!(start_info::START_INFO_MAGIC, b"xen-3.0-x86_64");
}

#[test]
fn shared_info_constants_match_xen() {
    assert_eq!(shared_info::XEN_LEGACY_MAX_VCPUS, 32);
    assert_eq!(shared_info::NR_EVENT_CHANNELS_2L, 4096);
    assert_eq!(shared_info::XEN_PVCLOCK_TSC_STABLE_BIT, 1);
    assert_eq!(shared_info::XEN_PVCLOCK_GUEST_STOPPED, 2);
}

#[test]
fn mmu_constants_match_xen() {
    assert_eq!(
        (
            mmu::MMU_NORMAL_PT_UPDATE,
            mmu::MMU_MACHPHYS_UPDATE,
            mmu::MMU_PT_UPDATE_PRESERVE_AD,
            mmu::MMU_PT_UPDATE_NO_TRANSLATE
        ),
        (0, 1, 2, 3)
    );
    assert_eq!(
        (
            mmu::UVMF_NONE,
            mmu::UVMF_TLB_FLUSH,
            mmu::UVMF_INVLPG,
            mmu::UVMF_FLUSHTYPE_MASK
        ),
        (0, 1, 2, 3)
    );
    assert_eq!((mmu::UVMF_MULTI, mmu::UVMF_LOCAL, mmu::UVMF_ALL), (0, 0, 4));
    assert_eq!(
        (
            mmu::MMUEXT_SET_LDT,
            mmu::MMUEXT_NEW_USER_BASEPTR,
            mmu::MMUEXT_UNMARK_SUPER
        ),
        (13, 15, 20)
    );
    let req = mmu::MmuUpdate {
        ptr: 0x1234_5000 | mmu::MMU_PT_UPDATE_PRESERVE_AD,
        val: 7,
    };
    assert_eq!(
        (req.cmd(), req.addr()),
        (mmu::MMU_PT_UPDATE_PRESERVE_AD, 0x1234_5000)
    );
}

#[test]
fn version_and_feature_numbers_match_xen() {
    assert_eq!(
        (version::XEN_VERSION_MAJOR, version::XEN_VERSION_MINOR),
        (4, 19)
    );
    assert_eq!(version::XENVER_BUILD_ID, 10);
    assert_eq!(version::XENFEAT_WRITABLE_PAGE_TABLES, 0);
    assert_eq!(version::XENFEAT_DOM0, 11);
    assert_eq!(version::XENFEAT_DIRECT_MAPPED, 17);
    assert_eq!(version::XENFEAT_DM_MSIX_ALL_WRITES, 20);
    assert_eq!(version::XENFEAT_NR_SUBMAPS, 1);
}

#[test]
fn op_numbers_match_xen() {
    assert_eq!(
        (
            event_channel::EVTCHNOP_BIND_INTERDOMAIN,
            event_channel::EVTCHNOP_SEND
        ),
        (0, 4)
    );
    assert_eq!(
        (
            event_channel::EVTCHNOP_UNMASK,
            event_channel::EVTCHNOP_SET_PRIORITY
        ),
        (9, 13)
    );
    assert_eq!(
        (
            event_channel::VIRQ_TIMER,
            event_channel::VIRQ_DEBUGGER,
            event_channel::VIRQ_XENPMU
        ),
        (0, 6, 13)
    );
    assert_eq!(
        (
            event_channel::VIRQ_ARCH_0,
            event_channel::VIRQ_ARCH_7,
            event_channel::NR_VIRQS
        ),
        (16, 23, 24)
    );
    assert_eq!(
        (
            grant_table::GNTTABOP_MAP_GRANT_REF,
            grant_table::GNTTABOP_CACHE_FLUSH
        ),
        (0, 12)
    );
    assert_eq!(
        (
            grant_table::GNTTABOP_SETUP_TABLE,
            grant_table::GNTTABOP_QUERY_SIZE
        ),
        (2, 6)
    );
    assert_eq!(
        (
            memory::XENMEM_INCREASE_RESERVATION,
            memory::XENMEM_POPULATE_PHYSMAP
        ),
        (0, 6)
    );
    assert_eq!(
        (memory::XENMEM_MEMORY_MAP, memory::XENMEM_MACHPHYS_MAPPING),
        (9, 12)
    );
    assert_eq!(
        (
            memory::XENMEM_ADD_TO_PHYSMAP_BATCH,
            memory::XENMEM_ACQUIRE_RESOURCE
        ),
        (23, 28)
    );
    assert_eq!(
        (vcpu::VCPUOP_INITIALISE, vcpu::VCPUOP_REGISTER_VCPU_INFO),
        (0, 10)
    );
    assert_eq!(vcpu::VCPUOP_REGISTER_VCPU_TIME_PHYS_AREA, 15);
    assert_eq!(
        (
            callback::CALLBACKOP_REGISTER,
            callback::CALLBACKOP_UNREGISTER
        ),
        (0, 1)
    );
    assert_eq!(
        (
            callback::CALLBACKTYPE_EVENT,
            callback::CALLBACKTYPE_FAILSAFE,
            callback::CALLBACKTYPE_SYSCALL
        ),
        (0, 1, 2)
    );
    assert_eq!(
        (
            callback::CALLBACKTYPE_NMI,
            callback::CALLBACKTYPE_SYSENTER,
            callback::CALLBACKTYPE_SYSCALL32
        ),
        (4, 5, 7)
    );
}

#[test]
fn sysctl_constants_match_the_interface_contract() {
    assert_eq!(sysctl::SYSCTL_INTERFACE_VERSION, 0x5253_0001);
    assert_eq!(sysctl::SYSCTL_PHYSINFO, 3);
    assert_eq!(sysctl::SYSCTL_BENCH, 0x100);
    assert_eq!(
        (
            sysctl::BENCH_BARE_SYSCALL_ON,
            sysctl::BENCH_BARE_SYSCALL_OFF
        ),
        (1, 2)
    );
    assert_eq!(hypercall_abi::Hypercall::Sysctl as u64, 35);
}

#[test]
fn crate_constants() {
    assert_eq!(hypercall_abi::ABI_VERSION, 0x0001_0000);
    assert_eq!(hypercall_abi::PAGE_SIZE, 4096);
    assert_eq!(hypercall_abi::PAGE_SHIFT, 12);
}
