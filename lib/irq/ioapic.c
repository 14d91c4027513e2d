/* The user-space IOAPIC of split-irqchip mode (82093AA register model, version 0x20
 * with the EOI register). Each unmasked pin is mirrored as an MSI route of GSI = pin, so
 * KVM knows which vectors are level-triggered and exits with KVM_EXIT_IOAPIC_EOI when
 * the guest EOIs them; delivery itself is a KVM_SIGNAL_MSI of that message. */
#include <stdlib.h>

#include "../kvm/kvm.h"
#include "irq_internal.h"

enum { REG_SELECT = 0x00, REG_WINDOW = 0x10, REG_EOI = 0x40, MMIO_SIZE = 0x1000 };
enum { IDX_ID = 0, IDX_VERSION = 1, IDX_ARB = 2, IDX_REDIR = 0x10 };

#define RTE_VECTOR 0xffull
#define RTE_DELIVERY_MODE (7ull << 8)
#define RTE_DEST_LOGICAL (1ull << 11)
#define RTE_DELIVERY_STATUS (1ull << 12)
#define RTE_REMOTE_IRR (1ull << 14)
#define RTE_LEVEL (1ull << 15)
#define RTE_MASKED (1ull << 16)
#define RTE_RO_BITS (RTE_DELIVERY_STATUS | RTE_REMOTE_IRR)

struct ioapic {
	uint32_t select;
	uint32_t id;
	uint64_t rte[VMM_IRQ_IOAPIC_PINS];
	uint32_t lines; /* bit per pin: current input level */
};

static void rte_msi(uint64_t rte, uint64_t *address, uint32_t *data)
{
	uint32_t dest = (uint32_t)(rte >> 56);
	*address = 0xfee00000ull | ((uint64_t)dest << 12) | ((rte & RTE_DEST_LOGICAL) ? 1u << 2 : 0);
	*data = (uint32_t)(rte & (RTE_VECTOR | RTE_DELIVERY_MODE));
	if (rte & RTE_LEVEL)
		*data |= 1u << 15 | 1u << 14; /* level-triggered, asserted */
}

static void deliver(struct vmm_irq *irq, uint32_t pin)
{
	struct ioapic *io = irq->ioapic;
	uint64_t rte = io->rte[pin];
	if (rte & RTE_MASKED)
		return;
	struct kvm_msi msi = { 0 };
	uint64_t address;
	rte_msi(rte, &address, &msi.data);
	msi.address_lo = (uint32_t)address;
	msi.address_hi = (uint32_t)(address >> 32);
	/* A failed delivery (no LAPIC accepted it) is what real hardware does too: the
	 * interrupt is lost; nothing to report to a device. */
	vmm_kvm_signal_msi(irq->vm_fd, &msi);
	if (rte & RTE_LEVEL)
		io->rte[pin] |= RTE_REMOTE_IRR;
}

static void maybe_deliver_level(struct vmm_irq *irq, uint32_t pin)
{
	struct ioapic *io = irq->ioapic;
	uint64_t rte = io->rte[pin];
	if ((rte & RTE_LEVEL) && !(rte & RTE_REMOTE_IRR) && (io->lines & (1u << pin)))
		deliver(irq, pin);
}

/* Mirrors pin `pin` into the GSI routing table (see the file comment). */
static void update_route(struct vmm_irq *irq, uint32_t pin)
{
	uint64_t rte = irq->ioapic->rte[pin];
	struct kvm_irq_routing_entry *e = vmm_irq_find_route(irq, pin);
	if (rte & RTE_MASKED) {
		if (!e)
			return;
		*e = irq->routes[--irq->nr_routes];
	} else {
		uint64_t address;
		uint32_t data;
		rte_msi(rte, &address, &data);
		if (e && e->u.msi.address_lo == (uint32_t)address && e->u.msi.data == data)
			return;
		if (vmm_irq_put_msi_route(irq, pin, address, data))
			return;
	}
	vmm_irq_commit_routes(irq);
}

static uint32_t window_read(struct ioapic *io)
{
	uint32_t idx = io->select;
	if (idx == IDX_ID)
		return io->id << 24;
	if (idx == IDX_VERSION)
		return ((VMM_IRQ_IOAPIC_PINS - 1) << 16) | 0x20;
	if (idx == IDX_ARB)
		return io->id << 24;
	if (idx >= IDX_REDIR && idx < IDX_REDIR + 2 * VMM_IRQ_IOAPIC_PINS) {
		uint64_t rte = io->rte[(idx - IDX_REDIR) / 2];
		return (idx & 1) ? (uint32_t)(rte >> 32) : (uint32_t)rte;
	}
	return 0;
}

