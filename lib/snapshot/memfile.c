/* Guest memory of a snapshot: writing the sparse memory file, and bringing memory back
 * into a new VM (eager copy, lazy copy-on-write mapping, or shared mapping). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/vm_internal.h"
#include "../mem/mem_internal.h"
#include "snapshot_internal.h"

/* Largest single read or write: keeps each system call bounded. */
#define IO_CHUNK (64ull << 20)

static int pwrite_all(int fd, const uint8_t *p, uint64_t len, uint64_t off)
{
	while (len) {
		size_t n = len > IO_CHUNK ? (size_t)IO_CHUNK : (size_t)len;
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		off += (uint64_t)w;
		len -= (uint64_t)w;
	}
	return 0;
}

static int pread_all(int fd, uint8_t *p, uint64_t len, uint64_t off)
{
	while (len) {
		size_t n = len > IO_CHUNK ? (size_t)IO_CHUNK : (size_t)len;
		ssize_t got = pread(fd, p, n, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return -ENODATA; /* the file is shorter than checked: it shrank */
		p += got;
		off += (uint64_t)got;
		len -= (uint64_t)got;
	}
	return 0;
}

static bool page_is_zero(const uint8_t *p)
{
	/* 64 bytes per step with an early exit: most non-zero pages show it at once. */
	const uint64_t *q = (const uint64_t *)(const void *)p;
	for (size_t i = 0; i < VMM_PAGE_SIZE / 8; i += 8) {
		uint64_t acc = q[i] | q[i + 1] | q[i + 2] | q[i + 3] | q[i + 4] | q[i + 5] | q[i + 6] | q[i + 7];
		if (acc)
			return false;
	}
	return true;
}

/* The next data extent of fd at or after `off`, below `end`: [*start, *stop). Returns 1
 * if found, 0 if none, or 2 if fd cannot tell (then treat [off, end) as data). */
static int next_extent(int fd, uint64_t off, uint64_t end, uint64_t *start, uint64_t *stop)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);
	if (d < 0)
		return errno == ENXIO ? 0 : 2;
	if ((uint64_t)d >= end)
		return 0;
	off_t h = lseek(fd, d, SEEK_HOLE);
	if (h < 0)
		return 2;
	*start = (uint64_t)d;
	*stop = (uint64_t)h < end ? (uint64_t)h : end;
	return 1;
}

/* Writes the non-zero pages of host[0, len) to fd at `base`, in runs. */
static int write_nonzero(int fd, const uint8_t *host, uint64_t from, uint64_t to, uint64_t base)
{
	uint64_t run = from;
	bool in_run = false;
	for (uint64_t off = from; off < to; off += VMM_PAGE_SIZE) {
		bool zero = page_is_zero(host + off);
		if (!zero && !in_run) {
			run = off;
			in_run = true;
		}
		if (in_run && (zero || off + VMM_PAGE_SIZE - run >= IO_CHUNK)) {
			uint64_t end = zero ? off : off + VMM_PAGE_SIZE;
			int r = pwrite_all(fd, host + run, end - run, base + run);
			if (r)
				return r;
			in_run = false;
		}
	}
	return in_run ? pwrite_all(fd, host + run, to - run, base + run) : 0;
}

/* Refuses to write the memory file over memory we read from (a lazy or shared restore
 * from that very file, or an opened snapshot's file): truncating it would pull the pages
 * from under the guest. */
static int check_not_source(const struct snap_desc *d, const struct snap_mem_view *views, int fd)
{
	struct stat out, st;
	if (fstat(fd, &out) < 0)
		return vmm_err(-errno, "snapshot memory file: fstat failed: %s", strerror(errno));
	for (uint32_t i = 0; i < d->nr_regions; i++) {
		const struct snap_region *r = &d->regions[i];
		if (views[i].fd >= 0 && fstat(views[i].fd, &st) == 0 && st.st_dev == out.st_dev &&
		    st.st_ino == out.st_ino)
			return vmm_err(-EINVAL, "snapshot memory file: it is the file region %s%s[%#llx, +%#llx) is "
					"mapped from: save to another file (or by path, which replaces it safely)",
				       r->name, r->name[0] ? " " : "", (unsigned long long)r->gpa,
				       (unsigned long long)r->len);
	}
	return 0;
}

/* Writes region bytes [0, len) from a view to fd at `base`. A view with a file knows
 * where its data is: its holes are skipped without touching them (reading a hole of a
 * shared memfd mapping would allocate a page). Other memory is scanned page by page
 * (anonymous holes read as the shared zero page, which costs no memory). */
static int write_view(int fd, const struct snap_mem_view *v, uint64_t len, uint64_t base)
{
	if (v->fd < 0)
		return write_nonzero(fd, v->host, 0, len, base);
	uint64_t from = 0, start, stop;
	int k, r;
	while (from < len && (k = next_extent(v->fd, v->fd_off + from, v->fd_off + len, &start, &stop)) != 0) {
		if (k == 2) {
			start = v->fd_off + from;
			stop = v->fd_off + len;
		}
		/* Extents are page granular on tmpfs; round outwards to be sure. */
		uint64_t a = (start - v->fd_off) & ~(uint64_t)(VMM_PAGE_SIZE - 1);
		uint64_t b = stop - v->fd_off;
		b = (b + VMM_PAGE_SIZE - 1) & ~(uint64_t)(VMM_PAGE_SIZE - 1);
		if (b > len)
			b = len;
		if ((r = write_nonzero(fd, v->host, a, b, base)))
			return r;
		from = b;
	}
	return 0;
}

