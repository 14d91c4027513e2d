/* The snapshot state-file format without KVM (lib/snapshot/format_*.c): CRC-32C, a round
 * trip of a description with every kind of section, every truncation, bit flips caught
 * by the checksum, and hostile files with a valid checksum (section lengths past the
 * end, a billion vCPUs, huge region counts, overlapping regions, bad counts and fields
 * in every section) rejected with -EINVAL and a message naming the problem. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/snapshot_internal.h"

/* ---- a description that uses every section ---- */

static void fill(void *p, size_t n, uint8_t seed)
{
	uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seed + i * 7);
}

static struct snap_desc *make_desc(void)
{
	struct snap_desc *d = calloc(1, sizeof *d);
	assert_non_null(d);
	d->irqchip = VMM_IRQCHIP_KERNEL;
	d->exit_port = 0xf4;
	d->fault_port = 0xf5;
	d->mem_source = SNAP_MEM_FILE;
	fill(d->mem_id, sizeof d->mem_id, 1);
	d->nr_regions = 2;
	d->regions = calloc(2, sizeof *d->regions);
	assert_non_null(d->regions);
	d->regions[0] = (struct snap_region){ .gpa = 0, .len = 32u << 20, .offset = SNAP_MEM_HEADER_SIZE };
	strcpy(d->regions[0].name, "ram");
	d->regions[1] = (struct snap_region){ .gpa = 1ull << 32, .len = 64u << 10,
					      .offset = SNAP_MEM_HEADER_SIZE + (32u << 20), .flags = VMM_MEM_READONLY };
	strcpy(d->regions[1].name, "rom");
	d->mem_file_size = SNAP_MEM_HEADER_SIZE + (32u << 20) + (64u << 10);
	d->have = SNAP_HAVE_IRQCHIP | SNAP_HAVE_PIT | SNAP_HAVE_CLOCK;
	d->pic[0].irq_base = 0x20;
	d->pic[0].imr = 0xff;
	d->pic[1].irq_base = 0x28;
	d->ioapic.base_address = VMM_IRQ_IOAPIC_BASE;
	d->ioapic.redirtbl[6].fields.vector = 0x42;
	for (int c = 0; c < 3; c++) {
		d->pit.channels[c].mode = 0xff;
		d->pit.channels[c].count = 0x10000;
		d->pit.channels[c].gate = c != 2;
	}
	d->clock = 123456789;
	d->nr_vcpus = 2;
	d->vcpus = calloc(2, sizeof *d->vcpus);
	assert_non_null(d->vcpus);
	for (uint32_t i = 0; i < 2; i++) {
		struct snap_vcpu *v = &d->vcpus[i];
		v->id = i * 2 + 1;
		v->mp_state = i ? KVM_MP_STATE_HALTED : KVM_MP_STATE_RUNNABLE;
		v->tsc_khz = 2000000;
		if (i == 0) {
			v->lib_flags = SNAP_VCPU_HAS_IDT;
			v->idt_gpa = 0x3000;
		}
		fill(&v->regs, sizeof v->regs, (uint8_t)(10 + i));
		fill(&v->sregs, sizeof v->sregs, (uint8_t)(20 + i));
		memset(v->sregs.interrupt_bitmap, 0, sizeof v->sregs.interrupt_bitmap);
		v->sregs.interrupt_bitmap[1] = 1ull << 3; /* one pending vector, 67 */
		v->have = SNAP_HAVE_LAPIC | SNAP_HAVE_XCRS;
		if (i == 0) {
			v->have |= SNAP_HAVE_XSAVE;
			v->xsave_len = 4096 + 64;
			v->xsave = malloc(v->xsave_len);
			assert_non_null(v->xsave);
			fill(v->xsave, v->xsave_len, 30);
		} else {
			fill(&v->fpu, sizeof v->fpu, 40);
		}
		v->xcrs.nr_xcrs = 1;
		v->xcrs.xcrs[0].value = 7;
		fill(&v->lapic, sizeof v->lapic, (uint8_t)(50 + i));
		v->events.flags = KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM;
		v->events.interrupt.shadow = 1;
		v->events.nmi.masked = 1;
		v->debugregs.db[0] = 0x1000;
		v->debugregs.dr7 = 0x400;
		v->nr_msrs = 4;
		v->msrs = calloc(4, sizeof *v->msrs);
		assert_non_null(v->msrs);
		static const uint32_t idx[] = { 0x10, 0x174, 0x277, 0xc0000081 };
		for (int k = 0; k < 4; k++)
			v->msrs[k] = (struct snap_msr){ .index = idx[k], .value = 0x1111111111ull * (k + 1) + i };
		v->nr_cpuid = 3;
		v->cpuid = calloc(3, sizeof *v->cpuid);
		assert_non_null(v->cpuid);
		v->cpuid[0] = (vmm_cpuid_entry){ .function = 0, .eax = 0xd, .ebx = 0x756e6547 };
		v->cpuid[1] = (vmm_cpuid_entry){ .function = 7, .index = 0, .flags = VMM_CPUID_SIGNIFICANT_INDEX, .ebx = 1 };
		v->cpuid[2] = (vmm_cpuid_entry){ .function = 7, .index = 1, .flags = VMM_CPUID_SIGNIFICANT_INDEX, .eax = 2 };
	}
	return d;
}

