/* Fuzz target: the virtio-net transmit path (lib/devices/net_tx.c) on chains built from
 * the input (layout in net_fuzz_ring.h): header skipping, gathering over any number of
 * segments, the 65535-byte bound, malformed chains. Beyond "no crash, no sanitizer
 * report" it checks: every popped chain is pushed back once, each counted either as a
 * frame or as an error; frames handed to the back end are 14..65535 bytes; the drain
 * stops within its budget and ends.
 */
#include "net_fuzz_ring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nf *f = nf_load(data, size);
	unsigned pushed = 0;
	int r = 1;

	/* The ring holds at most qsize chains, so a few rounds of 64 always end it. */
	for (unsigned round = 0; round < 8 && r == 1; round++) {
		unsigned before = pushed;
		r = vmm_net_tx_drain(f->n, f->q, f->mem, 64, &pushed);
		nf_check(pushed - before <= 64, "drain stays within its budget");
	}
	nf_check(r != 1, "drain finishes a queue of <= 256 chains within 8 rounds of 64");
	if (r < 0) {
		nf_check(r == -EIO, "a broken ring is -EIO");
		nf_check(vmm_virtq_broken(f->q), "the queue is marked broken");
		nf_check(vmm_last_error()[0] != '\0', "a message explains the failure");
	}
	nf_check(f->n->stats.tx_frames + f->n->stats.tx_errors == pushed, "each chain counted once");
	nf_check(f->n->stats.tx_frames == f->sink_frames, "each frame sent once");
	nf_check((uint16_t)pushed == nf_used_idx(f), "used index matches the pushes");
	return 0;
}
