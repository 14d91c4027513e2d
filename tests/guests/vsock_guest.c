/* A minimal virtio-vsock driver and stream client/server for tests/kvm/test_virtio_vsock.c.
 *
 * The device is at 0xd0000000 (the harness's first virtio slot). Packets are a 44-byte
 * header plus payload; rx buffers hold a header and up to 64 KiB. The guest runs at
 * CPL 3, where every notify is an expensive exit, so it queues many packets per notify
 * and polls the used rings.
 *
 * Modes (vsock_test.h): SEND streams MiB of data to host port 1234 and prints
 * "fnv=<hex>"; RECV accepts a host connection on port 5000 and prints the byte count and
 * FNV of what arrived; CREDIT advertises a 4 KiB buffer and checks the device never
 * exceeds it; HOSTILE sends malformed packets, overruns the device's credit, and then
 * still completes a valid transfer. The exit code is 0 or the number of the failed
 * check. */
#include "rt/virtio.h"
#include "vsock_test.h"

#define VSOCK_BASE 0xd0000000ull
#define VSOCK_ID 19
#define QSZ 64

#define RING_AREA 0x1000000ull          /* three rings, 64 KiB each */
#define RX_AREA 0x1100000ull
#define RX_BUFS 32
#define RX_STRIDE 0x11000ull
#define RX_BUF_LEN (44u + 65536u)
#define TX_PAY_AREA 0x1400000ull        /* TX_SLOTS x 64 KiB */
#define TX_HDR_AREA 0x1500000ull        /* TX_SLOTS x 64 bytes */
#define TX_SLOTS 16
#define MAX_PAYLOAD 65536u
#define SCRATCH 0x1600000ull

#define HOST_CID 2u
#define OP_REQUEST 1
#define OP_RESPONSE 2
#define OP_RST 3
#define OP_SHUTDOWN 4
#define OP_RW 5
#define OP_CREDIT_UPDATE 6
#define OP_CREDIT_REQUEST 7

/* Polling budget: about a few seconds of pause loops, then the guest gives up (the
 * host's watchdog is the backstop). */
#define SPIN_LIMIT 400000000ull

struct hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

_Static_assert(sizeof(struct hdr) == 44, "vsock header");

struct pkt {
	struct hdr h;
	const uint8_t *data;
	int buf;      /* rx buffer index, for recycling */
};

static struct vio_dev dev;
static uint64_t cid;
static int rx_buf_of_head[QSZ];
static int rx_pending_recycle[RX_BUFS];
static int n_recycle;
static int tx_slot_of_head[QSZ];
static int tx_slot_busy[TX_SLOTS];
static int tx_queued;                   /* added since the last notify */

static uint8_t *rx_buf(int i) { return (uint8_t *)(RX_AREA + (uint64_t)i * RX_STRIDE); }
static uint8_t *tx_payload(int s) { return (uint8_t *)(TX_PAY_AREA + (uint64_t)s * MAX_PAYLOAD); }
static struct hdr *tx_hdr(int s) { return (struct hdr *)(TX_HDR_AREA + (uint64_t)s * 64); }

static void rx_post(int i)
{
	struct vio_buf b = { rx_buf(i), RX_BUF_LEN, 1 };
	int head = vio_add(&dev, 0, &b, 1);
	if (head >= 0)
		rx_buf_of_head[head] = i;
}

/* Gives consumed rx buffers back, with one notify. */
static void rx_flush(void)
{
	if (!n_recycle)
		return;
	for (int i = 0; i < n_recycle; i++)
		rx_post(rx_pending_recycle[i]);
	n_recycle = 0;
	vio_notify(&dev, 0);
}

static void rx_done(struct pkt *p)
{
	rx_pending_recycle[n_recycle++] = p->buf;
}

