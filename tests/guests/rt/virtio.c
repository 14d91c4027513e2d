/* The guest kit's virtio-mmio driver (see virtio.h): split rings, polling.
 *
 * Free descriptors form a list threaded through their `next` fields (free_head is the
 * first, num_free how many), so a chain is taken from the front and given back, whole,
 * when the device returns it in the used ring. Nothing here needs CPL 0. */
#include "virtio.h"

#define VIO_MAGIC_VALUE 0x74726976u
#define VIO_USED_F_NO_NOTIFY 1

/* Publishes earlier stores before later ones, and orders a store before a later load
 * (the avail index store against the used-flags load: x86 may reorder those two). */
static inline void vio_mb(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
/* Compiler ordering is enough for store-store and load-load on x86. */
static inline void vio_wmb(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
static inline void vio_rmb(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }

uint32_t vio_reg_read(struct vio_dev *d, uint32_t off) { return mmio_read32(d->base + off); }

void vio_reg_write(struct vio_dev *d, uint32_t off, uint32_t val) { mmio_write32(d->base + off, val); }

uint32_t vio_config_read(struct vio_dev *d, uint32_t off, int size)
{
	uint64_t a = d->base + VIO_CONFIG + off;
	switch (size) {
	case 1:
		return mmio_read8(a);
	case 2:
		return mmio_read16(a);
	default:
		return mmio_read32(a);
	}
}

void vio_config_write(struct vio_dev *d, uint32_t off, uint32_t val, int size)
{
	uint64_t a = d->base + VIO_CONFIG + off;
	switch (size) {
	case 1:
		mmio_write8(a, (uint8_t)val);
		break;
	case 2:
		mmio_write16(a, (uint16_t)val);
		break;
	default:
		mmio_write32(a, val);
		break;
	}
}

uint32_t vio_status(struct vio_dev *d) { return vio_reg_read(d, VIO_STATUS); }

static void set_status(struct vio_dev *d, uint32_t bits)
{
	vio_reg_write(d, VIO_STATUS, vio_status(d) | bits);
}

int vio_init(struct vio_dev *d, uint64_t base, uint32_t device_id, uint64_t wanted)
{
	memset(d, 0, sizeof *d);
	d->base = base;
	d->device_id = device_id;
	if (vio_reg_read(d, VIO_MAGIC) != VIO_MAGIC_VALUE || vio_reg_read(d, VIO_VERSION) != 2 ||
	    vio_reg_read(d, VIO_DEVICE_ID) != device_id)
		return -1;
	vio_reg_write(d, VIO_STATUS, 0);
	vio_reg_write(d, VIO_STATUS, VIO_S_ACKNOWLEDGE);
	vio_reg_write(d, VIO_STATUS, VIO_S_ACKNOWLEDGE | VIO_S_DRIVER);

	vio_reg_write(d, VIO_DEVICE_FEATURES_SEL, 0);
	uint64_t offered = vio_reg_read(d, VIO_DEVICE_FEATURES);
	vio_reg_write(d, VIO_DEVICE_FEATURES_SEL, 1);
	offered |= (uint64_t)vio_reg_read(d, VIO_DEVICE_FEATURES) << 32;
	uint64_t accept = offered & (wanted | VIO_F_VERSION_1);

	vio_reg_write(d, VIO_DRIVER_FEATURES_SEL, 0);
	vio_reg_write(d, VIO_DRIVER_FEATURES, (uint32_t)accept);
	vio_reg_write(d, VIO_DRIVER_FEATURES_SEL, 1);
	vio_reg_write(d, VIO_DRIVER_FEATURES, (uint32_t)(accept >> 32));
	set_status(d, VIO_S_FEATURES_OK);
	if (!(vio_status(d) & VIO_S_FEATURES_OK))
		return -1;
	d->features = accept;
	return 0;
}

int vio_queue_setup(struct vio_dev *d, int qi, uint16_t size, void *ring)
{
	if (qi < 0 || qi >= (int)(sizeof d->q / sizeof d->q[0]) || size == 0)
		return -1;
	vio_reg_write(d, VIO_QUEUE_SEL, (uint32_t)qi);
	uint32_t max = vio_reg_read(d, VIO_QUEUE_NUM_MAX);
	if (max == 0 || size > max)
		return -1;
	memset(ring, 0, VIO_RING_BYTES(size));

	struct vio_queue *q = &d->q[qi];
	uint8_t *p = ring;
	q->size = size;
	q->desc = (volatile struct vio_desc *)p;
	q->avail = (volatile uint16_t *)(p + size * 16u);
	q->used = (volatile uint16_t *)(p + ((size * 16u + 6u + 2u * size + 4095u) & ~4095u));
	q->free_head = 0;
	q->num_free = size;
	q->last_used = 0;
	for (uint16_t i = 0; i + 1 < size; i++)
		q->desc[i].next = (uint16_t)(i + 1);

	uint64_t desc = (uint64_t)(uintptr_t)q->desc, avail = (uint64_t)(uintptr_t)q->avail,
		 used = (uint64_t)(uintptr_t)q->used;
	vio_reg_write(d, VIO_QUEUE_NUM, size);
	vio_reg_write(d, VIO_QUEUE_DESC_LOW, (uint32_t)desc);
	vio_reg_write(d, VIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	vio_reg_write(d, VIO_QUEUE_DRIVER_LOW, (uint32_t)avail);
	vio_reg_write(d, VIO_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
	vio_reg_write(d, VIO_QUEUE_DEVICE_LOW, (uint32_t)used);
	vio_reg_write(d, VIO_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
	vio_reg_write(d, VIO_QUEUE_READY, 1);
	return vio_reg_read(d, VIO_QUEUE_READY) == 1 ? 0 : -1;
}

void vio_driver_ok(struct vio_dev *d) { set_status(d, VIO_S_DRIVER_OK); }

/* Makes `head` visible to the device: ring entry first, then the index. */
static void publish(struct vio_queue *q, uint16_t head)
{
	uint16_t idx = q->avail[1];
	q->avail[2 + idx % q->size] = head;
	vio_wmb();
	q->avail[1] = (uint16_t)(idx + 1);
}

int vio_add(struct vio_dev *d, int qi, const struct vio_buf *bufs, int n)
{
	struct vio_queue *q = &d->q[qi];
	if (n <= 0 || n > q->num_free)
		return -1;
	uint16_t head = q->free_head, i = head;
	for (int k = 0; k < n; k++) {
		uint16_t next = q->desc[i].next; /* the free list's link */
		q->desc[i].addr = (uint64_t)(uintptr_t)bufs[k].addr;
		q->desc[i].len = bufs[k].len;
		q->desc[i].flags = (uint16_t)((bufs[k].write ? VIO_DESC_F_WRITE : 0) |
					      (k + 1 < n ? VIO_DESC_F_NEXT : 0));
		if (k + 1 == n)
			q->free_head = next;
		i = next;
	}
	q->num_free = (uint16_t)(q->num_free - n);
	publish(q, head);
	return head;
}

int vio_add_indirect(struct vio_dev *d, int qi, const struct vio_buf *bufs, int n, struct vio_desc *table)
{
	struct vio_queue *q = &d->q[qi];
	if (n <= 0 || q->num_free < 1)
		return -1;
	for (int k = 0; k < n; k++) {
		table[k].addr = (uint64_t)(uintptr_t)bufs[k].addr;
		table[k].len = bufs[k].len;
		table[k].flags = (uint16_t)((bufs[k].write ? VIO_DESC_F_WRITE : 0) |
					    (k + 1 < n ? VIO_DESC_F_NEXT : 0));
		table[k].next = (uint16_t)(k + 1 < n ? k + 1 : 0);
	}
	uint16_t head = q->free_head;
	q->free_head = q->desc[head].next;
	q->desc[head].addr = (uint64_t)(uintptr_t)table;
	q->desc[head].len = (uint32_t)n * 16u;
	q->desc[head].flags = VIO_DESC_F_INDIRECT;
	q->num_free--;
	publish(q, head);
	return head;
}

void vio_notify(struct vio_dev *d, int qi)
{
	struct vio_queue *q = &d->q[qi];
	vio_mb();
	/* Without EVENT_IDX the device asks for silence with a flag. With EVENT_IDX we
	 * always notify: skipping needs the index of the previous notification, which this
	 * simple driver does not track (a spurious notify is always allowed). */
	if (!(d->features & VIO_F_EVENT_IDX) && (q->used[0] & VIO_USED_F_NO_NOTIFY))
		return;
	vio_reg_write(d, VIO_QUEUE_NOTIFY, (uint32_t)qi);
}

/* Gives a returned chain's descriptors back to the free list. */
static void free_chain(struct vio_queue *q, uint16_t head)
{
	uint16_t i = head, n = 1;
	while ((q->desc[i].flags & VIO_DESC_F_NEXT) && n < q->size) {
		i = q->desc[i].next;
		n++;
	}
	q->desc[i].next = q->free_head;
	q->free_head = head;
	q->num_free = (uint16_t)(q->num_free + n);
}

int vio_wait_used(struct vio_dev *d, int qi, uint32_t *len, uint64_t spins)
{
	struct vio_queue *q = &d->q[qi];
	/* spins 0: no limit (the host's watchdog ends a guest that waits forever). */
	for (uint64_t s = 0; spins == 0 || s < spins; s++) {
		if (q->used[1] != q->last_used) {
			vio_rmb();
			volatile uint32_t *e = (volatile uint32_t *)(q->used + 2) + 2u * (q->last_used % q->size);
			uint32_t id = e[0];
			if (len)
				*len = e[1];
			q->last_used++;
			/* Tell an EVENT_IDX device how far we have read (used_event). */
			q->avail[2 + q->size] = q->last_used;
			if (id < q->size)
				free_chain(q, (uint16_t)id);
			return (int)id;
		}
		cpu_relax();
	}
	return -1;
}

int64_t vio_request(struct vio_dev *d, int qi, const struct vio_buf *bufs, int n)
{
	if (vio_add(d, qi, bufs, n) < 0)
		return -1;
	vio_notify(d, qi);
	uint32_t len = 0;
	if (vio_wait_used(d, qi, &len, 1ull << 32) < 0)
		return -1;
	return len;
}
