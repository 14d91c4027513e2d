/* function-runner: serve requests with a function sandbox, each request in a VM freshly
 * reset to the state the guest's init left (include/libvmm/sandbox.h).
 *
 *   function-runner [requests] [guest.elf]
 *
 * The guest (examples/guest/function-guest.c, built with the guest SDK) exports
 * handle(): it upper-cases the request and appends a CRC. Every request is a
 * vmm_sandbox_call with one input and one output buffer; the sandbox resets itself
 * before each call, copying back only the pages the previous request dirtied. Prints
 * throughput and latency percentiles, and checks every response. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvmm/libvmm.h>

#ifndef GUEST_DIR
#define GUEST_DIR "."
#endif

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t percentile(const uint64_t *sorted, size_t n, double p)
{
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return sorted[i < n ? i : n - 1];
}

/* The response the guest must produce, computed on the host for checking. */
static size_t expected(const char *req, char *out, size_t cap)
{
	uint32_t crc = 0xffffffffu;
	for (const char *p = req; *p; p++) {
		crc ^= (uint8_t)*p;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? 0xedb88320u ^ (crc >> 1) : crc >> 1;
	}
	char upper[256];
	size_t n = 0;
	for (const char *p = req; *p && n < sizeof upper - 1; p++)
		upper[n++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
	upper[n] = 0;
	return (size_t)snprintf(out, cap, "%s crc=%08x served=1", upper, ~crc);
}

int main(int argc, char **argv)
{
	size_t requests = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
	const char *guest = argc > 2 ? argv[2] : GUEST_DIR "/function-guest.elf";
	if (requests == 0) {
		fprintf(stderr, "usage: %s [requests > 0] [guest.elf]\n", argv[0]);
		return 2;
	}

	vmm_sandbox_opts o = VMM_SANDBOX_OPTS_INIT;
	o.elf_path = guest;
	o.deadline_ns = 1000000000; /* a runaway request is stopped after 1 s */
	vmm_sandbox *sb;
	uint64_t t0 = now_ns();
	int r = vmm_sandbox_create(&sb, &o);
	if (r) {
		fprintf(stderr, "function-runner: %s: %s\n", vmm_strerror(r), vmm_last_error());
		return r == -ENODEV || r == -EACCES ? 77 : 1;
	}
	printf("sandbox ready in %.2f ms (load, init, snapshot)\n", (double)(now_ns() - t0) / 1e6);

	uint64_t *lat = malloc(requests * sizeof *lat);
	if (!lat)
		return 1;
	size_t failures = 0;
	uint64_t start = now_ns();
	for (size_t i = 0; i < requests; i++) {
		char req[64], resp[256], want[256];
		snprintf(req, sizeof req, "request number %zu for the function runner", i);
		vmm_sandbox_in in = { req, strlen(req) };
		vmm_sandbox_out out = { resp, sizeof resp - 1, 0 };
		vmm_sandbox_call_opts c = VMM_SANDBOX_CALL_OPTS_INIT;
		c.in = &in;
		c.nr_in = 1;
		c.out = &out;
		c.nr_out = 1;
		uint64_t t = now_ns();
		r = vmm_sandbox_call(sb, "handle", NULL, 0, &c, NULL);
		lat[i] = now_ns() - t;
		resp[r ? 0 : out.len] = 0;
		size_t wl = expected(req, want, sizeof want);
		if (r || out.len != wl || strcmp(resp, want)) {
			if (failures++ < 5)
				fprintf(stderr, "request %zu: %s (%s): got \"%s\", want \"%s\"\n", i,
					r ? vmm_strerror(r) : "wrong response", r ? vmm_last_error() : "", resp, want);
		}
	}
	double secs = (double)(now_ns() - start) / 1e9;

	vmm_sandbox_stats st = VMM_SANDBOX_STATS_INIT;
	vmm_sandbox_get_stats(sb, &st);
	qsort(lat, requests, sizeof *lat, cmp_u64);
	printf("%zu requests in %.3f s: %.0f requests/s, %zu failed\n", requests, secs,
	       (double)requests / secs, failures);
	printf("latency (call + reset): p50 %.1f us, p90 %.1f us, p99 %.1f us, max %.1f us\n",
	       percentile(lat, requests, 50) / 1e3, percentile(lat, requests, 90) / 1e3,
	       percentile(lat, requests, 99) / 1e3, lat[requests - 1] / 1e3);
	printf("resets %llu, pages copied back %.1f per reset\n", (unsigned long long)st.resets,
	       st.resets ? (double)st.pages_reset / (double)st.resets : 0.0);
	free(lat);
	vmm_sandbox_destroy(sb);
	return failures ? 1 : 0;
}
