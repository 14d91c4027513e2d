/* Unit tests for the I/O bus: range registry, dispatch, locking, ioeventfd on real KVM. */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include <libvmm/libvmm.h>
#include "internal.h"
#include "kvm/kvm.h"

/* ---- a recording device ---------------------------------------------------------------- */

struct rec {
	unsigned id;
	unsigned reads, writes;
	uint64_t last_off;
	unsigned last_size;
	uint64_t last_val;
	uint64_t read_val; /* returned by reads */
};

static uint64_t rec_read(void *opaque, uint64_t off, unsigned size)
{
	struct rec *r = opaque;
	r->reads++;
	r->last_off = off;
	r->last_size = size;
	return r->read_val;
}

static void rec_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	struct rec *r = opaque;
	r->writes++;
	r->last_off = off;
	r->last_size = size;
	r->last_val = val;
}

static const vmm_bus_ops rec_ops = { rec_read, rec_write };

static vmm_bus *new_bus(void)
{
	vmm_bus *bus = NULL;
	assert_int_equal(vmm_bus_create(&bus), 0);
	assert_non_null(bus);
	return bus;
}

/* ---- registration ---------------------------------------------------------------------- */

static void test_create_destroy(void **state)
{
	(void)state;
	vmm_bus_destroy(NULL);
	assert_int_equal(vmm_bus_create(NULL), -EINVAL);
	vmm_bus *bus = new_bus();
	vmm_bus_destroy(bus);
}

static void test_register_args(void **state)
{
	(void)state;
	vmm_bus *bus = new_bus();
	struct rec d = { 0 };

	assert_int_equal(vmm_bus_register(NULL, VMM_BUS_PIO, 0, 1, &rec_ops, &d), -EINVAL);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0, 1, NULL, &d), -EINVAL);
	assert_int_equal(vmm_bus_register(bus, (vmm_bus_space)2, 0, 1, &rec_ops, &d), -EINVAL);
	assert_int_equal(vmm_bus_register(bus, (vmm_bus_space)-1, 0, 1, &rec_ops, &d), -EINVAL);
	/* length 0 */
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0x10, 0, &rec_ops, &d), -EINVAL);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0x10, 0, &rec_ops, &d), -EINVAL);
	assert_true(strlen(vmm_last_error()) > 0);
	/* wrap */
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, UINT64_MAX - 1, 3, &rec_ops, &d), -EINVAL);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 2, UINT64_MAX, &rec_ops, &d), -EINVAL);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, UINT64_MAX, UINT64_MAX, &rec_ops, &d), -EINVAL);
	/* port limits */
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0xffff, 2, &rec_ops, &d), -EINVAL);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0x10000, 1, &rec_ops, &d), -EINVAL);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0, 0x10001, &rec_ops, &d), -EINVAL);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, UINT64_MAX, 1, &rec_ops, &d), -EINVAL);
	/* the extremes that are valid */
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0xffff, 1, &rec_ops, &d), 0);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, UINT64_MAX, 1, &rec_ops, &d), 0);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0, UINT64_MAX, &rec_ops, &d), 0);
	vmm_bus_destroy(bus);

	bus = new_bus();
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0, 0x10000, &rec_ops, &d), 0);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0x1234, 1, &rec_ops, &d), -EEXIST);
	vmm_bus_destroy(bus);
}

static void test_overlap_and_adjacent(void **state)
{
	(void)state;
	vmm_bus *bus = new_bus();
	struct rec a = { .id = 1 }, b = { .id = 2 };

	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0x1000, 0x100, &rec_ops, &a), 0);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0x1000, 0x100, &rec_ops, &b), -EEXIST);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0x10ff, 1, &rec_ops, &b), -EEXIST);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0xf00, 0x101, &rec_ops, &b), -EEXIST);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0x1080, 0x10, &rec_ops, &b), -EEXIST);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0, 0x10000, &rec_ops, &b), -EEXIST);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0x10ff, UINT64_MAX - 0x10ff, &rec_ops, &b), -EEXIST);
	assert_non_null(strstr(vmm_last_error(), "overlaps"));
	/* touching on either side is fine */
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0xf00, 0x100, &rec_ops, &b), 0);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0x1100, 0x100, &rec_ops, &b), 0);
	/* the same addresses in the other space are independent */
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0x1000, 0x100, &rec_ops, &b), 0);

	uint8_t v;
	b.read_val = 0xbb;
	a.read_val = 0xaa;
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, 0xfff, &v, 1), 0);
	assert_int_equal(v, 0xbb);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, 0x1000, &v, 1), 0);
	assert_int_equal(v, 0xaa);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, 0x10ff, &v, 1), 0);
	assert_int_equal(v, 0xaa);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, 0x1100, &v, 1), 0);
	assert_int_equal(v, 0xbb);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_PIO, 0x1000, &v, 1), 0);
	assert_int_equal(v, 0xbb);
	vmm_bus_destroy(bus);
}

