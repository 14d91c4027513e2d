/* Exceptions (tests/kvm/test_exceptions.c). `arg` picks one:
 *   0 #UD (ud2)  1 #DE (div by 0)  2 #PF (write above the identity map)
 *   3 #GP (non-canonical load)  4 #BP (int3)
 *   5 two ud2s handled by the guest's own #UD handler (installed by the host on vector 6),
 *     which counts, records the RIP and skips the instruction; returns the count.
 * The faulting instructions carry global labels so the host can compare RIPs. */
#include "rt/rt.h"

volatile uint64_t ud_count;
volatile uint64_t ud_last_rip;

GUEST_INTERRUPT void ud_handler(struct interrupt_frame *f)
{
	ud_count++;
	ud_last_rip = f->ip;
	frame_set_ip(f, f->ip + 2); /* ud2 is 0f 0b */
}

int guest_main(uint64_t arg)
{
	switch (arg) {
	case 0:
		__asm__ volatile(".globl ud_insn\nud_insn: ud2" ::: "memory");
		break;
	case 1:
		__asm__ volatile("xorl %%ecx, %%ecx\n"
				 ".globl de_insn\nde_insn: divl %%ecx"
				 ::: "eax", "ecx", "edx", "memory");
		break;
	case 2:
		/* 256 GiB: PML4 entry 0, PDPT entry 256, beyond any identity map (<= 64 GiB). */
		__asm__ volatile(".globl pf_insn\npf_insn: movb $1, (%0)"
				 :: "r"(0x4000000000ull) : "memory");
		break;
	case 3:
		__asm__ volatile(".globl gp_insn\ngp_insn: movq (%0), %%rax"
				 :: "r"(0x8000000000000000ull) : "rax", "memory");
		break;
	case 4:
		__asm__ volatile("int3\n.globl bp_after\nbp_after:" ::: "memory");
		break;
	case 5:
		__asm__ volatile(".globl ud_a\nud_a: ud2" ::: "memory");
		__asm__ volatile(".globl ud_b\nud_b: ud2" ::: "memory");
		return (int)ud_count;
	}
	return 0xbad;
}
