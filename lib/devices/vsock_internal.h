/* virtio-vsock internals, shared by lib/devices/vsock_*.c, virtio_vsock.c and the fuzz
 * target. Not installed.
 *
 * The device is split so the protocol engine runs without a transport:
 *  - vsock_pkt.c     pure parsing: packet headers, the "CONNECT <port>" line;
 *  - vsock_conn.c    the connection table, the per-connection send buffer, the queues of
 *                    control packets owed to the guest;
 *  - vsock_engine.c  the protocol: guest packets (TX), packets to the guest (RX), host
 *                    socket events, flow control;
 *  - virtio_vsock.c  the device ops, the Unix-socket back end and the listener.
 * With v->dev == NULL (fuzzing) fd watches are only recorded and no interrupt is raised;
 * v->rxq may be any vmm_virtq the caller set up, or NULL (every packet stays owed).
 *
 * Flow control, as the device sees it (virtio 1.2, 5.10.6.3):
 *  guest -> host: the guest may have at most VSOCK_BUF_ALLOC bytes in flight beyond the
 *    fwd_cnt we last told it. Bytes the host socket does not take at once wait in the
 *    connection's buffer of exactly VSOCK_BUF_ALLOC bytes; fwd_cnt counts bytes written
 *    to the host socket. A guest that overflows the buffer gets its connection reset.
 *  host -> guest: we read from the host socket only as much as the guest's credit
 *    (peer_buf_alloc - (tx_cnt - peer_fwd_cnt)) and the rx buffer at hand allow, straight
 *    into guest memory, so nothing host -> guest is ever buffered in the device.
 */
#ifndef LIBVMM_VSOCK_INTERNAL_H
#define LIBVMM_VSOCK_INTERNAL_H

#include <sys/types.h>
#include <sys/uio.h>
#include <linux/virtio_vsock.h>

#include "../internal.h"

#define VSOCK_HOST_CID 2u
#define VSOCK_HDR_LEN 44u
#define VSOCK_BUF_ALLOC (256u << 10)   /* our receive buffer per connection (advertised) */
#define VSOCK_MAX_PAYLOAD (64u << 10)  /* largest RW payload we put in one rx buffer */
#define VSOCK_DEFAULT_MAX_CONNS 1024u
#define VSOCK_MAX_CONNS_LIMIT 65536u
#define VSOCK_RST_QUEUE 256u           /* resets owed for connections already gone */
#define VSOCK_LINE_MAX 32u             /* "CONNECT 4294967295\r\n" is 20 bytes */
#define VSOCK_TX_BUDGET 128u           /* guest packets per notify */
#define VSOCK_READ_BUDGET 16u          /* rx packets per host socket event */
#define VSOCK_ACCEPT_BUDGET 16u        /* accepts per listener event */
#define VSOCK_LOCAL_PORT_FIRST (1u << 30) /* host-initiated connections' source ports */
#define VSOCK_LOCAL_PORT_LAST 0xfffffffeu

_Static_assert(sizeof(struct virtio_vsock_hdr) == VSOCK_HDR_LEN, "virtio_vsock_hdr size");

/* A packet header in host byte order. */
struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

/* ---- vsock_pkt.c: pure parsing ---- */

VMM_HIDDEN void vsock_hdr_decode(const void *raw, struct vsock_hdr *h);
VMM_HIDDEN void vsock_hdr_encode(const struct vsock_hdr *h, void *raw);

enum vsock_verdict {
	VSOCK_PKT_OK,   /* well formed: dispatch by op */
	VSOCK_PKT_DROP, /* ignore silently (spoofed source, or a broken RST) */
	VSOCK_PKT_RST,  /* answer with a reset */
};
/* Checks a guest packet's header against the device (guest_cid) and the bytes of payload
 * its chain holds after the header. *why names the problem for non-OK verdicts. */
VMM_HIDDEN enum vsock_verdict vsock_hdr_check(const struct vsock_hdr *h, uint64_t guest_cid,
					      uint64_t payload_avail, const char **why);

/* Parses "CONNECT <port>" (the line without its "\n"; one "\r" before it is allowed).
 * <port> is decimal, no sign, no leading spaces, < 2^32 - 1. Returns 0 or -EINVAL. */
VMM_HIDDEN int vsock_parse_connect(const char *line, size_t len, uint32_t *port);

/* ---- connections ---- */

enum vsock_conn_state {
	VSOCK_CONNECTING,  /* guest -> host: non-blocking connect still in progress */
	VSOCK_HANDSHAKE,   /* host -> guest: reading "CONNECT <port>\n" (not in the table) */
	VSOCK_REQUESTED,   /* host -> guest: REQUEST owed or sent, waiting for RESPONSE */
	VSOCK_ESTABLISHED,
};

