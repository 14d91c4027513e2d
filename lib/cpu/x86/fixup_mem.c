/* Memory operands of fixed-up instructions: decoding the ModRM/SIB address (64-bit mode
 * only) and reaching the guest's memory with the checks and page-table side effects
 * the CPU's own access would have, so that a completed instruction is indistinguishable
 * from one the CPU ran: faults are the architectural #GP/#SS/#PF, and the guest's
 * accessed and dirty bits are right (Linux relies on the dirty bit, e.g. for MADV_FREE
 * pages). What is not modelled (protection keys, CET shadow stacks, 32-bit paging)
 * makes vmm_fixup_map decline instead of guessing. */
#include <string.h>

#include "../../kvm/kvm.h"
#include "fixup.h"

#define CR0_WP (1ull << 16)
#define CR4_LA57 (1ull << 12)
#define CR4_SMAP (1ull << 21)
#define CR4_PKE (1ull << 22)
#define CR4_CET (1ull << 23)
#define CR4_PKS (1ull << 24)
#define EFER_NXE (1ull << 11)
#define RFLAGS_AC (1ull << 18)
#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_US (1ull << 2)
#define PTE_A (1ull << 5)
#define PTE_D (1ull << 6)
#define PTE_PS (1ull << 7)
#define PTE_NX (1ull << 63)
#define ADDR_MASK 0x000ffffffffff000ull
#define PF_P 1u
#define PF_W 2u
#define PF_U 4u
#define PF_RSVD 8u

bool vmm_fixup_prefixes(const uint8_t *b, size_t len, struct fixup_insn *d)
{
	memset(d, 0, sizeof *d);
	d->b = b;
	d->len = len;
	size_t i = 0;
	for (; i < len; i++) {
		switch (b[i]) {
		case 0x66: d->p66 = true; continue;
		case 0xf2: d->pf2 = true; continue;
		case 0xf3: d->pf3 = true; continue;
		case 0xf0: d->lock = true; continue;
		case 0x67: d->addr32 = true; continue;
		case 0x64: case 0x65: d->seg = b[i]; continue;
		case 0x26: case 0x2e: case 0x36: case 0x3e: d->seg = 0; continue; /* base 0 */
		default: break;
		}
		break;
	}
	/* REX counts only right before the opcode. */
	if (i < len && (b[i] & 0xf0) == 0x40)
		d->rex = b[i++];
	d->op = i;
	return i < len;
}

static uint64_t gpr(const struct kvm_regs *r, unsigned n)
{
	switch (n) {
	case 0: return r->rax;
	case 1: return r->rcx;
	case 2: return r->rdx;
	case 3: return r->rbx;
	case 4: return r->rsp;
	case 5: return r->rbp;
	case 6: return r->rsi;
	case 7: return r->rdi;
	case 8: return r->r8;
	case 9: return r->r9;
	case 10: return r->r10;
	case 11: return r->r11;
	case 12: return r->r12;
	case 13: return r->r13;
	case 14: return r->r14;
	default: return r->r15;
	}
}

int vmm_fixup_modrm_addr(const struct fixup_insn *d, size_t modrm_at, const struct kvm_regs *regs,
			 const struct kvm_sregs *sregs, uint64_t *la, size_t *insn_len, bool *stack)
{
	if (d->addr32 || modrm_at >= d->len)
		return FIXUP_DECLINE;
	const uint8_t *b = d->b;
	unsigned mod = b[modrm_at] >> 6, rm = b[modrm_at] & 7;
	size_t at = modrm_at + 1;
	uint64_t addr = 0;
	bool rip_rel = false, disp32 = mod == 2;
	*stack = false;
	if (mod == 3)
		return FIXUP_DECLINE;
	if (rm == 4) { /* SIB */
		if (at >= d->len)
			return FIXUP_DECLINE;
		unsigned scale = b[at] >> 6;
		unsigned index = ((b[at] >> 3) & 7) | ((d->rex & 2u) << 2);
		unsigned base = (b[at] & 7) | ((d->rex & 1u) << 3);
		at++;
		if (index != 4)
			addr += gpr(regs, index) << scale;
		if ((base & 7) == 5 && mod == 0) {
			disp32 = true; /* no base register */
		} else {
			addr += gpr(regs, base);
			*stack = (base == 4 || base == 5);
		}
	} else if (rm == 5 && mod == 0) {
		rip_rel = disp32 = true;
	} else {
		unsigned base = rm | ((d->rex & 1u) << 3);
		addr += gpr(regs, base);
		*stack = (base == 4 || base == 5);
	}
	size_t disp_len = mod == 1 ? 1 : disp32 ? 4 : 0;
	if (disp_len > d->len - at)
		return FIXUP_DECLINE;
	int64_t disp = 0;
	if (disp_len == 1) {
		disp = (int8_t)b[at];
	} else if (disp_len == 4) {
		uint32_t u = (uint32_t)b[at] | (uint32_t)b[at + 1] << 8 | (uint32_t)b[at + 2] << 16 |
			     (uint32_t)b[at + 3] << 24;
		disp = (int32_t)u;
	}
	at += disp_len;
	addr += (uint64_t)disp;
	if (rip_rel)
		addr += regs->rip + at;
	if (d->seg == 0x64)
		addr += sregs->fs.base;
	else if (d->seg == 0x65)
		addr += sregs->gs.base;
	if (d->seg)
		*stack = false; /* an explicit FS/GS override is not an SS access */
	*la = addr;
	*insn_len = at;
	return FIXUP_DONE;
}

