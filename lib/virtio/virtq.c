/* The device side of a split virtqueue (virtio 1.2 §2.7).
 *
 * Guest memory is shared with vCPU threads, so every guest-shared field is read with an
 * atomic load exactly once and the copy is what we validate and use (a second read could
 * see a different value: the double-fetch bugs). Descriptors are copied whole before any
 * field is looked at.
 *
 * The three ring areas are translated once, at enable, and their host pointers cached:
 * every later access is at an offset bounded by the queue size fixed at that point, and
 * the regions cannot be removed while a device is active (mem.h's threading rules).
 * Buffers (and indirect tables) are translated per pop, each exactly once.
 *
 * Ordering with the driver (virtio 1.2 §2.7.13 and §2.7.7-10):
 *  - avail->idx is loaded with acquire before the ring entries it covers;
 *  - used elements are stored before used->idx, which is stored with release;
 *  - between publishing our side (used->idx, or avail_event / used->flags) and reading
 *    the driver's suppression state (used_event / avail->flags, or avail->idx) there is
 *    a full fence, or a notification or interrupt could be lost.
 *
 * Virtio 1.x rings are little-endian, as is the only host we support (x86_64).
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_ring.h>

#include "../internal.h"
#include "virtq_state.h"
#include <libvmm/sys/virtq.h>

/* Offsets inside the ring areas (virtio 1.2 §2.7.6, §2.7.8). */
#define AVAIL_FLAGS 0u
#define AVAIL_IDX 2u
#define AVAIL_RING 4u
#define USED_FLAGS 0u
#define USED_IDX 2u
#define USED_RING 4u
#define DESC_SIZE 16u
#define USED_ELEM_SIZE 8u

#define FOUR_GIB (1ull << 32)

struct vmm_virtq {
	uint16_t size_max;
	uint16_t size;
	bool ready;
	bool broken;
	bool indirect;          /* VIRTIO_F_RING_INDIRECT_DESC negotiated */
	bool event_idx;         /* VIRTIO_F_RING_EVENT_IDX negotiated */
	bool notify_on;         /* the device wants avail notifications */
	bool avail_event_set;   /* avail_event holds `avail_event` (and was fenced) */
	uint64_t desc_gpa, avail_gpa, used_gpa;

	/* Set by enable, valid while ready. */
	vmm_mem *mem;
	const uint8_t *desc;    /* size * 16 bytes */
	const uint8_t *avail;   /* 6 + 2 * size bytes */
	uint8_t *used;          /* 6 + 8 * size bytes */
	uint16_t mask;          /* size - 1 */
	uint16_t last_avail;    /* avail entries consumed so far (free-running) */
	uint16_t avail_seen;    /* avail->idx as last read and checked */
	uint16_t used_idx;      /* used->idx as we last published it */
	uint16_t signalled;     /* used_idx at the last need_interrupt */
	uint16_t avail_event;   /* the avail_event value we last published */
	uint32_t pushed;        /* pushes since the last need_interrupt (saturating) */
	uint32_t in_flight;     /* popped and not yet pushed */

	uint64_t *busy;         /* in-flight heads: a bitmap of size_max bits */
	uint32_t *in_len;       /* per in-flight head: its writable bytes (clamped) */
	uint16_t *pop_seq;      /* per in-flight head: last_avail when it was popped */
	/* Heads in flight when the state was loaded (vq_state_set), handed to the device
	 * again by pop, oldest first, before anything new; VQ_NO_HEAD once pushed. */
	uint16_t *replay;       /* size_max entries */
	uint32_t replay_pos, replay_n;
	char why[160];          /* the reason the queue broke, for later pops */
};

/* Marks the queue broken and returns -EIO with the reason; later pops repeat it. */
#define BREAK(q, ...) ring_broken((q), vmm_err(-EIO, __VA_ARGS__))

static int ring_broken(vmm_virtq *q, int err)
{
	q->broken = true;
	snprintf(q->why, sizeof q->why, "%s", vmm_last_error());
	return err;
}

static bool pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

/* ---- guest-shared field access (bounds fixed at enable) ---------------------------- */

static uint16_t load16(const uint8_t *base, uint32_t off, int order)
{
	return __atomic_load_n((const uint16_t *)(const void *)(base + off), order);
}

static void store16(uint8_t *base, uint32_t off, uint16_t v, int order)
{
	__atomic_store_n((uint16_t *)(void *)(base + off), v, order);
}

