/* The state of a virtio-mmio transport and its device as a blob (vmm_virtio_mmio_save_state
 * and _load_state in include/libvmm/virtio.h).
 *
 * ---- Blob format, version 1 (little-endian) ----
 *   header (88 bytes):
 *     0 u32 magic "LVDS"         4 u16 version (1)        6 u16 header size (88)
 *     8 u32 total length        12 u32 CRC32C of the whole blob with this field zero
 *    16 u32 device id           20 u16 queue count        22 u16 queue_size_max
 *    24 u32 config size         28 u32 Status
 *    32 u64 features offered    40 u64 driver features    48 u64 features accepted
 *    56 u32 DeviceFeaturesSel   60 u32 DriverFeaturesSel  64 u32 QueueSel
 *    68 u32 InterruptStatus     72 u32 ConfigGeneration   76 u32 flags (0)
 *    80 u32 device state length 84 u32 error length (the DEVICE_NEEDS_RESET reason)
 *   then per queue (44 bytes + 2 per in-flight head):
 *     0 u32 QueueNum   4 u64 desc   12 u64 driver (avail)   20 u64 device (used)
 *    28 u8 QueueReady  29 u8 flags (QF_*)
 *    30 u16 last_avail 32 u16 used_idx 34 u16 signalled 36 u16 avail_event
 *    38 u16 in-flight count   40 u32 pushed   44 u16 heads[in-flight count], oldest first
 *   then the error text (no NUL), then the device's own state.
 * Everything is checked on load before anything changes; the queue's rings are guest
 * memory, which the VM snapshot carries.
 *
 * Which transport states exist after a load: a device whose driver had set DRIVER_OK
 * and that did not need a reset is active again (queues enabled on the saved rings with
 * their progress, ops->activate called); a device that needed a reset comes back
 * needing one (its queues not enabled: the driver must reset it anyway); any other
 * status (the driver was still setting up) comes back as registers only.
 */
#include <endian.h>
#include <stdarg.h>
#include <stdio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>

#include "../snapshot/snapshot_internal.h" /* vmm_crc32c */
#include "mmio_internal.h"
#include "virtq_state.h"

#define VDS_MAGIC 0x5344564cu /* "LVDS" */
#define VDS_VERSION 1u
#define VDS_HEADER 88u
#define VDS_QUEUE 44u
#define VDS_CRC_OFF 12u

#define QF_ENABLED (1u << 0)   /* the virtq was enabled (device active) */
#define QF_BROKEN (1u << 1)
#define QF_NOTIFY_ON (1u << 2)
#define QF_AVAIL_EVENT_SET (1u << 3)
#define QF_ALL (QF_ENABLED | QF_BROKEN | QF_NOTIFY_ON | QF_AVAIL_EVENT_SET)

#define STATUS_BITS                                                                                \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |       \
	 VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED | VIRTIO_CONFIG_S_NEEDS_RESET)

/* ---- little-endian cursor ---- */

struct wr {
	uint8_t *p;
};

static void put8(struct wr *w, uint8_t v)
{
	*w->p++ = v;
}

static void put16(struct wr *w, uint16_t v)
{
	v = htole16(v);
	memcpy(w->p, &v, 2);
	w->p += 2;
}

static void put32(struct wr *w, uint32_t v)
{
	v = htole32(v);
	memcpy(w->p, &v, 4);
	w->p += 4;
}

static void put64(struct wr *w, uint64_t v)
{
	v = htole64(v);
	memcpy(w->p, &v, 8);
	w->p += 8;
}

struct rd {
	const uint8_t *p;
	size_t left;
	bool short_read; /* ran past the end: every later get returns 0 */
};

