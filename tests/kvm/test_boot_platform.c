/* What vmm_linux_prepare_vm and vmm_linux_prepare_vcpu leave in KVM: both PICs of the
 * in-kernel irqchip masked (read back with KVM_GET_IRQCHIP) and nothing else changed;
 * IA32_APIC_BASE in x2APIC mode with the BSP flag on vCPU 0 only; idempotence; the
 * split irqchip (no PIC); and a clear error when the vCPU's CPUID has no x2APIC. */
#include "harness/harness.h"

#include <string.h>

#include "core/vm_internal.h"
#include "kvm/kvm.h"

#define MSR_APIC_BASE 0x1bu

static void read_pic(vmm_vm *vm, uint32_t chip, struct kvm_irqchip *out)
{
	memset(out, 0, sizeof *out);
	out->chip_id = chip;
	assert_int_equal(vmm_kvm_get_irqchip(vmm_vm_fd(vm), out), 0);
}

static uint64_t apic_base(vmm_vcpu *v)
{
	const uint32_t idx = MSR_APIC_BASE;
	uint64_t val = 0;
	kt_check(vmm_vcpu_get_msrs(v, &idx, &val, 1), "get IA32_APIC_BASE");
	return val;
}

static void test_pic_masked(void **state)
{
	(void)state;
	vmm_vm *vm;
	kt_check(vmm_vm_create(&vm, NULL), "vmm_vm_create");
	/* The irqchip is made in KVM when first needed; read it as KVM made it. */
	kt_check(vmm_vm_realize_irqchip(vm), "vmm_vm_realize_irqchip");
	struct kvm_irqchip before[2], after[2], ioapic_before, ioapic_after;
	for (uint32_t c = 0; c < 2; c++)
		read_pic(vm, c, &before[c]);
	read_pic(vm, KVM_IRQCHIP_IOAPIC, &ioapic_before);
	kt_check(vmm_linux_prepare_vm(vm), "vmm_linux_prepare_vm");
	for (uint32_t c = 0; c < 2; c++) {
		read_pic(vm, c, &after[c]);
		assert_int_equal(after[c].chip.pic.imr, 0xff);
		/* Only the mask changed: vector base, ICW state, IRR/ISR are KVM's. */
		after[c].chip.pic.imr = before[c].chip.pic.imr;
		assert_memory_equal(&after[c].chip.pic, &before[c].chip.pic, sizeof after[c].chip.pic);
	}
	read_pic(vm, KVM_IRQCHIP_IOAPIC, &ioapic_after);
	assert_memory_equal(&ioapic_after.chip.ioapic, &ioapic_before.chip.ioapic, sizeof ioapic_after.chip.ioapic);
	kt_check(vmm_linux_prepare_vm(vm), "vmm_linux_prepare_vm again");
	vmm_vm_destroy(vm);

	/* Split irqchip: no PIC in the kernel, nothing to do. */
	vmm_vm_opts o = VMM_VM_OPTS_INIT;
	o.irqchip = VMM_IRQCHIP_SPLIT;
	kt_check(vmm_vm_create(&vm, &o), "vmm_vm_create(split)");
	kt_check(vmm_linux_prepare_vm(vm), "vmm_linux_prepare_vm(split)");
	vmm_vm_destroy(vm);
}

static void test_x2apic(void **state)
{
	(void)state;
	vmm_vm *vm;
	vmm_vcpu *v[3];
	kt_check(vmm_vm_create(&vm, NULL), "vmm_vm_create");
	for (uint32_t i = 0; i < 3; i++) {
		vmm_vcpu_opts co = VMM_VCPU_OPTS_INIT;
		co.id = i;
		kt_check(vmm_vcpu_create(&v[i], vm, &co), "vmm_vcpu_create");
	}
	assert_int_equal(apic_base(v[0]), 0xfee00900ull); /* KVM's reset value: xAPIC, BSP */
	for (uint32_t i = 0; i < 3; i++)
		kt_check(vmm_linux_prepare_vcpu(v[i]), "vmm_linux_prepare_vcpu");
	assert_int_equal(apic_base(v[0]), 0xfee00d00ull);
	assert_int_equal(apic_base(v[1]), 0xfee00c00ull);
	assert_int_equal(apic_base(v[2]), 0xfee00c00ull);
	kt_check(vmm_linux_prepare_vcpu(v[1]), "vmm_linux_prepare_vcpu again");
	assert_int_equal(apic_base(v[1]), 0xfee00c00ull);
	vmm_vm_destroy(vm);
}

static void test_no_x2apic_in_cpuid(void **state)
{
	(void)state;
	vmm_vm *vm;
	vmm_vcpu *v;
	vmm_cpuid *c;
	kt_check(vmm_vm_create(&vm, NULL), "vmm_vm_create");
	kt_check(vmm_cpuid_create_default(&c, vm, 0), "vmm_cpuid_create_default");
	kt_check(vmm_cpuid_hide_feature(c, "x2apic"), "hide x2apic");
	vmm_vcpu_opts co = VMM_VCPU_OPTS_INIT;
	co.cpuid = c;
	kt_check(vmm_vcpu_create(&v, vm, &co), "vmm_vcpu_create");
	int r = vmm_linux_prepare_vcpu(v);
	assert_true(r < 0);
	assert_non_null(strstr(vmm_last_error(), "x2APIC"));
	assert_int_equal(apic_base(v), 0xfee00900ull); /* unchanged */
	vmm_cpuid_destroy(c);
	vmm_vm_destroy(vm);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pic_masked),
		cmocka_unit_test(test_x2apic),
		cmocka_unit_test(test_no_x2apic_in_cpuid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
