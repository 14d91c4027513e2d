/* Fuzz target: the virtio-vsock protocol engine (lib/devices/vsock_*.c) without a
 * transport. Guest packets are chains built from the input over a standalone guest
 * memory map; host sockets are socketpairs whose far ends the input writes, drains,
 * half-closes and closes; the rx queue is a real split ring in that memory whose buffers
 * the input posts. Beyond "no crash, no sanitizer report, no fd leak" it checks:
 *  - every packet the device puts in an rx buffer is well formed (to the guest's CID,
 *    stream type, a known op, len matching the used length, RW payload <= 64 KiB,
 *    control packets without payload, from the host CID unless it is a reset);
 *  - on connections the guest opened, RW data never exceeds the credit the guest
 *    granted (its last buf_alloc/fwd_cnt);
 *  - the connection table stays within max_connections and consistent; send buffers
 *    stay within VSOCK_BUF_ALLOC; the reset queue within its bound.
 *
 * Input: a sequence of records, each starting with a kind byte (kind % 4):
 *   0 guest packet: u8 shape (bits 0-1: readable segments - 1; bit 2: add a writable
 *     segment; bit 3: x16 segment lengths), u16 length per segment, u16 count of input
 *     bytes that follow as the packet's contents (header first; the rest is zeros)
 *   1 host activity: u8 op (bits 0-2 socket index; bit 3 write u16 len + bytes into
 *     it; bit 4 drain it; bit 5 half-close; bit 6 close), then run the "loop"
 *   2 rx buffers: u8 count (% 17), u16 size each (bit 15: split header/payload into two
 *     descriptors), then the driver's notify
 *   3 host connection: u8 len + that many handshake bytes ("CONNECT 5000\n" ...)
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libvmm/libvmm.h>
#include "devices/vsock_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define VF_RAM (4u << 20)
#define VF_DESC 0x0u
#define VF_AVAIL 0x1000u
#define VF_USED 0x2000u
#define VF_RX 0x10000u           /* 16 slots x 0x11000 */
#define VF_RX_STRIDE 0x11000u
#define VF_TX 0x200000u          /* guest packets: 2 MiB */
#define VF_QSIZE 32u
#define VF_SLOTS 16u
#define VF_CID 3u
#define VF_MAX_CONNS 4u
#define VF_PAIRS 16u
#define VF_TRACK 16u

struct track {
	bool valid;
	uint32_t guest_port, host_port;
	uint32_t buf_alloc, fwd_cnt, received;
};

struct pair {
	int a, b;                 /* a: the device's end (closed by it), b: ours */
};

struct vf {
	vmm_mem *mem;
	uint8_t *ram;
	vmm_virtq *rxq;
	vmm_virtq_chain *chain;
	struct vsock *v;
	uint16_t avail_idx, used_seen;
	uint32_t slot_len[VF_SLOTS];
	struct pair pairs[VF_PAIRS];
	unsigned npairs;
	struct track track[VF_TRACK];
};

static void vf_check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_vsock: broken promise: %s\n", what);
		abort();
	}
}

struct rd {
	const uint8_t *d;
	size_t n, p;
};

static uint8_t rd_u8(struct rd *r) { return r->p < r->n ? r->d[r->p++] : 0; }
static uint16_t rd_u16(struct rd *r)
{
	uint16_t lo = rd_u8(r);
	return (uint16_t)(lo | rd_u8(r) << 8);
}
static size_t rd_bytes(struct rd *r, void *dst, size_t len)
{
	size_t k = r->n - r->p < len ? r->n - r->p : len;
	memcpy(dst, r->d + r->p, k);
	memset((uint8_t *)dst + k, 0, len - k);
	r->p += k;
	return k;
}

static struct vf *vf_get(void)
{
	static struct vf f;
	if (f.mem)
		return &f;
	vf_check(vmm_mem_create(&f.mem) == 0, "vmm_mem_create");
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.len = VF_RAM;
	o.backing = VMM_MEM_ANON;
	vf_check(vmm_mem_add_region(f.mem, &o) == 0, "add region");
	void *host;
	vf_check(vmm_mem_translate(f.mem, 0, VF_RAM, true, &host) == 0, "translate");
	f.ram = host;
	vf_check(vmm_virtq_create(&f.rxq, VF_QSIZE) == 0, "vmm_virtq_create");
	f.chain = malloc(sizeof *f.chain);
	vf_check(f.chain != NULL, "chain");
	return &f;
}

/* ---- the host side: socketpairs ---- */

static bool fd_in_use(struct vf *f, int fd)
{
	for (struct vsock_conn *c = f->v->all; c; c = c->next)
		if (c->fd == fd)
			return true;
	return false;
}

