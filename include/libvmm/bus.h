/* libvmm: the I/O bus — port I/O and MMIO dispatch.
 *
 * Devices register address ranges in one of two spaces with an ops struct; a vCPU exit
 * on an address in a range calls the device's callback with the offset into the range.
 * Ranges never overlap; lookup is a binary search (O(log n)).
 *
 * Threading: callbacks run on the thread of the vCPU that exited, possibly on several
 * vCPU threads at once: a device shared by several vCPUs does its own locking.
 * Registering and unregistering are thread-safe against dispatch. Each space has its own
 * lock, held for reading while a callback runs: from inside a callback, changing the
 * other space works (e.g. a PCI config write through ports 0xcf8/0xcfc moving an MMIO
 * BAR), changing the same space fails with -EDEADLK. A callback may dispatch further
 * accesses on the bus (nesting is limited to 8 levels, then -ELOOP).
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

/* Callbacks always get offset + size <= the range's length: an access that starts in a
 * range but crosses its end is not claimed by that range. */
typedef struct vmm_bus_ops {
	/* Return the value of a `size`-byte read (1, 2, 4 or 8) at `offset` into the range;
	 * only the low `size` bytes are used. NULL: reads return all-ones. */
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
 * range beyond 0xffff), -EEXIST (overlaps a registered range), -ENOMEM, -EDEADLK (called
 * from a callback of the same space). */
VMM_API int vmm_bus_register(vmm_bus *bus, vmm_bus_space space, uint64_t base, uint64_t len,
			     const vmm_bus_ops *ops, void *opaque);

/* Unregisters the range starting at `base`. Returns 0, -ENOENT, or -EDEADLK (called
 * from a callback of the same space). When it returns, no callback of that range is
 * running or will run, so its opaque state may be freed. */
VMM_API int vmm_bus_unregister(vmm_bus *bus, vmm_bus_space space, uint64_t base);

/* Dispatches an access as a vCPU exit would (exported for tests and for devices that
 * forward accesses). `data` holds `size` bytes (1, 2, 4 or 8), little-endian. Returns 0
 * if a device claimed the access, -ENOENT if none did (reads then fill `data` with 0xff;
 * no error message is recorded, as this is a normal outcome on the vCPU's hot path),
 * -EINVAL for a bad space or size (a read of 3, 5, 6 or 7 bytes, which KVM produces
 * when it splits an MMIO access crossing a page, also fills `data` with 0xff and reaches
 * no device). Any thread. */
VMM_API int vmm_bus_read(vmm_bus *bus, vmm_bus_space space, uint64_t addr, void *data, unsigned size);
VMM_API int vmm_bus_write(vmm_bus *bus, vmm_bus_space space, uint64_t addr, const void *data, unsigned size);

/* ioeventfd: a guest write of `size` bytes (1, 2, 4 or 8; 0 = any size, MMIO without
 * datamatch only) to `addr` signals eventfd `fd` in the kernel, without a vCPU exit to
 * user space. With VMM_IOEVENTFD_DATAMATCH only writes of `datamatch` (which must fit in
 * `size` bytes) signal. The fd stays the caller's; keep it open until it is removed or
 * the VM is destroyed (KVM identifies it by fd on removal). Remove takes the same
 * arguments as add. Only for a VM's bus. Returns 0, -EINVAL, -EEXIST (already added, or
 * KVM has one at the same address/size/datamatch), -ENOENT (remove of one not added),
 * -ENODEV (standalone bus), or the errno of KVM_IOEVENTFD. */
#define VMM_IOEVENTFD_DATAMATCH (1u << 0)
VMM_API int vmm_bus_add_ioeventfd(vmm_bus *bus, vmm_bus_space space, uint64_t addr, unsigned size,
				  int fd, uint32_t flags, uint64_t datamatch);
VMM_API int vmm_bus_remove_ioeventfd(vmm_bus *bus, vmm_bus_space space, uint64_t addr, unsigned size,
				     int fd, uint32_t flags, uint64_t datamatch);

#ifdef __cplusplus
}
#endif
#endif
