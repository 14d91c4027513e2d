/* Encoding a snapshot description into the state file format (see snapshot_internal.h).
 * Pure: no KVM, no files. */
#include <stdlib.h>
#include <string.h>

#include "snapshot_internal.h"

_Static_assert(sizeof(struct snap_file_header) == 40, "file header layout");
_Static_assert(sizeof(struct snap_section_header) == 16, "section header layout");
_Static_assert(sizeof(struct snap_vm_rec) == 48, "VM record layout");
_Static_assert(sizeof(struct snap_region_rec) == 96, "region record layout");
_Static_assert(sizeof(struct snap_vcpu_rec) == 24, "vCPU record layout");
_Static_assert(sizeof(struct snap_msr_rec) == 16, "MSR record layout");
_Static_assert(sizeof(struct snap_xcr_rec) == 16, "XCR record layout");
_Static_assert(sizeof(vmm_cpuid_entry) == 28, "CPUID record layout");
_Static_assert(sizeof(struct snap_mem_header) == 48, "memory header layout");
_Static_assert(sizeof(struct snap_mem_header) <= SNAP_MEM_HEADER_SIZE, "memory header fits its page");

/* A growing output buffer; the first failure sticks in `err`. */
struct wbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
	uint32_t nr_sections;
};

static void put(struct wbuf *w, const void *data, size_t n)
{
	if (w->err || n == 0)
		return;
	if (n > VMM_SNAPSHOT_MAX_STATE_SIZE || w->len + n > VMM_SNAPSHOT_MAX_STATE_SIZE) {
		w->err = vmm_err(-EINVAL, "snapshot: the state would exceed the %u-byte limit",
				 VMM_SNAPSHOT_MAX_STATE_SIZE);
		return;
	}
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 16384;
		while (cap < w->len + n)
			cap *= 2;
		uint8_t *q = realloc(w->p, cap);
		if (!q) {
			w->err = vmm_err(-ENOMEM, "snapshot: out of memory encoding the state");
			return;
		}
		w->p = q;
		w->cap = cap;
	}
	if (data)
		memcpy(w->p + w->len, data, n);
	else
		memset(w->p + w->len, 0, n);
	w->len += n;
}

/* One section: header, then the payload from up to two parts, then zero padding. */
static void section(struct wbuf *w, uint32_t type, uint32_t instance, const void *a, size_t alen,
		    const void *b, size_t blen)
{
	size_t len = alen + blen;
	struct snap_section_header h = {
		.type = type, .instance = instance, .length = (uint32_t)len, .version = SNAP_SECTION_VERSION,
	};
	put(w, &h, sizeof h);
	put(w, a, alen);
	put(w, b, blen);
	size_t pad = (SNAP_ALIGN - len % SNAP_ALIGN) % SNAP_ALIGN;
	put(w, NULL, pad);
	w->nr_sections++;
}

static void put_list(struct wbuf *w, uint32_t type, uint32_t instance, uint32_t nr, const void *items,
		     size_t item_size)
{
	struct snap_list_head h = { .nr = nr };
	section(w, type, instance, &h, sizeof h, items, (size_t)nr * item_size);
}

static void put_vcpu(struct wbuf *w, const struct snap_vcpu *v, uint32_t i)
{
	struct snap_vcpu_rec rec = {
		.id = v->id, .mp_state = v->mp_state, .tsc_khz = v->tsc_khz,
		.lib_flags = v->lib_flags, .idt_gpa = v->idt_gpa,
	};
	section(w, SNAP_SEC_VCPU, i, &rec, sizeof rec, NULL, 0);
	section(w, SNAP_SEC_VCPU_REGS, i, &v->regs, sizeof v->regs, NULL, 0);
	section(w, SNAP_SEC_VCPU_SREGS, i, &v->sregs, sizeof v->sregs, NULL, 0);
	if (v->have & SNAP_HAVE_XSAVE)
		section(w, SNAP_SEC_VCPU_XSAVE, i, v->xsave, v->xsave_len, NULL, 0);
	else
		section(w, SNAP_SEC_VCPU_FPU, i, &v->fpu, sizeof v->fpu, NULL, 0);
	if (v->have & SNAP_HAVE_XCRS) {
		struct snap_xcr_rec x[KVM_MAX_XCRS];
		uint32_t n = v->xcrs.nr_xcrs <= KVM_MAX_XCRS ? v->xcrs.nr_xcrs : KVM_MAX_XCRS;
		for (uint32_t k = 0; k < n; k++)
			x[k] = (struct snap_xcr_rec){ .xcr = v->xcrs.xcrs[k].xcr, .value = v->xcrs.xcrs[k].value };
		put_list(w, SNAP_SEC_VCPU_XCRS, i, n, x, sizeof x[0]);
	}
	if (v->have & SNAP_HAVE_LAPIC)
		section(w, SNAP_SEC_VCPU_LAPIC, i, &v->lapic, sizeof v->lapic, NULL, 0);
	section(w, SNAP_SEC_VCPU_EVENTS, i, &v->events, sizeof v->events, NULL, 0);
	section(w, SNAP_SEC_VCPU_DEBUGREGS, i, &v->debugregs, sizeof v->debugregs, NULL, 0);

	/* The in-memory MSR struct has padding where the record has a reserved field. */
	struct snap_msr_rec *m = v->nr_msrs ? calloc(v->nr_msrs, sizeof *m) : NULL;
	if (v->nr_msrs && !m) {
		if (!w->err)
			w->err = vmm_err(-ENOMEM, "snapshot: out of memory encoding the state");
		return;
	}
	for (uint32_t k = 0; k < v->nr_msrs; k++)
		m[k] = (struct snap_msr_rec){ .index = v->msrs[k].index, .value = v->msrs[k].value };
	put_list(w, SNAP_SEC_VCPU_MSRS, i, v->nr_msrs, m, sizeof *m);
	free(m);
	put_list(w, SNAP_SEC_VCPU_CPUID, i, v->nr_cpuid, v->cpuid, sizeof(vmm_cpuid_entry));
}

