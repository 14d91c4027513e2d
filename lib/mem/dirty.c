/* Dirty-page tracking: KVM's per-slot log (guest writes) merged with our own bitmap
 * (host writes through vmm_mem_write and write translations).
 *
 * Two consumers read the log independently: the application (vmm_mem_dirty_start /
 * collect / bitmap / stop) and the snapshot the map is bound to (vmm_mem_snap_*, for
 * vmm_snapshot_reset). Fetching clears KVM's log, so whichever consumer fetches keeps
 * what it fetched for the other in that one's pending bitmap (pend_app, pend_snap):
 * each gets every page once, and neither can make the other miss a write. KVM logging
 * stays on while either consumer is.
 *
 * KVM_GET_DIRTY_LOG returns and clears a slot's log in one call (and write-protects the
 * pages again), because we never enable KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: its split
 * into GET + CLEAR would cost a second ioctl per slot on every collect, and its benefit
 * (not write-protecting a huge slot all at once when logging starts) matters for live
 * migration of big guests, not for resets, where logging starts on a fresh clone or
 * once per snapshot. The dirty-log calls serialise on mem->dirty_lock; host writers
 * never take it (they OR bits in atomically). */
#include <string.h>

#include "../kvm/kvm.h"
#include "mem_internal.h"

static bool wants_kvm_log(const vmm_mem *mem, const struct mem_region *r)
{
	/* The guest cannot write a read-only slot, so it has nothing to log. */
	return mem->vm_fd >= 0 && !(r->flags & VMM_MEM_READONLY);
}

/* Moves the pages written since the last fetch (KVM's log and our host-side marks) into
 * r->scratch, clearing both. */
static int fetch(vmm_mem *mem, struct mem_region *r)
{
	if (mem->vm_fd >= 0 && r->kvm_log && !mem->ring_harvest) {
		int rc = vmm_kvm_get_dirty_log(mem->vm_fd, r->slot, r->scratch);
		if (rc < 0)
			return vmm_err(rc, "guest memory: KVM_GET_DIRTY_LOG of slot %u (gpa 0x%llx) failed: %s",
				       r->slot, (unsigned long long)r->gpa, strerror(-rc));
	} else {
		memset(r->scratch, 0, r->words * sizeof *r->scratch);
	}
	for (size_t w = 0; w < r->words; w++) {
		/* A plain load first: most words are clear, and the exchange is a locked
		 * instruction. A bit set after the load is simply seen next time. */
		if (atomic_load_explicit(&r->dirty[w], memory_order_relaxed))
			r->scratch[w] |= atomic_exchange_explicit(&r->dirty[w], 0, memory_order_acquire);
	}
	return 0;
}

/* After fetch: gives the fetched pages to one consumer (snap: the bound snapshot, else
 * the application) together with what was pending for it, and keeps them pending for
 * the other consumer if that one is on. */
static void deliver(vmm_mem *mem, struct mem_region *r, bool snap)
{
	uint64_t *mine = snap ? r->pend_snap : r->pend_app;
	uint64_t *other = (snap ? mem->app_on : mem->snap_on) ? (snap ? r->pend_app : r->pend_snap) : NULL;
	for (size_t w = 0; w < r->words; w++) {
		uint64_t b = r->scratch[w];
		if (other)
			other[w] |= b;
		if (mine[w]) {
			b |= mine[w];
			mine[w] = 0;
		}
		r->scratch[w] = b;
	}
}

/* Fetch + deliver for one region. */
static int take(vmm_mem *mem, struct mem_region *r, bool snap)
{
	int rc = fetch(mem, r);
	if (!rc)
		deliver(mem, r, snap);
	return rc;
}

/* Puts the delivered pages from page `from` on back into the consumer's pending set, so
 * that a walk that stops early (or fails) loses nothing: they are reported next time. */
static void restore(struct mem_region *r, uint64_t from, bool snap)
{
	uint64_t *mine = snap ? r->pend_snap : r->pend_app;
	for (size_t w = (size_t)(from / 64); w < r->words; w++) {
		uint64_t bits = r->scratch[w];
		if (w == from / 64)
			bits &= ~0ull << (from % 64);
		mine[w] |= bits;
	}
}

/* Restores every delivered page at or above gpa (application consumer). */
static void restore_from(vmm_mem *mem, uint64_t gpa)
{
	for (size_t i = 0; i < mem->nr; i++) {
		struct mem_region *r = &mem->regions[i];
		if (r->gpa + r->len <= gpa)
			continue;
		restore(r, gpa > r->gpa ? mem_pages(gpa - r->gpa) : 0, false);
	}
}

/* Turns KVM logging on for every writable region not logging yet. On failure, turns it
 * off again on those this call turned on (unless `keep`: the other consumer is on) and
 * returns the error. */
