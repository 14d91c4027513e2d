/* The Linux loaders' shared internals (lib/boot/{bzimage,pvh,e820,cmdline,linux}.c). */
#ifndef LIBVMM_BOOT_INTERNAL_H
#define LIBVMM_BOOT_INTERNAL_H

#include <asm/bootparam.h>

#include "../internal.h"
#include "elf_internal.h"

/* ---- the fixed layout of the boot area (see include/libvmm/boot.h) ------------------ */
enum {
	BOOT_SYSTEM_AREA = 0x10000,  /* 128 KiB for vmm_vcpu_setup_long_mode */
	BOOT_PARAMS = 0x30000,       /* boot_params (4 KiB) or hvm_start_info */
	BOOT_GDT = 0x31000,          /* the entry GDT (64-bit or 32-bit flavour) */
	BOOT_MEMMAP = 0x32000,       /* PVH: hvm_memmap_table_entry[VMM_E820_MAX_ENTRIES] */
	BOOT_MODLIST = 0x32c00,      /* PVH: hvm_modlist_entry[1] */
	BOOT_CMDLINE = 0x40000,      /* VMM_CMDLINE_LIMIT + 1 bytes */
};
_Static_assert(BOOT_SYSTEM_AREA == VMM_LINUX_BOOT_AREA_START, "boot area starts with the system area");
_Static_assert(BOOT_SYSTEM_AREA + VMM_LONG_MODE_SYSTEM_AREA_SIZE <= BOOT_PARAMS, "system area fits");
_Static_assert(BOOT_PARAMS == VMM_LINUX_BOOT_PARAMS && BOOT_CMDLINE == VMM_LINUX_CMDLINE, "public layout");
_Static_assert(BOOT_CMDLINE + VMM_CMDLINE_LIMIT + 1 <= VMM_LINUX_BOOT_AREA_END, "command line fits");
_Static_assert(VMM_LINUX_BOOT_AREA_END <= 0x9fc00, "boot area below the legacy hole");

/* PC conventions: the EBDA/VGA/BIOS hole below 1 MiB, where nothing is placed. */
#define BOOT_LEGACY_HOLE 0x9fc00ull
#define BOOT_HIGH_MEM 0x100000ull
#define BOOT_4G (1ull << 32)
/* Linux/x86's COMMAND_LINE_SIZE (not in the uapi headers), with the NUL. */
#define LINUX_COMMAND_LINE_SIZE 2048u
/* x86_64 kernels' initrd_addr_max; used where no setup header gives one. */
#define LINUX_INITRD_ADDR_MAX 0x7fffffffull
/* "HdrS", the setup header magic, little-endian. */
#define BZ_HDRS 0x53726448u
#define BZ_BOOT_FLAG 0xaa55u
/* The oldest protocol with xloadflags and so a declared 64-bit entry. */
#define BZ_MIN_VERSION 0x020c
/* The version a loader-made header (ELF64 path) claims: acpi_rsdp_addr included. */
#define BZ_LOADER_VERSION 0x020f
/* Offset of the 64-bit entry from the load address. */
#define BZ_ENTRY64_OFFSET 0x200u
/* boot_params.hdr lies at this offset of the image and of boot_params. */
#define BZ_HDR_OFFSET 0x1f1u
/* The header may not run into boot_params' next field (edd_mbr_sig_buffer). */
#define BZ_HDR_LIMIT 0x290u

_Static_assert(sizeof(struct boot_params) == 4096, "zero page is a page");
_Static_assert(offsetof(struct boot_params, hdr) == BZ_HDR_OFFSET, "setup header offset");
_Static_assert(sizeof(vmm_e820_entry) == 24, "vmm_e820_entry has no surprises");

/* ---- bzImage ----------------------------------------------------------------------------- */

/* A bzImage whose header passed validation. */
struct vmm_bzimage {
	struct setup_header hdr; /* the image's header bytes, zero past hdr_end */
	uint32_t hdr_end;        /* 0x202 + the jump's offset byte: where the header ends */
	uint64_t setup_size;     /* (setup_sects + 1) * 512: file offset of the kernel */
	uint64_t kernel_size;    /* syssize * 16: bytes of protected-mode kernel to copy */
	uint64_t init_size;      /* bytes the kernel needs from its load address */
	uint64_t alignment;      /* load alignment when relocatable (power of two) */
	uint64_t pref_address;   /* where a non-relocatable kernel must, and a relocatable
	                          * one should, be loaded */
	bool relocatable;
	uint32_t cmdline_max;    /* cmdline_size, capped at VMM_CMDLINE_LIMIT */
	uint64_t initrd_end_max; /* initrd_addr_max + 1: the initrd ends at or below it */
};

/* True if the image starts like a bzImage (boot flag and "HdrS"); says nothing about
 * the rest. */
VMM_HIDDEN bool vmm_bzimage_detect(const void *image, size_t size);
/* Validates every header field the loader uses against the image. Returns 0, -EINVAL
 * (malformed) or -ENOEXEC (well formed, but no 64-bit entry or too old), with a
 * message starting "bzImage: ". */
VMM_HIDDEN int vmm_bzimage_parse(const void *image, size_t size, struct vmm_bzimage *out);

/* Fills a zeroed boot_params' header: from a bzImage (copy of [0x1f1, hdr_end)) or, with
 * bz NULL, a header made up for a vmlinux entered at its 64-bit entry. Then the fields
 * every 64-bit path sets. */