static bool canonical(uint64_t a, bool la57)
{
	unsigned bits = la57 ? 57 : 48;
	int64_t s = (int64_t)(a << (64 - bits)) >> (64 - bits);
	return (uint64_t)s == a;
}

/* One translation: the guest-physical address of `la`, or the #PF error code. `ptes`
 * receives the host addresses of the entries walked (for the A/D update). */
struct walk {
	uint64_t pte_gpa[5];
	unsigned n;
	uint64_t gpa;
	uint32_t pf;
};

static int walk(vmm_vcpu *v, const struct kvm_sregs *s, uint64_t la, bool write, bool user, bool ac,
		struct walk *w)
{
	unsigned levels = (s->cr4 & CR4_LA57) ? 5 : 4;
	uint64_t table = s->cr3 & ADDR_MASK;
	bool rw = true, us = true;
	uint32_t acc = (write ? PF_W : 0) | (user ? PF_U : 0);
	w->n = 0;
	for (unsigned level = levels; level >= 1; level--) {
		uint64_t at = table + ((la >> (12 + 9 * (level - 1))) & 0x1ff) * 8;
		void *host;
		/* A read translation: the entry enters the dirty log only if set_ad changes it. */
		if (vmm_mem_translate(v->vm->mem, at, 8, false, &host))
			return FIXUP_DECLINE; /* a page table outside RAM: nothing sane to do */
		uint64_t pte = __atomic_load_n((uint64_t *)host, __ATOMIC_ACQUIRE);
		w->pte_gpa[w->n++] = at;
		if (!(pte & PTE_P)) {
			w->pf = acc;
			return FIXUP_FAULT;
		}
		bool leaf = level == 1 || ((level == 2 || level == 3) && (pte & PTE_PS));
		if (((pte & PTE_NX) && !(s->efer & EFER_NXE)) || (level >= 4 && (pte & PTE_PS))) {
			w->pf = acc | PF_P | PF_RSVD;
			return FIXUP_FAULT;
		}
		rw = rw && (pte & PTE_RW);
		us = us && (pte & PTE_US);
		if (leaf) {
			uint64_t size = 1ull << (12 + 9 * (level - 1));
			w->gpa = (pte & ADDR_MASK & ~(size - 1)) | (la & (size - 1));
			break;
		}
		table = pte & ADDR_MASK;
	}
	bool denied = user ? (!us || (write && !rw))
			   : ((write && !rw && (s->cr0 & CR0_WP)) || (us && (s->cr4 & CR4_SMAP) && !ac));
	if (denied) {
		w->pf = acc | PF_P;
		return FIXUP_FAULT;
	}
	return 0;
}

/* Sets the accessed bits of the walk (and the dirty bit of the leaf for a write), as
 * the CPU does, with atomic ORs: other vCPUs and the guest may update the same entries. */
