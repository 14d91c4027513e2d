/* Capture: reads a stopped VM's state from KVM into a snapshot description. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../core/vm_internal.h"
#include "../kvm/kvm.h"
#include "../mem/mem_internal.h"
#include "snapshot_internal.h"

/* ---- MSRs ---- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The MSRs KVM says it saves and restores (KVM_GET_MSR_INDEX_LIST), sorted, unique. */
static int msr_index_list(int kvm_fd, uint32_t **out, uint32_t *n)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	int r = vmm_kvm_get_msr_index_list(kvm_fd, &probe);
	if (r < 0 && r != -E2BIG)
		return vmm_err(r, "snapshot: KVM_GET_MSR_INDEX_LIST failed");
	uint32_t cnt = probe.nmsrs;
	if (cnt > SNAP_MAX_MSRS)
		return vmm_err(-ENOTSUP, "snapshot: KVM lists %u MSRs, more than the %u a snapshot holds", cnt,
			       SNAP_MAX_MSRS);
	struct kvm_msr_list *l = calloc(1, sizeof *l + (size_t)(cnt ? cnt : 1) * sizeof l->indices[0]);
	if (!l)
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	l->nmsrs = cnt;
	if (cnt && (r = vmm_kvm_get_msr_index_list(kvm_fd, l)) < 0) {
		free(l);
		return vmm_err(r, "snapshot: KVM_GET_MSR_INDEX_LIST failed");
	}
	cnt = l->nmsrs < cnt ? l->nmsrs : cnt;
	uint32_t *idx = malloc((size_t)(cnt ? cnt : 1) * sizeof *idx);
	if (!idx) {
		free(l);
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	}
	memcpy(idx, l->indices, (size_t)cnt * sizeof *idx);
	free(l);
	qsort(idx, cnt, sizeof *idx, cmp_u32);
	uint32_t k = 0;
	for (uint32_t i = 0; i < cnt; i++)
		if (k == 0 || idx[i] != idx[k - 1])
			idx[k++] = idx[i];
	*out = idx;
	*n = k;
	return 0;
}

/* Reads the MSRs in idx[0..n) and keeps those KVM_GET_MSRS accepts: KVM stops at the
 * first one it refuses (its return value is how many it read), so that one is dropped
 * and the read continues after it. Leaves the kept indices in idx (so the next vCPU
 * starts from the filtered list: the probe happens once per save) and the values in
 * v->msrs. */
static int read_msrs(vmm_vcpu *vc, uint32_t *idx, uint32_t *n, struct snap_vcpu *v)
{
	uint32_t cnt = *n;
	struct kvm_msrs *b = calloc(1, sizeof *b + (size_t)(cnt ? cnt : 1) * sizeof b->entries[0]);
	v->msrs = calloc(cnt ? cnt : 1, sizeof *v->msrs);
	if (!b || !v->msrs) {
		free(b);
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	}
	uint32_t done = 0;
	while (done < cnt) {
		b->nmsrs = cnt - done;
		for (uint32_t i = 0; i < b->nmsrs; i++)
			b->entries[i] = (struct kvm_msr_entry){ .index = idx[done + i] };
		int r = vmm_kvm_get_msrs(vc->fd, b);
		if (r < 0) {
			free(b);
			return vmm_err(r, "snapshot: vCPU %u: KVM_GET_MSRS failed", vc->id);
		}
		for (int i = 0; i < r; i++)
			v->msrs[done + (uint32_t)i] = (struct snap_msr){ .index = b->entries[i].index,
									  .value = b->entries[i].data };
		done += (uint32_t)r;
		if (done < cnt) { /* idx[done] is refused: drop it */
			memmove(&idx[done], &idx[done + 1], (size_t)(cnt - done - 1) * sizeof *idx);
			cnt--;
		}
	}
	free(b);
	v->nr_msrs = cnt;
	*n = cnt;
	return 0;
}

/* ---- CPUID ---- */

