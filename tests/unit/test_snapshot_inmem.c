/* Pure parts of in-memory snapshots and resets, without KVM:
 *  - device-state sections (SNAP_SEC_DEVICE) survive encode -> parse, and hostile ones
 *    (out of order, empty, oversized) are rejected with a message;
 *  - the dirty log's two consumers (the application's vmm_mem_dirty_* and a bound
 *    snapshot's vmm_mem_snap_*) each see every written page once, whichever collects
 *    first; binding, re-binding and the application's stop behave as documented
 *    (host writes on a standalone map: the same bitmaps the KVM log merges into). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mem/mem_internal.h"
#include "snapshot/snapshot_internal.h"

/* ---- device sections ---- */

static struct snap_desc *small_desc(uint32_t nr_devices, uint32_t blob_len)
{
	struct snap_desc *d = calloc(1, sizeof *d);
	assert_non_null(d);
	d->irqchip = VMM_IRQCHIP_NONE;
	d->exit_port = 0xf4;
	d->fault_port = 0xf5;
	d->mem_source = SNAP_MEM_FILE;
	d->nr_regions = 1;
	d->regions = calloc(1, sizeof *d->regions);
	assert_non_null(d->regions);
	d->regions[0] = (struct snap_region){ .gpa = 0, .len = 8192, .offset = SNAP_MEM_HEADER_SIZE };
	d->mem_file_size = SNAP_MEM_HEADER_SIZE + 8192;
	d->nr_devices = nr_devices;
	d->devices = calloc(nr_devices ? nr_devices : 1, sizeof *d->devices);
	assert_non_null(d->devices);
	for (uint32_t i = 0; i < nr_devices; i++) {
		d->devices[i].len = blob_len + i;
		d->devices[i].data = malloc(blob_len + i + 1);
		assert_non_null(d->devices[i].data);
		for (uint32_t k = 0; k < blob_len + i; k++)
			d->devices[i].data[k] = (uint8_t)(i * 31 + k);
	}
	return d;
}

static void test_device_round_trip(void **state)
{
	(void)state;
	struct snap_desc *d = small_desc(3, 13), *back = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	assert_int_equal(snap_encode(d, &buf, &len), 0);
	assert_int_equal(snap_parse(buf, len, &back), 0);
	assert_int_equal(back->nr_devices, 3);
	for (uint32_t i = 0; i < 3; i++) {
		assert_int_equal(back->devices[i].len, 13 + i);
		assert_memory_equal(back->devices[i].data, d->devices[i].data, 13 + i);
	}
	snap_desc_free(back);
	free(buf);
	snap_desc_free(d);
	/* No devices: no sections, nothing allocated. */
	d = small_desc(0, 0);
	assert_int_equal(snap_encode(d, &buf, &len), 0);
	assert_int_equal(snap_parse(buf, len, &back), 0);
	assert_int_equal(back->nr_devices, 0);
	snap_desc_free(back);
	free(buf);
	snap_desc_free(d);
}

/* Re-checksums an edited state file. */
static void fix_crc(uint8_t *buf, size_t len)
{
	struct snap_file_header h;
	memcpy(&h, buf, sizeof h);
	h.crc = 0;
	memcpy(buf, &h, sizeof h);
	uint32_t crc = vmm_crc32c(0, buf, len);
	memcpy(buf + offsetof(struct snap_file_header, crc), &crc, sizeof crc);
}

/* The offset of the n-th section header of type `type`. */
static size_t find_section(const uint8_t *buf, size_t len, uint32_t type, int n)
{
	size_t pos = sizeof(struct snap_file_header);
	while (pos + sizeof(struct snap_section_header) <= len) {
		struct snap_section_header h;
		memcpy(&h, buf + pos, sizeof h);
		if (h.type == type && n-- == 0)
			return pos;
		pos += sizeof h + h.length + (SNAP_ALIGN - h.length % SNAP_ALIGN) % SNAP_ALIGN;
	}
	fail_msg("section %#x not found", type);
	return 0;
}

static void expect_bad(uint8_t *buf, size_t len, const char *what)
{
	fix_crc(buf, len);
	struct snap_desc *d = NULL;
	assert_int_equal(snap_parse(buf, len, &d), -EINVAL);
	assert_null(d);
	if (!strstr(vmm_last_error(), what))
		fail_msg("expected \"%s\" in \"%s\"", what, vmm_last_error());
}

