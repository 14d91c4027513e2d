/* The CMOS RTC (see include/libvmm/rtc.h).
 *
 * The time is never stored: each read converts clock() + offset to calendar fields, so
 * there is no update cycle (UIP is always 0) and no timer thread. A guest that sets the
 * clock changes `offset`. While register B's SET bit is on, the fields are a latched
 * copy the guest edits; clearing SET commits the copy, as on the chip. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include <libvmm/rtc.h>

#include "../internal.h"

#define RTC_NREGS 128u

enum {
	REG_SEC = 0x00, REG_MIN = 0x02, REG_HOUR = 0x04, REG_WDAY = 0x06, REG_MDAY = 0x07,
	REG_MON = 0x08, REG_YEAR = 0x09, REG_A = 0x0a, REG_B = 0x0b, REG_C = 0x0c, REG_D = 0x0d,
	REG_CENTURY = 0x32,
};

#define INDEX_MASK 0x7fu /* bit 7 is the PC's NMI disable: not ours */
#define A_UIP 0x80u
#define A_RESET 0x26u    /* 32.768 kHz time base, 1024 Hz rate: what firmware sets */
#define B_SET 0x80u
#define B_DM_BINARY 0x04u
#define B_24H 0x02u
#define B_RESET B_24H    /* BCD, 24-hour */
#define D_VRT 0x80u
#define HOUR_PM 0x80u

struct vmm_rtc {
	pthread_mutex_t lock;
	vmm_bus *bus;
	uint16_t port;
	bool registered;
	vmm_rtc_clock_fn clock;
	void *ctx;

	uint8_t index;
	uint8_t nvram[RTC_NREGS]; /* also holds A and B; C, D and the time are computed */
	int64_t offset;           /* guest time - clock(), seconds */
	bool latched;             /* SET is on: `tm` is the guest's copy */
	struct tm tm;
};

