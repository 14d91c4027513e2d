/* vmm_snapshot_reset on real guests (tests/guests/snap_scribble.c, snap_count.c):
 *  - the guest scribbles over pseudo-random pages (and the host writes its job through
 *    vmm_mem_write): a reset restores exactly the snapshot's memory (hash of all guest
 *    memory) and every register, repeatedly, on the VM the snapshot was taken from;
 *  - the pages a reset copies follow the pages dirtied (stats, never timings);
 *  - a counting guest counts on correctly after a reset, and its TSC restarts from the
 *    snapshot's;
 *  - the application's own dirty tracking and a reset's do not steal from each other;
 *  - bad use gives clear errors (unrelated VM, re-taken VM, running vCPU, bad options).
 * Prints a reset cost line next to a fork() baseline for the README (never asserted). */
#include "test_snapshot_inmem.h"
#include "harness/virtio_harness.h"

#include <sys/mman.h>
#include <sys/wait.h>

#define EVERY (1u << 24)

static kt_vm *scribbler(void **state)
{
	kt_opts ko = { .guest = "snap_scribble", .cpl = 3, .ram = SI_RAM };
	kt_vm *t = kt_create(state, &ko);
	kt_run_expect(t, 0, 1);
	return t;
}

/* Scribble, reset, compare: memory hash and all state as at the take; the pages copied
 * are the pages the guest wrote, plus a few of its own (stack, data) and the host's job
 * page; more pages dirtied, more copied. */
static void test_scribble_reset(void **state)
{
	kt_vm *t = scribbler(state);
	vmm_snapshot *s = si_take(t->vm);
	assert_int_equal(vmm_snapshot_mem_size(s), SI_RAM);
	assert_int_equal(vmm_snapshot_vcpu_count(s), 1);
	assert_int_equal(vmm_snapshot_device_count(s), 0);
	uint64_t h0 = st_mem_hash(t->vm);
	/* The state as the snapshot holds it, and as the VM reports it right after. */
	const struct snap_desc *d0 = s->d;
	struct snap_desc *now0 = st_capture(t->vm);
	st_compare(d0, now0, 10);
	snap_desc_free(now0);
	uint64_t calls = kt_sym(t, "calls");

	static const uint64_t sizes[] = { 1, 16, 256, 4096, 16, 1 };
	uint64_t last = 0;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		uint64_t seed = 0x9e3779b97f4a7c15ull * (i + 1);
		si_scribble(t, t, seed, sizes[i]);
		assert_int_equal(kt_read_u64(t, calls), 1);
		assert_true(st_mem_hash(t->vm) != h0);
		vmm_snapshot_reset_stats st = si_reset(s, t->vm);
		assert_int_equal(st_mem_hash(t->vm), h0);
		assert_int_equal(kt_read_u64(t, calls), 0);
		uint64_t want = si_distinct_pages(seed, sizes[i]);
		if (st.pages_copied < want || st.pages_copied > want + 8)
			fail_msg("%" PRIu64 " pages scribbled: reset copied %" PRIu64, want, (uint64_t)st.pages_copied);
		assert_int_equal(st.nr_vcpus, 1);
		assert_true(st.runs >= 1 && st.runs <= st.pages_copied);
		if (i > 0 && sizes[i] > sizes[i - 1])
			assert_true(st.pages_copied > last);
		last = st.pages_copied;
		struct snap_desc *now = st_capture(t->vm);
		st_compare(d0, now, 10);
		snap_desc_free(now);
	}
	/* Nothing written since the last reset: nothing to copy (the capture above only
	 * read). */
	vmm_snapshot_reset_stats st = si_reset(s, t->vm);
	assert_int_equal(st.pages_copied, 0);
	/* And it still runs: one call, counted once. */
	si_scribble(t, t, 7, 3);
	assert_int_equal(kt_read_u64(t, calls), 1);
	vmm_snapshot_free(s);
}

/* The host's own writes (vmm_mem_write, write translations) are undone too, anywhere in
 * RAM; reads are not copies. */
