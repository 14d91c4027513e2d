/* libvmm: the i8042 keyboard controller, as much of it as a microVM needs.
 *
 * Ports 0x60 (data) and 0x64 (status / command). What it does:
 *  - Reset: the command 0xFE ("pulse the reset line", which is also the ACPI FADT reset
 *    register that vmm_acpi_build describes with VMM_ACPI_I8042), any other pulse command
 *    0xF0-0xFE that pulses line 0, and writing the output port (0xD1) with bit 0 clear,
 *    report VMM_SYSTEM_EVENT_RESET: through opts->event, or vmm_vm_request_stop(vm, ...)
 *    which makes every vCPU's vmm_vcpu_run return VMM_EXIT_SYSTEM_EVENT.
 *  - Enough of the controller for Linux's i8042 driver to probe and move on without
 *    waiting out timeouts: status (output-buffer-full, system flag, keyboard not
 *    locked), the configuration byte (0x20 / 0x60), self-tests (0xAA -> 0x55, 0xAB /
 *    0xA9 -> 0x00), port enable/disable (0xA7, 0xA8, 0xAD, 0xAE), the output port
 *    (0xD0 / 0xD1), and 0xD2 / 0xD3 (echo a byte as keyboard / aux data).
 *  - No keyboard or mouse is attached: a byte sent to either device gets the
 *    controller's time-out answer (status bit 6 and 0xFE), and the keyboard's interrupt
 *    if the configuration byte enables it, so Linux's atkbd gives up at once.
 * The interrupt line (`gsi`, ISA IRQ 1) follows "output buffer full with the keyboard
 * interrupt enabled", like the chip's IRQ1 pin; the guest programs it edge-triggered.
 * No IRQ 12 is raised (the ACPI tables describe no mouse).
 *
 * Threading: register accesses arrive on vCPU threads; the device locks itself. Create
 * and destroy while the VM's vCPUs are not running.
 */
#ifndef LIBVMM_I8042_H
#define LIBVMM_I8042_H

#include <libvmm/common.h>
#include <libvmm/vm.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmm_i8042 vmm_i8042;

#define VMM_I8042_DATA_PORT 0x60u
#define VMM_I8042_CMD_PORT 0x64u
#define VMM_I8042_GSI 1u

typedef struct vmm_i8042_opts {
	uint32_t size;             /* sizeof(vmm_i8042_opts) */
	uint32_t gsi;              /* keyboard interrupt; 0 = VMM_I8042_GSI */
	/* Called with VMM_SYSTEM_EVENT_RESET when the guest pulses the reset line, on the
	 * thread of the vCPU that did it. NULL = vmm_vm_request_stop(vm, event). */
	vmm_system_event_fn event;
	void *ctx;                 /* passed to event */
	/* The bus to register on; NULL = vmm_vm_bus(vm). With a bus of its own, `vm` may be
	 * NULL (no interrupts; `event` is then required). */
	vmm_bus *bus;
} vmm_i8042_opts;

#define VMM_I8042_OPTS_INIT { sizeof(vmm_i8042_opts), 0, 0, 0, 0 }

/* Creates the controller and registers ports 0x60 and 0x64. opts may be NULL. Returns
 * 0, -EINVAL (no VM and no bus, no VM and no event callback, GSI out of range),
 * -EEXIST (a port is taken), -ENOMEM. */
VMM_API int vmm_i8042_create(vmm_i8042 **out, vmm_vm *vm, const vmm_i8042_opts *opts);

/* Unregisters the ports and frees the device. NULL is a no-op. */
VMM_API void vmm_i8042_destroy(vmm_i8042 *kbc);

#ifdef __cplusplus
}
#endif
#endif
