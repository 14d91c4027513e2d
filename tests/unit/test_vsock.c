/* The virtio-vsock protocol engine (lib/devices/vsock_*.c) without KVM or a transport:
 * guest packets are chains over a standalone memory map, the rx queue a real split ring
 * in it, host sockets socketpairs. Covers the parsers, the connection life cycles in
 * both directions, credit in both directions, limits and resets. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <libvmm/libvmm.h>
#include "devices/vsock_internal.h"

#define RAM (4u << 20)
#define DESC 0x0u
#define AVAIL 0x1000u
#define USED 0x2000u
#define RXBUF 0x10000u
#define RX_STRIDE 0x11000u
#define TXBUF 0x200000u
#define QSIZE 16u
#define CID 3u

struct ut {
	vmm_mem *mem;
	uint8_t *ram;
	vmm_virtq *rxq;
	vmm_virtq_chain *ch;
	struct vsock *v;
	uint16_t avail, used_seen;
	int peer[8];
	int npeer;
	bool refuse;
	bool small_bufs;
};

static int ut_connect(void *ctx, uint32_t port, bool *pending)
{
	struct ut *u = ctx;
	(void)port;
	if (u->refuse || u->npeer >= 8)
		return -ECONNREFUSED;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		return -errno;
	if (u->small_bufs) {
		int sz = 4096;
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
		setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	}
	u->peer[u->npeer++] = sv[1];
	*pending = false;
	return sv[0];
}

static int ut_teardown(void **state)
{
	struct ut *u = *state;
	if (!u)
		return 0;
	vsock_free(u->v);
	for (int i = 0; i < u->npeer; i++)
		if (u->peer[i] >= 0)
			close(u->peer[i]);
	vmm_virtq_destroy(u->rxq);
	vmm_mem_destroy(u->mem);
	free(u->ch);
	free(u);
	*state = NULL;
	return 0;
}

static struct ut *ut_setup(void **state, uint32_t max_conns)
{
	struct ut *u = calloc(1, sizeof *u);
	assert_non_null(u);
	*state = u;
	u->ch = malloc(sizeof *u->ch);
	assert_non_null(u->ch);
	assert_int_equal(vmm_mem_create(&u->mem), 0);
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.len = RAM;
	o.backing = VMM_MEM_ANON;
	assert_int_equal(vmm_mem_add_region(u->mem, &o), 0);
	void *host;
	assert_int_equal(vmm_mem_translate(u->mem, 0, RAM, true, &host), 0);
	u->ram = host;
	assert_int_equal(vmm_virtq_create(&u->rxq, QSIZE), 0);
	assert_int_equal(vmm_virtq_set_size(u->rxq, QSIZE), 0);
	assert_int_equal(vmm_virtq_set_addrs(u->rxq, DESC, AVAIL, USED), 0);
	assert_int_equal(vmm_virtq_enable(u->rxq, u->mem), 0);
	assert_int_equal(vsock_new(&u->v, CID, max_conns, NULL), 0);
	u->v->be.connect = ut_connect;
	u->v->be.ctx = u;
	u->v->mem = u->mem;
	u->v->rxq = u->rxq;
	u->v->active = true;
	return u;
}

/* Posts n rx buffers of `size` bytes (one descriptor each) and notifies. */
static void post_rx(struct ut *u, unsigned n, uint32_t size)
{
	for (unsigned k = 0; k < n; k++) {
		assert_true((uint16_t)(u->avail - u->used_seen) < QSIZE);
		uint16_t d = u->avail % QSIZE;
		uint64_t gpa = RXBUF + (uint64_t)d * RX_STRIDE;
		uint16_t fl = 2;
		uint8_t *desc = u->ram + DESC + 16u * d;
		memcpy(desc, &gpa, 8);
		memcpy(desc + 8, &size, 4);
		memcpy(desc + 12, &fl, 2);
		memcpy(u->ram + AVAIL + 4 + 2 * d, &d, 2);
		u->avail++;
		memcpy(u->ram + AVAIL + 2, &u->avail, 2);
	}
	vsock_rx_kick(u->v);
	vsock_end_work(u->v);
}

