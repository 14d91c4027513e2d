/* CPUID tables: editing, ordering, sub-leaf rules, filter semantics, named features
 * with dependencies, and (with /dev/kvm) the default table. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <libvmm/libvmm.h>

#include "internal.h"

#define SIG VMM_CPUID_SIGNIFICANT_INDEX

static vmm_cpuid_entry ent(uint32_t function, uint32_t index, uint32_t flags, uint32_t v)
{
	vmm_cpuid_entry e = { function, index, flags, v, v + 1, v + 2, v + 3 };
	return e;
}

static vmm_cpuid *new_table(void)
{
	vmm_cpuid *c = NULL;
	assert_int_equal(vmm_cpuid_create(&c), 0);
	assert_non_null(c);
	assert_int_equal(vmm_cpuid_count(c), 0);
	return c;
}

static void test_set_get_replace(void **state)
{
	(void)state;
	vmm_cpuid *c = new_table();
	vmm_cpuid_entry e = ent(1, 0, 0, 100), out;

	assert_int_equal(vmm_cpuid_get(c, 1, 0, &out), -ENOENT);
	assert_int_equal(vmm_cpuid_set(c, &e), 0);
	assert_int_equal(vmm_cpuid_count(c), 1);
	assert_int_equal(vmm_cpuid_get(c, 1, 0, &out), 0);
	assert_memory_equal(&out, &e, sizeof e);

	/* Replacing keeps one entry. */
	e.ecx = 0xdeadbeef;
	assert_int_equal(vmm_cpuid_set(c, &e), 0);
	assert_int_equal(vmm_cpuid_count(c), 1);
	assert_int_equal(vmm_cpuid_get(c, 1, 0, &out), 0);
	assert_int_equal(out.ecx, 0xdeadbeef);

	/* Absent leaves. */
	assert_int_equal(vmm_cpuid_get(c, 2, 0, &out), -ENOENT);
	assert_int_equal(vmm_cpuid_get(c, 0, 0, &out), -ENOENT);
	assert_int_equal(vmm_cpuid_update(c, 2, 0, VMM_CPUID_EAX, 0, 1), -ENOENT);
	assert_int_equal(vmm_cpuid_remove(c, 2, 0), -ENOENT);
	assert_int_equal(vmm_cpuid_entry_at(c, 1, &out), -ENOENT);

	/* Unknown flags are refused rather than silently dropped. */
	vmm_cpuid_entry bad = ent(3, 0, 0x4, 0);
	assert_int_equal(vmm_cpuid_set(c, &bad), -EINVAL);
	assert_int_equal(vmm_cpuid_count(c), 1);
	vmm_cpuid_destroy(c);
	vmm_cpuid_destroy(NULL);
}

static void test_ordering(void **state)
{
	(void)state;
	vmm_cpuid *c = new_table();
	/* Inserted out of order; functions near 0, 0x4000_0000, 0x8000_0000, 0xffff_ffff
	 * to catch signed comparisons. */
	const uint32_t fn[] = { 0x80000008u, 7, 0, 0xffffffffu, 0x40000001u, 0xd, 1, 0x40000000u };
	for (size_t i = 0; i < sizeof fn / sizeof fn[0]; i++) {
		vmm_cpuid_entry e = ent(fn[i], 0, 0, fn[i]);
		assert_int_equal(vmm_cpuid_set(c, &e), 0);
	}
	vmm_cpuid_entry s[] = { ent(7, 2, SIG, 72), ent(7, 0, SIG, 70), ent(7, 1, SIG, 71) };
	assert_int_equal(vmm_cpuid_remove(c, 7, 0), 0); /* 7 becomes indexed */
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(vmm_cpuid_set(c, &s[i]), 0);

	const uint32_t want_fn[] = { 0, 1, 7, 7, 7, 0xd, 0x40000000u, 0x40000001u, 0x80000008u, 0xffffffffu };
	const uint32_t want_ix[] = { 0, 0, 0, 1, 2, 0, 0, 0, 0, 0 };
	assert_int_equal(vmm_cpuid_count(c), 10);
	for (size_t i = 0; i < 10; i++) {
		vmm_cpuid_entry out;
		assert_int_equal(vmm_cpuid_entry_at(c, i, &out), 0);
		assert_int_equal(out.function, want_fn[i]);
		assert_int_equal(out.index, want_ix[i]);
	}
	/* vmm_cpuid_entries sees the same sorted array. */
	size_t n = 0;
	const vmm_cpuid_entry *arr = vmm_cpuid_entries(c, &n);
	assert_int_equal(n, 10);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(arr[i].function, want_fn[i]);

	/* Remove from the middle keeps order. */
	assert_int_equal(vmm_cpuid_remove(c, 7, 1), 0);
	assert_int_equal(vmm_cpuid_count(c), 9);
	vmm_cpuid_entry out;
	assert_int_equal(vmm_cpuid_entry_at(c, 3, &out), 0);
	assert_int_equal(out.function, 7);
	assert_int_equal(out.index, 2);
	assert_int_equal(out.eax, 72);
	vmm_cpuid_destroy(c);
}

