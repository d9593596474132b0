//! xen-abi: the conformance guest of Xen's 64-bit PV ABI for the operations and edges
//! Xen's own kernels (Linux, Mini-OS) rely on, run as an unprivileged domU. One
//! `TEST <name> PASS|FAIL <why>` line per check, then `TESTS DONE <p> passed, <f> failed`,
//! and it powers off. Each check names the operation, the value given and Xen's answer:
//!
//! - `physdev_op`: `set_iopl` range and pointers, `set_iobitmap` limits; `cli`/`sti`
//!   faulting without the virtual IOPL and skipped with it; `in`/`out` through the IOPL
//!   (all ones read) and through the bitmap, port by port;
//! - `MMUEXT_SET_LDT`: arguments, an LDT selector loaded, past the entries and with no
//!   LDT faulting;
//! - `set_gdt`/`update_descriptor`: the entry limit, a frame mapped writable, descriptors
//!   written and fixed up, a selector of the guest's own GDT loaded, the frame kept from
//!   being mapped writable while installed, bad descriptors and addresses;
//! - control registers: CR0.TS writes, other CR0 bits refused, CR4's guest bits;
//! - debug registers: `set_debugreg`/`get_debugreg` checks and errnos, the emulated `mov`
//!   to and from `%drN`, a data breakpoint firing, one on memory the hypervisor copies
//!   (dropped, as Xen), single steps over plain, emulated and `syscall` instructions, and
//!   `mov %ss` then `syscall` with a breakpoint on the selector (CVE-2018-8897);
//! - CPUID through the forced-emulation prefix as Xen's PV policy shows it;
//! - `xen_version` features, with `writable_page_tables` following `vm_assist`;
//! - `stack_switch`, `set_segment_base(GS_USER_SEL)`, trap-table selectors;
//! - `console_io` write refused to a domU;
//! - `callback_op` for every type, `nmi_op`, the vCPU's runstate and its registered area,
//!   and the grant-table version operations and status frames of a one-domain table;
//! - `VCPUOP_register_vcpu_info` offsets, the move, and its once-only rule (late: the kit's
//!   event code reads the vcpu_info in shared_info);
//! - FIFO event channels: the errnos of `init_control`, `expand_array`, `set_priority` and
//!   `bind_vcpu`, then the switch itself (last: the kit's own event code is 2-level), events
//!   linked on their priority's queue with `ready` and `head` set, and a masked pending
//!   event linked by `EVTCHNOP_unmask`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use pv_guest::hypercall::{self, hypercall_via_page, xen_features};
use pv_guest::hypercall_abi::arch::{TrapInfo, VMASST_CMD_ENABLE, VMASST_TYPE_WRITABLE_PAGETABLES};
use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::hypercall_abi::event_channel::{
    EvtchnBindVcpu, EvtchnExpandArray, EvtchnInitControl, EvtchnSetPriority, EVTCHNOP_BIND_VCPU, EVTCHNOP_EXPAND_ARRAY,
    EVTCHNOP_INIT_CONTROL, EVTCHNOP_SET_PRIORITY,
};
use pv_guest::hypercall_abi::hypercall::Hypercall;
use pv_guest::hypercall_abi::mmu::{MmuUpdate, MmuextOp, MMUEXT_SET_LDT, UVMF_INVLPG};
use pv_guest::hypercall_abi::physdev::{PHYSDEVOP_SET_IOBITMAP, PHYSDEVOP_SET_IOPL};
use pv_guest::hypercall_abi::vcpu::VCPUOP_REGISTER_VCPU_INFO;
use pv_guest::hypercall_abi::version::{
    XENFEAT_DIRECT_MAPPED, XENFEAT_DOM0, XENFEAT_GNTTAB_MAP_AVAIL_BITS, XENFEAT_HIGHMEM_ASSIST, XENFEAT_MMU_PT_UPDATE_PRESERVE_AD,
    XENFEAT_PAE_PGDIR_ABOVE_4GB, XENFEAT_WRITABLE_PAGE_TABLES,
};
use pv_guest::mm::xen::{cpuid_forced, mmuext_raw, pt_update_raw, update_va_mapping_raw, vm_assist_raw, GuestMm};
use pv_guest::mm::{entry_maddr, make_entry, DATA_RO_FLAGS, DATA_RW_FLAGS};
use pv_guest::testing::{describe, ensure, expect_ret, Tests};
use pv_guest::traps::{self, Trap};
use pv_guest::{println, StartInfo};

const EINVAL: i64 = Errno::EINVAL.to_ret();
const EFAULT: i64 = Errno::EFAULT.to_ret();
const ENXIO: i64 = Errno::ENXIO.to_ret();
const EPERM: i64 = Errno::EPERM.to_ret();
const ENODEV: i64 = Errno::ENODEV.to_ret();
/// An address in the hypervisor's slice.
const HYPERVISOR_PTR: u64 = 0xffff_8300_0000_0000;
/// Linux's flat user data descriptor (DPL 3) and flat 64-bit kernel code (DPL 0).
const USER_DS: u64 = 0x00cf_f300_0000_ffff;
const KERNEL_CS64: u64 = 0x00af_9b00_0000_ffff;
/// A 64-bit TSS descriptor's low half: a system descriptor no guest may have.
const TSS: u64 = 0x0000_8900_0000_0067;

/// #GP taken (and skipped over by the length in `SKIP`).
static GP_COUNT: AtomicU32 = AtomicU32::new(0);
static SKIP: AtomicU32 = AtomicU32::new(0);

fn on_gp(t: &mut Trap<'_>) {
    GP_COUNT.fetch_add(1, Ordering::SeqCst);
    t.frame.rip += u64::from(SKIP.load(Ordering::SeqCst));
}

/// #UD taken (skipped over by `SKIP`, as #GP).
static UD_COUNT: AtomicU32 = AtomicU32::new(0);

fn on_ud(t: &mut Trap<'_>) {
    UD_COUNT.fetch_add(1, Ordering::SeqCst);
    t.frame.rip += u64::from(SKIP.load(Ordering::SeqCst));
}

/// #DB taken, with the rip and DR6 of the last one (DR6 is then reset, and the trap flag
/// cleared in the interrupted state, as a kernel's handler does).
static DB_COUNT: AtomicU32 = AtomicU32::new(0);
static DB_RIP: AtomicU64 = AtomicU64::new(0);
static DB_DR6: AtomicU64 = AtomicU64::new(0);

fn on_db(t: &mut Trap<'_>) {
    DB_COUNT.fetch_add(1, Ordering::SeqCst);
    DB_RIP.store(t.frame.rip, Ordering::SeqCst);
    DB_DR6.store(hypercall::get_debugreg(6) as u64, Ordering::SeqCst);
    let _ = hypercall::set_debugreg(6, 0);
    t.frame.rflags &= !0x100;
}

/// The handlers every check relies on.
const HANDLERS: [(u8, traps::Handler); 3] = [(13, on_gp), (6, on_ud), (1, on_db)];

/// Runs `f`, which executes one faulting-or-not instruction of `len` bytes, and says
/// whether it took a #GP.
fn gp_of(len: u32, f: impl FnOnce()) -> bool {
    SKIP.store(len, Ordering::SeqCst);
    let before = GP_COUNT.load(Ordering::SeqCst);
    f();
    GP_COUNT.load(Ordering::SeqCst) != before
}

fn hypercall2(nr: Hypercall, a1: u64, a2: u64) -> i64 {
    // SAFETY: every call here passes pointers to live memory of ours, or addresses meant to
    // be refused (the hypervisor checks them); none makes the hypervisor write to us
    // beyond the object passed.
    unsafe { hypercall_via_page(nr as u64, a1, a2, 0, 0, 0) }
}

