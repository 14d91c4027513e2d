/* virtio-console through real rings (tests/kvm/test_virtio_console.c). The device sits
 * at 0xd0000000: receiveq 0, transmitq 1.
 *
 * arg 1 (echo): reads cols/rows from config (if VIRTIO_CONSOLE_F_SIZE), sends
 *   "hello from guest\n", then posts receive buffers and echoes everything it receives,
 *   upper-cased, until it has echoed a '\n'. `res` counts bytes and buffers. Exit 0x100.
 * arg 2 (flood): sends res.flood_len bytes (0..255 repeating, in 4 KiB requests) and
 *   exits 0x200: the device must not stall it whatever the back end does.
 * Failures exit 0xe0 + step.
 */
#include "rt/virtio.h"

#define CON_BASE 0xd0000000ull
#define QSIZE 16
#define NRX 8
#define RXLEN 256
#define F_SIZE 1ull

struct vcon_results {
	uint32_t features;
	uint16_t cols, rows;
	uint32_t echoed;     /* bytes echoed */
	uint32_t buffers;    /* receive buffers that came back used */
	uint32_t max_len;    /* largest used length of a receive buffer */
	uint32_t tx_len;     /* used length of the last transmit (0 by the spec) */
	uint32_t flood_len;  /* set by the host for arg 2 */
};

struct vcon_results res;
static uint8_t rxq[VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t txq[VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t rxbuf[QSIZE][RXLEN];
static uint8_t txbuf[4096];
static struct vio_dev dev;

static int send(const void *p, uint32_t n)
{
	struct vio_buf b = { p, n, 0 };
	int64_t l = vio_request(&dev, 1, &b, 1);
	if (l < 0)
		return -1;
	res.tx_len = (uint32_t)l;
	return 0;
}

/* Posts the receive buffer of descriptor head `slot`: rxbuf is indexed by the head the
 * driver got, so a used id leads straight back to its buffer. */
static int post_rx(void)
{
	struct vio_buf b = { 0, RXLEN, 1 };
	/* The next head vio_add will use is free_head. */
	uint16_t head = dev.q[0].free_head;
	if (head >= QSIZE)
		return -1;
	b.addr = rxbuf[head];
	return vio_add(&dev, 0, &b, 1) == head ? 0 : -1;
}

static int echo(void)
{
	if (dev.features & F_SIZE) {
		res.cols = (uint16_t)vio_config_read(&dev, 0, 2);
		res.rows = (uint16_t)vio_config_read(&dev, 2, 2);
	}
	static const char hello[] = "hello from guest\n";
	if (send(hello, sizeof hello - 1) != 0)
		return 0xe2;
	for (int i = 0; i < NRX; i++)
		if (post_rx() != 0)
			return 0xe3;
	vio_notify(&dev, 0);
	for (;;) {
		uint32_t len = 0;
		int id = vio_wait_used(&dev, 0, &len, 0);
		if (id < 0 || id >= QSIZE || len > RXLEN)
			return 0xe4;
		res.buffers++;
		if (len > res.max_len)
			res.max_len = len;
		bool done = false;
		for (uint32_t i = 0; i < len; i++) {
			uint8_t c = rxbuf[id][i];
			txbuf[i] = c >= 'a' && c <= 'z' ? (uint8_t)(c - 'a' + 'A') : c;
			done = done || c == '\n';
		}
		if (len && send(txbuf, len) != 0)
			return 0xe5;
		res.echoed += len;
		if (done)
			return 0x100;
		if (post_rx() != 0)
			return 0xe6;
		vio_notify(&dev, 0);
	}
}

static int flood(void)
{
	for (uint32_t i = 0; i < sizeof txbuf; i++)
		txbuf[i] = (uint8_t)i;
	for (uint32_t done = 0; done < res.flood_len;) {
		uint32_t n = res.flood_len - done < sizeof txbuf ? res.flood_len - done : sizeof txbuf;
		if (send(txbuf, n) != 0)
			return 0xe7;
		done += n;
	}
	return 0x200;
}

int guest_main(uint64_t arg)
{
	if (vio_init(&dev, CON_BASE, 3, F_SIZE) != 0)
		return 0xe0;
	if (vio_queue_setup(&dev, 0, QSIZE, rxq) != 0 || vio_queue_setup(&dev, 1, QSIZE, txq) != 0)
		return 0xe1;
	vio_driver_ok(&dev);
	res.features = (uint32_t)dev.features;
	if (arg == 1)
		return echo();
	if (arg == 2)
		return flood();
	return 0xef;
}
