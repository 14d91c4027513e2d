/* virtio-vsock drivers that misbehave on purpose (tests/kvm/test_hostile_vsock.c). The
 * device is at 0xd0000000 (id 19); RAM is 32 MiB. Nothing listens on host port
 * DEAD_PORT, so a REQUEST to it is answered with a RST: a full round trip through the
 * TX queue, the device and the RX queue ("ping").
 *
 * Mode 1 (GOOD): the neighbour: pings until the host sets `stop`, counting in good_ok /
 *   good_bad; exits 0x200.
 * Mode 2 (PAST_RAM_TX, CVE-2019-18960): a TX packet whose payload ends one byte past
 *   RAM -> DEVICE_NEEDS_RESET; report(0x101); reset; ping; exit 0x100.
 * Mode 3 (PAST_RAM_RX): the only RX buffer ends one byte past RAM; a ping makes the
 *   device use it -> DEVICE_NEEDS_RESET; report(0x101); reset; ping; exit 0x100.
 * Mode 4 (RX_IN_MMIO, CVE-2024-3446): the only RX buffer is the device's own registers
 *   -> DEVICE_NEEDS_RESET; report(0x101); reset; ping; exit 0x100.
 * Mode 5 (LEN, CVE-2023-3180): RW packets whose len is 2^32 - 1, or 1000, with a
 *   100-byte payload: the device compares len with the chain and answers RST; exit 0x100.
 * Mode 6 (UNREAPED, CVE-2016-5403): no RX buffers at all, and 20000 REQUESTs to the dead
 *   port (each owes the guest a RST); report(0x101) (the host looks at its memory); then
 *   RX buffers: the owed RSTs arrive, as many as the device kept (the rest were
 *   dropped, counted); a ping works; exit 0x100.
 * 0xe00 | step: a step failed. */
#include "rt/virtio.h"

#define BASE 0xd0000000ull
#define RAM_END 0x2000000ull
#define QSZ 64
#define RXN 32
#define RX_LEN 4096u
#define HOST_CID 2u
#define DEAD_PORT 4444u
#define OP_REQUEST 1
#define OP_RST 3
#define OP_RW 5
#define SPINS (1ull << 26)
#define FLOOD 20000u

#define FAIL(step) return 0xe00 | (step)

struct hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

_Static_assert(sizeof(struct hdr) == 44, "vsock header");

uint64_t res[16];
volatile uint64_t stop;
volatile uint64_t good_ok, good_bad;

static struct vio_dev dev;
static uint8_t rings[3][VIO_RING_BYTES(QSZ)] __attribute__((aligned(4096)));
static uint8_t rxbuf[RXN][RX_LEN];
static int rx_of_head[QSZ];
static struct hdr txh[QSZ];
static uint8_t payload[128];
static uint64_t cid;
static uint32_t next_port = 50000;

static void spin(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		cpu_relax();
}

static int up(void)
{
	if (vio_init(&dev, BASE, 19, 0) != 0)
		return -1;
	for (int q = 0; q < 3; q++)
		if (vio_queue_setup(&dev, q, QSZ, rings[q]) != 0)
			return -1;
	vio_driver_ok(&dev);
	cid = vio_config_read(&dev, 0, 4) | (uint64_t)vio_config_read(&dev, 4, 4) << 32;
	uint32_t s = vio_status(&dev);
	return (s & VIO_S_DRIVER_OK) && !(s & VIO_S_NEEDS_RESET) ? 0 : -1;
}

static void rx_post(int i)
{
	struct vio_buf b = { rxbuf[i], RX_LEN, 1 };
	int head = vio_add(&dev, 0, &b, 1);
	if (head >= 0)
		rx_of_head[head] = i;
}

static void rx_post_all(void)
{
	for (int i = 0; i < RXN; i++)
		rx_post(i);
	vio_notify(&dev, 0);
}

/* A packet to the host (header, and payload when plen), waited for on the TX queue. */
static int send(uint32_t sport, uint32_t dport, uint16_t op, uint32_t len, const void *pay, uint32_t plen)
{
	txh[0] = (struct hdr){ cid, HOST_CID, sport, dport, len, 1, op, 0, 4096, 0 };
	struct vio_buf b[2] = { { &txh[0], sizeof txh[0], 0 }, { pay, plen, 0 } };
	if (vio_add(&dev, 1, b, plen ? 2 : 1) < 0)
		return -1;
	vio_notify(&dev, 1);
	return vio_wait_used(&dev, 1, 0, SPINS) < 0 ? -1 : 0;
}

/* The next packet from the device, copied to *h; its buffer is posted again. */
static int recv(struct hdr *h, uint64_t spins)
{
	uint32_t len = 0;
	int head = vio_wait_used(&dev, 0, &len, spins);
	if (head < 0)
		return -1;
	int i = rx_of_head[head];
	memcpy(h, rxbuf[i], sizeof *h);
	rx_post(i);
	vio_notify(&dev, 0);
	return len >= sizeof *h ? 0 : -1;
}

/* Expects a RST from the host's `sport` to our `dport`. */
static int expect_rst(uint32_t sport, uint32_t dport)
{
	struct hdr h;
	if (recv(&h, SPINS) != 0)
		return -1;
	return h.op == OP_RST && h.src_cid == HOST_CID && h.dst_cid == cid && h.src_port == sport &&
			       h.dst_port == dport
		       ? 0
		       : -1;
}

static int ping(void)
{
	uint32_t p = next_port++;
	if (send(p, DEAD_PORT, OP_REQUEST, 0, 0, 0) != 0)
		return -1;
	return expect_rst(DEAD_PORT, p);
}