fn set_iopl(iopl: u32) -> i64 {
    hypercall2(Hypercall::PhysdevOp, PHYSDEVOP_SET_IOPL.into(), (&raw const iopl) as u64)
}

fn cli() {
    // SAFETY: `cli` is 1 byte; it either faults (the #GP handler skips it) or, under the
    // virtual IOPL, is skipped by the hypervisor. It changes no memory.
    unsafe { asm!("cli", options(nomem, nostack)) }
}

fn sti() {
    // SAFETY: as `cli`.
    unsafe { asm!("sti", options(nomem, nostack)) }
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: `in %dx, %al` (1 byte): emulated by the hypervisor or skipped by the #GP
    // handler (al then keeps 0x5a).
    unsafe { asm!("mov al, 0x5a", "in al, dx", out("al") v, in("dx") port, options(nomem, nostack)) }
    v
}

fn outb(port: u16, v: u8) {
    // SAFETY: `out %al, %dx` (1 byte), as `inb`.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack)) }
}

fn read_cr0() -> u64 {
    let v;
    // SAFETY: emulated read of CR0.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack)) }
    v
}

fn write_cr0(v: u64) {
    // SAFETY: `mov %rax, %cr0` (3 bytes): TS changes are carried out, others fault (the
    // #GP handler skips it).
    unsafe { asm!("mov cr0, rax", in("rax") v, options(nomem, nostack)) }
}

fn read_cr4() -> u64 {
    let v;
    // SAFETY: emulated read of CR4.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack)) }
    v
}

fn write_cr4(v: u64) {
    // SAFETY: `mov %rax, %cr4` (3 bytes): the hypervisor keeps the guest bits.
    unsafe { asm!("mov cr4, rax", in("rax") v, options(nomem, nostack)) }
}

/// The physical-IRQ path is the control domain's: a guest maps, binds and EOIs nothing.
fn pirqs(t: &mut Tests) {
    use pv_guest::physdev;
    t.report("physdev_map_pirq_is_eperm", expect_ret(physdev::map_gsi(11).map_or_else(|e| e.to_ret(), i64::from), Errno::EPERM.to_ret()));
    t.report("physdev_unmap_pirq_is_eperm", expect_ret(physdev::unmap(11).map_or_else(|e| e.to_ret(), |_| 0), Errno::EPERM.to_ret()));
    t.report("evtchn_bind_pirq_unmapped_is_eperm", expect_ret(pv_guest::events::bind_pirq(11).map_or_else(|e| e.to_ret(), i64::from), Errno::EPERM.to_ret()));
    t.report("evtchn_bind_pirq_out_of_range_is_einval", expect_ret(pv_guest::events::bind_pirq(1 << 20).map_or_else(|e| e.to_ret(), i64::from), EINVAL));
    t.report("physdev_eoi_not_ours_is_einval", expect_ret(physdev::eoi(11).map_or_else(|e| e.to_ret(), |_| 0), EINVAL));
    t.report("physdev_irq_status_query_needs_eoi", expect_ret(physdev::status(11).map_or_else(|e| e.to_ret(), i64::from), 1));
}

fn iopl(t: &mut Tests) {
    t.report("physdev_set_iopl_4_is_einval", expect_ret(set_iopl(4), EINVAL));
    t.report(
        "physdev_set_iopl_bad_pointer_is_efault",
        expect_ret(hypercall2(Hypercall::PhysdevOp, PHYSDEVOP_SET_IOPL.into(), HYPERVISOR_PTR), EFAULT),
    );
    t.report("physdev_unknown_sub_op_is_enosys", expect_ret(hypercall2(Hypercall::PhysdevOp, 1000, 0), Errno::ENOSYS.to_ret()));
    t.report("physdev_set_iopl_0", expect_ret(set_iopl(0), 0));
    t.report("cli_without_iopl_is_gp", ensure(gp_of(1, cli), || "no #GP".into()));
    t.report("in_without_iopl_is_gp", ensure(gp_of(1, || { let _ = inb(0x80); }), || "no #GP".into()));
    t.report("physdev_set_iopl_1", expect_ret(set_iopl(1), 0));
    t.report("cli_sti_under_iopl_are_skipped", ensure(!gp_of(1, cli) && !gp_of(1, sti), || "#GP".into()));
    t.report("in_under_iopl_reads_all_ones", {
        let v = inb(0x80);
        ensure(v == 0xff, || format!("read {v:#x}"))
    });
    t.report("out_under_iopl_is_dropped", ensure(!gp_of(1, || outb(0x80, 1)), || "#GP".into()));
    // The hardware's ports are the control domain's: a guest's PCI configuration access
    // reaches nothing.
    t.report("pci_config_under_iopl_reads_all_ones", {
        outb(0xcf8, 0);
        let v = inb(0xcfc);
        ensure(v == 0xff, || format!("read {v:#x}"))
    });
    // The bitmap: port 0x80 allowed (bit clear), 0x81 denied; IOPL back to 0.
    let mut bitmap = alloc::vec![0xffu8; 8192];
    bitmap[0x80 / 8] &= !1;
    let set = |addr: u64, ports: u32| {
        let arg: [u64; 2] = [addr, u64::from(ports)];
        hypercall2(Hypercall::PhysdevOp, PHYSDEVOP_SET_IOBITMAP.into(), (&raw const arg) as u64)
    };
    t.report("physdev_set_iobitmap_too_many_ports", expect_ret(set(bitmap.as_ptr() as u64, 65537), EINVAL));
    t.report("physdev_set_iobitmap_in_hypervisor", expect_ret(set(HYPERVISOR_PTR, 16), EINVAL));
    t.report("physdev_set_iobitmap", expect_ret(set(bitmap.as_ptr() as u64, 0x100), 0));
    set_iopl(0);
    t.report("in_allowed_by_the_bitmap", ensure(!gp_of(1, || { let _ = inb(0x80); }), || "#GP".into()));
    t.report("in_denied_by_the_bitmap", ensure(gp_of(1, || { let _ = inb(0x81); }), || "no #GP".into()));
    t.report("in_past_the_bitmap_is_gp", ensure(gp_of(1, || { let _ = inb(0x100); }), || "no #GP".into()));
    set(0, 0);
}