static void store32(uint8_t *base, uint32_t off, uint32_t v)
{
	__atomic_store_n((uint32_t *)(void *)(base + off), v, __ATOMIC_RELAXED);
}

/* Copies one descriptor out of guest memory. The empty asm tells the compiler that the
 * copy may have changed behind its back, so it can never re-read a field from guest
 * memory in its place: every check and use sees this one snapshot. Indirect tables have
 * no alignment rule, hence memcpy rather than typed loads. */
static void load_desc(const uint8_t *p, struct vring_desc *d)
{
	memcpy(d, p, sizeof *d);
	__asm__ __volatile__("" : "+m"(*d));
}

/* used_event lives after the avail ring, avail_event after the used ring. */
static uint32_t used_event_off(const vmm_virtq *q)
{
	return AVAIL_RING + 2u * q->size;
}

static uint32_t avail_event_off(const vmm_virtq *q)
{
	return USED_RING + USED_ELEM_SIZE * q->size;
}

/* A standalone write to the used area bypasses vmm_mem_write, so tell dirty tracking
 * (the area was checked at enable: this cannot fail). */
static void used_dirty(vmm_virtq *q, uint32_t off, uint32_t len)
{
	if (vmm_mem_dirty_enabled(q->mem))
		(void)vmm_mem_translate(q->mem, q->used_gpa + off, len, true, NULL);
}

static bool busy_test(const vmm_virtq *q, uint16_t head)
{
	return q->busy[head / 64] >> (head % 64) & 1;
}

static void busy_flip(vmm_virtq *q, uint16_t head)
{
	q->busy[head / 64] ^= 1ull << (head % 64);
}

static size_t busy_words(uint16_t size_max)
{
	return ((size_t)size_max + 63) / 64;
}

/* ---- lifetime and configuration --------------------------------------------------- */

int vmm_virtq_create(vmm_virtq **out, uint16_t size_max)
{
	if (!out)
		return vmm_err(-EINVAL, "vmm_virtq_create: NULL out");
	*out = NULL;
	if (!pow2(size_max) || size_max > VMM_VIRTQ_MAX_SIZE)
		return vmm_err(-EINVAL, "virtqueue: maximum size %u is not a power of two in 1..%u", size_max,
			       VMM_VIRTQ_MAX_SIZE);
	vmm_virtq *q = calloc(1, sizeof *q);
	if (q) {
		q->busy = calloc(busy_words(size_max), sizeof *q->busy);
		q->in_len = calloc(size_max, sizeof *q->in_len);
		q->pop_seq = calloc(size_max, sizeof *q->pop_seq);
		q->replay = calloc(size_max, sizeof *q->replay);
	}
	if (!q || !q->busy || !q->in_len || !q->pop_seq || !q->replay) {
		vmm_virtq_destroy(q);
		return vmm_err(-ENOMEM, "virtqueue: out of memory for a queue of %u entries", size_max);
	}
	q->size_max = size_max;
	vmm_virtq_reset(q);
	*out = q;
	return 0;
}

void vmm_virtq_destroy(vmm_virtq *q)
{
	if (!q)
		return;
	free(q->busy);
	free(q->in_len);
	free(q->pop_seq);
	free(q->replay);
	free(q);
}

void vmm_virtq_reset(vmm_virtq *q)
{
	if (!q)
		return;
	uint64_t *busy = q->busy;
	uint32_t *in_len = q->in_len;
	uint16_t *pop_seq = q->pop_seq, *replay = q->replay;
	uint16_t size_max = q->size_max;
	memset(busy, 0, busy_words(size_max) * sizeof *busy);
	memset(q, 0, sizeof *q);
	q->busy = busy;
	q->in_len = in_len;
	q->pop_seq = pop_seq;
	q->replay = replay;
	q->size_max = size_max;
	q->size = size_max;
}

int vmm_virtq_set_size(vmm_virtq *q, uint16_t size)
{
	if (!q)
		return vmm_err(-EINVAL, "vmm_virtq_set_size: NULL queue");
	if (q->ready)
		return vmm_err(-EBUSY, "virtqueue: size cannot change while the queue is enabled");
	if (!pow2(size) || size > q->size_max)
		return vmm_err(-EINVAL, "virtqueue: size %u is not a power of two in 1..%u", size, q->size_max);
	q->size = size;
	return 0;
}

