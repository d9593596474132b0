/* Entry and exit paths between guests (ring 3) and the microkernel (ring 0).
 *
 * Every entry from a guest builds the same frame (GuestFrame in trap.rs) at the top of the
 * hypervisor stack: the 15 general registers, vector, error code and an iret frame. A
 * `syscall` (a hypercall) fakes the iret frame from rcx/r11 and the flat guest selectors.
 * GS: while a guest runs, GS.base is the guest's and KERNEL_GS_BASE is the per-CPU block;
 * every entry from ring 3 swaps them, every exit to ring 3 swaps back.
 * Per-CPU block: +0 self, +8 hypervisor stack top, +16 scratch for the guest rsp, +24 CPU number.
 * No braces in this file: it goes through global_asm!. */

    .set FRAME_CS, 144
    .set SYSCALL_VECTOR, 0x100
    .set IRET_FAULT, 0x200

.macro PUSH_GPRS
    pushq %rdi
    pushq %rsi
    pushq %rdx
    pushq %rcx
    pushq %rax
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
.endm

.macro POP_GPRS
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rax
    popq %rcx
    popq %rdx
    popq %rsi
    popq %rdi
.endm

    .section .text.entry, "ax"
    .code64

/* Hypercall: `syscall` from the guest kernel. IF, DF, TF, AC are clear (SFMASK). */
    .globl syscall_entry
syscall_entry:
    swapgs
    movq %rsp, %gs:16
    movq %gs:8, %rsp
    pushq $0xe02b                       /* ss: FLAT_RING3_SS64 */
    pushq %gs:16                        /* rsp */
    pushq %r11                          /* rflags */
    pushq $0xe033                       /* cs: FLAT_RING3_CS64 */
    pushq %rcx                          /* rip */
    pushq $0                            /* error code */
    pushq $SYSCALL_VECTOR
    PUSH_GPRS
    movq %rsp, %rdi
    call hypercall_from_guest           /* returns 1 when sysret may be used */
    testq %rax, %rax
    jz return_to_guest
    POP_GPRS
    movq 16(%rsp), %rcx                 /* rip (canonical: checked in Rust) */
    movq 32(%rsp), %r11                 /* rflags (sanitised in Rust) */
    movq 40(%rsp), %rsp
    swapgs
    sysretq

/* `syscall` from compatibility mode: no such hypercall ABI; reported as #UD. */
    .globl cstar_entry
cstar_entry:
    swapgs
    movq %rsp, %gs:16
    movq %gs:8, %rsp
    pushq $0xe02b
    pushq %gs:16
    pushq %r11
    pushq $0xe023
    pushq %rcx
    pushq $0
    pushq $6
    PUSH_GPRS
    movq %rsp, %rdi
    call exception_entry
    jmp return_to_guest

/* Leave for ring 3 through the frame at rsp. The iretq may fault in ring 0 on state the
 * guest chose (a selector it cannot load): exception_common turns that into an exception
 * of the guest at the state it was returning to (see there). */
    .globl return_to_guest
    .globl iret_to_guest
return_to_guest:
    POP_GPRS
    addq $16, %rsp
    swapgs
iret_to_guest:
    iretq

/* enter_guest(frame): start running the guest described by `frame` (at the stack top). */
    .globl enter_guest
enter_guest:
    movq %rdi, %rsp
    jmp return_to_guest

/* Interrupt gates clear IF, TF and NT but keep the interrupted DF and AC: the guest
 * controls both. Rust code (and the compiler's memcpy, `rep movs`) assumes DF clear, so a
 * guest's `std; ud2` would otherwise make every copy run downwards over the hypervisor
 * stack. Load a known rflags (only the reserved bit 1) before anything else; the iretq at
 * the end restores the interrupted context's own flags. */
exception_common:
    pushq $2
    popfq
    testb $3, 24(%rsp)                  /* cs of the interrupted context */
    jz 2f
.Lfrom_guest:
    swapgs
.Lguest_frame_ready:
1:  PUSH_GPRS
    movq %rsp, %rdi
    call exception_entry
    testb $3, FRAME_CS(%rsp)
    jnz return_to_guest
    POP_GPRS
    addq $16, %rsp
    iretq

/* A fault in ring 0. If it is the iretq of return_to_guest (Xen's .Lft0 and its fixup to
 * the failsafe callback), the guest's registers are live, GS is the guest's, and the
 * guest's iret frame is where the faulting iretq found it (the saved rsp). Copy that frame
 * over this one's rip..ss and mark the vector with IRET_FAULT: it now reads as an
 * exception the guest took at the state it was returning to, and goes the guest's way. */
2:  pushq %rax
    leaq iret_to_guest(%rip), %rax
    cmpq %rax, 24(%rsp)                 /* rip, above the saved rax */
    jne 3f
    /* Only a fault of the iretq itself: #NP, #SS or #GP (an NMI or #MC arriving just
     * before it has the same rip but is not the guest's doing). */
    cmpq $11, 8(%rsp)
    jb 3f
    cmpq $13, 8(%rsp)
    ja 3f
    pushq %rbx
    movq 56(%rsp), %rbx                 /* the faulting iretq's rsp: the guest's frame */
    movq 0(%rbx), %rax
    movq %rax, 32(%rsp)                 /* rip */
    movq 8(%rbx), %rax
    movq %rax, 40(%rsp)                 /* cs */
    movq 16(%rbx), %rax
    movq %rax, 48(%rsp)                 /* rflags */
    movq 24(%rbx), %rax
    movq %rax, 56(%rsp)                 /* rsp */
    movq 32(%rbx), %rax
    movq %rax, 64(%rsp)                 /* ss */
    popq %rbx
    popq %rax
    orq $IRET_FAULT, 0(%rsp)            /* vector */
    jmp .Lfrom_guest
