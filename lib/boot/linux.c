/* vmm_linux_load: picks the boot path for a kernel image, plans where every piece goes,
 * then writes them and sets up the boot vCPU.
 *
 * Planning comes first and is complete: the image is parsed, the command line checked,
 * and kernel, initrd and setup_data are given non-overlapping places in writable RAM
 * (vmm_boot_claim / vmm_boot_alloc) before the first byte of guest memory is written.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot_internal.h"

#define KERNEL_FILE_MAX (1ull << 30)
#define INITRD_MAX 0xffffffffull /* ramdisk_size is 32 bits */

/* Everything one load works with; on the heap (the plan and the ELF table are a few KiB). */
struct load {
	vmm_linux_opts o;
	vmm_mem *mem;
	const uint8_t *img;
	size_t size;
	vmm_linux_protocol protocol;
	struct vmm_bzimage bz;
	struct vmm_elf_image elf;
	uint32_t pvh_entry;
	bool has_pvh;
	int initrd_fd;
	uint64_t initrd_size;
	struct vmm_boot_plan plan;
	struct vmm_boot_pieces pc;
	vmm_e820_entry e820[VMM_E820_MAX_ENTRIES];
	vmm_linux_info info;
};

static const char *proto_name(vmm_linux_protocol p)
{
	switch (p) {
	case VMM_LINUX_BZIMAGE: return "bzImage";
	case VMM_LINUX_PVH: return "PVH";
	case VMM_LINUX_ELF64: return "ELF 64-bit entry";
	default: return "automatic";
	}
}

static bool is_elf(const uint8_t *img, size_t size)
{
	return size >= SELFMAG && memcmp(img, ELFMAG, SELFMAG) == 0;
}

/* ---- which kernel, which path -------------------------------------------------------------- */

/* Parses the image and settles the protocol (`want` may be AUTO). */
static int identify(const uint8_t *img, size_t size, vmm_linux_protocol want, struct load *l)
{
	int r;
	if (!img)
		return vmm_err(-EINVAL, "kernel image: NULL buffer");
	if (is_elf(img, size)) {
		if (want == VMM_LINUX_BZIMAGE)
			return vmm_err(-ENOEXEC, "kernel image: bzImage requested but this is an ELF "
				       "vmlinux");
		if ((r = vmm_elf_parse(img, size, &l->elf)))
			return r;
		r = vmm_pvh_find_entry(img, size, &l->elf, &l->pvh_entry);
		if (r && r != -ENOENT)
			return r;
		l->has_pvh = r == 0;
		if (want == VMM_LINUX_PVH && !l->has_pvh)
			return vmm_err(-ENOEXEC, "PVH: the ELF kernel has no XEN_ELFNOTE_PHYS32_ENTRY note "
				       "(built without CONFIG_PVH?)");
		l->protocol = want != VMM_LINUX_AUTO ? want : l->has_pvh ? VMM_LINUX_PVH : VMM_LINUX_ELF64;
		if (l->protocol == VMM_LINUX_ELF64) {
			uint64_t e = l->elf.ehdr.e_entry;
			bool inside = false;
			for (unsigned i = 0; i < l->elf.nseg; i++)
				inside |= e >= l->elf.seg[i].paddr && e - l->elf.seg[i].paddr < l->elf.seg[i].filesz;
			if (!inside)
				return vmm_err(-EINVAL, "ELF kernel: entry point %#" PRIx64 " is not inside the "
					       "file bytes of any PT_LOAD segment (a virtual address?)", e);
		}
		return 0;
	}
	bool bz = vmm_bzimage_detect(img, size);
	if (want == VMM_LINUX_PVH || want == VMM_LINUX_ELF64)
		return vmm_err(-ENOEXEC, "kernel image: %s requested but this is %s", proto_name(want),
			       bz ? "a bzImage (PVH and the ELF entry need the uncompressed vmlinux)"
				  : "not an ELF vmlinux");
	if (!bz && want == VMM_LINUX_AUTO) {
		/* Neither format: say what the bzImage check saw, for a damaged bzImage. */
		vmm_bzimage_parse(img, size, &l->bz);
		vmm_err_append(" (and it is not an ELF vmlinux either)");
		return -ENOEXEC;
	}
	if ((r = vmm_bzimage_parse(img, size, &l->bz)))
		return r;
	l->protocol = VMM_LINUX_BZIMAGE;
	return 0;
}