fn descriptors(t: &mut Tests, mm: &mut GuestMm) {
    let set_gdt = |frames: &[u64], entries: u64| hypercall2(Hypercall::SetGdt, frames.as_ptr() as u64, entries);
    let update = |maddr: u64, desc: u64| hypercall2(Hypercall::UpdateDescriptor, maddr, desc);
    t.report("set_gdt_7169_entries_is_einval", expect_ret(set_gdt(&[0], 7169), EINVAL));
    t.report("set_gdt_bad_list_is_efault", expect_ret(hypercall2(Hypercall::SetGdt, HYPERVISOR_PTR, 16), EFAULT));
    let Some((mapped, _)) = mm.alloc_mapped() else { return t.report("frames", Err("no mapped frame".into())) };
    t.report("set_gdt_frame_mapped_writable_is_einval", expect_ret(set_gdt(&[mapped.mfn.0], 16), EINVAL));
    let Some(frame) = mm.alloc_frame() else { return t.report("frames", Err("no free frame".into())) };
    let base = frame.mfn.0 << 12;
    t.report("update_descriptor_user_ds", expect_ret(update(base + 5 * 8, USER_DS), 0));
    t.report("update_descriptor_kernel_cs", expect_ret(update(base + 2 * 8, KERNEL_CS64), 0));
    t.report("update_descriptor_tss_is_einval", expect_ret(update(base + 8 * 8, TSS), EINVAL));
    t.report("update_descriptor_unaligned_is_einval", expect_ret(update(base + 4, USER_DS), EINVAL));
    t.report("update_descriptor_foreign_frame_is_einval", expect_ret(update(0x10, USER_DS), EINVAL));
    t.report("set_gdt", expect_ret(set_gdt(&[frame.mfn.0], 16), 0));
    t.report("load_a_selector_of_the_guest_gdt", {
        let mut ds: u16;
        let gp = gp_of(3, || {
            // SAFETY: loads ds from our GDT's entry 5 (`mov %ax, %ds`, 3 bytes, skipped by
            // the #GP handler if it faults); ds is ignored in 64-bit mode and set back to
            // null after.
            unsafe { asm!("mov ds, ax", in("ax") 0x2bu16, options(nomem, nostack)) }
        });
        // SAFETY: reads ds, then loads the null selector.
        unsafe {
            asm!("mov {0:x}, ds", out(reg) ds, options(nomem, nostack));
            asm!("mov ds, {0:x}", in(reg) 0u16, options(nomem, nostack));
        }
        ensure(!gp && ds == 0x2b, || format!("#GP {gp}, ds {ds:#x}"))
    });
    t.report("load_a_selector_past_the_gdt_is_gp", ensure(gp_of(3, || {
        // SAFETY: `mov %ax, %ds` (66 8e d8, 3 bytes) with a selector past the 16 entries:
        // #GP, skipped.
        unsafe { asm!("mov ds, ax", in("ax") 0x83u16, options(nomem, nostack)) }
    }), || "no #GP".into()));
    // While installed, the frame may not be mapped writable.
    let Some(va) = mm.va_of(mapped.pfn) else {
        return t.report("frames", Err("no va".into()));
    };
    let table = mm.boot_table_for(1, va);
    t.report("gdt_frame_cannot_be_mapped_writable", match table {
        Some(l1) => {
            let req = MmuUpdate { ptr: entry_maddr(l1, pv_guest::mm::table_index(va, 1)), val: make_entry(frame.mfn, DATA_RW_FLAGS) };
            let (ret, _) = pt_update_raw(&[req]);
            ensure(ret < 0, || format!("mapped: {}", describe(ret)))
        }
        None => Err("no L1 for the padding page".into()),
    });
    t.report("set_gdt_empty", expect_ret(set_gdt(&[], 0), 0));
    t.report("update_descriptor_after_release", expect_ret(update(base, 0), 0));
    ldt(t, mm);
}

/// `MMUEXT_SET_LDT`: a descriptor frame mapped read-only at a page of ours becomes the
/// LDT; its selector (TI set) loads; past its entries, or with the LDT gone, it faults.
fn ldt(t: &mut Tests, mm: &mut GuestMm) {
    let set_ldt = |va: u64, ents: u64| {
        let op = MmuextOp { cmd: MMUEXT_SET_LDT, _pad: 0, arg1: va, arg2: ents };
        mmuext_raw(&[op]).0
    };
    let (Some(frame), Some((_, va))) = (mm.alloc_frame(), mm.alloc_mapped()) else {
        return t.report("ldt_frames", Err("no frames".into()));
    };
    t.report("ldt_descriptor_written", expect_ret(hypercall2(Hypercall::UpdateDescriptor, frame.mfn.0 << 12, USER_DS), 0));
    t.report("ldt_page_mapped_read_only", expect_ret(update_va_mapping_raw(va, make_entry(frame.mfn, DATA_RO_FLAGS), UVMF_INVLPG), 0));
    t.report("set_ldt_misaligned_is_einval", expect_ret(set_ldt(va + 8, 1), EINVAL));
    t.report("set_ldt_8193_entries_is_einval", expect_ret(set_ldt(va, 8193), EINVAL));
    t.report("set_ldt_in_hypervisor_is_einval", expect_ret(set_ldt(HYPERVISOR_PTR, 1), EINVAL));
    t.report("set_ldt", expect_ret(set_ldt(va, 1), 0));
    let load = |sel: u16| {
        gp_of(3, || {
            // SAFETY: `mov %ax, %ds` (3 bytes), skipped by the #GP handler if it faults; ds
            // is ignored in 64-bit mode and nulled below.
            unsafe { asm!("mov ds, ax", in("ax") sel, options(nomem, nostack)) }
        })
    };
    t.report("load_an_ldt_selector", {
        let gp = load(0x7);
        let ds: u16;
        // SAFETY: reads ds, then loads the null selector.
        unsafe {
            asm!("mov {0:x}, ds", out(reg) ds, options(nomem, nostack));
            asm!("mov ds, {0:x}", in(reg) 0u16, options(nomem, nostack));
        }
        ensure(!gp && ds == 0x7, || format!("#GP {gp}, ds {ds:#x}"))
    });
    t.report("ldt_selector_past_the_entries_is_gp", ensure(load(0xf), || "no #GP".into()));
    t.report("set_ldt_none", expect_ret(set_ldt(0, 0), 0));
    t.report("ldt_selector_without_ldt_is_gp", ensure(load(0x7), || "no #GP".into()));
}

fn control_registers(t: &mut Tests) {
    let cr0 = read_cr0();
    t.report("cr0_ts_set_and_clear", {
        let gp = gp_of(3, || write_cr0(cr0 | 8)) || gp_of(3, || write_cr0(cr0 & !8));
        let now = read_cr0();
        ensure(!gp && now & 8 == 0, || format!("#GP {gp}, cr0 {now:#x}"))
    });
    t.report("cr0_pg_clear_is_gp", ensure(gp_of(3, || write_cr0(cr0 & !(1 << 31))), || "no #GP".into()));
    let cr4 = read_cr4();
    t.report("cr4_guest_bit_de", {
        let gp = gp_of(3, || write_cr4(cr4 | 8));
        let with = read_cr4();
        write_cr4(cr4 & !8);
        let without = read_cr4();
        ensure(!gp && with & 8 != 0 && without & 8 == 0, || format!("#GP {gp}, {with:#x} / {without:#x}"))
    });
    t.report("cr4_other_bits_ignored", {
        // PSE and SMEP are the hypervisor's: a write of them changes nothing, faults never.
        let gp = gp_of(3, || write_cr4(cr4 | (1 << 4) | (1 << 20)));
        let now = read_cr4();
        ensure(!gp && now & ((1 << 4) | (1 << 20)) == 0, || format!("#GP {gp}, cr4 {now:#x}"))
    });
}

fn callback_register(kind: u16, address: u64) -> i64 {
    // struct callback_register { u16 type; u16 flags; u32 pad; u64 address; }
    let arg: [u64; 2] = [u64::from(kind), address];
    // SAFETY: the hypervisor reads the 16-byte argument.
    unsafe { hypercall_via_page(Hypercall::CallbackOp as u64, 0, (&raw const arg) as u64, 0, 0, 0) }
}

fn callback_unregister(kind: u16) -> i64 {
    let arg: u32 = u32::from(kind);
    // SAFETY: the hypervisor reads the 4-byte argument.
    unsafe { hypercall_via_page(Hypercall::CallbackOp as u64, 1, (&raw const arg) as u64, 0, 0, 0) }
}

/// Something to name as a callback: never entered by these checks.
extern "C" fn never_entered() {}

