/* Parsing and validating a state file into a snapshot description (snapshot_internal.h).
 *
 * The file is input from outside: every count is bounded by the bytes that hold it,
 * every length is checked against the file before anything is read, every field the
 * library interprets is range-checked, and the checksum is verified before any section
 * is looked at. Register contents (regs, sregs, LAPIC page, XSAVE image) are checked
 * only for structure here: KVM validates their architectural consistency when they are
 * loaded, exactly as it does for state a guest produces itself. Pure: no KVM, no files.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot_internal.h"

/* The smallest a vCPU can be in a file: its eight mandatory sections (VCPU, REGS, SREGS,
 * FPU, EVENTS, DEBUGREGS, empty MSRS, empty CPUID), headers included. Bounds the vCPU
 * count a file can claim by its size, before anything is allocated for them. */
#define MIN_VCPU_BYTES                                                                        \
	(8 * sizeof(struct snap_section_header) + sizeof(struct snap_vcpu_rec) +                  \
	 sizeof(struct kvm_regs) + sizeof(struct kvm_sregs) + sizeof(struct kvm_fpu) +            \
	 sizeof(struct kvm_vcpu_events) + sizeof(struct kvm_debugregs) + 2 * sizeof(struct snap_list_head))

/* Per-vCPU sections seen, as bits (type - SNAP_SEC_VCPU). */
#define VBIT(type) (1u << ((type) - SNAP_SEC_VCPU))
#define VCPU_REQUIRED                                                                         \
	(VBIT(SNAP_SEC_VCPU) | VBIT(SNAP_SEC_VCPU_REGS) | VBIT(SNAP_SEC_VCPU_SREGS) |             \
	 VBIT(SNAP_SEC_VCPU_EVENTS) | VBIT(SNAP_SEC_VCPU_DEBUGREGS) | VBIT(SNAP_SEC_VCPU_MSRS) |   \
	 VBIT(SNAP_SEC_VCPU_CPUID))

/* VM-level sections seen. */
#define SEEN_VM (1u << 0)
#define SEEN_MEMMAP (1u << 1)
#define SEEN_PIC0 (1u << 2)
#define SEEN_PIC1 (1u << 3)
#define SEEN_IOAPIC (1u << 4)
#define SEEN_PIT (1u << 5)
#define SEEN_CLOCK (1u << 6)

struct parser {
	struct snap_desc *d;
	uint32_t seen;
	uint32_t *vseen;     /* per vCPU */
	uint32_t index;      /* current section number, for messages */
	struct snap_section_header h;
	const uint8_t *p;    /* current payload */
	uint64_t total;
};

static const char *section_name(uint32_t type)
{
	switch (type) {
	case SNAP_SEC_VM: return "VM";
	case SNAP_SEC_MEMMAP: return "MEMMAP";
	case SNAP_SEC_IRQCHIP: return "IRQCHIP";
	case SNAP_SEC_PIT: return "PIT";
	case SNAP_SEC_CLOCK: return "CLOCK";
	case SNAP_SEC_VCPU: return "VCPU";
	case SNAP_SEC_VCPU_REGS: return "VCPU_REGS";
	case SNAP_SEC_VCPU_SREGS: return "VCPU_SREGS";
	case SNAP_SEC_VCPU_FPU: return "VCPU_FPU";
	case SNAP_SEC_VCPU_XSAVE: return "VCPU_XSAVE";
	case SNAP_SEC_VCPU_XCRS: return "VCPU_XCRS";
	case SNAP_SEC_VCPU_LAPIC: return "VCPU_LAPIC";
	case SNAP_SEC_VCPU_EVENTS: return "VCPU_EVENTS";
	case SNAP_SEC_VCPU_DEBUGREGS: return "VCPU_DEBUGREGS";
	case SNAP_SEC_VCPU_MSRS: return "VCPU_MSRS";
	case SNAP_SEC_VCPU_CPUID: return "VCPU_CPUID";
	case SNAP_SEC_DEVICE: return "DEVICE";
	default: return "unknown";
	}
}

/* Error about the current section: "snapshot: section 7 (VCPU_MSRS, instance 1): ..." */
VMM_PRINTF(2, 3) static int bad(const struct parser *ps, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return vmm_err(-EINVAL, "snapshot: section %u (%s, instance %u): %s", ps->index,
		       section_name(ps->h.type), ps->h.instance, msg);
}

static int want_len(const struct parser *ps, size_t len)
{
	if (ps->h.length != len)
		return bad(ps, "payload is %u bytes, expected %zu", ps->h.length, len);
	return 0;
}

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* A list section: head + nr items of item_size; nr <= max; returns the item pointer. */
static int list_payload(const struct parser *ps, uint32_t max, size_t item_size, uint32_t *nr,
			const uint8_t **items)
{
	struct snap_list_head lh;
	if (ps->h.length < sizeof lh)
		return bad(ps, "payload of %u bytes is shorter than its %zu-byte count", ps->h.length, sizeof lh);
	memcpy(&lh, ps->p, sizeof lh);
	if (lh.reserved)
		return bad(ps, "reserved field is %#x, must be 0", lh.reserved);
	if (lh.nr > max)
		return bad(ps, "%u entries, at most %u allowed", lh.nr, max);
	uint64_t want = sizeof lh + (uint64_t)lh.nr * item_size;
	if (ps->h.length != want)
		return bad(ps, "payload is %u bytes, %u entries need %llu", ps->h.length, lh.nr,
			   (unsigned long long)want);
	*nr = lh.nr;
	*items = ps->p + sizeof lh;
	return 0;
}

