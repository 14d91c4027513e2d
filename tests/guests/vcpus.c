/* Several vCPUs (tests/kvm/test_vcpus.c, test_lifecycle.c). `arg` is the role:
 *  0 counts the primes below 50000; 1 sums the Collatz stopping times of 1..20000.
 *    Each then raises its flag and spins (at CPL 3) until it sees the other's flag, so
 *    both finish only if they run at the same time; returns its result.
 *  2 spins until the host stores a non-zero value in `release`; returns that value.
 *  3 loops forever on port writes to an unclaimed port (exits without end). */
#include "rt/rt.h"

volatile uint32_t flags[2];
volatile uint32_t release;

static uint32_t count_primes(uint32_t below)
{
	uint32_t n = 0;
	for (uint32_t i = 2; i < below; i++) {
		bool prime = true;
		for (uint32_t d = 2; d * d <= i; d++) {
			if (i % d == 0) {
				prime = false;
				break;
			}
		}
		n += prime;
	}
	return n;
}

static uint32_t collatz_total(uint32_t upto)
{
	uint32_t total = 0;
	for (uint32_t i = 1; i <= upto; i++) {
		uint64_t x = i;
		while (x != 1) {
			x = (x & 1) ? 3 * x + 1 : x / 2;
			total++;
		}
	}
	return total;
}

int guest_main(uint64_t arg)
{
	uint32_t r;
	switch (arg) {
	case 0:
	case 1:
		r = arg == 0 ? count_primes(50000) : collatz_total(20000);
		flags[arg] = 1;
		while (!flags[1 - arg])
			cpu_relax();
		return (int)r;
	case 2:
		while (!release)
			cpu_relax();
		return (int)release;
	case 3:
		for (uint8_t i = 0;; i++)
			outb(0x300, i);
	}
	return -1;
}