/* The next packet the device put in an rx buffer; returns false if none. */
static bool next_rx(struct ut *u, struct vsock_hdr *h, uint8_t *payload)
{
	uint16_t used;
	memcpy(&used, u->ram + USED + 2, 2);
	if (used == u->used_seen)
		return false;
	uint32_t id, len;
	memcpy(&id, u->ram + USED + 4 + 8 * (u->used_seen % QSIZE), 4);
	memcpy(&len, u->ram + USED + 8 + 8 * (u->used_seen % QSIZE), 4);
	u->used_seen++;
	assert_true(id < QSIZE);
	assert_true(len >= VSOCK_HDR_LEN);
	const uint8_t *b = u->ram + RXBUF + (uint64_t)id * RX_STRIDE;
	vsock_hdr_decode(b, h);
	assert_int_equal(h->len, len - VSOCK_HDR_LEN);
	assert_int_equal(h->dst_cid, CID);
	if (payload)
		memcpy(payload, b + VSOCK_HDR_LEN, h->len);
	return true;
}

static void expect_rx(struct ut *u, uint16_t op, uint32_t src_port, uint32_t dst_port, struct vsock_hdr *out)
{
	struct vsock_hdr h;
	assert_true(next_rx(u, &h, NULL));
	assert_int_equal(h.op, op);
	assert_int_equal(h.src_port, src_port);
	assert_int_equal(h.dst_port, dst_port);
	if (out)
		*out = h;
}

/* A guest packet: header (+ payload) in two readable segments. */
static void send_pkt(struct ut *u, uint16_t op, uint32_t sport, uint32_t dport, const void *data, uint32_t len,
		     uint32_t buf_alloc, uint32_t fwd_cnt, uint32_t flags)
{
	struct vsock_hdr h = { CID, VSOCK_HOST_CID, sport, dport, len, VIRTIO_VSOCK_TYPE_STREAM, op,
			       flags, buf_alloc, fwd_cnt };
	vsock_hdr_encode(&h, u->ram + TXBUF);
	if (len)
		memcpy(u->ram + TXBUF + 4096, data, len);
	vmm_virtq_chain *ch = u->ch;
	memset(ch, 0, offsetof(vmm_virtq_chain, segs));
	ch->segs[0] = (vmm_virtq_seg){ u->ram + TXBUF, VSOCK_HDR_LEN, TXBUF };
	ch->segs[1] = (vmm_virtq_seg){ u->ram + TXBUF + 4096, len, TXBUF + 4096 };
	ch->n_out = len ? 2 : 1;
	ch->out_bytes = VSOCK_HDR_LEN + len;
	vsock_tx_packet(u->v, ch);
	vsock_end_work(u->v);
}

/* A level-triggered loop pass over the watched host sockets. */
static void run_loop(struct ut *u)
{
	for (int round = 0; round < 8; round++) {
		struct pollfd p[16];
		nfds_t n = 0;
		for (struct vsock_conn *c = u->v->all; c && n < 16; c = c->next)
			if (c->watched)
				p[n++] = (struct pollfd){ c->fd,
							  (short)(((c->interest & VMM_LOOP_IN) ? POLLIN : 0) |
								  ((c->interest & VMM_LOOP_OUT) ? POLLOUT : 0)),
							  0 };
		if (n == 0 || poll(p, n, 0) <= 0)
			return;
		for (nfds_t i = 0; i < n; i++) {
			struct vsock_conn *c = u->v->all;
			while (c && c->fd != p[i].fd)
				c = c->next;
			if (!p[i].revents || !c || !c->watched)
				continue;
			vsock_conn_event(c, c->fd,
					 ((p[i].revents & POLLIN) ? VMM_LOOP_IN : 0) |
						 ((p[i].revents & POLLOUT) ? VMM_LOOP_OUT : 0) |
						 ((p[i].revents & (POLLERR | POLLHUP)) ? VMM_LOOP_ERR : 0));
		}
	}
}

