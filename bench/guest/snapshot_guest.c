/* The guest program of bench_snapshot's call figures (built with the guest SDK): one
 * exported function that does nothing, so a call measures the sandbox's round trip
 * (reset, entry, call loop, one exit) and nothing else. */
#include <libvmm_guest.h>

uint64_t empty(void)
{
	return 0;
}
VMM_GUEST_EXPORT(empty);
