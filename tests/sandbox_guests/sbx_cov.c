/* A guest built with COVERAGE (clang -fsanitize-coverage=inline-8bit-counters): the
 * host reads the counters between __start___sancov_cntrs and __stop___sancov_cntrs. */
#include <libvmm_guest.h>

static volatile int sum;

static int setup(void)
{
	for (int i = 0; i < 10; i++)
		sum += i; /* counters touched here must read zero in the snapshot */
	return sum == 45 ? 0 : 1;
}
VMM_GUEST_INIT(setup);

uint64_t branchy(uint64_t v)
{
	if (v == 1)
		return 10;
	if (v == 2)
		return 20;
	if (v > 100)
		return 30;
	return 0;
}
VMM_GUEST_EXPORT(branchy);
