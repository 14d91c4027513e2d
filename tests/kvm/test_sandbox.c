/* Function sandboxes (include/libvmm/sandbox.h) with guests built by the guest SDK
 * (tests/sandbox_guests): results, buffers, host calls, reset between calls, and every
 * error path followed by a call that must work again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/harness.h"

#define BASIC SANDBOX_GUEST_DIR "/sbx_basic.elf"

struct host_state {
	char output[1024];
	size_t output_len;
	uint64_t reads;
	char last_read[64];
};

static int host_add_one(void *ctx, vmm_sandbox *sb, const uint64_t *args, uint32_t nargs, uint64_t *ret)
{
	(void)ctx;
	(void)sb;
	assert_int_equal(nargs, 1);
	*ret = args[0] + 1;
	return 0;
}

static int host_times_two(void *ctx, vmm_sandbox *sb, const uint64_t *args, uint32_t nargs, uint64_t *ret)
{
	(void)ctx;
	(void)sb;
	assert_int_equal(nargs, 1);
	*ret = args[0] * 2;
	return 0;
}

/* Reads the guest's buffer through the checked accessor; a bad pointer fails the call. */
static int host_read_buf(void *ctx, vmm_sandbox *sb, const uint64_t *args, uint32_t nargs, uint64_t *ret)
{
	struct host_state *h = ctx;
	assert_int_equal(nargs, 2);
	if (args[1] >= sizeof h->last_read)
		return -E2BIG;
	memset(h->last_read, 0, sizeof h->last_read);
	int r = vmm_sandbox_read(sb, args[0], h->last_read, (size_t)args[1]);
	if (r)
		return r;
	h->reads++;
	*ret = strlen(h->last_read);
	return 0;
}

static int host_fail(void *ctx, vmm_sandbox *sb, const uint64_t *args, uint32_t nargs, uint64_t *ret)
{
	(void)ctx;
	(void)sb;
	(void)args;
	(void)nargs;
	(void)ret;
	return -EIO;
}

static void on_output(void *ctx, const char *data, size_t len)
{
	struct host_state *h = ctx;
	size_t room = sizeof h->output - 1 - h->output_len;
	if (len > room)
		len = room;
	memcpy(h->output + h->output_len, data, len);
	h->output_len += len;
	h->output[h->output_len] = 0;
}

static vmm_sandbox *make(struct host_state *h, uint32_t flags, uint64_t deadline_ns)
{
	static vmm_sandbox_host_func funcs[4];
	funcs[0] = (vmm_sandbox_host_func){ 1, NULL, host_add_one, NULL };
	funcs[1] = (vmm_sandbox_host_func){ 7, "times_two", host_times_two, NULL };
	funcs[2] = (vmm_sandbox_host_func){ 2, "read_buf", host_read_buf, h };
	funcs[3] = (vmm_sandbox_host_func){ 3, "fail", host_fail, NULL };
	vmm_sandbox_opts o = VMM_SANDBOX_OPTS_INIT;
	o.elf_path = BASIC;
	o.flags = flags;
	o.deadline_ns = deadline_ns;
	o.host_funcs = funcs;
	o.nr_host_funcs = 4;
	o.output = on_output;
	o.output_ctx = h;
	vmm_sandbox *sb = NULL;
	int r = vmm_sandbox_create(&sb, &o);
	if (r)
		fail_msg("vmm_sandbox_create: %s (%s)", vmm_strerror(r), vmm_last_error());
	return sb;
}

static uint64_t call(vmm_sandbox *sb, const char *fn, const uint64_t *args, size_t n)
{
	uint64_t ret = 0;
	int r = vmm_sandbox_call(sb, fn, args, n, NULL, &ret);
	if (r)
		fail_msg("call %s: %s (%s)", fn, vmm_strerror(r), vmm_last_error());
	return ret;
}

