/* AML byte-code encoder (ACPI 6.5, chapter 20 "ACPI Machine Language Specification").
 *
 * Bounded and sticky-error: see aml.h. The output of every construct matches what iasl
 * produces for the same ASL (tests/unit/test_aml.c holds iasl's bytes).
 */
#include <string.h>

#include "aml.h"

/* Bytes reserved at a block's opening: the longest PkgLength (4) plus, for a Buffer, the
 * longest BufferSize integer we emit (WordPrefix + 2 bytes for <= 64 KiB, DWordPrefix + 4
 * beyond). */
#define AML_RESERVE_PKG 4u
#define AML_RESERVE_BUF (4u + 5u)

static bool failed(struct vmm_aml *a)
{
	return a->err != 0;
}

static void fail(struct vmm_aml *a, int err)
{
	if (!a->err)
		a->err = err;
}

void vmm_aml_init(struct vmm_aml *a, void *buf, size_t cap)
{
	memset(a, 0, sizeof *a);
	a->buf = buf;
	a->cap = buf ? cap : 0;
	if (!buf && cap)
		fail(a, vmm_err(-EINVAL, "AML: NULL buffer of %zu bytes", cap));
}

/* Makes room for n more bytes; in measuring mode (buf == NULL) only counts. Returns a
 * pointer to write to, or NULL (measuring, or on error). */
static uint8_t *reserve(struct vmm_aml *a, size_t n)
{
	size_t end;
	if (failed(a))
		return NULL;
	/* ACPI tables have 32-bit lengths; staying below that also keeps a BufferSize
	 * within a DWordConst. */
	if (__builtin_add_overflow(a->len, n, &end) || end > UINT32_MAX) {
		fail(a, vmm_err(-E2BIG, "AML: output larger than 4 GiB"));
		return NULL;
	}
	if (!a->buf) {
		a->len = end;
		if (end > a->peak)
			a->peak = end;
		return NULL;
	}
	if (end > a->cap) {
		fail(a, vmm_err(-ENOSPC, "AML: buffer of %zu bytes is full", a->cap));
		return NULL;
	}
	uint8_t *p = a->buf + a->len;
	a->len = end;
	if (end > a->peak)
		a->peak = end;
	return p;
}

void vmm_aml_bytes(struct vmm_aml *a, const void *p, size_t n)
{
	uint8_t *d = reserve(a, n);
	if (d && n)
		memcpy(d, p, n);
}

void vmm_aml_byte(struct vmm_aml *a, uint8_t b)
{
	vmm_aml_bytes(a, &b, 1);
}

static void le(struct vmm_aml *a, uint64_t v, unsigned n)
{
	uint8_t b[8];
	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	vmm_aml_bytes(a, b, n);
}

int vmm_aml_pkglen_encode(uint32_t len, uint8_t out[4])
{
	/* The PkgLength counts its own bytes. One byte holds 6 bits (0-63); with n follow
	 * bytes the lead byte holds 4 bits and each follow byte 8 more, so the limits are
	 * 2^12 - 1, 2^20 - 1 and 2^28 - 1 including the encoding itself. */
	static const uint32_t limit[4] = { 0x3f, 0xfff, 0xfffff, 0xfffffff };
	for (unsigned n = 1; n <= 4; n++) {
		if (len > AML_PKGLEN_MAX - n || len + n > limit[n - 1])
			continue;
		uint32_t v = len + n;
		if (n == 1) {
			out[0] = (uint8_t)v;
			return 1;
		}
		out[0] = (uint8_t)(((n - 1) << 6) | (v & 0x0f));
		for (unsigned i = 1; i < n; i++)
			out[i] = (uint8_t)(v >> (4 + 8 * (i - 1)));
		return (int)n;
	}
	return vmm_err(-E2BIG, "AML: PkgLength %u exceeds the 28-bit limit", len);
}

/* ---- names ---------------------------------------------------------------------------- */

static bool seg_char(char c, bool lead)
{
	if ((c >= 'A' && c <= 'Z') || c == '_')
		return true;
	return !lead && c >= '0' && c <= '9';
}

/* Parses one NameSeg at *p (up to '.' or the end) into seg[4], padding with '_'. */
static int parse_seg(const char **p, char seg[4])
{
	const char *s = *p;
	size_t n = 0;
	while (s[n] && s[n] != '.')
		n++;
	if (n < 1 || n > 4)
		return -EINVAL;
	for (size_t i = 0; i < 4; i++) {
		char c = i < n ? s[i] : '_';
		if (!seg_char(c, i == 0))
			return -EINVAL;
		seg[i] = c;
	}
	*p = s + n;
	return 0;
}