static void set_ad(vmm_vcpu *v, const struct walk *w, bool write)
{
	for (unsigned i = 0; i < w->n; i++) {
		uint64_t want = PTE_A | ((write && i == w->n - 1) ? PTE_D : 0);
		void *host;
		if (vmm_mem_translate(v->vm->mem, w->pte_gpa[i], 8, false, &host) ||
		    (__atomic_load_n((uint64_t *)host, __ATOMIC_ACQUIRE) & want) == want)
			continue;
		/* A write translation, so that the change shows in the dirty log. A table in
		 * read-only memory keeps its bits, as it would with a CPU that cannot write. */
		if (vmm_mem_translate(v->vm->mem, w->pte_gpa[i], 8, true, &host) == 0)
			__atomic_fetch_or((uint64_t *)host, want, __ATOMIC_ACQ_REL);
	}
}

int vmm_fixup_map(vmm_vcpu *v, const struct kvm_regs *regs, const struct kvm_sregs *sregs, uint64_t la,
		  size_t len, bool write, bool stack, struct fixup_span *sp)
{
	memset(sp, 0, sizeof *sp);
	if (len == 0)
		return FIXUP_DECLINE;
	if (sregs->cr4 & (CR4_PKE | CR4_CET | CR4_PKS))
		return FIXUP_DECLINE;
	bool la57 = sregs->cr4 & CR4_LA57;
	uint64_t last = la + (len - 1);
	if (last < la || !canonical(la, la57) || !canonical(last, la57)) {
		int r = vmm_fixup_raise(v, sregs, stack ? FIXUP_VEC_SS : FIXUP_VEC_GP, 0, 0);
		return r ? r : FIXUP_FAULT;
	}
	uint64_t first_page = la >> 12, pages = (last >> 12) - first_page + 1;
	if (pages > FIXUP_MAX_PAGES)
		return FIXUP_DECLINE;
	bool user = (sregs->cs.selector & 3) == 3;
	bool ac = regs->rflags & RFLAGS_AC;
	struct walk w[FIXUP_MAX_PAGES];
	uint64_t gpa[FIXUP_MAX_PAGES];
	for (uint64_t i = 0; i < pages; i++) {
		uint64_t at = i == 0 ? la : (first_page + i) << 12;
		int r = walk(v, sregs, at, write, user, ac, &w[i]);
		if (r == FIXUP_FAULT) {
			r = vmm_fixup_raise(v, sregs, FIXUP_VEC_PF, w[i].pf, at);
			return r ? r : FIXUP_FAULT;
		}
		if (r)
			return r;
		gpa[i] = w[i].gpa;
	}
	for (uint64_t i = 0; i < pages; i++) {
		uint64_t at = i == 0 ? la : (first_page + i) << 12;
		uint64_t end = i == pages - 1 ? last + 1 : (first_page + i + 1) << 12;
		void *host;
		if (vmm_mem_translate(v->vm->mem, gpa[i], end - at, write, &host))
			return FIXUP_DECLINE; /* MMIO or read-only memory: not ours to complete */
		sp->host[i] = host;
	}
	for (uint64_t i = 0; i < pages; i++)
		set_ad(v, &w[i], write);
	sp->la = la;
	sp->len = len;
	return 0;
}

/* Where byte `off` of the span is in host memory, and how many bytes follow it in the
 * same guest page. */
static uint8_t *span_at(const struct fixup_span *sp, size_t off, size_t *in_page)
{
	uint64_t la = sp->la + off;
	size_t page = (size_t)((la >> 12) - (sp->la >> 12));
	/* host[page] is the host address of the span's first byte in that page. */
	uint64_t first = page == 0 ? sp->la : ((sp->la >> 12) + page) << 12;
	*in_page = 4096 - (size_t)(la & 4095);
	return sp->host[page] + (la - first);
}

void vmm_fixup_span_read(const struct fixup_span *sp, size_t off, void *dst, size_t n)
{
	uint8_t *d = dst;
	while (n > 0) {
		size_t room;
		const uint8_t *h = span_at(sp, off, &room);
		size_t chunk = n < room ? n : room;
		memcpy(d, h, chunk);
		d += chunk;
		off += chunk;
		n -= chunk;
	}
}

void vmm_fixup_span_write(const struct fixup_span *sp, size_t off, const void *src, size_t n)
{
	const uint8_t *s = src;
	while (n > 0) {
		size_t room;
		uint8_t *h = span_at(sp, off, &room);
		size_t chunk = n < room ? n : room;
		memcpy(h, s, chunk);
		s += chunk;
		off += chunk;
		n -= chunk;
	}
}