/* ---- parsers ---- */

static void test_parse_connect(void **state)
{
	(void)state;
	uint32_t p = 0;
	assert_int_equal(vsock_parse_connect("CONNECT 5000", 12, &p), 0);
	assert_int_equal(p, 5000);
	assert_int_equal(vsock_parse_connect("CONNECT 7\r", 10, &p), 0);
	assert_int_equal(p, 7);
	assert_int_equal(vsock_parse_connect("CONNECT 4294967294", 18, &p), 0);
	assert_int_equal(p, 4294967294u);
	static const char *bad[] = { "", "CONNECT", "CONNECT ", "CONNECT -1", "CONNECT 4294967295",
				     "CONNECT 99999999999", "connect 1", "CONNECT 1 2", "CONNECT  1",
				     "CONNECT 1\r\r", "CONNECT 0x10", "XCONNECT 1" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (vsock_parse_connect(bad[i], strlen(bad[i]), &p) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
}

static void test_hdr_check(void **state)
{
	(void)state;
	const struct vsock_hdr ok = { CID, VSOCK_HOST_CID, 1, 2, 0, VIRTIO_VSOCK_TYPE_STREAM,
				      VIRTIO_VSOCK_OP_REQUEST, 0, 0, 0 };
	const char *why;
	assert_int_equal(vsock_hdr_check(&ok, CID, 0, &why), VSOCK_PKT_OK);
	struct vsock_hdr h = ok;
	h.src_cid = 9;
	assert_int_equal(vsock_hdr_check(&h, CID, 0, &why), VSOCK_PKT_DROP);
	h = ok;
	h.dst_cid = 5;
	assert_int_equal(vsock_hdr_check(&h, CID, 0, &why), VSOCK_PKT_RST);
	h.op = VIRTIO_VSOCK_OP_RST; /* never answer a reset */
	assert_int_equal(vsock_hdr_check(&h, CID, 0, &why), VSOCK_PKT_DROP);
	h = ok;
	h.type = VIRTIO_VSOCK_TYPE_SEQPACKET;
	assert_int_equal(vsock_hdr_check(&h, CID, 0, &why), VSOCK_PKT_RST);
	h = ok;
	h.op = 0;
	assert_int_equal(vsock_hdr_check(&h, CID, 0, &why), VSOCK_PKT_RST);
	h.op = 8;
	assert_int_equal(vsock_hdr_check(&h, CID, 0, &why), VSOCK_PKT_RST);
	h = ok;
	h.op = VIRTIO_VSOCK_OP_RW;
	h.len = 100;
	assert_int_equal(vsock_hdr_check(&h, CID, 99, &why), VSOCK_PKT_RST);
	assert_int_equal(vsock_hdr_check(&h, CID, 100, &why), VSOCK_PKT_OK);
	h.len = VSOCK_BUF_ALLOC + 1;
	assert_int_equal(vsock_hdr_check(&h, CID, 1ull << 32, &why), VSOCK_PKT_RST);
	h = ok;
	h.len = 4;
	assert_int_equal(vsock_hdr_check(&h, CID, 4, &why), VSOCK_PKT_RST);
	assert_non_null(why);
}

/* ---- connections ---- */

static void test_guest_connect(void **state)
{
	struct ut *u = ut_setup(state, 0);
	post_rx(u, 8, 4096 + VSOCK_HDR_LEN);
	send_pkt(u, VIRTIO_VSOCK_OP_REQUEST, 100, 1234, NULL, 0, 4096, 0, 0);
	struct vsock_hdr h;
	expect_rx(u, VIRTIO_VSOCK_OP_RESPONSE, 1234, 100, &h);
	assert_int_equal(h.src_cid, VSOCK_HOST_CID);
	assert_int_equal(h.buf_alloc, VSOCK_BUF_ALLOC);
	assert_int_equal(h.type, VIRTIO_VSOCK_TYPE_STREAM);
	assert_int_equal(u->npeer, 1);

	/* guest -> host */
	char msg[1000];
	for (size_t i = 0; i < sizeof msg; i++)
		msg[i] = (char)(i * 7);
	send_pkt(u, VIRTIO_VSOCK_OP_RW, 100, 1234, msg, sizeof msg, 4096, 0, 0);
	char got[2000];
	assert_int_equal(recv(u->peer[0], got, sizeof got, MSG_DONTWAIT), sizeof msg);
	assert_memory_equal(got, msg, sizeof msg);

	/* host -> guest: 5000 bytes against a 4096-byte credit */
	static uint8_t big[5000], in[70000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 13 + 1);
	assert_int_equal(send(u->peer[0], big, sizeof big, 0), sizeof big);
	run_loop(u);
	uint32_t total = 0;
	while (next_rx(u, &h, in)) {
		if (h.op == VIRTIO_VSOCK_OP_RW) {
			assert_memory_equal(in, big + total, h.len);
			total += h.len;
		} else {
			assert_int_equal(h.op, VIRTIO_VSOCK_OP_CREDIT_REQUEST); /* out of credit */
		}
	}
	assert_int_equal(total, 4096);
	/* More credit: the rest arrives. */
	send_pkt(u, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 100, 1234, NULL, 0, 4096, 4096, 0);
	run_loop(u);
	while (next_rx(u, &h, in)) {
		assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
		assert_memory_equal(in, big + total, h.len);
		total += h.len;
	}
	assert_int_equal(total, sizeof big);

	/* A credit request is answered with our fwd_cnt (all 1000 bytes forwarded). */
	send_pkt(u, VIRTIO_VSOCK_OP_CREDIT_REQUEST, 100, 1234, NULL, 0, 4096, 4096, 0);
	expect_rx(u, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 1234, 100, &h);
	assert_int_equal(h.fwd_cnt, sizeof msg);

	/* Guest half-close: the host sees EOF; host close: the guest gets SHUTDOWN; the
	 * guest's full shutdown then gets the RST that ends it. */
	send_pkt(u, VIRTIO_VSOCK_OP_SHUTDOWN, 100, 1234, NULL, 0, 4096, 4096, VIRTIO_VSOCK_SHUTDOWN_SEND);
	assert_int_equal(recv(u->peer[0], got, sizeof got, MSG_DONTWAIT), 0);
	close(u->peer[0]);
	u->peer[0] = -1;
	run_loop(u);
	expect_rx(u, VIRTIO_VSOCK_OP_SHUTDOWN, 1234, 100, &h);
	assert_true(h.flags & VIRTIO_VSOCK_SHUTDOWN_SEND);
	send_pkt(u, VIRTIO_VSOCK_OP_SHUTDOWN, 100, 1234, NULL, 0, 4096, 4096, 3);
	expect_rx(u, VIRTIO_VSOCK_OP_RST, 1234, 100, NULL);
	assert_int_equal(u->v->nconns, 0);
}

static void test_refused_and_unknown(void **state)
{
	struct ut *u = ut_setup(state, 0);
	post_rx(u, 8, 4096);
	u->refuse = true;
	send_pkt(u, VIRTIO_VSOCK_OP_REQUEST, 100, 1234, NULL, 0, 4096, 0, 0);
	expect_rx(u, VIRTIO_VSOCK_OP_RST, 1234, 100, NULL);
	/* Packets for connections that do not exist get RST, a RST gets nothing. */
	send_pkt(u, VIRTIO_VSOCK_OP_RW, 101, 1234, "x", 1, 4096, 0, 0);
	expect_rx(u, VIRTIO_VSOCK_OP_RST, 1234, 101, NULL);
	send_pkt(u, VIRTIO_VSOCK_OP_RST, 102, 1234, NULL, 0, 0, 0, 0);
	struct vsock_hdr h;
	assert_false(next_rx(u, &h, NULL));
	assert_int_equal(u->v->nconns, 0);
}

static void test_limit(void **state)
{
	struct ut *u = ut_setup(state, 2);
	post_rx(u, 8, 4096);
	send_pkt(u, VIRTIO_VSOCK_OP_REQUEST, 100, 1, NULL, 0, 4096, 0, 0);
	send_pkt(u, VIRTIO_VSOCK_OP_REQUEST, 101, 1, NULL, 0, 4096, 0, 0);
	send_pkt(u, VIRTIO_VSOCK_OP_REQUEST, 102, 1, NULL, 0, 4096, 0, 0);
	expect_rx(u, VIRTIO_VSOCK_OP_RESPONSE, 1, 100, NULL);
	expect_rx(u, VIRTIO_VSOCK_OP_RESPONSE, 1, 101, NULL);
	expect_rx(u, VIRTIO_VSOCK_OP_RST, 1, 102, NULL);
	assert_int_equal(u->v->nconns, 2);
	/* A host connection over the limit is closed at once. */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	vsock_accept_fd(u->v, sv[0]);
	char c;
	assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), 0);
	close(sv[1]);
	/* A second REQUEST for a live connection resets it. */
	send_pkt(u, VIRTIO_VSOCK_OP_REQUEST, 100, 1, NULL, 0, 4096, 0, 0);
	expect_rx(u, VIRTIO_VSOCK_OP_RST, 1, 100, NULL);
	assert_int_equal(u->v->nconns, 1);
}

