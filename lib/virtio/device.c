/* The transport-independent half of a virtio device (see transport.h): the device
 * object of include/libvmm/sys/device.h, feature negotiation, the status state machine
 * (virtio 1.2, 2.1 and 3.1), queue configuration, interrupt status, the device's
 * watched fds and rescheduled notifications. */
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "transport.h"

/* Bits a device may offer itself: the device-specific ranges (virtio 1.2, 6: 0-23 and
 * 50-127). The transport owns 24-49 and offers only what it implements. */
#define DEVICE_FEATURE_MASK (((1ull << 24) - 1) | ~((1ull << 50) - 1))
#define TRANSPORT_FEATURES                                                                         \
	(1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_INDIRECT_DESC |                        \
	 1ull << VIRTIO_RING_F_EVENT_IDX)
#define DRIVER_STATUS_BITS                                                                         \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |       \
	 VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED)

/* ---- the device object ---- */

int vmm_virtio_device_create(vmm_virtio_device **out, const vmm_virtio_device_ops *ops, void *ctx)
{
	if (!out || !ops)
		return vmm_err(-EINVAL, "virtio device: NULL argument");
	*out = NULL;
	vmm_virtio_device_ops o;
	memset(&o, 0, sizeof o);
	if (vmm_opts_copy(&o, sizeof o, ops))
		return vmm_err(-EINVAL, "virtio device: ops.size %u is too small", ops->size);
	o.size = sizeof o;
	const char *name = o.name ? o.name : "virtio device";
	if (o.num_queues < 1 || o.num_queues > VMM_VIRTIO_MAX_QUEUES)
		return vmm_err(-EINVAL, "%s: %u queues (1..%u)", name, o.num_queues,
			       VMM_VIRTIO_MAX_QUEUES);
	if (o.queue_size_max == 0 || (o.queue_size_max & (o.queue_size_max - 1)) ||
	    o.queue_size_max > VMM_VIRTQ_MAX_SIZE)
		return vmm_err(-EINVAL, "%s: queue_size_max %u is not a power of two <= %u", name,
			       o.queue_size_max, VMM_VIRTQ_MAX_SIZE);
	if (!o.activate || !o.notify || !o.destroy)
		return vmm_err(-EINVAL, "%s: activate, notify and destroy are required", name);
	if (o.config_size && !o.config_read)
		return vmm_err(-EINVAL, "%s: config_size %u without config_read", name, o.config_size);
	if (!o.save_state != !o.load_state)
		return vmm_err(-EINVAL, "%s: save_state and load_state go together", name);
	o.name = name;
	vmm_virtio_device *d = calloc(1, sizeof *d);
	if (!d)
		return vmm_err(-ENOMEM, "%s: out of memory", name);
	d->ops = o;
	d->ctx = ctx;
	*out = d;
	return 0;
}

void vmm_virtio_device_destroy(vmm_virtio_device *d)
{
	/* An attached device belongs to its transport, which destroys it. */
	if (!d || d->dev)
		return;
	d->ops.destroy(d->ctx);
	free(d);
}

void *vmm_virtio_device_ctx(const vmm_virtio_device *d)
{
	return d ? d->ctx : NULL;
}

const vmm_virtio_device_ops *vmm_virtio_device_get_ops(const vmm_virtio_device *d)
{
	return d ? &d->ops : NULL;
}

vmm_virtio_dev *vmm_virtio_device_dev(const vmm_virtio_device *d)
{
	return d ? d->dev : NULL;
}

/* ---- watched fds ---- */

static size_t watch_find(const struct vmm_virtio_dev *dev, int fd, bool *found)
{
	size_t lo = 0, hi = dev->nwatch;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (dev->watches[mid].fd < fd)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < dev->nwatch && dev->watches[lo].fd == fd;
	return lo;
}

/* The loop callback of every watched fd. The loop's context is the device (alive as
 * long as the transport), not the watch entry: entries move when others are added or
 * removed, and one may be removed by a vCPU thread while this callback waits for the
 * lock. So the entry is looked up again under the lock. */
