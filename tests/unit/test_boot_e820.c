/* Unit tests for vmm_e820_build (the e820 map of a memory map) and for the placement
 * helpers the loaders use (vmm_boot_claim, vmm_boot_alloc, vmm_boot_fits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <libvmm/libvmm.h>
#include "boot/boot_internal.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

struct region { uint64_t gpa, len; uint32_t flags; };

static vmm_mem *make(const struct region *r, size_t n)
{
	vmm_mem *mem = NULL;
	assert_int_equal(vmm_mem_create(&mem), 0);
	for (size_t i = 0; i < n; i++) {
		vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
		o.gpa = r[i].gpa;
		o.len = r[i].len;
		o.flags = r[i].flags;
		o.backing = VMM_MEM_ANON;
		assert_int_equal(vmm_mem_add_region(mem, &o), 0);
	}
	return mem;
}

static void expect_map(vmm_mem *mem, const vmm_e820_entry *extra, size_t nextra,
		       const vmm_e820_entry *want, size_t nwant)
{
	vmm_e820_entry got[16];
	size_t n = 99;
	if (vmm_e820_build(mem, extra, nextra, got, 16, &n))
		fail_msg("%s", vmm_last_error());
	if (n != nwant) {
		for (size_t i = 0; i < n; i++)
			print_message("  [%#llx, +%#llx) type %u\n", (unsigned long long)got[i].addr,
				      (unsigned long long)got[i].size, got[i].type);
		fail_msg("%zu entries, expected %zu", n, nwant);
	}
	for (size_t i = 0; i < n; i++) {
		if (got[i].addr != want[i].addr || got[i].size != want[i].size || got[i].type != want[i].type)
			fail_msg("entry %zu: [%#llx, +%#llx) type %u, expected [%#llx, +%#llx) type %u", i,
				 (unsigned long long)got[i].addr, (unsigned long long)got[i].size,
				 got[i].type, (unsigned long long)want[i].addr,
				 (unsigned long long)want[i].size, want[i].type);
	}
}

static void test_plain_ram(void **state)
{
	(void)state;
	struct region r[] = { { 0, 64 * MiB, 0 } };
	vmm_mem *mem = make(r, 1);
	vmm_e820_entry want[] = { { 0, 0x9fc00, 1 }, { 0x9fc00, 0x60400, 2 }, { MiB, 63 * MiB, 1 } };
	expect_map(mem, NULL, 0, want, 3);
	vmm_mem_destroy(mem);
}

static void test_split_maps(void **state)
{
	(void)state;
	/* low RAM ending inside the hole, a ROM at the BIOS area, adjacent regions merged,
	 * RAM above 4 GiB */
	struct region r[] = {
		{ 0, 0xa0000, 0 },
		{ 0xf0000, 0x10000, VMM_MEM_READONLY },
		{ MiB, MiB, 0 },
		{ 2 * MiB, 2 * MiB, 0 },
		{ 4 * GiB, GiB, 0 },
	};
	vmm_mem *mem = make(r, 5);
	vmm_e820_entry want[] = {
		{ 0, 0x9fc00, 1 }, { 0x9fc00, 0x400, 2 }, { 0xf0000, 0x10000, 2 }, { MiB, 3 * MiB, 1 },
		{ 4 * GiB, GiB, 1 },
	};
	expect_map(mem, NULL, 0, want, 5);

	/* overrides: ACPI splitting RAM, an MMIO window outside RAM, a later override
	 * winning over an earlier one, and one covering the ROM's neighbour */
	vmm_e820_entry extra[] = {
		{ 2 * MiB, 64 * KiB, VMM_E820_ACPI },
		{ 0xfec00000, 0x1000, VMM_E820_RESERVED },
		{ 2 * MiB + 32 * KiB, 64 * KiB, VMM_E820_NVS },
		{ 0xe0000, 0x10000, VMM_E820_RESERVED },
	};
	vmm_e820_entry want2[] = {
		{ 0, 0x9fc00, 1 }, { 0x9fc00, 0x400, 2 }, { 0xe0000, 0x20000, 2 },
		{ MiB, MiB, 1 }, { 2 * MiB, 32 * KiB, 3 }, { 2 * MiB + 32 * KiB, 64 * KiB, 4 },
		{ 2 * MiB + 96 * KiB, 2 * MiB - 96 * KiB, 1 }, { 0xfec00000, 0x1000, 2 },
		{ 4 * GiB, GiB, 1 },
	};
	expect_map(mem, extra, 4, want2, 9);
	vmm_mem_destroy(mem);
}

