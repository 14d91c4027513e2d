/* HOSTILE-GUEST.md against virtio-blk, with real guests on real VMs (guest:
 * tests/guests/hostile_blk.c). Every test runs two VMs in this process, each with a
 * virtio-blk device, both devices served by ONE event loop thread:
 *   - VM A's driver misbehaves in one way (a mode of the guest);
 *   - VM B's driver behaves, on its own vCPU thread, writing and reading back its own
 *     sectors the whole time.
 * Each test asserts the documented outcome for A (DEVICE_NEEDS_RESET with the walker's
 * reason, or a completion with an error status, or the request simply not served),
 * that A's device works again after a driver reset (a read checked against the image,
 * a write checked in the host file), that A's image holds nothing a refused request
 * would have written, and that B made progress before, while A's device was broken and
 * after, every one of its reads returning what it wrote. The host surviving (no crash;
 * the sanitizer builds report nothing) is asserted by the test binary finishing at all.
 * tests/HOSTILE-GUEST-COVERAGE.md maps each checklist line to these tests.
 *
 * test_durability covers the block-durability lines with a real driver; this program
 * defines fdatasync() to count (and fail) the device's syncs. The ordering proof (the
 * status byte is written only after the sync returned) is in
 * tests/unit/test_hostile_blk_durability.c. */
#include "test_hostile_common.h"

#include <fcntl.h>
#include <linux/virtio_config.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DISK_SECTORS 2048u /* 1 MiB */
#define RAM (32ull << 20)
#define GUEST_ID "hostile-blk-0123456" /* 19 bytes + NUL = the 20-byte id field */

/* Guest modes (tests/guests/hostile_blk.c). */
enum {
	M_GOOD = 1,
	M_CHAIN_LOOP,
	M_ZERO_LOOP,
	M_AVAIL_JUMP,
	M_HEAD_OOR,
	M_NEXT_OOR,
	M_INDIRECT_LOOP,
	M_WRAP,
	M_HUGE_LEN,
	M_PAST_RAM_IN,
	M_PAST_RAM_OUT,
	M_MMIO_BUF,
	M_IND_LEN,
	M_IND_NESTED,
	M_IND_OUTSIDE,
	M_IND_NEXT,
	M_NO_INDIRECT,
	M_TOTAL_4G,
	M_RW_ORDER,
	M_WRONG_DIRECTION,
	M_ZERO_LEN,
	M_HEADER_ONLY,
	M_REGS_AFTER_OK,
	M_RESUBMIT,
	M_REWRITE,
	M_NOTIFY_IDX,
	M_BEFORE_OK,
	M_BAD_SIZE,
	M_BAD_RING,
	M_UNREAPED,
	M_GET_ID_SHORT,
	M_DURABLE,
};

#define S_OK 0
#define S_IOERR 1
#define S_UNTOUCHED 0xaa

/* The library is linked statically into this program, so its fdatasync calls land
 * here: counted (and failed on demand) for the image whose inode is sync_ino. */
static atomic_int sync_calls, sync_fail;
static _Atomic uint64_t sync_ino;

int fdatasync(int fd)
{
	struct stat st;
	uint64_t ino = atomic_load(&sync_ino);
	if (ino && fstat(fd, &st) == 0 && (uint64_t)st.st_ino == ino) {
		atomic_fetch_add(&sync_calls, 1);
		if (atomic_load(&sync_fail)) {
			errno = EIO;
			return -1;
		}
	}
	return (int)syscall(SYS_fdatasync, fd);
}

static uint8_t img_byte(uint64_t off) { return (uint8_t)(off * 7 + (off >> 9) * 13 + 5); }

struct hb {
	vt_env *a;                 /* the hostile VM; its loop serves both devices */
	struct hn b;               /* the neighbour */
	vmm_virtio_device *dev_a;
	int img_a, img_b;
	uint64_t res_gpa;
	uint64_t res[64];
};

