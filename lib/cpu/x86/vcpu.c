/* vmm_vcpu: creation, destruction and register state. The run loop is in run.c, long
 * mode setup in long_mode.c. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../core/vm_internal.h"
#include "../../kvm/kvm.h"

_Static_assert(sizeof(vmm_regs) == sizeof(struct kvm_regs), "vmm_regs mirrors kvm_regs");

#define MAX_MSRS 256

int vmm_vcpu_create(vmm_vcpu **out, vmm_vm *vm, const vmm_vcpu_opts *opts)
{
	if (!out || !vm)
		return vmm_err(-EINVAL, "vmm_vcpu_create: NULL argument");
	*out = NULL;
	vmm_vcpu_opts o = VMM_VCPU_OPTS_INIT;
	if (opts && vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "vmm_vcpu_create: opts->size is too small");

	/* KVM wants the interrupt controller before the first vCPU. */
	int r = vmm_vm_realize_irqchip(vm);
	if (r)
		return r;
	vmm_vcpu *v = calloc(1, sizeof *v);
	if (!v)
		return vmm_err(-ENOMEM, "vmm_vcpu_create: out of memory");
	v->vm = vm;
	v->id = o.id;
	v->fd = -1;
	pthread_mutex_init(&v->runner_lock, NULL);
	pthread_mutex_init(&v->ring_lock, NULL);
	r = vmm_vm_add_vcpu(vm, v);
	if (r) {
		pthread_mutex_destroy(&v->runner_lock);
		pthread_mutex_destroy(&v->ring_lock);
		free(v);
		return r;
	}
	if ((r = v->fd = vmm_kvm_create_vcpu(vm->vm_fd, o.id)) < 0) {
		r = vmm_err(r, "KVM_CREATE_VCPU %u failed", o.id);
		goto fail;
	}
	v->run_size = vm->vcpu_mmap_size;
	void *run = mmap(NULL, (size_t)v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (run == MAP_FAILED) {
		r = vmm_err(-errno, "mmap of vCPU %u run area failed", o.id);
		goto fail;
	}
	v->run = run;
	if (vm->dirty_ring_entries) {
		size_t bytes = (size_t)vm->dirty_ring_entries * sizeof(struct kvm_dirty_gfn);
		void *ring = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd,
				  KVM_DIRTY_LOG_PAGE_OFFSET * sysconf(_SC_PAGESIZE));
		if (ring == MAP_FAILED) {
			r = vmm_err(-errno, "mmap of vCPU %u dirty ring failed", o.id);
			goto fail;
		}
		v->ring = ring;
	}

	vmm_cpuid *def = NULL;
	const vmm_cpuid *cpuid = o.cpuid;
	if (!cpuid) {
		if ((r = vmm_cpuid_create_default(&def, vm, o.id)))
			goto fail;
		cpuid = def;
	}
	r = vmm_vcpu_set_cpuid(v, cpuid);
	vmm_cpuid_destroy(def);
	if (r)
		goto fail;
	*out = v;
	return 0;
fail:
	vmm_vcpu_destroy(v);
	return r;
}

void vmm_vcpu_destroy(vmm_vcpu *v)
{
	if (!v)
		return;
	if (v->thread_state == VCPU_THREAD_RUNNING) {
		atomic_store(&v->stop, true);
		vmm_vcpu_kick(v);
		vmm_vcpu_join(v, NULL);
	}
	vmm_vm_remove_vcpu(v->vm, v);
	if (v->run)
		munmap(v->run, (size_t)v->run_size);
	if (v->ring)
		munmap(v->ring, (size_t)v->vm->dirty_ring_entries * sizeof(struct kvm_dirty_gfn));
	if (v->fd >= 0)
		close(v->fd);
	pthread_mutex_destroy(&v->runner_lock);
	pthread_mutex_destroy(&v->ring_lock);
	free(v);
}

uint32_t vmm_vcpu_id(const vmm_vcpu *v) { return v ? v->id : 0; }
vmm_vm *vmm_vcpu_vm(const vmm_vcpu *v) { return v ? v->vm : NULL; }

int vmm_vcpu_get_regs(vmm_vcpu *v, vmm_regs *regs)
{
	if (!v || !regs)
		return vmm_err(-EINVAL, "vmm_vcpu_get_regs: NULL argument");
	struct kvm_regs k;
	int r = vmm_kvm_get_regs(v->fd, &k);
	if (r < 0)
		return vmm_err(r, "KVM_GET_REGS failed");
	memcpy(regs, &k, sizeof k);
	return 0;
}

