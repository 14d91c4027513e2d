/* Unit tests for the ELF64 loader: images assembled in memory, loaded into a standalone
 * memory map; every malformation must fail cleanly and leave guest memory untouched. */
#include <elf.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <libvmm/libvmm.h>
#include "boot/elf_internal.h"

/* Guest memory map used by every test:
 *   A [0x00000, 0x10000) and B [0x10000, 0x20000): adjacent regions
 *   C [0x100000, 0x110000)
 *   R [0x200000, 0x201000): read-only */
#define RAM_A 0x0ull
#define RAM_B 0x10000ull
#define RAM_C 0x100000ull
#define RAM_R 0x200000ull
#define POISON 0xa5

static vmm_mem *new_mem(void)
{
	vmm_mem *mem = NULL;
	assert_int_equal(vmm_mem_create(&mem), 0);
	static const struct { uint64_t gpa, len; uint32_t flags; } map[] = {
		{ RAM_A, 0x10000, 0 }, { RAM_B, 0x10000, 0 }, { RAM_C, 0x10000, 0 },
		{ RAM_R, 0x1000, VMM_MEM_READONLY },
	};
	for (unsigned i = 0; i < 4; i++) {
		vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
		o.gpa = map[i].gpa;
		o.len = map[i].len;
		o.flags = map[i].flags;
		o.backing = VMM_MEM_ANON;
		assert_int_equal(vmm_mem_add_region(mem, &o), 0);
	}
	/* poison the writable RAM so zero-fill and "nothing written" are visible */
	static uint8_t poison[0x10000];
	memset(poison, POISON, sizeof poison);
	assert_int_equal(vmm_mem_write(mem, RAM_A, poison, sizeof poison), 0);
	assert_int_equal(vmm_mem_write(mem, RAM_B, poison, sizeof poison), 0);
	assert_int_equal(vmm_mem_write(mem, RAM_C, poison, sizeof poison), 0);
	return mem;
}

/* Every byte of writable RAM still holds the poison. */
static void assert_untouched(vmm_mem *mem)
{
	static uint8_t buf[0x10000];
	static const uint64_t gpas[] = { RAM_A, RAM_B, RAM_C };
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(vmm_mem_read(mem, gpas[i], buf, sizeof buf), 0);
		for (size_t k = 0; k < sizeof buf; k++)
			if (buf[k] != POISON)
				fail_msg("guest byte %#llx changed by a failed load",
					 (unsigned long long)(gpas[i] + k));
	}
}

/* ---- image builder ---------------------------------------------------------------------- */

struct image {
	_Alignas(16) uint8_t b[32768];
	size_t size;
};

struct seg {
	uint32_t type;
	uint64_t paddr, memsz, filesz;
	uint8_t seed; /* file bytes are pattern(seed, k) */
};

static uint8_t pattern(uint8_t seed, uint64_t k)
{
	return (uint8_t)(seed + k * 7 + (k >> 8));
}

static Elf64_Ehdr *EH(struct image *im) { return (Elf64_Ehdr *)im->b; }
static Elf64_Phdr *PH(struct image *im, unsigned i) { return (Elf64_Phdr *)(im->b + sizeof(Elf64_Ehdr)) + i; }

static void init_ehdr(Elf64_Ehdr *eh, uint16_t type)
{
	memset(eh, 0, sizeof *eh);
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = type;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_ehsize = sizeof(Elf64_Ehdr);
}

/* ELF header, program headers, then each segment's file bytes in order. */
static void build(struct image *im, const struct seg *s, unsigned n, uint64_t entry)
{
	memset(im, 0, sizeof *im);
	init_ehdr(EH(im), ET_EXEC);
	EH(im)->e_entry = entry;
	EH(im)->e_phoff = sizeof(Elf64_Ehdr);
	EH(im)->e_phentsize = sizeof(Elf64_Phdr);
	EH(im)->e_phnum = (uint16_t)n;
	size_t off = sizeof(Elf64_Ehdr) + n * sizeof(Elf64_Phdr);
	for (unsigned i = 0; i < n; i++) {
		Elf64_Phdr *ph = PH(im, i);
		ph->p_type = s[i].type;
		ph->p_flags = PF_R | PF_X;
		ph->p_offset = off;
		ph->p_vaddr = 0xffffffff80000000ull + s[i].paddr;
		ph->p_paddr = s[i].paddr;
		ph->p_filesz = s[i].filesz;
		ph->p_memsz = s[i].memsz;
		ph->p_align = 0x1000;
		assert_true(off + s[i].filesz <= sizeof im->b);
		for (uint64_t k = 0; k < s[i].filesz; k++)
			im->b[off + k] = pattern(s[i].seed, k);
		off += s[i].filesz;
	}
	im->size = off;
}