struct vmm_boot_pieces;
VMM_HIDDEN void vmm_boot_params_fill(struct boot_params *bp, const void *image,
				     const struct vmm_bzimage *bz, const struct vmm_boot_pieces *pc);

/* The 64-bit entry state (bzimage.c) and the PVH entry state (pvh.c). */
VMM_HIDDEN int vmm_boot_setup_vcpu64(vmm_vcpu *bsp, const vmm_linux_info *info);
VMM_HIDDEN int vmm_boot_setup_vcpu_pvh(vmm_vcpu *bsp, const vmm_linux_info *info);

/* ---- PVH ----------------------------------------------------------------------------------- */

#define XEN_ELFNOTE_PHYS32_ENTRY 18u
#define XEN_HVM_START_MAGIC_VALUE 0x336ec578u

/* The PVH boot ABI's start-of-day structures (Xen's public
 * arch-x86/hvm/start_info.h); no uapi header carries them. Little-endian, natural
 * alignment, no padding. */
struct hvm_start_info {
	uint32_t magic;          /* XEN_HVM_START_MAGIC_VALUE */
	uint32_t version;        /* 1: the memmap fields are valid */
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;  /* hvm_modlist_entry[nr_modules] */
	uint64_t cmdline_paddr;  /* NUL-terminated */
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;   /* hvm_memmap_table_entry[memmap_entries] (version 1) */
	uint32_t memmap_entries;
	uint32_t reserved;
};
struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};
struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;           /* e820 types */
	uint32_t reserved;
};
_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info layout");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry layout");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry layout");
_Static_assert(BOOT_MEMMAP + VMM_E820_MAX_ENTRIES * sizeof(struct hvm_memmap_table_entry) <= BOOT_MODLIST,
	       "memmap table fits before the module list");

/* Finds and validates the PVH entry note of a parsed ELF image: a 4- or 8-byte
 * little-endian physical address below 4 GiB that lies inside the file bytes of a
 * PT_LOAD segment. Returns 0 and *entry, -ENOENT (no note; no message is recorded),
 * -EINVAL (a bad note or image). */
VMM_HIDDEN int vmm_pvh_find_entry(const void *image, size_t size, const struct vmm_elf_image *elf,
				  uint32_t *entry);

/* Writes hvm_start_info, the memmap table and the module list for `pc`. */
VMM_HIDDEN int vmm_pvh_write_start_info(vmm_mem *mem, const struct vmm_boot_pieces *pc);

/* ---- placement ------------------------------------------------------------------------------ */

#define BOOT_MAX_USED (8 + VMM_ELF_MAX_SEGMENTS + VMM_LINUX_MAX_E820_EXTRA)

/* Guest-physical ranges taken so far while planning a load. */
struct vmm_boot_plan {
	vmm_mem *mem;
	unsigned nused;
	struct { uint64_t start, end; const char *what; bool shared; } used[BOOT_MAX_USED];
};

/* vmm_boot_claim flags */
#define BOOT_CLAIM_RAM (1u << 0)    /* the range must lie in one writable memory region */
#define BOOT_CLAIM_SHARED (1u << 1) /* may overlap other SHARED claims (e820 overrides) */

/* Takes [gpa, gpa + len) for `what`. With BOOT_CLAIM_RAM it must lie in one writable
 * region (-EFAULT otherwise). It must not overlap a range taken before (-ENOSPC, naming
 * both), unless both are BOOT_CLAIM_SHARED. len 0 takes nothing. */
VMM_HIDDEN int vmm_boot_claim(struct vmm_boot_plan *p, uint64_t gpa, uint64_t len, unsigned flags,
			      const char *what);
/* True if [gpa, gpa + len) lies in one writable region and overlaps nothing taken:
 * a vmm_boot_claim(..., BOOT_CLAIM_RAM, ...) that would succeed. Records no message. */
VMM_HIDDEN bool vmm_boot_fits(const struct vmm_boot_plan *p, uint64_t gpa, uint64_t len);
/* Finds and takes `len` bytes of writable RAM aligned to `align` (a power of two) in
 * [min, limit), inside one region, clear of every range taken: the highest such place
 * with `top_down`, else the lowest. Returns 0 and *out, or -ENOSPC (message says what
 * did not fit and where). */
VMM_HIDDEN int vmm_boot_alloc(struct vmm_boot_plan *p, uint64_t len, uint64_t align, uint64_t min,
			      uint64_t limit, bool top_down, const char *what, uint64_t *out);

/* Everything a load decided, handed to the writers. */
struct vmm_boot_pieces {
	vmm_linux_protocol protocol;
	uint64_t load_addr;        /* bzImage: where the protected-mode kernel goes */
	uint64_t entry;
	const char *cmdline;       /* validated */
	size_t cmdline_len;
	uint64_t initrd_addr, initrd_size;
	uint64_t rsdp;
	uint64_t setup_data;       /* first node, 0 if none */
	const vmm_e820_entry *e820;
	size_t ne820;
};

/* ---- command line ------------------------------------------------------------------------ */

/* Checks a whole command line for the loader: only printable characters (and bytes >=
 * 0x80), at most `max` bytes. Returns 0 and *len, -EINVAL or -E2BIG. */
VMM_HIDDEN int vmm_cmdline_check(const char *s, size_t max, size_t *len);

#endif
