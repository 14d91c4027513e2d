/* User-space completion of XGETBV, XSETBV, XSAVE, XSAVEOPT and XRSTOR (64-bit forms).
 *
 * Why it is sound: KVM keeps the guest's extended state while the vCPU is out of
 * KVM_RUN, and hands it over in the standard (non-compacted) XSAVE layout through
 * KVM_GET_XSAVE/KVM_SET_XSAVE, with XCR0 through KVM_GET/SET_XCRS. XSAVE is then a copy
 * of the requested components from that image into guest memory, XRSTOR the reverse
 * with the CPU's checks, XGETBV/XSETBV a read/write of XCR0 (KVM validates the value as
 * the CPU would). Every architectural exception is raised as the CPU would raise it:
 * #UD without CR4.OSXSAVE, #NM with CR0.TS, #GP for a misaligned area, a bad header,
 * MXCSR reserved bits or an invalid XCR0, and #PF/#GP/#SS from the memory access itself
 * (fixup_mem.c). The layout (offset and size of each component) is the host CPU's
 * CPUID leaf 0xD, which is what KVM's image uses.
 *
 * Deliberately not completed (the emulation failure is reported, as for any unknown
 * instruction), so a guest on such a host must not use them (Linux: clearcpuid=xsavec,
 * xsaves):
 *   - XSAVES and XRSTORS: they also move supervisor components (IA32_XSS: PT, CET, ...),
 *     which KVM_GET_XSAVE does not expose to user space: no sound completion exists;
 *   - XSAVEC and the compacted form of XRSTOR: completable in principle, but unneeded
 *     (Linux only uses them together with XSAVES) and another layout to get right;
 *   - the forms without REX.W (the 32-bit x87 FIP/FDP layout with FCS/FDS, which KVM's
 *     image does not hold) and 32-bit address size.
 * XSAVEOPT is completed as XSAVE: skipping unmodified or initial components is an
 * optimisation the CPU may make, not a guarantee. */
#include <cpuid.h>
#include <stdlib.h>
#include <string.h>

#include "../../kvm/kvm.h"
#include "fixup.h"

#define CR0_TS (1ull << 3)
#define CR4_OSXSAVE (1ull << 18)
#define EFER_LMA (1ull << 10)
#define XSAVE_LEGACY 512u /* FXSAVE layout: x87 0-159 (MXCSR at 24), XMM 160-415 */
#define XSAVE_HEADER 64u
#define XSAVE_MIN (XSAVE_LEGACY + XSAVE_HEADER)
#define OFF_MXCSR 24u
#define OFF_MXCSR_MASK 28u
#define OFF_XMM 160u
#define LEN_XMM 256u
#define X87 1ull
#define SSE 2ull
#define YMM 4ull

/* 0f 01 d0 / 0f 01 d1 with no prefix. */
static bool is_0f01(const uint8_t *b, size_t len, uint8_t last)
{
	struct fixup_insn d;
	if (!vmm_fixup_prefixes(b, len, &d) || d.op != 0 || len < 3)
		return false;
	return b[0] == 0x0f && b[1] == 0x01 && b[2] == last;
}

bool vmm_fixup_is_xgetbv(const uint8_t *b, size_t len) { return is_0f01(b, len, 0xd0); }
bool vmm_fixup_is_xsetbv(const uint8_t *b, size_t len) { return is_0f01(b, len, 0xd1); }

/* REX.W 0f ae /digit with a memory operand and no 66/f2/f3/lock prefix (those make it
 * another instruction or #UD). */
static bool is_0fae(const uint8_t *b, size_t len, unsigned digit)
{
	struct fixup_insn d;
	if (!vmm_fixup_prefixes(b, len, &d) || d.p66 || d.pf2 || d.pf3 || d.lock || !(d.rex & 8))
		return false;
	if (len - d.op < 3 || b[d.op] != 0x0f || b[d.op + 1] != 0xae)
		return false;
	uint8_t modrm = b[d.op + 2];
	return (modrm >> 6) != 3 && ((modrm >> 3) & 7) == digit;
}

bool vmm_fixup_is_xsave(const uint8_t *b, size_t len) { return is_0fae(b, len, 4) || is_0fae(b, len, 6); }
bool vmm_fixup_is_xrstor(const uint8_t *b, size_t len) { return is_0fae(b, len, 5); }

static bool long_mode_64(const struct kvm_sregs *s) { return (s->efer & EFER_LMA) && s->cs.l; }

