/* Unit tests for the bzImage path of vmm_linux_load on a standalone memory map: where
 * every piece lands, what boot_params says, the initrd limits, and that each malformed
 * header is refused with its own message and without touching guest memory. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <libvmm/libvmm.h>
#include "boot/boot_internal.h"
#include "test_boot_images.h"

#define MiB (1ull << 20)
#define POISON 0xa5

static uint8_t img[1 << 20];

/* A map of RAM regions [gpa, gpa + len), poisoned where the loader writes, so "nothing
 * was written" is visible. */
static vmm_mem *new_mem_map(const uint64_t (*map)[2], unsigned n)
{
	vmm_mem *mem = NULL;
	assert_int_equal(vmm_mem_create(&mem), 0);
	for (unsigned i = 0; i < n; i++) {
		vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
		o.gpa = map[i][0];
		o.len = map[i][1];
		o.backing = VMM_MEM_ANON;
		assert_int_equal(vmm_mem_add_region(mem, &o), 0);
	}
	return mem;
}

static void poison(vmm_mem *mem, uint64_t gpa, uint64_t len)
{
	void *host;
	assert_int_equal(vmm_mem_translate(mem, gpa, len, true, &host), 0);
	memset(host, POISON, len);
}

static bool is_poisoned(vmm_mem *mem, uint64_t gpa, uint64_t len)
{
	void *host;
	assert_int_equal(vmm_mem_translate(mem, gpa, len, false, &host), 0);
	for (uint64_t k = 0; k < len; k++)
		if (((uint8_t *)host)[k] != POISON)
			return false;
	return true;
}

/* 64 MiB of RAM at 0, poisoned in the boot area and around the preferred load address. */
static vmm_mem *new_mem(void)
{
	static const uint64_t map[][2] = { { 0, 64 * MiB } };
	vmm_mem *mem = new_mem_map(map, 1);
	poison(mem, VMM_LINUX_BOOT_AREA_START, VMM_LINUX_BOOT_AREA_END - VMM_LINUX_BOOT_AREA_START);
	poison(mem, TBZ_PREF, 2 * MiB);
	return mem;
}

static vmm_linux_opts opts_for(const void *image, size_t size)
{
	vmm_linux_opts o = VMM_LINUX_OPTS_INIT;
	o.kernel = image;
	o.kernel_size = size;
	return o;
}

static void expect_fail(const void *image, size_t size, int err, const char *needle)
{
	vmm_mem *mem = new_mem();
	vmm_linux_opts o = opts_for(image, size);
	vmm_linux_info info;
	int r = vmm_linux_load(mem, NULL, &o, &info);
	if (r != err)
		fail_msg("expected %d (%s), got %d: %s", err, needle, r, vmm_last_error());
	if (needle && !strstr(vmm_last_error(), needle))
		fail_msg("message \"%s\" lacks \"%s\"", vmm_last_error(), needle);
	assert_true(is_poisoned(mem, VMM_LINUX_BOOT_AREA_START,
				VMM_LINUX_BOOT_AREA_END - VMM_LINUX_BOOT_AREA_START));
	assert_true(is_poisoned(mem, TBZ_PREF, 2 * MiB));
	vmm_mem_destroy(mem);
}

static void read_bp(vmm_mem *mem, const vmm_linux_info *info, struct boot_params *bp)
{
	assert_int_equal(vmm_mem_read(mem, info->boot_params, bp, sizeof *bp), 0);
}

/* ---- a good load ------------------------------------------------------------------------ */

