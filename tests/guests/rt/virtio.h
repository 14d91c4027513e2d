/* A small virtio-mmio driver for the freestanding guest kit (split rings, polling).
 *
 * Guests run identity-mapped, so a pointer is its guest-physical address. Rings live in
 * the caller's memory (vio_queue_setup takes a buffer of VIO_RING_BYTES(size) bytes,
 * 4 KiB aligned). Completion is by polling the used ring; interrupts are optional (the
 * driver acknowledges InterruptStatus when asked).
 *
 * Every function also exists to misbehave on purpose: tests of a hostile guest write
 * descriptors, indexes and registers directly through the struct fields and vio_reg_*.
 */
#ifndef GUEST_VIRTIO_H
#define GUEST_VIRTIO_H

#include "rt.h"

/* virtio-mmio register offsets (virtio 1.2, 4.2.2). */
#define VIO_MAGIC 0x000
#define VIO_VERSION 0x004
#define VIO_DEVICE_ID 0x008
#define VIO_VENDOR_ID 0x00c
#define VIO_DEVICE_FEATURES 0x010
#define VIO_DEVICE_FEATURES_SEL 0x014
#define VIO_DRIVER_FEATURES 0x020
#define VIO_DRIVER_FEATURES_SEL 0x024
#define VIO_QUEUE_SEL 0x030
#define VIO_QUEUE_NUM_MAX 0x034
#define VIO_QUEUE_NUM 0x038
#define VIO_QUEUE_READY 0x044
#define VIO_QUEUE_NOTIFY 0x050
#define VIO_INTERRUPT_STATUS 0x060
#define VIO_INTERRUPT_ACK 0x064
#define VIO_STATUS 0x070
#define VIO_QUEUE_DESC_LOW 0x080
#define VIO_QUEUE_DESC_HIGH 0x084
#define VIO_QUEUE_DRIVER_LOW 0x090
#define VIO_QUEUE_DRIVER_HIGH 0x094
#define VIO_QUEUE_DEVICE_LOW 0x0a0
#define VIO_QUEUE_DEVICE_HIGH 0x0a4
#define VIO_CONFIG_GENERATION 0x0fc
#define VIO_CONFIG 0x100

#define VIO_S_ACKNOWLEDGE 1
#define VIO_S_DRIVER 2
#define VIO_S_DRIVER_OK 4
#define VIO_S_FEATURES_OK 8
#define VIO_S_NEEDS_RESET 64
#define VIO_S_FAILED 128

#define VIO_F_VERSION_1 (1ull << 32)
#define VIO_F_INDIRECT_DESC (1ull << 28)
#define VIO_F_EVENT_IDX (1ull << 29)

#define VIO_DESC_F_NEXT 1
#define VIO_DESC_F_WRITE 2
#define VIO_DESC_F_INDIRECT 4

struct vio_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* Bytes a ring of `size` entries needs: descriptors, avail (+ used_event), padding to
 * 4 KiB, used (+ avail_event). */
#define VIO_RING_BYTES(size) \
	((((size) * 16u + 6u + 2u * (size) + 4095u) & ~4095u) + ((6u + 8u * (size) + 4095u) & ~4095u))

struct vio_queue {
	uint16_t size;
	uint16_t free_head;     /* simple allocator: descriptors are handed out in order */
	uint16_t num_free;
	uint16_t last_used;     /* used index the driver has consumed up to */
	volatile struct vio_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[size], used_event */
	volatile uint16_t *used;  /* flags, idx, then {u32 id, u32 len}[size], avail_event */
};

struct vio_dev {
	uint64_t base;
	uint32_t device_id;
	uint64_t features;      /* negotiated */
	struct vio_queue q[8];
};

/* One buffer of a request: guest address and length; `write` = device writes it. */
struct vio_buf {
	const void *addr;
	uint32_t len;
	int write;
};

uint32_t vio_reg_read(struct vio_dev *d, uint32_t off);
void vio_reg_write(struct vio_dev *d, uint32_t off, uint32_t val);
/* Config space reads of 1, 2, 4 bytes at `off` from VIO_CONFIG. */
uint32_t vio_config_read(struct vio_dev *d, uint32_t off, int size);
void vio_config_write(struct vio_dev *d, uint32_t off, uint32_t val, int size);

/* Reset, ACKNOWLEDGE, DRIVER, feature negotiation (accepts the device's features &
 * `wanted`, VERSION_1 always), FEATURES_OK. Returns 0, or -1 if the magic, version,
 * device id or FEATURES_OK check fails. */
int vio_init(struct vio_dev *d, uint64_t base, uint32_t device_id, uint64_t wanted);
/* Sets up queue `qi` with `size` entries in `ring` (VIO_RING_BYTES(size), 4 KiB
 * aligned, zeroed by this call). Returns 0 or -1 (size above QueueNumMax). */
int vio_queue_setup(struct vio_dev *d, int qi, uint16_t size, void *ring);
/* Sets DRIVER_OK. */
void vio_driver_ok(struct vio_dev *d);
uint32_t vio_status(struct vio_dev *d);

/* Adds a chain of n buffers (readable ones first) to the avail ring and returns its head
 * (-1 if not enough free descriptors). Does not notify. */
int vio_add(struct vio_dev *d, int qi, const struct vio_buf *bufs, int n);
/* Adds the chain as one indirect descriptor pointing at `table` (n entries). */
int vio_add_indirect(struct vio_dev *d, int qi, const struct vio_buf *bufs, int n, struct vio_desc *table);
void vio_notify(struct vio_dev *d, int qi);
/* Polls the used ring for up to `spins` iterations; returns the head of the next used
 * element and stores its length in *len, or -1 on timeout. Frees the chain's descriptors. */
int vio_wait_used(struct vio_dev *d, int qi, uint32_t *len, uint64_t spins);
/* vio_add + vio_notify + vio_wait_used. Returns the used length, or -1. */
int64_t vio_request(struct vio_dev *d, int qi, const struct vio_buf *bufs, int n);

#endif