static int get_xcr0(vmm_vcpu *v, uint64_t *xcr0)
{
	struct kvm_xcrs x;
	memset(&x, 0, sizeof x);
	int r = vmm_kvm_get_xcrs(v->fd, &x);
	if (r < 0)
		return vmm_err(r, "fix-up: KVM_GET_XCRS failed");
	for (uint32_t i = 0; i < x.nr_xcrs && i < KVM_MAX_XCRS; i++)
		if (x.xcrs[i].xcr == 0) {
			*xcr0 = x.xcrs[i].value;
			return 0;
		}
	return vmm_err(-EIO, "fix-up: KVM_GET_XCRS returned no XCR0");
}

/* The vCPU's extended state in KVM's standard layout: *size bytes (4096, or what
 * KVM_CAP_XSAVE2 says if that is more). The caller frees *img. */
static int get_state(vmm_vcpu *v, uint8_t **img, size_t *size)
{
	int size2 = vmm_kvm_check_extension(v->vm->vm_fd, KVM_CAP_XSAVE2);
	*size = size2 > (int)sizeof(struct kvm_xsave) ? (size_t)size2 : sizeof(struct kvm_xsave);
	*img = calloc(1, *size);
	if (!*img)
		return vmm_err(-ENOMEM, "fix-up: out of memory");
	int r = size2 > 0 ? vmm_kvm_get_xsave2(v->fd, *img) : vmm_kvm_get_xsave(v->fd, (struct kvm_xsave *)*img);
	if (r < 0) {
		free(*img);
		*img = NULL;
		return vmm_err(r, "fix-up: KVM_GET_XSAVE failed");
	}
	return 0;
}

/* Offset and size of component i >= 2 in the standard layout (host CPUID 0xD.i). */
static bool component(unsigned i, uint32_t *off, uint32_t *size)
{
	unsigned a, b, c, d;
	if (!__get_cpuid_count(0xd, i, &a, &b, &c, &d) || a == 0)
		return false;
	*off = b;
	*size = a;
	return true;
}

/* Bytes of the area that the components in `rfbm` occupy, from its start; 0 if a
 * component is unknown or beyond KVM's image of `img_size` bytes. */
static size_t area_end(uint64_t rfbm, size_t img_size)
{
	size_t end = XSAVE_MIN;
	for (unsigned i = 2; i < 64; i++) {
		uint32_t off, size;
		if (!(rfbm >> i & 1))
			continue;
		if (!component(i, &off, &size) || off < XSAVE_MIN || (size_t)off + size > img_size)
			return 0;
		if ((size_t)off + size > end)
			end = (size_t)off + size;
	}
	return end;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, sizeof v); }

/* Common checks of XSAVE/XRSTOR in their architectural order. Returns FIXUP_DONE with
 * *raised set if an exception was injected, FIXUP_DECLINE, or a negative errno. */
static int xsave_common(vmm_vcpu *v, const uint8_t *b, size_t len, const struct kvm_regs *regs,
			const struct kvm_sregs *sregs, uint64_t *la, size_t *insn_len, bool *stack,
			uint64_t *rfbm, bool *raised)
{
	*raised = false;
	if (!long_mode_64(sregs))
		return FIXUP_DECLINE;
	struct fixup_insn d;
	if (!vmm_fixup_prefixes(b, len, &d))
		return FIXUP_DECLINE;
	int r = vmm_fixup_modrm_addr(&d, d.op + 2, regs, sregs, la, insn_len, stack);
	if (r)
		return r;
	uint8_t vec = 0;
	if (!(sregs->cr4 & CR4_OSXSAVE))
		vec = FIXUP_VEC_UD;
	else if (sregs->cr0 & CR0_TS)
		vec = FIXUP_VEC_NM;
	if (vec) {
		*raised = true;
		return vmm_fixup_raise(v, sregs, vec, -1, 0);
	}
	uint64_t xcr0;
	if ((r = get_xcr0(v, &xcr0)))
		return r;
	*rfbm = xcr0 & ((regs->rdx & 0xffffffffull) << 32 | (regs->rax & 0xffffffffull));
	if (*la & 63) {
		*raised = true;
		return vmm_fixup_raise(v, sregs, FIXUP_VEC_GP, 0, 0);
	}
	return FIXUP_DONE;
}