static void test_unregister(void **state)
{
	(void)state;
	vmm_bus *bus = new_bus();
	struct rec a = { .id = 1, .read_val = 0x11 }, b = { .id = 2, .read_val = 0x22 };
	uint8_t v;

	assert_int_equal(vmm_bus_unregister(bus, VMM_BUS_PIO, 0x3f8), -ENOENT);
	assert_int_equal(vmm_bus_unregister(NULL, VMM_BUS_PIO, 0x3f8), -EINVAL);
	assert_int_equal(vmm_bus_unregister(bus, (vmm_bus_space)7, 0x3f8), -EINVAL);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0x3f8, 8, &rec_ops, &a), 0);
	/* only the base identifies a range */
	assert_int_equal(vmm_bus_unregister(bus, VMM_BUS_PIO, 0x3f9), -ENOENT);
	assert_int_equal(vmm_bus_unregister(bus, VMM_BUS_MMIO, 0x3f8), -ENOENT);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_PIO, 0x3fa, &v, 1), 0);
	assert_int_equal(v, 0x11);
	assert_int_equal(vmm_bus_unregister(bus, VMM_BUS_PIO, 0x3f8), 0);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_PIO, 0x3fa, &v, 1), -ENOENT);
	assert_int_equal(v, 0xff);
	assert_int_equal(vmm_bus_unregister(bus, VMM_BUS_PIO, 0x3f8), -ENOENT);
	/* the space is free again, for a different device */
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0x3f8, 8, &rec_ops, &b), 0);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_PIO, 0x3fa, &v, 1), 0);
	assert_int_equal(v, 0x22);
	assert_int_equal(a.reads, 1);
	assert_int_equal(b.reads, 1);
	vmm_bus_destroy(bus);
}

/* ---- dispatch ------------------------------------------------------------------------ */

static void test_offsets_sizes_values(void **state)
{
	(void)state;
	vmm_bus *bus = new_bus();
	struct rec d = { .read_val = 0x8877665544332211ull };
	uint8_t buf[8];

	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0xd0000000, 0x1000, &rec_ops, &d), 0);
	static const unsigned sizes[] = { 1, 2, 4, 8 };
	for (unsigned i = 0; i < 4; i++) {
		unsigned sz = sizes[i];
		memset(buf, 0xcc, sizeof buf);
		assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, 0xd0000010 + sz, buf, sz), 0);
		assert_int_equal(d.last_off, 0x10 + sz);
		assert_int_equal(d.last_size, sz);
		/* the low `size` bytes of the value, little-endian; nothing beyond is touched */
		for (unsigned k = 0; k < 8; k++)
			assert_int_equal(buf[k], k < sz ? 0x11 * (k + 1) : 0xcc);

		for (unsigned k = 0; k < 8; k++)
			buf[k] = (uint8_t)(0xa0 + k);
		assert_int_equal(vmm_bus_write(bus, VMM_BUS_MMIO, 0xd0000ff8, buf, sz), 0);
		assert_int_equal(d.last_off, 0xff8);
		assert_int_equal(d.last_size, sz);
		uint64_t want = 0;
		for (unsigned k = 0; k < sz; k++)
			want |= (uint64_t)(0xa0 + k) << (8 * k);
		assert_int_equal(d.last_val, want);
	}
	assert_int_equal(d.reads, 4);
	assert_int_equal(d.writes, 4);

	/* the last bytes of a range are reachable; an access crossing its end is not claimed */
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, 0xd0000fff, buf, 1), 0);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, 0xd0000ffc, buf, 4), 0);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, 0xd0000ffd, buf, 4), -ENOENT);
	assert_memory_equal(buf, "\xff\xff\xff\xff", 4);
	assert_int_equal(vmm_bus_write(bus, VMM_BUS_MMIO, 0xd0000ff9, buf, 8), -ENOENT);
	assert_int_equal(d.reads, 6);
	assert_int_equal(d.writes, 4);

	/* at the very top of the 64-bit space */
	struct rec top = { .read_val = 0x0102030405060708ull };
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, UINT64_MAX - 7, 8, &rec_ops, &top), 0);
	uint64_t v64 = 0;
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, UINT64_MAX - 7, &v64, 8), 0);
	assert_int_equal(v64, 0x0102030405060708ull);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, UINT64_MAX, &v64, 1), 0);
	assert_int_equal(top.last_off, 7);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, UINT64_MAX - 1, &v64, 4), -ENOENT);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, UINT64_MAX, &v64, 8), -ENOENT);

	/* port space: nothing above 0xffff is ever claimed */
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0xfff0, 0x10, &rec_ops, &d), 0);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_PIO, 0xfffe, buf, 2), 0);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_PIO, 0xffff, buf, 2), -ENOENT);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_PIO, 0x1fff0, buf, 1), -ENOENT);
	vmm_bus_destroy(bus);
}

