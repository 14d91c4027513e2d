/* Unit tests for the ELF paths of vmm_linux_load: PVH (hvm_start_info, memmap table,
 * module list) and the 64-bit entry of a vmlinux without a PVH note (made-up setup
 * header), plus every malformed entry note. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <libvmm/libvmm.h>
#include "boot/boot_internal.h"
#include "test_boot_images.h"

#define MiB (1ull << 20)

static uint8_t img[0x4000];

static vmm_mem *new_mem(uint64_t ram)
{
	vmm_mem *mem = NULL;
	assert_int_equal(vmm_mem_create(&mem), 0);
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.len = ram;
	o.backing = VMM_MEM_ANON;
	assert_int_equal(vmm_mem_add_region(mem, &o), 0);
	void *host;
	if (ram >= TELF_PADDR + TELF_MEMSZ) {
		assert_int_equal(vmm_mem_translate(mem, TELF_PADDR, TELF_MEMSZ, true, &host), 0);
		memset(host, 0xa5, TELF_MEMSZ); /* so the zeroed bss shows */
	}
	return mem;
}

static size_t build(int note_len)
{
	struct telf_params p = { .note_len = note_len };
	size_t n = telf_build(img, sizeof img, &p);
	assert_true(n > 0);
	return n;
}

static vmm_linux_opts opts_for(size_t size)
{
	vmm_linux_opts o = VMM_LINUX_OPTS_INIT;
	o.kernel = img;
	o.kernel_size = size;
	return o;
}

static void assert_segment_loaded(vmm_mem *mem)
{
	static uint8_t buf[TELF_MEMSZ];
	assert_int_equal(vmm_mem_read(mem, TELF_PADDR, buf, sizeof buf), 0);
	for (size_t k = 0; k < TELF_FILESZ; k++)
		assert_int_equal(buf[k], telf_pattern(k));
	for (size_t k = TELF_FILESZ; k < TELF_MEMSZ; k++)
		assert_int_equal(buf[k], 0);
}

static void test_pvh_load(void **state)
{
	(void)state;
	for (int note = 4; note <= 8; note += 4) {
		size_t size = build(note);
		vmm_mem *mem = new_mem(64 * MiB);
		static uint8_t initrd[5000];
		memset(initrd, 0x77, sizeof initrd);
		vmm_e820_entry acpi = { 0x3ff0000, 0x10000, VMM_E820_ACPI };
		vmm_linux_opts o = opts_for(size);
		o.cmdline = "console=hvc0 quiet";
		o.initrd = initrd;
		o.initrd_size = sizeof initrd;
		o.rsdp = 0x3ff0000;
		o.e820_extra = &acpi;
		o.n_e820_extra = 1;
		vmm_linux_info info;
		if (vmm_linux_load(mem, NULL, &o, &info))
			fail_msg("note %d: %s", note, vmm_last_error());

		assert_int_equal(info.protocol, VMM_LINUX_PVH);
		assert_int_equal(info.boot_version, 0);
		assert_int_equal(info.entry, TELF_PVH_ENTRY);
		assert_int_equal(info.kernel_addr, TELF_PADDR);
		assert_int_equal(info.kernel_end, TELF_PADDR + TELF_MEMSZ);
		assert_int_equal(info.boot_params, VMM_LINUX_BOOT_PARAMS);
		assert_int_equal(info.system_area, 0);
		assert_int_equal(info.setup_data, 0);
		assert_segment_loaded(mem);

		/* the initrd: below the ACPI tables and 2 GiB, page aligned */
		assert_int_equal(info.initrd_addr, 0x3ff0000 - 8192);
		static uint8_t back[sizeof initrd];
		assert_int_equal(vmm_mem_read(mem, info.initrd_addr, back, sizeof back), 0);
		assert_memory_equal(back, initrd, sizeof back);

		struct hvm_start_info si;
		assert_int_equal(vmm_mem_read(mem, info.boot_params, &si, sizeof si), 0);
		assert_int_equal(si.magic, 0x336ec578);
		assert_int_equal(si.version, 1);
		assert_int_equal(si.flags, 0);
		assert_int_equal(si.nr_modules, 1);
		assert_int_equal(si.cmdline_paddr, VMM_LINUX_CMDLINE);
		assert_int_equal(si.rsdp_paddr, 0x3ff0000);
		assert_int_equal(si.reserved, 0);
		assert_int_equal(si.memmap_entries, info.e820_entries);

		struct hvm_modlist_entry mod;
		assert_int_equal(vmm_mem_read(mem, si.modlist_paddr, &mod, sizeof mod), 0);
		assert_int_equal(mod.paddr, info.initrd_addr);
		assert_int_equal(mod.size, sizeof initrd);
		assert_int_equal(mod.cmdline_paddr, 0);
		assert_int_equal(mod.reserved, 0);

		/* the memmap table is the e820 map, entry for entry */
		vmm_e820_entry e820[8];
		size_t n;
		assert_int_equal(vmm_e820_build(mem, &acpi, 1, e820, 8, &n), 0);
		assert_int_equal(n, 4);
		assert_int_equal(si.memmap_entries, n);
		struct hvm_memmap_table_entry m[4];
		assert_int_equal(vmm_mem_read(mem, si.memmap_paddr, m, sizeof m), 0);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(m[i].addr, e820[i].addr);
			assert_int_equal(m[i].size, e820[i].size);
			assert_int_equal(m[i].type, e820[i].type);
			assert_int_equal(m[i].reserved, 0);
		}
		assert_int_equal(m[3].type, VMM_E820_ACPI);

		char cl[32];
		assert_int_equal(vmm_mem_read(mem, si.cmdline_paddr, cl, 19), 0);
		assert_string_equal(cl, "console=hvc0 quiet");
		vmm_mem_destroy(mem);
	}
}

