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

/* In-kernel irqchip state (PIC master 0, PIC slave 1, IOAPIC 2): lib/boot/linux_platform.c
 * masks the PICs before a Linux guest runs. */
VMM_HIDDEN int vmm_kvm_get_irqchip(int vm_fd, struct kvm_irqchip *chip);
VMM_HIDDEN int vmm_kvm_set_irqchip(int vm_fd, const struct kvm_irqchip *chip);

/* Snapshots (lib/snapshot): the rest of the vCPU and VM state KVM keeps. */
VMM_HIDDEN int vmm_kvm_get_msr_index_list(int kvm_fd, struct kvm_msr_list *list);
VMM_HIDDEN int vmm_kvm_get_cpuid2(int vcpu_fd, struct kvm_cpuid2 *cpuid);
VMM_HIDDEN int vmm_kvm_get_xsave(int vcpu_fd, struct kvm_xsave *xsave);
/* KVM_GET_XSAVE2 (KVM_CAP_XSAVE2): `buf` holds the size that capability reports. */
VMM_HIDDEN int vmm_kvm_get_xsave2(int vcpu_fd, void *buf);
/* KVM_SET_XSAVE reads as many bytes as KVM_CAP_XSAVE2 reports (4096 without it). */
VMM_HIDDEN int vmm_kvm_set_xsave(int vcpu_fd, const void *buf);
VMM_HIDDEN int vmm_kvm_get_xcrs(int vcpu_fd, struct kvm_xcrs *xcrs);
VMM_HIDDEN int vmm_kvm_set_xcrs(int vcpu_fd, const struct kvm_xcrs *xcrs);
VMM_HIDDEN int vmm_kvm_get_lapic(int vcpu_fd, struct kvm_lapic_state *lapic);
VMM_HIDDEN int vmm_kvm_set_lapic(int vcpu_fd, const struct kvm_lapic_state *lapic);
VMM_HIDDEN int vmm_kvm_get_debugregs(int vcpu_fd, struct kvm_debugregs *dbg);
VMM_HIDDEN int vmm_kvm_set_debugregs(int vcpu_fd, const struct kvm_debugregs *dbg);
/* Returns the vCPU's TSC frequency in kHz (> 0) or a negative errno. */
VMM_HIDDEN int vmm_kvm_get_tsc_khz(int vcpu_fd);
VMM_HIDDEN int vmm_kvm_set_tsc_khz(int vcpu_fd, uint32_t khz);
VMM_HIDDEN int vmm_kvm_get_clock(int vm_fd, struct kvm_clock_data *clock);
VMM_HIDDEN int vmm_kvm_set_clock(int vm_fd, const struct kvm_clock_data *clock);
VMM_HIDDEN int vmm_kvm_get_pit2(int vm_fd, struct kvm_pit_state2 *pit);
VMM_HIDDEN int vmm_kvm_set_pit2(int vm_fd, const struct kvm_pit_state2 *pit);

#endif