static void test_host_writes(void **state)
{
	kt_vm *t = scribbler(state);
	vmm_snapshot *s = si_take(t->vm);
	uint64_t h0 = st_mem_hash(t->vm);
	uint8_t page[4096];
	memset(page, 0xa5, sizeof page);
	kt_write(t, 0x3000, page, 100);
	kt_write(t, SI_RAM - 4096, page, sizeof page);
	kt_write(t, 20ull << 20, page, 3 * 1024); /* crosses nothing, one page */
	void *host;
	kt_check(vmm_mem_translate(t->mem, 40ull << 20, 8, true, &host), "translate");
	memset(host, 0x5a, 8);
	kt_read(t, 30ull << 20, page, sizeof page);
	assert_true(st_mem_hash(t->vm) != h0);
	vmm_snapshot_reset_stats st = si_reset(s, t->vm);
	assert_int_equal(st.pages_copied, 4);
	assert_int_equal(st.runs, 4);
	assert_int_equal(st_mem_hash(t->vm), h0);
	vmm_snapshot_free(s);
}

/* A counting guest: take mid-count, let it count on, reset, and it counts again from
 * the snapshot without a skipped or repeated iteration; several times. Its TSC restarts
 * from the snapshot's (the time between take and reset is not seen). */
static void test_count_after_reset(void **state)
{
	kt_opts ko = { .guest = "snap_count", .cpl = 3 };
	kt_vm *t = kt_create(state, &ko);
	uint64_t sym_counter = kt_sym(t, "counter"), sym_hash = kt_sym(t, "hash");
	si_set(t, t, "cfg_every", EVERY);
	kt_run_expect(t, 0, 1);
	uint32_t k = st_run_until_kicked(t, 0, 1); /* kicked in the middle */
	uint64_t c0 = kt_read_u64(t, sym_counter);
	st_assert_mid_count(c0, k, EVERY);
	vmm_snapshot *s = si_take(t->vm);
	for (int round = 0; round < 3; round++) {
		kt_run_expect(t, 0, k + 1);
		kt_run_expect(t, 0, k + 2);
		si_reset(s, t->vm);
		assert_int_equal(kt_read_u64(t, sym_counter), c0);
		kt_run_expect(t, 0, k + 1);
		assert_int_equal(kt_read_u64(t, sym_counter), (uint64_t)(k + 1) * EVERY);
		assert_int_equal(kt_read_u64(t, sym_hash), st_count_hash((uint64_t)(k + 1) * EVERY));
		si_reset(s, t->vm);
	}
	vmm_snapshot_free(s);
}

/* Two vCPUs, each at its own point of its own count (one at a completed report, one
 * kicked mid-count): after a reset both continue exactly, again and again. */
static void test_two_vcpus(void **state)
{
	kt_opts ko = { .guest = "snap_count", .cpl = 3, .vcpus = 2 };
	kt_vm *t = kt_create(state, &ko);
	uint64_t sym_counter = kt_sym(t, "counter"), sym_hash = kt_sym(t, "hash");
	si_set(t, t, "cfg_every", EVERY);
	kt_set_arg(t, 1, 1);
	kt_run_expect(t, 0, 1);
	uint32_t k1 = st_run_until_kicked(t, 1, 0);
	st_assert_mid_count(kt_read_u64(t, sym_counter + 8), k1, EVERY);
	vmm_snapshot *s = si_take(t->vm);
	assert_int_equal(vmm_snapshot_vcpu_count(s), 2);
	uint64_t h0 = st_mem_hash(t->vm);
	for (int round = 0; round < 2; round++) {
		kt_run_expect(t, 1, k1 + 1);
		kt_run_expect(t, 0, 2);
		kt_run_expect(t, 1, k1 + 2);
		vmm_snapshot_reset_stats st = si_reset(s, t->vm);
		assert_int_equal(st.nr_vcpus, 2);
		assert_int_equal(st_mem_hash(t->vm), h0);
		struct snap_desc *now = st_capture(t->vm);
		st_compare(s->d, now, 10);
		snap_desc_free(now);
		kt_run_expect(t, 1, k1 + 1);
		assert_int_equal(kt_read_u64(t, sym_counter + 8), (uint64_t)(k1 + 1) * EVERY);
		assert_int_equal(kt_read_u64(t, sym_hash + 8), st_count_hash((uint64_t)(k1 + 1) * EVERY));
		kt_run_expect(t, 0, 2);
		assert_int_equal(kt_read_u64(t, sym_hash), st_count_hash(2ull * EVERY));
		si_reset(s, t->vm);
	}
	vmm_snapshot_free(s);
}

