/* vmm_snapshot_reset: a VM back to its snapshot in place.
 *
 * Cost model (what the hot path does, and nothing else):
 *  - claim the vCPUs (no allocation for up to SNAP_CLAIM_INLINE of them);
 *  - one KVM_RUN with immediate_exit per vCPU whose last exit was port I/O or MMIO:
 *    KVM finishes such an exit at the next KVM_RUN (writes RAX, advances RIP, or
 *    continues an emulated instruction), and must do it before the state is loaded,
 *    not after (it would apply to the snapshot's registers);
 *  - the dirty log: one KVM_GET_DIRTY_LOG per writable slot (or a walk of the dirty
 *    rings), merged with the host-side marks; then one memcpy per run of dirty pages,
 *    from the snapshot's read-only mapping into the VM's memory. Copying into pages
 *    the VM already has is cheaper than dropping them (MADV_DONTNEED) and faulting
 *    them in again through the (shadow) MMU; and pages the guest only read are
 *    untouched;
 *  - per vCPU, the KVM calls that set its state from the prepared buffers: special
 *    registers, registers and events in one KVM_RUN with immediate_exit (sync regs),
 *    then XSAVE, XCRs, LAPIC, MSRs, MP state and debug registers; then the PIC, IOAPIC,
 *    PIT and kvmclock (VM ioctls, cheap). Each vCPU ioctl costs a vcpu_load: a few
 *    hundred nanoseconds on bare-metal KVM, ~5 us on nested PVM, so this is where the
 *    time goes there. All of them, every time: a piece skipped because
 *    "the guest cannot have changed it" is a correctness bet (a guest can write any
 *    MSR it may write, reprogram its LAPIC timer, mask its PIC...), and reading the
 *    state to compare would cost the same ioctls.
 * VMM_SNAPSHOT_RESET_MEMORY_ONLY drops the first and last vCPU steps (no KVM_RUN, no
 * state loads): for callers that know the vCPUs are already in the snapshot's state
 * (lib/sandbox checks it from the registers KVM hands over with every exit), which
 * leaves the claim, the dirty log and the copies: a few microseconds. */
#include <string.h>
#include <time.h>

#include "../core/vm_internal.h"
#include "../mem/mem_internal.h"
#include "snapshot_internal.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct copy_ctx {
	const struct vmm_snapshot *s;
	struct mem_region *regions;
	uint64_t pages, runs;
};

static void copy_run(void *ctx, size_t region, uint64_t first, uint64_t n)
{
	struct copy_ctx *c = ctx;
	const uint64_t *data = c->s->data[region];
	uint8_t *dst = c->regions[region].host;
	const uint8_t *src = c->s->ro[region];
	/* Sub-runs of data pages are copied, sub-runs of holes zeroed. */
	uint64_t p = first, end = first + n;
	while (p < end) {
		bool is_data = data[p / 64] >> (p % 64) & 1;
		uint64_t q = p + 1;
		while (q < end && (bool)(data[q / 64] >> (q % 64) & 1) == is_data)
			q++;
		uint64_t off = p << MEM_PAGE_SHIFT, len = (q - p) << MEM_PAGE_SHIFT;
		if (is_data)
			memcpy(dst + off, src + off, (size_t)len);
		else
			memset(dst + off, 0, (size_t)len);
		p = q;
	}
	c->pages += n;
	c->runs++;
}

/* The VM's memory map is the one the snapshot describes (the binding says it came from
 * it; regions may have been added or removed since). */
static int check_layout(const struct snap_desc *d, const vmm_mem *mem)
{
	if (mem->nr != d->nr_regions)
		return vmm_err(-EINVAL, "vmm_snapshot_reset: the VM has %zu memory regions, the snapshot %u", mem->nr,
			       d->nr_regions);
	for (uint32_t i = 0; i < d->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];
		const struct snap_region *s = &d->regions[i];
		if (r->gpa != s->gpa || r->len != s->len || (r->flags & VMM_MEM_READONLY) != (s->flags & VMM_MEM_READONLY))
			return vmm_err(-EINVAL, "vmm_snapshot_reset: memory region %u is [%#llx, +%#llx), the snapshot's "
					"[%#llx, +%#llx)", i, (unsigned long long)r->gpa, (unsigned long long)r->len,
				       (unsigned long long)s->gpa, (unsigned long long)s->len);
	}
	return 0;
}

