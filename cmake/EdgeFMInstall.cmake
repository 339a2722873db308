# `cmake --install build [--prefix DIR]`: the public API (include/edgefm/), the static
# libraries behind it and the CMake package EdgeFM, so that an application can write
#   find_package(EdgeFM REQUIRED)
#   target_link_libraries(app PRIVATE EdgeFM::edge)
# Only the runtime's libraries are installed (no CLI, tests, benches or distillation); their
# internal headers stay in the source tree. A static library's private dependencies still
# reach the application's link line, so EdgeFMConfig.cmake finds them all again.
include(CMakePackageConfigHelpers)

set(edgefm_installed_libraries
  edgefm_api edgefm_edge edgefm_cloud edgefm_select edgefm_net edgefm_route edgefm_eval
  edgefm_data edgefm_models edgefm_pool edgefm_common edgefm_httplib)
install(TARGETS ${edgefm_installed_libraries}
        EXPORT EdgeFMTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/edgefm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(edgefm_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/EdgeFM)
install(EXPORT EdgeFMTargets NAMESPACE EdgeFM:: DESTINATION ${edgefm_cmake_dir})

# What the configuration found, for EdgeFMConfig.cmake.in: the same optional pieces again.
set(EDGEFM_PACKAGE_TORCH_DIR "${Torch_DIR}")
if(TARGET prometheus-cpp::core)
  set(EDGEFM_PACKAGE_PROMETHEUS ON)
else()
  set(EDGEFM_PACKAGE_PROMETHEUS OFF)
endif()
if(CPP_HTTPLIB_FOUND)  # src/cloud's pkg-config target, not visible from here
  set(EDGEFM_PACKAGE_HTTPLIB_PKGCONFIG ON)
else()
  set(EDGEFM_PACKAGE_HTTPLIB_PKGCONFIG OFF)
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/EdgeFMConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/EdgeFMConfig.cmake
                              INSTALL_DESTINATION ${edgefm_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/EdgeFMConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/EdgeFMConfig.cmake ${PROJECT_BINARY_DIR}/EdgeFMConfigVersion.cmake
        DESTINATION ${edgefm_cmake_dir})
