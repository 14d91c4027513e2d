/* virtio-console (device id 3), single port: receiveq 0 (host -> guest) and transmitq 1
 * (guest -> host), virtio 1.2 §5.3.
 *
 * Input for the guest collects in a 64 KiB ring (from the callback API, or read from the
 * input fd / pty) and is copied into the guest's receive buffers as they come; when the
 * ring is full the input fd is no longer watched, so a guest that reads nothing stops
 * the reading instead of growing host memory. Output goes to the callback, or is written
 * to the output fd without blocking; what the fd does not take waits in a second 64 KiB
 * ring, and what does not fit there is dropped (a stalled terminal must not stall the
 * guest). Everything runs on the loop thread under the device lock, except
 * vmm_virtio_console_input, which takes the lock itself. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>

#include "console_internal.h"
#include "dev_state.h"

#define CON_RX 0
#define CON_TX 1
#define CON_QUEUE_SIZE 128u
#define CON_READ_CHUNK 4096u
#define CON_TX_BYTE_BUDGET (1u << 20) /* per notify, then reschedule */

struct con {
	vmm_console_backend backend;
	vmm_console_output_fn output;
	void *output_ctx;
	int rfd, wfd;           /* the device's own fds, -1 if none */
	int pty_slave;          /* held open so the master never reads a hang-up */
	con_fd_kind rkind, wkind;
	bool in_watched, out_watched;
	bool in_closed, out_closed; /* EOF / error: stop using the fd */
	bool active;            /* between activate and reset */
	vmm_virtio_dev *dev;
	/* The thread inside output_fn (0 if none): it already holds the device lock, so
	 * vmm_virtio_console_input called from the callback must not take it again. */
	_Atomic unsigned long output_thread;
	pthread_mutex_t in_lock; /* `in` before attach, when there is no device lock */
	con_ring in, out;
	char pty_path[64];
	struct virtio_console_config cfg;
	vmm_virtq_chain chain;
	uint8_t copy[CON_READ_CHUNK];
};

static void con_config_read(void *ctx, uint32_t offset, void *data, uint32_t len)
{
	struct con *c = ctx;
	memcpy(data, (const uint8_t *)&c->cfg + offset, len);
}

/* ---- input: fd -> ring -> receive buffers ---- */

static void con_in_ready(void *ctx, int fd, uint32_t events);

static void in_watch(struct con *c, bool on)
{
	if (on == c->in_watched || !c->dev || c->rfd < 0 || (on && c->in_closed))
		return;
	if (on ? vmm_virtio_dev_watch(c->dev, c->rfd, VMM_LOOP_IN, con_in_ready, c) == 0
	       : vmm_virtio_dev_unwatch(c->dev, c->rfd) == 0)
		c->in_watched = on;
}

/* Copies pending input into the guest's receive buffers. */
static void con_rx(struct con *c, vmm_virtio_dev *dev)
{
	vmm_virtq *q = vmm_virtio_dev_queue(dev, CON_RX);
	vmm_mem *mem = vmm_virtio_dev_mem(dev);
	uint32_t budget = vmm_virtq_size(q);
	bool pushed = false;
	pthread_mutex_lock(&c->in_lock);
	while (c->in.len > 0) {
		if (budget-- == 0) {
			vmm_virtio_dev_reschedule(dev, CON_RX);
			break;
		}
		int r = vmm_virtq_pop(q, mem, &c->chain);
		if (r < 0) {
			vmm_virtio_dev_fail(dev, vmm_last_error());
			break;
		}
		if (r == 0)
			break; /* no buffers: the driver's next notify brings us back */
		uint64_t room = c->chain.in_bytes, done = 0;
		while (done < room && c->in.len > 0) {
			size_t run;
			const uint8_t *p = con_ring_peek(&c->in, &run);
			if (run > room - done)
				run = (size_t)(room - done);
			vmm_virtq_chain_write(&c->chain, done, p, run);
			con_ring_drop(&c->in, run);
			done += run;
		}
		if (vmm_virtq_push(q, mem, c->chain.head, (uint32_t)done) != 0) {
			vmm_virtio_dev_fail(dev, vmm_last_error());
			break;
		}
		pushed = true;
	}
	bool room_left = c->in.len < CON_RING_SIZE;
	pthread_mutex_unlock(&c->in_lock);
	if (pushed)
		vmm_virtio_dev_interrupt(dev, CON_RX);
	if (room_left)
		in_watch(c, true);
}