/* ---- VM-level sections ---- */

static int parse_vm(struct parser *ps)
{
	struct snap_vm_rec r;
	int e = want_len(ps, sizeof r);
	if (e)
		return e;
	memcpy(&r, ps->p, sizeof r);
	struct snap_desc *d = ps->d;
	if (r.irqchip == VMM_IRQCHIP_SPLIT)
		return bad(ps, "split-irqchip VMs are not supported in snapshots");
	if (r.irqchip != VMM_IRQCHIP_KERNEL && r.irqchip != VMM_IRQCHIP_NONE)
		return bad(ps, "unknown irqchip mode %u", r.irqchip);
	uint32_t known = VMM_VM_NO_PIT | VMM_VM_EXIT_ON_UNHANDLED_IO;
	if (r.vm_flags & ~known)
		return bad(ps, "unknown VM flags %#x", r.vm_flags & ~known);
	if (!r.exit_port || !r.fault_port)
		return bad(ps, "exit port %#x / fault port %#x: must not be 0", r.exit_port, r.fault_port);
	if (r.nr_vcpus > SNAP_MAX_VCPUS)
		return bad(ps, "%u vCPUs, at most %u allowed", r.nr_vcpus, SNAP_MAX_VCPUS);
	if ((uint64_t)r.nr_vcpus * MIN_VCPU_BYTES > ps->total)
		return bad(ps, "%u vCPUs cannot fit in a %llu-byte file", r.nr_vcpus,
			   (unsigned long long)ps->total);
	if (r.nr_regions > SNAP_MAX_REGIONS)
		return bad(ps, "%u memory regions, at most %u allowed", r.nr_regions, SNAP_MAX_REGIONS);
	switch (r.mem_source) {
	case SNAP_MEM_FILE:
		if (r.mem_file_size < SNAP_MEM_HEADER_SIZE || r.mem_file_size % VMM_PAGE_SIZE ||
		    r.mem_file_size > (uint64_t)INT64_MAX)
			return bad(ps, "memory file size %llu is not a page multiple of at least %u bytes",
				   (unsigned long long)r.mem_file_size, SNAP_MEM_HEADER_SIZE);
		break;
	case SNAP_MEM_IN_PLACE:
		if (r.mem_file_size)
			return bad(ps, "memory stays in place but a memory file size of %llu is given",
				   (unsigned long long)r.mem_file_size);
		break;
	default:
		return bad(ps, "unknown memory source %u", r.mem_source);
	}
	d->irqchip = r.irqchip;
	d->vm_flags = r.vm_flags;
	d->exit_port = r.exit_port;
	d->fault_port = r.fault_port;
	d->mem_source = r.mem_source;
	memcpy(d->mem_id, r.mem_id, sizeof d->mem_id);
	d->mem_file_size = r.mem_file_size;
	d->nr_regions = r.nr_regions;
	if (r.nr_vcpus) {
		d->vcpus = calloc(r.nr_vcpus, sizeof *d->vcpus);
		ps->vseen = calloc(r.nr_vcpus, sizeof *ps->vseen);
		if (!d->vcpus || !ps->vseen)
			return vmm_err(-ENOMEM, "snapshot: out of memory for %u vCPUs", r.nr_vcpus);
	}
	d->nr_vcpus = r.nr_vcpus;
	return 0;
}