static int check_vcpus(const struct snap_desc *d, const struct snap_claim *c)
{
	if (c->n != d->nr_vcpus)
		return vmm_err(-EINVAL, "vmm_snapshot_reset: the VM has %zu vCPUs, the snapshot %u", c->n, d->nr_vcpus);
	for (uint32_t i = 0; i < d->nr_vcpus; i++)
		if (c->vcpus[i]->id != d->vcpus[i].id)
			return vmm_err(-EINVAL, "vmm_snapshot_reset: vCPU %u has id %u, the snapshot's %u", i,
				       c->vcpus[i]->id, d->vcpus[i].id);
	return 0;
}

int vmm_snapshot_reset_with(vmm_snapshot *snap, vmm_vm *vm, const vmm_snapshot_reset_opts *opts,
			    vmm_snapshot_reset_stats *stats)
{
	uint64_t t0 = now_ns();
	if (!snap || !vm)
		return vmm_err(-EINVAL, "vmm_snapshot_reset: NULL argument");
	vmm_snapshot_reset_opts o = VMM_SNAPSHOT_RESET_OPTS_INIT;
	if (opts && vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "vmm_snapshot_reset: opts->size is too small");
	if (stats && stats->size < sizeof(uint32_t))
		return vmm_err(-EINVAL, "vmm_snapshot_reset: stats->size is too small (use VMM_SNAPSHOT_RESET_STATS_INIT)");
	const struct snap_desc *d = snap->d;
	if (o.flags & ~(uint32_t)VMM_SNAPSHOT_RESET_MEMORY_ONLY)
		return vmm_err(-EINVAL, "vmm_snapshot_reset: unknown flags %#x", o.flags & ~(uint32_t)VMM_SNAPSHOT_RESET_MEMORY_ONLY);
	if (o.nr_devices && (!o.devices || o.nr_devices != d->nr_devices))
		return vmm_err(-EINVAL, "vmm_snapshot_reset: %zu devices given, the snapshot has %u states%s", o.nr_devices,
			       d->nr_devices, o.devices ? "" : " (and devices is NULL)");
	if (!vmm_mem_snap_bound(vm->mem, d->mem_id))
		return vmm_err(-EINVAL, "vmm_snapshot_reset: the VM is not bound to this snapshot (reset works on a "
				"clone of it, the VM it was taken from, or a VM last reset to it)");
	int r = check_layout(d, vm->mem);
	if (r)
		return r;

	struct snap_claim claim;
	if ((r = snap_claim_vcpus(vm, &claim)))
		return r;
	/* Memory only: the vCPUs are not touched, their pending I/O included (the next
	 * KVM_RUN completes it, which writes no memory but for a string IN's data). */
	bool mem_only = o.flags & VMM_SNAPSHOT_RESET_MEMORY_ONLY;
	if ((r = check_vcpus(d, &claim)) || (!mem_only && (r = snap_complete_io(&claim, true))))
		goto out;
	struct copy_ctx cc = { .s = snap, .regions = vm->mem->regions };
	if ((r = vmm_mem_snap_collect(vm->mem, copy_run, &cc)))
		goto out;
	uint64_t t1 = now_ns();
	if (!mem_only) {
		bool sync = snap_can_sync_regs(vm);
		for (uint32_t i = 0; i < d->nr_vcpus && !r; i++)
			r = snap_reset_vcpu(claim.vcpus[i], &d->vcpus[i], sync);
		if (!r)
			r = snap_load_vm(vm, d);
	}
	uint64_t t2 = now_ns();
	for (size_t i = 0; i < o.nr_devices && !r; i++)
		r = vmm_virtio_mmio_load_state(o.devices[i], d->devices[i].data, d->devices[i].len);
	if (!r && stats) {
		vmm_snapshot_reset_stats st = {
			.size = stats->size, .nr_vcpus = mem_only ? 0 : d->nr_vcpus, .pages_copied = cc.pages, .runs = cc.runs,
			.devices = o.nr_devices, .ns_total = now_ns() - t0, .ns_memory = t1 - t0,
			.ns_vcpus = mem_only ? 0 : t2 - t1,
		};
		memcpy(stats, &st, stats->size < sizeof st ? stats->size : sizeof st);
	}
out:
	snap_release_vcpus(&claim);
	return r;
}

int vmm_snapshot_reset(vmm_snapshot *snap, vmm_vm *vm, vmm_snapshot_reset_stats *stats)
{
	return vmm_snapshot_reset_with(snap, vm, NULL, stats);
}
