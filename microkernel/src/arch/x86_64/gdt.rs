//! The GDT in Xen's layout and the TSS.
//!
//! Xen reserves GDT entries from index 7168 (selector 0xe000) for itself and leaves the
//! first 14 pages to guests; guests rely on the selectors in that reserved part:
//! 0xe008 hypervisor code, 0xe010 hypervisor data, 0xe023 ring-3 32-bit code,
//! 0xe02b ring-3 data, 0xe033 ring-3 64-bit code, 0xe038 ring-0 32-bit code, 0xe040 TSS.
//! `syscall`/`sysret` derive their selectors from these (see cpu.rs).

use core::ptr::addr_of;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::{lgdt, load_tss};
use x86_64::structures::gdt::SegmentSelector;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::structures::DescriptorTablePointer;
use x86_64::{PrivilegeLevel, VirtAddr};

/// First GDT index the hypervisor owns (selector 0xe000).
const FIRST_RESERVED: usize = 7168;
/// Entries in the table: the reserved part ends after the 16-byte TSS and LDT descriptors.
const ENTRIES: usize = FIRST_RESERVED + 12;
/// Index of the LDT descriptor (16 bytes), selector 0xe050.
const LDT_INDEX: usize = FIRST_RESERVED + 10;
/// Most LDT entries (Xen's limit, 64 KiB).
pub const LDT_ENTRIES: usize = 8192;

/// IST slots (1-based in the IDT).
pub const IST_DOUBLE_FAULT: u8 = 1;
/// IST slot for NMI.
pub const IST_NMI: u8 = 2;
/// IST slot for #MC.
pub const IST_MACHINE_CHECK: u8 = 3;
/// IST slot for #DB: a #DB delayed by `mov %ss` past a `syscall` arrives in ring 0 with
/// the guest's rsp (CVE-2018-8897), so it must never use the current stack.
pub const IST_DEBUG: u8 = 4;

const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; IST_STACK_SIZE]);

static mut IST_STACKS: [Stack; 4] = [const { Stack([0; IST_STACK_SIZE]) }; 4];

#[repr(C, align(4096))]
struct Gdt([u64; ENTRIES]);

static mut GDT: Gdt = Gdt([0; ENTRIES]);
static mut TSS: TaskStateSegment = TaskStateSegment::new();

/// Hypervisor code selector (ring 0, 64-bit).
pub const HYPERVISOR_CS: u16 = 0xe008;
/// Hypervisor data/stack selector.
pub const HYPERVISOR_DS: u16 = 0xe010;
/// TSS selector.
pub const TSS_SEL: u16 = 0xe040;

/// Builds and loads the boot CPU's GDT and TSS; `stack_top` is where ring-3 interrupts land.
pub fn init(stack_top: u64) {
    // SAFETY: runs once on the boot CPU before interrupts are enabled and before any other
    // code looks at GDT, TSS or the IST stacks, so these exclusive accesses cannot alias.
    unsafe {
        let tss = &mut *core::ptr::addr_of_mut!(TSS);
        let stacks = &*addr_of!(IST_STACKS);
        let tops = core::array::from_fn(|i| stacks[i].0.as_ptr() as u64 + IST_STACK_SIZE as u64);
        let g = &mut (*core::ptr::addr_of_mut!(GDT)).0;
        fill(g, tss, stack_top, tops);
        load(g);
        (*core::ptr::addr_of_mut!(DESC))[0] =
            Desc { gdt: core::ptr::addr_of_mut!(GDT), ldt: core::ptr::addr_of_mut!(LDT), guest_loaded: 0, ldt_loaded: 0 };
    }
}

/// Where a CPU's hardware GDT and LDT are, and how much of them the last vCPU's tables
/// filled (what the next load must clear beyond its own). Each CPU uses its own slot only.
struct Desc {
    gdt: *mut Gdt,
    ldt: *mut Ldt,
    guest_loaded: usize,
    ldt_loaded: usize,
}

/// Every CPU's [`Desc`], indexed by CPU number; a slot is written by its own CPU (when it
/// loads its tables) and read only by it.
static mut DESC: [Desc; crate::cpus::MAX_CPUS] =
    [const { Desc { gdt: core::ptr::null_mut(), ldt: core::ptr::null_mut(), guest_loaded: 0, ldt_loaded: 0 } }; crate::cpus::MAX_CPUS];