static void test_significant_index(void **state)
{
	(void)state;
	vmm_cpuid *c = new_table();
	vmm_cpuid_entry out;

	/* A plain leaf answers every sub-leaf, and is stored at index 0 whatever the
	 * caller put in index. */
	vmm_cpuid_entry plain = ent(1, 9, 0, 10);
	assert_int_equal(vmm_cpuid_set(c, &plain), 0);
	assert_int_equal(vmm_cpuid_get(c, 1, 0, &out), 0);
	assert_int_equal(out.index, 0);
	assert_int_equal(out.eax, 10);
	assert_int_equal(vmm_cpuid_get(c, 1, 12345, &out), 0);
	assert_int_equal(out.eax, 10);
	assert_int_equal(vmm_cpuid_update(c, 1, 77, VMM_CPUID_EDX, 0xffffffffu, 5), 0);
	assert_int_equal(vmm_cpuid_get(c, 1, 0, &out), 0);
	assert_int_equal(out.edx, 5);

	/* An indexed leaf only answers its sub-leaves. */
	vmm_cpuid_entry s0 = ent(0xd, 0, SIG, 20), s1 = ent(0xd, 1, SIG, 21);
	assert_int_equal(vmm_cpuid_set(c, &s1), 0);
	assert_int_equal(vmm_cpuid_set(c, &s0), 0);
	assert_int_equal(vmm_cpuid_get(c, 0xd, 1, &out), 0);
	assert_int_equal(out.eax, 21);
	assert_int_equal(out.flags, SIG);
	assert_int_equal(vmm_cpuid_get(c, 0xd, 0, &out), 0);
	assert_int_equal(out.eax, 20);
	assert_int_equal(vmm_cpuid_get(c, 0xd, 2, &out), -ENOENT);
	assert_int_equal(vmm_cpuid_update(c, 0xd, 2, VMM_CPUID_EAX, 0, 1), -ENOENT);
	assert_int_equal(vmm_cpuid_remove(c, 0xd, 2), -ENOENT);

	/* Mixing plain and indexed entries in one leaf is refused, both ways, and leaves
	 * the table untouched. */
	vmm_cpuid_entry plain_d = ent(0xd, 0, 0, 99), idx_1 = ent(1, 1, SIG, 99);
	assert_int_equal(vmm_cpuid_set(c, &plain_d), -EINVAL);
	assert_int_equal(vmm_cpuid_set(c, &idx_1), -EINVAL);
	assert_int_equal(vmm_cpuid_count(c), 3);
	assert_int_equal(vmm_cpuid_get(c, 0xd, 0, &out), 0);
	assert_int_equal(out.eax, 20);
	assert_int_equal(vmm_cpuid_get(c, 1, 1, &out), 0);
	assert_int_equal(out.eax, 10);

	/* Removing a plain leaf by any index removes it; then it may become indexed. */
	assert_int_equal(vmm_cpuid_remove(c, 1, 3), 0);
	assert_int_equal(vmm_cpuid_get(c, 1, 0, &out), -ENOENT);
	assert_int_equal(vmm_cpuid_set(c, &idx_1), 0);
	assert_int_equal(vmm_cpuid_get(c, 1, 1, &out), 0);
	assert_int_equal(vmm_cpuid_get(c, 1, 0, &out), -ENOENT);
	vmm_cpuid_destroy(c);
}

static void test_update(void **state)
{
	(void)state;
	vmm_cpuid *c = new_table();
	vmm_cpuid_entry e = { 7, 0, SIG, 0xf0f0f0f0u, 0x11111111u, 0x22222222u, 0x33333333u }, out;
	assert_int_equal(vmm_cpuid_set(c, &e), 0);
	/* clear applies before set; other registers untouched */
	assert_int_equal(vmm_cpuid_update(c, 7, 0, VMM_CPUID_EAX, 0xff0000ffu, 0x0000000fu), 0);
	assert_int_equal(vmm_cpuid_update(c, 7, 0, VMM_CPUID_ECX, 0x2u, 0x2u), 0);
	assert_int_equal(vmm_cpuid_get(c, 7, 0, &out), 0);
	assert_int_equal(out.eax, 0x00f0f00fu);
	assert_int_equal(out.ebx, 0x11111111u);
	assert_int_equal(out.ecx, 0x22222222u);
	assert_int_equal(out.edx, 0x33333333u);
	assert_int_equal(vmm_cpuid_update(c, 7, 0, VMM_CPUID_EBX, 0xffffffffu, 0), 0);
	assert_int_equal(vmm_cpuid_update(c, 7, 0, VMM_CPUID_EDX, 0, 0xcc000000u), 0);
	assert_int_equal(vmm_cpuid_get(c, 7, 0, &out), 0);
	assert_int_equal(out.ebx, 0);
	assert_int_equal(out.edx, 0xff333333u);
	assert_int_equal(vmm_cpuid_update(c, 7, 0, (vmm_cpuid_reg)4, 0, 1), -EINVAL);
	vmm_cpuid_destroy(c);
}

