//! A vCPU's debug registers, as Xen keeps them for a PV guest (`set_debugreg` in
//! `pv/misc-hypercalls.c`, `x86emul_read_dr`, `x86_adj_dr6_rsvd`/`x86_adj_dr7_rsvd` and
//! `x86_merge_dr6` in `debug.c`, `check_guest_io_breakpoint` in `pv/emul-priv-op.c`).
//!
//! Pure logic: the hypercalls `set_debugreg`/`get_debugreg` and the emulated `mov` to and
//! from `%drN` change and read a [`DebugRegs`]; the machine loads it into the hardware while
//! the vCPU runs with any breakpoint enabled ([`DebugRegs::active`]).
//!
//! The rules that keep the hypervisor safe: a breakpoint address is a guest address
//! (canonical, outside the hypervisor's slice), so no instruction breakpoint can hit
//! hypervisor code; general detect (DR7.GD) is refused; I/O breakpoints never reach the
//! hardware (their enable bits are kept apart and matched by the I/O emulation).
#![forbid(unsafe_code)]

use super::is_guest_address;
use hypercall_abi::errno::Errno;

/// DR6 as it reads with nothing recorded (the reserved bits that read as one).
pub const DR6_DEFAULT: u64 = 0xffff_0ff0;
/// DR6 bits forced to zero.
const DR6_ZEROS: u64 = 0x0000_1000;
/// DR6 breakpoint-hit bits B0..B3.
pub const DR6_BP_MASK: u64 = 0xf;
/// DR6.BD: a debug-register access was detected.
const DR6_BD: u64 = 1 << 13;
/// DR6.BS: single step.
pub const DR6_BS: u64 = 1 << 14;
/// DR6.BT: task switch.
const DR6_BT: u64 = 1 << 15;
/// DR6.BLD (bus-lock detect, inverted polarity).
const DR6_BLD: u64 = 1 << 11;
/// DR6.RTM (inverted polarity).
const DR6_RTM: u64 = 1 << 16;
/// The DR6 bits that mean something, in positive polarity.
const DR6_KNOWN: u64 = DR6_BP_MASK | DR6_BLD | DR6_BD | DR6_BS | DR6_BT | DR6_RTM;

/// DR7 bits forced to zero (GD is refused before this applies).
const DR7_ZEROS: u64 = 0x0000_d000;
/// DR7.RTM: forced to zero, as on a CPU without RTM (the CPUID policy hides it).
const DR7_RTM: u64 = 1 << 11;
/// DR7 bit 10, reads as one.
pub const DR7_DEFAULT: u64 = 0x0000_0400;
/// DR7.GD: general detect.
const DR7_GD: u64 = 1 << 13;
/// DR7's local and global enables of the four breakpoints.
pub const DR7_ACTIVE_MASK: u64 = 0xff;
/// The R/W field value of an I/O breakpoint (with CR4.DE).
const DR_IO: u64 = 2;

/// The debug registers of one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebugRegs {
    /// DR0..DR3: breakpoint addresses.
    pub dr: [u64; 4],
    /// DR6: status.
    pub dr6: u64,
    /// DR7: control, as loaded into the hardware (I/O breakpoints' enables removed).
    pub dr7: u64,
    /// The enable bits of the I/O breakpoints, emulated (Xen's `dr7_emul`).
    pub dr7_emul: u64,
}

impl Default for DebugRegs {
    fn default() -> Self {
        DebugRegs { dr: [0; 4], dr6: DR6_DEFAULT, dr7: DR7_DEFAULT, dr7_emul: 0 }
    }
}

/// DR6 with its reserved bits as the CPU policy makes them (RTM and bus-lock detect are
/// hidden, so their inverted bits read as one).
fn adj_dr6(dr6: u64) -> u64 {
    (dr6 | DR6_DEFAULT) & !DR6_ZEROS
}

/// DR7 with its reserved bits as the CPU policy makes them.
fn adj_dr7(dr7: u64) -> u64 {
    (dr7 & !(DR7_ZEROS | DR7_RTM)) | DR7_DEFAULT
}

impl DebugRegs {
    /// Whether any breakpoint is enabled in the hardware value: only then are the
    /// registers loaded while the vCPU runs.
    pub fn active(&self) -> bool {
        self.dr7 & DR7_ACTIVE_MASK != 0
    }

