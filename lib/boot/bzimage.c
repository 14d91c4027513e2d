/* bzImage: setup-header validation, the boot_params ("zero page") and the 64-bit entry.
 *
 * The Linux/x86 boot protocol (Documentation/arch/x86/boot.rst): the image starts with
 * (setup_sects + 1) sectors of real-mode setup whose setup header lies at 0x1f1 and
 * ends at 0x202 + the offset byte of the short jump at 0x200; the protected-mode
 * kernel follows, syssize 16-byte paragraphs of it. A 64-bit loader copies the header
 * into a zeroed boot_params, fills in what the loader owns, copies the protected-mode
 * kernel to its load address and enters it at load + 0x200 in long mode with RSI =
 * boot_params. Fields are read at fixed offsets with memcpy: the image is untrusted and
 * need not be aligned.
 */
#include <inttypes.h>
#include <string.h>

#include "boot_internal.h"

/* Image offsets of the fields read before the header is known to be there. */
enum {
	OFF_SETUP_SECTS = 0x1f1,
	OFF_BOOT_FLAG = 0x1fe,
	OFF_JUMP = 0x200,
	OFF_HEADER = 0x202,
	OFF_VERSION = 0x206,
};
#define HDR_FIELD_END(f) (BZ_HDR_OFFSET + offsetof(struct setup_header, f) + \
			  sizeof(((struct setup_header *)0)->f))

static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

bool vmm_bzimage_detect(const void *image, size_t size)
{
	const uint8_t *img = image;
	return img && size >= OFF_HEADER + 4 && get16(img + OFF_BOOT_FLAG) == BZ_BOOT_FLAG &&
	       get32(img + OFF_HEADER) == BZ_HDRS;
}

/* The magic numbers and the version: enough to know it is a kernel we can talk to. */
static int check_magic(const uint8_t *img, size_t size)
{
	if (size < OFF_BOOT_FLAG + 2)
		return vmm_err(-EINVAL, "bzImage: image of %zu bytes ends before the boot flag at 0x1fe",
			       size);
	uint16_t flag = get16(img + OFF_BOOT_FLAG);
	if (flag != BZ_BOOT_FLAG)
		return vmm_err(-EINVAL, "bzImage: boot flag %#06x at 0x1fe, expected 0xaa55", flag);
	if (size < OFF_HEADER + 4)
		return vmm_err(-EINVAL, "bzImage: image of %zu bytes ends inside the \"HdrS\" magic at "
			       "0x202", size);
	uint32_t magic = get32(img + OFF_HEADER);
	if (magic != BZ_HDRS)
		return vmm_err(-EINVAL, "bzImage: no \"HdrS\" setup header magic at 0x202 (found %#010x):"
			       " not a Linux kernel, or one older than boot protocol 2.00", magic);
	if (size < OFF_VERSION + 2)
		return vmm_err(-EINVAL, "bzImage: image of %zu bytes ends inside the protocol version "
			       "at 0x206", size);
	uint16_t v = get16(img + OFF_VERSION);
	if (v < BZ_MIN_VERSION)
		return vmm_err(-ENOEXEC, "bzImage: setup header version %u.%02u too old (need 2.12 for "
			       "the 64-bit entry)", v >> 8, v & 0xff);
	return 0;
}

/* Where the header ends, from the jump at 0x200, checked against the image and against
 * the fields a 2.12+ header must have. */
static int check_header_end(const uint8_t *img, size_t size, uint32_t *end)
{
	if (img[OFF_JUMP] != 0xeb)
		return vmm_err(-EINVAL, "bzImage: byte %#04x at 0x200 is not a short jump (0xeb), so the "
			       "end of the setup header is unknown", img[OFF_JUMP]);
	*end = OFF_HEADER + img[OFF_JUMP + 1];
	if (*end < HDR_FIELD_END(init_size))
		return vmm_err(-EINVAL, "bzImage: setup header ends at %#x, before init_size (ends at "
			       "%#zx), which protocol 2.10 and later have", *end, HDR_FIELD_END(init_size));
	if (*end > BZ_HDR_LIMIT)
		return vmm_err(-EINVAL, "bzImage: setup header end %#x runs past %#x into the rest of "
			       "boot_params", *end, BZ_HDR_LIMIT);
	if (*end > size)
		return vmm_err(-EINVAL, "bzImage: image of %zu bytes ends inside the setup header (which "
			       "ends at %#x)", size, *end);
	return 0;
}

