/* Flattened device tree of the machine, written with libfdt's sequential-write API
 * (fdt_create ... fdt_finish), which lays the tree out compactly in one pass: the blob's
 * totalsize is exactly what it uses. The layout is documented in include/libvmm/fdt.h.
 */
#include <libfdt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"

#define IOAPIC_PHANDLE 1u
#define LAPIC_PHANDLE 2u
#define LAPIC_BASE 0xfee00000ull
#define COM1_PORT 0x3f8u
#define COM1_IRQ 4u
#define UART_CLOCK 1843200u /* the 1.8432 MHz PC UART crystal: divisor 1 = 115200 baud */
#define ISA_IO_SPACE 1u     /* first cell of an "isa" bus address: 1 = I/O, 0 = memory */

/* ioapic interrupt sense (intel,ce4100-ioapic binding) */
#define SENSE_EDGE_RISING 0u
#define SENSE_LEVEL_LOW 1u
#define SENSE_LEVEL_HIGH 2u
#define SENSE_EDGE_FALLING 3u

/* Grows the first buffer guess in vmm_fdt_build_alloc by this factor until it fits. */
#define ALLOC_FIRST 4096u
#define ALLOC_MAX (64u << 20)

struct fdt_ctx {
	void *fdt;
	int err; /* first libfdt error (negative FDT_ERR_*) */
};

static void chk(struct fdt_ctx *c, int r)
{
	if (r < 0 && !c->err)
		c->err = r;
}

static void begin(struct fdt_ctx *c, const char *name)
{
	if (!c->err)
		chk(c, fdt_begin_node(c->fdt, name));
}

static void end(struct fdt_ctx *c)
{
	if (!c->err)
		chk(c, fdt_end_node(c->fdt));
}

static void prop_str(struct fdt_ctx *c, const char *name, const char *s)
{
	if (!c->err)
		chk(c, fdt_property_string(c->fdt, name, s));
}

static void prop_u32(struct fdt_ctx *c, const char *name, uint32_t v)
{
	if (!c->err)
		chk(c, fdt_property_u32(c->fdt, name, v));
}

static void prop_u64(struct fdt_ctx *c, const char *name, uint64_t v)
{
	if (!c->err)
		chk(c, fdt_property_u64(c->fdt, name, v));
}

static void prop_empty(struct fdt_ctx *c, const char *name)
{
	if (!c->err)
		chk(c, fdt_property(c->fdt, name, NULL, 0));
}

/* A property of n big-endian 32-bit cells. */
static void prop_cells(struct fdt_ctx *c, const char *name, const uint32_t *cells, size_t n)
{
	fdt32_t be[8];
	if (c->err)
		return;
	if (n > 8) {
		c->err = -FDT_ERR_INTERNAL;
		return;
	}
	for (size_t i = 0; i < n; i++)
		be[i] = cpu_to_fdt32(cells[i]);
	chk(c, fdt_property(c->fdt, name, be, (int)(n * sizeof be[0])));
}

/* reg = <base size> with two cells each (the root's #address-cells/#size-cells). */
static void prop_reg64(struct fdt_ctx *c, uint64_t base, uint64_t size)
{
	uint32_t cells[4] = { (uint32_t)(base >> 32), (uint32_t)base, (uint32_t)(size >> 32),
			      (uint32_t)size };
	prop_cells(c, "reg", cells, 4);
}

/* ---- options ------------------------------------------------------------------------- */

struct fdt_cfg {
	vmm_fdt_opts o;
	vmm_fdt_range ram[VMM_FDT_MAX_MEMORY];
	uint32_t nram;
};

static bool wraps(uint64_t base, uint64_t size)
{
	uint64_t last;
	return size == 0 || __builtin_add_overflow(base, size - 1, &last);
}

static int check_ranges(const vmm_fdt_range *r, uint32_t n, const char *what)
{
	for (uint32_t i = 0; i < n; i++) {
		if (wraps(r[i].base, r[i].size))
			return vmm_err(-EINVAL, "FDT: %s %u [%#llx, +%#llx) is empty or wraps", what, i,
				       (unsigned long long)r[i].base, (unsigned long long)r[i].size);
		for (uint32_t j = 0; j < i; j++)
			if (r[i].base <= r[j].base + (r[j].size - 1) &&
			    r[j].base <= r[i].base + (r[i].size - 1))
				return vmm_err(-EINVAL, "FDT: %s %u and %u overlap", what, j, i);
	}
	return 0;
}