static void test_full_table(void **state)
{
	(void)state;
	vmm_cpuid *c = new_table();
	/* Fill in descending order (every insert goes to the front). */
	for (uint32_t i = VMM_CPUID_MAX_ENTRIES; i > 0; i--) {
		vmm_cpuid_entry e = ent(0x100, i - 1, SIG, i - 1);
		assert_int_equal(vmm_cpuid_set(c, &e), 0);
	}
	assert_int_equal(vmm_cpuid_count(c), VMM_CPUID_MAX_ENTRIES);
	vmm_cpuid_entry extra = ent(0x100, VMM_CPUID_MAX_ENTRIES, SIG, 0), out;
	assert_int_equal(vmm_cpuid_set(c, &extra), -ENOSPC);
	assert_true(strlen(vmm_last_error()) > 0);
	extra = ent(0, 0, 0, 0);
	assert_int_equal(vmm_cpuid_set(c, &extra), -ENOSPC);
	assert_int_equal(vmm_cpuid_count(c), VMM_CPUID_MAX_ENTRIES);
	/* Replacing an entry of a full table still works. */
	vmm_cpuid_entry repl = ent(0x100, 17, SIG, 0xabc);
	assert_int_equal(vmm_cpuid_set(c, &repl), 0);
	for (size_t i = 0; i < VMM_CPUID_MAX_ENTRIES; i++) {
		assert_int_equal(vmm_cpuid_entry_at(c, i, &out), 0);
		assert_int_equal(out.index, i);
		assert_int_equal(out.eax, i == 17 ? 0xabc : i);
	}
	/* After a remove there is room again. */
	assert_int_equal(vmm_cpuid_remove(c, 0x100, 200), 0);
	extra = ent(0x100, VMM_CPUID_MAX_ENTRIES, SIG, 0);
	assert_int_equal(vmm_cpuid_set(c, &extra), 0);
	assert_int_equal(vmm_cpuid_entry_at(c, VMM_CPUID_MAX_ENTRIES - 1, &out), 0);
	assert_int_equal(out.index, VMM_CPUID_MAX_ENTRIES);
	vmm_cpuid_destroy(c);
}

static void test_clone(void **state)
{
	(void)state;
	vmm_cpuid *c = new_table(), *d = NULL;
	vmm_cpuid_entry a = ent(1, 0, 0, 1), b = ent(7, 0, SIG, 7), out;
	assert_int_equal(vmm_cpuid_set(c, &a), 0);
	assert_int_equal(vmm_cpuid_set(c, &b), 0);
	assert_int_equal(vmm_cpuid_clone(&d, c), 0);
	assert_int_equal(vmm_cpuid_count(d), 2);
	/* Independent copies. */
	assert_int_equal(vmm_cpuid_update(d, 1, 0, VMM_CPUID_EAX, 0xffffffffu, 42), 0);
	assert_int_equal(vmm_cpuid_remove(d, 7, 0), 0);
	assert_int_equal(vmm_cpuid_get(c, 1, 0, &out), 0);
	assert_int_equal(out.eax, 1);
	assert_int_equal(vmm_cpuid_count(c), 2);
	assert_int_equal(vmm_cpuid_get(d, 1, 0, &out), 0);
	assert_int_equal(out.eax, 42);
	vmm_cpuid_destroy(c);
	vmm_cpuid_destroy(d);
}

struct filter_log {
	size_t calls;
	uint32_t seen_fn[8];
	size_t stop_at; /* call number that returns non-zero; 0 = never */
};

/* Sets EAX to the call number and tries to move the entry elsewhere. */
static int vandal(void *opaque, vmm_cpuid_entry *e)
{
	struct filter_log *log = opaque;
	log->seen_fn[log->calls] = e->function;
	log->calls++;
	e->eax = (uint32_t)log->calls;
	e->ebx ^= 0xffffffffu;
	e->function = 0x1234;
	e->index = 99;
	e->flags ^= SIG;
	return log->calls == log->stop_at ? -77 : 0;
}

