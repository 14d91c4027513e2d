/* virtio-net receive path: a bounded backlog of frames waiting for the guest, and their
 * delivery into the receive queue (virtio 1.2, 5.1.6.3-5.1.6.4).
 *
 * Every frame reaches the guest as a virtio_net_hdr_v1 (all zero: no offloads) followed
 * by the frame. Without VIRTIO_NET_F_MRG_RXBUF a frame must fit one chain (num_buffers
 * = 1), else it is dropped and counted. With it, a frame fills as many chains as it
 * needs; the first carries the header, and num_buffers says how many used entries the
 * frame occupies. Those entries must be consecutive in the used ring, so the chains a
 * frame has filled are held back until the frame is complete, even across
 * notifications when the guest runs out of buffers half-way.
 *
 * CVE-2020-16843 (Firecracker): a receive queue without buffers must not stall ingress.
 * Here a frame that finds no buffer stays at the head of the backlog, receive-queue
 * notifications are turned on, and the driver's next notification delivers it; the
 * caller (virtio_net.c) stops reading the TAP meanwhile and resumes afterwards.
 */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "net_internal.h"

int vmm_net_backlog_init(struct vmm_net *n, uint32_t cap)
{
	/* Address space for the worst case (cap jumbo frames), memory only as touched:
	 * small frames use the first page of a slot. */
	n->pool_bytes = (size_t)cap * NET_SLOT_SIZE;
	n->pool = mmap(NULL, n->pool_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (n->pool == MAP_FAILED) {
		n->pool = NULL;
		return vmm_err(-ENOMEM, "virtio-net: cannot map a backlog of %u frames", cap);
	}
	n->lens = calloc(cap, sizeof *n->lens);
	if (!n->lens)
		return vmm_err(-ENOMEM, "virtio-net: out of memory");
	n->cap = cap;
	n->first = n->count = 0;
	return 0;
}

void vmm_net_backlog_free(struct vmm_net *n)
{
	if (n->pool)
		munmap(n->pool, n->pool_bytes);
	free(n->lens);
	n->pool = NULL;
	n->lens = NULL;
	n->cap = n->first = n->count = 0;
}

int vmm_net_backlog_push(struct vmm_net *n, const void *frame, size_t len, bool *kick)
{
	int r = 0;

	pthread_mutex_lock(&n->lock);
	if (n->count == n->cap || len > NET_MAX_FRAME) {
		n->stats.rx_dropped++;
		r = -ENOBUFS;
	} else {
		uint32_t slot = (n->first + n->count) % n->cap;
		memcpy(n->pool + (size_t)slot * NET_SLOT_SIZE, frame, len);
		n->lens[slot] = (uint32_t)len;
		n->count++;
		/* One wake-up per batch: the loop clears kick_pending before it delivers. */
		if (kick) {
			*kick = !n->kick_pending;
			n->kick_pending = true;
		}
	}
	pthread_mutex_unlock(&n->lock);
	return r;
}

bool vmm_net_backlog_full(struct vmm_net *n)
{
	pthread_mutex_lock(&n->lock);
	bool full = n->count == n->cap;
	pthread_mutex_unlock(&n->lock);
	return full;
}

/* The frame at the head of the backlog, if any. Its slot stays ours until backlog_pop. */
static bool backlog_peek(struct vmm_net *n, const uint8_t **frame, uint32_t *len)
{
	pthread_mutex_lock(&n->lock);
	bool any = n->count > 0;
	if (any) {
		*frame = n->pool + (size_t)n->first * NET_SLOT_SIZE;
		*len = n->lens[n->first];
	}
	pthread_mutex_unlock(&n->lock);
	return any;
}

/* Frees the head slot: the frame was delivered (or dropped if !delivered). */
static void backlog_pop(struct vmm_net *n, bool delivered)
{
	pthread_mutex_lock(&n->lock);
	if (n->count > 0) {
		if (delivered) {
			n->stats.rx_frames++;
			n->stats.rx_bytes += n->lens[n->first];
		} else {
			n->stats.rx_dropped++;
		}
		n->first = (n->first + 1) % n->cap;
		n->count--;
	}
	pthread_mutex_unlock(&n->lock);
	n->rx_off = 0;
	n->nheld = 0;
}

void vmm_net_rx_reset(struct vmm_net *n)
{
	pthread_mutex_lock(&n->lock);
	n->stats.rx_dropped += n->count;
	n->first = n->count = 0;
	pthread_mutex_unlock(&n->lock);
	n->rx_off = 0;
	n->nheld = 0;
	n->rx_notify = false;
}

/* Guest address of byte `off` of the chain's device-writable part. */
static bool chain_in_gpa(const vmm_virtq_chain *c, uint64_t off, uint64_t *gpa)
{
	unsigned end = (unsigned)c->n_out + c->n_in;

	if (end > VMM_VIRTQ_MAX_SEGS)
		end = VMM_VIRTQ_MAX_SEGS;
	for (unsigned i = c->n_out; i < end; i++) {
		if (off < c->segs[i].len) {
			*gpa = c->segs[i].gpa + off;
			return true;
		}
		off -= c->segs[i].len;
	}
	return false;
}

static int push(vmm_virtq *q, vmm_mem *mem, uint16_t head, uint32_t len, unsigned *pushed)
{
	int r = vmm_virtq_push(q, mem, head, len);
	if (r < 0)
		return vmm_err(-EIO, "virtio-net: RX push failed (%d)", r);
	(*pushed)++;
	return 0;
}

/* Publishes the held chains of the head frame: with their lengths if it is complete,
 * with zero lengths (the driver drops them) if it is not. */
static int release_held(struct vmm_net *n, vmm_virtq *q, vmm_mem *mem, bool complete, unsigned *pushed)
{
	if (complete && n->nheld > 1) {
		/* The first header was written before we knew; patch num_buffers (le16) through
		 * checked guest addresses rather than pointers kept across notifications. */
		uint8_t b[2] = { (uint8_t)n->nheld, (uint8_t)(n->nheld >> 8) };
		vmm_mem_write(mem, n->nb_gpa[0], &b[0], 1);
		vmm_mem_write(mem, n->nb_gpa[1], &b[1], 1);
	}
	for (unsigned i = 0; i < n->nheld; i++) {
		int r = push(q, mem, n->held[i].head, complete ? n->held[i].len : 0, pushed);
		if (r < 0)
			return r;
	}
	backlog_pop(n, complete);
	return 0;
}

/* Without mergeable buffers: the whole frame in this one chain, or dropped. */
static int fill_single(struct vmm_net *n, vmm_virtq *q, vmm_mem *mem, const uint8_t *frame,
		       uint32_t flen, unsigned *pushed)
{
	const vmm_virtq_chain *c = &n->chain;
	uint32_t total = NET_HDR_LEN + flen;
	struct virtio_net_hdr_v1 h;
	int r;

	if (c->in_bytes < total) {
		r = push(q, mem, c->head, 0, pushed);
		backlog_pop(n, false);
		return r;
	}
	memset(&h, 0, sizeof h);
	h.gso_type = VIRTIO_NET_HDR_GSO_NONE;
	h.num_buffers = htole16(1);
	vmm_virtq_chain_write(c, 0, &h, NET_HDR_LEN);
	vmm_virtq_chain_write(c, NET_HDR_LEN, frame, flen);
	r = push(q, mem, c->head, total, pushed);
	backlog_pop(n, true);
	return r;
}

/* With mergeable buffers: as much of the frame as this chain takes. */
static int fill_mergeable(struct vmm_net *n, vmm_virtq *q, vmm_mem *mem, const uint8_t *frame,
			  uint32_t flen, unsigned *pushed)
{
	const vmm_virtq_chain *c = &n->chain;
	uint32_t total = NET_HDR_LEN + flen;
	uint32_t left = total - n->rx_off;
	uint32_t take = c->in_bytes < left ? (uint32_t)c->in_bytes : left;
	uint16_t limit = vmm_virtq_size(q);

	if (limit == 0 || limit > NET_MAX_HELD)
		limit = NET_MAX_HELD;
	/* A buffer that cannot hold the header cannot start a frame (the spec requires at
	 * least the header's size), and an empty one cannot continue it: hand such buffers
	 * straight back. Their used entries land before those of the frame, which therefore
	 * stay consecutive. */
	if ((n->rx_off == 0 && c->in_bytes < NET_HDR_LEN) || take == 0)
		return push(q, mem, c->head, 0, pushed);

	if (n->rx_off == 0) {
		struct virtio_net_hdr_v1 h;
		memset(&h, 0, sizeof h);
		h.gso_type = VIRTIO_NET_HDR_GSO_NONE;
		h.num_buffers = htole16(take == total ? 1 : 0);
		vmm_virtq_chain_write(c, 0, &h, NET_HDR_LEN);
		vmm_virtq_chain_write(c, NET_HDR_LEN, frame, take - NET_HDR_LEN);
		if (take < total) {
			uint64_t nb = offsetof(struct virtio_net_hdr_v1, num_buffers);
			if (!chain_in_gpa(c, nb, &n->nb_gpa[0]) || !chain_in_gpa(c, nb + 1, &n->nb_gpa[1]))
				return vmm_err(-EIO, "virtio-net: RX chain lost its header bytes");
		}
	} else {
		vmm_virtq_chain_write(c, 0, frame + (n->rx_off - NET_HDR_LEN), take);
	}
	n->held[n->nheld].head = c->head;
	n->held[n->nheld].len = take;
	n->nheld++;
	n->rx_off += take;

	if (n->rx_off == total)
		return release_held(n, q, mem, true, pushed);
	/* The guest can have no more than `limit` chains outstanding: if they all hold part
	 * of this frame and it still does not fit, it never will. */
	if (n->nheld >= limit)
		return release_held(n, q, mem, false, pushed);
	return 0;
}

int vmm_net_rx_deliver(struct vmm_net *n, vmm_virtq *q, vmm_mem *mem, unsigned budget, unsigned *pushed)
{
	int r;

	for (;;) {
		const uint8_t *frame;
		uint32_t flen;

		if (!backlog_peek(n, &frame, &flen)) {
			r = NET_RX_IDLE;
			break;
		}
		if (budget == 0) {
			r = NET_RX_MORE;
			break;
		}
		r = vmm_virtq_pop(q, mem, &n->chain);
		if (r < 0)
			return r;
		budget--;
		if (r == 0) {
			/* No buffer: ask the driver to notify us when it adds some. If some arrived
			 * meanwhile, retry (the budget bounds the retries). */
			n->rx_notify = true;
			if (vmm_virtq_set_notify(q, mem, true))
				continue;
			return NET_RX_STALLED;
		}
		r = n->mrg ? fill_mergeable(n, q, mem, frame, flen, pushed)
			   : fill_single(n, q, mem, frame, flen, pushed);
		if (r < 0)
			return r;
	}
	/* Not waiting for buffers: frames pull them, the driver need not ring for each. */
	if (n->rx_notify) {
		n->rx_notify = false;
		vmm_virtq_set_notify(q, mem, false);
	}
	return r;
}
