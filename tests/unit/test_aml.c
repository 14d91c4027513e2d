/* Unit tests for the AML encoder: byte-exact against what iasl (acpica-tools 20200925,
 * `iasl -on`) produced for the same ASL, PkgLength boundaries, names, and bounds: a
 * full buffer, bad input and unbalanced blocks fail cleanly without writing past the
 * end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <libvmm/libvmm.h>
#include "boot/aml.h"

/* The body (after the table header) of iasl's output for:
 *   Name (I0, Zero)  Name (I1, One)  Name (I2, 2)  Name (IB, 0xFF)  Name (IW, 0x100)
 *   Name (IX, 0xFFFF)  Name (ID, 0x10000)  Name (IY, 0xFFFFFFFF)
 *   Name (IQ, 0x100000000)  Name (IZ, 0xFFFFFFFFFFFFFFFF)
 *   Name (STR, "LNRO0005")  Name (ES, "")  Name (EI, EisaId ("PNP0A03"))
 *   Device (DEV) {
 *     Method (_STA, 0, NotSerialized) { Return (0x0F) }
 *     Method (SER, 3, Serialized) { Return (One) }
 *   }
 *   Name (PKG, Package () {One, "A", 0x1234}) */
static const uint8_t iasl_misc[] = {
	0x08, 0x49, 0x30, 0x5f, 0x5f, 0x00, 0x08, 0x49, 0x31, 0x5f, 0x5f, 0x01,
	0x08, 0x49, 0x32, 0x5f, 0x5f, 0x0a, 0x02, 0x08, 0x49, 0x42, 0x5f, 0x5f,
	0x0a, 0xff, 0x08, 0x49, 0x57, 0x5f, 0x5f, 0x0b, 0x00, 0x01, 0x08, 0x49,
	0x58, 0x5f, 0x5f, 0x0b, 0xff, 0xff, 0x08, 0x49, 0x44, 0x5f, 0x5f, 0x0c,
	0x00, 0x00, 0x01, 0x00, 0x08, 0x49, 0x59, 0x5f, 0x5f, 0x0c, 0xff, 0xff,
	0xff, 0xff, 0x08, 0x49, 0x51, 0x5f, 0x5f, 0x0e, 0x00, 0x00, 0x00, 0x00,
	0x01, 0x00, 0x00, 0x00, 0x08, 0x49, 0x5a, 0x5f, 0x5f, 0xff, 0x08, 0x53,
	0x54, 0x52, 0x5f, 0x0d, 0x4c, 0x4e, 0x52, 0x4f, 0x30, 0x30, 0x30, 0x35,
	0x00, 0x08, 0x45, 0x53, 0x5f, 0x5f, 0x0d, 0x00, 0x08, 0x45, 0x49, 0x5f,
	0x5f, 0x0c, 0x41, 0xd0, 0x0a, 0x03, 0x5b, 0x82, 0x18, 0x44, 0x45, 0x56,
	0x5f, 0x14, 0x09, 0x5f, 0x53, 0x54, 0x41, 0x00, 0xa4, 0x0a, 0x0f, 0x14,
	0x08, 0x53, 0x45, 0x52, 0x5f, 0x0b, 0xa4, 0x01, 0x08, 0x50, 0x4b, 0x47,
	0x5f, 0x12, 0x09, 0x03, 0x01, 0x0d, 0x41, 0x00, 0x0b, 0x34, 0x12,
};

/* The same program through the encoder. */
static void emit_misc(struct vmm_aml *a)
{
	static const struct { const char *name; uint64_t v; } ints[] = {
		{ "I0", 0 }, { "I1", 1 }, { "I2", 2 }, { "IB", 0xff }, { "IW", 0x100 },
		{ "IX", 0xffff }, { "ID", 0x10000 }, { "IY", 0xffffffff },
		{ "IQ", 0x100000000ull }, { "IZ", UINT64_MAX },
	};
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
		vmm_aml_name_decl(a, ints[i].name);
		vmm_aml_integer(a, ints[i].v);
	}
	vmm_aml_name_decl(a, "STR");
	vmm_aml_string(a, "LNRO0005");
	vmm_aml_name_decl(a, "ES");
	vmm_aml_string(a, "");
	vmm_aml_name_decl(a, "EI");
	vmm_aml_eisaid(a, "PNP0A03");
	vmm_aml_device_begin(a, "DEV");
	vmm_aml_method_begin(a, "_STA", 0, false);
	vmm_aml_return(a);
	vmm_aml_integer(a, 0x0f);
	vmm_aml_end(a);
	vmm_aml_method_begin(a, "SER", 3, true);
	vmm_aml_return(a);
	vmm_aml_integer(a, 1);
	vmm_aml_end(a);
	vmm_aml_end(a);
	vmm_aml_name_decl(a, "PKG");
	vmm_aml_package_begin(a, 3);
	vmm_aml_integer(a, 1);
	vmm_aml_string(a, "A");
	vmm_aml_integer(a, 0x1234);
	vmm_aml_end(a);
}

