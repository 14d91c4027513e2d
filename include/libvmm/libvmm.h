/* libvmm: an embeddable virtual machine monitor library on Linux KVM (x86_64).
 * This header includes the whole public API. */
#ifndef LIBVMM_H
#define LIBVMM_H

#include <libvmm/common.h>
#include <libvmm/error.h>
#include <libvmm/vm.h>
#include <libvmm/mem.h>
#include <libvmm/bus.h>
#include <libvmm/irq.h>
#include <libvmm/cpuid.h>
#include <libvmm/vcpu.h>
#include <libvmm/elf.h>
#include <libvmm/acpi.h>
#include <libvmm/fdt.h>
#include <libvmm/boot.h>
#include <libvmm/loop.h>
#include <libvmm/virtio.h>
#include <libvmm/virtio_console.h>
#include <libvmm/virtio_blk.h>
#include <libvmm/virtio_net.h>
#include <libvmm/virtio_vsock.h>
#include <libvmm/virtio_rng.h>
#include <libvmm/virtio_balloon.h>
#include <libvmm/uart.h>
#include <libvmm/i8042.h>
#include <libvmm/rtc.h>
#include <libvmm/power.h>
#include <libvmm/snapshot.h>
#include <libvmm/sandbox.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version as "MAJOR.MINOR.PATCH". */
VMM_API const char *vmm_version(void);

#ifdef __cplusplus
}
#endif
#endif
