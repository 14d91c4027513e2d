/* virtio-balloon (device id 5; virtio 1.2, 5.5): inflate, deflate and statistics.
 *
 * Inflate: the guest gives up pages (le32 PFNs of 4 KiB pages); we free their host
 * memory. For a shared backing (the default memfd, a shared file) the page cache holds
 * the memory, and only punching a hole in the file frees it: madvise(MADV_DONTNEED)
 * would merely unmap it from us. Private anonymous memory is freed by MADV_DONTNEED.
 * Either way the guest reads zeros if it touches the page again.
 * Deflate: the guest takes pages back; with no VIRTIO_BALLOON_F_MUST_TELL_HOST there is
 * nothing to do but count.
 * Stats: the driver posts one buffer of {le16 tag, le64 val} entries; we read it and keep
 * the buffer; handing it back (vmm_virtio_balloon_get_stats) asks for fresh values.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <endian.h>
#include <sys/mman.h>
#include <linux/falloc.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_ids.h>

#include "../internal.h"
#include "dev_state.h"

#define BALLOON_QUEUE_SIZE 128u
#define BALLOON_PFN_BUDGET 65536u    /* PFNs handled per notify (256 MiB of pages) */
#define BALLOON_CHAIN_BUDGET 64u     /* chains per notify */
#define BALLOON_PFN_BATCH 256u       /* PFNs copied out of the guest at a time */
#define BALLOON_STATS_MAX 64u        /* stats entries read from one buffer */
#define BALLOON_STAT_SIZE 10u        /* packed struct virtio_balloon_stat */
#define BALLOON_NSTATS 16u

enum { BQ_INFLATE = 0, BQ_DEFLATE = 1, BQ_STATS = 2 };

struct balloon {
	vmm_virtio_dev *dev;
	vmm_mem *mem;
	vmm_virtq *q[3];
	bool active;
	bool stats_vq;

	uint32_t num_pages;   /* target (host-written config) */
	uint32_t actual;      /* guest-written config */
	uint64_t inflated, deflated;
	uint64_t guest_stats[BALLOON_NSTATS];
	uint64_t stats_updates;
	bool stats_held;      /* the driver's stats buffer is with us */
	uint16_t stats_head;

	/* The region of the last released run, looked up again only when a PFN leaves it. */
	vmm_mem_region_info reg;
	bool reg_valid;

	vmm_virtq_chain *chain;
};

/* ---- freeing guest pages ---- */

static bool region_lookup(struct balloon *b, uint64_t gpa)
{
	if (b->reg_valid && gpa >= b->reg.gpa && gpa - b->reg.gpa < b->reg.len)
		return true;
	b->reg_valid = false;
	size_t n = vmm_mem_region_count(b->mem);
	for (size_t i = 0; i < n; i++) {
		vmm_mem_region_info r;
		if (vmm_mem_get_region(b->mem, i, &r) == 0 && gpa >= r.gpa && gpa - r.gpa < r.len) {
			b->reg = r;
			b->reg_valid = true;
			return true;
		}
	}
	return false;
}

