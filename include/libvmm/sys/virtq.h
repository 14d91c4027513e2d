/* libvmm device-author API: the split virtqueue.
 *
 * A vmm_virtq is the device side of one virtio split ring in guest memory. The transport
 * creates and configures it from the driver's register writes; a device pops descriptor
 * chains from it, does the work, and pushes them back as used.
 *
 * The guest is hostile. vmm_virtq_pop reads every guest-shared field exactly once (the
 * avail index, the ring entry, each descriptor — copied before it is checked), and
 * rejects, with -EIO and a reason in vmm_last_error(): an avail index more than the queue
 * size ahead; a head or `next` >= queue size; a chain longer than the queue size (loops
 * included); an indirect table whose length is 0, not a multiple of 16, over
 * VMM_VIRTQ_MAX_INDIRECT entries, outside RAM, or inside another indirect table (or
 * chained with `next`); a buffer that wraps or leaves RAM; more than VMM_VIRTQ_MAX_SEGS
 * segments; over 4 GiB in total; a device-readable descriptor after a device-writable
 * one; a head that is still in flight (popped, not yet pushed), so no more than `size`
 * chains are ever in flight (CVE-2016-5403). After -EIO the queue is broken (every later
 * pop fails, repeating the reason) and the device must call vmm_virtio_dev_fail; the
 * transport resets it when the driver resets the device.
 *
 * Zero-length descriptors are accepted: they count toward the chain bounds above (a loop
 * of them still ends) but produce no segment and their address is not checked, as
 * nothing is accessed. Each buffer must lie inside one memory region (a buffer that
 * spans two adjacent regions is rejected as leaving RAM).
 *
 * Ring memory: enable translates the three ring areas once and keeps their host
 * addresses until reset (regions must not be removed while a queue is enabled). Writes
 * to the used area go through those addresses and are reported to dirty tracking.
 *
 * Loaded state (vmm_virtio_mmio_load_state): a queue whose saved state had chains in
 * flight returns those first from vmm_virtq_pop, oldest first, walking and checking
 * their descriptors again as for a fresh pop (they already count as consumed, so the
 * device just processes them, and pushes them, as usual), then continues with the avail
 * ring; vmm_virtq_set_notify(enable) reports them as work waiting.
 *
 * Threading: a queue is used by one thread at a time (the transport serialises device
 * callbacks).
 */
#ifndef LIBVMM_SYS_VIRTQ_H
#define LIBVMM_SYS_VIRTQ_H

#include <stdbool.h>
#include <libvmm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmm_virtq vmm_virtq;

#define VMM_VIRTQ_MAX_SIZE 32768u    /* largest split ring (a power of two) */
#define VMM_VIRTQ_MAX_INDIRECT 65535u
#define VMM_VIRTQ_MAX_SEGS 1024u     /* segments of one chain we accept */

/* One guest buffer, already translated: host points into guest RAM and stays valid
 * while the chain is in flight (until pushed), as long as the region is not removed. */
typedef struct vmm_virtq_seg {
	void *host;
	uint32_t len;
	uint64_t gpa;
} vmm_virtq_seg;

/* A popped descriptor chain: segs[0 .. n_out) are device-readable (driver -> device),
 * segs[n_out .. n_out + n_in) device-writable (device -> driver). */
typedef struct vmm_virtq_chain {
	uint16_t head;          /* pass to vmm_virtq_push */
	uint16_t n_out, n_in;
	uint64_t out_bytes, in_bytes;
	vmm_virtq_seg segs[VMM_VIRTQ_MAX_SEGS];
} vmm_virtq_chain;

/* A queue of `size` entries (power of two, 1..VMM_VIRTQ_MAX_SIZE) not yet ready.
 * Returns 0, -EINVAL, -ENOMEM. */
VMM_API int vmm_virtq_create(vmm_virtq **out, uint16_t size_max);
VMM_API void vmm_virtq_destroy(vmm_virtq *q);

