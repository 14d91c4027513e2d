/* libvmm: virtio-balloon (device id 5). The host sets a target size in pages; the
 * guest inflates (gives pages back, which the device releases, so host memory drops) or
 * deflates. Releasing a page: for shared file or memfd backings (the default) a hole is
 * punched in the file (fallocate PUNCH_HOLE: madvise(MADV_DONTNEED) alone would leave
 * the page in the page cache); for private memory, madvise(MADV_DONTNEED). PFNs outside
 * guest RAM or in read-only regions are ignored. With VIRTIO_BALLOON_F_STATS_VQ the
 * guest reports memory statistics.
 */
#ifndef LIBVMM_VIRTIO_BALLOON_H
#define LIBVMM_VIRTIO_BALLOON_H

#include <libvmm/sys/device.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmm_virtio_balloon_opts {
	uint32_t size;     /* sizeof(vmm_virtio_balloon_opts) */
	uint32_t flags;    /* reserved, 0 */
} vmm_virtio_balloon_opts;

#define VMM_VIRTIO_BALLOON_OPTS_INIT { sizeof(vmm_virtio_balloon_opts), 0 }

VMM_API int vmm_virtio_balloon_create(vmm_virtio_device **out, const vmm_virtio_balloon_opts *opts);

/* Asks the guest to hold `pages` 4 KiB pages in the balloon (config change interrupt).
 * Any thread. Returns 0 or -EINVAL. */
VMM_API int vmm_virtio_balloon_set_target(vmm_virtio_device *dev, uint32_t pages);

typedef struct vmm_virtio_balloon_stats {
	uint32_t target_pages;    /* what the host asked for */
	uint32_t actual_pages;    /* what the guest reports holding (config "actual") */
	uint64_t inflated_pages;  /* pages released to the host so far */
	uint64_t deflated_pages;
	/* Last guest statistics (VIRTIO_BALLOON_S_*), tag-indexed, 0 if not reported. */
	uint64_t guest_stats[16];
	uint64_t stats_updates;
} vmm_virtio_balloon_stats;

/* Copies the current numbers into *out. The guest statistics are those of the guest's
 * last report; each call also asks the guest for a fresh report (the device hands the
 * driver's stats buffer back, per the virtio spec), which shows up as stats_updates + 1
 * in a later call. Any thread. Returns 0 or -EINVAL (not a balloon, or out is NULL). */
VMM_API int vmm_virtio_balloon_get_stats(vmm_virtio_device *dev, vmm_virtio_balloon_stats *out);

#ifdef __cplusplus
}
#endif
#endif
