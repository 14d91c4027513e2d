/* Synthetic Linux kernel images for the loader tests (unit and KVM): a bzImage with a
 * real setup header and a made-up protected-mode payload, and a vmlinux-like ELF64 with
 * an optional PVH entry note. Everything is built in a caller buffer, little-endian,
 * with the layout real kernels have, so each test can then break one field. */
#ifndef TEST_BOOT_IMAGES_H
#define TEST_BOOT_IMAGES_H

#include <asm/bootparam.h>
#include <elf.h>
#include <stdint.h>
#include <string.h>

/* ---- bzImage ---- */

#define TBZ_SETUP_SECTS 4u
#define TBZ_SETUP_SIZE ((TBZ_SETUP_SECTS + 1) * 512u)
#define TBZ_HDR_END 0x26cu            /* our uapi setup_header ends here */
#define TBZ_PREF 0x1000000u           /* 16 MiB, like CONFIG_PHYSICAL_START */
#define TBZ_ALIGN 0x200000u
#define TBZ_INIT_SIZE 0x100000u       /* 1 MiB */

struct tbz_params {
	size_t kernel_len;        /* protected-mode payload bytes (0 = 0x2000) */
	const uint8_t *code;      /* copied to payload offset 0x200 (the 64-bit entry) */
	size_t code_len;
	size_t trailer;           /* extra bytes after syssize * 16 (e.g. a signature) */
};

static inline uint8_t tbz_pattern(size_t k)
{
	return (uint8_t)(k * 31 + (k >> 8) + 7);
}

/* Builds a bzImage in buf (cap bytes); returns its size. The setup header is typed
 * through struct setup_header so tests can patch fields at (buf + 0x1f1). */
static inline size_t tbz_build(uint8_t *buf, size_t cap, const struct tbz_params *p)
{
	size_t klen = p && p->kernel_len ? p->kernel_len : 0x2000;
	size_t syssize = (klen + 15) / 16;
	size_t total = TBZ_SETUP_SIZE + syssize * 16 + (p ? p->trailer : 0);
	if (total > cap)
		return 0;
	memset(buf, 0, total);
	for (size_t k = 0; k < TBZ_SETUP_SIZE; k++)
		buf[k] = (uint8_t)(0x40 + (k & 0x1f)); /* setup code stand-in, nonzero */
	for (size_t k = 0; k < syssize * 16 + (p ? p->trailer : 0); k++)
		buf[TBZ_SETUP_SIZE + k] = tbz_pattern(k);
	if (p && p->code)
		memcpy(buf + TBZ_SETUP_SIZE + 0x200, p->code, p->code_len);
	struct setup_header h;
	memset(&h, 0, sizeof h);
	h.setup_sects = TBZ_SETUP_SECTS;
	h.syssize = (uint32_t)syssize;
	h.vid_mode = 0xffff;
	h.boot_flag = 0xaa55;
	h.jump = (uint16_t)(0xeb | ((TBZ_HDR_END - 0x202) << 8));
	h.header = 0x53726448;
	h.version = 0x020f;
	h.loadflags = LOADED_HIGH;
	h.code32_start = 0x100000;
	h.initrd_addr_max = 0x7fffffff;
	h.kernel_alignment = TBZ_ALIGN;
	h.relocatable_kernel = 1;
	h.min_alignment = 21;
	h.xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
	h.cmdline_size = 2047;
	h.pref_address = TBZ_PREF;
	h.init_size = TBZ_INIT_SIZE;
	memcpy(buf + 0x1f1, &h, sizeof h);
	return total;
}

/* Read-modify-write of the header inside an image. */
static inline struct setup_header tbz_hdr(const uint8_t *buf)
{
	struct setup_header h;
	memcpy(&h, buf + 0x1f1, sizeof h);
	return h;
}
static inline void tbz_set_hdr(uint8_t *buf, const struct setup_header *h)
{
	memcpy(buf + 0x1f1, h, sizeof *h);
}

/* ---- vmlinux ELF ---- */

