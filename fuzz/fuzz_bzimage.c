/* Fuzz target: bzImage setup-header parsing and the bzImage path of vmm_linux_load.
 *
 * Guest memory is a standalone map of RAM [0, 32 MiB) (the seeds in corpus/bzimage/ are
 * built for it by gen_boot_seeds.py). Beyond "no crash, no sanitizer report" it checks
 * what the API promises: only documented errors, always with a message; a parsed header
 * whose sizes lie inside the image; and after a successful load, the kernel bytes at
 * the load address, a boot_params that carries the image's header with the loader's
 * fields, and an initrd inside its limits and clear of the kernel.
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
		fprintf(stderr, "fuzz_bzimage: broken promise: %s (last error: %s)\n", what,
			vmm_last_error());
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

static void check_parsed(const struct vmm_bzimage *bz, size_t size)
{
	check(bz->hdr_end >= 0x264 && bz->hdr_end <= BZ_HDR_LIMIT && bz->hdr_end <= size, "header end");
	check(bz->setup_size >= 1024 && bz->setup_size <= size, "setup inside the image");
	check(bz->kernel_size > 0 && bz->kernel_size <= size - bz->setup_size, "kernel inside the image");
	check(bz->init_size >= bz->kernel_size, "init_size covers the kernel");
	check(!bz->relocatable || (bz->alignment >= 4096 && !(bz->alignment & (bz->alignment - 1))),
	      "alignment of a relocatable kernel");
	check(bz->cmdline_max <= VMM_CMDLINE_LIMIT, "cmdline max");
	check(bz->hdr.version >= BZ_MIN_VERSION && (bz->hdr.xloadflags & XLF_KERNEL_64), "64-bit");
}

static void check_loaded(vmm_mem *mem, const uint8_t *data, const struct vmm_bzimage *bz,
			 const vmm_linux_info *info, size_t initrd_size)
{
	static uint8_t buf[RAM];
	static struct boot_params bp;
	check(info->protocol == VMM_LINUX_BZIMAGE, "protocol");
	check(info->entry == info->kernel_addr + 0x200, "entry");
	check(info->kernel_end - info->kernel_addr == bz->init_size, "kernel_end");
	check(info->kernel_addr >= (1u << 20) && info->kernel_end <= RAM, "kernel in RAM above 1 MiB");
	check(!bz->relocatable || info->kernel_addr >= bz->pref_address, "not below pref_address");
	check(bz->relocatable || info->kernel_addr == bz->pref_address, "fixed kernel at pref_address");
	check(info->kernel_addr % bz->alignment == 0 || !bz->relocatable, "aligned");
	check(vmm_mem_read(mem, info->kernel_addr, buf, bz->kernel_size) == 0, "kernel readable");
	check(memcmp(buf, data + bz->setup_size, bz->kernel_size) == 0, "kernel bytes loaded");

	check(vmm_mem_read(mem, info->boot_params, &bp, sizeof bp) == 0, "boot_params readable");
	check(bp.hdr.boot_flag == 0xaa55 && bp.hdr.header == BZ_HDRS, "header copied");
	check(bp.hdr.version == bz->hdr.version && bp.hdr.init_size == bz->hdr.init_size, "header fields");
	check(bp.hdr.type_of_loader == 0xff, "type_of_loader");
	check(bp.hdr.cmd_line_ptr == info->cmdline_addr, "cmd_line_ptr");
	check(bp.hdr.ramdisk_image == info->initrd_addr && bp.hdr.ramdisk_size == initrd_size, "ramdisk");
	check(bp.hdr.setup_data == info->setup_data && info->setup_data, "setup_data");
	check(bp.e820_entries == info->e820_entries && bp.e820_entries >= 2, "e820");
	if (initrd_size) {
		uint64_t a = info->initrd_addr, e = a + initrd_size;
		check(a % 4096 == 0 && a >= (1u << 20) && e <= RAM, "initrd in RAM");
		check(e - 1 <= bz->initrd_end_max - 1, "initrd below initrd_addr_max");
		check(e <= info->kernel_addr || a >= info->kernel_end, "initrd clear of the kernel");
		check(info->setup_data + 64 <= a || info->setup_data >= e, "setup_data clear of the initrd");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	vmm_mem *mem = get_mem();
	static struct vmm_bzimage bz;

	int pr = vmm_bzimage_parse(data, size, &bz);
	check(pr == 0 || ((pr == -EINVAL || pr == -ENOEXEC) && vmm_last_error()[0]), "parse: documented error");
	if (pr == 0)
		check_parsed(&bz, size);

	vmm_linux_kernel k;
	int r = vmm_linux_probe(data, size, &k);
	check(r == 0 || ((r == -EINVAL || r == -ENOEXEC) && vmm_last_error()[0]), "probe: documented error");
	if (r == 0 && k.protocol == VMM_LINUX_BZIMAGE)
		check(pr == 0 && k.init_size == bz.init_size && k.cmdline_max == bz.cmdline_max, "probe agrees");

	/* The initrd size comes from the input, so the limits get exercised. */
	static uint8_t initrd[1 << 20];
	size_t initrd_size = size ? (size_t)data[size - 1] << 12 : 0;
	static const uint8_t fdt[48] = { 0xd0, 0x0d, 0xfe, 0xed };
	vmm_linux_setup_data sd = { VMM_LINUX_SETUP_DTB, fdt, sizeof fdt };
	vmm_linux_opts o = VMM_LINUX_OPTS_INIT;
	o.protocol = VMM_LINUX_BZIMAGE;
	o.kernel = data ? (const void *)data : (const void *)"";
	o.kernel_size = size;
	o.cmdline = "console=ttyS0 panic=-1";
	o.initrd = initrd;
	o.initrd_size = initrd_size;
	o.rsdp = 0xe0000;
	o.setup_data = &sd;
	o.n_setup_data = 1;
	vmm_linux_info info;
	r = vmm_linux_load(mem, NULL, &o, &info);
	if (r == 0) {
		check(pr == 0, "loaded an image that does not parse");
		check_loaded(mem, data, &bz, &info, initrd_size);
	} else {
		check((r == -EINVAL || r == -ENOEXEC || r == -ENOSPC || r == -EFAULT || r == -E2BIG) &&
		      vmm_last_error()[0] != '\0', "load: documented error with a message");
		check(pr != 0 || r != -EINVAL, "load refused a valid header as malformed");
	}
	return 0;
}
