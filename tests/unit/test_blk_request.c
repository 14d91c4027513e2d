/* The virtio-blk request layer (lib/devices/blk_request.c) on chains built by hand:
 * every request type, every validation path, and the image file's bytes afterwards. No
 * queue and no VM: the segments point into host buffers. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/blk_internal.h"

#define SECTORS 64u
#define IMG_BYTES (SECTORS * 512u)

struct fixture {
	int img;                 /* the image file (memfd, or a file for O_DIRECT) */
	vmm_blk_disk *d;
	vmm_virtq_chain *c;
	struct virtio_blk_outhdr hdr;
	uint8_t status;
	uint8_t *buf;            /* data buffer, 1 MiB, page aligned */
};

static int make_image(void)
{
	int fd = memfd_create("blk-test", MFD_CLOEXEC);
	assert_true(fd >= 0);
	uint8_t *p = malloc(IMG_BYTES);
	for (unsigned i = 0; i < IMG_BYTES; i++)
		p[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(pwrite(fd, p, IMG_BYTES, 0), IMG_BYTES);
	free(p);
	return fd;
}

static uint8_t img_byte(unsigned i) { return (uint8_t)(i * 7 + 3); }

static void open_disk(struct fixture *f, uint32_t flags, const char *id)
{
	vmm_virtio_blk_opts o = VMM_VIRTIO_BLK_OPTS_INIT;
	o.fd = f->img;
	o.flags = flags;
	o.id = id;
	assert_int_equal(vmm_blk_disk_open(f->d, &o), 0);
	f->d->discard = f->d->write_zeroes = true;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	f->d = calloc(1, sizeof *f->d);
	f->c = calloc(1, sizeof *f->c);
	assert_int_equal(posix_memalign((void **)&f->buf, 4096, 1 << 20), 0);
	f->img = make_image();
	open_disk(f, 0, "serial-123");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	vmm_blk_disk_close(f->d);
	close(f->img);
	free(f->buf);
	free(f->c);
	free(f->d);
	free(f);
	return 0;
}

/* ---- chain building ---- */

static void chain_reset(vmm_virtq_chain *c)
{
	c->n_out = c->n_in = 0;
	c->out_bytes = c->in_bytes = 0;
	c->head = 0;
}

static void seg(vmm_virtq_chain *c, void *p, uint32_t len, bool writable)
{
	unsigned i = c->n_out + c->n_in;
	assert_true(i < VMM_VIRTQ_MAX_SEGS);
	if (!writable)
		assert_int_equal(c->n_in, 0); /* readable ones first */
	c->segs[i].host = p;
	c->segs[i].len = len;
	c->segs[i].gpa = (uintptr_t)p;
	if (writable) {
		c->n_in++;
		c->in_bytes += len;
	} else {
		c->n_out++;
		c->out_bytes += len;
	}
}

/* The usual shape: header | data (readable for OUT, writable for IN) | status. */
static vmm_blk_result req(struct fixture *f, uint32_t type, uint64_t sector, void *data, uint32_t len,
			  bool data_writable)
{
	chain_reset(f->c);
	f->hdr.type = type;
	f->hdr.ioprio = 0;
	f->hdr.sector = sector;
	f->status = 0xaa;
	seg(f->c, &f->hdr, sizeof f->hdr, false);
	if (data && !data_writable)
		seg(f->c, data, len, false);
	if (data && data_writable)
		seg(f->c, data, len, true);
	seg(f->c, &f->status, 1, true);
	vmm_blk_result r;
	vmm_blk_handle(f->d, f->c, &r);
	return r;
}

static void check_status(struct fixture *f, const vmm_blk_result *r, uint8_t want)
{
	assert_int_equal(r->status, want);
	assert_int_equal(f->status, want);
}

static void read_img(struct fixture *f, void *buf, size_t len, off_t off)
{
	assert_int_equal(pread(f->img, buf, len, off), (ssize_t)len);
}

/* ---- tests ---- */

static void test_write_read_round_trip(void **state)
{
	struct fixture *f = *state;
	for (unsigned i = 0; i < 4096; i++)
		f->buf[i] = (uint8_t)(i ^ 0x5a);
	vmm_blk_result r = req(f, VIRTIO_BLK_T_OUT, 3, f->buf, 4096, false);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	assert_int_equal(r.written, 1);
	assert_int_equal(r.bytes, 4096);

	uint8_t img[4096 + 2];
	read_img(f, img, sizeof img, 3 * 512 - 1);
	assert_int_equal(img[0], img_byte(3 * 512 - 1)); /* neighbours untouched */
	assert_memory_equal(img + 1, f->buf, 4096);
	assert_int_equal(img[4097], img_byte(3 * 512 + 4096));

	memset(f->buf + 8192, 0, 4096);
	r = req(f, VIRTIO_BLK_T_IN, 3, f->buf + 8192, 4096, true);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	assert_int_equal(r.written, 4097); /* data and status */
	assert_memory_equal(f->buf + 8192, f->buf, 4096);
	assert_int_equal(f->d->stats.reads, 1);
	assert_int_equal(f->d->stats.writes, 1);
	assert_int_equal(f->d->stats.bytes_read, 4096);
	assert_int_equal(f->d->stats.bytes_written, 4096);
	assert_int_equal(f->d->stats.errors, 0);
}

/* Descriptor boundaries mean nothing: header split in three, data in odd pieces, the
 * status byte sharing the last data segment. */
static void test_odd_segmentation(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_IN, .sector = 10 };
	uint8_t *hp = (uint8_t *)&h;
	uint8_t *data = f->buf;
	memset(data, 0xee, 2048);
	chain_reset(f->c);
	seg(f->c, hp, 5, false);
	seg(f->c, hp + 5, 0, false);
	seg(f->c, hp + 5, 11, false);
	seg(f->c, data, 100, true);
	seg(f->c, data + 100, 0, true);
	seg(f->c, data + 100, 313, true);
	seg(f->c, data + 413, 1024 - 413 + 1, true); /* the rest of 1024 bytes + status */
	vmm_blk_result r;
	vmm_blk_handle(f->d, f->c, &r);
	assert_int_equal(r.status, VIRTIO_BLK_S_OK);
	assert_int_equal(data[1024], VIRTIO_BLK_S_OK);
	assert_int_equal(r.written, 1025);
	for (unsigned i = 0; i < 1024; i++)
		assert_int_equal(data[i], img_byte(10 * 512 + i));
	assert_int_equal(data[1025], 0xee);
}