static int check_region(const struct parser *ps, uint32_t i, const struct snap_region_rec *r,
			const struct snap_region_rec *prev)
{
	const struct snap_desc *d = ps->d;
	uint64_t end, fend;
	if (r->len == 0 || (r->gpa | r->len | r->offset) % VMM_PAGE_SIZE)
		return bad(ps, "region %u: gpa %#llx, length %#llx and offset %#llx must be non-zero page multiples",
			   i, (unsigned long long)r->gpa, (unsigned long long)r->len,
			   (unsigned long long)r->offset);
	if (vmm_add_overflows(r->gpa, r->len, &end) || end > SNAP_MAX_GPA)
		return bad(ps, "region %u: [%#llx, +%#llx) goes past the 2^52 physical address limit", i,
			   (unsigned long long)r->gpa, (unsigned long long)r->len);
	if (r->flags & ~(uint32_t)SNAP_REGION_FLAGS)
		return bad(ps, "region %u: unknown flags %#x", i, r->flags & ~(uint32_t)SNAP_REGION_FLAGS);
	if ((r->flags & VMM_MEM_HUGEPAGES) && ((r->flags & VMM_MEM_THP) || r->len % (2u << 20)))
		return bad(ps, "region %u: huge pages need a 2 MiB multiple and exclude THP", i);
	if (r->reserved)
		return bad(ps, "region %u: reserved field is %#x, must be 0", i, r->reserved);
	size_t nlen = strnlen(r->name, sizeof r->name);
	if (nlen == sizeof r->name || !all_zero(r->name + nlen, sizeof r->name - nlen))
		return bad(ps, "region %u: name is not NUL-terminated and NUL-padded", i);
	if (vmm_add_overflows(r->offset, r->len, &fend) || fend > (uint64_t)INT64_MAX)
		return bad(ps, "region %u: offset %#llx + length overflows", i, (unsigned long long)r->offset);
	if (d->mem_source == SNAP_MEM_FILE) {
		if (r->offset < SNAP_MEM_HEADER_SIZE || fend > d->mem_file_size)
			return bad(ps, "region %u: file range [%#llx, %#llx) is outside the memory file's data [%#x, %#llx)",
				   i, (unsigned long long)r->offset, (unsigned long long)fend,
				   SNAP_MEM_HEADER_SIZE, (unsigned long long)d->mem_file_size);
		if (prev && r->offset < prev->offset + prev->len)
			return bad(ps, "region %u: file range overlaps region %u's", i, i - 1);
	}
	if (prev && r->gpa < prev->gpa + prev->len)
		return bad(ps, "region %u at %#llx overlaps or precedes region %u [%#llx, %#llx): regions must be sorted and disjoint",
			   i, (unsigned long long)r->gpa, i - 1, (unsigned long long)prev->gpa,
			   (unsigned long long)(prev->gpa + prev->len));
	return 0;
}

static int parse_memmap(struct parser *ps)
{
	struct snap_desc *d = ps->d;
	struct snap_memmap_head mh;
	if (ps->h.length < sizeof mh)
		return bad(ps, "payload of %u bytes is shorter than its header", ps->h.length);
	memcpy(&mh, ps->p, sizeof mh);
	if (mh.nr_regions != d->nr_regions)
		return bad(ps, "%u regions, but the VM section says %u", mh.nr_regions, d->nr_regions);
	if (mh.reserved)
		return bad(ps, "reserved field is %#x, must be 0", mh.reserved);
	int e = want_len(ps, sizeof mh + (size_t)mh.nr_regions * sizeof(struct snap_region_rec));
	if (e)
		return e;
	if (mh.nr_regions) {
		d->regions = calloc(mh.nr_regions, sizeof *d->regions);
		if (!d->regions)
			return vmm_err(-ENOMEM, "snapshot: out of memory for %u regions", mh.nr_regions);
	}
	struct snap_region_rec prev;
	for (uint32_t i = 0; i < mh.nr_regions; i++) {
		struct snap_region_rec r;
		memcpy(&r, ps->p + sizeof mh + (size_t)i * sizeof r, sizeof r);
		if ((e = check_region(ps, i, &r, i ? &prev : NULL)))
			return e;
		d->regions[i] = (struct snap_region){ .gpa = r.gpa, .len = r.len, .offset = r.offset,
						      .flags = r.flags };
		memcpy(d->regions[i].name, r.name, sizeof r.name);
		prev = r;
	}
	return 0;
}

static int parse_pic(struct parser *ps, struct kvm_pic_state *out)
{
	struct kvm_pic_state s;
	int e = want_len(ps, sizeof s);
	if (e)
		return e;
	memcpy(&s, ps->p, sizeof s);
	/* The fields the 8259 model keeps as flags, and the small state machines. */
	if (s.read_reg_select > 1 || s.poll > 1 || s.special_mask > 1 || s.auto_eoi > 1 ||
	    s.rotate_on_auto_eoi > 1 || s.special_fully_nested_mode > 1 || s.init4 > 1)
		return bad(ps, "a PIC flag field is not 0 or 1");
	if (s.init_state > 3 || s.priority_add > 7 || (s.irq_base & 7))
		return bad(ps, "PIC init state %u, priority %u or vector base %#x out of range", s.init_state,
			   s.priority_add, s.irq_base);
	*out = s;
	return 0;
}

static int parse_ioapic(struct parser *ps, struct kvm_ioapic_state *out)
{
	struct kvm_ioapic_state s;
	int e = want_len(ps, sizeof s);
	if (e)
		return e;
	memcpy(&s, ps->p, sizeof s);
	if (s.base_address != VMM_IRQ_IOAPIC_BASE)
		return bad(ps, "IOAPIC base %#llx, KVM's is %#llx", (unsigned long long)s.base_address,
			   (unsigned long long)VMM_IRQ_IOAPIC_BASE);
	if (s.ioregsel > 0xff || s.id > 0xf || s.irr >> KVM_IOAPIC_NUM_PINS || s.pad)
		return bad(ps, "IOAPIC register select %#x, id %#x or request bits %#x out of range", s.ioregsel,
			   s.id, s.irr);
	*out = s;
	return 0;
}

