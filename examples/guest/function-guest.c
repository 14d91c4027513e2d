/* The guest side of examples/function-runner.c, built with the libvmm guest SDK.
 *
 * init builds a CRC-32 table once; the snapshot taken after init keeps it, so no
 * request pays for it. handle() answers one request: it upper-cases the request body,
 * appends its CRC-32, and counts the requests this instance has served - always 1,
 * since the host resets the sandbox before every request. */
#include <libvmm_guest.h>

static uint32_t crc_table[256];
static uint64_t served;

static int setup(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
	return 0;
}
VMM_GUEST_INIT(setup);

static size_t put_str(char *out, size_t at, size_t cap, const char *s)
{
	while (*s && at < cap)
		out[at++] = *s++;
	return at;
}

static size_t put_hex(char *out, size_t at, size_t cap, uint32_t v)
{
	for (int shift = 28; shift >= 0 && at < cap; shift -= 4)
		out[at++] = "0123456789abcdef"[(v >> shift) & 15];
	return at;
}

/* Input 0: the request body. Output 0: "<BODY> crc=<hex> served=<n>". Returns the
 * response length. */
uint64_t handle(void)
{
	size_t len, cap;
	const uint8_t *req = vmm_guest_in(0, &len);
	char *out = vmm_guest_out(0, &cap);
	if (!req || !out)
		vmm_guest_abort("handle: needs one input and one output buffer");
	uint32_t crc = 0xffffffffu;
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		crc = crc_table[(crc ^ req[i]) & 0xff] ^ (crc >> 8);
		if (n < cap)
			out[n++] = (char)(req[i] >= 'a' && req[i] <= 'z' ? req[i] - 32 : req[i]);
	}
	served++;
	n = put_str(out, n, cap, " crc=");
	n = put_hex(out, n, cap, ~crc);
	n = put_str(out, n, cap, " served=");
	if (n < cap)
		out[n++] = (char)('0' + (served > 9 ? 9 : served));
	vmm_guest_set_out_len(0, n);
	return n;
}
VMM_GUEST_EXPORT(handle);
