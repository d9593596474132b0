//! The hypercall page a PV kernel calls through: 128 stubs of 32 bytes, as Xen's
//! `pv_ring3_init_hypercall_page` writes them for a 64-bit PV guest (xen/arch/x86/pv/hypercall.c).
//!
//! Stub `i` is `push %rcx; push %r11; mov $i,%eax; syscall; pop %r11; pop %rcx; ret`, so a
//! guest calls `hypercall_page + 32 * i` like a function. The `iret` stub is different: the
//! guest jumps to it with an iret frame on its stack, it pushes rcx, r11 and rax on top
//! (the frame the hypervisor's `iret` expects) and never returns. Unused bytes are `int3`.

use hypercall_abi::hypercall::{Hypercall, HYPERCALL_PAGE_STUBS, HYPERCALL_STUB_SIZE};

/// `push %rcx`.
const PUSH_RCX: &[u8] = &[0x51];
/// `push %r11`.
const PUSH_R11: &[u8] = &[0x41, 0x53];
/// `push %rax`.
const PUSH_RAX: &[u8] = &[0x50];
/// `mov $imm32, %eax` opcode (the immediate follows).
const MOV_IMM32_EAX: u8 = 0xb8;
/// `syscall`.
const SYSCALL: &[u8] = &[0x0f, 0x05];
/// `pop %r11`.
const POP_R11: &[u8] = &[0x41, 0x5b];
/// `pop %rcx`.
const POP_RCX: &[u8] = &[0x59];
/// `ret`.
const RET: &[u8] = &[0xc3];
/// `int3`: what a stray jump into the padding hits.
const INT3: u8 = 0xcc;

/// Append `bytes` to `stub` at `*at`.
fn emit(stub: &mut [u8], at: &mut usize, bytes: &[u8]) {
    stub[*at..*at + bytes.len()].copy_from_slice(bytes);
    *at += bytes.len();
}

/// Fill `page` with the 64-bit PV hypercall stubs; see the module documentation.
pub fn fill_hypercall_page(page: &mut [u8; 4096]) {
    page.fill(INT3);
    let iret = Hypercall::Iret as u32;
    for (number, stub) in (0u32..).zip(page.chunks_exact_mut(HYPERCALL_STUB_SIZE)) {
        debug_assert!((number as usize) < HYPERCALL_PAGE_STUBS);
        let mut at = 0;
        emit(stub, &mut at, PUSH_RCX);
        emit(stub, &mut at, PUSH_R11);
        if number == iret {
            emit(stub, &mut at, PUSH_RAX);
        }
        emit(stub, &mut at, &[MOV_IMM32_EAX]);
        emit(stub, &mut at, &number.to_le_bytes());
        emit(stub, &mut at, SYSCALL);
        if number != iret {
            emit(stub, &mut at, POP_R11);
            emit(stub, &mut at, POP_RCX);
            emit(stub, &mut at, RET);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_match_xen() {
        let mut page = [0u8; 4096];
        fill_hypercall_page(&mut page);
        let stub = |i: usize| &page[i * 32..(i + 1) * 32];
        let mut expected = [INT3; 32];
        expected[..14].copy_from_slice(&[
            0x51, 0x41, 0x53, 0xb8, 17, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3,
        ]);
        assert_eq!(stub(17), &expected);
        let mut iret = [INT3; 32];
        iret[..11].copy_from_slice(&[0x51, 0x41, 0x53, 0x50, 0xb8, 23, 0, 0, 0, 0x0f, 0x05]);
        assert_eq!(stub(23), &iret);
        assert_eq!(&stub(127)[3..8], &[0xb8, 127, 0, 0, 0]);
    }
}
