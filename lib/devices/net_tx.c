/* virtio-net transmit queue: each chain is a virtio_net_hdr_v1 and one Ethernet frame in
 * its device-readable part (virtio 1.2, 5.1.6.2). We offer no checksum or segmentation
 * offload, so the header carries nothing we need: it is skipped, not interpreted.
 *
 * The frame is gathered into the device's own buffer (the guest may rewrite its memory
 * while we work; a copy is read once), bounded by NET_MAX_FRAME, and handed to the back
 * end. A malformed chain is still returned to the driver (nothing written), so a broken
 * driver cannot leak descriptors, and is counted in tx_errors.
 */
#include <errno.h>
#include <unistd.h>

#include "net_internal.h"

int vmm_net_tx_frame(const vmm_virtq_chain *c, uint8_t *buf, size_t cap, size_t *len)
{
	uint64_t flen;

	*len = 0;
	if (c->out_bytes < NET_HDR_LEN)
		return vmm_err(-EINVAL, "virtio-net: TX chain of %llu readable bytes has no header",
			       (unsigned long long)c->out_bytes);
	flen = c->out_bytes - NET_HDR_LEN;
	if (flen > NET_MAX_FRAME || flen > cap)
		return vmm_err(-EMSGSIZE, "virtio-net: TX frame of %llu bytes is too long",
			       (unsigned long long)flen);
	if (flen < NET_ETH_HLEN)
		return vmm_err(-EINVAL, "virtio-net: TX frame of %llu bytes is shorter than an "
			       "Ethernet header", (unsigned long long)flen);
	if (vmm_virtq_chain_read(c, NET_HDR_LEN, buf, (size_t)flen) != flen)
		return vmm_err(-EINVAL, "virtio-net: TX chain shorter than it claims");
	*len = (size_t)flen;
	return 0;
}

/* Hands one frame to the back end. Returns true if it was accepted. */
static bool tx_send(struct vmm_net *n, const uint8_t *frame, size_t len)
{
	if (n->backend == VMM_NET_CALLBACK) {
		n->tx(n->tx_ctx, frame, len);
		return true;
	}
	if (n->tap_fd < 0)
		return false;
	/* A TAP write takes a whole frame or fails (EIO while the interface is down, ENOMEM,
	 * EAGAIN): a NIC drops what it cannot send, so do we. */
	ssize_t w;
	do
		w = write(n->tap_fd, frame, len);
	while (w < 0 && errno == EINTR);
	return w == (ssize_t)len;
}

static void tx_count(struct vmm_net *n, bool ok, size_t len)
{
	pthread_mutex_lock(&n->lock);
	if (ok) {
		n->stats.tx_frames++;
		n->stats.tx_bytes += len;
	} else {
		n->stats.tx_errors++;
	}
	pthread_mutex_unlock(&n->lock);
}

int vmm_net_tx_drain(struct vmm_net *n, vmm_virtq *q, vmm_mem *mem, unsigned budget, unsigned *pushed)
{
	unsigned idle_rounds = 0;

	for (;;) {
		unsigned popped = 0;

		/* No doorbells while we drain; re-enabled (and re-checked) once empty. */
		vmm_virtq_set_notify(q, mem, false);
		while (budget > 0) {
			size_t len = 0;
			int r = vmm_virtq_pop(q, mem, &n->chain);
			if (r < 0)
				return r;
			if (r == 0)
				break;
			budget--;
			popped++;
			bool ok = vmm_net_tx_frame(&n->chain, n->frame_buf, NET_MAX_FRAME, &len) == 0 &&
				  tx_send(n, n->frame_buf, len);
			tx_count(n, ok, len);
			r = vmm_virtq_push(q, mem, n->chain.head, 0);
			if (r < 0)
				return vmm_err(-EIO, "virtio-net: TX push failed (%d)", r);
			(*pushed)++;
		}
		if (budget == 0)
			return 1;
		/* set_notify(true) reports buffers that arrived since the last pop (the driver
		 * did not ring for them): go round again. Should it keep saying so while nothing
		 * pops, ask to be called again rather than spin here. */
		if (!vmm_virtq_set_notify(q, mem, true))
			return 0;
		if (popped == 0 && ++idle_rounds > 1)
			return 1;
	}
}