int vmm_fixup_xsave(vmm_vcpu *v, const uint8_t *b, size_t len, const struct kvm_regs *regs,
		    const struct kvm_sregs *sregs)
{
	uint64_t la, rfbm;
	size_t insn_len;
	bool stack, raised;
	int r = xsave_common(v, b, len, regs, sregs, &la, &insn_len, &stack, &rfbm, &raised);
	if (r || raised)
		return r;
	uint8_t *img;
	size_t img_size;
	if ((r = get_state(v, &img, &img_size)))
		return r;
	size_t end = area_end(rfbm, img_size);
	struct fixup_span sp;
	if (end == 0) {
		r = FIXUP_DECLINE;
		goto out;
	}
	r = vmm_fixup_map(v, regs, sregs, la, end, true, stack, &sp);
	if (r) {
		if (r == FIXUP_FAULT)
			r = FIXUP_DONE;
		goto out;
	}
	if (rfbm & X87) { /* everything but MXCSR and the XMM registers */
		vmm_fixup_span_write(&sp, 0, img, OFF_MXCSR);
		vmm_fixup_span_write(&sp, 32, img + 32, OFF_XMM - 32);
	}
	if (rfbm & (SSE | YMM)) /* MXCSR and MXCSR_MASK go with either */
		vmm_fixup_span_write(&sp, OFF_MXCSR, img + OFF_MXCSR, 8);
	if (rfbm & SSE)
		vmm_fixup_span_write(&sp, OFF_XMM, img + OFF_XMM, LEN_XMM);
	for (unsigned i = 2; i < 64; i++) {
		uint32_t off, size;
		if ((rfbm >> i & 1) && component(i, &off, &size))
			vmm_fixup_span_write(&sp, off, img + off, size);
	}
	/* XSTATE_BV: the requested bits say which components are not in their initial
	 * state (KVM's header knows); the other bits keep their value. */
	uint8_t bv[8];
	vmm_fixup_span_read(&sp, XSAVE_LEGACY, bv, sizeof bv);
	uint64_t xstate_bv = (get_u64(bv) & ~rfbm) | (get_u64(img + XSAVE_LEGACY) & rfbm);
	put_u64(bv, xstate_bv);
	vmm_fixup_span_write(&sp, XSAVE_LEGACY, bv, sizeof bv);
	r = vmm_fixup_advance_rip(v, regs, insn_len);
out:
	free(img);
	return r;
}

/* Reads [off, off + n) of the guest's area at `la` into dst (a #PF there is raised). */
static int read_area(vmm_vcpu *v, const struct kvm_regs *regs, const struct kvm_sregs *sregs, uint64_t la,
		     size_t off, void *dst, size_t n, bool stack)
{
	struct fixup_span sp;
	int r = vmm_fixup_map(v, regs, sregs, la + off, n, false, stack, &sp);
	if (r == 0)
		vmm_fixup_span_read(&sp, 0, dst, n);
	return r;
}

int vmm_fixup_xrstor(vmm_vcpu *v, const uint8_t *b, size_t len, const struct kvm_regs *regs,
		     const struct kvm_sregs *sregs)
{
	uint64_t la, rfbm, xcr0;
	size_t insn_len;
	bool stack, raised;
	int r = xsave_common(v, b, len, regs, sregs, &la, &insn_len, &stack, &rfbm, &raised);
	if (r || raised)
		return r;
	if ((r = get_xcr0(v, &xcr0)))
		return r;
	uint8_t hdr[XSAVE_HEADER];
	if ((r = read_area(v, regs, sregs, la, XSAVE_LEGACY, hdr, sizeof hdr, stack)))
		return r == FIXUP_FAULT ? FIXUP_DONE : r;
	uint64_t xstate_bv = get_u64(hdr), xcomp_bv = get_u64(hdr + 8);
	if (xcomp_bv >> 63)
		return FIXUP_DECLINE; /* the compacted form (see the top of this file) */
	/* Standard form: XCOMP_BV and the next 8 bytes zero, no component beyond XCR0. */
	if (xcomp_bv || get_u64(hdr + 16) || (xstate_bv & ~xcr0))
		return vmm_fixup_raise(v, sregs, FIXUP_VEC_GP, 0, 0);

	uint8_t *img;
	size_t img_size;
	if ((r = get_state(v, &img, &img_size)))
		return r;
	size_t end = area_end(rfbm, img_size);
	if (end == 0) {
		r = FIXUP_DECLINE;
		goto out;
	}
	if (rfbm & (X87 | SSE | YMM)) {
		uint8_t buf[XSAVE_LEGACY];
		if ((r = read_area(v, regs, sregs, la, 0, buf, sizeof buf, stack)))
			goto fault;
		uint32_t mxcsr, mask;
		memcpy(&mxcsr, buf + OFF_MXCSR, 4);
		memcpy(&mask, img + OFF_MXCSR_MASK, 4);
		if (mask == 0)
			mask = 0xffbf; /* the architectural default when the CPU reports none */
		if (mxcsr & ~mask) {
			r = vmm_fixup_raise(v, sregs, FIXUP_VEC_GP, 0, 0);
			goto out;
		}
		if (rfbm & X87) {
			if (xstate_bv & X87) {
				memcpy(img, buf, OFF_MXCSR);
				memcpy(img + 32, buf + 32, OFF_XMM - 32);
			} else { /* the initial x87 state: FCW 0x37f, everything else 0 */
				memset(img, 0, OFF_MXCSR);
				memset(img + 32, 0, OFF_XMM - 32);
				img[0] = 0x7f;
				img[1] = 0x03;
			}
		}
		/* The standard form loads MXCSR from memory whenever SSE or AVX is requested. */
		if (rfbm & (SSE | YMM))
			memcpy(img + OFF_MXCSR, &mxcsr, 4);
		if (rfbm & SSE) {
			if (xstate_bv & SSE)
				memcpy(img + OFF_XMM, buf + OFF_XMM, LEN_XMM);
			else
				memset(img + OFF_XMM, 0, LEN_XMM);
		}
	}
	for (unsigned i = 2; i < 64; i++) {
		uint32_t off, size;
		if (!(rfbm >> i & 1) || !component(i, &off, &size))
			continue;
		if (xstate_bv >> i & 1) {
			if ((r = read_area(v, regs, sregs, la, off, img + off, size, stack)))
				goto fault;
		} else {
			memset(img + off, 0, size); /* every component from 2 on starts as zeros */
		}
	}
	/* KVM's header: x87 and SSE marked present so that KVM takes the legacy area
	 * (MXCSR included) as written above; the others as the guest's header says. */
	uint64_t kvm_bv = get_u64(img + XSAVE_LEGACY);
	kvm_bv = (kvm_bv & ~rfbm) | (xstate_bv & rfbm) | X87 | SSE;
	put_u64(img + XSAVE_LEGACY, kvm_bv);
	r = vmm_kvm_set_xsave(v->fd, img);
	if (r < 0) {
		r = vmm_err(r, "fix-up: KVM_SET_XSAVE failed");
		goto out;
	}
	r = vmm_fixup_advance_rip(v, regs, insn_len);
	goto out;
fault:
	if (r == FIXUP_FAULT)
		r = FIXUP_DONE;
out:
	free(img);
	return r;
}

