/* libvmm: ACPI tables for x86 guests.
 *
 * Builds the tables an unmodified Linux kernel (or any ACPI OS) needs to find the CPUs,
 * the interrupt controller and the platform and virtio-mmio devices, with no
 * command-line tricks:
 *
 *   RSDP (revision 2) -> XSDT -> FADT -> DSDT
 *                             -> MADT
 *
 * - FADT revision 6.5 with HW_REDUCED_ACPI: no PM timer, SCI, GPE or PM1 blocks, no
 *   FACS. IAPC_BOOT_ARCH says "no VGA"; the 8042 and CMOS RTC bits follow
 *   VMM_ACPI_I8042 and VMM_ACPI_RTC. With a `sleep_port`, the sleep control and status
 *   registers live at that I/O port and the DSDT has \_S5, so the guest can power off.
 * - MADT: local APIC address 0xFEE00000, PCAT_COMPAT per VMM_ACPI_PIC, one Processor
 *   Local x2APIC entry (type 9) per vCPU, enabled, ACPI processor UID = its index; one
 *   I/O APIC (id 0, 0xFEC00000, GSI base 0). No RSDT: every OS we target reads the XSDT.
 * - DSDT: Scope(\_SB) with COM1 (PNP0501), the PS/2 keyboard controller (PNP0303), the
 *   CMOS RTC (PNP0B00) when asked for, and one Device(VRnn) per virtio-mmio device with
 *   _HID "LNRO0005" (what Linux's virtio_mmio driver matches), _UID n and a _CRS with
 *   Memory32Fixed (QWordMemory above 4 GiB) and an Extended Interrupt descriptor.
 *
 * Why hardware-reduced: a full-ACPI FADT needs PM1 event/control blocks, a PM timer and
 * an SCI that a microVM does not have. With HW_REDUCED_ACPI, Linux also skips the legacy
 * PIC and the "IO-APIC + timer" check, and takes its timer from the LAPIC (or
 * kvm-clock). It then never programs or masks the 8259, and keeps LINT0 in ExtINT mode
 * on CPU 0 if it finds it unmasked (KVM's reset state for the boot vCPU). A VMM with the
 * in-kernel PIC (VMM_IRQCHIP_KERNEL), whose PIC starts unmasked with vector base 0, must
 * therefore mask the PIC or the boot vCPU's LVT0 itself before entry, or interrupts on
 * GSIs 0-15 also arrive as vectors 0-15 (exceptions) on CPU 0.
 *
 * The tables live in a guest-physical area the caller chooses. Linux finds the RSDP by
 * scanning 0xE0000-0xFFFFF on 16-byte boundaries, so VMM_ACPI_AREA_GPA is a good place;
 * otherwise pass the RSDP address in boot_params.acpi_rsdp_addr (boot protocol 2.14+),
 * hvm_start_info.rsdp_paddr (PVH), or `acpi_rsdp_addr=` on the command line. Mark the
 * area reserved in the guest's memory map (e820).
 *
 * Threading: no shared state; concurrent builds are fine.
 */
#ifndef LIBVMM_ACPI_H
#define LIBVMM_ACPI_H

#include <libvmm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The BIOS area Linux scans for the RSDP, and its size. */
#define VMM_ACPI_AREA_GPA 0xe0000ull
#define VMM_ACPI_AREA_SIZE 0x20000ull

#define VMM_ACPI_MAX_CPUS 1024u
#define VMM_ACPI_MAX_VIRTIO 256u

/* Guest power-off through the sleep control register (with vmm_acpi_opts.sleep_port):
 * the guest writes (SLP_TYP << 2) | SLP_EN to the port, SLP_TYP being 5 for S5 (soft
 * off), so a byte write of VMM_ACPI_SLEEP_S5_OFF means "power off". Before it, Linux
 * writes VMM_ACPI_SLEEP_WAK_STS (0x80) to clear the wake status; reads of the port
 * should return 0. */
#define VMM_ACPI_SLP_TYP_S5 5u
#define VMM_ACPI_SLP_EN 0x20u
#define VMM_ACPI_SLEEP_S5_OFF ((VMM_ACPI_SLP_TYP_S5 << 2) | VMM_ACPI_SLP_EN) /* 0x34 */
#define VMM_ACPI_SLEEP_WAK_STS 0x80u

/* With VMM_ACPI_I8042, the FADT reset register is this I/O port and value: the 8042
 * "pulse reset line" command, which an i8042 model turns into a reset (Linux tries the
 * ACPI reset register first, then the same 8042 command directly). */
#define VMM_ACPI_RESET_PORT 0x64u
#define VMM_ACPI_RESET_VALUE 0xfeu

/* vmm_acpi_opts.flags */
#define VMM_ACPI_COM1 (1u << 0)  /* Device COM1: 16550 at I/O 0x3F8-0x3FF, ISA IRQ 4 */
#define VMM_ACPI_I8042 (1u << 1) /* Device PS2K: 8042 at I/O 0x60 and 0x64, ISA IRQ 1; the
                                  * FADT's 8042 flag and reset register (see above) */
#define VMM_ACPI_RTC (1u << 2)   /* Device RTC: CMOS RTC at I/O 0x70-0x71, ISA IRQ 8.
                                  * Without it the FADT says "CMOS RTC not present". */