static void assert_segment(vmm_mem *mem, const struct seg *s)
{
	uint8_t *buf = malloc(s->memsz);
	assert_non_null(buf);
	assert_int_equal(vmm_mem_read(mem, s->paddr, buf, s->memsz), 0);
	for (uint64_t k = 0; k < s->memsz; k++) {
		uint8_t want = k < s->filesz ? pattern(s->seed, k) : 0;
		if (buf[k] != want)
			fail_msg("guest byte %#llx: %#x, expected %#x", (unsigned long long)(s->paddr + k),
				 buf[k], want);
	}
	free(buf);
}

/* The standard valid image: code in A, data + bss in C, a note and a stack header. */
static const struct seg std_segs[] = {
	{ PT_LOAD, 0x1000, 0x180, 0x180, 1 },
	{ PT_NOTE, 0, 0, 0, 0 },
	{ PT_LOAD, RAM_C + 0x800, 0x3000, 0x40, 9 },
	{ PT_GNU_STACK, 0, 0, 0, 0 },
};

static void build_std(struct image *im)
{
	build(im, std_segs, 4, 0x1010);
}

/* Loads and expects failure `err` with nothing written and a message containing `what`. */
static void expect_fail(vmm_mem *mem, struct image *im, int err, const char *what)
{
	int r = vmm_elf_load(mem, im->b, im->size, NULL);
	if (r != err)
		fail_msg("vmm_elf_load: %d (%s), expected %d; message: %s", r, vmm_strerror(r), err,
			 vmm_last_error());
	if (what && !strstr(vmm_last_error(), what))
		fail_msg("message \"%s\" lacks \"%s\"", vmm_last_error(), what);
	assert_true(strncmp(vmm_last_error(), "ELF: ", 5) == 0);
}

/* ---- valid images ----------------------------------------------------------------------- */

static void test_load_valid(void **state)
{
	(void)state;
	vmm_mem *mem = new_mem();
	static struct image im;
	build_std(&im);
	vmm_elf_info info;
	memset(&info, 0xee, sizeof info);
	assert_int_equal(vmm_elf_load(mem, im.b, im.size, &info), 0);
	assert_int_equal(info.entry, 0x1010);
	assert_int_equal(info.low, 0x1000);
	assert_int_equal(info.high, RAM_C + 0x800 + 0x3000);
	assert_int_equal(info.segments, 2);
	assert_segment(mem, &std_segs[0]);
	assert_segment(mem, &std_segs[2]); /* includes the zeroed bss */
	/* bytes around the segments are untouched */
	uint8_t b[2];
	assert_int_equal(vmm_mem_read(mem, 0xfff, b, 1), 0);
	assert_int_equal(vmm_mem_read(mem, 0x1180, b + 1, 1), 0);
	assert_int_equal(b[0], POISON);
	assert_int_equal(b[1], POISON);
	assert_int_equal(vmm_mem_read(mem, RAM_C + 0x3800, b, 1), 0);
	assert_int_equal(b[0], POISON);
	/* info may be NULL; an unaligned image buffer is fine */
	static uint8_t shifted[sizeof im.b + 1];
	memcpy(shifted + 1, im.b, im.size);
	assert_int_equal(vmm_elf_load(mem, shifted + 1, im.size, NULL), 0);
	vmm_mem_destroy(mem);
}

