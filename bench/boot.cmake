# bench_boot: Linux boot time to the guest's init and the VMM's memory overhead, libvmm
# against QEMU's microvm machine (see bench_boot.c). Included from bench/CMakeLists.txt.
#
# Not a CTest test: every boot takes minutes on hosts that interpret guest ring-0 code.
# Run it with `cmake --build <build> --target bench_boot_run` (about 15-25 min here;
# BENCH_BOOT_ARGS=--quick: about 2-4 min) or run bench_boot directly.
add_executable(bench_boot ${CMAKE_CURRENT_LIST_DIR}/bench_boot.c ${CMAKE_CURRENT_LIST_DIR}/boot_vmm.c
  ${CMAKE_CURRENT_LIST_DIR}/boot_qemu.c ${CMAKE_CURRENT_LIST_DIR}/boot_proc.c ${CMAKE_CURRENT_LIST_DIR}/stats.c)
target_link_libraries(bench_boot PRIVATE vmm vmm_host_flags)

# The guest kernels and initramfs: LIBVMM_GUEST_OUT (tests/kvm/linux.cmake) when the tests
# define it, else <build>/guest; BENCH_BOOT_GUEST_DIR overrides both.
if(DEFINED LIBVMM_GUEST_OUT)
  set(_bench_boot_guest_default ${LIBVMM_GUEST_OUT})
else()
  set(_bench_boot_guest_default ${CMAKE_BINARY_DIR}/guest)
endif()
set(BENCH_BOOT_GUEST_DIR ${_bench_boot_guest_default} CACHE PATH
  "Guest kernels and initramfs for bench_boot (scripts/build-guest-kernel.sh's output)")
set(BENCH_BOOT_ARGS "" CACHE STRING "Extra arguments of bench_boot_run, e.g. --quick or --runs 2")
target_compile_definitions(bench_boot PRIVATE BENCH_BOOT_GUEST_DIR="${BENCH_BOOT_GUEST_DIR}")

separate_arguments(_bench_boot_args UNIX_COMMAND "${BENCH_BOOT_ARGS}")
add_custom_target(bench_boot_run
  COMMAND bench_boot --guest-dir ${BENCH_BOOT_GUEST_DIR} ${_bench_boot_args}
  DEPENDS bench_boot USES_TERMINAL
  COMMENT "bench_boot: Linux boot to init, libvmm and QEMU microvm (minutes per boot here)")
