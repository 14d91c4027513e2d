/* Guest memory with a real guest (tests/guests/memory.c): data the host writes is what
 * the guest reads, data the guest writes is what the host reads, dirty tracking reports
 * exactly the pages the guest wrote, and a read-only region keeps its contents. */
#include "harness/harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define IN 0x1000000ull
#define OUT 0x1100000ull
#define WORDS 16384u
#define DIRTY 0x2000000ull
#define DIRTY_LEN (1ull << 20) /* 256 pages, a region of its own */
#define RO 0x3000000ull
#define RO_LEN 0x10000ull

struct ro_backing {
	void *host;
};

static uint32_t ro_word(uint32_t i) { return 0xc0de0000u + i * 3; }

static void add_regions(kt_vm *t, struct ro_backing *ro)
{
	vmm_mem_region_opts d = VMM_MEM_REGION_OPTS_INIT;
	d.gpa = DIRTY;
	d.len = DIRTY_LEN;
	d.name = "dirty";
	kt_check(vmm_mem_add_region(t->mem, &d), "add dirty region");

	/* A read-only region needs its contents before it is added: our own mapping. */
	ro->host = mmap(NULL, RO_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(ro->host != MAP_FAILED);
	uint32_t *w = ro->host;
	for (uint32_t i = 0; i < RO_LEN / 4; i++)
		w[i] = ro_word(i);
	vmm_mem_region_opts r = VMM_MEM_REGION_OPTS_INIT;
	r.gpa = RO;
	r.len = RO_LEN;
	r.flags = VMM_MEM_READONLY;
	r.backing = VMM_MEM_HOST;
	r.host = ro->host;
	r.name = "rom";
	kt_check(vmm_mem_add_region(t->mem, &r), "add read-only region");
}

struct run {
	uint64_t gpa, npages;
};
struct runs {
	struct run r[64];
	unsigned n;
};

static int collect_fn(void *ctx, uint64_t gpa, uint64_t npages)
{
	struct runs *rs = ctx;
	if (rs->n < 64)
		rs->r[rs->n++] = (struct run){ gpa, npages };
	return 0;
}

/* Teardown: the VM first (it maps the region), then our mapping. */
struct mem_state {
	void *t; /* kt_vm, a void * so kt_create can store it before it can fail */
	struct ro_backing ro;
};

static int mem_teardown(void **state)
{
	struct mem_state *s = *state;
	if (s) {
		kt_destroy(s->t);
		if (s->ro.host)
			munmap(s->ro.host, RO_LEN);
		free(s);
	}
	*state = NULL;
	return 0;
}

static kt_vm *setup(void **state, uint32_t vm_flags)
{
	mem_teardown(state);
	struct mem_state *s = calloc(1, sizeof *s);
	assert_non_null(s);
	*state = s;
	kt_opts o = { .guest = "memory", .cpl = 3, .vm_flags = vm_flags };
	kt_vm *t = kt_create(&s->t, &o);
	add_regions(t, &s->ro);
	return t;
}

static void check_bitmap_only(const uint64_t *bm, const unsigned *pages, unsigned n)
{
	uint64_t want[DIRTY_LEN / 4096 / 64] = { 0 };
	for (unsigned i = 0; i < n; i++)
		want[pages[i] / 64] |= 1ull << (pages[i] % 64);
	for (unsigned w = 0; w < DIRTY_LEN / 4096 / 64; w++)
		if (bm[w] != want[w])
			fail_msg("dirty bitmap word %u: %#" PRIx64 ", expected %#" PRIx64, w, bm[w], want[w]);
}

static void test_memory(void **state)
{
	kt_vm *t = setup(state, VMM_VM_EXIT_ON_UNHANDLED_IO);

	/* 1: host -> guest. */
	static uint32_t in[WORDS];
	uint32_t sum = 0;
	for (uint32_t i = 0; i < WORDS; i++) {
		in[i] = i * 0x01000193u + 0x811c9dc5u;
		sum += in[i];
	}
	kt_write(t, IN, in, sizeof in);
	kt_run_expect(t, 0, sum);

	/* 2: guest -> host. */
	kt_run_expect(t, 0, 2);
	static uint32_t out[WORDS];
	kt_read(t, OUT, out, sizeof out);
	for (uint32_t i = 0; i < WORDS; i++)
		if (out[i] != (i * 2654435761u ^ 0x5a5a5a5au))
			fail_msg("guest word %u: %#x", i, out[i]);

	/* 3: dirty tracking from here on; the guest writes pages 3, 4 and 100. */
	assert_false(vmm_mem_dirty_enabled(t->mem));
	kt_check(vmm_mem_dirty_start(t->mem), "vmm_mem_dirty_start");
	assert_true(vmm_mem_dirty_enabled(t->mem));
	kt_run_expect(t, 0, 3);
	uint64_t bm[DIRTY_LEN / 4096 / 64];
	assert_int_equal(vmm_mem_dirty_bitmap(t->mem, DIRTY, bm, 1), -ENOSPC); /* too small */
	kt_check(vmm_mem_dirty_bitmap(t->mem, DIRTY, bm, 4), "vmm_mem_dirty_bitmap");
	check_bitmap_only(bm, (const unsigned[]){ 3, 4, 100 }, 3);
	/* Fetching cleared it. */
	kt_check(vmm_mem_dirty_bitmap(t->mem, DIRTY, bm, 4), "vmm_mem_dirty_bitmap");
	check_bitmap_only(bm, NULL, 0);

	/* 4: pages 7-10, collected as runs: exactly one run in the DIRTY region. */
	kt_run_expect(t, 0, 4);
	struct runs rs = { .n = 0 };
	kt_check(vmm_mem_dirty_collect(t->mem, collect_fn, &rs), "vmm_mem_dirty_collect");
	unsigned in_region = 0;
	for (unsigned i = 0; i < rs.n; i++) {
		if (rs.r[i].gpa >= DIRTY && rs.r[i].gpa < DIRTY + DIRTY_LEN) {
			in_region++;
			assert_int_equal(rs.r[i].gpa, DIRTY + 7 * 4096);
			assert_int_equal(rs.r[i].npages, 4);
		}
		/* Runs are in GPA order and never overlap. */
		if (i)
			assert_true(rs.r[i].gpa >= rs.r[i - 1].gpa + rs.r[i - 1].npages * 4096);
	}
	assert_int_equal(in_region, 1);
	/* The guest's stack is in RAM and was written: RAM shows up too. */
	assert_true(rs.n >= 2);
	/* A host write through vmm_mem_write is tracked as well. */
	uint8_t byte = 1;
	kt_write(t, DIRTY + 200 * 4096, &byte, 1);
	kt_check(vmm_mem_dirty_bitmap(t->mem, DIRTY, bm, 4), "vmm_mem_dirty_bitmap");
	check_bitmap_only(bm, (const unsigned[]){ 200 }, 1);
	kt_check(vmm_mem_dirty_stop(t->mem), "vmm_mem_dirty_stop");
	assert_false(vmm_mem_dirty_enabled(t->mem));
	assert_int_equal(vmm_mem_dirty_collect(t->mem, NULL, NULL), -EINVAL);

	/* 5: the read-only region reads as the host filled it; host writes are refused. */
	kt_run_expect(t, 0, ro_word(4));
	uint32_t v = 0;
	assert_int_equal(vmm_mem_write(t->mem, RO + 0x10, &v, 4), -EROFS);
	kt_read(t, RO + 0x10, &v, 4);
	assert_int_equal(v, ro_word(4));

	/* 6: the guest's write comes back as an MMIO write exit and is not applied. */
	vmm_exit e;
	char buf[256];
	assert_int_equal(kt_run(t, 0, &e, 0), 0);
	if (e.reason != VMM_EXIT_IO)
		fail_msg("expected an IO exit, got %s", kt_exit_str(&e, buf, sizeof buf));
	assert_true(e.u.io.is_mmio);
	assert_true(e.u.io.is_write);
	assert_int_equal(e.u.io.addr, RO + 0x10);
	assert_int_equal(e.u.io.size, 4);
	assert_int_equal(e.u.io.value, 0x12345678);
	kt_run_expect(t, 0, ro_word(4));
	kt_run_expect(t, 0, 0x600d);
}

/* Without VMM_VM_EXIT_ON_UNHANDLED_IO the write to read-only memory is dropped quietly. */
static void test_readonly_dropped(void **state)
{
	kt_vm *t = setup(state, 0);
	static uint32_t zero[WORDS];
	kt_write(t, IN, zero, sizeof zero);
	kt_run_expect(t, 0, 0);
	kt_run_expect(t, 0, 2);
	kt_run_expect(t, 0, 3);
	kt_run_expect(t, 0, 4);
	kt_run_expect(t, 0, ro_word(4));
	kt_run_expect(t, 0, ro_word(4));
	kt_run_expect(t, 0, 0x600d);
	/* The guest's writes to the DIRTY region landed. */
	uint8_t b;
	kt_read(t, DIRTY + 100 * 4096 + 123, &b, 1);
	assert_int_equal(b, 100);
}

/* Region bookkeeping seen from a VM: info, overlaps, removal. */
static void test_regions(void **state)
{
	kt_vm *t = setup(state, 0);
	assert_int_equal(vmm_mem_region_count(t->mem), 3);
	vmm_mem_region_info info;
	kt_check(vmm_mem_get_region(t->mem, 2, &info), "vmm_mem_get_region");
	assert_int_equal(info.gpa, RO);
	assert_int_equal(info.len, RO_LEN);
	assert_true(info.flags & VMM_MEM_READONLY);
	assert_int_equal(vmm_mem_get_region(t->mem, 3, &info), -ENOENT);
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.gpa = DIRTY + 4096;
	o.len = 4096;
	assert_int_equal(vmm_mem_add_region(t->mem, &o), -EEXIST);
	kt_check(vmm_mem_remove_region(t->mem, DIRTY), "vmm_mem_remove_region");
	assert_int_equal(vmm_mem_region_count(t->mem), 2);
	assert_int_equal(vmm_mem_remove_region(t->mem, DIRTY), -ENOENT);
	uint8_t b = 0;
	assert_int_equal(vmm_mem_read(t->mem, DIRTY, &b, 1), -EFAULT);
}

/* VMM_VM_DONTFORK: a fork() child finds none of the VM's guest RAM mapped (memfd RAM,
 * a region of its own, and the caller's mapping behind a VMM_MEM_HOST region), where
 * without the flag it sees the same bytes; either way the guest in the parent goes on
 * reading what the host wrote and writing what the host reads. */
static void test_dontfork(void **state)
{
	for (int on = 0; on < 2; on++) {
		kt_vm *t = setup(state, VMM_VM_EXIT_ON_UNHANDLED_IO | (on ? VMM_VM_DONTFORK : 0));
		static uint32_t in[WORDS];
		uint32_t sum = 0;
		for (uint32_t i = 0; i < WORDS; i++) {
			in[i] = i * 7919u + (uint32_t)on;
			sum += in[i];
		}
		kt_write(t, IN, in, sizeof in);
		kt_write(t, DIRTY, "dirty", 5);
		static const uint64_t gpas[] = { IN, DIRTY, RO };
		for (unsigned i = 0; i < 3; i++) {
			void *host;
			kt_check(vmm_mem_translate(t->mem, gpas[i], 8, false, &host), "translate");
			uint8_t now[8];
			kt_read(t, gpas[i], now, sizeof now);
			enum kt_fork_view v = kt_fork_view(host, now, sizeof now);
			if (v != (on ? KT_FORK_UNMAPPED : KT_FORK_SAME))
				fail_msg("DONTFORK %d: gpa %#" PRIx64 ": the child's view is %d", on, gpas[i], (int)v);
		}
		kt_run_expect(t, 0, sum);
		kt_run_expect(t, 0, 2);
		uint32_t out[4];
		kt_read(t, OUT, out, sizeof out);
		for (uint32_t i = 0; i < 4; i++)
			assert_int_equal(out[i], i * 2654435761u ^ 0x5a5a5a5au);
	}
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_memory, mem_teardown),
		cmocka_unit_test_teardown(test_readonly_dropped, mem_teardown),
		cmocka_unit_test_teardown(test_regions, mem_teardown),
		cmocka_unit_test_teardown(test_dontfork, mem_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
