/* libvmm: interrupts — irqchip, GSI routing, lines, MSI, irqfd.
 *
 * vmm_vm_irq(vm) is the VM's interrupt controller, in the composition chosen by
 * vmm_vm_opts.irqchip:
 *  - VMM_IRQCHIP_KERNEL: PIC + IOAPIC + LAPIC (+ PIT) in the kernel. GSIs 0-23 are the
 *    IOAPIC pins (0-15 also the PIC). Lines, MSIs, and irqfds on any route work.
 *  - VMM_IRQCHIP_SPLIT: LAPIC in the kernel; the IOAPIC (24 pins, at 0xFEC00000) is a
 *    user-space object of this library that turns line changes into MSIs and handles
 *    level-triggered EOIs. Lines and MSIs work; irqfds need an MSI route
 *    (vmm_irq_route_msi), because no pin lives in the kernel.
 * Guests on nested-PVM hosts must use x2APIC (MSR-based) rather than xAPIC MMIO.
 *
 * Threading: every function here is thread-safe (may be called from device threads while
 * vCPUs run).
 */
#ifndef LIBVMM_IRQ_H
#define LIBVMM_IRQ_H

#include <stdbool.h>
#include <libvmm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMM_IRQ_IOAPIC_PINS 24
#define VMM_IRQ_IOAPIC_BASE 0xfec00000ull
#define VMM_IRQ_MAX_GSI 1024

/* Sets the level of GSI `gsi` (an IOAPIC pin 0-23, or a routed GSI). Level-triggered
 * devices raise and lower; edge-triggered devices pulse (vmm_irq_pulse). Returns 0,
 * -EINVAL, or a KVM errno. */
VMM_API int vmm_irq_set_line(vmm_irq *irq, uint32_t gsi, bool level);
/* Raise then lower: one edge. */
VMM_API int vmm_irq_pulse(vmm_irq *irq, uint32_t gsi);

/* Sends one message-signalled interrupt (address, data as a PCI MSI would write).
 * For x2APIC destinations above 255, the upper 24 bits of the APIC id go in
 * address_hi bits 8-31 (KVM's X2APIC_API convention). Returns 0 (delivered), -EAGAIN
 * (blocked by the guest: no LAPIC accepted it), or a KVM errno. */
VMM_API int vmm_irq_msi(vmm_irq *irq, uint64_t address, uint32_t data);

/* Routes GSI `gsi` (>= 24) to an MSI: an irqfd on it (or vmm_irq_set_line on it) then
 * sends that MSI. Replaces an earlier route of the same GSI. Returns 0, -EINVAL,
 * -ENOSPC, or a KVM errno. */
VMM_API int vmm_irq_route_msi(vmm_irq *irq, uint32_t gsi, uint64_t address, uint32_t data);
/* Removes a route added by vmm_irq_route_msi. Returns 0 or -ENOENT. */
VMM_API int vmm_irq_unroute(vmm_irq *irq, uint32_t gsi);

/* Builds the MSI address/data pair that delivers `vector` to the LAPIC with id
 * `apic_id` in fixed mode, edge triggered. */
VMM_API void vmm_irq_msi_for(uint32_t apic_id, uint8_t vector, uint64_t *address, uint32_t *data);

/* irqfd: writing to eventfd `fd` raises GSI `gsi` inside the kernel, without a
 * user-space round trip. For a level-triggered pin (kernel irqchip), pass a
 * `resample_fd`: the kernel lowers the line at the guest's EOI and signals resample_fd
 * so the device can re-assert. -1 = edge. The fds stay the caller's. Returns 0,
 * -EINVAL, -EEXIST, or a KVM errno. */
VMM_API int vmm_irq_add_irqfd(vmm_irq *irq, int fd, uint32_t gsi, int resample_fd);
VMM_API int vmm_irq_remove_irqfd(vmm_irq *irq, int fd, uint32_t gsi);

#ifdef __cplusplus
}
#endif
#endif