static void con_in_ready(void *ctx, int fd, uint32_t events)
{
	struct con *c = ctx;
	(void)fd;
	(void)events;
	pthread_mutex_lock(&c->in_lock);
	size_t room = CON_RING_SIZE - c->in.len;
	pthread_mutex_unlock(&c->in_lock);
	if (room == 0) {
		in_watch(c, false); /* con_rx watches again once the guest took some */
		return;
	}
	ssize_t n = con_fd_read(c->rfd, c->rkind, c->copy, room < sizeof c->copy ? room : sizeof c->copy);
	if (n > 0) {
		pthread_mutex_lock(&c->in_lock);
		con_ring_put(&c->in, c->copy, (size_t)n);
		pthread_mutex_unlock(&c->in_lock);
		if (c->dev)
			con_rx(c, c->dev);
	} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		/* EOF or a dead fd: level-triggered, it would report forever. */
		in_watch(c, false);
		c->in_closed = true;
	}
}

/* ---- output: transmit buffers -> callback or fd ---- */

static void con_out_ready(void *ctx, int fd, uint32_t events);

static void out_watch(struct con *c, bool on)
{
	if (on == c->out_watched || !c->dev || c->wfd < 0)
		return;
	if (on ? vmm_virtio_dev_watch(c->dev, c->wfd, VMM_LOOP_OUT, con_out_ready, c) == 0
	       : vmm_virtio_dev_unwatch(c->dev, c->wfd) == 0)
		c->out_watched = on;
}

static void out_dead(struct con *c)
{
	c->out_closed = true;
	c->out.len = c->out.head = 0;
	out_watch(c, false);
}

/* Writes what the fd takes; returns the bytes written (0 if it would block). */
static size_t out_try(struct con *c, const uint8_t *p, size_t len)
{
	ssize_t n = con_fd_write(c->wfd, c->wkind, p, len);
	if (n >= 0)
		return (size_t)n;
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		out_dead(c);
	return 0;
}

static void out_flush(struct con *c)
{
	while (c->out.len > 0 && !c->out_closed) {
		size_t run;
		const uint8_t *p = con_ring_peek(&c->out, &run);
		size_t n = out_try(c, p, run);
		if (n == 0)
			break;
		con_ring_drop(&c->out, n);
	}
	out_watch(c, c->out.len > 0 && !c->out_closed);
}

static void con_out_ready(void *ctx, int fd, uint32_t events)
{
	(void)fd;
	(void)events;
	out_flush(ctx);
}

/* One readable segment of guest output. */
static void emit(struct con *c, const uint8_t *p, size_t len)
{
	if (c->backend == VMM_CONSOLE_CALLBACK) {
		/* Copied first: the callback must not see guest memory change under it. */
		while (len > 0) {
			size_t n = len < sizeof c->copy ? len : sizeof c->copy;
			memcpy(c->copy, p, n);
			atomic_store(&c->output_thread, (unsigned long)pthread_self());
			c->output(c->output_ctx, c->copy, n);
			atomic_store(&c->output_thread, 0ul);
			p += n;
			len -= n;
		}
		return;
	}
	if (c->wfd < 0 || c->out_closed)
		return;
	if (c->out.len == 0) { /* nothing queued: write straight from guest memory */
		size_t n = out_try(c, p, len);
		p += n;
		len -= n;
		if (c->out_closed)
			return;
	}
	con_ring_put(&c->out, p, len); /* the excess is dropped */
	out_watch(c, c->out.len > 0);
}

static void con_tx(struct con *c, vmm_virtio_dev *dev)
{
	vmm_virtq *q = vmm_virtio_dev_queue(dev, CON_TX);
	vmm_mem *mem = vmm_virtio_dev_mem(dev);
	uint32_t budget = vmm_virtq_size(q);
	uint64_t bytes = 0;
	bool pushed = false;
	for (;;) {
		if (budget-- == 0 || bytes >= CON_TX_BYTE_BUDGET) {
			vmm_virtio_dev_reschedule(dev, CON_TX);
			break;
		}
		int r = vmm_virtq_pop(q, mem, &c->chain);
		if (r < 0) {
			vmm_virtio_dev_fail(dev, vmm_last_error());
			break;
		}
		if (r == 0)
			break;
		for (uint32_t i = 0; i < c->chain.n_out && i < VMM_VIRTQ_MAX_SEGS; i++)
			emit(c, c->chain.segs[i].host, c->chain.segs[i].len);
		bytes += c->chain.out_bytes;
		if (vmm_virtq_push(q, mem, c->chain.head, 0) != 0) {
			vmm_virtio_dev_fail(dev, vmm_last_error());
			break;
		}
		pushed = true;
	}
	if (pushed)
		vmm_virtio_dev_interrupt(dev, CON_TX);
}

/* ---- device ops ---- */

static int con_activate(void *ctx, vmm_virtio_dev *dev, uint64_t features)
{
	struct con *c = ctx;
	(void)features;
	c->dev = dev;
	c->active = true;
	in_watch(c, c->in.len < CON_RING_SIZE);
	out_watch(c, c->out.len > 0 && !c->out_closed);
	if (c->in.len > 0) /* input that arrived before the driver was ready */
		vmm_virtio_dev_reschedule(dev, CON_RX);
	return 0;
}

