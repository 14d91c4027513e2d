/* The memory map: creation, the sorted region array, slot numbers and KVM slots. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../kvm/kvm.h"
#include "mem_internal.h"

#define KNOWN_FLAGS (VMM_MEM_READONLY | VMM_MEM_HUGEPAGES | VMM_MEM_THP | VMM_MEM_PRIVATE)

static int mem_new(vmm_mem **out, int vm_fd, uint32_t max_slots)
{
	if (!out)
		return vmm_err(-EINVAL, "guest memory: NULL output pointer");
	*out = NULL;
	vmm_mem *mem = calloc(1, sizeof *mem);
	if (!mem)
		return vmm_err(-ENOMEM, "guest memory: out of memory");
	mem->vm_fd = vm_fd;
	mem->max_slots = max_slots;
	mem->slot_used = calloc((max_slots + 63) / 64, sizeof *mem->slot_used);
	if (!mem->slot_used) {
		free(mem);
		return vmm_err(-ENOMEM, "guest memory: out of memory");
	}
	atomic_init(&mem->dirty_on, false);
	pthread_mutex_init(&mem->dirty_lock, NULL);
	*out = mem;
	return 0;
}

int vmm_mem_create(vmm_mem **out)
{
	return mem_new(out, -1, MEM_STANDALONE_SLOTS);
}

int vmm_mem_create_for_vm(vmm_mem **out, int vm_fd, uint32_t max_slots)
{
	if (vm_fd < 0)
		return vmm_err(-EINVAL, "guest memory: invalid VM fd %d", vm_fd);
	if (max_slots == 0)
		max_slots = MEM_DEFAULT_VM_SLOTS;
	/* Bits 16 and up of a KVM slot number select the address space (SMM), so a map
	 * never hands out more than 2^16 - 1 slots whatever the capability says. */
	if (max_slots > UINT16_MAX)
		max_slots = UINT16_MAX;
	return mem_new(out, vm_fd, max_slots);
}

void vmm_mem_set_dontfork(vmm_mem *mem, bool on)
{
	mem->dontfork = on;
}

static void region_release(struct mem_region *r)
{
	vmm_mem_backing_unmap(r);
	free((void *)r->dirty);
	free(r->scratch);
	free(r->pend_app);
	free(r->pend_snap);
}

/* Frees the map without touching KVM: the VM (and with it every slot) is going away, and
 * the vCPUs no longer run, so deleting slots one by one would only cost time. */
void vmm_mem_free(vmm_mem *mem)
{
	if (!mem)
		return;
	for (size_t i = 0; i < mem->nr; i++)
		region_release(&mem->regions[i]);
	free(mem->regions);
	free(mem->slot_used);
	pthread_mutex_destroy(&mem->dirty_lock);
	void (*release)(void *) = mem->release;
	void *ctx = mem->release_ctx;
	free(mem);
	if (release)
		release(ctx);
}

void vmm_mem_set_release(vmm_mem *mem, void (*fn)(void *ctx), void *ctx)
{
	mem->release = fn;
	mem->release_ctx = ctx;
}

void vmm_mem_destroy(vmm_mem *mem)
{
	if (!mem || mem->vm_fd >= 0)
		return; /* NULL, or owned by a VM: vmm_vm_destroy frees it */
	vmm_mem_free(mem);
}