static void test_bad_sizes(void **state)
{
	(void)state;
	vmm_bus *bus = new_bus();
	struct rec d = { 0 };
	uint8_t buf[16];
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0, 0x100, &rec_ops, &d), 0);
	static const unsigned bad[] = { 0, 3, 5, 6, 7, 9, 16, 0x80000000u };
	for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(buf, 0x5a, sizeof buf);
		assert_int_equal(vmm_bus_read(bus, VMM_BUS_PIO, 0x10, buf, bad[i]), -EINVAL);
		assert_int_equal(vmm_bus_write(bus, VMM_BUS_PIO, 0x10, buf, bad[i]), -EINVAL);
		/* odd sizes up to 8 read as all-ones; nothing beyond `size` is touched */
		for (unsigned k = 0; k < sizeof buf; k++)
			assert_int_equal(buf[k], bad[i] <= 8 && k < bad[i] ? 0xff : 0x5a);
	}
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_PIO, 0x10, NULL, 1), -EINVAL);
	assert_int_equal(vmm_bus_write(bus, VMM_BUS_PIO, 0x10, NULL, 1), -EINVAL);
	assert_int_equal(vmm_bus_read(NULL, VMM_BUS_PIO, 0x10, buf, 1), -EINVAL);
	assert_int_equal(vmm_bus_write(bus, (vmm_bus_space)3, 0x10, buf, 1), -EINVAL);
	assert_int_equal(d.reads + d.writes, 0);
	vmm_bus_destroy(bus);
}

static void test_null_ops(void **state)
{
	(void)state;
	vmm_bus *bus = new_bus();
	const vmm_bus_ops none = { NULL, NULL };
	uint64_t v = 0;
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0x80, 1, &none, NULL), 0);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_PIO, 0x80, &v, 1), 0);
	assert_int_equal(v, 0xff);
	assert_int_equal(vmm_bus_write(bus, VMM_BUS_PIO, 0x80, &v, 1), 0);

	/* read-only and write-only devices */
	struct rec d = { .read_val = 0x1234 };
	const vmm_bus_ops ro = { rec_read, NULL }, wo = { NULL, rec_write };
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0x1000, 0x10, &ro, &d), 0);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0x2000, 0x10, &wo, &d), 0);
	v = 0;
	assert_int_equal(vmm_bus_write(bus, VMM_BUS_MMIO, 0x1000, &v, 4), 0);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, 0x1000, &v, 2), 0);
	assert_int_equal(v, 0x1234);
	v = 0;
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, 0x2000, &v, 8), 0);
	assert_int_equal(v, UINT64_MAX);
	v = 0x55;
	assert_int_equal(vmm_bus_write(bus, VMM_BUS_MMIO, 0x2004, &v, 1), 0);
	assert_int_equal(d.reads, 1);
	assert_int_equal(d.writes, 1);
	assert_int_equal(d.last_val, 0x55);
	vmm_bus_destroy(bus);
}

static void test_unclaimed(void **state)
{
	(void)state;
	vmm_bus *bus = new_bus();
	uint8_t buf[8];
	memset(buf, 0, sizeof buf);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, 0xfee00000, buf, 8), -ENOENT);
	assert_memory_equal(buf, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
	memset(buf, 0, sizeof buf);
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_PIO, 0x64, buf, 2), -ENOENT);
	assert_memory_equal(buf, "\xff\xff\x00\x00", 4);
	assert_int_equal(vmm_bus_write(bus, VMM_BUS_PIO, 0x64, buf, 1), -ENOENT);
	vmm_bus_destroy(bus);
}

