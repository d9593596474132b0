//! The register save and restore shared by the guest kit's entry stubs (exceptions in
//! `traps.rs`, event upcalls in `events.rs`, the syscall callback in `user.rs`), as
//! AT&T-syntax text for `global_asm!(concat!(...))`.
//!
//! The hypervisor's bounce frame already holds rcx and r11 (and the stubs push rax first,
//! to free a register), so the save pushes the other twelve general registers. With rax
//! they make the 13 words `user::SavedRegs` describes, lowest address first: r15 ... rbx,
//! rax.

/// Pushes rbx, rdx, rsi, rdi, rbp, r8, r9, r10, r12, r13, r14, r15 (rax is pushed before).
macro_rules! push_regs_after_rax {
    () => {
        "
    pushq %rbx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
"
    };
}

/// Pops what [`push_regs_after_rax`] pushed, then rax, then the frame's rcx and r11: the
/// stack is left at the frame's return address (or error code).
macro_rules! pop_regs_rax_rcx_r11 {
    () => {
        "
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rbx
    popq %rax
    popq %rcx
    popq %r11
"
    };
}