static void test_filter(void **state)
{
	(void)state;
	vmm_cpuid *c = new_table();
	vmm_cpuid_entry in[] = { ent(0x80000001u, 0, 0, 0), ent(1, 0, 0, 0), ent(7, 1, SIG, 0),
				 ent(7, 0, SIG, 0) };
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(vmm_cpuid_set(c, &in[i]), 0);

	struct filter_log log = { 0 };
	assert_int_equal(vmm_cpuid_filter(c, vandal, &log), 0);
	assert_int_equal(log.calls, 4);
	/* Called in table order. */
	assert_int_equal(log.seen_fn[0], 1);
	assert_int_equal(log.seen_fn[1], 7);
	assert_int_equal(log.seen_fn[2], 7);
	assert_int_equal(log.seen_fn[3], 0x80000001u);
	/* Registers changed, identity (function, index, flags) restored. */
	const uint32_t fn[] = { 1, 7, 7, 0x80000001u }, ix[] = { 0, 0, 1, 0 }, fl[] = { 0, SIG, SIG, 0 };
	for (size_t i = 0; i < 4; i++) {
		vmm_cpuid_entry out;
		assert_int_equal(vmm_cpuid_entry_at(c, i, &out), 0);
		assert_int_equal(out.function, fn[i]);
		assert_int_equal(out.index, ix[i]);
		assert_int_equal(out.flags, fl[i]);
		assert_int_equal(out.eax, i + 1);
		assert_int_equal(out.ebx, ~1u); /* ent() put v + 1 = 1 there */
	}
	assert_int_equal(vmm_cpuid_get(c, 0x1234, 99, &(vmm_cpuid_entry){ 0 }), -ENOENT);

	/* A non-zero return stops the walk and is returned; that call's edit is kept. */
	struct filter_log stop = { .stop_at = 2 };
	assert_int_equal(vmm_cpuid_filter(c, vandal, &stop), -77);
	assert_int_equal(stop.calls, 2);
	vmm_cpuid_entry out;
	assert_int_equal(vmm_cpuid_entry_at(c, 1, &out), 0);
	assert_int_equal(out.eax, 2);
	assert_int_equal(out.ebx, 1);
	assert_int_equal(vmm_cpuid_entry_at(c, 2, &out), 0);
	assert_int_equal(out.ebx, ~1u); /* not visited the second time */

	assert_int_equal(vmm_cpuid_filter(c, NULL, NULL), -EINVAL);
	vmm_cpuid_destroy(c);
}

/* ---- named features ---- */

struct bit {
	uint32_t leaf, sub;
	int reg; /* a vmm_cpuid_reg */
	unsigned bit;
};

/* A table with every bit set in the leaves the feature table uses, plus two leaves no
 * feature touches (to check they stay untouched). */
static vmm_cpuid *all_ones(void)
{
	vmm_cpuid *c = new_table();
	const vmm_cpuid_entry es[] = {
		{ 1, 0, 0, ~0u, ~0u, ~0u, ~0u },
		{ 6, 0, 0, ~0u, ~0u, ~0u, ~0u },
		{ 7, 0, SIG, ~0u, ~0u, ~0u, ~0u },
		{ 7, 1, SIG, ~0u, ~0u, ~0u, ~0u },
		{ 0xd, 0, SIG, ~0u, ~0u, ~0u, ~0u },
		{ 0xd, 1, SIG, ~0u, ~0u, ~0u, ~0u },
		{ 0xd, 2, SIG, ~0u, ~0u, ~0u, ~0u },
		{ 0x80000001u, 0, 0, ~0u, ~0u, ~0u, ~0u },
	};
	for (size_t i = 0; i < sizeof es / sizeof es[0]; i++)
		assert_int_equal(vmm_cpuid_set(c, &es[i]), 0);
	return c;
}

static uint32_t reg_val(const vmm_cpuid_entry *e, vmm_cpuid_reg r)
{
	const uint32_t v[] = { e->eax, e->ebx, e->ecx, e->edx };
	return v[r];
}

/* Checks that exactly the listed bits are clear in a table that was all ones. */
static void expect_cleared(const vmm_cpuid *c, const struct bit *bits, size_t n)
{
	for (size_t i = 0; i < vmm_cpuid_count(c); i++) {
		vmm_cpuid_entry e;
		assert_int_equal(vmm_cpuid_entry_at(c, i, &e), 0);
		for (int r = 0; r < 4; r++) {
			uint32_t want = ~0u;
			for (size_t k = 0; k < n; k++)
				if (bits[k].leaf == e.function && bits[k].sub == e.index && bits[k].reg == r)
					want &= ~(1u << bits[k].bit);
			if (reg_val(&e, (vmm_cpuid_reg)r) != want)
				fail_msg("leaf 0x%x.%u reg %d: got 0x%08x want 0x%08x", e.function, e.index, r,
					 reg_val(&e, (vmm_cpuid_reg)r), want);
		}
	}
}

