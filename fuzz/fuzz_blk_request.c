/* Fuzz target: the virtio-blk request layer (lib/devices/blk_request.c) on a chain the
 * input describes, against a 64-sector memfd image.
 *
 * Input layout (fuzz/gen_blk_request_seeds.py writes seeds in it):
 *   [0]      disk flags: 1 read-only, 2 "O_DIRECT" (forces the bounce-buffer path; the
 *            memfd itself is buffered), 4 DISCARD and 8 WRITE_ZEROES negotiated,
 *            16 write-through (FLUSH not negotiated)
 *   [1]      number of segments (mod 17)
 *   [2..]    per segment 5 bytes: u16 offset into guest RAM, u16 length, u8 bit 0 =
 *            device-writable (once a writable one is seen, the rest are writable too,
 *            as the queue walker guarantees)
 *   rest     the initial contents of guest RAM (headers, data, ranges)
 * Guest RAM is a standalone 128 KiB map; segments are translated through vmm_mem like
 * the queue walker does, so they may overlap each other (aliasing the header, the data
 * and the status byte) but never leave RAM.
 *
 * Beyond "no crash, no sanitizer report" it checks the layer's promises: a status that
 * is OK, IOERR or UNSUPP (0xff only without a status byte) and is the last writable
 * byte; a used length within the writable part; a read-only disk's image unchanged; the
 * image size unchanged; no data moved on an error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvmm/libvmm.h>
#include "devices/blk_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM_GPA 0x100000ull
#define RAM_LEN 0x20000ull
#define IMG_SECTORS 64u
#define IMG_BYTES (IMG_SECTORS * 512u)
#define MAX_SEGS 16u

struct fuzz_state {
	vmm_mem *mem;
	uint8_t *ram;
	vmm_blk_disk *disk;
	vmm_virtq_chain *chain;
	uint8_t pattern[IMG_BYTES];
	uint8_t image[IMG_BYTES];
};

static struct fuzz_state *fs; /* built once: a map and an image per input would dominate */

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_blk_request: broken promise: %s (last error: %s)\n", what,
			vmm_last_error());
		abort();
	}
}

static struct fuzz_state *get_state(void)
{
	if (fs)
		return fs;
	fs = calloc(1, sizeof *fs);
	check(fs != NULL, "calloc");
	check(vmm_mem_create(&fs->mem) == 0, "vmm_mem_create");
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.gpa = RAM_GPA;
	o.len = RAM_LEN;
	o.backing = VMM_MEM_ANON;
	check(vmm_mem_add_region(fs->mem, &o) == 0, "vmm_mem_add_region");
	check(vmm_mem_translate(fs->mem, RAM_GPA, RAM_LEN, true, (void **)&fs->ram) == 0, "translate RAM");
	for (unsigned i = 0; i < IMG_BYTES; i++)
		fs->pattern[i] = (uint8_t)(i * 151 + (i >> 9));
	int fd = memfd_create("fuzz-blk", MFD_CLOEXEC);
	check(fd >= 0, "memfd_create");
	check(ftruncate(fd, IMG_BYTES) == 0, "ftruncate");
	fs->disk = calloc(1, sizeof *fs->disk);
	fs->chain = calloc(1, sizeof *fs->chain);
	check(fs->disk && fs->chain, "calloc");
	vmm_virtio_blk_opts bo = VMM_VIRTIO_BLK_OPTS_INIT;
	bo.fd = fd;
	bo.id = "fuzz-disk";
	check(vmm_blk_disk_open(fs->disk, &bo) == 0, "vmm_blk_disk_open");
	close(fd);
	check(fs->disk->sectors == IMG_SECTORS, "capacity");
	return fs;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_state *s = get_state();
	vmm_blk_disk *d = s->disk;
	vmm_virtq_chain *c = s->chain;
	if (size < 2)
		return 0;
	uint8_t flags = data[0];
	unsigned nseg = data[1] % (MAX_SEGS + 1);
	size_t pos = 2;
	if (size - pos < (size_t)nseg * 5)
		return 0;

	/* The image and RAM start from known contents every time. */
	check(pwrite(d->fd, s->pattern, IMG_BYTES, 0) == IMG_BYTES, "image reset");
	memset(s->ram, 0, RAM_LEN);
	d->readonly = flags & 1;
	d->direct = flags & 2;
	d->discard = flags & 4;
	d->write_zeroes = flags & 8;
	d->writethrough = flags & 16;
	vmm_virtio_blk_stats before = d->stats;

	memset(c, 0, offsetof(vmm_virtq_chain, segs));
	bool writable = false;
	uint64_t in_bytes = 0;
	uint8_t *last_writable = NULL;
	for (unsigned i = 0; i < nseg; i++, pos += 5) {
		uint16_t off = le16(&data[pos]), len = le16(&data[pos + 2]);
		writable = writable || (data[pos + 4] & 1);
		void *host;
		check(vmm_mem_translate(s->mem, RAM_GPA + off, len, writable, &host) == 0, "segment in RAM");
		vmm_virtq_seg *sg = &c->segs[c->n_out + c->n_in];
		sg->host = host;
		sg->len = len;
		sg->gpa = RAM_GPA + off;
		if (writable) {
			c->n_in++;
			c->in_bytes += len;
			in_bytes += len;
			if (len)
				last_writable = (uint8_t *)host + len - 1;
		} else {
			c->n_out++;
			c->out_bytes += len;
		}
	}
	size_t content = size - pos < RAM_LEN ? size - pos : RAM_LEN;
	memcpy(s->ram, data + pos, content);

	vmm_blk_result r;
	vmm_blk_handle(d, c, &r);

	if (!last_writable) {
		check(r.status == 0xff && r.written == 0, "no status byte: nothing reported");
	} else {
		check(r.status == VIRTIO_BLK_S_OK || r.status == VIRTIO_BLK_S_IOERR ||
		      r.status == VIRTIO_BLK_S_UNSUPP, "a defined status");
		check(*last_writable == r.status, "status is the last writable byte");
	}
	check(r.written <= in_bytes, "used length within the writable part");
	if (r.status != VIRTIO_BLK_S_OK)
		check(r.bytes == 0, "no data counted on an error");
	uint64_t errors = d->stats.errors - before.errors;
	check(errors == (r.status != VIRTIO_BLK_S_OK), "errors counted once");

	struct stat st;
	check(fstat(d->fd, &st) == 0 && st.st_size == IMG_BYTES, "image size unchanged");
	if (d->readonly || r.status != VIRTIO_BLK_S_OK) {
		check(pread(d->fd, s->image, IMG_BYTES, 0) == IMG_BYTES, "image read");
		/* A failed request may have written part of a multi-range request before the
		 * error only if its ranges were all valid (I/O errors); memfds don't fail. */
		check(memcmp(s->image, s->pattern, IMG_BYTES) == 0, "image unchanged");
	}
	return 0;
}