long vmm_mem_find(const vmm_mem *mem, uint64_t gpa)
{
	size_t lo = 0, hi = mem->nr;
	/* Find the last region with start <= gpa. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (mem->regions[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return -1;
	const struct mem_region *r = &mem->regions[lo - 1];
	return gpa - r->gpa < r->len ? (long)(lo - 1) : -1;
}

/* Index at which a region starting at gpa would be inserted (first region above it). */
static size_t insert_pos(const vmm_mem *mem, uint64_t gpa)
{
	size_t lo = 0, hi = mem->nr;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (mem->regions[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int vmm_mem_kvm_register(vmm_mem *mem, struct mem_region *r, bool log)
{
	uint32_t flags = (r->flags & VMM_MEM_READONLY) ? KVM_MEM_READONLY : 0;
	if (log)
		flags |= KVM_MEM_LOG_DIRTY_PAGES;
	int rc = vmm_kvm_set_memory_region(mem->vm_fd, r->slot, flags, r->gpa, r->len, r->host);
	if (rc < 0)
		return vmm_err(rc, "guest memory%s%s: KVM_SET_USER_MEMORY_REGION slot %u gpa 0x%llx len 0x%llx flags 0x%x failed: %s",
			       r->name[0] ? " " : "", r->name, r->slot, (unsigned long long)r->gpa,
			       (unsigned long long)r->len, flags, strerror(-rc));
	r->kvm_log = log;
	return 0;
}

static long slot_alloc(const vmm_mem *mem)
{
	for (uint32_t w = 0; w < (mem->max_slots + 63) / 64; w++) {
		uint64_t free_bits = ~mem->slot_used[w];
		if (!free_bits)
			continue;
		uint32_t slot = w * 64 + (uint32_t)__builtin_ctzll(free_bits);
		return slot < mem->max_slots ? (long)slot : -1;
	}
	return -1;
}

static void slot_set(vmm_mem *mem, uint32_t slot, bool used)
{
	if (used)
		mem->slot_used[slot / 64] |= 1ull << (slot % 64);
	else
		mem->slot_used[slot / 64] &= ~(1ull << (slot % 64));
}

/* Argument checks that need no system call. desc names the region for messages. */
static int validate(const vmm_mem_region_opts *o, const char *desc)
{
	uint64_t end;
	if (o->flags & ~KNOWN_FLAGS)
		return vmm_err(-EINVAL, "%s: unknown flags 0x%x", desc, o->flags & ~KNOWN_FLAGS);
	if (o->len == 0)
		return vmm_err(-EINVAL, "%s: length is zero", desc);
	if ((o->gpa | o->len) & (VMM_PAGE_SIZE - 1))
		return vmm_err(-EINVAL, "%s: address and length must be multiples of %u bytes", desc,
			       VMM_PAGE_SIZE);
	if (vmm_add_overflows(o->gpa, o->len, &end))
		return vmm_err(-EINVAL, "%s: range wraps around the end of the address space", desc);
	if ((unsigned)o->backing > VMM_MEM_HOST)
		return vmm_err(-EINVAL, "%s: unknown backing %u", desc, (unsigned)o->backing);
	if ((o->flags & VMM_MEM_PRIVATE) && o->backing != VMM_MEM_FILE)
		return vmm_err(-EINVAL, "%s: VMM_MEM_PRIVATE applies to file backing only", desc);
	if (o->flags & VMM_MEM_HUGEPAGES) {
		if (o->backing != VMM_MEM_MEMFD && o->backing != VMM_MEM_ANON)
			return vmm_err(-EINVAL, "%s: VMM_MEM_HUGEPAGES applies to memfd and anonymous backing only",
				       desc);
		if (o->flags & VMM_MEM_THP)
			return vmm_err(-EINVAL, "%s: VMM_MEM_HUGEPAGES and VMM_MEM_THP exclude each other", desc);
		if (o->len % MEM_HUGE_PAGE_SIZE)
			return vmm_err(-EINVAL, "%s: VMM_MEM_HUGEPAGES needs a length that is a multiple of %u bytes",
				       desc, MEM_HUGE_PAGE_SIZE);
	}
	return 0;
}

static int check_overlap(const vmm_mem *mem, size_t pos, uint64_t gpa, uint64_t end, const char *desc)
{
	const struct mem_region *hit = NULL;
	if (pos > 0 && mem->regions[pos - 1].gpa + mem->regions[pos - 1].len > gpa)
		hit = &mem->regions[pos - 1];
	else if (pos < mem->nr && mem->regions[pos].gpa < end)
		hit = &mem->regions[pos];
	if (!hit)
		return 0;
	return vmm_err(-EEXIST, "%s: overlaps region%s%s [0x%llx, 0x%llx)", desc, hit->name[0] ? " " : "",
		       hit->name, (unsigned long long)hit->gpa, (unsigned long long)(hit->gpa + hit->len));
}

static int reserve(vmm_mem *mem)
{
	if (mem->nr < mem->cap)
		return 0;
	size_t cap = mem->cap ? mem->cap * 2 : 8;
	struct mem_region *n = realloc(mem->regions, cap * sizeof *n);
	if (!n)
		return vmm_err(-ENOMEM, "guest memory: out of memory");
	mem->regions = n;
	mem->cap = cap;
	return 0;
}

int vmm_mem_add_region(vmm_mem *mem, const vmm_mem_region_opts *opts)
{
	if (!mem || !opts)
		return vmm_err(-EINVAL, "vmm_mem_add_region: NULL %s", mem ? "options" : "map");
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	if (vmm_opts_copy(&o, sizeof o, opts) < 0)
		return vmm_err(-EINVAL, "vmm_mem_add_region: options size field is %u", opts->size);

	char desc[160];
	snprintf(desc, sizeof desc, "guest memory region%s%.64s [0x%llx, +0x%llx)", o.name ? " " : "",
		 o.name ? o.name : "", (unsigned long long)o.gpa, (unsigned long long)o.len);
	int rc = validate(&o, desc);
	if (rc)
		return rc;
	size_t pos = insert_pos(mem, o.gpa);
	if ((rc = check_overlap(mem, pos, o.gpa, o.gpa + o.len, desc)))
		return rc;
	long slot = slot_alloc(mem);
	if (slot < 0)
		return vmm_err(-ENOSPC, "%s: no memory slot left (%u in use)", desc, mem->max_slots);
	if ((rc = reserve(mem)))
		return rc;

	struct mem_region r = {
		.gpa = o.gpa, .len = o.len, .flags = o.flags, .slot = (uint32_t)slot,
		.backing = o.backing, .fd = -1,
	};
	if (o.name)
		snprintf(r.name, sizeof r.name, "%s", o.name);
	r.words = (size_t)((mem_pages(o.len) + 63) / 64);
	r.dirty = calloc(r.words, sizeof *r.dirty);
	r.scratch = calloc(r.words, sizeof *r.scratch);
	r.pend_app = calloc(r.words, sizeof *r.pend_app);
	r.pend_snap = calloc(r.words, sizeof *r.pend_snap);
	if (!r.dirty || !r.scratch || !r.pend_app || !r.pend_snap) {
		rc = vmm_err(-ENOMEM, "%s: out of memory for the dirty bitmap", desc);
		goto fail_bitmaps;
	}
	if ((rc = vmm_mem_backing_map(&r, &o, desc)))
		goto fail_bitmaps;
	if (mem->dontfork && madvise(r.host, (size_t)o.len, MADV_DONTFORK) < 0) {
		rc = vmm_err(-errno, "%s: madvise(MADV_DONTFORK) failed: %s", desc, strerror(errno));
		goto fail_map;
	}
	if (mem->vm_fd >= 0) {
		bool log = atomic_load(&mem->dirty_on) && !(r.flags & VMM_MEM_READONLY);
		if ((rc = vmm_mem_kvm_register(mem, &r, log)))
			goto fail_map;
	}
	memmove(&mem->regions[pos + 1], &mem->regions[pos], (mem->nr - pos) * sizeof r);
	mem->regions[pos] = r;
	mem->nr++;
	slot_set(mem, r.slot, true);
	return 0;

fail_map:
	vmm_mem_backing_unmap(&r);
fail_bitmaps:
	free((void *)r.dirty);
	free(r.scratch);
	free(r.pend_app);
	free(r.pend_snap);
	return rc;
}

int vmm_mem_remove_region(vmm_mem *mem, uint64_t gpa)
{
	if (!mem)
		return vmm_err(-EINVAL, "vmm_mem_remove_region: NULL map");
	long i = vmm_mem_find(mem, gpa);
	if (i < 0 || mem->regions[i].gpa != gpa)
		return vmm_err(-ENOENT, "guest memory: no region starts at 0x%llx", (unsigned long long)gpa);
	struct mem_region *r = &mem->regions[i];
	if (mem->vm_fd >= 0) {
		/* Delete the slot first: if KVM refuses, the region stays whole and usable. */
		int rc = vmm_kvm_set_memory_region(mem->vm_fd, r->slot, 0, r->gpa, 0, r->host);
		if (rc < 0)
			return vmm_err(rc, "guest memory: deleting KVM slot %u at 0x%llx failed: %s", r->slot,
				       (unsigned long long)gpa, strerror(-rc));
	}
	slot_set(mem, r->slot, false);
	region_release(r);
	memmove(r, r + 1, (mem->nr - (size_t)i - 1) * sizeof *r);
	mem->nr--;
	return 0;
}

size_t vmm_mem_region_count(const vmm_mem *mem)
{
	return mem ? mem->nr : 0;
}

int vmm_mem_get_region(const vmm_mem *mem, size_t i, vmm_mem_region_info *out)
{
	if (!mem || !out)
		return vmm_err(-EINVAL, "vmm_mem_get_region: NULL %s", mem ? "output" : "map");
	if (i >= mem->nr)
		return vmm_err(-ENOENT, "guest memory: region index %zu out of range (%zu regions)", i, mem->nr);
	const struct mem_region *r = &mem->regions[i];
	*out = (vmm_mem_region_info){
		.gpa = r->gpa, .len = r->len, .host = r->host, .fd = r->fd,
		.file_offset = r->file_offset, .flags = r->flags, .slot = r->slot,
	};
	return 0;
}
