//! Emulation of the few privileged or sensitive instructions a PV kernel still executes.
//!
//! A guest kernel runs in ring 3, so `mov %crN, reg`, `rdmsr`/`wrmsr` raise #GP and Xen's
//! forced-emulation prefix (`ud2; .ascii "xen"; cpuid`) raises #UD. This module decodes the
//! faulting bytes and carries out what Xen carries out for a 64-bit PV guest:
//!
//! | instruction | result |
//! |---|---|
//! | `mov %cr3, reg` | machine address of the current top-level table |
//! | `mov %cr0, reg`, `mov %cr4, reg` | the guest's view of CR0 / CR4 |
//! | `mov %cr2, reg` | the guest's last page-fault address |
//! | `mov reg, %cr0` | TS set or cleared (virtual, as `fpu_taskswitch`); a change of any other bit is #GP, as Xen's `write_cr0` |
//! | `mov reg, %cr4` | the guest-controlled bits (DE, FSGSBASE where the CPU has it) taken, the rest ignored, as Xen's `pv_fixup_guest_cr4` |
//! | `mov %drN, reg`, `mov reg, %drN` | the vCPU's debug registers under `set_debugreg`'s rules: #UD for a register that does not exist, #GP for a refused value (Xen's `x86emul_read_dr`/`write_dr`) |
//! | `rdmsr`/`wrmsr` of FS_BASE, GS_BASE, SHADOW_GS_BASE | the guest's segment bases; a non-canonical write is refused with #GP |
//! | `ud2; "xen"; cpuid` | CPUID with the hypervisor leaves at 0x40000000 |
//! | `cli`, `sti` | nothing (skipped) when the virtual IOPL allows them, as Xen's `validate` ("too dangerous to allow": the event mask is not touched); #GP otherwise |
//! | `in`, `out` (byte, word, dword; port in `imm8` or `dx`) | when the virtual IOPL or the I/O bitmap allows the port: the hardware's answer for the control domain (every port but the hypervisor's, [`HYPERVISOR_PORTS`]); for other domains reads all ones and writes dropped, as Xen's for ports a domain is not given; #GP otherwise |
//!
//! Anything else, including writes to CR3 (a PV kernel switches tables with
//! `MMUEXT_NEW_BASEPTR`) and CR8, is not emulated: the caller raises #GP for the guest. Decoding is portable and host-tested; the machine
//! supplies register access and the values through [`EmuEnv`].
#![forbid(unsafe_code)]
// The instruction bytes and registers here are a guest's: no panics on any value.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

/// Longest instruction this decoder reads.
pub const MAX_INSN: usize = 16;

/// The forced-emulation prefix: `ud2` then the bytes of "xen".
pub const FORCED_EMULATION_PREFIX: [u8; 5] = [0x0f, 0x0b, b'x', b'e', b'n'];

/// MSR numbers the guest may use.
pub const MSR_FS_BASE: u32 = 0xc000_0100;
/// Active GS base.
pub const MSR_GS_BASE: u32 = 0xc000_0101;
/// The other GS base (swapped by `swapgs`).
pub const MSR_SHADOW_GS_BASE: u32 = 0xc000_0102;

/// A decoded instruction this module can carry out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insn {
    /// `mov %crN, %reg` (reg is a GPR index 0..15).
    MovFromCr {
        /// Control register number.
        cr: u8,
        /// Destination GPR.
        reg: u8,
        /// Instruction length.
        len: u8,
    },
    /// `mov %reg, %crN`.
    MovToCr {
        /// Control register number.
        cr: u8,
        /// Source GPR.
        reg: u8,
        /// Instruction length.
        len: u8,
    },
    /// `mov %drN, %reg`.
    MovFromDr {
        /// Debug register number (8..15, from REX.R, are #UD).
        dr: u8,
        /// Destination GPR.
        reg: u8,
        /// Instruction length.
        len: u8,
    },
    /// `mov %reg, %drN`.
    MovToDr {
        /// Debug register number.
        dr: u8,
        /// Source GPR.
        reg: u8,
        /// Instruction length.
        len: u8,
    },
    /// `rdmsr`.
    Rdmsr {
        /// Instruction length.
        len: u8,
    },
    /// `wrmsr`.
    Wrmsr {
        /// Instruction length.
        len: u8,
    },
    /// `ud2; "xen"; cpuid`.
    ForcedCpuid {
        /// Instruction length (prefix included).
        len: u8,
    },
    /// `cli` (`true`) or `sti`.
    CliSti {
        /// Which.
        cli: bool,
    },
    /// `in` from a port into al/ax/eax.
    In {
        /// Operand size: 1, 2 or 4 bytes.
        size: u8,
        /// Where the port number is.
        port: Port,
        /// Instruction length.
        len: u8,
    },
    /// `out` of al/ax/eax to a port.
    Out {
        /// Operand size: 1, 2 or 4 bytes.
        size: u8,
        /// Where the port number is.
        port: Port,
        /// Instruction length.
        len: u8,
    },
}

/// Port ranges the hypervisor keeps for itself, never carried out for any domain (Xen's
/// `ioports_deny_access` for the hardware domain): the 8259s, the PIT, the 8259s'
/// edge/level registers, QEMU's isa-debug-exit (the hypervisor's way out) and the COM1
/// serial port it prints on. Inclusive ranges.
pub const HYPERVISOR_PORTS: [(u16, u16); 6] = [(0x20, 0x21), (0x40, 0x43), (0xa0, 0xa1), (0xf4, 0xf7), (0x3f8, 0x3ff), (0x4d0, 0x4d1)];

/// Whether `size` bytes at `port` reach the hardware for the control domain (Xen's
/// `admin_io_okay`): no byte of them may be one the hypervisor keeps, nor past port 0xffff.
/// Other domains have no hardware ports.
pub fn hardware_port_allowed(port: u16, size: u8) -> bool {
    let first = u32::from(port);
    let last = first + u32::from(size.max(1)) - 1;
    last <= 0xffff && HYPERVISOR_PORTS.iter().all(|&(lo, hi)| last < u32::from(lo) || first > u32::from(hi))
}

/// Where an `in`/`out` finds its port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// The immediate byte.
    Imm(u8),
    /// `dx`.
    Dx,
}