/* ---- many ranges against a brute-force model --------------------------------------- */

struct model_range {
	uint64_t base, len;
	bool live;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	/* xorshift64*: deterministic, so a failure reproduces */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t id_read(void *opaque, uint64_t off, unsigned size)
{
	(void)off;
	(void)size;
	return (uint64_t)(uintptr_t)opaque;
}

static const vmm_bus_ops id_ops = { id_read, NULL };

#define NMODEL 1000

/* Index of the live model range holding [addr, addr + size), or -1. */
static long model_find(const struct model_range *m, size_t n, uint64_t addr, unsigned size)
{
	for (size_t i = 0; i < n; i++)
		if (m[i].live && addr >= m[i].base && addr - m[i].base < m[i].len &&
		    size <= m[i].len - (addr - m[i].base))
			return (long)i;
	return -1;
}

static bool model_overlaps(const struct model_range *m, size_t n, uint64_t base, uint64_t len)
{
	for (size_t i = 0; i < n; i++)
		if (m[i].live && base <= m[i].base + (m[i].len - 1) && m[i].base <= base + (len - 1))
			return true;
	return false;
}

static void check_lookups(vmm_bus *bus, const struct model_range *m, size_t n)
{
	static const unsigned sizes[] = { 1, 2, 4, 8 };
	for (int k = 0; k < 20000; k++) {
		uint64_t addr;
		size_t pick = rnd() % n;
		switch (rnd() % 4) {
		case 0: addr = rnd() & 0xfffffff; break;                      /* anywhere */
		case 1: addr = m[pick].base; break;                           /* first byte */
		case 2: addr = m[pick].base + m[pick].len - 1 - rnd() % 8; break; /* near end */
		default: addr = m[pick].base - 1 - rnd() % 4; break;          /* just before */
		}
		unsigned size = sizes[rnd() % 4];
		uint64_t got = 0;
		long want = model_find(m, n, addr, size);
		int r = vmm_bus_read(bus, VMM_BUS_MMIO, addr, &got, size);
		if (want < 0) {
			assert_int_equal(r, -ENOENT);
		} else {
			assert_int_equal(r, 0);
			uint64_t mask = size == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * size)) - 1;
			assert_int_equal(got, (uint64_t)(want + 1) & mask);
		}
	}
}

static void test_many_ranges(void **state)
{
	(void)state;
	vmm_bus *bus = new_bus();
	struct model_range *m = calloc(NMODEL, sizeof *m);
	assert_non_null(m);

	size_t n = 0, rejected = 0;
	while (n < NMODEL) {
		/* small ranges in a 256 MiB window, so that collisions happen */
		uint64_t base = rnd() & 0xfffffff, len = 1 + rnd() % 0x8000;
		bool clash = model_overlaps(m, n, base, len);
		int r = vmm_bus_register(bus, VMM_BUS_MMIO, base, len, &id_ops, (void *)(uintptr_t)(n + 1));
		assert_int_equal(r, clash ? -EEXIST : 0);
		if (clash) {
			rejected++;
			continue;
		}
		m[n++] = (struct model_range){ base, len, true };
	}
	assert_true(rejected > 0);
	check_lookups(bus, m, n);

	/* remove every other range; the holes must read as unclaimed */
	for (size_t i = 0; i < n; i += 2) {
		assert_int_equal(vmm_bus_unregister(bus, VMM_BUS_MMIO, m[i].base), 0);
		m[i].live = false;
	}
	check_lookups(bus, m, n);
	for (size_t i = 0; i < n; i += 2)
		assert_int_equal(vmm_bus_unregister(bus, VMM_BUS_MMIO, m[i].base), -ENOENT);
	free(m);
	vmm_bus_destroy(bus);
}

/* ---- callbacks that use the bus ---------------------------------------------------- */

struct reentry {
	vmm_bus *bus;
	int reg_same, reg_other, unreg_same, nested_read;
	uint64_t nested_val;
};

