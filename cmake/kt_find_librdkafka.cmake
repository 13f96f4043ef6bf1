# kt_find_librdkafka(<prefix> <minimum>): librdkafka >= <minimum> as the imported target
# PkgConfig::RDKAFKA (RDKAFKA_FOUND, RDKAFKA_VERSION, RDKAFKA_LIBDIR...), from the installation at
# <prefix> when it is not empty, else from pkg-config's search path. Used by our build
# (cmake/librdkafka.cmake) and by the installed kafka-triggersConfig.cmake, so that a project using
# the package links the librdkafka kafka-triggers was built against.
macro(kt_find_librdkafka prefix minimum)
  if(NOT "${prefix}" STREQUAL "")
    set(ENV{PKG_CONFIG_PATH} "${prefix}/lib/pkgconfig:$ENV{PKG_CONFIG_PATH}")
  endif()
  pkg_check_modules(RDKAFKA IMPORTED_TARGET rdkafka>=${minimum})
endmacro()
