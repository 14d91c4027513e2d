/* PIO/MMIO range registry and dispatch.
 *
 * Each space is a sorted array of non-overlapping ranges; lookup is a binary search under
 * a read lock. vmm_bus_read/vmm_bus_write run on every I/O exit of every vCPU, so they
 * allocate nothing and format no messages: "nobody claimed it" is a normal outcome there
 * and is reported as a bare -ENOENT.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bus_internal.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the data buffers are little-endian and copied as host integers");

#define BUS_PIO_LIMIT 0xffffu
#define BUS_MAX_NESTING 8 /* callbacks that dispatch on a bus, nested this deep, stop */

/* The spaces whose read lock the calling thread holds, innermost first. A frame lives on
 * the stack of dispatch() while it calls a callback. It lets a callback dispatch on the
 * same space again without re-taking the lock (which would deadlock behind a waiting
 * writer), and makes register/unregister from inside a callback of the same space fail
 * with -EDEADLK instead of hanging. Thread-local and only valid during a call: this is
 * not shared state. */
struct dispatch_frame {
	const struct bus_space *space;
	const struct dispatch_frame *up;
	unsigned depth;
};
/* initial-exec: no __tls_get_addr call per dispatch from the shared library. */
static _Thread_local const struct dispatch_frame *tls_frames __attribute__((tls_model("initial-exec")));

static bool held_by_me(const struct bus_space *sp)
{
	for (const struct dispatch_frame *f = tls_frames; f; f = f->up)
		if (f->space == sp)
			return true;
	return false;
}

static bool valid_space(vmm_bus_space space)
{
	return space == VMM_BUS_PIO || space == VMM_BUS_MMIO;
}

static bool valid_size(unsigned size)
{
	return size == 1 || size == 2 || size == 4 || size == 8;
}

