/* vmm_irq: lines, MSIs, GSI routing and irqfds over KVM's irqchip (kernel or split). */
#include <stdlib.h>
#include <string.h>

#include "../kvm/kvm.h"
#include "irq_internal.h"

#define MSI_ADDR_BASE 0xfee00000ull

static struct kvm_irq_routing_entry pic_or_ioapic(uint32_t gsi, uint32_t chip, uint32_t pin)
{
	return (struct kvm_irq_routing_entry){ .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
					       .u.irqchip = { .irqchip = chip, .pin = pin } };
}

/* The kernel irqchip's standard wiring: GSI 0-15 to both PICs and the IOAPIC, 16-23 to
 * the IOAPIC only. KVM_SET_GSI_ROUTING replaces the whole table, so we restate it. */
static void default_kernel_routes(struct vmm_irq *irq)
{
	for (uint32_t gsi = 0; gsi < VMM_IRQ_IOAPIC_PINS; gsi++) {
		if (gsi < 16)
			irq->routes[irq->nr_routes++] = pic_or_ioapic(
				gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8);
		irq->routes[irq->nr_routes++] = pic_or_ioapic(gsi, KVM_IRQCHIP_IOAPIC, gsi);
	}
}

int vmm_irq_commit_routes(struct vmm_irq *irq)
{
	struct kvm_irq_routing *t = calloc(1, sizeof *t + irq->nr_routes * sizeof t->entries[0]);
	if (!t)
		return vmm_err(-ENOMEM, "out of memory");
	t->nr = irq->nr_routes;
	memcpy(t->entries, irq->routes, irq->nr_routes * sizeof t->entries[0]);
	int r = vmm_kvm_set_gsi_routing(irq->vm_fd, t);
	free(t);
	return r < 0 ? vmm_err(r, "KVM_SET_GSI_ROUTING with %u routes failed", irq->nr_routes) : 0;
}

struct kvm_irq_routing_entry *vmm_irq_find_route(struct vmm_irq *irq, uint32_t gsi)
{
	for (uint32_t i = 0; i < irq->nr_routes; i++)
		if (irq->routes[i].gsi == gsi)
			return &irq->routes[i];
	return NULL;
}

int vmm_irq_put_msi_route(struct vmm_irq *irq, uint32_t gsi, uint64_t address, uint32_t data)
{
	struct kvm_irq_routing_entry *e = vmm_irq_find_route(irq, gsi);
	if (!e) {
		if (irq->nr_routes >= IRQ_MAX_ROUTES)
			return vmm_err(-ENOSPC, "GSI routing table is full (%d routes)", IRQ_MAX_ROUTES);
		e = &irq->routes[irq->nr_routes++];
	}
	*e = (struct kvm_irq_routing_entry){ .gsi = gsi, .type = KVM_IRQ_ROUTING_MSI,
					     .u.msi = { .address_lo = (uint32_t)address,
							.address_hi = (uint32_t)(address >> 32),
							.data = data } };
	return 0;
}

static void drop_route(struct vmm_irq *irq, struct kvm_irq_routing_entry *e)
{
	*e = irq->routes[--irq->nr_routes];
}

int vmm_irq_create_for_vm(vmm_irq **out, vmm_vm *vm)
{
	struct vmm_irq *irq = calloc(1, sizeof *irq);
	if (!irq)
		return vmm_err(-ENOMEM, "out of memory");
	irq->vm = vm;
	irq->vm_fd = vmm_vm_fd(vm);
	irq->mode = vm->irqchip;
	pthread_mutex_init(&irq->lock, NULL);
	irq->routes = calloc(IRQ_MAX_ROUTES, sizeof *irq->routes);
	int r = irq->routes ? 0 : vmm_err(-ENOMEM, "out of memory");
	if (!r && irq->mode == VMM_IRQCHIP_KERNEL)
		default_kernel_routes(irq); /* installed in KVM by vmm_irq_realize */
	else if (!r)
		r = vmm_ioapic_create(irq);
	if (r) {
		vmm_irq_free(irq);
		return r;
	}
	*out = irq;
	return 0;
}

int vmm_irq_realize(vmm_irq *irq)
{
	if (irq->mode != VMM_IRQCHIP_KERNEL)
		return 0; /* split mode: no route until vmm_irq_route_msi */
	pthread_mutex_lock(&irq->lock);
	int r = vmm_irq_commit_routes(irq);
	pthread_mutex_unlock(&irq->lock);
	return r;
}

/* Every call below that reaches KVM makes sure the controller exists there first. */
#define REALIZE(irq)                                                     \
	do {                                                             \
		int realize_r_ = vmm_vm_realize_irqchip((irq)->vm);      \
		if (realize_r_)                                          \
			return realize_r_;                               \
	} while (0)