/* One received packet, if any. */
static int rx_poll(struct pkt *p)
{
	uint32_t len;
	int head = vio_wait_used(&dev, 0, &len, 1);
	if (head < 0)
		return 0;
	int b = rx_buf_of_head[head];
	memcpy(&p->h, rx_buf(b), sizeof p->h);
	p->data = rx_buf(b) + 44;
	p->buf = b;
	if (len < 44 || p->h.len > len - 44)
		p->h.op = 0xffff; /* the device wrote less than it claims */
	return 1;
}

static void tx_reclaim(void)
{
	uint32_t len;
	int head;
	while ((head = vio_wait_used(&dev, 1, &len, 1)) >= 0)
		tx_slot_busy[tx_slot_of_head[head]] = 0;
}

static int tx_free_slot(void)
{
	for (int s = 0; s < TX_SLOTS; s++)
		if (!tx_slot_busy[s])
			return s;
	return -1;
}

static void tx_kick(void)
{
	if (tx_queued) {
		vio_notify(&dev, 1);
		tx_queued = 0;
	}
}

/* Queues header + (payload already in the slot's buffer) from slot s. */
static void tx_queue_slot(int s, const struct hdr *h, uint32_t hdr_len)
{
	memcpy(tx_hdr(s), h, sizeof *h);
	struct vio_buf b[2] = { { tx_hdr(s), hdr_len, 0 }, { tx_payload(s), h->len, 0 } };
	int head = vio_add(&dev, 1, b, h->len ? 2 : 1);
	if (head < 0)
		exit(90);
	tx_slot_of_head[head] = s;
	tx_slot_busy[s] = 1;
	tx_queued++;
}

static int tx_wait_slot(void)
{
	for (uint64_t spin = 0; spin < SPIN_LIMIT; spin++) {
		tx_reclaim();
		int s = tx_free_slot();
		if (s >= 0)
			return s;
		tx_kick();
		cpu_relax();
	}
	exit(91);
}

static void send_ctrl(uint32_t src_port, uint32_t dst_port, uint16_t op, uint32_t flags, uint32_t buf_alloc,
		      uint32_t fwd_cnt)
{
	struct hdr h = { cid, HOST_CID, src_port, dst_port, 0, 1, op, flags, buf_alloc, fwd_cnt };
	tx_queue_slot(tx_wait_slot(), &h, sizeof h);
	tx_kick();
}

/* Waits for the next packet (recycling it is the caller's job). Returns 0 on timeout. */
static int rx_wait(struct pkt *p, uint64_t spins)
{
	for (uint64_t i = 0; i < spins; i++) {
		if (rx_poll(p))
			return 1;
		rx_flush();
		tx_reclaim();
		cpu_relax();
	}
	return 0;
}

static int setup(void)
{
	if (vio_init(&dev, VSOCK_BASE, VSOCK_ID, 0) < 0)
		return -1;
	for (int q = 0; q < 3; q++)
		if (vio_queue_setup(&dev, q, QSZ, (void *)(RING_AREA + (uint64_t)q * 0x10000)) < 0)
			return -1;
	cid = vio_config_read(&dev, 0, 4) | (uint64_t)vio_config_read(&dev, 4, 4) << 32;
	vio_driver_ok(&dev);
	for (int i = 0; i < RX_BUFS; i++)
		rx_post(i);
	vio_notify(&dev, 0);
	return cid == VT_GUEST_CID ? 0 : -1;
}

/* ---- a connection ---- */

struct conn {
	uint32_t lport, rport;
	uint32_t buf_alloc;           /* ours */
	uint32_t fwd_cnt, fwd_sent;   /* ours: consumed, and last advertised */
	uint32_t rx_total;
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	int peer_shut, reset;
	uint32_t credit_requests;
};

