/* Unit tests for the command-line builder (vmm_cmdline_*). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <libvmm/libvmm.h>

static vmm_cmdline *make(size_t max)
{
	vmm_cmdline *cl = NULL;
	assert_int_equal(vmm_cmdline_create(&cl, max), 0);
	assert_non_null(cl);
	return cl;
}

static void test_build(void **state)
{
	(void)state;
	vmm_cmdline *cl = make(0);
	assert_string_equal(vmm_cmdline_str(cl), "");
	assert_int_equal(vmm_cmdline_len(cl), 0);
	assert_int_equal(vmm_cmdline_add(cl, "console", "ttyS0,115200n8"), 0);
	assert_int_equal(vmm_cmdline_add(cl, "nokaslr", NULL), 0);
	assert_int_equal(vmm_cmdline_add(cl, "root", "PARTUUID=abc=def"), 0); /* '=' in a value */
	assert_int_equal(vmm_cmdline_add(cl, "empty", ""), 0);
	assert_int_equal(vmm_cmdline_addf(cl, "virtio_mmio.device", "4K@0x%llx:%u", 0xd0000000ull, 5), 0);
	assert_int_equal(vmm_cmdline_append(cl, "  quiet   panic=-1 "), 0);
	assert_int_equal(vmm_cmdline_append(cl, ""), 0);
	assert_int_equal(vmm_cmdline_append(cl, "   "), 0);
	assert_int_equal(vmm_cmdline_add(cl, "x", "caf\xc3\xa9"), 0); /* UTF-8 in a value */
	const char *want = "console=ttyS0,115200n8 nokaslr root=PARTUUID=abc=def empty= "
			   "virtio_mmio.device=4K@0xd0000000:5 quiet panic=-1 x=caf\xc3\xa9";
	assert_string_equal(vmm_cmdline_str(cl), want);
	assert_int_equal(vmm_cmdline_len(cl), strlen(want));

	assert_true(vmm_cmdline_has(cl, "console"));
	assert_true(vmm_cmdline_has(cl, "nokaslr"));
	assert_true(vmm_cmdline_has(cl, "panic"));
	assert_true(vmm_cmdline_has(cl, "empty"));
	assert_true(vmm_cmdline_has(cl, "x"));
	assert_false(vmm_cmdline_has(cl, "consol"));
	assert_false(vmm_cmdline_has(cl, "PARTUUID"));
	assert_false(vmm_cmdline_has(cl, "quie"));
	assert_false(vmm_cmdline_has(cl, ""));
	assert_false(vmm_cmdline_has(NULL, "x"));
	vmm_cmdline_destroy(cl);
	vmm_cmdline_destroy(NULL);
}

static void test_rejects(void **state)
{
	(void)state;
	vmm_cmdline *cl = make(0);
	assert_int_equal(vmm_cmdline_add(cl, "a", "1"), 0);
	static const struct { const char *key, *value, *needle; } bad[] = {
		{ "", "x", "empty key" },
		{ "init", "/bin/sh -c x", "a space" },
		{ "init", "\"/bin/sh\"", "a quote" },
		{ "k\"", "v", "a quote" },
		{ "k k", "v", "a space" },
		{ "k=v", "w", "'='" },
		{ "k", "line1\nline2", "a control character" },
		{ "k", "tab\there", "a control character" },
		{ "k", "del\x7f", "a control character" },
		{ "k\xc3\xa9", "v", "a non-ASCII byte" },
		{ "\n", NULL, "a control character" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(vmm_cmdline_add(cl, bad[i].key, bad[i].value), -EINVAL);
		if (!strstr(vmm_last_error(), bad[i].needle))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, vmm_last_error(), bad[i].needle);
	}
	assert_int_equal(vmm_cmdline_append(cl, "b=2 c=\"x y\""), -EINVAL);
	assert_int_equal(vmm_cmdline_append(cl, "b=2\nc=3"), -EINVAL);
	assert_int_equal(vmm_cmdline_append(cl, "b=2 =3"), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "empty key"));
	/* nothing of a refused call was appended */
	assert_string_equal(vmm_cmdline_str(cl), "a=1");

	assert_int_equal(vmm_cmdline_add(NULL, "a", "b"), -EINVAL);
	assert_int_equal(vmm_cmdline_add(cl, NULL, "b"), -EINVAL);
	assert_int_equal(vmm_cmdline_append(cl, NULL), -EINVAL);
	assert_int_equal(vmm_cmdline_addf(cl, "k", "%s", "a b"), -EINVAL);
	assert_string_equal(vmm_cmdline_str(cl), "a=1");
	vmm_cmdline_destroy(cl);
}

static void test_limits(void **state)
{
	(void)state;
	/* 6 + 1 + 3 = 10 bytes fit a maximum of 10 exactly; one more does not */
	vmm_cmdline *cl = make(10);
	assert_int_equal(vmm_cmdline_add(cl, "abc", "12"), 0);
	assert_int_equal(vmm_cmdline_add(cl, "def", NULL), 0);
	assert_int_equal(vmm_cmdline_len(cl), 10);
	assert_string_equal(vmm_cmdline_str(cl), "abc=12 def");
	assert_int_equal(vmm_cmdline_add(cl, "g", NULL), -E2BIG);
	assert_int_equal(vmm_cmdline_append(cl, "g"), -E2BIG);
	assert_int_equal(vmm_cmdline_addf(cl, "g", "%d", 1), -E2BIG);
	assert_string_equal(vmm_cmdline_str(cl), "abc=12 def");
	vmm_cmdline_destroy(cl);

	/* append checks the total before it appends anything */
	cl = make(10);
	assert_int_equal(vmm_cmdline_append(cl, "aaaa bbbb cccc"), -E2BIG);
	assert_string_equal(vmm_cmdline_str(cl), "");
	assert_int_equal(vmm_cmdline_append(cl, "aaaa bbbbb"), 0);
	vmm_cmdline_destroy(cl);

	/* defaults and the ceiling */
	cl = make(0);
	char key[2048];
	memset(key, 'k', sizeof key);
	key[2047] = '\0';
	assert_int_equal(vmm_cmdline_add(cl, key, NULL), 0);
	assert_int_equal(vmm_cmdline_len(cl), VMM_CMDLINE_DEFAULT_MAX);
	assert_int_equal(vmm_cmdline_add(cl, "x", NULL), -E2BIG);
	vmm_cmdline_destroy(cl);
	cl = NULL;
	assert_int_equal(vmm_cmdline_create(&cl, VMM_CMDLINE_LIMIT + 1), -EINVAL);
	assert_null(cl);
	assert_int_equal(vmm_cmdline_create(NULL, 0), -EINVAL);
	cl = make(VMM_CMDLINE_LIMIT);
	vmm_cmdline_destroy(cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
