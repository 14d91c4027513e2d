/* The only place libvmm issues KVM ioctls. Thin wrappers: each returns the ioctl's
 * non-negative result or a negative errno, and takes the uapi structs directly. */
#ifndef LIBVMM_KVM_H
#define LIBVMM_KVM_H

#include <linux/kvm.h>
#include <stdint.h>

#include "../internal.h"

/* /dev/kvm */
VMM_HIDDEN int vmm_kvm_open_dev(const char *path);
VMM_HIDDEN int vmm_kvm_api_version(int kvm_fd);
VMM_HIDDEN int vmm_kvm_check_extension(int fd, long cap);
VMM_HIDDEN int vmm_kvm_vcpu_mmap_size(int kvm_fd);
VMM_HIDDEN int vmm_kvm_get_supported_cpuid(int kvm_fd, struct kvm_cpuid2 *cpuid);

/* VM */
VMM_HIDDEN int vmm_kvm_create_vm(int kvm_fd);
VMM_HIDDEN int vmm_kvm_enable_cap(int fd, uint32_t cap, uint64_t arg0);
VMM_HIDDEN int vmm_kvm_set_memory_region(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa,
				     uint64_t size, void *host);
VMM_HIDDEN int vmm_kvm_get_dirty_log(int vm_fd, uint32_t slot, void *bitmap);
VMM_HIDDEN int vmm_kvm_clear_dirty_log(int vm_fd, uint32_t slot, uint64_t first_page, uint32_t num_pages,
				   void *bitmap);
VMM_HIDDEN int vmm_kvm_create_irqchip(int vm_fd);
VMM_HIDDEN int vmm_kvm_create_pit2(int vm_fd);
VMM_HIDDEN int vmm_kvm_set_tss_addr(int vm_fd, uint64_t addr);
VMM_HIDDEN int vmm_kvm_set_identity_map_addr(int vm_fd, uint64_t addr);
VMM_HIDDEN int vmm_kvm_set_gsi_routing(int vm_fd, const struct kvm_irq_routing *routing);
VMM_HIDDEN int vmm_kvm_irqfd(int vm_fd, const struct kvm_irqfd *irqfd);
VMM_HIDDEN int vmm_kvm_irq_line(int vm_fd, uint32_t gsi, int level);
VMM_HIDDEN int vmm_kvm_signal_msi(int vm_fd, const struct kvm_msi *msi);
VMM_HIDDEN int vmm_kvm_ioeventfd(int vm_fd, const struct kvm_ioeventfd *ioeventfd);
VMM_HIDDEN int vmm_kvm_create_vcpu(int vm_fd, uint32_t id);
VMM_HIDDEN int vmm_kvm_reset_dirty_rings(int vm_fd);

/* vCPU */
VMM_HIDDEN int vmm_kvm_run(int vcpu_fd);
VMM_HIDDEN int vmm_kvm_get_regs(int vcpu_fd, struct kvm_regs *regs);
VMM_HIDDEN int vmm_kvm_set_regs(int vcpu_fd, const struct kvm_regs *regs);
VMM_HIDDEN int vmm_kvm_get_sregs(int vcpu_fd, struct kvm_sregs *sregs);
VMM_HIDDEN int vmm_kvm_set_sregs(int vcpu_fd, const struct kvm_sregs *sregs);
VMM_HIDDEN int vmm_kvm_get_fpu(int vcpu_fd, struct kvm_fpu *fpu);
VMM_HIDDEN int vmm_kvm_set_fpu(int vcpu_fd, const struct kvm_fpu *fpu);
VMM_HIDDEN int vmm_kvm_get_msrs(int vcpu_fd, struct kvm_msrs *msrs);
VMM_HIDDEN int vmm_kvm_set_msrs(int vcpu_fd, const struct kvm_msrs *msrs);
VMM_HIDDEN int vmm_kvm_set_cpuid2(int vcpu_fd, const struct kvm_cpuid2 *cpuid);
VMM_HIDDEN int vmm_kvm_get_vcpu_events(int vcpu_fd, struct kvm_vcpu_events *ev);
VMM_HIDDEN int vmm_kvm_set_vcpu_events(int vcpu_fd, const struct kvm_vcpu_events *ev);

VMM_HIDDEN int vmm_kvm_get_mp_state(int vcpu_fd, struct kvm_mp_state *mp);
VMM_HIDDEN int vmm_kvm_set_mp_state(int vcpu_fd, const struct kvm_mp_state *mp);

#endif