static void test_overrun(void **state)
{
	struct ut *u = ut_setup(state, 0);
	u->small_bufs = true;
	post_rx(u, 8, 4096);
	send_pkt(u, VIRTIO_VSOCK_OP_REQUEST, 100, 1, NULL, 0, 4096, 0, 0);
	expect_rx(u, VIRTIO_VSOCK_OP_RESPONSE, 1, 100, NULL);
	/* The host never reads: the device buffers up to VSOCK_BUF_ALLOC, then resets. */
	static uint8_t chunk[60000];
	uint32_t sent = 0;
	struct vsock_hdr h;
	bool reset = false;
	while (!reset && sent < 4 * VSOCK_BUF_ALLOC) {
		send_pkt(u, VIRTIO_VSOCK_OP_RW, 100, 1, chunk, sizeof chunk, 4096, 0, 0);
		sent += sizeof chunk;
		while (next_rx(u, &h, NULL))
			if (h.op == VIRTIO_VSOCK_OP_RST)
				reset = true;
			else
				assert_int_equal(h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	}
	assert_true(reset);
	assert_true(sent > VSOCK_BUF_ALLOC);
	assert_int_equal(u->v->nconns, 0);
	/* The host side was closed. */
	static uint8_t sink[1 << 16];
	ssize_t n;
	while ((n = recv(u->peer[0], sink, sizeof sink, MSG_DONTWAIT)) > 0)
		;
	assert_int_equal(n, 0);
}

static void test_host_connect(void **state)
{
	struct ut *u = ut_setup(state, 0);
	post_rx(u, 8, 4096);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	u->peer[u->npeer++] = sv[1];
	/* Sent in two pieces, data right behind the line. */
	assert_int_equal(send(sv[1], "CONN", 4, 0), 4);
	vsock_accept_fd(u->v, sv[0]);
	run_loop(u);
	assert_int_equal(send(sv[1], "ECT 77\nhello", 12, 0), 12);
	run_loop(u);
	struct vsock_hdr h;
	assert_true(next_rx(u, &h, NULL));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_REQUEST);
	assert_int_equal(h.dst_port, 77);
	assert_true(h.src_port >= VSOCK_LOCAL_PORT_FIRST);
	uint32_t local = h.src_port;
	/* Nothing is read before the guest accepts. */
	assert_false(next_rx(u, &h, NULL));
	send_pkt(u, VIRTIO_VSOCK_OP_RESPONSE, 77, local, NULL, 0, 4096, 0, 0);
	char line[32] = { 0 };
	char want[32];
	snprintf(want, sizeof want, "OK %u\n", local);
	assert_int_equal(recv(sv[1], line, sizeof line - 1, MSG_DONTWAIT), (ssize_t)strlen(want));
	assert_string_equal(line, want);
	run_loop(u);
	uint8_t in[64];
	assert_true(next_rx(u, &h, in));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(h.len, 5);
	assert_memory_equal(in, "hello", 5);
	/* The guest resets: the host sees EOF. */
	send_pkt(u, VIRTIO_VSOCK_OP_RST, 77, local, NULL, 0, 0, 0, 0);
	assert_int_equal(recv(sv[1], line, sizeof line, MSG_DONTWAIT), 0);
	assert_int_equal(u->v->nconns, 0);

	/* Bad handshakes are closed without a word to the guest. */
	const char *bad[] = { "CONNECT x\n", "HELLO\n", "CONNECT 4294967295\n",
			      "CONNECT 1234567890123456789012345678901234567890" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
		assert_int_equal(send(sv[1], bad[i], strlen(bad[i]), 0), (ssize_t)strlen(bad[i]));
		vsock_accept_fd(u->v, sv[0]);
		run_loop(u);
		/* EOF, or a reset when the device closed with the line's rest unread. */
		ssize_t r = recv(sv[1], line, sizeof line, MSG_DONTWAIT);
		if (r != 0 && !(r < 0 && errno == ECONNRESET))
			fail_msg("handshake \"%s\" was not closed", bad[i]);
		close(sv[1]);
	}
	assert_int_equal(u->v->nconns, 0);
	assert_false(next_rx(u, &h, NULL));
}