static uint64_t reentry_read(void *opaque, uint64_t off, unsigned size)
{
	struct reentry *e = opaque;
	(void)off;
	(void)size;
	static const vmm_bus_ops ops = { rec_read, rec_write };
	/* same space: would deadlock, so it must fail; other space: fine */
	e->reg_same = vmm_bus_register(e->bus, VMM_BUS_PIO, 0x500, 4, &ops, NULL);
	e->unreg_same = vmm_bus_unregister(e->bus, VMM_BUS_PIO, 0x400);
	e->reg_other = vmm_bus_register(e->bus, VMM_BUS_MMIO, 0x9000, 0x10, &ops, NULL);
	/* forwarding to another range of the same space does not re-lock */
	e->nested_read = vmm_bus_read(e->bus, VMM_BUS_PIO, 0x600, &e->nested_val, 4);
	return 7;
}

static uint64_t forward_read(void *opaque, uint64_t off, unsigned size)
{
	vmm_bus *bus = opaque;
	uint64_t v = 0;
	/* a device forwarding to itself: must stop, not blow the stack */
	int r = vmm_bus_read(bus, VMM_BUS_MMIO, 0x100 + off, &v, size);
	return r == 0 ? v + 1 : 1000 + (uint64_t)-r;
}

static void test_callback_reentry(void **state)
{
	(void)state;
	vmm_bus *bus = new_bus();
	struct reentry e = { .bus = bus };
	struct rec d = { .read_val = 0xabcd };
	const vmm_bus_ops ops = { reentry_read, NULL };
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0x400, 4, &ops, &e), 0);
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0x600, 4, &rec_ops, &d), 0);

	uint32_t v = 0;
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_PIO, 0x400, &v, 4), 0);
	assert_int_equal(v, 7);
	assert_int_equal(e.reg_same, -EDEADLK);
	assert_int_equal(e.unreg_same, -EDEADLK);
	assert_int_equal(e.reg_other, 0);
	assert_int_equal(e.nested_read, 0);
	assert_int_equal(e.nested_val, 0xabcd);
	/* after the callback, the same thread may change the PIO space again */
	assert_int_equal(vmm_bus_unregister(bus, VMM_BUS_MMIO, 0x9000), 0);
	assert_int_equal(vmm_bus_unregister(bus, VMM_BUS_PIO, 0x400), 0);

	const vmm_bus_ops fw = { forward_read, NULL };
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0x100, 0x10, &fw, bus), 0);
	uint64_t v64 = 0;
	assert_int_equal(vmm_bus_read(bus, VMM_BUS_MMIO, 0x100, &v64, 8), 0);
	/* the innermost call failed with -ELOOP; each level above added one */
	assert_true(v64 > 1000 + ELOOP && v64 < 1000 + ELOOP + 16);
	vmm_bus_destroy(bus);
}

/* ---- concurrency ------------------------------------------------------------------- */

struct churn_dev {
	atomic_int active;   /* callbacks of this range running now */
	atomic_long calls;
};

static uint64_t churn_read(void *opaque, uint64_t off, unsigned size)
{
	struct churn_dev *c = opaque;
	(void)off;
	(void)size;
	atomic_fetch_add(&c->active, 1);
	atomic_fetch_add(&c->calls, 1);
	sched_yield(); /* widen the window in which unregister must wait for us */
	atomic_fetch_sub(&c->active, 1);
	return 0x77;
}

struct worker {
	vmm_bus *bus;
	atomic_bool *stop;
	long iterations;
	long bad;
	unsigned seed;
};

static uint64_t stable_read(void *opaque, uint64_t off, unsigned size)
{
	(void)size;
	return (uint64_t)(uintptr_t)opaque * 0x100 + off;
}

static void *dispatcher(void *arg)
{
	struct worker *w = arg;
	unsigned s = w->seed;
	while (!atomic_load(w->stop)) {
		s = s * 1103515245u + 12345u;
		unsigned dev = (s >> 8) % 16, off = (s >> 16) % 0x10;
		uint32_t v = 0;
		/* stable ranges: must always be found with the right value */
		int r = vmm_bus_read(w->bus, VMM_BUS_MMIO, 0x100000 + dev * 0x1000 + off, &v, 4);
		if (r != 0 || v != (dev + 1) * 0x100 + off)
			w->bad++;
		/* churned ranges: either claimed or not, never garbage */
		v = 0;
		r = vmm_bus_read(w->bus, VMM_BUS_MMIO, 0x200000 + dev * 0x1000, &v, 1);
		if (!((r == 0 && v == 0x77) || (r == -ENOENT && v == 0xff)))
			w->bad++;
		w->iterations++;
	}
	return NULL;
}