static void test_misc_matches_iasl(void **state)
{
	(void)state;
	uint8_t buf[512];
	struct vmm_aml a;
	vmm_aml_init(&a, buf, sizeof buf);
	emit_misc(&a);
	long n = vmm_aml_finish(&a);
	assert_int_equal(n, sizeof iasl_misc);
	assert_memory_equal(buf, iasl_misc, sizeof iasl_misc);

	/* Measuring mode gives the same size without a buffer. */
	vmm_aml_init(&a, NULL, 0);
	emit_misc(&a);
	assert_int_equal(vmm_aml_finish(&a), sizeof iasl_misc);
}

/* Every prefix of the output buffer is too small: -ENOSPC, and nothing written past
 * the given capacity. */
static void test_every_short_buffer_fails_cleanly(void **state)
{
	(void)state;
	uint8_t buf[sizeof iasl_misc + 64];
	for (size_t cap = 0; cap < sizeof iasl_misc; cap++) {
		memset(buf, 0xa5, sizeof buf);
		struct vmm_aml a;
		vmm_aml_init(&a, buf, cap); /* cap 0 with a buffer: full, not measuring */
		emit_misc(&a);
		assert_int_equal(vmm_aml_finish(&a), -ENOSPC);
		for (size_t i = cap; i < sizeof buf; i++)
			assert_int_equal(buf[i], 0xa5);
	}
}

/* PkgLength (ACPI 6.5, 20.2.4): counts its own bytes; 1 byte up to 63, then 2 bytes up
 * to 4095, 3 bytes up to 2^20 - 1, 4 bytes up to 2^28 - 1. The argument is the length
 * of what follows the encoding. */
static void test_pkglen_boundaries(void **state)
{
	(void)state;
	static const struct { uint32_t len; int n; uint8_t b[4]; } cases[] = {
		{ 0, 1, { 0x01 } },
		{ 62, 1, { 0x3f } },                     /* total 63: the 1-byte maximum */
		{ 63, 2, { 0x41, 0x04 } },               /* total 65 (64 does not exist) */
		{ 0xffd, 2, { 0x4f, 0xff } },            /* total 4095 */
		{ 0xffe, 3, { 0x81, 0x00, 0x01 } },      /* total 4097 */
		{ 0xffffc, 3, { 0x8f, 0xff, 0xff } },    /* total 2^20 - 1 */
		{ 0xffffd, 4, { 0xc1, 0x00, 0x00, 0x01 } },
		{ 0x100000, 4, { 0xc4, 0x00, 0x00, 0x01 } }, /* 1 MiB */
		{ 0xffffffb, 4, { 0xcf, 0xff, 0xff, 0xff } }, /* total 2^28 - 1 */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint8_t out[4] = { 0 };
		int n = vmm_aml_pkglen_encode(cases[i].len, out);
		assert_int_equal(n, cases[i].n);
		assert_memory_equal(out, cases[i].b, (size_t)n);
		/* decode back: the value is the encoding plus what follows */
		uint32_t v = n == 1 ? out[0] : (uint32_t)(out[0] & 0x0f);
		for (int k = 1; k < n; k++)
			v |= (uint32_t)out[k] << (4 + 8 * (k - 1));
		assert_int_equal(v, cases[i].len + (uint32_t)n);
		assert_int_equal(out[0] >> 6, n - 1);
	}
	uint8_t out[4];
	assert_int_equal(vmm_aml_pkglen_encode(0xffffffc, out), -E2BIG);
	assert_int_equal(vmm_aml_pkglen_encode(UINT32_MAX, out), -E2BIG);
}

/* Buffers across the PkgLength and BufferSize boundaries: the head bytes iasl emitted
 * for Buffer () {0x00, 0x01, ...} of each size (opcode, PkgLength, BufferSize). */