static void test_tsc(void **state)
{
	kt_vm *t = scribbler(state);
	uint64_t tsc_sym = kt_sym(t, "tsc_at_call");
	si_scribble(t, t, 1, 1);
	uint64_t before = kt_read_u64(t, tsc_sym);
	kt_run_expect(t, 0, 1);
	double t_take = st_now_us();
	vmm_snapshot *s = si_take(t->vm);
	struct snap_desc *d = st_capture(t->vm);
	uint64_t snap_tsc = 0;
	for (uint32_t i = 0; i < d->vcpus[0].nr_msrs; i++)
		if (d->vcpus[0].msrs[i].index == MSR_IA32_TSC)
			snap_tsc = d->vcpus[0].msrs[i].value;
	uint32_t khz = d->vcpus[0].tsc_khz;
	snap_desc_free(d);
	assert_true(snap_tsc > before);
	for (int i = 0; i < 3; i++) {
		usleep(100 * 1000);
		si_reset(s, t->vm);
		si_scribble(t, t, 1, 1);
		double since_take_us = st_now_us() - t_take;
		uint64_t got = kt_read_u64(t, tsc_sym);
		/* Never before the snapshot's TSC, and not more than the time since the take
		 * plus the one second KVM may add when it treats the write as a
		 * re-synchronisation. The time is measured, not assumed: a shared host can
		 * hold this thread off for a second or more. */
		assert_true(got >= snap_tsc);
		if (khz && got - snap_tsc >= (uint64_t)((since_take_us + 1e6) * khz / 1e3))
			fail_msg("guest TSC %llu ticks past the snapshot's, %.0f us after the take at %u kHz",
				 (unsigned long long)(got - snap_tsc), since_take_us, khz);
		kt_check(vmm_snapshot_reset(s, t->vm, NULL), "reset");
	}
	vmm_snapshot_free(s);
}

struct app_ctx {
	uint64_t pages;
	bool saw_area;
};

static int app_fn(void *ctx, uint64_t gpa, uint64_t npages)
{
	struct app_ctx *c = ctx;
	c->pages += npages;
	if (gpa >= SI_AREA_START)
		c->saw_area = true;
	return 0;
}

/* The application collects the dirty log itself between resets: it still sees every
 * page the guest wrote, and the reset still restores them all. vmm_mem_dirty_stop does
 * not turn off what the snapshot needs. */
static void test_app_dirty_log(void **state)
{
	kt_vm *t = scribbler(state);
	kt_check(vmm_mem_dirty_start(t->mem), "dirty start");
	vmm_snapshot *s = si_take(t->vm);
	uint64_t h0 = st_mem_hash(t->vm);
	si_scribble(t, t, 42, 64);
	struct app_ctx c = { 0 };
	kt_check(vmm_mem_dirty_collect(t->mem, app_fn, &c), "collect"); /* the application first */
	uint64_t want = si_distinct_pages(42, 64);
	assert_true(c.saw_area && c.pages >= want);
	vmm_snapshot_reset_stats st = si_reset(s, t->vm);
	assert_true(st.pages_copied >= want);
	assert_int_equal(st_mem_hash(t->vm), h0);
	/* Now the reset first: the application still gets the guest's pages. */
	si_scribble(t, t, 43, 64);
	st = si_reset(s, t->vm);
	assert_true(st.pages_copied >= si_distinct_pages(43, 64));
	c = (struct app_ctx){ 0 };
	kt_check(vmm_mem_dirty_collect(t->mem, app_fn, &c), "collect");
	assert_true(c.saw_area && c.pages >= si_distinct_pages(43, 64));
	/* The application stops; resets keep working. */
	kt_check(vmm_mem_dirty_stop(t->mem), "dirty stop");
	assert_true(vmm_mem_dirty_enabled(t->mem)); /* the snapshot keeps tracking on */
	assert_int_equal(vmm_mem_dirty_collect(t->mem, NULL, NULL), -EINVAL);
	si_scribble(t, t, 44, 64);
	st = si_reset(s, t->vm);
	assert_true(st.pages_copied >= si_distinct_pages(44, 64));
	assert_int_equal(st_mem_hash(t->vm), h0);
	vmm_snapshot_free(s);
}

struct busy_ctx {
	int exits;
};

static int busy_fn(void *ctx, vmm_vcpu *vcpu, const vmm_exit *exit, int err)
{
	(void)vcpu;
	(void)err;
	struct busy_ctx *c = ctx;
	c->exits++;
	return exit && exit->reason == VMM_EXIT_KICK ? 1 : 0;
}

