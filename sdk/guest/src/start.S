/* libvmm guest SDK: the entry point and the call loop. The host starts the vCPU at
 * _start (ELF entry) at CPL 3 (or 0) with paging on. runtime.c explains why the loop is
 * here: the vCPU's state at each DONE exit, and the FPU state each call starts from, are
 * fixed by this code. */
#define GUEST_PORT 0xf4          /* VMM_GUEST_PORT (runtime.c checks these) */
#define GUEST_EXIT_DONE 0x5b0d0001 /* VMM_GUEST_EXIT_DONE */

	.section .text.vmm_start, "ax"
	.globl _start
	.type _start, @function
_start:
	leaq __vmm_stack_top(%rip), %rsp /* the stack the linker script reserves */
	xorl %ebp, %ebp                  /* end of frame-pointer chains */
	call vmm_guest_runtime_init      /* init, up to the first DONE */
.Lloop:
	/* The state of every DONE exit (the host compares it with the snapshot's). */
	leaq __vmm_stack_top(%rip), %rsp
	xorl %ebx, %ebx
	xorl %ecx, %ecx
	xorl %edi, %edi
	xorl %ebp, %ebp
	xorl %r8d, %r8d
	xorl %r9d, %r9d
	xorl %r10d, %r10d
	xorl %r11d, %r11d
	xorl %r12d, %r12d
	xorl %r13d, %r13d
	xorl %r14d, %r14d
	xorl %r15d, %r15d
	pushq vmm_guest_rt_rflags(%rip)  /* init's IF and IOPL, every other flag clear */
	popfq
	movl vmm_guest_rt_clean(%rip), %esi
	movl $GUEST_EXIT_DONE, %eax
	movl $GUEST_PORT, %edx
	outl %eax, %dx
	/* The host has written the next call. */
	call vmm_guest_runtime_fpu_reset
	call vmm_guest_runtime_call
	jmp .Lloop
	.size _start, . - _start

/* The FPU state every call starts from (see runtime.c); vmm_guest_rt_fpu says which
 * parts exist (0 at CPL 0: left alone). Clobbers only FPU/SSE/AVX state and flags. */
	.type vmm_guest_runtime_fpu_reset, @function
vmm_guest_runtime_fpu_reset:
	testb $1, vmm_guest_rt_fpu(%rip)
	jz 9f
	/* x87: FNINIT empties the stack but keeps the data registers' bits (FXSAVE shows
	 * them): overwrite all eight with zeros, then initialize again. */
	fninit
	fldz
	fldz
	fldz
	fldz
	fldz
	fldz
	fldz
	fldz
	fninit
	fldcw vmm_guest_rt_fcw(%rip)
	ldmxcsr vmm_guest_rt_mxcsr(%rip)
	testb $2, vmm_guest_rt_fpu(%rip)
	jz 1f
	vzeroall                         /* XMM/YMM (and ZMM) 0-15, whole */
	testb $4, vmm_guest_rt_fpu(%rip)
	jz 9f
	kxorw %k0, %k0, %k0
	kxorw %k1, %k1, %k1
	kxorw %k2, %k2, %k2
	kxorw %k3, %k3, %k3
	kxorw %k4, %k4, %k4
	kxorw %k5, %k5, %k5
	kxorw %k6, %k6, %k6
	kxorw %k7, %k7, %k7
	vpxord %zmm16, %zmm16, %zmm16
	vpxord %zmm17, %zmm17, %zmm17
	vpxord %zmm18, %zmm18, %zmm18
	vpxord %zmm19, %zmm19, %zmm19
	vpxord %zmm20, %zmm20, %zmm20
	vpxord %zmm21, %zmm21, %zmm21
	vpxord %zmm22, %zmm22, %zmm22
	vpxord %zmm23, %zmm23, %zmm23
	vpxord %zmm24, %zmm24, %zmm24
	vpxord %zmm25, %zmm25, %zmm25
	vpxord %zmm26, %zmm26, %zmm26
	vpxord %zmm27, %zmm27, %zmm27
	vpxord %zmm28, %zmm28, %zmm28
	vpxord %zmm29, %zmm29, %zmm29
	vpxord %zmm30, %zmm30, %zmm30
	vpxord %zmm31, %zmm31, %zmm31
	jmp 9f
1:	pxor %xmm0, %xmm0
	pxor %xmm1, %xmm1
	pxor %xmm2, %xmm2
	pxor %xmm3, %xmm3
	pxor %xmm4, %xmm4
	pxor %xmm5, %xmm5
	pxor %xmm6, %xmm6
	pxor %xmm7, %xmm7
	pxor %xmm8, %xmm8
	pxor %xmm9, %xmm9
	pxor %xmm10, %xmm10
	pxor %xmm11, %xmm11
	pxor %xmm12, %xmm12
	pxor %xmm13, %xmm13
	pxor %xmm14, %xmm14
	pxor %xmm15, %xmm15
9:	ret
	.size vmm_guest_runtime_fpu_reset, . - vmm_guest_runtime_fpu_reset

	.section .note.GNU-stack, "", @progbits