int vmm_vcpu_set_regs(vmm_vcpu *v, const vmm_regs *regs)
{
	if (!v || !regs)
		return vmm_err(-EINVAL, "vmm_vcpu_set_regs: NULL argument");
	struct kvm_regs k;
	memcpy(&k, regs, sizeof k);
	int r = vmm_kvm_set_regs(v->fd, &k);
	return r < 0 ? vmm_err(r, "KVM_SET_REGS failed") : 0;
}

static void seg_from_kvm(vmm_segment *d, const struct kvm_segment *s)
{
	*d = (vmm_segment){ .base = s->base, .limit = s->limit, .selector = s->selector, .type = s->type,
			    .present = s->present, .dpl = s->dpl, .db = s->db, .s = s->s, .l = s->l,
			    .g = s->g, .avl = s->avl, .unusable = s->unusable };
}

static void seg_to_kvm(struct kvm_segment *d, const vmm_segment *s)
{
	*d = (struct kvm_segment){ .base = s->base, .limit = s->limit, .selector = s->selector,
				   .type = s->type, .present = s->present, .dpl = s->dpl, .db = s->db,
				   .s = s->s, .l = s->l, .g = s->g, .avl = s->avl, .unusable = s->unusable };
}

int vmm_vcpu_get_sregs(vmm_vcpu *v, vmm_sregs *s)
{
	if (!v || !s)
		return vmm_err(-EINVAL, "vmm_vcpu_get_sregs: NULL argument");
	struct kvm_sregs k;
	int r = vmm_kvm_get_sregs(v->fd, &k);
	if (r < 0)
		return vmm_err(r, "KVM_GET_SREGS failed");
	memset(s, 0, sizeof *s); /* padding too, so callers may memcmp */
	seg_from_kvm(&s->cs, &k.cs); seg_from_kvm(&s->ds, &k.ds); seg_from_kvm(&s->es, &k.es);
	seg_from_kvm(&s->fs, &k.fs); seg_from_kvm(&s->gs, &k.gs); seg_from_kvm(&s->ss, &k.ss);
	seg_from_kvm(&s->tr, &k.tr); seg_from_kvm(&s->ldt, &k.ldt);
	s->gdt = (vmm_dtable){ k.gdt.base, k.gdt.limit };
	s->idt = (vmm_dtable){ k.idt.base, k.idt.limit };
	s->cr0 = k.cr0; s->cr2 = k.cr2; s->cr3 = k.cr3; s->cr4 = k.cr4; s->cr8 = k.cr8;
	s->efer = k.efer; s->apic_base = k.apic_base;
	return 0;
}

int vmm_vcpu_set_sregs(vmm_vcpu *v, const vmm_sregs *s)
{
	if (!v || !s)
		return vmm_err(-EINVAL, "vmm_vcpu_set_sregs: NULL argument");
	/* Start from the current state so the pending-interrupt bitmap is kept. */
	struct kvm_sregs k;
	int r = vmm_kvm_get_sregs(v->fd, &k);
	if (r < 0)
		return vmm_err(r, "KVM_GET_SREGS failed");
	seg_to_kvm(&k.cs, &s->cs); seg_to_kvm(&k.ds, &s->ds); seg_to_kvm(&k.es, &s->es);
	seg_to_kvm(&k.fs, &s->fs); seg_to_kvm(&k.gs, &s->gs); seg_to_kvm(&k.ss, &s->ss);
	seg_to_kvm(&k.tr, &s->tr); seg_to_kvm(&k.ldt, &s->ldt);
	k.gdt.base = s->gdt.base; k.gdt.limit = s->gdt.limit;
	k.idt.base = s->idt.base; k.idt.limit = s->idt.limit;
	k.cr0 = s->cr0; k.cr2 = s->cr2; k.cr3 = s->cr3; k.cr4 = s->cr4; k.cr8 = s->cr8;
	k.efer = s->efer; k.apic_base = s->apic_base;
	r = vmm_kvm_set_sregs(v->fd, &k);
	return r < 0 ? vmm_err(r, "KVM_SET_SREGS failed (invalid control register or segment state?)") : 0;
}

int vmm_vcpu_get_fpu(vmm_vcpu *v, vmm_fpu *f)
{
	if (!v || !f)
		return vmm_err(-EINVAL, "vmm_vcpu_get_fpu: NULL argument");
	struct kvm_fpu k;
	int r = vmm_kvm_get_fpu(v->fd, &k);
	if (r < 0)
		return vmm_err(r, "KVM_GET_FPU failed");
	memset(f, 0, sizeof *f);
	memcpy(f->fpr, k.fpr, sizeof f->fpr);
	f->fcw = k.fcw; f->fsw = k.fsw; f->ftwx = k.ftwx; f->last_opcode = k.last_opcode;
	f->last_ip = k.last_ip; f->last_dp = k.last_dp;
	memcpy(f->xmm, k.xmm, sizeof f->xmm);
	f->mxcsr = k.mxcsr;
	return 0;
}

