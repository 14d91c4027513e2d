/* A token-bucket rate limiter for device back ends (ops/s and bytes/s).
 *
 * Each bucket holds at most one second's worth of tokens (the burst) and refills
 * continuously. A request may start when both buckets are non-negative and the ops
 * bucket has a whole token; it then takes one op and its bytes, which may drive the
 * bytes bucket negative (debt). A request's size is known only once it is popped and
 * parsed, and a popped chain cannot be put back, so debt is what keeps the average
 * right: the next request waits until the debt is repaid. Over any interval t the
 * device moves at most burst + rate * t + one request.
 *
 * Times are CLOCK_MONOTONIC nanoseconds passed in by the caller, so tests can drive the
 * clock. Not thread-safe: the owner serialises calls (the device lock). */
#ifndef LIBVMM_DEVICES_RATE_LIMIT_H
#define LIBVMM_DEVICES_RATE_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "../internal.h"

typedef struct vmm_rate_bucket {
	uint64_t rate;   /* tokens per second; 0 = unlimited */
	int64_t tokens;  /* may be negative (debt) */
	uint64_t last_ns;
} vmm_rate_bucket;

typedef struct vmm_rate_limit {
	vmm_rate_bucket ops, bytes;
} vmm_rate_limit;

/* Rates of 0 disable a bucket. Both buckets start full. Rates above
 * VMM_RATE_MAX are clamped (the token arithmetic stays within int64_t). */
#define VMM_RATE_MAX (1ull << 52)
VMM_HIDDEN void vmm_rate_limit_init(vmm_rate_limit *rl, uint64_t ops_per_sec, uint64_t bytes_per_sec,
				    uint64_t now_ns);
VMM_HIDDEN bool vmm_rate_limit_enabled(const vmm_rate_limit *rl);
/* Nanoseconds until the next request may start (0: now; never 0 when it may not). */
VMM_HIDDEN uint64_t vmm_rate_limit_wait(vmm_rate_limit *rl, uint64_t now_ns);
/* Takes `ops` operations and `bytes` bytes (after vmm_rate_limit_wait returned 0). */
VMM_HIDDEN void vmm_rate_limit_consume(vmm_rate_limit *rl, uint64_t ops, uint64_t bytes);

/* CLOCK_MONOTONIC in nanoseconds. */
VMM_HIDDEN uint64_t vmm_monotonic_ns(void);

#endif