static void test_errors(void **state)
{
	(void)state;
	struct region r[] = { { 0, 2 * MiB, 0 } };
	vmm_mem *mem = make(r, 1);
	vmm_e820_entry out[4];
	size_t n;
	vmm_e820_entry bad[] = { { MiB, 0, 1 }, { ~0ull - 10, 20, 1 }, { MiB, 4096, 6 }, { MiB, 4096, 0 } };
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(vmm_e820_build(mem, &bad[i], 1, out, 4, &n), -EINVAL);
	assert_int_equal(vmm_e820_build(NULL, NULL, 0, out, 4, &n), -EINVAL);
	assert_int_equal(vmm_e820_build(mem, NULL, 1, out, 4, &n), -EINVAL);
	assert_int_equal(vmm_e820_build(mem, NULL, 0, NULL, 4, &n), -EINVAL);
	assert_int_equal(vmm_e820_build(mem, NULL, 0, out, 4, NULL), -EINVAL);
	/* too small an output: -E2BIG and the count needed; max 0 just counts */
	assert_int_equal(vmm_e820_build(mem, NULL, 0, out, 2, &n), -E2BIG);
	assert_int_equal(n, 3);
	assert_int_equal(out[1].type, 2);
	assert_int_equal(vmm_e820_build(mem, NULL, 0, NULL, 0, &n), -E2BIG);
	assert_int_equal(n, 3);
	vmm_mem_destroy(mem);

	/* an empty memory map is an empty e820 map */
	assert_int_equal(vmm_mem_create(&mem), 0);
	assert_int_equal(vmm_e820_build(mem, NULL, 0, out, 4, &n), 0);
	assert_int_equal(n, 0);
	vmm_mem_destroy(mem);
}

/* More than 128 entries (alternating RAM and ROM) cannot go into boot_params. */
static void test_too_many_entries(void **state)
{
	(void)state;
	vmm_mem *mem = NULL;
	assert_int_equal(vmm_mem_create(&mem), 0);
	for (unsigned i = 0; i < 140; i++) {
		vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
		o.gpa = 16 * MiB + i * 4096ull;
		o.len = 4096;
		o.flags = i % 2 ? VMM_MEM_READONLY : 0;
		o.backing = VMM_MEM_ANON;
		assert_int_equal(vmm_mem_add_region(mem, &o), 0);
	}
	vmm_e820_entry out[VMM_E820_MAX_ENTRIES];
	size_t n;
	assert_int_equal(vmm_e820_build(mem, NULL, 0, out, VMM_E820_MAX_ENTRIES, &n), -E2BIG);
	assert_int_equal(n, 140);
	assert_non_null(strstr(vmm_last_error(), "140 entries"));
	vmm_mem_destroy(mem);
}

/* ---- placement ---- */

static void test_claim(void **state)
{
	(void)state;
	struct region r[] = { { 0, 16 * MiB, 0 }, { 32 * MiB, MiB, VMM_MEM_READONLY } };
	vmm_mem *mem = make(r, 2);
	struct vmm_boot_plan p = { .mem = mem };
	assert_int_equal(vmm_boot_claim(&p, MiB, MiB, BOOT_CLAIM_RAM, "one"), 0);
	assert_int_equal(vmm_boot_claim(&p, MiB + 4096, 1, BOOT_CLAIM_RAM, "two"), -ENOSPC);
	assert_non_null(strstr(vmm_last_error(), "two: [0x101000, 0x101001) overlaps the one at [0x100000, 0x200000)"));
	assert_int_equal(vmm_boot_claim(&p, 2 * MiB, MiB, BOOT_CLAIM_RAM, "adjacent"), 0);
	assert_int_equal(vmm_boot_claim(&p, 15 * MiB, 2 * MiB, BOOT_CLAIM_RAM, "past"), -EFAULT);
	assert_int_equal(vmm_boot_claim(&p, 32 * MiB, 4096, BOOT_CLAIM_RAM, "rom"), -EFAULT);
	assert_int_equal(vmm_boot_claim(&p, 32 * MiB, 4096, 0, "not ram"), 0);
	assert_int_equal(vmm_boot_claim(&p, ~0ull, 2, 0, "wrap"), -EINVAL);
	assert_int_equal(vmm_boot_claim(&p, 5 * MiB, 0, BOOT_CLAIM_RAM, "empty"), 0);
	/* shared claims may overlap each other, but nothing else */
	assert_int_equal(vmm_boot_claim(&p, 8 * MiB, MiB, BOOT_CLAIM_SHARED, "s1"), 0);
	assert_int_equal(vmm_boot_claim(&p, 8 * MiB, 2 * MiB, BOOT_CLAIM_SHARED, "s2"), 0);
	assert_int_equal(vmm_boot_claim(&p, 9 * MiB, MiB, 0, "plain"), -ENOSPC);
	assert_false(vmm_boot_fits(&p, 8 * MiB, 1));
	assert_true(vmm_boot_fits(&p, 10 * MiB, MiB));
	assert_false(vmm_boot_fits(&p, 10 * MiB, 0));
	assert_false(vmm_boot_fits(&p, 32 * MiB + 8192, 1));
	vmm_mem_destroy(mem);
}