    /// `set_debugreg(reg, value)` (`cr4_de`: the vCPU's CR4.DE). Xen's errnos: `ENODEV`
    /// for a register that does not exist (DR4/DR5 alias DR6/DR7 without CR4.DE), `EINVAL`
    /// for reserved upper bits of DR6/DR7, `EPERM` for a breakpoint address outside the
    /// guest's space, DR7.GD, or an I/O breakpoint without CR4.DE.
    pub fn set(&mut self, reg: u32, value: u64, cr4_de: bool) -> Result<(), Errno> {
        match reg {
            0..=3 => {
                if !is_guest_address(value) {
                    return Err(Errno::EPERM);
                }
                if let Some(slot) = self.dr.get_mut(reg as usize) {
                    *slot = value;
                }
            }
            4 | 6 if reg == 6 || !cr4_de => {
                if value > u64::from(u32::MAX) {
                    return Err(Errno::EINVAL);
                }
                self.dr6 = adj_dr6(value);
            }
            5 | 7 if reg == 7 || !cr4_de => {
                if value > u64::from(u32::MAX) {
                    return Err(Errno::EINVAL);
                }
                let mut value = adj_dr7(value);
                if value & DR7_GD != 0 {
                    return Err(Errno::EPERM);
                }
                let mut io_enable = 0;
                if value & DR7_ACTIVE_MASK != 0 {
                    for bp in 0..4 {
                        if (value >> (16 + 4 * bp)) & 3 == DR_IO {
                            if !cr4_de {
                                return Err(Errno::EPERM);
                            }
                            io_enable |= value & (3 << (2 * bp));
                        }
                    }
                    value &= !io_enable;
                }
                self.dr7_emul = io_enable;
                self.dr7 = value;
            }
            _ => return Err(Errno::ENODEV),
        }
        Ok(())
    }

    /// `get_debugreg(reg)`: the value, or `ENODEV` as [`DebugRegs::set`]. DR7 reads with
    /// the emulated I/O enables merged back.
    pub fn get(&self, reg: u32, cr4_de: bool) -> Result<u64, Errno> {
        match reg {
            0..=3 => self.dr.get(reg as usize).copied().ok_or(Errno::ENODEV),
            4 | 6 if reg == 6 || !cr4_de => Ok(self.dr6),
            5 | 7 if reg == 7 || !cr4_de => Ok(self.dr7 | self.dr7_emul),
            _ => Err(Errno::ENODEV),
        }
    }

    /// Records a debug exception for the guest (Xen's `x86_merge_dr6`): `hit` is the
    /// hardware's DR6 in positive polarity (`dr6 ^ DR6_DEFAULT`). The breakpoint bits are
    /// replaced, the others accumulate until the guest clears them.
    pub fn merge_dr6(&mut self, hit: u64) {
        let positive = (self.dr6 ^ DR6_DEFAULT) & DR6_KNOWN;
        let merged = (positive & !DR6_BP_MASK) | (hit & DR6_KNOWN);
        self.dr6 = adj_dr6(merged ^ DR6_DEFAULT);
    }

