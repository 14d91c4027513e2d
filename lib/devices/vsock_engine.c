/* virtio-vsock: the protocol engine (virtio 1.2, 5.10.6).
 *
 * Guest packets arrive on the TX queue and are handled in order (vsock_tx_packet);
 * everything the device sends goes into rx buffers: control packets are first recorded
 * as owed (per connection, or in the reset queue for connections already gone) and sent
 * by vsock_rx_pump as buffers allow, data is read from a host socket straight into an rx
 * buffer when the guest has credit (vsock_conn_event). When either the credit or the rx
 * buffers run out, the socket stops being watched for input, and is watched again when
 * the guest's credit update or rx notification arrives.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "vsock_internal.h"

static void vsock_fail(struct vsock *v, const char *why)
{
	v->broken = true;
	if (!v->dev)
		return;
	/* Keep the walker's reason after ours. */
	char msg[512];
	snprintf(msg, sizeof msg, "%s: %s", why, vmm_last_error());
	vmm_virtio_dev_fail(v->dev, msg);
}

/* ---- sending to the guest ---- */

/* Pops an rx buffer able to hold a header. Returns 1, or 0 when none is left (the rx
 * queue is then starved until the driver notifies it). */
static int rx_get(struct vsock *v, vmm_virtq_chain **out)
{
	if (!v->rxq || v->broken || v->rx_starved) {
		v->rx_starved = true;
		return 0;
	}
	/* Each round consumes one avail entry, so this ends within a queue's worth. */
	for (unsigned i = 0; i <= VMM_VIRTQ_MAX_SIZE; i++) {
		int r = vmm_virtq_pop(v->rxq, v->mem, v->rx_chain);
		if (r < 0) {
			vsock_fail(v, "rx queue broken");
			return 0;
		}
		if (r == 0) {
			/* Empty: make sure the driver will notify us, and catch buffers it
			 * added meanwhile. */
			if (vmm_virtq_set_notify(v->rxq, v->mem, true))
				continue;
			break;
		}
		if (v->rx_chain->in_bytes >= VSOCK_HDR_LEN) {
			*out = v->rx_chain;
			return 1;
		}
		/* No room for a header: hand it back unused. */
		v->stats.bad_rx_buffers++;
		vmm_virtq_push(v->rxq, v->mem, v->rx_chain->head, 0);
		v->rx_used = true;
	}
	v->rx_starved = true;
	return 0;
}

static void rx_put(struct vsock *v, vmm_virtq_chain *ch, const struct vsock_hdr *h)
{
	uint8_t raw[VSOCK_HDR_LEN];
	vsock_hdr_encode(h, raw);
	vmm_virtq_chain_write(ch, 0, raw, sizeof raw);
	vmm_virtq_push(v->rxq, v->mem, ch->head, VSOCK_HDR_LEN + h->len);
	v->rx_used = true;
	v->stats.rx_packets++;
	if (h->op == VIRTIO_VSOCK_OP_RST)
		v->stats.rst_sent++;
}

static void conn_hdr(const struct vsock_conn *c, uint16_t op, uint32_t flags, uint32_t len, struct vsock_hdr *h)
{
	h->src_cid = VSOCK_HOST_CID;
	h->dst_cid = c->v->guest_cid;
	h->src_port = c->host_port;
	h->dst_port = c->guest_port;
	h->len = len;
	h->type = VIRTIO_VSOCK_TYPE_STREAM;
	h->op = op;
	h->flags = flags;
	h->buf_alloc = VSOCK_BUF_ALLOC;
	h->fwd_cnt = c->fwd_cnt;
}

/* Every header carries fwd_cnt, so any packet is also a credit update. */
static void conn_put(struct vsock_conn *c, vmm_virtq_chain *ch, const struct vsock_hdr *h)
{
	rx_put(c->v, ch, h);
	c->fwd_cnt_sent = c->fwd_cnt;
	vsock_conn_owe_clear(c, VSOCK_OWE_CREDIT_UPDATE);
}

/* Credit the guest gives us; a guest claiming to have forwarded more than we sent
 * (in flight "negative") gets none rather than a wrapped-around huge value. */
static uint32_t conn_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
	if (in_flight > c->peer_buf_alloc)
		return 0;
	return c->peer_buf_alloc - in_flight;
}

