# The Linux boot test (tests/kvm/test_linux_boot.c): boots libvmm's minimal guest kernel
# with its test initramfs and disk, CTest label `linux`.
#
# Off by default: the guest kernel is built from Debian's linux-source package by
# scripts/build-guest-kernel.sh, which takes minutes (once; later runs find it up to date),
# and the boot itself takes minutes on hosts that interpret guest ring-0 code. CI turns it
# on with -DLIBVMM_LINUX_TESTS=ON (scripts/test-linux.sh, the last step of scripts/test.sh,
# which points LIBVMM_GUEST_OUT at a cache directory outside the clone).
#
# Included from tests/CMakeLists.txt, which leaves tests/kvm/test_linux_*.c out of the
# plain KVM tests.
option(LIBVMM_LINUX_TESTS "Build the guest kernel and run the Linux boot tests (label linux)" OFF)
# Where the guest kernel, initramfs and disk image go. Several build trees may share one
# (the scripts are idempotent and skip what is up to date).
set(LIBVMM_GUEST_OUT ${CMAKE_BINARY_DIR}/guest CACHE PATH
  "Output directory of scripts/build-guest-kernel.sh, build-initramfs.sh, build-rootfs.sh")

if(LIBVMM_LINUX_TESTS)
  # Always considered out of date: the scripts decide, from their own stamps, whether there
  # is anything to do (a no-op run takes about a second).
  add_custom_target(linux_guest ALL
    COMMAND ${CMAKE_SOURCE_DIR}/scripts/build-guest-kernel.sh ${LIBVMM_GUEST_OUT}
    COMMAND ${CMAKE_SOURCE_DIR}/scripts/build-initramfs.sh ${LIBVMM_GUEST_OUT}
    COMMAND ${CMAKE_SOURCE_DIR}/scripts/build-rootfs.sh ${LIBVMM_GUEST_OUT}
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
    COMMENT "Guest kernel, initramfs and disk image for the Linux boot tests"
    USES_TERMINAL)

  file(GLOB VMM_LINUX_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_linux_*.c)
  foreach(src ${VMM_LINUX_TESTS})
    get_filename_component(name ${src} NAME_WE)
    # test_linux_microvm runs examples/microvm: only with the examples built.
    if(name STREQUAL "test_linux_microvm" AND NOT TARGET microvm)
      continue()
    endif()
    set(target linux_${name})
    add_executable(${target} ${src} ${CMAKE_CURRENT_LIST_DIR}/linux_vm.c ${CMAKE_CURRENT_LIST_DIR}/linux_peer.c)
    target_link_libraries(${target} PRIVATE vmm_static PkgConfig::CMOCKA vmm_host_flags)
    target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR}/lib ${CMAKE_CURRENT_LIST_DIR})
    target_compile_definitions(${target} PRIVATE LINUX_GUEST_DIR="${LIBVMM_GUEST_OUT}")
    add_dependencies(${target} linux_guest)
    if(name STREQUAL "test_linux_microvm")
      target_compile_definitions(${target} PRIVATE MICROVM_PATH="$<TARGET_FILE:microvm>")
      add_dependencies(${target} microvm)
    endif()
    add_test(NAME linux.${name} COMMAND ${target})
    # A boot takes 1-7 minutes on hosts that interpret ring-0 guest code (measured:
    # 46-395 s; well under a second on bare-metal KVM); the timeout leaves room for a
    # slow, shared machine. scripts/test-linux.sh runs them one at a time and stops at
    # the first failure, which keeps a broken kernel within CI's time limit.
    set_tests_properties(linux.${name} PROPERTIES LABELS linux SKIP_RETURN_CODE 77 TIMEOUT 1500)
  endforeach()
endif()
