/* Shared by fuzz_net_tx.c and fuzz_net_rx.c: a standalone guest memory map with one
 * split ring whose descriptors, avail ring and buffer contents come from the input, and
 * a virtio-net state (callback back end) to run the TX or RX path on it.
 *
 * Input layout (little-endian):
 *   [0]      config: bit 0 mergeable RX buffers, bit 1 EVENT_IDX, bit 2 indirect
 *            descriptors, bits 4-7 queue size 1 << (n % 9)
 *   [1..2]   avail->idx
 *   [3..6]   RX only: two frame lengths (u16 each; 0 = none)
 *   then     one 8-byte compact descriptor per queue entry:
 *              addr u16 (x 8 from NF_DATA = the GPA), len u16, flags u8, next u8
 *            flags bits 0-2: NEXT, WRITE, INDIRECT; bit 5: address from 0, not NF_DATA
 *            (buffers over the rings themselves); bit 6: address near 2^64 (wraps);
 *            bit 7: len x 256 (buffers past the end of RAM, chains over 64 KiB)
 *   then     one u16 avail ring entry per queue entry
 *   the rest fills guest memory from NF_DATA (indirect tables, frame bytes).
 * Missing bytes are zero. The compact form keeps most addresses inside RAM, so the
 * fuzzer spends its time on chain shapes rather than on addresses the walker rejects.
 */
#ifndef FUZZ_NET_RING_H
#define FUZZ_NET_RING_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvmm/libvmm.h>
#include "devices/net_internal.h"

#define NF_RAM (1u << 20)
#define NF_DESC 0x0u
#define NF_AVAIL 0x1000u
#define NF_USED 0x2000u
#define NF_DATA 0x3000u
#define NF_HDR 7u

struct nf {
	vmm_mem *mem;
	uint8_t *ram;
	vmm_virtq *q;
	struct vmm_net *n;
	uint16_t qsize;
	bool rings_exposed; /* a buffer may overlap the rings: their contents prove nothing */
	uint64_t sink_frames, sink_sum;
};

static void nf_check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_net: broken promise: %s (last error: %s)\n", what, vmm_last_error());
		abort();
	}
}

static void nf_tx(void *ctx, const void *frame, size_t len)
{
	struct nf *f = ctx;
	const uint8_t *p = frame;
	nf_check(len >= NET_ETH_HLEN && len <= NET_MAX_FRAME, "tx frame length within bounds");
	for (size_t i = 0; i < len; i++) /* every byte readable (ASan) */
		f->sink_sum += p[i];
	f->sink_frames++;
}

/* Built once: a map, a queue and the net state per input would dominate the run. */
static struct nf *nf_get(void)
{
	static struct nf f;
	if (f.mem)
		return &f;
	nf_check(vmm_mem_create(&f.mem) == 0, "vmm_mem_create");
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.len = NF_RAM;
	o.backing = VMM_MEM_ANON;
	nf_check(vmm_mem_add_region(f.mem, &o) == 0, "add region");
	void *host;
	nf_check(vmm_mem_translate(f.mem, 0, NF_RAM, true, &host) == 0, "translate");
	f.ram = host;
	nf_check(vmm_virtq_create(&f.q, NET_QUEUE_SIZE) == 0, "vmm_virtq_create");
	vmm_virtio_net_opts no = VMM_VIRTIO_NET_OPTS_INIT;
	no.backend = VMM_NET_CALLBACK;
	no.tx = nf_tx;
	no.ctx = &f;
	no.rx_backlog = 4;
	nf_check(vmm_net_new(&f.n, &no) == 0, "vmm_net_new");
	return &f;
}

static uint16_t nf_u16(const uint8_t *data, size_t size, size_t off)
{
	uint16_t lo = off < size ? data[off] : 0, hi = off + 1 < size ? data[off + 1] : 0;
	return (uint16_t)(lo | hi << 8);
}

/* Lays the input out in guest memory, enables the queue (the rings sit at fixed,
 * valid addresses, so that cannot fail) and resets the net state. */
static struct nf *nf_load(const uint8_t *data, size_t size)
{
	struct nf *f = nf_get();
	uint8_t cfg = size ? data[0] : 0;
	size_t p = NF_HDR;

	f->qsize = (uint16_t)(1u << ((cfg >> 4) % 9));
	f->rings_exposed = cfg & 4; /* indirect tables hold raw addresses */
	memset(f->ram, 0, NF_RAM);
	for (uint16_t i = 0; i < f->qsize; i++, p += 8) {
		uint64_t addr = (uint64_t)nf_u16(data, size, p) * 8;
		uint32_t len = nf_u16(data, size, p + 2);
		uint8_t fl = p + 4 < size ? data[p + 4] : 0;
		uint16_t flags = fl & 7, next = p + 5 < size ? data[p + 5] : 0;
		if (!(fl & 0x20))
			addr += NF_DATA;
		if (fl & 0x40)
			addr += 0xffffffffffff0000ull; /* wraps to a low address if addr is large */
		if (fl & 0x60)
			f->rings_exposed = true;
		if (fl & 0x80)
			len <<= 8;
		uint8_t *d = f->ram + NF_DESC + 16u * i;
		memcpy(d, &addr, 8);
		memcpy(d + 8, &len, 4);
		memcpy(d + 12, &flags, 2);
		memcpy(d + 14, &next, 2);
	}
	for (uint16_t i = 0; i < f->qsize; i++, p += 2) {
		uint16_t e = nf_u16(data, size, p);
		memcpy(f->ram + NF_AVAIL + 4 + 2u * i, &e, 2);
	}
	if (p < size) {
		size_t n = size - p;
		if (n > NF_RAM - NF_DATA)
			n = NF_RAM - NF_DATA;
		memcpy(f->ram + NF_DATA, data + p, n);
	}
	uint16_t idx = nf_u16(data, size, 1);
	memcpy(f->ram + NF_AVAIL + 2, &idx, 2);

	vmm_virtq_reset(f->q);
	nf_check(vmm_virtq_set_size(f->q, f->qsize) == 0, "set_size");
	nf_check(vmm_virtq_set_addrs(f->q, NF_DESC, NF_AVAIL, NF_USED) == 0, "set_addrs");
	vmm_virtq_set_features(f->q, cfg & 4, cfg & 2);
	nf_check(vmm_virtq_enable(f->q, f->mem) == 0, "enable");

	vmm_net_rx_reset(f->n);
	memset(&f->n->stats, 0, sizeof f->n->stats);
	f->n->mrg = cfg & 1;
	f->sink_frames = f->sink_sum = 0;
	return f;
}

/* The used index the device published. */
static uint16_t nf_used_idx(struct nf *f)
{
	uint16_t v;
	memcpy(&v, f->ram + NF_USED + 2, 2);
	return v;
}

#endif