static void test_results(void **state)
{
	(void)state;
	struct host_state h = { 0 };
	vmm_sandbox *sb = make(&h, 0, 0);
	assert_string_equal(h.output, "init done\n");
	uint64_t a[6] = { 40, 2, 3, 4, 5, 6 };
	assert_int_equal(call(sb, "add", a, 2), 42);
	assert_int_equal(call(sb, "sum6", a, 6), 40 + 2 * 2 + 3 * 3 + 4 * 4 + 5 * 5 + 6 * 6);
	assert_int_equal(call(sb, "get_init_value", NULL, 0), 42);
	assert_int_equal(call(sb, "empty", NULL, 0), 0);
	/* The heap is the memory between the program and the I/O area. */
	uint64_t heap = call(sb, "heap_check", NULL, 0);
	assert_true(heap > (8u << 20) && heap < (16u << 20));
	vmm_sandbox_destroy(sb);
}

static void test_buffers(void **state)
{
	(void)state;
	struct host_state h = { 0 };
	vmm_sandbox *sb = make(&h, 0, 0);
	uint8_t in[5000], out[5000];
	uint64_t sum = 0;
	for (size_t i = 0; i < sizeof in; i++) {
		in[i] = (uint8_t)(i * 7 + 3);
		sum += in[i];
	}
	vmm_sandbox_in bi = { in, sizeof in };
	vmm_sandbox_out bo = { out, sizeof out, 0 };
	vmm_sandbox_call_opts c = VMM_SANDBOX_CALL_OPTS_INIT;
	c.in = &bi;
	c.nr_in = 1;
	c.out = &bo;
	c.nr_out = 1;
	uint64_t ret = 0;
	assert_int_equal(vmm_sandbox_call(sb, "checksum", NULL, 0, &c, &ret), 0);
	assert_int_equal(ret, sum);
	assert_int_equal(bo.len, sizeof in);
	for (size_t i = 0; i < sizeof in; i++)
		assert_int_equal(out[i], in[sizeof in - 1 - i]);

	/* Several buffers each way. */
	const char *parts[3] = { "alpha,", "beta,", "gamma" };
	vmm_sandbox_in ins[3];
	for (int i = 0; i < 3; i++)
		ins[i] = (vmm_sandbox_in){ parts[i], strlen(parts[i]) };
	uint64_t count = 0;
	char joined[64] = { 0 };
	vmm_sandbox_out outs[2] = { { &count, sizeof count, 0 }, { joined, sizeof joined - 1, 0 } };
	c.in = ins;
	c.nr_in = 3;
	c.out = outs;
	c.nr_out = 2;
	assert_int_equal(vmm_sandbox_call(sb, "concat", NULL, 0, &c, &ret), 0);
	assert_int_equal(ret, 3);
	assert_int_equal(count, 3);
	assert_int_equal(outs[1].len, strlen("alpha,beta,gamma"));
	assert_string_equal(joined, "alpha,beta,gamma");
	vmm_sandbox_destroy(sb);
}

static void test_host_calls(void **state)
{
	(void)state;
	struct host_state h = { 0 };
	vmm_sandbox *sb = make(&h, 0, 0);
	uint64_t x = 20;
	assert_int_equal(call(sb, "call_host", &x, 1), 42); /* (20 + 1) * 2 */
	uint64_t args[2] = { 0, 10 };
	assert_int_equal(call(sb, "host_reads", args, 2), 10);
	assert_string_equal(h.last_read, "hello host");
	h.output_len = 0;
	call(sb, "print", NULL, 0);
	assert_string_equal(h.output, "hello from the guest");
	vmm_sandbox_stats st = VMM_SANDBOX_STATS_INIT;
	assert_int_equal(vmm_sandbox_get_stats(sb, &st), 0);
	assert_true(st.host_calls >= 4);
	vmm_sandbox_destroy(sb);
}