/// The running CPU's descriptor tables.
///
/// # Safety
/// Interrupts must be off and the reference dropped before they are on again (nothing else
/// on this CPU may hold it meanwhile); the CPU's tables must be loaded ([`init`] or
/// [`CpuTables::load`]).
unsafe fn this_desc() -> (&'static mut [u64; ENTRIES], &'static mut [u64; LDT_ENTRIES], &'static mut usize, &'static mut usize) {
    // SAFETY: the slot of the running CPU, written by `init`/`CpuTables::load` on this CPU
    // with pointers to tables kept for the whole run; only this CPU uses them, and the
    // caller holds them with interrupts off.
    unsafe {
        let d = &mut (*core::ptr::addr_of_mut!(DESC))[super::cpu::this_cpu()];
        (&mut (*d.gdt).0, &mut (*d.ldt).0, &mut d.guest_loaded, &mut d.ldt_loaded)
    }
}

/// An application processor's descriptor tables: its own GDT (the same hypervisor
/// entries), TSS and IST stacks, kept for the rest of the run.
pub struct CpuTables {
    gdt: alloc::boxed::Box<Gdt>,
    tss: alloc::boxed::Box<TaskStateSegment>,
    ldt: alloc::boxed::Box<Ldt>,
    _ist: alloc::vec::Vec<Stack>,
}

impl CpuTables {
    /// Tables for a CPU whose ring-3 interrupts land at `stack_top`.
    pub fn new(stack_top: u64) -> CpuTables {
        let ist: alloc::vec::Vec<Stack> = (0..4).map(|_| Stack([0; IST_STACK_SIZE])).collect();
        let tops = core::array::from_fn(|i| ist[i].0.as_ptr() as u64 + IST_STACK_SIZE as u64);
        let mut t = CpuTables {
            gdt: alloc::boxed::Box::new(Gdt([0; ENTRIES])),
            tss: alloc::boxed::Box::new(TaskStateSegment::new()),
            ldt: alloc::boxed::Box::new(Ldt([0; LDT_ENTRIES])),
            _ist: ist,
        };
        fill(&mut t.gdt.0, &mut t.tss, stack_top, tops);
        t
    }

    /// Loads them on the running CPU `cpu` (once, on the CPU they were made for, which
    /// keeps them for the rest of the run; interrupts off).
    pub fn load(&'static mut self, cpu: usize) {
        // SAFETY: a complete GDT with this CPU's own TSS descriptor (not busy: loaded on
        // no other CPU), kept alive for the rest of the run ('static); the CPU's `DESC`
        // slot is written by this CPU only.
        unsafe {
            load(&mut self.gdt.0);
            (*core::ptr::addr_of_mut!(DESC))[cpu] =
                Desc { gdt: &mut *self.gdt as *mut Gdt, ldt: &mut *self.ldt as *mut Ldt, guest_loaded: 0, ldt_loaded: 0 };
        }
    }
}

/// Writes the hypervisor's entries and the TSS descriptor of `tss` (ring-3 interrupts at
/// `stack_top`, the IST stacks at `ist_tops`).
fn fill(g: &mut [u64; ENTRIES], tss: &mut TaskStateSegment, stack_top: u64, ist_tops: [u64; 4]) {
    tss.privilege_stack_table[0] = VirtAddr::new(stack_top);
    for (i, &top) in ist_tops.iter().enumerate() {
        tss.interrupt_stack_table[i] = VirtAddr::new(top);
    }
    let r = FIRST_RESERVED;
    g[r + 1] = 0x00af_9a00_0000_ffff; // 0xe008 ring 0 code, 64-bit
    g[r + 2] = 0x00cf_9200_0000_ffff; // 0xe010 ring 0 data
    g[r + 4] = 0x00cf_fa00_0000_ffff; // 0xe023 ring 3 code, compatibility
    g[r + 5] = 0x00cf_f200_0000_ffff; // 0xe02b ring 3 data
    g[r + 6] = 0x00af_fa00_0000_ffff; // 0xe033 ring 3 code, 64-bit
    g[r + 7] = 0x00cf_9a00_0000_ffff; // 0xe038 ring 0 code, compatibility
    let base = tss as *const TaskStateSegment as u64;
    let limit = (core::mem::size_of::<TaskStateSegment>() - 1) as u64;
    g[r + 8] = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    g[r + 9] = base >> 32;
}