void vmm_aml_name(struct vmm_aml *a, const char *path)
{
	if (failed(a))
		return;
	if (!path) {
		fail(a, vmm_err(-EINVAL, "AML: NULL name"));
		return;
	}
	const char *p = path;
	if (*p == '\\') {
		vmm_aml_byte(a, AML_ROOT_CHAR);
		p++;
	} else {
		while (*p == '^') {
			vmm_aml_byte(a, AML_PARENT_PREFIX);
			p++;
		}
	}
	char segs[255][4];
	unsigned n = 0;
	while (*p) {
		if (n == 255 || parse_seg(&p, segs[n]) < 0) {
			fail(a, vmm_err(-EINVAL, "AML: bad name \"%s\"", path));
			return;
		}
		n++;
		if (*p == '.' && !*++p) {
			fail(a, vmm_err(-EINVAL, "AML: bad name \"%s\" (trailing '.')", path));
			return;
		}
	}
	if (n == 0 && *path != '\\') {
		/* NullName is valid only as the root "\\"; "" or "^" name nothing. */
		fail(a, vmm_err(-EINVAL, "AML: empty name \"%s\"", path));
		return;
	}
	if (n == 0)
		vmm_aml_byte(a, 0x00); /* NullName */
	else if (n == 2)
		vmm_aml_byte(a, AML_DUAL_NAME_PREFIX);
	else if (n > 2) {
		vmm_aml_byte(a, AML_MULTI_NAME_PREFIX);
		vmm_aml_byte(a, (uint8_t)n);
	}
	vmm_aml_bytes(a, segs, 4 * (size_t)n);
}

/* ---- data ----------------------------------------------------------------------------- */

void vmm_aml_integer(struct vmm_aml *a, uint64_t v)
{
	if (v == 0) {
		vmm_aml_byte(a, AML_ZERO_OP);
	} else if (v == 1) {
		vmm_aml_byte(a, AML_ONE_OP);
	} else if (v == UINT64_MAX) {
		/* All ones is Ones in a revision-2 (64-bit) definition block. */
		vmm_aml_byte(a, AML_ONES_OP);
	} else if (v <= UINT8_MAX) {
		vmm_aml_byte(a, AML_BYTE_PREFIX);
		le(a, v, 1);
	} else if (v <= UINT16_MAX) {
		vmm_aml_byte(a, AML_WORD_PREFIX);
		le(a, v, 2);
	} else if (v <= UINT32_MAX) {
		vmm_aml_byte(a, AML_DWORD_PREFIX);
		le(a, v, 4);
	} else {
		vmm_aml_byte(a, AML_QWORD_PREFIX);
		le(a, v, 8);
	}
}

void vmm_aml_string(struct vmm_aml *a, const char *s)
{
	if (failed(a))
		return;
	if (!s) {
		fail(a, vmm_err(-EINVAL, "AML: NULL string"));
		return;
	}
	for (const char *c = s; *c; c++) {
		if ((unsigned char)*c > 0x7f) {
			fail(a, vmm_err(-EINVAL, "AML: non-ASCII byte %#x in a string",
					(unsigned char)*c));
			return;
		}
	}
	vmm_aml_byte(a, AML_STRING_PREFIX);
	vmm_aml_bytes(a, s, strlen(s) + 1);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int vmm_aml_eisaid_value(const char *id, uint32_t *out)
{
	if (!id || strlen(id) != 7)
		return vmm_err(-EINVAL, "AML: EisaId must be 7 characters (\"PNP0501\")");
	/* Three letters of 5 bits each ('A' = 1), then four hex digits: 32 bits in
	 * big-endian order, stored as a little-endian DWORD, so the bytes in memory read
	 * in the id's order. */
	uint32_t v = 0;
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z')
			return vmm_err(-EINVAL, "AML: EisaId \"%s\": '%c' is not an upper-case letter",
				       id, id[i]);
		v = (v << 5) | (uint32_t)(id[i] - 0x40);
	}
	for (int i = 3; i < 7; i++) {
		int d = hex_digit(id[i]);
		if (d < 0)
			return vmm_err(-EINVAL, "AML: EisaId \"%s\": '%c' is not an upper-case hex digit",
				       id, id[i]);
		v = (v << 4) | (uint32_t)d;
	}
	/* 15 + 16 = 31 bits; the top bit is 0. */
	*out = __builtin_bswap32(v);
	return 0;
}

