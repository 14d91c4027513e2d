/* ACPI tables: RSDP, XSDT, FADT, MADT and DSDT (ACPI 6.5, chapter 5.2).
 *
 * Tables are written field by field at their spec offsets with explicit little-endian
 * stores, not through packed structs, so the layout is visible here and independent of
 * the compiler. Sizes are computed first (the DSDT's AML is measured by a dry run of the
 * encoder), then the tables are laid out 16-byte aligned after the RSDP and written.
 */
#include <stdlib.h>
#include <string.h>

#include "acpi_internal.h"

#define ALIGN16(x) (((x) + 15u) & ~(uint64_t)15u)

/* RSDP (5.2.5.3) */
#define RSDP_LEN 36u
#define RSDP_V1_LEN 20u
/* FADT (5.2.9), revision 6 */
#define FADT_LEN 276u
#define FADT_REVISION 6u
#define FADT_MINOR 5u
#define FADT_DSDT 40
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_MINOR_VERSION 131
#define FADT_X_DSDT 140
#define FADT_SLEEP_CONTROL 244
#define FADT_SLEEP_STATUS 256
#define FADT_HYPERVISOR_ID 268
/* IAPC_BOOT_ARCH bits (5.2.9.3) */
#define BOOT_LEGACY_DEVICES (1u << 0)
#define BOOT_8042 (1u << 1)
#define BOOT_VGA_NOT_PRESENT (1u << 2)
#define BOOT_CMOS_RTC_NOT_PRESENT (1u << 5)
/* FADT flags (5.2.9, table 5.10) */
#define FADT_F_PWR_BUTTON (1u << 4) /* no fixed-feature power button */
#define FADT_F_SLP_BUTTON (1u << 5) /* no fixed-feature sleep button */
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED_ACPI (1u << 20)
/* MADT (5.2.12) */
#define MADT_REVISION 5u
#define MADT_HEADER_LEN 44u
#define MADT_LAPIC_ADDR 0xfee00000u
#define MADT_LAPIC 0u
#define MADT_LAPIC_LEN 8u
#define MADT_IOAPIC 1u
#define MADT_IOAPIC_LEN 12u
#define MADT_ISO 2u
#define MADT_ISO_LEN 10u
#define MADT_X2APIC 9u
#define MADT_X2APIC_LEN 16u
#define MADT_ENABLED 1u
#define MADT_PCAT_COMPAT 1u /* flags: the system also has dual 8259s */
/* Generic Address Structure (5.2.3.2) */
#define GAS_SYSTEM_IO 1u
#define GAS_ACCESS_BYTE 1u

#define DSDT_REVISION 2u /* 64-bit integers */
#define XSDT_ENTRIES 2u  /* FADT, MADT */

enum { T_RSDP, T_XSDT, T_FADT, T_MADT, T_DSDT, T_COUNT };
static const char *const table_sig[T_COUNT] = { "RSDP", "XSDT", "FACP", "APIC", "DSDT" };

static void put8(uint8_t *p, size_t off, uint8_t v)
{
	p[off] = v;
}