static int log_on(vmm_mem *mem, bool keep)
{
	for (size_t i = 0; i < mem->nr; i++) {
		struct mem_region *r = &mem->regions[i];
		if (!wants_kvm_log(mem, r) || r->kvm_log)
			continue;
		int rc = vmm_mem_kvm_register(mem, r, true);
		if (!rc)
			continue;
		for (size_t j = 0; j < i && !keep; j++) {
			struct mem_region *u = &mem->regions[j];
			/* Keep the message of the first failure: call KVM directly. */
			if (u->kvm_log && vmm_kvm_set_memory_region(mem->vm_fd, u->slot,
				(u->flags & VMM_MEM_READONLY) ? KVM_MEM_READONLY : 0, u->gpa, u->len, u->host) == 0)
				u->kvm_log = false;
		}
		return rc;
	}
	return 0;
}

/* Starts one consumer afresh: pages written so far are not its business (but stay the
 * other consumer's, if that one is on). */
static int consumer_start(vmm_mem *mem, bool snap)
{
	bool other_on = snap ? mem->app_on : mem->snap_on;
	/* Only writes from now on count (rings may hold entries from before). */
	if (mem->ring_harvest)
		mem->ring_harvest(mem->ring_ctx);
	for (size_t i = 0; i < mem->nr; i++) {
		struct mem_region *r = &mem->regions[i];
		int rc = fetch(mem, r);
		if (rc)
			return rc;
		if (other_on) {
			uint64_t *other = snap ? r->pend_app : r->pend_snap;
			for (size_t w = 0; w < r->words; w++)
				other[w] |= r->scratch[w];
		}
		memset(snap ? r->pend_snap : r->pend_app, 0, r->words * sizeof(uint64_t));
	}
	atomic_store(&mem->dirty_on, true);
	int rc = log_on(mem, other_on);
	if (rc) {
		atomic_store(&mem->dirty_on, other_on);
		return rc;
	}
	if (snap)
		mem->snap_on = true;
	else
		mem->app_on = true;
	return 0;
}

int vmm_mem_dirty_start(vmm_mem *mem)
{
	if (!mem)
		return vmm_err(-EINVAL, "vmm_mem_dirty_start: NULL map");
	int rc = 0;
	pthread_mutex_lock(&mem->dirty_lock);
	if (!mem->app_on)
		rc = consumer_start(mem, false);
	pthread_mutex_unlock(&mem->dirty_lock);
	return rc;
}

int vmm_mem_dirty_stop(vmm_mem *mem)
{
	if (!mem)
		return vmm_err(-EINVAL, "vmm_mem_dirty_stop: NULL map");
	int rc = 0;
	pthread_mutex_lock(&mem->dirty_lock);
	mem->app_on = false;
	/* A bound snapshot still needs the log: then only the application stops. */
	if (!mem->snap_on) {
		atomic_store(&mem->dirty_on, false);
		for (size_t i = 0; i < mem->nr; i++) {
			struct mem_region *r = &mem->regions[i];
			if (!r->kvm_log)
				continue;
			/* On failure the slot keeps logging (harmless); start copes with it. */
			int e = vmm_mem_kvm_register(mem, r, false);
			if (e && !rc)
				rc = e;
		}
	}
	pthread_mutex_unlock(&mem->dirty_lock);
	return rc;
}

bool vmm_mem_dirty_enabled(const vmm_mem *mem)
{
	/* Clang before 15 rejects atomic_load on a const object; the map is not const. */
	return mem && atomic_load((atomic_bool *)&mem->dirty_on);
}

/* Walks the delivered pages of every region in GPA order, merging consecutive pages
 * (also across adjacent regions) into runs. */
static int walk(vmm_mem *mem, vmm_mem_dirty_fn fn, void *ctx)
{
	uint64_t run_gpa = 0, run_n = 0;
	for (size_t i = 0; i < mem->nr; i++) {
		const struct mem_region *r = &mem->regions[i];
		for (size_t w = 0; w < r->words; w++) {
			for (uint64_t bits = r->scratch[w]; bits; bits &= bits - 1) {
				uint64_t page = (uint64_t)w * 64 + (uint64_t)__builtin_ctzll(bits);
				uint64_t gpa = r->gpa + (page << MEM_PAGE_SHIFT);
				if (run_n && run_gpa + (run_n << MEM_PAGE_SHIFT) == gpa) {
					run_n++;
					continue;
				}
				if (run_n) {
					int rc = fn(ctx, run_gpa, run_n);
					if (rc) {
						restore_from(mem, run_gpa);
						return rc;
					}
				}
				run_gpa = gpa;
				run_n = 1;
			}
		}
	}
	if (run_n) {
		int rc = fn(ctx, run_gpa, run_n);
		if (rc) {
			restore_from(mem, run_gpa);
			return rc;
		}
	}
	return 0;
}