void vmm_irq_free(vmm_irq *irq)
{
	if (!irq)
		return;
	for (uint32_t i = 0; i < irq->nr_irqfds; i++) {
		struct kvm_irqfd f = { .fd = (uint32_t)irq->irqfds[i].fd, .gsi = irq->irqfds[i].gsi,
				       .flags = KVM_IRQFD_FLAG_DEASSIGN };
		vmm_kvm_irqfd(irq->vm_fd, &f);
	}
	vmm_ioapic_destroy(irq);
	free(irq->routes);
	pthread_mutex_destroy(&irq->lock);
	free(irq);
}

void vmm_irq_eoi(vmm_irq *irq, uint32_t vector)
{
	if (!irq || irq->mode != VMM_IRQCHIP_SPLIT)
		return;
	pthread_mutex_lock(&irq->lock);
	vmm_ioapic_eoi(irq, vector);
	pthread_mutex_unlock(&irq->lock);
}

int vmm_irq_set_line(vmm_irq *irq, uint32_t gsi, bool level)
{
	if (!irq)
		return vmm_err(-EINVAL, "vmm_irq_set_line: NULL irq");
	if (gsi >= VMM_IRQ_MAX_GSI)
		return vmm_err(-EINVAL, "vmm_irq_set_line: GSI %u out of range", gsi);
	REALIZE(irq);
	int r;
	pthread_mutex_lock(&irq->lock);
	if (irq->mode == VMM_IRQCHIP_SPLIT && gsi < VMM_IRQ_IOAPIC_PINS) {
		r = vmm_ioapic_set_line(irq, gsi, level);
	} else if (irq->mode == VMM_IRQCHIP_SPLIT && !vmm_irq_find_route(irq, gsi)) {
		r = vmm_err(-EINVAL, "vmm_irq_set_line: GSI %u has no route", gsi);
	} else {
		r = vmm_kvm_irq_line(irq->vm_fd, gsi, level);
		r = r < 0 ? vmm_err(r, "KVM_IRQ_LINE gsi %u failed", gsi) : 0;
	}
	pthread_mutex_unlock(&irq->lock);
	return r;
}

int vmm_irq_pulse(vmm_irq *irq, uint32_t gsi)
{
	int r = vmm_irq_set_line(irq, gsi, true);
	return r ? r : vmm_irq_set_line(irq, gsi, false);
}

int vmm_irq_msi(vmm_irq *irq, uint64_t address, uint32_t data)
{
	if (!irq)
		return vmm_err(-EINVAL, "vmm_irq_msi: NULL irq");
	REALIZE(irq);
	struct kvm_msi msi = { .address_lo = (uint32_t)address, .address_hi = (uint32_t)(address >> 32),
			       .data = data };
	int r = vmm_kvm_signal_msi(irq->vm_fd, &msi);
	/* KVM answers 0 when LAPICs matched but none took it, and -1 (so EPERM) when no
	 * vCPU matched at all, e.g. before the first vCPU exists: both are "not delivered".
	 * No message is formatted: devices may meet this on every interrupt while a guest
	 * has its LAPIC disabled. */
	if (r == 0 || r == -EPERM)
		return -EAGAIN;
	return r < 0 ? vmm_err(r, "KVM_SIGNAL_MSI failed") : 0;
}

void vmm_irq_msi_for(uint32_t apic_id, uint8_t vector, uint64_t *address, uint32_t *data)
{
	/* Destination id bits 0-7 in address bits 12-19; with KVM's X2APIC_API, bits 8-31
	 * in address_hi bits 8-31. Fixed delivery, physical destination, edge. */
	if (address)
		*address = MSI_ADDR_BASE | ((uint64_t)(apic_id & 0xff) << 12) |
			   ((uint64_t)(apic_id & 0xffffff00) << 32);
	if (data)
		*data = vector;
}

int vmm_irq_route_msi(vmm_irq *irq, uint32_t gsi, uint64_t address, uint32_t data)
{
	if (!irq)
		return vmm_err(-EINVAL, "vmm_irq_route_msi: NULL irq");
	if (gsi < VMM_IRQ_IOAPIC_PINS || gsi >= VMM_IRQ_MAX_GSI)
		return vmm_err(-EINVAL, "vmm_irq_route_msi: GSI %u (must be %d to %d)", gsi,
			       VMM_IRQ_IOAPIC_PINS, VMM_IRQ_MAX_GSI - 1);
	REALIZE(irq);
	pthread_mutex_lock(&irq->lock);
	struct kvm_irq_routing_entry *old = vmm_irq_find_route(irq, gsi);
	struct kvm_irq_routing_entry saved = old ? *old : (struct kvm_irq_routing_entry){ 0 };
	int r = vmm_irq_put_msi_route(irq, gsi, address, data);
	if (!r && (r = vmm_irq_commit_routes(irq))) {
		struct kvm_irq_routing_entry *e = vmm_irq_find_route(irq, gsi);
		if (old)
			*e = saved;
		else
			drop_route(irq, e);
	}
	pthread_mutex_unlock(&irq->lock);
	return r;
}

