/* virtio-blk (device id 2): one request queue served on the loop thread.
 *
 * The request layer (blk_request.c) does the work; this file is the device around it:
 * config space, feature negotiation, draining the queue with bounded work per call,
 * and the rate limit. When the rate limit says "not yet", the queue stops and a
 * timerfd on the device's loop resumes it; notifications that arrive meanwhile do
 * nothing. I/O is synchronous on the loop thread (preadv/pwritev straight into guest
 * memory). */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "blk_internal.h"
#include "dev_state.h"
#include "rate_limit.h"

#define BLK_QUEUE_SIZE 256u

struct blk {
	vmm_blk_disk disk;
	struct virtio_blk_config cfg;
	vmm_rate_limit rl;
	int timer_fd;           /* -1 without a rate limit */
	bool timer_watched;
	bool timer_armed;       /* throttled: the timer, not notify, resumes the queue */
	bool pending;           /* `chain` is popped and waits for the rate limit */
	vmm_virtio_dev *dev;
	vmm_virtq_chain chain;
};

static void blk_config_read(void *ctx, uint32_t offset, void *data, uint32_t len)
{
	struct blk *b = ctx;
	memcpy(data, (const uint8_t *)&b->cfg + offset, len);
}

static void timer_disarm(struct blk *b)
{
	if (b->timer_fd < 0)
		return;
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };
	timerfd_settime(b->timer_fd, 0, &its, NULL);
	uint64_t ticks;
	while (read(b->timer_fd, &ticks, sizeof ticks) > 0) /* non-blocking: drains */
		;
	b->timer_armed = false;
}

static bool timer_arm(struct blk *b, uint64_t ns)
{
	struct itimerspec its = { { 0, 0 }, { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) } };
	if (timerfd_settime(b->timer_fd, 0, &its, NULL) != 0)
		return false;
	b->timer_armed = true;
	return true;
}

/* Drains the queue: at most a queue's worth of requests, then yields to the loop. A
 * request the rate limit holds back stays popped (b->pending) until the timer fires. */
static void blk_process(struct blk *b, vmm_virtio_dev *dev)
{
	vmm_virtq *q = vmm_virtio_dev_queue(dev, 0);
	vmm_mem *mem = vmm_virtio_dev_mem(dev);
	if (!q || !mem || b->timer_armed)
		return;
	uint32_t budget = vmm_virtq_size(q);
	bool pushed = false;
	vmm_virtq_set_notify(q, mem, false);
	for (;;) {
		if (budget == 0) {
			vmm_virtio_dev_reschedule(dev, 0);
			break;
		}
		if (!b->pending) {
			int r = vmm_virtq_pop(q, mem, &b->chain);
			if (r < 0) {
				vmm_virtio_dev_fail(dev, vmm_last_error());
				break;
			}
			if (r == 0) {
				/* Re-enable notifications, then look once more: a request
				 * added in between would otherwise wait for the next one. */
				if (!vmm_virtq_set_notify(q, mem, true))
					break;
				vmm_virtq_set_notify(q, mem, false);
				continue;
			}
			b->pending = true;
		}
		if (vmm_rate_limit_enabled(&b->rl)) {
			uint64_t wait = vmm_rate_limit_wait(&b->rl, vmm_monotonic_ns());
			if (wait > 0) {
				b->disk.stats.throttled++;
				if (!timer_arm(b, wait))
					vmm_virtio_dev_reschedule(dev, 0); /* poll instead */
				break;
			}
		}
		vmm_blk_result res;
		vmm_blk_handle(&b->disk, &b->chain, &res);
		vmm_rate_limit_consume(&b->rl, 1, res.bytes);
		b->pending = false;
		if (vmm_virtq_push(q, mem, b->chain.head, res.written) != 0) {
			vmm_virtio_dev_fail(dev, vmm_last_error());
			break;
		}
		pushed = true;
		budget--;
	}
	if (pushed)
		vmm_virtio_dev_interrupt(dev, 0);
}

static void blk_timer(void *ctx, int fd, uint32_t events)
{
	struct blk *b = ctx;
	(void)fd;
	(void)events;
	timer_disarm(b);
	if (b->dev)
		blk_process(b, b->dev);
}

