/* Instructions KVM's emulator may fail on at CPL 0 (tests/kvm/test_fixups.c): int3 and
 * int $0x21 with guest handlers, fwait; then popcnt, which on nested-PVM hosts is an
 * emulation failure the library cannot complete (on bare metal it just runs).
 *   report(0x1000 | int3 count << 4 | int 0x21 count)   after int3, int $0x21, fwait
 *   report(0x2000 | popcnt(0xf0f0f0f0))                 after popcnt
 *   return 0x600d */
#include "rt/rt.h"

volatile uint64_t bp_count, bp_rip, int21_count, int21_rip;

GUEST_INTERRUPT void bp_handler(struct interrupt_frame *f)
{
	bp_count++;
	bp_rip = f->ip;
}

GUEST_INTERRUPT void int21_handler(struct interrupt_frame *f)
{
	int21_count++;
	int21_rip = f->ip;
}

int guest_main(uint64_t arg)
{
	(void)arg;
	__asm__ volatile("int3\n.globl after_int3\nafter_int3:" ::: "memory");
	__asm__ volatile("int $0x21\n.globl after_int21\nafter_int21:" ::: "memory");
	__asm__ volatile(".globl fwait_insn\nfwait_insn: fwait" ::: "memory");
	report(0x1000u | (uint32_t)bp_count << 4 | (uint32_t)int21_count);
	uint64_t n;
	__asm__ volatile(".globl popcnt_insn\npopcnt_insn: popcntq %1, %0"
			 : "=r"(n) : "r"(0xf0f0f0f0ull) : "cc");
	report(0x2000u | (uint32_t)n);
	return 0x600d;
}