/// `in`/`out` of the one-byte opcodes `0xe4..=0xe7` and `0xec..=0xef` (after an optional
/// operand-size prefix, `wide16`), with the rest of the bytes after the opcode.
fn decode_io(op: u8, rest: &[u8], wide16: bool, prefix_len: u8) -> Option<Insn> {
    let size = if op & 1 == 0 {
        1
    } else if wide16 {
        2
    } else {
        4
    };
    let (port, len) = if op & 0x08 == 0 {
        (Port::Imm(*rest.first()?), prefix_len + 2)
    } else {
        (Port::Dx, prefix_len + 1)
    };
    Some(if op & 0x02 == 0 {
        Insn::In { size, port, len }
    } else {
        Insn::Out { size, port, len }
    })
}

/// Why a fault came: the emulator decodes different instructions for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// #GP.
    GeneralProtection,
    /// #UD.
    InvalidOpcode,
}

/// Decodes the instruction at the start of `bytes` (the bytes at the faulting rip).
pub fn decode(bytes: &[u8], kind: FaultKind) -> Option<Insn> {
    match kind {
        FaultKind::InvalidOpcode => {
            if bytes.get(..5) == Some(&FORCED_EMULATION_PREFIX[..]) && bytes.get(5..7) == Some(&[0x0f, 0xa2][..]) {
                Some(Insn::ForcedCpuid { len: 7 })
            } else {
                None
            }
        }
        FaultKind::GeneralProtection => {
            match bytes {
                [0xfa, ..] => return Some(Insn::CliSti { cli: true }),
                [0xfb, ..] => return Some(Insn::CliSti { cli: false }),
                [op @ (0xe4..=0xe7 | 0xec..=0xef), rest @ ..] => return decode_io(*op, rest, false, 0),
                [0x66, op @ (0xe4..=0xe7 | 0xec..=0xef), rest @ ..] => return decode_io(*op, rest, true, 1),
                _ => {}
            }
            let mut i = 0;
            let mut rex = 0u8;
            // Legacy prefixes that do not change these instructions are not accepted: a
            // guest kernel emits plain encodings, and refusing the rest keeps this small.
            if let Some(&b) = bytes.first() {
                if (0x40..=0x4f).contains(&b) {
                    rex = b;
                    i = 1;
                }
            }
            let op = bytes.get(i..i + 2)?;
            match op {
                [0x0f, dir @ (0x20..=0x23)] => {
                    let modrm = *bytes.get(i + 2)?;
                    if modrm >> 6 != 3 {
                        return None;
                    }
                    let n = ((modrm >> 3) & 7) | if rex & 0x4 != 0 { 8 } else { 0 };
                    let reg = (modrm & 7) | if rex & 0x1 != 0 { 8 } else { 0 };
                    let len = (i + 3) as u8;
                    Some(match *dir {
                        0x20 => Insn::MovFromCr { cr: n, reg, len },
                        0x21 => Insn::MovFromDr { dr: n, reg, len },
                        0x22 => Insn::MovToCr { cr: n, reg, len },
                        _ => Insn::MovToDr { dr: n, reg, len },
                    })
                }
                [0x0f, 0x32] => Some(Insn::Rdmsr { len: (i + 2) as u8 }),
                [0x0f, 0x30] => Some(Insn::Wrmsr { len: (i + 2) as u8 }),
                _ => None,
            }
        }
    }
}

/// A guest kernel's write to one of its page-table entries through a read-only mapping,
/// which the hypervisor carries out as a validated update (Xen's `ptwr_do_page_fault`,
/// with `VMASST_TYPE_writable_pagetables`). The instructions kernels use for it: `mov`
/// from a register or of an immediate, `xchg` and `lock cmpxchg`, on 4 or 8 bytes, and
/// `and`/`or` of an immediate (Linux's `clear_bit` on a PTE: `andb $0xfd, (mem)`), with
/// `lock` and segment-override prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtWrite {
    /// What is written.
    pub op: PtWriteOp,
    /// Operand size: 1, 4 or 8 bytes.
    pub size: u8,
    /// Instruction length.
    pub len: u8,
}

/// The kind of [`PtWrite`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtWriteOp {
    /// `mov %reg, (mem)`.
    MovReg(u8),
    /// `mov $imm32, (mem)` (sign-extended to 8 bytes).
    MovImm(u64),
    /// `xchg %reg, (mem)`.
    Xchg(u8),
    /// `lock cmpxchg %reg, (mem)` (compares with rax).
    Cmpxchg(u8),
    /// `and $imm, (mem)`.
    And(u64),
    /// `or $imm, (mem)`.
    Or(u64),
}

/// Length of a ModRM memory operand (ModRM, SIB and displacement) at the start of
/// `bytes`; `None` for a register operand or bytes cut short.
fn modrm_len(bytes: &[u8]) -> Option<usize> {
    let modrm = *bytes.first()?;
    let (md, rm) = (modrm >> 6, modrm & 7);
    let mut len = 1;
    if md == 3 {
        return None;
    }
    if rm == 4 {
        let sib = *bytes.get(1)?;
        len += 1;
        if md == 0 && sib & 7 == 5 {
            len += 4;
        }
    } else if md == 0 && rm == 5 {
        len += 4;
    }
    len += match md {
        1 => 1,
        2 => 4,
        _ => 0,
    };
    (bytes.len() >= len).then_some(len)
}

