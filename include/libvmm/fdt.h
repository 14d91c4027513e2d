/* libvmm: a flattened device tree (DTB) describing the machine.
 *
 * The same machine the ACPI tables describe (see acpi.h), in the format arm64 guests
 * require and x86 kernels built with CONFIG_OF accept through a SETUP_DTB setup_data
 * entry. x86 Linux mostly takes its platform from ACPI: the tree is for kernels and
 * tools that read device trees, and for the same machine on other architectures.
 *
 *   / { #address-cells = <2>; #size-cells = <2>; compatible = "libvmm,microvm";
 *       interrupt-parent = <&ioapic>;
 *     chosen { bootargs; linux,initrd-start; linux,initrd-end; stdout-path }
 *     memory@<base> { device_type = "memory"; reg = <base size>; }   one per range
 *     cpus { #address-cells = <1>; #size-cells = <0>;
 *            cpu@<id> { device_type = "cpu"; reg = <APIC id>; } }   one per vCPU
 *     interrupt-controller@fee00000 { compatible = "intel,ce4100-lapic"; ... }
 *     ioapic: interrupt-controller@fec00000 { compatible = "intel,ce4100-ioapic";
 *            interrupt-controller; #interrupt-cells = <2>; }
 *     isa@i0 { compatible = "isa"; #address-cells = <2>; #size-cells = <1>;
 *           ranges = <1 0  0 0  0x10000>;                  I/O space at CPU address 0
 *           serial@i3f8 { compatible = "ns16550a"; reg = <1 0x3f8 8>;
 *                         interrupts = <4 0>; clock-frequency = <1843200>; } }
 *     virtio_mmio@<base> { compatible = "virtio,mmio"; reg = <base size>;
 *                          interrupts = <gsi sense>; }          one per device
 *   }
 *
 * Interrupt specifiers follow the intel,ce4100-ioapic binding: <pin sense>, sense 0 =
 * edge rising, 1 = level low, 2 = level high, 3 = edge falling. The serial port sits on
 * an "isa" bus node whose first address cell is 1 for I/O space: that is how a device
 * tree says "port 0x3f8" rather than "memory address 0x3f8" (Linux translates it to a
 * port through the bus's ranges).
 *
 * Threading: no shared state; concurrent builds are fine.
 */
#ifndef LIBVMM_FDT_H
#define LIBVMM_FDT_H

#include <libvmm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMM_FDT_MAX_CPUS 1024u
#define VMM_FDT_MAX_MEMORY 64u
#define VMM_FDT_MAX_VIRTIO 256u

/* vmm_fdt_opts.flags */
#define VMM_FDT_SERIAL (1u << 0) /* COM1: ns16550a at I/O 0x3f8, IRQ 4; stdout-path */

/* vmm_fdt_virtio_mmio.flags: the interrupt's sense; 0 = edge rising. */
#define VMM_FDT_IRQ_LEVEL (1u << 0)
#define VMM_FDT_IRQ_ACTIVE_LOW (1u << 1)

typedef struct vmm_fdt_range {
	uint64_t base;
	uint64_t size; /* > 0; base + size must not wrap */
} vmm_fdt_range;

typedef struct vmm_fdt_virtio_mmio {
	uint64_t base;  /* MMIO window; with size, must not wrap */
	uint64_t size;  /* > 0 */
	uint32_t gsi;   /* IOAPIC pin, 0-23 */
	uint32_t flags; /* VMM_FDT_IRQ_* */
} vmm_fdt_virtio_mmio;

typedef struct vmm_fdt_opts {
	uint32_t size;                      /* sizeof(vmm_fdt_opts) */
	uint32_t flags;                     /* VMM_FDT_* */
	/* RAM: `memory` ranges if nmemory > 0; else the writable regions of `mem` (in
	 * GPA order); one of the two is required. */
	const vmm_fdt_range *memory;
	uint32_t nmemory;                   /* 0 to VMM_FDT_MAX_MEMORY */
	vmm_mem *mem;                       /* borrowed, read only during the call */
	uint32_t ncpus;                     /* 1 to VMM_FDT_MAX_CPUS; default 1 */
	const uint32_t *apic_ids;           /* ncpus distinct ids; NULL = 0 .. ncpus - 1 */
	const char *bootargs;               /* /chosen/bootargs; NULL = none */
	uint64_t initrd_start;              /* guest-physical; used if initrd_size > 0 */
	uint64_t initrd_size;
	const vmm_fdt_virtio_mmio *virtio;
	uint32_t nvirtio;                   /* 0 to VMM_FDT_MAX_VIRTIO */
} vmm_fdt_opts;

#define VMM_FDT_OPTS_INIT { sizeof(vmm_fdt_opts), 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0 }

/* Builds the tree into the caller's buffer `buf` of `cap` bytes and packs it: *size
 * (required) is the blob's length (its totalsize). Returns 0, -EINVAL (bad options;
 * vmm_last_error says which), -ENOSPC (cap too small; vmm_fdt_build_alloc sizes the
 * buffer itself), -EFAULT (libfdt rejected the tree: a bug). */
VMM_API int vmm_fdt_build(const vmm_fdt_opts *opts, void *buf, size_t cap, size_t *size);

/* Builds the tree into a buffer the library allocates with malloc: on success *blob
 * owns the packed tree of *size bytes, and the caller releases it with free(). Returns
 * as vmm_fdt_build, or -ENOMEM; *blob is NULL on failure. */
VMM_API int vmm_fdt_build_alloc(const vmm_fdt_opts *opts, void **blob, size_t *size);

#ifdef __cplusplus
}
#endif
#endif