static void test_bad_lengths_and_ranges(void **state)
{
	struct fixture *f = *state;
	memset(f->buf, 0xcc, 4096);
	vmm_blk_result r = req(f, VIRTIO_BLK_T_IN, 0, f->buf, 511, true);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	assert_int_equal(r.written, 0); /* nothing written from the start */
	assert_int_equal(f->buf[0], 0xcc);
	r = req(f, VIRTIO_BLK_T_OUT, 0, f->buf, 513, false);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);

	/* The last sector is fine, one past it is not. */
	r = req(f, VIRTIO_BLK_T_IN, SECTORS - 1, f->buf, 512, true);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	r = req(f, VIRTIO_BLK_T_IN, SECTORS - 1, f->buf, 1024, true);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	r = req(f, VIRTIO_BLK_T_OUT, SECTORS, f->buf, 512, false);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	/* A zero-length request at the end is inside, past it is not. */
	r = req(f, VIRTIO_BLK_T_IN, SECTORS, NULL, 0, true);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	r = req(f, VIRTIO_BLK_T_IN, SECTORS + 1, NULL, 0, true);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	/* sector * 512 would wrap around 2^64. */
	r = req(f, VIRTIO_BLK_T_OUT, 1ull << 55, f->buf, 512, false);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	r = req(f, VIRTIO_BLK_T_IN, UINT64_MAX, f->buf, 512, true);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);

	uint8_t img[512];
	read_img(f, img, 512, 0);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(img[i], img_byte(i)); /* the refused OUT wrote nothing */
	assert_int_equal(f->d->stats.errors, 7);
}

