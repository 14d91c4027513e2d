/* The virtio-mmio transport (virtio 1.2, 4.2; version 2 registers only).
 *
 * The register file (vmmio_read/vmmio_write) decodes accesses into the transport-
 * independent calls of device.c. Around it, vmm_virtio_mmio_attach wires a device to a
 * VM: an MMIO range on the bus for the registers, one eventfd per queue registered as
 * an ioeventfd on QueueNotify (datamatch = queue index) and watched on the loop, so a
 * doorbell costs the guest no exit to user space and the device runs on the loop thread;
 * and an irqfd on the GSI with the kernel irqchip (vmm_irq_pulse otherwise).
 *
 * Threads: register accesses arrive on vCPU threads, doorbells and the device's fds on
 * the loop thread; dev.lock serialises them all.
 */
#include <inttypes.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../core/vm_internal.h"
#include "mmio_internal.h"

struct vmm_virtio_mmio {
	struct vmm_virtio_dev dev; /* first: the hooks get back to the transport from it */
	bool dev_ready;            /* vdev_init succeeded */
	vmm_vm *vm;
	vmm_bus *bus;
	vmm_irq *irq;
	vmm_loop *loop;
	uint64_t base;
	uint32_t gsi;
	int irqfd;                 /* -1: interrupts through vmm_irq_pulse (or none) */
	bool irqfd_added;
	bool bus_registered;
	bool ioev[VMM_VIRTIO_MAX_QUEUES];    /* KVM ioeventfd registered */
	bool in_loop[VMM_VIRTIO_MAX_QUEUES]; /* doorbell watched on the loop */
};

/* ---- the register file ---- */

static uint32_t set_low(uint64_t *reg, uint32_t v)
{
	*reg = (*reg & ~0xffffffffull) | v;
	return v;
}

static uint32_t set_high(uint64_t *reg, uint32_t v)
{
	*reg = (*reg & 0xffffffffull) | (uint64_t)v << 32;
	return v;
}

uint64_t vmmio_read(struct vmm_virtio_dev *dev, uint64_t off, unsigned size)
{
	if (off >= VMMIO_CONFIG) {
		uint64_t v = 0;
		if (size == 1 || size == 2 || size == 4 || size == 8)
			vdev_config_read(dev, (uint32_t)(off - VMMIO_CONFIG), &v, size);
		return v; /* little-endian host: the low `size` bytes are the value */
	}
	if (size != 4 || (off & 3))
		return 0;
	struct vdev_queue *q = vdev_sel_queue(dev);
	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VMMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return VMMIO_VERSION;
	case VIRTIO_MMIO_DEVICE_ID:
		return dev->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VMMIO_VENDOR_ID;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		return vdev_device_features(dev);
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return q ? dev->ops->queue_size_max : 0; /* 0: no such queue */
	case VIRTIO_MMIO_QUEUE_READY:
		return q ? q->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return atomic_load(&dev->isr);
	case VIRTIO_MMIO_STATUS:
		return atomic_load(&dev->status);
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
	case VIRTIO_MMIO_SHM_BASE_LOW:
	case VIRTIO_MMIO_SHM_BASE_HIGH:
		return 0xffffffffu; /* length -1: no shared memory region with this id */
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return dev->config_gen;
	default:
		return 0; /* write-only, legacy or reserved */
	}
}

void vmmio_write(struct vmm_virtio_dev *dev, uint64_t off, unsigned size, uint64_t val)
{
	if (off >= VMMIO_CONFIG) {
		if (size == 1 || size == 2 || size == 4 || size == 8)
			vdev_config_write(dev, (uint32_t)(off - VMMIO_CONFIG), &val, size);
		return;
	}
	if (size != 4 || (off & 3))
		return;
	uint32_t v = (uint32_t)val;
	struct vdev_queue *q = vdev_sel_queue(dev);
	bool qw = vdev_queue_writable(dev, q);
	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		dev->dev_feat_sel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		vdev_set_driver_features(dev, v);
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		dev->drv_feat_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		dev->queue_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (qw)
			q->num = v;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (v <= 1)
			vdev_set_queue_ready(dev, q, v == 1);
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/* Unsigned compare: 0xffffffff is not "-1" (CVE-2011-2512). */
		if (v < dev->nq && dev->hooks && dev->hooks->kick)
			dev->hooks->kick(dev, (uint16_t)v);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		atomic_fetch_and(&dev->isr, ~v);
		break;
	case VIRTIO_MMIO_STATUS:
		vdev_set_status(dev, v);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
		if (qw)
			set_low(&q->desc, v);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if (qw)
			set_high(&q->desc, v);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
		if (qw)
			set_low(&q->driver, v);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		if (qw)
			set_high(&q->driver, v);
		break;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
		if (qw)
			set_low(&q->device, v);
		break;
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		if (qw)
			set_high(&q->device, v);
		break;
	default:
		break; /* read-only, SHMSel (no regions), legacy or reserved */
	}
}

/* ---- VM plumbing ---- */

