/* virtio-blk image files: opening (or adopting) the image, its capacity and ID. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk_internal.h"

/* A private fd on the caller's image. With VMM_BLK_DIRECT and an fd without O_DIRECT,
 * the image is reopened through /proc/self/fd: setting O_DIRECT on a dup would change
 * the caller's open file description too. */
static int adopt_fd(int fd, bool readonly, bool direct)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return vmm_err(-errno, "virtio-blk: fd %d: %s", fd, strerror(errno));
	int acc = fl & O_ACCMODE;
	if (acc == O_WRONLY)
		return vmm_err(-EINVAL, "virtio-blk: fd %d is open write-only; the image must be readable", fd);
	if (acc == O_RDONLY && !readonly)
		return vmm_err(-EINVAL, "virtio-blk: fd %d is open read-only; set VMM_BLK_READONLY", fd);
	int nfd;
	if (direct && !(fl & O_DIRECT)) {
		char path[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		nfd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC);
		if (nfd < 0)
			return vmm_err(-errno, "virtio-blk: reopening fd %d with O_DIRECT: %s", fd, strerror(errno));
	} else {
		nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (nfd < 0)
			return vmm_err(-errno, "virtio-blk: dup of fd %d: %s", fd, strerror(errno));
	}
	return nfd;
}

static int image_size(int fd, const char *what, uint64_t *size)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return vmm_err(-errno, "virtio-blk: %s: fstat: %s", what, strerror(errno));
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) != 0)
			return vmm_err(-errno, "virtio-blk: %s: BLKGETSIZE64: %s", what, strerror(errno));
		return 0;
	}
	return vmm_err(-EINVAL, "virtio-blk: %s is neither a regular file nor a block device", what);
}

int vmm_blk_disk_open(vmm_blk_disk *d, const vmm_virtio_blk_opts *o)
{
	d->fd = -1;
	d->readonly = o->flags & VMM_BLK_READONLY;
	d->direct = o->flags & VMM_BLK_DIRECT;
	if (o->flags & ~(uint32_t)(VMM_BLK_READONLY | VMM_BLK_DIRECT))
		return vmm_err(-EINVAL, "virtio-blk: unknown flags %#x", o->flags);

	const char *id = o->id ? o->id : "libvmm";
	size_t id_len = strnlen(id, VIRTIO_BLK_ID_BYTES + 1);
	if (id_len > VIRTIO_BLK_ID_BYTES)
		return vmm_err(-EINVAL, "virtio-blk: id \"%.20s...\" is longer than %u bytes", id,
			       VIRTIO_BLK_ID_BYTES);
	memset(d->id, 0, sizeof d->id);
	memcpy(d->id, id, id_len);

	char what[64];
	int fd;
	if (o->path) {
		snprintf(what, sizeof what, "%.60s", o->path);
		fd = open(o->path, (d->readonly ? O_RDONLY : O_RDWR) | (d->direct ? O_DIRECT : 0) | O_CLOEXEC);
		if (fd < 0)
			return vmm_err(-errno, "virtio-blk: cannot open %s: %s", o->path, strerror(errno));
	} else if (o->fd >= 0) {
		snprintf(what, sizeof what, "fd %d", o->fd);
		fd = adopt_fd(o->fd, d->readonly, d->direct);
		if (fd < 0)
			return fd;
	} else {
		return vmm_err(-EINVAL, "virtio-blk: neither a path nor an fd given");
	}

	uint64_t size = 0;
	int r = image_size(fd, what, &size);
	if (r != 0) {
		close(fd);
		return r;
	}
	/* A partial last sector is not addressable. */
	d->sectors = size >> BLK_SECTOR_SHIFT;
	d->fd = fd;
	return 0;
}

void vmm_blk_disk_close(vmm_blk_disk *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	free(d->bounce);
	d->bounce = NULL;
}
