/* virtio-net (virtio 1.2, 5.1): one receive queue (0) and one transmit queue (1), MAC and
 * link status in config space, mergeable receive buffers, no offloads, no control queue.
 *
 * This file is the glue: device ops, the public API and the wiring of the back ends to
 * the loop. The queue work lives in net_tx.c and net_rx.c, the TAP in net_tap.c.
 *
 * Frames towards the guest all go through the backlog (net_rx.c):
 *  - the TAP fd is watched on the loop; when readable, frames are read into our buffer and
 *    queued, then delivered. While the guest has no receive buffers we stop reading the
 *    TAP (the kernel queues, then drops, as a full NIC would), and start again when the
 *    driver's notification lets the waiting frames out (CVE-2020-16843).
 *  - vmm_virtio_net_receive (any thread) queues the frame under the backlog's leaf lock
 *    and writes an eventfd watched on the loop, whose callback delivers. It does not take
 *    the device lock, so the tx callback may call it (an echo, or a bridge between two
 *    devices served by different loop threads) without deadlock, and nothing is left
 *    pending on the loop that could outlive the device: the eventfd watch goes away with
 *    the transport.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>
#include <linux/virtio_ids.h>

#include "dev_state.h"
#include "net_internal.h"

/* mac, status and max_virtqueue_pairs: the fields that exist without MQ/MTU/SPEED. */
#define NET_CONFIG_SIZE ((uint32_t)offsetof(struct virtio_net_config, mtu))

#define NET_FEATURES ((1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_MRG_RXBUF) | \
		      (1ull << VIRTIO_NET_F_STATUS))

static void net_destroy(void *ctx);

static void net_config_read(void *ctx, uint32_t offset, void *data, uint32_t len)
{
	struct vmm_net *n = ctx;
	uint8_t cfg[NET_CONFIG_SIZE];
	uint16_t status = htole16(VIRTIO_NET_S_LINK_UP), pairs = htole16(1);

	memcpy(cfg + offsetof(struct virtio_net_config, mac), n->mac, sizeof n->mac);
	memcpy(cfg + offsetof(struct virtio_net_config, status), &status, sizeof status);
	memcpy(cfg + offsetof(struct virtio_net_config, max_virtqueue_pairs), &pairs, sizeof pairs);
	/* The transport checks the range; stay safe should another caller not. */
	if (offset > sizeof cfg || len > sizeof cfg - offset) {
		memset(data, 0, len);
		return;
	}
	memcpy(data, cfg + offset, len);
}

/* Reads the TAP only while the guest can take frames and the backlog has room. */
static void tap_update(struct vmm_net *n, bool want_read)
{
	if (!n->tap_watched || n->tap_dead)
		return;
	bool want = want_read && !vmm_net_backlog_full(n);
	if (want == !n->tap_paused)
		return;
	if (vmm_virtio_dev_watch_modify(n->dev, n->tap_fd, want ? VMM_LOOP_IN : 0) == 0)
		n->tap_paused = !want;
}

static void net_fail(struct vmm_net *n)
{
	n->failed = true;
	vmm_virtio_dev_fail(n->dev, vmm_last_error());
	tap_update(n, false);
}

/* Delivers what the backlog holds, as far as the guest's buffers and the budget go. */
static void net_rx_run(struct vmm_net *n)
{
	vmm_virtq *q = vmm_virtio_dev_queue(n->dev, NET_RXQ);
	vmm_mem *mem = vmm_virtio_dev_mem(n->dev);
	unsigned pushed = 0;
	int r;

	if (!q || !mem)
		return;
	r = vmm_net_rx_deliver(n, q, mem, NET_RX_BUDGET, &pushed);
	if (pushed)
		vmm_virtio_dev_interrupt(n->dev, NET_RXQ);
	if (r < 0) {
		net_fail(n);
		return;
	}
	if (r == NET_RX_MORE)
		vmm_virtio_dev_reschedule(n->dev, NET_RXQ);
	tap_update(n, r != NET_RX_STALLED);
}

static void net_tx_run(struct vmm_net *n)
{
	vmm_virtq *q = vmm_virtio_dev_queue(n->dev, NET_TXQ);
	vmm_mem *mem = vmm_virtio_dev_mem(n->dev);
	unsigned pushed = 0;
	int r;

	if (!q || !mem)
		return;
	r = vmm_net_tx_drain(n, q, mem, NET_TX_BUDGET, &pushed);
	if (pushed)
		vmm_virtio_dev_interrupt(n->dev, NET_TXQ);
	if (r < 0)
		net_fail(n);
	else if (r > 0)
		vmm_virtio_dev_reschedule(n->dev, NET_TXQ);
}

