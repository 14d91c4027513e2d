/* PVH: the entry note of a vmlinux ELF, hvm_start_info, and the 32-bit entry state.
 *
 * Xen's x86/HVM direct boot ABI: the kernel announces a 32-bit physical entry point in
 * an ELF note (owner "Xen", type XEN_ELFNOTE_PHYS32_ENTRY). The loader loads the
 * PT_LOAD segments, writes an hvm_start_info (here version 1, so the memory map goes in
 * its memmap table rather than through a hypercall) and starts the vCPU in flat 32-bit
 * protected mode with paging off and EBX pointing at the structure.
 */
#include <inttypes.h>
#include <string.h>

#include "boot_internal.h"
#include "../core/vm_internal.h"
#include "../kvm/kvm.h"

int vmm_pvh_find_entry(const void *image, size_t size, const struct vmm_elf_image *elf, uint32_t *entry)
{
	const void *desc;
	size_t len;
	int r = vmm_elf_find_note(image, size, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, &desc, &len);
	if (r)
		return r;
	/* Linux declares it with _ASM_PTR (8 bytes on x86_64), the ABI document with .long. */
	uint64_t v;
	if (len == 4) {
		uint32_t v32;
		memcpy(&v32, desc, 4);
		v = v32;
	} else if (len == 8) {
		memcpy(&v, desc, 8);
	} else {
		return vmm_err(-EINVAL, "PVH: the XEN_ELFNOTE_PHYS32_ENTRY note holds %zu bytes, expected "
			       "a 4- or 8-byte address", len);
	}
	if (v >> 32)
		return vmm_err(-EINVAL, "PVH: entry point %#" PRIx64 " is above 4 GiB; a 32-bit entry "
			       "cannot reach it", v);
	for (unsigned i = 0; i < elf->nseg; i++) {
		const struct vmm_elf_segment *s = &elf->seg[i];
		if (v >= s->paddr && v - s->paddr < s->filesz) {
			*entry = (uint32_t)v;
			return 0;
		}
	}
	return vmm_err(-EINVAL, "PVH: entry point %#" PRIx64 " is not inside the file bytes of any "
		       "PT_LOAD segment", v);
}

int vmm_pvh_write_start_info(vmm_mem *mem, const struct vmm_boot_pieces *pc)
{
	struct hvm_memmap_table_entry map[VMM_E820_MAX_ENTRIES];
	size_t n = pc->ne820 < VMM_E820_MAX_ENTRIES ? pc->ne820 : VMM_E820_MAX_ENTRIES;
	memset(map, 0, sizeof map);
	for (size_t i = 0; i < n; i++) {
		map[i].addr = pc->e820[i].addr;
		map[i].size = pc->e820[i].size;
		map[i].type = pc->e820[i].type; /* XEN_HVM_MEMMAP_TYPE_* are the e820 types */
	}
	struct hvm_modlist_entry mod = { .paddr = pc->initrd_addr, .size = pc->initrd_size };
	/* "Nothing will be loaded at physical address 0": 0 means absent in every field. */
	struct hvm_start_info si = {
		.magic = XEN_HVM_START_MAGIC_VALUE,
		.version = 1,
		.nr_modules = pc->initrd_size ? 1 : 0,
		.modlist_paddr = pc->initrd_size ? BOOT_MODLIST : 0,
		.cmdline_paddr = BOOT_CMDLINE,
		.rsdp_paddr = pc->rsdp,
		.memmap_paddr = BOOT_MEMMAP,
		.memmap_entries = (uint32_t)n,
	};
	uint8_t page[VMM_PAGE_SIZE] = { 0 };
	memcpy(page, &si, sizeof si);
	int r = vmm_mem_write(mem, BOOT_PARAMS, page, sizeof page);
	if (!r)
		r = vmm_mem_write(mem, BOOT_MEMMAP, map, sizeof map);
	if (!r)
		r = vmm_mem_write(mem, BOOT_MODLIST, &mod, sizeof mod);
	if (r)
		return vmm_err(r, "PVH: cannot write hvm_start_info into the boot area");
	return 0;
}

/* ---- the 32-bit entry ---------------------------------------------------------------------- */

enum { GDT32_CS = 0x10, GDT32_DS = 0x18, GDT32_TSS = 0x20, GDT32_SIZE = 0x28 };
#define DESC_CODE32 0x00cf9b000000ffffull /* P, DPL 0, code exec/read accessed, D, G: flat */
#define DESC_DATA32 0x00cf93000000ffffull /* P, DPL 0, data read/write accessed, B, G: flat */
#define DESC_TSS32 0x00008b0000000067ull  /* busy 32-bit TSS, base 0, limit 0x67 */
#define CR0_PE 0x1ull
#define CR0_ET 0x10ull

static vmm_segment flat32(uint16_t sel, bool code)
{
	vmm_segment s = { .base = 0, .limit = 0xffffffffu, .selector = sel, .type = code ? 11 : 3,
			  .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1 };
	return s;
}

int vmm_boot_setup_vcpu_pvh(vmm_vcpu *bsp, const vmm_linux_info *info)
{
	vmm_mem *mem = vmm_vm_mem(vmm_vcpu_vm(bsp));
	/* The ABI only fixes the hidden parts of the segment registers; a GDT that matches
	 * them keeps a reload (or a nested hypervisor that re-derives them) consistent. */
	uint64_t gdt[GDT32_SIZE / 8] = { 0, 0, DESC_CODE32, DESC_DATA32, DESC_TSS32 };
	int r = vmm_mem_write(mem, BOOT_GDT, gdt, sizeof gdt);
	if (r)
		return vmm_err(r, "PVH: cannot write the GDT at %#x", BOOT_GDT);

	vmm_sregs s;
	if ((r = vmm_vcpu_get_sregs(bsp, &s)))
		return r;
	s.cs = flat32(GDT32_CS, true);
	s.ds = s.es = s.fs = s.gs = s.ss = flat32(GDT32_DS, false);
	s.tr = (vmm_segment){ .base = 0, .limit = 0x67, .selector = GDT32_TSS, .type = 11, .present = 1 };
	s.ldt = (vmm_segment){ .unusable = 1 };
	s.gdt.base = BOOT_GDT;
	s.gdt.limit = GDT32_SIZE - 1;
	s.idt.base = 0;
	s.idt.limit = 0;
	s.cr0 = CR0_PE | CR0_ET; /* ET is hard-wired to 1 */
	s.cr2 = s.cr3 = s.cr4 = 0;
	s.efer = 0;
	if ((r = vmm_vcpu_set_sregs(bsp, &s)))
		return r;

	/* As in long-mode setup: a vCPU of an in-kernel LAPIC that is not the BSP would wait
	 * for INIT/SIPI; this one starts now. */
	if (bsp->vm->irqchip != VMM_IRQCHIP_NONE) {
		struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };
		if ((r = vmm_kvm_set_mp_state(bsp->fd, &mp)) < 0)
			return vmm_err(r, "PVH: KVM_SET_MP_STATE failed");
	}
	vmm_regs regs;
	memset(&regs, 0, sizeof regs);
	regs.rip = info->entry;
	regs.rbx = info->boot_params;
	regs.rflags = 0x2; /* IF, TF and VM clear */
	return vmm_vcpu_set_regs(bsp, &regs);
}