static void watch_cb(void *ctx, int fd, uint32_t events)
{
	struct vmm_virtio_dev *dev = ctx;
	pthread_mutex_lock(&dev->lock);
	bool found;
	size_t i = watch_find(dev, fd, &found);
	if (found && dev->watches[i].in_loop) {
		if (dev->active && !dev->failed) {
			vmm_loop_fn fn = dev->watches[i].fn;
			fn(dev->watches[i].ctx, fd, events);
		} else {
			/* Level-triggered: leaving it registered would spin the loop. */
			vmm_loop_remove(dev->loop, fd);
			dev->watches[i].in_loop = false;
		}
	}
	pthread_mutex_unlock(&dev->lock);
}

static void watches_arm(struct vmm_virtio_dev *dev)
{
	if (!dev->loop)
		return;
	for (size_t i = 0; i < dev->nwatch; i++) {
		struct vdev_watch *w = &dev->watches[i];
		if (!w->in_loop && vmm_loop_add(dev->loop, w->fd, w->events, watch_cb, dev) == 0)
			w->in_loop = true;
	}
}

static void watches_disarm(struct vmm_virtio_dev *dev)
{
	for (size_t i = 0; i < dev->nwatch; i++) {
		struct vdev_watch *w = &dev->watches[i];
		if (w->in_loop) {
			vmm_loop_remove(dev->loop, w->fd);
			w->in_loop = false;
		}
	}
}

int vmm_virtio_dev_watch(vmm_virtio_dev *dev, int fd, uint32_t events, vmm_loop_fn fn, void *ctx)
{
	if (!dev || fd < 0 || !fn)
		return vmm_err(-EINVAL, "virtio: watch: NULL device or callback, or fd %d", fd);
	if (!dev->loop)
		return vmm_err(-EINVAL, "%s: watch: the device has no event loop", dev->ops->name);
	if (events & ~(VMM_LOOP_IN | VMM_LOOP_OUT | VMM_LOOP_ERR))
		return vmm_err(-EINVAL, "%s: watch fd %d: unknown event bits %#x", dev->ops->name, fd,
			       events);
	bool found;
	size_t i = watch_find(dev, fd, &found);
	if (found)
		return vmm_err(-EEXIST, "%s: fd %d is already watched", dev->ops->name, fd);
	if (dev->nwatch == dev->capwatch) {
		size_t cap = dev->capwatch ? dev->capwatch * 2 : 8;
		struct vdev_watch *n = realloc(dev->watches, cap * sizeof *n);
		if (!n)
			return vmm_err(-ENOMEM, "%s: out of memory for watches", dev->ops->name);
		dev->watches = n;
		dev->capwatch = cap;
	}
	struct vdev_watch w = { .fd = fd, .events = events, .fn = fn, .ctx = ctx };
	if (dev->active && !dev->failed) {
		int r = vmm_loop_add(dev->loop, fd, events, watch_cb, dev);
		if (r)
			return r;
		w.in_loop = true;
	}
	memmove(&dev->watches[i + 1], &dev->watches[i], (dev->nwatch - i) * sizeof w);
	dev->watches[i] = w;
	dev->nwatch++;
	return 0;
}

int vmm_virtio_dev_unwatch(vmm_virtio_dev *dev, int fd)
{
	if (!dev)
		return vmm_err(-EINVAL, "virtio: unwatch: NULL device");
	bool found;
	size_t i = watch_find(dev, fd, &found);
	if (!found)
		return vmm_err(-ENOENT, "%s: fd %d is not watched", dev->ops->name, fd);
	if (dev->watches[i].in_loop)
		vmm_loop_remove(dev->loop, fd);
	memmove(&dev->watches[i], &dev->watches[i + 1], (dev->nwatch - i - 1) * sizeof dev->watches[0]);
	dev->nwatch--;
	return 0;
}

