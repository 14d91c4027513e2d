/* AML (ACPI Machine Language) byte-code encoder, for the DSDT the library builds.
 *
 * An encoder writes into a caller-owned, bounded buffer. Every call appends; the first
 * failure (buffer full, a bad name or EisaId, too deep nesting, a package too long) is
 * recorded with vmm_err and makes every later call a no-op, so a sequence of calls is
 * checked once, at vmm_aml_finish. Nothing is written past `cap`.
 *
 * Objects with a PkgLength (Scope, Device, Method, Package, Buffer) are opened with
 * *_begin and closed with vmm_aml_end. The encoder reserves the longest PkgLength (4 bytes)
 * at the opening and, at the close, writes the shortest encoding and moves the contents
 * down, so the output is byte-identical to what iasl emits for the same ASL.
 *
 * Because of those reserved bytes, the buffer must be a little larger than the output:
 * up to 9 bytes per block open at the deepest point. Measuring mode (buf == NULL,
 * cap == 0) reports both numbers: vmm_aml_finish the output's size, vmm_aml_peak the
 * capacity the encoding needs.
 */
#ifndef LIBVMM_BOOT_AML_H
#define LIBVMM_BOOT_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../internal.h"

#define AML_MAX_DEPTH 16
/* The largest value a PkgLength can encode (28 bits). */
#define AML_PKGLEN_MAX 0x0fffffffu

/* Opcodes (ACPI 6.5, section 20.3). */
#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX 0x0e
#define AML_SCOPE_OP 0x10
#define AML_BUFFER_OP 0x11
#define AML_PACKAGE_OP 0x12
#define AML_METHOD_OP 0x14
#define AML_DUAL_NAME_PREFIX 0x2e
#define AML_MULTI_NAME_PREFIX 0x2f
#define AML_EXT_OP_PREFIX 0x5b
#define AML_DEVICE_OP 0x82 /* after AML_EXT_OP_PREFIX */
#define AML_ROOT_CHAR 0x5c
#define AML_PARENT_PREFIX 0x5e
#define AML_RETURN_OP 0xa4
#define AML_ONES_OP 0xff

/* Interrupt descriptor flags (vmm_aml_res_interrupt). Default: level, active high, exclusive,
 * consumer. */
#define AML_IRQ_EDGE (1u << 1)
#define AML_IRQ_ACTIVE_LOW (1u << 2)
#define AML_IRQ_SHARED (1u << 3)
#define AML_IRQ_WAKE (1u << 4)

struct vmm_aml {
	uint8_t *buf;
	size_t cap;
	size_t len;
	size_t peak;                   /* the most bytes the buffer held at once */
	int err;                       /* first error, sticky */
	unsigned depth;
	struct {
		size_t start;          /* offset of the reserved PkgLength bytes */
		bool buffer;           /* a Buffer: its BufferSize goes after the PkgLength */
		bool restemplate;      /* a ResourceTemplate: an EndTag goes before the close */
	} open[AML_MAX_DEPTH];
};

VMM_HIDDEN void vmm_aml_init(struct vmm_aml *a, void *buf, size_t cap);
/* Returns the byte count written (or, in measuring mode, needed), or the first error
 * (negative errno; -ENOSPC buffer full, -EINVAL bad input, -E2BIG PkgLength too large).
 * A block still open is -EINVAL. */
VMM_HIDDEN long vmm_aml_finish(struct vmm_aml *a);

/* The buffer capacity the calls so far needed (>= the output's length). */
VMM_HIDDEN size_t vmm_aml_peak(const struct vmm_aml *a);

/* Encodes a PkgLength for `len` bytes that follow the PkgLength itself (the encoding's
 * own bytes are added). Returns the encoding's length (1-4) or -E2BIG. `out` has room
 * for 4 bytes. Exposed for tests. */
VMM_HIDDEN int vmm_aml_pkglen_encode(uint32_t len, uint8_t out[4]);

/* Raw bytes. */
VMM_HIDDEN void vmm_aml_byte(struct vmm_aml *a, uint8_t b);
VMM_HIDDEN void vmm_aml_bytes(struct vmm_aml *a, const void *p, size_t n);

