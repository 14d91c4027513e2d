/* ACPI table builder internals shared by lib/boot/acpi*.c. Not installed. */
#ifndef LIBVMM_BOOT_ACPI_INTERNAL_H
#define LIBVMM_BOOT_ACPI_INTERNAL_H

#include "../internal.h"

#define ACPI_SDT_HEADER_LEN 36u
#define ACPI_OEM_TABLE_ID "LIBVMM  "
#define ACPI_CREATOR_ID "LVMM"
#define ACPI_CREATOR_REVISION 1u
#define ACPI_OEM_REVISION 1u

/* The DSDT's AML (the definition block's body, without the table header) for the
 * validated options `o`, written into buf (cap bytes), or only measured with buf NULL.
 * *peak (may be NULL) gets the capacity the encoder needs, a little more than the
 * AML's length (see aml.h). Returns the AML's length or a negative errno (-ENOSPC if
 * cap is too small). */
VMM_HIDDEN long vmm_acpi_dsdt_aml(const vmm_acpi_opts *o, void *buf, size_t cap, size_t *peak);

#endif
