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
//! | `rdmsr`/`wrmsr` of FS_BASE, GS_BASE, SHADOW_GS_BASE | the guest's segment bases; a non-canonical write is refused with #GP |
//! | `ud2; "xen"; cpuid` | CPUID with the hypervisor leaves at 0x40000000 |
//! | `cli`, `sti` | nothing (skipped) when the virtual IOPL allows them, as Xen's `validate` ("too dangerous to allow": the event mask is not touched); #GP otherwise |
//! | `in`, `out` (byte, word, dword; port in `imm8` or `dx`) | when the virtual IOPL or the I/O bitmap allows the port: the machine's answer (no domain has hardware ports yet: reads all ones, writes dropped, as Xen's for ports a domain is not given); #GP otherwise |
//!
//! Anything else, including writes to CR3 (a PV kernel switches tables with
//! `MMUEXT_NEW_BASEPTR`) and CR8, is not emulated: the caller raises #GP for the guest. Decoding is portable and host-tested; the machine
//! supplies register access and the values through [`EmuEnv`].
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
                [0x0f, 0x20] => {
                    let modrm = *bytes.get(i + 2)?;
                    if modrm >> 6 != 3 {
                        return None;
                    }
                    let cr = ((modrm >> 3) & 7) | if rex & 0x4 != 0 { 8 } else { 0 };
                    let reg = (modrm & 7) | if rex & 0x1 != 0 { 8 } else { 0 };
                    Some(Insn::MovFromCr { cr, reg, len: (i + 3) as u8 })
                }
                [0x0f, 0x22] => {
                    let modrm = *bytes.get(i + 2)?;
                    if modrm >> 6 != 3 {
                        return None;
                    }
                    let cr = ((modrm >> 3) & 7) | if rex & 0x4 != 0 { 8 } else { 0 };
                    let reg = (modrm & 7) | if rex & 0x1 != 0 { 8 } else { 0 };
                    Some(Insn::MovToCr { cr, reg, len: (i + 3) as u8 })
                }
                [0x0f, 0x32] => Some(Insn::Rdmsr { len: (i + 2) as u8 }),
                [0x0f, 0x30] => Some(Insn::Wrmsr { len: (i + 2) as u8 }),
                _ => None,
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

/// CPUID as a PV guest sees it: the hypervisor leaves, and the hardware's leaves with the
/// hypervisor-present bit set and virtualization and MONITOR/MWAIT hidden.
pub fn guest_cpuid(env: &impl EmuEnv, leaf: u32, subleaf: u32) -> [u32; 4] {
    if (0x4000_0000..0x4001_0000).contains(&leaf) {
        return hypervisor_cpuid(leaf);
    }
    let mut r = env.host_cpuid(leaf, subleaf);
    if leaf == 1 {
        r[2] &= !((1 << 5) | (1 << 3)); // VMX, MONITOR
        r[2] |= 1 << 31; // running on a hypervisor
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

/// Carries out `insn` on `regs`.
pub fn execute(insn: Insn, regs: &mut impl Regs, env: &mut impl EmuEnv) -> Result<(), InjectGp> {
    match insn {
        Insn::MovFromCr { cr, reg, len } => {
            let v = match cr {
                0 => env.guest_cr0(),
                2 => env.guest_cr2(),
                3 => env.guest_cr3(),
                4 => env.guest_cr4(),
                _ => return Err(InjectGp),
            };
            regs.set_gpr(reg, v);
            regs.advance(len);
        }
        Insn::Rdmsr { len } => {
            let msr = regs.gpr(RCX) as u32;
            if !matches!(msr, MSR_FS_BASE | MSR_GS_BASE | MSR_SHADOW_GS_BASE) {
                return Err(InjectGp);
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
                return Err(InjectGp);
            }
            env.write_base(msr, v);
            regs.advance(len);
        }
        Insn::MovToCr { cr, reg, len } => {
            let v = regs.gpr(reg);
            match cr {
                0 => env.write_cr0(v)?,
                4 => env.write_cr4(v),
                _ => return Err(InjectGp),
            }
            regs.advance(len);
        }
        Insn::CliSti { .. } => {
            if !env.iopl_ok() {
                return Err(InjectGp);
            }
            regs.advance(1);
        }
        Insn::In { size, port, len } | Insn::Out { size, port, len } => {
            let port = match port {
                Port::Imm(p) => u16::from(p),
                Port::Dx => regs.gpr(RDX) as u16,
            };
            if !env.iopl_ok() && !env.bitmap_allows(port, size) {
                return Err(InjectGp);
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
    Ok(())
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
        fn host_cpuid(&self, leaf: u32, _: u32) -> [u32; 4] {
            if leaf == 1 {
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
    fn control_register_writes() {
        // mov %rax, %cr0 with TS set (0f 22 c0); with PG cleared: refused.
        let (mut r, mut e) = (R::default(), E::default());
        r.g[0] = 0x8005_003b;
        execute(decode(&[0x0f, 0x22, 0xc0], FaultKind::GeneralProtection).unwrap(), &mut r, &mut e).unwrap();
        assert_eq!((e.ts, r.rip), (Some(true), 3));
        r.g[0] = 0x0005_0033;
        assert_eq!(execute(decode(&[0x0f, 0x22, 0xc0], FaultKind::GeneralProtection).unwrap(), &mut r, &mut e), Err(InjectGp));
        // mov %rdi, %cr4 (0f 22 e7): handed over whole; mov %r9, %cr4 (41 0f 22 e1).
        r.g[7] = 0x620;
        execute(decode(&[0x0f, 0x22, 0xe7], FaultKind::GeneralProtection).unwrap(), &mut r, &mut e).unwrap();
        assert_eq!(e.cr4, Some(0x620));
        r.g[9] = 0x10620;
        assert_eq!(decode(&[0x41, 0x0f, 0x22, 0xe1], FaultKind::GeneralProtection), Some(Insn::MovToCr { cr: 4, reg: 9, len: 4 }));
        // cr3 and cr8 writes are not emulated.
        for bytes in [&[0x0f, 0x22, 0xd8][..], &[0x44, 0x0f, 0x22, 0xc0]] {
            let insn = decode(bytes, FaultKind::GeneralProtection).unwrap();
            assert_eq!(execute(insn, &mut R::default(), &mut E::default()), Err(InjectGp));
        }
    }

    #[test]
    fn cli_and_sti_are_skipped_under_the_virtual_iopl_only() {
        for (bytes, cli) in [(&[0xfa, 0xe9][..], true), (&[0xfb][..], false)] {
            let insn = decode(bytes, FaultKind::GeneralProtection).unwrap();
            assert_eq!(insn, Insn::CliSti { cli });
            let (mut r, mut e) = (R::default(), E::default());
            assert_eq!(execute(insn, &mut r, &mut e), Err(InjectGp), "IOPL too low");
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
            assert_eq!(execute(insn, &mut r, &mut e), Err(InjectGp), "{bytes:x?}: no IOPL, no bitmap");
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
                    assert_eq!(execute(insn, &mut r, &mut e), Err(InjectGp), "{bytes:x?}");
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
        assert_eq!(execute(Insn::Wrmsr { len: 2 }, &mut r, &mut e), Err(InjectGp));
        assert_eq!(e.gs, 0);
        r.g[1] = 0x1b; // APIC base
        assert_eq!(execute(Insn::Rdmsr { len: 2 }, &mut r, &mut e), Err(InjectGp));
        assert_eq!(execute(Insn::Wrmsr { len: 2 }, &mut r, &mut e), Err(InjectGp));
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
    }
}
