/* The I/O bus object, shared by bus.c (ranges, dispatch) and ioeventfd.c. */
#ifndef LIBVMM_BUS_INTERNAL_H
#define LIBVMM_BUS_INTERNAL_H

#include <pthread.h>

#include "../internal.h"

/* One registered range: [base, base + len), len > 0, base + len - 1 does not wrap. */
struct bus_range {
	uint64_t base;
	uint64_t len;
	vmm_bus_ops ops;
	void *opaque;
};

/* One address space: ranges sorted by base, never overlapping. The rwlock is taken for
 * reading around every dispatch and for writing by register/unregister, so a range's
 * callbacks are finished once its unregister returns. Each space has its own lock so a
 * PIO callback (e.g. PCI config space through 0xcf8/0xcfc) may move an MMIO range. */
struct bus_space {
	pthread_rwlock_t lock;
	struct bus_range *ranges;
	size_t n;
	size_t cap;
	uint64_t limit; /* highest valid address */
};

/* An eventfd registered with KVM_IOEVENTFD, remembered so duplicates and unknown removals
 * are reported and vmm_bus_free can deassign what is left. */
struct bus_ioeventfd {
	uint64_t addr;
	uint64_t datamatch; /* 0 unless datamatch is set */
	uint32_t size;
	uint32_t kvm_flags; /* KVM_IOEVENTFD_FLAG_PIO / _DATAMATCH */
	int fd;
};

struct vmm_bus {
	struct bus_space space[2]; /* indexed by vmm_bus_space */
	int vm_fd;                 /* -1 for a standalone bus */
	bool vm_owned;             /* freed by vmm_vm_destroy, not vmm_bus_destroy */

	pthread_mutex_t ioev_lock; /* guards the list below (control path only) */
	struct bus_ioeventfd *ioev;
	size_t ioev_n;
	size_t ioev_cap;
};

/* ioeventfd.c: deassigns every ioeventfd still registered and frees the list. */
VMM_HIDDEN void vmm_bus_ioeventfd_release(vmm_bus *bus);

#endif
