/* A guest whose init fails: sandbox creation must report it. */
#include <libvmm_guest.h>

static int setup(void) { return 7; }
VMM_GUEST_INIT(setup);

uint64_t nothing(void) { return 0; }
VMM_GUEST_EXPORT(nothing);