static void test_readonly(void **state)
{
	struct fixture *f = *state;
	vmm_blk_disk_close(f->d);
	open_disk(f, VMM_BLK_READONLY, NULL);
	memset(f->buf, 0x11, 512);
	vmm_blk_result r = req(f, VIRTIO_BLK_T_OUT, 0, f->buf, 512, false);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	struct virtio_blk_discard_write_zeroes seg1 = { .sector = 0, .num_sectors = 1 };
	r = req(f, VIRTIO_BLK_T_DISCARD, 0, &seg1, sizeof seg1, false);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	r = req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, &seg1, sizeof seg1, false);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	r = req(f, VIRTIO_BLK_T_IN, 0, f->buf, 512, true);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(f->buf[i], img_byte(i));
	r = req(f, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	/* The default id. */
	r = req(f, VIRTIO_BLK_T_GET_ID, 0, f->buf, 20, true);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	assert_memory_equal(f->buf, "libvmm\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20);
}

static void test_get_id(void **state)
{
	struct fixture *f = *state;
	memset(f->buf, 0xff, 64);
	vmm_blk_result r = req(f, VIRTIO_BLK_T_GET_ID, 0, f->buf, 20, true);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	assert_int_equal(r.written, 21);
	assert_memory_equal(f->buf, "serial-123\0\0\0\0\0\0\0\0\0\0", 20);
	r = req(f, VIRTIO_BLK_T_GET_ID, 0, f->buf, 19, true);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	assert_int_equal(f->d->stats.get_ids, 1);

	/* An id of exactly 20 bytes has no NUL; 21 bytes is refused. */
	vmm_blk_disk_close(f->d);
	open_disk(f, 0, "abcdefghijklmnopqrst");
	r = req(f, VIRTIO_BLK_T_GET_ID, 0, f->buf, 64, true);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	assert_int_equal(r.written, 20); /* 20 bytes from the start; status at byte 63 */
	assert_memory_equal(f->buf, "abcdefghijklmnopqrst", 20);
	vmm_blk_disk_close(f->d);
	vmm_virtio_blk_opts o = VMM_VIRTIO_BLK_OPTS_INIT;
	o.fd = f->img;
	o.id = "abcdefghijklmnopqrstu";
	assert_int_equal(vmm_blk_disk_open(f->d, &o), -EINVAL);
	assert_int_equal(f->d->fd, -1);
	open_disk(f, 0, NULL);
}

static bool img_zero(struct fixture *f, unsigned first, unsigned n)
{
	uint8_t s[512];
	for (unsigned k = 0; k < n; k++) {
		read_img(f, s, 512, (off_t)(first + k) * 512);
		for (unsigned i = 0; i < 512; i++)
			if (s[i])
				return false;
	}
	return true;
}

static bool img_orig(struct fixture *f, unsigned first, unsigned n)
{
	uint8_t s[512];
	for (unsigned k = 0; k < n; k++) {
		read_img(f, s, 512, (off_t)(first + k) * 512);
		for (unsigned i = 0; i < 512; i++)
			if (s[i] != img_byte((first + k) * 512 + i))
				return false;
	}
	return true;
}

static void test_discard(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk_discard_write_zeroes s[2] = {
		{ .sector = 8, .num_sectors = 8 },  /* a whole 4 KiB block: punched */
		{ .sector = 20, .num_sectors = 2 },
	};
	vmm_blk_result r = req(f, VIRTIO_BLK_T_DISCARD, 0, s, sizeof s, false);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	assert_true(img_zero(f, 8, 8));
	assert_true(img_zero(f, 20, 2));
	assert_true(img_orig(f, 7, 1));
	assert_true(img_orig(f, 16, 4));
	assert_true(img_orig(f, 22, 1));
	assert_int_equal(f->d->stats.discards, 1);

	/* UNMAP is not a discard flag; unknown flags; a range past the end (the first,
	 * valid segment must not be executed either); a ragged list; too many segments. */
	s[0] = (struct virtio_blk_discard_write_zeroes){ .sector = 30, .num_sectors = 1,
							 .flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };
	r = req(f, VIRTIO_BLK_T_DISCARD, 0, s, sizeof s[0], false);
	check_status(f, &r, VIRTIO_BLK_S_UNSUPP);
	s[0].flags = 2;
	r = req(f, VIRTIO_BLK_T_DISCARD, 0, s, sizeof s[0], false);
	check_status(f, &r, VIRTIO_BLK_S_UNSUPP);
	s[0].flags = 0;
	s[1] = (struct virtio_blk_discard_write_zeroes){ .sector = SECTORS - 1, .num_sectors = 2 };
	r = req(f, VIRTIO_BLK_T_DISCARD, 0, s, sizeof s, false);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	assert_true(img_orig(f, 30, 1));
	r = req(f, VIRTIO_BLK_T_DISCARD, 0, s, sizeof s - 1, false);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	r = req(f, VIRTIO_BLK_T_DISCARD, 0, NULL, 0, false);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	static struct virtio_blk_discard_write_zeroes many[BLK_MAX_DWZ_SEGS + 1];
	r = req(f, VIRTIO_BLK_T_DISCARD, 0, many, sizeof many, false);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	r = req(f, VIRTIO_BLK_T_DISCARD, 0, many, sizeof many - sizeof many[0], false);
	check_status(f, &r, VIRTIO_BLK_S_OK); /* 32 empty segments: nothing to do */

	/* Not negotiated. */
	f->d->discard = false;
	r = req(f, VIRTIO_BLK_T_DISCARD, 0, s, sizeof s[0], false);
	check_status(f, &r, VIRTIO_BLK_S_UNSUPP);
}

static void test_write_zeroes(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk_discard_write_zeroes s[2] = {
		{ .sector = 1, .num_sectors = 3 },
		{ .sector = 40, .num_sectors = 9, .flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP },
	};
	vmm_blk_result r = req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, s, sizeof s, false);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	assert_true(img_orig(f, 0, 1));
	assert_true(img_zero(f, 1, 3));
	assert_true(img_orig(f, 4, 36));
	assert_true(img_zero(f, 40, 9));
	assert_true(img_orig(f, 49, 1));
	struct stat st;
	assert_int_equal(fstat(f->img, &st), 0);
	assert_int_equal(st.st_size, IMG_BYTES); /* KEEP_SIZE */
	assert_int_equal(f->d->stats.write_zeroes, 1);

	s[0].flags = 4;
	r = req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, s, sizeof s[0], false);
	check_status(f, &r, VIRTIO_BLK_S_UNSUPP);
	s[0] = (struct virtio_blk_discard_write_zeroes){ .sector = 0, .num_sectors = BLK_MAX_WRITE_ZEROES_SECTORS + 1 };
	r = req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, s, sizeof s[0], false);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	s[0] = (struct virtio_blk_discard_write_zeroes){ .sector = UINT64_MAX, .num_sectors = 1 };
	r = req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, s, sizeof s[0], false);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	f->d->write_zeroes = false;
	s[0].sector = 0;
	r = req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, s, sizeof s[0], false);
	check_status(f, &r, VIRTIO_BLK_S_UNSUPP);
	assert_true(img_orig(f, 0, 1));
}