static void con_notify(void *ctx, vmm_virtio_dev *dev, uint16_t queue)
{
	if (queue == CON_RX)
		con_rx(ctx, dev);
	else if (queue == CON_TX)
		con_tx(ctx, dev);
}

static void con_reset(void *ctx, vmm_virtio_dev *dev)
{
	struct con *c = ctx;
	(void)dev;
	/* Watches stay registered (the transport parks them until the next activation);
	 * host-side input and output stay queued for the next driver. */
	c->active = false;
}

/* State: the window size the driver read, input the guest has not taken yet, and
 * output the fd has not taken yet (console chains never stay in flight: each is
 * pushed before the callback returns). A load replaces the pending input and queues
 * the saved output after what this device still has to write. */
#define CON_STATE_TAG DEV_STATE_TAG('C', 'O', 'N', '1')
#define CON_STATE_HDR 16u

static void ring_copy_out(const con_ring *ring, struct dsw *w)
{
	for (size_t i = 0; i < ring->len; i++)
		dsw_bytes(w, &ring->data[(ring->head + i) % CON_RING_SIZE], 1);
}

static int con_save_state(void *ctx, vmm_virtio_dev *dev, void *buf, size_t cap, size_t *len)
{
	struct con *c = ctx;
	(void)dev;
	pthread_mutex_lock(&c->in_lock);
	int r = dev_state_begin(buf, cap, len, CON_STATE_HDR + c->in.len + c->out.len);
	if (r > 0) {
		struct dsw w = { buf };
		dsw_u32(&w, CON_STATE_TAG);
		dsw_u16(&w, le16toh(c->cfg.cols));
		dsw_u16(&w, le16toh(c->cfg.rows));
		dsw_u32(&w, (uint32_t)c->in.len);
		dsw_u32(&w, (uint32_t)c->out.len);
		ring_copy_out(&c->in, &w);
		ring_copy_out(&c->out, &w);
		r = 0;
	}
	pthread_mutex_unlock(&c->in_lock);
	return r;
}

static int con_load_state(void *ctx, vmm_virtio_dev *dev, const void *buf, size_t len)
{
	struct con *c = ctx;
	struct dsr r = { buf, len, false };
	uint32_t tag = dsr_u32(&r);
	uint16_t cols = dsr_u16(&r), rows = dsr_u16(&r);
	uint32_t in_len = dsr_u32(&r), out_len = dsr_u32(&r);
	if (r.bad || tag != CON_STATE_TAG)
		return vmm_err(-EINVAL, "virtio-console: not a virtio-console state record (%zu bytes)", len);
	if (in_len > CON_RING_SIZE || out_len > CON_RING_SIZE || r.left != (uint64_t)in_len + out_len)
		return vmm_err(-EINVAL, "virtio-console: state record of %zu bytes announces %u + %u bytes of "
			       "input and output (at most %u each)", len, in_len, out_len, CON_RING_SIZE);
	const uint8_t *in = dsr_take(&r, in_len), *out = dsr_take(&r, out_len);
	/* The size the driver read; a different one now would only confuse it. */
	c->cfg.cols = htole16(cols);
	c->cfg.rows = htole16(rows);
	/* The input the guest has yet to read is the saved one: anything queued on this
	 * device before the load (left over from a run a reset undoes) goes. */
	pthread_mutex_lock(&c->in_lock);
	c->in.head = c->in.len = 0;
	con_ring_put(&c->in, in, in_len);
	pthread_mutex_unlock(&c->in_lock);
	if (out_len)
		emit(c, out, out_len);
	if (c->in.len > 0 && c->active)
		vmm_virtio_dev_reschedule(dev, CON_RX);
	return 0;
}

static void con_destroy(void *ctx)
{
	struct con *c = ctx;
	if (!c)
		return;
	if (c->rfd >= 0)
		close(c->rfd);
	if (c->wfd >= 0)
		close(c->wfd);
	if (c->pty_slave >= 0)
		close(c->pty_slave);
	pthread_mutex_destroy(&c->in_lock);
	free(c);
}

