/* The guest of examples/hello.c (and tests/kvm/test_hello_example.c), at CPL 3.
 * The host puts a buffer at INPUT: a u32 length (at most 4096) then the bytes. The guest
 * prints the first 20 primes and the CRC-32 (IEEE 802.3, as zlib's crc32) of the buffer
 * on the console, and exits with the CRC. */
#include "rt/rt.h"

#define INPUT 0x400000ull
#define MAX_LEN 4096u

static uint32_t crc32(const volatile uint8_t *p, uint32_t n)
{
	uint32_t c = 0xffffffffu;
	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & -(c & 1));
	}
	return ~c;
}

int guest_main(uint64_t arg)
{
	(void)arg;
	puts("primes:");
	int found = 0;
	for (uint32_t i = 2; found < 20; i++) {
		uint32_t d = 2;
		while (d * d <= i && i % d)
			d++;
		if (d * d > i) {
			putc(' ');
			put_dec(i);
			found++;
		}
	}
	uint32_t len = *(volatile uint32_t *)INPUT;
	if (len > MAX_LEN)
		len = MAX_LEN;
	uint32_t crc = crc32((const volatile uint8_t *)(INPUT + 4), len);
	puts("\ncrc32 of ");
	put_dec(len);
	puts(" bytes: ");
	put_hex(crc);
	putc('\n');
	return (int)crc;
}
