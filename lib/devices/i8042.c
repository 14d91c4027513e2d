/* The i8042 keyboard controller with nothing plugged in (see include/libvmm/i8042.h).
 *
 * The chip has a one-byte output buffer; every answer here is one byte, so a new answer
 * simply replaces an unread one. Commands that take a parameter leave `pending` set
 * until the next data-port write. The reset request is reported after the lock is
 * dropped, so the event callback may do anything. */
#include <pthread.h>
#include <stdlib.h>

#include "platform_internal.h"

#define STR_OBF 0x01u     /* output buffer full */
#define STR_SYS 0x04u     /* system flag (self-test passed) */
#define STR_CMD 0x08u     /* the last write went to the command port */
#define STR_UNLOCK 0x10u  /* keyboard not locked */
#define STR_AUXDATA 0x20u /* the output buffer holds aux (mouse) data */
#define STR_TIMEOUT 0x40u

#define CTR_KBDINT 0x01u
#define CTR_SYS 0x04u
#define CTR_KBDDIS 0x10u
#define CTR_AUXDIS 0x20u
#define CTR_XLATE 0x40u
/* What a BIOS leaves: translated keyboard with interrupts, no mouse. */
#define CTR_RESET (CTR_XLATE | CTR_AUXDIS | CTR_SYS | CTR_KBDINT)

#define OUTPORT_RESET_LINE 0x01u /* 0 = hold the CPU in reset */
#define OUTPORT_A20 0x02u

#define CMD_READ_CTR 0x20u
#define CMD_WRITE_CTR 0x60u
#define CMD_AUX_DISABLE 0xa7u
#define CMD_AUX_ENABLE 0xa8u
#define CMD_AUX_TEST 0xa9u
#define CMD_SELF_TEST 0xaau
#define CMD_KBD_TEST 0xabu
#define CMD_KBD_DISABLE 0xadu
#define CMD_KBD_ENABLE 0xaeu
#define CMD_READ_INPORT 0xc0u
#define CMD_READ_OUTPORT 0xd0u
#define CMD_WRITE_OUTPORT 0xd1u
#define CMD_WRITE_KBD_OBUF 0xd2u
#define CMD_WRITE_AUX_OBUF 0xd3u
#define CMD_WRITE_AUX 0xd4u
#define CMD_READ_TEST 0xe0u
#define CMD_PULSE_FIRST 0xf0u /* 0xF0-0xFF pulse output lines whose bits are 0 */

#define SELF_TEST_OK 0x55u
#define INTERFACE_OK 0x00u
#define DEVICE_TIMEOUT 0xfeu

struct vmm_i8042 {
	pthread_mutex_t lock;
	vmm_bus *bus;
	bool reg_data, reg_cmd;
	vmm_vm *vm;
	vmm_irq *irq;
	uint32_t gsi;
	bool level, line;
	vmm_system_event_fn event;
	void *ctx;

	uint8_t ctr;
	uint8_t outport;
	uint8_t obuf;
	bool obf, obuf_aux, timeout;
	bool last_cmd;
	uint8_t pending; /* command waiting for its parameter, 0 if none */
	uint32_t raise;  /* system event to report once unlocked, 0 if none */
};

static void put_out(vmm_i8042 *k, uint8_t v, bool aux)
{
	k->obuf = v;
	k->obf = true;
	k->obuf_aux = aux;
	k->timeout = false;
}

/* A byte for the keyboard or the mouse: nobody answers, the controller times out. */
static void device_timeout(vmm_i8042 *k, bool aux)
{
	put_out(k, DEVICE_TIMEOUT, aux);
	k->timeout = true;
}

static void sync_irq(vmm_i8042 *k)
{
	k->level = k->obf && !k->obuf_aux && (k->ctr & CTR_KBDINT);
	if (k->irq && k->level != k->line && vmm_irq_set_line(k->irq, k->gsi, k->level) == 0)
		k->line = k->level;
}

static void command(vmm_i8042 *k, uint8_t cmd)
{
	k->pending = 0;
	switch (cmd) {
	case CMD_READ_CTR:
		put_out(k, k->ctr, false);
		break;
	case CMD_WRITE_CTR:
	case CMD_WRITE_OUTPORT:
	case CMD_WRITE_KBD_OBUF:
	case CMD_WRITE_AUX_OBUF:
	case CMD_WRITE_AUX:
		k->pending = cmd;
		break;
	case CMD_AUX_DISABLE:
		k->ctr |= CTR_AUXDIS;
		break;
	case CMD_AUX_ENABLE:
		k->ctr &= (uint8_t)~CTR_AUXDIS;
		break;
	case CMD_SELF_TEST:
		k->ctr |= CTR_SYS;
		put_out(k, SELF_TEST_OK, false);
		break;
	case CMD_AUX_TEST:
	case CMD_KBD_TEST:
		put_out(k, INTERFACE_OK, false);
		break;
	case CMD_KBD_DISABLE:
		k->ctr |= CTR_KBDDIS;
		break;
	case CMD_KBD_ENABLE:
		k->ctr &= (uint8_t)~CTR_KBDDIS;
		break;
	case CMD_READ_INPORT:
	case CMD_READ_TEST:
		put_out(k, 0, false);
		break;
	case CMD_READ_OUTPORT:
		put_out(k, k->outport, false);
		break;
	default:
		/* A pulse command drives the lines whose bits are 0 low for a moment; line 0
		 * is the CPU's reset. */
		if (cmd >= CMD_PULSE_FIRST && !(cmd & OUTPORT_RESET_LINE))
			k->raise = VMM_SYSTEM_EVENT_RESET;
		break; /* other commands: ignored, as on controllers that lack them */
	}
}

