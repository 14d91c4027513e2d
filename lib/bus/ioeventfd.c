/* ioeventfd: guest writes that signal an eventfd inside KVM, without a user-space exit.
 *
 * KVM keeps the real table; we keep a copy of what this bus assigned so a duplicate is
 * -EEXIST, removing something never added is -ENOENT (KVM's own answer would be a less
 * helpful -ENOENT/-EINVAL mix), and vmm_bus_free can deassign whatever is left. This is
 * control-path code: a mutex and a linear list are plenty.
 */
#include <pthread.h>
#include <stdlib.h>

#include "../kvm/kvm.h"
#include "bus_internal.h"

/* Validates the arguments and fills the entry as it will be stored and passed to KVM. */
static int ioev_prepare(const vmm_bus *bus, vmm_bus_space space, uint64_t addr, unsigned size,
			int fd, uint32_t flags, uint64_t datamatch, struct bus_ioeventfd *e)
{
	const char *name = space == VMM_BUS_PIO ? "PIO" : "MMIO";
	bool dm = flags & VMM_IOEVENTFD_DATAMATCH;
	uint64_t last;

	if (!bus)
		return vmm_err(-EINVAL, "bus: ioeventfd: NULL bus");
	if (bus->vm_fd < 0)
		return vmm_err(-ENODEV, "bus: ioeventfd needs a VM's bus, not a standalone one");
	if (space != VMM_BUS_PIO && space != VMM_BUS_MMIO)
		return vmm_err(-EINVAL, "bus: ioeventfd: bad space %d", (int)space);
	if (flags & ~VMM_IOEVENTFD_DATAMATCH)
		return vmm_err(-EINVAL, "bus: ioeventfd: unknown flags %#x", flags);
	if (fd < 0)
		return vmm_err(-EINVAL, "bus: ioeventfd: invalid fd %d", fd);
	/* Size 0 ("any width") exists in KVM for MMIO only, and cannot match data. */
	if (!(size == 1 || size == 2 || size == 4 || size == 8 ||
	      (size == 0 && space == VMM_BUS_MMIO && !dm)))
		return vmm_err(-EINVAL, "bus: %s ioeventfd at %#llx: invalid size %u%s", name,
			       (unsigned long long)addr, size,
			       size == 0 ? " (0 is only for MMIO without datamatch)" : "");
	if (vmm_add_overflows(addr, size ? size - 1 : 0, &last) ||
	    (space == VMM_BUS_PIO && last > 0xffff))
		return vmm_err(-EINVAL, "bus: %s ioeventfd at %#llx size %u is out of range", name,
			       (unsigned long long)addr, size);
	/* KVM compares the written value with the full 64-bit datamatch: one that does not
	 * fit in `size` bytes could never fire, which is surely a caller bug. */
	if (dm && size < 8 && (datamatch >> (size * 8)))
		return vmm_err(-EINVAL, "bus: %s ioeventfd at %#llx: datamatch %#llx wider than %u bytes",
			       name, (unsigned long long)addr, (unsigned long long)datamatch, size);

	*e = (struct bus_ioeventfd){
		.addr = addr,
		.datamatch = dm ? datamatch : 0,
		.size = size,
		.kvm_flags = (space == VMM_BUS_PIO ? KVM_IOEVENTFD_FLAG_PIO : 0) |
			     (dm ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0),
		.fd = fd,
	};
	return 0;
}

static int ioev_kvm(int vm_fd, const struct bus_ioeventfd *e, bool deassign)
{
	struct kvm_ioeventfd k = {
		.datamatch = e->datamatch,
		.addr = e->addr,
		.len = e->size,
		.fd = e->fd,
		.flags = e->kvm_flags | (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0),
	};
	return vmm_kvm_ioeventfd(vm_fd, &k);
}

static bool ioev_same(const struct bus_ioeventfd *a, const struct bus_ioeventfd *b)
{
	return a->addr == b->addr && a->size == b->size && a->fd == b->fd &&
	       a->kvm_flags == b->kvm_flags && a->datamatch == b->datamatch;
}