static void window_write(struct vmm_irq *irq, uint32_t val)
{
	struct ioapic *io = irq->ioapic;
	uint32_t idx = io->select;
	if (idx == IDX_ID) {
		io->id = (val >> 24) & 0xf;
		return;
	}
	if (idx < IDX_REDIR || idx >= IDX_REDIR + 2 * VMM_IRQ_IOAPIC_PINS)
		return;
	uint32_t pin = (idx - IDX_REDIR) / 2;
	uint64_t rte = io->rte[pin];
	if (idx & 1)
		rte = (rte & 0xffffffffull) | ((uint64_t)val << 32);
	else
		rte = (rte & (0xffffffff00000000ull | RTE_RO_BITS)) | (val & ~(uint32_t)RTE_RO_BITS);
	if (!(rte & RTE_LEVEL))
		rte &= ~RTE_REMOTE_IRR;
	io->rte[pin] = rte;
	update_route(irq, pin);
	maybe_deliver_level(irq, pin);
}

static uint64_t ioapic_read(void *opaque, uint64_t offset, unsigned size)
{
	(void)size;
	struct vmm_irq *irq = opaque;
	pthread_mutex_lock(&irq->lock);
	uint64_t v = 0;
	if (offset == REG_SELECT)
		v = irq->ioapic->select;
	else if (offset == REG_WINDOW)
		v = window_read(irq->ioapic);
	pthread_mutex_unlock(&irq->lock);
	return v;
}

static void ioapic_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	(void)size;
	struct vmm_irq *irq = opaque;
	pthread_mutex_lock(&irq->lock);
	if (offset == REG_SELECT)
		irq->ioapic->select = (uint32_t)value & 0xff;
	else if (offset == REG_WINDOW)
		window_write(irq, (uint32_t)value);
	else if (offset == REG_EOI)
		vmm_ioapic_eoi(irq, (uint32_t)value & 0xff);
	pthread_mutex_unlock(&irq->lock);
}

static const vmm_bus_ops ioapic_ops = { .read = ioapic_read, .write = ioapic_write };

int vmm_ioapic_create(struct vmm_irq *irq)
{
	struct ioapic *io = calloc(1, sizeof *io);
	if (!io)
		return vmm_err(-ENOMEM, "out of memory");
	for (uint32_t i = 0; i < VMM_IRQ_IOAPIC_PINS; i++)
		io->rte[i] = RTE_MASKED;
	irq->ioapic = io;
	int r = vmm_bus_register(irq->vm->bus, VMM_BUS_MMIO, VMM_IRQ_IOAPIC_BASE, MMIO_SIZE, &ioapic_ops, irq);
	if (r) {
		irq->ioapic = NULL;
		free(io);
		return vmm_err(r, "split irqchip: cannot place the IOAPIC at %#llx",
			       (unsigned long long)VMM_IRQ_IOAPIC_BASE);
	}
	return 0;
}

void vmm_ioapic_destroy(struct vmm_irq *irq)
{
	if (!irq->ioapic)
		return;
	vmm_bus_unregister(irq->vm->bus, VMM_BUS_MMIO, VMM_IRQ_IOAPIC_BASE);
	free(irq->ioapic);
	irq->ioapic = NULL;
}

int vmm_ioapic_set_line(struct vmm_irq *irq, uint32_t pin, bool level)
{
	struct ioapic *io = irq->ioapic;
	uint32_t bit = 1u << pin;
	bool was = io->lines & bit;
	io->lines = level ? io->lines | bit : io->lines & ~bit;
	if (!level)
		return 0;
	if (io->rte[pin] & RTE_LEVEL)
		maybe_deliver_level(irq, pin);
	else if (!was)
		deliver(irq, pin);
	return 0;
}

void vmm_ioapic_eoi(struct vmm_irq *irq, uint32_t vector)
{
	struct ioapic *io = irq->ioapic;
	if (!io)
		return;
	for (uint32_t pin = 0; pin < VMM_IRQ_IOAPIC_PINS; pin++) {
		uint64_t rte = io->rte[pin];
		if ((rte & RTE_VECTOR) != vector || !(rte & RTE_LEVEL) || !(rte & RTE_REMOTE_IRR))
			continue;
		io->rte[pin] &= ~RTE_REMOTE_IRR;
		maybe_deliver_level(irq, pin);
	}
}