/* A global incremented by each call reads the same with reset, and counts without. */
static void test_reset(void **state)
{
	(void)state;
	struct host_state h = { 0 };
	vmm_sandbox *sb = make(&h, 0, 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(call(sb, "bump", NULL, 0), 1);
	/* Continue on purpose, then back to the snapshot. */
	vmm_sandbox_call_opts keep = VMM_SANDBOX_CALL_OPTS_INIT;
	keep.flags = VMM_SANDBOX_CALL_KEEP_STATE;
	uint64_t ret = 0;
	assert_int_equal(vmm_sandbox_call(sb, "bump", NULL, 0, &keep, &ret), 0);
	assert_int_equal(ret, 2);
	assert_int_equal(call(sb, "bump", NULL, 0), 1);
	vmm_sandbox_stats st = VMM_SANDBOX_STATS_INIT;
	assert_int_equal(vmm_sandbox_get_stats(sb, &st), 0);
	assert_true(st.resets >= 5);
	assert_true(st.pages_reset >= 5 * 3);
	vmm_sandbox_destroy(sb);

	sb = make(&h, VMM_SANDBOX_NO_RESET, 0);
	for (uint64_t i = 1; i <= 5; i++)
		assert_int_equal(call(sb, "bump", NULL, 0), i);
	assert_int_equal(vmm_sandbox_reset(sb), 0);
	assert_int_equal(call(sb, "bump", NULL, 0), 1);
	vmm_sandbox_destroy(sb);
}

/* Each failing call gives its error; the next call finds the init state again. */
static void expect_error(vmm_sandbox *sb, const char *fn, const uint64_t *args, size_t n, int err,
			 const char *needle)
{
	uint64_t ret = 0;
	int r = vmm_sandbox_call(sb, fn, args, n, NULL, &ret);
	if (r != err)
		fail_msg("%s: expected %d, got %d (%s)", fn, err, r, vmm_last_error());
	if (needle && !strstr(vmm_last_error(), needle))
		fail_msg("%s: message \"%s\" lacks \"%s\"", fn, vmm_last_error(), needle);
	assert_int_equal(call(sb, "bump", NULL, 0), 1);
	uint64_t a[2] = { 1, 2 };
	assert_int_equal(call(sb, "add", a, 2), 3);
}

static void test_faults(void **state)
{
	(void)state;
	struct host_state h = { 0 };
	/* NO_RESET: errors reset anyway. */
	for (int pass = 0; pass < 2; pass++) {
		vmm_sandbox *sb = make(&h, pass ? VMM_SANDBOX_NO_RESET : 0, 0);
		if (pass)
			assert_int_equal(vmm_sandbox_reset(sb), 0);
		expect_error(sb, "crash_null", NULL, 0, -EFAULT, "vector 14");
		if (pass)
			assert_int_equal(vmm_sandbox_reset(sb), 0);
		expect_error(sb, "crash_ud2", NULL, 0, -EFAULT, "vector 6");
		uint64_t zero = 0;
		if (pass)
			assert_int_equal(vmm_sandbox_reset(sb), 0);
		expect_error(sb, "crash_div", &zero, 1, -EFAULT, "vector 0");
		uint64_t wild = 64ull << 20; /* past the 16 MiB of RAM */
		if (pass)
			assert_int_equal(vmm_sandbox_reset(sb), 0);
		expect_error(sb, "crash_wild", &wild, 1, -EFAULT, "address 0x4000000");
		if (pass)
			assert_int_equal(vmm_sandbox_reset(sb), 0);
		expect_error(sb, "crash_system", NULL, 0, -EFAULT, "vector 14");
		if (pass)
			assert_int_equal(vmm_sandbox_reset(sb), 0);
		expect_error(sb, "give_up", NULL, 0, -ECANCELED, "giving up on purpose");
		if (pass)
			assert_int_equal(vmm_sandbox_reset(sb), 0);
		expect_error(sb, "bad_exit_code", NULL, 0, -EPROTO, "0x1234");
		if (pass)
			assert_int_equal(vmm_sandbox_reset(sb), 0);
		expect_error(sb, "call_unknown_host", NULL, 0, -ENOSYS, "99");
		if (pass)
			assert_int_equal(vmm_sandbox_reset(sb), 0);
		expect_error(sb, "call_unknown_name", NULL, 0, -ENOSYS, "nobody");
		if (pass)
			assert_int_equal(vmm_sandbox_reset(sb), 0);
		expect_error(sb, "call_failing_host", NULL, 0, -EIO, "fail");
		if (pass)
			assert_int_equal(vmm_sandbox_reset(sb), 0);
		expect_error(sb, "bad_port", NULL, 0, -EPROTO, "port 0x80");
		vmm_sandbox_destroy(sb);
	}
}

/* ---- the state each call starts from, whichever reset the sandbox chose ---- */

/* sbx_basic.c's fpu_read output. */
struct fpu_report {
	uint8_t fx[512];
	uint8_t ymm_hi[16][16];
	uint8_t zmm16[64], zmm31[64];
	uint64_t k1;
	uint8_t zmm2_hi[32];
	uint64_t level;
};

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* A call sees init's x87 control word and MXCSR (sbx_basic.c: INIT_FCW, INIT_MXCSR), an
 * empty x87 stack with zeroed data registers, and zero XMM/YMM/ZMM/opmask registers. */
static uint64_t check_fpu(vmm_sandbox *sb, const char *when)
{
	struct fpu_report rep;
	memset(&rep, 0x55, sizeof rep);
	vmm_sandbox_out o = { &rep, sizeof rep, 0 };
	vmm_sandbox_call_opts c = VMM_SANDBOX_CALL_OPTS_INIT;
	c.out = &o;
	c.nr_out = 1;
	uint64_t ret = 0;
	int r = vmm_sandbox_call(sb, "fpu_read", NULL, 0, &c, &ret);
	if (r || ret != 1 || o.len != sizeof rep)
		fail_msg("%s: fpu_read: %d (%s), ret %llu, %zu bytes", when, r, vmm_last_error(),
			 (unsigned long long)ret, o.len);
	uint16_t fcw = (uint16_t)(rep.fx[0] | rep.fx[1] << 8), fsw = (uint16_t)(rep.fx[2] | rep.fx[3] << 8);
	uint32_t mxcsr;
	memcpy(&mxcsr, rep.fx + 24, 4);
	if (fcw != 0x027f || fsw != 0 || rep.fx[4] != 0 || mxcsr != 0x9f80)
		fail_msg("%s: FCW %#x FSW %#x FTW %#x MXCSR %#x (want 0x27f 0 0 0x9f80)", when, fcw, fsw, rep.fx[4],
			 mxcsr);
	for (int i = 0; i < 8; i++)
		if (!all_zero(rep.fx + 32 + 16 * i, 10))
			fail_msg("%s: x87 register %d is not zero", when, i);
	for (int i = 0; i < 16; i++)
		if (!all_zero(rep.fx + 160 + 16 * i, 16))
			fail_msg("%s: XMM%d is not zero", when, i);
	if (rep.level >= 1)
		for (int i = 0; i < 16; i++)
			if (!all_zero(rep.ymm_hi[i], 16))
				fail_msg("%s: YMM%d's upper half is not zero", when, i);
	if (rep.level >= 2 && (!all_zero(rep.zmm16, 64) || !all_zero(rep.zmm31, 64) || rep.k1 ||
			       !all_zero(rep.zmm2_hi, 32)))
		fail_msg("%s: ZMM16/ZMM31/ZMM2's upper half or k1 is not zero", when);
	return rep.level;
}

static void test_fpu_state(void **state)
{
	(void)state;
	struct host_state h = { 0 };
	for (int pass = 0; pass < 2; pass++) {
		vmm_sandbox *sb = make(&h, pass ? VMM_SANDBOX_NO_RESET : 0, 0);
		uint64_t level = check_fpu(sb, "first call");
		if (pass == 0)
			printf("# FPU state checked: x87, SSE%s\n", level >= 2 ? ", AVX, AVX-512" : level ? ", AVX" : "");
		for (int i = 0; i < 3; i++) {
			assert_int_equal(call(sb, "fpu_dirty", NULL, 0), 1);
			check_fpu(sb, "after a call that changed it");
		}
		uint64_t ret;
		assert_int_equal(vmm_sandbox_call(sb, "fpu_dirty_crash", NULL, 0, NULL, &ret), -EFAULT);
		check_fpu(sb, "after a call that changed it and crashed");
		assert_int_equal(call(sb, "fpu_dirty", NULL, 0), 1);
		assert_int_equal(vmm_sandbox_reset(sb), 0);
		check_fpu(sb, "after an explicit reset");
		vmm_sandbox_destroy(sb);
	}
}

/* Which reset vmm_sandbox_reset does now: a probe value goes into R12 (zero in the
 * snapshot, and zeroed by the runtime's loop before each DONE, so the probe is harmless);
 * a full reset loads the snapshot's registers, a memory-only one leaves them alone. */
static void expect_reset(vmm_sandbox *sb, bool full, const char *what)
{
	vmm_vcpu *v = vmm_sandbox_vcpu(sb);
	vmm_regs r;
	assert_int_equal(vmm_vcpu_get_regs(v, &r), 0);
	r.r12 = 0x7e57;
	assert_int_equal(vmm_vcpu_set_regs(v, &r), 0);
	assert_int_equal(vmm_sandbox_reset(sb), 0);
	assert_int_equal(vmm_vcpu_get_regs(v, &r), 0);
	if ((r.r12 != 0x7e57) != full)
		fail_msg("%s: expected a %s reset", what, full ? "full" : "memory-only");
}

/* After a normal return the sandbox copies back memory only; after an error, or a return
 * the host cannot prove equal to the snapshot's exit, it resets the whole vCPU. Either
 * way globals, heap and the stack below the stack pointer start from the snapshot. */
static void test_state_check(void **state)
{
	(void)state;
	struct host_state h = { 0 };
	vmm_sandbox *sb = make(&h, 0, 0);
	uint64_t ds0 = call(sb, "get_ds", NULL, 0), ret;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(call(sb, "bump", NULL, 0), 1);
		expect_reset(sb, false, "after bump");
	}
	assert_int_equal(vmm_sandbox_call(sb, "crash_ud2", NULL, 0, NULL, &ret), -EFAULT);
	expect_reset(sb, true, "after a crash");
	assert_int_equal(vmm_sandbox_call(sb, "call_failing_host", NULL, 0, NULL, &ret), -EIO);
	expect_reset(sb, true, "after a failed host call");
	assert_int_equal(call(sb, "call_host", (uint64_t[]){ 1 }, 1), 4);
	expect_reset(sb, false, "after host calls");

	/* A DONE from inside a function: the next call must not continue there. */
	assert_int_equal(call(sb, "fake_done", NULL, 0), 0);
	expect_reset(sb, true, "after fake_done");
	uint64_t a[2] = { 2, 3 };
	assert_int_equal(call(sb, "add", a, 2), 5);
	assert_int_equal(call(sb, "fake_done", NULL, 0), 0);
	assert_int_equal(call(sb, "add", a, 2), 5); /* the same without an explicit reset */

	/* A changed segment register is seen; a flag the loop clears is not a change. (A
	 * guest that already reads DS as null changes nothing here: nested PVM runs CPL-3
	 * code on the host's own user segments.) */
	assert_int_equal(call(sb, "set_ds_null", NULL, 0), 0);
	expect_reset(sb, ds0 != 0, "after set_ds_null");
	assert_int_equal(call(sb, "get_ds", NULL, 0), ds0);
	assert_int_equal(call(sb, "set_ds_null", NULL, 0), 0);
	assert_int_equal(call(sb, "get_ds", NULL, 0), ds0);
	assert_int_equal(call(sb, "set_df", NULL, 0), 0);
	expect_reset(sb, false, "after set_df");
	assert_int_equal(call(sb, "get_flags", NULL, 0) & 0x400, 0);

	/* Memory: the stack below the stack pointer, the heap, globals. */
	uint64_t h0 = call(sb, "stack_probe", NULL, 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(call(sb, "stack_fill", NULL, 0), 0xab);
		assert_int_equal(call(sb, "stack_probe", NULL, 0), h0);
	}
	assert_int_equal(vmm_sandbox_call(sb, "crash_ud2", NULL, 0, NULL, &ret), -EFAULT);
	assert_int_equal(call(sb, "stack_probe", NULL, 0), h0);
	uint64_t s0 = call(sb, "heap_poke", NULL, 0);
	assert_int_equal(call(sb, "heap_poke", NULL, 0), s0);
	assert_int_equal(vmm_sandbox_call(sb, "crash_div", (uint64_t[]){ 0 }, 1, NULL, &ret), -EFAULT);
	assert_int_equal(call(sb, "heap_poke", NULL, 0), s0);
	assert_int_equal(call(sb, "bump", NULL, 0), 1);
	assert_int_equal(call(sb, "bump", NULL, 0), 1);
	vmm_sandbox_destroy(sb);
}

