/* The Linux loaders' vCPU setup on real KVM: a fake bzImage, a fake PVH vmlinux and a
 * fake vmlinux without a PVH note, each with a few instructions of "kernel" at its
 * entry that report, through the exit port, what the boot protocol promises them:
 * RSI/EBX = the boot_params / hvm_start_info GPA the loader reported, the command-line
 * pointer read through it, the code segment selector, interrupts off, the paging mode. */
#include "harness/harness.h"

#include <string.h>

#include "unit/test_boot_images.h"

#define RAM (64ull << 20)

/* 64-bit: out(esi); out([rsi + 0x228] = cmd_line_ptr); out(cs); out(ds); out(rflags). */
static const uint8_t code64[] = {
	0x89, 0xf0,                         /* mov %esi, %eax */
	0xe7, 0xf4,                         /* out %eax, $0xf4 */
	0x8b, 0x86, 0x28, 0x02, 0x00, 0x00, /* mov 0x228(%rsi), %eax */
	0xe7, 0xf4,
	0x8c, 0xc8,                         /* mov %cs, %eax */
	0x25, 0xff, 0xff, 0x00, 0x00,       /* and $0xffff, %eax */
	0xe7, 0xf4,
	0x8c, 0xd8,                         /* mov %ds, %eax */
	0x25, 0xff, 0xff, 0x00, 0x00,
	0xe7, 0xf4,
	0x9c,                               /* pushfq */
	0x58,                               /* pop %rax */
	0xe7, 0xf4,
	0xf4,                               /* hlt (never reached: the test stops first) */
};

/* 32-bit: out(ebx); out([ebx] = magic); out([ebx + 0x18] = cmdline_paddr); out(cs);
 * out(cr0); out(cr4). */
static const uint8_t code32[] = {
	0x89, 0xd8,                   /* mov %ebx, %eax */
	0xe7, 0xf4,                   /* out %eax, $0xf4 */
	0x8b, 0x03,                   /* mov (%ebx), %eax */
	0xe7, 0xf4,
	0x8b, 0x43, 0x18,             /* mov 0x18(%ebx), %eax */
	0xe7, 0xf4,
	0x8c, 0xc8,                   /* mov %cs, %eax */
	0x25, 0xff, 0xff, 0x00, 0x00, /* and $0xffff, %eax */
	0xe7, 0xf4,
	0x0f, 0x20, 0xc0,             /* mov %cr0, %eax */
	0xe7, 0xf4,
	0x0f, 0x20, 0xe0,             /* mov %cr4, %eax */
	0xe7, 0xf4,
	0xf4,
};

static uint8_t image[1 << 16];

/* The next exit must be the guest writing a value to the exit port; returns it. */
static uint64_t next_code(kt_vm *t)
{
	vmm_exit e;
	int r = kt_run(t, 0, &e, 0);
	char buf[256];
	if (r != 0 || e.reason != VMM_EXIT_GUEST)
		fail_msg("run: %d, exit %s (%s)", r, kt_exit_str(&e, buf, sizeof buf), vmm_last_error());
	return e.u.guest.code;
}

static kt_vm *new_vm(void **state)
{
	kt_opts o = { .guest = NULL, .ram = RAM };
	return kt_create(state, &o);
}

static void check_entry_regs(kt_vm *t, const vmm_linux_info *info, bool pvh)
{
	vmm_regs r;
	kt_check(vmm_vcpu_get_regs(t->vcpu[0], &r), "get_regs");
	assert_int_equal(r.rip, info->entry);
	assert_int_equal(pvh ? r.rbx : r.rsi, info->boot_params);
	assert_int_equal(pvh ? r.rsi : r.rbx, 0);
	assert_int_equal(r.rdi, 0);
	assert_int_equal(r.rbp, 0);
	assert_int_equal(r.rflags & 0x200, 0); /* IF */
}

static void run_64bit_checks(kt_vm *t, const vmm_linux_info *info)
{
	assert_int_equal(next_code(t), info->boot_params);
	assert_int_equal(next_code(t), info->cmdline_addr);
	assert_int_equal(next_code(t), 0x10); /* __BOOT_CS */
	assert_int_equal(next_code(t), 0x18); /* __BOOT_DS */
	assert_int_equal(next_code(t) & 0x200, 0); /* interrupts off */
}