static void test_load_across_regions(void **state)
{
	(void)state;
	vmm_mem *mem = new_mem();
	static struct image im;
	/* crosses from A into B, file bytes and bss on both sides */
	const struct seg s[] = {
		{ PT_LOAD, RAM_B - 0x300, 0x600, 0x400, 3 },
		{ PT_LOAD, RAM_B + 0x1000, 0x0, 0x0, 0 }, /* empty: ignored */
	};
	build(&im, s, 2, 0);
	vmm_elf_info info;
	assert_int_equal(vmm_elf_load(mem, im.b, im.size, &info), 0);
	assert_int_equal(info.segments, 1);
	assert_int_equal(info.low, RAM_B - 0x300);
	assert_int_equal(info.high, RAM_B + 0x300);
	assert_segment(mem, &s[0]);

	/* the whole of A and B in one segment */
	const struct seg big = { PT_LOAD, 0, 0x20000, 0x100, 5 };
	build(&im, &big, 1, 0);
	assert_int_equal(vmm_elf_load(mem, im.b, im.size, &info), 0);
	assert_segment(mem, &big);
	vmm_mem_destroy(mem);
}

static void test_load_dyn(void **state)
{
	(void)state;
	vmm_mem *mem = new_mem();
	static struct image im;
	const struct seg s = { PT_LOAD, 0x2000, 0x100, 0x80, 4 };
	build(&im, &s, 1, 0x2000);
	EH(&im)->e_type = ET_DYN;
	vmm_elf_info info;
	assert_int_equal(vmm_elf_load(mem, im.b, im.size, &info), 0);
	assert_int_equal(info.low, 0x2000);
	assert_segment(mem, &s);
	vmm_mem_destroy(mem);
}

static void test_max_segments(void **state)
{
	(void)state;
	vmm_mem *mem = new_mem();
	static struct image im;
	struct seg s[VMM_ELF_MAX_SEGMENTS + 1];
	for (unsigned i = 0; i <= VMM_ELF_MAX_SEGMENTS; i++)
		s[i] = (struct seg){ PT_LOAD, 0x100 * i, 0x80, 0x10, (uint8_t)i };
	build(&im, s, VMM_ELF_MAX_SEGMENTS, 0);
	vmm_elf_info info;
	assert_int_equal(vmm_elf_load(mem, im.b, im.size, &info), 0);
	assert_int_equal(info.segments, VMM_ELF_MAX_SEGMENTS);
	assert_segment(mem, &s[VMM_ELF_MAX_SEGMENTS - 1]);
	vmm_mem_destroy(mem);

	mem = new_mem();
	build(&im, s, VMM_ELF_MAX_SEGMENTS + 1, 0);
	expect_fail(mem, &im, -EINVAL, "more than 64");
	assert_untouched(mem);
	vmm_mem_destroy(mem);
}

/* ---- malformed images ------------------------------------------------------------------- */

static void test_truncated(void **state)
{
	(void)state;
	vmm_mem *mem = new_mem();
	static struct image im;
	build_std(&im);
	/* every prefix is invalid: the last byte of the image belongs to segment 2 */
	for (size_t n = 0; n < im.size; n++) {
		int r = vmm_elf_load(mem, im.b, n, NULL);
		if (r != -EINVAL)
			fail_msg("prefix of %zu bytes: %d (%s)", n, r, vmm_last_error());
	}
	assert_untouched(mem);
	assert_int_equal(vmm_elf_load(mem, NULL, 100, NULL), -EINVAL);
	assert_int_equal(vmm_elf_load(NULL, im.b, im.size, NULL), -EINVAL);
	vmm_mem_destroy(mem);
}

