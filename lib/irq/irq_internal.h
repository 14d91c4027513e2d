/* The interrupt controller object (lib/irq). */
#ifndef LIBVMM_IRQ_INTERNAL_H
#define LIBVMM_IRQ_INTERNAL_H

#include <linux/kvm.h>
#include <pthread.h>

#include "../core/vm_internal.h"

#define IRQ_MAX_ROUTES 1024
#define IRQ_MAX_IRQFDS 256

struct ioapic;

struct irqfd_entry {
	int fd;
	uint32_t gsi;
};

struct vmm_irq {
	vmm_vm *vm;
	int vm_fd;
	vmm_irqchip_mode mode;
	pthread_mutex_t lock; /* routes, irqfds, IOAPIC state */

	/* The whole GSI routing table, as last given to KVM_SET_GSI_ROUTING: the fixed
	 * routes of the composition (PIC/IOAPIC pins, or the split IOAPIC's MSI routes),
	 * then the application's MSI routes. */
	struct kvm_irq_routing_entry *routes;
	uint32_t nr_routes;

	struct irqfd_entry irqfds[IRQ_MAX_IRQFDS];
	uint32_t nr_irqfds;

	struct ioapic *ioapic; /* split mode only */
};

/* Pushes irq->routes to KVM. Called with irq->lock held. */
VMM_HIDDEN int vmm_irq_commit_routes(struct vmm_irq *irq);
/* Finds the route of `gsi` (any type), or NULL. Called with irq->lock held. */
VMM_HIDDEN struct kvm_irq_routing_entry *vmm_irq_find_route(struct vmm_irq *irq, uint32_t gsi);
/* Adds or replaces the MSI route of `gsi`. Called with irq->lock held. */
VMM_HIDDEN int vmm_irq_put_msi_route(struct vmm_irq *irq, uint32_t gsi, uint64_t address, uint32_t data);

/* ioapic.c: the user-space IOAPIC of split mode. */
VMM_HIDDEN int vmm_ioapic_create(struct vmm_irq *irq);
VMM_HIDDEN void vmm_ioapic_destroy(struct vmm_irq *irq);
/* Line change on pin `pin` (< 24). Called with irq->lock held. */
VMM_HIDDEN int vmm_ioapic_set_line(struct vmm_irq *irq, uint32_t pin, bool level);
/* The LAPIC EOI'd `vector`: clear Remote IRR of level pins with that vector and
 * re-deliver those still asserted. Called with irq->lock held. */
VMM_HIDDEN void vmm_ioapic_eoi(struct vmm_irq *irq, uint32_t vector);

#endif
