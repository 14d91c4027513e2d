/* In-memory snapshots: take (a stopped VM into a sealed memfd), the shared snapshot
 * object built by take and vmm_snapshot_open, clone, and the getters. Reset is in
 * reset.c, open and write in snapshot.c (next to restore and save, whose file handling
 * they share). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/vm_internal.h"
#include "../mem/mem_internal.h"
#include "snapshot_internal.h"

static void snap_destroy(struct vmm_snapshot *s)
{
	if (s->ro)
		for (uint32_t i = 0; i < s->d->nr_regions; i++)
			if (s->ro[i])
				munmap((void *)s->ro[i], (size_t)s->d->regions[i].len);
	if (s->region_fds)
		for (uint32_t i = 0; i < s->d->nr_regions; i++)
			if (s->region_fds[i] >= 0)
				close(s->region_fds[i]);
	if (s->mem_fd >= 0)
		close(s->mem_fd);
	if (s->data)
		for (uint32_t i = 0; i < s->d->nr_regions; i++)
			free(s->data[i]);
	free(s->data);
	free(s->region_fds);
	free(s->ro);
	snap_desc_free(s->d);
	free(s);
}

void snap_ref(struct vmm_snapshot *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void vmm_snapshot_free(vmm_snapshot *snap)
{
	if (snap && atomic_fetch_sub_explicit(&snap->refs, 1, memory_order_acq_rel) == 1)
		snap_destroy(snap);
}

/* vmm_mem_free's hook on a clone: its reference goes with its memory map. */
static void clone_release(void *ctx)
{
	vmm_snapshot_free(ctx);
}

/* Maps region i of the snapshot read-only and shared, after checking the file holds it. */
static int map_region(struct vmm_snapshot *s, uint32_t i)
{
	const struct snap_region *r = &s->d->regions[i];
	int fd = snap_region_fd(s, i);
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return vmm_err(-EINVAL, "snapshot region %u: its source fd %d is not a regular file", i, fd);
	if ((uint64_t)st.st_size < r->offset + r->len) /* both bounded by the validator */
		return vmm_err(-EINVAL, "snapshot region %u: the source is %llu bytes, the region needs %llu", i,
			       (unsigned long long)st.st_size, (unsigned long long)(r->offset + r->len));
	void *p = mmap(NULL, (size_t)r->len, PROT_READ, MAP_SHARED, fd, (off_t)r->offset);
	if (p == MAP_FAILED)
		return vmm_err(-errno, "snapshot region %u: mmap of its memory failed: %s", i, strerror(errno));
	s->ro[i] = p;
	return 0;
}

/* Records which pages of region i hold data in its source (SEEK_DATA / SEEK_HOLE). A
 * file system that cannot tell makes every page "data". With `populate`, also maps the
 * data pages into the read-only mapping now (they are in the page cache: a take just
 * wrote them), so that a reset does not take a page fault per page it copies. */
static int map_data(struct vmm_snapshot *s, uint32_t i, bool populate)
{
	const struct snap_region *r = &s->d->regions[i];
	uint64_t pages = r->len / VMM_PAGE_SIZE, words = (pages + 63) / 64;
	uint64_t *bits = calloc(words ? words : 1, sizeof *bits);
	if (!bits)
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	s->data[i] = bits;
	int fd = snap_region_fd(s, i);
	uint64_t off = r->offset, end = r->offset + r->len;
	while (off < end) {
		off_t d = lseek(fd, (off_t)off, SEEK_DATA);
		if (d < 0 && errno == ENXIO)
			break;
		off_t h = d < 0 ? -1 : lseek(fd, d, SEEK_HOLE);
		uint64_t a = d < 0 || h < 0 ? off : (uint64_t)d, b = d < 0 || h < 0 ? end : (uint64_t)h;
		if (a >= end)
			break;
		if (b > end)
			b = end;
		/* Page granular, rounded outwards. */
		uint64_t p0 = (a - r->offset) / VMM_PAGE_SIZE, p1 = (b - r->offset + VMM_PAGE_SIZE - 1) / VMM_PAGE_SIZE;
		for (uint64_t p = p0; p < p1; p++)
			bits[p / 64] |= 1ull << (p % 64);
#ifdef MADV_POPULATE_READ
		if (populate)
			madvise((void *)(s->ro[i] + p0 * VMM_PAGE_SIZE), (size_t)((p1 - p0) * VMM_PAGE_SIZE),
				MADV_POPULATE_READ); /* best effort: a fault later costs time, not correctness */
#else
		(void)populate;
#endif
		off = p1 * VMM_PAGE_SIZE + r->offset;
	}
	return 0;
}

static int dup_fd(int fd, int *out)
{
	*out = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	return *out < 0 ? vmm_err(-errno, "snapshot: dup of fd %d failed: %s", fd, strerror(errno)) : 0;
}

int snap_from_sources(struct snap_desc *d, const struct snap_mem_src *src, bool populate,
		      struct vmm_snapshot **out)
{
	*out = NULL;
	struct vmm_snapshot *s = calloc(1, sizeof *s);
	if (!s) {
		snap_desc_free(d);
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	}
	atomic_init(&s->refs, 1);
	s->d = d;
	s->mem_fd = -1;
	int r = 0;
	if (!(s->ro = calloc(d->nr_regions ? d->nr_regions : 1, sizeof *s->ro)) ||
	    !(s->data = calloc(d->nr_regions ? d->nr_regions : 1, sizeof *s->data))) {
		r = vmm_err(-ENOMEM, "snapshot: out of memory");
		goto fail;
	}
	if (d->mem_source == SNAP_MEM_FILE) {
		if ((r = dup_fd(src->file_fd, &s->mem_fd)))
			goto fail;
	} else {
		if (!(s->region_fds = malloc((d->nr_regions ? d->nr_regions : 1) * sizeof *s->region_fds))) {
			r = vmm_err(-ENOMEM, "snapshot: out of memory");
			goto fail;
		}
		for (uint32_t i = 0; i < d->nr_regions; i++)
			s->region_fds[i] = -1;
		for (uint32_t i = 0; i < d->nr_regions; i++)
			if ((r = dup_fd(src->region_fds[i], &s->region_fds[i])))
				goto fail;
	}
	for (uint32_t i = 0; i < d->nr_regions; i++) {
		if ((r = map_region(s, i)) || (r = map_data(s, i, populate)))
			goto fail;
		s->mem_size += d->regions[i].len;
	}
	*out = s;
	return 0;
fail:
	snap_destroy(s);
	return r;
}