/* Frees [gpa, gpa + len) (inside b->reg). Returns true if the memory was released. */
static bool release(struct balloon *b, uint64_t gpa, uint64_t len)
{
	void *host;
	/* A write translation: read-only regions (ROM) are refused, and the pages count as
	 * dirty for migration since their contents change (to zeros). */
	if (vmm_mem_translate(b->mem, gpa, len, true, &host) < 0)
		return false;
	const vmm_mem_region_info *r = &b->reg;
	if (r->fd >= 0 && !(r->flags & VMM_MEM_PRIVATE)) {
		uint64_t off = r->file_offset + (gpa - r->gpa);
		if (fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
			return true;
	}
	/* Shared mappings without a usable fd: MADV_REMOVE frees the backing; it fails on
	 * private mappings, which MADV_DONTNEED frees. */
	if (!(r->flags & VMM_MEM_PRIVATE) && madvise(host, len, MADV_REMOVE) == 0)
		return true;
	return madvise(host, len, MADV_DONTNEED) == 0;
}

struct run {
	uint64_t gpa, pages;
};

static void run_flush(struct balloon *b, struct run *run)
{
	if (run->pages && release(b, run->gpa, run->pages * VMM_PAGE_SIZE))
		b->inflated += run->pages;
	run->pages = 0;
}

/* Adds one PFN, merging neighbours in the same region into one system call. */
static void run_add(struct balloon *b, struct run *run, uint32_t pfn)
{
	uint64_t gpa = (uint64_t)pfn << VIRTIO_BALLOON_PFN_SHIFT;
	if (run->pages && gpa == run->gpa + run->pages * VMM_PAGE_SIZE && b->reg_valid &&
	    gpa - b->reg.gpa < b->reg.len) {
		run->pages++;
		return;
	}
	run_flush(b, run);
	if (!region_lookup(b, gpa))
		return; /* not guest RAM: ignored */
	run->gpa = gpa;
	run->pages = 1;
}

/* Handles the PFN array of one chain; returns how many PFNs it counted against the
 * budget. Trailing bytes short of a PFN are ignored. */
static uint32_t pfns_process(struct balloon *b, const vmm_virtq_chain *ch, bool inflate)
{
	uint64_t total = ch->out_bytes / sizeof(uint32_t);
	if (total > BALLOON_PFN_BUDGET)
		total = BALLOON_PFN_BUDGET; /* Linux sends 256 per buffer; more is not served */
	if (!inflate) {
		b->deflated += total;
		return (uint32_t)total;
	}
	struct run run = { 0, 0 };
	uint32_t batch[BALLOON_PFN_BATCH];
	for (uint64_t done = 0; done < total;) {
		uint64_t n = total - done;
		if (n > BALLOON_PFN_BATCH)
			n = BALLOON_PFN_BATCH;
		/* Copied once, then used: the guest cannot change a PFN under us. */
		size_t got = vmm_virtq_chain_read(ch, done * sizeof(uint32_t), batch, n * sizeof(uint32_t));
		if (got != n * sizeof(uint32_t))
			break;
		for (uint64_t i = 0; i < n; i++)
			run_add(b, &run, le32toh(batch[i]));
		done += n;
	}
	run_flush(b, &run);
	return (uint32_t)total;
}

static bool queue_failed(struct balloon *b, int r, const char *why)
{
	if (r >= 0)
		return false;
	/* Keep the walker's reason (e.g. "head 3 already in flight") after ours. */
	char msg[512];
	snprintf(msg, sizeof msg, "%s: %s", why, vmm_last_error());
	vmm_virtio_dev_fail(b->dev, msg);
	return true;
}

/* Returns true if the budget ran out with chains possibly left. */
static bool pfn_queue(struct balloon *b, uint16_t qi)
{
	vmm_virtq *q = b->q[qi];
	uint32_t budget = BALLOON_PFN_BUDGET;
	bool pushed = false, more = false;
	for (unsigned n = 0;; n++) {
		if (n >= BALLOON_CHAIN_BUDGET || budget == 0) {
			more = true;
			break;
		}
		int r = vmm_virtq_pop(q, b->mem, b->chain);
		if (queue_failed(b, r, qi == BQ_INFLATE ? "inflate queue broken"
							 : "deflate queue broken"))
			return false;
		if (r == 0) {
			if (vmm_virtq_set_notify(q, b->mem, true))
				continue;
			break;
		}
		uint32_t used = pfns_process(b, b->chain, qi == BQ_INFLATE);
		budget = used >= budget ? 0 : budget - used;
		vmm_virtq_push(q, b->mem, b->chain->head, 0);
		pushed = true;
	}
	if (pushed)
		vmm_virtio_dev_interrupt(b->dev, qi);
	return more;
}

/* ---- statistics ---- */

static void stats_parse(struct balloon *b, const vmm_virtq_chain *ch)
{
	uint64_t n = ch->out_bytes / BALLOON_STAT_SIZE;
	if (n > BALLOON_STATS_MAX)
		n = BALLOON_STATS_MAX;
	for (uint64_t i = 0; i < n; i++) {
		uint8_t e[BALLOON_STAT_SIZE];
		if (vmm_virtq_chain_read(ch, i * BALLOON_STAT_SIZE, e, sizeof e) != sizeof e)
			break;
		uint16_t tag;
		uint64_t val;
		memcpy(&tag, e, sizeof tag);
		memcpy(&val, e + 2, sizeof val);
		tag = le16toh(tag);
		if (tag < BALLOON_NSTATS)
			b->guest_stats[tag] = le64toh(val);
	}
	b->stats_updates++;
}

static void stats_queue(struct balloon *b)
{
	vmm_virtq *q = b->q[BQ_STATS];
	bool pushed = false;
	/* The driver owns one stats buffer; a few rounds cover a driver re-posting it. */
	for (unsigned n = 0; n < 4; n++) {
		int r = vmm_virtq_pop(q, b->mem, b->chain);
		if (queue_failed(b, r, "stats queue broken"))
			return;
		if (r == 0)
			break;
		stats_parse(b, b->chain);
		if (b->stats_held) {
			/* A second buffer while we hold one: return the older one. */
			vmm_virtq_push(q, b->mem, b->stats_head, 0);
			pushed = true;
		}
		b->stats_head = b->chain->head;
		b->stats_held = true;
	}
	if (pushed)
		vmm_virtio_dev_interrupt(b->dev, BQ_STATS);
}

/* Hands the stats buffer back: the driver answers with fresh statistics. */
static void stats_request(struct balloon *b)
{
	if (!b->active || !b->stats_held || !b->q[BQ_STATS])
		return;
	b->stats_held = false;
	if (vmm_virtq_push(b->q[BQ_STATS], b->mem, b->stats_head, 0) == 0)
		vmm_virtio_dev_interrupt(b->dev, BQ_STATS);
}

/* ---- device ops ---- */

static void balloon_config_read(void *ctx, uint32_t offset, void *data, uint32_t len)
{
	struct balloon *b = ctx;
	struct virtio_balloon_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.num_pages = htole32(b->num_pages);
	cfg.actual = htole32(b->actual);
	memcpy(data, (const uint8_t *)&cfg + offset, len);
}

static void balloon_config_write(void *ctx, uint32_t offset, const void *data, uint32_t len)
{
	struct balloon *b = ctx;
	/* Only `actual` (bytes 4..7) is the driver's to write; any part of it may be
	 * written on its own. */
	const uint32_t lo = offsetof(struct virtio_balloon_config, actual), hi = lo + 4;
	uint32_t le = htole32(b->actual);
	uint8_t *a = (uint8_t *)&le;
	for (uint32_t i = 0; i < len; i++)
		if (offset + i >= lo && offset + i < hi)
			a[offset + i - lo] = ((const uint8_t *)data)[i];
	b->actual = le32toh(le);
}

static int balloon_activate(void *ctx, vmm_virtio_dev *dev, uint64_t features)
{
	struct balloon *b = ctx;
	b->dev = dev;
	b->mem = vmm_virtio_dev_mem(dev);
	b->stats_vq = features & (1ull << VIRTIO_BALLOON_F_STATS_VQ);
	for (uint16_t i = 0; i < 3; i++)
		b->q[i] = vmm_virtio_dev_queue(dev, i);
	if (!b->mem || !b->q[BQ_INFLATE] || !b->q[BQ_DEFLATE])
		return vmm_err(-EINVAL, "virtio-balloon: inflate and deflate queues are required");
	if (!b->stats_vq)
		b->q[BQ_STATS] = NULL;
	b->stats_held = false;
	b->reg_valid = false;
	b->active = true;
	return 0;
}

static void balloon_notify(void *ctx, vmm_virtio_dev *dev, uint16_t queue)
{
	struct balloon *b = ctx;
	if (!b->active)
		return;
	/* Regions may have changed since the last notify. */
	b->reg_valid = false;
	switch (queue) {
	case BQ_INFLATE:
	case BQ_DEFLATE:
		if (pfn_queue(b, queue))
			vmm_virtio_dev_reschedule(dev, queue);
		break;
	case BQ_STATS:
		if (b->q[BQ_STATS])
			stats_queue(b);
		break;
	default:
		break;
	}
}

static void balloon_reset(void *ctx, vmm_virtio_dev *dev)
{
	struct balloon *b = ctx;
	(void)dev;
	b->active = false;
	b->stats_held = false;
	b->actual = 0;
	b->mem = NULL;
	memset(b->q, 0, sizeof b->q);
}

/* State: the target the host set, the size the guest reports, the counters and the
 * guest's last statistics. The stats buffer the device holds is in flight in the
 * queue's state: after a load it comes back from vmm_virtq_pop (on the notify the
 * transport sends every queue) and is held again. */
#define BALLOON_STATE_TAG DEV_STATE_TAG('B', 'L', 'N', '1')
#define BALLOON_STATE_LEN (4u + 4u + 4u + 8u * 3u + 8u * BALLOON_NSTATS)

static int balloon_save_state(void *ctx, vmm_virtio_dev *dev, void *buf, size_t cap, size_t *len)
{
	struct balloon *b = ctx;
	(void)dev;
	int r = dev_state_begin(buf, cap, len, BALLOON_STATE_LEN);
	if (r <= 0)
		return r;
	struct dsw w = { buf };
	dsw_u32(&w, BALLOON_STATE_TAG);
	dsw_u32(&w, b->num_pages);
	dsw_u32(&w, b->actual);
	dsw_u64(&w, b->inflated);
	dsw_u64(&w, b->deflated);
	dsw_u64(&w, b->stats_updates);
	for (unsigned i = 0; i < BALLOON_NSTATS; i++)
		dsw_u64(&w, b->guest_stats[i]);
	return 0;
}

static int balloon_load_state(void *ctx, vmm_virtio_dev *dev, const void *buf, size_t len)
{
	struct balloon *b = ctx;
	(void)dev;
	struct dsr r = { buf, len, false };
	uint32_t tag = dsr_u32(&r);
	uint32_t num_pages = dsr_u32(&r), actual = dsr_u32(&r);
	uint64_t inflated = dsr_u64(&r), deflated = dsr_u64(&r), updates = dsr_u64(&r);
	uint64_t stats[BALLOON_NSTATS];
	for (unsigned i = 0; i < BALLOON_NSTATS; i++)
		stats[i] = dsr_u64(&r);
	if (r.bad || r.left || tag != BALLOON_STATE_TAG)
		return vmm_err(-EINVAL, "virtio-balloon: not a virtio-balloon state record (%zu bytes)", len);
	b->num_pages = num_pages;
	b->actual = actual;
	b->inflated = inflated;
	b->deflated = deflated;
	b->stats_updates = updates;
	memcpy(b->guest_stats, stats, sizeof stats);
	return 0;
}

static void balloon_destroy(void *ctx)
{
	struct balloon *b = ctx;
	free(b->chain);
	free(b);
}

int vmm_virtio_balloon_create(vmm_virtio_device **out, const vmm_virtio_balloon_opts *opts)
{
	if (!out)
		return vmm_err(-EINVAL, "virtio-balloon: out is NULL");
	*out = NULL;
	vmm_virtio_balloon_opts o = VMM_VIRTIO_BALLOON_OPTS_INIT;
	if (opts && vmm_opts_copy(&o, sizeof o, opts) < 0)
		return vmm_err(-EINVAL, "virtio-balloon: bad options size");
	if (o.flags)
		return vmm_err(-EINVAL, "virtio-balloon: unknown flags %#x", o.flags);
	struct balloon *b = calloc(1, sizeof *b);
	if (!b)
		return vmm_err(-ENOMEM, "virtio-balloon: out of memory");
	b->chain = malloc(sizeof *b->chain);
	if (!b->chain) {
		free(b);
		return vmm_err(-ENOMEM, "virtio-balloon: out of memory");
	}
	vmm_virtio_device_ops ops = { .size = sizeof ops };
	ops.name = "virtio-balloon";
	ops.device_id = VIRTIO_ID_BALLOON;
	ops.num_queues = 3;
	ops.queue_size_max = BALLOON_QUEUE_SIZE;
	ops.features = 1ull << VIRTIO_BALLOON_F_STATS_VQ;
	ops.config_size = sizeof(struct virtio_balloon_config);
	ops.config_read = balloon_config_read;
	ops.config_write = balloon_config_write;
	ops.activate = balloon_activate;
	ops.notify = balloon_notify;
	ops.reset = balloon_reset;
	ops.destroy = balloon_destroy;
	ops.save_state = balloon_save_state;
	ops.load_state = balloon_load_state;
	int r = vmm_virtio_device_create(out, &ops, b);
	if (r < 0) {
		balloon_destroy(b);
		return r;
	}
	return 0;
}

/* The balloon behind a device handle, or NULL if it is some other device. */
static struct balloon *balloon_of(vmm_virtio_device *dev)
{
	if (!dev)
		return NULL;
	const vmm_virtio_device_ops *ops = vmm_virtio_device_get_ops(dev);
	if (!ops || ops->activate != balloon_activate)
		return NULL;
	return vmm_virtio_device_ctx(dev);
}

int vmm_virtio_balloon_set_target(vmm_virtio_device *dev, uint32_t pages)
{
	struct balloon *b = balloon_of(dev);
	if (!b)
		return vmm_err(-EINVAL, "virtio-balloon: not a balloon device");
	vmm_virtio_dev *t = vmm_virtio_device_dev(dev);
	if (!t) {
		b->num_pages = pages; /* not attached: nobody else touches it yet */
		return 0;
	}
	vmm_virtio_dev_lock(t);
	b->num_pages = pages;
	vmm_virtio_dev_config_changed(t);
	vmm_virtio_dev_unlock(t);
	return 0;
}

int vmm_virtio_balloon_get_stats(vmm_virtio_device *dev, vmm_virtio_balloon_stats *out)
{
	struct balloon *b = balloon_of(dev);
	if (!b || !out)
		return vmm_err(-EINVAL, "virtio-balloon: not a balloon device, or out is NULL");
	vmm_virtio_dev *t = vmm_virtio_device_dev(dev);
	if (t)
		vmm_virtio_dev_lock(t);
	memset(out, 0, sizeof *out);
	out->target_pages = b->num_pages;
	out->actual_pages = b->actual;
	out->inflated_pages = b->inflated;
	out->deflated_pages = b->deflated;
	memcpy(out->guest_stats, b->guest_stats, sizeof out->guest_stats);
	out->stats_updates = b->stats_updates;
	if (t)
		stats_request(b);
	if (t)
		vmm_virtio_dev_unlock(t);
	return 0;
}
