/* HOSTILE-GUEST.md "Block device durability", on the request layer
 * (lib/devices/blk_request.c) with chains built by hand.
 *
 * This program defines its own fdatasync(): the library is linked statically into it,
 * so the library's calls land here. It counts the calls, records the status byte the
 * guest would see at the moment of the sync (to prove the acknowledgement comes after
 * the data is durable, never before), and can make the sync fail like a dying disk.
 * The KVM side (a guest that negotiates FLUSH or not) is in tests/kvm/test_hostile_blk.c. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/blk_internal.h"

#define SECTORS 64u

static int sync_calls;
static int sync_errno;                 /* != 0: fdatasync fails with it */
static int sync_eintr;                 /* fail this many calls with EINTR first */
static const volatile uint8_t *watched; /* the status byte of the request being served */
static int status_at_sync = -1;

int fdatasync(int fd)
{
	sync_calls++;
	if (watched)
		status_at_sync = *watched;
	if (sync_eintr > 0) {
		sync_eintr--;
		errno = EINTR;
		return -1;
	}
	if (sync_errno) {
		errno = sync_errno;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

struct fx {
	int img;
	vmm_blk_disk d;
	vmm_virtq_chain c;
	struct virtio_blk_outhdr hdr;
	uint8_t status;
	uint8_t data[4096] __attribute__((aligned(512)));
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->img = memfd_create("durability", MFD_CLOEXEC);
	assert_true(f->img >= 0);
	assert_int_equal(ftruncate(f->img, SECTORS * 512), 0);
	vmm_virtio_blk_opts o = VMM_VIRTIO_BLK_OPTS_INIT;
	o.fd = f->img;
	assert_int_equal(vmm_blk_disk_open(&f->d, &o), 0);
	f->d.discard = f->d.write_zeroes = true;
	sync_calls = 0;
	sync_errno = 0;
	status_at_sync = -1;
	watched = &f->status;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	watched = NULL;
	vmm_blk_disk_close(&f->d);
	close(f->img);
	free(f);
	return 0;
}

static void seg(vmm_virtq_chain *c, void *p, uint32_t len, bool writable)
{
	unsigned i = c->n_out + c->n_in;
	c->segs[i] = (vmm_virtq_seg){ .host = p, .len = len, .gpa = (uintptr_t)p };
	if (writable) {
		c->n_in++;
		c->in_bytes += len;
	} else {
		c->n_out++;
		c->out_bytes += len;
	}
}

/* header | data (readable for OUT/DISCARD/WRITE_ZEROES) | status. */
static uint8_t req(struct fx *f, uint32_t type, uint64_t sector, const void *data, uint32_t len)
{
	memset(&f->c, 0, offsetof(vmm_virtq_chain, segs));
	f->hdr = (struct virtio_blk_outhdr){ .type = type, .sector = sector };
	f->status = 0xaa;
	seg(&f->c, &f->hdr, sizeof f->hdr, false);
	if (len)
		seg(&f->c, (void *)(uintptr_t)data, len, false);
	seg(&f->c, &f->status, 1, true);
	vmm_blk_result r;
	vmm_blk_handle(&f->d, &f->c, &r);
	assert_int_equal(r.status, f->status);
	return f->status;
}

/* FLUSH is served with fdatasync, and the guest is told OK only after it returned. */
static void test_flush_syncs_before_ack(void **state)
{
	struct fx *f = *state;
	assert_int_equal(req(f, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(sync_calls, 1);
	assert_int_equal(status_at_sync, 0xaa); /* not yet acknowledged while syncing */
	assert_int_equal(f->d.stats.flushes, 1);
}

/* A failing fdatasync is reported as IOERR (EIO, ENOSPC, EDQUOT alike), not OK. */
static void test_flush_failure_is_ioerr(void **state)
{
	struct fx *f = *state;
	const int errs[] = { EIO, ENOSPC, EDQUOT, EROFS };
	for (unsigned i = 0; i < sizeof errs / sizeof errs[0]; i++) {
		sync_errno = errs[i];
		assert_int_equal(req(f, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_IOERR);
	}
	assert_int_equal(f->d.stats.flushes, 0);
	assert_int_equal(f->d.stats.errors, 4);
	/* EINTR is retried, not reported. */
	sync_errno = 0;
	sync_eintr = 3;
	sync_calls = 0;
	assert_int_equal(req(f, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(sync_calls, 4);
}

/* With FLUSH negotiated (write-back), a write is acknowledged without a sync; the FLUSH
 * after it syncs. */
static void test_write_back(void **state)
{
	struct fx *f = *state;
	f->d.writethrough = false;
	memset(f->data, 0x42, sizeof f->data);
	assert_int_equal(req(f, VIRTIO_BLK_T_OUT, 4, f->data, 4096), VIRTIO_BLK_S_OK);
	assert_int_equal(sync_calls, 0);
	assert_int_equal(req(f, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(sync_calls, 1);
	uint8_t back[4096];
	assert_int_equal(pread(f->img, back, sizeof back, 4 * 512), (ssize_t)sizeof back);
	assert_memory_equal(back, f->data, sizeof back);
}

/* Without FLUSH (write-through, virtio 1.2 5.2.6.2): every write, discard and
 * write-zeroes is synced before it is acknowledged, and a failing sync is IOERR. */
static void test_write_through(void **state)
{
	struct fx *f = *state;
	f->d.writethrough = true;
	memset(f->data, 0x43, sizeof f->data);
	assert_int_equal(req(f, VIRTIO_BLK_T_OUT, 0, f->data, 4096), VIRTIO_BLK_S_OK);
	assert_int_equal(sync_calls, 1);
	assert_int_equal(status_at_sync, 0xaa);
	struct virtio_blk_discard_write_zeroes r = { .sector = 8, .num_sectors = 8 };
	assert_int_equal(req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, &r, sizeof r), VIRTIO_BLK_S_OK);
	assert_int_equal(sync_calls, 2);
	assert_int_equal(req(f, VIRTIO_BLK_T_DISCARD, 0, &r, sizeof r), VIRTIO_BLK_S_OK);
	assert_int_equal(sync_calls, 3);
	/* A read needs no sync; a FLUSH still syncs. */
	memset(&f->c, 0, offsetof(vmm_virtq_chain, segs));
	f->hdr = (struct virtio_blk_outhdr){ .type = VIRTIO_BLK_T_IN, .sector = 0 };
	f->status = 0xaa;
	seg(&f->c, &f->hdr, sizeof f->hdr, false);
	seg(&f->c, f->data, 512, true);
	seg(&f->c, &f->status, 1, true);
	vmm_blk_result res;
	vmm_blk_handle(&f->d, &f->c, &res);
	assert_int_equal(res.status, VIRTIO_BLK_S_OK);
	assert_int_equal(sync_calls, 3);
	assert_int_equal(req(f, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(sync_calls, 4);

	sync_errno = EIO;
	assert_int_equal(req(f, VIRTIO_BLK_T_OUT, 16, f->data, 512), VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, &r, sizeof r), VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(f, VIRTIO_BLK_T_DISCARD, 0, &r, sizeof r), VIRTIO_BLK_S_IOERR);
}

/* O_DIRECT bypasses the page cache but not the disk's own cache: FLUSH still syncs, and
 * write-through still syncs every write. */
static void test_direct_is_not_durable_alone(void **state)
{
	struct fx *f = *state;
	f->d.direct = true; /* as if opened with VMM_BLK_DIRECT (memfd has no O_DIRECT) */
	f->d.writethrough = false;
	memset(f->data, 0x44, sizeof f->data);
	assert_int_equal(req(f, VIRTIO_BLK_T_OUT, 0, f->data, 4096), VIRTIO_BLK_S_OK);
	assert_int_equal(sync_calls, 0);
	assert_int_equal(req(f, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(sync_calls, 1);
	f->d.writethrough = true;
	assert_int_equal(req(f, VIRTIO_BLK_T_OUT, 8, f->data, 4096), VIRTIO_BLK_S_OK);
	assert_int_equal(sync_calls, 2);
	assert_int_equal(status_at_sync, 0xaa);
}

/* Read-only disks refuse writes, discards and write-zeroes with IOERR before any I/O or
 * sync; requests past the end get IOERR. */
static void test_read_only_and_past_end(void **state)
{
	struct fx *f = *state;
	vmm_blk_disk_close(&f->d);
	vmm_virtio_blk_opts o = VMM_VIRTIO_BLK_OPTS_INIT;
	o.fd = f->img;
	o.flags = VMM_BLK_READONLY;
	assert_int_equal(vmm_blk_disk_open(&f->d, &o), 0);
	f->d.writethrough = true;
	memset(f->data, 0x45, sizeof f->data);
	struct virtio_blk_discard_write_zeroes r = { .sector = 0, .num_sectors = 1 };
	assert_int_equal(req(f, VIRTIO_BLK_T_OUT, 0, f->data, 512), VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(f, VIRTIO_BLK_T_DISCARD, 0, &r, sizeof r), VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, &r, sizeof r), VIRTIO_BLK_S_IOERR);
	assert_int_equal(sync_calls, 0);
	uint8_t back[512];
	assert_int_equal(pread(f->img, back, sizeof back, 0), (ssize_t)sizeof back);
	for (unsigned i = 0; i < sizeof back; i++)
		assert_int_equal(back[i], 0);
	vmm_blk_disk_close(&f->d);
	o.flags = 0;
	assert_int_equal(vmm_blk_disk_open(&f->d, &o), 0);
	assert_int_equal(req(f, VIRTIO_BLK_T_OUT, SECTORS, f->data, 512), VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(f, VIRTIO_BLK_T_OUT, SECTORS - 1, f->data, 1024), VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, SECTORS, NULL, 0), VIRTIO_BLK_S_OK); /* empty, at the end */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flush_syncs_before_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_failure_is_ioerr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_through, setup, teardown),
		cmocka_unit_test_setup_teardown(test_direct_is_not_durable_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_and_past_end, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
