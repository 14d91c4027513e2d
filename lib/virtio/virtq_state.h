/* Saving and loading a split virtqueue's progress (lib/virtio/virtq.c), for the device
 * state of snapshots (mmio_state.c). Not installed.
 *
 * What a queue's progress is: how far the device got in the avail ring (last_avail),
 * what it published (used_idx), its interrupt and notification bookkeeping (signalled,
 * pushed, avail_event, notify_on) and the heads in flight (popped, not yet pushed),
 * in the order they were popped. The rings themselves live in guest memory, which the
 * VM snapshot carries.
 *
 * A loaded queue hands its in-flight heads to the device again, oldest first: vmm_virtq_pop
 * returns them (walking their descriptors afresh) before anything new in the avail ring.
 */
#ifndef LIBVMM_VIRTIO_VIRTQ_STATE_H
#define LIBVMM_VIRTIO_VIRTQ_STATE_H

#include "../internal.h"
#include <libvmm/sys/virtq.h>

#define VQ_NO_HEAD 0xffffu /* never a head: sizes are at most 32768 */

struct vq_state {
	uint16_t size;
	uint64_t desc, avail, used;
	bool broken, notify_on, avail_event_set;
	uint16_t last_avail, used_idx, signalled, avail_event;
	uint32_t pushed;
	uint32_t n_inflight;
};

/* The progress of an enabled queue. heads (size_max entries) receives the in-flight
 * heads, oldest pop first; s->n_inflight says how many. Returns 0, -EINVAL (not
 * enabled), -ENOMEM. */
VMM_HIDDEN int vq_state_get(const vmm_virtq *q, struct vq_state *s, uint16_t *heads);
/* The number of heads in flight (what vq_state_get will report). */
VMM_HIDDEN uint32_t vq_state_inflight(const vmm_virtq *q);
/* Checks untrusted state against q (its size_max) and mem without changing anything:
 * size a power of two <= size_max, ring addresses aligned and inside guest RAM (the used
 * ring writable), in-flight heads < size, distinct, as many as last_avail - used_idx.
 * heads_le: s->n_inflight little-endian u16, oldest first, at any alignment (straight
 * from a blob). Returns 0 or -EINVAL with a message. No allocation. */
VMM_HIDDEN int vq_state_check(const vmm_virtq *q, vmm_mem *mem, const struct vq_state *s,
			      const uint8_t *heads_le);
/* Enables q (reset first) on mem with the checked state s and the negotiated ring
 * features, without writing guest memory or allocating. Returns 0 or -EFAULT (if mem
 * changed since the check). */
VMM_HIDDEN int vq_state_set(vmm_virtq *q, vmm_mem *mem, const struct vq_state *s, const uint8_t *heads_le,
			    bool indirect, bool event_idx);

#endif
