/* virtio-net through real rings (tests/kvm/test_virtio_net.c). The device sits at
 * 0xd0000000: receiveq 0, transmitq 1. The guest records what it received in `results`
 * (one entry per frame: length, num_buffers, ethertype, checksum of the frame bytes),
 * which the host checks against the frames it sent.
 *
 * arg 1 (callback back end, mergeable buffers):
 *   reads the MAC and status from config space; sends TX_FRAMES frames of the lengths
 *   in tx_len[] (header in its own descriptor, header and frame in one, or the frame in
 *   three pieces), then one malformed chain (a header without a frame), all with one
 *   notification; report(0x100) once all are used.
 *   Posts RX_BUFS receive buffers of MRG_BUF bytes, report(0x101); then receives
 *   `rx_expect` frames (each may span several buffers), reposting buffers as it goes.
 *   Exit 0x102.
 * arg 2 (full receive queue, no mergeable buffers):
 *   posts 2 buffers of 2048 bytes, report(0x200); receives 2 frames without reposting;
 *   then posts 3 buffers and receives 3 frames (that the host queued while the queue was
 *   full: nobody injects anything after the buffers arrive). Exit 0x201.
 * arg 3 (TAP back end, mergeable buffers):
 *   posts 2 buffers of 2048 bytes, sends a frame of ethertype 0x88b5 and an ARP request
 *   for 10.0.0.1 (from 10.0.0.2), report(0x300). Then receives, one buffer outstanding
 *   at a time plus one, until it has the ARP reply (kept in arp_reply) and TAP_FRAMES
 *   frames of ethertype 0x88b6, skipping anything else. Exit 0x301.
 * arg 4 (flood from another host thread, no mergeable buffers):
 *   posts RX_BUFS buffers of 2048 bytes, report(0x400); then receives `rx_expect`
 *   frames, each carrying its sequence number (little-endian, bytes 14-17) and
 *   FLOOD_LEN(seq) bytes, checking both and the fill pattern, reposting every buffer and
 *   notifying every FLOOD_KICK frames. flood_count/flood_bad say what arrived.
 *   Exit 0x401, or 0x4e0 | step on a broken frame.
 * Failures exit 0xe0 | step.
 */
#include "rt/virtio.h"

#define NET_BASE 0xd0000000ull
#define QSIZE 64
#define RXQ 0
#define TXQ 1
#define HDR 12u
#define F_MRG_RXBUF (1ull << 15)
#define F_MAC (1ull << 5)
#define F_STATUS (1ull << 16)
#define RX_BUFS 48
#define MRG_BUF 512u
#define BIG_BUF 2048u
#define TX_FRAMES 8
#define TAP_FRAMES 8
#define SPINS (1ull << 36) /* the host's watchdog ends a guest that waits forever */

struct frame_result {
	uint32_t len;
	uint16_t num_buffers;
	uint16_t ethertype;
	uint64_t sum;
};

struct frame_result results[64];
uint32_t nresults;
uint32_t rx_expect; /* written by the host */
uint8_t cfg_mac[6];
uint16_t cfg_status;
uint8_t arp_reply[64];
uint32_t arp_len;
const uint32_t tx_len[TX_FRAMES] = { 60, 64, 100, 1514, 2000, 4096, 9000, 65535 };