int snap_encode(const struct snap_desc *d, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	struct wbuf w = { 0 };
	struct snap_file_header fh = { .version = SNAP_VERSION, .header_size = sizeof fh };
	memcpy(fh.magic, SNAP_MAGIC, sizeof fh.magic);
	put(&w, &fh, sizeof fh);

	struct snap_vm_rec vm = {
		.irqchip = d->irqchip, .vm_flags = d->vm_flags, .exit_port = d->exit_port,
		.fault_port = d->fault_port, .nr_vcpus = d->nr_vcpus, .nr_regions = d->nr_regions,
		.mem_source = d->mem_source, .mem_file_size = d->mem_file_size,
	};
	memcpy(vm.mem_id, d->mem_id, sizeof vm.mem_id);
	section(&w, SNAP_SEC_VM, 0, &vm, sizeof vm, NULL, 0);

	struct snap_memmap_head mh = { .nr_regions = d->nr_regions };
	struct snap_region_rec *rr = d->nr_regions ? calloc(d->nr_regions, sizeof *rr) : NULL;
	if (d->nr_regions && !rr) {
		free(w.p);
		return vmm_err(-ENOMEM, "snapshot: out of memory encoding the state");
	}
	for (uint32_t i = 0; i < d->nr_regions; i++) {
		const struct snap_region *r = &d->regions[i];
		rr[i] = (struct snap_region_rec){ .gpa = r->gpa, .len = r->len, .offset = r->offset,
						  .flags = r->flags };
		memcpy(rr[i].name, r->name, sizeof rr[i].name);
		rr[i].name[sizeof rr[i].name - 1] = 0;
	}
	section(&w, SNAP_SEC_MEMMAP, 0, &mh, sizeof mh, rr, (size_t)d->nr_regions * sizeof *rr);
	free(rr);

	if (d->have & SNAP_HAVE_IRQCHIP) {
		section(&w, SNAP_SEC_IRQCHIP, KVM_IRQCHIP_PIC_MASTER, &d->pic[0], sizeof d->pic[0], NULL, 0);
		section(&w, SNAP_SEC_IRQCHIP, KVM_IRQCHIP_PIC_SLAVE, &d->pic[1], sizeof d->pic[1], NULL, 0);
		section(&w, SNAP_SEC_IRQCHIP, KVM_IRQCHIP_IOAPIC, &d->ioapic, sizeof d->ioapic, NULL, 0);
	}
	if (d->have & SNAP_HAVE_PIT)
		section(&w, SNAP_SEC_PIT, 0, &d->pit, sizeof d->pit, NULL, 0);
	if (d->have & SNAP_HAVE_CLOCK) {
		struct snap_clock_rec c = { .clock = d->clock };
		section(&w, SNAP_SEC_CLOCK, 0, &c, sizeof c, NULL, 0);
	}
	for (uint32_t i = 0; i < d->nr_vcpus; i++)
		put_vcpu(&w, &d->vcpus[i], i);
	for (uint32_t i = 0; i < d->nr_devices; i++)
		section(&w, SNAP_SEC_DEVICE, i, d->devices[i].data, d->devices[i].len, NULL, 0);

	if (w.err) {
		free(w.p);
		return w.err;
	}
	fh.total_size = w.len;
	fh.nr_sections = w.nr_sections;
	memcpy(w.p, &fh, sizeof fh);
	fh.crc = vmm_crc32c(0, w.p, w.len);
	memcpy(w.p + offsetof(struct snap_file_header, crc), &fh.crc, sizeof fh.crc);
	*out = w.p;
	*len = w.len;
	return 0;
}

void snap_fill_mem_header(const struct snap_desc *d, void *page)
{
	struct snap_mem_header h = {
		.version = SNAP_VERSION, .header_size = SNAP_MEM_HEADER_SIZE,
		.file_size = d->mem_file_size, .nr_regions = d->nr_regions,
	};
	memcpy(h.magic, SNAP_MEM_MAGIC, sizeof h.magic);
	memcpy(h.id, d->mem_id, sizeof h.id);
	h.crc = vmm_crc32c(0, &h, sizeof h);
	memset(page, 0, SNAP_MEM_HEADER_SIZE);
	memcpy(page, &h, sizeof h);
}