static void test_load_everything(void **state)
{
	(void)state;
	size_t size = tbz_build(img, sizeof img, NULL);
	assert_true(size > 0);
	vmm_mem *mem = new_mem();

	static uint8_t initrd[10000], dtb[300];
	for (size_t k = 0; k < sizeof initrd; k++)
		initrd[k] = (uint8_t)(k ^ 0x5c);
	memset(dtb, 0xd7, sizeof dtb);
	vmm_linux_setup_data sd[2] = { { VMM_LINUX_SETUP_DTB, dtb, sizeof dtb },
				       { VMM_LINUX_SETUP_RNG_SEED, "0123456789abcdef", 16 } };
	vmm_e820_entry acpi = { 0xe0000, 0x10000, VMM_E820_ACPI };
	const char *cmdline = "console=ttyS0 root=/dev/vda rw";

	vmm_linux_opts o = opts_for(img, size);
	o.cmdline = cmdline;
	o.initrd = initrd;
	o.initrd_size = sizeof initrd;
	o.rsdp = 0xe0000;
	o.e820_extra = &acpi;
	o.n_e820_extra = 1;
	o.setup_data = sd;
	o.n_setup_data = 2;
	vmm_linux_info info;
	if (vmm_linux_load(mem, NULL, &o, &info))
		fail_msg("load: %s", vmm_last_error());

	assert_int_equal(info.protocol, VMM_LINUX_BZIMAGE);
	assert_int_equal(info.boot_version, 0x020f);
	assert_int_equal(info.kernel_addr, TBZ_PREF);
	assert_int_equal(info.kernel_end, TBZ_PREF + TBZ_INIT_SIZE);
	assert_int_equal(info.entry, TBZ_PREF + 0x200);
	assert_int_equal(info.boot_params, VMM_LINUX_BOOT_PARAMS);
	assert_int_equal(info.cmdline_addr, VMM_LINUX_CMDLINE);
	assert_int_equal(info.cmdline_len, strlen(cmdline));
	assert_int_equal(info.system_area, VMM_LINUX_BOOT_AREA_START);

	/* the protected-mode kernel, exactly syssize * 16 bytes of it */
	static uint8_t buf[0x2000];
	assert_int_equal(vmm_mem_read(mem, TBZ_PREF, buf, 0x2000), 0);
	assert_memory_equal(buf, img + TBZ_SETUP_SIZE, 0x2000);
	assert_true(is_poisoned(mem, TBZ_PREF + 0x2000, 0x1000));

	/* command line, NUL-terminated */
	char cl[64];
	assert_int_equal(vmm_mem_read(mem, info.cmdline_addr, cl, strlen(cmdline) + 1), 0);
	assert_string_equal(cl, cmdline);

	/* initrd: page aligned, at the top of RAM (64 MiB, below initrd_addr_max) */
	assert_int_equal(info.initrd_size, sizeof initrd);
	assert_int_equal(info.initrd_addr % 4096, 0);
	assert_true(info.initrd_addr + sizeof initrd <= 64 * MiB);
	assert_true(info.initrd_addr + sizeof initrd > 64 * MiB - 4096);
	static uint8_t rd[sizeof initrd];
	assert_int_equal(vmm_mem_read(mem, info.initrd_addr, rd, sizeof rd), 0);
	assert_memory_equal(rd, initrd, sizeof rd);

	/* boot_params: the image's header with the loader's fields filled in */
	struct boot_params bp;
	read_bp(mem, &info, &bp);
	struct setup_header want = tbz_hdr(img);
	want.type_of_loader = 0xff;
	want.code32_start = TBZ_PREF;
	want.cmd_line_ptr = VMM_LINUX_CMDLINE;
	want.ramdisk_image = (uint32_t)info.initrd_addr;
	want.ramdisk_size = sizeof initrd;
	want.setup_data = info.setup_data;
	assert_memory_equal(&bp.hdr, &want, sizeof want);
	assert_int_equal(bp.hdr.boot_flag, 0xaa55);
	assert_int_equal(bp.hdr.header, 0x53726448);
	assert_int_equal(bp.acpi_rsdp_addr, 0xe0000);
	assert_int_equal(bp.ext_cmd_line_ptr, 0);
	assert_int_equal(bp.ext_ramdisk_image, 0);
	assert_int_equal(bp.sentinel, 0);
	/* nothing else set: the zero page outside the fields above is zero */
	struct boot_params z;
	memcpy(&z, &bp, sizeof z);
	memset(&z.hdr, 0, sizeof z.hdr);
	memset(z.e820_table, 0, sizeof z.e820_table);
	z.e820_entries = 0;
	z.acpi_rsdp_addr = 0;
	static const struct boot_params zero;
	assert_memory_equal(&z, &zero, sizeof z);

	/* e820: low RAM, the legacy hole split by the ACPI range, RAM from 1 MiB */
	static const struct { uint64_t a, s; uint32_t t; } e[] = {
		{ 0, 0x9fc00, 1 }, { 0x9fc00, 0xe0000 - 0x9fc00, 2 }, { 0xe0000, 0x10000, 3 },
		{ 0xf0000, 0x10000, 2 }, { 0x100000, 63 * MiB, 1 },
	};
	assert_int_equal(bp.e820_entries, 5);
	assert_int_equal(info.e820_entries, 5);
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(bp.e820_table[i].addr, e[i].a);
		assert_int_equal(bp.e820_table[i].size, e[i].s);
		assert_int_equal(bp.e820_table[i].type, e[i].t);
	}

	/* setup_data: two nodes chained, below the initrd, clear of everything */
	assert_true(info.setup_data >= MiB && info.setup_data + 16 + sizeof dtb <= info.initrd_addr);
	struct setup_data n1, n2;
	assert_int_equal(vmm_mem_read(mem, info.setup_data, &n1, sizeof n1), 0);
	assert_int_equal(n1.type, SETUP_DTB);
	assert_int_equal(n1.len, sizeof dtb);
	assert_int_equal(n1.next, info.setup_data + ((16 + sizeof dtb + 7) & ~7u));
	static uint8_t got[sizeof dtb];
	assert_int_equal(vmm_mem_read(mem, info.setup_data + 16, got, sizeof dtb), 0);
	assert_memory_equal(got, dtb, sizeof dtb);
	assert_int_equal(vmm_mem_read(mem, n1.next, &n2, sizeof n2), 0);
	assert_int_equal(n2.type, SETUP_RNG_SEED);
	assert_int_equal(n2.len, 16);
	assert_int_equal(n2.next, 0);
	char seed[17] = { 0 };
	assert_int_equal(vmm_mem_read(mem, n1.next + 16, seed, 16), 0);
	assert_string_equal(seed, "0123456789abcdef");

	/* loading again gives the same result (reboot path) */
	vmm_linux_info again;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &again), 0);
	assert_memory_equal(&again, &info, sizeof info);
	vmm_mem_destroy(mem);
}

