/* Private state of a guest memory map (lib/mem only). */
#ifndef LIBVMM_MEM_INTERNAL_H
#define LIBVMM_MEM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "../internal.h"

#define MEM_PAGE_SHIFT 12
/* The only huge page size x86_64 KVM hosts use by default; hugetlb lengths must be a
 * multiple of it (ftruncate and munmap of hugetlb memory require it). */
#define MEM_HUGE_PAGE_SIZE (2u << 20)
/* A standalone map has no KVM behind it; it still numbers its regions like slots, with
 * the same bound as KVM's own (KVM_USER_MEM_SLOTS is 32764 on x86_64). */
#define MEM_STANDALONE_SLOTS 32764u
/* KVM_CAP_NR_MEMSLOTS answered 0: fall back to the smallest limit KVM ever had. */
#define MEM_DEFAULT_VM_SLOTS 32u

struct mem_region {
	uint64_t gpa;
	uint64_t len;
	uint8_t *host;       /* host address of gpa */
	void *map;           /* what we munmap (NULL for VMM_MEM_HOST: not ours) */
	size_t map_len;
	int fd;              /* owned memfd or dup'ed file fd, or -1 */
	uint64_t file_offset;
	uint32_t flags;      /* VMM_MEM_* */
	uint32_t slot;
	vmm_mem_backing backing;
	bool kvm_log;        /* the KVM slot is registered with KVM_MEM_LOG_DIRTY_PAGES */
	/* Host writes (vmm_mem_write, write translations) set bits here from any thread,
	 * with atomic OR; collection takes them with atomic exchange. Allocated with the
	 * region and freed only when it is removed, so dirty_stop never races a writer. */
	_Atomic uint64_t *dirty;
	/* Scratch for KVM's log and the merged set, used only under mem->dirty_lock. */
	uint64_t *scratch;
	/* Pages fetched (from KVM's log and `dirty`) that one consumer of the dirty log
	 * has not been given yet because the other one collected them: the application
	 * (vmm_mem_dirty_*) and snapshot reset (vmm_mem_snap_*) each get every page.
	 * Under mem->dirty_lock. */
	uint64_t *pend_app;
	uint64_t *pend_snap;
	size_t words;        /* ceil(pages / 64), for both bitmaps */
	char name[64];       /* for messages; empty if none */
};

struct vmm_mem {
	struct mem_region *regions; /* sorted by gpa, non-overlapping */
	size_t nr, cap;
	int vm_fd;                  /* -1 for a standalone map */
	uint32_t max_slots;
	uint64_t *slot_used;        /* bitmap of max_slots bits */
	/* Host writes are marked while this is on: app_on || snap_on. */
	atomic_bool dirty_on;
	/* Serialises the dirty-log calls among themselves (start, stop, collect, bitmap);
	 * translate/read/write never take it. */
	pthread_mutex_t dirty_lock;
	/* The two consumers of the dirty log, under dirty_lock: the application
	 * (vmm_mem_dirty_start/stop) and the snapshot the map is bound to (lib/snapshot:
	 * vmm_mem_snap_*; never turned off once bound). */
	bool app_on;
	bool snap_on;
	uint8_t snap_id[16]; /* the bound snapshot's identity (snap_on) */
	/* Called by vmm_mem_free after the regions are unmapped (a clone's reference on
	 * its snapshot). */
	void (*release)(void *ctx);
	void *release_ctx;
	/* Dirty-ring mode (set by the VM): harvests every vCPU's ring into the host-side
	 * bitmaps before a collect; KVM_GET_DIRTY_LOG is not used then. */
	vmm_mem_ring_harvest_fn ring_harvest;
	void *ring_ctx;
	bool dontfork; /* VMM_VM_DONTFORK: every region is madvise(MADV_DONTFORK) */
};

/* Index of the region containing gpa, or -1. Binary search. */
VMM_HIDDEN long vmm_mem_find(const vmm_mem *mem, uint64_t gpa);

/* Maps the backing of a region described by opts into r (host, map, map_len, fd,
 * file_offset). desc names the region in messages. Leaves r untouched on failure. */
VMM_HIDDEN int vmm_mem_backing_map(struct mem_region *r, const vmm_mem_region_opts *o, const char *desc);
VMM_HIDDEN void vmm_mem_backing_unmap(struct mem_region *r);

/* Marks the pages of [off, off + len) of region r dirty (off + len <= r->len). */
VMM_HIDDEN void vmm_mem_mark_dirty(struct mem_region *r, uint64_t off, uint64_t len);

/* (Re-)registers the KVM slot of r with the flags its state calls for: read-only, and
 * dirty logging if `log`. Updates r->kvm_log on success. VM maps only. */
VMM_HIDDEN int vmm_mem_kvm_register(vmm_mem *mem, struct mem_region *r, bool log);

/* ---- snapshot reset tracking (lib/snapshot) ---- */

/* Binds the map to snapshot `id`: from now on the pages written (KVM's log or ring,
 * host writes) are kept for vmm_mem_snap_collect, starting empty. Turns KVM dirty
 * logging on for every writable region (and regions added later). Binding again
 * (another id, or the same) starts over. Returns 0 or the errno of the KVM call. */
VMM_HIDDEN int vmm_mem_snap_bind(vmm_mem *mem, const uint8_t id[16]);
/* True if the map is bound to snapshot `id`. */
VMM_HIDDEN bool vmm_mem_snap_bound(vmm_mem *mem, const uint8_t id[16]);
/* Called for each run of dirty pages of region `region` (index in GPA order):
 * [first_page, first_page + npages) of it. Runs with the dirty lock held. */
typedef void (*vmm_mem_snap_fn)(void *ctx, size_t region, uint64_t first_page, uint64_t npages);
/* Fetches the pages written since the bind or the last collect (clearing them) and
 * calls fn for each run. Allocation-free. Returns 0, -EINVAL (not bound), or the
 * errno of KVM_GET_DIRTY_LOG (the pages fetched so far are kept for the next call). */
VMM_HIDDEN int vmm_mem_snap_collect(vmm_mem *mem, vmm_mem_snap_fn fn, void *ctx);
/* Sets the hook vmm_mem_free calls last. */
VMM_HIDDEN void vmm_mem_set_release(vmm_mem *mem, void (*fn)(void *ctx), void *ctx);

static inline uint64_t mem_pages(uint64_t len)
{
	return len >> MEM_PAGE_SHIFT;
}

#endif
