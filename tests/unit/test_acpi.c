/* Unit tests for the ACPI tables: checksums and headers of every table, the pointer chain
 * RSDP -> XSDT -> FADT -> DSDT and -> MADT, the FADT's and MADT's fields, the DSDT's AML
 * byte-exact against iasl's output for the same ASL, option validation, writing into a
 * standalone guest memory map, and `iasl -d` accepting every table (iasl comes from
 * Debian's acpica-tools, installed by scripts/setup-debian.sh: a missing iasl fails). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <libvmm/libvmm.h>

#define AREA 0xe0000ull

/* iasl -on output (body after the 36-byte header) for the DSDT of full_opts():
 *   Scope (\_SB) {
 *     Device (COM1) { Name (_HID, EisaId ("PNP0501")) Name (_UID, Zero)
 *       Name (_CRS, ResourceTemplate () { IO (Decode16, 0x03F8, 0x03F8, 0x00, 0x08)
 *                                         IRQNoFlags () {4} }) }
 *     Device (PS2K) { Name (_HID, EisaId ("PNP0303")) Name (_UID, Zero)
 *       Name (_CRS, ResourceTemplate () { IO (Decode16, 0x0060, 0x0060, 0x01, 0x01)
 *         IO (Decode16, 0x0064, 0x0064, 0x01, 0x01) IRQNoFlags () {1} }) }
 *     Device (RTC) { Name (_HID, EisaId ("PNP0B00")) Name (_UID, Zero)
 *       Name (_CRS, ResourceTemplate () { IO (Decode16, 0x0070, 0x0070, 0x01, 0x02)
 *                                         IRQNoFlags () {8} }) }
 *     Device (VR00) { Name (_HID, "LNRO0005") Name (_UID, Zero)
 *       Name (_CRS, ResourceTemplate () { Memory32Fixed (ReadWrite, 0xD0000000, 0x00001000)
 *         Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {5} }) }
 *     Device (VR01) { Name (_HID, "LNRO0005") Name (_UID, One)
 *       Name (_CRS, ResourceTemplate () { QWordMemory (ResourceConsumer, PosDecode,
 *         MinFixed, MaxFixed, NonCacheable, ReadWrite, 0, 0x100000000, 0x100000FFF, 0,
 *         0x1000) Interrupt (ResourceConsumer, Level, ActiveLow, Shared) {23} }) }
 *   }
 *   Name (_S5, Package () {5, 5}) */
static const uint8_t iasl_dsdt[] = {
	0x10, 0x41, 0x13, 0x5c, 0x5f, 0x53, 0x42, 0x5f, 0x5b, 0x82, 0x2b, 0x43,
	0x4f, 0x4d, 0x31, 0x08, 0x5f, 0x48, 0x49, 0x44, 0x0c, 0x41, 0xd0, 0x05,
	0x01, 0x08, 0x5f, 0x55, 0x49, 0x44, 0x00, 0x08, 0x5f, 0x43, 0x52, 0x53,
	0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08,
	0x22, 0x10, 0x00, 0x79, 0x00, 0x5b, 0x82, 0x33, 0x50, 0x53, 0x32, 0x4b,
	0x08, 0x5f, 0x48, 0x49, 0x44, 0x0c, 0x41, 0xd0, 0x03, 0x03, 0x08, 0x5f,
	0x55, 0x49, 0x44, 0x00, 0x08, 0x5f, 0x43, 0x52, 0x53, 0x11, 0x18, 0x0a,
	0x15, 0x47, 0x01, 0x60, 0x00, 0x60, 0x00, 0x01, 0x01, 0x47, 0x01, 0x64,
	0x00, 0x64, 0x00, 0x01, 0x01, 0x22, 0x02, 0x00, 0x79, 0x00, 0x5b, 0x82,
	0x2b, 0x52, 0x54, 0x43, 0x5f, 0x08, 0x5f, 0x48, 0x49, 0x44, 0x0c, 0x41,
	0xd0, 0x0b, 0x00, 0x08, 0x5f, 0x55, 0x49, 0x44, 0x00, 0x08, 0x5f, 0x43,
	0x52, 0x53, 0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0x70, 0x00, 0x70, 0x00,
	0x01, 0x02, 0x22, 0x00, 0x01, 0x79, 0x00, 0x5b, 0x82, 0x3a, 0x56, 0x52,
	0x30, 0x30, 0x08, 0x5f, 0x48, 0x49, 0x44, 0x0d, 0x4c, 0x4e, 0x52, 0x4f,
	0x30, 0x30, 0x30, 0x35, 0x00, 0x08, 0x5f, 0x55, 0x49, 0x44, 0x00, 0x08,
	0x5f, 0x43, 0x52, 0x53, 0x11, 0x1a, 0x0a, 0x17, 0x86, 0x09, 0x00, 0x01,
	0x00, 0x00, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00, 0x89, 0x06, 0x00, 0x03,
	0x01, 0x05, 0x00, 0x00, 0x00, 0x79, 0x00, 0x5b, 0x82, 0x4d, 0x05, 0x56,
	0x52, 0x30, 0x31, 0x08, 0x5f, 0x48, 0x49, 0x44, 0x0d, 0x4c, 0x4e, 0x52,
	0x4f, 0x30, 0x30, 0x30, 0x35, 0x00, 0x08, 0x5f, 0x55, 0x49, 0x44, 0x01,
	0x08, 0x5f, 0x43, 0x52, 0x53, 0x11, 0x3c, 0x0a, 0x39, 0x8a, 0x2b, 0x00,
	0x00, 0x0d, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xff, 0x0f, 0x00, 0x00, 0x01,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x89, 0x06, 0x00, 0x0d, 0x01,
	0x17, 0x00, 0x00, 0x00, 0x79, 0x00, 0x08, 0x5f, 0x53, 0x35, 0x5f, 0x12,
	0x06, 0x02, 0x0a, 0x05, 0x0a, 0x05,
};