int vmm_linux_probe(const void *image, size_t size, vmm_linux_kernel *out)
{
	if (!image || !out)
		return vmm_err(-EINVAL, "vmm_linux_probe: NULL argument");
	struct load *l = calloc(1, sizeof *l);
	if (!l)
		return vmm_err(-ENOMEM, "vmm_linux_probe: out of memory");
	int r = identify(image, size, VMM_LINUX_AUTO, l);
	if (r == 0) {
		memset(out, 0, sizeof *out);
		out->protocol = l->protocol;
		if (l->protocol == VMM_LINUX_BZIMAGE) {
			out->boot_version = l->bz.hdr.version;
			out->xloadflags = l->bz.hdr.xloadflags;
			out->relocatable = l->bz.relocatable;
			out->cmdline_max = l->bz.cmdline_max;
			out->pref_address = l->bz.pref_address;
			out->alignment = l->bz.alignment;
			out->init_size = l->bz.init_size;
			out->initrd_max = l->bz.initrd_end_max - 1;
			out->entry = BZ_ENTRY64_OFFSET;
		} else {
			uint64_t lo = UINT64_MAX, hi = 0;
			for (unsigned i = 0; i < l->elf.nseg; i++) {
				const struct vmm_elf_segment *s = &l->elf.seg[i];
				lo = s->paddr < lo ? s->paddr : lo;
				hi = s->paddr + s->memsz > hi ? s->paddr + s->memsz : hi;
			}
			out->has_pvh = l->has_pvh;
			out->cmdline_max = LINUX_COMMAND_LINE_SIZE - 1;
			out->pref_address = lo;
			out->init_size = hi - lo;
			out->initrd_max = LINUX_INITRD_ADDR_MAX;
			out->entry = l->has_pvh ? l->pvh_entry : l->elf.ehdr.e_entry;
		}
	}
	free(l);
	return r;
}

/* ---- options and files ------------------------------------------------------------------------ */

static int check_opts(const vmm_linux_opts *o)
{
	if (o->protocol < VMM_LINUX_AUTO || o->protocol > VMM_LINUX_ELF64)
		return vmm_err(-EINVAL, "Linux boot: unknown protocol %d", (int)o->protocol);
	if (!o->kernel_path == !o->kernel)
		return vmm_err(-EINVAL, "Linux boot: give the kernel as exactly one of kernel_path and "
			       "kernel (buffer)");
	if (o->initrd_path && o->initrd)
		return vmm_err(-EINVAL, "Linux boot: give the initrd as at most one of initrd_path and "
			       "initrd (buffer)");
	if (o->initrd_size && !o->initrd)
		return vmm_err(-EINVAL, "Linux boot: initrd_size without an initrd buffer");
	if (o->n_e820_extra > VMM_LINUX_MAX_E820_EXTRA || (o->n_e820_extra && !o->e820_extra))
		return vmm_err(-EINVAL, "Linux boot: %zu e820 ranges (at most %u, and not NULL)",
			       o->n_e820_extra, VMM_LINUX_MAX_E820_EXTRA);
	if (o->n_setup_data > VMM_LINUX_MAX_SETUP_DATA || (o->n_setup_data && !o->setup_data))
		return vmm_err(-EINVAL, "Linux boot: %zu setup_data blobs (at most %u, and not NULL)",
			       o->n_setup_data, VMM_LINUX_MAX_SETUP_DATA);
	for (size_t i = 0; i < o->n_setup_data; i++)
		if (!o->setup_data[i].data || o->setup_data[i].len == 0)
			return vmm_err(-EINVAL, "Linux boot: setup_data blob %zu is empty or NULL", i);
	return 0;
}

