/* The sample target of examples/fuzz-in-vm.c, built with the guest SDK's COVERAGE option
 * (clang -fsanitize-coverage=inline-8bit-counters on this file only).
 *
 * parse() reads one message from input buffer 0 and returns how many bytes of the
 * header magic it matched (0..FUZZ_MAGIC_LEN), which the host prints as the depth a
 * fuzzer reached. A message whose header is the full magic "LVMM" reaches the
 * planted bug: a handler writes through a pointer that nothing ever set, so the CPU
 * raises a page fault (page 0 is unmapped in the guest) and vmm_sandbox_call returns
 * -EFAULT on the host.
 *
 * The magic is compared one byte per nested `if`, and every level records its depth in
 * a global. The stores keep the compiler from merging the chain into one wide compare
 * (clang's MergeICmps would), so each matched byte is a new edge with its own coverage
 * counter: a coverage-guided fuzzer keeps every input that gets one byte further and
 * climbs the chain a byte at a time (the right value at the right place: some thousands
 * of inputs per byte), while a blind one must guess all four at once (1 in 2^32). */
#include <libvmm_guest.h>

#define FUZZ_MAGIC_LEN 4

struct session {
	uint64_t replies;
};

/* Set by the stages below: the depth this call reached (reset to 0 by the host's
 * snapshot reset before every call). */
uint64_t fuzz_depth;

/* Never set: the bug. */
static struct session *current_session;

/* The handler of a complete header. It forgets that no session was opened. */
static __attribute__((noinline)) void reply(const uint8_t *body, size_t len)
{
	struct session *s = current_session;
	/* Hide the (known) NULL from the optimizer so the guest really performs the write
	 * and faults, as an unoptimized bug would, instead of compiling it into a trap. */
	__asm__ volatile("" : "+r"(s));
	s->replies += len ? body[0] : 1;
}

uint64_t parse(void)
{
	size_t n;
	const uint8_t *p = vmm_guest_in(0, &n);
	if (!p || n < FUZZ_MAGIC_LEN)
		return 0;
	if (p[0] == 'L') {
		fuzz_depth = 1;
		if (p[1] == 'V') {
			fuzz_depth = 2;
			if (p[2] == 'M') {
				fuzz_depth = 3;
				if (p[3] == 'M') {
					fuzz_depth = 4;
					reply(p + FUZZ_MAGIC_LEN, n - FUZZ_MAGIC_LEN);
				}
			}
		}
	}
	return fuzz_depth;
}
VMM_GUEST_EXPORT(parse);

/* The same parser for callers that reject messages without the magic outright: the
 * guest gives up with vmm_guest_abort, which the host sees as -ECANCELED and the fuzz
 * driver reports as a crash (scripts/fuzz-in-vm-demo.sh checks that path with it). */
uint64_t parse_strict(void)
{
	uint64_t depth = parse();
	if (depth == 0)
		vmm_guest_abort("parse_strict: no magic");
	return depth;
}
VMM_GUEST_EXPORT(parse_strict);
