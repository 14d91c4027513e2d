/* CPUID as the guest sees it (tests/kvm/test_cpu_platform.c). The host writes up to
 * CPUID_MAX_QUERIES (leaf, sub-leaf) pairs into `cpuid_query` and their number into
 * `cpuid_nquery`; the guest executes CPUID for each, stores EAX, EBX, ECX, EDX in
 * `cpuid_result`, prints each line "leaf.sub: eax ebx ecx edx" on the console and
 * returns CPUID_DONE | number of queries answered. Runs at CPL 3 or CPL 0 (CPUID is
 * allowed at both). */
#include "rt/rt.h"

#define CPUID_MAX_QUERIES 16
#define CPUID_DONE 0xc1d00000u

struct cpuid_query {
	uint32_t leaf, sub;
};

volatile uint32_t cpuid_nquery;
volatile struct cpuid_query cpuid_query[CPUID_MAX_QUERIES];
volatile uint32_t cpuid_result[CPUID_MAX_QUERIES][4];

int guest_main(uint64_t arg)
{
	(void)arg;
	uint32_t n = cpuid_nquery;
	if (n > CPUID_MAX_QUERIES)
		return 0xbad;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t a, b, c, d;
		__asm__ volatile("cpuid"
				 : "=a"(a), "=b"(b), "=c"(c), "=d"(d)
				 : "a"(cpuid_query[i].leaf), "c"(cpuid_query[i].sub));
		cpuid_result[i][0] = a;
		cpuid_result[i][1] = b;
		cpuid_result[i][2] = c;
		cpuid_result[i][3] = d;
		put_hex(cpuid_query[i].leaf);
		putc('.');
		put_dec(cpuid_query[i].sub);
		puts(": ");
		put_hex(a);
		putc(' ');
		put_hex(b);
		putc(' ');
		put_hex(c);
		putc(' ');
		put_hex(d);
		putc('\n');
	}
	return (int)(CPUID_DONE | n);
}