/* An Interrupt Source Override ISA IRQ 0 -> GSI 2 (edge, active high), as on PC
 * chipsets. Set it only if the PIT's interrupt really reaches IOAPIC pin 2 (a GSI route
 * like QEMU's). libvmm's own routing is the identity (GSI n = IOAPIC pin n, and KVM's
 * PIT raises GSI 0), which needs no override: without one, ISA IRQ n is GSI n. */
#define VMM_ACPI_IRQ0_TO_GSI2 (1u << 3)
/* The machine has the dual 8259 PIC (VMM_IRQCHIP_KERNEL): sets the MADT's PCAT_COMPAT
 * flag, on which OSes that honour it mask the 8259s. Linux ignores the flag (and, with
 * HW_REDUCED_ACPI, the PIC: see above). Leave it clear with VMM_IRQCHIP_SPLIT. */
#define VMM_ACPI_PIC (1u << 5)
/* Describe vCPUs with APIC ids below 255 with Processor Local APIC entries (type 0)
 * instead of x2APIC entries, as the ACPI spec prescribes for such ids (x2APIC entries
 * remain for ids >= 255). For older OSes; Linux accepts either. Never both for one
 * CPU: kernels before 6.0 would count it twice. */
#define VMM_ACPI_XAPIC_ENTRIES (1u << 4)

/* vmm_acpi_virtio_mmio.flags: the interrupt's trigger and polarity. 0 = edge-triggered,
 * active high, exclusive (what virtio-mmio with an irqfd uses). */
#define VMM_ACPI_IRQ_LEVEL (1u << 0)
#define VMM_ACPI_IRQ_ACTIVE_LOW (1u << 1)
#define VMM_ACPI_IRQ_SHARED (1u << 2)

typedef struct vmm_acpi_virtio_mmio {
	uint64_t base;  /* MMIO base; with size, must not wrap */
	uint64_t size;  /* bytes, > 0 (a virtio-mmio window is usually 0x1000) */
	uint32_t gsi;   /* its interrupt: an IOAPIC pin, 0-23 */
	uint32_t flags; /* VMM_ACPI_IRQ_* */
} vmm_acpi_virtio_mmio;

typedef struct vmm_acpi_opts {
	uint32_t size;                       /* sizeof(vmm_acpi_opts) */
	uint32_t flags;                      /* VMM_ACPI_* */
	uint32_t ncpus;                      /* 1 to VMM_ACPI_MAX_CPUS; default 1 */
	const uint32_t *apic_ids;            /* ncpus distinct APIC ids, not 0xFFFFFFFF;
	                                      * NULL = 0, 1, ..., ncpus - 1 */
	const vmm_acpi_virtio_mmio *virtio;  /* nvirtio devices, named VR00, VR01, ... */
	uint32_t nvirtio;                    /* 0 to VMM_ACPI_MAX_VIRTIO */
	uint16_t sleep_port;                 /* I/O port of the sleep registers; 0 = none
	                                      * (no ACPI power-off) */
	const char *oem_id;                  /* up to 6 characters; NULL = "LIBVMM" */
} vmm_acpi_opts;

#define VMM_ACPI_OPTS_INIT { sizeof(vmm_acpi_opts), 0, 1, 0, 0, 0, 0, 0 }

/* Where each table went. */
typedef struct vmm_acpi_table_info {
	char signature[5]; /* "RSDP", "XSDT", "FACP", "APIC", "DSDT"; NUL-terminated */
	uint32_t offset;   /* from the start of the area */
	uint32_t length;   /* bytes */
	uint64_t gpa;
} vmm_acpi_table_info;

#define VMM_ACPI_MAX_TABLES 16

typedef struct vmm_acpi_info {
	uint64_t rsdp_gpa; /* the RSDP: the start of the area */
	uint64_t used;     /* bytes of the area used (the end of the last table) */
	uint32_t ntables;
	vmm_acpi_table_info tables[VMM_ACPI_MAX_TABLES]; /* in address order; RSDP first */
} vmm_acpi_info;

/* Builds the tables as they will sit in guest memory at `gpa` (16-byte aligned) into
 * the caller's buffer `buf` of `cap` bytes. With buf == NULL (cap ignored) nothing is
 * written and info->used says how large a buffer is needed. Bytes of `buf` between
 * tables (alignment padding) are zeroed; bytes past info->used are not touched. `info`
 * is required. Returns 0, -EINVAL (bad options; vmm_last_error says which), -ENOSPC
 * (cap too small; info->used still says what is needed). */
VMM_API int vmm_acpi_build(const vmm_acpi_opts *opts, uint64_t gpa, void *buf, size_t cap,
			   vmm_acpi_info *info);

/* Builds the tables and writes them into guest memory at [gpa, gpa + len), which must
 * be RAM. `info` may be NULL; info->rsdp_gpa is what the guest needs. Returns 0,
 * -EINVAL, -ENOSPC (the tables need more than len bytes), -EFAULT or -EROFS (the area is
 * not writable guest RAM), -ENOMEM. Nothing is written on failure. */
VMM_API int vmm_acpi_write(vmm_mem *mem, uint64_t gpa, uint64_t len, const vmm_acpi_opts *opts,
			   vmm_acpi_info *info);

#ifdef __cplusplus
}
#endif
#endif
