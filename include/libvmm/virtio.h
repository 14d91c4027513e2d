/* libvmm: attaching virtio devices to a VM through the virtio-mmio transport (virtio
 * 1.2, section 4.2; version 2 registers, modern devices only).
 *
 * A transport occupies VMM_VIRTIO_MMIO_SIZE bytes of MMIO at `base` and one interrupt
 * line `gsi`. Doorbells (QueueNotify) are ioeventfds and interrupts irqfds when the VM's
 * irqchip allows (kernel irqchip), so device I/O runs on the loop thread without
 * involving vCPU threads; with the split irqchip interrupts go through vmm_irq_set_line.
 *
 * Usage:
 *     vmm_virtio_device *rng;
 *     vmm_virtio_rng_create(&rng, NULL);
 *     vmm_virtio_mmio_opts mo = VMM_VIRTIO_MMIO_OPTS_INIT;
 *     mo.base = 0xd0000000; mo.gsi = 5;
 *     vmm_virtio_mmio *t;
 *     vmm_virtio_mmio_attach(&t, vm, loop, &mo, rng);   // t owns rng from here on
 *
 * The registers identify the device with vendor id 0x4d4d564c ("LVMM"). A 32-bit write
 * of a queue index to QueueNotify is taken by its ioeventfd; anything else written there
 * exits to user space like any register write (out-of-range indexes and other access
 * sizes are ignored). Queue registers are locked once a queue is ready and after
 * DRIVER_OK; a ring outside RAM or a device refusing activation sets
 * DEVICE_NEEDS_RESET at DRIVER_OK.
 *
 * Threading: attach and destroy while the VM's vCPUs and the loop are not running.
 * The status and stats calls may be made from any thread.
 */
#ifndef LIBVMM_VIRTIO_H
#define LIBVMM_VIRTIO_H

#include <libvmm/common.h>
#include <libvmm/loop.h>
#include <libvmm/sys/device.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmm_virtio_mmio vmm_virtio_mmio;

#define VMM_VIRTIO_MMIO_SIZE 0x1000u

typedef struct vmm_virtio_mmio_opts {
	uint32_t size; /* sizeof(vmm_virtio_mmio_opts) */
	uint64_t base; /* MMIO base, 4 KiB aligned, not overlapping RAM or another device */
	uint32_t gsi;  /* interrupt line (an IOAPIC pin, 0-23) */
} vmm_virtio_mmio_opts;

#define VMM_VIRTIO_MMIO_OPTS_INIT { sizeof(vmm_virtio_mmio_opts), 0, 0 }

/* Attaches `dev` to `vm` at opts->base. On success the transport owns dev (destroyed
 * with the transport); on failure dev stays the caller's. Returns 0, -EINVAL, -EEXIST
 * (MMIO range taken), -ENOMEM, or the errno of ioeventfd/irqfd setup. */
VMM_API int vmm_virtio_mmio_attach(vmm_virtio_mmio **out, vmm_vm *vm, vmm_loop *loop,
				   const vmm_virtio_mmio_opts *opts, vmm_virtio_device *dev);

/* Detaches and destroys the transport and its device. NULL is a no-op. */
VMM_API void vmm_virtio_mmio_destroy(vmm_virtio_mmio *t);

/* The attached device. */
VMM_API vmm_virtio_device *vmm_virtio_mmio_device(const vmm_virtio_mmio *t);

/* The device status register (VIRTIO_CONFIG_S_* bits: ACKNOWLEDGE 1, DRIVER 2,
 * DRIVER_OK 4, FEATURES_OK 8, DEVICE_NEEDS_RESET 64, FAILED 128). Any thread. */
VMM_API uint32_t vmm_virtio_mmio_status(const vmm_virtio_mmio *t);

/* Why the device entered DEVICE_NEEDS_RESET (empty if it did not). Any thread; the
 * string is copied into buf. */
VMM_API const char *vmm_virtio_mmio_error(const vmm_virtio_mmio *t, char *buf, size_t n);

/* Writes the Linux kernel command-line fragment describing the device,
 * "virtio_mmio.device=4K@0xd0000000:5". Returns the length (like snprintf). */
VMM_API int vmm_virtio_mmio_cmdline(const vmm_virtio_mmio *t, char *buf, size_t n);

/* Counters for benchmarks and tests (monotonic since attach). */
typedef struct vmm_virtio_mmio_stats {
	uint64_t notifies;   /* queue notifications received */
	uint64_t interrupts; /* interrupts raised */
} vmm_virtio_mmio_stats;
VMM_API void vmm_virtio_mmio_get_stats(const vmm_virtio_mmio *t, vmm_virtio_mmio_stats *out);

#ifdef __cplusplus
}
#endif
#endif