static void test_errors(void **state)
{
	kt_vm *t = scribbler(state);
	kt_opts ko = { .guest = "snap_scribble", .cpl = 3 };
	void *other_state = NULL;
	kt_vm *other = kt_create(&other_state, &ko);
	vmm_snapshot *s = si_take(t->vm);
	vmm_snapshot *bad = NULL;

	/* An unrelated VM. */
	assert_int_equal(vmm_snapshot_reset(s, other->vm, NULL), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "not bound"));
	/* NULLs and options. */
	assert_int_equal(vmm_snapshot_reset(NULL, t->vm, NULL), -EINVAL);
	assert_int_equal(vmm_snapshot_reset(s, NULL, NULL), -EINVAL);
	assert_int_equal(vmm_snapshot_take(NULL, NULL, &bad), -EINVAL);
	assert_int_equal(vmm_snapshot_take(t->vm, NULL, NULL), -EINVAL);
	vmm_snapshot_take_opts to = VMM_SNAPSHOT_TAKE_OPTS_INIT;
	to.flags = 1;
	assert_int_equal(vmm_snapshot_take(t->vm, &to, &bad), -EINVAL);
	to.flags = 0;
	to.nr_devices = 1;
	assert_int_equal(vmm_snapshot_take(t->vm, &to, &bad), -EINVAL);
	assert_null(bad);
	vmm_snapshot_reset_stats st = { .size = 0 };
	assert_int_equal(vmm_snapshot_reset(s, t->vm, &st), -EINVAL);
	vmm_snapshot_reset_opts ro = VMM_SNAPSHOT_RESET_OPTS_INIT;
	ro.nr_devices = 2;
	assert_int_equal(vmm_snapshot_reset_with(s, t->vm, &ro, NULL), -EINVAL);
	assert_int_equal(vmm_snapshot_clone(NULL, NULL, NULL), -EINVAL);
	const void *p;
	size_t n;
	assert_int_equal(vmm_snapshot_device_state(s, 0, &p, &n), -ENOENT);
	vmm_snapshot_free(NULL);

	/* A second take re-binds the VM: the first snapshot no longer fits it. */
	vmm_snapshot *s2 = si_take(t->vm);
	assert_int_equal(vmm_snapshot_reset(s, t->vm, NULL), -EINVAL);
	kt_check(vmm_snapshot_reset(s2, t->vm, NULL), "reset to the second");
	/* The memory map changed since the take: refused. */
	vmm_mem_region_opts mo = VMM_MEM_REGION_OPTS_INIT;
	mo.gpa = 1ull << 32;
	mo.len = 1 << 20;
	kt_check(vmm_mem_add_region(t->mem, &mo), "add region");
	assert_int_equal(vmm_snapshot_reset(s2, t->vm, NULL), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "memory regions"));
	kt_check(vmm_mem_remove_region(t->mem, 1ull << 32), "remove region");
	kt_check(vmm_snapshot_reset(s2, t->vm, NULL), "reset after the map is back");

	/* Take and reset while a vCPU runs: -EBUSY, and the VM is unharmed. */
	si_set(t, t, "cfg_pages", 1ull << 40); /* a very long call */
	si_set(t, t, "cfg_len", SI_AREA_LEN);
	si_set(t, t, "cfg_start", SI_AREA_START);
	struct busy_ctx c = { 0 };
	kt_check(vmm_vcpu_start(t->vcpu[0], busy_fn, &c), "start");
	usleep(20 * 1000);
	assert_int_equal(vmm_snapshot_take(t->vm, NULL, &bad), -EBUSY);
	assert_non_null(strstr(vmm_last_error(), "vmm_vcpu_kick"));
	assert_null(bad);
	assert_int_equal(vmm_snapshot_reset(s2, t->vm, NULL), -EBUSY);
	vmm_vcpu_kick(t->vcpu[0]);
	int result = 0;
	kt_check(vmm_vcpu_join(t->vcpu[0], &result), "join");
	assert_int_equal(result, 1);
	/* Stopped mid-call: the reset brings back the snapshot. */
	uint64_t h2 = 0;
	kt_check(vmm_snapshot_reset(s2, t->vm, NULL), "reset after stop");
	h2 = st_mem_hash(t->vm);
	si_scribble(t, t, 5, 5);
	kt_check(vmm_snapshot_reset(s2, t->vm, NULL), "reset");
	assert_int_equal(st_mem_hash(t->vm), h2);
	vmm_snapshot_free(s2);
	vmm_snapshot_free(s);
	kt_destroy(other);
}

