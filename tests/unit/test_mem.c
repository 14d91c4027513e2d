/* Guest memory map: regions, checked translation, copies, backings, dirty tracking.
 * Standalone maps only, except test_kvm_vm, which needs /dev/kvm. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/kvm.h>

#include <libvmm/libvmm.h>
#include "internal.h"

#define PAGE 0x1000ull

static int add(vmm_mem *mem, uint64_t gpa, uint64_t len, vmm_mem_backing backing, uint32_t flags)
{
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.gpa = gpa;
	o.len = len;
	o.backing = backing;
	o.flags = flags;
	return vmm_mem_add_region(mem, &o);
}

static vmm_mem *new_map(void)
{
	vmm_mem *mem = NULL;
	assert_int_equal(vmm_mem_create(&mem), 0);
	assert_non_null(mem);
	return mem;
}

static vmm_mem_region_info info_at(vmm_mem *mem, size_t i)
{
	vmm_mem_region_info info;
	assert_int_equal(vmm_mem_get_region(mem, i, &info), 0);
	return info;
}

static void expect_error(int got, int want, const char *needle)
{
	assert_int_equal(got, want);
	const char *msg = vmm_last_error();
	if (!strstr(msg, needle))
		fail_msg("error message \"%s\" lacks \"%s\"", msg, needle);
}

/* ---- regions ---------------------------------------------------------------------- */

static void test_add_remove(void **state)
{
	(void)state;
	vmm_mem *mem = new_map();
	assert_int_equal(vmm_mem_region_count(mem), 0);
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.gpa = 0x100000;
	o.len = 0x10000;
	o.name = "ram";
	assert_int_equal(vmm_mem_add_region(mem, &o), 0);
	assert_int_equal(vmm_mem_region_count(mem), 1);
	vmm_mem_region_info info = info_at(mem, 0);
	assert_int_equal(info.gpa, 0x100000);
	assert_int_equal(info.len, 0x10000);
	assert_non_null(info.host);
	assert_true(info.fd >= 0); /* memfd is the default */
	assert_int_equal(info.slot, 0);
	assert_int_equal(info.flags, 0);
	/* The memfd really backs the mapping. */
	memset(info.host, 0x5a, 16);
	unsigned char b = 0;
	assert_int_equal(pread(info.fd, &b, 1, 7), 1);
	assert_int_equal(b, 0x5a);
	assert_int_equal(vmm_mem_get_region(mem, 1, &info), -ENOENT);

	expect_error(vmm_mem_remove_region(mem, 0x101000), -ENOENT, "0x101000");
	assert_int_equal(vmm_mem_remove_region(mem, 0x100000), 0);
	assert_int_equal(vmm_mem_region_count(mem), 0);
	assert_int_equal(vmm_mem_remove_region(mem, 0x100000), -ENOENT);
	vmm_mem_destroy(mem);
	vmm_mem_destroy(NULL);
}

static void test_overlap_and_adjacent(void **state)
{
	(void)state;
	vmm_mem *mem = new_map();
	assert_int_equal(add(mem, 0x10000, 0x10000, VMM_MEM_ANON, 0), 0);
	expect_error(add(mem, 0x18000, 0x10000, VMM_MEM_ANON, 0), -EEXIST, "overlaps");
	expect_error(add(mem, 0x8000, 0x10000, VMM_MEM_ANON, 0), -EEXIST, "overlaps");
	expect_error(add(mem, 0x0, 0x40000, VMM_MEM_ANON, 0), -EEXIST, "overlaps");
	expect_error(add(mem, 0x11000, 0x1000, VMM_MEM_ANON, 0), -EEXIST, "overlaps");
	expect_error(add(mem, 0x10000, 0x10000, VMM_MEM_ANON, 0), -EEXIST, "overlaps");
	/* Touching on either side is fine; out-of-order adds end up sorted. */
	assert_int_equal(add(mem, 0x20000, 0x1000, VMM_MEM_ANON, 0), 0);
	assert_int_equal(add(mem, 0xf000, 0x1000, VMM_MEM_MEMFD, 0), 0);
	assert_int_equal(add(mem, 0x0, 0x1000, VMM_MEM_ANON, 0), 0);
	assert_int_equal(vmm_mem_region_count(mem), 4);
	const uint64_t want[] = { 0x0, 0xf000, 0x10000, 0x20000 };
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(info_at(mem, i).gpa, want[i]);
	/* A failed add left nothing behind. */
	expect_error(add(mem, 0x1000, 0xf000, VMM_MEM_ANON, 0), -EEXIST, "overlaps");
	assert_int_equal(vmm_mem_region_count(mem), 4);
	assert_int_equal(add(mem, 0x1000, 0xe000, VMM_MEM_ANON, 0), 0);
	vmm_mem_destroy(mem);
}

static void test_bad_regions(void **state)
{
	(void)state;
	vmm_mem *mem = new_map();
	expect_error(add(mem, 0x1001, 0x1000, VMM_MEM_ANON, 0), -EINVAL, "multiples");
	expect_error(add(mem, 0x1000, 0x1800, VMM_MEM_ANON, 0), -EINVAL, "multiples");
	expect_error(add(mem, 0x1000, 0, VMM_MEM_ANON, 0), -EINVAL, "zero");
	expect_error(add(mem, 0xfffffffffffff000ull, 0x2000, VMM_MEM_ANON, 0), -EINVAL, "wraps");
	/* Ending exactly at 2^64 is not representable either. */
	expect_error(add(mem, 0xfffffffffffff000ull, 0x1000, VMM_MEM_ANON, 0), -EINVAL, "wraps");
	expect_error(add(mem, 0, 0x1000, VMM_MEM_ANON, 1u << 20), -EINVAL, "unknown flags");
	expect_error(add(mem, 0, 0x1000, (vmm_mem_backing)99, 0), -EINVAL, "backing");
	expect_error(add(mem, 0, 0x1000, VMM_MEM_MEMFD, VMM_MEM_PRIVATE), -EINVAL, "PRIVATE");
	expect_error(add(mem, 0, 0x200000, VMM_MEM_ANON, VMM_MEM_HUGEPAGES | VMM_MEM_THP), -EINVAL, "exclude");
	expect_error(add(mem, 0, 0x1000, VMM_MEM_ANON, VMM_MEM_HUGEPAGES), -EINVAL, "multiple");
	expect_error(add(mem, 0, 0x1000, VMM_MEM_HOST, VMM_MEM_HUGEPAGES), -EINVAL, "HUGEPAGES");
	expect_error(add(mem, 0, 0x1000, VMM_MEM_HOST, 0), -EINVAL, "page-aligned");
	expect_error(add(mem, 0, 0x1000, VMM_MEM_FILE, 0), -EINVAL, "file descriptor");
	expect_error(vmm_mem_add_region(mem, NULL), -EINVAL, "NULL");
	vmm_mem_region_opts tiny = VMM_MEM_REGION_OPTS_INIT;
	tiny.size = 2;
	expect_error(vmm_mem_add_region(mem, &tiny), -EINVAL, "size");
	assert_int_equal(vmm_mem_region_count(mem), 0);
	/* An options struct from an older program (shorter size) gets defaults for the
	 * rest: here only size, flags, gpa and len are read, backing is the memfd. */
	vmm_mem_region_opts old = VMM_MEM_REGION_OPTS_INIT;
	old.size = offsetof(vmm_mem_region_opts, backing);
	old.gpa = 0x4000;
	old.len = 0x1000;
	old.backing = VMM_MEM_HOST; /* beyond `size`: ignored */
	assert_int_equal(vmm_mem_add_region(mem, &old), 0);
	assert_true(info_at(mem, 0).fd >= 0);
	vmm_mem_destroy(mem);
}