static int parse_irqchip(struct parser *ps)
{
	struct snap_desc *d = ps->d;
	if (d->irqchip != VMM_IRQCHIP_KERNEL)
		return bad(ps, "interrupt controller state in a VM without the kernel irqchip");
	uint32_t bit;
	int e;
	switch (ps->h.instance) {
	case KVM_IRQCHIP_PIC_MASTER: bit = SEEN_PIC0; e = parse_pic(ps, &d->pic[0]); break;
	case KVM_IRQCHIP_PIC_SLAVE: bit = SEEN_PIC1; e = parse_pic(ps, &d->pic[1]); break;
	case KVM_IRQCHIP_IOAPIC: bit = SEEN_IOAPIC; e = parse_ioapic(ps, &d->ioapic); break;
	default: return bad(ps, "unknown chip");
	}
	if (e)
		return e;
	if (ps->seen & bit)
		return bad(ps, "duplicate section");
	ps->seen |= bit;
	return 0;
}

static int parse_pit(struct parser *ps)
{
	struct snap_desc *d = ps->d;
	struct kvm_pit_state2 s;
	int e = want_len(ps, sizeof s);
	if (e)
		return e;
	if (d->irqchip != VMM_IRQCHIP_KERNEL || (d->vm_flags & VMM_VM_NO_PIT))
		return bad(ps, "PIT state in a VM without the in-kernel PIT");
	memcpy(&s, ps->p, sizeof s);
	if (s.flags & ~(uint32_t)(KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON) ||
	    !all_zero(s.reserved, sizeof s.reserved))
		return bad(ps, "unknown PIT flags %#x or non-zero reserved fields", s.flags);
	for (int i = 0; i < 3; i++) {
		const struct kvm_pit_channel_state *c = &s.channels[i];
		/* 0xff is the mode of a channel the guest never programmed. */
		if (c->count > 0x10000 || (c->mode > 5 && c->mode != 0xff) || c->rw_mode > 3 ||
		    c->read_state > 4 || c->write_state > 4 || c->bcd > 1 || c->gate > 1 ||
		    c->count_latched > 3 || c->status_latched > 1)
			return bad(ps, "PIT channel %d: a field is out of range (count %u, mode %u)", i, c->count,
				   c->mode);
	}
	d->pit = s;
	return 0;
}

static int parse_clock(struct parser *ps)
{
	struct snap_clock_rec c;
	int e = want_len(ps, sizeof c);
	if (e)
		return e;
	memcpy(&c, ps->p, sizeof c);
	if (c.reserved)
		return bad(ps, "reserved field is not 0");
	ps->d->clock = c.clock;
	return 0;
}

/* A device state: opaque here (the device's loader checks it), bounded in size and
 * count, numbered 0, 1, ... in file order. */
static int parse_device(struct parser *ps)
{
	struct snap_desc *d = ps->d;
	if (ps->h.instance != d->nr_devices)
		return bad(ps, "device index %u, expected %u (devices are numbered in order)", ps->h.instance,
			   d->nr_devices);
	if (d->nr_devices >= SNAP_MAX_DEVICES)
		return bad(ps, "more than %u devices", SNAP_MAX_DEVICES);
	if (ps->h.length == 0 || ps->h.length > SNAP_MAX_DEVICE_STATE)
		return bad(ps, "device state of %u bytes: must be 1 to %u", ps->h.length, SNAP_MAX_DEVICE_STATE);
	/* Grow by doubling (the count is bounded above). */
	uint32_t n = d->nr_devices;
	if ((n & (n - 1)) == 0) {
		struct snap_blob *nb = realloc(d->devices, (size_t)(n ? 2 * n : 1) * sizeof *nb);
		if (!nb)
			return vmm_err(-ENOMEM, "snapshot: out of memory");
		d->devices = nb;
	}
	uint8_t *data = malloc(ps->h.length);
	if (!data)
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	memcpy(data, ps->p, ps->h.length);
	d->devices[n] = (struct snap_blob){ .data = data, .len = ps->h.length };
	d->nr_devices = n + 1;
	return 0;
}

/* ---- per-vCPU sections ---- */

static int parse_vcpu_rec(struct parser *ps, struct snap_vcpu *v)
{
	struct snap_vcpu_rec r;
	int e = want_len(ps, sizeof r);
	if (e)
		return e;
	memcpy(&r, ps->p, sizeof r);
	switch (r.mp_state) {
	case KVM_MP_STATE_RUNNABLE:
	case KVM_MP_STATE_UNINITIALIZED:
	case KVM_MP_STATE_INIT_RECEIVED:
	case KVM_MP_STATE_HALTED:
	case KVM_MP_STATE_SIPI_RECEIVED:
	case KVM_MP_STATE_AP_RESET_HOLD:
	case KVM_MP_STATE_SUSPENDED:
		break;
	default:
		return bad(ps, "MP state %u is not an x86 state", r.mp_state);
	}
	if (r.lib_flags & ~SNAP_VCPU_HAS_IDT)
		return bad(ps, "unknown vCPU flags %#x", r.lib_flags);
	if (!(r.lib_flags & SNAP_VCPU_HAS_IDT) ? r.idt_gpa != 0 : r.idt_gpa >= SNAP_MAX_GPA)
		return bad(ps, "IDT address %#llx does not match its flag", (unsigned long long)r.idt_gpa);
	v->id = r.id;
	v->mp_state = r.mp_state;
	v->tsc_khz = r.tsc_khz;
	v->lib_flags = r.lib_flags;
	v->idt_gpa = r.idt_gpa;
	return 0;
}