static void test_device_hostile(void **state)
{
	(void)state;
	struct snap_desc *d = small_desc(2, 16);
	uint8_t *buf = NULL;
	size_t len = 0;
	assert_int_equal(snap_encode(d, &buf, &len), 0);
	uint8_t *copy = malloc(len);
	assert_non_null(copy);

	/* Out of order: the second section claims index 0 again, or index 5. */
	struct snap_section_header h;
	size_t second = find_section(buf, len, SNAP_SEC_DEVICE, 1);
	for (uint32_t inst = 0; inst < 6; inst += 5) {
		memcpy(copy, buf, len);
		memcpy(&h, copy + second, sizeof h);
		h.instance = inst;
		memcpy(copy + second, &h, sizeof h);
		expect_bad(copy, len, "devices are numbered in order");
	}
	/* An empty state: length 0 (the 16 payload bytes become padding, so the sections
	 * still line up; they must then be zero: zero them). */
	memcpy(copy, buf, len);
	size_t first = find_section(copy, len, SNAP_SEC_DEVICE, 0);
	memcpy(&h, copy + first, sizeof h);
	h.length = 0;
	memcpy(copy + first, &h, sizeof h);
	memset(copy + first + sizeof h, 0, 16);
	expect_bad(copy, len, "device state of 0 bytes");
	/* Over the size limit (and past the end of the file). */
	memcpy(copy, buf, len);
	memcpy(&h, copy + first, sizeof h);
	h.length = SNAP_MAX_DEVICE_STATE + 8;
	memcpy(copy + first, &h, sizeof h);
	fix_crc(copy, len);
	struct snap_desc *bad = NULL;
	assert_int_equal(snap_parse(copy, len, &bad), -EINVAL);
	free(copy);
	free(buf);
	snap_desc_free(d);
}

/* ---- the dirty log's two consumers ---- */

struct pages {
	uint64_t first[64], n[64];
	size_t runs;
	uint64_t total;
};

static void snap_fn(void *ctx, size_t region, uint64_t first, uint64_t n)
{
	struct pages *p = ctx;
	assert_int_equal(region, 0);
	assert_true(p->runs < 64);
	p->first[p->runs] = first;
	p->n[p->runs++] = n;
	p->total += n;
}

static int app_fn(void *ctx, uint64_t gpa, uint64_t npages)
{
	struct pages *p = ctx;
	assert_true(p->runs < 64);
	p->first[p->runs] = gpa / VMM_PAGE_SIZE;
	p->n[p->runs++] = npages;
	p->total += npages;
	return 0;
}

static struct pages snap_pages(vmm_mem *m)
{
	struct pages p = { 0 };
	assert_int_equal(vmm_mem_snap_collect(m, snap_fn, &p), 0);
	return p;
}

static struct pages app_pages(vmm_mem *m)
{
	struct pages p = { 0 };
	assert_int_equal(vmm_mem_dirty_collect(m, app_fn, &p), 0);
	return p;
}

static void poke(vmm_mem *m, uint64_t page)
{
	uint8_t b = 1;
	assert_int_equal(vmm_mem_write(m, page * VMM_PAGE_SIZE + 5, &b, 1), 0);
}

