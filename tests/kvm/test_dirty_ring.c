/* Dirty-page tracking in both KVM modes — per-slot bitmap and per-vCPU dirty ring —
 * reports exactly the pages a guest wrote, including when the guest dirties more pages
 * than the ring holds (KVM_EXIT_DIRTY_RING_FULL is harvested inside vmm_vcpu_run). */
#include "harness/harness.h"

#include <stdio.h>
#include <string.h>
#include <linux/kvm.h>

#define DATA_GPA 0x4000000ull
#define DATA_PAGES 4096u

/* CPL 3: for rcx pages from rdi: store one byte per page; then exit code 7 on 0xf4. */
static const uint8_t writer[] = {
	0xc6, 0x07, 0x01,                         /* mov byte [rdi], 1 */
	0x48, 0x81, 0xc7, 0x00, 0x10, 0x00, 0x00, /* add rdi, 0x1000 */
	0x48, 0xff, 0xc9,                         /* dec rcx */
	0x75, 0xf1,                               /* jnz loop */
	0xb8, 0x07, 0x00, 0x00, 0x00,             /* mov eax, 7 */
	0xe7, 0xf4,                               /* out 0xf4, eax */
	0xeb, 0xfe,                               /* jmp $ */
};

/* True if this process maps a vCPU's dirty ring: KVM serves it from the vCPU fd at page
 * KVM_DIRTY_LOG_PAGE_OFFSET, which /proc/self/maps shows as an anon_inode:kvm-vcpu
 * mapping at that file offset. This tells ring mode from a silent fall-back to the
 * bitmap, which would report the same pages. */
static bool dirty_ring_mapped(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	assert_non_null(f);
	char line[512];
	bool found = false;
	while (!found && fgets(line, sizeof line, f)) {
		unsigned long long off;
		char perms[8];
		if (!strstr(line, "kvm-vcpu"))
			continue;
		if (sscanf(line, "%*x-%*x %7s %llx", perms, &off) == 2 &&
		    off == (unsigned long long)KVM_DIRTY_LOG_PAGE_OFFSET * 4096u)
			found = true;
	}
	fclose(f);
	return found;
}

static void run_writer(uint32_t ring_entries, uint64_t first_page, uint64_t pages)
{
	vmm_vm_opts vo = VMM_VM_OPTS_INIT;
	vo.dirty_ring_entries = ring_entries;
	vmm_vm *vm;
	kt_check(vmm_vm_create(&vm, &vo), "vmm_vm_create");
	vmm_mem *mem = vmm_vm_mem(vm);
	vmm_mem_region_opts ram = VMM_MEM_REGION_OPTS_INIT;
	ram.len = 16ull << 20;
	kt_check(vmm_mem_add_region(mem, &ram), "add RAM");
	vmm_mem_region_opts data = VMM_MEM_REGION_OPTS_INIT;
	data.gpa = DATA_GPA;
	data.len = (uint64_t)DATA_PAGES * VMM_PAGE_SIZE;
	kt_check(vmm_mem_add_region(mem, &data), "add data region");
	kt_check(vmm_mem_write(mem, 0x100000, writer, sizeof writer), "write code");

	vmm_vcpu *cpu;
	kt_check(vmm_vcpu_create(&cpu, vm, NULL), "vmm_vcpu_create");
	vmm_long_mode_opts lm = VMM_LONG_MODE_OPTS_INIT;
	lm.cpl = 3;
	lm.entry = 0x100000;
	lm.stack = 0x800000;
	kt_check(vmm_vcpu_setup_long_mode(cpu, &lm), "long mode");
	vmm_regs regs;
	kt_check(vmm_vcpu_get_regs(cpu, &regs), "get regs");
	regs.rdi = DATA_GPA + first_page * VMM_PAGE_SIZE;
	regs.rcx = pages;
	kt_check(vmm_vcpu_set_regs(cpu, &regs), "set regs");

	assert_int_equal(dirty_ring_mapped(), ring_entries != 0);
	kt_check(vmm_mem_dirty_start(mem), "dirty start");
	vmm_exit exit;
	kt_check(vmm_vcpu_run(cpu, &exit), "run");
	assert_int_equal(exit.reason, VMM_EXIT_GUEST);
	assert_int_equal(exit.u.guest.code, 7);

	uint64_t bm[DATA_PAGES / 64], want[DATA_PAGES / 64] = { 0 };
	for (uint64_t p = first_page; p < first_page + pages; p++)
		want[p / 64] |= 1ull << (p % 64);
	kt_check(vmm_mem_dirty_bitmap(mem, DATA_GPA, bm, DATA_PAGES / 64), "dirty bitmap");
	for (unsigned w = 0; w < DATA_PAGES / 64; w++)
		if (bm[w] != want[w])
			fail_msg("ring %u: dirty word %u = %#llx, expected %#llx", ring_entries, w,
				 (unsigned long long)bm[w], (unsigned long long)want[w]);
	/* Reported once: a second fetch finds the region clean. */
	kt_check(vmm_mem_dirty_bitmap(mem, DATA_GPA, bm, DATA_PAGES / 64), "dirty bitmap again");
	for (unsigned w = 0; w < DATA_PAGES / 64; w++)
		assert_int_equal(bm[w], 0);
	vmm_vm_destroy(vm);
}

static void test_bitmap_mode(void **state)
{
	(void)state;
	run_writer(0, 5, 300);
}

static void test_ring_mode(void **state)
{
	(void)state;
	run_writer(512, 5, 300);
}

static void test_ring_full(void **state)
{
	(void)state;
	/* 3000 dirty pages through a 512-entry ring: it fills several times. */
	run_writer(512, 17, 3000);
}

static void test_ring_bad_size(void **state)
{
	(void)state;
	vmm_vm_opts vo = VMM_VM_OPTS_INIT;
	vmm_vm *vm = NULL;
	vo.dirty_ring_entries = 1000; /* not a power of two */
	assert_int_equal(vmm_vm_create(&vm, &vo), -EINVAL);
	vo.dirty_ring_entries = 64;   /* below the minimum */
	assert_int_equal(vmm_vm_create(&vm, &vo), -EINVAL);
	assert_null(vm);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bitmap_mode),
		cmocka_unit_test(test_ring_mode),
		cmocka_unit_test(test_ring_full),
		cmocka_unit_test(test_ring_bad_size),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