static void test_thp(void **state)
{
	(void)state;
	vmm_mem *mem = new_map();
	assert_int_equal(add(mem, 0, 0x400000, VMM_MEM_ANON, VMM_MEM_THP), 0);
	assert_int_equal(vmm_mem_write(mem, 0x1ff000, "x", 1), 0);
	vmm_mem_destroy(mem);
}

/* hugetlb. Test machines usually reserve no huge pages (nr_hugepages = 0): then an add
 * must fail cleanly with -ENOMEM at mmap time, never later with SIGBUS. The success path
 * needs reserved pages: as root, the test reserves a few itself (and a teardown puts
 * nr_hugepages back, also when the test fails). CI runs as root, so there both paths
 * run. Without root and without free huge pages the success path cannot run: that is a
 * skip, or a failure under LIBVMM_REQUIRE_KVM=1 (CI's "nothing may be left untested";
 * scripts/test.sh would refuse the skip anyway, the failure says why). */
#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"
#define HUGE_SIZE 0x200000ull

struct huge_state {
	vmm_mem *mem;
	long orig;    /* nr_hugepages before the test changed it */
	bool changed; /* the teardown must write orig back */
};

static bool read_long(const char *path, long *v)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	bool ok = fscanf(f, "%ld", v) == 1;
	fclose(f);
	return ok;
}

static bool write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return false;
	bool ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok;
}

/* A /proc/meminfo field (HugePages_Free: pages; Hugepagesize: kB), -1 if absent. */
static long meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return -1;
	char line[256];
	long v = -1;
	size_t n = strlen(key);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, n) == 0 && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* KernelPageSize (kB) of the mapping that holds addr, from /proc/self/smaps; -1 if none. */