static uint8_t *encode(const struct snap_desc *d, size_t *len)
{
	uint8_t *buf;
	assert_int_equal(snap_encode(d, &buf, len), 0);
	return buf;
}

/* Recomputes the checksum after a deliberate change, so the parser looks further. */
static void fix_crc(uint8_t *buf, size_t len)
{
	uint32_t zero = 0;
	memcpy(buf + offsetof(struct snap_file_header, crc), &zero, 4);
	uint32_t crc = vmm_crc32c(0, buf, len);
	memcpy(buf + offsetof(struct snap_file_header, crc), &crc, 4);
}

/* Parses and expects failure `err` with `needle` in the message. */
static void expect_bad(const uint8_t *buf, size_t len, int err, const char *needle)
{
	struct snap_desc *d = (struct snap_desc *)1;
	int r = snap_parse(buf, len, &d);
	if (r != err || (needle && !strstr(vmm_last_error(), needle)))
		fail_msg("expected %d with \"%s\", got %d: %s", err, needle ? needle : "", r, vmm_last_error());
	assert_null(d);
}

/* Offset of the payload of section (type, instance); fails if absent. */
static size_t find(const uint8_t *buf, size_t len, uint32_t type, uint32_t instance, uint32_t *plen)
{
	size_t pos = sizeof(struct snap_file_header);
	while (pos + sizeof(struct snap_section_header) <= len) {
		struct snap_section_header h;
		memcpy(&h, buf + pos, sizeof h);
		if (h.type == type && h.instance == instance) {
			if (plen)
				*plen = h.length;
			return pos + sizeof h;
		}
		pos += sizeof h + h.length + (8 - h.length % 8) % 8;
	}
	fail_msg("section %#x/%u not found", type, instance);
	return 0;
}

/* A copy with one field of one section changed (and the checksum fixed). */
static uint8_t *patched(const uint8_t *buf, size_t len, uint32_t type, uint32_t instance, size_t off,
			const void *val, size_t n)
{
	uint8_t *c = malloc(len);
	assert_non_null(c);
	memcpy(c, buf, len);
	memcpy(c + find(c, len, type, instance, NULL) + off, val, n);
	fix_crc(c, len);
	return c;
}

static void expect_patch_bad(const uint8_t *buf, size_t len, uint32_t type, uint32_t instance, size_t off,
			     const void *val, size_t n, const char *needle)
{
	uint8_t *c = patched(buf, len, type, instance, off, val, n);
	expect_bad(c, len, -EINVAL, needle);
	free(c);
}

/* A copy without section (type, instance), or with `extra` bytes (a whole section)
 * inserted before it; header counts and checksum fixed. */
static uint8_t *splice(const uint8_t *buf, size_t len, uint32_t type, uint32_t instance, const void *extra,
		       size_t extra_len, size_t *out_len)
{
	uint32_t plen;
	size_t payload = find(buf, len, type, instance, &plen);
	size_t start = payload - sizeof(struct snap_section_header);
	size_t sec = sizeof(struct snap_section_header) + plen + (8 - plen % 8) % 8;
	size_t n = extra ? len + extra_len : len - sec;
	uint8_t *c = malloc(n);
	assert_non_null(c);
	memcpy(c, buf, start);
	if (extra) {
		memcpy(c + start, extra, extra_len);
		memcpy(c + start + extra_len, buf + start, len - start);
	} else {
		memcpy(c + start, buf + start + sec, len - start - sec);
	}
	struct snap_file_header fh;
	memcpy(&fh, c, sizeof fh);
	fh.total_size = n;
	fh.nr_sections = extra ? fh.nr_sections + 1 : fh.nr_sections - 1;
	memcpy(c, &fh, sizeof fh);
	fix_crc(c, n);
	*out_len = n;
	return c;
}

/* ---- tests ---- */