int vmm_virtq_set_addrs(vmm_virtq *q, uint64_t desc, uint64_t avail, uint64_t used)
{
	if (!q)
		return vmm_err(-EINVAL, "vmm_virtq_set_addrs: NULL queue");
	if (q->ready)
		return vmm_err(-EBUSY, "virtqueue: ring addresses cannot change while the queue is enabled");
	if (desc % VRING_DESC_ALIGN_SIZE)
		return vmm_err(-EINVAL, "virtqueue: descriptor table 0x%llx is not 16-byte aligned",
			       (unsigned long long)desc);
	if (avail % VRING_AVAIL_ALIGN_SIZE)
		return vmm_err(-EINVAL, "virtqueue: avail ring 0x%llx is not 2-byte aligned", (unsigned long long)avail);
	if (used % VRING_USED_ALIGN_SIZE)
		return vmm_err(-EINVAL, "virtqueue: used ring 0x%llx is not 4-byte aligned", (unsigned long long)used);
	q->desc_gpa = desc;
	q->avail_gpa = avail;
	q->used_gpa = used;
	return 0;
}

void vmm_virtq_set_features(vmm_virtq *q, bool indirect, bool event_idx)
{
	if (!q)
		return;
	q->indirect = indirect;
	q->event_idx = event_idx;
}

/* Translates one ring area at enable; the message names it. */
static int map_area(vmm_mem *mem, const char *what, uint64_t gpa, uint64_t len, bool write, void **host)
{
	int rc = vmm_mem_translate(mem, gpa, len, write, host);
	if (rc == -EROFS)
		return vmm_err(-EFAULT, "virtqueue: %s [0x%llx, +0x%llx) is in read-only memory", what,
			       (unsigned long long)gpa, (unsigned long long)len);
	if (rc < 0)
		return vmm_err(-EFAULT, "virtqueue: %s [0x%llx, +0x%llx) is not inside guest RAM", what,
			       (unsigned long long)gpa, (unsigned long long)len);
	return 0;
}

int vmm_virtq_enable(vmm_virtq *q, vmm_mem *mem)
{
	if (!q || !mem)
		return vmm_err(-EINVAL, "vmm_virtq_enable: NULL %s", q ? "memory map" : "queue");
	if (q->ready)
		return mem == q->mem ? 0 : vmm_err(-EBUSY, "virtqueue: already enabled on another memory map");
	uint64_t n = q->size;
	void *desc, *avail, *used;
	int rc = map_area(mem, "descriptor table", q->desc_gpa, DESC_SIZE * n, false, &desc);
	if (rc == 0)
		rc = map_area(mem, "avail ring", q->avail_gpa, AVAIL_RING + 2 * n + 2, false, &avail);
	if (rc == 0)
		rc = map_area(mem, "used ring", q->used_gpa, USED_RING + USED_ELEM_SIZE * n + 2, true, &used);
	if (rc < 0)
		return rc;
	q->mem = mem;
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	q->mask = (uint16_t)(q->size - 1);
	q->last_avail = q->avail_seen = q->used_idx = q->signalled = q->avail_event = 0;
	q->pushed = q->in_flight = 0;
	q->replay_pos = q->replay_n = 0;
	q->notify_on = true;
	q->avail_event_set = false;
	q->broken = false;
	/* The device owns the used flags: start with notifications on. */
	store16(q->used, USED_FLAGS, 0, __ATOMIC_RELAXED);
	used_dirty(q, USED_FLAGS, 2);
	q->ready = true;
	return 0;
}

bool vmm_virtq_ready(const vmm_virtq *q)
{
	return q && q->ready;
}

bool vmm_virtq_broken(const vmm_virtq *q)
{
	return q && q->broken;
}

uint16_t vmm_virtq_size(const vmm_virtq *q)
{
	return q ? q->size : 0;
}

uint16_t vmm_virtq_size_max(const vmm_virtq *q)
{
	return q ? q->size_max : 0;
}

void vmm_virtq_addrs(const vmm_virtq *q, uint64_t *desc, uint64_t *avail, uint64_t *used)
{
	if (desc)
		*desc = q ? q->desc_gpa : 0;
	if (avail)
		*avail = q ? q->avail_gpa : 0;
	if (used)
		*used = q ? q->used_gpa : 0;
}

/* ---- pop ---------------------------------------------------------------------------- */

/* Reads avail->idx. With EVENT_IDX and notifications on, an empty ring first publishes
 * avail_event = last_avail and fences, then looks again: a driver that added a buffer
 * meanwhile either sees our avail_event (and notifies) or we see its index. This is what
 * makes a plain "pop until empty" device loop safe without calling set_notify.
 * Returns 1 (entries to pop), 0 (empty) or -EIO (the index jumped too far). */
