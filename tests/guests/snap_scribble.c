/* Snapshot reset tests (tests/kvm/test_snapshot_reset.c, test_snapshot_clone.c): a CPL-3
 * guest that serves "calls". Each call starts at report(1) (the host snapshots or resets
 * the VM right after it) and reads its job from cfg_*: it writes one 8-byte word into
 * each of cfg_pages pseudo-random pages of [cfg_start, cfg_start + cfg_len) (xorshift64
 * from cfg_seed, page index = value % pages, the word at offset (value >> 32) % 512 * 8,
 * value = the xorshift state), bumps `calls`, records its TSC, and ends with report(2).
 * A reset must make every such write (and the host's cfg writes) disappear. */
#include "rt/rt.h"

volatile uint64_t cfg_seed, cfg_pages, cfg_start, cfg_len;
volatile uint64_t calls, tsc_at_call;

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

int guest_main(uint64_t arg)
{
	(void)arg;
	for (;;) {
		report(1);
		tsc_at_call = rdtsc();
		uint64_t s = cfg_seed, n = cfg_pages, start = cfg_start, pages = cfg_len / 4096;
		for (uint64_t i = 0; i < n && pages; i++) {
			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			volatile uint64_t *p = (volatile uint64_t *)(start + (s % pages) * 4096 + ((s >> 32) % 512) * 8);
			*p = s;
		}
		calls = calls + 1;
		report(2);
	}
}
