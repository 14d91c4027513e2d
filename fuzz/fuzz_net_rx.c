/* Fuzz target: the virtio-net receive path (lib/devices/net_rx.c): up to two frames
 * delivered into receive chains built from the input (layout in net_fuzz_ring.h), with
 * or without mergeable buffers, across several delivery rounds. Checks beyond "no
 * crash, no sanitizer report": every frame ends up delivered, dropped or still waiting
 * (never lost or duplicated); the used lengths add up to exactly the headers and bytes
 * of the delivered frames (dropped frames and unusable buffers come back empty);
 * delivery stays within its budget.
 */
#include "net_fuzz_ring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t frame_buf[NET_MAX_FRAME];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nf *f = nf_load(data, size);
	unsigned pushed = 0, queued = 0;
	uint64_t queued_bytes = 0;
	int r = NET_RX_MORE;

	for (unsigned i = 0; i < 2; i++) {
		uint16_t len = nf_u16(data, size, 3 + 2u * i);
		if (len == 0)
			continue;
		for (uint32_t b = 0; b < len; b++)
			frame_buf[b] = (uint8_t)(b * 31u + i);
		nf_check(vmm_net_backlog_push(f->n, frame_buf, len, NULL) == 0, "backlog takes 2 frames");
		queued++;
		queued_bytes += len;
	}
	for (unsigned round = 0; round < 8 && r == NET_RX_MORE; round++) {
		unsigned before = pushed;
		r = vmm_net_rx_deliver(f->n, f->q, f->mem, 64, &pushed);
		nf_check(pushed - before <= 64 + NET_MAX_HELD, "delivery stays within its budget");
	}
	if (r < 0) {
		nf_check(r == -EIO, "a broken ring is -EIO");
		nf_check(vmm_last_error()[0] != '\0', "a message explains the failure");
	}
	const vmm_virtio_net_stats *st = &f->n->stats;
	nf_check(st->rx_frames + st->rx_dropped + f->n->count == queued, "no frame lost or duplicated");
	nf_check(st->rx_bytes <= queued_bytes, "no more bytes delivered than queued");
	if (r == NET_RX_IDLE)
		nf_check(f->n->count == 0 && f->n->nheld == 0, "idle means nothing waits");
	nf_check(pushed <= f->qsize, "no more used entries than chains the ring can offer");
	if (f->rings_exposed)
		return 0; /* frame bytes may have landed on the used ring */
	nf_check((uint16_t)pushed == nf_used_idx(f), "used index matches the pushes");
	uint64_t used_bytes = 0;
	for (unsigned i = 0; i < pushed; i++) {
		uint32_t len;
		memcpy(&len, f->ram + NF_USED + 4 + 8u * i + 4, 4);
		used_bytes += len;
	}
	nf_check(used_bytes == st->rx_bytes + (uint64_t)NET_HDR_LEN * st->rx_frames,
		 "used lengths are the delivered headers and frames");
	return 0;
}
