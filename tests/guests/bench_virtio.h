/* Shared by the virtio benchmark guests (tests/guests/bench_*.c) and their host,
 * bench/bench_virtio*.c: the command block the host writes into the guest before each
 * pass, the results the guest leaves behind, and the request offsets both sides
 * generate (so the host's own pread/pwrite baseline touches exactly the same bytes).
 * Header-only, freestanding.
 *
 * Protocol: the guest sets its device up, then loops: report(BV_READY) (the host's
 * vmm_vcpu_run returns), the host writes `cmd` and runs the vCPU again, the guest runs
 * one pass and fills `out`. So one vmm_vcpu_run is one pass, and the host times it.
 * Any other exit code is a failure (0xe0 + step). */
#ifndef BENCH_VIRTIO_H
#define BENCH_VIRTIO_H

#include <stdint.h>

#define BV_DEV_BASE 0xd0000000ull /* the one device of each benchmark VM */
#define BV_DEV_GSI 5u
#define BV_READY 0x600du
#define BV_QUIT 0xffu             /* cmd.op: return from guest_main */

/* Interrupt requests of the driver (cmd.irq). The guests poll, but they ask for
 * interrupts as an interrupt-driven driver would, so the device's counts are real:
 *  BV_IRQ_EACH: without EVENT_IDX the avail ring's flags stay 0 (interrupts on); with it
 *    used_event = the last used index consumed (Linux's virtqueue_enable_cb).
 *  BV_IRQ_DELAYED: EVENT_IDX only: used_event = 3/4 of the requests in flight ahead
 *    (Linux's virtqueue_enable_cb_delayed). */
#define BV_IRQ_EACH 0u
#define BV_IRQ_DELAYED 1u

/* ---- virtio-blk (tests/guests/bench_blk.c) ---- */
#define BV_BLK_QSIZE 256u
#define BV_BLK_MAX_QD 64u            /* 3 descriptors a request: 192 of 256 */
#define BV_BLK_BUF_BYTES (16u << 20) /* qd * req_bytes must fit */
#define BV_BLK_READ 0u
#define BV_BLK_WRITE 1u

struct bv_blk_cmd {
	uint32_t op;         /* BV_BLK_READ, BV_BLK_WRITE or BV_QUIT */
	uint32_t req_bytes;  /* a multiple of 512 */
	uint32_t qd;         /* requests in flight, 1 .. BV_BLK_MAX_QD */
	uint32_t random;     /* 0: request k at k * req_bytes (mod span); 1: random slots */
	uint64_t nreq;       /* requests in this pass */
	uint64_t seed;
	uint64_t span_bytes; /* offsets stay in [0, span_bytes - req_bytes] */
	uint32_t event_idx;  /* negotiate VIRTIO_F_EVENT_IDX (re-initialises the device) */
	uint32_t irq;        /* BV_IRQ_* */
};

struct bv_blk_out {
	uint64_t done;   /* requests completed */
	uint64_t errors; /* status byte not VIRTIO_BLK_S_OK */
	uint64_t kicks;  /* QueueNotify writes (each an exit) */
};

/* splitmix64: the random request sequence. */
static inline uint64_t bv_mix(uint64_t x)
{
	uint64_t z = x + 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Byte offset of request k of a pass. */
static inline uint64_t bv_blk_offset(const struct bv_blk_cmd *c, uint64_t k)
{
	uint64_t slots = c->span_bytes / c->req_bytes;
	uint64_t i = c->random ? bv_mix(c->seed + k) % slots : k % slots;
	return i * c->req_bytes;
}

/* ---- virtio-net (tests/guests/bench_net.c) ---- */
#define BV_NET_QSIZE 256u
#define BV_NET_HDR 12u      /* struct virtio_net_hdr_v1 */
#define BV_NET_SLOT 2048u   /* TX slot / RX buffer: header + frame up to 1514 bytes */
#define BV_NET_TX 0u
#define BV_NET_RX 1u

struct bv_net_cmd {
	uint32_t op;        /* BV_NET_TX, BV_NET_RX or BV_QUIT */
	uint32_t frame_len; /* TX: Ethernet frame bytes, 14 .. BV_NET_SLOT - BV_NET_HDR */
	uint64_t frames;    /* frames to send, or to receive */
};

struct bv_net_out {
	uint64_t frames, bytes; /* sent (used by the device) or received (without header) */
	uint64_t kicks;
	uint64_t errors;        /* RX: a used length or num_buffers out of range */
};

/* ---- virtio-vsock (tests/guests/bench_vsock.c, on tests/guests/vsock_guest.c) ---- */
#define BV_VSOCK_CID 42u          /* what vsock_guest.c's setup() insists on */
#define BV_VSOCK_HOST_PORT 2000u  /* guest -> host: the host listens on <path>_2000 */
#define BV_VSOCK_GUEST_PORT 5001u /* host -> guest: the guest listens here */
#define BV_VSOCK_G2H 0u
#define BV_VSOCK_H2G 1u

struct bv_vsock_cmd {
	uint32_t op;        /* BV_VSOCK_G2H, BV_VSOCK_H2G or BV_QUIT */
	uint32_t src_port;  /* G2H: the guest's port of this pass's connection */
	uint64_t bytes;     /* G2H: bytes to send */
};

struct bv_vsock_out {
	uint64_t bytes;     /* sent, or received until the host's SHUTDOWN */
	uint64_t status;    /* 0, or the step that failed */
};

#endif