static int cmp_cpuid(const void *a, const void *b)
{
	const vmm_cpuid_entry *x = a, *y = b;
	if (x->function != y->function)
		return x->function < y->function ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

static int read_cpuid(vmm_vcpu *vc, struct snap_vcpu *v)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof *c + SNAP_MAX_CPUID * sizeof c->entries[0]);
	if (!c)
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	c->nent = SNAP_MAX_CPUID;
	int r = vmm_kvm_get_cpuid2(vc->fd, c);
	if (r < 0) {
		free(c);
		return vmm_err(r, "snapshot: vCPU %u: KVM_GET_CPUID2 failed", vc->id);
	}
	uint32_t n = c->nent <= SNAP_MAX_CPUID ? c->nent : SNAP_MAX_CPUID;
	v->cpuid = calloc(n ? n : 1, sizeof *v->cpuid);
	if (!v->cpuid) {
		free(c);
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];
		bool indexed = e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
		v->cpuid[i] = (vmm_cpuid_entry){
			.function = e->function, .index = indexed ? e->index : 0,
			.flags = indexed ? VMM_CPUID_SIGNIFICANT_INDEX : 0,
			.eax = e->eax, .ebx = e->ebx, .ecx = e->ecx, .edx = e->edx,
		};
	}
	free(c);
	qsort(v->cpuid, n, sizeof *v->cpuid, cmp_cpuid);
	v->nr_cpuid = n;
	return 0;
}

/* ---- one vCPU ---- */

static int read_fpu_state(vmm_vcpu *vc, struct snap_vcpu *v)
{
	int vm_fd = vc->vm->vm_fd;
	int size2 = vmm_kvm_check_extension(vm_fd, KVM_CAP_XSAVE2);
	bool xsave = vmm_kvm_check_extension(vm_fd, KVM_CAP_XSAVE) > 0;
	int r;
	if (size2 >= (int)SNAP_MIN_XSAVE || xsave) {
		uint32_t len = size2 >= (int)SNAP_MIN_XSAVE ? (uint32_t)size2 : SNAP_MIN_XSAVE;
		if (len > SNAP_MAX_XSAVE || len % 4)
			return vmm_err(-ENOTSUP, "snapshot: KVM's XSAVE area of %u bytes is over the %u a snapshot holds",
				       len, SNAP_MAX_XSAVE);
		if (!(v->xsave = calloc(1, len)))
			return vmm_err(-ENOMEM, "snapshot: out of memory");
		r = size2 >= (int)SNAP_MIN_XSAVE ? vmm_kvm_get_xsave2(vc->fd, v->xsave)
						 : vmm_kvm_get_xsave(vc->fd, (struct kvm_xsave *)v->xsave);
		if (r < 0)
			return vmm_err(r, "snapshot: vCPU %u: KVM_GET_XSAVE failed", vc->id);
		v->xsave_len = len;
		v->have |= SNAP_HAVE_XSAVE;
	} else if ((r = vmm_kvm_get_fpu(vc->fd, &v->fpu)) < 0) {
		return vmm_err(r, "snapshot: vCPU %u: KVM_GET_FPU failed", vc->id);
	}
	if (vmm_kvm_check_extension(vm_fd, KVM_CAP_XCRS) > 0) {
		if ((r = vmm_kvm_get_xcrs(vc->fd, &v->xcrs)) < 0)
			return vmm_err(r, "snapshot: vCPU %u: KVM_GET_XCRS failed", vc->id);
		if (v->xcrs.nr_xcrs > KVM_MAX_XCRS)
			return vmm_err(-EIO, "snapshot: vCPU %u: KVM reported %u XCRs", vc->id, v->xcrs.nr_xcrs);
		v->have |= SNAP_HAVE_XCRS;
	}
	return 0;
}

static int read_vcpu(vmm_vcpu *vc, struct snap_vcpu *v, uint32_t *msr_idx, uint32_t *nr_msr)
{
	int r;
	const char *what;
	v->id = vc->id;
	if ((r = vmm_kvm_get_regs(vc->fd, &v->regs)) < 0) {
		what = "KVM_GET_REGS";
		goto fail;
	}
	if ((r = vmm_kvm_get_sregs(vc->fd, &v->sregs)) < 0) {
		what = "KVM_GET_SREGS";
		goto fail;
	}
	if ((r = read_fpu_state(vc, v)))
		return r;
	if (vc->vm->irqchip != VMM_IRQCHIP_NONE) {
		if ((r = vmm_kvm_get_lapic(vc->fd, &v->lapic)) < 0) {
			what = "KVM_GET_LAPIC";
			goto fail;
		}
		v->have |= SNAP_HAVE_LAPIC;
	}
	if ((r = vmm_kvm_get_vcpu_events(vc->fd, &v->events)) < 0) {
		what = "KVM_GET_VCPU_EVENTS";
		goto fail;
	}
	if ((r = vmm_kvm_get_debugregs(vc->fd, &v->debugregs)) < 0) {
		what = "KVM_GET_DEBUGREGS";
		goto fail;
	}
	struct kvm_mp_state mp;
	if ((r = vmm_kvm_get_mp_state(vc->fd, &mp)) < 0) {
		what = "KVM_GET_MP_STATE";
		goto fail;
	}
	v->mp_state = mp.mp_state;
	if (vmm_kvm_check_extension(vc->vm->vm_fd, KVM_CAP_GET_TSC_KHZ) > 0) {
		r = vmm_kvm_get_tsc_khz(vc->fd);
		v->tsc_khz = r > 0 ? (uint32_t)r : 0;
	}
	if ((r = read_msrs(vc, msr_idx, nr_msr, v)))
		return r;
	if ((r = read_cpuid(vc, v)))
		return r;
	if (vc->has_idt) {
		v->lib_flags |= SNAP_VCPU_HAS_IDT;
		v->idt_gpa = vc->idt_gpa;
	}
	return 0;
fail:
	return vmm_err(r, "snapshot: vCPU %u: %s failed", vc->id, what);
}