enum { A = VMM_CPUID_EAX, B = VMM_CPUID_EBX, C = VMM_CPUID_ECX, D = VMM_CPUID_EDX };

/* What hiding AVX takes away: AVX itself, everything VEX/EVEX-encoded built on it, and
 * the YMM/AVX-512 state components in XCR0 (leaf 0xD.0 EAX). */
#define AVX_FAMILY                                                                                 \
	{ 1, 0, C, 28 } /* avx */, { 1, 0, C, 12 } /* fma */, { 1, 0, C, 29 } /* f16c */,           \
	{ 7, 0, B, 5 } /* avx2 */, { 7, 0, C, 9 } /* vaes */, { 7, 0, C, 10 } /* vpclmulqdq */,     \
	{ 7, 1, A, 4 } /* avx_vnni */, { 0x80000001u, 0, C, 11 } /* xop */,                         \
	{ 0x80000001u, 0, C, 16 } /* fma4 */, { 7, 0, B, 16 } /* avx512f */,                        \
	{ 7, 0, B, 17 } /* avx512dq */, { 7, 0, B, 21 } /* avx512ifma */, { 7, 0, B, 26 } /* pf */, \
	{ 7, 0, B, 27 } /* er */, { 7, 0, B, 28 } /* cd */, { 7, 0, B, 30 } /* bw */,               \
	{ 7, 0, B, 31 } /* vl */, { 7, 0, C, 1 } /* vbmi */, { 7, 0, C, 6 } /* vbmi2 */,            \
	{ 7, 0, C, 11 } /* vnni */, { 7, 0, C, 12 } /* bitalg */, { 7, 0, C, 14 } /* vpopcntdq */,  \
	{ 7, 0, D, 2 } /* 4vnniw */, { 7, 0, D, 3 } /* 4fmaps */, { 7, 0, D, 8 } /* vp2intersect */, \
	{ 7, 0, D, 23 } /* avx512_fp16 */, { 7, 1, A, 5 } /* avx512_bf16 */,                        \
	{ 0xd, 0, A, 2 } /* XCR0.YMM */, { 0xd, 0, A, 5 }, { 0xd, 0, A, 6 }, { 0xd, 0, A, 7 }

static void test_hide_xsave(void **state)
{
	(void)state;
	vmm_cpuid *c = all_ones();
	assert_int_equal(vmm_cpuid_hide_feature(c, "xsave"), 0);
	const struct bit want[] = {
		AVX_FAMILY,
		{ 1, 0, C, 26 } /* xsave */,
		{ 1, 0, C, 27 } /* osxsave */,
		{ 0xd, 1, A, 0 } /* xsaveopt */,
		{ 0xd, 1, A, 1 } /* xsavec */,
		{ 0xd, 1, A, 2 } /* xgetbv1 */,
		{ 0xd, 1, A, 3 } /* xsaves */,
		{ 0xd, 1, A, 4 } /* xfd */,
		{ 7, 0, D, 24 } /* amx_tile */,
		{ 7, 0, D, 22 } /* amx_bf16 */,
		{ 7, 0, D, 25 } /* amx_int8 */,
		{ 0xd, 0, A, 17 } /* XCR0.XTILECFG */,
		{ 0xd, 0, A, 18 } /* XCR0.XTILEDATA */,
	};
	expect_cleared(c, want, sizeof want / sizeof want[0]);
	/* Hiding again changes nothing. */
	assert_int_equal(vmm_cpuid_hide_feature(c, "xsave"), 0);
	expect_cleared(c, want, sizeof want / sizeof want[0]);
	vmm_cpuid_destroy(c);
}

static void test_hide_avx(void **state)
{
	(void)state;
	vmm_cpuid *c = all_ones();
	assert_int_equal(vmm_cpuid_hide_feature(c, "avx"), 0);
	const struct bit want[] = { AVX_FAMILY };
	expect_cleared(c, want, sizeof want / sizeof want[0]);
	vmm_cpuid_destroy(c);
}

static void test_hide_sse(void **state)
{
	(void)state;
	vmm_cpuid *c = all_ones();
	assert_int_equal(vmm_cpuid_hide_feature(c, "sse"), 0);
	const struct bit want[] = {
		AVX_FAMILY,
		{ 1, 0, D, 25 } /* sse */, { 1, 0, D, 26 } /* sse2 */, { 1, 0, C, 0 } /* pni */,
		{ 1, 0, C, 9 } /* ssse3 */, { 1, 0, C, 19 } /* sse4_1 */, { 1, 0, C, 20 } /* sse4_2 */,
		{ 1, 0, C, 1 } /* pclmulqdq */, { 1, 0, C, 25 } /* aes */, { 7, 0, C, 8 } /* gfni */,
		{ 7, 0, B, 29 } /* sha_ni */, { 0x80000001u, 0, C, 6 } /* sse4a */,
		{ 0x80000001u, 0, C, 7 } /* misalignsse */, { 0xd, 0, A, 1 } /* XCR0.SSE */,
	};
	expect_cleared(c, want, sizeof want / sizeof want[0]);
	vmm_cpuid_destroy(c);
}