/* The same program at CPL 0 (slow on nested hosts: ring-0 code is emulated there). */
static void test_ring0(void **state)
{
	(void)state;
	struct host_state h = { 0 };
	vmm_sandbox *sb = make(&h, VMM_SANDBOX_RING0, 0);
	uint64_t a[2] = { 5, 6 };
	assert_int_equal(call(sb, "add", a, 2), 11);
	uint64_t x = 1;
	assert_int_equal(call(sb, "call_host", &x, 1), 4);
	expect_error(sb, "crash_null", NULL, 0, -EFAULT, "vector 14");
	vmm_sandbox_destroy(sb);
}

static void test_timeout(void **state)
{
	(void)state;
	struct host_state h = { 0 };
	vmm_sandbox *sb = make(&h, 0, 200u * 1000 * 1000); /* 200 ms default deadline */
	uint64_t t0 = 0;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	expect_error(sb, "spin", NULL, 0, -ETIMEDOUT, "deadline");
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t ms = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec - t0) / 1000000;
	assert_true(ms >= 200 && ms < 10000);
	/* A per-call deadline overrides the default. */
	vmm_sandbox_call_opts c = VMM_SANDBOX_CALL_OPTS_INIT;
	c.deadline_ns = 50u * 1000 * 1000;
	assert_int_equal(vmm_sandbox_call(sb, "spin", NULL, 0, &c, NULL), -ETIMEDOUT);
	assert_int_equal(call(sb, "bump", NULL, 0), 1);
	/* Many quick calls under a deadline: no spurious timeouts. */
	for (int i = 0; i < 200; i++)
		assert_int_equal(call(sb, "empty", NULL, 0), 0);
	expect_error(sb, "spin", NULL, 0, -ETIMEDOUT, NULL);
	vmm_sandbox_destroy(sb);
}