static long kernel_page_kb(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	char line[512];
	bool in = false;
	long kb = -1;
	uintptr_t a = (uintptr_t)addr;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) { /* a mapping's header line */
			in = a >= lo && a < hi;
			continue;
		}
		if (in && sscanf(line, "KernelPageSize: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return in ? kb : -1;
}

static int huge_setup(void **state)
{
	struct huge_state *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	*state = s;
	return 0;
}

static int huge_teardown(void **state)
{
	struct huge_state *s = *state;
	int rc = 0;
	vmm_mem_destroy(s->mem); /* first: mapped pages would stay in use */
	if (s->changed) {
		long now = -1;
		if (!write_long(NR_HUGEPAGES, s->orig) || !read_long(NR_HUGEPAGES, &now) || now != s->orig) {
			print_error("could not restore " NR_HUGEPAGES " to %ld (now %ld)\n", s->orig, now);
			rc = -1;
		}
	}
	free(s);
	*state = NULL;
	return rc;
}

static void test_hugetlb(void **state)
{
	struct huge_state *s = *state;
	const vmm_mem_backing kinds[] = { VMM_MEM_MEMFD, VMM_MEM_ANON };
	const char *req = getenv("LIBVMM_REQUIRE_KVM");
	bool require = req && strcmp(req, "1") == 0;
	s->mem = new_map();

	/* No free pages and no overcommit: the failure path, clean and named. */
	long free0 = meminfo("HugePages_Free"), over = 0;
	if (!read_long("/proc/sys/vm/nr_overcommit_hugepages", &over))
		over = 0;
	if (free0 == 0 && over == 0) {
		for (size_t i = 0; i < 2; i++)
			expect_error(add(s->mem, i * HUGE_SIZE, HUGE_SIZE, kinds[i], VMM_MEM_HUGEPAGES), -ENOMEM,
				     "nr_hugepages");
		assert_int_equal(vmm_mem_region_count(s->mem), 0);
	}

	/* Reserve pages for the success path if we may. */
	long page_kb = meminfo("Hugepagesize");
	if (page_kb == 2048 && meminfo("HugePages_Free") < 2 && geteuid() == 0 && access(NR_HUGEPAGES, W_OK) == 0) {
		long orig, now = -1;
		assert_true(read_long(NR_HUGEPAGES, &orig));
		s->orig = orig;
		s->changed = true; /* before the write: a partial change is restored too */
		if (!write_long(NR_HUGEPAGES, orig + 4) || !read_long(NR_HUGEPAGES, &now) || now != orig + 4)
			fail_msg("reserving huge pages: wrote %ld to " NR_HUGEPAGES ", it holds %ld", orig + 4, now);
	}
	long free_pages = meminfo("HugePages_Free");
	if (page_kb != 2048 || free_pages < 2) {
		char why[160];
		snprintf(why, sizeof why, "hugetlb success path not tested: %ld free huge pages of %ld kB, %s", free_pages,
			 page_kb, geteuid() == 0 ? "and " NR_HUGEPAGES " could not be raised" : "not root");
		if (require)
			fail_msg("%s, and LIBVMM_REQUIRE_KVM=1", why);
		print_message("%s\n", why);
		skip();
	}

	/* The success path: 2 MiB aligned, really backed by 2 MiB pages, usable. */
	for (size_t i = 0; i < 2; i++) {
		uint64_t gpa = i * HUGE_SIZE;
		int rc = add(s->mem, gpa, HUGE_SIZE, kinds[i], VMM_MEM_HUGEPAGES);
		if (rc != 0)
			fail_msg("hugetlb region %zu with %ld free pages: %d: %s", i, free_pages, rc, vmm_last_error());
		vmm_mem_region_info info = info_at(s->mem, i);
		assert_int_equal(info.gpa, gpa);
		assert_int_equal(info.len, HUGE_SIZE);
		assert_int_equal((uintptr_t)info.host % HUGE_SIZE, 0);
		assert_int_equal(info.flags, VMM_MEM_HUGEPAGES);
		assert_true(kinds[i] == VMM_MEM_MEMFD ? info.fd >= 0 : info.fd == -1);
		char out[64], in[64];
		for (size_t k = 0; k < sizeof out; k++)
			out[k] = (char)(17 + i + k * 7);
		assert_int_equal(vmm_mem_write(s->mem, gpa, out, sizeof out), 0);
		assert_int_equal(vmm_mem_write(s->mem, gpa + HUGE_SIZE - 4, "huge", 4), 0);
		memset(in, 0, sizeof in);
		assert_int_equal(vmm_mem_read(s->mem, gpa, in, sizeof in), 0);
		assert_memory_equal(in, out, sizeof in);
		assert_int_equal(vmm_mem_read(s->mem, gpa + HUGE_SIZE - 4, in, 4), 0);
		assert_memory_equal(in, "huge", 4);
		assert_memory_equal((uint8_t *)info.host + HUGE_SIZE - 4, "huge", 4);
		if (info.fd >= 0) {
			assert_int_equal(pread(info.fd, in, 4, (off_t)(HUGE_SIZE - 4)), 4);
			assert_memory_equal(in, "huge", 4);
		}
		assert_int_equal(kernel_page_kb(info.host), 2048);
	}
	/* Both at once across the boundary of the two regions. */
	char across[8] = "12345678", back[8];
	assert_int_equal(vmm_mem_write(s->mem, HUGE_SIZE - 4, across, sizeof across), 0);
	assert_int_equal(vmm_mem_read(s->mem, HUGE_SIZE - 4, back, sizeof back), 0);
	assert_memory_equal(back, across, sizeof back);
}

static void test_slot_reuse(void **state)
{
	(void)state;
	vmm_mem *mem = new_map();
	for (uint64_t i = 0; i < 3; i++)
		assert_int_equal(add(mem, i * 0x10000, 0x1000, VMM_MEM_ANON, 0), 0);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(info_at(mem, i).slot, i);
	assert_int_equal(vmm_mem_remove_region(mem, 0x10000), 0);
	assert_int_equal(add(mem, 0x50000, 0x1000, VMM_MEM_ANON, 0), 0);
	assert_int_equal(info_at(mem, 2).gpa, 0x50000);
	assert_int_equal(info_at(mem, 2).slot, 1);
	assert_int_equal(add(mem, 0x60000, 0x1000, VMM_MEM_ANON, 0), 0);
	assert_int_equal(info_at(mem, 3).slot, 3);
	assert_int_equal(vmm_mem_remove_region(mem, 0x0), 0);
	assert_int_equal(add(mem, 0x70000, 0x1000, VMM_MEM_ANON, 0), 0);
	assert_int_equal(info_at(mem, 3).slot, 0);
	vmm_mem_destroy(mem);
}

/* ---- translation and copies ------------------------------------------------------ */

static void test_translate(void **state)
{
	(void)state;
	vmm_mem *mem = new_map();
	assert_int_equal(add(mem, 0x10000, 0x4000, VMM_MEM_MEMFD, 0), 0);
	assert_int_equal(add(mem, 0x14000, 0x1000, VMM_MEM_ANON, 0), 0); /* adjacent */
	assert_int_equal(add(mem, 0x20000, 0x1000, VMM_MEM_ANON, 0), 0); /* after a gap */
	uint8_t *base = info_at(mem, 0).host;
	void *p = NULL;

	assert_int_equal(vmm_mem_translate(mem, 0x10000, 1, false, &p), 0);
	assert_ptr_equal(p, base);
	assert_int_equal(vmm_mem_translate(mem, 0x10000, 0x4000, true, &p), 0);
	assert_ptr_equal(p, base);
	assert_int_equal(vmm_mem_translate(mem, 0x13fff, 1, true, &p), 0);
	assert_ptr_equal(p, base + 0x3fff);
	assert_int_equal(vmm_mem_translate(mem, 0x12345, 0, false, &p), 0);
	assert_ptr_equal(p, base + 0x2345);
	assert_int_equal(vmm_mem_translate(mem, 0x14000, 0x1000, false, &p), 0);
	assert_ptr_equal(p, info_at(mem, 1).host);
	assert_int_equal(vmm_mem_translate(mem, 0x10000, 1, false, NULL), 0);

	/* One translation never spans two regions, even adjacent ones. */
	p = (void *)1;
	expect_error(vmm_mem_translate(mem, 0x13fff, 2, false, &p), -EFAULT, "crosses");
	assert_ptr_equal(p, (void *)1);
	expect_error(vmm_mem_translate(mem, 0x10000, 0x4001, false, &p), -EFAULT, "crosses");
	/* gpa + len beyond 2^64. */
	expect_error(vmm_mem_translate(mem, 0x10000, UINT64_MAX, false, &p), -EFAULT, "wraps");
	expect_error(vmm_mem_translate(mem, UINT64_MAX, 2, false, &p), -EFAULT, "wraps");
	assert_int_equal(vmm_mem_translate(mem, UINT64_MAX, 1, false, &p), -EFAULT);
	assert_int_equal(vmm_mem_translate(mem, UINT64_MAX, 0, false, &p), -EFAULT);
	/* Gaps, below the first and above the last region. */
	expect_error(vmm_mem_translate(mem, 0x15000, 1, false, &p), -EFAULT, "outside");
	assert_int_equal(vmm_mem_translate(mem, 0x1ffff, 1, false, &p), -EFAULT);
	assert_int_equal(vmm_mem_translate(mem, 0x15000, 0, false, &p), -EFAULT);
	assert_int_equal(vmm_mem_translate(mem, 0x0, 1, false, &p), -EFAULT);
	assert_int_equal(vmm_mem_translate(mem, 0xffff, 1, false, &p), -EFAULT);
	assert_int_equal(vmm_mem_translate(mem, 0x21000, 0, false, &p), -EFAULT);
	assert_int_equal(vmm_mem_translate(mem, 0x20fff, 1, false, &p), 0);
	assert_int_equal(vmm_mem_translate(mem, 0x20fff, 2, false, &p), -EFAULT);
	assert_ptr_equal(p, (uint8_t *)info_at(mem, 2).host + 0xfff);
	vmm_mem_destroy(mem);

	/* An empty map has nothing to translate. */
	mem = new_map();
	assert_int_equal(vmm_mem_translate(mem, 0, 0, false, &p), -EFAULT);
	vmm_mem_destroy(mem);
}

static void fill(uint8_t *buf, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed + i * 7);
}

