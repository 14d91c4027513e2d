/* Guest memory (tests/kvm/test_memory.c), one phase per report:
 *  1 sum of the 16384 u32s the host wrote at IN          -> report(sum)
 *  2 writes a pattern of 16384 u32s at OUT                -> report(2)
 *  3 writes one byte in pages 3, 4, 100 of the DIRTY region -> report(3)
 *  4 writes one byte in pages 7-10 of the DIRTY region    -> report(4)
 *  5 reads the u32 at RO + 0x10 (a read-only region)      -> report(value)
 *  6 writes 0x12345678 there, reads it back               -> report(value)
 * and finally returns 0x600d. */
#include "rt/rt.h"

#define IN 0x1000000ull
#define OUT 0x1100000ull
#define WORDS 16384
#define DIRTY 0x2000000ull
#define RO 0x3000000ull

static void touch(uint64_t page)
{
	*(volatile uint8_t *)(DIRTY + page * 4096 + 123) = (uint8_t)page;
}

int guest_main(uint64_t arg)
{
	(void)arg;
	const volatile uint32_t *in = (const volatile uint32_t *)IN;
	uint32_t sum = 0;
	for (uint32_t i = 0; i < WORDS; i++)
		sum += in[i];
	report(sum);

	volatile uint32_t *out = (volatile uint32_t *)OUT;
	for (uint32_t i = 0; i < WORDS; i++)
		out[i] = i * 2654435761u ^ 0x5a5a5a5au;
	report(2);

	touch(3);
	touch(4);
	touch(100);
	report(3);

	for (uint64_t p = 7; p <= 10; p++)
		touch(p);
	report(4);

	volatile uint32_t *ro = (volatile uint32_t *)(RO + 0x10);
	report(*ro);
	*ro = 0x12345678;
	report(*ro);
	return 0x600d;
}
