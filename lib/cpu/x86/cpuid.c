/* CPUID tables: a sorted array of entries, KVM's supported table with libvmm's defaults,
 * and the editing calls. The named-feature table lives in cpuid_features.c.
 *
 * Invariants kept by every call that modifies a table:
 *  - entries are sorted by (function, index), without duplicates;
 *  - a leaf (function) is either "indexed" (every entry of it has
 *    VMM_CPUID_SIGNIFICANT_INDEX) or "plain" (a single entry, index 0, no flag). This
 *    is what makes lookups unambiguous: KVM, given a plain entry, returns it for every
 *    sub-leaf, so a plain entry next to indexed ones would silently shadow them.
 *  - flags holds no bit other than VMM_CPUID_SIGNIFICANT_INDEX.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../core/vm_internal.h"
#include "../../kvm/kvm.h"
#include <asm/kvm_para.h>

struct vmm_cpuid {
	size_t n;
	vmm_cpuid_entry e[VMM_CPUID_MAX_ENTRIES];
};

static bool indexed(const vmm_cpuid_entry *e)
{
	return (e->flags & VMM_CPUID_SIGNIFICANT_INDEX) != 0;
}

/* First position whose key is >= (function, index). */
static size_t lower_bound(const vmm_cpuid *c, uint32_t function, uint32_t index)
{
	size_t lo = 0, hi = c->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const vmm_cpuid_entry *e = &c->e[mid];
		if (e->function < function || (e->function == function && e->index < index))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Position of the entry CPUID(function, index) reads, or -1. For a plain leaf the index
 * does not matter. */
static ptrdiff_t find(const vmm_cpuid *c, uint32_t function, uint32_t index)
{
	size_t first = lower_bound(c, function, 0);
	if (first >= c->n || c->e[first].function != function)
		return -1;
	if (!indexed(&c->e[first]))
		return (ptrdiff_t)first;
	size_t pos = index == 0 ? first : lower_bound(c, function, index);
	if (pos < c->n && c->e[pos].function == function && c->e[pos].index == index)
		return (ptrdiff_t)pos;
	return -1;
}

int vmm_cpuid_create(vmm_cpuid **out)
{
	if (!out)
		return vmm_err(-EINVAL, "vmm_cpuid_create: out is NULL");
	*out = calloc(1, sizeof **out);
	if (!*out)
		return vmm_err(-ENOMEM, "CPUID table: out of memory");
	return 0;
}

int vmm_cpuid_clone(vmm_cpuid **out, const vmm_cpuid *src)
{
	if (!out || !src)
		return vmm_err(-EINVAL, "vmm_cpuid_clone: NULL argument");
	*out = malloc(sizeof **out);
	if (!*out)
		return vmm_err(-ENOMEM, "CPUID table: out of memory");
	memcpy(*out, src, sizeof **out);
	return 0;
}

void vmm_cpuid_destroy(vmm_cpuid *cpuid)
{
	free(cpuid);
}

size_t vmm_cpuid_count(const vmm_cpuid *cpuid)
{
	return cpuid ? cpuid->n : 0;
}

int vmm_cpuid_entry_at(const vmm_cpuid *cpuid, size_t i, vmm_cpuid_entry *out)
{
	if (!cpuid || !out)
		return vmm_err(-EINVAL, "vmm_cpuid_entry_at: NULL argument");
	if (i >= cpuid->n)
		return vmm_err(-ENOENT, "CPUID table: entry %zu of %zu does not exist", i, cpuid->n);
	*out = cpuid->e[i];
	return 0;
}

int vmm_cpuid_get(const vmm_cpuid *cpuid, uint32_t function, uint32_t index, vmm_cpuid_entry *out)
{
	if (!cpuid || !out)
		return vmm_err(-EINVAL, "vmm_cpuid_get: NULL argument");
	ptrdiff_t pos = find(cpuid, function, index);
	if (pos < 0)
		return vmm_err(-ENOENT, "CPUID leaf 0x%x.%u is not in the table", function, index);
	*out = cpuid->e[pos];
	return 0;
}

int vmm_cpuid_set(vmm_cpuid *cpuid, const vmm_cpuid_entry *entry)
{
	if (!cpuid || !entry)
		return vmm_err(-EINVAL, "vmm_cpuid_set: NULL argument");
	if (entry->flags & ~VMM_CPUID_SIGNIFICANT_INDEX)
		return vmm_err(-EINVAL, "CPUID leaf 0x%x: unknown flags 0x%x", entry->function,
			       entry->flags & ~VMM_CPUID_SIGNIFICANT_INDEX);
	vmm_cpuid_entry e = *entry;
	if (!indexed(&e))
		e.index = 0; /* a plain leaf answers every sub-leaf; store it once, at 0 */

	size_t first = lower_bound(cpuid, e.function, 0);
	if (first < cpuid->n && cpuid->e[first].function == e.function &&
	    indexed(&cpuid->e[first]) != indexed(&e)) {
		/* Refuse rather than guess: either choice would silently drop or shadow
		 * the sub-leaves already there. */
		return vmm_err(-EINVAL,
			       "CPUID leaf 0x%x is %s in the table; remove it before setting it %s",
			       e.function, indexed(&e) ? "plain (no significant index)" : "indexed",
			       indexed(&e) ? "with VMM_CPUID_SIGNIFICANT_INDEX" : "without it");
	}

	size_t pos = lower_bound(cpuid, e.function, e.index);
	if (pos < cpuid->n && cpuid->e[pos].function == e.function && cpuid->e[pos].index == e.index) {
		cpuid->e[pos] = e;
		return 0;
	}
	if (cpuid->n >= VMM_CPUID_MAX_ENTRIES)
		return vmm_err(-ENOSPC, "CPUID table full (%d entries): cannot add leaf 0x%x.%u",
			       VMM_CPUID_MAX_ENTRIES, e.function, e.index);
	memmove(&cpuid->e[pos + 1], &cpuid->e[pos], (cpuid->n - pos) * sizeof e);
	cpuid->e[pos] = e;
	cpuid->n++;
	return 0;
}

int vmm_cpuid_remove(vmm_cpuid *cpuid, uint32_t function, uint32_t index)
{
	if (!cpuid)
		return vmm_err(-EINVAL, "vmm_cpuid_remove: NULL table");
	ptrdiff_t found = find(cpuid, function, index);
	if (found < 0)
		return vmm_err(-ENOENT, "CPUID leaf 0x%x.%u is not in the table", function, index);
	size_t pos = (size_t)found;
	memmove(&cpuid->e[pos], &cpuid->e[pos + 1], (cpuid->n - pos - 1) * sizeof cpuid->e[0]);
	cpuid->n--;
	return 0;
}

static uint32_t *reg_of(vmm_cpuid_entry *e, vmm_cpuid_reg reg)
{
	switch (reg) {
	case VMM_CPUID_EAX: return &e->eax;
	case VMM_CPUID_EBX: return &e->ebx;
	case VMM_CPUID_ECX: return &e->ecx;
	case VMM_CPUID_EDX: return &e->edx;
	}
	return NULL;
}

int vmm_cpuid_update(vmm_cpuid *cpuid, uint32_t function, uint32_t index, vmm_cpuid_reg reg,
		     uint32_t clear, uint32_t set)
{
	if (!cpuid)
		return vmm_err(-EINVAL, "vmm_cpuid_update: NULL table");
	ptrdiff_t pos = find(cpuid, function, index);
	if (pos < 0)
		return vmm_err(-ENOENT, "CPUID leaf 0x%x.%u is not in the table", function, index);
	uint32_t *r = reg_of(&cpuid->e[pos], reg);
	if (!r)
		return vmm_err(-EINVAL, "CPUID: register %d is not EAX..EDX", (int)reg);
	*r = (*r & ~clear) | set;
	return 0;
}

int vmm_cpuid_filter(vmm_cpuid *cpuid, vmm_cpuid_filter_fn fn, void *ctx)
{
	if (!cpuid || !fn)
		return vmm_err(-EINVAL, "vmm_cpuid_filter: NULL argument");
	for (size_t i = 0; i < cpuid->n; i++) {
		vmm_cpuid_entry *e = &cpuid->e[i];
		/* The callback edits a copy; only the registers are taken back, so the
		 * entry's identity (function, index, flags) and thus the sort order and
		 * the plain/indexed invariant cannot be broken by it. */
		vmm_cpuid_entry copy = *e;
		int r = fn(ctx, &copy);
		e->eax = copy.eax;
		e->ebx = copy.ebx;
		e->ecx = copy.ecx;
		e->edx = copy.edx;
		if (r != 0)
			return r;
	}
	return 0;
}

const vmm_cpuid_entry *vmm_cpuid_entries(const vmm_cpuid *cpuid, size_t *n)
{
	if (!cpuid) {
		*n = 0;
		return NULL;
	}
	*n = cpuid->n;
	return cpuid->e;
}

/* ---- the default table ------------------------------------------------------------ */

/* KVM_GET_SUPPORTED_CPUID, growing the buffer while KVM says E2BIG. KVM itself caps the
 * table at 256 entries today; the growth limit only keeps a broken kernel from making us
 * allocate without bound. On success *out is a malloc'ed table the caller frees. */
static int get_supported(int kvm_fd, struct kvm_cpuid2 **out)
{
	for (uint32_t cap = 256; cap <= 4096; cap *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof *c + (size_t)cap * sizeof c->entries[0]);
		if (!c)
			return vmm_err(-ENOMEM, "KVM_GET_SUPPORTED_CPUID: out of memory");
		c->nent = cap;
		int r = vmm_kvm_get_supported_cpuid(kvm_fd, c);
		if (r == -E2BIG) {
			free(c);
			continue;
		}
		if (r < 0) {
			free(c);
			return vmm_err(r, "KVM_GET_SUPPORTED_CPUID failed: %s", vmm_strerror(r));
		}
		if (c->nent > cap) { /* never trust a count to stay inside our buffer */
			uint32_t nent = c->nent;
			free(c);
			return vmm_err(-EIO, "KVM_GET_SUPPORTED_CPUID returned %u entries for %u slots",
				       nent, cap);
		}
		*out = c;
		return 0;
	}
	return vmm_err(-E2BIG, "KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

static int import_kvm(vmm_cpuid *t, const struct kvm_cpuid2 *c)
{
	if (c->nent > VMM_CPUID_MAX_ENTRIES)
		return vmm_err(-ENOSPC, "KVM reports %u CPUID entries, more than the %d a table holds",
			       c->nent, VMM_CPUID_MAX_ENTRIES);
	for (uint32_t i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *k = &c->entries[i];
		vmm_cpuid_entry e = {
			.function = k->function,
			.index = k->index,
			.flags = (k->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) ? VMM_CPUID_SIGNIFICANT_INDEX : 0,
			.eax = k->eax, .ebx = k->ebx, .ecx = k->ecx, .edx = k->edx,
		};
		int r = vmm_cpuid_set(t, &e);
		if (r < 0)
			return vmm_err(r == -EINVAL ? -EIO : r,
				       "KVM_GET_SUPPORTED_CPUID: leaf 0x%x.%u conflicts with another entry",
				       k->function, k->index);
	}
	return 0;
}

/* The KVM paravirt leaves sit at 0x40000000 unless another hypervisor interface
 * (Hyper-V) comes first; find them by signature like a guest does. Returns the base or
 * 0. */
static uint32_t kvm_pv_base(const vmm_cpuid *t)
{
	static const char sig[12] = KVM_SIGNATURE;
	uint32_t want[3];
	memcpy(want, sig, sizeof want);
	for (uint32_t base = KVM_CPUID_SIGNATURE; base < 0x40010000u; base += 0x100) {
		ptrdiff_t pos = find(t, base, 0);
		if (pos < 0)
			continue;
		const vmm_cpuid_entry *e = &t->e[pos];
		if (e->ebx == want[0] && e->ecx == want[1] && e->edx == want[2])
			return base;
	}
	return 0;
}

/* Paravirt features whose guest side issues VMCALL/VMMCALL hypercalls. On some hosts
 * (nested PVM, see PLATFORM.md) a hypercall hangs the vCPU, and no guest needs them:
 * each falls back to a native path when the bit is clear.
 *  - PV_UNHALT: pv spinlocks wake a halted vCPU with the KICK_CPU hypercall.
 *  - PV_SEND_IPI: IPIs through the SEND_IPI hypercall.
 *  - PV_SCHED_YIELD: yield to a preempted vCPU through the SCHED_YIELD hypercall.
 *  - HC_MAP_GPA_RANGE: announces the MAP_GPA_RANGE hypercall (encrypted guests).
 *  - PV_TLB_FLUSH needs no hypercall (it marks preempted vCPUs through the steal-time
 *    page), but it belongs to the same set of SMP shortcuts; clearing it only makes the
 *    guest flush by IPI, which keeps the guest on the paths we test.
 * Kept: kvmclock, async PF (including ASYNC_PF_INT), steal time, PV EOI, poll control,
 * MSI extended destination id and migration control: they use MSRs, not hypercalls. */
#define PV_HYPERCALL_FEATURES                                                             \
	((1u << KVM_FEATURE_PV_UNHALT) | (1u << KVM_FEATURE_PV_SEND_IPI) |                 \
	 (1u << KVM_FEATURE_PV_SCHED_YIELD) | (1u << KVM_FEATURE_HC_MAP_GPA_RANGE) |       \
	 (1u << KVM_FEATURE_PV_TLB_FLUSH))

#define CPUID1_ECX_X2APIC (1u << 21)
#define CPUID1_ECX_HYPERVISOR (1u << 31)

/* Sets EDX (the x2APIC id of this vCPU) in every sub-leaf of a topology leaf. */
static void set_topology_x2apic_id(vmm_cpuid *t, uint32_t function, uint32_t apic_id)
{
	for (size_t i = lower_bound(t, function, 0); i < t->n && t->e[i].function == function; i++)
		t->e[i].edx = apic_id;
}

static void apply_defaults(vmm_cpuid *t, uint32_t vcpu_id)
{
	/* Leaf 1: x2APIC (xAPIC MMIO does not work on every host, and a Linux guest picks
	 * x2APIC when offered), "running under a hypervisor", and the 8-bit initial APIC
	 * id in EBX[31:24]. */
	vmm_cpuid_update(t, 1, 0, VMM_CPUID_ECX, 0, CPUID1_ECX_X2APIC | CPUID1_ECX_HYPERVISOR);
	vmm_cpuid_update(t, 1, 0, VMM_CPUID_EBX, 0xff000000u, (vcpu_id & 0xffu) << 24);

	/* Extended topology leaves report the full 32-bit x2APIC id in EDX of every
	 * sub-leaf. */
	set_topology_x2apic_id(t, 0xb, vcpu_id);
	set_topology_x2apic_id(t, 0x1f, vcpu_id);

	uint32_t base = kvm_pv_base(t);
	if (base)
		vmm_cpuid_update(t, base + 1, 0, VMM_CPUID_EAX, PV_HYPERCALL_FEATURES, 0);
	/* Leaf 0xD (XSAVE state sizes) stays as KVM reports it: KVM keeps EBX in step
	 * with the guest's XCR0 at run time. */
}

static int import_supported(int kvm_fd, vmm_cpuid **out)
{
	struct kvm_cpuid2 *kc = NULL;
	vmm_cpuid *t = NULL;
	int r = get_supported(kvm_fd, &kc);
	if (r == 0)
		r = vmm_cpuid_create(&t);
	if (r == 0)
		r = import_kvm(t, kc);
	free(kc);
	if (r < 0) {
		vmm_cpuid_destroy(t);
		return r;
	}
	*out = t;
	return 0;
}

/* KVM_GET_SUPPORTED_CPUID costs ~300 us on nested hosts (a quarter of creating a VM
 * and running its first instruction) and its answer depends only on the kernel and
 * its module parameters. So the imported table of the first KVM device the process
 * uses is kept for the process and shared, read-only, by every VM on that same device
 * (same file, same device number); never freed, since VMs point at it. VMs on another
 * device import a table of their own. */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static vmm_cpuid *shared_table;
static struct stat shared_dev;

static bool same_device(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_rdev == b->st_rdev;
}

/* The table for vm: the shared one if vm's KVM device is the shared table's. */
static int find_supported(vmm_vm *vm)
{
	struct stat st;
	bool known = fstat(vm->kvm_fd, &st) == 0;
	int r = 0;
	pthread_mutex_lock(&shared_lock);
	if (known && shared_table && same_device(&st, &shared_dev)) {
		vm->supported_cpuid = shared_table;
		vm->supported_cpuid_shared = true;
	} else if ((r = import_supported(vm->kvm_fd, &vm->supported_cpuid)) == 0 && known && !shared_table) {
		shared_table = vm->supported_cpuid;
		shared_dev = st;
		vm->supported_cpuid_shared = true;
	}
	pthread_mutex_unlock(&shared_lock);
	return r;
}

static int supported_table(vmm_vm *vm, const vmm_cpuid **out)
{
	int r = 0;
	pthread_mutex_lock(&vm->lock);
	if (!vm->supported_cpuid)
		r = find_supported(vm);
	*out = vm->supported_cpuid;
	pthread_mutex_unlock(&vm->lock);
	return r < 0 ? r : 0;
}

int vmm_cpuid_create_default(vmm_cpuid **out, vmm_vm *vm, uint32_t vcpu_id)
{
	if (!out || !vm)
		return vmm_err(-EINVAL, "vmm_cpuid_create_default: NULL argument");
	*out = NULL;
	const vmm_cpuid *supported;
	int r = supported_table(vm, &supported);
	if (r < 0)
		return r;
	vmm_cpuid *t = NULL;
	if ((r = vmm_cpuid_clone(&t, supported)) < 0)
		return r;
	apply_defaults(t, vcpu_id);
	*out = t;
	return 0;
}