static size_t ioev_find(const vmm_bus *bus, const struct bus_ioeventfd *e)
{
	size_t i;
	for (i = 0; i < bus->ioev_n; i++)
		if (ioev_same(&bus->ioev[i], e))
			break;
	return i;
}

int vmm_bus_add_ioeventfd(vmm_bus *bus, vmm_bus_space space, uint64_t addr, unsigned size,
			  int fd, uint32_t flags, uint64_t datamatch)
{
	struct bus_ioeventfd e;
	int r = ioev_prepare(bus, space, addr, size, fd, flags, datamatch, &e);
	if (r)
		return r;

	pthread_mutex_lock(&bus->ioev_lock);
	if (ioev_find(bus, &e) < bus->ioev_n) {
		r = vmm_err(-EEXIST, "bus: ioeventfd (fd %d at %#llx size %u) is already registered",
			    fd, (unsigned long long)addr, size);
		goto out;
	}
	if (bus->ioev_n == bus->ioev_cap) {
		size_t cap = bus->ioev_cap ? bus->ioev_cap * 2 : 8;
		struct bus_ioeventfd *n;
		if (cap > SIZE_MAX / sizeof *n || !(n = realloc(bus->ioev, cap * sizeof *n))) {
			r = vmm_err(-ENOMEM, "bus: out of memory for ioeventfds");
			goto out;
		}
		bus->ioev = n;
		bus->ioev_cap = cap;
	}
	if ((r = ioev_kvm(bus->vm_fd, &e, false)) < 0) {
		r = vmm_err(r, "bus: KVM_IOEVENTFD (fd %d at %#llx size %u) failed: %s", fd,
			    (unsigned long long)addr, size, vmm_strerror(r));
		goto out;
	}
	bus->ioev[bus->ioev_n++] = e;
	r = 0;
out:
	pthread_mutex_unlock(&bus->ioev_lock);
	return r;
}

int vmm_bus_remove_ioeventfd(vmm_bus *bus, vmm_bus_space space, uint64_t addr, unsigned size,
			     int fd, uint32_t flags, uint64_t datamatch)
{
	struct bus_ioeventfd e;
	int r = ioev_prepare(bus, space, addr, size, fd, flags, datamatch, &e);
	if (r)
		return r;

	pthread_mutex_lock(&bus->ioev_lock);
	size_t i = ioev_find(bus, &e);
	if (i == bus->ioev_n) {
		r = vmm_err(-ENOENT, "bus: no ioeventfd (fd %d at %#llx size %u) is registered", fd,
			    (unsigned long long)addr, size);
		goto out;
	}
	/* On failure (e.g. the caller closed the fd, so KVM cannot identify it) KVM still
	 * has the entry, so we keep ours too. */
	if ((r = ioev_kvm(bus->vm_fd, &e, true)) < 0) {
		r = vmm_err(r, "bus: KVM_IOEVENTFD deassign (fd %d at %#llx size %u) failed: %s", fd,
			    (unsigned long long)addr, size, vmm_strerror(r));
		goto out;
	}
	bus->ioev[i] = bus->ioev[--bus->ioev_n];
	r = 0;
out:
	pthread_mutex_unlock(&bus->ioev_lock);
	return r;
}

void vmm_bus_ioeventfd_release(vmm_bus *bus)
{
	/* Best effort: the VM fd is about to close, which drops KVM's table anyway; this
	 * matters when a VM outlives its bus in some future arrangement, and keeps KVM's
	 * references to the caller's eventfds no longer than the bus. */
	for (size_t i = 0; i < bus->ioev_n; i++)
		(void)ioev_kvm(bus->vm_fd, &bus->ioev[i], true);
	free(bus->ioev);
	bus->ioev = NULL;
	bus->ioev_n = bus->ioev_cap = 0;
}