static bool conn_can_read(const struct vsock_conn *c)
{
	return c->state == VSOCK_ESTABLISHED && !(c->owe & VSOCK_OWE_RESPONSE) && !c->host_eof &&
	       !c->guest_no_recv && !c->v->rx_starved && conn_credit(c) > 0;
}

static uint32_t conn_want(const struct vsock_conn *c)
{
	switch (c->state) {
	case VSOCK_CONNECTING:
		return VMM_LOOP_OUT;
	case VSOCK_HANDSHAKE:
		return VMM_LOOP_IN;
	case VSOCK_REQUESTED:
		return 0;
	case VSOCK_ESTABLISHED:
		break;
	}
	uint32_t w = 0;
	if (conn_can_read(c))
		w |= VMM_LOOP_IN;
	if (c->buf_len)
		w |= VMM_LOOP_OUT;
	return w;
}

/* Resets a connection: the guest hears RST (if it knows the connection), the host
 * socket is closed. Always returns false ("closed"). */
static bool conn_reset(struct vsock_conn *c)
{
	bool known = c->in_table && c->state != VSOCK_HANDSHAKE &&
		     !(c->state == VSOCK_REQUESTED && (c->owe & VSOCK_OWE_REQUEST));
	if (known)
		vsock_rst_push(c->v, VSOCK_HOST_CID, c->host_port, c->guest_port);
	vsock_conn_free(c);
	return false;
}

bool vsock_conn_update(struct vsock_conn *c)
{
	struct vsock *v = c->v;
	/* Out of credit with data possibly waiting: ask once per dry spell (a guest whose
	 * application is not reading will answer with the same zero credit). */
	if (c->state == VSOCK_ESTABLISHED && !c->host_eof && !c->guest_no_recv && conn_credit(c) == 0 &&
	    !c->credit_requested) {
		c->credit_requested = true;
		vsock_conn_owe(c, VSOCK_OWE_CREDIT_REQUEST);
	}
	uint32_t want = conn_want(c);
	if (c->parked) {
		if (want == c->parked_want)
			return true;
		c->parked = false;
	}
	if (!v->dev) {
		c->watched = want != 0;
		c->interest = want;
		return true;
	}
	int r = 0;
	if (!want) {
		if (c->watched)
			r = vmm_virtio_dev_unwatch(v->dev, c->fd);
		c->watched = false;
	} else if (!c->watched) {
		r = vmm_virtio_dev_watch(v->dev, c->fd, want, vsock_conn_event, c);
		c->watched = r == 0;
	} else if (want != c->interest) {
		r = vmm_virtio_dev_watch_modify(v->dev, c->fd, want);
	}
	if (r < 0)
		return conn_reset(c);
	c->interest = want;
	return true;
}

/* ---- guest -> host ---- */

static ssize_t send_iov(int fd, struct iovec *iov, int n)
{
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };
	ssize_t r;
	do
		r = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	return r;
}

static bool would_block(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK;
}

/* Consumes n written bytes of the buffer front; ours ("OK ...") do not count as
 * forwarded guest bytes. */
static void buf_written(struct vsock_conn *c, uint32_t n)
{
	uint32_t meta = n < c->buf_meta ? n : c->buf_meta;
	c->buf_meta -= meta;
	c->fwd_cnt += n - meta;
	vsock_buf_consume(c, n);
}

/* After bytes moved guest -> host: half-close, full close, or a credit update. */
static bool conn_progress(struct vsock_conn *c)
{
	if (c->state != VSOCK_ESTABLISHED)
		return vsock_conn_update(c);
	if (!c->buf_len && c->guest_no_send) {
		if (c->guest_no_recv)
			return conn_reset(c); /* both directions shut: the guest waits for our RST */
		if (!c->write_shut) {
			shutdown(c->fd, SHUT_WR);
			c->write_shut = true;
		}
	}
	/* The guest may be blocked on credit once it has seen less than half the buffer
	 * free; tell it about what we forwarded since. */
	uint32_t seen_in_flight = c->rx_cnt - c->fwd_cnt_sent;
	if (!c->guest_no_send && c->fwd_cnt != c->fwd_cnt_sent && seen_in_flight > VSOCK_BUF_ALLOC / 2)
		vsock_conn_owe(c, VSOCK_OWE_CREDIT_UPDATE);
	return vsock_conn_update(c);
}