static void test_two_consumers(void **state)
{
	(void)state;
	vmm_mem *m = NULL;
	assert_int_equal(vmm_mem_create(&m), 0);
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.len = 256 * VMM_PAGE_SIZE;
	assert_int_equal(vmm_mem_add_region(m, &o), 0);
	uint8_t id[16] = { 1, 2, 3 }, other[16] = { 9 };

	assert_false(vmm_mem_snap_bound(m, id));
	struct pages p = { 0 };
	assert_int_equal(vmm_mem_snap_collect(m, snap_fn, &p), -EINVAL); /* not bound */
	poke(m, 1); /* before any tracking: nobody's business */
	assert_int_equal(vmm_mem_snap_bind(m, id), 0);
	assert_true(vmm_mem_snap_bound(m, id));
	assert_false(vmm_mem_snap_bound(m, other));
	assert_true(vmm_mem_dirty_enabled(m)); /* host writes are marked now */
	assert_int_equal(snap_pages(m).total, 0);

	/* Only the snapshot tracks. Runs: 3-5 merged, 64-127 as a full word, 200. */
	for (uint64_t pg = 3; pg <= 5; pg++)
		poke(m, pg);
	for (uint64_t pg = 64; pg < 128; pg++)
		poke(m, pg);
	poke(m, 200);
	p = snap_pages(m);
	assert_int_equal(p.runs, 3);
	assert_int_equal(p.first[0], 3);
	assert_int_equal(p.n[0], 3);
	assert_int_equal(p.first[1], 64);
	assert_int_equal(p.n[1], 64);
	assert_int_equal(p.first[2], 200);
	assert_int_equal(snap_pages(m).total, 0); /* once */

	/* Both track: each sees every page once, whoever collects first. */
	assert_int_equal(vmm_mem_dirty_start(m), 0);
	poke(m, 7);
	p = app_pages(m);
	assert_int_equal(p.total, 1);
	assert_int_equal(p.first[0], 7);
	poke(m, 9);
	p = snap_pages(m);
	assert_int_equal(p.total, 2); /* 7 (kept for it) and 9 */
	assert_int_equal(p.first[0], 7);
	assert_int_equal(p.first[1], 9);
	p = app_pages(m);
	assert_int_equal(p.total, 1);
	assert_int_equal(p.first[0], 9);
	assert_int_equal(snap_pages(m).total, 0);
	assert_int_equal(app_pages(m).total, 0);

	/* A re-bind drops what was pending for the old binding, not the application's. */
	poke(m, 11);
	assert_int_equal(vmm_mem_snap_bind(m, other), 0);
	assert_false(vmm_mem_snap_bound(m, id));
	assert_int_equal(snap_pages(m).total, 0);
	p = app_pages(m);
	assert_int_equal(p.total, 1);
	assert_int_equal(p.first[0], 11);

	/* The application stops: the snapshot keeps tracking (and host writes marked). */
	assert_int_equal(vmm_mem_dirty_stop(m), 0);
	assert_true(vmm_mem_dirty_enabled(m));
	assert_int_equal(vmm_mem_dirty_collect(m, NULL, NULL), -EINVAL);
	poke(m, 13);
	p = snap_pages(m);
	assert_int_equal(p.total, 1);
	assert_int_equal(p.first[0], 13);
	/* The application restarts: only writes from now on are its business. */
	poke(m, 15);
	assert_int_equal(vmm_mem_dirty_start(m), 0);
	poke(m, 17);
	p = app_pages(m);
	assert_int_equal(p.total, 1);
	assert_int_equal(p.first[0], 17);
	p = snap_pages(m);
	assert_int_equal(p.total, 2); /* 15 and 17 */
	vmm_mem_destroy(m);
}

/* The application alone: the original single-consumer behaviour, and a walk that stops
 * early keeps the rest for next time. */
static int stop_fn(void *ctx, uint64_t gpa, uint64_t npages)
{
	(void)gpa;
	(void)npages;
	int *calls = ctx;
	return ++*calls == 2 ? -EINTR : 0;
}

static void test_app_only(void **state)
{
	(void)state;
	vmm_mem *m = NULL;
	assert_int_equal(vmm_mem_create(&m), 0);
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.len = 64 * VMM_PAGE_SIZE;
	assert_int_equal(vmm_mem_add_region(m, &o), 0);
	assert_int_equal(vmm_mem_dirty_start(m), 0);
	poke(m, 1);
	poke(m, 3);
	poke(m, 5);
	int calls = 0;
	assert_int_equal(vmm_mem_dirty_collect(m, stop_fn, &calls), -EINTR);
	struct pages p = app_pages(m);
	assert_int_equal(p.total, 2); /* 3 and 5 come back */
	assert_int_equal(p.first[0], 3);
	assert_int_equal(vmm_mem_dirty_stop(m), 0);
	assert_false(vmm_mem_dirty_enabled(m));
	vmm_mem_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_device_round_trip),
		cmocka_unit_test(test_device_hostile),
		cmocka_unit_test(test_two_consumers),
		cmocka_unit_test(test_app_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