static int blk_activate(void *ctx, vmm_virtio_dev *dev, uint64_t features)
{
	struct blk *b = ctx;
	b->dev = dev;
	b->disk.writethrough = !(features & (1ull << VIRTIO_BLK_F_FLUSH));
	b->disk.discard = features & (1ull << VIRTIO_BLK_F_DISCARD);
	b->disk.write_zeroes = features & (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	if (b->timer_fd >= 0 && !b->timer_watched) {
		int r = vmm_virtio_dev_watch(dev, b->timer_fd, VMM_LOOP_IN, blk_timer, b);
		if (r != 0)
			return r;
		b->timer_watched = true;
	}
	return 0;
}

static void blk_notify(void *ctx, vmm_virtio_dev *dev, uint16_t queue)
{
	if (queue == 0)
		blk_process(ctx, dev);
}

static void blk_reset(void *ctx, vmm_virtio_dev *dev)
{
	struct blk *b = ctx;
	(void)dev;
	timer_disarm(b); /* the tokens stay spent: a reset must not refill the bucket */
	b->pending = false; /* the transport resets the queue: the chain is gone with it */
}

/* State: the disk the driver sized itself by. A request held back by the rate limit
 * is in flight in the queue's state and comes back from vmm_virtq_pop after a load;
 * the token bucket is host policy and starts afresh. */
#define BLK_STATE_TAG DEV_STATE_TAG('B', 'L', 'K', '1')
#define BLK_STATE_LEN 13u

static int blk_save_state(void *ctx, vmm_virtio_dev *dev, void *buf, size_t cap, size_t *len)
{
	struct blk *b = ctx;
	(void)dev;
	int r = dev_state_begin(buf, cap, len, BLK_STATE_LEN);
	if (r <= 0)
		return r;
	struct dsw w = { buf };
	dsw_u32(&w, BLK_STATE_TAG);
	dsw_u64(&w, b->disk.sectors);
	uint8_t ro = b->disk.readonly;
	dsw_bytes(&w, &ro, 1);
	return 0;
}

static int blk_load_state(void *ctx, vmm_virtio_dev *dev, const void *buf, size_t len)
{
	struct blk *b = ctx;
	(void)dev;
	struct dsr r = { buf, len, false };
	uint32_t tag = dsr_u32(&r);
	uint64_t sectors = dsr_u64(&r);
	const uint8_t *ro = dsr_take(&r, 1);
	if (r.bad || r.left || tag != BLK_STATE_TAG)
		return vmm_err(-EINVAL, "virtio-blk: not a virtio-blk state record (%zu bytes)", len);
	/* The guest sized its disk and chose its features by these: another disk under it
	 * would be corrupted or refuse its writes. */
	if (sectors != b->disk.sectors)
		return vmm_err(-EINVAL, "virtio-blk: the saved disk had %llu sectors, this one has %llu",
			       (unsigned long long)sectors, (unsigned long long)b->disk.sectors);
	if ((*ro != 0) != b->disk.readonly)
		return vmm_err(-EINVAL, "virtio-blk: the saved disk was %s, this one is %s",
			       *ro ? "read-only" : "writable", b->disk.readonly ? "read-only" : "writable");
	return 0;
}

static void blk_destroy(void *ctx)
{
	struct blk *b = ctx;
	if (!b)
		return;
	vmm_blk_disk_close(&b->disk);
	if (b->timer_fd >= 0)
		close(b->timer_fd);
	free(b);
}

static void fill_config(struct blk *b)
{
	struct virtio_blk_config *c = &b->cfg;
	memset(c, 0, sizeof *c);
	c->capacity = htole64(b->disk.sectors);
	c->seg_max = htole32(BLK_QUEUE_SIZE - 2); /* a chain also holds header and status */
	c->blk_size = htole32(BLK_SECTOR);
	c->num_queues = htole16(1);
	c->max_discard_sectors = htole32(BLK_MAX_DISCARD_SECTORS);
	c->max_discard_seg = htole32(BLK_MAX_DWZ_SEGS);
	c->discard_sector_alignment = htole32(1);
	c->max_write_zeroes_sectors = htole32(BLK_MAX_WRITE_ZEROES_SECTORS);
	c->max_write_zeroes_seg = htole32(BLK_MAX_DWZ_SEGS);
	c->write_zeroes_may_unmap = 1;
}

int vmm_virtio_blk_create(vmm_virtio_device **out, const vmm_virtio_blk_opts *opts)
{
	if (!out || !opts)
		return vmm_err(-EINVAL, "vmm_virtio_blk_create: NULL argument");
	*out = NULL;
	vmm_virtio_blk_opts o = VMM_VIRTIO_BLK_OPTS_INIT;
	int r = vmm_opts_copy(&o, sizeof o, opts);
	if (r != 0)
		return r;

	struct blk *b = calloc(1, sizeof *b);
	if (!b)
		return vmm_err(-ENOMEM, "virtio-blk: out of memory");
	b->timer_fd = -1;
	r = vmm_blk_disk_open(&b->disk, &o);
	if (r != 0) {
		free(b);
		return r;
	}
	vmm_rate_limit_init(&b->rl, o.ops_per_sec, o.bytes_per_sec, vmm_monotonic_ns());
	if (vmm_rate_limit_enabled(&b->rl)) {
		b->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (b->timer_fd < 0) {
			r = vmm_err(-errno, "virtio-blk: timerfd_create: %s", strerror(errno));
			blk_destroy(b);
			return r;
		}
	}
	fill_config(b);

	vmm_virtio_device_ops ops = { .size = sizeof ops };
	ops.name = "virtio-blk";
	ops.device_id = VIRTIO_ID_BLOCK;
	ops.num_queues = 1;
	ops.queue_size_max = BLK_QUEUE_SIZE;
	ops.features = (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
		       (1ull << VIRTIO_BLK_F_BLK_SIZE);
	if (b->disk.readonly)
		ops.features |= 1ull << VIRTIO_BLK_F_RO;
	else
		ops.features |= (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	ops.config_size = sizeof b->cfg;
	ops.config_read = blk_config_read;
	ops.activate = blk_activate;
	ops.notify = blk_notify;
	ops.reset = blk_reset;
	ops.destroy = blk_destroy;
	ops.save_state = blk_save_state;
	ops.load_state = blk_load_state;
	r = vmm_virtio_device_create(out, &ops, b);
	if (r != 0)
		blk_destroy(b);
	return r;
}

int vmm_virtio_blk_get_stats(vmm_virtio_device *dev, vmm_virtio_blk_stats *out)
{
	const vmm_virtio_device_ops *ops = dev ? vmm_virtio_device_get_ops(dev) : NULL;
	if (!ops || ops->destroy != blk_destroy || !out)
		return vmm_err(-EINVAL, "vmm_virtio_blk_get_stats: not a virtio-blk device");
	struct blk *b = vmm_virtio_device_ctx(dev);
	vmm_virtio_dev *tdev = vmm_virtio_device_dev(dev);
	if (tdev)
		vmm_virtio_dev_lock(tdev);
	*out = b->disk.stats;
	if (tdev)
		vmm_virtio_dev_unlock(tdev);
	return 0;
}