static uint32_t wait_broken(void)
{
	uint32_t s = 0;
	for (int i = 0; i < 200000 && !((s = vio_status(&dev)) & VIO_S_NEEDS_RESET); i++)
		spin(500);
	return s;
}

static int recover(void)
{
	if (up() != 0)
		return 1;
	rx_post_all();
	return ping() ? 2 : 0;
}

static int mode_good(void)
{
	if (up() != 0)
		FAIL(1);
	rx_post_all();
	while (!stop) {
		if (ping() != 0 || (vio_status(&dev) & VIO_S_NEEDS_RESET)) {
			good_bad++;
			FAIL(2);
		}
		good_ok++;
	}
	return 0x200;
}

/* The shape of the breaking modes: misbehave, NEEDS_RESET, report, recover. */
static int breaking(int rx_buffers, void (*misbehave)(void))
{
	if (up() != 0)
		FAIL(1);
	if (rx_buffers) {
		rx_post_all();
		res[0] = (uint64_t)ping();
	}
	misbehave();
	res[1] = wait_broken();
	res[2] = vio_reg_read(&dev, VIO_INTERRUPT_STATUS);
	report(0x101);
	res[3] = (uint64_t)recover();
	return res[3] ? (int)(0xe10 | res[3]) : 0x100;
}

static void mis_past_ram_tx(void)
{
	txh[1] = (struct hdr){ cid, HOST_CID, 40000, DEAD_PORT, 100, 1, OP_RW, 0, 4096, 0 };
	struct vio_buf b[2] = { { &txh[1], sizeof txh[1], 0 }, { (void *)(uintptr_t)(RAM_END - 99), 100, 0 } };
	vio_add(&dev, 1, b, 2);
	vio_notify(&dev, 1);
}

/* One RX buffer at `addr`, then a ping that needs it. */
static void bad_rx(uint64_t addr)
{
	struct vio_buf b = { (void *)(uintptr_t)addr, RX_LEN, 1 };
	vio_add(&dev, 0, &b, 1);
	vio_notify(&dev, 0);
	txh[1] = (struct hdr){ cid, HOST_CID, 40001, DEAD_PORT, 0, 1, OP_REQUEST, 0, 4096, 0 };
	struct vio_buf t = { &txh[1], sizeof txh[1], 0 };
	vio_add(&dev, 1, &t, 1);
	vio_notify(&dev, 1);
}

static void mis_past_ram_rx(void) { bad_rx(RAM_END - RX_LEN + 1); }
static void mis_rx_in_mmio(void) { bad_rx(BASE); }

static int mode_len(void)
{
	if (up() != 0)
		FAIL(1);
	rx_post_all();
	memset(payload, 0x33, sizeof payload);
	if (send(41000, 1234, OP_RW, 0xffffffffu, payload, 100) != 0 || expect_rst(1234, 41000) != 0)
		FAIL(2);
	if (send(41001, 1234, OP_RW, 1000, payload, 100) != 0 || expect_rst(1234, 41001) != 0)
		FAIL(3);
	res[0] = (uint64_t)ping();
	res[1] = vio_status(&dev);
	return 0x100;
}

/* REQUESTs to the dead port with no RX buffer to answer in; the TX chains are reused as
 * soon as the used index says so (no used element is read), at most 32 in flight. */
static int mode_unreaped(void)
{
	if (up() != 0)
		FAIL(1);
	struct vio_queue *q = &dev.q[1];
	for (int i = 0; i < 32; i++) {
		txh[i] = (struct hdr){ cid, HOST_CID, 0, DEAD_PORT, 0, 1, OP_REQUEST, 0, 4096, 0 };
		q->desc[i] = (struct vio_desc){ (uint64_t)(uintptr_t)&txh[i], sizeof txh[i], 0, 0 };
	}
	uint16_t idx = q->avail[1];
	for (uint32_t n = 0; n < FLOOD; n++) {
		for (uint64_t w = 0; (uint16_t)(idx - q->used[1]) >= 32 && w < SPINS; w++)
			cpu_relax();
		int i = (int)(n % 32);
		txh[i].src_port = 60000 + n;
		q->avail[2 + idx % QSZ] = (uint16_t)i;
		idx++;
		__atomic_thread_fence(__ATOMIC_RELEASE);
		q->avail[1] = idx;
		if (n % 16 == 15)
			vio_reg_write(&dev, VIO_QUEUE_NOTIFY, 1);
	}
	vio_reg_write(&dev, VIO_QUEUE_NOTIFY, 1);
	for (uint64_t w = 0; q->used[1] != idx && w < SPINS; w++)
		cpu_relax();
	res[0] = q->used[1] == idx;
	res[1] = vio_status(&dev);
	report(0x101);
	/* Collect what the device still owes. Resets come in order. */
	rx_post_all();
	uint64_t got = 0, in_order = 1;
	struct hdr h;
	while (recv(&h, 1u << 24) == 0) {
		if (h.op != OP_RST || h.src_port != DEAD_PORT || h.dst_port != 60000 + got)
			in_order = 0;
		got++;
	}
	res[2] = got;
	res[3] = in_order;
	/* The free list is a mess after the raw TX descriptors: start over. */
	res[4] = (uint64_t)recover();
	res[5] = vio_status(&dev);
	return res[4] ? 0xe02 : 0x100;
}

int guest_main(uint64_t arg)
{
	switch (arg) {
	case 1: return mode_good();
	case 2: return breaking(1, mis_past_ram_tx);
	case 3: return breaking(0, mis_past_ram_rx);
	case 4: return breaking(0, mis_rx_in_mmio);
	case 5: return mode_len();
	case 6: return mode_unreaped();
	default: return 0xeff;
	}
}
