# Install rules: the public headers, the libraries, the CMake package (kafka-triggersConfig.cmake
# exporting kt::kt and kt::http) and kafka-triggers.pc. Both record the librdkafka this build
# used, so that a project using the installed package links the same one.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(kt_package_dir ${CMAKE_INSTALL_LIBDIR}/cmake/kafka-triggers)
set(kt_installed_targets kt)
if(KT_BUILD_HTTP)
  list(APPEND kt_installed_targets kt_http)
endif()
install(TARGETS ${kt_installed_targets} EXPORT kafka-triggers-targets FILE_SET HEADERS)
install(EXPORT kafka-triggers-targets NAMESPACE kt:: DESTINATION ${kt_package_dir}
        FILE kafka-triggersTargets.cmake)
configure_package_config_file(cmake/kafka-triggersConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/kafka-triggersConfig.cmake
                              INSTALL_DESTINATION ${kt_package_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/kafka-triggersConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/kafka-triggersConfig.cmake
              ${PROJECT_BINARY_DIR}/kafka-triggersConfigVersion.cmake
              cmake/kt_find_librdkafka.cmake
        DESTINATION ${kt_package_dir})

# pkg-config: the libraries are static, so Libs lists what they need; the prefix is found from the
# .pc file's own place (cmake --install --prefix chooses it after configuring).
file(RELATIVE_PATH kt_pc_prefix_from_pcfiledir /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" kt_pc_prefix_from_pcfiledir "${kt_pc_prefix_from_pcfiledir}")
list(JOIN RDKAFKA_LDFLAGS " " kt_pc_librdkafka_libs)
if(KT_LIBRDKAFKA_PREFIX)  # not on the linker's search path at run time either
  string(PREPEND kt_pc_librdkafka_libs "-Wl,-rpath,${RDKAFKA_LIBDIR} ")
endif()
set(kt_pc_http_lib "")
if(KT_BUILD_HTTP)
  set(kt_pc_http_lib "-lkafka-triggers-http ")
endif()
configure_file(cmake/kafka-triggers.pc.in ${PROJECT_BINARY_DIR}/kafka-triggers.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/kafka-triggers.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