int vmm_irq_unroute(vmm_irq *irq, uint32_t gsi)
{
	if (!irq)
		return vmm_err(-EINVAL, "vmm_irq_unroute: NULL irq");
	REALIZE(irq);
	pthread_mutex_lock(&irq->lock);
	struct kvm_irq_routing_entry *e = gsi >= VMM_IRQ_IOAPIC_PINS ? vmm_irq_find_route(irq, gsi) : NULL;
	int r;
	if (!e) {
		r = vmm_err(-ENOENT, "vmm_irq_unroute: GSI %u has no MSI route", gsi);
	} else {
		drop_route(irq, e);
		r = vmm_irq_commit_routes(irq);
	}
	pthread_mutex_unlock(&irq->lock);
	return r;
}

int vmm_irq_add_irqfd(vmm_irq *irq, int fd, uint32_t gsi, int resample_fd)
{
	if (!irq || fd < 0)
		return vmm_err(-EINVAL, "vmm_irq_add_irqfd: bad argument");
	if (gsi >= VMM_IRQ_MAX_GSI)
		return vmm_err(-EINVAL, "vmm_irq_add_irqfd: GSI %u out of range", gsi);
	if (irq->mode == VMM_IRQCHIP_SPLIT && gsi < VMM_IRQ_IOAPIC_PINS)
		return vmm_err(-EINVAL, "vmm_irq_add_irqfd: in split mode an irqfd needs an MSI route "
				"(GSI >= %d), not IOAPIC pin %u", VMM_IRQ_IOAPIC_PINS, gsi);
	REALIZE(irq);
	pthread_mutex_lock(&irq->lock);
	int r = 0;
	for (uint32_t i = 0; i < irq->nr_irqfds && !r; i++)
		if (irq->irqfds[i].fd == fd && irq->irqfds[i].gsi == gsi)
			r = vmm_err(-EEXIST, "vmm_irq_add_irqfd: fd %d already drives GSI %u", fd, gsi);
	if (!r && irq->nr_irqfds == IRQ_MAX_IRQFDS)
		r = vmm_err(-ENOSPC, "vmm_irq_add_irqfd: at most %d irqfds", IRQ_MAX_IRQFDS);
	if (!r) {
		struct kvm_irqfd f = { .fd = (uint32_t)fd, .gsi = gsi };
		if (resample_fd >= 0) {
			f.flags = KVM_IRQFD_FLAG_RESAMPLE;
			f.resamplefd = (uint32_t)resample_fd;
		}
		r = vmm_kvm_irqfd(irq->vm_fd, &f);
		if (r < 0)
			r = vmm_err(r, "KVM_IRQFD (fd %d, GSI %u) failed", fd, gsi);
		else
			irq->irqfds[irq->nr_irqfds++] = (struct irqfd_entry){ fd, gsi };
	}
	pthread_mutex_unlock(&irq->lock);
	return r;
}

int vmm_irq_remove_irqfd(vmm_irq *irq, int fd, uint32_t gsi)
{
	if (!irq)
		return vmm_err(-EINVAL, "vmm_irq_remove_irqfd: NULL irq");
	pthread_mutex_lock(&irq->lock);
	uint32_t i = 0;
	while (i < irq->nr_irqfds && (irq->irqfds[i].fd != fd || irq->irqfds[i].gsi != gsi))
		i++;
	int r;
	if (i == irq->nr_irqfds) {
		r = vmm_err(-ENOENT, "vmm_irq_remove_irqfd: fd %d is not attached to GSI %u", fd, gsi);
	} else {
		struct kvm_irqfd f = { .fd = (uint32_t)fd, .gsi = gsi, .flags = KVM_IRQFD_FLAG_DEASSIGN };
		r = vmm_kvm_irqfd(irq->vm_fd, &f);
		r = r < 0 ? vmm_err(r, "KVM_IRQFD deassign failed") : 0;
		irq->irqfds[i] = irq->irqfds[--irq->nr_irqfds];
	}
	pthread_mutex_unlock(&irq->lock);
	return r;
}