static int parse_sregs(struct parser *ps, struct snap_vcpu *v)
{
	int e = want_len(ps, sizeof v->sregs);
	if (e)
		return e;
	memcpy(&v->sregs, ps->p, sizeof v->sregs);
	/* KVM injects the lowest pending vector it finds here: at most one may be set. */
	unsigned bits = 0;
	for (size_t i = 0; i < sizeof v->sregs.interrupt_bitmap / sizeof v->sregs.interrupt_bitmap[0]; i++)
		bits += (unsigned)__builtin_popcountll(v->sregs.interrupt_bitmap[i]);
	if (bits > 1)
		return bad(ps, "%u pending interrupts in the bitmap, at most one is possible", bits);
	return 0;
}

static int parse_xsave(struct parser *ps, struct snap_vcpu *v)
{
	uint32_t n = ps->h.length;
	if (n < SNAP_MIN_XSAVE || n > SNAP_MAX_XSAVE || n % 4)
		return bad(ps, "XSAVE image of %u bytes: must be a multiple of 4 from %u to %u", n, SNAP_MIN_XSAVE,
			   SNAP_MAX_XSAVE);
	v->xsave = malloc(n);
	if (!v->xsave)
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	memcpy(v->xsave, ps->p, n);
	v->xsave_len = n;
	v->have |= SNAP_HAVE_XSAVE;
	return 0;
}

static int parse_xcrs(struct parser *ps, struct snap_vcpu *v)
{
	uint32_t nr;
	const uint8_t *items;
	int e = list_payload(ps, KVM_MAX_XCRS, sizeof(struct snap_xcr_rec), &nr, &items);
	if (e)
		return e;
	memset(&v->xcrs, 0, sizeof v->xcrs);
	v->xcrs.nr_xcrs = nr;
	for (uint32_t i = 0; i < nr; i++) {
		struct snap_xcr_rec x;
		memcpy(&x, items + (size_t)i * sizeof x, sizeof x);
		if (x.xcr != 0 || x.reserved)
			return bad(ps, "XCR%u: only XCR0 exists", x.xcr);
		v->xcrs.xcrs[i].xcr = x.xcr;
		v->xcrs.xcrs[i].value = x.value;
	}
	v->have |= SNAP_HAVE_XCRS;
	return 0;
}

static int parse_events(struct parser *ps, struct snap_vcpu *v)
{
	struct kvm_vcpu_events ev;
	int e = want_len(ps, sizeof ev);
	if (e)
		return e;
	memcpy(&ev, ps->p, sizeof ev);
	uint32_t known = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
			 KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM;
	if (ev.flags & ~known)
		return bad(ps, "event flags %#x (exception payloads and triple-fault events are not enabled)",
			   ev.flags & ~known);
	if (ev.exception.injected > 1 || ev.exception.pending > 1 || ev.exception.has_error_code > 1 ||
	    ev.exception.nr > 31 || ev.interrupt.injected > 1 || ev.interrupt.soft > 1 ||
	    ev.interrupt.shadow > 3 || ev.nmi.injected > 1 || ev.nmi.pending > 1 || ev.nmi.masked > 1 ||
	    ev.smi.smm > 1 || ev.smi.pending > 1 || ev.smi.smm_inside_nmi > 1 || ev.smi.latched_init > 1)
		return bad(ps, "an event field is out of range");
	if (ev.exception.injected && ev.exception.pending)
		return bad(ps, "an exception cannot be both injected and pending");
	v->events = ev;
	return 0;
}

static int parse_debugregs(struct parser *ps, struct snap_vcpu *v)
{
	struct kvm_debugregs r;
	int e = want_len(ps, sizeof r);
	if (e)
		return e;
	memcpy(&r, ps->p, sizeof r);
	if (r.flags || !all_zero(r.reserved, sizeof r.reserved) || r.dr6 >> 32 || r.dr7 >> 32)
		return bad(ps, "flags, reserved fields or the upper halves of DR6/DR7 are not 0");
	v->debugregs = r;
	return 0;
}

static int parse_msrs(struct parser *ps, struct snap_vcpu *v)
{
	uint32_t nr;
	const uint8_t *items;
	int e = list_payload(ps, SNAP_MAX_MSRS, sizeof(struct snap_msr_rec), &nr, &items);
	if (e)
		return e;
	if (nr && !(v->msrs = calloc(nr, sizeof *v->msrs)))
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	for (uint32_t i = 0; i < nr; i++) {
		struct snap_msr_rec m;
		memcpy(&m, items + (size_t)i * sizeof m, sizeof m);
		if (m.reserved)
			return bad(ps, "MSR %#x: reserved field is not 0", m.index);
		if (i && m.index <= v->msrs[i - 1].index)
			return bad(ps, "MSR %#x after %#x: indices must increase", m.index, v->msrs[i - 1].index);
		v->msrs[i] = (struct snap_msr){ .index = m.index, .value = m.value };
	}
	v->nr_msrs = nr;
	return 0;
}

