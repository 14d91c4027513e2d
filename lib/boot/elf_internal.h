/* ELF64 parsing shared inside lib/ (e.g. a PVH boot path that needs the entry note). */
#ifndef LIBVMM_ELF_INTERNAL_H
#define LIBVMM_ELF_INTERNAL_H

#include <elf.h>

#include "../internal.h"

/* More PT_LOAD segments than this is not a program we want to boot (a kernel has ~5). */
#define VMM_ELF_MAX_SEGMENTS 64

/* A PT_LOAD segment that passed validation: [offset, offset + filesz) lies in the image,
 * filesz <= memsz, memsz > 0, paddr + memsz does not wrap, and no two overlap. */
struct vmm_elf_segment {
	uint64_t paddr;
	uint64_t memsz;
	uint64_t offset;
	uint64_t filesz;
	unsigned phdr; /* index in the program header table, for messages */
};

struct vmm_elf_image {
	Elf64_Ehdr ehdr;
	unsigned nseg;
	struct vmm_elf_segment seg[VMM_ELF_MAX_SEGMENTS];
};

/* Validates an x86_64 ELF64 executable image (headers and segments against the image;
 * guest memory is not looked at) and fills *out. Returns 0, -EINVAL or -ENOEXEC with a
 * message. */
VMM_HIDDEN int vmm_elf_parse(const void *image, size_t size, struct vmm_elf_image *out);

/* Finds the first note of `type` whose owner name is `owner` in the PT_NOTE segments of
 * an ELF64 little-endian image. On success *desc points into the image and *desc_len is
 * its length (bounded by the image). Returns 0, -ENOENT or -EINVAL. */
VMM_HIDDEN int vmm_elf_find_note(const void *image, size_t size, const char *owner, uint32_t type,
				 const void **desc, size_t *desc_len);

#endif