static void test_bad_ident(void **state)
{
	(void)state;
	vmm_mem *mem = new_mem();
	static struct image im;

	build_std(&im);
	im.b[EI_MAG1] = 'e';
	expect_fail(mem, &im, -EINVAL, "bad magic");
	build_std(&im);
	im.b[EI_CLASS] = ELFCLASS32;
	expect_fail(mem, &im, -ENOEXEC, "32-bit");
	build_std(&im);
	im.b[EI_CLASS] = 3;
	expect_fail(mem, &im, -EINVAL, "class");
	build_std(&im);
	im.b[EI_DATA] = ELFDATA2MSB;
	expect_fail(mem, &im, -ENOEXEC, "big-endian");
	build_std(&im);
	im.b[EI_DATA] = ELFDATANONE;
	expect_fail(mem, &im, -EINVAL, "byte order");
	build_std(&im);
	im.b[EI_VERSION] = 0;
	expect_fail(mem, &im, -EINVAL, "version");
	build_std(&im);
	EH(&im)->e_version = 2;
	expect_fail(mem, &im, -EINVAL, "version");
	build_std(&im);
	EH(&im)->e_machine = EM_386;
	expect_fail(mem, &im, -ENOEXEC, "machine");
	build_std(&im);
	EH(&im)->e_machine = EM_AARCH64;
	expect_fail(mem, &im, -ENOEXEC, "machine");
	build_std(&im);
	EH(&im)->e_type = ET_REL;
	expect_fail(mem, &im, -ENOEXEC, "type");
	build_std(&im);
	EH(&im)->e_type = ET_CORE;
	expect_fail(mem, &im, -ENOEXEC, "type");
	build_std(&im);
	EH(&im)->e_ehsize = 52;
	expect_fail(mem, &im, -EINVAL, "header size");
	assert_untouched(mem);
	vmm_mem_destroy(mem);
}

static void test_bad_phdr_table(void **state)
{
	(void)state;
	vmm_mem *mem = new_mem();
	static struct image im;

	build_std(&im);
	EH(&im)->e_phoff = im.size;
	expect_fail(mem, &im, -EINVAL, "program header table");
	build_std(&im);
	EH(&im)->e_phoff = im.size - 4 * sizeof(Elf64_Phdr) + 1;
	expect_fail(mem, &im, -EINVAL, "past end of image");
	build_std(&im);
	EH(&im)->e_phoff = UINT64_MAX - sizeof(Elf64_Phdr); /* offset + table size overflows */
	expect_fail(mem, &im, -EINVAL, "program header table");
	build_std(&im);
	EH(&im)->e_phnum = 0xfffe; /* 0xfffe * 56 bytes: far past the image */
	expect_fail(mem, &im, -EINVAL, "program header table");
	build_std(&im);
	EH(&im)->e_phnum = PN_XNUM;
	expect_fail(mem, &im, -EINVAL, "extended");
	build_std(&im);
	EH(&im)->e_phentsize = 32;
	expect_fail(mem, &im, -EINVAL, "program header size");
	build_std(&im);
	EH(&im)->e_phentsize = 64;
	expect_fail(mem, &im, -EINVAL, "program header size");
	build_std(&im);
	EH(&im)->e_phnum = 0;
	expect_fail(mem, &im, -EINVAL, "no loadable");
	/* only empty or non-load segments */
	const struct seg s[] = { { PT_LOAD, 0x1000, 0, 0, 0 }, { PT_NOTE, 0, 0, 0, 0 } };
	build(&im, s, 2, 0);
	expect_fail(mem, &im, -EINVAL, "no loadable");
	/* a dynamically linked program */
	build_std(&im);
	PH(&im, 1)->p_type = PT_INTERP;
	expect_fail(mem, &im, -ENOEXEC, "PT_INTERP");
	assert_untouched(mem);
	vmm_mem_destroy(mem);
}