static void test_crc32c(void **state)
{
	(void)state;
	/* The check value of CRC-32C (RFC 3720 test vector "123456789"). */
	assert_int_equal(vmm_crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(vmm_crc32c(0, "", 0), 0);
	/* Incremental equals one-shot, for every split and odd lengths. */
	uint8_t buf[67];
	fill(buf, sizeof buf, 3);
	uint32_t whole = vmm_crc32c(0, buf, sizeof buf);
	for (size_t k = 0; k <= sizeof buf; k++)
		assert_int_equal(vmm_crc32c(vmm_crc32c(0, buf, k), buf + k, sizeof buf - k), whole);
}

static void test_round_trip(void **state)
{
	(void)state;
	struct snap_desc *d = make_desc();
	size_t len;
	uint8_t *buf = encode(d, &len);
	assert_true(len % 8 == 0);
	struct snap_desc *p;
	int r = snap_parse(buf, len, &p);
	if (r)
		fail_msg("parse: %d %s", r, vmm_last_error());
	assert_int_equal(p->irqchip, d->irqchip);
	assert_int_equal(p->exit_port, 0xf4);
	assert_int_equal(p->fault_port, 0xf5);
	assert_int_equal(p->mem_file_size, d->mem_file_size);
	assert_memory_equal(p->mem_id, d->mem_id, 16);
	assert_int_equal(p->have, d->have);
	assert_int_equal(p->nr_regions, 2);
	assert_memory_equal(p->regions, d->regions, 2 * sizeof *d->regions);
	assert_memory_equal(&p->pic, &d->pic, sizeof d->pic);
	assert_memory_equal(&p->ioapic, &d->ioapic, sizeof d->ioapic);
	assert_memory_equal(&p->pit, &d->pit, sizeof d->pit);
	assert_int_equal(p->clock, d->clock);
	assert_int_equal(p->nr_vcpus, 2);
	for (int i = 0; i < 2; i++) {
		const struct snap_vcpu *a = &d->vcpus[i], *b = &p->vcpus[i];
		assert_int_equal(b->id, a->id);
		assert_int_equal(b->mp_state, a->mp_state);
		assert_int_equal(b->tsc_khz, a->tsc_khz);
		assert_int_equal(b->lib_flags, a->lib_flags);
		assert_int_equal(b->idt_gpa, a->idt_gpa);
		assert_int_equal(b->have, a->have);
		assert_memory_equal(&b->regs, &a->regs, sizeof a->regs);
		assert_memory_equal(&b->sregs, &a->sregs, sizeof a->sregs);
		if (a->have & SNAP_HAVE_XSAVE) {
			assert_int_equal(b->xsave_len, a->xsave_len);
			assert_memory_equal(b->xsave, a->xsave, a->xsave_len);
		} else {
			assert_memory_equal(&b->fpu, &a->fpu, sizeof a->fpu);
		}
		assert_memory_equal(&b->xcrs, &a->xcrs, sizeof a->xcrs);
		assert_memory_equal(&b->lapic, &a->lapic, sizeof a->lapic);
		assert_memory_equal(&b->events, &a->events, sizeof a->events);
		assert_memory_equal(&b->debugregs, &a->debugregs, sizeof a->debugregs);
		assert_int_equal(b->nr_msrs, a->nr_msrs);
		for (uint32_t k = 0; k < a->nr_msrs; k++) {
			assert_int_equal(b->msrs[k].index, a->msrs[k].index);
			assert_int_equal(b->msrs[k].value, a->msrs[k].value);
		}
		assert_int_equal(b->nr_cpuid, a->nr_cpuid);
		assert_memory_equal(b->cpuid, a->cpuid, a->nr_cpuid * sizeof *a->cpuid);
	}
	/* Encoding what was parsed gives the same bytes (up to the new memory id: none). */
	size_t len2;
	uint8_t *buf2 = encode(p, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(buf2, buf, len);

	/* The memory file's header page pairs with exactly this state. */
	uint8_t page[SNAP_MEM_HEADER_SIZE];
	snap_fill_mem_header(d, page);
	assert_int_equal(snap_check_mem_header(p, page, sizeof page), 0);
	p->mem_id[3] ^= 1;
	assert_int_equal(snap_check_mem_header(p, page, sizeof page), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "different snapshot"));
	p->mem_id[3] ^= 1;
	page[20] ^= 0x40;
	assert_int_equal(snap_check_mem_header(p, page, sizeof page), -EBADMSG);
	assert_int_equal(snap_check_mem_header(p, page, 10), -EINVAL);
	memcpy(page, "NOTAMEM!", 8);
	assert_int_equal(snap_check_mem_header(p, page, sizeof page), -EINVAL);

	free(buf2);
	free(buf);
	snap_desc_free(p);
	snap_desc_free(d);
}

/* A VM without an interrupt controller, no clock, no vCPUs at all: also valid. */
static void test_minimal(void **state)
{
	(void)state;
	struct snap_desc d = { .irqchip = VMM_IRQCHIP_NONE, .exit_port = 1, .fault_port = 2,
			       .mem_source = SNAP_MEM_IN_PLACE };
	size_t len;
	uint8_t *buf = encode(&d, &len);
	struct snap_desc *p;
	assert_int_equal(snap_parse(buf, len, &p), 0);
	assert_int_equal(p->nr_vcpus, 0);
	assert_int_equal(p->nr_regions, 0);
	snap_desc_free(p);
	free(buf);
	snap_desc_free(NULL);
}

static void test_truncations(void **state)
{
	(void)state;
	struct snap_desc *d = make_desc();
	size_t len;
	uint8_t *buf = encode(d, &len);
	for (size_t n = 0; n < len; n++) {
		struct snap_desc *p = NULL;
		int r = snap_parse(buf, n, &p);
		if (r != -EINVAL)
			fail_msg("truncated to %zu of %zu bytes: got %d (%s)", n, len, r, vmm_last_error());
		assert_null(p);
		assert_true(vmm_last_error()[0] != 0);
	}
	expect_bad(buf, len - 1, -EINVAL, "truncated");
	expect_bad(NULL, 0, -EINVAL, "too short");
	/* Trailing bytes are as wrong as missing ones. */
	uint8_t *longer = calloc(1, len + 8);
	assert_non_null(longer);
	memcpy(longer, buf, len);
	expect_bad(longer, len + 8, -EINVAL, "trailing data");
	free(longer);
	free(buf);
	snap_desc_free(d);
}

static void test_bit_flips(void **state)
{
	(void)state;
	struct snap_desc *d = make_desc();
	size_t len;
	uint8_t *buf = encode(d, &len);
	for (size_t i = 0; i < len; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			/* Every bit of the header, one bit per byte elsewhere. */
			if (i >= sizeof(struct snap_file_header) && bit != i % 8)
				continue;
			buf[i] ^= (uint8_t)(1u << bit);
			struct snap_desc *p = NULL;
			int r = snap_parse(buf, len, &p);
			buf[i] ^= (uint8_t)(1u << bit);
			/* Flips of the magic, the header size and the total size are caught before
			 * the checksum is computed; everything else by the checksum. */
			bool early = i < 8 || (i >= 12 && i < 24);
			if (r != (early ? -EINVAL : -EBADMSG) || p)
				fail_msg("bit %u of byte %zu: got %d (%s)", bit, i, r, vmm_last_error());
		}
	}
	free(buf);
	snap_desc_free(d);
}

