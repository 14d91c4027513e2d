/* The kernel command-line builder, and the check the loader applies to a whole line.
 *
 * Linux splits its command line at spaces and understands double quotes. The builder
 * never quotes: it refuses what would need quoting, so the parameters the kernel sees
 * are exactly the ones added, and a value can never smuggle in another parameter.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot_internal.h"

struct vmm_cmdline {
	char *buf;  /* max + 1 bytes, NUL-terminated */
	size_t len;
	size_t max;
};

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Checks `s` (n bytes) for `what` (a key, a value or text). Keys are printable ASCII
 * without '='; values and text may also hold UTF-8 bytes and '='; only text may hold
 * spaces. Nothing may hold control characters or quotes. */
enum part { PART_KEY, PART_VALUE, PART_TEXT };

static int check_part(const char *s, size_t n, enum part part)
{
	static const char *const names[] = { "key", "value", "text" };
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *why = NULL;
		if (is_control(c))
			why = "a control character";
		else if (c == '"')
			why = "a quote (the builder does not quote)";
		else if (c == ' ' && part != PART_TEXT)
			why = "a space (the builder does not quote)";
		else if (part == PART_KEY && c == '=')
			why = "'='";
		else if (part == PART_KEY && c >= 0x80)
			why = "a non-ASCII byte";
		if (why)
			return vmm_err(-EINVAL, "command line: %s holds %s (byte %#x at offset %zu)",
				       names[part], why, c, i);
	}
	return 0;
}

int vmm_cmdline_create(vmm_cmdline **out, size_t max_len)
{
	if (!out)
		return vmm_err(-EINVAL, "vmm_cmdline_create: NULL argument");
	*out = NULL;
	if (max_len == 0)
		max_len = VMM_CMDLINE_DEFAULT_MAX;
	if (max_len > VMM_CMDLINE_LIMIT)
		return vmm_err(-EINVAL, "command line: maximum %zu exceeds %u", max_len, VMM_CMDLINE_LIMIT);
	vmm_cmdline *cl = calloc(1, sizeof *cl);
	if (!cl || !(cl->buf = malloc(max_len + 1))) {
		free(cl);
		return vmm_err(-ENOMEM, "command line: out of memory");
	}
	cl->buf[0] = '\0';
	cl->max = max_len;
	*out = cl;
	return 0;
}

void vmm_cmdline_destroy(vmm_cmdline *cl)
{
	if (!cl)
		return;
	free(cl->buf);
	free(cl);
}

/* Appends n bytes as one more space-separated piece, if it fits. */
static int put(vmm_cmdline *cl, const char *s, size_t n)
{
	size_t sep = cl->len ? 1 : 0;
	/* n <= strlen of a caller string; len <= max <= 65535: no overflow */
	if (n > cl->max || cl->len + sep + n > cl->max)
		return vmm_err(-E2BIG, "command line: adding %zu bytes to %zu would exceed the maximum "
			       "of %zu", n + sep, cl->len, cl->max);
	if (sep)
		cl->buf[cl->len++] = ' ';
	memcpy(cl->buf + cl->len, s, n);
	cl->len += n;
	cl->buf[cl->len] = '\0';
	return 0;
}

int vmm_cmdline_add(vmm_cmdline *cl, const char *key, const char *value)
{
	if (!cl || !key)
		return vmm_err(-EINVAL, "vmm_cmdline_add: NULL argument");
	size_t klen = strlen(key), vlen = value ? strlen(value) : 0;
	if (klen == 0)
		return vmm_err(-EINVAL, "command line: empty key");
	int r = check_part(key, klen, PART_KEY);
	if (r || (value && (r = check_part(value, vlen, PART_VALUE))))
		return r;
	size_t sep = cl->len ? 1 : 0, need = klen + (value ? 1 + vlen : 0);
	if (klen > cl->max || vlen > cl->max || cl->len + sep + need > cl->max)
		return vmm_err(-E2BIG, "command line: adding %s%s... would exceed the maximum of %zu "
			       "bytes", key, value ? "=" : "", cl->max);
	if (sep)
		cl->buf[cl->len++] = ' ';
	memcpy(cl->buf + cl->len, key, klen);
	cl->len += klen;
	if (value) {
		cl->buf[cl->len++] = '=';
		memcpy(cl->buf + cl->len, value, vlen);
		cl->len += vlen;
	}
	cl->buf[cl->len] = '\0';
	return 0;
}