static int64_t host_clock(void *ctx)
{
	struct timespec ts;
	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

static int64_t now(const vmm_rtc *r)
{
	return r->clock(r->ctx);
}

/* The guest's current time as calendar fields. */
static void current(const vmm_rtc *r, struct tm *tm)
{
	if (r->latched) {
		*tm = r->tm;
		return;
	}
	int64_t t;
	if (__builtin_add_overflow(now(r), r->offset, &t))
		t = now(r);
	time_t tt = (time_t)t;
	if (!gmtime_r(&tt, tm)) {
		tt = 0; /* beyond what struct tm holds: show the epoch rather than garbage */
		gmtime_r(&tt, tm);
	}
}

static bool binary(const vmm_rtc *r)
{
	return r->nvram[REG_B] & B_DM_BINARY;
}

static uint8_t to_reg(const vmm_rtc *r, int v)
{
	if (v < 0)
		v = 0;
	v %= 100;
	return binary(r) ? (uint8_t)v : (uint8_t)((v / 10) << 4 | (v % 10));
}

/* Any byte decodes (invalid BCD digits included); the range is at most 0-165, which
 * timegm normalizes like any other out-of-range field. */
static int from_reg(const vmm_rtc *r, uint8_t v)
{
	return binary(r) ? v : (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t hour_reg(const vmm_rtc *r, int hour)
{
	if (r->nvram[REG_B] & B_24H)
		return to_reg(r, hour);
	int h12 = hour % 12 ? hour % 12 : 12;
	return (uint8_t)(to_reg(r, h12) | (hour >= 12 ? HOUR_PM : 0));
}

static int hour_from_reg(const vmm_rtc *r, uint8_t v)
{
	if (r->nvram[REG_B] & B_24H)
		return from_reg(r, v);
	return from_reg(r, v & (uint8_t)~HOUR_PM) % 12 + (v & HOUR_PM ? 12 : 0);
}

static bool is_time_reg(unsigned reg)
{
	switch (reg) {
	case REG_SEC:
	case REG_MIN:
	case REG_HOUR:
	case REG_WDAY:
	case REG_MDAY:
	case REG_MON:
	case REG_YEAR:
	case REG_CENTURY:
		return true;
	default:
		return false;
	}
}

static uint8_t time_reg_read(const vmm_rtc *r, unsigned reg)
{
	struct tm tm;
	current(r, &tm);
	/* tm_year is years since 1900; the chip shows 0000-9999. */
	int year = tm.tm_year > 9999 - 1900 ? 9999 : tm.tm_year + 1900;
	switch (reg) {
	case REG_SEC:
		return to_reg(r, tm.tm_sec > 59 ? 59 : tm.tm_sec); /* a leap second shows as :59 */
	case REG_MIN:
		return to_reg(r, tm.tm_min);
	case REG_HOUR:
		return hour_reg(r, tm.tm_hour);
	case REG_WDAY:
		return to_reg(r, tm.tm_wday + 1);
	case REG_MDAY:
		return to_reg(r, tm.tm_mday);
	case REG_MON:
		return to_reg(r, tm.tm_mon + 1);
	case REG_YEAR:
		return to_reg(r, year % 100);
	default:
		return to_reg(r, year / 100);
	}
}

static uint8_t rtc_reg_read(const vmm_rtc *r, unsigned reg)
{
	if (is_time_reg(reg))
		return time_reg_read(r, reg);
	switch (reg) {
	case REG_A:
		return r->nvram[REG_A] & (uint8_t)~A_UIP;
	case REG_C:
		return 0;
	case REG_D:
		return D_VRT;
	default:
		return r->nvram[reg];
	}
}

/* Makes `tm` the guest's time: the offset that shows it now. */
static void commit(vmm_rtc *r, struct tm *tm)
{
	tm->tm_isdst = 0;
	time_t t = timegm(tm);
	int64_t off;
	if (t == (time_t)-1 || __builtin_sub_overflow((int64_t)t, now(r), &off))
		return; /* not a time the host can represent: keep the old one */
	r->offset = off;
}

static void set_field(vmm_rtc *r, unsigned reg, uint8_t v)
{
	struct tm tm;
	current(r, &tm);
	int year = tm.tm_year + 1900;
	switch (reg) {
	case REG_SEC:
		tm.tm_sec = from_reg(r, v);
		break;
	case REG_MIN:
		tm.tm_min = from_reg(r, v);
		break;
	case REG_HOUR:
		tm.tm_hour = hour_from_reg(r, v);
		break;
	case REG_MDAY:
		tm.tm_mday = from_reg(r, v);
		break;
	case REG_MON:
		tm.tm_mon = from_reg(r, v) - 1;
		break;
	case REG_YEAR:
		tm.tm_year = (year / 100) * 100 + from_reg(r, v) - 1900;
		break;
	case REG_CENTURY:
		tm.tm_year = from_reg(r, v) * 100 + year % 100 - 1900;
		break;
	default:
		return; /* the day of the week follows from the date */
	}
	if (r->latched)
		r->tm = tm; /* committed when SET is cleared */
	else
		commit(r, &tm);
}

static void rtc_reg_write(vmm_rtc *r, unsigned reg, uint8_t v)
{
	if (is_time_reg(reg)) {
		set_field(r, reg, v);
		return;
	}
	switch (reg) {
	case REG_A:
		r->nvram[REG_A] = v & (uint8_t)~A_UIP;
		break;
	case REG_B:
		if ((v & B_SET) && !r->latched) {
			current(r, &r->tm); /* freeze the fields the guest is about to edit */
			r->latched = true;
		} else if (!(v & B_SET) && r->latched) {
			r->latched = false;
			commit(r, &r->tm);
		}
		r->nvram[REG_B] = v;
		break;
	case REG_C:
	case REG_D:
		break; /* read-only */
	default:
		r->nvram[reg] = v;
		break;
	}
}

static uint64_t rtc_bus_read(void *opaque, uint64_t offset, unsigned size)
{
	vmm_rtc *r = opaque;
	(void)size;
	if (offset == 0)
		return 0xff; /* the index register is write-only */
	pthread_mutex_lock(&r->lock);
	uint8_t v = rtc_reg_read(r, r->index);
	pthread_mutex_unlock(&r->lock);
	return v;
}

static void rtc_bus_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	vmm_rtc *r = opaque;
	(void)size;
	pthread_mutex_lock(&r->lock);
	if (offset == 0)
		r->index = (uint8_t)value & INDEX_MASK;
	else
		rtc_reg_write(r, r->index, (uint8_t)value);
	pthread_mutex_unlock(&r->lock);
}

void vmm_rtc_destroy(vmm_rtc *r)
{
	if (!r)
		return;
	if (r->registered)
		vmm_bus_unregister(r->bus, VMM_BUS_PIO, r->port);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int vmm_rtc_create(vmm_rtc **out, vmm_vm *vm, const vmm_rtc_opts *opts)
{
	if (!out)
		return vmm_err(-EINVAL, "vmm_rtc_create: out is NULL");
	*out = NULL;
	vmm_rtc_opts o = VMM_RTC_OPTS_INIT;
	if (opts && vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "vmm_rtc_create: opts->size is too small");
	vmm_bus *bus = o.bus ? o.bus : vmm_vm_bus(vm);
	if (!bus)
		return vmm_err(-EINVAL, "vmm_rtc_create: needs a VM or a bus");
	uint16_t port = o.port ? o.port : VMM_RTC_PORT;
	if (port == 0xffff)
		return vmm_err(-EINVAL, "rtc: the data port of index port 0xffff would be past 0xffff");

	vmm_rtc *r = calloc(1, sizeof *r);
	if (!r)
		return vmm_err(-ENOMEM, "rtc: out of memory");
	pthread_mutex_init(&r->lock, NULL);
	r->bus = bus;
	r->port = port;
	r->clock = o.clock ? o.clock : host_clock;
	r->ctx = o.ctx;
	r->nvram[REG_A] = A_RESET;
	r->nvram[REG_B] = B_RESET;
	vmm_bus_ops ops = { .read = rtc_bus_read, .write = rtc_bus_write };
	int rc = vmm_bus_register(bus, VMM_BUS_PIO, port, 2, &ops, r);
	if (rc) {
		vmm_rtc_destroy(r);
		return rc;
	}
	r->registered = true;
	*out = r;
	return 0;
}