static int make_image(void)
{
	int fd = memfd_create("hostile-blk", MFD_CLOEXEC);
	assert_true(fd >= 0);
	static uint8_t img[DISK_SECTORS * 512];
	for (uint64_t i = 0; i < sizeof img; i++)
		img[i] = img_byte(i);
	assert_int_equal(pwrite(fd, img, sizeof img, 0), (ssize_t)sizeof img);
	return fd;
}

static int hb_teardown(void **state)
{
	struct hb *h = *state;
	if (!h)
		return 0;
	if (h->b.vm)
		hn_stop(&h->b);
	hn_stop_loop(h->a);
	hn_destroy(&h->b); /* its transport is on A's loop: before A goes */
	vt_destroy(h->a);
	if (h->img_a > 0)
		close(h->img_a);
	if (h->img_b > 0)
		close(h->img_b);
	free(h);
	*state = NULL;
	return 0;
}

/* Both VMs, both devices on A's loop, B running its good loop. */
static struct hb *hb_setup(void **state, uint64_t ops_per_sec)
{
	hb_teardown(state);
	struct hb *h = calloc(1, sizeof *h);
	assert_non_null(h);
	*state = h;
	h->img_a = make_image();
	h->img_b = make_image();

	kt_opts o = { .guest = "hostile_blk", .cpl = 3, .ram = RAM };
	h->a = vt_new(&o);
	vmm_virtio_blk_opts bo = VMM_VIRTIO_BLK_OPTS_INIT;
	bo.fd = h->img_a;
	bo.id = GUEST_ID;
	bo.ops_per_sec = ops_per_sec;
	kt_check(vmm_virtio_blk_create(&h->dev_a, &bo), "vmm_virtio_blk_create A");
	vt_attach(h->a, 0, h->dev_a);
	h->res_gpa = kt_sym(h->a->kt, "res");

	vmm_virtio_device *dev_b;
	bo = (vmm_virtio_blk_opts)VMM_VIRTIO_BLK_OPTS_INIT;
	bo.fd = h->img_b;
	kt_check(vmm_virtio_blk_create(&dev_b, &bo), "vmm_virtio_blk_create B");
	hn_start(&h->b, &o, h->a, dev_b, 0, M_GOOD);
	return h;
}

static void expect_b_progress(struct hb *h, uint64_t n, const char *when) { hn_progress(&h->b, n, when); }
static void b_finish(struct hb *h) { hn_finish(&h->b, 0x200); }
static uint64_t b_rounds(struct hb *h) { return hn_read(&h->b, h->b.ok_gpa); }

static void fetch(struct hb *h)
{
	kt_read(h->a->kt, h->res_gpa, h->res, sizeof h->res);
}

static vmm_virtio_mmio *ta(struct hb *h) { return h->a->dev[0]; }

/* Sector s of A's image equals img_byte (untouched), or `fill` if fill >= 0. */
static void expect_sector(int fd, uint64_t s, int fill)
{
	uint8_t sec[512];
	assert_int_equal(pread(fd, sec, sizeof sec, (off_t)(s * 512)), (ssize_t)sizeof sec);
	for (unsigned i = 0; i < 512; i++) {
		uint8_t want = fill >= 0 ? (uint8_t)fill : img_byte(s * 512 + i);
		if (sec[i] != want)
			fail_msg("sector %llu byte %u: %#x, expected %#x", (unsigned long long)s, i, sec[i], want);
	}
}