/// Decodes a page-table write (see [`PtWrite`]): an optional `lock`, an optional REX
/// (W: 8 bytes, R: the high registers), then the opcode and a memory operand.
pub fn decode_pt_write(bytes: &[u8]) -> Option<PtWrite> {
    let mut i = 0;
    // lock, and the segment overrides (no effect in long mode; Linux's UP `LOCK_PREFIX`
    // is a `ds` prefix).
    while matches!(bytes.get(i), Some(0xf0 | 0x2e | 0x3e | 0x26 | 0x36)) && i < 4 {
        i += 1;
    }
    let mut rex = 0u8;
    if let Some(&b) = bytes.get(i) {
        if (0x40..=0x4f).contains(&b) {
            rex = b;
            i += 1;
        }
    }
    let mut size = if rex & 8 != 0 { 8 } else { 4 };
    let (op_len, opcode) = match bytes.get(i..)? {
        [0x0f, 0xb1, ..] => (2, 0x0fb1u16),
        [b @ (0x89 | 0x87 | 0xc7 | 0x80 | 0x81 | 0x83), ..] => (1, u16::from(*b)),
        _ => return None,
    };
    if opcode == 0x80 {
        size = 1;
    }
    let at = i + op_len;
    let modrm = *bytes.get(at)?;
    let reg = ((modrm >> 3) & 7) | if rex & 4 != 0 { 8 } else { 0 };
    let mlen = modrm_len(bytes.get(at..)?)?;
    let mut len = at + mlen;
    let op = match opcode {
        0x89 => PtWriteOp::MovReg(reg),
        0x87 => PtWriteOp::Xchg(reg),
        0x0fb1 => PtWriteOp::Cmpxchg(reg),
        0x80 | 0x81 | 0x83 => {
            let n = if opcode == 0x81 { 4 } else { 1 };
            let imm = bytes.get(len..len + n)?;
            len += n;
            let v = match (opcode, imm) {
                (0x81, [a, b, c, d]) => i32::from_le_bytes([*a, *b, *c, *d]) as i64 as u64,
                (0x83, [a]) => *a as i8 as i64 as u64,
                (_, [a]) => u64::from(*a),
                _ => return None,
            };
            match (modrm >> 3) & 7 {
                4 => PtWriteOp::And(v),
                1 => PtWriteOp::Or(v),
                _ => return None,
            }
        }
        _ => {
            if (modrm >> 3) & 7 != 0 {
                return None;
            }
            let imm: [u8; 4] = bytes.get(len..len + 4)?.try_into().ok()?;
            len += 4;
            let v = i32::from_le_bytes(imm) as i64 as u64;
            PtWriteOp::MovImm(v)
        }
    };
    Some(PtWrite { op, size, len: u8::try_from(len).ok()? })
}

/// Carries out `w` on the 8-byte entry `old`, written at byte `offset` (0..8, aligned to
/// the size) of it:
/// the entry to store (`None`: a `cmpxchg` that did not match, nothing stored), with the
/// registers updated as the instruction would (the old value to `xchg`'s register or to
/// rax for a failed `cmpxchg`, ZF for `cmpxchg`) by `set_zf`.
pub fn pt_write_value(w: &PtWrite, old: u64, offset: u64, regs: &mut impl Regs, set_zf: &mut dyn FnMut(bool)) -> Option<u64> {
    let (mask, shift) = match w.size {
        8 => (!0u64, 0),
        4 => (0xffff_ffffu64, (offset & 4) * 8),
        _ => (0xffu64, (offset & 7) * 8),
    };
    let cur = (old >> shift) & mask;
    let merge = |v: u64| (old & !(mask << shift)) | ((v & mask) << shift);
    match w.op {
        PtWriteOp::MovReg(r) => Some(merge(regs.gpr(r))),
        PtWriteOp::MovImm(v) => Some(merge(v)),
        PtWriteOp::Xchg(r) => {
            let new = merge(regs.gpr(r));
            regs.set_gpr(r, cur);
            Some(new)
        }
        PtWriteOp::And(v) => Some(merge(cur & v)),
        PtWriteOp::Or(v) => Some(merge(cur | v)),
        PtWriteOp::Cmpxchg(r) => {
            if regs.gpr(RAX) & mask == cur {
                set_zf(true);
                Some(merge(regs.gpr(r)))
            } else {
                set_zf(false);
                regs.set_gpr(RAX, cur);
                None
            }
        }
    }
}

/// Register file of the faulting context, in the encoding's GPR order.
pub trait Regs {
    /// GPR `n` (0 = rax, 1 = rcx, 2 = rdx, 3 = rbx, 4 = rsp, 5 = rbp, 6 = rsi, 7 = rdi,
    /// 8..15 = r8..r15).
    fn gpr(&self, n: u8) -> u64;
    /// Sets GPR `n`.
    fn set_gpr(&mut self, n: u8, v: u64);
    /// Advances rip by `len`.
    fn advance(&mut self, len: u8);
}

/// GPR indices used by CPUID and MSR instructions.
const RAX: u8 = 0;
const RCX: u8 = 1;
const RDX: u8 = 2;
const RBX: u8 = 3;

/// The machine and guest state the emulation reads or changes.
pub trait EmuEnv {
    /// Machine address of the guest's current top-level table.
    fn guest_cr3(&self) -> u64;
    /// The guest's view of CR0.
    fn guest_cr0(&self) -> u64;
    /// The guest's last page-fault address.
    fn guest_cr2(&self) -> u64;
    /// The guest's view of CR4.
    fn guest_cr4(&self) -> u64;
    /// Reads a segment base MSR (one of the three above).
    fn read_base(&self, msr: u32) -> u64;
    /// Writes a segment base MSR (value already checked canonical).
    fn write_base(&mut self, msr: u32, v: u64);
    /// The hardware's CPUID for `leaf`/`subleaf` as (eax, ebx, ecx, edx).
    fn host_cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4];
    /// `mov %reg, %cr0`: only TS may change (Xen's `write_cr0`); `Err` otherwise.
    fn write_cr0(&mut self, v: u64) -> Result<(), InjectGp>;
    /// `mov %reg, %cr4`: the guest-controlled bits are taken, the rest ignored (Xen's
    /// `pv_fixup_guest_cr4`); never refused.
    fn write_cr4(&mut self, v: u64);
    /// Whether the virtual IOPL allows I/O instructions in the faulting mode (Xen's
    /// `iopl_ok`: the guest kernel counts as ring 1, or 0 with
    /// `VMASST_TYPE_architectural_iopl`; its processes as ring 3).
    fn iopl_ok(&self) -> bool;
    /// Whether the I/O bitmap (`PHYSDEVOP_set_iobitmap`) allows `size` bytes at `port`.
    fn bitmap_allows(&self, port: u16, size: u8) -> bool;
    /// Reads `size` bytes from `port` for the guest.
    fn port_in(&mut self, port: u16, size: u8) -> u32;
    /// Writes `size` bytes of `value` to `port` for the guest.
    fn port_out(&mut self, port: u16, size: u8, value: u32);
    /// `mov %drN, %reg`: the guest's debug register (`get_debugreg`'s rules: `ENODEV`
    /// becomes #UD, any other refusal #GP).
    fn read_dr(&self, n: u8) -> Result<u64, hypercall_abi::errno::Errno>;
    /// `mov %reg, %drN` (`set_debugreg`'s rules, errnos as [`EmuEnv::read_dr`]).
    fn write_dr(&mut self, n: u8, v: u64) -> Result<(), hypercall_abi::errno::Errno>;
}

