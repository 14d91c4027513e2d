/* Fuzz target: the ELF loader, symbol lookup and note lookup on arbitrary bytes.
 *
 * Guest memory is a small standalone map (the layout the seeds in corpus/elf/ are built
 * for, see gen_elf_seeds.py): A [0, 64K) and B [64K, 128K) adjacent, C [1M, 1M+64K),
 * R [2M, 2M+4K) read-only. Beyond "no crash, no sanitizer report" it checks what the
 * API promises: only the documented errors, a message on failure, and after a successful
 * load, guest memory holding exactly the segments' bytes and zeros.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvmm/libvmm.h>
#include "boot/elf_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static vmm_mem *fuzz_mem; /* built once: creating a map per input would dominate */

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_elf: broken promise: %s (last error: %s)\n", what,
			vmm_last_error());
		abort();
	}
}

static vmm_mem *get_mem(void)
{
	static const struct { uint64_t gpa, len; uint32_t flags; } map[] = {
		{ 0x0, 0x10000, 0 },
		{ 0x10000, 0x10000, 0 },
		{ 0x100000, 0x10000, 0 },
		{ 0x200000, 0x1000, VMM_MEM_READONLY },
	};
	if (fuzz_mem)
		return fuzz_mem;
	check(vmm_mem_create(&fuzz_mem) == 0, "vmm_mem_create");
	for (unsigned i = 0; i < sizeof map / sizeof map[0]; i++) {
		vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
		o.gpa = map[i].gpa;
		o.len = map[i].len;
		o.flags = map[i].flags;
		o.backing = VMM_MEM_ANON;
		check(vmm_mem_add_region(fuzz_mem, &o) == 0, "vmm_mem_add_region");
	}
	return fuzz_mem;
}

/* After a successful load, each segment's bytes are in guest memory, then zeros. */
static void check_loaded(vmm_mem *mem, const uint8_t *data, size_t size, const vmm_elf_info *info)
{
	static struct vmm_elf_image im;
	static uint8_t buf[0x20000];
	check(vmm_elf_parse(data, size, &im) == 0, "a loaded image parses");
	check(info->segments == im.nseg && im.nseg >= 1 && im.nseg <= VMM_ELF_MAX_SEGMENTS,
	      "segment count");
	check(info->low < info->high, "low < high");
	for (unsigned i = 0; i < im.nseg; i++) {
		const struct vmm_elf_segment *s = &im.seg[i];
		check(s->paddr >= info->low && s->paddr + s->memsz <= info->high, "segment in [low, high)");
		check(s->memsz <= sizeof buf, "segment larger than the whole map");
		check(vmm_mem_read(mem, s->paddr, buf, s->memsz) == 0, "segment readable");
		check(memcmp(buf, data + s->offset, s->filesz) == 0, "file bytes loaded");
		for (uint64_t k = s->filesz; k < s->memsz; k++)
			check(buf[k] == 0, "bss zeroed");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	vmm_mem *mem = get_mem();
	vmm_elf_info info;

	int r = vmm_elf_load(mem, data, size, &info);
	if (r == 0)
		check_loaded(mem, data, size, &info);
	else
		check((r == -EINVAL || r == -EFAULT || r == -ENOEXEC || r == -EROFS) &&
		      vmm_last_error()[0] != '\0', "documented error with a message");

	uint64_t value;
	r = vmm_elf_symbol(data, size, "_start", &value);
	check(r == 0 || r == -ENOENT || r == -EINVAL || r == -ENOEXEC, "symbol: documented error");

	const void *desc;
	size_t len;
	r = vmm_elf_find_note(data, size, "Xen", 18, &desc, &len);
	if (r == 0)
		check((const uint8_t *)desc >= data && len <= size &&
		      (size_t)((const uint8_t *)desc - data) <= size - len, "note inside the image");
	return 0;
}