/// `callback_op` for every type Xen has (the ones entered by the kit, event and failsafe,
/// are left alone), `nmi_op`, the runstate of this vCPU and its registered area, and the
/// grant-table version operations of a one-domain table.
fn callbacks_runstate_grants(t: &mut Tests, mm: &mut GuestMm) {
    let f = never_entered as *const () as u64;
    t.report("callback_syscall32_stored", expect_ret(callback_register(7, f), 0));
    t.report("callback_sysenter_stored", expect_ret(callback_register(5, f), 0));
    t.report("callback_sysenter_deprecated_enosys", expect_ret(callback_register(3, f), Errno::ENOSYS.to_ret()));
    t.report("callback_unknown_type_enosys", expect_ret(callback_register(99, f), Errno::ENOSYS.to_ret()));
    t.report("callback_hypervisor_address_einval", expect_ret(callback_register(7, HYPERVISOR_PTR), EINVAL));
    t.report("callback_nmi_register_and_unregister", {
        let (r, u) = (callback_register(4, f), callback_unregister(4));
        ensure(r == 0 && u == 0, || format!("{r}, {u}"))
    });
    t.report("callback_unregister_event_einval", expect_ret(callback_unregister(0), EINVAL));
    t.report("callback_unregister_unknown_enosys", expect_ret(callback_unregister(99), Errno::ENOSYS.to_ret()));
    let nmi = |cmd: u64, address: u64| {
        let arg: [u64; 2] = [address, 0];
        // SAFETY: the hypervisor reads `{handler_address, pad}`.
        unsafe { hypercall_via_page(Hypercall::NmiOp as u64, cmd, (&raw const arg) as u64, 0, 0, 0) }
    };
    t.report("nmi_op_register_unregister", {
        let (r, u, bad, unknown) = (nmi(0, f), nmi(1, 0), nmi(0, 0x0000_8000_0000_0000), nmi(2, f));
        ensure(r == 0 && u == 0 && bad == EINVAL && unknown == Errno::ENOSYS.to_ret(), || format!("{r} {u} {bad} {unknown}"))
    });
    let runstate = |vcpu: u64, out: &mut [u64; 6]| {
        // SAFETY: the hypervisor writes the 48-byte vcpu_runstate_info into `out`.
        unsafe { hypercall_via_page(Hypercall::VcpuOp as u64, 4, vcpu, out.as_mut_ptr() as u64, 0, 0) }
    };
    t.report("vcpu_get_runstate_info", {
        let mut info = [0u64; 6];
        let r = runstate(0, &mut info);
        // state (RUNSTATE_running = 0), entry time, then the time in each state.
        ensure(r == 0 && info[0] as u32 == 0 && info[1] > 0 && info[2] > 0, || format!("{r}, {info:x?}"))
    });
    t.report("vcpu_get_runstate_info_no_such_vcpu", expect_ret(runstate(1, &mut [0; 6]), Errno::ENOENT.to_ret()));
    t.report("vcpu_register_runstate_memory_area", {
        static mut AREA: [u64; 6] = [u64::MAX; 6];
        let addr = (&raw mut AREA) as u64;
        // SAFETY: the hypervisor reads the address of our area, then writes the area.
        let r = unsafe { hypercall_via_page(Hypercall::VcpuOp as u64, 5, 0, (&raw const addr) as u64, 0, 0) };
        // SAFETY: read back what the hypervisor wrote.
        let area = unsafe { core::ptr::read_volatile(&raw const AREA) };
        // Unregister (address 0) before the static is reused by anything else.
        let zero = 0u64;
        // SAFETY: as above.
        let off = unsafe { hypercall_via_page(Hypercall::VcpuOp as u64, 5, 0, (&raw const zero) as u64, 0, 0) };
        ensure(r == 0 && off == 0 && area[0] as u32 == 0 && area[1] != u64::MAX, || format!("{r} {off} {area:x?}"))
    });
    // Grant tables, one domain: version operations and status frames.
    use pv_guest::grant;
    use pv_guest::hypercall_abi::grant_table::{GnttabGetStatusFrames, GNTST_GENERAL_ERROR, GNTST_OKAY, GNTTABOP_GET_STATUS_FRAMES, GNTTABOP_TRANSFER};
    let status_frames = |n: u32, count: u32| {
        let mut list = [0u64; 2];
        let mut op = GnttabGetStatusFrames { nr_frames: n, dom: 0x7ff0, status: 0, frame_list: list.as_mut_ptr() as u64 };
        let r = grant::grant_table_op_raw(GNTTABOP_GET_STATUS_FRAMES, (&raw mut op).cast(), count);
        (r, op.status, list[0])
    };
    t.report("grant_set_version_3_einval", ensure(grant::set_version(3) == (EINVAL, 1), || format!("{:?}", grant::set_version(3))));
    t.report("grant_transfer_enosys", expect_ret(grant::grant_table_op_raw(GNTTABOP_TRANSFER, core::ptr::null_mut(), 1), Errno::ENOSYS.to_ret()));
    t.report("grant_get_status_frames_count_2_einval", ensure(status_frames(1, 2).0 == EINVAL, || "accepted".into()));
    t.report("grant_get_status_frames_under_v1", ensure(status_frames(1, 1) == (0, GNTST_GENERAL_ERROR, 0), || format!("{:?}", status_frames(1, 1))));
    let table = grant::GrantTable::setup(mm, 1);
    t.report("grant_v2_and_back", {
        let (r2, v2) = grant::set_version(2);
        let (r, st, frame) = status_frames(1, 1);
        let (r1, v1) = grant::set_version(1);
        ensure(table.is_ok() && (r2, v2) == (0, 2) && (r, st) == (0, GNTST_OKAY) && frame != 0 && (r1, v1) == (0, 1), || {
            format!("setup {:?}, to 2: {r2}/{v2}, status frames {r}/{st}/{frame:#x}, to 1: {r1}/{v1}", table.as_ref().err())
        })
    });
}

/// A word for data breakpoints.
static WATCHED: AtomicU64 = AtomicU64::new(0);

/// `xen_version(XENVER_get_features)`'s argument, watched while the hypervisor copies it.
static mut FEATURES_ARG: [u32; 2] = [0; 2];

/// The stack selector, for `mov %ss` from memory.
static mut SS_VALUE: u16 = 0;

fn read_dr7() -> u64 {
    let v;
    // SAFETY: `mov %dr7, reg` is emulated (the guest's DR7); no memory is touched.
    unsafe { asm!("mov {}, dr7", out(reg) v, options(nomem, nostack)) }
    v
}

/// `mov %rax, %dr0` (3 bytes).
fn write_dr0(v: u64) {
    // SAFETY: emulated: sets the guest's DR0 or raises #GP (skipped by the handler).
    unsafe { asm!("mov dr0, rax", in("rax") v, options(nomem, nostack)) }
}

/// `mov %dr4, %rax` (3 bytes): #UD with CR4.DE.
fn read_dr4() -> u64 {
    let v;
    // SAFETY: emulated, or #UD skipped by the handler; rax is then 0.
    unsafe { asm!("xor eax, eax", "mov rax, dr4", out("rax") v, options(nomem, nostack)) }
    v
}

/// Runs `f` and says how many #DB it took.
fn dbs_of(f: impl FnOnce()) -> u32 {
    let before = DB_COUNT.load(Ordering::SeqCst);
    f();
    DB_COUNT.load(Ordering::SeqCst) - before
}

/// DR7 enabling breakpoint 0 locally: `rw` 1 write, 3 read/write; `len` 1 two bytes, 3
/// four, 2 eight.
fn dr7_bp0(rw: u64, len: u64) -> u64 {
    1 | (rw << 16) | (len << 18)
}