static void test_buffer_boundaries_match_iasl(void **state)
{
	(void)state;
	static const struct { size_t n; size_t hlen; uint8_t head[10]; } cases[] = {
		{ 60, 4, { 0x11, 0x3f, 0x0a, 0x3c } },
		{ 61, 5, { 0x11, 0x41, 0x04, 0x0a, 0x3d } },
		{ 255, 5, { 0x11, 0x43, 0x10, 0x0a, 0xff } },
		{ 256, 6, { 0x11, 0x45, 0x10, 0x0b, 0x00, 0x01 } },
		{ 4090, 6, { 0x11, 0x4f, 0xff, 0x0b, 0xfa, 0x0f } },
		{ 4091, 7, { 0x11, 0x81, 0x00, 0x01, 0x0b, 0xfb, 0x0f } },
		{ 70000, 9, { 0x11, 0x88, 0x17, 0x11, 0x0c, 0x70, 0x11, 0x01, 0x00 } },
		/* 1 MiB: not compiled with iasl (a 7 MB source); by the spec's rules the
		 * PkgLength is 0x100000 + 5 + 4 in 4 bytes and the size a DWordConst. */
		{ 0x100000, 10, { 0x11, 0xc9, 0x00, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x10, 0x00 } },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = cases[i].n, cap = n + 16;
		uint8_t *data = malloc(n), *buf = malloc(cap);
		assert_non_null(data);
		assert_non_null(buf);
		for (size_t k = 0; k < n; k++)
			data[k] = (uint8_t)k;
		struct vmm_aml a;
		vmm_aml_init(&a, buf, cap);
		vmm_aml_buffer_begin(&a);
		vmm_aml_bytes(&a, data, n);
		vmm_aml_end(&a);
		long len = vmm_aml_finish(&a);
		assert_int_equal(len, (long)(cases[i].hlen + n));
		assert_memory_equal(buf, cases[i].head, cases[i].hlen);
		assert_memory_equal(buf + cases[i].hlen, data, n);
		free(data);
		free(buf);
	}
}

static long encode_name(const char *path, uint8_t *buf, size_t cap)
{
	struct vmm_aml a;
	vmm_aml_init(&a, buf, cap);
	vmm_aml_name(&a, path);
	return vmm_aml_finish(&a);
}

