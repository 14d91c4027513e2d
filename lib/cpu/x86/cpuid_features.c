/* Named CPUID features (the names of Linux's /proc/cpuinfo) and their dependencies, for
 * vmm_cpuid_hide_feature.
 *
 * Hiding a feature hides everything that depends on it, because a guest that sees a
 * feature without its prerequisite takes paths that fault (AVX without XSAVE means an
 * XSETBV that #GPs; AVX-512 without AVX2 breaks x86-64-v4 code that assumes v3).
 * Dependencies are the architectural ones plus those Linux enforces; each feature lists
 * at most two direct prerequisites and the closure is computed at run time.
 *
 * Features whose bit the OS controls (osxsave reflects CR4.OSXSAVE, ospke CR4.PKE; KVM
 * rewrites both at run time) are in the table so that hiding xsave or pku clears them
 * too, but they cannot be hidden by name: hide xsave or pku instead.
 *
 * Features that own XSAVE state components also clear them from the XCR0 mask KVM
 * allows (leaf 0xD.0 EAX/EDX): without that, a guest could still enable the state with
 * XSETBV on hosts that honour the table.
 *
 * AMD mirrors several leaf-1 EDX bits in leaf 0x80000001 EDX; only the leaf-1 bit is
 * cleared (KVM does not report the mirrors, and guests read leaf 1).
 */
#include <string.h>

#include "../../internal.h"

enum { EAX = VMM_CPUID_EAX, EBX = VMM_CPUID_EBX, ECX = VMM_CPUID_ECX, EDX = VMM_CPUID_EDX };
enum { PUB, OS }; /* PUB: can be hidden by name; OS: OS-controlled, only as a dependent */

#define L_EXT 0x80000001u

/* XCR0 state components (Intel SDM vol. 1, 13.1). */
#define XCR0_SSE (1ull << 1)
#define XCR0_YMM (1ull << 2)
#define XCR0_AVX512 ((1ull << 5) | (1ull << 6) | (1ull << 7)) /* opmask, ZMM_Hi256, Hi16_ZMM */
#define XCR0_PKRU (1ull << 9)
#define XCR0_AMX ((1ull << 17) | (1ull << 18)) /* XTILECFG, XTILEDATA */

/* X(id, name, leaf, sub-leaf, register, bit, prerequisite, prerequisite, XCR0 bits, kind)
 * A prerequisite of NONE means none. Order does not matter. */