static void test_hide_single_and_small_chains(void **state)
{
	(void)state;
	struct {
		const char *name;
		struct bit bits[3];
		size_t n;
	} cases[] = {
		{ "popcnt", { { 1, 0, C, 23 } }, 1 },
		{ "lzcnt", { { 0x80000001u, 0, C, 5 } }, 1 },
		{ "abm", { { 0x80000001u, 0, C, 5 } }, 1 },
		{ "apic", { { 1, 0, D, 9 }, { 1, 0, C, 21 }, { 1, 0, C, 24 } }, 3 },
		{ "x2apic", { { 1, 0, C, 21 } }, 1 },
		{ "pku", { { 7, 0, C, 3 }, { 7, 0, C, 4 } /* ospke */, { 0xd, 0, A, 9 } /* PKRU */ }, 3 },
		{ "invpcid", { { 7, 0, B, 10 } }, 1 },
		{ "pcid", { { 1, 0, C, 17 }, { 7, 0, B, 10 } }, 2 },
		{ "hypervisor", { { 1, 0, C, 31 } }, 1 },
		{ "la57", { { 7, 0, C, 16 } }, 1 },
		{ "rdtscp", { { 0x80000001u, 0, D, 27 } }, 1 },
		{ "xsaves", { { 0xd, 1, A, 3 } }, 1 },
		{ "3dnowprefetch", { { 0x80000001u, 0, C, 8 } }, 1 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		vmm_cpuid *c = all_ones();
		assert_int_equal(vmm_cpuid_hide_feature(c, cases[i].name), 0);
		expect_cleared(c, cases[i].bits, cases[i].n);
		vmm_cpuid_destroy(c);
	}

	/* "sse3" is Linux's "pni": same bits as hiding pni. */
	vmm_cpuid *a = all_ones(), *b = all_ones();
	assert_int_equal(vmm_cpuid_hide_feature(a, "sse3"), 0);
	assert_int_equal(vmm_cpuid_hide_feature(b, "pni"), 0);
	vmm_cpuid_entry ea, eb;
	assert_int_equal(vmm_cpuid_get(a, 1, 0, &ea), 0);
	assert_int_equal(vmm_cpuid_get(b, 1, 0, &eb), 0);
	assert_int_equal(ea.ecx, eb.ecx);
	assert_int_equal(ea.ecx & (1u << 0), 0);
	assert_int_equal(ea.ecx & (1u << 20), 0);      /* sse4_2 went with it */
	assert_int_equal(ea.ecx & (1u << 28), 1u << 28); /* avx did not (it needs sse2) */
	vmm_cpuid_destroy(a);
	vmm_cpuid_destroy(b);
}

static void test_hide_absent_and_unknown(void **state)
{
	(void)state;
	vmm_cpuid *c = new_table();
	/* No leaf at all: nothing to hide, success. */
	assert_int_equal(vmm_cpuid_hide_feature(c, "avx2"), 0);
	assert_int_equal(vmm_cpuid_hide_feature(c, "xsave"), 0);
	assert_int_equal(vmm_cpuid_count(c), 0);

	/* Leaf 1 present, leaf 7 absent: hiding avx clears what exists. */
	vmm_cpuid_entry l1 = { 1, 0, 0, ~0u, ~0u, ~0u, ~0u }, out;
	assert_int_equal(vmm_cpuid_set(c, &l1), 0);
	assert_int_equal(vmm_cpuid_hide_feature(c, "avx"), 0);
	assert_int_equal(vmm_cpuid_get(c, 1, 0, &out), 0);
	assert_int_equal(out.ecx, ~((1u << 28) | (1u << 12) | (1u << 29)));
	assert_int_equal(out.edx, ~0u);
	assert_int_equal(vmm_cpuid_count(c), 1);

	assert_int_equal(vmm_cpuid_hide_feature(c, "no_such_feature"), -ENOENT);
	assert_non_null(strstr(vmm_last_error(), "no_such_feature"));
	assert_int_equal(vmm_cpuid_hide_feature(c, ""), -ENOENT);
	assert_int_equal(vmm_cpuid_hide_feature(c, "AVX"), -ENOENT); /* names are exact */
	/* OS-controlled bits are not offered. */
	assert_int_equal(vmm_cpuid_hide_feature(c, "osxsave"), -ENOENT);
	assert_non_null(strstr(vmm_last_error(), "xsave"));
	assert_int_equal(vmm_cpuid_hide_feature(c, "ospke"), -ENOENT);
	assert_int_equal(vmm_cpuid_get(c, 1, 0, &out), 0);
	assert_int_equal(out.edx, ~0u);
	assert_int_equal(vmm_cpuid_hide_feature(c, NULL), -EINVAL);
	vmm_cpuid_destroy(c);
}

static void test_feature_names(void **state)
{
	(void)state;
	static const char *const required[] = {
		"fpu", "tsc", "msr", "pae", "apic", "cx8", "sep", "mtrr", "pge", "cmov", "pat",
		"pse36", "clflush", "mmx", "fxsr", "sse", "sse2", "ht", "pni", "pclmulqdq",
		"monitor", "ssse3", "fma", "cx16", "pcid", "sse4_1", "sse4_2", "x2apic", "movbe",
		"popcnt", "tsc_deadline_timer", "aes", "xsave", "avx", "f16c", "rdrand",
		"hypervisor", "fsgsbase", "bmi1", "hle", "avx2", "smep", "bmi2", "erms", "invpcid",
		"rtm", "avx512f", "avx512dq", "rdseed", "adx", "smap", "clflushopt", "clwb",
		"avx512cd", "sha_ni", "avx512bw", "avx512vl", "umip", "pku", "rdpid", "la57",
		"syscall", "nx", "pdpe1gb", "rdtscp", "lm", "lahf_lm", "abm", "xsaveopt", "xsavec",
		"xgetbv1", "xsaves",
	};
	size_t n = 0;
	while (vmm_cpuid_feature_name(n))
		n++;
	assert_true(n >= sizeof required / sizeof required[0]);
	assert_null(vmm_cpuid_feature_name(n + 1000));

	for (size_t r = 0; r < sizeof required / sizeof required[0]; r++) {
		bool found = false;
		for (size_t i = 0; i < n && !found; i++)
			found = strcmp(vmm_cpuid_feature_name(i), required[r]) == 0;
		if (!found)
			fail_msg("feature \"%s\" is not listed", required[r]);
	}
	/* Every listed name is unique and can be hidden, and hiding it clears at least
	 * one bit of an all-ones table. */
	for (size_t i = 0; i < n; i++) {
		const char *name = vmm_cpuid_feature_name(i);
		assert_string_not_equal(name, "osxsave");
		assert_string_not_equal(name, "ospke");
		for (size_t j = i + 1; j < n; j++)
			assert_string_not_equal(name, vmm_cpuid_feature_name(j));
		vmm_cpuid *c = all_ones();
		assert_int_equal(vmm_cpuid_hide_feature(c, name), 0);
		bool cleared = false;
		for (size_t k = 0; k < vmm_cpuid_count(c); k++) {
			vmm_cpuid_entry e;
			assert_int_equal(vmm_cpuid_entry_at(c, k, &e), 0);
			cleared |= (e.eax & e.ebx & e.ecx & e.edx) != ~0u;
		}
		if (!cleared)
			fail_msg("hiding \"%s\" cleared nothing", name);
		vmm_cpuid_destroy(c);
	}
}

static void test_null_args(void **state)
{
	(void)state;
	vmm_cpuid_entry e = { 0 };
	assert_int_equal(vmm_cpuid_create(NULL), -EINVAL);
	assert_int_equal(vmm_cpuid_count(NULL), 0);
	assert_int_equal(vmm_cpuid_get(NULL, 0, 0, &e), -EINVAL);
	assert_int_equal(vmm_cpuid_set(NULL, &e), -EINVAL);
	assert_int_equal(vmm_cpuid_entry_at(NULL, 0, &e), -EINVAL);
	vmm_cpuid *c = NULL;
	assert_int_equal(vmm_cpuid_clone(&c, NULL), -EINVAL);
	assert_int_equal(vmm_cpuid_create_default(&c, NULL, 0), -EINVAL);
	assert_null(c);
}

/* ---- the default table, on /dev/kvm ---- */

static void test_default_table(void **state)
{
	(void)state;
	const char *req = getenv("LIBVMM_REQUIRE_KVM");
	bool require = req && strcmp(req, "1") == 0;
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		if (require)
			fail_msg("/dev/kvm cannot be opened and LIBVMM_REQUIRE_KVM=1");
		skip();
	}
	close(fd);

	vmm_vm *vm = NULL;
	int r = vmm_vm_create(&vm, NULL);
	if (r < 0)
		fail_msg("vmm_vm_create: %s (%s)", vmm_strerror(r), vmm_last_error());

	const uint32_t vcpu_id = 5;
	vmm_cpuid *c = NULL;
	r = vmm_cpuid_create_default(&c, vm, vcpu_id);
	if (r < 0)
		fail_msg("vmm_cpuid_create_default: %s (%s)", vmm_strerror(r), vmm_last_error());
	assert_true(vmm_cpuid_count(c) > 2);

	/* Sorted, no duplicate keys, only known flags, plain leaves at index 0. */
	vmm_cpuid_entry prev = { 0 }, e;
	for (size_t i = 0; i < vmm_cpuid_count(c); i++) {
		assert_int_equal(vmm_cpuid_entry_at(c, i, &e), 0);
		assert_int_equal(e.flags & ~SIG, 0);
		if (!(e.flags & SIG))
			assert_int_equal(e.index, 0);
		if (i > 0)
			assert_true(prev.function < e.function ||
				    (prev.function == e.function && prev.index < e.index));
		prev = e;
	}

	/* Leaf 1: x2APIC, hypervisor, APIC id 5 in EBX[31:24]. */
	assert_int_equal(vmm_cpuid_get(c, 1, 0, &e), 0);
	assert_int_equal(e.ecx & (1u << 21), 1u << 21);
	assert_int_equal(e.ecx & (1u << 31), 1u << 31);
	assert_int_equal(e.ebx >> 24, vcpu_id);

	/* Extended topology: x2APIC id in EDX of every sub-leaf. */
	for (uint32_t leaf = 0xb; leaf <= 0x1f; leaf += 0x1f - 0xb) {
		for (size_t i = 0; i < vmm_cpuid_count(c); i++) {
			assert_int_equal(vmm_cpuid_entry_at(c, i, &e), 0);
			if (e.function == leaf)
				assert_int_equal(e.edx, vcpu_id);
		}
	}

	/* KVM paravirt leaf: KVM signature, and no hypercall-based features. */
	if (vmm_cpuid_get(c, 0x40000000u, 0, &e) == 0) {
		assert_memory_equal(&e.ebx, "KVMK", 4);
		assert_memory_equal(&e.ecx, "VMKV", 4);
		assert_int_equal(vmm_cpuid_get(c, 0x40000001u, 0, &e), 0);
		assert_int_equal(e.eax & (1u << 7), 0);  /* PV_UNHALT */
		assert_int_equal(e.eax & (1u << 9), 0);  /* PV_TLB_FLUSH */
		assert_int_equal(e.eax & (1u << 11), 0); /* PV_SEND_IPI */
		assert_int_equal(e.eax & (1u << 13), 0); /* PV_SCHED_YIELD */
		assert_int_equal(e.eax & (1u << 16), 0); /* HC_MAP_GPA_RANGE */
	} else if (require) {
		fail_msg("KVM reports no paravirt leaf 0x40000000");
	}

	/* Another vCPU id gets its own APIC id; the rest of leaf 1 is the same. */
	vmm_cpuid *c2 = NULL;
	assert_int_equal(vmm_cpuid_create_default(&c2, vm, 0x1ff), 0);
	vmm_cpuid_entry e1, e2;
	assert_int_equal(vmm_cpuid_get(c, 1, 0, &e1), 0);
	assert_int_equal(vmm_cpuid_get(c2, 1, 0, &e2), 0);
	assert_int_equal(e2.ebx >> 24, 0xff);
	assert_int_equal(e1.ebx & 0x00ffffffu, e2.ebx & 0x00ffffffu);
	assert_int_equal(e1.ecx, e2.ecx);
	if (vmm_cpuid_get(c2, 0xb, 0, &e2) == 0)
		assert_int_equal(e2.edx, 0x1ff);

	/* The KVM table can be edited like any other. */
	assert_int_equal(vmm_cpuid_hide_feature(c, "x2apic"), 0);
	assert_int_equal(vmm_cpuid_get(c, 1, 0, &e), 0);
	assert_int_equal(e.ecx & (1u << 21), 0);

	vmm_cpuid_destroy(c);
	vmm_cpuid_destroy(c2);
	vmm_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_get_replace),
		cmocka_unit_test(test_ordering),
		cmocka_unit_test(test_significant_index),
		cmocka_unit_test(test_update),
		cmocka_unit_test(test_full_table),
		cmocka_unit_test(test_clone),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_hide_xsave),
		cmocka_unit_test(test_hide_avx),
		cmocka_unit_test(test_hide_sse),
		cmocka_unit_test(test_hide_single_and_small_chains),
		cmocka_unit_test(test_hide_absent_and_unknown),
		cmocka_unit_test(test_feature_names),
		cmocka_unit_test(test_null_args),
		cmocka_unit_test(test_default_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