#define TELF_PADDR 0x1000000u
#define TELF_FILESZ 0x1000u
#define TELF_MEMSZ 0x3000u
#define TELF_PVH_ENTRY (TELF_PADDR + 0x100u)
#define TELF_ENTRY64 (TELF_PADDR + 0x200u)

struct telf_params {
	int note_len;            /* PVH note descriptor size: 0 = none, 4, 8, or another */
	uint64_t pvh_entry;      /* 0 = TELF_PVH_ENTRY */
	uint64_t paddr;          /* 0 = TELF_PADDR */
	const uint8_t *pvh_code; /* copied to the PVH entry */
	size_t pvh_code_len;
	const uint8_t *code64;   /* copied to e_entry (TELF_ENTRY64) */
	size_t code64_len;
};

static inline uint8_t telf_pattern(size_t k)
{
	return (uint8_t)(k * 13 + 5);
}

/* Ehdr, 2 program headers (PT_LOAD, PT_NOTE), the notes (a GNU build id, then the Xen
 * one), then the segment's file bytes at offset 0x1000. Returns the size. */
static inline size_t telf_build(uint8_t *buf, size_t cap, const struct telf_params *p)
{
	uint64_t paddr = p->paddr ? p->paddr : TELF_PADDR;
	uint64_t pvh = p->pvh_entry ? p->pvh_entry : paddr + 0x100;
	size_t total = 0x1000 + TELF_FILESZ;
	if (cap < total)
		return 0;
	memset(buf, 0, total);

	uint8_t notes[128];
	size_t nlen = 0;
	Elf64_Nhdr nh = { .n_namesz = 4, .n_descsz = 4, .n_type = 3 };
	memcpy(notes + nlen, &nh, sizeof nh);
	memcpy(notes + nlen + 12, "GNU\0", 4);
	memcpy(notes + nlen + 16, "\x01\x02\x03\x04", 4);
	nlen += 20;
	if (p->note_len) {
		size_t dl = (size_t)p->note_len;
		nh = (Elf64_Nhdr){ .n_namesz = 4, .n_descsz = (Elf64_Word)dl, .n_type = 18 };
		memcpy(notes + nlen, &nh, sizeof nh);
		memcpy(notes + nlen + 12, "Xen\0", 4);
		uint8_t desc[16] = { 0 };
		memcpy(desc, &pvh, dl < 8 ? dl : 8);
		memcpy(notes + nlen + 16, desc, dl < 16 ? dl : 16);
		nlen += 16 + ((dl + 3) & ~(size_t)3);
	}

	Elf64_Ehdr eh = { .e_type = ET_EXEC, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
			  .e_entry = paddr + 0x200, .e_phoff = sizeof eh, .e_ehsize = sizeof eh,
			  .e_phentsize = sizeof(Elf64_Phdr), .e_phnum = 2 };
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	Elf64_Phdr load = { .p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = 0x1000,
			    .p_vaddr = 0xffffffff81000000ull, .p_paddr = paddr, .p_filesz = TELF_FILESZ,
			    .p_memsz = TELF_MEMSZ, .p_align = 0x1000 };
	Elf64_Phdr note = { .p_type = PT_NOTE, .p_flags = PF_R, .p_offset = 0x200,
			    .p_filesz = nlen, .p_memsz = nlen, .p_align = 4 };
	memcpy(buf, &eh, sizeof eh);
	memcpy(buf + sizeof eh, &load, sizeof load);
	memcpy(buf + sizeof eh + sizeof load, &note, sizeof note);
	memcpy(buf + 0x200, notes, nlen);
	for (size_t k = 0; k < TELF_FILESZ; k++)
		buf[0x1000 + k] = telf_pattern(k);
	if (p->pvh_code && pvh >= paddr && pvh - paddr + p->pvh_code_len <= TELF_FILESZ)
		memcpy(buf + 0x1000 + (pvh - paddr), p->pvh_code, p->pvh_code_len);
	if (p->code64)
		memcpy(buf + 0x1000 + 0x200, p->code64, p->code64_len);
	return total;
}

#endif
