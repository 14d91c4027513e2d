/* virtio-blk end to end (guest: tests/guests/vblk_guest.c): what the guest wrote is in
 * the image file, what it read back is what the file holds (checksums compared on both
 * sides), FLUSH, GET_ID, DISCARD and WRITE_ZEROES leave the file as specified, errors
 * come back as status bytes (read-only disk, past the end, unknown type), a chain with no
 * status byte does not break the device, O_DIRECT gives the same results, and the rate
 * limit slows the guest down. */
#include "harness/virtio_harness.h"

#include <fcntl.h>
#include <linux/virtio_config.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DISK_SECTORS 2048u /* 1 MiB */
#define FILL 0x11

#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2

struct vblk_results {
	uint64_t capacity;
	uint64_t features;
	uint32_t seg_max, blk_size, max_discard_sectors, max_wz_sectors;
	uint8_t st_write[8];
	uint8_t st_flush, st_read, st_get_id, st_oob_read, st_oob_write, st_unsupp;
	uint8_t st_discard, st_wz, st_read2, st_after_malformed, st_ro_write, st_ro_read;
	uint32_t len_read, len_get_id, len_malformed, len_after_malformed;
	uint32_t mismatch, mismatch2;
	uint32_t status_after_malformed;
	uint64_t sum1, sum2;
	char id[20];
	uint32_t requests;
};

struct blk_state {
	void *env; /* vt_env */
	char path[64];
	int fd;
};

static uint8_t pattern(uint64_t s, uint32_t i) { return (uint8_t)(s * 31 + i * 7 + (i >> 8)); }

static uint64_t fnv(const uint8_t *p, size_t n)
{
	uint64_t x = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		x = (x ^ p[i]) * 1099511628211ull;
	return x;
}

static int blk_teardown(void **state)
{
	struct blk_state *s = *state;
	if (s) {
		vt_teardown(&s->env);
		if (s->fd >= 0)
			close(s->fd);
		if (s->path[0])
			unlink(s->path);
		free(s);
	}
	*state = NULL;
	return 0;
}

/* A 1 MiB image on a real file system (O_DIRECT and hole punching need one), filled
 * with FILL, or with `pattern` when `patterned`. */
static struct blk_state *make_image(void **state, bool patterned)
{
	blk_teardown(state);
	struct blk_state *s = calloc(1, sizeof *s);
	assert_non_null(s);
	s->fd = -1;
	*state = s;
	snprintf(s->path, sizeof s->path, "/tmp/libvmm-blk-XXXXXX");
	s->fd = mkstemp(s->path);
	assert_true(s->fd >= 0);
	uint8_t *img = malloc(DISK_SECTORS * 512);
	assert_non_null(img);
	for (uint32_t sec = 0; sec < DISK_SECTORS; sec++)
		for (uint32_t i = 0; i < 512; i++)
			img[sec * 512 + i] = patterned ? pattern(sec, i) : FILL;
	assert_int_equal(pwrite(s->fd, img, DISK_SECTORS * 512, 0), DISK_SECTORS * 512);
	free(img);
	return s;
}

static vmm_virtio_device *attach_blk(struct blk_state *s, vt_env **env, const vmm_virtio_blk_opts *bo)
{
	kt_opts o = { .guest = "vblk_guest", .cpl = 3 };
	vt_env *e = vt_create(&s->env, &o);
	vmm_virtio_device *dev;
	kt_check(vmm_virtio_blk_create(&dev, bo), "vmm_virtio_blk_create");
	vt_attach(e, 0, dev);
	*env = e;
	return dev;
}

static struct vblk_results results(vt_env *e)
{
	struct vblk_results r;
	kt_read(e->kt, kt_sym(e->kt, "res"), &r, sizeof r);
	return r;
}