static void test_no_initrd_no_cmdline(void **state)
{
	(void)state;
	size_t size = tbz_build(img, sizeof img, NULL);
	vmm_mem *mem = new_mem();
	vmm_linux_opts o = opts_for(img, size);
	vmm_linux_info info;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.initrd_addr, 0);
	assert_int_equal(info.initrd_size, 0);
	assert_int_equal(info.setup_data, 0);
	assert_int_equal(info.cmdline_len, 0);
	struct boot_params bp;
	read_bp(mem, &info, &bp);
	assert_int_equal(bp.hdr.ramdisk_image, 0);
	assert_int_equal(bp.hdr.ramdisk_size, 0);
	assert_int_equal(bp.hdr.setup_data, 0);
	assert_int_equal(bp.hdr.cmd_line_ptr, VMM_LINUX_CMDLINE);
	char c = 1;
	assert_int_equal(vmm_mem_read(mem, VMM_LINUX_CMDLINE, &c, 1), 0);
	assert_int_equal(c, 0);
	assert_int_equal(bp.e820_entries, 3);
	vmm_mem_destroy(mem);
}

/* A signed kernel carries its signature after syssize * 16 bytes: only the kernel is
 * copied. setup_sects 0 means 4. */
static void test_trailer_and_setup_sects_zero(void **state)
{
	(void)state;
	struct tbz_params p = { .trailer = 1000 };
	size_t size = tbz_build(img, sizeof img, &p);
	struct setup_header h = tbz_hdr(img);
	h.setup_sects = 0; /* = 4, which the image has */
	tbz_set_hdr(img, &h);
	vmm_mem *mem = new_mem();
	vmm_linux_opts o = opts_for(img, size);
	vmm_linux_info info;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	static uint8_t buf[0x2000];
	assert_int_equal(vmm_mem_read(mem, info.kernel_addr, buf, sizeof buf), 0);
	assert_memory_equal(buf, img + TBZ_SETUP_SIZE, sizeof buf);
	assert_true(is_poisoned(mem, info.kernel_addr + 0x2000, 1000));
	vmm_mem_destroy(mem);
}

/* ---- where the kernel goes --------------------------------------------------------------- */

