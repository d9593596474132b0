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
//! | `rdmsr`/`wrmsr` of FS_BASE, GS_BASE, SHADOW_GS_BASE | the guest's segment bases; a non-canonical write is refused with #GP |
//! | `ud2; "xen"; cpuid` | CPUID with the hypervisor leaves at 0x40000000 |
//!
//! Anything else, including every write to a control register, is not emulated: the
//! caller raises #GP for the guest. Decoding is portable and host-tested; the machine
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
    fn everything_else_is_not_emulated() {
        // Writes to control registers, memory operands, cr8, other instructions, truncation.
        for bytes in [
            &[0x0f, 0x22, 0xd8][..], // mov %rax, %cr3
            &[0x0f, 0x20, 0x18],     // mod != 3
            &[0x0f, 0x01, 0xf8],     // swapgs
            &[0xfa],                 // cli
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
