/* virtio-blk internals: the disk and the request layer, separate from the transport
 * glue in virtio_blk.c so the parser can run (unit tests, fuzzing) on a chain built by
 * hand, without a queue or a VM. */
#ifndef LIBVMM_DEVICES_BLK_INTERNAL_H
#define LIBVMM_DEVICES_BLK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <linux/virtio_blk.h>

#include "../internal.h"

#define BLK_SECTOR 512u
#define BLK_SECTOR_SHIFT 9
/* Bounce buffer for O_DIRECT requests whose guest buffers are not sector aligned, and
 * for writing zeros when the file system cannot: requests go through it in pieces. */
#define BLK_BOUNCE_SIZE (256u * 1024u)
/* Limits advertised in config space (and enforced: the guest may ignore them). */
#define BLK_MAX_DISCARD_SECTORS (1u << 22)      /* 2 GiB per segment: punching is cheap */
#define BLK_MAX_WRITE_ZEROES_SECTORS (1u << 16) /* 32 MiB: may be written as zeros */
#define BLK_MAX_DWZ_SEGS 32u

typedef struct vmm_blk_disk {
	int fd;
	uint64_t sectors;      /* capacity in 512-byte sectors */
	bool readonly;
	bool direct;           /* fd has O_DIRECT: buffers must be sector aligned */
	bool writethrough;     /* FLUSH not negotiated: every write is synced (virtio 5.2.6) */
	bool discard;          /* VIRTIO_BLK_F_DISCARD negotiated */
	bool write_zeroes;     /* VIRTIO_BLK_F_WRITE_ZEROES negotiated */
	char id[VIRTIO_BLK_ID_BYTES]; /* NUL-padded */
	uint8_t *bounce;       /* BLK_BOUNCE_SIZE, page aligned, allocated on first use */
	vmm_virtio_blk_stats stats;
	struct iovec iov[VMM_VIRTQ_MAX_SEGS];
} vmm_blk_disk;

/* Opens (or dups) the image as opts say and fills d (id, capacity, flags). On failure
 * nothing is left open. Returns 0 or a negative errno (message set). */
VMM_HIDDEN int vmm_blk_disk_open(vmm_blk_disk *d, const vmm_virtio_blk_opts *opts);
VMM_HIDDEN void vmm_blk_disk_close(vmm_blk_disk *d);

/* What one request did. */
typedef struct vmm_blk_result {
	uint32_t written;  /* the used length to push (bytes written from the start of the
	                    * writable part: data and status, or 0 without a status byte) */
	uint8_t status;    /* VIRTIO_BLK_S_*, or 0xff if the chain had no status byte */
	uint64_t bytes;    /* data bytes moved, for the rate limiter */
} vmm_blk_result;

/* Parses and executes the request in `chain` (header read once, every field checked),
 * writes its status byte, updates d->stats. Never fails: errors become a status. */
VMM_HIDDEN void vmm_blk_handle(vmm_blk_disk *d, const vmm_virtq_chain *chain, vmm_blk_result *res);

#endif
