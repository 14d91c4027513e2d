/* virtio-net without a transport: the TX and RX paths (lib/devices/net_tx.c, net_rx.c)
 * on a standalone memory map, with this test playing the driver by writing the split
 * ring itself. Covers frame gathering, malformed chains, mergeable delivery across
 * several buffers and across notifications, the full-RX backlog (CVE-2020-16843) and
 * the option checks of vmm_virtio_net_create. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <libvmm/libvmm.h>
#include "devices/net_internal.h"

#define RAM_LEN (4u << 20)
#define DESC_GPA 0x0000u
#define AVAIL_GPA 0x2000u
#define USED_GPA 0x4000u
#define BUF_GPA 0x10000u
#define QSIZE 64u

struct drv {
	vmm_mem *mem;
	vmm_virtq *q;
	uint8_t *ram;
	uint16_t size;
	uint16_t avail_idx, next_desc, used_seen;
	uint32_t buf_next; /* bump allocator for buffers */
};

struct sink {
	unsigned frames;
	size_t lens[64];
	uint8_t data[64][2048];
};

static void sink_tx(void *ctx, const void *frame, size_t len)
{
	struct sink *s = ctx;
	if (s->frames < 64) {
		s->lens[s->frames] = len;
		memcpy(s->data[s->frames], frame, len < 2048 ? len : 2048);
	}
	s->frames++;
}

struct fixture {
	struct drv d;
	struct vmm_net *n;
	struct sink sink;
};

static void drv_init(struct drv *d, uint16_t size)
{
	memset(d, 0, sizeof *d);
	assert_int_equal(vmm_mem_create(&d->mem), 0);
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.len = RAM_LEN;
	o.backing = VMM_MEM_ANON;
	assert_int_equal(vmm_mem_add_region(d->mem, &o), 0);
	void *host;
	assert_int_equal(vmm_mem_translate(d->mem, 0, RAM_LEN, true, &host), 0);
	d->ram = host;
	d->size = size;
	d->buf_next = BUF_GPA;
	assert_int_equal(vmm_virtq_create(&d->q, 256), 0);
	assert_int_equal(vmm_virtq_set_size(d->q, size), 0);
	assert_int_equal(vmm_virtq_set_addrs(d->q, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	vmm_virtq_set_features(d->q, false, false);
	assert_int_equal(vmm_virtq_enable(d->q, d->mem), 0);
}

static void drv_free(struct drv *d)
{
	vmm_virtq_destroy(d->q);
	vmm_mem_destroy(d->mem);
}

static uint32_t drv_alloc(struct drv *d, uint32_t len)
{
	uint32_t gpa = d->buf_next;
	d->buf_next += (len + 63u) & ~63u;
	assert_true(d->buf_next < RAM_LEN);
	return gpa;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

struct seg {
	uint32_t gpa, len;
	bool write;
};

/* Adds a chain of n descriptors and publishes it. Returns the head. */
static uint16_t drv_add(struct drv *d, const struct seg *s, unsigned n)
{
	uint16_t head = d->next_desc;
	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % d->size);
		uint8_t *desc = d->ram + DESC_GPA + 16u * idx;
		uint64_t addr = s[i].gpa;
		uint16_t flags = (uint16_t)((s[i].write ? 2 : 0) | (i + 1 < n ? 1 : 0));
		uint16_t next = (uint16_t)((idx + 1) % d->size);
		memcpy(desc, &addr, 8);
		memcpy(desc + 8, &s[i].len, 4);
		memcpy(desc + 12, &flags, 2);
		memcpy(desc + 14, &next, 2);
	}
	d->next_desc = (uint16_t)((head + n) % d->size);
	put16(d->ram + AVAIL_GPA + 4 + 2u * (d->avail_idx % d->size), head);
	d->avail_idx++;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	put16(d->ram + AVAIL_GPA + 2, d->avail_idx);
	return head;
}

static uint16_t used_idx(struct drv *d) { return get16(d->ram + USED_GPA + 2); }

/* The next used element: head and length. */
static void drv_used(struct drv *d, uint16_t *head, uint32_t *len)
{
	assert_true(used_idx(d) != d->used_seen);
	const uint8_t *e = d->ram + USED_GPA + 4 + 8u * (d->used_seen % d->size);
	*head = (uint16_t)get32(e);
	*len = get32(e + 4);
	d->used_seen++;
}

static void frame_fill(uint8_t *f, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		f[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 8));
}