/* A virtio device goes back with the VM (tests/guests/virtio_rng.c, arg 2): after its
 * warm-up request the guest is snapshotted with the rng transport's state; it then does
 * its big request; reset_with the device brings both back, and the guest's big request
 * succeeds again (without the device state the transport would be one request ahead
 * of the ring and the guest would wait forever). */
static void test_device(void **state)
{
	kt_opts o = { .guest = "virtio_rng", .cpl = 3 };
	vt_env *e = vt_create(state, &o);
	vmm_virtio_device *rng;
	kt_check(vmm_virtio_rng_create(&rng, NULL), "vmm_virtio_rng_create");
	vmm_virtio_mmio *t = vt_attach(e, 0, rng);
	kt_set_arg(e->kt, 0, 2);
	kt_run_expect(e->kt, 0, 0x101);
	vt_stop_loop(e);
	vmm_snapshot_take_opts to = VMM_SNAPSHOT_TAKE_OPTS_INIT;
	to.devices = &t;
	to.nr_devices = 1;
	vmm_snapshot *s = NULL;
	kt_check(vmm_snapshot_take(e->kt->vm, &to, &s), "take with a device");
	assert_int_equal(vmm_snapshot_device_count(s), 1);
	const void *blob;
	size_t len = 0;
	kt_check(vmm_snapshot_device_state(s, 0, &blob, &len), "device state");
	assert_true(len > 0);
	assert_int_equal(vmm_snapshot_device_state(s, 1, &blob, &len), -ENOENT);
	/* The device state goes to files and comes back with the snapshot. */
	st_files f;
	st_files_init(&f);
	vmm_snapshot_save_opts so = VMM_SNAPSHOT_SAVE_OPTS_INIT;
	so.state_path = f.state;
	so.mem_path = f.mem;
	kt_check(vmm_snapshot_write(s, &so), "write");
	vmm_snapshot_restore_opts oo = VMM_SNAPSHOT_RESTORE_OPTS_INIT;
	oo.state_path = f.state;
	oo.mem_path = f.mem;
	vmm_snapshot *opened = NULL;
	kt_check(vmm_snapshot_open(&opened, &oo), "open");
	const void *blob2;
	size_t len2 = 0;
	assert_int_equal(vmm_snapshot_device_count(opened), 1);
	kt_check(vmm_snapshot_device_state(opened, 0, &blob2, &len2), "device state");
	assert_int_equal(len2, len);
	assert_memory_equal(blob2, blob, len);
	vmm_snapshot_free(opened);
	st_files_remove(&f);
	uint64_t h0 = st_mem_hash(e->kt->vm);
	uint64_t results = kt_sym(e->kt, "results");
	vmm_snapshot_reset_opts ro = VMM_SNAPSHOT_RESET_OPTS_INIT;
	ro.devices = &t;
	ro.nr_devices = 1;
	for (int round = 0; round < 3; round++) {
		vt_start_loop(e);
		kt_run_expect(e->kt, 0, 0x102);
		uint32_t got = 0;
		kt_read(e->kt, results + 16, &got, sizeof got); /* results[1].len */
		assert_int_equal(got, 64 * 1024);
		vt_stop_loop(e);
		vmm_snapshot_reset_stats st = VMM_SNAPSHOT_RESET_STATS_INIT;
		kt_check(vmm_snapshot_reset_with(s, e->kt->vm, &ro, &st), "reset with the device");
		assert_int_equal(st.devices, 1);
		assert_true(st.pages_copied >= 16); /* the 64 KiB the device wrote, at least */
		assert_int_equal(st_mem_hash(e->kt->vm), h0);
		kt_read(e->kt, results + 16, &got, sizeof got);
		assert_int_equal(got, 0);
	}
	vt_start_loop(e);
	vmm_snapshot_free(s);
}


/* A VM without an in-kernel interrupt controller (VMM_IRQCHIP_NONE): no LAPIC, so KVM
 * refuses some MSRs it still lists (MSR_KVM_ASYNC_PF_INT); take, reset, clone, and save
 * and restore work all the same, with state and memory equal each time. */
