//! Layout and constant tests for the memory-management arguments (`memory_op`,
//! `multicall`, `pt_update` continuation), against Xen 4.19's public headers.
//!
//! The expected offsets were printed by GCC on x86_64 from `xen/include/public/xen.h`
//! and `memory.h` of RELEASE-4.19.0 (`__XEN_INTERFACE_VERSION__` 0x00041300), and from
//! Xen's internal `struct __packed e820entry` (`asm/e820.h`).

use core::mem::{align_of, offset_of, size_of};

use hypercall_abi::memory::{
    xenmemf_get_address_bits, xenmemf_node, E820Entry, XenMachphysMapping, XenMemoryDomain,
    XenMemoryMap, XenMemoryReservation, E820_RAM, MEMOP_CMD_MASK, MEMOP_EXTENT_SHIFT,
    XENMEMF_POPULATE_ON_DEMAND,
};
use hypercall_abi::mmu::{
    MmuUpdate, MulticallEntry, MMU_PT_UPDATE_NO_TRANSLATE, MMU_UPDATE_CMD_MASK,
    MMU_UPDATE_PREEMPTED,
};
use zerocopy::IntoBytes;

macro_rules! layout {
    ($t:ty, size $size:expr, align $align:expr, { $($field:ident : $off:expr),* $(,)? }) => {{
        assert_eq!(size_of::<$t>(), $size, concat!("size of ", stringify!($t)));
        assert_eq!(align_of::<$t>(), $align, concat!("align of ", stringify!($t)));
        $(
            assert_eq!(offset_of!($t, $field), $off,
                concat!("offset of ", stringify!($t), ".", stringify!($field)));
        )*
    }};
}

#[test]
fn memory_op_structs_match_xen() {
    layout!(XenMemoryReservation, size 32, align 8, {
        extent_start: 0,
        nr_extents: 8,
        extent_order: 16,
        mem_flags: 20,
        domid: 24,
        _pad: 26,
    });
    layout!(XenMemoryDomain, size 2, align 2, { domid: 0 });
    layout!(XenMemoryMap, size 16, align 8, { nr_entries: 0, _pad: 4, buffer: 8 });
    layout!(XenMachphysMapping, size 24, align 8, { v_start: 0, v_end: 8, max_mfn: 16 });
    layout!(E820Entry, size 20, align 1, { addr: 0, size: 8, kind: 16 });
}

#[test]
fn multicall_entry_matches_xen() {
    layout!(MulticallEntry, size 64, align 8, { op: 0, result: 8, args: 16 });
}

#[test]
fn e820_entries_pack_back_to_back() {
    let e = [
        E820Entry { addr: 0, size: 0x1000, kind: E820_RAM },
        E820Entry { addr: 0x1000, size: 0x2000, kind: 2 },
    ];
    let b = e.as_bytes();
    assert_eq!(b.len(), 40);
    assert_eq!(&b[20..28], &0x1000u64.to_le_bytes());
    assert_eq!(&b[16..20], &1u32.to_le_bytes());
}

#[test]
fn continuation_and_command_encodings_match_xen() {
    // `MMU_UPDATE_PREEMPTED` is `~(~0U >> 1)`.
    assert_eq!(MMU_UPDATE_PREEMPTED, !(!0u32 >> 1));
    // do_mmu_update decodes `req.ptr & (sizeof(l1_pgentry_t) - 1)`.
    assert_eq!(MMU_UPDATE_CMD_MASK, 7);
    let req = MmuUpdate { ptr: 0x1234_5008 | MMU_PT_UPDATE_NO_TRANSLATE, val: 0 };
    assert_eq!((req.cmd(), req.addr()), (3, 0x1234_5008));
    let odd = MmuUpdate { ptr: 0x1234_500c, val: 0 };
    assert_eq!((odd.cmd(), odd.addr()), (4, 0x1234_5008));
    assert_eq!((MEMOP_EXTENT_SHIFT, MEMOP_CMD_MASK), (6, 0x3f));
    assert_eq!(xenmemf_get_address_bits(32 | xenmemf_node(1)), 32);
    assert_eq!(xenmemf_node(0), 1 << 8);
    assert_eq!(XENMEMF_POPULATE_ON_DEMAND, 1 << 16);
}