static int setup_opts(void **state, uint32_t backlog)
{
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	drv_init(&f->d, QSIZE);
	vmm_virtio_net_opts o = VMM_VIRTIO_NET_OPTS_INIT;
	o.backend = VMM_NET_CALLBACK;
	o.tx = sink_tx;
	o.ctx = &f->sink;
	o.rx_backlog = backlog;
	assert_int_equal(vmm_net_new(&f->n, &o), 0);
	*state = f;
	return 0;
}

static int setup(void **state) { return setup_opts(state, 0); }
static int setup_small_backlog(void **state) { return setup_opts(state, 4); }

static int teardown(void **state)
{
	struct fixture *f = *state;
	vmm_net_free(f->n);
	drv_free(&f->d);
	free(f);
	return 0;
}

/* ---- TX ---------------------------------------------------------------------------- */

static void test_tx_frames(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[300];
	frame_fill(frame, sizeof frame, 1);

	/* Header alone, then the frame in two pieces. */
	uint32_t h = drv_alloc(&f->d, NET_HDR_LEN), a = drv_alloc(&f->d, 100), b = drv_alloc(&f->d, 200);
	memset(f->d.ram + h, 0, NET_HDR_LEN);
	memcpy(f->d.ram + a, frame, 100);
	memcpy(f->d.ram + b, frame + 100, 200);
	uint16_t h1 = drv_add(&f->d, (struct seg[]){ { h, NET_HDR_LEN, false }, { a, 100, false }, { b, 200, false } }, 3);
	/* Header and frame in one buffer. */
	uint32_t c = drv_alloc(&f->d, NET_HDR_LEN + 60);
	memset(f->d.ram + c, 0, NET_HDR_LEN);
	frame_fill(f->d.ram + c + NET_HDR_LEN, 60, 2);
	uint16_t h2 = drv_add(&f->d, (struct seg[]){ { c, NET_HDR_LEN + 60, false } }, 1);

	unsigned pushed = 0;
	assert_int_equal(vmm_net_tx_drain(f->n, f->d.q, f->d.mem, 16, &pushed), 0);
	assert_int_equal(pushed, 2);
	assert_int_equal(f->sink.frames, 2);
	assert_int_equal(f->sink.lens[0], 300);
	assert_memory_equal(f->sink.data[0], frame, 300);
	assert_int_equal(f->sink.lens[1], 60);
	uint8_t want[60];
	frame_fill(want, 60, 2);
	assert_memory_equal(f->sink.data[1], want, 60);

	uint16_t head;
	uint32_t len;
	drv_used(&f->d, &head, &len);
	assert_int_equal(head, h1);
	assert_int_equal(len, 0);
	drv_used(&f->d, &head, &len);
	assert_int_equal(head, h2);
	assert_int_equal(f->n->stats.tx_frames, 2);
	assert_int_equal(f->n->stats.tx_bytes, 360);
	assert_int_equal(f->n->stats.tx_errors, 0);
}

static void test_tx_malformed(void **state)
{
	struct fixture *f = *state;
	uint32_t small = drv_alloc(&f->d, 8), hdr = drv_alloc(&f->d, NET_HDR_LEN + 10);
	uint32_t big = drv_alloc(&f->d, 40000), w = drv_alloc(&f->d, 100);

	drv_add(&f->d, (struct seg[]){ { small, 8, false } }, 1);                /* no header */
	drv_add(&f->d, (struct seg[]){ { hdr, NET_HDR_LEN, false } }, 1);        /* header only */
	drv_add(&f->d, (struct seg[]){ { hdr, NET_HDR_LEN + 10, false } }, 1);   /* runt */
	/* 12 + 80000 bytes: over 65535 (the same buffer twice is fine for reading). */
	drv_add(&f->d, (struct seg[]){ { hdr, NET_HDR_LEN, false }, { big, 40000, false }, { big, 40000, false } }, 3);
	drv_add(&f->d, (struct seg[]){ { w, 100, true } }, 1);                   /* writable only */
	/* Exactly the largest frame is fine: 12 + 65535. */
	drv_add(&f->d, (struct seg[]){ { hdr, NET_HDR_LEN, false }, { big, 40000, false }, { big, 25535, false } }, 3);

	unsigned pushed = 0;
	assert_int_equal(vmm_net_tx_drain(f->n, f->d.q, f->d.mem, 64, &pushed), 0);
	assert_int_equal(pushed, 6);
	assert_int_equal(f->sink.frames, 1);
	assert_int_equal(f->sink.lens[0], 65535);
	assert_int_equal(f->n->stats.tx_errors, 5);
	assert_int_equal(f->n->stats.tx_frames, 1);
	/* Every chain came back, malformed or not. */
	assert_int_equal(used_idx(&f->d), 6);
}

static void test_tx_budget(void **state)
{
	struct fixture *f = *state;
	uint32_t b = drv_alloc(&f->d, NET_HDR_LEN + 64);
	for (int i = 0; i < 10; i++)
		drv_add(&f->d, (struct seg[]){ { b, NET_HDR_LEN + 64, false } }, 1);
	unsigned pushed = 0;
	assert_int_equal(vmm_net_tx_drain(f->n, f->d.q, f->d.mem, 4, &pushed), 1); /* more left */
	assert_int_equal(pushed, 4);
	assert_int_equal(vmm_net_tx_drain(f->n, f->d.q, f->d.mem, 4, &pushed), 1);
	assert_int_equal(vmm_net_tx_drain(f->n, f->d.q, f->d.mem, 4, &pushed), 0);
	assert_int_equal(pushed, 10);
	assert_int_equal(f->sink.frames, 10);
}

static void test_tx_frame_direct(void **state)
{
	(void)state;
	vmm_virtq_chain *c = calloc(1, sizeof *c);
	uint8_t hdr_and_frame[NET_HDR_LEN + 20], out[64];
	size_t len = 99;
	assert_non_null(c);
	frame_fill(hdr_and_frame, sizeof hdr_and_frame, 3);
	c->n_out = 1;
	c->out_bytes = sizeof hdr_and_frame;
	c->segs[0] = (vmm_virtq_seg){ hdr_and_frame, sizeof hdr_and_frame, 0 };
	assert_int_equal(vmm_net_tx_frame(c, out, sizeof out, &len), 0);
	assert_int_equal(len, 20);
	assert_memory_equal(out, hdr_and_frame + NET_HDR_LEN, 20);
	/* A buffer too small for the frame. */
	assert_int_equal(vmm_net_tx_frame(c, out, 10, &len), -EMSGSIZE);
	assert_int_equal(len, 0);
	free(c);
}

/* ---- RX ---------------------------------------------------------------------------- */

static void check_hdr(const uint8_t *h, uint16_t num_buffers)
{
	uint8_t zero[10] = { 0 };
	assert_memory_equal(h, zero, 10); /* flags, gso, lengths, checksum fields */
	assert_int_equal(get16(h + 10), num_buffers);
}

static void test_rx_single(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[1000];
	frame_fill(frame, sizeof frame, 4);
	f->n->mrg = false;

	uint32_t b1 = drv_alloc(&f->d, 2048);
	uint16_t h1 = drv_add(&f->d, (struct seg[]){ { b1, 2048, true } }, 1);
	assert_int_equal(vmm_net_backlog_push(f->n, frame, sizeof frame, NULL), 0);
	unsigned pushed = 0;
	assert_int_equal(vmm_net_rx_deliver(f->n, f->d.q, f->d.mem, 16, &pushed), NET_RX_IDLE);
	assert_int_equal(pushed, 1);
	uint16_t head;
	uint32_t len;
	drv_used(&f->d, &head, &len);
	assert_int_equal(head, h1);
	assert_int_equal(len, NET_HDR_LEN + sizeof frame);
	check_hdr(f->d.ram + b1, 1);
	assert_memory_equal(f->d.ram + b1 + NET_HDR_LEN, frame, sizeof frame);

	/* Without mergeable buffers a frame that does not fit one chain is dropped. */
	uint32_t b2 = drv_alloc(&f->d, 512);
	drv_add(&f->d, (struct seg[]){ { b2, 512, true } }, 1);
	assert_int_equal(vmm_net_backlog_push(f->n, frame, sizeof frame, NULL), 0);
	assert_int_equal(vmm_net_rx_deliver(f->n, f->d.q, f->d.mem, 16, &pushed), NET_RX_IDLE);
	drv_used(&f->d, &head, &len);
	assert_int_equal(len, 0);
	assert_int_equal(f->n->stats.rx_frames, 1);
	assert_int_equal(f->n->stats.rx_bytes, sizeof frame);
	assert_int_equal(f->n->stats.rx_dropped, 1);
}

/* One frame over several mergeable buffers: consecutive used entries, num_buffers in
 * the first header, the bytes in order. Buffers are split into two descriptors each so
 * the header lands across a descriptor boundary too. */
static void test_rx_mergeable_spans(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[3000];
	frame_fill(frame, sizeof frame, 5);
	f->n->mrg = true;

	uint32_t b[4];
	uint16_t h[4];
	for (int i = 0; i < 4; i++) {
		b[i] = drv_alloc(&f->d, 1024);
		/* 11 + 1013 bytes: num_buffers straddles the two descriptors of chain 0. */
		h[i] = drv_add(&f->d, (struct seg[]){ { b[i], 11, true }, { b[i] + 11, 1013, true } }, 2);
	}
	assert_int_equal(vmm_net_backlog_push(f->n, frame, sizeof frame, NULL), 0);
	unsigned pushed = 0;
	assert_int_equal(vmm_net_rx_deliver(f->n, f->d.q, f->d.mem, 16, &pushed), NET_RX_IDLE);
	assert_int_equal(pushed, 3);

	uint8_t got[NET_HDR_LEN + 3000];
	size_t off = 0;
	for (int i = 0; i < 3; i++) {
		uint16_t head;
		uint32_t len;
		drv_used(&f->d, &head, &len);
		assert_int_equal(head, h[i]);
		assert_int_equal(len, i < 2 ? 1024 : NET_HDR_LEN + 3000 - 2048);
		memcpy(got + off, f->d.ram + b[i], len);
		off += len;
	}
	check_hdr(got, 3);
	assert_memory_equal(got + NET_HDR_LEN, frame, sizeof frame);
	assert_int_equal(f->n->stats.rx_frames, 1);
	/* The fourth buffer is still the driver's to fill next. */
	assert_int_equal(used_idx(&f->d), 3);
}

/* The guest runs out of buffers half-way through a frame: the chains filled so far are
 * held (nothing published), and the next notification with more buffers completes it. */
static void test_rx_mergeable_across_notifies(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[2500];
	frame_fill(frame, sizeof frame, 6);
	f->n->mrg = true;

	uint32_t b0 = drv_alloc(&f->d, 1000);
	uint16_t h0 = drv_add(&f->d, (struct seg[]){ { b0, 1000, true } }, 1);
	assert_int_equal(vmm_net_backlog_push(f->n, frame, sizeof frame, NULL), 0);
	unsigned pushed = 0;
	assert_int_equal(vmm_net_rx_deliver(f->n, f->d.q, f->d.mem, 16, &pushed), NET_RX_STALLED);
	assert_int_equal(pushed, 0);
	assert_int_equal(used_idx(&f->d), 0);

	uint32_t b1 = drv_alloc(&f->d, 1000), b2 = drv_alloc(&f->d, 1000);
	uint16_t h1 = drv_add(&f->d, (struct seg[]){ { b1, 1000, true } }, 1);
	uint16_t h2 = drv_add(&f->d, (struct seg[]){ { b2, 1000, true } }, 1);
	assert_int_equal(vmm_net_rx_deliver(f->n, f->d.q, f->d.mem, 16, &pushed), NET_RX_IDLE);
	assert_int_equal(pushed, 3);
	uint16_t head;
	uint32_t len;
	drv_used(&f->d, &head, &len);
	assert_int_equal(head, h0);
	assert_int_equal(len, 1000);
	check_hdr(f->d.ram + b0, 3);
	drv_used(&f->d, &head, &len);
	assert_int_equal(head, h1);
	assert_int_equal(len, 1000);
	drv_used(&f->d, &head, &len);
	assert_int_equal(head, h2);
	assert_int_equal(len, NET_HDR_LEN + 2500 - 2000);
	assert_memory_equal(f->d.ram + b0 + NET_HDR_LEN, frame, 988);
	assert_memory_equal(f->d.ram + b1, frame + 988, 1000);
	assert_memory_equal(f->d.ram + b2, frame + 1988, 512);
}

/* Buffers the device cannot use are handed back empty, before the frame's entries. */
static void test_rx_mergeable_unusable(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[100];
	frame_fill(frame, sizeof frame, 7);
	f->n->mrg = true;

	uint32_t tiny = drv_alloc(&f->d, 8), ro = drv_alloc(&f->d, 64), ok = drv_alloc(&f->d, 256);
	uint16_t ht = drv_add(&f->d, (struct seg[]){ { tiny, 8, true } }, 1);    /* < header */
	uint16_t hr = drv_add(&f->d, (struct seg[]){ { ro, 64, false } }, 1);     /* read-only */
	uint16_t ho = drv_add(&f->d, (struct seg[]){ { ok, 256, true } }, 1);
	assert_int_equal(vmm_net_backlog_push(f->n, frame, sizeof frame, NULL), 0);
	unsigned pushed = 0;
	assert_int_equal(vmm_net_rx_deliver(f->n, f->d.q, f->d.mem, 16, &pushed), NET_RX_IDLE);
	uint16_t head;
	uint32_t len;
	drv_used(&f->d, &head, &len);
	assert_int_equal(head, ht);
	assert_int_equal(len, 0);
	drv_used(&f->d, &head, &len);
	assert_int_equal(head, hr);
	assert_int_equal(len, 0);
	drv_used(&f->d, &head, &len);
	assert_int_equal(head, ho);
	assert_int_equal(len, NET_HDR_LEN + 100);
	check_hdr(f->d.ram + ok, 1);
	assert_memory_equal(f->d.ram + ok + NET_HDR_LEN, frame, 100);
}

/* A frame larger than every buffer the guest can have outstanding is dropped, and
 * the buffers it took are returned empty rather than held forever. */
static void test_rx_mergeable_never_fits(void **state)
{
	struct fixture *f = *state;
	drv_free(&f->d);
	drv_init(&f->d, 4);
	uint8_t frame[200];
	frame_fill(frame, sizeof frame, 8);
	f->n->mrg = true;

	for (int i = 0; i < 4; i++) {
		uint32_t b = drv_alloc(&f->d, 16);
		drv_add(&f->d, (struct seg[]){ { b, 16, true } }, 1);
	}
	assert_int_equal(vmm_net_backlog_push(f->n, frame, sizeof frame, NULL), 0);
	unsigned pushed = 0;
	assert_int_equal(vmm_net_rx_deliver(f->n, f->d.q, f->d.mem, 16, &pushed), NET_RX_IDLE);
	assert_int_equal(pushed, 4);
	for (int i = 0; i < 4; i++) {
		uint16_t head;
		uint32_t len;
		drv_used(&f->d, &head, &len);
		assert_int_equal(len, 0);
	}
	assert_int_equal(f->n->stats.rx_dropped, 1);
	assert_int_equal(f->n->stats.rx_frames, 0);
}

/* CVE-2020-16843: frames that find no buffers wait (up to the backlog size, beyond it
 * they are dropped and counted) and go out, in order, as soon as buffers arrive, with
 * no further ingress. */
static void test_rx_backlog_waits(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[6][200];
	f->n->mrg = true;

	for (unsigned i = 0; i < 6; i++) {
		frame_fill(frame[i], 200, 10 + i);
		int r = vmm_net_backlog_push(f->n, frame[i], 60 + 20 * i, NULL);
		assert_int_equal(r, i < 4 ? 0 : -ENOBUFS); /* backlog of 4 */
	}
	assert_true(vmm_net_backlog_full(f->n));
	assert_int_equal(f->n->stats.rx_dropped, 2);
	unsigned pushed = 0;
	assert_int_equal(vmm_net_rx_deliver(f->n, f->d.q, f->d.mem, 16, &pushed), NET_RX_STALLED);
	assert_int_equal(pushed, 0);

	uint32_t b[4];
	for (int i = 0; i < 4; i++) {
		b[i] = drv_alloc(&f->d, 512);
		drv_add(&f->d, (struct seg[]){ { b[i], 512, true } }, 1);
	}
	assert_int_equal(vmm_net_rx_deliver(f->n, f->d.q, f->d.mem, 16, &pushed), NET_RX_IDLE);
	assert_int_equal(pushed, 4);
	for (unsigned i = 0; i < 4; i++) {
		uint16_t head;
		uint32_t len;
		drv_used(&f->d, &head, &len);
		assert_int_equal(len, NET_HDR_LEN + 60 + 20 * i);
		assert_memory_equal(f->d.ram + b[i] + NET_HDR_LEN, frame[i], 60 + 20 * i);
	}
	assert_false(vmm_net_backlog_full(f->n));
	assert_int_equal(f->n->stats.rx_frames, 4);
}

static void test_rx_budget_and_reset(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[64] = { 1 };
	f->n->mrg = false;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(vmm_net_backlog_push(f->n, frame, sizeof frame, NULL), 0);
		uint32_t b = drv_alloc(&f->d, 256);
		drv_add(&f->d, (struct seg[]){ { b, 256, true } }, 1);
	}
	unsigned pushed = 0;
	assert_int_equal(vmm_net_rx_deliver(f->n, f->d.q, f->d.mem, 2, &pushed), NET_RX_MORE);
	assert_int_equal(pushed, 2);
	/* A reset drops what still waits. */
	vmm_net_rx_reset(f->n);
	assert_int_equal(f->n->stats.rx_dropped, 2);
	assert_int_equal(vmm_net_rx_deliver(f->n, f->d.q, f->d.mem, 16, &pushed), NET_RX_IDLE);
	assert_int_equal(pushed, 2);
}

/* ---- the public API ---------------------------------------------------------------- */

static void noop_tx(void *ctx, const void *frame, size_t len)
{
	(void)ctx;
	(void)frame;
	(void)len;
}

static void test_create_options(void **state)
{
	(void)state;
	vmm_virtio_device *d = NULL;
	vmm_virtio_net_opts o = VMM_VIRTIO_NET_OPTS_INIT;
	o.backend = VMM_NET_CALLBACK;
	assert_int_equal(vmm_virtio_net_create(&d, &o), -EINVAL); /* no tx */
	o.tx = noop_tx;
	o.rx_backlog = NET_BACKLOG_MAX + 1;
	assert_int_equal(vmm_virtio_net_create(&d, &o), -EINVAL);
	o.rx_backlog = 2;
	o.mac[0] = 0x01; /* multicast */
	assert_int_equal(vmm_virtio_net_create(&d, &o), -EINVAL);
	o.backend = (vmm_net_backend)7;
	o.mac[0] = 0;
	assert_int_equal(vmm_virtio_net_create(&d, &o), -EINVAL);
	o.backend = VMM_NET_TAP;
	o.tap_fd = open("/dev/null", O_RDWR | O_CLOEXEC); /* not a TAP */
	assert_true(o.tap_fd >= 0);
	assert_int_equal(vmm_virtio_net_create(&d, &o), -EINVAL);
	close(o.tap_fd);
	o.tap_fd = -1;
	o.tap_name = "a-name-longer-than-ifnamsiz";
	assert_int_equal(vmm_virtio_net_create(&d, &o), -EINVAL);
	assert_null(d);

	/* A random MAC: unicast, locally administered, and two devices differ. */
	o.backend = VMM_NET_CALLBACK;
	o.tap_name = NULL;
	vmm_virtio_device *d2 = NULL;
	assert_int_equal(vmm_virtio_net_create(&d, &o), 0);
	assert_int_equal(vmm_virtio_net_create(&d2, &o), 0);
	uint8_t m1[6], m2[6];
	assert_int_equal(vmm_virtio_net_get_mac(d, m1), 0);
	assert_int_equal(vmm_virtio_net_get_mac(d2, m2), 0);
	assert_int_equal(m1[0] & 3, 2);
	assert_int_equal(m2[0] & 3, 2);
	assert_memory_not_equal(m1, m2, 6);
	const vmm_virtio_device_ops *ops = vmm_virtio_device_get_ops(d);
	assert_int_equal(ops->device_id, 1);
	assert_int_equal(ops->num_queues, 2);
	assert_int_equal(ops->features, (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_MRG_RXBUF) |
						(1ull << VIRTIO_NET_F_STATUS));
	/* Config space: the MAC, then the link status. */
	uint8_t cfg[10];
	for (uint32_t i = 0; i < sizeof cfg; i++)
		ops->config_read(vmm_virtio_device_ctx(d), i, &cfg[i], 1);
	assert_memory_equal(cfg, m1, 6);
	assert_int_equal(get16(cfg + 6), VIRTIO_NET_S_LINK_UP);
	uint32_t w;
	ops->config_read(vmm_virtio_device_ctx(d), 4, &w, 4);
	assert_int_equal(w, (uint32_t)m1[4] | (uint32_t)m1[5] << 8 | (uint32_t)VIRTIO_NET_S_LINK_UP << 16);

	/* A given MAC is used as is. */
	vmm_virtio_device *d3 = NULL;
	memcpy(o.mac, (uint8_t[]){ 0x52, 0x54, 0, 1, 2, 3 }, 6);
	assert_int_equal(vmm_virtio_net_create(&d3, &o), 0);
	assert_int_equal(vmm_virtio_net_get_mac(d3, m1), 0);
	assert_memory_equal(m1, ((uint8_t[]){ 0x52, 0x54, 0, 1, 2, 3 }), 6);

	vmm_virtio_device_destroy(d);
	vmm_virtio_device_destroy(d2);
	vmm_virtio_device_destroy(d3);
}

static int other_activate(void *ctx, vmm_virtio_dev *dev, uint64_t features)
{
	(void)ctx;
	(void)dev;
	(void)features;
	return 0;
}
static void other_notify(void *ctx, vmm_virtio_dev *dev, uint16_t queue)
{
	(void)ctx;
	(void)dev;
	(void)queue;
}
static void other_destroy(void *ctx) { (void)ctx; }