static const vmm_acpi_virtio_mmio two_virtio[2] = {
	{ 0xd0000000ull, 0x1000, 5, 0 },
	{ 0x100000000ull, 0x1000, 23, VMM_ACPI_IRQ_LEVEL | VMM_ACPI_IRQ_ACTIVE_LOW | VMM_ACPI_IRQ_SHARED },
};
static const uint32_t four_ids[4] = { 0, 1, 2, 3 };

static vmm_acpi_opts full_opts(void)
{
	vmm_acpi_opts o = VMM_ACPI_OPTS_INIT;
	o.flags = VMM_ACPI_COM1 | VMM_ACPI_I8042 | VMM_ACPI_RTC;
	o.ncpus = 4;
	o.apic_ids = four_ids;
	o.virtio = two_virtio;
	o.nvirtio = 2;
	o.sleep_port = 0x3c0;
	return o;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

/* Builds into a fresh buffer; *info filled. The caller frees. */
static uint8_t *build(const vmm_acpi_opts *o, vmm_acpi_info *info)
{
	assert_int_equal(vmm_acpi_build(o, AREA, NULL, 0, info), 0);
	assert_true(info->used > 0);
	uint8_t *buf = malloc(info->used);
	assert_non_null(buf);
	assert_int_equal(vmm_acpi_build(o, AREA, buf, info->used, info), 0);
	return buf;
}

static const vmm_acpi_table_info *table(const vmm_acpi_info *info, const char *sig)
{
	for (uint32_t i = 0; i < info->ntables; i++)
		if (!strcmp(info->tables[i].signature, sig))
			return &info->tables[i];
	fail_msg("no table %s", sig);
	return NULL;
}

/* The table at guest address gpa, checked to lie inside the area. */
static const uint8_t *at(const uint8_t *buf, const vmm_acpi_info *info, uint64_t gpa, size_t len)
{
	assert_true(gpa >= AREA);
	assert_true(gpa - AREA + len <= info->used);
	return buf + (gpa - AREA);
}

static void test_checksums_and_headers(void **state)
{
	(void)state;
	vmm_acpi_opts o = full_opts();
	vmm_acpi_info info;
	uint8_t *buf = build(&o, &info);
	assert_int_equal(info.ntables, 5);
	assert_int_equal(info.rsdp_gpa, AREA);

	/* RSDP: both checksums, revision 2, length 36, XSDT pointer. */
	const uint8_t *rsdp = buf;
	assert_memory_equal(rsdp, "RSD PTR ", 8);
	assert_int_equal(sum(rsdp, 20), 0);
	assert_int_equal(sum(rsdp, 36), 0);
	assert_int_equal(rsdp[15], 2);
	assert_int_equal(rd32(rsdp + 20), 36);
	assert_memory_equal(rsdp + 9, "LIBVMM", 6);
	assert_int_equal(rd64(rsdp + 24), table(&info, "XSDT")->gpa);

	/* Every SDT: signature, length field = reported length, checksum, 16-byte aligned,
	 * no overlap with the next one. */
	uint64_t prev_end = 36;
	for (uint32_t i = 1; i < info.ntables; i++) {
		const vmm_acpi_table_info *t = &info.tables[i];
		const uint8_t *p = buf + t->offset;
		assert_memory_equal(p, t->signature, 4);
		assert_int_equal(rd32(p + 4), t->length);
		assert_int_equal(sum(p, t->length), 0);
		assert_int_equal(t->offset % 16, 0);
		assert_int_equal(t->gpa, AREA + t->offset);
		assert_true(t->offset >= prev_end);
		prev_end = t->offset + t->length;
		assert_memory_equal(p + 10, "LIBVMM", 6);
		assert_memory_equal(p + 28, "LVMM", 4);
	}
	assert_int_equal(prev_end, info.used);

	/* XSDT -> FADT, MADT */
	const vmm_acpi_table_info *xt = table(&info, "XSDT");
	const uint8_t *xsdt = buf + xt->offset;
	assert_int_equal(xt->length, 36 + 16);
	const uint8_t *fadt = at(buf, &info, rd64(xsdt + 36), 276);
	const uint8_t *madt = at(buf, &info, rd64(xsdt + 44), 44);
	assert_memory_equal(fadt, "FACP", 4);
	assert_memory_equal(madt, "APIC", 4);

	/* FADT -> DSDT (both pointers), revision 6.5, hardware-reduced. */
	assert_int_equal(rd32(fadt + 4), 276);
	assert_int_equal(fadt[8], 6);
	assert_int_equal(fadt[131], 5);
	uint64_t dsdt_gpa = rd64(fadt + 140);
	assert_int_equal(rd32(fadt + 40), dsdt_gpa);
	assert_memory_equal(at(buf, &info, dsdt_gpa, 36), "DSDT", 4);
	assert_int_equal(dsdt_gpa, table(&info, "DSDT")->gpa);
	free(buf);
}

static void test_fadt_fields(void **state)
{
	(void)state;
	vmm_acpi_opts o = full_opts();
	vmm_acpi_info info;
	uint8_t *buf = build(&o, &info);
	const uint8_t *fadt = buf + table(&info, "FACP")->offset;
	uint32_t flags = rd32(fadt + 112);
	assert_true(flags & (1u << 20));  /* HW_REDUCED_ACPI */
	assert_true(flags & (1u << 10));  /* RESET_REG_SUP (with the 8042) */
	uint16_t boot = rd16(fadt + 109);
	assert_true(boot & (1u << 1));    /* 8042 present */
	assert_true(boot & (1u << 2));    /* VGA not present */
	assert_false(boot & (1u << 5));   /* CMOS RTC present */
	assert_false(boot & (1u << 3));   /* MSI not "not supported" */
	assert_int_equal(rd32(fadt + 36), 0);  /* no FACS */
	assert_int_equal(rd16(fadt + 46), 0);  /* no SCI */
	assert_int_equal(rd32(fadt + 76), 0);  /* no PM timer block */
	/* reset register: SystemIO byte at 0x64, value 0xFE */
	assert_int_equal(fadt[116], 1);
	assert_int_equal(fadt[117], 8);
	assert_int_equal(rd64(fadt + 120), VMM_ACPI_RESET_PORT);
	assert_int_equal(fadt[128], VMM_ACPI_RESET_VALUE);
	/* sleep control and status registers at the sleep port */
	assert_int_equal(fadt[244], 1);
	assert_int_equal(rd64(fadt + 248), 0x3c0);
	assert_int_equal(fadt[256], 1);
	assert_int_equal(rd64(fadt + 260), 0x3c0);
	free(buf);

	/* Without the RTC and 8042: "no CMOS RTC", no 8042, no reset register, no sleep
	 * registers, no legacy devices. */
	vmm_acpi_opts bare = VMM_ACPI_OPTS_INIT;
	buf = build(&bare, &info);
	fadt = buf + table(&info, "FACP")->offset;
	boot = rd16(fadt + 109);
	assert_true(boot & (1u << 5));
	assert_false(boot & (1u << 1));
	assert_false(boot & (1u << 0));
	flags = rd32(fadt + 112);
	assert_true(flags & (1u << 20));
	assert_false(flags & (1u << 10));
	assert_int_equal(rd64(fadt + 120), 0);
	assert_int_equal(rd64(fadt + 248), 0);
	free(buf);
}

struct madt_count {
	unsigned lapic, x2apic, ioapic, iso;
	uint32_t ids[2048];
	unsigned nids;
};

/* Walks the MADT's entries, checking each entry's length against its type. */
static void walk_madt(const uint8_t *madt, struct madt_count *c, uint32_t flags)
{
	memset(c, 0, sizeof *c);
	uint32_t len = rd32(madt + 4);
	assert_int_equal(rd32(madt + 36), 0xfee00000u);
	assert_int_equal(rd32(madt + 40), flags); /* PCAT_COMPAT */
	for (uint32_t off = 44; off < len;) {
		uint8_t type = madt[off], elen = madt[off + 1];
		assert_true(elen >= 2 && off + elen <= len);
		switch (type) {
		case 0:
			assert_int_equal(elen, 8);
			assert_int_equal(rd32(madt + off + 4), 1);
			c->ids[c->nids++] = madt[off + 3];
			c->lapic++;
			break;
		case 9:
			assert_int_equal(elen, 16);
			assert_int_equal(rd32(madt + off + 8), 1); /* enabled */
			c->ids[c->nids++] = rd32(madt + off + 4);
			c->x2apic++;
			break;
		case 1:
			assert_int_equal(elen, 12);
			assert_int_equal(madt[off + 2], 0);
			assert_int_equal(rd32(madt + off + 4), 0xfec00000u);
			assert_int_equal(rd32(madt + off + 8), 0);
			c->ioapic++;
			break;
		case 2:
			assert_int_equal(elen, 10);
			assert_int_equal(madt[off + 2], 0);  /* ISA */
			assert_int_equal(madt[off + 3], 0);  /* IRQ 0 */
			assert_int_equal(rd32(madt + off + 4), 2);
			c->iso++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", type);
		}
		off += elen;
	}
}

static void test_madt(void **state)
{
	(void)state;
	static struct madt_count c;
	vmm_acpi_info info;

	vmm_acpi_opts o = full_opts();
	uint8_t *buf = build(&o, &info);
	walk_madt(buf + table(&info, "APIC")->offset, &c, 0);
	assert_int_equal(c.x2apic, 4);
	assert_int_equal(c.lapic, 0);
	assert_int_equal(c.ioapic, 1);
	assert_int_equal(c.iso, 0);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(c.ids[i], i);
	free(buf);

	/* Sparse ids, xAPIC entries for ids < 255, x2APIC for the rest; the override. */
	static const uint32_t ids[4] = { 0, 2, 254, 300 };
	o.apic_ids = ids;
	o.flags |= VMM_ACPI_XAPIC_ENTRIES | VMM_ACPI_IRQ0_TO_GSI2 | VMM_ACPI_PIC;
	buf = build(&o, &info);
	walk_madt(buf + table(&info, "APIC")->offset, &c, 1);
	assert_int_equal(c.lapic, 3);
	assert_int_equal(c.x2apic, 1);
	assert_int_equal(c.iso, 1);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(c.ids[i], ids[i]);
	free(buf);

	/* The largest machine: 1024 vCPUs. */
	vmm_acpi_opts big = VMM_ACPI_OPTS_INIT;
	big.ncpus = VMM_ACPI_MAX_CPUS;
	buf = build(&big, &info);
	const vmm_acpi_table_info *t = table(&info, "APIC");
	assert_int_equal(sum(buf + t->offset, t->length), 0);
	walk_madt(buf + t->offset, &c, 0);
	assert_int_equal(c.x2apic, VMM_ACPI_MAX_CPUS);
	assert_int_equal(c.ids[1023], 1023);
	free(buf);
}

static void test_dsdt_matches_iasl(void **state)
{
	(void)state;
	vmm_acpi_opts o = full_opts();
	vmm_acpi_info info;
	uint8_t *buf = build(&o, &info);
	const vmm_acpi_table_info *t = table(&info, "DSDT");
	assert_int_equal(t->length, 36 + sizeof iasl_dsdt);
	assert_int_equal(buf[t->offset + 8], 2); /* revision 2: 64-bit integers */
	assert_memory_equal(buf + t->offset + 36, iasl_dsdt, sizeof iasl_dsdt);
	free(buf);
}

static int expect_einval(vmm_acpi_opts *o)
{
	vmm_acpi_info info;
	return vmm_acpi_build(o, AREA, NULL, 0, &info);
}

static void test_bad_options(void **state)
{
	(void)state;
	vmm_acpi_opts o;
	vmm_acpi_virtio_mmio v[3];
	uint32_t ids[3];

#define BAD(setup)                                                   \
	do {                                                         \
		o = full_opts();                                     \
		memcpy(v, two_virtio, sizeof two_virtio);            \
		o.virtio = v;                                        \
		setup;                                               \
		if (expect_einval(&o) != -EINVAL)                    \
			fail_msg("accepted: %s", #setup);            \
		assert_true(strlen(vmm_last_error()) > 0);           \
	} while (0)

	BAD(o.ncpus = 0);
	BAD(o.ncpus = VMM_ACPI_MAX_CPUS + 1; o.apic_ids = NULL);
	BAD(ids[0] = 1; ids[1] = 2; ids[2] = 1; o.apic_ids = ids; o.ncpus = 3);
	BAD(ids[0] = UINT32_MAX; o.apic_ids = ids; o.ncpus = 1);
	BAD(o.flags |= 1u << 30);
	BAD(o.nvirtio = VMM_ACPI_MAX_VIRTIO + 1);
	BAD(o.virtio = NULL);
	BAD(v[0].size = 0);
	BAD(v[1].base = UINT64_MAX - 0x10);
	BAD(v[0].gsi = 24);
	BAD(v[0].flags = 1u << 5);
	BAD(v[1].base = 0xd0000800ull);                  /* overlaps device 0 */
	BAD(v[0].gsi = 4);                               /* COM1's IRQ */
	BAD(v[1].gsi = 5);                               /* device 0's, not shared */
	BAD(o.oem_id = "TOOLONG");
	BAD(o.oem_id = "A\nB");
	BAD(o.size = 2);
#undef BAD

	/* Shared by all its users: fine. */
	o = full_opts();
	memcpy(v, two_virtio, sizeof two_virtio);
	v[0].flags = VMM_ACPI_IRQ_SHARED;
	v[1].flags = VMM_ACPI_IRQ_SHARED;
	v[1].gsi = 5;
	o.virtio = v;
	vmm_acpi_info info;
	assert_int_equal(vmm_acpi_build(&o, AREA, NULL, 0, &info), 0);

	/* Misaligned area, NULL info, an area that wraps. */
	o = full_opts();
	assert_int_equal(vmm_acpi_build(&o, AREA + 8, NULL, 0, &info), -EINVAL);
	assert_int_equal(vmm_acpi_build(&o, AREA, NULL, 0, NULL), -EINVAL);
	assert_int_equal(vmm_acpi_build(&o, UINT64_MAX - 0xff, NULL, 0, &info), -EINVAL);

	/* NULL options: one vCPU, no devices. */
	assert_int_equal(vmm_acpi_build(NULL, AREA, NULL, 0, &info), 0);
	assert_int_equal(info.ntables, 5);
}

static void test_short_buffer(void **state)
{
	(void)state;
	vmm_acpi_opts o = full_opts();
	vmm_acpi_info info;
	assert_int_equal(vmm_acpi_build(&o, AREA, NULL, 0, &info), 0);
	size_t need = info.used;
	uint8_t *buf = malloc(need + 16);
	assert_non_null(buf);
	memset(buf, 0xa5, need + 16);
	assert_int_equal(vmm_acpi_build(&o, AREA, buf, need - 1, &info), -ENOSPC);
	assert_int_equal(info.used, need);
	for (size_t i = 0; i < need + 16; i++)
		assert_int_equal(buf[i], 0xa5);
	/* exactly enough: nothing past `need` is touched */
	assert_int_equal(vmm_acpi_build(&o, AREA, buf, need, &info), 0);
	for (size_t i = need; i < need + 16; i++)
		assert_int_equal(buf[i], 0xa5);
	free(buf);
}

static vmm_mem *new_mem(void)
{
	vmm_mem *mem = NULL;
	assert_int_equal(vmm_mem_create(&mem), 0);
	vmm_mem_region_opts r = VMM_MEM_REGION_OPTS_INIT;
	r.gpa = 0;
	r.len = 0x100000;
	r.backing = VMM_MEM_ANON;
	assert_int_equal(vmm_mem_add_region(mem, &r), 0);
	return mem;
}

static void test_write_to_guest(void **state)
{
	(void)state;
	vmm_mem *mem = new_mem();
	vmm_acpi_opts o = full_opts();
	vmm_acpi_info info, info2;
	uint8_t *expect = build(&o, &info);

	assert_int_equal(vmm_acpi_write(mem, AREA, VMM_ACPI_AREA_SIZE, &o, &info2), 0);
	assert_int_equal(info2.rsdp_gpa, AREA);
	assert_int_equal(info2.used, info.used);
	uint8_t *got = malloc(info.used);
	assert_non_null(got);
	assert_int_equal(vmm_mem_read(mem, AREA, got, info.used), 0);
	assert_memory_equal(got, expect, info.used);

	/* Too small an area, an area outside RAM: errors, nothing written. */
	static uint8_t zero[0x1000];
	assert_int_equal(vmm_acpi_write(mem, 0x10000, info.used - 1, &o, NULL), -ENOSPC);
	assert_int_equal(vmm_mem_read(mem, 0x10000, got, info.used), 0);
	assert_memory_equal(got, zero, info.used);
	/* the tables would cross the end of RAM at 0x100000 */
	assert_int_equal(vmm_acpi_write(mem, 0x100000 - 0x100, 0x20000, &o, NULL), -EFAULT);
	assert_int_equal(vmm_mem_read(mem, 0x100000 - 0x100, got, 0x100), 0);
	assert_memory_equal(got, zero, 0x100);
	assert_int_equal(vmm_acpi_write(NULL, AREA, 0x20000, &o, NULL), -EINVAL);

	free(got);
	free(expect);
	vmm_mem_destroy(mem);
}

/* ---- iasl -d ------------------------------------------------------------------------- */

/* Runs argv with stdout and stderr into `log`, in directory `dir`. Returns the exit
 * status, or -1 if it did not exit normally; 127 if the program could not be run. */
static int run(const char *dir, const char *log, char *const argv[])
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || chdir(dir) < 0)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	static char text[1 << 20];
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = 0;
	return text;
}

