/* ELF64 loader, symbol and note lookup.
 *
 * The image is untrusted input: every offset, size and count is checked against the
 * image size with overflow-checked arithmetic before it is used, headers are copied out
 * with memcpy (the buffer need not be aligned), and the whole image, guest memory
 * placement included, is validated before the first byte is written to the guest.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf_internal.h"

#define ELF_FILE_MAX (UINT64_C(1) << 30)

/* [off, off + len) lies inside an image of `size` bytes, without wrapping. */
static bool in_image(uint64_t off, uint64_t len, size_t size)
{
	uint64_t end;
	return !vmm_add_overflows(off, len, &end) && end <= size;
}

/* Magic, class, byte order and version: what every lookup needs before it trusts a field.
 * Copies the header out to *eh. */
static int check_ident(const uint8_t *img, size_t size, Elf64_Ehdr *eh)
{
	if (!img)
		return vmm_err(-EINVAL, "ELF: NULL image");
	if (size < sizeof *eh)
		return vmm_err(-EINVAL, "ELF: image of %zu bytes is smaller than an ELF64 header (%zu)",
			       size, sizeof *eh);
	memcpy(eh, img, sizeof *eh);
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
		return vmm_err(-EINVAL, "ELF: bad magic %02x %02x %02x %02x", eh->e_ident[0],
			       eh->e_ident[1], eh->e_ident[2], eh->e_ident[3]);
	if (eh->e_ident[EI_CLASS] == ELFCLASS32)
		return vmm_err(-ENOEXEC, "ELF: 32-bit image; only ELF64 is supported");
	if (eh->e_ident[EI_CLASS] != ELFCLASS64)
		return vmm_err(-EINVAL, "ELF: bad class %u", eh->e_ident[EI_CLASS]);
	if (eh->e_ident[EI_DATA] == ELFDATA2MSB)
		return vmm_err(-ENOEXEC, "ELF: big-endian image; only little-endian is supported");
	if (eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return vmm_err(-EINVAL, "ELF: bad byte order %u", eh->e_ident[EI_DATA]);
	if (eh->e_ident[EI_VERSION] != EV_CURRENT || eh->e_version != EV_CURRENT)
		return vmm_err(-EINVAL, "ELF: bad version %u/%u", eh->e_ident[EI_VERSION],
			       eh->e_version);
	if (eh->e_ehsize != sizeof *eh)
		return vmm_err(-EINVAL, "ELF: header size %u, expected %zu", eh->e_ehsize, sizeof *eh);
	return 0;
}

/* The program header table lies inside the image. */
static int check_phdr_table(const Elf64_Ehdr *eh, size_t size)
{
	if (eh->e_phnum == PN_XNUM)
		return vmm_err(-EINVAL, "ELF: extended program header numbering is not supported");
	if (eh->e_phnum == 0)
		return 0;
	if (eh->e_phentsize != sizeof(Elf64_Phdr))
		return vmm_err(-EINVAL, "ELF: program header size %u, expected %zu", eh->e_phentsize,
			       sizeof(Elf64_Phdr));
	/* phnum < 2^16 and phentsize is 56: the product cannot overflow; the sum can. */
	uint64_t len = (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr);
	if (!in_image(eh->e_phoff, len, size))
		return vmm_err(-EINVAL, "ELF: program header table [%#" PRIx64 ", +%#" PRIx64
			       ") past end of image (size %#zx)", eh->e_phoff, len, size);
	return 0;
}

static void get_phdr(const uint8_t *img, const Elf64_Ehdr *eh, unsigned i, Elf64_Phdr *ph)
{
	memcpy(ph, img + eh->e_phoff + (uint64_t)i * sizeof *ph, sizeof *ph);
}

static int check_segment(const Elf64_Phdr *ph, unsigned i, size_t size, struct vmm_elf_segment *s)
{
	uint64_t end;
	if (!in_image(ph->p_offset, ph->p_filesz, size)) {
		if (vmm_add_overflows(ph->p_offset, ph->p_filesz, &end))
			return vmm_err(-EINVAL, "ELF: program header %u: file offset %#" PRIx64
				       " + size %#" PRIx64 " overflows", i, ph->p_offset, ph->p_filesz);
		return vmm_err(-EINVAL, "ELF: program header %u: file range [%#" PRIx64 ", %#" PRIx64
			       ") past end of image (size %#zx)", i, ph->p_offset, end, size);
	}
	if (ph->p_filesz > ph->p_memsz)
		return vmm_err(-EINVAL, "ELF: program header %u: file size %#" PRIx64
			       " larger than memory size %#" PRIx64, i, ph->p_filesz, ph->p_memsz);
	if (vmm_add_overflows(ph->p_paddr, ph->p_memsz, &end))
		return vmm_err(-EINVAL, "ELF: program header %u: address %#" PRIx64 " + size %#" PRIx64
			       " wraps around", i, ph->p_paddr, ph->p_memsz);
	*s = (struct vmm_elf_segment){ .paddr = ph->p_paddr, .memsz = ph->p_memsz,
				       .offset = ph->p_offset, .filesz = ph->p_filesz, .phdr = i };
	return 0;
}

static int check_overlaps(const struct vmm_elf_image *im)
{
	/* At most 64 segments: the quadratic check is cheaper than sorting a copy. */
	for (unsigned a = 0; a < im->nseg; a++) {
		for (unsigned b = a + 1; b < im->nseg; b++) {
			const struct vmm_elf_segment *x = &im->seg[a], *y = &im->seg[b];
			/* Both ends are known not to wrap. */
			if (x->paddr < y->paddr + y->memsz && y->paddr < x->paddr + x->memsz)
				return vmm_err(-EINVAL, "ELF: program headers %u and %u overlap in guest "
					       "memory ([%#" PRIx64 ", %#" PRIx64 ") and [%#" PRIx64
					       ", %#" PRIx64 "))", x->phdr, y->phdr, x->paddr,
					       x->paddr + x->memsz, y->paddr, y->paddr + y->memsz);
		}
	}
	return 0;
}

int vmm_elf_parse(const void *image, size_t size, struct vmm_elf_image *out)
{
	const uint8_t *img = image;
	Elf64_Ehdr *eh = &out->ehdr;
	int r;

	out->nseg = 0;
	if ((r = check_ident(img, size, eh)))
		return r;
	if (eh->e_machine != EM_X86_64)
		return vmm_err(-ENOEXEC, "ELF: machine %u is not x86_64 (%u)", eh->e_machine, EM_X86_64);
	/* ET_DYN (a PIE or a relocatable kernel) is loaded as is, at its p_paddr. */
	if (eh->e_type != ET_EXEC && eh->e_type != ET_DYN)
		return vmm_err(-ENOEXEC, "ELF: type %u is not an executable", eh->e_type);
	if ((r = check_phdr_table(eh, size)))
		return r;

	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		get_phdr(img, eh, i, &ph);
		if (ph.p_type == PT_INTERP)
			return vmm_err(-ENOEXEC, "ELF: program header %u: dynamically linked "
				       "(PT_INTERP); a guest image must be static", i);
		if (ph.p_type != PT_LOAD)
			continue;
		if (out->nseg == VMM_ELF_MAX_SEGMENTS)
			return vmm_err(-EINVAL, "ELF: more than %d PT_LOAD segments",
				       VMM_ELF_MAX_SEGMENTS);
		if ((r = check_segment(&ph, i, size, &out->seg[out->nseg])))
			return r;
		if (ph.p_memsz) /* an empty segment loads nothing and overlaps nothing */
			out->nseg++;
	}
	if (out->nseg == 0)
		return vmm_err(-EINVAL, "ELF: no loadable (non-empty PT_LOAD) segment");
	return check_overlaps(out);
}

