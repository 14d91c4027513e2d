/* Guest entry point: the host sets RIP to _start, RSP to the stack top and RDI to the
 * argument. Calls guest_main(rdi) and reports its return value on the exit port; if the
 * host runs the vCPU again after that, it spins. */
	.section .text.start, "ax"
	.globl _start
	.type _start, @function
_start:
	andq $-16, %rsp          /* SysV ABI: 16-byte aligned before the call */
	xorl %ebp, %ebp
	call guest_main
	movw $0xf4, %dx
	outl %eax, %dx
1:	pause
	jmp 1b
	.size _start, . - _start

	.section .note.GNU-stack, "", @progbits
