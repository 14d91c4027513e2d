/* What a Linux guest needs from the VMM besides the loader: a quiet legacy PIC, the
 * local APIC in x2APIC mode, and the command line for nested hosts whose KVM interprets
 * ring-0 guest code. See the end of include/libvmm/boot.h. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../core/vm_internal.h"
#include "../kvm/kvm.h"

#define MSR_IA32_APIC_BASE 0x1bu
#define APIC_BASE_EXTD (1ull << 10)  /* x2APIC mode */
#define APIC_BASE_ENABLE (1ull << 11)

int vmm_linux_prepare_vm(vmm_vm *vm)
{
	if (!vm)
		return vmm_err(-EINVAL, "vmm_linux_prepare_vm: NULL vm");
	if (vm->irqchip != VMM_IRQCHIP_KERNEL)
		return 0; /* no PIC in the kernel: nothing can leak through LINT0 */
	int r = vmm_vm_realize_irqchip(vm);
	if (r)
		return r;
	for (uint32_t chip = KVM_IRQCHIP_PIC_MASTER; chip <= KVM_IRQCHIP_PIC_SLAVE; chip++) {
		struct kvm_irqchip c;
		memset(&c, 0, sizeof c);
		c.chip_id = chip;
		r = vmm_kvm_get_irqchip(vm->vm_fd, &c);
		if (r < 0)
			return vmm_err(r, "KVM_GET_IRQCHIP (PIC %u) failed", chip);
		/* Interrupt mask register all ones: no input reaches INTR. The rest of the
		 * state (vector base, ICW progress) stays as KVM has it, so a guest that does
		 * program the PIC (a full-ACPI or non-ACPI OS) initialises it as usual. */
		c.chip.pic.imr = 0xff;
		r = vmm_kvm_set_irqchip(vm->vm_fd, &c);
		if (r < 0)
			return vmm_err(r, "KVM_SET_IRQCHIP (PIC %u) failed", chip);
	}
	return 0;
}

int vmm_linux_prepare_vcpu(vmm_vcpu *vcpu)
{
	if (!vcpu)
		return vmm_err(-EINVAL, "vmm_linux_prepare_vcpu: NULL vcpu");
	const uint32_t idx = MSR_IA32_APIC_BASE;
	uint64_t base;
	int r = vmm_vcpu_get_msrs(vcpu, &idx, &base, 1);
	if (r)
		return r;
	/* Keep the base address and the BSP flag KVM gave this vCPU; xAPIC -> x2APIC is an
	 * architecturally allowed transition (enable first, then EXTD; both at once is
	 * what KVM accepts from the host). */
	uint64_t want = base | APIC_BASE_ENABLE | APIC_BASE_EXTD;
	if (want == base)
		return 0;
	r = vmm_vcpu_set_msrs(vcpu, &idx, &want, 1);
	if (r)
		return vmm_err(r, "vCPU %u: enabling x2APIC (IA32_APIC_BASE %#llx -> %#llx) failed; "
			       "does its CPUID advertise x2APIC?", vmm_vcpu_id(vcpu),
			       (unsigned long long)base, (unsigned long long)want);
	return 0;
}

/* True if the "flags" line of /proc/cpuinfo names vmx or svm. */
static bool cpu_has_hw_virt(FILE *f, bool *found_flags)
{
	char line[8192];
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		*found_flags = true;
		/* Words are space-separated; the line ends in '\n'. */
		char *save = NULL;
		for (char *w = strtok_r(line, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save))
			if (strcmp(w, "vmx") == 0 || strcmp(w, "svm") == 0)
				return true;
		return false; /* the first CPU is representative */
	}
	return false;
}

bool vmm_linux_host_is_nested(void)
{
	if (access("/sys/module/kvm_pvm", F_OK) == 0)
		return true;
	FILE *f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return false;
	bool found_flags = false;
	bool hw = cpu_has_hw_virt(f, &found_flags);
	fclose(f);
	/* KVM on x86 needs VMX or SVM unless it is a paravirtual one. A flags line that
	 * is missing (or longer than the buffer, so we saw a prefix) proves nothing. */
	return found_flags && !hw && access("/dev/kvm", F_OK) == 0;
}

/* Each default: its key, and the value (NULL for a bare flag). Why each is there is
 * documented at vmm_linux_cmdline_nested_defaults in boot.h. */
#define CLEARCPUID "popcnt,ssse3,sse4_1,sse4_2,pclmulqdq,aes,cx16,rdtscp,rdpid,smap,fsgsbase," \
		   "invpcid,pcid,rdrand,rdseed,erms,fsrm,xsavec,xsaves"
/* Linux copies the clearcpuid= value into a 128-byte buffer and silently cuts it there. */
_Static_assert(sizeof CLEARCPUID <= 128, "clearcpuid= value longer than Linux reads");

static const struct {
	const char *key, *value;
} nested_defaults[] = {
	{ "clearcpuid", CLEARCPUID },
	{ "mitigations", "off" },
	{ "cryptomgr.notests", "1" },
	{ "initcall_blacklist", "load_system_certificate_list,trace_eval_init,init_kprobe_trace" },
	{ "8250.nr_uarts", "1" },
	{ "rcupdate.rcu_cpu_stall_suppress", "1" },
};

int vmm_linux_cmdline_nested_defaults(vmm_cmdline *cl)
{
	if (!cl)
		return vmm_err(-EINVAL, "vmm_linux_cmdline_nested_defaults: NULL command line");
	for (size_t i = 0; i < sizeof nested_defaults / sizeof nested_defaults[0]; i++) {
		if (vmm_cmdline_has(cl, nested_defaults[i].key))
			continue;
		int r = vmm_cmdline_add(cl, nested_defaults[i].key, nested_defaults[i].value);
		if (r)
			return r;
	}
	return 0;
}