static int refresh_avail(vmm_virtq *q)
{
	uint16_t idx = load16(q->avail, AVAIL_IDX, __ATOMIC_ACQUIRE);
	if (idx == q->last_avail && q->event_idx && q->notify_on &&
	    !(q->avail_event_set && q->avail_event == q->last_avail)) {
		store16(q->used, avail_event_off(q), q->last_avail, __ATOMIC_RELAXED);
		used_dirty(q, avail_event_off(q), 2);
		q->avail_event = q->last_avail;
		q->avail_event_set = true;
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		idx = load16(q->avail, AVAIL_IDX, __ATOMIC_ACQUIRE);
	}
	uint16_t pending = (uint16_t)(idx - q->last_avail);
	if (pending > q->size)
		return BREAK(q, "virtqueue: avail index %u is %u entries ahead of the %u consumed (queue size %u)", idx,
			     pending, q->last_avail, q->size);
	q->avail_seen = idx;
	return pending != 0;
}

/* The walk over one chain: the current table (the descriptor table or an indirect one),
 * and the bound on descriptors visited in it. */
struct walk {
	const uint8_t *table;
	uint32_t entries;       /* descriptors in table */
	uint32_t visited;       /* descriptors visited in table */
	bool indirect;          /* inside an indirect table */
	uint64_t table_gpa;     /* for messages */
};

static int walk_indirect(vmm_virtq *q, vmm_mem *mem, struct walk *w, const struct vring_desc *d, uint32_t i)
{
	if (!q->indirect)
		return BREAK(q, "virtqueue: descriptor %u is indirect but VIRTIO_F_RING_INDIRECT_DESC was not negotiated",
			     i);
	if (w->indirect)
		return BREAK(q, "virtqueue: indirect table 0x%llx: descriptor %u refers to another indirect table",
			     (unsigned long long)w->table_gpa, i);
	if (d->flags & VRING_DESC_F_NEXT)
		return BREAK(q, "virtqueue: descriptor %u is indirect and also has VRING_DESC_F_NEXT", i);
	if (d->len == 0 || d->len % DESC_SIZE)
		return BREAK(q, "virtqueue: descriptor %u: indirect table length %u is not a non-zero multiple of 16", i,
			     d->len);
	if (d->len / DESC_SIZE > VMM_VIRTQ_MAX_INDIRECT)
		return BREAK(q, "virtqueue: descriptor %u: indirect table of %u entries (more than %u)", i,
			     d->len / DESC_SIZE, VMM_VIRTQ_MAX_INDIRECT);
	void *host;
	if (vmm_mem_translate(mem, d->addr, d->len, false, &host) < 0)
		return BREAK(q, "virtqueue: descriptor %u: indirect table [0x%llx, +0x%x) is outside guest RAM", i,
			     (unsigned long long)d->addr, d->len);
	w->table = host;
	w->entries = d->len / DESC_SIZE;
	w->visited = 0;
	w->indirect = true;
	w->table_gpa = d->addr;
	return 0;
}

/* Adds the buffer of descriptor d (number i of the current table) to the chain. */
static int add_buffer(vmm_virtq *q, vmm_mem *mem, const struct walk *w, const struct vring_desc *d, uint32_t i,
		      vmm_virtq_chain *c)
{
	const char *where = w->indirect ? "indirect descriptor" : "descriptor";
	bool writable = d->flags & VRING_DESC_F_WRITE;
	if (!writable && c->n_in)
		return BREAK(q, "virtqueue: %s %u is device-readable after a device-writable one", where, i);
	uint64_t total = c->out_bytes + c->in_bytes + d->len;
	if (total > FOUR_GIB)
		return BREAK(q, "virtqueue: chain from head %u holds more than 4 GiB", c->head);
	if (d->len == 0)
		return 0; /* nothing to access: no segment (it still counted toward the bound) */
	if ((uint32_t)c->n_out + c->n_in >= VMM_VIRTQ_MAX_SEGS)
		return BREAK(q, "virtqueue: chain from head %u has more than %u buffers", c->head, VMM_VIRTQ_MAX_SEGS);
	uint64_t end;
	if (vmm_add_overflows(d->addr, d->len, &end))
		return BREAK(q, "virtqueue: %s %u: buffer 0x%llx + 0x%x wraps around 2^64", where, i,
			     (unsigned long long)d->addr, d->len);
	void *host;
	int rc = vmm_mem_translate(mem, d->addr, d->len, writable, &host);
	if (rc < 0)
		return BREAK(q, "virtqueue: %s %u: buffer [0x%llx, 0x%llx) is %s", where, i, (unsigned long long)d->addr,
			     (unsigned long long)end, rc == -EROFS ? "in read-only memory" : "not inside guest RAM");
	vmm_virtq_seg *s = &c->segs[c->n_out + c->n_in];
	s->host = host;
	s->len = d->len;
	s->gpa = d->addr;
	if (writable) {
		c->n_in++;
		c->in_bytes += d->len;
	} else {
		c->n_out++;
		c->out_bytes += d->len;
	}
	return 0;
}