static struct vmm_virtio_mmio *to_mmio(struct vmm_virtio_dev *dev)
{
	return (struct vmm_virtio_mmio *)dev;
}

static void eventfd_signal(int fd)
{
	uint64_t one = 1;
	if (write(fd, &one, sizeof one) < 0) {
		/* EAGAIN only when the counter is near 2^64, i.e. already signalled. */
	}
}

/* QueueNotify reached us as an MMIO exit, for a write the ioeventfd did not match or
 * with no ioeventfd: signal the doorbell so the work still happens on the loop thread. */
static void mmio_kick(struct vmm_virtio_dev *dev, uint16_t queue)
{
	eventfd_signal(dev->q[queue].kick_fd);
}

static void mmio_irq(struct vmm_virtio_dev *dev)
{
	struct vmm_virtio_mmio *t = to_mmio(dev);
	if (t->irqfd >= 0)
		eventfd_signal(t->irqfd);
	else if (t->irq)
		(void)vmm_irq_pulse(t->irq, t->gsi); /* edge; failure leaves ISR for polling */
}

static const struct vdev_hooks mmio_hooks = { .kick = mmio_kick, .irq = mmio_irq };

static uint64_t bus_read(void *opaque, uint64_t offset, unsigned size)
{
	struct vmm_virtio_mmio *t = opaque;
	pthread_mutex_lock(&t->dev.lock);
	uint64_t v = vmmio_read(&t->dev, offset, size);
	pthread_mutex_unlock(&t->dev.lock);
	return v;
}

static void bus_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	struct vmm_virtio_mmio *t = opaque;
	pthread_mutex_lock(&t->dev.lock);
	vmmio_write(&t->dev, offset, size, value);
	pthread_mutex_unlock(&t->dev.lock);
}

static void doorbell_cb(void *ctx, int fd, uint32_t events)
{
	struct vdev_queue *q = ctx;
	uint64_t v;
	(void)events;
	if (read(fd, &v, sizeof v) < 0) {
		/* EAGAIN: nothing to consume; a spurious wake-up costs one empty notify. */
	}
	pthread_mutex_lock(&q->dev->lock);
	vdev_notify(q->dev, q->index);
	pthread_mutex_unlock(&q->dev->lock);
}

static void mmio_free(struct vmm_virtio_mmio *t, bool destroy_device)
{
	/* First no more register accesses, then no more doorbells from KVM, then the
	 * device (its reset may still raise an interrupt: the irqfd is still open), then
	 * the loop's doorbells and the irqfd. */
	if (t->bus_registered)
		vmm_bus_unregister(t->bus, VMM_BUS_MMIO, t->base);
	for (uint16_t i = 0; i < t->dev.nq; i++)
		if (t->ioev[i])
			vmm_bus_remove_ioeventfd(t->bus, VMM_BUS_MMIO, t->base + VIRTIO_MMIO_QUEUE_NOTIFY, 4,
						 t->dev.q[i].kick_fd, VMM_IOEVENTFD_DATAMATCH, i);
	uint16_t nq = t->dev.nq;
	int kick_fds[VMM_VIRTIO_MAX_QUEUES];
	for (uint16_t i = 0; i < nq; i++)
		kick_fds[i] = t->dev.q[i].kick_fd;
	if (t->dev_ready)
		vdev_teardown(&t->dev, destroy_device);
	for (uint16_t i = 0; i < nq; i++) {
		if (t->in_loop[i])
			vmm_loop_remove(t->loop, kick_fds[i]);
		if (kick_fds[i] >= 0)
			close(kick_fds[i]);
	}
	if (t->irqfd_added)
		vmm_irq_remove_irqfd(t->irq, t->irqfd, t->gsi);
	if (t->irqfd >= 0)
		close(t->irqfd);
	free(t);
}

static int new_eventfd(int *fd, const char *name, const char *what)
{
	*fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (*fd >= 0)
		return 0;
	int r = -errno;
	return vmm_err(r, "%s: %s eventfd: %s", name, what, vmm_strerror(r));
}

