/* Fuzz target: the snapshot state-file parser (lib/snapshot/format_read.c), with no VM.
 *
 * Each input is parsed twice: as it is (which mostly exercises the header checks and
 * the checksum), and as a copy whose total size and CRC32C were fixed up first, so the
 * fuzzer gets past the checksum into the sections. Beyond "no crash, no sanitizer
 * report" it checks what the parser promises: only the documented errors, always with a
 * message; and whatever it accepts, the encoder writes back into a file that parses to
 * the same bytes again (parse -> encode -> parse -> encode is stable). The memory-file
 * header check runs on the input too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/snapshot_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_snapshot: broken promise: %s (last error: %s)\n", what, vmm_last_error());
		abort();
	}
}

static void parse_one(const uint8_t *data, size_t size)
{
	struct snap_desc *d = NULL;
	int r = snap_parse(data, size, &d);
	if (r) {
		check(r == -EINVAL || r == -EBADMSG || r == -ENOTSUP || r == -ENOMEM, "documented error");
		check(vmm_last_error()[0] != '\0', "error with a message");
		check(d == NULL, "no description on failure");
		return;
	}
	check(d != NULL, "a description on success");
	/* Whatever parses, re-encodes into a stable, parsable file. */
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	struct snap_desc *d2 = NULL;
	check(snap_encode(d, &a, &alen) == 0, "an accepted description encodes");
	check(snap_parse(a, alen, &d2) == 0, "the encoding parses");
	check(snap_encode(d2, &b, &blen) == 0, "and encodes again");
	check(alen == blen && memcmp(a, b, alen) == 0, "encode(parse(encode(d))) == encode(d)");
	check(d2->nr_vcpus == d->nr_vcpus && d2->nr_regions == d->nr_regions && d2->nr_devices == d->nr_devices,
	      "counts survive");
	for (uint32_t i = 0; i < d->nr_devices; i++)
		check(d2->devices[i].len == d->devices[i].len &&
		      memcmp(d2->devices[i].data, d->devices[i].data, d->devices[i].len) == 0, "device states survive");
	/* What restore, clone and reset load is prepared from any accepted description. */
	int pr = snap_prepare(d);
	check(pr == 0 || pr == -ENOMEM, "prepare: only -ENOMEM");
	/* A memory header page for this description, and the input as one. */
	uint8_t page[SNAP_MEM_HEADER_SIZE];
	snap_fill_mem_header(d, page);
	check(snap_check_mem_header(d2, page, sizeof page) == 0, "own memory header accepted");
	r = snap_check_mem_header(d, data, size);
	check(r == 0 || r == -EINVAL || r == -EBADMSG, "memory header: documented error");
	free(a);
	free(b);
	snap_desc_free(d2);
	snap_desc_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse_one(data, size);
	if (size < sizeof(struct snap_file_header) || size > VMM_SNAPSHOT_MAX_STATE_SIZE)
		return 0;
	uint8_t *c = malloc(size);
	if (!c)
		return 0;
	memcpy(c, data, size);
	uint64_t total = size;
	uint32_t crc = 0;
	memcpy(c + offsetof(struct snap_file_header, total_size), &total, sizeof total);
	memcpy(c + offsetof(struct snap_file_header, crc), &crc, sizeof crc);
	crc = vmm_crc32c(0, c, size);
	memcpy(c + offsetof(struct snap_file_header, crc), &crc, sizeof crc);
	parse_one(c, size);
	free(c);
	return 0;
}