int vmm_cmdline_addf(vmm_cmdline *cl, const char *key, const char *fmt, ...)
{
	if (!cl || !key || !fmt)
		return vmm_err(-EINVAL, "vmm_cmdline_addf: NULL argument");
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return vmm_err(-EINVAL, "command line: bad format for %s", key);
	if ((size_t)n > cl->max)
		return vmm_err(-E2BIG, "command line: value of %s (%d bytes) exceeds the maximum of %zu",
			       key, n, cl->max);
	char *value = malloc((size_t)n + 1);
	if (!value)
		return vmm_err(-ENOMEM, "command line: out of memory");
	va_start(ap, fmt);
	vsnprintf(value, (size_t)n + 1, fmt, ap);
	va_end(ap);
	int r = vmm_cmdline_add(cl, key, value);
	free(value);
	return r;
}

int vmm_cmdline_append(vmm_cmdline *cl, const char *text)
{
	if (!cl || !text)
		return vmm_err(-EINVAL, "vmm_cmdline_append: NULL argument");
	size_t n = strlen(text);
	int r = check_part(text, n, PART_TEXT);
	if (r)
		return r;
	/* Validate every parameter and the total first, so a failure appends nothing. */
	size_t total = cl->len;
	for (size_t i = 0; i < n;) {
		while (i < n && text[i] == ' ')
			i++;
		size_t j = i;
		while (j < n && text[j] != ' ')
			j++;
		if (j == i)
			break;
		if (text[i] == '=')
			return vmm_err(-EINVAL, "command line: parameter at offset %zu has an empty key", i);
		total += (total ? 1 : 0) + (j - i);
		if (total > cl->max)
			return vmm_err(-E2BIG, "command line: appending \"%.40s%s\" would exceed the maximum "
				       "of %zu bytes", text, n > 40 ? "..." : "", cl->max);
		i = j;
	}
	for (size_t i = 0; i < n;) {
		while (i < n && text[i] == ' ')
			i++;
		size_t j = i;
		while (j < n && text[j] != ' ')
			j++;
		if (j > i && (r = put(cl, text + i, j - i)))
			return r; /* cannot happen: the total was checked */
		i = j;
	}
	return 0;
}

bool vmm_cmdline_has(const vmm_cmdline *cl, const char *key)
{
	if (!cl || !key || !*key)
		return false;
	size_t klen = strlen(key);
	for (const char *p = cl->buf; *p;) {
		const char *end = strchr(p, ' ');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n >= klen && memcmp(p, key, klen) == 0 && (n == klen || p[klen] == '='))
			return true;
		p += n;
		while (*p == ' ')
			p++;
	}
	return false;
}

const char *vmm_cmdline_str(const vmm_cmdline *cl)
{
	return cl ? cl->buf : "";
}

size_t vmm_cmdline_len(const vmm_cmdline *cl)
{
	return cl ? cl->len : 0;
}

int vmm_cmdline_check(const char *s, size_t max, size_t *len)
{
	size_t n = 0;
	for (; s[n]; n++) {
		if (is_control((unsigned char)s[n]))
			return vmm_err(-EINVAL, "command line: control character %#x at offset %zu (a "
				       "newline or NUL would cut it short)", (unsigned char)s[n], n);
		if (n >= max)
			return vmm_err(-E2BIG, "command line: %zu bytes, longer than the kernel's limit "
				       "of %zu", strlen(s), max);
	}
	*len = n;
	return 0;
}