/* Drops pairs whose device end the device closed (its fd number may come back). */
static void pairs_gc(struct vf *f)
{
	for (unsigned i = 0; i < f->npairs;) {
		if (fd_in_use(f, f->pairs[i].a)) {
			i++;
			continue;
		}
		if (f->pairs[i].b >= 0)
			close(f->pairs[i].b);
		f->pairs[i] = f->pairs[--f->npairs];
	}
}

static int pair_new(struct vf *f, int *a)
{
	pairs_gc(f);
	if (f->npairs >= VF_PAIRS)
		return -EMFILE;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* Small buffers: partial writes and the device's own buffering get exercised. */
	int sz = 4096;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	f->pairs[f->npairs++] = (struct pair){ sv[0], sv[1] };
	*a = sv[0];
	return 0;
}

/* The back end: port % 3 == 0 refuses, 1 connects at once, 2 "in progress". */
static int vf_connect(void *ctx, uint32_t port, bool *pending)
{
	struct vf *f = ctx;
	if (port % 3 == 0)
		return -ECONNREFUSED;
	int a;
	int r = pair_new(f, &a);
	if (r < 0)
		return r;
	*pending = port % 3 == 2;
	return a;
}

/* One pass of a level-triggered loop over the watched connections. */
static void run_loop(struct vf *f)
{
	for (int round = 0; round < 4; round++) {
		struct pollfd p[VF_MAX_CONNS + 1];
		nfds_t n = 0;
		for (struct vsock_conn *c = f->v->all; c && n < VF_MAX_CONNS + 1; c = c->next) {
			if (!c->watched)
				continue;
			p[n].fd = c->fd;
			p[n].events = (short)(((c->interest & VMM_LOOP_IN) ? POLLIN : 0) |
					      ((c->interest & VMM_LOOP_OUT) ? POLLOUT : 0));
			p[n].revents = 0;
			n++;
		}
		if (n == 0 || poll(p, n, 0) <= 0)
			return;
		for (nfds_t i = 0; i < n; i++) {
			if (!p[i].revents)
				continue;
			struct vsock_conn *c = f->v->all;
			while (c && c->fd != p[i].fd)
				c = c->next;
			if (!c || !c->watched)
				continue; /* closed (or parked) by an earlier callback */
			uint32_t ev = ((p[i].revents & POLLIN) ? VMM_LOOP_IN : 0) |
				      ((p[i].revents & POLLOUT) ? VMM_LOOP_OUT : 0) |
				      ((p[i].revents & (POLLERR | POLLHUP)) ? VMM_LOOP_ERR : 0);
			vsock_conn_event(c, c->fd, ev);
		}
	}
}

