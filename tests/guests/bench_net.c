/* virtio-net benchmark guest (bench/bench_virtio_net.c), at CPL 3. Protocol and command
 * block: bench_virtio.h. Device at BV_DEV_BASE: receiveq 0, transmitq 1, 256 entries.
 *
 * Every chain is one descriptor: TX slot i (descriptor i of the transmit queue) holds a
 * zero virtio-net header and the frame; RX buffer i (descriptor i of the receive
 * queue) has room for a header and a 1514-byte frame. All 256 receive buffers stay
 * posted between passes.
 * TX pass: keeps every free slot queued until cmd.frames were used by the device.
 * RX pass: takes cmd.frames frames (the host injects them meanwhile), reposting each
 * buffer at once. Heads are published once per batch and the device notified only when
 * it asked (bench_ring.h). */
#include "bench_ring.h"
#include "bench_virtio.h"

#define RXQ 0
#define TXQ 1
#define F_MAC (1ull << 5)
#define F_MRG_RXBUF (1ull << 15)

struct bv_net_cmd cmd;
struct bv_net_out out;

static uint8_t rx_ring[VIO_RING_BYTES(BV_NET_QSIZE)] __attribute__((aligned(4096)));
static uint8_t tx_ring[VIO_RING_BYTES(BV_NET_QSIZE)] __attribute__((aligned(4096)));
static uint8_t rx_buf[BV_NET_QSIZE][BV_NET_SLOT] __attribute__((aligned(64)));
static uint8_t tx_slot[BV_NET_QSIZE][BV_NET_SLOT] __attribute__((aligned(64)));
static uint16_t tx_free[BV_NET_QSIZE];
static uint32_t n_tx_free;
static uint32_t tx_len; /* frame length the slots hold */
static struct vio_dev dev;
static struct bring rx, tx;

static int setup(void)
{
	if (vio_init(&dev, BV_DEV_BASE, 1, F_MAC | F_MRG_RXBUF) != 0)
		return 0xe0;
	if (vio_queue_setup(&dev, RXQ, BV_NET_QSIZE, rx_ring) != 0 ||
	    vio_queue_setup(&dev, TXQ, BV_NET_QSIZE, tx_ring) != 0)
		return 0xe1;
	vio_driver_ok(&dev);
	if (!(vio_status(&dev) & VIO_S_DRIVER_OK))
		return 0xe2;
	bring_init(&rx, &dev, RXQ);
	bring_init(&tx, &dev, TXQ);
	for (uint16_t i = 0; i < BV_NET_QSIZE; i++) {
		rx.q->desc[i] = (struct vio_desc){ (uint64_t)(uintptr_t)rx_buf[i], BV_NET_SLOT, VIO_DESC_F_WRITE, 0 };
		bring_add(&rx, i);
		tx_free[i] = i;
	}
	n_tx_free = BV_NET_QSIZE;
	bring_publish(&rx);
	return 0;
}

/* Broadcast frames of ethertype 0x88b5 from our MAC, `len` bytes, in every slot. */
static void fill_tx(uint32_t len)
{
	uint8_t mac[6];
	for (uint32_t i = 0; i < 6; i++)
		mac[i] = (uint8_t)vio_config_read(&dev, i, 1);
	for (uint32_t i = 0; i < BV_NET_QSIZE; i++) {
		uint8_t *f = tx_slot[i];
		memset(f, 0, BV_NET_HDR);
		f += BV_NET_HDR;
		memset(f, 0xff, 6);
		memcpy(f + 6, mac, 6);
		f[12] = 0x88;
		f[13] = 0xb5;
		for (uint32_t k = 14; k < len; k++)
			f[k] = (uint8_t)(i + k);
		tx.q->desc[i] = (struct vio_desc){ (uint64_t)(uintptr_t)tx_slot[i], BV_NET_HDR + len, 0, 0 };
	}
	tx_len = len;
}

static int tx_pass(void)
{
	if (cmd.frame_len < 14 || cmd.frame_len > BV_NET_SLOT - BV_NET_HDR)
		return 0xe4;
	if (cmd.frame_len != tx_len)
		fill_tx(cmd.frame_len);
	uint64_t queued = 0, done = 0, kicks0 = tx.kicks;
	while (done < cmd.frames) {
		while (n_tx_free && queued < cmd.frames) {
			bring_add(&tx, tx_free[--n_tx_free]);
			queued++;
		}
		bring_publish(&tx);
		uint32_t id, len;
		int got = 0;
		while (bring_used(&tx, &id, &len)) {
			if (id >= BV_NET_QSIZE)
				return 0xe5;
			tx_free[n_tx_free++] = (uint16_t)id;
			done++;
			got = 1;
		}
		if (!got)
			cpu_relax();
	}
	out.frames = done;
	out.bytes = done * tx_len;
	out.kicks = tx.kicks - kicks0;
	out.errors = 0;
	return 0;
}

static int rx_pass(void)
{
	uint64_t frames = 0, bytes = 0, errors = 0, kicks0 = rx.kicks;
	while (frames < cmd.frames) {
		uint32_t id, len;
		int got = 0;
		while (bring_used(&rx, &id, &len)) {
			if (id >= BV_NET_QSIZE)
				return 0xe6;
			uint16_t nb = (uint16_t)(rx_buf[id][10] | rx_buf[id][11] << 8);
			if (len < BV_NET_HDR + 14 || len > BV_NET_SLOT || nb != 1)
				errors++;
			else
				bytes += len - BV_NET_HDR;
			frames++;
			bring_add(&rx, (uint16_t)id);
			got = 1;
		}
		if (got)
			bring_publish(&rx);
		else
			cpu_relax();
	}
	out.frames = frames;
	out.bytes = bytes;
	out.kicks = rx.kicks - kicks0;
	out.errors = errors;
	return 0;
}

int guest_main(uint64_t arg)
{
	(void)arg;
	int e = setup();
	if (e)
		return e;
	for (;;) {
		report(BV_READY);
		if (cmd.op == BV_QUIT)
			return 0;
		e = cmd.op == BV_NET_TX ? tx_pass() : cmd.op == BV_NET_RX ? rx_pass() : 0xe7;
		if (e)
			return e;
	}
}
