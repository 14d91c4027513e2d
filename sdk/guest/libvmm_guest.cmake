# libvmm guest SDK: build a guest program for a libvmm sandbox (include/libvmm/sandbox.h).
#
#   include(<sdk>/libvmm_guest.cmake)      # or find_package(libvmm), which includes it
#   libvmm_add_guest(my_guest SOURCES guest.c [more.c ...]
#                    [COVERAGE]                 # clang -fsanitize-coverage=inline-8bit-counters
#                    [COMPILER <cc>]            # default: the project's C compiler, or clang
#                                               # with COVERAGE (gcc or clang both work)
#                    [C_FLAGS <flag> ...]       # extra compile flags for SOURCES
#                    [LINK_FLAGS <flag> ...]    # extra link flags
#                    [INCLUDE_DIRECTORIES <dir> ...]
#                    [OUTPUT_DIRECTORY <dir>])  # default: CMAKE_CURRENT_BINARY_DIR
#
# Creates the custom target <name> (built by default) producing <dir>/<name>.elf, a
# freestanding static ELF linked at 1 MiB with the SDK runtime; the target property
# LIBVMM_GUEST_ELF holds its path. The guest is compiled by invoking the compiler
# directly, so none of the project's flags (sanitizers, -fPIE, build-type flags) reach
# guest code. Only the program's own SOURCES get COVERAGE; the runtime never does.
set(LIBVMM_GUEST_SDK_DIR ${CMAKE_CURRENT_LIST_DIR} CACHE INTERNAL "libvmm guest SDK")

function(libvmm_add_guest name)
  cmake_parse_arguments(G "COVERAGE" "COMPILER;OUTPUT_DIRECTORY"
    "SOURCES;C_FLAGS;LINK_FLAGS;INCLUDE_DIRECTORIES" ${ARGN})
  if(NOT G_SOURCES)
    message(FATAL_ERROR "libvmm_add_guest(${name}): no SOURCES")
  endif()
  set(sdk ${LIBVMM_GUEST_SDK_DIR})

  set(cc ${G_COMPILER})
  if(NOT cc AND G_COVERAGE)
    find_program(LIBVMM_GUEST_CLANG NAMES clang clang-16 clang-15 clang-14)
    if(NOT LIBVMM_GUEST_CLANG)
      message(FATAL_ERROR "libvmm_add_guest(${name}): COVERAGE needs clang")
    endif()
    set(cc ${LIBVMM_GUEST_CLANG})
  endif()
  if(NOT cc)
    set(cc ${CMAKE_C_COMPILER})
  endif()
  if(NOT cc)
    set(cc cc)
  endif()
  execute_process(COMMAND ${cc} --version OUTPUT_VARIABLE version ERROR_QUIET)
  set(is_clang FALSE)
  if(version MATCHES "clang")
    set(is_clang TRUE)
  endif()

  # No red zone (at CPL 0, VMM_SANDBOX_RING0, an exception pushes its frame onto the
  # running stack), no PIC/PIE (linked at a fixed address), nothing that needs a libc or
  # a TLS canary.
  set(cflags -ffreestanding -fno-pic -fno-pie -mno-red-zone -fno-stack-protector
    -fno-asynchronous-unwind-tables -fcf-protection=none -O2 -g -Wall -Wextra
    -I${sdk}/include)
  if(NOT is_clang)
    # Keep GCC from turning the runtime's memset/memcpy loops into calls to themselves.
    list(APPEND cflags -fno-tree-loop-distribute-patterns)
  endif()
  set(ldflags -nostdlib -static -Wl,-T,${sdk}/vmm_guest.ld -Wl,--build-id=none
    -Wl,-z,max-page-size=4096 -Wl,-z,noexecstack)
  if(NOT is_clang)
    list(APPEND ldflags -no-pie) # clang with -static links non-PIE by itself
  endif()
  set(user_flags ${G_C_FLAGS})
  foreach(dir ${G_INCLUDE_DIRECTORIES})
    get_filename_component(dir ${dir} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    list(APPEND user_flags -I${dir})
  endforeach()
  if(G_COVERAGE)
    list(APPEND user_flags -fsanitize-coverage=inline-8bit-counters)
  endif()

  set(outdir ${G_OUTPUT_DIRECTORY})
  if(NOT outdir)
    set(outdir ${CMAKE_CURRENT_BINARY_DIR})
  endif()
  set(objdir ${CMAKE_CURRENT_BINARY_DIR}/${name}.guest)
  set(headers ${sdk}/include/libvmm_guest.h ${sdk}/include/libvmm_guest_abi.h)
  set(objs)
  set(i 0)
  foreach(src ${G_SOURCES} ${sdk}/src/runtime.c ${sdk}/src/start.S)
    get_filename_component(src ${src} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    get_filename_component(base ${src} NAME)
    set(obj ${objdir}/${i}_${base}.o)
    set(flags ${cflags})
    if(NOT src MATCHES "^${sdk}/src/")
      list(APPEND flags ${user_flags})
    endif()
    add_custom_command(OUTPUT ${obj}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${objdir}
      COMMAND ${cc} ${flags} -MD -MF ${obj}.d -c ${src} -o ${obj}
      DEPENDS ${src} ${headers}
      DEPFILE ${obj}.d
      COMMENT "Compiling guest ${name}: ${base}"
      VERBATIM)
    list(APPEND objs ${obj})
    math(EXPR i "${i} + 1")
  endforeach()

  set(elf ${outdir}/${name}.elf)
  add_custom_command(OUTPUT ${elf}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${outdir}
    COMMAND ${cc} ${ldflags} ${G_LINK_FLAGS} ${objs} -o ${elf}
    DEPENDS ${objs} ${sdk}/vmm_guest.ld
    COMMENT "Linking guest ${name}.elf"
    VERBATIM)
  add_custom_target(${name} ALL DEPENDS ${elf})
  set_target_properties(${name} PROPERTIES LIBVMM_GUEST_ELF ${elf})
endfunction()