static void test_malformed(void **state)
{
	struct fixture *f = *state;
	/* No writable byte at all: nothing to report, nothing written. */
	struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_OUT, .sector = 0 };
	memset(f->buf, 0x77, 512);
	chain_reset(f->c);
	seg(f->c, &h, sizeof h, false);
	seg(f->c, f->buf, 512, false);
	vmm_blk_result r;
	vmm_blk_handle(f->d, f->c, &r);
	assert_int_equal(r.written, 0);
	assert_int_equal(r.status, 0xff);
	assert_true(img_orig(f, 0, 1));
	/* Writable descriptors of length 0 only: the same. */
	seg(f->c, f->buf + 600, 0, true);
	vmm_blk_handle(f->d, f->c, &r);
	assert_int_equal(r.written, 0);
	assert_true(img_orig(f, 0, 1));

	/* A header shorter than 16 bytes: IOERR. */
	chain_reset(f->c);
	seg(f->c, &h, 15, false);
	f->status = 0;
	seg(f->c, &f->status, 1, true);
	vmm_blk_handle(f->d, f->c, &r);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
	assert_int_equal(r.written, 1);
	/* Only a status byte. */
	chain_reset(f->c);
	seg(f->c, &f->status, 1, true);
	vmm_blk_handle(f->d, f->c, &r);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);

	/* Unknown types, including legacy SCSI and secure erase. */
	uint32_t types[] = { 2, 3, 5, 10, VIRTIO_BLK_T_SECURE_ERASE, 0x80000000u, UINT32_MAX };
	for (unsigned i = 0; i < sizeof types / sizeof types[0]; i++) {
		r = req(f, types[i], 0, f->buf, 512, false);
		check_status(f, &r, VIRTIO_BLK_S_UNSUPP);
	}
	assert_true(img_orig(f, 0, 1));

	r = req(f, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	assert_int_equal(f->d->stats.flushes, 1);
}

/* Many small segments: one preadv with the whole vector. */
static void test_many_segments(void **state)
{
	struct fixture *f = *state;
	chain_reset(f->c);
	struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_IN, .sector = 0 };
	seg(f->c, &h, sizeof h, false);
	unsigned n = VMM_VIRTQ_MAX_SEGS - 2; /* 1022 segments of 32 bytes, 2 of 64 */
	for (unsigned i = 0; i < n; i++)
		seg(f->c, f->buf + i * 32, 32, true);
	/* total 32704 bytes: not whole sectors -> pad with the status segment */
	uint32_t data = n * 32;
	uint32_t pad = (512 - data % 512) % 512;
	seg(f->c, f->buf + data, pad + 1, true);
	vmm_blk_result r;
	vmm_blk_handle(f->d, f->c, &r);
	assert_int_equal(r.status, VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < data + pad; i++)
		assert_int_equal(f->buf[i], img_byte(i));
}

/* O_DIRECT: aligned buffers go straight through, unaligned ones through the bounce
 * buffer, in pieces when bigger than it. */