static void test_bad_buffers(void **state)
{
	(void)state;
	struct host_state h = { 0 };
	vmm_sandbox *sb = make(&h, 0, 0);
	/* Host side: more than the I/O area (1 MiB default), too many, NULL data. */
	size_t big = 2u << 20;
	uint8_t *mem = calloc(1, big);
	assert_non_null(mem);
	vmm_sandbox_in bi = { mem, big };
	vmm_sandbox_call_opts c = VMM_SANDBOX_CALL_OPTS_INIT;
	c.in = &bi;
	c.nr_in = 1;
	assert_int_equal(vmm_sandbox_call(sb, "checksum", NULL, 0, &c, NULL), -E2BIG);
	vmm_sandbox_in two[2] = { { mem, 600u << 10 }, { mem, 600u << 10 } };
	c.in = two;
	c.nr_in = 2;
	assert_int_equal(vmm_sandbox_call(sb, "checksum", NULL, 0, &c, NULL), -E2BIG);
	vmm_sandbox_in many[9];
	for (int i = 0; i < 9; i++)
		many[i] = (vmm_sandbox_in){ mem, 1 };
	c.in = many;
	c.nr_in = 9;
	assert_int_equal(vmm_sandbox_call(sb, "checksum", NULL, 0, &c, NULL), -EINVAL);
	vmm_sandbox_in nul = { NULL, 10 };
	c.in = &nul;
	c.nr_in = 1;
	assert_int_equal(vmm_sandbox_call(sb, "checksum", NULL, 0, &c, NULL), -EINVAL);
	assert_int_equal(vmm_sandbox_call(sb, "no_such_function", NULL, 0, NULL, NULL), -ENOENT);
	uint64_t seven[7] = { 0 };
	assert_int_equal(vmm_sandbox_call(sb, "add", seven, 7, NULL, NULL), -EINVAL);
	free(mem);
	assert_int_equal(call(sb, "bump", NULL, 0), 1);

	/* Guest side: an output length beyond the buffer; a pointer outside its memory. */
	uint8_t out[16];
	vmm_sandbox_out bo = { out, sizeof out, 0 };
	c = (vmm_sandbox_call_opts)VMM_SANDBOX_CALL_OPTS_INIT;
	c.out = &bo;
	c.nr_out = 1;
	assert_int_equal(vmm_sandbox_call(sb, "lie_out_len", NULL, 0, &c, NULL), -EPROTO);
	assert_int_equal(bo.len, 0);
	assert_int_equal(call(sb, "bump", NULL, 0), 1);
	uint64_t bad[2] = { 0x2000, 8 }; /* the call page: not the program's memory */
	expect_error(sb, "host_reads", bad, 2, -EFAULT, "outside");
	uint64_t past[2] = { (16ull << 20) - 4, 8 }; /* runs past the end of RAM */
	expect_error(sb, "host_reads", past, 2, -EFAULT, "outside");
	uint64_t wrap[2] = { UINT64_MAX - 2, 8 };
	expect_error(sb, "host_reads", wrap, 2, -EFAULT, "outside");

	/* Accessors from the host. */
	uint8_t b[8];
	assert_int_equal(vmm_sandbox_read(sb, 0, b, 8), -EFAULT);
	assert_int_equal(vmm_sandbox_read(sb, 16ull << 20, b, 1), -EFAULT);
	assert_int_equal(vmm_sandbox_read(sb, 1ull << 20, b, 8), 0);
	vmm_sandbox_destroy(sb);
}

