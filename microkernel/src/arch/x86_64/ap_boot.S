/* The application processors' way in: a real-mode trampoline the boot CPU copies to
 * physical AP_BASE (below 1 MiB, where a startup IPI can point) before each start. It
 * goes to protected mode on a GDT of its own, to long mode on the boot page tables (which
 * map this page identically and the microkernel at its link address), and jumps to
 * ap_entry (smp.rs) on the stack and with the CPU number the boot CPU left at
 * AP_BASE + 0xf00 (see smp.rs for the layout). No braces: it goes through global_asm!. */

    .set AP_BASE, 0x8000
    .section .rodata.ap_trampoline, "a"
    .globl ap_tramp_start
    .globl ap_tramp_end
    .code16
ap_tramp_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl ap_gdt_ptr - ap_tramp_start
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(ap_tramp32 - ap_tramp_start + AP_BASE)

    .code32
ap_tramp32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $(1 << 5), %eax                     /* PAE */
    movl %eax, %cr4
    movl AP_BASE + 0xf00, %eax              /* the boot page tables */
    movl %eax, %cr3
    movl $0xC0000080, %ecx                  /* EFER as the boot CPU has it: LME, SCE, NXE */
    movl AP_BASE + 0xf08, %eax
    xorl %edx, %edx
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16)), %eax      /* PG, WP */
    movl %eax, %cr0
    ljmpl $0x18, $(ap_tramp64 - ap_tramp_start + AP_BASE)

    .code64
ap_tramp64:
    movq AP_BASE + 0xf10, %rsp
    movq AP_BASE + 0xf20, %rdi
    movq AP_BASE + 0xf18, %rax
    jmpq *%rax

    .balign 8
ap_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff                /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff                /* 0x10: data */
    .quad 0x00af9a000000ffff                /* 0x18: 64-bit code */
ap_gdt_ptr:
    .short ap_gdt_ptr - ap_gdt - 1
    .long ap_gdt - ap_tramp_start + AP_BASE
ap_tramp_end:

    .balign 8
    .globl ap_boot_cr3
ap_boot_cr3:
    .quad boot_pml4