static int collect_ram(struct fdt_cfg *cfg)
{
	const vmm_fdt_opts *o = &cfg->o;
	if (o->nmemory > VMM_FDT_MAX_MEMORY)
		return vmm_err(-EINVAL, "FDT: %u memory ranges (at most %u)", o->nmemory,
			       VMM_FDT_MAX_MEMORY);
	if (o->nmemory) {
		if (!o->memory)
			return vmm_err(-EINVAL, "FDT: %u memory ranges but a NULL list", o->nmemory);
		memcpy(cfg->ram, o->memory, o->nmemory * sizeof cfg->ram[0]);
		cfg->nram = o->nmemory;
	} else if (o->mem) {
		size_t n = vmm_mem_region_count(o->mem);
		for (size_t i = 0; i < n; i++) {
			vmm_mem_region_info ri;
			if (vmm_mem_get_region(o->mem, i, &ri) < 0 || (ri.flags & VMM_MEM_READONLY))
				continue;
			if (cfg->nram == VMM_FDT_MAX_MEMORY)
				return vmm_err(-EINVAL, "FDT: the memory map has more than %u writable "
					       "regions", VMM_FDT_MAX_MEMORY);
			cfg->ram[cfg->nram++] = (vmm_fdt_range){ ri.gpa, ri.len };
		}
	}
	if (cfg->nram == 0)
		return vmm_err(-EINVAL, "FDT: no memory (give memory ranges or a memory map with "
			       "writable regions)");
	return check_ranges(cfg->ram, cfg->nram, "memory range");
}

static int check_opts(struct fdt_cfg *cfg)
{
	const vmm_fdt_opts *o = &cfg->o;
	if (o->flags & ~VMM_FDT_SERIAL)
		return vmm_err(-EINVAL, "FDT: unknown flags %#x", o->flags & ~VMM_FDT_SERIAL);
	if (o->ncpus < 1 || o->ncpus > VMM_FDT_MAX_CPUS)
		return vmm_err(-EINVAL, "FDT: %u vCPUs (must be 1 to %u)", o->ncpus, VMM_FDT_MAX_CPUS);
	if (o->apic_ids)
		for (uint32_t i = 0; i < o->ncpus; i++)
			for (uint32_t j = 0; j < i; j++)
				if (o->apic_ids[i] == o->apic_ids[j])
					return vmm_err(-EINVAL, "FDT: vCPUs %u and %u share APIC id %u",
						       j, i, o->apic_ids[i]);
	if (o->initrd_size && wraps(o->initrd_start, o->initrd_size))
		return vmm_err(-EINVAL, "FDT: initrd [%#llx, +%#llx) wraps",
			       (unsigned long long)o->initrd_start, (unsigned long long)o->initrd_size);
	if (o->nvirtio > VMM_FDT_MAX_VIRTIO)
		return vmm_err(-EINVAL, "FDT: %u virtio-mmio devices (at most %u)", o->nvirtio,
			       VMM_FDT_MAX_VIRTIO);
	if (o->nvirtio && !o->virtio)
		return vmm_err(-EINVAL, "FDT: %u virtio-mmio devices but a NULL list", o->nvirtio);
	for (uint32_t i = 0; i < o->nvirtio; i++) {
		const vmm_fdt_virtio_mmio *d = &o->virtio[i];
		if (wraps(d->base, d->size))
			return vmm_err(-EINVAL, "FDT: virtio-mmio device %u: window [%#llx, +%#llx) is "
				       "empty or wraps", i, (unsigned long long)d->base,
				       (unsigned long long)d->size);
		if (d->gsi >= VMM_IRQ_IOAPIC_PINS)
			return vmm_err(-EINVAL, "FDT: virtio-mmio device %u: GSI %u is not an IOAPIC "
				       "pin (0-%d)", i, d->gsi, VMM_IRQ_IOAPIC_PINS - 1);
		if (d->flags & ~(VMM_FDT_IRQ_LEVEL | VMM_FDT_IRQ_ACTIVE_LOW))
			return vmm_err(-EINVAL, "FDT: virtio-mmio device %u: bad flags %#x", i, d->flags);
		for (uint32_t j = 0; j < i; j++) {
			const vmm_fdt_virtio_mmio *e = &o->virtio[j];
			if (d->base <= e->base + (e->size - 1) && e->base <= d->base + (d->size - 1))
				return vmm_err(-EINVAL, "FDT: virtio-mmio devices %u and %u overlap", j, i);
		}
	}
	return collect_ram(cfg);
}

/* ---- the tree ------------------------------------------------------------------------ */