int vmm_virtio_dev_watch_modify(vmm_virtio_dev *dev, int fd, uint32_t events)
{
	if (!dev)
		return vmm_err(-EINVAL, "virtio: watch_modify: NULL device");
	if (events & ~(VMM_LOOP_IN | VMM_LOOP_OUT | VMM_LOOP_ERR))
		return vmm_err(-EINVAL, "%s: watch fd %d: unknown event bits %#x", dev->ops->name, fd,
			       events);
	bool found;
	size_t i = watch_find(dev, fd, &found);
	if (!found)
		return vmm_err(-ENOENT, "%s: fd %d is not watched", dev->ops->name, fd);
	if (dev->watches[i].in_loop) {
		int r = vmm_loop_modify(dev->loop, fd, events);
		if (r)
			return r;
	}
	dev->watches[i].events = events;
	return 0;
}

/* ---- rescheduling ---- */

void vdev_run_rescheduled(struct vmm_virtio_dev *dev)
{
	uint64_t mask = dev->resched_mask;
	dev->resched_mask = 0;
	for (uint16_t i = 0; i < dev->nq && mask; i++, mask >>= 1) {
		if (!(mask & 1) || !dev->active || dev->failed || !dev->q[i].ready)
			continue;
		dev->ops->notify(dev->ctx, dev, i);
	}
}

static void resched_cb(void *ctx, int fd, uint32_t events)
{
	struct vmm_virtio_dev *dev = ctx;
	uint64_t v;
	(void)events;
	if (read(fd, &v, sizeof v) < 0) {
		/* EAGAIN: another wake-up consumed it; the mask below is still checked. */
	}
	pthread_mutex_lock(&dev->lock);
	vdev_run_rescheduled(dev);
	pthread_mutex_unlock(&dev->lock);
}

void vmm_virtio_dev_reschedule(vmm_virtio_dev *dev, uint16_t queue)
{
	if (!dev || queue >= dev->nq)
		return;
	bool was_idle = dev->resched_mask == 0;
	dev->resched_mask |= 1ull << queue;
	/* One pending wake-up serves every queue, so no amount of rescheduling allocates
	 * or queues more than one loop event. */
	if (was_idle && dev->resched_fd >= 0) {
		uint64_t one = 1;
		if (write(dev->resched_fd, &one, sizeof one) < 0) {
			/* Only EAGAIN near a 2^64 counter is possible: already readable. */
		}
	}
}

/* ---- set-up and tear-down ---- */

int vdev_init(struct vmm_virtio_dev *dev, vmm_virtio_device *device, vmm_mem *mem, vmm_loop *loop,
	      const struct vdev_hooks *hooks)
{
	memset(dev, 0, sizeof *dev);
	dev->device = device;
	dev->ops = &device->ops;
	dev->ctx = device->ctx;
	dev->mem = mem;
	dev->loop = loop;
	dev->hooks = hooks;
	dev->nq = device->ops.num_queues;
	dev->offered = (device->ops.features & DEVICE_FEATURE_MASK) | TRANSPORT_FEATURES;
	dev->resched_fd = -1;
	atomic_init(&dev->status, 0);
	atomic_init(&dev->isr, 0);
	atomic_init(&dev->notifies, 0);
	atomic_init(&dev->interrupts, 0);
	/* First: once the reschedule fd is on the loop, its callback may take the lock. */
	pthread_mutex_init(&dev->lock, NULL);
	pthread_mutex_init(&dev->err_lock, NULL);
	int r = 0;
	for (uint16_t i = 0; i < dev->nq; i++) {
		struct vdev_queue *q = &dev->q[i];
		q->dev = dev;
		q->index = i;
		q->num = device->ops.queue_size_max;
		q->kick_fd = -1;
		if ((r = vmm_virtq_create(&q->vq, device->ops.queue_size_max)) != 0)
			goto fail;
	}
	if (loop) {
		dev->resched_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (dev->resched_fd < 0) {
			r = -errno;
			r = vmm_err(r, "%s: eventfd: %s", dev->ops->name, vmm_strerror(r));
			goto fail;
		}
		if ((r = vmm_loop_add(loop, dev->resched_fd, VMM_LOOP_IN, resched_cb, dev)) != 0) {
			close(dev->resched_fd);
			dev->resched_fd = -1;
			goto fail;
		}
	}
	return 0;
fail:
	for (uint16_t i = 0; i < dev->nq; i++)
		vmm_virtq_destroy(dev->q[i].vq);
	pthread_mutex_destroy(&dev->err_lock);
	pthread_mutex_destroy(&dev->lock);
	return r;
}