void vmm_aml_eisaid(struct vmm_aml *a, const char *id)
{
	uint32_t v;
	if (failed(a))
		return;
	int r = vmm_aml_eisaid_value(id, &v);
	if (r < 0) {
		fail(a, r);
		return;
	}
	/* iasl always emits EisaId as a DWordConst, whatever its value. */
	vmm_aml_byte(a, AML_DWORD_PREFIX);
	le(a, v, 4);
}

void vmm_aml_name_decl(struct vmm_aml *a, const char *name)
{
	vmm_aml_byte(a, AML_NAME_OP);
	vmm_aml_name(a, name);
}

void vmm_aml_return(struct vmm_aml *a)
{
	vmm_aml_byte(a, AML_RETURN_OP);
}

/* ---- blocks with a PkgLength ---------------------------------------------------------- */

static void open_block(struct vmm_aml *a, bool buffer, bool restemplate)
{
	if (failed(a))
		return;
	if (a->depth == AML_MAX_DEPTH) {
		fail(a, vmm_err(-EINVAL, "AML: blocks nested deeper than %d", AML_MAX_DEPTH));
		return;
	}
	size_t start = a->len;
	reserve(a, buffer ? AML_RESERVE_BUF : AML_RESERVE_PKG);
	if (failed(a))
		return;
	a->open[a->depth].start = start;
	a->open[a->depth].buffer = buffer;
	a->open[a->depth].restemplate = restemplate;
	a->depth++;
}

void vmm_aml_end(struct vmm_aml *a)
{
	if (failed(a))
		return;
	if (a->depth == 0) {
		fail(a, vmm_err(-EINVAL, "AML: end without an open block"));
		return;
	}
	if (a->open[a->depth - 1].restemplate) {
		/* EndTag, checksum 0: "the resource data is treated as if the checksum
		 * operation succeeded" (ACPI 6.5, 6.4.2.9). */
		static const uint8_t end_tag[2] = { 0x79, 0x00 };
		vmm_aml_bytes(a, end_tag, sizeof end_tag);
		if (failed(a))
			return;
	}
	a->depth--;
	size_t start = a->open[a->depth].start;
	bool buffer = a->open[a->depth].buffer;
	size_t reserved = buffer ? AML_RESERVE_BUF : AML_RESERVE_PKG;
	size_t body = a->len - start - reserved;

	/* A Buffer's BufferSize integer comes first inside the package. */
	uint8_t head[AML_RESERVE_BUF];
	size_t hlen = 0;
	uint8_t size_enc[5];
	size_t slen = 0;
	if (buffer) {
		if (body <= UINT8_MAX) {
			size_enc[0] = AML_BYTE_PREFIX;
			size_enc[1] = (uint8_t)body;
			slen = 2;
		} else if (body <= UINT16_MAX) {
			size_enc[0] = AML_WORD_PREFIX;
			size_enc[1] = (uint8_t)body;
			size_enc[2] = (uint8_t)(body >> 8);
			slen = 3;
		} else {
			/* body < 4 GiB (see reserve). */
			size_enc[0] = AML_DWORD_PREFIX;
			for (int i = 0; i < 4; i++)
				size_enc[1 + i] = (uint8_t)(body >> (8 * i));
			slen = 5;
		}
	}
	if (body + slen > AML_PKGLEN_MAX) {
		fail(a, vmm_err(-E2BIG, "AML: package of %zu bytes exceeds the PkgLength limit",
				body + slen));
		return;
	}
	int n = vmm_aml_pkglen_encode((uint32_t)(body + slen), head);
	if (n < 0) {
		fail(a, n);
		return;
	}
	hlen = (size_t)n;
	memcpy(head + hlen, size_enc, slen);
	hlen += slen;
	/* hlen <= reserved always: the shortest encodings fit in what was reserved. */
	if (a->buf) {
		memmove(a->buf + start + hlen, a->buf + start + reserved, body);
		memcpy(a->buf + start, head, hlen);
	}
	a->len = start + hlen + body;
}

void vmm_aml_scope_begin(struct vmm_aml *a, const char *name)
{
	vmm_aml_byte(a, AML_SCOPE_OP);
	open_block(a, false, false);
	vmm_aml_name(a, name);
}

void vmm_aml_device_begin(struct vmm_aml *a, const char *name)
{
	vmm_aml_byte(a, AML_EXT_OP_PREFIX);
	vmm_aml_byte(a, AML_DEVICE_OP);
	open_block(a, false, false);
	vmm_aml_name(a, name);
}