static bool conn_flush(struct vsock_conn *c)
{
	while (c->buf_len) {
		struct iovec iov[2];
		int n = vsock_buf_iov(c, iov);
		ssize_t w = send_iov(c->fd, iov, n);
		if (w < 0) {
			if (would_block())
				break;
			return conn_reset(c);
		}
		if (w == 0)
			break;
		buf_written(c, (uint32_t)w);
	}
	return conn_progress(c);
}

/* Payload of a RW packet: straight from guest memory to the socket; what the socket
 * does not take goes into the buffer (bounded by the credit we gave). */
static bool conn_recv_rw(struct vsock_conn *c, const vmm_virtq_chain *ch, uint32_t len)
{
	struct vsock *v = c->v;
	if (len == 0)
		return true;
	if (len > VSOCK_BUF_ALLOC - c->buf_len)
		return conn_reset(c); /* beyond the credit we gave */
	c->rx_cnt += len;
	v->stats.tx_bytes += len;
	uint32_t done = 0;
	if (!c->buf_len) {
		uint64_t bytes;
		int n = vsock_chain_iov(ch, false, VSOCK_HDR_LEN, len, v->iov, &bytes);
		ssize_t w = send_iov(c->fd, v->iov, n);
		if (w < 0) {
			if (!would_block())
				return conn_reset(c);
			w = 0;
		}
		done = (uint32_t)w;
		c->fwd_cnt += done;
	}
	if (done < len && vsock_buf_append_chain(c, ch, VSOCK_HDR_LEN + (uint64_t)done, len - done) < 0)
		return conn_reset(c);
	return conn_progress(c);
}

/* ---- host -> guest ---- */

static bool conn_read(struct vsock_conn *c)
{
	struct vsock *v = c->v;
	for (unsigned i = 0; i < VSOCK_READ_BUDGET && conn_can_read(c); i++) {
		/* Peek first so an rx buffer is only taken when there is data (or EOF). */
		char b;
		ssize_t p = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (p < 0) {
			if (would_block() || errno == EINTR)
				break;
			return conn_reset(c);
		}
		if (p == 0) {
			c->host_eof = true;
			c->shutdown_flags |= VIRTIO_VSOCK_SHUTDOWN_SEND;
			vsock_conn_owe(c, VSOCK_OWE_SHUTDOWN);
			break;
		}
		vmm_virtq_chain *ch;
		if (!rx_get(v, &ch))
			break;
		uint64_t room = ch->in_bytes - VSOCK_HDR_LEN;
		uint64_t cap = conn_credit(c);
		if (cap > VSOCK_MAX_PAYLOAD)
			cap = VSOCK_MAX_PAYLOAD;
		if (cap > room)
			cap = room;
		struct vsock_hdr h;
		ssize_t n = 0;
		int err = 0;
		if (cap) {
			uint64_t bytes;
			int niov = vsock_chain_iov(ch, true, VSOCK_HDR_LEN, cap, v->iov, &bytes);
			do
				n = readv(c->fd, v->iov, niov);
			while (n < 0 && errno == EINTR);
			if (n < 0)
				err = errno;
		}
		if (n <= 0) {
			/* The buffer is ours now: it carries a credit update instead. */
			conn_hdr(c, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, 0, &h);
			conn_put(c, ch, &h);
			if (n < 0 && err != EAGAIN && err != EWOULDBLOCK)
				return conn_reset(c);
			if (cap)
				break;
			continue;
		}
		conn_hdr(c, VIRTIO_VSOCK_OP_RW, 0, (uint32_t)n, &h);
		conn_put(c, ch, &h);
		c->tx_cnt += (uint32_t)n;
		v->stats.rx_bytes += (uint64_t)n;
	}
	return vsock_conn_update(c);
}

/* ---- host-initiated connections: the "CONNECT <port>\n" handshake ---- */

