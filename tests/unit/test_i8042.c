/* Unit tests for the i8042 controller and the ACPI power device through a standalone
 * bus: what Linux's i8042 probe reads and writes, the missing keyboard's time-out, the
 * interrupt line, and the reset and power-off requests reported as system events. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <libvmm/libvmm.h>
#include "devices/platform_internal.h"

#define DATA 0x60u
#define CMD 0x64u

struct fixture {
	vmm_bus *bus;
	vmm_i8042 *kbc;
	vmm_power *power;
	uint32_t events[8];
	unsigned nevents;
};

static void on_event(void *ctx, uint32_t event)
{
	struct fixture *f = ctx;
	if (f->nevents < 8)
		f->events[f->nevents] = event;
	f->nevents++;
}

static uint8_t in8(struct fixture *f, uint16_t port)
{
	uint8_t v = 0;
	assert_int_equal(vmm_bus_read(f->bus, VMM_BUS_PIO, port, &v, 1), 0);
	return v;
}

static void out8(struct fixture *f, uint16_t port, uint8_t v)
{
	assert_int_equal(vmm_bus_write(f->bus, VMM_BUS_PIO, port, &v, 1), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	assert_int_equal(vmm_bus_create(&f->bus), 0);
	vmm_i8042_opts o = VMM_I8042_OPTS_INIT;
	o.bus = f->bus;
	o.event = on_event;
	o.ctx = f;
	assert_int_equal(vmm_i8042_create(&f->kbc, NULL, &o), 0);
	vmm_power_opts po = VMM_POWER_OPTS_INIT;
	po.bus = f->bus;
	po.event = on_event;
	po.ctx = f;
	assert_int_equal(vmm_power_create(&f->power, NULL, &po), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	vmm_i8042_destroy(f->kbc);
	vmm_power_destroy(f->power);
	vmm_bus_destroy(f->bus);
	free(f);
	return 0;
}

/* A controller command with one answer byte. */
static uint8_t query(struct fixture *f, uint8_t cmd)
{
	out8(f, CMD, cmd);
	assert_int_equal(in8(f, CMD) & 0x01, 0x01);
	uint8_t v = in8(f, DATA);
	assert_int_equal(in8(f, CMD) & 0x01, 0);
	return v;
}

static void test_status_and_probe(void **state)
{
	struct fixture *f = *state;
	/* Empty output buffer, system flag, not locked; never input-buffer-full, never
	 * 0xff (Linux's "no controller"). */
	assert_int_equal(in8(f, CMD), 0x14);
	/* Linux's flush: nothing to read. A data read with nothing there leaves it so. */
	(void)in8(f, DATA);
	assert_int_equal(in8(f, CMD) & 0x01, 0);

	assert_int_equal(query(f, 0xaa), 0x55); /* controller self-test */
	assert_int_equal(in8(f, CMD) & 0x08, 0x08); /* last write was a command */
	assert_int_equal(query(f, 0xab), 0x00); /* keyboard interface test */
	assert_int_equal(query(f, 0xa9), 0x00); /* aux interface test */

	/* The configuration byte: stable reads, writes take. */
	uint8_t ctr = query(f, 0x20);
	assert_int_equal(ctr, 0x65);
	assert_int_equal(query(f, 0x20), ctr);
	out8(f, CMD, 0x60);
	out8(f, DATA, 0x74); /* keyboard disabled, interrupts off */
	assert_int_equal(in8(f, CMD) & 0x08, 0); /* last write was data */
	assert_int_equal(query(f, 0x20), 0x74);
	out8(f, CMD, 0xae);
	assert_int_equal(query(f, 0x20), 0x64);
	out8(f, CMD, 0xad);
	assert_int_equal(query(f, 0x20), 0x74);
	out8(f, CMD, 0xa8);
	assert_int_equal(query(f, 0x20), 0x54);
	out8(f, CMD, 0xa7);
	assert_int_equal(query(f, 0x20), 0x74);
	/* Clearing the system flag shows in the status register. */
	out8(f, CMD, 0x60);
	out8(f, DATA, 0x00);
	assert_int_equal(in8(f, CMD) & 0x04, 0);

	/* Output port: reset line high, A20 on. */
	assert_int_equal(query(f, 0xd0), 0x03);
	/* Unknown commands are ignored. */
	out8(f, CMD, 0xc8);
	assert_int_equal(in8(f, CMD) & 0x01, 0);
	assert_int_equal(f->nevents, 0);
}

static void test_no_keyboard_times_out(void **state)
{
	struct fixture *f = *state;
	assert_false(vmm_i8042_irq_level(f->kbc));
	/* A byte for the keyboard (GETID): time-out, 0xfe, and IRQ 1 (enabled in the
	 * configuration byte by default). */
	out8(f, DATA, 0xf2);
	uint8_t st = in8(f, CMD);
	assert_int_equal(st & 0x61, 0x41); /* OBF, TIMEOUT, not AUXDATA */
	assert_true(vmm_i8042_irq_level(f->kbc));
	assert_int_equal(in8(f, DATA), 0xfe);
	assert_int_equal(in8(f, CMD) & 0x41, 0);
	assert_false(vmm_i8042_irq_level(f->kbc));

	/* With the keyboard interrupt off, no line. */
	out8(f, CMD, 0x60);
	out8(f, DATA, 0x64);
	out8(f, DATA, 0xff);
	assert_int_equal(in8(f, CMD) & 0x01, 0x01);
	assert_false(vmm_i8042_irq_level(f->kbc));
	assert_int_equal(in8(f, DATA), 0xfe);

	/* Turning it on with a byte waiting raises the line. */
	out8(f, CMD, 0xd2);
	out8(f, DATA, 0x1c); /* echoed as keyboard data */
	assert_false(vmm_i8042_irq_level(f->kbc));
	out8(f, CMD, 0x60);
	out8(f, DATA, 0x65);
	/* The CTR write did not disturb the byte waiting in the buffer. */
	assert_true(vmm_i8042_irq_level(f->kbc));
	assert_int_equal(in8(f, DATA), 0x1c);
	assert_false(vmm_i8042_irq_level(f->kbc));

	/* Aux echo and a byte for the absent mouse: aux data, no keyboard interrupt. */
	out8(f, CMD, 0xd3);
	out8(f, DATA, 0x5a);
	assert_int_equal(in8(f, CMD) & 0x21, 0x21);
	assert_false(vmm_i8042_irq_level(f->kbc));
	assert_int_equal(in8(f, DATA), 0x5a);
	out8(f, CMD, 0xd4);
	out8(f, DATA, 0xf4);
	assert_int_equal(in8(f, CMD) & 0x61, 0x61);
	assert_int_equal(in8(f, DATA), 0xfe);
	assert_int_equal(f->nevents, 0);
}