/* Control packets a connection owes the guest, sent as rx buffers allow. */
#define VSOCK_OWE_REQUEST (1u << 0)
#define VSOCK_OWE_RESPONSE (1u << 1)
#define VSOCK_OWE_SHUTDOWN (1u << 2)
#define VSOCK_OWE_CREDIT_UPDATE (1u << 3)
#define VSOCK_OWE_CREDIT_REQUEST (1u << 4)

struct vsock;

struct vsock_conn {
	struct vsock *v;
	struct vsock_conn *hnext;        /* hash chain */
	struct vsock_conn *prev, *next;  /* every connection */
	struct vsock_conn *oprev, *onext;/* connections that owe control packets */
	bool in_table, on_owe;
	int fd;
	enum vsock_conn_state state;
	uint32_t guest_port, host_port;
	uint32_t owe;                    /* VSOCK_OWE_* */
	uint32_t shutdown_flags;         /* for VSOCK_OWE_SHUTDOWN */

	/* guest -> host */
	uint32_t rx_cnt;                 /* payload bytes received from the guest */
	uint32_t fwd_cnt;                /* ... of which written to the host socket */
	uint32_t fwd_cnt_sent;           /* fwd_cnt in the last header we gave the guest */
	uint8_t *buf;                    /* VSOCK_BUF_ALLOC ring, allocated when needed */
	uint32_t buf_head, buf_len;
	uint32_t buf_meta;               /* leading buffered bytes that are ours ("OK ...") */
	bool guest_no_send, guest_no_recv; /* the guest's SHUTDOWN flags */
	bool write_shut;                 /* shutdown(SHUT_WR) done */

	/* host -> guest */
	uint32_t tx_cnt;                 /* payload bytes sent to the guest */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	bool host_eof;
	bool credit_requested;           /* a CREDIT_REQUEST went out for this zero-credit spell */

	/* fd watch */
	bool watched;
	uint32_t interest;               /* VMM_LOOP_* bits while watched */
	bool parked;                     /* unwatched because of an error/hang-up we cannot act on yet */
	uint32_t parked_want;

	/* handshake line */
	uint32_t line_len;
	char line[VSOCK_LINE_MAX];
};

/* A reset owed for a connection the device no longer has. */
struct vsock_rst {
	uint64_t src_cid;     /* the CID the guest addressed */
	uint32_t src_port;    /* host side */
	uint32_t dst_port;    /* guest side */
};

/* How guest connections reach the host. connect returns a non-blocking fd (setting
 * *pending if the connect is still in progress) or a negative errno. */
struct vsock_backend {
	int (*connect)(void *ctx, uint32_t port, bool *pending);
	void *ctx;
};

struct vsock_counters {
	uint64_t tx_packets, rx_packets;
	uint64_t tx_bytes, rx_bytes;   /* payload: guest -> host, host -> guest */
	uint64_t rst_sent, dropped, bad_rx_buffers, rst_dropped;
};

struct vsock {
	uint64_t guest_cid;
	uint32_t max_conns, nconns;
	struct vsock_backend be;

	/* Transport side (NULL until activate; dev stays NULL when fuzzing). */
	vmm_virtio_dev *dev;
	vmm_mem *mem;
	vmm_virtq *rxq, *txq;
	bool active, broken;
	bool rx_starved;                 /* the rx queue ran dry; resume on its notify */
	bool rx_used, tx_used;           /* pushed since the last interrupt */
	bool reset_event_owed;           /* TRANSPORT_RESET waits for an event buffer */

	/* Connection table: chained hash on (guest_port, host_port), seeded. */
	struct vsock_conn **buckets;
	uint32_t nbuckets;
	uint64_t seed;
	struct vsock_conn *all;
	struct vsock_conn *owe_head, *owe_tail;
	struct vsock_rst rst[VSOCK_RST_QUEUE];
	uint32_t rst_head, rst_len;
	uint32_t next_port;

	/* Host listener for host-initiated connections (-1 if none). */
	int listen_fd;
	bool listen_watched, listen_paused;
	char *uds_path;
	dev_t listen_dev;
	ino_t listen_ino;

	vmm_virtq_chain *rx_chain, *tx_chain;
	struct iovec iov[VMM_VIRTQ_MAX_SEGS + 2];
	struct vsock_counters stats;
};

/* ---- vsock_conn.c ---- */