/* Opens a regular file and reports its size. */
static int open_sized(const char *path, const char *what, uint64_t max, int *fd, uint64_t *size)
{
	struct stat st;
	if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return vmm_err(-errno, "%s: cannot open %s: %s", what, path, strerror(errno));
	int r = 0;
	if (fstat(*fd, &st) < 0)
		r = vmm_err(-errno, "%s: cannot stat %s: %s", what, path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		r = vmm_err(-EINVAL, "%s: %s is not a regular file", what, path);
	else if ((uint64_t)st.st_size > max)
		r = vmm_err(-EFBIG, "%s: %s has %lld bytes, more than the %" PRIu64 " allowed", what, path,
			    (long long)st.st_size, max);
	if (r) {
		close(*fd);
		*fd = -1;
		return r;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

/* Reads exactly n bytes from the start of the file into dst. */
static int read_exact(int fd, void *dst, uint64_t n, const char *what, const char *path)
{
	uint8_t *p = dst;
	uint64_t done = 0;
	while (done < n) {
		size_t chunk = n - done > (1u << 30) ? (1u << 30) : (size_t)(n - done);
		ssize_t got = pread(fd, p + done, chunk, (off_t)done);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return vmm_err(-errno, "%s: cannot read %s: %s", what, path, strerror(errno));
		if (got == 0)
			return vmm_err(-EIO, "%s: %s shrank while it was read (%" PRIu64 " of %" PRIu64
				       " bytes)", what, path, done, n);
		done += (uint64_t)got;
	}
	return 0;
}

static int read_kernel(const char *path, uint8_t **buf, size_t *size)
{
	int fd;
	uint64_t n;
	int r = open_sized(path, "kernel", KERNEL_FILE_MAX, &fd, &n);
	if (r)
		return r;
	*buf = malloc(n ? (size_t)n : 1);
	if (!*buf)
		r = vmm_err(-ENOMEM, "kernel: out of memory for %s (%" PRIu64 " bytes)", path, n);
	else
		r = read_exact(fd, *buf, n, "kernel", path);
	close(fd);
	if (r) {
		free(*buf);
		*buf = NULL;
		return r;
	}
	*size = (size_t)n;
	return 0;
}

/* ---- planning ---------------------------------------------------------------------------- */

static int plan_kernel(struct load *l)
{
	struct vmm_boot_plan *p = &l->plan;
	if (l->protocol != VMM_LINUX_BZIMAGE) {
		uint64_t lo = UINT64_MAX, hi = 0;
		for (unsigned i = 0; i < l->elf.nseg; i++) {
			const struct vmm_elf_segment *s = &l->elf.seg[i];
			if (s->paddr < BOOT_HIGH_MEM || s->paddr + s->memsz > BOOT_4G)
				return vmm_err(-ENOEXEC, "ELF kernel: program header %u at [%#" PRIx64 ", %#"
					       PRIx64 ") is not between 1 MiB and 4 GiB", s->phdr,
					       s->paddr, s->paddr + s->memsz);
			int r = vmm_boot_claim(p, s->paddr, s->memsz, BOOT_CLAIM_RAM, "kernel segment");
			if (r)
				return r;
			lo = s->paddr < lo ? s->paddr : lo;
			hi = s->paddr + s->memsz > hi ? s->paddr + s->memsz : hi;
		}
		l->info.kernel_addr = lo;
		l->info.kernel_end = hi;
		l->pc.entry = l->protocol == VMM_LINUX_PVH ? l->pvh_entry : l->elf.ehdr.e_entry;
		return 0;
	}

	const struct vmm_bzimage *bz = &l->bz;
	uint64_t at = bz->pref_address;
	if (bz->relocatable) {
		/* A relocatable kernel never runs below pref_address: loaded lower, it moves
		 * itself up to it (boot.rst: runtime start = align_up(max(load, pref),
		 * kernel_alignment)). So its init_size must fit from pref_address on, and the
		 * lowest aligned place at or above it that has room is the load address. */
		uint64_t min = at > BOOT_HIGH_MEM ? at : BOOT_HIGH_MEM;
		int r = vmm_boot_alloc(p, bz->init_size, bz->alignment, min, BOOT_4G, false,
				       "bzImage kernel (init_size from pref_address on)", &at);
		if (r)
			return r;
	} else {
		if (at < BOOT_HIGH_MEM || at + bz->init_size > BOOT_4G)
			return vmm_err(-ENOEXEC, "bzImage: the kernel is not relocatable and wants [%#" PRIx64
				       ", %#" PRIx64 "), not between 1 MiB and 4 GiB", at,
				       at + bz->init_size);
		int r = vmm_boot_claim(p, at, bz->init_size, BOOT_CLAIM_RAM,
				       "bzImage kernel (not relocatable)");
		if (r)
			return r;
	}
	l->pc.load_addr = at;
	l->pc.entry = at + BZ_ENTRY64_OFFSET;
	l->info.kernel_addr = at;
	l->info.kernel_end = at + bz->init_size;
	return 0;
}

static int plan_initrd(struct load *l)
{
	const vmm_linux_opts *o = &l->o;
	if (o->initrd_path) {
		int r = open_sized(o->initrd_path, "initrd", INITRD_MAX, &l->initrd_fd, &l->initrd_size);
		if (r)
			return r;
	} else if (o->initrd) {
		if ((uint64_t)o->initrd_size > INITRD_MAX)
			return vmm_err(-EFBIG, "initrd: %zu bytes, more than the boot protocol's 4 GiB - 1",
				       o->initrd_size);
		l->initrd_size = o->initrd_size;
	}
	if (l->initrd_size == 0)
		return 0; /* an empty initrd is no initrd */
	uint64_t limit = l->protocol == VMM_LINUX_BZIMAGE ? l->bz.initrd_end_max : LINUX_INITRD_ADDR_MAX + 1;
	if (limit > BOOT_4G)
		limit = BOOT_4G;
	int r = vmm_boot_alloc(&l->plan, l->initrd_size, VMM_PAGE_SIZE, BOOT_HIGH_MEM, limit, true,
			       "initrd", &l->pc.initrd_addr);
	if (r)
		return r;
	l->pc.initrd_size = l->initrd_size;
	return 0;
}

/* setup_data nodes: 16-byte header + data, each 8-byte aligned, in one block. */
static uint64_t setup_data_bytes(const vmm_linux_opts *o)
{
	uint64_t total = 0;
	for (size_t i = 0; i < o->n_setup_data; i++)
		total += (sizeof(struct setup_data) + o->setup_data[i].len + 7) & ~7ull;
	return total; /* <= 16 * (16 + 2^32 + 7): no overflow */
}

static int plan_setup_data(struct load *l)
{
	if (l->o.n_setup_data == 0)
		return 0;
	if (l->protocol == VMM_LINUX_PVH)
		return vmm_err(-ENOTSUP, "PVH: hvm_start_info has no setup_data; boot the bzImage or "
			       "request VMM_LINUX_ELF64 to pass %zu setup_data blobs", l->o.n_setup_data);
	return vmm_boot_alloc(&l->plan, setup_data_bytes(&l->o), VMM_PAGE_SIZE, BOOT_HIGH_MEM, BOOT_4G,
			      true, "setup_data", &l->pc.setup_data);
}

static int plan(struct load *l)
{
	const vmm_linux_opts *o = &l->o;
	int r;
	size_t max = l->protocol == VMM_LINUX_BZIMAGE ? l->bz.cmdline_max : LINUX_COMMAND_LINE_SIZE - 1;
	l->pc.protocol = l->protocol;
	l->pc.cmdline = o->cmdline ? o->cmdline : "";
	if ((r = vmm_cmdline_check(l->pc.cmdline, max, &l->pc.cmdline_len)))
		return r;

	l->plan.mem = l->mem;
	r = vmm_boot_claim(&l->plan, VMM_LINUX_BOOT_AREA_START,
			   VMM_LINUX_BOOT_AREA_END - VMM_LINUX_BOOT_AREA_START, BOOT_CLAIM_RAM,
			   "Linux boot area");
	if (r)
		return r;
	for (size_t i = 0; i < o->n_e820_extra; i++)
		if ((r = vmm_boot_claim(&l->plan, o->e820_extra[i].addr, o->e820_extra[i].size,
					BOOT_CLAIM_SHARED, "e820 override range")))
			return r;
	if ((r = plan_kernel(l)) || (r = plan_initrd(l)) || (r = plan_setup_data(l)))
		return r;

	size_t n;
	r = vmm_e820_build(l->mem, o->e820_extra, o->n_e820_extra, l->e820, VMM_E820_MAX_ENTRIES, &n);
	if (r)
		return r;
	l->pc.e820 = l->e820;
	l->pc.ne820 = n;
	l->pc.rsdp = o->rsdp;
	return 0;
}

/* ---- writing ------------------------------------------------------------------------------ */

static int write_initrd(struct load *l)
{
	if (!l->pc.initrd_size)
		return 0;
	if (l->o.initrd)
		return vmm_mem_write(l->mem, l->pc.initrd_addr, l->o.initrd, l->pc.initrd_size);
	/* Straight from the file into guest RAM: no copy of a large initrd on the heap. */
	void *host;
	int r = vmm_mem_translate(l->mem, l->pc.initrd_addr, l->pc.initrd_size, true, &host);
	if (r)
		return vmm_err(r, "initrd: [%#" PRIx64 ", +%#" PRIx64 ") not writable", l->pc.initrd_addr,
			       l->pc.initrd_size);
	return read_exact(l->initrd_fd, host, l->pc.initrd_size, "initrd", l->o.initrd_path);
}

static int write_setup_data(struct load *l)
{
	if (!l->pc.setup_data)
		return 0;
	uint64_t total = setup_data_bytes(&l->o);
	uint8_t *block = calloc(1, (size_t)total);
	if (!block)
		return vmm_err(-ENOMEM, "setup_data: out of memory (%" PRIu64 " bytes)", total);
	uint64_t off = 0;
	for (size_t i = 0; i < l->o.n_setup_data; i++) {
		const vmm_linux_setup_data *d = &l->o.setup_data[i];
		uint64_t node = (sizeof(struct setup_data) + d->len + 7) & ~7ull;
		struct setup_data h = { .type = d->type, .len = d->len };
		h.next = i + 1 < l->o.n_setup_data ? l->pc.setup_data + off + node : 0;
		memcpy(block + off, &h, sizeof h);
		memcpy(block + off + sizeof h, d->data, d->len);
		off += node;
	}
	int r = vmm_mem_write(l->mem, l->pc.setup_data, block, (size_t)total);
	free(block);
	return r;
}

static int write_all(struct load *l)
{
	int r;
	/* The command line first: its slot is zeroed whole so no stale tail survives. */
	void *slot;
	if ((r = vmm_mem_translate(l->mem, BOOT_CMDLINE, VMM_CMDLINE_LIMIT + 1, true, &slot)))
		return vmm_err(r, "Linux boot: cannot write the command line");
	memset(slot, 0, VMM_CMDLINE_LIMIT + 1);
	memcpy(slot, l->pc.cmdline, l->pc.cmdline_len);
	if (l->protocol == VMM_LINUX_BZIMAGE)
		r = vmm_mem_write(l->mem, l->pc.load_addr, l->img + l->bz.setup_size, l->bz.kernel_size);
	else
		r = vmm_elf_load(l->mem, l->img, l->size, NULL);
	if (r)
		return r;
	if ((r = write_initrd(l)) || (r = write_setup_data(l)))
		return r;
	if (l->protocol == VMM_LINUX_PVH)
		return vmm_pvh_write_start_info(l->mem, &l->pc);
	struct boot_params *bp = malloc(sizeof *bp);
	if (!bp)
		return vmm_err(-ENOMEM, "Linux boot: out of memory");
	vmm_boot_params_fill(bp, l->img, l->protocol == VMM_LINUX_BZIMAGE ? &l->bz : NULL, &l->pc);
	l->info.boot_version = bp->hdr.version;
	r = vmm_mem_write(l->mem, BOOT_PARAMS, bp, sizeof *bp);
	free(bp);
	return r;
}

static int load(struct load *l)
{
	int r = identify(l->img, l->size, l->o.protocol, l);
	if (r || (r = plan(l)) || (r = write_all(l)))
		return r;
	vmm_linux_info *i = &l->info;
	i->protocol = l->protocol;
	i->entry = l->pc.entry;
	i->boot_params = BOOT_PARAMS;
	i->cmdline_addr = BOOT_CMDLINE;
	i->cmdline_len = (uint32_t)l->pc.cmdline_len;
	i->e820_entries = (uint32_t)l->pc.ne820;
	i->initrd_addr = l->pc.initrd_addr;
	i->initrd_size = l->pc.initrd_size;
	i->setup_data = l->pc.setup_data;
	i->system_area = l->protocol == VMM_LINUX_PVH ? 0 : BOOT_SYSTEM_AREA;
	return 0;
}

int vmm_linux_load(vmm_mem *mem, vmm_vcpu *bsp, const vmm_linux_opts *opts, vmm_linux_info *info)
{
	if (!mem || !opts)
		return vmm_err(-EINVAL, "vmm_linux_load: NULL argument");
	if (bsp && vmm_vm_mem(vmm_vcpu_vm(bsp)) != mem)
		return vmm_err(-EINVAL, "vmm_linux_load: the boot vCPU belongs to a VM whose memory map "
			       "is not `mem`");
	struct load *l = calloc(1, sizeof *l);
	if (!l)
		return vmm_err(-ENOMEM, "vmm_linux_load: out of memory");
	vmm_linux_opts def = VMM_LINUX_OPTS_INIT;
	l->o = def;
	int r = vmm_opts_copy(&l->o, sizeof l->o, opts) ? vmm_err(-EINVAL, "vmm_linux_load: opts->size "
								 "is too small") : 0;
	l->mem = mem;
	l->initrd_fd = -1;
	uint8_t *owned = NULL;
	if (!r)
		r = check_opts(&l->o);
	if (!r && l->o.kernel_path) {
		r = read_kernel(l->o.kernel_path, &owned, &l->size);
		l->img = owned;
	} else if (!r) {
		l->img = l->o.kernel;
		l->size = l->o.kernel_size;
	}
	if (!r && (r = load(l)) && l->o.kernel_path)
		vmm_err_append(" (kernel %s)", l->o.kernel_path);
	if (!r && bsp)
		r = vmm_linux_setup_vcpu(bsp, &l->info);
	if (!r && info)
		*info = l->info;
	if (l->initrd_fd >= 0)
		close(l->initrd_fd);
	free(owned);
	free(l);
	return r;
}

int vmm_linux_setup_vcpu(vmm_vcpu *bsp, const vmm_linux_info *info)
{
	if (!bsp || !info)
		return vmm_err(-EINVAL, "vmm_linux_setup_vcpu: NULL argument");
	switch (info->protocol) {
	case VMM_LINUX_BZIMAGE:
	case VMM_LINUX_ELF64:
		return vmm_boot_setup_vcpu64(bsp, info);
	case VMM_LINUX_PVH:
		return vmm_boot_setup_vcpu_pvh(bsp, info);
	default:
		return vmm_err(-EINVAL, "vmm_linux_setup_vcpu: unknown protocol %d", (int)info->protocol);
	}
}
