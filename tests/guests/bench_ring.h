/* Driver-side ring handling for the benchmark guests (bench_blk.c, bench_net.c), on top
 * of the guest kit's driver (rt/virtio.h: set-up, ring layout).
 *
 * What the kit's vio_add/vio_notify leave out, and a benchmark needs: heads are put in
 * the avail ring without walking a free list (the guests pre-build their descriptors),
 * the avail index is published once per batch, and the notification follows the
 * device's wishes in both modes: VRING_USED_F_NO_NOTIFY without VIRTIO_F_EVENT_IDX, the
 * avail_event index with it (virtio 1.2, 2.7.10), which the kit's simple vio_notify
 * does not track. Kicks are counted: each one is an exit. */
#ifndef BENCH_RING_H
#define BENCH_RING_H

#include "rt/virtio.h"

struct bring {
	struct vio_dev *d;
	struct vio_queue *q;
	int qi;
	int event_idx;
	uint16_t shadow; /* our avail index, published by bring_publish */
	uint16_t kicked; /* the avail index at the last notification decision */
	uint64_t kicks;
};

static inline void bring_init(struct bring *r, struct vio_dev *d, int qi)
{
	r->d = d;
	r->q = &d->q[qi];
	r->qi = qi;
	r->event_idx = (d->features & VIO_F_EVENT_IDX) != 0;
	r->shadow = r->kicked = r->q->avail[1];
	r->kicks = 0;
}

/* Queues a chain head; it is not visible to the device before bring_publish. */
static inline void bring_add(struct bring *r, uint16_t head)
{
	r->q->avail[2 + r->shadow % r->q->size] = head;
	r->shadow++;
}

/* Publishes the heads added since the last call and notifies if the device asked. */
static inline void bring_publish(struct bring *r)
{
	struct vio_queue *q = r->q;
	uint16_t old = r->kicked, now = r->shadow;
	if (old == now)
		return;
	__atomic_thread_fence(__ATOMIC_RELEASE); /* ring entries before the index */
	q->avail[1] = now;
	/* The index store before the loads of the device's wishes (x86 reorders a store
	 * with a later load; without this a notification could be lost). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	r->kicked = now;
	int kick;
	if (r->event_idx) {
		uint16_t ev = q->used[2 + 4u * q->size]; /* avail_event */
		kick = (uint16_t)(now - ev - 1) < (uint16_t)(now - old);
	} else {
		kick = !(q->used[0] & 1); /* VRING_USED_F_NO_NOTIFY */
	}
	if (kick) {
		vio_reg_write(r->d, VIO_QUEUE_NOTIFY, (uint32_t)r->qi);
		r->kicks++;
	}
}

/* The next used element, if any: 1 with *id and *len, else 0. */
static inline int bring_used(struct bring *r, uint32_t *id, uint32_t *len)
{
	struct vio_queue *q = r->q;
	if (q->used[1] == q->last_used)
		return 0;
	__atomic_thread_fence(__ATOMIC_ACQUIRE); /* the index before the element */
	volatile uint32_t *e = (volatile uint32_t *)(q->used + 2) + 2u * (q->last_used % q->size);
	*id = e[0];
	*len = e[1];
	q->last_used++;
	return 1;
}

/* With EVENT_IDX: asks for an interrupt once `ahead` more buffers than consumed so far
 * are used (used_event; 0 = at the next one). Without, the avail flags stay 0. */
static inline void bring_want_irq(struct bring *r, uint16_t ahead)
{
	if (r->event_idx)
		r->q->avail[2 + r->q->size] = (uint16_t)(r->q->last_used + ahead);
}

#endif