/* Without rx buffers, owed packets wait; they go out in order once buffers come. */
static void test_starved(void **state)
{
	struct ut *u = ut_setup(state, 0);
	send_pkt(u, VIRTIO_VSOCK_OP_REQUEST, 100, 1, NULL, 0, 4096, 0, 0);
	u->refuse = true;
	send_pkt(u, VIRTIO_VSOCK_OP_REQUEST, 101, 1, NULL, 0, 4096, 0, 0);
	struct vsock_hdr h;
	assert_false(next_rx(u, &h, NULL));
	assert_int_equal(send(u->peer[0], "data", 4, 0), 4);
	run_loop(u);
	assert_false(next_rx(u, &h, NULL));
	/* A buffer too small for a header comes back empty and unused. */
	post_rx(u, 1, 20);
	post_rx(u, 3, 4096);
	uint16_t used;
	memcpy(&used, u->ram + USED + 2, 2);
	assert_int_equal(used, 3);
	u->used_seen++; /* the empty one */
	expect_rx(u, VIRTIO_VSOCK_OP_RST, 1, 101, NULL);
	expect_rx(u, VIRTIO_VSOCK_OP_RESPONSE, 1, 100, NULL);
	run_loop(u);
	uint8_t in[16];
	assert_true(next_rx(u, &h, in));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_memory_equal(in, "data", 4);
	assert_int_equal(u->v->stats.bad_rx_buffers, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_connect),
		cmocka_unit_test(test_hdr_check),
		cmocka_unit_test_teardown(test_guest_connect, ut_teardown),
		cmocka_unit_test_teardown(test_refused_and_unknown, ut_teardown),
		cmocka_unit_test_teardown(test_limit, ut_teardown),
		cmocka_unit_test_teardown(test_overrun, ut_teardown),
		cmocka_unit_test_teardown(test_host_connect, ut_teardown),
		cmocka_unit_test_teardown(test_starved, ut_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