/* Sizes and placement fields, in terms of the copied header. */
static int check_layout(size_t size, struct vmm_bzimage *bz)
{
	const struct setup_header *h = &bz->hdr;
	unsigned sects = h->setup_sects ? h->setup_sects : 4; /* 0 means 4, by the protocol */
	bz->setup_size = (uint64_t)(sects + 1) * 512;
	if (bz->setup_size > size)
		return vmm_err(-EINVAL, "bzImage: %u setup sectors (%#" PRIx64 " bytes with the boot "
			       "sector) but the image has only %#zx bytes", sects, bz->setup_size, size);
	if (!(h->loadflags & LOADED_HIGH))
		return vmm_err(-ENOEXEC, "bzImage: loadflags %#x lack LOADED_HIGH: a zImage (loaded "
			       "at 0x10000) is not supported", h->loadflags);
	if (!(h->xloadflags & XLF_KERNEL_64))
		return vmm_err(-ENOEXEC, "bzImage: xloadflags %#x lack XLF_KERNEL_64: the kernel has no "
			       "64-bit entry point (a 32-bit kernel?)", h->xloadflags);
	if (h->syssize == 0)
		return vmm_err(-EINVAL, "bzImage: syssize is 0: no protected-mode kernel");
	bz->kernel_size = (uint64_t)h->syssize * 16;
	if (bz->kernel_size > size - bz->setup_size)
		return vmm_err(-EINVAL, "bzImage: syssize %#x (%#" PRIx64 " bytes) runs past the end of "
			       "the image (%#" PRIx64 " bytes after the setup)", h->syssize,
			       bz->kernel_size, (uint64_t)(size - bz->setup_size));
	bz->init_size = h->init_size;
	if (bz->init_size < bz->kernel_size)
		return vmm_err(-EINVAL, "bzImage: init_size %#x is smaller than the kernel itself (%#"
			       PRIx64 " bytes)", h->init_size, bz->kernel_size);
	bz->relocatable = h->relocatable_kernel != 0;
	bz->alignment = h->kernel_alignment;
	if (bz->relocatable && (bz->alignment == 0 || (bz->alignment & (bz->alignment - 1))))
		return vmm_err(-EINVAL, "bzImage: kernel_alignment %#x of a relocatable kernel is not a "
			       "power of two", h->kernel_alignment);
	if (bz->alignment < VMM_PAGE_SIZE)
		bz->alignment = VMM_PAGE_SIZE;
	/* A non-relocatable kernel runs at pref_address; 0 there means the classic 1 MiB. */
	bz->pref_address = h->pref_address;
	if (!bz->relocatable && bz->pref_address == 0)
		bz->pref_address = BOOT_HIGH_MEM;
	uint64_t end;
	if (vmm_add_overflows(bz->pref_address, bz->init_size, &end))
		return vmm_err(-EINVAL, "bzImage: pref_address %#" PRIx64 " + init_size %#x wraps around",
			       bz->pref_address, h->init_size);
	bz->cmdline_max = h->cmdline_size < VMM_CMDLINE_LIMIT ? h->cmdline_size : VMM_CMDLINE_LIMIT;
	/* 0 only in headers older than 2.03, whose default the protocol gives. */
	bz->initrd_end_max = (h->initrd_addr_max ? (uint64_t)h->initrd_addr_max : 0x37ffffffull) + 1;
	return 0;
}

int vmm_bzimage_parse(const void *image, size_t size, struct vmm_bzimage *out)
{
	const uint8_t *img = image;
	int r;

	if (!img || !out)
		return vmm_err(-EINVAL, "bzImage: NULL argument");
	memset(out, 0, sizeof *out);
	if ((r = check_magic(img, size)) || (r = check_header_end(img, size, &out->hdr_end)))
		return r;
	size_t n = out->hdr_end - BZ_HDR_OFFSET;
	if (n > sizeof out->hdr)
		n = sizeof out->hdr; /* fields newer than our uapi header stay in the image only */
	memcpy(&out->hdr, img + BZ_HDR_OFFSET, n);
	return check_layout(size, out);
}

/* ---- boot_params ------------------------------------------------------------------------- */

/* The header a vmlinux entered at its 64-bit entry gets: what the kernel reads from a
 * bzImage's header, with a protocol version that makes it honour setup_data and
 * acpi_rsdp_addr. */
static void made_up_header(struct setup_header *h)
{
	h->boot_flag = BZ_BOOT_FLAG;
	h->header = BZ_HDRS;
	h->version = BZ_LOADER_VERSION;
	h->loadflags = LOADED_HIGH;
	h->kernel_alignment = 0x200000;
	h->xloadflags = XLF_KERNEL_64;
	h->cmdline_size = LINUX_COMMAND_LINE_SIZE - 1;
	h->initrd_addr_max = (uint32_t)LINUX_INITRD_ADDR_MAX;
}