static void test_read_write_span(void **state)
{
	(void)state;
	vmm_mem *mem = new_map();
	assert_int_equal(add(mem, 0x0, 0x2000, VMM_MEM_MEMFD, 0), 0);
	assert_int_equal(add(mem, 0x2000, 0x2000, VMM_MEM_ANON, 0), 0);
	assert_int_equal(add(mem, 0x5000, 0x1000, VMM_MEM_ANON, 0), 0);
	uint8_t *a = info_at(mem, 0).host, *b = info_at(mem, 1).host, *c = info_at(mem, 2).host;

	uint8_t out[0x300], in[0x300];
	fill(out, sizeof out, 3);
	assert_int_equal(vmm_mem_write(mem, 0x1e00, out, sizeof out), 0);
	assert_memory_equal(a + 0x1e00, out, 0x200);
	assert_memory_equal(b, out + 0x200, 0x100);
	memset(in, 0, sizeof in);
	assert_int_equal(vmm_mem_read(mem, 0x1e00, in, sizeof in), 0);
	assert_memory_equal(in, out, sizeof in);
	/* The whole of both adjacent regions in one copy. */
	static uint8_t big[0x4000];
	assert_int_equal(vmm_mem_read(mem, 0, big, sizeof big), 0);
	assert_memory_equal(big + 0x1e00, out, sizeof out);

	/* Across the gap at [0x4000, 0x5000): rejected, and nothing copied either way. */
	uint8_t before[0x200];
	memcpy(before, b + 0x1f00, 0x100);
	memcpy(before + 0x100, c, 0x100);
	fill(out, sizeof out, 99);
	expect_error(vmm_mem_write(mem, 0x3f00, out, sizeof out), -EFAULT, "0x4000");
	uint8_t huge_out[0x1200];
	fill(huge_out, sizeof huge_out, 42);
	expect_error(vmm_mem_write(mem, 0x3f00, huge_out, sizeof huge_out), -EFAULT, "0x4000");
	assert_memory_equal(b + 0x1f00, before, 0x100);
	assert_memory_equal(c, before + 0x100, 0x100);
	uint8_t huge_in[0x1200];
	memset(huge_in, 0xee, sizeof huge_in);
	expect_error(vmm_mem_read(mem, 0x3f00, huge_in, sizeof huge_in), -EFAULT, "outside");
	for (size_t i = 0; i < sizeof huge_in; i++)
		assert_int_equal(huge_in[i], 0xee);
	/* Starting in a gap, past the end, wrapping. */
	assert_int_equal(vmm_mem_read(mem, 0x4000, in, 1), -EFAULT);
	assert_int_equal(vmm_mem_read(mem, 0x5fff, in, 2), -EFAULT);
	assert_int_equal(vmm_mem_read(mem, 0x5fff, in, 1), 0);
	assert_int_equal(vmm_mem_write(mem, UINT64_MAX, in, 2), -EFAULT);
	assert_int_equal(vmm_mem_read(mem, 0x1000, in, SIZE_MAX), -EFAULT);
	/* Zero-length copies at a valid address succeed. */
	assert_int_equal(vmm_mem_read(mem, 0x1000, in, 0), 0);
	assert_int_equal(vmm_mem_write(mem, 0x1000, NULL, 0), 0);
	assert_int_equal(vmm_mem_read(mem, 0x1000, NULL, 1), -EINVAL);
	vmm_mem_destroy(mem);
}

static void test_readonly(void **state)
{
	(void)state;
	vmm_mem *mem = new_map();
	assert_int_equal(add(mem, 0x0, 0x1000, VMM_MEM_MEMFD, 0), 0);
	assert_int_equal(add(mem, 0x1000, 0x1000, VMM_MEM_MEMFD, VMM_MEM_READONLY), 0);
	vmm_mem_region_info ro = info_at(mem, 1);
	assert_int_equal(ro.flags, VMM_MEM_READONLY);
	/* The owner fills a read-only region through its host mapping. */
	memcpy(ro.host, "ROM!", 4);
	void *p = NULL;
	expect_error(vmm_mem_translate(mem, 0x1000, 4, true, &p), -EROFS, "read-only");
	assert_int_equal(vmm_mem_translate(mem, 0x1000, 4, false, &p), 0);
	assert_ptr_equal(p, ro.host);
	expect_error(vmm_mem_write(mem, 0x1000, "abcd", 4), -EROFS, "read-only");
	/* A write that starts in writable memory and runs into ROM copies nothing. */
	uint8_t *rw = info_at(mem, 0).host;
	memset(rw, 0, 0x1000);
	uint8_t buf[0x20];
	memset(buf, 0x77, sizeof buf);
	assert_int_equal(vmm_mem_write(mem, 0xff0, buf, sizeof buf), -EROFS);
	for (size_t i = 0; i < 0x1000; i++)
		assert_int_equal(rw[i], 0);
	char got[4];
	assert_int_equal(vmm_mem_read(mem, 0xffe, got, 4), 0);
	assert_memory_equal(got + 2, "RO", 2);
	vmm_mem_destroy(mem);
}

/* ---- backings -------------------------------------------------------------------- */

