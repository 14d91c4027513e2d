/* Port I/O and MMIO from a real guest (tests/guests/pio_mmio.c), at CPL 3 and CPL 0:
 * every access reaches the registered device with the right offset, size and value;
 * the devices' read values reach the guest; unclaimed reads see all-ones. */
#include "harness/harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define TEST_PORT 0x100
#define TEST_MMIO 0xd0000000ull

struct access {
	uint64_t offset;
	unsigned size;
	bool write;
	uint64_t value;
};

struct recorder {
	const char *name;
	uint8_t seed;          /* read values come from a fixed byte pattern */
	struct access log[32];
	unsigned n;
	unsigned overflow;
};

/* Byte i of a device's read pattern. */
static uint8_t pattern(uint8_t seed, uint64_t i) { return (uint8_t)(seed + i * 0x1d); }

static uint64_t pattern_value(uint8_t seed, uint64_t offset, unsigned size)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)pattern(seed, offset + i) << (8 * i);
	return v;
}

static void record(struct recorder *r, uint64_t offset, unsigned size, bool write, uint64_t value)
{
	if (r->n == sizeof r->log / sizeof r->log[0]) {
		r->overflow++;
		return;
	}
	r->log[r->n++] = (struct access){ offset, size, write, value };
}

static uint64_t dev_read(void *opaque, uint64_t offset, unsigned size)
{
	struct recorder *r = opaque;
	uint64_t v = pattern_value(r->seed, offset, size);
	record(r, offset, size, false, v);
	return v;
}

static void dev_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	record(opaque, offset, size, true, value);
}

static void expect_log(const struct recorder *r, const struct access *want, unsigned n)
{
	assert_int_equal(r->overflow, 0);
	if (r->n != n) {
		for (unsigned i = 0; i < r->n; i++)
			print_message("%s access %u: %s off %#" PRIx64 " size %u value %#" PRIx64 "\n",
				      r->name, i, r->log[i].write ? "W" : "R", r->log[i].offset,
				      r->log[i].size, r->log[i].value);
		fail_msg("%s: %u accesses recorded, expected %u", r->name, r->n, n);
	}
	for (unsigned i = 0; i < n; i++) {
		const struct access *a = &r->log[i], *w = &want[i];
		if (a->offset != w->offset || a->size != w->size || a->write != w->write ||
		    (w->write && a->value != w->value))
			fail_msg("%s access %u: got %s off %#" PRIx64 " size %u value %#" PRIx64
				 ", expected %s off %#" PRIx64 " size %u value %#" PRIx64,
				 r->name, i, a->write ? "W" : "R", a->offset, a->size, a->value,
				 w->write ? "W" : "R", w->offset, w->size, w->value);
	}
}

static void run_at(void **state, unsigned cpl)
{
	kt_opts o = { .guest = "pio_mmio", .cpl = cpl };
	kt_vm *t = kt_create(state, &o);
	static struct recorder pio, mmio;
	pio = (struct recorder){ .name = "pio", .seed = 0x31 };
	mmio = (struct recorder){ .name = "mmio", .seed = 0x5b };
	vmm_bus_ops ops = { .read = dev_read, .write = dev_write };
	kt_check(vmm_bus_register(t->bus, VMM_BUS_PIO, TEST_PORT, 8, &ops, &pio), "register pio");
	kt_check(vmm_bus_register(t->bus, VMM_BUS_MMIO, TEST_MMIO, 0x1000, &ops, &mmio), "register mmio");

	/* All five unclaimed checks saw all-ones. */
	kt_run_expect(t, 0, 0x100 | 0x1f);

	const struct access want_pio[] = {
		{ 0, 1, true, 0xa5 }, { 2, 2, true, 0xbeef }, { 4, 4, true, 0xdeadbeef },
		{ 1, 1, false, 0 }, { 2, 2, false, 0 }, { 4, 4, false, 0 },
	};
	const struct access want_mmio[] = {
		{ 0x10, 1, true, 0x5a }, { 0x20, 2, true, 0x1234 }, { 0x40, 4, true, 0x89abcdef },
		{ 0x80, 8, true, 0x0123456789abcdefull },
		{ 0x11, 1, false, 0 }, { 0x22, 2, false, 0 }, { 0x44, 4, false, 0 }, { 0x88, 8, false, 0 },
	};
	expect_log(&pio, want_pio, 6);
	expect_log(&mmio, want_mmio, 8);

	/* The guest printed what it read: the devices' values arrived intact. */
	char want[256], got[256];
	snprintf(want, sizeof want, "pio 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 "\nmmio 0x%" PRIx64
		 " 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 "\n",
		 pattern_value(0x31, 1, 1), pattern_value(0x31, 2, 2), pattern_value(0x31, 4, 4),
		 pattern_value(0x5b, 0x11, 1), pattern_value(0x5b, 0x22, 2),
		 pattern_value(0x5b, 0x44, 4), pattern_value(0x5b, 0x88, 8));
	assert_string_equal(kt_console(t, got, sizeof got), want);
}