static void test_no_irqchip(void **state)
{
	kt_opts ko = { .guest = "snap_scribble", .cpl = 3, .ram = SI_RAM, .irqchip = VMM_IRQCHIP_NONE };
	kt_vm *t = kt_create(state, &ko);
	kt_run_expect(t, 0, 1);
	vmm_snapshot *s = si_take(t->vm);
	const struct snap_desc *d0 = s->d;
	assert_int_equal(d0->irqchip, VMM_IRQCHIP_NONE);
	assert_false(d0->vcpus[0].have & SNAP_HAVE_LAPIC);
	for (uint32_t i = 0; i < d0->vcpus[0].nr_msrs; i++)
		assert_false(snap_msr_needs_lapic(d0->vcpus[0].msrs[i].index));
	uint64_t h0 = st_mem_hash(t->vm), calls = kt_sym(t, "calls");
	for (int round = 0; round < 3; round++) {
		si_scribble(t, t, 11 + (uint64_t)round, 64);
		assert_int_equal(kt_read_u64(t, calls), 1);
		assert_true(st_mem_hash(t->vm) != h0);
		vmm_snapshot_reset_stats st = si_reset(s, t->vm);
		assert_true(st.pages_copied >= si_distinct_pages(11 + (uint64_t)round, 64));
		assert_int_equal(st.nr_vcpus, 1);
		assert_int_equal(st_mem_hash(t->vm), h0);
		struct snap_desc *now = st_capture(t->vm);
		st_compare(d0, now, 10);
		snap_desc_free(now);
	}
	/* A clone of it: same state, runs, resets. */
	kt_vm *c = st_wrap(si_clone(s, NULL), 3);
	struct snap_desc *cd = st_capture(c->vm);
	st_compare(d0, cd, 10);
	snap_desc_free(cd);
	si_scribble(t, c, 5, 16);
	assert_int_equal(kt_read_u64(c, calls), 1);
	si_reset(s, c->vm);
	assert_int_equal(st_mem_hash(c->vm), h0);
	kt_destroy(c);
	/* Saved to files and restored: the same again. */
	st_files f;
	st_files_init(&f);
	struct snap_desc *td = st_capture(t->vm);
	st_save(t->vm, &f);
	kt_vm *r = st_wrap(st_restore(&f, VMM_SNAPSHOT_MEM_EAGER), 3);
	struct snap_desc *rd = st_capture(r->vm);
	st_compare(td, rd, 10);
	snap_desc_free(rd);
	snap_desc_free(td);
	assert_int_equal(st_mem_hash(r->vm), st_mem_hash(t->vm));
	si_scribble(t, r, 6, 16);
	assert_int_equal(kt_read_u64(r, calls), 1);
	kt_destroy(r);
	st_files_remove(&f);
	vmm_snapshot_free(s);
}

/* VMM_SNAPSHOT_RESET_MEMORY_ONLY: memory exactly as at the take, the vCPU untouched:
 * its registers stay those of the point it stopped at (report 2, not the snapshot's
 * report 1), it continues from there, and its pending OUT is completed by the next run,
 * not by the reset. A full reset afterwards brings the registers back. */