static void test_bad_segments(void **state)
{
	(void)state;
	vmm_mem *mem = new_mem();
	static struct image im;

	/* file range past the end, and the message names the header and the range */
	build_std(&im);
	PH(&im, 2)->p_filesz += 1;
	PH(&im, 2)->p_memsz += 1;
	expect_fail(mem, &im, -EINVAL, "program header 2: file range");
	assert_non_null(strstr(vmm_last_error(), "past end of image"));
	build_std(&im);
	PH(&im, 0)->p_offset = im.size;
	expect_fail(mem, &im, -EINVAL, "program header 0: file range");
	/* offset + filesz overflows */
	build_std(&im);
	PH(&im, 0)->p_offset = UINT64_MAX - 0x10;
	expect_fail(mem, &im, -EINVAL, "overflows");
	build_std(&im);
	PH(&im, 2)->p_filesz = UINT64_MAX;
	PH(&im, 2)->p_memsz = UINT64_MAX;
	expect_fail(mem, &im, -EINVAL, "program header 2");
	/* filesz > memsz */
	build_std(&im);
	PH(&im, 0)->p_memsz = PH(&im, 0)->p_filesz - 1;
	expect_fail(mem, &im, -EINVAL, "larger than memory size");
	/* paddr + memsz wraps */
	build_std(&im);
	PH(&im, 2)->p_paddr = UINT64_MAX - 0x1000;
	expect_fail(mem, &im, -EINVAL, "wraps");
	build_std(&im);
	PH(&im, 2)->p_paddr = 1;
	PH(&im, 2)->p_memsz = UINT64_MAX;
	expect_fail(mem, &im, -EINVAL, "wraps");
	/* overlapping segments, in either order, touching is fine */
	build_std(&im);
	PH(&im, 2)->p_paddr = 0x1100;
	expect_fail(mem, &im, -EINVAL, "program headers 0 and 2 overlap");
	build_std(&im);
	PH(&im, 2)->p_paddr = 0x1000 - 0x800 + 1; /* its last byte is segment 0's first */
	PH(&im, 2)->p_memsz = 0x800;
	expect_fail(mem, &im, -EINVAL, "overlap");
	build_std(&im);
	PH(&im, 2)->p_paddr = 0x800; /* contains segment 0 */
	PH(&im, 2)->p_memsz = 0x1000;
	expect_fail(mem, &im, -EINVAL, "overlap");
	assert_untouched(mem);
	build_std(&im);
	PH(&im, 2)->p_paddr = 0x1180;
	assert_int_equal(vmm_elf_load(mem, im.b, im.size, NULL), 0);
	vmm_mem_destroy(mem);
}

static void test_outside_ram(void **state)
{
	(void)state;
	vmm_mem *mem = new_mem();
	static struct image im;

	/* segment 0 valid, segment 2 not: segment 0 must not be written either */
	build_std(&im);
	PH(&im, 2)->p_paddr = 0x50000; /* in the hole between B and C */
	expect_fail(mem, &im, -EFAULT, "program header 2");
	assert_non_null(strstr(vmm_last_error(), "outside guest RAM"));
	build_std(&im);
	PH(&im, 2)->p_paddr = 0x20000 - 0x100; /* runs off the end of B */
	expect_fail(mem, &im, -EFAULT, "outside guest RAM");
	build_std(&im);
	PH(&im, 2)->p_paddr = RAM_C + 0x10000 - 0x2000; /* bss runs off the end of C */
	expect_fail(mem, &im, -EFAULT, "outside guest RAM");
	build_std(&im);
	PH(&im, 2)->p_paddr = RAM_C - 0x10; /* starts just before C */
	expect_fail(mem, &im, -EFAULT, "outside guest RAM");
	build_std(&im);
	PH(&im, 2)->p_paddr = 0xffffffff00000000ull;
	expect_fail(mem, &im, -EFAULT, "outside guest RAM");
	/* read-only memory */
	build_std(&im);
	PH(&im, 2)->p_paddr = RAM_R;
	PH(&im, 2)->p_memsz = 0x100;
	expect_fail(mem, &im, -EROFS, "read-only");
	assert_untouched(mem);
	vmm_mem_destroy(mem);
}

/* ---- files ---------------------------------------------------------------------------- */

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void test_load_file(void **state)
{
	(void)state;
	vmm_mem *mem = new_mem();
	static struct image im;
	char dir[] = "/tmp/test_elf.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64], big[64];
	snprintf(path, sizeof path, "%s/guest", dir);
	snprintf(big, sizeof big, "%s/big", dir);

	build_std(&im);
	write_file(path, im.b, im.size);
	vmm_elf_info info;
	assert_int_equal(vmm_elf_load_file(mem, path, &info), 0);
	assert_int_equal(info.entry, 0x1010);
	assert_segment(mem, &std_segs[2]);

	/* a broken file names itself in the message */
	write_file(path, im.b, im.size - 1);
	assert_int_equal(vmm_elf_load_file(mem, path, &info), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), path));

	assert_int_equal(vmm_elf_load_file(mem, "/nonexistent/guest.elf", &info), -ENOENT);
	assert_non_null(strstr(vmm_last_error(), "/nonexistent/guest.elf"));
	assert_int_equal(vmm_elf_load_file(mem, dir, &info), -EISDIR);
	assert_int_equal(vmm_elf_load_file(mem, NULL, &info), -EINVAL);
	assert_int_equal(vmm_elf_load_file(NULL, path, &info), -EINVAL);

	/* a sparse file just over 1 GiB is refused before it is read */
	int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (1ll << 30) + 1), 0);
	close(fd);
	assert_int_equal(vmm_elf_load_file(mem, big, &info), -EFBIG);

	/* a file without a stat size (procfs) is read to its end: not an ELF */
	assert_int_equal(vmm_elf_load_file(mem, "/proc/self/status", &info), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "magic"));

	unlink(path);
	unlink(big);
	rmdir(dir);
	vmm_mem_destroy(mem);
}