static void read_write(void **state, uint32_t flags)
{
	struct blk_state *s = make_image(state, false);
	vmm_virtio_blk_opts bo = VMM_VIRTIO_BLK_OPTS_INIT;
	bo.path = s->path;
	bo.flags = flags;
	bo.id = "libvmm-test-disk-01";
	vt_env *e;
	vmm_virtio_device *dev = attach_blk(s, &e, &bo);
	kt_set_arg(e->kt, 0, 1);
	kt_run_expect(e->kt, 0, 0x100);
	struct vblk_results r = results(e);

	/* Config space and features. */
	assert_int_equal(r.capacity, DISK_SECTORS);
	assert_int_equal(r.blk_size, 512);
	assert_true(r.seg_max >= 1);
	assert_true(r.max_discard_sectors >= 8);
	assert_true(r.max_wz_sectors >= 4);
	assert_true(r.features & (1ull << 9));   /* FLUSH */
	assert_true(r.features & (1ull << 13));  /* DISCARD */
	assert_true(r.features & (1ull << 14));  /* WRITE_ZEROES */
	assert_false(r.features & (1ull << 5));  /* not RO */

	for (int k = 0; k < 8; k++)
		assert_int_equal(r.st_write[k], S_OK);
	assert_int_equal(r.st_flush, S_OK);
	assert_int_equal(r.st_read, S_OK);
	assert_int_equal(r.len_read, 64 * 512 + 1);
	assert_int_equal(r.mismatch, 0);
	assert_int_equal(r.st_get_id, S_OK);
	assert_int_equal(r.len_get_id, 21);
	assert_memory_equal(r.id, "libvmm-test-disk-01\0", 20);
	assert_int_equal(r.st_oob_read, S_IOERR);
	assert_int_equal(r.st_oob_write, S_IOERR);
	assert_int_equal(r.st_unsupp, S_UNSUPP);
	assert_int_equal(r.st_discard, S_OK);
	assert_int_equal(r.st_wz, S_OK);
	assert_int_equal(r.st_read2, S_OK);
	assert_int_equal(r.mismatch2, 0);
	assert_int_equal(r.len_malformed, 0);
	assert_false(r.status_after_malformed & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(r.st_after_malformed, S_OK);
	assert_int_equal(r.len_after_malformed, 513);

	/* The file itself: the guest's pattern in [8, 72) with zeros in [16, 24) and
	 * [40, 44); FILL everywhere else (the refused write at the end changed nothing).
	 * The checksums the guest computed over what it read match the file's bytes. */
	uint8_t *img = malloc(DISK_SECTORS * 512);
	assert_non_null(img);
	assert_int_equal(pread(s->fd, img, DISK_SECTORS * 512, 0), DISK_SECTORS * 512);
	for (uint32_t sec = 0; sec < DISK_SECTORS; sec++) {
		bool mine = sec >= 8 && sec < 72;
		bool zero = (sec >= 16 && sec < 24) || (sec >= 40 && sec < 44);
		for (uint32_t i = 0; i < 512; i++) {
			uint8_t want = !mine ? FILL : zero ? 0 : pattern(sec, i);
			if (img[sec * 512 + i] != want)
				fail_msg("image sector %u byte %u: %#x, expected %#x", sec, i, img[sec * 512 + i], want);
		}
	}
	uint8_t *expect1 = malloc(64 * 512);
	for (uint32_t sec = 8; sec < 72; sec++)
		for (uint32_t i = 0; i < 512; i++)
			expect1[(sec - 8) * 512 + i] = pattern(sec, i);
	assert_true(r.sum1 == fnv(expect1, 64 * 512));
	assert_true(r.sum2 == fnv(img + 8 * 512, 64 * 512));
	free(expect1);
	free(img);

	vmm_virtio_blk_stats st;
	kt_check(vmm_virtio_blk_get_stats(dev, &st), "vmm_virtio_blk_get_stats");
	assert_int_equal(st.writes, 8);
	assert_int_equal(st.reads, 3);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.get_ids, 1);
	assert_int_equal(st.discards, 1);
	assert_int_equal(st.write_zeroes, 1);
	assert_int_equal(st.bytes_written, 64 * 512);
	assert_int_equal(st.bytes_read, 2 * 64 * 512 + 512);
	assert_int_equal(st.errors, 4); /* two out of range, one unknown, one malformed */
	assert_int_equal(st.throttled, 0);
	vmm_virtio_mmio *t = e->dev[0];
	assert_false(vmm_virtio_mmio_status(t) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_read_write(void **state) { read_write(state, 0); }
static void test_read_write_direct(void **state) { read_write(state, VMM_BLK_DIRECT); }

/* A read-only disk, given as an fd the test keeps: writes get IOERR and change nothing,
 * reads return the file's bytes. */
static void test_read_only(void **state)
{
	struct blk_state *s = make_image(state, true);
	int ro = open(s->path, O_RDONLY | O_CLOEXEC);
	assert_true(ro >= 0);
	vmm_virtio_blk_opts bo = VMM_VIRTIO_BLK_OPTS_INIT;
	bo.fd = ro;
	bo.flags = VMM_BLK_READONLY;
	vt_env *e;
	vmm_virtio_device *dev = attach_blk(s, &e, &bo);
	close(ro); /* the device dup'ed it */
	kt_set_arg(e->kt, 0, 2);
	kt_run_expect(e->kt, 0, 0x200);
	struct vblk_results r = results(e);
	assert_true(r.features & (1ull << 5)); /* RO offered and accepted */
	assert_false(r.features & (1ull << 13));
	assert_int_equal(r.st_ro_write, S_IOERR);
	assert_int_equal(r.st_ro_read, S_OK);
	assert_int_equal(r.len_read, 16 * 512 + 1);

	uint8_t img[16 * 512];
	assert_int_equal(pread(s->fd, img, sizeof img, 0), sizeof img);
	assert_true(r.sum1 == fnv(img, sizeof img));
	for (uint32_t i = 0; i < 512; i++)
		assert_int_equal(img[i], pattern(0, i)); /* the refused write left sector 0 */
	vmm_virtio_blk_stats st;
	kt_check(vmm_virtio_blk_get_stats(dev, &st), "vmm_virtio_blk_get_stats");
	assert_int_equal(st.writes, 0);
	assert_int_equal(st.errors, 1);
	assert_int_equal(st.reads, 1);
}

/* Rate limits: only a lower bound on the time is asserted (the machine may be slow for
 * reasons of its own, never fast beyond the limit). */
static void rate_limited(void **state, uint64_t ops, uint64_t bytes, uint64_t arg, uint64_t code,
			 double min_seconds)
{
	struct blk_state *s = make_image(state, false);
	vmm_virtio_blk_opts bo = VMM_VIRTIO_BLK_OPTS_INIT;
	bo.path = s->path;
	bo.ops_per_sec = ops;
	bo.bytes_per_sec = bytes;
	vt_env *e;
	vmm_virtio_device *dev = attach_blk(s, &e, &bo);
	kt_set_arg(e->kt, 0, arg);
	uint64_t t0 = kt_now_ms();
	kt_run_expect(e->kt, 0, code);
	double took = (double)(kt_now_ms() - t0) / 1000.0;
	vmm_virtio_blk_stats st;
	kt_check(vmm_virtio_blk_get_stats(dev, &st), "vmm_virtio_blk_get_stats");
	print_message("rate limit (%llu ops/s, %llu B/s): %llu requests in %.2f s, throttled %llu times\n",
		      (unsigned long long)ops, (unsigned long long)bytes, (unsigned long long)st.reads, took,
		      (unsigned long long)st.throttled);
	assert_true(st.throttled > 0);
	if (took < min_seconds)
		fail_msg("%.3f s is faster than the limit allows (>= %.3f s)", took, min_seconds);
}

/* 10 ops/s, burst 10: 20 requests need the second ten tokens, 1 s. */
static void test_rate_limit_ops(void **state) { rate_limited(state, 10, 0, 3, 0x300, 0.95); }

/* 1 MiB/s, burst 1 MiB: 32 x 64 KiB = 2 MiB needs at least (2 MiB - 1 MiB - one
 * request of debt) / 1 MiB/s = 0.9375 s. */
static void test_rate_limit_bytes(void **state) { rate_limited(state, 0, 1u << 20, 4, 0x400, 0.93); }

static void test_create_errors(void **state)
{
	(void)state;
	vmm_virtio_device *dev = (vmm_virtio_device *)1;
	vmm_virtio_blk_opts bo = VMM_VIRTIO_BLK_OPTS_INIT;
	assert_int_equal(vmm_virtio_blk_create(&dev, &bo), -EINVAL);
	assert_null(dev);
	bo.path = "/nonexistent/disk.img";
	assert_int_equal(vmm_virtio_blk_create(&dev, &bo), -ENOENT);
	assert_int_equal(vmm_virtio_blk_create(&dev, NULL), -EINVAL);
	vmm_virtio_blk_stats st;
	assert_int_equal(vmm_virtio_blk_get_stats(NULL, &st), -EINVAL);
	vmm_virtio_device *rng;
	kt_check(vmm_virtio_rng_create(&rng, NULL), "vmm_virtio_rng_create");
	assert_int_equal(vmm_virtio_blk_get_stats(rng, &st), -EINVAL); /* not a blk */
	vmm_virtio_device_destroy(rng);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_read_write, blk_teardown),
		cmocka_unit_test_teardown(test_read_write_direct, blk_teardown),
		cmocka_unit_test_teardown(test_read_only, blk_teardown),
		cmocka_unit_test_teardown(test_rate_limit_ops, blk_teardown),
		cmocka_unit_test_teardown(test_rate_limit_bytes, blk_teardown),
		cmocka_unit_test(test_create_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