/* Driver-side configuration, as the transport receives it. set_size checks a power of
 * two <= size_max; set_addrs checks alignment (desc 16, avail 2, used 4); enable checks
 * that the three areas lie inside guest RAM (the used ring in writable RAM), each area
 * inside one region. Each returns 0 or -EINVAL/-EFAULT. The transport must not rewrite
 * a queue's registers once it is enabled; as a second line of defence set_size and
 * set_addrs return -EBUSY (changing nothing) while the queue is enabled. Enabling an
 * enabled queue is a no-op returning 0 (-EBUSY with a different `mem`). */
VMM_API int vmm_virtq_set_size(vmm_virtq *q, uint16_t size);
VMM_API int vmm_virtq_set_addrs(vmm_virtq *q, uint64_t desc, uint64_t avail, uint64_t used);
/* Negotiated ring features: VIRTIO_F_RING_INDIRECT_DESC (28), VIRTIO_F_RING_EVENT_IDX (29).
 * Without the first, an indirect descriptor breaks the ring. */
VMM_API void vmm_virtq_set_features(vmm_virtq *q, bool indirect, bool event_idx);
VMM_API int vmm_virtq_enable(vmm_virtq *q, vmm_mem *mem);
/* Back to the state after create (size = size_max, not ready, not broken). */
VMM_API void vmm_virtq_reset(vmm_virtq *q);

VMM_API bool vmm_virtq_ready(const vmm_virtq *q);
VMM_API bool vmm_virtq_broken(const vmm_virtq *q);
VMM_API uint16_t vmm_virtq_size(const vmm_virtq *q);
VMM_API uint16_t vmm_virtq_size_max(const vmm_virtq *q);
VMM_API void vmm_virtq_addrs(const vmm_virtq *q, uint64_t *desc, uint64_t *avail, uint64_t *used);

/* Pops the next available chain into *chain. Returns 1 (popped), 0 (ring empty, or the
 * queue is not ready), -EIO (the driver broke the ring rules; see above), -EINVAL (NULL
 * argument, or `mem` is not the map the queue was enabled with). *chain is meaningful
 * only after 1. With EVENT_IDX and notifications on (see set_notify), finding the ring
 * empty publishes avail_event first and looks again, so a device that simply pops until
 * 0 never misses a notification. No allocation; a message only on failure. */
VMM_API int vmm_virtq_pop(vmm_virtq *q, vmm_mem *mem, vmm_virtq_chain *chain);

/* Returns a chain to the driver with `written` bytes written into its device-writable
 * part (clamped to what the chain had). Publishes the used entry before the used index
 * (release ordering). Returns 0, -EINVAL (head not in flight: out of range, never
 * popped, already pushed, or popped before a reset; or the queue is not enabled), or
 * -EIO if broken. */
VMM_API int vmm_virtq_push(vmm_virtq *q, vmm_mem *mem, uint16_t head, uint32_t written);

/* After pushes: whether the driver wants an interrupt (VRING_AVAIL_F_NO_INTERRUPT, or
 * the used_event index with EVENT_IDX: true if used_event lies in [used index at the
 * previous check, used index now), modulo 2^16). Resets the "pushed since last check"
 * state; false when nothing was pushed since, or the queue is not enabled or broken.
 * `mem` is unused (the rings were mapped at enable). */
VMM_API bool vmm_virtq_need_interrupt(vmm_virtq *q, vmm_mem *mem);

/* Tells the driver whether to notify us (VRING_USED_F_NO_NOTIFY, or avail_event with
 * EVENT_IDX). A device that drains the queue in a loop disables notifications while
 * working and re-enables them before the last check. Returns true if new buffers
 * arrived meanwhile (re-check them); always false when disabling. Notifications are on
 * after enable. With EVENT_IDX, disabling leaves avail_event as it was, so the driver
 * may still notify once more. */
VMM_API bool vmm_virtq_set_notify(vmm_virtq *q, vmm_mem *mem, bool enable);

/* Copies between a chain's segments and a flat buffer. `offset` counts bytes from the
 * start of the readable (from_chain) or writable (to_chain) part. Return the number of
 * bytes copied (less than len if the part is shorter). */
VMM_API size_t vmm_virtq_chain_read(const vmm_virtq_chain *chain, uint64_t offset, void *buf, size_t len);
VMM_API size_t vmm_virtq_chain_write(const vmm_virtq_chain *chain, uint64_t offset, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