/* ---- symbols -------------------------------------------------------------------------- */

/* An image with sections: [0] null, [1] .symtab, [2] .strtab. */
struct symimg {
	struct image im;
	size_t symtab_off, strtab_off, shdr_off;
};

static Elf64_Shdr *SH(struct symimg *s, unsigned i)
{
	return (Elf64_Shdr *)(s->im.b + s->shdr_off) + i;
}

static Elf64_Sym *SYM(struct symimg *s, unsigned i)
{
	return (Elf64_Sym *)(s->im.b + s->symtab_off) + i;
}

static const char strtab[] = "\0start\0data_buf\0undef_sym\0";

static void build_sym(struct symimg *s)
{
	memset(s, 0, sizeof *s);
	uint8_t *b = s->im.b;
	init_ehdr(EH(&s->im), ET_EXEC);
	const Elf64_Sym syms[] = {
		{ 0 },
		{ .st_name = 1, .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC), .st_shndx = 1, .st_value = 0x1234 },
		{ .st_name = 7, .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_OBJECT), .st_shndx = 1, .st_value = 0xffffffff81005678ull },
		{ .st_name = 16, .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_NOTYPE), .st_shndx = SHN_UNDEF },
	};
	size_t off = sizeof(Elf64_Ehdr);
	s->symtab_off = off;
	memcpy(b + off, syms, sizeof syms);
	off += sizeof syms;
	s->strtab_off = off;
	memcpy(b + off, strtab, sizeof strtab);
	off += (sizeof strtab + 7) & ~(size_t)7;
	s->shdr_off = off;
	Elf64_Shdr sh[3] = {
		{ 0 },
		{ .sh_type = SHT_SYMTAB, .sh_offset = s->symtab_off, .sh_size = sizeof syms,
		  .sh_link = 2, .sh_info = 1, .sh_entsize = sizeof(Elf64_Sym), .sh_addralign = 8 },
		{ .sh_type = SHT_STRTAB, .sh_offset = s->strtab_off, .sh_size = sizeof strtab, .sh_addralign = 1 },
	};
	memcpy(b + off, sh, sizeof sh);
	off += sizeof sh;
	EH(&s->im)->e_shoff = s->shdr_off;
	EH(&s->im)->e_shentsize = sizeof(Elf64_Shdr);
	EH(&s->im)->e_shnum = 3;
	s->im.size = off;
}

static void expect_sym(struct symimg *s, const char *name, int err, uint64_t want)
{
	uint64_t v = 0xdead;
	int r = vmm_elf_symbol(s->im.b, s->im.size, name, &v);
	if (r != err)
		fail_msg("symbol %s: %d, expected %d (%s)", name, r, err, vmm_last_error());
	if (!err)
		assert_int_equal(v, want);
}