/* A's device is broken now, for the expected reason. */
static void expect_broken(struct hb *h, const char *needle)
{
	uint32_t st = vmm_virtio_mmio_status(ta(h));
	assert_true(st & VIRTIO_CONFIG_S_NEEDS_RESET);
	char err[256];
	vmm_virtio_mmio_error(ta(h), err, sizeof err);
	print_message("  A: %s\n", err);
	if (!strstr(err, "virtio-blk") || !strstr(err, needle))
		fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

static void expect_healthy(struct hb *h)
{
	uint32_t st = vmm_virtio_mmio_status(ta(h));
	assert_true(st & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_false(st & VIRTIO_CONFIG_S_NEEDS_RESET);
	char err[256];
	assert_string_equal(vmm_virtio_mmio_error(ta(h), err, sizeof err), "");
}

/* The shape of every ring-breaking mode (see `breaking` in the guest). */
static void breaking_case(void **state, int mode, const char *needle)
{
	struct hb *h = hb_setup(state, 0);
	expect_b_progress(h, 20, "before A misbehaved");
	kt_set_arg(h->a->kt, 0, (uint64_t)mode);
	kt_run_expect(h->a->kt, 0, 0x101);
	fetch(h);
	assert_int_equal(h->res[0], S_OK);                        /* it worked at first */
	assert_true(h->res[1] & VIRTIO_CONFIG_S_NEEDS_RESET);     /* the driver saw it */
	assert_true(h->res[2] & 2);                               /* config interrupt */
	assert_int_equal(h->res[3], 0);                           /* nothing served after */
	assert_int_equal(h->res[4], S_UNTOUCHED);
	expect_broken(h, needle);
	expect_b_progress(h, 50, "while A's device was broken");
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	assert_int_equal(h->res[5], 0);
	expect_healthy(h);
	expect_sector(h->img_a, 200, 0xa0 + mode);
	expect_sector(h->img_a, 300, -1);
	expect_sector(h->img_a, 301, -1);
	expect_sector(h->img_a, 0, -1);
	expect_b_progress(h, 20, "after A recovered");
	b_finish(h);
}

/* ---- Virtqueue items, each on a real device ---- */

/* 4: the avail index jumps 0x8000 ahead: refused at once, not walked. */
static void test_avail_index_jump(void **state)
{
	breaking_case(state, M_AVAIL_JUMP, "entries ahead");
}

/* 5: a chain head >= queue size. */
static void test_head_out_of_range(void **state)
{
	breaking_case(state, M_HEAD_OOR, "head 16 >= queue size 16");
}

/* 6: next >= queue size; a -> b -> a; a loop inside an indirect table. */
static void test_next_out_of_range(void **state)
{
	breaking_case(state, M_NEXT_OOR, "next 16 is out of range");
}

static void test_chain_loop(void **state)
{
	breaking_case(state, M_CHAIN_LOOP, "longer than the queue size");
}

static void test_indirect_loop(void **state)
{
	breaking_case(state, M_INDIRECT_LOOP, "chain longer than its 2 entries");
}

/* 7: a buffer wrapping around 2^64. */
static void test_buffer_wraps(void **state)
{
	breaking_case(state, M_WRAP, "wraps around 2^64");
}

/* 8: indirect tables: length not a multiple of 16, nested, outside RAM, with NEXT, and
 * used without the feature. */
static void test_indirect_bad_length(void **state)
{
	breaking_case(state, M_IND_LEN, "indirect table length 24 is not a non-zero multiple of 16");
}

static void test_indirect_nested(void **state)
{
	breaking_case(state, M_IND_NESTED, "refers to another indirect table");
}

static void test_indirect_outside_ram(void **state)
{
	breaking_case(state, M_IND_OUTSIDE, "is outside guest RAM");
}

static void test_indirect_with_next(void **state)
{
	breaking_case(state, M_IND_NEXT, "is indirect and also has VRING_DESC_F_NEXT");
}

static void test_indirect_not_negotiated(void **state)
{
	breaking_case(state, M_NO_INDIRECT, "VIRTIO_F_RING_INDIRECT_DESC was not negotiated");
}

/* 9: 129 descriptors of 32 MiB each, all valid on their own: over 4 GiB in total. (A
 * device that missed it would have answered IOERR: a write of 4 GiB past the end.) */
static void test_total_over_4g(void **state)
{
	breaking_case(state, M_TOTAL_4G, "holds more than 4 GiB");
}

/* 10: a device-readable buffer after a device-writable one. */
static void test_readable_after_writable(void **state)
{
	breaking_case(state, M_RW_ORDER, "device-readable after a device-writable one");
}

/* 10, the other way round: directions the ring rules allow but the request does not
 * expect: the header writable -> IOERR; OUT data writable -> nothing written anywhere;
 * IN data readable -> nothing read into it. */
static void test_wrong_direction(void **state)
{
	struct hb *h = hb_setup(state, 0);
	kt_set_arg(h->a->kt, 0, M_WRONG_DIRECTION);
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	assert_int_equal(h->res[0], S_IOERR);
	assert_int_equal(h->res[1], S_OK);
	assert_int_equal(h->res[2], 0);  /* the writable OUT "data" was not written */
	assert_int_equal(h->res[3], S_OK);
	assert_int_equal(h->res[4], 1);  /* only the status byte */
	assert_int_equal(h->res[5], 0);  /* the readable IN "data" was not written */
	assert_false(h->res[6] & VIRTIO_CONFIG_S_NEEDS_RESET);
	expect_sector(h->img_a, 301, -1);
	expect_healthy(h);
	expect_b_progress(h, 20, "after A");
	b_finish(h);
}

/* 11 / CVE-2016-6490: zero-length descriptors (one pointing nowhere, one at MMIO) inside
 * a valid read are skipped; a chain of zero-length descriptors only completes with
 * nothing written; a loop of zero-length descriptors breaks the ring. */
static void test_zero_length_descriptors(void **state)
{
	struct hb *h = hb_setup(state, 0);
	kt_set_arg(h->a->kt, 0, M_ZERO_LEN);
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	assert_int_equal(h->res[0], S_OK);
	assert_int_equal(h->res[1], 1025);
	assert_int_equal(h->res[2], 0);
	assert_int_equal(h->res[3], 0);
	assert_false(h->res[4] & VIRTIO_CONFIG_S_NEEDS_RESET);
	expect_healthy(h);
	b_finish(h);
}

static void test_zero_length_loop(void **state)
{
	breaking_case(state, M_ZERO_LOOP, "longer than the queue size");
}

/* 11 and Cloud Hypervisor #8401/#8142: four full rings of head-only chains all come back
 * (length 0: nothing to report on), malformed headers get IOERR, the device's loop
 * thread is alive (B works), and five valid requests in flight at once complete. */
static void test_header_only_chains(void **state)
{
	struct hb *h = hb_setup(state, 0);
	kt_set_arg(h->a->kt, 0, M_HEADER_ONLY);
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	assert_int_equal(h->res[0], 0);  /* every used length was 0 */
	assert_int_equal(h->res[1], S_IOERR);
	assert_int_equal(h->res[2], S_IOERR);
	assert_int_equal(h->res[3], 0);
	assert_int_equal(h->res[4], 0);
	assert_false(h->res[5] & VIRTIO_CONFIG_S_NEEDS_RESET);
	vmm_virtio_blk_stats st;
	kt_check(vmm_virtio_blk_get_stats(h->dev_a, &st), "vmm_virtio_blk_get_stats");
	assert_int_equal(st.errors, 4 * 16 + 2);
	assert_int_equal(st.reads, 5);
	expect_healthy(h);
	expect_b_progress(h, 20, "after A");
	b_finish(h);
}

/* 12 / CVE-2026-5747: queue registers rewritten after DRIVER_OK change nothing: the
 * request placed in the second ring is never served, the first ring keeps working. */
static void test_queue_registers_locked(void **state)
{
	struct hb *h = hb_setup(state, 0);
	kt_set_arg(h->a->kt, 0, M_REGS_AFTER_OK);
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	assert_int_equal(h->res[0], S_OK);
	assert_int_equal(h->res[1], 1);           /* QueueReady 0 was ignored */
	assert_int_equal(h->res[2], S_OK);
	assert_int_equal(h->res[3], 0);
	assert_int_equal(h->res[4], 0);           /* ring B's used index */
	assert_int_equal(h->res[5], S_UNTOUCHED); /* ring B's request never served */
	assert_false(h->res[6] & VIRTIO_CONFIG_S_NEEDS_RESET);
	expect_sector(h->img_a, 302, -1);
	uint64_t ring = kt_sym(h->a->kt, "ring");
	vmm_virtio_dev *d = vmm_virtio_device_dev(h->dev_a);
	vmm_virtio_dev_lock(d);
	uint64_t desc, avail, used;
	vmm_virtq *q = vmm_virtio_dev_queue(d, 0);
	vmm_virtq_addrs(q, &desc, &avail, &used);
	uint16_t size = vmm_virtq_size(q);
	vmm_virtio_dev_unlock(d);
	assert_int_equal(desc, ring);
	assert_int_equal(size, 16);
	expect_healthy(h);
	b_finish(h);
}

/* 13: the same head published twice: virtio-blk finishes each request before popping
 * the next, so it serves the head twice (two used entries), and stays healthy. */
static void test_head_resubmitted(void **state)
{
	struct hb *h = hb_setup(state, 0);
	kt_set_arg(h->a->kt, 0, M_RESUBMIT);
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	assert_int_equal(h->res[0], 2);
	assert_int_equal(h->res[1], 0);
	assert_int_equal(h->res[2], 513);
	assert_int_equal(h->res[3], 0);
	assert_int_equal(h->res[4], 513);
	assert_int_equal(h->res[5], S_OK);
	assert_false(h->res[6] & VIRTIO_CONFIG_S_NEEDS_RESET);
	vmm_virtio_blk_stats st;
	kt_check(vmm_virtio_blk_get_stats(h->dev_a, &st), "vmm_virtio_blk_get_stats");
	assert_int_equal(st.reads, 2 + 2); /* twice, plus recovery's two reads */
	expect_healthy(h);
	b_finish(h);
}

/* 14: descriptors rewritten while the device works on them (a real race between the
 * guest's vCPU thread and the loop thread): every round is a correct read or a broken
 * ring, never anything else. */
static void test_descriptor_rewritten(void **state)
{
	struct hb *h = hb_setup(state, 0);
	kt_set_arg(h->a->kt, 0, M_REWRITE);
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	print_message("  rewrite race: %llu correct reads, %llu broken rings, %llu other\n",
		      (unsigned long long)h->res[0], (unsigned long long)h->res[1], (unsigned long long)h->res[2]);
	assert_int_equal(h->res[2], 0);
	assert_int_equal(h->res[0] + h->res[1], 300);
	expect_healthy(h);
	expect_b_progress(h, 20, "after A");
	b_finish(h);
}

/* 3: requests before DRIVER_OK, and on a queue never made ready, are not served. */
static void test_queue_not_ready(void **state)
{
	struct hb *h = hb_setup(state, 0);
	kt_set_arg(h->a->kt, 0, M_BEFORE_OK);
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	assert_int_equal(h->res[0], 0);
	assert_int_equal(h->res[1], S_UNTOUCHED);
	assert_int_equal(h->res[2], S_OK);
	assert_int_equal(h->res[3], 0);
	assert_int_equal(h->res[4], 0);
	assert_int_equal(h->res[5], S_UNTOUCHED);
	assert_true(h->res[6] & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_false(h->res[6] & VIRTIO_CONFIG_S_NEEDS_RESET);
	expect_healthy(h);
	b_finish(h);
}

/* 1: queue sizes 0, 3, 255, 512 (> QueueNumMax 256), 2^16, 2^32 - 1: never ready. */
static void test_bad_queue_size(void **state)
{
	struct hb *h = hb_setup(state, 0);
	kt_set_arg(h->a->kt, 0, M_BAD_SIZE);
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	assert_int_equal(h->res[0], 256);
	for (int i = 1; i <= 6; i++)
		assert_int_equal(h->res[i], 0);
	assert_false(h->res[8] & VIRTIO_CONFIG_S_NEEDS_RESET);
	expect_healthy(h);
	b_finish(h);
}

/* 2: rings misaligned (QueueReady stays 0), ending past RAM, on the device's own MMIO,
 * in unbacked MMIO space (DRIVER_OK -> NEEDS_RESET). */
static void test_bad_ring_addresses(void **state)
{
	struct hb *h = hb_setup(state, 0);
	kt_set_arg(h->a->kt, 0, M_BAD_RING);
	kt_run_expect(h->a->kt, 0, 0x101);
	fetch(h);
	assert_int_equal(h->res[0], 0);
	assert_int_equal(h->res[1], 0);
	assert_int_equal(h->res[2], 0);
	assert_false(h->res[3] & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(h->res[4], 1); /* aligned: accepted until DRIVER_OK */
	assert_true(h->res[5] & VIRTIO_CONFIG_S_NEEDS_RESET);
	expect_broken(h, "used ring");
	expect_b_progress(h, 20, "while A's device was broken");
	kt_run_expect(h->a->kt, 0, 0x102);
	fetch(h);
	assert_true(h->res[7] & VIRTIO_CONFIG_S_NEEDS_RESET);
	expect_broken(h, "descriptor table [0xd0000000");
	kt_run_expect(h->a->kt, 0, 0x103);
	fetch(h);
	assert_true(h->res[9] & VIRTIO_CONFIG_S_NEEDS_RESET);
	expect_broken(h, "avail ring [0xd0001000");
	kt_run_expect(h->a->kt, 0, 0x100);
	expect_healthy(h);
	expect_sector(h->img_a, 200, 0xa0 + M_BAD_RING);
	b_finish(h);
}

/* Block durability with a real driver: write-through without FLUSH (each write synced
 * before its status), write-back with it (only FLUSH syncs), a failing sync -> IOERR. */
static void test_durability(void **state)
{
	struct hb *h = hb_setup(state, 0);
	struct stat st;
	assert_int_equal(fstat(h->img_a, &st), 0);
	atomic_store(&sync_calls, 0);
	atomic_store(&sync_fail, 0);
	atomic_store(&sync_ino, (uint64_t)st.st_ino);
	kt_set_arg(h->a->kt, 0, M_DURABLE);
	kt_run_expect(h->a->kt, 0, 0x101);
	fetch(h);
	assert_int_equal(h->res[0], 0);      /* FLUSH not negotiated */
	assert_int_equal(h->res[1], S_OK);
	assert_int_equal(atomic_load(&sync_calls), 4);
	kt_run_expect(h->a->kt, 0, 0x102);
	fetch(h);
	assert_int_equal(h->res[2], 1u << 9); /* FLUSH negotiated */
	assert_int_equal(h->res[3], S_OK);
	assert_int_equal(atomic_load(&sync_calls), 4);
	kt_run_expect(h->a->kt, 0, 0x103);
	fetch(h);
	assert_int_equal(h->res[4], S_OK);
	assert_int_equal(atomic_load(&sync_calls), 5);
	atomic_store(&sync_fail, 1);
	kt_run_expect(h->a->kt, 0, 0x104);
	fetch(h);
	assert_int_equal(h->res[5], S_IOERR);
	assert_int_equal(h->res[6], S_OK);
	atomic_store(&sync_fail, 0);
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	assert_int_equal(h->res[7], S_OK);
	atomic_store(&sync_ino, 0);
	for (uint64_t s = 400; s <= 408; s++)
		expect_sector(h->img_a, s, 0x61);
	vmm_virtio_blk_stats bs;
	kt_check(vmm_virtio_blk_get_stats(h->dev_a, &bs), "vmm_virtio_blk_get_stats");
	assert_int_equal(bs.flushes, 2);
	assert_int_equal(bs.errors, 1);
	expect_healthy(h);
	b_finish(h);
}

/* ---- Known bugs of other VMMs ---- */

/* CVE-2011-2512: QueueNotify with "negative", out-of-range and truncating indexes, and
 * narrow or wide writes: none reaches queue 0 (the request waits for a real notify). */
static void test_notify_bad_index(void **state)
{
	struct hb *h = hb_setup(state, 0);
	vmm_virtio_mmio_stats s0, s1;
	kt_set_arg(h->a->kt, 0, M_NOTIFY_IDX);
	vmm_virtio_mmio_get_stats(ta(h), &s0);
	kt_run_expect(h->a->kt, 0, 0x100);
	vmm_virtio_mmio_get_stats(ta(h), &s1);
	fetch(h);
	assert_int_equal(h->res[0], 0);
	assert_int_equal(h->res[1], S_UNTOUCHED);
	assert_int_equal(h->res[2], S_OK);
	assert_int_equal(h->res[3], 0);
	assert_false(h->res[4] & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(s1.notifies - s0.notifies, 1); /* only the real one */
	expect_healthy(h);
	b_finish(h);
}

/* CVE-2016-7422: a descriptor length of 4 GiB - 1. */
static void test_huge_length(void **state)
{
	breaking_case(state, M_HUGE_LEN, "is not inside guest RAM");
}

/* CVE-2019-18960: a buffer ending one byte past the end of RAM, for reading and for
 * writing; one ending exactly at the end of RAM is fine. */
static void test_buffer_past_ram_in(void **state)
{
	struct hb *h = hb_setup(state, 0);
	kt_set_arg(h->a->kt, 0, M_PAST_RAM_IN);
	kt_run_expect(h->a->kt, 0, 0x101);
	fetch(h);
	assert_int_equal(h->res[10], S_OK);
	assert_int_equal(h->res[11], 513);
	uint8_t sec[512];
	kt_read(h->a->kt, RAM - 512, sec, sizeof sec);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(sec[i], img_byte(12 * 512 + i));
	assert_true(h->res[1] & VIRTIO_CONFIG_S_NEEDS_RESET);
	expect_broken(h, "buffer [0x1fffe01, 0x2000001) is not inside guest RAM");
	expect_b_progress(h, 20, "while A's device was broken");
	kt_run_expect(h->a->kt, 0, 0x100);
	expect_healthy(h);
	b_finish(h);
}

static void test_buffer_past_ram_out(void **state)
{
	breaking_case(state, M_PAST_RAM_OUT, "buffer [0x1fffe01, 0x2000001) is not inside guest RAM");
}

/* CVE-2024-3446: a read whose data buffer is the device's own MMIO window. */
static void test_buffer_in_own_mmio(void **state)
{
	breaking_case(state, M_MMIO_BUF, "buffer [0xd0000000, 0xd0000200) is not inside guest RAM");
}

/* CVE-2023-3180 (lengths not compared): GET_ID into 19 bytes -> IOERR and nothing
 * written; into 7 + 13 bytes -> the id. */
static void test_get_id_short_buffer(void **state)
{
	struct hb *h = hb_setup(state, 0);
	kt_set_arg(h->a->kt, 0, M_GET_ID_SHORT);
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	assert_int_equal(h->res[0], S_IOERR);
	assert_int_equal(h->res[1], 0);
	assert_int_equal(h->res[2], S_OK);
	assert_int_equal(h->res[3], 21);
	assert_memory_equal((const char *)&h->res[4], GUEST_ID "\0\xcc\xcc\xcc\xcc", 24);
	assert_false(h->res[7] & VIRTIO_CONFIG_S_NEEDS_RESET);
	b_finish(h);
}

/* CVE-2016-5403: a driver that publishes requests as fast as it can and never reaps a
 * completion. The device has at most a queue's worth in flight and allocates nothing
 * per request: host memory stays flat; the driver laps the device and the ring breaks
 * (or the device keeps up); the neighbour on the same loop thread keeps its share. */
static void unreaped(void **state, uint64_t ops_per_sec, bool paced)
{
	struct hb *h = hb_setup(state, ops_per_sec);
	expect_b_progress(h, 20, "before A");
	uint64_t b0 = b_rounds(h);
	kt_set_arg(h->a->kt, 0, M_UNREAPED | (paced ? 0x100 : 0));
	vt_reset_peak_rss();
	uint64_t rss0 = vt_rss_bytes();
	uint64_t t0 = kt_now_ms();
	kt_run_expect(h->a->kt, 0, 0x101);
	uint64_t took = kt_now_ms() - t0;
	if (ops_per_sec) {
		/* The device notices the lap when it next reads the avail index. It may
		 * still hold up to a queue's worth (256) of entries it saw published in
		 * range, served at the limited rate first: allow for them, plus slack. */
		unsigned wait_ms = (unsigned)(256 * 1000 / ops_per_sec) + 3000;
		vt_wait_status(ta(h), VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_CONFIG_S_NEEDS_RESET, wait_ms);
	}
	uint64_t elapsed = kt_now_ms() - t0;
	uint64_t peak = vt_peak_rss_bytes();
	uint64_t b1 = b_rounds(h);
	fetch(h);
	vmm_virtio_blk_stats st;
	kt_check(vmm_virtio_blk_get_stats(h->dev_a, &st), "vmm_virtio_blk_get_stats");
	uint64_t growth = peak > rss0 ? peak - rss0 : 0;
	char err[256];
	print_message("  %llu requests published in %llu ms, %llu served, status %#llx (%s); peak RSS "
		      "+%llu KiB; the neighbour did %llu rounds meanwhile\n",
		      (unsigned long long)h->res[0], (unsigned long long)took, (unsigned long long)st.reads,
		      (unsigned long long)h->res[1], vmm_virtio_mmio_error(ta(h), err, sizeof err),
		      (unsigned long long)growth / 1024, (unsigned long long)(b1 - b0));
	assert_true(growth < (8u << 20));
	if (paced) {
		/* Within a ring of the device's progress: all served, nothing broken. */
		assert_int_equal(h->res[0], 200000);
		assert_int_equal(h->res[2], h->res[4]);
		assert_int_equal(st.reads, 200000);
		assert_false(h->res[1] & VIRTIO_CONFIG_S_NEEDS_RESET);
	} else if (!(h->res[1] & VIRTIO_CONFIG_S_NEEDS_RESET)) {
		assert_int_equal(h->res[0], 1u << 20); /* the driver saw no error: it went on */
	}
	if (vmm_virtio_mmio_status(ta(h)) & VIRTIO_CONFIG_S_NEEDS_RESET)
		assert_true(strstr(err, "entries ahead") || strstr(err, "already in flight"));
	if (ops_per_sec) {
		/* A rate-limited device cannot keep up: the driver lapped it, and it served
		 * no more than its burst (a second's worth) plus its rate. */
		assert_true(vmm_virtio_mmio_status(ta(h)) & VIRTIO_CONFIG_S_NEEDS_RESET);
		assert_true(st.reads <= 1 + ops_per_sec * (elapsed / 1000 + 5));
	}
	expect_b_progress(h, 20, "after A's flood");
	kt_run_expect(h->a->kt, 0, 0x100);
	expect_healthy(h);
	b_finish(h);
}

static void test_unreaped_requests(void **state) { unreaped(state, 0, false); }
static void test_unreaped_requests_paced(void **state) { unreaped(state, 0, true); }
static void test_unreaped_requests_rate_limited(void **state) { unreaped(state, 50, false); }

int main(void)
{
	kvm_test_require();
#define T(f) cmocka_unit_test_teardown(f, hb_teardown)
	const struct CMUnitTest tests[] = {
		T(test_bad_queue_size),
		T(test_bad_ring_addresses),
		T(test_queue_not_ready),
		T(test_avail_index_jump),
		T(test_head_out_of_range),
		T(test_next_out_of_range),
		T(test_chain_loop),
		T(test_indirect_loop),
		T(test_buffer_wraps),
		T(test_indirect_bad_length),
		T(test_indirect_nested),
		T(test_indirect_outside_ram),
		T(test_indirect_with_next),
		T(test_indirect_not_negotiated),
		T(test_total_over_4g),
		T(test_readable_after_writable),
		T(test_wrong_direction),
		T(test_zero_length_descriptors),
		T(test_zero_length_loop),
		T(test_header_only_chains),
		T(test_queue_registers_locked),
		T(test_head_resubmitted),
		T(test_descriptor_rewritten),
		T(test_durability),
		T(test_notify_bad_index),
		T(test_huge_length),
		T(test_buffer_past_ram_in),
		T(test_buffer_past_ram_out),
		T(test_buffer_in_own_mmio),
		T(test_get_id_short_buffer),
		T(test_unreaped_requests),
		T(test_unreaped_requests_paced),
		T(test_unreaped_requests_rate_limited),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
