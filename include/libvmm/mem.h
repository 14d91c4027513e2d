/* libvmm: guest physical memory.
 *
 * A vmm_mem is a set of non-overlapping regions, each a range of guest physical addresses
 * (GPAs) backed by host memory. The memory map of a VM is vmm_vm_mem(vm); regions added
 * there become KVM memory slots. A standalone map (vmm_mem_create) has no VM behind it
 * and serves tools and tests that only need checked guest-memory access.
 *
 * All host access to guest memory goes through vmm_mem_translate, which checks that
 * [gpa, gpa + len) lies inside one region with overflow-checked arithmetic.
 *
 * Threading: translate, read, write and the dirty-log calls may run concurrently on any
 * thread; adding or removing regions must not race with them (do it while vCPUs and
 * devices are stopped). Pointers returned by vmm_mem_translate stay valid until the
 * region is removed. Active virtio devices hold such pointers (ring areas from
 * activation to reset, chains while in flight), so remove a region only while no device
 * is active; the guest itself cannot remove memory. Devices re-read guest-shared data
 * from guest memory at each notification and read each field once.
 */
#ifndef LIBVMM_MEM_H
#define LIBVMM_MEM_H

#include <stdbool.h>
#include <libvmm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMM_PAGE_SIZE 4096u

typedef enum vmm_mem_backing {
	VMM_MEM_MEMFD = 0, /* default: a sealed-size memfd (shareable, snapshot-friendly) */
	VMM_MEM_ANON = 1,  /* private anonymous memory */
	VMM_MEM_FILE = 2,  /* the caller's file descriptor `fd` at `file_offset`, MAP_SHARED
	                    * (MAP_PRIVATE with VMM_MEM_PRIVATE) */
	VMM_MEM_HOST = 3,  /* the caller's mapping `host`; not owned, not unmapped */
} vmm_mem_backing;

/* vmm_mem_region_opts.flags */
#define VMM_MEM_READONLY (1u << 0)  /* guest writes exit as MMIO; host writes rejected */
#define VMM_MEM_HUGEPAGES (1u << 1) /* MAP_HUGETLB (fails with -ENOMEM if none are reserved) */
#define VMM_MEM_THP (1u << 2)       /* madvise(MADV_HUGEPAGE): transparent huge pages */
#define VMM_MEM_PRIVATE (1u << 3)   /* VMM_MEM_FILE: copy-on-write private mapping */

typedef struct vmm_mem_region_opts {
	uint32_t size;           /* sizeof(vmm_mem_region_opts) */
	uint32_t flags;          /* VMM_MEM_* flags */
	uint64_t gpa;            /* first guest physical address; page aligned */
	uint64_t len;            /* bytes; page aligned, > 0 */
	vmm_mem_backing backing; /* default VMM_MEM_MEMFD */
	int fd;                  /* VMM_MEM_FILE: the file (not closed by the library; it
	                          * is dup'ed) */
	uint64_t file_offset;    /* VMM_MEM_FILE: page aligned offset */
	void *host;              /* VMM_MEM_HOST: page aligned mapping of `len` bytes */
	const char *name;        /* optional, for messages and the memfd name */
} vmm_mem_region_opts;

#define VMM_MEM_REGION_OPTS_INIT { sizeof(vmm_mem_region_opts), 0, 0, 0, VMM_MEM_MEMFD, -1, 0, 0, 0 }

/* A region as reported by vmm_mem_region_info. */
typedef struct vmm_mem_region_info {
	uint64_t gpa;
	uint64_t len;
	void *host;   /* host address of gpa */
	int fd;       /* backing fd (memfd or file), -1 for anonymous/host memory; borrowed */
	uint64_t file_offset;
	uint32_t flags;
	uint32_t slot; /* KVM slot number */
} vmm_mem_region_info;

/* A standalone memory map without a VM. Returns 0, -EINVAL, -ENOMEM. */
VMM_API int vmm_mem_create(vmm_mem **out);
/* Frees a standalone map and its regions. Maps owned by a VM are freed by
 * vmm_vm_destroy; passing one here is a no-op. NULL is a no-op. */
VMM_API void vmm_mem_destroy(vmm_mem *mem);