/* The eventfd vmm_virtio_net_receive writes: frames wait in the backlog. */
static void net_kick_ready(void *ctx, int fd, uint32_t events)
{
	struct vmm_net *n = ctx;
	uint64_t v;

	(void)events;
	/* Drain the eventfd first, then clear the flag: a frame queued after the clear
	 * writes the eventfd again. (Clearing first let a concurrent push's wake-up be
	 * swallowed by the read while kick_pending stayed set: RX stalled for good.) */
	if (read(fd, &v, sizeof v) < 0) {
		/* EAGAIN: already consumed; nothing else can fail on an eventfd we own. */
	}
	pthread_mutex_lock(&n->lock);
	n->kick_pending = false;
	pthread_mutex_unlock(&n->lock);
	if (n->dev && !n->failed)
		net_rx_run(n);
}

static void tap_kill(struct vmm_net *n)
{
	/* The interface went away (EPOLLERR is reported whatever we ask for): stop
	 * watching it, or the level-triggered error would spin the loop. */
	vmm_virtio_dev_unwatch(n->dev, n->tap_fd);
	n->tap_watched = false;
	n->tap_dead = true;
}

static void net_tap_ready(void *ctx, int fd, uint32_t events)
{
	struct vmm_net *n = ctx;

	if (!n->dev || n->failed || n->tap_dead)
		return;
	if (events & VMM_LOOP_ERR) {
		tap_kill(n);
		return;
	}
	for (unsigned i = 0; i < NET_TAP_BUDGET && !n->tap_paused; i++) {
		if (vmm_net_backlog_full(n))
			break;
		ssize_t r = read(fd, n->frame_buf, NET_MAX_FRAME);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r <= 0) {
			tap_kill(n);
			break;
		}
		vmm_net_backlog_push(n, n->frame_buf, (size_t)r, NULL);
	}
	/* Deliver even after a failed read: what was queued must not wait for the guest. */
	net_rx_run(n);
}

static int net_activate(void *ctx, vmm_virtio_dev *dev, uint64_t features)
{
	struct vmm_net *n = ctx;
	int r;

	n->dev = dev;
	n->failed = false;
	n->mrg = features & (1ull << VIRTIO_NET_F_MRG_RXBUF);
	n->rx_off = 0;
	n->nheld = 0;
	n->rx_notify = false;

	r = vmm_virtio_dev_watch(dev, n->kick_fd, VMM_LOOP_IN, net_kick_ready, n);
	if (r < 0)
		return r;
	n->kick_watched = true;
	if (n->tap_fd >= 0 && !n->tap_dead) {
		r = vmm_virtio_dev_watch(dev, n->tap_fd, VMM_LOOP_IN, net_tap_ready, n);
		if (r < 0) {
			vmm_virtio_dev_unwatch(dev, n->kick_fd);
			n->kick_watched = false;
			return r;
		}
		n->tap_watched = true;
		n->tap_paused = false;
	}
	/* Frames queued before activation: their kick may already have been consumed. */
	vmm_virtio_dev_reschedule(dev, NET_RXQ);
	return 0;
}

static void net_notify(void *ctx, vmm_virtio_dev *dev, uint16_t queue)
{
	struct vmm_net *n = ctx;

	n->dev = dev;
	if (n->failed)
		return;
	if (queue == NET_RXQ)
		net_rx_run(n);
	else if (queue == NET_TXQ)
		net_tx_run(n);
}

static void net_reset(void *ctx, vmm_virtio_dev *dev)
{
	struct vmm_net *n = ctx;

	if (n->kick_watched)
		vmm_virtio_dev_unwatch(dev, n->kick_fd);
	if (n->tap_watched)
		vmm_virtio_dev_unwatch(dev, n->tap_fd);
	n->kick_watched = n->tap_watched = n->tap_paused = false;
	n->dev = NULL;
	n->failed = false;
	n->mrg = false;
	/* A reset NIC forgets its queue; held chains belong to the reset queue. */
	vmm_net_rx_reset(n);
}

static void net_destroy(void *ctx)
{
	vmm_net_free(ctx);
}

/* State: the MAC the driver read. Receive chains held for a partly delivered frame are
 * in flight in the queue's state and come back from vmm_virtq_pop after a load; the
 * frames waiting in the backlog are not kept (a NIC may drop frames). */