static uint32_t sense(uint32_t flags)
{
	bool level = flags & VMM_FDT_IRQ_LEVEL, low = flags & VMM_FDT_IRQ_ACTIVE_LOW;
	if (level)
		return low ? SENSE_LEVEL_LOW : SENSE_LEVEL_HIGH;
	return low ? SENSE_EDGE_FALLING : SENSE_EDGE_RISING;
}

static void write_cpus(struct fdt_ctx *c, const vmm_fdt_opts *o)
{
	char name[32];
	begin(c, "cpus");
	prop_u32(c, "#address-cells", 1);
	prop_u32(c, "#size-cells", 0);
	for (uint32_t i = 0; i < o->ncpus; i++) {
		uint32_t id = o->apic_ids ? o->apic_ids[i] : i;
		snprintf(name, sizeof name, "cpu@%x", id);
		begin(c, name);
		prop_str(c, "device_type", "cpu");
		prop_u32(c, "reg", id);
		end(c);
	}
	end(c);
}

static void write_irqchips(struct fdt_ctx *c)
{
	char name[48];
	snprintf(name, sizeof name, "interrupt-controller@%llx", LAPIC_BASE);
	begin(c, name);
	prop_str(c, "compatible", "intel,ce4100-lapic");
	prop_reg64(c, LAPIC_BASE, 0x1000);
	prop_empty(c, "interrupt-controller");
	prop_u32(c, "#interrupt-cells", 2);
	prop_u32(c, "#address-cells", 0);
	prop_u32(c, "phandle", LAPIC_PHANDLE);
	end(c);

	snprintf(name, sizeof name, "interrupt-controller@%llx", VMM_IRQ_IOAPIC_BASE);
	begin(c, name);
	prop_str(c, "compatible", "intel,ce4100-ioapic");
	prop_reg64(c, VMM_IRQ_IOAPIC_BASE, 0x1000);
	prop_empty(c, "interrupt-controller");
	prop_u32(c, "#interrupt-cells", 2);
	prop_u32(c, "#address-cells", 0);
	prop_u32(c, "phandle", IOAPIC_PHANDLE);
	end(c);
}

static void write_isa(struct fdt_ctx *c)
{
	/* I/O space 0-0xffff maps to CPU address 0: <child flags, child addr> <parent
	 * addr hi, lo> <size>. Linux translates an I/O-space "isa" address to a port
	 * number through these ranges. */
	static const uint32_t ranges[5] = { ISA_IO_SPACE, 0, 0, 0, 0x10000 };
	/* Linux matches the bus by the name before the '@'. A node with "ranges" needs a
	 * unit address (dtc warns otherwise); "i0" (I/O space from 0, the ISA notation)
	 * rather than "0", which /memory@0 already uses. */
	begin(c, "isa@i0");
	prop_str(c, "compatible", "isa");
	prop_u32(c, "#address-cells", 2);
	prop_u32(c, "#size-cells", 1);
	prop_cells(c, "ranges", ranges, 5);

	char name[32];
	snprintf(name, sizeof name, "serial@i%x", COM1_PORT);
	begin(c, name);
	prop_str(c, "compatible", "ns16550a");
	const uint32_t reg[3] = { ISA_IO_SPACE, COM1_PORT, 8 };
	prop_cells(c, "reg", reg, 3);
	const uint32_t irq[2] = { COM1_IRQ, SENSE_EDGE_RISING };
	prop_cells(c, "interrupts", irq, 2);
	prop_u32(c, "clock-frequency", UART_CLOCK);
	end(c);
	end(c);
}