static void test_pvh_without_initrd(void **state)
{
	(void)state;
	size_t size = build(8);
	vmm_mem *mem = new_mem(32 * MiB);
	vmm_linux_opts o = opts_for(size);
	vmm_linux_info info;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	struct hvm_start_info si;
	assert_int_equal(vmm_mem_read(mem, info.boot_params, &si, sizeof si), 0);
	assert_int_equal(si.nr_modules, 0);
	assert_int_equal(si.modlist_paddr, 0);
	assert_int_equal(si.rsdp_paddr, 0);
	assert_int_equal(si.memmap_entries, 3);
	vmm_mem_destroy(mem);
}

/* No note: the 64-bit entry at e_entry with boot_params and a made-up header. */
static void test_elf64_entry(void **state)
{
	(void)state;
	size_t size = build(0);
	vmm_mem *mem = new_mem(64 * MiB);
	static uint8_t dtb[64];
	memset(dtb, 0xd7, sizeof dtb);
	vmm_linux_setup_data sd = { VMM_LINUX_SETUP_DTB, dtb, sizeof dtb };
	vmm_linux_opts o = opts_for(size);
	o.cmdline = "root=/dev/vda";
	o.initrd = "initrd-bytes";
	o.initrd_size = 12;
	o.rsdp = 0xe0000;
	o.setup_data = &sd;
	o.n_setup_data = 1;
	vmm_linux_info info;
	if (vmm_linux_load(mem, NULL, &o, &info))
		fail_msg("%s", vmm_last_error());
	assert_int_equal(info.protocol, VMM_LINUX_ELF64);
	assert_int_equal(info.entry, TELF_ENTRY64);
	assert_int_equal(info.boot_version, 0x020f);
	assert_int_equal(info.system_area, VMM_LINUX_BOOT_AREA_START);
	assert_segment_loaded(mem);

	struct boot_params bp;
	assert_int_equal(vmm_mem_read(mem, info.boot_params, &bp, sizeof bp), 0);
	assert_int_equal(bp.hdr.boot_flag, 0xaa55);
	assert_int_equal(bp.hdr.header, 0x53726448);
	assert_int_equal(bp.hdr.version, 0x020f);
	assert_int_equal(bp.hdr.type_of_loader, 0xff);
	assert_int_equal(bp.hdr.loadflags, LOADED_HIGH);
	assert_int_equal(bp.hdr.xloadflags, XLF_KERNEL_64);
	assert_int_equal(bp.hdr.cmdline_size, 2047);
	assert_int_equal(bp.hdr.cmd_line_ptr, VMM_LINUX_CMDLINE);
	assert_int_equal(bp.hdr.ramdisk_image, info.initrd_addr);
	assert_int_equal(bp.hdr.ramdisk_size, 12);
	assert_true(info.initrd_addr + 12 <= 0x80000000ull);
	assert_int_equal(bp.hdr.setup_data, info.setup_data);
	assert_int_equal(bp.acpi_rsdp_addr, 0xe0000);
	assert_int_equal(bp.e820_entries, 3);
	assert_int_equal(bp.e820_table[2].addr, MiB);
	assert_int_equal(bp.e820_table[2].size, 63 * MiB);
	struct setup_data node;
	assert_int_equal(vmm_mem_read(mem, info.setup_data, &node, sizeof node), 0);
	assert_int_equal(node.type, SETUP_DTB);
	assert_int_equal(node.len, sizeof dtb);
	assert_int_equal(node.next, 0);

	/* asking for PVH on it fails; asking for ELF64 on a PVH kernel works */
	o.protocol = VMM_LINUX_PVH;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), -ENOEXEC);
	assert_non_null(strstr(vmm_last_error(), "no XEN_ELFNOTE_PHYS32_ENTRY note"));
	size = build(4);
	o = opts_for(size);
	o.protocol = VMM_LINUX_ELF64;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.protocol, VMM_LINUX_ELF64);
	assert_int_equal(info.entry, TELF_ENTRY64);
	o.protocol = VMM_LINUX_BZIMAGE;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), -ENOEXEC);
	assert_non_null(strstr(vmm_last_error(), "this is an ELF vmlinux"));
	vmm_mem_destroy(mem);
}