static void put16(uint8_t *p, size_t off, uint16_t v)
{
	p[off] = (uint8_t)v;
	p[off + 1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, size_t off, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

/* The byte that makes the sum of p[0..len) zero mod 256, with p[at] counted as 0. */
static uint8_t checksum(const uint8_t *p, size_t len, size_t at)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		if (i != at)
			sum = (uint8_t)(sum + p[i]);
	return (uint8_t)-sum;
}

static void put_gas_io(uint8_t *p, size_t off, uint16_t port)
{
	put8(p, off, GAS_SYSTEM_IO);
	put8(p, off + 1, 8); /* register bit width */
	put8(p, off + 2, 0); /* bit offset */
	put8(p, off + 3, GAS_ACCESS_BYTE);
	put64(p, off + 4, port);
}

/* The common 36-byte header (5.2.6); the checksum is filled in by finish_sdt. */
static void put_sdt_header(uint8_t *p, const char *sig, uint32_t len, uint8_t rev,
			   const char oem_id[6])
{
	memcpy(p, sig, 4);
	put32(p, 4, len);
	put8(p, 8, rev);
	put8(p, 9, 0);
	memcpy(p + 10, oem_id, 6);
	memcpy(p + 16, ACPI_OEM_TABLE_ID, 8);
	put32(p, 24, ACPI_OEM_REVISION);
	memcpy(p + 28, ACPI_CREATOR_ID, 4);
	put32(p, 32, ACPI_CREATOR_REVISION);
}

static void finish_sdt(uint8_t *p, uint32_t len)
{
	p[9] = checksum(p, len, 9);
}

/* ---- option checks ------------------------------------------------------------------- */

static uint32_t apic_id(const vmm_acpi_opts *o, uint32_t i)
{
	return o->apic_ids ? o->apic_ids[i] : i;
}

static int check_cpus(const vmm_acpi_opts *o)
{
	if (o->ncpus < 1 || o->ncpus > VMM_ACPI_MAX_CPUS)
		return vmm_err(-EINVAL, "ACPI: %u vCPUs (must be 1 to %u)", o->ncpus, VMM_ACPI_MAX_CPUS);
	if (!o->apic_ids)
		return 0;
	for (uint32_t i = 0; i < o->ncpus; i++) {
		if (o->apic_ids[i] == UINT32_MAX)
			return vmm_err(-EINVAL, "ACPI: vCPU %u has the invalid APIC id 0xffffffff", i);
		/* ncpus <= 1024: the quadratic scan is at most half a million compares. */
		for (uint32_t j = 0; j < i; j++)
			if (o->apic_ids[j] == o->apic_ids[i])
				return vmm_err(-EINVAL, "ACPI: vCPUs %u and %u share APIC id %u", j, i,
					       o->apic_ids[i]);
	}
	return 0;
}

/* Each GSI has one user, unless every user of it is a shared virtio interrupt. */
static int check_gsi_users(const vmm_acpi_opts *o)
{
	uint32_t users[VMM_IRQ_IOAPIC_PINS] = { 0 };
	bool exclusive[VMM_IRQ_IOAPIC_PINS] = { false };
	static const struct { uint32_t flag, gsi; } isa[] = {
		{ VMM_ACPI_I8042, 1 }, { VMM_ACPI_COM1, 4 }, { VMM_ACPI_RTC, 8 },
	};
	for (size_t i = 0; i < sizeof isa / sizeof isa[0]; i++) {
		if (o->flags & isa[i].flag) {
			users[isa[i].gsi]++;
			exclusive[isa[i].gsi] = true;
		}
	}
	for (uint32_t i = 0; i < o->nvirtio; i++) {
		users[o->virtio[i].gsi]++;
		if (!(o->virtio[i].flags & VMM_ACPI_IRQ_SHARED))
			exclusive[o->virtio[i].gsi] = true;
	}
	for (uint32_t g = 0; g < VMM_IRQ_IOAPIC_PINS; g++)
		if (users[g] > 1 && exclusive[g])
			return vmm_err(-EINVAL, "ACPI: GSI %u has %u users but is not shared by all",
				       g, users[g]);
	return 0;
}

static int check_virtio(const vmm_acpi_opts *o)
{
	if (o->nvirtio > VMM_ACPI_MAX_VIRTIO)
		return vmm_err(-EINVAL, "ACPI: %u virtio-mmio devices (at most %u)", o->nvirtio,
			       VMM_ACPI_MAX_VIRTIO);
	if (o->nvirtio && !o->virtio)
		return vmm_err(-EINVAL, "ACPI: %u virtio-mmio devices but a NULL list", o->nvirtio);
	const uint32_t irq_flags = VMM_ACPI_IRQ_LEVEL | VMM_ACPI_IRQ_ACTIVE_LOW | VMM_ACPI_IRQ_SHARED;
	for (uint32_t i = 0; i < o->nvirtio; i++) {
		const vmm_acpi_virtio_mmio *d = &o->virtio[i];
		uint64_t last;
		if (d->size == 0 || __builtin_add_overflow(d->base, d->size - 1, &last))
			return vmm_err(-EINVAL, "ACPI: virtio-mmio device %u: window [%#llx, +%#llx) is "
				       "empty or wraps", i, (unsigned long long)d->base,
				       (unsigned long long)d->size);
		if (d->gsi >= VMM_IRQ_IOAPIC_PINS)
			return vmm_err(-EINVAL, "ACPI: virtio-mmio device %u: GSI %u is not an IOAPIC "
				       "pin (0-%d)", i, d->gsi, VMM_IRQ_IOAPIC_PINS - 1);
		if (d->flags & ~irq_flags)
			return vmm_err(-EINVAL, "ACPI: virtio-mmio device %u: bad flags %#x", i, d->flags);
		for (uint32_t j = 0; j < i; j++) {
			const vmm_acpi_virtio_mmio *e = &o->virtio[j];
			if (d->base <= e->base + (e->size - 1) && e->base <= last)
				return vmm_err(-EINVAL, "ACPI: virtio-mmio devices %u and %u overlap", j, i);
		}
	}
	return check_gsi_users(o);
}

static int check_opts(const vmm_acpi_opts *o, char oem_id[6])
{
	const uint32_t known = VMM_ACPI_COM1 | VMM_ACPI_I8042 | VMM_ACPI_RTC |
			       VMM_ACPI_IRQ0_TO_GSI2 | VMM_ACPI_XAPIC_ENTRIES | VMM_ACPI_PIC;
	if (o->flags & ~known)
		return vmm_err(-EINVAL, "ACPI: unknown flags %#x", o->flags & ~known);
	int r = check_cpus(o);
	if (r < 0)
		return r;
	r = check_virtio(o);
	if (r < 0)
		return r;
	const char *id = o->oem_id ? o->oem_id : "LIBVMM";
	size_t n = strlen(id);
	if (n > 6)
		return vmm_err(-EINVAL, "ACPI: OEM id \"%s\" is longer than 6 characters", id);
	for (size_t i = 0; i < n; i++)
		if (id[i] < 0x20 || id[i] > 0x7e)
			return vmm_err(-EINVAL, "ACPI: OEM id has a non-printable character");
	/* Space padding, as firmware does. */
	memset(oem_id, ' ', 6);
	memcpy(oem_id, id, n);
	return 0;
}

/* ---- tables -------------------------------------------------------------------------- */

static uint32_t madt_len(const vmm_acpi_opts *o)
{
	uint32_t len = MADT_HEADER_LEN + MADT_IOAPIC_LEN;
	for (uint32_t i = 0; i < o->ncpus; i++)
		len += (o->flags & VMM_ACPI_XAPIC_ENTRIES) && apic_id(o, i) < 255 && i < 255
			       ? MADT_LAPIC_LEN : MADT_X2APIC_LEN;
	if (o->flags & VMM_ACPI_IRQ0_TO_GSI2)
		len += MADT_ISO_LEN;
	return len;
}

static void write_rsdp(uint8_t *p, const char oem_id[6], uint64_t xsdt)
{
	memcpy(p, "RSD PTR ", 8);
	memcpy(p + 9, oem_id, 6);
	put8(p, 15, 2);      /* revision: ACPI 2.0+ */
	put32(p, 16, 0);     /* no RSDT (see acpi.h) */
	put32(p, 20, RSDP_LEN);
	put64(p, 24, xsdt);
	p[8] = checksum(p, RSDP_V1_LEN, 8);
	p[32] = checksum(p, RSDP_LEN, 32);
}

static void write_xsdt(uint8_t *p, uint32_t len, const char oem_id[6], uint64_t fadt, uint64_t madt)
{
	put_sdt_header(p, "XSDT", len, 1, oem_id);
	put64(p, ACPI_SDT_HEADER_LEN, fadt);
	put64(p, ACPI_SDT_HEADER_LEN + 8, madt);
	finish_sdt(p, len);
}

static void write_fadt(uint8_t *p, const vmm_acpi_opts *o, const char oem_id[6], uint64_t dsdt)
{
	put_sdt_header(p, "FACP", FADT_LEN, FADT_REVISION, oem_id);
	/* FIRMWARE_CTRL 0: a hardware-reduced platform may have no FACS. */
	if (dsdt <= UINT32_MAX)
		put32(p, FADT_DSDT, (uint32_t)dsdt);
	put64(p, FADT_X_DSDT, dsdt);

	uint16_t boot = BOOT_VGA_NOT_PRESENT;
	if (o->flags & (VMM_ACPI_COM1 | VMM_ACPI_I8042 | VMM_ACPI_RTC))
		boot |= BOOT_LEGACY_DEVICES;
	if (o->flags & VMM_ACPI_I8042)
		boot |= BOOT_8042;
	if (!(o->flags & VMM_ACPI_RTC))
		boot |= BOOT_CMOS_RTC_NOT_PRESENT;
	put16(p, FADT_IAPC_BOOT_ARCH, boot);

	uint32_t flags = FADT_F_HW_REDUCED_ACPI | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON;
	if (o->flags & VMM_ACPI_I8042) {
		flags |= FADT_F_RESET_REG_SUP;
		put_gas_io(p, FADT_RESET_REG, VMM_ACPI_RESET_PORT);
		put8(p, FADT_RESET_VALUE, VMM_ACPI_RESET_VALUE);
	}
	put32(p, FADT_FLAGS, flags);
	put8(p, FADT_MINOR_VERSION, FADT_MINOR);
	if (o->sleep_port) {
		put_gas_io(p, FADT_SLEEP_CONTROL, o->sleep_port);
		put_gas_io(p, FADT_SLEEP_STATUS, o->sleep_port);
	}
	memcpy(p + FADT_HYPERVISOR_ID, "LIBVMM  ", 8);
	finish_sdt(p, FADT_LEN);
}

static void write_madt(uint8_t *p, uint32_t len, const vmm_acpi_opts *o, const char oem_id[6])
{
	put_sdt_header(p, "APIC", len, MADT_REVISION, oem_id);
	put32(p, 36, MADT_LAPIC_ADDR);
	put32(p, 40, (o->flags & VMM_ACPI_PIC) ? MADT_PCAT_COMPAT : 0);
	size_t off = MADT_HEADER_LEN;
	for (uint32_t i = 0; i < o->ncpus; i++) {
		uint32_t id = apic_id(o, i);
		if ((o->flags & VMM_ACPI_XAPIC_ENTRIES) && id < 255 && i < 255) {
			put8(p, off, MADT_LAPIC);
			put8(p, off + 1, MADT_LAPIC_LEN);
			put8(p, off + 2, (uint8_t)i); /* ACPI processor UID */
			put8(p, off + 3, (uint8_t)id);
			put32(p, off + 4, MADT_ENABLED);
			off += MADT_LAPIC_LEN;
		} else {
			put8(p, off, MADT_X2APIC);
			put8(p, off + 1, MADT_X2APIC_LEN);
			put16(p, off + 2, 0);
			put32(p, off + 4, id);
			put32(p, off + 8, MADT_ENABLED);
			put32(p, off + 12, i); /* ACPI processor UID */
			off += MADT_X2APIC_LEN;
		}
	}
	/* The I/O APIC: id 0, what KVM's in-kernel IOAPIC reports after reset. */
	put8(p, off, MADT_IOAPIC);
	put8(p, off + 1, MADT_IOAPIC_LEN);
	put8(p, off + 2, 0);
	put8(p, off + 3, 0);
	put32(p, off + 4, (uint32_t)VMM_IRQ_IOAPIC_BASE);
	put32(p, off + 8, 0); /* GSI base */
	off += MADT_IOAPIC_LEN;
	if (o->flags & VMM_ACPI_IRQ0_TO_GSI2) {
		put8(p, off, MADT_ISO);
		put8(p, off + 1, MADT_ISO_LEN);
		put8(p, off + 2, 0); /* bus: ISA */
		put8(p, off + 3, 0); /* source: IRQ 0 */
		put32(p, off + 4, 2);
		put16(p, off + 8, 0); /* MPS INTI flags: conforms to the bus (edge, high) */
		off += MADT_ISO_LEN;
	}
	finish_sdt(p, len);
}

int vmm_acpi_build(const vmm_acpi_opts *opts, uint64_t gpa, void *buf, size_t cap,
		   vmm_acpi_info *info)
{
	vmm_acpi_opts o = VMM_ACPI_OPTS_INIT;
	char oem_id[6];
	if (!info)
		return vmm_err(-EINVAL, "vmm_acpi_build: NULL info");
	memset(info, 0, sizeof *info);
	if (opts && vmm_opts_copy(&o, sizeof o, opts) < 0)
		return vmm_err(-EINVAL, "vmm_acpi_build: bad opts size %u", opts->size);
	if (gpa & 15)
		return vmm_err(-EINVAL, "ACPI: area %#llx is not 16-byte aligned",
			       (unsigned long long)gpa);
	int r = check_opts(&o, oem_id);
	if (r < 0)
		return r;
	size_t aml_peak = 0;
	long aml = vmm_acpi_dsdt_aml(&o, NULL, 0, &aml_peak);
	if (aml < 0)
		return (int)aml;

	uint32_t len[T_COUNT] = {
		[T_RSDP] = RSDP_LEN,
		[T_XSDT] = ACPI_SDT_HEADER_LEN + 8 * XSDT_ENTRIES,
		[T_FADT] = FADT_LEN,
		[T_MADT] = madt_len(&o),
		[T_DSDT] = ACPI_SDT_HEADER_LEN + (uint32_t)aml, /* aml is at most ~20 KiB */
	};
	uint64_t off[T_COUNT], end = 0, last;
	for (int t = 0; t < T_COUNT; t++) {
		off[t] = ALIGN16(end);
		end = off[t] + len[t];
	}
	if (__builtin_add_overflow(gpa, end - 1, &last))
		return vmm_err(-EINVAL, "ACPI: area at %#llx wraps around the address space",
			       (unsigned long long)gpa);
	info->rsdp_gpa = gpa;
	info->used = end;
	info->ntables = T_COUNT;
	for (int t = 0; t < T_COUNT; t++) {
		memcpy(info->tables[t].signature, table_sig[t], 5);
		info->tables[t].offset = (uint32_t)off[t];
		info->tables[t].length = len[t];
		info->tables[t].gpa = gpa + off[t];
	}
	if (!buf)
		return 0;
	if (cap < end)
		return vmm_err(-ENOSPC, "ACPI: tables need %llu bytes, the buffer has %zu",
			       (unsigned long long)end, cap);

	uint8_t *p = buf;
	memset(p, 0, end);
	write_rsdp(p + off[T_RSDP], oem_id, gpa + off[T_XSDT]);
	write_xsdt(p + off[T_XSDT], len[T_XSDT], oem_id, gpa + off[T_FADT], gpa + off[T_MADT]);
	write_fadt(p + off[T_FADT], &o, oem_id, gpa + off[T_DSDT]);
	write_madt(p + off[T_MADT], len[T_MADT], &o, oem_id);
	/* The encoder needs a few bytes of slack beyond the AML's final length (aml.h),
	 * which the caller's buffer may not have after the last table: encode into a
	 * scratch buffer. */
	uint8_t *scratch = malloc(aml_peak);
	if (!scratch)
		return vmm_err(-ENOMEM, "ACPI: out of memory for %zu bytes of AML", aml_peak);
	long n = vmm_acpi_dsdt_aml(&o, scratch, aml_peak, NULL);
	if (n == aml) {
		uint8_t *dsdt = p + off[T_DSDT];
		memcpy(dsdt + ACPI_SDT_HEADER_LEN, scratch, (size_t)aml);
		put_sdt_header(dsdt, "DSDT", len[T_DSDT], DSDT_REVISION, oem_id);
		finish_sdt(dsdt, len[T_DSDT]);
	}
	free(scratch);
	if (n != aml)
		return vmm_err(n < 0 ? (int)n : -EIO, "ACPI: DSDT changed size between passes");
	return 0;
}

int vmm_acpi_write(vmm_mem *mem, uint64_t gpa, uint64_t len, const vmm_acpi_opts *opts,
		   vmm_acpi_info *info)
{
	vmm_acpi_info local;
	vmm_acpi_info *i = info ? info : &local;
	if (!mem)
		return vmm_err(-EINVAL, "vmm_acpi_write: NULL memory map");
	int r = vmm_acpi_build(opts, gpa, NULL, 0, i);
	if (r < 0)
		return r;
	if (i->used > len)
		return vmm_err(-ENOSPC, "ACPI: tables need %llu bytes, the area at %#llx has %llu",
			       (unsigned long long)i->used, (unsigned long long)gpa,
			       (unsigned long long)len);
	uint8_t *buf = malloc((size_t)i->used);
	if (!buf)
		return vmm_err(-ENOMEM, "ACPI: out of memory for %llu bytes of tables",
			       (unsigned long long)i->used);
	r = vmm_acpi_build(opts, gpa, buf, (size_t)i->used, i);
	if (r == 0) {
		r = vmm_mem_write(mem, gpa, buf, (size_t)i->used);
		if (r < 0)
			r = vmm_err(r, "ACPI: area [%#llx, +%#llx) is not writable guest RAM",
				    (unsigned long long)gpa, (unsigned long long)i->used);
	}
	free(buf);
	return r;
}
