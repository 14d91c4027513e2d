/* vmm_snapshot_save / vmm_snapshot_restore: options, files, and the order of the steps
 * (see snapshot_internal.h for the pipeline and the format). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/vm_internal.h"
#include "snapshot_internal.h"

#define SAVE_FLAGS (VMM_SNAPSHOT_SAVE_MEM_IN_PLACE | VMM_SNAPSHOT_SAVE_SYNC)
#define RESTORE_FLAGS (VMM_SNAPSHOT_RESTORE_ANY_TSC_KHZ)

/* An output file. By path, it is written as a temporary file next to `path` and renamed
 * over it only once complete: a failed save leaves the old file as it was, and a VM
 * restored lazily from the old file keeps its (now unlinked) inode. By fd, it is the
 * caller's file, rewritten in place. */
struct out_file {
	const char *path;
	char *tmp;  /* the temporary file's name (path only) */
	int fd;
};

static int open_out(struct out_file *f, const char *path, int fd, const char *what)
{
	f->path = path;
	f->tmp = NULL;
	f->fd = -1;
	if (path) {
		size_t n = strlen(path) + sizeof ".tmp-XXXXXX";
		if (!(f->tmp = malloc(n)))
			return vmm_err(-ENOMEM, "snapshot: out of memory");
		snprintf(f->tmp, n, "%s.tmp-XXXXXX", path);
		f->fd = mkostemp(f->tmp, O_CLOEXEC); /* mode 0600 */
		if (f->fd < 0) {
			int e = errno;
			free(f->tmp);
			f->tmp = NULL;
			return vmm_err(-e, "snapshot: cannot create the %s next to %s: %s", what, path, strerror(e));
		}
		return 0;
	}
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return vmm_err(-EINVAL, "snapshot: the %s fd %d is not an open regular file", what, fd);
	f->fd = fd;
	return 0;
}

/* Moves a complete temporary file into place (and with `sync`, makes the rename
 * durable by syncing the directory). */
static int commit_out(struct out_file *f, bool sync, const char *what)
{
	if (!f->tmp)
		return 0;
	if (rename(f->tmp, f->path) < 0)
		return vmm_err(-errno, "snapshot: renaming the %s to %s failed: %s", what, f->path, strerror(errno));
	free(f->tmp);
	f->tmp = NULL;
	if (sync) {
		char *dir = strdup(f->path);
		if (!dir)
			return vmm_err(-ENOMEM, "snapshot: out of memory");
		char *slash = strrchr(dir, '/');
		if (slash)
			slash[slash == dir] = 0; /* "/x" -> "/", "a/b" -> "a" */
		int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		int r = dfd < 0 || fsync(dfd) < 0 ? -errno : 0;
		if (dfd >= 0)
			close(dfd);
		free(dir);
		if (r)
			return vmm_err(r, "snapshot: syncing the directory of %s failed: %s", f->path, strerror(-r));
	}
	return 0;
}

static void close_out(struct out_file *f)
{
	if (f->path && f->fd >= 0)
		close(f->fd);
	if (f->tmp) {
		unlink(f->tmp);
		free(f->tmp);
	}
	f->tmp = NULL;
	f->fd = -1;
}