static int write_tree(const struct fdt_cfg *cfg, void *buf, size_t cap)
{
	const vmm_fdt_opts *o = &cfg->o;
	struct fdt_ctx c = { buf, 0 };
	char name[48];
	if (cap > INT32_MAX)
		cap = INT32_MAX;
	chk(&c, fdt_create(buf, (int)cap));
	if (!c.err)
		chk(&c, fdt_finish_reservemap(buf));
	begin(&c, "");
	prop_u32(&c, "#address-cells", 2);
	prop_u32(&c, "#size-cells", 2);
	prop_str(&c, "compatible", "libvmm,microvm");
	prop_str(&c, "model", "libvmm microVM");
	prop_u32(&c, "interrupt-parent", IOAPIC_PHANDLE);

	begin(&c, "chosen");
	if (o->bootargs)
		prop_str(&c, "bootargs", o->bootargs);
	if (o->initrd_size) {
		prop_u64(&c, "linux,initrd-start", o->initrd_start);
		prop_u64(&c, "linux,initrd-end", o->initrd_start + o->initrd_size);
	}
	if (o->flags & VMM_FDT_SERIAL)
		prop_str(&c, "stdout-path", "/isa@i0/serial@i3f8");
	end(&c);

	for (uint32_t i = 0; i < cfg->nram; i++) {
		snprintf(name, sizeof name, "memory@%llx", (unsigned long long)cfg->ram[i].base);
		begin(&c, name);
		prop_str(&c, "device_type", "memory");
		prop_reg64(&c, cfg->ram[i].base, cfg->ram[i].size);
		end(&c);
	}
	write_cpus(&c, o);
	write_irqchips(&c);
	if (o->flags & VMM_FDT_SERIAL)
		write_isa(&c);
	for (uint32_t i = 0; i < o->nvirtio; i++) {
		const vmm_fdt_virtio_mmio *d = &o->virtio[i];
		snprintf(name, sizeof name, "virtio_mmio@%llx", (unsigned long long)d->base);
		begin(&c, name);
		prop_str(&c, "compatible", "virtio,mmio");
		prop_reg64(&c, d->base, d->size);
		const uint32_t irq[2] = { d->gsi, sense(d->flags) };
		prop_cells(&c, "interrupts", irq, 2);
		prop_empty(&c, "dma-coherent");
		end(&c);
	}
	end(&c); /* root */
	if (!c.err)
		chk(&c, fdt_finish(buf));
	if (c.err == -FDT_ERR_NOSPACE)
		return vmm_err(-ENOSPC, "FDT: a buffer of %zu bytes is too small", cap);
	if (c.err)
		return vmm_err(-EFAULT, "FDT: libfdt failed: %s", fdt_strerror(c.err));
	return 0;
}

static int prepare(const vmm_fdt_opts *opts, struct fdt_cfg *cfg)
{
	vmm_fdt_opts defaults = VMM_FDT_OPTS_INIT;
	memset(cfg, 0, sizeof *cfg);
	cfg->o = defaults;
	if (!opts)
		return vmm_err(-EINVAL, "FDT: NULL options (memory is required)");
	if (vmm_opts_copy(&cfg->o, sizeof cfg->o, opts) < 0)
		return vmm_err(-EINVAL, "FDT: bad opts size %u", opts->size);
	return check_opts(cfg);
}

int vmm_fdt_build(const vmm_fdt_opts *opts, void *buf, size_t cap, size_t *size)
{
	if (!buf || !size)
		return vmm_err(-EINVAL, "vmm_fdt_build: NULL buffer or size");
	struct fdt_cfg *cfg = malloc(sizeof *cfg);
	if (!cfg)
		return vmm_err(-ENOMEM, "FDT: out of memory");
	int r = prepare(opts, cfg);
	if (r == 0)
		r = write_tree(cfg, buf, cap);
	if (r == 0)
		*size = fdt_totalsize(buf);
	free(cfg);
	return r;
}

int vmm_fdt_build_alloc(const vmm_fdt_opts *opts, void **blob, size_t *size)
{
	if (!blob || !size)
		return vmm_err(-EINVAL, "vmm_fdt_build_alloc: NULL blob or size");
	*blob = NULL;
	struct fdt_cfg *cfg = malloc(sizeof *cfg);
	if (!cfg)
		return vmm_err(-ENOMEM, "FDT: out of memory");
	int r = prepare(opts, cfg);
	void *buf = NULL;
	/* Double the buffer until the tree fits: a few rounds at most (a 1024-vCPU,
	 * 256-device tree is about 100 KiB). */
	for (size_t cap = ALLOC_FIRST; r == 0; cap *= 2) {
		if (cap > ALLOC_MAX) {
			r = vmm_err(-ENOSPC, "FDT: tree larger than %u bytes", ALLOC_MAX);
			break;
		}
		void *nb = realloc(buf, cap);
		if (!nb) {
			r = vmm_err(-ENOMEM, "FDT: out of memory for %zu bytes", cap);
			break;
		}
		buf = nb;
		r = write_tree(cfg, buf, cap);
		if (r == -ENOSPC) {
			r = 0;
			continue;
		}
		if (r == 0) {
			vmm_err_clear(); /* the -ENOSPC of a smaller attempt is not news */
			*size = fdt_totalsize(buf);
			/* Give back the slack; keeping the larger block is fine if this fails. */
			nb = realloc(buf, *size);
			*blob = nb ? nb : buf;
			buf = NULL;
		}
		break;
	}
	free(buf);
	free(cfg);
	return r;
}