static void test_cpl3(void **state) { run_at(state, 3); }
static void test_cpl0(void **state) { run_at(state, 0); }

/* With VMM_VM_EXIT_ON_UNHANDLED_IO the first unclaimed access comes back to the caller. */
static void test_exit_on_unhandled(void **state)
{
	kt_opts o = { .guest = "pio_mmio", .cpl = 3, .vm_flags = VMM_VM_EXIT_ON_UNHANDLED_IO };
	kt_vm *t = kt_create(state, &o);
	vmm_bus_ops ops = { .read = NULL, .write = NULL }; /* claims, reads all-ones */
	kt_check(vmm_bus_register(t->bus, VMM_BUS_PIO, TEST_PORT, 8, &ops, NULL), "register pio");
	kt_check(vmm_bus_register(t->bus, VMM_BUS_MMIO, TEST_MMIO, 0x1000, &ops, NULL), "register mmio");
	vmm_exit e;
	char buf[256];
	assert_int_equal(kt_run(t, 0, &e, 0), 0);
	if (e.reason != VMM_EXIT_IO)
		fail_msg("expected IO exit, got %s", kt_exit_str(&e, buf, sizeof buf));
	/* outb(0x300, 0x11) */
	assert_false(e.u.io.is_mmio);
	assert_true(e.u.io.is_write);
	assert_int_equal(e.u.io.addr, 0x300);
	assert_int_equal(e.u.io.size, 1);
	assert_int_equal(e.u.io.value, 0x11);
	assert_int_equal(kt_run(t, 0, &e, 0), 0);
	if (e.reason != VMM_EXIT_IO)
		fail_msg("expected IO exit, got %s", kt_exit_str(&e, buf, sizeof buf));
	/* mmio_write32(0xd0100000, 0x22) */
	assert_true(e.u.io.is_mmio);
	assert_true(e.u.io.is_write);
	assert_int_equal(e.u.io.addr, 0xd0100000ull);
	assert_int_equal(e.u.io.size, 4);
	assert_int_equal(e.u.io.value, 0x22);
	/* The guest's inb(0x300) is next. */
	assert_int_equal(kt_run(t, 0, &e, 0), 0);
	if (e.reason != VMM_EXIT_IO)
		fail_msg("expected IO exit, got %s", kt_exit_str(&e, buf, sizeof buf));
	assert_false(e.u.io.is_mmio);
	assert_false(e.u.io.is_write);
	assert_int_equal(e.u.io.addr, 0x300);
	assert_int_equal(e.u.io.size, 1);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_cpl3, kt_teardown),
		cmocka_unit_test_teardown(test_cpl0, kt_teardown),
		cmocka_unit_test_teardown(test_exit_on_unhandled, kt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