    /// The I/O breakpoints an emulated access of `len` bytes at `port` hits, as DR6's
    /// B0..B3 (Xen's `check_guest_io_breakpoint`; only with CR4.DE).
    pub fn io_breakpoints(&self, port: u16, len: u8, cr4_de: bool) -> u64 {
        if !cr4_de {
            return 0;
        }
        let (port, len) = (u64::from(port), u64::from(len));
        let mut hit = 0;
        for (bp, &start) in self.dr.iter().enumerate() {
            if self.dr7_emul & (3 << (2 * bp)) == 0 {
                continue;
            }
            let width = match (self.dr7 >> (16 + 4 * bp)) & 0xc {
                0x0 => 1,
                0x4 => 2,
                0xc => 4,
                _ => 8,
            };
            if start < port + len && start.saturating_add(width) > port {
                hit |= 1 << bp;
            }
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_must_be_the_guests() {
        let mut d = DebugRegs::default();
        assert_eq!(d.set(0, 0x40_1000, false), Ok(()));
        assert_eq!(d.set(3, 0xffff_ff80_0000_0000, false), Ok(()));
        // The hypervisor's slice, the non-canonical hole: refused, nothing changes.
        for bad in [0xffff_8000_0000_0000, 0xffff_87ff_ffff_ffff, 0x0000_8000_0000_0000, u64::MAX >> 1] {
            assert_eq!(d.set(1, bad, false), Err(Errno::EPERM), "{bad:#x}");
        }
        assert_eq!(d.get(0, false), Ok(0x40_1000));
        assert_eq!(d.get(1, false), Ok(0));
        assert_eq!(d.get(3, false), Ok(0xffff_ff80_0000_0000));
    }

    #[test]
    fn dr6_and_dr7_reserved_bits() {
        let mut d = DebugRegs::default();
        assert_eq!(d.get(6, false), Ok(DR6_DEFAULT));
        assert_eq!(d.get(7, false), Ok(DR7_DEFAULT));
        assert_eq!(d.set(6, 1 << 32, false), Err(Errno::EINVAL));
        assert_eq!(d.set(7, 1 << 40, false), Err(Errno::EINVAL));
        // Reserved ones forced on, bit 12 forced off.
        assert_eq!(d.set(6, 0x1001, false), Ok(()));
        assert_eq!(d.get(6, false), Ok(0xffff_0ff1));
        // Bits 14, 15 and RTM (11) forced off in DR7, bit 10 on.
        assert_eq!(d.set(7, 0xc801, false), Ok(()));
        assert_eq!(d.get(7, false), Ok(0x401));
        assert!(d.active());
        assert_eq!(d.set(7, 0, false), Ok(()));
        assert!(!d.active());
    }

    #[test]
    fn general_detect_is_refused() {
        let mut d = DebugRegs::default();
        assert_eq!(d.set(7, DR7_GD | 1, false), Err(Errno::EPERM));
        assert_eq!(d.get(7, false), Ok(DR7_DEFAULT));
    }

    #[test]
    fn dr4_dr5_alias_without_cr4_de() {
        let mut d = DebugRegs::default();
        assert_eq!(d.set(4, 0x1, false), Ok(()));
        assert_eq!(d.get(6, false), Ok(0xffff_0ff1));
        assert_eq!(d.set(5, 0x2, false), Ok(()));
        assert_eq!(d.get(7, false), Ok(0x402));
        assert_eq!(d.get(4, false), Ok(0xffff_0ff1));
        assert_eq!(d.set(4, 0, true), Err(Errno::ENODEV));
        assert_eq!(d.set(5, 0, true), Err(Errno::ENODEV));
        assert_eq!(d.get(4, true), Err(Errno::ENODEV));
        assert_eq!(d.get(5, true), Err(Errno::ENODEV));
        for reg in [8, 15, u32::MAX] {
            assert_eq!(d.set(reg, 0, false), Err(Errno::ENODEV));
            assert_eq!(d.get(reg, false), Err(Errno::ENODEV));
        }
    }

    #[test]
    fn io_breakpoints_need_cr4_de_and_stay_out_of_the_hardware() {
        let mut d = DebugRegs::default();
        // Breakpoint 1: I/O, 2 bytes, local enable.
        let io = (DR_IO << 20) | (0x4 << 20) | (1 << 2);
        assert_eq!(d.set(7, io, false), Err(Errno::EPERM));
        assert_eq!(d.set(1, 0x60, true), Ok(()));
        assert_eq!(d.set(7, io | 1, true), Ok(()));
        // The hardware value has breakpoint 0 only; the read-back has both.
        assert_eq!(d.dr7 & DR7_ACTIVE_MASK, 1);
        assert_eq!(d.get(7, true), Ok(io | 1 | DR7_DEFAULT));
        assert_eq!(d.io_breakpoints(0x60, 1, true), 0b10);
        assert_eq!(d.io_breakpoints(0x61, 1, true), 0b10);
        assert_eq!(d.io_breakpoints(0x5f, 2, true), 0b10);
        assert_eq!(d.io_breakpoints(0x5f, 1, true), 0);
        assert_eq!(d.io_breakpoints(0x62, 4, true), 0);
        assert_eq!(d.io_breakpoints(0x60, 1, false), 0);
        // Disabling every breakpoint drops the emulated enables too.
        assert_eq!(d.set(7, 0, true), Ok(()));
        assert_eq!(d.io_breakpoints(0x60, 1, true), 0);
        assert!(!d.active());
    }

    #[test]
    fn merge_replaces_breakpoint_bits_and_keeps_the_rest() {
        let mut d = DebugRegs::default();
        d.merge_dr6(DR6_BS);
        assert_eq!(d.dr6, DR6_DEFAULT | DR6_BS);
        d.merge_dr6(0b0100);
        assert_eq!(d.dr6, DR6_DEFAULT | DR6_BS | 0b0100);
        d.merge_dr6(0b0001);
        assert_eq!(d.dr6, DR6_DEFAULT | DR6_BS | 0b0001);
        // Garbage from the hardware beyond the known bits is ignored.
        d.merge_dr6(u64::MAX);
        assert_eq!(d.dr6 >> 32, 0);
        assert_eq!(d.dr6 & DR6_ZEROS, 0);
    }
}