fn debug_registers(t: &mut Tests) {
    use hypercall::{get_debugreg, set_debugreg};
    let watched = (&raw const WATCHED) as u64;
    t.report("debugreg_dr0_guest_address", {
        let r = set_debugreg(0, watched);
        let back = get_debugreg(0);
        ensure(r == 0 && back == watched as i64, || format!("set {r}, read back {back:#x}"))
    });
    t.report("debugreg_hypervisor_address_is_eperm", expect_ret(set_debugreg(1, HYPERVISOR_PTR), EPERM));
    t.report("debugreg_non_canonical_is_eperm", expect_ret(set_debugreg(2, 0x0000_8000_0000_0000), EPERM));
    t.report("debugreg_dr7_general_detect_is_eperm", expect_ret(set_debugreg(7, (1 << 13) | 1), EPERM));
    t.report("debugreg_dr6_upper_bits_einval", expect_ret(set_debugreg(6, 1 << 32), EINVAL));
    t.report("debugreg_dr7_upper_bits_einval", expect_ret(set_debugreg(7, 1 << 32), EINVAL));
    t.report("debugreg_reg8_is_enodev", {
        let (s, g) = (set_debugreg(8, 0), get_debugreg(8));
        ensure(s == ENODEV && g == ENODEV, || format!("set {s}, get {g}"))
    });
    t.report("debugreg_dr6_reserved_bits", {
        let r = set_debugreg(6, 0);
        let v = get_debugreg(6);
        ensure(r == 0 && v == 0xffff_0ff0, || format!("set {r}, dr6 {v:#x}"))
    });
    t.report("debugreg_io_breakpoint_needs_cr4_de", expect_ret(set_debugreg(7, (2 << 16) | 1), EPERM));
    let cr4 = read_cr4();
    t.report("debugreg_dr4_aliases_dr6_without_cr4_de", {
        let r = set_debugreg(4, 1);
        let v = get_debugreg(6);
        let _ = set_debugreg(6, 0);
        ensure(r == 0 && v == 0xffff_0ff1, || format!("set {r}, dr6 {v:#x}"))
    });
    t.report("debugreg_dr4_with_cr4_de_is_enodev_and_ud", {
        write_cr4(cr4 | 8);
        let (s, g) = (set_debugreg(4, 0), get_debugreg(5));
        SKIP.store(3, Ordering::SeqCst);
        let before = UD_COUNT.load(Ordering::SeqCst);
        let _ = read_dr4();
        let ud = UD_COUNT.load(Ordering::SeqCst) - before;
        write_cr4(cr4 & !8);
        ensure(s == ENODEV && g == ENODEV && ud == 1, || format!("set {s}, get {g}, #UD {ud}"))
    });
    t.report("debugreg_mov_emulated", {
        let gp_bad = gp_of(3, || write_dr0(HYPERVISOR_PTR));
        let gp_ok = gp_of(3, || write_dr0(watched + 8));
        let dr0 = get_debugreg(0);
        let _ = set_debugreg(7, dr7_bp0(1, 3));
        let dr7 = read_dr7();
        let _ = set_debugreg(7, 0);
        ensure(gp_bad && !gp_ok && dr0 == (watched + 8) as i64 && dr7 == 0x000d_0401, || {
            format!("#GP for a hypervisor address {gp_bad}, for ours {gp_ok}, dr0 {dr0:#x}, dr7 {dr7:#x}")
        })
    });
    t.report("debugreg_data_breakpoint_fires", {
        let _ = set_debugreg(0, watched);
        let _ = set_debugreg(7, dr7_bp0(1, 2));
        let n = dbs_of(|| WATCHED.store(7, Ordering::SeqCst));
        let _ = set_debugreg(7, 0);
        let dr6 = DB_DR6.load(Ordering::SeqCst);
        ensure(n == 1 && dr6 & 0xf == 1, || format!("{n} #DB, dr6 {dr6:#x}"))
    });
    t.report("debugreg_breakpoint_in_hypervisor_copy_is_dropped", {
        // The hypervisor reads and writes the watched argument: its #DB there is its own,
        // dropped as Xen drops it; the guest sees none and the call works.
        let arg = (&raw mut FEATURES_ARG) as u64;
        let _ = set_debugreg(0, arg);
        let _ = set_debugreg(7, dr7_bp0(3, 3));
        let mut r = 0;
        let n = dbs_of(|| {
            // SAFETY: the argument is ours and the size the call writes (8 bytes).
            r = unsafe { hypercall_via_page(Hypercall::XenVersion as u64, 6, arg, 0, 0, 0) };
        });
        let _ = set_debugreg(7, 0);
        ensure(r == 0 && n == 0, || format!("xen_version {r}, {n} #DB"))
    });
    t.report("debugreg_single_step", {
        let mut after: u64 = 0;
        let n = dbs_of(|| {
            // SAFETY: sets TF; the #DB handler clears it after one instruction (a nop).
            unsafe {
                asm!("lea {a}, [rip + 2f]", "pushfq", "or qword ptr [rsp], 0x100", "popfq", "nop", "2:", a = out(reg) after)
            }
        });
        let (rip, dr6) = (DB_RIP.load(Ordering::SeqCst), DB_DR6.load(Ordering::SeqCst));
        ensure(n == 1 && rip == after && dr6 & 0x4000 != 0, || format!("{n} #DB at {rip:#x} (want {after:#x}), dr6 {dr6:#x}"))
    });
    t.report("debugreg_single_step_over_emulated_instruction", {
        let mut after: u64 = 0;
        let n = dbs_of(|| {
            // SAFETY: as above; the stepped instruction is the emulated `mov %cr0`.
            unsafe {
                asm!("lea {a}, [rip + 2f]", "pushfq", "or qword ptr [rsp], 0x100", "popfq", "mov {v}, cr0", "2:", a = out(reg) after, v = out(reg) _)
            }
        });
        let (rip, dr6) = (DB_RIP.load(Ordering::SeqCst), DB_DR6.load(Ordering::SeqCst));
        ensure(n == 1 && rip == after && dr6 & 0x4000 != 0, || format!("{n} #DB at {rip:#x} (want {after:#x}), dr6 {dr6:#x}"))
    });
    t.report("debugreg_single_step_over_syscall", {
        // The trap flag goes through the hypercall and back; the step lands in the guest.
        let mut r: i64 = 0;
        let n = dbs_of(|| {
            // SAFETY: a raw `xen_version(XENVER_version)` hypercall with TF set; rcx and
            // r11 are clobbered by `syscall`.
            unsafe {
                asm!("pushfq", "or qword ptr [rsp], 0x100", "popfq", "syscall", "nop",
                    inout("rax") Hypercall::XenVersion as u64 => r, in("rdi") 0u64, in("rsi") 0u64,
                    out("rcx") _, out("r11") _)
            }
        });
        let dr6 = DB_DR6.load(Ordering::SeqCst);
        ensure(n >= 1 && r > 0 && dr6 & 0x4000 != 0, || format!("{n} #DB, result {r:#x}, dr6 {dr6:#x}"))
    });
    t.report("debugreg_movss_breakpoint_then_syscall", {
        // CVE-2018-8897: a #DB raised by `mov %ss` is held for one instruction; if that is
        // `syscall`, hardware delivers it in ring 0 on the guest's rsp. The hypervisor's
        // #DB runs on its own stack and drops it; under emulation it may come at once,
        // to the guest. Either way the call completes and nothing else happens.
        // SAFETY: reading ss has no effect.
        unsafe {
            asm!("mov {0:x}, ss", out(reg) SS_VALUE);
        }
        let _ = set_debugreg(0, (&raw const SS_VALUE) as u64);
        let _ = set_debugreg(7, dr7_bp0(3, 1));
        let mut r: i64 = 0;
        let n = dbs_of(|| {
            // SAFETY: reloads ss with its own value, then a raw `xen_version` hypercall.
            unsafe {
                asm!("mov ss, word ptr [{p}]", "syscall",
                    p = in(reg) (&raw const SS_VALUE),
                    inout("rax") Hypercall::XenVersion as u64 => r, in("rdi") 0u64, in("rsi") 0u64,
                    out("rcx") _, out("r11") _)
            }
        });
        let _ = set_debugreg(7, 0);
        ensure(n <= 1 && r > 0, || format!("{n} #DB, result {r:#x}"))
    });
}

