/* libvmm: the CMOS real-time clock (MC146818) and its 128 bytes of NVRAM.
 *
 * Ports `port` (index, 0x70) and `port` + 1 (data, 0x71). Bit 7 of the index (the PC's
 * NMI mask) is ignored; the other 7 bits select one of 128 bytes:
 *  - 0x00-0x09: seconds, (alarm seconds), minutes, (alarm minutes), hours, (alarm hours),
 *    day of week (1 = Sunday), day of month, month, year (two digits), in BCD or binary
 *    and 24- or 12-hour format (hour bit 7 = PM) as register B says. The time is the
 *    host's UTC clock read at the moment of the access (or opts->clock), plus the offset
 *    the guest set by writing the time (under register B's SET bit, as drivers do, or
 *    field by field). The alarm bytes are plain storage.
 *  - 0x0A register A: UIP always 0 (no update is ever in progress: the time is computed
 *    on each read), rate and divider bits are storage.
 *  - 0x0B register B: SET, PIE, AIE, UIE, SQWE, DM (binary), 24/12, DSE. The interrupt
 *    enables are storage: this model raises no interrupts (no periodic, alarm or
 *    update-ended interrupt: Linux's rtc-cmos then works for reading and setting the
 *    time, without alarms).
 *  - 0x0C register C: reads 0 (no interrupt flags). 0x0D register D: VRT (battery good).
 *  - 0x32: the century, in the same format as the time (ACPI FADT's century field).
 *  - Everything else is NVRAM the guest may use freely (initially zero: the memory-size
 *    bytes 0x15-0x18, 0x30/0x31, 0x34/0x35 and 0x5B-0x5D stay 0, the e820 map is the
 *    guest's source of truth).
 *
 * Threading: register accesses arrive on vCPU threads; the device locks itself. Create
 * and destroy while the VM's vCPUs are not running.
 */
#ifndef LIBVMM_RTC_H
#define LIBVMM_RTC_H

#include <libvmm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmm_rtc vmm_rtc;

#define VMM_RTC_PORT 0x70u

/* The time source: seconds since 1970-01-01 00:00:00 UTC. */
typedef int64_t (*vmm_rtc_clock_fn)(void *ctx);

typedef struct vmm_rtc_opts {
	uint32_t size;          /* sizeof(vmm_rtc_opts) */
	uint16_t port;          /* index port; data is port + 1; 0 = VMM_RTC_PORT */
	vmm_rtc_clock_fn clock; /* NULL = the host's CLOCK_REALTIME */
	void *ctx;              /* passed to clock */
	/* The bus to register on; NULL = vmm_vm_bus(vm). With a bus, `vm` may be NULL. */
	vmm_bus *bus;
} vmm_rtc_opts;

#define VMM_RTC_OPTS_INIT { sizeof(vmm_rtc_opts), 0, 0, 0, 0 }

/* Creates the RTC and registers its two ports. opts may be NULL. Returns 0, -EINVAL (no
 * VM and no bus, port 0xffff), -EEXIST (a port is taken), -ENOMEM. */
VMM_API int vmm_rtc_create(vmm_rtc **out, vmm_vm *vm, const vmm_rtc_opts *opts);

/* Unregisters the ports and frees the device. NULL is a no-op. */
VMM_API void vmm_rtc_destroy(vmm_rtc *rtc);

#ifdef __cplusplus
}
#endif
#endif
