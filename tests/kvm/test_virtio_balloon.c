/* virtio-balloon end to end (guest: tests/guests/balloon_guest.c). Guest RAM is the
 * harness's memfd. The guest touches 17 MiB; after the host sets a target of 4096 pages
 * and the guest inflates them, those pages are gone from the host (mincore on the
 * region's host mapping, and the memfd's allocated blocks drop by 16 MiB) while the
 * canary pages stay; pages of a private anonymous region are freed too (MADV_DONTNEED);
 * PFNs outside RAM or in a read-only region change nothing; the
 * statistics the guest posts reach the host, and asking for them again brings fresh
 * ones; deflated pages read back as zeros in the guest. */
#include "harness/virtio_harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define RAM (64ull << 20)
#define TOUCH (32ull << 20)
#define TOUCH_PAGES 4096u
#define CANARY_PAGES 256u
#define TARGET 4096u
#define ROM_GPA 0x5000000ull
#define ROM_LEN 0x10000ull
#define ANON_GPA 0x6000000ull
#define ANON_PAGES 512u

struct bs {
	vt_env *e;
	void *rom;
};

static int bs_teardown(void **state)
{
	struct bs *s = *state;
	if (s) {
		vt_destroy(s->e); /* the VM maps the ROM: it goes first */
		if (s->rom)
			munmap(s->rom, ROM_LEN);
		free(s);
	}
	*state = NULL;
	return 0;
}

static uint32_t rom_word(uint32_t i) { return 0xb0b00000u ^ (i * 2654435761u); }

/* Resident pages among `pages` pages from guest address gpa (inside one region), from
 * mincore on the region's host mapping. */
static unsigned resident(kt_vm *t, uint64_t gpa, unsigned pages)
{
	vmm_mem_region_info r;
	size_t ri = 0;
	do
		kt_check(vmm_mem_get_region(t->mem, ri++, &r), "vmm_mem_get_region");
	while (!(gpa >= r.gpa && gpa - r.gpa < r.len));
	assert_true(gpa - r.gpa + (uint64_t)pages * 4096 <= r.len);
	unsigned char *vec = malloc(pages);
	assert_non_null(vec);
	assert_int_equal(mincore((uint8_t *)r.host + (gpa - r.gpa), (size_t)pages * 4096, vec), 0);
	unsigned n = 0;
	for (unsigned i = 0; i < pages; i++)
		n += vec[i] & 1;
	free(vec);
	return n;
}