static void test_concurrent_dispatch(void **state)
{
	(void)state;
	vmm_bus *bus = new_bus();
	atomic_bool stop = false;
	static struct churn_dev churn[16];
	const vmm_bus_ops sops = { stable_read, NULL }, cops = { churn_read, NULL };

	for (uintptr_t i = 0; i < 16; i++)
		assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0x100000 + i * 0x1000, 0x1000,
						  &sops, (void *)(i + 1)), 0);
	struct worker w[2] = { { bus, &stop, 0, 0, 1 }, { bus, &stop, 0, 0, 2 } };
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, dispatcher, &w[i]), 0);

	long violations = 0;
	for (int round = 0; round < 3000; round++) {
		unsigned dev = (unsigned)round % 16;
		uint64_t base = 0x200000 + dev * 0x1000;
		assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, base, 0x1000, &cops, &churn[dev]), 0);
		/* more ranges come and go to force reallocation of the array under readers */
		assert_int_equal(vmm_bus_register(bus, VMM_BUS_MMIO, 0x10000000 + (uint64_t)round * 0x10, 0x10,
						  &cops, &churn[dev]), 0);
		if (round % 4 == 0) {
			/* wait (bounded) until a dispatcher is inside this range, so unregister
			 * often has to wait for a running callback */
			long before = atomic_load(&churn[dev].calls);
			for (int spin = 0; spin < 20000 && atomic_load(&churn[dev].calls) == before; spin++)
				sched_yield();
		}
		assert_int_equal(vmm_bus_unregister(bus, VMM_BUS_MMIO, base), 0);
		/* the guarantee: once unregister returns, no callback of the range is running */
		if (atomic_load(&churn[dev].active) != 0)
			violations++;
		long calls = atomic_load(&churn[dev].calls);
		if (round % 100 == 0) {
			usleep(200);
			if (atomic_load(&churn[dev].calls) != calls)
				violations++;
		}
	}
	for (int round = 0; round < 3000; round++)
		assert_int_equal(vmm_bus_unregister(bus, VMM_BUS_MMIO, 0x10000000 + (uint64_t)round * 0x10), 0);
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(violations, 0);
	assert_int_equal(w[0].bad, 0);
	assert_int_equal(w[1].bad, 0);
	assert_true(w[0].iterations > 0 && w[1].iterations > 0);
	long total = 0;
	for (int i = 0; i < 16; i++)
		total += atomic_load(&churn[i].calls);
	print_message("dispatch iterations %ld + %ld, churned-range calls %ld\n", w[0].iterations,
		      w[1].iterations, total);
	vmm_bus_destroy(bus);
}

/* ---- ioeventfd ------------------------------------------------------------------------ */

static void test_ioeventfd_standalone(void **state)
{
	(void)state;
	vmm_bus *bus = new_bus();
	int fd = eventfd(0, EFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_PIO, 0x500, 2, fd, 0, 0), -ENODEV);
	assert_int_equal(vmm_bus_remove_ioeventfd(bus, VMM_BUS_PIO, 0x500, 2, fd, 0, 0), -ENODEV);
	assert_int_equal(vmm_bus_add_ioeventfd(NULL, VMM_BUS_PIO, 0x500, 2, fd, 0, 0), -EINVAL);
	close(fd);
	vmm_bus_destroy(bus);
}

struct kvm_env {
	int kvm_fd, vm_fd;
};

/* Opens /dev/kvm and creates a bare VM, or skips (fails under LIBVMM_REQUIRE_KVM=1). */
static bool kvm_open_vm(struct kvm_env *k)
{
	const char *req = getenv("LIBVMM_REQUIRE_KVM");
	bool required = req && strcmp(req, "1") == 0;
	k->kvm_fd = vmm_kvm_open_dev("/dev/kvm");
	if (k->kvm_fd < 0) {
		if (required)
			fail_msg("/dev/kvm: %s, and LIBVMM_REQUIRE_KVM=1", strerror(-k->kvm_fd));
		return false;
	}
	k->vm_fd = vmm_kvm_create_vm(k->kvm_fd);
	if (k->vm_fd < 0)
		fail_msg("KVM_CREATE_VM: %s", strerror(-k->vm_fd));
	return true;
}

static void kvm_close_vm(struct kvm_env *k)
{
	close(k->vm_fd);
	close(k->kvm_fd);
}