#define FEATURES(X)                                                                        \
	/* leaf 1 EDX */                                                                   \
	X(fpu, "fpu", 1, 0, EDX, 0, NONE, NONE, 0, PUB)                                    \
	X(vme, "vme", 1, 0, EDX, 1, NONE, NONE, 0, PUB)                                    \
	X(de, "de", 1, 0, EDX, 2, NONE, NONE, 0, PUB)                                      \
	X(pse, "pse", 1, 0, EDX, 3, NONE, NONE, 0, PUB)                                    \
	X(tsc, "tsc", 1, 0, EDX, 4, NONE, NONE, 0, PUB)                                    \
	X(msr, "msr", 1, 0, EDX, 5, NONE, NONE, 0, PUB)                                    \
	X(pae, "pae", 1, 0, EDX, 6, NONE, NONE, 0, PUB)                                    \
	X(mce, "mce", 1, 0, EDX, 7, NONE, NONE, 0, PUB)                                    \
	X(cx8, "cx8", 1, 0, EDX, 8, NONE, NONE, 0, PUB)                                    \
	X(apic, "apic", 1, 0, EDX, 9, NONE, NONE, 0, PUB)                                  \
	X(sep, "sep", 1, 0, EDX, 11, NONE, NONE, 0, PUB)                                   \
	X(mtrr, "mtrr", 1, 0, EDX, 12, NONE, NONE, 0, PUB)                                 \
	X(pge, "pge", 1, 0, EDX, 13, NONE, NONE, 0, PUB)                                   \
	X(mca, "mca", 1, 0, EDX, 14, NONE, NONE, 0, PUB)                                   \
	X(cmov, "cmov", 1, 0, EDX, 15, NONE, NONE, 0, PUB)                                 \
	X(pat, "pat", 1, 0, EDX, 16, NONE, NONE, 0, PUB)                                   \
	X(pse36, "pse36", 1, 0, EDX, 17, pse, NONE, 0, PUB)                                \
	X(clflush, "clflush", 1, 0, EDX, 19, NONE, NONE, 0, PUB)                           \
	X(mmx, "mmx", 1, 0, EDX, 23, fpu, NONE, 0, PUB)                                    \
	X(fxsr, "fxsr", 1, 0, EDX, 24, fpu, NONE, 0, PUB)                                  \
	X(sse, "sse", 1, 0, EDX, 25, fxsr, NONE, XCR0_SSE, PUB)                            \
	X(sse2, "sse2", 1, 0, EDX, 26, sse, NONE, 0, PUB)                                  \
	X(ht, "ht", 1, 0, EDX, 28, NONE, NONE, 0, PUB)                                     \
	/* leaf 1 ECX */                                                                   \
	X(pni, "pni", 1, 0, ECX, 0, sse2, NONE, 0, PUB)                                    \
	X(pclmulqdq, "pclmulqdq", 1, 0, ECX, 1, sse2, NONE, 0, PUB)                        \
	X(monitor, "monitor", 1, 0, ECX, 3, NONE, NONE, 0, PUB)                            \
	X(vmx, "vmx", 1, 0, ECX, 5, NONE, NONE, 0, PUB)                                    \
	X(ssse3, "ssse3", 1, 0, ECX, 9, pni, NONE, 0, PUB)                                 \
	X(fma, "fma", 1, 0, ECX, 12, avx, NONE, 0, PUB)                                    \
	X(cx16, "cx16", 1, 0, ECX, 13, NONE, NONE, 0, PUB)                                 \
	X(pcid, "pcid", 1, 0, ECX, 17, NONE, NONE, 0, PUB)                                 \
	X(sse4_1, "sse4_1", 1, 0, ECX, 19, ssse3, NONE, 0, PUB)                            \
	X(sse4_2, "sse4_2", 1, 0, ECX, 20, sse4_1, NONE, 0, PUB)                           \
	X(x2apic, "x2apic", 1, 0, ECX, 21, apic, NONE, 0, PUB)                             \
	X(movbe, "movbe", 1, 0, ECX, 22, NONE, NONE, 0, PUB)                               \
	X(popcnt, "popcnt", 1, 0, ECX, 23, NONE, NONE, 0, PUB)                             \
	X(tsc_deadline_timer, "tsc_deadline_timer", 1, 0, ECX, 24, apic, NONE, 0, PUB)     \
	X(aes, "aes", 1, 0, ECX, 25, sse2, NONE, 0, PUB)                                   \
	X(xsave, "xsave", 1, 0, ECX, 26, fxsr, NONE, 0, PUB)                               \
	X(osxsave, "osxsave", 1, 0, ECX, 27, xsave, NONE, 0, OS)                           \
	X(avx, "avx", 1, 0, ECX, 28, xsave, sse2, XCR0_YMM, PUB)                           \
	X(f16c, "f16c", 1, 0, ECX, 29, avx, NONE, 0, PUB)                                  \
	X(rdrand, "rdrand", 1, 0, ECX, 30, NONE, NONE, 0, PUB)                             \
	X(hypervisor, "hypervisor", 1, 0, ECX, 31, NONE, NONE, 0, PUB)                     \
	/* leaf 7.0 EBX */                                                                 \
	X(fsgsbase, "fsgsbase", 7, 0, EBX, 0, NONE, NONE, 0, PUB)                          \
	X(bmi1, "bmi1", 7, 0, EBX, 3, NONE, NONE, 0, PUB)                                  \
	X(hle, "hle", 7, 0, EBX, 4, NONE, NONE, 0, PUB)                                    \
	X(avx2, "avx2", 7, 0, EBX, 5, avx, NONE, 0, PUB)                                   \
	X(smep, "smep", 7, 0, EBX, 7, NONE, NONE, 0, PUB)                                  \
	X(bmi2, "bmi2", 7, 0, EBX, 8, NONE, NONE, 0, PUB)                                  \
	X(erms, "erms", 7, 0, EBX, 9, NONE, NONE, 0, PUB)                                  \
	X(invpcid, "invpcid", 7, 0, EBX, 10, pcid, NONE, 0, PUB)                           \
	X(rtm, "rtm", 7, 0, EBX, 11, NONE, NONE, 0, PUB)                                   \
	X(avx512f, "avx512f", 7, 0, EBX, 16, avx2, NONE, XCR0_AVX512, PUB)                 \
	X(avx512dq, "avx512dq", 7, 0, EBX, 17, avx512f, NONE, 0, PUB)                      \
	X(rdseed, "rdseed", 7, 0, EBX, 18, NONE, NONE, 0, PUB)                             \
	X(adx, "adx", 7, 0, EBX, 19, NONE, NONE, 0, PUB)                                   \
	X(smap, "smap", 7, 0, EBX, 20, NONE, NONE, 0, PUB)                                 \
	X(avx512ifma, "avx512ifma", 7, 0, EBX, 21, avx512f, NONE, 0, PUB)                  \
	X(clflushopt, "clflushopt", 7, 0, EBX, 23, NONE, NONE, 0, PUB)                     \
	X(clwb, "clwb", 7, 0, EBX, 24, NONE, NONE, 0, PUB)                                 \
	X(avx512pf, "avx512pf", 7, 0, EBX, 26, avx512f, NONE, 0, PUB)                      \
	X(avx512er, "avx512er", 7, 0, EBX, 27, avx512f, NONE, 0, PUB)                      \
	X(avx512cd, "avx512cd", 7, 0, EBX, 28, avx512f, NONE, 0, PUB)                      \
	X(sha_ni, "sha_ni", 7, 0, EBX, 29, sse2, NONE, 0, PUB)                             \
	X(avx512bw, "avx512bw", 7, 0, EBX, 30, avx512f, NONE, 0, PUB)                      \
	X(avx512vl, "avx512vl", 7, 0, EBX, 31, avx512f, NONE, 0, PUB)                      \
	/* leaf 7.0 ECX */                                                                 \
	X(avx512vbmi, "avx512vbmi", 7, 0, ECX, 1, avx512bw, NONE, 0, PUB)                  \
	X(umip, "umip", 7, 0, ECX, 2, NONE, NONE, 0, PUB)                                  \
	X(pku, "pku", 7, 0, ECX, 3, NONE, NONE, XCR0_PKRU, PUB)                            \
	X(ospke, "ospke", 7, 0, ECX, 4, pku, NONE, 0, OS)                                  \
	X(waitpkg, "waitpkg", 7, 0, ECX, 5, NONE, NONE, 0, PUB)                            \
	X(avx512_vbmi2, "avx512_vbmi2", 7, 0, ECX, 6, avx512bw, NONE, 0, PUB)              \
	X(gfni, "gfni", 7, 0, ECX, 8, sse2, NONE, 0, PUB)                                  \
	X(vaes, "vaes", 7, 0, ECX, 9, avx, aes, 0, PUB)                                    \
	X(vpclmulqdq, "vpclmulqdq", 7, 0, ECX, 10, avx, pclmulqdq, 0, PUB)                 \
	X(avx512_vnni, "avx512_vnni", 7, 0, ECX, 11, avx512f, NONE, 0, PUB)                \
	X(avx512_bitalg, "avx512_bitalg", 7, 0, ECX, 12, avx512bw, NONE, 0, PUB)           \
	X(avx512_vpopcntdq, "avx512_vpopcntdq", 7, 0, ECX, 14, avx512f, NONE, 0, PUB)      \
	X(la57, "la57", 7, 0, ECX, 16, lm, NONE, 0, PUB)                                   \
	X(rdpid, "rdpid", 7, 0, ECX, 22, NONE, NONE, 0, PUB)                               \
	X(movdiri, "movdiri", 7, 0, ECX, 27, NONE, NONE, 0, PUB)                           \
	X(movdir64b, "movdir64b", 7, 0, ECX, 28, NONE, NONE, 0, PUB)                       \
	/* leaf 7.0 EDX */                                                                 \
	X(avx512_4vnniw, "avx512_4vnniw", 7, 0, EDX, 2, avx512f, NONE, 0, PUB)             \
	X(avx512_4fmaps, "avx512_4fmaps", 7, 0, EDX, 3, avx512f, NONE, 0, PUB)             \
	X(fsrm, "fsrm", 7, 0, EDX, 4, NONE, NONE, 0, PUB)                                  \
	X(avx512_vp2intersect, "avx512_vp2intersect", 7, 0, EDX, 8, avx512f, NONE, 0, PUB) \
	X(md_clear, "md_clear", 7, 0, EDX, 10, NONE, NONE, 0, PUB)                         \
	X(serialize, "serialize", 7, 0, EDX, 14, NONE, NONE, 0, PUB)                       \
	X(tsxldtrk, "tsxldtrk", 7, 0, EDX, 16, rtm, NONE, 0, PUB)                          \
	X(amx_bf16, "amx_bf16", 7, 0, EDX, 22, amx_tile, NONE, 0, PUB)                     \
	X(avx512_fp16, "avx512_fp16", 7, 0, EDX, 23, avx512bw, NONE, 0, PUB)               \
	X(amx_tile, "amx_tile", 7, 0, EDX, 24, xfd, NONE, XCR0_AMX, PUB)                   \
	X(amx_int8, "amx_int8", 7, 0, EDX, 25, amx_tile, NONE, 0, PUB)                     \
	/* leaf 7.1 EAX */                                                                 \
	X(avx_vnni, "avx_vnni", 7, 1, EAX, 4, avx2, NONE, 0, PUB)                          \
	X(avx512_bf16, "avx512_bf16", 7, 1, EAX, 5, avx512bw, NONE, 0, PUB)                \
	/* leaf 0xD.1 EAX */                                                               \
	X(xsaveopt, "xsaveopt", 0xd, 1, EAX, 0, xsave, NONE, 0, PUB)                       \
	X(xsavec, "xsavec", 0xd, 1, EAX, 1, xsave, NONE, 0, PUB)                           \
	X(xgetbv1, "xgetbv1", 0xd, 1, EAX, 2, xsave, NONE, 0, PUB)                         \
	X(xsaves, "xsaves", 0xd, 1, EAX, 3, xsave, NONE, 0, PUB)                           \
	X(xfd, "xfd", 0xd, 1, EAX, 4, xsave, NONE, 0, PUB)                                 \
	/* leaf 0x80000001 ECX */                                                          \
	X(lahf_lm, "lahf_lm", L_EXT, 0, ECX, 0, lm, NONE, 0, PUB)                          \
	X(svm, "svm", L_EXT, 0, ECX, 2, NONE, NONE, 0, PUB)                                \
	X(abm, "abm", L_EXT, 0, ECX, 5, NONE, NONE, 0, PUB)                                \
	X(sse4a, "sse4a", L_EXT, 0, ECX, 6, pni, NONE, 0, PUB)                             \
	X(misalignsse, "misalignsse", L_EXT, 0, ECX, 7, sse, NONE, 0, PUB)                 \
	X(prefetch3d, "3dnowprefetch", L_EXT, 0, ECX, 8, NONE, NONE, 0, PUB)               \
	X(xop, "xop", L_EXT, 0, ECX, 11, avx, NONE, 0, PUB)                                \
	X(fma4, "fma4", L_EXT, 0, ECX, 16, avx, NONE, 0, PUB)                              \
	X(tbm, "tbm", L_EXT, 0, ECX, 21, NONE, NONE, 0, PUB)                               \
	/* leaf 0x80000001 EDX */                                                          \
	X(syscall, "syscall", L_EXT, 0, EDX, 11, NONE, NONE, 0, PUB)                       \
	X(nx, "nx", L_EXT, 0, EDX, 20, NONE, NONE, 0, PUB)                                 \
	X(mmxext, "mmxext", L_EXT, 0, EDX, 22, mmx, NONE, 0, PUB)                          \
	X(fxsr_opt, "fxsr_opt", L_EXT, 0, EDX, 25, fxsr, NONE, 0, PUB)                     \
	X(pdpe1gb, "pdpe1gb", L_EXT, 0, EDX, 26, lm, NONE, 0, PUB)                         \
	X(rdtscp, "rdtscp", L_EXT, 0, EDX, 27, tsc, NONE, 0, PUB)                          \
	X(lm, "lm", L_EXT, 0, EDX, 29, pae, NONE, 0, PUB)

