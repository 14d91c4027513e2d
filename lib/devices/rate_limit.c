/* Token-bucket rate limiter (see rate_limit.h). */
#include <time.h>

#include "rate_limit.h"

#define NS_PER_SEC 1000000000ull

uint64_t vmm_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void bucket_init(vmm_rate_bucket *b, uint64_t rate, uint64_t now_ns)
{
	b->rate = rate > VMM_RATE_MAX ? VMM_RATE_MAX : rate;
	b->tokens = (int64_t)b->rate; /* the burst: one second's worth */
	b->last_ns = now_ns;
}

/* Adds the tokens earned since last_ns. Only the time that turned into whole tokens is
 * consumed, so slow rates polled often still accumulate their fractions. */
static void bucket_refill(vmm_rate_bucket *b, uint64_t now_ns)
{
	if (b->rate == 0 || now_ns <= b->last_ns)
		return;
	if (b->tokens >= (int64_t)b->rate) {
		/* Full: time spent full earns nothing, or a fraction of a token earned
		 * while idle would shorten the first wait after a burst. */
		b->last_ns = now_ns;
		return;
	}
	uint64_t elapsed = now_ns - b->last_ns;
	unsigned __int128 earned = (unsigned __int128)elapsed * b->rate / NS_PER_SEC;
	if (earned == 0)
		return;
	/* tokens <= rate <= 2^52 and debt >= -(2^52 + 2^32), so the room fits. */
	unsigned __int128 room = (unsigned __int128)((__int128)b->rate - b->tokens);
	if (earned >= room) {
		b->tokens = (int64_t)b->rate;
		b->last_ns = now_ns;
		return;
	}
	b->tokens += (int64_t)earned;
	b->last_ns += (uint64_t)(earned * NS_PER_SEC / b->rate);
}

/* Nanoseconds until the bucket holds `need` tokens (after a refill). */
static uint64_t bucket_wait(const vmm_rate_bucket *b, int64_t need)
{
	if (b->rate == 0 || b->tokens >= need)
		return 0;
	unsigned __int128 deficit = (unsigned __int128)((__int128)need - b->tokens);
	unsigned __int128 ns = (deficit * NS_PER_SEC + b->rate - 1) / b->rate;
	/* A fraction of the next token may already be earned, so this can overestimate
	 * by up to one token's time; never underestimates. Clamped for the timer. */
	if (ns == 0)
		ns = 1;
	if (ns > 1000ull * NS_PER_SEC)
		ns = 1000ull * NS_PER_SEC;
	return (uint64_t)ns;
}

static void bucket_take(vmm_rate_bucket *b, uint64_t n)
{
	if (b->rate == 0)
		return;
	/* Callers take at most a request's worth (< 2^33); never wrap below INT64_MIN. */
	if (n > (uint64_t)INT64_MAX / 2)
		n = (uint64_t)INT64_MAX / 2;
	if (b->tokens < INT64_MIN / 2)
		return;
	b->tokens -= (int64_t)n;
}

void vmm_rate_limit_init(vmm_rate_limit *rl, uint64_t ops_per_sec, uint64_t bytes_per_sec, uint64_t now_ns)
{
	bucket_init(&rl->ops, ops_per_sec, now_ns);
	bucket_init(&rl->bytes, bytes_per_sec, now_ns);
}

bool vmm_rate_limit_enabled(const vmm_rate_limit *rl)
{
	return rl->ops.rate != 0 || rl->bytes.rate != 0;
}

uint64_t vmm_rate_limit_wait(vmm_rate_limit *rl, uint64_t now_ns)
{
	bucket_refill(&rl->ops, now_ns);
	bucket_refill(&rl->bytes, now_ns);
	uint64_t a = bucket_wait(&rl->ops, 1);
	uint64_t b = bucket_wait(&rl->bytes, 0);
	return a > b ? a : b;
}

void vmm_rate_limit_consume(vmm_rate_limit *rl, uint64_t ops, uint64_t bytes)
{
	bucket_take(&rl->ops, ops);
	bucket_take(&rl->bytes, bytes);
}
