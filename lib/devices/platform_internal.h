/* Platform devices (UART, i8042, RTC, ACPI power): hooks for the unit tests, which drive
 * the devices through a standalone bus and have no VM to watch the interrupt lines. */
#ifndef LIBVMM_DEVICES_PLATFORM_INTERNAL_H
#define LIBVMM_DEVICES_PLATFORM_INTERNAL_H

#include <libvmm/i8042.h>
#include <libvmm/uart.h>

#include "../internal.h"

/* The level the device drives (or would drive, without a VM) on its interrupt line. */
VMM_HIDDEN bool vmm_uart_irq_level(vmm_uart *uart);
VMM_HIDDEN bool vmm_i8042_irq_level(vmm_i8042 *kbc);

#endif
