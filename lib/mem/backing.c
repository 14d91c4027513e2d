/* Host memory behind a region: memfd, anonymous, the caller's file, or the caller's
 * mapping. */
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mem_internal.h"

/* mmap of fd for the region; returns 0 or -errno (the caller words the message). */
static int map_fd(struct mem_region *r, uint64_t len, int fd, uint64_t offset, int prot, int flags)
{
	void *p = mmap(NULL, (size_t)len, prot, flags, fd, (off_t)offset);
	if (p == MAP_FAILED)
		return -errno;
	r->host = p;
	r->map = p;
	r->map_len = (size_t)len;
	r->fd = fd;
	r->file_offset = offset;
	return 0;
}

static int map_memfd(struct mem_region *r, const vmm_mem_region_opts *o, const char *desc)
{
	bool huge = o->flags & VMM_MEM_HUGEPAGES;
	char name[80];
	snprintf(name, sizeof name, "libvmm:%.64s", o->name ? o->name : "guest-ram");
	if (o->len > (uint64_t)INT64_MAX)
		return vmm_err(-EFBIG, "%s: too large for a memfd", desc);
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | (huge ? MFD_HUGETLB : 0));
	if (fd < 0)
		return vmm_err(-errno, "%s: memfd_create%s failed: %s", desc, huge ? " (hugetlb)" : "",
			       strerror(errno));
	int rc;
	if (ftruncate(fd, (off_t)o->len) < 0) {
		rc = vmm_err(-errno, "%s: sizing the memfd failed: %s", desc, strerror(errno));
		goto fail;
	}
	/* The size never changes again: whoever else holds the fd cannot shrink it under
	 * the mapping (which would turn guest accesses into SIGBUS in the host). */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		rc = vmm_err(-errno, "%s: sealing the memfd size failed: %s", desc, strerror(errno));
		goto fail;
	}
	if ((rc = map_fd(r, o->len, fd, 0, PROT_READ | PROT_WRITE, MAP_SHARED)) < 0) {
		rc = vmm_err(rc, "%s: mmap of the memfd failed: %s%s", desc, strerror(-rc),
			     huge && rc == -ENOMEM ? " (are huge pages reserved in /proc/sys/vm/nr_hugepages?)" : "");
		goto fail;
	}
	return 0;
fail:
	close(fd);
	return rc;
}

static int map_anon(struct mem_region *r, const vmm_mem_region_opts *o, const char *desc)
{
	bool huge = o->flags & VMM_MEM_HUGEPAGES;
	/* MAP_NORESERVE lets a large, mostly untouched guest exist without swap
	 * accounting; not with hugetlb, where it would defer the failure from here to a
	 * SIGBUS on first touch. */
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | (huge ? MAP_HUGETLB : MAP_NORESERVE);
	void *p = mmap(NULL, (size_t)o->len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		return vmm_err(-errno, "%s: anonymous mmap%s failed: %s%s", desc, huge ? " (hugetlb)" : "",
			       strerror(errno),
			       huge && errno == ENOMEM ? " (are huge pages reserved in /proc/sys/vm/nr_hugepages?)" : "");
	r->host = p;
	r->map = p;
	r->map_len = (size_t)o->len;
	r->fd = -1;
	return 0;
}

/* Size in bytes of a regular file or block device. */
static int file_size(int fd, uint64_t *size, const char *desc)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return vmm_err(-errno, "%s: fstat of fd %d failed: %s", desc, fd, strerror(errno));
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0)
			return vmm_err(-errno, "%s: BLKGETSIZE64 failed: %s", desc, strerror(errno));
		return 0;
	}
	/* Anything else has no size we can check, and mapping past its end would turn
	 * guest accesses into SIGBUS in the host. */
	return vmm_err(-EINVAL, "%s: fd %d is neither a regular file nor a block device", desc, fd);
}

static int map_file(struct mem_region *r, const vmm_mem_region_opts *o, const char *desc)
{
	uint64_t size, end;
	if (o->fd < 0)
		return vmm_err(-EINVAL, "%s: file backing needs a file descriptor", desc);
	if (o->file_offset & (VMM_PAGE_SIZE - 1))
		return vmm_err(-EINVAL, "%s: file offset 0x%llx is not page aligned", desc,
			       (unsigned long long)o->file_offset);
	if (vmm_add_overflows(o->file_offset, o->len, &end) || end > (uint64_t)INT64_MAX)
		return vmm_err(-EINVAL, "%s: file offset 0x%llx + length overflows", desc,
			       (unsigned long long)o->file_offset);
	int rc = file_size(o->fd, &size, desc);
	if (rc)
		return rc;
	/* Checked once here; a caller who later shrinks a shared file gets SIGBUS, as with
	 * any mapping. */
	if (end > size)
		return vmm_err(-EINVAL, "%s: file is 0x%llx bytes, the region needs 0x%llx", desc,
			       (unsigned long long)size, (unsigned long long)end);
	int fd = fcntl(o->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return vmm_err(-errno, "%s: dup of fd %d failed: %s", desc, o->fd, strerror(errno));
	bool priv = o->flags & VMM_MEM_PRIVATE;
	/* A read-only shared region maps PROT_READ so that O_RDONLY files work; a private
	 * copy stays writable for the owner (to patch a ROM image, say). */
	int prot = (o->flags & VMM_MEM_READONLY) && !priv ? PROT_READ : PROT_READ | PROT_WRITE;
	rc = map_fd(r, o->len, fd, o->file_offset, prot, priv ? MAP_PRIVATE : MAP_SHARED);
	if (rc < 0) {
		close(fd);
		return vmm_err(rc, "%s: mmap of fd %d failed: %s%s", desc, o->fd, strerror(-rc),
			       rc == -EACCES ? " (file not open for writing? use VMM_MEM_READONLY or VMM_MEM_PRIVATE)"
					     : "");
	}
	return 0;
}

static int map_host(struct mem_region *r, const vmm_mem_region_opts *o, const char *desc)
{
	if (!o->host || ((uintptr_t)o->host & (VMM_PAGE_SIZE - 1)))
		return vmm_err(-EINVAL, "%s: host backing needs a page-aligned mapping", desc);
	r->host = o->host;
	r->map = NULL; /* the caller's: never unmapped here */
	r->map_len = 0;
	r->fd = -1;
	return 0;
}

int vmm_mem_backing_map(struct mem_region *r, const vmm_mem_region_opts *o, const char *desc)
{
	struct mem_region t = *r;
	int rc;
	switch (o->backing) {
	case VMM_MEM_MEMFD: rc = map_memfd(&t, o, desc); break;
	case VMM_MEM_ANON: rc = map_anon(&t, o, desc); break;
	case VMM_MEM_FILE: rc = map_file(&t, o, desc); break;
	case VMM_MEM_HOST: rc = map_host(&t, o, desc); break;
	default: return vmm_err(-EINVAL, "%s: unknown backing %u", desc, (unsigned)o->backing);
	}
	if (rc)
		return rc;
	if ((o->flags & VMM_MEM_THP) && madvise(t.host, (size_t)o->len, MADV_HUGEPAGE) < 0) {
		rc = vmm_err(-errno, "%s: madvise(MADV_HUGEPAGE) failed: %s", desc, strerror(errno));
		vmm_mem_backing_unmap(&t);
		return rc;
	}
	*r = t;
	return 0;
}

void vmm_mem_backing_unmap(struct mem_region *r)
{
	if (r->map)
		munmap(r->map, r->map_len);
	if (r->fd >= 0)
		close(r->fd);
	r->map = NULL;
	r->map_len = 0;
	r->fd = -1;
	r->host = NULL;
}
