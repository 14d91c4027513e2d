/* virtio-vsock benchmark guest (bench/bench_virtio_vsock.c), at CPL 3. Protocol and
 * command block: bench_virtio.h. Device at BV_DEV_BASE, guest CID BV_VSOCK_CID.
 *
 * The driver and the stream protocol are the vsock test guest's (vsock_guest.c, included
 * whole, its guest_main renamed out of the way): its rings, its 16 TX slots of 64 KiB,
 * 32 RX buffers, its connect/accept/close and credit handling. Only the data loops are
 * our own, without the test's per-byte pattern generation and checking, so they measure
 * the device rather than the guest's checksum:
 *  G2H: connect to host port BV_VSOCK_HOST_PORT from cmd.src_port, send cmd.bytes
 *       (the TX slots' contents, whatever they hold) within the device's credit, close.
 *  H2G: accept on BV_VSOCK_GUEST_PORT, count bytes until the host's SHUTDOWN, granting
 *       credit every half buffer, then reset the connection. */
#define guest_main vsock_test_guest_main
#include "vsock_guest.c"
#undef guest_main

#include "bench_virtio.h"

#define BUF_ALLOC (1u << 20)

struct bv_vsock_cmd cmd;
struct bv_vsock_out out;

static void drain_rx(struct conn *c)
{
	struct pkt p;
	while (rx_poll(&p)) {
		if (ours(c, &p))
			conn_note(c, &p);
		rx_done(&p);
	}
	rx_flush();
}

static int g2h(void)
{
	struct conn c;
	if (connect_to(&c, cmd.src_port, BV_VSOCK_HOST_PORT, BUF_ALLOC) < 0)
		return 10;
	uint64_t sent = 0;
	for (uint64_t idle = 0; sent < cmd.bytes; idle++) {
		if (idle > SPIN_LIMIT)
			return 12;
		uint64_t before = sent;
		tx_reclaim();
		for (;;) {
			uint64_t n = cmd.bytes - sent;
			uint32_t credit = peer_credit(&c);
			int slot = tx_free_slot();
			if (n > MAX_PAYLOAD)
				n = MAX_PAYLOAD;
			if (n > credit)
				n = credit;
			if (n == 0 || slot < 0)
				break;
			struct hdr h = { cid, HOST_CID, c.lport, c.rport, (uint32_t)n, 1, OP_RW, 0, c.buf_alloc,
					 c.fwd_cnt };
			tx_queue_slot(slot, &h, sizeof h);
			c.tx_cnt += (uint32_t)n;
			sent += n;
		}
		tx_kick();
		drain_rx(&c);
		if (c.reset)
			return 13;
		if (sent != before)
			idle = 0;
		else
			cpu_relax();
	}
	if (close_conn(&c) < 0)
		return 11;
	out.bytes = sent;
	return 0;
}

static int h2g(void)
{
	struct conn c;
	if (accept_on(&c, BV_VSOCK_GUEST_PORT, BUF_ALLOC) < 0)
		return 30;
	uint64_t got = 0, idle = 0;
	while (!c.peer_shut) {
		struct pkt p;
		if (!rx_poll(&p)) {
			rx_flush();
			tx_reclaim();
			if (++idle > SPIN_LIMIT)
				return 31;
			cpu_relax();
			continue;
		}
		idle = 0;
		if (!ours(&c, &p)) {
			rx_done(&p);
			continue;
		}
		conn_note(&c, &p);
		uint16_t op = p.h.op;
		uint32_t n = p.h.len;
		rx_done(&p);
		if (c.reset)
			return 32;
		if (op == 0xffff)
			return 33;
		if (op == OP_RW) {
			if (c.fwd_cnt + n - c.fwd_sent > c.buf_alloc)
				return 34; /* beyond the credit we gave */
			c.fwd_cnt += n;
			got += n;
		}
		if ((op == OP_RW && c.fwd_cnt - c.fwd_sent >= c.buf_alloc / 2) || op == OP_CREDIT_REQUEST) {
			c.fwd_sent = c.fwd_cnt;
			send_ctrl(c.lport, c.rport, OP_CREDIT_UPDATE, 0, c.buf_alloc, c.fwd_cnt);
		}
	}
	send_ctrl(c.lport, c.rport, OP_RST, 0, c.buf_alloc, c.fwd_cnt);
	rx_flush();
	out.bytes = got;
	return 0;
}

int guest_main(uint64_t arg)
{
	(void)arg;
	if (setup() < 0)
		return 1;
	for (;;) {
		report(BV_READY);
		if (cmd.op == BV_QUIT)
			return 0;
		int e = cmd.op == BV_VSOCK_G2H ? g2h() : cmd.op == BV_VSOCK_H2G ? h2g() : 2;
		out.status = (uint64_t)e;
		if (e)
			return e;
	}
}
