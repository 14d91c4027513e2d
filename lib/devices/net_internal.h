/* virtio-net internals shared by virtio_net.c (device ops, public API), net_tx.c (the
 * transmit queue), net_rx.c (the receive backlog and delivery into the receive queue) and
 * net_tap.c (the TAP back end).
 *
 * The TX and RX paths take the queue and guest memory as arguments and never touch the
 * transport, so unit tests and fuzz targets drive them on a standalone vmm_mem.
 *
 * Threading: the backlog and the stats are shared between application threads
 * (vmm_virtio_net_receive, vmm_virtio_net_get_stats) and the loop thread, under
 * `lock`, a leaf lock: nothing is called while it is held. Everything else belongs to the
 * device callbacks, which the transport serialises. In particular the tx callback runs
 * without `lock` held, so it may call vmm_virtio_net_receive (on this device or another)
 * without deadlocking.
 */
#ifndef LIBVMM_NET_INTERNAL_H
#define LIBVMM_NET_INTERNAL_H

#include <pthread.h>
#include <linux/virtio_net.h>

#include "../internal.h"

#define NET_HDR_LEN ((uint32_t)sizeof(struct virtio_net_hdr_v1)) /* 12: VERSION_1 is always on */
#define NET_ETH_HLEN 14u
#define NET_MAX_FRAME 65535u      /* Ethernet header onwards, without the virtio header */
#define NET_QUEUE_SIZE 256u       /* queue_size_max of both queues */
#define NET_MAX_HELD NET_QUEUE_SIZE /* receive chains one frame may span */
#define NET_BACKLOG_DEFAULT 256u
#define NET_BACKLOG_MAX 1024u     /* x 64 KiB of address space, touched only as used */
#define NET_SLOT_SIZE 65536u      /* one backlog slot holds the largest frame */
#define NET_TX_BUDGET NET_QUEUE_SIZE /* chains per TX notification */
#define NET_RX_BUDGET NET_QUEUE_SIZE /* chains per RX delivery round */
#define NET_TAP_BUDGET 64u        /* frames read from the TAP per wake-up */

enum { NET_RXQ = 0, NET_TXQ = 1 };

/* vmm_net_rx_deliver results (>= 0). */
enum {
	NET_RX_IDLE = 0,    /* the backlog is empty */
	NET_RX_MORE = 1,    /* the budget ran out with frames and buffers left: continue later */
	NET_RX_STALLED = 2, /* frames wait but the guest has no buffers; notifications are on */
};

struct net_held {
	uint16_t head;
	uint32_t len;
};

struct vmm_net {
	vmm_virtio_device *device; /* the wrapper handed out by vmm_virtio_net_create */
	vmm_virtio_dev *dev;       /* between activate and reset, else NULL */
	vmm_net_backend backend;
	uint8_t mac[6];
	bool mac_random;           /* the application left opts.mac zero: we picked it */
	vmm_net_tx_fn tx;
	void *tx_ctx;

	int tap_fd;                /* VMM_NET_TAP, else -1 */
	bool tap_watched;          /* registered with vmm_virtio_dev_watch */
	bool tap_paused;           /* registered with no events: RX is full */
	bool tap_dead;             /* the TAP reported an error: no longer read */
	int kick_fd;               /* eventfd: vmm_virtio_net_receive wakes the loop */
	bool kick_watched;

	bool failed;               /* vmm_virtio_dev_fail called: idle until reset */
	bool mrg;                  /* VIRTIO_NET_F_MRG_RXBUF negotiated */
	bool rx_notify;            /* RX notifications enabled (we wait for buffers) */

	/* Receive backlog: `cap` slots of NET_SLOT_SIZE bytes, a ring of `count` frames from
	 * `first`. Producers fill a free slot under `lock`; the loop thread reads the slot at
	 * `first` without it (no producer touches an occupied slot) and frees it under it. */
	pthread_mutex_t lock;
	uint8_t *pool;
	size_t pool_bytes;
	uint32_t *lens;
	uint32_t cap, first, count;
	bool kick_pending;         /* kick_fd written and not yet consumed */
	vmm_virtio_net_stats stats;