int vmm_virtio_mmio_attach(vmm_virtio_mmio **out, vmm_vm *vm, vmm_loop *loop,
			   const vmm_virtio_mmio_opts *opts, vmm_virtio_device *device)
{
	if (!out || !vm || !loop || !opts || !device)
		return vmm_err(-EINVAL, "virtio-mmio: NULL argument");
	*out = NULL;
	vmm_virtio_mmio_opts o = VMM_VIRTIO_MMIO_OPTS_INIT;
	if (vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "virtio-mmio: opts.size %u is too small", opts->size);
	const vmm_virtio_device_ops *ops = &device->ops;
	uint64_t end;
	if ((o.base & (VMM_VIRTIO_MMIO_SIZE - 1)) || vmm_add_overflows(o.base, VMM_VIRTIO_MMIO_SIZE, &end))
		return vmm_err(-EINVAL, "%s: virtio-mmio base %#" PRIx64 " is not 4 KiB aligned or wraps",
			       ops->name, o.base);
	if (o.gsi >= VMM_IRQ_MAX_GSI)
		return vmm_err(-EINVAL, "%s: gsi %u out of range", ops->name, o.gsi);
	if (ops->config_size > VMM_VIRTIO_MMIO_SIZE - VMMIO_CONFIG)
		return vmm_err(-EINVAL, "%s: config space of %u bytes does not fit virtio-mmio",
			       ops->name, ops->config_size);
	if (device->dev)
		return vmm_err(-EINVAL, "%s: device is already attached", ops->name);

	struct vmm_virtio_mmio *t = calloc(1, sizeof *t);
	if (!t)
		return vmm_err(-ENOMEM, "%s: out of memory", ops->name);
	t->vm = vm;
	t->bus = vmm_vm_bus(vm);
	t->irq = vmm_vm_irq(vm);
	t->loop = loop;
	t->base = o.base;
	t->gsi = o.gsi;
	t->irqfd = -1;
	int r = vdev_init(&t->dev, device, vmm_vm_mem(vm), loop, &mmio_hooks);
	if (r) {
		free(t);
		return r;
	}
	t->dev_ready = true;

	for (uint16_t i = 0; i < t->dev.nq; i++) {
		struct vdev_queue *q = &t->dev.q[i];
		if ((r = new_eventfd(&q->kick_fd, ops->name, "doorbell")) != 0)
			goto fail;
		if ((r = vmm_loop_add(loop, q->kick_fd, VMM_LOOP_IN, doorbell_cb, q)) != 0)
			goto fail;
		t->in_loop[i] = true;
		r = vmm_bus_add_ioeventfd(t->bus, VMM_BUS_MMIO, o.base + VIRTIO_MMIO_QUEUE_NOTIFY, 4,
					  q->kick_fd, VMM_IOEVENTFD_DATAMATCH, i);
		if (r)
			goto fail;
		t->ioev[i] = true;
	}
	if (t->irq && vm->irqchip == VMM_IRQCHIP_KERNEL) {
		if ((r = new_eventfd(&t->irqfd, ops->name, "interrupt")) != 0)
			goto fail;
		if ((r = vmm_irq_add_irqfd(t->irq, t->irqfd, o.gsi, -1)) != 0)
			goto fail;
		t->irqfd_added = true;
	}
	vmm_bus_ops bops = { .read = bus_read, .write = bus_write };
	if ((r = vmm_bus_register(t->bus, VMM_BUS_MMIO, o.base, VMM_VIRTIO_MMIO_SIZE, &bops, t)) != 0)
		goto fail;
	t->bus_registered = true;
	device->dev = &t->dev;
	*out = t;
	return 0;
fail:
	mmio_free(t, false);
	return r;
}

void vmm_virtio_mmio_destroy(vmm_virtio_mmio *t)
{
	if (t)
		mmio_free(t, true);
}

vmm_virtio_device *vmm_virtio_mmio_device(const vmm_virtio_mmio *t)
{
	return t ? t->dev.device : NULL;
}

uint32_t vmm_virtio_mmio_status(const vmm_virtio_mmio *t)
{
	return t ? atomic_load(&((vmm_virtio_mmio *)t)->dev.status) : 0;
}

const char *vmm_virtio_mmio_error(const vmm_virtio_mmio *t, char *buf, size_t n)
{
	if (!buf || n == 0)
		return buf;
	buf[0] = 0;
	if (!t)
		return buf;
	struct vmm_virtio_mmio *m = (struct vmm_virtio_mmio *)t;
	pthread_mutex_lock(&m->dev.err_lock);
	snprintf(buf, n, "%s", m->dev.error);
	pthread_mutex_unlock(&m->dev.err_lock);
	return buf;
}

int vmm_virtio_mmio_cmdline(const vmm_virtio_mmio *t, char *buf, size_t n)
{
	if (!t)
		return vmm_err(-EINVAL, "virtio-mmio: NULL transport");
	return snprintf(buf, n, "virtio_mmio.device=4K@0x%" PRIx64 ":%u", t->base, t->gsi);
}

void vmm_virtio_mmio_get_stats(const vmm_virtio_mmio *t, vmm_virtio_mmio_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof *out);
	if (!t)
		return;
	struct vmm_virtio_mmio *m = (struct vmm_virtio_mmio *)t;
	out->notifies = atomic_load(&m->dev.notifies);
	out->interrupts = atomic_load(&m->dev.interrupts);
}

int vmm_virtio_mmio_save_state(vmm_virtio_mmio *t, void *buf, size_t cap, size_t *len)
{
	if (!t || !len)
		return vmm_err(-EINVAL, "vmm_virtio_mmio_save_state: NULL argument");
	return vmmio_save_state(&t->dev, buf, cap, len);
}

int vmm_virtio_mmio_load_state(vmm_virtio_mmio *t, const void *buf, size_t len)
{
	if (!t)
		return vmm_err(-EINVAL, "vmm_virtio_mmio_load_state: NULL transport");
	return vmmio_load_state(&t->dev, buf, len);
}