/* A NameString: "\\" or "^" prefixes, then NameSegs separated by '.', each 1-4 chars
 * (padded with '_'): "_HID", "\\_SB.COM1", "^^PCI0.FOO". "\\" alone is the root. */
VMM_HIDDEN void vmm_aml_name(struct vmm_aml *a, const char *path);
/* An integer as iasl optimizes it: ZeroOp, OneOp, OnesOp (all 64 bits set: the encoder
 * targets revision-2 definition blocks, whose integers are 64-bit), or the shortest of
 * Byte/Word/DWord/QWordPrefix. */
VMM_HIDDEN void vmm_aml_integer(struct vmm_aml *a, uint64_t v);
/* A String of printable ASCII (0x01-0x7f), NUL-terminated in AML. */
VMM_HIDDEN void vmm_aml_string(struct vmm_aml *a, const char *s);
/* EisaId("PNP0501"): three upper-case letters and four upper-case hex digits, compressed
 * into a DWordConst. */
VMM_HIDDEN void vmm_aml_eisaid(struct vmm_aml *a, const char *id);
/* Computes the compressed EISA id without emitting it. Returns 0 or -EINVAL. */
VMM_HIDDEN int vmm_aml_eisaid_value(const char *id, uint32_t *out);

/* Name(name, ...): emits NameOp and the name; the caller then emits the object. */
VMM_HIDDEN void vmm_aml_name_decl(struct vmm_aml *a, const char *name);
/* Return(...): emits ReturnOp; the caller then emits the value. */
VMM_HIDDEN void vmm_aml_return(struct vmm_aml *a);

VMM_HIDDEN void vmm_aml_scope_begin(struct vmm_aml *a, const char *name);
VMM_HIDDEN void vmm_aml_device_begin(struct vmm_aml *a, const char *name);
/* nargs 0-7; serialized sets the SerializeFlag; sync level 0. */
VMM_HIDDEN void vmm_aml_method_begin(struct vmm_aml *a, const char *name, unsigned nargs,
				     bool serialized);
/* Package with `count` elements (0-255) that the caller emits before vmm_aml_end. */
VMM_HIDDEN void vmm_aml_package_begin(struct vmm_aml *a, unsigned count);
/* Buffer whose bytes the caller emits before vmm_aml_end; the BufferSize is their count. */
VMM_HIDDEN void vmm_aml_buffer_begin(struct vmm_aml *a);
/* ResourceTemplate(): a Buffer of resource descriptors; vmm_aml_end appends the EndTag
 * (checksum 0, "treated as correct" per the spec, as iasl emits it). */
VMM_HIDDEN void vmm_aml_restemplate_begin(struct vmm_aml *a);
VMM_HIDDEN void vmm_aml_end(struct vmm_aml *a);

/* Resource descriptors (ACPI 6.5, section 6.4), to be emitted inside a ResourceTemplate. */
/* IO(Decode16, min, max, align, len). */
VMM_HIDDEN void vmm_aml_res_io(struct vmm_aml *a, uint16_t min, uint16_t max, uint8_t align,
			       uint8_t len);
/* IRQNoFlags(){irq}: a 16-bit mask with one bit, irq 0-15. */
VMM_HIDDEN void vmm_aml_res_irq_noflags(struct vmm_aml *a, unsigned irq);
/* Memory32Fixed(ReadWrite or ReadOnly, base, len). */
VMM_HIDDEN void vmm_aml_res_mem32_fixed(struct vmm_aml *a, bool writable, uint32_t base,
					uint32_t len);
/* QWordMemory(ResourceConsumer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
 * 0, base, base + len - 1, 0, len). len > 0 and base + len - 1 must not wrap. */
VMM_HIDDEN void vmm_aml_res_qword_mem(struct vmm_aml *a, uint64_t base, uint64_t len);
/* Interrupt(ResourceConsumer, flags, ...){gsi}: the Extended Interrupt descriptor with
 * one interrupt; flags are AML_IRQ_*. */
VMM_HIDDEN void vmm_aml_res_interrupt(struct vmm_aml *a, uint32_t flags, uint32_t gsi);

#endif