static void test_header(void **state)
{
	(void)state;
	struct snap_desc *d = make_desc();
	size_t len;
	uint8_t *buf = encode(d, &len);
	uint8_t *c = malloc(len);
	assert_non_null(c);
	struct snap_file_header fh;

	memcpy(c, buf, len);
	memcpy(c, "LVMMSNAQ", 8);
	expect_bad(c, len, -EINVAL, "bad magic");

	memcpy(c, buf, len);
	memcpy(&fh, c, sizeof fh);
	fh.version = 2;
	memcpy(c, &fh, sizeof fh);
	fix_crc(c, len);
	expect_bad(c, len, -ENOTSUP, "newer");
	fh.version = 0;
	memcpy(c, &fh, sizeof fh);
	fix_crc(c, len);
	expect_bad(c, len, -EINVAL, "version 0");

	memcpy(c, buf, len);
	memcpy(&fh, c, sizeof fh);
	fh.header_size = 48;
	memcpy(c, &fh, sizeof fh);
	expect_bad(c, len, -EINVAL, "header size");

	memcpy(&fh, buf, sizeof fh);
	fh.total_size = 1ull << 40;
	memcpy(c, buf, len);
	memcpy(c, &fh, sizeof fh);
	expect_bad(c, len, -EINVAL, "limit");

	memcpy(&fh, buf, sizeof fh);
	fh.flags = 1;
	memcpy(c, buf, len);
	memcpy(c, &fh, sizeof fh);
	fix_crc(c, len);
	expect_bad(c, len, -EINVAL, "flags");

	/* More sections claimed than there are; fewer claimed than there are. */
	memcpy(&fh, buf, sizeof fh);
	fh.nr_sections += 1;
	memcpy(c, buf, len);
	memcpy(c, &fh, sizeof fh);
	fix_crc(c, len);
	expect_bad(c, len, -EINVAL, "past the end");
	fh.nr_sections -= 2;
	memcpy(c, &fh, sizeof fh);
	fix_crc(c, len);
	expect_bad(c, len, -EINVAL, "after the last");
	fh.nr_sections = 0xffffffffu;
	memcpy(c, &fh, sizeof fh);
	fix_crc(c, len);
	expect_bad(c, len, -EINVAL, "past the end");

	free(c);
	free(buf);
	snap_desc_free(d);
}

