/* Snapshot tests (tests/kvm/test_snapshot_*.c): a CPL-3 guest that counts.
 *
 * Before the loop it masks the legacy PIC, programs PIT channel 0 (mode 2, count
 * 0x1234; its interrupt stays masked), loads recognisable patterns into xmm0-15 and
 * the x87 control word, and writes `fill_len` bytes of a non-zero pattern from
 * `fill_start` (the host sets both, to make guest memory non-sparse). Then it counts
 * forever: each iteration stores the counter and a running hash to memory, and every
 * `every` iterations it reports counter / every on the exit port. With several vCPUs, the
 * host passes each its index (0-3) as the argument: each counts in counter[i], hash[i]
 * (and only vCPU 0 fills memory). Counter and hash live
 * in registers between stores, so a restore that lost or changed any register state, or
 * skipped or repeated an iteration, shows up in the hash the host recomputes. */
#include "rt/rt.h"

volatile uint64_t cfg_every = 1u << 20;
volatile uint64_t cfg_fill_start, cfg_fill_len;

volatile uint64_t counter[4], hash[4];

/* The values xmm<i> holds: byte j of xmm i is 16 * i + j + 1. */
static const uint8_t xmm_pattern[16][16] __attribute__((aligned(16))) = {
#define ROW(i) { 16*i+1, 16*i+2, 16*i+3, 16*i+4, 16*i+5, 16*i+6, 16*i+7, 16*i+8, 16*i+9, 16*i+10, \
		 16*i+11, 16*i+12, 16*i+13, 16*i+14, 16*i+15, (16*i+16) & 0xff }
	ROW(0), ROW(1), ROW(2), ROW(3), ROW(4), ROW(5), ROW(6), ROW(7),
	ROW(8), ROW(9), ROW(10), ROW(11), ROW(12), ROW(13), ROW(14), ROW(15),
#undef ROW
};

static void load_xmm(void)
{
	__asm__ volatile(
		"movdqa 0x00(%0), %%xmm0\n\tmovdqa 0x10(%0), %%xmm1\n\t"
		"movdqa 0x20(%0), %%xmm2\n\tmovdqa 0x30(%0), %%xmm3\n\t"
		"movdqa 0x40(%0), %%xmm4\n\tmovdqa 0x50(%0), %%xmm5\n\t"
		"movdqa 0x60(%0), %%xmm6\n\tmovdqa 0x70(%0), %%xmm7\n\t"
		"movdqa 0x80(%0), %%xmm8\n\tmovdqa 0x90(%0), %%xmm9\n\t"
		"movdqa 0xa0(%0), %%xmm10\n\tmovdqa 0xb0(%0), %%xmm11\n\t"
		"movdqa 0xc0(%0), %%xmm12\n\tmovdqa 0xd0(%0), %%xmm13\n\t"
		"movdqa 0xe0(%0), %%xmm14\n\tmovdqa 0xf0(%0), %%xmm15\n\t"
		: : "r"(xmm_pattern) : "memory");
	/* x87 control word: round toward zero, all exceptions masked (default 0x37f). */
	uint16_t fcw = 0xf7f;
	__asm__ volatile("fldcw %0" : : "m"(fcw));
}

int guest_main(uint64_t arg)
{
	unsigned cpu = arg & 3;
	outb(0x21, 0xff); /* mask both PICs: nothing may interrupt the count */
	outb(0xa1, 0xff);
	outb(0x43, 0x34); /* PIT channel 0: lobyte/hibyte, mode 2 */
	outb(0x40, 0x34);
	outb(0x40, 0x12);
	load_xmm();
	volatile uint64_t *p = (volatile uint64_t *)cfg_fill_start;
	for (uint64_t i = 0; cpu == 0 && i < cfg_fill_len / 8; i++)
		p[i] = (cfg_fill_start + 8 * i) | 1;
	uint64_t every = cfg_every, c = 0, h = 0;
	for (;;) {
		c++;
		h = (h ^ c) * 0x100000001b3ull;
		counter[cpu] = c;
		hash[cpu] = h;
		if (c % every == 0)
			report((uint32_t)(c / every));
	}
}