static const uint8_t *take(struct rd *r, size_t n)
{
	if (r->short_read || n > r->left) {
		r->short_read = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static uint8_t get8(struct rd *r)
{
	const uint8_t *p = take(r, 1);
	return p ? *p : 0;
}

static uint16_t get16(struct rd *r)
{
	uint16_t v = 0;
	const uint8_t *p = take(r, 2);
	if (p)
		memcpy(&v, p, 2);
	return le16toh(v);
}

static uint32_t get32(struct rd *r)
{
	uint32_t v = 0;
	const uint8_t *p = take(r, 4);
	if (p)
		memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get64(struct rd *r)
{
	uint64_t v = 0;
	const uint8_t *p = take(r, 8);
	if (p)
		memcpy(&v, p, 8);
	return le64toh(v);
}

/* ---- save ---- */

static bool dev_active(const struct vmm_virtio_dev *dev)
{
	return dev->active && !dev->failed;
}

/* Bytes of the blob without the device state. */
static size_t transport_size(struct vmm_virtio_dev *dev, size_t *err_len)
{
	size_t n = VDS_HEADER;
	for (uint16_t i = 0; i < dev->nq; i++) {
		n += VDS_QUEUE;
		if (dev_active(dev) && dev->q[i].ready)
			n += 2u * vq_state_inflight(dev->q[i].vq);
	}
	pthread_mutex_lock(&dev->err_lock);
	*err_len = dev->failed ? strnlen(dev->error, VDEV_ERROR_MAX - 1) : 0;
	pthread_mutex_unlock(&dev->err_lock);
	return n + *err_len;
}

static int save_queue(struct vmm_virtio_dev *dev, struct wr *w, const struct vdev_queue *q, uint16_t *heads)
{
	struct vq_state s;
	memset(&s, 0, sizeof s);
	uint8_t flags = 0;
	if (dev_active(dev) && q->ready) {
		int r = vq_state_get(q->vq, &s, heads);
		if (r)
			return r;
		flags = QF_ENABLED | (s.broken ? QF_BROKEN : 0) | (s.notify_on ? QF_NOTIFY_ON : 0) |
			(s.avail_event_set ? QF_AVAIL_EVENT_SET : 0);
	}
	put32(w, q->num);
	put64(w, q->desc);
	put64(w, q->driver);
	put64(w, q->device);
	put8(w, q->ready);
	put8(w, flags);
	put16(w, s.last_avail);
	put16(w, s.used_idx);
	put16(w, s.signalled);
	put16(w, s.avail_event);
	put16(w, (uint16_t)s.n_inflight);
	put32(w, s.pushed);
	for (uint32_t i = 0; i < s.n_inflight; i++)
		put16(w, heads[i]);
	return 0;
}

static int save_locked(struct vmm_virtio_dev *dev, void *buf, size_t cap, size_t *len)
{
	const vmm_virtio_device_ops *ops = dev->ops;
	size_t err_len, dev_len = 0;
	size_t need = transport_size(dev, &err_len);
	if (ops->save_state) {
		int r = ops->save_state(dev->ctx, dev, NULL, 0, &dev_len);
		if (r)
			return vmm_err(r, "%s: sizing the device state: %s", ops->name, vmm_strerror(r));
	}
	if (dev_len > UINT32_MAX || need + dev_len > UINT32_MAX)
		return vmm_err(-EINVAL, "%s: device state of %zu bytes is too large", ops->name, dev_len);
	need += dev_len;
	*len = need;
	if (!buf || cap == 0)
		return 0;
	if (cap < need)
		return vmm_err(-ENOSPC, "%s: the device state needs %zu bytes, the buffer has %zu", ops->name,
			       need, cap);

	uint16_t *heads = malloc(VMM_VIRTQ_MAX_SIZE * sizeof *heads);
	if (!heads)
		return vmm_err(-ENOMEM, "%s: out of memory saving the device state", ops->name);
	struct wr w = { buf };
	put32(&w, VDS_MAGIC);
	put16(&w, VDS_VERSION);
	put16(&w, VDS_HEADER);
	put32(&w, (uint32_t)need);
	put32(&w, 0); /* CRC, below */
	put32(&w, ops->device_id);
	put16(&w, dev->nq);
	put16(&w, ops->queue_size_max);
	put32(&w, ops->config_size);
	put32(&w, atomic_load(&dev->status));
	put64(&w, dev->offered);
	put64(&w, dev->driver_features);
	put64(&w, dev->features);
	put32(&w, dev->dev_feat_sel);
	put32(&w, dev->drv_feat_sel);
	put32(&w, dev->queue_sel);
	put32(&w, atomic_load(&dev->isr));
	put32(&w, dev->config_gen);
	put32(&w, 0);
	put32(&w, (uint32_t)dev_len);
	put32(&w, (uint32_t)err_len);
	int r = 0;
	for (uint16_t i = 0; i < dev->nq && r == 0; i++)
		r = save_queue(dev, &w, &dev->q[i], heads);
	free(heads);
	if (r)
		return r;
	pthread_mutex_lock(&dev->err_lock);
	memcpy(w.p, dev->error, err_len);
	pthread_mutex_unlock(&dev->err_lock);
	w.p += err_len;
	if (dev_len) {
		size_t got = 0;
		r = ops->save_state(dev->ctx, dev, w.p, dev_len, &got);
		if (r)
			return vmm_err(r, "%s: saving the device state: %s", ops->name, vmm_strerror(r));
		if (got != dev_len)
			return vmm_err(-EIO, "%s: the device state was %zu bytes, then %zu", ops->name, dev_len,
				       got);
		w.p += dev_len;
	}
	uint32_t crc = htole32(vmm_crc32c(0, buf, need));
	memcpy((uint8_t *)buf + VDS_CRC_OFF, &crc, 4);
	return 0;
}

int vmmio_save_state(struct vmm_virtio_dev *dev, void *buf, size_t cap, size_t *len)
{
	if (!dev || !len)
		return vmm_err(-EINVAL, "vmm_virtio_mmio_save_state: NULL argument");
	*len = 0;
	pthread_mutex_lock(&dev->lock);
	int r = save_locked(dev, buf, cap, len);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

/* ---- load ---- */

struct lq {
	uint32_t num;
	uint64_t desc, driver, device;
	uint8_t ready, flags;
	struct vq_state s;
	const uint8_t *heads; /* little-endian u16, in the blob */
};

struct parsed {
	uint32_t status, isr, config_gen;
	uint64_t driver_features, features;
	uint32_t dev_feat_sel, drv_feat_sel, queue_sel;
	const uint8_t *error;
	uint32_t error_len;
	const uint8_t *dstate;
	uint32_t dstate_len;
	struct lq q[VMM_VIRTIO_MAX_QUEUES];
};

#define BAD(...) vmm_err(-EINVAL, __VA_ARGS__)

/* vmm_err with `fmt` in front of the current message (a callee's). The message is
 * copied first: vmm_err formats into the buffer vmm_last_error() points at. */
VMM_PRINTF(2, 3) static int wrap_err(int err, const char *fmt, ...)
{
	char inner[512], outer[256];
	snprintf(inner, sizeof inner, "%s", vmm_last_error());
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(outer, sizeof outer, fmt, ap);
	va_end(ap);
	return vmm_err(err, "%s: %s", outer, inner[0] ? inner : vmm_strerror(err));
}

static bool pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

static int parse_header(struct vmm_virtio_dev *dev, struct rd *r, struct parsed *p, const uint8_t *b,
			size_t len)
{
	const vmm_virtio_device_ops *ops = dev->ops;
	const char *name = ops->name;
	if (len < VDS_HEADER)
		return BAD("%s: device state of %zu bytes is shorter than its %u-byte header", name, len,
			   VDS_HEADER);
	uint32_t magic = get32(r);
	uint16_t version = get16(r), hsize = get16(r);
	uint32_t total = get32(r), crc = get32(r);
	if (magic != VDS_MAGIC)
		return BAD("%s: not a device state (magic %#x)", name, magic);
	if (version != VDS_VERSION)
		return BAD("%s: device state version %u (this library reads %u)", name, version, VDS_VERSION);
	if (hsize != VDS_HEADER)
		return BAD("%s: device state header of %u bytes (expected %u)", name, hsize, VDS_HEADER);
	if (total != len)
		return BAD("%s: device state says %u bytes, got %zu", name, total, len);
	/* The CRC over the blob with its CRC field zero, without copying the blob. */
	static const uint8_t zero[4];
	uint32_t c = vmm_crc32c(0, b, VDS_CRC_OFF);
	c = vmm_crc32c(c, zero, 4);
	c = vmm_crc32c(c, b + VDS_CRC_OFF + 4, len - VDS_CRC_OFF - 4);
	if (c != crc)
		return BAD("%s: device state checksum mismatch (%#x, computed %#x)", name, crc, c);

	uint32_t device_id = get32(r);
	uint16_t nq = get16(r), qmax = get16(r);
	uint32_t config_size = get32(r);
	p->status = get32(r);
	uint64_t offered = get64(r);
	p->driver_features = get64(r);
	p->features = get64(r);
	p->dev_feat_sel = get32(r);
	p->drv_feat_sel = get32(r);
	p->queue_sel = get32(r);
	p->isr = get32(r);
	p->config_gen = get32(r);
	uint32_t flags = get32(r);
	p->dstate_len = get32(r);
	p->error_len = get32(r);
	if (device_id != ops->device_id)
		return BAD("%s: the state is of device id %u, this device is %u", name, device_id, ops->device_id);
	if (nq != dev->nq)
		return BAD("%s: the state has %u queues, this device %u", name, nq, dev->nq);
	if (!pow2(qmax) || qmax > VMM_VIRTQ_MAX_SIZE)
		return BAD("%s: the state's queue_size_max %u is not a power of two <= %u", name, qmax,
			   VMM_VIRTQ_MAX_SIZE);
	if (config_size != ops->config_size)
		return BAD("%s: the state has %u bytes of config space, this device %u", name, config_size,
			   ops->config_size);
	if (flags != 0)
		return BAD("%s: unknown device state flags %#x", name, flags);
	if (p->status & ~(uint32_t)STATUS_BITS)
		return BAD("%s: status %#x has unknown bits", name, p->status);
	if ((p->status & VIRTIO_CONFIG_S_DRIVER_OK) && !(p->status & VIRTIO_CONFIG_S_FEATURES_OK))
		return BAD("%s: status %#x has DRIVER_OK without FEATURES_OK", name, p->status);
	if (offered & ~dev->offered)
		return BAD("%s: the saved device offered features %#llx this one does not", name,
			   (unsigned long long)(offered & ~dev->offered));
	if (p->status & VIRTIO_CONFIG_S_FEATURES_OK) {
		if (p->features != p->driver_features || (p->features & ~dev->offered) ||
		    !(p->features & 1ull << VIRTIO_F_VERSION_1))
			return BAD("%s: accepted features %#llx are not the driver's %#llx, a subset of the "
				   "offered %#llx with VERSION_1", name, (unsigned long long)p->features,
				   (unsigned long long)p->driver_features, (unsigned long long)dev->offered);
	} else if (p->features) {
		return BAD("%s: features %#llx accepted without FEATURES_OK", name,
			   (unsigned long long)p->features);
	}
	if (p->isr & ~(uint32_t)(VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG))
		return BAD("%s: interrupt status %#x has unknown bits", name, p->isr);
	if (p->error_len >= VDEV_ERROR_MAX)
		return BAD("%s: error text of %u bytes (at most %u)", name, p->error_len, VDEV_ERROR_MAX - 1);
	if (p->error_len && !(p->status & VIRTIO_CONFIG_S_NEEDS_RESET))
		return BAD("%s: error text without DEVICE_NEEDS_RESET", name);
	return 0;
}

static int parse_queue(struct vmm_virtio_dev *dev, struct rd *r, struct parsed *p, uint16_t i)
{
	const char *name = dev->ops->name;
	struct lq *q = &p->q[i];
	bool active = (p->status & VIRTIO_CONFIG_S_DRIVER_OK) && !(p->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	q->num = get32(r);
	q->desc = get64(r);
	q->driver = get64(r);
	q->device = get64(r);
	q->ready = get8(r);
	q->flags = get8(r);
	q->s.last_avail = get16(r);
	q->s.used_idx = get16(r);
	q->s.signalled = get16(r);
	q->s.avail_event = get16(r);
	q->s.n_inflight = get16(r);
	q->s.pushed = get32(r);
	if (r->short_read)
		return BAD("%s: device state truncated in queue %u", name, i);
	if (q->ready > 1 || (q->flags & ~QF_ALL))
		return BAD("%s: queue %u: ready %u, flags %#x", name, i, q->ready, q->flags);
	if (q->ready) {
		/* What vdev_set_queue_ready accepts (and the virtq checks again). */
		uint16_t max = vmm_virtq_size_max(dev->q[i].vq);
		if (!pow2(q->num) || q->num > max)
			return BAD("%s: queue %u: size %u is not a power of two in 1..%u", name, i, q->num, max);
		if (q->desc % 16 || q->driver % 2 || q->device % 4)
			return BAD("%s: queue %u: ring addresses are not aligned", name, i);
	}
	bool enabled = q->flags & QF_ENABLED;
	if (enabled != (active && q->ready))
		return BAD("%s: queue %u is %s but the device is %s and the queue %s", name, i,
			   enabled ? "enabled" : "not enabled", active ? "active" : "not active",
			   q->ready ? "ready" : "not ready");
	if (!enabled) {
		if (q->flags || q->s.last_avail || q->s.used_idx || q->s.signalled || q->s.avail_event ||
		    q->s.n_inflight || q->s.pushed)
			return BAD("%s: queue %u is not enabled but has progress", name, i);
		return 0;
	}
	q->s.size = (uint16_t)q->num;
	q->s.desc = q->desc;
	q->s.avail = q->driver;
	q->s.used = q->device;
	q->s.broken = q->flags & QF_BROKEN;
	q->s.notify_on = q->flags & QF_NOTIFY_ON;
	q->s.avail_event_set = q->flags & QF_AVAIL_EVENT_SET;
	if (q->s.n_inflight > q->num)
		return BAD("%s: queue %u: %u heads in flight in a queue of %u", name, i, q->s.n_inflight, q->num);
	q->heads = take(r, 2u * q->s.n_inflight);
	if (r->short_read)
		return BAD("%s: device state truncated in queue %u's in-flight heads", name, i);
	int rc = vq_state_check(dev->q[i].vq, dev->mem, &q->s, q->heads);
	if (rc)
		return wrap_err(-EINVAL, "%s: queue %u", name, i);
	return 0;
}

static int parse(struct vmm_virtio_dev *dev, const uint8_t *buf, size_t len, struct parsed *p)
{
	const char *name = dev->ops->name;
	struct rd r = { buf, len, false };
	int rc = parse_header(dev, &r, p, buf, len);
	if (rc)
		return rc;
	for (uint16_t i = 0; i < dev->nq; i++)
		if ((rc = parse_queue(dev, &r, p, i)) != 0)
			return rc;
	p->error = take(&r, p->error_len);
	if (r.short_read)
		return BAD("%s: device state truncated in the error text", name);
	if (memchr(p->error, 0, p->error_len))
		return BAD("%s: the error text holds a NUL byte", name);
	p->dstate = take(&r, p->dstate_len);
	if (r.short_read)
		return BAD("%s: device state truncated: %u bytes of the device's own state announced, %zu left",
			   name, p->dstate_len, r.left);
	if (r.left)
		return BAD("%s: %zu stray bytes after the device state", name, r.left);
	if (p->dstate_len && !dev->ops->load_state)
		return BAD("%s: the state carries %u bytes of device state, but this device cannot load any",
			   name, p->dstate_len);
	return 0;
}

/* Puts the checked state into the (just reset) transport. */
static int apply(struct vmm_virtio_dev *dev, const struct parsed *p)
{
	const vmm_virtio_device_ops *ops = dev->ops;
	bool failed = p->status & VIRTIO_CONFIG_S_NEEDS_RESET;
	bool active = (p->status & VIRTIO_CONFIG_S_DRIVER_OK) && !failed;
	bool indirect = p->features & 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	bool event_idx = p->features & 1ull << VIRTIO_RING_F_EVENT_IDX;
	dev->driver_features = p->driver_features;
	dev->features = p->features;
	dev->dev_feat_sel = p->dev_feat_sel;
	dev->drv_feat_sel = p->drv_feat_sel;
	dev->queue_sel = p->queue_sel;
	dev->config_gen = p->config_gen;
	for (uint16_t i = 0; i < dev->nq; i++) {
		struct vdev_queue *q = &dev->q[i];
		const struct lq *l = &p->q[i];
		q->num = l->num;
		q->desc = l->desc;
		q->driver = l->driver;
		q->device = l->device;
		q->ready = l->ready;
		int rc = 0;
		if (l->flags & QF_ENABLED)
			rc = vq_state_set(q->vq, dev->mem, &l->s, l->heads, indirect, event_idx);
		else if (l->ready && (vmm_virtq_set_size(q->vq, (uint16_t)l->num) ||
				      vmm_virtq_set_addrs(q->vq, l->desc, l->driver, l->device)))
			rc = -EINVAL;
		if (rc) {
			rc = wrap_err(-EINVAL, "%s: queue %u", ops->name, i);
			vdev_reset(dev);
			return rc;
		}
	}
	atomic_store(&dev->isr, p->isr);
	atomic_store(&dev->status, p->status & ~(uint32_t)VIRTIO_CONFIG_S_NEEDS_RESET);
	if (failed) {
		char why[VDEV_ERROR_MAX];
		memcpy(why, p->error, p->error_len);
		why[p->error_len] = 0;
		vdev_restore_failed(dev, p->error_len ? why : "device needed a reset when its state was saved");
	}
	if (active) {
		int rc = vdev_restore_active(dev);
		if (rc)
			return wrap_err(rc, "%s: activation refused on load", ops->name);
	}
	if (ops->load_state) {
		vmm_err_clear();
		int rc = ops->load_state(dev->ctx, dev, p->dstate, p->dstate_len);
		if (rc) {
			rc = wrap_err(rc < 0 ? rc : -EINVAL, "%s: device state refused", ops->name);
			vdev_reset(dev);
			return rc;
		}
	}
	if (active) {
		/* A doorbell rung just before the save went to the old transport's eventfd:
		 * let the device look at every queue once. */
		for (uint16_t i = 0; i < dev->nq; i++)
			if (dev->q[i].ready)
				vmm_virtio_dev_reschedule(dev, i);
	}
	if (p->isr)
		vdev_raise(dev, 0); /* not yet acknowledged: the driver may not have seen it */
	return 0;
}

int vmmio_load_state(struct vmm_virtio_dev *dev, const void *buf, size_t len)
{
	if (!dev || (!buf && len))
		return vmm_err(-EINVAL, "vmm_virtio_mmio_load_state: NULL argument");
	if (len > UINT32_MAX)
		return vmm_err(-EINVAL, "%s: device state of %zu bytes is too large", dev->ops->name, len);
	/* No allocation: a snapshot reset reloads device state on its fast path. The
	 * parse (~6 KiB) points into the blob for the in-flight heads. */
	struct parsed p;
	memset(&p, 0, sizeof p);
	pthread_mutex_lock(&dev->lock);
	int rc = parse(dev, buf, len, &p);
	if (rc == 0) {
		vdev_reset(dev);
		rc = apply(dev, &p);
	}
	pthread_mutex_unlock(&dev->lock);
	return rc;
}