int vmm_mem_dirty_collect(vmm_mem *mem, vmm_mem_dirty_fn fn, void *ctx)
{
	if (!mem)
		return vmm_err(-EINVAL, "vmm_mem_dirty_collect: NULL map");
	int rc = 0;
	pthread_mutex_lock(&mem->dirty_lock);
	if (!mem->app_on) {
		rc = vmm_err(-EINVAL, "guest memory: dirty tracking is off (call vmm_mem_dirty_start)");
		goto out;
	}
	if (mem->ring_harvest)
		mem->ring_harvest(mem->ring_ctx);
	/* Fetch everything first, so that runs can merge across adjacent regions. */
	for (size_t i = 0; i < mem->nr; i++) {
		if ((rc = take(mem, &mem->regions[i], false))) {
			for (size_t j = 0; j < i; j++)
				restore(&mem->regions[j], 0, false);
			goto out;
		}
	}
	if (fn)
		rc = walk(mem, fn, ctx);
out:
	pthread_mutex_unlock(&mem->dirty_lock);
	return rc;
}

int vmm_mem_dirty_bitmap(vmm_mem *mem, uint64_t region_gpa, uint64_t *bitmap, size_t words)
{
	if (!mem || !bitmap)
		return vmm_err(-EINVAL, "vmm_mem_dirty_bitmap: NULL %s", mem ? "bitmap" : "map");
	int rc = 0;
	pthread_mutex_lock(&mem->dirty_lock);
	long i = vmm_mem_find(mem, region_gpa);
	if (i < 0 || mem->regions[i].gpa != region_gpa) {
		rc = vmm_err(-ENOENT, "guest memory: no region starts at 0x%llx", (unsigned long long)region_gpa);
		goto out;
	}
	struct mem_region *r = &mem->regions[i];
	if (!mem->app_on) {
		rc = vmm_err(-EINVAL, "guest memory: dirty tracking is off (call vmm_mem_dirty_start)");
		goto out;
	}
	if (words < r->words) {
		rc = vmm_err(-ENOSPC, "guest memory: region at 0x%llx needs a bitmap of %zu words, got %zu",
			     (unsigned long long)region_gpa, r->words, words);
		goto out;
	}
	if (mem->ring_harvest)
		mem->ring_harvest(mem->ring_ctx);
	if ((rc = take(mem, r, false)))
		goto out;
	memcpy(bitmap, r->scratch, r->words * sizeof *bitmap);
	memset(bitmap + r->words, 0, (words - r->words) * sizeof *bitmap);
out:
	pthread_mutex_unlock(&mem->dirty_lock);
	return rc;
}

/* ---- the bound snapshot's consumer (lib/snapshot) ---- */

int vmm_mem_snap_bind(vmm_mem *mem, const uint8_t id[16])
{
	pthread_mutex_lock(&mem->dirty_lock);
	/* Binding again starts over: the pages pending for the old binding are dropped. */
	mem->snap_on = false;
	int rc = consumer_start(mem, true);
	if (!rc)
		memcpy(mem->snap_id, id, sizeof mem->snap_id);
	pthread_mutex_unlock(&mem->dirty_lock);
	return rc;
}

bool vmm_mem_snap_bound(vmm_mem *mem, const uint8_t id[16])
{
	pthread_mutex_lock(&mem->dirty_lock);
	bool b = mem->snap_on && memcmp(mem->snap_id, id, sizeof mem->snap_id) == 0;
	pthread_mutex_unlock(&mem->dirty_lock);
	return b;
}

int vmm_mem_snap_collect(vmm_mem *mem, vmm_mem_snap_fn fn, void *ctx)
{
	int rc = 0;
	pthread_mutex_lock(&mem->dirty_lock);
	if (!mem->snap_on) {
		rc = vmm_err(-EINVAL, "guest memory: not bound to a snapshot");
		goto out;
	}
	if (mem->ring_harvest)
		mem->ring_harvest(mem->ring_ctx);
	for (size_t i = 0; i < mem->nr; i++) {
		if ((rc = take(mem, &mem->regions[i], true))) {
			for (size_t j = 0; j < i; j++)
				restore(&mem->regions[j], 0, true);
			goto out;
		}
	}
	/* Runs within each region (the caller copies region by region). */
	for (size_t i = 0; i < mem->nr; i++) {
		const struct mem_region *r = &mem->regions[i];
		uint64_t start = 0, n = 0;
		for (size_t w = 0; w < r->words; w++) {
			uint64_t bits = r->scratch[w];
			if (!bits)
				continue;
			if (bits == ~0ull) { /* a full word: one step */
				uint64_t page = (uint64_t)w * 64;
				if (n && start + n == page) {
					n += 64;
				} else {
					if (n)
						fn(ctx, i, start, n);
					start = page;
					n = 64;
				}
				continue;
			}
			for (; bits; bits &= bits - 1) {
				uint64_t page = (uint64_t)w * 64 + (uint64_t)__builtin_ctzll(bits);
				if (n && start + n == page) {
					n++;
					continue;
				}
				if (n)
					fn(ctx, i, start, n);
				start = page;
				n = 1;
			}
		}
		if (n)
			fn(ctx, i, start, n);
	}
out:
	pthread_mutex_unlock(&mem->dirty_lock);
	return rc;
}
