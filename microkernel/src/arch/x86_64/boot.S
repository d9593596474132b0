/* Multiboot headers and the 32-bit entry: from the loader's protected mode to long mode,
 * on boot page tables that map the first 4 GiB three times: identity (for this code), at
 * 0xffff830000000000 (the direct map, so Rust code can use direct-map addresses from the
 * start) and the first GiB at 0xffff82d080000000 (where the kernel is linked). Rust
 * (start.rs) then builds the real hypervisor page tables and drops these.
 * No braces in this file: it goes through global_asm!. */

    .section .multiboot_header, "a"
    .balign 4
mb1_header:
    .long 0x1BADB002                  /* magic */
    .long 0x00000003                  /* page-align modules, give memory info */
    .long 0xE4524FFB                  /* -(magic + flags) mod 2^32 */

    .balign 8
mb2_header:
    .long 0xE85250D6                  /* magic */
    .long 0                           /* architecture: i386 protected mode */
    .long mb2_header_end - mb2_header
    .long 0x17ADAF2A - (mb2_header_end - mb2_header)   /* -(magic + arch + len) mod 2^32 */
    .balign 8
    .short 6, 0                       /* module alignment tag: page-align modules */
    .long 8
    .balign 8
    .short 0, 0                       /* end tag */
    .long 8
mb2_header_end:

    .section .boot.text, "ax"
    .code32
    .globl start32
start32:
    cli
    cld
    movl %eax, %edi                   /* loader magic */
    movl %ebx, %esi                   /* boot information (physical) */
    rdtsc
    movl %eax, boot_tsc
    movl %edx, boot_tsc + 4
    movl $boot_stack_top, %esp

    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb no_long_mode
    movl $0x80000001, %eax
    cpuid
    btl $29, %edx
    jnc no_long_mode
    movl %edx, %ebp                   /* extended features: NX is bit 20 */

    /* 2048 2-MiB pages: the first 4 GiB. */
    movl $boot_pd, %ebx
    movl $0x83, %eax                  /* present, writable, 2 MiB */
    movl $2048, %ecx
1:  movl %eax, (%ebx)
    movl $0, 4(%ebx)
    addl $0x200000, %eax
    addl $8, %ebx
    loop 1b

    movl $boot_pd + 0x3, %eax
    movl %eax, boot_pdpt_low
    addl $0x1000, %eax
    movl %eax, boot_pdpt_low + 8
    addl $0x1000, %eax
    movl %eax, boot_pdpt_low + 16
    addl $0x1000, %eax
    movl %eax, boot_pdpt_low + 24
    movl $boot_pd + 0x3, %eax
    movl %eax, boot_pdpt_high + 322 * 8     /* 0xffff82d080000000 -> physical 0 */

    movl $boot_pdpt_low + 0x3, %eax
    movl %eax, boot_pml4                    /* identity */
    movl %eax, boot_pml4 + 262 * 8          /* direct map */
    movl $boot_pdpt_high + 0x3, %eax
    movl %eax, boot_pml4 + 261 * 8          /* kernel text */

    movl %cr4, %eax
    orl $(1 << 5), %eax                     /* PAE */
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3

    movl $0xC0000080, %ecx                  /* EFER */
    rdmsr
    orl $((1 << 8) | (1 << 0)), %eax        /* LME, SCE */
    btl $20, %ebp
    jnc 2f
    orl $(1 << 11), %eax                    /* NXE */
2:  wrmsr

    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax  /* PG, WP, PE */
    movl %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $start64_low

no_long_mode:
    movl $msg_no_long_mode, %esi
    movw $0x3f8, %dx
3:  lodsb
    testb %al, %al
    jz 4f
    outb %al, %dx
    jmp 3b
4:  movw $0xf4, %dx                        /* isa-debug-exit: boot error */
    movb $0x13, %al
    outb %al, %dx
5:  hlt
    jmp 5b

    .code64
start64_low:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movl %edi, %edi                         /* upper halves are undefined after the switch */
    movl %esi, %esi
    movq boot_tsc(%rip), %rdx
    movabsq $start64_high, %rax
    jmp *%rax

    .section .boot.data, "aw"
    .balign 4096
    .globl boot_pml4
boot_pml4:      .fill 4096, 1, 0
boot_pdpt_low:  .fill 4096, 1, 0
boot_pdpt_high: .fill 4096, 1, 0
boot_pd:        .fill 4 * 4096, 1, 0
boot_stack:     .fill 4096, 1, 0
boot_stack_top:
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff                /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff                /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt
    .balign 8
boot_tsc:       .quad 0
msg_no_long_mode:
    .asciz "microkernel: this CPU has no long mode (64-bit); cannot boot\r\n"

    .section .text.start64_high, "ax"
    .code64
start64_high:
    movq %rdi, %r12
    movq %rsi, %r13
    movq %rdx, %r14
    leaq __bss_start(%rip), %rdi            /* .bss holds the stack: clear it before use */
    leaq __bss_end(%rip), %rcx
    subq %rdi, %rcx
    xorl %eax, %eax
    rep stosb
    leaq hv_stack_top(%rip), %rsp
    xorl %ebp, %ebp
    movq %r12, %rdi
    movq %r13, %rsi
    movq %r14, %rdx
    call kmain_entry
6:  hlt
    jmp 6b

    .section .bss.hv_stack, "aw", @nobits
    .balign 4096
    .globl hv_stack_bottom
    .globl hv_stack_top
hv_stack_bottom:
    .skip 65536
hv_stack_top:
