/* The split virtqueue (lib/virtio/virtq.c) on a standalone memory map: a small driver
 * in this file writes descriptors and avail entries the way a guest would, and the tests
 * check what the device side pops, pushes and signals, then the hostile-guest list
 * (HOSTILE-GUEST.md "Virtqueue", items 1-14). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <linux/virtio_ring.h>

#include <libvmm/libvmm.h>
#include <libvmm/sys/virtq.h>

/* Guest memory: RAM [0, 4 MiB), a read-only region at 8 MiB, nothing in between. The
 * rings, tables and buffers of the tests live in the first MiB. */
#define RAM_SIZE 0x400000ull
#define WORK_SIZE 0x100000ull
#define ROM_GPA 0x800000ull
#define ROM_SIZE 0x10000ull
#define DESC 0x1000ull
#define AVAIL 0x3000ull
#define USED 0x4000ull
#define TABLE 0x8000ull  /* indirect tables */
#define DATA 0x10000ull  /* buffers */
#define BIG_TABLE 0x100000ull /* room for the largest indirect table */
#define SIZE_MAX_Q 256
#define QSIZE 8

typedef struct drv {
	vmm_mem *mem;
	uint8_t *ram;      /* host address of GPA 0 */
	vmm_virtq *q;
	uint16_t size;
	uint16_t avail_idx; /* the driver's next avail index */
	vmm_virtq_chain *c;
} drv;

/* ---- the driver side ------------------------------------------------------------ */

static void put_desc(drv *d, uint64_t table, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct vring_desc v = { .addr = addr, .len = len, .flags = flags, .next = next };
	memcpy(d->ram + table + 16ull * i, &v, sizeof v);
}

static void desc(drv *d, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	put_desc(d, DESC, i, addr, len, flags, next);
}

static void put16(drv *d, uint64_t gpa, uint16_t v)
{
	memcpy(d->ram + gpa, &v, 2);
}

static uint16_t get16(drv *d, uint64_t gpa)
{
	uint16_t v;
	memcpy(&v, d->ram + gpa, 2);
	return v;
}

static uint32_t get32(drv *d, uint64_t gpa)
{
	uint32_t v;
	memcpy(&v, d->ram + gpa, 4);
	return v;
}

static void avail_set_idx(drv *d, uint16_t idx)
{
	put16(d, AVAIL + 2, idx);
}

static void avail_add(drv *d, uint16_t head)
{
	put16(d, AVAIL + 4 + 2ull * (d->avail_idx % d->size), head);
	d->avail_idx++;
	avail_set_idx(d, d->avail_idx);
}

static uint16_t used_idx(drv *d)
{
	return get16(d, USED + 2);
}

static void used_elem(drv *d, uint16_t i, uint32_t *id, uint32_t *len)
{
	uint64_t e = USED + 4 + 8ull * (i % d->size);
	*id = get32(d, e);
	*len = get32(d, e + 4);
}

static void set_used_event(drv *d, uint16_t v)
{
	put16(d, AVAIL + 4 + 2ull * d->size, v);
}

static uint16_t avail_event(drv *d)
{
	return get16(d, USED + 4 + 8ull * d->size);
}

/* (Re)configures the queue with `size` entries and the features, rings zeroed. */
static void setup(drv *d, uint16_t size, bool indirect, bool event_idx)
{
	vmm_virtq_reset(d->q);
	memset(d->ram, 0, WORK_SIZE);
	d->size = size;
	d->avail_idx = 0;
	assert_int_equal(vmm_virtq_set_size(d->q, size), 0);
	assert_int_equal(vmm_virtq_set_addrs(d->q, DESC, AVAIL, USED), 0);
	vmm_virtq_set_features(d->q, indirect, event_idx);
	assert_int_equal(vmm_virtq_enable(d->q, d->mem), 0);
	assert_true(vmm_virtq_ready(d->q));
}

static int add_region(vmm_mem *mem, uint64_t gpa, uint64_t len, vmm_mem_backing backing, uint32_t flags)
{
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.gpa = gpa;
	o.len = len;
	o.backing = backing;
	o.flags = flags;
	return vmm_mem_add_region(mem, &o);
}

static int drv_setup(void **state)
{
	drv *d = calloc(1, sizeof *d);
	assert_non_null(d);
	d->c = calloc(1, sizeof *d->c);
	assert_non_null(d->c);
	assert_int_equal(vmm_mem_create(&d->mem), 0);
	assert_int_equal(add_region(d->mem, 0, RAM_SIZE, VMM_MEM_ANON, 0), 0);
	assert_int_equal(add_region(d->mem, ROM_GPA, ROM_SIZE, VMM_MEM_ANON, VMM_MEM_READONLY), 0);
	vmm_mem_region_info info;
	assert_int_equal(vmm_mem_get_region(d->mem, 0, &info), 0);
	d->ram = info.host;
	assert_int_equal(vmm_virtq_create(&d->q, SIZE_MAX_Q), 0);
	setup(d, QSIZE, true, false);
	*state = d;
	return 0;
}

static int drv_teardown(void **state)
{
	drv *d = *state;
	vmm_virtq_destroy(d->q);
	vmm_mem_destroy(d->mem);
	free(d->c);
	free(d);
	return 0;
}

static int pop(drv *d)
{
	return vmm_virtq_pop(d->q, d->mem, d->c);
}

static int push(drv *d, uint16_t head, uint32_t written)
{
	return vmm_virtq_push(d->q, d->mem, head, written);
}

/* The ring broke with -EIO for the right reason, and stays broken. */
static void expect_broken(drv *d, int rc, const char *needle)
{
	assert_int_equal(rc, -EIO);
	if (!strstr(vmm_last_error(), needle))
		fail_msg("error message \"%s\" lacks \"%s\"", vmm_last_error(), needle);
	assert_true(vmm_virtq_broken(d->q));
	assert_int_equal(pop(d), -EIO);
	if (!strstr(vmm_last_error(), needle))
		fail_msg("later pop: \"%s\" lacks \"%s\"", vmm_last_error(), needle);
	assert_int_equal(push(d, 0, 0), -EIO);
	assert_false(vmm_virtq_need_interrupt(d->q, d->mem));
}

static void expect_seg(const vmm_virtq_seg *s, drv *d, uint64_t gpa, uint32_t len)
{
	assert_int_equal(s->gpa, gpa);
	assert_int_equal(s->len, len);
	assert_ptr_equal(s->host, d->ram + gpa);
}

/* ---- valid chains ------------------------------------------------------------------ */

static void test_direct_chain(void **state)
{
	drv *d = *state;
	desc(d, 3, DATA, 16, VRING_DESC_F_NEXT, 5);
	desc(d, 5, DATA + 0x1000, 100, VRING_DESC_F_NEXT, 1);
	desc(d, 1, DATA + 0x2000, 200, VRING_DESC_F_WRITE, 0);
	avail_add(d, 3);
	assert_int_equal(pop(d), 1);
	vmm_virtq_chain *c = d->c;
	assert_int_equal(c->head, 3);
	assert_int_equal(c->n_out, 2);
	assert_int_equal(c->n_in, 1);
	assert_int_equal(c->out_bytes, 116);
	assert_int_equal(c->in_bytes, 200);
	expect_seg(&c->segs[0], d, DATA, 16);
	expect_seg(&c->segs[1], d, DATA + 0x1000, 100);
	expect_seg(&c->segs[2], d, DATA + 0x2000, 200);
	assert_int_equal(pop(d), 0);

	assert_int_equal(used_idx(d), 0);
	assert_int_equal(push(d, 3, 50), 0);
	assert_int_equal(used_idx(d), 1);
	uint32_t id, len;
	used_elem(d, 0, &id, &len);
	assert_int_equal(id, 3);
	assert_int_equal(len, 50);
	/* A head not in flight cannot be pushed: already pushed, never popped, range. */
	assert_int_equal(push(d, 3, 0), -EINVAL);
	assert_int_equal(push(d, 4, 0), -EINVAL);
	assert_int_equal(push(d, QSIZE, 0), -EINVAL);
	assert_int_equal(used_idx(d), 1);
	assert_false(vmm_virtq_broken(d->q));
}

static void test_indirect_chain(void **state)
{
	drv *d = *state;
	put_desc(d, TABLE, 0, DATA, 10, VRING_DESC_F_NEXT, 2);
	put_desc(d, TABLE, 2, DATA + 0x100, 20, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	put_desc(d, TABLE, 1, DATA + 0x200, 30, VRING_DESC_F_WRITE, 0);
	/* The WRITE flag on the descriptor that points at the table is ignored. */
	desc(d, 0, TABLE, 3 * 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
	avail_add(d, 0);
	assert_int_equal(pop(d), 1);
	assert_int_equal(d->c->head, 0);
	assert_int_equal(d->c->n_out, 1);
	assert_int_equal(d->c->n_in, 2);
	assert_int_equal(d->c->out_bytes, 10);
	assert_int_equal(d->c->in_bytes, 50);
	expect_seg(&d->c->segs[0], d, DATA, 10);
	expect_seg(&d->c->segs[1], d, DATA + 0x100, 20);
	expect_seg(&d->c->segs[2], d, DATA + 0x200, 30);

	/* Mixed: direct descriptors, then an indirect one that ends the chain. */
	put_desc(d, TABLE + 0x100, 0, DATA + 0x300, 8, VRING_DESC_F_WRITE, 0);
	desc(d, 4, DATA + 0x400, 4, VRING_DESC_F_NEXT, 6);
	desc(d, 6, TABLE + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	avail_add(d, 4);
	assert_int_equal(pop(d), 1);
	assert_int_equal(d->c->head, 4);
	assert_int_equal(d->c->n_out, 1);
	assert_int_equal(d->c->n_in, 1);
	expect_seg(&d->c->segs[0], d, DATA + 0x400, 4);
	expect_seg(&d->c->segs[1], d, DATA + 0x300, 8);

	assert_int_equal(push(d, 4, 8), 0);
	assert_int_equal(push(d, 0, 1000), 0); /* clamped to the 50 writable bytes */
	uint32_t id, len;
	used_elem(d, 0, &id, &len);
	assert_int_equal(id, 4);
	assert_int_equal(len, 8);
	used_elem(d, 1, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 50);
	assert_int_equal(used_idx(d), 2);
}

/* HOSTILE 11: zero-length descriptors are accepted, counted, and produce no segment. */
static void test_zero_length_descriptors(void **state)
{
	drv *d = *state;
	desc(d, 0, DATA, 16, VRING_DESC_F_NEXT, 1);
	desc(d, 1, 0xdead00000000ull, 0, VRING_DESC_F_NEXT, 2); /* nowhere, but empty */
	desc(d, 2, DATA + 0x100, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3);
	desc(d, 3, DATA + 0x200, 0, VRING_DESC_F_WRITE, 0);
	avail_add(d, 0);
	assert_int_equal(pop(d), 1);
	assert_int_equal(d->c->n_out, 1);
	assert_int_equal(d->c->n_in, 1);
	expect_seg(&d->c->segs[0], d, DATA, 16);
	expect_seg(&d->c->segs[1], d, DATA + 0x100, 8);

	/* A chain of nothing but empty descriptors. */
	desc(d, 5, DATA, 0, VRING_DESC_F_NEXT, 6);
	desc(d, 6, DATA, 0, VRING_DESC_F_WRITE, 0);
	avail_add(d, 5);
	assert_int_equal(pop(d), 1);
	assert_int_equal(d->c->n_out + d->c->n_in, 0);
	assert_int_equal(d->c->out_bytes + d->c->in_bytes, 0);
	assert_int_equal(push(d, 5, 100), 0);
	uint32_t id, len;
	used_elem(d, 0, &id, &len);
	assert_int_equal(id, 5);
	assert_int_equal(len, 0);
}

/* HOSTILE 11: a chain with only a header; HOSTILE 10: a chain with only writable
 * buffers. The walker hands both over; the device decides (and the used length is
 * clamped to what is writable). */
static void test_header_only_and_write_only(void **state)
{
	drv *d = *state;
	desc(d, 2, DATA, 16, 0, 0);
	avail_add(d, 2);
	assert_int_equal(pop(d), 1);
	assert_int_equal(d->c->n_out, 1);
	assert_int_equal(d->c->n_in, 0);
	assert_int_equal(push(d, 2, 512), 0);
	uint32_t id, len;
	used_elem(d, 0, &id, &len);
	assert_int_equal(id, 2);
	assert_int_equal(len, 0);

	desc(d, 3, DATA + 0x100, 64, VRING_DESC_F_WRITE, 0);
	avail_add(d, 3);
	assert_int_equal(pop(d), 1);
	assert_int_equal(d->c->n_out, 0);
	assert_int_equal(d->c->n_in, 1);
	assert_int_equal(vmm_virtq_chain_read(d->c, 0, &len, sizeof len), 0);
	assert_int_equal(push(d, 3, 65), 0);
	used_elem(d, 1, &id, &len);
	assert_int_equal(len, 64);
}

static void test_used_ring_wraps(void **state)
{
	drv *d = *state;
	desc(d, 0, DATA, 4, VRING_DESC_F_WRITE, 0);
	desc(d, 1, DATA, 4, VRING_DESC_F_WRITE, 0);
	desc(d, 2, DATA, 4, VRING_DESC_F_WRITE, 0);
	for (unsigned round = 0; round < 7; round++) {
		for (uint16_t h = 0; h < 3; h++)
			avail_add(d, h);
		for (uint16_t h = 0; h < 3; h++) {
			assert_int_equal(pop(d), 1);
			assert_int_equal(d->c->head, h);
		}
		assert_int_equal(pop(d), 0);
		/* Completed out of order: the used ring records the push order. */
		for (int h = 2; h >= 0; h--)
			assert_int_equal(push(d, (uint16_t)h, (uint32_t)h + 1), 0);
		for (uint16_t k = 0; k < 3; k++) {
			uint32_t id, len;
			used_elem(d, (uint16_t)(round * 3 + k), &id, &len);
			assert_int_equal(id, 2 - k);
			assert_int_equal(len, 3 - k);
		}
		assert_int_equal(used_idx(d), (round + 1) * 3);
	}
}

static void test_chain_read_write(void **state)
{
	drv *d = *state;
	static const uint32_t rlen[3] = { 5, 7, 11 }, wlen[2] = { 4, 9 };
	uint8_t pattern[23];
	for (unsigned i = 0; i < sizeof pattern; i++)
		pattern[i] = (uint8_t)(0xa0 + i);
	uint64_t gpa = DATA, off = 0;
	for (uint16_t i = 0; i < 3; i++) {
		memcpy(d->ram + gpa, pattern + off, rlen[i]);
		desc(d, i, gpa, rlen[i], VRING_DESC_F_NEXT, (uint16_t)(i + 1));
		off += rlen[i];
		gpa += 0x100;
	}
	desc(d, 3, DATA + 0x1000, wlen[0], VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 4);
	desc(d, 4, DATA + 0x2000, wlen[1], VRING_DESC_F_WRITE, 0);
	avail_add(d, 0);
	assert_int_equal(pop(d), 1);

	uint8_t buf[64];
	memset(buf, 0, sizeof buf);
	assert_int_equal(vmm_virtq_chain_read(d->c, 0, buf, sizeof buf), 23);
	assert_memory_equal(buf, pattern, 23);
	memset(buf, 0, sizeof buf);
	assert_int_equal(vmm_virtq_chain_read(d->c, 3, buf, 10), 10); /* across two seams */
	assert_memory_equal(buf, pattern + 3, 10);
	assert_int_equal(vmm_virtq_chain_read(d->c, 12, buf, 1), 1);  /* first byte of seg 2 */
	assert_int_equal(buf[0], pattern[12]);
	assert_int_equal(vmm_virtq_chain_read(d->c, 20, buf, 10), 3); /* short at the end */
	assert_memory_equal(buf, pattern + 20, 3);
	assert_int_equal(vmm_virtq_chain_read(d->c, 23, buf, 10), 0);
	assert_int_equal(vmm_virtq_chain_read(d->c, UINT64_MAX, buf, 10), 0);

	uint8_t out[13];
	for (unsigned i = 0; i < sizeof out; i++)
		out[i] = (uint8_t)(0x50 + i);
	assert_int_equal(vmm_virtq_chain_write(d->c, 2, out, 5), 5); /* 2 + 3 across the seam */
	assert_memory_equal(d->ram + DATA + 0x1000 + 2, out, 2);
	assert_memory_equal(d->ram + DATA + 0x2000, out + 2, 3);
	assert_int_equal(vmm_virtq_chain_write(d->c, 0, out, sizeof out), 13);
	assert_memory_equal(d->ram + DATA + 0x1000, out, 4);
	assert_memory_equal(d->ram + DATA + 0x2000, out + 4, 9);
	assert_int_equal(vmm_virtq_chain_write(d->c, 10, out, sizeof out), 3);
	assert_int_equal(vmm_virtq_chain_write(d->c, 13, out, 1), 0);
	/* The readable part was not written. */
	assert_memory_equal(d->ram + DATA, pattern, 5);
	assert_int_equal(push(d, 0, 13), 0);
}

/* ---- notification suppression ------------------------------------------------------ */

static uint16_t cycle(drv *d, uint16_t head)
{
	avail_add(d, head);
	assert_int_equal(pop(d), 1);
	assert_int_equal(push(d, head, 0), 0);
	return used_idx(d);
}

static void test_interrupt_flags(void **state)
{
	drv *d = *state;
	desc(d, 0, DATA, 4, 0, 0);
	assert_false(vmm_virtq_need_interrupt(d->q, d->mem)); /* nothing pushed */
	cycle(d, 0);
	assert_true(vmm_virtq_need_interrupt(d->q, d->mem));
	assert_false(vmm_virtq_need_interrupt(d->q, d->mem)); /* state reset */
	put16(d, AVAIL, VRING_AVAIL_F_NO_INTERRUPT);
	cycle(d, 0);
	assert_false(vmm_virtq_need_interrupt(d->q, d->mem));
	put16(d, AVAIL, 0);
	cycle(d, 0);
	cycle(d, 0);
	assert_true(vmm_virtq_need_interrupt(d->q, d->mem));
	/* used_event is ignored without EVENT_IDX. */
	set_used_event(d, 100);
	cycle(d, 0);
	assert_true(vmm_virtq_need_interrupt(d->q, d->mem));
}

static void test_interrupt_event_idx(void **state)
{
	drv *d = *state;
	setup(d, QSIZE, false, true);
	desc(d, 0, DATA, 4, 0, 0);
	set_used_event(d, 0);
	assert_int_equal(cycle(d, 0), 1);
	assert_true(vmm_virtq_need_interrupt(d->q, d->mem));  /* 0 in [0, 1) */
	cycle(d, 0);
	assert_false(vmm_virtq_need_interrupt(d->q, d->mem)); /* 0 not in [1, 2) */
	set_used_event(d, 3);
	cycle(d, 0);
	assert_false(vmm_virtq_need_interrupt(d->q, d->mem)); /* 3 not in [2, 3) */
	cycle(d, 0);
	assert_true(vmm_virtq_need_interrupt(d->q, d->mem));  /* 3 in [3, 4) */
	set_used_event(d, 5);
	cycle(d, 0);
	cycle(d, 0);
	cycle(d, 0);
	assert_true(vmm_virtq_need_interrupt(d->q, d->mem));  /* 5 in [4, 7) */
	/* NO_INTERRUPT is ignored with EVENT_IDX. */
	put16(d, AVAIL, VRING_AVAIL_F_NO_INTERRUPT);
	set_used_event(d, 7);
	cycle(d, 0);
	assert_true(vmm_virtq_need_interrupt(d->q, d->mem));
}

/* 16-bit wrap of the indices: the comparisons are modulo 2^16. */
static void test_event_idx_wrap(void **state)
{
	drv *d = *state;
	setup(d, QSIZE, false, true);
	desc(d, 1, DATA, 4, VRING_DESC_F_WRITE, 0);
	/* One push at a time up to the wrap: exactly one interrupt, when used_event is
	 * passed. */
	set_used_event(d, 0x7fff);
	unsigned interrupts = 0;
	while (used_idx(d) != 0xfffd) {
		cycle(d, 1);
		if (vmm_virtq_need_interrupt(d->q, d->mem)) {
			interrupts++;
			assert_int_equal(used_idx(d), 0x8000);
		}
	}
	assert_int_equal(interrupts, 1);
	set_used_event(d, 0xffff);
	assert_int_equal(cycle(d, 1), 0xfffe);
	assert_false(vmm_virtq_need_interrupt(d->q, d->mem)); /* 0xffff not in [0xfffd, 0xfffe) */
	assert_int_equal(cycle(d, 1), 0xffff);
	assert_false(vmm_virtq_need_interrupt(d->q, d->mem)); /* not in [0xfffe, 0xffff) */
	assert_int_equal(cycle(d, 1), 0);
	assert_true(vmm_virtq_need_interrupt(d->q, d->mem));  /* in [0xffff, 0) */
	set_used_event(d, 1);
	assert_int_equal(cycle(d, 1), 1);
	assert_false(vmm_virtq_need_interrupt(d->q, d->mem));
	/* Several pushes across the wrap at once. */
	while (used_idx(d) != 0xfffe)
		cycle(d, 1);
	(void)vmm_virtq_need_interrupt(d->q, d->mem);
	set_used_event(d, 0);
	cycle(d, 1);
	cycle(d, 1);
	assert_int_equal(cycle(d, 1), 1);
	assert_true(vmm_virtq_need_interrupt(d->q, d->mem));  /* 0 in [0xfffe, 1) */
	set_used_event(d, 0xfff0);
	cycle(d, 1);
	cycle(d, 1);
	assert_false(vmm_virtq_need_interrupt(d->q, d->mem)); /* 0xfff0 not in [1, 3) */
	/* 2^16 pushes between two checks: the indices say "none", yet there were. */
	uint16_t at = used_idx(d);
	set_used_event(d, (uint16_t)(at - 1));
	for (unsigned k = 0; k < 0x10000; k++)
		cycle(d, 1);
	assert_int_equal(used_idx(d), at);
	assert_true(vmm_virtq_need_interrupt(d->q, d->mem));
	/* The avail side wrapped too (the driver's idx ran past 0xffff): popping works. */
	assert_int_equal(get16(d, AVAIL + 2), used_idx(d));
	assert_false(vmm_virtq_broken(d->q));
}

static void test_set_notify_flags(void **state)
{
	drv *d = *state;
	desc(d, 0, DATA, 4, 0, 0);
	assert_int_equal(get16(d, USED), 0);
	assert_false(vmm_virtq_set_notify(d->q, d->mem, false));
	assert_int_equal(get16(d, USED), VRING_USED_F_NO_NOTIFY);
	assert_false(vmm_virtq_set_notify(d->q, d->mem, true));
	assert_int_equal(get16(d, USED), 0);
	/* A buffer that arrives while notifications are off is reported on re-enable. */
	assert_false(vmm_virtq_set_notify(d->q, d->mem, false));
	avail_add(d, 0);
	assert_true(vmm_virtq_set_notify(d->q, d->mem, true));
	assert_int_equal(pop(d), 1);
	assert_false(vmm_virtq_set_notify(d->q, d->mem, true));
	/* With no EVENT_IDX, avail_event is never written. */
	assert_int_equal(avail_event(d), 0);
}

static void test_set_notify_event_idx(void **state)
{
	drv *d = *state;
	setup(d, QSIZE, false, true);
	for (uint16_t h = 0; h < 4; h++)
		desc(d, h, DATA, 4, 0, 0);
	put16(d, USED + 4 + 8ull * QSIZE, 0x5555);
	/* Finding the ring empty publishes avail_event = consumed count. */
	assert_int_equal(pop(d), 0);
	assert_int_equal(avail_event(d), 0);
	avail_add(d, 0);
	avail_add(d, 1);
	assert_int_equal(pop(d), 1);
	assert_int_equal(avail_event(d), 0); /* not touched while entries remain */
	assert_int_equal(pop(d), 1);
	assert_int_equal(pop(d), 0);
	assert_int_equal(avail_event(d), 2);
	/* Disabled: avail_event stays, and an empty pop does not move it. */
	assert_false(vmm_virtq_set_notify(d->q, d->mem, false));
	avail_add(d, 2);
	assert_int_equal(pop(d), 1);
	assert_int_equal(pop(d), 0);
	assert_int_equal(avail_event(d), 2);
	assert_int_equal(get16(d, USED), 0); /* flags are not used with EVENT_IDX */
	/* Re-enabled: published at once; new buffers reported. */
	assert_false(vmm_virtq_set_notify(d->q, d->mem, true));
	assert_int_equal(avail_event(d), 3);
	assert_false(vmm_virtq_set_notify(d->q, d->mem, false));
	avail_add(d, 3);
	assert_true(vmm_virtq_set_notify(d->q, d->mem, true));
	assert_int_equal(avail_event(d), 3);
	assert_int_equal(pop(d), 1);
	assert_int_equal(pop(d), 0);
	assert_int_equal(avail_event(d), 4);
}

static void test_reset(void **state)
{
	drv *d = *state;
	desc(d, 0, DATA, 4, 0, 0);
	avail_add(d, 0);
	assert_int_equal(pop(d), 1);
	vmm_virtq_reset(d->q);
	assert_false(vmm_virtq_ready(d->q));
	assert_false(vmm_virtq_broken(d->q));
	assert_int_equal(vmm_virtq_size(d->q), SIZE_MAX_Q);
	assert_int_equal(vmm_virtq_size_max(d->q), SIZE_MAX_Q);
	uint64_t a = 1, b = 1, c = 1;
	vmm_virtq_addrs(d->q, &a, &b, &c);
	assert_true(a == 0 && b == 0 && c == 0);
	assert_int_equal(pop(d), 0);               /* not ready */
	assert_int_equal(push(d, 0, 0), -EINVAL);  /* popped before the reset */
	setup(d, QSIZE, true, false);
	vmm_virtq_addrs(d->q, &a, &b, &c);
	assert_true(a == DESC && b == AVAIL && c == USED);
	assert_int_equal(push(d, 0, 0), -EINVAL);
	/* A reset also clears the broken state. */
	avail_set_idx(d, 100);
	assert_int_equal(pop(d), -EIO);
	setup(d, QSIZE, true, false);
	assert_false(vmm_virtq_broken(d->q));
	desc(d, 0, DATA, 4, 0, 0);
	avail_add(d, 0);
	assert_int_equal(pop(d), 1);
}

static int note_page(void *ctx, uint64_t gpa, uint64_t npages)
{
	uint64_t *pages = ctx;
	for (uint64_t p = 0; p < npages; p++)
		if (gpa + p * 4096 == USED)
			*pages |= 1;
		else if (gpa + p * 4096 == DATA)
			*pages |= 2;
		else
			*pages |= 4; /* nothing else is written */
	return 0;
}

/* Used-ring writes bypass vmm_mem_write; they must still reach dirty tracking. */
static void test_dirty_tracking(void **state)
{
	drv *d = *state;
	desc(d, 0, DATA, 4, VRING_DESC_F_WRITE, 0);
	avail_add(d, 0);
	assert_int_equal(vmm_mem_dirty_start(d->mem), 0);
	assert_int_equal(vmm_mem_dirty_collect(d->mem, NULL, NULL), 0);
	assert_int_equal(pop(d), 1);
	uint64_t pages = 0;
	assert_int_equal(vmm_mem_dirty_collect(d->mem, note_page, &pages), 0);
	assert_int_equal(pages, 2); /* the writable buffer, at pop */
	pages = 0;
	assert_int_equal(push(d, 0, 4), 0);
	assert_int_equal(vmm_mem_dirty_collect(d->mem, note_page, &pages), 0);
	assert_int_equal(pages, 1); /* the used ring */
	assert_int_equal(vmm_mem_dirty_stop(d->mem), 0);
}

/* ---- hostile guest: HOSTILE-GUEST.md "Virtqueue" 1-14 ------------------------------- */

/* 1. Queue size 0, not a power of two, above the maximum. */
static void test_h1_bad_sizes(void **state)
{
	drv *d = *state;
	vmm_virtq *q = NULL;
	assert_int_equal(vmm_virtq_create(&q, 0), -EINVAL);
	assert_int_equal(vmm_virtq_create(&q, 3), -EINVAL);
	assert_int_equal(vmm_virtq_create(&q, 384), -EINVAL);
	assert_int_equal(vmm_virtq_create(&q, 65535), -EINVAL);
	assert_null(q);
	assert_int_equal(vmm_virtq_create(&q, VMM_VIRTQ_MAX_SIZE), 0);
	vmm_virtq_destroy(q);
	vmm_virtq_reset(d->q);
	assert_int_equal(vmm_virtq_set_size(d->q, 0), -EINVAL);
	assert_int_equal(vmm_virtq_set_size(d->q, 6), -EINVAL);
	assert_int_equal(vmm_virtq_set_size(d->q, 255), -EINVAL);
	assert_int_equal(vmm_virtq_set_size(d->q, 512), -EINVAL);
	assert_int_equal(vmm_virtq_set_size(d->q, 32768), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "power of two"));
	assert_int_equal(vmm_virtq_size(d->q), SIZE_MAX_Q); /* unchanged */
	assert_int_equal(vmm_virtq_set_size(d->q, 1), 0);
	assert_int_equal(vmm_virtq_set_size(d->q, 256), 0);
}

static void expect_enable_fails(drv *d, uint64_t desc_gpa, uint64_t avail, uint64_t used, int err, const char *needle)
{
	vmm_virtq_reset(d->q);
	assert_int_equal(vmm_virtq_set_size(d->q, QSIZE), 0);
	int rc = vmm_virtq_set_addrs(d->q, desc_gpa, avail, used);
	if (rc == 0)
		rc = vmm_virtq_enable(d->q, d->mem);
	assert_int_equal(rc, err);
	if (!strstr(vmm_last_error(), needle))
		fail_msg("error message \"%s\" lacks \"%s\"", vmm_last_error(), needle);
	assert_false(vmm_virtq_ready(d->q));
	assert_int_equal(pop(d), 0);
}

/* 2. Rings misaligned, outside RAM, or over MMIO (anything that is not RAM). */
static void test_h2_bad_ring_addresses(void **state)
{
	drv *d = *state;
	expect_enable_fails(d, DESC + 8, AVAIL, USED, -EINVAL, "descriptor table 0x1008 is not 16-byte aligned");
	expect_enable_fails(d, DESC, AVAIL + 1, USED, -EINVAL, "avail ring 0x3001 is not 2-byte aligned");
	expect_enable_fails(d, DESC, AVAIL, USED + 2, -EINVAL, "used ring 0x4002 is not 4-byte aligned");
	/* Where an MMIO device would sit: no RAM. */
	expect_enable_fails(d, 0xd0000000, AVAIL, USED, -EFAULT, "descriptor table [0xd0000000");
	expect_enable_fails(d, DESC, 0xd0000000, USED, -EFAULT, "avail ring [0xd0000000");
	expect_enable_fails(d, DESC, AVAIL, 0xd0000000, -EFAULT, "used ring [0xd0000000");
	/* Starting in RAM, crossing its end (8 entries: desc 128 B, avail 22 B, used 70 B). */
	expect_enable_fails(d, RAM_SIZE - 0x40, AVAIL, USED, -EFAULT, "descriptor table");
	expect_enable_fails(d, DESC, RAM_SIZE - 20, USED, -EFAULT, "avail ring");
	expect_enable_fails(d, DESC, AVAIL, RAM_SIZE - 68, -EFAULT, "used ring");
	/* The device writes the used ring: read-only memory will not do. */
	expect_enable_fails(d, DESC, AVAIL, ROM_GPA, -EFAULT, "read-only");
	/* Just fitting is fine, and the read-only areas may be in ROM. */
	vmm_virtq_reset(d->q);
	assert_int_equal(vmm_virtq_set_size(d->q, QSIZE), 0);
	assert_int_equal(vmm_virtq_set_addrs(d->q, ROM_GPA, ROM_SIZE + ROM_GPA - 22, RAM_SIZE - 72), 0);
	assert_int_equal(vmm_virtq_enable(d->q, d->mem), 0);
	assert_int_equal(vmm_virtq_enable(d->q, d->mem), 0); /* again: no-op */
}

/* 3. Queue used before it is ready. */
static void test_h3_pop_before_enable(void **state)
{
	drv *d = *state;
	vmm_virtq_reset(d->q);
	assert_int_equal(vmm_virtq_set_size(d->q, QSIZE), 0);
	assert_int_equal(vmm_virtq_set_addrs(d->q, DESC, AVAIL, USED), 0);
	desc(d, 0, DATA, 4, 0, 0);
	avail_add(d, 0);
	assert_int_equal(pop(d), 0);
	assert_int_equal(push(d, 0, 0), -EINVAL);
	assert_false(vmm_virtq_need_interrupt(d->q, d->mem));
	assert_false(vmm_virtq_set_notify(d->q, d->mem, true));
	assert_int_equal(used_idx(d), 0);
	assert_int_equal(get16(d, USED), 0);
	assert_false(vmm_virtq_broken(d->q));
}

/* 4. Avail index more than the queue size ahead: rejected at once, no walk. The error
 * names the index, not a descriptor, so the check came before any descriptor was read
 * (a wall-clock bound here would fail on a stalled shared host and prove less). */
static void test_h4_avail_idx_jump(void **state)
{
	drv *d = *state;
	for (uint16_t h = 0; h < QSIZE; h++)
		desc(d, h, DATA, 4, 0, 0);
	/* Exactly the queue size ahead is legal. */
	for (uint16_t h = 0; h < QSIZE; h++)
		avail_add(d, h);
	for (uint16_t h = 0; h < QSIZE; h++) {
		assert_int_equal(pop(d), 1);
		assert_int_equal(push(d, h, 0), 0);
	}
	assert_int_equal(pop(d), 0);
	avail_set_idx(d, (uint16_t)(QSIZE + QSIZE + 1));
	int rc = pop(d);
	expect_broken(d, rc, "avail index 17 is 9 entries ahead of the 8 consumed (queue size 8)");

	setup(d, QSIZE, true, false);
	avail_set_idx(d, 0xffff);
	rc = pop(d);
	expect_broken(d, rc, "65535 entries ahead");
	assert_int_equal(used_idx(d), 0);
}

/* 5. Head >= queue size. */
static void test_h5_head_out_of_range(void **state)
{
	drv *d = *state;
	avail_add(d, QSIZE);
	expect_broken(d, pop(d), "head 8 >= queue size 8");
	setup(d, QSIZE, true, false);
	avail_add(d, 0xffff);
	expect_broken(d, pop(d), "head 65535 >= queue size 8");
}

/* 6. next >= queue size; loops; a chain longer than the queue size. */
static void test_h6_next_and_loops(void **state)
{
	drv *d = *state;
	desc(d, 0, DATA, 4, VRING_DESC_F_NEXT, QSIZE);
	avail_add(d, 0);
	expect_broken(d, pop(d), "descriptor 0: next 8 is out of range (8 entries)");

	setup(d, QSIZE, true, false);
	desc(d, 2, DATA, 4, VRING_DESC_F_NEXT, 5);
	desc(d, 5, DATA, 4, VRING_DESC_F_NEXT, 2); /* a -> b -> a */
	avail_add(d, 2);
	expect_broken(d, pop(d), "chain from head 2 is longer than the queue size 8");

	/* 0 -> 1 -> ... -> 7 -> 0: the ninth descriptor is refused before it is read
	 * (were it read, its being readable after writable ones would be the complaint). */
	setup(d, QSIZE, true, false);
	for (uint16_t i = 0; i < QSIZE; i++)
		desc(d, i, DATA, 1, VRING_DESC_F_NEXT | (i ? VRING_DESC_F_WRITE : 0), (uint16_t)((i + 1) % QSIZE));
	avail_add(d, 0);
	expect_broken(d, pop(d), "chain from head 0 is longer than the queue size 8");

	/* The longest legal chain: all eight descriptors. */
	setup(d, QSIZE, true, false);
	for (uint16_t i = 0; i < QSIZE; i++)
		desc(d, i, DATA, 1, i + 1 < QSIZE ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	avail_add(d, 0);
	assert_int_equal(pop(d), 1);
	assert_int_equal(d->c->n_out, QSIZE);

	/* The same inside an indirect table: bounded by its entries. */
	setup(d, QSIZE, true, false);
	put_desc(d, TABLE, 0, DATA, 4, VRING_DESC_F_NEXT, 1);
	put_desc(d, TABLE, 1, DATA, 4, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 0);
	desc(d, 0, TABLE, 32, VRING_DESC_F_INDIRECT, 0);
	avail_add(d, 0);
	expect_broken(d, pop(d), "indirect table 0x8000: chain longer than its 2 entries");

	setup(d, QSIZE, true, false);
	put_desc(d, TABLE, 0, DATA, 4, VRING_DESC_F_NEXT, 2);
	desc(d, 0, TABLE, 32, VRING_DESC_F_INDIRECT, 0);
	avail_add(d, 0);
	expect_broken(d, pop(d), "indirect descriptor 0: next 2 is out of range (2 entries)");

	/* A loop of zero-length descriptors ends too (CVE-2016-6490). */
	setup(d, QSIZE, true, false);
	desc(d, 0, DATA, 0, VRING_DESC_F_NEXT, 0);
	avail_add(d, 0);
	expect_broken(d, pop(d), "longer than the queue size");
}

/* 7. Address + length wrapping 2^64, or ending outside RAM (or in read-only RAM for a
 * device-writable buffer). */
static void test_h7_bad_buffers(void **state)
{
	drv *d = *state;
	desc(d, 0, 0xfffffffffffff000ull, 0x2000, 0, 0);
	avail_add(d, 0);
	expect_broken(d, pop(d), "descriptor 0: buffer 0xfffffffffffff000 + 0x2000 wraps around 2^64");

	setup(d, QSIZE, true, false);
	desc(d, 0, DATA, 4, VRING_DESC_F_NEXT, 1);
	desc(d, 1, RAM_SIZE - 8, 16, 0, 0);
	avail_add(d, 0);
	expect_broken(d, pop(d), "descriptor 1: buffer [0x3ffff8, 0x400008) is not inside guest RAM");

	setup(d, QSIZE, true, false);
	desc(d, 0, 0xd0000000, 4, 0, 0);
	avail_add(d, 0);
	expect_broken(d, pop(d), "not inside guest RAM");

	setup(d, QSIZE, true, false);
	desc(d, 0, ROM_GPA, 16, 0, 1); /* reading ROM is fine */
	avail_add(d, 0);
	assert_int_equal(pop(d), 1);
	desc(d, 1, ROM_GPA, 16, VRING_DESC_F_WRITE, 0);
	avail_add(d, 1);
	expect_broken(d, pop(d), "descriptor 1: buffer [0x800000, 0x800010) is in read-only memory");

	setup(d, QSIZE, true, false);
	put_desc(d, TABLE, 0, RAM_SIZE - 4, 5, 0, 0);
	desc(d, 0, TABLE, 16, VRING_DESC_F_INDIRECT, 0);
	avail_add(d, 0);
	expect_broken(d, pop(d), "indirect descriptor 0: buffer [0x3ffffc, 0x400001) is not inside guest RAM");
}

/* 8. Indirect tables: bad length, too many entries, nested, chained, outside RAM, not
 * negotiated. */
static void test_h8_bad_indirect(void **state)
{
	drv *d = *state;
	static const struct {
		uint64_t addr;
		uint32_t len;
		uint16_t flags;
		const char *needle;
	} cases[] = {
		{ TABLE, 24, 0, "indirect table length 24 is not a non-zero multiple of 16" },
		{ TABLE, 0, 0, "indirect table length 0 is not" },
		{ TABLE, 65536u * 16, 0, "indirect table of 65536 entries (more than 65535)" },
		{ TABLE, 0xfffffff0u, 0, "(more than 65535)" },
		{ RAM_SIZE - 16, 32, 0, "indirect table [0x3ffff0, +0x20) is outside guest RAM" },
		{ 0xd0000000, 16, 0, "is outside guest RAM" },
		{ TABLE, 16, VRING_DESC_F_NEXT, "is indirect and also has VRING_DESC_F_NEXT" },
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		setup(d, QSIZE, true, false);
		put_desc(d, TABLE, 0, DATA, 4, 0, 0);
		desc(d, 1, DATA, 4, 0, 0);
		desc(d, 0, cases[k].addr, cases[k].len, VRING_DESC_F_INDIRECT | cases[k].flags, 1);
		avail_add(d, 0);
		expect_broken(d, pop(d), cases[k].needle);
	}

	/* An indirect descriptor inside an indirect table. */
	setup(d, QSIZE, true, false);
	put_desc(d, TABLE, 0, DATA, 4, VRING_DESC_F_NEXT, 1);
	put_desc(d, TABLE, 1, TABLE + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	put_desc(d, TABLE + 0x100, 0, DATA, 4, 0, 0);
	desc(d, 0, TABLE, 32, VRING_DESC_F_INDIRECT, 0);
	avail_add(d, 0);
	expect_broken(d, pop(d), "indirect table 0x8000: descriptor 1 refers to another indirect table");

	/* Without VIRTIO_F_RING_INDIRECT_DESC. */
	setup(d, QSIZE, false, false);
	put_desc(d, TABLE, 0, DATA, 4, 0, 0);
	desc(d, 0, TABLE, 16, VRING_DESC_F_INDIRECT, 0);
	avail_add(d, 0);
	expect_broken(d, pop(d), "VIRTIO_F_RING_INDIRECT_DESC was not negotiated");

	/* The largest table is accepted (its entries count toward nothing else). */
	setup(d, QSIZE, true, false);
	uint32_t n = VMM_VIRTQ_MAX_INDIRECT;
	assert_true(BIG_TABLE + 16ull * n <= RAM_SIZE);
	for (uint32_t i = 0; i < n; i++)
		put_desc(d, BIG_TABLE, i, DATA, 0, i + 1 < n ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	desc(d, 0, BIG_TABLE, 16 * n, VRING_DESC_F_INDIRECT, 0);
	avail_add(d, 0);
	assert_int_equal(pop(d), 1);
	assert_int_equal(d->c->n_out + d->c->n_in, 0);
}

/* 9. Over 4 GiB in one chain; and the segment limit. A 1 GiB sparse region (never
 * touched) lets each descriptor be valid on its own, so the total is what trips. */
static void test_h9_total_length(void **state)
{
	drv *d = *state;
	const uint64_t big = 0x100000000ull, gib = 1ull << 30;
	assert_int_equal(add_region(d->mem, big, gib, VMM_MEM_ANON, 0), 0);
	for (uint32_t i = 0; i < 4; i++)
		put_desc(d, TABLE, i, big, (uint32_t)gib, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
	put_desc(d, TABLE, 4, DATA, 0, VRING_DESC_F_NEXT, 5); /* 4 GiB exactly: fine */
	put_desc(d, TABLE, 5, big, 0, 0, 0);
	desc(d, 0, TABLE, 6 * 16, VRING_DESC_F_INDIRECT, 0);
	avail_add(d, 0);
	assert_int_equal(pop(d), 1);
	assert_int_equal(d->c->n_out, 4);
	assert_int_equal(d->c->out_bytes, 4 * gib);
	assert_int_equal(push(d, 0, 0), 0);

	put_desc(d, TABLE, 5, DATA, 1, VRING_DESC_F_WRITE, 0); /* one more byte */
	avail_add(d, 0);
	expect_broken(d, pop(d), "chain from head 0 holds more than 4 GiB");
	assert_int_equal(vmm_mem_remove_region(d->mem, big), 0);

	/* VMM_VIRTQ_MAX_SEGS buffers are fine; one more is not. */
	uint32_t n = VMM_VIRTQ_MAX_SEGS;
	setup(d, QSIZE, true, false);
	for (uint32_t i = 0; i <= n; i++)
		put_desc(d, TABLE, i, DATA + i, 1, i < n ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	put_desc(d, TABLE, n - 1, DATA + n - 1, 1, 0, 0);
	desc(d, 0, TABLE, 16 * (n + 1), VRING_DESC_F_INDIRECT, 0);
	avail_add(d, 0);
	assert_int_equal(pop(d), 1);
	assert_int_equal(d->c->n_out, n);
	expect_seg(&d->c->segs[n - 1], d, DATA + n - 1, 1);
	assert_int_equal(push(d, 0, 0), 0);
	put_desc(d, TABLE, n - 1, DATA + n - 1, 1, VRING_DESC_F_NEXT, (uint16_t)n);
	avail_add(d, 0);
	expect_broken(d, pop(d), "more than 1024 buffers");
}

/* 10. A device-readable buffer after a device-writable one. */
static void test_h10_readable_after_writable(void **state)
{
	drv *d = *state;
	desc(d, 0, DATA, 4, VRING_DESC_F_NEXT, 1);
	desc(d, 1, DATA + 0x100, 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	desc(d, 2, DATA + 0x200, 4, 0, 0);
	avail_add(d, 0);
	expect_broken(d, pop(d), "descriptor 2 is device-readable after a device-writable one");

	/* Across the switch into an indirect table, and for an empty descriptor too. */
	setup(d, QSIZE, true, false);
	put_desc(d, TABLE, 0, DATA, 0, 0, 0);
	desc(d, 0, DATA, 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	desc(d, 1, TABLE, 16, VRING_DESC_F_INDIRECT, 0);
	avail_add(d, 0);
	expect_broken(d, pop(d), "indirect descriptor 0 is device-readable after a device-writable one");
}

/* 12. Queue registers rewritten after the queue is enabled: refused, nothing changes. */
static void test_h12_registers_locked(void **state)
{
	drv *d = *state;
	assert_int_equal(vmm_virtq_set_size(d->q, 4), -EBUSY);
	assert_int_equal(vmm_virtq_set_addrs(d->q, 0x20000, 0x21000, 0x22000), -EBUSY);
	assert_non_null(strstr(vmm_last_error(), "enabled"));
	assert_int_equal(vmm_virtq_size(d->q), QSIZE);
	uint64_t a, b, c;
	vmm_virtq_addrs(d->q, &a, &b, &c);
	assert_true(a == DESC && b == AVAIL && c == USED);
	/* Another memory map cannot take over an enabled queue, nor be used with it. */
	vmm_mem *other = NULL;
	assert_int_equal(vmm_mem_create(&other), 0);
	assert_int_equal(add_region(other, 0, RAM_SIZE, VMM_MEM_ANON, 0), 0);
	assert_int_equal(vmm_virtq_enable(d->q, other), -EBUSY);
	assert_int_equal(vmm_virtq_pop(d->q, other, d->c), -EINVAL);
	assert_int_equal(vmm_virtq_push(d->q, other, 0, 0), -EINVAL);
	vmm_mem_destroy(other);
	/* The queue still works with its original layout. */
	desc(d, 7, DATA, 4, 0, 0);
	avail_add(d, 7);
	assert_int_equal(pop(d), 1);
	assert_int_equal(push(d, 7, 0), 0);
	assert_int_equal(used_idx(d), 1);
}

/* 13. A head re-submitted while in flight; and no more than `size` chains in flight
 * however fast the driver submits (CVE-2016-5403). */
static void test_h13_resubmitted_head(void **state)
{
	drv *d = *state;
	desc(d, 1, DATA, 4, 0, 0);
	avail_add(d, 1);
	avail_add(d, 1);
	assert_int_equal(pop(d), 1);
	expect_broken(d, pop(d), "avail entry 1: head 1 is already in flight");

	setup(d, QSIZE, true, false);
	for (uint16_t h = 0; h < QSIZE; h++) {
		desc(d, h, DATA, 4, 0, 0);
		avail_add(d, h);
	}
	for (uint16_t h = 0; h < QSIZE; h++)
		assert_int_equal(pop(d), 1);
	/* Pushed heads may be reused. */
	assert_int_equal(push(d, 3, 0), 0);
	avail_add(d, 3);
	assert_int_equal(pop(d), 1);
	assert_int_equal(d->c->head, 3);
	/* All eight in flight: whatever the driver adds now names one of them. */
	avail_add(d, 5);
	expect_broken(d, pop(d), "head 5 is already in flight");
}

/* 14. The guest rewrites descriptors after pop: the popped chain does not change. */
static void test_h14_rewrite_after_pop(void **state)
{
	drv *d = *state;
	put_desc(d, TABLE, 0, DATA + 0x300, 8, VRING_DESC_F_WRITE, 0);
	desc(d, 0, DATA, 16, VRING_DESC_F_NEXT, 1);
	desc(d, 1, TABLE, 16, VRING_DESC_F_INDIRECT, 0);
	avail_add(d, 0);
	assert_int_equal(pop(d), 1);
	vmm_virtq_chain before = *d->c;
	/* Point everything outside RAM and change lengths and flags. */
	desc(d, 0, 0xd0000000, 0xffffffff, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 7);
	desc(d, 1, 0xd0000000, 0xffffff00, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 9);
	put_desc(d, TABLE, 0, 0xd0000000, 0xffffffff, 0, 0);
	put16(d, AVAIL + 4, 0xffff);
	assert_memory_equal(&before, d->c, offsetof(vmm_virtq_chain, segs) + 2 * sizeof(vmm_virtq_seg));
	expect_seg(&d->c->segs[0], d, DATA, 16);
	expect_seg(&d->c->segs[1], d, DATA + 0x300, 8);
	uint8_t data[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	assert_int_equal(vmm_virtq_chain_write(d->c, 0, data, sizeof data), 8);
	assert_memory_equal(d->ram + DATA + 0x300, data, 8);
	/* The device's clamp uses what it popped, not the rewritten lengths. */
	assert_int_equal(push(d, 0, 0xffffffff), 0);
	uint32_t id, len;
	used_elem(d, 0, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 8);
	assert_false(vmm_virtq_broken(d->q));
}

/* NULL handling of the accessors (library calls never crash on NULL). */
static void test_null_args(void **state)
{
	drv *d = *state;
	assert_int_equal(vmm_virtq_create(NULL, 8), -EINVAL);
	vmm_virtq_destroy(NULL);
	vmm_virtq_reset(NULL);
	assert_false(vmm_virtq_ready(NULL));
	assert_false(vmm_virtq_broken(NULL));
	assert_int_equal(vmm_virtq_size(NULL), 0);
	assert_int_equal(vmm_virtq_pop(NULL, d->mem, d->c), -EINVAL);
	assert_int_equal(vmm_virtq_pop(d->q, d->mem, NULL), -EINVAL);
	assert_int_equal(vmm_virtq_push(NULL, d->mem, 0, 0), -EINVAL);
	assert_int_equal(vmm_virtq_enable(d->q, NULL), -EINVAL);
	assert_int_equal(vmm_virtq_chain_read(NULL, 0, d, 1), 0);
	assert_int_equal(vmm_virtq_chain_write(d->c, 0, NULL, 1), 0);
	vmm_virtq_addrs(NULL, NULL, NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, drv_setup, drv_teardown)
		T(test_direct_chain),
		T(test_indirect_chain),
		T(test_zero_length_descriptors),
		T(test_header_only_and_write_only),
		T(test_used_ring_wraps),
		T(test_chain_read_write),
		T(test_interrupt_flags),
		T(test_interrupt_event_idx),
		T(test_event_idx_wrap),
		T(test_set_notify_flags),
		T(test_set_notify_event_idx),
		T(test_reset),
		T(test_dirty_tracking),
		T(test_h1_bad_sizes),
		T(test_h2_bad_ring_addresses),
		T(test_h3_pop_before_enable),
		T(test_h4_avail_idx_jump),
		T(test_h5_head_out_of_range),
		T(test_h6_next_and_loops),
		T(test_h7_bad_buffers),
		T(test_h8_bad_indirect),
		T(test_h9_total_length),
		T(test_h10_readable_after_writable),
		T(test_h12_registers_locked),
		T(test_h13_resubmitted_head),
		T(test_h14_rewrite_after_pop),
		T(test_null_args),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