/* ---- the VM ---- */

static int read_memmap(vmm_vm *vm, uint32_t mem_source, struct snap_desc *d)
{
	vmm_mem *mem = vm->mem;
	if (mem->nr > SNAP_MAX_REGIONS)
		return vmm_err(-EINVAL, "snapshot: %zu memory regions, at most %u fit", mem->nr, SNAP_MAX_REGIONS);
	d->nr_regions = (uint32_t)mem->nr;
	if (mem->nr && !(d->regions = calloc(mem->nr, sizeof *d->regions)))
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	uint64_t off = SNAP_MEM_HEADER_SIZE;
	for (size_t i = 0; i < mem->nr; i++) {
		const struct mem_region *r = &mem->regions[i];
		struct snap_region *s = &d->regions[i];
		s->gpa = r->gpa;
		s->len = r->len;
		s->flags = r->flags & SNAP_REGION_FLAGS;
		/* NUL-padded, as the format wants (s was zeroed by calloc). */
		memcpy(s->name, r->name, strnlen(r->name, sizeof s->name - 1));
		if (mem_source == SNAP_MEM_IN_PLACE) {
			/* The memory must be what the descriptor holds: not anonymous or the
			 * caller's mapping (no descriptor), not a private copy of a file. */
			if (r->fd < 0 || (r->flags & VMM_MEM_PRIVATE))
				return vmm_err(-EINVAL, "snapshot: region %s%s[%#llx, +%#llx) is %s memory: it cannot stay in place; "
						"save it to a memory file", r->name, r->name[0] ? " " : "",
					       (unsigned long long)r->gpa, (unsigned long long)r->len,
					       r->fd < 0 ? "anonymous or host" : "private copy-on-write");
			s->offset = r->file_offset;
		} else {
			s->offset = off;
			if (vmm_add_overflows(off, r->len, &off) || off > (uint64_t)INT64_MAX)
				return vmm_err(-EINVAL, "snapshot: guest memory too large for a memory file");
		}
	}
	d->mem_source = mem_source;
	d->mem_file_size = mem_source == SNAP_MEM_FILE ? off : 0;
	if (getrandom(d->mem_id, sizeof d->mem_id, 0) != (ssize_t)sizeof d->mem_id)
		return vmm_err(-errno, "snapshot: getrandom failed");
	return 0;
}

static int read_vm_devices(vmm_vm *vm, struct snap_desc *d)
{
	int r = vmm_vm_realize_irqchip(vm); /* a VM that never had a vCPU */
	if (r)
		return r;
	if (vm->irqchip == VMM_IRQCHIP_KERNEL) {
		struct kvm_irqchip chip;
		for (uint32_t id = 0; id < 3; id++) {
			memset(&chip, 0, sizeof chip);
			chip.chip_id = id;
			if ((r = vmm_kvm_get_irqchip(vm->vm_fd, &chip)) < 0)
				return vmm_err(r, "snapshot: KVM_GET_IRQCHIP %u failed", id);
			if (id == KVM_IRQCHIP_IOAPIC)
				d->ioapic = chip.chip.ioapic;
			else
				d->pic[id] = chip.chip.pic;
		}
		d->have |= SNAP_HAVE_IRQCHIP;
		if (!(vm->flags & VMM_VM_NO_PIT)) {
			if ((r = vmm_kvm_get_pit2(vm->vm_fd, &d->pit)) < 0)
				return vmm_err(r, "snapshot: KVM_GET_PIT2 failed");
			d->have |= SNAP_HAVE_PIT;
		}
	}
	if (vmm_kvm_check_extension(vm->vm_fd, KVM_CAP_ADJUST_CLOCK) > 0) {
		struct kvm_clock_data c;
		memset(&c, 0, sizeof c);
		if ((r = vmm_kvm_get_clock(vm->vm_fd, &c)) < 0)
			return vmm_err(r, "snapshot: KVM_GET_CLOCK failed");
		d->clock = c.clock;
		d->have |= SNAP_HAVE_CLOCK;
	}
	return 0;
}