static int open_backend(struct con *c, const vmm_virtio_console_opts *o)
{
	int r;
	switch (o->backend) {
	case VMM_CONSOLE_FD:
		if (o->in_fd >= 0 && (c->rfd = con_fd_open_in(o->in_fd, &c->rkind)) < 0) {
			r = c->rfd;
			c->rfd = -1;
			return vmm_err(r, "virtio-console: in_fd %d: %s", o->in_fd, vmm_strerror(r));
		}
		if (o->out_fd >= 0 && (c->wfd = con_fd_open_out(o->out_fd, &c->wkind)) < 0) {
			r = c->wfd;
			c->wfd = -1;
			return vmm_err(r, "virtio-console: out_fd %d: %s", o->out_fd, vmm_strerror(r));
		}
		return 0;
	case VMM_CONSOLE_PTY:
		if ((r = con_pty_open(&c->rfd, &c->pty_slave, c->pty_path, sizeof c->pty_path)) != 0)
			return r;
		c->rkind = c->wkind = CON_FD_PLAIN; /* the master is non-blocking */
		if ((c->wfd = fcntl(c->rfd, F_DUPFD_CLOEXEC, 0)) < 0)
			return vmm_err(-errno, "virtio-console: dup of the pty master: %s", strerror(errno));
		return 0;
	case VMM_CONSOLE_CALLBACK:
		if (!o->output)
			return vmm_err(-EINVAL, "virtio-console: the callback back end needs an output function");
		c->output = o->output;
		c->output_ctx = o->ctx;
		return 0;
	}
	return vmm_err(-EINVAL, "virtio-console: unknown back end %d", (int)o->backend);
}

int vmm_virtio_console_create(vmm_virtio_device **out, const vmm_virtio_console_opts *opts)
{
	if (!out || !opts)
		return vmm_err(-EINVAL, "vmm_virtio_console_create: NULL argument");
	*out = NULL;
	vmm_virtio_console_opts o = VMM_VIRTIO_CONSOLE_OPTS_INIT;
	int r = vmm_opts_copy(&o, sizeof o, opts);
	if (r != 0)
		return r;
	struct con *c = calloc(1, sizeof *c);
	if (!c)
		return vmm_err(-ENOMEM, "virtio-console: out of memory");
	c->rfd = c->wfd = c->pty_slave = -1;
	c->backend = o.backend;
	atomic_init(&c->output_thread, 0ul);
	pthread_mutex_init(&c->in_lock, NULL);
	if ((r = open_backend(c, &o)) != 0) {
		con_destroy(c);
		return r;
	}

	vmm_virtio_device_ops ops = { .size = sizeof ops };
	ops.name = "virtio-console";
	ops.device_id = VIRTIO_ID_CONSOLE;
	ops.num_queues = 2;
	ops.queue_size_max = CON_QUEUE_SIZE;
	if (o.cols || o.rows) {
		ops.features |= 1ull << VIRTIO_CONSOLE_F_SIZE;
		c->cfg.cols = htole16(o.cols);
		c->cfg.rows = htole16(o.rows);
	}
	c->cfg.max_nr_ports = htole32(1);
	ops.config_size = sizeof c->cfg;
	ops.config_read = con_config_read;
	ops.activate = con_activate;
	ops.notify = con_notify;
	ops.reset = con_reset;
	ops.destroy = con_destroy;
	ops.save_state = con_save_state;
	ops.load_state = con_load_state;
	if ((r = vmm_virtio_device_create(out, &ops, c)) != 0)
		con_destroy(c);
	return r;
}

static struct con *con_of(const vmm_virtio_device *dev)
{
	const vmm_virtio_device_ops *ops = dev ? vmm_virtio_device_get_ops(dev) : NULL;
	return ops && ops->destroy == con_destroy ? vmm_virtio_device_ctx(dev) : NULL;
}

long vmm_virtio_console_input(vmm_virtio_device *dev, const void *data, size_t len)
{
	struct con *c = con_of(dev);
	if (!c || c->backend != VMM_CONSOLE_CALLBACK)
		return vmm_err(-EINVAL, "vmm_virtio_console_input: not a virtio-console with the callback back end");
	if (!data && len)
		return vmm_err(-EINVAL, "vmm_virtio_console_input: NULL data");
	vmm_virtio_dev *tdev = vmm_virtio_device_dev(dev);
	/* From inside output_fn this thread already holds the device lock. */
	bool relock = tdev && atomic_load(&c->output_thread) != (unsigned long)pthread_self();
	if (relock)
		vmm_virtio_dev_lock(tdev);
	pthread_mutex_lock(&c->in_lock);
	size_t n = con_ring_put(&c->in, data, len);
	pthread_mutex_unlock(&c->in_lock);
	/* The loop delivers it (reschedule wakes it): this thread may be anything. */
	if (tdev && n > 0 && c->active)
		vmm_virtio_dev_reschedule(tdev, CON_RX);
	if (relock)
		vmm_virtio_dev_unlock(tdev);
	return (long)n;
}

const char *vmm_virtio_console_pty_path(const vmm_virtio_device *dev)
{
	struct con *c = con_of(dev);
	return c && c->backend == VMM_CONSOLE_PTY ? c->pty_path : NULL;
}