static void test_names(void **state)
{
	(void)state;
	uint8_t buf[64];
	static const struct { const char *path; size_t n; const char *bytes; } good[] = {
		{ "\\", 2, "\\\0" },
		{ "_SB", 4, "_SB_" },
		{ "A", 4, "A___" },
		{ "\\_SB", 5, "\\_SB_" },
		{ "\\_SB.COM1", 10, "\\\x2e_SB_COM1" },
		{ "A.B1.C_D", 14, "\x2f\x03" "A___B1__C_D_" },
		{ "^^FOO", 6, "^^FOO_" },
		{ "^X.Y", 10, "^\x2eX___Y___" },
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		long n = encode_name(good[i].path, buf, sizeof buf);
		assert_int_equal(n, (long)good[i].n);
		assert_memory_equal(buf, good[i].bytes, good[i].n);
	}
	static const char *const bad[] = {
		"", "^", "1ABC", "ABCDE", "a", "A..B", "A.", ".A", "\\.A", "A-B", "\\^A", "^\\A",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(encode_name(bad[i], buf, sizeof buf), -EINVAL);
	assert_int_equal(encode_name(NULL, buf, sizeof buf), -EINVAL);
}

static void test_eisaid(void **state)
{
	(void)state;
	uint32_t v = 0;
	assert_int_equal(vmm_aml_eisaid_value("PNP0501", &v), 0);
	assert_int_equal(v, 0x0105d041u);
	assert_int_equal(vmm_aml_eisaid_value("PNP0B00", &v), 0);
	assert_int_equal(v, 0x000bd041u);
	static const char *const bad[] = { "pnp0501", "PNP050", "PNP05011", "PNP05G1", "PN10501", "PNP05a1" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(vmm_aml_eisaid_value(bad[i], &v), -EINVAL);
	assert_int_equal(vmm_aml_eisaid_value(NULL, &v), -EINVAL);
}

/* Resource descriptors, byte-exact against iasl (the VR01 device of test_acpi's DSDT). */
static void test_resource_template(void **state)
{
	(void)state;
	static const uint8_t expect[] = {
		0x11, 0x3c, 0x0a, 0x39,
		0x8a, 0x2b, 0x00, 0x00, 0x0d, 0x01,
		0, 0, 0, 0, 0, 0, 0, 0,                 /* granularity */
		0x00, 0x00, 0x00, 0x00, 0x01, 0, 0, 0,   /* min */
		0xff, 0x0f, 0x00, 0x00, 0x01, 0, 0, 0,   /* max */
		0, 0, 0, 0, 0, 0, 0, 0,                 /* translation */
		0x00, 0x10, 0, 0, 0, 0, 0, 0,           /* length */
		0x89, 0x06, 0x00, 0x0d, 0x01, 0x17, 0x00, 0x00, 0x00,
		0x79, 0x00,
	};
	uint8_t buf[128];
	struct vmm_aml a;
	vmm_aml_init(&a, buf, sizeof buf);
	vmm_aml_restemplate_begin(&a);
	vmm_aml_res_qword_mem(&a, 0x100000000ull, 0x1000);
	vmm_aml_res_interrupt(&a, AML_IRQ_ACTIVE_LOW | AML_IRQ_SHARED, 23);
	vmm_aml_end(&a);
	assert_int_equal(vmm_aml_finish(&a), sizeof expect);
	assert_memory_equal(buf, expect, sizeof expect);
}

static long one_call_error(int which)
{
	uint8_t buf[256];
	struct vmm_aml a;
	vmm_aml_init(&a, buf, sizeof buf);
	switch (which) {
	case 0: vmm_aml_res_irq_noflags(&a, 16); break;
	case 1: vmm_aml_res_qword_mem(&a, 0x1000, 0); break;
	case 2: vmm_aml_res_qword_mem(&a, UINT64_MAX, 2); break;
	case 3: vmm_aml_res_interrupt(&a, 1u << 7, 5); break;
	case 4: vmm_aml_method_begin(&a, "M", 8, false); break;
	case 5: vmm_aml_package_begin(&a, 256); break;
	case 6: vmm_aml_string(&a, "caf\xc3\xa9"); break;
	case 7: vmm_aml_string(&a, NULL); break;
	case 8: vmm_aml_end(&a); break;                 /* nothing open */
	case 9: vmm_aml_scope_begin(&a, "\\_SB"); break; /* never closed */
	case 10:
		for (int i = 0; i < AML_MAX_DEPTH + 1; i++)
			vmm_aml_package_begin(&a, 1);
		break;
	case 11: vmm_aml_eisaid(&a, "XYZ"); break;
	case 12: vmm_aml_device_begin(&a, "TOOLONG"); vmm_aml_end(&a); break;
	}
	return vmm_aml_finish(&a);
}

static void test_bad_input(void **state)
{
	(void)state;
	for (int i = 0; i <= 12; i++) {
		long r = one_call_error(i);
		if (r != -EINVAL)
			fail_msg("case %d: got %ld, expected -EINVAL", i, r);
	}
	/* The first error sticks: later valid calls do not clear it or write. */
	uint8_t buf[16];
	memset(buf, 0xa5, sizeof buf);
	struct vmm_aml a;
	vmm_aml_init(&a, buf, sizeof buf);
	vmm_aml_res_irq_noflags(&a, 99);
	vmm_aml_integer(&a, 7);
	assert_int_equal(vmm_aml_finish(&a), -EINVAL);
	assert_int_equal(buf[0], 0xa5);
	/* NULL buffer with a capacity is a caller bug. */
	vmm_aml_init(&a, NULL, 8);
	assert_int_equal(vmm_aml_finish(&a), -EINVAL);
}

/* Nesting to the maximum depth works and closes back to balanced output. */
static void test_nesting(void **state)
{
	(void)state;
	uint8_t buf[256];
	struct vmm_aml a;
	vmm_aml_init(&a, buf, sizeof buf);
	for (int i = 0; i < AML_MAX_DEPTH; i++)
		vmm_aml_package_begin(&a, 1);
	vmm_aml_integer(&a, 0);
	for (int i = 0; i < AML_MAX_DEPTH; i++)
		vmm_aml_end(&a);
	long n = vmm_aml_finish(&a);
	assert_int_equal(n, AML_MAX_DEPTH * 3 + 1);
	/* outermost: PackageOp, PkgLength covering the rest, 1 element */
	assert_int_equal(buf[0], 0x12);
	assert_int_equal(buf[1], n - 1);
	assert_int_equal(buf[2], 1);
	assert_int_equal(buf[n - 1], 0x00);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_misc_matches_iasl),
		cmocka_unit_test(test_every_short_buffer_fails_cleanly),
		cmocka_unit_test(test_pkglen_boundaries),
		cmocka_unit_test(test_buffer_boundaries_match_iasl),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_eisaid),
		cmocka_unit_test(test_resource_template),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_nesting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