static bool conn_read_line(struct vsock_conn *c)
{
	struct vsock *v = c->v;
	char tmp[VSOCK_LINE_MAX];
	size_t room = VSOCK_LINE_MAX - c->line_len;
	/* Peek, then consume exactly up to the newline: bytes after it are the client's
	 * first data for the guest and stay in the socket. */
	ssize_t n = recv(c->fd, tmp, room, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (would_block() || errno == EINTR))
		return true;
	if (n <= 0) {
		vsock_conn_free(c);
		return false;
	}
	const char *nl = memchr(tmp, '\n', (size_t)n);
	size_t take = nl ? (size_t)(nl - tmp) + 1 : (size_t)n;
	if (recv(c->fd, c->line + c->line_len, take, MSG_DONTWAIT) != (ssize_t)take) {
		vsock_conn_free(c);
		return false;
	}
	c->line_len += (uint32_t)take;
	if (!nl) {
		if (c->line_len >= VSOCK_LINE_MAX) {
			vsock_conn_free(c); /* no newline within the bound: not our protocol */
			return false;
		}
		return true;
	}
	uint32_t port, local;
	if (vsock_parse_connect(c->line, c->line_len - 1, &port) < 0 || vsock_alloc_port(v, port, &local) < 0) {
		vsock_conn_free(c);
		return false;
	}
	c->guest_port = port;
	c->host_port = local;
	c->state = VSOCK_REQUESTED;
	vsock_conn_insert(c);
	vsock_conn_owe(c, VSOCK_OWE_REQUEST);
	return vsock_conn_update(c);
}

void vsock_accept_fd(struct vsock *v, int fd)
{
	struct vsock_conn *c = vsock_conn_new(v, fd, VSOCK_HANDSHAKE);
	if (!c) {
		close(fd);
		return;
	}
	vsock_conn_update(c);
}

static void listen_watch(struct vsock *v, bool on)
{
	if (!v->dev || v->listen_fd < 0 || on == v->listen_watched)
		return;
	if (on)
		v->listen_watched = vmm_virtio_dev_watch(v->dev, v->listen_fd, VMM_LOOP_IN, vsock_listen_event, v) == 0;
	else {
		vmm_virtio_dev_unwatch(v->dev, v->listen_fd);
		v->listen_watched = false;
	}
}

void vsock_listen_event(void *ctx, int fd, uint32_t events)
{
	struct vsock *v = ctx;
	(void)events;
	for (unsigned i = 0; i < VSOCK_ACCEPT_BUDGET; i++) {
		int s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (s < 0) {
			if (would_block() || errno == EINTR || errno == ECONNABORTED)
				break;
			/* Out of fds or memory: the pending connection stays in the backlog and
			 * would wake us forever; stop listening until a connection closes. */
			listen_watch(v, false);
			v->listen_paused = true;
			break;
		}
		if (v->nconns >= v->max_conns) {
			close(s); /* the client sees EOF instead of waiting */
			continue;
		}
		vsock_accept_fd(v, s);
	}
	vsock_end_work(v);
}

/* ---- socket events ---- */

static bool conn_finish_connect(struct vsock_conn *c)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
		return conn_reset(c);
	c->state = VSOCK_ESTABLISHED;
	vsock_conn_owe(c, VSOCK_OWE_RESPONSE);
	return vsock_conn_update(c);
}

void vsock_conn_event(void *ctx, int fd, uint32_t events)
{
	struct vsock_conn *c = ctx;
	struct vsock *v = c->v;
	bool alive = true;
	(void)fd;
	switch (c->state) {
	case VSOCK_CONNECTING:
		alive = conn_finish_connect(c);
		break;
	case VSOCK_HANDSHAKE:
		alive = conn_read_line(c);
		break;
	case VSOCK_REQUESTED:
		break;
	case VSOCK_ESTABLISHED:
		if (c->buf_len && (events & (VMM_LOOP_OUT | VMM_LOOP_ERR)))
			alive = conn_flush(c);
		if (alive && (events & (VMM_LOOP_IN | VMM_LOOP_ERR)))
			alive = conn_read(c);
		break;
	}
	/* An error or hang-up stays reported while watched. If we cannot act on it now
	 * (no credit or rx buffers to read the rest with), stop watching until that
	 * changes, instead of being woken in a loop. */
	if (alive && (events & VMM_LOOP_ERR) && c->watched && !(c->interest & VMM_LOOP_IN) &&
	    c->state != VSOCK_CONNECTING) {
		if (v->dev)
			vmm_virtio_dev_unwatch(v->dev, c->fd);
		c->watched = false;
		c->parked = true;
		c->parked_want = conn_want(c);
	}
	vsock_end_work(v);
}

/* ---- guest packets ---- */

static void reply_rst(struct vsock *v, const struct vsock_hdr *h)
{
	if (h->op == VIRTIO_VSOCK_OP_RST)
		return; /* never answer a reset with a reset */
	vsock_rst_push(v, h->dst_cid, h->dst_port, h->src_port);
}

