/* KVM ioctl wrappers: errno is turned into a negative return value, nothing else. */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm.h"

static int ret(int r)
{
	return r < 0 ? -errno : r;
}

/* Ioctls that may be interrupted by a signal before doing anything are retried; KVM_RUN
 * is not (EINTR there is how a kick works). */
static int io(int fd, unsigned long req, const void *arg)
{
	int r;
	do
		r = ioctl(fd, req, arg);
	while (r < 0 && errno == EINTR);
	return ret(r);
}

int vmm_kvm_open_dev(const char *path)
{
	return ret(open(path, O_RDWR | O_CLOEXEC));
}

int vmm_kvm_api_version(int kvm_fd) { return io(kvm_fd, KVM_GET_API_VERSION, 0); }
int vmm_kvm_check_extension(int fd, long cap) { return ret(ioctl(fd, KVM_CHECK_EXTENSION, cap)); }
int vmm_kvm_vcpu_mmap_size(int kvm_fd) { return io(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0); }
int vmm_kvm_get_supported_cpuid(int kvm_fd, struct kvm_cpuid2 *c) { return io(kvm_fd, KVM_GET_SUPPORTED_CPUID, c); }

int vmm_kvm_create_vm(int kvm_fd)
{
	int r;
	/* KVM_CREATE_VM can fail with EINTR while the kernel waits for an old VM's teardown. */
	do
		r = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	while (r < 0 && errno == EINTR);
	return ret(r);
}

int vmm_kvm_enable_cap(int fd, uint32_t cap, uint64_t arg0)
{
	struct kvm_enable_cap c = { .cap = cap, .args = { arg0 } };
	return io(fd, KVM_ENABLE_CAP, &c);
}

int vmm_kvm_set_memory_region(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size, void *host)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};
	return io(vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
}

int vmm_kvm_get_dirty_log(int vm_fd, uint32_t slot, void *bitmap)
{
	struct kvm_dirty_log d = { .slot = slot, .dirty_bitmap = bitmap };
	return io(vm_fd, KVM_GET_DIRTY_LOG, &d);
}

int vmm_kvm_clear_dirty_log(int vm_fd, uint32_t slot, uint64_t first_page, uint32_t num_pages, void *bitmap)
{
	struct kvm_clear_dirty_log c = { .slot = slot, .num_pages = num_pages, .first_page = first_page,
					 .dirty_bitmap = bitmap };
	return io(vm_fd, KVM_CLEAR_DIRTY_LOG, &c);
}

int vmm_kvm_create_irqchip(int vm_fd) { return io(vm_fd, KVM_CREATE_IRQCHIP, 0); }

int vmm_kvm_create_pit2(int vm_fd)
{
	struct kvm_pit_config c = { .flags = KVM_PIT_SPEAKER_DUMMY };
	return io(vm_fd, KVM_CREATE_PIT2, &c);
}

int vmm_kvm_set_tss_addr(int vm_fd, uint64_t addr) { return ret(ioctl(vm_fd, KVM_SET_TSS_ADDR, (unsigned long)addr)); }
int vmm_kvm_set_identity_map_addr(int vm_fd, uint64_t addr) { return io(vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &addr); }
int vmm_kvm_set_gsi_routing(int vm_fd, const struct kvm_irq_routing *r) { return io(vm_fd, KVM_SET_GSI_ROUTING, r); }
int vmm_kvm_irqfd(int vm_fd, const struct kvm_irqfd *f) { return io(vm_fd, KVM_IRQFD, f); }

int vmm_kvm_irq_line(int vm_fd, uint32_t gsi, int level)
{
	struct kvm_irq_level l = { .irq = gsi, .level = (uint32_t)level };
	return io(vm_fd, KVM_IRQ_LINE, &l);
}

int vmm_kvm_signal_msi(int vm_fd, const struct kvm_msi *msi) { return io(vm_fd, KVM_SIGNAL_MSI, msi); }
int vmm_kvm_ioeventfd(int vm_fd, const struct kvm_ioeventfd *e) { return io(vm_fd, KVM_IOEVENTFD, e); }
int vmm_kvm_create_vcpu(int vm_fd, uint32_t id) { return ret(ioctl(vm_fd, KVM_CREATE_VCPU, (unsigned long)id)); }