static int temp_file(size_t size)
{
	FILE *f = tmpfile();
	assert_non_null(f);
	int fd = dup(fileno(f));
	fclose(f);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static void test_file_shared(void **state)
{
	(void)state;
	int fd = temp_file(0x3000);
	uint8_t pat[0x100];
	fill(pat, sizeof pat, 11);
	assert_int_equal(pwrite(fd, pat, sizeof pat, 0x1000), (ssize_t)sizeof pat);

	vmm_mem *mem = new_map();
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.gpa = 0x8000;
	o.len = 0x2000;
	o.backing = VMM_MEM_FILE;
	o.fd = fd;
	o.file_offset = 0x1000;
	assert_int_equal(vmm_mem_add_region(mem, &o), 0);
	vmm_mem_region_info info = info_at(mem, 0);
	assert_int_equal(info.file_offset, 0x1000);
	assert_true(info.fd >= 0 && info.fd != fd); /* a dup, not the caller's */

	uint8_t got[0x100];
	assert_int_equal(vmm_mem_read(mem, 0x8000, got, sizeof got), 0);
	assert_memory_equal(got, pat, sizeof pat);
	/* Host writes to the file show up in guest memory, and the reverse. */
	assert_int_equal(pwrite(fd, "host", 4, 0x2800), 4);
	assert_int_equal(vmm_mem_read(mem, 0x9800, got, 4), 0);
	assert_memory_equal(got, "host", 4);
	assert_int_equal(vmm_mem_write(mem, 0x8010, "guest", 5), 0);
	/* The caller may close its fd: the region holds its own. */
	close(fd);
	char back[5];
	assert_int_equal(pread(info.fd, back, 5, 0x1010), 5);
	assert_memory_equal(back, "guest", 5);

	/* Size, offset and overflow checks. */
	fd = temp_file(0x3000);
	o.gpa = 0x20000;
	o.fd = fd;
	o.file_offset = 0x2000;
	expect_error(vmm_mem_add_region(mem, &o), -EINVAL, "file is 0x3000 bytes");
	o.file_offset = 0;
	o.len = 0x4000;
	expect_error(vmm_mem_add_region(mem, &o), -EINVAL, "file is");
	o.len = 0x1000;
	o.file_offset = 0x800;
	expect_error(vmm_mem_add_region(mem, &o), -EINVAL, "offset");
	o.file_offset = 0xfffffffffffff000ull;
	expect_error(vmm_mem_add_region(mem, &o), -EINVAL, "overflows");
	o.file_offset = 0x2000;
	assert_int_equal(vmm_mem_add_region(mem, &o), 0); /* exactly the last page */
	close(fd);

	/* A pipe has no size to check. */
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	o.gpa = 0x30000;
	o.fd = pfd[0];
	o.file_offset = 0;
	expect_error(vmm_mem_add_region(mem, &o), -EINVAL, "regular file");
	close(pfd[0]);
	close(pfd[1]);
	vmm_mem_destroy(mem);
}

static void test_file_readonly_fd(void **state)
{
	(void)state;
	char path[] = "/tmp/libvmm-test-mem-XXXXXX";
	int wfd = mkstemp(path);
	assert_true(wfd >= 0);
	assert_int_equal(pwrite(wfd, "firmware", 8, 0), 8);
	assert_int_equal(ftruncate(wfd, 0x1000), 0);
	close(wfd);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	unlink(path);
	assert_true(fd >= 0);

	vmm_mem *mem = new_map();
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.gpa = 0xf0000;
	o.len = 0x1000;
	o.backing = VMM_MEM_FILE;
	o.fd = fd;
	/* A shared writable mapping needs a writable file. */
	expect_error(vmm_mem_add_region(mem, &o), -EACCES, "VMM_MEM_READONLY");
	o.flags = VMM_MEM_READONLY;
	assert_int_equal(vmm_mem_add_region(mem, &o), 0);
	char got[8];
	assert_int_equal(vmm_mem_read(mem, 0xf0000, got, 8), 0);
	assert_memory_equal(got, "firmware", 8);
	assert_int_equal(vmm_mem_write(mem, 0xf0000, "x", 1), -EROFS);
	/* A private copy of a read-only file is writable. */
	o.gpa = 0x100000;
	o.flags = VMM_MEM_PRIVATE;
	assert_int_equal(vmm_mem_add_region(mem, &o), 0);
	assert_int_equal(vmm_mem_write(mem, 0x100000, "FIRM", 4), 0);
	assert_int_equal(vmm_mem_read(mem, 0x100000, got, 8), 0);
	assert_memory_equal(got, "FIRMware", 8);
	close(fd);
	vmm_mem_destroy(mem);
}

static void test_file_private(void **state)
{
	(void)state;
	int fd = temp_file(0x2000);
	assert_int_equal(pwrite(fd, "original", 8, 0x1000), 8);
	vmm_mem *mem = new_map();
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.gpa = 0x0;
	o.len = 0x2000;
	o.backing = VMM_MEM_FILE;
	o.flags = VMM_MEM_PRIVATE;
	o.fd = fd;
	assert_int_equal(vmm_mem_add_region(mem, &o), 0);
	char got[8];
	assert_int_equal(vmm_mem_read(mem, 0x1000, got, 8), 0);
	assert_memory_equal(got, "original", 8);
	assert_int_equal(vmm_mem_write(mem, 0x1000, "modified", 8), 0);
	assert_int_equal(vmm_mem_read(mem, 0x1000, got, 8), 0);
	assert_memory_equal(got, "modified", 8);
	/* The file itself is untouched. */
	assert_int_equal(pread(fd, got, 8, 0x1000), 8);
	assert_memory_equal(got, "original", 8);
	close(fd);
	vmm_mem_destroy(mem);
}

static void test_host_backing(void **state)
{
	(void)state;
	uint8_t *host = mmap(NULL, 0x4000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(host != MAP_FAILED);
	vmm_mem *mem = new_map();
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.gpa = 0x40000;
	o.len = 0x4000;
	o.backing = VMM_MEM_HOST;
	o.host = host + 1;
	expect_error(vmm_mem_add_region(mem, &o), -EINVAL, "page-aligned");
	o.host = host;
	assert_int_equal(vmm_mem_add_region(mem, &o), 0);
	vmm_mem_region_info info = info_at(mem, 0);
	assert_ptr_equal(info.host, host);
	assert_int_equal(info.fd, -1);
	assert_int_equal(vmm_mem_write(mem, 0x43ffc, "tail", 4), 0);
	assert_memory_equal(host + 0x3ffc, "tail", 4);
	host[0] = 0xab;
	uint8_t b = 0;
	assert_int_equal(vmm_mem_read(mem, 0x40000, &b, 1), 0);
	assert_int_equal(b, 0xab);
	/* Removing the region leaves the caller's mapping alone. */
	assert_int_equal(vmm_mem_remove_region(mem, 0x40000), 0);
	host[0x3fff] = 1;
	assert_memory_equal(host + 0x3ffc, "tai", 3);
	assert_int_equal(add(mem, 0x40000, 0x4000, VMM_MEM_ANON, 0), 0);
	vmm_mem_destroy(mem);
	assert_int_equal(host[0], 0xab);
	munmap(host, 0x4000);
}

/* ---- dirty tracking --------------------------------------------------------------- */

struct runs {
	size_t n;
	uint64_t gpa[64], pages[64];
	size_t stop_at; /* 1-based call that returns 7; 0 = never */
};

static int record(void *ctx, uint64_t gpa, uint64_t npages)
{
	struct runs *r = ctx;
	assert_true(r->n < 64);
	r->gpa[r->n] = gpa;
	r->pages[r->n] = npages;
	r->n++;
	return r->stop_at && r->n == r->stop_at ? 7 : 0;
}

static void expect_runs(vmm_mem *mem, size_t n, const uint64_t (*want)[2])
{
	struct runs r = { 0 };
	assert_int_equal(vmm_mem_dirty_collect(mem, record, &r), 0);
	for (size_t i = 0; i < r.n && i < n; i++) {
		if (r.gpa[i] != want[i][0] || r.pages[i] != want[i][1])
			fail_msg("run %zu: got (0x%llx, %llu), want (0x%llx, %llu)", i,
				 (unsigned long long)r.gpa[i], (unsigned long long)r.pages[i],
				 (unsigned long long)want[i][0], (unsigned long long)want[i][1]);
	}
	assert_int_equal(r.n, n);
}

static void test_dirty_host_writes(void **state)
{
	(void)state;
	vmm_mem *mem = new_map();
	/* 130 pages (three bitmap words), then an adjacent 4-page region. */
	assert_int_equal(add(mem, 0x0, 130 * PAGE, VMM_MEM_MEMFD, 0), 0);
	assert_int_equal(add(mem, 130 * PAGE, 4 * PAGE, VMM_MEM_ANON, 0), 0);
	assert_int_equal(add(mem, 0x200000, PAGE, VMM_MEM_ANON, VMM_MEM_READONLY), 0);

	assert_false(vmm_mem_dirty_enabled(mem));
	assert_false(vmm_mem_dirty_enabled(NULL));
	expect_error(vmm_mem_dirty_collect(mem, NULL, NULL), -EINVAL, "off");
	/* Writes before tracking starts are not reported. */
	assert_int_equal(vmm_mem_write(mem, 0x9000, "x", 1), 0);
	assert_int_equal(vmm_mem_dirty_start(mem), 0);
	assert_true(vmm_mem_dirty_enabled(mem));
	assert_int_equal(vmm_mem_dirty_start(mem), 0); /* idempotent */
	expect_runs(mem, 0, NULL);

	uint8_t buf[3 * PAGE];
	memset(buf, 1, sizeof buf);
	void *p;
	assert_int_equal(vmm_mem_write(mem, 3 * PAGE + 5, buf, 1), 0);              /* page 3 */
	assert_int_equal(vmm_mem_write(mem, 5 * PAGE + 0x800, buf, 2 * PAGE), 0);    /* 5..7 */
	assert_int_equal(vmm_mem_translate(mem, 63 * PAGE, 2 * PAGE, true, &p), 0);  /* 63, 64 */
	assert_int_equal(vmm_mem_translate(mem, 100 * PAGE, PAGE, false, &p), 0);    /* read */
	assert_int_equal(vmm_mem_translate(mem, 110 * PAGE, 0, true, &p), 0);        /* empty */
	assert_int_equal(vmm_mem_write(mem, 129 * PAGE + 0xfff, buf, 2), 0);          /* 129 | B0 */
	assert_int_equal(vmm_mem_write(mem, 132 * PAGE, buf, 1), 0);                  /* B2 */
	assert_int_equal(vmm_mem_write(mem, 132 * PAGE + 8, buf, 1), 0);              /* B2 again */
	assert_int_equal(vmm_mem_write(mem, 0x200000, buf, 1), -EROFS);               /* not marked */
	const uint64_t want[][2] = {
		{ 3 * PAGE, 1 }, { 5 * PAGE, 3 }, { 63 * PAGE, 2 }, { 129 * PAGE, 2 }, { 132 * PAGE, 1 },
	};
	expect_runs(mem, 5, want);
	/* Reported once, then forgotten until written again. */
	expect_runs(mem, 0, NULL);
	assert_int_equal(vmm_mem_write(mem, 3 * PAGE, buf, 1), 0);
	expect_runs(mem, 1, want);

	/* Everything dirty: one run covering both adjacent regions, none in the gap. */
	static uint8_t all[134 * PAGE];
	assert_int_equal(vmm_mem_write(mem, 0, all, sizeof all), 0);
	const uint64_t whole[][2] = { { 0, 134 } };
	expect_runs(mem, 1, whole);

	/* fn == NULL just clears. */
	assert_int_equal(vmm_mem_write(mem, 0, buf, 1), 0);
	assert_int_equal(vmm_mem_dirty_collect(mem, NULL, NULL), 0);
	expect_runs(mem, 0, NULL);

	/* Stopped: no marking, collect refuses; a restart forgets writes made meanwhile. */
	assert_int_equal(vmm_mem_write(mem, 0, buf, 1), 0);
	assert_int_equal(vmm_mem_dirty_stop(mem), 0);
	assert_false(vmm_mem_dirty_enabled(mem));
	assert_int_equal(vmm_mem_dirty_stop(mem), 0);
	assert_int_equal(vmm_mem_dirty_collect(mem, NULL, NULL), -EINVAL);
	assert_int_equal(vmm_mem_write(mem, PAGE, buf, 1), 0);
	assert_int_equal(vmm_mem_translate(mem, 2 * PAGE, 1, true, &p), 0);
	assert_int_equal(vmm_mem_dirty_start(mem), 0);
	expect_runs(mem, 0, NULL);

	/* A region added while tracking is on is tracked. */
	assert_int_equal(add(mem, 0x300000, PAGE, VMM_MEM_ANON, 0), 0);
	assert_int_equal(vmm_mem_write(mem, 0x300000, buf, 1), 0);
	const uint64_t added[][2] = { { 0x300000, 1 } };
	expect_runs(mem, 1, added);
	vmm_mem_destroy(mem);
}

static void test_dirty_walk_stops(void **state)
{
	(void)state;
	vmm_mem *mem = new_map();
	assert_int_equal(add(mem, 0x0, 8 * PAGE, VMM_MEM_ANON, 0), 0);
	assert_int_equal(add(mem, 0x100000, 8 * PAGE, VMM_MEM_ANON, 0), 0);
	assert_int_equal(vmm_mem_dirty_start(mem), 0);
	for (uint64_t gpa = PAGE; gpa < 8 * PAGE; gpa += 2 * PAGE) /* pages 1, 3, 5, 7 */
		assert_int_equal(vmm_mem_write(mem, gpa, "d", 1), 0);
	assert_int_equal(vmm_mem_write(mem, 0x100000, "d", 1), 0);
	struct runs r = { .stop_at = 2 };
	assert_int_equal(vmm_mem_dirty_collect(mem, record, &r), 7);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.gpa[0], PAGE);
	assert_int_equal(r.gpa[1], 3 * PAGE);
	/* The run that stopped the walk and everything after it are still dirty. */
	const uint64_t rest[][2] = { { 3 * PAGE, 1 }, { 5 * PAGE, 1 }, { 7 * PAGE, 1 }, { 0x100000, 1 } };
	expect_runs(mem, 4, rest);
	expect_runs(mem, 0, NULL);
	vmm_mem_destroy(mem);
}

static void test_dirty_bitmap(void **state)
{
	(void)state;
	vmm_mem *mem = new_map();
	assert_int_equal(add(mem, 0x10000, 130 * PAGE, VMM_MEM_MEMFD, 0), 0);
	assert_int_equal(add(mem, 0x10000 + 130 * PAGE, PAGE, VMM_MEM_MEMFD, 0), 0);
	uint64_t bm[4];
	expect_error(vmm_mem_dirty_bitmap(mem, 0x10000, bm, 4), -EINVAL, "off");
	assert_int_equal(vmm_mem_dirty_start(mem), 0);
	expect_error(vmm_mem_dirty_bitmap(mem, 0x11000, bm, 4), -ENOENT, "0x11000");
	expect_error(vmm_mem_dirty_bitmap(mem, 0x10000, bm, 2), -ENOSPC, "3 words");
	assert_int_equal(vmm_mem_dirty_bitmap(mem, 0x10000, NULL, 4), -EINVAL);

	for (uint64_t pg = 0; pg < 130; pg += 64) /* pages 0, 64, 128 */
		assert_int_equal(vmm_mem_write(mem, 0x10000 + pg * PAGE, "d", 1), 0);
	assert_int_equal(vmm_mem_write(mem, 0x10000 + 129 * PAGE + 0xfff, "dd", 2), 0); /* 129 + next */
	memset(bm, 0xff, sizeof bm);
	assert_int_equal(vmm_mem_dirty_bitmap(mem, 0x10000, bm, 4), 0);
	assert_int_equal(bm[0], 1);
	assert_int_equal(bm[1], 1);
	assert_int_equal(bm[2], 3);
	assert_int_equal(bm[3], 0); /* words past the region are zeroed */
	/* Fetched and cleared: the next call is empty, and collect sees only the other region. */
	assert_int_equal(vmm_mem_dirty_bitmap(mem, 0x10000, bm, 3), 0);
	assert_int_equal(bm[0] | bm[1] | bm[2], 0);
	const uint64_t other[][2] = { { 0x10000 + 130 * PAGE, 1 } };
	expect_runs(mem, 1, other);
	vmm_mem_destroy(mem);
}

/* Several threads mark pages through write translations while another collects: every
 * page written is reported at least once, none is invented. */
#define TH_PAGES 256
#define TH_THREADS 4

struct th_arg {
	vmm_mem *mem;
	int id;
};

static void *th_writer(void *p)
{
	struct th_arg *a = p;
	for (int round = 0; round < 200; round++) {
		for (uint64_t pg = (uint64_t)a->id; pg < TH_PAGES; pg += TH_THREADS) {
			void *h;
			if (vmm_mem_translate(a->mem, pg * PAGE, 8, true, &h))
				return (void *)1;
			*(volatile uint8_t *)h = (uint8_t)round;
		}
	}
	return NULL;
}

static int th_collect(void *ctx, uint64_t gpa, uint64_t npages)
{
	uint8_t *seen = ctx;
	if (gpa / PAGE + npages > TH_PAGES)
		return -1;
	memset(seen + gpa / PAGE, 1, npages);
	return 0;
}

static void test_dirty_concurrent(void **state)
{
	(void)state;
	vmm_mem *mem = new_map();
	assert_int_equal(add(mem, 0, TH_PAGES * PAGE, VMM_MEM_ANON, 0), 0);
	assert_int_equal(vmm_mem_dirty_start(mem), 0);
	pthread_t t[TH_THREADS];
	struct th_arg args[TH_THREADS];
	for (int i = 0; i < TH_THREADS; i++) {
		args[i] = (struct th_arg){ mem, i };
		assert_int_equal(pthread_create(&t[i], NULL, th_writer, &args[i]), 0);
	}
	uint8_t seen[TH_PAGES] = { 0 };
	for (int i = 0; i < 50; i++)
		assert_int_equal(vmm_mem_dirty_collect(mem, th_collect, seen), 0);
	for (int i = 0; i < TH_THREADS; i++) {
		void *ret;
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_null(ret);
	}
	assert_int_equal(vmm_mem_dirty_collect(mem, th_collect, seen), 0);
	for (int i = 0; i < TH_PAGES; i++)
		assert_int_equal(seen[i], 1);
	vmm_mem_destroy(mem);
}

/* ---- a real KVM VM ---------------------------------------------------------------- */

static int kvm_dirty_log_raw(int vm_fd, uint32_t slot, uint64_t *bitmap)
{
	struct kvm_dirty_log d = { .slot = slot, .dirty_bitmap = bitmap };
	return ioctl(vm_fd, KVM_GET_DIRTY_LOG, &d) < 0 ? -errno : 0;
}

/* Runs `mov byte [0x2000], 0x42; hlt` in real mode from GPA 0x1000. */
static void run_guest_write(int kvm_fd, int vm_fd)
{
	int vcpu = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
	assert_true(vcpu >= 0);
	int sz = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	assert_true(sz > 0);
	struct kvm_run *run = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	assert_true(run != MAP_FAILED);
	struct kvm_sregs s;
	assert_int_equal(ioctl(vcpu, KVM_GET_SREGS, &s), 0);
	s.cs.base = 0;
	s.cs.selector = 0;
	s.ds.base = 0;
	s.ds.selector = 0;
	assert_int_equal(ioctl(vcpu, KVM_SET_SREGS, &s), 0);
	struct kvm_regs r = { .rip = 0x1000, .rflags = 2 };
	assert_int_equal(ioctl(vcpu, KVM_SET_REGS, &r), 0);
	int rc;
	do
		rc = ioctl(vcpu, KVM_RUN, 0);
	while (rc < 0 && errno == EINTR);
	assert_int_equal(rc, 0);
	if (run->exit_reason != KVM_EXIT_HLT)
		fail_msg("guest exit reason %u, want HLT", run->exit_reason);
	munmap(run, (size_t)sz);
	close(vcpu);
}

static void test_kvm_vm(void **state)
{
	(void)state;
	const char *req = getenv("LIBVMM_REQUIRE_KVM");
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		if (req && !strcmp(req, "1"))
			fail_msg("/dev/kvm: %s (LIBVMM_REQUIRE_KVM=1)", strerror(errno));
		skip();
	}
	int vm;
	do
		vm = ioctl(kvm, KVM_CREATE_VM, 0);
	while (vm < 0 && errno == EINTR);
	assert_true(vm >= 0);
	ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000ul); /* real mode on older VMX; harmless elsewhere */
	int slots = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
	assert_true(slots >= 3);
	bool ro_mem = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) > 0;

	vmm_mem *mem = NULL;
	/* A small slot limit, to see -ENOSPC without adding hundreds of regions. */
	assert_int_equal(vmm_mem_create_for_vm(&mem, vm, 3), 0);
	vmm_mem_destroy(mem); /* owned by the "VM": a no-op */
	assert_int_equal(add(mem, 0x0, 0x10000, VMM_MEM_MEMFD, 0), 0);
	assert_int_equal(info_at(mem, 0).slot, 0);
	/* KVM logs nothing yet: the slot has no dirty log. */
	uint64_t bm[1];
	assert_int_equal(kvm_dirty_log_raw(vm, 0, bm), -ENOENT);

	static const uint8_t code[] = { 0xc6, 0x06, 0x00, 0x20, 0x42, 0xf4 };
	assert_int_equal(vmm_mem_write(mem, 0x1000, code, sizeof code), 0);
	assert_int_equal(vmm_mem_dirty_start(mem), 0);
	assert_true(vmm_mem_dirty_enabled(mem));
	run_guest_write(kvm, vm);
	uint8_t b = 0;
	assert_int_equal(vmm_mem_read(mem, 0x2000, &b, 1), 0);
	assert_int_equal(b, 0x42);
	assert_int_equal(vmm_mem_write(mem, 0x5000, "h", 1), 0);
	/* Guest (from KVM's log) and host writes, each once. */
	const uint64_t want[][2] = { { 0x2000, 1 }, { 0x5000, 1 } };
	expect_runs(mem, 2, want);
	expect_runs(mem, 0, NULL);

	/* A region added while tracking is on gets a logging slot. */
	assert_int_equal(add(mem, 0x100000, 0x1000, VMM_MEM_ANON, 0), 0);
	assert_int_equal(info_at(mem, 1).slot, 1);
	assert_int_equal(kvm_dirty_log_raw(vm, 1, bm), 0);
	if (ro_mem) {
		assert_int_equal(add(mem, 0x200000, 0x1000, VMM_MEM_MEMFD, VMM_MEM_READONLY), 0);
		assert_int_equal(vmm_mem_write(mem, 0x200000, "x", 1), -EROFS);
	} else {
		assert_int_equal(add(mem, 0x200000, 0x1000, VMM_MEM_MEMFD, 0), 0);
	}
	expect_error(add(mem, 0x300000, 0x1000, VMM_MEM_ANON, 0), -ENOSPC, "slot");
	expect_runs(mem, 0, NULL);

	/* Stop re-registers the slots without logging. */
	assert_int_equal(vmm_mem_dirty_stop(mem), 0);
	assert_int_equal(kvm_dirty_log_raw(vm, 0, bm), -ENOENT);
	assert_int_equal(kvm_dirty_log_raw(vm, 1, bm), -ENOENT);
	assert_int_equal(vmm_mem_dirty_start(mem), 0);
	assert_int_equal(kvm_dirty_log_raw(vm, 0, bm), 0);
	assert_int_equal(vmm_mem_dirty_stop(mem), 0);

	/* Removing deletes the KVM slot: KVM accepts a new region with a new host mapping in
	 * the same slot at the same place (it refuses to change a live slot's mapping). */
	void *old_host = info_at(mem, 1).host;
	assert_int_equal(vmm_mem_remove_region(mem, 0x100000), 0);
	assert_int_equal(add(mem, 0x100000, 0x2000, VMM_MEM_MEMFD, 0), 0);
	assert_int_equal(info_at(mem, 1).slot, 1);
	assert_ptr_not_equal(info_at(mem, 1).host, old_host);
	assert_int_equal(vmm_mem_region_count(mem), 3);

	vmm_mem_free(mem);
	close(vm);
	close(kvm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_remove),
		cmocka_unit_test(test_overlap_and_adjacent),
		cmocka_unit_test(test_bad_regions),
		cmocka_unit_test(test_thp),
		cmocka_unit_test_setup_teardown(test_hugetlb, huge_setup, huge_teardown),
		cmocka_unit_test(test_slot_reuse),
		cmocka_unit_test(test_translate),
		cmocka_unit_test(test_read_write_span),
		cmocka_unit_test(test_readonly),
		cmocka_unit_test(test_file_shared),
		cmocka_unit_test(test_file_readonly_fd),
		cmocka_unit_test(test_file_private),
		cmocka_unit_test(test_host_backing),
		cmocka_unit_test(test_dirty_host_writes),
		cmocka_unit_test(test_dirty_walk_stops),
		cmocka_unit_test(test_dirty_bitmap),
		cmocka_unit_test(test_dirty_concurrent),
		cmocka_unit_test(test_kvm_vm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