static void test_hostile_sections(void **state)
{
	(void)state;
	struct snap_desc *d = make_desc();
	size_t len;
	uint8_t *buf = encode(d, &len);
	uint32_t u32;
	uint64_t u64;
	uint16_t u16;
	size_t hdr = sizeof(struct snap_section_header);

	/* A section length far beyond the file, and just beyond it. */
	size_t vm_at = find(buf, len, SNAP_SEC_VM, 0, NULL);
	uint8_t *c = malloc(len);
	assert_non_null(c);
	for (int k = 0; k < 2; k++) {
		memcpy(c, buf, len);
		u32 = k ? (uint32_t)(len - vm_at + 1) : 0xfffffff0u;
		memcpy(c + vm_at - hdr + offsetof(struct snap_section_header, length), &u32, 4);
		fix_crc(c, len);
		expect_bad(c, len, -EINVAL, "past the end");
	}
	/* Section version, unknown flags, non-zero padding. */
	memcpy(c, buf, len);
	u16 = 2;
	memcpy(c + vm_at - hdr + offsetof(struct snap_section_header, version), &u16, 2);
	fix_crc(c, len);
	expect_bad(c, len, -EINVAL, "section version");
	memcpy(c, buf, len);
	u16 = 4;
	memcpy(c + vm_at - hdr + offsetof(struct snap_section_header, flags), &u16, 2);
	fix_crc(c, len);
	expect_bad(c, len, -EINVAL, "section flags");
	uint32_t plen;
	size_t cpuid_at = find(buf, len, SNAP_SEC_VCPU_CPUID, 0, &plen);
	assert_true(plen % 8 != 0); /* 8 + 3 * 28 = 92: padded */
	memcpy(c, buf, len);
	c[cpuid_at + plen] = 1;
	fix_crc(c, len);
	expect_bad(c, len, -EINVAL, "padding");

	/* VM section: absurd counts and values. */
	u32 = 1000000000u;
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, nr_vcpus), &u32, 4, "at most 4096");
	u32 = 4096;
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, nr_vcpus), &u32, 4, "cannot fit");
	u32 = 3; /* a vCPU whose sections are missing */
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, nr_vcpus), &u32, 4, "vCPU 2 lacks");
	u32 = 1; /* vCPU 1's sections now name a vCPU that does not exist */
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, nr_vcpus), &u32, 4, "vCPU index 1");
	u32 = 0x7fffffffu;
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, nr_regions), &u32, 4, "memory regions");
	u32 = 3;
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, nr_regions), &u32, 4, "VM section says");
	u32 = VMM_IRQCHIP_SPLIT;
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, irqchip), &u32, 4, "split");
	u32 = 9;
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, irqchip), &u32, 4, "irqchip mode");
	u32 = VMM_IRQCHIP_NONE; /* then the PIC, IOAPIC, PIT and LAPIC sections are wrong */
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, irqchip), &u32, 4, "without the kernel irqchip");
	u32 = 1u << 7;
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, vm_flags), &u32, 4, "VM flags");
	u32 = VMM_VM_NO_PIT;
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, vm_flags), &u32, 4, "without the in-kernel PIT");
	u16 = 0;
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, exit_port), &u16, 2, "must not be 0");
	u32 = 5;
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, mem_source), &u32, 4, "memory source");
	u32 = SNAP_MEM_IN_PLACE;
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, mem_source), &u32, 4, "stays in place");
	u64 = 100;
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, mem_file_size), &u64, 8, "page multiple");
	u64 = 8192; /* the regions no longer fit in it */
	expect_patch_bad(buf, len, SNAP_SEC_VM, 0, offsetof(struct snap_vm_rec, mem_file_size), &u64, 8, "outside the memory file");

	/* MEMMAP: regions overlapping, unsorted, misaligned, empty, past 2^52, outside the
	 * file, overlapping in the file, unnamed garbage. */
	size_t r0 = sizeof(struct snap_memmap_head), r1 = r0 + sizeof(struct snap_region_rec);
	u64 = (32u << 20) - 4096;
	expect_patch_bad(buf, len, SNAP_SEC_MEMMAP, 0, r1 + offsetof(struct snap_region_rec, gpa), &u64, 8, "overlaps");
	u64 = 0;
	expect_patch_bad(buf, len, SNAP_SEC_MEMMAP, 0, r1 + offsetof(struct snap_region_rec, gpa), &u64, 8, "overlaps");
	u64 = (1ull << 32) + 1;
	expect_patch_bad(buf, len, SNAP_SEC_MEMMAP, 0, r1 + offsetof(struct snap_region_rec, gpa), &u64, 8, "page multiples");
	u64 = 0;
	expect_patch_bad(buf, len, SNAP_SEC_MEMMAP, 0, r1 + offsetof(struct snap_region_rec, len), &u64, 8, "non-zero");
	u64 = (1ull << 52) - 4096;
	expect_patch_bad(buf, len, SNAP_SEC_MEMMAP, 0, r1 + offsetof(struct snap_region_rec, gpa), &u64, 8, "2^52");
	u64 = 0xfffffffffffff000ull;
	expect_patch_bad(buf, len, SNAP_SEC_MEMMAP, 0, r1 + offsetof(struct snap_region_rec, len), &u64, 8, "2^52");
	u64 = 0;
	expect_patch_bad(buf, len, SNAP_SEC_MEMMAP, 0, r0 + offsetof(struct snap_region_rec, offset), &u64, 8, "outside the memory file");
	u64 = SNAP_MEM_HEADER_SIZE + 4096;
	expect_patch_bad(buf, len, SNAP_SEC_MEMMAP, 0, r1 + offsetof(struct snap_region_rec, offset), &u64, 8, "file range overlaps");
	u64 = 0xfffffffffffff000ull;
	expect_patch_bad(buf, len, SNAP_SEC_MEMMAP, 0, r1 + offsetof(struct snap_region_rec, offset), &u64, 8, "overflows");
	u32 = 1u << 9;
	expect_patch_bad(buf, len, SNAP_SEC_MEMMAP, 0, r0 + offsetof(struct snap_region_rec, flags), &u32, 4, "unknown flags");
	u32 = VMM_MEM_HUGEPAGES | VMM_MEM_THP;
	expect_patch_bad(buf, len, SNAP_SEC_MEMMAP, 0, r0 + offsetof(struct snap_region_rec, flags), &u32, 4, "huge pages");
	char name[SNAP_REGION_NAME];
	memset(name, 'x', sizeof name);
	expect_patch_bad(buf, len, SNAP_SEC_MEMMAP, 0, r0 + offsetof(struct snap_region_rec, name), name, sizeof name, "NUL");
	expect_patch_bad(buf, len, SNAP_SEC_MEMMAP, 0, r0 + offsetof(struct snap_region_rec, name) + 5, "y", 1, "NUL");

	/* Interrupt controllers and the PIT. */
	uint8_t b = 2;
	expect_patch_bad(buf, len, SNAP_SEC_IRQCHIP, 0, offsetof(struct kvm_pic_state, poll), &b, 1, "PIC flag");
	b = 0x21;
	expect_patch_bad(buf, len, SNAP_SEC_IRQCHIP, 1, offsetof(struct kvm_pic_state, irq_base), &b, 1, "vector base");
	u64 = 0xfee00000;
	expect_patch_bad(buf, len, SNAP_SEC_IRQCHIP, 2, offsetof(struct kvm_ioapic_state, base_address), &u64, 8, "IOAPIC base");
	u32 = 1u << 24;
	expect_patch_bad(buf, len, SNAP_SEC_IRQCHIP, 2, offsetof(struct kvm_ioapic_state, irr), &u32, 4, "out of range");
	b = 7;
	expect_patch_bad(buf, len, SNAP_SEC_PIT, 0, offsetof(struct kvm_pit_state2, channels[1].mode), &b, 1, "channel 1");
	u32 = 0x10001;
	expect_patch_bad(buf, len, SNAP_SEC_PIT, 0, offsetof(struct kvm_pit_state2, channels[0].count), &u32, 4, "channel 0");
	u32 = 4;
	expect_patch_bad(buf, len, SNAP_SEC_PIT, 0, offsetof(struct kvm_pit_state2, flags), &u32, 4, "PIT flags");

	/* vCPU sections. */
	u32 = 77;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU, 0, offsetof(struct snap_vcpu_rec, mp_state), &u32, 4, "MP state");
	u32 = 3; /* vCPU 0 gets vCPU 1's id */
	expect_patch_bad(buf, len, SNAP_SEC_VCPU, 0, offsetof(struct snap_vcpu_rec, id), &u32, 4, "two vCPUs have id 3");
	u32 = 0;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU, 0, offsetof(struct snap_vcpu_rec, lib_flags), &u32, 4, "IDT address");
	u64 = 0x4000;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU, 1, offsetof(struct snap_vcpu_rec, idt_gpa), &u64, 8, "IDT address");
	u64 = 3;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_SREGS, 0, offsetof(struct kvm_sregs, interrupt_bitmap), &u64, 8, "pending interrupts");
	u32 = 0x40;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_EVENTS, 0, offsetof(struct kvm_vcpu_events, flags), &u32, 4, "event flags");
	b = 32;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_EVENTS, 1, offsetof(struct kvm_vcpu_events, exception.nr), &b, 1, "out of range");
	u64 = 1;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_DEBUGREGS, 0, offsetof(struct kvm_debugregs, flags), &u64, 8, "flags");
	u64 = 1ull << 40;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_DEBUGREGS, 0, offsetof(struct kvm_debugregs, dr7), &u64, 8, "DR6/DR7");
	u32 = KVM_MAX_XCRS + 1;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_XCRS, 0, 0, &u32, 4, "at most 16");
	u32 = 2;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_XCRS, 0, 0, &u32, 4, "entries need");
	u32 = 1;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_XCRS, 0, sizeof(struct snap_list_head), &u32, 4, "only XCR0");
	/* MSRs: a count that disagrees with the length, a billion, unsorted, duplicated. */
	u32 = 5;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_MSRS, 0, 0, &u32, 4, "entries need");
	u32 = 1000000000u;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_MSRS, 0, 0, &u32, 4, "at most 4096");
	size_t m1 = sizeof(struct snap_list_head) + sizeof(struct snap_msr_rec);
	u32 = 0x10;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_MSRS, 1, m1, &u32, 4, "indices must increase");
	u32 = 1;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_MSRS, 1, m1 + 4, &u32, 4, "reserved");
	/* CPUID: too many, unsorted, unknown flags, a plain leaf with an index, mixed. */
	u32 = 257;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_CPUID, 0, 0, &u32, 4, "at most 256");
	size_t c2 = sizeof(struct snap_list_head) + 2 * sizeof(vmm_cpuid_entry);
	u32 = 0;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_CPUID, 0, c2 + offsetof(vmm_cpuid_entry, index), &u32, 4, "sorted and unique");
	u32 = 2;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_CPUID, 0, c2 + offsetof(vmm_cpuid_entry, flags), &u32, 4, "unknown flags");
	u32 = 0;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_CPUID, 0, c2 + offsetof(vmm_cpuid_entry, flags), &u32, 4, "without sub-leaves");
	u32 = 7;
	expect_patch_bad(buf, len, SNAP_SEC_VCPU_CPUID, 0, sizeof(struct snap_list_head) + offsetof(vmm_cpuid_entry, function),
			 &u32, 4, "sorted");
	free(c);
	free(buf);
	snap_desc_free(d);
}

