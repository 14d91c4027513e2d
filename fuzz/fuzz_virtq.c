/* Fuzz target: the split virtqueue (lib/virtio/virtq.c) driven by a hostile driver.
 *
 * The input configures one queue and then plays a script of driver and device steps on
 * a small standalone map: RAM [0x10000, +64K) and ROM [0x30000, +4K) (read-only), rings
 * by default at RAM +0 (descriptors), +0x1000 (avail), +0x2000 (used), indirect tables
 * at +0x3000. Format (little-endian), see gen_virtq_seeds.py:
 *
 *   byte 0     bits 0-3: log2 of the queue size (mod 9); bit 4: INDIRECT_DESC;
 *              bit 5: EVENT_IDX; bit 6: three u16 ring offsets from RAM follow
 *   then ops   one byte each, op = b & 7, arg = b >> 3, with operands:
 *     0 pop
 *     1 push an in-flight chain          u8 which, u32 written
 *     2 poke guest RAM                   u16 offset, u8 len, len bytes
 *     3 need_interrupt (arg 31: reset the queue and enable it again)
 *     4 set_notify(arg & 1)
 *     5 push any head                    u16 head, u32 written
 *     6 driver adds an avail entry       u16 head
 *     7 driver writes a descriptor       u16 index, u16 addr, u16 len, u8 flags, u16 next
 *       (arg bit 0: into the indirect area; bit 1: addr in ROM; bit 2: addr near 2^64;
 *        bit 3: len << 16)
 *
 * Beyond "no crash, no sanitizer report" it checks the queue's promises: pop returns 1,
 * 0 or -EIO (with a message, and broken for good); every popped segment lies inside
 * guest RAM (writable ones outside ROM) and the counts add up; no head is handed out
 * twice while in flight; a push publishes exactly one used element with the clamped
 * length; the copies move exactly the bytes the segments hold.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_ring.h>

#include <libvmm/libvmm.h>
#include <libvmm/sys/virtq.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM 0x10000ull
#define RAM_LEN 0x10000ull
#define ROM 0x30000ull
#define ROM_LEN 0x1000ull
#define IND_AREA (RAM + 0x3000)
#define QMAX 256

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_virtq: broken promise: %s (last error: %s)\n", what, vmm_last_error());
		abort();
	}
}

/* Built once: creating maps and queues per input would dominate. */
static struct {
	vmm_mem *mem;
	uint8_t *ram, *rom;
	vmm_virtq *q;
	vmm_virtq_chain chain;
	uint8_t scratch[0x10000];
} g;

/* Per-input state of the script. */
struct run {
	const uint8_t *p, *end;
	uint16_t size;
	uint64_t desc, avail, used;
	bool indirect, event_idx;
	bool enabled;
	uint16_t avail_idx;     /* the driver's */
	uint16_t used_idx;      /* what the device has published, by our count */
	uint16_t n_flight;
	uint16_t flight[QMAX];  /* in-flight heads */
	uint32_t flight_in[QMAX]; /* their writable bytes (clamped) */
};

static void init(void)
{
	static const struct { uint64_t gpa, len; uint32_t flags; } map[] = {
		{ RAM, RAM_LEN, 0 },
		{ ROM, ROM_LEN, VMM_MEM_READONLY },
	};
	if (g.mem)
		return;
	check(vmm_mem_create(&g.mem) == 0, "vmm_mem_create");
	for (unsigned i = 0; i < 2; i++) {
		vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
		o.gpa = map[i].gpa;
		o.len = map[i].len;
		o.flags = map[i].flags;
		o.backing = VMM_MEM_ANON;
		check(vmm_mem_add_region(g.mem, &o) == 0, "vmm_mem_add_region");
		vmm_mem_region_info info;
		check(vmm_mem_get_region(g.mem, i, &info) == 0, "vmm_mem_get_region");
		*(i ? &g.rom : &g.ram) = info.host;
	}
	check(vmm_virtq_create(&g.q, QMAX) == 0, "vmm_virtq_create");
}

static bool take(struct run *r, void *out, size_t n)
{
	if ((size_t)(r->end - r->p) < n)
		return false;
	memcpy(out, r->p, n);
	r->p += n;
	return true;
}

/* Guest RAM access by the harness (the driver side): only inside RAM. */
static void ram_put(uint64_t gpa, const void *src, size_t n)
{
	if (gpa >= RAM && gpa - RAM <= RAM_LEN && n <= RAM_LEN - (gpa - RAM))
		memcpy(g.ram + (gpa - RAM), src, n);
}

static bool ram_get(uint64_t gpa, void *dst, size_t n)
{
	if (gpa >= RAM && gpa - RAM <= RAM_LEN && n <= RAM_LEN - (gpa - RAM)) {
		memcpy(dst, g.ram + (gpa - RAM), n);
		return true;
	}
	return false;
}