static unsigned count(const char *text, const char *needle)
{
	unsigned n = 0;
	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void check_clean(const char *text, const char *what)
{
	static const char *const bad[] = { "Error", "Warning", "Incorrect", "Invalid", "checksum is" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (strstr(text, bad[i]))
			fail_msg("iasl -d on %s reports \"%s\":\n%s", what, bad[i], text);
}

/* Disassembles one table with iasl -d; returns the .dsl text (static storage). */
static char *disassemble(const char *dir, const char *name, const uint8_t *p, size_t len)
{
	char path[512], log[512], dsl[512];
	snprintf(path, sizeof path, "%s/%s.dat", dir, name);
	snprintf(log, sizeof log, "%s/%s.log", dir, name);
	snprintf(dsl, sizeof dsl, "%s/%s.dsl", dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, len, f), len);
	fclose(f);
	char *const argv[] = { "iasl", "-d", path, NULL };
	int st = run(dir, log, argv);
	if (st == 127)
		fail_msg("iasl not found: install acpica-tools (scripts/setup-debian.sh)");
	if (st != 0)
		fail_msg("iasl -d %s exited with %d:\n%s", name, st, slurp(log));
	check_clean(slurp(log), name);
	char *text = slurp(dsl);
	check_clean(text, name);
	return text;
}

static void test_iasl_disassembles(void **state)
{
	(void)state;
	char dir[] = "/tmp/libvmm-acpi-XXXXXX";
	assert_non_null(mkdtemp(dir));

	static const vmm_acpi_virtio_mmio five[5] = {
		{ 0xd0000000ull, 0x1000, 5, 0 }, { 0xd0001000ull, 0x1000, 6, 0 },
		{ 0xd0002000ull, 0x1000, 7, 0 }, { 0xd0003000ull, 0x1000, 9, 0 },
		{ 0x100000000ull, 0x1000, 10, VMM_ACPI_IRQ_LEVEL },
	};
	vmm_acpi_opts o = full_opts();
	o.virtio = five;
	o.nvirtio = 5;
	o.flags |= VMM_ACPI_IRQ0_TO_GSI2 | VMM_ACPI_PIC;
	vmm_acpi_info info;
	uint8_t *buf = build(&o, &info);

	/* iasl 20200925 cannot load a bare RSDP from a file (its file loader wants a
	 * 4-character table signature); test_checksums_and_headers checks it field by
	 * field. */
	for (uint32_t i = 1; i < info.ntables; i++) {
		const vmm_acpi_table_info *t = &info.tables[i];
		char *text = disassemble(dir, t->signature, buf + t->offset, t->length);
		if (!strcmp(t->signature, "XSDT")) {
			assert_int_equal(count(text, "ACPI Table Address"), 2);
		} else if (!strcmp(t->signature, "FACP")) {
			assert_non_null(strstr(text, "Hardware Reduced (V5) : 1"));
			assert_non_null(strstr(text, "FADT Minor Revision : 05"));
		} else if (!strcmp(t->signature, "APIC")) {
			assert_int_equal(count(text, "[Processor Local x2APIC]"), 4);
			assert_int_equal(count(text, "[I/O APIC]"), 1);
			assert_int_equal(count(text, "[Interrupt Source Override]"), 1);
			assert_non_null(strstr(text, "PC-AT Compatibility : 1"));
		} else if (!strcmp(t->signature, "DSDT")) {
			assert_int_equal(count(text, "\"LNRO0005\""), 5);
			assert_non_null(strstr(text, "EisaId (\"PNP0501\")"));
			assert_non_null(strstr(text, "EisaId (\"PNP0303\")"));
			assert_non_null(strstr(text, "EisaId (\"PNP0B00\")"));
			assert_non_null(strstr(text, "Device (VR04)"));
			assert_non_null(strstr(text, "Memory32Fixed (ReadWrite,"));
			assert_non_null(strstr(text, "QWordMemory (ResourceConsumer"));
			assert_non_null(strstr(text, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )"));
			assert_non_null(strstr(text, "Name (_S5, Package"));
		}
	}
	free(buf);

	/* acpiexec (ACPICA's AML interpreter, same package) loads the tables, builds the
	 * namespace and evaluates a _CRS and \_S5 without an error. */
	char log[512];
	snprintf(log, sizeof log, "%s/acpiexec.log", dir);
	char *const exec_argv[] = { "acpiexec", "-b", "namespace; evaluate \\_SB.VR04._CRS; evaluate \\_S5",
				    "FACP.dat", "DSDT.dat", "APIC.dat", "XSDT.dat", NULL };
	int st = run(dir, log, exec_argv);
	char *text = slurp(log);
	if (st != 0)
		fail_msg("acpiexec exited with %d:\n%s", st, text);
	static const char *const exec_bad[] = { "ACPI Error", "ACPI Exception", "ACPI Warning", "AE_" };
	for (size_t i = 0; i < sizeof exec_bad / sizeof exec_bad[0]; i++)
		if (strstr(text, exec_bad[i]))
			fail_msg("acpiexec reports \"%s\":\n%s", exec_bad[i], text);
	assert_non_null(strstr(text, "8 Devices"));
	assert_non_null(strstr(text, "VR04 Device"));
	assert_non_null(strstr(text, "Evaluation of \\_SB.VR04._CRS returned object"));
	assert_non_null(strstr(text, "[Integer] = 0000000000000005"));

	/* A corrupted checksum must be noticed by the same check (the test can fail). */
	buf = build(&o, &info);
	const vmm_acpi_table_info *t = table(&info, "APIC");
	buf[t->offset + 9] ^= 0x55;
	char path[512];
	snprintf(path, sizeof path, "%s/bad.dat", dir);
	snprintf(log, sizeof log, "%s/bad.log", dir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf + t->offset, 1, t->length, f), t->length);
	fclose(f);
	char *const argv[] = { "iasl", "-d", path, NULL };
	run(dir, log, argv);
	char bad_dsl[512];
	snprintf(bad_dsl, sizeof bad_dsl, "%s/bad.dsl", dir);
	assert_non_null(strstr(slurp(bad_dsl), "Incorrect"));
	free(buf);

	char *const rm[] = { "rm", "-rf", dir, NULL };
	assert_int_equal(run("/", "/dev/null", rm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checksums_and_headers),
		cmocka_unit_test(test_fadt_fields),
		cmocka_unit_test(test_madt),
		cmocka_unit_test(test_dsdt_matches_iasl),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_short_buffer),
		cmocka_unit_test(test_write_to_guest),
		cmocka_unit_test(test_iasl_disassembles),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
