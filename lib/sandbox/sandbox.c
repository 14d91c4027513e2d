/* Function sandboxes: creation, calls, resets, accessors (include/libvmm/sandbox.h). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox_internal.h"

#define SBX_DEFAULT_MEM (16ull << 20)
#define SBX_DEFAULT_IO (1ull << 20)
#define SBX_MAX_MEM (4ull << 30)
#define SBX_MAX_ELF (256ull << 20)

static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

static int read_file(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vmm_err(-errno, "sandbox: cannot open %s", path);
	struct stat st;
	int r = 0;
	if (fstat(fd, &st) < 0) {
		r = vmm_err(-errno, "sandbox: cannot stat %s", path);
	} else if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > SBX_MAX_ELF) {
		r = vmm_err(-EINVAL, "sandbox: %s is not a regular file of 1 byte to 256 MiB", path);
	} else if (!(*out = malloc((size_t)st.st_size))) {
		r = vmm_err(-ENOMEM, "sandbox: out of memory");
	} else {
		size_t got = 0;
		while (got < (size_t)st.st_size) {
			ssize_t n = read(fd, *out + got, (size_t)st.st_size - got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				r = vmm_err(n < 0 ? -errno : -EIO, "sandbox: cannot read %s", path);
				free(*out);
				*out = NULL;
				break;
			}
			got += (size_t)n;
		}
		*len = got;
	}
	close(fd);
	return r;
}

static int copy_funcs(vmm_sandbox *sb, const vmm_sandbox_opts *o)
{
	if (o->nr_host_funcs && !o->host_funcs)
		return vmm_err(-EINVAL, "sandbox: nr_host_funcs without host_funcs");
	if (o->nr_host_funcs > 4096)
		return vmm_err(-EINVAL, "sandbox: too many host functions (%zu)", o->nr_host_funcs);
	sb->funcs = calloc(o->nr_host_funcs ? o->nr_host_funcs : 1, sizeof *sb->funcs);
	if (!sb->funcs)
		return vmm_err(-ENOMEM, "sandbox: out of memory");
	for (size_t i = 0; i < o->nr_host_funcs; i++) {
		const vmm_sandbox_host_func *h = &o->host_funcs[i];
		struct sbx_host_func *f = &sb->funcs[i];
		if (!h->fn || h->id >= VMM_GUEST_HC_BUILTIN)
			return vmm_err(-EINVAL, "sandbox: host function %zu: NULL fn or id %#x reserved", i, h->id);
		if (h->name && (!h->name[0] || strlen(h->name) >= sizeof f->name))
			return vmm_err(-EINVAL, "sandbox: host function %zu: name empty or longer than %zu bytes",
				       i, sizeof f->name - 1);
		for (size_t k = 0; k < i; k++)
			if (sb->funcs[k].id == h->id || (h->name && !strcmp(sb->funcs[k].name, h->name)))
				return vmm_err(-EINVAL, "sandbox: host function %zu: id %u or name used twice", i,
					       h->id);
		f->id = h->id;
		if (h->name)
			strcpy(f->name, h->name);
		f->fn = h->fn;
		f->ctx = h->ctx;
	}
	sb->nr_funcs = o->nr_host_funcs;
	return 0;
}

static int configure(vmm_sandbox *sb, const vmm_sandbox_opts *o)
{
	if (o->flags & ~(uint32_t)(VMM_SANDBOX_NO_RESET | VMM_SANDBOX_RING0))
		return vmm_err(-EINVAL, "sandbox: unknown flags %#x", o->flags);
	uint64_t mem = o->mem_size ? o->mem_size : SBX_DEFAULT_MEM;
	uint64_t io = o->io_size ? o->io_size : SBX_DEFAULT_IO;
	if (mem > SBX_MAX_MEM || io > SBX_MAX_MEM)
		return vmm_err(-EINVAL, "sandbox: mem_size or io_size above 4 GiB");
	mem = round_up(mem, SBX_SMALL_PAGES_END);
	io = round_up(io, VMM_PAGE_SIZE);
	if (io > mem - VMM_GUEST_LOAD_ADDR - VMM_PAGE_SIZE)
		return vmm_err(-EINVAL, "sandbox: io_size %#llx leaves no room for the program in %#llx bytes",
			       (unsigned long long)io, (unsigned long long)mem);
	sb->flags = o->flags;
	sb->mem_size = mem;
	sb->io_size = io;
	sb->io_base = mem - io;
	sb->deadline_ns = o->deadline_ns;
	sb->output = o->output;
	sb->output_ctx = o->output_ctx;
	if (o->elf) {
		if (!o->elf_size || o->elf_size > SBX_MAX_ELF)
			return vmm_err(-EINVAL, "sandbox: elf_size must be 1 byte to 256 MiB");
		if (!(sb->elf = malloc(o->elf_size)))
			return vmm_err(-ENOMEM, "sandbox: out of memory");
		memcpy(sb->elf, o->elf, o->elf_size);
		sb->elf_size = o->elf_size;
	} else if (o->elf_path) {
		int r = read_file(o->elf_path, &sb->elf, &sb->elf_size);
		if (r)
			return r;
	} else {
		return vmm_err(-EINVAL, "sandbox: no program (elf or elf_path)");
	}
	return copy_funcs(sb, o);
}

/* Runs the guest's init up to its first DONE, then takes the snapshot. */
static int init_guest(vmm_sandbox *sb, uint64_t deadline_ns)
{
	int r = sbx_map_page(sb);
	if (r)
		return r;
	sb->page->abi_version = VMM_GUEST_ABI_VERSION;
	sb->page->heap_start = sb->heap_start;
	sb->page->heap_end = sb->io_base;
	if ((r = sbx_run(sb, deadline_ns))) {
		char why[256]; /* vmm_err writes the buffer vmm_last_error returns */
		snprintf(why, sizeof why, "%s", vmm_last_error());
		return vmm_err(r, "sandbox: guest init failed: %s", why);
	}
	int32_t status = sb->page->init_status;
	if (status)
		return vmm_err(-ECANCELED, "sandbox: the guest's init function returned %d", (int)status);
	sbx_state_record(sb);
	r = vmm_snapshot_take(sb->vm, NULL, &sb->snap);
	if (r)
		return r;
	sb->dirty = false;
	sb->clean = sb->can_mem_only; /* the vCPU is the snapshot's */
	return 0;
}