3:  popq %rax
    jmp 1b

.macro EXC_NOERR n
exc_\n:
    pushq $0
    pushq $\n
    jmp exception_common
.endm

.macro EXC_ERR n
exc_\n:
    pushq $\n
    jmp exception_common
.endm

    EXC_NOERR 0
/* #DB runs on its own IST stack (idt.rs). In ring 0 it stays there: exception_entry only
 * resets DR6 and returns, touching no per-CPU data (GS may still be the guest's, on the
 * first instruction of syscall_entry). From a guest, its frame moves to the hypervisor
 * stack top, where every other entry from a guest puts its frame (the scheduler may switch
 * vCPUs through it), and goes the common way. */
exc_1:
    pushq $0
    pushq $1
    pushq $2
    popfq
    testb $3, 24(%rsp)
    jz exception_common
    swapgs
    pushq %rax
    pushq %rbx
    movq %gs:8, %rbx
    subq $56, %rbx                      /* vector, error, rip, cs, rflags, rsp, ss */
    movq 16(%rsp), %rax
    movq %rax, 0(%rbx)
    movq 24(%rsp), %rax
    movq %rax, 8(%rbx)
    movq 32(%rsp), %rax
    movq %rax, 16(%rbx)
    movq 40(%rsp), %rax
    movq %rax, 24(%rbx)
    movq 48(%rsp), %rax
    movq %rax, 32(%rbx)
    movq 56(%rsp), %rax
    movq %rax, 40(%rbx)
    movq 64(%rsp), %rax
    movq %rax, 48(%rbx)
    movq 8(%rsp), %rax                  /* the guest's rax */
    xchgq %rbx, %rsp                    /* onto the hypervisor stack */
    movq (%rbx), %rbx                   /* the guest's rbx, from the IST stack */
    jmp .Lguest_frame_ready
    EXC_NOERR 2
    EXC_NOERR 3
    EXC_NOERR 4
    EXC_NOERR 5
    EXC_NOERR 6
    EXC_NOERR 7
    EXC_ERR 8
    EXC_NOERR 9
    EXC_ERR 10
    EXC_ERR 11
    EXC_ERR 12
    EXC_ERR 13
    EXC_ERR 14
    EXC_NOERR 15
    EXC_NOERR 16
    EXC_ERR 17
    EXC_NOERR 18
    EXC_NOERR 19
    EXC_NOERR 20
    EXC_ERR 21
    EXC_NOERR 22
    EXC_NOERR 23
    EXC_NOERR 24
    EXC_NOERR 25
    EXC_NOERR 26
    EXC_NOERR 27
    EXC_NOERR 28
    EXC_ERR 29
    EXC_ERR 30
    EXC_NOERR 31
    /* 32..47: the legacy PIC's lines (all masked; a spurious one is counted and ignored). */
    EXC_NOERR 32
    EXC_NOERR 33
    EXC_NOERR 34
    EXC_NOERR 35
    EXC_NOERR 36
    EXC_NOERR 37
    EXC_NOERR 38
    EXC_NOERR 39
    EXC_NOERR 40
    EXC_NOERR 41
    EXC_NOERR 42
    EXC_NOERR 43
    EXC_NOERR 44
    EXC_NOERR 45
    EXC_NOERR 46
    EXC_NOERR 47

    /* The local APIC's timer, the reschedule and shootdown IPIs, and spurious vectors. */
    .globl exc_240
    .globl exc_241
    .globl exc_242
    .globl exc_255
    EXC_NOERR 240
    EXC_NOERR 241
    EXC_NOERR 242
    EXC_NOERR 255

    .section .rodata.exception_stubs, "a"
    .balign 8
    .globl exception_stubs
exception_stubs:
    .quad exc_0, exc_1, exc_2, exc_3, exc_4, exc_5, exc_6, exc_7
    .quad exc_8, exc_9, exc_10, exc_11, exc_12, exc_13, exc_14, exc_15
    .quad exc_16, exc_17, exc_18, exc_19, exc_20, exc_21, exc_22, exc_23
    .quad exc_24, exc_25, exc_26, exc_27, exc_28, exc_29, exc_30, exc_31
    .quad exc_32, exc_33, exc_34, exc_35, exc_36, exc_37, exc_38, exc_39
    .quad exc_40, exc_41, exc_42, exc_43, exc_44, exc_45, exc_46, exc_47

/* guest_copy(dst, src, len) -> 0, or 1 if a page fault hit the copy (the #PF handler
 * moves rip from guest_copy_fault_ip or guest_copy_fault_ip_tail to guest_copy_fixup).
 * Whole quadwords first, then the tail bytes, as Xen's __copy_to_guest_ll: an emulated
 * `rep` costs per iteration, so a 40-byte argument takes 5 + 0 instead of 40. */
    .section .text.guest_copy, "ax"
    .globl guest_copy
    .globl guest_copy_fault_ip
    .globl guest_copy_fault_ip_tail
    .globl guest_copy_fixup
guest_copy:
    movq %rdx, %rcx
    shrq $3, %rcx
guest_copy_fault_ip:
    rep movsq
    movq %rdx, %rcx
    andq $7, %rcx
guest_copy_fault_ip_tail:
    rep movsb
    xorl %eax, %eax
    ret
guest_copy_fixup:
    movl $1, %eax
    ret