/// The hypervisor's CPUID leaves: "XenVMMXenVMM", the version, one hypercall page.
pub fn hypervisor_cpuid(leaf: u32) -> [u32; 4] {
    match leaf {
        0x4000_0000 => [0x4000_0002, 0x566e_6558, 0x6558_4d4d, 0x4d4d_566e],
        0x4000_0001 => [(4 << 16) | 19, 0, 0, 0],
        0x4000_0002 => [1, 0x4000_0000, 0, 0],
        _ => [0; 4],
    }
}

/// Bits of the hardware's feature words a 64-bit PV guest does not see, after Xen's PV
/// policy (`cpufeatureset.h`: the features marked for HVM only, or for no guest): what
/// needs ring 0 or a hardware page-table mode a PV guest does not have.
mod hidden {
    /// Leaf 1 EDX: VME, PSE, APIC, MTRR, PGE, PSE36, DS, ACPI, TM, PBE.
    pub const L1_EDX: u32 = (1 << 1) | (1 << 3) | (1 << 9) | (1 << 12) | (1 << 13) | (1 << 17) | (1 << 21) | (1 << 22) | (1 << 29) | (1 << 31);
    /// Leaf 1 ECX: DTES64, MONITOR, DS-CPL, VMX, SMX, EST, TM2, SDBG, PDCM, PCID, x2APIC,
    /// TSC-deadline.
    pub const L1_ECX: u32 = (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 11) | (1 << 15) | (1 << 17) | (1 << 21) | (1 << 24);
    /// Leaf 7.0 EBX: TSC_ADJUST, SGX, SMEP, INVPCID, PQM, MPX, PQE, SMAP, PT.
    pub const L7_EBX: u32 = (1 << 1) | (1 << 2) | (1 << 7) | (1 << 10) | (1 << 12) | (1 << 14) | (1 << 15) | (1 << 20) | (1 << 25);
    /// Leaf 7.0 ECX: UMIP, PKU, OSPKE, WAITPKG, LA57, SGX_LC.
    pub const L7_ECX: u32 = (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 16) | (1 << 30);
    /// Leaf 0x80000001 ECX: SVM, ExtApicSpace, SKINIT, WDT.
    pub const X1_ECX: u32 = (1 << 2) | (1 << 3) | (1 << 12) | (1 << 13);
    /// Leaf 0x80000001 EDX: 1 GiB pages.
    pub const X1_EDX: u32 = 1 << 26;
}

/// CPUID as a PV guest sees it: the hypervisor leaves, and the hardware's leaves with the
/// hypervisor-present bit set and what a PV guest cannot use hidden ([`hidden`]: large and
/// global pages, the local APIC, virtualization, MONITOR/MWAIT, SMEP/SMAP, 5-level paging,
/// ...), as Xen's PV policy; the MONITOR, thermal and performance-monitoring leaves read 0.
pub fn guest_cpuid(env: &impl EmuEnv, leaf: u32, subleaf: u32) -> [u32; 4] {
    if (0x4000_0000..0x4001_0000).contains(&leaf) {
        return hypervisor_cpuid(leaf);
    }
    let mut r = env.host_cpuid(leaf, subleaf);
    match leaf {
        1 => {
            r[2] &= !hidden::L1_ECX;
            r[2] |= 1 << 31; // running on a hypervisor
            r[3] &= !hidden::L1_EDX;
        }
        5 | 6 | 0xa => r = [0; 4],
        7 if subleaf == 0 => {
            r[1] &= !hidden::L7_EBX;
            r[2] &= !hidden::L7_ECX;
        }
        0x8000_0001 => {
            r[2] &= !hidden::X1_ECX;
            r[3] &= !hidden::X1_EDX;
        }
        _ => {}
    }
    r
}

fn canonical(v: u64) -> bool {
    let top = v >> 47;
    top == 0 || top == 0x1_ffff
}

/// The instruction is not emulated, or refused: the guest gets #GP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InjectGp;

/// The exception the guest gets instead of the instruction's effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inject {
    /// #GP(0).
    Gp,
    /// #UD (a debug register that does not exist).
    Ud,
}

impl From<InjectGp> for Inject {
    fn from(_: InjectGp) -> Self {
        Inject::Gp
    }
}

/// A debug-register refusal as the instruction's exception (Xen's `x86emul_write_dr`).
fn dr_fault(e: hypercall_abi::errno::Errno) -> Inject {
    if e == hypercall_abi::errno::Errno::ENODEV {
        Inject::Ud
    } else {
        Inject::Gp
    }
}

/// What an emulated instruction did that the debug logic must see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Done {
    /// The port and size of an `in` or `out` (for I/O breakpoints).
    pub io: Option<(u16, u8)>,
}