void vmm_boot_params_fill(struct boot_params *bp, const void *image, const struct vmm_bzimage *bz,
			  const struct vmm_boot_pieces *pc)
{
	memset(bp, 0, sizeof *bp);
	if (bz) {
		/* The whole header as the image has it, even fields newer than our uapi
		 * struct; hdr_end <= 0x290 was checked, so it stays inside hdr + _pad7. */
		memcpy((uint8_t *)bp + BZ_HDR_OFFSET, (const uint8_t *)image + BZ_HDR_OFFSET,
		       bz->hdr_end - BZ_HDR_OFFSET);
		bp->hdr.code32_start = (uint32_t)pc->load_addr;
	} else {
		made_up_header(&bp->hdr);
	}
	bp->hdr.type_of_loader = 0xff; /* "undefined": no registered loader id */
	bp->hdr.cmd_line_ptr = (uint32_t)BOOT_CMDLINE;
	bp->ext_cmd_line_ptr = 0;
	bp->hdr.ramdisk_image = (uint32_t)pc->initrd_addr;
	bp->hdr.ramdisk_size = (uint32_t)pc->initrd_size;
	bp->ext_ramdisk_image = (uint32_t)(pc->initrd_addr >> 32);
	bp->ext_ramdisk_size = (uint32_t)(pc->initrd_size >> 32);
	bp->hdr.setup_data = pc->setup_data;
	bp->acpi_rsdp_addr = pc->rsdp;
	size_t n = pc->ne820 < E820_MAX_ENTRIES_ZEROPAGE ? pc->ne820 : E820_MAX_ENTRIES_ZEROPAGE;
	for (size_t i = 0; i < n; i++) {
		bp->e820_table[i].addr = pc->e820[i].addr;
		bp->e820_table[i].size = pc->e820[i].size;
		bp->e820_table[i].type = pc->e820[i].type;
	}
	bp->e820_entries = (uint8_t)n;
}

/* ---- the 64-bit entry --------------------------------------------------------------------- */

/* The boot protocol wants CS = __BOOT_CS (0x10) and DS = ES = SS = __BOOT_DS (0x18), flat.
 * Slot 0x08 repeats the code descriptor because the gates of the fault-reporting IDT of
 * vmm_vcpu_setup_long_mode use selector 0x08. 0x20 describes the TSS TR already holds. */
enum { GDT64_CODE_IDT = 0x08, GDT64_CS = 0x10, GDT64_DS = 0x18, GDT64_TSS = 0x20, GDT64_SIZE = 0x30 };
#define DESC_CODE64 0x00af9b000000ffffull /* P, DPL 0, code exec/read accessed, L, G */
#define DESC_DATA 0x00cf93000000ffffull   /* P, DPL 0, data read/write accessed, D/B, G */

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static void tss64_desc(uint8_t *d, uint64_t base, uint32_t limit)
{
	put64(d, (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x8bull << 40) |
		 ((uint64_t)((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56));
	put64(d + 8, base >> 32);
}

int vmm_boot_setup_vcpu64(vmm_vcpu *bsp, const vmm_linux_info *info)
{
	vmm_mem *mem = vmm_vm_mem(vmm_vcpu_vm(bsp));
	uint64_t stack = info->system_area + VMM_LONG_MODE_SYSTEM_AREA_SIZE;
	vmm_long_mode_opts lm = VMM_LONG_MODE_OPTS_INIT;
	lm.flags = VMM_LONG_MODE_FAULT_IDT;
	lm.cpl = 0;
	lm.entry = info->entry;
	lm.stack = stack;
	lm.system_area = info->system_area;
	int r = vmm_vcpu_setup_long_mode(bsp, &lm);
	if (r)
		return r;

	vmm_sregs s;
	if ((r = vmm_vcpu_get_sregs(bsp, &s)))
		return r;
	uint8_t gdt[GDT64_SIZE] = { 0 };
	put64(gdt + GDT64_CODE_IDT, DESC_CODE64);
	put64(gdt + GDT64_CS, DESC_CODE64);
	put64(gdt + GDT64_DS, DESC_DATA);
	tss64_desc(gdt + GDT64_TSS, s.tr.base, s.tr.limit);
	if ((r = vmm_mem_write(mem, BOOT_GDT, gdt, sizeof gdt)))
		return vmm_err(r, "Linux boot: cannot write the GDT at %#x", BOOT_GDT);
	s.gdt.base = BOOT_GDT;
	s.gdt.limit = GDT64_SIZE - 1;
	s.cs.selector = GDT64_CS;
	s.ds.selector = s.es.selector = s.ss.selector = s.fs.selector = s.gs.selector = GDT64_DS;
	s.tr.selector = GDT64_TSS;
	if ((r = vmm_vcpu_set_sregs(bsp, &s)))
		return r;

	vmm_regs regs;
	memset(&regs, 0, sizeof regs);
	regs.rip = info->entry;
	regs.rsi = info->boot_params;
	regs.rsp = stack;
	regs.rflags = 0x2; /* only the reserved bit: IF clear */
	return vmm_vcpu_set_regs(bsp, &regs);
}