#define NET_STATE_TAG DEV_STATE_TAG('N', 'E', 'T', '1')
#define NET_STATE_LEN 10u

static int net_save_state(void *ctx, vmm_virtio_dev *dev, void *buf, size_t cap, size_t *len)
{
	struct vmm_net *n = ctx;
	(void)dev;
	int r = dev_state_begin(buf, cap, len, NET_STATE_LEN);
	if (r <= 0)
		return r;
	struct dsw w = { buf };
	dsw_u32(&w, NET_STATE_TAG);
	dsw_bytes(&w, n->mac, 6);
	return 0;
}

static int net_load_state(void *ctx, vmm_virtio_dev *dev, const void *buf, size_t len)
{
	struct vmm_net *n = ctx;
	(void)dev;
	struct dsr r = { buf, len, false };
	uint32_t tag = dsr_u32(&r);
	const uint8_t *mac = dsr_take(&r, 6);
	if (r.bad || r.left || tag != NET_STATE_TAG)
		return vmm_err(-EINVAL, "virtio-net: not a virtio-net state record (%zu bytes)", len);
	if (mac[0] & 1)
		return vmm_err(-EINVAL, "virtio-net: the saved MAC %02x:%02x:%02x:%02x:%02x:%02x is multicast",
			       mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	/* A MAC the application chose is this device's identity (a clone's own); one we
	 * picked at random gives way to the saved one, so a plain restore keeps the MAC
	 * the guest knows. */
	if (n->mac_random) {
		memcpy(n->mac, mac, 6);
		n->mac_random = false;
	}
	return 0;
}

void vmm_net_free(struct vmm_net *n)
{
	if (!n)
		return;
	if (n->tap_fd >= 0)
		close(n->tap_fd);
	if (n->kick_fd >= 0)
		close(n->kick_fd);
	vmm_net_backlog_free(n);
	free(n->frame_buf);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

static int net_pick_mac(uint8_t mac[6], const uint8_t want[6])
{
	static const uint8_t zero[6];

	if (memcmp(want, zero, 6) != 0) {
		if (want[0] & 1)
			return vmm_err(-EINVAL, "virtio-net: MAC %02x:%02x:%02x:%02x:%02x:%02x is multicast",
				       want[0], want[1], want[2], want[3], want[4], want[5]);
		memcpy(mac, want, 6);
		return 0;
	}
	for (size_t got = 0; got < 6;) {
		ssize_t r = getrandom(mac + got, 6 - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return vmm_err(-errno, "virtio-net: getrandom for a MAC failed");
		got += (size_t)r;
	}
	mac[0] = (uint8_t)((mac[0] & ~1u) | 2u); /* unicast, locally administered */
	return 0;
}

int vmm_net_new(struct vmm_net **out, const vmm_virtio_net_opts *user)
{
	vmm_virtio_net_opts o = VMM_VIRTIO_NET_OPTS_INIT;
	struct vmm_net *n;
	int r;

	*out = NULL;
	if (user && vmm_opts_copy(&o, sizeof o, user) < 0)
		return vmm_err(-EINVAL, "virtio-net: opts.size is too small");
	if (o.backend != VMM_NET_TAP && o.backend != VMM_NET_CALLBACK)
		return vmm_err(-EINVAL, "virtio-net: unknown back end %d", (int)o.backend);
	if (o.backend == VMM_NET_CALLBACK && !o.tx)
		return vmm_err(-EINVAL, "virtio-net: the callback back end needs a tx function");
	if (o.rx_backlog == 0)
		o.rx_backlog = NET_BACKLOG_DEFAULT;
	if (o.rx_backlog > NET_BACKLOG_MAX)
		return vmm_err(-EINVAL, "virtio-net: rx_backlog %u is over %u", o.rx_backlog, NET_BACKLOG_MAX);

	n = calloc(1, sizeof *n);
	if (!n)
		return vmm_err(-ENOMEM, "virtio-net: out of memory");
	n->tap_fd = n->kick_fd = -1;
	n->backend = o.backend;
	n->tx = o.tx;
	n->tx_ctx = o.ctx;
	if (pthread_mutex_init(&n->lock, NULL) != 0) {
		free(n);
		return vmm_err(-ENOMEM, "virtio-net: cannot create a mutex");
	}
	r = net_pick_mac(n->mac, o.mac);
	if (r < 0)
		goto fail;
	n->mac_random = !memcmp(o.mac, (const uint8_t[6]){ 0 }, 6);
	n->frame_buf = malloc(NET_MAX_FRAME);
	if (!n->frame_buf) {
		r = vmm_err(-ENOMEM, "virtio-net: out of memory");
		goto fail;
	}
	r = vmm_net_backlog_init(n, o.rx_backlog);
	if (r < 0)
		goto fail;
	n->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (n->kick_fd < 0) {
		r = vmm_err(-errno, "virtio-net: eventfd: %s", strerror(errno));
		goto fail;
	}
	if (o.backend == VMM_NET_TAP) {
		r = o.tap_fd >= 0 ? vmm_net_tap_adopt(o.tap_fd, &n->tap_fd) : vmm_net_tap_open(o.tap_name, &n->tap_fd);
		if (r < 0)
			goto fail;
	}
	*out = n;
	return 0;
fail:
	vmm_net_free(n);
	return r;
}

int vmm_virtio_net_create(vmm_virtio_device **out, const vmm_virtio_net_opts *opts)
{
	vmm_virtio_device_ops ops = { .size = sizeof ops };
	vmm_virtio_device *d;
	struct vmm_net *n;
	int r;

	if (!out)
		return vmm_err(-EINVAL, "virtio-net: NULL out");
	*out = NULL;
	r = vmm_net_new(&n, opts);
	if (r < 0)
		return r;
	ops.name = "virtio-net";
	ops.device_id = VIRTIO_ID_NET;
	ops.num_queues = 2;
	ops.queue_size_max = NET_QUEUE_SIZE;
	ops.features = NET_FEATURES;
	ops.config_size = NET_CONFIG_SIZE;
	ops.config_read = net_config_read;
	ops.activate = net_activate;
	ops.notify = net_notify;
	ops.reset = net_reset;
	ops.destroy = net_destroy;
	ops.save_state = net_save_state;
	ops.load_state = net_load_state;
	r = vmm_virtio_device_create(&d, &ops, n);
	if (r < 0) {
		vmm_net_free(n);
		return r;
	}
	n->device = d;
	*out = d;
	return 0;
}

/* Our state behind a device handle, or NULL if it is not a virtio-net device. */
static struct vmm_net *net_of(vmm_virtio_device *dev)
{
	const vmm_virtio_device_ops *ops = dev ? vmm_virtio_device_get_ops(dev) : NULL;
	return ops && ops->destroy == net_destroy ? vmm_virtio_device_ctx(dev) : NULL;
}

int vmm_virtio_net_receive(vmm_virtio_device *dev, const void *frame, size_t len)
{
	struct vmm_net *n = net_of(dev);
	bool kick = false;
	int r;

	if (!n)
		return vmm_err(-EINVAL, "virtio-net: receive on a device that is not virtio-net");
	if (!frame || len < NET_ETH_HLEN)
		return vmm_err(-EINVAL, "virtio-net: receive: a frame needs at least an Ethernet header");
	if (len > NET_MAX_FRAME)
		return vmm_err(-EMSGSIZE, "virtio-net: receive: frame of %zu bytes is over %u", len,
			       NET_MAX_FRAME);
	r = vmm_net_backlog_push(n, frame, len, &kick);
	if (r < 0)
		return vmm_err(r, "virtio-net: receive: backlog full (%u frames), frame dropped", n->cap);
	if (kick) {
		uint64_t one = 1;
		/* Cannot fail short of the counter overflowing, which one write per batch of
		 * frames never reaches. */
		if (write(n->kick_fd, &one, sizeof one) < 0) {
			r = vmm_err(-errno, "virtio-net: receive: eventfd write failed");
			pthread_mutex_lock(&n->lock);
			n->kick_pending = false; /* let the next frame try again */
			pthread_mutex_unlock(&n->lock);
			return r;
		}
	}
	return 0;
}

int vmm_virtio_net_get_stats(vmm_virtio_device *dev, vmm_virtio_net_stats *out)
{
	struct vmm_net *n = net_of(dev);

	if (!n || !out)
		return vmm_err(-EINVAL, "virtio-net: get_stats: not a virtio-net device");
	pthread_mutex_lock(&n->lock);
	*out = n->stats;
	pthread_mutex_unlock(&n->lock);
	return 0;
}

int vmm_virtio_net_get_mac(vmm_virtio_device *dev, uint8_t mac[6])
{
	struct vmm_net *n = net_of(dev);

	if (!n || !mac)
		return vmm_err(-EINVAL, "virtio-net: get_mac: not a virtio-net device");
	memcpy(mac, n->mac, 6);
	return 0;
}