/* Sections missing, duplicated, out of order, unknown. */
static void test_structure(void **state)
{
	(void)state;
	struct snap_desc *d = make_desc();
	size_t len, n;
	uint8_t *buf = encode(d, &len), *c;
	static const struct { uint32_t type, instance; const char *needle; } required[] = {
		{ SNAP_SEC_VM, 0, "VM section must come first" },
		{ SNAP_SEC_MEMMAP, 0, "MEMMAP section is missing" },
		{ SNAP_SEC_IRQCHIP, 2, "IOAPIC" },
		{ SNAP_SEC_PIT, 0, "PIT section is missing" },
		{ SNAP_SEC_VCPU, 1, "vCPU 1 lacks" },
		{ SNAP_SEC_VCPU_REGS, 0, "vCPU 0 lacks" },
		{ SNAP_SEC_VCPU_MSRS, 1, "vCPU 1 lacks" },
		{ SNAP_SEC_VCPU_CPUID, 0, "vCPU 0 lacks" },
		{ SNAP_SEC_VCPU_XSAVE, 0, "exactly one of FPU and XSAVE" },
		{ SNAP_SEC_VCPU_LAPIC, 1, "LAPIC state is missing" },
	};
	for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
		c = splice(buf, len, required[i].type, required[i].instance, NULL, 0, &n);
		expect_bad(c, n, -EINVAL, required[i].needle);
		free(c);
	}
	/* Optional sections may go: XCRS, CLOCK. */
	c = splice(buf, len, SNAP_SEC_CLOCK, 0, NULL, 0, &n);
	struct snap_desc *p;
	assert_int_equal(snap_parse(c, n, &p), 0);
	assert_false(p->have & SNAP_HAVE_CLOCK);
	snap_desc_free(p);
	free(c);

	/* A duplicate of a VM-level and of a vCPU section; FPU next to XSAVE. */
	struct {
		struct snap_section_header h;
		uint8_t payload[sizeof(struct kvm_fpu)];
	} extra;
	memset(&extra, 0, sizeof extra);
	extra.h = (struct snap_section_header){ .type = SNAP_SEC_CLOCK, .length = sizeof(struct snap_clock_rec), .version = 1 };
	c = splice(buf, len, SNAP_SEC_VCPU, 0, &extra, sizeof extra.h + sizeof(struct snap_clock_rec), &n);
	expect_bad(c, n, -EINVAL, "duplicate");
	free(c);
	extra.h = (struct snap_section_header){ .type = SNAP_SEC_VCPU_FPU, .instance = 0, .length = sizeof(struct kvm_fpu), .version = 1 };
	c = splice(buf, len, SNAP_SEC_VCPU, 1, &extra, sizeof extra, &n);
	expect_bad(c, n, -EINVAL, "exactly one of FPU and XSAVE");
	free(c);
	extra.h.instance = 1;
	c = splice(buf, len, SNAP_SEC_VCPU, 1, &extra, sizeof extra, &n);
	expect_bad(c, n, -EINVAL, "duplicate");
	free(c);
	/* A vCPU section for a vCPU beyond the count. */
	extra.h.instance = 2;
	c = splice(buf, len, SNAP_SEC_VCPU, 1, &extra, sizeof extra, &n);
	expect_bad(c, n, -EINVAL, "vCPU index 2");
	free(c);
	/* Wrong payload lengths. */
	extra.h = (struct snap_section_header){ .type = SNAP_SEC_PIT, .length = 8, .version = 1 };
	c = splice(buf, len, SNAP_SEC_PIT, 0, &extra, sizeof extra.h + 8, &n);
	expect_bad(c, n, -EINVAL, "expected 112");
	free(c);
	extra.h = (struct snap_section_header){ .type = SNAP_SEC_VCPU_XSAVE, .instance = 1, .length = 100, .version = 1 };
	c = splice(buf, len, SNAP_SEC_VCPU, 1, &extra, sizeof extra.h + 104, &n);
	expect_bad(c, n, -EINVAL, "XSAVE image of 100 bytes");
	free(c);
	/* Unknown types: an error unless marked optional. */
	extra.h = (struct snap_section_header){ .type = 0x7777, .length = 8, .version = 1 };
	c = splice(buf, len, SNAP_SEC_VCPU, 1, &extra, sizeof extra.h + 8, &n);
	expect_bad(c, n, -EINVAL, "unknown section type 0x7777");
	free(c);
	extra.h.flags = SNAP_SECF_OPTIONAL;
	c = splice(buf, len, SNAP_SEC_VCPU, 1, &extra, sizeof extra.h + 8, &n);
	assert_int_equal(snap_parse(c, n, &p), 0);
	assert_int_equal(p->nr_vcpus, 2);
	snap_desc_free(p);
	free(c);
	/* Interrupt-controller state in a VM without one; LAPIC without an irqchip. */
	extra.h = (struct snap_section_header){ .type = SNAP_SEC_IRQCHIP, .instance = 3, .length = 16, .version = 1 };
	c = splice(buf, len, SNAP_SEC_PIT, 0, &extra, sizeof extra.h + 16, &n);
	expect_bad(c, n, -EINVAL, "unknown chip");
	free(c);

	free(buf);
	snap_desc_free(d);
}