/* ---- guest memory ---------------------------------------------------------------------- */

/* How much of [gpa, gpa + len) lies in the region that holds gpa (0: gpa is not in RAM).
 * Found by bisection on vmm_mem_translate, the one checked translation, so the loader
 * needs no other view of the memory map (at most 64 probes per region). */
static uint64_t region_prefix(vmm_mem *mem, uint64_t gpa, uint64_t len)
{
	void *host;
	if (vmm_mem_translate(mem, gpa, len, false, &host) == 0)
		return len;
	if (vmm_mem_translate(mem, gpa, 1, false, &host) != 0)
		return 0;
	uint64_t ok = 1, bad = len; /* invariant: translate(ok) works, translate(bad) fails */
	while (bad - ok > 1) {
		uint64_t mid = ok + (bad - ok) / 2;
		if (vmm_mem_translate(mem, gpa, mid, false, &host) == 0)
			ok = mid;
		else
			bad = mid;
	}
	return ok;
}

/* Copies src[0, filesz) to the segment and zeroes the rest; with src NULL, only checks
 * that the segment lies in writable guest RAM (possibly across adjacent regions). */
static int place_segment(vmm_mem *mem, const struct vmm_elf_segment *s, const uint8_t *src)
{
	uint64_t gpa = s->paddr, done = 0;
	while (done < s->memsz) {
		uint64_t n = region_prefix(mem, gpa, s->memsz - done);
		void *host;
		int r = n ? vmm_mem_translate(mem, gpa, n, true, &host) : -EFAULT;
		if (r == -EROFS)
			return vmm_err(r, "ELF: program header %u: [%#" PRIx64 ", %#" PRIx64
				       ") is in read-only guest memory", s->phdr, gpa, gpa + n);
		if (r)
			return vmm_err(-EFAULT, "ELF: program header %u: [%#" PRIx64 ", %#" PRIx64
				       ") is outside guest RAM (at %#" PRIx64 ")", s->phdr, s->paddr,
				       s->paddr + s->memsz, gpa);
		if (src) {
			uint64_t copy = done < s->filesz ? s->filesz - done : 0;
			if (copy > n)
				copy = n;
			memcpy(host, src + done, copy);
			memset((uint8_t *)host + copy, 0, n - copy);
		}
		gpa += n;
		done += n;
	}
	return 0;
}