/* Is (PIO, addr, size, fd) registered in KVM? Assigning it again says EEXIST if so. */
static bool kvm_has_ioeventfd(int vm_fd, uint64_t addr, uint32_t size, int fd)
{
	struct kvm_ioeventfd e = { .addr = addr, .len = size, .fd = fd, .flags = KVM_IOEVENTFD_FLAG_PIO };
	int r = vmm_kvm_ioeventfd(vm_fd, &e);
	if (r == 0) {
		e.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
		assert_int_equal(vmm_kvm_ioeventfd(vm_fd, &e), 0);
		return false;
	}
	assert_int_equal(r, -EEXIST);
	return true;
}

static void test_ioeventfd_kvm_registry(void **state)
{
	(void)state;
	struct kvm_env k;
	if (!kvm_open_vm(&k))
		skip();
	vmm_bus *bus = NULL;
	assert_int_equal(vmm_bus_create_for_vm(&bus, -1), -EINVAL);
	assert_int_equal(vmm_bus_create_for_vm(&bus, k.vm_fd), 0);
	int fd = eventfd(0, EFD_CLOEXEC), fd2 = eventfd(0, EFD_CLOEXEC);
	assert_true(fd >= 0 && fd2 >= 0);

	/* argument checks */
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_PIO, 0x500, 3, fd, 0, 0), -EINVAL);
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_PIO, 0x500, 0, fd, 0, 0), -EINVAL);
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_MMIO, 0x500, 0, fd, VMM_IOEVENTFD_DATAMATCH, 0), -EINVAL);
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_PIO, 0xffff, 2, fd, 0, 0), -EINVAL);
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_MMIO, UINT64_MAX, 2, fd, 0, 0), -EINVAL);
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_PIO, 0x500, 2, -1, 0, 0), -EINVAL);
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_PIO, 0x500, 2, fd, 0x80, 0), -EINVAL);
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_PIO, 0x500, 2, fd, VMM_IOEVENTFD_DATAMATCH, 0x10000), -EINVAL);
	assert_int_equal(vmm_bus_add_ioeventfd(bus, (vmm_bus_space)5, 0x500, 2, fd, 0, 0), -EINVAL);

	/* add, duplicate, remove, remove again */
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_PIO, 0x500, 2, fd, 0, 0), 0);
	assert_true(kvm_has_ioeventfd(k.vm_fd, 0x500, 2, fd));
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_PIO, 0x500, 2, fd, 0, 0), -EEXIST);
	/* the same slot with a different fd collides inside KVM */
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_PIO, 0x500, 2, fd2, 0, 0), -EEXIST);
	assert_int_equal(vmm_bus_remove_ioeventfd(bus, VMM_BUS_PIO, 0x500, 2, fd2, 0, 0), -ENOENT);
	assert_int_equal(vmm_bus_remove_ioeventfd(bus, VMM_BUS_PIO, 0x500, 4, fd, 0, 0), -ENOENT);
	assert_int_equal(vmm_bus_remove_ioeventfd(bus, VMM_BUS_PIO, 0x500, 2, fd, 0, 0), 0);
	assert_false(kvm_has_ioeventfd(k.vm_fd, 0x500, 2, fd));
	assert_int_equal(vmm_bus_remove_ioeventfd(bus, VMM_BUS_PIO, 0x500, 2, fd, 0, 0), -ENOENT);

	/* datamatch variants are distinct entries; MMIO any-size */
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_MMIO, 0xd0000050, 4, fd, VMM_IOEVENTFD_DATAMATCH, 0), 0);
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_MMIO, 0xd0000050, 4, fd2, VMM_IOEVENTFD_DATAMATCH, 1), 0);
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_MMIO, 0xd0001000, 0, fd, 0, 0), 0);
	assert_int_equal(vmm_bus_remove_ioeventfd(bus, VMM_BUS_MMIO, 0xd0000050, 4, fd2, VMM_IOEVENTFD_DATAMATCH, 1), 0);
	/* many, to grow the list; left registered for vmm_bus_free to deassign */
	for (uint64_t p = 0x1000; p < 0x1040; p += 2)
		assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_PIO, p, 2, fd, 0, 0), 0);
	assert_true(kvm_has_ioeventfd(k.vm_fd, 0x1010, 2, fd));
	vmm_bus_destroy(bus); /* VM-owned: must be a no-op */
	assert_true(kvm_has_ioeventfd(k.vm_fd, 0x1010, 2, fd));
	vmm_bus_free(bus);
	for (uint64_t p = 0x1000; p < 0x1040; p += 2)
		assert_false(kvm_has_ioeventfd(k.vm_fd, p, 2, fd));

	close(fd);
	close(fd2);
	kvm_close_vm(&k);
}

