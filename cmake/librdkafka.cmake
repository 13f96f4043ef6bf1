# Finds librdkafka >= KT_LIBRDKAFKA_MIN as PkgConfig::RDKAFKA: KT_LIBRDKAFKA_PREFIX when given,
# else the build scripts/setup.sh made in its cache (used only where the system's is too old),
# else the system's. Binaries get its directory as RPATH, so they run without LD_LIBRARY_PATH. The
# installed package records the prefix used (cmake/package.cmake). scripts/setup.sh reads the next
# line.
set(KT_LIBRDKAFKA_MIN 2.14.2)
# The same as RD_KAFKA_VERSION encodes it (0xMMmmrrff), for the header check in version.cpp.
string(REPLACE "." ";" kt_min_parts ${KT_LIBRDKAFKA_MIN})
list(GET kt_min_parts 0 kt_major)
list(GET kt_min_parts 1 kt_minor)
list(GET kt_min_parts 2 kt_revision)
math(EXPR KT_LIBRDKAFKA_MIN_HEX "(${kt_major} << 24) | (${kt_minor} << 16) | (${kt_revision} << 8) | 255"
     OUTPUT_FORMAT HEXADECIMAL)
set(KT_LIBRDKAFKA_PREFIX "" CACHE PATH "librdkafka installation to build against (default: setup's, else the system's)")

if(NOT KT_LIBRDKAFKA_PREFIX)
  if(DEFINED ENV{KT_CACHE})
    set(kt_cache "$ENV{KT_CACHE}")
  elseif(DEFINED ENV{XDG_CACHE_HOME})
    set(kt_cache "$ENV{XDG_CACHE_HOME}/kafka-triggers")
  else()
    set(kt_cache "$ENV{HOME}/.cache/kafka-triggers")
  endif()
  if(EXISTS "${kt_cache}/librdkafka/.complete")
    file(REAL_PATH "${kt_cache}/librdkafka" KT_LIBRDKAFKA_PREFIX)
  endif()
endif()
include(${CMAKE_CURRENT_LIST_DIR}/kt_find_librdkafka.cmake)
kt_find_librdkafka("${KT_LIBRDKAFKA_PREFIX}" ${KT_LIBRDKAFKA_MIN})
if(NOT RDKAFKA_FOUND)
  message(FATAL_ERROR "kafka-triggers needs librdkafka >= ${KT_LIBRDKAFKA_MIN}; scripts/setup.sh "
                      "builds Debian's source package of it where the system's is older "
                      "(or set KT_LIBRDKAFKA_PREFIX to an installation of it).")
endif()
message(STATUS "librdkafka ${RDKAFKA_VERSION} from ${RDKAFKA_LIBDIR}")