static void test_symbols(void **state)
{
	(void)state;
	static struct symimg s;
	uint64_t v;

	build_sym(&s);
	expect_sym(&s, "start", 0, 0x1234);
	expect_sym(&s, "data_buf", 0, 0xffffffff81005678ull);
	expect_sym(&s, "undef_sym", -ENOENT, 0);
	expect_sym(&s, "star", -ENOENT, 0);
	expect_sym(&s, "starts", -ENOENT, 0);
	expect_sym(&s, "", -EINVAL, 0);
	assert_int_equal(vmm_elf_symbol(s.im.b, s.im.size, NULL, &v), -EINVAL);
	assert_int_equal(vmm_elf_symbol(s.im.b, s.im.size, "start", NULL), -EINVAL);
	assert_int_equal(vmm_elf_symbol(NULL, 100, "start", &v), -EINVAL);

	/* every truncation fails cleanly (the section headers are at the end) */
	for (size_t n = 0; n < s.im.size; n++) {
		int r = vmm_elf_symbol(s.im.b, n, "data_buf", &v);
		if (r != -EINVAL)
			fail_msg("prefix of %zu bytes: %d (%s)", n, r, vmm_last_error());
	}

	build_sym(&s);
	EH(&s.im)->e_shoff = s.im.size - 1;
	expect_sym(&s, "start", -EINVAL, 0);
	build_sym(&s);
	EH(&s.im)->e_shoff = UINT64_MAX - 8;
	expect_sym(&s, "start", -EINVAL, 0);
	build_sym(&s);
	EH(&s.im)->e_shentsize = 40;
	expect_sym(&s, "start", -EINVAL, 0);
	build_sym(&s);
	EH(&s.im)->e_shnum = 0; /* no sections */
	EH(&s.im)->e_shoff = 0;
	expect_sym(&s, "start", -ENOENT, 0);
	build_sym(&s);
	EH(&s.im)->e_shnum = 0; /* extended numbering */
	expect_sym(&s, "start", -EINVAL, 0);
	build_sym(&s);
	SH(&s, 1)->sh_type = SHT_PROGBITS; /* stripped */
	expect_sym(&s, "start", -ENOENT, 0);
	assert_non_null(strstr(vmm_last_error(), "no symbol table"));
	/* symtab / strtab contents outside the image */
	build_sym(&s);
	SH(&s, 1)->sh_offset = s.im.size;
	expect_sym(&s, "start", -EINVAL, 0);
	build_sym(&s);
	SH(&s, 1)->sh_size = UINT64_MAX - 23;
	expect_sym(&s, "start", -EINVAL, 0);
	build_sym(&s);
	SH(&s, 2)->sh_offset = UINT64_MAX;
	expect_sym(&s, "start", -EINVAL, 0);
	build_sym(&s);
	SH(&s, 2)->sh_size = s.im.size;
	expect_sym(&s, "start", -EINVAL, 0);
	/* bad entry size */
	build_sym(&s);
	SH(&s, 1)->sh_entsize = 16;
	expect_sym(&s, "start", -EINVAL, 0);
	build_sym(&s);
	SH(&s, 1)->sh_size -= 1;
	expect_sym(&s, "start", -EINVAL, 0);
	/* bad string table link */
	build_sym(&s);
	SH(&s, 1)->sh_link = 3;
	expect_sym(&s, "start", -EINVAL, 0);
	build_sym(&s);
	SH(&s, 1)->sh_link = 0xffffffff;
	expect_sym(&s, "start", -EINVAL, 0);
	build_sym(&s);
	SH(&s, 1)->sh_link = 1; /* links to itself: not a string table */
	expect_sym(&s, "start", -EINVAL, 0);
	/* name offset past the string table */
	build_sym(&s);
	SYM(&s, 1)->st_name = sizeof strtab;
	expect_sym(&s, "data_buf", -EINVAL, 0);
	build_sym(&s);
	SYM(&s, 1)->st_name = 0xffffffff;
	expect_sym(&s, "data_buf", -EINVAL, 0);
	/* unterminated names: a string table without its final NUL */
	build_sym(&s);
	SH(&s, 2)->sh_size = 15; /* ends inside "data_buf" */
	expect_sym(&s, "data_buf", -EINVAL, 0);
	assert_non_null(strstr(vmm_last_error(), "NUL"));
	build_sym(&s);
	SH(&s, 2)->sh_size = 0;
	expect_sym(&s, "start", -EINVAL, 0);
	build_sym(&s);
	s.im.b[s.strtab_off + sizeof strtab - 1] = 'x';
	expect_sym(&s, "undef_sym", -EINVAL, 0);
}