static void data_write(vmm_i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending;
	k->pending = 0;
	switch (cmd) {
	case CMD_WRITE_CTR:
		k->ctr = v;
		break;
	case CMD_WRITE_OUTPORT:
		k->outport = v;
		if (!(v & OUTPORT_RESET_LINE))
			k->raise = VMM_SYSTEM_EVENT_RESET;
		break;
	case CMD_WRITE_KBD_OBUF:
		put_out(k, v, false);
		break;
	case CMD_WRITE_AUX_OBUF:
		put_out(k, v, true);
		break;
	case CMD_WRITE_AUX:
		device_timeout(k, true);
		break;
	default:
		device_timeout(k, false); /* a byte for the keyboard */
		break;
	}
}

static uint8_t status(const vmm_i8042 *k)
{
	return (uint8_t)((k->obf ? STR_OBF : 0) | (k->ctr & CTR_SYS ? STR_SYS : 0) |
			 (k->last_cmd ? STR_CMD : 0) | STR_UNLOCK |
			 (k->obf && k->obuf_aux ? STR_AUXDATA : 0) | (k->timeout ? STR_TIMEOUT : 0));
}

/* Reports a reset requested during this access, outside the lock. */
static void finish(vmm_i8042 *k)
{
	uint32_t ev = k->raise;
	k->raise = 0;
	sync_irq(k);
	pthread_mutex_unlock(&k->lock);
	if (!ev)
		return;
	if (k->event)
		k->event(k->ctx, ev);
	else
		vmm_vm_request_stop(k->vm, ev);
}

static uint64_t data_read(void *opaque, uint64_t offset, unsigned size)
{
	vmm_i8042 *k = opaque;
	(void)offset;
	(void)size;
	pthread_mutex_lock(&k->lock);
	uint8_t v = k->obuf; /* with the buffer empty, the chip returns the stale byte */
	k->obf = false;
	k->timeout = false;
	finish(k);
	return v;
}

static void data_port_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	vmm_i8042 *k = opaque;
	(void)offset;
	(void)size;
	pthread_mutex_lock(&k->lock);
	k->last_cmd = false;
	data_write(k, (uint8_t)value);
	finish(k);
}

static uint64_t status_read(void *opaque, uint64_t offset, unsigned size)
{
	vmm_i8042 *k = opaque;
	(void)offset;
	(void)size;
	pthread_mutex_lock(&k->lock);
	uint8_t v = status(k);
	pthread_mutex_unlock(&k->lock);
	return v;
}

static void command_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	vmm_i8042 *k = opaque;
	(void)offset;
	(void)size;
	pthread_mutex_lock(&k->lock);
	k->last_cmd = true;
	command(k, (uint8_t)value);
	finish(k);
}

bool vmm_i8042_irq_level(vmm_i8042 *k)
{
	pthread_mutex_lock(&k->lock);
	bool level = k->level;
	pthread_mutex_unlock(&k->lock);
	return level;
}

void vmm_i8042_destroy(vmm_i8042 *k)
{
	if (!k)
		return;
	if (k->reg_data)
		vmm_bus_unregister(k->bus, VMM_BUS_PIO, VMM_I8042_DATA_PORT);
	if (k->reg_cmd)
		vmm_bus_unregister(k->bus, VMM_BUS_PIO, VMM_I8042_CMD_PORT);
	if (k->irq && k->line)
		vmm_irq_set_line(k->irq, k->gsi, false);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

int vmm_i8042_create(vmm_i8042 **out, vmm_vm *vm, const vmm_i8042_opts *opts)
{
	if (!out)
		return vmm_err(-EINVAL, "vmm_i8042_create: out is NULL");
	*out = NULL;
	vmm_i8042_opts o = VMM_I8042_OPTS_INIT;
	if (opts && vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "vmm_i8042_create: opts->size is too small");
	vmm_bus *bus = o.bus ? o.bus : vmm_vm_bus(vm);
	if (!bus)
		return vmm_err(-EINVAL, "vmm_i8042_create: needs a VM or a bus");
	if (!vm && !o.event)
		return vmm_err(-EINVAL, "vmm_i8042_create: without a VM, an event callback is required");
	uint32_t gsi = o.gsi ? o.gsi : VMM_I8042_GSI;
	if (gsi >= VMM_IRQ_MAX_GSI)
		return vmm_err(-EINVAL, "i8042: GSI %u out of range", gsi);

	vmm_i8042 *k = calloc(1, sizeof *k);
	if (!k)
		return vmm_err(-ENOMEM, "i8042: out of memory");
	pthread_mutex_init(&k->lock, NULL);
	k->bus = bus;
	k->vm = vm;
	k->irq = vm ? vmm_vm_irq(vm) : NULL;
	k->gsi = gsi;
	k->event = o.event;
	k->ctx = o.ctx;
	k->ctr = CTR_RESET;
	k->outport = OUTPORT_RESET_LINE | OUTPORT_A20;

	vmm_bus_ops data = { .read = data_read, .write = data_port_write };
	vmm_bus_ops cmd = { .read = status_read, .write = command_write };
	int r = vmm_bus_register(bus, VMM_BUS_PIO, VMM_I8042_DATA_PORT, 1, &data, k);
	k->reg_data = r == 0;
	if (!r) {
		r = vmm_bus_register(bus, VMM_BUS_PIO, VMM_I8042_CMD_PORT, 1, &cmd, k);
		k->reg_cmd = r == 0;
	}
	if (r) {
		vmm_i8042_destroy(k);
		return r;
	}
	*out = k;
	return 0;
}