static void test_alloc(void **state)
{
	(void)state;
	struct region r[] = { { 0, 16 * MiB, 0 }, { 16 * MiB, 4 * MiB, VMM_MEM_READONLY }, { 20 * MiB, 8 * MiB, 0 } };
	vmm_mem *mem = make(r, 3);
	struct vmm_boot_plan p = { .mem = mem };
	uint64_t at;
	/* top-down: the top of the last writable region, below the limit */
	assert_int_equal(vmm_boot_alloc(&p, 5000, 4096, MiB, ~0ull, true, "a", &at), 0);
	assert_int_equal(at, 28 * MiB - 8192);
	/* next one goes below it; then one too big for the space left there drops into the
	 * first region */
	assert_int_equal(vmm_boot_alloc(&p, 4096, 4096, MiB, ~0ull, true, "b", &at), 0);
	assert_int_equal(at, 28 * MiB - 12288);
	assert_int_equal(vmm_boot_alloc(&p, 8 * MiB, MiB, MiB, ~0ull, true, "c", &at), 0);
	assert_int_equal(at, 8 * MiB);
	/* a limit inside a region */
	assert_int_equal(vmm_boot_alloc(&p, MiB, MiB, MiB, 22 * MiB + 4096, true, "d", &at), 0);
	assert_int_equal(at, 21 * MiB);
	/* bottom-up with alignment skips taken ranges */
	assert_int_equal(vmm_boot_claim(&p, 2 * MiB, 4096, BOOT_CLAIM_RAM, "pin"), 0);
	assert_int_equal(vmm_boot_alloc(&p, MiB, 2 * MiB, MiB, ~0ull, false, "e", &at), 0);
	assert_int_equal(at, 4 * MiB);
	assert_int_equal(vmm_boot_alloc(&p, 4096, 4096, MiB, ~0ull, false, "f", &at), 0);
	assert_int_equal(at, MiB);
	/* nothing big enough anywhere */
	assert_int_equal(vmm_boot_alloc(&p, 9 * MiB, 4096, MiB, ~0ull, true, "huge", &at), -ENOSPC);
	assert_non_null(strstr(vmm_last_error(), "huge: no room for 0x900000 bytes"));
	assert_int_equal(vmm_boot_alloc(&p, 4096, 4096, 30 * MiB, ~0ull, false, "high", &at), -ENOSPC);
	assert_int_equal(vmm_boot_alloc(&p, 4096, 4096, MiB, MiB, true, "none", &at), -ENOSPC);
	/* bad requests */
	assert_int_equal(vmm_boot_alloc(&p, 0, 4096, 0, ~0ull, true, "zero", &at), -EINVAL);
	assert_int_equal(vmm_boot_alloc(&p, 1, 3, 0, ~0ull, true, "align", &at), -EINVAL);
	/* alignment near the top of the address space does not wrap */
	assert_int_equal(vmm_boot_alloc(&p, 1, 1ull << 63, MiB, ~0ull, false, "wrap", &at), -ENOSPC);
	vmm_mem_destroy(mem);
}

/* Many small taken ranges: the searches stay bounded and find the one gap. */
static void test_alloc_fragmented(void **state)
{
	(void)state;
	struct region r[] = { { 0, 8 * MiB, 0 } };
	vmm_mem *mem = make(r, 1);
	struct vmm_boot_plan p = { .mem = mem };
	for (unsigned i = 0; i < 100; i++)
		if (i != 37)
			assert_int_equal(vmm_boot_claim(&p, MiB + i * 8192ull, 8192, BOOT_CLAIM_RAM, "x"), 0);
	assert_int_equal(vmm_boot_claim(&p, MiB + 100 * 8192ull, 7 * MiB - 100 * 8192ull, BOOT_CLAIM_RAM, "rest"), 0);
	uint64_t at;
	assert_int_equal(vmm_boot_alloc(&p, 8192, 4096, MiB, ~0ull, true, "gap", &at), 0);
	assert_int_equal(at, MiB + 37 * 8192ull);
	assert_int_equal(vmm_boot_alloc(&p, 4096, 4096, MiB, ~0ull, false, "none", &at), -ENOSPC);
	vmm_mem_destroy(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_ram),
		cmocka_unit_test(test_split_maps),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_too_many_entries),
		cmocka_unit_test(test_claim),
		cmocka_unit_test(test_alloc),
		cmocka_unit_test(test_alloc_fragmented),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