static void test_receive_api(void **state)
{
	(void)state;
	vmm_virtio_device *d = NULL;
	vmm_virtio_net_opts o = VMM_VIRTIO_NET_OPTS_INIT;
	o.backend = VMM_NET_CALLBACK;
	o.tx = noop_tx;
	o.rx_backlog = 2;
	assert_int_equal(vmm_virtio_net_create(&d, &o), 0);

	static uint8_t big[NET_MAX_FRAME + 1];
	assert_int_equal(vmm_virtio_net_receive(d, big, 13), -EINVAL);
	assert_int_equal(vmm_virtio_net_receive(d, NULL, 60), -EINVAL);
	assert_int_equal(vmm_virtio_net_receive(d, big, sizeof big), -EMSGSIZE);
	assert_int_equal(vmm_virtio_net_receive(NULL, big, 60), -EINVAL);
	assert_int_equal(vmm_virtio_net_receive(d, big, NET_MAX_FRAME), 0);
	assert_int_equal(vmm_virtio_net_receive(d, big, 60), 0);
	assert_int_equal(vmm_virtio_net_receive(d, big, 60), -ENOBUFS);
	vmm_virtio_net_stats st;
	assert_int_equal(vmm_virtio_net_get_stats(d, &st), 0);
	assert_int_equal(st.rx_dropped, 1);
	assert_int_equal(st.rx_frames, 0);

	/* Another kind of device is refused. */
	vmm_virtio_device_ops ops = { .size = sizeof ops };
	ops.name = "other";
	ops.device_id = 4;
	ops.num_queues = 1;
	ops.queue_size_max = 8;
	ops.activate = other_activate;
	ops.notify = other_notify;
	ops.destroy = other_destroy;
	vmm_virtio_device *other = NULL;
	assert_int_equal(vmm_virtio_device_create(&other, &ops, NULL), 0);
	assert_int_equal(vmm_virtio_net_receive(other, big, 60), -EINVAL);
	uint8_t mac[6];
	assert_int_equal(vmm_virtio_net_get_mac(other, mac), -EINVAL);
	assert_int_equal(vmm_virtio_net_get_stats(other, &st), -EINVAL);
	vmm_virtio_device_destroy(other);
	vmm_virtio_device_destroy(d);
}

/* The tx callback may hand frames straight back with vmm_virtio_net_receive (an echo):
 * the device holds no lock of its own around the callback, so this cannot deadlock. */
struct echo {
	vmm_virtio_device *dev;
	int results[4];
	unsigned n;
};

static void echo_tx(void *ctx, const void *frame, size_t len)
{
	struct echo *e = ctx;
	if (e->n < 4)
		e->results[e->n++] = vmm_virtio_net_receive(e->dev, frame, len);
}

static void test_tx_callback_echo(void **state)
{
	(void)state;
	struct drv d;
	struct echo e = { 0 };
	drv_init(&d, QSIZE);
	vmm_virtio_net_opts o = VMM_VIRTIO_NET_OPTS_INIT;
	o.backend = VMM_NET_CALLBACK;
	o.tx = echo_tx;
	o.ctx = &e;
	assert_int_equal(vmm_virtio_net_create(&e.dev, &o), 0);
	struct vmm_net *n = vmm_virtio_device_ctx(e.dev);

	uint32_t b = drv_alloc(&d, NET_HDR_LEN + 80);
	frame_fill(d.ram + b + NET_HDR_LEN, 80, 9);
	drv_add(&d, (struct seg[]){ { b, NET_HDR_LEN + 80, false } }, 1);
	drv_add(&d, (struct seg[]){ { b, NET_HDR_LEN + 80, false } }, 1);
	unsigned pushed = 0;
	assert_int_equal(vmm_net_tx_drain(n, d.q, d.mem, 16, &pushed), 0);
	assert_int_equal(e.n, 2);
	assert_int_equal(e.results[0], 0);
	assert_int_equal(e.results[1], 0);
	assert_int_equal(n->count, 2); /* both wait in the backlog for receive buffers */
	assert_memory_equal(n->pool, d.ram + b + NET_HDR_LEN, 80);
	vmm_virtio_device_destroy(e.dev);
	drv_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tx_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_budget, setup, teardown),
		cmocka_unit_test(test_tx_frame_direct),
		cmocka_unit_test_setup_teardown(test_rx_single, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_mergeable_spans, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_mergeable_across_notifies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_mergeable_unusable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_mergeable_never_fits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_backlog_waits, setup_small_backlog, teardown),
		cmocka_unit_test_setup_teardown(test_rx_budget_and_reset, setup, teardown),
		cmocka_unit_test(test_create_options),
		cmocka_unit_test(test_receive_api),
		cmocka_unit_test(test_tx_callback_echo),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