static void test_symbol_self(void **state)
{
	(void)state;
	/* a real image from the toolchain: this test program (PIE, so main's value is its
	 * offset from the load address: nonzero) */
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *buf = malloc((size_t)st.st_size);
	assert_non_null(buf);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
	close(fd);
	uint64_t v = 0, v2 = 0;
	assert_int_equal(vmm_elf_symbol(buf, got, "main", &v), 0);
	assert_true(v != 0);
	assert_int_equal(vmm_elf_symbol(buf, got, "test_symbol_self", &v2), 0);
	assert_true(v2 != 0 && v2 != v);
	assert_int_equal(vmm_elf_symbol(buf, got, "no_such_symbol_here", &v), -ENOENT);
	/* and loading it as a guest is refused cleanly (dynamically linked, at 0) */
	vmm_mem *mem = new_mem();
	assert_true(vmm_elf_load(mem, buf, got, NULL) < 0);
	assert_untouched(mem);
	vmm_mem_destroy(mem);
	free(buf);
}

/* ---- notes --------------------------------------------------------------------------- */

static void test_notes(void **state)
{
	(void)state;
	static struct image im;
	const struct seg s[] = { { PT_LOAD, 0x1000, 0x100, 0x10, 1 }, { PT_NOTE, 0, 0, 0, 0 } };
	build(&im, s, 2, 0);
	/* two notes: GNU/3 (build id, 5-byte desc padded to 8), Xen/18 (4-byte entry) */
	size_t off = im.size;
	const uint8_t notes[] = {
		4, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 'G', 'N', 'U', 0, 1, 2, 3, 4, 5, 0, 0, 0,
		4, 0, 0, 0, 4, 0, 0, 0, 18, 0, 0, 0, 'X', 'e', 'n', 0, 0x00, 0x10, 0x00, 0x01,
	};
	memcpy(im.b + off, notes, sizeof notes);
	PH(&im, 1)->p_offset = off;
	PH(&im, 1)->p_filesz = sizeof notes;
	PH(&im, 1)->p_align = 4;
	im.size += sizeof notes;

	const void *desc;
	size_t len;
	assert_int_equal(vmm_elf_find_note(im.b, im.size, "Xen", 18, &desc, &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(desc, "\x00\x10\x00\x01", 4);
	assert_int_equal(vmm_elf_find_note(im.b, im.size, "GNU", 3, &desc, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(desc, "\x01\x02\x03\x04\x05", 5);
	assert_int_equal(vmm_elf_find_note(im.b, im.size, "Xen", 17, &desc, &len), -ENOENT);
	assert_int_equal(vmm_elf_find_note(im.b, im.size, "Xe", 18, &desc, &len), -ENOENT);
	assert_int_equal(vmm_elf_find_note(im.b, im.size, "Xen", 18, NULL, &len), -EINVAL);

	/* a note whose descriptor runs past its segment */
	PH(&im, 1)->p_filesz = sizeof notes - 1;
	assert_int_equal(vmm_elf_find_note(im.b, im.size, "Xen", 18, &desc, &len), -EINVAL);
	PH(&im, 1)->p_filesz = sizeof notes;
	im.b[off + 24 + 4] = 0xff; /* Xen desc size 0xff */
	assert_int_equal(vmm_elf_find_note(im.b, im.size, "Xen", 18, &desc, &len), -EINVAL);
	im.b[off + 24 + 4] = 4;
	memset(im.b + off + 24, 0xff, 4); /* Xen name size 0xffffffff */
	assert_int_equal(vmm_elf_find_note(im.b, im.size, "Xen", 18, &desc, &len), -EINVAL);
	/* the segment itself past the image */
	memcpy(im.b + off, notes, sizeof notes);
	PH(&im, 1)->p_offset = UINT64_MAX - 2;
	assert_int_equal(vmm_elf_find_note(im.b, im.size, "Xen", 18, &desc, &len), -EINVAL);
	PH(&im, 1)->p_offset = off;
	for (size_t n = 0; n < im.size; n++)
		assert_true(vmm_elf_find_note(im.b, n, "Xen", 18, &desc, &len) < 0);
	assert_int_equal(vmm_elf_find_note(im.b, im.size, "Xen", 18, &desc, &len), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_valid),
		cmocka_unit_test(test_load_across_regions),
		cmocka_unit_test(test_load_dyn),
		cmocka_unit_test(test_max_segments),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bad_ident),
		cmocka_unit_test(test_bad_phdr_table),
		cmocka_unit_test(test_bad_segments),
		cmocka_unit_test(test_outside_ram),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_symbols),
		cmocka_unit_test(test_symbol_self),
		cmocka_unit_test(test_notes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
