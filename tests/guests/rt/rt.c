/* The out-of-line part of the guest runtime: console output, exit, mem* functions
 * (the compiler may emit calls to them even in freestanding code). */
#include "rt.h"

void exit(uint32_t code)
{
	for (;;) {
		report(code);
		cpu_relax();
	}
}

void putc(char c) { outb(GUEST_CONSOLE_PORT, (uint8_t)c); }

void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

void put_dec(uint64_t v)
{
	char buf[21];
	int i = sizeof buf;
	buf[--i] = 0;
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	puts(&buf[i]);
}

void put_hex(uint64_t v)
{
	char buf[19];
	int i = sizeof buf;
	buf[--i] = 0;
	do {
		buf[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	buf[--i] = 'x';
	buf[--i] = '0';
	puts(&buf[i]);
}

void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	if (p < q) {
		while (n--)
			*p++ = *q++;
	} else {
		while (n--)
			p[n] = q[n];
	}
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}