static int parse_cpuid(struct parser *ps, struct snap_vcpu *v)
{
	uint32_t nr;
	const uint8_t *items;
	int e = list_payload(ps, SNAP_MAX_CPUID, sizeof(vmm_cpuid_entry), &nr, &items);
	if (e)
		return e;
	if (nr && !(v->cpuid = calloc(nr, sizeof *v->cpuid)))
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	for (uint32_t i = 0; i < nr; i++) {
		vmm_cpuid_entry c;
		memcpy(&c, items + (size_t)i * sizeof c, sizeof c);
		if (c.flags & ~VMM_CPUID_SIGNIFICANT_INDEX)
			return bad(ps, "CPUID leaf %#x: unknown flags %#x", c.function, c.flags);
		if (!(c.flags & VMM_CPUID_SIGNIFICANT_INDEX) && c.index)
			return bad(ps, "CPUID leaf %#x: a leaf without sub-leaves has index %u", c.function, c.index);
		if (i) {
			const vmm_cpuid_entry *p = &v->cpuid[i - 1];
			if (c.function < p->function || (c.function == p->function && c.index <= p->index))
				return bad(ps, "CPUID leaf %#x.%u after %#x.%u: entries must be sorted and unique",
					   c.function, c.index, p->function, p->index);
			if (c.function == p->function && c.flags != p->flags)
				return bad(ps, "CPUID leaf %#x: mixes indexed and plain entries", c.function);
		}
		v->cpuid[i] = c;
	}
	v->nr_cpuid = nr;
	return 0;
}

static int parse_vcpu_section(struct parser *ps)
{
	struct snap_desc *d = ps->d;
	if (ps->h.instance >= d->nr_vcpus)
		return bad(ps, "vCPU index %u, the VM has %u vCPUs", ps->h.instance, d->nr_vcpus);
	struct snap_vcpu *v = &d->vcpus[ps->h.instance];
	uint32_t bit = VBIT(ps->h.type);
	if (ps->vseen[ps->h.instance] & bit)
		return bad(ps, "duplicate section");
	ps->vseen[ps->h.instance] |= bit;
	switch (ps->h.type) {
	case SNAP_SEC_VCPU:
		return parse_vcpu_rec(ps, v);
	case SNAP_SEC_VCPU_REGS: {
		int e = want_len(ps, sizeof v->regs);
		if (!e)
			memcpy(&v->regs, ps->p, sizeof v->regs);
		return e;
	}
	case SNAP_SEC_VCPU_SREGS:
		return parse_sregs(ps, v);
	case SNAP_SEC_VCPU_FPU: {
		int e = want_len(ps, sizeof v->fpu);
		if (!e)
			memcpy(&v->fpu, ps->p, sizeof v->fpu);
		return e;
	}
	case SNAP_SEC_VCPU_XSAVE:
		return parse_xsave(ps, v);
	case SNAP_SEC_VCPU_XCRS:
		return parse_xcrs(ps, v);
	case SNAP_SEC_VCPU_LAPIC: {
		if (d->irqchip == VMM_IRQCHIP_NONE)
			return bad(ps, "LAPIC state in a VM without an interrupt controller");
		int e = want_len(ps, sizeof v->lapic);
		if (!e) {
			memcpy(&v->lapic, ps->p, sizeof v->lapic);
			v->have |= SNAP_HAVE_LAPIC;
		}
		return e;
	}
	case SNAP_SEC_VCPU_EVENTS:
		return parse_events(ps, v);
	case SNAP_SEC_VCPU_DEBUGREGS:
		return parse_debugregs(ps, v);
	case SNAP_SEC_VCPU_MSRS:
		return parse_msrs(ps, v);
	case SNAP_SEC_VCPU_CPUID:
		return parse_cpuid(ps, v);
	default:
		return bad(ps, "unknown section type");
	}
}

