/* Snapshots of 64 MiB and 1 GiB guests whose memory is full (the snap_count guest writes
 * a pattern over all RAM above 16 MiB, so the memory file is not sparse): save, then
 * restore eagerly and lazily; each restored VM must continue the count exactly and hold
 * the same memory. The lazy VM's writes must not reach the memory file. Timings and
 * file sizes are printed for the README (never asserted: machines are noisy); lazy
 * restore should not grow with guest size, eager restore does. */
#include "test_snapshot_common.h"

#define EVERY (1u << 24)
#define FILL_START (16ull << 20)

static void set_u64(kt_vm *t, const char *sym, uint64_t v)
{
	kt_write(t, kt_sym(t, sym), &v, sizeof v);
}

static void run_size(void **state, uint64_t ram)
{
	kt_opts ko = { .guest = "snap_count", .cpl = 3, .ram = ram };
	kt_vm *t = kt_create(state, &ko);
	uint64_t sym_counter = kt_sym(t, "counter"), sym_hash = kt_sym(t, "hash");
	set_u64(t, "cfg_every", EVERY);
	set_u64(t, "cfg_fill_start", FILL_START);
	set_u64(t, "cfg_fill_len", ram - FILL_START);
	double t0 = st_now_us();
	kt_run_expect(t, 0, 1);
	double fill_us = st_now_us() - t0;
	/* The pattern is there (the last word of RAM). */
	assert_int_equal(kt_read_u64(t, ram - 8), (ram - 8) | 1);

	st_files f;
	st_files_init(&f);
	t0 = st_now_us();
	st_save(t->vm, &f);
	double save_us = st_now_us() - t0;
	struct stat sst, mst;
	assert_int_equal(stat(f.state, &sst), 0);
	assert_int_equal(stat(f.mem, &mst), 0);
	uint64_t h = st_mem_hash(t->vm);

	t0 = st_now_us();
	vmm_vm *lazy = st_restore(&f, VMM_SNAPSHOT_MEM_LAZY);
	double lazy_us = st_now_us() - t0;
	t0 = st_now_us();
	vmm_vm *eager = st_restore(&f, VMM_SNAPSHOT_MEM_EAGER);
	double eager_us = st_now_us() - t0;

	kt_vm *tl = st_wrap(lazy, 3), *te = st_wrap(eager, 3);
	t0 = st_now_us();
	kt_run_expect(tl, 0, 2);
	double lazy_run_us = st_now_us() - t0;
	kt_run_expect(te, 0, 2);
	assert_int_equal(kt_read_u64(tl, sym_counter), 2ull * EVERY);
	assert_int_equal(kt_read_u64(tl, sym_hash), st_count_hash(2ull * EVERY));
	assert_int_equal(kt_read_u64(te, sym_hash), st_count_hash(2ull * EVERY));

	/* The lazy VM wrote its counter; the memory file still has the saved one. */
	int fd = open(f.mem, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	uint64_t v;
	assert_int_equal(pread(fd, &v, sizeof v, (off_t)(SNAP_MEM_HEADER_SIZE + sym_counter)), sizeof v);
	close(fd);
	assert_int_equal(v, (uint64_t)EVERY);

	/* Same memory everywhere once all three stand at report 2. */
	kt_run_expect(t, 0, 2);
	assert_int_equal(st_mem_hash(tl->vm), st_mem_hash(t->vm));
	assert_int_equal(st_mem_hash(te->vm), st_mem_hash(t->vm));
	(void)h;

	printf("# snapshot of a %4llu MiB guest (%llu MiB written by it): guest fill %.0f ms, save %.1f ms; "
	       "state file %lld bytes; memory file %lld MiB long, %lld MiB allocated; restore eager %.1f ms, "
	       "lazy %.2f ms; lazy VM to its next report %.1f ms\n",
	       (unsigned long long)(ram >> 20), (unsigned long long)((ram - FILL_START) >> 20), fill_us / 1e3,
	       save_us / 1e3, (long long)sst.st_size, (long long)(mst.st_size >> 20),
	       (long long)((mst.st_blocks * 512) >> 20), eager_us / 1e3, lazy_us / 1e3, lazy_run_us / 1e3);
	kt_destroy(tl);
	kt_destroy(te);
	st_files_remove(&f);
}

static void test_64m(void **state)
{
	run_size(state, 64ull << 20);
}

static void test_1g(void **state)
{
	run_size(state, 1ull << 30);
}

/* A sparse 1 GiB guest (only what the guest touched): the memory file stays small. */
static void test_sparse_1g(void **state)
{
	kt_opts ko = { .guest = "snap_count", .cpl = 3, .ram = 1ull << 30 };
	kt_vm *t = kt_create(state, &ko);
	set_u64(t, "cfg_every", EVERY);
	kt_run_expect(t, 0, 1);
	st_files f;
	st_files_init(&f);
	double t0 = st_now_us();
	st_save(t->vm, &f);
	double save_us = st_now_us() - t0;
	struct stat mst;
	assert_int_equal(stat(f.mem, &mst), 0);
	assert_int_equal(mst.st_size, SNAP_MEM_HEADER_SIZE + (1ll << 30));
	assert_true(mst.st_blocks * 512 < (16ll << 20)); /* holes stay holes */
	t0 = st_now_us();
	vmm_vm *eager = st_restore(&f, VMM_SNAPSHOT_MEM_EAGER);
	double eager_us = st_now_us() - t0;
	kt_vm *te = st_wrap(eager, 3);
	kt_run_expect(te, 0, 2);
	printf("# sparse 1 GiB guest: save %.1f ms, memory file %lld KiB allocated, eager restore %.1f ms\n",
	       save_us / 1e3, (long long)(mst.st_blocks * 512 >> 10), eager_us / 1e3);
	kt_destroy(te);
	st_files_remove(&f);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_64m, kt_teardown),
		cmocka_unit_test_teardown(test_1g, kt_teardown),
		cmocka_unit_test_teardown(test_sparse_1g, kt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
