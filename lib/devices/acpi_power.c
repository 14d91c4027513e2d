/* ACPI hardware-reduced sleep registers: S5 means power off (see
 * include/libvmm/power.h). */
#include <stdlib.h>

#include <libvmm/power.h>

#include "../internal.h"

#define SLP_TYP_SHIFT 2
#define SLP_TYP_MASK 0x07u

struct vmm_power {
	vmm_bus *bus;
	uint16_t port;
	bool registered;
	vmm_vm *vm;
	vmm_system_event_fn event;
	void *ctx;
};

static uint64_t power_read(void *opaque, uint64_t offset, unsigned size)
{
	(void)opaque;
	(void)offset;
	(void)size;
	return 0; /* WAK_STS clear: we never wake from anything */
}

static void power_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	vmm_power *p = opaque;
	(void)offset;
	(void)size;
	/* Only the low byte is the register (a wider write's upper bytes are other,
	 * absent registers). WAK_STS writes are clears: nothing to clear. */
	uint8_t v = (uint8_t)value;
	if (!(v & VMM_ACPI_SLP_EN) || ((v >> SLP_TYP_SHIFT) & SLP_TYP_MASK) != VMM_ACPI_SLP_TYP_S5)
		return;
	if (p->event)
		p->event(p->ctx, VMM_SYSTEM_EVENT_SHUTDOWN);
	else
		vmm_vm_request_stop(p->vm, VMM_SYSTEM_EVENT_SHUTDOWN);
}

void vmm_power_destroy(vmm_power *p)
{
	if (!p)
		return;
	if (p->registered)
		vmm_bus_unregister(p->bus, VMM_BUS_PIO, p->port);
	free(p);
}

int vmm_power_create(vmm_power **out, vmm_vm *vm, const vmm_power_opts *opts)
{
	if (!out)
		return vmm_err(-EINVAL, "vmm_power_create: out is NULL");
	*out = NULL;
	vmm_power_opts o = VMM_POWER_OPTS_INIT;
	if (opts && vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "vmm_power_create: opts->size is too small");
	vmm_bus *bus = o.bus ? o.bus : vmm_vm_bus(vm);
	if (!bus)
		return vmm_err(-EINVAL, "vmm_power_create: needs a VM or a bus");
	if (!vm && !o.event)
		return vmm_err(-EINVAL, "vmm_power_create: without a VM, an event callback is required");
	vmm_power *p = calloc(1, sizeof *p);
	if (!p)
		return vmm_err(-ENOMEM, "power: out of memory");
	p->bus = bus;
	p->port = o.port ? o.port : VMM_POWER_PORT_DEFAULT;
	p->vm = vm;
	p->event = o.event;
	p->ctx = o.ctx;
	vmm_bus_ops ops = { .read = power_read, .write = power_write };
	int r = vmm_bus_register(bus, VMM_BUS_PIO, p->port, 1, &ops, p);
	if (r) {
		free(p);
		return r;
	}
	p->registered = true;
	*out = p;
	return 0;
}