static void test_reset(void **state)
{
	struct fixture *f = *state;
	out8(f, CMD, 0xff); /* pulses nothing */
	assert_int_equal(f->nevents, 0);
	out8(f, CMD, 0xfe); /* pulse line 0: reset (Linux, and the FADT reset register) */
	assert_int_equal(f->nevents, 1);
	assert_int_equal(f->events[0], VMM_SYSTEM_EVENT_RESET);
	out8(f, CMD, 0xf0); /* pulses all four lines, reset among them */
	assert_int_equal(f->nevents, 2);
	out8(f, CMD, 0xfd); /* line 1 only */
	assert_int_equal(f->nevents, 2);
	/* Writing the output port with the reset line low. */
	out8(f, CMD, 0xd1);
	out8(f, DATA, 0x03);
	assert_int_equal(f->nevents, 2);
	out8(f, CMD, 0xd1);
	out8(f, DATA, 0x02);
	assert_int_equal(f->nevents, 3);
	assert_int_equal(f->events[2], VMM_SYSTEM_EVENT_RESET);
	/* The parameter was consumed: the next data byte goes to the (absent) keyboard. */
	out8(f, DATA, 0x00);
	assert_int_equal(f->nevents, 3);
	assert_int_equal(in8(f, DATA), 0xfe);
}

static void test_power_off(void **state)
{
	struct fixture *f = *state;
	uint16_t port = VMM_POWER_PORT_DEFAULT;
	assert_int_equal(in8(f, port), 0);
	out8(f, port, VMM_ACPI_SLEEP_WAK_STS); /* Linux clears the wake status first */
	assert_int_equal(f->nevents, 0);
	out8(f, port, VMM_ACPI_SLP_TYP_S5 << 2); /* S5 without SLP_EN */
	assert_int_equal(f->nevents, 0);
	out8(f, port, (1u << 2) | VMM_ACPI_SLP_EN); /* S1: not supported, ignored */
	out8(f, port, (3u << 2) | VMM_ACPI_SLP_EN); /* S3 */
	assert_int_equal(f->nevents, 0);
	out8(f, port, VMM_ACPI_SLEEP_S5_OFF);
	assert_int_equal(f->nevents, 1);
	assert_int_equal(f->events[0], VMM_SYSTEM_EVENT_SHUTDOWN);
	/* A 16-bit write whose low byte is the S5 request. */
	uint16_t v = 0xab00u | VMM_ACPI_SLEEP_S5_OFF;
	assert_int_equal(vmm_bus_write(f->bus, VMM_BUS_PIO, port, &v, 2), -ENOENT); /* 1 port */
	assert_int_equal(in8(f, port), 0);
}

static void test_bad_options(void **state)
{
	struct fixture *f = *state;
	vmm_i8042 *k = NULL;
	vmm_i8042_opts o = VMM_I8042_OPTS_INIT;
	assert_int_equal(vmm_i8042_create(&k, NULL, &o), -EINVAL); /* no VM, no bus */
	o.bus = f->bus;
	assert_int_equal(vmm_i8042_create(&k, NULL, &o), -EINVAL); /* no VM, no callback */
	o.event = on_event;
	assert_int_equal(vmm_i8042_create(&k, NULL, &o), -EEXIST); /* ports taken */
	o.gsi = VMM_IRQ_MAX_GSI;
	assert_int_equal(vmm_i8042_create(&k, NULL, &o), -EINVAL);
	assert_int_equal(vmm_i8042_create(NULL, NULL, &o), -EINVAL);
	assert_null(k);

	vmm_power *p = NULL;
	vmm_power_opts po = VMM_POWER_OPTS_INIT;
	assert_int_equal(vmm_power_create(&p, NULL, &po), -EINVAL);
	po.bus = f->bus;
	assert_int_equal(vmm_power_create(&p, NULL, &po), -EINVAL);
	po.event = on_event;
	assert_int_equal(vmm_power_create(&p, NULL, &po), -EEXIST);
	po.port = 0x601;
	assert_int_equal(vmm_power_create(&p, NULL, &po), 0);
	vmm_power_destroy(p);
	vmm_power_destroy(NULL);
	vmm_i8042_destroy(NULL);

	/* After destroy the ports are free again. */
	vmm_i8042_destroy(f->kbc);
	f->kbc = NULL;
	uint8_t b;
	assert_int_equal(vmm_bus_read(f->bus, VMM_BUS_PIO, CMD, &b, 1), -ENOENT);
	assert_int_equal(vmm_bus_read(f->bus, VMM_BUS_PIO, DATA, &b, 1), -ENOENT);
	o.gsi = 0;
	assert_int_equal(vmm_i8042_create(&f->kbc, NULL, &o), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status_and_probe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_keyboard_times_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
