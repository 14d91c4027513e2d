/* libvmm: ACPI power-off through the hardware-reduced sleep registers.
 *
 * One I/O port that is both the FADT's sleep control and sleep status register (what
 * vmm_acpi_build describes with vmm_acpi_opts.sleep_port, and why its DSDT has \_S5).
 * To power off, an ACPI OS writes VMM_ACPI_SLEEP_WAK_STS (clearing the wake status),
 * then (SLP_TYP_S5 << 2) | SLP_EN = VMM_ACPI_SLEEP_S5_OFF; this device turns the second
 * write into VMM_SYSTEM_EVENT_SHUTDOWN: through opts->event, or vmm_vm_request_stop(vm,
 * ...) which makes every vCPU's vmm_vcpu_run return VMM_EXIT_SYSTEM_EVENT. Other sleep
 * types (S1-S4) are ignored: the guest then finds itself still running, as after a
 * failed suspend. Reads return 0 (no wake status).
 *
 * Threading: accesses arrive on vCPU threads; the device has no mutable state. Create
 * and destroy while the VM's vCPUs are not running.
 */
#ifndef LIBVMM_POWER_H
#define LIBVMM_POWER_H

#include <libvmm/common.h>
#include <libvmm/vm.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmm_power vmm_power;

/* A free port in a microVM's I/O space (pass the same to vmm_acpi_opts.sleep_port). */
#define VMM_POWER_PORT_DEFAULT 0x600u

typedef struct vmm_power_opts {
	uint32_t size;             /* sizeof(vmm_power_opts) */
	uint16_t port;             /* the sleep register; 0 = VMM_POWER_PORT_DEFAULT */
	/* Called with VMM_SYSTEM_EVENT_SHUTDOWN on the thread of the vCPU that powered the
	 * machine off. NULL = vmm_vm_request_stop(vm, event). */
	vmm_system_event_fn event;
	void *ctx;                 /* passed to event */
	/* The bus to register on; NULL = vmm_vm_bus(vm). With a bus of its own, `vm` may be
	 * NULL (`event` is then required). */
	vmm_bus *bus;
} vmm_power_opts;

#define VMM_POWER_OPTS_INIT { sizeof(vmm_power_opts), 0, 0, 0, 0 }

/* Creates the device and registers its port. opts may be NULL. Returns 0, -EINVAL (no
 * VM and no bus, or no VM and no event callback), -EEXIST (the port is taken), -ENOMEM. */
VMM_API int vmm_power_create(vmm_power **out, vmm_vm *vm, const vmm_power_opts *opts);

/* Unregisters the port and frees the device. NULL is a no-op. */
VMM_API void vmm_power_destroy(vmm_power *power);

#ifdef __cplusplus
}
#endif
#endif