static void test_relocation(void **state)
{
	(void)state;
	size_t size = tbz_build(img, sizeof img, NULL);
	vmm_linux_opts o = opts_for(img, size);
	vmm_linux_info info;

	/* 8 MiB of RAM: the kernel would move itself to pref_address (16 MiB) */
	static const uint64_t small[][2] = { { 0, 8 * MiB } };
	vmm_mem *mem = new_mem_map(small, 1);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), -ENOSPC);
	assert_non_null(strstr(vmm_last_error(), "bzImage kernel"));

	/* pref_address 1 MiB: the lowest 2 MiB-aligned place above it */
	struct setup_header h = tbz_hdr(img);
	h.pref_address = 0x100000;
	tbz_set_hdr(img, &h);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.kernel_addr, 2 * MiB);
	assert_int_equal(info.entry, 2 * MiB + 0x200);
	struct boot_params bp;
	read_bp(mem, &info, &bp);
	assert_int_equal(bp.hdr.code32_start, 2 * MiB);

	/* pref_address misaligned for kernel_alignment: aligned up */
	h.pref_address = 0x201000;
	tbz_set_hdr(img, &h);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.kernel_addr, 4 * MiB);

	/* a 1 KiB alignment is raised to a page */
	h.kernel_alignment = 0x400;
	tbz_set_hdr(img, &h);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.kernel_addr, 0x201000);

	/* no pref_address: from 1 MiB */
	h.pref_address = 0;
	tbz_set_hdr(img, &h);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.kernel_addr, 1 * MiB);

	/* not relocatable: exactly pref_address, which must be RAM */
	h = tbz_hdr(img);
	h.relocatable_kernel = 0;
	h.pref_address = 0x400000;
	tbz_set_hdr(img, &h);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.kernel_addr, 0x400000);
	h.pref_address = 0x1000000;
	tbz_set_hdr(img, &h);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), -EFAULT);
	assert_non_null(strstr(vmm_last_error(), "not in writable guest RAM"));
	h.pref_address = 0; /* means 1 MiB */
	tbz_set_hdr(img, &h);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.kernel_addr, 1 * MiB);
	h.pref_address = 0x80000;
	tbz_set_hdr(img, &h);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), -ENOEXEC);
	assert_non_null(strstr(vmm_last_error(), "not relocatable"));
	vmm_mem_destroy(mem);

	/* relocatable, RAM too small for init_size anywhere */
	tbz_build(img, sizeof img, NULL);
	h = tbz_hdr(img);
	h.init_size = 0x800000;
	h.pref_address = 0x100000;
	tbz_set_hdr(img, &h);
	static const uint64_t tiny[][2] = { { 0, 4 * MiB } };
	mem = new_mem_map(tiny, 1);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), -ENOSPC);
	assert_non_null(strstr(vmm_last_error(), "bzImage kernel"));
	vmm_mem_destroy(mem);

	/* the kernel may not sit on an e820 override range (here: ACPI at 16 MiB) */
	tbz_build(img, sizeof img, NULL);
	mem = new_mem();
	vmm_e820_entry acpi = { TBZ_PREF, 0x1000, VMM_E820_ACPI };
	o.e820_extra = &acpi;
	o.n_e820_extra = 1;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.kernel_addr, 18 * MiB);
	vmm_mem_destroy(mem);
}

static void test_boot_area_must_be_ram(void **state)
{
	(void)state;
	size_t size = tbz_build(img, sizeof img, NULL);
	vmm_linux_opts o = opts_for(img, size);
	vmm_linux_info info;
	static const uint64_t map[][2] = { { 0, 0x20000 }, { 1 * MiB, 31 * MiB } };
	vmm_mem *mem = new_mem_map(map, 2);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), -EFAULT);
	assert_non_null(strstr(vmm_last_error(), "Linux boot area"));
	vmm_mem_destroy(mem);

	/* an e820 override inside the boot area is refused */
	mem = new_mem();
	vmm_e820_entry bad = { 0x30000, 0x1000, VMM_E820_RESERVED };
	o.e820_extra = &bad;
	o.n_e820_extra = 1;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), -ENOSPC);
	assert_non_null(strstr(vmm_last_error(), "overlaps the Linux boot area"));
	vmm_mem_destroy(mem);
}

/* ---- initrd placement ------------------------------------------------------------------ */