int vmm_vcpu_set_fpu(vmm_vcpu *v, const vmm_fpu *f)
{
	if (!v || !f)
		return vmm_err(-EINVAL, "vmm_vcpu_set_fpu: NULL argument");
	struct kvm_fpu k;
	memset(&k, 0, sizeof k);
	memcpy(k.fpr, f->fpr, sizeof k.fpr);
	k.fcw = f->fcw; k.fsw = f->fsw; k.ftwx = f->ftwx; k.last_opcode = f->last_opcode;
	k.last_ip = f->last_ip; k.last_dp = f->last_dp;
	memcpy(k.xmm, f->xmm, sizeof k.xmm);
	k.mxcsr = f->mxcsr;
	int r = vmm_kvm_set_fpu(v->fd, &k);
	return r < 0 ? vmm_err(r, "KVM_SET_FPU failed") : 0;
}

static struct kvm_msrs *msr_buf(size_t n)
{
	return calloc(1, sizeof(struct kvm_msrs) + n * sizeof(struct kvm_msr_entry));
}

static int msr_args(vmm_vcpu *v, const uint32_t *idx, const void *val, size_t n, const char *fn)
{
	if (!v || !idx || !val)
		return vmm_err(-EINVAL, "%s: NULL argument", fn);
	if (n == 0 || n > MAX_MSRS)
		return vmm_err(-EINVAL, "%s: %zu MSRs (1 to %d allowed)", fn, n, MAX_MSRS);
	return 0;
}

int vmm_vcpu_get_msrs(vmm_vcpu *v, const uint32_t *idx, uint64_t *val, size_t n)
{
	int r = msr_args(v, idx, val, n, "vmm_vcpu_get_msrs");
	if (r)
		return r;
	struct kvm_msrs *b = msr_buf(n);
	if (!b)
		return vmm_err(-ENOMEM, "out of memory");
	b->nmsrs = (uint32_t)n;
	for (size_t i = 0; i < n; i++)
		b->entries[i].index = idx[i];
	r = vmm_kvm_get_msrs(v->fd, b);
	if (r >= 0 && (size_t)r < n)
		r = vmm_err(-EIO, "KVM_GET_MSRS: MSR %#x not readable", idx[r]);
	else if (r < 0)
		r = vmm_err(r, "KVM_GET_MSRS failed");
	else {
		for (size_t i = 0; i < n; i++)
			val[i] = b->entries[i].data;
		r = 0;
	}
	free(b);
	return r;
}

int vmm_vcpu_set_msrs(vmm_vcpu *v, const uint32_t *idx, const uint64_t *val, size_t n)
{
	int r = msr_args(v, idx, val, n, "vmm_vcpu_set_msrs");
	if (r)
		return r;
	struct kvm_msrs *b = msr_buf(n);
	if (!b)
		return vmm_err(-ENOMEM, "out of memory");
	b->nmsrs = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		b->entries[i].index = idx[i];
		b->entries[i].data = val[i];
	}
	r = vmm_kvm_set_msrs(v->fd, b);
	if (r >= 0 && (size_t)r < n)
		r = vmm_err(-EIO, "KVM_SET_MSRS: MSR %#x = %#llx refused", idx[r], (unsigned long long)val[r]);
	else if (r < 0)
		r = vmm_err(r, "KVM_SET_MSRS failed");
	else
		r = 0;
	free(b);
	return r;
}

int vmm_vcpu_set_cpuid(vmm_vcpu *v, const vmm_cpuid *cpuid)
{
	if (!v || !cpuid)
		return vmm_err(-EINVAL, "vmm_vcpu_set_cpuid: NULL argument");
	size_t n;
	const vmm_cpuid_entry *e = vmm_cpuid_entries(cpuid, &n);
	struct kvm_cpuid2 *c = calloc(1, sizeof *c + (n ? n : 1) * sizeof c->entries[0]);
	if (!c)
		return vmm_err(-ENOMEM, "out of memory");
	c->nent = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		c->entries[i] = (struct kvm_cpuid_entry2){
			.function = e[i].function, .index = e[i].index,
			.flags = (e[i].flags & VMM_CPUID_SIGNIFICANT_INDEX) ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0,
			.eax = e[i].eax, .ebx = e[i].ebx, .ecx = e[i].ecx, .edx = e[i].edx,
		};
	}
	int r = vmm_kvm_set_cpuid2(v->fd, c);
	free(c);
	return r < 0 ? vmm_err(r, "KVM_SET_CPUID2 with %zu entries failed", n) : 0;
}