static int write_state(int fd, const uint8_t *buf, size_t len, bool sync)
{
	if (ftruncate(fd, 0) < 0)
		return vmm_err(-errno, "snapshot: truncating the state file failed: %s", strerror(errno));
	size_t done = 0;
	while (done < len) {
		ssize_t w = pwrite(fd, buf + done, len - done, (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return vmm_err(w < 0 ? -errno : -EIO, "snapshot: writing the state file failed: %s",
				       w < 0 ? strerror(errno) : "short write");
		done += (size_t)w;
	}
	if (sync && fdatasync(fd) < 0)
		return vmm_err(-errno, "snapshot: fdatasync of the state file failed: %s", strerror(errno));
	return 0;
}

/* Checks save options (shared by vmm_snapshot_save and vmm_snapshot_write). */
static int check_save_opts(const vmm_snapshot_save_opts *o, const char *fn)
{
	if (o->flags & ~(uint32_t)SAVE_FLAGS)
		return vmm_err(-EINVAL, "%s: unknown flags %#x", fn, o->flags & ~(uint32_t)SAVE_FLAGS);
	bool in_place = o->flags & VMM_SNAPSHOT_SAVE_MEM_IN_PLACE;
	if (!o->state_path && o->state_fd < 0)
		return vmm_err(-EINVAL, "%s: no state file (state_path or state_fd)", fn);
	if (in_place ? (o->mem_path || o->mem_fd >= 0) : (!o->mem_path && o->mem_fd < 0))
		return vmm_err(-EINVAL, "%s: %s", fn, in_place ? "a memory file was given, but memory stays in place"
							: "no memory file (mem_path or mem_fd)");
	return 0;
}

int snap_write_files(const vmm_snapshot_save_opts *o, const uint8_t *buf, size_t len,
		     int (*write_mem)(void *ctx, int fd), void *ctx)
{
	bool in_place = o->flags & VMM_SNAPSHOT_SAVE_MEM_IN_PLACE;
	bool sync = o->flags & VMM_SNAPSHOT_SAVE_SYNC;
	struct out_file state = { .fd = -1 }, memf = { .fd = -1 };
	int r = open_out(&state, o->state_path, o->state_fd, "state file");
	if (!r && !in_place)
		r = open_out(&memf, o->mem_path, o->mem_fd, "memory file");
	if (r)
		goto out;
	/* Memory first, then the state: a complete state file implies a complete memory
	 * file. */
	if (!in_place) {
		if ((r = write_mem(ctx, memf.fd)))
			goto out;
		if (sync && fdatasync(memf.fd) < 0) {
			r = vmm_err(-errno, "snapshot: fdatasync of the memory file failed: %s", strerror(errno));
			goto out;
		}
		if ((r = commit_out(&memf, sync, "memory file")))
			goto out;
	}
	if ((r = write_state(state.fd, buf, len, sync)))
		goto out;
	r = commit_out(&state, sync, "state file");
out:
	close_out(&memf);
	close_out(&state);
	return r;
}

struct save_mem_ctx {
	vmm_vm *vm;
	const struct snap_desc *d;
};

static int save_mem(void *ctx, int fd)
{
	struct save_mem_ctx *c = ctx;
	return snap_write_memory(c->vm, c->d, fd);
}

int vmm_snapshot_save(vmm_vm *vm, const vmm_snapshot_save_opts *opts)
{
	if (!vm || !opts)
		return vmm_err(-EINVAL, "vmm_snapshot_save: NULL argument");
	vmm_snapshot_save_opts o = VMM_SNAPSHOT_SAVE_OPTS_INIT;
	if (vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "vmm_snapshot_save: opts->size is too small");
	int r = check_save_opts(&o, "vmm_snapshot_save");
	if (r)
		return r;
	if (vm->irqchip == VMM_IRQCHIP_SPLIT)
		return vmm_err(-ENOTSUP, "snapshot: split-irqchip VMs cannot be saved yet (the user-space IOAPIC's "
				"state is not in the format)");
	bool in_place = o.flags & VMM_SNAPSHOT_SAVE_MEM_IN_PLACE;
	struct snap_desc *d = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	struct snap_claim claim;
	if ((r = snap_take_state(vm, in_place ? SNAP_MEM_IN_PLACE : SNAP_MEM_FILE, o.devices, o.nr_devices, &claim,
				 &buf, &len, &d)))
		return r;
	/* The memory is written while the vCPUs are still held (they must not write it
	 * meanwhile). */
	struct save_mem_ctx mc = { .vm = vm, .d = d };
	r = snap_write_files(&o, buf, len, save_mem, &mc);
	snap_release_vcpus(&claim);
	snap_desc_free(d);
	free(buf);
	return r;
}

/* ---- restore ---- */

/* Reads a whole state file (at most the format's size limit, plus one byte to notice a
 * larger file) from offset 0. */
static int read_state(int fd, uint8_t **out, size_t *len)
{
	size_t cap = 65536, n = 0;
	uint8_t *b = malloc(cap);
	if (!b)
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	for (;;) {
		if (n == cap) {
			if (cap > VMM_SNAPSHOT_MAX_STATE_SIZE) {
				free(b);
				return vmm_err(-EINVAL, "snapshot: the state file is over the %u-byte limit",
					       VMM_SNAPSHOT_MAX_STATE_SIZE);
			}
			cap *= 2;
			uint8_t *nb = realloc(b, cap);
			if (!nb) {
				free(b);
				return vmm_err(-ENOMEM, "snapshot: out of memory");
			}
			b = nb;
		}
		ssize_t got = pread(fd, b + n, cap - n, (off_t)n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int e = errno;
			free(b);
			return vmm_err(-e, "snapshot: reading the state file failed: %s", strerror(e));
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	*out = b;
	*len = n;
	return 0;
}

/* Opens (or borrows) the memory file and checks that it belongs to the state. */
static int open_mem(const struct snap_desc *d, const vmm_snapshot_restore_opts *o, int *fd, bool *ours)
{
	bool rw = o->mem_mode == VMM_SNAPSHOT_MEM_SHARED;
	*ours = o->mem_path != NULL;
	if (o->mem_path) {
		*fd = open(o->mem_path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
		if (*fd < 0)
			return vmm_err(-errno, "snapshot: cannot open the memory file %s: %s", o->mem_path, strerror(errno));
	} else if (o->mem_fd >= 0) {
		*fd = o->mem_fd;
	} else {
		return vmm_err(-EINVAL, "snapshot: the state refers to a memory file: give mem_path or mem_fd");
	}
	struct stat st;
	if (fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode))
		return vmm_err(-EINVAL, "snapshot: the memory file is not a regular file");
	if ((uint64_t)st.st_size < d->mem_file_size)
		return vmm_err(-EINVAL, "snapshot: the memory file is %llu bytes, the state needs %llu (truncated?)",
			       (unsigned long long)st.st_size, (unsigned long long)d->mem_file_size);
	uint8_t page[sizeof(struct snap_mem_header)];
	ssize_t got;
	do
		got = pread(*fd, page, sizeof page, 0);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return vmm_err(-errno, "snapshot: reading the memory file failed: %s", strerror(errno));
	return snap_check_mem_header(d, page, (size_t)got);
}

static int check_restore_opts(const vmm_snapshot_restore_opts *o)
{
	if (o->flags & ~(uint32_t)RESTORE_FLAGS)
		return vmm_err(-EINVAL, "vmm_snapshot_restore: unknown flags %#x", o->flags & ~(uint32_t)RESTORE_FLAGS);
	if ((unsigned)o->mem_mode > VMM_SNAPSHOT_MEM_SHARED)
		return vmm_err(-EINVAL, "vmm_snapshot_restore: unknown memory mode %d", (int)o->mem_mode);
	if (!o->state_buf && !o->state_path && o->state_fd < 0)
		return vmm_err(-EINVAL, "vmm_snapshot_restore: no state (state_buf, state_path or state_fd)");
	if (o->nr_region_fds && !o->region_fds)
		return vmm_err(-EINVAL, "vmm_snapshot_restore: nr_region_fds without region_fds");
	return 0;
}

/* Reads and validates the state, then finds the memory it refers to (checked before
 * anything is created). On success the caller owns *d and, if *mem_ours, src->file_fd. */
static int load_sources(const vmm_snapshot_restore_opts *o, struct snap_desc **d, struct snap_mem_src *src,
			bool *mem_ours)
{
	*d = NULL;
	*src = (struct snap_mem_src){ .file_fd = -1 };
	*mem_ours = false;
	uint8_t *own = NULL;
	const uint8_t *buf = o->state_buf;
	size_t len = o->state_len;
	int r;
	if (!buf) {
		int fd = o->state_fd;
		if (o->state_path && (fd = open(o->state_path, O_RDONLY | O_CLOEXEC)) < 0)
			return vmm_err(-errno, "snapshot: cannot open the state file %s: %s", o->state_path, strerror(errno));
		r = read_state(fd, &own, &len);
		if (o->state_path)
			close(fd);
		if (r)
			return r;
		buf = own;
	}
	r = snap_parse(buf, len, d);
	free(own);
	if (r)
		return r;
	if ((*d)->mem_source == SNAP_MEM_FILE) {
		if (o->nr_region_fds)
			r = vmm_err(-EINVAL, "snapshot: the state has a memory file; region_fds are for in-place memory");
		else
			r = open_mem(*d, o, &src->file_fd, mem_ours);
	} else if (o->mem_path || o->mem_fd >= 0 || o->nr_region_fds != (*d)->nr_regions) {
		r = vmm_err(-EINVAL, "snapshot: memory stayed in place: give the %u region fds (region_fds) and no memory "
				"file (got %zu fds%s)", (*d)->nr_regions, o->nr_region_fds,
			    o->mem_path || o->mem_fd >= 0 ? " and a memory file" : "");
	} else {
		src->region_fds = o->region_fds;
		src->nr_region_fds = o->nr_region_fds;
	}
	if (!r)
		r = snap_prepare(*d);
	if (r) {
		if (*mem_ours && src->file_fd >= 0)
			close(src->file_fd);
		src->file_fd = -1;
		*mem_ours = false;
		snap_desc_free(*d);
		*d = NULL;
	}
	return r;
}

int vmm_snapshot_restore(vmm_vm **out, const vmm_snapshot_restore_opts *opts)
{
	if (!out || !opts)
		return vmm_err(-EINVAL, "vmm_snapshot_restore: NULL argument");
	*out = NULL;
	vmm_snapshot_restore_opts o = VMM_SNAPSHOT_RESTORE_OPTS_INIT;
	if (vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "vmm_snapshot_restore: opts->size is too small");
	int r = check_restore_opts(&o);
	if (r)
		return r;
	struct snap_desc *d;
	struct snap_mem_src src;
	bool mem_ours;
	if ((r = load_sources(&o, &d, &src, &mem_ours)))
		return r;
	vmm_vm *vm = NULL;
	if ((r = snap_new_vm(d, o.vm_opts, &vm)))
		goto out;
	if ((r = snap_restore_memory(vm, d, &src, (int)o.mem_mode)))
		goto out;
	if ((r = snap_apply(vm, d, o.flags)))
		goto out;
	*out = vm;
	vm = NULL;
out:
	vmm_vm_destroy(vm);
	if (mem_ours && src.file_fd >= 0)
		close(src.file_fd);
	snap_desc_free(d);
	return r;
}

int vmm_snapshot_open(vmm_snapshot **out, const vmm_snapshot_restore_opts *opts)
{
	if (!out || !opts)
		return vmm_err(-EINVAL, "vmm_snapshot_open: NULL argument");
	*out = NULL;
	vmm_snapshot_restore_opts o = VMM_SNAPSHOT_RESTORE_OPTS_INIT;
	if (vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "vmm_snapshot_open: opts->size is too small");
	o.mem_mode = VMM_SNAPSHOT_MEM_LAZY; /* ignored: memory is mapped read-only */
	int r = check_restore_opts(&o);
	if (r)
		return r;
	struct snap_desc *d;
	struct snap_mem_src src;
	bool mem_ours;
	if ((r = load_sources(&o, &d, &src, &mem_ours)))
		return r;
	/* snap_from_sources takes d and duplicates the descriptors it keeps. */
	r = snap_from_sources(d, &src, false, out);
	if (mem_ours && src.file_fd >= 0)
		close(src.file_fd);
	return r;
}

/* ---- writing an in-memory snapshot ---- */

struct write_ctx {
	const struct vmm_snapshot *s;
	const struct snap_desc *d; /* with memory-file offsets */
};

static int write_mem(void *ctx, int fd)
{
	struct write_ctx *c = ctx;
	const struct vmm_snapshot *s = c->s;
	struct snap_mem_view *views = calloc(s->d->nr_regions ? s->d->nr_regions : 1, sizeof *views);
	if (!views)
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	for (uint32_t i = 0; i < s->d->nr_regions; i++)
		views[i] = (struct snap_mem_view){ .host = s->ro[i], .fd = snap_region_fd(s, i),
						   .fd_off = s->d->regions[i].offset };
	int r = snap_write_mem_views(c->d, views, fd);
	free(views);
	return r;
}

int vmm_snapshot_write(const vmm_snapshot *snap, const vmm_snapshot_save_opts *opts)
{
	if (!snap || !opts)
		return vmm_err(-EINVAL, "vmm_snapshot_write: NULL argument");
	vmm_snapshot_save_opts o = VMM_SNAPSHOT_SAVE_OPTS_INIT;
	if (vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "vmm_snapshot_write: opts->size is too small");
	if (o.flags & VMM_SNAPSHOT_SAVE_MEM_IN_PLACE)
		return vmm_err(-EINVAL, "vmm_snapshot_write: an in-memory snapshot is written with a memory file "
				"(VMM_SNAPSHOT_SAVE_MEM_IN_PLACE is for vmm_snapshot_save)");
	int r = check_save_opts(&o, "vmm_snapshot_write");
	if (r)
		return r;
	/* The description as a memory file lays it out: a shallow copy with its own
	 * region array (an opened in-place snapshot has other offsets). The snapshot's
	 * identity stays, so the files pair with each other and with VMs bound to it. */
	const struct snap_desc *sd = snap->d;
	struct snap_desc d = *sd;
	d.regions = calloc(sd->nr_regions ? sd->nr_regions : 1, sizeof *d.regions);
	if (!d.regions)
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	uint64_t off = SNAP_MEM_HEADER_SIZE;
	for (uint32_t i = 0; i < sd->nr_regions; i++) {
		d.regions[i] = sd->regions[i];
		d.regions[i].offset = off;
		off += sd->regions[i].len; /* bounded: the regions fit below 2^52 */
	}
	d.mem_source = SNAP_MEM_FILE;
	d.mem_file_size = off;
	uint8_t *buf = NULL;
	size_t len = 0;
	if (!(r = snap_encode(&d, &buf, &len))) {
		struct write_ctx c = { .s = snap, .d = &d };
		r = snap_write_files(&o, buf, len, write_mem, &c);
	}
	free(buf);
	free(d.regions);
	return r;
}