void vdev_teardown(struct vmm_virtio_dev *dev, bool destroy_device)
{
	pthread_mutex_lock(&dev->lock);
	/* "The driver reset the device (or it is being detached)". */
	if (dev->activated && dev->ops->reset)
		dev->ops->reset(dev->ctx, dev);
	dev->active = dev->activated = false;
	watches_disarm(dev);
	pthread_mutex_unlock(&dev->lock);

	free(dev->watches);
	dev->watches = NULL;
	dev->nwatch = dev->capwatch = 0;
	if (dev->resched_fd >= 0) {
		vmm_loop_remove(dev->loop, dev->resched_fd);
		close(dev->resched_fd);
		dev->resched_fd = -1;
	}
	for (uint16_t i = 0; i < dev->nq; i++) {
		vmm_virtq_destroy(dev->q[i].vq);
		dev->q[i].vq = NULL;
	}
	vmm_virtio_device *device = dev->device;
	device->dev = NULL;
	if (destroy_device)
		vmm_virtio_device_destroy(device);
	pthread_mutex_destroy(&dev->err_lock);
	pthread_mutex_destroy(&dev->lock);
}

/* ---- interrupts and failure ---- */

void vdev_raise(struct vmm_virtio_dev *dev, uint32_t isr_bits)
{
	atomic_fetch_or(&dev->isr, isr_bits);
	atomic_fetch_add(&dev->interrupts, 1);
	if (dev->hooks && dev->hooks->irq)
		dev->hooks->irq(dev);
}

static void set_error(struct vmm_virtio_dev *dev, const char *msg)
{
	pthread_mutex_lock(&dev->err_lock);
	snprintf(dev->error, sizeof dev->error, "%s", msg);
	pthread_mutex_unlock(&dev->err_lock);
}