static void host_activity(struct vf *f, struct rd *r)
{
	uint8_t op = rd_u8(r);
	pairs_gc(f);
	if (f->npairs == 0) {
		run_loop(f);
		return;
	}
	struct pair *p = &f->pairs[(op & 7) % f->npairs];
	static uint8_t buf[65536];
	if (op & 8) {
		uint16_t len = rd_u16(r);
		size_t got = rd_bytes(r, buf, len);
		if (p->b >= 0 && got)
			(void)!send(p->b, buf, got, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	if ((op & 16) && p->b >= 0)
		while (recv(p->b, buf, sizeof buf, MSG_DONTWAIT) > 0)
			;
	if ((op & 32) && p->b >= 0)
		shutdown(p->b, SHUT_WR);
	if ((op & 64) && p->b >= 0) {
		close(p->b);
		p->b = -1;
	}
	run_loop(f);
}

static void host_connect(struct vf *f, struct rd *r)
{
	uint8_t len = rd_u8(r);
	char line[256];
	size_t got = rd_bytes(r, line, len);
	int a;
	if (pair_new(f, &a) < 0)
		return;
	if (got)
		(void)!send(f->pairs[f->npairs - 1].b, line, got, MSG_DONTWAIT | MSG_NOSIGNAL);
	vsock_accept_fd(f->v, a);
	run_loop(f);
}

/* ---- the guest side ---- */

static struct track *track_find(struct vf *f, uint32_t gp, uint32_t hp, bool make)
{
	struct track *free_t = NULL;
	for (unsigned i = 0; i < VF_TRACK; i++) {
		struct track *t = &f->track[i];
		if (t->valid && t->guest_port == gp && t->host_port == hp)
			return t;
		if (!t->valid && !free_t)
			free_t = t;
	}
	if (!make)
		return NULL;
	if (!free_t)
		free_t = &f->track[gp % VF_TRACK];
	memset(free_t, 0, sizeof *free_t);
	free_t->guest_port = gp;
	free_t->host_port = hp;
	return free_t;
}

static void guest_packet(struct vf *f, struct rd *r)
{
	uint8_t shape = rd_u8(r);
	unsigned nout = (shape & 3) + 1;
	vmm_virtq_chain *ch = f->chain;
	memset(ch, 0, offsetof(vmm_virtq_chain, segs));
	uint64_t off = VF_TX;
	for (unsigned i = 0; i < nout + ((shape & 4) ? 1 : 0); i++) {
		uint32_t len = rd_u16(r);
		if (shape & 8)
			len <<= 4;
		if (off + len > VF_RAM)
			len = (uint32_t)(VF_RAM - off);
		ch->segs[i] = (vmm_virtq_seg){ f->ram + off, len, off };
		off += len;
		if (i < nout) {
			ch->n_out++;
			ch->out_bytes += len;
		} else {
			ch->n_in++;
			ch->in_bytes += len;
		}
	}
	/* Packet bytes: what the input has left for them, zeros after. */
	size_t want = (size_t)ch->out_bytes;
	size_t have = r->n - r->p < want ? r->n - r->p : want;
	uint16_t plen = rd_u16(r); /* how much of the input this packet takes */
	if (have > plen)
		have = plen;
	rd_bytes(r, f->ram + VF_TX, have);
	memset(f->ram + VF_TX + have, 0, want - have);

	/* What the guest told the device about its credit, for the RX check. */
	if (ch->out_bytes >= VSOCK_HDR_LEN) {
		struct vsock_hdr h;
		const char *why;
		vsock_hdr_decode(f->ram + VF_TX, &h);
		if (vsock_hdr_check(&h, VF_CID, ch->out_bytes - VSOCK_HDR_LEN, &why) == VSOCK_PKT_OK) {
			struct track *t = track_find(f, h.src_port, h.dst_port, h.op == VIRTIO_VSOCK_OP_REQUEST);
			if (t && h.op == VIRTIO_VSOCK_OP_REQUEST)
				t->valid = true;
			if (t && h.op == VIRTIO_VSOCK_OP_RST)
				t->valid = false;
			if (t) {
				t->buf_alloc = h.buf_alloc;
				t->fwd_cnt = h.fwd_cnt;
			}
		}
	}
	vsock_tx_packet(f->v, ch);
	vsock_end_work(f->v);
}

static void post_rx(struct vf *f, struct rd *r)
{
	unsigned n = rd_u8(r) % (VF_SLOTS + 1);
	for (unsigned k = 0; k < n; k++) {
		uint16_t sz = rd_u16(r);
		if ((uint16_t)(f->avail_idx - f->used_seen) >= VF_SLOTS)
			continue;
		unsigned slot = f->avail_idx % VF_SLOTS;
		uint32_t len = (sz & 0x7fff) + ((sz & 0x4000) ? 0x8000u : 0); /* up to ~64 KiB */
		uint64_t gpa = VF_RX + (uint64_t)slot * VF_RX_STRIDE;
		uint8_t *d0 = f->ram + VF_DESC + 16u * (2 * slot);
		uint8_t *d1 = d0 + 16;
		uint16_t head = (uint16_t)(2 * slot);
		if ((sz & 0x8000) && len > VSOCK_HDR_LEN) {
			uint64_t g1 = gpa + VSOCK_HDR_LEN;
			uint32_t l0 = VSOCK_HDR_LEN, l1 = len - VSOCK_HDR_LEN;
			uint16_t fl0 = 2 | 1, fl1 = 2, nx = (uint16_t)(head + 1);
			memcpy(d0, &gpa, 8), memcpy(d0 + 8, &l0, 4), memcpy(d0 + 12, &fl0, 2), memcpy(d0 + 14, &nx, 2);
			memcpy(d1, &g1, 8), memcpy(d1 + 8, &l1, 4), memcpy(d1 + 12, &fl1, 2);
		} else {
			uint16_t fl = 2;
			memcpy(d0, &gpa, 8), memcpy(d0 + 8, &len, 4), memcpy(d0 + 12, &fl, 2);
		}
		f->slot_len[slot] = len;
		memcpy(f->ram + VF_AVAIL + 4 + 2 * (f->avail_idx % VF_QSIZE), &head, 2);
		f->avail_idx++;
		memcpy(f->ram + VF_AVAIL + 2, &f->avail_idx, 2);
	}
	vsock_rx_kick(f->v);
	vsock_end_work(f->v);
}

/* Checks every packet the device returned since the last call. */
static void scan_rx(struct vf *f)
{
	uint16_t used;
	memcpy(&used, f->ram + VF_USED + 2, 2);
	vf_check((uint16_t)(used - f->used_seen) <= (uint16_t)(f->avail_idx - f->used_seen),
		 "no more used than available");
	for (; f->used_seen != used; f->used_seen++) {
		uint32_t id, len;
		const uint8_t *e = f->ram + VF_USED + 4 + 8 * (f->used_seen % VF_QSIZE);
		memcpy(&id, e, 4);
		memcpy(&len, e + 4, 4);
		vf_check(id % 2 == 0 && id < 2 * VF_SLOTS, "used id is a head we posted");
		unsigned slot = id / 2;
		vf_check(len <= f->slot_len[slot], "used length within the buffer");
		if (len == 0) {
			vf_check(f->slot_len[slot] < VSOCK_HDR_LEN, "only too-small buffers come back empty");
			continue;
		}
		vf_check(len >= VSOCK_HDR_LEN, "a packet has a header");
		struct vsock_hdr h;
		vsock_hdr_decode(f->ram + VF_RX + (uint64_t)slot * VF_RX_STRIDE, &h);
		vf_check(h.dst_cid == VF_CID, "to the guest's CID");
		vf_check(h.op == VIRTIO_VSOCK_OP_RST || h.src_cid == VSOCK_HOST_CID, "from the host");
		vf_check(h.type == VIRTIO_VSOCK_TYPE_STREAM, "stream type");
		vf_check(h.op >= VIRTIO_VSOCK_OP_REQUEST && h.op <= VIRTIO_VSOCK_OP_CREDIT_REQUEST, "known op");
		vf_check(h.len == len - VSOCK_HDR_LEN, "len matches the used length");
		vf_check(h.op == VIRTIO_VSOCK_OP_RW ? h.len <= VSOCK_MAX_PAYLOAD : h.len == 0, "payload size");
		vf_check(h.buf_alloc == VSOCK_BUF_ALLOC || h.op == VIRTIO_VSOCK_OP_RST, "our buffer");
		struct track *t = track_find(f, h.dst_port, h.src_port, false);
		if (!t)
			continue;
		if (h.op == VIRTIO_VSOCK_OP_RST || h.op == VIRTIO_VSOCK_OP_REQUEST) {
			t->valid = false; /* gone, or a host connection we do not track */
		} else if (h.op == VIRTIO_VSOCK_OP_RW) {
			uint32_t before = t->received - t->fwd_cnt;
			vf_check(before <= t->buf_alloc && h.len <= t->buf_alloc - before, "within the guest's credit");
			t->received += h.len;
		}
	}
}

static void check_state(struct vf *f)
{
	struct vsock *v = f->v;
	unsigned n = 0;
	for (struct vsock_conn *c = v->all; c; c = c->next) {
		n++;
		vf_check(c->buf_len <= VSOCK_BUF_ALLOC, "send buffer bound");
		vf_check(!c->buf_len || c->buf, "buffered bytes have a buffer");
		vf_check(c->buf_meta <= c->buf_len, "our bytes are in the buffer");
		vf_check(!c->in_table || vsock_conn_find(v, c->guest_port, c->host_port) == c, "table finds it");
		vf_check(c->in_table || c->state == VSOCK_HANDSHAKE, "only handshakes are outside the table");
		vf_check(c->on_owe == (c->owe != 0), "owe list matches owed packets");
	}
	vf_check(n == v->nconns && n <= VF_MAX_CONNS, "connection count");
	vf_check(v->rst_len <= VSOCK_RST_QUEUE, "reset queue bound");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vf *f = vf_get();
	memset(f->ram, 0, VF_RX + VF_SLOTS * VF_RX_STRIDE);
	memset(f->track, 0, sizeof f->track);
	f->avail_idx = f->used_seen = 0;
	f->npairs = 0;
	vmm_virtq_reset(f->rxq);
	vf_check(vmm_virtq_set_size(f->rxq, VF_QSIZE) == 0, "set_size");
	vf_check(vmm_virtq_set_addrs(f->rxq, VF_DESC, VF_AVAIL, VF_USED) == 0, "set_addrs");
	vmm_virtq_set_features(f->rxq, false, false);
	vf_check(vmm_virtq_enable(f->rxq, f->mem) == 0, "enable");

	vf_check(vsock_new(&f->v, VF_CID, VF_MAX_CONNS, NULL) == 0, "vsock_new");
	f->v->be.connect = vf_connect;
	f->v->be.ctx = f;
	f->v->mem = f->mem;
	f->v->rxq = f->rxq;
	f->v->active = true;

	struct rd r = { data, size, 0 };
	for (unsigned rec = 0; r.p < r.n && rec < 256; rec++) {
		switch (rd_u8(&r) % 4) {
		case 0:
			guest_packet(f, &r);
			break;
		case 1:
			host_activity(f, &r);
			break;
		case 2:
			post_rx(f, &r);
			break;
		default:
			host_connect(f, &r);
			break;
		}
		scan_rx(f);
		check_state(f);
	}

	vsock_free(f->v);
	f->v = NULL;
	for (unsigned i = 0; i < f->npairs; i++)
		if (f->pairs[i].b >= 0)
			close(f->pairs[i].b);
	f->npairs = 0;
	return 0;
}