static void enable(struct run *r)
{
	vmm_virtq_reset(g.q);
	check(!vmm_virtq_ready(g.q) && !vmm_virtq_broken(g.q), "reset state");
	check(vmm_virtq_size(g.q) == QMAX, "reset size");
	vmm_virtq_set_features(g.q, r->indirect, r->event_idx);
	check(vmm_virtq_set_size(g.q, r->size) == 0, "set_size of a power of two");
	int rc = vmm_virtq_set_addrs(g.q, r->desc, r->avail, r->used);
	check(rc == 0 || rc == -EINVAL, "set_addrs errors");
	if (rc == 0) {
		rc = vmm_virtq_enable(g.q, g.mem);
		check(rc == 0 || rc == -EFAULT, "enable errors");
	}
	r->enabled = rc == 0;
	check(vmm_virtq_ready(g.q) == r->enabled, "ready after enable");
	r->avail_idx = r->used_idx = 0;
	r->n_flight = 0;
}

/* Each segment lies inside one region at the right host address. */
static void check_seg(const vmm_virtq_seg *s, bool writable)
{
	check(s->len > 0, "no empty segments");
	uint8_t *h = s->host;
	if (s->gpa >= RAM && s->gpa - RAM < RAM_LEN) {
		check(s->len <= RAM_LEN - (s->gpa - RAM), "segment inside RAM");
		check(h == g.ram + (s->gpa - RAM), "segment host address");
	} else {
		check(!writable, "writable segment in ROM");
		check(s->gpa >= ROM && s->gpa - ROM < ROM_LEN && s->len <= ROM_LEN - (s->gpa - ROM),
		      "segment inside ROM");
		check(h == g.rom + (s->gpa - ROM), "segment host address");
	}
}

static void check_chain(struct run *r, const vmm_virtq_chain *c)
{
	check(c->head < r->size, "head in range");
	for (unsigned i = 0; i < r->n_flight; i++)
		check(r->flight[i] != c->head, "head handed out twice");
	check(r->n_flight < r->size, "more chains in flight than the queue size");
	check((uint32_t)c->n_out + c->n_in <= VMM_VIRTQ_MAX_SEGS, "segment count");
	uint64_t out = 0, in = 0;
	for (unsigned i = 0; i < (unsigned)c->n_out + c->n_in; i++) {
		check_seg(&c->segs[i], i >= c->n_out);
		*(i < c->n_out ? &out : &in) += c->segs[i].len;
	}
	check(out == c->out_bytes && in == c->in_bytes, "byte counts");
	check(out + in <= (1ull << 32), "4 GiB total");

	/* Copies move exactly what the parts hold. */
	uint64_t off = c->out_bytes > 3 ? c->out_bytes / 3 : 0;
	size_t want = c->out_bytes - off < sizeof g.scratch ? (size_t)(c->out_bytes - off) : sizeof g.scratch;
	check(vmm_virtq_chain_read(c, off, g.scratch, sizeof g.scratch) == want, "chain_read length");
	uint64_t pos = 0;
	size_t got = 0;
	for (unsigned i = 0; i < c->n_out && got < want; i++) {
		const vmm_virtq_seg *s = &c->segs[i];
		if (pos + s->len <= off) {
			pos += s->len;
			continue;
		}
		for (uint32_t k = 0; k < s->len && got < want; k++, pos++)
			if (pos >= off)
				check(g.scratch[got++] == ((const uint8_t *)s->host)[k], "chain_read bytes");
	}
	check(got == want, "chain_read covered");
	uint64_t woff = c->in_bytes / 2;
	size_t wlen = c->in_bytes - woff < 64 ? (size_t)(c->in_bytes - woff) : 64;
	memset(g.scratch, 0xa5, 64);
	check(vmm_virtq_chain_write(c, woff, g.scratch, 64) == wlen, "chain_write length");
}

static void op_pop(struct run *r)
{
	bool was_broken = vmm_virtq_broken(g.q);
	int rc = vmm_virtq_pop(g.q, g.mem, &g.chain);
	if (!r->enabled) {
		check(rc == 0, "pop on a disabled queue");
		return;
	}
	check(rc == 1 || rc == 0 || rc == -EIO, "pop return value");
	if (rc == -EIO) {
		check(vmm_last_error()[0] != '\0', "message on -EIO");
		check(vmm_virtq_broken(g.q), "broken after -EIO");
		check(vmm_virtq_pop(g.q, g.mem, &g.chain) == -EIO, "stays broken");
		return;
	}
	check(!was_broken, "a broken queue popped");
	if (rc == 1) {
		check_chain(r, &g.chain);
		r->flight[r->n_flight] = g.chain.head;
		r->flight_in[r->n_flight] = g.chain.in_bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)g.chain.in_bytes;
		r->n_flight++;
	}
}