int vmm_fixup_xgetbv(vmm_vcpu *v, const uint8_t *b, size_t len, const struct kvm_regs *regs,
		     const struct kvm_sregs *sregs)
{
	(void)b; (void)len;
	if (!(sregs->cr4 & CR4_OSXSAVE))
		return vmm_fixup_raise(v, sregs, FIXUP_VEC_UD, -1, 0);
	uint64_t value, xcr0;
	int r = get_xcr0(v, &xcr0);
	if (r)
		return r;
	uint32_t ecx = (uint32_t)regs->rcx;
	unsigned a, bx, c, d;
	if (ecx == 0) {
		value = xcr0;
	} else if (ecx == 1 && __get_cpuid_count(0xd, 1, &a, &bx, &c, &d) && (a & 4)) {
		/* XINUSE: a component may be reported in use although it is in its initial
		 * state, never the reverse; KVM's header is that conservative record. */
		uint8_t *img;
		size_t img_size;
		if ((r = get_state(v, &img, &img_size)))
			return r;
		value = xcr0 & (get_u64(img + XSAVE_LEGACY) | X87 | SSE);
		free(img);
	} else {
		return vmm_fixup_raise(v, sregs, FIXUP_VEC_GP, 0, 0);
	}
	struct kvm_regs n = *regs;
	n.rax = value & 0xffffffffull;
	n.rdx = value >> 32;
	n.rip += 3;
	r = vmm_kvm_set_regs(v->fd, &n);
	return r < 0 ? vmm_err(r, "fix-up: KVM_SET_REGS failed") : FIXUP_DONE;
}

int vmm_fixup_xsetbv(vmm_vcpu *v, const uint8_t *b, size_t len, const struct kvm_regs *regs,
		     const struct kvm_sregs *sregs)
{
	(void)b; (void)len;
	if (!(sregs->cr4 & CR4_OSXSAVE))
		return vmm_fixup_raise(v, sregs, FIXUP_VEC_UD, -1, 0);
	if ((sregs->cs.selector & 3) != 0 || (uint32_t)regs->rcx != 0)
		return vmm_fixup_raise(v, sregs, FIXUP_VEC_GP, 0, 0);
	struct kvm_xcrs x;
	memset(&x, 0, sizeof x);
	x.nr_xcrs = 1;
	x.xcrs[0].xcr = 0;
	x.xcrs[0].value = (regs->rdx & 0xffffffffull) << 32 | (regs->rax & 0xffffffffull);
	int r = vmm_kvm_set_xcrs(v->fd, &x);
	/* KVM refuses what the CPU refuses (bit 0 clear, AVX without SSE, unsupported or
	 * incomplete AVX-512/AMX sets) with -EINVAL: the guest's #GP. */
	if (r == -EINVAL)
		return vmm_fixup_raise(v, sregs, FIXUP_VEC_GP, 0, 0);
	if (r < 0)
		return vmm_err(r, "fix-up: KVM_SET_XCRS failed");
	return vmm_fixup_advance_rip(v, regs, 3);
}