static void test_direct(void **state)
{
	struct fixture *f = *state;
	char path[] = "/tmp/blk-direct-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	const size_t size = 2 * BLK_BOUNCE_SIZE + 8192;
	uint8_t *p = malloc(size);
	for (size_t i = 0; i < size; i++)
		p[i] = (uint8_t)(i * 13);
	assert_int_equal(pwrite(fd, p, size, 0), (ssize_t)size);
	vmm_blk_disk_close(f->d);
	vmm_virtio_blk_opts o = VMM_VIRTIO_BLK_OPTS_INIT;
	o.fd = fd;
	o.flags = VMM_BLK_DIRECT;
	int rc = vmm_blk_disk_open(f->d, &o);
	close(fd);
	if (rc == -EINVAL) { /* no O_DIRECT on this file system */
		free(p);
		open_disk(f, 0, NULL);
		skip();
	}
	assert_int_equal(rc, 0);
	assert_true(fcntl(f->d->fd, F_GETFL) & O_DIRECT);
	f->d->write_zeroes = true;

	/* Aligned read. */
	vmm_blk_result r = req(f, VIRTIO_BLK_T_IN, 1, f->buf, 4096, true);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	assert_memory_equal(f->buf, p + 512, 4096);
	assert_null(f->d->bounce);
	/* Unaligned read bigger than the bounce buffer. */
	uint8_t *u = f->buf + 3;
	uint32_t len = BLK_BOUNCE_SIZE + 4096;
	r = req(f, VIRTIO_BLK_T_IN, 2, u, len, true);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	assert_memory_equal(u, p + 1024, len);
	assert_non_null(f->d->bounce);
	/* Unaligned write, read back through the file. */
	for (uint32_t i = 0; i < len; i++)
		u[i] = (uint8_t)(i * 31 + 1);
	r = req(f, VIRTIO_BLK_T_OUT, 5, u, len, false);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	uint8_t *back = malloc(len);
	/* A buffered descriptor of our own on the same file. */
	char fdpath[64];
	snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", f->d->fd);
	int plain = open(fdpath, O_RDONLY);
	assert_true(plain >= 0);
	assert_int_equal(pread(plain, back, len, 5 * 512), (ssize_t)len);
	assert_memory_equal(back, u, len);
	/* Write-zeroes through the same fd. */
	struct virtio_blk_discard_write_zeroes s = { .sector = 5, .num_sectors = 3 };
	r = req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, &s, sizeof s, false);
	check_status(f, &r, VIRTIO_BLK_S_OK);
	assert_int_equal(pread(plain, back, 1536, 5 * 512), 1536);
	for (unsigned i = 0; i < 1536; i++)
		assert_int_equal(back[i], 0);
	close(plain);
	free(back);
	free(p);
}

static void test_open_errors(void **state)
{
	(void)state;
	vmm_blk_disk *d = calloc(1, sizeof *d);
	vmm_virtio_blk_opts o = VMM_VIRTIO_BLK_OPTS_INIT;
	assert_int_equal(vmm_blk_disk_open(d, &o), -EINVAL); /* neither path nor fd */
	o.path = "/nonexistent/blk.img";
	assert_int_equal(vmm_blk_disk_open(d, &o), -ENOENT);
	assert_non_null(strstr(vmm_last_error(), "/nonexistent/blk.img"));
	o.path = "/dev/null"; /* a character device */
	assert_int_equal(vmm_blk_disk_open(d, &o), -EINVAL);
	o.path = NULL;
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	o.fd = fd;
	assert_int_equal(vmm_blk_disk_open(d, &o), -EINVAL); /* read-only fd, writable disk */
	assert_non_null(strstr(vmm_last_error(), "VMM_BLK_READONLY"));
	o.flags = VMM_BLK_READONLY;
	assert_int_equal(vmm_blk_disk_open(d, &o), 0);
	assert_true(d->fd >= 0 && d->fd != fd);
	assert_true(d->readonly);
	vmm_blk_disk_close(d);
	o.flags = 1u << 7;
	assert_int_equal(vmm_blk_disk_open(d, &o), -EINVAL);
	close(fd);
	free(d);
}

/* A capacity that is not a whole number of sectors: the tail is not addressable. */
static void test_partial_sector(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(ftruncate(f->img, IMG_BYTES + 100), 0);
	vmm_blk_disk_close(f->d);
	open_disk(f, 0, NULL);
	assert_int_equal(f->d->sectors, SECTORS);
	vmm_blk_result r = req(f, VIRTIO_BLK_T_IN, SECTORS, f->buf, 512, true);
	check_status(f, &r, VIRTIO_BLK_S_IOERR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_read_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_segmentation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_lengths_and_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_zeroes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_direct, setup, teardown),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test_setup_teardown(test_partial_sector, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