static void expect_fail(size_t size, vmm_linux_protocol proto, int err, const char *needle)
{
	vmm_mem *mem = new_mem(64 * MiB);
	vmm_linux_opts o = opts_for(size);
	o.protocol = proto;
	int r = vmm_linux_load(mem, NULL, &o, NULL);
	if (r != err)
		fail_msg("expected %d (%s), got %d: %s", err, needle, r, vmm_last_error());
	if (!strstr(vmm_last_error(), needle))
		fail_msg("message \"%s\" lacks \"%s\"", vmm_last_error(), needle);
	/* nothing written: the segment still holds the poison */
	uint8_t b;
	assert_int_equal(vmm_mem_read(mem, TELF_PADDR, &b, 1), 0);
	assert_int_equal(b, 0xa5);
	vmm_mem_destroy(mem);
}

static void test_bad_notes(void **state)
{
	(void)state;
	size_t size = build(2);
	expect_fail(size, VMM_LINUX_AUTO, -EINVAL, "holds 2 bytes, expected a 4- or 8-byte address");
	size = build(12);
	expect_fail(size, VMM_LINUX_AUTO, -EINVAL, "holds 12 bytes");
	size = build(0);
	expect_fail(size, VMM_LINUX_PVH, -ENOEXEC, "CONFIG_PVH");

	struct telf_params p = { .note_len = 8, .pvh_entry = 0x100000000ull + TELF_PADDR };
	size = telf_build(img, sizeof img, &p);
	expect_fail(size, VMM_LINUX_AUTO, -EINVAL, "above 4 GiB");
	p.pvh_entry = TELF_PADDR + TELF_FILESZ; /* in the bss, not the file bytes */
	size = telf_build(img, sizeof img, &p);
	expect_fail(size, VMM_LINUX_AUTO, -EINVAL, "not inside the file bytes");
	p.pvh_entry = 0x800000;
	p.note_len = 4;
	size = telf_build(img, sizeof img, &p);
	expect_fail(size, VMM_LINUX_AUTO, -EINVAL, "entry point 0x800000");

	/* a note that runs past its segment */
	size = build(8);
	Elf64_Phdr note;
	memcpy(&note, img + sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr), sizeof note);
	note.p_filesz -= 4;
	memcpy(img + sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr), &note, sizeof note);
	expect_fail(size, VMM_LINUX_AUTO, -EINVAL, "runs past its segment");

	/* ELF64 path: e_entry must be in the file bytes of a segment */
	size = build(0);
	Elf64_Ehdr eh;
	memcpy(&eh, img, sizeof eh);
	eh.e_entry = 0xffffffff81000200ull; /* a virtual address */
	memcpy(img, &eh, sizeof eh);
	expect_fail(size, VMM_LINUX_AUTO, -EINVAL, "a virtual address?");
}