/// Carries out `insn` on `regs`.
pub fn execute(insn: Insn, regs: &mut impl Regs, env: &mut impl EmuEnv) -> Result<Done, Inject> {
    let mut done = Done::default();
    match insn {
        Insn::MovFromDr { dr, reg, len } => {
            let v = env.read_dr(dr).map_err(dr_fault)?;
            regs.set_gpr(reg, v);
            regs.advance(len);
        }
        Insn::MovToDr { dr, reg, len } => {
            env.write_dr(dr, regs.gpr(reg)).map_err(dr_fault)?;
            regs.advance(len);
        }
        Insn::MovFromCr { cr, reg, len } => {
            let v = match cr {
                0 => env.guest_cr0(),
                2 => env.guest_cr2(),
                3 => env.guest_cr3(),
                4 => env.guest_cr4(),
                _ => return Err(Inject::Gp),
            };
            regs.set_gpr(reg, v);
            regs.advance(len);
        }
        Insn::Rdmsr { len } => {
            let msr = regs.gpr(RCX) as u32;
            if !matches!(msr, MSR_FS_BASE | MSR_GS_BASE | MSR_SHADOW_GS_BASE) {
                return Err(Inject::Gp);
            }
            let v = env.read_base(msr);
            regs.set_gpr(RAX, v & 0xffff_ffff);
            regs.set_gpr(RDX, v >> 32);
            regs.advance(len);
        }
        Insn::Wrmsr { len } => {
            let msr = regs.gpr(RCX) as u32;
            let v = (regs.gpr(RDX) << 32) | (regs.gpr(RAX) & 0xffff_ffff);
            if !matches!(msr, MSR_FS_BASE | MSR_GS_BASE | MSR_SHADOW_GS_BASE) || !canonical(v) {
                return Err(Inject::Gp);
            }
            env.write_base(msr, v);
            regs.advance(len);
        }
        Insn::MovToCr { cr, reg, len } => {
            let v = regs.gpr(reg);
            match cr {
                0 => env.write_cr0(v)?,
                4 => env.write_cr4(v),
                _ => return Err(Inject::Gp),
            }
            regs.advance(len);
        }
        Insn::CliSti { .. } => {
            if !env.iopl_ok() {
                return Err(Inject::Gp);
            }
            regs.advance(1);
        }
        Insn::In { size, port, len } | Insn::Out { size, port, len } => {
            let port = match port {
                Port::Imm(p) => u16::from(p),
                Port::Dx => regs.gpr(RDX) as u16,
            };
            if !env.iopl_ok() && !env.bitmap_allows(port, size) {
                return Err(Inject::Gp);
            }
            let mask: u64 = match size {
                1 => 0xff,
                2 => 0xffff,
                _ => 0xffff_ffff,
            };
            let rax = regs.gpr(RAX);
            if matches!(insn, Insn::In { .. }) {
                let v = u64::from(env.port_in(port, size)) & mask;
                // A 32-bit result zero-extends into rax; narrower ones keep the rest.
                regs.set_gpr(RAX, if size == 4 { v } else { (rax & !mask) | v });
            } else {
                env.port_out(port, size, (rax & mask) as u32);
            }
            done.io = Some((port, size));
            regs.advance(len);
        }
        Insn::ForcedCpuid { len } => {
            let r = guest_cpuid(env, regs.gpr(RAX) as u32, regs.gpr(RCX) as u32);
            regs.set_gpr(RAX, r[0] as u64);
            regs.set_gpr(RBX, r[1] as u64);
            regs.set_gpr(RCX, r[2] as u64);
            regs.set_gpr(RDX, r[3] as u64);
            regs.advance(len);
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct R {
        g: [u64; 16],
        rip: u64,
    }
    impl Regs for R {
        fn gpr(&self, n: u8) -> u64 {
            self.g[n as usize]
        }
        fn set_gpr(&mut self, n: u8, v: u64) {
            self.g[n as usize] = v;
        }
        fn advance(&mut self, len: u8) {
            self.rip += len as u64;
        }
    }

    #[derive(Default)]
    struct E {
        fs: u64,
        gs: u64,
        sgs: u64,
        iopl: bool,
        ts: Option<bool>,
        cr4: Option<u64>,
        /// Ports the bitmap allows.
        allowed: std::vec::Vec<u16>,
        /// Port accesses: (port, size, value written or None for a read).
        io: std::vec::Vec<(u16, u8, Option<u32>)>,
        /// Debug registers, with CR4.DE off.
        dr: crate::traps::DebugRegs,
    }
    impl EmuEnv for E {
        fn guest_cr3(&self) -> u64 {
            0x1234_5000
        }
        fn guest_cr0(&self) -> u64 {
            0x8005_0033
        }
        fn guest_cr2(&self) -> u64 {
            0xdead_b000
        }
        fn guest_cr4(&self) -> u64 {
            0x20
        }
        fn read_base(&self, msr: u32) -> u64 {
            match msr {
                MSR_FS_BASE => self.fs,
                MSR_GS_BASE => self.gs,
                _ => self.sgs,
            }
        }
        fn write_base(&mut self, msr: u32, v: u64) {
            match msr {
                MSR_FS_BASE => self.fs = v,
                MSR_GS_BASE => self.gs = v,
                _ => self.sgs = v,
            }
        }
        fn write_cr0(&mut self, v: u64) -> Result<(), InjectGp> {
            if (v ^ 0x8005_0033) & !(1 << 3) != 0 {
                return Err(InjectGp);
            }
            self.ts = Some(v & (1 << 3) != 0);
            Ok(())
        }
        fn write_cr4(&mut self, v: u64) {
            self.cr4 = Some(v);
        }
        fn iopl_ok(&self) -> bool {
            self.iopl
        }
        fn bitmap_allows(&self, port: u16, _size: u8) -> bool {
            self.allowed.contains(&port)
        }
        fn port_in(&mut self, port: u16, size: u8) -> u32 {
            self.io.push((port, size, None));
            0xa5a5_a5a5
        }
        fn port_out(&mut self, port: u16, size: u8, value: u32) {
            self.io.push((port, size, Some(value)));
        }
        fn read_dr(&self, n: u8) -> Result<u64, hypercall_abi::errno::Errno> {
            self.dr.get(u32::from(n), false)
        }
        fn write_dr(&mut self, n: u8, v: u64) -> Result<(), hypercall_abi::errno::Errno> {
            self.dr.set(u32::from(n), v, false)
        }
        fn host_cpuid(&self, leaf: u32, _: u32) -> [u32; 4] {
            if leaf == 0x8000_0001 {
                [0, 0, 0x0000_0121, 0x2fd3_fbff]
            } else if leaf == 1 {
                [0x806f8, 0, 0x0000_0028, 0x078b_fbff]
            } else {
                [leaf, 1, 2, 3]
            }
        }
    }

    #[test]
    fn control_register_reads() {
        // mov %cr3, %rax (0f 20 d8); mov %cr3, %r9 (41 0f 20 d9); mov %cr0, %rbx (0f 20 c3)
        let cases: [(&[u8], u8, u64, u64); 4] = [
            (&[0x0f, 0x20, 0xd8], 0, 0x1234_5000, 3),
            (&[0x41, 0x0f, 0x20, 0xd9], 9, 0x1234_5000, 4),
            (&[0x0f, 0x20, 0xc3], 3, 0x8005_0033, 3),
            (&[0x0f, 0x20, 0xe1, 0x90], 1, 0x20, 3),
        ];
        for (bytes, reg, want, len) in cases {
            let insn = decode(bytes, FaultKind::GeneralProtection).unwrap();
            let (mut r, mut e) = (R::default(), E::default());
            execute(insn, &mut r, &mut e).unwrap();
            assert_eq!(r.g[reg as usize], want, "{bytes:x?}");
            assert_eq!(r.rip, len);
        }
    }

    #[test]
    fn page_table_writes_decode_with_their_lengths() {
        // xchg %rsi, 0x0(%rbp) (Linux's ptep_get_and_clear)
        assert_eq!(decode_pt_write(&[0x48, 0x87, 0x75, 0x00]), Some(PtWrite { op: PtWriteOp::Xchg(6), size: 8, len: 4 }));
        // mov %rax, (%rdi); mov %r8, 0x10(%rsp,%rcx,8); movq $0, 0x12345678(%rbx)
        assert_eq!(decode_pt_write(&[0x48, 0x89, 0x07]), Some(PtWrite { op: PtWriteOp::MovReg(0), size: 8, len: 3 }));
        assert_eq!(decode_pt_write(&[0x4c, 0x89, 0x44, 0xcc, 0x10]), Some(PtWrite { op: PtWriteOp::MovReg(8), size: 8, len: 5 }));
        assert_eq!(
            decode_pt_write(&[0x48, 0xc7, 0x83, 0x78, 0x56, 0x34, 0x12, 0xff, 0xff, 0xff, 0xff]),
            Some(PtWrite { op: PtWriteOp::MovImm(!0), size: 8, len: 11 })
        );
        // lock cmpxchg %rdx, (%rdi); a 4-byte mov (no REX.W)
        assert_eq!(decode_pt_write(&[0xf0, 0x48, 0x0f, 0xb1, 0x17]), Some(PtWrite { op: PtWriteOp::Cmpxchg(2), size: 8, len: 5 }));
        assert_eq!(decode_pt_write(&[0x89, 0x07]), Some(PtWrite { op: PtWriteOp::MovReg(0), size: 4, len: 2 }));
        // ds andb $0xfd, (%r15) (Linux's clear_bit of _PAGE_RW); lock orq $2, (%rax)
        assert_eq!(decode_pt_write(&[0x3e, 0x41, 0x80, 0x27, 0xfd]), Some(PtWrite { op: PtWriteOp::And(0xfd), size: 1, len: 5 }));
        assert_eq!(decode_pt_write(&[0xf0, 0x48, 0x83, 0x08, 0x02]), Some(PtWrite { op: PtWriteOp::Or(2), size: 8, len: 5 }));
        // Register operands, other opcodes, cut short: not page-table writes.
        for bytes in [&[0x48, 0x89, 0xc7][..], &[0x48, 0x01, 0x07], &[0x48, 0x89], &[0x48, 0xc7, 0x07, 0, 0], &[0x48, 0x89, 0x04]] {
            assert_eq!(decode_pt_write(bytes), None, "{bytes:x?}");
        }
    }

    #[test]
    fn page_table_write_values() {
        let mut r = R::default();
        let mut zf = None;
        r.g[6] = 0x1111;
        let xchg = PtWrite { op: PtWriteOp::Xchg(6), size: 8, len: 4 };
        assert_eq!(pt_write_value(&xchg, 0xabcd, 0, &mut r, &mut |z| zf = Some(z)), Some(0x1111));
        assert_eq!(r.g[6], 0xabcd);
        // A 4-byte write to the upper half keeps the lower one.
        let mov4 = PtWrite { op: PtWriteOp::MovReg(0), size: 4, len: 2 };
        r.g[0] = 0xffff_ffff_8000_0000;
        assert_eq!(pt_write_value(&mov4, 0x0000_0001_0000_0067, 4, &mut r, &mut |z| zf = Some(z)), Some(0x8000_0000_0000_0067));
        // A byte and at byte 0 clears RW only.
        let and = PtWrite { op: PtWriteOp::And(0xfd), size: 1, len: 5 };
        assert_eq!(pt_write_value(&and, 0x8000_0000_141d_5867, 0, &mut r, &mut |z| zf = Some(z)), Some(0x8000_0000_141d_5865));
        // cmpxchg: a match stores, a mismatch loads rax.
        let cx = PtWrite { op: PtWriteOp::Cmpxchg(2), size: 8, len: 5 };
        r.g[0] = 0x67;
        r.g[2] = 0x65;
        assert_eq!(pt_write_value(&cx, 0x67, 0, &mut r, &mut |z| zf = Some(z)), Some(0x65));
        assert_eq!(zf, Some(true));
        assert_eq!(pt_write_value(&cx, 0x27, 0, &mut r, &mut |z| zf = Some(z)), None);
        assert_eq!((zf, r.g[0]), (Some(false), 0x27));
    }

    #[test]
    fn control_register_writes() {
        // mov %rax, %cr0 with TS set (0f 22 c0); with PG cleared: refused.
        let (mut r, mut e) = (R::default(), E::default());
        r.g[0] = 0x8005_003b;
        execute(decode(&[0x0f, 0x22, 0xc0], FaultKind::GeneralProtection).unwrap(), &mut r, &mut e).unwrap();
        assert_eq!((e.ts, r.rip), (Some(true), 3));
        r.g[0] = 0x0005_0033;
        assert_eq!(execute(decode(&[0x0f, 0x22, 0xc0], FaultKind::GeneralProtection).unwrap(), &mut r, &mut e), Err(Inject::Gp));
        // mov %rdi, %cr4 (0f 22 e7): handed over whole; mov %r9, %cr4 (41 0f 22 e1).
        r.g[7] = 0x620;
        execute(decode(&[0x0f, 0x22, 0xe7], FaultKind::GeneralProtection).unwrap(), &mut r, &mut e).unwrap();
        assert_eq!(e.cr4, Some(0x620));

        assert_eq!(decode(&[0x41, 0x0f, 0x22, 0xe1], FaultKind::GeneralProtection), Some(Insn::MovToCr { cr: 4, reg: 9, len: 4 }));
        // cr3 and cr8 writes are not emulated.
        for bytes in [&[0x0f, 0x22, 0xd8][..], &[0x44, 0x0f, 0x22, 0xc0]] {
            let insn = decode(bytes, FaultKind::GeneralProtection).unwrap();
            assert_eq!(execute(insn, &mut R::default(), &mut E::default()), Err(Inject::Gp));
        }
    }

    #[test]
    fn debug_register_moves() {
        let gp = FaultKind::GeneralProtection;
        let (mut r, mut e) = (R::default(), E::default());
        // mov %rax, %dr0 (0f 23 c0): a guest address is taken.
        r.g[0] = 0x40_0000;
        assert_eq!(decode(&[0x0f, 0x23, 0xc0], gp), Some(Insn::MovToDr { dr: 0, reg: 0, len: 3 }));
        execute(decode(&[0x0f, 0x23, 0xc0], gp).unwrap(), &mut r, &mut e).unwrap();
        assert_eq!((e.dr.dr[0], r.rip), (0x40_0000, 3));
        // mov %dr0, %r9 (41 0f 21 c1).
        assert_eq!(decode(&[0x41, 0x0f, 0x21, 0xc1], gp), Some(Insn::MovFromDr { dr: 0, reg: 9, len: 4 }));
        execute(decode(&[0x41, 0x0f, 0x21, 0xc1], gp).unwrap(), &mut r, &mut e).unwrap();
        assert_eq!((r.g[9], r.rip), (0x40_0000, 7));
        // A hypervisor address: #GP, nothing changes, rip stays.
        r.g[0] = 0xffff_8000_0000_0000;
        assert_eq!(execute(decode(&[0x0f, 0x23, 0xc0], gp).unwrap(), &mut r, &mut e), Err(Inject::Gp));
        assert_eq!((e.dr.dr[0], r.rip), (0x40_0000, 7));
        // DR7.GD: #GP. %dr8 (REX.R: 44 0f 21 c0) does not exist: #UD both ways.
        r.g[0] = (1 << 13) | 1;
        assert_eq!(execute(decode(&[0x0f, 0x23, 0xf8], gp).unwrap(), &mut r, &mut e), Err(Inject::Gp));
        assert_eq!(execute(decode(&[0x44, 0x0f, 0x21, 0xc0], gp).unwrap(), &mut r, &mut e), Err(Inject::Ud));
        assert_eq!(execute(decode(&[0x44, 0x0f, 0x23, 0xc0], gp).unwrap(), &mut r, &mut e), Err(Inject::Ud));
        // A memory operand form is not an encoding of these: not decoded.
        assert_eq!(decode(&[0x0f, 0x21, 0x00], gp), None);
    }

    #[test]
    fn the_control_domain_reaches_every_port_but_the_hypervisors() {
        // PCI configuration, a virtio device's legacy ports, the RTC.
        for (port, size) in [(0xcf8, 4), (0xcfc, 4), (0xcfe, 2), (0xc000, 4), (0x70, 1), (0x1f, 1), (0x44, 1), (0x3f7, 1)] {
            assert!(hardware_port_allowed(port, size), "{port:#x}/{size}");
        }
        // The hypervisor's, including a wide access that only overlaps one.
        for (port, size) in [(0x20, 1), (0x21, 1), (0x1f, 2), (0x40, 4), (0x3fe, 2), (0x3f6, 4), (0xf4, 1), (0xa1, 1), (0x4d0, 2), (0xfffe, 4)] {
            assert!(!hardware_port_allowed(port, size), "{port:#x}/{size}");
        }
    }

    #[test]
    fn io_reports_its_port_for_breakpoints() {
        let (mut r, mut e) = (R::default(), E { iopl: true, ..E::default() });
        r.g[2] = 0x3f8;
        // out %al, %dx; in $0x60, %al.
        assert_eq!(execute(decode(&[0xee], FaultKind::GeneralProtection).unwrap(), &mut r, &mut e), Ok(Done { io: Some((0x3f8, 1)) }));
        assert_eq!(execute(decode(&[0xe4, 0x60], FaultKind::GeneralProtection).unwrap(), &mut r, &mut e), Ok(Done { io: Some((0x60, 1)) }));
        assert_eq!(execute(decode(&[0xfa], FaultKind::GeneralProtection).unwrap(), &mut r, &mut e), Ok(Done { io: None }));
    }

    #[test]
    fn cli_and_sti_are_skipped_under_the_virtual_iopl_only() {
        for (bytes, cli) in [(&[0xfa, 0xe9][..], true), (&[0xfb][..], false)] {
            let insn = decode(bytes, FaultKind::GeneralProtection).unwrap();
            assert_eq!(insn, Insn::CliSti { cli });
            let (mut r, mut e) = (R::default(), E::default());
            assert_eq!(execute(insn, &mut r, &mut e), Err(Inject::Gp), "IOPL too low");
            assert_eq!(r.rip, 0);
            e.iopl = true;
            execute(insn, &mut r, &mut e).unwrap();
            assert_eq!(r.rip, 1);
        }
    }

    #[test]
    fn in_and_out_through_the_iopl_or_the_bitmap() {
        // (bytes, size, port, length, is_in)
        let cases: [(&[u8], u8, u16, u64, bool); 8] = [
            (&[0xe4, 0x71], 1, 0x71, 2, true),
            (&[0xe5, 0x80], 4, 0x80, 2, true),
            (&[0x66, 0xe5, 0x80], 2, 0x80, 3, true),
            (&[0xec], 1, 0x3f8, 1, true),
            (&[0x66, 0xed], 2, 0x3f8, 2, true),
            (&[0xe6, 0x80], 1, 0x80, 2, false),
            (&[0xef], 4, 0x3f8, 1, false),
            (&[0x66, 0xef], 2, 0x3f8, 2, false),
        ];
        for (bytes, size, port, len, is_in) in cases {
            let insn = decode(bytes, FaultKind::GeneralProtection).unwrap();
            let mut r = R::default();
            r.g[0] = 0x1111_2222_3333_4444;
            r.g[2] = 0xffff_0000_0000_03f8; // only dx counts
            let mut e = E::default();
            assert_eq!(execute(insn, &mut r, &mut e), Err(Inject::Gp), "{bytes:x?}: no IOPL, no bitmap");
            assert!(e.io.is_empty());
            e.allowed.push(port);
            execute(insn, &mut r, &mut e).unwrap();
            assert_eq!(r.rip, len, "{bytes:x?}");
            let mask = (1u64 << (size * 8)) - 1;
            if is_in {
                assert_eq!(e.io, [(port, size, None)]);
                let want = if size == 4 { 0xa5a5_a5a5 } else { (0x1111_2222_3333_4444 & !mask) | (0xa5a5_a5a5 & mask) };
                assert_eq!(r.g[0], want, "{bytes:x?}");
            } else {
                assert_eq!(e.io, [(port, size, Some((0x3333_4444 & mask) as u32))]);
            }
            // The IOPL alone is enough too.
            let (mut r, mut e) = (R::default(), E { iopl: true, ..E::default() });
            execute(insn, &mut r, &mut e).unwrap();
        }
        // ins/outs and an immediate cut off are not emulated.
        for bytes in [&[0x6c][..], &[0x6e], &[0xe4], &[0x66, 0xe6]] {
            let insn = decode(bytes, FaultKind::GeneralProtection);
            assert!(insn.is_none(), "{bytes:x?}");
        }
    }

    #[test]
    fn everything_else_is_not_emulated() {
        // Writes to control registers, memory operands, cr8, other instructions, truncation.
        for bytes in [
            &[0x0f, 0x22, 0xd8][..], // mov %rax, %cr3
            &[0x0f, 0x20, 0x18],     // mod != 3
            &[0x0f, 0x01, 0xf8],     // swapgs
            &[0xfa],                 // cli (without the virtual IOPL)
            &[0xf4],                 // hlt
            &[0x0f],
            &[],
            &[0x44, 0x0f, 0x20, 0xc0], // mov %cr8, %rax: decoded, refused below
        ] {
            match decode(bytes, FaultKind::GeneralProtection) {
                None => {}
                Some(insn) => {
                    let (mut r, mut e) = (R::default(), E::default());
                    assert_eq!(execute(insn, &mut r, &mut e), Err(Inject::Gp), "{bytes:x?}");
                    assert_eq!(r.rip, 0);
                }
            }
        }
        assert_eq!(decode(&[0x0f, 0x0b, 0x90, 0x90, 0x90, 0x90, 0x90], FaultKind::InvalidOpcode), None);
        assert_eq!(decode(&[0x0f, 0x0b, b'x', b'e', b'n', 0x0f], FaultKind::InvalidOpcode), None);
    }

    #[test]
    fn segment_base_msrs() {
        let (mut r, mut e) = (R::default(), E::default());
        r.g[1] = MSR_FS_BASE as u64;
        r.g[0] = 0x5000;
        r.g[2] = 0x7fff;
        execute(decode(&[0x0f, 0x30], FaultKind::GeneralProtection).unwrap(), &mut r, &mut e).unwrap();
        assert_eq!(e.fs, 0x7fff_0000_5000);
        r.g[0] = 0;
        r.g[2] = 0;
        execute(decode(&[0x0f, 0x32], FaultKind::GeneralProtection).unwrap(), &mut r, &mut e).unwrap();
        assert_eq!((r.g[2] << 32) | r.g[0], 0x7fff_0000_5000);
        assert_eq!(r.rip, 4);
        // Non-canonical write and unknown MSRs: #GP, nothing changes.
        r.g[1] = MSR_GS_BASE as u64;
        r.g[2] = 0x8000;
        r.g[0] = 0;
        assert_eq!(execute(Insn::Wrmsr { len: 2 }, &mut r, &mut e), Err(Inject::Gp));
        assert_eq!(e.gs, 0);
        r.g[1] = 0x1b; // APIC base
        assert_eq!(execute(Insn::Rdmsr { len: 2 }, &mut r, &mut e), Err(Inject::Gp));
        assert_eq!(execute(Insn::Wrmsr { len: 2 }, &mut r, &mut e), Err(Inject::Gp));
        assert_eq!(r.rip, 4);
    }

    #[test]
    fn forced_cpuid() {
        let bytes = [0x0f, 0x0b, b'x', b'e', b'n', 0x0f, 0xa2];
        let insn = decode(&bytes, FaultKind::InvalidOpcode).unwrap();
        let (mut r, mut e) = (R::default(), E::default());
        r.g[0] = 0x4000_0000;
        execute(insn, &mut r, &mut e).unwrap();
        let mut sig = [0u8; 12];
        sig[..4].copy_from_slice(&(r.g[3] as u32).to_le_bytes());
        sig[4..8].copy_from_slice(&(r.g[1] as u32).to_le_bytes());
        sig[8..].copy_from_slice(&(r.g[2] as u32).to_le_bytes());
        assert_eq!(&sig, b"XenVMMXenVMM");
        assert!(r.g[0] >= 0x4000_0002);
        assert_eq!(r.rip, 7);
        r.g[0] = 0x4000_0001;
        execute(insn, &mut r, &mut e).unwrap();
        assert_eq!(r.g[0], (4 << 16) | 19);
        r.g[0] = 1;
        execute(insn, &mut r, &mut e).unwrap();
        assert_eq!(r.g[1] & (1 << 5), 0, "VMX hidden (ecx)");
        assert_ne!(r.g[1] & (1 << 31), 0, "hypervisor bit set (ecx)");
        assert_eq!(r.g[2] & ((1 << 3) | (1 << 13) | (1 << 9)), 0, "PSE, PGE and the APIC hidden (edx)");
        assert_ne!(r.g[2] & (1 << 0), 0, "the FPU stays (edx)");
        r.g[0] = 0x8000_0001;
        r.g[1] = 0;
        execute(insn, &mut r, &mut e).unwrap();
        assert_eq!(r.g[2] & (1 << 26), 0, "no 1 GiB pages");
    }
}