/* A real-mode guest writes port 0x500 twice: with an ioeventfd there, the first write
 * (datamatch 0x1234) signals the eventfd inside KVM and the second one (0x4321) exits. */
static void test_ioeventfd_kvm_guest(void **state)
{
	(void)state;
	struct kvm_env k;
	if (!kvm_open_vm(&k))
		skip();
	static const uint8_t code[] = {
		0xba, 0x00, 0x05,       /* mov dx, 0x500 */
		0xb8, 0x34, 0x12,       /* mov ax, 0x1234 */
		0xef,                   /* out dx, ax   -> eventfd */
		0xb8, 0x21, 0x43,       /* mov ax, 0x4321 */
		0xef,                   /* out dx, ax   -> KVM_EXIT_IO */
		0xf4,                   /* hlt */
	};
	size_t mem_size = 0x10000;
	uint8_t *mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);
	memcpy(mem + 0x1000, code, sizeof code);
	assert_int_equal(vmm_kvm_set_memory_region(k.vm_fd, 0, 0, 0, mem_size, mem), 0);

	vmm_bus *bus = NULL;
	assert_int_equal(vmm_bus_create_for_vm(&bus, k.vm_fd), 0);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(efd >= 0);
	assert_int_equal(vmm_bus_add_ioeventfd(bus, VMM_BUS_PIO, 0x500, 2, efd, VMM_IOEVENTFD_DATAMATCH, 0x1234), 0);
	struct rec d = { 0 };
	assert_int_equal(vmm_bus_register(bus, VMM_BUS_PIO, 0x500, 2, &rec_ops, &d), 0);

	int vcpu = vmm_kvm_create_vcpu(k.vm_fd, 0);
	assert_true(vcpu >= 0);
	int run_size = vmm_kvm_vcpu_mmap_size(k.kvm_fd);
	assert_true(run_size > 0);
	struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	assert_true(run != MAP_FAILED);
	struct kvm_sregs sregs;
	assert_int_equal(vmm_kvm_get_sregs(vcpu, &sregs), 0);
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	assert_int_equal(vmm_kvm_set_sregs(vcpu, &sregs), 0);
	struct kvm_regs regs = { .rip = 0x1000, .rflags = 2 };
	assert_int_equal(vmm_kvm_set_regs(vcpu, &regs), 0);

	int exits_io = 0;
	for (int i = 0; i < 10; i++) {
		int r;
		do
			r = vmm_kvm_run(vcpu);
		while (r == -EINTR);
		assert_int_equal(r, 0);
		if (run->exit_reason == KVM_EXIT_HLT)
			break;
		assert_int_equal(run->exit_reason, KVM_EXIT_IO);
		assert_int_equal(run->io.direction, KVM_EXIT_IO_OUT);
		assert_int_equal(run->io.port, 0x500);
		/* what a run loop does with the exit */
		assert_int_equal(vmm_bus_write(bus, VMM_BUS_PIO, run->io.port,
					       (uint8_t *)run + run->io.data_offset, run->io.size), 0);
		exits_io++;
	}
	assert_int_equal(run->exit_reason, KVM_EXIT_HLT);
	assert_int_equal(exits_io, 1);
	assert_int_equal(d.writes, 1);
	assert_int_equal(d.last_val, 0x4321);
	uint64_t count = 0;
	assert_int_equal(read(efd, &count, sizeof count), (ssize_t)sizeof count);
	assert_int_equal(count, 1);

	munmap(run, (size_t)run_size);
	close(vcpu);
	vmm_bus_free(bus);
	close(efd);
	kvm_close_vm(&k);
	munmap(mem, mem_size);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_destroy),
		cmocka_unit_test(test_register_args),
		cmocka_unit_test(test_overlap_and_adjacent),
		cmocka_unit_test(test_unregister),
		cmocka_unit_test(test_offsets_sizes_values),
		cmocka_unit_test(test_bad_sizes),
		cmocka_unit_test(test_null_ops),
		cmocka_unit_test(test_unclaimed),
		cmocka_unit_test(test_many_ranges),
		cmocka_unit_test(test_callback_reentry),
		cmocka_unit_test(test_concurrent_dispatch),
		cmocka_unit_test(test_ioeventfd_standalone),
		cmocka_unit_test(test_ioeventfd_kvm_registry),
		cmocka_unit_test(test_ioeventfd_kvm_guest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