/// Loads GDT `g` (filled by [`fill`]), the hypervisor's selectors, its TSS and a null LDT.
///
/// # Safety
/// `g` must stay alive and in place while loaded, and its TSS be loaded on no other CPU.
unsafe fn load(g: &mut [u64; ENTRIES]) {
    let ptr = DescriptorTablePointer { limit: (ENTRIES * 8 - 1) as u16, base: VirtAddr::new(g.as_ptr() as u64) };
    // SAFETY: the caller keeps `g` alive; its entries are the hypervisor's (fill), so the
    // selectors loaded below are valid; the TSS descriptor is this CPU's alone.
    unsafe {
        lgdt(&ptr);
        CS::set_reg(SegmentSelector::new(HYPERVISOR_CS >> 3, PrivilegeLevel::Ring0));
        SS::set_reg(SegmentSelector::new(HYPERVISOR_DS >> 3, PrivilegeLevel::Ring0));
        DS::set_reg(SegmentSelector(0));
        ES::set_reg(SegmentSelector(0));
        load_tss(SegmentSelector::new(TSS_SEL >> 3, PrivilegeLevel::Ring0));
        // No LDT: after reset the LDTR holds base 0 and limit 0xffff, so an LDT selector
        // (a guest's `mov %ax, %ds`, or the `ss` of an `iret`) would read descriptors
        // from linear address 0 upwards, memory a guest can map and fill (a call gate
        // there is a way into ring 0). A null LDTR makes every LDT selector fault (#GP),
        // as in Xen until a guest sets an LDT of its own.
        core::arch::asm!("lldt {0:x}", in(reg) 0u16, options(nostack, preserves_flags));
    }
}

/// Puts a vCPU's GDT (`set_gdt`) into the hardware table's guest part: entry `i` is
/// `read(i)` for `i < entries` (at most 7168), the entries past them that the previous
/// table used are cleared, so a selector past the guest's table faults. The frames are
/// the guest's descriptor-table frames, checked by `mm::descriptor` and read-only to it,
/// so the copy stays what the guest installed until `update_descriptor` (which reloads).
pub fn load_guest(entries: usize, read: impl Fn(usize) -> u64) {
    let entries = entries.min(FIRST_RESERVED);
    // SAFETY: the guest part of this CPU's GDT (below FIRST_RESERVED) is written only
    // here, with interrupts off on this CPU; no hypervisor selector indexes it, and the
    // guest's loaded segments keep their cached descriptors until it reloads them.
    unsafe {
        let (g, _, loaded, _) = this_desc();
        copy_table(g, loaded, entries, read);
    }
}

/// Fills `table[..entries]` from `read` and clears what the previous copy (`loaded`
/// entries) left beyond them; `loaded` becomes `entries`.
fn copy_table(table: &mut [u64], loaded: &mut usize, entries: usize, read: impl Fn(usize) -> u64) {
    for (i, slot) in table.iter_mut().enumerate().take(entries.max(*loaded)) {
        *slot = if i < entries { read(i) } else { 0 };
    }
    *loaded = entries;
}

#[repr(C, align(4096))]
struct Ldt([u64; LDT_ENTRIES]);

/// The boot CPU's LDT, holding the running vCPU's, copied from its descriptor frames as the
/// GDT's guest part is (the other CPUs' are in their [`CpuTables`]).
static mut LDT: Ldt = Ldt([0; LDT_ENTRIES]);

/// Puts a vCPU's LDT (`MMUEXT_SET_LDT`) into the hardware: entry `i` is `read(i)` for
/// `i < entries` (at most 8192), the LDT descriptor covers exactly those, and LDTR is
/// loaded with it; with no entries LDTR is null (an LDT selector faults).
pub fn load_ldt(entries: usize, read: impl Fn(usize) -> u64) {
    let entries = entries.min(LDT_ENTRIES);
    // SAFETY: this CPU's LDT and LDT descriptor are written only here, with interrupts off
    // on this CPU; the guest's loaded segments keep their cached descriptors until it
    // reloads them; `lldt` with a present LDT descriptor of this CPU's GDT, or null.
    unsafe {
        let (g, l, _, loaded) = this_desc();
        copy_table(l, loaded, entries, read);
        if entries == 0 {
            core::arch::asm!("lldt {0:x}", in(reg) 0u16, options(nostack, preserves_flags));
            return;
        }
        let base = l.as_ptr() as u64;
        let limit = (entries * 8 - 1) as u64;
        g[LDT_INDEX] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x82 << 40)
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        g[LDT_INDEX + 1] = base >> 32;
        let sel = (LDT_INDEX * 8) as u16;
        core::arch::asm!("lldt {0:x}", in(reg) sel, options(nostack, preserves_flags));
    }
}