static uint32_t peer_credit(const struct conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
	return in_flight > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static int ours(const struct conn *c, const struct pkt *p)
{
	return p->h.src_cid == HOST_CID && p->h.dst_cid == cid && p->h.dst_port == c->lport &&
	       p->h.src_port == c->rport;
}

/* Applies a packet for c: credit, shutdown, reset; returns the payload length for RW. */
static void conn_note(struct conn *c, const struct pkt *p)
{
	c->peer_buf_alloc = p->h.buf_alloc;
	c->peer_fwd_cnt = p->h.fwd_cnt;
	if (p->h.op == OP_SHUTDOWN)
		c->peer_shut = 1;
	if (p->h.op == OP_RST)
		c->reset = 1;
	if (p->h.op == OP_CREDIT_REQUEST) {
		c->credit_requests++;
	}
}

static int connect_to(struct conn *c, uint32_t lport, uint32_t rport, uint32_t buf_alloc)
{
	memset(c, 0, sizeof *c);
	c->lport = lport;
	c->rport = rport;
	c->buf_alloc = buf_alloc;
	send_ctrl(lport, rport, OP_REQUEST, 0, buf_alloc, 0);
	struct pkt p;
	while (rx_wait(&p, SPIN_LIMIT)) {
		int mine = ours(c, &p);
		if (mine)
			conn_note(c, &p);
		uint16_t op = p.h.op;
		rx_done(&p);
		if (!mine)
			continue;
		if (op == OP_RESPONSE)
			return 0;
		if (op == OP_RST)
			return -1;
	}
	return -1;
}

/* Sends `bytes` of the stream on c, within the credit the device gives. */
static int send_stream(struct conn *c, struct vt_stream *s, uint64_t bytes)
{
	uint64_t sent = 0;
	for (uint64_t idle = 0; sent < bytes; idle++) {
		if (idle > SPIN_LIMIT)
			return 20;
		int progress = 0;
		tx_reclaim();
		for (;;) {
			uint64_t n = bytes - sent;
			uint32_t credit = peer_credit(c);
			if (n > MAX_PAYLOAD)
				n = MAX_PAYLOAD;
			if (n > credit)
				n = credit;
			int slot = tx_free_slot();
			if (n == 0 || slot < 0)
				break;
			vt_fill(s, tx_payload(slot), n);
			struct hdr h = { cid, HOST_CID, c->lport, c->rport, (uint32_t)n, 1, OP_RW, 0,
					 c->buf_alloc, c->fwd_cnt };
			tx_queue_slot(slot, &h, sizeof h);
			c->tx_cnt += (uint32_t)n;
			sent += n;
			progress = 1;
		}
		tx_kick();
		struct pkt p;
		while (rx_poll(&p)) {
			if (ours(c, &p))
				conn_note(c, &p);
			rx_done(&p);
			progress = 1;
		}
		rx_flush();
		if (c->reset)
			return 21;
		if (progress)
			idle = 0;
		else
			cpu_relax();
	}
	return 0;
}

/* Closes c: SHUTDOWN both ways, then the device's RST (it forwards what it holds first). */
static int close_conn(struct conn *c)
{
	send_ctrl(c->lport, c->rport, OP_SHUTDOWN, 3, c->buf_alloc, c->fwd_cnt);
	struct pkt p;
	while (rx_wait(&p, SPIN_LIMIT)) {
		int mine = ours(c, &p);
		if (mine)
			conn_note(c, &p);
		rx_done(&p);
		if (mine && c->reset)
			return 0;
	}
	return -1;
}

static void print_result(const char *what, uint64_t v)
{
	puts(what);
	putc('=');
	put_hex(v);
	putc('\n');
}

static int mode_send(uint64_t bytes, uint64_t seed)
{
	struct conn c;
	if (connect_to(&c, VT_GUEST_SRC_PORT, VT_HOST_PORT, 1u << 20) < 0)
		return 10;
	struct vt_stream s;
	vt_stream_init(&s, seed);
	int r = send_stream(&c, &s, bytes);
	if (r)
		return r;
	if (close_conn(&c) < 0)
		return 11;
	print_result("sent", s.pos);
	print_result("fnv", s.fnv);
	return 0;
}

/* Waits for a REQUEST to `port` and answers it. */
static int accept_on(struct conn *c, uint32_t port, uint32_t buf_alloc)
{
	struct pkt p;
	memset(c, 0, sizeof *c);
	while (rx_wait(&p, SPIN_LIMIT)) {
		struct hdr h = p.h;
		rx_done(&p);
		if (h.op != OP_REQUEST || h.dst_port != port || h.src_cid != HOST_CID)
			continue;
		c->lport = port;
		c->rport = h.src_port;
		c->buf_alloc = buf_alloc;
		c->peer_buf_alloc = h.buf_alloc;
		c->peer_fwd_cnt = h.fwd_cnt;
		send_ctrl(port, c->rport, OP_RESPONSE, 0, buf_alloc, 0);
		return 0;
	}
	return -1;
}

/* RECV / CREDIT: receive until the host's SHUTDOWN. With `manual_credit`, credit is
 * only granted once the device used all of it, after a quiet period in which nothing
 * more may arrive. */
static int receive(uint32_t buf_alloc, int manual_credit, uint64_t seed)
{
	struct conn c;
	if (accept_on(&c, VT_GUEST_PORT, buf_alloc) < 0)
		return 30;
	struct vt_stream s;
	vt_stream_init(&s, seed);
	uint64_t bad = 0, idle = 0;
	uint32_t grants = 0;
	while (!c.peer_shut) {
		struct pkt p;
		if (!rx_poll(&p)) {
			rx_flush();
			tx_reclaim();
			if (++idle > SPIN_LIMIT)
				return 31;
			/* Everything granted has arrived and nothing more came for a while:
			 * the device kept to the credit. Grant the next window. */
			if (manual_credit && c.fwd_cnt - c.fwd_sent == buf_alloc && idle > 200000) {
				c.fwd_sent = c.fwd_cnt;
				grants++;
				send_ctrl(c.lport, c.rport, OP_CREDIT_UPDATE, 0, buf_alloc, c.fwd_cnt);
				idle = 0;
			}
			cpu_relax();
			continue;
		}
		idle = 0;
		if (!ours(&c, &p)) {
			rx_done(&p);
			continue;
		}
		conn_note(&c, &p);
		if (c.reset) {
			rx_done(&p);
			return 32;
		}
		if (p.h.op == 0xffff)
			return 33;
		if (p.h.op == OP_RW) {
			uint32_t n = p.h.len;
			/* The flow-control check: never more than we allowed. */
			if (c.fwd_cnt + n - c.fwd_sent > buf_alloc)
				return 34;
			if (vt_check(&s, p.data, n) != n && !bad)
				bad = s.pos;
			c.fwd_cnt += n;
			c.rx_total += n;
			if (!manual_credit && c.fwd_cnt - c.fwd_sent >= buf_alloc / 2) {
				c.fwd_sent = c.fwd_cnt;
				send_ctrl(c.lport, c.rport, OP_CREDIT_UPDATE, 0, buf_alloc, c.fwd_cnt);
			}
		} else if (p.h.op == OP_CREDIT_REQUEST && !manual_credit) {
			c.fwd_sent = c.fwd_cnt;
			send_ctrl(c.lport, c.rport, OP_CREDIT_UPDATE, 0, buf_alloc, c.fwd_cnt);
		}
		rx_done(&p);
	}
	send_ctrl(c.lport, c.rport, OP_RST, 0, buf_alloc, c.fwd_cnt);
	rx_flush();
	print_result("received", s.pos);
	print_result("fnv", s.fnv);
	print_result("grants", grants);
	print_result("credit_requests", c.credit_requests);
	if (bad)
		return 35;
	if (manual_credit && c.credit_requests == 0)
		return 36;
	return 0;
}

/* ---- hostile ---- */

/* Sends a header as given (its first hdr_len bytes) and pay_len bytes of payload,
 * whatever the header's len claims. */
static void send_raw(const struct hdr *h, uint32_t hdr_len, uint32_t pay_len)
{
	int s = tx_wait_slot();
	memcpy(tx_hdr(s), h, sizeof *h);
	struct vio_buf b[2] = { { tx_hdr(s), hdr_len, 0 }, { tx_payload(s), pay_len, 0 } };
	int head = vio_add(&dev, 1, b, pay_len ? 2 : 1);
	if (head < 0)
		exit(92);
	tx_slot_of_head[head] = s;
	tx_slot_busy[s] = 1;
	vio_notify(&dev, 1);
}

/* Expects the next packet to be a RST from (src_cid, src_port) to dst_port; a "marker"
 * afterwards proves nothing else was sent. */
static int expect_rst(uint64_t src_cid, uint32_t src_port, uint32_t dst_port)
{
	struct pkt p;
	if (!rx_wait(&p, SPIN_LIMIT))
		return -1;
	struct hdr h = p.h;
	rx_done(&p);
	rx_flush();
	if (h.op != OP_RST || h.src_cid != src_cid || h.dst_cid != cid || h.src_port != src_port ||
	    h.dst_port != dst_port)
		return -1;
	return 0;
}

/* A packet that must be dropped silently: followed by a CREDIT_REQUEST to a port with no
 * connection, whose RST must be the very next packet. */
static int expect_silence(uint32_t marker_port)
{
	struct hdr m = { cid, HOST_CID, marker_port, 7777, 0, 1, OP_CREDIT_REQUEST, 0, 0, 0 };
	send_raw(&m, sizeof m, 0);
	return expect_rst(HOST_CID, 7777, marker_port);
}

static int mode_hostile(uint64_t bytes, uint64_t seed)
{
	struct hdr h;

	/* 1: unknown op -> RST */
	h = (struct hdr){ cid, HOST_CID, 41000, VT_HOST_PORT, 0, 1, 99, 0, 0, 0 };
	send_raw(&h, sizeof h, 0);
	if (expect_rst(HOST_CID, VT_HOST_PORT, 41000))
		return 41;
	/* 2: len larger than the chain -> RST */
	h = (struct hdr){ cid, HOST_CID, 41001, VT_HOST_PORT, 100000, 1, OP_RW, 0, 0, 0 };
	send_raw(&h, sizeof h, 100);
	if (expect_rst(HOST_CID, VT_HOST_PORT, 41001))
		return 42;
	/* 3: wrong destination CID -> RST from that CID */
	h = (struct hdr){ cid, 77, 41002, VT_HOST_PORT, 0, 1, OP_REQUEST, 0, 4096, 0 };
	send_raw(&h, sizeof h, 0);
	if (expect_rst(77, VT_HOST_PORT, 41002))
		return 43;
	/* 4: seqpacket type -> RST */
	h = (struct hdr){ cid, HOST_CID, 41003, VT_HOST_PORT, 0, 2, OP_REQUEST, 0, 4096, 0 };
	send_raw(&h, sizeof h, 0);
	if (expect_rst(HOST_CID, VT_HOST_PORT, 41003))
		return 44;
	/* 5: spoofed source CID -> dropped */
	h = (struct hdr){ 1234567, HOST_CID, 41004, VT_HOST_PORT, 0, 1, OP_REQUEST, 0, 4096, 0 };
	send_raw(&h, sizeof h, 0);
	if (expect_silence(41104))
		return 45;
	/* 6: a chain shorter than a header -> dropped */
	h = (struct hdr){ cid, HOST_CID, 41005, VT_HOST_PORT, 0, 1, OP_REQUEST, 0, 4096, 0 };
	send_raw(&h, 20, 0);
	if (expect_silence(41105))
		return 46;
	/* 7: RST for nothing -> dropped (no reset answers a reset) */
	h = (struct hdr){ cid, HOST_CID, 41006, VT_HOST_PORT, 0, 1, OP_RST, 0, 0, 0 };
	send_raw(&h, sizeof h, 0);
	if (expect_silence(41106))
		return 47;
	/* 8: a payload on a control packet -> RST */
	h = (struct hdr){ cid, HOST_CID, 41007, VT_HOST_PORT, 16, 1, OP_REQUEST, 0, 4096, 0 };
	send_raw(&h, sizeof h, 16);
	if (expect_rst(HOST_CID, VT_HOST_PORT, 41007))
		return 48;
	/* 9: connection to a port nobody listens on -> RST */
	h = (struct hdr){ cid, HOST_CID, 41008, 999, 0, 1, OP_REQUEST, 0, 4096, 0 };
	send_raw(&h, sizeof h, 0);
	if (expect_rst(HOST_CID, 999, 41008))
		return 49;

	/* 10: credit overrun. The host listener on VT_SINK_PORT never reads; ignore the
	 * device's credit and push data until it resets the connection. It must accept at
	 * least its advertised buffer and reset before we pushed 16 MiB. */
	struct conn c;
	if (connect_to(&c, 41009, VT_SINK_PORT, 65536) < 0)
		return 50;
	uint32_t advertised = c.peer_buf_alloc;
	uint64_t pushed = 0;
	while (!c.reset && pushed < (16u << 20)) {
		int s = tx_wait_slot();
		struct hdr d = { cid, HOST_CID, c.lport, c.rport, MAX_PAYLOAD, 1, OP_RW, 0, 65536, 0 };
		tx_queue_slot(s, &d, sizeof d);
		tx_kick();
		pushed += MAX_PAYLOAD;
		struct pkt p;
		while (rx_poll(&p)) {
			if (ours(&c, &p))
				conn_note(&c, &p);
			rx_done(&p);
		}
		rx_flush();
	}
	/* The reset may trail the last packets: wait for it. */
	for (uint64_t i = 0; !c.reset && i < SPIN_LIMIT; i++) {
		struct pkt p;
		if (rx_poll(&p)) {
			if (ours(&c, &p))
				conn_note(&c, &p);
			rx_done(&p);
		} else {
			rx_flush();
			tx_reclaim();
			cpu_relax();
		}
	}
	if (!c.reset)
		return 51;
	if (pushed < advertised)
		return 52;
	print_result("overrun_pushed", pushed);

	/* 11: the device still works: a normal transfer. */
	return mode_send(bytes, seed);
}

/* RESET: leave a connection open with data on it, reset the device under it (the host
 * must see EOF), start over, and show the device works again. */
static int mode_reset(uint64_t bytes, uint64_t seed)
{
	struct conn c;
	if (connect_to(&c, VT_GUEST_SRC_PORT + 1, VT_HOST_PORT, 1u << 20) < 0)
		return 60;
	struct vt_stream s;
	vt_stream_init(&s, seed);
	int r = send_stream(&c, &s, VT_RESET_FIRST);
	if (r)
		return r;
	vio_reg_write(&dev, VIO_STATUS, 0);
	if (vio_status(&dev) != 0)
		return 61;
	/* Everything in flight is gone with the reset. */
	memset(tx_slot_busy, 0, sizeof tx_slot_busy);
	n_recycle = 0;
	tx_queued = 0;
	if (setup() < 0)
		return 62;
	return mode_send(bytes, seed);
}

int guest_main(uint64_t arg)
{
	uint32_t mode = arg & 0xff;
	uint64_t bytes = ((arg >> 8) & 0xffffff) << 20;
	uint64_t seed = arg >> 32;
	if (setup() < 0)
		return 1;
	switch (mode) {
	case VT_MODE_SEND:
		return mode_send(bytes, seed);
	case VT_MODE_RECV:
		return receive(1u << 20, 0, seed);
	case VT_MODE_CREDIT:
		return receive(VT_SMALL_BUF, 1, seed);
	case VT_MODE_HOSTILE:
		return mode_hostile(bytes, seed);
	case VT_MODE_RESET:
		return mode_reset(bytes, seed);
	default:
		return 2;
	}
}