static void guest_request(struct vsock *v, struct vsock_conn *c, const struct vsock_hdr *h)
{
	if (c) {
		/* A second REQUEST for a live connection: the guest lost track; reset it. */
		conn_reset(c);
		return;
	}
	if (v->nconns >= v->max_conns || !v->be.connect) {
		reply_rst(v, h);
		return;
	}
	bool pending = false;
	int fd = v->be.connect(v->be.ctx, h->dst_port, &pending);
	if (fd < 0) {
		reply_rst(v, h);
		return;
	}
	c = vsock_conn_new(v, fd, pending ? VSOCK_CONNECTING : VSOCK_ESTABLISHED);
	if (!c) {
		close(fd);
		reply_rst(v, h);
		return;
	}
	c->guest_port = h->src_port;
	c->host_port = h->dst_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	vsock_conn_insert(c);
	if (!pending)
		vsock_conn_owe(c, VSOCK_OWE_RESPONSE);
	vsock_conn_update(c);
}

static void guest_response(struct vsock_conn *c)
{
	if (c->state != VSOCK_REQUESTED || (c->owe & VSOCK_OWE_REQUEST)) {
		conn_reset(c);
		return;
	}
	char ok[24];
	int n = snprintf(ok, sizeof ok, "OK %u\n", c->host_port);
	c->state = VSOCK_ESTABLISHED;
	if (vsock_buf_append(c, ok, (uint32_t)n) < 0) {
		conn_reset(c);
		return;
	}
	c->buf_meta = (uint32_t)n;
	conn_flush(c);
}

void vsock_tx_packet(struct vsock *v, const vmm_virtq_chain *ch)
{
	uint8_t raw[VSOCK_HDR_LEN];
	v->stats.tx_packets++;
	/* The header is read once into our copy; only that copy is checked and used. */
	if (ch->out_bytes < VSOCK_HDR_LEN || vmm_virtq_chain_read(ch, 0, raw, sizeof raw) != sizeof raw) {
		v->stats.dropped++;
		return;
	}
	struct vsock_hdr h;
	vsock_hdr_decode(raw, &h);
	const char *why;
	switch (vsock_hdr_check(&h, v->guest_cid, ch->out_bytes - VSOCK_HDR_LEN, &why)) {
	case VSOCK_PKT_OK:
		break;
	case VSOCK_PKT_DROP:
		v->stats.dropped++;
		return;
	case VSOCK_PKT_RST: {
		/* A malformed packet for a live connection ends that connection. */
		struct vsock_conn *bad = vsock_conn_find(v, h.src_port, h.dst_port);
		if (bad && h.dst_cid == VSOCK_HOST_CID)
			conn_reset(bad);
		else
			reply_rst(v, &h);
		return;
	}
	}

	struct vsock_conn *c = vsock_conn_find(v, h.src_port, h.dst_port);
	if (c && h.op != VIRTIO_VSOCK_OP_REQUEST) {
		c->peer_buf_alloc = h.buf_alloc;
		c->peer_fwd_cnt = h.fwd_cnt;
		if (conn_credit(c) > 0)
			c->credit_requested = false;
	}
	switch (h.op) {
	case VIRTIO_VSOCK_OP_REQUEST:
		guest_request(v, c, &h);
		break;
	case VIRTIO_VSOCK_OP_RESPONSE:
		if (c)
			guest_response(c);
		else
			reply_rst(v, &h);
		break;
	case VIRTIO_VSOCK_OP_RST:
		if (c)
			vsock_conn_free(c);
		break;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		if (!c) {
			reply_rst(v, &h);
		} else if (c->state != VSOCK_ESTABLISHED) {
			conn_reset(c);
		} else {
			if (h.flags & VIRTIO_VSOCK_SHUTDOWN_RCV)
				c->guest_no_recv = true;
			if (h.flags & VIRTIO_VSOCK_SHUTDOWN_SEND)
				c->guest_no_send = true;
			conn_progress(c);
		}
		break;
	case VIRTIO_VSOCK_OP_RW:
		if (!c)
			reply_rst(v, &h);
		else if (c->state != VSOCK_ESTABLISHED || c->guest_no_send || (c->owe & VSOCK_OWE_RESPONSE))
			conn_reset(c);
		else
			conn_recv_rw(c, ch, h.len);
		break;
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
		if (c)
			vsock_conn_update(c);
		else
			reply_rst(v, &h);
		break;
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		if (c) {
			vsock_conn_owe(c, VSOCK_OWE_CREDIT_UPDATE);
			vsock_conn_update(c);
		} else {
			reply_rst(v, &h);
		}
		break;
	}
}

