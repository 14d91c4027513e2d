/* Device state across a snapshot (tests/kvm/test_virtio_state.c): a virtio-console
 * driver at 0xd0000000 (receiveq 0, transmitq 1, EVENT_IDX if offered) that answers
 * each line it receives with the line upper-cased, and stops after each answer so the
 * host can snapshot the VM and its device in the middle of the conversation.
 *
 * Sends "ready\n" first. Round r (1..ROUNDS): collects received bytes up to a '\n',
 * sends them upper-cased, re-posts the buffers, then report(0x10 + r). Exits 0x100
 * after the last round. `res` keeps counts and a hash of everything received, so the
 * host can check that the conversation went on without a lost or repeated byte. The
 * receive buffers stay posted (in flight with the device) across every snapshot.
 * Failures exit 0xe0 + step. */
#include "rt/virtio.h"

#define CON_BASE 0xd0000000ull
#define QSIZE 16
#define NRX 4
#define RXLEN 64
#define ROUNDS 6
#define F_SIZE 1ull

struct vstate_results {
	uint64_t hash;      /* FNV-1a of every byte received */
	uint32_t received;  /* bytes received */
	uint32_t buffers;   /* receive buffers that came back used */
	uint32_t rounds;
	uint16_t cols, rows;
	uint64_t features;
};

struct vstate_results res = { .hash = 0xcbf29ce484222325ull };
static uint8_t rxq[VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t txq[VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t rxbuf[QSIZE][RXLEN];
static uint8_t line[256];
static struct vio_dev dev;

static int send(const void *p, uint32_t n)
{
	struct vio_buf b = { p, n, 0 };
	return vio_request(&dev, 1, &b, 1) < 0 ? -1 : 0;
}

/* Posts a receive buffer; rxbuf is indexed by its descriptor head. */
static int post_rx(void)
{
	uint16_t head = dev.q[0].free_head;
	if (head >= QSIZE)
		return -1;
	struct vio_buf b = { rxbuf[head], RXLEN, 1 };
	return vio_add(&dev, 0, &b, 1) == head ? 0 : -1;
}

/* Receives up to and including a '\n' into line; returns its length or -1. */
static int receive_line(void)
{
	uint32_t n = 0;
	for (;;) {
		uint32_t len = 0;
		int id = vio_wait_used(&dev, 0, &len, 0);
		if (id < 0 || id >= QSIZE || len > RXLEN)
			return -1;
		res.buffers++;
		bool done = false;
		for (uint32_t i = 0; i < len; i++) {
			uint8_t c = rxbuf[id][i];
			res.hash = (res.hash ^ c) * 0x100000001b3ull;
			res.received++;
			if (n < sizeof line)
				line[n++] = c;
			done = done || c == '\n';
		}
		if (post_rx() != 0)
			return -1;
		vio_notify(&dev, 0);
		if (done)
			return (int)n;
	}
}

int guest_main(uint64_t arg)
{
	(void)arg;
	if (vio_init(&dev, CON_BASE, 3, F_SIZE | VIO_F_EVENT_IDX) != 0)
		return 0xe0;
	if (vio_queue_setup(&dev, 0, QSIZE, rxq) != 0 || vio_queue_setup(&dev, 1, QSIZE, txq) != 0)
		return 0xe1;
	vio_driver_ok(&dev);
	res.features = dev.features;
	if (dev.features & F_SIZE) {
		res.cols = (uint16_t)vio_config_read(&dev, 0, 2);
		res.rows = (uint16_t)vio_config_read(&dev, 2, 2);
	}
	for (int i = 0; i < NRX; i++)
		if (post_rx() != 0)
			return 0xe2;
	vio_notify(&dev, 0);
	static const char ready[] = "ready\n";
	if (send(ready, sizeof ready - 1) != 0)
		return 0xe3;
	for (uint32_t r = 1; r <= ROUNDS; r++) {
		int n = receive_line();
		if (n < 0)
			return 0xe4;
		for (int i = 0; i < n; i++)
			if (line[i] >= 'a' && line[i] <= 'z')
				line[i] = (uint8_t)(line[i] - 'a' + 'A');
		if (send(line, (uint32_t)n) != 0)
			return 0xe5;
		res.rounds = r;
		report(0x10 + r);
	}
	return 0x100;
}