static void test_memory_only(void **state)
{
	kt_vm *t = scribbler(state);
	vmm_snapshot *s = si_take(t->vm);
	uint64_t h0 = st_mem_hash(t->vm), calls = kt_sym(t, "calls");
	vmm_regs r0, r1, r2;
	kt_check(vmm_vcpu_get_regs(t->vcpu[0], &r0), "get regs");
	vmm_snapshot_reset_opts ro = VMM_SNAPSHOT_RESET_OPTS_INIT;
	ro.flags = VMM_SNAPSHOT_RESET_MEMORY_ONLY;
	for (int round = 0; round < 3; round++) {
		uint64_t seed = 0x1234567ull * (uint64_t)(round + 1), n = 32u << round;
		si_scribble(t, t, seed, n);
		assert_true(st_mem_hash(t->vm) != h0);
		kt_check(vmm_vcpu_get_regs(t->vcpu[0], &r1), "get regs");
		assert_true(r1.rip != r0.rip);
		vmm_snapshot_reset_stats st = VMM_SNAPSHOT_RESET_STATS_INIT;
		kt_check(vmm_snapshot_reset_with(s, t->vm, &ro, &st), "memory-only reset");
		assert_int_equal(st_mem_hash(t->vm), h0);
		assert_int_equal(kt_read_u64(t, calls), 0);
		uint64_t want = si_distinct_pages(seed, n);
		assert_true(st.pages_copied >= want && st.pages_copied <= want + 8);
		assert_int_equal(st.nr_vcpus, 0);
		assert_int_equal(st.ns_vcpus, 0);
		kt_check(vmm_vcpu_get_regs(t->vcpu[0], &r2), "get regs");
		assert_memory_equal(&r1, &r2, sizeof r1);
		/* It goes on from report 2: around its loop to report 1, then a job. */
		kt_run_expect(t, 0, 1);
	}
	si_scribble(t, t, 99, 8);
	assert_int_equal(kt_read_u64(t, calls), 1);
	/* Nothing dirty: nothing copied. */
	kt_check(vmm_snapshot_reset_with(s, t->vm, &ro, NULL), "memory-only reset");
	vmm_snapshot_reset_stats st = VMM_SNAPSHOT_RESET_STATS_INIT;
	kt_check(vmm_snapshot_reset_with(s, t->vm, &ro, &st), "memory-only reset");
	assert_int_equal(st.pages_copied, 0);
	/* The full reset still restores everything, after memory-only ones. */
	si_reset(s, t->vm);
	assert_int_equal(st_mem_hash(t->vm), h0);
	struct snap_desc *now = st_capture(t->vm);
	st_compare(s->d, now, 10);
	snap_desc_free(now);
	/* Unknown flags are refused. */
	ro.flags = 1u << 7;
	assert_int_equal(vmm_snapshot_reset_with(s, t->vm, &ro, NULL), -EINVAL);
	vmm_snapshot_free(s);
}

/* Reset cost on this machine for the README, next to the unit a process-based fuzzer
 * pays per input: fork() + exit + waitpid() of a process with the same 64 MiB touched.
 * Printed, never asserted. */
static double fork_us(void)
{
	size_t len = SI_RAM;
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	for (size_t i = 0; i < len; i += 4096)
		m[i] = 1;
	double best = 1e12;
	for (int i = 0; i < 20; i++) {
		double t0 = st_now_us();
		pid_t p = fork();
		if (p == 0)
			_exit(0);
		assert_true(p > 0);
		int status;
		assert_int_equal(waitpid(p, &status, 0), p);
		double us = st_now_us() - t0;
		if (us < best)
			best = us;
	}
	munmap(m, len);
	return best;
}

static void test_cost(void **state)
{
	kt_vm *t = scribbler(state);
	vmm_snapshot *s = si_take(t->vm);
	static const uint64_t sizes[] = { 1, 16, 256, 4096 };
	double fork_best = fork_us();
	for (size_t i = 0; i < 4; i++) {
		uint64_t best = UINT64_MAX, mem = 0, vcpu = 0, pages = 0;
		for (int k = 0; k < 10; k++) {
			si_scribble(t, t, 11 + (uint64_t)k, sizes[i]);
			vmm_snapshot_reset_stats st = si_reset(s, t->vm);
			if (st.ns_total < best) {
				best = st.ns_total;
				mem = st.ns_memory;
				vcpu = st.ns_vcpus;
				pages = st.pages_copied;
			}
		}
		printf("# reset, 64 MiB guest, %4" PRIu64 " pages dirtied: %5" PRIu64 " pages copied, best of 10 %.1f us "
		       "(memory %.1f us, vCPU+irqchip %.1f us); fork+exit+waitpid with 64 MiB touched: %.1f us (%.1fx)\n",
		       sizes[i], pages, (double)best / 1e3, (double)mem / 1e3, (double)vcpu / 1e3, fork_best,
		       fork_best * 1e3 / (double)best);
	}
	vmm_snapshot_free(s);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_scribble_reset, kt_teardown),
		cmocka_unit_test_teardown(test_host_writes, kt_teardown),
		cmocka_unit_test_teardown(test_count_after_reset, kt_teardown),
		cmocka_unit_test_teardown(test_two_vcpus, kt_teardown),
		cmocka_unit_test_teardown(test_tsc, kt_teardown),
		cmocka_unit_test_teardown(test_app_dirty_log, kt_teardown),
		cmocka_unit_test_teardown(test_errors, kt_teardown),
		cmocka_unit_test_teardown(test_device, vt_teardown),
		cmocka_unit_test_teardown(test_no_irqchip, kt_teardown),
		cmocka_unit_test_teardown(test_memory_only, kt_teardown),
		cmocka_unit_test_teardown(test_cost, kt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