int vmm_elf_load(vmm_mem *mem, const void *image, size_t size, vmm_elf_info *info)
{
	struct vmm_elf_image im;
	int r;

	if (!mem)
		return vmm_err(-EINVAL, "ELF: NULL memory map");
	if ((r = vmm_elf_parse(image, size, &im)))
		return r;
	for (unsigned i = 0; i < im.nseg; i++)
		if ((r = place_segment(mem, &im.seg[i], NULL)))
			return r;

	const uint8_t *img = image;
	uint64_t low = UINT64_MAX, high = 0;
	for (unsigned i = 0; i < im.nseg; i++) {
		const struct vmm_elf_segment *s = &im.seg[i];
		/* Only a concurrent change of the memory map could fail here, which the mem
		 * API forbids; the check stays so that such misuse is an error, not a crash. */
		if ((r = place_segment(mem, s, img + s->offset)))
			return r;
		if (s->paddr < low)
			low = s->paddr;
		if (s->paddr + s->memsz > high)
			high = s->paddr + s->memsz;
	}
	if (info)
		*info = (vmm_elf_info){ .entry = im.ehdr.e_entry, .low = low, .high = high,
					.segments = im.nseg };
	return 0;
}

/* ---- files ------------------------------------------------------------------------------ */

static int read_file(const char *path, uint8_t **out, size_t *out_len)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t len = 0, cap;
	int fd, r = 0;

	if (!path)
		return vmm_err(-EINVAL, "ELF: NULL path");
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return vmm_err(-errno, "ELF: cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		r = vmm_err(-errno, "ELF: cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		r = vmm_err(-EISDIR, "ELF: %s is a directory", path);
		goto out;
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > ELF_FILE_MAX) {
		r = vmm_err(-EFBIG, "ELF: %s is %lld bytes, more than the %" PRIu64 " limit", path,
			    (long long)st.st_size, ELF_FILE_MAX);
		goto out;
	}
	/* One byte more than the stat size, so EOF shows without a reallocation; files
	 * without a useful size (pipes, procfs) grow the buffer as they go. */
	cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 65536;
	if (!(buf = malloc(cap))) {
		r = vmm_err(-ENOMEM, "ELF: out of memory for %s (%zu bytes)", path, cap);
		goto out;
	}
	for (;;) {
		if (len > ELF_FILE_MAX) {
			r = vmm_err(-EFBIG, "ELF: %s is larger than %" PRIu64 " bytes", path,
				    ELF_FILE_MAX);
			goto out;
		}
		if (len == cap) {
			size_t ncap = cap > ELF_FILE_MAX / 2 ? ELF_FILE_MAX + 1 : cap * 2;
			uint8_t *nb = realloc(buf, ncap);
			if (!nb) {
				r = vmm_err(-ENOMEM, "ELF: out of memory reading %s", path);
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = vmm_err(-errno, "ELF: cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
out:
	close(fd);
	if (r) {
		free(buf);
		return r;
	}
	*out = buf;
	*out_len = len;
	return 0;
}

int vmm_elf_load_file(vmm_mem *mem, const char *path, vmm_elf_info *info)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	if (!mem)
		return vmm_err(-EINVAL, "ELF: NULL memory map");
	if ((r = read_file(path, &buf, &len)))
		return r;
	r = vmm_elf_load(mem, buf, len, info);
	if (r)
		vmm_err_append(" (file %s)", path);
	free(buf);
	return r;
}

/* ---- sections: symbols ------------------------------------------------------------------ */

static int get_shdr(const uint8_t *img, size_t size, const Elf64_Ehdr *eh, unsigned i, Elf64_Shdr *sh)
{
	if (i >= eh->e_shnum)
		return vmm_err(-EINVAL, "ELF: section index %u out of range (%u sections)", i,
			       eh->e_shnum);
	memcpy(sh, img + eh->e_shoff + (uint64_t)i * sizeof *sh, sizeof *sh);
	if (sh->sh_type != SHT_NOBITS && !in_image(sh->sh_offset, sh->sh_size, size))
		return vmm_err(-EINVAL, "ELF: section %u: file range [%#" PRIx64 ", +%#" PRIx64
			       ") past end of image (size %#zx)", i, sh->sh_offset, sh->sh_size, size);
	return 0;
}

int vmm_elf_symbol(const void *image, size_t size, const char *name, uint64_t *value)
{
	const uint8_t *img = image;
	Elf64_Ehdr eh;
	Elf64_Shdr symtab, strtab;
	int r;

	if (!name || !*name || !value)
		return vmm_err(-EINVAL, "ELF: symbol lookup needs a name and a result pointer");
	if ((r = check_ident(img, size, &eh)))
		return r;
	if (eh.e_shnum == 0) {
		if (eh.e_shoff != 0)
			return vmm_err(-EINVAL, "ELF: extended section numbering is not supported");
		return vmm_err(-ENOENT, "ELF: no section headers, so no symbol table");
	}
	if (eh.e_shentsize != sizeof(Elf64_Shdr))
		return vmm_err(-EINVAL, "ELF: section header size %u, expected %zu", eh.e_shentsize,
			       sizeof(Elf64_Shdr));
	if (!in_image(eh.e_shoff, (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr), size))
		return vmm_err(-EINVAL, "ELF: section header table at %#" PRIx64 " (%u entries) past "
			       "end of image (size %#zx)", eh.e_shoff, eh.e_shnum, size);

	unsigned i;
	for (i = 0; i < eh.e_shnum; i++) {
		memcpy(&symtab, img + eh.e_shoff + (uint64_t)i * sizeof symtab, sizeof symtab);
		if (symtab.sh_type == SHT_SYMTAB)
			break;
	}
	if (i == eh.e_shnum)
		return vmm_err(-ENOENT, "ELF: no symbol table (stripped image?)");
	if ((r = get_shdr(img, size, &eh, i, &symtab)))
		return r;
	if (symtab.sh_entsize != sizeof(Elf64_Sym) || symtab.sh_size % sizeof(Elf64_Sym))
		return vmm_err(-EINVAL, "ELF: symbol table entry size %#" PRIx64 " / size %#" PRIx64
			       " not a multiple of %zu", symtab.sh_entsize, symtab.sh_size,
			       sizeof(Elf64_Sym));
	if ((r = get_shdr(img, size, &eh, symtab.sh_link, &strtab)))
		return r;
	if (strtab.sh_type != SHT_STRTAB)
		return vmm_err(-EINVAL, "ELF: symbol table links to section %u, not a string table",
			       symtab.sh_link);
	/* With a terminated table every name is terminated, so strcmp stays inside it. */
	const char *str = (const char *)img + strtab.sh_offset;
	if (strtab.sh_size == 0 || str[strtab.sh_size - 1] != '\0')
		return vmm_err(-EINVAL, "ELF: string table (section %u) is empty or not "
			       "NUL-terminated", symtab.sh_link);

	uint64_t nsym = symtab.sh_size / sizeof(Elf64_Sym);
	for (uint64_t k = 1; k < nsym; k++) { /* entry 0 is the reserved null symbol */
		Elf64_Sym sym;
		memcpy(&sym, img + symtab.sh_offset + k * sizeof sym, sizeof sym);
		if (sym.st_name >= strtab.sh_size)
			return vmm_err(-EINVAL, "ELF: symbol %" PRIu64 ": name offset %u past string "
				       "table (size %#" PRIx64 ")", k, sym.st_name, strtab.sh_size);
		if (sym.st_shndx == SHN_UNDEF || strcmp(str + sym.st_name, name) != 0)
			continue;
		*value = sym.st_value;
		return 0;
	}
	return vmm_err(-ENOENT, "ELF: symbol %s not found", name);
}

/* ---- segments: notes -------------------------------------------------------------------- */

/* Searches one PT_NOTE segment [off, off + len), already known to lie in the image. */
static int find_note_in(const uint8_t *img, uint64_t off, uint64_t len, uint64_t align,
			const char *owner, uint32_t type, const void **desc, size_t *desc_len)
{
	size_t owner_len = strlen(owner) + 1;
	uint64_t pos = 0;

	while (len - pos >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		memcpy(&nh, img + off + pos, sizeof nh);
		pos += sizeof nh;
		/* 32-bit sizes rounded up in 64-bit arithmetic cannot overflow. */
		uint64_t name_sz = ((uint64_t)nh.n_namesz + align - 1) & ~(align - 1);
		uint64_t desc_sz = ((uint64_t)nh.n_descsz + align - 1) & ~(align - 1);
		if (name_sz > len - pos || nh.n_descsz > len - pos - name_sz)
			return vmm_err(-EINVAL, "ELF: note at %#" PRIx64 " runs past its segment",
				       off + pos - sizeof nh);
		const uint8_t *nm = img + off + pos;
		if (nh.n_type == type && nh.n_namesz == owner_len && memcmp(nm, owner, owner_len) == 0) {
			*desc = img + off + pos + name_sz;
			*desc_len = nh.n_descsz;
			return 0;
		}
		if (desc_sz > len - pos - name_sz)
			break; /* the last note's padding may be missing */
		pos += name_sz + desc_sz;
	}
	return -ENOENT;
}

int vmm_elf_find_note(const void *image, size_t size, const char *owner, uint32_t type,
		      const void **desc, size_t *desc_len)
{
	const uint8_t *img = image;
	Elf64_Ehdr eh;
	int r;

	if (!owner || !desc || !desc_len)
		return vmm_err(-EINVAL, "ELF: note lookup needs an owner and result pointers");
	if ((r = check_ident(img, size, &eh)) || (r = check_phdr_table(&eh, size)))
		return r;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		get_phdr(img, &eh, i, &ph);
		if (ph.p_type != PT_NOTE)
			continue;
		if (!in_image(ph.p_offset, ph.p_filesz, size))
			return vmm_err(-EINVAL, "ELF: program header %u: note range [%#" PRIx64
				       ", +%#" PRIx64 ") past end of image (size %#zx)", i,
				       ph.p_offset, ph.p_filesz, size);
		/* Notes are 4-byte aligned, except in segments aligned to 8 (GNU property). */
		r = find_note_in(img, ph.p_offset, ph.p_filesz, ph.p_align == 8 ? 8 : 4, owner, type,
				 desc, desc_len);
		if (r != -ENOENT)
			return r;
	}
	return vmm_err(-ENOENT, "ELF: no note %s/%u", owner, type);
}