static void test_initrd_limits(void **state)
{
	(void)state;
	size_t size = tbz_build(img, sizeof img, NULL);
	static uint8_t initrd[3 * MiB];
	memset(initrd, 0x3c, sizeof initrd);
	vmm_linux_opts o = opts_for(img, size);
	o.initrd = initrd;
	vmm_linux_info info;

	/* initrd_addr_max below the top of RAM: the initrd ends right at it */
	struct setup_header h = tbz_hdr(img);
	h.initrd_addr_max = 0x2ffffff; /* 48 MiB - 1 */
	tbz_set_hdr(img, &h);
	vmm_mem *mem = new_mem();
	o.initrd_size = 5000;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.initrd_addr, 48 * MiB - 8192);
	vmm_mem_destroy(mem);

	/* initrd_addr_max inclusive: an unaligned limit rounds down */
	h.initrd_addr_max = 0x2ffe800;
	tbz_set_hdr(img, &h);
	mem = new_mem();
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_true(info.initrd_addr + 5000 - 1 <= 0x2ffe800);
	assert_int_equal(info.initrd_addr, 48 * MiB - 3 * 4096);
	vmm_mem_destroy(mem);

	/* RAM [0, 18 MiB): the kernel takes [16, 17 MiB); 1.5 MiB of initrd does not fit
	 * above it and goes below, never overlapping init_size */
	tbz_build(img, sizeof img, NULL);
	static const uint64_t m18[][2] = { { 0, 18 * MiB } };
	mem = new_mem_map(m18, 1);
	o.initrd_size = 3 * MiB / 2;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.kernel_addr, 16 * MiB);
	assert_true(info.initrd_addr + info.initrd_size <= 16 * MiB);
	assert_int_equal(info.initrd_addr, 16 * MiB - 3 * MiB / 2);
	static uint8_t back[3 * MiB / 2];
	assert_int_equal(vmm_mem_read(mem, info.initrd_addr, back, sizeof back), 0);
	assert_memory_equal(back, initrd, sizeof back);
	/* and 1 MiB goes above it */
	o.initrd_size = MiB;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.initrd_addr, 17 * MiB);
	vmm_mem_destroy(mem);

	/* below initrd_addr_max there is no room: refused, nothing written */
	h = tbz_hdr(img);
	h.initrd_addr_max = 0x1ffffff; /* 32 MiB - 1; the kernel sits at 16-17 MiB */
	tbz_set_hdr(img, &h);
	static const uint64_t m20[][2] = { { 0, 0x60000 }, { 15 * MiB, 17 * MiB } };
	mem = new_mem_map(m20, 2);
	poison(mem, VMM_LINUX_BOOT_AREA_START, VMM_LINUX_BOOT_AREA_END - VMM_LINUX_BOOT_AREA_START);
	o.initrd_size = 3 * MiB;
	int r = vmm_linux_load(mem, NULL, &o, &info);
	assert_int_equal(r, 0); /* 17-20 MiB fits: 3 MiB below 32 MiB */
	assert_int_equal(info.initrd_addr, 29 * MiB);
	h.initrd_addr_max = 0x13fffff; /* 20 MiB - 1: 17-20 MiB is still free */
	tbz_set_hdr(img, &h);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.initrd_addr, 17 * MiB);
	h.initrd_addr_max = 0x12fffff; /* 19 MiB - 1: [15, 16) + [17, 19) are 3 MiB, not in one piece */
	tbz_set_hdr(img, &h);
	poison(mem, VMM_LINUX_BOOT_AREA_START, VMM_LINUX_BOOT_AREA_END - VMM_LINUX_BOOT_AREA_START);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), -ENOSPC);
	assert_non_null(strstr(vmm_last_error(), "initrd"));
	assert_true(is_poisoned(mem, VMM_LINUX_BOOT_AREA_START,
				VMM_LINUX_BOOT_AREA_END - VMM_LINUX_BOOT_AREA_START));
	vmm_mem_destroy(mem);
}