static void test_bad_placement(void **state)
{
	(void)state;
	/* segments below 1 MiB or crossing 4 GiB */
	struct telf_params p = { .note_len = 4, .paddr = 0x80000 };
	size_t size = telf_build(img, sizeof img, &p);
	expect_fail(size, VMM_LINUX_AUTO, -ENOEXEC, "not between 1 MiB and 4 GiB");

	/* a segment outside RAM */
	p.paddr = 0;
	size = telf_build(img, sizeof img, &p);
	vmm_mem *mem = new_mem(8 * MiB);
	vmm_linux_opts o = opts_for(size);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), -EFAULT);
	assert_non_null(strstr(vmm_last_error(), "kernel segment"));

	/* PVH has no setup_data */
	mem = (vmm_mem_destroy(mem), new_mem(64 * MiB));
	vmm_linux_setup_data sd = { VMM_LINUX_SETUP_DTB, "x", 1 };
	o.setup_data = &sd;
	o.n_setup_data = 1;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), -ENOTSUP);
	assert_non_null(strstr(vmm_last_error(), "no setup_data"));

	/* a segment on an e820 override range */
	o = opts_for(size);
	vmm_e820_entry r = { TELF_PADDR + 0x2000, 0x1000, VMM_E820_RESERVED };
	o.e820_extra = &r;
	o.n_e820_extra = 1;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), -ENOSPC);
	assert_non_null(strstr(vmm_last_error(), "kernel segment"));

	/* a command line over Linux's 2047 bytes */
	static char line[2100];
	memset(line, 'x', sizeof line - 1);
	o = opts_for(size);
	o.cmdline = line;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), -E2BIG);
	line[2047] = '\0';
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), 0);
	vmm_mem_destroy(mem);
}

static void test_truncated_everywhere(void **state)
{
	(void)state;
	size_t size = build(8);
	/* Every cut through the headers and notes fails cleanly; a cut inside the
	 * segment's bytes too. */
	for (size_t cut = 0; cut < size; cut += cut < 0x300 ? 1 : 0x100) {
		vmm_mem *mem = new_mem(64 * MiB);
		vmm_linux_opts o = opts_for(cut);
		int r = vmm_linux_load(mem, NULL, &o, NULL);
		if (r != -EINVAL && r != -ENOEXEC)
			fail_msg("cut at %zu: %d (%s)", cut, r, vmm_last_error());
		assert_true(vmm_last_error()[0] != '\0');
		vmm_mem_destroy(mem);
	}
}

static void test_probe(void **state)
{
	(void)state;
	size_t size = build(8);
	vmm_linux_kernel k;
	assert_int_equal(vmm_linux_probe(img, size, &k), 0);
	assert_int_equal(k.protocol, VMM_LINUX_PVH);
	assert_true(k.has_pvh);
	assert_int_equal(k.entry, TELF_PVH_ENTRY);
	assert_int_equal(k.pref_address, TELF_PADDR);
	assert_int_equal(k.init_size, TELF_MEMSZ);
	assert_int_equal(k.cmdline_max, 2047);
	assert_int_equal(k.initrd_max, 0x7fffffff);
	size = build(0);
	assert_int_equal(vmm_linux_probe(img, size, &k), 0);
	assert_int_equal(k.protocol, VMM_LINUX_ELF64);
	assert_false(k.has_pvh);
	assert_int_equal(k.entry, TELF_ENTRY64);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pvh_load),
		cmocka_unit_test(test_pvh_without_initrd),
		cmocka_unit_test(test_elf64_entry),
		cmocka_unit_test(test_bad_notes),
		cmocka_unit_test(test_bad_placement),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_probe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