static int walk_chain(vmm_virtq *q, vmm_mem *mem, uint16_t head, vmm_virtq_chain *c)
{
	struct walk w = { q->desc, q->size, 0, false, q->desc_gpa };
	uint32_t i = head;
	c->head = head;
	c->n_out = c->n_in = 0;
	c->out_bytes = c->in_bytes = 0;
	for (;;) {
		/* Zero-length descriptors count too: a loop of them must end (CVE-2016-6490). */
		if (++w.visited > w.entries) {
			if (w.indirect)
				return BREAK(q, "virtqueue: indirect table 0x%llx: chain longer than its %u entries (a loop?)",
					     (unsigned long long)w.table_gpa, w.entries);
			return BREAK(q, "virtqueue: chain from head %u is longer than the queue size %u (a loop?)", head,
				     q->size);
		}
		struct vring_desc d;
		load_desc(w.table + (size_t)i * DESC_SIZE, &d);
		int rc;
		if (d.flags & VRING_DESC_F_INDIRECT) {
			rc = walk_indirect(q, mem, &w, &d, i);
			if (rc < 0)
				return rc;
			i = 0; /* an indirect table's chain starts at its first entry */
			continue;
		}
		rc = add_buffer(q, mem, &w, &d, i, c);
		if (rc < 0)
			return rc;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (d.next >= w.entries)
			return BREAK(q, "virtqueue: %s %u: next %u is out of range (%u entries)",
				     w.indirect ? "indirect descriptor" : "descriptor", i, d.next, w.entries);
		i = d.next;
	}
}

/* Hands out the next chain that was in flight when the state was loaded. Its head
 * stays in flight (it already counts in last_avail and in_flight); its descriptors are
 * walked again now, on this VM's memory, with every check of a fresh pop. */
static int pop_replay(vmm_virtq *q, vmm_mem *mem, vmm_virtq_chain *chain)
{
	while (q->replay_pos < q->replay_n) {
		uint16_t head = q->replay[q->replay_pos++];
		if (head == VQ_NO_HEAD || !busy_test(q, head))
			continue; /* pushed meanwhile */
		int rc = walk_chain(q, mem, head, chain);
		if (rc < 0)
			return rc;
		q->in_len[head] = chain->in_bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)chain->in_bytes;
		return 1;
	}
	return vmm_virtq_pop(q, mem, chain);
}

int vmm_virtq_pop(vmm_virtq *q, vmm_mem *mem, vmm_virtq_chain *chain)
{
	if (!q || !chain)
		return vmm_err(-EINVAL, "vmm_virtq_pop: NULL %s", q ? "chain" : "queue");
	if (q->broken)
		return vmm_err(-EIO, "%s (the queue stays broken until reset)", q->why);
	if (!q->ready)
		return 0;
	if (mem != q->mem)
		return vmm_err(-EINVAL, "vmm_virtq_pop: not the memory map the queue was enabled with");
	if (q->replay_pos < q->replay_n)
		return pop_replay(q, mem, chain);
	if (q->avail_seen == q->last_avail) {
		int rc = refresh_avail(q);
		if (rc <= 0)
			return rc;
	}
	/* Ordered after the acquire load of avail->idx that covered this entry. */
	uint16_t head = load16(q->avail, AVAIL_RING + 2u * (q->last_avail & q->mask), __ATOMIC_RELAXED);
	if (head >= q->size)
		return BREAK(q, "virtqueue: avail entry %u: head %u >= queue size %u", q->last_avail, head, q->size);
	if (busy_test(q, head))
		return BREAK(q, "virtqueue: avail entry %u: head %u is already in flight", q->last_avail, head);
	int rc = walk_chain(q, mem, head, chain);
	if (rc < 0)
		return rc;
	busy_flip(q, head);
	q->in_len[head] = chain->in_bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)chain->in_bytes;
	q->pop_seq[head] = q->last_avail;
	q->in_flight++;
	q->last_avail++;
	return 1;
}