static void test_initrd_file(void **state)
{
	(void)state;
	size_t size = tbz_build(img, sizeof img, NULL);
	char path[] = "/tmp/libvmm-initrd-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	static uint8_t data[70000];
	for (size_t k = 0; k < sizeof data; k++)
		data[k] = (uint8_t)(k * 7);
	assert_int_equal(write(fd, data, sizeof data), (ssize_t)sizeof data);
	close(fd);

	vmm_mem *mem = new_mem();
	vmm_linux_opts o = opts_for(img, size);
	o.initrd_path = path;
	vmm_linux_info info;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.initrd_size, sizeof data);
	static uint8_t back[sizeof data];
	assert_int_equal(vmm_mem_read(mem, info.initrd_addr, back, sizeof back), 0);
	assert_memory_equal(back, data, sizeof data);

	/* the kernel from a file too */
	char kpath[] = "/tmp/libvmm-bzimage-XXXXXX";
	fd = mkstemp(kpath);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, img, size), (ssize_t)size);
	close(fd);
	vmm_linux_opts f = VMM_LINUX_OPTS_INIT;
	f.kernel_path = kpath;
	vmm_linux_info finfo;
	assert_int_equal(vmm_linux_load(mem, NULL, &f, &finfo), 0);
	assert_int_equal(finfo.entry, TBZ_PREF + 0x200);
	unlink(kpath);

	/* missing files, and both sources at once */
	unlink(path);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), -ENOENT);
	assert_non_null(strstr(vmm_last_error(), path));
	o.initrd_path = NULL;
	f.kernel_path = "/nonexistent/bzImage";
	assert_int_equal(vmm_linux_load(mem, NULL, &f, &info), -ENOENT);
	f.kernel_path = "/tmp";
	assert_int_equal(vmm_linux_load(mem, NULL, &f, &info), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "not a regular file"));
	o.kernel_path = "/tmp/x";
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "exactly one"));
	vmm_mem_destroy(mem);
}

/* ---- command line ------------------------------------------------------------------------ */

static void test_cmdline_limits(void **state)
{
	(void)state;
	size_t size = tbz_build(img, sizeof img, NULL);
	struct setup_header h = tbz_hdr(img);
	h.cmdline_size = 100;
	tbz_set_hdr(img, &h);
	char line[200];
	memset(line, 'a', sizeof line);
	line[100] = '\0';
	vmm_mem *mem = new_mem();
	vmm_linux_opts o = opts_for(img, size);
	o.cmdline = line;
	vmm_linux_info info;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.cmdline_len, 100);
	line[100] = 'a';
	line[101] = '\0';
	poison(mem, VMM_LINUX_BOOT_AREA_START, VMM_LINUX_BOOT_AREA_END - VMM_LINUX_BOOT_AREA_START);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), -E2BIG);
	assert_non_null(strstr(vmm_last_error(), "limit of 100"));
	assert_true(is_poisoned(mem, VMM_LINUX_BOOT_AREA_START,
				VMM_LINUX_BOOT_AREA_END - VMM_LINUX_BOOT_AREA_START));
	o.cmdline = "console=ttyS0\nroot=/dev/vda";
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "control character 0xa"));
	/* a longer previous line leaves no tail behind */
	o.cmdline = "a b c d e f g h";
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	o.cmdline = "xy";
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	char got[16];
	assert_int_equal(vmm_mem_read(mem, VMM_LINUX_CMDLINE, got, sizeof got), 0);
	assert_memory_equal(got, "xy\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	/* a huge cmdline_size is capped at the loader's slot */
	h.cmdline_size = 0xffffffff;
	tbz_set_hdr(img, &h);
	vmm_linux_kernel k;
	assert_int_equal(vmm_linux_probe(img, size, &k), 0);
	assert_int_equal(k.cmdline_max, VMM_CMDLINE_LIMIT);
	vmm_mem_destroy(mem);
}

/* ---- malformed headers ------------------------------------------------------------------- */

static size_t fresh(void)
{
	return tbz_build(img, sizeof img, NULL);
}

static void test_truncated_everywhere(void **state)
{
	(void)state;
	size_t size = fresh();
	/* Cut at every byte up to the end of the setup header, then around the kernel. */
	for (size_t cut = 0; cut <= TBZ_HDR_END + 1; cut++) {
		vmm_mem *mem = new_mem();
		vmm_linux_opts o = opts_for(img, cut);
		vmm_linux_info info;
		int r = vmm_linux_load(mem, NULL, &o, &info);
		if (r != -EINVAL && r != -ENOEXEC)
			fail_msg("cut at %zu: %d (%s)", cut, r, vmm_last_error());
		assert_true(vmm_last_error()[0] != '\0');
		vmm_mem_destroy(mem);
	}
	expect_fail(img, 0x1fe, -ENOEXEC, "boot flag");
	expect_fail(img, 0x205, -ENOEXEC, "ends inside the \"HdrS\"");
	expect_fail(img, 0x207, -EINVAL, "protocol version");
	expect_fail(img, 0x26b, -EINVAL, "ends inside the setup header");
	expect_fail(img, TBZ_SETUP_SIZE - 1, -EINVAL, "setup sectors");
	expect_fail(img, size - 1, -EINVAL, "syssize");
	expect_fail(img, TBZ_SETUP_SIZE, -EINVAL, "syssize");
}

