/* Fuzz target: PVH entry-note parsing and the ELF paths of vmm_linux_load (PVH, and the
 * 64-bit entry of a vmlinux without the note).
 *
 * Guest memory is a standalone map of RAM [0, 32 MiB) (the seeds in corpus/pvh/ are
 * built for it by gen_boot_seeds.py). Checks beyond "no crash": only documented errors,
 * with a message; a found entry lies in the file bytes of a segment; after a successful
 * load the entry, hvm_start_info (magic, version, memmap table = the e820 map, module
 * list) or boot_params (made-up header) are what the protocol wants.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvmm/libvmm.h>
#include "boot/boot_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM (32u << 20)

static vmm_mem *fuzz_mem;

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_pvh: broken promise: %s (last error: %s)\n", what, vmm_last_error());
		abort();
	}
}

static vmm_mem *get_mem(void)
{
	if (fuzz_mem)
		return fuzz_mem;
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.len = RAM;
	o.backing = VMM_MEM_ANON;
	check(vmm_mem_create(&fuzz_mem) == 0, "vmm_mem_create");
	check(vmm_mem_add_region(fuzz_mem, &o) == 0, "vmm_mem_add_region");
	return fuzz_mem;
}

static bool in_file_bytes(const struct vmm_elf_image *im, uint64_t a)
{
	for (unsigned i = 0; i < im->nseg; i++)
		if (a >= im->seg[i].paddr && a - im->seg[i].paddr < im->seg[i].filesz)
			return true;
	return false;
}

static void check_pvh(vmm_mem *mem, const vmm_linux_info *info, uint64_t initrd_size)
{
	static struct hvm_memmap_table_entry map[VMM_E820_MAX_ENTRIES];
	static vmm_e820_entry e820[VMM_E820_MAX_ENTRIES];
	struct hvm_start_info si;
	check(vmm_mem_read(mem, info->boot_params, &si, sizeof si) == 0, "start_info readable");
	check(si.magic == XEN_HVM_START_MAGIC_VALUE && si.version == 1, "start_info magic");
	check(si.cmdline_paddr == info->cmdline_addr, "cmdline_paddr");
	check(si.nr_modules == (initrd_size ? 1u : 0u), "nr_modules");
	check(si.memmap_entries == info->e820_entries && si.memmap_entries <= VMM_E820_MAX_ENTRIES,
	      "memmap_entries");
	size_t n;
	check(vmm_e820_build(mem, NULL, 0, e820, VMM_E820_MAX_ENTRIES, &n) == 0 && n == si.memmap_entries,
	      "memmap table size is the e820 map's");
	check(vmm_mem_read(mem, si.memmap_paddr, map, n * sizeof map[0]) == 0, "memmap readable");
	for (size_t i = 0; i < n; i++)
		check(map[i].addr == e820[i].addr && map[i].size == e820[i].size &&
		      map[i].type == e820[i].type && map[i].reserved == 0, "memmap entry");
	if (initrd_size) {
		struct hvm_modlist_entry mod;
		check(vmm_mem_read(mem, si.modlist_paddr, &mod, sizeof mod) == 0, "modlist readable");
		check(mod.paddr == info->initrd_addr && mod.size == initrd_size, "module 0 is the initrd");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	vmm_mem *mem = get_mem();
	static struct vmm_elf_image im;
	uint32_t entry = 0;
	int pr = vmm_elf_parse(data, size, &im);
	int nr = pr == 0 ? vmm_pvh_find_entry(data, size, &im, &entry) : -1;
	if (pr == 0) {
		check(nr == 0 || nr == -ENOENT || (nr == -EINVAL && vmm_last_error()[0]), "note: documented error");
		if (nr == 0)
			check(in_file_bytes(&im, entry), "PVH entry in a segment's file bytes");
	}

	vmm_linux_kernel k;
	int r = vmm_linux_probe(data, size, &k);
	check(r == 0 || ((r == -EINVAL || r == -ENOEXEC) && vmm_last_error()[0]), "probe: documented error");
	if (r == 0 && k.protocol == VMM_LINUX_PVH)
		check(nr == 0 && k.entry == entry && k.has_pvh, "probe agrees on PVH");

	static uint8_t initrd[1 << 16];
	uint64_t initrd_size = size ? (uint64_t)(data[size - 1] & 0xf) << 12 : 0;
	vmm_linux_opts o = VMM_LINUX_OPTS_INIT;
	o.kernel = data ? (const void *)data : (const void *)"";
	o.kernel_size = size;
	o.cmdline = "console=hvc0";
	o.initrd = initrd;
	o.initrd_size = initrd_size;
	o.rsdp = 0xe0000;
	vmm_linux_info info;
	r = vmm_linux_load(mem, NULL, &o, &info);
	if (r != 0) {
		check((r == -EINVAL || r == -ENOEXEC || r == -ENOSPC || r == -EFAULT || r == -E2BIG ||
		       r == -EROFS) && vmm_last_error()[0] != '\0', "load: documented error with a message");
		return 0;
	}
	check(pr == 0, "loaded an ELF that does not parse");
	check(info.kernel_addr >= (1u << 20) && info.kernel_end <= RAM, "kernel in RAM above 1 MiB");
	check(in_file_bytes(&im, info.entry), "entry in a segment's file bytes");
	if (info.protocol == VMM_LINUX_PVH) {
		check(nr == 0 && info.entry == entry, "PVH entry is the note's");
		check_pvh(mem, &info, initrd_size);
	} else {
		check(info.protocol == VMM_LINUX_ELF64 && nr == -ENOENT, "no note: 64-bit entry");
		check(info.entry == im.ehdr.e_entry, "ELF64 entry is e_entry");
		struct boot_params bp;
		check(vmm_mem_read(mem, info.boot_params, &bp, sizeof bp) == 0, "boot_params readable");
		check(bp.hdr.boot_flag == 0xaa55 && bp.hdr.header == BZ_HDRS &&
		      bp.hdr.version == BZ_LOADER_VERSION && bp.hdr.type_of_loader == 0xff, "made-up header");
		check(bp.hdr.ramdisk_image == info.initrd_addr && bp.hdr.ramdisk_size == initrd_size, "ramdisk");
	}
	for (unsigned i = 0; initrd_size && i < im.nseg; i++)
		check(info.initrd_addr + initrd_size <= im.seg[i].paddr ||
		      info.initrd_addr >= im.seg[i].paddr + im.seg[i].memsz, "initrd clear of the kernel");
	return 0;
}
