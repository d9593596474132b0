//! `int $n` from the guest (Xen's `do_general_protection` and `permit_softint`).
//!
//! The machine's IDT gives every vector but 3 (`int3`) and 4 (`into`) DPL 0, so an
//! `int $n` in the guest raises #GP with error code `(n << 3) | 2` (IDT bit set, EXT clear).
//! The machine passes that error code here; `int3` and `into` arrive as the hardware
//! exceptions #BP and #OF and go through [`super::exception`] without a privilege check.
#![forbid(unsafe_code)]

use super::bounce::BounceRequest;
use super::table::TrapTable;
use super::GuestMode;

/// What to do with a #GP that came from `int $n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftInt {
    /// The trap entry allows it: advance `rip` past the 2-byte instruction and bounce into
    /// the entry's handler (no error code).
    Deliver {
        /// The vector raised.
        vector: u8,
        /// What to bounce into.
        request: BounceRequest,
    },
    /// Not an `int $n`, or not allowed: deliver #GP with this error code to the guest's
    /// #GP handler, `rip` left on the instruction.
    GeneralProtection {
        /// The hardware error code, passed through.
        error_code: u32,
    },
}

/// Xen's `permit_softint`: the entry's DPL must be at least the guest's virtual ring,
/// 1 for the guest kernel (whose hardware ring is 3) and 3 for guest user mode.
pub fn permit_softint(dpl: u8, mode: GuestMode) -> bool {
    dpl >= match mode {
        GuestMode::Kernel => 1,
        GuestMode::User => 3,
    }
}

/// Decides a #GP raised in the guest with hardware `error_code`.
pub fn software_interrupt(table: &TrapTable, error_code: u32, mode: GuestMode) -> SoftInt {
    if error_code & 3 == 2 && error_code >> 3 <= u32::from(u8::MAX) {
        let vec = (error_code >> 3) as u8;
        let ti = table.entry(vec);
        if permit_softint(ti.dpl(), mode) {
            return SoftInt::Deliver {
                vector: vec,
                request: BounceRequest {
                    handler: ti.address,
                    mask_events: ti.masks_events(),
                    error_code: None,
                },
            };
        }
    }
    SoftInt::GeneralProtection { error_code }
}