/* Bytes of RAM the memfd holds. */
static uint64_t ram_allocated(kt_vm *t)
{
	vmm_mem_region_info r;
	kt_check(vmm_mem_get_region(t->mem, 0, &r), "vmm_mem_get_region");
	assert_true(r.fd >= 0);
	struct stat st;
	assert_int_equal(fstat(r.fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/* The first offset >= off of the memfd that holds data (SEEK_DATA skips holes). */
static uint64_t next_data(kt_vm *t, uint64_t off)
{
	vmm_mem_region_info r;
	kt_check(vmm_mem_get_region(t->mem, 0, &r), "vmm_mem_get_region");
	off_t d = lseek(r.fd, (off_t)(r.file_offset + off), SEEK_DATA);
	assert_true(d >= 0);
	return (uint64_t)d - r.file_offset;
}

static vmm_virtio_balloon_stats wait_stats(vmm_virtio_device *dev, uint64_t updates)
{
	vmm_virtio_balloon_stats st;
	uint64_t end = kt_now_ms() + 5000;
	do {
		kt_check(vmm_virtio_balloon_get_stats(dev, &st), "vmm_virtio_balloon_get_stats");
		if (st.stats_updates >= updates)
			return st;
		usleep(1000);
	} while (kt_now_ms() < end);
	fail_msg("stats updates: %llu, expected %llu", (unsigned long long)st.stats_updates,
		 (unsigned long long)updates);
	return st;
}

static void test_balloon(void **state)
{
	bs_teardown(state);
	struct bs *s = calloc(1, sizeof *s);
	assert_non_null(s);
	*state = s;
	kt_opts o = { .guest = "balloon_guest", .cpl = 3, .ram = RAM };
	s->e = vt_new(&o);
	kt_vm *t = s->e->kt;

	/* A read-only region the guest will try to balloon. */
	s->rom = mmap(NULL, ROM_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(s->rom != MAP_FAILED);
	uint32_t *w = s->rom;
	for (uint32_t i = 0; i < ROM_LEN / 4; i++)
		w[i] = rom_word(i);
	vmm_mem_region_opts ro = VMM_MEM_REGION_OPTS_INIT;
	ro.gpa = ROM_GPA;
	ro.len = ROM_LEN;
	ro.flags = VMM_MEM_READONLY;
	ro.backing = VMM_MEM_HOST;
	ro.host = s->rom;
	/* And private anonymous memory, which MADV_DONTNEED frees. */
	vmm_mem_region_opts ao = VMM_MEM_REGION_OPTS_INIT;
	ao.gpa = ANON_GPA;
	ao.len = (uint64_t)ANON_PAGES * 4096;
	ao.backing = VMM_MEM_ANON;
	vt_stop_loop(s->e);
	kt_check(vmm_mem_add_region(t->mem, &ro), "add ROM");
	kt_check(vmm_mem_add_region(t->mem, &ao), "add anonymous region");
	vt_start_loop(s->e);

	vmm_virtio_device *dev;
	assert_int_equal(vmm_virtio_balloon_create(&dev, &(vmm_virtio_balloon_opts){ sizeof(vmm_virtio_balloon_opts), 1 }),
			 -EINVAL);
	kt_check(vmm_virtio_balloon_create(&dev, NULL), "vmm_virtio_balloon_create");
	vmm_virtio_mmio *tr = vt_attach(s->e, 0, dev);

	/* 1: the guest touched its pages. */
	kt_run_expect(t, 0, 1);
	assert_int_equal(resident(t, TOUCH, TOUCH_PAGES + CANARY_PAGES), TOUCH_PAGES + CANARY_PAGES);
	assert_int_equal(resident(t, ANON_GPA, ANON_PAGES), ANON_PAGES);
	uint64_t before = ram_allocated(t);
	assert_true(before >= (uint64_t)(TOUCH_PAGES + CANARY_PAGES) * 4096);
	vmm_virtio_balloon_stats st = wait_stats(dev, 1);
	assert_int_equal(st.inflated_pages, 0);

	/* 2: inflate. */
	kt_check(vmm_virtio_balloon_set_target(dev, TARGET), "set_target");
	kt_run_expect(t, 0, 2);
	assert_int_equal(resident(t, TOUCH, TOUCH_PAGES), 0);
	assert_int_equal(resident(t, TOUCH + (uint64_t)TOUCH_PAGES * 4096, CANARY_PAGES), CANARY_PAGES);
	assert_int_equal(resident(t, ANON_GPA, ANON_PAGES), 0);
	uint64_t after = ram_allocated(t);
	/* The file has a hole exactly where the balloon is, and holds 16 MiB less (give or
	 * take the few pages the guest wrote since: its PFN arrays). */
	assert_int_equal(next_data(t, TOUCH), TOUCH + (uint64_t)TARGET * 4096);
	assert_true(before - after >= (uint64_t)TARGET * 4096 - (64u << 10));
	st = wait_stats(dev, 1);
	assert_int_equal(st.target_pages, TARGET);
	assert_int_equal(st.actual_pages, TARGET);
	/* The hostile PFNs released nothing. */
	assert_int_equal(st.inflated_pages, TARGET + ANON_PAGES);
	assert_int_equal(st.deflated_pages, 0);
	assert_int_equal(st.guest_stats[4], 0x1111);
	assert_int_equal(st.guest_stats[5], 0x2222);
	assert_int_equal(st.guest_stats[9], 7);
	assert_int_equal(st.stats_updates, 1);
	for (uint32_t i = 0; i < ROM_LEN / 4; i++)
		if (w[i] != rom_word(i))
			fail_msg("ROM word %u changed", i);
	assert_int_equal(vmm_virtio_mmio_status(tr) & 64, 0);
	print_message("balloon: memfd %llu -> %llu KiB\n", (unsigned long long)(before >> 10),
		      (unsigned long long)(after >> 10));

	/* 3: fresh stats (the get_stats above handed the buffer back), deflate. */
	kt_run_expect(t, 0, 3);
	st = wait_stats(dev, 2);
	assert_int_equal(st.guest_stats[4], 0x3333);
	assert_int_equal(st.deflated_pages, TARGET / 2);
	assert_int_equal(st.actual_pages, TARGET - TARGET / 2);
	assert_int_equal(st.inflated_pages, TARGET + ANON_PAGES);
	kt_run_expect(t, 0, 0);
	assert_int_equal(vmm_virtio_mmio_status(tr) & 64, 0);

	/* Not a balloon. */
	vmm_virtio_balloon_stats dummy;
	assert_int_equal(vmm_virtio_balloon_get_stats(NULL, &dummy), -EINVAL);
	assert_int_equal(vmm_virtio_balloon_set_target(NULL, 1), -EINVAL);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_balloon, bs_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