/* The encoder refuses to exceed the size limit instead of writing a file the parser
 * would refuse. */
static void test_encode_limit(void **state)
{
	(void)state;
	/* 4096 vCPUs with the largest XSAVE image: 4096 * 64 KiB = 256 MiB. */
	struct snap_desc d = { .irqchip = VMM_IRQCHIP_NONE, .exit_port = 1, .fault_port = 2,
			       .mem_source = SNAP_MEM_IN_PLACE, .nr_vcpus = 4096 };
	d.vcpus = calloc(d.nr_vcpus, sizeof *d.vcpus);
	uint8_t *big = calloc(1, SNAP_MAX_XSAVE);
	assert_non_null(d.vcpus);
	assert_non_null(big);
	for (uint32_t i = 0; i < d.nr_vcpus; i++) {
		d.vcpus[i].id = i;
		d.vcpus[i].xsave = big;
		d.vcpus[i].xsave_len = SNAP_MAX_XSAVE;
		d.vcpus[i].have = SNAP_HAVE_XSAVE;
	}
	uint8_t *buf = NULL;
	size_t len = 0;
	assert_int_equal(snap_encode(&d, &buf, &len), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "limit"));
	assert_null(buf);
	free(big);
	free(d.vcpus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_minimal),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_hostile_sections),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_encode_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