VMM_PRINTF(2, 3) static void fail(struct vmm_virtio_dev *dev, const char *fmt, ...)
{
	if (dev->failed)
		return; /* keep the first reason: later ones are usually its consequences */
	char msg[VDEV_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	set_error(dev, msg);
	dev->failed = true;
	atomic_fetch_or(&dev->status, VIRTIO_CONFIG_S_NEEDS_RESET);
	dev->resched_mask = 0;
	watches_disarm(dev);
	vdev_raise(dev, VIRTIO_MMIO_INT_CONFIG);
}

void vmm_virtio_dev_fail(vmm_virtio_dev *dev, const char *why)
{
	if (!dev)
		return;
	fail(dev, "%s: %s", dev->ops->name, why && *why ? why : "device error");
}

int vmm_virtio_dev_interrupt(vmm_virtio_dev *dev, uint16_t queue)
{
	if (!dev || queue >= dev->nq)
		return vmm_err(-EINVAL, "virtio: interrupt for queue %u out of range", queue);
	struct vdev_queue *q = &dev->q[queue];
	if (!dev->activated || !q->ready)
		return 0;
	if (vmm_virtq_need_interrupt(q->vq, dev->mem))
		vdev_raise(dev, VIRTIO_MMIO_INT_VRING);
	return 0;
}

void vmm_virtio_dev_config_changed(vmm_virtio_dev *dev)
{
	if (!dev)
		return;
	dev->config_gen++;
	/* Before DRIVER_OK no driver listens; it reads the generation when it starts. */
	if (atomic_load(&dev->status) & VIRTIO_CONFIG_S_DRIVER_OK)
		vdev_raise(dev, VIRTIO_MMIO_INT_CONFIG);
}

/* ---- accessors for device code ---- */

vmm_virtq *vmm_virtio_dev_queue(vmm_virtio_dev *dev, uint16_t index)
{
	return dev && index < dev->nq ? dev->q[index].vq : NULL;
}

vmm_mem *vmm_virtio_dev_mem(vmm_virtio_dev *dev)
{
	return dev ? dev->mem : NULL;
}

vmm_loop *vmm_virtio_dev_loop(vmm_virtio_dev *dev)
{
	return dev ? dev->loop : NULL;
}

uint64_t vmm_virtio_dev_features(const vmm_virtio_dev *dev)
{
	return dev && dev->activated ? dev->features : 0;
}

void vmm_virtio_dev_lock(vmm_virtio_dev *dev)
{
	if (dev)
		pthread_mutex_lock(&dev->lock);
}

void vmm_virtio_dev_unlock(vmm_virtio_dev *dev)
{
	if (dev)
		pthread_mutex_unlock(&dev->lock);
}

/* ---- the driver's side: features, status, queues, config ---- */

uint32_t vdev_device_features(struct vmm_virtio_dev *dev)
{
	if (dev->dev_feat_sel > 1)
		return 0;
	return (uint32_t)(dev->offered >> (32 * dev->dev_feat_sel));
}

void vdev_set_driver_features(struct vmm_virtio_dev *dev, uint32_t val)
{
	/* Frozen once FEATURES_OK is set: what was checked is what the device runs with. */
	if ((atomic_load(&dev->status) & VIRTIO_CONFIG_S_FEATURES_OK) || dev->drv_feat_sel > 1)
		return;
	unsigned shift = 32 * dev->drv_feat_sel;
	dev->driver_features = (dev->driver_features & ~(0xffffffffull << shift)) | (uint64_t)val << shift;
}

static bool features_acceptable(const struct vmm_virtio_dev *dev)
{
	return !(dev->driver_features & ~dev->offered) &&
	       (dev->driver_features & 1ull << VIRTIO_F_VERSION_1);
}

/* DRIVER_OK: hand the ready queues to their virtqs, then the device. */
static void activate(struct vmm_virtio_dev *dev)
{
	bool indirect = dev->features & 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	bool event_idx = dev->features & 1ull << VIRTIO_RING_F_EVENT_IDX;
	atomic_fetch_or(&dev->status, VIRTIO_CONFIG_S_DRIVER_OK);
	for (uint16_t i = 0; i < dev->nq; i++) {
		struct vdev_queue *q = &dev->q[i];
		if (!q->ready)
			continue;
		vmm_virtq_set_features(q->vq, indirect, event_idx);
		if (vmm_virtq_enable(q->vq, dev->mem) != 0) {
			fail(dev, "%s: queue %u: %s", dev->ops->name, i, vmm_last_error());
			return;
		}
	}
	dev->active = dev->activated = true;
	watches_arm(dev);
	int r = dev->ops->activate(dev->ctx, dev, dev->features);
	if (r)
		fail(dev, "%s: activation refused: %s (%s)", dev->ops->name, vmm_strerror(r),
		     vmm_last_error());
}

void vdev_set_status(struct vmm_virtio_dev *dev, uint32_t val)
{
	if (val == 0) {
		vdev_reset(dev);
		return;
	}
	uint32_t old = atomic_load(&dev->status);
	/* The driver only sets bits (2.1.1); clearing one other than by reset is ignored,
	 * so FEATURES_OK cannot be dropped to unfreeze the features, nor DRIVER_OK to
	 * unlock the queues. */
	uint32_t add = val & ~old & DRIVER_STATUS_BITS;
	if (add & VIRTIO_CONFIG_S_FEATURES_OK) {
		if (features_acceptable(dev))
			dev->features = dev->driver_features;
		else
			add &= ~VIRTIO_CONFIG_S_FEATURES_OK; /* the driver sees it did not stick */
	}
	atomic_fetch_or(&dev->status, add & ~VIRTIO_CONFIG_S_DRIVER_OK);
	if ((add & VIRTIO_CONFIG_S_DRIVER_OK) && !dev->failed &&
	    (atomic_load(&dev->status) & VIRTIO_CONFIG_S_FEATURES_OK))
		activate(dev);
}

void vdev_reset(struct vmm_virtio_dev *dev)
{
	if (dev->activated && dev->ops->reset)
		dev->ops->reset(dev->ctx, dev);
	watches_disarm(dev);
	for (uint16_t i = 0; i < dev->nq; i++) {
		struct vdev_queue *q = &dev->q[i];
		vmm_virtq_reset(q->vq);
		q->num = dev->ops->queue_size_max;
		q->desc = q->driver = q->device = 0;
		q->ready = false;
	}
	dev->driver_features = dev->features = 0;
	dev->dev_feat_sel = dev->drv_feat_sel = dev->queue_sel = 0;
	dev->active = dev->activated = dev->failed = false;
	dev->resched_mask = 0;
	atomic_store(&dev->isr, 0);
	atomic_store(&dev->status, 0);
	set_error(dev, "");
}

void vdev_restore_failed(struct vmm_virtio_dev *dev, const char *why)
{
	set_error(dev, why);
	dev->failed = true;
	atomic_fetch_or(&dev->status, VIRTIO_CONFIG_S_NEEDS_RESET);
}

int vdev_restore_active(struct vmm_virtio_dev *dev)
{
	dev->active = dev->activated = true;
	watches_arm(dev);
	int r = dev->ops->activate(dev->ctx, dev, dev->features);
	if (r)
		fail(dev, "%s: activation refused: %s (%s)", dev->ops->name, vmm_strerror(r),
		     vmm_last_error());
	return r;
}

struct vdev_queue *vdev_sel_queue(struct vmm_virtio_dev *dev)
{
	/* Unsigned compare: a "negative" selector is just a large one (CVE-2011-2512). */
	return dev->queue_sel < dev->nq ? &dev->q[dev->queue_sel] : NULL;
}

bool vdev_queue_writable(struct vmm_virtio_dev *dev, const struct vdev_queue *q)
{
	/* Locked once the queue is ready, and for good after DRIVER_OK (CVE-2026-5747):
	 * the device keeps using the ring it was given. */
	return q && !q->ready && !(atomic_load(&dev->status) & VIRTIO_CONFIG_S_DRIVER_OK);
}

void vdev_set_queue_ready(struct vmm_virtio_dev *dev, struct vdev_queue *q, bool ready)
{
	if (!q || (atomic_load(&dev->status) & VIRTIO_CONFIG_S_DRIVER_OK))
		return;
	if (!ready) {
		if (q->ready)
			vmm_virtq_reset(q->vq);
		q->ready = false;
		return;
	}
	if (q->ready)
		return;
	/* A size or address the queue refuses leaves QueueReady at 0, which the driver
	 * can read back; the device never runs a queue it could not validate. */
	if (q->num > UINT16_MAX || vmm_virtq_set_size(q->vq, (uint16_t)q->num) != 0 ||
	    vmm_virtq_set_addrs(q->vq, q->desc, q->driver, q->device) != 0) {
		vmm_virtq_reset(q->vq);
		return;
	}
	q->ready = true;
}

static bool config_ok(const struct vmm_virtio_dev *dev, uint32_t off, uint32_t len)
{
	return (len == 1 || len == 2 || len == 4 || len == 8) &&
	       (uint64_t)off + len <= dev->ops->config_size;
}

void vdev_config_read(struct vmm_virtio_dev *dev, uint32_t off, void *data, uint32_t len)
{
	memset(data, 0, len);
	if (config_ok(dev, off, len) && dev->ops->config_read)
		dev->ops->config_read(dev->ctx, off, data, len);
}

void vdev_config_write(struct vmm_virtio_dev *dev, uint32_t off, const void *data, uint32_t len)
{
	if (config_ok(dev, off, len) && dev->ops->config_write)
		dev->ops->config_write(dev->ctx, off, data, len);
}

void vdev_notify(struct vmm_virtio_dev *dev, uint16_t queue)
{
	atomic_fetch_add(&dev->notifies, 1);
	if (queue >= dev->nq || !dev->active || dev->failed || !dev->q[queue].ready)
		return;
	dev->ops->notify(dev->ctx, dev, queue);
}
