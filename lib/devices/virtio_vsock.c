/* virtio-vsock (device id 19): device ops, the Unix-socket back end and its listener.
 * The protocol itself is in vsock_engine.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <endian.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <linux/virtio_ids.h>

#include "dev_state.h"
#include "vsock_internal.h"

#define VSOCK_QUEUE_SIZE 256u
#define VSOCK_LISTEN_BACKLOG 64
/* "_4294967295" appended for guest -> host connections. */
#define VSOCK_PORT_SUFFIX_MAX 11u

enum { VSOCK_Q_RX = 0, VSOCK_Q_TX = 1, VSOCK_Q_EVENT = 2 };

/* ---- back end: guest connection to host port P -> Unix socket "<uds_path>_<P>" ---- */

static int uds_connect(void *ctx, uint32_t port, bool *pending)
{
	struct vsock *v = ctx;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int n = snprintf(a.sun_path, sizeof a.sun_path, "%s_%u", v->uds_path, port);
	if (n < 0 || (size_t)n >= sizeof a.sun_path)
		return -ENAMETOOLONG;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
		*pending = false;
		return fd;
	}
	int e = errno;
	if (e == EINPROGRESS) {
		*pending = true;
		return fd;
	}
	close(fd);
	return -e;
}

/* Listens on uds_path, replacing a stale socket left by an earlier run (but never
 * anything that is not a socket). */