fn cpuid_and_features(t: &mut Tests) {
    let l1 = cpuid_forced(1, 0);
    t.report("cpuid_1_hides_pse_pge_apic", ensure(l1[3] & ((1 << 3) | (1 << 13) | (1 << 9)) == 0, || format!("edx {:#x}", l1[3])));
    t.report("cpuid_1_hypervisor_bit", ensure(l1[2] & (1 << 31) != 0 && l1[2] & (1 << 5) == 0, || format!("ecx {:#x}", l1[2])));
    let x1 = cpuid_forced(0x8000_0001, 0);
    t.report("cpuid_80000001_no_1g_pages", ensure(x1[3] & (1 << 26) == 0, || format!("edx {:#x}", x1[3])));
    let l7 = cpuid_forced(7, 0);
    t.report("cpuid_7_no_smep_smap_la57", ensure(l7[1] & ((1 << 7) | (1 << 20)) == 0 && l7[2] & (1 << 16) == 0, || format!("ebx {:#x} ecx {:#x}", l7[1], l7[2])));
    let want = (1 << XENFEAT_MMU_PT_UPDATE_PRESERVE_AD) | (1 << XENFEAT_HIGHMEM_ASSIST) | (1 << XENFEAT_GNTTAB_MAP_AVAIL_BITS) | (1 << XENFEAT_DIRECT_MAPPED);
    t.report("features_as_xen_offers_a_domu", match xen_features(0) {
        Ok(f) => ensure(f == want, || format!("{f:#x}, want {want:#x} (no dom0 bit {XENFEAT_DOM0})")),
        Err(e) => Err(format!("{e:?}")),
    });
    // As Xen 4.19: the writable-pagetables assist works but is not a feature bit for a PV
    // guest; pae_extended_cr3 shows as pae_pgdir_above_4gb.
    t.report("vm_assist_writable_pagetables", expect_ret(vm_assist_raw(VMASST_CMD_ENABLE, VMASST_TYPE_WRITABLE_PAGETABLES), 0));
    t.report("vm_assist_pae_extended_cr3", expect_ret(vm_assist_raw(VMASST_CMD_ENABLE, pv_guest::hypercall_abi::arch::VMASST_TYPE_PAE_EXTENDED_CR3), 0));
    t.report("features_follow_the_assist", match xen_features(0) {
        Ok(f) => ensure(f == want | (1 << XENFEAT_PAE_PGDIR_ABOVE_4GB), || format!("{f:#x} (writable_page_tables is bit {XENFEAT_WRITABLE_PAGE_TABLES})")),
        Err(e) => Err(format!("{e:?}")),
    });
}

fn selectors_and_stacks(t: &mut Tests) {
    let rsp: u64;
    // SAFETY: reads rsp.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack)) };
    t.report("stack_switch_takes_linux_kernel_ds", expect_ret(hypercall2(Hypercall::StackSwitch, 0x18, rsp & !0xf), 0));
    t.report("set_segment_base_gs_user_sel", expect_ret(hypercall2(Hypercall::SetSegmentBase, 3, 0x2b), 0));
    let table = |cs: u16| [TrapInfo::new(13, 0, true, cs, traps::stub_address(13)), TrapInfo::new(0, 0, false, 0, 0)];
    let set = |cs: u16| {
        let tab = table(cs);
        hypercall2(Hypercall::SetTrapTable, tab.as_ptr() as u64, 0)
    };
    t.report("trap_table_guest_gdt_selector", expect_ret(set(0x10), 0));
    t.report("trap_table_hypervisor_selector_is_einval", expect_ret(set(0xe008), EINVAL));
    t.report("trap_table_flat_selector_rpl0", expect_ret(set(0xe030), 0));
    let msg = b"xen-abi\n";
    t.report("console_io_write_is_eperm", expect_ret(
        // SAFETY: the hypervisor reads `msg` (refused before that).
        unsafe { hypercall_via_page(Hypercall::ConsoleIo as u64, 0, msg.len() as u64, msg.as_ptr() as u64, 0, 0) },
        EPERM,
    ));
}

/// `XENMEM_exchange` of one free frame (mapped nowhere): a new frame takes its pfn.
fn memory_exchange(t: &mut Tests, mm: &mut GuestMm) {
    let Some(frame) = mm.alloc_frame() else { return t.report("exchange_frame", Err("no frame".into())) };
    let (mut ins, mut outs) = ([frame.mfn.0], [frame.pfn.0]);
    // struct xen_memory_reservation: list, nr_extents, order | flags << 32, domid.
    let res = |list: u64| [list, 1, 0, 0x7ff0u64];
    // in (32 bytes), out (32 bytes), nr_exchanged: extent order 0, flags 0, DOMID_SELF.
    let mut arg = [0u64; 9];
    arg[..4].copy_from_slice(&res(ins.as_mut_ptr() as u64));
    arg[4..8].copy_from_slice(&res(outs.as_mut_ptr() as u64));
    // SAFETY: the hypervisor reads `arg` and the lists and writes back into `outs` and
    // `arg[8]`, all ours and live.
    let ret = unsafe { hypercall_via_page(Hypercall::MemoryOp as u64, 11, (&raw mut arg) as u64, 0, 0, 0) };
    let new = outs[0];
    t.report("xenmem_exchange_one_page", expect_ret(ret, 0).and(ensure(
        // The M2P read is bounded by the largest frame the guest knew of: a new frame may be
        // past it.
        arg[8] == 1 && new != 0 && mm.m2p.get(pv_guest::hypercall_abi::types::Mfn(new)).is_none_or(|pfn| pfn == frame.pfn.0),
        || format!("nr_exchanged {}, new mfn {new:#x} (old {:#x}), its M2P {:?}", arg[8], frame.mfn.0, mm.m2p.get(pv_guest::hypercall_abi::types::Mfn(new))),
    )));
    mm.p2m.set(frame.pfn, pv_guest::hypercall_abi::types::Mfn(new));
    ins[0] = new;
    arg[8] = 0;
    arg[0] = ins.as_ptr() as u64;
    arg[5] = 2; // out lists two extents, in one
    // SAFETY: as above; refused before anything is read past the argument.
    let ret = unsafe { hypercall_via_page(Hypercall::MemoryOp as u64, 11, (&raw mut arg) as u64, 0, 0, 0) };
    t.report("xenmem_exchange_mismatched_lists_is_einval", expect_ret(ret, EINVAL));
}

/// `M2P[mfn]` read straight from the hypervisor's read-only table (any frame up to
/// `XENMEM_machphys_mapping`'s `max_mfn`).
fn m2p_raw(mfn: u64) -> Option<u64> {
    let mut map = [0u64; 3];
    // SAFETY: the hypervisor writes the 24-byte `xen_machphys_mapping` into `map`.
    let r = unsafe { hypercall_via_page(Hypercall::MemoryOp as u64, 12, (&raw mut map) as u64, 0, 0, 0) };
    if r != 0 || mfn > map[2] {
        return None;
    }
    // SAFETY: the table is mapped read-only for every guest at `v_start` up to `max_mfn`.
    Some(unsafe { core::ptr::read_volatile((map[0] + 8 * mfn) as *const u64) })
}