/* Adds a region. Returns 0, or -EINVAL (misaligned, zero length, bad backing),
 * -EEXIST (overlaps a region), -ENOSPC (no KVM slot left), -ENOMEM, or the errno of the
 * failed mmap/memfd/KVM call. Not thread-safe against other calls on `mem`. */
VMM_API int vmm_mem_add_region(vmm_mem *mem, const vmm_mem_region_opts *opts);

/* Removes the region that starts at `gpa`, unmapping it (and deleting the KVM slot).
 * Returns 0 or -ENOENT. */
VMM_API int vmm_mem_remove_region(vmm_mem *mem, uint64_t gpa);

/* Number of regions, and region i (in GPA order). Returns 0 or -ENOENT. */
VMM_API size_t vmm_mem_region_count(const vmm_mem *mem);
VMM_API int vmm_mem_get_region(const vmm_mem *mem, size_t i, vmm_mem_region_info *out);

/* The checked translation: if [gpa, gpa+len) lies in one region (and, when `write`, the
 * region is writable), stores the host address of gpa in *host and returns 0; otherwise
 * -EFAULT (outside RAM, crossing a region end, or arithmetic overflow) or -EROFS.
 * len 0 is valid if gpa is inside a region. A write translation marks the pages dirty
 * for vmm_mem_dirty_collect while dirty tracking is on. Any thread. */
VMM_API int vmm_mem_translate(vmm_mem *mem, uint64_t gpa, uint64_t len, bool write, void **host);

/* Copy between guest memory and a host buffer; the range may span adjacent regions.
 * Returns 0, -EFAULT or -EROFS; nothing is copied on failure. Any thread. */
VMM_API int vmm_mem_read(vmm_mem *mem, uint64_t gpa, void *buf, size_t len);
VMM_API int vmm_mem_write(vmm_mem *mem, uint64_t gpa, const void *buf, size_t len);

/* Dirty-page tracking. Start turns on KVM dirty logging for every region (and regions
 * added later); from then on pages the guest writes, and pages the host writes through
 * vmm_mem_write / write translations, are reported once by vmm_mem_dirty_collect and
 * then forgotten until written again. A standalone map tracks host writes only.
 * Starting while on, or stopping while off, does nothing. Returns 0, or the errno of
 * the KVM call (a failed start leaves tracking off). */
VMM_API int vmm_mem_dirty_start(vmm_mem *mem);
VMM_API int vmm_mem_dirty_stop(vmm_mem *mem);
/* True while host writes are being tracked: after vmm_mem_dirty_start, and also while
 * the VM is bound to a snapshot for vmm_snapshot_reset (that tracking is separate: it
 * neither takes pages from vmm_mem_dirty_collect nor stops with vmm_mem_dirty_stop). */
VMM_API bool vmm_mem_dirty_enabled(const vmm_mem *mem);

/* Called for each run of consecutive dirty pages: first page GPA and page count (runs
 * continue across adjacent regions). A non-zero return stops the walk and is returned
 * by vmm_mem_dirty_collect; the pages of that run and of every later run stay dirty for
 * the next collection. Runs on the caller's thread with the map's dirty-log lock held:
 * it must not call the vmm_mem_dirty_* functions of the same map. */
typedef int (*vmm_mem_dirty_fn)(void *ctx, uint64_t gpa, uint64_t npages);

/* Fetches and clears the dirty log of every region, calling fn for each run of dirty
 * pages in GPA order. fn may be NULL (just clear). Returns 0, fn's non-zero value,
 * -EINVAL if tracking is off, or the errno of the KVM call. Call it while the vCPUs are
 * paused to get a consistent set. */
VMM_API int vmm_mem_dirty_collect(vmm_mem *mem, vmm_mem_dirty_fn fn, void *ctx);

/* Fetches and clears the dirty log of the region starting at `region_gpa` into a
 * bitmap (bit i = page i of the region, 64 pages per word, little-endian bit order).
 * `words` must be >= ceil(pages / 64). Returns 0, -ENOENT, -EINVAL, -ENOSPC. */
VMM_API int vmm_mem_dirty_bitmap(vmm_mem *mem, uint64_t region_gpa, uint64_t *bitmap, size_t words);

#ifdef __cplusplus
}
#endif
#endif