static void test_bad_fields(void **state)
{
	(void)state;
	struct setup_header h;
	size_t size;

	size = fresh();
	img[0x1fe] = 0x54;
	expect_fail(img, size, -ENOEXEC, "boot flag 0xaa54");
	vmm_linux_opts o = opts_for(img, size);
	o.protocol = VMM_LINUX_BZIMAGE; /* insisting on a bzImage: the error is -EINVAL */
	vmm_mem *mem = new_mem();
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "boot flag 0xaa54 at 0x1fe, expected 0xaa55"));
	vmm_mem_destroy(mem);

	size = fresh();
	memcpy(img + 0x202, "HdrZ", 4);
	expect_fail(img, size, -ENOEXEC, "HdrS");

	size = fresh();
	h = tbz_hdr(img);
	h.version = 0x0206;
	tbz_set_hdr(img, &h);
	expect_fail(img, size, -ENOEXEC, "setup header version 2.06 too old (need 2.12 for the 64-bit entry)");
	h.version = 0x020b;
	tbz_set_hdr(img, &h);
	expect_fail(img, size, -ENOEXEC, "2.11 too old");
	h.version = 0x020c; /* 2.12 is enough */
	tbz_set_hdr(img, &h);
	mem = new_mem();
	o = opts_for(img, size);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), 0);
	vmm_mem_destroy(mem);

	size = fresh();
	h = tbz_hdr(img);
	h.xloadflags = XLF_CAN_BE_LOADED_ABOVE_4G;
	tbz_set_hdr(img, &h);
	expect_fail(img, size, -ENOEXEC, "XLF_KERNEL_64");

	size = fresh();
	h = tbz_hdr(img);
	h.loadflags = 0;
	tbz_set_hdr(img, &h);
	expect_fail(img, size, -ENOEXEC, "LOADED_HIGH");

	size = fresh();
	img[0x200] = 0xe9;
	expect_fail(img, size, -EINVAL, "short jump");
	size = fresh();
	img[0x201] = 0x5f; /* header ends at 0x261, inside init_size */
	expect_fail(img, size, -EINVAL, "before init_size");
	img[0x201] = 0xff;
	expect_fail(img, size, -EINVAL, "runs past 0x290");
	img[0x201] = 0x62; /* exactly through init_size: accepted */
	mem = new_mem();
	o = opts_for(img, size);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), 0);
	vmm_mem_destroy(mem);

	size = fresh();
	h = tbz_hdr(img);
	h.setup_sects = 255;
	tbz_set_hdr(img, &h);
	expect_fail(img, size, -EINVAL, "255 setup sectors");

	size = fresh();
	h = tbz_hdr(img);
	h.syssize = 0;
	tbz_set_hdr(img, &h);
	expect_fail(img, size, -EINVAL, "syssize is 0");
	h.syssize = 0x10000000;
	tbz_set_hdr(img, &h);
	expect_fail(img, size, -EINVAL, "runs past the end of the image");
	h.syssize = 0xffffffff;
	tbz_set_hdr(img, &h);
	expect_fail(img, size, -EINVAL, "runs past the end of the image");

	size = fresh();
	h = tbz_hdr(img);
	h.init_size = 0x1000;
	tbz_set_hdr(img, &h);
	expect_fail(img, size, -EINVAL, "init_size 0x1000 is smaller");

	size = fresh();
	h = tbz_hdr(img);
	h.kernel_alignment = 0x300000;
	tbz_set_hdr(img, &h);
	expect_fail(img, size, -EINVAL, "not a power of two");
	h.kernel_alignment = 0;
	tbz_set_hdr(img, &h);
	expect_fail(img, size, -EINVAL, "not a power of two");

	size = fresh();
	h = tbz_hdr(img);
	h.relocatable_kernel = 0;
	h.pref_address = 0xfffffffffff00000ull;
	tbz_set_hdr(img, &h);
	expect_fail(img, size, -EINVAL, "wraps around");
	h.pref_address = 0xfffff000ull; /* would cross 4 GiB */
	tbz_set_hdr(img, &h);
	expect_fail(img, size, -ENOEXEC, "not relocatable");

	/* an initrd_addr_max below 1 MiB leaves no room for any initrd */
	size = fresh();
	h = tbz_hdr(img);
	h.initrd_addr_max = 0xfffff;
	tbz_set_hdr(img, &h);
	mem = new_mem();
	o = opts_for(img, size);
	o.initrd = "x";
	o.initrd_size = 1;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), -ENOSPC);
	vmm_mem_destroy(mem);
}