/* ---- push and notifications ------------------------------------------------------- */

int vmm_virtq_push(vmm_virtq *q, vmm_mem *mem, uint16_t head, uint32_t written)
{
	if (!q)
		return vmm_err(-EINVAL, "vmm_virtq_push: NULL queue");
	if (q->broken)
		return vmm_err(-EIO, "%s (the queue stays broken until reset)", q->why);
	if (!q->ready)
		return vmm_err(-EINVAL, "vmm_virtq_push: the queue is not enabled");
	if (mem != q->mem)
		return vmm_err(-EINVAL, "vmm_virtq_push: not the memory map the queue was enabled with");
	if (head >= q->size || !busy_test(q, head))
		return vmm_err(-EINVAL, "vmm_virtq_push: head %u is not in flight", head);
	busy_flip(q, head);
	q->in_flight--;
	/* A device that knew a loaded in-flight head (its own load_state) may push it
	 * before it comes back from pop: it must then not come back at all. */
	for (uint32_t i = q->replay_pos; i < q->replay_n; i++)
		if (q->replay[i] == head)
			q->replay[i] = VQ_NO_HEAD;
	if (written > q->in_len[head])
		written = q->in_len[head];
	uint32_t off = USED_RING + USED_ELEM_SIZE * (q->used_idx & q->mask);
	store32(q->used, off, head);
	store32(q->used, off + 4, written);
	q->used_idx++;
	/* Release: the driver that sees the new index sees the element (and the data). */
	store16(q->used, USED_IDX, q->used_idx, __ATOMIC_RELEASE);
	if (vmm_mem_dirty_enabled(q->mem)) {
		used_dirty(q, off, USED_ELEM_SIZE);
		used_dirty(q, USED_IDX, 2);
	}
	if (q->pushed != UINT32_MAX)
		q->pushed++;
	return 0;
}

/* virtio 1.2 §2.7.10: with event indices the other side asks for an event when its
 * index moves past `event`, i.e. event is in [old, new) modulo 2^16. */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

bool vmm_virtq_need_interrupt(vmm_virtq *q, vmm_mem *mem)
{
	(void)mem; /* the used/avail areas were mapped at enable */
	if (!q || !q->ready || q->broken || q->pushed == 0)
		return false;
	uint32_t pushed = q->pushed;
	uint16_t old_idx = q->signalled, new_idx = q->used_idx;
	q->pushed = 0;
	q->signalled = new_idx;
	/* Our used->idx store must be visible before we read the driver's wish, or a
	 * driver that re-enabled interrupts meanwhile could miss both. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(load16(q->avail, AVAIL_FLAGS, __ATOMIC_RELAXED) & VRING_AVAIL_F_NO_INTERRUPT);
	if (pushed > UINT16_MAX)
		return true; /* the 16-bit indices lapped: cannot tell, so interrupt */
	return need_event(load16(q->avail, used_event_off(q), __ATOMIC_RELAXED), new_idx, old_idx);
}