/// The rest of `memory_op` for a PV guest: `maximum_gpfn`, `machphys_mfn_list`, and
/// exchanges between single pages and a machine-contiguous extent.
fn memory_op_rest(t: &mut Tests, mm: &mut GuestMm, si: &StartInfo) {
    let domid = |d: u16| {
        let mut a = d;
        // SAFETY: the hypervisor reads the 2-byte domid.
        unsafe { hypercall_via_page(Hypercall::MemoryOp as u64, 14, (&raw mut a) as u64, 0, 0, 0) }
    };
    // As libxc, the builder leaves shared_info's arch.max_pfn 0 for a domU (Linux fills it
    // in): 0 reads as 0. Map our shared_info and set it, as Linux does.
    t.report("xenmem_maximum_gpfn", {
        use pv_guest::hypercall_abi::shared_info::{ArchSharedInfo, SharedInfo};
        let unset = domid(0x7ff0);
        let Some((_, va)) = mm.alloc_mapped() else { return t.report("xenmem_maximum_gpfn", Err("no page".into())) };
        let r = update_va_mapping_raw(va, make_entry(pv_guest::hypercall_abi::types::Mfn(si.shared_info >> 12), DATA_RW_FLAGS), UVMF_INVLPG);
        let at = (va + (core::mem::offset_of!(SharedInfo, arch) + core::mem::offset_of!(ArchSharedInfo, max_pfn)) as u64) as *mut u64;
        // SAFETY: `va` now maps our shared_info page; max_pfn is an aligned u64 the guest owns.
        unsafe { core::ptr::write_volatile(at, 0x1_2345) };
        let set = domid(0x7ff0);
        ensure(unset == 0 && r == 0 && set == 0x1_2344, || format!("unset {unset}, remap {r}, set {set:#x}"))
    });
    t.report("xenmem_maximum_gpfn_of_dom0_is_eperm", expect_ret(domid(0), EPERM));
    t.report("xenmem_machphys_mfn_list", {
        let mut list = [0u64; 4];
        // struct xen_machphys_mfn_list: max_extents, list, nr_extents.
        let mut a = [4u64, list.as_mut_ptr() as u64, 0];
        // SAFETY: the hypervisor writes up to 4 frame numbers into `list` and the count.
        let r = unsafe { hypercall_via_page(Hypercall::MemoryOp as u64, 5, (&raw mut a) as u64, 0, 0, 0) };
        let n = a[2] as u32;
        ensure(r == 0 && n >= 1 && list.iter().take(n as usize).all(|&m| m != 0 && m % 512 == 0), || format!("{r}, {n} extents: {list:x?}"))
    });
    // Eight single pages for one 8-page machine-contiguous extent (Linux's
    // xen_create_contiguous_region), then back.
    let frames: alloc::vec::Vec<_> = (0..8).filter_map(|_| mm.alloc_frame()).collect();
    if frames.len() != 8 {
        return t.report("xenmem_exchange_frames", Err("no frames".into()));
    }
    let base_pfn = frames[0].pfn.0;
    let mut ins: alloc::vec::Vec<u64> = frames.iter().map(|f| f.mfn.0).collect();
    let mut outs = [base_pfn; 8];
    let exchange = |ins: &mut [u64], in_order: u64, outs: &mut [u64], out_order: u64| {
        let mut arg = [ins.as_mut_ptr() as u64, ins.len() as u64, in_order, 0x7ff0, outs.as_mut_ptr() as u64, outs.len() as u64, out_order, 0x7ff0, 0];
        // SAFETY: the hypervisor reads the lists and writes back into `outs` and arg[8].
        let r = unsafe { hypercall_via_page(Hypercall::MemoryOp as u64, 11, (&raw mut arg) as u64, 0, 0, 0) };
        (r, arg[8])
    };
    // The extent's frames take pfns base..base + 8 in the M2P (what the guest asks; the M2P
    // is its bookkeeping), until the way back gives each frame's pfn a single page again.
    let (r, done) = exchange(&mut ins, 0, &mut outs[..1], 3);
    let first = outs[0];
    t.report("xenmem_exchange_pages_for_an_extent", {
        let m2p: alloc::vec::Vec<Option<u64>> = (0..8).map(|k| m2p_raw(first + k)).collect();
        ensure(r == 0 && done == 8 && first % 8 == 0 && (0..8).all(|k| m2p[k as usize] == Some(base_pfn + k)), || {
            format!("{r}, nr_exchanged {done}, extent {first:#x}, its M2P {m2p:x?}")
        })
    });
    // And back: the extent for eight single pages at the frames' original pfns.
    let mut back_in = [first];
    let mut back_out: alloc::vec::Vec<u64> = frames.iter().map(|f| f.pfn.0).collect();
    let (r, done) = exchange(&mut back_in, 3, &mut back_out, 0);
    t.report("xenmem_exchange_an_extent_for_pages", {
        let ok = frames.iter().zip(&back_out).all(|(f, &m)| m2p_raw(m) == Some(f.pfn.0));
        ensure(r == 0 && done == 1 && ok, || format!("{r}, nr_exchanged {done}, new frames {back_out:x?}"))
    });
    for (f, &m) in frames.iter().zip(&back_out) {
        mm.p2m.set(f.pfn, pv_guest::hypercall_abi::types::Mfn(m));
    }
    t.report("xenmem_exchange_order_past_max_is_eperm", {
        let (r, _) = exchange(&mut back_out[..1], 10, &mut outs[..1], 10);
        expect_ret(r, EPERM)
    });
}

fn vcpu_info(t: &mut Tests, mm: &mut GuestMm) {
    let Some((frame, va)) = mm.alloc_mapped() else { return t.report("vcpu_info_frame", Err("no page".into())) };
    let reg = |mfn: u64, offset: u32| {
        let arg: [u64; 2] = [mfn, u64::from(offset)];
        // SAFETY: the hypervisor reads `arg`.
        unsafe { hypercall_via_page(Hypercall::VcpuOp as u64, VCPUOP_REGISTER_VCPU_INFO.into(), 0, (&raw const arg) as u64, 0, 0) }
    };
    t.report("register_vcpu_info_offset_past_the_page", expect_ret(reg(frame.mfn.0, 4096 - 63), ENXIO));
    t.report("register_vcpu_info_unaligned", expect_ret(reg(frame.mfn.0, 12), ENXIO));
    t.report("register_vcpu_info_not_our_frame", expect_ret(reg(0x10, 64), EINVAL));
    t.report("register_vcpu_info", expect_ret(reg(frame.mfn.0, 64), 0));
    t.report("register_vcpu_info_marks_everything_pending", {
        // SAFETY: `va` maps the frame (ours, writable); its vcpu_info at 64 was just filled.
        let (pending, sel) = unsafe { (core::ptr::read_volatile((va + 64) as *const u8), core::ptr::read_volatile((va + 72) as *const u64)) };
        ensure(pending == 1 && sel == !0, || format!("pending {pending}, sel {sel:#x}"))
    });
    t.report("register_vcpu_info_twice_is_einval", expect_ret(reg(frame.mfn.0, 128), EINVAL));
}

fn evtchn_op<T>(cmd: u32, arg: &mut T) -> i64 {
    // SAFETY: `arg` is the command's argument structure, ours for the call.
    unsafe { pv_guest::events::event_channel_op_raw(cmd, (arg as *mut T).cast()) }
}

