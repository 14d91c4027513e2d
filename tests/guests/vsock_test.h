/* Shared by the vsock test guest (tests/guests/vsock_guest.c) and its host side
 * (tests/kvm/test_virtio_vsock.c): the modes, ports, and the byte stream both sides
 * generate and check. Header-only, freestanding. */
#ifndef VSOCK_TEST_H
#define VSOCK_TEST_H

#include <stddef.h>
#include <stdint.h>

#define VT_GUEST_CID 42u
#define VT_HOST_PORT 1234u      /* guest -> host: the host listens on <path>_1234 */
#define VT_SINK_PORT 1236u      /* guest -> host: a host listener that never reads */
#define VT_GUEST_PORT 5000u     /* host -> guest: the guest listens here */
#define VT_GUEST_SRC_PORT 40000u

/* guest_main(arg): arg = mode | (MiB << 8) | (seed << 32) */
#define VT_MODE_SEND 1      /* connect to VT_HOST_PORT, send MiB of the stream, close */
#define VT_MODE_RECV 2      /* accept on VT_GUEST_PORT, receive until SHUTDOWN */
#define VT_MODE_CREDIT 3    /* accept with a 4 KiB buffer; check the device keeps to it */
#define VT_MODE_HOSTILE 4   /* malformed packets, credit overrun, then a valid transfer */
#define VT_MODE_RESET 5     /* 64 KiB on a connection, device reset, then a fresh SEND */
#define VT_RESET_FIRST (64u << 10)

#define VT_SMALL_BUF 4096u

/* Exit codes: 0 success, else the step that failed. */
#define VT_OK 0

/* The stream: byte i is byte (i % 8) of splitmix64(seed + i / 8). */
static inline uint64_t vt_word(uint64_t seed, uint64_t k)
{
	uint64_t z = seed + (k + 1) * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct vt_stream {
	uint64_t seed;
	uint64_t pos;  /* bytes generated/checked so far */
	uint64_t fnv;  /* FNV-1a 64 of those bytes */
	uint64_t word; /* word pos / 8, valid when pos % 8 != 0 */
};

static inline void vt_stream_init(struct vt_stream *s, uint64_t seed)
{
	s->seed = seed;
	s->pos = 0;
	s->fnv = 0xcbf29ce484222325ull;
	s->word = 0;
}

static inline uint8_t vt_next(struct vt_stream *s)
{
	if (s->pos % 8 == 0)
		s->word = vt_word(s->seed, s->pos / 8);
	uint8_t b = (uint8_t)(s->word >> (8 * (s->pos % 8)));
	s->pos++;
	s->fnv = (s->fnv ^ b) * 0x100000001b3ull;
	return b;
}

static inline void vt_fill(struct vt_stream *s, uint8_t *dst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = vt_next(s);
}

/* Checks n received bytes; returns n, or the index of the first wrong byte. */
static inline size_t vt_check(struct vt_stream *s, const uint8_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (vt_next(s) != src[i])
			return i;
	return n;
}

/* FNV-1a 64 of a buffer, continuing from `h`. */
static inline uint64_t vt_fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

#endif