bool vmm_virtq_set_notify(vmm_virtq *q, vmm_mem *mem, bool enable)
{
	(void)mem;
	if (!q || !q->ready || q->broken)
		return false;
	q->notify_on = enable;
	if (q->event_idx) {
		/* Disabling leaves avail_event where it is: the driver has passed it (or
		 * will once), after which it stays quiet until we publish a new one. */
		if (!enable)
			return false;
		store16(q->used, avail_event_off(q), q->last_avail, __ATOMIC_RELAXED);
		used_dirty(q, avail_event_off(q), 2);
		q->avail_event = q->last_avail;
		q->avail_event_set = true;
	} else {
		store16(q->used, USED_FLAGS, enable ? 0 : VRING_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
		used_dirty(q, USED_FLAGS, 2);
		if (!enable)
			return false;
	}
	/* Publish before looking, so a buffer added meanwhile is either seen here or
	 * notified by the driver. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (q->replay_pos < q->replay_n)
		return true; /* loaded in-flight chains wait for pop */
	return load16(q->avail, AVAIL_IDX, __ATOMIC_ACQUIRE) != q->last_avail;
}

/* ---- copies to and from a chain --------------------------------------------------- */

/* Copies between buf and the segments [first, first + n) of a chain, starting `offset`
 * bytes into them. */
static size_t chain_copy(const vmm_virtq_chain *c, uint32_t first, uint32_t n, uint64_t offset, uint8_t *buf,
			 size_t len, bool to_chain)
{
	size_t done = 0;
	for (uint32_t i = first; i < first + n && done < len; i++) {
		const vmm_virtq_seg *s = &c->segs[i];
		if (offset >= s->len) {
			offset -= s->len;
			continue;
		}
		size_t k = (size_t)(s->len - offset);
		if (k > len - done)
			k = len - done;
		uint8_t *g = (uint8_t *)s->host + offset;
		if (to_chain)
			memcpy(g, buf + done, k);
		else
			memcpy(buf + done, g, k);
		done += k;
		offset = 0;
	}
	return done;
}

/* Segment counts of a chain, clamped to the array (a caller's corrupted chain must not
 * send us past it). */
static void chain_parts(const vmm_virtq_chain *c, uint32_t *n_out, uint32_t *n_in)
{
	*n_out = c->n_out < VMM_VIRTQ_MAX_SEGS ? c->n_out : VMM_VIRTQ_MAX_SEGS;
	*n_in = c->n_in < VMM_VIRTQ_MAX_SEGS - *n_out ? c->n_in : VMM_VIRTQ_MAX_SEGS - *n_out;
}

size_t vmm_virtq_chain_read(const vmm_virtq_chain *chain, uint64_t offset, void *buf, size_t len)
{
	if (!chain || !buf || !len)
		return 0;
	uint32_t n_out, n_in;
	chain_parts(chain, &n_out, &n_in);
	return chain_copy(chain, 0, n_out, offset, buf, len, false);
}

size_t vmm_virtq_chain_write(const vmm_virtq_chain *chain, uint64_t offset, const void *buf, size_t len)
{
	if (!chain || !buf || !len)
		return 0;
	uint32_t n_out, n_in;
	chain_parts(chain, &n_out, &n_in);
	return chain_copy(chain, n_out, n_in, offset, (uint8_t *)(uintptr_t)buf, len, true);
}

/* ---- saved progress (virtq_state.h) ------------------------------------------------ */

uint32_t vq_state_inflight(const vmm_virtq *q)
{
	return q && q->ready ? q->in_flight : 0;
}

static int age_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? 1 : x > y ? -1 : 0; /* oldest (largest age) first */
}

int vq_state_get(const vmm_virtq *q, struct vq_state *s, uint16_t *heads)
{
	if (!q || !q->ready)
		return vmm_err(-EINVAL, "virtqueue: saving a queue that is not enabled");
	memset(s, 0, sizeof *s);
	s->size = q->size;
	s->desc = q->desc_gpa;
	s->avail = q->avail_gpa;
	s->used = q->used_gpa;
	s->broken = q->broken;
	s->notify_on = q->notify_on;
	s->avail_event_set = q->avail_event_set;
	s->last_avail = q->last_avail;
	s->used_idx = q->used_idx;
	s->signalled = q->signalled;
	s->avail_event = q->avail_event;
	s->pushed = q->pushed;
	if (q->in_flight == 0)
		return 0;
	/* Sort by age (pops since), as (age << 16 | head): ages below 2^16 sort exactly. */
	uint32_t *keys = malloc((size_t)q->in_flight * sizeof *keys);
	if (!keys)
		return vmm_err(-ENOMEM, "virtqueue: out of memory saving %u in-flight heads", q->in_flight);
	uint32_t n = 0;
	for (uint32_t h = 0; h < q->size && n < q->in_flight; h++)
		if (busy_test(q, (uint16_t)h))
			keys[n++] = (uint32_t)(uint16_t)(q->last_avail - q->pop_seq[h]) << 16 | h;
	qsort(keys, n, sizeof *keys, age_cmp);
	for (uint32_t i = 0; i < n; i++)
		heads[i] = (uint16_t)keys[i];
	free(keys);
	s->n_inflight = n;
	return 0;
}

static uint16_t head_at(const uint8_t *heads_le, uint32_t i)
{
	uint16_t v;
	memcpy(&v, heads_le + 2u * i, 2);
	return le16toh(v);
}