static void op_push(struct run *r, uint16_t head, uint32_t written, int flight_slot)
{
	int rc = vmm_virtq_push(g.q, g.mem, head, written);
	if (vmm_virtq_broken(g.q)) {
		check(rc == -EIO, "push on a broken queue");
		return;
	}
	if (flight_slot < 0) {
		check(rc == -EINVAL, "push of a head not in flight");
		return;
	}
	check(rc == 0, "push of an in-flight head");
	uint32_t clamped = written < r->flight_in[flight_slot] ? written : r->flight_in[flight_slot];
	r->flight[flight_slot] = r->flight[r->n_flight - 1];
	r->flight_in[flight_slot] = r->flight_in[r->n_flight - 1];
	r->n_flight--;
	r->used_idx++;
	uint16_t idx;
	uint32_t elem[2];
	/* The used ring is in RAM (enable checked it); read back what was published. */
	if (ram_get(r->used + 2, &idx, 2) &&
	    ram_get(r->used + 4 + 8ull * ((uint16_t)(r->used_idx - 1) & (r->size - 1)), elem, 8)) {
		check(idx == r->used_idx, "used idx advanced by one");
		check(elem[0] == head && elem[1] == clamped, "used element");
	}
}

static int in_flight(const struct run *r, uint16_t head)
{
	for (int i = 0; i < r->n_flight; i++)
		if (r->flight[i] == head)
			return i;
	return -1;
}

static void op_desc(struct run *r, unsigned arg)
{
	uint16_t idx, addr, len, next;
	uint8_t flags;
	if (!take(r, &idx, 2) || !take(r, &addr, 2) || !take(r, &len, 2) || !take(r, &flags, 1) || !take(r, &next, 2))
		return;
	struct vring_desc d;
	d.addr = (arg & 4) ? 0xfffffffffffff000ull + addr : (arg & 2) ? ROM + addr : RAM + addr;
	d.len = (arg & 8) ? (uint32_t)len << 16 : len;
	d.flags = flags & 7;
	d.next = next;
	uint64_t table = (arg & 1) ? IND_AREA : r->desc;
	ram_put(table + 16ull * idx, &d, sizeof d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init();
	struct run r;
	memset(&r, 0, sizeof r);
	r.p = data;
	r.end = data + size;
	uint8_t cfg;
	if (!take(&r, &cfg, 1))
		return 0;
	memset(g.ram, 0, RAM_LEN);
	r.size = (uint16_t)(1u << ((cfg & 15) % 9));
	r.desc = RAM;
	r.avail = RAM + 0x1000;
	r.used = RAM + 0x2000;
	if (cfg & 64) {
		uint16_t o[3];
		if (!take(&r, o, sizeof o))
			return 0;
		r.desc = RAM + o[0];
		r.avail = RAM + o[1];
		r.used = RAM + o[2];
	}
	r.indirect = cfg & 16;
	r.event_idx = cfg & 32;
	enable(&r);

	uint8_t b;
	while (take(&r, &b, 1)) {
		unsigned arg = b >> 3;
		switch (b & 7) {
		case 0:
			op_pop(&r);
			break;
		case 1: {
			uint8_t k;
			uint32_t w;
			if (!take(&r, &k, 1) || !take(&r, &w, 4))
				break;
			if (r.n_flight)
				op_push(&r, r.flight[k % r.n_flight], w, k % r.n_flight);
			break;
		}
		case 2: {
			uint16_t off;
			uint8_t n;
			if (!take(&r, &off, 2) || !take(&r, &n, 1) || (size_t)(r.end - r.p) < n)
				break;
			ram_put(RAM + off, r.p, off + (size_t)n <= RAM_LEN ? n : (size_t)(RAM_LEN - off));
			r.p += n;
			break;
		}
		case 3:
			if (arg == 31) {
				enable(&r);
				break;
			}
			(void)vmm_virtq_need_interrupt(g.q, g.mem);
			break;
		case 4:
			(void)vmm_virtq_set_notify(g.q, g.mem, arg & 1);
			break;
		case 5: {
			uint16_t h;
			uint32_t w;
			if (!take(&r, &h, 2) || !take(&r, &w, 4))
				break;
			if (r.enabled)
				op_push(&r, h, w, in_flight(&r, h));
			else
				check(vmm_virtq_push(g.q, g.mem, h, w) == -EINVAL, "push on a disabled queue");
			break;
		}
		case 6: {
			uint16_t h;
			if (!take(&r, &h, 2))
				break;
			ram_put(r.avail + 4 + 2ull * (r.avail_idx & (r.size - 1)), &h, 2);
			r.avail_idx++;
			ram_put(r.avail + 2, &r.avail_idx, 2);
			break;
		}
		case 7:
			op_desc(&r, arg);
			break;
		}
	}
	return 0;
}