/* Sets up the table for max_conns connections. Returns 0 or -ENOMEM. */
VMM_HIDDEN int vsock_table_init(struct vsock *v, uint32_t max_conns);
VMM_HIDDEN void vsock_table_fini(struct vsock *v);
VMM_HIDDEN struct vsock_conn *vsock_conn_find(struct vsock *v, uint32_t guest_port, uint32_t host_port);
/* A new connection owning fd (not yet in the table), or NULL if the limit is reached
 * or memory is short (fd is then not closed). */
VMM_HIDDEN struct vsock_conn *vsock_conn_new(struct vsock *v, int fd, enum vsock_conn_state state);
VMM_HIDDEN void vsock_conn_insert(struct vsock_conn *c);
/* Unwatches and closes the fd, removes c from every list, frees it. */
VMM_HIDDEN void vsock_conn_free(struct vsock_conn *c);
/* A fresh host-side port for a connection to guest_port. Returns 0 or -EADDRINUSE. */
VMM_HIDDEN int vsock_alloc_port(struct vsock *v, uint32_t guest_port, uint32_t *port);

VMM_HIDDEN void vsock_conn_owe(struct vsock_conn *c, uint32_t bits);
VMM_HIDDEN void vsock_conn_owe_clear(struct vsock_conn *c, uint32_t bits);

/* Queues a reset; returns false (and counts it) if the queue is full. */
VMM_HIDDEN bool vsock_rst_push(struct vsock *v, uint64_t src_cid, uint32_t src_port, uint32_t dst_port);

/* The send buffer (guest -> host bytes the host socket did not take yet). */
VMM_HIDDEN int vsock_buf_append(struct vsock_conn *c, const void *data, uint32_t len);
VMM_HIDDEN int vsock_buf_append_chain(struct vsock_conn *c, const vmm_virtq_chain *ch, uint64_t off, uint32_t len);
/* Up to two iovecs covering the buffered bytes in order; returns their count. */
VMM_HIDDEN int vsock_buf_iov(const struct vsock_conn *c, struct iovec iov[2]);
VMM_HIDDEN void vsock_buf_consume(struct vsock_conn *c, uint32_t n);

/* iovecs for `max` bytes of a chain's readable (writable = false) or writable part from
 * byte `off` on. Returns the count (<= VMM_VIRTQ_MAX_SEGS) and the bytes in *bytes. */
VMM_HIDDEN int vsock_chain_iov(const vmm_virtq_chain *ch, bool writable, uint64_t off, uint64_t max,
			       struct iovec *iov, uint64_t *bytes);

/* ---- vsock_engine.c ---- */

/* Handles one guest packet (a popped TX chain). Never fails: bad packets are dropped
 * or answered with a reset. The chain is not pushed. */
VMM_HIDDEN void vsock_tx_packet(struct vsock *v, const vmm_virtq_chain *ch);
/* Pops and handles up to VSOCK_TX_BUDGET TX chains; returns true if more may wait. */
VMM_HIDDEN bool vsock_tx_process(struct vsock *v);
/* The driver added rx buffers: deliver owed packets, resume host sockets. */
VMM_HIDDEN void vsock_rx_kick(struct vsock *v);
/* Sends owed control packets while rx buffers last. */
VMM_HIDDEN void vsock_rx_pump(struct vsock *v);
/* Loop callbacks: a host connection socket (ctx = the conn), the listener (ctx = v). */
VMM_HIDDEN void vsock_conn_event(void *ctx, int fd, uint32_t events);
VMM_HIDDEN void vsock_listen_event(void *ctx, int fd, uint32_t events);
/* Adds an accepted host socket (HANDSHAKE state). Closes fd if it cannot. */
VMM_HIDDEN void vsock_accept_fd(struct vsock *v, int fd);
/* Watches the fd for what the connection's state calls for. Returns false if the
 * connection was closed (a watch failure resets it). */
VMM_HIDDEN bool vsock_conn_update(struct vsock_conn *c);
/* Raises the interrupts owed by this round of work (after pumping owed packets). */
VMM_HIDDEN void vsock_end_work(struct vsock *v);
/* Forgets every connection without telling the guest (device reset / destroy). */
VMM_HIDDEN void vsock_close_all(struct vsock *v);
/* Starts or stops watching the listener (activate / reset). */
VMM_HIDDEN void vsock_listen_set(struct vsock *v, bool on);

/* ---- virtio_vsock.c ---- */

/* A device core without transport: no listener if uds_path is NULL (then be must be set
 * by the caller before packets arrive). Returns 0, -EINVAL, -ENOMEM or a socket errno. */
VMM_HIDDEN int vsock_new(struct vsock **out, uint64_t guest_cid, uint32_t max_conns, const char *uds_path);
VMM_HIDDEN void vsock_free(struct vsock *v);

#endif