static int space_init(struct bus_space *sp, uint64_t limit)
{
	pthread_rwlockattr_t attr;
	int r;

	memset(sp, 0, sizeof *sp);
	sp->limit = limit;
	if ((r = pthread_rwlockattr_init(&attr)))
		return -r;
	/* Writers first: vCPUs that exit all the time must not starve a hot-unplug. Nested
	 * dispatch does not re-lock (see dispatch_frame), so non-recursive is fine. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	r = pthread_rwlock_init(&sp->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	return -r;
}

static void space_fini(struct bus_space *sp)
{
	pthread_rwlock_destroy(&sp->lock);
	free(sp->ranges);
	sp->ranges = NULL;
	sp->n = sp->cap = 0;
}

static int bus_alloc(vmm_bus **out, int vm_fd, bool vm_owned)
{
	vmm_bus *bus;
	int r;

	if (!out)
		return vmm_err(-EINVAL, "bus: NULL out pointer");
	*out = NULL;
	if (!(bus = calloc(1, sizeof *bus)))
		return vmm_err(-ENOMEM, "bus: out of memory");
	bus->vm_fd = vm_fd;
	bus->vm_owned = vm_owned;
	if ((r = pthread_mutex_init(&bus->ioev_lock, NULL))) {
		free(bus);
		return vmm_err(-r, "bus: cannot initialise the ioeventfd lock");
	}
	if ((r = space_init(&bus->space[VMM_BUS_PIO], BUS_PIO_LIMIT)))
		goto fail;
	if ((r = space_init(&bus->space[VMM_BUS_MMIO], UINT64_MAX))) {
		space_fini(&bus->space[VMM_BUS_PIO]);
		goto fail;
	}
	*out = bus;
	return 0;
fail:
	pthread_mutex_destroy(&bus->ioev_lock);
	free(bus);
	return vmm_err(r, "bus: cannot initialise the range lock");
}

int vmm_bus_create(vmm_bus **out)
{
	return bus_alloc(out, -1, false);
}

int vmm_bus_create_for_vm(vmm_bus **out, int vm_fd)
{
	if (vm_fd < 0)
		return vmm_err(-EINVAL, "bus: invalid VM fd %d", vm_fd);
	return bus_alloc(out, vm_fd, true);
}

void vmm_bus_free(vmm_bus *bus)
{
	if (!bus)
		return;
	vmm_bus_ioeventfd_release(bus);
	space_fini(&bus->space[VMM_BUS_PIO]);
	space_fini(&bus->space[VMM_BUS_MMIO]);
	pthread_mutex_destroy(&bus->ioev_lock);
	free(bus);
}

void vmm_bus_destroy(vmm_bus *bus)
{
	if (bus && !bus->vm_owned)
		vmm_bus_free(bus);
}

/* Index of the first range whose base is greater than addr (0..n). */
static size_t upper_bound(const struct bus_space *sp, uint64_t addr)
{
	size_t lo = 0, hi = sp->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sp->ranges[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The range holding all of [addr, addr + size), or NULL. An access that starts inside a
 * range but crosses its end is unclaimed: a callback always gets offset + size <= len,
 * so a device never has to guard against a straddling guest access. */
static const struct bus_range *lookup(const struct bus_space *sp, uint64_t addr, unsigned size)
{
	size_t i = upper_bound(sp, addr);
	if (i == 0)
		return NULL;
	const struct bus_range *r = &sp->ranges[i - 1];
	uint64_t off = addr - r->base;
	if (size > r->len || off > r->len - size)
		return NULL;
	return r;
}

int vmm_bus_register(vmm_bus *bus, vmm_bus_space space, uint64_t base, uint64_t len,
		     const vmm_bus_ops *ops, void *opaque)
{
	if (!bus || !ops || !valid_space(space))
		return vmm_err(-EINVAL, "bus: register: NULL bus or ops, or bad space %d", (int)space);
	struct bus_space *sp = &bus->space[space];
	const char *name = space == VMM_BUS_PIO ? "PIO" : "MMIO";
	uint64_t last;

	if (len == 0)
		return vmm_err(-EINVAL, "bus: %s range at %#llx has length 0", name,
			       (unsigned long long)base);
	if (vmm_add_overflows(base, len - 1, &last) || last > sp->limit)
		return vmm_err(-EINVAL, "bus: %s range %#llx + %#llx goes past %#llx", name,
			       (unsigned long long)base, (unsigned long long)len,
			       (unsigned long long)sp->limit);
	if (held_by_me(sp))
		return vmm_err(-EDEADLK, "bus: %s register called from a %s callback", name, name);

	int r = 0;
	pthread_rwlock_wrlock(&sp->lock);
	size_t i = upper_bound(sp, base);
	if (i > 0 && sp->ranges[i - 1].base + (sp->ranges[i - 1].len - 1) >= base) {
		r = vmm_err(-EEXIST, "bus: %s range [%#llx, %#llx] overlaps [%#llx, +%#llx)", name,
			    (unsigned long long)base, (unsigned long long)last,
			    (unsigned long long)sp->ranges[i - 1].base,
			    (unsigned long long)sp->ranges[i - 1].len);
		goto out;
	}
	if (i < sp->n && sp->ranges[i].base <= last) {
		r = vmm_err(-EEXIST, "bus: %s range [%#llx, %#llx] overlaps [%#llx, +%#llx)", name,
			    (unsigned long long)base, (unsigned long long)last,
			    (unsigned long long)sp->ranges[i].base,
			    (unsigned long long)sp->ranges[i].len);
		goto out;
	}
	if (sp->n == sp->cap) {
		size_t cap = sp->cap ? sp->cap * 2 : 16;
		struct bus_range *nr;
		if (cap < sp->cap || cap > SIZE_MAX / sizeof *nr ||
		    !(nr = realloc(sp->ranges, cap * sizeof *nr))) {
			r = vmm_err(-ENOMEM, "bus: out of memory for %s ranges", name);
			goto out;
		}
		sp->ranges = nr;
		sp->cap = cap;
	}
	memmove(&sp->ranges[i + 1], &sp->ranges[i], (sp->n - i) * sizeof *sp->ranges);
	sp->ranges[i] = (struct bus_range){ .base = base, .len = len, .ops = *ops, .opaque = opaque };
	sp->n++;
out:
	pthread_rwlock_unlock(&sp->lock);
	return r;
}

int vmm_bus_unregister(vmm_bus *bus, vmm_bus_space space, uint64_t base)
{
	if (!bus || !valid_space(space))
		return vmm_err(-EINVAL, "bus: unregister: NULL bus or bad space %d", (int)space);
	struct bus_space *sp = &bus->space[space];
	const char *name = space == VMM_BUS_PIO ? "PIO" : "MMIO";

	if (held_by_me(sp))
		return vmm_err(-EDEADLK, "bus: %s unregister called from a %s callback", name, name);

	int r = 0;
	pthread_rwlock_wrlock(&sp->lock);
	size_t i = upper_bound(sp, base);
	if (i == 0 || sp->ranges[i - 1].base != base) {
		r = vmm_err(-ENOENT, "bus: no %s range starts at %#llx", name, (unsigned long long)base);
	} else {
		memmove(&sp->ranges[i - 1], &sp->ranges[i], (sp->n - i) * sizeof *sp->ranges);
		sp->n--;
	}
	pthread_rwlock_unlock(&sp->lock);
	return r;
}

/* The hot path. *val is the value to write, or receives the value read. */
static int dispatch(vmm_bus *bus, vmm_bus_space space, uint64_t addr, unsigned size,
		    bool write, uint64_t *val)
{
	struct bus_space *sp = &bus->space[space];
	const struct dispatch_frame *up = tls_frames;
	bool nested = up && held_by_me(sp);
	int r = -ENOENT;

	if (up && up->depth >= BUS_MAX_NESTING)
		return vmm_err(-ELOOP, "bus: device callbacks nested more than %d deep",
			       BUS_MAX_NESTING);
	if (!nested)
		pthread_rwlock_rdlock(&sp->lock);
	const struct bus_range *rg = lookup(sp, addr, size);
	if (rg) {
		struct dispatch_frame frame = { sp, up, up ? up->depth + 1 : 1 };
		uint64_t off = addr - rg->base;
		tls_frames = &frame;
		if (write) {
			if (rg->ops.write)
				rg->ops.write(rg->opaque, off, size, *val);
		} else {
			*val = rg->ops.read ? rg->ops.read(rg->opaque, off, size) : UINT64_MAX;
		}
		tls_frames = up;
		r = 0;
	}
	if (!nested)
		pthread_rwlock_unlock(&sp->lock);
	return r;
}

int vmm_bus_read(vmm_bus *bus, vmm_bus_space space, uint64_t addr, void *data, unsigned size)
{
	if (!bus || !data || !valid_space(space))
		return vmm_err(-EINVAL, "bus: read: NULL bus or data, or bad space %d", (int)space);
	if (!valid_size(size)) {
		/* KVM splits an MMIO access that crosses a page boundary, so a guest can make
		 * 3-, 5-, 6- or 7-byte reads: they read as all-ones, like an unclaimed address. */
		if (size <= 8)
			memset(data, 0xff, size);
		return vmm_err(-EINVAL, "bus: read of unsupported size %u at %#llx", size,
			       (unsigned long long)addr);
	}
	uint64_t val = UINT64_MAX;
	int r = dispatch(bus, space, addr, size, false, &val);
	if (r)
		val = UINT64_MAX;
	memcpy(data, &val, size); /* low bytes first: little-endian host */
	return r;
}

int vmm_bus_write(vmm_bus *bus, vmm_bus_space space, uint64_t addr, const void *data, unsigned size)
{
	if (!bus || !data || !valid_space(space))
		return vmm_err(-EINVAL, "bus: write: NULL bus or data, or bad space %d", (int)space);
	if (!valid_size(size))
		return vmm_err(-EINVAL, "bus: write of unsupported size %u at %#llx", size,
			       (unsigned long long)addr);
	uint64_t val = 0;
	memcpy(&val, data, size);
	return dispatch(bus, space, addr, size, true, &val);
}
