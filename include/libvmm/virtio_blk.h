/* libvmm: virtio-blk (device id 2) on a raw image file.
 *
 * Offers VIRTIO_BLK_F_FLUSH (served with fdatasync; a failed sync is reported as IOERR),
 * DISCARD (punches holes) and WRITE_ZEROES, SEG_MAX, BLK_SIZE, GET_ID, and RO for
 * read-only disks. Requests past the end of the disk, writes to a read-only disk and
 * malformed requests complete with VIRTIO_BLK_S_IOERR (or UNSUPP for unknown types);
 * they never fail the device (a chain without a status byte is completed with nothing
 * written). An optional token-bucket rate limit (operations per second and bytes per
 * second) delays requests instead of refusing them.
 *
 * Durability: a write completes once pwritev(2) returned; it is durable after a FLUSH
 * completes. A driver that does not negotiate FLUSH gets write-through (every write is
 * followed by fdatasync), as virtio 1.2 §5.2.6 requires.
 *
 * Limits in config space: seg_max 254 (longer chains, up to the queue walker's
 * VMM_VIRTQ_MAX_SEGS, are still served); DISCARD up to 2 GiB and WRITE_ZEROES up to
 * 32 MiB per range, 32 ranges per request (beyond them: IOERR). DISCARD punches
 * holes (a file system that cannot is left as is: discard is a hint); WRITE_ZEROES uses
 * FALLOC_FL_PUNCH_HOLE with the UNMAP flag, FALLOC_FL_ZERO_RANGE otherwise, and writes
 * zeros where neither works. Requests run synchronously on the device's loop thread,
 * straight between the image and guest memory; with VMM_BLK_DIRECT, guest buffers that
 * are not 512-byte aligned go through a 256 KiB bounce buffer (O_DIRECT assumes a
 * 512-byte logical block size).
 */
#ifndef LIBVMM_VIRTIO_BLK_H
#define LIBVMM_VIRTIO_BLK_H

#include <libvmm/sys/device.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMM_BLK_READONLY (1u << 0) /* VIRTIO_BLK_F_RO; writes, discards get IOERR */
#define VMM_BLK_DIRECT (1u << 1)   /* open with O_DIRECT (not durable by itself: FLUSH is) */

typedef struct vmm_virtio_blk_opts {
	uint32_t size;        /* sizeof(vmm_virtio_blk_opts) */
	uint32_t flags;       /* VMM_BLK_* */
	const char *path;     /* image file or block device; or NULL and pass fd */
	int fd;               /* an open image (dup'ed; the caller keeps its fd), or -1. Must
	                       * be readable, and writable unless VMM_BLK_READONLY. With
	                       * VMM_BLK_DIRECT it is reopened through /proc/self/fd rather
	                       * than changed, if it lacks O_DIRECT. */
	const char *id;       /* GET_ID serial, at most 20 bytes; NULL = "libvmm" */
	/* Rate limit; 0 = unlimited. Bursts up to one second's worth. Bytes are those of
	 * IN and OUT data; a request may overdraw the byte budget, and the next one then
	 * waits until it is repaid. */
	uint64_t ops_per_sec;
	uint64_t bytes_per_sec;
} vmm_virtio_blk_opts;

#define VMM_VIRTIO_BLK_OPTS_INIT { sizeof(vmm_virtio_blk_opts), 0, 0, -1, 0, 0, 0 }

/* Returns 0, -EINVAL, -ENOMEM, or the errno of open/fstat. */
VMM_API int vmm_virtio_blk_create(vmm_virtio_device **out, const vmm_virtio_blk_opts *opts);

typedef struct vmm_virtio_blk_stats {
	/* Requests completed with VIRTIO_BLK_S_OK, by type. */
	uint64_t reads, writes, flushes, discards, write_zeroes, get_ids;
	uint64_t bytes_read, bytes_written;
	uint64_t errors;     /* requests completed with IOERR or UNSUPP, or malformed */
	uint64_t throttled;  /* times the rate limit held a request back */
} vmm_virtio_blk_stats;

/* Any thread. Returns 0 or -EINVAL (not a virtio-blk device). */
VMM_API int vmm_virtio_blk_get_stats(vmm_virtio_device *dev, vmm_virtio_blk_stats *out);

#ifdef __cplusplus
}
#endif
#endif