static void test_bzimage_entry(void **state)
{
	kt_vm *t = new_vm(state);
	struct tbz_params p = { .code = code64, .code_len = sizeof code64 };
	size_t size = tbz_build(image, sizeof image, &p);
	assert_true(size > 0);
	vmm_linux_opts o = VMM_LINUX_OPTS_INIT;
	o.kernel = image;
	o.kernel_size = size;
	o.cmdline = "console=ttyS0";
	o.initrd = "fake initrd";
	o.initrd_size = 11;
	vmm_linux_info info;
	kt_check(vmm_linux_load(t->mem, t->vcpu[0], &o, &info), "vmm_linux_load");
	assert_int_equal(info.protocol, VMM_LINUX_BZIMAGE);
	assert_int_equal(info.entry, TBZ_PREF + 0x200);
	check_entry_regs(t, &info, false);
	vmm_sregs s;
	kt_check(vmm_vcpu_get_sregs(t->vcpu[0], &s), "get_sregs");
	assert_int_equal(s.cs.selector, 0x10);
	assert_int_equal(s.cs.l, 1);
	assert_int_equal(s.ss.selector, 0x18);
	assert_true(s.efer & (1u << 10)); /* LMA */
	run_64bit_checks(t, &info);

	/* setting the vCPU up again (a reboot without reloading) starts over */
	kt_check(vmm_linux_setup_vcpu(t->vcpu[0], &info), "vmm_linux_setup_vcpu");
	assert_int_equal(next_code(t), info.boot_params);
	kt_destroy(t);
	*state = NULL;
}

static void test_elf64_entry(void **state)
{
	kt_vm *t = new_vm(state);
	struct telf_params p = { .note_len = 0, .code64 = code64, .code64_len = sizeof code64 };
	size_t size = telf_build(image, sizeof image, &p);
	vmm_linux_opts o = VMM_LINUX_OPTS_INIT;
	o.kernel = image;
	o.kernel_size = size;
	o.cmdline = "root=/dev/vda";
	vmm_linux_info info;
	kt_check(vmm_linux_load(t->mem, t->vcpu[0], &o, &info), "vmm_linux_load");
	assert_int_equal(info.protocol, VMM_LINUX_ELF64);
	assert_int_equal(info.entry, TELF_ENTRY64);
	check_entry_regs(t, &info, false);
	run_64bit_checks(t, &info);
	kt_destroy(t);
	*state = NULL;
}

static void test_pvh_entry(void **state)
{
	kt_vm *t = new_vm(state);
	struct telf_params p = { .note_len = 8, .pvh_code = code32, .pvh_code_len = sizeof code32 };
	size_t size = telf_build(image, sizeof image, &p);
	vmm_linux_opts o = VMM_LINUX_OPTS_INIT;
	o.kernel = image;
	o.kernel_size = size;
	o.cmdline = "console=hvc0";
	vmm_linux_info info;
	kt_check(vmm_linux_load(t->mem, t->vcpu[0], &o, &info), "vmm_linux_load");
	assert_int_equal(info.protocol, VMM_LINUX_PVH);
	assert_int_equal(info.entry, TELF_PVH_ENTRY);
	check_entry_regs(t, &info, true);
	vmm_sregs s;
	kt_check(vmm_vcpu_get_sregs(t->vcpu[0], &s), "get_sregs");
	assert_int_equal(s.cs.base, 0);
	assert_int_equal(s.cs.limit, 0xffffffffu);
	assert_int_equal(s.cs.db, 1);
	assert_int_equal(s.cs.l, 0);
	assert_int_equal(s.tr.limit, 0x67);
	assert_int_equal(s.efer & (1u << 10), 0);

	assert_int_equal(next_code(t), info.boot_params);
	assert_int_equal(next_code(t), 0x336ec578);
	assert_int_equal(next_code(t), info.cmdline_addr);
	assert_int_equal(next_code(t), 0x10);
	uint64_t cr0 = next_code(t);
	assert_int_equal(cr0 & 0x80000001u, 1); /* PE on, paging off */
	assert_int_equal(next_code(t), 0);      /* CR4 */
	kt_destroy(t);
	*state = NULL;
}

/* The boot vCPU must belong to the VM whose memory is loaded. */
static void test_wrong_vm(void **state)
{
	kt_vm *t = new_vm(state);
	vmm_mem *other = NULL;
	kt_check(vmm_mem_create(&other), "vmm_mem_create");
	size_t size = tbz_build(image, sizeof image, NULL);
	vmm_linux_opts o = VMM_LINUX_OPTS_INIT;
	o.kernel = image;
	o.kernel_size = size;
	assert_int_equal(vmm_linux_load(other, t->vcpu[0], &o, NULL), -EINVAL);
	vmm_mem_destroy(other);
	vmm_linux_info bad = { .protocol = VMM_LINUX_AUTO };
	assert_int_equal(vmm_linux_setup_vcpu(t->vcpu[0], &bad), -EINVAL);
	assert_int_equal(vmm_linux_setup_vcpu(NULL, &bad), -EINVAL);
	kt_destroy(t);
	*state = NULL;
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_bzimage_entry, kt_teardown),
		cmocka_unit_test_teardown(test_elf64_entry, kt_teardown),
		cmocka_unit_test_teardown(test_pvh_entry, kt_teardown),
		cmocka_unit_test_teardown(test_wrong_vm, kt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
