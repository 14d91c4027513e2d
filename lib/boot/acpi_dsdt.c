/* The DSDT's AML: the platform devices and the virtio-mmio devices under \_SB, and \_S5.
 *
 * The equivalent ASL, for COM1 and one virtio-mmio device:
 *
 *   Scope (\_SB) {
 *     Device (COM1) {
 *       Name (_HID, EisaId ("PNP0501"))
 *       Name (_UID, Zero)
 *       Name (_CRS, ResourceTemplate () {
 *         IO (Decode16, 0x03F8, 0x03F8, 0x00, 0x08)
 *         IRQNoFlags () {4}
 *       })
 *     }
 *     Device (VR00) {
 *       Name (_HID, "LNRO0005")
 *       Name (_UID, Zero)
 *       Name (_CRS, ResourceTemplate () {
 *         Memory32Fixed (ReadWrite, 0xD0000000, 0x00001000)
 *         Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {5}
 *       })
 *     }
 *   }
 *   Name (_S5, Package () {5, 5})
 *
 * Linux turns each Device with a _HID into a platform device whose resources come from
 * _CRS; virtio_mmio binds to "LNRO0005", 8250_pnp to PNP0501, i8042 to PNP0303 and
 * rtc-cmos to PNP0B00.
 */
#include <stdio.h>

#include "acpi_internal.h"
#include "aml.h"

static void isa_device(struct vmm_aml *a, const char *name, const char *eisaid, unsigned irq)
{
	vmm_aml_device_begin(a, name);
	vmm_aml_name_decl(a, "_HID");
	vmm_aml_eisaid(a, eisaid);
	vmm_aml_name_decl(a, "_UID");
	vmm_aml_integer(a, 0);
	vmm_aml_name_decl(a, "_CRS");
	vmm_aml_restemplate_begin(a);
	if (irq == 4) {
		/* COM1: 8 registers at 0x3F8. Alignment 0 as for a fixed range. */
		vmm_aml_res_io(a, 0x3f8, 0x3f8, 0x00, 0x08);
	} else if (irq == 1) {
		/* 8042: data port 0x60, command/status port 0x64, one byte each (Linux's
		 * i8042 PNP probe takes the ports from the first two IO descriptors). */
		vmm_aml_res_io(a, 0x60, 0x60, 0x01, 0x01);
		vmm_aml_res_io(a, 0x64, 0x64, 0x01, 0x01);
	} else {
		/* CMOS RTC: index 0x70, data 0x71. */
		vmm_aml_res_io(a, 0x70, 0x70, 0x01, 0x02);
	}
	vmm_aml_res_irq_noflags(a, irq);
	vmm_aml_end(a); /* ResourceTemplate */
	vmm_aml_end(a); /* Device */
}

static void virtio_device(struct vmm_aml *a, unsigned idx, const vmm_acpi_virtio_mmio *d)
{
	char name[5];
	snprintf(name, sizeof name, "VR%02X", idx & 0xffu);
	vmm_aml_device_begin(a, name);
	vmm_aml_name_decl(a, "_HID");
	vmm_aml_string(a, "LNRO0005");
	vmm_aml_name_decl(a, "_UID");
	vmm_aml_integer(a, idx);
	vmm_aml_name_decl(a, "_CRS");
	vmm_aml_restemplate_begin(a);
	/* base + size - 1 does not wrap (checked by the caller). */
	if (d->base + (d->size - 1) <= UINT32_MAX)
		vmm_aml_res_mem32_fixed(a, true, (uint32_t)d->base, (uint32_t)d->size);
	else
		vmm_aml_res_qword_mem(a, d->base, d->size);
	uint32_t f = 0;
	if (!(d->flags & VMM_ACPI_IRQ_LEVEL))
		f |= AML_IRQ_EDGE;
	if (d->flags & VMM_ACPI_IRQ_ACTIVE_LOW)
		f |= AML_IRQ_ACTIVE_LOW;
	if (d->flags & VMM_ACPI_IRQ_SHARED)
		f |= AML_IRQ_SHARED;
	vmm_aml_res_interrupt(a, f, d->gsi);
	vmm_aml_end(a); /* ResourceTemplate */
	vmm_aml_end(a); /* Device */
}

long vmm_acpi_dsdt_aml(const vmm_acpi_opts *o, void *buf, size_t cap, size_t *peak)
{
	struct vmm_aml a;
	vmm_aml_init(&a, buf, cap);
	vmm_aml_scope_begin(&a, "\\_SB");
	if (o->flags & VMM_ACPI_COM1)
		isa_device(&a, "COM1", "PNP0501", 4);
	if (o->flags & VMM_ACPI_I8042)
		isa_device(&a, "PS2K", "PNP0303", 1);
	if (o->flags & VMM_ACPI_RTC)
		isa_device(&a, "RTC", "PNP0B00", 8);
	for (uint32_t i = 0; i < o->nvirtio; i++)
		virtio_device(&a, i, &o->virtio[i]);
	vmm_aml_end(&a); /* Scope */
	if (o->sleep_port) {
		/* \_S5: SLP_TYPa, SLP_TYPb. A hardware-reduced OS writes SLP_TYPa into the
		 * sleep control register. */
		vmm_aml_name_decl(&a, "_S5");
		vmm_aml_package_begin(&a, 2);
		vmm_aml_integer(&a, VMM_ACPI_SLP_TYP_S5);
		vmm_aml_integer(&a, VMM_ACPI_SLP_TYP_S5);
		vmm_aml_end(&a);
	}
	if (peak)
		*peak = vmm_aml_peak(&a);
	return vmm_aml_finish(&a);
}