#define X_ID(id, ...) F_##id,
enum feature_id { F_NONE, FEATURES(X_ID) F_COUNT };

struct feature {
	const char *name;
	uint32_t leaf, sub;
	uint8_t reg, bit, kind;
	uint8_t dep[2];
	uint64_t xcr0;
};

#define X_ROW(id, nm, lf, sb, rg, bt, d0, d1, x0, kd)                                     \
	[F_##id] = { .name = nm, .leaf = lf, .sub = sb, .reg = rg, .bit = bt, .kind = kd, \
		     .dep = { F_##d0, F_##d1 }, .xcr0 = x0 },
static const struct feature features[F_COUNT] = { FEATURES(X_ROW) };

/* The dep bytes would silently truncate past 255 features. */
_Static_assert(F_COUNT <= 256, "feature ids must fit in uint8_t");

/* Other names people use for the same bit (Intel's vs Linux's). */
static const struct {
	const char *alias;
	enum feature_id id;
} aliases[] = {
	{ "sse3", F_pni },
	{ "lzcnt", F_abm },
	{ "sha", F_sha_ni },
};

const char *vmm_cpuid_feature_name(size_t i)
{
	for (size_t id = 1; id < F_COUNT; id++) {
		if (features[id].kind != PUB)
			continue;
		if (i == 0)
			return features[id].name;
		i--;
	}
	return NULL;
}

static enum feature_id lookup(const char *name)
{
	for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
		if (strcmp(name, aliases[i].alias) == 0)
			return aliases[i].id;
	for (size_t id = 1; id < F_COUNT; id++)
		if (strcmp(name, features[id].name) == 0)
			return (enum feature_id)id;
	return F_NONE;
}

struct hide_ctx {
	bool hide[F_COUNT];
};

static uint32_t *reg_of(vmm_cpuid_entry *e, uint8_t reg)
{
	switch (reg) {
	case EAX: return &e->eax;
	case EBX: return &e->ebx;
	case ECX: return &e->ecx;
	default: return &e->edx;
	}
}

/* Clears, in one entry, the bits of every hidden feature that lives in it. A plain
 * entry (no significant index) answers every sub-leaf. */
static int clear_hidden(void *opaque, vmm_cpuid_entry *e)
{
	const struct hide_ctx *ctx = opaque;
	bool plain = !(e->flags & VMM_CPUID_SIGNIFICANT_INDEX);
	for (size_t id = 1; id < F_COUNT; id++) {
		if (!ctx->hide[id])
			continue;
		const struct feature *f = &features[id];
		if (f->leaf == e->function && (plain || f->sub == e->index))
			*reg_of(e, f->reg) &= ~(1u << f->bit);
		if (f->xcr0 && e->function == 0xd && (plain || e->index == 0)) {
			e->eax &= ~(uint32_t)f->xcr0;
			e->edx &= ~(uint32_t)(f->xcr0 >> 32);
		}
	}
	return 0;
}

int vmm_cpuid_hide_feature(vmm_cpuid *cpuid, const char *name)
{
	if (!cpuid || !name)
		return vmm_err(-EINVAL, "vmm_cpuid_hide_feature: NULL argument");
	enum feature_id id = lookup(name);
	if (id == F_NONE)
		return vmm_err(-ENOENT, "CPUID feature \"%s\" is unknown (see vmm_cpuid_feature_name)", name);
	if (features[id].kind == OS)
		return vmm_err(-ENOENT, "CPUID feature \"%s\" is set by the guest OS, not the VMM; hide %s instead",
			       name, features[features[id].dep[0]].name);

	/* Closure over "depends on a hidden feature". Each pass hides at least one more
	 * feature or ends, so F_COUNT passes bound it whatever the table order. */
	struct hide_ctx ctx = { .hide = { [0] = false } };
	ctx.hide[id] = true;
	for (bool changed = true; changed;) {
		changed = false;
		for (size_t i = 1; i < F_COUNT; i++) {
			if (ctx.hide[i])
				continue;
			if (ctx.hide[features[i].dep[0]] || ctx.hide[features[i].dep[1]]) {
				ctx.hide[i] = true;
				changed = true;
			}
		}
	}
	return vmm_cpuid_filter(cpuid, clear_hidden, &ctx);
}