fn init_control(gfn: u64, offset: u32, vcpu: u32) -> (i64, u8) {
    let mut a = EvtchnInitControl { control_gfn: gfn, offset, vcpu, link_bits: 0, _pad: [0; 7] };
    let r = evtchn_op(EVTCHNOP_INIT_CONTROL, &mut a);
    (r, a.link_bits)
}

fn set_priority(port: u32, priority: u32) -> i64 {
    evtchn_op(EVTCHNOP_SET_PRIORITY, &mut EvtchnSetPriority { port, priority })
}

fn expand_array(gfn: u64) -> i64 {
    evtchn_op(EVTCHNOP_EXPAND_ARRAY, &mut EvtchnExpandArray { array_gfn: gfn })
}

fn fifo_events(t: &mut Tests, mm: &mut GuestMm) {
    use pv_guest::events;
    const PENDING: u32 = 1 << 31;
    const MASKED: u32 = 1 << 30;
    const LINKED: u32 = 1 << 29;
    let (Some((control, cva)), Some((array, ava))) = (mm.alloc_mapped(), mm.alloc_mapped()) else {
        return t.report("fifo_frames", Err("no page".into()));
    };
    let unbound = events::alloc_unbound(0x7ff0).unwrap_or(0);
    t.report("fifo_set_priority_under_two_level_is_enosys", expect_ret(set_priority(unbound, 3), Errno::ENOSYS.to_ret()));
    t.report("fifo_expand_array_before_init_is_eopnotsupp", expect_ret(expand_array(array.mfn.0), Errno::EOPNOTSUPP.to_ret()));
    t.report("fifo_init_control_no_such_vcpu_is_enoent", expect_ret(init_control(control.mfn.0, 0, 1).0, Errno::ENOENT.to_ret()));
    t.report("fifo_init_control_unaligned_is_einval", expect_ret(init_control(control.mfn.0, 4, 0).0, EINVAL));
    t.report("fifo_init_control_past_the_page_is_einval", expect_ret(init_control(control.mfn.0, 4096 - 64, 0).0, EINVAL));
    t.report("fifo_init_control_not_our_frame_is_einval", expect_ret(init_control(0x10, 0, 0).0, EINVAL));
    let ipi = {
        let mut a = pv_guest::hypercall_abi::event_channel::EvtchnBindIpi { vcpu: 0, port: 0 };
        evtchn_op(pv_guest::hypercall_abi::event_channel::EVTCHNOP_BIND_IPI, &mut a);
        a.port
    };
    t.report("bind_vcpu_errors", {
        let mut to1 = EvtchnBindVcpu { port: unbound, vcpu: 1 };
        let mut ipi0 = EvtchnBindVcpu { port: ipi, vcpu: 0 };
        let mut ok = EvtchnBindVcpu { port: unbound, vcpu: 0 };
        let (a, b, c) = (evtchn_op(EVTCHNOP_BIND_VCPU, &mut to1), evtchn_op(EVTCHNOP_BIND_VCPU, &mut ipi0), evtchn_op(EVTCHNOP_BIND_VCPU, &mut ok));
        ensure(a == Errno::ENOENT.to_ret() && b == EINVAL && c == 0, || format!("vCPU 1 {a}, an IPI {b}, the unbound port to vCPU 0 {c}"))
    });
    // Every event masked before the page is handed over, as Linux does.
    let words = ava as *mut u32;
    // SAFETY: `ava` maps the array frame (ours, writable, 4 KiB).
    unsafe { (0..1024).for_each(|i| core::ptr::write_volatile(words.add(i), MASKED)) };
    let word = |port: u32| {
        // SAFETY: ports here are below 1024, inside the mapped array frame.
        unsafe { core::ptr::read_volatile(words.add(port as usize)) }
    };
    let unmask_word = |port: u32| {
        // SAFETY: as `word`; the guest owns MASKED of an unlinked event.
        unsafe { core::ptr::write_volatile(words.add(port as usize), word(port) & !MASKED) }
    };
    let block = |i: usize| {
        // SAFETY: `cva` maps the control frame; the block is at offset 0 (72 bytes).
        unsafe { core::ptr::read_volatile((cva as *const u32).add(i)) }
    };
    t.report("fifo_init_control", {
        let (r, bits) = init_control(control.mfn.0, 0, 0);
        ensure(r == 0 && bits == 17, || format!("{r}, link_bits {bits}"))
    });
    t.report("fifo_init_control_twice_is_einval", expect_ret(init_control(control.mfn.0, 8, 0).0, EINVAL));
    t.report("fifo_expand_array", expect_ret(expand_array(array.mfn.0), 0));
    t.report("fifo_set_priority_16_is_einval", expect_ret(set_priority(ipi, 16), EINVAL));
    t.report("fifo_events_link_on_their_queue", {
        let mut b = pv_guest::hypercall_abi::event_channel::EvtchnBindIpi { vcpu: 0, port: 0 };
        evtchn_op(pv_guest::hypercall_abi::event_channel::EVTCHNOP_BIND_IPI, &mut b);
        let second = b.port;
        let (p1, p2) = (set_priority(ipi, 4), set_priority(second, 4));
        unmask_word(ipi);
        unmask_word(second);
        let (s1, s2) = (events::send_raw(ipi), events::send_raw(second));
        let (w1, w2, ready, head) = (word(ipi), word(second), block(0), block(2 + 4));
        ensure(
            p1 == 0 && p2 == 0 && s1 == 0 && s2 == 0
                && w1 & (PENDING | LINKED) == PENDING | LINKED
                && w1 & 0x1ffff == second
                && w2 & (PENDING | LINKED) == PENDING | LINKED
                && ready & (1 << 4) != 0
                && head == ipi,
            || format!("ports {ipi}, {second}: words {w1:#x} {w2:#x}, ready {ready:#x}, head[4] {head}"),
        )
    });
    t.report("fifo_unmask_links_a_pending_masked_event", {
        let port = events::alloc_unbound(0x7ff0).unwrap_or(0);
        let local = events::bind_interdomain(0x7ff0, port).unwrap_or(0);
        let s = events::send_raw(local);
        let before = word(port);
        let u = events::unmask_raw(port);
        let after = word(port);
        let (ready, head) = (block(0), block(2 + 7));
        ensure(
            s == 0 && u == 0 && before & (PENDING | MASKED | LINKED) == PENDING | MASKED && after & (PENDING | MASKED | LINKED) == PENDING | LINKED
                && ready & (1 << 7) != 0 && head == port,
            || format!("port {port}: {before:#x} -> {after:#x}, ready {ready:#x}, head[7] {head}"),
        )
    });
}

fn main(si: &'static StartInfo) {
    let mut t = Tests::default();
    let mut mm = match GuestMm::init(si, None) {
        Ok(mm) => mm,
        Err(e) => {
            t.report("mm_init", Err(format!("{e}")));
            return t.done();
        }
    };
    if let Err(e) = traps::install(&HANDLERS) {
        t.report("set_trap_table", Err(format!("{e:?}")));
        return t.done();
    }
    iopl(&mut t);
    pirqs(&mut t);
    descriptors(&mut t, &mut mm);
    control_registers(&mut t);
    debug_registers(&mut t);
    cpuid_and_features(&mut t);
    selectors_and_stacks(&mut t);
    callbacks_runstate_grants(&mut t, &mut mm);
    memory_exchange(&mut t, &mut mm);
    memory_op_rest(&mut t, &mut mm, si);
    // Handlers again (the selector checks replaced the table).
    let _ = traps::install(&HANDLERS);
    vcpu_info(&mut t, &mut mm);
    fifo_events(&mut t, &mut mm);
    let _ = hypercall::xen_version_number();
    println!("NOTE xen-abi done");
    t.done();
}

pv_guest::entry!(main);