bool vsock_tx_process(struct vsock *v)
{
	if (!v->txq || v->broken)
		return false;
	for (unsigned n = 0; n < VSOCK_TX_BUDGET; n++) {
		int r = vmm_virtq_pop(v->txq, v->mem, v->tx_chain);
		if (r < 0) {
			vsock_fail(v, "tx queue broken");
			return false;
		}
		if (r == 0) {
			if (vmm_virtq_set_notify(v->txq, v->mem, true))
				continue;
			return false;
		}
		vsock_tx_packet(v, v->tx_chain);
		vmm_virtq_push(v->txq, v->mem, v->tx_chain->head, 0);
		v->tx_used = true;
	}
	return true;
}

/* ---- owed packets ---- */

static uint16_t owe_op(uint32_t bit)
{
	switch (bit) {
	case VSOCK_OWE_REQUEST:
		return VIRTIO_VSOCK_OP_REQUEST;
	case VSOCK_OWE_RESPONSE:
		return VIRTIO_VSOCK_OP_RESPONSE;
	case VSOCK_OWE_SHUTDOWN:
		return VIRTIO_VSOCK_OP_SHUTDOWN;
	case VSOCK_OWE_CREDIT_UPDATE:
		return VIRTIO_VSOCK_OP_CREDIT_UPDATE;
	default:
		return VIRTIO_VSOCK_OP_CREDIT_REQUEST;
	}
}

void vsock_rx_pump(struct vsock *v)
{
	vmm_virtq_chain *ch;
	while (v->rst_len) {
		if (!rx_get(v, &ch))
			return;
		const struct vsock_rst *r = &v->rst[v->rst_head];
		struct vsock_hdr h = {
			.src_cid = r->src_cid, .dst_cid = v->guest_cid,
			.src_port = r->src_port, .dst_port = r->dst_port,
			.type = VIRTIO_VSOCK_TYPE_STREAM, .op = VIRTIO_VSOCK_OP_RST,
		};
		rx_put(v, ch, &h);
		v->rst_head = (v->rst_head + 1) % VSOCK_RST_QUEUE;
		v->rst_len--;
	}
	while (v->owe_head) {
		struct vsock_conn *c = v->owe_head;
		uint32_t bit = c->owe & -c->owe; /* lowest first: REQUEST/RESPONSE lead */
		if (!rx_get(v, &ch))
			return;
		struct vsock_hdr h;
		conn_hdr(c, owe_op(bit), bit == VSOCK_OWE_SHUTDOWN ? c->shutdown_flags : 0, 0, &h);
		vsock_conn_owe_clear(c, bit);
		conn_put(c, ch, &h);
		/* A RESPONSE lets the connection read; the update may reset it (and it
		 * leaves the owe list then). */
		vsock_conn_update(c);
	}
}

void vsock_rx_kick(struct vsock *v)
{
	bool was_starved = v->rx_starved;
	v->rx_starved = false;
	vsock_rx_pump(v);
	if (!was_starved || v->rx_starved)
		return;
	/* Buffers are back: resume the sockets that stopped for lack of them. */
	for (struct vsock_conn *c = v->all, *next; c; c = next) {
		next = c->next;
		vsock_conn_update(c);
	}
}

void vsock_end_work(struct vsock *v)
{
	vsock_rx_pump(v);
	if (v->listen_paused && v->nconns < v->max_conns) {
		v->listen_paused = false;
		listen_watch(v, true);
	}
	if (v->dev && v->rx_used)
		vmm_virtio_dev_interrupt(v->dev, 0);
	if (v->dev && v->tx_used)
		vmm_virtio_dev_interrupt(v->dev, 1);
	v->rx_used = v->tx_used = false;
}

void vsock_close_all(struct vsock *v)
{
	while (v->all)
		vsock_conn_free(v->all);
	v->rst_head = v->rst_len = 0;
	v->rx_starved = false;
}

void vsock_listen_set(struct vsock *v, bool on)
{
	v->listen_paused = false;
	listen_watch(v, on);
}
