# bench_snapshot: snapshots, resets, clones and sandbox calls against their baselines
# (fork(), raw KVM exits, plain file writes), side by side in one run (see
# bench_snapshot.c). Included from bench/CMakeLists.txt.
add_executable(bench_snapshot bench_snapshot.c snapshot_vm.c snapshot_reset.c snapshot_calls.c
  snapshot_clone.c snapshot_restore.c raw.c guest_code.c stats.c)
target_link_libraries(bench_snapshot PRIVATE vmm vmm_host_flags)

# Its sandbox guest, built with the guest SDK (a no-op where examples already included it).
include(${CMAKE_SOURCE_DIR}/sdk/guest/libvmm_guest.cmake)
libvmm_add_guest(bench_snapshot_guest SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/guest/snapshot_guest.c)
add_dependencies(bench_snapshot bench_snapshot_guest)
target_compile_definitions(bench_snapshot PRIVATE
  BENCH_SNAPSHOT_GUEST="${CMAKE_CURRENT_BINARY_DIR}/bench_snapshot_guest.elf")

# The full run (a few minutes here; needs ~4 GiB of RAM and ~1.1 GiB in /tmp):
#   cmake --build <build> --target bench_snapshot_run
add_custom_target(bench_snapshot_run COMMAND bench_snapshot DEPENDS bench_snapshot USES_TERMINAL
  COMMENT "bench_snapshot: snapshots, resets, clones and calls against their baselines, full run")

# Smoke run for CI: checks the output's format, never its timings.
if(LIBVMM_BUILD_TESTS)
  add_test(NAME bench.snapshot_quick
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/bench_snapshot_check.sh $<TARGET_FILE:bench_snapshot> --quick)
  set_tests_properties(bench.snapshot_quick PROPERTIES LABELS bench SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()