static int capture_locked(vmm_vm *vm, uint32_t mem_source, struct snap_desc *d)
{
	d->irqchip = (uint32_t)vm->irqchip;
	d->vm_flags = vm->flags & ~(uint32_t)VMM_VM_DONTFORK; /* host-side, not the guest's */
	d->exit_port = vm->exit_port;
	d->fault_port = vm->fault_port;
	int r = read_memmap(vm, mem_source, d);
	if (!r)
		r = read_vm_devices(vm, d);
	if (r || !vm->nr_vcpus)
		return r;
	if (!(d->vcpus = calloc(vm->nr_vcpus, sizeof *d->vcpus)))
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	d->nr_vcpus = (uint32_t)vm->nr_vcpus;
	uint32_t *msr_idx = NULL, nr_msr = 0;
	r = msr_index_list(vm->kvm_fd, &msr_idx, &nr_msr);
	if (!r && vm->irqchip == VMM_IRQCHIP_NONE) { /* see snap_msr_needs_lapic */
		uint32_t k = 0;
		for (uint32_t i = 0; i < nr_msr; i++)
			if (!snap_msr_needs_lapic(msr_idx[i]))
				msr_idx[k++] = msr_idx[i];
		nr_msr = k;
	}
	for (uint32_t i = 0; !r && i < d->nr_vcpus; i++)
		r = read_vcpu(vm->vcpus[i], &d->vcpus[i], msr_idx, &nr_msr);
	free(msr_idx);
	return r;
}

int snap_capture(vmm_vm *vm, const struct snap_claim *c, uint32_t mem_source, struct snap_desc **out)
{
	*out = NULL;
	if (vm->irqchip == VMM_IRQCHIP_SPLIT)
		return vmm_err(-ENOTSUP, "snapshot: split-irqchip VMs cannot be saved yet (the user-space "
				"IOAPIC's state is not in the format)");
	struct snap_desc *d = calloc(1, sizeof *d);
	if (!d)
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	int r = 0;
	pthread_mutex_lock(&vm->lock);
	if (vm->nr_vcpus != c->n || (c->n && memcmp(vm->vcpus, c->vcpus, c->n * sizeof *c->vcpus)))
		r = vmm_err(-EBUSY, "snapshot: vCPUs were created or destroyed during the save");
	else if (vm->nr_vcpus > SNAP_MAX_VCPUS)
		r = vmm_err(-EINVAL, "snapshot: %zu vCPUs, at most %u fit", vm->nr_vcpus, SNAP_MAX_VCPUS);
	else
		r = capture_locked(vm, mem_source, d);
	pthread_mutex_unlock(&vm->lock);
	if (r) {
		snap_desc_free(d);
		return r;
	}
	*out = d;
	return 0;
}

/* ---- devices ---- */

int snap_capture_devices(struct snap_desc *d, vmm_virtio_mmio *const *devs, size_t n)
{
	if (n > SNAP_MAX_DEVICES)
		return vmm_err(-EINVAL, "snapshot: %zu devices, at most %u fit", n, SNAP_MAX_DEVICES);
	if (n && !(d->devices = calloc(n, sizeof *d->devices)))
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	for (size_t i = 0; i < n; i++) {
		if (!devs[i])
			return vmm_err(-EINVAL, "snapshot: device %zu is NULL", i);
		size_t len = 0;
		int r = vmm_virtio_mmio_save_state(devs[i], NULL, 0, &len);
		if (r && r != -ENOSPC)
			return r;
		if (len == 0 || len > SNAP_MAX_DEVICE_STATE)
			return vmm_err(-EINVAL, "snapshot: device %zu has a state of %zu bytes (1 to %u fit)", i, len,
				       SNAP_MAX_DEVICE_STATE);
		uint8_t *buf = malloc(len);
		if (!buf)
			return vmm_err(-ENOMEM, "snapshot: out of memory");
		size_t got = 0;
		if ((r = vmm_virtio_mmio_save_state(devs[i], buf, len, &got)) || got == 0 || got > len) {
			free(buf);
			return r ? r : vmm_err(-EIO, "snapshot: device %zu reported a state of %zu bytes", i, got);
		}
		d->devices[i] = (struct snap_blob){ .data = buf, .len = (uint32_t)got };
		d->nr_devices = (uint32_t)(i + 1);
	}
	return 0;
}
