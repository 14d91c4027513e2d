/* libvmm: the I/O bus — port I/O and MMIO dispatch.
 *
 * Devices register address ranges in one of two spaces with an ops struct; a vCPU exit
 * on an address in a range calls the device's callback with the offset into the range.
 * Ranges never overlap; lookup is a binary search (O(log n)).
 *
 * Threading: callbacks run on the thread of the vCPU that exited, possibly on several
 * vCPU threads at once: a device shared by several vCPUs does its own locking.
 * Registering and unregistering are thread-safe against dispatch, but must not be called
 * from inside a callback of the same bus (the bus holds a read lock while it calls).
 */
#ifndef LIBVMM_BUS_H
#define LIBVMM_BUS_H

#include <libvmm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vmm_bus_space {
	VMM_BUS_PIO = 0,  /* 16-bit port space */
	VMM_BUS_MMIO = 1, /* guest physical addresses not backed by RAM */
} vmm_bus_space;

typedef struct vmm_bus_ops {
	/* Return the value of a `size`-byte read (1, 2, 4 or 8) at `offset` into the range.
	 * NULL: reads return all-ones. */
	uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
	/* Handle a `size`-byte write of `value`. NULL: writes are ignored. */
	void (*write)(void *opaque, uint64_t offset, unsigned size, uint64_t value);
} vmm_bus_ops;

/* A bus not attached to a VM (for tests and tools). Returns 0 or -ENOMEM. */
VMM_API int vmm_bus_create(vmm_bus **out);
/* Frees a standalone bus; a VM's bus is freed by vmm_vm_destroy (no-op here). */
VMM_API void vmm_bus_destroy(vmm_bus *bus);

/* Registers [base, base+len) in `space`. `ops` is copied; `opaque` is passed back to
 * the callbacks and is the caller's. Returns 0, -EINVAL (len 0, range wraps, or a port
 * range beyond 0xffff), -EEXIST (overlaps a registered range), -ENOMEM. */
VMM_API int vmm_bus_register(vmm_bus *bus, vmm_bus_space space, uint64_t base, uint64_t len,
			     const vmm_bus_ops *ops, void *opaque);

/* Unregisters the range starting at `base`. Returns 0 or -ENOENT. When it returns, no
 * callback of that range is running or will run. */
VMM_API int vmm_bus_unregister(vmm_bus *bus, vmm_bus_space space, uint64_t base);

/* Dispatches an access as a vCPU exit would (exported for tests and for devices that
 * forward accesses). `data` holds `size` bytes, little-endian. Returns 0 if a device
 * claimed the address, -ENOENT if none did (reads then fill `data` with 0xff). */
VMM_API int vmm_bus_read(vmm_bus *bus, vmm_bus_space space, uint64_t addr, void *data, unsigned size);
VMM_API int vmm_bus_write(vmm_bus *bus, vmm_bus_space space, uint64_t addr, const void *data, unsigned size);

/* ioeventfd: a guest write of `size` bytes (1, 2, 4 or 8; 0 = any size for MMIO) to
 * `addr` signals eventfd `fd` in the kernel, without a vCPU exit to user space. With
 * VMM_IOEVENTFD_DATAMATCH only writes of `datamatch` signal. The fd stays the caller's.
 * Only for a VM's bus. Returns 0, -EINVAL, -EEXIST, -ENODEV (standalone bus), or the
 * errno of KVM_IOEVENTFD. */
#define VMM_IOEVENTFD_DATAMATCH (1u << 0)
VMM_API int vmm_bus_add_ioeventfd(vmm_bus *bus, vmm_bus_space space, uint64_t addr, unsigned size,
				  int fd, uint32_t flags, uint64_t datamatch);
VMM_API int vmm_bus_remove_ioeventfd(vmm_bus *bus, vmm_bus_space space, uint64_t addr, unsigned size,
				     int fd, uint32_t flags, uint64_t datamatch);

#ifdef __cplusplus
}
#endif
#endif