int snap_write_mem_views(const struct snap_desc *d, const struct snap_mem_view *views, int fd)
{
	int r = check_not_source(d, views, fd);
	if (r)
		return r;
	/* Empty the file first, so pages not written below are holes that read as zeros. */
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)d->mem_file_size) < 0)
		return vmm_err(-errno, "snapshot memory file: truncating to %llu bytes failed: %s",
			       (unsigned long long)d->mem_file_size, strerror(errno));
	uint8_t *page = calloc(1, SNAP_MEM_HEADER_SIZE);
	if (!page)
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	snap_fill_mem_header(d, page);
	r = pwrite_all(fd, page, SNAP_MEM_HEADER_SIZE, 0);
	free(page);
	if (r)
		return vmm_err(r, "snapshot memory file: writing the header failed: %s", strerror(-r));
	for (uint32_t i = 0; i < d->nr_regions; i++)
		if ((r = write_view(fd, &views[i], d->regions[i].len, d->regions[i].offset)))
			return vmm_err(r, "snapshot memory file: writing guest memory failed: %s", strerror(-r));
	return 0;
}

int snap_write_memory(vmm_vm *vm, const struct snap_desc *d, int fd)
{
	vmm_mem *mem = vm->mem;
	if (mem->nr != d->nr_regions)
		return vmm_err(-EBUSY, "snapshot: the memory map changed during the save");
	struct snap_mem_view *views = calloc(mem->nr ? mem->nr : 1, sizeof *views);
	if (!views)
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	int r = 0;
	for (size_t i = 0; i < mem->nr && !r; i++) {
		const struct mem_region *reg = &mem->regions[i];
		if (reg->gpa != d->regions[i].gpa || reg->len != d->regions[i].len)
			r = vmm_err(-EBUSY, "snapshot: the memory map changed during the save");
		/* Only a memfd's extents are exactly the region's data; any other file
		 * (a private copy, a shared file) is scanned through the mapping. It still
		 * counts as a source for check_not_source. */
		views[i] = (struct snap_mem_view){ .host = reg->host, .fd = reg->fd, .fd_off = reg->file_offset };
	}
	if (!r) {
		r = check_not_source(d, views, fd);
		for (size_t i = 0; i < mem->nr; i++)
			if (mem->regions[i].backing != VMM_MEM_MEMFD)
				views[i].fd = -1;
	}
	if (!r)
		r = snap_write_mem_views(d, views, fd);
	free(views);
	return r;
}

/* ---- restore ---- */

static int source_size(int fd, uint64_t *size)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	*size = (uint64_t)st.st_size;
	return 0;
}

/* Copies the data extents of fd[off, off + len) into host[0, len); holes are left alone
 * (the new memfd reads zeros there without allocating). */
static int copy_in(int fd, uint64_t off, uint64_t len, uint8_t *host)
{
	uint64_t from = off, end = off + len, start, stop;
	int k, r;
	while (from < end && (k = next_extent(fd, from, end, &start, &stop)) != 0) {
		if (k == 2) {
			start = from;
			stop = end;
		}
		if ((r = pread_all(fd, host + (start - off), stop - start, start)))
			return r;
		from = stop;
	}
	return 0;
}

int snap_restore_memory(vmm_vm *vm, const struct snap_desc *d, const struct snap_mem_src *src, int mode)
{
	for (uint32_t i = 0; i < d->nr_regions; i++) {
		const struct snap_region *s = &d->regions[i];
		int fd = d->mem_source == SNAP_MEM_FILE ? src->file_fd : src->region_fds[i];
		char desc[160];
		snprintf(desc, sizeof desc, "snapshot region %u%s%s [%#llx, +%#llx)", i, s->name[0] ? " " : "", s->name,
			 (unsigned long long)s->gpa, (unsigned long long)s->len);
		uint64_t size = 0;
		int r = source_size(fd, &size);
		if (r)
			return vmm_err(r, "%s: its source fd %d is not a readable regular file", desc, fd);
		if (s->offset + s->len > size)
			return vmm_err(-EINVAL, "%s: the source is %llu bytes, the region needs %llu", desc,
				       (unsigned long long)size, (unsigned long long)(s->offset + s->len));
		vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
		o.gpa = s->gpa;
		o.len = s->len;
		o.name = s->name[0] ? s->name : NULL;
		if (mode == VMM_SNAPSHOT_MEM_EAGER) {
			o.flags = s->flags;
		} else {
			o.backing = VMM_MEM_FILE;
			o.fd = fd;
			o.file_offset = s->offset;
			o.flags = (s->flags & VMM_MEM_READONLY) | (mode == VMM_SNAPSHOT_MEM_LAZY ? VMM_MEM_PRIVATE : 0);
		}
		if ((r = vmm_mem_add_region(vm->mem, &o)))
			return r;
		if (mode != VMM_SNAPSHOT_MEM_EAGER)
			continue;
		void *host;
		if ((r = vmm_mem_translate(vm->mem, s->gpa, s->len, false, &host)))
			return vmm_err(r, "%s: the new region is not addressable", desc);
		if ((r = copy_in(fd, s->offset, s->len, host)))
			return vmm_err(r, "%s: reading guest memory failed: %s", desc,
				       r == -ENODATA ? "the file shrank" : strerror(-r));
	}
	return 0;
}