/* ---- take ---- */

/* Copies the VM's memory into a new memfd laid out as a memory file (header page, then
 * each region's non-zero pages; holes stay holes), then seals it: nothing can change it
 * any more, so clones and resets may trust it without locking. */
static int copy_memory(vmm_vm *vm, const struct snap_desc *d, int *out)
{
	int fd = memfd_create("libvmm:snapshot", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return vmm_err(-errno, "snapshot: memfd_create failed: %s", strerror(errno));
	int r = snap_write_memory(vm, d, fd);
	if (!r && fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		r = vmm_err(-errno, "snapshot: sealing the memory memfd failed: %s", strerror(errno));
	if (r) {
		close(fd);
		return r;
	}
	*out = fd;
	return 0;
}

int vmm_snapshot_take(vmm_vm *vm, const vmm_snapshot_take_opts *opts, vmm_snapshot **out)
{
	if (!vm || !out)
		return vmm_err(-EINVAL, "vmm_snapshot_take: NULL argument");
	*out = NULL;
	vmm_snapshot_take_opts o = VMM_SNAPSHOT_TAKE_OPTS_INIT;
	if (opts && vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "vmm_snapshot_take: opts->size is too small");
	if (o.flags)
		return vmm_err(-EINVAL, "vmm_snapshot_take: unknown flags %#x", o.flags);
	if (vm->irqchip == VMM_IRQCHIP_SPLIT)
		return vmm_err(-ENOTSUP, "snapshot: split-irqchip VMs cannot be snapshotted yet (the user-space "
				"IOAPIC's state is not in the format)");
	struct snap_claim claim;
	struct snap_desc *d = NULL;
	uint8_t *state = NULL;
	size_t len = 0;
	int r = snap_take_state(vm, SNAP_MEM_FILE, o.devices, o.nr_devices, &claim, &state, &len, &d);
	if (r)
		return r;
	free(state);
	int memfd = -1;
	/* Still stopped: the copy is consistent with the state, and binding now makes
	 * every write after it count for a reset. */
	if (!(r = snap_prepare(d)) && !(r = snap_check_host(vm, d)) && !(r = copy_memory(vm, d, &memfd)))
		r = vmm_mem_snap_bind(vm->mem, d->mem_id);
	snap_release_vcpus(&claim);
	if (r) {
		if (memfd >= 0)
			close(memfd);
		snap_desc_free(d);
		return r;
	}
	struct snap_mem_src src = { .file_fd = memfd };
	r = snap_from_sources(d, &src, true, out);
	close(memfd);
	return r;
}

/* ---- clone ---- */

int vmm_snapshot_clone(vmm_snapshot *snap, const vmm_vm_opts *host_opts, vmm_vm **out)
{
	if (!snap || !out)
		return vmm_err(-EINVAL, "vmm_snapshot_clone: NULL argument");
	*out = NULL;
	const struct snap_desc *d = snap->d;
	vmm_vm *vm = NULL;
	int r = snap_new_vm(d, host_opts, &vm);
	if (r)
		return r;
	/* Bound before the regions exist: they are registered with dirty logging from the
	 * start (no write-protect pass over a populated slot later). */
	if ((r = vmm_mem_snap_bind(vm->mem, d->mem_id)))
		goto fail;
	struct snap_mem_src src = { .file_fd = snap->mem_fd, .region_fds = snap->region_fds,
				    .nr_region_fds = snap->region_fds ? d->nr_regions : 0 };
	if ((r = snap_restore_memory(vm, d, &src, VMM_SNAPSHOT_MEM_LAZY)))
		goto fail;
	if ((r = snap_apply(vm, d, 0)))
		goto fail;
	snap_ref(snap);
	vmm_mem_set_release(vm->mem, clone_release, snap);
	*out = vm;
	return 0;
fail:
	vmm_vm_destroy(vm);
	return r;
}

/* ---- getters ---- */

size_t vmm_snapshot_device_count(const vmm_snapshot *snap)
{
	return snap ? snap->d->nr_devices : 0;
}

int vmm_snapshot_device_state(const vmm_snapshot *snap, size_t i, const void **ptr, size_t *len)
{
	if (!snap || !ptr || !len)
		return vmm_err(-EINVAL, "vmm_snapshot_device_state: NULL argument");
	if (i >= snap->d->nr_devices)
		return vmm_err(-ENOENT, "vmm_snapshot_device_state: device %zu of %u", i, snap->d->nr_devices);
	*ptr = snap->d->devices[i].data;
	*len = snap->d->devices[i].len;
	return 0;
}

uint64_t vmm_snapshot_mem_size(const vmm_snapshot *snap)
{
	return snap ? snap->mem_size : 0;
}

size_t vmm_snapshot_vcpu_count(const vmm_snapshot *snap)
{
	return snap ? snap->d->nr_vcpus : 0;
}
