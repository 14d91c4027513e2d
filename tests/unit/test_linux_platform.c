/* Unit tests for the Linux platform helpers that need no /dev/kvm: the nested-host
 * command-line defaults and argument checks (lib/boot/linux_platform.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <libvmm/libvmm.h>

static vmm_cmdline *make(size_t max)
{
	vmm_cmdline *cl = NULL;
	assert_int_equal(vmm_cmdline_create(&cl, max), 0);
	return cl;
}

/* Number of parameters named `key` ("key" or "key=...") in the line. */
static unsigned count_key(const char *line, const char *key)
{
	unsigned n = 0;
	size_t k = strlen(key);
	for (const char *p = line; *p;) {
		while (*p == ' ')
			p++;
		if (strncmp(p, key, k) == 0 && (p[k] == '=' || p[k] == ' ' || p[k] == '\0'))
			n++;
		while (*p && *p != ' ')
			p++;
	}
	return n;
}

/* The value of parameter `key`, copied into buf ("" if absent or bare). */
static const char *value_of(const char *line, const char *key, char *buf, size_t n)
{
	buf[0] = '\0';
	size_t k = strlen(key);
	for (const char *p = line; *p;) {
		while (*p == ' ')
			p++;
		const char *end = strchr(p, ' ');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (strncmp(p, key, k) == 0 && p[k] == '=' && len - k - 1 < n) {
			memcpy(buf, p + k + 1, len - k - 1);
			buf[len - k - 1] = '\0';
			return buf;
		}
		p += len;
	}
	return buf;
}

static void test_defaults(void **state)
{
	(void)state;
	vmm_cmdline *cl = make(0);
	assert_int_equal(vmm_linux_cmdline_nested_defaults(cl), 0);
	const char *s = vmm_cmdline_str(cl);
	char v[256];
	/* XSAVE stays on: vmm_vcpu_run completes it, and without it the guest kernel would
	 * switch tasks saving SSE state only (YMM upper halves leak between processes). */
	assert_int_equal(count_key(s, "noxsave"), 0);
	assert_int_equal(count_key(s, "GLIBC_TUNABLES"), 0);
	assert_string_equal(value_of(s, "mitigations", v, sizeof v), "off");
	assert_string_equal(value_of(s, "cryptomgr.notests", v, sizeof v), "1");
	assert_string_equal(value_of(s, "8250.nr_uarts", v, sizeof v), "1");
	assert_string_equal(value_of(s, "rcupdate.rcu_cpu_stall_suppress", v, sizeof v), "1");
	/* The features the emulator of such hosts cannot complete at ring 0, and the
	 * REP MOVSB/STOSB speed-ups, are hidden; Linux reads at most 127 bytes of it. */
	value_of(s, "clearcpuid", v, sizeof v);
	assert_true(strlen(v) <= 127);
	const char *must[] = { "popcnt", "ssse3", "cx16", "smap", "rdtscp", "invpcid", "pcid", "erms", "fsrm",
			      "xsavec", "xsaves" };
	for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) {
		char word[32];
		snprintf(word, sizeof word, ",%s,", must[i]);
		char padded[260];
		snprintf(padded, sizeof padded, ",%s,", v);
		if (!strstr(padded, word))
			fail_msg("clearcpuid=%s lacks %s", v, must[i]);
	}
	/* Every parameter is a kernel parameter or init's environment: no quoting needed. */
	assert_null(strchr(s, '"'));
	vmm_cmdline_destroy(cl);
}

static void test_callers_choice_wins(void **state)
{
	(void)state;
	vmm_cmdline *cl = make(0);
	assert_int_equal(vmm_cmdline_append(cl, "console=ttyS0 mitigations=auto clearcpuid=popcnt"), 0);
	assert_int_equal(vmm_linux_cmdline_nested_defaults(cl), 0);
	const char *s = vmm_cmdline_str(cl);
	char v[256];
	assert_int_equal(count_key(s, "mitigations"), 1);
	assert_string_equal(value_of(s, "mitigations", v, sizeof v), "auto");
	assert_int_equal(count_key(s, "clearcpuid"), 1);
	assert_string_equal(value_of(s, "clearcpuid", v, sizeof v), "popcnt");
	assert_string_equal(value_of(s, "cryptomgr.notests", v, sizeof v), "1");
	assert_int_equal(strncmp(s, "console=ttyS0 ", 14), 0); /* appended, never reordered */

	/* A second call adds nothing. */
	char before[2048];
	snprintf(before, sizeof before, "%s", s);
	assert_int_equal(vmm_linux_cmdline_nested_defaults(cl), 0);
	assert_string_equal(vmm_cmdline_str(cl), before);
	vmm_cmdline_destroy(cl);
}

static void test_line_full(void **state)
{
	(void)state;
	vmm_cmdline *cl = make(180);
	assert_int_equal(vmm_linux_cmdline_nested_defaults(cl), -E2BIG);
	assert_true(vmm_cmdline_len(cl) <= 180);
	assert_true(vmm_cmdline_has(cl, "clearcpuid")); /* what fitted stays */
	vmm_cmdline_destroy(cl);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	assert_int_equal(vmm_linux_cmdline_nested_defaults(NULL), -EINVAL);
	assert_int_equal(vmm_linux_prepare_vm(NULL), -EINVAL);
	assert_int_equal(vmm_linux_prepare_vcpu(NULL), -EINVAL);
}

static void test_host_detection(void **state)
{
	(void)state;
	bool nested = vmm_linux_host_is_nested();
	assert_true(nested == vmm_linux_host_is_nested()); /* no state */
	if (access("/sys/module/kvm_pvm", F_OK) == 0)
		assert_true(nested);
	if (access("/dev/kvm", F_OK) != 0)
		assert_false(nested && access("/sys/module/kvm_pvm", F_OK) != 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_callers_choice_wins),
		cmocka_unit_test(test_line_full),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_host_detection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