static int parse_section(struct parser *ps)
{
	uint32_t type = ps->h.type;
	if (!(ps->seen & SEEN_VM) && type != SNAP_SEC_VM)
		return bad(ps, "the VM section must come first");
	uint32_t once = type == SNAP_SEC_VM ? SEEN_VM : type == SNAP_SEC_MEMMAP ? SEEN_MEMMAP :
			type == SNAP_SEC_PIT ? SEEN_PIT : type == SNAP_SEC_CLOCK ? SEEN_CLOCK : 0;
	if (once) {
		if (ps->seen & once)
			return bad(ps, "duplicate section");
		ps->seen |= once;
	}
	switch (type) {
	case SNAP_SEC_VM: return parse_vm(ps);
	case SNAP_SEC_MEMMAP: return parse_memmap(ps);
	case SNAP_SEC_IRQCHIP: return parse_irqchip(ps);
	case SNAP_SEC_PIT: return parse_pit(ps);
	case SNAP_SEC_CLOCK: return parse_clock(ps);
	case SNAP_SEC_DEVICE: return parse_device(ps);
	default: break;
	}
	if (type >= SNAP_SEC_VCPU && type <= SNAP_SEC_VCPU_CPUID)
		return parse_vcpu_section(ps);
	if (ps->h.flags & SNAP_SECF_OPTIONAL)
		return 0; /* a later addition this reader can do without */
	return bad(ps, "unknown section type %#x (written by a newer libvmm?)", type);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* After the last section: everything required is there, and consistent. */
static int check_complete(const struct parser *ps)
{
	const struct snap_desc *d = ps->d;
	if (!(ps->seen & SEEN_MEMMAP))
		return vmm_err(-EINVAL, "snapshot: the MEMMAP section is missing");
	if (d->irqchip == VMM_IRQCHIP_KERNEL &&
	    (ps->seen & (SEEN_PIC0 | SEEN_PIC1 | SEEN_IOAPIC)) != (SEEN_PIC0 | SEEN_PIC1 | SEEN_IOAPIC))
		return vmm_err(-EINVAL, "snapshot: kernel irqchip without all of PIC master, PIC slave and IOAPIC state");
	bool want_pit = d->irqchip == VMM_IRQCHIP_KERNEL && !(d->vm_flags & VMM_VM_NO_PIT);
	if (want_pit && !(ps->seen & SEEN_PIT))
		return vmm_err(-EINVAL, "snapshot: the VM has an in-kernel PIT but the PIT section is missing");
	for (uint32_t i = 0; i < d->nr_vcpus; i++) {
		uint32_t s = ps->vseen[i];
		if ((s & VCPU_REQUIRED) != VCPU_REQUIRED)
			return vmm_err(-EINVAL, "snapshot: vCPU %u lacks a required section (have mask %#x, need %#x)",
				       i, s & VCPU_REQUIRED, VCPU_REQUIRED);
		bool fpu = s & VBIT(SNAP_SEC_VCPU_FPU), xsave = s & VBIT(SNAP_SEC_VCPU_XSAVE);
		if (fpu == xsave)
			return vmm_err(-EINVAL, "snapshot: vCPU %u must have exactly one of FPU and XSAVE state", i);
		bool lapic = s & VBIT(SNAP_SEC_VCPU_LAPIC);
		if (lapic != (d->irqchip != VMM_IRQCHIP_NONE))
			return vmm_err(-EINVAL, "snapshot: vCPU %u: LAPIC state %s", i,
				       lapic ? "without an interrupt controller" : "is missing");
	}
	/* vCPU ids are unique: sort a copy (up to SNAP_MAX_VCPUS of them). */
	if (d->nr_vcpus > 1) {
		uint32_t *ids = malloc(d->nr_vcpus * sizeof *ids);
		if (!ids)
			return vmm_err(-ENOMEM, "snapshot: out of memory");
		for (uint32_t i = 0; i < d->nr_vcpus; i++)
			ids[i] = d->vcpus[i].id;
		qsort(ids, d->nr_vcpus, sizeof *ids, cmp_u32);
		uint32_t dup = UINT32_MAX;
		for (uint32_t i = 1; i < d->nr_vcpus && dup == UINT32_MAX; i++)
			if (ids[i] == ids[i - 1])
				dup = ids[i];
		free(ids);
		if (dup != UINT32_MAX)
			return vmm_err(-EINVAL, "snapshot: two vCPUs have id %u", dup);
	}
	return 0;
}

int snap_parse(const void *buf, size_t len, struct snap_desc **out)
{
	*out = NULL;
	struct snap_file_header fh;
	if (!buf || len < sizeof fh)
		return vmm_err(-EINVAL, "snapshot: %zu bytes is too short for a state file header (%zu bytes)", len,
			       sizeof fh);
	memcpy(&fh, buf, sizeof fh);
	if (memcmp(fh.magic, SNAP_MAGIC, sizeof fh.magic))
		return vmm_err(-EINVAL, "snapshot: not a libvmm state file (bad magic)");
	if (fh.header_size != sizeof fh)
		return vmm_err(-EINVAL, "snapshot: header size %u, expected %zu", fh.header_size, sizeof fh);
	if (fh.total_size > VMM_SNAPSHOT_MAX_STATE_SIZE)
		return vmm_err(-EINVAL, "snapshot: header claims %llu bytes, over the %u-byte limit",
			       (unsigned long long)fh.total_size, VMM_SNAPSHOT_MAX_STATE_SIZE);
	if (fh.total_size != len)
		return vmm_err(-EINVAL, "snapshot: %s: the header says %llu bytes, there are %zu",
			       len < fh.total_size ? "truncated" : "trailing data",
			       (unsigned long long)fh.total_size, len);
	uint32_t crc = fh.crc;
	struct snap_file_header zero = fh;
	zero.crc = 0;
	uint32_t got = vmm_crc32c(0, &zero, sizeof zero);
	got = vmm_crc32c(got, (const uint8_t *)buf + sizeof fh, len - sizeof fh);
	if (got != crc)
		return vmm_err(-EBADMSG, "snapshot: checksum mismatch (stored %#010x, computed %#010x): the file is corrupted",
			       crc, got);
	if (fh.version > SNAP_VERSION)
		return vmm_err(-ENOTSUP, "snapshot: format version %u is newer than this libvmm reads (%u)", fh.version,
			       SNAP_VERSION);
	if (fh.version != SNAP_VERSION)
		return vmm_err(-EINVAL, "snapshot: format version %u is invalid", fh.version);
	if (fh.flags || fh.reserved)
		return vmm_err(-EINVAL, "snapshot: header flags %#x / reserved %#x must be 0", fh.flags, fh.reserved);

	struct parser ps = { .total = len };
	if (!(ps.d = calloc(1, sizeof *ps.d)))
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	const uint8_t *b = buf;
	size_t pos = sizeof fh;
	int e = 0;
	for (uint32_t i = 0; i < fh.nr_sections && !e; i++) {
		ps.index = i;
		if (len - pos < sizeof ps.h) {
			e = vmm_err(-EINVAL, "snapshot: section %u of %u: header past the end of the file", i,
				    fh.nr_sections);
			break;
		}
		memcpy(&ps.h, b + pos, sizeof ps.h);
		pos += sizeof ps.h;
		size_t padded = ps.h.length + (SNAP_ALIGN - ps.h.length % SNAP_ALIGN) % SNAP_ALIGN;
		if (ps.h.length > len - pos || padded > len - pos) {
			e = bad(&ps, "payload of %u bytes goes past the end of the file (%zu bytes left)", ps.h.length,
				len - pos);
			break;
		}
		if (ps.h.version != SNAP_SECTION_VERSION) {
			e = bad(&ps, "section version %u, this libvmm reads %u", ps.h.version, SNAP_SECTION_VERSION);
			break;
		}
		if (ps.h.flags & ~SNAP_SECF_OPTIONAL) {
			e = bad(&ps, "unknown section flags %#x", ps.h.flags);
			break;
		}
		if (!all_zero(b + pos + ps.h.length, padded - ps.h.length)) {
			e = bad(&ps, "padding after the payload is not zero");
			break;
		}
		ps.p = b + pos;
		e = parse_section(&ps);
		pos += padded;
	}
	if (!e && pos != len)
		e = vmm_err(-EINVAL, "snapshot: %zu bytes after the last of %u sections", len - pos, fh.nr_sections);
	if (!e && !(ps.seen & SEEN_VM))
		e = vmm_err(-EINVAL, "snapshot: the VM section is missing");
	if (!e)
		e = check_complete(&ps);
	free(ps.vseen);
	if (e) {
		snap_desc_free(ps.d);
		return e;
	}
	if (ps.seen & (SEEN_PIC0 | SEEN_PIC1 | SEEN_IOAPIC))
		ps.d->have |= SNAP_HAVE_IRQCHIP;
	if (ps.seen & SEEN_PIT)
		ps.d->have |= SNAP_HAVE_PIT;
	if (ps.seen & SEEN_CLOCK)
		ps.d->have |= SNAP_HAVE_CLOCK;
	*out = ps.d;
	return 0;
}

void snap_desc_free(struct snap_desc *d)
{
	if (!d)
		return;
	for (uint32_t i = 0; i < d->nr_vcpus; i++) {
		free(d->vcpus[i].xsave);
		free(d->vcpus[i].msrs);
		free(d->vcpus[i].cpuid);
		free(d->vcpus[i].set_msrs);
		free(d->vcpus[i].set_xsave);
	}
	for (uint32_t i = 0; i < d->nr_devices; i++)
		free(d->devices[i].data);
	free(d->devices);
	free(d->vcpus);
	free(d->regions);
	free(d);
}

int snap_check_mem_header(const struct snap_desc *d, const void *page, size_t len)
{
	struct snap_mem_header h;
	if (len < sizeof h)
		return vmm_err(-EINVAL, "snapshot memory file: shorter than its header");
	memcpy(&h, page, sizeof h);
	if (memcmp(h.magic, SNAP_MEM_MAGIC, sizeof h.magic))
		return vmm_err(-EINVAL, "snapshot memory file: bad magic (not a libvmm memory file)");
	uint32_t crc = h.crc;
	h.crc = 0;
	if (vmm_crc32c(0, &h, sizeof h) != crc)
		return vmm_err(-EBADMSG, "snapshot memory file: header checksum mismatch");
	if (h.version != SNAP_VERSION || h.header_size != SNAP_MEM_HEADER_SIZE)
		return vmm_err(-EINVAL, "snapshot memory file: version %u / header size %u not supported", h.version,
			       h.header_size);
	if (memcmp(h.id, d->mem_id, sizeof h.id) || h.file_size != d->mem_file_size ||
	    h.nr_regions != d->nr_regions)
		return vmm_err(-EINVAL, "snapshot memory file: it belongs to a different snapshot");
	return 0;
}
