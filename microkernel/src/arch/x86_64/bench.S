/* The benchmark's bare entries (the `bench` feature only: `cargo xtask bench`).
 * No braces in this file: it goes through global_asm!. */
    .section .text
/* The benchmark's floor: a syscall that returns at once when rax == 0. Installed in LSTAR
 * only between BENCH_BARE_SYSCALL_ON and _OFF; any other rax takes the normal path. */
    .globl syscall_entry_bare
syscall_entry_bare:
    testq %rax, %rax
    jnz syscall_entry
    sysretq

/* The benchmark's floor for exceptions: IDT vector 3 (#BP, DPL 3) points here only
 * between BENCH_BARE_EXCEPTION_ON and _OFF (idt.rs set_bare_breakpoint). `int3` pushes no
 * error code, so the CPU's frame is exactly an iret frame: return at once to the instruction
 * after the int3. Nothing else is touched (no swapgs: GS is not used). */
    .globl exc_bare_iret
exc_bare_iret:
    iretq