void vmm_aml_method_begin(struct vmm_aml *a, const char *name, unsigned nargs, bool serialized)
{
	if (nargs > 7) {
		fail(a, vmm_err(-EINVAL, "AML: method %s with %u arguments (at most 7)",
				name ? name : "(null)", nargs));
		return;
	}
	vmm_aml_byte(a, AML_METHOD_OP);
	open_block(a, false, false);
	vmm_aml_name(a, name);
	vmm_aml_byte(a, (uint8_t)(nargs | (serialized ? 0x08u : 0u)));
}

void vmm_aml_package_begin(struct vmm_aml *a, unsigned count)
{
	if (count > UINT8_MAX) {
		fail(a, vmm_err(-EINVAL, "AML: package of %u elements (at most 255)", count));
		return;
	}
	vmm_aml_byte(a, AML_PACKAGE_OP);
	open_block(a, false, false);
	vmm_aml_byte(a, (uint8_t)count);
}

void vmm_aml_buffer_begin(struct vmm_aml *a)
{
	vmm_aml_byte(a, AML_BUFFER_OP);
	open_block(a, true, false);
}

void vmm_aml_restemplate_begin(struct vmm_aml *a)
{
	vmm_aml_byte(a, AML_BUFFER_OP);
	open_block(a, true, true);
}

size_t vmm_aml_peak(const struct vmm_aml *a)
{
	return a->peak;
}

long vmm_aml_finish(struct vmm_aml *a)
{
	if (failed(a))
		return a->err;
	if (a->depth)
		return vmm_err(-EINVAL, "AML: %u block(s) still open", a->depth);
	return (long)a->len;
}

/* ---- resource descriptors ------------------------------------------------------------- */

void vmm_aml_res_io(struct vmm_aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	/* Small item 0x08 (I/O port), length 7; decode bit 0 = 16-bit decode. */
	vmm_aml_byte(a, 0x47);
	vmm_aml_byte(a, 0x01);
	le(a, min, 2);
	le(a, max, 2);
	vmm_aml_byte(a, align);
	vmm_aml_byte(a, len);
}

void vmm_aml_res_irq_noflags(struct vmm_aml *a, unsigned irq)
{
	if (irq > 15) {
		fail(a, vmm_err(-EINVAL, "AML: IRQNoFlags IRQ %u (must be 0-15)", irq));
		return;
	}
	/* Small item 0x04 (IRQ), length 2: no flags byte means edge, active high. */
	vmm_aml_byte(a, 0x22);
	le(a, 1u << irq, 2);
}

void vmm_aml_res_mem32_fixed(struct vmm_aml *a, bool writable, uint32_t base, uint32_t len)
{
	/* Large item 0x06, length 9. */
	vmm_aml_byte(a, 0x86);
	le(a, 9, 2);
	vmm_aml_byte(a, writable ? 1 : 0);
	le(a, base, 4);
	le(a, len, 4);
}

void vmm_aml_res_qword_mem(struct vmm_aml *a, uint64_t base, uint64_t len)
{
	uint64_t max;
	if (len == 0 || __builtin_add_overflow(base, len - 1, &max)) {
		fail(a, vmm_err(-EINVAL, "AML: QWordMemory [%#llx, +%#llx) is empty or wraps",
				(unsigned long long)base, (unsigned long long)len));
		return;
	}
	/* Large item 0x0A (QWORD address space), length 43. */
	vmm_aml_byte(a, 0x8a);
	le(a, 43, 2);
	vmm_aml_byte(a, 0x00); /* resource type: memory range */
	/* general flags: MaxFixed (bit 3), MinFixed (bit 2), PosDecode (bit 1 = 0),
	 * ResourceConsumer (bit 0) */
	vmm_aml_byte(a, 0x0d);
	vmm_aml_byte(a, 0x01); /* type-specific: ReadWrite, NonCacheable */
	le(a, 0, 8);           /* granularity */
	le(a, base, 8);
	le(a, max, 8);
	le(a, 0, 8);           /* translation offset */
	le(a, len, 8);
}

void vmm_aml_res_interrupt(struct vmm_aml *a, uint32_t flags, uint32_t gsi)
{
	if (flags & ~(uint32_t)(AML_IRQ_EDGE | AML_IRQ_ACTIVE_LOW | AML_IRQ_SHARED | AML_IRQ_WAKE)) {
		fail(a, vmm_err(-EINVAL, "AML: bad interrupt flags %#x", flags));
		return;
	}
	/* Large item 0x09 (Extended Interrupt), length 6 for one interrupt and no resource
	 * source; bit 0 of the flags = ResourceConsumer. */
	vmm_aml_byte(a, 0x89);
	le(a, 6, 2);
	vmm_aml_byte(a, (uint8_t)(flags | 0x01));
	vmm_aml_byte(a, 1);
	le(a, gsi, 4);
}
