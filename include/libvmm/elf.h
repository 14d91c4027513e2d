/* libvmm: ELF64 loader for guest programs.
 *
 * Loads the PT_LOAD segments of a little-endian x86_64 ELF64 executable into guest
 * memory at their physical addresses (p_paddr), zero-filling p_memsz beyond p_filesz.
 * Every header field is validated against the image size and guest memory: a malformed
 * image gives -EINVAL (or -EFAULT for a segment outside guest RAM) and a message in
 * vmm_last_error(), never a crash. Nothing is written to guest memory unless the whole
 * image validates.
 *
 * Threading: no shared state; concurrent loads into different memory maps are fine.
 */
#ifndef LIBVMM_ELF_H
#define LIBVMM_ELF_H

#include <libvmm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmm_elf_info {
	uint64_t entry;      /* e_entry */
	uint64_t low;        /* lowest loaded guest-physical address */
	uint64_t high;       /* one past the highest loaded address (end of bss) */
	uint32_t segments;   /* PT_LOAD segments loaded */
} vmm_elf_info;

/* Loads an ELF image from a buffer. `info` may be NULL. Returns 0, -EINVAL (malformed),
 * -EFAULT (a segment outside guest RAM), -EROFS (a segment in read-only guest memory),
 * -ENOEXEC (valid ELF but not a static x86_64 ELF64 little-endian executable). A
 * segment may span adjacent memory regions. */
VMM_API int vmm_elf_load(vmm_mem *mem, const void *image, size_t size, vmm_elf_info *info);

/* Reads the file at `path` (at most 1 GiB) and loads it. Returns as vmm_elf_load, or the
 * errno of open/read, -EFBIG. */
VMM_API int vmm_elf_load_file(vmm_mem *mem, const char *path, vmm_elf_info *info);

/* Looks up the value of symbol `name` in the image's .symtab (for guest programs that
 * export entry points or buffers). Undefined symbols are skipped; the first defined
 * match wins. Returns 0 and *value, -ENOENT (no such symbol, or no .symtab), -EINVAL
 * (malformed image or arguments), or -ENOEXEC (not ELF64 little-endian). */
VMM_API int vmm_elf_symbol(const void *image, size_t size, const char *name, uint64_t *value);

#ifdef __cplusplus
}
#endif
#endif