static void test_symbols(void **state)
{
	(void)state;
	struct host_state h = { 0 };
	vmm_sandbox *sb = make(&h, 0, 0);
	uint64_t start = 0, stop = 0, add = 0;
	assert_int_equal(vmm_sandbox_symbol(sb, "__start___sancov_cntrs", &start), 0);
	assert_int_equal(vmm_sandbox_symbol(sb, "__stop___sancov_cntrs", &stop), 0);
	assert_int_equal(start & 4095, 0);
	assert_true(stop >= start);
	assert_int_equal(vmm_sandbox_symbol(sb, "add", &add), 0);
	assert_true(add >= 0x100000);
	assert_int_equal(vmm_sandbox_symbol(sb, "no_such_symbol", &add), -ENOENT);
	vmm_sandbox_destroy(sb);
}

/* Coverage counters of a COVERAGE guest: zero in the snapshot, set by a call, readable
 * after it, and zero again after the reset. */
static void test_coverage(void **state)
{
	(void)state;
#ifdef SANDBOX_HAVE_COVERAGE
	vmm_sandbox_opts o = VMM_SANDBOX_OPTS_INIT;
	o.elf_path = SANDBOX_GUEST_DIR "/sbx_cov.elf";
	vmm_sandbox *sb;
	assert_int_equal(vmm_sandbox_create(&sb, &o), 0);
	uint64_t start, stop;
	assert_int_equal(vmm_sandbox_symbol(sb, "__start___sancov_cntrs", &start), 0);
	assert_int_equal(vmm_sandbox_symbol(sb, "__stop___sancov_cntrs", &stop), 0);
	assert_int_equal(start & 4095, 0);
	assert_true(stop > start && stop - start < 4096);
	size_t n = (size_t)(stop - start);
	uint8_t *c;
	assert_int_equal(vmm_sandbox_ptr(sb, start, n, false, (void **)&c), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(c[i], 0);
	size_t hits[3];
	uint64_t v[3] = { 1, 2, 500 }, ret;
	for (int k = 0; k < 3; k++) {
		assert_int_equal(vmm_sandbox_call(sb, "branchy", &v[k], 1, NULL, &ret), 0);
		assert_int_equal(ret, (uint64_t)(k + 1) * 10);
		hits[k] = 0;
		for (size_t i = 0; i < n; i++)
			hits[k] += c[i] != 0;
		assert_true(hits[k] > 0);
	}
	/* Different paths hit different counters: the reset cleared the last call's. */
	uint8_t first[4096];
	assert_int_equal(vmm_sandbox_call(sb, "branchy", &v[0], 1, NULL, &ret), 0);
	memcpy(first, c, n);
	assert_int_equal(vmm_sandbox_call(sb, "branchy", &v[2], 1, NULL, &ret), 0);
	assert_memory_not_equal(first, c, n);
	assert_int_equal(vmm_sandbox_reset(sb), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(c[i], 0);
	vmm_sandbox_destroy(sb);
#else
	skip();
#endif
}

static void test_create_errors(void **state)
{
	(void)state;
	vmm_sandbox *sb = (vmm_sandbox *)1;
	vmm_sandbox_opts o = VMM_SANDBOX_OPTS_INIT;
	assert_int_equal(vmm_sandbox_create(&sb, &o), -EINVAL); /* no program */
	assert_null(sb);
	o.elf_path = SANDBOX_GUEST_DIR "/sbx_init_fail.elf";
	assert_int_equal(vmm_sandbox_create(&sb, &o), -ECANCELED);
	assert_non_null(strstr(vmm_last_error(), "returned 7"));
	o.elf_path = GUEST_DIR "/hello.elf"; /* not an SDK program */
	assert_int_equal(vmm_sandbox_create(&sb, &o), -EINVAL);
	static const char junk[] = "not an elf file at all";
	o.elf_path = NULL;
	o.elf = junk;
	o.elf_size = sizeof junk;
	assert_true(vmm_sandbox_create(&sb, &o) < 0);
	o.elf = NULL;
	o.elf_path = BASIC;
	o.mem_size = 2u << 20; /* the I/O area does not fit */
	assert_int_equal(vmm_sandbox_create(&sb, &o), -EINVAL);
	o.mem_size = 0;
	vmm_sandbox_host_func bad = { 0xffff0001u, NULL, host_add_one, NULL };
	o.host_funcs = &bad;
	o.nr_host_funcs = 1;
	assert_int_equal(vmm_sandbox_create(&sb, &o), -EINVAL);
}

/* Many sandboxes in one process, called from several threads at once. */
struct worker {
	vmm_sandbox *sb;
	int errors;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (uint64_t i = 0; i < 50; i++) {
		uint64_t a[2] = { i, 1000 }, ret = 0;
		if (vmm_sandbox_call(w->sb, "add", a, 2, NULL, &ret) || ret != i + 1000)
			w->errors++;
		if (vmm_sandbox_call(w->sb, "bump", NULL, 0, NULL, &ret) || ret != 1)
			w->errors++;
	}
	return NULL;
}

static void test_many(void **state)
{
	(void)state;
	enum { N = 8 };
	struct host_state h = { 0 };
	struct worker w[N];
	pthread_t t[N];
	for (int i = 0; i < N; i++)
		w[i] = (struct worker){ make(&h, 0, 5000000000ull), 0 };
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].errors, 0);
		vmm_sandbox_destroy(w[i].sb);
	}
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_results),
		cmocka_unit_test(test_buffers),
		cmocka_unit_test(test_host_calls),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_faults),
		cmocka_unit_test(test_fpu_state),
		cmocka_unit_test(test_state_check),
		cmocka_unit_test(test_ring0),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_bad_buffers),
		cmocka_unit_test(test_symbols),
		cmocka_unit_test(test_coverage),
		cmocka_unit_test(test_create_errors),
		cmocka_unit_test(test_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