static int uds_listen(struct vsock *v)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t len = strlen(v->uds_path);
	if (len == 0 || len + VSOCK_PORT_SUFFIX_MAX >= sizeof a.sun_path)
		return vmm_err(-EINVAL, "virtio-vsock: uds_path must be 1..%zu bytes",
			       sizeof a.sun_path - 1 - VSOCK_PORT_SUFFIX_MAX);
	memcpy(a.sun_path, v->uds_path, len);
	struct stat st;
	if (lstat(v->uds_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return vmm_err(-EEXIST, "virtio-vsock: %s exists and is not a socket", v->uds_path);
		if (unlink(v->uds_path) < 0)
			return vmm_err(-errno, "virtio-vsock: removing stale socket %s: %s", v->uds_path,
				       strerror(errno));
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vmm_err(-errno, "virtio-vsock: socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, VSOCK_LISTEN_BACKLOG) < 0) {
		int e = errno;
		close(fd);
		return vmm_err(-e, "virtio-vsock: listening on %s: %s", v->uds_path, strerror(e));
	}
	/* Remember which file we made, so destroy removes ours and nobody else's. */
	if (stat(v->uds_path, &st) == 0) {
		v->listen_dev = st.st_dev;
		v->listen_ino = st.st_ino;
	}
	v->listen_fd = fd;
	return 0;
}

static void uds_unlisten(struct vsock *v)
{
	if (v->listen_fd < 0)
		return;
	close(v->listen_fd);
	v->listen_fd = -1;
	struct stat st;
	if (v->uds_path && stat(v->uds_path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == v->listen_dev &&
	    st.st_ino == v->listen_ino)
		unlink(v->uds_path);
}

int vsock_new(struct vsock **out, uint64_t guest_cid, uint32_t max_conns, const char *uds_path)
{
	*out = NULL;
	/* CIDs 0-2 are reserved (hypervisor, local, host); 2^32 - 1 is VMADDR_CID_ANY and
	 * Linux keeps CIDs in 32 bits. */
	if (guest_cid < 3 || guest_cid >= 0xffffffffull)
		return vmm_err(-EINVAL, "virtio-vsock: guest_cid %llu out of range 3..2^32-2",
			       (unsigned long long)guest_cid);
	if (max_conns == 0)
		max_conns = VSOCK_DEFAULT_MAX_CONNS;
	if (max_conns > VSOCK_MAX_CONNS_LIMIT)
		return vmm_err(-EINVAL, "virtio-vsock: max_connections %u over %u", max_conns,
			       VSOCK_MAX_CONNS_LIMIT);
	struct vsock *v = calloc(1, sizeof *v);
	if (!v)
		return vmm_err(-ENOMEM, "virtio-vsock: out of memory");
	v->guest_cid = guest_cid;
	v->listen_fd = -1;
	v->rx_chain = malloc(sizeof *v->rx_chain);
	v->tx_chain = malloc(sizeof *v->tx_chain);
	int r = -ENOMEM;
	if (!v->rx_chain || !v->tx_chain || vsock_table_init(v, max_conns) < 0)
		goto fail_nomem;
	if (uds_path) {
		v->uds_path = strdup(uds_path);
		if (!v->uds_path)
			goto fail_nomem;
		r = uds_listen(v);
		if (r < 0)
			goto fail;
		v->be.connect = uds_connect;
		v->be.ctx = v;
	}
	*out = v;
	return 0;
fail_nomem:
	r = vmm_err(-ENOMEM, "virtio-vsock: out of memory");
fail:
	vsock_free(v);
	return r;
}

void vsock_free(struct vsock *v)
{
	if (!v)
		return;
	vsock_close_all(v);
	vsock_table_fini(v);
	uds_unlisten(v);
	free(v->uds_path);
	free(v->rx_chain);
	free(v->tx_chain);
	free(v);
}

/* ---- device ops ---- */

static void vsock_config_read(void *ctx, uint32_t offset, void *data, uint32_t len)
{
	struct vsock *v = ctx;
	uint8_t cfg[8];
	uint64_t cid = htole64(v->guest_cid);
	memcpy(cfg, &cid, sizeof cfg);
	/* The transport checked offset + len <= config_size. */
	memcpy(data, cfg + offset, len);
}

static int vsock_activate(void *ctx, vmm_virtio_dev *dev, uint64_t features)
{
	struct vsock *v = ctx;
	(void)features;
	v->dev = dev;
	v->mem = vmm_virtio_dev_mem(dev);
	v->rxq = vmm_virtio_dev_queue(dev, VSOCK_Q_RX);
	v->txq = vmm_virtio_dev_queue(dev, VSOCK_Q_TX);
	if (!v->mem || !v->rxq || !v->txq)
		return vmm_err(-EINVAL, "virtio-vsock: rx and tx queues are required");
	v->active = true;
	v->broken = false;
	v->rx_starved = false;
	vsock_listen_set(v, true);
	return 0;
}

/* Sends VIRTIO_VSOCK_EVENT_TRANSPORT_RESET (virtio 1.2, 5.10.6.6) if one is owed and
 * the driver gave an event buffer: the driver then drops every connection and reads
 * the guest CID again. */
static void vsock_send_reset_event(struct vsock *v)
{
	vmm_virtq *q = vmm_virtio_dev_queue(v->dev, VSOCK_Q_EVENT);
	bool pushed = false;
	while (v->reset_event_owed && q && vmm_virtq_ready(q)) {
		int r = vmm_virtq_pop(q, v->mem, v->rx_chain);
		if (r < 0) {
			vmm_virtio_dev_fail(v->dev, vmm_last_error());
			return;
		}
		if (r == 0)
			break; /* the driver's next event buffer brings us back (notify) */
		uint32_t written = 0;
		if (v->rx_chain->in_bytes >= sizeof(struct virtio_vsock_event)) {
			struct virtio_vsock_event ev = { .id = htole32(VIRTIO_VSOCK_EVENT_TRANSPORT_RESET) };
			written = (uint32_t)vmm_virtq_chain_write(v->rx_chain, 0, &ev, sizeof ev);
			v->reset_event_owed = false;
		}
		/* A buffer too small for an event goes back empty. */
		if (vmm_virtq_push(q, v->mem, v->rx_chain->head, written) != 0) {
			vmm_virtio_dev_fail(v->dev, vmm_last_error());
			return;
		}
		pushed = true;
	}
	if (pushed)
		vmm_virtio_dev_interrupt(v->dev, VSOCK_Q_EVENT);
}

static void vsock_notify(void *ctx, vmm_virtio_dev *dev, uint16_t queue)
{
	struct vsock *v = ctx;
	if (!v->active)
		return;
	switch (queue) {
	case VSOCK_Q_RX:
		vsock_rx_kick(v);
		break;
	case VSOCK_Q_TX:
		if (vsock_tx_process(v))
			vmm_virtio_dev_reschedule(dev, VSOCK_Q_TX);
		break;
	default:
		/* Event buffers stay with the device until a transport event is owed
		 * (only after a state load). */
		vsock_send_reset_event(v);
		break;
	}
	vsock_end_work(v);
}

static void vsock_reset(void *ctx, vmm_virtio_dev *dev)
{
	struct vsock *v = ctx;
	(void)dev;
	vsock_listen_set(v, false);
	vsock_close_all(v);
	v->active = false;
	v->broken = false;
	v->reset_event_owed = false;
	v->rxq = v->txq = NULL;
	v->mem = NULL;
}

/* State: the guest CID, for the record. Connections do not survive: their host ends
 * belonged to the saved device (and the process that ran it), so after a load the
 * device has none and tells the driver with a TRANSPORT_RESET event, upon which the
 * guest resets every socket (its peers see ECONNRESET) and reads the CID again: this
 * device's own CID (a clone's identity), whatever the saved one was. */
#define VSOCK_STATE_TAG DEV_STATE_TAG('V', 'S', 'K', '1')
#define VSOCK_STATE_LEN 12u

static int vsock_save_state(void *ctx, vmm_virtio_dev *dev, void *buf, size_t cap, size_t *len)
{
	struct vsock *v = ctx;
	(void)dev;
	int r = dev_state_begin(buf, cap, len, VSOCK_STATE_LEN);
	if (r <= 0)
		return r;
	struct dsw w = { buf };
	dsw_u32(&w, VSOCK_STATE_TAG);
	dsw_u64(&w, v->guest_cid);
	return 0;
}

static int vsock_load_state(void *ctx, vmm_virtio_dev *dev, const void *buf, size_t len)
{
	struct vsock *v = ctx;
	(void)dev;
	struct dsr r = { buf, len, false };
	uint32_t tag = dsr_u32(&r);
	uint64_t cid = dsr_u64(&r);
	if (r.bad || r.left || tag != VSOCK_STATE_TAG)
		return vmm_err(-EINVAL, "virtio-vsock: not a virtio-vsock state record (%zu bytes)", len);
	if (cid < 3 || cid >= 0xffffffffull)
		return vmm_err(-EINVAL, "virtio-vsock: saved guest CID %llu out of range",
			       (unsigned long long)cid);
	if (v->active) {
		v->reset_event_owed = true;
		vsock_send_reset_event(v);
	}
	return 0;
}

static void vsock_destroy(void *ctx)
{
	struct vsock *v = ctx;
	/* Detached: the transport already dropped our watches with the device. */
	v->dev = NULL;
	vsock_free(v);
}

int vmm_virtio_vsock_create(vmm_virtio_device **out, const vmm_virtio_vsock_opts *opts)
{
	if (!out)
		return vmm_err(-EINVAL, "virtio-vsock: out is NULL");
	*out = NULL;
	vmm_virtio_vsock_opts o = VMM_VIRTIO_VSOCK_OPTS_INIT;
	if (!opts || vmm_opts_copy(&o, sizeof o, opts) < 0)
		return vmm_err(-EINVAL, "virtio-vsock: options missing or bad size");
	if (!o.uds_path)
		return vmm_err(-EINVAL, "virtio-vsock: uds_path is required");
	struct vsock *v;
	int r = vsock_new(&v, o.guest_cid, o.max_connections, o.uds_path);
	if (r < 0)
		return r;
	vmm_virtio_device_ops ops = { .size = sizeof ops };
	ops.name = "virtio-vsock";
	ops.device_id = VIRTIO_ID_VSOCK;
	ops.num_queues = 3;
	ops.queue_size_max = VSOCK_QUEUE_SIZE;
	ops.features = 0; /* stream sockets need no feature bit (virtio 1.2 5.10.3) */
	ops.config_size = sizeof(struct virtio_vsock_config);
	ops.config_read = vsock_config_read;
	ops.activate = vsock_activate;
	ops.notify = vsock_notify;
	ops.reset = vsock_reset;
	ops.destroy = vsock_destroy;
	ops.save_state = vsock_save_state;
	ops.load_state = vsock_load_state;
	r = vmm_virtio_device_create(out, &ops, v);
	if (r < 0) {
		vsock_free(v);
		return r;
	}
	return 0;
}