static uint8_t rx_ring[VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t tx_ring[VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t rx_buf[RX_BUFS][BIG_BUF] __attribute__((aligned(64)));
static uint8_t tx_hdr[TX_FRAMES + 1][HDR];
static uint8_t tx_frame[TX_FRAMES][65536];
static uint8_t frame_in[65536];
static int16_t buf_of_head[QSIZE];
static uint32_t rx_buf_len;
static struct vio_dev dev;

/* Position-dependent, so the host's recomputation proves the guest saw these bytes. */
static uint64_t checksum(const uint8_t *p, uint32_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* Byte k of TX frame i after the Ethernet header (the host computes the same). */
static uint8_t tx_byte(uint32_t i, uint32_t k) { return (uint8_t)(i * 37u + k * 11u + (k >> 8)); }

static int setup(uint64_t features)
{
	if (vio_init(&dev, NET_BASE, 1, features) != 0)
		return -1;
	if (vio_queue_setup(&dev, RXQ, QSIZE, rx_ring) != 0 || vio_queue_setup(&dev, TXQ, QSIZE, tx_ring) != 0)
		return -1;
	vio_driver_ok(&dev);
	if (!(vio_status(&dev) & VIO_S_DRIVER_OK))
		return -1;
	for (int i = 0; i < 6; i++)
		cfg_mac[i] = (uint8_t)vio_config_read(&dev, (uint32_t)i, 1);
	cfg_status = (uint16_t)vio_config_read(&dev, 6, 2);
	return 0;
}

static int rx_post(int i)
{
	struct vio_buf b = { rx_buf[i], rx_buf_len, 1 };
	int head = vio_add(&dev, RXQ, &b, 1);
	if (head < 0)
		return -1;
	buf_of_head[head] = (int16_t)i;
	return 0;
}

/* The next used receive buffer: its index, and the bytes written in *len. */
static int rx_next(uint32_t *len)
{
	int head = vio_wait_used(&dev, RXQ, len, SPINS);
	if (head < 0 || head >= QSIZE || *len > rx_buf_len)
		return -1;
	return buf_of_head[head];
}

/* Receives one frame into frame_in (all its buffers) and records it. Buffers are
 * reposted if `repost`. Returns the frame length, or -1. */
static int64_t rx_frame(bool repost)
{
	uint32_t len, total = 0;
	int b = rx_next(&len);
	if (b < 0 || len < HDR)
		return -1;
	uint16_t nb = (uint16_t)(rx_buf[b][10] | rx_buf[b][11] << 8);
	if (nb == 0 || (!(dev.features & F_MRG_RXBUF) && nb != 1))
		return -1;
	for (int k = 0; k < 10; k++) /* no offloads: the rest of the header is zero */
		if (rx_buf[b][k])
			return -1;
	memcpy(frame_in, rx_buf[b] + HDR, len - HDR);
	total = len - HDR;
	if (repost && rx_post(b) != 0)
		return -1;
	for (uint16_t k = 1; k < nb; k++) {
		b = rx_next(&len);
		if (b < 0 || total + len > sizeof frame_in)
			return -1;
		memcpy(frame_in + total, rx_buf[b], len);
		total += len;
		if (repost && rx_post(b) != 0)
			return -1;
	}
	if (nresults < 64) {
		struct frame_result *r = &results[nresults++];
		r->len = total;
		r->num_buffers = nb;
		r->ethertype = total >= 14 ? (uint16_t)(frame_in[12] << 8 | frame_in[13]) : 0;
		r->sum = checksum(frame_in, total);
	}
	return total;
}

static void eth_header(uint8_t *f, const uint8_t *dst, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, cfg_mac, 6);
	f[12] = (uint8_t)(type >> 8);
	f[13] = (uint8_t)type;
}

static const uint8_t broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static uint32_t callback_mode(void)
{
	if (setup(F_MAC | F_STATUS | F_MRG_RXBUF) != 0)
		return 0xe0;
	if (!(dev.features & F_MRG_RXBUF))
		return 0xe1;

	/* TX: every frame queued, then one notification. */
	for (uint32_t i = 0; i < TX_FRAMES; i++) {
		uint8_t *f = tx_frame[i];
		uint32_t n = tx_len[i];
		eth_header(f, broadcast, 0x88b5);
		for (uint32_t k = 14; k < n; k++)
			f[k] = tx_byte(i, k);
		memset(tx_hdr[i], 0, HDR);
		int r;
		if (i % 3 == 0) {
			struct vio_buf b[2] = { { tx_hdr[i], HDR, 0 }, { f, n, 0 } };
			r = vio_add(&dev, TXQ, b, 2);
		} else if (i % 3 == 1) {
			/* Header and frame contiguous: shift the frame behind a header. */
			static uint8_t joined[(TX_FRAMES + 2) / 3][HDR + 65536];
			uint8_t *j = joined[i / 3];
			memset(j, 0, HDR);
			memcpy(j + HDR, f, n);
			struct vio_buf b = { j, HDR + n, 0 };
			r = vio_add(&dev, TXQ, &b, 1);
		} else {
			struct vio_buf b[3] = { { tx_hdr[i], HDR, 0 }, { f, 7, 0 }, { f + 7, n - 7, 0 } };
			r = vio_add(&dev, TXQ, b, 3);
		}
		if (r < 0)
			return 0xe2;
	}
	struct vio_buf bad = { tx_hdr[TX_FRAMES], HDR, 0 };
	if (vio_add(&dev, TXQ, &bad, 1) < 0)
		return 0xe3;
	vio_notify(&dev, TXQ);
	for (int i = 0; i < TX_FRAMES + 1; i++) {
		uint32_t len;
		if (vio_wait_used(&dev, TXQ, &len, SPINS) < 0)
			return 0xe4;
	}
	if (dev.q[TXQ].num_free != QSIZE)
		return 0xe5;
	report(0x100);

	/* RX with buffers smaller than most frames. */
	rx_buf_len = MRG_BUF;
	for (int i = 0; i < RX_BUFS; i++)
		if (rx_post(i) != 0)
			return 0xe6;
	vio_notify(&dev, RXQ);
	report(0x101);
	for (uint32_t i = 0; i < rx_expect; i++) {
		if (rx_frame(true) < 0)
			return 0xe7;
		vio_notify(&dev, RXQ);
	}
	return 0x102;
}

static uint32_t full_mode(void)
{
	if (setup(F_MAC | F_STATUS) != 0)
		return 0xe0;
	if (dev.features & F_MRG_RXBUF)
		return 0xe1;
	rx_buf_len = BIG_BUF;
	for (int i = 0; i < 2; i++)
		if (rx_post(i) != 0)
			return 0xe2;
	vio_notify(&dev, RXQ);
	report(0x200);
	for (int i = 0; i < 2; i++)
		if (rx_frame(false) < 0)
			return 0xe3;
	/* The host queued more frames meanwhile; buffers now, and nothing else. */
	for (int i = 2; i < 5; i++)
		if (rx_post(i) != 0)
			return 0xe4;
	vio_notify(&dev, RXQ);
	for (int i = 0; i < 3; i++)
		if (rx_frame(false) < 0)
			return 0xe5;
	return 0x201;
}

static uint32_t tap_mode(void)
{
	if (setup(F_MAC | F_STATUS | F_MRG_RXBUF) != 0)
		return 0xe0;
	rx_buf_len = BIG_BUF;
	for (int i = 0; i < 2; i++)
		if (rx_post(i) != 0)
			return 0xe1;
	vio_notify(&dev, RXQ);

	/* A frame of our own ethertype, then an ARP request the host's stack answers. */
	uint8_t *f = tx_frame[0];
	eth_header(f, broadcast, 0x88b5);
	for (uint32_t k = 14; k < 200; k++)
		f[k] = tx_byte(100, k);
	memset(tx_hdr[0], 0, HDR);
	struct vio_buf b1[2] = { { tx_hdr[0], HDR, 0 }, { f, 200, 0 } };
	uint8_t *a = tx_frame[1];
	memset(a, 0, 60);
	eth_header(a, broadcast, 0x0806);
	static const uint8_t arp[] = { 0, 1, 8, 0, 6, 4, 0, 1 }; /* Ethernet, IPv4, request */
	memcpy(a + 14, arp, sizeof arp);
	memcpy(a + 22, cfg_mac, 6);
	memcpy(a + 28, (uint8_t[]){ 10, 0, 0, 2 }, 4);
	memcpy(a + 38, (uint8_t[]){ 10, 0, 0, 1 }, 4);
	memset(tx_hdr[1], 0, HDR);
	struct vio_buf b2[2] = { { tx_hdr[1], HDR, 0 }, { a, 60, 0 } };
	if (vio_add(&dev, TXQ, b1, 2) < 0 || vio_add(&dev, TXQ, b2, 2) < 0)
		return 0xe2;
	vio_notify(&dev, TXQ);
	for (int i = 0; i < 2; i++) {
		uint32_t len;
		if (vio_wait_used(&dev, TXQ, &len, SPINS) < 0)
			return 0xe3;
	}
	report(0x300);

	/* Two buffers outstanding at most: the host's burst must wait and then flow. */
	uint32_t custom = 0;
	for (int n = 0; n < 64 && (custom < TAP_FRAMES || arp_len == 0); n++) {
		int64_t len = rx_frame(true);
		if (len < 0)
			return 0xe4;
		vio_notify(&dev, RXQ);
		struct frame_result *r = &results[nresults - 1];
		if (r->ethertype == 0x0806 && len >= 42 && frame_in[21] == 2 && arp_len == 0) {
			memcpy(arp_reply, frame_in, len < 64 ? (uint32_t)len : 64);
			arp_len = (uint32_t)len;
		} else if (r->ethertype == 0x88b6) {
			custom++;
		}
	}
	return custom == TAP_FRAMES && arp_len ? 0x301 : 0xe5;
}

/* Keep in sync with test_flood (tests/kvm/test_virtio_net.c). */
#define FLOOD_LEN(seq) (60u + (seq) % 200u)
#define FLOOD_BYTE(seq, k) ((uint8_t)((seq) * 7u + (k)))
#define FLOOD_KICK 16u
uint32_t flood_count, flood_bad;

static uint32_t flood_mode(void)
{
	if (setup(F_MAC | F_STATUS) != 0)
		return 0x4e0;
	rx_buf_len = BIG_BUF;
	for (int i = 0; i < RX_BUFS; i++)
		if (rx_post(i) != 0)
			return 0x4e1;
	vio_notify(&dev, RXQ);
	report(0x400);
	for (uint32_t seq = 0; seq < rx_expect; seq++) {
		uint32_t len;
		int b = rx_next(&len);
		if (b < 0 || len < HDR + 18)
			return 0x4e2;
		const uint8_t *f = rx_buf[b] + HDR;
		uint32_t n = len - HDR;
		uint32_t got = (uint32_t)f[14] | (uint32_t)f[15] << 8 | (uint32_t)f[16] << 16 | (uint32_t)f[17] << 24;
		bool ok = got == seq && n == FLOOD_LEN(seq);
		for (uint32_t k = 18; ok && k < n; k++)
			ok = f[k] == FLOOD_BYTE(seq, k);
		if (!ok)
			flood_bad++;
		flood_count++;
		if (rx_post(b) != 0)
			return 0x4e3;
		if (seq % FLOOD_KICK == FLOOD_KICK - 1)
			vio_notify(&dev, RXQ);
	}
	return flood_bad ? 0x4e4 : 0x401;
}

int guest_main(uint64_t arg)
{
	if (arg == 1)
		return (int)callback_mode();
	if (arg == 2)
		return (int)full_mode();
	if (arg == 3)
		return (int)tap_mode();
	if (arg == 4)
		return (int)flood_mode();
	return 0xef;
}