static void test_bad_options(void **state)
{
	(void)state;
	size_t size = fresh();
	vmm_mem *mem = new_mem();
	vmm_linux_opts o = opts_for(img, size);
	assert_int_equal(vmm_linux_load(NULL, NULL, &o, NULL), -EINVAL);
	assert_int_equal(vmm_linux_load(mem, NULL, NULL, NULL), -EINVAL);
	o.protocol = (vmm_linux_protocol)7;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), -EINVAL);
	o = opts_for(img, size);
	o.protocol = VMM_LINUX_PVH;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), -ENOEXEC);
	assert_non_null(strstr(vmm_last_error(), "this is a bzImage"));
	o = opts_for(img, size);
	o.initrd_size = 5;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), -EINVAL);
	o = opts_for(img, size);
	vmm_linux_setup_data sd = { VMM_LINUX_SETUP_DTB, NULL, 4 };
	o.setup_data = &sd;
	o.n_setup_data = 1;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), -EINVAL);
	o.n_setup_data = 17;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), -EINVAL);
	o = opts_for(img, size);
	o.size = 4;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), -EINVAL);
	/* a struct from an older caller (only up to the kernel buffer) still works */
	o = opts_for(img, size);
	o.size = offsetof(vmm_linux_opts, initrd_path);
	o.cmdline = "ignored: beyond the caller's size";
	vmm_linux_info info;
	assert_int_equal(vmm_linux_load(mem, NULL, &o, &info), 0);
	assert_int_equal(info.cmdline_len, 0);
	/* garbage */
	static uint8_t junk[4096];
	memset(junk, 0x11, sizeof junk);
	o = opts_for(junk, sizeof junk);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), -ENOEXEC);
	assert_non_null(strstr(vmm_last_error(), "not an ELF vmlinux either"));
	o = opts_for(junk, 10);
	assert_int_equal(vmm_linux_load(mem, NULL, &o, NULL), -ENOEXEC);
	assert_non_null(strstr(vmm_last_error(), "ends before the boot flag"));
	assert_non_null(strstr(vmm_last_error(), "not an ELF vmlinux either"));
	vmm_mem_destroy(mem);
}

static void test_probe(void **state)
{
	(void)state;
	size_t size = fresh();
	vmm_linux_kernel k;
	assert_int_equal(vmm_linux_probe(img, size, &k), 0);
	assert_int_equal(k.protocol, VMM_LINUX_BZIMAGE);
	assert_int_equal(k.boot_version, 0x020f);
	assert_int_equal(k.xloadflags, XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G);
	assert_true(k.relocatable);
	assert_false(k.has_pvh);
	assert_int_equal(k.cmdline_max, 2047);
	assert_int_equal(k.pref_address, TBZ_PREF);
	assert_int_equal(k.alignment, TBZ_ALIGN);
	assert_int_equal(k.init_size, TBZ_INIT_SIZE);
	assert_int_equal(k.initrd_max, 0x7fffffff);
	assert_int_equal(k.entry, 0x200);
	assert_int_equal(vmm_linux_probe(NULL, size, &k), -EINVAL);
	assert_int_equal(vmm_linux_probe(img, 0x100, &k), -ENOEXEC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_everything),
		cmocka_unit_test(test_no_initrd_no_cmdline),
		cmocka_unit_test(test_trailer_and_setup_sects_zero),
		cmocka_unit_test(test_relocation),
		cmocka_unit_test(test_boot_area_must_be_ram),
		cmocka_unit_test(test_initrd_limits),
		cmocka_unit_test(test_initrd_file),
		cmocka_unit_test(test_cmdline_limits),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_bad_fields),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_probe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
