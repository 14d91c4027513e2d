/* A program built against an installed libvmm, the way a user's program is: it only
 * includes <libvmm/libvmm.h> and links the installed library. It needs no /dev/kvm. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <libvmm/libvmm.h>

int main(void)
{
	char want[32];
	snprintf(want, sizeof want, "%d.%d.%d", LIBVMM_VERSION_MAJOR, LIBVMM_VERSION_MINOR,
		 LIBVMM_VERSION_PATCH);
	const char *version = vmm_version();
	if (!version || strcmp(version, want) != 0) {
		fprintf(stderr, "vmm_version() = \"%s\", headers say \"%s\"\n", version ? version : "(null)",
			want);
		return 1;
	}
	const char *s = vmm_strerror(-ENODEV);
	if (!s || strstr(s, "no such device") == NULL) {
		fprintf(stderr, "vmm_strerror(-ENODEV) = \"%s\"\n", s ? s : "(null)");
		return 1;
	}
	/* One call into an object API, so more than the error module is linked. */
	vmm_cpuid *cpuid = NULL;
	if (vmm_cpuid_create(&cpuid) != 0 || vmm_cpuid_count(cpuid) != 0) {
		fprintf(stderr, "vmm_cpuid_create failed\n");
		return 1;
	}
	vmm_cpuid_destroy(cpuid);
	printf("libvmm %s: %s\n", version, s);
	return 0;
}