int vq_state_check(const vmm_virtq *q, vmm_mem *mem, const struct vq_state *s, const uint8_t *heads_le)
{
	if (!pow2(s->size) || s->size > q->size_max)
		return vmm_err(-EINVAL, "virtqueue state: size %u is not a power of two in 1..%u", s->size,
			       q->size_max);
	if (s->desc % VRING_DESC_ALIGN_SIZE || s->avail % VRING_AVAIL_ALIGN_SIZE ||
	    s->used % VRING_USED_ALIGN_SIZE)
		return vmm_err(-EINVAL, "virtqueue state: ring addresses 0x%llx/0x%llx/0x%llx are not aligned",
			       (unsigned long long)s->desc, (unsigned long long)s->avail,
			       (unsigned long long)s->used);
	uint64_t n = s->size;
	void *host;
	int rc = map_area(mem, "descriptor table", s->desc, DESC_SIZE * n, false, &host);
	if (rc == 0)
		rc = map_area(mem, "avail ring", s->avail, AVAIL_RING + 2 * n + 2, false, &host);
	if (rc == 0)
		rc = map_area(mem, "used ring", s->used, USED_RING + USED_ELEM_SIZE * n + 2, true, &host);
	if (rc < 0) {
		char why[256]; /* copied: vmm_err writes where vmm_last_error() points */
		snprintf(why, sizeof why, "%s", vmm_last_error());
		return vmm_err(-EINVAL, "virtqueue state: %s", why);
	}
	uint16_t expect = (uint16_t)(s->last_avail - s->used_idx);
	if (s->n_inflight > s->size || s->n_inflight != expect)
		return vmm_err(-EINVAL,
			       "virtqueue state: %u heads in flight, but %u consumed and %u used (queue size %u)",
			       s->n_inflight, s->last_avail, s->used_idx, s->size);
	uint64_t seen[VMM_VIRTQ_MAX_SIZE / 64];
	memset(seen, 0, busy_words(s->size) * sizeof seen[0]);
	for (uint32_t i = 0; i < s->n_inflight; i++) {
		uint16_t h = head_at(heads_le, i);
		if (h >= s->size)
			return vmm_err(-EINVAL, "virtqueue state: in-flight head %u >= queue size %u", h, s->size);
		if (seen[h / 64] >> (h % 64) & 1)
			return vmm_err(-EINVAL, "virtqueue state: in-flight head %u listed twice", h);
		seen[h / 64] |= 1ull << (h % 64);
	}
	return 0;
}

int vq_state_set(vmm_virtq *q, vmm_mem *mem, const struct vq_state *s, const uint8_t *heads_le, bool indirect,
		 bool event_idx)
{
	vmm_virtq_reset(q);
	q->size = s->size;
	q->desc_gpa = s->desc;
	q->avail_gpa = s->avail;
	q->used_gpa = s->used;
	uint64_t n = s->size;
	void *desc, *avail, *used;
	int rc = map_area(mem, "descriptor table", q->desc_gpa, DESC_SIZE * n, false, &desc);
	if (rc == 0)
		rc = map_area(mem, "avail ring", q->avail_gpa, AVAIL_RING + 2 * n + 2, false, &avail);
	if (rc == 0)
		rc = map_area(mem, "used ring", q->used_gpa, USED_RING + USED_ELEM_SIZE * n + 2, true, &used);
	if (rc < 0) {
		vmm_virtq_reset(q);
		return rc;
	}
	q->indirect = indirect;
	q->event_idx = event_idx;
	q->mem = mem;
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	q->mask = (uint16_t)(q->size - 1);
	q->last_avail = q->avail_seen = s->last_avail; /* avail->idx is read afresh */
	q->used_idx = s->used_idx;
	q->signalled = s->signalled;
	q->avail_event = s->avail_event;
	q->avail_event_set = s->avail_event_set;
	q->notify_on = s->notify_on;
	q->pushed = s->pushed;
	q->in_flight = s->n_inflight;
	for (uint32_t i = 0; i < s->n_inflight; i++) {
		uint16_t h = head_at(heads_le, i);
		busy_flip(q, h);
		/* Oldest first: the i-th of n was popped n - i pops ago. */
		q->pop_seq[h] = (uint16_t)(s->last_avail - s->n_inflight + i);
		q->replay[i] = h;
	}
	q->replay_pos = 0;
	q->replay_n = s->n_inflight;
	if (s->broken) {
		q->broken = true;
		snprintf(q->why, sizeof q->why, "virtqueue: the queue was broken when its state was saved");
	}
	q->ready = true;
	return 0;
}