int vmm_sandbox_create(vmm_sandbox **out, const vmm_sandbox_opts *opts)
{
	if (!out || !opts)
		return vmm_err(-EINVAL, "vmm_sandbox_create: NULL argument");
	*out = NULL;
	vmm_sandbox_opts o = VMM_SANDBOX_OPTS_INIT;
	if (vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "vmm_sandbox_create: opts->size is too small");
	vmm_sandbox *sb = calloc(1, sizeof *sb);
	if (!sb)
		return vmm_err(-ENOMEM, "sandbox: out of memory");
	sb->stats.size = sizeof sb->stats;
	int r = configure(sb, &o);
	if (!r)
		r = sbx_setup_vm(sb, o.vm_opts);
	if (!r) {
		sb->wd.vcpu = sb->vcpu;
		sbx_state_init(sb);
		r = sbx_load(sb);
	}
	if (!r)
		r = init_guest(sb, o.init_deadline_ns);
	if (r) {
		vmm_sandbox_destroy(sb);
		return r;
	}
	*out = sb;
	return 0;
}

void vmm_sandbox_destroy(vmm_sandbox *sb)
{
	if (!sb)
		return;
	sbx_watchdog_stop(&sb->wd);
	vmm_vm_destroy(sb->vm);
	vmm_snapshot_free(sb->snap);
	for (size_t i = 0; i < sb->nr_exports; i++)
		free(sb->exports[i].name);
	free(sb->exports);
	free(sb->funcs);
	free(sb->elf);
	free(sb);
}

int vmm_sandbox_symbol(const vmm_sandbox *sb, const char *name, uint64_t *value)
{
	if (!sb || !name || !value)
		return vmm_err(-EINVAL, "vmm_sandbox_symbol: NULL argument");
	return vmm_elf_symbol(sb->elf, sb->elf_size, name, value);
}

int vmm_sandbox_read(vmm_sandbox *sb, uint64_t addr, void *buf, size_t len)
{
	if (!sb || (len && !buf))
		return vmm_err(-EINVAL, "vmm_sandbox_read: NULL argument");
	int r = sbx_check_range(sb, addr, len);
	return r ? r : len ? vmm_mem_read(vmm_vm_mem(sb->vm), addr, buf, len) : 0;
}

int vmm_sandbox_write(vmm_sandbox *sb, uint64_t addr, const void *buf, size_t len)
{
	if (!sb || (len && !buf))
		return vmm_err(-EINVAL, "vmm_sandbox_write: NULL argument");
	int r = sbx_check_range(sb, addr, len);
	if (r)
		return r;
	if (len)
		sb->dirty = true;
	return len ? vmm_mem_write(vmm_vm_mem(sb->vm), addr, buf, len) : 0;
}

int vmm_sandbox_ptr(vmm_sandbox *sb, uint64_t addr, size_t len, bool writable, void **host)
{
	if (!sb || !host)
		return vmm_err(-EINVAL, "vmm_sandbox_ptr: NULL argument");
	int r = sbx_check_range(sb, addr, len);
	if (r)
		return r;
	if (writable)
		sb->dirty = true;
	return vmm_mem_translate(vmm_vm_mem(sb->vm), addr, len, writable, host);
}

vmm_vm *vmm_sandbox_vm(vmm_sandbox *sb) { return sb ? sb->vm : NULL; }
vmm_vcpu *vmm_sandbox_vcpu(vmm_sandbox *sb) { return sb ? sb->vcpu : NULL; }

int vmm_sandbox_get_stats(const vmm_sandbox *sb, vmm_sandbox_stats *stats)
{
	if (!sb || !stats || stats->size < sizeof stats->size)
		return vmm_err(-EINVAL, "vmm_sandbox_get_stats: bad argument");
	uint32_t size = stats->size < sizeof *stats ? stats->size : (uint32_t)sizeof *stats;
	vmm_sandbox_stats s = sb->stats;
	s.size = size;
	memcpy(stats, &s, size);
	return 0;
}