	/* The frame at the head of the backlog, partly delivered (mergeable buffers): the
	 * chains it filled so far are held (popped, not yet pushed) until it is complete,
	 * so that its used entries are consecutive and num_buffers is right. */
	uint32_t rx_off;           /* bytes of header + frame written so far */
	uint16_t nheld;
	struct net_held held[NET_MAX_HELD];
	uint64_t nb_gpa[2];        /* guest addresses of the two num_buffers bytes */

	uint8_t *frame_buf;        /* NET_MAX_FRAME bytes: TX gather, TAP reads */
	vmm_virtq_chain chain;     /* scratch for pops (TX and RX never run at once) */
};

/* ---- virtio_net.c ---- */
/* Allocates the state (backlog, buffers, eventfd, TAP) without a device wrapper. */
VMM_HIDDEN int vmm_net_new(struct vmm_net **out, const vmm_virtio_net_opts *opts);
VMM_HIDDEN void vmm_net_free(struct vmm_net *n);

/* ---- net_tx.c ---- */
/* Copies the frame of one TX chain (its readable part after the virtio header) into buf
 * (cap bytes) and stores its length. Returns 0, or -EINVAL (no complete header, a frame
 * shorter than an Ethernet header), -EMSGSIZE (over NET_MAX_FRAME or cap). */
VMM_HIDDEN int vmm_net_tx_frame(const vmm_virtq_chain *c, uint8_t *buf, size_t cap, size_t *len);
/* Pops up to `budget` chains from q, sends their frames to the back end, pushes them
 * (malformed ones too, counted in tx_errors), and adds the number pushed to *pushed.
 * Returns 0 (the queue is empty, notifications re-enabled), 1 (budget used up: call
 * again), or a negative errno if the ring is broken (the device must fail). */
VMM_HIDDEN int vmm_net_tx_drain(struct vmm_net *n, vmm_virtq *q, vmm_mem *mem, unsigned budget,
				unsigned *pushed);

/* ---- net_rx.c ---- */
VMM_HIDDEN int vmm_net_backlog_init(struct vmm_net *n, uint32_t cap);
VMM_HIDDEN void vmm_net_backlog_free(struct vmm_net *n);
/* Copies a frame into the backlog. Takes n->lock. Returns 0 or -ENOBUFS (full: dropped
 * and counted); *kick says whether the caller must wake the loop. */
VMM_HIDDEN int vmm_net_backlog_push(struct vmm_net *n, const void *frame, size_t len, bool *kick);
VMM_HIDDEN bool vmm_net_backlog_full(struct vmm_net *n);
/* Drops every waiting frame (counted in rx_dropped) and the partial-frame state. */
VMM_HIDDEN void vmm_net_rx_reset(struct vmm_net *n);
/* Delivers backlog frames into receive chains popped from q, using at most `budget`
 * chains; adds the number of used entries published to *pushed. Returns NET_RX_* or a
 * negative errno if the ring is broken. */
VMM_HIDDEN int vmm_net_rx_deliver(struct vmm_net *n, vmm_virtq *q, vmm_mem *mem, unsigned budget,
				  unsigned *pushed);

/* ---- net_tap.c ---- */
/* Creates (or attaches to) TAP interface `name` (NULL or "": the kernel picks tapN),
 * IFF_TAP | IFF_NO_PI, non-blocking. Returns 0 or a negative errno. */
VMM_HIDDEN int vmm_net_tap_open(const char *name, int *fd_out);
/* Duplicates the caller's TAP fd after checking it is a TAP (not a TUN) without virtio
 * headers, and makes it non-blocking. Returns 0 or a negative errno. */
VMM_HIDDEN int vmm_net_tap_adopt(int fd, int *fd_out);

#endif
