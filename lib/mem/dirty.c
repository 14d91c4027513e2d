/* Dirty-page tracking: KVM's per-slot log (guest writes) merged with our own bitmap
 * (host writes through vmm_mem_write and write translations).
 *
 * KVM_GET_DIRTY_LOG returns and clears a slot's log in one call, because we never enable
 * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2. The dirty-log calls serialise on mem->dirty_lock;
 * host writers never take it (they OR bits in atomically). */
#include <string.h>

#include "../kvm/kvm.h"
#include "mem_internal.h"

static bool wants_kvm_log(const vmm_mem *mem, const struct mem_region *r)
{
	/* The guest cannot write a read-only slot, so it has nothing to log. */
	return mem->vm_fd >= 0 && !(r->flags & VMM_MEM_READONLY);
}

/* Moves the region's dirty pages (KVM's log and ours) into r->scratch, clearing both. */
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
	for (size_t w = 0; w < r->words; w++)
		r->scratch[w] |= atomic_exchange_explicit(&r->dirty[w], 0, memory_order_acquire);
	return 0;
}

/* Puts the fetched pages from page `from` on back into the region's bitmap, so that a
 * walk that stops early (or fails) loses nothing: they are reported next time. */
static void restore(struct mem_region *r, uint64_t from)
{
	for (size_t w = (size_t)(from / 64); w < r->words; w++) {
		uint64_t bits = r->scratch[w];
		if (w == from / 64)
			bits &= ~0ull << (from % 64);
		if (bits)
			atomic_fetch_or_explicit(&r->dirty[w], bits, memory_order_relaxed);
	}
}

/* Restores every fetched page at or above gpa. */
static void restore_from(vmm_mem *mem, uint64_t gpa)
{
	for (size_t i = 0; i < mem->nr; i++) {
		struct mem_region *r = &mem->regions[i];
		if (r->gpa + r->len <= gpa)
			continue;
		restore(r, gpa > r->gpa ? mem_pages(gpa - r->gpa) : 0);
	}
}

static void clear_host_bits(struct mem_region *r)
{
	for (size_t w = 0; w < r->words; w++)
		atomic_store_explicit(&r->dirty[w], 0, memory_order_relaxed);
}

int vmm_mem_dirty_start(vmm_mem *mem)
{
	if (!mem)
		return vmm_err(-EINVAL, "vmm_mem_dirty_start: NULL map");
	int rc = 0;
	pthread_mutex_lock(&mem->dirty_lock);
	if (atomic_load(&mem->dirty_on))
		goto out;
	/* Only writes from now on count (rings may hold entries from before a stop). */
	if (mem->ring_harvest)
		mem->ring_harvest(mem->ring_ctx);
	for (size_t i = 0; i < mem->nr; i++)
		clear_host_bits(&mem->regions[i]);
	atomic_store(&mem->dirty_on, true);
	for (size_t i = 0; i < mem->nr; i++) {
		struct mem_region *r = &mem->regions[i];
		if (!wants_kvm_log(mem, r))
			continue;
		if (r->kvm_log) {
			/* Left logging by a failed stop: drop what it logged meanwhile. */
			rc = fetch(mem, r);
		} else {
			rc = vmm_mem_kvm_register(mem, r, true);
		}
		if (rc) {
			/* Undo, keeping the message of the failure. */
			for (size_t j = 0; j < i; j++) {
				struct mem_region *u = &mem->regions[j];
				if (u->kvm_log && vmm_kvm_set_memory_region(mem->vm_fd, u->slot,
					(u->flags & VMM_MEM_READONLY) ? KVM_MEM_READONLY : 0, u->gpa, u->len, u->host) == 0)
					u->kvm_log = false;
			}
			atomic_store(&mem->dirty_on, false);
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&mem->dirty_lock);
	return rc;
}

int vmm_mem_dirty_stop(vmm_mem *mem)
{
	if (!mem)
		return vmm_err(-EINVAL, "vmm_mem_dirty_stop: NULL map");
	int rc = 0;
	pthread_mutex_lock(&mem->dirty_lock);
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
	pthread_mutex_unlock(&mem->dirty_lock);
	return rc;
}

bool vmm_mem_dirty_enabled(const vmm_mem *mem)
{
	/* Clang before 15 rejects atomic_load on a const object; the map is not const. */
	return mem && atomic_load((atomic_bool *)&mem->dirty_on);
}

/* Walks the fetched pages of every region in GPA order, merging consecutive pages
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
	if (!atomic_load(&mem->dirty_on)) {
		rc = vmm_err(-EINVAL, "guest memory: dirty tracking is off (call vmm_mem_dirty_start)");
		goto out;
	}
	if (mem->ring_harvest)
		mem->ring_harvest(mem->ring_ctx);
	/* Fetch everything first, so that runs can merge across adjacent regions. */
	for (size_t i = 0; i < mem->nr; i++) {
		if ((rc = fetch(mem, &mem->regions[i]))) {
			for (size_t j = 0; j < i; j++)
				restore(&mem->regions[j], 0);
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
	if (!atomic_load(&mem->dirty_on)) {
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
	if ((rc = fetch(mem, r)))
		goto out;
	memcpy(bitmap, r->scratch, r->words * sizeof *bitmap);
	memset(bitmap + r->words, 0, (words - r->words) * sizeof *bitmap);
out:
	pthread_mutex_unlock(&mem->dirty_lock);
	return rc;
}