int vmm_kvm_run(int vcpu_fd) { return ret(ioctl(vcpu_fd, KVM_RUN, 0)); }
int vmm_kvm_get_regs(int fd, struct kvm_regs *r) { return io(fd, KVM_GET_REGS, r); }
int vmm_kvm_set_regs(int fd, const struct kvm_regs *r) { return io(fd, KVM_SET_REGS, r); }
int vmm_kvm_get_sregs(int fd, struct kvm_sregs *s) { return io(fd, KVM_GET_SREGS, s); }
int vmm_kvm_set_sregs(int fd, const struct kvm_sregs *s) { return io(fd, KVM_SET_SREGS, s); }
int vmm_kvm_get_fpu(int fd, struct kvm_fpu *f) { return io(fd, KVM_GET_FPU, f); }
int vmm_kvm_set_fpu(int fd, const struct kvm_fpu *f) { return io(fd, KVM_SET_FPU, f); }
int vmm_kvm_get_msrs(int fd, struct kvm_msrs *m) { return io(fd, KVM_GET_MSRS, m); }
int vmm_kvm_set_msrs(int fd, const struct kvm_msrs *m) { return io(fd, KVM_SET_MSRS, m); }
int vmm_kvm_set_cpuid2(int fd, const struct kvm_cpuid2 *c) { return io(fd, KVM_SET_CPUID2, c); }
int vmm_kvm_get_vcpu_events(int fd, struct kvm_vcpu_events *e) { return io(fd, KVM_GET_VCPU_EVENTS, e); }
int vmm_kvm_set_vcpu_events(int fd, const struct kvm_vcpu_events *e) { return io(fd, KVM_SET_VCPU_EVENTS, e); }
int vmm_kvm_get_mp_state(int fd, struct kvm_mp_state *m) { return io(fd, KVM_GET_MP_STATE, m); }
int vmm_kvm_set_mp_state(int fd, const struct kvm_mp_state *m) { return io(fd, KVM_SET_MP_STATE, m); }
int vmm_kvm_reset_dirty_rings(int vm_fd) { return io(vm_fd, KVM_RESET_DIRTY_RINGS, 0); }
int vmm_kvm_get_irqchip(int vm_fd, struct kvm_irqchip *c) { return io(vm_fd, KVM_GET_IRQCHIP, c); }
int vmm_kvm_set_irqchip(int vm_fd, const struct kvm_irqchip *c) { return io(vm_fd, KVM_SET_IRQCHIP, c); }
/* Snapshots (lib/snapshot). */
int vmm_kvm_get_msr_index_list(int kvm_fd, struct kvm_msr_list *l) { return io(kvm_fd, KVM_GET_MSR_INDEX_LIST, l); }
int vmm_kvm_get_cpuid2(int fd, struct kvm_cpuid2 *c) { return io(fd, KVM_GET_CPUID2, c); }
int vmm_kvm_get_xsave(int fd, struct kvm_xsave *x) { return io(fd, KVM_GET_XSAVE, x); }
int vmm_kvm_get_xsave2(int fd, void *buf) { return io(fd, KVM_GET_XSAVE2, buf); }
int vmm_kvm_set_xsave(int fd, const void *buf) { return io(fd, KVM_SET_XSAVE, buf); }
int vmm_kvm_get_xcrs(int fd, struct kvm_xcrs *x) { return io(fd, KVM_GET_XCRS, x); }
int vmm_kvm_set_xcrs(int fd, const struct kvm_xcrs *x) { return io(fd, KVM_SET_XCRS, x); }
int vmm_kvm_get_lapic(int fd, struct kvm_lapic_state *l) { return io(fd, KVM_GET_LAPIC, l); }
int vmm_kvm_set_lapic(int fd, const struct kvm_lapic_state *l) { return io(fd, KVM_SET_LAPIC, l); }
int vmm_kvm_get_debugregs(int fd, struct kvm_debugregs *d) { return io(fd, KVM_GET_DEBUGREGS, d); }
int vmm_kvm_set_debugregs(int fd, const struct kvm_debugregs *d) { return io(fd, KVM_SET_DEBUGREGS, d); }
int vmm_kvm_get_tsc_khz(int fd) { return io(fd, KVM_GET_TSC_KHZ, 0); }
int vmm_kvm_set_tsc_khz(int fd, uint32_t khz) { return io(fd, KVM_SET_TSC_KHZ, (const void *)(uintptr_t)khz); }
int vmm_kvm_get_clock(int vm_fd, struct kvm_clock_data *c) { return io(vm_fd, KVM_GET_CLOCK, c); }
int vmm_kvm_set_clock(int vm_fd, const struct kvm_clock_data *c) { return io(vm_fd, KVM_SET_CLOCK, c); }
int vmm_kvm_get_pit2(int vm_fd, struct kvm_pit_state2 *p) { return io(vm_fd, KVM_GET_PIT2, p); }
int vmm_kvm_set_pit2(int vm_fd, const struct kvm_pit_state2 *p) { return io(vm_fd, KVM_SET_PIT2, p); }
